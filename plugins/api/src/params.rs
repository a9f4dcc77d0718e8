//! Plugin parameters: `key=value` strings from the command line (`--param top_n=20`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::Error;

/// The parameters of one run. Typed getters parse on demand and name the key in errors;
/// [`Params::check_all_used`] rejects typos.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    used: RefCell<BTreeSet<String>>,
}

impl Params {
    pub fn new(values: BTreeMap<String, String>) -> Params {
        Params { values, used: RefCell::default() }
    }

    /// Parses `key=value` strings.
    pub fn parse<S: AsRef<str>>(pairs: &[S]) -> Result<Params, Error> {
        let mut values = BTreeMap::new();
        for p in pairs {
            let (k, v) = p
                .as_ref()
                .split_once('=')
                .ok_or_else(|| Error::new(format!("parameter `{}` is not key=value", p.as_ref())))?;
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(Params::new(values))
    }

    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The raw string, if given.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.used.borrow_mut().insert(key.to_string());
        self.values.get(key).map(String::as_str)
    }

    /// `key` parsed as `T`, or `default` when absent.
    pub fn get<T: FromStr>(&self, key: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.str(key) {
            None => Ok(default),
            Some(s) => s.parse().map_err(|e| Error::new(format!("parameter {key}={s}: {e}"))),
        }
    }

    /// Fails naming the given keys that no getter asked for; call it after reading all parameters.
    pub fn check_all_used(&self) -> Result<(), Error> {
        let used = self.used.borrow();
        let unknown: Vec<&str> = self.values.keys().filter(|k| !used.contains(*k)).map(String::as_str).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            let known: Vec<&str> = used.iter().map(String::as_str).collect();
            Err(Error::new(format!("unknown parameter(s) {} (known: {})", unknown.join(", "), known.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let p = Params::parse(&["top_n=20", "tier = phones", "typo=1"]).unwrap();
        assert_eq!(p.get("top_n", 5usize).unwrap(), 20);
        assert_eq!(p.get("missing", 0.5f64).unwrap(), 0.5);
        assert_eq!(p.str("tier"), Some("phones"));
        assert!(p.check_all_used().unwrap_err().to_string().contains("typo"));
        assert!(Params::parse(&["novalue"]).is_err());
        assert!(p.get::<usize>("tier", 0).unwrap_err().to_string().contains("tier=phones"));
    }
}

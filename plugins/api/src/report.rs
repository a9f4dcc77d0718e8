//! What a plugin returns: a JSON summary, tables of typed values and figures (PNG or SVG bytes).
//! The host writes `report.json`, one CSV per table and the figure files.
//!
//! Wire form (plugin -> host): 8 bytes little-endian length of a JSON document, the JSON (tables,
//! summary and figure names with byte ranges), then the figure bytes back to back.

use serde::{Deserialize, Serialize};

use crate::Error;

/// One cell of a table. On the wire a JSON scalar (`null`, bool, number, string).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// Reads a JSON scalar directly (serde's untagged enums buffer every cell: ~10x slower).
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        struct Scalar;
        impl serde::de::Visitor<'_> for Scalar {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("null, a bool, a number or a string")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v).map(Value::Int).map_err(|_| E::custom(format!("integer {v} out of range")))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Text(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Text(v))
            }
        }
        d.deserialize_any(Scalar)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(v as f64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl Value {
    /// The CSV cell: text is quoted when it holds a comma, quote or newline.
    pub fn to_csv(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(s) if s.contains([',', '"', '\n', '\r']) => format!("\"{}\"", s.replace('"', "\"\"")),
            Value::Text(s) => s.clone(),
        }
    }
}

/// A named table: `columns` names, every row as long as `columns`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// File-name friendly: the host writes `NAME.csv`.
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(name: &str, columns: &[&str]) -> Table {
        Table { name: name.to_string(), columns: columns.iter().map(|c| c.to_string()).collect(), rows: Vec::new() }
    }

    /// Appends a row; panics if its length differs from the column count (a plugin bug).
    pub fn push(&mut self, row: Vec<Value>) {
        assert_eq!(row.len(), self.columns.len(), "table {}: row length vs columns", self.name);
        self.rows.push(row);
    }

    pub fn to_csv(&self) -> String {
        let mut out = self.columns.join(",");
        out.push('\n');
        for row in &self.rows {
            out.push_str(&row.iter().map(Value::to_csv).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }
}

/// Image format of a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FigureFormat {
    Png,
    Svg,
    Html,
}

impl FigureFormat {
    pub fn extension(self) -> &'static str {
        match self {
            FigureFormat::Png => "png",
            FigureFormat::Svg => "svg",
            FigureFormat::Html => "html",
        }
    }
}

/// A figure (or an HTML page such as a unit card); the host writes `NAME.EXT`.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub name: String,
    pub format: FigureFormat,
    pub bytes: Vec<u8>,
}

/// The result of a plugin run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Headline numbers and anything else worth reading first; becomes `report.json`'s `summary`.
    pub summary: serde_json::Value,
    pub tables: Vec<Table>,
    pub figures: Vec<Figure>,
}

#[derive(Serialize, Deserialize)]
struct WireFigure {
    name: String,
    format: FigureFormat,
    start: usize,
    len: usize,
}

#[derive(Serialize, Deserialize)]
struct WireReport {
    summary: serde_json::Value,
    tables: Vec<Table>,
    figures: Vec<WireFigure>,
}

impl Report {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The wire form (see the module comment).
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut start = 0;
        let figures = self
            .figures
            .iter()
            .map(|f| {
                let w = WireFigure { name: f.name.clone(), format: f.format, start, len: f.bytes.len() };
                start += f.bytes.len();
                w
            })
            .collect();
        let wire = WireReport { summary: self.summary.clone(), tables: self.tables.clone(), figures };
        let json = serde_json::to_vec(&wire)?;
        let mut out = Vec::with_capacity(8 + json.len() + start);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for f in &self.figures {
            out.extend_from_slice(&f.bytes);
        }
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Report, Error> {
        let bad = |what: &str| Error::new(format!("malformed report from the plugin: {what}"));
        let len = bytes.get(..8).ok_or_else(|| bad("shorter than its header"))?;
        let json_len = u64::from_le_bytes([len[0], len[1], len[2], len[3], len[4], len[5], len[6], len[7]]);
        // The lengths come from the plugin: every sum is checked before it indexes.
        let json_end = usize::try_from(json_len).ok().and_then(|n| n.checked_add(8)).filter(|&e| e <= bytes.len());
        let json_end = json_end.ok_or_else(|| bad("truncated JSON"))?;
        let wire: WireReport = serde_json::from_slice(&bytes[8..json_end])?;
        let blobs = &bytes[json_end..];
        let figures = wire
            .figures
            .into_iter()
            .map(|f| {
                let end = f.start.checked_add(f.len).ok_or_else(|| bad("figure past the end"))?;
                let bytes = blobs.get(f.start..end).ok_or_else(|| bad("figure past the end"))?.to_vec();
                Ok(Figure { name: f.name, format: f.format, bytes })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Report { summary: wire.summary, tables: wire.tables, figures })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips() {
        let mut t = Table::new("units", &["unit", "label", "score", "note"]);
        t.push(vec![3usize.into(), "AA".into(), 0.25.into(), Value::Null]);
        t.push(vec![4usize.into(), "a,\"b\"".into(), f64::NAN.into(), true.into()]);
        let r = Report {
            summary: serde_json::json!({"units": 2}),
            tables: vec![t],
            figures: vec![
                Figure { name: "a".into(), format: FigureFormat::Png, bytes: vec![1, 2, 3] },
                Figure { name: "b".into(), format: FigureFormat::Svg, bytes: b"<svg/>".to_vec() },
            ],
        };
        let back = Report::from_bytes(&r.to_bytes().unwrap()).unwrap();
        assert_eq!(back.figures, r.figures);
        assert_eq!(back.summary, r.summary);
        assert_eq!(back.tables[0].rows[0], r.tables[0].rows[0]);
        // NaN is not JSON: it comes back as null.
        assert_eq!(back.tables[0].rows[1][2], Value::Null);
        assert_eq!(back.tables[0].to_csv().lines().nth(2).unwrap(), "4,\"a,\"\"b\"\"\",,true");
        assert!(Report::from_bytes(&r.to_bytes().unwrap()[..20]).is_err());
    }
}

//! Corpus statistics: hours per source and split, words, and phones per class.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use super::accuracy::{AccuracyReport, ACCURACY_FILE};
use super::Corpus;
use crate::textgrid::{PhoneSet, UnknownPhones};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Amount {
    pub items: usize,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PhoneCount {
    pub count: usize,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CorpusStats {
    /// Keyed `source/split`.
    pub by_source_split: BTreeMap<String, Amount>,
    pub total: Amount,
    pub items_without_textgrid: usize,
    /// Word tokens (non-silence intervals of the words tiers) and distinct lower-cased words.
    pub words: usize,
    pub word_types: usize,
    pub phone_set: PhoneSet,
    /// Phone intervals per class, silence (`sil`) included.
    pub phones: BTreeMap<String, PhoneCount>,
    /// Labels the phone set does not know, kept as their own classes.
    pub unknown_phones: BTreeMap<String, usize>,
    /// The corpus's `alignment_accuracy.json`, when it has one (the demo corpus: pocketsphinx
    /// measured against MFA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alignment_accuracy: Option<AccuracyReport>,
}

/// Reads every item's TextGrid; its phones are mapped with `phone_set`.
pub fn compute(corpus: &Corpus, phone_set: PhoneSet) -> Result<CorpusStats> {
    let mut by_source_split: BTreeMap<String, Amount> = BTreeMap::new();
    let mut total = Amount::default();
    let (mut words, mut word_types, mut without) = (0, HashSet::new(), 0);
    let mut phones: BTreeMap<String, PhoneCount> = BTreeMap::new();
    let mut unknown = UnknownPhones::default();
    for item in &corpus.manifest.items {
        let a = by_source_split.entry(format!("{}/{}", item.source, item.split)).or_default();
        a.items += 1;
        a.seconds += item.duration_s;
        total.items += 1;
        total.seconds += item.duration_s;
        let Some(tg) = corpus.read_textgrid(item)? else {
            without += 1;
            continue;
        };
        // Both tiers are required: a TextGrid without one would silently count nothing.
        for iv in tg.words()?.labelled() {
            words += 1;
            word_types.insert(iv.text.to_lowercase());
        }
        for iv in phone_set.map_tier(tg.phones()?, &mut unknown).intervals {
            let c = phones.entry(iv.text).or_default();
            c.count += 1;
            c.seconds += iv.xmax - iv.xmin;
        }
    }
    let path = corpus.root.join(ACCURACY_FILE);
    let alignment_accuracy = match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).with_context(|| {
            format!("{}: not an alignment accuracy report; delete it or rebuild the corpus", path.display())
        })?),
        Err(_) => None,
    };
    Ok(CorpusStats {
        by_source_split,
        total,
        items_without_textgrid: without,
        words,
        word_types: word_types.len(),
        phone_set,
        phones,
        unknown_phones: unknown.0,
        alignment_accuracy,
    })
}

impl std::fmt::Display for CorpusStats {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let mut s = String::new();
        let _ = writeln!(s, "{:<32} {:>6} {:>8} {:>8}", "source/split", "items", "minutes", "hours");
        let row = |s: &mut String, name: &str, a: &Amount| {
            let _ = writeln!(s, "{name:<32} {:>6} {:>8.2} {:>8.4}", a.items, a.seconds / 60.0, a.seconds / 3600.0);
        };
        for (k, a) in &self.by_source_split {
            row(&mut s, k, a);
        }
        row(&mut s, "total", &self.total);
        if self.items_without_textgrid > 0 {
            let _ = writeln!(s, "{} item(s) without a TextGrid", self.items_without_textgrid);
        }
        let _ = writeln!(s, "words: {} tokens, {} distinct", self.words, self.word_types);
        let n: usize = self.phones.values().map(|c| c.count).sum();
        let _ = writeln!(s, "phones ({}): {n} intervals in {} classes", self.phone_set, self.phones.len());
        let mut classes: Vec<(&String, &PhoneCount)> = self.phones.iter().collect();
        classes.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        // Four columns of `class count seconds`.
        let cells: Vec<String> =
            classes.iter().map(|(k, c)| format!("{k:<5} {:>6} {:>7.1}s", c.count, c.seconds)).collect();
        for line in cells.chunks(4) {
            let _ = writeln!(s, "  {}", line.join("   "));
        }
        if !self.unknown_phones.is_empty() {
            let list: Vec<String> = self.unknown_phones.iter().map(|(k, n)| format!("`{k}` x{n}")).collect();
            let _ = writeln!(s, "labels outside the phone set, kept as their own classes: {}", list.join(", "));
        }
        if let Some(a) = &self.alignment_accuracy {
            let _ = write!(s, "{a}");
        }
        f.write_str(s.trim_end())
    }
}

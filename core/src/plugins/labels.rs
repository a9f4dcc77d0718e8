//! Frame labels for store items from a corpus's TextGrids: a store item is matched to a corpus
//! item by id (what `audiosae extract` writes), else by audio file; its frames get labels
//! through the item's [`FrameTiming`](crate::FrameTiming) (the centre rule of
//! [`crate::textgrid::frame_labels`]), phones mapped to a common phone set, words lowercased.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result};

use crate::corpus::Corpus;
use crate::store::ItemEntry;
use crate::textgrid::{frame_labels, PhoneSet, TextGrid, TierName, UnknownPhones};
use crate::timing::FrameTiming;

/// The tiers every labelled run offers.
pub const TIERS: [&str; 2] = ["phones", "words"];

pub struct CorpusLabels {
    corpus: Corpus,
    by_id: HashMap<String, usize>,
    by_audio: HashMap<PathBuf, usize>,
    phone_set: PhoneSet,
    /// Parsed TextGrids by corpus item (`None`: the item has none).
    grids: RefCell<HashMap<usize, Option<Rc<TextGrid>>>>,
    unknown: RefCell<UnknownPhones>,
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

impl CorpusLabels {
    pub fn new(corpus: Corpus, phone_set: PhoneSet) -> CorpusLabels {
        let items = &corpus.manifest.items;
        let by_id = items.iter().enumerate().map(|(i, it)| (it.id.clone(), i)).collect();
        let by_audio = items.iter().enumerate().map(|(i, it)| (canonical(&corpus.audio_path(it)), i)).collect();
        CorpusLabels { corpus, by_id, by_audio, phone_set, grids: RefCell::default(), unknown: RefCell::default() }
    }

    /// Phone labels the phone set did not know (kept as they are), with counts.
    pub fn unknown_phones(&self) -> UnknownPhones {
        self.unknown.borrow().clone()
    }

    fn grid(&self, corpus_item: usize) -> Result<Option<Rc<TextGrid>>> {
        if let Some(g) = self.grids.borrow().get(&corpus_item) {
            return Ok(g.clone());
        }
        let item = &self.corpus.manifest.items[corpus_item];
        let grid = self.corpus.read_textgrid(item)?.map(Rc::new);
        self.grids.borrow_mut().insert(corpus_item, grid.clone());
        Ok(grid)
    }

    /// Whether `item` has a corpus item with a TextGrid.
    pub fn covers(&self, item: &ItemEntry) -> bool {
        self.corpus_item(item).is_some_and(|i| self.corpus.manifest.items[i].textgrid.is_some())
    }

    /// The reference transcript of `item`'s clip, when the corpus has one.
    pub fn transcript(&self, item: &ItemEntry) -> Option<&str> {
        let t = self.corpus.manifest.items[self.corpus_item(item)?].transcript.as_str();
        (!t.trim().is_empty()).then_some(t)
    }

    fn corpus_item(&self, item: &ItemEntry) -> Option<usize> {
        self.by_id.get(&item.meta.id).or_else(|| self.by_audio.get(&canonical(&item.meta.audio))).copied()
    }

    /// The corpus's root folder.
    pub fn root(&self) -> &Path {
        &self.corpus.root
    }

    /// One label per frame of store item `item` from `tier` (`phones`, `words` or an exact tier
    /// name), or `None` when the corpus has no TextGrid for it.
    pub fn frame_labels(&self, item: &ItemEntry, timing: FrameTiming, tier: &str) -> Result<Option<Vec<String>>> {
        let Some(corpus_item) = self.corpus_item(item) else { return Ok(None) };
        let Some(grid) = self.grid(corpus_item)? else { return Ok(None) };
        let name: TierName = tier.parse().unwrap_or_else(|never| match never {});
        let found = grid.interval_tier(&name).with_context(|| format!("labels of item {}", item.meta.id))?;
        let labels: Vec<String> = if name == TierName::Phones {
            let mapped = self.phone_set.map_tier(found, &mut self.unknown.borrow_mut());
            frame_labels(&mapped, &timing, item.rows()).into_iter().map(str::to_string).collect()
        } else if name == TierName::Words {
            frame_labels(found, &timing, item.rows()).into_iter().map(str::to_lowercase).collect()
        } else {
            frame_labels(found, &timing, item.rows()).into_iter().map(str::to_string).collect()
        };
        Ok(Some(labels))
    }
}

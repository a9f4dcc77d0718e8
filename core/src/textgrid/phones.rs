//! One common phone set for every aligner: the 39 ARPAbet phonemes of the CMU dictionary,
//! without stress, plus `sil` (silence) and `spn` (MFA's spoken noise / unknown word).
//!
//! Mapping rules, tried in order on each label:
//! 1. silence labels (see [`is_silence`]) -> `sil`; `spn` -> `spn`;
//! 2. IPA as MFA's English models and espeak-ng write it (table [`IPA`]); a few espeak
//!    phonemes are two ARPAbet phones (`ɑːɹ` -> `AA R`, `iə` -> `IH AH`), whose interval is then
//!    split in equal halves;
//! 3. ARPAbet, any case, with the stress digit dropped (`AA1` -> `AA`), and the TIMIT/Buckeye
//!    extras folded in (`AX` -> `AH`, `DX` -> `T`, `EL` -> `L`, ...);
//! 4. IPA again with diacritics dropped (`tʲ` -> `t` -> `T`, `n̩` -> `N`).
//!
//! Anything else is kept as it is and counted in [`UnknownPhones`], so that callers can report
//! it; this never silently merges a phone into the wrong class.

use std::collections::BTreeMap;

use super::labels::{is_silence, SILENCE};
use super::{Interval, IntervalTier};

/// Spoken noise: MFA's label for laughter, coughs and out-of-vocabulary words.
pub const SPOKEN_NOISE: &str = "spn";

/// The 39 ARPAbet phonemes of the common set.
pub const ARPABET39: [&str; 39] = [
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH", "K",
    "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
];

/// ARPAbet symbols outside the 39 and their folding.
const ARPABET_EXTRA: [(&str, &str); 14] = [
    ("AX", "AH"),
    ("AXR", "ER"),
    ("AXH", "AH"),
    ("IX", "IH"),
    ("UX", "UW"),
    ("DX", "T"),
    ("NX", "N"),
    ("EM", "M"),
    ("EN", "N"),
    ("ENG", "NG"),
    ("EL", "L"),
    ("Q", "T"),
    ("HV", "HH"),
    ("WH", "W"),
];

/// IPA (MFA english_mfa, espeak-ng en voices) -> ARPAbet. Flaps and glottal stops become `T`,
/// the usual allophones in American English; non-rhotic centring diphthongs become vowel + `AH`.
pub const IPA: &[(&str, &[&str])] = &[
    // vowels
    ("ɑ", &["AA"]),
    ("ɑː", &["AA"]),
    ("ɒ", &["AA"]),
    ("ɒː", &["AA"]),
    ("aː", &["AA"]),
    ("a:", &["AA"]),
    ("aa", &["AA"]),
    ("a", &["AE"]),
    ("æ", &["AE"]),
    ("ʌ", &["AH"]),
    ("ə", &["AH"]),
    ("ɐ", &["AH"]),
    ("ɔ", &["AO"]),
    ("ɔː", &["AO"]),
    ("aʊ", &["AW"]),
    ("aw", &["AW"]),
    ("ʌʉ", &["AW"]),
    ("aɪ", &["AY"]),
    ("aj", &["AY"]),
    ("ɑɪ", &["AY"]),
    ("ɛ", &["EH"]),
    ("ɛː", &["EH"]),
    ("e", &["EH"]),
    ("ɚ", &["ER"]),
    ("ɝ", &["ER"]),
    ("ɜ", &["ER"]),
    ("ɜː", &["ER"]),
    ("eɪ", &["EY"]),
    ("ej", &["EY"]),
    ("eː", &["EY"]),
    ("ɪ", &["IH"]),
    ("ᵻ", &["IH"]),
    ("ɨ", &["IH"]),
    ("i", &["IY"]),
    ("iː", &["IY"]),
    ("oʊ", &["OW"]),
    ("əʊ", &["OW"]),
    ("ow", &["OW"]),
    ("o", &["OW"]),
    ("oː", &["OW"]),
    ("ɔɪ", &["OY"]),
    ("ɔj", &["OY"]),
    ("ʊ", &["UH"]),
    ("u", &["UW"]),
    ("uː", &["UW"]),
    ("ʉ", &["UW"]),
    ("ʉː", &["UW"]),
    // espeak-ng: rhotic vowels (en-us) and centring diphthongs (en-gb, en-029) as one phoneme
    ("ɑːɹ", &["AA", "R"]),
    ("ɔːɹ", &["AO", "R"]),
    ("oːɹ", &["AO", "R"]),
    ("ɛɹ", &["EH", "R"]),
    ("ɪɹ", &["IH", "R"]),
    ("ʊɹ", &["UH", "R"]),
    ("ʌɹ", &["AH", "R"]),
    ("ʉɹ", &["UW", "R"]),
    ("aɪɚ", &["AY", "ER"]),
    ("aɪə", &["AY", "AH"]),
    ("aʊə", &["AW", "AH"]),
    ("iə", &["IH", "AH"]),
    ("eə", &["EH", "AH"]),
    ("ʊə", &["UH", "AH"]),
    ("oə", &["OW", "AH"]),
    ("ɔə", &["AO", "AH"]),
    ("ɑə", &["AA", "AH"]),
    ("əl", &["AH", "L"]),
    // consonants
    ("b", &["B"]),
    ("tʃ", &["CH"]),
    ("t͡ʃ", &["CH"]),
    ("d", &["D"]),
    ("ð", &["DH"]),
    ("f", &["F"]),
    ("ɡ", &["G"]),
    ("g", &["G"]),
    ("ɟ", &["G"]),
    ("h", &["HH"]),
    ("ç", &["HH"]),
    ("dʒ", &["JH"]),
    ("d͡ʒ", &["JH"]),
    ("k", &["K"]),
    ("c", &["K"]),
    ("l", &["L"]),
    ("ɫ", &["L"]),
    ("ʎ", &["L"]),
    ("m", &["M"]),
    ("ɱ", &["M"]),
    ("n", &["N"]),
    ("ɲ", &["N"]),
    ("ŋ", &["NG"]),
    ("p", &["P"]),
    ("ɹ", &["R"]),
    ("r", &["R"]),
    ("ɻ", &["R"]),
    ("s", &["S"]),
    ("ʃ", &["SH"]),
    ("t", &["T"]),
    ("ɾ", &["T"]),
    ("ʔ", &["T"]),
    ("θ", &["TH"]),
    ("v", &["V"]),
    ("w", &["W"]),
    ("ʍ", &["W"]),
    ("j", &["Y"]),
    ("z", &["Z"]),
    ("ʒ", &["ZH"]),
];

/// Diacritics and suprasegmentals dropped in rule 4 (length `ː` is kept: it is in the table).
const DIACRITICS: &[char] =
    &['ʲ', 'ʰ', 'ʷ', 'ˠ', 'ˤ', '\u{0329}', '\u{032A}', '\u{031A}', '\u{0325}', '\u{0303}', '\u{032F}', 'ˈ', 'ˌ', 'ˑ'];

/// The common-set phones of one label, or `None` if the label is not a known phone.
pub fn to_arpabet39(label: &str) -> Option<&'static [&'static str]> {
    let label = label.trim();
    if is_silence(label) {
        return Some(&[SILENCE]);
    }
    if label.eq_ignore_ascii_case(SPOKEN_NOISE) {
        return Some(&[SPOKEN_NOISE]);
    }
    let ipa = |l: &str| IPA.iter().find(|(k, _)| *k == l).map(|(_, v)| *v);
    if let Some(v) = ipa(label) {
        return Some(v);
    }
    let upper = label.to_ascii_uppercase();
    let bare = upper.trim_end_matches(['0', '1', '2']);
    if let Some(p) = ARPABET39.iter().find(|p| **p == bare) {
        return Some(std::slice::from_ref(p));
    }
    if let Some((_, p)) = ARPABET_EXTRA.iter().find(|(k, _)| *k == bare) {
        return Some(std::slice::from_ref(p));
    }
    let stripped: String = label.chars().filter(|c| !DIACRITICS.contains(c)).collect();
    if stripped != label && !stripped.is_empty() {
        return ipa(&stripped);
    }
    None
}

/// Which labels a phone tier's frames get.
/// Written as the CLI spells it (`raw`, `arpabet39`); manifests of earlier versions spelled the
/// variants `Raw` and `Arpabet39`, which still read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhoneSet {
    /// The tier's own labels (silence still folded into `sil` by the frame labeller).
    #[serde(alias = "Raw")]
    Raw,
    /// [`ARPABET39`] + `sil` + `spn` (see the module comment for the rules).
    #[default]
    #[serde(alias = "Arpabet39")]
    Arpabet39,
}

impl std::str::FromStr for PhoneSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "raw" => Ok(PhoneSet::Raw),
            "arpabet39" | "arpabet" | "common" => Ok(PhoneSet::Arpabet39),
            _ => Err(format!("unknown phone set `{s}` (raw or arpabet39)")),
        }
    }
}

impl std::fmt::Display for PhoneSet {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            PhoneSet::Raw => "raw",
            PhoneSet::Arpabet39 => "arpabet39",
        })
    }
}

/// Labels that [`PhoneSet::map_tier`] kept as-is because it does not know them, with counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnknownPhones(pub BTreeMap<String, usize>);

impl UnknownPhones {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn merge(&mut self, other: &UnknownPhones) {
        for (k, n) in &other.0 {
            *self.0.entry(k.clone()).or_default() += n;
        }
    }
}

impl std::fmt::Display for UnknownPhones {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, n)| format!("`{k}` x{n}")).collect();
        f.write_str(&parts.join(", "))
    }
}

impl PhoneSet {
    /// The tier with every label mapped; a label that maps to two phones has its interval split
    /// in equal halves. Unknown labels are kept and counted in `unknown`.
    pub fn map_tier(&self, tier: &IntervalTier, unknown: &mut UnknownPhones) -> IntervalTier {
        if *self == PhoneSet::Raw {
            return tier.clone();
        }
        let mut intervals = Vec::with_capacity(tier.intervals.len());
        for iv in &tier.intervals {
            match to_arpabet39(&iv.text) {
                Some(phones) => {
                    let step = (iv.xmax - iv.xmin) / phones.len() as f64;
                    for (k, p) in phones.iter().enumerate() {
                        let xmax = if k + 1 == phones.len() { iv.xmax } else { iv.xmin + (k + 1) as f64 * step };
                        intervals.push(Interval { xmin: iv.xmin + k as f64 * step, xmax, text: p.to_string() });
                    }
                }
                None => {
                    *unknown.0.entry(iv.text.clone()).or_default() += 1;
                    intervals.push(iv.clone());
                }
            }
        }
        IntervalTier { name: tier.name.clone(), xmin: tier.xmin, xmax: tier.xmax, intervals }
    }
}

/// Broad phone classes (manner of articulation) of the common set, in display order.
pub const PHONE_CLASSES: [&str; 8] =
    ["vowel", "stop", "affricate", "fricative", "nasal", "approximant", "silence", "other"];

/// The broad class of a common-set phone: ARPAbet-39 by manner, `sil` is `silence`, anything
/// else (`spn`, unknown labels) `other`.
pub fn phone_class(phone: &str) -> &'static str {
    match phone {
        "AA" | "AE" | "AH" | "AO" | "AW" | "AY" | "EH" | "ER" | "EY" | "IH" | "IY" | "OW" | "OY" | "UH" | "UW" => {
            "vowel"
        }
        "B" | "D" | "G" | "K" | "P" | "T" => "stop",
        "CH" | "JH" => "affricate",
        "DH" | "F" | "HH" | "S" | "SH" | "TH" | "V" | "Z" | "ZH" => "fricative",
        "M" | "N" | "NG" => "nasal",
        "L" | "R" | "W" | "Y" => "approximant",
        SILENCE => "silence",
        _ => "other",
    }
}

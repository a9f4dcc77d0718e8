//! Deterministic English sentences for the synthetic part of the demo corpus: templates filled
//! from small word lists chosen to cover every ARPAbet phoneme (`ZH` in "measure", `OY` in
//! "noise", `UH` in "wooden" ...), plus real transcripts.

use std::collections::HashSet;

const NAMES: &[&str] =
    &["Alice", "Bobby", "Mary", "George", "Judith", "Thomas", "Joyce", "Hugo", "Charlotte", "Vincent", "Zoe", "Nathan"];
const ADJECTIVES: &[&str] = &[
    "quiet", "yellow", "heavy", "shiny", "ancient", "wooden", "cheerful", "thick", "smooth", "noisy", "gentle",
    "frozen", "bright", "usual", "strange", "golden", "tiny", "awkward", "purple", "loyal",
];
const NOUNS: &[&str] = &[
    "garden", "engine", "treasure", "window", "bottle", "teacher", "village", "ocean", "mountain", "puzzle", "kitchen",
    "budget", "mirror", "thunder", "journey", "orange", "measure", "choice", "voice", "cushion", "pilot", "feather",
    "rhythm", "bridge",
];
const PLURALS: &[&str] = &[
    "apples", "houses", "letters", "shoes", "clouds", "boxes", "pictures", "flowers", "coins", "books", "ships",
    "toys", "songs", "maps", "chairs", "rings",
];
const VERBS_PAST: &[&str] = &[
    "carried", "painted", "measured", "watched", "pushed", "found", "borrowed", "enjoyed", "judged", "fixed",
    "thanked", "showed", "followed", "bought", "chose", "threw",
];
const VERBS_BASE: &[&str] = &[
    "carry", "paint", "measure", "watch", "push", "find", "borrow", "enjoy", "judge", "fix", "share", "follow", "buy",
    "choose", "throw", "bring",
];
const PLACES: &[&str] = &[
    "near the river",
    "behind the house",
    "in the garage",
    "under the bridge",
    "at the station",
    "on the roof",
    "through the forest",
    "beside the harbour",
    "across the valley",
    "inside the museum",
];
const TIMES: &[&str] = &[
    "this morning",
    "last Thursday",
    "every evening",
    "before the storm",
    "after lunch",
    "in the autumn",
    "at midnight",
    "yesterday",
    "on the weekend",
    "during the show",
];
const NUMBERS: &[&str] = &["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve"];

/// splitmix64: a tiny deterministic generator, so the corpus is the same on every machine.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % n as u64) as usize
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

fn generate(r: &mut SplitMix) -> String {
    let (adj, noun) = (r.pick(ADJECTIVES), r.pick(NOUNS));
    match r.below(8) {
        0 => format!(
            "The {adj} {noun} {} the {} {} {}.",
            r.pick(VERBS_PAST),
            r.pick(ADJECTIVES),
            r.pick(NOUNS),
            r.pick(PLACES)
        ),
        1 => format!("{} {} a {adj} {noun} {}.", r.pick(NAMES), r.pick(VERBS_PAST), r.pick(TIMES)),
        2 => format!("Did the {noun} {} the {} {}?", r.pick(VERBS_BASE), r.pick(NOUNS), r.pick(PLACES)),
        3 => format!("We {} {} {adj} {} {}.", r.pick(VERBS_PAST), r.pick(NUMBERS), r.pick(PLURALS), r.pick(TIMES)),
        4 => format!("{} said that the {noun} was {adj} {}.", r.pick(NAMES), r.pick(TIMES)),
        5 => format!("Please {} the {adj} {noun} {}.", r.pick(VERBS_BASE), r.pick(PLACES)),
        6 => format!(
            "A {adj} {noun} and {} {} {} {}.",
            r.pick(NUMBERS),
            r.pick(PLURALS),
            r.pick(VERBS_PAST),
            r.pick(PLACES)
        ),
        _ => format!("How many {} did {} {} {}?", r.pick(PLURALS), r.pick(NAMES), r.pick(VERBS_BASE), r.pick(TIMES)),
    }
}

/// `n` distinct sentences: first the given transcripts (in order, duplicates dropped), then
/// generated ones. The same `n` and transcripts always give the same list.
pub fn demo_sentences(n: usize, transcripts: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    for t in transcripts {
        if out.len() < n && seen.insert(t.clone()) {
            out.push(t.clone());
        }
    }
    let mut r = SplitMix(0x5EED_A0D1_05AE);
    while out.len() < n {
        let s = generate(&mut r);
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// A transcript as espeak should read it: aligner markup (`[noise]`, `<VOCNOISE>`, `{CG}`)
/// removed, whitespace collapsed. `None` if nothing speakable is left or it is not ASCII (the
/// voices are English).
pub fn clean_transcript(text: &str) -> Option<String> {
    let words: Vec<&str> =
        text.split_whitespace().filter(|w| !(w.starts_with('[') || w.starts_with('<') || w.starts_with('{'))).collect();
    let s = words.join(" ");
    (s.chars().any(|c| c.is_ascii_alphabetic()) && s.is_ascii()).then_some(s)
}

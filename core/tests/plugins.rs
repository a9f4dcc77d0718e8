//! Analysis plugins: loading (a good plugin, one built against another API version, one built
//! against a modified boundary, non-plugin libraries), the drop-in workflow outside the
//! workspace, and `audiosae analyze` with the selectivity and monosemanticity plugins on a
//! synthetic labelled store whose ground truth is known: SAE unit `p` detects phone `p`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use audiosae::corpus::{Corpus, CorpusItem, Manifest, Split};
use audiosae::plugins::{load, AnalysisHost, CorpusLabels};
use audiosae::sae::checkpoint::{load_sae, save_sae};
use audiosae::sae::{Arch, Sae, SaeConfig, TrainConfig};
use audiosae::store::{ItemMeta, ModelRef, StoreConfig, StoreDType, StoreReader, StoreWriter};
use audiosae::textgrid::{frame_labels, IntervalTier, PhoneSet, TextGrid, Tier, UnknownPhones};
use audiosae::FrameTiming;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// Phones as an aligner writes them (stress digits), and after the arpabet39 mapping.
const RAW_PHONES: [&str; 5] = ["AA1", "IY0", "S", "T", "M"];
const PHONES: [&str; 5] = ["AA", "IY", "S", "T", "M"];
const WORDS: [&str; 3] = ["Alpha", "beta", "gamma"];
const D: usize = 64;
const D_SAE: usize = 16;
const ITEMS: usize = 12;
const SECONDS: f64 = 2.0;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("audiosae-plugins-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.env_remove("CARGO_TARGET_DIR");
    c
}

fn check(out: Output, what: &str) -> Output {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{err}");
    out
}

/// Builds the workspace's plugins once per test run; returns `target/debug`.
fn workspace_plugins() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let packages =
                ["audiosae-plugin-template", "audiosae-plugin-selectivity", "audiosae-plugin-monosemanticity"];
            let mut c = cargo();
            c.current_dir(WORKSPACE).arg("build");
            for p in packages {
                c.args(["-p", p]);
            }
            check(c.output().unwrap(), "cargo build of the plugins");
            Path::new(WORKSPACE).join("target/debug")
        })
        .clone()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "target" {
            continue;
        }
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.contains(from), "{}: no `{from}`", path.display());
    std::fs::write(path, s.replacen(from, to, 1)).unwrap();
}

/// Does what a user does: copies `plugins/template` to `dir`, renames the package to `package`
/// and the plugin to `name`, points it at `api` by absolute path in its own workspace, and runs
/// `cargo build --release`. Returns the built library.
fn build_template_copy(dir: &Path, package: &str, name: &str, api: &Path) -> PathBuf {
    let src = Path::new(WORKSPACE).join("plugins/template");
    copy_dir(&src, dir);
    let manifest = dir.join("Cargo.toml");
    edit(&manifest, "name = \"audiosae-plugin-template\"", &format!("name = \"{package}\""));
    edit(&manifest, "path = \"../api\"", &format!("path = \"{}\"", api.display()));
    let mut toml = std::fs::read_to_string(&manifest).unwrap();
    toml.push_str("\n[workspace]\n");
    std::fs::write(&manifest, toml).unwrap();
    edit(&dir.join("src/lib.rs"), "\"template\"", &format!("\"{name}\""));
    // The workspace's lock file pins the same dependency versions and lets cargo work offline.
    std::fs::copy(Path::new(WORKSPACE).join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let target = Path::new(WORKSPACE).join("target/plugin-tests");
    let out = cargo()
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "--offline"])
        .output()
        .unwrap();
    check(out, &format!("cargo build --release of {}", dir.display()));
    target.join("release").join(format!("lib{}.so", package.replace('-', "_")))
}

fn api_dir() -> PathBuf {
    Path::new(WORKSPACE).join("plugins/api").canonicalize().unwrap()
}

fn audiosae(args: &[&str], plugin_path: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_audiosae"))
        .args(args)
        .env("AUDIOSAE_PLUGIN_PATH", plugin_path)
        .output()
        .unwrap();
    eprintln!("$ audiosae {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

/// The synthetic corpus, store and SAE.
struct Fixture {
    store: PathBuf,
    sae: PathBuf,
    corpus: PathBuf,
}

fn unit_vector(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..D).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// `ITEMS` clips of `SECONDS` s: phones of 0.12-0.3 s grouped in words, a tone per phone, MFA
/// TextGrids; frames `3 e_p + noise` for phone p (noise only in silence); a ReLU SAE whose
/// units 0..5 have encoder rows `e_p` and threshold 1.5, the others random with threshold 2.5.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tmp("fixture");
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let directions: Vec<Vec<f32>> = (0..D_SAE).map(|_| unit_vector(&mut rng)).collect();
        let (corpus_dir, store_dir, sae_dir) = (dir.join("corpus"), dir.join("store"), dir.join("sae"));
        std::fs::create_dir_all(&corpus_dir).unwrap();
        let timing = FrameTiming::POOLED;
        let config = StoreConfig::new(
            ModelRef { id: "synthetic".into(), revision: None },
            "projector",
            timing,
            StoreDType::F32,
            D,
        );
        let mut writer = StoreWriter::create(&store_dir, config).unwrap();
        let mut items = Vec::new();
        for k in 0..ITEMS {
            let id = format!("clip{k:02}");
            let (mut phones, mut words) = (Vec::new(), Vec::new());
            let mut t = 0.1;
            // A word adds at most 3 x 0.3 s: starting one before SECONDS - 1 keeps every label
            // inside the clip (labels past the audio's end are refused).
            while t < SECONDS - 1.0 {
                let word_start = t;
                for _ in 0..rng.gen_range(2..4) {
                    let len = rng.gen_range(0.12..0.3);
                    phones.push((t, t + len, RAW_PHONES[rng.gen_range(0..5)].to_string()));
                    t += len;
                }
                words.push((word_start, t, WORDS[rng.gen_range(0..3)].to_string()));
                t += 0.05;
            }
            let phone_tier = IntervalTier::from_spans("phones", 0.0, SECONDS, &phones);
            let grid = TextGrid {
                path: corpus_dir.join(format!("{id}.TextGrid")),
                xmin: 0.0,
                xmax: SECONDS,
                tiers: vec![
                    Tier::Intervals(IntervalTier::from_spans("words", 0.0, SECONDS, &words)),
                    Tier::Intervals(phone_tier.clone()),
                ],
            };
            grid.write(&grid.path).unwrap();
            let wav = corpus_dir.join(format!("{id}.wav"));
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 16000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&wav, spec).unwrap();
            for s in 0..(SECONDS * 16000.0) as usize {
                let t = s as f64 / 16000.0;
                let p = phones.iter().position(|(a, b, _)| *a <= t && t < *b);
                let f =
                    p.map_or(0.0, |i| 200.0 * (1 + RAW_PHONES.iter().position(|r| *r == phones[i].2).unwrap()) as f64);
                w.write_sample((8000.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16).unwrap();
            }
            w.finalize().unwrap();
            let mapped = PhoneSet::Arpabet39.map_tier(&phone_tier, &mut UnknownPhones::default());
            let n = (SECONDS / timing.hop_s) as usize;
            let labels = frame_labels(&mapped, &timing, n);
            let mut frames = Vec::with_capacity(n * D);
            for label in labels {
                let p = PHONES.iter().position(|q| *q == label);
                let signal: Vec<f32> = p.map_or(vec![0.0; D], |p| directions[p].iter().map(|v| 3.0 * v).collect());
                for s in signal {
                    // About N(0, 0.7): a sum of 4 uniforms, rescaled.
                    let noise: f32 = (0..4).map(|_| rng.gen::<f32>() - 0.5).sum::<f32>() * 0.7 * 1.73;
                    frames.push(noise + s);
                }
            }
            writer.append_item(ItemMeta::new(&id, &wav, SECONDS), &frames).unwrap();
            items.push(CorpusItem {
                id: id.clone(),
                audio: format!("{id}.wav").into(),
                transcript: words.iter().map(|w| w.2.clone()).collect::<Vec<_>>().join(" "),
                textgrid: Some(format!("{id}.TextGrid").into()),
                duration_s: SECONDS,
                split: Split::Train,
                speaker: "synth".into(),
                source: "test".into(),
            });
        }
        writer.finish().unwrap();
        let manifest = Manifest { name: "synthetic".into(), phone_set: PhoneSet::Raw, items };
        Corpus { root: corpus_dir.clone(), manifest }.save().unwrap();
        let enc = Tensor::from_slice(&directions.concat()).view([D_SAE as i64, D as i64]);
        let b_enc: Vec<f32> = (0..D_SAE).map(|u| if u < PHONES.len() { -1.5 } else { -2.5 }).collect();
        let cfg = SaeConfig { arch: Arch::Relu, d_in: D, d_sae: D_SAE, k: None, ..Default::default() };
        let sae = Sae {
            cfg,
            dec: enc.copy(),
            enc,
            b_enc: Tensor::from_slice(&b_enc),
            b_dec: Tensor::zeros([D as i64], (Kind::Float, tch::Device::Cpu)),
            threshold: Tensor::full([D_SAE as i64], -1.0, (Kind::Float, tch::Device::Cpu)),
        };
        save_sae(&sae_dir, &sae, &TrainConfig::default(), 1.0, None).unwrap();
        Fixture { store: store_dir, sae: sae_dir, corpus: corpus_dir }
    })
}

#[test]
fn a_good_plugin_loads_and_runs() {
    let f = fixture();
    let plugin = load(&workspace_plugins().join("libaudiosae_plugin_template.so")).unwrap();
    assert_eq!(plugin.info.name, "template");
    let labels = CorpusLabels::new(Corpus::open(f.corpus.to_str().unwrap()).unwrap(), PhoneSet::Arpabet39);
    let host = AnalysisHost::open(&f.store, std::slice::from_ref(&f.sae), Some(labels), tch::Device::Cpu, 80).unwrap();
    let report = plugin.run(&host, &[("top".to_string(), "3".to_string())].into()).unwrap();
    // Dead units counted here directly with the SAE.
    let store = StoreReader::open(&f.store).unwrap();
    let (sae, _) = load_sae(&f.sae, tch::Device::Cpu).unwrap();
    let codes = sae.encode(&store.gather(&(0..store.rows()).collect::<Vec<_>>()).to_tensor(tch::Device::Cpu));
    let fired = codes.gt(0.0).sum_dim_intlist(0, false, Kind::Int64);
    let dead = fired.eq(0).sum(Kind::Int64).int64_value(&[]);
    assert_eq!(report.summary["frames"], store.rows());
    assert_eq!(report.summary["dead_units"], dead);
    assert_eq!(report.table("top_units").unwrap().rows.len(), 3);
    let err = plugin.run(&host, &[("tpo".to_string(), "3".to_string())].into()).unwrap_err().to_string();
    assert!(err.contains("unknown parameter(s) tpo") && err.contains("libaudiosae_plugin_template.so"), "{err}");
}

#[test]
fn non_plugin_libraries_are_refused_cleanly() {
    let dir = tmp("not-plugins");
    let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a system libm");
    std::fs::copy(libm, dir.join("libm.so")).unwrap();
    std::fs::write(dir.join("notes.so"), "not a library").unwrap();
    let e = load(&dir.join("libm.so")).err().unwrap().to_string();
    assert!(e.contains("libm.so") && e.contains("not an audiosae plugin"), "{e}");
    let e = load(&dir.join("notes.so")).err().unwrap().to_string();
    assert!(e.contains("notes.so") && e.contains("cannot load it as a shared library"), "{e}");
    // `plugins list` warns about both and still succeeds.
    let out = audiosae(&["plugins", "list"], &dir);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("libm.so: not an audiosae plugin") && err.contains("notes.so: cannot load"), "{err}");
}

#[test]
fn plugins_built_against_another_api_are_refused() {
    let dir = tmp("mismatch");
    // Another API version: the same boundary, a bumped version number.
    let api_v999 = dir.join("api-v999");
    copy_dir(&api_dir(), &api_v999);
    edit(&api_v999.join("src/lib.rs"), "pub const API_VERSION: u32 = 1;", "pub const API_VERSION: u32 = 999;");
    let lib = build_template_copy(&dir.join("old"), "wrong-api-version", "wrong-version", &api_v999);
    let e = load(&lib).err().unwrap().to_string();
    assert!(e.contains("libwrong_api_version.so") && e.contains("plugin API version 999"), "{e}");
    // A changed boundary type without a version bump: caught by the layout hash.
    let api_edited = dir.join("api-edited");
    copy_dir(&api_dir(), &api_edited);
    edit(&api_edited.join("src/abi.rs"), "pub type Status = i32;", "pub type Status = i64;");
    let lib = build_template_copy(&dir.join("edited"), "wrong-layout", "wrong-layout", &api_edited);
    let e = load(&lib).err().unwrap().to_string();
    assert!(e.contains("libwrong_layout.so") && e.contains("layout hash"), "{e}");
    // `plugins list` names both and lists neither.
    let folder = dir.join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    for f in ["libwrong_api_version.so", "libwrong_layout.so"] {
        std::fs::copy(lib.with_file_name(f), folder.join(f)).unwrap();
    }
    let out = audiosae(&["plugins", "list"], &folder);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("wrong-"), "{stdout}");
    assert!(stderr.contains("libwrong_api_version.so: refused") && stderr.contains("libwrong_layout.so: refused"));
}

#[test]
fn a_copied_template_drops_in() {
    let dir = tmp("drop-in");
    let lib = build_template_copy(&dir.join("my-plugin"), "my-dropin-plugin", "my-dropin", &api_dir());
    let folder = dir.join("plugin-folder");
    std::fs::create_dir_all(&folder).unwrap();
    let dropped = folder.join(lib.file_name().unwrap());
    std::fs::copy(&lib, &dropped).unwrap();
    let out = audiosae(&["plugins", "list"], &folder);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("my-dropin ")).unwrap_or_else(|| panic!("not listed:\n{stdout}"));
    assert!(line.contains("0.1.0") && line.contains(&dropped.display().to_string()), "{line}");
    // And it runs by name.
    let f = fixture();
    let out_dir = dir.join("report");
    let (store, sae, out_s) = (f.store.to_str().unwrap(), f.sae.to_str().unwrap(), out_dir.to_str().unwrap());
    let out = audiosae(&["analyze", "--plugin", "my-dropin", "--sae", sae, "--store", store, "--out", out_s], &folder);
    assert!(out.status.success());
    assert!(out_dir.join("top_units.csv").exists());
}

fn analyze(plugin: &str, out: &Path, params: &[&str]) -> serde_json::Value {
    let f = fixture();
    let (store, sae, corpus) = (f.store.to_str().unwrap(), f.sae.to_str().unwrap(), f.corpus.to_str().unwrap());
    let mut args = vec!["analyze", "--plugin", plugin, "--sae", sae, "--store", store, "--labels", corpus];
    args.extend(["--out", out.to_str().unwrap()]);
    for p in params {
        args.extend(["--param", p]);
    }
    let o = audiosae(&args, &workspace_plugins());
    assert!(o.status.success(), "audiosae analyze --plugin {plugin} failed");
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn csv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| l.split(',').map(String::from).collect()).collect()
}

#[test]
fn selectivity_finds_the_planted_phone_units_and_beats_the_baselines() {
    let out = tmp("selectivity");
    let report = analyze("selectivity", &out, &["min_frames=5"]);
    let s = &report["summary"];
    assert_eq!(s["frames"], ITEMS * 50);
    assert_eq!(s["phones"]["sae_beats_baselines"], true, "{s:#}");
    for rep in ["sae", "raw_dims", "random_dirs"] {
        assert!(s["phones"]["representations"][rep]["fraction_selective"].is_number(), "{rep}");
    }
    let rows = csv(&out.join("best_class.csv"));
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    for (u, phone) in PHONES.iter().enumerate() {
        let r = rows
            .iter()
            .find(|r| {
                r[col("representation")] == "sae" && r[col("unit")] == u.to_string() && r[col("tier")] == "phones"
            })
            .unwrap();
        assert_eq!(r[col("best_class")], *phone, "unit {u}");
        assert!(r[col("f1")].parse::<f64>().unwrap() > 0.8, "unit {u}: {r:?}");
        assert!(r[col("auroc")].parse::<f64>().unwrap() > 0.95, "unit {u}: {r:?}");
    }
    // Words were lowercased; the word tier has its own classes.
    let words = csv(&out.join("sae_unit_class.csv"));
    assert!(words.iter().any(|r| r[1] == "words" && r[2] == "alpha"));
    for f in ["unit_phone_f1.png", "best_f1_phones.png", "best_f1_words.png"] {
        assert_eq!(&std::fs::read(out.join(f)).unwrap()[1..4], b"PNG", "{f}");
    }
}

#[test]
fn monosemanticity_reports_pure_units_and_unit_cards() {
    let out = tmp("monosemanticity");
    let report = analyze("monosemanticity", &out, &["top_n=10", "cards=3", "card_frames=2"]);
    assert_eq!(report["summary"]["frames"], ITEMS * 50);
    let rows = csv(&out.join("units.csv"));
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    for (u, phone) in PHONES.iter().enumerate() {
        let r = &rows[u + 1];
        assert_eq!(r[col("top_phones")], *phone, "unit {u}");
        assert!(r[col("phones_purity")].parse::<f64>().unwrap() >= 0.9, "unit {u}: {r:?}");
        assert!(r[col("density")].parse::<f64>().unwrap() > 0.05, "unit {u}: {r:?}");
    }
    let top = csv(&out.join("top_frames.csv"));
    assert_eq!(top.iter().filter(|r| r[0] == "0").count(), 10);
    let cards = std::fs::read_to_string(out.join("unit_cards.html")).unwrap();
    assert_eq!(cards.matches("class=\"card\"").count(), 3);
    assert_eq!(cards.matches("<img alt=\"log-mel\" src=\"data:image/png;base64,").count(), 6);
    assert!(cards.contains("<audio controls") && cards.contains(".wav#t="));
    assert!(out.join("distribution.png").exists() && out.join("distribution.csv").exists());
}

/// `--labels` naming a corpus that matches no store item (by id or audio file) is an error, not
/// an analysis on zero labelled frames.
#[test]
fn labels_that_match_no_store_item_are_refused() {
    let f = fixture();
    let dir = tmp("unmatched-labels");
    let mut corpus = Corpus::open(f.corpus.to_str().unwrap()).unwrap();
    for item in &mut corpus.manifest.items {
        for file in [item.audio.clone(), item.textgrid.clone().unwrap()] {
            std::fs::copy(f.corpus.join(&file), dir.join(&file)).unwrap();
        }
        item.id = format!("other-{}", item.id);
    }
    corpus.root = dir.clone();
    let labels = CorpusLabels::new(corpus, PhoneSet::Arpabet39);
    let e = match AnalysisHost::open(&f.store, std::slice::from_ref(&f.sae), Some(labels), tch::Device::Cpu, 80) {
        Ok(_) => panic!("labels matching no item were accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("none of the") && e.contains(&dir.display().to_string()), "{e}");
}

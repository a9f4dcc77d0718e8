//! The output policy, command by command: a folder that holds someone's files (or an earlier
//! result) is never written over without `--force`; the error names the folder and the flag; a
//! run that a command can resume (a store, a sweep, the demo corpus) is resumed, not refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("audiosae-output-policy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn audiosae(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_audiosae")).args(args).output().unwrap();
    eprintln!("$ audiosae {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

/// A folder holding a file of the user's.
fn users_folder(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cfg.json"), "{\"mine\": true}").unwrap();
    dir
}

/// The command failed, named `dir` and `--force`, and left the user's file alone.
fn assert_refused(out: &Output, dir: &Path, file: &str, original: &[u8]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "wrote into {}", dir.display());
    assert!(stderr.contains(s(dir)) && stderr.contains("--force") && !stderr.contains("panicked"), "{stderr}");
    assert_eq!(std::fs::read(dir.join(file)).unwrap(), original, "{file} was changed");
}

const MINE: &[u8] = b"{\"mine\": true}";
const TRAIN: [&str; 12] = [
    "train",
    "--synthetic",
    "16:32:3:3000",
    "--arch",
    "topk",
    "--d-sae",
    "32",
    "--k",
    "3",
    "--steps",
    "30",
    "--no-progress",
];

#[test]
fn train_export_and_eval_never_replace_without_force() {
    let root = tmp("sae");
    let users = users_folder(&root, "users");
    assert_refused(&audiosae(&[&TRAIN[..], &["--out", s(&users)]].concat()), &users, "cfg.json", MINE);

    // A trained SAE is a result: training over it again needs --force (or --resume).
    let sae = root.join("sae");
    assert!(audiosae(&[&TRAIN[..], &["--out", s(&sae), "--eval"]].concat()).status.success());
    let weights = std::fs::read(sae.join("sae_weights.safetensors")).unwrap();
    assert_refused(&audiosae(&[&TRAIN[..], &["--out", s(&sae)]].concat()), &sae, "sae_weights.safetensors", &weights);

    // Export: never onto its own input, not into a user's folder, and into a new one.
    let out = audiosae(&["export", s(&sae), "-o", s(&sae), "--force"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("both the input and the output"));
    assert_eq!(std::fs::read(sae.join("sae_weights.safetensors")).unwrap(), weights);
    assert_refused(&audiosae(&["export", s(&sae), "-o", s(&users)]), &users, "cfg.json", MINE);
    assert!(audiosae(&["export", s(&sae), "-o", s(&root.join("exported"))]).status.success());

    // Eval's default folder SAE/eval holds train --eval's results.
    let eval_json = std::fs::read(sae.join("eval/eval.json")).unwrap();
    let eval = ["eval", s(&sae), "--synthetic", "16:32:3:3000"];
    assert_refused(&audiosae(&eval), &sae.join("eval"), "eval.json", &eval_json);
    assert!(audiosae(&[&eval[..], &["--out", s(&root.join("eval2"))]].concat()).status.success());
    assert!(audiosae(&[&eval[..], &["--force"]].concat()).status.success());

    assert!(audiosae(&[&TRAIN[..], &["--out", s(&users), "--force"]].concat()).status.success());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn sweep_resumes_its_own_folder_and_refuses_others() {
    let root = tmp("sweep");
    let users = users_folder(&root, "users");
    let sweep = |out: &Path| {
        audiosae(&[
            "sweep",
            "--synthetic",
            "16:32:3:3000",
            "--arch",
            "topk",
            "--widths",
            "32",
            "--ks",
            "3",
            "--steps",
            "20",
            "--max-eval-frames",
            "1000",
            "--out",
            s(out),
        ])
    };
    assert_refused(&sweep(&users), &users, "cfg.json", MINE);
    let out = root.join("sweep");
    assert!(sweep(&out).status.success());
    let rerun = sweep(&out);
    assert!(rerun.status.success() && String::from_utf8_lossy(&rerun.stderr).contains("done already"));
    std::fs::remove_dir_all(root).unwrap();
}

/// These refuse before they load a model, a plugin or a corpus, so the inputs need not exist.
#[test]
fn analyze_extract_merge_and_corpus_refuse_a_users_folder() {
    let root = tmp("others");
    let users = users_folder(&root, "users");
    let missing = root.join("missing");
    let missing = s(&missing);
    let cases: [&[&str]; 5] = [
        &["analyze", "--plugin", "selectivity", "--sae", missing, "--store", missing, "--out", s(&users)],
        &["extract", "--model", missing, "--corpus", missing, "--out", s(&users)],
        &["extract-text", "--model", missing, "--corpus", missing, "--out", s(&users)],
        &["store", "merge", s(&users), missing],
        &["corpus", "demo", "--minutes", "1", "--out", s(&users)],
    ];
    for args in cases {
        assert_refused(&audiosae(args), &users, "cfg.json", MINE);
    }
    // A file where a folder is expected is refused even with --force.
    let file = users.join("cfg.json");
    let out =
        audiosae(&["analyze", "--plugin", "x", "--sae", missing, "--store", missing, "--out", s(&file), "--force"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("is a file"));
    assert_eq!(std::fs::read(&file).unwrap(), MINE);
    std::fs::remove_dir_all(root).unwrap();
}

/// Numbers are checked by the argument parser, which names the flag and the allowed range.
#[test]
fn training_numbers_are_validated_at_the_edge() {
    let root = tmp("numbers");
    let out = root.join("sae");
    for (flag, value) in [
        ("--lr", "-0.001"),
        ("--lr", "nan"),
        ("--l1-coef", "-5"),
        ("--test-frac", "2"),
        ("--batch-size", "0"),
        ("--device", "gpu7"),
    ] {
        let arg = format!("{flag}={value}");
        let o = audiosae(&[&TRAIN[..], &[&arg, "--out", s(&out)]].concat());
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{arg}: {stderr}");
        assert!(stderr.contains(flag) && !stderr.contains("panicked"), "{arg}: {stderr}");
        assert!(!out.join("sae_weights.safetensors").exists(), "{arg} trained");
    }
    std::fs::remove_dir_all(root).unwrap();
}

//! The output policy of every command that writes a folder: it writes into a folder that is new,
//! empty, or an earlier run of its own that it resumes. Anything else there (a user's files,
//! another command's result, a finished result it would replace) is refused unless the user
//! passes `--force`, and the error names the folder, what is in it and the flag.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What a command may find in its output folder besides nothing.
pub struct OutputDir<'a> {
    pub path: &'a Path,
    /// What the command writes there, for messages ("an SAE", "a plugin report").
    pub what: &'a str,
    /// `--force` was given: write into a non-empty folder, replacing the files the command writes.
    pub force: bool,
    /// True for a folder the command resumes or extends (an interrupted store, a sweep).
    pub resumable: &'a dyn Fn(&Path) -> bool,
    /// The other way out, when there is one (e.g. "or --resume to continue its training").
    pub alternative: &'a str,
}

/// Never resumable.
fn fresh_only(_: &Path) -> bool {
    false
}

impl<'a> OutputDir<'a> {
    /// A folder the command does not resume, with no other way out than `--force`; set
    /// `resumable` or `alternative` on the result where the command has them.
    pub fn new(path: &'a Path, what: &'a str, force: bool) -> Self {
        OutputDir { path, what, force, resumable: &fresh_only, alternative: "" }
    }

    /// Checks the folder against the policy and creates it when missing.
    pub fn claim(&self) -> Result<()> {
        let path = self.path;
        if path.exists() && !path.is_dir() {
            bail!("{} is a file, not a folder; give a folder to write {} into", path.display(), self.what);
        }
        if !path.exists() {
            return std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()));
        }
        let entries = first_entries(path, 4)?;
        if entries.is_empty() || (self.resumable)(path) {
            return Ok(());
        }
        if self.force {
            eprintln!("warning: writing {} into {}, which is not empty (--force)", self.what, path.display());
            return Ok(());
        }
        let shown: Vec<String> = entries.iter().take(3).map(|e| e.display().to_string()).collect();
        let more = if entries.len() > 3 { ", ..." } else { "" };
        bail!(
            "{} already holds files ({}{more}); writing {} there would replace them. Choose a new folder{}, \
             or pass --force to write over it",
            path.display(),
            shown.join(", "),
            self.what,
            self.alternative
        )
    }
}

/// Up to `n` entry names of `dir`, sorted.
fn first_entries(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| PathBuf::from(e.file_name())))
        .take(n)
        .collect();
    names.sort();
    Ok(names)
}

/// Refuses to write `output` when it is `input` itself (after resolving links and `..`).
pub fn refuse_in_place(input: &Path, output: &Path, what: &str) -> Result<()> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            bail!("{} is both the input and the output: writing {what} would rewrite its own input; choose another folder", output.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("audiosae-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn claim(path: &Path, force: bool, resumable: &dyn Fn(&Path) -> bool) -> Result<()> {
        OutputDir { path, what: "a result", force, resumable, alternative: "" }.claim()
    }

    #[test]
    fn new_and_empty_folders_are_taken_others_need_force_or_resume() {
        let d = dir("policy");
        claim(&d, false, &fresh_only).unwrap();
        assert!(d.is_dir());
        claim(&d, false, &fresh_only).unwrap();
        std::fs::write(d.join("mine.txt"), "user data").unwrap();
        let e = claim(&d, false, &fresh_only).unwrap_err().to_string();
        assert!(e.contains(&d.display().to_string()) && e.contains("mine.txt") && e.contains("--force"), "{e}");
        claim(&d, true, &fresh_only).unwrap();
        claim(&d, false, &|p: &Path| p.join("mine.txt").exists()).unwrap();
        let file = d.join("mine.txt");
        let e = claim(&file, true, &fresh_only).unwrap_err().to_string();
        assert!(e.contains("is a file"), "{e}");
        assert!(refuse_in_place(&d, &d.join("."), "x").is_err());
        assert!(refuse_in_place(&d, &file, "x").is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }
}

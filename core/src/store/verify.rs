//! `audiosae store verify`: every check a store can fail, with one message per problem.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::files::{is_shard_file_name, sha256_file, TMP_SUFFIX};
use super::manifest::{Manifest, ShardEntry, StoreConfig};
use super::npy_header::read_npy_header;

/// What `verify` found.
#[derive(Debug)]
pub struct VerifyReport {
    /// One line per problem, naming the file or item; empty for a sound store.
    pub problems: Vec<String>,
    pub shards: usize,
    pub items: usize,
    pub rows: usize,
    pub bytes: u64,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks shard files (presence, size, `.npy` header, row count, sha256), item ranges (contiguous
/// from row 0, no overlap or gap, slices consistent, unique ids), that no rows are left uncommitted
/// and that the writer finished. Fails only if the manifest cannot be read.
pub fn verify(dir: &Path, progress: bool) -> Result<VerifyReport> {
    let m = Manifest::load_unchecked(dir)?;
    let mut problems = Vec::new();
    let bar = if progress { ProgressBar::new(m.bytes()) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("verify {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("static template"),
    );
    for shard in &m.shards {
        if let Err(e) = check_shard(dir, shard, &m.config, &bar) {
            problems.push(e);
        }
    }
    bar.finish_and_clear();
    problems.extend(m.layout_problems());
    let shard_rows = m.shard_rows_total();
    if m.committed_rows() < shard_rows {
        problems.push(format!(
            "rows {}..{shard_rows} belong to no item (an interrupted write: rerun the writer to resume)",
            m.committed_rows()
        ));
    }
    if !m.finished {
        problems.push("the store is not finished (its writer is running or was interrupted)".into());
    }
    problems.extend(stray_files(dir, &m));
    Ok(VerifyReport {
        problems,
        shards: m.shards.len(),
        items: m.items.len(),
        rows: m.committed_rows(),
        bytes: m.bytes(),
    })
}

fn check_shard(dir: &Path, s: &ShardEntry, c: &StoreConfig, bar: &ProgressBar) -> Result<(), String> {
    let path = dir.join(&s.file);
    let name = path.display();
    let len = fs::metadata(&path).map_err(|e| format!("{name}: {e}"))?.len();
    if len != s.bytes {
        bar.inc(s.bytes);
        return Err(format!("{name}: {len} bytes, the manifest says {} (truncated or overwritten)", s.bytes));
    }
    let header = read_npy_header(&path).map_err(|e| format!("{name}: {e:#}"))?;
    if header.descr != c.dtype.npy_descr() || header.fortran_order || header.shape != [s.rows, c.d] {
        bar.inc(s.bytes);
        return Err(format!(
            "{name}: header says {} {:?} fortran_order={}, the manifest {} [{}, {}]",
            header.descr,
            header.shape,
            header.fortran_order,
            c.dtype.npy_descr(),
            s.rows,
            c.d
        ));
    }
    // The row count is the manifest's: the sum is checked so a lying one cannot overflow.
    let expected = s.rows.checked_mul(c.row_bytes()).and_then(|b| b.checked_add(header.data_offset));
    if expected != Some(len as usize) {
        bar.inc(s.bytes);
        return Err(match expected {
            Some(expected) => format!("{name}: {len} bytes, its header implies {expected}"),
            None => format!("{name}: its header's shape {:?} is larger than memory can address", header.shape),
        });
    }
    let sha = sha256_file(&path, |n| bar.inc(n)).map_err(|e| format!("{e:#}"))?;
    if sha != s.sha256 {
        return Err(format!("{name}: sha256 {sha} differs from the manifest's {} (corrupted)", s.sha256));
    }
    Ok(())
}

/// Files a finished writer would have removed: temp files and unlisted shards.
fn stray_files(dir: &Path, m: &Manifest) -> Vec<String> {
    let listed: HashSet<&str> = m.shards.iter().map(|s| s.file.as_str()).collect();
    let Ok(entries) = fs::read_dir(dir) else {
        return vec![format!("{}: cannot list the directory", dir.display())];
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(TMP_SUFFIX) || (is_shard_file_name(n) && !listed.contains(n.as_str())))
        .map(|n| format!("{}: left over from an interrupted write (not in the manifest)", dir.join(n).display()))
        .collect()
}

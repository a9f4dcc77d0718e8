//! File-level helpers of the store: names, atomic writes (temp + fsync + rename + directory
//! fsync) and sha256 checksums.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Suffix of files being written; a crash can leave them behind, a resume deletes them.
pub const TMP_SUFFIX: &str = ".tmp";

/// Shard file names carry a unique, ever-increasing number (not the shard's position), so a
/// rewritten last shard never overwrites the file the durable manifest still points to.
pub fn shard_file_name(file_id: u64) -> String {
    format!("shard-{file_id:06}.npy")
}

pub fn is_shard_file_name(name: &str) -> bool {
    name.strip_prefix("shard-").and_then(|s| s.strip_suffix(".npy")).is_some_and(|n| n.parse::<u64>().is_ok())
}

/// Writes `parts` to `dir/name` atomically; returns the byte count and the lowercase hex sha256.
pub fn write_atomic(dir: &Path, name: &str, parts: &[&[u8]]) -> Result<(u64, String)> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let path = dir.join(name);
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        for part in parts {
            f.write_all(part).with_context(|| format!("writing {}", tmp.display()))?;
            hasher.update(part);
            bytes += part.len() as u64;
        }
        f.sync_all().with_context(|| format!("fsync of {}", tmp.display()))?;
    }
    fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    sync_dir(dir)?;
    Ok((bytes, hex(&hasher.finalize())))
}

/// Makes renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync of directory {}", dir.display()))
}

/// sha256 of a whole file; `progress` gets the byte count of each chunk read.
pub fn sha256_file(path: &Path, mut progress: impl FnMut(u64)) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        progress(n as u64);
    }
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

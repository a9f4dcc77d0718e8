//! Resolves a `--model` argument to a local directory: either a path, or a Hugging Face repo id
//! (`org/name` or `org/name@revision`) found in the local hub cache (`HF_HUB_CACHE`, or
//! `HF_HOME/hub`, or `~/.cache/huggingface/hub`). Missing files are downloaded only when
//! `HF_HUB_OFFLINE` is not set to 1 and the hub is reachable.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use hf_hub::{Cache, Repo, RepoType};

/// Files a model directory may contain; fetched from the hub cache when present.
const MODEL_FILES: &[&str] = &[
    "config.json",
    "preprocessor_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model.bin",
    "vocabulary.txt",
];

pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn hub_cache() -> Cache {
    if let Ok(dir) = std::env::var("HF_HUB_CACHE") {
        return Cache::new(PathBuf::from(dir));
    }
    Cache::from_env()
}

/// Returns a directory holding the model's files.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        bail!("{spec}: is a file; --model takes a checkpoint directory or a Hugging Face repo id");
    }
    let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    if id.split('/').count() != 2 || id.starts_with('.') || id.starts_with('/') {
        bail!("{spec}: no such directory, and not a Hugging Face repo id (org/name)");
    }
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string());
    let cached = hub_cache().repo(repo.clone());
    let mut dir = None;
    if let Some(cfg) = cached.get("config.json").or_else(|| cached.get("model.bin")) {
        dir = cfg.parent().map(Path::to_path_buf);
    }
    if dir.is_none() && !offline() {
        dir = download(&repo)?;
    }
    let Some(dir) = dir else {
        bail!(
            "{spec}: not found in the Hugging Face cache ({}). Download it on a machine with \
             internet access (`huggingface-cli download {id}`) and copy the cache, or pass a \
             local directory",
            hub_cache().path().display()
        )
    };
    // Sharded checkpoints: make sure every shard is in the snapshot directory.
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index)?)?;
        if let Some(map) = json.get("weight_map").and_then(|m| m.as_object()) {
            for shard in map.values().filter_map(|v| v.as_str()) {
                if !dir.join(shard).exists() {
                    bail!("{spec}: shard {shard} is missing from the cache snapshot {}", dir.display());
                }
            }
        }
    }
    Ok(dir)
}

/// Downloads the model files into the hub cache (online mode only).
fn download(repo: &Repo) -> Result<Option<PathBuf>> {
    let api = match hf_hub::api::sync::ApiBuilder::from_cache(hub_cache()).with_progress(true).build() {
        Ok(api) => api.repo(repo.clone()),
        Err(_) => return Ok(None),
    };
    let mut dir = None;
    for file in MODEL_FILES {
        if let Ok(p) = api.get(file) {
            dir = p.parent().map(Path::to_path_buf);
        }
    }
    if let Some(d) = &dir {
        let index = d.join("model.safetensors.index.json");
        if index.exists() {
            let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index)?)?;
            let mut shards: Vec<&str> =
                json["weight_map"].as_object().into_iter().flatten().filter_map(|(_, v)| v.as_str()).collect();
            shards.sort();
            shards.dedup();
            for s in shards {
                api.get(s)?;
            }
        }
    }
    Ok(dir)
}

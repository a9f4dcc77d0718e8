//! Checkpoint tensors by name, loaded from safetensors (single file or sharded with an index)
//! or from a CTranslate2 `model.bin`, with shape checks that name the file and the tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

/// Tensors of one checkpoint, keyed by their canonical (model-file) names.
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    /// Where they came from, for error messages.
    source: PathBuf,
    device: Device,
    kind: Kind,
}

impl Weights {
    pub fn new(tensors: HashMap<String, Tensor>, source: PathBuf, device: Device, kind: Kind) -> Self {
        Weights { tensors, source, device, kind }
    }

    /// Loads `model.safetensors`, or every shard named in `model.safetensors.index.json`, or
    /// else every `*.safetensors` file in `dir`. `rename` maps a checkpoint key to its canonical
    /// name; keys mapped to `None` are not loaded at all.
    pub fn from_safetensors_dir(
        dir: &Path,
        rename: impl Fn(&str) -> Option<String>,
        device: Device,
        kind: Kind,
    ) -> Result<Self> {
        let files = safetensors_files(dir)?;
        let mut tensors = HashMap::new();
        for file in &files {
            let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            // SAFETY: the file is opened read-only and is not expected to change while loading.
            let mmap = unsafe { memmap2::Mmap::map(&f) }.with_context(|| format!("mapping {}", file.display()))?;
            let st = safetensors::SafeTensors::deserialize(&mmap)
                .with_context(|| format!("{}: not a valid safetensors file", file.display()))?;
            for (key, view) in st.tensors() {
                let Some(name) = rename(&key) else { continue };
                let t = view_to_tensor(&view).with_context(|| format!("{}: tensor {key}", file.display()))?;
                let t = convert(t, device, kind);
                if tensors.insert(name.clone(), t).is_some() {
                    bail!("{}: two checkpoint keys map to {name}", dir.display());
                }
            }
        }
        Ok(Weights { tensors, source: dir.to_path_buf(), device, kind })
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Names that start with `prefix`, sorted.
    pub fn names_with_prefix(&self, prefix: &str) -> Vec<&str> {
        let mut v: Vec<&str> = self.tensors.keys().filter(|k| k.starts_with(prefix)).map(|k| k.as_str()).collect();
        v.sort();
        v
    }

    /// The tensor `name`, which must have `shape`.
    pub fn get(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self.get_any(name)?;
        if t.size() != shape {
            bail!(
                "{}: tensor {name} has shape {:?} but the config implies {:?}: the checkpoint does not match its config.json",
                self.source.display(),
                t.size(),
                shape
            );
        }
        Ok(t)
    }

    /// The tensor `name`, any shape.
    pub fn get_any(&self, name: &str) -> Result<Tensor> {
        match self.tensors.get(name) {
            Some(t) => Ok(t.shallow_clone()),
            None => {
                let parent = name.rsplit_once('.').map_or("", |p| p.0);
                let near = self.names_with_prefix(parent);
                let hint = if near.is_empty() {
                    String::new()
                } else {
                    format!(" (it has {})", near[..near.len().min(4)].join(", "))
                };
                bail!("{}: checkpoint has no tensor {name}{hint}", self.source.display())
            }
        }
    }

    pub fn get_opt(&self, name: &str) -> Option<Tensor> {
        self.tensors.get(name).map(|t| t.shallow_clone())
    }
}

/// Moves a loaded tensor to the target device; floating tensors also take the target dtype.
pub fn convert(t: Tensor, device: Device, kind: Kind) -> Tensor {
    let t = if t.is_floating_point() { t.to_kind(kind) } else { t };
    t.to_device(device)
}

fn view_to_tensor(view: &safetensors::tensor::TensorView<'_>) -> Result<Tensor> {
    use safetensors::Dtype;
    let kind = match view.dtype() {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        other => bail!("unsupported dtype {other:?}"),
    };
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    Ok(Tensor::f_from_data_size(view.data(), &shape, kind)?)
}

/// The safetensors files of a checkpoint directory, index first.
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index)?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", index.display()))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .with_context(|| format!("{}: no weight_map", index.display()))?;
        let shards: BTreeMap<&str, ()> = map.values().filter_map(|v| v.as_str()).map(|s| (s, ())).collect();
        let files: Vec<PathBuf> = shards.keys().map(|s| dir.join(s)).collect();
        for f in &files {
            if !f.exists() {
                bail!("{}: shard {} is listed in the index but missing", dir.display(), f.display());
            }
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no model.safetensors, shard index or *.safetensors file", dir.display());
    }
    Ok(files)
}

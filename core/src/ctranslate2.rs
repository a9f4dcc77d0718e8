//! Reader for CTranslate2 `model.bin` files (the format of faster-whisper checkpoints).
//!
//! Layout (little-endian, binary version 6 as written by ctranslate2 4.x): u32 version; for
//! version >= 2 a string spec name and u32 spec revision; u32 variable count; per variable a
//! string name, u8 rank, rank x u32 dims, then (version >= 4) u8 dtype and u32 byte count, or
//! (older) u8 item size and u32 item count, then the raw data; for version >= 3, u32 alias count
//! and (alias, target) string pairs. Strings are a u16 length followed by that many bytes, the
//! last of which is NUL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use tch::{Kind, Tensor};

/// One stored variable, still in its on-disk form.
pub struct Variable {
    pub shape: Vec<i64>,
    pub kind: Kind,
    data: std::ops::Range<usize>,
}

/// A parsed `model.bin`: variables by name, aliases resolved.
pub struct Ct2Model {
    pub path: PathBuf,
    pub spec: String,
    pub revision: u32,
    mmap: memmap2::Mmap,
    variables: HashMap<String, Variable>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        ensure!(
            n <= self.buf.len().saturating_sub(self.pos),
            "{}: truncated CTranslate2 model (needs {} bytes at offset {}, file has {})",
            self.path.display(),
            n,
            self.pos,
            self.buf.len()
        );
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let raw = self.bytes(n)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        Ok(String::from_utf8_lossy(raw).into_owned())
    }
}

/// CTranslate2's `DataType` enum.
fn kind_of(code: u8, path: &Path, name: &str) -> Result<Kind> {
    Ok(match code {
        0 => Kind::Float,
        1 => Kind::Int8,
        2 => Kind::Int16,
        3 => Kind::Int,
        4 => Kind::Half,
        5 => Kind::BFloat16,
        other => bail!("{}: variable {name} has unknown CTranslate2 dtype code {other}", path.display()),
    })
}

impl Ct2Model {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: read-only mapping of a model file that is not modified while in use.
        let mmap = unsafe { memmap2::Mmap::map(&file) }?;
        let mut r = Reader { buf: &mmap, pos: 0, path };
        let version = r.u32()?;
        ensure!(
            (1..=6).contains(&version),
            "{}: not a CTranslate2 model.bin (binary version {version})",
            path.display()
        );
        let (spec, revision) = if version >= 2 { (r.string()?, r.u32()?) } else { (String::new(), 1) };
        let count = r.u32()? as usize;
        // The count comes from the file: reserve no more than the bytes left could describe (a
        // variable record takes at least 8 bytes), so a lying header cannot demand gigabytes.
        let mut variables = HashMap::with_capacity(count.min(r.buf.len().saturating_sub(r.pos) / 8));
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()? as usize;
            let shape = (0..rank).map(|_| r.u32().map(i64::from)).collect::<Result<Vec<_>>>()?;
            let (kind, n_bytes) = if version >= 4 {
                let kind = kind_of(r.u8()?, path, &name)?;
                (kind, r.u32()? as usize)
            } else {
                let item = r.u8()? as usize;
                let n = r.u32()? as usize;
                let kind = match item {
                    4 => Kind::Float,
                    2 => Kind::Int16,
                    1 => Kind::Int8,
                    _ => bail!("{}: variable {name} has item size {item}", path.display()),
                };
                (kind, item * n)
            };
            let declared = shape
                .iter()
                .try_fold(kind.elt_size_in_bytes(), |acc, &d| acc.checked_mul(d as usize))
                .with_context(|| format!("{}: variable {name} has shape {shape:?}, too large", path.display()))?;
            ensure!(
                declared == n_bytes,
                "{}: variable {name} declares shape {shape:?} but holds {n_bytes} bytes",
                path.display()
            );
            let start = r.pos;
            r.bytes(n_bytes)?;
            variables.insert(name, Variable { shape, kind, data: start..start + n_bytes });
        }
        if version >= 3 {
            let n_alias = r.u32()?;
            for _ in 0..n_alias {
                let alias = r.string()?;
                let target = r.string()?;
                if let Some(v) = variables.get(&target) {
                    let v = Variable { shape: v.shape.clone(), kind: v.kind, data: v.data.clone() };
                    variables.insert(alias, v);
                }
            }
        }
        Ok(Ct2Model { path: path.to_path_buf(), spec, revision, mmap, variables })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variables.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.variables.contains_key(name)
    }

    /// The variable as a CPU tensor in its stored dtype.
    pub fn raw(&self, name: &str) -> Result<Tensor> {
        let v = self
            .variables
            .get(name)
            .with_context(|| format!("{}: CTranslate2 model has no variable {name}", self.path.display()))?;
        Ok(Tensor::f_from_data_size(&self.mmap[v.data.clone()], &v.shape, v.kind)?)
    }

    /// The variable as f32, dequantising int8/int16 weights with their `weight_scale`
    /// (CTranslate2 stores `round(w * scale)`, per output row for int8).
    pub fn float(&self, name: &str) -> Result<Tensor> {
        let t = self.raw(name)?;
        match t.kind() {
            Kind::Int8 | Kind::Int16 => {
                let scale_name = format!("{}_scale", name);
                let scale = self.raw(&scale_name)?.to_kind(Kind::Float);
                let scale = if scale.dim() == 1 { scale.unsqueeze(1) } else { scale };
                t.to_kind(Kind::Float).f_div(&scale).with_context(|| {
                    format!(
                        "{}: {scale_name} {:?} does not scale {name} {:?}",
                        self.path.display(),
                        scale.size(),
                        t.size()
                    )
                })
            }
            _ => Ok(t.to_kind(Kind::Float)),
        }
    }

    /// An integer scalar such as `encoder/num_heads`.
    pub fn scalar_i64(&self, name: &str) -> Option<i64> {
        let t = self.raw(name).ok().filter(|t| t.numel() == 1)?;
        t.to_kind(Kind::Int64).reshape([-1]).f_int64_value(&[0]).ok()
    }
}

/// Splits the fused projection `{prefix}/weight` `[n*d, d]` and `{prefix}/bias` `[n*d]` into
/// `n` `(weight, bias)` pairs of `[d, d]` and `[d]`. The shapes come from the file, so they are
/// checked before anything is split or indexed.
fn split_fused(model: &Ct2Model, prefix: &str, n: i64) -> Result<Vec<(Tensor, Tensor)>> {
    let w = model.float(&format!("{prefix}/weight"))?;
    let b = model.float(&format!("{prefix}/bias"))?;
    let (w_shape, b_shape) = (w.size(), b.size());
    let d = if w_shape.len() == 2 { w_shape[1] } else { 0 };
    ensure!(
        d > 0 && w_shape[0] == n * d && b_shape == [n * d],
        "{}: fused projection {prefix} is {w_shape:?} with bias {b_shape:?}, not [{n}d, d] and [{n}d]",
        model.path.display()
    );
    Ok(w.split(d, 0).into_iter().zip(b.split(d, 0)).map(|(w, b)| (w.contiguous(), b.contiguous())).collect())
}

/// Whisper's key projections have no bias: CTranslate2 stores zeros in the fused one.
fn ensure_zero_key_bias(model: &Ct2Model, prefix: &str, bias: &Tensor) -> Result<()> {
    ensure!(
        bias.abs().max().double_value(&[]) == 0.0,
        "{}: {prefix} has a non-zero key bias, which Whisper does not have",
        model.path.display()
    );
    Ok(())
}

/// Copies `(CTranslate2 name, canonical name)` pairs, `{src}` and `{dst}` prefixed.
fn copy_all(
    model: &Ct2Model,
    out: &mut HashMap<String, Tensor>,
    src: &str,
    dst: &str,
    pairs: &[(&str, &str)],
) -> Result<()> {
    for (s, d) in pairs {
        out.insert(format!("{dst}{d}"), model.float(&format!("{src}{s}"))?);
    }
    Ok(())
}

/// The pre-LN MLP of a layer, the same in encoder and decoder.
const FFN: [(&str, &str); 6] = [
    ("ffn/layer_norm/gamma", "final_layer_norm.weight"),
    ("ffn/layer_norm/beta", "final_layer_norm.bias"),
    ("ffn/linear_0/weight", "fc1.weight"),
    ("ffn/linear_0/bias", "fc1.bias"),
    ("ffn/linear_1/weight", "fc2.weight"),
    ("ffn/linear_1/bias", "fc2.bias"),
];

/// Self-attention with fused QKV (`self_attention/linear_0`) into `{dst}self_attn.*`.
fn self_attention(model: &Ct2Model, out: &mut HashMap<String, Tensor>, src: &str, dst: &str) -> Result<()> {
    let mut qkv = split_fused(model, &format!("{src}self_attention/linear_0"), 3)?.into_iter();
    let (q, k, v) = (qkv.next().unwrap(), qkv.next().unwrap(), qkv.next().unwrap());
    ensure_zero_key_bias(model, &format!("{src}self_attention/linear_0"), &k.1)?;
    for (name, t) in [
        ("q_proj.weight", q.0),
        ("q_proj.bias", q.1),
        ("k_proj.weight", k.0),
        ("v_proj.weight", v.0),
        ("v_proj.bias", v.1),
    ] {
        out.insert(format!("{dst}self_attn.{name}"), t);
    }
    copy_all(
        model,
        out,
        src,
        dst,
        &[
            ("self_attention/linear_1/weight", "self_attn.out_proj.weight"),
            ("self_attention/linear_1/bias", "self_attn.out_proj.bias"),
            ("self_attention/layer_norm/gamma", "self_attn_layer_norm.weight"),
            ("self_attention/layer_norm/beta", "self_attn_layer_norm.bias"),
        ],
    )
}

fn count_layers(model: &Ct2Model, stack: &str) -> usize {
    (0..).take_while(|i| model.contains(&format!("{stack}/layer_{i}/self_attention/linear_0/weight"))).count()
}

fn ensure_whisper(model: &Ct2Model) -> Result<()> {
    ensure!(
        model.spec.is_empty() || model.spec == "WhisperSpec",
        "{}: CTranslate2 spec is {}, not WhisperSpec",
        model.path.display(),
        model.spec
    );
    Ok(())
}

/// Maps a CTranslate2 Whisper checkpoint's encoder to transformers' `WhisperEncoder` names
/// (`encoder.conv1.weight`, `encoder.layers.N.self_attn.q_proj.weight`, ...), splitting the
/// fused QKV projection. Returns the tensors (f32, CPU) and the number of attention heads.
pub fn whisper_encoder_tensors(model: &Ct2Model) -> Result<(HashMap<String, Tensor>, Option<i64>)> {
    ensure_whisper(model)?;
    ensure!(
        !model.contains("encoder/layer_0/self_attention/queries_scale"),
        "{}: custom queries_scale is not supported",
        model.path.display()
    );
    let mut out = HashMap::new();
    copy_all(
        model,
        &mut out,
        "encoder/",
        "encoder.",
        &[
            ("conv1/weight", "conv1.weight"),
            ("conv1/bias", "conv1.bias"),
            ("conv2/weight", "conv2.weight"),
            ("conv2/bias", "conv2.bias"),
            ("position_encodings/encodings", "embed_positions.weight"),
            ("layer_norm/gamma", "layer_norm.weight"),
            ("layer_norm/beta", "layer_norm.bias"),
        ],
    )?;
    let n_layers = count_layers(model, "encoder");
    ensure!(n_layers > 0, "{}: no encoder layers found", model.path.display());
    for i in 0..n_layers {
        let (src, dst) = (format!("encoder/layer_{i}/"), format!("encoder.layers.{i}."));
        self_attention(model, &mut out, &src, &dst)?;
        copy_all(model, &mut out, &src, &dst, &FFN)?;
    }
    Ok((out, model.scalar_i64("encoder/num_heads")))
}

/// The decoder of a CTranslate2 Whisper checkpoint under transformers' `WhisperDecoder` names
/// (`decoder.embed_tokens.weight`, `decoder.layers.N.encoder_attn.k_proj.weight`, ...): fused
/// self-attention QKV and cross-attention KV are split; `decoder/projection` is an alias of
/// the embedding (tied), so no `proj_out` is written. Returns the tensors (f32, CPU), the number
/// of heads and whether token embeddings are scaled by sqrt(d).
pub fn whisper_decoder_tensors(model: &Ct2Model) -> Result<(HashMap<String, Tensor>, Option<i64>, bool)> {
    ensure_whisper(model)?;
    ensure!(
        model.scalar_i64("decoder/pre_norm").unwrap_or(1) == 1,
        "{}: decoder/pre_norm is false; Whisper's decoder is pre-LN",
        model.path.display()
    );
    let mut out = HashMap::new();
    copy_all(
        model,
        &mut out,
        "decoder/",
        "decoder.",
        &[
            ("embeddings/weight", "embed_tokens.weight"),
            ("position_encodings/encodings", "embed_positions.weight"),
            ("layer_norm/gamma", "layer_norm.weight"),
            ("layer_norm/beta", "layer_norm.bias"),
        ],
    )?;
    let n_layers = count_layers(model, "decoder");
    ensure!(n_layers > 0, "{}: no decoder layers found", model.path.display());
    for i in 0..n_layers {
        let (src, dst) = (format!("decoder/layer_{i}/"), format!("decoder.layers.{i}."));
        self_attention(model, &mut out, &src, &dst)?;
        copy_all(model, &mut out, &src, &dst, &FFN)?;
        // Cross-attention: linear_0 is q, linear_1 fused k and v, linear_2 the output.
        let mut kv = split_fused(model, &format!("{src}attention/linear_1"), 2)?.into_iter();
        let (k, v) = (kv.next().unwrap(), kv.next().unwrap());
        ensure_zero_key_bias(model, &format!("{src}attention/linear_1"), &k.1)?;
        out.insert(format!("{dst}encoder_attn.k_proj.weight"), k.0);
        out.insert(format!("{dst}encoder_attn.v_proj.weight"), v.0);
        out.insert(format!("{dst}encoder_attn.v_proj.bias"), v.1);
        copy_all(
            model,
            &mut out,
            &src,
            &dst,
            &[
                ("attention/linear_0/weight", "encoder_attn.q_proj.weight"),
                ("attention/linear_0/bias", "encoder_attn.q_proj.bias"),
                ("attention/linear_2/weight", "encoder_attn.out_proj.weight"),
                ("attention/linear_2/bias", "encoder_attn.out_proj.bias"),
                ("attention/layer_norm/gamma", "encoder_attn_layer_norm.weight"),
                ("attention/layer_norm/beta", "encoder_attn_layer_norm.bias"),
            ],
        )?;
    }
    let scale_embedding = model.scalar_i64("decoder/scale_embeddings").unwrap_or(0) != 0;
    Ok((out, model.scalar_i64("decoder/num_heads"), scale_embedding))
}

//! The analysis context: what a running plugin can ask the host for.
//!
//! The host implements [`Host`] (a plain Rust trait) and [`with_host`] exposes it as a
//! [`HostVTable`]; the plugin sees it as an [`AnalysisContext`] with the same methods. Each
//! request crosses as a method name, JSON arguments and an optional `f32` payload; the host
//! answers with JSON and an `f32` payload. Row-major everywhere.

use std::ffi::c_void;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::abi::{HostCall, HostReply, HostVTable, RStr, Status};
use crate::ffi::{byte_sink, check_status, f32_sink, guarded};
use crate::types::{AudioEmbeddings, Generation, GenerationRequest, ItemInfo, LogMelPatch, SaeInfo, StoreInfo};
use crate::Error;

/// The host's side of the context. Errors should name the file or item concerned.
pub trait Host {
    fn store(&self) -> Result<StoreInfo, Error>;
    fn items(&self) -> Result<Vec<ItemInfo>, Error>;
    /// All frames of item `item` (index into [`Host::items`]): `[n_frames, d]`.
    fn frames(&self, item: usize) -> Result<Vec<f32>, Error>;
    /// The loaded SAEs, in command-line order.
    fn saes(&self) -> Result<Vec<SaeInfo>, Error>;
    /// Dense codes `[n, d_sae]` of `rows` `[n, d_in]` under SAE `sae`.
    fn encode(&self, sae: usize, rows: &[f32]) -> Result<Vec<f32>, Error>;
    /// Reconstruction `[n, d_in]` of dense codes `[n, d_sae]`.
    fn decode(&self, sae: usize, codes: &[f32]) -> Result<Vec<f32>, Error>;
    /// Decoder atoms `[d_sae, d_in]`, one row per unit, in input units.
    fn decoder_atoms(&self, sae: usize) -> Result<Vec<f32>, Error>;
    /// One label per frame of `item` from tier `tier` (`phones`, `words`), or `None` when the
    /// item has no alignment.
    fn labels(&self, item: usize, tier: &str) -> Result<Option<Vec<String>>, Error>;
    /// Log-mel of `[t0_s, t1_s)` seconds of the item's audio.
    fn log_mel(&self, item: usize, t0_s: f64, t1_s: f64) -> Result<LogMelPatch, Error>;
    /// The audio embeddings the model feeds its language model for `clip`.
    fn audio_embeddings(&self, clip: &str) -> Result<AudioEmbeddings, Error>;
    /// Greedy generation with `embeddings` `[rows, d]` in the prompt's audio slot.
    fn generate(&self, request: &GenerationRequest, embeddings: &[f32]) -> Result<Generation, Error>;
    /// Progress of a long stage (`done` of `total`); the host draws it.
    fn progress(&self, stage: &str, done: u64, total: u64);
}

#[derive(Serialize, Deserialize)]
struct ItemArg {
    item: usize,
}

#[derive(Serialize, Deserialize)]
struct SaeArg {
    sae: usize,
}

#[derive(Serialize, Deserialize)]
struct LabelsArg {
    item: usize,
    tier: String,
}

#[derive(Serialize, Deserialize)]
struct LogMelArg {
    item: usize,
    t0_s: f64,
    t1_s: f64,
}

#[derive(Serialize, Deserialize)]
struct ClipArg {
    clip: String,
}

#[derive(Serialize, Deserialize)]
struct ProgressArg {
    stage: String,
    done: u64,
    total: u64,
}

/// The plugin's view of the host, valid during [`crate::Plugin::run`].
pub struct AnalysisContext<'a> {
    vtable: &'a HostVTable,
}

impl<'a> AnalysisContext<'a> {
    /// # Safety
    /// `vtable` must be a live host vtable (what the host passes to `run`).
    pub unsafe fn from_vtable(vtable: &'a HostVTable) -> Self {
        AnalysisContext { vtable }
    }

    fn call(&self, method: &str, args: &impl Serialize, data: &[f32]) -> Result<(Vec<u8>, Vec<f32>), Error> {
        let json = serde_json::to_string(args)?;
        let call =
            HostCall { method: RStr::new(method), json: RStr::new(&json), data: data.as_ptr(), data_len: data.len() };
        let (mut out_json, mut out_data, mut error) = (Vec::new(), Vec::new(), Vec::new());
        let reply =
            HostReply { json: byte_sink(&mut out_json), data: f32_sink(&mut out_data), error: byte_sink(&mut error) };
        let status = (self.vtable.call)(self.vtable.host, &call, &reply);
        check_status(status, error, &format!("host `{method}`"))?;
        Ok((out_json, out_data))
    }

    fn call_json<T: DeserializeOwned>(&self, method: &str, args: &impl Serialize) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.call(method, args, &[])?.0)?)
    }

    fn call_data(&self, method: &str, args: &impl Serialize, data: &[f32]) -> Result<Vec<f32>, Error> {
        Ok(self.call(method, args, data)?.1)
    }

    pub fn store(&self) -> Result<StoreInfo, Error> {
        self.call_json("store", &())
    }

    pub fn items(&self) -> Result<Vec<ItemInfo>, Error> {
        self.call_json("items", &())
    }

    /// `[n_frames, d]` frames of item `item`.
    pub fn frames(&self, item: usize) -> Result<Vec<f32>, Error> {
        self.call_data("frames", &ItemArg { item }, &[])
    }

    pub fn saes(&self) -> Result<Vec<SaeInfo>, Error> {
        self.call_json("saes", &())
    }

    /// Dense codes `[n, d_sae]` of `rows` `[n, d_in]`.
    pub fn encode(&self, sae: usize, rows: &[f32]) -> Result<Vec<f32>, Error> {
        self.call_data("encode", &SaeArg { sae }, rows)
    }

    /// Reconstruction `[n, d_in]` of `codes` `[n, d_sae]`.
    pub fn decode(&self, sae: usize, codes: &[f32]) -> Result<Vec<f32>, Error> {
        self.call_data("decode", &SaeArg { sae }, codes)
    }

    /// `[d_sae, d_in]`.
    pub fn decoder_atoms(&self, sae: usize) -> Result<Vec<f32>, Error> {
        self.call_data("decoder_atoms", &SaeArg { sae }, &[])
    }

    pub fn labels(&self, item: usize, tier: &str) -> Result<Option<Vec<String>>, Error> {
        self.call_json("labels", &LabelsArg { item, tier: tier.to_string() })
    }

    pub fn log_mel(&self, item: usize, t0_s: f64, t1_s: f64) -> Result<LogMelPatch, Error> {
        let (json, values) = self.call("log_mel", &LogMelArg { item, t0_s, t1_s }, &[])?;
        Ok(LogMelPatch { values, ..serde_json::from_slice(&json)? })
    }

    pub fn audio_embeddings(&self, clip: &str) -> Result<AudioEmbeddings, Error> {
        let (json, values) = self.call("audio_embeddings", &ClipArg { clip: clip.to_string() }, &[])?;
        Ok(AudioEmbeddings { values, ..serde_json::from_slice(&json)? })
    }

    pub fn generate(&self, request: &GenerationRequest, embeddings: &[f32]) -> Result<Generation, Error> {
        let (json, logits) = self.call("generate", request, embeddings)?;
        Ok(Generation { logits, ..serde_json::from_slice(&json)? })
    }

    /// Reports progress; errors are ignored (progress is cosmetic).
    pub fn progress(&self, stage: &str, done: u64, total: u64) {
        let _ = self.call("progress", &ProgressArg { stage: stage.to_string(), done, total }, &[]);
    }
}

fn args<T: DeserializeOwned>(json: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| Error::new(format!("bad arguments {json}: {e}")))
}

fn dispatch(host: &dyn Host, method: &str, json: &str, data: &[f32], reply: &HostReply) -> Result<(), Error> {
    let send_json = |v: &dyn erased::Json| -> Result<(), Error> {
        reply.json.send(&v.to_json()?);
        Ok(())
    };
    let send_data = |v: Vec<f32>| -> Result<(), Error> {
        reply.data.send(&v);
        Ok(())
    };
    match method {
        "store" => send_json(&host.store()?),
        "items" => send_json(&host.items()?),
        "frames" => send_data(host.frames(args::<ItemArg>(json)?.item)?),
        "saes" => send_json(&host.saes()?),
        "encode" => send_data(host.encode(args::<SaeArg>(json)?.sae, data)?),
        "decode" => send_data(host.decode(args::<SaeArg>(json)?.sae, data)?),
        "decoder_atoms" => send_data(host.decoder_atoms(args::<SaeArg>(json)?.sae)?),
        "labels" => {
            let a: LabelsArg = args(json)?;
            send_json(&host.labels(a.item, &a.tier)?)
        }
        "log_mel" => {
            let a: LogMelArg = args(json)?;
            let patch = host.log_mel(a.item, a.t0_s, a.t1_s)?;
            reply.data.send(&patch.values);
            send_json(&patch)
        }
        "audio_embeddings" => {
            let e = host.audio_embeddings(&args::<ClipArg>(json)?.clip)?;
            reply.data.send(&e.values);
            send_json(&e)
        }
        "generate" => {
            let g = host.generate(&args(json)?, data)?;
            reply.data.send(&g.logits);
            send_json(&g)
        }
        "progress" => {
            let a: ProgressArg = args(json)?;
            host.progress(&a.stage, a.done, a.total);
            send_json(&())
        }
        other => Err(Error::new(format!("unknown host method `{other}`"))),
    }
}

/// Object-safe JSON serialisation for `dispatch`'s replies.
mod erased {
    pub trait Json {
        fn to_json(&self) -> Result<Vec<u8>, crate::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<Vec<u8>, crate::Error> {
            Ok(serde_json::to_vec(self)?)
        }
    }
}

extern "C" fn host_call(host: *const c_void, call: *const HostCall, reply: *const HostReply) -> Status {
    // SAFETY: `host` is the `&dyn Host` that `with_host` put in the vtable, alive during `f`;
    // `call` and `reply` point to the plugin's values for the duration of this call.
    let (host, call, reply) = unsafe { (*(host as *const &dyn Host), &*call, &*reply) };
    guarded(reply.error, || {
        // SAFETY: the strings and payload are the plugin's, alive during the call.
        let (method, json) = unsafe { (call.method.as_str()?, call.json.as_str()?) };
        let data =
            if call.data_len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(call.data, call.data_len) } };
        dispatch(host, method, json, data, reply)
    })
}

/// Calls `f` with a vtable over `host`; the vtable must not be kept past `f`.
pub fn with_host<R>(host: &dyn Host, f: impl FnOnce(&HostVTable) -> R) -> R {
    let fat: &dyn Host = host;
    let vtable = HostVTable { host: &fat as *const &dyn Host as *const c_void, call: host_call };
    f(&vtable)
}

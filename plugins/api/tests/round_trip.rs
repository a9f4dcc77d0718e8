//! The whole boundary in one process: a plugin exported with `export_plugin!`, checked and run
//! through its descriptor against a small in-memory host; errors and panics come back as `Err`.

use audiosae_plugin_api::abi::{DescriptorHeader, PluginDescriptor};
use audiosae_plugin_api::host::{AbiMismatch, CheckedPlugin};
use audiosae_plugin_api::{
    export_plugin, AnalysisContext, AudioEmbeddings, Error, FrameTiming, Generation, GenerationRequest, Host, ItemInfo,
    LogMelPatch, Params, Plugin, Report, SaeInfo, StoreInfo, Table,
};
use std::collections::BTreeMap;

/// Two items of 3 and 2 frames, d = 2; the "SAE" doubles its input (d_sae = 2).
struct TinyHost;

const TIMING: FrameTiming = FrameTiming { hop_s: 0.02, offset_s: -0.01 };

impl Host for TinyHost {
    fn store(&self) -> Result<StoreInfo, Error> {
        Ok(StoreInfo {
            path: "mem".into(),
            model: "m".into(),
            layer: "l".into(),
            d: 2,
            timing: TIMING,
            n_items: 2,
            n_frames: 5,
            label_tiers: vec!["phones".into()],
        })
    }
    fn items(&self) -> Result<Vec<ItemInfo>, Error> {
        Ok((0..2)
            .map(|i| ItemInfo {
                id: format!("item{i}"),
                audio: format!("{i}.wav"),
                duration_s: 0.1,
                time_offset_s: 0.0,
                n_frames: 3 - i,
                first_frame: 3 * i,
                timing: TIMING,
                transcript: (i == 0).then(|| "a transcript".to_string()),
            })
            .collect())
    }
    fn frames(&self, item: usize) -> Result<Vec<f32>, Error> {
        match item {
            0 => Ok(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            1 => Ok(vec![-1.0, 0.5, 7.0, 8.0]),
            _ => Err(Error::new(format!("no item {item}"))),
        }
    }
    fn saes(&self) -> Result<Vec<SaeInfo>, Error> {
        Ok(vec![SaeInfo { path: "sae".into(), arch: "relu".into(), d_in: 2, d_sae: 2 }])
    }
    fn encode(&self, _sae: usize, rows: &[f32]) -> Result<Vec<f32>, Error> {
        Ok(rows.iter().map(|x| 2.0 * x).collect())
    }
    fn decode(&self, _sae: usize, codes: &[f32]) -> Result<Vec<f32>, Error> {
        Ok(codes.iter().map(|x| x / 2.0).collect())
    }
    fn decoder_atoms(&self, _sae: usize) -> Result<Vec<f32>, Error> {
        Ok(vec![1.0, 0.0, 0.0, 1.0])
    }
    fn labels(&self, item: usize, tier: &str) -> Result<Option<Vec<String>>, Error> {
        Ok((tier == "phones" && item == 0).then(|| vec!["AA".into(), "B".into(), "sil".into()]))
    }
    fn log_mel(&self, _item: usize, t0_s: f64, _t1_s: f64) -> Result<LogMelPatch, Error> {
        Ok(LogMelPatch { n_mels: 2, n_frames: 1, t0_s, hop_s: 0.01, values: vec![0.5, -0.5] })
    }
    fn audio_embeddings(&self, _clip: &str) -> Result<AudioEmbeddings, Error> {
        Err(Error::new("no model"))
    }
    fn generate(&self, _r: &GenerationRequest, _e: &[f32]) -> Result<Generation, Error> {
        panic!("host-side panic in generate")
    }
    fn progress(&self, _stage: &str, _done: u64, _total: u64) {}
}

#[derive(Default)]
struct Summer;

impl Plugin for Summer {
    fn name(&self) -> &str {
        "summer"
    }
    fn version(&self) -> &str {
        "0.1.0"
    }
    fn describe(&self) -> &str {
        "Sums the SAE codes of all frames."
    }
    fn run(&self, ctx: &AnalysisContext, params: &Params) -> Result<Report, Error> {
        let mode = params.str("mode").unwrap_or("sum");
        params.check_all_used()?;
        match mode {
            "panic" => panic!("plugin-side panic"),
            "host_error" => return ctx.audio_embeddings("x.wav").map(|_| Report::default()),
            "host_panic" => {
                let req = GenerationRequest {
                    clip: "x".into(),
                    prompt: None,
                    max_new_tokens: 1,
                    rows: 0,
                    d: 2,
                    forced_tokens: vec![],
                };
                return ctx.generate(&req, &[]).map(|_| Report::default());
            }
            _ => {}
        }
        let mut total = 0.0;
        for (i, item) in ctx.items()?.iter().enumerate() {
            let codes = ctx.encode(0, &ctx.frames(i)?)?;
            assert_eq!(codes.len(), item.n_frames * ctx.saes()?[0].d_sae);
            total += codes.iter().sum::<f32>();
        }
        let labels = ctx.labels(0, "phones")?.unwrap_or_default();
        let mel = ctx.log_mel(0, 0.25, 0.26)?;
        let mut t = Table::new("labels", &["frame", "label"]);
        for (i, l) in labels.iter().enumerate() {
            t.push(vec![i.into(), l.as_str().into()]);
        }
        Ok(Report {
            summary: serde_json::json!({"total": total, "mel": mel.values, "mel_t0": mel.t0_s,
                                        "d": ctx.store()?.d, "missing": ctx.labels(1, "phones")?}),
            tables: vec![t],
            figures: vec![],
        })
    }
}

export_plugin!(Summer);

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn checked() -> CheckedPlugin {
    unsafe { CheckedPlugin::check(&AUDIOSAE_PLUGIN_DESCRIPTOR) }.unwrap()
}

#[test]
fn info_and_run_cross_the_boundary() {
    let p = checked();
    assert_eq!(p.info().unwrap().name, "summer");
    let r = p.run(&TinyHost, &params(&[])).unwrap();
    // 2 * (1+2+3+4+5+6 - 1+0.5+7+8) = 2 * 35.5
    assert_eq!(r.summary["total"], 71.0);
    assert_eq!(r.summary["mel"], serde_json::json!([0.5, -0.5]));
    assert_eq!(r.summary["mel_t0"], 0.25);
    assert_eq!(r.summary["d"], 2);
    assert!(r.summary["missing"].is_null());
    assert_eq!(r.table("labels").unwrap().rows.len(), 3);
}

#[test]
fn errors_and_panics_on_either_side_come_back_as_errors() {
    let p = checked();
    let e = p.run(&TinyHost, &params(&[("mode", "panic")])).unwrap_err().to_string();
    assert!(e.contains("panicked: plugin-side panic"), "{e}");
    let e = p.run(&TinyHost, &params(&[("mode", "host_error")])).unwrap_err().to_string();
    assert!(e.contains("host `audio_embeddings`: no model"), "{e}");
    let e = p.run(&TinyHost, &params(&[("mode", "host_panic")])).unwrap_err().to_string();
    assert!(e.contains("host-side panic in generate"), "{e}");
    let e = p.run(&TinyHost, &params(&[("typo", "1")])).unwrap_err().to_string();
    assert!(e.contains("unknown parameter(s) typo"), "{e}");
}

#[test]
fn a_changed_header_is_refused() {
    let copy = |f: &dyn Fn(&mut DescriptorHeader)| {
        let mut header = AUDIOSAE_PLUGIN_DESCRIPTOR.header;
        f(&mut header);
        let d = PluginDescriptor { header, vtable: AUDIOSAE_PLUGIN_DESCRIPTOR.vtable };
        Box::leak(Box::new(d)) as *const PluginDescriptor
    };
    let check = |p| unsafe { CheckedPlugin::check(p) }.err();
    assert_eq!(check(copy(&|h| h.magic[0] = b'X')), Some(AbiMismatch::NotAPlugin));
    assert!(matches!(check(copy(&|h| h.api_version += 1)), Some(AbiMismatch::ApiVersion { .. })));
    assert!(matches!(check(copy(&|h| h.layout_hash ^= 1)), Some(AbiMismatch::LayoutHash { .. })));
    let old = audiosae_plugin_api::abi::RStr::new("rustc 1.0.0");
    assert!(matches!(check(copy(&|h| h.rustc_version = old)), Some(AbiMismatch::Rustc { .. })));
}

//! SAE training-step benchmark: audiosae's `opensae` against the seed's PyTorch OpenSAE +
//! train_sae loop (`benches/peer_sae_train.py`), same shapes, same torch threads, same seed
//! (hence the same initial weights and data), batches already in memory. Prints frames/s of
//! both, their ratio, the final losses, and the achieved GFLOP/s against a measured GEMM in the
//! same dtype.
//!
//! cargo run --release -p audiosae --example bench_sae -- [--threads N] [--steps 10] [--python PY]
//!     [--device cuda --dtype bf16]   (bf16: our encoder product in bf16, the peer under torch.autocast)
//! The peer script is found under $AUDIOSAE_ROOT (default: this source tree).

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use audiosae::sae::config::{Arch, ComputeDType, SaeConfig, TrainConfig};
use audiosae::sae::train::Trainer;
use audiosae::sae::BatchSource;
use clap::Parser;
use tch::{Device, Kind, Tensor};

#[derive(Parser)]
struct Args {
    /// libtorch threads for both sides (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
    /// Timed steps per shape (after the warm-up steps).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Shapes as D_IN:WIDTH:K:BATCH, comma-separated.
    #[arg(long, default_value = "1280:8192:64:1024,4096:16384:64:1024")]
    shapes: String,
    /// Python with torch for the peer (default: the fixtures venv).
    #[arg(long)]
    python: Option<String>,
    /// auto, cpu, cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32 or bf16 (mixed precision; meant for CUDA).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Skip the PyTorch peer.
    #[arg(long)]
    no_peer: bool,
}

/// Cycles through batches held in memory.
struct Pool {
    batches: Vec<Tensor>,
    next: usize,
}

impl BatchSource for Pool {
    fn d_in(&self) -> usize {
        self.batches[0].size()[1] as usize
    }
    fn next_batch(&mut self, _batch: usize, _device: Device) -> Result<Tensor> {
        let b = self.batches[self.next % self.batches.len()].shallow_clone();
        self.next += 1;
        Ok(b)
    }
    fn position(&self) -> u64 {
        self.next as u64
    }
    fn seek(&mut self, p: u64) -> Result<()> {
        self.next = p as usize;
        Ok(())
    }
}

const POOL: i64 = 4;
const TAIL: usize = 3;

struct Run {
    frames_per_s: f64,
    s_per_step: f64,
    final_loss: f64,
}

fn ours(d: usize, h: usize, k: usize, b: usize, a: &Args, device: Device) -> Result<Run> {
    let total = a.warmup + a.steps;
    let cfg = TrainConfig {
        sae: SaeConfig {
            arch: Arch::OpenSae,
            d_in: d,
            d_sae: h,
            k: Some(k),
            l1_coef: 5e-4,
            compute_dtype: a.dtype.parse::<ComputeDType>()?,
            ..Default::default()
        },
        steps: total,
        batch_size: b,
        lr: 1e-3,
        seed_compat: true,
        log_every: 1,
        checkpoint_every: usize::MAX,
        device: a.device.clone(),
        ..Default::default()
    };
    let mut empty = Pool { batches: vec![Tensor::zeros([1, d as i64], (Kind::Float, Device::Cpu))], next: 0 };
    let mut t = Trainer::new(cfg, &mut empty, device)?;
    // Same generator order as the peer: the SAE's weights (in Trainer::new), then the data.
    let data = Tensor::randn([POOL * b as i64, d as i64], (Kind::Float, Device::Cpu)).to_device(device);
    let mut pool = Pool { batches: data.split(b as i64, 0), next: 0 };
    let mut t0 = Instant::now();
    for step in 0..total {
        if step == a.warmup {
            sync(device);
            t0 = Instant::now();
        }
        t.train_step(&mut pool)?;
        // Two syncs per run: clear the running sums before the last TAIL steps, read them after.
        if step + TAIL + 1 == total {
            t.log_row(0.0, step + 1)?;
        }
    }
    let final_loss = t.log_row(0.0, TAIL.min(total))?.loss;
    sync(device);
    let dt = t0.elapsed().as_secs_f64();
    Ok(Run { frames_per_s: (a.steps * b) as f64 / dt, s_per_step: dt / a.steps as f64, final_loss })
}

fn peer(d: usize, h: usize, k: usize, b: usize, a: &Args) -> Result<Run> {
    let root = audiosae::notebook::repo_root();
    let python = a.python.clone().unwrap_or_else(|| root.join(".cache/venv-fixtures/bin/python").display().to_string());
    let script = root.join("benches/peer_sae_train.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(["--d-in", &d.to_string(), "--width", &h.to_string(), "--k", &k.to_string(), "--batch", &b.to_string()])
        .args(["--steps", &a.steps.to_string(), "--warmup", &a.warmup.to_string(), "--pool", &POOL.to_string()])
        .args(["--threads", &tch::get_num_threads().to_string(), "--tail", &TAIL.to_string()])
        .args(["--device", if a.device == "cpu" { "cpu" } else { "cuda" }, "--dtype", &a.dtype])
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    anyhow::ensure!(out.status.success(), "peer failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("peer output is not JSON")?;
    let f = |k: &str| v[k].as_f64().with_context(|| format!("peer output lacks {k}"));
    Ok(Run { frames_per_s: f("frames_per_s")?, s_per_step: f("s_per_step")?, final_loss: f("final_loss")? })
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Measured GEMM throughput at the encoder's shape in `kind`, GFLOP/s.
fn gemm_peak(d: i64, h: i64, b: i64, device: Device, kind: Kind) -> f64 {
    let x = Tensor::randn([b, d], (kind, device));
    let w = Tensor::randn([d, h], (kind, device));
    let _ = x.matmul(&w);
    sync(device);
    let reps = 5;
    let t0 = Instant::now();
    for _ in 0..reps {
        let _ = x.matmul(&w);
    }
    sync(device);
    2.0 * (b * d * h) as f64 * reps as f64 / t0.elapsed().as_secs_f64() / 1e9
}

fn main() -> Result<()> {
    let a = Args::parse();
    if let Some(n) = a.threads {
        tch::set_num_threads(n);
    }
    let device = audiosae::device::parse_device(&a.device)?;
    println!(
        "device {}, dtype {}, torch threads {}",
        audiosae::device::describe(device),
        a.dtype,
        tch::get_num_threads()
    );
    println!(
        "{:>22} | {:>10} {:>10} {:>6} | {:>10} {:>10} | {:>9} {:>9} {:>6}",
        "shape d:width:k:batch",
        "ours fr/s",
        "peer fr/s",
        "ratio",
        "ours loss",
        "peer loss",
        "GFLOP/s",
        "GEMM pk",
        "% pk"
    );
    for shape in a.shapes.split(',') {
        let v: Vec<usize> = shape.split(':').map(|s| s.parse()).collect::<Result<_, _>>().context("--shapes")?;
        let [d, h, k, b] = v[..] else { anyhow::bail!("shape {shape:?}: expected D_IN:WIDTH:K:BATCH") };
        let ours = ours(d, h, k, b, &a, device)?;
        let peer = if a.no_peer { None } else { Some(peer(d, h, k, b, &a)?) };
        // Work actually done per step, k rows per frame where sparse. CPU: the dense encoder
        // product, then the sparse decode, its two backward products and the sparse encoder
        // gradient. Elsewhere autograd adds a dense encoder gradient and drops the sparse one.
        let (dense, sparse) = if device == Device::Cpu { (1.0, 4.0) } else { (2.0, 3.0) };
        let flops = dense * 2.0 * (b * d * h) as f64 + sparse * 2.0 * (b * k * d) as f64;
        let kind = if a.dtype == "bf16" { Kind::BFloat16 } else { Kind::Float };
        let peak = gemm_peak(d as i64, h as i64, b as i64, device, kind);
        let achieved = flops / ours.s_per_step / 1e9;
        let (pf, pl, ratio) = peer.as_ref().map_or((f64::NAN, f64::NAN, f64::NAN), |p| {
            (p.frames_per_s, p.final_loss, ours.frames_per_s / p.frames_per_s)
        });
        println!(
            "{:>22} | {:>10.0} {:>10.0} {:>5.2}x | {:>10.6} {:>10.6} | {:>9.1} {:>9.1} {:>5.0}%",
            shape,
            ours.frames_per_s,
            pf,
            ratio,
            ours.final_loss,
            pl,
            achieved,
            peak,
            100.0 * achieved / peak
        );
        if let Some(p) = &peer {
            println!(
                "{:>22}   peer {:.3} s/step, dense-equivalent {:.1} GFLOP/s (6 GEMMs)",
                "",
                p.s_per_step,
                6.0 * 2.0 * (b * d * h) as f64 / p.s_per_step / 1e9
            );
        }
    }
    Ok(())
}

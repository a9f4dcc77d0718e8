//! Activation-store read benchmark: builds a store (512 MiB by default) and measures random-batch
//! reads (epoch sampler + gather into a contiguous [batch, d] f32 buffer) against a plain memcpy
//! of the same number of bytes out of the same mapped shards.
//!
//! cargo run --release -p audiosae --example bench_store -- [--mib 512] [--d 1024] [--batch 4096]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use audiosae::store::{
    parse_npy_header, EpochSampler, ItemMeta, ModelRef, StoreConfig, StoreDType, StoreReader, StoreWriter,
};
use audiosae::FrameTiming;
use clap::Parser;
use indicatif::ProgressBar;

#[derive(Parser)]
struct Args {
    /// Store size in MiB.
    #[arg(long, default_value_t = 512)]
    mib: usize,
    #[arg(long, default_value_t = 1024)]
    d: usize,
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    #[arg(long, default_value = "f32")]
    dtype: StoreDType,
    /// Frames per item (1500 = 30 s of Whisper encoder frames).
    #[arg(long, default_value_t = 1500)]
    item_rows: usize,
    /// Where to build the store (deleted afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Timed passes over the whole store; the best is reported.
    #[arg(long, default_value_t = 3)]
    passes: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("audiosae-bench-store"));
    let _ = std::fs::remove_dir_all(&dir);
    let model = ModelRef { id: "bench".into(), revision: None };
    let config = StoreConfig::new(model, "encoder", FrameTiming::ENCODER, args.dtype, args.d);
    let store_bytes = args.mib << 20;
    let n_items = store_bytes.div_ceil(args.item_rows * config.row_bytes());

    let t = Instant::now();
    let mut writer = StoreWriter::create(&dir, config)?;
    let bar = ProgressBar::new(n_items as u64);
    let frames: Vec<f32> = (0..args.item_rows * args.d).map(|i| (i as f32 * 0.001).sin()).collect();
    for k in 0..n_items {
        writer.append_item(ItemMeta::new(format!("item{k}"), "bench.wav", 30.0), &frames)?;
        bar.inc(1);
    }
    let manifest = writer.finish()?;
    bar.finish_and_clear();
    let write_s = t.elapsed().as_secs_f64();
    let bytes = manifest.bytes() as f64;
    println!(
        "store: {n_items} items, {} frames x d={} {}, {} shards, {:.0} MiB; written at {:.2} GB/s (with fsync)",
        manifest.committed_rows(),
        args.d,
        args.dtype,
        manifest.shards.len(),
        bytes / (1 << 20) as f64,
        bytes / write_s / 1e9
    );

    let store = StoreReader::open(&dir)?;
    let rows = store.rows();
    let batches = rows / args.batch;
    let mut out = vec![0f32; args.batch * args.d];
    // Warm the page cache so both measurements read from memory.
    for start in (0..rows - args.batch).step_by(args.batch) {
        store.read_range(start, start + args.batch, &mut out);
    }
    let batch_bytes = (args.batch * store.config().row_bytes()) as f64;

    let mut sampler = EpochSampler::new(store.all_rows(), 0)?;
    let mut random_s = f64::INFINITY;
    for _ in 0..args.passes {
        let t = Instant::now();
        for _ in 0..batches {
            let idx = sampler.next_rows(args.batch);
            store.gather_into(&idx, &mut out);
        }
        random_s = random_s.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&out);

    // The same number of bytes, copied contiguously out of the mapped shards.
    let shards: Vec<memmap2::Mmap> = manifest
        .shards
        .iter()
        .map(|s| std::fs::File::open(dir.join(&s.file)).and_then(|f| unsafe { memmap2::Mmap::map(&f) }))
        .collect::<Result<_, _>>()?;
    let out_bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
    let chunk = batch_bytes as usize;
    let mut memcpy_s = f64::INFINITY;
    for _ in 0..args.passes {
        let t = Instant::now();
        let mut copied = 0;
        'pass: for map in &shards {
            let data_offset = parse_npy_header(map)?.data_offset;
            for src in map[data_offset..].chunks_exact(chunk) {
                out_bytes[..chunk].copy_from_slice(src);
                copied += 1;
                if copied == batches {
                    break 'pass;
                }
            }
        }
        memcpy_s = memcpy_s.min(t.elapsed().as_secs_f64());
        assert_eq!(copied, batches, "shards hold fewer bytes than the batches");
    }
    std::hint::black_box(&out);

    let total = batches as f64 * batch_bytes;
    let random_gbs = total / random_s / 1e9;
    let memcpy_gbs = total / memcpy_s / 1e9;
    println!(
        "random batches [{}, {}]: {batches} per pass, {:.0} MiB, best of {} passes",
        args.batch,
        args.d,
        total / (1 << 20) as f64,
        args.passes
    );
    println!("  random-batch read  {random_gbs:6.2} GB/s  ({:.1} batches/s)", batches as f64 / random_s);
    println!("  plain memcpy       {memcpy_gbs:6.2} GB/s");
    println!("  ratio              {:6.2} (random / memcpy)", random_gbs / memcpy_gbs);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

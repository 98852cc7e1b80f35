//! `int8`: a short per-call timing of the fp32 and the 8-bit embedder (and the fp32 detector
//! for scale) through the pipeline, on synthetic inputs. Not a throughput benchmark (see
//! `speed`); the 8-bit models and their accuracy: models/README.md, "8-bit models".
//!
//! `bash deploy/quantize-models.sh && cargo run --release -p likeness-bench --bin int8`
#![allow(clippy::print_stdout)] // a report tool

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use likeness_models::{Pipeline, PipelineConfig, RgbImage};

#[derive(Parser)]
struct Args {
    /// Inference threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Repetitions (the best is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

fn best_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut seed = 0x9e37_79b9_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for embedder in ["mobilefacenet_128", "mobilefacenet_128_int8"] {
        let p = Pipeline::load(PipelineConfig {
            embedder: embedder.into(),
            threads: args.threads,
            ..Default::default()
        })?;
        for n in [8usize, 64] {
            let crops: Vec<f32> = (0..n * 3 * 112 * 112)
                .map(|_| (next() % 255) as f32 / 127.5 - 1.0)
                .collect();
            let ms = best_ms(args.reps, || {
                p.embed(&crops, n)?;
                Ok(())
            })?;
            println!(
                "embedder {embedder}: batch {n}: {:.2} ms per face",
                ms / n as f64
            );
        }
        if embedder == "mobilefacenet_128" {
            for (w, h) in [(640u32, 480u32), (1920, 1440)] {
                let data: Vec<u8> = (0..w * h * 3).map(|_| (next() % 256) as u8).collect();
                let Some(img) = RgbImage::new(w, h, data) else {
                    continue;
                };
                let ms = best_ms(args.reps, || {
                    let _ = p.detect(&[&img], 0.7);
                    Ok(())
                })?;
                println!("detector yunet_s (fp32): {w}x{h} image (all views): {ms:.1} ms");
            }
        }
    }
    Ok(())
}

//! Our graph executor (`likeness_kernels::graph`, CPU twin) against ONNX Runtime on the CPU,
//! same inputs, same thread count, one run: milliseconds per call of the detector at the view
//! sizes the pipeline uses and of the embedder at several batch sizes, the multiply-accumulate
//! rate, and the largest difference between the two outputs.
//!
//! `cargo run --release -p likeness-bench --bin graph` (writes bench/results/graph-cpu.json)
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use likeness_kernels::device::pseudo_random;
use likeness_kernels::graph::{Model, Plan};
use likeness_kernels::twin::graph::{self, Workspace};
use ort::value::TensorRef;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// ONNX models.
    #[arg(long, env = "LIKENESS_MODELS_DIR", default_value = "../shared/models")]
    models_dir: PathBuf,
    /// Detector input sizes (WxH).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "640x480,640x640,1280x736,1920x1088"
    )]
    sizes: Vec<String>,
    /// Embedder batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    batches: Vec<usize>,
    /// Threads for both (ORT intra-op threads, rayon pool).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed runs per case (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Output JSON.
    #[arg(long, default_value = "bench/results/graph-cpu.json")]
    out: PathBuf,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Case {
    model: &'static str,
    dims: Vec<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    likeness_models::runtime::init(None)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("rayon pool")?;
    let mut cases = Vec::new();
    for s in &args.sizes {
        let (w, h) = s
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
            .with_context(|| format!("size {s}: expected WxH"))?;
        cases.push(Case {
            model: "yunet_s_dynamic.onnx",
            dims: vec![1, 3, h, w],
        });
    }
    for &b in &args.batches {
        cases.push(Case {
            model: "mobilefacenet_128d_dynamic.onnx",
            dims: vec![b, 3, 112, 112],
        });
    }
    let mut rows = Vec::new();
    println!(
        "| model | input | GMAC | ORT ms | ours ms | ours / ORT speed | ours GMAC/s | max |diff| |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for c in &cases {
        let path = args.models_dir.join(c.model);
        let model = Model::load(&path)?;
        let plan = Plan::new(&model, &c.dims)?;
        let x = pseudo_random(c.dims.iter().product(), 7);
        let mut session = likeness_models::runtime::open_session(&path, args.threads)?;
        let mut ort_out = Vec::new();
        let mut ort_ms = Vec::new();
        for rep in 0..=args.reps {
            let t = Instant::now();
            let tensor = TensorRef::from_array_view((c.dims.clone(), x.as_slice()))?;
            let outputs = session.run(ort::inputs![tensor])?;
            let outs: Vec<Vec<f32>> = (0..outputs.len())
                .map(|k| Ok(outputs[k].try_extract_tensor::<f32>()?.1.to_vec()))
                .collect::<Result<_>>()?;
            if rep > 0 {
                ort_ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            ort_out = outs;
        }
        let mut ws = Workspace::default();
        let mut ours_out = Vec::new();
        let mut ours_ms = Vec::new();
        for rep in 0..=args.reps {
            let t = Instant::now();
            let outs = pool.install(|| graph::run(&plan, &x, &mut ws))?;
            if rep > 0 {
                ours_ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            ours_out = outs;
        }
        let diff = ours_out
            .iter()
            .zip(&ort_out)
            .flat_map(|(a, b)| a.data.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0f32, f32::max);
        let (o, u) = (median(ort_ms), median(ours_ms));
        let gmac = plan.conv_macs() as f64 / 1e9;
        println!(
            "| {} | {:?} | {:.3} | {:.2} | {:.2} | {:.2}x | {:.1} | {:.1e} |",
            c.model,
            c.dims,
            gmac,
            o,
            u,
            o / u,
            gmac / (u / 1e3),
            diff
        );
        rows.push(json!({
            "model": c.model, "input": c.dims, "gmac": gmac, "ort_ms": o, "ours_ms": u,
            "speed_vs_ort": o / u, "ours_gmac_per_s": gmac / (u / 1e3),
            "ort_gmac_per_s": gmac / (o / 1e3), "max_abs_diff": diff,
            "slots": plan.slots.len(), "activation_mb": plan.activation_bytes() as f64 / 1e6,
        }));
    }
    let out = json!({ "threads": args.threads, "reps": args.reps, "cases": rows });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

//! The CUDA backend against the CPU backend, in one run: images/s and faces/s of the device
//! pipeline (`likeness_kernels::device`) at batch sizes 1 to 512 on decoded 640×640 frames
//! with one face, with the per-stage split and the achieved fraction of the device's FP32 and
//! memory-bandwidth peaks; a JPEG archive (CPU decoding on every core feeding the device:
//! which side limits, and by how much); the latency of one upload (p50/p99) under light load;
//! and the CPU backend (`likeness_models::Pipeline`, ONNX Runtime) on the same frames. Where
//! no GPU is usable the device part says why and only the CPU figures are written.
//!
//! `cargo run --release -p likeness-bench --bin gpu` (writes bench/results/gpu.json)
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use likeness_kernels::device::{DeviceConfig, DevicePipeline, StageTimes};
use likeness_kernels::gpu::Gpu;
use likeness_kernels::graph::{Model, Plan, Step};
use likeness_kernels::nvrtc::Compiler;
use likeness_kernels::probe;
use likeness_kernels::twin::letterbox::{CropBox, Filter, ImageRef, ResamplePlan};
use likeness_models::{DecodeLimits, Pipeline, PipelineConfig, RgbImage, StageTimings};
use rayon::prelude::*;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Evaluation data (faces_dev gives the one-face frames, photos the JPEG archive).
    #[arg(long, env = "LIKENESS_DATA_DIR", default_value = "../shared/data")]
    data_dir: PathBuf,
    /// ONNX models.
    #[arg(long, env = "LIKENESS_MODELS_DIR", default_value = "../shared/models")]
    models_dir: PathBuf,
    /// Device batch sizes (images per call).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512")]
    batches: Vec<usize>,
    /// Distinct 640×640 frames (each run cycles through them).
    #[arg(long, default_value_t = 512)]
    frames: usize,
    /// Images per device measurement (at least 4 batches).
    #[arg(long, default_value_t = 4096)]
    images: usize,
    /// Single-upload latency samples.
    #[arg(long, default_value_t = 200)]
    latency_runs: usize,
    /// Frames for the CPU backend (it is ~100x slower).
    #[arg(long, default_value_t = 64)]
    cpu_frames: usize,
    /// Output JSON.
    #[arg(long, default_value = "bench/results/gpu.json")]
    out: PathBuf,
}

const SIDE: u32 = 640;

/// A face photo letterboxed into a black 640×640 frame (long side 60 % of the frame).
fn frame(img: &RgbImage) -> Result<RgbImage> {
    let scale = 0.6 * SIDE as f32 / img.width.max(img.height) as f32;
    let (w, h) = (
        ((img.width as f32 * scale).round() as u32).max(1),
        ((img.height as f32 * scale).round() as u32).max(1),
    );
    let crop = CropBox {
        left: 0.0,
        top: 0.0,
        width: f64::from(img.width),
        height: f64::from(img.height),
    };
    let small = ResamplePlan::new(img.width, img.height, crop, w, h, Filter::Interpolation)?
        .run(&img.data)?;
    let mut data = vec![0u8; (SIDE * SIDE * 3) as usize];
    let (x0, y0) = ((SIDE - w) / 2, (SIDE - h) / 2);
    for y in 0..h {
        let dst = (((y0 + y) * SIDE + x0) * 3) as usize;
        let src = (y * w * 3) as usize;
        data[dst..dst + (w * 3) as usize].copy_from_slice(&small[src..src + (w * 3) as usize]);
    }
    Ok(RgbImage {
        width: SIDE,
        height: SIDE,
        data,
        source_width: SIDE,
        source_height: SIDE,
    })
}

fn refs(images: &[RgbImage]) -> Vec<ImageRef<'_>> {
    images
        .iter()
        .map(|i| ImageRef {
            width: i.width,
            height: i.height,
            data: &i.data,
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latency(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    json!({ "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99), "runs": ms.len() })
}

/// FLOPs and a lower bound of the bytes moved (every step's inputs and output once) per item.
fn cost(model: &Model, item: &[usize]) -> Result<(f64, f64)> {
    let mut dims = vec![1];
    dims.extend_from_slice(item);
    let plan = Plan::new(model, &dims)?;
    let bytes: usize = plan
        .steps
        .iter()
        .map(|s| {
            let ins = match s {
                Step::Conv(c) => c.c_in * c.h_in * c.w_in,
                other => other.output_len() * other.inputs().len(),
            };
            4 * (ins + s.output_len())
        })
        .sum();
    Ok((2.0 * plan.conv_macs() as f64, bytes as f64))
}

fn load_dir(dir: &std::path::Path, n: usize) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    files.sort();
    files.truncate(n);
    files
        .into_iter()
        .map(|p| Ok((p.clone(), std::fs::read(&p)?)))
        .collect()
}

fn cpu_backend(args: &Args, frames: &[RgbImage]) -> Result<Value> {
    let pipeline = Pipeline::load(PipelineConfig {
        models_dir: args.models_dir.clone(),
        ..PipelineConfig::default()
    })?;
    let frames = &frames[..args.cpu_frames.min(frames.len())];
    let mut out = serde_json::Map::new();
    for per_call in [1usize, 8] {
        let mut timings = StageTimings::default();
        let t = Instant::now();
        let mut faces = 0;
        for chunk in frames.chunks(per_call) {
            let imgs: Vec<&RgbImage> = chunk.iter().collect();
            for r in pipeline.analyze(&imgs, None, &mut timings) {
                faces += r?.len();
            }
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "CPU backend, {per_call}/call: {:.1} images/s, {:.1} faces/s",
            frames.len() as f64 / s,
            faces as f64 / s
        );
        out.insert(
            format!("per_call_{per_call}"),
            json!({ "images_per_s": frames.len() as f64 / s, "faces_per_s": faces as f64 / s,
                    "detect_ms_per_image": timings.detect.as_secs_f64() * 1e3 / frames.len() as f64,
                    "embed_ms_per_image": timings.embed.as_secs_f64() * 1e3 / frames.len() as f64 }),
        );
    }
    let mut ms = Vec::new();
    for f in frames.iter().cycle().take(args.latency_runs.min(100)) {
        let t = Instant::now();
        let r = pipeline.analyze(&[f], None, &mut StageTimings::default());
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        r.into_iter().next().context("no result")??;
    }
    out.insert("latency_one_upload".into(), latency(ms));
    out.insert(
        "cores".into(),
        json!(std::thread::available_parallelism().map_or(1, |n| n.get())),
    );
    Ok(Value::Object(out))
}

fn device_backend(
    args: &Args,
    frames: &[RgbImage],
    archive: &[(PathBuf, Vec<u8>)],
) -> Result<Value> {
    let p = probe::probe_cuda();
    if !p.usable() {
        let why = p.summary();
        println!("no usable GPU ({why}): device figures not measured");
        return Ok(json!({ "skipped": why }));
    }
    let compiler = Compiler::new(None)?;
    let gpu = Gpu::new(0, &compiler)?;
    let device = gpu.device().clone();
    let peaks = gpu.peaks()?;
    println!(
        "{} (cc {}.{}, {} SMs): FP32 peak {:.1} TFLOP/s, memory {:.0} GB/s",
        device.name,
        device.compute_capability.0,
        device.compute_capability.1,
        peaks.sms,
        peaks.fp32_tflops,
        peaks.bandwidth_gb_s
    );
    let detector = Model::load(&args.models_dir.join("yunet_s_dynamic.onnx"))?;
    let embedder = Model::load(&args.models_dir.join("mobilefacenet_128d_dynamic.onnx"))?;
    let (det_flop, det_bytes) = cost(&detector, &[3, SIDE as usize, SIDE as usize])?;
    let (emb_flop, emb_bytes) = cost(&embedder, &[3, 112, 112])?;
    let max_batch = args.batches.iter().copied().max().unwrap_or(1);
    let cfg = DeviceConfig {
        max_views: max_batch.max(DeviceConfig::default().views_per_image_bound()),
        max_faces: 2 * max_batch,
        ..DeviceConfig::default()
    };
    let t = Instant::now();
    let mut pipe = DevicePipeline::new(gpu, &detector, &embedder, cfg)?;
    println!(
        "device pipeline: {:.0} MB of device memory, set up in {:.1} s",
        pipe.device_bytes() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let all = refs(frames);
    // Warm-up: every plan once.
    for &b in &args.batches {
        pipe.analyze(&all[..b.min(all.len())])?;
    }
    let mut rows = Vec::new();
    println!(
        "| batch | images/s | faces/s | upload | detect | align | embed (ms/image, profiled) | detector TFLOP/s (% peak) | GB/s (% peak) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &b in &args.batches {
        let n = args.images.max(4 * b);
        let batches: Vec<Vec<ImageRef<'_>>> = (0..n.div_ceil(b))
            .map(|k| (0..b).map(|i| all[(k * b + i) % all.len()]).collect())
            .collect();
        let t = Instant::now();
        let mut faces = 0;
        for batch in &batches {
            faces += pipe.analyze(batch)?.iter().map(Vec::len).sum::<usize>();
        }
        let s = t.elapsed().as_secs_f64();
        let images = batches.len() * b;
        // A profiled pass (synchronised after every stage) for the split.
        let mut st = StageTimes::default();
        for batch in batches.iter().take(8.max(64 / b)) {
            pipe.analyze_profiled(batch, &mut st)?;
        }
        let per = |d: Duration| d.as_secs_f64() * 1e3 / st.images.max(1) as f64;
        let det_s = st.detect.as_secs_f64();
        let emb_s = st.embed.as_secs_f64();
        let det_tflops = det_flop * st.images as f64 / det_s / 1e12;
        let emb_tflops = emb_flop * st.faces as f64 / emb_s / 1e12;
        let det_gbs = det_bytes * st.images as f64 / det_s / 1e9;
        let emb_gbs = emb_bytes * st.faces as f64 / emb_s / 1e9;
        println!(
            "| {b} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} ({:.1} %) | {:.0} ({:.1} %) |",
            images as f64 / s,
            faces as f64 / s,
            per(st.upload),
            per(st.detect),
            per(st.align),
            per(st.embed),
            det_tflops,
            100.0 * det_tflops / peaks.fp32_tflops,
            det_gbs,
            100.0 * det_gbs / peaks.bandwidth_gb_s
        );
        rows.push(json!({
            "batch": b, "images": images, "images_per_s": images as f64 / s,
            "faces_per_s": faces as f64 / s,
            "profiled_ms_per_image": { "upload": per(st.upload), "detect": per(st.detect),
                "align": per(st.align), "embed": per(st.embed) },
            "detect": { "tflop_per_s": det_tflops, "fp32_peak_share": det_tflops / peaks.fp32_tflops,
                "gb_per_s": det_gbs, "bandwidth_peak_share": det_gbs / peaks.bandwidth_gb_s },
            "embed": { "tflop_per_s": emb_tflops, "fp32_peak_share": emb_tflops / peaks.fp32_tflops,
                "gb_per_s": emb_gbs, "bandwidth_peak_share": emb_gbs / peaks.bandwidth_gb_s },
        }));
    }
    // One upload at a time, nothing else running.
    let mut ms = Vec::new();
    for r in all.iter().cycle().take(args.latency_runs) {
        let t = Instant::now();
        pipe.analyze(std::slice::from_ref(r))?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let lat = latency(ms);
    println!("one upload: {lat}");
    // JPEG archive: decoding on every core (rayon), the device in batches of 64.
    let limits = DecodeLimits::default();
    let t = Instant::now();
    let decoded: Vec<RgbImage> = archive
        .par_iter()
        .map(|(p, b)| {
            likeness_models::decode::decode(b, &limits)
                .with_context(|| format!("decoding {}", p.display()))
        })
        .collect::<Result<_>>()?;
    let decode_s = t.elapsed().as_secs_f64();
    let pixels: usize = decoded.iter().map(|i| (i.width * i.height) as usize).sum();
    let t = Instant::now();
    let mut faces = 0;
    for chunk in refs(&decoded).chunks(64) {
        faces += pipe.analyze(chunk)?.iter().map(Vec::len).sum::<usize>();
    }
    let device_s = t.elapsed().as_secs_f64();
    let (dec_rate, dev_rate) = (
        archive.len() as f64 / decode_s,
        archive.len() as f64 / device_s,
    );
    println!(
        "JPEG archive ({} files, {:.1} MP average): CPU decoding {dec_rate:.0} images/s on {} cores, device {dev_rate:.0} images/s ({faces} faces): limited by {}",
        archive.len(),
        pixels as f64 / archive.len().max(1) as f64 / 1e6,
        rayon::current_num_threads(),
        if dec_rate < dev_rate {
            "decoding"
        } else {
            "the device"
        }
    );
    Ok(json!({
        "device": device.name, "compute_capability": [device.compute_capability.0, device.compute_capability.1],
        "fp32_peak_tflops": peaks.fp32_tflops, "bandwidth_peak_gb_s": peaks.bandwidth_gb_s,
        "device_memory_mb": pipe.device_bytes() as f64 / 1e6,
        "flop_per_image": { "detect": det_flop, "embed_per_face": emb_flop },
        "frames_640": rows,
        "latency_one_upload": lat,
        "jpeg_archive": { "files": archive.len(), "mpix_average": pixels as f64 / archive.len().max(1) as f64 / 1e6,
            "decode_images_per_s": dec_rate, "decode_cores": rayon::current_num_threads(),
            "device_images_per_s": dev_rate, "faces": faces,
            "limited_by": if dec_rate < dev_rate { "decoding" } else { "device" },
            "limit_ratio": (dev_rate / dec_rate).max(dec_rate / dev_rate) },
    }))
}

fn main() -> Result<()> {
    let args = Args::parse();
    likeness_models::runtime::init(None)?;
    let limits = DecodeLimits::default();
    let sources = load_dir(&args.data_dir.join("faces_dev"), args.frames)?;
    let frames: Vec<RgbImage> = sources
        .par_iter()
        .map(|(p, b)| {
            let img = likeness_models::decode::decode(b, &limits)
                .with_context(|| format!("decoding {}", p.display()))?;
            frame(&img)
        })
        .collect::<Result<_>>()?;
    println!("{} frames of 640x640 with one face", frames.len());
    let archive = load_dir(&args.data_dir.join("photos"), 10_000)?;
    let device = device_backend(&args, &frames, &archive)?;
    let cpu = cpu_backend(&args, &frames)?;
    // For bench/src/bin/capacity.rs: a photo archive's images/s per GPU (JPEG decoding on
    // this host's cores included), only when a device was measured.
    let archive_rate = device.get("jpeg_archive").and_then(|a| {
        Some(
            a.get("decode_images_per_s")?
                .as_f64()?
                .min(a.get("device_images_per_s")?.as_f64()?),
        )
    });
    let mut out = json!({ "frames": frames.len(), "device": device, "cpu_backend": cpu });
    if let (Some(r), Some(o)) = (archive_rate, out.as_object_mut()) {
        o.insert("images_per_s".into(), json!(r));
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

//! Capacity planning: turns the measured throughputs in `bench/results/*.json` into images
//! per day per CPU core and per GPU for a given archive, the time to re-match the whole
//! archive and the cores (or GPUs) real-time uploads need.
//!
//! `cargo run --release -p likeness-bench --bin capacity -- --image-mpix 3 --faces-per-image 2
//! --archive-images 10000000 --new-share 0.05`
//!
//! The CPU model: the measured core-milliseconds per image of the chosen speed mode
//! (`speed.json`, `cpu_ms_per_image`), split over the stages in proportion to their measured
//! time; decoding scales with megapixels, alignment and embedding with faces, detection is
//! taken as measured (above ~1.5 MP the detail view is capped at 1920 px, so its cost hardly
//! grows with the photo). The GPU row comes from `gpu*.json` when a GPU run has written one
//! (`images_per_s`), else it says "not measured yet".
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::Value;

#[derive(Parser)]
#[command(about = "Images per day per CPU core and per GPU, from the measured throughputs")]
struct Args {
    /// Directory with the benchmark results (speed.json, gpu*.json).
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
    /// Mean image size of the archive in megapixels.
    #[arg(long, default_value_t = 3.0)]
    image_mpix: f64,
    /// Mean faces per image.
    #[arg(long, default_value_t = 2.0)]
    faces_per_image: f64,
    /// Images in the archive.
    #[arg(long, default_value_t = 10_000_000)]
    archive_images: u64,
    /// New uploads per year as a share of the archive.
    #[arg(long, default_value_t = 0.05)]
    new_share: f64,
    /// Target time to re-match the whole archive, in days (sizes the "units to re-match"
    /// column).
    #[arg(long, default_value_t = 7.0)]
    rematch_days: f64,
    /// Peak upload rate over the daily mean (uploads cluster in working hours).
    #[arg(long, default_value_t = 5.0)]
    peak_factor: f64,
    /// Speed mode to use (a `name` in speed.json); default: the fastest shipped Rust mode.
    #[arg(long)]
    mode: Option<String>,
}

/// The CPU cost of one image of the archive, in core-milliseconds.
struct CpuModel {
    mode: String,
    core_ms: f64,
    measured_core_ms: f64,
    set_mpix: f64,
    set_faces: f64,
    measured_images_per_s: f64,
    cores: f64,
}

fn num(v: &Value, key: &str) -> Result<f64> {
    v.get(key)
        .and_then(Value::as_f64)
        .with_context(|| format!("missing number {key}"))
}

fn cpu_model(results: &Path, args: &Args) -> Result<CpuModel> {
    let path = results.join("speed.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: run bash bench/speed.sh first", path.display()))?;
    let speed: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let modes = speed
        .get("modes")
        .and_then(Value::as_array)
        .with_context(|| format!("{}: no modes", path.display()))?;
    let mode = match &args.mode {
        Some(name) => modes
            .iter()
            .find(|m| m.get("name").and_then(Value::as_str) == Some(name))
            .with_context(|| format!("no mode {name:?} in {}", path.display()))?,
        None => modes
            .iter()
            .filter(|m| m.get("implementation").and_then(Value::as_str) == Some("rust"))
            .max_by(|a, b| {
                let f = |m: &Value| m.get("images_per_s").and_then(Value::as_f64).unwrap_or(0.0);
                f(a).total_cmp(&f(b))
            })
            .with_context(|| format!("no Rust mode in {}", path.display()))?,
    };
    let name = mode
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let set = speed.get("set").context("speed.json: no set")?;
    let set_mpix = num(set, "megapixels_total")? / num(set, "images")?;
    let set_faces = num(mode, "faces")? / num(mode, "images")?;
    let core_ms = num(mode, "cpu_ms_per_image")?;
    let stages = mode
        .get("stage_ms_per_image")
        .context("speed.json: no stage_ms_per_image")?;
    let total = num(stages, "total")?;
    if total <= 0.0 || core_ms <= 0.0 {
        bail!("speed.json: mode {name} has no time");
    }
    let share = |k: &str| num(stages, k).unwrap_or(0.0) / total * core_ms;
    let decode = share("decode") * args.image_mpix / set_mpix;
    let per_face = (share("align") + share("embed")) * args.faces_per_image / set_faces;
    let fixed = core_ms - share("decode") - share("align") - share("embed");
    Ok(CpuModel {
        mode: name,
        core_ms: decode + per_face + fixed,
        measured_core_ms: core_ms,
        set_mpix,
        set_faces,
        measured_images_per_s: num(mode, "images_per_s")?,
        cores: speed
            .get("machine")
            .and_then(|m| m.get("cores"))
            .and_then(Value::as_f64)
            .unwrap_or(1.0),
    })
}

/// `images_per_s` of the first `gpu*.json`, with its file name, if a GPU run wrote one.
fn gpu_measurement(results: &Path) -> Option<(f64, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(results)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("gpu") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files.into_iter().find_map(|p| {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).ok()?).ok()?;
        let ips = v.get("images_per_s")?.as_f64()?;
        Some((ips, p.display().to_string()))
    })
}

fn human_duration(secs: f64) -> String {
    if secs < 3600.0 {
        format!("{:.0} min", secs / 60.0)
    } else if secs < 86_400.0 * 2.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} days", secs / 86_400.0)
    }
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !(args.image_mpix > 0.0
        && args.faces_per_image >= 0.0
        && args.new_share >= 0.0
        && args.rematch_days > 0.0)
    {
        bail!(
            "--image-mpix and --rematch-days must be > 0, --faces-per-image and --new-share >= 0"
        );
    }
    let cpu = cpu_model(&args.results, &args)?;
    let uploads_per_day = args.archive_images as f64 * args.new_share / 365.0;
    let upload_rate = uploads_per_day / 86_400.0;
    let peak_rate = upload_rate * args.peak_factor;

    println!(
        "Archive: {} images of {:.1} MP with {:.1} faces each; new uploads {:.1} % of the archive per year = {} per day (mean {:.2}/s, peak x{:.0} = {:.2}/s).",
        thousands(args.archive_images as f64),
        args.image_mpix,
        args.faces_per_image,
        args.new_share * 100.0,
        thousands(uploads_per_day),
        upload_rate,
        args.peak_factor,
        peak_rate
    );
    println!(
        "CPU model: speed mode \"{}\" ({:.0} core-ms per image measured on photos of {:.2} MP with {:.2} faces, {:.2} images/s on {} cores) -> {:.0} core-ms per archive image.",
        cpu.mode,
        cpu.measured_core_ms,
        cpu.set_mpix,
        cpu.set_faces,
        cpu.measured_images_per_s,
        cpu.cores,
        cpu.core_ms
    );
    println!();
    println!(
        "| unit | images/s | images/day | re-match the archive on 1 unit | units to re-match in {} days | units for uploads (mean / peak) |",
        args.rematch_days
    );
    println!("|---|---|---|---|---|---|");
    let row = |unit: &str, ips: f64| {
        let per_day = ips * 86_400.0;
        let secs = args.archive_images as f64 / ips;
        println!(
            "| {unit} | {ips:.2} | {} | {} | {:.1} | {:.2} / {:.2} |",
            thousands(per_day),
            human_duration(secs),
            secs / (args.rematch_days * 86_400.0),
            upload_rate / ips,
            peak_rate / ips
        );
    };
    let core_ips = 1000.0 / cpu.core_ms;
    row("CPU core (ONNX Runtime, this model)", core_ips);
    match gpu_measurement(&args.results) {
        Some((ips, file)) => {
            row("GPU", ips);
            println!();
            println!("GPU: images/s from {file}.");
        }
        None => println!(
            "| GPU (CUDA backend) | not measured yet | not measured yet | not measured yet | not measured yet | not measured yet |"
        ),
    }
    Ok(())
}

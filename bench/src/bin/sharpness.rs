//! Calibration of `quality.min_sharpness` on ../shared/data/faces_dev: every crop is analysed
//! as it is and after a Gaussian blur of 1, 2, 3 and 4 aligned-crop pixels (the blur is
//! applied to the photo, scaled by the face's eye distance, so it means the same for every
//! face size). For each version: the sharpness of the largest face, its embedding's cosine
//! with the sharp version, and whether it still matches the other (sharp) photos of the same
//! person at `DEFAULT_MATCH_THRESHOLD` (genuine acceptance). Faces are then binned by
//! sharpness, whatever the blur that produced them, and the genuine acceptance per bin shows
//! below which sharpness a face stops being useful for identification.
//!
//! `cargo run --release -p likeness-bench --bin sharpness` (writes bench/results/sharpness.json)
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use likeness_bench::faces::identity;
use likeness_models::align::TEMPLATE;
use likeness_models::{
    DEFAULT_MATCH_THRESHOLD, Face, Pipeline, PipelineConfig, RgbImage, StageTimings,
};

#[derive(Parser)]
struct Args {
    /// Evaluation data.
    #[arg(long, env = "LIKENESS_DATA_DIR", default_value = "../shared/data")]
    data_dir: PathBuf,
    /// ONNX models.
    #[arg(long, env = "LIKENESS_MODELS_DIR", default_value = "../shared/models")]
    models_dir: PathBuf,
    /// Blur levels (Gaussian sigma in aligned-crop pixels; 0 = the photo as it is).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    sigmas: Vec<f32>,
    /// Output JSON.
    #[arg(long, default_value = "bench/results/sharpness.json")]
    out: PathBuf,
}

/// Approximately Gaussian blur of an RGB image: three box blurs per axis (edges clamped),
/// O(1) per pixel whatever `sigma`.
fn blur(img: &RgbImage, sigma: f32) -> RgbImage {
    // Box width for three passes: sqrt(12 sigma^2 / 3 + 1).
    let r = (((4.0 * sigma * sigma + 1.0).sqrt() - 1.0) / 2.0)
        .round()
        .max(1.0) as i64;
    let (w, h) = (img.width as i64, img.height as i64);
    let mut f: Vec<f32> = img.data.iter().map(|&v| f32::from(v)).collect();
    let mut tmp = vec![0f32; f.len()];
    let norm = 1.0 / (2 * r + 1) as f32;
    // One box pass along a line of `len` pixels whose pixel i is at `at(i)`.
    let line = |src: &[f32], dst: &mut [f32], len: i64, at: &dyn Fn(i64) -> usize| {
        for c in 0..3 {
            let px = |i: i64| src[at(i.clamp(0, len - 1)) * 3 + c];
            let mut acc: f32 = (-r..=r).map(px).sum();
            for i in 0..len {
                dst[at(i) * 3 + c] = acc * norm;
                acc += px(i + r + 1) - px(i - r);
            }
        }
    };
    for _ in 0..3 {
        for y in 0..h {
            line(&f, &mut tmp, w, &|x| (y * w + x) as usize);
        }
        for x in 0..w {
            line(&tmp, &mut f, h, &|y| (y * w + x) as usize);
        }
    }
    RgbImage {
        width: img.width,
        height: img.height,
        data: f
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect(),
        source_width: img.source_width,
        source_height: img.source_height,
    }
}

fn largest(faces: Vec<Face>) -> Option<Face> {
    faces.into_iter().max_by(|a, b| {
        (a.detection.width() * a.detection.height())
            .total_cmp(&(b.detection.width() * b.detection.height()))
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn percentile(sorted: &[f32], p: f64) -> f32 {
    if sorted.is_empty() {
        return f32::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One analysed version of one crop.
struct Sample {
    who: String,
    file: usize,
    sigma: f32,
    sharpness: f32,
    embedding: Vec<f32>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let p = Pipeline::load(PipelineConfig {
        models_dir: args.models_dir.clone(),
        ..Default::default()
    })?;
    let dir = args.data_dir.join("faces_dev");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|f| f.ends_with(".jpg"))
        .collect();
    files.sort();
    let eye_template = TEMPLATE[1][0] - TEMPLATE[0][0];
    let mut samples: Vec<Sample> = Vec::new();
    let mut t = StageTimings::default();
    let mut lost: BTreeMap<String, usize> = BTreeMap::new();
    for (fi, f) in files.iter().enumerate() {
        let Some(who) = identity(f) else { continue };
        let bytes = std::fs::read(dir.join(f))?;
        let img = p.decode(&bytes).with_context(|| f.clone())?;
        let Some(sharp) = p
            .analyze(&[&img], None, &mut t)
            .pop()
            .transpose()?
            .and_then(largest)
        else {
            continue;
        };
        let [le, re] = [sharp.detection.landmarks[0], sharp.detection.landmarks[1]];
        let eye = ((re[0] - le[0]).powi(2) + (re[1] - le[1]).powi(2)).sqrt();
        let px_per_crop_px = (eye / eye_template).max(0.1);
        for &sigma in &args.sigmas {
            let face = if sigma == 0.0 {
                Some(sharp.clone())
            } else {
                let b = blur(&img, sigma * px_per_crop_px);
                p.analyze(&[&b], None, &mut t)
                    .pop()
                    .transpose()?
                    .and_then(largest)
            };
            match face {
                Some(face) => samples.push(Sample {
                    who: who.to_owned(),
                    file: fi,
                    sigma,
                    sharpness: face.quality.sharpness,
                    embedding: face.embedding,
                }),
                None => *lost.entry(format!("{sigma}")).or_default() += 1,
            }
        }
        if fi % 100 == 0 {
            eprintln!("{fi}/{} files", files.len());
        }
    }

    // Sharp embeddings per person, for genuine comparisons.
    let sharp: Vec<&Sample> = samples.iter().filter(|s| s.sigma == 0.0).collect();
    let mut by_id: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in &sharp {
        by_id.entry(s.who.as_str()).or_default().push(s);
    }
    let original: BTreeMap<usize, &Sample> = sharp.iter().map(|s| (s.file, *s)).collect();
    // Per sample: (sharpness, genuine comparisons, accepted, cosine with its sharp version)
    let mut rows: Vec<(f32, f32, usize, usize, f32)> = Vec::new();
    for s in &samples {
        let others: Vec<&&Sample> = by_id
            .get(s.who.as_str())
            .map(|v| v.iter().filter(|o| o.file != s.file).collect())
            .unwrap_or_default();
        let accepted = others
            .iter()
            .filter(|o| cosine(&o.embedding, &s.embedding) >= DEFAULT_MATCH_THRESHOLD)
            .count();
        let same = original
            .get(&s.file)
            .map_or(f32::NAN, |o| cosine(&o.embedding, &s.embedding));
        rows.push((s.sigma, s.sharpness, others.len(), accepted, same));
    }

    println!("by blur (sigma in aligned-crop px):");
    println!(
        "{:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "sigma", "faces", "sharp p5", "p25", "p50", "p95", "genuine", "cos sharp"
    );
    let mut by_sigma = Vec::new();
    for &sigma in &args.sigmas {
        let sel: Vec<_> = rows.iter().filter(|r| r.0 == sigma).collect();
        let mut sh: Vec<f32> = sel.iter().map(|r| r.1).collect();
        sh.sort_by(f32::total_cmp);
        let (n, a) = sel.iter().fold((0, 0), |(n, a), r| (n + r.2, a + r.3));
        let cos = sel.iter().map(|r| r.4).sum::<f32>() / sel.len().max(1) as f32;
        let gar = a as f64 / n.max(1) as f64;
        println!(
            "{sigma:>6} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>10.3} {:>10.3}",
            sel.len(),
            percentile(&sh, 0.05),
            percentile(&sh, 0.25),
            percentile(&sh, 0.5),
            percentile(&sh, 0.95),
            gar,
            cos
        );
        by_sigma.push(serde_json::json!({
            "sigma_crop_px": sigma, "faces": sel.len(),
            "faces_lost": lost.get(&format!("{sigma}")).copied().unwrap_or(0),
            "sharpness_p5": percentile(&sh, 0.05), "sharpness_p25": percentile(&sh, 0.25),
            "sharpness_p50": percentile(&sh, 0.5), "sharpness_p95": percentile(&sh, 0.95),
            "genuine_acceptance": gar, "mean_cosine_with_sharp": cos,
        }));
    }

    println!("\nby sharpness (all blur levels together):");
    println!(
        "{:>14} {:>6} {:>10} {:>10}",
        "sharpness", "faces", "genuine", "cos sharp"
    );
    let edges = [
        0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0, 200.0, 400.0, 1e9,
    ];
    let mut by_bin = Vec::new();
    for w in edges.windows(2) {
        let sel: Vec<_> = rows.iter().filter(|r| r.1 >= w[0] && r.1 < w[1]).collect();
        if sel.is_empty() {
            continue;
        }
        let (n, a) = sel.iter().fold((0, 0), |(n, a), r| (n + r.2, a + r.3));
        let gar = a as f64 / n.max(1) as f64;
        let cos = sel.iter().map(|r| r.4).sum::<f32>() / sel.len() as f32;
        println!(
            "{:>6}-{:<7} {:>6} {:>10.3} {:>10.3}",
            w[0],
            if w[1] > 1e8 {
                "inf".to_owned()
            } else {
                w[1].to_string()
            },
            sel.len(),
            gar,
            cos
        );
        by_bin.push(serde_json::json!({
            "sharpness_from": w[0], "sharpness_to": w[1], "faces": sel.len(),
            "genuine_comparisons": n, "genuine_acceptance": gar, "mean_cosine_with_sharp": cos,
        }));
    }
    let report = serde_json::json!({
        "benchmark": "min_sharpness calibration on faces_dev (Gaussian blur of the photos)",
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "match_threshold": DEFAULT_MATCH_THRESHOLD,
        "files": files.len(),
        "by_sigma": by_sigma,
        "by_sharpness": by_bin,
    });
    if let Some(d) = args.out.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("results: {}", args.out.display());
    Ok(())
}

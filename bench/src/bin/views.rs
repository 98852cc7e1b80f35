//! What the issue-16 detection plan changes against the plan before it, image by image: the
//! detail view run only when the whole-image view hints at small faces (`detect.detail_view =
//! "when_hinted"`), and JPEGs decoded at a reduced DCT scale (`reduced_decode`).
//!
//! For every photo of the speed set (bench/peer/make_images.py) and the group photos it runs
//! the pipeline three times: the reference (detail view always, full decode), the whole-image
//! view alone (its candidates down to a low score, for the hint rule) and the new defaults.
//! It then evaluates every hint rule of a grid offline (which images would run the detail view,
//! how many faces each would lose against the reference) and compares the defaults with the
//! reference face by face (matched boxes, embedding cosine).
//!
//!   cargo build --release -p likeness-bench --bin views
//!   ORT_DYLIB_PATH=.cache/onnxruntime/libonnxruntime.so target/release/views \
//!     $(for f in ../shared/data/photos/*.jpg; do echo --extra $f; done)
//!   # faces_dev crops pasted into 1536x1152 canvases: verification with the detail view
//!   # always vs the defaults (bench/results/detail-view-canvas.json)
//!   target/release/views --canvas ../shared/data/faces_dev --out bench/results/detail-view-canvas.json
#![allow(clippy::print_stdout)] // a report tool: its report goes to stdout

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use likeness_models::detect::{DetailView, Detection, iou};
use likeness_models::{Face, Pipeline, PipelineConfig, StageTimings};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// set.json of the speed set.
    #[arg(long, default_value = ".cache/bench-images/set.json")]
    set: PathBuf,
    /// Extra image files (e.g. the deepface photos), added to the set.
    #[arg(long)]
    extra: Vec<PathBuf>,
    /// Models directory.
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Candidate floor of the whole-image pass (the lowest hint score evaluated).
    #[arg(long, default_value_t = 0.2)]
    floor: f32,
    /// Write the report here.
    #[arg(long, default_value = "bench/results/detail-view.json")]
    out: PathBuf,
    /// Instead: the faces_dev crops in this folder, each pasted (at its own size) into a grey
    /// canvas whose longer side is `--canvas-side`, embedded with the detail view always and
    /// with the defaults: verification (balanced accuracy, TAR at FAR 0.1 %) both ways. This
    /// isolates what skipping the detail view does to faces of ~50 px in the 640 view.
    #[arg(long)]
    canvas: Option<PathBuf>,
    /// Override detect.refine_face_size of the defaults.
    #[arg(long)]
    refine: Option<f32>,
    /// Longer side of the canvas (pixels).
    #[arg(long, default_value_t = 1536)]
    canvas_side: u32,
}

/// The `--canvas` experiment.
fn canvas_check(args: &Args, base: &PipelineConfig, dir: &std::path::Path) -> Result<()> {
    use likeness_bench::faces::identity;
    use likeness_bench::verification::{best_balanced_threshold, cosine, tar_at_far};
    let always = pipeline(base, |c| c.detect.detail_view = DetailView::Always)?;
    let defaults = Pipeline::load(base.clone())?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    files.sort();
    let side = args.canvas_side;
    let mut embs: Vec<(String, Vec<f32>, Vec<f32>, f32)> = Vec::new();
    let (mut detail_runs, mut both) = (0u64, 0usize);
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(id) = name.as_deref().and_then(identity).map(str::to_owned) else {
            continue;
        };
        let crop = image::open(f)?.to_rgb8();
        let (cw, ch) = crop.dimensions();
        let (w, h) = (side, side * 3 / 4);
        if cw >= w || ch >= h {
            continue;
        }
        let mut canvas = image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
        image::imageops::replace(
            &mut canvas,
            &crop,
            i64::from((w - cw) / 2),
            i64::from((h - ch) / 2),
        );
        let Some(img) = likeness_models::RgbImage::new(w, h, canvas.into_raw()) else {
            continue;
        };
        let largest = |p: &Pipeline, t: &mut StageTimings| -> Option<Face> {
            p.analyze(&[&img], None, t)
                .pop()
                .and_then(|r| r.ok())
                .and_then(|fs| {
                    fs.into_iter().max_by(|a, b| {
                        (a.detection.width() * a.detection.height())
                            .total_cmp(&(b.detection.width() * b.detection.height()))
                    })
                })
        };
        let mut t = StageTimings::default();
        let a = largest(&always, &mut t);
        let mut t2 = StageTimings::default();
        let b = largest(&defaults, &mut t2);
        detail_runs += t2.detect_views.saturating_sub(1);
        if let (Some(a), Some(b)) = (a, b) {
            both += 1;
            let size = a.quality.face_size * base.detect.input_size as f32 / w as f32;
            embs.push((id, a.embedding, b.embedding, size));
        }
    }
    let mut report = serde_json::Map::new();
    for (k, label) in [(0usize, "detail_view_always"), (1, "defaults_when_hinted")] {
        let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
        for i in 0..embs.len() {
            for j in i + 1..embs.len() {
                let (x, y) = if k == 0 {
                    (&embs[i].1, &embs[j].1)
                } else {
                    (&embs[i].2, &embs[j].2)
                };
                let c = cosine(x, y);
                if embs[i].0 == embs[j].0 {
                    genuine.push(c);
                } else {
                    impostor.push(c);
                }
            }
        }
        let (thr, bal) = best_balanced_threshold(&genuine, &impostor);
        let tar = tar_at_far(&genuine, &impostor, 0.001);
        println!(
            "{label}: balanced accuracy {:.2} % at {thr:.3}; TAR at FAR 0.1 % {:.2} % ({} genuine, {} impostor pairs)",
            bal * 100.0,
            tar.tar * 100.0,
            genuine.len(),
            impostor.len()
        );
        report.insert(
            label.into(),
            json!({"balanced_accuracy": bal, "threshold": thr, "tar_at_far_0_1": tar.tar,
                "genuine": genuine.len(), "impostor": impostor.len()}),
        );
    }
    let cos: Vec<f32> = embs.iter().map(|e| cosine(&e.1, &e.2)).collect();
    let mean = cos.iter().sum::<f32>() / cos.len().max(1) as f32;
    let mut sorted = cos.clone();
    sorted.sort_by(f32::total_cmp);
    let sizes: Vec<f32> = embs.iter().map(|e| e.3).collect();
    let mean_size = sizes.iter().sum::<f32>() / sizes.len().max(1) as f32;
    println!(
        "{both} crops with a face both ways; face {mean_size:.1} px in the 640 view on average; detail views run by the defaults: {detail_runs}; cosine always vs defaults mean {mean:.4}, 1st percentile {:.4}, min {:.4}",
        sorted.get(sorted.len() / 100).copied().unwrap_or(0.0),
        sorted.first().copied().unwrap_or(0.0)
    );
    report.insert(
        "command".into(),
        json!(std::env::args().collect::<Vec<_>>().join(" ")),
    );
    report.insert("crops".into(), json!(both));
    report.insert("mean_face_px_in_whole_view".into(), json!(mean_size));
    report.insert("detail_views_run_by_defaults".into(), json!(detail_runs));
    report.insert("cosine_mean".into(), json!(mean));
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

#[derive(serde::Deserialize)]
struct Entry {
    name: String,
    path: PathBuf,
}

struct Row {
    name: String,
    long_side: u32,
    has_detail: bool,
    reference: Vec<Face>,
    whole_only: usize,
    /// (score, shorter box side in the whole-image view's pixels) of its candidates.
    candidates: Vec<(f32, f32)>,
    defaults: Vec<Face>,
    reduced: bool,
    ms_reference: f64,
    ms_defaults: f64,
}

fn pipeline(base: &PipelineConfig, f: impl FnOnce(&mut PipelineConfig)) -> Result<Pipeline> {
    let mut cfg = base.clone();
    f(&mut cfg);
    Ok(Pipeline::load(cfg)?)
}

fn run(p: &Pipeline, bytes: &[u8]) -> Result<(Vec<Face>, bool, f64)> {
    let t = Instant::now();
    let img = p.decode(bytes)?;
    let mut st = StageTimings::default();
    let faces = p
        .analyze(&[&img], None, &mut st)
        .pop()
        .context("no result")??;
    Ok((faces, img.is_reduced(), t.elapsed().as_secs_f64() * 1e3))
}

/// Faces of `a` with a box of IoU >= 0.5 in `b`: (matched, cosines of the matched pairs).
fn matched(a: &[Face], b: &[Face]) -> (usize, Vec<f32>) {
    let pairs = matched_pairs(a, b);
    (pairs.len(), pairs.into_iter().map(|(_, c)| c).collect())
}

/// (shorter box side in file pixels of the `a` face, cosine) of the matched pairs.
fn matched_pairs(a: &[Face], b: &[Face]) -> Vec<(f32, f32)> {
    let mut cos = Vec::new();
    for f in a {
        if let Some(g) = b
            .iter()
            .max_by(|x, y| {
                iou(&f.detection.bbox, &x.detection.bbox)
                    .total_cmp(&iou(&f.detection.bbox, &y.detection.bbox))
            })
            .filter(|g| iou(&f.detection.bbox, &g.detection.bbox) >= 0.5)
        {
            cos.push((
                f.quality.face_size,
                f.embedding
                    .iter()
                    .zip(&g.embedding)
                    .map(|(x, y)| x * y)
                    .sum::<f32>(),
            ));
        }
    }
    cos
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut base = PipelineConfig::default();
    if let Some(d) = &args.models_dir {
        base.models_dir = d.clone();
    }
    if let Some(r) = args.refine {
        base.detect.refine_face_size = r;
    }
    if let Some(dir) = &args.canvas {
        return canvas_check(&args, &base, dir);
    }
    let reference = pipeline(&base, |c| {
        c.detect.detail_view = DetailView::Always;
        c.reduced_decode = false;
    })?;
    // The whole-image view alone, resampled from the image (as `when_hinted` does).
    let whole = pipeline(&base, |c| {
        c.detect.tile_max_side = 0;
        c.reduced_decode = false;
    })?;
    let defaults = Pipeline::load(base.clone())?;

    let set: Vec<Entry> = serde_json::from_slice(
        &std::fs::read(&args.set).with_context(|| format!("{}", args.set.display()))?,
    )?;
    let mut files: Vec<(String, PathBuf)> = set.into_iter().map(|e| (e.name, e.path)).collect();
    for x in &args.extra {
        let name = x.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(n) = name
            && !files.iter().any(|(m, _)| *m == n)
        {
            files.push((n, x.clone()));
        }
    }

    let mut rows = Vec::new();
    for (name, path) in &files {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let img = reference.decode(&bytes)?;
        let (w, h) = (img.width, img.height);
        let has_detail = base.detect.detail_scale(w, h).is_some();
        drop(img);
        let (refs, _, ms_reference) = run(&reference, &bytes)?;
        let (dflt, reduced, ms_defaults) = run(&defaults, &bytes)?;
        let full = whole.decode(&bytes)?;
        let cands: Vec<Detection> = whole
            .detect(&[&full], args.floor)
            .pop()
            .context("no result")??;
        let scale = base.detect.input_size as f32 / w.max(h) as f32;
        let whole_only = cands
            .iter()
            .filter(|d| d.score >= base.detect.score_threshold)
            .count();
        rows.push(Row {
            name: name.clone(),
            long_side: w.max(h),
            has_detail,
            reference: refs,
            whole_only,
            candidates: cands
                .iter()
                .map(|d| (d.score, d.width().min(d.height()) * scale))
                .collect(),
            defaults: dflt,
            reduced,
            ms_reference,
            ms_defaults,
        });
    }

    // Hint rules, evaluated offline.
    let mut grid = Vec::new();
    for &score in &[0.2f32, 0.3, 0.4, 0.5, 0.7] {
        for &size in &[12f32, 16.0, 20.0, 24.0, 32.0, 48.0] {
            let mut run_detail = 0;
            let mut lost = 0i64;
            let mut lost_images = Vec::new();
            for r in rows.iter().filter(|r| r.has_detail) {
                let hinted = r.candidates.iter().any(|&(s, z)| s >= score && z < size);
                if hinted {
                    run_detail += 1;
                } else {
                    let l = r.reference.len() as i64 - r.whole_only as i64;
                    if l > 0 {
                        lost += l;
                        lost_images.push(r.name.clone());
                    }
                }
            }
            grid.push(json!({"hint_score": score, "hint_size": size,
                "detail_views_run": run_detail, "faces_lost": lost, "images_losing": lost_images}));
        }
    }
    let with_detail = rows.iter().filter(|r| r.has_detail).count();
    let gains: Vec<_> = rows
        .iter()
        .filter(|r| r.has_detail && r.reference.len() != r.whole_only)
        .map(|r| json!({"image": r.name, "reference": r.reference.len(), "whole_view_only": r.whole_only}))
        .collect();

    // The defaults against the reference.
    let mut per_image = Vec::new();
    let (mut n_ref, mut n_def, mut differ) = (0, 0, Vec::new());
    let mut all_cos = Vec::new();
    let (mut t_ref, mut t_def) = (0.0, 0.0);
    for r in &rows {
        n_ref += r.reference.len();
        n_def += r.defaults.len();
        let (m, cos) = matched(&r.reference, &r.defaults);
        if r.reference.len() != r.defaults.len() || m != r.reference.len() {
            differ.push(json!({"image": r.name, "reference": r.reference.len(),
                "defaults": r.defaults.len(), "matched": m}));
        }
        let min_cos = cos.iter().copied().fold(1.0f32, f32::min);
        all_cos.extend(cos);
        t_ref += r.ms_reference;
        t_def += r.ms_defaults;
        let view_scale = base.detect.input_size as f32 / r.long_side.max(1) as f32;
        let faces: Vec<_> = matched_pairs(&r.reference, &r.defaults)
            .into_iter()
            .map(|(size, c)| json!({"size_in_whole_view": size * view_scale, "cosine": c}))
            .collect();
        per_image.push(
            json!({"image": r.name, "long_side": r.long_side, "faces": faces, "reference": r.reference.len(),
            "defaults": r.defaults.len(), "reduced_decode": r.reduced, "min_cosine": min_cos,
            "ms_reference": r.ms_reference, "ms_defaults": r.ms_defaults}),
        );
    }
    let mean_cos = all_cos.iter().sum::<f32>() / all_cos.len().max(1) as f32;
    let min_cos = all_cos.iter().copied().fold(1.0f32, f32::min);
    let skipped = rows
        .iter()
        .filter(|r| {
            r.has_detail
                && !r.candidates.iter().any(|&(s, z)| {
                    s >= base.detect.detail_hint_score && z < base.detect.detail_hint_size
                })
        })
        .count();
    let reduced = rows.iter().filter(|r| r.reduced).count();
    println!(
        "{} images ({} with a detail view); the detail view adds faces on {}: {:?}",
        rows.len(),
        with_detail,
        gains.len(),
        gains
    );
    println!("hint rules (score, size) -> detail views run, faces lost:");
    for g in &grid {
        println!(
            "  {:.1} {:>4.0}px -> {:>3} run, {} lost {}",
            g["hint_score"].as_f64().unwrap_or(0.0),
            g["hint_size"].as_f64().unwrap_or(0.0),
            g["detail_views_run"],
            g["faces_lost"],
            g["images_losing"]
        );
    }
    println!(
        "defaults (hint {} / {} px): detail view skipped on {skipped} of {with_detail}, {reduced} decoded reduced; faces {n_def} vs reference {n_ref}; {} images differ {:?}; embedding cosine to the reference mean {mean_cos:.4}, min {min_cos:.4}; one pass {:.0} ms vs {:.0} ms (busy machine: indicative)",
        base.detect.detail_hint_score,
        base.detect.detail_hint_size,
        differ.len(),
        differ,
        t_def,
        t_ref
    );
    let report = json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "images": rows.len(), "with_detail_view": with_detail,
        "detail_view_adds_faces": gains,
        "grid": grid,
        "defaults": {"detail_hint_score": base.detect.detail_hint_score,
            "detail_hint_size": base.detect.detail_hint_size,
            "detail_skipped": skipped, "decoded_reduced": reduced,
            "faces": n_def, "reference_faces": n_ref, "images_differ": differ,
            "embedding_cosine_mean": mean_cos, "embedding_cosine_min": min_cos,
            "ms_total": t_def, "ms_total_reference": t_ref},
        "per_image": per_image,
    });
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

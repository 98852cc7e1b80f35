//! `accuracy`: how well the face pipeline finds and tells apart faces on the evaluation data.
//!
//! - faces_dev (FaceScrub crops): every same-identity pair and as many seeded random
//!   different-identity pairs; LFW-style 10-fold accuracy (best threshold on 9 folds, tested on
//!   the 10th), TAR at FAR 1 % and 0.1 %, the recommended match threshold, and the pairs the
//!   model cannot explain (likely mislabels), reported, not removed.
//! - photos/master.csv (deepface's labelled pairs): the same protocol.
//! - group/: faces found against the known number of people.
//!
//! Prints a report and writes it as JSON (default bench/results/accuracy.json). Run from the
//! repository root: `cargo run --release -p likeness-bench --bin accuracy`.
#![allow(clippy::print_stdout)] // a report tool: its report goes to stdout

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use likeness_bench::faces::{Embedded, embed_file, identity};
use likeness_bench::verification::{
    self, KFold, Rates, Scored, SplitMix64, TarAtFar, cosine, kfold, rates_at, stratified_folds,
    tar_at_far,
};
use likeness_models::{DEFAULT_MATCH_THRESHOLD, Pipeline, PipelineConfig, StageTimings};
use serde::Serialize;

/// Published figures (shared/models/MANIFEST.md) for YuNet-s + MobileFaceNet.
const PUBLISHED_KFOLD_ACCURACY: f64 = 0.9746;
const PUBLISHED_TAR_AT_FAR_1: f64 = 0.958;
const PUBLISHED_THRESHOLD: f32 = 0.29;
const PUBLISHED_DEEPFACE_ACCURACY: f64 = 0.9967;
const PUBLISHED_DEEPFACE_SAME_MEAN: f64 = 0.74;
const PUBLISHED_DEEPFACE_DIFF_MEAN: f64 = 0.03;

/// Known number of people on each group photo.
const GROUPS: [(&str, usize); 4] = [
    ("solvay_conference_1927.png", 29),
    ("insightface_t1.jpg", 6),
    ("deepface_selfie-many-people.jpg", 6),
    ("deepface_couple.jpg", 2),
];

/// A same-identity pair scoring below this is not explained by the model (different people
/// score about 0.03 on average): most likely one image is mislabelled.
const UNEXPLAINED_SAME_BELOW: f32 = 0.0;
/// A different-identity pair scoring above this (about the mean of same-person pairs) is not
/// explained either: a duplicate image or one person filed under two names.
const UNEXPLAINED_DIFF_ABOVE: f32 = 0.7;

#[derive(Parser, Debug)]
#[command(about = "Verification accuracy and face counts of the Likeness pipeline")]
struct Args {
    /// Evaluation data (faces_dev/, photos/, group/).
    #[arg(long, env = "LIKENESS_DATA_DIR", default_value = "../shared/data")]
    data_dir: PathBuf,
    /// ONNX models directory.
    #[arg(long, env = "LIKENESS_MODELS_DIR", default_value = "../shared/models")]
    models_dir: PathBuf,
    /// Detector model id.
    #[arg(long, default_value = "yunet_s")]
    detector: String,
    /// Embedder model id.
    #[arg(long, default_value = "mobilefacenet_128")]
    embedder: String,
    /// Allow a non-commercial model (SCRFD) for comparison.
    #[arg(long)]
    allow_non_commercial: bool,
    /// Number of folds.
    #[arg(long, default_value_t = 10)]
    folds: usize,
    /// Seed of the different-identity pairs and of the folds.
    #[arg(long, default_value_t = 20_240_601)]
    seed: u64,
    /// Further draws of different-identity pairs and folds (seeds seed+1, seed+2, ...) over
    /// which the 10-fold accuracy and threshold are averaged.
    #[arg(long, default_value_t = 20)]
    resamples: u64,
    /// Inference threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Where to write the JSON report ("-" for none).
    #[arg(long, default_value = "bench/results/accuracy.json")]
    out: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
struct ImageIssue {
    file: String,
    problem: String,
}

#[derive(Debug, Clone, Serialize)]
struct PairOut {
    a: String,
    b: String,
    score: f32,
}

#[derive(Debug, Clone, Serialize)]
struct Verification {
    images: usize,
    images_with_face: usize,
    images_with_several_faces: Vec<String>,
    no_face: Vec<ImageIssue>,
    same_pairs: usize,
    same_pairs_skipped_no_face: usize,
    diff_pairs: usize,
    kfold: KFold,
    same_mean_cosine: f64,
    diff_mean_cosine: f64,
    tar_at_far: Vec<TarAtFar>,
    at_current_default_threshold: Rates,
}

#[derive(Debug, Clone, Serialize)]
struct Unexplained {
    same_below: f32,
    same_pairs_below: usize,
    worst_same_pairs: Vec<PairOut>,
    suspected_mislabelled_images: Vec<String>,
    same_pairs_below_with_suspect: usize,
    false_rejects_at_recommended: usize,
    false_rejects_with_suspect: usize,
    diff_above: f32,
    diff_pairs_above_all_impostors: usize,
    worst_diff_pairs: Vec<PairOut>,
}

/// The 10-fold protocol repeated over fresh draws of different-identity pairs and folds.
#[derive(Debug, Clone, Serialize)]
struct Resampled {
    draws: usize,
    accuracy_mean: f64,
    accuracy_std: f64,
    threshold_mean: f32,
    threshold_std: f32,
    threshold_min: f32,
    threshold_max: f32,
}

#[derive(Debug, Clone, Serialize)]
struct FacesDev {
    identities: usize,
    verification: Verification,
    /// The recommended threshold (mean 10-fold threshold over all draws, 2 decimals).
    recommended_threshold: f32,
    /// Rates at the recommended threshold on the first draw's pairs.
    at_recommended: Rates,
    /// The same protocol over `draws` draws (the first is the one above).
    resampled: Resampled,
    /// The threshold with the best balanced accuracy over all same and all different pairs.
    balanced_optimum_all_pairs: Balanced,
    /// TAR at FAR over every different-identity pair (not only the sampled ones).
    tar_at_far_all_impostors: Vec<TarAtFar>,
    all_impostor_pairs: usize,
    at_recommended_all_impostors: Rates,
    unexplained: Unexplained,
}

#[derive(Debug, Clone, Serialize)]
struct Balanced {
    threshold: f32,
    balanced_accuracy: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Deepface {
    pairs_in_csv: usize,
    verification: Verification,
    /// Accuracy of the faces_dev recommended threshold on these pairs (no refitting).
    accuracy_at_recommended: f64,
    at_recommended: Rates,
    errors_at_recommended: Vec<PairOut>,
}

#[derive(Debug, Clone, Serialize)]
struct GroupBox {
    bbox: [f32; 4],
    score: f32,
}

#[derive(Debug, Clone, Serialize)]
struct Group {
    file: String,
    width: u32,
    height: u32,
    expected: usize,
    found: usize,
    ok: bool,
    boxes: Vec<GroupBox>,
}

#[derive(Debug, Clone, Serialize)]
struct Published {
    kfold_accuracy: f64,
    tar_at_far_1: f64,
    threshold: f32,
    deepface_accuracy: f64,
    deepface_same_mean: f64,
    deepface_diff_mean: f64,
    note: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    detector: String,
    embedder: String,
    seed: u64,
    folds: usize,
    face_choice: &'static str,
    recommended_threshold: f32,
    recommended_threshold_rule: &'static str,
    current_default_threshold: f32,
    faces_dev: FacesDev,
    deepface_pairs: Deepface,
    groups: Vec<Group>,
    published: Published,
    seconds: f64,
    stage_seconds: BTreeMap<&'static str, f64>,
}

fn mean(v: &[f32]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
    }
}

const FARS: [f64; 2] = [0.01, 0.001];

/// Scores, folds and rates for a list of labelled pairs of embedded images.
#[allow(clippy::too_many_arguments)]
fn verify(
    images: usize,
    embedded: &[Option<Embedded>],
    names: &[String],
    same: &[(usize, usize)],
    diff: &[(usize, usize)],
    same_skipped: usize,
    folds: usize,
    rng: &mut SplitMix64,
) -> (Verification, Vec<f32>, Vec<f32>) {
    let score = |&(a, b): &(usize, usize)| -> f32 {
        match (&embedded[a], &embedded[b]) {
            (Some(x), Some(y)) => cosine(&x.embedding, &y.embedding),
            _ => f32::NAN,
        }
    };
    let genuine: Vec<f32> = same.iter().map(score).collect();
    let imp: Vec<f32> = diff.iter().map(score).collect();
    let pairs: Vec<Scored> = genuine
        .iter()
        .map(|&s| Scored {
            score: s,
            same: true,
        })
        .chain(imp.iter().map(|&s| Scored {
            score: s,
            same: false,
        }))
        .collect();
    let labels: Vec<bool> = pairs.iter().map(|p| p.same).collect();
    let fold_ids = stratified_folds(&labels, folds, rng);
    let kf = kfold(&pairs, &fold_ids, folds);
    let no_face = embedded
        .iter()
        .zip(names)
        .filter(|(e, _)| e.is_none())
        .map(|(_, n)| ImageIssue {
            file: n.clone(),
            problem: "no face found".into(),
        })
        .collect();
    let v = Verification {
        images,
        images_with_face: embedded.iter().filter(|e| e.is_some()).count(),
        images_with_several_faces: embedded
            .iter()
            .zip(names)
            .filter(|(e, _)| e.as_ref().is_some_and(|e| e.faces > 1))
            .map(|(_, n)| n.clone())
            .collect(),
        no_face,
        same_pairs: same.len(),
        same_pairs_skipped_no_face: same_skipped,
        diff_pairs: diff.len(),
        same_mean_cosine: mean(&genuine),
        diff_mean_cosine: mean(&imp),
        tar_at_far: FARS
            .iter()
            .map(|&f| tar_at_far(&genuine, &imp, f))
            .collect(),
        at_current_default_threshold: rates_at(&genuine, &imp, DEFAULT_MATCH_THRESHOLD),
        kfold: kf,
    };
    (v, genuine, imp)
}

fn round2(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

fn list_jpgs(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        if let Some(n) = e.file_name().to_str()
            && e.file_type()?.is_file()
        {
            out.push(n.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// `n` distinct random pairs of images of different identities.
fn sample_diff(
    rng: &mut SplitMix64,
    with_face: &[usize],
    ids: &[&str],
    n: usize,
) -> Vec<(usize, usize)> {
    let mut seen = HashSet::new();
    let mut diff = Vec::with_capacity(n);
    let mut tries = 0usize;
    while diff.len() < n && tries < n * 1000 + 1000 {
        tries += 1;
        let a = with_face[rng.below(with_face.len())];
        let b = with_face[rng.below(with_face.len())];
        if ids[a] == ids[b] {
            continue;
        }
        let key = (a.min(b), a.max(b));
        if seen.insert(key) {
            diff.push(key);
        }
    }
    diff
}

fn std_dev(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

fn faces_dev(
    p: &Pipeline,
    args: &Args,
    timings: &mut StageTimings,
) -> Result<(FacesDev, Vec<String>)> {
    let dir = args.data_dir.join("faces_dev");
    let files: Vec<String> = list_jpgs(&dir)?
        .into_iter()
        .filter(|f| identity(f).is_some())
        .collect();
    if files.is_empty() {
        bail!("no *_<id>_crop.jpg files in {}", dir.display());
    }
    eprintln!("faces_dev: embedding {} crops", files.len());
    let mut embedded = Vec::with_capacity(files.len());
    let mut issues = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match embed_file(p, &dir.join(f), timings) {
            Ok(e) => embedded.push(e),
            Err(msg) => {
                issues.push(ImageIssue {
                    file: f.clone(),
                    problem: msg,
                });
                embedded.push(None);
            }
        }
        if (i + 1) % 200 == 0 {
            eprintln!("  {}/{}", i + 1, files.len());
        }
    }
    let ids: Vec<&str> = files.iter().filter_map(|f| identity(f)).collect();
    let mut by_id: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        by_id.entry(id).or_default().push(i);
    }

    // Every same-identity pair of images where both have a face.
    let mut same = Vec::new();
    let mut same_skipped = 0;
    for members in by_id.values() {
        for (k, &a) in members.iter().enumerate() {
            for &b in &members[k + 1..] {
                if embedded[a].is_some() && embedded[b].is_some() {
                    same.push((a, b));
                } else {
                    same_skipped += 1;
                }
            }
        }
    }
    // As many seeded random different-identity pairs, without repeats.
    let mut rng = SplitMix64::new(args.seed);
    let with_face: Vec<usize> = (0..files.len())
        .filter(|&i| embedded[i].is_some())
        .collect();
    let diff = sample_diff(&mut rng, &with_face, &ids, same.len());
    let (mut v, genuine, sampled_imp) = verify(
        files.len(),
        &embedded,
        &files,
        &same,
        &diff,
        same_skipped,
        args.folds,
        &mut rng,
    );
    v.no_face.extend(issues);

    // The protocol again over fresh draws: how much accuracy and threshold depend on the draw.
    let (mut accs, mut thrs) = (
        vec![v.kfold.mean_accuracy],
        vec![f64::from(v.kfold.mean_threshold)],
    );
    for r in 1..=args.resamples {
        let mut rng = SplitMix64::new(args.seed.wrapping_add(r));
        let diff = sample_diff(&mut rng, &with_face, &ids, same.len());
        let (d, _, _) = verify(
            files.len(),
            &embedded,
            &files,
            &same,
            &diff,
            same_skipped,
            args.folds,
            &mut rng,
        );
        accs.push(d.kfold.mean_accuracy);
        thrs.push(f64::from(d.kfold.mean_threshold));
    }
    let resampled = Resampled {
        draws: accs.len(),
        accuracy_mean: accs.iter().sum::<f64>() / accs.len() as f64,
        accuracy_std: std_dev(&accs),
        threshold_mean: (thrs.iter().sum::<f64>() / thrs.len() as f64) as f32,
        threshold_std: std_dev(&thrs) as f32,
        threshold_min: thrs.iter().copied().fold(f64::INFINITY, f64::min) as f32,
        threshold_max: thrs.iter().copied().fold(f64::NEG_INFINITY, f64::max) as f32,
    };
    let recommended = round2(resampled.threshold_mean);

    // Every different-identity pair, for TAR at small FARs.
    let mut all_imp = Vec::new();
    let mut worst_diff: Vec<(usize, usize, f32)> = Vec::new();
    for (k, &a) in with_face.iter().enumerate() {
        for &b in &with_face[k + 1..] {
            if ids[a] == ids[b] {
                continue;
            }
            let (Some(x), Some(y)) = (&embedded[a], &embedded[b]) else {
                continue;
            };
            let s = cosine(&x.embedding, &y.embedding);
            if s > UNEXPLAINED_DIFF_ABOVE {
                worst_diff.push((a, b, s));
            }
            all_imp.push(s);
        }
    }
    worst_diff.sort_by(|x, y| y.2.total_cmp(&x.2));

    // Suspected mislabels: images whose median cosine with the other images of their identity
    // (at least two others) is below the bound.
    let mut suspects = HashSet::new();
    for members in by_id.values() {
        let with: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| embedded[i].is_some())
            .collect();
        if with.len() < 3 {
            continue;
        }
        for &a in &with {
            let mut s: Vec<f32> = with
                .iter()
                .filter(|&&b| b != a)
                .filter_map(|&b| match (&embedded[a], &embedded[b]) {
                    (Some(x), Some(y)) => Some(cosine(&x.embedding, &y.embedding)),
                    _ => None,
                })
                .collect();
            s.sort_by(f32::total_cmp);
            if s[s.len() / 2] < UNEXPLAINED_SAME_BELOW {
                suspects.insert(a);
            }
        }
    }
    let mut worst_same: Vec<(usize, usize, f32)> = same
        .iter()
        .zip(&genuine)
        .map(|(&(a, b), &s)| (a, b, s))
        .collect();
    worst_same.sort_by(|x, y| x.2.total_cmp(&y.2));
    let below: Vec<&(usize, usize, f32)> = worst_same
        .iter()
        .filter(|x| x.2 < UNEXPLAINED_SAME_BELOW)
        .collect();
    let rejected: Vec<&(usize, usize, f32)> =
        worst_same.iter().filter(|x| x.2 < recommended).collect();
    let has_suspect =
        |x: &&&(usize, usize, f32)| suspects.contains(&x.0) || suspects.contains(&x.1);
    let pair_out = |&(a, b, s): &(usize, usize, f32)| PairOut {
        a: files[a].clone(),
        b: files[b].clone(),
        score: s,
    };
    let mut suspect_names: Vec<String> = suspects.iter().map(|&i| files[i].clone()).collect();
    suspect_names.sort();
    let unexplained = Unexplained {
        same_below: UNEXPLAINED_SAME_BELOW,
        same_pairs_below: below.len(),
        worst_same_pairs: worst_same.iter().take(20).map(pair_out).collect(),
        suspected_mislabelled_images: suspect_names,
        same_pairs_below_with_suspect: below.iter().filter(has_suspect).count(),
        false_rejects_at_recommended: rejected.len(),
        false_rejects_with_suspect: rejected.iter().filter(has_suspect).count(),
        diff_above: UNEXPLAINED_DIFF_ABOVE,
        diff_pairs_above_all_impostors: worst_diff.len(),
        worst_diff_pairs: worst_diff.iter().take(20).map(pair_out).collect(),
    };
    let (bt, ba) = verification::best_balanced_threshold(&genuine, &all_imp);
    let fd = FacesDev {
        identities: by_id.len(),
        recommended_threshold: recommended,
        at_recommended: rates_at(&genuine, &sampled_imp, recommended),
        resampled,
        balanced_optimum_all_pairs: Balanced {
            threshold: bt,
            balanced_accuracy: ba,
        },
        tar_at_far_all_impostors: FARS
            .iter()
            .map(|&f| tar_at_far(&genuine, &all_imp, f))
            .collect(),
        all_impostor_pairs: all_imp.len(),
        at_recommended_all_impostors: rates_at(&genuine, &all_imp, recommended),
        verification: v,
        unexplained,
    };
    Ok((fd, files))
}

fn deepface(
    p: &Pipeline,
    args: &Args,
    recommended: f32,
    timings: &mut StageTimings,
) -> Result<Deepface> {
    let dir = args.data_dir.join("photos");
    let csv_path = dir.join("master.csv");
    let csv = std::fs::read_to_string(&csv_path)
        .with_context(|| format!("reading {}", csv_path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in csv.lines().enumerate().skip(1) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let [x, y, d] = cols[..] else {
            bail!("{}:{}: expected 3 columns", csv_path.display(), n + 1);
        };
        let same = match d {
            "Yes" => true,
            "No" => false,
            other => bail!("{}:{}: decision {other:?}", csv_path.display(), n + 1),
        };
        rows.push((x.to_owned(), y.to_owned(), same));
    }
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|(x, y, _)| [x.clone(), y.clone()])
        .collect();
    names.sort();
    names.dedup();
    eprintln!(
        "photos: embedding {} images of {} pairs",
        names.len(),
        rows.len()
    );
    let mut embedded = Vec::with_capacity(names.len());
    let mut issues = Vec::new();
    for f in &names {
        match embed_file(p, &dir.join(f), timings) {
            Ok(e) => embedded.push(e),
            Err(msg) => {
                issues.push(ImageIssue {
                    file: f.clone(),
                    problem: msg,
                });
                embedded.push(None);
            }
        }
    }
    let index = |f: &str| names.iter().position(|n| n == f).unwrap_or(0);
    let (mut same, mut diff) = (Vec::new(), Vec::new());
    let mut skipped = 0;
    for (x, y, s) in &rows {
        let (a, b) = (index(x), index(y));
        if embedded[a].is_none() || embedded[b].is_none() {
            skipped += 1;
            continue;
        }
        if *s {
            same.push((a, b));
        } else {
            diff.push((a, b));
        }
    }
    let mut rng = SplitMix64::new(args.seed ^ 0x00de_e9fa_ce00);
    let (mut v, genuine, imp) = verify(
        names.len(),
        &embedded,
        &names,
        &same,
        &diff,
        skipped,
        args.folds,
        &mut rng,
    );
    v.no_face.extend(issues);
    let pairs: Vec<Scored> = genuine
        .iter()
        .map(|&s| Scored {
            score: s,
            same: true,
        })
        .chain(imp.iter().map(|&s| Scored {
            score: s,
            same: false,
        }))
        .collect();
    let mut errors: Vec<PairOut> = same
        .iter()
        .zip(&genuine)
        .filter(|(_, s)| **s < recommended)
        .chain(diff.iter().zip(&imp).filter(|(_, s)| **s >= recommended))
        .map(|(&(a, b), &s)| PairOut {
            a: names[a].clone(),
            b: names[b].clone(),
            score: s,
        })
        .collect();
    errors.sort_by(|x, y| x.a.cmp(&y.a).then(x.b.cmp(&y.b)));
    Ok(Deepface {
        pairs_in_csv: rows.len(),
        accuracy_at_recommended: verification::accuracy_at(&pairs, recommended),
        at_recommended: rates_at(&genuine, &imp, recommended),
        errors_at_recommended: errors,
        verification: v,
    })
}

fn groups(p: &Pipeline, args: &Args, timings: &mut StageTimings) -> Result<Vec<Group>> {
    let dir = args.data_dir.join("group");
    let mut out = Vec::new();
    for (file, expected) in GROUPS {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let t = Instant::now();
        let img = p
            .decode(&bytes)
            .with_context(|| format!("decoding {}", path.display()))?;
        timings.decode += t.elapsed();
        let faces = p
            .analyze(&[&img], None, timings)
            .pop()
            .unwrap_or_else(|| Ok(Vec::new()))
            .with_context(|| format!("analysing {}", path.display()))?;
        let mut boxes: Vec<GroupBox> = faces
            .iter()
            .map(|f| GroupBox {
                bbox: f.detection.bbox.map(|v| (v * 10.0).round() / 10.0),
                score: (f.detection.score * 1000.0).round() / 1000.0,
            })
            .collect();
        boxes.sort_by(|a, b| a.bbox[0].total_cmp(&b.bbox[0]));
        out.push(Group {
            file: file.to_owned(),
            width: img.width,
            height: img.height,
            expected,
            found: faces.len(),
            ok: faces.len() == expected,
            boxes,
        });
    }
    Ok(out)
}

fn print_verification(title: &str, v: &Verification) {
    println!("{title}");
    println!(
        "  images {} (face found on {}, several faces on {}), pairs: {} same + {} different ({} same pairs skipped: no face)",
        v.images,
        v.images_with_face,
        v.images_with_several_faces.len(),
        v.same_pairs,
        v.diff_pairs,
        v.same_pairs_skipped_no_face
    );
    for i in &v.no_face {
        println!("  no face: {} ({})", i.file, i.problem);
    }
    for f in &v.images_with_several_faces {
        println!("  several faces (the largest is used): {f}");
    }
    println!(
        "  {}-fold accuracy {} ± {} (std), mean threshold {:.3}; mean cosine same {:.3}, different {:.3}",
        v.kfold.folds,
        pct(v.kfold.mean_accuracy),
        pct(v.kfold.std_accuracy),
        v.kfold.mean_threshold,
        v.same_mean_cosine,
        v.diff_mean_cosine
    );
    for t in &v.tar_at_far {
        println!(
            "  TAR {} at FAR {} (threshold {:.3}, actual FAR {}, {} impostor pairs)",
            pct(t.tar),
            pct(t.target_far),
            t.threshold,
            pct(t.far),
            t.impostors
        );
    }
    print_rates("current default", &v.at_current_default_threshold);
}

fn print_rates(what: &str, r: &Rates) {
    println!(
        "  at the {what} threshold {:.2}: TAR {}, FAR {} ({} false rejects, {} false accepts)",
        r.threshold,
        pct(r.tar),
        pct(r.far),
        r.false_rejects,
        r.false_accepts
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    let start = Instant::now();
    let mut cfg = PipelineConfig {
        models_dir: args.models_dir.clone(),
        detector: args.detector.clone(),
        embedder: args.embedder.clone(),
        allow_non_commercial: args.allow_non_commercial,
        ..Default::default()
    };
    if let Some(t) = args.threads {
        cfg.threads = t;
    }
    let p = Pipeline::load(cfg).context("loading the pipeline")?;
    let mut timings = StageTimings::default();

    let (fd, _) = faces_dev(&p, &args, &mut timings)?;
    let recommended = fd.recommended_threshold;
    let df = deepface(&p, &args, recommended, &mut timings)?;
    let gr = groups(&p, &args, &mut timings)?;

    let mut stage_seconds = BTreeMap::new();
    stage_seconds.insert("decode", timings.decode.as_secs_f64());
    stage_seconds.insert("detect", timings.detect.as_secs_f64());
    stage_seconds.insert("align", timings.align.as_secs_f64());
    stage_seconds.insert("embed", timings.embed.as_secs_f64());
    let report = Report {
        detector: args.detector.clone(),
        embedder: args.embedder.clone(),
        seed: args.seed,
        folds: args.folds,
        face_choice: "the largest detected face of each image (ties: the higher score)",
        recommended_threshold: recommended,
        recommended_threshold_rule: "faces_dev: the 10-fold mean threshold averaged over the seeded draws of different-identity pairs, rounded to 2 decimals",
        current_default_threshold: DEFAULT_MATCH_THRESHOLD,
        faces_dev: fd,
        deepface_pairs: df,
        groups: gr,
        published: Published {
            kfold_accuracy: PUBLISHED_KFOLD_ACCURACY,
            tar_at_far_1: PUBLISHED_TAR_AT_FAR_1,
            threshold: PUBLISHED_THRESHOLD,
            deepface_accuracy: PUBLISHED_DEEPFACE_ACCURACY,
            deepface_same_mean: PUBLISHED_DEEPFACE_SAME_MEAN,
            deepface_diff_mean: PUBLISHED_DEEPFACE_DIFF_MEAN,
            note: "shared/models/MANIFEST.md; measured on 1,780 FaceScrub crops (2,820 + 2,820 pairs), of which faces_dev is a subset",
        },
        seconds: start.elapsed().as_secs_f64(),
        stage_seconds,
    };

    print_report(&report);
    if args.out.as_os_str() != "-" {
        if let Some(dir) = args.out.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut json = serde_json::to_string_pretty(&report)?;
        json.push('\n');
        std::fs::write(&args.out, json)
            .with_context(|| format!("writing {}", args.out.display()))?;
        println!("\nwrote {}", args.out.display());
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "Likeness accuracy: detector {}, embedder {}, seed {}, {} folds",
        r.detector, r.embedder, r.seed, r.folds
    );
    println!("face per image: {}\n", r.face_choice);
    let fd = &r.faces_dev;
    print_verification(
        &format!(
            "faces_dev ({} identities): all same-identity pairs + as many random different-identity pairs",
            fd.identities
        ),
        &fd.verification,
    );
    print_rates("recommended", &fd.at_recommended);
    let rs = &fd.resampled;
    println!(
        "  over {} draws of different-identity pairs and folds: accuracy {} ± {}, threshold {:.3} ± {:.3} (min {:.3}, max {:.3})",
        rs.draws,
        pct(rs.accuracy_mean),
        pct(rs.accuracy_std),
        rs.threshold_mean,
        rs.threshold_std,
        rs.threshold_min,
        rs.threshold_max
    );
    println!(
        "  best balanced accuracy over all same and all different pairs: {} at threshold {:.3}",
        pct(fd.balanced_optimum_all_pairs.balanced_accuracy),
        fd.balanced_optimum_all_pairs.threshold
    );
    for t in &fd.tar_at_far_all_impostors {
        println!(
            "  over all {} different-identity pairs: TAR {} at FAR {} (threshold {:.3})",
            t.impostors,
            pct(t.tar),
            pct(t.target_far),
            t.threshold
        );
    }
    let a = &fd.at_recommended_all_impostors;
    println!(
        "  over all different-identity pairs at {:.2}: FAR {} ({} false accepts)",
        a.threshold,
        pct(a.far),
        a.false_accepts
    );
    let u = &fd.unexplained;
    println!(
        "  unexplained: {} same-identity pairs below cosine {:.1} ({} involve one of {} images that disagree with most of their identity: likely mislabels); \
         {} of the {} false rejects at {:.2} involve such an image; {} different-identity pairs above cosine {:.1}",
        u.same_pairs_below,
        u.same_below,
        u.same_pairs_below_with_suspect,
        u.suspected_mislabelled_images.len(),
        u.false_rejects_with_suspect,
        u.false_rejects_at_recommended,
        r.recommended_threshold,
        u.diff_pairs_above_all_impostors,
        u.diff_above
    );
    for s in &u.suspected_mislabelled_images {
        println!("    suspected mislabel: {s}");
    }
    for pr in u.worst_same_pairs.iter().take(5) {
        println!("    lowest same pair: {:.3} {} {}", pr.score, pr.a, pr.b);
    }
    for pr in u.worst_diff_pairs.iter().take(5) {
        println!(
            "    highest different pair: {:.3} {} {}",
            pr.score, pr.a, pr.b
        );
    }
    println!();
    let df = &r.deepface_pairs;
    print_verification(
        &format!("photos/master.csv ({} labelled pairs)", df.pairs_in_csv),
        &df.verification,
    );
    print_rates("recommended (faces_dev)", &df.at_recommended);
    println!(
        "  with the faces_dev threshold {:.2} (not refitted): accuracy {}, {} errors",
        r.recommended_threshold,
        pct(df.accuracy_at_recommended),
        df.errors_at_recommended.len()
    );
    for e in &df.errors_at_recommended {
        println!("    {:.3} {} {}", e.score, e.a, e.b);
    }
    println!("\ngroup photos (faces found / people):");
    for g in &r.groups {
        println!(
            "  {:34} {:>3} / {:<3} {}",
            g.file,
            g.found,
            g.expected,
            if g.ok { "ok" } else { "MISMATCH" }
        );
    }
    let fv = &fd.verification;
    let tar1 = fv.tar_at_far.first().map_or(0.0, |t| t.tar);
    println!("\ncompared with the published figures (MANIFEST.md):");
    println!("  {:44} {:>18} {:>10}", "", "ours", "published");
    println!(
        "  {:44} {:>18} {:>10}",
        "faces_dev 10-fold accuracy",
        format!(
            "{} ± {:.2}",
            pct(fv.kfold.mean_accuracy),
            fv.kfold.std_accuracy * 100.0
        ),
        pct(r.published.kfold_accuracy)
    );
    println!(
        "  {:44} {:>18} {:>10}",
        "faces_dev TAR at FAR 1 % (sampled pairs)",
        pct(tar1),
        pct(r.published.tar_at_far_1)
    );
    println!(
        "  {:44} {:>18} {:>10}",
        format!("10-fold accuracy over {} draws", fd.resampled.draws),
        format!(
            "{} ± {:.2}",
            pct(fd.resampled.accuracy_mean),
            fd.resampled.accuracy_std * 100.0
        ),
        ""
    );
    println!(
        "  {:44} {:>18.3} {:>10.2}",
        "threshold (10-fold mean, first draw)", fv.kfold.mean_threshold, r.published.threshold
    );
    println!(
        "  {:44} {:>18.3} {:>10}",
        format!("threshold (10-fold mean, {} draws)", fd.resampled.draws),
        fd.resampled.threshold_mean,
        ""
    );
    println!(
        "  {:44} {:>18} {:>10}",
        "deepface pairs 10-fold accuracy",
        pct(df.verification.kfold.mean_accuracy),
        pct(r.published.deepface_accuracy)
    );
    println!(
        "  {:44} {:>18.3} {:>10.2}",
        "deepface same-person mean cosine",
        df.verification.same_mean_cosine,
        r.published.deepface_same_mean
    );
    println!(
        "  {:44} {:>18.3} {:>10.2}",
        "deepface different-person mean cosine",
        df.verification.diff_mean_cosine,
        r.published.deepface_diff_mean
    );
    println!(
        "\nrecommended match threshold: {:.2} ({}); current DEFAULT_MATCH_THRESHOLD {:.2}",
        r.recommended_threshold, r.recommended_threshold_rule, r.current_default_threshold
    );
    println!(
        "time {:.1} s (decode {:.1}, detect {:.1}, align {:.1}, embed {:.1})",
        r.seconds,
        r.stage_seconds.get("decode").copied().unwrap_or(0.0),
        r.stage_seconds.get("detect").copied().unwrap_or(0.0),
        r.stage_seconds.get("align").copied().unwrap_or(0.0),
        r.stage_seconds.get("embed").copied().unwrap_or(0.0)
    );
}

//! Open-set calibration of the identification rule on ../shared/data/faces_dev, reported on
//! identities never used for calibration.
//!
//! For each of `--splits` seeds the identities are split in two halves: a calibration half and
//! an evaluation half. In each half, part of the identities is enrolled (`--enroll-fraction`,
//! `--templates` images each) and the rest are strangers; queries are the other faces of the
//! enrolled persons (known) and every face of the strangers. A rule's parameters are chosen on
//! the calibration half only (pooled over `--inner` enrolled/stranger draws): the highest
//! known-right rate whose share of stranger faces that get a suggestion is <= `--target`. They
//! are then applied once to the evaluation half. Reported per rule: mean and worst over the
//! splits of the evaluation half's false suggestion rate (strangers that get a suggestion),
//! known-right and known-wrong rates; today's rule (fixed threshold 0.45, one template) is
//! reported the same way.
//!
//! Person scores are exact (the best cosine over the person's templates), as the gallery's
//! exact search computes them (galleries below `gallery.exact_max` templates).
//!
//! Embeddings are computed once and cached in `.cache/bench/faces_dev_faces.json` (`--refresh`
//! recomputes them), so the analysis runs in seconds:
//! `cargo run --release -p likeness-bench --bin calibrate` (writes bench/results/calibrate.json)
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use likeness_bench::faces::identity;
use likeness_bench::verification::SplitMix64;
use likeness_gallery::{Galleries, GalleryConfig, MasterKey, TenantId};
use likeness_models::{Pipeline, PipelineConfig, StageTimings};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    /// Evaluation data.
    #[arg(long, env = "LIKENESS_DATA_DIR", default_value = "../shared/data")]
    data_dir: PathBuf,
    /// ONNX models.
    #[arg(long, env = "LIKENESS_MODELS_DIR", default_value = "../shared/models")]
    models_dir: PathBuf,
    /// Cache of the faces' embeddings and quality.
    #[arg(long, default_value = ".cache/bench/faces_dev_faces.json")]
    cache: PathBuf,
    /// Recompute the embeddings even if the cache exists.
    #[arg(long)]
    refresh: bool,
    /// Number of calibration / evaluation splits of the identities.
    #[arg(long, default_value_t = 10)]
    splits: u64,
    /// Enrolled / stranger draws pooled for calibration within the calibration half.
    #[arg(long, default_value_t = 8)]
    inner: u64,
    /// Share of the identities used for calibration (the rest are the evaluation part).
    #[arg(long, default_value_t = 0.5)]
    cal_fraction: f64,
    /// Share of a part's identities that is enrolled (the rest are strangers).
    #[arg(long, default_value_t = 0.5)]
    enroll_fraction: f64,
    /// Target share of strangers' faces that get a suggestion (calibration).
    #[arg(long, default_value_t = 0.01)]
    target: f64,
    /// Today's default threshold (reported as is).
    #[arg(long, default_value_t = 0.45)]
    today: f32,
    /// Output JSON.
    #[arg(long, default_value = "bench/results/calibrate.json")]
    out: PathBuf,
}

/// One face of faces_dev (the largest of its file).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedFace {
    file: String,
    who: String,
    emb: Vec<f32>,
    det_score: f32,
    face_size: f32,
    sharpness: f32,
    identifiable: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cache {
    models_dir: String,
    faces: Vec<CachedFace>,
}

fn embed_all(args: &Args) -> Result<Vec<CachedFace>> {
    if !args.refresh
        && let Ok(bytes) = std::fs::read(&args.cache)
        && let Ok(c) = serde_json::from_slice::<Cache>(&bytes)
        && c.models_dir == args.models_dir.display().to_string()
    {
        println!(
            "{} faces from the cache {}",
            c.faces.len(),
            args.cache.display()
        );
        return Ok(c.faces);
    }
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
    let mut out = Vec::new();
    let mut t = StageTimings::default();
    for f in &files {
        let Some(who) = identity(f) else { continue };
        let Some(face) = largest_face(&p, &dir.join(f), &mut t) else {
            continue;
        };
        out.push(CachedFace {
            file: f.clone(),
            who: who.to_owned(),
            emb: face.embedding,
            det_score: face.detection.score,
            face_size: face.quality.face_size,
            sharpness: face.quality.sharpness,
            identifiable: face.quality.identifiable,
        });
    }
    if let Some(d) = args.cache.parent() {
        std::fs::create_dir_all(d)?;
    }
    let c = Cache {
        models_dir: args.models_dir.display().to_string(),
        faces: out,
    };
    std::fs::write(&args.cache, serde_json::to_vec(&c)?)?;
    println!(
        "embedded {} of {} files; cached in {}",
        c.faces.len(),
        files.len(),
        args.cache.display()
    );
    Ok(c.faces)
}

/// The largest face of a file (ties: the higher score), as `faces::embed_file` picks it.
fn largest_face(p: &Pipeline, path: &Path, t: &mut StageTimings) -> Option<likeness_models::Face> {
    let bytes = std::fs::read(path).ok()?;
    let img = p.decode(&bytes).ok()?;
    let faces = p.analyze(&[&img], None, t).pop()?.ok()?;
    faces.into_iter().max_by(|a, b| {
        let area = |f: &likeness_models::Face| f.detection.width() * f.detection.height();
        area(a)
            .total_cmp(&area(b))
            .then(a.detection.score.total_cmp(&b.detection.score))
    })
}

/// Cross-identity face pairs of `ids`: the share with a cosine >= each of `ts`.
fn pair_tail(ids: &[usize], by_id: &[Vec<usize>], faces: &[CachedFace], ts: &[f32]) -> Vec<f64> {
    let fs: Vec<(usize, usize)> = ids
        .iter()
        .flat_map(|&id| by_id[id].iter().map(move |&f| (id, f)))
        .collect();
    let mut above = vec![0u64; ts.len()];
    let mut n = 0u64;
    for (i, &(a, fa)) in fs.iter().enumerate() {
        for &(b, fb) in &fs[i + 1..] {
            if a == b {
                continue;
            }
            n += 1;
            let s = dot(&faces[fa].emb, &faces[fb].emb);
            for (k, &t) in ts.iter().enumerate() {
                if s >= t {
                    above[k] += 1;
                } else {
                    break;
                }
            }
        }
    }
    above.iter().map(|&a| a as f64 / n.max(1) as f64).collect()
}

/// The lowest threshold of `ts` (ascending) whose predicted share of strangers' faces with a
/// suggestion, `1 - (1 - p(t))^(persons * templates)`, is <= target.
fn size_aware(ts: &[f32], tail: &[f64], persons: usize, templates: usize, target: f64) -> f32 {
    let n = (persons * templates) as f64;
    ts.iter()
        .zip(tail)
        .find(|(_, p)| 1.0 - (1.0 - **p).powf(n) <= target)
        .map_or(1.0, |(t, _)| *t)
}

/// What the rules need of one query against one gallery.
#[derive(Debug, Clone, Copy)]
struct Q {
    known: bool,
    /// The best person is the query's own (known queries only).
    right: bool,
    s1: f32,
    /// Best score of another person (-1 if none).
    s2: f32,
    /// Mean and standard deviation of the persons ranked 2..=COHORT+1.
    mu: f32,
    sd: f32,
    /// Mean and standard deviation of the query's TNORM best scores against a cohort of
    /// faces of calibration identities (never an evaluation identity, never its own).
    tmu: f32,
    tsd: f32,
    identifiable: bool,
    sharpness: f32,
    /// The query's face.
    face: usize,
}

const COHORT: usize = 10;
const TNORM: usize = 20;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Enrolls `frac` of `ids` (`templates` random faces each) and queries with the rest.
#[allow(clippy::too_many_arguments)] // a benchmark helper: the draw's whole setup
fn scenario(
    ids: &[usize],
    by_id: &[Vec<usize>],
    faces: &[CachedFace],
    rng: &mut SplitMix64,
    frac: f64,
    templates: usize,
    centroid: bool,
    cohort: &[usize],
) -> (Vec<Q>, Vec<(usize, Vec<usize>)>) {
    let cohort_faces: Vec<(usize, usize)> = cohort
        .iter()
        .flat_map(|&id| by_id[id].iter().map(move |&f| (id, f)))
        .collect();
    let mut ids = ids.to_vec();
    rng.shuffle(&mut ids);
    let n_enr = ((ids.len() as f64) * frac).round() as usize;
    // (person, template faces)
    let mut gallery: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut queries: Vec<(usize, bool, usize)> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let mut fs = by_id[id].clone();
        if i < n_enr {
            rng.shuffle(&mut fs);
            let t = templates.min(fs.len());
            gallery.push((id, fs[..t].to_vec()));
            queries.extend(fs[t..].iter().map(|&f| (f, true, id)));
        } else {
            queries.extend(fs.iter().map(|&f| (f, false, id)));
        }
    }
    let whose: BTreeMap<&str, usize> = ids
        .iter()
        .map(|&id| (faces[by_id[id][0]].who.as_str(), id))
        .collect();
    // The cohort never holds an enrolled person's faces (a deployed cohort is fixed, not the
    // gallery) nor the query's own.
    let enrolled: std::collections::BTreeSet<usize> = gallery.iter().map(|(p, _)| *p).collect();
    // Person vectors: every template, or (centroid) their normalised mean.
    let persons: Vec<(usize, Vec<Vec<f32>>)> = gallery
        .iter()
        .map(|(p, ts)| {
            let vs: Vec<Vec<f32>> = ts.iter().map(|&t| faces[t].emb.clone()).collect();
            if centroid {
                let mut m = vec![0.0f32; vs[0].len()];
                for v in &vs {
                    for (a, b) in m.iter_mut().zip(v) {
                        *a += b;
                    }
                }
                let n = m.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                m.iter_mut().for_each(|x| *x /= n);
                (*p, vec![m])
            } else {
                (*p, vs)
            }
        })
        .collect();
    let qs = queries
        .into_iter()
        .map(|(f, known, own)| {
            let q = &faces[f];
            let mut s: Vec<(f32, usize)> = persons
                .iter()
                .map(|(p, vs)| {
                    let best = vs.iter().map(|v| dot(&q.emb, v)).fold(-1.0f32, f32::max);
                    (best, *p)
                })
                .collect();
            let mut cs: Vec<f32> = cohort_faces
                .iter()
                .filter(|(id, _)| *id != own && !enrolled.contains(id))
                .map(|(_, cf)| dot(&q.emb, &faces[*cf].emb))
                .collect();
            cs.sort_by(|a, b| b.total_cmp(a));
            cs.truncate(TNORM);
            let tmu = cs.iter().sum::<f32>() / cs.len().max(1) as f32;
            let tsd = (cs.iter().map(|x| (x - tmu) * (x - tmu)).sum::<f32>()
                / cs.len().max(1) as f32)
                .sqrt()
                .max(1e-3);
            s.sort_by(|a, b| b.0.total_cmp(&a.0));
            let cohort: Vec<f32> = s.iter().skip(1).take(COHORT).map(|x| x.0).collect();
            let mu = cohort.iter().sum::<f32>() / cohort.len().max(1) as f32;
            let var = cohort.iter().map(|x| (x - mu) * (x - mu)).sum::<f32>()
                / cohort.len().max(1) as f32;
            Q {
                known,
                right: known
                    && s.first()
                        .is_some_and(|b| Some(&b.1) == whose.get(q.who.as_str())),
                s1: s.first().map_or(-1.0, |x| x.0),
                s2: s.get(1).map_or(-1.0, |x| x.0),
                mu,
                sd: var.sqrt().max(1e-3),
                tmu,
                tsd,
                identifiable: q.identifiable,
                sharpness: q.sharpness,
                face: f,
            }
        })
        .collect();
    (qs, gallery)
}

/// Enrolls the draw's templates in a real (encrypted, on-disk) gallery and compares its
/// best person and score with the ones computed here: (queries, best person differs, max
/// |score difference|).
fn gallery_check(
    qs: &[Q],
    gallery: &[(usize, Vec<usize>)],
    faces: &[CachedFace],
) -> Result<(usize, usize, f32)> {
    let tmp = tempfile::tempdir()?;
    let g = Galleries::open(
        GalleryConfig {
            data_dir: tmp.path().to_owned(),
            ..Default::default()
        },
        MasterKey::random()?,
    )?;
    let t = TenantId::parse("check")?;
    for (_, ts) in gallery {
        let embs: Vec<Vec<f32>> = ts.iter().map(|&f| faces[f].emb.clone()).collect();
        g.enroll(&t, &faces[ts[0]].who, &embs)?;
    }
    let res = g.identify(
        &t,
        &qs.iter()
            .map(|q| faces[q.face].emb.clone())
            .collect::<Vec<_>>(),
        1,
        -1.0,
    )?;
    let (mut differ, mut max_diff) = (0usize, 0.0f32);
    for (q, c) in qs.iter().zip(&res) {
        let Some(c) = c.first() else {
            differ += 1;
            continue;
        };
        max_diff = max_diff.max((c.score - q.s1).abs());
        if q.known && (*c.person == *faces[q.face].who) != q.right {
            differ += 1;
        }
    }
    Ok((qs.len(), differ, max_diff))
}

/// A decision rule: suggest the best person or not.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "rule")]
enum Rule {
    /// best >= t
    Threshold { t: f32 },
    /// best >= t and best - second >= m
    Margin { t: f32, m: f32 },
    /// best >= t and (best - mean(cohort)) / sd(cohort) >= z
    Cohort { t: f32, z: f32 },
    /// best >= t and (best - mean(query vs cohort faces)) / sd(...) >= z
    Tnorm { t: f32, z: f32 },
    /// best >= t and the query's aligned crop is at least this sharp
    Sharp { t: f32, s: f32 },
}

impl Rule {
    fn suggest(&self, q: &Q) -> bool {
        match *self {
            Rule::Threshold { t } => q.s1 >= t,
            Rule::Margin { t, m } => q.s1 >= t && q.s1 - q.s2 >= m,
            Rule::Cohort { t, z } => q.s1 >= t && (q.s1 - q.mu) / q.sd >= z,
            Rule::Sharp { t, s } => q.s1 >= t && q.sharpness >= s,
            Rule::Tnorm { t, z } => q.s1 >= t && (q.s1 - q.tmu) / q.tsd >= z,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Rates {
    /// Strangers' faces that get a suggestion.
    false_suggestion: f64,
    /// Known persons' faces that get their own person suggested.
    known_right: f64,
    /// Known persons' faces that get another person suggested.
    known_wrong: f64,
    /// Known persons' faces whose best person is their own (no threshold).
    rank1: f64,
}

fn rates(qs: &[Q], rule: &Rule, gate_identifiable: bool) -> Rates {
    let (mut k, mut kr, mut kw, mut r1, mut s, mut fs) = (0usize, 0, 0, 0, 0usize, 0);
    for q in qs {
        let sugg = (!gate_identifiable || q.identifiable) && rule.suggest(q);
        if q.known {
            k += 1;
            r1 += usize::from(q.right);
            if sugg {
                if q.right {
                    kr += 1;
                } else {
                    kw += 1;
                }
            }
        } else {
            s += 1;
            fs += usize::from(sugg);
        }
    }
    let div = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    Rates {
        false_suggestion: div(fs, s),
        known_right: div(kr, k),
        known_wrong: div(kw, k),
        rank1: div(r1, k),
    }
}

fn grid(lo: f32, hi: f32, step: f32) -> Vec<f32> {
    let n = ((hi - lo) / step).round() as usize;
    (0..=n).map(|i| lo + step * i as f32).collect()
}

/// Every parameter set of a family.
fn family(name: &str) -> Vec<Rule> {
    let ts = grid(0.25, 0.70, 0.005);
    match name {
        "threshold" => ts.iter().map(|&t| Rule::Threshold { t }).collect(),
        "margin" => ts
            .iter()
            .flat_map(|&t| {
                grid(0.0, 0.25, 0.01)
                    .into_iter()
                    .map(move |m| Rule::Margin { t, m })
            })
            .collect(),
        "cohort" => ts
            .iter()
            .flat_map(|&t| {
                grid(0.0, 8.0, 0.1)
                    .into_iter()
                    .map(move |z| Rule::Cohort { t, z })
            })
            .collect(),
        "tnorm" => ts
            .iter()
            .flat_map(|&t| {
                grid(0.0, 6.0, 0.1)
                    .into_iter()
                    .map(move |z| Rule::Tnorm { t, z })
            })
            .collect(),
        "sharpness" => ts
            .iter()
            .flat_map(|&t| {
                [0.0f32, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0, 200.0]
                    .into_iter()
                    .map(move |s| Rule::Sharp { t, s })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The rule of `fam` with the best pooled known-right rate whose false suggestion rate is
/// <= target: pooled over the calibration draws, or (`worst`) in every draw. Ties: the lower
/// false suggestion rate.
fn calibrate(draws: &[Vec<Q>], fam: &[Rule], target: f64, worst: bool) -> Option<(Rule, Rates)> {
    let pool: Vec<Q> = draws.iter().flatten().copied().collect();
    let mut best: Option<(Rule, Rates)> = None;
    for r in fam {
        let x = rates(&pool, r, false);
        if x.false_suggestion > target {
            continue;
        }
        if worst
            && draws
                .iter()
                .any(|d| rates(d, r, false).false_suggestion > target)
        {
            continue;
        }
        let better = match &best {
            None => true,
            Some((_, b)) => {
                x.known_right > b.known_right
                    || (x.known_right == b.known_right && x.false_suggestion < b.false_suggestion)
            }
        };
        if better {
            best = Some((*r, x));
        }
    }
    best
}

#[derive(Serialize)]
struct Row {
    name: String,
    templates: usize,
    /// Person score against the normalised mean of the templates (else the best template).
    centroid: bool,
    per_split: Vec<(Rule, Rates)>,
    mean: Rates,
    worst: Rates,
}

fn summarise(name: String, templates: usize, centroid: bool, per_split: Vec<(Rule, Rates)>) -> Row {
    let n = per_split.len().max(1) as f64;
    let mut mean = Rates::default();
    let mut worst = Rates {
        false_suggestion: 0.0,
        known_right: 1.0,
        known_wrong: 0.0,
        rank1: 1.0,
    };
    for (_, r) in &per_split {
        mean.false_suggestion += r.false_suggestion / n;
        mean.known_right += r.known_right / n;
        mean.known_wrong += r.known_wrong / n;
        mean.rank1 += r.rank1 / n;
        worst.false_suggestion = worst.false_suggestion.max(r.false_suggestion);
        worst.known_right = worst.known_right.min(r.known_right);
        worst.known_wrong = worst.known_wrong.max(r.known_wrong);
        worst.rank1 = worst.rank1.min(r.rank1);
    }
    Row {
        name,
        templates,
        centroid,
        per_split,
        mean,
        worst,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let faces = embed_all(&args)?;
    let mut names: Vec<&str> = faces.iter().map(|f| f.who.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut by_id: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (i, f) in faces.iter().enumerate() {
        if let Ok(p) = names.binary_search(&f.who.as_str()) {
            by_id[p].push(i);
        }
    }
    let not_identifiable = faces.iter().filter(|f| !f.identifiable).count();
    println!(
        "{} faces of {} identities ({} not identifiable by the quality gate); {} splits, calibration pooled over {} draws, target {:.2} %",
        faces.len(),
        names.len(),
        not_identifiable,
        args.splits,
        args.inner,
        args.target * 100.0
    );
    let families = ["threshold", "margin", "cohort", "tnorm", "sharpness"];
    let fams: Vec<(&str, Vec<Rule>)> = families.iter().map(|f| (*f, family(f))).collect();
    let mut rows: Vec<Row> = Vec::new();
    let mut predicted = Vec::new();
    let mut checks = Vec::new();
    let fixed: Vec<f32> = vec![args.today, 0.40, 0.425, 0.475, 0.50, 0.525, 0.55];
    for (templates, centroid) in [(1usize, false), (2, false), (2, true)] {
        let mut per_fixed: Vec<Vec<(Rule, Rates)>> = vec![Vec::new(); fixed.len()];
        // (family, worst-draw criterion) -> per split
        let mut per_fam: Vec<Vec<(Rule, Rates)>> = vec![Vec::new(); fams.len() * 2];
        let mut sizes = (0usize, 0usize, 0usize);
        let ts = grid(0.25, 0.80, 0.005);
        let mut per_size: Vec<(Rule, Rates)> = Vec::new();
        // Predicted thresholds for larger galleries, per split.
        let big = [100usize, 300, 1000, 3000, 10000];
        let mut per_big: Vec<Vec<f32>> = vec![Vec::new(); big.len()];
        for seed in 0..args.splits {
            let mut rng = SplitMix64::new(0x5EED_0000 + seed);
            let mut ids: Vec<usize> = (0..names.len()).collect();
            rng.shuffle(&mut ids);
            let n_cal = ((ids.len() as f64) * args.cal_fraction).round() as usize;
            let (cal, eval) = ids.split_at(n_cal);
            let draws: Vec<Vec<Q>> = (0..args.inner)
                .map(|_| {
                    scenario(
                        cal,
                        &by_id,
                        &faces,
                        &mut rng,
                        args.enroll_fraction,
                        templates,
                        centroid,
                        cal,
                    )
                    .0
                })
                .collect();
            let (ev, ev_gallery) = scenario(
                eval,
                &by_id,
                &faces,
                &mut rng,
                args.enroll_fraction,
                templates,
                centroid,
                cal,
            );
            if seed == 0 && !centroid {
                let (n, differ, diff) = gallery_check(&ev, &ev_gallery, &faces)?;
                println!(
                    "gallery cross-check ({templates} template(s), split 0): {n} queries through likeness-gallery, best person differs for {differ}, max |score difference| {diff:.2e}"
                );
                checks.push(serde_json::json!({"templates": templates, "queries": n, "best_person_differs": differ, "max_score_difference": diff}));
            }
            sizes = (
                ((eval.len() as f64) * args.enroll_fraction).round() as usize,
                ev.iter().filter(|q| q.known).count(),
                ev.iter().filter(|q| !q.known).count(),
            );
            let tail = pair_tail(cal, &by_id, &faces, &ts);
            let r = Rule::Threshold {
                t: size_aware(&ts, &tail, sizes.0, templates, args.target),
            };
            per_size.push((r, rates(&ev, &r, false)));
            for (k, &n) in big.iter().enumerate() {
                per_big[k].push(size_aware(&ts, &tail, n, templates, args.target));
            }
            for (i, &t) in fixed.iter().enumerate() {
                let r = Rule::Threshold { t };
                per_fixed[i].push((r, rates(&ev, &r, false)));
            }
            for (i, (_, fam)) in fams.iter().enumerate() {
                for worst in [false, true] {
                    if let Some((r, _)) = calibrate(&draws, fam, args.target, worst) {
                        per_fam[i * 2 + usize::from(worst)].push((r, rates(&ev, &r, false)));
                    }
                }
            }
        }
        println!(
            "{templates} template(s) per person{}: evaluation part (last split) {} enrolled, {} known-person queries, {} stranger queries",
            if centroid { " (centroid)" } else { "" },
            sizes.0,
            sizes.1,
            sizes.2
        );
        for (i, &t) in fixed.iter().enumerate() {
            let name = if t == args.today {
                format!("today: threshold {t}")
            } else {
                format!("fixed threshold {t}")
            };
            rows.push(summarise(
                name,
                templates,
                centroid,
                std::mem::take(&mut per_fixed[i]),
            ));
        }
        rows.push(summarise(
            "size-aware threshold (pairs)".into(),
            templates,
            centroid,
            per_size,
        ));
        for (k, &n) in big.iter().enumerate() {
            let v = &per_big[k];
            let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            println!(
                "  predicted threshold for <= {:.1} % at {n} persons x {templates} template(s): {lo:.3}..{hi:.3} over the splits",
                args.target * 100.0
            );
            predicted.push(
                serde_json::json!({"persons": n, "templates": templates, "min": lo, "max": hi}),
            );
        }
        for (i, (name, _)) in fams.iter().enumerate() {
            for worst in [false, true] {
                let crit = if worst { "every draw" } else { "pooled" };
                rows.push(summarise(
                    format!("calibrated {name} ({crit})"),
                    templates,
                    centroid,
                    std::mem::take(&mut per_fam[i * 2 + usize::from(worst)]),
                ));
            }
        }
    }
    println!(
        "held-out identities, {} splits: mean (worst); tpl: templates per person, centr: person score against the mean of its templates",
        args.splits
    );
    println!(
        "{:<36} {:>3} {:>5} | {:>15} | {:>15} | {:>13} | {:>15} | parameters over the splits",
        "rule", "tpl", "centr", "strangers sugg", "known right", "known wrong", "rank-1"
    );
    for r in &rows {
        let t = |rule: &Rule| match *rule {
            Rule::Threshold { t }
            | Rule::Margin { t, .. }
            | Rule::Cohort { t, .. }
            | Rule::Sharp { t, .. }
            | Rule::Tnorm { t, .. } => t,
        };
        let lo = r
            .per_split
            .iter()
            .map(|x| t(&x.0))
            .fold(f32::INFINITY, f32::min);
        let hi = r
            .per_split
            .iter()
            .map(|x| t(&x.0))
            .fold(f32::NEG_INFINITY, f32::max);
        let extra: Vec<String> = r
            .per_split
            .iter()
            .filter_map(|(rule, _)| match *rule {
                Rule::Margin { m, .. } => Some(format!("{m:.2}")),
                Rule::Cohort { z, .. } | Rule::Tnorm { z, .. } => Some(format!("{z:.1}")),
                Rule::Sharp { s, .. } => Some(format!("{s:.0}")),
                Rule::Threshold { .. } => None,
            })
            .collect();
        let p = format!("t {lo:.3}..{hi:.3} {}", extra.join(","));
        println!(
            "{:<36} {:>3} {:>5} | {:>6.2} ({:>5.2}) % | {:>6.2} ({:>5.2}) % | {:>5.2} ({:>4.2}) % | {:>6.2} ({:>5.2}) % | {}",
            r.name,
            r.templates,
            r.centroid,
            r.mean.false_suggestion * 100.0,
            r.worst.false_suggestion * 100.0,
            r.mean.known_right * 100.0,
            r.worst.known_right * 100.0,
            r.mean.known_wrong * 100.0,
            r.worst.known_wrong * 100.0,
            r.mean.rank1 * 100.0,
            r.worst.rank1 * 100.0,
            p
        );
    }
    let report = serde_json::json!({
        "bench": "calibrate_faces_dev",
        "faces": faces.len(),
        "identities": names.len(),
        "not_identifiable": not_identifiable,
        "splits": args.splits,
        "inner_draws": args.inner,
        "enroll_fraction": args.enroll_fraction,
        "cal_fraction": args.cal_fraction,
        "target": args.target,
        "cohort_size": COHORT,
        "rows": rows,
        "predicted_thresholds": predicted,
        "gallery_cross_check": checks,
    });
    if let Some(d) = args.out.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

//! Identification on ../shared/data/faces_dev through the real gallery (encrypted, on disk):
//! enroll one image per identity, query with the others.
//!
//! - closed set (every identity enrolled): rank-1 rate, and the share of queries that get the
//!   right / a wrong / no suggestion at each threshold;
//! - open set (half of the identities enrolled): the share of faces of NOT enrolled persons
//!   that still get a suggestion (false suggestion rate) at each threshold, and the
//!   recommended default threshold (the lowest with a false suggestion rate <= 1 %).
//!
//! The recommended threshold is chosen on the identities it is measured on; `bench --bin
//! calibrate` calibrates on some identities and reports on others.
//!
//! `cargo run --release -p likeness-bench --bin identify` (writes bench/results/identify.json)
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use likeness_bench::faces::{embed_file, identity};
use likeness_bench::verification::SplitMix64;
use likeness_gallery::{Galleries, GalleryConfig, MasterKey, TenantId};
use likeness_models::{Pipeline, PipelineConfig, StageTimings};

#[derive(Parser)]
struct Args {
    /// Evaluation data.
    #[arg(long, env = "LIKENESS_DATA_DIR", default_value = "../shared/data")]
    data_dir: PathBuf,
    /// ONNX models.
    #[arg(long, env = "LIKENESS_MODELS_DIR", default_value = "../shared/models")]
    models_dir: PathBuf,
    /// Detector model id (see the manifest).
    #[arg(long, default_value = "yunet_s")]
    detector: String,
    /// Embedder model id (e.g. `mobilefacenet_128_int8`, the 8-bit embedder made by
    /// `bash deploy/quantize-models.sh`).
    #[arg(long, default_value = "mobilefacenet_128")]
    embedder: String,
    /// Seed of the open-set split.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output JSON.
    #[arg(long, default_value = "bench/results/identify.json")]
    out: PathBuf,
}

struct Query {
    who: String,
    emb: Vec<f32>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let p = Pipeline::load(PipelineConfig {
        models_dir: args.models_dir.clone(),
        detector: args.detector.clone(),
        embedder: args.embedder.clone(),
        ..Default::default()
    })?;
    let dir = args.data_dir.join("faces_dev");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|f| f.ends_with(".jpg"))
        .collect();
    files.sort();
    let mut by_id: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    let mut t = StageTimings::default();
    for f in &files {
        let Some(who) = identity(f) else { continue };
        if let Ok(Some(e)) = embed_file(&p, &dir.join(f), &mut t) {
            by_id.entry(who.to_owned()).or_default().push(e.embedding);
        }
    }
    let thresholds: Vec<f32> = (20..=70).step_by(5).map(|x| x as f32 / 100.0).collect();

    // Closed set: every identity with >= 2 images enrolled with its first image.
    let tmp = tempfile::tempdir()?;
    let g = Galleries::open(
        GalleryConfig {
            data_dir: tmp.path().to_owned(),
            ..Default::default()
        },
        MasterKey::random()?,
    )?;
    let closed = TenantId::parse("closed")?;
    let mut queries = Vec::new();
    for (who, embs) in &by_id {
        if embs.len() < 2 {
            continue;
        }
        g.enroll(&closed, who, &embs[..1])?;
        queries.extend(embs[1..].iter().map(|e| Query {
            who: who.clone(),
            emb: e.clone(),
        }));
    }
    let enrolled_closed = g.stats(&closed)?.persons;
    let res = g.identify(
        &closed,
        &queries.iter().map(|q| q.emb.clone()).collect::<Vec<_>>(),
        1,
        -1.0,
    )?;
    let rank1 = res
        .iter()
        .zip(&queries)
        .filter(|(c, q)| c.first().is_some_and(|c| *c.person == *q.who))
        .count() as f64
        / queries.len() as f64;
    let mut closed_rows = Vec::new();
    for &th in &thresholds {
        let (mut right, mut wrong, mut none) = (0usize, 0usize, 0usize);
        for (c, q) in res.iter().zip(&queries) {
            match c.first().filter(|c| c.score >= th) {
                Some(c) if *c.person == *q.who => right += 1,
                Some(_) => wrong += 1,
                None => none += 1,
            }
        }
        let n = queries.len() as f64;
        closed_rows.push(serde_json::json!({
            "threshold": th, "right": right as f64 / n, "wrong": wrong as f64 / n, "unknown": none as f64 / n
        }));
    }

    // Open set: half of the identities enrolled (seeded split), queries from both halves.
    let mut ids: Vec<&String> = by_id.keys().collect();
    SplitMix64::new(args.seed).shuffle(&mut ids);
    let half = ids.len() / 2;
    let open = TenantId::parse("open")?;
    let mut known_q = Vec::new();
    let mut stranger_q = Vec::new();
    for (i, who) in ids.iter().enumerate() {
        let embs = &by_id[*who];
        if i < half {
            g.enroll(&open, who, &embs[..1])?;
            known_q.extend(embs[1..].iter().map(|e| Query {
                who: (*who).clone(),
                emb: e.clone(),
            }));
        } else {
            stranger_q.extend(embs.iter().map(|e| Query {
                who: (*who).clone(),
                emb: e.clone(),
            }));
        }
    }
    let enrolled_open = g.stats(&open)?.persons;
    let kr = g.identify(
        &open,
        &known_q.iter().map(|q| q.emb.clone()).collect::<Vec<_>>(),
        1,
        -1.0,
    )?;
    let sr = g.identify(
        &open,
        &stranger_q.iter().map(|q| q.emb.clone()).collect::<Vec<_>>(),
        1,
        -1.0,
    )?;
    let mut open_rows = Vec::new();
    let mut recommended = None;
    println!(
        "faces_dev identification: {} identities with a face, {} closed-set queries; open set: {} enrolled, {} known-person queries, {} stranger queries",
        by_id.len(),
        queries.len(),
        enrolled_open,
        known_q.len(),
        stranger_q.len()
    );
    println!(
        "closed set ({enrolled_closed} enrolled): rank-1 = {:.2} %",
        rank1 * 100.0
    );
    println!(
        "{:>9} | {:>8} {:>8} {:>8} | {:>10} {:>10} {:>12}",
        "threshold", "right", "wrong", "unknown", "known:right", "known:wrong", "stranger:sugg"
    );
    for (i, &th) in thresholds.iter().enumerate() {
        let right = kr
            .iter()
            .zip(&known_q)
            .filter(|(c, q)| {
                c.first()
                    .is_some_and(|c| c.score >= th && *c.person == *q.who)
            })
            .count() as f64
            / known_q.len() as f64;
        let wrong = kr
            .iter()
            .zip(&known_q)
            .filter(|(c, q)| {
                c.first()
                    .is_some_and(|c| c.score >= th && *c.person != *q.who)
            })
            .count() as f64
            / known_q.len() as f64;
        let false_sugg = sr
            .iter()
            .filter(|c| c.first().is_some_and(|c| c.score >= th))
            .count() as f64
            / stranger_q.len() as f64;
        if recommended.is_none() && false_sugg <= 0.01 {
            recommended = Some(th);
        }
        let c = &closed_rows[i];
        println!(
            "{:>9.2} | {:>7.2}% {:>7.2}% {:>7.2}% | {:>9.2}% {:>9.2}% {:>11.2}%",
            th,
            c["right"].as_f64().unwrap_or(0.0) * 100.0,
            c["wrong"].as_f64().unwrap_or(0.0) * 100.0,
            c["unknown"].as_f64().unwrap_or(0.0) * 100.0,
            right * 100.0,
            wrong * 100.0,
            false_sugg * 100.0
        );
        open_rows.push(serde_json::json!({
            "threshold": th, "known_right": right, "known_wrong": wrong, "stranger_suggested": false_sugg
        }));
    }
    let default = GalleryConfig::default().default_threshold;
    println!(
        "recommended default threshold (lowest with <= 1 % false suggestions): {recommended:?}; configured default: {default}"
    );
    let report = serde_json::json!({
        "bench": "identify_faces_dev",
        "identities_with_face": by_id.len(),
        "closed_set": { "enrolled": enrolled_closed, "queries": queries.len(), "rank1": rank1, "by_threshold": closed_rows },
        "open_set": { "seed": args.seed, "enrolled": enrolled_open, "known_queries": known_q.len(), "stranger_queries": stranger_q.len(), "by_threshold": open_rows },
        "recommended_threshold": recommended,
        "configured_default_threshold": default,
    });
    if let Some(d) = args.out.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

//! Approximate nearest-neighbour benchmark of the gallery index: our HNSW graph
//! (`likeness_gallery::hnsw`, built by `index::build_graph` over the index's own matrix and
//! searched plain, through the tombstone filter and as `Index::search`) against hnswlib
//! (bench/peer/ann_hnswlib.py) and hnsw_rs 0.3.5 (the gallery's previous graph, `hnsw-rs`
//! worker) at the same M / ef_construction / ef on the same vectors:
//! build time (2 threads and 1), recall@10 against exact search, queries/s with 1 and 2
//! threads, resident memory; exact-search queries/s at 10k and 100k; and the erasure rewrite
//! (RemovePerson rewrites the encrypted snapshot) at 100k and 1M templates with the latency of
//! searches running meanwhile. Writes bench/results/ann.json. Run through bench/ann.sh.
//!
//! Data: clustered unit vectors that mimic face templates: n/3 persons with 3 templates each
//! at cosine U(0.62, 0.92) to the person's centre, an anisotropic spectrum (variance of
//! coordinate i ∝ (1+i)^-0.5), centres sharing a small offset; queries = fresh templates of
//! enrolled persons (90%) and of strangers (10%). `ann calibrate` checks the generator against
//! real templates (faces_dev through our 128-d embedder): genuine and impostor cosines,
//! participation ratio, local intrinsic dimension, all within ~15%. Written as .npy under .cache/ann/ so both sides read the same vectors;
//! ground truth by exact dot products.
//!
//! Every measurement runs in a fresh subprocess of this binary (or of Python), so resident
//! memory is clean.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use likeness_gallery::index::{self, HnswParams, Index};
use likeness_gallery::{Galleries, GalleryConfig, MasterKey, TenantId};
use rayon::prelude::*;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything: data, both implementations, exact search, erasure; table and JSON.
    Run(RunArgs),
    /// Worker: build our graph over one data set (and search it with --search).
    Ours(WorkerArgs),
    /// Worker: the same with hnsw_rs 0.3.5 (what the gallery used before its own HNSW).
    HnswRs(WorkerArgs),
    /// Prints the table of a results file again (targets recomputed).
    Table {
        /// Results JSON.
        #[arg(default_value = "bench/results/ann.json")]
        json: PathBuf,
    },
    /// Generates a data set (base, queries, ground truth) under --cache.
    Gen {
        /// Dimension.
        #[arg(long)]
        dim: usize,
        /// Vectors.
        #[arg(long)]
        n: usize,
        /// Queries.
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        /// Data directory root.
        #[arg(long, default_value = ".cache/ann")]
        cache: PathBuf,
    },
    /// Statistics of real templates (faces_dev through our pipeline) next to the synthetic ones.
    Calibrate {
        /// Evaluation data (faces_dev/).
        #[arg(long, env = "LIKENESS_DATA_DIR", default_value = "../shared/data")]
        data_dir: PathBuf,
        /// ONNX models directory.
        #[arg(long, env = "LIKENESS_MODELS_DIR", default_value = "../shared/models")]
        models_dir: PathBuf,
    },
    /// Worker: exact-search queries/s of `Index::search` on prefixes of a data set.
    Exact {
        /// Data set directory.
        #[arg(long)]
        dir: PathBuf,
        /// Gallery sizes (prefixes of the data set).
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<usize>,
    },
    /// Worker: enroll a data set into a gallery (on tmpfs, then copied to --gallery).
    ErasurePrep {
        /// Data set directory.
        #[arg(long)]
        dir: PathBuf,
        /// Gallery data directory to create (on disk).
        #[arg(long)]
        gallery: PathBuf,
    },
    /// Worker: load the gallery, wait for its graph, then time RemovePerson while searching.
    Erasure {
        /// Data set directory (queries).
        #[arg(long)]
        dir: PathBuf,
        /// Gallery data directory made by erasure-prep.
        #[arg(long)]
        gallery: PathBuf,
        /// Persons removed one after the other.
        #[arg(long, default_value_t = 3)]
        removals: usize,
        /// GalleryConfig::exact_max (above it the gallery searches through its HNSW graph).
        #[arg(long, default_value_t = 20_000)]
        exact_max: usize,
    },
}

#[derive(clap::Args, Clone)]
struct WorkerArgs {
    /// Data set directory.
    #[arg(long)]
    dir: PathBuf,
    /// Build threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also search (recall, queries/s).
    #[arg(long)]
    search: bool,
    /// ef values searched.
    #[arg(long, value_delimiter = ',', default_value = "64,128,256")]
    efs: Vec<usize>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// 128-d x 100k only, no 1-thread builds, erasure at 100k only (about 8 minutes).
    #[arg(long)]
    quick: bool,
    /// Data sets as DIMxN (default 128x100000,512x100000,128x1000000; `none`: only exact
    /// search and erasure).
    #[arg(long, value_delimiter = ',')]
    sets: Vec<String>,
    /// Sets also built with 1 thread, both sides (timing, memory); default: all sets; `none`.
    #[arg(long, value_delimiter = ',')]
    single_thread: Vec<String>,
    /// Sets also run with hnsw_rs 0.3.5 (the gallery's previous graph); default 128x100000
    /// (its 1M build takes about 40 minutes on 2 cores). `none` for none.
    #[arg(long, value_delimiter = ',')]
    hnsw_rs: Vec<String>,
    /// Longest wait for an idle machine before each measurement, seconds (the load seen
    /// meanwhile is recorded as other_load_cores).
    #[arg(long, default_value_t = 120)]
    max_wait: u64,
    /// ef values searched, ascending (each side stops once its recall@10 reaches 0.995).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,128,256,512,1024,2048"
    )]
    efs: Vec<usize>,
    /// Queries per data set.
    #[arg(long, default_value_t = 500)]
    queries: usize,
    /// Gallery sizes for the erasure rewrite (128-d; default 100000,1000000; --quick: 100000;
    /// 0: none).
    #[arg(long, value_delimiter = ',')]
    erasure: Vec<usize>,
    /// Erasure galleries up to this size search through their HNSW graph (built first, as the
    /// server does); larger ones search exactly.
    #[arg(long, default_value_t = 10_000_000)]
    erasure_graph_max: usize,
    /// Python with hnswlib and numpy.
    #[arg(long, default_value = ".cache/ann-venv/bin/python")]
    python: PathBuf,
    /// Data and scratch directory.
    #[arg(long, default_value = ".cache/ann")]
    cache: PathBuf,
    /// Output JSON.
    #[arg(long, default_value = "bench/results/ann.json")]
    out: PathBuf,
    /// Skip the hnswlib side.
    #[arg(long)]
    no_peer: bool,
    /// Do not wait for an idle machine (for trying the benchmark out; numbers not comparable).
    #[arg(long)]
    no_wait: bool,
}

static NO_WAIT: AtomicBool = AtomicBool::new(false);
static MAX_WAIT_S: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(120);

const M: usize = 16;
const EF_CONSTRUCTION: usize = 200;
const K: usize = 10;
const PER_PERSON: usize = 3;
/// A template's cosine to its person's centre is drawn from this range (genuine pairs then
/// average ~0.6, as measured on faces_dev with our embedder).
const COS_TO_CENTRE: (f32, f32) = (0.62, 0.92);
/// Norm of the offset shared by all centres (real templates are not centred at zero).
const MEAN_OFFSET: f32 = 0.2;
const SEED: u64 = 0x4c69_6b65_6e65_7373;
const GEN_VERSION: u32 = 2;
/// Default Identify threshold (GalleryConfig::default_threshold).
const MATCH_THRESHOLD: f32 = 0.45;
const OTHERS: &str =
    "bin/speed|pipeline.py|bin/latency|bin/accuracy|release/speed|release/latency|release/accuracy";

fn main() -> Result<()> {
    match Args::parse().cmd {
        Cmd::Run(a) => run(a),
        Cmd::Ours(a) => emit(&ours(&a)?),
        Cmd::HnswRs(a) => emit(&hnsw_rs_worker(&a)?),
        Cmd::Table { json } => {
            let mut r: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
            for s in r["sets"].as_array_mut().into_iter().flatten() {
                s["targets"] = targets(s);
            }
            print_table(&r);
            Ok(())
        }
        Cmd::Gen {
            dim,
            n,
            queries,
            cache,
        } => ensure_data(&set_dir(&cache, dim, n), dim, n, queries),
        Cmd::Calibrate {
            data_dir,
            models_dir,
        } => emit(&calibrate(&data_dir, &models_dir)?),
        Cmd::Exact { dir, sizes } => emit(&exact(&dir, &sizes)?),
        Cmd::ErasurePrep { dir, gallery } => emit(&erasure_prep(&dir, &gallery)?),
        Cmd::Erasure {
            dir,
            gallery,
            removals,
            exact_max,
        } => emit(&erasure(&dir, &gallery, removals, exact_max)?),
    }
}

/// Prints the worker's result, with the CPU time it used (clock ticks, all threads).
fn emit(v: &Value) -> Result<()> {
    let mut v = v.clone();
    v["cpu_ticks"] = json!(own_cpu_ticks());
    println!("RESULT {v}");
    Ok(())
}

/// utime + stime of this process in clock ticks (/proc/self/stat fields 14 and 15).
fn own_cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces: count from the closing parenthesis.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum()
}

// ---------------------------------------------------------------------------------------------
// Data

/// SplitMix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn new(parts: &[u64]) -> Self {
        let mut r = Rng(SEED);
        for p in parts {
            r.0 ^= p.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            r.next();
        }
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
    /// Fills `out` with standard normals (Box-Muller).
    fn normals(&mut self, out: &mut [f32]) {
        for pair in out.chunks_mut(2) {
            let u1 = 1.0 - self.uniform();
            let u2 = self.uniform();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            pair[0] = (r * t.cos()) as f32;
            if pair.len() > 1 {
                pair[1] = (r * t.sin()) as f32;
            }
        }
    }
}

fn normalise(v: &mut [f32]) {
    let n = index::dot(v, v).sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// A random direction with the anisotropic spectrum: coordinate i has variance ∝ (1+i)^-0.5
/// (participation ratio ~0.75·dim: ~95 effective dimensions at 128-d, ~300 at 512-d; an
/// impostor cosine spread of ~0.1 as with real face embeddings).
fn direction(rng: &mut Rng, out: &mut [f32]) {
    rng.normals(out);
    for (i, x) in out.iter_mut().enumerate() {
        *x *= (1.0 + i as f32).powf(-0.25);
    }
    normalise(out);
}

fn centre(dim: usize, person: u64, out: &mut [f32]) {
    direction(&mut Rng::new(&[dim as u64, 1, person]), out);
    let mut mu = vec![0f32; out.len()];
    direction(&mut Rng::new(&[dim as u64, 4]), &mut mu);
    for (x, m) in out.iter_mut().zip(&mu) {
        *x += MEAN_OFFSET * m;
    }
    normalise(out);
}

/// A template of the person with centre `c`: normalise(c + s·noise), cos ~U(COS_TO_CENTRE)
/// to `c`.
fn template(c: &[f32], rng: &mut Rng, out: &mut [f32]) {
    let (lo, hi) = COS_TO_CENTRE;
    let cos = lo + (hi - lo) * rng.uniform() as f32;
    let s = (1.0 / (cos * cos) - 1.0).sqrt();
    direction(rng, out);
    for (x, ci) in out.iter_mut().zip(c) {
        *x = ci + s * *x;
    }
    normalise(out);
}

struct DataSet {
    dim: usize,
    n: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
    gt: Vec<u32>,
}

impl DataSet {
    fn nq(&self) -> usize {
        self.queries.len() / self.dim
    }
}

fn set_dir(cache: &Path, dim: usize, n: usize) -> PathBuf {
    cache.join(format!("d{dim}-n{n}"))
}

/// Generates (or reuses) the data set in `dir`.
fn ensure_data(dir: &Path, dim: usize, n: usize, nq: usize) -> Result<()> {
    let meta = json!({"version": GEN_VERSION, "dim": dim, "n": n, "queries": nq,
        "per_person": PER_PERSON, "cos_to_centre": COS_TO_CENTRE, "mean_offset": MEAN_OFFSET, "k": K});
    // Compared as text: floats do not always survive a parse exactly.
    let meta = serde_json::to_string_pretty(&meta)?;
    let meta_path = dir.join("meta.json");
    if std::fs::read_to_string(&meta_path).ok().as_deref() == Some(meta.as_str())
        && dir.join("gt.npy").exists()
    {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let t = Instant::now();
    let persons = n.div_ceil(PER_PERSON);
    let mut base = vec![0f32; n * dim];
    base.par_chunks_mut(PER_PERSON * dim)
        .enumerate()
        .for_each(|(p, rows)| {
            let mut c = vec![0f32; dim];
            centre(dim, p as u64, &mut c);
            for (j, row) in rows.chunks_mut(dim).enumerate() {
                template(&c, &mut Rng::new(&[dim as u64, 2, p as u64, j as u64]), row);
            }
        });
    let mut queries = vec![0f32; nq * dim];
    queries
        .par_chunks_mut(dim)
        .enumerate()
        .for_each(|(q, row)| {
            let mut rng = Rng::new(&[dim as u64, 3, n as u64, q as u64]);
            // Every tenth query is a stranger (a person never enrolled).
            let person = if q % 10 == 9 {
                (persons + q) as u64
            } else {
                rng.below(persons) as u64
            };
            let mut c = vec![0f32; dim];
            centre(dim, person, &mut c);
            template(&c, &mut rng, row);
        });
    eprintln!(
        "  generated {n} x {dim} + {nq} queries in {:.1}s; ground truth ...",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let gt: Vec<u32> = queries
        .par_chunks(dim)
        .flat_map_iter(|q| exact_top_k(&base, dim, q, K))
        .collect();
    eprintln!("  ground truth in {:.1}s", t.elapsed().as_secs_f64());
    write_npy(&dir.join("base.npy"), "<f4", n, dim, |w| put_f32(w, &base))?;
    write_npy(&dir.join("queries.npy"), "<f4", nq, dim, |w| {
        put_f32(w, &queries)
    })?;
    write_npy(&dir.join("gt.npy"), "<i4", nq, K, |w| {
        gt.iter()
            .try_for_each(|x| w.write_all(&(*x as i32).to_le_bytes()))
    })?;
    std::fs::write(&meta_path, meta)?;
    Ok(())
}

/// Rows of the `k` largest dot products with `q`, best first.
fn exact_top_k(base: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<u32> {
    let mut top: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (r, v) in base.chunks_exact(dim).enumerate() {
        let s = index::dot(q, v);
        if top.len() < k || s > top[top.len() - 1].0 {
            let pos = top.partition_point(|(x, _)| *x >= s);
            top.insert(pos, (s, r as u32));
            top.truncate(k);
        }
    }
    top.into_iter().map(|(_, r)| r).collect()
}

fn put_f32(w: &mut dyn Write, v: &[f32]) -> std::io::Result<()> {
    for x in v {
        w.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

fn write_npy(
    path: &Path,
    descr: &str,
    rows: usize,
    cols: usize,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    body(&mut w)?;
    w.flush()?;
    Ok(())
}

/// Reads an .npy written by [`write_npy`]: (rows, cols, 4-byte little-endian values).
fn read_npy<T>(path: &Path, conv: fn([u8; 4]) -> T) -> Result<(usize, usize, Vec<T>)> {
    let mut r = BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(path).with_context(|| path.display().to_string())?,
    );
    let mut pre = [0u8; 10];
    r.read_exact(&mut pre)?;
    let hlen = u16::from_le_bytes([pre[8], pre[9]]) as usize;
    let mut h = vec![0u8; hlen];
    r.read_exact(&mut h)?;
    let h = String::from_utf8(h)?;
    let shape = h
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .context("npy shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse())
        .collect::<std::result::Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        bail!("{}: expected a matrix", path.display());
    };
    let mut out = Vec::with_capacity(rows * cols);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = rows * cols * 4;
    while left > 0 {
        let take = left.min(buf.len());
        r.read_exact(&mut buf[..take])?;
        out.extend(
            buf[..take]
                .chunks_exact(4)
                .map(|c| conv([c[0], c[1], c[2], c[3]])),
        );
        left -= take;
    }
    Ok((rows, cols, out))
}

fn load(dir: &Path, with_base: bool) -> Result<DataSet> {
    let (nq, dim, queries) = read_npy(&dir.join("queries.npy"), f32::from_le_bytes)?;
    let (_, _, gt) = read_npy(&dir.join("gt.npy"), u32::from_le_bytes)?;
    let (n, base) = if with_base {
        let (n, d, b) = read_npy(&dir.join("base.npy"), f32::from_le_bytes)?;
        if d != dim {
            bail!("base has {d} columns, queries {dim}");
        }
        (n, b)
    } else {
        (0, Vec::new())
    };
    if gt.len() != nq * K {
        bail!("gt.npy does not match queries.npy");
    }
    Ok(DataSet {
        dim,
        n,
        base,
        queries,
        gt,
    })
}

/// Statistics of labelled unit vectors: genuine and impostor cosines, the participation ratio
/// of the covariance ((tr C)² / ‖C‖²_F: how many dimensions the variance is spread over), the
/// norm of the mean, and the local intrinsic dimension (Levina-Bickel MLE, 10 neighbours).
fn vector_stats(labels: &[usize], vs: &[Vec<f32>]) -> Value {
    let dim = vs.first().map(Vec::len).unwrap_or(0);
    let n = vs.len();
    let (mut gen_cos, mut imp_cos) = (Vec::new(), Vec::new());
    let mut knn: Vec<Vec<f32>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            let c = index::dot(&vs[i], &vs[j]);
            if labels[i] == labels[j] {
                gen_cos.push(c as f64);
            } else {
                imp_cos.push(c as f64);
            }
            let d = (2.0 - 2.0 * c).max(1e-12).sqrt();
            knn[i].push(d);
            knn[j].push(d);
        }
    }
    let lid: Vec<f64> = knn
        .iter_mut()
        .filter_map(|d| {
            d.sort_by(f32::total_cmp);
            let k = 10.min(d.len());
            let dk = *d.get(k.checked_sub(1)?)? as f64;
            let s: f64 = d[..k - 1].iter().map(|x| (dk / *x as f64).ln()).sum();
            (s > 0.0).then(|| (k - 1) as f64 / s)
        })
        .collect();
    let mean: Vec<f64> = (0..dim)
        .map(|c| vs.iter().map(|v| v[c] as f64).sum::<f64>() / n.max(1) as f64)
        .collect();
    let mut cov = vec![0f64; dim * dim];
    for v in vs {
        for a in 0..dim {
            let x = v[a] as f64 - mean[a];
            for b in 0..dim {
                cov[a * dim + b] += x * (v[b] as f64 - mean[b]);
            }
        }
    }
    let tr: f64 = (0..dim).map(|a| cov[a * dim + a]).sum();
    let fro: f64 = cov.iter().map(|x| x * x).sum();
    let ms = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        let sd = (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64).sqrt();
        (m, sd)
    };
    let (gm, gs) = ms(&gen_cos);
    let (im, is) = ms(&imp_cos);
    json!({"vectors": n, "genuine_cos_mean": gm, "genuine_cos_sd": gs,
        "impostor_cos_mean": im, "impostor_cos_sd": is,
        "participation_ratio": tr * tr / fro.max(1e-30),
        "mean_norm": mean.iter().map(|x| x * x).sum::<f64>().sqrt(),
        "local_intrinsic_dim": ms(&lid).0})
}

/// Real templates (faces_dev crops through the default pipeline) against a synthetic sample of
/// the same size, so the generator's parameters can be checked.
fn calibrate(data_dir: &Path, models_dir: &Path) -> Result<Value> {
    use likeness_bench::faces::{embed_file, identity};
    let p = likeness_models::Pipeline::load(likeness_models::PipelineConfig {
        models_dir: models_dir.to_owned(),
        ..Default::default()
    })?;
    let dir = data_dir.join("faces_dev");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| identity(f).is_some())
        .collect();
    files.sort();
    let mut timings = likeness_models::StageTimings::default();
    let mut names: Vec<String> = Vec::new();
    let (mut labels, mut vs) = (Vec::new(), Vec::new());
    for f in &files {
        if let Ok(Some(e)) = embed_file(&p, &dir.join(f), &mut timings) {
            let id = identity(f).unwrap_or_default().to_owned();
            let l = names.iter().position(|x| *x == id).unwrap_or_else(|| {
                names.push(id);
                names.len() - 1
            });
            labels.push(l);
            vs.push(e.embedding);
        }
    }
    let dim = vs.first().map(Vec::len).unwrap_or(128);
    let real = vector_stats(&labels, &vs);
    // A synthetic sample of the same size: persons with PER_PERSON templates each.
    let m = vs.len();
    let (mut sl, mut sv) = (Vec::new(), Vec::new());
    let mut c = vec![0f32; dim];
    for r in 0..m {
        let p = r / PER_PERSON;
        centre(dim, p as u64, &mut c);
        let mut t = vec![0f32; dim];
        template(
            &c,
            &mut Rng::new(&[dim as u64, 2, p as u64, (r % PER_PERSON) as u64]),
            &mut t,
        );
        sl.push(p);
        sv.push(t);
    }
    let synth = vector_stats(&sl, &sv);
    eprintln!("  real  {real}\n  synth {synth}");
    Ok(json!({"real_faces_dev": real, "synthetic": synth, "identities": names.len()}))
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers

/// (VmRSS, VmHWM) of this process in bytes.
fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Recall@K against the exact top K, and the recall of just those exact neighbours whose
/// cosine is at least `threshold` (the matches an Identify would report).
fn recalls(found: &[Vec<usize>], d: &DataSet, threshold: f32) -> (f64, f64) {
    let (mut hits, mut matches, mut match_hits) = (0usize, 0usize, 0usize);
    for ((f, t), q) in found
        .iter()
        .zip(d.gt.chunks_exact(K))
        .zip(d.queries.chunks_exact(d.dim))
    {
        for &row in t {
            let got = f.iter().take(K).any(|x| *x as u32 == row);
            hits += got as usize;
            let r = row as usize * d.dim;
            if index::dot(q, &d.base[r..r + d.dim]) >= threshold {
                matches += 1;
                match_hits += got as usize;
            }
        }
    }
    (
        hits as f64 / (found.len() * K).max(1) as f64,
        match_hits as f64 / matches.max(1) as f64,
    )
}

/// Queries/s of `f` over all queries, split over `threads` threads.
fn qps(queries: &[f32], dim: usize, threads: usize, f: impl Fn(&[f32]) + Sync) -> f64 {
    let nq = queries.len() / dim;
    let per = nq.div_ceil(threads) * dim;
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in queries.chunks(per.max(dim)) {
            let f = &f;
            s.spawn(move || part.chunks_exact(dim).for_each(f));
        }
    });
    nq as f64 / t.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

// ---------------------------------------------------------------------------------------------
// Workers

/// One search path: a query to the data ids found.
type SearchFn<'a> = dyn Fn(&[f32]) -> Vec<usize> + Sync + 'a;

fn ours(a: &WorkerArgs) -> Result<Value> {
    let d = load(&a.dir, true)?;
    let (dim, n) = (d.dim, d.n);
    let params = HnswParams {
        m: M,
        ef_construction: EF_CONSTRUCTION,
        ef_search: 64,
        build_threads: a.threads,
    };
    // The production index first (rows = the data set's rows): its matrix is the only copy
    // of the vectors; the graph is built over it.
    let persons: Vec<Arc<str>> = (0..n.div_ceil(PER_PERSON))
        .map(|p| Arc::from(format!("p{p}")))
        .collect();
    let (rss0, _) = rss();
    let mut idx = Index::new(dim);
    for (r, v) in d.base.chunks_exact(dim).enumerate() {
        idx.add(r as u64, persons[r / PER_PERSON].clone(), v);
    }
    let (rss1, _) = rss();
    let (ids, matrix) = idx.build_input();
    let t = Instant::now();
    let built = index::build_graph(ids, matrix, dim, &params);
    let build_s = t.elapsed().as_secs_f64();
    idx.install_graph(built);
    let (rss2, hwm2) = rss();
    let Some(graph) = idx.graph() else {
        bail!("no graph after install");
    };
    let graph_bytes = graph.memory_bytes();
    eprintln!(
        "  ours n={n} d={dim} {}t: build {build_s:.1}s, graph {:.0} MB, index {:.0} MB",
        a.threads,
        graph_bytes as f64 / 1e6,
        rss2.saturating_sub(rss0) as f64 / 1e6
    );
    let (l0, all) = graph.degree_stats();
    let mut out = json!({
        "impl": "likeness hnsw", "dim": dim, "n": n, "threads": a.threads,
        "m": M, "ef_construction": EF_CONSTRUCTION, "build_s": build_s,
        "rss_before_kb": rss0 / 1024, "rss_after_kb": rss2 / 1024, "hwm_kb": hwm2 / 1024,
        // Vectors + links, as hnswlib's index holds (its RSS growth includes its vector copy).
        "index_bytes": graph_bytes + n * dim * 4,
        "graph_bytes": graph_bytes,
        // The whole production index (matrix, ids, persons, id map, graph), measured.
        "index_rss_bytes": rss2.saturating_sub(rss0),
        "index_without_graph_rss_bytes": rss1.saturating_sub(rss0),
        "memory_bytes_estimate": idx.memory_bytes(),
        "levels": graph.max_level(),
        "layer0_degree": l0,
        "neighbour_entries_per_point": all,
    });
    if !a.search {
        return Ok(out);
    }
    let qs = &d.queries;
    // Tombstones as Index::search passes them (none removed here: the cost of the check).
    let dead = vec![false; n];
    let keep = |r: u32| !dead[r as usize];
    let vectors = idx.matrix();
    let warm = &qs[..qs.len().min(50 * dim)];
    warm.chunks_exact(dim).for_each(|q| {
        std::hint::black_box(graph.search(vectors, q, K, 64, None::<&fn(u32) -> bool>));
    });
    let mut rows = Vec::new();
    for &ef in &a.efs {
        let mut row = json!({"ef": ef});
        let paths: [(&str, &SearchFn); 2] = [
            ("", &|q: &[f32]| {
                graph
                    .search(vectors, q, K, ef, None::<&fn(u32) -> bool>)
                    .iter()
                    .map(|x| x.1 as usize)
                    .collect()
            }),
            ("_filtered", &|q: &[f32]| {
                graph
                    .search(vectors, q, K, ef, Some(&keep))
                    .iter()
                    .map(|x| x.1 as usize)
                    .collect()
            }),
        ];
        let mut done = true;
        for (suffix, search) in paths {
            let t = Instant::now();
            let found: Vec<Vec<usize>> = qs.chunks_exact(dim).map(search).collect();
            let qps1 = found.len() as f64 / t.elapsed().as_secs_f64();
            let (r, rm) = recalls(&found, &d, MATCH_THRESHOLD);
            row[format!("recall{suffix}")] = json!(r);
            row[format!("match_recall{suffix}")] = json!(rm);
            row[format!("qps{suffix}_1t")] = json!(qps1);
            row[format!("qps{suffix}_2t")] = json!(qps(qs, dim, 2, |q| {
                std::hint::black_box(search(q));
            }));
            done &= r >= 0.995;
        }
        eprintln!("  ours n={n} d={dim} ef={ef}: {row}");
        rows.push(row);
        if done {
            break;
        }
    }
    out["search"] = json!(rows);
    // Index::search itself at the default ef (k = 5 persons: 28 templates, grouped by person),
    // and with 1% of the templates removed (tombstones).
    let ef = HnswParams::default().ef_search;
    let mut prod = json!({"ef": ef, "k": 5});
    for th in [1, 2] {
        prod[format!("qps_{th}t")] = json!(qps(qs, dim, th, |q| {
            std::hint::black_box(idx.search(q, 5, MATCH_THRESHOLD, ef));
        }));
    }
    let gone: Vec<u64> = (0..n as u64).step_by(100).collect();
    idx.remove_ids(&gone);
    for th in [1, 2] {
        prod[format!("qps_1pct_removed_{th}t")] = json!(qps(qs, dim, th, |q| {
            std::hint::black_box(idx.search(q, 5, MATCH_THRESHOLD, ef));
        }));
    }
    out["index_search"] = prod;
    Ok(out)
}

/// Cosine distance over unit vectors for hnsw_rs: `1 - a·b`, clamped at 0.
#[derive(Debug, Default, Clone, Copy)]
struct CosineDistance;

impl hnsw_rs::prelude::Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - index::dot(a, b)).max(0.0)
    }
}

/// The hnsw_rs graph the gallery used before its own HNSW (parallel insertion).
fn hnsw_rs_build(
    ids: &[u64],
    matrix: &[f32],
    dim: usize,
    p: &HnswParams,
) -> hnsw_rs::prelude::Hnsw<'static, f32, CosineDistance> {
    let hnsw = hnsw_rs::prelude::Hnsw::new(
        p.m.clamp(2, 255),
        ids.len().max(1),
        16,
        p.ef_construction.max(p.m),
        CosineDistance,
    );
    let data: Vec<(&[f32], usize)> = ids
        .iter()
        .zip(matrix.chunks_exact(dim.max(1)))
        .map(|(id, v)| (v, *id as usize))
        .collect();
    hnsw.parallel_insert_slice(&data);
    hnsw
}

fn hnsw_rs_worker(a: &WorkerArgs) -> Result<Value> {
    let d = load(&a.dir, true)?;
    let (dim, n) = (d.dim, d.n);
    let ids: Vec<u64> = (0..n as u64).collect();
    let params = HnswParams {
        m: M,
        ef_construction: EF_CONSTRUCTION,
        ef_search: 64,
        build_threads: a.threads,
    };
    let (rss0, _) = rss();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()?;
    let t = Instant::now();
    let graph = pool.install(|| hnsw_rs_build(&ids, &d.base, dim, &params));
    let build_s = t.elapsed().as_secs_f64();
    let (rss1, hwm1) = rss();
    eprintln!(
        "  hnsw_rs n={n} d={dim} {}t: build {build_s:.1}s, graph {:.0} MB",
        a.threads,
        (rss1.saturating_sub(rss0)) as f64 / 1e6
    );
    let mut out = json!({
        "impl": "hnsw_rs", "version": "0.3.5", "dim": dim, "n": n, "threads": a.threads,
        "m": M, "ef_construction": EF_CONSTRUCTION, "build_s": build_s,
        "rss_before_kb": rss0 / 1024, "rss_after_kb": rss1 / 1024, "hwm_kb": hwm1 / 1024,
        "index_bytes": rss1.saturating_sub(rss0),
        "levels": graph.get_max_level_observed(),
    });
    if !a.search {
        return Ok(out);
    }
    // Neighbour entries: hnsw_rs keeps each as an `Arc<PointWithOrder>` (a 32-byte heap block,
    // 48 with malloc's header) plus an 8-byte pointer.
    let (mut entries, mut layer0) = (0usize, 0usize);
    for p in graph.get_point_indexation() {
        let nb = p.get_neighborhood_id();
        entries += nb.iter().map(Vec::len).sum::<usize>();
        layer0 += nb.first().map(Vec::len).unwrap_or(0);
    }
    out["neighbour_entries_per_point"] = json!(entries as f64 / n.max(1) as f64);
    out["layer0_degree"] = json!(layer0 as f64 / n.max(1) as f64);
    let row_of: HashMap<u64, usize> = (0..n).map(|r| (r as u64, r)).collect();
    let qs = &d.queries;
    let hnsw = &graph;
    let filter = |id: &usize| row_of.contains_key(&(*id as u64));
    let warm = &qs[..qs.len().min(50 * dim)];
    warm.chunks_exact(dim).for_each(|q| {
        std::hint::black_box(hnsw.search(q, K, a.efs.first().copied().unwrap_or(64)));
    });
    let mut rows = Vec::new();
    let (mut raw_done, mut filtered_done) = (false, false);
    for &ef in &a.efs {
        if raw_done && filtered_done {
            break;
        }
        let mut row = json!({"ef": ef});
        // The plain search, then the filtered one that Index::search runs (live ids only: in
        // hnsw_rs a filter also disables the early stop of the layer-0 search). Each path is
        // dropped once its recall reaches 0.995 (higher ef only costs time).
        let paths: [(&str, &SearchFn, &mut bool); 2] = [
            (
                "",
                &|q: &[f32]| hnsw.search(q, K, ef).iter().map(|nb| nb.d_id).collect(),
                &mut raw_done,
            ),
            (
                "_filtered",
                &|q: &[f32]| {
                    hnsw.search_filter(q, K, ef, Some(&filter))
                        .iter()
                        .map(|nb| nb.d_id)
                        .collect()
                },
                &mut filtered_done,
            ),
        ];
        for (suffix, search, done) in paths {
            if *done {
                continue;
            }
            let t = Instant::now();
            let found: Vec<Vec<usize>> = qs.chunks_exact(dim).map(search).collect();
            let qps1 = found.len() as f64 / t.elapsed().as_secs_f64();
            let (r, rm) = recalls(&found, &d, MATCH_THRESHOLD);
            row[format!("recall{suffix}")] = json!(r);
            row[format!("match_recall{suffix}")] = json!(rm);
            row[format!("qps{suffix}_1t")] = json!(qps1);
            row[format!("qps{suffix}_2t")] = json!(qps(qs, dim, 2, |q| {
                std::hint::black_box(search(q));
            }));
            *done = r >= 0.995;
        }
        eprintln!("  hnsw_rs n={n} d={dim} ef={ef}: {row}");
        rows.push(row);
    }
    out["search"] = json!(rows);
    Ok(out)
}

fn exact(dir: &Path, sizes: &[usize]) -> Result<Value> {
    let d = load(dir, true)?;
    let dim = d.dim;
    let mut rows = Vec::new();
    for &size in sizes {
        let size = size.min(d.n);
        let mut idx = Index::new(dim);
        let persons: Vec<Arc<str>> = (0..size.div_ceil(PER_PERSON))
            .map(|p| Arc::from(format!("p{p}")))
            .collect();
        for (r, v) in d.base.chunks_exact(dim).take(size).enumerate() {
            idx.add(r as u64, persons[r / PER_PERSON].clone(), v);
        }
        // Enough queries for about a second per pass.
        let nq = (20_000_000 / size).max(200).min(d.nq());
        let qs = &d.queries[..nq * dim];
        qs.chunks_exact(dim).take(20).for_each(|q| {
            std::hint::black_box(idx.search(q, 5, MATCH_THRESHOLD, 64));
        });
        let mut row = json!({"n": size, "queries": nq});
        for th in [1, 2] {
            row[format!("qps_{th}t")] = json!(qps(qs, dim, th, |q| {
                std::hint::black_box(idx.search(q, 5, MATCH_THRESHOLD, 64));
            }));
        }
        eprintln!("  exact {row}");
        rows.push(row);
    }
    Ok(json!({"impl": "likeness exact (Index::search, k=5)", "dim": dim, "exact": rows}))
}

fn gallery_config(dir: &Path, dim: usize, exact_max: usize, snapshot_every: u64) -> GalleryConfig {
    GalleryConfig {
        data_dir: dir.to_owned(),
        dim,
        exact_max,
        snapshot_every,
        hnsw: HnswParams {
            m: M,
            ef_construction: EF_CONSTRUCTION,
            ef_search: 64,
            build_threads: 0,
        },
        ..GalleryConfig::default()
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

fn erasure_prep(dir: &Path, gallery: &Path) -> Result<Value> {
    let d = load(dir, true)?;
    let (dim, n) = (d.dim, d.n);
    // Enrolling through the durable path costs one fsync per person (~3 ms here): enroll on
    // tmpfs, then copy the files to disk, as a restarted server would find them.
    let shm = PathBuf::from(format!("/dev/shm/likeness-ann-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&shm);
    let master = MasterKey::random()?;
    let t = Instant::now();
    {
        let g = Galleries::open(
            gallery_config(&shm, dim, usize::MAX, 250_000),
            master.clone(),
        )?;
        let tenant = TenantId::parse("bench")?;
        for (p, rows) in d.base.chunks(PER_PERSON * dim).enumerate() {
            let vs: Vec<Vec<f32>> = rows.chunks_exact(dim).map(<[f32]>::to_vec).collect();
            g.enroll(&tenant, &format!("p{p}"), &vs)?;
        }
    }
    let enroll_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(gallery);
    copy_dir(&shm, gallery)?;
    std::fs::remove_dir_all(&shm)?;
    std::fs::write(gallery.join("bench-master-key.hex"), master.to_hex())?;
    eprintln!("  enrolled {n} templates (tmpfs) in {enroll_s:.1}s");
    Ok(json!({"n": n, "dim": dim, "enroll_tmpfs_s": enroll_s}))
}

fn erasure(dir: &Path, gallery: &Path, removals: usize, exact_max: usize) -> Result<Value> {
    let d = load(dir, false)?;
    let dim = d.dim;
    let master =
        MasterKey::from_hex(std::fs::read_to_string(gallery.join("bench-master-key.hex"))?.trim())?;
    let tenant = TenantId::parse("bench")?;
    let (rss0, _) = rss();
    let g = Galleries::open(gallery_config(gallery, dim, exact_max, 10_000), master)?;
    let t = Instant::now();
    g.preload(&tenant)?;
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let graph = g.stats(&tenant)?.templates as usize >= exact_max;
    // Polled once a second: stats() counts distinct persons, a sort of every template's
    // person (about 0.3 s at 1M), which would take a core from the build.
    while graph && g.stats(&tenant)?.search != "hnsw" {
        std::thread::sleep(Duration::from_secs(1));
    }
    let graph_s = graph.then(|| t.elapsed().as_secs_f64());
    let stats = g.stats(&tenant)?;
    let (rss1, hwm1) = rss();
    let n = stats.templates as usize;
    let persons = stats.persons as usize;
    eprintln!(
        "  gallery {n}: load {load_s:.1}s, graph {graph_s:.1?}s, RSS +{:.0} MB",
        (rss1.saturating_sub(rss0)) as f64 / 1e6
    );
    // One thread searches without pause (one Identify per query, k=5) while the main thread
    // first waits, then removes persons one by one.
    let stop = AtomicBool::new(false);
    let epoch = Instant::now();
    let mut windows: Vec<(f64, f64, usize, f64)> = Vec::new();
    let samples: Vec<(f64, f64)> = std::thread::scope(|s| -> Result<Vec<(f64, f64)>> {
        let searcher = s.spawn(|| {
            let mut lat = Vec::new();
            let qs: Vec<Vec<f32>> = d.queries.chunks_exact(dim).map(<[f32]>::to_vec).collect();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let q = std::slice::from_ref(&qs[i % qs.len()]);
                let t0 = epoch.elapsed().as_secs_f64();
                let r = g.identify(&tenant, q, 5, MATCH_THRESHOLD);
                std::hint::black_box(&r);
                lat.push((t0, epoch.elapsed().as_secs_f64() - t0));
                i += 1;
            }
            lat
        });
        let mut run = || -> Result<()> {
            std::thread::sleep(Duration::from_secs(3));
            for i in 0..removals {
                let person = format!("p{}", (i * 7919 + 11) % persons.max(1));
                let t0 = epoch.elapsed().as_secs_f64();
                let removed = g.remove_person(&tenant, &person)?;
                let t1 = epoch.elapsed().as_secs_f64();
                eprintln!(
                    "  remove_person {person}: {removed} templates, {:.2}s",
                    t1 - t0
                );
                windows.push((t0, t1, removed, t1 - t0));
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        };
        let r = run();
        stop.store(true, Ordering::Relaxed);
        let lat = searcher
            .join()
            .map_err(|_| anyhow::anyhow!("search thread panicked"))?;
        r.map(|_| lat)
    })?;
    let first = windows.first().map(|w| w.0).unwrap_or(f64::MAX);
    let inside = |t: f64| windows.iter().any(|w| t >= w.0 && t < w.1);
    let summarise = |v: Vec<f64>, span: f64| {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        json!({"searches": v.len(), "per_s": v.len() as f64 / span.max(1e-9),
            "p50_ms": percentile(&v, 0.5) * 1e3, "p99_ms": percentile(&v, 0.99) * 1e3,
            "max_ms": v.last().copied().unwrap_or(f64::NAN) * 1e3})
    };
    let before: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 < first)
        .map(|s| s.1)
        .collect();
    let during: Vec<f64> = samples
        .iter()
        .filter(|s| inside(s.0))
        .map(|s| s.1)
        .collect();
    let during_span: f64 = windows.iter().map(|w| w.3).sum();
    let stats_after = g.stats(&tenant)?;
    drop(g);
    Ok(json!({
        "n": n, "dim": dim, "persons": persons, "search": stats.search, "load_s": load_s,
        "graph_build_s": graph_s,
        "rss_before_kb": rss0 / 1024, "rss_after_kb": rss1 / 1024, "hwm_kb": hwm1 / 1024,
        "gallery_bytes": rss1.saturating_sub(rss0),
        "gallery_bytes_per_million": rss1.saturating_sub(rss0) as f64 * 1e6 / n.max(1) as f64,
        "memory_bytes_estimate": stats.memory_bytes,
        "disk_bytes": stats_after.disk_bytes,
        "rewrites_s": windows.iter().map(|w| w.3).collect::<Vec<_>>(),
        "removed": windows.iter().map(|w| w.2).collect::<Vec<_>>(),
        "search_before": summarise(before, first),
        "search_during": summarise(during, during_span),
    }))
}

// ---------------------------------------------------------------------------------------------
// Orchestration

fn others_running() -> Option<String> {
    let out = Command::new("pgrep").args(["-fa", OTHERS]).output().ok()?;
    let me = std::process::id().to_string();
    let s = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| !l.starts_with(&format!("{me} ")) && !l.contains("pgrep"))
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// Cores busy over `span`, all processes together (from /proc/stat).
/// (all ticks, busy ticks) of the whole machine from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total, total - idle))
}

fn cores() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64
}

fn cpu_busy(span: Duration) -> f64 {
    let sample = machine_ticks;
    let (Some((t0, b0)), _) = (sample(), std::thread::sleep(span)) else {
        return 0.0;
    };
    let Some((t1, b1)) = sample() else {
        return 0.0;
    };
    (b1 - b0) as f64 / (t1 - t0).max(1) as f64 * cores()
}

/// Waits until no other benchmark runs and the machine is idle (at most `MAX_WAIT`); returns
/// the seconds waited and what was seen last if it gave up waiting.
fn wait_quiet() -> (f64, Option<String>) {
    let max_wait = Duration::from_secs(MAX_WAIT_S.load(Ordering::Relaxed));
    if NO_WAIT.load(Ordering::Relaxed) {
        return (0.0, None);
    }
    let start = Instant::now();
    let mut said = String::new();
    loop {
        let why = match others_running() {
            Some(o) => Some(format!("other benchmarks running: {o}")),
            None => {
                let busy = cpu_busy(Duration::from_secs(2));
                (busy > 0.3).then(|| format!("machine busy ({busy:.1} cores in use)"))
            }
        };
        let Some(why) = why else {
            return (start.elapsed().as_secs_f64(), None);
        };
        if start.elapsed() > max_wait {
            eprintln!("  gave up waiting: {why}");
            return (start.elapsed().as_secs_f64(), Some(why));
        }
        if why.split(' ').take(2).ne(said.split(' ').take(2)) {
            eprintln!("  waiting: {why}");
            said = why;
        }
        std::thread::sleep(Duration::from_secs(10));
    }
}

/// Runs a worker (fresh process) and returns its RESULT line.
fn worker(cmd: &mut Command) -> Result<Value> {
    let (waited, disturbed) = wait_quiet();
    let before = machine_ticks();
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    let s = String::from_utf8_lossy(&out.stdout);
    let line = s
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("{cmd:?} printed no RESULT"))?;
    let mut v: Value = serde_json::from_str(line)?;
    v["waited_s"] = json!(waited);
    // CPU that other processes used meanwhile, in cores: what the machine was busy with,
    // less the worker's own time.
    if let (Some((t0, b0)), Some((t1, b1)), Some(own)) =
        (before, machine_ticks(), v["cpu_ticks"].as_u64())
    {
        let wall = (t1 - t0) as f64 / cores();
        v["other_load_cores"] = json!(((b1 - b0) as f64 - own as f64).max(0.0) / wall.max(1.0));
    }
    if let Some(d) = disturbed {
        v["disturbed"] = json!(d);
    }
    Ok(v)
}

fn me() -> Result<Command> {
    Ok(Command::new(std::env::current_exe()?))
}

fn parse_set(s: &str) -> Result<(usize, usize)> {
    let (d, n) = s.split_once('x').context("sets are DIMxN")?;
    Ok((d.trim().parse()?, n.trim().parse()?))
}

fn run(a: RunArgs) -> Result<()> {
    let started = Instant::now();
    NO_WAIT.store(a.no_wait, Ordering::Relaxed);
    MAX_WAIT_S.store(a.max_wait, Ordering::Relaxed);
    let sets: Vec<(usize, usize)> = if a.sets.iter().any(|s| s == "none") {
        Vec::new()
    } else if !a.sets.is_empty() {
        a.sets.iter().map(|s| parse_set(s)).collect::<Result<_>>()?
    } else if a.quick {
        vec![(128, 100_000)]
    } else {
        vec![(128, 100_000), (512, 100_000), (128, 1_000_000)]
    };
    let single: Vec<(usize, usize)> = if a.single_thread.iter().any(|s| s == "none") {
        Vec::new()
    } else if !a.single_thread.is_empty() {
        a.single_thread
            .iter()
            .map(|s| parse_set(s))
            .collect::<Result<_>>()?
    } else if a.quick {
        Vec::new()
    } else {
        sets.clone()
    };
    let with_hnsw_rs: Vec<(usize, usize)> = if a.hnsw_rs.iter().any(|s| s == "none") {
        Vec::new()
    } else if !a.hnsw_rs.is_empty() {
        a.hnsw_rs
            .iter()
            .map(|s| parse_set(s))
            .collect::<Result<_>>()?
    } else {
        vec![(128, 100_000)]
    };
    let erasure_sizes = if a.erasure.contains(&0) {
        Vec::new()
    } else if !a.erasure.is_empty() {
        a.erasure.clone()
    } else if a.quick {
        vec![100_000]
    } else {
        vec![100_000, 1_000_000]
    };
    let efs = a
        .efs
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // Both curves go on to 4x the largest ef given (each stops once recall@10 reaches 0.995),
    // so both reach 0.99 on the hard sets (512-d, 1M) and the interpolation has a point above.
    let max_ef = a.efs.iter().copied().max().unwrap_or(64);
    let efs = format!("{efs},{},{}", max_ef * 2, max_ef * 4);
    let peer_efs = &efs;
    std::fs::create_dir_all(&a.cache)?;
    let cal_path = a.cache.join(format!("calibration-v{GEN_VERSION}.json"));
    let calibration = match std::fs::read_to_string(&cal_path) {
        Ok(s) => serde_json::from_str(&s)?,
        Err(_) => match worker(me()?.arg("calibrate")) {
            Ok(v) => {
                std::fs::write(&cal_path, v.to_string())?;
                v
            }
            Err(e) => {
                eprintln!("  calibration skipped: {e:#}");
                Value::Null
            }
        },
    };
    let mut results = Vec::new();
    for &(dim, n) in &sets {
        let dir = set_dir(&a.cache, dim, n);
        eprintln!(
            "== {dim}-d, {n} vectors ({:.0}s)",
            started.elapsed().as_secs_f64()
        );
        ensure_data(&dir, dim, n, a.queries)?;
        let mut entry = json!({"dim": dim, "n": n});
        let dirs = dir.to_string_lossy().to_string();
        entry["ours"] = worker(me()?.args([
            "ours",
            "--dir",
            &dirs,
            "--threads",
            "2",
            "--search",
            "--efs",
            &efs,
        ]))?;
        if !a.no_peer {
            entry["hnswlib"] = worker(Command::new(&a.python).args([
                "bench/peer/ann_hnswlib.py",
                "--dir",
                &dirs,
                "--threads",
                "2",
                "--search",
                "--efs",
                peer_efs,
            ]))?;
        }
        if with_hnsw_rs.contains(&(dim, n)) {
            // Its curve stops at ef 1024: beyond, a filtered search takes minutes per ef.
            let rs_efs: Vec<String> = a
                .efs
                .iter()
                .filter(|e| **e <= 1024)
                .map(usize::to_string)
                .collect();
            entry["hnsw_rs"] = worker(me()?.args([
                "hnsw-rs",
                "--dir",
                &dirs,
                "--threads",
                "2",
                "--search",
                "--efs",
                &rs_efs.join(","),
            ]))?;
        }
        if single.contains(&(dim, n)) && n <= 100_000 {
            single_thread(&a, &mut entry, &dirs)?;
        }
        entry["targets"] = targets(&entry);
        results.push(entry);
        save(
            &a,
            &results,
            &Value::Null,
            &Value::Null,
            &[],
            &calibration,
            started,
        )?;
    }
    // Exact search at 10k and 100k (128-d).
    let exact_dir = set_dir(&a.cache, 128, 100_000);
    ensure_data(&exact_dir, 128, 100_000, a.queries)?;
    let ed = exact_dir.to_string_lossy().to_string();
    eprintln!("== exact search ({:.0}s)", started.elapsed().as_secs_f64());
    let exact_ours = worker(me()?.args(["exact", "--dir", &ed, "--sizes", "10000,100000"]))?;
    let exact_numpy = if a.no_peer {
        Value::Null
    } else {
        worker(
            Command::new(&a.python)
                .env("OPENBLAS_NUM_THREADS", "1")
                .env("OMP_NUM_THREADS", "1")
                .args([
                    "bench/peer/ann_hnswlib.py",
                    "--dir",
                    &ed,
                    "--exact",
                    "10000,100000",
                ]),
        )?
    };
    save(
        &a,
        &results,
        &exact_ours,
        &exact_numpy,
        &[],
        &calibration,
        started,
    )?;
    // Erasure rewrite with searches meanwhile.
    let mut erasures = Vec::new();
    for &n in &erasure_sizes {
        eprintln!(
            "== erasure at {n} ({:.0}s)",
            started.elapsed().as_secs_f64()
        );
        let dir = set_dir(&a.cache, 128, n);
        ensure_data(&dir, 128, n, a.queries)?;
        let ds = dir.to_string_lossy().to_string();
        let gdir = a.cache.join(format!("gallery-{n}"));
        let gs = gdir.to_string_lossy().to_string();
        let prep = worker(me()?.args(["erasure-prep", "--dir", &ds, "--gallery", &gs]))?;
        let exact_max = if n <= a.erasure_graph_max {
            20_000
        } else {
            n + 1
        };
        let mut e = worker(me()?.args([
            "erasure",
            "--dir",
            &ds,
            "--gallery",
            &gs,
            "--exact-max",
            &exact_max.to_string(),
        ]))?;
        e["enroll_tmpfs_s"] = prep["enroll_tmpfs_s"].clone();
        e["waited_s"] = json!(f(&e["waited_s"]) + f(&prep["waited_s"]));
        let _ = std::fs::remove_dir_all(&gdir);
        erasures.push(e);
        save(
            &a,
            &results,
            &exact_ours,
            &exact_numpy,
            &erasures,
            &calibration,
            started,
        )?;
    }
    // Single-thread builds last (the longest runs, least needed).
    for i in 0..results.len() {
        let entry = &mut results[i];
        let (dim, n) = (f(&entry["dim"]) as usize, f(&entry["n"]) as usize);
        if !single.contains(&(dim, n)) || !entry["ours_1t"].is_null() {
            continue;
        }
        eprintln!(
            "== {dim}-d, {n} vectors, 1-thread builds ({:.0}s)",
            started.elapsed().as_secs_f64()
        );
        let dirs = set_dir(&a.cache, dim, n).to_string_lossy().to_string();
        single_thread(&a, entry, &dirs)?;
        entry["targets"] = targets(entry);
        save(
            &a,
            &results,
            &exact_ours,
            &exact_numpy,
            &erasures,
            &calibration,
            started,
        )?;
    }
    let report = save(
        &a,
        &results,
        &exact_ours,
        &exact_numpy,
        &erasures,
        &calibration,
        started,
    )?;
    print_table(&report);
    println!(
        "wrote {} ({:.0}s in all, of which {:.0}s waiting for an idle machine)",
        a.out.display(),
        f(&report["total_s"]),
        f(&report["waited_for_idle_machine_s"])
    );
    Ok(())
}

/// Builds with one thread on both sides (build time, memory).
fn single_thread(a: &RunArgs, entry: &mut Value, dirs: &str) -> Result<()> {
    entry["ours_1t"] = worker(me()?.args(["ours", "--dir", dirs, "--threads", "1"]))?;
    if !a.no_peer {
        entry["hnswlib_1t"] = worker(Command::new(&a.python).args([
            "bench/peer/ann_hnswlib.py",
            "--dir",
            dirs,
            "--threads",
            "1",
        ]))?;
    }
    Ok(())
}

/// Writes the report so far (after every phase, so an interrupted run keeps what it measured).
fn save(
    a: &RunArgs,
    results: &[Value],
    exact_ours: &Value,
    exact_numpy: &Value,
    erasures: &[Value],
    calibration: &Value,
    started: Instant,
) -> Result<Value> {
    let total_s = started.elapsed().as_secs_f64();
    let mut waited_s = 0.0;
    for v in results
        .iter()
        .flat_map(|e| ["ours", "hnswlib", "ours_1t", "hnswlib_1t", "hnsw_rs"].map(|k| &e[k]))
        .chain([exact_ours, exact_numpy])
        .chain(erasures.iter())
    {
        waited_s += v["waited_s"].as_f64().unwrap_or(0.0);
    }
    let report = json!({
        "machine": machine(),
        "params": {"m": M, "ef_construction": EF_CONSTRUCTION, "k": K, "efs": a.efs,
            "queries": a.queries, "data": format!(
                "clustered unit vectors: n/{PER_PERSON} persons, {PER_PERSON} templates each at cosine U{COS_TO_CENTRE:?} to a random centre (centres share an offset of norm {MEAN_OFFSET}), coordinate variance ∝ (1+i)^-0.5; queries: fresh templates of enrolled persons (90%) and strangers (10%); seed {SEED:#x}")},
        "calibration": calibration,
        "sets": results,
        "exact": {"ours": exact_ours, "numpy": exact_numpy},
        "erasure": erasures,
        "total_s": total_s,
        "waited_for_idle_machine_s": waited_s,
    });
    if let Some(p) = a.out.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&report)? + "\n")?;
    Ok(report)
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    json!({"cpu": cpu, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory": mem, "rust_target_cpu": "x86-64 (default); dot products dispatched at run time (pulp: AVX2+FMA here)",
        "hnswlib_build": "-O3 -march=native (sdist)"})
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Queries/s at recall `target` along the ef curve (`rows` ascending in ef): log-linear
/// interpolation between the two rows around it; `None` if no row reaches it.
fn qps_at(rows: &Value, recall_key: &str, qps_key: &str, target: f64) -> Option<f64> {
    let rows = rows.as_array()?;
    let i = rows.iter().position(|r| f(&r[recall_key]) >= target)?;
    let (r1, q1) = (f(&rows[i][recall_key]), f(&rows[i][qps_key]));
    if i == 0 {
        return Some(q1);
    }
    let (r0, q0) = (f(&rows[i - 1][recall_key]), f(&rows[i - 1][qps_key]));
    let w = ((target - r0) / (r1 - r0).max(1e-12)).clamp(0.0, 1.0);
    Some((q0.ln() + w * (q1.ln() - q0.ln())).exp())
}

/// The targets for one set, ours against hnswlib.
fn targets(s: &Value) -> Value {
    let (o, h) = (&s["ours"], &s["hnswlib"]);
    if h.is_null() {
        return Value::Null;
    }
    let mut t = json!({
        "build_speed_vs_hnswlib_2t": f(&h["build_s"]) / f(&o["build_s"]),
        // Vectors + links on both sides.
        "memory_vs_hnswlib_graph_only": f(&o["index_bytes"]) / f(&h["index_bytes"]),
        // Our whole production index (ids, persons, id map too), measured RSS.
        "memory_vs_hnswlib_with_index_matrix": f(&o["index_rss_bytes"]) / f(&h["index_bytes"]),
    });
    let rs = &s["hnsw_rs"];
    if !rs.is_null() {
        t["hnsw_rs_build_speed_vs_hnswlib_2t"] = json!(f(&h["build_s"]) / f(&rs["build_s"]));
        t["hnsw_rs_memory_vs_hnswlib"] = json!(
            (f(&rs["index_bytes"]) + f(&o["index_without_graph_rss_bytes"])) / f(&h["index_bytes"])
        );
        for th in ["1t", "2t"] {
            let hq = qps_at(&h["search"], "recall", &format!("qps_{th}"), 0.99);
            for (name, rk, qk) in [
                ("plain", "recall".to_owned(), format!("qps_{th}")),
                (
                    "filtered",
                    "recall_filtered".to_owned(),
                    format!("qps_filtered_{th}"),
                ),
            ] {
                let q = qps_at(&rs["search"], &rk, &qk, 0.99);
                t[format!("hnsw_rs_{name}_qps_{th}_at_recall_0.99")] = json!(q);
                t[format!("hnsw_rs_{name}_vs_hnswlib_{th}_at_recall_0.99")] =
                    json!(q.zip(hq).map(|(a, b)| a / b));
            }
        }
    }
    if !s["ours_1t"].is_null() && !s["hnswlib_1t"].is_null() {
        t["build_speed_vs_hnswlib_1t"] =
            json!(f(&s["hnswlib_1t"]["build_s"]) / f(&s["ours_1t"]["build_s"]));
    }
    // recall@10 at 0.95 and 0.99, and the recall of true matches (cosine >= threshold) at 0.99.
    for (metric, target) in [("recall", 0.95), ("recall", 0.99), ("match_recall", 0.99)] {
        for th in ["1t", "2t"] {
            let hq = qps_at(&h["search"], metric, &format!("qps_{th}"), target);
            t[format!("hnswlib_qps_{th}_at_{metric}_{target}")] = json!(hq);
            for (name, rk, qk) in [
                ("plain", metric.to_owned(), format!("qps_{th}")),
                (
                    "filtered",
                    format!("{metric}_filtered"),
                    format!("qps_filtered_{th}"),
                ),
            ] {
                let oq = qps_at(&o["search"], &rk, &qk, target);
                t[format!("ours_{name}_qps_{th}_at_{metric}_{target}")] = json!(oq);
                t[format!("ours_{name}_vs_hnswlib_{th}_at_{metric}_{target}")] =
                    json!(oq.zip(hq).map(|(a, b)| a / b));
            }
        }
    }
    t
}

fn opt(v: &Value, prec: usize) -> String {
    v.as_f64()
        .map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

fn print_table(r: &Value) {
    let m = &r["machine"];
    println!(
        "\nANN on {} ({} cores): M={M}, ef_construction={EF_CONSTRUCTION}, k={K}, {} queries; recall@{K} vs exact; \
         match = recall of the exact neighbours with cosine >= {MATCH_THRESHOLD}; QPS = queries/s",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        r["params"]["queries"]
    );
    println!(
        "{:<11} {:<16} {:>5} {:>7} {:>7} {:>8} {:>8}",
        "set", "impl", "ef", "recall", "match", "QPS 1t", "QPS 2t"
    );
    for s in r["sets"].as_array().into_iter().flatten() {
        let set = format!("{}d x {}k", s["dim"], f(&s["n"]) as u64 / 1000);
        for (name, key, suffix) in [
            ("hnswlib", "hnswlib", ""),
            ("ours", "ours", ""),
            ("ours filtered", "ours", "_filtered"),
            ("hnsw_rs", "hnsw_rs", ""),
            ("hnsw_rs filtered", "hnsw_rs", "_filtered"),
        ] {
            for row in s[key]["search"].as_array().into_iter().flatten() {
                if row[format!("recall{suffix}")].is_null() {
                    continue;
                }
                println!(
                    "{:<11} {:<16} {:>5} {:>7.4} {:>7.4} {:>8.0} {:>8.0}",
                    set,
                    name,
                    row["ef"],
                    f(&row[format!("recall{suffix}")]),
                    f(&row[format!("match_recall{suffix}")]),
                    f(&row[format!("qps{suffix}_1t")]),
                    f(&row[format!("qps{suffix}_2t")]),
                );
            }
        }
        let p = &s["ours"]["index_search"];
        println!(
            "{:<11} {:<16} {:>5} {:>7} {:>7} {:>8.0} {:>8.0}   (Index::search, k=5 persons)",
            set,
            "ours Index",
            p["ef"],
            "",
            "",
            f(&p["qps_1t"]),
            f(&p["qps_2t"])
        );
        if !p["qps_1pct_removed_1t"].is_null() {
            println!(
                "{:<11} {:<16} {:>5} {:>7} {:>7} {:>8.0} {:>8.0}   (the same, 1% of templates removed)",
                set,
                "ours Index",
                p["ef"],
                "",
                "",
                f(&p["qps_1pct_removed_1t"]),
                f(&p["qps_1pct_removed_2t"])
            );
        }
    }
    println!(
        "\n{:<11} {:<8} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9}",
        "set", "impl", "build 2t", "build 1t", "index MB", "B/vector", "Index MB", "levels"
    );
    for s in r["sets"].as_array().into_iter().flatten() {
        let set = format!("{}d x {}k", s["dim"], f(&s["n"]) as u64 / 1000);
        for key in ["hnswlib", "ours", "hnsw_rs"] {
            let e = &s[key];
            if e.is_null() {
                continue;
            }
            println!(
                "{:<11} {:<8} {:>8.1}s {:>9} {:>9.0} {:>9.0} {:>11} {:>9}",
                set,
                key,
                f(&e["build_s"]),
                opt(&s[format!("{key}_1t")]["build_s"], 1),
                f(&e["index_bytes"]) / 1e6,
                f(&e["index_bytes"]) / f(&s["n"]),
                e["index_rss_bytes"]
                    .as_f64()
                    .map(|x| format!("{:.0}", x / 1e6))
                    .unwrap_or("-".into()),
                e["levels"]
                    .as_u64()
                    .map(|x| x.to_string())
                    .unwrap_or("-".into()),
            );
        }
        let t = &s["targets"];
        if !t.is_null() {
            println!(
                "  targets: build speed vs hnswlib {:.2}x (2 threads), {}x (1 thread) [>= 0.5]; \
                 memory {:.2}x (graph only), {:.2}x (with the index matrix) [<= 1.5]",
                f(&t["build_speed_vs_hnswlib_2t"]),
                opt(&t["build_speed_vs_hnswlib_1t"], 2),
                f(&t["memory_vs_hnswlib_graph_only"]),
                f(&t["memory_vs_hnswlib_with_index_matrix"]),
            );
            if !t["hnsw_rs_build_speed_vs_hnswlib_2t"].is_null() {
                println!(
                    "  hnsw_rs: build speed vs hnswlib {:.2}x (2 threads), memory {:.2}x; at recall 0.99 QPS 1t/2t {}/{} ({}x/{}x), filtered {}/{} ({}x/{}x)",
                    f(&t["hnsw_rs_build_speed_vs_hnswlib_2t"]),
                    f(&t["hnsw_rs_memory_vs_hnswlib"]),
                    opt(&t["hnsw_rs_plain_qps_1t_at_recall_0.99"], 0),
                    opt(&t["hnsw_rs_plain_qps_2t_at_recall_0.99"], 0),
                    opt(&t["hnsw_rs_plain_vs_hnswlib_1t_at_recall_0.99"], 2),
                    opt(&t["hnsw_rs_plain_vs_hnswlib_2t_at_recall_0.99"], 2),
                    opt(&t["hnsw_rs_filtered_qps_1t_at_recall_0.99"], 0),
                    opt(&t["hnsw_rs_filtered_qps_2t_at_recall_0.99"], 0),
                    opt(&t["hnsw_rs_filtered_vs_hnswlib_1t_at_recall_0.99"], 2),
                    opt(&t["hnsw_rs_filtered_vs_hnswlib_2t_at_recall_0.99"], 2),
                );
            }
            for (metric, target) in [("recall", 0.95), ("recall", 0.99), ("match_recall", 0.99)] {
                let key = |k: &str| k.replace("R", &format!("{metric}_{target}"));
                let g = |k: &str| opt(&t[key(k)], 0);
                let r = |k: &str| opt(&t[key(k)], 2);
                println!(
                    "  at {metric} {target}: QPS 1t/2t hnswlib {}/{}, ours {}/{} ({}x/{}x), ours filtered {}/{} ({}x/{}x)",
                    g("hnswlib_qps_1t_at_R"),
                    g("hnswlib_qps_2t_at_R"),
                    g("ours_plain_qps_1t_at_R"),
                    g("ours_plain_qps_2t_at_R"),
                    r("ours_plain_vs_hnswlib_1t_at_R"),
                    r("ours_plain_vs_hnswlib_2t_at_R"),
                    g("ours_filtered_qps_1t_at_R"),
                    g("ours_filtered_qps_2t_at_R"),
                    r("ours_filtered_vs_hnswlib_1t_at_R"),
                    r("ours_filtered_vs_hnswlib_2t_at_R"),
                );
            }
        }
    }
    println!("\nExact search (128-d) queries/s:");
    for (name, key) in [("ours Index::search", "ours"), ("numpy gemv", "numpy")] {
        for row in r["exact"][key]["exact"].as_array().into_iter().flatten() {
            println!(
                "  {name:<20} n={:<7} 1t {:>8.0}  2t {:>8}",
                row["n"],
                f(&row["qps_1t"]),
                opt(&row["qps_2t"], 0)
            );
        }
    }
    println!("\nErasure (RemovePerson -> encrypted snapshot rewrite + new log), 128-d:");
    for e in r["erasure"].as_array().into_iter().flatten() {
        let (b, d) = (&e["search_before"], &e["search_during"]);
        println!(
            "  n={:<8} search {:<5} rewrite {:?} s; Identify p50/p99 before {:.2}/{:.2} ms ({:.0}/s), during {:.2}/{:.2} ms ({:.0}/s, max {:.1} ms); \
             RSS {:.0} MB = {:.0} MB per million; snapshot {:.0} MB; load {:.1} s, graph {} s",
            e["n"],
            e["search"].as_str().unwrap_or("?"),
            e["rewrites_s"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| (f(x) * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            f(&b["p50_ms"]),
            f(&b["p99_ms"]),
            f(&b["per_s"]),
            f(&d["p50_ms"]),
            f(&d["p99_ms"]),
            f(&d["per_s"]),
            f(&d["max_ms"]),
            f(&e["gallery_bytes"]) / 1e6,
            f(&e["gallery_bytes_per_million"]) / 1e6,
            f(&e["disk_bytes"]) / 1e6,
            f(&e["load_s"]),
            opt(&e["graph_build_s"], 1),
        );
    }
    let mut noisy = Vec::new();
    for s in r["sets"].as_array().into_iter().flatten() {
        for k in ["ours", "hnswlib", "ours_1t", "hnswlib_1t", "hnsw_rs"] {
            let l = f(&s[k]["other_load_cores"]);
            if l > 0.1 {
                noisy.push(format!("{}d x {} {k}: {l:.2} cores", s["dim"], s["n"]));
            }
        }
    }
    for e in r["erasure"].as_array().into_iter().flatten() {
        let l = f(&e["other_load_cores"]);
        if l > 0.1 {
            noisy.push(format!("erasure {}: {l:.2} cores", e["n"]));
        }
    }
    if !noisy.is_empty() {
        println!("\nOther processes used CPU during: {}", noisy.join("; "));
    }
}

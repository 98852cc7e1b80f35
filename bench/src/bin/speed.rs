//! End-to-end pipeline speed: images/s and faces/s with the per-stage split, Rust (in
//! process) side by side with the reference Python pipeline in `bench/peer/pipeline.py` (same
//! models, stages, detector views, parameters and threads), one image and `--batch` images per
//! call, each with decoding on the calling thread and with a second thread decoding ahead (as
//! the matcher's batcher does; the Python peer then uses a decode thread too). Also checks
//! that both find the same faces, and that the detection plan finds the faces the earlier
//! tile plan found (`detect::plan_tiles` with the fixed-input YuNet-s export), and profiles
//! where the Rust time goes by image size.
//!
//! The Python peer runs as a subprocess in a line-protocol mode; the passes of every mode are
//! interleaved and never run at the same time, so a change in machine load hits all modes
//! alike; passes during which other processes used the CPU are repeated and left out.
//!
//! Run through `bench/speed.sh`, or:
//! `cargo run --release -p likeness-bench --bin speed -- --python .cache/bench-venv/bin/python`
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use likeness_models::detect::iou;
use likeness_models::{Face, Pipeline, PipelineConfig, RgbImage, StageTimings, default_models_dir};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(
    about = "Pipeline speed, Rust vs the Python reference pipeline",
    args_override_self = true
)]
struct Args {
    /// set.json of the benchmark images (built by bench/peer/make_images.py if missing).
    #[arg(long, default_value = ".cache/bench-images/set.json")]
    set: PathBuf,
    /// The shared data folder the set is built from.
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Models directory.
    #[arg(long, env = "LIKENESS_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// Intra-op threads of every ONNX session (both sides) and OpenCV threads (Python).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed passes over the whole set, per mode.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Untimed passes first, per mode.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Images per `analyze` call in the batched mode.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Python interpreter with bench/peer/requirements.txt installed.
    #[arg(long, default_value = ".cache/bench-venv/bin/python")]
    python: PathBuf,
    /// The Python peer.
    #[arg(long, default_value = "bench/peer/pipeline.py")]
    peer: PathBuf,
    /// cv2.resize interpolation of the peer's detector views (linear or area).
    #[arg(long, default_value = "linear")]
    peer_interp: String,
    /// ONNX Runtime graph optimisation level of the peer (Python's default: ORT_ENABLE_ALL).
    #[arg(long, default_value = "ORT_ENABLE_ALL")]
    peer_opt_level: String,
    /// Let the peer's idle ONNX Runtime threads spin (ORT's default; the Rust sessions never
    /// spin, see models/src/runtime.rs).
    #[arg(long)]
    peer_spinning: bool,
    /// A pass during which other processes kept more than this many cores busy counts as
    /// disturbed: it is repeated (see --retries) and left out of the summary when the mode
    /// has undisturbed passes.
    #[arg(long, default_value_t = 0.15)]
    max_foreign: f64,
    /// Extra passes per mode to replace disturbed ones.
    #[arg(long, default_value_t = 2)]
    retries: usize,
    /// Override detect.tile_max_side (both sides; 0 disables the detail view; default: the
    /// production value, 1920).
    #[arg(long)]
    tile_max_side: Option<u32>,
    /// Skip the agreement check against the tile plan (an untimed pass with yunet_s_640).
    #[arg(long)]
    no_tiles_check: bool,
    /// Only the modes whose name contains one of these (repeatable), e.g. `--mode "rust, 1 "`
    /// (names: "rust|python, 1 image/call|N images/call[ + decode thread]", and "likeness
    /// defaults|python plain fp32[ no-spin]|python plain int8, 1 image/call[ + decode
    /// thread]"). Default: the like-for-like modes (rust, python); `bench/speed.sh --plain`
    /// selects "likeness defaults" and "python plain".
    #[arg(long)]
    mode: Vec<String>,
    /// The plain Python peer (issue 16: what a user writes around onnxruntime and OpenCV).
    #[arg(long, default_value = "bench/peer/plain.py")]
    plain_peer: PathBuf,
    /// Detector of "python plain fp32" (default: yunet_s_dynamic.onnx in the models folder).
    #[arg(long)]
    plain_detector: Option<PathBuf>,
    /// Embedder of "python plain fp32" (default: mobilefacenet_128d_dynamic.onnx there).
    #[arg(long)]
    plain_embedder: Option<PathBuf>,
    /// 8-bit detector of "python plain int8" (the int8 modes run only when both files exist).
    #[arg(long)]
    int8_detector: Option<PathBuf>,
    /// 8-bit embedder of "python plain int8".
    #[arg(long)]
    int8_embedder: Option<PathBuf>,
    /// Make the plain peer's idle ONNX Runtime threads sleep (default: ORT's default, spinning,
    /// as a user leaves it; the modes "python plain fp32 no-spin" run the fp32 peer with sleeping
    /// threads beside it).
    #[arg(long)]
    plain_no_spinning: bool,
    /// Skip the untimed per-image profile of the Rust pipeline.
    #[arg(long)]
    no_profile: bool,
    /// Rust only (no Python peer).
    #[arg(long)]
    no_peer: bool,
    /// Also write the faces both sides found (first pass, one image per call) to this file.
    #[arg(long)]
    dump_faces: Option<PathBuf>,
    /// Results file (JSON).
    #[arg(long, default_value = "bench/results/speed.json")]
    out: PathBuf,
}

/// One entry of set.json (see bench/peer/make_images.py).
#[derive(Debug, Clone, Deserialize, Serialize)]
struct SetItem {
    name: String,
    path: PathBuf,
    width: u32,
    height: u32,
    megapixels: f64,
    bytes: u64,
    sha256: String,
    source: String,
}

/// A face as both sides report it, for the agreement check.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct FaceOut {
    bbox: [f32; 4],
    landmarks: [[f32; 2]; 5],
    score: f32,
    #[serde(default)]
    sharpness: f32,
    #[serde(default)]
    embedding: Vec<f32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct ImageOut {
    faces: Vec<FaceOut>,
}

/// One pass over the set.
#[derive(Debug, Clone, Default, Deserialize)]
struct PassResult {
    wall_s: f64,
    images: usize,
    faces: usize,
    stages_s: BTreeMap<String, f64>,
    /// Python only: the detect stage split into view preparation, inference and the rest.
    #[serde(default)]
    detail_s: BTreeMap<String, f64>,
    #[serde(default)]
    per_image: Option<Vec<ImageOut>>,
    #[serde(default)]
    error: Option<String>,
    /// CPU seconds the measured process used (all its threads).
    #[serde(default)]
    cpu_s: f64,
    /// Cores other processes kept busy on average during the pass (interference).
    #[serde(default)]
    foreign_cores: f64,
    /// Minor page faults of the measured process during the pass.
    #[serde(default)]
    minor_faults: u64,
}

/// CPU counters: machine busy and total ticks (/proc/stat), one process's ticks.
#[derive(Debug, Clone, Copy, Default)]
struct CpuSnap {
    busy: u64,
    total: u64,
    own: u64,
    minflt: u64,
}

fn cpu_snap(pid: u32) -> CpuSnap {
    let mut snap = CpuSnap::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat")
        && let Some(line) = stat.lines().next()
    {
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        snap.total = v.iter().take(8).sum();
        snap.busy = snap.total - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0);
    }
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some(rest) = stat.rsplit(')').next()
    {
        // Fields after the command: state is field 3; utime and stime are fields 14 and 15.
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| {
            f.get(i - 3)
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0)
        };
        snap.own = get(14) + get(15);
        snap.minflt = get(10);
    }
    snap
}

/// Runs one pass and fills in its CPU figures (`pid`: the process doing the work).
fn measured(pid: u32, f: impl FnOnce() -> Result<PassResult>) -> Result<PassResult> {
    const HZ: f64 = 100.0; // USER_HZ of /proc on Linux
    let a = cpu_snap(pid);
    let mut r = f()?;
    let b = cpu_snap(pid);
    let own = b.own.saturating_sub(a.own) as f64;
    let busy = b.busy.saturating_sub(a.busy) as f64;
    let total = b.total.saturating_sub(a.total) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    r.cpu_s = own / HZ;
    r.minor_faults = b.minflt.saturating_sub(a.minflt);
    if total > 0.0 {
        r.foreign_cores = ((busy - own) / total * cores).max(0.0);
    }
    Ok(r)
}

/// Summary of one mode's timed passes.
#[derive(Debug, Clone, Serialize)]
struct ModeSummary {
    name: String,
    implementation: String,
    images_per_call: usize,
    /// Whether a second thread decoded ahead.
    decode_thread: bool,
    passes: usize,
    images: usize,
    faces: usize,
    wall_s: f64,
    images_per_s: f64,
    faces_per_s: f64,
    /// Best (fastest) pass, as images/s.
    best_pass_images_per_s: f64,
    /// Median pass, as images/s.
    median_pass_images_per_s: f64,
    /// CPU milliseconds per image of the measuring process (all threads).
    cpu_ms_per_image: f64,
    /// Cores other processes kept busy, averaged over the passes (interference).
    foreign_cores: f64,
    /// Minor page faults per image (fresh memory being touched: allocation churn).
    minor_faults_per_image: f64,
    pass_wall_s: Vec<f64>,
    stage_ms_per_image: BTreeMap<String, f64>,
    /// Detect stage split (ms per image; `detect_views` is views per image), where known.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    detect_detail_per_image: BTreeMap<String, f64>,
}

fn summarise(
    name: &str,
    implementation: &str,
    batch: usize,
    prefetch: bool,
    passes: &[PassResult],
) -> ModeSummary {
    let wall: f64 = passes.iter().map(|p| p.wall_s).sum();
    let images: usize = passes.iter().map(|p| p.images).sum();
    let faces: usize = passes.iter().map(|p| p.faces).sum();
    let mut stages = BTreeMap::new();
    for p in passes {
        for (k, v) in &p.stages_s {
            *stages.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    let per_img = |s: f64| {
        if images > 0 {
            s * 1e3 / images as f64
        } else {
            0.0
        }
    };
    let staged: f64 = stages.values().sum();
    let mut stage_ms: BTreeMap<String, f64> =
        stages.into_iter().map(|(k, v)| (k, per_img(v))).collect();
    let mut detail = BTreeMap::new();
    for p in passes {
        for (k, v) in &p.detail_s {
            *detail.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    let detail = detail
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "detect_views" || k == "detect_input_mpix" {
                v / images.max(1) as f64
            } else {
                per_img(v)
            };
            (k, v)
        })
        .collect();
    stage_ms.insert("other".into(), per_img((wall - staged).max(0.0)));
    stage_ms.insert("total".into(), per_img(wall));
    let rate = |n: usize| if wall > 0.0 { n as f64 / wall } else { 0.0 };
    let best = passes
        .iter()
        .filter(|p| p.wall_s > 0.0)
        .map(|p| p.images as f64 / p.wall_s)
        .fold(0.0, f64::max);
    let mut rates: Vec<f64> = passes
        .iter()
        .filter(|p| p.wall_s > 0.0)
        .map(|p| p.images as f64 / p.wall_s)
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = match rates.len() {
        0 => 0.0,
        n if n % 2 == 1 => rates[n / 2],
        n => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
    };
    let cpu: f64 = passes.iter().map(|p| p.cpu_s).sum();
    let foreign = if passes.is_empty() {
        0.0
    } else {
        passes.iter().map(|p| p.foreign_cores).sum::<f64>() / passes.len() as f64
    };
    ModeSummary {
        name: name.into(),
        implementation: implementation.into(),
        images_per_call: batch,
        decode_thread: prefetch,
        passes: passes.len(),
        images,
        faces,
        wall_s: wall,
        images_per_s: rate(images),
        faces_per_s: rate(faces),
        best_pass_images_per_s: best,
        median_pass_images_per_s: median,
        cpu_ms_per_image: per_img(cpu),
        foreign_cores: foreign,
        minor_faults_per_image: passes.iter().map(|p| p.minor_faults).sum::<u64>() as f64
            / images.max(1) as f64,
        pass_wall_s: passes.iter().map(|p| p.wall_s).collect(),
        stage_ms_per_image: stage_ms,
        detect_detail_per_image: detail,
    }
}

/// Which pipeline a mode runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Imp {
    /// Likeness in process with the like-for-like configuration (`--tile-max-side`).
    Rust,
    /// bench/peer/pipeline.py: the port of Likeness's stages and detection plan.
    Python,
    /// Likeness in process with its defaults (only the models folder and threads set).
    Defaults,
    /// bench/peer/plain.py with the fp32 models: the Python script as a user writes it.
    PlainFp32,
    /// The same with idle ONNX Runtime threads sleeping instead of spinning (as Likeness's).
    PlainFp32Sleep,
    /// bench/peer/plain.py with the 8-bit models.
    PlainInt8,
}

impl Imp {
    /// Name in the mode names and the printed tables.
    fn label(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Defaults => "likeness defaults",
            Self::PlainFp32 => "python plain fp32",
            Self::PlainFp32Sleep => "python plain fp32 no-spin",
            Self::PlainInt8 => "python plain int8",
        }
    }

    /// Key in the results file.
    fn key(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Defaults => "likeness_defaults",
            Self::PlainFp32 => "python_plain_fp32",
            Self::PlainFp32Sleep => "python_plain_fp32_no_spin",
            Self::PlainInt8 => "python_plain_int8",
        }
    }

    /// Runs in a Python subprocess.
    fn is_peer(self) -> bool {
        !matches!(self, Self::Rust | Self::Defaults)
    }
}

/// One measured configuration.
#[derive(Debug, Clone, Copy)]
struct Mode {
    imp: Imp,
    batch: usize,
    prefetch: bool,
    /// Callers analysing images at the same time (Likeness's pipeline lanes; 1: one caller).
    lanes: usize,
}

impl Mode {
    /// Images per call and decode thread, e.g. "4 images/call + decode thread".
    fn setting(&self) -> String {
        format!(
            "{} image{}/call{}{}",
            self.batch,
            if self.batch == 1 { "" } else { "s" },
            if self.lanes > 1 {
                format!(", {} lanes", self.lanes)
            } else {
                String::new()
            },
            if self.prefetch {
                " + decode thread"
            } else {
                ""
            }
        )
    }

    fn name(&self) -> String {
        format!("{}, {}", self.imp.label(), self.setting())
    }
}

/// The passes a summary uses: the undisturbed ones if there are any, else all.
fn undisturbed(passes: &[PassResult], max_foreign: f64) -> Vec<PassResult> {
    let quiet: Vec<PassResult> = passes
        .iter()
        .filter(|p| p.foreign_cores <= max_foreign)
        .cloned()
        .collect();
    if quiet.is_empty() {
        passes.to_vec()
    } else {
        quiet
    }
}

/// One Rust pass: decode and analyse every image, `batch` images per `analyze` call; with
/// `prefetch` a second thread decodes ahead (as the matcher's decode thread does), and the
/// decode stage is the time spent waiting for it.
fn rust_pass(
    p: &Pipeline,
    blobs: &[Vec<u8>],
    batch: usize,
    prefetch: bool,
    keep: bool,
) -> Result<PassResult> {
    let batch = batch.max(1);
    let mut t = StageTimings::default();
    let mut faces = 0;
    let mut per_image = Vec::new();
    let start = Instant::now();
    let mut analyse = |imgs: Vec<RgbImage>, t: &mut StageTimings| -> Result<()> {
        let refs: Vec<_> = imgs.iter().collect();
        for r in p.analyze(&refs, None, t) {
            let list = r.context("analyze")?;
            faces += list.len();
            if keep {
                per_image.push(image_out(list));
            }
        }
        Ok(())
    };
    if prefetch {
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = mpsc::sync_channel(2 * batch);
            s.spawn(move || {
                for b in blobs {
                    if tx.send(p.decode(b)).is_err() {
                        break;
                    }
                }
            });
            for chunk in blobs.chunks(batch) {
                let t0 = Instant::now();
                let imgs = (0..chunk.len())
                    .map(|_| rx.recv().context("decode thread")?.context("decode"))
                    .collect::<Result<Vec<_>>>()?;
                t.decode += t0.elapsed();
                analyse(imgs, &mut t)?;
            }
            Ok(())
        })?;
    } else {
        for chunk in blobs.chunks(batch) {
            let t0 = Instant::now();
            let imgs = chunk
                .iter()
                .map(|b| p.decode(b))
                .collect::<std::result::Result<Vec<_>, _>>()
                .context("decode")?;
            t.decode += t0.elapsed();
            analyse(imgs, &mut t)?;
        }
    }
    let per_image = keep.then_some(per_image);
    Ok(rust_pass_result(
        start,
        blobs.len(),
        faces,
        &t,
        1,
        per_image,
    ))
}

/// The faces of one image as the agreement checks compare them.
fn image_out(faces: Vec<Face>) -> ImageOut {
    ImageOut {
        faces: faces
            .into_iter()
            .map(|f| FaceOut {
                bbox: f.detection.bbox,
                landmarks: f.detection.landmarks,
                score: f.detection.score,
                sharpness: f.quality.sharpness,
                embedding: f.embedding,
            })
            .collect(),
    }
}

/// A Rust pass's result from its timings, the stage times divided by the `lanes` that ran in
/// parallel (so that they add up to about the wall time); the detector details are summed.
fn rust_pass_result(
    start: Instant,
    images: usize,
    faces: usize,
    t: &StageTimings,
    lanes: usize,
    per_image: Option<Vec<ImageOut>>,
) -> PassResult {
    let wall_s = start.elapsed().as_secs_f64();
    let (prep, infer) = (t.detect_prep.as_secs_f64(), t.detect_infer.as_secs_f64());
    PassResult {
        wall_s,
        images,
        faces,
        stages_s: [
            ("decode", t.decode),
            ("detect", t.detect),
            ("align", t.align),
            ("embed", t.embed),
        ]
        .into_iter()
        .map(|(k, d)| (k.to_owned(), d.as_secs_f64() / lanes.max(1) as f64))
        .collect(),
        detail_s: [
            ("detect_views", t.detect_views as f64),
            ("detect_input_mpix", t.detect_input_pixels as f64 / 1e6),
            ("detect_prep", prep),
            ("detect_infer", infer),
            (
                "detect_post",
                (t.detect.as_secs_f64() - prep - infer).max(0.0),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        per_image,
        ..Default::default()
    }
}

/// One Rust pass with `lanes` callers on their own threads, one image per call, as the
/// matcher's inference threads (and `likeness-matcher analyze`) run: each caller decodes its
/// next image itself, or with `prefetch` takes it from one decode thread (the matcher's
/// batcher).
fn rust_lanes_pass(
    p: &Pipeline,
    blobs: &[Vec<u8>],
    lanes: usize,
    prefetch: bool,
    keep: bool,
) -> Result<PassResult> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ImageOut>>> = Mutex::new(vec![None; blobs.len()]);
    let totals = Mutex::new((StageTimings::default(), 0usize));
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<RgbImage>)>(2 * lanes);
    let rx = Mutex::new(rx);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        if prefetch {
            s.spawn(move || {
                for (i, b) in blobs.iter().enumerate() {
                    if tx.send((i, p.decode(b).context("decode"))).is_err() {
                        break;
                    }
                }
            });
        } else {
            drop(tx);
        }
        let workers: Vec<_> = (0..lanes)
            .map(|_| {
                let (next, results, totals, rx) = (&next, &results, &totals, &rx);
                s.spawn(move || -> Result<()> {
                    let mut t = StageTimings::default();
                    let mut faces = 0;
                    loop {
                        let t0 = Instant::now();
                        let (i, img) = if prefetch {
                            let got = rx.lock().map_err(|_| anyhow!("poisoned"))?.recv();
                            match got {
                                Ok((i, img)) => (i, img?),
                                Err(_) => break,
                            }
                        } else {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(b) = blobs.get(i) else { break };
                            (i, p.decode(b).context("decode")?)
                        };
                        t.decode += t0.elapsed();
                        let list = p
                            .analyze(&[&img], None, &mut t)
                            .pop()
                            .ok_or_else(|| anyhow!("no result"))?
                            .context("analyze")?;
                        faces += list.len();
                        if keep {
                            results.lock().map_err(|_| anyhow!("poisoned"))?[i] =
                                Some(image_out(list));
                        }
                    }
                    let mut tot = totals.lock().map_err(|_| anyhow!("poisoned"))?;
                    tot.0.add(&t);
                    tot.1 += faces;
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow!("a lane panicked"))??;
        }
        Ok(())
    })?;
    let (t, faces) = totals.into_inner().map_err(|_| anyhow!("poisoned"))?;
    let per_image = keep
        .then(|| {
            results
                .into_inner()
                .map(|v| v.into_iter().map(Option::unwrap_or_default).collect())
        })
        .transpose()
        .map_err(|_| anyhow!("poisoned"))?;
    Ok(rust_pass_result(
        start,
        blobs.len(),
        faces,
        &t,
        lanes,
        per_image,
    ))
}

/// Where the Rust time goes, per image: decoding, view preparation (resizing, filling the
/// detector inputs: single-threaded) and the rest of detection (inference, output decoding,
/// NMS).
#[derive(Debug, Clone, Serialize)]
struct ImageProfile {
    name: String,
    megapixels: f64,
    views: u64,
    input_mpix: f64,
    faces: usize,
    decode_ms: f64,
    prep_ms: f64,
    detect_ms: f64,
}

fn rust_profile(p: &Pipeline, items: &[SetItem], blobs: &[Vec<u8>]) -> Result<Vec<ImageProfile>> {
    let mut out = Vec::with_capacity(items.len());
    for (item, bytes) in items.iter().zip(blobs) {
        let t0 = Instant::now();
        let img = p.decode(bytes).context("decode")?;
        let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut t = StageTimings::default();
        let faces = p
            .analyze(&[&img], None, &mut t)
            .pop()
            .transpose()
            .context("analyze")?
            .map_or(0, |f| f.len());
        out.push(ImageProfile {
            name: item.name.clone(),
            megapixels: item.megapixels,
            views: t.detect_views,
            input_mpix: t.detect_input_pixels as f64 / 1e6,
            faces,
            decode_ms,
            prep_ms: t.detect_prep.as_secs_f64() * 1e3,
            detect_ms: t.detect.as_secs_f64() * 1e3,
        });
    }
    Ok(out)
}

/// Per size class: images, views/image, decode, view preparation, detection without the
/// preparation (ms per image).
fn print_profile(prof: &[ImageProfile]) -> serde_json::Value {
    let classes = [
        ("< 1 MP", 0.0, 1.0),
        ("1-3 MP", 1.0, 3.0),
        ("3-8 MP", 3.0, 8.0),
        (">= 8 MP", 8.0, f64::INFINITY),
        ("all", 0.0, f64::INFINITY),
    ];
    println!(
        "\nRust profile (one pass, one image at a time; ms per image)\n{:<9} {:>6} {:>6} {:>6} {:>8} {:>8} {:>12} {:>8}",
        "size", "images", "views", "in MP", "decode", "prep", "infer+post", "total"
    );
    let mut rows = Vec::new();
    for (name, lo, hi) in classes {
        let sel: Vec<&ImageProfile> = prof
            .iter()
            .filter(|p| p.megapixels >= lo && p.megapixels < hi)
            .collect();
        if sel.is_empty() {
            continue;
        }
        let n = sel.len() as f64;
        let avg = |f: &dyn Fn(&ImageProfile) -> f64| sel.iter().map(|p| f(p)).sum::<f64>() / n;
        let views = avg(&|p| p.views as f64);
        let mpix = avg(&|p| p.input_mpix);
        let decode = avg(&|p| p.decode_ms);
        let prep = avg(&|p| p.prep_ms);
        let infer = avg(&|p| (p.detect_ms - p.prep_ms).max(0.0));
        println!(
            "{:<9} {:>6} {:>6.1} {:>6.2} {:>8.1} {:>8.1} {:>12.1} {:>8.1}",
            name,
            sel.len(),
            views,
            mpix,
            decode,
            prep,
            infer,
            decode + prep + infer
        );
        rows.push(serde_json::json!({
            "size": name, "images": sel.len(), "views_per_image": views, "input_mpix_per_image": mpix,
            "decode_ms": decode, "prep_ms": prep, "infer_and_post_ms": infer,
        }));
    }
    serde_json::Value::Array(rows)
}

/// The Python peer in `--serve` mode.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    versions: serde_json::Value,
}

impl Peer {
    /// Starts `script --serve --set <set> <extra>` with the bench's Python.
    fn start(args: &Args, script: &Path, extra: &[std::ffi::OsString]) -> Result<Self> {
        let mut child = Command::new(&args.python)
            .arg(script)
            .arg("--serve")
            .arg("--set")
            .arg(&args.set)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start the Python peer {} with {} (run bench/speed.sh, or pass --python)",
                    script.display(),
                    args.python.display()
                )
            })?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no peer stdin"))?;
        let stdout = BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| anyhow!("no peer stdout"))?,
        );
        let mut peer = Self {
            child,
            stdin,
            stdout,
            versions: serde_json::Value::Null,
        };
        let ready: serde_json::Value = peer.read()?;
        if ready.get("ready") != Some(&serde_json::Value::Bool(true)) {
            bail!("unexpected first line from the peer: {ready}");
        }
        peer.versions = ready
            .get("versions")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        Ok(peer)
    }

    fn read<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the Python peer exited (see its messages above)");
        }
        serde_json::from_str(&line).with_context(|| format!("bad line from the peer: {line}"))
    }

    fn pass(&mut self, batch: usize, prefetch: bool, detections: bool) -> Result<PassResult> {
        let cmd = serde_json::json!({
            "cmd": "pass", "batch": batch, "prefetch": prefetch, "detections": detections,
        });
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        let r: PassResult = self.read()?;
        if let Some(e) = &r.error {
            bail!("Python peer: {e}");
        }
        Ok(r)
    }

    fn quit(mut self) -> Result<()> {
        writeln!(self.stdin, "{}", serde_json::json!({"cmd": "quit"}))?;
        self.stdin.flush()?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the Python peer exited with {status}");
        }
        Ok(())
    }
}

/// How far two sets of per-image faces agree.
#[derive(Debug, Default, Serialize)]
struct Agreement {
    images: usize,
    images_same_count: usize,
    faces_a: usize,
    faces_b: usize,
    /// Images whose counts differ: (name, count a, count b).
    count_mismatches: Vec<(String, usize, usize)>,
    matched_faces: usize,
    /// Over faces matched by IoU (greedy, best first, IoU >= 0.5).
    max_box_diff_px: f32,
    mean_box_diff_px: f32,
    max_landmark_diff_px: f32,
    min_iou: f32,
    max_score_diff: f32,
    /// Largest |a - b| / max(a, b) of the crop sharpness.
    max_sharpness_rel_diff: f32,
    /// Cosine similarity of the two embeddings of the same face.
    min_embedding_cosine: f32,
    mean_embedding_cosine: f32,
}

fn agreement(items: &[SetItem], a: &[ImageOut], b: &[ImageOut]) -> Agreement {
    let mut ag = Agreement {
        images: items.len().min(a.len()).min(b.len()),
        min_iou: 1.0,
        min_embedding_cosine: 1.0,
        ..Default::default()
    };
    let (mut box_sum, mut cos_sum, mut box_n) = (0f64, 0f64, 0usize);
    for ((item, ia), ib) in items.iter().zip(a).zip(b) {
        ag.faces_a += ia.faces.len();
        ag.faces_b += ib.faces.len();
        if ia.faces.len() == ib.faces.len() {
            ag.images_same_count += 1;
        } else {
            ag.count_mismatches
                .push((item.name.clone(), ia.faces.len(), ib.faces.len()));
        }
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (i, fa) in ia.faces.iter().enumerate() {
            for (j, fb) in ib.faces.iter().enumerate() {
                let v = iou(&fa.bbox, &fb.bbox);
                if v >= 0.5 {
                    pairs.push((v, i, j));
                }
            }
        }
        pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
        let mut used_a = vec![false; ia.faces.len()];
        let mut used_b = vec![false; ib.faces.len()];
        for (v, i, j) in pairs {
            if used_a[i] || used_b[j] {
                continue;
            }
            used_a[i] = true;
            used_b[j] = true;
            let (fa, fb) = (&ia.faces[i], &ib.faces[j]);
            ag.matched_faces += 1;
            ag.min_iou = ag.min_iou.min(v);
            for k in 0..4 {
                let d = (fa.bbox[k] - fb.bbox[k]).abs();
                ag.max_box_diff_px = ag.max_box_diff_px.max(d);
                box_sum += f64::from(d);
                box_n += 1;
            }
            for (la, lb) in fa.landmarks.iter().zip(&fb.landmarks) {
                let d = (la[0] - lb[0]).hypot(la[1] - lb[1]);
                ag.max_landmark_diff_px = ag.max_landmark_diff_px.max(d);
            }
            ag.max_score_diff = ag.max_score_diff.max((fa.score - fb.score).abs());
            // The plain peer reports no sharpness (0).
            if fa.sharpness > 0.0 && fb.sharpness > 0.0 {
                let sd =
                    (fa.sharpness - fb.sharpness).abs() / fa.sharpness.max(fb.sharpness).max(1.0);
                ag.max_sharpness_rel_diff = ag.max_sharpness_rel_diff.max(sd);
            }
            if !fa.embedding.is_empty() && fa.embedding.len() == fb.embedding.len() {
                let c: f32 = fa
                    .embedding
                    .iter()
                    .zip(&fb.embedding)
                    .map(|(x, y)| x * y)
                    .sum();
                ag.min_embedding_cosine = ag.min_embedding_cosine.min(c);
                cos_sum += f64::from(c);
            }
        }
    }
    if box_n > 0 {
        ag.mean_box_diff_px = (box_sum / box_n as f64) as f32;
    }
    if ag.matched_faces > 0 {
        ag.mean_embedding_cosine = (cos_sum / ag.matched_faces as f64) as f32;
    }
    ag
}

fn ensure_set(args: &Args) -> Result<Vec<SetItem>> {
    if !args.set.is_file() {
        let dir = args
            .set
            .parent()
            .ok_or_else(|| anyhow!("--set has no folder"))?;
        let gen_script = args
            .peer
            .parent()
            .map(|p| p.join("make_images.py"))
            .ok_or_else(|| anyhow!("--peer has no folder"))?;
        eprintln!("building the image set with {}", gen_script.display());
        // .cache/bench-photos/ is the set of small photos (make_images.py --small).
        let small = dir.file_name().is_some_and(|n| n == "bench-photos");
        let status = Command::new(&args.python)
            .arg(&gen_script)
            .args(small.then_some("--small"))
            .arg("--data")
            .arg(&args.data)
            .arg("--out")
            .arg(dir)
            .status()
            .with_context(|| format!("cannot run {}", args.python.display()))?;
        if !status.success() {
            bail!("{} failed with {status}", gen_script.display());
        }
    }
    let text = std::fs::read_to_string(&args.set)
        .with_context(|| format!("cannot read {}", args.set.display()))?;
    let items: Vec<SetItem> = serde_json::from_str(&text)
        .with_context(|| format!("cannot parse {}", args.set.display()))?;
    if items.is_empty() {
        bail!("{} lists no images", args.set.display());
    }
    Ok(items)
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default()
}

fn print_table(modes: &[ModeSummary]) {
    println!(
        "{:<40} {:>6} {:>8} {:>8} {:>8} {:>8} | {:>7} {:>7} {:>6} {:>6} {:>6} {:>7} | {:>7} {:>7} {:>7}",
        "mode",
        "passes",
        "img/s",
        "faces/s",
        "median",
        "best",
        "decode",
        "detect",
        "align",
        "embed",
        "other",
        "total",
        "CPU ms",
        "faults",
        "foreign"
    );
    for m in modes {
        let s = |k: &str| m.stage_ms_per_image.get(k).copied().unwrap_or(0.0);
        println!(
            "{:<40} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} | {:>7.1} {:>7.1} {:>6.1} {:>6.1} {:>6.1} {:>7.1} | {:>7.1} {:>7.0} {:>7.2}",
            m.name,
            m.passes,
            m.images_per_s,
            m.faces_per_s,
            m.median_pass_images_per_s,
            m.best_pass_images_per_s,
            s("decode"),
            s("detect"),
            s("align"),
            s("embed"),
            s("other"),
            s("total"),
            m.cpu_ms_per_image,
            m.minor_faults_per_image,
            m.foreign_cores,
        );
    }
    println!(
        "(img/s and faces/s over the undisturbed timed passes (all if none); median/best: per pass; stages in ms per image; \
         CPU ms: CPU time per image of the measured process; faults: its minor page faults per \
         image; foreign: cores other processes used meanwhile)"
    );
}

/// The arguments of each Python peer after `--serve --set <set>`.
fn peer_args(args: &Args, imp: Imp, models_dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec!["--threads".into(), args.threads.to_string().into()];
    match imp {
        Imp::Python => {
            v.extend([
                "--models-dir".into(),
                models_dir.into(),
                "--interp".into(),
                args.peer_interp.clone().into(),
                "--opt-level".into(),
                args.peer_opt_level.clone().into(),
                "--tile-max-side".into(),
                args.tile_max_side
                    .unwrap_or(PipelineConfig::default().detect.tile_max_side)
                    .to_string()
                    .into(),
            ]);
            if args.peer_spinning {
                v.push("--spinning".into());
            }
        }
        Imp::PlainFp32 | Imp::PlainFp32Sleep | Imp::PlainInt8 => {
            let (det, emb) = plain_models(args, imp, models_dir);
            v.extend([
                "--detector".into(),
                det.into(),
                "--embedder".into(),
                emb.into(),
            ]);
            if args.plain_no_spinning || imp == Imp::PlainFp32Sleep {
                v.push("--no-spinning".into());
            }
        }
        Imp::Rust | Imp::Defaults => {}
    }
    v
}

/// The model files of a plain peer.
fn plain_models(args: &Args, imp: Imp, models_dir: &Path) -> (PathBuf, PathBuf) {
    if imp == Imp::PlainInt8 {
        (
            args.int8_detector.clone().unwrap_or_default(),
            args.int8_embedder.clone().unwrap_or_default(),
        )
    } else {
        (
            args.plain_detector
                .clone()
                .unwrap_or_else(|| models_dir.join("yunet_s_dynamic.onnx")),
            args.plain_embedder
                .clone()
                .unwrap_or_else(|| models_dir.join("mobilefacenet_128d_dynamic.onnx")),
        )
    }
}

/// The in-process pipelines.
struct Pipes {
    /// Like-for-like configuration (`Imp::Rust`).
    rust: Option<Pipeline>,
    /// Likeness's defaults (`Imp::Defaults`).
    defaults: Option<Pipeline>,
}

/// One pass of a mode, with its CPU figures.
fn run_pass(
    m: &Mode,
    pipes: &Pipes,
    peers: &mut BTreeMap<Imp, Peer>,
    blobs: &[Vec<u8>],
    keep: bool,
) -> Result<PassResult> {
    if m.imp.is_peer() {
        let p = peers
            .get_mut(&m.imp)
            .ok_or_else(|| anyhow!("no peer for {}", m.imp.label()))?;
        let pid = p.child.id();
        measured(pid, || p.pass(m.batch, m.prefetch, keep))
    } else {
        let pipe = match m.imp {
            Imp::Rust => pipes.rust.as_ref(),
            _ => pipes.defaults.as_ref(),
        }
        .ok_or_else(|| anyhow!("no pipeline for {}", m.imp.label()))?;
        measured(std::process::id(), || {
            if m.lanes > 1 {
                rust_lanes_pass(pipe, blobs, m.lanes, m.prefetch, keep)
            } else {
                rust_pass(pipe, blobs, m.batch, m.prefetch, keep)
            }
        })
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let models_dir = args.models_dir.clone().unwrap_or_else(default_models_dir);
    let items = ensure_set(&args)?;
    let blobs = items
        .iter()
        .map(|it| std::fs::read(&it.path).with_context(|| format!("read {}", it.path.display())))
        .collect::<Result<Vec<_>>>()?;
    let mp: Vec<f64> = items.iter().map(|i| i.megapixels).collect();
    eprintln!(
        "{}: {} images, {:.2}-{:.2} MP ({:.1} MP, {:.1} MiB encoded); threads {}, {} warm-up + {} timed passes per mode",
        args.set.display(),
        items.len(),
        mp.iter().copied().fold(f64::INFINITY, f64::min),
        mp.iter().copied().fold(0.0, f64::max),
        mp.iter().sum::<f64>(),
        blobs.iter().map(Vec::len).sum::<usize>() as f64 / (1 << 20) as f64,
        args.threads,
        args.warmup,
        args.reps
    );

    let batch = args.batch.max(1);
    // Likeness as it ships: nothing set but where the models are and the threads.
    let defaults_cfg = PipelineConfig {
        models_dir: models_dir.clone(),
        threads: args.threads,
        ..PipelineConfig::default()
    };
    let defaults_lanes = defaults_cfg.lane_plan().0;
    let int8_ok = match (&args.int8_detector, &args.int8_embedder) {
        (Some(d), Some(e)) => d.is_file() && e.is_file(),
        _ => false,
    };
    let mut modes: Vec<Mode> = Vec::new();
    for imp in [Imp::Rust, Imp::Python] {
        for (b, prefetch) in [(1, false), (batch, false), (1, true), (batch, true)] {
            modes.push(Mode {
                imp,
                batch: b,
                prefetch,
                lanes: 1,
            });
        }
    }
    for imp in [
        Imp::Defaults,
        Imp::PlainFp32,
        Imp::PlainFp32Sleep,
        Imp::PlainInt8,
    ] {
        // Likeness's defaults also as the matcher runs them: one caller per pipeline lane.
        let lanes = if imp == Imp::Defaults {
            vec![1, defaults_lanes]
        } else {
            vec![1]
        };
        for lanes in lanes
            .into_iter()
            .filter(|&l| l >= 1)
            .collect::<std::collections::BTreeSet<_>>()
        {
            for prefetch in [false, true] {
                modes.push(Mode {
                    imp,
                    batch: 1,
                    prefetch,
                    lanes,
                });
            }
        }
    }
    let modes: Vec<Mode> = modes
        .into_iter()
        .filter(|m| !(m.imp.is_peer() && args.no_peer))
        // With --plain-no-spinning "python plain fp32" already sleeps.
        .filter(|m| !(m.imp == Imp::PlainFp32Sleep && args.plain_no_spinning))
        // Without --mode the like-for-like modes (rust, python); the others by name.
        .filter(|m| {
            if args.mode.is_empty() {
                matches!(m.imp, Imp::Rust | Imp::Python)
            } else {
                args.mode.iter().any(|k| m.name().contains(k))
            }
        })
        .filter(|m| {
            if m.imp == Imp::PlainInt8 && !int8_ok {
                eprintln!(
                    "{}: skipped, the 8-bit models are not there (--int8-detector {:?}, --int8-embedder {:?})",
                    m.name(),
                    args.int8_detector,
                    args.int8_embedder
                );
                return false;
            }
            true
        })
        .collect();
    if modes.is_empty() {
        bail!("no mode selected (see --mode)");
    }
    let uses = |imp: Imp| modes.iter().any(|m| m.imp == imp);

    // Like for like: the defaults with the overrides of the command line, one lane on all
    // the threads (as the Python port runs).
    let mut cfg = PipelineConfig {
        models_dir: models_dir.clone(),
        threads: args.threads,
        lanes: 1,
        ..PipelineConfig::default()
    };
    if let Some(t) = args.tile_max_side {
        cfg.detect.tile_max_side = t;
    }
    let pipes = Pipes {
        rust: uses(Imp::Rust)
            .then(|| Pipeline::load(cfg.clone()).context("loading the Rust pipeline"))
            .transpose()?,
        defaults: uses(Imp::Defaults)
            .then(|| Pipeline::load(defaults_cfg.clone()).context("loading the Likeness defaults"))
            .transpose()?,
    };
    let mut peers: BTreeMap<Imp, Peer> = BTreeMap::new();
    for imp in [
        Imp::Python,
        Imp::PlainFp32,
        Imp::PlainFp32Sleep,
        Imp::PlainInt8,
    ] {
        if uses(imp) {
            let script = if imp == Imp::Python {
                &args.peer
            } else {
                &args.plain_peer
            };
            peers.insert(
                imp,
                Peer::start(&args, script, &peer_args(&args, imp, &models_dir))?,
            );
        }
    }

    let load_before = load_avg();
    // Warm-up; the first pass of each implementation at one image per call also gives its
    // faces for the agreement checks (and Rust's batched pass for batched vs one by one).
    let mut faces_of: BTreeMap<Imp, Vec<ImageOut>> = BTreeMap::new();
    let mut rust_batched_faces = None;
    for w in 0..args.warmup.max(1) {
        let first = w == 0;
        for m in &modes {
            let keep_single = first && m.batch == 1 && !faces_of.contains_key(&m.imp);
            let keep_batched = first && m.imp == Imp::Rust && m.batch > 1 && !m.prefetch;
            let r = run_pass(m, &pipes, &mut peers, &blobs, keep_single || keep_batched)?;
            if keep_single && let Some(f) = r.per_image {
                faces_of.insert(m.imp, f);
            } else if keep_batched {
                rust_batched_faces = r.per_image;
            }
        }
        if w < args.warmup {
            eprintln!("warm-up pass {} done", w + 1);
        }
    }
    // The in-process faces the checks below compare with: like for like, else the defaults.
    let main_imp = if faces_of.contains_key(&Imp::Rust) {
        Imp::Rust
    } else {
        Imp::Defaults
    };
    // The faces of the tile plan (detect::plan_tiles with the fixed-input YuNet-s export, as
    // the pipeline ran before the detail view): one untimed pass, for the agreement check.
    let tile_faces = if args.no_tiles_check || !faces_of.contains_key(&main_imp) {
        None
    } else {
        let tiles = Pipeline::load(PipelineConfig {
            detector: "yunet_s_640".into(),
            ..cfg.clone()
        })
        .context("loading the tile-plan pipeline")?;
        Some(rust_pass(&tiles, &blobs, 1, false, true)?.per_image)
    }
    .flatten();

    let mut runs: Vec<Vec<PassResult>> = vec![Vec::new(); modes.len()];
    let mut retries = vec![args.retries; modes.len()];
    for rep in 0..args.reps {
        // Rotate the order so no mode always follows the same one.
        for k in 0..modes.len() {
            let mi = (k + rep) % modes.len();
            let m = modes[mi];
            loop {
                let r = run_pass(&m, &pipes, &mut peers, &blobs, false)?;
                let disturbed = r.foreign_cores > args.max_foreign;
                eprintln!(
                    "pass {} {}: {:.2} s ({:.2} images/s, {:.2} CPU s, other processes {:.2} cores){}",
                    rep + 1,
                    m.name(),
                    r.wall_s,
                    r.images as f64 / r.wall_s.max(1e-9),
                    r.cpu_s,
                    r.foreign_cores,
                    if disturbed { " disturbed" } else { "" }
                );
                runs[mi].push(r);
                if !disturbed || retries[mi] == 0 {
                    break;
                }
                retries[mi] -= 1;
            }
        }
    }
    let profile = match (
        args.no_profile,
        pipes.rust.as_ref().or(pipes.defaults.as_ref()),
    ) {
        (false, Some(p)) => Some(rust_profile(p, &items, &blobs)?),
        _ => None,
    };
    let load_after = load_avg();
    let mut versions = serde_json::Map::new();
    for (imp, p) in std::mem::take(&mut peers) {
        versions.insert(imp.key().into(), p.versions.clone());
        p.quit()?;
    }

    let all_passes: Vec<serde_json::Value> = runs
        .iter()
        .zip(&modes)
        .flat_map(|(passes, m)| {
            passes.iter().map(move |p| {
                serde_json::json!({
                    "mode": m.name(),
                    "wall_s": p.wall_s,
                    "images_per_s": p.images as f64 / p.wall_s.max(1e-9),
                    "cpu_s": p.cpu_s,
                    "foreign_cores": p.foreign_cores,
                })
            })
        })
        .collect();
    let summaries: Vec<ModeSummary> = runs
        .iter()
        .zip(&modes)
        .map(|(r, m)| {
            summarise(
                &m.name(),
                m.imp.label(),
                m.batch,
                m.prefetch,
                &undisturbed(r, args.max_foreign),
            )
        })
        .collect();

    println!();
    print_table(&summaries);
    for m in &summaries {
        let d = &m.detect_detail_per_image;
        let mut parts = Vec::new();
        for (key, label, unit) in [
            ("detect_views", "views", ""),
            ("detect_input_mpix", "input", " MP"),
            ("detect_prep", "prep", " ms"),
            ("detect_infer", "inference", " ms"),
            ("detect_post", "post", " ms"),
        ] {
            if let Some(v) = d.get(key) {
                parts.push(format!("{label} {v:.2}{unit}"));
            }
        }
        if !parts.is_empty() {
            println!("  {:<34} detect per image: {}", m.name, parts.join(", "));
        }
    }
    let profile_table = profile.as_deref().map(print_profile);
    let ratio = |a: &ModeSummary, b: &ModeSummary| {
        serde_json::json!({
            "likeness_mode": a.name,
            "python_mode": b.name,
            "rust_images_per_s": a.images_per_s,
            "python_images_per_s": b.images_per_s,
            "overall": a.images_per_s / b.images_per_s.max(1e-9),
            "median_pass": a.median_pass_images_per_s / b.median_pass_images_per_s.max(1e-9),
            "best_pass": a.best_pass_images_per_s / b.best_pass_images_per_s.max(1e-9),
            "cpu_per_image": b.cpu_ms_per_image / a.cpu_ms_per_image.max(1e-9),
        })
    };
    let print_ratio = |name: &str, r: &serde_json::Value| {
        let g = |k: &str| r.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        println!(
            "  {name:<36} {:.2}x overall, {:.2}x median pass, {:.2}x best pass ({:.2}x less CPU per image)",
            g("overall"),
            g("median_pass"),
            g("best_pass"),
            g("cpu_per_image")
        );
    };
    // Like for like: the Python mode with the same images per call and decode thread.
    let mut speedup = BTreeMap::new();
    let mut header = false;
    for (k, m) in modes.iter().enumerate().filter(|(_, m)| m.imp == Imp::Rust) {
        if let Some(j) = modes
            .iter()
            .position(|o| o.imp == Imp::Python && o.batch == m.batch && o.prefetch == m.prefetch)
        {
            if !header {
                println!("\nRust / Python images/s, like for like (target 1.5x):");
                header = true;
            }
            let r = ratio(&summaries[k], &summaries[j]);
            print_ratio(&m.setting(), &r);
            speedup.insert(m.setting(), r);
        }
    }
    // Issue 16: Likeness's defaults against the plain peer, fp32 (target 1.5x) and 8-bit
    // (1.15x): same decode threading, then the fastest mode of each side.
    let mut plain_speedup = serde_json::Map::new();
    for (peer, target) in [
        (Imp::PlainFp32, 1.5),
        (Imp::PlainFp32Sleep, 1.5),
        (Imp::PlainInt8, 1.15),
    ] {
        let idx = |imp: Imp| -> Vec<usize> {
            (0..modes.len()).filter(|&i| modes[i].imp == imp).collect()
        };
        let (ours, theirs) = (idx(Imp::Defaults), idx(peer));
        if ours.is_empty() || theirs.is_empty() {
            continue;
        }
        println!(
            "\n{} / {} images/s (target {target}x):",
            Imp::Defaults.label(),
            peer.label()
        );
        let mut rows = serde_json::Map::new();
        for &a in &ours {
            if let Some(&b) = theirs
                .iter()
                .find(|&&b| modes[b].prefetch == modes[a].prefetch)
            {
                let r = ratio(&summaries[a], &summaries[b]);
                print_ratio(&modes[a].setting(), &r);
                rows.insert(modes[a].setting(), r);
            }
        }
        let best = |v: &[usize]| {
            v.iter().copied().max_by(|&x, &y| {
                summaries[x]
                    .images_per_s
                    .total_cmp(&summaries[y].images_per_s)
            })
        };
        if let (Some(a), Some(b)) = (best(&ours), best(&theirs)) {
            let r = ratio(&summaries[a], &summaries[b]);
            let label = format!(
                "fastest / fastest ({} vs {})",
                modes[a].setting(),
                modes[b].setting()
            );
            print_ratio(&label, &r);
            rows.insert("fastest_vs_fastest".into(), r);
        }
        plain_speedup.insert(peer.key().into(), serde_json::Value::Object(rows));
    }

    // Faces found, and how far the sides agree.
    println!("\nFaces found (first pass, one image per call):");
    for (imp, f) in &faces_of {
        let counts: Vec<usize> = f.iter().map(|i| i.faces.len()).collect();
        println!(
            "  {:<20} {} faces on {} images ({} images without a face)",
            imp.label(),
            counts.iter().sum::<usize>(),
            counts.len(),
            counts.iter().filter(|&&c| c == 0).count()
        );
    }
    let empty = Vec::new();
    let rf = faces_of.get(&main_imp).unwrap_or(&empty);
    let mut agreements = serde_json::Map::new();
    let mut checks: Vec<(String, String, Agreement)> = Vec::new();
    for (a, b) in [
        (Imp::Rust, Imp::Python),
        (Imp::Defaults, Imp::PlainFp32),
        (Imp::Defaults, Imp::PlainInt8),
        (Imp::PlainFp32, Imp::PlainInt8),
        (Imp::Rust, Imp::Defaults),
    ] {
        if let (Some(fa), Some(fb)) = (faces_of.get(&a), faces_of.get(&b)) {
            checks.push((
                format!("{} vs {}", a.label(), b.label()),
                format!("agreement_{}_vs_{}", a.key(), b.key()),
                agreement(&items, fa, fb),
            ));
        }
    }
    if let Some(tf) = &tile_faces {
        checks.push((
            format!("{} vs the tile plan (yunet_s_640)", main_imp.label()),
            "agreement_rust_vs_tile_plan".into(),
            agreement(&items, rf, tf),
        ));
    }
    for (what, _, a) in &checks {
        println!(
            "Agreement {what}: {}/{} images with equal face counts, {} differ ({} vs {} faces){}; \
             matched {} faces: box diff max {:.2} px (mean {:.2}), landmarks max {:.2} px, \
             min IoU {:.3}, sharpness rel. diff max {:.3}, embedding cosine min {:.4} (mean {:.4})",
            a.images_same_count,
            a.images,
            a.images - a.images_same_count,
            a.faces_a,
            a.faces_b,
            if a.count_mismatches.is_empty() {
                String::new()
            } else {
                format!(", differing (name, a, b): {:?}", a.count_mismatches)
            },
            a.matched_faces,
            a.max_box_diff_px,
            a.mean_box_diff_px,
            a.max_landmark_diff_px,
            a.min_iou,
            a.max_sharpness_rel_diff,
            a.min_embedding_cosine,
            a.mean_embedding_cosine
        );
    }
    for (_, key, a) in checks {
        agreements.insert(key, serde_json::to_value(a)?);
    }
    if let Some(bf) = &rust_batched_faces {
        let a = agreement(&items, faces_of.get(&Imp::Rust).unwrap_or(&empty), bf);
        println!(
            "Agreement Rust batched vs one by one: {}/{} images with equal counts, box diff max {:.3} px",
            a.images_same_count, a.images, a.max_box_diff_px
        );
        agreements.insert(
            "agreement_rust_batched_vs_single".into(),
            serde_json::to_value(a)?,
        );
    }
    let per_image_faces: Vec<serde_json::Value> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let mut row = serde_json::Map::new();
            row.insert("name".into(), it.name.clone().into());
            row.insert("megapixels".into(), it.megapixels.into());
            for (imp, f) in &faces_of {
                if let Some(r) = f.get(i) {
                    row.insert(format!("{}_faces", imp.key()), r.faces.len().into());
                }
            }
            if let Some(r) = tile_faces.as_ref().and_then(|p| p.get(i)) {
                row.insert("tile_plan_faces".into(), r.faces.len().into());
            }
            serde_json::Value::Object(row)
        })
        .collect();
    let faces_total: serde_json::Map<String, serde_json::Value> = faces_of
        .iter()
        .map(|(imp, f)| {
            (
                imp.key().to_owned(),
                f.iter().map(|i| i.faces.len()).sum::<usize>().into(),
            )
        })
        .collect();
    let (plain_det, plain_emb) = plain_models(&args, Imp::PlainFp32, &models_dir);
    let mut report = serde_json::json!({
        "benchmark": "pipeline speed, end to end (decode -> detect -> align -> embed)",
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine": {
            "cpu": cpu_model(),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "load_avg_before": load_before,
            "load_avg_after": load_after,
        },
        "config": {
            "threads": args.threads,
            "reps": args.reps,
            "warmup": args.warmup,
            "batch": batch,
            "detector": cfg.detector,
            "embedder": cfg.embedder,
            "detect": cfg.detect,
            "max_detect_batch": cfg.max_detect_batch,
            "max_embed_batch": cfg.max_embed_batch,
            "likeness_defaults": {
                "detector": defaults_cfg.detector,
                "embedder": defaults_cfg.embedder,
                "detect": defaults_cfg.detect,
                "decode": defaults_cfg.decode,
            },
            "peer_interp": args.peer_interp,
            "max_foreign_cores": args.max_foreign,
            "retries": args.retries,
            "peer_opt_level": args.peer_opt_level,
            "rust_opt_level": "ort GraphOptimizationLevel::Level3 (ORT_ENABLE_LAYOUT)",
            "rust_intra_op_spinning": false,
            "peer_intra_op_spinning": args.peer_spinning,
            "plain_peer": args.plain_peer,
            "plain_fp32_models": [plain_det, plain_emb],
            "plain_int8_models": [args.int8_detector, args.int8_embedder],
            "plain_intra_op_spinning": !args.plain_no_spinning,
            "plain_opt_level": "ORT_ENABLE_ALL (onnxruntime's default)",
        },
        "python_versions": versions,
        "set": {
            "path": args.set,
            "images": items.len(),
            "megapixels_min": mp.iter().copied().fold(f64::INFINITY, f64::min),
            "megapixels_max": mp.iter().copied().fold(0.0, f64::max),
            "megapixels_total": mp.iter().sum::<f64>(),
            "encoded_bytes": blobs.iter().map(Vec::len).sum::<usize>(),
            "faces": faces_total,
            "faces_rust": rf.iter().map(|i| i.faces.len()).sum::<usize>(),
            "per_image": per_image_faces,
        },
        "modes": summaries,
        "all_passes": all_passes,
        "rust_profile_by_size": profile_table,
        "rust_profile_per_image": profile,
        "speedup_rust_over_python": speedup,
        "speedup_likeness_defaults_over_plain": plain_speedup,
    });
    if let Some(obj) = report.as_object_mut() {
        obj.extend(agreements);
    }
    if let Some(path) = &args.dump_faces {
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        let mut dump = serde_json::Map::new();
        dump.insert("names".into(), serde_json::to_value(names)?);
        for (imp, f) in &faces_of {
            dump.insert(imp.key().into(), serde_json::to_value(f)?);
        }
        dump.insert("tile_plan".into(), serde_json::to_value(&tile_faces)?);
        std::fs::write(path, serde_json::to_string(&dump)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("results: {}", args.out.display());
    Ok(())
}

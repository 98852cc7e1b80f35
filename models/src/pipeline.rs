//! The face pipeline: decode -> views -> detect -> NMS -> align -> embed -> L2 norm, over a
//! batch of images, with per-image errors and per-stage timings.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fast_image_resize as fr;
use ort::session::Session;
use ort::value::TensorRef;
use parking_lot::{Mutex, MutexGuard};

use crate::align::{self, CROP, Similarity, TEMPLATE};
use crate::decode::{self, DecodeLimits, RgbImage};
use crate::detect::{
    self, DetailView, DetectParams, Detection, ScrfdLevel, Source, View, YuNetLevel,
};
use crate::error::{Error, Result};
use crate::manifest::{self, DetectorFamily, ModelSpec, Role};
use crate::runtime;

/// Cosine similarity above which two faces are taken to be the same person (YuNet-s +
/// MobileFaceNet). Measured by `bench accuracy` (10-fold LFW protocol on faces_dev).
pub const DEFAULT_MATCH_THRESHOLD: f32 = 0.27;

/// The models directory: `LIKENESS_MODELS_DIR` if set, else `../shared/models` (relative to
/// the working directory: the `shared/` folder next to the checkout).
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("LIKENESS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/models"))
}

/// The directory of the models this repository derives from the downloaded ones (the 8-bit
/// models, `bash deploy/quantize-models.sh`): `LIKENESS_DERIVED_MODELS_DIR` if set, else
/// `.cache/derived-models` in the working directory when it exists (the matcher run from the
/// checkout), else `.cache/derived-models` of the checkout this crate was built from (tests,
/// whose working directory is their crate).
pub fn default_derived_models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LIKENESS_DERIVED_MODELS_DIR") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from(".cache/derived-models");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.cache/derived-models"
    ))
}

/// When a face is good enough to identify.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityParams {
    /// Faces whose shorter box side is below this (pixels) are flagged too small.
    pub min_face_size: f32,
    /// Faces whose aligned-crop sharpness is below this are flagged too blurry.
    pub min_sharpness: f32,
}

impl Default for QualityParams {
    fn default() -> Self {
        Self {
            min_face_size: 32.0,
            min_sharpness: 20.0,
        }
    }
}

/// Everything the pipeline needs to load and run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Directory with the ONNX files.
    pub models_dir: PathBuf,
    /// Directory with the derived ONNX files (manifest entries with `made_by`: the 8-bit
    /// models), made by `bash deploy/quantize-models.sh`.
    pub derived_models_dir: PathBuf,
    /// Detector model id (see the manifest).
    pub detector: String,
    /// Embedder model id.
    pub embedder: String,
    /// Allow models whose licence forbids commercial use (SCRFD).
    pub allow_non_commercial: bool,
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH or .cache/onnxruntime/).
    pub onnxruntime_lib: Option<PathBuf>,
    /// CPU threads for inference in all (default: the machine's cores), shared by the lanes:
    /// each lane's ONNX sessions get `threads / lanes` intra-op threads (at least 1).
    pub threads: usize,
    /// Lanes: images analysed at the same time by callers on different threads, each lane
    /// with its own detector and embedder sessions. `0`: one lane per thread up to
    /// [`MAX_AUTO_LANES`], beyond it lanes of several threads (on 2 cores single-threaded sessions: the most images per second,
    /// both cores busy without the threads of one inference waiting for each other); `1`: one
    /// lane whose sessions use all `threads` (the shortest time for one image when it is the
    /// only one). Each lane holds its own ONNX Runtime arenas and image buffers: about
    /// 300 MB at peak on 14 MP photos.
    pub lanes: usize,
    /// Most detector inputs (views) per inference call.
    pub max_detect_batch: usize,
    /// Most faces per embedder call.
    pub max_embed_batch: usize,
    /// Detection parameters.
    pub detect: DetectParams,
    /// Quality flags.
    pub quality: QualityParams,
    /// Decoder limits.
    pub decode: DecodeLimits,
    /// Decode JPEGs at 1/2, 1/4 or 1/8 scale (in the DCT domain) when the detector's largest
    /// view needs at most that many pixels; boxes and landmarks are still reported in the
    /// file's pixels. `false` decodes every file at full size.
    pub reduced_decode: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            models_dir: default_models_dir(),
            derived_models_dir: default_derived_models_dir(),
            detector: "yunet_s".into(),
            embedder: "mobilefacenet_128_int8".into(),
            allow_non_commercial: false,
            onnxruntime_lib: None,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            lanes: 0,
            max_detect_batch: 8,
            max_embed_batch: 64,
            detect: DetectParams::default(),
            quality: QualityParams::default(),
            decode: DecodeLimits::default(),
            reduced_decode: true,
        }
    }
}

impl PipelineConfig {
    /// Lanes and the intra-op threads of each lane's sessions (see `lanes`).
    pub fn lane_plan(&self) -> (usize, usize) {
        let threads = self.threads.max(1);
        let lanes = match self.lanes {
            0 if threads <= MAX_AUTO_LANES => threads,
            // Beyond: 2 to MAX_AUTO_LANES lanes, the most threads in use, then the most lanes
            // (6 threads: 3 lanes of 2; 5: 4 lanes of 1).
            0 => (2..=MAX_AUTO_LANES)
                .max_by_key(|&l| (l * (threads / l), l))
                .unwrap_or(MAX_AUTO_LANES),
            n => n,
        };
        (lanes, (threads / lanes).max(1))
    }

    /// The directory that holds `spec`'s file: `derived_models_dir` for a derived model, else
    /// `models_dir`.
    pub fn model_dir(&self, spec: &ModelSpec) -> &std::path::Path {
        if spec.is_derived() {
            &self.derived_models_dir
        } else {
            &self.models_dir
        }
    }
}

/// Quality of one face.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Quality {
    /// Shorter side of the box in pixels.
    pub face_size: f32,
    /// Laplacian variance of the aligned crop.
    pub sharpness: f32,
    /// Smaller than `min_face_size`.
    pub too_small: bool,
    /// Blurrier than `min_sharpness`.
    pub too_blurry: bool,
    /// Neither too small nor too blurry.
    pub identifiable: bool,
}

impl Quality {
    /// The quality of a detected face whose aligned crop has `sharpness`
    /// ([`align::sharpness`]), flagged against `q`.
    pub fn assess(det: &Detection, sharpness: f32, q: &QualityParams) -> Self {
        let face_size = det.width().min(det.height());
        let too_small = face_size < q.min_face_size;
        let too_blurry = sharpness < q.min_sharpness;
        Self {
            face_size,
            sharpness,
            too_small,
            too_blurry,
            identifiable: !too_small && !too_blurry,
        }
    }
}

/// One face found in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    /// Box, landmarks, score.
    pub detection: Detection,
    /// Quality flags.
    pub quality: Quality,
    /// L2-normalised embedding.
    pub embedding: Vec<f32>,
}

/// Time spent per stage, summed over a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Decoding bytes into pixels.
    pub decode: Duration,
    /// Detector views (resizing, filling inputs), detector inference, output decoding and NMS.
    pub detect: Duration,
    /// Part of `detect`: resizing and filling detector inputs.
    pub detect_prep: Duration,
    /// Part of `detect`: detector inference.
    pub detect_infer: Duration,
    /// Detector views run (a count, not a time).
    pub detect_views: u64,
    /// Detector input pixels, padding included (a count, not a time).
    pub detect_input_pixels: u64,
    /// Images whose detail view was run (a count, not a time).
    pub detail_run: u64,
    /// Images whose detail view was not run: the whole-image view gave no hint of small
    /// faces (a count, not a time; see [`DetailView::WhenHinted`]).
    pub detail_skipped: u64,
    /// Images decoded at a reduced scale (a count, not a time).
    pub decoded_reduced: u64,
    /// Faces located again in a crop at the detail scale (a count, not a time).
    pub faces_refined: u64,
    /// Similarity estimation, warping, sharpness.
    pub align: Duration,
    /// Embedder inference and normalisation.
    pub embed: Duration,
}

impl StageTimings {
    /// Adds another set of timings.
    pub fn add(&mut self, o: &StageTimings) {
        self.decode += o.decode;
        self.detect += o.detect;
        self.detect_prep += o.detect_prep;
        self.detect_infer += o.detect_infer;
        self.detect_views += o.detect_views;
        self.detect_input_pixels += o.detect_input_pixels;
        self.detail_run += o.detail_run;
        self.detail_skipped += o.detail_skipped;
        self.decoded_reduced += o.decoded_reduced;
        self.faces_refined += o.faces_refined;
        self.align += o.align;
        self.embed += o.embed;
    }
}

/// Most lanes that `lanes = 0` makes (memory: each lane peaks at about 300 MB on 14 MP photos).
pub const MAX_AUTO_LANES: usize = 4;

/// A loaded pipeline. Thread-safe: callers on different threads run in parallel on
/// different lanes (`PipelineConfig::lanes`); a lane serves one caller at a time.
pub struct Pipeline {
    cfg: PipelineConfig,
    det_spec: &'static ModelSpec,
    family: DetectorFamily,
    emb_dim: usize,
    emb_dynamic_batch: bool,
    lanes: Vec<Mutex<Lane>>,
    /// Where the next caller starts looking for a free lane.
    next_lane: AtomicUsize,
}

/// One lane: its own sessions and buffers.
struct Lane {
    detector: DetectorState,
    embedder: Session,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("detector", &self.det_spec.id)
            .field("embedder_dim", &self.emb_dim)
            .field("lanes", &self.lanes.len())
            .finish()
    }
}

/// Checks the configured models against the manifest (existence, hash, role, licence)
/// without loading the runtime. Returns the detector and embedder entries.
pub fn check_models(cfg: &PipelineConfig) -> Result<(&'static ModelSpec, &'static ModelSpec)> {
    let det = manifest::find(&cfg.detector)?;
    let emb = manifest::find(&cfg.embedder)?;
    for (spec, want) in [(det, "detector"), (emb, "embedder")] {
        if spec.role.name() != want {
            return Err(Error::WrongRole {
                id: spec.id.to_owned(),
                expected: want,
                actual: spec.role.name(),
            });
        }
        if !spec.commercial_use && !cfg.allow_non_commercial {
            return Err(Error::NonCommercialModel(spec.id.to_owned()));
        }
        manifest::verify(spec, cfg.model_dir(spec))?;
    }
    if let Some((w, h)) = det.fixed_input
        && (w != cfg.detect.input_size || h != cfg.detect.input_size)
    {
        return Err(Error::Runtime(format!(
            "detector {} has a fixed {w}x{h} input but detect.input_size is {}",
            det.id, cfg.detect.input_size
        )));
    }
    Ok((det, emb))
}

impl Pipeline {
    /// Verifies the models (hash, licence) and opens the ONNX sessions.
    pub fn load(cfg: PipelineConfig) -> Result<Self> {
        cfg.detect
            .validate()
            .map_err(|m| Error::Runtime(format!("detect: {m}")))?;
        let (det, emb) = check_models(&cfg)?;
        if !det.commercial_use {
            tracing::warn!(
                model = det.id,
                licence = det.licence,
                "loading a detector whose licence forbids commercial use"
            );
        }
        runtime::init(cfg.onnxruntime_lib.as_deref())?;
        let (Role::Detector(family), Role::Embedder { dim: emb_dim }) = (det.role, emb.role) else {
            return Err(Error::Runtime("detector/embedder roles mismatch".into()));
        };
        let (n_lanes, lane_threads) = cfg.lane_plan();
        let mut lanes = Vec::with_capacity(n_lanes);
        for _ in 0..n_lanes {
            let detector = runtime::open_session(&cfg.model_dir(det).join(det.file), lane_threads)?;
            let embedder = runtime::open_session(&cfg.model_dir(emb).join(emb.file), lane_threads)?;
            lanes.push(Mutex::new(Lane {
                detector: DetectorState {
                    session: detector,
                    resizer: fr::Resizer::new(),
                    detail: Vec::new(),
                    pix: Vec::new(),
                    input: Vec::new(),
                },
                embedder,
            }));
        }
        Ok(Self {
            det_spec: det,
            family,
            emb_dim,
            emb_dynamic_batch: emb.dynamic_batch,
            lanes,
            next_lane: AtomicUsize::new(0),
            cfg,
        })
    }

    /// Lanes: how many callers on different threads it serves at the same time.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// A free lane, else (all busy) the next one in turn, waiting for it.
    fn lane(&self) -> MutexGuard<'_, Lane> {
        let n = self.lanes.len();
        let start = self.next_lane.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            if let Some(g) = self.lanes[(start + k) % n].try_lock() {
                return g;
            }
        }
        self.lanes[start].lock()
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    /// Embedding dimension.
    pub fn embedding_dim(&self) -> usize {
        self.emb_dim
    }

    /// Decodes one encoded image for [`Pipeline::analyze`] with the configured limits: a
    /// JPEG at the smallest DCT scale (1, 1/2, 1/4, 1/8) whose longer side still covers the
    /// detector's largest view (the detail view when the photo gets one, else the whole-image
    /// view), when `reduced_decode` is on.
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage> {
        if !self.cfg.reduced_decode {
            return decode::decode(bytes, &self.cfg.decode);
        }
        decode::decode_reduced(bytes, &self.cfg.decode, |w, h| self.needed_long_side(w, h))
    }

    /// The longer side, in pixels, that the detector's views of a `w x h` picture read.
    fn needed_long_side(&self, w: u32, h: u32) -> u32 {
        let p = &self.cfg.detect;
        let long = w.max(h);
        match p.detail_scale(w, h) {
            Some(ds) => (long as f32 * ds).ceil() as u32,
            None => p.input_size.min(long),
        }
    }

    /// Decodes and analyses one encoded image.
    pub fn analyze_bytes(
        &self,
        bytes: &[u8],
        min_score: Option<f32>,
    ) -> Result<(RgbImage, Vec<Face>)> {
        let mut t = StageTimings::default();
        let start = Instant::now();
        let img = self.decode(bytes)?;
        t.decode = start.elapsed();
        let mut res = self.analyze(&[&img], min_score, &mut t);
        let faces = res.pop().unwrap_or_else(|| Ok(Vec::new()))?;
        Ok((img, faces))
    }

    /// Analyses a batch of decoded images; one result per image, in order. A failure of
    /// inference fails only the images of the failed call.
    pub fn analyze(
        &self,
        images: &[&RgbImage],
        min_score: Option<f32>,
        timings: &mut StageTimings,
    ) -> Vec<Result<Vec<Face>>> {
        let t0 = Instant::now();
        let threshold = min_score.unwrap_or(self.cfg.detect.score_threshold);
        let mut lane = self.lane();
        let mut dets = self.detect_timed(&mut lane.detector, images, threshold, timings);
        timings.detect += t0.elapsed();

        // Align every face of the batch.
        let t1 = Instant::now();
        let mut jobs: Vec<(usize, usize)> = Vec::new(); // (image, face)
        for (i, d) in dets.iter().enumerate() {
            if let Ok(d) = d {
                jobs.extend((0..d.len()).map(|f| (i, f)));
            }
        }
        let plane = CROP * CROP;
        let mut crops = vec![0f32; jobs.len() * 3 * plane];
        let mut rgb = vec![0u8; plane * 3];
        let mut sharp = Vec::with_capacity(jobs.len());
        for (j, &(i, f)) in jobs.iter().enumerate() {
            let Ok(d) = &dets[i] else { continue };
            let m = Similarity::estimate(&d[f].landmarks, &TEMPLATE);
            align::warp(images[i], &m, &mut rgb);
            sharp.push(align::sharpness(&rgb));
            align::to_embedder_input(&rgb, &mut crops[j * 3 * plane..(j + 1) * 3 * plane]);
        }
        timings.align += t1.elapsed();

        // Embed in chunks.
        let t2 = Instant::now();
        let mut embeddings: Vec<Option<Vec<f32>>> = vec![None; jobs.len()];
        let chunk = if self.emb_dynamic_batch {
            self.cfg.max_embed_batch.max(1)
        } else {
            1
        };
        let mut start = 0;
        while start < jobs.len() {
            let n = chunk.min(jobs.len() - start);
            match self.embed_on(
                &mut lane.embedder,
                &crops[start * 3 * plane..(start + n) * 3 * plane],
                n,
            ) {
                Ok(vs) => {
                    for (k, v) in vs.into_iter().enumerate() {
                        embeddings[start + k] = Some(v);
                    }
                }
                Err(e) => {
                    for &(i, _) in &jobs[start..start + n] {
                        dets[i] = Err(Error::image(e.image_kind(), e.to_string()));
                    }
                }
            }
            start += n;
        }
        timings.embed += t2.elapsed();

        let q = self.cfg.quality;
        let mut out: Vec<Result<Vec<Face>>> = Vec::with_capacity(images.len());
        let mut j = 0;
        for (img, d) in images.iter().zip(dets) {
            match d {
                Err(e) => {
                    // Skip this image's jobs (its faces were counted in `jobs` only if Ok).
                    while j < jobs.len() && jobs[j].0 == out.len() {
                        j += 1;
                    }
                    out.push(Err(e));
                }
                Ok(list) => {
                    let mut faces = Vec::with_capacity(list.len());
                    for mut det in list {
                        // Aligned from the decoded pixels; reported in the file's pixels.
                        det.scale_by(img.to_source());
                        let embedding = embeddings
                            .get_mut(j)
                            .and_then(Option::take)
                            .unwrap_or_default();
                        let sharpness = sharp.get(j).copied().unwrap_or(0.0);
                        faces.push(Face {
                            quality: Quality::assess(&det, sharpness, &q),
                            detection: det,
                            embedding,
                        });
                        j += 1;
                    }
                    out.push(Ok(faces));
                }
            }
        }
        out
    }

    /// Runs the detector over the views of every image (see [`DetectParams`]); per image the
    /// faces after NMS. A failure fails only its image.
    /// Coordinates are in the file's pixels (see [`RgbImage::to_source`]).
    pub fn detect(&self, images: &[&RgbImage], threshold: f32) -> Vec<Result<Vec<Detection>>> {
        let mut t = StageTimings::default();
        let mut lane = self.lane();
        let mut all = self.detect_timed(&mut lane.detector, images, threshold, &mut t);
        for (img, dets) in images.iter().zip(all.iter_mut()) {
            if let Ok(dets) = dets {
                dets.iter_mut().for_each(|d| d.scale_by(img.to_source()));
            }
        }
        all
    }

    fn detect_timed(
        &self,
        state: &mut DetectorState,
        images: &[&RgbImage],
        threshold: f32,
        t: &mut StageTimings,
    ) -> Vec<Result<Vec<Detection>>> {
        let p = &self.cfg.detect;
        images
            .iter()
            .map(|img| {
                let dets = self.detect_one(state, img, threshold, t)?;
                Ok(detect::nms(dets, p.nms_iou, p.max_faces))
            })
            .collect()
    }

    /// All detections of one image's views, in image coordinates, before NMS.
    fn detect_one(
        &self,
        st: &mut DetectorState,
        img: &RgbImage,
        threshold: f32,
        t: &mut StageTimings,
    ) -> Result<Vec<Detection>> {
        let p = &self.cfg.detect;
        let flat = |v: Vec<Vec<Detection>>| v.into_iter().flatten().collect::<Vec<_>>();
        if self.det_spec.fixed_input.is_some() {
            let views = detect::plan_tiles(img.width, img.height, p);
            return self.run_views(st, img, &views, threshold, t).map(flat);
        }
        let mut views = detect::plan_views(img.width, img.height, p);
        if views.len() < 2 || p.detail_view == DetailView::Always {
            t.detail_run += u64::from(views.len() >= 2);
            return self.run_views(st, img, &views, threshold, t).map(flat);
        }
        // The whole image first, resampled from the image itself, with the weak candidates
        // that may hint at faces only the detail view resolves.
        let detail = views.split_off(1);
        views[0].source = Source::Image;
        let scale = views[0].scale;
        let floor = threshold.min(p.detail_hint_score);
        let mut found = flat(self.run_views(st, img, &views, floor, t)?);
        let hints: Vec<Detection> = found
            .iter()
            .map(|d| Detection {
                bbox: d.bbox.map(|c| c * scale),
                ..*d
            })
            .collect();
        found.retain(|d| d.score >= threshold);
        if p.detail_hinted(&hints) {
            t.detail_run += 1;
            found.append(&mut flat(self.run_views(st, img, &detail, threshold, t)?));
            return Ok(found);
        }
        t.detail_skipped += 1;
        // Without the detail view, faces small in the whole-image view are located again in a
        // crop around each at (up to) the detail scale: their landmarks, and so their
        // alignment, are as precise as the detail view would have made them.
        let detail_scale = detail.first().map_or(scale, |v| v.scale);
        let mut found = detect::nms(found, p.nms_iou, p.max_faces);
        let crops: Vec<(usize, View)> = found
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                detect::refine_view(d, img.width, img.height, scale, detail_scale, p)
                    .map(|v| (i, v))
            })
            .collect();
        if crops.is_empty() {
            return Ok(found);
        }
        let crop_views: Vec<View> = crops.iter().map(|(_, v)| *v).collect();
        let refined = self.run_views(st, img, &crop_views, floor, t)?;
        for ((i, _), dets) in crops.iter().zip(refined) {
            let face = &mut found[*i];
            if let Some(better) = dets
                .into_iter()
                .filter(|d| detect::iou(&d.bbox, &face.bbox) >= 0.5)
                .max_by(|a, b| {
                    detect::iou(&a.bbox, &face.bbox).total_cmp(&detect::iou(&b.bbox, &face.bbox))
                })
            {
                face.bbox = better.bbox;
                face.landmarks = better.landmarks;
                face.score = face.score.max(better.score);
                t.faces_refined += 1;
            }
        }
        Ok(found)
    }

    /// Runs the detector on `views` of `img`; per view its detections in image coordinates.
    fn run_views(
        &self,
        st: &mut DetectorState,
        img: &RgbImage,
        views: &[View],
        threshold: f32,
        t: &mut StageTimings,
    ) -> Result<Vec<Vec<Detection>>> {
        let p = &self.cfg.detect;
        let t0 = Instant::now();
        let DetectorState {
            session,
            resizer,
            detail,
            pix,
            input,
        } = st;
        // The image at the detail scale, resized once (or the image itself at scale 1).
        let mut detail_src: (&[u8], (u32, u32), f32) = (&img.data, (img.width, img.height), 1.0);
        if let Some(ds) = p.detail_scale(img.width, img.height)
            && views.iter().any(|v| v.source == Source::Detail)
        {
            let (sw, sh) = (
                ((img.width as f32 * ds).round() as u32).max(1),
                ((img.height as f32 * ds).round() as u32).max(1),
            );
            if (sw, sh) != (img.width, img.height) {
                let full = View {
                    x0: 0.0,
                    y0: 0.0,
                    scale: ds,
                    content_w: sw,
                    content_h: sh,
                    input_w: sw,
                    input_h: sh,
                    interior: [false; 4],
                    source: Source::Image,
                };
                detect::resample(
                    &img.data,
                    (img.width, img.height),
                    1.0,
                    &full,
                    resizer,
                    detail,
                )?;
                detail_src = (&detail[..], (sw, sh), ds);
            }
        }
        t.detect_prep += t0.elapsed();
        let max_batch = if self.det_spec.dynamic_batch {
            self.cfg.max_detect_batch.max(1)
        } else {
            1
        };
        let mut found = Vec::new();
        let mut start = 0;
        while start < views.len() {
            // Consecutive views of one input size share an inference call.
            let first = &views[start];
            let n = views[start..]
                .iter()
                .take(max_batch)
                .take_while(|v| (v.input_w, v.input_h) == (first.input_w, first.input_h))
                .count();
            let chunk = &views[start..start + n];
            start += n;
            let t1 = Instant::now();
            let (iw, ih) = (first.input_w, first.input_h);
            let per = 3 * (iw as usize) * (ih as usize);
            input.resize(n * per, 0.0);
            for (k, v) in chunk.iter().enumerate() {
                let (src, size, scale) = match v.source {
                    Source::Image => (&img.data[..], (img.width, img.height), 1.0),
                    Source::Detail => detail_src,
                };
                let out = &mut input[k * per..(k + 1) * per];
                if scale == v.scale && size == (v.content_w, v.content_h) {
                    // The view is its source as it is (the detail view).
                    detect::to_input(src, v, self.family, out);
                } else {
                    detect::resample(src, size, scale, v, resizer, pix)?;
                    detect::to_input(pix, v, self.family, out);
                }
                t.detect_views += 1;
                t.detect_input_pixels += u64::from(iw) * u64::from(ih);
            }
            let t2 = Instant::now();
            t.detect_prep += t2 - t1;
            let per_view = run_detector(
                session,
                self.family,
                &input[..n * per],
                n,
                (iw, ih),
                threshold,
            )?;
            t.detect_infer += t2.elapsed();
            for (v, mut d) in chunk.iter().zip(per_view) {
                detect::map_to_image(&mut d, v, img.width, img.height);
                found.push(d);
            }
        }
        Ok(found)
    }

    /// Embeds `n` aligned crops (planar, normalised) and L2-normalises the vectors.
    pub fn embed(&self, crops: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let mut lane = self.lane();
        self.embed_on(&mut lane.embedder, crops, n)
    }

    fn embed_on(&self, session: &mut Session, crops: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let stage = "embed";
        let shape = [n, 3, CROP, CROP];
        let tensor =
            TensorRef::from_array_view((shape, crops)).map_err(|e| Error::inference(stage, e))?;
        let outputs = session
            .run(ort::inputs![tensor])
            .map_err(|e| Error::inference(stage, e))?;
        let (_, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::inference(stage, e))?;
        if data.len() != n * self.emb_dim {
            return Err(Error::inference(
                stage,
                format!(
                    "embedder returned {} values for {n} faces of dim {}",
                    data.len(),
                    self.emb_dim
                ),
            ));
        }
        Ok(data
            .chunks_exact(self.emb_dim)
            .map(|c| {
                let mut v = c.to_vec();
                align::l2_normalize(&mut v);
                v
            })
            .collect())
    }
}

/// The detector session with the buffers it reuses from call to call (one image's views).
struct DetectorState {
    session: Session,
    resizer: fr::Resizer,
    /// The image at the detail scale.
    detail: Vec<u8>,
    /// One view's resampled pixels.
    pix: Vec<u8>,
    /// Detector input (planar f32).
    input: Vec<f32>,
}

/// Runs the detector on `n` inputs of `iw x ih` in `buf`; per input the detections in input
/// coordinates.
fn run_detector(
    session: &mut Session,
    family: DetectorFamily,
    buf: &[f32],
    n: usize,
    (iw, ih): (u32, u32),
    threshold: f32,
) -> Result<Vec<Vec<Detection>>> {
    let stage = "detect";
    let shape = [n, 3, ih as usize, iw as usize];
    let tensor =
        TensorRef::from_array_view((shape, buf)).map_err(|e| Error::inference(stage, e))?;
    let outputs = session
        .run(ort::inputs![tensor])
        .map_err(|e| Error::inference(stage, e))?;
    let mut all = Vec::with_capacity(n);
    let get = |k: usize| -> Result<&[f32]> {
        let (_, data) = outputs[k]
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::inference(stage, e))?;
        Ok(data)
    };
    let strides = [8u32, 16, 32];
    match family {
        DetectorFamily::YuNet => {
            let outs: Vec<&[f32]> = (0..12).map(get).collect::<Result<_>>()?;
            for b in 0..n {
                let mut levels = Vec::with_capacity(3);
                for (li, &s) in strides.iter().enumerate() {
                    let cells = ((iw / s) * (ih / s)) as usize;
                    let sl = |k: usize, c: usize| -> Result<&[f32]> {
                        outs[k]
                            .get(b * cells * c..(b + 1) * cells * c)
                            .ok_or_else(|| {
                                Error::inference(stage, "detector output shorter than expected")
                            })
                    };
                    levels.push(YuNetLevel {
                        stride: s,
                        cls: sl(li, 1)?,
                        obj: sl(3 + li, 1)?,
                        bbox: sl(6 + li, 4)?,
                        kps: sl(9 + li, 10)?,
                    });
                }
                let mut d = Vec::new();
                detect::decode_yunet(&levels, iw, threshold, &mut d);
                all.push(d);
            }
        }
        DetectorFamily::Scrfd => {
            // The SCRFD export has batch 1 and no batch axis in its outputs.
            if n != 1 {
                return Err(Error::inference(stage, "SCRFD takes one input per call"));
            }
            let outs: Vec<&[f32]> = (0..9).map(get).collect::<Result<_>>()?;
            let levels: Vec<ScrfdLevel<'_>> = strides
                .iter()
                .enumerate()
                .map(|(li, &s)| ScrfdLevel {
                    stride: s,
                    score: outs[li],
                    bbox: outs[3 + li],
                    kps: outs[6 + li],
                })
                .collect();
            let mut d = Vec::new();
            detect::decode_scrfd(&levels, iw, threshold, &mut d);
            all.push(d);
        }
    }
    Ok(all)
}

//! The face pipeline: decode -> views -> detect -> NMS -> align -> embed -> L2 norm, over a
//! batch of images, with per-image errors and per-stage timings.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fast_image_resize as fr;
use ort::session::Session;
use ort::value::TensorRef;
use parking_lot::Mutex;

use crate::align::{self, CROP, Similarity, TEMPLATE};
use crate::decode::{self, DecodeLimits, RgbImage};
use crate::detect::{self, DetectParams, Detection, ScrfdLevel, View, YuNetLevel};
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
    /// Detector model id (see the manifest).
    pub detector: String,
    /// Embedder model id.
    pub embedder: String,
    /// Allow models whose licence forbids commercial use (SCRFD).
    pub allow_non_commercial: bool,
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH or .cache/onnxruntime/).
    pub onnxruntime_lib: Option<PathBuf>,
    /// Intra-op threads per model session.
    pub threads: usize,
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
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            models_dir: default_models_dir(),
            detector: "yunet_s".into(),
            embedder: "mobilefacenet_128".into(),
            allow_non_commercial: false,
            onnxruntime_lib: None,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_detect_batch: 8,
            max_embed_batch: 64,
            detect: DetectParams::default(),
            quality: QualityParams::default(),
            decode: DecodeLimits::default(),
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
    /// Letterbox/tiling, detector inference, output decoding and NMS.
    pub detect: Duration,
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
        self.align += o.align;
        self.embed += o.embed;
    }
}

/// A loaded pipeline. Thread-safe; each model session is used by one caller at a time.
pub struct Pipeline {
    cfg: PipelineConfig,
    det_spec: &'static ModelSpec,
    family: DetectorFamily,
    emb_dim: usize,
    emb_dynamic_batch: bool,
    detector: Mutex<Session>,
    embedder: Mutex<Session>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("detector", &self.det_spec.id)
            .field("embedder_dim", &self.emb_dim)
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
        manifest::verify(spec, &cfg.models_dir)?;
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
        let detector = runtime::open_session(&cfg.models_dir.join(det.file), cfg.threads)?;
        let embedder = runtime::open_session(&cfg.models_dir.join(emb.file), cfg.threads)?;
        Ok(Self {
            det_spec: det,
            family,
            emb_dim,
            emb_dynamic_batch: emb.dynamic_batch,
            detector: Mutex::new(detector),
            embedder: Mutex::new(embedder),
            cfg,
        })
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    /// Embedding dimension.
    pub fn embedding_dim(&self) -> usize {
        self.emb_dim
    }

    /// Decodes one encoded image with the configured limits.
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage> {
        decode::decode(bytes, &self.cfg.decode)
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
        let mut dets = self.detect(images, threshold);
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
            match self.embed(&crops[start * 3 * plane..(start + n) * 3 * plane], n) {
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
        for d in dets {
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
                    for det in list {
                        let embedding = embeddings
                            .get_mut(j)
                            .and_then(Option::take)
                            .unwrap_or_default();
                        let face_size = det.width().min(det.height());
                        let sharpness = sharp.get(j).copied().unwrap_or(0.0);
                        let too_small = face_size < q.min_face_size;
                        let too_blurry = sharpness < q.min_sharpness;
                        faces.push(Face {
                            detection: det,
                            quality: Quality {
                                face_size,
                                sharpness,
                                too_small,
                                too_blurry,
                                identifiable: !too_small && !too_blurry,
                            },
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

    /// Runs the detector over all views of all images; per image the faces after NMS.
    pub fn detect(&self, images: &[&RgbImage], threshold: f32) -> Vec<Result<Vec<Detection>>> {
        let p = &self.cfg.detect;
        let side = p.input_size;
        let plane = (side * side) as usize;
        let views: Vec<(usize, View)> = images
            .iter()
            .enumerate()
            .flat_map(|(i, img)| {
                detect::plan_views(img.width, img.height, p)
                    .into_iter()
                    .map(move |v| (i, v))
            })
            .collect();
        let mut per_image: Vec<Result<Vec<Detection>>> =
            images.iter().map(|_| Ok(Vec::new())).collect();
        let max_batch = if self.det_spec.dynamic_batch {
            self.cfg.max_detect_batch.max(1)
        } else {
            1
        };
        let mut input = vec![0f32; max_batch.min(views.len().max(1)) * 3 * plane];
        let mut resizer = fr::Resizer::new();
        let mut scratch = Vec::new();
        for chunk in views.chunks(max_batch) {
            let n = chunk.len();
            let buf = &mut input[..n * 3 * plane];
            let mut fill_err = None;
            for (k, (i, v)) in chunk.iter().enumerate() {
                if let Err(e) = detect::fill_input(
                    images[*i],
                    v,
                    side,
                    self.family,
                    &mut resizer,
                    &mut scratch,
                    &mut buf[k * 3 * plane..(k + 1) * 3 * plane],
                ) {
                    fill_err = Some(e);
                }
            }
            let res = match fill_err {
                Some(e) => Err(e),
                None => self.run_detector(buf, n, side, threshold),
            };
            match res {
                Ok(per_view) => {
                    for ((i, v), mut d) in chunk.iter().zip(per_view) {
                        detect::map_to_image(&mut d, v, images[*i].width, images[*i].height);
                        if let Ok(list) = &mut per_image[*i] {
                            list.append(&mut d);
                        }
                    }
                }
                Err(e) => {
                    for (i, _) in chunk {
                        per_image[*i] = Err(Error::image(e.image_kind(), e.to_string()));
                    }
                }
            }
        }
        per_image
            .into_iter()
            .map(|r| r.map(|d| detect::nms(d, p.nms_iou, p.max_faces)))
            .collect()
    }

    fn run_detector(
        &self,
        buf: &[f32],
        n: usize,
        side: u32,
        threshold: f32,
    ) -> Result<Vec<Vec<Detection>>> {
        let stage = "detect";
        let shape = [n, 3, side as usize, side as usize];
        let tensor =
            TensorRef::from_array_view((shape, buf)).map_err(|e| Error::inference(stage, e))?;
        let mut session = self.detector.lock();
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
        match self.family {
            DetectorFamily::YuNet => {
                let outs: Vec<&[f32]> = (0..12).map(get).collect::<Result<_>>()?;
                for b in 0..n {
                    let mut levels = Vec::with_capacity(3);
                    for (li, &s) in strides.iter().enumerate() {
                        let cells = ((side / s) * (side / s)) as usize;
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
                    detect::decode_yunet(&levels, side, threshold, &mut d);
                    all.push(d);
                }
            }
            DetectorFamily::Scrfd => {
                // The SCRFD export has batch 1 and no batch axis in its outputs.
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
                detect::decode_scrfd(&levels, side, threshold, &mut d);
                all.push(d);
            }
        }
        Ok(all)
    }

    /// Embeds `n` aligned crops (planar, normalised) and L2-normalises the vectors.
    pub fn embed(&self, crops: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let stage = "embed";
        let shape = [n, 3, CROP, CROP];
        let tensor =
            TensorRef::from_array_view((shape, crops)).map_err(|e| Error::inference(stage, e))?;
        let mut session = self.embedder.lock();
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

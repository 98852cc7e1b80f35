//! The face pipeline on a CUDA device, from decoded pixels to normalised embeddings, without a
//! host round trip of the pixels: the images are uploaded once; the letterbox kernel writes
//! the detector's input slot; the detector graph runs on our executor ([`crate::gpu_graph`]);
//! YuNet decoding and NMS run on the device; only the faces' boxes and landmarks (a few bytes
//! per face) come back to fit each similarity transform; the warp kernel reads the uploaded
//! pixels and writes the embedder's input slot; the embedder graph and the L2 normalisation
//! run on the device; the embeddings and the 112×112 crops (for the sharpness measure) are
//! downloaded.
//!
//! Every device buffer is allocated when the pipeline is made ([`DevicePipeline::new`]): one
//! detector plan and one embedder plan per power-of-two batch size up to the configured
//! maxima, so a batch never allocates and an out-of-memory shows at start-up as an error that
//! the caller turns into the CPU fallback. The detector's input is square (fixed-size plans
//! batch across images): each image is letterboxed whole and, when large, covered with
//! overlapping tiles of its detail-scale image, so small faces in crowds are found (the CPU
//! pipeline's plan for fixed-input detectors; the faces agree with it, `tests/graph.rs`).

use std::time::{Duration, Instant};

use cudarc::driver::{CudaSlice, CudaView};
use likeness_models::align::{Similarity, TEMPLATE};
use likeness_models::detect::{DetectParams, plan_tiles, source_crop};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::gpu_graph::GpuGraph;
use crate::graph::{Model, Plan};
use crate::twin::detect::{Face, ViewGeometry};
use crate::twin::letterbox::{CropBox, Filter, ImageRef, LetterboxView, Normalise};
use crate::twin::warp::{Affine, CROP, WarpJob};

/// Sizes and thresholds of the device pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// The detection plan: `input_size` is the square detector input; large photos get
    /// overlapping tiles of their detail-scale image (the CPU pipeline's plan for fixed-input
    /// detectors, `likeness_models::detect::plan_tiles`), thresholds and face limit.
    pub detect: DetectParams,
    /// Detector views per call (the largest detector plan); at least the most views one
    /// image can get (17 with the default plan).
    pub max_views: usize,
    /// Faces per embedder call (the largest embedder plan).
    pub max_faces: usize,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            detect: DetectParams::default(),
            max_views: 64,
            max_faces: 256,
        }
    }
}

impl DeviceConfig {
    /// The most detector views one image can get under this plan.
    pub fn views_per_image_bound(&self) -> usize {
        let big = self
            .detect
            .tile_max_side
            .max(self.detect.input_size)
            .saturating_mul(4);
        plan_tiles(big, big, &self.detect).len()
    }

    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("device pipeline", m));
        if let Err(m) = self.detect.validate() {
            return bad(format!("detect: {m}"));
        }
        let bound = self.views_per_image_bound();
        if self.max_views < bound {
            return bad(format!(
                "max_views {} is less than the {bound} views one image can get",
                self.max_views
            ));
        }
        if self.max_faces == 0 {
            return bad("max_faces must be at least 1".into());
        }
        Ok(())
    }
}

/// A face found and embedded on the device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceFace {
    /// Box, landmarks and score in image pixels.
    pub face: Face,
    /// The aligned 112×112 crop, interleaved RGB (for the sharpness measure).
    pub crop: Vec<u8>,
    /// The L2-normalised embedding.
    pub embedding: Vec<f32>,
}

/// Plans of one graph for batch sizes 1, 2, 4, … up to a maximum, all on the device.
struct Buckets {
    graphs: Vec<(usize, GpuGraph)>,
}

impl Buckets {
    fn new(gpu: &Gpu, model: &Model, max: usize, item: &[usize]) -> Result<Self> {
        let mut sizes = Vec::new();
        let mut b = 1;
        while b < max {
            sizes.push(b);
            b *= 2;
        }
        sizes.push(max);
        let mut graphs = Vec::with_capacity(sizes.len());
        for n in sizes {
            let mut dims = vec![n];
            dims.extend_from_slice(item);
            graphs.push((n, gpu.graph(&Plan::new(model, &dims)?)?));
        }
        Ok(Self { graphs })
    }

    fn pick(&mut self, n: usize) -> Result<&mut GpuGraph> {
        self.graphs
            .iter_mut()
            .find(|(b, _)| *b >= n)
            .map(|(_, g)| g)
            .ok_or_else(|| {
                Error::invalid("device pipeline", format!("batch of {n} exceeds the plans"))
            })
    }

    fn bytes(&self) -> usize {
        self.graphs.iter().map(|(_, g)| g.device_bytes()).sum()
    }
}

/// The pipeline on one device.
pub struct DevicePipeline {
    gpu: Gpu,
    cfg: DeviceConfig,
    detectors: Buckets,
    embedders: Buckets,
    crops: CudaSlice<u8>,
    embedding_dim: usize,
}

impl std::fmt::Debug for DevicePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevicePipeline")
            .field("device", self.gpu.device())
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl DevicePipeline {
    /// Plans both graphs for every batch size and allocates all device memory.
    pub fn new(gpu: Gpu, detector: &Model, embedder: &Model, cfg: DeviceConfig) -> Result<Self> {
        cfg.validate()?;
        let side = cfg.detect.input_size as usize;
        let detectors = Buckets::new(&gpu, detector, cfg.max_views, &[3, side, side])?;
        let embedders = Buckets::new(&gpu, embedder, cfg.max_faces, &[3, CROP, CROP])?;
        let embedding_dim = embedders
            .graphs
            .first()
            .and_then(|(_, g)| g.plan().outputs.first())
            .and_then(|o| o.dims.get(1).copied())
            .ok_or_else(|| {
                Error::invalid("device pipeline", "the embedder has no [n, d] output")
            })?;
        let crops = gpu
            .stream()
            .alloc_zeros::<u8>(cfg.max_faces * CROP * CROP * 3)
            .map_err(|e| Error::driver("alloc crops", format!("{e:?}")))?;
        Ok(Self {
            gpu,
            cfg,
            detectors,
            embedders,
            crops,
            embedding_dim,
        })
    }

    /// Runs the smallest detector plan and the two-face embedder plan on deterministic inputs
    /// on the device and with the CPU twin, and compares them (detector outputs within 1e-3,
    /// embeddings at cosine ≥ 0.9999): what a host checks before it trusts its GPU. Returns a
    /// one-line summary, or an error that says what differs.
    pub fn self_check(&mut self) -> Result<String> {
        let gpu = &self.gpu;
        let mut worst_det = 0f32;
        let det = self.detectors.pick(1)?;
        let input = pseudo_random(det.plan().input_dims.iter().product(), 11);
        let twin = crate::twin::graph::run(det.plan(), &input, &mut Default::default())?;
        let dev = gpu.run_graph(det, &input)?;
        for (a, b) in dev.iter().zip(&twin) {
            for (x, y) in a.data.iter().zip(&b.data) {
                worst_det = worst_det.max((x - y).abs());
            }
        }
        let emb = self.embedders.pick(2)?;
        let input = pseudo_random(emb.plan().input_dims.iter().product(), 12);
        let twin = crate::twin::graph::run(emb.plan(), &input, &mut Default::default())?;
        let dev = gpu.run_graph(emb, &input)?;
        let dim = self.embedding_dim;
        let mut worst_cos = 1f32;
        if let (Some(a), Some(b)) = (dev.first(), twin.first()) {
            for (x, y) in a.data.chunks_exact(dim).zip(b.data.chunks_exact(dim)) {
                let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
                let nx = x.iter().map(|p| p * p).sum::<f32>().sqrt();
                let ny = y.iter().map(|q| q * q).sum::<f32>().sqrt();
                worst_cos = worst_cos.min(dot / (nx * ny).max(f32::MIN_POSITIVE));
            }
        }
        let summary = format!(
            "detector max |device - CPU twin| {worst_det:.1e}, embedder cosine {worst_cos:.6}"
        );
        if worst_det.is_nan() || worst_det > 1e-3 || worst_cos.is_nan() || worst_cos < 0.9999 {
            return Err(Error::driver("start-up check", summary));
        }
        Ok(summary)
    }

    /// Device memory held by the plans and buffers, in bytes.
    pub fn device_bytes(&self) -> usize {
        self.detectors.bytes() + self.embedders.bytes() + self.crops.len()
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }

    /// Faces of every image, best first, with crops and embeddings.
    pub fn analyze(&mut self, images: &[ImageRef<'_>]) -> Result<Vec<Vec<DeviceFace>>> {
        let cfg = self.cfg.clone();
        analyze_with(self, &cfg, images, None)
    }

    /// As [`DevicePipeline::analyze`], waiting for the device after every stage to add its
    /// time to `times` (slower: the stages no longer overlap with the host's work).
    pub fn analyze_profiled(
        &mut self,
        images: &[ImageRef<'_>],
        times: &mut StageTimes,
    ) -> Result<Vec<Vec<DeviceFace>>> {
        let cfg = self.cfg.clone();
        analyze_with(self, &cfg, images, Some(times))
    }
}

impl Stages for DevicePipeline {
    fn sync(&mut self) -> Result<()> {
        self.gpu
            .stream()
            .synchronize()
            .map_err(|e| Error::driver("synchronize", format!("{e:?}")))
    }

    type Pixels = crate::gpu::DeviceImages;

    fn upload(&mut self, images: &[ImageRef<'_>]) -> Result<Self::Pixels> {
        self.gpu.upload_images(images)
    }

    fn detect(
        &mut self,
        images: &[ImageRef<'_>],
        pixels: &Self::Pixels,
        views: &[LetterboxView],
        geometry: &[(usize, ViewGeometry)],
    ) -> Result<Vec<Option<Vec<Face>>>> {
        let n = views.len();
        let side = self.cfg.detect.input_size;
        let gpu = &self.gpu;
        let det = self.detectors.pick(n)?;
        {
            let mut input = det.input_mut();
            gpu.letterbox_device(pixels, views, Normalise::YUNET, &mut input)?;
        }
        gpu.launch_graph(det)?;
        let outs: Vec<CudaView<'_, f32>> = (0..12)
            .map(|k| det.output(k))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Error::invalid("device pipeline", "the detector has fewer than 12 outputs")
            })?;
        let p = &self.cfg.detect;
        let mut faces = gpu.detect_device(
            &outs,
            geometry,
            (side, side),
            images.len(),
            p.score_threshold,
            p.nms_iou,
            p.max_faces,
        )?;
        // An image with more candidates than the device NMS holds: its views' raw outputs
        // come back and the twin decodes them (same arithmetic, no limit).
        for (i, slot) in faces.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let mut host: Vec<(ViewGeometry, Vec<Vec<f32>>)> = Vec::new();
            for (vi, &(image, g)) in geometry.iter().enumerate() {
                if image != i {
                    continue;
                }
                let mut per_output = Vec::with_capacity(12);
                for (k, out) in outs.iter().enumerate() {
                    let stride = crate::twin::detect::STRIDES[k % 3] as usize;
                    let cells = (side as usize / stride) * (side as usize / stride);
                    let len = cells * [1, 1, 4, 10][k / 3];
                    let part = out.slice(vi * len..(vi + 1) * len);
                    per_output.push(gpu.stream().clone_dtoh(&part).map_err(|e| {
                        Error::driver("download detector outputs", format!("{e:?}"))
                    })?);
                }
                host.push((g, per_output));
            }
            let views: Vec<crate::twin::detect::ViewOutputs<'_>> = host
                .iter()
                .map(|(g, o)| {
                    let level = |li: usize| crate::twin::detect::Level {
                        stride: crate::twin::detect::STRIDES[li],
                        cls: &o[li],
                        obj: &o[3 + li],
                        bbox: &o[6 + li],
                        kps: &o[9 + li],
                    };
                    crate::twin::detect::ViewOutputs {
                        image: 0,
                        input_w: side,
                        geometry: *g,
                        levels: [level(0), level(1), level(2)],
                    }
                })
                .collect();
            let mut decoded = crate::twin::detect::detect_batch(
                &views,
                1,
                p.score_threshold,
                p.nms_iou,
                p.max_faces,
            )?;
            *slot = decoded.pop();
        }
        Ok(faces)
    }

    fn embed(
        &mut self,
        _images: &[ImageRef<'_>],
        pixels: &Self::Pixels,
        jobs: &[WarpJob],
    ) -> Result<(Vec<f32>, Vec<u8>)> {
        let m = jobs.len();
        let dim = self.embedding_dim;
        let gpu = &self.gpu;
        let emb = self.embedders.pick(m)?;
        {
            let mut input = emb.input_mut();
            gpu.warp_device(pixels, jobs, &mut self.crops.slice_mut(..), &mut input)?;
        }
        gpu.launch_graph(emb)?;
        let missing = || Error::invalid("device pipeline", "the embedder has no output");
        {
            let mut vectors = emb.output_mut(0).ok_or_else(missing)?;
            gpu.l2_normalize_device(&mut vectors, m, dim)?;
        }
        let s = gpu.stream();
        let v = emb.output(0).ok_or_else(missing)?;
        let vectors = s
            .clone_dtoh(&v.slice(..m * dim))
            .map_err(|e| Error::driver("download embeddings", format!("{e:?}")))?;
        let crops = s
            .clone_dtoh(&self.crops.slice(..m * CROP * CROP * 3))
            .map_err(|e| Error::driver("download crops", format!("{e:?}")))?;
        Ok((vectors, crops))
    }

    fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }
}

/// The stages of a pipeline backend on one chunk of images. The orchestration around them
/// (views, alignment, chunking, assembly: [`analyze_with`]) is shared by the device pipeline
/// and its CPU twin ([`crate::twin::pipeline`]), so the twin tests it without a GPU.
pub trait Stages {
    /// The images as the backend holds them (uploaded pixels on a device).
    type Pixels;
    /// Makes the images available to the other stages.
    fn upload(&mut self, images: &[ImageRef<'_>]) -> Result<Self::Pixels>;
    /// Letterbox, detector, decoding and NMS of the views of the images (`geometry` names
    /// each view's image): per image its faces, best first, or `None` where the backend could
    /// not hold its candidates.
    fn detect(
        &mut self,
        images: &[ImageRef<'_>],
        pixels: &Self::Pixels,
        views: &[LetterboxView],
        geometry: &[(usize, ViewGeometry)],
    ) -> Result<Vec<Option<Vec<Face>>>>;
    /// Warp, embedder and L2 normalisation of at most one embedder batch of faces: the
    /// vectors (`jobs.len() × dim`) and the interleaved crops.
    fn embed(
        &mut self,
        images: &[ImageRef<'_>],
        pixels: &Self::Pixels,
        jobs: &[WarpJob],
    ) -> Result<(Vec<f32>, Vec<u8>)>;
    /// Width of an embedding.
    fn embedding_dim(&self) -> usize;
    /// Waits until the backend's queued work is done (for timing stages).
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Time per stage summed over calls, and what was processed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Uploading the pixels.
    pub upload: Duration,
    /// Letterbox, detector, decoding and NMS (faces downloaded).
    pub detect: Duration,
    /// Fitting the similarity transforms on the host.
    pub align: Duration,
    /// Warp, embedder, L2 and the download of embeddings and crops.
    pub embed: Duration,
    /// Images analysed.
    pub images: usize,
    /// Faces embedded.
    pub faces: usize,
}

/// Letterbox views and, per view, its image and geometry for decoding.
pub type Views = (Vec<LetterboxView>, Vec<(usize, ViewGeometry)>);

/// The detector views of every image (`plan_tiles`: the whole image letterboxed into the
/// square input, plus overlapping tiles of the detail-scale image for large photos), sampled
/// as the CPU pipeline samples them.
pub fn tile_views(images: &[ImageRef<'_>], p: &DetectParams) -> Result<Views> {
    let mut views = Vec::new();
    let mut geometry = Vec::new();
    for (i, img) in images.iter().enumerate() {
        if img.width == 0 || img.height == 0 {
            return Err(Error::invalid(
                "device pipeline",
                format!("image {i} is empty"),
            ));
        }
        for v in plan_tiles(img.width, img.height, p) {
            // The part of the image the CPU pipeline resamples for this view.
            let crop = match source_crop(&v, (img.width, img.height), 1.0) {
                Some((left, top, width, height)) => CropBox {
                    left,
                    top,
                    width,
                    height,
                },
                None => CropBox {
                    left: 0.0,
                    top: 0.0,
                    width: f64::from(img.width),
                    height: f64::from(img.height),
                },
            };
            views.push(LetterboxView {
                image: i,
                crop,
                content: (v.content_w, v.content_h),
                input: (v.input_w, v.input_h),
                filter: Filter::Interpolation,
            });
            geometry.push((
                i,
                ViewGeometry {
                    x0: v.x0,
                    y0: v.y0,
                    scale: v.scale,
                    content_w: v.content_w,
                    content_h: v.content_h,
                    interior: v.interior,
                    img_w: img.width,
                    img_h: img.height,
                },
            ));
        }
    }
    Ok((views, geometry))
}

/// Splits `images` into runs whose views fit one detector call of `max_views`.
fn chunks_by_views(images: &[ImageRef<'_>], cfg: &DeviceConfig) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    let (mut start, mut views) = (0, 0);
    for (i, img) in images.iter().enumerate() {
        let n = plan_tiles(img.width, img.height, &cfg.detect).len();
        if n > cfg.max_views {
            return Err(Error::invalid(
                "device pipeline",
                format!(
                    "image {i} needs {n} views, more than max_views {}",
                    cfg.max_views
                ),
            ));
        }
        if views + n > cfg.max_views {
            out.push((start, i));
            (start, views) = (i, 0);
        }
        views += n;
    }
    if start < images.len() {
        out.push((start, images.len()));
    }
    Ok(out)
}

/// Runs `stages` over `images` in runs whose views fit one detector call (`cfg.max_views`),
/// faces embedded in batches of `cfg.max_faces`.
/// With `times`, the backend is synchronised after every stage and the stage times added.
pub fn analyze_with<S: Stages>(
    stages: &mut S,
    cfg: &DeviceConfig,
    images: &[ImageRef<'_>],
    mut times: Option<&mut StageTimes>,
) -> Result<Vec<Vec<DeviceFace>>> {
    let mut out = Vec::with_capacity(images.len());
    let mut lap = |stages: &mut S, slot: fn(&mut StageTimes) -> &mut Duration, t: &mut Instant| {
        if let Some(times) = times.as_deref_mut() {
            stages.sync()?;
            *slot(times) += t.elapsed();
            *t = Instant::now();
        }
        Ok::<(), Error>(())
    };
    for (start, end) in chunks_by_views(images, cfg)? {
        let chunk = &images[start..end];
        let (views, geometry) = tile_views(chunk, &cfg.detect)?;
        let mut t = Instant::now();
        let pixels = stages.upload(chunk)?;
        lap(stages, |s| &mut s.upload, &mut t)?;
        let faces = stages.detect(chunk, &pixels, &views, &geometry)?;
        lap(stages, |s| &mut s.detect, &mut t)?;
        if faces.len() != chunk.len() {
            return Err(Error::invalid(
                "device pipeline",
                format!("{} results for {} images", faces.len(), chunk.len()),
            ));
        }
        let mut jobs = Vec::new();
        let mut found: Vec<Vec<Face>> = Vec::with_capacity(chunk.len());
        for (i, f) in faces.into_iter().enumerate() {
            let f = f.ok_or_else(|| {
                Error::invalid(
                    "device pipeline",
                    format!("image {i}: more candidates than the device NMS holds"),
                )
            })?;
            for face in &f {
                let inv = Similarity::estimate(&face.landmarks, &TEMPLATE).inverse();
                jobs.push(WarpJob {
                    image: i,
                    inverse: Affine {
                        a: inv.a,
                        b: inv.b,
                        tx: inv.tx,
                        ty: inv.ty,
                    },
                });
            }
            found.push(f);
        }
        lap(stages, |s| &mut s.align, &mut t)?;
        let dim = stages.embedding_dim();
        let crop_len = CROP * CROP * 3;
        let mut vectors = Vec::with_capacity(jobs.len());
        for batch in jobs.chunks(cfg.max_faces.max(1)) {
            let (v, c) = stages.embed(chunk, &pixels, batch)?;
            if v.len() != batch.len() * dim || c.len() != batch.len() * crop_len {
                return Err(Error::invalid(
                    "device pipeline",
                    format!(
                        "embedder returned {} values for {} faces",
                        v.len(),
                        batch.len()
                    ),
                ));
            }
            vectors.extend(
                v.chunks_exact(dim)
                    .map(<[f32]>::to_vec)
                    .zip(c.chunks_exact(crop_len).map(<[u8]>::to_vec)),
            );
        }
        lap(stages, |s| &mut s.embed, &mut t)?;
        let mut vectors = vectors.into_iter();
        out.extend(found.into_iter().map(|faces| {
            faces
                .into_iter()
                .filter_map(|face| {
                    vectors.next().map(|(embedding, crop)| DeviceFace {
                        face,
                        crop,
                        embedding,
                    })
                })
                .collect::<Vec<_>>()
        }));
    }
    if let Some(times) = times {
        times.images += images.len();
        times.faces += out.iter().map(Vec::len).sum::<usize>();
    }
    Ok(out)
}

/// Deterministic values in [-1, 1] (xorshift), for the start-up check and benchmarks.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

//! Which engine analyses the batches: the CPU pipeline (ONNX Runtime), or the device pipeline
//! (`likeness_kernels::device`, our graph executor on CUDA) with the CPU pipeline as its
//! fallback. [`select`] makes the choice once at start-up and gives the one log line that says
//! which and why: `auto` takes the device only when a GPU, NVRTC and cuBLAS are present, the
//! configured models have a device route, all device memory could be allocated and the device
//! agrees with the CPU twin on a start-up check; otherwise it stays on the CPU and names the
//! reason. `cuda` turns any of those reasons into a start-up error.

use likeness_kernels::device::{DeviceConfig, DeviceFace, DevicePipeline};
use likeness_kernels::graph::Model;
use likeness_kernels::twin::letterbox::ImageRef;
use likeness_kernels::{Backend, gpu::Gpu, nvrtc::Compiler};
use likeness_models::manifest::{self, Role};
use likeness_models::{Face, PipelineConfig, Quality, RgbImage};

use crate::config::Config;
use crate::error::MatcherError;

/// The device pipeline and what turning its faces into the CPU pipeline's `Face` needs.
pub struct DeviceEngine {
    pipe: DevicePipeline,
    cfg: PipelineConfig,
    /// Consecutive failed batches; past [`MAX_FAILURES`] the device is given up.
    failures: u32,
}

impl std::fmt::Debug for DeviceEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceEngine")
            .field("pipe", &self.pipe)
            .field("failures", &self.failures)
            .finish()
    }
}

/// Failed device batches in a row after which the engine stays on the CPU.
pub const MAX_FAILURES: u32 = 3;

/// The engine chosen at start-up and the log line that says why.
#[derive(Debug)]
pub struct Selection {
    /// The device engine, when the device was chosen.
    pub device: Option<DeviceEngine>,
    /// `backend=cuda: ...` or `backend=cpu: ...`.
    pub log_line: String,
}

/// Chooses the engine for `cfg` (see the module documentation).
pub fn select(cfg: &Config) -> Result<Selection, MatcherError> {
    let choice = likeness_kernels::choose(cfg.backend.kind, true)
        .map_err(|e| MatcherError::Config(e.to_string()))?;
    if choice.backend == Backend::Cpu {
        return Ok(Selection {
            device: None,
            log_line: choice.log_line(),
        });
    }
    match DeviceEngine::start(cfg) {
        Ok((engine, check)) => Ok(Selection {
            log_line: format!(
                "backend=cuda: {}; {} MB of device memory; {check}",
                choice.reason,
                engine.pipe.device_bytes() / 1_000_000
            ),
            device: Some(engine),
        }),
        Err(why) if cfg.backend.kind == Backend::Cuda => Err(MatcherError::Config(format!(
            "backend.kind = \"cuda\" but the device pipeline cannot run: {why}; set it to \"auto\" or \"cpu\""
        ))),
        Err(why) => Ok(Selection {
            device: None,
            log_line: format!(
                "backend=cpu: {} present, but the device pipeline cannot run: {why}",
                choice.reason
            ),
        }),
    }
}

impl DeviceEngine {
    /// Opens device 0, plans and allocates everything, and runs the start-up check. Returns
    /// the engine and the check's summary, or why the device cannot be used.
    fn start(cfg: &Config) -> Result<(Self, String), String> {
        let p = &cfg.pipeline;
        let det = manifest::find(&p.detector).map_err(|e| e.to_string())?;
        // The device runs its own fp32 kernels: an 8-bit embedder (the CPU default) is
        // replaced by the fp32 model it was made from (embeddings agree to cosine ~0.99).
        let emb = manifest::find(&p.embedder)
            .and_then(manifest::fp32_source)
            .map_err(|e| e.to_string())?;
        if !matches!(
            det.role,
            Role::Detector(likeness_models::manifest::DetectorFamily::YuNet)
        ) || det.fixed_input.is_some()
        {
            return Err(format!(
                "the device route needs a YuNet detector with dynamic input (\"yunet_s\"), not \"{}\"",
                det.id
            ));
        }
        if !emb.dynamic_batch {
            return Err(format!(
                "the device route needs an embedder with a dynamic batch, not \"{}\"",
                emb.id
            ));
        }
        // Verifies presence and sha256 as the CPU pipeline does.
        likeness_models::pipeline::check_models(p).map_err(|e| e.to_string())?;
        likeness_models::manifest::verify(emb, &p.models_dir).map_err(|e| e.to_string())?;
        let detector = Model::load(&p.models_dir.join(det.file)).map_err(|e| e.to_string())?;
        let embedder = Model::load(&p.models_dir.join(emb.file)).map_err(|e| e.to_string())?;
        let compiler = Compiler::new(Some(likeness_kernels::nvrtc::default_cache_dir()))
            .map_err(|e| e.to_string())?;
        let gpu = Gpu::new(0, &compiler).map_err(|e| e.to_string())?;
        let device_cfg = DeviceConfig {
            detect: p.detect,
            max_views: cfg.backend.device_max_views,
            max_faces: cfg.backend.device_max_faces,
        };
        let mut pipe = DevicePipeline::new(gpu, &detector, &embedder, device_cfg)
            .map_err(|e| e.to_string())?;
        let check = pipe.self_check().map_err(|e| e.to_string())?;
        Ok((
            Self {
                pipe,
                cfg: p.clone(),
                failures: 0,
            },
            check,
        ))
    }

    /// Whether the engine has given up on the device after repeated failures.
    pub fn given_up(&self) -> bool {
        self.failures >= MAX_FAILURES
    }

    /// Analyses decoded images on the device, faces with a score of at least `min_score`
    /// (which must not be below the configured detection threshold). A device error is
    /// returned (the caller runs the CPU pipeline instead) and counted.
    pub fn analyze(
        &mut self,
        images: &[&RgbImage],
        min_score: Option<f32>,
    ) -> Result<Vec<Vec<Face>>, String> {
        let refs: Vec<ImageRef<'_>> = images
            .iter()
            .map(|i| ImageRef {
                width: i.width,
                height: i.height,
                data: &i.data,
            })
            .collect();
        let got = match self.pipe.analyze(&refs) {
            Ok(g) => {
                self.failures = 0;
                g
            }
            Err(e) => {
                self.failures += 1;
                return Err(e.to_string());
            }
        };
        let floor = min_score.unwrap_or(self.cfg.detect.score_threshold);
        Ok(got
            .into_iter()
            .zip(images)
            .map(|(faces, img)| {
                faces
                    .into_iter()
                    .filter(|f| f.face.score >= floor)
                    .map(|f| self.face(f, img.to_source()))
                    .collect()
            })
            .collect())
    }

    /// Whether a request's `min_score` can be served by the device (which detects at the
    /// configured threshold and can only filter upwards).
    pub fn serves(&self, min_score: Option<f32>) -> bool {
        min_score.is_none_or(|s| s >= self.cfg.detect.score_threshold)
    }

    /// A device face in the file's pixels (`to_source`: from a reduced decode).
    fn face(&self, f: DeviceFace, to_source: (f32, f32)) -> Face {
        let mut detection = likeness_models::detect::Detection {
            bbox: f.face.bbox,
            landmarks: f.face.landmarks,
            score: f.face.score,
        };
        detection.scale_by(to_source);
        let sharpness = likeness_models::align::sharpness(&f.crop);
        Face {
            quality: Quality::assess(&detection, sharpness, &self.cfg.quality),
            detection,
            embedding: f.embedding,
        }
    }
}

//! CPU twin of the device pipeline ([`crate::device`]): the same stages with the CPU twins
//! (letterbox, our graph executor, YuNet decoding + NMS, warp, L2) and the same orchestration
//! ([`crate::device::analyze_with`]). It is the reference the device pipeline is compared with
//! and it tests the orchestration where there is no GPU (`tests/graph.rs`: against ONNX
//! Runtime on real photos).

use crate::device::{DeviceConfig, DeviceFace, Stages, analyze_with};
use crate::error::{Error, Result};
use crate::graph::{Model, Plan};
use crate::twin::detect::{self, Face, Level, ViewGeometry, ViewOutputs};
use crate::twin::graph::{self, Workspace};
use crate::twin::letterbox::{ImageRef, LetterboxView, Normalise, letterbox_batch};
use crate::twin::search::l2_normalize_rows;
use crate::twin::warp::{WarpJob, warp_batch};

/// The device pipeline's stages on the CPU.
#[derive(Debug)]
pub struct TwinPipeline {
    cfg: DeviceConfig,
    detector: Model,
    embedder: Model,
    embedding_dim: usize,
    plans: Vec<(Vec<usize>, Plan)>,
    ws: Workspace,
    input: Vec<f32>,
}

impl TwinPipeline {
    /// The twin of a device pipeline with these graphs and settings.
    pub fn new(detector: Model, embedder: Model, cfg: DeviceConfig) -> Result<Self> {
        cfg.validate()?;
        let probe = Plan::new(&embedder, &[1, 3, 112, 112])?;
        let embedding_dim = probe
            .outputs
            .first()
            .and_then(|o| o.dims.get(1).copied())
            .ok_or_else(|| Error::invalid("twin pipeline", "the embedder has no [n, d] output"))?;
        Ok(Self {
            cfg,
            detector,
            embedder,
            embedding_dim,
            plans: Vec::new(),
            ws: Workspace::default(),
            input: Vec::new(),
        })
    }

    /// Faces of every image, best first, with crops and embeddings.
    pub fn analyze(&mut self, images: &[ImageRef<'_>]) -> Result<Vec<Vec<DeviceFace>>> {
        let cfg = self.cfg.clone();
        analyze_with(self, &cfg, images, None)
    }

    fn run(&mut self, detector: bool, dims: Vec<usize>) -> Result<Vec<graph::Tensor>> {
        let k = match self.plans.iter().position(|(d, _)| *d == dims) {
            Some(k) => k,
            None => {
                let model = if detector {
                    &self.detector
                } else {
                    &self.embedder
                };
                let plan = Plan::new(model, &dims)?;
                self.plans.push((dims, plan));
                self.plans.len() - 1
            }
        };
        graph::run(&self.plans[k].1, &self.input, &mut self.ws)
    }
}

impl Stages for TwinPipeline {
    type Pixels = ();

    fn upload(&mut self, _images: &[ImageRef<'_>]) -> Result<()> {
        Ok(())
    }

    fn detect(
        &mut self,
        images: &[ImageRef<'_>],
        _pixels: &(),
        views: &[LetterboxView],
        geometry: &[(usize, ViewGeometry)],
    ) -> Result<Vec<Option<Vec<Face>>>> {
        let side = self.cfg.detect.input_size as usize;
        let mut input = std::mem::take(&mut self.input);
        letterbox_batch(images, views, Normalise::YUNET, &mut input)?;
        self.input = input;
        let outs = self.run(true, vec![views.len(), 3, side, side])?;
        if outs.len() != 12 {
            return Err(Error::invalid(
                "twin pipeline",
                "the detector has not 12 outputs",
            ));
        }
        let cells: Vec<usize> = detect::STRIDES
            .iter()
            .map(|&st| (side / st as usize) * (side / st as usize))
            .collect();
        let per_view: Vec<ViewOutputs<'_>> = geometry
            .iter()
            .enumerate()
            .map(|(vi, &(image, g))| {
                let level = |li: usize| {
                    let c = cells[li];
                    Level {
                        stride: detect::STRIDES[li],
                        cls: &outs[li].data[vi * c..(vi + 1) * c],
                        obj: &outs[3 + li].data[vi * c..(vi + 1) * c],
                        bbox: &outs[6 + li].data[vi * c * 4..(vi + 1) * c * 4],
                        kps: &outs[9 + li].data[vi * c * 10..(vi + 1) * c * 10],
                    }
                };
                ViewOutputs {
                    image,
                    input_w: self.cfg.detect.input_size,
                    geometry: g,
                    levels: [level(0), level(1), level(2)],
                }
            })
            .collect();
        Ok(detect::detect_batch(
            &per_view,
            images.len(),
            self.cfg.detect.score_threshold,
            self.cfg.detect.nms_iou,
            self.cfg.detect.max_faces,
        )?
        .into_iter()
        .map(Some)
        .collect())
    }

    fn embed(
        &mut self,
        images: &[ImageRef<'_>],
        _pixels: &(),
        jobs: &[WarpJob],
    ) -> Result<(Vec<f32>, Vec<u8>)> {
        let (mut rgb, mut input) = (Vec::new(), std::mem::take(&mut self.input));
        warp_batch(images, jobs, &mut rgb, &mut input)?;
        self.input = input;
        let outs = self.run(false, vec![jobs.len(), 3, 112, 112])?;
        let mut v = outs
            .into_iter()
            .next()
            .ok_or_else(|| Error::invalid("twin pipeline", "the embedder has no output"))?
            .data;
        l2_normalize_rows(&mut v, self.embedding_dim())?;
        Ok((v, rgb))
    }

    fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }
}

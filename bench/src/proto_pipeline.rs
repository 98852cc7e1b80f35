//! A prototype of a cheaper detection plan, measured by the `speed` benchmark (`--proto`)
//! as evidence for changes to `likeness_models` (which it does not change). Everything else
//! (decode, NMS, alignment, sharpness, embedder, parameters) is the production code.
//!
//! The production plan runs the detector on the whole image letterboxed into 640x640 plus,
//! for large images, on overlapping 640x640 tiles of the image scaled to a long side of at
//! most 1920 (160 px overlap), each tile re-resampled from the full-resolution image. The
//! prototype runs YuNet's dynamic input instead on
//!
//! 1. the image scaled to the tile scale, once, as one input (W and H rounded up to 32):
//!    the same pixels the tiles see, without the overlap (tiles cover up to 2x the area) and
//!    without faces cut by tile edges;
//! 2. the whole image scaled to a long side of 640, resampled from the tile-scale image
//!    (not from the full-resolution one), padded only to a multiple of 32, not to 640x640.
//!
//! With `prefetch`, a second thread decodes the next images while this one detects and
//! embeds (the production pipeline decodes on the calling thread, between inferences).

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fast_image_resize as fr;
use likeness_models::align::{self, CROP, Similarity, TEMPLATE};
use likeness_models::detect::{self, Detection};
use likeness_models::{Pipeline, RgbImage, StageTimings};
use ort::session::Session;
use ort::value::TensorRef;

/// A face the prototype found: detection, sharpness and L2-normalised embedding.
#[derive(Debug, Clone)]
pub struct ProtoFace {
    /// Box, landmarks and score in image pixels.
    pub detection: Detection,
    /// Laplacian variance of the aligned crop.
    pub sharpness: f32,
    /// Normalised embedding.
    pub embedding: Vec<f32>,
}

/// The prototype's own detector session plus the production pipeline for the rest.
pub struct ProtoPipeline<'a> {
    pipeline: &'a Pipeline,
    detector: Session,
    resizer: fr::Resizer,
    scaled: Vec<u8>,
    whole: Vec<u8>,
    input: Vec<f32>,
    /// Time spent preparing detector inputs (resizing and filling), summed.
    pub prep: Duration,
    /// Time spent in detector inference, summed.
    pub infer: Duration,
    /// Detector input pixels, summed (millions).
    pub input_mpix: f64,
}

fn round32(x: u32) -> u32 {
    x.div_ceil(32) * 32
}

fn rounded(x: f32) -> u32 {
    x.round().max(1.0) as u32
}

impl<'a> ProtoPipeline<'a> {
    /// Opens a second YuNet-s session (`yunet_s_dynamic.onnx` in `models_dir`) with the
    /// pipeline's thread count; the pipeline must be loaded with the YuNet-s detector.
    pub fn new(pipeline: &'a Pipeline, models_dir: &Path) -> anyhow::Result<Self> {
        let cfg = pipeline.config();
        if cfg.detector != "yunet_s" {
            anyhow::bail!("the prototype supports the yunet_s detector only");
        }
        let spec = likeness_models::manifest::find(&cfg.detector)?;
        let detector =
            likeness_models::runtime::open_session(&models_dir.join(spec.file), cfg.threads)?;
        Ok(Self {
            pipeline,
            detector,
            resizer: fr::Resizer::new(),
            scaled: Vec::new(),
            whole: Vec::new(),
            input: Vec::new(),
            prep: Duration::ZERO,
            infer: Duration::ZERO,
            input_mpix: 0.0,
        })
    }

    /// Resizes `src` (`sw x sh` RGB) to `dw x dh` into `dst` (bilinear convolution, as the
    /// production letterbox).
    fn resize(
        resizer: &mut fr::Resizer,
        src: &[u8],
        (sw, sh): (u32, u32),
        dst: &mut Vec<u8>,
        (dw, dh): (u32, u32),
    ) -> anyhow::Result<()> {
        let s = fr::images::ImageRef::new(sw, sh, src, fr::PixelType::U8x3)?;
        dst.clear();
        dst.resize((dw * dh * 3) as usize, 0);
        let mut d = fr::images::Image::from_slice_u8(dw, dh, dst, fr::PixelType::U8x3)?;
        let opts = fr::ResizeOptions::new()
            .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
        resizer.resize(&s, &mut d, &opts)?;
        Ok(())
    }

    /// Runs YuNet on `pix` (`cw x ch` RGB, shown at `scale` input pixels per image pixel),
    /// padded at the right and bottom to multiples of 32; appends detections in image pixels.
    fn detect_view(
        &mut self,
        pix: &[u8],
        (cw, ch): (u32, u32),
        scale: f32,
        (img_w, img_h): (u32, u32),
        threshold: f32,
        out: &mut Vec<Detection>,
    ) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let (w, h) = (round32(cw), round32(ch));
        let plane = (w * h) as usize;
        self.input.clear();
        self.input.resize(3 * plane, 0.0);
        let (b, rest) = self.input.split_at_mut(plane);
        let (g, r) = rest.split_at_mut(plane);
        for (y, row) in pix.chunks_exact(cw as usize * 3).enumerate() {
            let base = y * w as usize;
            for (x, px) in row.chunks_exact(3).enumerate() {
                b[base + x] = f32::from(px[2]);
                g[base + x] = f32::from(px[1]);
                r[base + x] = f32::from(px[0]);
            }
        }
        self.input_mpix += f64::from(w) * f64::from(h) / 1e6;
        let t1 = Instant::now();
        self.prep += t1 - t0;
        let tensor =
            TensorRef::from_array_view(([1usize, 3, h as usize, w as usize], &self.input[..]))?;
        let outputs = self.detector.run(ort::inputs![tensor])?;
        self.infer += t1.elapsed();
        let mut outs: Vec<&[f32]> = Vec::with_capacity(12);
        for k in 0..12 {
            outs.push(outputs[k].try_extract_tensor::<f32>()?.1);
        }
        let inv = 1.0 / scale;
        let (iw, ih) = (img_w as f32, img_h as f32);
        for (li, stride) in [8u32, 16, 32].into_iter().enumerate() {
            let cols = (w / stride) as usize;
            let s = stride as f32;
            let (cls, obj, bbox, kps) = (outs[li], outs[3 + li], outs[6 + li], outs[9 + li]);
            for (idx, (&c, &o)) in cls.iter().zip(obj).enumerate() {
                let score = (c.clamp(0.0, 1.0) * o.clamp(0.0, 1.0)).sqrt();
                if score < threshold {
                    continue;
                }
                let (Some(bb), Some(k)) = (
                    bbox.get(idx * 4..idx * 4 + 4),
                    kps.get(idx * 10..idx * 10 + 10),
                ) else {
                    continue;
                };
                let col = (idx % cols) as f32;
                let row = (idx / cols) as f32;
                let cx = (col + bb[0]) * s;
                let cy = (row + bb[1]) * s;
                let bw = bb[2].exp() * s;
                let bh = bb[3].exp() * s;
                let mut landmarks = [[0f32; 2]; 5];
                for (i, lm) in landmarks.iter_mut().enumerate() {
                    *lm = [(col + k[2 * i]) * s * inv, (row + k[2 * i + 1]) * s * inv];
                }
                let d = Detection {
                    bbox: [
                        ((cx - bw / 2.0) * inv).clamp(0.0, iw),
                        ((cy - bh / 2.0) * inv).clamp(0.0, ih),
                        ((cx + bw / 2.0) * inv).clamp(0.0, iw),
                        ((cy + bh / 2.0) * inv).clamp(0.0, ih),
                    ],
                    landmarks,
                    score,
                };
                if d.width() > 1.0 && d.height() > 1.0 {
                    out.push(d);
                }
            }
        }
        Ok(())
    }

    /// Detections of one image after NMS, with the production parameters.
    pub fn detect(&mut self, img: &RgbImage) -> anyhow::Result<Vec<Detection>> {
        let p = self.pipeline.config().detect;
        let side = p.input_size as f32;
        let long = img.width.max(img.height) as f32;
        let mut dets = Vec::new();
        let tile_long = long.min(p.tile_max_side as f32);
        let tiled = p.tile_max_side != 0 && tile_long > side * p.tile_min_factor;
        let scale = side / long;
        let whole = (
            rounded(img.width as f32 * scale).min(p.input_size),
            rounded(img.height as f32 * scale).min(p.input_size),
        );
        let t0 = Instant::now();
        let mut whole_px = std::mem::take(&mut self.whole);
        if tiled {
            let ts = tile_long / long;
            let sz = (
                rounded(img.width as f32 * ts),
                rounded(img.height as f32 * ts),
            );
            let mut scaled = std::mem::take(&mut self.scaled);
            Self::resize(
                &mut self.resizer,
                &img.data,
                (img.width, img.height),
                &mut scaled,
                sz,
            )?;
            Self::resize(&mut self.resizer, &scaled, sz, &mut whole_px, whole)?;
            self.prep += t0.elapsed();
            let res = self.detect_view(
                &scaled,
                sz,
                ts,
                (img.width, img.height),
                p.score_threshold,
                &mut dets,
            );
            self.scaled = scaled;
            res?;
        } else {
            Self::resize(
                &mut self.resizer,
                &img.data,
                (img.width, img.height),
                &mut whole_px,
                whole,
            )?;
            self.prep += t0.elapsed();
        }
        let res = self.detect_view(
            &whole_px,
            whole,
            scale,
            (img.width, img.height),
            p.score_threshold,
            &mut dets,
        );
        self.whole = whole_px;
        res?;
        Ok(detect::nms(dets, p.nms_iou, p.max_faces))
    }

    /// Aligns and embeds the faces of one image (as `Pipeline::analyze` does).
    pub fn align_embed(
        &self,
        img: &RgbImage,
        dets: Vec<Detection>,
        t: &mut StageTimings,
    ) -> anyhow::Result<Vec<ProtoFace>> {
        let t0 = Instant::now();
        let plane = CROP * CROP;
        let mut crops = vec![0f32; dets.len() * 3 * plane];
        let mut rgb = vec![0u8; plane * 3];
        let mut sharp = Vec::with_capacity(dets.len());
        for (j, d) in dets.iter().enumerate() {
            let m = Similarity::estimate(&d.landmarks, &TEMPLATE);
            align::warp(img, &m, &mut rgb);
            sharp.push(align::sharpness(&rgb));
            align::to_embedder_input(&rgb, &mut crops[j * 3 * plane..(j + 1) * 3 * plane]);
        }
        t.align += t0.elapsed();
        let t1 = Instant::now();
        let max = self.pipeline.config().max_embed_batch.max(1);
        let mut embeddings = Vec::with_capacity(dets.len());
        for (k, chunk) in crops.chunks(max * 3 * plane).enumerate() {
            let n = chunk.len() / (3 * plane);
            embeddings.extend(self.pipeline.embed(chunk, n)?);
            debug_assert_eq!(embeddings.len(), (k * max + n).min(dets.len()));
        }
        t.embed += t1.elapsed();
        Ok(dets
            .into_iter()
            .zip(sharp)
            .zip(embeddings)
            .map(|((detection, sharpness), embedding)| ProtoFace {
                detection,
                sharpness,
                embedding,
            })
            .collect())
    }

    /// Decodes, detects, aligns and embeds every image in order; with `prefetch` a second
    /// thread decodes ahead (then `t.decode` is the time spent waiting for it). Returns
    /// the faces of every image.
    pub fn run(
        &mut self,
        blobs: &[Vec<u8>],
        prefetch: bool,
        t: &mut StageTimings,
    ) -> anyhow::Result<Vec<Vec<ProtoFace>>> {
        let mut out = Vec::with_capacity(blobs.len());
        if !prefetch {
            for b in blobs {
                let t0 = Instant::now();
                let img = self.pipeline.decode(b)?;
                t.decode += t0.elapsed();
                out.push(self.one(&img, t)?);
            }
            return Ok(out);
        }
        let pipeline = self.pipeline;
        std::thread::scope(|s| -> anyhow::Result<()> {
            let (tx, rx) = mpsc::sync_channel(2);
            s.spawn(move || {
                for b in blobs {
                    if tx.send(pipeline.decode(b)).is_err() {
                        break;
                    }
                }
            });
            for _ in blobs {
                let t0 = Instant::now();
                let img = rx.recv()??;
                t.decode += t0.elapsed();
                out.push(self.one(&img, t)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn one(&mut self, img: &RgbImage, t: &mut StageTimings) -> anyhow::Result<Vec<ProtoFace>> {
        let t0 = Instant::now();
        let dets = self.detect(img)?;
        t.detect += t0.elapsed();
        self.align_embed(img, dets, t)
    }
}

//! Twin of `yunet.cu`: decoding YuNet's per-stride outputs into candidate faces (score =
//! sqrt(cls * obj), box centre and size from the cell, five landmarks), mapping them from
//! detector-input to image coordinates (dropping faces cut by an interior tile edge), and
//! greedy non-maximum suppression per image (IoU, plus suppression of a box 80 % inside a
//! kept one). Same arithmetic, in the same order, as `models/src/detect.rs`.
//!
//! Every candidate carries a key (view, level, cell) so that the device, which finds
//! candidates in no particular order, sorts them exactly as the CPU's stable sort does:
//! by score, best first, ties in key order.

use crate::error::{Error, Result};

/// A detected face in detector-input or image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// Box `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Left eye, right eye, nose tip, left and right mouth corners.
    pub landmarks: [[f32; 2]; 5],
    /// `sqrt(cls * obj)`.
    pub score: f32,
}

/// A candidate with its sort key: `view << 20 | level << 18 | cell`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The face.
    pub face: Face,
    /// Tie-breaking key (the CPU's concatenation order).
    pub key: u32,
}

/// YuNet's strides, in output order.
pub const STRIDES: [u32; 3] = [8, 16, 32];
/// Most views per batch the keys can tell apart.
pub const MAX_VIEWS: usize = 1 << 12;
/// Most cells per level the keys can tell apart.
pub const MAX_CELLS: usize = 1 << 18;

/// Raw outputs of one view for one stride (already sigmoided by the model).
#[derive(Debug, Clone, Copy)]
pub struct Level<'a> {
    /// Stride in input pixels.
    pub stride: u32,
    /// `cells` class scores.
    pub cls: &'a [f32],
    /// `cells` objectness.
    pub obj: &'a [f32],
    /// `cells x 4` box offsets.
    pub bbox: &'a [f32],
    /// `cells x 10` landmark offsets.
    pub kps: &'a [f32],
}

/// Decodes the levels of view number `view` (input `input_w` pixels wide) into candidates in
/// input coordinates, appended to `out` in level and cell order.
pub fn decode_yunet(
    view: usize,
    levels: &[Level<'_>],
    input_w: u32,
    threshold: f32,
    out: &mut Vec<Candidate>,
) -> Result<()> {
    if view >= MAX_VIEWS {
        return Err(Error::invalid(
            "yunet_decode",
            format!("view {view} beyond {MAX_VIEWS}"),
        ));
    }
    for (li, l) in levels.iter().enumerate() {
        let cells = l.cls.len();
        if l.obj.len() != cells || l.bbox.len() != cells * 4 || l.kps.len() != cells * 10 {
            return Err(Error::invalid(
                "yunet_decode",
                format!("level {li}: output lengths do not match {cells} cells"),
            ));
        }
        if cells > MAX_CELLS || l.stride == 0 {
            return Err(Error::invalid(
                "yunet_decode",
                format!("level {li}: {cells} cells at stride {}", l.stride),
            ));
        }
        let cols = (input_w / l.stride) as usize;
        let s = l.stride as f32;
        for idx in 0..cells {
            let (c, o) = (l.cls[idx], l.obj[idx]);
            let score = (c.clamp(0.0, 1.0) * o.clamp(0.0, 1.0)).sqrt();
            if score < threshold {
                continue;
            }
            let b = &l.bbox[idx * 4..idx * 4 + 4];
            let k = &l.kps[idx * 10..idx * 10 + 10];
            let col = (idx % cols) as f32;
            let row = (idx / cols) as f32;
            let cx = (col + b[0]) * s;
            let cy = (row + b[1]) * s;
            let w = b[2].exp() * s;
            let h = b[3].exp() * s;
            let mut landmarks = [[0f32; 2]; 5];
            for (i, lm) in landmarks.iter_mut().enumerate() {
                *lm = [(col + k[2 * i]) * s, (row + k[2 * i + 1]) * s];
            }
            out.push(Candidate {
                face: Face {
                    bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                    landmarks,
                    score,
                },
                key: ((view as u32) << 20) | ((li as u32) << 18) | idx as u32,
            });
        }
    }
    Ok(())
}

/// Where a view lies in its image (as `models::detect::View`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewGeometry {
    /// Left edge in image pixels.
    pub x0: f32,
    /// Top edge in image pixels.
    pub y0: f32,
    /// Input pixels per image pixel.
    pub scale: f32,
    /// Content width in input pixels.
    pub content_w: u32,
    /// Content height in input pixels.
    pub content_h: u32,
    /// Edges inside the image (left, top, right, bottom).
    pub interior: [bool; 4],
    /// Image width.
    pub img_w: u32,
    /// Image height.
    pub img_h: u32,
}

/// Maps one candidate from input to image coordinates; `None` when it touches an interior
/// edge of its view or ends up no more than 1 px wide or high.
pub fn map_to_image(c: &Candidate, v: &ViewGeometry) -> Option<Candidate> {
    let margin = 2.0f32;
    let (cw, ch) = (v.content_w as f32, v.content_h as f32);
    let [x1, y1, x2, y2] = c.face.bbox;
    if (v.interior[0] && x1 <= margin)
        || (v.interior[1] && y1 <= margin)
        || (v.interior[2] && x2 >= cw - margin)
        || (v.interior[3] && y2 >= ch - margin)
    {
        return None;
    }
    let inv = 1.0 / v.scale;
    let (w, h) = (v.img_w as f32, v.img_h as f32);
    let mut out = *c;
    let b = &mut out.face.bbox;
    b[0] = (v.x0 + b[0] * inv).clamp(0.0, w);
    b[1] = (v.y0 + b[1] * inv).clamp(0.0, h);
    b[2] = (v.x0 + b[2] * inv).clamp(0.0, w);
    b[3] = (v.y0 + b[3] * inv).clamp(0.0, h);
    for lm in &mut out.face.landmarks {
        lm[0] = v.x0 + lm[0] * inv;
        lm[1] = v.y0 + lm[1] * inv;
    }
    let b = out.face.bbox;
    (b[2] - b[0] > 1.0 && b[3] - b[1] > 1.0).then_some(out)
}

/// Intersection over union.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Whether `inner` lies mostly (80 % of its area) inside `outer`.
pub fn contained(inner: &[f32; 4], outer: &[f32; 4]) -> bool {
    let ix = (inner[2].min(outer[2]) - inner[0].max(outer[0])).max(0.0);
    let iy = (inner[3].min(outer[3]) - inner[1].max(outer[1])).max(0.0);
    let area = (inner[2] - inner[0]).max(0.0) * (inner[3] - inner[1]).max(0.0);
    area > 0.0 && ix * iy / area > 0.8
}

/// Greedy NMS of one image's candidates: sorted by score (best first, ties by key), a
/// candidate is kept when its IoU with every kept one is at most `iou_threshold` and it is
/// not mostly inside one; at most `max` are kept.
pub fn nms(mut cands: Vec<Candidate>, iou_threshold: f32, max: usize) -> Vec<Candidate> {
    cands.sort_by(|a, b| {
        b.face
            .score
            .total_cmp(&a.face.score)
            .then(a.key.cmp(&b.key))
    });
    let mut keep: Vec<Candidate> = Vec::with_capacity(cands.len().min(max));
    for d in cands {
        if keep.len() >= max {
            break;
        }
        if keep.iter().all(|k| {
            iou(&k.face.bbox, &d.face.bbox) <= iou_threshold
                && !contained(&d.face.bbox, &k.face.bbox)
        }) {
            keep.push(d);
        }
    }
    keep
}

/// Raw outputs of one view of the batch and where it lies in its image.
#[derive(Debug, Clone)]
pub struct ViewOutputs<'a> {
    /// Which image of the batch.
    pub image: usize,
    /// Input width (the cell grid's width is `input_w / stride`).
    pub input_w: u32,
    /// Placement in the image.
    pub geometry: ViewGeometry,
    /// The three levels.
    pub levels: [Level<'a>; 3],
}

/// Decoding, mapping and NMS of a whole batch: per image its faces, best first. This is
/// what `yunet_decode` + `nms_per_image` compute on the device.
pub fn detect_batch(
    views: &[ViewOutputs<'_>],
    n_images: usize,
    threshold: f32,
    iou_threshold: f32,
    max_faces: usize,
) -> Result<Vec<Vec<Face>>> {
    let mut per_image: Vec<Vec<Candidate>> = vec![Vec::new(); n_images];
    let mut buf = Vec::new();
    for (vi, v) in views.iter().enumerate() {
        let list = per_image.get_mut(v.image).ok_or_else(|| {
            Error::invalid(
                "yunet_decode",
                format!("view of image {} in a batch of {n_images}", v.image),
            )
        })?;
        buf.clear();
        decode_yunet(vi, &v.levels, v.input_w, threshold, &mut buf)?;
        list.extend(buf.iter().filter_map(|c| map_to_image(c, &v.geometry)));
    }
    Ok(per_image
        .into_iter()
        .map(|c| {
            nms(c, iou_threshold, max_faces)
                .into_iter()
                .map(|c| c.face)
                .collect()
        })
        .collect())
}

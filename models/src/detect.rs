//! Detection: planning the detector views of an image (the whole image at a long side of 640
//! plus, for large photos, the whole image at a long side of up to 1920; overlapping tiles for
//! fixed-input detectors), filling detector inputs, decoding YuNet/SCRFD outputs, and
//! non-maximum suppression.

use fast_image_resize as fr;

use crate::error::{Error, Result};
use crate::manifest::DetectorFamily;

/// A detected face in image coordinates.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Detection {
    /// Box `[x1, y1, x2, y2]` in pixels.
    pub bbox: [f32; 4],
    /// Five landmarks: left eye, right eye, nose tip, left and right mouth corners.
    pub landmarks: [[f32; 2]; 5],
    /// Detector confidence in `[0, 1]`.
    pub score: f32,
}

impl Detection {
    /// Scales box and landmarks by `(fx, fy)` (e.g. from a reduced decode to the file's
    /// pixels).
    pub fn scale_by(&mut self, (fx, fy): (f32, f32)) {
        if (fx, fy) == (1.0, 1.0) {
            return;
        }
        self.bbox = [
            self.bbox[0] * fx,
            self.bbox[1] * fy,
            self.bbox[2] * fx,
            self.bbox[3] * fy,
        ];
        for lm in &mut self.landmarks {
            lm[0] *= fx;
            lm[1] *= fy;
        }
    }

    /// Box width.
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }
    /// Box height.
    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }
}

/// How detection covers an image.
///
/// With a detector whose input size is dynamic (YuNet-s/-n, SCRFD: the production case) an
/// image gets at most two views: the whole image scaled to a long side of `input_size`, and,
/// for large photos, the whole image scaled to a long side of at most `tile_max_side` (the
/// "detail" view). Each is padded at the right and bottom only up to a multiple of 32. A
/// detector with a fixed square input instead sees the whole image letterboxed into
/// `input_size x input_size` plus overlapping `input_size` tiles of the detail-scale image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectParams {
    /// Long side of the whole-image view (for a fixed-input detector: its square input side),
    /// a multiple of 32.
    pub input_size: u32,
    /// Minimum detection score.
    pub score_threshold: f32,
    /// IoU above which the weaker of two boxes is suppressed.
    pub nms_iou: f32,
    /// Detail view: the image scaled so that its longer side is at most this many pixels is
    /// detected as well (for a fixed-input detector: covered with overlapping `input_size`
    /// tiles), in addition to the whole-image view. 0 disables it.
    pub tile_max_side: u32,
    /// The detail view is used only when the (scaled) longer side exceeds `input_size` times
    /// this.
    pub tile_min_factor: f32,
    /// Fixed-input detectors only: overlap between neighbouring tiles, in input pixels; a face
    /// smaller than this is seen whole in some tile.
    pub tile_overlap: u32,
    /// At most this many faces per image (highest scores kept).
    pub max_faces: usize,
    /// When an image that gets a detail view (a dynamic-input detector only) runs it.
    pub detail_view: DetailView,
    /// `when_hinted`: the whole-image view's candidates down to this score count as hints.
    pub detail_hint_score: f32,
    /// `when_hinted`: a candidate whose shorter box side in the whole-image view is below this
    /// (input pixels) hints at faces that only the detail view resolves.
    pub detail_hint_size: f32,
    /// `when_hinted`, detail view skipped: each face whose longer box side in the whole-image
    /// view is below this (input pixels) is detected again in a crop around it, scaled so that
    /// the face is this large (at most the detail scale), for its landmarks. 0 disables.
    pub refine_face_size: f32,
}

/// When the detail view of a large photo is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetailView {
    /// For every image large enough to get one (the plan before issue 16).
    Always,
    /// Only when the whole-image view shows a small face or a weak small candidate
    /// (`detail_hint_score`, `detail_hint_size`): a photo whose whole-image view shows only
    /// large faces, or none, is not detected a second time at the detail scale.
    WhenHinted,
}

impl DetectParams {
    /// Whether the whole-image view's `candidates` (input coordinates of that view, scored
    /// down to `detail_hint_score`) call for the detail view under `detail_view`.
    pub fn detail_hinted(&self, candidates: &[Detection]) -> bool {
        match self.detail_view {
            DetailView::Always => true,
            DetailView::WhenHinted => candidates.iter().any(|d| {
                d.score >= self.detail_hint_score
                    && d.width().min(d.height()) < self.detail_hint_size
            }),
        }
    }
}

impl Default for DetectParams {
    fn default() -> Self {
        Self {
            input_size: 640,
            score_threshold: 0.7,
            nms_iou: 0.3,
            tile_max_side: 1920,
            tile_min_factor: 1.5,
            tile_overlap: 160,
            max_faces: 500,
            detail_view: DetailView::WhenHinted,
            detail_hint_score: 0.3,
            detail_hint_size: 24.0,
            refine_face_size: 192.0,
        }
    }
}

impl DetectParams {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.input_size < 64 || !self.input_size.is_multiple_of(32) {
            return Err(format!(
                "input_size must be a multiple of 32 and at least 64, got {}",
                self.input_size
            ));
        }
        if !(0.0..=1.0).contains(&self.score_threshold) {
            return Err(format!(
                "score_threshold must be in [0, 1], got {}",
                self.score_threshold
            ));
        }
        if !(0.0..=1.0).contains(&self.nms_iou) {
            return Err(format!("nms_iou must be in [0, 1], got {}", self.nms_iou));
        }
        if self.tile_max_side != 0 && self.tile_overlap >= self.input_size / 2 {
            return Err(format!(
                "tile_overlap must be less than input_size/2 ({}), got {}",
                self.input_size / 2,
                self.tile_overlap
            ));
        }
        if self.max_faces == 0 {
            return Err("max_faces must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.detail_hint_score) {
            return Err(format!(
                "detail_hint_score must be in [0, 1], got {}",
                self.detail_hint_score
            ));
        }
        for (name, v) in [
            ("detail_hint_size", self.detail_hint_size),
            ("refine_face_size", self.refine_face_size),
        ] {
            if v.is_nan() || v < 0.0 {
                return Err(format!("{name} must be at least 0, got {v}"));
            }
        }
        Ok(())
    }

    /// The detail scale (input pixels per image pixel) of a `w x h` image, if it gets a
    /// detail view.
    pub fn detail_scale(&self, w: u32, h: u32) -> Option<f32> {
        if self.tile_max_side == 0 {
            return None;
        }
        let long = w.max(h) as f32;
        let detail_long = long.min(self.tile_max_side as f32);
        (detail_long > self.input_size as f32 * self.tile_min_factor).then(|| detail_long / long)
    }
}

/// The crop view that locates face `d` (image coordinates of a `w x h` image) again, when
/// the face's longer side is below `p.refine_face_size` pixels in the whole-image view (at
/// `whole_scale`): a square of twice that size around the face, at the scale that makes the
/// face `refine_face_size` pixels (at most `detail_scale`). Its edges count as interior, so
/// faces cut by them are dropped. `None` when the whole-image view already saw it as large.
pub fn refine_view(
    d: &Detection,
    w: u32,
    h: u32,
    whole_scale: f32,
    detail_scale: f32,
    p: &DetectParams,
) -> Option<View> {
    let target = p.refine_face_size;
    let long = d.width().max(d.height());
    if target <= 0.0 || long <= 0.0 || long * whole_scale >= target {
        return None;
    }
    let scale = (target / long).min(detail_scale);
    if scale <= whole_scale * 1.1 {
        return None;
    }
    let side = round32((1.5 * target).ceil() as u32);
    let region = side as f32 / scale;
    let (cx, cy) = ((d.bbox[0] + d.bbox[2]) / 2.0, (d.bbox[1] + d.bbox[3]) / 2.0);
    let start = |c: f32, len: u32| (c - region / 2.0).clamp(0.0, (len as f32 - region).max(0.0));
    let (x0, y0) = (start(cx, w), start(cy, h));
    let content = |x0: f32, len: u32| {
        (((len as f32 - x0) * scale).floor() as u32)
            .min(side)
            .max(1)
    };
    let (content_w, content_h) = (content(x0, w), content(y0, h));
    Some(View {
        x0,
        y0,
        scale,
        content_w,
        content_h,
        input_w: round32(content_w),
        input_h: round32(content_h),
        interior: [true; 4],
        source: Source::Image,
    })
}

/// Where a view's pixels are resampled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The decoded image.
    Image,
    /// The image scaled to the detail scale (shared by the detail view and, when there is
    /// one, the whole-image view, which is resampled from it: one resize of the full image).
    Detail,
}

/// One detector input cut from an image: input pixel `(u, v)` shows image pixel
/// `(x0 + u / scale, y0 + v / scale)`; the content covers `content_w x content_h` input
/// pixels at the top-left of an `input_w x input_h` input, the rest is zero padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
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
    /// Detector input width (content plus padding).
    pub input_w: u32,
    /// Detector input height (content plus padding).
    pub input_h: u32,
    /// For tiles: which edges are inside the image (left, top, right, bottom); a detection
    /// touching such an edge is cut and dropped (a neighbour tile sees it whole).
    pub interior: [bool; 4],
    /// What the pixels are resampled from.
    pub source: Source,
}

/// `x` rounded up to a multiple of 32 (YuNet and SCRFD need input sides divisible by their
/// largest stride).
pub fn round32(x: u32) -> u32 {
    x.div_ceil(32) * 32
}

fn scaled_len(len: u32, scale: f32) -> u32 {
    ((len as f32 * scale).round() as u32).max(1)
}

/// Plans the views of a `w x h` image for a detector with dynamic input: the whole image
/// scaled to a long side of `input_size`, plus (for large photos) the detail view; both
/// padded to multiples of 32. The detail view, when there is one, comes second.
pub fn plan_views(w: u32, h: u32, p: &DetectParams) -> Vec<View> {
    let long = w.max(h) as f32;
    let scale = p.input_size as f32 / long;
    let detail = p.detail_scale(w, h);
    let cw = scaled_len(w, scale).min(p.input_size);
    let ch = scaled_len(h, scale).min(p.input_size);
    let mut views = vec![View {
        x0: 0.0,
        y0: 0.0,
        scale,
        content_w: cw,
        content_h: ch,
        input_w: round32(cw),
        input_h: round32(ch),
        interior: [false; 4],
        source: if detail.is_some() {
            Source::Detail
        } else {
            Source::Image
        },
    }];
    if let Some(ds) = detail {
        let (sw, sh) = (scaled_len(w, ds), scaled_len(h, ds));
        views.push(View {
            x0: 0.0,
            y0: 0.0,
            scale: ds,
            content_w: sw,
            content_h: sh,
            input_w: round32(sw),
            input_h: round32(sh),
            interior: [false; 4],
            source: Source::Detail,
        });
    }
    views
}

/// Plans the views of a `w x h` image for a detector with a fixed `input_size` square input:
/// the whole image letterboxed, plus overlapping tiles of the detail-scale image when large.
/// Every view is resampled from the image itself.
pub fn plan_tiles(w: u32, h: u32, p: &DetectParams) -> Vec<View> {
    let side = p.input_size as f32;
    let long = w.max(h) as f32;
    let scale = side / long;
    let cw = scaled_len(w, scale).min(p.input_size);
    let ch = scaled_len(h, scale).min(p.input_size);
    let square = |x0, y0, scale, content_w, content_h, interior| View {
        x0,
        y0,
        scale,
        content_w,
        content_h,
        input_w: p.input_size,
        input_h: p.input_size,
        interior,
        source: Source::Image,
    };
    let mut views = vec![square(0.0, 0.0, scale, cw, ch, [false; 4])];
    let Some(ts) = p.detail_scale(w, h) else {
        return views;
    };
    let sw = (w as f32 * ts).round() as u32;
    let sh = (h as f32 * ts).round() as u32;
    let stride = p.input_size - p.tile_overlap;
    let starts = |len: u32| -> Vec<u32> {
        if len <= p.input_size {
            return vec![0];
        }
        let n = (len - p.input_size).div_ceil(stride) + 1;
        // Spread the tiles evenly so the last one ends at the edge.
        let span = len - p.input_size;
        (0..n)
            .map(|i| ((span as u64 * i as u64) / (n as u64 - 1).max(1)) as u32)
            .collect()
    };
    let xs = starts(sw);
    let ys = starts(sh);
    for &ty in &ys {
        for &tx in &xs {
            let content_w = (sw - tx).min(p.input_size);
            let content_h = (sh - ty).min(p.input_size);
            views.push(square(
                tx as f32 / ts,
                ty as f32 / ts,
                ts,
                content_w,
                content_h,
                [tx > 0, ty > 0, tx + content_w < sw, ty + content_h < sh],
            ));
        }
    }
    views
}

/// The part of a source (`src_w x src_h`, showing the image at `src_scale` pixels per image
/// pixel) that a view resamples, as `(left, top, width, height)` in source pixels: `None` for
/// a view of the whole image (all of the source), else `content / scale` image pixels from
/// the view's origin, clipped to the source (a tile).
pub fn source_crop(
    view: &View,
    (src_w, src_h): (u32, u32),
    src_scale: f32,
) -> Option<(f64, f64, f64, f64)> {
    let k = f64::from(src_scale) / f64::from(view.scale);
    let x0 = f64::from(view.x0) * f64::from(src_scale);
    let y0 = f64::from(view.y0) * f64::from(src_scale);
    (view.interior.iter().any(|&i| i) || x0 > 0.0 || y0 > 0.0).then(|| {
        (
            x0,
            y0,
            (f64::from(view.content_w) * k).min(f64::from(src_w) - x0),
            (f64::from(view.content_h) * k).min(f64::from(src_h) - y0),
        )
    })
}

/// Resamples a view's content (`view.content_w x view.content_h` RGB) into `dst` from
/// `src` (`src_w x src_h` RGB, showing the image at `src_scale` pixels per image pixel):
/// bilinear interpolation, `resizer` reused between calls.
pub fn resample(
    src: &[u8],
    (src_w, src_h): (u32, u32),
    src_scale: f32,
    view: &View,
    resizer: &mut fr::Resizer,
    dst: &mut Vec<u8>,
) -> Result<()> {
    let (cw, ch) = (view.content_w, view.content_h);
    let src = fr::images::ImageRef::new(src_w, src_h, src, fr::PixelType::U8x3)
        .map_err(|e| Error::inference("resize", e))?;
    dst.clear();
    dst.resize((cw * ch * 3) as usize, 0);
    let mut out = fr::images::Image::from_slice_u8(cw, ch, dst, fr::PixelType::U8x3)
        .map_err(|e| Error::inference("resize", e))?;
    // Bilinear interpolation with a fixed 2x2 support (OpenCV's INTER_LINEAR), not a
    // convolution whose support grows with the downscale factor: cheaper on 12 MP photos,
    // and what the Python peer does.
    let mut opts =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Interpolation(fr::FilterType::Bilinear));
    if let Some((x0, y0, w, h)) = source_crop(view, (src_w, src_h), src_scale) {
        opts = opts.crop(x0, y0, w, h);
    }
    resizer
        .resize(&src, &mut out, &opts)
        .map_err(|e| Error::inference("resize", e))
}

/// Writes `pix` (`view.content_w x view.content_h` RGB) into one planar detector input of
/// `view.input_w x view.input_h` (zero padding right and bottom) with the colour order and
/// normalisation of `family`.
pub fn to_input(pix: &[u8], view: &View, family: DetectorFamily, out: &mut [f32]) {
    let (iw, ih) = (view.input_w as usize, view.input_h as usize);
    let (cw, ch) = (view.content_w as usize, view.content_h as usize);
    let plane = iw * ih;
    debug_assert_eq!(out.len(), plane * 3);
    debug_assert_eq!(pix.len(), cw * ch * 3);
    let (o0, rest) = out.split_at_mut(plane);
    let (o1, o2) = rest.split_at_mut(plane);
    for (y, row) in pix.chunks_exact(cw * 3).enumerate().take(ch) {
        let base = y * iw;
        let (r0, r1, r2) = (
            &mut o0[base..base + iw],
            &mut o1[base..base + iw],
            &mut o2[base..base + iw],
        );
        match family {
            DetectorFamily::YuNet => {
                // BGR, raw 0..255.
                for (((px, a), b), c) in row
                    .chunks_exact(3)
                    .zip(r0.iter_mut())
                    .zip(r1.iter_mut())
                    .zip(r2.iter_mut())
                {
                    *a = f32::from(px[2]);
                    *b = f32::from(px[1]);
                    *c = f32::from(px[0]);
                }
            }
            DetectorFamily::Scrfd => {
                // RGB, (x - 127.5) / 128; padding is 0 after normalisation too.
                for (((px, a), b), c) in row
                    .chunks_exact(3)
                    .zip(r0.iter_mut())
                    .zip(r1.iter_mut())
                    .zip(r2.iter_mut())
                {
                    *a = (f32::from(px[0]) - 127.5) / 128.0;
                    *b = (f32::from(px[1]) - 127.5) / 128.0;
                    *c = (f32::from(px[2]) - 127.5) / 128.0;
                }
            }
        }
        r0[cw..].fill(0.0);
        r1[cw..].fill(0.0);
        r2[cw..].fill(0.0);
    }
    for o in [o0, o1, o2] {
        o[ch * iw..].fill(0.0);
    }
}

/// Raw outputs of one input of a YuNet detector for one stride.
pub struct YuNetLevel<'a> {
    /// Stride in input pixels (8, 16 or 32).
    pub stride: u32,
    /// `cells` class scores (sigmoided).
    pub cls: &'a [f32],
    /// `cells` objectness (sigmoided).
    pub obj: &'a [f32],
    /// `cells x 4` box offsets.
    pub bbox: &'a [f32],
    /// `cells x 10` landmark offsets.
    pub kps: &'a [f32],
}

/// Decodes YuNet outputs of one input `input_w` pixels wide into detections in input
/// coordinates.
pub fn decode_yunet(
    levels: &[YuNetLevel<'_>],
    input_w: u32,
    threshold: f32,
    out: &mut Vec<Detection>,
) {
    for l in levels {
        let cols = (input_w / l.stride) as usize;
        let s = l.stride as f32;
        for (idx, (&c, &o)) in l.cls.iter().zip(l.obj).enumerate() {
            let score = (c.clamp(0.0, 1.0) * o.clamp(0.0, 1.0)).sqrt();
            if score < threshold {
                continue;
            }
            let (Some(b), Some(k)) = (
                l.bbox.get(idx * 4..idx * 4 + 4),
                l.kps.get(idx * 10..idx * 10 + 10),
            ) else {
                continue;
            };
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
            out.push(Detection {
                bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                landmarks,
                score,
            });
        }
    }
}

/// Raw outputs of an SCRFD detector for one stride (two anchors per cell).
pub struct ScrfdLevel<'a> {
    /// Stride in input pixels.
    pub stride: u32,
    /// `anchors` scores (sigmoided).
    pub score: &'a [f32],
    /// `anchors x 4` distances.
    pub bbox: &'a [f32],
    /// `anchors x 10` landmark offsets.
    pub kps: &'a [f32],
}

/// Decodes SCRFD outputs of one input `input_w` pixels wide into detections in input
/// coordinates.
pub fn decode_scrfd(
    levels: &[ScrfdLevel<'_>],
    input_w: u32,
    threshold: f32,
    out: &mut Vec<Detection>,
) {
    for l in levels {
        let cols = (input_w / l.stride) as usize;
        let s = l.stride as f32;
        for (idx, &score) in l.score.iter().enumerate() {
            if score < threshold {
                continue;
            }
            let (Some(b), Some(k)) = (
                l.bbox.get(idx * 4..idx * 4 + 4),
                l.kps.get(idx * 10..idx * 10 + 10),
            ) else {
                continue;
            };
            let cell = idx / 2;
            let cx = (cell % cols) as f32 * s;
            let cy = (cell / cols) as f32 * s;
            let mut landmarks = [[0f32; 2]; 5];
            for (i, lm) in landmarks.iter_mut().enumerate() {
                *lm = [cx + k[2 * i] * s, cy + k[2 * i + 1] * s];
            }
            out.push(Detection {
                bbox: [cx - b[0] * s, cy - b[1] * s, cx + b[2] * s, cy + b[3] * s],
                landmarks,
                score,
            });
        }
    }
}

/// Maps detections of one view from input to image coordinates, dropping those cut by an
/// interior tile edge and clamping boxes to the image.
pub fn map_to_image(dets: &mut Vec<Detection>, view: &View, img_w: u32, img_h: u32) {
    let margin = 2.0;
    let (cw, ch) = (view.content_w as f32, view.content_h as f32);
    dets.retain(|d| {
        let [x1, y1, x2, y2] = d.bbox;
        !((view.interior[0] && x1 <= margin)
            || (view.interior[1] && y1 <= margin)
            || (view.interior[2] && x2 >= cw - margin)
            || (view.interior[3] && y2 >= ch - margin))
    });
    let inv = 1.0 / view.scale;
    let (w, h) = (img_w as f32, img_h as f32);
    for d in dets.iter_mut() {
        let b = &mut d.bbox;
        b[0] = (view.x0 + b[0] * inv).clamp(0.0, w);
        b[1] = (view.y0 + b[1] * inv).clamp(0.0, h);
        b[2] = (view.x0 + b[2] * inv).clamp(0.0, w);
        b[3] = (view.y0 + b[3] * inv).clamp(0.0, h);
        for lm in &mut d.landmarks {
            lm[0] = view.x0 + lm[0] * inv;
            lm[1] = view.y0 + lm[1] * inv;
        }
    }
    dets.retain(|d| d.width() > 1.0 && d.height() > 1.0);
}

/// Intersection over union of two boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Greedy non-maximum suppression; keeps at most `max` detections, best first.
pub fn nms(mut dets: Vec<Detection>, iou_threshold: f32, max: usize) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::with_capacity(dets.len().min(max));
    for d in dets {
        if keep.len() >= max {
            break;
        }
        // Also suppress a box mostly contained in a kept one (a tile's partial view of a face).
        if keep
            .iter()
            .all(|k| iou(&k.bbox, &d.bbox) <= iou_threshold && !contained(&d.bbox, &k.bbox))
        {
            keep.push(d);
        }
    }
    keep
}

/// Whether `inner` lies mostly (80 % of its area) inside `outer`.
fn contained(inner: &[f32; 4], outer: &[f32; 4]) -> bool {
    let ix = (inner[2].min(outer[2]) - inner[0].max(outer[0])).max(0.0);
    let iy = (inner[3].min(outer[3]) - inner[1].max(outer[1])).max(0.0);
    let area = (inner[2] - inner[0]).max(0.0) * (inner[3] - inner[1]).max(0.0);
    area > 0.0 && ix * iy / area > 0.8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(b: [f32; 4], s: f32) -> Detection {
        Detection {
            bbox: b,
            landmarks: [[0.0; 2]; 5],
            score: s,
        }
    }

    #[test]
    fn nms_keeps_best_of_overlapping() {
        let d = vec![
            det([0.0, 0.0, 10.0, 10.0], 0.8),
            det([1.0, 1.0, 11.0, 11.0], 0.9),
            det([50.0, 50.0, 60.0, 60.0], 0.75),
        ];
        let k = nms(d, 0.3, 10);
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].score, 0.9);
        assert_eq!(k[1].score, 0.75);
    }

    #[test]
    fn small_image_gets_one_view() {
        let v = plan_views(400, 300, &DetectParams::default());
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].content_w, v[0].content_h), (640, 480));
        assert_eq!((v[0].input_w, v[0].input_h), (640, 480));
        assert_eq!(v[0].source, Source::Image);
        // Padded to multiples of 32 only.
        let v = plan_views(500, 333, &DetectParams::default());
        assert_eq!((v[0].content_w, v[0].content_h), (640, 426));
        assert_eq!((v[0].input_w, v[0].input_h), (640, 448));
    }

    #[test]
    fn large_image_gets_a_whole_and_a_detail_view() {
        let p = DetectParams::default();
        let v = plan_views(3000, 2171, &p);
        assert_eq!(v.len(), 2);
        let (whole, detail) = (v[0], v[1]);
        assert_eq!((whole.content_w, whole.content_h), (640, 463));
        assert_eq!((whole.input_w, whole.input_h), (640, 480));
        assert_eq!((detail.content_w, detail.content_h), (1920, 1389));
        assert_eq!((detail.input_w, detail.input_h), (1920, 1408));
        assert!((detail.scale - 0.64).abs() < 1e-6);
        assert!(v.iter().all(|x| x.source == Source::Detail));
        assert!(v.iter().all(|x| x.interior == [false; 4]));
        // 1.5 x 640 = 960: a 1000 px image is detected at its own resolution as well.
        let v = plan_views(1000, 700, &p);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[1].content_w, v[1].content_h, v[1].scale),
            (1000, 700, 1.0)
        );
        assert_eq!(plan_views(960, 700, &p).len(), 1);
        // Disabled.
        let off = DetectParams {
            tile_max_side: 0,
            ..p
        };
        assert_eq!(plan_views(3000, 2171, &off).len(), 1);
    }

    #[test]
    fn to_input_pads_with_zeros() {
        let v = View {
            x0: 0.0,
            y0: 0.0,
            scale: 1.0,
            content_w: 2,
            content_h: 1,
            input_w: 4,
            input_h: 2,
            interior: [false; 4],
            source: Source::Image,
        };
        let mut out = vec![9.0f32; 3 * 8];
        to_input(&[1, 2, 3, 4, 5, 6], &v, DetectorFamily::YuNet, &mut out);
        // Planar BGR.
        assert_eq!(&out[0..8], &[3.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(&out[8..16], &[2.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(&out[16..24], &[1.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn large_image_is_tiled_and_covered_for_fixed_input() {
        let p = DetectParams::default();
        let v = plan_tiles(3000, 2171, &p);
        assert!(v.iter().all(|x| (x.input_w, x.input_h) == (640, 640)));
        assert!(v.len() > 1);
        let tiles = &v[1..];
        // Every image pixel column/row is covered by some tile.
        let ts = tiles[0].scale;
        let right = tiles
            .iter()
            .map(|t| t.x0 + t.content_w as f32 / ts)
            .fold(0.0, f32::max);
        let bottom = tiles
            .iter()
            .map(|t| t.y0 + t.content_h as f32 / ts)
            .fold(0.0, f32::max);
        assert!((right - 3000.0).abs() < 2.0, "{right}");
        assert!((bottom - 2171.0).abs() < 2.0, "{bottom}");
        assert!(tiles.iter().any(|t| t.interior.iter().any(|&i| i)));
    }

    #[test]
    fn yunet_decoding_matches_formula() {
        // One 64x64 input, stride 32: 4 cells; only cell 3 (row 1, col 1) scores.
        let cls = [0.0, 0.0, 0.0, 0.81];
        let obj = [0.0, 0.0, 0.0, 1.0];
        let mut bbox = [0.0f32; 16];
        bbox[12..16].copy_from_slice(&[0.5, 0.25, 0.0, (2.0f32).ln()]);
        let kps = [0.0f32; 40];
        let mut out = vec![];
        decode_yunet(
            &[YuNetLevel {
                stride: 32,
                cls: &cls,
                obj: &obj,
                bbox: &bbox,
                kps: &kps,
            }],
            64,
            0.5,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        let d = out[0];
        assert!((d.score - 0.9).abs() < 1e-6);
        // centre (48, 40), size 32 x 64
        assert_eq!(d.bbox, [32.0, 8.0, 64.0, 72.0]);
        assert_eq!(d.landmarks[0], [32.0, 32.0]);
    }
}

//! Twin of `letterbox.cu`: bilinear resampling of a crop of an interleaved RGB u8 image,
//! bit-exact with `fast_image_resize` (Pillow's algorithm with 16-bit fixed-point weights,
//! vertical pass first, rounding to u8 between the passes) in both of its bilinear modes:
//! `Interpolation` (fixed 2x2 support, OpenCV's INTER_LINEAR; what `models/` uses for the
//! detector views) and `Convolution` (support widened by the downscale factor); then the
//! conversion into a planar `f32` detector input with channel order, normalisation and zero
//! padding to the right and bottom.
//!
//! The weights are computed on the host ([`ResamplePlan`]) and uploaded; the device does only
//! the integer convolution, so device and twin agree bit for bit.

use crate::error::{Error, Result};

/// Fixed-point precision bound of 8-bit convolution (Pillow-SIMD: 32 - 8 - 2).
const PRECISION_BITS: u32 = 22;
/// Largest coefficient magnitude that fits an `i16`.
const MAX_COEFFS_PRECISION: u32 = 15;
/// Precision of an identity pass (one weight of 1.0).
const IDENTITY_PRECISION: u32 = 14;

/// Fixed-point weights of one axis: output pixel `o` is
/// `sum(values[o * window + i] * src[starts[o] + i], i < sizes[o]) >> precision`,
/// rounded (the sum starts at `1 << (precision - 1)`) and clamped to `0..=255`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisWeights {
    /// Fixed-point fraction bits.
    pub precision: u32,
    /// Weights per output pixel (row stride of `values`).
    pub window: usize,
    /// First source pixel of every output pixel.
    pub starts: Vec<u32>,
    /// Number of weights used by every output pixel.
    pub sizes: Vec<u32>,
    /// `out_size x window` weights, zero after `sizes[o]`.
    pub values: Vec<i16>,
}

impl AxisWeights {
    /// The identity pass: output pixel `o` copies source pixel `offset + o`.
    pub fn identity(offset: u32, out_size: u32) -> Self {
        Self {
            precision: IDENTITY_PRECISION,
            window: 1,
            starts: (0..out_size).map(|o| offset + o).collect(),
            sizes: vec![1; out_size as usize],
            values: vec![1 << IDENTITY_PRECISION; out_size as usize],
        }
    }

    /// Bilinear (triangle) weights for the source interval `[in0, in1)` of an axis of
    /// `in_size` pixels mapped onto `out_size` pixels, the support widened by the downscale
    /// factor for [`Filter::Convolution`]
    /// (`fast_image_resize::convolution::precompute_coefficients` followed by its
    /// `Normalizer16`).
    pub fn bilinear(in_size: u32, in0: f64, in1: f64, out_size: u32, filter: Filter) -> Self {
        let scale = (in1 - in0) / f64::from(out_size);
        let filter_scale = match filter {
            Filter::Convolution => scale.max(1.0),
            Filter::Interpolation => 1.0,
        };
        let radius = filter_scale; // bilinear support 1.0
        let window = radius.ceil() as usize * 2 + 1;
        let recip = 1.0 / filter_scale;
        let mut coeffs: Vec<f64> = Vec::with_capacity(window * out_size as usize);
        let mut starts = Vec::with_capacity(out_size as usize);
        let mut sizes = Vec::with_capacity(out_size as usize);
        for o in 0..out_size {
            let in_center = in0 + (f64::from(o) + 0.5) * scale;
            let x_min = (in_center - radius).floor().max(0.0) as u32;
            let x_max = (in_center + radius).ceil().min(f64::from(in_size)) as u32;
            let cur = coeffs.len();
            let mut ww = 0.0f64;
            let center = in_center - 0.5;
            let mut bound_start = x_min;
            let mut bound_end = x_max;
            for x in x_min..x_max {
                let t = ((f64::from(x) - center) * recip).abs();
                let w = if t < 1.0 { 1.0 - t } else { 0.0 };
                if x == bound_start && w == 0.0 {
                    bound_start += 1;
                } else {
                    coeffs.push(w);
                    ww += w;
                }
            }
            for &c in coeffs.iter().rev() {
                if bound_end <= bound_start || c != 0.0 {
                    break;
                }
                bound_end -= 1;
            }
            if ww != 0.0 {
                for w in &mut coeffs[cur..] {
                    *w /= ww;
                }
            }
            coeffs.resize(cur + window, 0.0);
            starts.push(bound_start);
            sizes.push(bound_end - bound_start);
        }
        let max_weight = coeffs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let max_weight = if max_weight.is_finite() {
            max_weight
        } else {
            0.0
        };
        let mut precision = 0u32;
        for p in 0..PRECISION_BITS {
            precision = p;
            let next = (max_weight * f64::from(1u32 << (p + 1))).round() as i32;
            if next >= 1 << MAX_COEFFS_PRECISION {
                break;
            }
        }
        let fixed = f64::from(1u32 << precision);
        let mut values = vec![0i16; window * out_size as usize];
        for (o, &size) in sizes.iter().enumerate() {
            for i in 0..size as usize {
                values[o * window + i] = (coeffs[o * window + i] * fixed).round() as i16;
            }
        }
        Self {
            precision,
            window,
            starts,
            sizes,
            values,
        }
    }

    /// Number of output pixels.
    pub fn out_size(&self) -> usize {
        self.starts.len()
    }

    /// One output value from `get(source index)`.
    #[inline]
    fn apply(&self, o: usize, get: impl Fn(usize) -> u8) -> u8 {
        let mut acc: i32 = 1 << (self.precision - 1);
        let start = self.starts[o] as usize;
        for i in 0..self.sizes[o] as usize {
            acc += i32::from(get(start + i)) * i32::from(self.values[o * self.window + i]);
        }
        (acc >> self.precision).clamp(0, 255) as u8
    }
}

/// Which bilinear resampling (`fast_image_resize::ResizeAlg`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Filter {
    /// `Interpolation(Bilinear)`: fixed 2x2 support (OpenCV INTER_LINEAR); `models/`'
    /// detector views.
    #[default]
    Interpolation,
    /// `Convolution(Bilinear)`: support grows with the downscale factor (area-like).
    Convolution,
}

/// A crop of the source in (fractional) source pixels, as `fast_image_resize`'s crop box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropBox {
    /// Left edge.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// The two passes of one resampling: vertical over the source columns
/// `x_first .. x_first + temp_width`, then horizontal over that temporary image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResamplePlan {
    /// Source width and height.
    pub src: (u32, u32),
    /// Destination width and height.
    pub dst: (u32, u32),
    /// First source column read.
    pub x_first: u32,
    /// Columns of the temporary (vertically resampled) image.
    pub temp_width: u32,
    /// Vertical weights (source rows -> destination rows).
    pub vert: AxisWeights,
    /// Horizontal weights (temporary columns -> destination columns), starts relative to
    /// `x_first`.
    pub horiz: AxisWeights,
}

impl ResamplePlan {
    /// Plans the resampling of `crop` of a `src_w x src_h` image into `dst_w x dst_h`.
    /// Refuses a crop outside the image as `fast_image_resize` does.
    pub fn new(
        src_w: u32,
        src_h: u32,
        crop: CropBox,
        dst_w: u32,
        dst_h: u32,
        filter: Filter,
    ) -> Result<Self> {
        let k = "letterbox";
        if src_w == 0 || src_h == 0 || dst_w == 0 || dst_h == 0 {
            return Err(Error::invalid(
                k,
                format!("empty image: source {src_w}x{src_h}, destination {dst_w}x{dst_h}"),
            ));
        }
        let (w, h) = (f64::from(src_w), f64::from(src_h));
        if !(crop.width > 0.0 && crop.height > 0.0) {
            return Err(Error::invalid(k, format!("empty crop {crop:?}")));
        }
        if crop.left < 0.0 || crop.top < 0.0 || crop.left >= w || crop.top >= h {
            return Err(Error::invalid(
                k,
                format!("crop {crop:?} starts outside the {src_w}x{src_h} source"),
            ));
        }
        if crop.left + crop.width > w || crop.top + crop.height > h {
            return Err(Error::invalid(
                k,
                format!("crop {crop:?} ends outside the {src_w}x{src_h} source"),
            ));
        }
        let need_h = f64::from(dst_w) != crop.width || crop.left != crop.left.round();
        let need_v = f64::from(dst_h) != crop.height || crop.top != crop.top.round();
        let vert = if need_v {
            AxisWeights::bilinear(src_h, crop.top, crop.top + crop.height, dst_h, filter)
        } else {
            AxisWeights::identity(crop.top as u32, dst_h)
        };
        let mut horiz = if need_h {
            AxisWeights::bilinear(src_w, crop.left, crop.left + crop.width, dst_w, filter)
        } else {
            AxisWeights::identity(crop.left as u32, dst_w)
        };
        let x_first = horiz.starts.first().copied().unwrap_or(0);
        let x_last = horiz
            .starts
            .iter()
            .zip(&horiz.sizes)
            .map(|(s, n)| s + n)
            .max()
            .unwrap_or(x_first);
        for s in &mut horiz.starts {
            *s -= x_first;
        }
        Ok(Self {
            src: (src_w, src_h),
            dst: (dst_w, dst_h),
            x_first,
            temp_width: x_last - x_first,
            vert,
            horiz,
        })
    }

    /// Runs both passes on an interleaved RGB source; returns the interleaved RGB result.
    pub fn run(&self, src: &[u8]) -> Result<Vec<u8>> {
        let (sw, sh) = (self.src.0 as usize, self.src.1 as usize);
        if src.len() != sw * sh * 3 {
            return Err(Error::invalid(
                "letterbox",
                format!("source has {} bytes, expected {sw}x{sh}x3", src.len()),
            ));
        }
        let (dw, dh) = (self.dst.0 as usize, self.dst.1 as usize);
        let tw = self.temp_width as usize;
        let x0 = self.x_first as usize;
        let mut temp = vec![0u8; tw * dh * 3];
        for y in 0..dh {
            for x in 0..tw {
                for c in 0..3 {
                    temp[(y * tw + x) * 3 + c] =
                        self.vert.apply(y, |r| src[(r * sw + x0 + x) * 3 + c]);
                }
            }
        }
        let mut out = vec![0u8; dw * dh * 3];
        for y in 0..dh {
            for x in 0..dw {
                for c in 0..3 {
                    out[(y * dw + x) * 3 + c] = self.horiz.apply(x, |t| temp[(y * tw + t) * 3 + c]);
                }
            }
        }
        Ok(out)
    }
}

/// Channel order and normalisation of a detector input: `(value - mean) / std` per channel,
/// written in BGR or RGB plane order; the padding stays 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalise {
    /// Planes in B, G, R order (YuNet) instead of R, G, B (SCRFD).
    pub bgr: bool,
    /// Subtracted from every value.
    pub mean: f32,
    /// Divides every value after the mean is subtracted.
    pub std: f32,
}

impl Normalise {
    /// YuNet: BGR, raw 0..255.
    pub const YUNET: Self = Self {
        bgr: true,
        mean: 0.0,
        std: 1.0,
    };
    /// SCRFD: RGB, `(x - 127.5) / 128`.
    pub const SCRFD: Self = Self {
        bgr: false,
        mean: 127.5,
        std: 128.0,
    };
}

/// Writes `pix` (`content_w x content_h` interleaved RGB) into a planar `3 x input_h x input_w`
/// detector input at the top left, zero elsewhere.
pub fn to_planar(
    pix: &[u8],
    (content_w, content_h): (u32, u32),
    (input_w, input_h): (u32, u32),
    norm: Normalise,
    out: &mut [f32],
) -> Result<()> {
    let (cw, ch, iw, ih) = (
        content_w as usize,
        content_h as usize,
        input_w as usize,
        input_h as usize,
    );
    if cw > iw || ch > ih || pix.len() != cw * ch * 3 || out.len() != 3 * iw * ih {
        return Err(Error::invalid(
            "letterbox",
            format!(
                "content {cw}x{ch} ({} bytes) does not fit an input {iw}x{ih} ({} values)",
                pix.len(),
                out.len()
            ),
        ));
    }
    out.fill(0.0);
    let plane = iw * ih;
    for y in 0..ch {
        for x in 0..cw {
            let p = &pix[(y * cw + x) * 3..(y * cw + x) * 3 + 3];
            for (plane_idx, c) in channel_order(norm.bgr).into_iter().enumerate() {
                out[plane_idx * plane + y * iw + x] = (f32::from(p[c]) - norm.mean) / norm.std;
            }
        }
    }
    Ok(())
}

/// Source channel of each output plane.
fn channel_order(bgr: bool) -> [usize; 3] {
    if bgr { [2, 1, 0] } else { [0, 1, 2] }
}

/// One view of the batch: the crop of its source image resampled to `content` and written
/// into a `3 x input.1 x input.0` planar input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LetterboxView {
    /// Which source image of the batch.
    pub image: usize,
    /// The crop in source pixels.
    pub crop: CropBox,
    /// Content size (width, height) in input pixels.
    pub content: (u32, u32),
    /// Input size (width, height), at least the content size.
    pub input: (u32, u32),
    /// Which bilinear resampling.
    pub filter: Filter,
}

/// A decoded interleaved RGB image.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, row-major RGB.
    pub data: &'a [u8],
}

/// The batched letterbox: every view of the batch into its planar input, concatenated
/// (view after view) into `out`. This is what `letterbox_vert` + `letterbox_horiz` compute on
/// the device.
pub fn letterbox_batch(
    images: &[ImageRef<'_>],
    views: &[LetterboxView],
    norm: Normalise,
    out: &mut Vec<f32>,
) -> Result<()> {
    out.clear();
    for v in views {
        let img = images.get(v.image).ok_or_else(|| {
            Error::invalid(
                "letterbox",
                format!("view of image {} in a batch of {}", v.image, images.len()),
            )
        })?;
        let plan = ResamplePlan::new(
            img.width,
            img.height,
            v.crop,
            v.content.0,
            v.content.1,
            v.filter,
        )?;
        let pix = plan.run(img.data)?;
        let start = out.len();
        out.resize(start + 3 * (v.input.0 * v.input.1) as usize, 0.0);
        to_planar(&pix, v.content, v.input, norm, &mut out[start..])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_plan_copies() {
        let src: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
        let crop = CropBox {
            left: 1.0,
            top: 1.0,
            width: 2.0,
            height: 2.0,
        };
        let plan = ResamplePlan::new(4, 3, crop, 2, 2, Filter::Convolution).unwrap();
        let out = plan.run(&src).unwrap();
        assert_eq!(&out[0..6], &src[(4 + 1) * 3..(4 + 3) * 3]);
        assert_eq!(&out[6..12], &src[(8 + 1) * 3..(8 + 3) * 3]);
    }

    #[test]
    fn constant_image_stays_constant_and_padding_is_zero() {
        let src = vec![200u8; 50 * 30 * 3];
        let crop = CropBox {
            left: 0.0,
            top: 0.0,
            width: 50.0,
            height: 30.0,
        };
        let plan = ResamplePlan::new(50, 30, crop, 21, 13, Filter::Interpolation).unwrap();
        let pix = plan.run(&src).unwrap();
        assert!(pix.iter().all(|&v| v == 200));
        let mut out = vec![1.0; 3 * 32 * 32];
        to_planar(&pix, (21, 13), (32, 32), Normalise::SCRFD, &mut out).unwrap();
        assert_eq!(out[0], (200.0 - 127.5) / 128.0);
        assert_eq!(out[21], 0.0);
        assert_eq!(out[13 * 32], 0.0);
    }

    #[test]
    fn crop_outside_is_refused() {
        let crop = CropBox {
            left: 0.0,
            top: 0.0,
            width: 51.0,
            height: 30.0,
        };
        assert!(ResamplePlan::new(50, 30, crop, 10, 10, Filter::Interpolation).is_err());
    }
}

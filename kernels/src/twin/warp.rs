//! Twin of `warp.cu`: every face of a batch warped into a 112x112 crop through the inverse
//! of its similarity transform (crop -> image), bilinear, zero outside the image, rounded to
//! u8 (interleaved RGB, for the sharpness measure) and written as the embedder input (planar
//! RGB, `(x - 127.5) / 127.5`). Same arithmetic, in the same order, as
//! `models/src/align.rs` `warp` + `to_embedder_input`.

use super::letterbox::ImageRef;
use crate::error::{Error, Result};

/// Side of the aligned crop.
pub const CROP: usize = 112;

/// A 2x3 similarity `[[a, -b, tx], [b, a, ty]]` mapping crop to image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Scale times cos(angle).
    pub a: f32,
    /// Scale times sin(angle).
    pub b: f32,
    /// Translation x.
    pub tx: f32,
    /// Translation y.
    pub ty: f32,
}

impl Affine {
    /// Applies the transform, evaluated as `a*x - b*y + tx`, `b*x + a*y + ty`.
    #[inline]
    pub fn apply(&self, x: f32, y: f32) -> [f32; 2] {
        [
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        ]
    }
}

/// One face of the batch: which image and the crop -> image transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarpJob {
    /// Which image of the batch.
    pub image: usize,
    /// Crop -> image transform.
    pub inverse: Affine,
}

/// Warps one face into `rgb` (`112*112*3` interleaved bytes).
pub fn warp_face(img: &ImageRef<'_>, inv: &Affine, rgb: &mut [u8]) -> Result<()> {
    let (w, h) = (i64::from(img.width), i64::from(img.height));
    if img.data.len() != (w * h * 3) as usize || rgb.len() != CROP * CROP * 3 {
        return Err(Error::invalid(
            "warp",
            format!(
                "image {}x{} with {} bytes, crop buffer {} bytes",
                img.width,
                img.height,
                img.data.len(),
                rgb.len()
            ),
        ));
    }
    let stride = img.width as usize * 3;
    for y in 0..CROP {
        for x in 0..CROP {
            let [sx, sy] = inv.apply(x as f32, y as f32);
            let x0 = sx.floor();
            let y0 = sy.floor();
            let fx = sx - x0;
            let fy = sy - y0;
            let (x0, y0) = (x0 as i64, y0 as i64);
            let mut acc = [0f32; 3];
            for (dy, wy) in [(0i64, 1.0 - fy), (1, fy)] {
                let yy = y0 + dy;
                if yy < 0 || yy >= h || wy == 0.0 {
                    continue;
                }
                for (dx, wx) in [(0i64, 1.0 - fx), (1, fx)] {
                    let xx = x0 + dx;
                    if xx < 0 || xx >= w || wx == 0.0 {
                        continue;
                    }
                    let o = yy as usize * stride + xx as usize * 3;
                    let wgt = wx * wy;
                    acc[0] += wgt * f32::from(img.data[o]);
                    acc[1] += wgt * f32::from(img.data[o + 1]);
                    acc[2] += wgt * f32::from(img.data[o + 2]);
                }
            }
            let o = (y * CROP + x) * 3;
            for c in 0..3 {
                rgb[o + c] = acc[c].round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(())
}

/// Writes a crop as the embedder input: planar RGB, `(x - 127.5) / 127.5`.
pub fn to_embedder_input(rgb: &[u8], out: &mut [f32]) {
    let plane = CROP * CROP;
    for (i, px) in rgb.chunks_exact(3).enumerate().take(plane) {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px[c]) - 127.5) / 127.5;
        }
    }
}

/// Warps every face of the batch: interleaved crops (`faces x 112 x 112 x 3`) and the
/// embedder input (`faces x 3 x 112 x 112`). This is what `warp_faces` computes on the device.
pub fn warp_batch(
    images: &[ImageRef<'_>],
    jobs: &[WarpJob],
    rgb: &mut Vec<u8>,
    input: &mut Vec<f32>,
) -> Result<()> {
    let n = CROP * CROP * 3;
    rgb.clear();
    rgb.resize(jobs.len() * n, 0);
    input.clear();
    input.resize(jobs.len() * n, 0.0);
    for (j, job) in jobs.iter().enumerate() {
        let img = images.get(job.image).ok_or_else(|| {
            Error::invalid(
                "warp",
                format!("face of image {} in a batch of {}", job.image, images.len()),
            )
        })?;
        let crop = &mut rgb[j * n..(j + 1) * n];
        warp_face(img, &job.inverse, crop)?;
        to_embedder_input(crop, &mut input[j * n..(j + 1) * n]);
    }
    Ok(())
}

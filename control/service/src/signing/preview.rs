//! The thumbnails shown to a signer: every face that is not the signer's is pixelated (coarse
//! blocks, so that nobody else can be recognised), then the image is encoded as JPEG.

use image::{ImageEncoder, RgbImage};

use crate::error::{ControlError, Result};

/// A face box `[x1, y1, x2, y2]` in pixels of the original (oriented) image.
pub type FaceBox = [f64; 4];

/// Pixelates `boxes` (in the original's pixels, `orig_w` x `orig_h`; the thumbnail is scaled
/// from it) in the JPEG `thumb`, and returns a JPEG.
pub fn pixelate_faces(
    thumb: &[u8],
    orig_w: Option<i32>,
    orig_h: Option<i32>,
    boxes: &[FaceBox],
) -> Result<Vec<u8>> {
    let img = image::load_from_memory(thumb)
        .map_err(|e| ControlError::Internal(format!("thumbnail: {e}")))?;
    let mut rgb: RgbImage = img.to_rgb8();
    let (tw, th) = (f64::from(rgb.width()), f64::from(rgb.height()));
    // The thumbnail keeps the original's aspect ratio; without the original's size the boxes
    // are taken as the thumbnail's own pixels.
    let sx = orig_w.filter(|w| *w > 0).map_or(1.0, |w| tw / f64::from(w));
    let sy = orig_h.filter(|h| *h > 0).map_or(1.0, |h| th / f64::from(h));
    for b in boxes {
        let (x1, y1, x2, y2) = (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy);
        // A margin of 20 % around the box covers hair and the face's edges.
        let (mx, my) = ((x2 - x1) * 0.2, (y2 - y1) * 0.2);
        pixelate(&mut rgb, x1 - mx, y1 - my, x2 + mx, y2 + my);
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| ControlError::Internal(format!("thumbnail: {e}")))?;
    Ok(out)
}

fn clamp(v: f64, max: u32) -> u32 {
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= f64::from(max) {
        max
    } else {
        // In range: the cast truncates toward zero.
        v as u32
    }
}

/// Replaces the rectangle by blocks of its average colour (about 6 blocks across the face).
fn pixelate(img: &mut RgbImage, x1: f64, y1: f64, x2: f64, y2: f64) {
    let (w, h) = (img.width(), img.height());
    let (x1, y1, x2, y2) = (clamp(x1, w), clamp(y1, h), clamp(x2, w), clamp(y2, h));
    if x2 <= x1 || y2 <= y1 {
        return;
    }
    let side = (x2 - x1).max(y2 - y1);
    let block = (side / 6).max(4);
    let mut by = y1;
    while by < y2 {
        let ey = (by + block).min(y2);
        let mut bx = x1;
        while bx < x2 {
            let ex = (bx + block).min(x2);
            let mut sum = [0u64; 3];
            let mut n = 0u64;
            for y in by..ey {
                for x in bx..ex {
                    let p = img.get_pixel(x, y);
                    for (s, c) in sum.iter_mut().zip(p.0) {
                        *s += u64::from(c);
                    }
                    n += 1;
                }
            }
            let mean = |s: u64| {
                s.checked_div(n)
                    .and_then(|v| u8::try_from(v).ok())
                    .unwrap_or(u8::MAX)
            };
            if n > 0 {
                let avg = image::Rgb([mean(sum[0]), mean(sum[1]), mean(sum[2])]);
                for y in by..ey {
                    for x in bx..ex {
                        img.put_pixel(x, y, avg);
                    }
                }
            }
            bx = ex;
        }
        by = ey;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pixelates_only_the_boxes() {
        let mut img = RgbImage::new(64, 64);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x ^ y) * 4) as u8]);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100)
            .write_image(img.as_raw(), 64, 64, image::ExtendedColorType::Rgb8)
            .unwrap();
        // The original was 128 x 128: the box (0,0)-(40,40) is (0,0)-(20,20) here.
        let out = pixelate_faces(&jpeg, Some(128), Some(128), &[[0.0, 0.0, 40.0, 40.0]]).unwrap();
        let back = image::load_from_memory(&out).unwrap().to_rgb8();
        assert_eq!((back.width(), back.height()), (64, 64));
        // Inside the box, neighbours within a block are (nearly) equal; JPEG blurs a little.
        let a = back.get_pixel(1, 1);
        let b = back.get_pixel(3, 3);
        assert!(
            (i32::from(a[0]) - i32::from(b[0])).abs() < 12,
            "{a:?} {b:?}"
        );
        // Far outside, the gradient is kept.
        let c = back.get_pixel(50, 60);
        let d = back.get_pixel(60, 60);
        assert!((i32::from(d[0]) - i32::from(c[0])) > 20, "{c:?} {d:?}");
    }
}

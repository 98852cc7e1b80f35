//! Alignment: the least-squares similarity transform of five landmarks to the ArcFace
//! 112x112 template, the bilinear warp into the embedder input, and a sharpness measure.

use crate::decode::RgbImage;

/// Side of the aligned crop.
pub const CROP: usize = 112;

/// The ArcFace five-point template for a 112x112 crop.
pub const TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A 2x3 affine matrix `[[a, -b, tx], [b, a, ty]]` mapping image to crop coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// Scale times cos(angle).
    pub a: f32,
    /// Scale times sin(angle).
    pub b: f32,
    /// Translation x.
    pub tx: f32,
    /// Translation y.
    pub ty: f32,
}

impl Similarity {
    /// Least-squares similarity (rotation, uniform scale, translation; no reflection) taking
    /// `src` onto `dst` (Umeyama's solution specialised to 2-D).
    pub fn estimate(src: &[[f32; 2]; 5], dst: &[[f32; 2]; 5]) -> Self {
        let n = src.len() as f64;
        let (mut msx, mut msy, mut mdx, mut mdy) = (0f64, 0f64, 0f64, 0f64);
        for (s, d) in src.iter().zip(dst) {
            msx += f64::from(s[0]);
            msy += f64::from(s[1]);
            mdx += f64::from(d[0]);
            mdy += f64::from(d[1]);
        }
        msx /= n;
        msy /= n;
        mdx /= n;
        mdy /= n;
        let (mut num_a, mut num_b, mut den) = (0f64, 0f64, 0f64);
        for (s, d) in src.iter().zip(dst) {
            let (x, y) = (f64::from(s[0]) - msx, f64::from(s[1]) - msy);
            let (u, v) = (f64::from(d[0]) - mdx, f64::from(d[1]) - mdy);
            num_a += x * u + y * v;
            num_b += x * v - y * u;
            den += x * x + y * y;
        }
        let (a, b) = if den > 1e-12 {
            (num_a / den, num_b / den)
        } else {
            (1.0, 0.0)
        };
        let tx = mdx - (a * msx - b * msy);
        let ty = mdy - (b * msx + a * msy);
        Self {
            a: a as f32,
            b: b as f32,
            tx: tx as f32,
            ty: ty as f32,
        }
    }

    /// Applies the transform to a point.
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    /// The inverse transform (crop to image coordinates).
    pub fn inverse(&self) -> Self {
        let d = self.a * self.a + self.b * self.b;
        let (ia, ib) = if d > 0.0 {
            (self.a / d, -self.b / d)
        } else {
            (1.0, 0.0)
        };
        // x = ia*u - ib*v + itx, with itx chosen so that inverse(apply(p)) = p.
        let itx = -(ia * self.tx - ib * self.ty);
        let ity = -(ib * self.tx + ia * self.ty);
        Self {
            a: ia,
            b: ib,
            tx: itx,
            ty: ity,
        }
    }
}

/// Warps the face into a 112x112 RGB crop (bilinear, zero border), written interleaved to
/// `rgb` (`112*112*3` bytes).
pub fn warp(img: &RgbImage, m: &Similarity, rgb: &mut [u8]) {
    let inv = m.inverse();
    let (w, h) = (img.width as i64, img.height as i64);
    let stride = img.width as usize * 3;
    let data = &img.data;
    for y in 0..CROP {
        for x in 0..CROP {
            let [sx, sy] = inv.apply([x as f32, y as f32]);
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
                    acc[0] += wgt * f32::from(data[o]);
                    acc[1] += wgt * f32::from(data[o + 1]);
                    acc[2] += wgt * f32::from(data[o + 2]);
                }
            }
            let o = (y * CROP + x) * 3;
            for c in 0..3 {
                rgb[o + c] = acc[c].round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Writes a 112x112 interleaved RGB crop as the embedder input: planar RGB,
/// `(x - 127.5) / 127.5`.
pub fn to_embedder_input(rgb: &[u8], out: &mut [f32]) {
    let plane = CROP * CROP;
    for (i, px) in rgb.chunks_exact(3).enumerate().take(plane) {
        out[i] = (f32::from(px[0]) - 127.5) / 127.5;
        out[plane + i] = (f32::from(px[1]) - 127.5) / 127.5;
        out[2 * plane + i] = (f32::from(px[2]) - 127.5) / 127.5;
    }
}

/// Sharpness of an aligned crop: the variance of the 4-neighbour Laplacian of its grey
/// values over the central face region (rows and columns 16..96). Higher is sharper; a
/// defocused or motion-blurred face scores low.
pub fn sharpness(rgb: &[u8]) -> f32 {
    let grey = |x: usize, y: usize| -> f32 {
        let o = (y * CROP + x) * 3;
        0.299 * f32::from(rgb[o]) + 0.587 * f32::from(rgb[o + 1]) + 0.114 * f32::from(rgb[o + 2])
    };
    let (mut sum, mut sum2, mut n) = (0f64, 0f64, 0f64);
    for y in 16..96 {
        for x in 16..96 {
            let l = grey(x - 1, y) + grey(x + 1, y) + grey(x, y - 1) + grey(x, y + 1)
                - 4.0 * grey(x, y);
            let l = f64::from(l);
            sum += l;
            sum2 += l * l;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum2 / n - mean * mean).max(0.0) as f32
}

/// L2-normalises a vector in place; returns its original norm.
pub fn l2_normalize(v: &mut [f32]) -> f32 {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_recovers_a_known_similarity() {
        let truth = Similarity {
            a: 0.8,
            b: 0.3,
            tx: 5.0,
            ty: -7.0,
        };
        let src = [
            [10.0, 20.0],
            [50.0, 22.0],
            [30.0, 40.0],
            [15.0, 60.0],
            [45.0, 61.0],
        ];
        let dst = src.map(|p| truth.apply(p));
        let est = Similarity::estimate(&src, &dst);
        for (x, y) in [
            (est.a, truth.a),
            (est.b, truth.b),
            (est.tx, truth.tx),
            (est.ty, truth.ty),
        ] {
            assert!((x - y).abs() < 1e-3, "{est:?}");
        }
        let back = est.inverse().apply(est.apply([3.0, 4.0]));
        assert!((back[0] - 3.0).abs() < 1e-3 && (back[1] - 4.0).abs() < 1e-3);
    }

    #[test]
    fn identity_warp_copies_pixels_and_blur_lowers_sharpness() {
        let mut data = vec![0u8; CROP * CROP * 3];
        for y in 0..CROP {
            for x in 0..CROP {
                let v = if (x / 4 + y / 4) % 2 == 0 { 230 } else { 20 };
                data[(y * CROP + x) * 3..(y * CROP + x) * 3 + 3].fill(v);
            }
        }
        let img =
            RgbImage::new(CROP as u32, CROP as u32, data.clone()).unwrap_or_else(|| unreachable!());
        let mut out = vec![0u8; CROP * CROP * 3];
        warp(
            &img,
            &Similarity {
                a: 1.0,
                b: 0.0,
                tx: 0.0,
                ty: 0.0,
            },
            &mut out,
        );
        assert_eq!(out, data);
        let sharp = sharpness(&out);
        // 3x3 box blur
        let mut blurred = out.clone();
        for y in 1..CROP - 1 {
            for x in 1..CROP - 1 {
                for c in 0..3 {
                    let mut s = 0u32;
                    for dy in 0..3 {
                        for dx in 0..3 {
                            s += u32::from(out[((y + dy - 1) * CROP + x + dx - 1) * 3 + c]);
                        }
                    }
                    blurred[(y * CROP + x) * 3 + c] = (s / 9) as u8;
                }
            }
        }
        assert!(
            sharpness(&blurred) < sharp / 4.0,
            "{} vs {}",
            sharpness(&blurred),
            sharp
        );
    }
}

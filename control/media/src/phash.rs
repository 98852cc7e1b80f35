//! 64-bit DCT perceptual hash (pHash): the image is reduced to 32x32 grey, transformed with a
//! 2-D DCT-II, and each of the 8x8 lowest-frequency coefficients becomes one bit (above the
//! median of those 64 or not). Resizing, recompression and small edits flip few bits; a
//! different picture flips about half of them.

use image::imageops::{self, FilterType};
use image::{GrayImage, Luma};

const N: usize = 32;
const K: usize = 8;

/// Hamming distance between two hashes (0..=64).
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// Default largest distance at which two images count as near-duplicates.
pub const NEAR_DUPLICATE_MAX_DISTANCE: u32 = 10;

/// The hash as 16 lowercase hex characters (how it is stored).
pub fn to_hex(h: u64) -> String {
    format!("{h:016x}")
}

/// Parses 16 hex characters.
pub fn from_hex(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// The pHash of an interleaved RGB8 image (`data.len() == width * height * 3`).
pub fn phash_rgb(width: u32, height: u32, data: &[u8]) -> Option<u64> {
    if width == 0 || height == 0 || data.len() != width as usize * height as usize * 3 {
        return None;
    }
    // Grey (BT.601 luma), then a box-filtered reduction to 32x32.
    let mut grey = GrayImage::new(width, height);
    for (i, p) in grey.pixels_mut().enumerate() {
        let r = f32::from(data[3 * i]);
        let g = f32::from(data[3 * i + 1]);
        let b = f32::from(data[3 * i + 2]);
        *p = Luma([(0.299 * r + 0.587 * g + 0.114 * b)
            .round()
            .clamp(0.0, 255.0) as u8]);
    }
    // Pre-shrink with a cheap filter so the final reduction sees at most 4x the target.
    let pre = if width > 4 * N as u32 || height > 4 * N as u32 {
        imageops::resize(&grey, 4 * N as u32, 4 * N as u32, FilterType::Triangle)
    } else {
        grey
    };
    let small = imageops::resize(&pre, N as u32, N as u32, FilterType::Triangle);
    let px: Vec<f64> = small.pixels().map(|p| f64::from(p.0[0])).collect();
    Some(phash_32(&px))
}

fn phash_32(px: &[f64]) -> u64 {
    // cos table c[u][x] = cos((2x+1) u pi / 2N)
    let mut c = [[0f64; N]; K];
    for (u, row) in c.iter_mut().enumerate() {
        for (x, v) in row.iter_mut().enumerate() {
            *v = ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / (2 * N) as f64).cos();
        }
    }
    // Rows: tmp[y][u] = sum_x px[y][x] c[u][x]
    let mut tmp = [[0f64; K]; N];
    for y in 0..N {
        for u in 0..K {
            tmp[y][u] = (0..N).map(|x| px[y * N + x] * c[u][x]).sum();
        }
    }
    let mut coef = [0f64; K * K];
    for v in 0..K {
        for u in 0..K {
            coef[v * K + u] = (0..N).map(|y| tmp[y][u] * c[v][y]).sum();
        }
    }
    // Median of the coefficients without the DC term (which only says how bright).
    let mut sorted: Vec<f64> = coef[1..].to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mut h = 0u64;
    for (i, v) in coef.iter().enumerate() {
        if *v > median {
            h |= 1 << i;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_distance() {
        assert_eq!(
            from_hex(&to_hex(0xdead_beef_0123_4567)),
            Some(0xdead_beef_0123_4567)
        );
        assert_eq!(from_hex("xyz"), None);
        assert_eq!(hamming(0, u64::MAX), 64);
        assert_eq!(hamming(0b1011, 0b0001), 2);
    }

    #[test]
    fn synthetic_gradients() {
        let w = 200u32;
        let h = 150u32;
        let mut a = Vec::new();
        let mut b = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = ((x * 255) / w) as u8;
                a.extend_from_slice(&[v, v, v]);
                let v2 = ((y * 255) / h) as u8;
                b.extend_from_slice(&[v2, v2, v2]);
            }
        }
        let ha = phash_rgb(w, h, &a).unwrap();
        let hb = phash_rgb(w, h, &b).unwrap();
        assert!(hamming(ha, hb) > 16, "{}", hamming(ha, hb));
        assert!(phash_rgb(0, 0, &[]).is_none());
        assert!(phash_rgb(2, 2, &[0; 5]).is_none());
    }
}

//! Twins of `l2norm.cu` and `topk.cu`: L2 normalisation of embedding rows, and exact top-k
//! search of a batch of embeddings against a gallery matrix (on the device: cuBLAS SGEMM for
//! the scores, then the top-k kernel per row). Ties are broken by the lower gallery index, so
//! the device's top-k over the same scores is identical.

use crate::error::{Error, Result};

/// L2-normalises every `dim`-wide row of `rows` in place (a zero row stays zero); returns
/// the original norms. Same arithmetic as `models::align::l2_normalize`.
pub fn l2_normalize_rows(rows: &mut [f32], dim: usize) -> Result<Vec<f32>> {
    if dim == 0 || !rows.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            "l2_normalize",
            format!("{} values are not rows of {dim}", rows.len()),
        ));
    }
    Ok(rows
        .chunks_exact_mut(dim)
        .map(|v| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                for x in v.iter_mut() {
                    *x /= norm;
                }
            }
            norm
        })
        .collect())
}

/// One hit: gallery row and score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Row of the gallery matrix.
    pub index: u32,
    /// Dot product (cosine for unit vectors).
    pub score: f32,
}

/// Largest `k` the device kernel supports.
pub const MAX_K: usize = 64;

/// The `k` best of each `cols`-wide row of `scores` (best first; ties: lower index first;
/// NaN scores never win).
pub fn topk_rows(scores: &[f32], cols: usize, k: usize) -> Result<Vec<Vec<Hit>>> {
    if k == 0 || k > MAX_K {
        return Err(Error::invalid(
            "topk",
            format!("k must be 1..={MAX_K}, got {k}"),
        ));
    }
    if cols == 0 || !scores.len().is_multiple_of(cols) {
        return Err(Error::invalid(
            "topk",
            format!("{} scores are not rows of {cols}", scores.len()),
        ));
    }
    Ok(scores
        .chunks_exact(cols)
        .map(|row| {
            // Insertion into a sorted list of at most k, as each device thread does.
            let mut best: Vec<Hit> = Vec::with_capacity(k + 1);
            for (j, &s) in row.iter().enumerate() {
                if s.is_nan() {
                    continue;
                }
                if best.len() == k && !better(s, j as u32, &best[k - 1]) {
                    continue;
                }
                let pos = best
                    .iter()
                    .position(|h| better(s, j as u32, h))
                    .unwrap_or(best.len());
                best.insert(
                    pos,
                    Hit {
                        index: j as u32,
                        score: s,
                    },
                );
                best.truncate(k);
            }
            best
        })
        .collect())
}

/// Whether `(s, j)` ranks before `h`.
#[inline]
fn better(s: f32, j: u32, h: &Hit) -> bool {
    s > h.score || (s == h.score && j < h.index)
}

/// Scores of every query row against every gallery row (`queries x gallery`, row-major):
/// what cuBLAS SGEMM computes on the device.
pub fn scores(queries: &[f32], gallery: &[f32], dim: usize) -> Result<Vec<f32>> {
    if dim == 0 || !queries.len().is_multiple_of(dim) || !gallery.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            "search",
            format!(
                "queries ({}) and gallery ({}) are not rows of {dim}",
                queries.len(),
                gallery.len()
            ),
        ));
    }
    let n = gallery.len() / dim;
    let mut out = Vec::with_capacity(queries.len() / dim * n);
    for q in queries.chunks_exact(dim) {
        for g in gallery.chunks_exact(dim) {
            out.push(q.iter().zip(g).map(|(a, b)| a * b).sum());
        }
    }
    Ok(out)
}

/// Exact search: the `k` best gallery rows of every query.
pub fn search(queries: &[f32], gallery: &[f32], dim: usize, k: usize) -> Result<Vec<Vec<Hit>>> {
    let s = scores(queries, gallery, dim)?;
    let n = gallery.len() / dim;
    if n == 0 {
        return Ok(vec![Vec::new(); queries.len() / dim]);
    }
    topk_rows(&s, n, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_breaks_ties_by_index_and_skips_nan() {
        let s = [0.5, f32::NAN, 0.9, 0.5, 0.1];
        let r = topk_rows(&s, 5, 3).unwrap();
        let idx: Vec<u32> = r[0].iter().map(|h| h.index).collect();
        assert_eq!(idx, vec![2, 0, 3]);
    }

    #[test]
    fn normalise_rows() {
        let mut v = [3.0, 4.0, 0.0, 0.0];
        let n = l2_normalize_rows(&mut v, 2).unwrap();
        assert_eq!(n, vec![5.0, 0.0]);
        assert_eq!(v, [0.6, 0.8, 0.0, 0.0]);
        assert!(topk_rows(&v, 2, 0).is_err());
    }
}

//! The in-memory index of one tenant: templates in a contiguous matrix searched exactly
//! (dot products over unit vectors), plus an HNSW graph (hnsw_rs) once the gallery is large.
//! hnsw_rs cannot delete: removed templates are filtered out at search time (only live ids
//! pass) and the graph is rebuilt when too many of its points are gone.

use std::collections::HashMap;
use std::sync::Arc;

use hnsw_rs::prelude::{Distance, Hnsw};

/// Cosine distance over unit vectors: `1 - a·b`, clamped at 0.
#[derive(Debug, Default, Clone, Copy)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Dot product, written so the compiler vectorises it (8 independent accumulators).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// HNSW parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HnswParams {
    /// Links per node (M).
    pub m: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
    /// Candidate list size while searching (at least k).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// A built graph and the largest template id it was built from.
pub struct Graph {
    /// The graph; data ids are template ids.
    pub hnsw: Hnsw<'static, f32, CosineDistance>,
    /// Points inserted (live or not).
    pub points: usize,
}

/// One candidate person for a face.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Person id.
    pub person: Arc<str>,
    /// Person score: the best cosine similarity over the person's templates.
    pub score: f32,
    /// The template that gave the score.
    pub template: u64,
}

/// The in-memory index of one tenant.
#[derive(Default)]
pub struct Index {
    dim: usize,
    ids: Vec<u64>,
    persons: Vec<Arc<str>>,
    matrix: Vec<f32>,
    row_of: HashMap<u64, usize>,
    graph: Option<Arc<Graph>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("templates", &self.ids.len())
            .field("graph", &self.graph.as_ref().map(|g| g.points))
            .finish()
    }
}

impl Index {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            ..Self::default()
        }
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Live templates.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no live templates.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Distinct persons with at least one template.
    pub fn persons(&self) -> usize {
        let mut p: Vec<&str> = self.persons.iter().map(|s| &**s).collect();
        p.sort_unstable();
        p.dedup();
        p.len()
    }

    /// Whether a template id is live.
    pub fn contains(&self, id: u64) -> bool {
        self.row_of.contains_key(&id)
    }

    /// Adds a template (the vector must be unit length and `dim` long).
    pub fn add(&mut self, id: u64, person: Arc<str>, v: &[f32]) {
        if self.row_of.contains_key(&id) {
            return;
        }
        self.row_of.insert(id, self.ids.len());
        self.ids.push(id);
        self.persons.push(person);
        self.matrix.extend_from_slice(v);
        if let Some(g) = &self.graph {
            g.hnsw.insert_slice((v, id as usize));
        }
    }

    /// Removes templates by id; returns those that were live.
    pub fn remove_ids(&mut self, ids: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        for &id in ids {
            let Some(row) = self.row_of.remove(&id) else {
                continue;
            };
            let last = self.ids.len() - 1;
            if row != last {
                let moved = self.ids[last];
                self.ids.swap(row, last);
                self.persons.swap(row, last);
                let d = self.dim;
                self.matrix.copy_within(last * d..(last + 1) * d, row * d);
                self.row_of.insert(moved, row);
            }
            self.ids.pop();
            self.persons.pop();
            // Overwrite the freed row before shrinking so the vector does not linger.
            let d = self.dim;
            let len = self.matrix.len();
            self.matrix[len - d..].fill(0.0);
            self.matrix.truncate(len - d);
            out.push(id);
        }
        out
    }

    /// Template ids of a person.
    pub fn ids_of(&self, person: &str) -> Vec<u64> {
        self.ids
            .iter()
            .zip(&self.persons)
            .filter(|(_, p)| &***p == person)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Person of a template.
    pub fn person_of(&self, id: u64) -> Option<&Arc<str>> {
        self.row_of.get(&id).map(|&r| &self.persons[r])
    }

    /// All live templates as (id, person, vector).
    pub fn iter(&self) -> impl Iterator<Item = (u64, &str, &[f32])> {
        self.ids
            .iter()
            .zip(&self.persons)
            .zip(self.matrix.chunks_exact(self.dim.max(1)))
            .map(|((id, p), v)| (*id, &**p, v))
    }

    /// Whether searches use the graph.
    pub fn uses_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// Points in the graph that are no longer live.
    pub fn graph_stale(&self) -> usize {
        self.graph
            .as_ref()
            .map(|g| g.points.saturating_sub(self.len()))
            .unwrap_or(0)
    }

    /// Drops the graph (searches become exact).
    pub fn drop_graph(&mut self) {
        self.graph = None;
    }

    /// Copies what a graph build needs: (ids, matrix, largest id).
    pub fn build_input(&self) -> (Vec<u64>, Vec<f32>, u64) {
        let max = self.ids.iter().copied().max().unwrap_or(0);
        (self.ids.clone(), self.matrix.clone(), max)
    }

    /// Installs a graph built from [`Index::build_input`], adding templates enrolled since.
    pub fn install_graph(&mut self, g: Graph, built_up_to: u64) {
        let mut points = g.points;
        for (id, _, v) in self.iter() {
            if id > built_up_to {
                g.hnsw.insert_slice((v, id as usize));
                points += 1;
            }
        }
        self.graph = Some(Arc::new(Graph {
            hnsw: g.hnsw,
            points,
        }));
    }

    /// The `k` best persons for a unit query with score >= `threshold`, best first.
    pub fn search(&self, q: &[f32], k: usize, threshold: f32, ef: usize) -> Vec<Candidate> {
        if self.is_empty() || k == 0 || q.len() != self.dim {
            return Vec::new();
        }
        // Enough templates to find k distinct persons in the usual case.
        let m = (k * 4 + 8).min(self.len());
        let hits: Vec<(f32, usize)> = match &self.graph {
            Some(g) => {
                let filter = |id: &usize| self.row_of.contains_key(&(*id as u64));
                g.hnsw
                    .search_filter(q, m, ef.max(m), Some(&filter))
                    .into_iter()
                    .filter_map(|n| {
                        self.row_of
                            .get(&(n.d_id as u64))
                            .map(|&r| (1.0 - n.distance, r))
                    })
                    .collect()
            }
            None => self.exact_top(q, m),
        };
        let mut best: Vec<Candidate> = Vec::with_capacity(k);
        let mut sorted = hits;
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (score, row) in sorted {
            if score < threshold {
                break;
            }
            let person = &self.persons[row];
            if best.iter().any(|c| c.person == *person) {
                continue;
            }
            best.push(Candidate {
                person: person.clone(),
                score,
                template: self.ids[row],
            });
            if best.len() == k {
                break;
            }
        }
        best
    }

    /// Exact top-`m` rows by dot product.
    pub fn exact_top(&self, q: &[f32], m: usize) -> Vec<(f32, usize)> {
        let mut scores: Vec<(f32, usize)> = self
            .matrix
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(r, v)| (dot(q, v), r))
            .collect();
        if m < scores.len() {
            scores.select_nth_unstable_by(m, |a, b| b.0.total_cmp(&a.0));
            scores.truncate(m);
        }
        scores
    }

    /// Approximate resident bytes of the index (vectors, ids, graph).
    pub fn memory_bytes(&self) -> usize {
        let base = self.matrix.capacity() * 4
            + self.ids.capacity() * 8
            + self.persons.capacity() * 16
            + self.row_of.capacity() * 24;
        let graph = self
            .graph
            .as_ref()
            .map(|g| g.points * (self.dim * 4 + 40 + 2 * 16 * 48))
            .unwrap_or(0);
        base + graph
    }
}

/// Builds a graph over `ids`/`matrix` with hnsw_rs (parallel insertion).
pub fn build_graph(ids: &[u64], matrix: &[f32], dim: usize, p: &HnswParams) -> Graph {
    let n = ids.len();
    let layers = 16;
    let hnsw = Hnsw::new(
        p.m.clamp(2, 255),
        n.max(1),
        layers,
        p.ef_construction.max(p.m),
        CosineDistance,
    );
    let data: Vec<(&[f32], usize)> = ids
        .iter()
        .zip(matrix.chunks_exact(dim.max(1)))
        .map(|(id, v)| (v, *id as usize))
        .collect();
    hnsw.parallel_insert_slice(&data);
    Graph { hnsw, points: n }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut v: Vec<f32> = (0..dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|a| *a /= n);
        v
    }

    #[test]
    fn exact_and_graph_agree_and_removed_templates_never_match() {
        let dim = 32;
        let mut idx = Index::new(dim);
        for i in 0..3000u64 {
            idx.add(i, Arc::from(format!("p{}", i / 3)), &unit(i, dim));
        }
        let q = unit(1234, dim);
        let exact = idx.search(&q, 5, -1.0, 64);
        assert_eq!(exact[0].person.as_ref(), "p411");
        assert!((exact[0].score - 1.0).abs() < 1e-5);
        let (ids, m, max) = idx.build_input();
        let g = build_graph(&ids, &m, dim, &HnswParams::default());
        idx.install_graph(g, max);
        let approx = idx.search(&q, 5, -1.0, 64);
        assert_eq!(approx[0], exact[0]);
        // Remove the person: neither path returns it any more.
        let gone = idx.remove_ids(&idx.ids_of("p411"));
        assert_eq!(gone.len(), 3);
        assert!(
            idx.search(&q, 5, -1.0, 64)
                .iter()
                .all(|c| c.person.as_ref() != "p411")
        );
        idx.drop_graph();
        assert!(
            idx.search(&q, 5, -1.0, 64)
                .iter()
                .all(|c| c.person.as_ref() != "p411")
        );
        // Threshold: nothing below it, never the nearest stranger.
        assert!(idx.search(&unit(99_999, dim), 5, 0.99, 64).is_empty());
        assert_eq!(idx.len(), 2997);
        assert_eq!(idx.iter().count(), 2997);
    }
}

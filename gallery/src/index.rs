//! The in-memory index of one tenant: templates in a contiguous matrix searched exactly
//! (dot products over unit vectors), plus our HNSW graph ([`crate::hnsw`]) over the same
//! matrix once the gallery is large. With a graph, a removal tombstones the row at once (its
//! vector is zeroed, searches skip it) and the graph is rebuilt over the live rows when too
//! many are gone; without one, rows are compacted at once.

use std::collections::HashMap;
use std::sync::Arc;

use crate::hnsw::Hnsw;

/// Dot product, with the widest SIMD the CPU has (detected at run time: AVX2 + FMA on x86-64,
/// else SSE2), 4 independent accumulators.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    simd().dispatch(Dot(a, b))
}

/// The CPU's SIMD level, detected once.
#[inline]
pub fn simd() -> pulp::Arch {
    static ARCH: std::sync::OnceLock<pulp::Arch> = std::sync::OnceLock::new();
    *ARCH.get_or_init(pulp::Arch::new)
}

/// A dot product for [`pulp::Arch::dispatch`].
pub struct Dot<'a>(pub &'a [f32], pub &'a [f32]);

impl pulp::WithSimd for Dot<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> f32 {
        let n = self.0.len().min(self.1.len());
        let (a, ta) = S::as_simd_f32s(&self.0[..n]);
        let (b, tb) = S::as_simd_f32s(&self.1[..n]);
        let zero = simd.splat_f32s(0.0);
        let mut acc = [zero; 4];
        let ca = a.chunks_exact(4);
        let cb = b.chunks_exact(4);
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for i in 0..4 {
                acc[i] = simd.mul_add_f32s(x[i], y[i], acc[i]);
            }
        }
        for (x, y) in ra.iter().zip(rb) {
            acc[0] = simd.mul_add_f32s(*x, *y, acc[0]);
        }
        let s = simd.add_f32s(simd.add_f32s(acc[0], acc[1]), simd.add_f32s(acc[2], acc[3]));
        let mut r = simd.reduce_sum_f32s(s);
        for (x, y) in ta.iter().zip(tb) {
            r += x * y;
        }
        r
    }
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
    /// Threads of a graph build (0: all cores); enrolments insert on their own thread.
    pub build_threads: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            build_threads: 0,
        }
    }
}

/// A graph built off-line from [`Index::build_input`], with the rows it was built over.
pub struct Built {
    /// Template ids of the rows.
    pub ids: Vec<u64>,
    /// The rows (becomes the index's matrix when installed).
    pub matrix: Vec<f32>,
    /// The graph over the rows.
    pub graph: Hnsw,
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
    /// Template id per row (tombstoned rows keep theirs until the next rebuild).
    ids: Vec<u64>,
    persons: Vec<Arc<str>>,
    matrix: Vec<f32>,
    /// Live templates only.
    row_of: HashMap<u64, usize>,
    /// Tombstones (only while there is a graph: without one rows are compacted).
    dead: Vec<bool>,
    dead_count: usize,
    graph: Option<Hnsw>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("templates", &self.len())
            .field("graph", &self.graph.as_ref().map(Hnsw::len))
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
        self.row_of.len()
    }

    /// Whether there are no live templates.
    pub fn is_empty(&self) -> bool {
        self.row_of.is_empty()
    }

    fn live_rows(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.ids.len()).filter(|&r| !self.dead[r])
    }

    /// Distinct persons with at least one template.
    pub fn persons(&self) -> usize {
        let p: std::collections::HashSet<&str> =
            self.live_rows().map(|r| &*self.persons[r]).collect();
        p.len()
    }

    /// Whether a template id is live.
    pub fn contains(&self, id: u64) -> bool {
        self.row_of.contains_key(&id)
    }

    fn push_row(&mut self, id: u64, person: Arc<str>, v: &[f32]) -> usize {
        let row = self.ids.len();
        self.row_of.insert(id, row);
        self.ids.push(id);
        self.persons.push(person);
        self.dead.push(false);
        self.matrix.extend_from_slice(v);
        row
    }

    /// Adds a template (the vector must be unit length and `dim` long); with a graph it is
    /// inserted into it at once.
    pub fn add(&mut self, id: u64, person: Arc<str>, v: &[f32]) {
        if self.row_of.contains_key(&id) || v.len() != self.dim {
            return;
        }
        let row = self.push_row(id, person, v);
        if let Some(g) = &mut self.graph {
            g.grow(&self.matrix, row + 1);
            g.insert(&self.matrix, row as u32);
        }
    }

    /// Removes templates by id; returns those that were live. Their vectors are overwritten
    /// at once and searches never return them.
    pub fn remove_ids(&mut self, ids: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        let d = self.dim;
        for &id in ids {
            let Some(row) = self.row_of.remove(&id) else {
                continue;
            };
            out.push(id);
            if self.graph.is_some() {
                // Tombstone: the graph still routes through the row, now a zero vector.
                self.dead[row] = true;
                self.dead_count += 1;
                self.matrix[row * d..(row + 1) * d].fill(0.0);
                if let Some(g) = &mut self.graph {
                    g.forget(row as u32);
                }
                self.persons[row] = Arc::from("");
                continue;
            }
            let last = self.ids.len() - 1;
            if row != last {
                let moved = self.ids[last];
                self.ids.swap(row, last);
                self.persons.swap(row, last);
                self.matrix.copy_within(last * d..(last + 1) * d, row * d);
                self.row_of.insert(moved, row);
            }
            self.ids.pop();
            self.persons.pop();
            self.dead.pop();
            // Overwrite the freed row before shrinking so the vector does not linger.
            let len = self.matrix.len();
            self.matrix[len - d..].fill(0.0);
            self.matrix.truncate(len - d);
        }
        out
    }

    /// Template ids of a person.
    pub fn ids_of(&self, person: &str) -> Vec<u64> {
        self.live_rows()
            .filter(|&r| &*self.persons[r] == person)
            .map(|r| self.ids[r])
            .collect()
    }

    /// Person of a template.
    pub fn person_of(&self, id: u64) -> Option<&Arc<str>> {
        self.row_of.get(&id).map(|&r| &self.persons[r])
    }

    /// All live templates as (id, person, vector).
    pub fn iter(&self) -> impl Iterator<Item = (u64, &str, &[f32])> {
        let d = self.dim;
        self.live_rows().map(move |r| {
            (
                self.ids[r],
                &*self.persons[r],
                &self.matrix[r * d..(r + 1) * d],
            )
        })
    }

    /// Whether searches use the graph.
    pub fn uses_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// The rows (tombstoned ones are zero), row `i` being graph node `i`.
    pub fn matrix(&self) -> &[f32] {
        &self.matrix
    }

    /// The graph, if any.
    pub fn graph(&self) -> Option<&Hnsw> {
        self.graph.as_ref()
    }

    /// Removed templates still holding a (zeroed) row in the graph.
    pub fn graph_stale(&self) -> usize {
        self.dead_count
    }

    /// Drops the graph and compacts the rows (searches become exact).
    pub fn drop_graph(&mut self) {
        self.graph = None;
        if self.dead_count == 0 {
            return;
        }
        let d = self.dim;
        let mut w = 0;
        for r in 0..self.ids.len() {
            if self.dead[r] {
                continue;
            }
            if w != r {
                self.ids[w] = self.ids[r];
                self.persons.swap(w, r);
                self.matrix.copy_within(r * d..(r + 1) * d, w * d);
                self.row_of.insert(self.ids[w], w);
            }
            w += 1;
        }
        self.ids.truncate(w);
        self.persons.truncate(w);
        self.dead = vec![false; w];
        self.matrix[w * d..].fill(0.0);
        self.matrix.truncate(w * d);
        self.dead_count = 0;
    }

    /// Copies what a graph build needs: the live (ids, rows).
    pub fn build_input(&self) -> (Vec<u64>, Vec<f32>) {
        let mut ids = Vec::with_capacity(self.len());
        let mut matrix = Vec::with_capacity(self.len() * self.dim);
        for (id, _, v) in self.iter() {
            ids.push(id);
            matrix.extend_from_slice(v);
        }
        (ids, matrix)
    }

    /// Installs a graph built from [`Index::build_input`]: its rows become the index's rows
    /// (templates removed since are tombstoned, templates enrolled since are inserted).
    pub fn install_graph(&mut self, built: Built) {
        let Built {
            ids,
            mut matrix,
            mut graph,
        } = built;
        let d = self.dim;
        let n = ids.len();
        let mut persons = Vec::with_capacity(n);
        let mut dead = vec![false; n];
        let mut dead_count = 0;
        let mut row_of = HashMap::with_capacity(self.len());
        let gone: Arc<str> = Arc::from("");
        for (r, id) in ids.iter().enumerate() {
            match self.row_of.get(id) {
                Some(&old) => {
                    persons.push(self.persons[old].clone());
                    row_of.insert(*id, r);
                }
                None => {
                    persons.push(gone.clone());
                    dead[r] = true;
                    dead_count += 1;
                    matrix[r * d..(r + 1) * d].fill(0.0);
                    graph.forget(r as u32);
                }
            }
        }
        // Enrolled while the graph was being built: not in its rows (ids only grow).
        let built_max = ids.iter().copied().max();
        let since: Vec<(u64, Arc<str>, Vec<f32>)> = self
            .live_rows()
            .filter(|&r| built_max.is_none_or(|m| self.ids[r] > m))
            .map(|r| {
                (
                    self.ids[r],
                    self.persons[r].clone(),
                    self.matrix[r * d..(r + 1) * d].to_vec(),
                )
            })
            .collect();
        // Zero the old rows before dropping them.
        self.matrix.fill(0.0);
        self.ids = ids;
        self.persons = persons;
        self.matrix = matrix;
        self.row_of = row_of;
        self.dead = dead;
        self.dead_count = dead_count;
        graph.grow(&self.matrix, self.ids.len() + since.len());
        self.graph = Some(graph);
        for (id, p, v) in since {
            self.add(id, p, &v);
        }
    }

    /// The `k` best persons for a unit query with score >= `threshold`, best first.
    pub fn search(&self, q: &[f32], k: usize, threshold: f32, ef: usize) -> Vec<Candidate> {
        if self.is_empty() || k == 0 || q.len() != self.dim {
            return Vec::new();
        }
        // Enough templates to find k distinct persons in the usual case.
        let m = (k * 4 + 8).min(self.len());
        let mut hits: Vec<(f32, usize)> = match &self.graph {
            Some(g) => {
                let keep = |r: u32| !self.dead[r as usize];
                let keep = (self.dead_count > 0).then_some(&keep);
                g.search(&self.matrix, q, m, ef.max(m), keep)
                    .into_iter()
                    .map(|(s, r)| (s, r as usize))
                    .collect()
            }
            None => self.exact_top(q, m),
        };
        hits.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut best: Vec<Candidate> = Vec::with_capacity(k);
        for (score, row) in hits {
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

    /// Exact top-`m` live rows by dot product, as (score, row), unordered.
    pub fn exact_top(&self, q: &[f32], m: usize) -> Vec<(f32, usize)> {
        let mut scores: Vec<(f32, usize)> = self
            .matrix
            .chunks_exact(self.dim.max(1))
            .enumerate()
            .filter(|(r, _)| !self.dead[*r])
            .map(|(r, v)| (dot(q, v), r))
            .collect();
        if m < scores.len() {
            scores.select_nth_unstable_by(m, |a, b| b.0.total_cmp(&a.0));
            scores.truncate(m);
        }
        scores
    }

    /// Approximate resident bytes of the index: vectors, ids, person names (shared per
    /// person), the id map, tombstones and graph, with the allocator's rounding.
    pub fn memory_bytes(&self) -> usize {
        let rows = self.ids.capacity();
        // hashbrown: (u64, usize) buckets + 1 control byte, at most 7/8 full.
        let map = self.row_of.capacity() * 8 / 7 * 17;
        // One Arc<str> header + name per person, shared by its templates.
        let names = self.persons() * 40;
        self.matrix.capacity() * 4
            + rows * 8
            + self.persons.capacity() * 16
            + names
            + map
            + self.dead.capacity()
            + self.graph.as_ref().map_or(0, Hnsw::memory_bytes)
    }
}

/// Builds a graph over `ids`/`matrix` with `threads` threads (0: all cores).
pub fn build_graph(ids: Vec<u64>, matrix: Vec<f32>, dim: usize, p: &HnswParams) -> Built {
    let n = ids.len();
    let mut graph = Hnsw::new(dim, p.m, p.ef_construction);
    graph.grow(&matrix, n);
    let threads = match p.build_threads {
        0 => std::thread::available_parallelism().map_or(1, |c| c.get()),
        t => t,
    };
    graph.insert_range(&matrix, 0, n, threads);
    Built { ids, matrix, graph }
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
        let (ids, m) = idx.build_input();
        let g = build_graph(ids, m, dim, &HnswParams::default());
        idx.install_graph(g);
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

    fn person_index(n: u64, dim: usize) -> Index {
        let mut idx = Index::new(dim);
        for i in 0..n {
            idx.add(i, Arc::from(format!("p{}", i / 3)), &unit(i, dim));
        }
        idx
    }

    fn with_graph(mut idx: Index) -> Index {
        let (ids, m) = idx.build_input();
        let dim = idx.dim();
        idx.install_graph(build_graph(ids, m, dim, &HnswParams::default()));
        idx
    }

    #[test]
    fn graph_search_agrees_with_exact_search() {
        let dim = 24;
        let exact = person_index(4000, dim);
        let graph = with_graph(person_index(4000, dim));
        assert!(graph.uses_graph() && !exact.uses_graph());
        let mut same = 0;
        for s in 0..200u64 {
            let q = unit(100_000 + s, dim);
            let a = exact.search(&q, 3, -1.0, 128);
            let b = graph.search(&q, 3, -1.0, 128);
            assert_eq!(a.len(), 3);
            assert_eq!(b.len(), 3);
            same += (a == b) as usize;
        }
        assert!(
            same >= 190,
            "graph and exact agree on only {same}/200 queries"
        );
        // A template's own vector finds it, with score 1.
        let hit = graph.search(&unit(1234, dim), 1, 0.99, 64);
        assert_eq!(hit[0].template, 1234);
        assert!((hit[0].score - 1.0).abs() < 1e-5);
    }

    #[test]
    fn enrolment_after_the_build_is_searchable_at_once() {
        let dim = 24;
        let mut idx = with_graph(person_index(3000, dim));
        for i in 3000..3300u64 {
            idx.add(i, Arc::from(format!("new{i}")), &unit(i, dim));
        }
        assert_eq!(idx.graph().map(Hnsw::len), Some(3300));
        for i in (3000..3300u64).step_by(7) {
            let hit = idx.search(&unit(i, dim), 1, 0.99, 64);
            assert_eq!(hit.len(), 1, "template {i} not found");
            assert_eq!(hit[0].person.as_ref(), format!("new{i}"));
        }
    }

    #[test]
    fn removal_with_a_graph_tombstones_zeroes_and_rebuild_compacts() {
        let dim = 24;
        let mut idx = with_graph(person_index(3000, dim));
        let q = unit(1500, dim);
        assert_eq!(idx.search(&q, 1, 0.9, 64)[0].person.as_ref(), "p500");
        let removed = idx.remove_ids(&idx.ids_of("p500"));
        assert_eq!(removed, vec![1500, 1501, 1502]);
        assert_eq!(idx.len(), 2997);
        assert_eq!(idx.graph_stale(), 3);
        assert!(
            idx.search(&q, 10, -1.0, 64)
                .iter()
                .all(|c| c.person.as_ref() != "p500")
        );
        assert!(idx.search(&q, 1, 0.99, 64).is_empty());
        // The removed rows hold no trace of the vectors.
        assert!(idx.iter().all(|(id, _, _)| !(1500..1503).contains(&id)));
        assert!(idx.matrix[1500 * dim..1503 * dim].iter().all(|x| *x == 0.0));
        let coded_zero = |idx: &Index, row: u32| {
            idx.graph()
                .and_then(|g| g.code(row))
                .is_some_and(|c| c.iter().all(|&x| x == 0))
        };
        assert!(
            (1500..1503).all(|r| coded_zero(&idx, r)),
            "codes of removed rows"
        );
        assert!(!coded_zero(&idx, 1499));
        // A rebuild over the live rows drops the tombstones; removals during it are honoured.
        let (ids, m) = idx.build_input();
        assert_eq!(ids.len(), 2997);
        let built = build_graph(ids, m, dim, &HnswParams::default());
        idx.remove_ids(&idx.ids_of("p7"));
        idx.add(9000, Arc::from("late"), &unit(9000, dim));
        idx.install_graph(built);
        // Removed while the graph was built: their rows in the new graph are zero too.
        assert!((21..24).all(|r| coded_zero(&idx, r) && idx.ids[r as usize] == r as u64));
        assert_eq!(idx.len(), 2995);
        assert_eq!(idx.graph_stale(), 3);
        assert!(
            idx.search(&unit(21, dim), 5, -1.0, 64)
                .iter()
                .all(|c| c.person.as_ref() != "p7")
        );
        assert_eq!(
            idx.search(&unit(9000, dim), 1, 0.99, 64)[0].person.as_ref(),
            "late"
        );
        // Dropping the graph compacts: the same answers, exactly.
        let before = idx.search(&unit(42, dim), 5, -1.0, 512);
        idx.drop_graph();
        assert_eq!(idx.graph_stale(), 0);
        assert_eq!(idx.matrix.len(), 2995 * dim);
        assert_eq!(idx.search(&unit(42, dim), 5, -1.0, 512), before);
        assert_eq!(idx.persons(), 999);
    }
}

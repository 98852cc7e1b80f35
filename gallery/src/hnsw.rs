//! Our HNSW graph (Malkov & Yashunin), written for this gallery instead of hnsw_rs (see the
//! README, "Face index", for the measurements that decided it).
//!
//! The graph holds no vectors: node `i` is row `i` of the caller's flat, contiguous `f32`
//! matrix (the [`crate::index::Index`]'s own, stored once), and every operation takes that
//! matrix. Links are flat `u32` lists: level 0 in one array (`2*M` slots per node), upper
//! levels (`M` slots) in a small per-node block, only for the few nodes that have them.
//! Links are atomics, so searches read them without locks while other threads insert; writers
//! take the node's lock. Neighbours are chosen with hnswlib's heuristic. The distance is the
//! negated dot product (vectors are unit length), in a loop the compiler vectorises.
//!
//! Searches walk the graph on an 8-bit copy of the rows (one `i8` per coordinate and one
//! scale per row, symmetric per-row quantisation: a quarter of the memory traffic, which is
//! what bounds a search at 512 dimensions), then re-rank the best candidates by their exact
//! `f32` dot products, so the scores returned are exact. The graph is built on the `f32` rows.
//! The next candidate's links and the fresh neighbours' codes are prefetched.
//!
//! Deletion is by tombstone, decided by the caller's filter: filtered-out nodes are still
//! traversed (the search keeps its early exit) but never returned.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;

use crate::index::dot;

/// Asks the CPU to bring the cache line holding `p` into its caches. A hint: it never faults
/// and has no effect on results, whatever the address.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 never faults and reads nothing architecturally, for any address; SSE
    // is part of the x86-64 baseline, so the instruction exists on every CPU this runs on.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Quantises `v` to `out` (symmetric, per row): returns the scale (`v ≈ scale * out`).
fn encode(v: &[f32], out: &mut [i8]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if !(max > 0.0 && max.is_finite()) {
        out.fill(0);
        return 0.0;
    }
    let inv = 127.0 / max;
    for (o, x) in out.iter_mut().zip(v) {
        *o = (x * inv).round().clamp(-127.0, 127.0) as i8;
    }
    max / 127.0
}

/// Integer dot product of two code rows (exact: |sum| <= 127² · dim fits an `i32` below
/// 133 000 dimensions), vectorised by the compiler for the CPU's SIMD level.
#[inline]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    struct D<'a>(&'a [i8], &'a [i8]);
    impl pulp::WithSimd for D<'_> {
        type Output = i32;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> i32 {
            self.0
                .iter()
                .zip(self.1)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum()
        }
    }
    crate::index::simd().dispatch(D(a, b))
}

/// How a search measures distance: exact `f32` rows (building) or their codes (searching).
trait Space {
    fn dist(&self, i: u32) -> f32;
    /// Prefetches what `dist(i)` will read.
    fn prefetch(&self, i: u32);
}

/// Exact negated dot products against the `f32` rows.
struct Exact<'a> {
    vectors: &'a [f32],
    q: &'a [f32],
    dim: usize,
}

impl Space for Exact<'_> {
    #[inline]
    fn dist(&self, i: u32) -> f32 {
        let s = i as usize * self.dim;
        -dot(self.q, self.vectors.get(s..s + self.dim).unwrap_or(&[]))
    }
    #[inline]
    fn prefetch(&self, i: u32) {
        prefetch(self.vectors.as_ptr().wrapping_add(i as usize * self.dim));
    }
}

/// Approximate negated dot products on the 8-bit codes (scaled by the row's scale only: the
/// query's scale is the same for every row and does not change the order).
struct Coded<'a> {
    codes: &'a [i8],
    scales: &'a [f32],
    q: &'a [i8],
    dim: usize,
}

impl Space for Coded<'_> {
    #[inline]
    fn dist(&self, i: u32) -> f32 {
        let s = i as usize * self.dim;
        let row = self.codes.get(s..s + self.dim).unwrap_or(&[]);
        let scale = self.scales.get(i as usize).copied().unwrap_or(0.0);
        -(dot_i8(self.q, row) as f32 * scale)
    }
    #[inline]
    fn prefetch(&self, i: u32) {
        let p = self.codes.as_ptr().wrapping_add(i as usize * self.dim);
        for o in (0..self.dim).step_by(64) {
            prefetch(p.wrapping_add(o));
        }
    }
}

/// How many of the best candidates of a coded walk are re-ranked exactly: twice `k`, at least
/// 32, at most `ef`. (The codes' error on a dot product is about 1e-3; on the 512-d × 100k
/// benchmark set re-ranking 16, 32, 64, 256 or all `ef` candidates gave the same recall@10.)
#[inline]
fn rerank(k: usize, ef: usize) -> usize {
    (2 * k).max(32).min(ef.max(k))
}

/// Highest level a node can get.
const MAX_LEVEL: usize = 15;
const NO_ENTRY: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Cand {
    d: f32,
    id: u32,
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.id.cmp(&o.id))
    }
}

/// Min-heap order for the candidate queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Near(std::cmp::Reverse<Cand>);

/// Visited marks by generation: reset is O(1) except every 65535th use.
#[derive(Debug, Default)]
struct Visited {
    marks: Vec<u16>,
    generation: u16,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
    }

    /// Marks `i`; false if it was already marked.
    #[inline]
    fn first_visit(&mut self, i: u32) -> bool {
        match self.marks.get_mut(i as usize) {
            Some(m) if *m != self.generation => {
                *m = self.generation;
                true
            }
            _ => false,
        }
    }
}

/// An HNSW graph over the rows of an external matrix.
pub struct Hnsw {
    dim: usize,
    m: usize,
    m0: usize,
    ef_construction: usize,
    ml: f64,
    seed: u64,
    /// Level-0 links: per node `[count, m0 slots]`.
    links0: Vec<AtomicU32>,
    /// Upper-level links: per node `level` blocks of `[count, m slots]` (empty for level 0).
    upper: Vec<Box<[AtomicU32]>>,
    levels: Vec<u8>,
    locks: Vec<Mutex<()>>,
    /// 8-bit codes of the rows (`dim` per node) and their scales; rows `0..encoded` are coded.
    codes: Vec<i8>,
    scales: Vec<f32>,
    encoded: usize,
    /// Entry point: `node << 8 | level`, or `NO_ENTRY`.
    entry: AtomicU64,
    entry_lock: Mutex<()>,
    /// Nodes inserted.
    inserted: AtomicUsize,
    visited: Mutex<Vec<Visited>>,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hnsw")
            .field("nodes", &self.levels.len())
            .field("m", &self.m)
            .finish()
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Hnsw {
    /// An empty graph for `dim`-dimensional rows with `m` links per node (`2*m` at level 0).
    pub fn new(dim: usize, m: usize, ef_construction: usize) -> Self {
        let m = m.clamp(2, 255);
        Self {
            dim,
            m,
            m0: 2 * m,
            ef_construction: ef_construction.max(m),
            ml: 1.0 / (m as f64).ln(),
            seed: 100,
            links0: Vec::new(),
            upper: Vec::new(),
            levels: Vec::new(),
            locks: Vec::new(),
            codes: Vec::new(),
            scales: Vec::new(),
            encoded: 0,
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            inserted: AtomicUsize::new(0),
            visited: Mutex::new(Vec::new()),
        }
    }

    /// Nodes with room in the graph (inserted or not).
    pub fn capacity(&self) -> usize {
        self.levels.len()
    }

    /// Nodes inserted.
    pub fn len(&self) -> usize {
        self.inserted.load(Relaxed)
    }

    /// Whether no node was inserted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Highest level of the graph.
    pub fn max_level(&self) -> usize {
        match self.entry.load(Relaxed) {
            NO_ENTRY => 0,
            e => (e & 0xff) as usize,
        }
    }

    /// Makes room for nodes `0..n` (their levels are drawn here, deterministically) and codes
    /// the rows of `vectors` not coded yet (a row beyond `vectors` is coded by a later call,
    /// which must come before the node is inserted).
    pub fn grow(&mut self, vectors: &[f32], n: usize) {
        self.make_room(n);
        let have = (vectors.len() / self.dim.max(1)).min(self.levels.len());
        let d = self.dim;
        for r in self.encoded..have {
            self.scales[r] = encode(
                &vectors[r * d..(r + 1) * d],
                &mut self.codes[r * d..(r + 1) * d],
            );
        }
        self.encoded = self.encoded.max(have);
    }

    /// Zeroes the code of a removed row (its `f32` row is zeroed by the caller): no copy of a
    /// removed template stays in memory. The node still routes searches.
    pub fn forget(&mut self, node: u32) {
        let (d, n) = (self.dim, node as usize);
        if let Some(c) = self.codes.get_mut(n * d..(n + 1) * d) {
            c.fill(0);
        }
        if let Some(s) = self.scales.get_mut(n) {
            *s = 0.0;
        }
    }

    /// The 8-bit code of a row (all zero once forgotten), if the graph has the row.
    pub fn code(&self, node: u32) -> Option<&[i8]> {
        let (d, n) = (self.dim, node as usize);
        self.codes.get(n * d..(n + 1) * d)
    }

    fn make_room(&mut self, n: usize) {
        let old = self.levels.len();
        if n <= old {
            return;
        }
        self.codes.resize(n * self.dim, 0);
        self.scales.resize(n, 0.0);
        self.links0
            .extend((0..(n - old) * (self.m0 + 1)).map(|_| AtomicU32::new(0)));
        for i in old..n {
            let r = (splitmix(self.seed ^ splitmix(i as u64)) >> 11) as f64 / (1u64 << 53) as f64;
            let level = ((-(1.0 - r).ln()) * self.ml).floor() as usize;
            let level = level.min(MAX_LEVEL);
            self.levels.push(level as u8);
            self.upper.push(
                (0..level * (self.m + 1))
                    .map(|_| AtomicU32::new(0))
                    .collect(),
            );
            self.locks.push(Mutex::new(()));
        }
    }

    /// Resident bytes of the graph (links, levels, locks, codes).
    pub fn memory_bytes(&self) -> usize {
        let upper: usize = self.upper.iter().map(|b| b.len() * 4).sum();
        self.links0.capacity() * 4
            + self.upper.capacity() * 16
            + upper
            + self.levels.capacity()
            + self.locks.capacity()
            + self.codes.capacity()
            + self.scales.capacity() * 4
    }

    /// Link slots of `node` at `level`: `[count, slots...]`.
    #[inline]
    fn links(&self, node: u32, level: usize) -> &[AtomicU32] {
        let n = node as usize;
        if level == 0 {
            let s = n * (self.m0 + 1);
            &self.links0[s..s + self.m0 + 1]
        } else {
            let s = (level - 1) * (self.m + 1);
            &self.upper[n][s..s + self.m + 1]
        }
    }

    #[inline]
    fn for_each_link(&self, node: u32, level: usize, mut f: impl FnMut(u32)) {
        let l = self.links(node, level);
        let count = (l[0].load(Relaxed) as usize).min(l.len() - 1);
        for a in &l[1..=count] {
            f(a.load(Relaxed));
        }
    }

    fn set_links(&self, node: u32, level: usize, to: &[u32]) {
        let l = self.links(node, level);
        let count = to.len().min(l.len() - 1);
        for (slot, &v) in l[1..].iter().zip(&to[..count]) {
            slot.store(v, Relaxed);
        }
        l[0].store(count as u32, Relaxed);
    }

    #[inline]
    fn row<'a>(&self, vectors: &'a [f32], i: u32) -> &'a [f32] {
        let s = i as usize * self.dim;
        vectors.get(s..s + self.dim).unwrap_or(&[])
    }

    #[inline]
    fn dist(&self, vectors: &[f32], q: &[f32], i: u32) -> f32 {
        -dot(q, self.row(vectors, i))
    }

    fn exact<'a>(&self, vectors: &'a [f32], q: &'a [f32]) -> Exact<'a> {
        Exact {
            vectors,
            q,
            dim: self.dim,
        }
    }

    fn take_visited(&self) -> Visited {
        let mut v = self.visited.lock().pop().unwrap_or_default();
        v.reset(self.levels.len());
        v
    }

    fn give_visited(&self, v: Visited) {
        self.visited.lock().push(v);
    }

    /// Greedy descent from the entry point to `level + 1`: the closest node found.
    fn descend(&self, space: &impl Space, to_level: usize) -> Option<Cand> {
        let e = self.entry.load(Relaxed);
        if e == NO_ENTRY {
            return None;
        }
        let top = (e & 0xff) as usize;
        let mut cur = Cand {
            id: (e >> 8) as u32,
            d: 0.0,
        };
        cur.d = space.dist(cur.id);
        for level in (to_level + 1..=top).rev() {
            loop {
                let mut changed = false;
                self.for_each_link(cur.id, level, |nb| {
                    let d = space.dist(nb);
                    if d < cur.d {
                        cur = Cand { d, id: nb };
                        changed = true;
                    }
                });
                if !changed {
                    break;
                }
            }
        }
        Some(cur)
    }

    /// Best-first search of one level from `ep`; at most `ef` results (worst on top), only
    /// nodes passing `keep` (the others are still traversed).
    #[allow(clippy::too_many_arguments)] // the hot loop: plain arguments, no context struct
    fn search_level<F: Fn(u32) -> bool>(
        &self,
        space: &impl Space,
        ep: Cand,
        level: usize,
        ef: usize,
        keep: Option<&F>,
        visited: &mut Visited,
    ) -> BinaryHeap<Cand> {
        let mut top: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        let mut queue: BinaryHeap<Near> = BinaryHeap::with_capacity(ef * 2);
        visited.first_visit(ep.id);
        if keep.is_none_or(|f| f(ep.id)) {
            top.push(ep);
        }
        queue.push(Near(std::cmp::Reverse(ep)));
        let mut lower = top.peek().map_or(f32::INFINITY, |c| c.d);
        // Unvisited neighbours first, then their distances (independent memory loads the CPU
        // overlaps), then the queue updates.
        let mut fresh: Vec<u32> = Vec::with_capacity(self.m0);
        let mut dists: Vec<f32> = Vec::with_capacity(self.m0);
        while let Some(Near(std::cmp::Reverse(c))) = queue.pop() {
            if c.d > lower && top.len() >= ef {
                break;
            }
            if let Some(Near(std::cmp::Reverse(next))) = queue.peek() {
                prefetch(self.links(next.id, level).as_ptr());
            }
            fresh.clear();
            self.for_each_link(c.id, level, |nb| {
                if visited.first_visit(nb) {
                    fresh.push(nb);
                }
            });
            for &nb in &fresh {
                space.prefetch(nb);
            }
            dists.clear();
            dists.extend(fresh.iter().map(|&nb| space.dist(nb)));
            for (&nb, &d) in fresh.iter().zip(&dists) {
                if top.len() < ef || d < lower {
                    let cand = Cand { d, id: nb };
                    queue.push(Near(std::cmp::Reverse(cand)));
                    if keep.is_none_or(|f| f(nb)) {
                        top.push(cand);
                        if top.len() > ef {
                            top.pop();
                        }
                        lower = top.peek().map_or(f32::INFINITY, |c| c.d);
                    }
                }
            }
        }
        top
    }

    /// hnswlib's neighbour heuristic: from candidates sorted nearest first, keep those closer
    /// to the base than to every neighbour kept so far, at most `m`.
    fn select(&self, vectors: &[f32], sorted: &[Cand], m: usize) -> Vec<Cand> {
        if sorted.len() <= m {
            return sorted.to_vec();
        }
        let mut out: Vec<Cand> = Vec::with_capacity(m);
        for &c in sorted {
            if out.len() >= m {
                break;
            }
            let v = self.row(vectors, c.id);
            if out.iter().all(|s| self.dist(vectors, v, s.id) >= c.d) {
                out.push(c);
            }
        }
        out
    }

    /// Inserts node `node` (row `node` of `vectors`); the graph must have room for it.
    pub fn insert(&self, vectors: &[f32], node: u32) {
        let Some(&level) = self.levels.get(node as usize) else {
            return;
        };
        let level = level as usize;
        let q = self.row(vectors, node);
        if self.entry.load(Relaxed) == NO_ENTRY {
            let _g = self.entry_lock.lock();
            if self.entry.load(Relaxed) == NO_ENTRY {
                self.entry
                    .store(((node as u64) << 8) | level as u64, Relaxed);
                self.inserted.fetch_add(1, Relaxed);
                return;
            }
        }
        let top_level = self.max_level();
        let space = self.exact(vectors, q);
        let Some(mut ep) = self.descend(&space, level.min(top_level)) else {
            return;
        };
        let mut visited = self.take_visited();
        for l in (0..=level.min(top_level)).rev() {
            visited.reset(self.levels.len());
            let found = self.search_level::<fn(u32) -> bool>(
                &space,
                ep,
                l,
                self.ef_construction,
                None,
                &mut visited,
            );
            let mut sorted = found.into_sorted_vec();
            sorted.retain(|c| c.id != node);
            let Some(&nearest) = sorted.first() else {
                continue;
            };
            ep = nearest;
            let chosen = self.select(vectors, &sorted, self.m);
            let ids: Vec<u32> = chosen.iter().map(|c| c.id).collect();
            {
                let _g = self.locks[node as usize].lock();
                self.set_links(node, l, &ids);
            }
            let cap = if l == 0 { self.m0 } else { self.m };
            for c in &chosen {
                self.link_back(vectors, c.id, node, l, cap);
            }
        }
        self.give_visited(visited);
        self.inserted.fetch_add(1, Relaxed);
        if level > top_level {
            let _g = self.entry_lock.lock();
            if level > self.max_level() {
                self.entry
                    .store(((node as u64) << 8) | level as u64, Relaxed);
            }
        }
    }

    /// Adds `node` to the links of `to` at `level`, pruning with the heuristic when full.
    fn link_back(&self, vectors: &[f32], to: u32, node: u32, level: usize, cap: usize) {
        let Some(lock) = self.locks.get(to as usize) else {
            return;
        };
        let _g = lock.lock();
        let mut cur: Vec<u32> = Vec::with_capacity(cap + 1);
        self.for_each_link(to, level, |x| cur.push(x));
        if cur.contains(&node) {
            return;
        }
        if cur.len() < cap {
            cur.push(node);
            self.set_links(to, level, &cur);
            return;
        }
        let base = self.row(vectors, to);
        let mut cands: Vec<Cand> = cur
            .iter()
            .chain(std::iter::once(&node))
            .map(|&id| Cand {
                d: self.dist(vectors, base, id),
                id,
            })
            .collect();
        cands.sort_unstable();
        let kept: Vec<u32> = self
            .select(vectors, &cands, cap)
            .iter()
            .map(|c| c.id)
            .collect();
        self.set_links(to, level, &kept);
    }

    /// Inserts nodes `from..to` with `threads` threads (1: in order, deterministic).
    pub fn insert_range(&self, vectors: &[f32], from: usize, to: usize, threads: usize) {
        let to = to.min(self.levels.len());
        if threads <= 1 || to.saturating_sub(from) < 1000 {
            for i in from..to {
                self.insert(vectors, i as u32);
            }
            return;
        }
        // The first nodes alone, so the threads start from a graph.
        let seeded = (from + 100).min(to);
        for i in from..seeded {
            self.insert(vectors, i as u32);
        }
        let next = AtomicUsize::new(seeded);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(64, Relaxed);
                        if i >= to {
                            break;
                        }
                        for j in i..(i + 64).min(to) {
                            self.insert(vectors, j as u32);
                        }
                    }
                });
            }
        });
    }

    /// The `k` nearest nodes passing `keep` (all when `None`), nearest first, as
    /// (exact dot product, node); `ef` is the candidate list size (at least `k` is used).
    /// The walk uses the 8-bit codes; the best `rerank(k, ef)` candidates are re-ranked by
    /// their exact dot products with the rows of `vectors`.
    pub fn search<F: Fn(u32) -> bool>(
        &self,
        vectors: &[f32],
        q: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&F>,
    ) -> Vec<(f32, u32)> {
        if q.len() != self.dim {
            return Vec::new();
        }
        let mut qc = vec![0i8; self.dim];
        encode(q, &mut qc);
        let space = Coded {
            codes: &self.codes,
            scales: &self.scales,
            q: &qc,
            dim: self.dim,
        };
        let Some(ep) = self.descend(&space, 0) else {
            return Vec::new();
        };
        let ef = ef.max(k);
        let mut visited = self.take_visited();
        let found = self.search_level(&space, ep, 0, ef, keep, &mut visited);
        self.give_visited(visited);
        let exact = self.exact(vectors, q);
        let mut out: Vec<(f32, u32)> = found
            .into_sorted_vec()
            .into_iter()
            .take(rerank(k, ef))
            .map(|c| (-exact.dist(c.id), c.id))
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.truncate(k);
        out
    }

    /// Level-0 links per node and links per node over all levels (statistics).
    pub fn degree_stats(&self) -> (f64, f64) {
        let n = self.len().max(1) as f64;
        let (mut l0, mut all) = (0usize, 0usize);
        for i in 0..self.levels.len() {
            let mut c = 0;
            self.for_each_link(i as u32, 0, |_| c += 1);
            l0 += c;
            all += c;
            for l in 1..=self.levels[i] as usize {
                self.for_each_link(i as u32, l, |_| all += 1);
            }
        }
        (l0 as f64 / n, all as f64 / n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut x = seed;
        let mut v: Vec<f32> = (0..n * dim)
            .map(|_| {
                x = splitmix(x);
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        for r in v.chunks_exact_mut(dim) {
            let n = dot(r, r).sqrt();
            r.iter_mut().for_each(|a| *a /= n);
        }
        v
    }

    fn exact(v: &[f32], dim: usize, q: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut s: Vec<(f32, u32)> = v
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| keep(*i as u32))
            .map(|(i, r)| (dot(q, r), i as u32))
            .collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        s.into_iter().take(k).map(|x| x.1).collect()
    }

    fn recall(g: &Hnsw, v: &[f32], qs: &[f32], dim: usize, keep: impl Fn(u32) -> bool) -> f64 {
        let (mut hit, mut all) = (0, 0);
        for q in qs.chunks_exact(dim) {
            let truth = exact(v, dim, q, 10, &keep);
            let got: Vec<u32> = g
                .search(v, q, 10, 100, Some(&keep))
                .iter()
                .map(|x| x.1)
                .collect();
            assert!(
                got.iter().all(|&i| keep(i)),
                "a filtered-out node came back"
            );
            hit += truth.iter().filter(|t| got.contains(t)).count();
            all += truth.len();
        }
        hit as f64 / all as f64
    }

    #[test]
    fn recall_against_exact_search_single_and_parallel_build() {
        let (n, dim) = (5000, 16);
        let v = data(n, dim, 1);
        let qs = data(100, dim, 2);
        for threads in [1, 2] {
            let mut g = Hnsw::new(dim, 12, 100);
            g.grow(&v, n);
            g.insert_range(&v, 0, n, threads);
            assert_eq!(g.len(), n);
            let r = recall(&g, &v, &qs, dim, |_| true);
            assert!(r >= 0.95, "recall {r} with {threads} threads");
            let (l0, _) = g.degree_stats();
            assert!(l0 > 6.0 && l0 <= 24.0, "level-0 degree {l0}");
        }
    }

    #[test]
    fn incremental_insertion_matches_a_batch_build() {
        let (n, dim) = (3000, 16);
        let v = data(n, dim, 3);
        let qs = data(50, dim, 4);
        let mut g = Hnsw::new(dim, 12, 100);
        g.grow(&v, 1000);
        g.insert_range(&v, 0, 1000, 2);
        for i in 1000..n {
            g.grow(&v, i + 1);
            g.insert(&v, i as u32);
        }
        assert_eq!(g.len(), n);
        assert!(recall(&g, &v, &qs, dim, |_| true) >= 0.95);
        // Every node can be found from its own vector.
        let misses = (0..n as u32)
            .filter(|&i| {
                let q = &v[i as usize * dim..(i as usize + 1) * dim];
                g.search(&v, q, 1, 50, None::<&fn(u32) -> bool>)[0].1 != i
            })
            .count();
        assert!(
            misses <= n / 200,
            "{misses} nodes not found from their own vector"
        );
    }

    #[test]
    fn tombstones_are_traversed_but_never_returned() {
        let (n, dim) = (4000, 16);
        let v = data(n, dim, 5);
        let qs = data(100, dim, 6);
        let mut g = Hnsw::new(dim, 12, 100);
        g.grow(&v, n);
        g.insert_range(&v, 0, n, 1);
        // Half the nodes deleted, including every query's true nearest neighbours.
        let keep = |i: u32| i.is_multiple_of(2);
        let r = recall(&g, &v, &qs, dim, keep);
        assert!(r >= 0.9, "recall with half the nodes deleted: {r}");
        let q = &v[..dim];
        let top = g.search(&v, q, 10, 64, Some(&|i: u32| i != 0));
        assert_eq!(top.len(), 10);
        assert!(top.iter().all(|x| x.1 != 0));
        // Nothing kept: nothing returned.
        assert!(g.search(&v, q, 10, 64, Some(&|_: u32| false)).is_empty());
    }

    #[test]
    fn codes_approximate_dot_products_and_scores_returned_are_exact() {
        let dim = 512;
        let v = data(200, dim, 7);
        let mut a = vec![0i8; dim];
        let mut b = vec![0i8; dim];
        let mut worst = 0.0f32;
        for (x, y) in v.chunks_exact(dim).zip(v.chunks_exact(dim).skip(1)) {
            let sa = encode(x, &mut a);
            let sb = encode(y, &mut b);
            let approx = dot_i8(&a, &b) as f32 * sa * sb;
            worst = worst.max((approx - dot(x, y)).abs());
        }
        assert!(worst < 0.005, "coded dot product off by {worst}");
        // A zero row codes to zero with scale 0 (a removed row), never NaN.
        assert_eq!(encode(&vec![0.0; dim], &mut a), 0.0);
        assert!(a.iter().all(|&c| c == 0));

        let mut g = Hnsw::new(dim, 12, 100);
        g.grow(&v, 200);
        g.insert_range(&v, 0, 200, 1);
        let q = &v[5 * dim..6 * dim];
        let top = g.search(&v, q, 10, 50, None::<&fn(u32) -> bool>);
        assert_eq!(top[0].1, 5);
        for (score, node) in top {
            let row = &v[node as usize * dim..(node as usize + 1) * dim];
            assert_eq!(
                score,
                dot(q, row),
                "score of node {node} is not the exact one"
            );
        }
    }

    #[test]
    fn a_forgotten_row_leaves_no_code_behind() {
        let (n, dim) = (300, 32);
        let v = data(n, dim, 8);
        let mut g = Hnsw::new(dim, 8, 50);
        g.grow(&v, n);
        g.insert_range(&v, 0, n, 1);
        assert!(g.codes[7 * dim..8 * dim].iter().any(|&c| c != 0));
        g.forget(7);
        assert!(g.codes[7 * dim..8 * dim].iter().all(|&c| c == 0));
        assert_eq!(g.scales[7], 0.0);
        // Rows grown before their vectors exist are coded by the next grow.
        let mut g = Hnsw::new(dim, 8, 50);
        g.grow(&v[..10 * dim], 20);
        assert!(g.codes[12 * dim..13 * dim].iter().all(|&c| c == 0));
        g.grow(&v[..13 * dim], 20);
        assert!(g.codes[12 * dim..13 * dim].iter().any(|&c| c != 0));
        assert_eq!(g.encoded, 13);
    }

    #[test]
    fn empty_graph_returns_nothing() {
        let g = Hnsw::new(8, 16, 100);
        assert!(
            g.search(&[], &[0.0; 8], 5, 10, None::<&fn(u32) -> bool>)
                .is_empty()
        );
        assert_eq!(g.max_level(), 0);
    }
}

//! (PUBLISHING) The delivery endpoint's renditions and their in-memory cache.
//! (Being written: see /work/notes/publishing-contract.md.)

/// Rendition bytes kept in memory (a byte budget).
#[derive(Debug, Default)]
pub struct RenditionCache {
    budget: usize,
}

impl RenditionCache {
    /// A cache holding at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self { budget }
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.budget
    }
}

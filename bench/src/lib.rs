//! Benchmarks of the Likeness matcher: shared helpers (binaries in src/bin).
pub mod faces;
pub mod verification;

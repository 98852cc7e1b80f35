//! bench
pub mod verification;

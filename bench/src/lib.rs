//! bench
pub mod proto_pipeline;
pub mod verification;

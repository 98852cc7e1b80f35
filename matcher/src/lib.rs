//! The Likeness face matcher: the face pipeline behind a dynamic batcher, served over gRPC
//! (`likeness.matcher.v1.Matcher`) with health checking, reflection and Prometheus metrics.

pub mod batcher;
pub mod config;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod output;
pub mod server;
pub mod service;

pub use config::Config;
pub use error::MatcherError;
pub use service::{AnalyzeOptions, ImageInput, ImageReport, MatcherService};

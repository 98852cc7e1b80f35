//! Likeness models: the model manifest (sha256, licence, source, preprocessing), the ONNX
//! Runtime sessions, and the stages of the face pipeline as plain functions:
//! decode -> plan views -> detect -> NMS -> align -> embed -> L2 norm.

pub mod align;
pub mod decode;
pub mod detect;
pub mod error;
pub mod manifest;
pub mod pipeline;
pub mod runtime;

pub use decode::{DecodeLimits, RgbImage};
pub use detect::{DetectParams, Detection};
pub use error::{Error, ImageErrorKind, Result};
pub use pipeline::{
    DEFAULT_MATCH_THRESHOLD, Face, MAX_AUTO_LANES, Pipeline, PipelineConfig, Quality,
    QualityParams, StageTimings, default_models_dir,
};

//! Typed, documented configuration of the matcher: a TOML file plus environment overrides
//! (`LIKENESS_MATCHER__SECTION__KEY=value`, e.g. `LIKENESS_MATCHER__SERVER__GRPC_ADDR`).

use std::net::SocketAddr;
use std::path::Path;

use likeness_kernels::Backend;
use likeness_models::PipelineConfig;
use serde::{Deserialize, Serialize};

use crate::error::MatcherError;

/// Prefix of environment overrides; sections are separated by a double underscore.
pub const ENV_PREFIX: &str = "LIKENESS_MATCHER__";

/// The whole matcher configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Network endpoints and request limits.
    pub server: ServerConfig,
    /// Dynamic batching of inference.
    pub batcher: BatcherConfig,
    /// Where the pipeline runs (CPU or CUDA).
    pub backend: BackendConfig,
    /// Models, detection, quality flags and decoder limits.
    pub pipeline: PipelineConfig,
    /// Per-tenant face galleries (disabled without a master key).
    pub gallery: likeness_gallery::GalleryConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Where the pipeline runs. (Its own section: `[pipeline]` is the models crate's
/// `PipelineConfig`, which refuses keys it does not know.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// `"auto"`: the device pipeline when a usable GPU, NVRTC and cuBLAS are present, the
    /// models have a device route, its memory can be allocated and it passes the start-up
    /// check against the CPU twin; else the CPU. `"cpu"`; `"cuda"`: start-up fails with the
    /// reason when the device pipeline cannot run. One log line at start-up says which
    /// backend runs and why.
    pub kind: Backend,
    /// Device only: detector views per call (the largest batch planned and allocated at
    /// start-up; at least the 17 views one large photo gets).
    pub device_max_views: usize,
    /// Device only: faces per embedder call (the largest batch planned and allocated).
    pub device_max_faces: usize,
}

impl Default for BackendConfig {
    fn default() -> Self {
        let d = likeness_kernels::device::DeviceConfig::default();
        Self {
            kind: Backend::Auto,
            device_max_views: d.max_views,
            device_max_faces: d.max_faces,
        }
    }
}

/// Network endpoints and request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Prometheus `/metrics` listen address; unset to disable.
    pub metrics_addr: Option<SocketAddr>,
    /// Largest gRPC message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Most images in one `Analyze` request.
    pub max_images_per_request: usize,
    /// Most images of one `AnalyzeStream` in flight at once (backpressure beyond).
    pub max_stream_in_flight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            max_message_bytes: 64 << 20,
            max_images_per_request: 64,
            max_stream_in_flight: 32,
        }
    }
}

/// Dynamic batching, like Triton's dynamic batcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatcherConfig {
    /// Most images per inference batch.
    pub max_batch_images: usize,
    /// Longest wait for more images once a batch has its first, in microseconds.
    pub max_wait_us: u64,
    /// Most images queued or in flight; beyond it `Analyze` answers RESOURCE_EXHAUSTED.
    pub queue_capacity: usize,
    /// Threads decoding images ahead of inference. `0`: on the CPU backend each inference
    /// thread decodes the images it takes (both cores busy without a third thread competing
    /// for them: `bench/speed.sh --plain`); on the device backend one decode thread.
    pub decode_threads: usize,
    /// Inference threads, each running whole batches. `0`: one per pipeline lane on the CPU
    /// backend (`pipeline.lanes`: images analysed in parallel), one on the device backend
    /// (the device serves every batch; more threads would send batches to the CPU).
    pub inference_threads: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self {
            max_batch_images: 8,
            max_wait_us: 2_000,
            queue_capacity: 256,
            decode_threads: 0,
            inference_threads: 0,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `likeness_matcher=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format (`text` or `json`), shared with the control plane.
pub use likeness_common::logging::LogFormat;

impl Config {
    /// Loads defaults, then the TOML file (if any), then environment overrides, and
    /// validates the result. Errors name the offending key and where it came from.
    pub fn load(file: Option<&Path>) -> Result<Self, MatcherError> {
        let cfg: Config = likeness_common::config::load(file, ENV_PREFIX)
            .map_err(|e| MatcherError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that parse but make no sense; the message names the key.
    pub fn validate(&self) -> Result<(), MatcherError> {
        let bad = |key: &str, msg: String| Err(MatcherError::Config(format!("{key}: {msg}")));
        let b = &self.batcher;
        if b.max_batch_images == 0 {
            return bad("batcher.max_batch_images", "must be at least 1".into());
        }
        if b.queue_capacity < b.max_batch_images {
            return bad(
                "batcher.queue_capacity",
                format!(
                    "must be at least batcher.max_batch_images ({}), got {}",
                    b.max_batch_images, b.queue_capacity
                ),
            );
        }
        if b.max_wait_us > 10_000_000 {
            return bad(
                "batcher.max_wait_us",
                format!("must be at most 10 s, got {}", b.max_wait_us),
            );
        }
        let s = &self.server;
        if s.max_message_bytes < 1024 {
            return bad(
                "server.max_message_bytes",
                format!("must be at least 1024, got {}", s.max_message_bytes),
            );
        }
        if s.max_images_per_request == 0 || s.max_images_per_request > b.queue_capacity {
            return bad(
                "server.max_images_per_request",
                format!(
                    "must be between 1 and batcher.queue_capacity ({}), got {}",
                    b.queue_capacity, s.max_images_per_request
                ),
            );
        }
        if s.max_stream_in_flight == 0 || s.max_stream_in_flight > b.queue_capacity {
            return bad(
                "server.max_stream_in_flight",
                format!(
                    "must be between 1 and batcher.queue_capacity ({}), got {}",
                    b.queue_capacity, s.max_stream_in_flight
                ),
            );
        }
        let p = &self.pipeline;
        if p.threads == 0 {
            return bad("pipeline.threads", "must be at least 1".into());
        }
        if p.max_detect_batch == 0 {
            return bad("pipeline.max_detect_batch", "must be at least 1".into());
        }
        if p.max_embed_batch == 0 {
            return bad("pipeline.max_embed_batch", "must be at least 1".into());
        }
        if let Err(m) = p.detect.validate() {
            return bad("pipeline.detect", m);
        }
        if p.decode.max_bytes > s.max_message_bytes {
            return bad(
                "pipeline.decode.max_bytes",
                format!(
                    "must not exceed server.max_message_bytes ({}), got {}",
                    s.max_message_bytes, p.decode.max_bytes
                ),
            );
        }
        if let Err(m) = self.gallery.validate() {
            return Err(MatcherError::Config(m));
        }
        if let Err(e) = self.gallery.master() {
            return bad("gallery.master_key", e.to_string());
        }
        if p.decode.max_pixels == 0 {
            return bad("pipeline.decode.max_pixels", "must be at least 1".into());
        }
        if p.quality.min_face_size.is_nan() || p.quality.min_face_size < 0.0 {
            return bad("pipeline.quality.min_face_size", "must be >= 0".into());
        }
        Ok(())
    }

    /// The effective configuration as TOML (for `check-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn wrong_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(&f, "[batcher]\nmax_batch_images = \"many\"\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("batcher.max_batch_images"), "{e}");

        std::fs::write(&f, "[server]\ngrpc_adr = \"127.0.0.1:1\"\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("grpc_adr"), "{e}");

        std::fs::write(&f, "[batcher]\nmax_batch_images = 0\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(
            e.contains("batcher.max_batch_images: must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn the_shipped_example_config_is_valid_and_documents_the_defaults() {
        let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/matcher.toml");
        let c = Config::load(Some(&f)).unwrap();
        let mut d = Config::default();
        d.pipeline.models_dir = c.pipeline.models_dir.clone();
        d.pipeline.threads = c.pipeline.threads;
        assert_eq!(c, d, "deploy/matcher.toml drifted from the defaults");
    }

    #[test]
    fn file_values_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(
            &f,
            "[server]\ngrpc_addr = \"127.0.0.1:6000\"\n[pipeline.detect]\nscore_threshold = 0.8\n",
        )
        .unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(c.server.grpc_addr.port(), 6000);
        assert_eq!(c.pipeline.detect.score_threshold, 0.8);
    }

    #[test]
    fn backend_kind_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        assert_eq!(Config::default().backend.kind, Backend::Auto);
        std::fs::write(&f, "[backend]\nkind = \"cpu\"\n").unwrap();
        assert_eq!(Config::load(Some(&f)).unwrap().backend.kind, Backend::Cpu);
        std::fs::write(&f, "[backend]\nkind = \"gpu\"\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("backend.kind") && e.contains("gpu"), "{e}");
        std::fs::write(&f, "[backend]\nknd = \"cpu\"\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("knd"), "{e}");
    }
}

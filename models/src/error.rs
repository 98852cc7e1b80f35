//! The error type of the model layer.

use std::path::PathBuf;

/// What went wrong with one image, as a stable kind a caller can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageErrorKind {
    /// The input has no bytes.
    Empty,
    /// The input has more bytes than allowed.
    TooLarge,
    /// Not a JPEG, PNG or WebP file.
    UnsupportedFormat,
    /// The file is truncated or corrupt.
    Corrupt,
    /// Dimensions or decoder allocation beyond the configured limits (decompression bomb).
    LimitsExceeded,
    /// Inference or another pipeline stage failed on this image.
    Internal,
}

impl ImageErrorKind {
    /// A short machine-readable name (used as a metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge => "too_large",
            Self::UnsupportedFormat => "unsupported_format",
            Self::Corrupt => "corrupt",
            Self::LimitsExceeded => "limits_exceeded",
            Self::Internal => "internal",
        }
    }
}

/// Errors of the model layer: loading models and the runtime, and processing images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file named in the manifest is not in the models directory.
    #[error(
        "model file {file} not found in models directory {dir} (expected sha256 {sha256}; download it from {source_url} and put it there, or set LIKENESS_MODELS_DIR)"
    )]
    ModelMissing {
        /// File name.
        file: String,
        /// Directory that was searched.
        dir: PathBuf,
        /// Expected sha256.
        sha256: &'static str,
        /// Where to download it.
        source_url: &'static str,
    },
    /// A model file's sha256 differs from the manifest.
    #[error(
        "model file {path} has sha256 {actual} but the manifest expects {expected}; it is not the model Likeness was checked with (download the right one from {source_url})"
    )]
    ModelHashMismatch {
        /// Path of the file.
        path: PathBuf,
        /// Expected sha256.
        expected: &'static str,
        /// Computed sha256.
        actual: String,
        /// Where to download it.
        source_url: &'static str,
    },
    /// A derived model file (made by this repository, e.g. an 8-bit model) is missing or is not
    /// the one the manifest lists.
    #[error(
        "derived model file {path} {problem}: make it with `{command}` (or set LIKENESS_DERIVED_MODELS_DIR)"
    )]
    DerivedModel {
        /// Path of the file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// What makes it.
        command: &'static str,
    },
    /// No manifest entry has this model id.
    #[error("unknown model {0:?}; known models: {1}")]
    UnknownModel(String, String),
    /// A model with a non-commercial licence was requested without the explicit opt-in.
    #[error(
        "model {0} has a non-commercial licence and is loaded only when allow_non_commercial is set"
    )]
    NonCommercialModel(String),
    /// The model has the wrong role (e.g. an embedder configured as detector).
    #[error("model {id} is a {actual}, not a {expected}")]
    WrongRole {
        /// Model id.
        id: String,
        /// Role required.
        expected: &'static str,
        /// Role of the model.
        actual: &'static str,
    },
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// Inference failed.
    #[error("inference failed in {stage}: {message}")]
    Inference {
        /// Pipeline stage.
        stage: &'static str,
        /// Runtime message.
        message: String,
    },
    /// An I/O error with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// One image could not be processed.
    #[error("{message}")]
    Image {
        /// Kind of failure.
        kind: ImageErrorKind,
        /// Human message naming the problem.
        message: String,
    },
}

impl Error {
    /// Builds a per-image error.
    pub fn image(kind: ImageErrorKind, message: impl Into<String>) -> Self {
        Self::Image {
            kind,
            message: message.into(),
        }
    }

    /// The per-image kind of this error (`Internal` for anything that is not about the input).
    pub fn image_kind(&self) -> ImageErrorKind {
        match self {
            Self::Image { kind, .. } => *kind,
            _ => ImageErrorKind::Internal,
        }
    }

    pub(crate) fn inference(stage: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Inference {
            stage,
            message: e.to_string(),
        }
    }
}

/// Result alias of the model layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

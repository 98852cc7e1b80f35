//! The error type of the gallery layer.

use std::path::PathBuf;

/// Errors of the gallery.
#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    /// An ID is malformed; the message says which and why.
    #[error("invalid {what}: {why}")]
    InvalidId {
        /// Which ID ("tenant id", "person id", ...).
        what: &'static str,
        /// Why it is rejected.
        why: String,
    },
    /// A template is malformed (wrong dimension, not finite, zero norm).
    #[error("invalid template: {0}")]
    InvalidTemplate(String),
    /// The master key is missing or malformed.
    #[error("master key: {0}")]
    MasterKey(String),
    /// The master key does not decrypt the data directory.
    #[error(
        "the master key does not match the one this gallery data directory ({0}) was written with; refusing to start rather than serve an empty gallery"
    )]
    WrongMasterKey(PathBuf),
    /// A file failed authentication or is malformed (not a torn tail).
    #[error("corrupt gallery file {path}: {why}")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The tenant has no gallery.
    #[error("tenant {0} has no gallery")]
    UnknownTenant(String),
    /// I/O error with its path.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl From<likeness_common::KeyError> for GalleryError {
    fn from(e: likeness_common::KeyError) -> Self {
        Self::MasterKey(e.to_string())
    }
}

impl GalleryError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// Result alias of the gallery layer.
pub type Result<T, E = GalleryError> = std::result::Result<T, E>;

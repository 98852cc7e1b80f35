//! The error type of the media layer.

use std::path::PathBuf;

/// Errors of the media layer. [`MediaError::code`] gives a stable snake_case code and
/// [`MediaError::is_retryable`] says whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The master key is missing or malformed (configuration).
    #[error("master key: {0}")]
    MasterKeyConfig(String),
    /// The configured master key is not the one the blob store was created with.
    #[error(
        "wrong master key: {0} cannot be decrypted with the configured master key (it was written with a different one)"
    )]
    WrongMasterKey(String),
    /// A tenant or blob id is not usable as a file name.
    #[error("invalid {what} {value:?}: {why}")]
    InvalidId {
        /// Which id.
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why.
        why: &'static str,
    },
    /// The blob does not exist.
    #[error("blob {blob} of tenant {tenant} not found")]
    BlobNotFound {
        /// Tenant.
        tenant: String,
        /// Blob id.
        blob: String,
    },
    /// A stored blob failed authentication or has a bad header (tampered or truncated).
    #[error("blob {0} is corrupt: {1}")]
    CorruptBlob(PathBuf, String),
    /// File system error, with the path concerned.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The randomness source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// The upload is not acceptable (empty, too large, unsupported, corrupt, beyond limits).
    #[error("{message}")]
    BadMedia {
        /// Machine-readable reason: `empty`, `too_large`, `unsupported_format`, `corrupt`,
        /// `limits_exceeded`.
        reason: &'static str,
        /// Human message naming the problem.
        message: String,
    },
    /// The matcher could not be reached or is overloaded: retry later.
    #[error("matcher unavailable: {0}")]
    MatcherUnavailable(String),
    /// The matcher rejected the input (bad image, bad box, bad id): retrying will not help.
    #[error("matcher rejected the input: {0}")]
    MatcherBadInput(String),
    /// The matcher failed in another way (internal error, not configured for galleries).
    #[error("matcher error: {0}")]
    Matcher(String),
    /// The matcher client configuration is invalid.
    #[error("matcher configuration: {0}")]
    MatcherConfig(String),
}

impl From<likeness_common::KeyError> for MediaError {
    fn from(e: likeness_common::KeyError) -> Self {
        match e {
            likeness_common::KeyError::NoRandomness(m) => Self::Random(m),
            other => Self::MasterKeyConfig(other.to_string()),
        }
    }
}

impl MediaError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_media(reason: &'static str, message: impl Into<String>) -> Self {
        Self::BadMedia {
            reason,
            message: message.into(),
        }
    }

    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MasterKeyConfig(_) => "master_key_config",
            Self::WrongMasterKey(_) => "wrong_master_key",
            Self::InvalidId { .. } => "invalid_id",
            Self::BlobNotFound { .. } => "blob_not_found",
            Self::CorruptBlob(..) => "corrupt_blob",
            Self::Io { .. } => "io",
            Self::Random(_) => "no_randomness",
            Self::BadMedia { reason, .. } => reason,
            Self::MatcherUnavailable(_) => "matcher_unavailable",
            Self::MatcherBadInput(_) => "matcher_bad_input",
            Self::Matcher(_) => "matcher_error",
            Self::MatcherConfig(_) => "matcher_config",
        }
    }

    /// Whether the same operation may succeed later (matcher down or failing, I/O).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::MatcherUnavailable(_) | Self::Matcher(_) | Self::Io { .. }
        )
    }
}

/// Result of the media layer.
pub type Result<T, E = MediaError> = std::result::Result<T, E>;

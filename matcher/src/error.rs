//! The error type of the matcher service layer and its conversion to gRPC statuses.

/// Errors of the matcher service.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    /// The configuration is invalid; the message names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Models or the runtime could not be loaded.
    #[error(transparent)]
    Models(#[from] likeness_models::Error),
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// Too many images queued; retry later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The inference workers stopped.
    #[error("matcher is shutting down")]
    ShuttingDown,
    /// A gallery operation failed.
    #[error(transparent)]
    Gallery(#[from] likeness_gallery::GalleryError),
    /// The operation needs something that is not configured.
    #[error("{0}")]
    FailedPrecondition(String),
    /// I/O (binding sockets, reading files).
    #[error("{0}")]
    Io(String),
}

impl From<MatcherError> for tonic::Status {
    fn from(e: MatcherError) -> Self {
        let msg = e.to_string();
        match e {
            MatcherError::InvalidArgument(_) => tonic::Status::invalid_argument(msg),
            MatcherError::Overloaded(_) => tonic::Status::resource_exhausted(msg),
            MatcherError::ShuttingDown => tonic::Status::unavailable(msg),
            MatcherError::FailedPrecondition(_) => tonic::Status::failed_precondition(msg),
            MatcherError::Gallery(g) => {
                use likeness_gallery::GalleryError as G;
                match g {
                    G::InvalidId { .. } | G::InvalidTemplate(_) => {
                        tonic::Status::invalid_argument(msg)
                    }
                    G::UnknownTenant(_) => tonic::Status::not_found(msg),
                    _ => tonic::Status::internal(msg),
                }
            }
            MatcherError::Config(_) | MatcherError::Models(_) | MatcherError::Io(_) => {
                tonic::Status::internal(msg)
            }
        }
    }
}

//! The control plane's error type. Every error maps to an HTTP status and a JSON body
//! `{"error":{"code":"snake_case","message":"..."}}`; the codes are stable (clients match on them).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// Result alias of the control plane.
pub type Result<T, E = ControlError> = std::result::Result<T, E>;

/// Everything that can go wrong in the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Invalid configuration (names the key).
    #[error("configuration: {0}")]
    Config(String),
    /// No or an invalid/expired session or token.
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong tenant, e-mail or password (deliberately not saying which).
    #[error("wrong tenant, e-mail or password")]
    InvalidCredentials,
    /// A cookie-authenticated unsafe request without the session's CSRF token.
    #[error("missing or wrong X-CSRF-Token header for this session")]
    Csrf,
    /// The actor lacks a permission.
    #[error("permission {0} required")]
    Forbidden(String),
    /// The object does not exist in the actor's tenant (another tenant's object answers this too).
    #[error("{0} not found")]
    NotFound(String),
    /// Bad input: `field` names the offending field.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (or parameter) at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Bad input with a module-specific stable code (e.g. `unsupported_media_type`).
    #[error("{message}")]
    BadRequest {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// The request conflicts with the current state (e.g. a duplicate e-mail).
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// The request body is larger than allowed.
    #[error("request body too large: {0}")]
    TooLarge(String),
    /// Too many failed logins for an account or from an address: try again later.
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    TooManyAttempts {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// A dependency (database pool, matcher) is unavailable right now.
    #[error("{message}")]
    Unavailable {
        /// Stable machine-readable code (e.g. `matcher_unavailable`).
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// Database error.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    /// Could not get a pooled connection or open the database.
    #[error("database connection: {0}")]
    Connection(String),
    /// Migrations failed.
    #[error("migrations: {0}")]
    Migration(String),
    /// The audit chain is broken (verify found tampering).
    #[error("audit chain: {0}")]
    AuditChain(String),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ControlError {
    /// Shorthand for [`ControlError::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`ControlError::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "config_invalid",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Csrf => "csrf_token_invalid",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Invalid { .. } => "invalid_input",
            Self::BadRequest { code, .. } => code,
            Self::Conflict { code, .. } => code,
            Self::TooLarge(_) => "payload_too_large",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::Unavailable { code, .. } => code,
            Self::Database(diesel::result::Error::NotFound) => "not_found",
            Self::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => "conflict",
            Self::Database(_) => "database_error",
            Self::Connection(_) => "database_unavailable",
            Self::Migration(_) => "migration_failed",
            Self::AuditChain(_) => "audit_chain_broken",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Csrf | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::Database(diesel::result::Error::NotFound) => {
                StatusCode::NOT_FOUND
            }
            Self::Invalid { .. } | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict { .. }
            | Self::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } | Self::Connection(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Config(_)
            | Self::Database(_)
            | Self::Migration(_)
            | Self::AuditChain(_)
            | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to clients: internal details (SQL, paths) stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Self::Database(diesel::result::Error::NotFound) => "not found".into(),
            Self::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => "an object with these unique values exists already".into(),
            Self::Database(_) | Self::Internal(_) | Self::Migration(_) | Self::Config(_) => {
                "internal error; see the server log".into()
            }
            other => other.to_string(),
        }
    }
}

/// The JSON error body.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `forbidden`, `invalid_input`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ResponseError for ControlError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, "request failed");
        }
        let mut resp = HttpResponse::build(status);
        if let Self::TooManyAttempts { retry_after_secs } = self {
            resp.insert_header((
                actix_web::http::header::RETRY_AFTER,
                retry_after_secs.to_string(),
            ));
        }
        resp.json(ErrorBody {
            error: ErrorDetail {
                code: self.code().into(),
                message: self.public_message(),
            },
        })
    }
}

impl From<r2d2_error::PoolError> for ControlError {
    fn from(e: r2d2_error::PoolError) -> Self {
        Self::Connection(e.to_string())
    }
}

impl From<actix_web::error::BlockingError> for ControlError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(format!("blocking task: {e}"))
    }
}

impl From<likeness_control_domain::Error> for ControlError {
    fn from(e: likeness_control_domain::Error) -> Self {
        match e {
            likeness_control_domain::Error::Invalid { field, message } => {
                Self::Invalid { field, message }
            }
            other @ likeness_control_domain::Error::UnknownValue { .. } => Self::BadRequest {
                code: "invalid_input",
                message: other.to_string(),
            },
        }
    }
}

impl From<serde_json::Error> for ControlError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("json: {e}"))
    }
}

mod r2d2_error {
    pub use diesel::r2d2::PoolError;
}

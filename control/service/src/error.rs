//! The services' error type. It knows nothing of HTTP: each transport converts it once (the
//! REST API to a status and a JSON body, the console to an HTML page). The codes are stable
//! (clients match on them).

use likeness_control_db::DbError;

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
    /// The object existed but can no longer be used (an expired or revoked signing link, a
    /// request locked after too many wrong codes, a link already used).
    #[error("{message}")]
    Gone {
        /// Stable machine-readable code (e.g. `link_expired`, `link_revoked`, `request_locked`).
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// Too many requests of a kind (codes sent, codes entered): try again later.
    #[error("{message}")]
    RateLimited {
        /// Stable machine-readable code (e.g. `code_resend_too_soon`).
        code: &'static str,
        /// Human message.
        message: String,
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
    /// The matcher failed in a way other than being unreachable (an internal error there):
    /// reported like an internal error, retried by jobs.
    #[error("matcher error: {0}")]
    Matcher(String),
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
            Self::Gone { code, .. } => code,
            Self::RateLimited { code, .. } => code,
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
            Self::Matcher(_) | Self::Internal(_) => "internal",
        }
    }

    /// Whether trying the same thing again later may succeed (a dependency was down, the
    /// database was busy): jobs retry these with backoff and fail the others for good.
    pub fn is_retryable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match self {
            Self::Unavailable { .. } | Self::Connection(_) | Self::Matcher(_) => true,
            // A busy or restarted database, a serialization failure: yes; a missing row or a
            // violated constraint will fail the same way again.
            Self::Database(E::NotFound)
            | Self::Database(E::DatabaseError(
                K::UniqueViolation
                | K::ForeignKeyViolation
                | K::NotNullViolation
                | K::CheckViolation,
                _,
            )) => false,
            Self::Database(_) => true,
            _ => false,
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
            Self::Database(_)
            | Self::Internal(_)
            | Self::Matcher(_)
            | Self::Migration(_)
            | Self::Config(_) => "internal error; see the server log".into(),
            other => other.to_string(),
        }
    }
}

impl From<r2d2_error::PoolError> for ControlError {
    fn from(e: r2d2_error::PoolError) -> Self {
        Self::Connection(e.to_string())
    }
}

impl From<DbError> for ControlError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Config { field, message } => Self::Invalid { field, message },
            DbError::Connection(m) => Self::Connection(m),
            DbError::Migration(m) => Self::Migration(m),
            DbError::AuditHead(m) => Self::AuditChain(m),
            DbError::Query(q) => Self::Database(q),
            DbError::Blocking(m) => Self::Internal(format!("blocking task: {m}")),
        }
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

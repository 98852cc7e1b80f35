//! The REST API's conversion of service errors: every [`ControlError`] becomes one HTTP status
//! and a JSON body `{"error":{"code":"snake_case","message":"..."}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

pub use likeness_control_service::error::ControlError;

/// Result alias of the handlers.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A service error on its way to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(pub ControlError);

impl<E: Into<ControlError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

/// The HTTP status of a service error.
pub fn status_of(e: &ControlError) -> StatusCode {
    use diesel_kinds::*;
    match e {
        ControlError::Unauthenticated | ControlError::InvalidCredentials => {
            StatusCode::UNAUTHORIZED
        }
        ControlError::Csrf | ControlError::Forbidden(_) => StatusCode::FORBIDDEN,
        ControlError::NotFound(_) | ControlError::Database(DieselError::NotFound) => {
            StatusCode::NOT_FOUND
        }
        ControlError::Invalid { .. } | ControlError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        ControlError::Conflict { .. }
        | ControlError::Database(DieselError::DatabaseError(Kind::UniqueViolation, _)) => {
            StatusCode::CONFLICT
        }
        ControlError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ControlError::TooManyAttempts { .. } | ControlError::RateLimited { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        ControlError::Gone { .. } => StatusCode::GONE,
        ControlError::Unavailable { .. } | ControlError::Connection(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ControlError::Config(_)
        | ControlError::Database(_)
        | ControlError::Migration(_)
        | ControlError::AuditChain(_)
        | ControlError::Matcher(_)
        | ControlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

mod diesel_kinds {
    pub use likeness_control_service::db::diesel_error::{
        DatabaseErrorKind as Kind, Error as DieselError,
    };
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

/// The JSON answer of a service error (also used for errors raised by actix itself).
pub fn error_response(e: &ControlError) -> HttpResponse {
    let status = status_of(e);
    if status.is_server_error() {
        tracing::error!(code = e.code(), error = %e, "request failed");
    }
    let mut resp = HttpResponse::build(status);
    if let ControlError::TooManyAttempts { retry_after_secs }
    | ControlError::RateLimited {
        retry_after_secs, ..
    } = e
    {
        resp.insert_header((
            actix_web::http::header::RETRY_AFTER,
            retry_after_secs.to_string(),
        ));
    }
    resp.json(ErrorBody {
        error: ErrorDetail {
            code: e.code().into(),
            message: e.public_message(),
        },
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        error_response(&self.0)
    }
}

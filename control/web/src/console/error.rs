//! The console's errors, shown as HTML pages: a missing or expired session sends the browser to
//! the login page; anything else is a page with the status the REST API would answer and the
//! services' public message (which names the problem), and a way back.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::service::ControlError;

use super::strings::{self, Strings};

/// Result of console handlers.
pub type Result<T> = std::result::Result<T, ConsoleError>;

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The services refused or failed.
    #[error("{0}")]
    Service(#[from] ControlError),
    /// The form could not be read (a field missing or of the wrong kind).
    #[error("the form could not be read: {0}")]
    Form(String),
    /// A failure of the console itself (a template).
    #[error("{0}")]
    Internal(String),
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    t: &'static Strings,
    status: u16,
    reason: &'a str,
    message: String,
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::Service(ControlError::Unauthenticated) => StatusCode::SEE_OTHER,
            ConsoleError::Service(e) => crate::error::status_of(e),
            ConsoleError::Form(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status == StatusCode::SEE_OTHER {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/login"))
                .finish();
        }
        let message = match self {
            ConsoleError::Service(e) => e.public_message(),
            ConsoleError::Internal(e) => {
                tracing::error!(error = %e, "console page failed");
                "internal error; see the server log".to_string()
            }
            other => other.to_string(),
        };
        let t = &strings::EN;
        let page = ErrorPage {
            t,
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or(""),
            message,
        };
        let mut res = HttpResponse::build(status);
        if let ConsoleError::Service(e @ ControlError::TooManyAttempts { .. }) = self
            && let Some(v) = crate::error::error_response(e)
                .headers()
                .get(header::RETRY_AFTER)
                .cloned()
        {
            res.insert_header((header::RETRY_AFTER, v));
        }
        match page.render() {
            Ok(html) => res.content_type("text/html; charset=utf-8").body(html),
            Err(_) => res
                .content_type("text/plain; charset=utf-8")
                .body(page.message),
        }
    }
}

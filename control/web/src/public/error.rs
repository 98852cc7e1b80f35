//! The public pages' errors, shown as HTML pages in the person's language with the status the
//! REST API would answer: an unknown link 404 ("This link is not valid"), an expired, revoked,
//! used or locked link 410 (each with its own words), too many tries 429 with `Retry-After`, a
//! forged or stale form 403, bad input 400, anything else 5xx without internals.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::service::ControlError;

use super::strings::Strings;

/// Result of the public handlers.
pub type Result<T> = std::result::Result<T, PublicError>;

/// A failed public request: the service's error and the language to tell it in.
#[derive(Debug)]
pub struct PublicError {
    /// The strings of the page's language.
    pub t: &'static Strings,
    /// What went wrong.
    pub error: ControlError,
}

impl std::fmt::Display for PublicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl PublicError {
    /// A failure of the pages themselves (a template).
    pub fn internal(t: &'static Strings, message: String) -> Self {
        Self {
            t,
            error: ControlError::Internal(message),
        }
    }
}

/// `map_err(in_lang(t))`: a service error told in `t`'s language.
pub fn in_lang(t: &'static Strings) -> impl FnOnce(ControlError) -> PublicError {
    move |error| PublicError { t, error }
}

/// Whether an error's page is told in the language of the request behind the link: a dead link
/// (410) or something missing behind a known link (404).
fn about_the_link(e: &ControlError) -> bool {
    matches!(
        crate::error::status_of(e),
        StatusCode::GONE | StatusCode::NOT_FOUND
    )
}

/// A service error about the signing link `token`: a 410 / 404 in the language of the request
/// behind the link when the token matched one, anything else (and an unknown token) in the
/// browser's language.
pub async fn about_sign_link(
    req: &actix_web::HttpRequest,
    state: &super::State,
    token: &str,
    error: ControlError,
) -> PublicError {
    let lang = if about_the_link(&error) {
        crate::service::signing::link_language(state, token).await
    } else {
        None
    };
    PublicError {
        t: lang.map_or_else(
            || super::strings::for_browser(req),
            |l| super::strings::for_language(&l),
        ),
        error,
    }
}

/// Like [`about_sign_link`] for a receipt's link (`/receipt/{token}`): the receipt's language.
pub async fn about_receipt_link(
    req: &actix_web::HttpRequest,
    state: &super::State,
    token: &str,
    error: ControlError,
) -> PublicError {
    let lang = if about_the_link(&error) {
        crate::service::signing::receipt_language(state, token).await
    } else {
        None
    };
    PublicError {
        t: lang.map_or_else(
            || super::strings::for_browser(req),
            |l| super::strings::for_language(&l),
        ),
        error,
    }
}

/// What the page says about an error: (title, text).
pub fn describe(t: &'static Strings, e: &ControlError) -> (&'static str, &'static str) {
    match e {
        ControlError::NotFound(_) | ControlError::Database(_) if is_not_found(e) => {
            (t.link_invalid_title, t.link_invalid_text)
        }
        ControlError::Gone { code, .. } => gone(t, code),
        ControlError::RateLimited { .. } | ControlError::TooManyAttempts { .. } => {
            (t.rate_limited_title, t.rate_limited_text)
        }
        ControlError::Csrf | ControlError::Forbidden(_) => (t.forbidden_title, t.forbidden_text),
        ControlError::Invalid { field, .. } => (t.invalid_title, invalid_text(t, field)),
        ControlError::BadRequest { code, .. } | ControlError::Conflict { code, .. } => {
            (t.invalid_title, invalid_text(t, code))
        }
        ControlError::Unavailable { .. } | ControlError::Connection(_) => {
            (t.unavailable_title, t.unavailable_text)
        }
        _ => (t.internal_title, t.internal_text),
    }
}

fn is_not_found(e: &ControlError) -> bool {
    crate::error::status_of(e) == StatusCode::NOT_FOUND
}

/// The words for a 410 by its code (`link_expired`, `link_revoked`, `request_locked`,
/// `already_signed`, `already_withdrawn`, ...).
fn gone(t: &'static Strings, code: &str) -> (&'static str, &'static str) {
    if code == "code_locked" {
        (t.rate_limited_title, t.code_locked_text)
    } else if code.contains("revoked") {
        (t.link_revoked_title, t.link_revoked_text)
    } else if code.contains("locked") {
        (t.locked_title, t.locked_text)
    } else if code.contains("withdrawn") {
        (t.already_withdrawn_title, t.already_withdrawn_text)
    } else if code.contains("signed") || code.contains("used") {
        (t.already_signed_title, t.already_signed_text)
    } else if code.contains("code") && code.contains("expired") {
        (t.link_expired_title, t.code_expired_text)
    } else {
        (t.link_expired_title, t.link_expired_text)
    }
}

/// The words for bad input naming `what` (a field or a code).
pub fn invalid_text(t: &'static Strings, what: &str) -> &'static str {
    if what.contains("guardian") {
        t.missing_guardian
    } else if what.contains("scope") || what.contains("mandatory") {
        t.missing_required_scope
    } else {
        t.invalid_text
    }
}

#[derive(Template)]
#[template(path = "public/error.html")]
struct ErrorPage<'a> {
    t: &'static Strings,
    stylesheet: &'a str,
    status: u16,
    title: &'a str,
    text: &'a str,
    detail: Option<String>,
    retry_after_secs: Option<u64>,
}

impl ResponseError for PublicError {
    fn status_code(&self) -> StatusCode {
        crate::error::status_of(&self.error)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let t = self.t;
        let (title, text) = describe(t, &self.error);
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self.error, "public page failed");
        }
        let retry_after_secs = match &self.error {
            ControlError::RateLimited {
                retry_after_secs, ..
            }
            | ControlError::TooManyAttempts { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        // Bad input: the service's message names the problem (in English) under the words.
        let detail = (status == StatusCode::BAD_REQUEST).then(|| self.error.public_message());
        let page = ErrorPage {
            t,
            stylesheet: super::STYLESHEET,
            status: status.as_u16(),
            title,
            text,
            detail,
            retry_after_secs,
        };
        let mut res = HttpResponse::build(status);
        if let Some(secs) = retry_after_secs {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        match page.render() {
            Ok(html) => res.content_type("text/html; charset=utf-8").body(html),
            Err(_) => res
                .content_type("text/plain; charset=utf-8")
                .body(format!("{title}. {text}")),
        }
    }
}

/// The page of an unknown public path: "This link is not valid" (404), in the browser's
/// language.
pub fn not_found_page(req: &actix_web::HttpRequest) -> HttpResponse {
    PublicError {
        t: super::strings::for_browser(req),
        error: ControlError::NotFound("link".into()),
    }
    .error_response()
}

/// The page of an error that actix raised itself on a public path (405, 413, ...): the words
/// of the status, in the browser's language. Its status stays the caller's.
pub fn status_page(req: &actix_web::HttpRequest, status: StatusCode) -> (String, &'static str) {
    let t = super::strings::for_browser(req);
    let error = match status {
        StatusCode::NOT_FOUND => ControlError::NotFound("link".into()),
        StatusCode::FORBIDDEN => ControlError::Csrf,
        s if s.is_client_error() => ControlError::BadRequest {
            code: "bad_request",
            message: s.canonical_reason().unwrap_or("bad request").to_string(),
        },
        _ => ControlError::Internal(status.to_string()),
    };
    let (title, text) = describe(t, &error);
    let page = ErrorPage {
        t,
        stylesheet: super::STYLESHEET,
        status: status.as_u16(),
        title,
        text,
        detail: None,
        retry_after_secs: None,
    };
    let html = page.render().unwrap_or_else(|_| format!("{title}. {text}"));
    (html, "text/html; charset=utf-8")
}

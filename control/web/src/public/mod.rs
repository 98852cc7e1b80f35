//! The public pages of persons (no account): the signing page behind a request's link, the
//! receipt page, and withdrawal through the receipt's link. Mobile-first HTML in English,
//! Swedish and Dutch (the request's language), a strict Content-Security-Policy (set by the
//! edge middleware for every path under `/sign/` and `/receipt/`), CSRF-protected forms
//! (a double-submit cookie, see [`csrf`]), no script at all, and every bad path answered by a
//! page that says what happened, with the status that fits (see [`error`]).
//!
//! Routes:
//! - `GET /sign/{token}`: the agreement, its scopes and files; `POST /sign/{token}`: the
//!   choices, which sends the code; `POST /sign/{token}/resend`: a new code;
//!   `POST /sign/{token}/code`: the code, which signs; `GET /sign/{token}/files/{asset_id}`:
//!   a file's thumbnail (others' faces blurred).
//! - `GET /receipt/{token}`: the receipt; `receipt.pdf`, `receipt.json`;
//!   `POST /receipt/{token}/withdraw` (sends the code), `POST /receipt/{token}/withdraw/confirm`.
//!
//! Handlers parse, call one function of `service::signing`, and render; no logic of the flow
//! lives here.

pub mod csrf;
pub mod error;
pub mod receipt;
pub mod shares;
pub mod sign;
pub mod strings;

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::Deps;
use crate::service::signing::ClientInfo;
pub use error::{PublicError, Result};
use strings::Strings;

/// The public pages' Content-Security-Policy: nothing but their own stylesheet and images, no
/// script at all, forms only to themselves, never framed.
pub const PUBLIC_CSP: &str = "default-src 'none'; img-src 'self'; style-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The path of the public pages' stylesheet.
pub const STYLESHEET: &str = "/sign/static/public.css";

/// Whether `path` is one of the public pages' (HTML pages with their own error pages, CSP and
/// referrer policy).
pub fn is_public(path: &str) -> bool {
    ["/sign", "/receipt", "/s"].iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The app state, for handlers.
pub type State = web::Data<Deps>;

/// The signer's client: the peer's address (or `X-Forwarded-For` when the server trusts it) and
/// the User-Agent (at most 512 characters), kept in the evidence.
pub fn client_info(req: &HttpRequest, state: &State) -> ClientInfo {
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect::<String>());
    ClientInfo {
        ip: crate::auth::client_ip(req, state.config.server.trust_forwarded_for),
        user_agent,
    }
}

/// Renders a page with `status` (`200` for a page, `400` for a form shown again with its
/// problem), setting the CSRF cookie when the page's forms need a new one.
pub fn render_page<T: Template>(
    t: &'static Strings,
    status: actix_web::http::StatusCode,
    tpl: &T,
    cookie: Option<actix_web::cookie::Cookie<'static>>,
) -> Result<HttpResponse> {
    let html = tpl
        .render()
        .map_err(|e| PublicError::internal(t, format!("template: {e}")))?;
    let mut res = HttpResponse::build(status);
    if let Some(c) = cookie {
        res.cookie(c);
    }
    Ok(res.content_type("text/html; charset=utf-8").body(html))
}

/// The stylesheet (the only static file: the pages have no script).
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(include_str!("../../static/public.css"))
}

/// The number of whole minutes (rounded up, at least 1) from `now` to `until`.
pub fn minutes_until(until: chrono::NaiveDateTime, now: chrono::NaiveDateTime) -> i64 {
    let secs = (until - now).num_seconds().max(0);
    ((secs + 59) / 60).max(1)
}

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route(STYLESHEET, web::get().to(stylesheet))
        .configure(sign::configure)
        .configure(receipt::configure)
        .configure(shares::configure);
}

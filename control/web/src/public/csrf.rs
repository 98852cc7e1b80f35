//! CSRF protection of the public forms without sessions: a double-submit cookie. A page with a
//! form carries a random value both in the `lk_pcsrf` cookie (HttpOnly, SameSite=Strict,
//! `Path=/`, `Secure` per `server.cookie_secure`) and in the form's hidden `csrf` field; a POST
//! is accepted only when both are there and equal (compared in constant time), and when the
//! browser does not say it comes from another site (`Origin`). Another site can neither read
//! the cookie nor make the browser send it (SameSite=Strict), so it cannot forge a match.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;

use crate::service::ControlError;
use crate::service::auth::{constant_time_eq, random_secret};

/// The cookie's name.
pub const COOKIE: &str = "lk_pcsrf";

/// Whether a cookie value looks like one of ours (43 base64url characters).
fn well_formed(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The CSRF value for the forms of a page: the browser's cookie when it has one, else a new
/// random value with the cookie that sets it (to send with the page).
pub fn token(
    req: &HttpRequest,
    secure: bool,
) -> Result<(String, Option<Cookie<'static>>), ControlError> {
    if let Some(c) = req.cookie(COOKIE)
        && well_formed(c.value())
    {
        return Ok((c.value().to_string(), None));
    }
    let value = random_secret()?;
    let cookie = Cookie::build(COOKIE, value.clone())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish();
    Ok((value, Some(cookie)))
}

/// Whether the browser says the form was posted from another origin (`Origin` present, not
/// `null`, and naming another host). `null` is what a same-origin form sends under
/// `Referrer-Policy: no-referrer`, so it is left to the cookie check.
fn cross_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if origin == "null" {
        return false;
    }
    let host = req.connection_info().host().to_string();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    !origin_host.eq_ignore_ascii_case(&host)
}

/// Refuses a POST whose `csrf` field does not match its cookie, or that comes from another
/// site ([`ControlError::Csrf`]: 403).
pub fn check(req: &HttpRequest, field: Option<&str>) -> Result<(), ControlError> {
    if cross_origin(req) {
        return Err(ControlError::Csrf);
    }
    let cookie = req.cookie(COOKIE);
    match (cookie, field) {
        (Some(c), Some(f)) if well_formed(c.value()) && constant_time_eq(c.value(), f) => Ok(()),
        _ => Err(ControlError::Csrf),
    }
}

/// Reads the `csrf` field of a urlencoded body and [`check`]s it, before anything else of the
/// form is looked at.
pub fn check_form(req: &HttpRequest, body: &[u8]) -> Result<(), ControlError> {
    #[derive(serde::Deserialize)]
    struct CsrfOnly {
        csrf: Option<String>,
    }
    let got: CsrfOnly = serde_html_form::from_bytes(body).unwrap_or(CsrfOnly { csrf: None });
    check(req, got.csrf.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    const V: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";

    #[test]
    fn double_submit() {
        let req = TestRequest::post()
            .cookie(Cookie::new(COOKIE, V))
            .to_http_request();
        assert!(check(&req, Some(V)).is_ok());
        assert!(check(&req, Some("x")).is_err());
        assert!(check(&req, None).is_err());
        let no_cookie = TestRequest::post().to_http_request();
        assert!(check(&no_cookie, Some(V)).is_err());
        let other_site = TestRequest::post()
            .insert_header((header::HOST, "consent.example.org"))
            .insert_header((header::ORIGIN, "https://evil.example"))
            .cookie(Cookie::new(COOKIE, V))
            .to_http_request();
        assert!(check(&other_site, Some(V)).is_err());
        let same_site = TestRequest::post()
            .insert_header((header::HOST, "consent.example.org"))
            .insert_header((header::ORIGIN, "https://consent.example.org"))
            .cookie(Cookie::new(COOKIE, V))
            .to_http_request();
        assert!(check(&same_site, Some(V)).is_ok());
    }
}

//! The share links' public pages (`/s/...`): the portal of a share link (a grid of the files
//! allowed on the share's channel today), its password form, its images and downloads. Every
//! file is checked against the allowed set in memory on each request (in
//! `service::shares`), and nothing of a share is cached by browsers (`Cache-Control:
//! no-store`): a revoked link, or a file no longer allowed, stops at once.
//!
//! Routes:
//! - `GET /s/{token}`: the portal, or the password form; a share of one file that is not
//!   allowed any more answers 451 with a page saying it is no longer available.
//! - `POST /s/{token}`: the password (CSRF: the public pages' double-submit cookie); a right
//!   one sets the share's unlock cookie (`lk_share`, path `/s/{token}`) and goes back to the
//!   portal (303); a wrong one shows the form again (400); too many: 429.
//! - `GET /s/{token}/{asset_id}/{rendition}`: an image (`small.jpg`, `large.webp`, ...); 451
//!   when the file is not allowed on the share's channel today.
//! - `GET /s/{token}/{asset_id}/download`: the download (when the share offers it).
//!
//! Unknown link 404, expired or revoked 410 (HTML pages in the browser's language).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{StatusCode, header};
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::service::ControlError;
use crate::service::shares::{
    self, FileAsk, GRID_RENDITION, LARGE_RENDITION, Portal, PortalPage, Served, UNLOCK_COOKIE,
    Visitor,
};

use super::error::in_lang;
use super::strings::{self, Strings};
use super::{PublicError, Result, STYLESHEET, State, client_info, csrf, render_page};

/// 451 Unavailable For Legal Reasons (RFC 7725).
fn unavailable_status() -> StatusCode {
    StatusCode::from_u16(451).unwrap_or(StatusCode::GONE)
}

#[derive(Template)]
#[template(path = "public/share.html")]
struct PortalView<'a> {
    t: &'static Strings,
    stylesheet: &'static str,
    p: &'a PortalPage,
    base: String,
    expires_on: String,
    grid: &'static str,
    large: &'static str,
}

#[derive(Template)]
#[template(path = "public/share_password.html")]
struct PasswordView<'a> {
    t: &'static Strings,
    stylesheet: &'static str,
    title: &'a str,
    tenant_name: &'a str,
    csrf: String,
    action: String,
    wrong: bool,
}

#[derive(Template)]
#[template(path = "public/share_unavailable.html")]
struct UnavailableView<'a> {
    t: &'static Strings,
    stylesheet: &'static str,
    title: &'a str,
}

fn visitor(req: &HttpRequest, state: &State) -> Visitor {
    Visitor {
        client: client_info(req, state),
        unlock_cookie: req.cookie(UNLOCK_COOKIE).map(|c| c.value().to_string()),
    }
}

fn no_store(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

fn password_page(
    req: &HttpRequest,
    state: &State,
    t: &'static Strings,
    token: &str,
    title: &str,
    tenant_name: &str,
    wrong: bool,
) -> Result<HttpResponse> {
    let (csrf, cookie) = csrf::token(req, state.config.server.cookie_secure).map_err(in_lang(t))?;
    let view = PasswordView {
        t,
        stylesheet: STYLESHEET,
        title,
        tenant_name,
        csrf,
        action: format!("/s/{token}"),
        wrong,
    };
    let status = if wrong {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(no_store(render_page(t, status, &view, cookie)?))
}

fn portal_page(t: &'static Strings, token: &str, p: &PortalPage) -> Result<HttpResponse> {
    if p.total == 1 && p.files.is_empty() {
        let view = UnavailableView {
            t,
            stylesheet: STYLESHEET,
            title: &p.title,
        };
        return Ok(no_store(render_page(t, unavailable_status(), &view, None)?));
    }
    let view = PortalView {
        t,
        stylesheet: STYLESHEET,
        p,
        base: format!("/s/{token}"),
        expires_on: p.expires_on.format("%Y-%m-%d").to_string(),
        grid: GRID_RENDITION,
        large: LARGE_RENDITION,
    };
    Ok(no_store(render_page(t, StatusCode::OK, &view, None)?))
}

/// `GET /s/{token}`.
async fn page(req: HttpRequest, state: State, path: web::Path<String>) -> Result<HttpResponse> {
    let token = path.into_inner();
    let t = strings::for_browser(&req);
    let deps = state.clone().into_inner();
    match shares::open_portal(&deps, &token, visitor(&req, &state))
        .await
        .map_err(in_lang(t))?
    {
        Portal::Password { title, tenant_name } => {
            password_page(&req, &state, t, &token, &title, &tenant_name, false)
        }
        Portal::Open(p) => portal_page(t, &token, &p),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
}

/// `POST /s/{token}`: the password.
async fn password(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let token = path.into_inner();
    let t = strings::for_browser(&req);
    csrf::check_form(&req, &body).map_err(in_lang(t))?;
    let form: PasswordForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    let deps = state.clone().into_inner();
    match shares::unlock(&deps, &token, &form.password, visitor(&req, &state)).await {
        Ok((value, secs)) => {
            let mut res = HttpResponse::SeeOther();
            res.insert_header((header::LOCATION, format!("/s/{token}")));
            if !value.is_empty() {
                res.cookie(
                    Cookie::build(UNLOCK_COOKIE, value)
                        .path(format!("/s/{token}"))
                        .http_only(true)
                        .secure(state.config.server.cookie_secure)
                        .same_site(SameSite::Lax)
                        .max_age(actix_web::cookie::time::Duration::seconds(secs))
                        .finish(),
                );
            }
            Ok(no_store(res.finish()))
        }
        Err(ControlError::Invalid { field, .. }) if field == "password" => {
            match shares::open_portal(&deps, &token, visitor(&req, &state))
                .await
                .map_err(in_lang(t))?
            {
                Portal::Password { title, tenant_name } => {
                    password_page(&req, &state, t, &token, &title, &tenant_name, true)
                }
                Portal::Open(p) => portal_page(t, &token, &p),
            }
        }
        Err(e) => Err(PublicError { t, error: e }),
    }
}

/// A name safe in `Content-Disposition` (ASCII letters, digits, `.-_ `; others become `_`).
fn safe_filename(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(150)
        .collect();
    if s.trim().is_empty() {
        "file".into()
    } else {
        s
    }
}

async fn serve(
    req: HttpRequest,
    state: State,
    token: String,
    asset_id: String,
    ask: FileAsk,
) -> Result<HttpResponse> {
    let t = strings::for_browser(&req);
    let deps = state.clone().into_inner();
    let download = ask == FileAsk::Download;
    match shares::portal_file(&deps, &token, &asset_id, ask, visitor(&req, &state))
        .await
        .map_err(in_lang(t))?
    {
        Served::File {
            rendition,
            filename,
        } => {
            let mut res = HttpResponse::Ok();
            res.content_type(rendition.mime.as_str())
                .insert_header((header::ETAG, rendition.etag.as_str()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header(("X-Content-Type-Options", "nosniff"));
            if download {
                res.insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", safe_filename(&filename)),
                ));
            }
            Ok(res.body(rendition.bytes.clone()))
        }
        Served::Unavailable => Ok(HttpResponse::build(unavailable_status())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body("Unavailable for legal reasons.\n")),
        Served::NeedsPassword => Ok(HttpResponse::Forbidden()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body("Open the link and give its password first.\n")),
    }
}

/// `GET /s/{token}/{asset_id}/download`.
async fn download(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (token, asset_id) = path.into_inner();
    serve(req, state, token, asset_id, FileAsk::Download).await
}

/// `GET /s/{token}/{asset_id}/{rendition}`.
async fn image(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let (token, asset_id, rendition) = path.into_inner();
    serve(req, state, token, asset_id, FileAsk::Rendition(rendition)).await
}

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/s/{token}", web::get().to(page))
        .route("/s/{token}", web::post().to(password))
        .route("/s/{token}/{asset_id}/download", web::get().to(download))
        .route("/s/{token}/{asset_id}/{rendition}", web::get().to(image));
}

//! The admin console at `/admin`: server-rendered HTML pages (askama templates in
//! `templates/console/`) over the same service functions as the REST API. Every core action is a
//! plain HTML form (POST, then a 303 redirect to the page to show next), so the console works
//! without JavaScript; `static/console.js` only enhances (decisions in place, upload progress,
//! keyboard shortcuts, drawing a box). Handlers parse, build a [`Ctx`], call service
//! functions and render: what a role may do is decided by the services, and what it may not do
//! is not shown (the layout and pages ask [`Ctx::has`]).
//!
//! Sessions are the REST API's (`lk_session` cookie); unsafe requests carry the session's CSRF
//! token in the form field `csrf` (or the `X-CSRF-Token` header from scripts).

pub mod admin;
pub mod error;
pub mod file_page;
pub mod files;
pub mod overview;
pub mod persons;
pub mod publishing;
pub mod review;
pub mod rights;
pub mod session;
pub mod signing;
pub mod strings;
pub mod upload;

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::de::DeserializeOwned;

use crate::Deps;
use crate::roles::Permission;
use crate::service::Ctx;
pub use error::{ConsoleError, Result};
pub use session::ConsoleUser;
use strings::Strings;

/// The console's URL prefix.
pub const PREFIX: &str = "/admin";

/// What every page's layout needs: the strings, who is logged in, the CSRF token for its forms,
/// which navigation entries the user's role may use, the current entry and a notice to show.
#[derive(Debug)]
pub struct Layout {
    /// The strings of the page's language.
    pub t: &'static Strings,
    /// The user's e-mail.
    pub user_label: String,
    /// The session's CSRF token, for the hidden `csrf` field of every form.
    pub csrf: String,
    /// The navigation entries the user may use.
    pub nav: Nav,
    /// The current navigation entry (`overview`, `review`, `files`, ...).
    pub current: &'static str,
    /// A message after a successful action (from `?notice=`; only known keys).
    pub notice: Option<&'static str>,
}

/// Which parts of the console the user's role can use.
#[derive(Debug, Clone, Copy)]
pub struct Nav {
    /// Review queue (`manage_persons`).
    pub review: bool,
    /// Upload (`manage_assets`).
    pub upload: bool,
    /// Register of persons (`see_persons`).
    pub persons: bool,
    /// Settings (`manage_settings`).
    pub settings: bool,
    /// Users, API tokens and roles (`manage_users`).
    pub users: bool,
    /// Audit log (`read_audit`).
    pub audit: bool,
    /// Re-matching runs (`manage_assets`).
    pub rematch: bool,
    /// Agreement templates, signing requests and the outbox (`manage_consents`).
    pub signing: bool,
    /// Share links and portals (`manage_assets`).
    pub shares: bool,
    /// Alerts of expiring consents (`manage_consents`).
    pub alerts: bool,
    /// Webhook endpoints (`manage_settings`).
    pub webhooks: bool,
}

impl Nav {
    fn of(ctx: &Ctx) -> Self {
        Self {
            review: ctx.has(Permission::ManagePersons),
            upload: ctx.has(Permission::ManageAssets),
            persons: ctx.has(Permission::SeePersons),
            settings: ctx.has(Permission::ManageSettings),
            users: ctx.has(Permission::ManageUsers),
            audit: ctx.has(Permission::ReadAudit),
            rematch: ctx.has(Permission::ManageAssets),
            signing: ctx.has(Permission::ManageConsents),
            shares: ctx.has(Permission::ManageAssets),
            alerts: ctx.has(Permission::ManageConsents),
            webhooks: ctx.has(Permission::ManageSettings),
        }
    }
}

impl Layout {
    /// The layout of a page of `current` for the user of `ctx`.
    pub fn new(req: &HttpRequest, user: &ConsoleUser, ctx: &Ctx, current: &'static str) -> Self {
        let t = strings::for_request(req);
        let notice = web::Query::<NoticeQuery>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.notice.clone())
            .and_then(|k| strings::notice(t, &k));
        Self {
            t,
            user_label: ctx.actor.label.clone(),
            csrf: user.csrf.clone(),
            nav: Nav::of(ctx),
            current,
            notice,
        }
    }
}

#[derive(serde::Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

/// Renders a template as a `200 text/html` page.
pub fn render<T: Template>(tpl: &T) -> Result<HttpResponse> {
    let html = tpl
        .render()
        .map_err(|e| ConsoleError::Internal(format!("template: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// Whether a script sent the request (`X-Requested-With: fetch`): it wants `204` rather than a
/// redirect to a page it won't show.
pub fn from_script(req: &HttpRequest) -> bool {
    req.headers()
        .get("x-requested-with")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("fetch"))
}

/// The answer to a successful form: `303 See Other` to `location` (a console path), or `204`
/// for a script.
pub fn done(req: &HttpRequest, location: &str) -> HttpResponse {
    if from_script(req) {
        return HttpResponse::NoContent().finish();
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .finish()
}

/// Parses an `application/x-www-form-urlencoded` body (repeated keys fill `Vec` fields) after
/// checking its `csrf` field against the session's: a forged form is refused before its
/// content is looked at.
pub fn parse_form<T: DeserializeOwned>(user: &ConsoleUser, body: &[u8]) -> Result<T> {
    #[derive(serde::Deserialize)]
    struct CsrfOnly {
        csrf: Option<String>,
    }
    let token: CsrfOnly = serde_html_form::from_bytes(body).unwrap_or(CsrfOnly { csrf: None });
    user.check_csrf(token.csrf.as_deref())?;
    serde_html_form::from_bytes(body).map_err(|e| ConsoleError::Form(e.to_string()))
}

/// A form with nothing but the CSRF token (a button).
#[derive(Debug, serde::Deserialize)]
pub struct Button {
    /// The session's CSRF token.
    pub csrf: String,
}

/// The console's own static files (no third-party code): name, content type, content.
/// Pages include the scripts they need.
const STATIC_FILES: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../static/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/console.js"),
    ),
    (
        "review.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/review.js"),
    ),
    (
        "file.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/file.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/admin.js"),
    ),
    (
        "upload.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/upload.js"),
    ),
    (
        "rights.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/rights.js"),
    ),
];

async fn static_file(name: web::Path<String>) -> Result<HttpResponse> {
    let Some((_, content_type, body)) = STATIC_FILES.iter().find(|(n, _, _)| *n == name.as_str())
    else {
        return Err(ConsoleError::Service(
            crate::service::ControlError::not_found(format!("static file {name}")),
        ));
    };
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(*body))
}

/// Registers the console's routes under [`PREFIX`].
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/static/{name}", web::get().to(static_file))
        .configure(session::configure)
        .configure(overview::configure)
        .configure(review::configure)
        .configure(file_page::configure)
        .configure(files::configure)
        .configure(upload::configure)
        .configure(persons::configure)
        .configure(admin::configure)
        .configure(signing::configure)
        .configure(publishing::configure)
        .configure(rights::configure);
}

/// The `Deps` of a request, for handlers.
pub type State = web::Data<Deps>;

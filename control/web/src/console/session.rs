//! Logging in and out of the console, and [`ConsoleUser`], the logged-in user of a page.
//!
//! The session is the REST API's: `POST /admin/login` calls the same throttled login and sets
//! the same `lk_session` cookie (HttpOnly, SameSite=Strict). Every form carries the session's
//! CSRF token; the login form itself is refused when the browser says it comes from another
//! origin.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::web::{self, ServiceConfig};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::auth::{self, SESSION_COOKIE};
use crate::service::{Actor, ControlError, Ctx, Deps, users};

use super::strings::{self, Strings};
use super::{Button, ConsoleError, Result, State, parse_form};

/// Remembers the organisation of the last login on this browser (not a secret).
const TENANT_COOKIE: &str = "lk_tenant";

/// The logged-in user of a console request and their session's CSRF token.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    /// Who they are, with their permissions.
    pub actor: Actor,
    /// The session's CSRF token.
    pub csrf: String,
}

impl ConsoleUser {
    /// The services' context for this user.
    pub fn ctx(&self, state: &State) -> Ctx {
        Ctx::new(state.clone().into_inner(), self.actor.clone())
    }

    /// Refuses a form whose CSRF token is not the session's.
    pub fn check_csrf(&self, got: Option<&str>) -> Result<()> {
        match got {
            Some(got) if auth::constant_time_eq(got, &self.csrf) => Ok(()),
            _ => Err(ControlError::Csrf.into()),
        }
    }
}

impl FromRequest for ConsoleUser {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<ConsoleUser>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<Deps>>().cloned();
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        let trust = state
            .as_ref()
            .is_some_and(|s| s.config.server.trust_forwarded_for);
        let ip = auth::client_ip(req, trust);
        Box::pin(async move {
            let Some(state) = state else {
                return Err(ConsoleError::Internal("Deps not registered".into()));
            };
            let Some(raw) = cookie else {
                return Err(ControlError::Unauthenticated.into());
            };
            let (mut actor, csrf) =
                crate::service::db::run(&state.pool, move |c| auth::authenticate_session(c, &raw))
                    .await?;
            actor.ip = ip;
            Ok(ConsoleUser { actor, csrf })
        })
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    t: &'static Strings,
    tenant: &'a str,
    email: &'a str,
    error: Option<&'static str>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct LoginQuery {
    notice: Option<String>,
}

async fn login_page(req: HttpRequest) -> Result<HttpResponse> {
    let t = strings::for_request(&req);
    let tenant = req
        .cookie(TENANT_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let notice = web::Query::<LoginQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.notice.clone())
        .and_then(|k| strings::notice(t, &k));
    super::render(&LoginPage {
        t,
        tenant: &tenant,
        email: "",
        error: None,
        notice,
    })
}

#[derive(Deserialize)]
struct LoginForm {
    tenant: String,
    email: String,
    password: String,
}

/// Whether the browser says the form was posted from another site (`Origin` not this host).
fn cross_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let host = req.connection_info().host().to_string();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    origin != "null" && !origin_host.eq_ignore_ascii_case(&host)
}

async fn login(req: HttpRequest, state: State, body: web::Bytes) -> Result<HttpResponse> {
    if cross_origin(&req) {
        return Err(ControlError::Csrf.into());
    }
    let form: LoginForm =
        serde_html_form::from_bytes(&body).map_err(|e| ConsoleError::Form(e.to_string()))?;
    let t = strings::for_request(&req);
    let ip = auth::client_ip(&req, state.config.server.trust_forwarded_for);
    let ttl = state.config.server.session_ttl_minutes;
    let tenant = form.tenant.trim().to_string();
    let out = users::login_throttled(
        &state,
        tenant.clone(),
        form.email.clone(),
        form.password,
        ip,
    )
    .await;
    let out = match out {
        Ok(out) => out,
        Err(e @ (ControlError::InvalidCredentials | ControlError::TooManyAttempts { .. })) => {
            let (status, error) = match e {
                ControlError::InvalidCredentials => {
                    (StatusCode::UNAUTHORIZED, t.common.login_failed)
                }
                _ => (StatusCode::TOO_MANY_REQUESTS, t.common.login_throttled),
            };
            let html = LoginPage {
                t,
                tenant: &tenant,
                email: &form.email,
                error: Some(error),
                notice: None,
            }
            .render()
            .map_err(|e| ConsoleError::Internal(format!("template: {e}")))?;
            return Ok(HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(html));
        }
        Err(e) => return Err(e.into()),
    };
    let secure = state.config.server.cookie_secure;
    let session = Cookie::build(SESSION_COOKIE, out.session)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(actix_web::cookie::time::Duration::minutes(ttl))
        .finish();
    let remembered = Cookie::build(TENANT_COOKIE, tenant)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/admin")
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    Ok(HttpResponse::SeeOther()
        .cookie(session)
        .cookie(remembered)
        .insert_header((header::LOCATION, "/admin"))
        .finish())
}

async fn logout(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let raw = req
        .cookie(SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    users::end_session(&user.ctx(&state), raw).await?;
    let mut gone = Cookie::build(SESSION_COOKIE, "")
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((header::LOCATION, "/admin/login?notice=logged_out"))
        .finish())
}

/// Registers the login and logout routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/login", web::get().to(login_page))
        .route("/admin/login", web::post().to(login))
        .route("/admin/logout", web::post().to(logout));
}

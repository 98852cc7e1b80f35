//! Login, logout and `me`.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::Deps;
use crate::api::extract::Json;
use crate::auth::{self, Actor, AuthVia};
use crate::error::{ErrorBody, Result};
use crate::roles::{Permission, Role};
use crate::service::Ctx;
use crate::service::users::{self, UserOut};

/// Login request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The tenant's slug.
    pub tenant: String,
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
}

/// Login answer; the session itself is in the `lk_session` cookie (HttpOnly, SameSite=Strict).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `X-CSRF-Token` on every POST/PUT/PATCH/DELETE of this session.
    pub csrf_token: String,
    /// When the session ends (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub expires_at: chrono::NaiveDateTime,
    /// The user.
    pub user: UserOut,
}

/// Who is calling.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// Tenant ID.
    pub tenant_id: String,
    /// Tenant slug.
    pub tenant_slug: String,
    /// Tenant name.
    pub tenant_name: String,
    /// The user.
    pub user: UserOut,
    /// Effective permissions.
    pub permissions: Vec<Permission>,
    /// `session` or `token`.
    pub via: AuthVia,
}

/// Logs in with tenant, e-mail and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; cookie lk_session set", body = LoginResponse),
        (status = 400, description = "The body is not a login request", body = ErrorBody),
        (status = 401, description = "Wrong tenant, e-mail or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this account or from this address (see Retry-After)", body = ErrorBody),
    ))]
async fn login(
    req: HttpRequest,
    state: web::Data<Deps>,
    body: Json<LoginRequest>,
) -> Result<HttpResponse> {
    let body = body.into_inner()?;
    let ip = auth::client_ip(&req, state.config.server.trust_forwarded_for);
    let ttl = state.config.server.session_ttl_minutes;
    let out = users::login_throttled(&state, body.tenant, body.email, body.password, ip).await?;
    let cookie = Cookie::build(auth::SESSION_COOKIE, out.session)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.server.cookie_secure)
        .path("/")
        .max_age(actix_web::cookie::time::Duration::minutes(ttl))
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(LoginResponse {
        csrf_token: out.csrf_token,
        expires_at: out.expires_at,
        user: out.user,
    }))
}

/// Ends the current session and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("session" = []), ("token" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
async fn logout(req: HttpRequest, actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let raw = req
        .cookie(auth::SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    users::end_session(&ctx, raw).await?;
    let mut gone = Cookie::build(auth::SESSION_COOKIE, "")
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

/// The calling user, tenant and permissions.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    security(("session" = []), ("token" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn me(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let (tenant, user) = users::whoami(&ctx).await?;
    Ok(HttpResponse::Ok().json(Me {
        tenant_id: tenant.id,
        tenant_slug: tenant.slug,
        tenant_name: tenant.name,
        user,
        permissions: ctx.actor.permissions.iter().copied().collect(),
        via: ctx.actor.via,
    }))
}

/// OpenAPI paths of this module.
#[derive(OpenApi)]
#[openapi(paths(login, logout, me), components(schemas(Role, Permission)))]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/auth/login", web::post().to(login))
        .route("/api/v1/auth/logout", web::post().to(logout))
        .route("/api/v1/me", web::get().to(me));
}

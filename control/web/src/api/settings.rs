//! Tenant settings: `GET /api/v1/settings` (every user of the tenant: clients need the channels
//! and the policy) and `PUT /api/v1/settings` (`manage_settings`).

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use likeness_control_domain::TenantSettings;
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::Json;
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::Ctx;
use crate::service::settings;

/// The tenant's settings.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = TenantSettings), (status = 401, body = ErrorBody)))]
async fn get_settings(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(settings::get_settings(&ctx).await?))
}

/// Replaces the tenant's settings (missing fields take their defaults; unknown fields are an
/// error).
#[utoipa::path(put, path = "/api/v1/settings", tag = "settings", request_body = TenantSettings,
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = TenantSettings), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_settings(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<TenantSettings>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = settings::put_settings(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(paths(get_settings, put_settings))]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/settings", web::get().to(get_settings))
        .route("/api/v1/settings", web::put().to(put_settings));
}

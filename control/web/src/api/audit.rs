//! The audit log of the caller's tenant.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::Query;
use crate::audit::{self, AuditPage, AuditQuery};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::Ctx;

/// The tenant's audit log, newest first (cursor-paginated by `before`).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    security(("session" = ["read_audit"]), ("token" = ["read_audit"])),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list(actor: Actor, state: web::Data<Deps>, q: Query<AuditQuery>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(audit::read_log(&ctx, q.into_inner()).await?))
}

/// OpenAPI paths of this module.
#[derive(OpenApi)]
#[openapi(paths(list))]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/audit", web::get().to(list));
}

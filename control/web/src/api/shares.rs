//! Share links and media portals (staff side): a link to one file or a collection for one
//! channel, with an end date, an optional password, view-only or download, an optional
//! watermark, an access log, and revocation. The link itself is served under `/s/{token}`
//! (`crate::public::shares`).
//!
//! - `POST /api/v1/shares` (`manage_assets`) -> 201 with the URL (shown only now).
//! - `GET /api/v1/shares?status=&asset_id=&page=&per_page=` (every user of the tenant).
//! - `GET /api/v1/shares/{id}` (every user): with its files and whether each is served now.
//! - `POST /api/v1/shares/{id}/revoke` (`manage_assets`): the link answers 410 from now on.
//! - `GET /api/v1/shares/{id}/access-log?page=&per_page=` (`manage_assets`), newest first.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::roles::Permission;
use crate::service::Ctx;
use crate::service::pagination::PageQuery;
use crate::service::shares::{
    self, AccessEntry, CreatedShare, NewShare, ShareDetail, ShareFile, ShareOut, ShareQuery,
    ShareStatus,
};

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(create_share, list_shares, get_share, revoke_share, access_log),
    components(schemas(
        AccessEntry,
        CreatedShare,
        NewShare,
        ShareDetail,
        ShareFile,
        ShareOut,
        ShareStatus
    ))
)]
pub struct Api;

/// Creates a share link for files of the tenant. The answer's `url` holds the link's secret
/// token: it is not stored and cannot be shown again.
#[utoipa::path(post, path = "/api/v1/shares", tag = "shares",
    request_body = NewShare,
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 201, body = CreatedShare), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_share(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<NewShare>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?; // before the body is looked at
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Created().json(shares::create_share(&ctx, body.into_inner()).await?))
}

/// The tenant's share links, newest first.
#[utoipa::path(get, path = "/api/v1/shares", tag = "shares", params(ShareQuery),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Vec<ShareOut>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_shares(
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<ShareQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(shares::list_shares(&ctx, q.into_inner()).await?))
}

/// One share link with its files and whether each is served now.
#[utoipa::path(get, path = "/api/v1/shares/{id}", tag = "shares",
    params(("id" = String, Path, description = "Share ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = ShareDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_share(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(shares::get_share(&ctx, path.into_inner()).await?))
}

/// Revokes a share link: from now on it answers 410 (revoking twice changes nothing).
#[utoipa::path(post, path = "/api/v1/shares/{id}/revoke", tag = "shares",
    params(("id" = String, Path, description = "Share ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = ShareOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_share(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(shares::revoke_share(&ctx, path.into_inner()).await?))
}

/// Who opened what through a share link, newest first: the portal (`view`), images (`image`),
/// downloads (`download`), passwords tried (`password`), each with its outcome (`ok`,
/// `bad_password`, `denied` for a file no longer allowed, `expired`, `revoked`).
#[utoipa::path(get, path = "/api/v1/shares/{id}/access-log", tag = "shares",
    params(("id" = String, Path, description = "Share ID"), PageQuery),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = Vec<AccessEntry>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn access_log(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    q: Query<PageQuery>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(shares::access_log(&ctx, path.into_inner(), q.into_inner()).await?))
}

/// Registers this module's routes (full paths).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/shares", web::post().to(create_share))
        .route("/api/v1/shares", web::get().to(list_shares))
        .route("/api/v1/shares/{id}", web::get().to(get_share))
        .route("/api/v1/shares/{id}/revoke", web::post().to(revoke_share))
        .route("/api/v1/shares/{id}/access-log", web::get().to(access_log));
}

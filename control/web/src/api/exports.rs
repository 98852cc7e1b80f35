//! Access-request exports (GDPR Art. 15, 20): a package of everything held about a person,
//! built in the background, downloadable until it expires. Every route needs `export`.
//!
//! - `POST /api/v1/persons/{person_id}/exports`: ask for a package (202 + the export).
//! - `GET /api/v1/persons/{person_id}/exports`: a person's exports, newest first.
//! - `GET /api/v1/exports/{export_id}`: one export and its progress.
//! - `GET /api/v1/exports/{export_id}/download`: the zip (409 `export_not_ready`, 410
//!   `export_expired`).

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::Ctx;
use crate::service::access_export::{self, ExportOut};

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(request_export, list_exports, get_export, download_export),
    components(schemas(ExportOut))
)]
pub struct Api;

/// Asks for a package of everything held about a person (built in the background).
#[utoipa::path(post, path = "/api/v1/persons/{person_id}/exports", tag = "rights",
    params(("person_id" = String, Path, description = "Person ID")),
    security(("session" = ["export"]), ("token" = ["export"])),
    responses((status = 202, body = ExportOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody, description = "`person_erased`")))]
async fn request_export(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = access_export::request_export(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(out))
}

/// A person's exports, newest first.
#[utoipa::path(get, path = "/api/v1/persons/{person_id}/exports", tag = "rights",
    params(("person_id" = String, Path, description = "Person ID")),
    security(("session" = ["export"]), ("token" = ["export"])),
    responses((status = 200, body = Vec<ExportOut>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_exports(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(access_export::list_exports(&ctx, path.into_inner()).await?))
}

/// One export and its progress (`done` of `total`).
#[utoipa::path(get, path = "/api/v1/exports/{export_id}", tag = "rights",
    params(("export_id" = String, Path, description = "Export ID")),
    security(("session" = ["export"]), ("token" = ["export"])),
    responses((status = 200, body = ExportOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_export(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(access_export::get_export(&ctx, path.into_inner()).await?))
}

/// The package (a zip: `person.json`, `index.html`, `files/`, `agreements/`); audited.
#[utoipa::path(get, path = "/api/v1/exports/{export_id}/download", tag = "rights",
    params(("export_id" = String, Path, description = "Export ID")),
    security(("session" = ["export"]), ("token" = ["export"])),
    responses((status = 200, description = "The package", content_type = "application/zip"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`export_not_ready`"),
        (status = 410, body = ErrorBody, description = "`export_expired`")))]
async fn download_export(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let file = access_export::download_export(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file.filename),
        ))
        .insert_header(("X-Content-SHA256", file.sha256))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(file.bytes))
}

/// Registers this module's routes (full paths).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/persons/{person_id}/exports")
            .route(web::post().to(request_export))
            .route(web::get().to(list_exports)),
    )
    .route("/api/v1/exports/{export_id}", web::get().to(get_export))
    .route(
        "/api/v1/exports/{export_id}/download",
        web::get().to(download_export),
    );
}

//! Data-subject rights (issue 15), erasure and bystanders: the consequences of erasing a
//! person, the erasure itself (a resumable run) and the pixelation of a file's unlinked faces.
//! Erasure needs `manage_persons` and `erase`; pixelation `manage_assets`.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::Ctx;
use crate::service::bystanders::{self, PixelateOut};
use crate::service::erasure::{self, ErasurePreview, ErasureRunOut};

/// What erasing a person would do: per file the decision (pixelate, hide, or keep and on which
/// basis), and the agreements, documents, templates, signing requests, share links, exports
/// and messages touched.
#[utoipa::path(get, path = "/api/v1/persons/{person_id}/erasure/preview", tag = "rights",
    params(("person_id" = String, Path, description = "Person ID")),
    security(("session" = ["manage_persons", "erase"]), ("token" = ["manage_persons", "erase"])),
    responses((status = 200, body = ErasurePreview), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn preview(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = erasure::preview_erasure(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Answers a run: 200 for a run that existed before the call, 202 for a new one.
fn run_answer(out: &ErasureRunOut, existed: bool) -> HttpResponse {
    if existed {
        HttpResponse::Ok().json(out)
    } else {
        HttpResponse::Accepted().json(out)
    }
}

/// Erases a person (not a soft delete): runs the erasure as far as it goes now and leaves the
/// rest to a durable job. 202 with the new run; 200 with the run when one already exists.
#[utoipa::path(post, path = "/api/v1/persons/{person_id}/erasure", tag = "rights",
    params(("person_id" = String, Path, description = "Person ID")),
    security(("session" = ["manage_persons", "erase"]), ("token" = ["manage_persons", "erase"])),
    responses((status = 202, body = ErasureRunOut, description = "Started (done, running or waiting)"),
        (status = 200, body = ErasureRunOut, description = "The person's existing run"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn start(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let id = path.into_inner();
    let existed = erasure::erasure_of_person(&ctx, id.clone())
        .await?
        .is_some();
    let out = erasure::start_erasure(&ctx, id).await?;
    Ok(run_answer(&out, existed))
}

/// One erasure run: its plan, step, status and report.
#[utoipa::path(get, path = "/api/v1/erasures/{erasure_id}", tag = "rights",
    params(("erasure_id" = String, Path, description = "Erasure run ID")),
    security(("session" = ["manage_persons", "erase"]), ("token" = ["manage_persons", "erase"])),
    responses((status = 200, body = ErasureRunOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = erasure::get_erasure(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Pixelates every identifiable face of the file that is not linked to a person into a new
/// version (irreversibly; older versions are no longer served): the file is then no longer
/// blocked by unidentified faces. 409 `nothing_to_pixelate` when no face qualifies.
#[utoipa::path(post, path = "/api/v1/assets/{asset_id}/pixelate-unlinked", tag = "rights",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = PixelateOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn pixelate_unlinked(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = bystanders::pixelate_unlinked(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// OpenAPI paths of this module.
#[derive(OpenApi)]
#[openapi(paths(preview, start, get, pixelate_unlinked))]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route(
        "/api/v1/persons/{person_id}/erasure/preview",
        web::get().to(preview),
    )
    .route("/api/v1/persons/{person_id}/erasure", web::post().to(start))
    .route("/api/v1/erasures/{erasure_id}", web::get().to(get))
    .route(
        "/api/v1/assets/{asset_id}/pixelate-unlinked",
        web::post().to(pixelate_unlinked),
    );
}

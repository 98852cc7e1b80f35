//! (MEDIA) Faces of assets: list, draw by hand, confirm, reject, unlink, delete.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::Json;
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::Ctx;
use crate::service::faces::{self, CandidateOut, DecisionOut, FaceOut, NewFace, PersonRef};

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(list_faces, create_face, confirm, reject, unlink, delete_face),
    components(schemas(FaceOut, CandidateOut, NewFace, DecisionOut, PersonRef))
)]
pub struct Api;

/// Faces of an asset (person IDs and candidates only with `see_persons`).
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/faces", tag = "faces",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Vec<FaceOut>), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_faces(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(faces::list_asset_faces(&ctx, path.into_inner()).await?))
}

/// Draws a face by hand.
#[utoipa::path(post, path = "/api/v1/assets/{asset_id}/faces", tag = "faces", request_body = NewFace,
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 201, body = FaceOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn create_face(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<NewFace>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = faces::draw_face(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(out))
}

/// Confirms that a face shows a person (at most once per asset). The template is enrolled in
/// the matcher only if the person's consent covers face matching.
#[utoipa::path(post, path = "/api/v1/faces/{face_id}/confirm", tag = "faces", request_body = PersonRef,
    params(("face_id" = String, Path, description = "Face ID")),
    security(("session" = ["manage_assets", "see_persons"]), ("token" = ["manage_assets", "see_persons"])),
    responses((status = 200, body = DecisionOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn confirm(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<PersonRef>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = faces::confirm_face(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Rejects a person for a face: that person is never suggested for it again.
#[utoipa::path(post, path = "/api/v1/faces/{face_id}/reject", tag = "faces", request_body = PersonRef,
    params(("face_id" = String, Path, description = "Face ID")),
    security(("session" = ["manage_assets", "see_persons"]), ("token" = ["manage_assets", "see_persons"])),
    responses((status = 200, body = DecisionOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn reject(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<PersonRef>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = faces::reject_face(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Unlinks a confirmed face from its person (templates are removed from the matcher).
#[utoipa::path(post, path = "/api/v1/faces/{face_id}/unlink", tag = "faces",
    params(("face_id" = String, Path, description = "Face ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = DecisionOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn unlink(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(faces::unlink_face(&ctx, path.into_inner()).await?))
}

/// Deletes a face.
#[utoipa::path(delete, path = "/api/v1/faces/{face_id}", tag = "faces",
    params(("face_id" = String, Path, description = "Face ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn delete_face(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    faces::delete_face(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers this module's routes (full paths).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/assets/{asset_id}/faces")
            .route(web::get().to(list_faces))
            .route(web::post().to(create_face)),
    )
    .route("/api/v1/faces/{face_id}/confirm", web::post().to(confirm))
    .route("/api/v1/faces/{face_id}/reject", web::post().to(reject))
    .route("/api/v1/faces/{face_id}/unlink", web::post().to(unlink))
    .route("/api/v1/faces/{face_id}", web::delete().to(delete_face));
}

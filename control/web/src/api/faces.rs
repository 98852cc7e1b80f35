//! (MEDIA) Faces of assets: list, draw by hand, confirm, reject, unlink, delete.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::Deps;
use crate::api::extract::Json;
use crate::auth::Actor;
use crate::db;
use crate::error::{ErrorBody, Result};
use crate::roles::Permission;
use crate::service::faces::{self, CandidateOut, DecisionOut, FaceOut, NewFace};

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(list_faces, create_face, confirm, reject, unlink, delete_face),
    components(schemas(FaceOut, CandidateOut, NewFace, DecisionOut, PersonRef))
)]
pub struct Api;

/// A person named in a decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonRef {
    /// Person ID.
    pub person_id: String,
}

/// Faces of an asset (person IDs and candidates only with `see_persons`).
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/faces", tag = "faces",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Vec<FaceOut>), (status = 404, body = ErrorBody)))]
async fn list_faces(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let see = actor.has(Permission::SeePersons);
    let (t, id) = (actor.tenant_id.clone(), path.into_inner());
    let rows = db::run(&state.pool, move |c| faces::list_for_asset(c, &t, &id)).await?;
    let out: Vec<FaceOut> = rows.iter().map(|r| r.out(see)).collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Draws a face by hand.
#[utoipa::path(post, path = "/api/v1/assets/{asset_id}/faces", tag = "faces", request_body = NewFace,
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 201, body = FaceOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_face(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<NewFace>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let body = body.into_inner()?;
    let (who, t, id, b) = (
        actor.who(),
        actor.tenant_id.clone(),
        path.into_inner(),
        body,
    );
    let row = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| faces::create_manual(c, &who, &t, &id, b))
    })
    .await?;
    Ok(HttpResponse::Created().json(row.out(true)))
}

/// Confirms that a face shows a person (at most once per asset). The template is enrolled in
/// the matcher only if the person's consent covers face matching.
#[utoipa::path(post, path = "/api/v1/faces/{face_id}/confirm", tag = "faces", request_body = PersonRef,
    params(("face_id" = String, Path, description = "Face ID")),
    security(("session" = ["manage_assets", "see_persons"]), ("token" = ["manage_assets", "see_persons"])),
    responses((status = 200, body = DecisionOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn confirm(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<PersonRef>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    actor.require(Permission::SeePersons)?;
    let body = body.into_inner()?;
    let out = faces::confirm(
        &state,
        actor.who(),
        actor.tenant_id.clone(),
        path.into_inner(),
        body.person_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Rejects a person for a face: that person is never suggested for it again.
#[utoipa::path(post, path = "/api/v1/faces/{face_id}/reject", tag = "faces", request_body = PersonRef,
    params(("face_id" = String, Path, description = "Face ID")),
    security(("session" = ["manage_assets", "see_persons"]), ("token" = ["manage_assets", "see_persons"])),
    responses((status = 200, body = DecisionOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reject(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<PersonRef>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    actor.require(Permission::SeePersons)?;
    let body = body.into_inner()?;
    let (who, t, id, p) = (
        actor.who(),
        actor.tenant_id.clone(),
        path.into_inner(),
        body.person_id,
    );
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| faces::reject(c, &who, &t, &id, &p))
    })
    .await?;
    run_template_removals(&state).await;
    Ok(HttpResponse::Ok().json(out))
}

/// Unlinks a confirmed face from its person (templates are removed from the matcher).
#[utoipa::path(post, path = "/api/v1/faces/{face_id}/unlink", tag = "faces",
    params(("face_id" = String, Path, description = "Face ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = DecisionOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unlink(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let (who, t, id) = (actor.who(), actor.tenant_id.clone(), path.into_inner());
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| faces::unlink(c, &who, &t, &id))
    })
    .await?;
    run_template_removals(&state).await;
    Ok(HttpResponse::Ok().json(out))
}

/// Deletes a face.
#[utoipa::path(delete, path = "/api/v1/faces/{face_id}", tag = "faces",
    params(("face_id" = String, Path, description = "Face ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_face(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let (who, t, id) = (actor.who(), actor.tenant_id.clone(), path.into_inner());
    db::run(&state.pool, move |c| {
        db::write_tx(c, |c| faces::delete(c, &who, &t, &id))
    })
    .await?;
    run_template_removals(&state).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Runs the queued template removals now (at most a few, one attempt each: a removal that
/// fails because the matcher is down is retried by the job workers), so that a decision that
/// answers `templates_removed: true` has taken effect in the matcher when it answers.
async fn run_template_removals(state: &web::Data<Deps>) {
    use crate::service::jobs;
    const KINDS: &[&str] = &[jobs::REMOVE_TEMPLATES];
    let w = jobs::worker_id(usize::MAX);
    for _ in 0..8 {
        match jobs::run_once_kinds(state, &w, KINDS).await {
            Ok(Some((_, jobs::Outcome::Done))) => {}
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "running queued template removals");
                break;
            }
        }
    }
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

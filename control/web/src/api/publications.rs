//! Publications (where a CMS placed a file) and the use check.
//!
//! - `POST /api/v1/publications` (`manage_assets`): a placement; 201 with the use check of its
//!   channel today (`allowed: false` + reasons when the file may not be used: recorded anyway).
//! - `POST /api/v1/publications/{id}/removal` (`manage_assets`).
//! - `GET /api/v1/publications?asset_id=&person_id=&channel=&active=&page=&per_page=` (any
//!   user; `person_id` needs `see_persons`).
//! - `GET /api/v1/publications/{id}` (any user).
//! - `GET /api/v1/assets/{asset_id}/publications` (any user).
//! - `GET /api/v1/persons/{person_id}/publications` (`see_persons`): where the person's face is
//!   used.
//! - `GET /api/v1/assets/{asset_id}/use-check?channel=&date=` (any user).

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::pagination::Paginated;
use crate::service::Ctx;
use crate::service::publications::{
    self, NewPublication, PageOnly, PlacementOut, PublicationOut, PublicationQuery, Removal,
    UseCheckOut, UseCheckQuery, UseReason,
};

/// One page of publications.
pub type PublicationPage = Paginated<PublicationOut>;

/// Records where a CMS placed a file. A file that may not be used on the channel today is
/// recorded all the same; the answer says so (`allowed: false` with the reasons).
#[utoipa::path(post, path = "/api/v1/publications", tag = "publications",
    request_body = NewPublication,
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 201, body = PlacementOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn create(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<NewPublication>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = publications::record_publication(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(out))
}

/// Records that a CMS removed a placed file (409 `already_removed` the second time).
#[utoipa::path(post, path = "/api/v1/publications/{publication_id}/removal",
    tag = "publications", request_body = Removal,
    params(("publication_id" = String, Path, description = "Publication ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = PublicationOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn removal(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<Removal>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = publications::remove_publication(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Publications, newest placement first, filtered (`person_id`: those of the files the person
/// is confirmed on; needs `see_persons`).
#[utoipa::path(get, path = "/api/v1/publications", tag = "publications",
    params(PublicationQuery),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Paginated<PublicationOut>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list(
    actor: Actor,
    state: web::Data<Deps>,
    query: Query<PublicationQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(publications::list_publications(&ctx, query.into_inner()).await?))
}

/// One publication.
#[utoipa::path(get, path = "/api/v1/publications/{publication_id}", tag = "publications",
    params(("publication_id" = String, Path, description = "Publication ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = PublicationOut), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(publications::get_publication(&ctx, path.into_inner()).await?))
}

/// A file's publications, newest placement first.
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/publications", tag = "publications",
    params(("asset_id" = String, Path, description = "Asset ID"), PageOnly),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Paginated<PublicationOut>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn of_asset(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    query: Query<PageOnly>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = publications::asset_publications(&ctx, path.into_inner(), query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Where a person's face is used: the publications of the files they are confirmed on
/// (audited).
#[utoipa::path(get, path = "/api/v1/persons/{person_id}/publications", tag = "publications",
    params(("person_id" = String, Path, description = "Person ID"), PageOnly),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = Paginated<PublicationOut>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn of_person(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    query: Query<PageOnly>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out =
        publications::person_publications(&ctx, path.into_inner(), query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// The use check a CMS calls at placement time: may this file be used on this channel on this
/// date (default today), and if not, why. Today's answer is the one the delivery endpoint
/// gives; persons appear in the reasons by pseudonym unless the caller may see names.
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/use-check", tag = "publications",
    params(("asset_id" = String, Path, description = "Asset ID"), UseCheckQuery),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = UseCheckOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn use_check(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    query: Query<UseCheckQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = publications::check_use(&ctx, path.into_inner(), query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(create, removal, list, get, of_asset, of_person, use_check),
    components(schemas(
        NewPublication,
        Removal,
        PublicationOut,
        PlacementOut,
        UseCheckOut,
        UseReason
    ))
)]
pub struct Api;

/// Registers this module's routes (full paths).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/publications", web::post().to(create))
        .route("/api/v1/publications", web::get().to(list))
        .route("/api/v1/publications/{publication_id}", web::get().to(get))
        .route(
            "/api/v1/publications/{publication_id}/removal",
            web::post().to(removal),
        )
        .route(
            "/api/v1/assets/{asset_id}/publications",
            web::get().to(of_asset),
        )
        .route(
            "/api/v1/persons/{person_id}/publications",
            web::get().to(of_person),
        )
        .route(
            "/api/v1/assets/{asset_id}/use-check",
            web::get().to(use_check),
        );
}

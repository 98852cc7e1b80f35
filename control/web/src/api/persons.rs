//! The register of persons. Reads need `see_persons` (and are audited), changes
//! `manage_persons`, deletion (an erasure) `manage_persons` and `erase`.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::pagination::{PageQuery, Paginated};
use crate::service::Ctx;
use crate::service::persons::{self, NewPerson, PersonFilter, PersonOut, PersonPatch};

/// One page of persons.
pub type PersonPage = Paginated<PersonOut>;

/// Lists persons: `?q=&never_publish=&born_after=&page=&per_page=&sort=` (sort keys: name,
/// pseudonym, created_at, updated_at, date_of_birth; `-` for descending).
#[utoipa::path(get, path = "/api/v1/persons", tag = "persons", params(PersonFilter, PageQuery),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = Paginated<PersonOut>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list(
    actor: Actor,
    state: web::Data<Deps>,
    filter: Query<PersonFilter>,
    page: Query<PageQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = persons::list_persons(&ctx, filter.into_inner(), page.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Registers a person.
#[utoipa::path(post, path = "/api/v1/persons", tag = "persons", request_body = NewPerson,
    security(("session" = ["manage_persons"]), ("token" = ["manage_persons"])),
    responses((status = 201, body = PersonOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn create(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<NewPerson>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = persons::create_person(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(out))
}

/// One person (audited as `person.read`).
#[utoipa::path(get, path = "/api/v1/persons/{person_id}", tag = "persons",
    params(("person_id" = String, Path, description = "Person ID")),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = PersonOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn get(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = persons::get_person(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Changes a person (absent fields stay, null clears).
#[utoipa::path(patch, path = "/api/v1/persons/{person_id}", tag = "persons", request_body = PersonPatch,
    params(("person_id" = String, Path, description = "Person ID")),
    security(("session" = ["manage_persons"]), ("token" = ["manage_persons"])),
    responses((status = 200, body = PersonOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn update(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<PersonPatch>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = persons::update_person(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Erases a person (the full erasure, see `POST /api/v1/persons/{person_id}/erasure`): 204 when
/// it finished at once, 202 with the run when a step waits (e.g. for the face matcher).
#[utoipa::path(delete, path = "/api/v1/persons/{person_id}", tag = "persons",
    params(("person_id" = String, Path, description = "Person ID")),
    security(("session" = ["manage_persons", "erase"]), ("token" = ["manage_persons", "erase"])),
    responses((status = 204, description = "Erased"),
        (status = 202, body = crate::service::erasure::ErasureRunOut, description = "Erasure under way"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn delete(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let run = crate::service::erasure::start_erasure(&ctx, path.into_inner()).await?;
    if run.status == "done" {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Ok(HttpResponse::Accepted().json(run))
    }
}

/// OpenAPI paths of this module.
#[derive(OpenApi)]
#[openapi(paths(list, create, get, update, delete))]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/persons", web::get().to(list))
        .route("/api/v1/persons", web::post().to(create))
        .route("/api/v1/persons/{person_id}", web::get().to(get))
        .route("/api/v1/persons/{person_id}", web::patch().to(update))
        .route("/api/v1/persons/{person_id}", web::delete().to(delete));
}

//! Signing requests (staff side): a person (or many) is asked by e-mail or SMS to sign an
//! agreement template's newest version through a link; staff follow, resend and revoke them.
//!
//! - `POST /api/v1/signing-requests` (`manage_consents`): requests for many persons in one call;
//!   per-person problems (no address, unknown person) are listed in `failed`.
//! - `GET /api/v1/signing-requests?status=&person_id=&page=&per_page=` (`see_persons`).
//! - `GET /api/v1/signing-requests/{id}` (`see_persons`).
//! - `POST /api/v1/signing-requests/{id}/revoke` (`manage_consents`): `{reason}`.
//! - `POST /api/v1/signing-requests/{id}/resend` (`manage_consents`): a new link (the old one
//!   dies).

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::roles::Permission;
use crate::service::Ctx;
use crate::service::signing::{
    self, BulkFailure, BulkOutcome, NewSigningRequests, Purpose, RequestQuery, RequestStatus,
    RevokeInput, SigningRequestOut,
};

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(
        create_requests,
        list_requests,
        get_request,
        revoke_request,
        resend_request
    ),
    components(schemas(
        BulkFailure,
        BulkOutcome,
        NewSigningRequests,
        Purpose,
        RequestStatus,
        RevokeInput,
        SigningRequestOut
    ))
)]
pub struct Api;

/// Asks persons to sign a template (its newest version, pinned) by e-mail or SMS: one request
/// and one message (through the outbox) per person.
#[utoipa::path(post, path = "/api/v1/signing-requests", tag = "signing",
    request_body = NewSigningRequests,
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 201, body = BulkOutcome), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn create_requests(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<NewSigningRequests>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageConsents)?; // before the body is looked at
    let body = body.into_inner()?;
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Created().json(signing::create_requests(&ctx, body).await?))
}

/// The tenant's signing requests, newest first.
#[utoipa::path(get, path = "/api/v1/signing-requests", tag = "signing", params(RequestQuery),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = Vec<SigningRequestOut>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_requests(
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<RequestQuery>,
) -> Result<HttpResponse> {
    actor.require(Permission::SeePersons)?;
    let filter = q.into_inner()?.filter()?;
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(signing::list_requests(&ctx, filter).await?))
}

/// One signing request.
#[utoipa::path(get, path = "/api/v1/signing-requests/{id}", tag = "signing",
    params(("id" = String, Path, description = "Signing request ID")),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = SigningRequestOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_request(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(signing::get_request(&ctx, path.into_inner()).await?))
}

/// Revokes an unsigned request: its link then answers 410 `link_revoked`.
#[utoipa::path(post, path = "/api/v1/signing-requests/{id}/revoke", tag = "signing",
    request_body = RevokeInput,
    params(("id" = String, Path, description = "Signing request ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = SigningRequestOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke_request(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<RevokeInput>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageConsents)?;
    let body = body.into_inner()?;
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = signing::revoke_request(&ctx, path.into_inner(), body.reason).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Sends a request again with a new link (the old link and any codes sent die; a locked or
/// expired request becomes usable again).
#[utoipa::path(post, path = "/api/v1/signing-requests/{id}/resend", tag = "signing",
    params(("id" = String, Path, description = "Signing request ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = SigningRequestOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn resend_request(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(signing::resend_request(&ctx, path.into_inner()).await?))
}

/// Registers this module's routes (full paths).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/signing-requests", web::post().to(create_requests))
        .route("/api/v1/signing-requests", web::get().to(list_requests))
        .route("/api/v1/signing-requests/{id}", web::get().to(get_request))
        .route(
            "/api/v1/signing-requests/{id}/revoke",
            web::post().to(revoke_request),
        )
        .route(
            "/api/v1/signing-requests/{id}/resend",
            web::post().to(resend_request),
        );
}

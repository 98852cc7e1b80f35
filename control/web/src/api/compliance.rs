//! Legal basis per asset and compliance queries.
//!
//! - `PUT /api/v1/assets/{asset_id}/legal-basis` (`manage_consents`), `GET` (any user).
//! - `GET /api/v1/assets/{asset_id}/compliance?channel=&date=` (any user; persons by name only
//!   with `see_persons`).
//! - `GET /api/v1/persons/{person_id}/compliance?date=` (`see_persons`): every file a person
//!   appears in, with its status.
//! - `GET /api/v1/compliance/assets?channel=&date=&status=&allowed=&expiring_within_days=&after=&limit=`
//!   (any user): filtered lists, e.g. `allowed=false`, `status=missing_consent`,
//!   `expiring_within_days=30`.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use likeness_control_domain::compliance::Reason;
use likeness_control_domain::{ComplianceStatus, LegalBasis, Verdict};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::Ctx;
use crate::service::compliance::{
    self, AssetCompliance, AssetQuery, ComplianceList, DateQuery, LackingAsset, LackingList,
    LackingPerson, LegalBasisIn, LegalBasisOut, ListQuery, PersonAsset, PersonCompliance,
    PersonListQuery,
};

/// Sets or clears an asset's legal basis.
#[utoipa::path(put, path = "/api/v1/assets/{asset_id}/legal-basis", tag = "compliance",
    request_body = LegalBasisIn,
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = LegalBasisOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn put_legal_basis(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<LegalBasisIn>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = compliance::put_legal_basis(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// An asset's legal basis.
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/legal-basis", tag = "compliance",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = LegalBasisOut), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_legal_basis(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(compliance::read_legal_basis(&ctx, path.into_inner()).await?))
}

/// An asset's compliance for every channel (or one) on a date.
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/compliance", tag = "compliance",
    params(("asset_id" = String, Path, description = "Asset ID"), AssetQuery),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = AssetCompliance), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn asset_compliance(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    query: Query<AssetQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = compliance::check_asset(&ctx, path.into_inner(), query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Every file a person appears in, with its status for every channel.
#[utoipa::path(get, path = "/api/v1/persons/{person_id}/compliance", tag = "compliance",
    params(("person_id" = String, Path, description = "Person ID"), DateQuery),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = PersonCompliance), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 400, body = ErrorBody)))]
async fn person_compliance(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    query: Query<DateQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = compliance::check_person(&ctx, path.into_inner(), query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Assets filtered by compliance (e.g. not allowed, lacking consent, expiring within N days).
#[utoipa::path(get, path = "/api/v1/compliance/assets", tag = "compliance",
    params(ListQuery),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = ComplianceList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_assets(
    actor: Actor,
    state: web::Data<Deps>,
    query: Query<ListQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(compliance::list_assets(&ctx, query.into_inner()).await?))
}

/// Who lacks consent: persons confirmed on files whose consent for a channel is missing,
/// expired or withdrawn (or given without a guardian for a minor) on a date, with those files.
#[utoipa::path(get, path = "/api/v1/compliance/persons", tag = "compliance",
    params(PersonListQuery),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = LackingList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_persons(
    actor: Actor,
    state: web::Data<Deps>,
    query: Query<PersonListQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = compliance::list_lacking_persons(&ctx, query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(
        put_legal_basis,
        get_legal_basis,
        asset_compliance,
        person_compliance,
        list_assets,
        list_persons
    ),
    components(schemas(
        LegalBasis,
        LegalBasisIn,
        LegalBasisOut,
        AssetCompliance,
        PersonAsset,
        PersonCompliance,
        ComplianceList,
        LackingList,
        LackingPerson,
        LackingAsset,
        Verdict,
        Reason,
        ComplianceStatus
    ))
)]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route(
        "/api/v1/assets/{asset_id}/legal-basis",
        web::put().to(put_legal_basis),
    )
    .route(
        "/api/v1/assets/{asset_id}/legal-basis",
        web::get().to(get_legal_basis),
    )
    .route(
        "/api/v1/assets/{asset_id}/compliance",
        web::get().to(asset_compliance),
    )
    .route(
        "/api/v1/persons/{person_id}/compliance",
        web::get().to(person_compliance),
    )
    .route("/api/v1/compliance/assets", web::get().to(list_assets))
    .route("/api/v1/compliance/persons", web::get().to(list_persons));
}

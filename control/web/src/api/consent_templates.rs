//! Agreement templates and their versions.
//!
//! - `GET /api/v1/consent-templates?include_archived=` (`see_persons`): the tenant's templates.
//! - `POST /api/v1/consent-templates` (`manage_consents`): create (version 1).
//! - `GET /api/v1/consent-templates/{id}` (`see_persons`): one, with its versions newest first.
//! - `PUT /api/v1/consent-templates/{id}` (`manage_consents`): change; the newest version is
//!   edited in place while never sent, else the change becomes the next version.
//! - `POST /api/v1/consent-templates/{id}/archive` (`manage_consents`).
//! - `GET /api/v1/consent-template-versions/{version_id}` (`see_persons`).

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::roles::Permission;
use crate::service::Ctx;
use crate::service::consent_templates::{
    self, LegalCharacter, Scope, TemplateInput, TemplateOut, TemplateSummary, TemplateVersionOut,
};

/// Query of the template list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TemplateListQuery {
    /// Also list archived templates (default false).
    pub include_archived: Option<bool>,
}

/// The tenant's templates by name, with their newest version.
#[utoipa::path(get, path = "/api/v1/consent-templates", tag = "consent_templates",
    params(TemplateListQuery),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = Vec<TemplateSummary>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_templates(
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<TemplateListQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    ctx.require(Permission::SeePersons)?;
    let q = q.into_inner()?;
    let out = consent_templates::list_templates(&ctx, q.include_archived.unwrap_or(false)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Creates a template (its version 1).
#[utoipa::path(post, path = "/api/v1/consent-templates", tag = "consent_templates",
    request_body = TemplateInput,
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 201, body = TemplateOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_template(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<TemplateInput>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    ctx.require(Permission::ManageConsents)?;
    let out = consent_templates::create_template(&ctx, body.into_inner()?).await?;
    Ok(HttpResponse::Created().json(out))
}

/// One template with its versions, newest first.
#[utoipa::path(get, path = "/api/v1/consent-templates/{id}", tag = "consent_templates",
    params(("id" = String, Path, description = "Template ID")),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = TemplateOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_template(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(consent_templates::get_template(&ctx, path.into_inner()).await?))
}

/// Changes a template: its newest version is edited in place while it was never sent; a sent
/// version is never changed, the change becomes the next version.
#[utoipa::path(put, path = "/api/v1/consent-templates/{id}", tag = "consent_templates",
    request_body = TemplateInput,
    params(("id" = String, Path, description = "Template ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = TemplateOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_template(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<TemplateInput>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    ctx.require(Permission::ManageConsents)?;
    let input = body.into_inner()?;
    let out = consent_templates::update_template(&ctx, path.into_inner(), input).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Archives a template: no new requests (sent ones stay valid).
#[utoipa::path(post, path = "/api/v1/consent-templates/{id}/archive", tag = "consent_templates",
    params(("id" = String, Path, description = "Template ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = TemplateOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn archive_template(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = consent_templates::archive_template(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// One version of a template (with its text's sha256 and the body rendered to safe HTML).
#[utoipa::path(get, path = "/api/v1/consent-template-versions/{version_id}",
    tag = "consent_templates",
    params(("version_id" = String, Path, description = "Version ID")),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = TemplateVersionOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_version(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(consent_templates::get_version(&ctx, path.into_inner()).await?))
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(
        list_templates,
        create_template,
        get_template,
        update_template,
        archive_template,
        get_version
    ),
    components(schemas(
        TemplateInput,
        TemplateOut,
        TemplateSummary,
        TemplateVersionOut,
        Scope,
        LegalCharacter
    ))
)]
pub struct Api;

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/consent-templates", web::get().to(list_templates))
        .route("/api/v1/consent-templates", web::post().to(create_template))
        .route(
            "/api/v1/consent-templates/{id}",
            web::get().to(get_template),
        )
        .route(
            "/api/v1/consent-templates/{id}",
            web::put().to(update_template),
        )
        .route(
            "/api/v1/consent-templates/{id}/archive",
            web::post().to(archive_template),
        )
        .route(
            "/api/v1/consent-template-versions/{version_id}",
            web::get().to(get_version),
        );
}

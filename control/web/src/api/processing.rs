//! The tenant's data-subject-rights policy and its record of processing (GDPR Art. 30):
//! `GET/PUT /api/v1/settings/rights` and `GET /api/v1/processing-record` (JSON, or a
//! self-contained HTML page with `?format=html`). Read: `read_audit` or `manage_settings`;
//! change: `manage_settings`.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use likeness_control_domain::rights::RightsSettings;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::error::ControlError;
use crate::service::processing_record::{self, ProcessingRecord};
use crate::service::{Ctx, rights_settings};

/// The tenant's rights policy (erasure of files, retention, export lifetime).
#[utoipa::path(get, path = "/api/v1/settings/rights", tag = "settings",
    security(("session" = ["read_audit"]), ("token" = ["read_audit"])),
    responses((status = 200, body = RightsSettings), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn get_rights(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(rights_settings::get_rights_settings(&ctx).await?))
}

/// Replaces the tenant's rights policy (missing fields take their defaults; unknown fields are
/// an error). Audited as `rights.update`.
#[utoipa::path(put, path = "/api/v1/settings/rights", tag = "settings",
    request_body = RightsSettings,
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = RightsSettings), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_rights(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<RightsSettings>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = rights_settings::put_rights_settings(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// The form of the record of processing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// `json` (default) or `html`.
    pub format: Option<String>,
}

/// The record of processing activities (GDPR Art. 30) of the tenant, generated now: purposes,
/// categories of persons and data, recipients, retention, security measures and the face
/// matcher's measured error rates. `?format=html` gives one self-contained, printable page.
#[utoipa::path(get, path = "/api/v1/processing-record", tag = "settings", params(RecordQuery),
    security(("session" = ["read_audit"]), ("token" = ["read_audit"])),
    responses((status = 200, body = ProcessingRecord,
            description = "The record as JSON; with `format=html`, one text/html page"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn get_record(
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<RecordQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    rights_settings::require_read(&ctx)?;
    let html = match q.into_inner()?.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return Err(ControlError::invalid(
                "format",
                format!("unknown value {other:?}; valid values: json, html"),
            )
            .into());
        }
    };
    let record = processing_record::processing_record(&ctx).await?;
    if html {
        Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(processing_record::to_html(&record)))
    } else {
        Ok(HttpResponse::Ok().json(record))
    }
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(paths(get_rights, put_rights, get_record))]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/settings/rights", web::get().to(get_rights))
        .route("/api/v1/settings/rights", web::put().to(put_rights))
        .route("/api/v1/processing-record", web::get().to(get_record));
}

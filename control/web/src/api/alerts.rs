//! Expiry alerts, the digest preference and renewals.
//!
//! - `GET /api/v1/alerts?within_days=` (`manage_consents`): consents in force ending within
//!   the window (default the tenant's notice period), soonest first.
//! - `GET` / `PUT /api/v1/users/me/digest` (every user, their own): the daily digest e-mail
//!   preference (`{"opt_out": true}`).
//! - `POST /api/v1/agreements/{agreement_id}/renewal` (`manage_consents`): a new signing
//!   request pre-filled from the old agreement (an empty body, or overrides).

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::ControlError;
use crate::service::Ctx;
use crate::service::alerts::{
    self, AlertList, AlertOut, AlertQuery, DigestPreference, DigestSetting, PendingRenewal,
    RenewalIn,
};
use crate::service::signing::SigningRequestOut;

/// Consents in force that end within the window, soonest first, with the files affected and a
/// pending renewal request.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    actor: Actor,
    state: web::Data<Deps>,
    query: Query<AlertQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(alerts::list_alerts(&ctx, query.into_inner()).await?))
}

/// The caller's own digest preference.
#[utoipa::path(get, path = "/api/v1/users/me/digest", tag = "alerts",
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = DigestSetting), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_digest(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(alerts::get_digest(&ctx).await?))
}

/// Sets the caller's own digest preference.
#[utoipa::path(put, path = "/api/v1/users/me/digest", tag = "alerts",
    request_body = DigestPreference,
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = DigestSetting), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn put_digest(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<DigestPreference>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(alerts::set_digest(&ctx, body.into_inner()).await?))
}

/// Sends a renewal request for a consent: a new signing request to the same person, pre-filled
/// from the old agreement (its template, channel, language and files when it was signed
/// through Likeness, else the tenant's newest template). The body is optional.
#[utoipa::path(post, path = "/api/v1/agreements/{agreement_id}/renewal", tag = "alerts",
    request_body(content = Option<RenewalIn>, description = "Optional overrides; may be empty"),
    params(("agreement_id" = String, Path, description = "Agreement ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 201, body = SigningRequestOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn renewal(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(RenewalIn::default())
    } else {
        serde_json::from_slice::<Option<RenewalIn>>(&body)
            .map(Option::unwrap_or_default)
            .map_err(|e| ControlError::BadRequest {
                code: "invalid_json",
                message: format!("Json deserialize error: {e}"),
            })
    };
    let out = alerts::renew_agreement(&ctx, path.into_inner(), input).await?;
    Ok(HttpResponse::Created().json(out))
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(list, get_digest, put_digest, renewal),
    components(schemas(
        AlertList,
        AlertOut,
        PendingRenewal,
        DigestPreference,
        DigestSetting,
        RenewalIn
    ))
)]
pub struct Api;

/// Registers this module's routes (full paths).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/alerts", web::get().to(list))
        .route("/api/v1/users/me/digest", web::get().to(get_digest))
        .route("/api/v1/users/me/digest", web::put().to(put_digest))
        .route(
            "/api/v1/agreements/{agreement_id}/renewal",
            web::post().to(renewal),
        );
}

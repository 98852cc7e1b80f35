//! Webhook endpoints (Standard Webhooks) and their delivery log; every route needs
//! `manage_settings`.
//!
//! - `GET /api/v1/webhooks`, `POST /api/v1/webhooks` (201, with the secret).
//! - `GET|PATCH|DELETE /api/v1/webhooks/{id}`.
//! - `POST /api/v1/webhooks/{id}/rotate-secret` (the new secret).
//! - `GET /api/v1/webhooks/{id}/deliveries` (newest first, paged, `?status=`).
//! - `GET /api/v1/webhooks/{id}/deliveries/{seq}` (with the body and attempts).
//! - `POST /api/v1/webhooks/{id}/deliveries/{seq}/redeliver`.
//! - `POST /api/v1/webhooks/{id}/test` (a `webhook.test` event to that endpoint only).

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::roles::Permission;
use crate::service::pagination::Paginated;
use crate::service::webhooks::{
    self, AttemptOut, DeliveryCounts, DeliveryDetail, DeliveryOut, DeliveryQuery, DeliveryStatus,
    EndpointInput, EndpointOut, EndpointPatch, EndpointWithSecret,
};
use crate::service::{ControlError, Ctx};

fn ctx(actor: Actor, state: web::Data<Deps>) -> Result<Ctx> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    ctx.require(Permission::ManageSettings)?;
    Ok(ctx)
}

/// A delivery's `seq` from the path (a non-number is a delivery that does not exist).
fn seq_of(s: &str) -> Result<i64> {
    s.parse::<i64>()
        .map_err(|_| ControlError::not_found(format!("delivery {s}")).into())
}

/// The tenant's webhook endpoints, oldest first (without their secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = Vec<EndpointOut>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_endpoints(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    Ok(HttpResponse::Ok().json(webhooks::list_endpoints(&ctx).await?))
}

/// Creates an endpoint. The answer carries its signing secret (`whsec_...`): give it to the
/// receiver, which verifies every request's `webhook-signature` with it.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = EndpointInput,
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 201, body = EndpointWithSecret), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_endpoint(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<EndpointInput>,
) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    let out = webhooks::create_endpoint(&ctx, body.into_inner()?).await?;
    Ok(HttpResponse::Created().json(out))
}

/// One endpoint, with its deliveries counted by status.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint ID")),
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = EndpointOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_endpoint(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    Ok(HttpResponse::Ok().json(webhooks::get_endpoint(&ctx, path.into_inner()).await?))
}

/// Changes an endpoint (only the fields given). `enabled: true` also clears its failure count;
/// deliveries queued while it was disabled by failures are sent then.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    request_body = EndpointPatch,
    params(("id" = String, Path, description = "Endpoint ID")),
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = EndpointOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn update_endpoint(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<EndpointPatch>,
) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    let patch = body.into_inner()?;
    Ok(HttpResponse::Ok().json(webhooks::update_endpoint(&ctx, path.into_inner(), patch).await?))
}

/// Deletes an endpoint with its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint ID")),
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_endpoint(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    webhooks::delete_endpoint(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives an endpoint a new secret: the old one stops working at once. The answer carries it.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint ID")),
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = EndpointWithSecret), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn rotate_secret(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    Ok(HttpResponse::Ok().json(webhooks::rotate_secret(&ctx, path.into_inner()).await?))
}

/// An endpoint's deliveries, newest first, paged; `status` filters.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint ID"), DeliveryQuery),
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = Paginated<DeliveryOut>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    q: Query<DeliveryQuery>,
) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    let page = webhooks::list_deliveries(&ctx, path.into_inner(), q.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One delivery with the body sent and every attempt (status code, duration, error, the first
/// KiB of the answer).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries/{seq}", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint ID"),
        ("seq" = i64, Path, description = "Delivery number")),
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = DeliveryDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_delivery(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    let (id, seq) = path.into_inner();
    let seq = seq_of(&seq)?;
    Ok(HttpResponse::Ok().json(webhooks::get_delivery(&ctx, id, seq).await?))
}

/// Queues a delivery again with a fresh count of attempts (it keeps its place in its key's
/// order). 409 when it is in flight or the endpoint is disabled.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{seq}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint ID"),
        ("seq" = i64, Path, description = "Delivery number")),
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = DeliveryOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn redeliver(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    let (id, seq) = path.into_inner();
    let seq = seq_of(&seq)?;
    Ok(HttpResponse::Ok().json(webhooks::redeliver(&ctx, id, seq).await?))
}

/// Queues a `webhook.test` event for this endpoint only (202: it is sent by the dispatcher).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint ID")),
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 202, body = DeliveryOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn send_test(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = ctx(actor, state)?;
    Ok(HttpResponse::Accepted().json(webhooks::send_test(&ctx, path.into_inner()).await?))
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(
        list_endpoints,
        create_endpoint,
        get_endpoint,
        update_endpoint,
        delete_endpoint,
        rotate_secret,
        list_deliveries,
        get_delivery,
        redeliver,
        send_test
    ),
    components(schemas(
        EndpointInput,
        EndpointPatch,
        EndpointOut,
        EndpointWithSecret,
        DeliveryCounts,
        DeliveryOut,
        DeliveryDetail,
        DeliveryStatus,
        AttemptOut
    ))
)]
pub struct Api;

/// Registers this module's routes (full paths).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/webhooks", web::get().to(list_endpoints))
        .route("/api/v1/webhooks", web::post().to(create_endpoint))
        .route("/api/v1/webhooks/{id}", web::get().to(get_endpoint))
        .route("/api/v1/webhooks/{id}", web::patch().to(update_endpoint))
        .route("/api/v1/webhooks/{id}", web::delete().to(delete_endpoint))
        .route(
            "/api/v1/webhooks/{id}/rotate-secret",
            web::post().to(rotate_secret),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            web::get().to(list_deliveries),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries/{seq}",
            web::get().to(get_delivery),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries/{seq}/redeliver",
            web::post().to(redeliver),
        )
        .route("/api/v1/webhooks/{id}/test", web::post().to(send_test));
}

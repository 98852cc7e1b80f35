//! The outbox (e-mails and SMS) and its delivery status: list, one message, retry a dead one.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::Query;
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::Ctx;
use crate::service::outbox::{self, Channel, MessageOut, MessageStatus, OutboxQuery};

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(list_messages, get_message, retry_message),
    components(schemas(MessageOut, MessageStatus, Channel))
)]
pub struct Api;

/// The tenant's outgoing messages, newest first (no bodies; destinations masked).
#[utoipa::path(get, path = "/api/v1/outbox", tag = "outbox", params(OutboxQuery),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = Vec<MessageOut>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_messages(
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<OutboxQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(outbox::list_messages_query(&ctx, q.into_inner()).await?))
}

/// One message and its delivery status.
#[utoipa::path(get, path = "/api/v1/outbox/{id}", tag = "outbox",
    params(("id" = String, Path, description = "Message ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = MessageOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_message(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(outbox::get_message(&ctx, path.into_inner()).await?))
}

/// Puts a dead message back in the queue (409 when it was sent or is still pending).
#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", tag = "outbox",
    params(("id" = String, Path, description = "Message ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = MessageOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn retry_message(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(outbox::retry_message(&ctx, path.into_inner()).await?))
}

/// Registers this module's routes (full paths).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/outbox", web::get().to(list_messages))
        .route("/api/v1/outbox/{id}", web::get().to(get_message))
        .route("/api/v1/outbox/{id}/retry", web::post().to(retry_message));
}

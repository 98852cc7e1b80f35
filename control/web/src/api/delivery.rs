//! Delivery: `GET /api/v1/assets/{asset_id}/delivery` (a file's public URLs per channel and
//! rendition, and whether each channel's URLs serve it today; every user of the tenant) and
//! `GET|PUT /api/v1/delivery/watermark` (the text on `{size}.wm.{fmt}` renditions; changing it
//! needs `manage_settings`). The URLs themselves are served by [`crate::delivery`].

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::Json;
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::Ctx;
use crate::service::delivery::{self, AssetDelivery, WatermarkSetting};

/// A file's delivery URLs per channel and rendition, and whether each channel's URLs serve it
/// today (a URL that does not serve answers 451).
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/delivery", tag = "delivery",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = AssetDelivery), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn asset_delivery(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(delivery::asset_delivery(&ctx, path.into_inner()).await?))
}

/// The tenant's delivery watermark.
#[utoipa::path(get, path = "/api/v1/delivery/watermark", tag = "delivery",
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = WatermarkSetting), (status = 401, body = ErrorBody)))]
async fn get_watermark(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(delivery::get_watermark(&ctx).await?))
}

/// Sets (or, with `null` or an empty text, removes) the tenant's delivery watermark: the text
/// drawn on the `{size}.wm.{fmt}` renditions. Every process uses the new text within 5 s.
#[utoipa::path(put, path = "/api/v1/delivery/watermark", tag = "delivery",
    request_body = WatermarkSetting,
    security(("session" = ["manage_settings"]), ("token" = ["manage_settings"])),
    responses((status = 200, body = WatermarkSetting), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_watermark(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<WatermarkSetting>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = delivery::set_watermark(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(paths(asset_delivery, get_watermark, put_watermark))]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route(
        "/api/v1/assets/{asset_id}/delivery",
        web::get().to(asset_delivery),
    )
    .route("/api/v1/delivery/watermark", web::get().to(get_watermark))
    .route("/api/v1/delivery/watermark", web::put().to(put_watermark));
}

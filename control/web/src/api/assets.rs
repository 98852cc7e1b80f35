//! (MEDIA) Assets: upload (the request body is the file), list, read, change, versions,
//! duplicates, thumbnail, download, delete.

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse, http::header};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::api::upload;
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::pagination::{PageQuery, Paginated};
use crate::roles::Permission;
use crate::service::Ctx;
use crate::service::assets::{
    self, AssetFilter, AssetOut, AssetPatch, Duplicate, NewUpload, UploadOut, VersionOut,
};

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(
        upload,
        list_assets,
        get_asset,
        update_asset,
        delete_asset,
        upload_version,
        list_versions,
        duplicates,
        thumbnail,
        download
    ),
    components(schemas(AssetOut, UploadOut, Duplicate, VersionOut, AssetPatch, UploadForm))
)]
pub struct Api;

/// Query of an upload.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name (shown in lists). Required for a raw-body upload; a multipart upload
    /// takes it from the `file` part's filename (or a `filename` part) unless given here.
    pub filename: Option<String>,
    /// Metadata as a JSON object (URL-encoded), optional (multipart: a `metadata` part).
    pub metadata: Option<String>,
}

/// The `multipart/form-data` form of an upload (as an HTML form sends it).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; its filename is the asset's name.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// Overrides the file part's filename.
    pub filename: Option<String>,
    /// Metadata as a JSON object.
    pub metadata: Option<String>,
}

/// Uploads an image (JPEG, PNG, WebP) or a video (MP4, QuickTime, WebM): the request body is
/// the file (name in `?filename=`), or a `multipart/form-data` form with a `file` part.
/// Answers the asset and its exact and near duplicates; faces are detected in the background
/// (also when the matcher is down now). The body is read only after the permission check.
#[utoipa::path(post, path = "/api/v1/assets", tag = "assets", params(UploadQuery),
    request_body(content(
        (Vec<u8> = "application/octet-stream"),
        (UploadForm = "multipart/form-data"))),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 201, body = UploadOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn upload(
    req: HttpRequest,
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<UploadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?; // before the body is read (and in the service)
    let q = q.into_inner()?;
    let dir = upload::spool_dir(&state);
    let limit = state.config.server.max_body_bytes;
    let file = upload::read(&req, payload, limit, dir.as_deref()).await?;
    let new = NewUpload {
        filename: q.filename.or(file.filename),
        metadata: q.metadata.or_else(|| file.fields.get("metadata").cloned()),
        file: file.file,
    };
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Created().json(assets::upload_asset(&ctx, new).await?))
}

/// Assets of the tenant (sort: `created_at`, `filename`, `size_bytes`; default `-created_at`).
#[utoipa::path(get, path = "/api/v1/assets", tag = "assets", params(PageQuery, AssetFilter),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Paginated<AssetOut>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_assets(
    actor: Actor,
    state: web::Data<Deps>,
    page: Query<PageQuery>,
    filter: Query<AssetFilter>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = assets::list_assets(&ctx, page.into_inner(), filter.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// One asset.
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}", tag = "assets",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = AssetOut), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn get_asset(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(assets::get_asset(&ctx, path.into_inner()).await?))
}

/// Changes file name or metadata.
#[utoipa::path(patch, path = "/api/v1/assets/{asset_id}", tag = "assets", request_body = AssetPatch,
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = AssetOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn update_asset(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<AssetPatch>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = assets::update_asset(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Deletes an asset, its versions, faces and files (templates enrolled from its faces are
/// removed from the matcher).
#[utoipa::path(delete, path = "/api/v1/assets/{asset_id}", tag = "assets",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn delete_asset(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    assets::delete_asset(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Uploads a new version of an asset (the request body is the file, or a
/// `multipart/form-data` form with a `file` part; same kind).
#[utoipa::path(post, path = "/api/v1/assets/{asset_id}/versions", tag = "assets",
    params(("asset_id" = String, Path, description = "Asset ID")),
    request_body(content(
        (Vec<u8> = "application/octet-stream"),
        (UploadForm = "multipart/form-data"))),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 201, body = UploadOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn upload_version(
    req: HttpRequest,
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?; // before the body is read (and in the service)
    let dir = upload::spool_dir(&state);
    let limit = state.config.server.max_body_bytes;
    let file = upload::read(&req, payload, limit, dir.as_deref()).await?;
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = assets::upload_asset_version(&ctx, path.into_inner(), file.file).await?;
    Ok(HttpResponse::Created().json(out))
}

/// Versions of an asset, oldest first.
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/versions", tag = "assets",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Vec<VersionOut>), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_versions(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(assets::list_versions(&ctx, path.into_inner()).await?))
}

/// Exact and near duplicates of an asset among the tenant's assets.
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/duplicates", tag = "assets",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Vec<Duplicate>), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn duplicates(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(assets::list_duplicates(&ctx, path.into_inner()).await?))
}

/// The JPEG thumbnail (longest side 320 px) of an image asset.
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/thumbnail", tag = "assets",
    params(("asset_id" = String, Path, description = "Asset ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn thumbnail(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let bytes = assets::read_thumbnail(&ctx, path.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/jpeg")
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .body(bytes))
}

/// Query of a download.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// A version number (default: the current one).
    pub version: Option<i32>,
}

/// Downloads the file (decrypted), if the actor may use it today: allowed in a channel, or the
/// tenant's `non_approved_use` policy lets this actor have it (then with a `Warning` header).
#[utoipa::path(get, path = "/api/v1/assets/{asset_id}/download", tag = "assets",
    params(("asset_id" = String, Path, description = "Asset ID"), DownloadQuery),
    security(("session" = []), ("token" = [])),
    responses((status = 200, description = "The file: its own media type for the current version, application/octet-stream for an older one",
            content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "image/*"), (Vec<u8> = "video/*"))),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn download(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    q: Query<DownloadQuery>,
) -> Result<HttpResponse> {
    let q = q.into_inner()?;
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let f = assets::download_file(&ctx, path.into_inner(), q.version).await?;
    let name: String = f
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut resp = HttpResponse::Ok();
    resp.content_type(f.mime).insert_header((
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{name}\""),
    ));
    if let Some(w) = f.warning {
        // RFC 9111 `Warning: 299 - "text"` (miscellaneous persistent warning); quotes dropped.
        resp.insert_header((
            header::WARNING,
            format!("299 - \"{}\"", w.replace(['"', '\\'], "'")),
        ));
    }
    Ok(resp.body(f.bytes))
}

/// Registers this module's routes (full paths, e.g. `/api/v1/assets`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/assets")
            .route(web::get().to(list_assets))
            .route(web::post().to(upload)),
    )
    .service(
        web::resource("/api/v1/assets/{asset_id}")
            .route(web::get().to(get_asset))
            .route(web::patch().to(update_asset))
            .route(web::delete().to(delete_asset)),
    )
    .service(
        web::resource("/api/v1/assets/{asset_id}/versions")
            .route(web::get().to(list_versions))
            .route(web::post().to(upload_version)),
    )
    .route(
        "/api/v1/assets/{asset_id}/duplicates",
        web::get().to(duplicates),
    )
    .route(
        "/api/v1/assets/{asset_id}/thumbnail",
        web::get().to(thumbnail),
    )
    .route(
        "/api/v1/assets/{asset_id}/download",
        web::get().to(download),
    );
}

//! (MEDIA) The job queue (face detection, matcher enrollment and removals) and bulk
//! re-matching runs with their progress.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::db;
use crate::error::{ErrorBody, Result};
use crate::roles::Permission;
use crate::service::jobs::{self, JobRow, QueueStats};
use crate::service::rematch::{
    self, AssetChange, RematchFilter, RematchReport, RunOut, StartRematch,
};

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(
        list_jobs,
        job_stats,
        start_rematch,
        list_rematch,
        get_rematch,
        cancel_rematch
    ),
    components(schemas(
        JobRow,
        QueueStats,
        RunOut,
        StartRematch,
        RematchFilter,
        RematchReport,
        AssetChange
    ))
)]
pub struct Api;

/// Query of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// `queued`, `running`, `done` or `failed`.
    pub status: Option<String>,
    /// Most jobs (1..=500, default 100).
    pub limit: Option<i64>,
}

/// The tenant's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = Vec<JobRow>), (status = 403, body = ErrorBody)))]
async fn list_jobs(
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<JobQuery>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let q = q.into_inner()?;
    let (t, q) = (actor.tenant_id.clone(), q);
    let out = db::run(&state.pool, move |c| {
        jobs::list(c, &t, q.status.as_deref(), q.limit.unwrap_or(100))
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Job counts by status.
#[utoipa::path(get, path = "/api/v1/jobs/stats", tag = "jobs",
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = QueueStats), (status = 403, body = ErrorBody)))]
async fn job_stats(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let t = actor.tenant_id.clone();
    let out = db::run(&state.pool, move |c| jobs::stats(c, &t)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Starts bulk re-matching over all image assets or a filter (`dry_run` only reports).
#[utoipa::path(post, path = "/api/v1/rematch", tag = "jobs", request_body = StartRematch,
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 202, body = RunOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn start_rematch(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<StartRematch>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let body = body.into_inner()?;
    let out = rematch::start_run(&state, actor.who(), actor.tenant_id.clone(), body).await?;
    Ok(HttpResponse::Accepted().json(out))
}

/// Re-matching runs of the tenant, newest first.
#[utoipa::path(get, path = "/api/v1/rematch", tag = "jobs",
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = Vec<RunOut>), (status = 403, body = ErrorBody)))]
async fn list_rematch(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let t = actor.tenant_id.clone();
    let out = db::run(&state.pool, move |c| rematch::list(c, &t)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// A run's progress (done / total, rate, ETA) and report.
#[utoipa::path(get, path = "/api/v1/rematch/{run_id}", tag = "jobs",
    params(("run_id" = String, Path, description = "Run ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = RunOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_rematch(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let (t, id) = (actor.tenant_id.clone(), path.into_inner());
    let out = db::run(&state.pool, move |c| rematch::get(c, &t, &id)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Cancels a run.
#[utoipa::path(post, path = "/api/v1/rematch/{run_id}/cancel", tag = "jobs",
    params(("run_id" = String, Path, description = "Run ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = RunOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn cancel_rematch(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageAssets)?;
    let (who, t, id) = (actor.who(), actor.tenant_id.clone(), path.into_inner());
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| rematch::cancel(c, &who, &t, &id))
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Registers this module's routes (full paths).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/jobs", web::get().to(list_jobs))
        .route("/api/v1/jobs/stats", web::get().to(job_stats))
        .service(
            web::resource("/api/v1/rematch")
                .route(web::get().to(list_rematch))
                .route(web::post().to(start_rematch)),
        )
        .route("/api/v1/rematch/{run_id}", web::get().to(get_rematch))
        .route(
            "/api/v1/rematch/{run_id}/cancel",
            web::post().to(cancel_rematch),
        );
}

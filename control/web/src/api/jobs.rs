//! (MEDIA) The job queue (face detection, matcher enrollment and removals) and bulk
//! re-matching runs with their progress.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::service::Ctx;
use crate::service::jobs::{JobRow, QueueStats};
use crate::service::rematch::{
    self, AssetChange, JobQuery, RematchFilter, RematchReport, RunOut, StartRematch,
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

/// The tenant's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = Vec<JobRow>), (status = 403, body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_jobs(
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<JobQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(rematch::list_jobs(&ctx, q.into_inner()).await?))
}

/// Job counts by status.
#[utoipa::path(get, path = "/api/v1/jobs/stats", tag = "jobs",
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = QueueStats), (status = 403, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn job_stats(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(rematch::job_stats(&ctx).await?))
}

/// Starts bulk re-matching over all image assets or a filter (`dry_run` only reports).
#[utoipa::path(post, path = "/api/v1/rematch", tag = "jobs", request_body = StartRematch,
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 202, body = RunOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn start_rematch(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<StartRematch>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = rematch::start_rematch(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(out))
}

/// Re-matching runs of the tenant, newest first.
#[utoipa::path(get, path = "/api/v1/rematch", tag = "jobs",
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = Vec<RunOut>), (status = 403, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_rematch(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(rematch::list_rematch_runs(&ctx).await?))
}

/// A run's progress (done / total, rate, ETA) and report.
#[utoipa::path(get, path = "/api/v1/rematch/{run_id}", tag = "jobs",
    params(("run_id" = String, Path, description = "Run ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = RunOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn get_rematch(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(rematch::get_rematch_run(&ctx, path.into_inner()).await?))
}

/// Cancels a run.
#[utoipa::path(post, path = "/api/v1/rematch/{run_id}/cancel", tag = "jobs",
    params(("run_id" = String, Path, description = "Run ID")),
    security(("session" = ["manage_assets"]), ("token" = ["manage_assets"])),
    responses((status = 200, body = RunOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn cancel_rematch(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(rematch::cancel_rematch_run(&ctx, path.into_inner()).await?))
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

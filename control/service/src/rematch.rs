//! (MEDIA) Bulk re-matching: runs the matcher's Suggest again over the archive (all image
//! assets or a filter), e.g. after enrolling a new person or changing the model.
//!
//! A run is a `rematch_runs` row driven by `rematch` jobs of the durable queue: each job
//! processes a batch of assets in id order after the persisted cursor, saves the cursor,
//! counters and report after every asset, and queues the next batch. A restart of the control
//! plane resumes from the cursor (the job is claimed again); a matcher that is down makes the
//! job retry with backoff. Human decisions are never overwritten (confirmed, rejected and
//! hand-drawn faces are left as they are — see [`crate::faces::merge_suggestion`]);
//! every updated suggestion records the model version. A dry run only reports what would
//! change.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Deps;
use crate::assets::{media, media_error};
use crate::audit::{self, Who};
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::faces::{self, MergePlan};
use crate::job_kinds::Rematch;
use crate::roles::Permission;
use crate::schema::{assets, jobs, rematch_runs};

/// Job kind of a re-matching batch.
pub const REMATCH: &str = "rematch";
/// Assets per job.
pub const BATCH: i64 = 16;
/// Most per-asset entries kept in a run's report.
pub const REPORT_LIMIT: usize = 1000;

/// Which assets a run covers (all images when empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RematchFilter {
    /// Only these assets.
    pub asset_ids: Option<Vec<String>>,
    /// Only assets created at or after (UTC, `YYYY-MM-DDTHH:MM:SS`).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub created_from: Option<chrono::NaiveDateTime>,
    /// Only assets created before.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub created_to: Option<chrono::NaiveDateTime>,
}

/// A request to start a run.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StartRematch {
    /// Which assets.
    pub filter: RematchFilter,
    /// Only report what would change.
    pub dry_run: bool,
}

/// One asset's change in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssetChange {
    /// Asset.
    pub asset_id: String,
    /// What changed (or would).
    #[serde(flatten)]
    pub plan: MergePlan,
}

/// The report of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RematchReport {
    /// Assets with changes (first [`REPORT_LIMIT`]).
    pub changes: Vec<AssetChange>,
    /// Faces added / that would be.
    pub faces_added: u64,
    /// Suggestions updated / that would be.
    pub faces_updated: u64,
    /// Undecided faces removed / that would be.
    pub faces_removed: u64,
    /// Detections that matched a human decision (left untouched).
    pub decided_kept: u64,
    /// Assets the matcher refused (bad input), with the reason.
    pub skipped: Vec<(String, String)>,
}

/// A run with its progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunOut {
    /// ID.
    pub id: String,
    /// `running`, `done`, `cancelled`.
    pub status: String,
    /// Dry run.
    pub dry_run: bool,
    /// Filter.
    pub filter: RematchFilter,
    /// Assets in the run.
    pub total: i64,
    /// Assets processed.
    pub done: i64,
    /// Assets with changes.
    pub changed: i64,
    /// Assets per second since the start.
    pub rate: f64,
    /// Estimated seconds left (none before the first asset).
    pub eta_seconds: Option<f64>,
    /// Model version of the matcher.
    pub model_version: Option<String>,
    /// Started (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub started_at: chrono::NaiveDateTime,
    /// Last progress (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: chrono::NaiveDateTime,
    /// Finished (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub finished_at: Option<chrono::NaiveDateTime>,
    /// Report.
    pub report: RematchReport,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rematch_runs)]
struct RunRow {
    id: String,
    filter_json: String,
    dry_run: bool,
    status: String,
    total: i64,
    done: i64,
    changed: i64,
    cursor: Option<String>,
    model_version: Option<String>,
    started_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    finished_at: Option<chrono::NaiveDateTime>,
    report_json: Option<String>,
}

impl RunRow {
    fn filter(&self) -> RematchFilter {
        serde_json::from_str(&self.filter_json).unwrap_or_default()
    }

    fn report(&self) -> RematchReport {
        self.report_json
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }

    fn out(&self) -> RunOut {
        let end = self.finished_at.unwrap_or(self.updated_at);
        let secs = (end - self.started_at).num_milliseconds() as f64 / 1000.0;
        let rate = if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        };
        let eta = (rate > 0.0 && self.status == "running")
            .then(|| (self.total - self.done).max(0) as f64 / rate);
        RunOut {
            id: self.id.clone(),
            status: self.status.clone(),
            dry_run: self.dry_run,
            filter: self.filter(),
            total: self.total,
            done: self.done,
            changed: self.changed,
            rate,
            eta_seconds: eta,
            model_version: self.model_version.clone(),
            started_at: self.started_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
            report: self.report(),
        }
    }
}

type AssetQuery<'a> = assets::BoxedQuery<'a, <DbConn as diesel::Connection>::Backend>;

fn filtered<'a>(tenant: &'a str, f: &'a RematchFilter) -> AssetQuery<'a> {
    let mut q = assets::table
        .filter(assets::tenant_id.eq(tenant))
        .filter(assets::kind.eq("image"))
        .into_boxed();
    if let Some(ids) = &f.asset_ids {
        q = q.filter(assets::id.eq_any(ids));
    }
    if let Some(t) = f.created_from {
        q = q.filter(assets::created_at.ge(t));
    }
    if let Some(t) = f.created_to {
        q = q.filter(assets::created_at.lt(t));
    }
    q
}

fn get_run(c: &mut DbConn, tenant: &str, id: &str) -> Result<RunRow> {
    rematch_runs::table
        .filter(rematch_runs::tenant_id.eq(tenant))
        .filter(rematch_runs::id.eq(id))
        .select(RunRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ControlError::not_found(format!("re-matching run {id}")))
}

/// Starts a run at `now` (the caller's clock; in the caller's write transaction) and queues its
/// first batch.
pub fn start(
    c: &mut DbConn,
    who: &Who,
    tenant: &str,
    req: StartRematch,
    model_version: Option<String>,
    now: chrono::NaiveDateTime,
) -> Result<RunOut> {
    let total: i64 = filtered(tenant, &req.filter).count().get_result(c)?;
    let id = db::new_id();
    diesel::insert_into(rematch_runs::table)
        .values((
            rematch_runs::id.eq(&id),
            rematch_runs::tenant_id.eq(tenant),
            rematch_runs::filter_json.eq(serde_json::to_string(&req.filter)?),
            rematch_runs::dry_run.eq(req.dry_run),
            rematch_runs::status.eq("running"),
            rematch_runs::total.eq(total),
            rematch_runs::done.eq(0i64),
            rematch_runs::changed.eq(0i64),
            rematch_runs::model_version.eq(&model_version),
            rematch_runs::started_at.eq(now),
            rematch_runs::updated_at.eq(now),
            rematch_runs::report_json.eq(serde_json::to_string(&RematchReport::default())?),
        ))
        .execute(c)?;
    crate::jobs::enqueue_job_now(c, tenant, &Rematch { run_id: id.clone() }, now)?;
    audit::record(
        c,
        who,
        "rematch.start",
        "rematch_run",
        Some(&id),
        serde_json::json!({"dry_run": req.dry_run, "total": total, "filter": req.filter}),
    )?;
    Ok(get_run(c, tenant, &id)?.out())
}

/// Starts a run with the configured model version (async convenience for handlers and CLI).
pub async fn start_run(
    state: &Deps,
    who: Who,
    tenant: String,
    req: StartRematch,
) -> Result<RunOut> {
    let mv = media(state)?
        .matcher
        .as_ref()
        .map(|m| m.config().model_version.clone());
    let now = state.clock.now();
    db::run(&state.pool, move |c| {
        db::write_tx(c, |c| start(c, &who, &tenant, req, mv, now))
    })
    .await
}

/// A run with its progress.
pub fn get(c: &mut DbConn, tenant: &str, id: &str) -> Result<RunOut> {
    Ok(get_run(c, tenant, id)?.out())
}

/// The tenant's runs, newest first.
pub fn list(c: &mut DbConn, tenant: &str) -> Result<Vec<RunOut>> {
    let rows: Vec<RunRow> = rematch_runs::table
        .filter(rematch_runs::tenant_id.eq(tenant))
        .order(rematch_runs::started_at.desc())
        .limit(100)
        .select(RunRow::as_select())
        .load(c)?;
    Ok(rows.iter().map(RunRow::out).collect())
}

/// Cancels a running run at `now` (the caller's clock; its queued batch finds it cancelled and
/// stops).
pub fn cancel(
    c: &mut DbConn,
    who: &Who,
    tenant: &str,
    id: &str,
    now: chrono::NaiveDateTime,
) -> Result<RunOut> {
    let r = get_run(c, tenant, id)?;
    if r.status == "running" {
        diesel::update(rematch_runs::table.filter(rematch_runs::id.eq(id)))
            .set((
                rematch_runs::status.eq("cancelled"),
                rematch_runs::updated_at.eq(now),
                rematch_runs::finished_at.eq(now),
            ))
            .execute(c)?;
        audit::record(
            c,
            who,
            "rematch.cancel",
            "rematch_run",
            Some(id),
            serde_json::json!({}),
        )?;
    }
    Ok(get_run(c, tenant, id)?.out())
}

/// Processes the next batch of a run (the `rematch` job); queues the following batch or
/// finishes the run.
pub async fn run_batch(state: &Deps, tenant: &str, run_id: &str) -> Result<()> {
    let m = media(state)?;
    let matcher = m.matcher.clone().ok_or_else(|| ControlError::Unavailable {
        code: "matcher_unavailable",
        message: "no matcher configured (matcher.url is empty)".into(),
    })?;
    let (t, r) = (tenant.to_string(), run_id.to_string());
    let (run, ids) = db::run(&state.pool, move |c| {
        let run = get_run(c, &t, &r)?;
        let f = run.filter();
        let mut q = filtered(&t, &f);
        if let Some(cur) = &run.cursor {
            q = q.filter(assets::id.gt(cur.clone()));
        }
        let ids: Vec<String> = q
            .order(assets::id.asc())
            .limit(BATCH)
            .select(assets::id)
            .load(c)?;
        Ok((run, ids))
    })
    .await?;
    if run.status != "running" {
        return Ok(());
    }
    for asset_id in &ids {
        let plan = match crate::assets::read_current(state, tenant, asset_id).await {
            Ok((_, bytes)) => match matcher.suggest(tenant, bytes).await {
                Ok(s) => {
                    let (t, a, dry) = (tenant.to_string(), asset_id.clone(), run.dry_run);
                    let now = state.clock.now();
                    Ok(db::run(&state.pool, move |c| {
                        db::write_tx(c, |c| faces::merge_suggestion_at(c, &t, &a, &s, !dry, now))
                    })
                    .await?)
                }
                Err(e) if !e.is_retryable() => Err(e.to_string()),
                // Matcher down: the job retries this batch from the saved cursor.
                Err(e) => return Err(media_error(e)),
            },
            Err(ControlError::NotFound(_)) => Err("asset deleted".to_string()),
            Err(e) => return Err(e),
        };
        let (t, r, a) = (tenant.to_string(), run_id.to_string(), asset_id.clone());
        let now = state.clock.now();
        let stop = db::run(&state.pool, move |c| {
            db::write_tx(c, |c| {
                let run = get_run(c, &t, &r)?;
                if run.status != "running" {
                    return Ok(true);
                }
                let mut report = run.report();
                let mut changed = run.changed;
                match plan {
                    Ok(p) => {
                        report.faces_added += p.added as u64;
                        report.faces_updated += p.updated as u64;
                        report.faces_removed += p.removed as u64;
                        report.decided_kept += p.kept_decided as u64;
                        if p.changes() {
                            changed += 1;
                            if report.changes.len() < REPORT_LIMIT {
                                report.changes.push(AssetChange {
                                    asset_id: a.clone(),
                                    plan: p,
                                });
                            }
                        }
                    }
                    Err(why) => {
                        if report.skipped.len() < REPORT_LIMIT {
                            report.skipped.push((a.clone(), why));
                        }
                    }
                }
                diesel::update(rematch_runs::table.filter(rematch_runs::id.eq(&r)))
                    .set((
                        rematch_runs::cursor.eq(&a),
                        rematch_runs::done.eq(run.done + 1),
                        rematch_runs::changed.eq(changed),
                        rematch_runs::report_json.eq(serde_json::to_string(&report)?),
                        rematch_runs::updated_at.eq(now),
                    ))
                    .execute(c)?;
                Ok(false)
            })
        })
        .await?;
        if stop {
            return Ok(());
        }
    }
    let (t, r) = (tenant.to_string(), run_id.to_string());
    let last = (ids.len() as i64) < BATCH;
    let now = state.clock.now();
    db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            let run = get_run(c, &t, &r)?;
            if run.status != "running" {
                return Ok(());
            }
            if last {
                diesel::update(rematch_runs::table.filter(rematch_runs::id.eq(&r)))
                    .set((
                        rematch_runs::status.eq("done"),
                        // Assets deleted or added meanwhile: the total is what was done.
                        rematch_runs::total.eq(run.done),
                        rematch_runs::updated_at.eq(now),
                        rematch_runs::finished_at.eq(now),
                    ))
                    .execute(c)?;
                audit::record(
                    c,
                    &Who::system("rematch", Some(&t)),
                    "rematch.finish",
                    "rematch_run",
                    Some(&r),
                    serde_json::json!({"done": run.done, "changed": run.changed, "dry_run": run.dry_run}),
                )?;
            } else {
                crate::jobs::enqueue_job_now(c, &t, &Rematch { run_id: r.clone() }, now)?;
            }
            Ok(())
        })
    })
    .await
}

/// Whether a `rematch` job for the run is queued or running.
pub fn has_pending_job(c: &mut DbConn, tenant: &str, run_id: &str) -> Result<bool> {
    let n: i64 = jobs::table
        .filter(jobs::tenant_id.eq(tenant))
        .filter(jobs::kind.eq(REMATCH))
        .filter(jobs::status.eq_any(["queued", "running"]))
        .filter(jobs::payload_json.like(format!("%{run_id}%")))
        .count()
        .get_result(c)?;
    Ok(n > 0)
}

/// Options of `likeness-control rematch`.
#[derive(Debug, Clone, Default)]
pub struct CliOptions {
    /// Tenant slug.
    pub tenant_slug: String,
    /// Only report what would change.
    pub dry_run: bool,
    /// Which assets.
    pub filter: RematchFilter,
    /// Resume this run instead of starting one.
    pub resume: Option<String>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// `likeness-control rematch`: starts (or resumes) a run and works the job queue in this
/// process until the run is finished, with a progress bar (done / total, rate, ETA). Other
/// processes (`serve` replicas) may work on it at the same time; stopping this command leaves
/// the run resumable (`--resume RUN_ID`, or any `serve` picks it up).
pub async fn run_cli(state: &Deps, opts: CliOptions) -> Result<RunOut> {
    let slug = opts.tenant_slug.clone();
    let tenant = db::run(&state.pool, move |c| {
        crate::auth::tenant_id_by_slug(c, &slug)
    })
    .await?
    .ok_or_else(|| ControlError::not_found(format!("tenant {:?}", opts.tenant_slug)))?;
    let who = Who::system("cli", Some(&tenant));
    let run = match &opts.resume {
        None => {
            start_run(
                state,
                who,
                tenant.clone(),
                StartRematch {
                    filter: opts.filter.clone(),
                    dry_run: opts.dry_run,
                },
            )
            .await?
        }
        Some(id) => {
            let (t, id, now) = (tenant.clone(), id.clone(), state.clock.now());
            db::run(&state.pool, move |c| {
                db::write_tx(c, |c| {
                    let run = get(c, &t, &id)?;
                    if run.status == "running" && !has_pending_job(c, &t, &id)? {
                        let job = Rematch { run_id: id.clone() };
                        crate::jobs::enqueue_job_now(c, &t, &job, now)?;
                    }
                    Ok(run)
                })
            })
            .await?
        }
    };
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(u64::try_from(run.total).unwrap_or(0));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} re-matching [{bar:40}] {pos}/{len} assets, {per_sec}, ETA {eta} {msg}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let worker = crate::jobs::worker_id(0).replace(':', "-") + "-cli";
    let settings = crate::jobs::settings(state)?;
    loop {
        let (t, id) = (tenant.clone(), run.id.clone());
        let now = db::run(&state.pool, move |c| get(c, &t, &id)).await?;
        bar.set_length(u64::try_from(now.total).unwrap_or(0));
        bar.set_position(u64::try_from(now.done).unwrap_or(0));
        if now.status != "running" {
            bar.finish_with_message(format!("{}: {} changed", now.status, now.changed));
            return Ok(now);
        }
        match crate::jobs::run_once(state, &worker).await? {
            Some((_, crate::jobs::Outcome::Retry(e))) => {
                bar.set_message(format!("(waiting: {e})"));
            }
            Some(_) => bar.set_message(""),
            None => tokio::time::sleep(settings.poll).await,
        }
    }
}

// Use cases: one entry point per operation, each checking its own permissions; inputs a
// transport parses (`Result<T>`) are looked at only after the permission checks. The job
// queue's views (`list_jobs`, `job_stats`) live here with the runs they show until
// `crate::jobs` takes entry points of its own.

/// Starts bulk re-matching (`manage_assets`).
pub async fn start_rematch(ctx: &Ctx, req: Result<StartRematch>) -> Result<RunOut> {
    ctx.require(Permission::ManageAssets)?;
    start_run(&ctx.deps, ctx.who(), ctx.tenant().to_string(), req?).await
}

/// Re-matching runs of the tenant, newest first (`manage_assets`).
pub async fn list_rematch_runs(ctx: &Ctx) -> Result<Vec<RunOut>> {
    ctx.require(Permission::ManageAssets)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| list(c, &t)).await
}

/// A run's progress and report (`manage_assets`).
pub async fn get_rematch_run(ctx: &Ctx, id: String) -> Result<RunOut> {
    ctx.require(Permission::ManageAssets)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| get(c, &t, &id)).await
}

/// Cancels a run (`manage_assets`).
pub async fn cancel_rematch_run(ctx: &Ctx, id: String) -> Result<RunOut> {
    ctx.require(Permission::ManageAssets)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| cancel(c, &who, &t, &id, now))
    })
    .await
}

/// Query of the job list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// `queued`, `running`, `done` or `failed`.
    pub status: Option<String>,
    /// Most jobs (1..=500, default 100).
    pub limit: Option<i64>,
}

/// The tenant's jobs, newest first (`manage_assets`).
pub async fn list_jobs(ctx: &Ctx, q: Result<JobQuery>) -> Result<Vec<crate::jobs::JobRow>> {
    ctx.require(Permission::ManageAssets)?;
    let q = q?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| {
        crate::jobs::list(c, &t, q.status.as_deref(), q.limit.unwrap_or(100))
    })
    .await
}

/// Job counts by status (`manage_assets`).
pub async fn job_stats(ctx: &Ctx) -> Result<crate::jobs::QueueStats> {
    ctx.require(Permission::ManageAssets)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| crate::jobs::stats(c, &t)).await
}

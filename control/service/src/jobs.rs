//! (MEDIA) The durable job queue (`jobs` table) and its workers.
//!
//! A job is claimed by one worker at a time: on PostgreSQL with `SELECT .. FOR UPDATE SKIP
//! LOCKED` (several control-plane replicas share the queue), on SQLite inside a write
//! transaction (the database's single writer). A claimed job holds a lease; a worker that dies
//! leaves it to be claimed again when the lease expires. A job that fails because the matcher
//! is unavailable goes back to the queue with exponential backoff, without limit: when the
//! matcher returns, the faces appear. Bad input fails the job for good.
//!
//! Kinds: `suggest_faces` (asset faces from the matcher), `enroll_face` (a confirmed face's
//! template, when the matcher was down at confirmation), `remove_person_templates` and
//! `remove_templates` (erasure that must happen even if the matcher was down).

use std::time::Duration;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Deps;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::schema::jobs;

/// Job kind: faces of an asset from the matcher's Suggest.
pub const SUGGEST_FACES: &str = "suggest_faces";
/// Job kind: enroll a confirmed face's template.
pub const ENROLL_FACE: &str = "enroll_face";
/// Job kind: remove every template of a person.
pub const REMOVE_PERSON_TEMPLATES: &str = "remove_person_templates";
/// Job kind: remove templates by id.
pub const REMOVE_TEMPLATES: &str = "remove_templates";

/// Timing of the workers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobSettings {
    /// Pause of an idle worker before it looks again.
    pub poll: Duration,
    /// First retry delay; doubled per attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How long a claimed job stays with its worker before others may take it over.
    pub lease: Duration,
    /// Workers per process.
    pub workers: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            lease: Duration::from_secs(300),
            workers: 1,
        }
    }
}

impl From<&crate::config::JobsConfig> for JobSettings {
    fn from(c: &crate::config::JobsConfig) -> Self {
        Self {
            poll: Duration::from_millis(c.poll_ms),
            backoff_base: Duration::from_millis(c.backoff_base_ms),
            backoff_max: Duration::from_millis(c.backoff_max_ms),
            lease: Duration::from_secs(c.lease_secs),
            workers: c.workers,
        }
    }
}

/// The settings of this process (`[jobs]` of the configuration).
pub fn settings(state: &Deps) -> Result<JobSettings> {
    Ok(JobSettings::from(&state.config.jobs))
}

/// A job row.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, ToSchema)]
#[diesel(table_name = jobs)]
pub struct JobRow {
    /// ID.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Kind.
    pub kind: String,
    /// Payload (JSON).
    pub payload_json: String,
    /// `queued`, `running`, `done`, `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Not before (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub run_after: chrono::NaiveDateTime,
    /// Worker holding it.
    pub locked_by: Option<String>,
    /// Since when.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub locked_at: Option<chrono::NaiveDateTime>,
    /// Last error.
    pub last_error: Option<String>,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: chrono::NaiveDateTime,
    /// Updated.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: chrono::NaiveDateTime,
}

/// Enqueues a job (inside the caller's transaction).
pub fn enqueue(
    c: &mut DbConn,
    tenant: &str,
    kind: &str,
    payload: serde_json::Value,
) -> Result<String> {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(jobs::table)
        .values((
            jobs::id.eq(&id),
            jobs::tenant_id.eq(tenant),
            jobs::kind.eq(kind),
            jobs::payload_json.eq(serde_json::to_string(&payload)?),
            jobs::status.eq("queued"),
            jobs::attempts.eq(0),
            jobs::run_after.eq(now),
            jobs::created_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .execute(c)?;
    Ok(id)
}

/// Enqueues face detection of an asset version.
pub fn enqueue_suggest(
    c: &mut DbConn,
    tenant: &str,
    asset_id: &str,
    version: i32,
) -> Result<String> {
    enqueue(
        c,
        tenant,
        SUGGEST_FACES,
        serde_json::json!({"asset_id": asset_id, "version": version}),
    )
}

fn lease_start(lease: Duration) -> chrono::NaiveDateTime {
    db::now() - chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::minutes(5))
}

/// Claims the next due job for `worker` (or `None`).
pub fn claim(c: &mut DbConn, worker: &str, lease: Duration) -> Result<Option<JobRow>> {
    claim_kinds(c, worker, lease, ALL_KINDS)
}

/// Every job kind.
pub const ALL_KINDS: &[&str] = &[
    SUGGEST_FACES,
    ENROLL_FACE,
    REMOVE_PERSON_TEMPLATES,
    REMOVE_TEMPLATES,
    crate::rematch::REMATCH,
];

/// Claims the next due job of one of `kinds` for `worker` (or `None`).
pub fn claim_kinds(
    c: &mut DbConn,
    worker: &str,
    lease: Duration,
    kinds: &[&str],
) -> Result<Option<JobRow>> {
    let now = db::now();
    let expired = lease_start(lease);
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    let due = jobs::kind.eq_any(kinds).and(
        jobs::status
            .eq("queued")
            .and(jobs::run_after.le(now))
            .or(jobs::status.eq("running").and(jobs::locked_at.lt(expired))),
    );
    let found: Option<JobRow> = match c {
        DbConn::Postgres(pg) => pg.transaction(|pg| {
            let j: Option<JobRow> = jobs::table
                .filter(due)
                .order(jobs::run_after.asc())
                .select(JobRow::as_select())
                .for_update()
                .skip_locked()
                .first(pg)
                .optional()?;
            if let Some(j) = &j {
                mark_running(pg, &j.id, worker, now)?;
            }
            Ok::<_, diesel::result::Error>(j)
        })?,
        DbConn::Sqlite(_) => db::write_tx(c, |c| {
            let j: Option<JobRow> = jobs::table
                .filter(due)
                .order(jobs::run_after.asc())
                .select(JobRow::as_select())
                .first(c)
                .optional()?;
            if let Some(j) = &j {
                diesel::update(jobs::table.filter(jobs::id.eq(&j.id)))
                    .set((
                        jobs::status.eq("running"),
                        jobs::attempts.eq(jobs::attempts + 1),
                        jobs::locked_by.eq(worker),
                        jobs::locked_at.eq(now),
                        jobs::updated_at.eq(now),
                    ))
                    .execute(c)?;
            }
            Ok(j)
        })?,
    };
    Ok(found.map(|mut j| {
        j.attempts += 1;
        j.status = "running".into();
        j.locked_by = Some(worker.into());
        j
    }))
}

fn mark_running(
    pg: &mut diesel::PgConnection,
    id: &str,
    worker: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(jobs::table.filter(jobs::id.eq(id)))
        .set((
            jobs::status.eq("running"),
            jobs::attempts.eq(jobs::attempts + 1),
            jobs::locked_by.eq(worker),
            jobs::locked_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .execute(pg)
}

/// Marks a job done that no worker has claimed yet (its work was done by the request that
/// queued it); false when a worker holds it already (it will run, which is harmless for
/// idempotent kinds).
pub fn complete_queued(c: &mut DbConn, id: &str) -> Result<bool> {
    let n = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq("queued")),
    )
    .set((
        jobs::status.eq("done"),
        jobs::last_error.eq(None::<String>),
        jobs::updated_at.eq(db::now()),
    ))
    .execute(c)?;
    Ok(n == 1)
}

/// Marks a job done (only if `worker` still holds it).
pub fn complete(c: &mut DbConn, id: &str, worker: &str) -> Result<()> {
    diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::locked_by.eq(worker)),
    )
    .set((
        jobs::status.eq("done"),
        jobs::locked_by.eq(None::<String>),
        jobs::locked_at.eq(None::<chrono::NaiveDateTime>),
        jobs::last_error.eq(None::<String>),
        jobs::updated_at.eq(db::now()),
    ))
    .execute(c)?;
    Ok(())
}

/// Backoff before attempt `attempts + 1`.
pub fn backoff(s: &JobSettings, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 30) - 1).unwrap_or(0);
    s.backoff_base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(s.backoff_max)
}

/// Puts a job back with a delay (retryable failure) or fails it for good.
pub fn fail(
    c: &mut DbConn,
    job: &JobRow,
    worker: &str,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<()> {
    let now = db::now();
    let (status, run_after) = match retry_in {
        Some(d) => (
            "queued",
            now + chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::seconds(60)),
        ),
        None => ("failed", now),
    };
    diesel::update(
        jobs::table
            .filter(jobs::id.eq(&job.id))
            .filter(jobs::locked_by.eq(worker)),
    )
    .set((
        jobs::status.eq(status),
        jobs::run_after.eq(run_after),
        jobs::locked_by.eq(None::<String>),
        jobs::locked_at.eq(None::<chrono::NaiveDateTime>),
        jobs::last_error.eq(error.chars().take(2000).collect::<String>()),
        jobs::updated_at.eq(now),
    ))
    .execute(c)?;
    Ok(())
}

/// What happened to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Will be retried later.
    Retry(String),
    /// Failed for good.
    Failed(String),
}

async fn execute(state: &Deps, job: &JobRow) -> Result<()> {
    let p: serde_json::Value = serde_json::from_str(&job.payload_json)?;
    let s = |k: &str| {
        p.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| ControlError::Internal(format!("job {}: payload lacks {k}", job.id)))
    };
    match job.kind.as_str() {
        SUGGEST_FACES => {
            let version = p.get("version").and_then(|v| v.as_i64()).unwrap_or(0);
            crate::faces::detect_asset(state, &job.tenant_id, &s("asset_id")?, version).await
        }
        ENROLL_FACE => crate::faces::enroll_confirmed(state, &job.tenant_id, &s("face_id")?).await,
        REMOVE_PERSON_TEMPLATES => {
            crate::faces::remove_person_templates_now(state, &job.tenant_id, &s("person_id")?).await
        }
        REMOVE_TEMPLATES => {
            let ids: Vec<u64> = p
                .get("template_ids")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            crate::faces::remove_templates_now(state, &job.tenant_id, ids).await
        }
        crate::rematch::REMATCH => {
            crate::rematch::run_batch(state, &job.tenant_id, &s("run_id")?).await
        }
        other => Err(ControlError::Internal(format!(
            "unknown job kind {other:?}"
        ))),
    }
}

/// Claims and runs one due job; `None` when there was none.
pub async fn run_once(state: &Deps, worker: &str) -> Result<Option<(JobRow, Outcome)>> {
    run_once_kinds(state, worker, ALL_KINDS).await
}

/// Claims and runs one due job of one of `kinds`.
pub async fn run_once_kinds(
    state: &Deps,
    worker: &str,
    kinds: &'static [&'static str],
) -> Result<Option<(JobRow, Outcome)>> {
    let st = settings(state)?;
    let w = worker.to_string();
    let job = db::run(&state.pool, move |c| claim_kinds(c, &w, st.lease, kinds)).await?;
    let Some(job) = job else {
        return Ok(None);
    };
    let outcome = match execute(state, &job).await {
        Ok(()) => Outcome::Done,
        Err(e) if e.is_retryable() => Outcome::Retry(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    let (j, w, o) = (job.clone(), worker.to_string(), outcome.clone());
    db::run(&state.pool, move |c| match &o {
        Outcome::Done => complete(c, &j.id, &w),
        Outcome::Retry(m) => fail(c, &j, &w, m, Some(backoff(&st, j.attempts))),
        Outcome::Failed(m) => fail(c, &j, &w, m, None),
    })
    .await?;
    match &outcome {
        Outcome::Done => tracing::debug!(job = %job.id, kind = %job.kind, "job done"),
        Outcome::Retry(m) => {
            tracing::warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, error = %m, "job will be retried")
        }
        Outcome::Failed(m) => {
            tracing::error!(job = %job.id, kind = %job.kind, error = %m, "job failed")
        }
    }
    Ok(Some((job, outcome)))
}

/// Runs due jobs until none is due (tests, CLI).
pub async fn run_until_idle(state: &Deps, worker: &str) -> Result<usize> {
    let mut n = 0;
    while run_once(state, worker).await?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// A worker id unique to this process.
pub fn worker_id(i: usize) -> String {
    format!("{}:{}:{i}", host(), std::process::id())
}

/// The host part of this process's worker ids.
fn host() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into())
}

/// Whether process `pid` of this host is gone (Linux: no `/proc/<pid>`); `false` where that
/// cannot be told.
fn process_gone(pid: u32) -> bool {
    cfg!(target_os = "linux")
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Puts back the jobs that a crashed process of this host was running (its worker id names this
/// host and a process that no longer exists), so they run again now instead of after their lease
/// (`lease`, 5 minutes by default). Jobs of live processes and of other hosts are left alone.
/// Returns how many were released.
pub fn release_orphans(c: &mut DbConn) -> Result<usize> {
    let prefix = format!("{}:", host());
    let me = std::process::id();
    let running: Vec<(String, Option<String>)> = jobs::table
        .filter(jobs::status.eq("running"))
        .select((jobs::id, jobs::locked_by))
        .load(c)?;
    let mut released = 0;
    for (id, by) in running {
        let Some(by) = by else { continue };
        let Some(pid) = by
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split(':').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || !process_gone(pid) {
            continue;
        }
        released += diesel::update(
            jobs::table
                .filter(jobs::id.eq(&id))
                .filter(jobs::status.eq("running"))
                .filter(jobs::locked_by.eq(&by)),
        )
        .set((
            jobs::status.eq("queued"),
            jobs::locked_by.eq(None::<String>),
            jobs::locked_at.eq(None::<chrono::NaiveDateTime>),
            jobs::run_after.eq(db::now()),
            jobs::updated_at.eq(db::now()),
        ))
        .execute(c)?;
    }
    if released > 0 {
        tracing::warn!(
            released,
            "jobs of a crashed process of this host put back in the queue"
        );
    }
    Ok(released)
}

/// Starts the background job workers of this process (called once by `serve` before it binds).
pub fn start(state: &std::sync::Arc<crate::Deps>) -> Result<()> {
    let st = settings(state)?;
    {
        let mut c = state.pool.get()?;
        release_orphans(&mut c)?;
    }
    for i in 0..st.workers.max(1) {
        let state = state.clone();
        let worker = worker_id(i);
        tokio::spawn(async move {
            loop {
                match run_once(&state, &worker).await {
                    Ok(Some(_)) => {}
                    Ok(None) => tokio::time::sleep(st.poll).await,
                    Err(e) => {
                        tracing::error!(error = %e, "job worker");
                        tokio::time::sleep(st.poll.max(Duration::from_secs(1))).await;
                    }
                }
            }
        });
    }
    Ok(())
}

/// Counts of the tenant's jobs by status, for the API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct QueueStats {
    /// Waiting.
    pub queued: i64,
    /// Being worked on.
    pub running: i64,
    /// Finished.
    pub done: i64,
    /// Failed for good.
    pub failed: i64,
}

/// Job counts of a tenant.
pub fn stats(c: &mut DbConn, tenant: &str) -> Result<QueueStats> {
    let rows: Vec<(String, i64)> = jobs::table
        .filter(jobs::tenant_id.eq(tenant))
        .group_by(jobs::status)
        .select((jobs::status, diesel::dsl::count_star()))
        .load(c)?;
    let mut s = QueueStats::default();
    for (status, n) in rows {
        match status.as_str() {
            "queued" => s.queued = n,
            "running" => s.running = n,
            "done" => s.done = n,
            "failed" => s.failed = n,
            _ => {}
        }
    }
    Ok(s)
}

/// Jobs of a tenant, newest first (optionally one status).
pub fn list(c: &mut DbConn, tenant: &str, status: Option<&str>, limit: i64) -> Result<Vec<JobRow>> {
    let mut q = jobs::table
        .filter(jobs::tenant_id.eq(tenant.to_string()))
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(jobs::status.eq(s.to_string()));
    }
    Ok(q.order(jobs::created_at.desc())
        .limit(limit.clamp(1, 500))
        .select(JobRow::as_select())
        .load(c)?)
}

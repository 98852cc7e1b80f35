//! (MEDIA) The durable job queue (`jobs` table), its typed jobs and its workers.
//!
//! A job is a value of a type implementing [`BackgroundJob`]: its `KIND` names it in the queue,
//! the value itself (serde) is the payload, and `run` does the work. The kinds a process runs
//! are a [`Registry`] (kind -> a type-erased runner), built once ([`Registry::standard`] holds
//! the services' kinds, see `job_kinds`); adding a kind is a type and one `register` line, no
//! central `match` to edit. Jobs are enqueued typed, inside the caller's transaction, stamped
//! with the caller's clock: [`enqueue_job_now`] (due at the caller's now) or [`enqueue_job_at`]
//! (due at a moment); [`enqueue_job`] reads the system clock, for callers without one.
//!
//! A job is claimed by one worker at a time: on PostgreSQL with `SELECT .. FOR UPDATE SKIP
//! LOCKED` (several control-plane replicas share the queue), on SQLite inside a write
//! transaction (the database's single writer). A claimed job holds a lease; a worker that dies
//! leaves it to be claimed again when the lease expires. A job that fails with a retryable
//! error ([`ControlError::is_retryable`], e.g. the matcher is unavailable) goes back to the
//! queue with exponential backoff, without limit: when the matcher returns, the faces appear.
//! Bad input fails the job for good. Due times, leases and backoff follow the clock of
//! [`Deps`] (a test moves a manual clock instead of sleeping).
//!
//! Kinds: `suggest_faces` (asset faces from the matcher), `enroll_face` (a confirmed face's
//! template, when the matcher was down at confirmation), `remove_person_templates` and
//! `remove_templates` (erasure that must happen even if the matcher was down), `rematch`, and
//! `face_matching_consent_end` (due when a consent covering face matching ends).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use diesel::prelude::*;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Deps;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::schema::jobs;

/// Job kind: faces of an asset from the matcher's Suggest.
pub const SUGGEST_FACES: &str = crate::job_kinds::SuggestFaces::KIND;
/// Job kind: enroll a confirmed face's template.
pub const ENROLL_FACE: &str = crate::job_kinds::EnrollFace::KIND;
/// Job kind: remove every template of a person.
pub const REMOVE_PERSON_TEMPLATES: &str = crate::job_kinds::RemovePersonTemplates::KIND;
/// Job kind: remove templates by id.
pub const REMOVE_TEMPLATES: &str = crate::job_kinds::RemoveTemplates::KIND;

/// What a running job may use: the process's dependencies, its tenant, its row.
pub struct JobCtx<'a> {
    /// The process's dependencies (pool, config, media, clock).
    pub deps: &'a Deps,
    /// The job's tenant.
    pub tenant: &'a str,
    /// The job's ID.
    pub job_id: &'a str,
    /// This attempt (1 for the first).
    pub attempt: i32,
}

impl JobCtx<'_> {
    /// Now on the process's clock.
    pub fn now(&self) -> chrono::NaiveDateTime {
        self.deps.clock.now()
    }
}

/// A kind of background job: the value is the payload (stored as JSON), `KIND` names it in the
/// queue (it must never change: queued rows carry it), `run` does the work. Errors for which
/// [`ControlError::is_retryable`] holds put the job back with backoff; others fail it for good.
pub trait BackgroundJob: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The kind stored in `jobs.kind`.
    const KIND: &'static str;

    /// Does the work (at least once: a job may run again after a crash, so make it idempotent).
    fn run(&self, ctx: &JobCtx<'_>) -> impl Future<Output = Result<()>> + Send;
}

/// A type-erased runner: decodes the payload of its kind and runs it.
type RunFn = for<'a> fn(&'a JobCtx<'a>, &'a str) -> BoxFuture<'a, Result<()>>;

fn run_erased<'a, J: BackgroundJob>(
    ctx: &'a JobCtx<'a>,
    payload: &'a str,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let job: J = serde_json::from_str(payload).map_err(|e| {
            ControlError::Internal(format!(
                "job {} ({}): bad payload: {e}",
                ctx.job_id,
                J::KIND
            ))
        })?;
        job.run(ctx).await
    })
}

/// The job kinds a process runs: kind -> runner. Built once at start-up.
#[derive(Clone, Default)]
pub struct Registry {
    runners: BTreeMap<&'static str, RunFn>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.runners.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds kind `J` (a second registration of the same kind replaces the first).
    pub fn register<J: BackgroundJob>(mut self) -> Self {
        self.runners.insert(J::KIND, run_erased::<J>);
        self
    }

    /// The registered kinds.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.runners.keys().copied().collect()
    }

    /// Whether `kind` is registered.
    pub fn contains(&self, kind: &str) -> bool {
        self.runners.contains_key(kind)
    }

    /// The services' kinds (built on first use).
    pub fn standard() -> &'static Registry {
        static STANDARD: OnceLock<Registry> = OnceLock::new();
        STANDARD.get_or_init(|| crate::job_kinds::register(Registry::new()))
    }

    async fn run(&self, deps: &Deps, job: &JobRow) -> Result<()> {
        let Some(run) = self.runners.get(job.kind.as_str()) else {
            return Err(ControlError::Internal(format!(
                "unknown job kind {:?}",
                job.kind
            )));
        };
        let ctx = JobCtx {
            deps,
            tenant: &job.tenant_id,
            job_id: &job.id,
            attempt: job.attempts,
        };
        run(&ctx, &job.payload_json).await
    }
}

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

/// Inserts a queued job row: due at `run_after`, stamped `now` (inside the caller's
/// transaction). Returns its ID.
fn insert_job(
    c: &mut DbConn,
    tenant: &str,
    kind: &str,
    payload_json: &str,
    run_after: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> Result<String> {
    let id = db::new_id();
    diesel::insert_into(jobs::table)
        .values((
            jobs::id.eq(&id),
            jobs::tenant_id.eq(tenant),
            jobs::kind.eq(kind),
            jobs::payload_json.eq(payload_json),
            jobs::status.eq("queued"),
            jobs::attempts.eq(0),
            jobs::run_after.eq(run_after),
            jobs::created_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .execute(c)?;
    Ok(id)
}

/// Enqueues a typed job due now on the system clock (inside the caller's transaction). Returns
/// its ID. Services that have a clock (a [`crate::Ctx`] or [`Deps`]) use [`enqueue_job_now`]:
/// a job stamped with the system time is not due on a manual clock set behind it.
pub fn enqueue_job<J: BackgroundJob>(c: &mut DbConn, tenant: &str, job: &J) -> Result<String> {
    enqueue_job_now(c, tenant, job, db::now())
}

/// Enqueues a typed job due at `now`, the caller's clock's now (inside the caller's
/// transaction). Returns its ID.
pub fn enqueue_job_now<J: BackgroundJob>(
    c: &mut DbConn,
    tenant: &str,
    job: &J,
    now: chrono::NaiveDateTime,
) -> Result<String> {
    enqueue_job_at(c, tenant, job, now, now)
}

/// Enqueues a typed job due at `run_after` (UTC; claimed once the clock reaches it), stamped
/// `now` (the caller's clock), inside the caller's transaction. Returns its ID.
pub fn enqueue_job_at<J: BackgroundJob>(
    c: &mut DbConn,
    tenant: &str,
    job: &J,
    run_after: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> Result<String> {
    insert_job(
        c,
        tenant,
        J::KIND,
        &serde_json::to_string(job)?,
        run_after,
        now,
    )
}

/// Enqueues face detection of an asset version, due now on the system clock (see
/// [`enqueue_suggest_at`]).
pub fn enqueue_suggest(
    c: &mut DbConn,
    tenant: &str,
    asset_id: &str,
    version: i32,
) -> Result<String> {
    enqueue_suggest_at(c, tenant, asset_id, version, db::now())
}

/// Enqueues face detection of an asset version, due at `now` (the caller's clock).
pub fn enqueue_suggest_at(
    c: &mut DbConn,
    tenant: &str,
    asset_id: &str,
    version: i32,
    now: chrono::NaiveDateTime,
) -> Result<String> {
    enqueue_job_now(
        c,
        tenant,
        &crate::job_kinds::SuggestFaces {
            asset_id: asset_id.to_string(),
            version: i64::from(version),
        },
        now,
    )
}

fn lease_start(now: chrono::NaiveDateTime, lease: Duration) -> chrono::NaiveDateTime {
    now - chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::minutes(5))
}

/// Claims the next job of one of `kinds` due at `now` (run_after reached, or a running job
/// whose lease expired) for `worker` (or `None`).
pub fn claim_kinds_at(
    c: &mut DbConn,
    worker: &str,
    lease: Duration,
    kinds: &[&str],
    now: chrono::NaiveDateTime,
) -> Result<Option<JobRow>> {
    let expired = lease_start(now, lease);
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
                .order((jobs::run_after.asc(), jobs::created_at.asc()))
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
                .order((jobs::run_after.asc(), jobs::created_at.asc()))
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

/// Marks a job done at `now` that no worker has claimed yet (its work was done by the request
/// that queued it); false when a worker holds it already (it will run, which is harmless for
/// idempotent kinds).
pub fn complete_queued_at(c: &mut DbConn, id: &str, now: chrono::NaiveDateTime) -> Result<bool> {
    let n = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq("queued")),
    )
    .set((
        jobs::status.eq("done"),
        jobs::last_error.eq(None::<String>),
        jobs::updated_at.eq(now),
    ))
    .execute(c)?;
    Ok(n == 1)
}

/// Marks a job done at `now` (only if `worker` still holds it).
pub fn complete_at(
    c: &mut DbConn,
    id: &str,
    worker: &str,
    now: chrono::NaiveDateTime,
) -> Result<()> {
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
        jobs::updated_at.eq(now),
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

/// Puts a job back with a delay (retryable failure) or fails it for good, at `now`.
pub fn fail_at(
    c: &mut DbConn,
    job: &JobRow,
    worker: &str,
    error: &str,
    retry_in: Option<Duration>,
    now: chrono::NaiveDateTime,
) -> Result<()> {
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

/// Claims and runs one due job of a standard kind; `None` when there was none.
pub async fn run_once(state: &Deps, worker: &str) -> Result<Option<(JobRow, Outcome)>> {
    let reg = Registry::standard();
    run_once_in(state, reg, worker, &reg.kinds()).await
}

/// Claims and runs one due job of one of `kinds` (standard kinds).
pub async fn run_once_kinds(
    state: &Deps,
    worker: &str,
    kinds: &'static [&'static str],
) -> Result<Option<(JobRow, Outcome)>> {
    run_once_in(state, Registry::standard(), worker, kinds).await
}

/// Claims and runs one job of one of `kinds` due on the clock of `state`, with the runners of
/// `registry` (a kind it lacks fails the job for good).
pub async fn run_once_in(
    state: &Deps,
    registry: &Registry,
    worker: &str,
    kinds: &[&str],
) -> Result<Option<(JobRow, Outcome)>> {
    let st = settings(state)?;
    let w = worker.to_string();
    let now = state.clock.now();
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    let job = db::run(&state.pool, move |c| {
        let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
        claim_kinds_at(c, &w, st.lease, &kinds, now)
    })
    .await?;
    let Some(job) = job else {
        return Ok(None);
    };
    // The vault (registered for code that reaches personal data inside a transaction).
    let _ = state.vault();
    let outcome = match registry.run(state, &job).await {
        Ok(()) => Outcome::Done,
        Err(e) if e.is_retryable() => Outcome::Retry(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    let (j, w, o) = (job.clone(), worker.to_string(), outcome.clone());
    let now = state.clock.now();
    db::run(&state.pool, move |c| match &o {
        Outcome::Done => complete_at(c, &j.id, &w, now),
        Outcome::Retry(m) => fail_at(c, &j, &w, m, Some(backoff(&st, j.attempts)), now),
        Outcome::Failed(m) => fail_at(c, &j, &w, m, None, now),
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

/// Runs due jobs of `registry` until none is due on the clock (tests, CLI).
pub async fn run_until_idle_in(state: &Deps, registry: &Registry, worker: &str) -> Result<usize> {
    let kinds = registry.kinds();
    let mut n = 0;
    while run_once_in(state, registry, worker, &kinds)
        .await?
        .is_some()
    {
        n += 1;
    }
    Ok(n)
}

/// Runs due jobs (standard kinds) until none is due on the clock (tests, CLI).
pub async fn run_until_idle(state: &Deps, worker: &str) -> Result<usize> {
    run_until_idle_in(state, Registry::standard(), worker).await
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
    release_orphans_at(c, db::now())
}

/// [`release_orphans`] at `now` (the process's clock): the released jobs are due at `now`.
pub fn release_orphans_at(c: &mut DbConn, now: chrono::NaiveDateTime) -> Result<usize> {
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
            jobs::run_after.eq(now),
            jobs::updated_at.eq(now),
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

/// Starts the background job workers and the scheduler of this process (called once by `serve`
/// before it binds).
pub fn start(state: &std::sync::Arc<crate::Deps>) -> Result<()> {
    let st = settings(state)?;
    {
        let mut c = state.pool.get()?;
        release_orphans_at(&mut c, state.clock.now())?;
    }
    crate::scheduler::spawn(state.clone())?;
    crate::webhooks::spawn(state.clone());
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

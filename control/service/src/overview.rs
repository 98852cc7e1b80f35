//! What the console's overview shows: files that may not be used (by reason), consents ending
//! within the notice period, faces waiting for review, and failing background jobs.
//!
//! Counting the files runs the compliance engine over every file of the tenant, which takes
//! time in proportion to their number, so a tenant with more than [`LIVE_COUNT_LIMIT`] files
//! has its count kept in [`SummaryCache`] for [`SUMMARY_TTL_SECONDS`]: a stale count is shown
//! at once (with the time it was counted) while a fresh one is computed in the background; the
//! page offers "count again" ([`recount`]). Smaller tenants are counted on every request.
//! Everything else is read live.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use diesel::prelude::*;
use serde::Serialize;

use crate::compliance::{self, NotAllowedSummary};
use crate::context::Ctx;
use crate::db;
use crate::error::{ControlError, Result};
use crate::jobs::{JobRow, QueueStats};
use crate::roles::Permission;
use crate::schema::{agreements, faces, jobs, persons};
use crate::settings;

/// How long a count of the files that may not be used is shown before it is counted again.
pub const SUMMARY_TTL_SECONDS: i64 = 60;

/// Tenants with at most this many files are counted on every request (tens of milliseconds).
pub const LIVE_COUNT_LIMIT: u64 = 2_000;

/// At most this many expiring consents and failing jobs are listed.
pub const LIST_LIMIT: i64 = 10;

/// The per-tenant counts of files that may not be used, with the tenants being recounted.
#[derive(Debug, Default)]
pub struct SummaryCache {
    inner: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    by_tenant: HashMap<String, NotAllowedSummary>,
    counting: HashSet<String>,
}

impl SummaryCache {
    fn get(&self, tenant: &str) -> Option<NotAllowedSummary> {
        self.inner
            .lock()
            .ok()
            .and_then(|s| s.by_tenant.get(tenant).cloned())
    }

    fn put(&self, tenant: &str, summary: NotAllowedSummary) {
        if let Ok(mut s) = self.inner.lock() {
            s.counting.remove(tenant);
            s.by_tenant.insert(tenant.to_string(), summary);
        }
    }

    /// Marks `tenant` as being counted; false if it already is.
    fn start_counting(&self, tenant: &str) -> bool {
        self.inner
            .lock()
            .map(|mut s| s.counting.insert(tenant.to_string()))
            .unwrap_or(false)
    }

    fn stop_counting(&self, tenant: &str) {
        if let Ok(mut s) = self.inner.lock() {
            s.counting.remove(tenant);
        }
    }
}

/// A consent that ends within the notice period.
#[derive(Debug, Clone, Serialize)]
pub struct ExpiringConsent {
    /// The agreement.
    pub agreement_id: String,
    /// The person.
    pub person_id: String,
    /// Their name (or pseudonym where names are hidden).
    pub person_label: String,
    /// The channels it covers.
    pub channels: Vec<String>,
    /// Its last day.
    pub valid_until: NaiveDate,
}

/// The overview.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Files that may not be used, by reason.
    pub not_allowed: NotAllowedSummary,
    /// The notice period, in days.
    pub notice_days: u32,
    /// Consents ending within the notice period, soonest first (at most [`LIST_LIMIT`];
    /// `None` without `see_persons`).
    pub expiring: Option<Vec<ExpiringConsent>>,
    /// How many consents end within the notice period.
    pub expiring_total: i64,
    /// Faces the matcher suggests a person for, waiting for a human.
    pub faces_suggested: i64,
    /// Faces no one has identified yet.
    pub faces_unknown: i64,
    /// The job queue (`None` without `manage_assets`).
    pub jobs: Option<QueueStats>,
    /// The most recently failed jobs (at most [`LIST_LIMIT`]).
    pub failing_jobs: Vec<JobRow>,
}

fn count_now(ctx: &Ctx) -> impl FnOnce(&mut db::DbConn) -> Result<NotAllowedSummary> + use<> {
    let tenant = ctx.tenant().to_string();
    let (today, now) = (ctx.today(), ctx.now);
    move |c| compliance::summarize_not_allowed(c, &tenant, today, now)
}

async fn not_allowed(ctx: &Ctx) -> Result<NotAllowedSummary> {
    let cache = &ctx.deps.summaries;
    let tenant = ctx.tenant().to_string();
    match cache.get(&tenant) {
        Some(s) if s.files_checked > LIVE_COUNT_LIMIT => {
            let stale = s.date != ctx.today()
                || (ctx.now - s.counted_at).num_seconds() >= SUMMARY_TTL_SECONDS;
            if stale && cache.start_counting(&tenant) {
                let deps = Arc::clone(&ctx.deps);
                let count = count_now(ctx);
                tokio::spawn(async move {
                    match db::run(&deps.pool, count).await {
                        Ok(fresh) => deps.summaries.put(&tenant, fresh),
                        Err(e) => {
                            deps.summaries.stop_counting(&tenant);
                            tracing::warn!(tenant, error = %e, "counting files not allowed failed");
                        }
                    }
                });
            }
            Ok(s)
        }
        _ => recount_inner(ctx).await,
    }
}

async fn recount_inner(ctx: &Ctx) -> Result<NotAllowedSummary> {
    let fresh = db::run(&ctx.deps.pool, count_now(ctx)).await?;
    ctx.deps.summaries.put(ctx.tenant(), fresh.clone());
    Ok(fresh)
}

/// Counts the files that may not be used again, now (any user of the tenant).
pub async fn recount(ctx: &Ctx) -> Result<NotAllowedSummary> {
    recount_inner(ctx).await
}

/// The overview of `ctx`'s tenant. Every user may see the counts; names of persons need
/// `see_persons`, the job queue `manage_assets`.
pub async fn overview(ctx: &Ctx) -> Result<Overview> {
    let not_allowed = not_allowed(ctx).await?;
    let tenant = ctx.tenant().to_string();
    let today = ctx.today();
    let see_persons = ctx.has(Permission::SeePersons);
    let see_jobs = ctx.has(Permission::ManageAssets);
    let actor = ctx.actor.clone();
    db::run(&ctx.deps.pool, move |c| {
        let s = settings::get(c, &tenant)?;
        let names = crate::persons::shows_real_names(&actor, &s);
        let last_day = today
            .checked_add_days(chrono::Days::new(u64::from(s.notice_days)))
            .ok_or_else(|| ControlError::Internal("notice period out of range".into()))?;
        let ending = agreements::table
            .inner_join(persons::table.on(persons::id.eq(agreements::person_id)))
            .filter(agreements::tenant_id.eq(&tenant))
            .filter(agreements::withdrawn_at.is_null())
            .filter(agreements::valid_until.ge(today))
            .filter(agreements::valid_until.le(last_day))
            .filter(agreements::valid_from.le(today))
            .filter(persons::deleted_at.is_null());
        let expiring_total: i64 = ending.count().get_result(c)?;
        let expiring = if see_persons {
            let rows: Vec<(String, String, String, String, String, Option<NaiveDate>)> = ending
                .order((agreements::valid_until.asc(), agreements::id.asc()))
                .limit(LIST_LIMIT)
                .select((
                    agreements::id,
                    agreements::person_id,
                    persons::name,
                    persons::pseudonym,
                    agreements::channels_json,
                    agreements::valid_until,
                ))
                .load(c)?;
            Some(
                rows.into_iter()
                    .filter_map(|(id, person_id, name, pseudonym, channels, until)| {
                        Some(ExpiringConsent {
                            agreement_id: id,
                            person_id,
                            person_label: if names { name } else { pseudonym },
                            channels: serde_json::from_str(&channels).unwrap_or_default(),
                            valid_until: until?,
                        })
                    })
                    .collect(),
            )
        } else {
            None
        };
        let count_faces = |c: &mut db::DbConn, status: &str| -> Result<i64> {
            Ok(faces::table
                .filter(faces::tenant_id.eq(&tenant))
                .filter(faces::status.eq(status))
                .count()
                .get_result(c)?)
        };
        let faces_suggested = count_faces(c, crate::faces::SUGGESTED)?;
        let faces_unknown = count_faces(c, crate::faces::UNKNOWN)?;
        let (jobs, failing_jobs) = if see_jobs {
            let failing: Vec<JobRow> = jobs::table
                .filter(jobs::tenant_id.eq(&tenant))
                .filter(jobs::status.eq("failed"))
                .order(jobs::updated_at.desc())
                .limit(LIST_LIMIT)
                .select(JobRow::as_select())
                .load(c)?;
            (Some(crate::jobs::stats(c, &tenant)?), failing)
        } else {
            (None, Vec::new())
        };
        Ok(Overview {
            not_allowed,
            notice_days: s.notice_days,
            expiring,
            expiring_total,
            faces_suggested,
            faces_unknown,
            jobs,
            failing_jobs,
        })
    })
    .await
}

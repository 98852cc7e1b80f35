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
use crate::jobs::JobRow;
use crate::roles::Permission;
use crate::schema::{agreements, assets, faces, jobs, persons};
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
    by_tenant: HashMap<String, Counts>,
    counting: HashSet<String>,
}

impl SummaryCache {
    fn get(&self, tenant: &str) -> Option<Counts> {
        self.inner
            .lock()
            .ok()
            .and_then(|s| s.by_tenant.get(tenant).cloned())
    }

    fn put(&self, tenant: &str, summary: Counts) {
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

/// The counts that take time on a large archive: the files that may not be used, by reason,
/// and the faces waiting for a human.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Files that may not be used, by reason (with when they were counted).
    pub not_allowed: NotAllowedSummary,
    /// Faces the matcher suggests a person for, waiting for a human.
    pub faces_suggested: i64,
    /// Faces no one has identified yet.
    pub faces_unknown: i64,
}

/// Background jobs that are not done, by status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobCounts {
    /// Waiting.
    pub queued: i64,
    /// Being worked on.
    pub running: i64,
    /// Failed for good.
    pub failed: i64,
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
    /// The counts of files and faces; `None` while a large archive is being counted for the
    /// first time (the page asks again in a moment).
    pub counts: Option<Counts>,
    /// The notice period, in days.
    pub notice_days: u32,
    /// Consents ending within the notice period, soonest first (at most [`LIST_LIMIT`];
    /// `None` without `see_persons`).
    pub expiring: Option<Vec<ExpiringConsent>>,
    /// How many consents end within the notice period.
    pub expiring_total: i64,
    /// The jobs not done (`None` without `manage_assets`).
    pub jobs: Option<JobCounts>,
    /// The most recently failed jobs (at most [`LIST_LIMIT`]).
    pub failing_jobs: Vec<JobRow>,
}

fn count_now(ctx: &Ctx) -> impl FnOnce(&mut db::DbConn) -> Result<Counts> + use<> {
    let tenant = ctx.tenant().to_string();
    let (today, now) = (ctx.today(), ctx.now);
    move |c| {
        let not_allowed = compliance::summarize_not_allowed(c, &tenant, today, now)?;
        let by_status: Vec<(String, i64)> = faces::table
            .filter(faces::tenant_id.eq(&tenant))
            .filter(faces::status.eq_any([crate::faces::SUGGESTED, crate::faces::UNKNOWN]))
            .group_by(faces::status)
            .select((faces::status, diesel::dsl::count_star()))
            .load(c)?;
        let of = |st: &str| {
            by_status
                .iter()
                .find(|(s, _)| s == st)
                .map_or(0, |(_, n)| *n)
        };
        Ok(Counts {
            faces_suggested: of(crate::faces::SUGGESTED),
            faces_unknown: of(crate::faces::UNKNOWN),
            not_allowed,
        })
    }
}

/// Starts counting `ctx`'s tenant in the background unless that is already under way.
fn count_in_background(ctx: &Ctx) {
    let cache = &ctx.deps.summaries;
    let tenant = ctx.tenant().to_string();
    if !cache.start_counting(&tenant) {
        return;
    }
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

/// The counts to show: live for a small archive; for a large one the cached counts (recounted in
/// the background when older than [`SUMMARY_TTL_SECONDS`]), or `None` while the first count
/// runs.
async fn counts(ctx: &Ctx) -> Result<Option<Counts>> {
    let tenant = ctx.tenant().to_string();
    let cached = ctx.deps.summaries.get(&tenant);
    let large = match &cached {
        Some(c) => c.not_allowed.files_checked > LIVE_COUNT_LIMIT,
        None => {
            let t = tenant.clone();
            let files: i64 = db::run(&ctx.deps.pool, move |c| {
                Ok(assets::table
                    .filter(assets::tenant_id.eq(&t))
                    .count()
                    .get_result(c)?)
            })
            .await?;
            u64::try_from(files).unwrap_or(0) > LIVE_COUNT_LIMIT
        }
    };
    if !large {
        return recount_inner(ctx).await.map(Some);
    }
    match cached {
        Some(c) => {
            let stale = c.not_allowed.date != ctx.today()
                || (ctx.now - c.not_allowed.counted_at).num_seconds() >= SUMMARY_TTL_SECONDS;
            if stale {
                count_in_background(ctx);
            }
            Ok(Some(c))
        }
        None => {
            count_in_background(ctx);
            Ok(None)
        }
    }
}

async fn recount_inner(ctx: &Ctx) -> Result<Counts> {
    let fresh = db::run(&ctx.deps.pool, count_now(ctx)).await?;
    ctx.deps.summaries.put(ctx.tenant(), fresh.clone());
    Ok(fresh)
}

/// Counts the files that may not be used (and the faces to review) again, now (any user of the
/// tenant). Takes seconds on a large archive.
pub async fn recount(ctx: &Ctx) -> Result<Counts> {
    recount_inner(ctx).await
}

/// The overview of `ctx`'s tenant. Every user may see the counts; names of persons need
/// `see_persons`, the job queue `manage_assets`.
pub async fn overview(ctx: &Ctx) -> Result<Overview> {
    let counts = counts(ctx).await?;
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
            let rows: Vec<(String, String, String, String, Option<NaiveDate>)> = ending
                .order((agreements::valid_until.asc(), agreements::id.asc()))
                .limit(LIST_LIMIT)
                .select((
                    agreements::id,
                    agreements::person_id,
                    persons::pseudonym,
                    agreements::channels_json,
                    agreements::valid_until,
                ))
                .load(c)?;
            // Names are sealed (the vault): opened for the persons shown.
            let mut real = if names {
                let ids: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
                crate::persons::names_of(c, &tenant, &ids)?
            } else {
                std::collections::HashMap::new()
            };
            Some(
                rows.into_iter()
                    .filter_map(|(id, person_id, pseudonym, channels, until)| {
                        let name = real.remove(&person_id).unwrap_or_default();
                        Some(ExpiringConsent {
                            agreement_id: id,
                            person_label: if names { name } else { pseudonym },
                            person_id,
                            channels: serde_json::from_str(&channels).unwrap_or_default(),
                            valid_until: until?,
                        })
                    })
                    .collect(),
            )
        } else {
            None
        };
        let (jobs, failing_jobs) = if see_jobs {
            let failing: Vec<JobRow> = jobs::table
                .filter(jobs::tenant_id.eq(&tenant))
                .filter(jobs::status.eq("failed"))
                .order(jobs::updated_at.desc())
                .limit(LIST_LIMIT)
                .select(JobRow::as_select())
                .load(c)?;
            let by_status: Vec<(String, i64)> = jobs::table
                .filter(jobs::tenant_id.eq(&tenant))
                .filter(jobs::status.eq_any(["queued", "running", "failed"]))
                .group_by(jobs::status)
                .select((jobs::status, diesel::dsl::count_star()))
                .load(c)?;
            let of = |st: &str| {
                by_status
                    .iter()
                    .find(|(s, _)| s == st)
                    .map_or(0, |(_, n)| *n)
            };
            let counts = JobCounts {
                queued: of("queued"),
                running: of("running"),
                failed: of("failed"),
            };
            (Some(counts), failing)
        } else {
            (None, Vec::new())
        };
        Ok(Overview {
            counts,
            notice_days: s.notice_days,
            expiring,
            expiring_total,
            jobs,
            failing_jobs,
        })
    })
    .await
}

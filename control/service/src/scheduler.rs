//! The scheduler: time-driven work in the job workers' process. Two forms:
//!
//! - jobs due at a moment: a job enqueued with a future `run_after`
//!   ([`crate::jobs::enqueue_job_at`], e.g. `face_matching_consent_end` at the end of a consent)
//!   is claimed by a worker once the clock of [`Deps`] reaches it;
//! - periodic ticks ([`tick`], every `jobs.scheduler_tick_ms`): sweeps that catch what no single
//!   moment announces (a consent that stopped being in force for another reason, a due job lost
//!   with an old database) and repeat what the due jobs do, so a late job changes only the delay.
//!
//! Everything reads the time from `deps.clock`, so a test sets a manual clock a day later and
//! calls [`tick`] once. The effects of a tick are idempotent and decided under the rows they
//! change, so several processes ticking on one PostgreSQL database do the work once.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::Deps;
use crate::db;
use crate::error::Result;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Persons holding templates whose face-matching consent was checked.
    pub checked: usize,
    /// Of those, persons whose consent had lapsed: templates forgotten, removal queued.
    pub removals_queued: usize,
}

/// One tick at the clock's now: every person who holds templates without a face-matching
/// consent in force today (expired, withdrawn, or a minor's consent without a guardian's
/// signature) has the removal of their templates queued
/// ([`crate::faces::end_lapsed_face_matching`]).
pub async fn tick(deps: &Deps) -> Result<TickReport> {
    let now = deps.clock.now();
    let candidates = db::run(&deps.pool, move |c| {
        crate::faces::persons_with_lapsing_templates(c, now.date())
    })
    .await?;
    let mut report = TickReport {
        checked: candidates.len(),
        ..TickReport::default()
    };
    for (tenant, person) in candidates {
        let (t, p) = (tenant.clone(), person.clone());
        let job = db::run(&deps.pool, move |c| {
            crate::faces::end_lapsed_face_matching(c, &t, &p, now)
        })
        .await?;
        if let Some(job) = job {
            tracing::info!(%tenant, %person, %job, "face-matching consent lapsed: template removal queued");
            report.removals_queued += 1;
        }
    }
    Ok(report)
}

/// How often the scheduler refreshes the query planner's statistics
/// ([`likeness_control_db::refresh_statistics`]; `serve` does it at start too).
pub const STATISTICS_EVERY: Duration = Duration::from_secs(3600);

/// The pause between ticks (`jobs.scheduler_tick_ms`).
pub fn tick_interval(deps: &Deps) -> Duration {
    Duration::from_millis(deps.config.jobs.scheduler_tick_ms.max(1))
}

/// Starts the periodic ticks of this process (called by [`crate::jobs::start`]); the first one
/// runs one interval after the start.
pub fn spawn(deps: Arc<Deps>) -> Result<()> {
    let every = tick_interval(&deps);
    tokio::spawn(async move {
        let mut statistics_at = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            if statistics_at.elapsed() >= STATISTICS_EVERY {
                statistics_at = tokio::time::Instant::now();
                if let Err(e) = db::run(&deps.pool, |c| {
                    likeness_control_db::refresh_statistics(
                        c,
                        likeness_control_db::Statistics::IfChanged,
                    )
                    .map_err(Into::into)
                })
                .await
                {
                    tracing::warn!(error = %e, "refreshing the planner's statistics");
                }
            }
            match crate::exposure::tick(&deps).await {
                Ok(r) if r.assets > 0 => tracing::info!(
                    assets = r.assets,
                    changed = r.changed,
                    events = r.events,
                    "scheduler: compliance recomputed"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "scheduler: recomputing compliance"),
            }
            if let Err(e) = crate::alerts::tick(&deps).await {
                tracing::error!(error = %e, "scheduler: alerts");
            }
            match crate::retention::tick(&deps).await {
                Ok(r) if r != crate::retention::RetentionReport::default() => tracing::info!(
                    agreements = r.agreements,
                    documents = r.documents,
                    evidence = r.evidence,
                    exports_expired = r.exports_expired,
                    "scheduler: retention"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "scheduler: retention"),
            }
            match tick(&deps).await {
                Ok(r) if r.removals_queued > 0 => {
                    tracing::info!(
                        checked = r.checked,
                        removals = r.removals_queued,
                        "scheduler tick"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "scheduler tick"),
            }
        }
    });
    Ok(())
}

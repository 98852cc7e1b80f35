//! (PUBLISHING) The allowed set in memory: which file may be served on which channel until
//! which day, per process, so that the delivery endpoint and share links decide without a
//! database query per request.
//!
//! Loaded once from `asset_exposure`, then kept current by following `exposure_changes` (the
//! log every change of the set writes in its transaction, see [`crate::exposure`]): every
//! `delivery.cache_poll_ms` the process reads the log entries it has not applied and reloads
//! those files' rows. That makes it correct across several processes on one database.
//!
//! PostgreSQL hands out `seq` values at insert time, so a transaction that commits late can make
//! a smaller `seq` visible after a larger one. The follower therefore re-reads the recent part
//! of the log (the last [`REREAD_SECS`] seconds) and applies each entry once, remembered by
//! `seq`; a late commit is picked up on the next poll.
//!
//! The date is checked in memory too: a row allowed until yesterday is not allowed today, even
//! before the scheduler recomputes it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use crate::Deps;
use crate::db::{self, DbConn, DbPool};
use crate::error::{ControlError, Result};
use crate::schema::{asset_exposure, exposure_changes, tenants};

/// How far back (seconds) each poll re-reads the change log for late commits.
pub const REREAD_SECS: i64 = 30;

/// One file in the set: its version and the channels it is allowed on, with the last day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedFile {
    /// The file's version the verdicts were computed for.
    pub version: i32,
    /// Allowed channels and the last day each stays allowed (`None`: no end).
    pub channels: Vec<(String, Option<NaiveDate>)>,
}

impl AllowedFile {
    /// Whether the file may be used on `channel` on `today`.
    pub fn allows(&self, channel: &str, today: NaiveDate) -> bool {
        self.channels
            .iter()
            .any(|(c, until)| c == channel && until.is_none_or(|u| today <= u))
    }
}

/// The answer for one file on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// May be served; the file's current version.
    Allowed {
        /// The version to serve.
        version: i32,
    },
    /// Known but not allowed on this channel today.
    NotAllowed,
    /// Not in the set (unknown file, another tenant's, or never computed).
    Unknown,
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// `(tenant, asset)` -> the allowed channels.
    files: HashMap<(String, String), Arc<AllowedFile>>,
    /// Tenant slug -> id.
    slugs: HashMap<String, String>,
    /// The largest `seq` applied.
    max_seq: i64,
    /// `seq`s applied within the re-read window, with their time.
    recent: HashMap<i64, NaiveDateTime>,
}

/// The process's copy of the allowed set (held in [`Deps`]).
#[derive(Default)]
pub struct AllowedSet {
    state: RwLock<State>,
    /// Serialises loads and polls (one at a time per process).
    sync: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AllowedSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllowedSet").finish_non_exhaustive()
    }
}

fn poisoned() -> ControlError {
    ControlError::Internal("the allowed set's lock is poisoned".into())
}

/// One stored row as the set reads it: tenant, asset, channel, last day, version, allowed.
type SetRow = (String, String, String, Option<NaiveDate>, i32, bool);

type Loaded = (Vec<SetRow>, Vec<(String, String)>);

fn load_rows(conn: &mut DbConn, only: Option<&[(String, String)]>) -> Result<Vec<SetRow>> {
    let select = (
        asset_exposure::tenant_id,
        asset_exposure::asset_id,
        asset_exposure::channel,
        asset_exposure::allowed_until,
        asset_exposure::asset_version,
        asset_exposure::allowed,
    );
    match only {
        None => Ok(asset_exposure::table.select(select).load(conn)?),
        Some(keys) => {
            let mut by_tenant: HashMap<&str, Vec<&str>> = HashMap::new();
            for (t, a) in keys {
                by_tenant.entry(t.as_str()).or_default().push(a.as_str());
            }
            let mut out = Vec::new();
            for (t, ids) in by_tenant {
                for chunk in ids.chunks(500) {
                    out.extend(
                        asset_exposure::table
                            .filter(asset_exposure::tenant_id.eq(t))
                            .filter(asset_exposure::asset_id.eq_any(chunk))
                            .select(select)
                            .load::<(String, String, String, Option<NaiveDate>, i32, bool)>(conn)?,
                    );
                }
            }
            Ok(out)
        }
    }
}

fn group(rows: Vec<SetRow>) -> HashMap<(String, String), AllowedFile> {
    let mut out: HashMap<(String, String), AllowedFile> = HashMap::new();
    for (t, a, channel, until, version, allowed) in rows {
        let e = out.entry((t, a)).or_default();
        e.version = version;
        if allowed {
            e.channels.push((channel, until));
        }
    }
    out
}

impl AllowedSet {
    /// The decision for `asset_id` of `tenant_id` on `channel` on `today`, from memory.
    pub fn check(
        &self,
        tenant_id: &str,
        asset_id: &str,
        channel: &str,
        today: NaiveDate,
    ) -> Decision {
        let Ok(s) = self.state.read() else {
            return Decision::Unknown;
        };
        match s.files.get(&(tenant_id.to_string(), asset_id.to_string())) {
            None => Decision::Unknown,
            Some(f) if f.allows(channel, today) => Decision::Allowed { version: f.version },
            Some(_) => Decision::NotAllowed,
        }
    }

    /// The file's entry (for pages that list several channels).
    pub fn get(&self, tenant_id: &str, asset_id: &str) -> Option<Arc<AllowedFile>> {
        let s = self.state.read().ok()?;
        s.files
            .get(&(tenant_id.to_string(), asset_id.to_string()))
            .cloned()
    }

    /// The tenant id of a slug, from memory (refreshed with every poll that applies changes,
    /// and on [`AllowedSet::load`]).
    pub fn tenant_by_slug(&self, slug: &str) -> Option<String> {
        self.state.read().ok()?.slugs.get(slug).cloned()
    }

    /// Whether the set was loaded.
    pub fn is_loaded(&self) -> bool {
        self.state.read().map(|s| s.loaded).unwrap_or(false)
    }

    /// Loads the whole set (replacing what is there).
    pub async fn load(&self, pool: &DbPool) -> Result<usize> {
        let _one = self.sync.lock().await;
        self.load_locked(pool).await
    }

    async fn load_locked(&self, pool: &DbPool) -> Result<usize> {
        let ((rows, slugs), max_seq): (Loaded, i64) = db::run(pool, |c| {
            // The log position first: whatever commits after it is applied by the next poll.
            let max_seq: Option<i64> = exposure_changes::table
                .select(diesel::dsl::max(exposure_changes::seq))
                .first(c)?;
            let rows = load_rows(c, None)?;
            let slugs: Vec<(String, String)> = tenants::table
                .select((tenants::slug, tenants::id))
                .load(c)?;
            Ok(((rows, slugs), max_seq.unwrap_or(0)))
        })
        .await?;
        let files = group(rows);
        let n = files.len();
        let mut s = self.state.write().map_err(|_| poisoned())?;
        s.files = files.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        s.slugs = slugs.into_iter().collect();
        s.max_seq = max_seq;
        s.recent.clear();
        s.loaded = true;
        Ok(n)
    }

    /// Loads the set if it never was (the first request of a process that runs no poller).
    pub async fn ensure_loaded(&self, pool: &DbPool) -> Result<()> {
        if self.is_loaded() {
            return Ok(());
        }
        let _one = self.sync.lock().await;
        if self.is_loaded() {
            return Ok(());
        }
        self.load_locked(pool).await.map(|_| ())
    }

    /// Applies the change-log entries not applied yet (loading the set first if it never was);
    /// returns how many files were reloaded.
    pub async fn poll(&self, pool: &DbPool, now: NaiveDateTime) -> Result<usize> {
        let _one = self.sync.lock().await;
        if !self.is_loaded() {
            return self.load_locked(pool).await;
        }
        let (max_seq, window_start) = {
            let s = self.state.read().map_err(|_| poisoned())?;
            (s.max_seq, now - TimeDelta::seconds(REREAD_SECS))
        };
        let entries: Vec<(i64, String, String)> = db::run(pool, move |c| {
            Ok(exposure_changes::table
                .filter(
                    exposure_changes::seq
                        .gt(max_seq)
                        .or(exposure_changes::created_at.ge(window_start)),
                )
                .order(exposure_changes::seq.asc())
                .select((
                    exposure_changes::seq,
                    exposure_changes::tenant_id,
                    exposure_changes::asset_id,
                ))
                .limit(100_000)
                .load(c)?)
        })
        .await?;
        let fresh: Vec<(i64, String, String)> = {
            let s = self.state.read().map_err(|_| poisoned())?;
            entries
                .into_iter()
                .filter(|(seq, _, _)| !s.recent.contains_key(seq))
                .collect()
        };
        // Entries at or below max_seq that are not in `recent` were applied before the window
        // (by the load) or are late commits: reloading a file twice is harmless, so both are
        // applied; entries above max_seq are new.
        if fresh.is_empty() {
            self.prune(now)?;
            return Ok(0);
        }
        let keys: Vec<(String, String)> = {
            let mut set: HashSet<(String, String)> = HashSet::new();
            for (_, t, a) in &fresh {
                set.insert((t.clone(), a.clone()));
            }
            set.into_iter().collect()
        };
        let ks = keys.clone();
        let (rows, slugs) = db::run(pool, move |c| {
            let rows = load_rows(c, Some(&ks))?;
            let slugs: Vec<(String, String)> = tenants::table
                .select((tenants::slug, tenants::id))
                .load(c)?;
            Ok((rows, slugs))
        })
        .await?;
        let mut files = group(rows);
        let mut s = self.state.write().map_err(|_| poisoned())?;
        for k in &keys {
            match files.remove(k) {
                Some(f) => {
                    s.files.insert(k.clone(), Arc::new(f));
                }
                None => {
                    s.files.remove(k);
                }
            }
        }
        for (seq, _, _) in &fresh {
            s.recent.insert(*seq, now);
            if *seq > s.max_seq {
                s.max_seq = *seq;
            }
        }
        s.slugs = slugs.into_iter().collect();
        let cutoff = now - TimeDelta::seconds(REREAD_SECS * 2);
        s.recent.retain(|_, at| *at >= cutoff);
        Ok(keys.len())
    }

    fn prune(&self, now: NaiveDateTime) -> Result<()> {
        let mut s = self.state.write().map_err(|_| poisoned())?;
        let cutoff = now - TimeDelta::seconds(REREAD_SECS * 2);
        s.recent.retain(|_, at| *at >= cutoff);
        Ok(())
    }
}

fn changes_here() -> &'static tokio::sync::Notify {
    static N: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    N.get_or_init(tokio::sync::Notify::new)
}

/// Called by [`crate::exposure`] when a transaction of this process changed the set: the
/// follower looks at once (and a few times shortly after, as the transaction may not have
/// committed at the first look) instead of at its next period.
pub fn changed_in_this_process() {
    changes_here().notify_one();
}

/// Pauses of the quick looks after a change made in this process, in milliseconds.
const QUICK_LOOKS_MS: [u64; 5] = [0, 2, 5, 10, 25];

/// Starts this process's follower of the change log (every `delivery.cache_poll_ms`, and at
/// once after a change made in this process).
pub fn spawn(deps: Arc<Deps>) {
    let every = Duration::from_millis(deps.config.delivery.cache_poll_ms.max(10));
    tokio::spawn(async move {
        loop {
            let now = deps.clock.now();
            if let Err(e) = deps.allowed.poll(&deps.pool, now).await {
                tracing::warn!(error = %e, "following the allowed set's change log");
            }
            let woken = tokio::select! {
                () = tokio::time::sleep(every) => false,
                () = changes_here().notified() => true,
            };
            if woken {
                for pause in QUICK_LOOKS_MS {
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    match deps.allowed.poll(&deps.pool, deps.clock.now()).await {
                        Ok(n) if n > 0 => break,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "following the allowed set's change log");
                            break;
                        }
                    }
                }
            }
        }
    });
}

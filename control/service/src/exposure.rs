//! (PUBLISHING) The allowed set: every file's compliance per channel today, materialised in
//! `asset_exposure` and kept current in the transaction of every change that can move it (a
//! consent recorded, signed, withdrawn; a face confirmed or unlinked; a legal basis; a person
//! changed or erased; a new version), and by the scheduler for what time alone changes (a
//! consent starting or ending, a notice period beginning, a minor coming of age).
//!
//! Its changes are the events the outside world hears about: `asset.hidden` (a channel stopped
//! being allowed, with the reasons), `asset.allowed` (allowed again) and `asset.expiring` (the
//! notice period began), recorded with [`crate::events::record`] in the same transaction, and a
//! row in `exposure_changes`, the log that every process's in-memory copy
//! ([`crate::allowed::AllowedSet`]) follows.
//!
//! The first computation of a file (an upload, or files that existed before this table) records
//! no event: there was nothing to tell a CMS about yet.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use likeness_control_domain::compliance::{AssetFacts, Verdict, evaluate_all};
use likeness_control_domain::{ComplianceStatus, FaceStatus, TenantSettings};
use serde::Serialize;
use serde_json::json;

use crate::Deps;
use crate::db::{self, DbConn};
use crate::error::Result;
use crate::events;
use crate::schema::{asset_exposure, assets, exposure_changes, faces};

/// Event kind: a file stopped being allowed on one or more channels.
pub const ASSET_HIDDEN: &str = "asset.hidden";
/// Event kind: a file became allowed again on one or more channels.
pub const ASSET_ALLOWED: &str = "asset.allowed";
/// Event kind: a file's approval on one or more channels entered the tenant's notice period.
pub const ASSET_EXPIRING: &str = "asset.expiring";

/// The surrogate key of a file's delivered renditions (`Surrogate-Key` header, and the key a
/// CDN purges on `asset.hidden`).
pub fn surrogate_key(asset_id: &str) -> String {
    format!("asset-{asset_id}")
}

/// Largest `IN (...)` list sent at once.
const CHUNK: usize = 500;

/// One stored row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = asset_exposure)]
pub struct ExposureRow {
    /// Tenant.
    pub tenant_id: String,
    /// Asset.
    pub asset_id: String,
    /// Channel.
    pub channel: String,
    /// Whether the file may be used on the channel today.
    pub allowed: bool,
    /// The compliance status (`approved`, `expiring`, `withdrawn`, ...).
    pub status: String,
    /// The last day it stays allowed under the current facts.
    pub allowed_until: Option<NaiveDate>,
    /// The reasons (JSON array of the engine's reasons, persons by pseudonym).
    pub reasons_json: String,
    /// The `allowed_until` whose `asset.expiring` event was recorded.
    pub expiring_announced_until: Option<NaiveDate>,
    /// The first day the verdict may change without a write.
    pub next_check_on: Option<NaiveDate>,
    /// The asset's version when computed.
    pub asset_version: i32,
    /// When computed.
    pub updated_at: NaiveDateTime,
}

/// A channel in an `asset.*` event.
#[derive(Debug, Clone, Serialize)]
struct ChannelChange {
    channel: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<EventReason>,
}

/// A reason in an event: codes and ids only (no names).
#[derive(Debug, Clone, Serialize)]
struct EventReason {
    code: ComplianceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    person_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement_id: Option<String>,
}

/// What a refresh changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    /// Files computed.
    pub assets: usize,
    /// Files whose allowed set changed (a row in `exposure_changes` each).
    pub changed: usize,
    /// Events recorded.
    pub events: usize,
}

impl RefreshReport {
    fn add(&mut self, o: RefreshReport) {
        self.assets += o.assets;
        self.changed += o.changed;
        self.events += o.events;
    }
}

/// The files a person is confirmed on (a face of theirs with status `confirmed`).
pub fn assets_of_person(
    conn: &mut DbConn,
    tenant_id: &str,
    person_id: &str,
) -> Result<Vec<String>> {
    let mut ids: Vec<String> = faces::table
        .filter(faces::tenant_id.eq(tenant_id))
        .filter(faces::person_id.eq(person_id))
        .filter(faces::status.eq(FaceStatus::Confirmed.as_str()))
        .select(faces::asset_id)
        .distinct()
        .load(conn)?;
    ids.sort();
    Ok(ids)
}

/// Recomputes the files a person is confirmed on; see [`refresh_assets`]. Call inside the
/// transaction of the change.
pub fn refresh_person(
    conn: &mut DbConn,
    tenant_id: &str,
    person_id: &str,
    now: NaiveDateTime,
) -> Result<RefreshReport> {
    let ids = assets_of_person(conn, tenant_id, person_id)?;
    refresh_assets(conn, tenant_id, &ids, now)
}

/// Recomputes the compliance of `asset_ids` (of `tenant_id`) on `now`'s date for every channel
/// of the tenant, stores it, records the `asset.*` events of what changed and logs the change
/// for the processes' caches. Files that no longer exist lose their rows (and are logged).
/// Call inside the transaction of the change that caused it.
pub fn refresh_assets(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_ids: &[String],
    now: NaiveDateTime,
) -> Result<RefreshReport> {
    let mut report = RefreshReport::default();
    if asset_ids.is_empty() {
        return Ok(report);
    }
    let settings = crate::settings::get(conn, tenant_id)?;
    let mut ids: Vec<String> = asset_ids.to_vec();
    ids.sort();
    ids.dedup();
    for chunk in ids.chunks(CHUNK) {
        report.add(refresh_chunk(conn, tenant_id, chunk, now, &settings)?);
    }
    Ok(report)
}

fn refresh_chunk(
    conn: &mut DbConn,
    tenant_id: &str,
    ids: &[String],
    now: NaiveDateTime,
    settings: &TenantSettings,
) -> Result<RefreshReport> {
    let today = now.date();
    // The old rows first: deleting them takes their row locks, so two transactions changing
    // one file run one after the other and record their events in commit order.
    let old_rows: Vec<ExposureRow> = asset_exposure::table
        .filter(asset_exposure::tenant_id.eq(tenant_id))
        .filter(asset_exposure::asset_id.eq_any(ids))
        .select(ExposureRow::as_select())
        .load(conn)?;
    diesel::delete(
        asset_exposure::table
            .filter(asset_exposure::tenant_id.eq(tenant_id))
            .filter(asset_exposure::asset_id.eq_any(ids)),
    )
    .execute(conn)?;
    let mut old: HashMap<&str, HashMap<&str, &ExposureRow>> = HashMap::new();
    for r in &old_rows {
        old.entry(r.asset_id.as_str())
            .or_default()
            .insert(r.channel.as_str(), r);
    }
    let versions: HashMap<String, i32> = assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(assets::id.eq_any(ids))
        .select((assets::id, assets::current_version))
        .load::<(String, i32)>(conn)?
        .into_iter()
        .collect();
    let loaded = crate::compliance::load_facts(conn, tenant_id, ids, false)?;
    let mut report = RefreshReport::default();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut new_rows: Vec<ExposureRow> = Vec::new();
    let mut changed_assets: Vec<String> = Vec::new();
    for a in &loaded {
        seen.insert(a.id.as_str());
        report.assets += 1;
        let version = versions.get(&a.id).copied().unwrap_or(1);
        let verdicts = evaluate_all(&a.facts, today, settings);
        let next = next_check(&a.facts, &verdicts, today, settings);
        let before = old.get(a.id.as_str());
        let first = before.is_none();
        let (mut hidden, mut allowed, mut expiring) = (Vec::new(), Vec::new(), Vec::new());
        let mut differs = before.map(|b| b.len() != verdicts.len()).unwrap_or(true);
        for v in &verdicts {
            let prev = before.and_then(|b| b.get(v.channel.as_str())).copied();
            let was_allowed = prev.map(|p| p.allowed).unwrap_or(false);
            let mut announced = prev.and_then(|p| p.expiring_announced_until);
            if !first {
                if was_allowed && !v.allowed {
                    hidden.push(change(v));
                } else if !was_allowed && v.allowed {
                    allowed.push(change(v));
                }
            }
            if v.allowed && v.status == ComplianceStatus::Expiring {
                if announced != v.until {
                    expiring.push(change(v));
                    announced = v.until;
                }
            } else if !v.allowed {
                announced = None;
            }
            match prev {
                Some(p)
                    if p.allowed == v.allowed
                        && p.allowed_until == v.until
                        && p.asset_version == version => {}
                _ => differs = true,
            }
            new_rows.push(ExposureRow {
                tenant_id: tenant_id.to_string(),
                asset_id: a.id.clone(),
                channel: v.channel.clone(),
                allowed: v.allowed,
                status: v.status.as_str().to_string(),
                allowed_until: v.until,
                reasons_json: serde_json::to_string(&v.reasons)?,
                expiring_announced_until: announced,
                next_check_on: next,
                asset_version: version,
                updated_at: now,
            });
        }
        if differs {
            changed_assets.push(a.id.clone());
        }
        let key = surrogate_key(&a.id);
        for (kind, channels) in [
            (ASSET_HIDDEN, hidden),
            (ASSET_ALLOWED, allowed),
            (ASSET_EXPIRING, expiring),
        ] {
            if channels.is_empty() {
                continue;
            }
            events::record(
                conn,
                tenant_id,
                kind,
                "asset",
                &a.id,
                json!({
                    "asset_id": a.id,
                    "filename": a.filename,
                    "date": today,
                    "channels": channels,
                    "surrogate_key": key,
                }),
                now,
            )?;
            report.events += 1;
        }
    }
    // Files gone (deleted): their rows were removed above; the caches must drop them.
    for id in ids {
        if !seen.contains(id.as_str()) && old.contains_key(id.as_str()) {
            changed_assets.push(id.clone());
        }
    }
    for row in &new_rows {
        diesel::insert_into(asset_exposure::table)
            .values(row)
            .execute(conn)?;
    }
    for id in &changed_assets {
        diesel::insert_into(exposure_changes::table)
            .values((
                exposure_changes::tenant_id.eq(tenant_id),
                exposure_changes::asset_id.eq(id),
                exposure_changes::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    report.changed = changed_assets.len();
    if report.changed > 0 {
        crate::allowed::changed_in_this_process();
    }
    Ok(report)
}

fn change(v: &Verdict) -> ChannelChange {
    ChannelChange {
        channel: v.channel.clone(),
        status: v.status.as_str().to_string(),
        until: v.until,
        reasons: v
            .reasons
            .iter()
            .map(|r| EventReason {
                code: r.code,
                person_id: r.person_id.clone(),
                agreement_id: r.agreement_id.clone(),
            })
            .collect(),
    }
}

/// The first day after `today` on which the verdicts may change with no write: an agreement
/// starting, ending (the day after its last), a notice period beginning, a person coming of
/// age.
fn next_check(
    facts: &AssetFacts,
    verdicts: &[Verdict],
    today: NaiveDate,
    settings: &TenantSettings,
) -> Option<NaiveDate> {
    let mut candidates: Vec<NaiveDate> = Vec::new();
    let notice = TimeDelta::days(i64::from(settings.notice_days));
    for p in &facts.persons {
        for a in &p.agreements {
            candidates.push(a.valid_from);
            if let Some(u) = a.valid_until {
                candidates.push(u + TimeDelta::days(1));
                candidates.push(u - notice);
            }
        }
        if let Some(dob) = p.date_of_birth {
            let years = i32::try_from(settings.age_threshold).unwrap_or(i32::MAX);
            if let Some(adult) = dob.with_year(dob.year().saturating_add(years)).or_else(|| {
                // 29 February: of age on 1 March.
                NaiveDate::from_ymd_opt(dob.year().saturating_add(years), 3, 1)
            }) {
                candidates.push(adult);
            }
        }
    }
    for v in verdicts {
        if let Some(u) = v.until {
            candidates.push(u + TimeDelta::days(1));
            candidates.push(u - notice);
        }
    }
    candidates.into_iter().filter(|d| *d > today).min()
}

/// Drops the rows of a deleted file and logs it for the caches; records `asset.hidden` for the
/// channels it was allowed on (reason `deleted`). Call inside the deletion's transaction.
pub fn forget_asset(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_id: &str,
    now: NaiveDateTime,
) -> Result<()> {
    let rows: Vec<ExposureRow> = asset_exposure::table
        .filter(asset_exposure::tenant_id.eq(tenant_id))
        .filter(asset_exposure::asset_id.eq(asset_id))
        .select(ExposureRow::as_select())
        .load(conn)?;
    if rows.is_empty() {
        return Ok(());
    }
    diesel::delete(
        asset_exposure::table
            .filter(asset_exposure::tenant_id.eq(tenant_id))
            .filter(asset_exposure::asset_id.eq(asset_id)),
    )
    .execute(conn)?;
    let channels: Vec<serde_json::Value> = rows
        .iter()
        .filter(|r| r.allowed)
        .map(|r| json!({"channel": r.channel, "status": "deleted"}))
        .collect();
    if !channels.is_empty() {
        events::record(
            conn,
            tenant_id,
            ASSET_HIDDEN,
            "asset",
            asset_id,
            json!({
                "asset_id": asset_id,
                "date": now.date(),
                "channels": channels,
                "deleted": true,
                "surrogate_key": surrogate_key(asset_id),
            }),
            now,
        )?;
    }
    diesel::insert_into(exposure_changes::table)
        .values((
            exposure_changes::tenant_id.eq(tenant_id),
            exposure_changes::asset_id.eq(asset_id),
            exposure_changes::created_at.eq(now),
        ))
        .execute(conn)?;
    crate::allowed::changed_in_this_process();
    Ok(())
}

/// Marks every file of a tenant for recomputation at the next scheduler tick (after a change
/// of its settings: channels, notice period, age of majority).
pub fn recheck_tenant(conn: &mut DbConn, tenant_id: &str, today: NaiveDate) -> Result<usize> {
    Ok(
        diesel::update(asset_exposure::table.filter(asset_exposure::tenant_id.eq(tenant_id)))
            .set(asset_exposure::next_check_on.eq(Some(today)))
            .execute(conn)?,
    )
}

/// Files due for recomputation on `today` (their `next_check_on` has come), and files never
/// computed, at most `limit`, as `(tenant, asset)`.
pub fn due(conn: &mut DbConn, today: NaiveDate, limit: i64) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = asset_exposure::table
        .filter(asset_exposure::next_check_on.le(today))
        .select((asset_exposure::tenant_id, asset_exposure::asset_id))
        .distinct()
        .limit(limit)
        .load(conn)?;
    let room = limit - i64::try_from(out.len()).unwrap_or(limit);
    if room > 0 {
        let never: Vec<(String, String)> = assets::table
            .left_join(
                asset_exposure::table.on(asset_exposure::tenant_id
                    .eq(assets::tenant_id)
                    .and(asset_exposure::asset_id.eq(assets::id))),
            )
            .filter(asset_exposure::asset_id.is_null())
            .select((assets::tenant_id, assets::id))
            .limit(room)
            .load(conn)?;
        out.extend(never);
    }
    Ok(out)
}

/// Files recomputed per transaction by the scheduler.
const TICK_BATCH: i64 = 200;

/// The scheduler's part: recomputes every due file ([`due`]) in batches, each in its own
/// transaction, until none is left. Idempotent; several processes may run it at once.
pub async fn tick(deps: &Deps) -> Result<RefreshReport> {
    let mut total = RefreshReport::default();
    for _ in 0..10_000 {
        let now = deps.clock.now();
        let batch = db::run(&deps.pool, move |c| {
            let due = due(c, now.date(), TICK_BATCH)?;
            let n = due.len();
            let mut by_tenant: HashMap<String, Vec<String>> = HashMap::new();
            for (t, a) in due {
                by_tenant.entry(t).or_default().push(a);
            }
            let mut report = RefreshReport::default();
            for (t, ids) in by_tenant {
                report.add(db::write_tx(c, |c| refresh_assets(c, &t, &ids, now))?);
            }
            Ok((n, report))
        })
        .await?;
        let (due_n, report) = batch;
        let done = due_n < usize::try_from(TICK_BATCH).unwrap_or(usize::MAX) || report.assets == 0;
        total.add(report);
        if done {
            break;
        }
    }
    Ok(total)
}

/// An asset's stored rows (every channel), for pages and tests.
pub fn rows_of(conn: &mut DbConn, tenant_id: &str, asset_id: &str) -> Result<Vec<ExposureRow>> {
    Ok(asset_exposure::table
        .filter(asset_exposure::tenant_id.eq(tenant_id))
        .filter(asset_exposure::asset_id.eq(asset_id))
        .order(asset_exposure::channel.asc())
        .select(ExposureRow::as_select())
        .load(conn)?)
}

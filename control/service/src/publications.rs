//! (PUBLISHING) Publications: where a CMS placed a file (channel, URL or page id, when, by
//! whom) and when it removed it; the history per file and per person ("where is my face
//! used"); and the use check a CMS calls at placement time: may this file be used on this
//! channel on this date, and if not, why.
//!
//! The use check for today reads the materialised compliance ([`crate::exposure::rows_of`]):
//! the same answer the delivery endpoint gives. Another date is evaluated from the facts
//! ([`crate::compliance::load_facts`] and the domain's engine). A placement of a file that is
//! not allowed is recorded all the same (the CMS decided), and the answer says so.
//!
//! Permissions: recording and removing need `manage_assets`; the publications of a file and
//! the use check, any user of the tenant; the publications of a person need `see_persons`.
//! Persons appear in reasons by name only as [`crate::persons::shows_real_names`] allows, and
//! a read that names persons is audited.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use likeness_control_domain::compliance::{Reason, evaluate};
use likeness_control_domain::{ComplianceStatus, FaceStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{self, Who};
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::pagination::{Page, PageQuery, Paginated};
use crate::roles::Permission;
use crate::schema::{assets, faces, persons, publications, tenants};

/// Longest `location` (a URL or a page id).
pub const MAX_LOCATION: usize = 2000;
/// Longest `placed_by` / `removed_by`.
pub const MAX_BY: usize = 200;
/// Publications shown on a file's or a person's console page (the most recent).
pub const SHOWN_ON_PAGES: i64 = 20;

/// A placement reported by a CMS.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPublication {
    /// The file placed.
    pub asset_id: String,
    /// The channel it is used on (one of the tenant's channels).
    pub channel: String,
    /// Where: a URL or the CMS's page id (at most 2000 characters).
    pub location: String,
    /// When it was placed (RFC 3339; default now; not in the future).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub placed_at: Option<String>,
    /// By whom (free text; default the caller's name).
    #[serde(default)]
    pub placed_by: Option<String>,
}

/// The removal of a placement.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Removal {
    /// When it was removed (RFC 3339; default now; not in the future, not before the
    /// placement).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub removed_at: Option<String>,
    /// By whom (free text; default the caller's name).
    #[serde(default)]
    pub removed_by: Option<String>,
}

/// A publication.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PublicationOut {
    /// ID.
    pub id: String,
    /// The file.
    pub asset_id: String,
    /// The file's name (none when the file was deleted since).
    pub filename: Option<String>,
    /// The channel.
    pub channel: String,
    /// A URL or the CMS's page id.
    pub location: String,
    /// When it was placed (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub placed_at: NaiveDateTime,
    /// By whom.
    pub placed_by: String,
    /// When it was removed (UTC); none while it is in use.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc::option")]
    pub removed_at: Option<NaiveDateTime>,
    /// By whom it was removed.
    pub removed_by: Option<String>,
    /// Whether it is in use (not removed).
    pub active: bool,
    /// Who reported it (the user or token).
    pub recorded_by: String,
    /// When it was reported (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
}

/// A placement as recorded, with the use check of its channel today: a file that is not
/// allowed is recorded all the same (the CMS decided), `allowed: false` says so.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacementOut {
    /// The publication recorded.
    pub publication: PublicationOut,
    /// Whether the file may be used on the channel today.
    pub allowed: bool,
    /// The compliance status on the channel today.
    pub status: ComplianceStatus,
    /// Why it is not allowed (or why it is expiring).
    pub reasons: Vec<UseReason>,
}

/// One reason of a use check.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UseReason {
    /// The status this reason leads to.
    pub code: ComplianceStatus,
    /// A readable explanation (persons by pseudonym unless the caller may see names).
    pub message: String,
    /// The person concerned (only for callers with `see_persons`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// The agreement concerned (only for callers with `see_persons`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_id: Option<String>,
}

/// The answer of a use check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UseCheckOut {
    /// The file.
    pub asset_id: String,
    /// The channel.
    pub channel: String,
    /// The date checked.
    pub date: NaiveDate,
    /// Whether the file may be used on the channel on that date.
    pub allowed: bool,
    /// The compliance status (`approved`, `expiring`, `withdrawn`, ...).
    pub status: ComplianceStatus,
    /// The last day it stays allowed under the current facts (none: no end, or not allowed).
    pub until: Option<NaiveDate>,
    /// Why it is not allowed (or expiring), worst first.
    pub reasons: Vec<UseReason>,
    /// The delivery URL of the file on that channel (the `large.jpg` rendition of an image,
    /// else `original`; other renditions by replacing the last segment), when allowed.
    pub delivery_url: Option<String>,
}

/// Query of a use check.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UseCheckQuery {
    /// The channel (required; one of the tenant's channels).
    pub channel: Option<String>,
    /// The date, `YYYY-MM-DD` (default today, UTC).
    pub date: Option<String>,
}

/// Filters of the publication list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PublicationQuery {
    /// Only this file's.
    pub asset_id: Option<String>,
    /// Only those of files this person is confirmed on (needs `see_persons`).
    pub person_id: Option<String>,
    /// Only this channel's.
    pub channel: Option<String>,
    /// `true`: only those in use; `false`: only removed ones.
    #[param(value_type = Option<bool>)]
    pub active: Option<String>,
    /// Page number, from 1 (default 1).
    pub page: Option<i64>,
    /// Items per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
}

/// Page parameters of a file's or a person's publications.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageOnly {
    /// Page number, from 1 (default 1).
    pub page: Option<i64>,
    /// Items per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
}

impl PageOnly {
    /// The validated page.
    pub fn page(&self) -> Result<Page> {
        PageQuery {
            page: self.page,
            per_page: self.per_page,
            sort: None,
        }
        .page()
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = publications)]
struct Row {
    id: String,
    asset_id: String,
    channel: String,
    location: String,
    placed_at: NaiveDateTime,
    placed_by: String,
    removed_at: Option<NaiveDateTime>,
    removed_by: Option<String>,
    recorded_by: String,
    created_at: NaiveDateTime,
}

fn out(row: Row, filenames: &HashMap<String, String>) -> PublicationOut {
    PublicationOut {
        filename: filenames.get(&row.asset_id).cloned(),
        active: row.removed_at.is_none(),
        id: row.id,
        asset_id: row.asset_id,
        channel: row.channel,
        location: row.location,
        placed_at: row.placed_at,
        placed_by: row.placed_by,
        removed_at: row.removed_at,
        removed_by: row.removed_by,
        recorded_by: row.recorded_by,
        created_at: row.created_at,
    }
}

fn outs(conn: &mut DbConn, tenant_id: &str, rows: Vec<Row>) -> Result<Vec<PublicationOut>> {
    let mut ids: Vec<String> = rows.iter().map(|r| r.asset_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let filenames: HashMap<String, String> = assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(assets::id.eq_any(&ids))
        .select((assets::id, assets::filename))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    Ok(rows.into_iter().map(|r| out(r, &filenames)).collect())
}

/// Whether `s` can be an id (PostgreSQL refuses NUL bytes in text: such ids are answered
/// before any query).
pub(crate) fn plausible_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 200 && !s.chars().any(char::is_control)
}

fn timestamp(field: &str, s: Option<&str>, now: NaiveDateTime) -> Result<NaiveDateTime> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(now),
        Some(s) => {
            let t = likeness_control_domain::time::parse_utc(s)
                .map_err(|e| ControlError::invalid(field, e))?;
            if t > now + chrono::TimeDelta::minutes(5) {
                return Err(ControlError::invalid(field, "must not be in the future"));
            }
            Ok(t)
        }
    }
}

fn by(field: &str, s: Option<&str>, default: &str) -> Result<String> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default.to_string()),
        Some(s) if s.chars().count() > MAX_BY => Err(ControlError::invalid(
            field,
            format!("at most {MAX_BY} characters"),
        )),
        Some(s) if s.chars().any(char::is_control) => Err(ControlError::invalid(
            field,
            "must not contain control characters",
        )),
        Some(s) => Ok(s.to_string()),
    }
}

fn parse_date(s: Option<&str>, today: NaiveDate) -> Result<NaiveDate> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(today),
        Some(s) => s.parse::<NaiveDate>().map_err(|_| {
            ControlError::invalid("date", format!("{s:?} is not a date (YYYY-MM-DD)"))
        }),
    }
}

fn require_asset(conn: &mut DbConn, tenant_id: &str, asset_id: &str) -> Result<(String, String)> {
    if !plausible_id(asset_id) {
        return Err(ControlError::not_found("asset"));
    }
    assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(assets::id.eq(asset_id))
        .select((assets::filename, assets::kind))
        .first::<(String, String)>(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("asset"))
}

fn require_person(conn: &mut DbConn, tenant_id: &str, person_id: &str) -> Result<()> {
    if !plausible_id(person_id) {
        return Err(ControlError::not_found("person"));
    }
    let n: i64 = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::id.eq(person_id))
        .filter(persons::deleted_at.is_null())
        .count()
        .get_result(conn)?;
    if n == 0 {
        return Err(ControlError::not_found("person"));
    }
    Ok(())
}

fn load_row(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<Row> {
    if !plausible_id(id) {
        return Err(ControlError::not_found("publication"));
    }
    publications::table
        .filter(publications::tenant_id.eq(tenant_id))
        .filter(publications::id.eq(id))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("publication"))
}

/// Records a placement (in the caller's transaction) and audits it.
pub fn record(conn: &mut DbConn, ctx: &Ctx, new: NewPublication) -> Result<PublicationOut> {
    let (t, now) = (ctx.tenant(), ctx.now);
    let asset_id = new.asset_id.trim().to_string();
    if asset_id.is_empty() {
        return Err(ControlError::invalid("asset_id", "required"));
    }
    let s = crate::settings::get(conn, t)?;
    s.check_channel("channel", new.channel.trim())?;
    let location = new.location.trim().to_string();
    if location.is_empty() {
        return Err(ControlError::invalid(
            "location",
            "required (a URL or a page id)",
        ));
    }
    if location.chars().count() > MAX_LOCATION {
        return Err(ControlError::invalid(
            "location",
            format!("at most {MAX_LOCATION} characters"),
        ));
    }
    if location.chars().any(char::is_control) {
        return Err(ControlError::invalid(
            "location",
            "must not contain control characters",
        ));
    }
    let placed_at = timestamp("placed_at", new.placed_at.as_deref(), now)?;
    let placed_by = by("placed_by", new.placed_by.as_deref(), &ctx.actor.label)?;
    let (filename, _) = require_asset(conn, t, &asset_id)?;
    let id = db::new_id();
    let row = Row {
        id: id.clone(),
        asset_id: asset_id.clone(),
        channel: new.channel.trim().to_string(),
        location,
        placed_at,
        placed_by,
        removed_at: None,
        removed_by: None,
        recorded_by: ctx.actor.label.clone(),
        created_at: now,
    };
    diesel::insert_into(publications::table)
        .values((
            publications::id.eq(&row.id),
            publications::tenant_id.eq(t),
            publications::asset_id.eq(&row.asset_id),
            publications::channel.eq(&row.channel),
            publications::location.eq(&row.location),
            publications::placed_at.eq(row.placed_at),
            publications::placed_by.eq(&row.placed_by),
            publications::recorded_by.eq(&row.recorded_by),
            publications::created_at.eq(now),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        &ctx.who(),
        "publication.create",
        "publication",
        Some(&id),
        serde_json::json!({
            "asset_id": row.asset_id,
            "channel": row.channel,
            "location": row.location,
            "placed_at": likeness_control_domain::time::format_utc(&row.placed_at),
        }),
    )?;
    let filenames = HashMap::from([(asset_id, filename)]);
    Ok(out(row, &filenames))
}

/// Records the removal of a placement (in the caller's transaction); a second removal is a
/// 409 `already_removed`.
pub fn remove(conn: &mut DbConn, ctx: &Ctx, id: &str, removal: Removal) -> Result<PublicationOut> {
    let (t, now) = (ctx.tenant(), ctx.now);
    let row = load_row(conn, t, id)?;
    let removed_at = timestamp("removed_at", removal.removed_at.as_deref(), now)?;
    if removed_at < row.placed_at {
        return Err(ControlError::invalid(
            "removed_at",
            "must not be before the placement (placed_at)",
        ));
    }
    let removed_by = by(
        "removed_by",
        removal.removed_by.as_deref(),
        &ctx.actor.label,
    )?;
    let n = diesel::update(
        publications::table
            .filter(publications::tenant_id.eq(t))
            .filter(publications::id.eq(id))
            .filter(publications::removed_at.is_null()),
    )
    .set((
        publications::removed_at.eq(Some(removed_at)),
        publications::removed_by.eq(Some(&removed_by)),
    ))
    .execute(conn)?;
    if n == 0 {
        return Err(ControlError::Conflict {
            code: "already_removed",
            message: format!("publication {id} was removed already"),
        });
    }
    audit::record(
        conn,
        &ctx.who(),
        "publication.remove",
        "publication",
        Some(id),
        serde_json::json!({
            "asset_id": row.asset_id,
            "removed_at": likeness_control_domain::time::format_utc(&removed_at),
        }),
    )?;
    let row = load_row(conn, t, id)?;
    outs(conn, t, vec![row]).map(|mut v| v.remove(0))
}

/// The validated filter of [`list`].
#[derive(Debug, Clone)]
pub struct Filter {
    /// Only this file's.
    pub asset_id: Option<String>,
    /// Only those of files this person is confirmed on.
    pub person_id: Option<String>,
    /// Only this channel's.
    pub channel: Option<String>,
    /// In use / removed.
    pub active: Option<bool>,
    /// The page.
    pub page: Page,
}

impl PublicationQuery {
    /// The validated filter.
    pub fn filter(self) -> Result<Filter> {
        let page = PageQuery {
            page: self.page,
            per_page: self.per_page,
            sort: None,
        }
        .page()?;
        let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let asset_id = clean(self.asset_id);
        if asset_id.as_deref().is_some_and(|a| !plausible_id(a)) {
            return Err(ControlError::invalid("asset_id", "not an id"));
        }
        Ok(Filter {
            asset_id,
            person_id: clean(self.person_id),
            channel: clean(self.channel),
            active: match self.active.as_deref().map(str::trim) {
                None | Some("") => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(other) => {
                    return Err(ControlError::invalid(
                        "active",
                        format!("must be true or false (got {other:?})"),
                    ));
                }
            },
            page,
        })
    }
}

/// The tenant's publications matching `f`, newest placement first.
pub fn list(conn: &mut DbConn, tenant_id: &str, f: &Filter) -> Result<Paginated<PublicationOut>> {
    let query = || {
        let mut q = publications::table
            .filter(publications::tenant_id.eq(tenant_id))
            .into_boxed();
        if let Some(a) = &f.asset_id {
            q = q.filter(publications::asset_id.eq(a.clone()));
        }
        if let Some(c) = &f.channel {
            q = q.filter(publications::channel.eq(c.clone()));
        }
        match f.active {
            Some(true) => q = q.filter(publications::removed_at.is_null()),
            Some(false) => q = q.filter(publications::removed_at.is_not_null()),
            None => {}
        }
        if let Some(p) = &f.person_id {
            q = q.filter(
                publications::asset_id.eq_any(
                    faces::table
                        .filter(faces::tenant_id.eq(tenant_id))
                        .filter(faces::person_id.eq(p.clone()))
                        .filter(faces::status.eq(FaceStatus::Confirmed.as_str()))
                        .select(faces::asset_id),
                ),
            );
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    let rows: Vec<Row> = query()
        .order((publications::placed_at.desc(), publications::id.desc()))
        .limit(f.page.per_page)
        .offset(f.page.offset())
        .select(Row::as_select())
        .load(conn)?;
    Ok(Paginated {
        items: outs(conn, tenant_id, rows)?,
        total,
        page: f.page.page,
        per_page: f.page.per_page,
    })
}

fn tenant_slug(conn: &mut DbConn, tenant_id: &str) -> Result<String> {
    Ok(tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::slug)
        .first(conn)?)
}

/// The base of public URLs (`[delivery] public_base_url`, else `[signing] public_base_url`).
pub fn public_base(cfg: &crate::Config) -> String {
    let d = cfg.delivery.public_base_url.trim();
    let base = if d.is_empty() {
        cfg.signing.public_base_url.trim()
    } else {
        d
    };
    base.trim_end_matches('/').to_string()
}

/// The delivery URL of a file on a channel (see [`UseCheckOut::delivery_url`]).
pub fn delivery_url(base: &str, slug: &str, asset_id: &str, kind: &str, channel: &str) -> String {
    let rendition = if kind == "image" {
        "large.jpg"
    } else {
        "original"
    };
    format!("{base}/d/{slug}/{asset_id}/{channel}/{rendition}")
}

/// The use check of a file on a channel and date (see the module). Opens its own transaction
/// for the audit entry when persons are named: do not call inside one.
pub fn use_check(
    conn: &mut DbConn,
    ctx: &Ctx,
    asset_id: &str,
    channel: &str,
    date: NaiveDate,
) -> Result<UseCheckOut> {
    let t = ctx.tenant();
    let s = crate::settings::get(conn, t)?;
    s.check_channel("channel", channel)?;
    let (_, kind) = require_asset(conn, t, asset_id)?;
    let names = crate::persons::shows_real_names(&ctx.actor, &s);
    let see = ctx.has(Permission::SeePersons);
    let stored = if date == ctx.today() {
        // A row the scheduler has not recomputed yet today (its `next_check_on` has come) is
        // stale: evaluated instead, as the in-memory set honours the last day before the tick.
        crate::exposure::rows_of(conn, t, asset_id)?
            .into_iter()
            .find(|r| r.channel == channel)
            .filter(|r| r.next_check_on.is_none_or(|d| d > date))
    } else {
        None
    };
    let (allowed, status, until, mut reasons) = match stored {
        Some(r) => {
            let reasons: Vec<Reason> = serde_json::from_str(&r.reasons_json)?;
            let status: ComplianceStatus = r.status.parse()?;
            (r.allowed, status, r.allowed_until, reasons)
        }
        None => {
            let loaded = crate::compliance::load_facts(conn, t, &[asset_id.to_string()], names)?;
            let a = loaded
                .into_iter()
                .next()
                .ok_or_else(|| ControlError::not_found("asset"))?;
            let v = evaluate(&a.facts, channel, date, &s);
            (v.allowed, v.status, v.until, v.reasons)
        }
    };
    if names {
        name_persons(conn, t, &mut reasons)?;
    }
    let names_someone = see && reasons.iter().any(|r| r.person_id.is_some());
    let reasons: Vec<UseReason> = reasons
        .into_iter()
        .map(|r| UseReason {
            code: r.code,
            message: r.message,
            person_id: r.person_id.filter(|_| see),
            agreement_id: r.agreement_id.filter(|_| see),
        })
        .collect();
    let delivery_url = if allowed {
        let slug = tenant_slug(conn, t)?;
        Some(delivery_url(
            &public_base(&ctx.deps.config),
            &slug,
            asset_id,
            &kind,
            channel,
        ))
    } else {
        None
    };
    if names_someone {
        let who = ctx.who();
        db::write_tx(conn, |c| {
            audit::record(
                c,
                &who,
                "use_check.read",
                "asset",
                Some(asset_id),
                serde_json::json!({ "channel": channel, "date": date }),
            )
            .map(|_| ())
        })?;
    }
    Ok(UseCheckOut {
        asset_id: asset_id.to_string(),
        channel: channel.to_string(),
        date,
        allowed,
        status,
        until,
        reasons,
        delivery_url,
    })
}

/// Replaces the pseudonyms in stored reasons' messages by the persons' names (for readers who
/// may see names; the stored rows name persons by pseudonym).
fn name_persons(conn: &mut DbConn, tenant_id: &str, reasons: &mut [Reason]) -> Result<()> {
    let mut ids: Vec<String> = reasons.iter().filter_map(|r| r.person_id.clone()).collect();
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort();
    ids.dedup();
    let rows: Vec<(String, String)> = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::id.eq_any(&ids))
        .select((persons::id, persons::pseudonym))
        .load(conn)?;
    // Names are sealed (the vault).
    let mut real = crate::persons::names_of(conn, tenant_id, &ids)?;
    let by_id: HashMap<String, (String, String)> = rows
        .into_iter()
        .map(|(id, pseudo)| {
            let name = real.remove(&id).unwrap_or_default();
            (id, (name, pseudo))
        })
        .collect();
    for r in reasons.iter_mut() {
        if let Some((name, pseudo)) = r.person_id.as_ref().and_then(|p| by_id.get(p))
            && !name.trim().is_empty()
            && !pseudo.is_empty()
        {
            r.message = r.message.replace(pseudo.as_str(), name);
        }
    }
    Ok(())
}

fn audit_read(conn: &mut DbConn, who: &Who, person_id: &str, count: usize) -> Result<()> {
    db::write_tx(conn, |c| {
        audit::record(
            c,
            who,
            "publications.person.read",
            "person",
            Some(person_id),
            serde_json::json!({ "count": count }),
        )
        .map(|_| ())
    })
}

// Use cases: each checks its own permissions; parsed inputs are looked at after the checks.

/// Records a placement (`manage_assets`) and answers with the use check of its channel today.
pub async fn record_publication(ctx: &Ctx, new: Result<NewPublication>) -> Result<PlacementOut> {
    ctx.require(Permission::ManageAssets)?;
    let new = new?;
    let ctx2 = ctx.clone();
    let publication = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| record(c, &ctx2, new))
    })
    .await?;
    let ctx3 = ctx.clone();
    let (a, ch) = (publication.asset_id.clone(), publication.channel.clone());
    let check = db::run(&ctx.deps.pool, move |c| {
        use_check(c, &ctx3, &a, &ch, ctx3.today())
    })
    .await?;
    Ok(PlacementOut {
        publication,
        allowed: check.allowed,
        status: check.status,
        reasons: check.reasons,
    })
}

/// Records the removal of a placement (`manage_assets`).
pub async fn remove_publication(
    ctx: &Ctx,
    id: String,
    removal: Result<Removal>,
) -> Result<PublicationOut> {
    ctx.require(Permission::ManageAssets)?;
    let removal = removal?;
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| remove(c, &ctx2, &id, removal))
    })
    .await
}

/// One publication (any user of the tenant).
pub async fn get_publication(ctx: &Ctx, id: String) -> Result<PublicationOut> {
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| {
        let row = load_row(c, &t, &id)?;
        outs(c, &t, vec![row]).map(|mut v| v.remove(0))
    })
    .await
}

/// The tenant's publications, filtered and paged (any user of the tenant; the `person_id`
/// filter needs `see_persons` and is audited).
pub async fn list_publications(
    ctx: &Ctx,
    q: Result<PublicationQuery>,
) -> Result<Paginated<PublicationOut>> {
    let q = q?;
    if q.person_id.is_some() {
        ctx.require(Permission::SeePersons)?;
    }
    let f = q.filter()?;
    let (t, who) = (ctx.tenant().to_string(), ctx.who());
    db::run(&ctx.deps.pool, move |c| {
        if let Some(ch) = &f.channel {
            crate::settings::get(c, &t)?.check_channel("channel", ch)?;
        }
        if let Some(p) = &f.person_id {
            require_person(c, &t, p)?;
        }
        let page = list(c, &t, &f)?;
        if let Some(p) = &f.person_id {
            audit_read(c, &who, p, page.items.len())?;
        }
        Ok(page)
    })
    .await
}

/// A file's publications, newest first (any user of the tenant; 404 for an unknown file with
/// no publication).
pub async fn asset_publications(
    ctx: &Ctx,
    asset_id: String,
    q: Result<PageOnly>,
) -> Result<Paginated<PublicationOut>> {
    let page = q?.page()?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| {
        let f = Filter {
            asset_id: Some(asset_id.clone()),
            person_id: None,
            channel: None,
            active: None,
            page,
        };
        let out = list(c, &t, &f)?;
        if out.total == 0 {
            require_asset(c, &t, &asset_id)?;
        }
        Ok(out)
    })
    .await
}

/// Where a person's face is used: the publications of the files they are confirmed on, newest
/// first (`see_persons`; audited as `publications.person.read`).
pub async fn person_publications(
    ctx: &Ctx,
    person_id: String,
    q: Result<PageOnly>,
) -> Result<Paginated<PublicationOut>> {
    ctx.require(Permission::SeePersons)?;
    let page = q?.page()?;
    let (t, who) = (ctx.tenant().to_string(), ctx.who());
    db::run(&ctx.deps.pool, move |c| {
        require_person(c, &t, &person_id)?;
        let f = Filter {
            asset_id: None,
            person_id: Some(person_id.clone()),
            channel: None,
            active: None,
            page,
        };
        let out = list(c, &t, &f)?;
        audit_read(c, &who, &person_id, out.items.len())?;
        Ok(out)
    })
    .await
}

/// The use check (any user of the tenant): `channel` is required; `date` defaults to today.
pub async fn check_use(
    ctx: &Ctx,
    asset_id: String,
    q: Result<UseCheckQuery>,
) -> Result<UseCheckOut> {
    let q = q?;
    let channel = q
        .channel
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ControlError::invalid("channel", "required (one of the tenant's channels)")
        })?;
    let date = parse_date(q.date.as_deref(), ctx.today())?;
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        use_check(c, &ctx2, &asset_id, &channel, date)
    })
    .await
}

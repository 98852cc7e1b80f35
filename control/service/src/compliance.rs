//! Legal basis per asset and compliance queries: per asset (every channel, a date), per person
//! (every file they appear in, with its status) and filtered lists (assets that are not
//! approved, that lack consent, that expire within N days). Facts are loaded from the database
//! in bulk and evaluated by `likeness_control_domain::compliance`.
//!
//! Reads that show persons' names are audited (`compliance.*.read`); who may not see real names
//! ([`crate::persons::shows_real_names`]: a viewer without `see_persons`, or, in a tenant with
//! pseudonymous names, anyone without `export`) gets pseudonyms in the messages and no audit
//! entry for asset queries.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::prelude::*;
use likeness_control_domain::compliance::evaluate_all;
use likeness_control_domain::{
    AgreementFacts, AssetFacts, ComplianceStatus, FaceFacts, FaceStatus, LegalBasis, PersonFacts,
    TenantSettings, Verdict, evaluate,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::agreements::require_person;
use crate::audit::{self, Who};
use crate::auth::Actor;
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::Permission;
use crate::schema::{agreements, assets, faces, persons};
use crate::settings::{self, domain_error_at};

/// Largest page of a compliance list.
pub const MAX_LIMIT: usize = 500;
/// Most assets one list request evaluates before it returns a continuation cursor.
pub const MAX_SCAN: usize = 5000;
/// Assets loaded and evaluated per database round trip.
const BATCH: usize = 200;
/// Largest `IN (...)` list sent to the database at once.
const CHUNK: usize = 900;

/// A legal basis to set.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalBasisIn {
    /// The basis; `null` clears it.
    pub legal_basis: Option<LegalBasis>,
    /// A note (contract or licence reference, reasoning of a legitimate interest, ...).
    #[serde(default)]
    pub note: Option<String>,
}

/// An asset's legal basis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LegalBasisOut {
    /// The asset.
    pub asset_id: String,
    /// The basis, if set.
    pub legal_basis: Option<LegalBasis>,
    /// The note.
    pub note: Option<String>,
}

/// The compliance of one asset on one date.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetCompliance {
    /// The asset.
    pub asset_id: String,
    /// Its file name.
    pub filename: String,
    /// Its legal basis.
    pub legal_basis: Option<LegalBasis>,
    /// The date evaluated.
    pub date: NaiveDate,
    /// One verdict per channel evaluated.
    pub verdicts: Vec<Verdict>,
}

/// A file a person appears in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonAsset {
    /// The person's confirmed faces on it.
    pub face_ids: Vec<String>,
    /// The asset's compliance (every channel).
    #[serde(flatten)]
    pub compliance: AssetCompliance,
}

/// Every file a person appears in, with its status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonCompliance {
    /// The person.
    pub person_id: String,
    /// The date evaluated.
    pub date: NaiveDate,
    /// The files (newest first).
    pub assets: Vec<PersonAsset>,
}

/// Filter of a compliance list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The channel (default: every channel of the tenant; an asset matches when any channel
    /// matches).
    pub channel: Option<String>,
    /// The date (default today, UTC).
    pub date: Option<NaiveDate>,
    /// Comma-separated statuses to match (e.g. `missing_consent,withdrawn`).
    pub status: Option<String>,
    /// Match only allowed (`true`) or only not allowed (`false`) verdicts.
    pub allowed: Option<bool>,
    /// Match allowed verdicts whose approval ends within this many days (`until <= date + N`).
    pub expiring_within_days: Option<u32>,
    /// Continue after this asset ID (the `next_after` of the previous page).
    pub after: Option<String>,
    /// Items per page, 1..=500 (default 50).
    pub limit: Option<usize>,
}

/// One page of a compliance list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplianceList {
    /// Matching assets with the matching verdicts only.
    pub items: Vec<AssetCompliance>,
    /// Pass as `after` to continue; absent when every asset was looked at.
    pub next_after: Option<String>,
    /// Assets evaluated for this page.
    pub scanned: usize,
}

/// Filter of the list of persons whose consent is lacking.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PersonListQuery {
    /// The channel (default: every channel of the tenant).
    pub channel: Option<String>,
    /// The date (default today, UTC).
    pub date: Option<NaiveDate>,
    /// Comma-separated person-level statuses to match (default
    /// `missing_consent,expired,withdrawn,minor_without_guardian_consent`; `expiring` lists
    /// whose consent ends within the notice period; `never_publish` is accepted too).
    pub status: Option<String>,
    /// Continue after this person ID (the `next_after` of the previous page).
    pub after: Option<String>,
    /// Persons per page, 1..=500 (default 50).
    pub limit: Option<usize>,
}

/// A file in which a person's consent is lacking.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LackingAsset {
    /// The asset.
    pub asset_id: String,
    /// Its file name.
    pub filename: String,
    /// The channels concerned, in the tenant's order.
    pub channels: Vec<String>,
    /// What is lacking (worst first), e.g. `missing_consent`.
    pub statuses: Vec<ComplianceStatus>,
    /// The first reason's message, e.g. "no consent of Ann for print on 2026-11-23".
    pub message: String,
}

/// A person whose consent is lacking for at least one file they are confirmed on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LackingPerson {
    /// The person.
    pub person_id: String,
    /// Name, or pseudonym (tenant setting or a reader without `see_persons`).
    // The rule: `crate::persons::shows_real_names` (with pseudonymous names, `export` sees names).
    pub label: String,
    /// The files concerned (newest asset ID first).
    pub assets: Vec<LackingAsset>,
}

/// One page of persons whose consent is lacking.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LackingList {
    /// The date evaluated.
    pub date: NaiveDate,
    /// Matching persons, in person-ID order.
    pub items: Vec<LackingPerson>,
    /// Pass as `after` to continue; absent when every person was looked at.
    pub next_after: Option<String>,
    /// Persons looked at for this page.
    pub scanned: usize,
}

fn note(s: Option<String>) -> Result<Option<String>> {
    let Some(s) = s else { return Ok(None) };
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let n = t.chars().count();
    if n > crate::agreements::MAX_TEXT_LEN {
        return Err(ControlError::invalid(
            "note",
            format!(
                "must be at most {} characters (got {n})",
                crate::agreements::MAX_TEXT_LEN
            ),
        ));
    }
    Ok(Some(t.to_string()))
}

fn parse_basis(asset_id: &str, s: Option<String>) -> Result<Option<LegalBasis>> {
    s.map(|b| {
        b.parse::<LegalBasis>()
            .map_err(|e| ControlError::Internal(format!("asset {asset_id}: {e}")))
    })
    .transpose()
}

/// Sets (or clears) an asset's legal basis at `now` (the caller's clock). Audited as
/// `asset.legal_basis`. Call inside [`crate::db::write_tx`].
pub fn set_legal_basis(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    asset_id: &str,
    input: LegalBasisIn,
    now: chrono::NaiveDateTime,
) -> Result<LegalBasisOut> {
    let old: Option<(Option<String>, Option<String>)> = assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(assets::id.eq(asset_id))
        .select((assets::legal_basis, assets::legal_basis_note))
        .first(conn)
        .optional()?;
    let (old_basis, old_note) = old.ok_or_else(|| ControlError::not_found("asset"))?;
    let note = note(input.note)?;
    diesel::update(
        assets::table
            .filter(assets::tenant_id.eq(tenant_id))
            .filter(assets::id.eq(asset_id)),
    )
    .set((
        assets::legal_basis.eq(input.legal_basis.map(|b| b.as_str())),
        assets::legal_basis_note.eq(&note),
        assets::updated_at.eq(now),
    ))
    .execute(conn)?;
    crate::exposure::refresh_assets(conn, tenant_id, &[asset_id.to_string()], now)?;
    audit::record(
        conn,
        who,
        "asset.legal_basis",
        "asset",
        Some(asset_id),
        serde_json::json!({
            "old": { "legal_basis": old_basis, "note": old_note },
            "new": { "legal_basis": input.legal_basis, "note": note },
        }),
    )?;
    Ok(LegalBasisOut {
        asset_id: asset_id.to_string(),
        legal_basis: input.legal_basis,
        note,
    })
}

/// An asset's legal basis.
pub fn get_legal_basis(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_id: &str,
) -> Result<LegalBasisOut> {
    let row: Option<(Option<String>, Option<String>)> = assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(assets::id.eq(asset_id))
        .select((assets::legal_basis, assets::legal_basis_note))
        .first(conn)
        .optional()?;
    let (basis, note) = row.ok_or_else(|| ControlError::not_found("asset"))?;
    Ok(LegalBasisOut {
        asset_id: asset_id.to_string(),
        legal_basis: parse_basis(asset_id, basis)?,
        note,
    })
}

/// The facts of some assets, loaded in bulk.
pub struct LoadedAsset {
    /// ID.
    pub id: String,
    /// File name.
    pub filename: String,
    /// The facts for the engine.
    pub facts: AssetFacts,
}

/// Loads the facts of `asset_ids` (in that order; IDs not in the tenant are skipped). Persons
/// are labelled by name when `names` is true, else by pseudonym.
pub fn load_facts(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_ids: &[String],
    names: bool,
) -> Result<Vec<LoadedAsset>> {
    let mut asset_rows: HashMap<String, (String, Option<String>)> = HashMap::new();
    let mut face_rows: Vec<(String, String, String, Option<String>, bool)> = Vec::new();
    for chunk in asset_ids.chunks(CHUNK) {
        let rows: Vec<(String, String, Option<String>)> = assets::table
            .filter(assets::tenant_id.eq(tenant_id))
            .filter(assets::id.eq_any(chunk))
            .select((assets::id, assets::filename, assets::legal_basis))
            .load(conn)?;
        for (id, f, b) in rows {
            asset_rows.insert(id, (f, b));
        }
        face_rows.extend(
            faces::table
                .filter(faces::tenant_id.eq(tenant_id))
                .filter(faces::asset_id.eq_any(chunk))
                .order(faces::id.asc())
                .select((
                    faces::id,
                    faces::asset_id,
                    faces::status,
                    faces::person_id,
                    faces::identifiable,
                ))
                .load::<(String, String, String, Option<String>, bool)>(conn)?,
        );
    }
    let mut person_ids: Vec<String> = face_rows
        .iter()
        .filter(|f| f.2 == FaceStatus::Confirmed.as_str())
        .filter_map(|f| f.3.clone())
        .collect();
    person_ids.sort();
    person_ids.dedup();
    let people = load_persons(conn, tenant_id, &person_ids, names)?;

    let mut faces_by_asset: HashMap<String, Vec<FaceFacts>> = HashMap::new();
    for (id, asset_id, status, person_id, identifiable) in face_rows {
        let status: FaceStatus = status
            .parse()
            .map_err(|e| ControlError::Internal(format!("face {id}: {e}")))?;
        faces_by_asset.entry(asset_id).or_default().push(FaceFacts {
            id,
            status,
            person_id,
            identifiable,
        });
    }
    let mut out = Vec::with_capacity(asset_ids.len());
    for id in asset_ids {
        let Some((filename, basis)) = asset_rows.remove(id) else {
            continue;
        };
        let faces = faces_by_asset.remove(id).unwrap_or_default();
        let mut persons: Vec<PersonFacts> = Vec::new();
        for f in &faces {
            if let Some(pid) = f.linked_person()
                && !persons.iter().any(|p| p.id == pid)
                && let Some(p) = people.get(pid)
            {
                persons.push(p.clone());
            }
        }
        out.push(LoadedAsset {
            id: id.clone(),
            filename,
            facts: AssetFacts {
                legal_basis: parse_basis(id, basis)?,
                faces,
                persons,
            },
        });
    }
    Ok(out)
}

type PersonRow = (String, String, bool, Option<String>);

/// Loads persons (not deleted) with all their agreements.
fn load_persons(
    conn: &mut DbConn,
    tenant_id: &str,
    ids: &[String],
    names: bool,
) -> Result<HashMap<String, PersonFacts>> {
    let mut out: HashMap<String, PersonFacts> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<PersonRow> = persons::table
            .filter(persons::tenant_id.eq(tenant_id))
            .filter(persons::id.eq_any(chunk))
            .filter(persons::deleted_at.is_null())
            .select((
                persons::id,
                persons::pseudonym,
                persons::never_publish,
                persons::guardian_person_id,
            ))
            .load(conn)?;
        // The name, date of birth and guardian are sealed (the vault).
        let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut personal = crate::persons::personal_map(conn, tenant_id, &ids)?;
        for (id, pseudonym, never_publish, g_id) in rows {
            let p = personal.remove(&id).unwrap_or_default();
            let label = if names && !p.name.trim().is_empty() {
                p.name
            } else {
                pseudonym
            };
            out.insert(
                id.clone(),
                PersonFacts {
                    id,
                    label,
                    never_publish,
                    date_of_birth: p.date_of_birth,
                    has_guardian: g_id.is_some() || p.guardian_name.is_some(),
                    agreements: Vec::new(),
                },
            );
        }
        let rows: Vec<AgreementRow> = agreements::table
            .filter(agreements::tenant_id.eq(tenant_id))
            .filter(agreements::person_id.eq_any(chunk))
            .order(agreements::id.asc())
            .select((
                agreements::id,
                agreements::person_id,
                agreements::channels_json,
                agreements::valid_from,
                agreements::valid_until,
                agreements::withdrawn_at,
                agreements::covers_face_matching,
                agreements::signed_by_guardian,
            ))
            .load(conn)?;
        for (id, person_id, channels_json, from, until, withdrawn, fm, guardian) in rows {
            let channels: Vec<String> = serde_json::from_str(&channels_json).map_err(|e| {
                ControlError::Internal(format!("agreement {id}: bad channels_json: {e}"))
            })?;
            if let Some(p) = out.get_mut(&person_id) {
                p.agreements.push(AgreementFacts {
                    id,
                    channels,
                    valid_from: from,
                    valid_until: until,
                    withdrawn_at: withdrawn.map(|w| w.date()),
                    covers_face_matching: fm,
                    signed_by_guardian: guardian,
                });
            }
        }
    }
    Ok(out)
}

type AgreementRow = (
    String,
    String,
    String,
    NaiveDate,
    Option<NaiveDate>,
    Option<chrono::NaiveDateTime>,
    bool,
    bool,
);

/// Who is asking: decides whether persons are shown by name (and so whether the read is
/// audited).
#[derive(Debug, Clone)]
pub struct Reader {
    /// The audit identity.
    pub who: Who,
    /// The actor: [`crate::persons::shows_real_names`] decides from their permissions.
    pub actor: Actor,
}

impl Reader {
    /// The reader acting in `ctx`.
    pub fn of(ctx: &Ctx) -> Self {
        Self {
            who: ctx.who(),
            actor: ctx.actor.clone(),
        }
    }
}

fn names_visible(reader: &Reader, s: &TenantSettings) -> bool {
    crate::persons::shows_real_names(&reader.actor, s)
}

fn names_a_person(verdicts: &[Verdict]) -> bool {
    verdicts
        .iter()
        .any(|v| v.reasons.iter().any(|r| r.person_id.is_some()))
}

fn audit_read(
    conn: &mut DbConn,
    who: &Who,
    action: &str,
    object_type: &str,
    object_id: Option<&str>,
    detail: serde_json::Value,
) -> Result<()> {
    db::write_tx(conn, |c| {
        audit::record(c, who, action, object_type, object_id, detail).map(|_| ())
    })
}

fn channels_for(s: &TenantSettings, channel: Option<&str>) -> Result<Vec<String>> {
    match channel {
        Some(c) => {
            s.check_channel("channel", c)
                .map_err(|e| domain_error_at("channel", e))?;
            Ok(vec![c.to_string()])
        }
        None => Ok(s.channels.clone()),
    }
}

fn verdicts(
    facts: &AssetFacts,
    channels: &[String],
    date: NaiveDate,
    s: &TenantSettings,
) -> Vec<Verdict> {
    if channels == s.channels.as_slice() {
        evaluate_all(facts, date, s)
    } else {
        channels
            .iter()
            .map(|c| evaluate(facts, c, date, s))
            .collect()
    }
}

/// The compliance of one asset on `date` for `channel` (default every channel). Opens its own
/// transaction for the audit entry: do not call inside one.
pub fn asset_compliance(
    conn: &mut DbConn,
    reader: &Reader,
    tenant_id: &str,
    asset_id: &str,
    channel: Option<&str>,
    date: NaiveDate,
) -> Result<AssetCompliance> {
    let s = settings::get(conn, tenant_id)?;
    let channels = channels_for(&s, channel)?;
    let names = names_visible(reader, &s);
    let loaded = load_facts(conn, tenant_id, &[asset_id.to_string()], names)?;
    let a = loaded
        .into_iter()
        .next()
        .ok_or_else(|| ControlError::not_found("asset"))?;
    let v = verdicts(&a.facts, &channels, date, &s);
    if names && names_a_person(&v) {
        audit_read(
            conn,
            &reader.who,
            "compliance.asset.read",
            "asset",
            Some(asset_id),
            serde_json::json!({ "date": date, "channels": channels }),
        )?;
    }
    Ok(AssetCompliance {
        asset_id: a.id,
        filename: a.filename,
        legal_basis: a.facts.legal_basis,
        date,
        verdicts: v,
    })
}

/// Every file `person_id` appears in (a confirmed face), newest first, with its status for every
/// channel on `date`. Audited as `compliance.person.read`. Opens its own transaction for the
/// audit entry: do not call inside one.
pub fn person_compliance(
    conn: &mut DbConn,
    reader: &Reader,
    tenant_id: &str,
    person_id: &str,
    date: NaiveDate,
) -> Result<PersonCompliance> {
    person_files(conn, reader, tenant_id, person_id, date, None).map(|(out, _)| out)
}

/// [`person_compliance`] of the `limit` most recent files only (all with `None`), with the
/// number of files the person is on: a person on thousands of files stays a quick page.
pub fn person_files(
    conn: &mut DbConn,
    reader: &Reader,
    tenant_id: &str,
    person_id: &str,
    date: NaiveDate,
    limit: Option<usize>,
) -> Result<(PersonCompliance, usize)> {
    require_person(conn, tenant_id, person_id)?;
    let s = settings::get(conn, tenant_id)?;
    let names = names_visible(reader, &s);
    let rows: Vec<(String, String)> = faces::table
        .inner_join(assets::table.on(assets::id.eq(faces::asset_id)))
        .filter(faces::tenant_id.eq(tenant_id))
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(faces::person_id.eq(person_id))
        .filter(faces::status.eq(FaceStatus::Confirmed.as_str()))
        .order((
            assets::created_at.desc(),
            assets::id.desc(),
            faces::id.asc(),
        ))
        .select((faces::asset_id, faces::id))
        .load(conn)?;
    let mut asset_ids: Vec<String> = Vec::new();
    let mut face_ids: HashMap<String, Vec<String>> = HashMap::new();
    for (a, f) in rows {
        if !face_ids.contains_key(&a) {
            asset_ids.push(a.clone());
        }
        face_ids.entry(a).or_default().push(f);
    }
    let total = asset_ids.len();
    if let Some(n) = limit {
        asset_ids.truncate(n);
    }
    let mut assets_out = Vec::with_capacity(asset_ids.len());
    for batch in asset_ids.chunks(BATCH) {
        for a in load_facts(conn, tenant_id, batch, names)? {
            let v = evaluate_all(&a.facts, date, &s);
            assets_out.push(PersonAsset {
                face_ids: face_ids.remove(&a.id).unwrap_or_default(),
                compliance: AssetCompliance {
                    asset_id: a.id,
                    filename: a.filename,
                    legal_basis: a.facts.legal_basis,
                    date,
                    verdicts: v,
                },
            });
        }
    }
    audit_read(
        conn,
        &reader.who,
        "compliance.person.read",
        "person",
        Some(person_id),
        serde_json::json!({ "date": date, "assets": assets_out.len() }),
    )?;
    Ok((
        PersonCompliance {
            person_id: person_id.to_string(),
            date,
            assets: assets_out,
        },
        total,
    ))
}

/// The page size of a list (`limit`, default 50), checked against [`MAX_LIMIT`].
fn page_limit(limit: Option<usize>) -> Result<usize> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ControlError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT} (got {limit})"),
        ));
    }
    Ok(limit)
}

/// A comma-separated `status` parameter (`None` when absent or empty).
fn parse_statuses(status: Option<&str>) -> Result<Option<Vec<ComplianceStatus>>> {
    match status.map(str::trim) {
        None | Some("") => Ok(None),
        Some(list) => list
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<ComplianceStatus>()
                    .map_err(|e| domain_error_at("status", e))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
    }
}

struct Filter {
    statuses: Option<Vec<ComplianceStatus>>,
    allowed: Option<bool>,
    expiring_by: Option<NaiveDate>,
}

impl Filter {
    fn matches(&self, v: &Verdict) -> bool {
        if let Some(st) = &self.statuses
            && !st.contains(&v.status)
        {
            return false;
        }
        if let Some(a) = self.allowed
            && v.allowed != a
        {
            return false;
        }
        if let Some(by) = self.expiring_by
            && !(v.allowed && v.until.is_some_and(|u| u <= by))
        {
            return false;
        }
        true
    }
}

/// A filtered list of assets by compliance, in asset-ID order (oldest first), paged by cursor.
/// At most [`MAX_SCAN`] assets are evaluated per request; `next_after` continues. Opens its own
/// transaction for the audit entry: do not call inside one. The date defaults to `today` (the
/// caller's clock).
pub fn list(
    conn: &mut DbConn,
    reader: &Reader,
    tenant_id: &str,
    q: ListQuery,
    today: NaiveDate,
) -> Result<ComplianceList> {
    let s = settings::get(conn, tenant_id)?;
    let channels = channels_for(&s, q.channel.as_deref())?;
    let date = q.date.unwrap_or(today);
    let limit = page_limit(q.limit)?;
    let statuses = parse_statuses(q.status.as_deref())?;
    let filter = Filter {
        statuses,
        allowed: q.allowed,
        expiring_by: q
            .expiring_within_days
            .map(|n| {
                date.checked_add_days(chrono::Days::new(u64::from(n)))
                    .ok_or_else(|| ControlError::invalid("expiring_within_days", "too large"))
            })
            .transpose()?,
    };
    let names = names_visible(reader, &s);
    let mut after = q.after.clone();
    let mut items: Vec<AssetCompliance> = Vec::new();
    let mut scanned = 0usize;
    let mut exhausted = false;
    while items.len() < limit && scanned < MAX_SCAN {
        let mut query = assets::table
            .filter(assets::tenant_id.eq(tenant_id))
            .order(assets::id.asc())
            .select(assets::id)
            .limit(i64::try_from(BATCH.min(MAX_SCAN - scanned)).unwrap_or(1))
            .into_boxed();
        if let Some(a) = &after {
            query = query.filter(assets::id.gt(a.clone()));
        }
        let ids: Vec<String> = query.load(conn)?;
        if ids.is_empty() {
            exhausted = true;
            break;
        }
        let n = ids.len();
        for a in load_facts(conn, tenant_id, &ids, names)? {
            scanned += 1;
            after = Some(a.id.clone());
            let v: Vec<Verdict> = verdicts(&a.facts, &channels, date, &s)
                .into_iter()
                .filter(|v| filter.matches(v))
                .collect();
            if !v.is_empty() {
                items.push(AssetCompliance {
                    asset_id: a.id,
                    filename: a.filename,
                    legal_basis: a.facts.legal_basis,
                    date,
                    verdicts: v,
                });
                if items.len() == limit {
                    break;
                }
            }
        }
        if n < BATCH && items.len() < limit {
            exhausted = true;
            break;
        }
    }
    if names && items.iter().any(|a| names_a_person(&a.verdicts)) {
        audit_read(
            conn,
            &reader.who,
            "compliance.list.read",
            "asset",
            None,
            serde_json::json!({
                "date": date,
                "channel": q.channel,
                "status": q.status,
                "allowed": q.allowed,
                "expiring_within_days": q.expiring_within_days,
                "assets": items.iter().map(|a| a.asset_id.as_str()).collect::<Vec<_>>(),
            }),
        )?;
    }
    Ok(ComplianceList {
        items,
        next_after: if exhausted { None } else { after },
        scanned,
    })
}

/// Who lacks consent: persons confirmed on at least one file whose status, for a channel on
/// `date`, has a reason about that person with one of the requested statuses (default
/// `missing_consent`, `expired`, `withdrawn`, `minor_without_guardian_consent`), with those
/// files. In person-ID order, paged by cursor; at most [`MAX_SCAN`] persons are looked at per
/// request. Audited as `compliance.persons.read` when it shows names. Opens its own transaction
/// for the audit entry: do not call inside one. The date defaults to `today` (the caller's
/// clock).
pub fn persons_lacking(
    conn: &mut DbConn,
    reader: &Reader,
    tenant_id: &str,
    q: PersonListQuery,
    today: NaiveDate,
) -> Result<LackingList> {
    let s = settings::get(conn, tenant_id)?;
    let channels = channels_for(&s, q.channel.as_deref())?;
    let date = q.date.unwrap_or(today);
    let limit = page_limit(q.limit)?;
    let person_level = [
        ComplianceStatus::NeverPublish,
        ComplianceStatus::MinorWithoutGuardianConsent,
        ComplianceStatus::Withdrawn,
        ComplianceStatus::MissingConsent,
        ComplianceStatus::Expired,
        ComplianceStatus::Expiring,
    ];
    let statuses = match parse_statuses(q.status.as_deref())? {
        None => vec![
            ComplianceStatus::MinorWithoutGuardianConsent,
            ComplianceStatus::Withdrawn,
            ComplianceStatus::MissingConsent,
            ComplianceStatus::Expired,
        ],
        Some(list) => {
            if let Some(st) = list.iter().find(|st| !person_level.contains(st)) {
                return Err(ControlError::invalid(
                    "status",
                    format!(
                        "{st} is not about a person; use one of never_publish, \
                         minor_without_guardian_consent, withdrawn, missing_consent, \
                         expired, expiring"
                    ),
                ));
            }
            list
        }
    };
    let names = names_visible(reader, &s);
    let mut after = q.after.clone();
    let mut items: Vec<LackingPerson> = Vec::new();
    let mut scanned = 0usize;
    let mut exhausted = false;
    'scan: while items.len() < limit && scanned < MAX_SCAN {
        let mut query = persons::table
            .filter(persons::tenant_id.eq(tenant_id))
            .filter(persons::deleted_at.is_null())
            .order(persons::id.asc())
            .select(persons::id)
            .limit(i64::try_from(BATCH.min(MAX_SCAN - scanned)).unwrap_or(1))
            .into_boxed();
        if let Some(a) = &after {
            query = query.filter(persons::id.gt(a.clone()));
        }
        let ids: Vec<String> = query.load(conn)?;
        if ids.is_empty() {
            exhausted = true;
            break;
        }
        let n = ids.len();
        // The files each person of the batch is confirmed on.
        let mut pairs: Vec<(String, String)> = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            pairs.extend(
                faces::table
                    .filter(faces::tenant_id.eq(tenant_id))
                    .filter(faces::person_id.eq_any(chunk))
                    .filter(faces::status.eq(FaceStatus::Confirmed.as_str()))
                    .select((faces::person_id.assume_not_null(), faces::asset_id))
                    .load::<(String, String)>(conn)?,
            );
        }
        let mut asset_ids: Vec<String> = pairs.iter().map(|p| p.1.clone()).collect();
        asset_ids.sort();
        asset_ids.dedup();
        // person -> asset -> (channels, statuses, first message)
        type Hit = (Vec<String>, Vec<ComplianceStatus>, String);
        type PerAsset = HashMap<String, (String, Hit)>;
        let mut found: HashMap<String, (String, PerAsset)> = HashMap::new();
        for batch in asset_ids.chunks(BATCH) {
            for a in load_facts(conn, tenant_id, batch, names)? {
                for v in verdicts(&a.facts, &channels, date, &s) {
                    for r in &v.reasons {
                        let Some(pid) = r.person_id.as_deref() else {
                            continue;
                        };
                        if !statuses.contains(&r.code) {
                            continue;
                        }
                        let label = a
                            .facts
                            .persons
                            .iter()
                            .find(|p| p.id == pid)
                            .map(|p| p.label.clone())
                            .unwrap_or_else(|| pid.to_string());
                        let (_, per_asset) = found
                            .entry(pid.to_string())
                            .or_insert_with(|| (label, HashMap::new()));
                        let (_, hit) = per_asset.entry(a.id.clone()).or_insert_with(|| {
                            (
                                a.filename.clone(),
                                (Vec::new(), Vec::new(), r.message.clone()),
                            )
                        });
                        if !hit.0.contains(&v.channel) {
                            hit.0.push(v.channel.clone());
                        }
                        if !hit.1.contains(&r.code) {
                            hit.1.push(r.code);
                        }
                    }
                }
            }
        }
        for pid in ids {
            scanned += 1;
            after = Some(pid.clone());
            if let Some((label, per_asset)) = found.remove(&pid) {
                let mut assets_out: Vec<LackingAsset> = per_asset
                    .into_iter()
                    .map(|(asset_id, (filename, (mut ch, mut st, message)))| {
                        ch.sort_by_key(|c| s.channels.iter().position(|x| x == c));
                        st.sort_by_key(|x| x.severity());
                        LackingAsset {
                            asset_id,
                            filename,
                            channels: ch,
                            statuses: st,
                            message,
                        }
                    })
                    .collect();
                assets_out.sort_by(|a, b| b.asset_id.cmp(&a.asset_id));
                items.push(LackingPerson {
                    person_id: pid,
                    label,
                    assets: assets_out,
                });
                if items.len() == limit {
                    break 'scan;
                }
            }
        }
        if n < BATCH {
            exhausted = true;
            break;
        }
    }
    if names && !items.is_empty() {
        audit_read(
            conn,
            &reader.who,
            "compliance.persons.read",
            "person",
            None,
            serde_json::json!({
                "date": date,
                "channel": q.channel,
                "status": q.status,
                "persons": items.iter().map(|p| p.person_id.as_str()).collect::<Vec<_>>(),
            }),
        )?;
    }
    Ok(LackingList {
        date,
        items,
        next_after: if exhausted { None } else { after },
        scanned,
    })
}

/// Whether a user may use (download for use) an asset's file today.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UseCheck {
    /// `allow` (approved or expiring in at least one channel), `warn` (not approved, the policy
    /// lets this user go on) or `deny`.
    pub decision: likeness_control_domain::UseDecision,
    /// The channels the asset is allowed in today.
    pub allowed_channels: Vec<String>,
}

/// Decides whether a user may use an asset's file on `date` (today on the services' clock): allowed in any channel -> `allow`;
/// otherwise the tenant's `non_approved_use` policy decides (`block`: deny; `warn`: warn;
/// `allow_with_permission`: warn with `use_unapproved_files`, else deny). For the download
/// hook (`service::assets::may_use`). Reads only; persons are not named.
pub fn use_check(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_id: &str,
    has_use_unapproved: bool,
    date: NaiveDate,
) -> Result<UseCheck> {
    let s = settings::get(conn, tenant_id)?;
    let a = load_facts(conn, tenant_id, &[asset_id.to_string()], false)?
        .into_iter()
        .next()
        .ok_or_else(|| ControlError::not_found("asset"))?;
    let verdicts = evaluate_all(&a.facts, date, &s);
    let allowed_channels: Vec<String> = verdicts
        .iter()
        .filter(|v| v.allowed)
        .map(|v| v.channel.clone())
        .collect();
    let decision = match verdicts.iter().find(|v| v.allowed) {
        Some(v) => likeness_control_domain::use_decision(v, s.non_approved_use, has_use_unapproved),
        None => match verdicts.first() {
            Some(v) => {
                likeness_control_domain::use_decision(v, s.non_approved_use, has_use_unapproved)
            }
            None => likeness_control_domain::UseDecision::Deny,
        },
    };
    Ok(UseCheck {
        decision,
        allowed_channels,
    })
}

/// [`use_check`] as a guard: `Ok(None)` allowed, `Ok(Some(warning))` allowed after a warning
/// (send it to the user, e.g. in a `Warning` header), 403 `forbidden` when denied.
pub fn require_use(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_id: &str,
    has_use_unapproved: bool,
    date: NaiveDate,
) -> Result<Option<String>> {
    let c = use_check(conn, tenant_id, asset_id, has_use_unapproved, date)?;
    match c.decision {
        likeness_control_domain::UseDecision::Allow => Ok(None),
        likeness_control_domain::UseDecision::Warn => Ok(Some(format!(
            "asset {asset_id} is not approved for any channel today"
        ))),
        likeness_control_domain::UseDecision::Deny => Err(ControlError::Forbidden(format!(
            "{} (asset {asset_id} is not approved for any channel today)",
            crate::roles::Permission::UseUnapprovedFiles.as_str()
        ))),
    }
}

/// Channel and date of an asset's compliance query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AssetQuery {
    /// One channel (default: every channel of the tenant).
    pub channel: Option<String>,
    /// The date (default today, UTC).
    pub date: Option<NaiveDate>,
}

/// Date of a person's compliance query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DateQuery {
    /// The date (default today, UTC).
    pub date: Option<NaiveDate>,
}

// Use cases: one entry point per operation, each checking its own permissions; inputs a
// transport parses (`Result<T>`) are looked at only after the permission checks. Dates default
// to the context's today (its clock).

/// Sets or clears an asset's legal basis (`manage_consents`).
pub async fn put_legal_basis(
    ctx: &Ctx,
    asset_id: String,
    input: Result<LegalBasisIn>,
) -> Result<LegalBasisOut> {
    ctx.require(Permission::ManageConsents)?;
    let input = input?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| set_legal_basis(c, &who, &t, &asset_id, input, now))
    })
    .await
}

/// An asset's legal basis (every user of the tenant).
pub async fn read_legal_basis(ctx: &Ctx, asset_id: String) -> Result<LegalBasisOut> {
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| get_legal_basis(c, &t, &asset_id)).await
}

/// An asset's compliance for every channel (or one) on a date (every user of the tenant;
/// persons by name only as [`crate::persons::shows_real_names`] allows).
pub async fn check_asset(
    ctx: &Ctx,
    asset_id: String,
    q: Result<AssetQuery>,
) -> Result<AssetCompliance> {
    let q = q?;
    let (r, t, date) = (
        Reader::of(ctx),
        ctx.tenant().to_string(),
        q.date.unwrap_or(ctx.today()),
    );
    db::run(&ctx.deps.pool, move |c| {
        asset_compliance(c, &r, &t, &asset_id, q.channel.as_deref(), date)
    })
    .await
}

/// Every file a person appears in, with its status for every channel (`see_persons`).
pub async fn check_person(
    ctx: &Ctx,
    person_id: String,
    q: Result<DateQuery>,
) -> Result<PersonCompliance> {
    ctx.require(Permission::SeePersons)?;
    let q = q?;
    let (r, t, date) = (
        Reader::of(ctx),
        ctx.tenant().to_string(),
        q.date.unwrap_or(ctx.today()),
    );
    db::run(&ctx.deps.pool, move |c| {
        person_compliance(c, &r, &t, &person_id, date)
    })
    .await
}

/// The `limit` most recent files a person is on with their compliance today, and how many files
/// they are on in all (`see_persons`; see [`person_files`]).
pub async fn check_person_files(
    ctx: &Ctx,
    person_id: String,
    limit: usize,
) -> Result<(PersonCompliance, usize)> {
    ctx.require(Permission::SeePersons)?;
    let (r, t, date) = (Reader::of(ctx), ctx.tenant().to_string(), ctx.today());
    db::run(&ctx.deps.pool, move |c| {
        person_files(c, &r, &t, &person_id, date, Some(limit))
    })
    .await
}

/// Assets filtered by compliance (every user of the tenant).
pub async fn list_assets(ctx: &Ctx, q: Result<ListQuery>) -> Result<ComplianceList> {
    let q = q?;
    let (r, t, today) = (Reader::of(ctx), ctx.tenant().to_string(), ctx.today());
    db::run(&ctx.deps.pool, move |c| list(c, &r, &t, q, today)).await
}

/// Who lacks consent (`see_persons`).
pub async fn list_lacking_persons(ctx: &Ctx, q: Result<PersonListQuery>) -> Result<LackingList> {
    ctx.require(Permission::SeePersons)?;
    let q = q?;
    let (r, t, today) = (Reader::of(ctx), ctx.tenant().to_string(), ctx.today());
    db::run(&ctx.deps.pool, move |c| {
        persons_lacking(c, &r, &t, q, today)
    })
    .await
}

/// How many files may not be used today, by their worst reason: the compliance engine run over
/// every file of the tenant (in batches of [`BATCH`]), each file counted once under the worst
/// status among its channels that are not allowed.
#[derive(Debug, Clone, Serialize)]
pub struct NotAllowedSummary {
    /// When it was counted (the caller's clock).
    pub counted_at: chrono::NaiveDateTime,
    /// The day evaluated.
    pub date: NaiveDate,
    /// Files looked at.
    pub files_checked: u64,
    /// Files with at least one channel not allowed.
    pub files_not_allowed: u64,
    /// Files per worst status, worst first; statuses with no file are left out.
    pub by_status: Vec<(ComplianceStatus, u64)>,
}

/// Counts the files of `tenant_id` that may not be used on `date` (see [`NotAllowedSummary`]).
/// Reads only; no audit entry (no person is named). Takes time in proportion to the number of
/// files: callers cache it (see `overview`).
pub fn summarize_not_allowed(
    conn: &mut DbConn,
    tenant_id: &str,
    date: NaiveDate,
    counted_at: chrono::NaiveDateTime,
) -> Result<NotAllowedSummary> {
    let s = settings::get(conn, tenant_id)?;
    let channels = s.channels.clone();
    let mut counts: HashMap<ComplianceStatus, u64> = HashMap::new();
    let mut checked = 0u64;
    let mut not_allowed = 0u64;
    let mut after: Option<String> = None;
    loop {
        let mut query = assets::table
            .filter(assets::tenant_id.eq(tenant_id))
            .order(assets::id.asc())
            .select(assets::id)
            .limit(i64::try_from(BATCH).unwrap_or(200))
            .into_boxed();
        if let Some(a) = &after {
            query = query.filter(assets::id.gt(a.clone()));
        }
        let ids: Vec<String> = query.load(conn)?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        for a in load_facts(conn, tenant_id, &ids, false)? {
            checked += 1;
            let worst = verdicts(&a.facts, &channels, date, &s)
                .into_iter()
                .filter(|v| !v.allowed)
                .map(|v| v.status)
                .min_by_key(|st| st.severity());
            if let Some(st) = worst {
                not_allowed += 1;
                *counts.entry(st).or_default() += 1;
            }
        }
        if ids.len() < BATCH {
            break;
        }
        after = Some(last);
    }
    let mut by_status: Vec<(ComplianceStatus, u64)> = counts.into_iter().collect();
    by_status.sort_by_key(|(st, _)| st.severity());
    Ok(NotAllowedSummary {
        counted_at,
        date,
        files_checked: checked,
        files_not_allowed: not_allowed,
        by_status,
    })
}

/// How a file stands today, for lists: its worst status over the channels and the channels it
/// may be used on.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    /// The worst status over every channel (`approved` when all are).
    pub status: ComplianceStatus,
    /// The channels it may be used on today.
    pub allowed_channels: Vec<String>,
    /// How many channels the tenant has.
    pub channels: usize,
}

/// The standing of each of `asset_ids` on `date` (IDs not in the tenant are left out). Names
/// no person, so it is not audited.
pub fn standings(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_ids: &[String],
    date: NaiveDate,
) -> Result<HashMap<String, Standing>> {
    let s = settings::get(conn, tenant_id)?;
    let mut out = HashMap::new();
    for a in load_facts(conn, tenant_id, asset_ids, false)? {
        let v = verdicts(&a.facts, &s.channels, date, &s);
        let status = v
            .iter()
            .map(|v| v.status)
            .min_by_key(|st| st.severity())
            .unwrap_or(ComplianceStatus::Approved);
        out.insert(
            a.id,
            Standing {
                status,
                allowed_channels: v
                    .iter()
                    .filter(|v| v.allowed)
                    .map(|v| v.channel.clone())
                    .collect(),
                channels: s.channels.len(),
            },
        );
    }
    Ok(out)
}

/// The standing today of the files `asset_ids` of `ctx`'s tenant (every user of the tenant, as
/// the compliance of one file).
pub async fn standings_of(ctx: &Ctx, asset_ids: Vec<String>) -> Result<HashMap<String, Standing>> {
    let (t, date) = (ctx.tenant().to_string(), ctx.today());
    db::run(&ctx.deps.pool, move |c| standings(c, &t, &asset_ids, date)).await
}

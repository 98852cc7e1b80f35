//! (RIGHTS) Erasure of a person (GDPR Art. 17, 17(2), 19): not a soft delete. One run per
//! person (`erasure_runs`), a fixed plan and idempotent steps, each committed together with
//! the run's next step, so that a crash anywhere resumes where it stopped ([`ErasePerson`]
//! job, or calling [`start_erasure`] again).
//!
//! Steps, in order:
//! 1. `signing`: open signing requests revoked; every request's destination, pending data,
//!    address and user agent cleared; their one-time codes deleted.
//! 2. `files`: per file the person is confirmed on, the tenant's policy
//!    ([`RightsSettings::decide`]) fixed in the plan: `pixelate` (a new version with the
//!    person's faces pixelated, every older version's blob, renditions and the old thumbnail
//!    destroyed), `hide` (the face stays as a face of an erased person: status `erased`,
//!    blocking every channel under every basis) or `keep` (the face unlinked; the basis that
//!    keeps the file is named in the report). A video cannot be pixelated: it is hidden.
//! 3. `faces`: every other face linked to or suggested as the person unlinked, the person
//!    dropped from candidates, their rejections deleted, guardian links to them cleared.
//! 4. `templates`: their templates removed from the matcher; waits (status `waiting`) while the
//!    matcher is unreachable.
//! 5. `documents`: their agreements' documents (blobs and rows) deleted, free-text notes cleared.
//! 6. `links`: their hidden or pixelated files removed from share links (a link left empty is
//!    revoked), their access exports (blob and row) and outbox messages deleted.
//! 7. `personal`: the register entry's personal fields emptied (sealed data, keyed indexes,
//!    plain columns); `erased_at` and `deleted_at` set: the row stays as a pseudonymous
//!    tombstone.
//! 8. `shred`: the blobs collected by the steps above destroyed (overwritten, then removed).
//! 9. `key`: the person's key destroyed ([`crate::vault::Vault::destroy_person_key`]): copies of
//!    their sealed data in backups and WAL can no longer be read.
//! 10. `finish`: the event `person.erased` (ids only) for the CMS and one audit entry
//!     `person.erase` (pseudonym and counts, no name).
//!
//! Concurrent drivers (the inline call and the job) are safe: a step commits only if the run
//! is still where it read it (compare-and-set on the step and the report).
//!
//! Failpoints (`LIKENESS_FAILPOINT`): `erasure.after_start`, `erasure.after_<step>` (after the
//! step committed), `erasure.after_file` (after each file).

use std::collections::{BTreeSet, HashSet};

use diesel::prelude::*;
use likeness_control_domain::rights::{FileDecision, RightsSettings};
use likeness_control_domain::{FaceStatus, LegalBasis};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Deps;
use crate::audit::{self, Who};
use crate::bystanders::{self, FaceBox};
use crate::context::Ctx;
use diesel::connection::SimpleConnection;

use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::job_kinds::ErasePerson;
use crate::jobs::BackgroundJob;
use crate::roles::Permission;
use crate::schema::{
    access_exports, agreement_documents, agreements, asset_versions, assets as assets_t,
    erasure_runs, face_rejections, face_templates, faces, jobs, otp_challenges, outbox, persons,
    renditions, share_link_assets, share_links, signing_requests, tenants,
};

/// The steps of a run, in order; `done` after the last.
pub const STEPS: &[&str] = &[
    "signing",
    "files",
    "faces",
    "templates",
    "documents",
    "links",
    "personal",
    "shred",
    "key",
    "finish",
];
/// The step of a finished run.
pub const DONE: &str = "done";
/// How long the queued job waits before it takes over from the inline call.
const JOB_DELAY_SECS: i64 = 30;
/// Why a request was revoked.
const REVOKE_REASON: &str = "the person was erased";

/// What an erasure will do to one file (fixed when the run starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FilePlan {
    /// The file.
    pub asset_id: String,
    /// Its name.
    pub filename: String,
    /// `image` or `video`.
    pub kind: String,
    /// What happens to it: `pixelate`, `hide` or `keep`.
    pub decision: FileDecision,
    /// The legal basis that keeps it (when `keep`), or the file's basis.
    pub basis: Option<String>,
    /// How many of the person's faces it shows.
    pub faces: usize,
    /// Those faces.
    pub face_ids: Vec<String>,
}

/// The consequences of erasing a person, shown before confirming (and fixed as the run's plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErasurePreview {
    /// The person.
    pub person_id: String,
    /// Their pseudonym (what stays).
    pub pseudonym: String,
    /// The tenant's policy the decisions come from.
    pub policy: RightsSettings,
    /// Every file they are confirmed on, with its decision.
    pub files: Vec<FilePlan>,
    /// Their agreements (kept as pseudonymous records; their documents deleted).
    pub agreements: usize,
    /// Documents of those agreements (deleted).
    pub documents: usize,
    /// Their templates in the matcher (removed).
    pub templates: usize,
    /// Their signing requests still open (revoked).
    pub signing_requests: usize,
    /// Share links that contain a file hidden or pixelated (the file is removed from them).
    pub share_links: usize,
    /// Their access exports (deleted).
    pub exports: usize,
    /// Messages to them in the outbox (deleted).
    pub messages: usize,
    /// Whether the matcher must be reached (templates to remove).
    pub matcher_needed: bool,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileOutcome {
    /// The file.
    pub asset_id: String,
    /// What was done.
    pub decision: FileDecision,
    /// The legal basis that kept it (`keep`).
    pub basis: Option<String>,
    /// The new (pixelated) version.
    pub version: Option<i32>,
    /// Why the decision differs from the plan (e.g. a video cannot be pixelated).
    pub note: Option<String>,
}

/// What a run did so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct ErasureReport {
    /// Open signing requests revoked.
    pub signing_requests_revoked: usize,
    /// Signing requests whose destination and data were cleared.
    pub signing_requests_cleared: usize,
    /// Files done, in plan order.
    pub files: Vec<FileOutcome>,
    /// Other faces unlinked or no longer suggested as the person.
    pub faces_unlinked: usize,
    /// Rejections of the person deleted.
    pub rejections_deleted: usize,
    /// Templates removed from the matcher.
    pub templates_removed: u32,
    /// Agreement documents deleted.
    pub documents_deleted: usize,
    /// Share links a file was removed from.
    pub share_links_changed: usize,
    /// Share links revoked because they were left empty.
    pub share_links_revoked: usize,
    /// Access exports deleted.
    pub exports_deleted: usize,
    /// Outbox messages deleted.
    pub messages_deleted: usize,
    /// Blobs destroyed (old versions, renditions, thumbnails, documents, exports).
    pub blobs_destroyed: usize,
    /// Whether the person's key was destroyed (false: there was none).
    pub key_destroyed: bool,
    /// Blobs still to destroy (the `shred` step).
    pub pending_blobs: Vec<String>,
}

/// An erasure run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErasureRunOut {
    /// The run.
    pub id: String,
    /// The person (a pseudonymous tombstone once done).
    pub person_id: String,
    /// Their pseudonym.
    pub pseudonym: String,
    /// `running`, `waiting` (a step waits for the matcher), `done` or `failed`.
    pub status: String,
    /// The next step (`done` when finished).
    pub step: String,
    /// The plan fixed when the run started.
    pub plan: ErasurePreview,
    /// What was done.
    pub report: ErasureReport,
    /// The last error (waiting or failed).
    pub last_error: Option<String>,
    /// Requested (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: chrono::NaiveDateTime,
    /// Last change (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: chrono::NaiveDateTime,
    /// Finished (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc::option")]
    pub finished_at: Option<chrono::NaiveDateTime>,
}

/// A run as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = erasure_runs)]
struct RunRow {
    id: String,
    tenant_id: String,
    person_id: String,
    pseudonym: String,
    status: String,
    step: String,
    plan_json: String,
    report_json: String,
    requested_by: Option<String>,
    last_error: Option<String>,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    finished_at: Option<chrono::NaiveDateTime>,
}

impl RunRow {
    fn plan(&self) -> Result<ErasurePreview> {
        serde_json::from_str(&self.plan_json)
            .map_err(|e| ControlError::Internal(format!("erasure run {}: plan: {e}", self.id)))
    }

    fn report(&self) -> Result<ErasureReport> {
        if self.report_json.trim().is_empty() {
            return Ok(ErasureReport::default());
        }
        serde_json::from_str(&self.report_json)
            .map_err(|e| ControlError::Internal(format!("erasure run {}: report: {e}", self.id)))
    }

    fn out(&self) -> Result<ErasureRunOut> {
        Ok(ErasureRunOut {
            id: self.id.clone(),
            person_id: self.person_id.clone(),
            pseudonym: self.pseudonym.clone(),
            status: self.status.clone(),
            step: self.step.clone(),
            plan: self.plan()?,
            report: self.report()?,
            last_error: self.last_error.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        })
    }
}

fn next_step(step: &str) -> &'static str {
    STEPS
        .iter()
        .position(|s| *s == step)
        .and_then(|i| STEPS.get(i + 1))
        .copied()
        .unwrap_or(DONE)
}

fn busy() -> ControlError {
    ControlError::Conflict {
        code: "erasure_busy",
        message: "another worker advanced this erasure at the same time".into(),
    }
}

fn load_run(c: &mut DbConn, tenant: &str, id: &str) -> Result<RunRow> {
    erasure_runs::table
        .filter(erasure_runs::tenant_id.eq(tenant))
        .filter(erasure_runs::id.eq(id))
        .select(RunRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ControlError::not_found(format!("erasure {id}")))
}

fn run_of_person(c: &mut DbConn, tenant: &str, person: &str) -> Result<Option<RunRow>> {
    Ok(erasure_runs::table
        .filter(erasure_runs::tenant_id.eq(tenant))
        .filter(erasure_runs::person_id.eq(person))
        .select(RunRow::as_select())
        .first(c)
        .optional()?)
}

/// Commits `report` and moves the run to `step`, if the run is still as `run` read it (else
/// `erasure_busy`, and the caller's transaction rolls back).
fn save(
    c: &mut DbConn,
    run: &RunRow,
    step: &str,
    report: &ErasureReport,
    now: chrono::NaiveDateTime,
) -> Result<()> {
    let n = diesel::update(
        erasure_runs::table
            .filter(erasure_runs::id.eq(&run.id))
            .filter(erasure_runs::step.eq(&run.step))
            .filter(erasure_runs::report_json.eq(&run.report_json)),
    )
    .set((
        erasure_runs::step.eq(step),
        erasure_runs::report_json.eq(serde_json::to_string(report)?),
        erasure_runs::status.eq(if step == DONE { "done" } else { "running" }),
        erasure_runs::last_error.eq(None::<String>),
        erasure_runs::updated_at.eq(now),
        erasure_runs::finished_at.eq((step == DONE).then_some(now)),
    ))
    .execute(c)?;
    if n == 1 { Ok(()) } else { Err(busy()) }
}

fn set_status(
    c: &mut DbConn,
    run_id: &str,
    status: &str,
    error: &str,
    now: chrono::NaiveDateTime,
) -> Result<()> {
    diesel::update(erasure_runs::table.filter(erasure_runs::id.eq(run_id)))
        .set((
            erasure_runs::status.eq(status),
            erasure_runs::last_error.eq(Some(error.chars().take(2000).collect::<String>())),
            erasure_runs::updated_at.eq(now),
        ))
        .execute(c)?;
    Ok(())
}

/// On SQLite, deleted and overwritten content is zeroed on this connection (the pages freed by
/// the erasure do not keep the old bytes).
fn secure_delete(c: &mut DbConn) {
    if let DbConn::Sqlite(s) = c {
        let _ = s.batch_execute("PRAGMA secure_delete = ON;");
    }
}

/// On SQLite, moves the write-ahead log into the database and truncates it, so that the old
/// page images of the erased rows do not stay in the WAL file (best effort: a reader may hold it).
fn checkpoint(c: &mut DbConn) {
    if let DbConn::Sqlite(s) = c {
        let _ = s.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);");
    }
}

// ---------------------------------------------------------------------------------------------
// The plan.

fn policy_of(c: &mut DbConn, tenant: &str) -> Result<RightsSettings> {
    let json: String = tenants::table
        .filter(tenants::id.eq(tenant))
        .select(tenants::settings_json)
        .first(c)?;
    Ok(RightsSettings::from_stored_json(&json)?)
}

fn signing_request_ids(c: &mut DbConn, tenant: &str, person: &str) -> Result<Vec<String>> {
    Ok(signing_requests::table
        .filter(signing_requests::tenant_id.eq(tenant))
        .filter(signing_requests::person_id.eq(person))
        .select(signing_requests::id)
        .load(c)?)
}

fn agreement_ids(c: &mut DbConn, tenant: &str, person: &str) -> Result<Vec<String>> {
    Ok(agreements::table
        .filter(agreements::tenant_id.eq(tenant))
        .filter(agreements::person_id.eq(person))
        .select(agreements::id)
        .load(c)?)
}

fn message_ids(
    c: &mut DbConn,
    tenant: &str,
    person: &str,
    contacts: &[String],
) -> Result<Vec<String>> {
    let requests = signing_request_ids(c, tenant, person)?;
    let mut ids: BTreeSet<String> = BTreeSet::new();
    ids.extend(
        outbox::table
            .filter(outbox::tenant_id.eq(tenant))
            .filter(outbox::person_id.eq(person))
            .select(outbox::id)
            .load::<String>(c)?,
    );
    for chunk in requests.chunks(500) {
        ids.extend(
            outbox::table
                .filter(outbox::tenant_id.eq(tenant))
                .filter(outbox::related_id.eq_any(chunk))
                .select(outbox::id)
                .load::<String>(c)?,
        );
    }
    if !contacts.is_empty() {
        ids.extend(
            outbox::table
                .filter(outbox::tenant_id.eq(tenant))
                .filter(outbox::destination.eq_any(contacts))
                .select(outbox::id)
                .load::<String>(c)?,
        );
    }
    Ok(ids.into_iter().collect())
}

/// The person's e-mail, phone and guardian contact (sealed or, for rows not sealed yet, plain),
/// to find messages addressed to them.
fn contacts_of(
    c: &mut DbConn,
    vault: Option<&crate::vault::Vault>,
    tenant: &str,
    person: &str,
) -> Result<Vec<String>> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    let plain: Option<(Option<String>, Option<String>, Option<String>)> = persons::table
        .filter(persons::tenant_id.eq(tenant))
        .filter(persons::id.eq(person))
        .select((persons::email, persons::phone, persons::guardian_contact))
        .first(c)
        .optional()?;
    if let Some((e, p, g)) = plain {
        out.extend([e, p, g].into_iter().flatten());
    }
    if let Some(vault) = vault
        && let Some(p) = crate::vault::personal_of(c, vault, tenant, person)?
    {
        out.extend([p.email, p.phone, p.guardian_contact].into_iter().flatten());
    }
    Ok(out.into_iter().filter(|s| !s.trim().is_empty()).collect())
}

/// Builds the plan of erasing `person` (a person of `tenant` not erased yet; else 404).
fn plan(c: &mut DbConn, tenant: &str, person: &str) -> Result<ErasurePreview> {
    let pseudonym: String = persons::table
        .filter(persons::tenant_id.eq(tenant))
        .filter(persons::id.eq(person))
        .filter(persons::erased_at.is_null())
        .select(persons::pseudonym)
        .first(c)
        .optional()?
        .ok_or_else(|| ControlError::not_found("person"))?;
    let policy = policy_of(c, tenant)?;
    let rows: Vec<(String, String, String, String, Option<String>, bool)> = faces::table
        .inner_join(assets_t::table.on(assets_t::id.eq(faces::asset_id)))
        .filter(faces::tenant_id.eq(tenant))
        .filter(assets_t::tenant_id.eq(tenant))
        .filter(faces::person_id.eq(person))
        .filter(faces::status.eq(FaceStatus::Confirmed.as_str()))
        .order((assets_t::id.asc(), faces::id.asc()))
        .select((
            faces::id,
            assets_t::id,
            assets_t::filename,
            assets_t::kind,
            assets_t::legal_basis,
            faces::template_enrolled,
        ))
        .load(c)?;
    let mut files: Vec<FilePlan> = Vec::new();
    let mut enrolled = false;
    for (face, asset, filename, kind, basis, tpl) in rows {
        enrolled |= tpl;
        if let Some(f) = files.iter_mut().find(|f| f.asset_id == asset) {
            f.faces += 1;
            f.face_ids.push(face);
            continue;
        }
        let parsed = basis.as_deref().and_then(|b| b.parse::<LegalBasis>().ok());
        let mut decision = policy.decide(parsed);
        if decision == FileDecision::Pixelate && kind != "image" {
            decision = FileDecision::Hide;
        }
        files.push(FilePlan {
            asset_id: asset,
            filename,
            kind,
            decision,
            basis,
            faces: 1,
            face_ids: vec![face],
        });
    }
    let agreement_ids = agreement_ids(c, tenant, person)?;
    let documents: i64 = agreement_documents::table
        .filter(agreement_documents::tenant_id.eq(tenant))
        .filter(agreement_documents::agreement_id.eq_any(&agreement_ids))
        .count()
        .get_result(c)?;
    let templates: i64 = face_templates::table
        .filter(face_templates::tenant_id.eq(tenant))
        .filter(face_templates::person_id.eq(person))
        .count()
        .get_result(c)?;
    let open: i64 = signing_requests::table
        .filter(signing_requests::tenant_id.eq(tenant))
        .filter(signing_requests::person_id.eq(person))
        .filter(signing_requests::status.eq_any(["sent", "opened"]))
        .count()
        .get_result(c)?;
    let changed: Vec<String> = files
        .iter()
        .filter(|f| f.decision != FileDecision::Keep)
        .map(|f| f.asset_id.clone())
        .collect();
    let links: Vec<String> = share_link_assets::table
        .inner_join(share_links::table.on(share_links::id.eq(share_link_assets::share_id)))
        .filter(share_links::tenant_id.eq(tenant))
        .filter(share_links::revoked_at.is_null())
        .filter(share_link_assets::asset_id.eq_any(&changed))
        .select(share_links::id)
        .distinct()
        .load(c)?;
    let exports: i64 = access_exports::table
        .filter(access_exports::tenant_id.eq(tenant))
        .filter(access_exports::person_id.eq(person))
        .count()
        .get_result(c)?;
    let messages = message_ids(c, tenant, person, &[])?.len();
    Ok(ErasurePreview {
        person_id: person.to_string(),
        pseudonym,
        policy,
        files,
        agreements: agreement_ids.len(),
        documents: usize::try_from(documents).unwrap_or(0),
        templates: usize::try_from(templates).unwrap_or(0),
        signing_requests: usize::try_from(open).unwrap_or(0),
        share_links: links.len(),
        exports: usize::try_from(exports).unwrap_or(0),
        messages,
        matcher_needed: templates > 0 || enrolled,
    })
}

// ---------------------------------------------------------------------------------------------
// The steps.

/// What a step asks of the driver.
enum Next {
    /// Go on with the next step.
    Continue,
    /// The run waits for the matcher (status `waiting`); the job retries.
    Wait(String),
}

fn drop_candidate(json: &str, person: &str) -> Option<String> {
    let mut v: Vec<serde_json::Value> = serde_json::from_str(json).ok()?;
    let before = v.len();
    v.retain(|c| c.get("person_id").and_then(|p| p.as_str()) != Some(person));
    (v.len() != before).then(|| serde_json::to_string(&v).unwrap_or_else(|_| "[]".into()))
}

fn step_signing(c: &mut DbConn, run: &RunRow, who: &Who, now: chrono::NaiveDateTime) -> Result<()> {
    let (t, p) = (&run.tenant_id, &run.person_id);
    let mut report = run.report()?;
    let ids = signing_request_ids(c, t, p)?;
    for chunk in ids.chunks(500) {
        report.signing_requests_revoked += diesel::update(
            signing_requests::table
                .filter(signing_requests::tenant_id.eq(t))
                .filter(signing_requests::id.eq_any(chunk))
                .filter(signing_requests::status.eq_any(["sent", "opened"])),
        )
        .set((
            signing_requests::status.eq("revoked"),
            signing_requests::revoked_at.eq(Some(now)),
            signing_requests::revoked_by.eq(Some(who.user_id.clone().unwrap_or(who.label.clone()))),
            signing_requests::revoke_reason.eq(Some(REVOKE_REASON)),
        ))
        .execute(c)?;
        report.signing_requests_cleared += diesel::update(
            signing_requests::table
                .filter(signing_requests::tenant_id.eq(t))
                .filter(signing_requests::id.eq_any(chunk)),
        )
        .set((
            signing_requests::destination.eq(""),
            signing_requests::pending_json.eq(None::<String>),
            signing_requests::ip.eq(None::<String>),
            signing_requests::user_agent.eq(None::<String>),
            signing_requests::updated_at.eq(now),
        ))
        .execute(c)?;
        diesel::delete(
            otp_challenges::table
                .filter(otp_challenges::tenant_id.eq(t))
                .filter(otp_challenges::request_id.eq_any(chunk)),
        )
        .execute(c)?;
    }
    save(c, run, next_step(&run.step), &report, now)
}

/// Unlinks the person's faces `face_ids` on a file: `erased` keeps them as faces of an erased
/// person (hide), otherwise they become unknown; `pixelated` also makes them unidentifiable.
fn unlink_faces(
    c: &mut DbConn,
    tenant: &str,
    face_ids: &[String],
    status: FaceStatus,
    pixelated: bool,
) -> Result<usize> {
    let n = diesel::update(
        faces::table
            .filter(faces::tenant_id.eq(tenant))
            .filter(faces::id.eq_any(face_ids)),
    )
    .set((
        faces::status.eq(status.as_str()),
        faces::person_id.eq(None::<String>),
        faces::template_enrolled.eq(false),
        faces::candidates_json.eq(None::<String>),
    ))
    .execute(c)?;
    if pixelated {
        diesel::update(
            faces::table
                .filter(faces::tenant_id.eq(tenant))
                .filter(faces::id.eq_any(face_ids)),
        )
        .set(faces::identifiable.eq(false))
        .execute(c)?;
    }
    Ok(n)
}

/// Destroys every version of a file older than `current` (rows now, blobs in the `shred` step)
/// and its renditions; returns the blobs to destroy.
fn drop_old_versions(
    c: &mut DbConn,
    tenant: &str,
    asset_id: &str,
    current: i32,
) -> Result<Vec<String>> {
    let mut blobs: Vec<String> = asset_versions::table
        .filter(asset_versions::tenant_id.eq(tenant))
        .filter(asset_versions::asset_id.eq(asset_id))
        .filter(asset_versions::version.lt(current))
        .select(asset_versions::blob_key)
        .load(c)?;
    diesel::delete(
        asset_versions::table
            .filter(asset_versions::tenant_id.eq(tenant))
            .filter(asset_versions::asset_id.eq(asset_id))
            .filter(asset_versions::version.lt(current)),
    )
    .execute(c)?;
    blobs.extend(
        renditions::table
            .filter(renditions::tenant_id.eq(tenant))
            .filter(renditions::asset_id.eq(asset_id))
            .filter(renditions::asset_version.lt(current))
            .select(renditions::blob_key)
            .load::<String>(c)?,
    );
    diesel::delete(
        renditions::table
            .filter(renditions::tenant_id.eq(tenant))
            .filter(renditions::asset_id.eq(asset_id))
            .filter(renditions::asset_version.lt(current)),
    )
    .execute(c)?;
    Ok(blobs)
}

/// Hides or keeps one file (no bytes change): one transaction with the run's progress.
fn file_without_pixels(
    c: &mut DbConn,
    run: &RunRow,
    f: &FilePlan,
    decision: FileDecision,
    note: Option<String>,
    now: chrono::NaiveDateTime,
) -> Result<()> {
    let t = &run.tenant_id;
    let mut report = run.report()?;
    let status = if decision == FileDecision::Hide {
        FaceStatus::Erased
    } else {
        FaceStatus::Unknown
    };
    unlink_faces(c, t, &f.face_ids, status, false)?;
    crate::exposure::refresh_assets(c, t, std::slice::from_ref(&f.asset_id), now)?;
    report.files.push(FileOutcome {
        asset_id: f.asset_id.clone(),
        decision,
        basis: (decision == FileDecision::Keep)
            .then(|| f.basis.clone())
            .flatten(),
        version: None,
        note,
    });
    save(c, run, &run.step, &report, now)
}

async fn step_file(deps: &Deps, run: &RunRow, f: &FilePlan) -> Result<()> {
    let now = deps.clock.now();
    if f.decision != FileDecision::Pixelate {
        let (r, f) = (run.clone(), f.clone());
        return db::run(&deps.pool, move |c| {
            secure_delete(c);
            db::write_tx(c, |c| file_without_pixels(c, &r, &f, f.decision, None, now))
        })
        .await;
    }
    // Pixelate: render the new version outside the transaction, then record it.
    let media = crate::assets::media(deps)?;
    let (t, a, ids) = (
        run.tenant_id.clone(),
        f.asset_id.clone(),
        f.face_ids.clone(),
    );
    let (row, boxes) = db::run(&deps.pool, move |c| {
        let row = crate::assets::get_row(c, &t, &a)?;
        let boxes: Vec<(f64, f64, f64, f64)> = faces::table
            .filter(faces::tenant_id.eq(&t))
            .filter(faces::id.eq_any(&ids))
            .select((faces::box_x1, faces::box_y1, faces::box_x2, faces::box_y2))
            .load(c)?;
        Ok((row, boxes))
    })
    .await?;
    let boxes: Vec<FaceBox> = boxes.into_iter().map(|b| [b.0, b.1, b.2, b.3]).collect();
    let (m, t, src) = (media.clone(), run.tenant_id.clone(), row.blob_key.clone());
    let stored = crate::blocking(move || bystanders::store_pixelated(&m, &t, &src, &boxes)).await?;
    let stored = match stored {
        Ok(s) => s,
        Err(e) if !e.is_retryable() => {
            // Not an image we can decode: hide it instead.
            let note = format!("could not be pixelated ({e}): hidden instead");
            let (r, f) = (run.clone(), f.clone());
            return db::run(&deps.pool, move |c| {
                secure_delete(c);
                db::write_tx(c, |c| {
                    file_without_pixels(c, &r, &f, FileDecision::Hide, Some(note), now)
                })
            })
            .await;
        }
        Err(e) => return Err(e),
    };
    let (r, f2, s) = (run.clone(), f.clone(), stored.clone());
    let based_on = row.current_version;
    let res = db::run(&deps.pool, move |c| {
        secure_delete(c);
        db::write_tx(c, |c| {
            let t = &r.tenant_id;
            let mut report = r.report()?;
            let rec = bystanders::record_version(c, t, &f2.asset_id, based_on, &s, now)?;
            unlink_faces(c, t, &f2.face_ids, FaceStatus::Unknown, true)?;
            let mut blobs = drop_old_versions(c, t, &f2.asset_id, rec.version)?;
            blobs.extend(rec.old_thumb);
            report.pending_blobs.extend(blobs);
            crate::exposure::refresh_assets(c, t, std::slice::from_ref(&f2.asset_id), now)?;
            report.files.push(FileOutcome {
                asset_id: f2.asset_id.clone(),
                decision: FileDecision::Pixelate,
                basis: None,
                version: Some(rec.version),
                note: None,
            });
            save(c, &r, &r.step, &report, now)
        })
    })
    .await;
    match res {
        Ok(()) => {
            deps.renditions.forget_asset(&run.tenant_id, &f.asset_id);
            Ok(())
        }
        Err(e) => {
            let t = run.tenant_id.clone();
            crate::blocking(move || bystanders::discard(&media, &t, &stored)).await?;
            Err(e)
        }
    }
}

fn step_faces(c: &mut DbConn, run: &RunRow, now: chrono::NaiveDateTime) -> Result<()> {
    let (t, p) = (&run.tenant_id, &run.person_id);
    let mut report = run.report()?;
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let linked: Vec<(String, String)> = faces::table
        .filter(faces::tenant_id.eq(t))
        .filter(faces::person_id.eq(p))
        .select((faces::id, faces::asset_id))
        .load(c)?;
    let ids: Vec<String> = linked.iter().map(|(id, _)| id.clone()).collect();
    touched.extend(linked.into_iter().map(|(_, a)| a));
    report.faces_unlinked += unlink_faces(c, t, &ids, FaceStatus::Unknown, false)?;
    // Suggestions naming the person on other faces.
    let with_candidates: Vec<(String, String, Option<String>)> = faces::table
        .filter(faces::tenant_id.eq(t))
        .filter(faces::candidates_json.like(format!("%{p}%")))
        .select((faces::id, faces::asset_id, faces::candidates_json))
        .load(c)?;
    for (id, asset, json) in with_candidates {
        if let Some(fixed) = json.as_deref().and_then(|j| drop_candidate(j, p)) {
            diesel::update(faces::table.filter(faces::id.eq(&id)))
                .set(faces::candidates_json.eq(Some(fixed)))
                .execute(c)?;
            touched.insert(asset);
        }
    }
    report.rejections_deleted += diesel::delete(
        face_rejections::table
            .filter(face_rejections::tenant_id.eq(t))
            .filter(face_rejections::person_id.eq(p)),
    )
    .execute(c)?;
    diesel::update(
        persons::table
            .filter(persons::tenant_id.eq(t))
            .filter(persons::guardian_person_id.eq(p)),
    )
    .set(persons::guardian_person_id.eq(None::<String>))
    .execute(c)?;
    let touched: Vec<String> = touched.into_iter().collect();
    crate::exposure::refresh_assets(c, t, &touched, now)?;
    save(c, run, next_step(&run.step), &report, now)
}

async fn step_templates(deps: &Deps, run: &RunRow) -> Result<Next> {
    let (t, p) = (run.tenant_id.clone(), run.person_id.clone());
    let recorded: i64 = {
        let (t, p) = (t.clone(), p.clone());
        db::run(&deps.pool, move |c| {
            Ok(face_templates::table
                .filter(face_templates::tenant_id.eq(&t))
                .filter(face_templates::person_id.eq(&p))
                .count()
                .get_result(c)?)
        })
        .await?
    };
    let needed = run.plan()?.matcher_needed;
    let mut report = run.report()?;
    if needed || recorded > 0 {
        // Removed from the matcher first, forgotten here after: a failure leaves them recorded
        // and the run waits (the removal is tried again).
        match crate::faces::remove_person_templates_now(deps, &t, &p).await {
            Ok(()) => {
                report.templates_removed += u32::try_from(recorded).unwrap_or(u32::MAX);
            }
            Err(e) if e.is_retryable() => return Ok(Next::Wait(e.to_string())),
            Err(e) => return Err(e),
        }
    }
    let (r, now) = (run.clone(), deps.clock.now());
    db::run(&deps.pool, move |c| {
        db::write_tx(c, |c| save(c, &r, next_step(&r.step), &report, now))
    })
    .await?;
    Ok(Next::Continue)
}

fn step_documents(c: &mut DbConn, run: &RunRow, now: chrono::NaiveDateTime) -> Result<()> {
    let (t, p) = (&run.tenant_id, &run.person_id);
    let mut report = run.report()?;
    let ids = agreement_ids(c, t, p)?;
    for chunk in ids.chunks(500) {
        let blobs: Vec<String> = agreement_documents::table
            .filter(agreement_documents::tenant_id.eq(t))
            .filter(agreement_documents::agreement_id.eq_any(chunk))
            .select(agreement_documents::blob_key)
            .load(c)?;
        report.documents_deleted += diesel::delete(
            agreement_documents::table
                .filter(agreement_documents::tenant_id.eq(t))
                .filter(agreement_documents::agreement_id.eq_any(chunk)),
        )
        .execute(c)?;
        report.pending_blobs.extend(blobs);
        diesel::update(
            agreements::table
                .filter(agreements::tenant_id.eq(t))
                .filter(agreements::id.eq_any(chunk)),
        )
        .set((
            agreements::note.eq(None::<String>),
            agreements::withdrawal_reason.eq(None::<String>),
            agreements::documents_deleted_at.eq(Some(now)),
        ))
        .execute(c)?;
    }
    save(c, run, next_step(&run.step), &report, now)
}

fn step_links(
    c: &mut DbConn,
    run: &RunRow,
    who: &Who,
    contacts: &[String],
    now: chrono::NaiveDateTime,
) -> Result<()> {
    let (t, p) = (&run.tenant_id, &run.person_id);
    let mut report = run.report()?;
    // Share links: the files hidden or pixelated leave them; a link left empty is revoked.
    let changed: Vec<String> = report
        .files
        .iter()
        .filter(|f| f.decision != FileDecision::Keep)
        .map(|f| f.asset_id.clone())
        .collect();
    let links: Vec<String> = share_link_assets::table
        .inner_join(share_links::table.on(share_links::id.eq(share_link_assets::share_id)))
        .filter(share_links::tenant_id.eq(t))
        .filter(share_link_assets::asset_id.eq_any(&changed))
        .select(share_links::id)
        .distinct()
        .load(c)?;
    diesel::delete(
        share_link_assets::table
            .filter(share_link_assets::share_id.eq_any(&links))
            .filter(share_link_assets::asset_id.eq_any(&changed)),
    )
    .execute(c)?;
    report.share_links_changed += links.len();
    let still: HashSet<String> = share_link_assets::table
        .filter(share_link_assets::share_id.eq_any(&links))
        .select(share_link_assets::share_id)
        .distinct()
        .load::<String>(c)?
        .into_iter()
        .collect();
    let empty: Vec<String> = links.into_iter().filter(|l| !still.contains(l)).collect();
    report.share_links_revoked += diesel::update(
        share_links::table
            .filter(share_links::tenant_id.eq(t))
            .filter(share_links::id.eq_any(&empty))
            .filter(share_links::revoked_at.is_null()),
    )
    .set((
        share_links::revoked_at.eq(Some(now)),
        share_links::revoked_by.eq(Some(who.user_id.clone().unwrap_or(who.label.clone()))),
    ))
    .execute(c)?;
    // Access exports.
    let blobs: Vec<Option<String>> = access_exports::table
        .filter(access_exports::tenant_id.eq(t))
        .filter(access_exports::person_id.eq(p))
        .select(access_exports::blob_key)
        .load(c)?;
    report.pending_blobs.extend(blobs.into_iter().flatten());
    report.exports_deleted += diesel::delete(
        access_exports::table
            .filter(access_exports::tenant_id.eq(t))
            .filter(access_exports::person_id.eq(p)),
    )
    .execute(c)?;
    // Outbox messages and their delivery jobs.
    let messages = message_ids(c, t, p, contacts)?;
    for chunk in messages.chunks(500) {
        report.messages_deleted += diesel::delete(
            outbox::table
                .filter(outbox::tenant_id.eq(t))
                .filter(outbox::id.eq_any(chunk)),
        )
        .execute(c)?;
    }
    for id in &messages {
        diesel::delete(
            jobs::table
                .filter(jobs::tenant_id.eq(t))
                .filter(jobs::kind.eq(crate::job_kinds::DeliverMessage::KIND))
                .filter(jobs::payload_json.like(format!("%\"{id}\"%"))),
        )
        .execute(c)?;
    }
    save(c, run, next_step(&run.step), &report, now)
}

fn step_personal(c: &mut DbConn, run: &RunRow, now: chrono::NaiveDateTime) -> Result<()> {
    let report = run.report()?;
    diesel::update(
        persons::table
            .filter(persons::tenant_id.eq(&run.tenant_id))
            .filter(persons::id.eq(&run.person_id)),
    )
    .set((
        persons::name.eq(""),
        persons::email.eq(None::<String>),
        persons::phone.eq(None::<String>),
        persons::date_of_birth.eq(None::<chrono::NaiveDate>),
        persons::guardian_person_id.eq(None::<String>),
        persons::guardian_name.eq(None::<String>),
        persons::guardian_contact.eq(None::<String>),
        persons::custom_fields_json.eq("{}"),
        persons::avatar_face_id.eq(None::<String>),
        persons::sealed.eq(None::<String>),
        persons::email_index.eq(None::<String>),
        persons::phone_index.eq(None::<String>),
        persons::erased_at.eq(Some(now)),
        persons::deleted_at.eq(Some(now)),
        persons::updated_at.eq(now),
    ))
    .execute(c)?;
    save(c, run, next_step(&run.step), &report, now)
}

async fn step_shred(deps: &Deps, run: &RunRow) -> Result<()> {
    let mut report = run.report()?;
    let pending = std::mem::take(&mut report.pending_blobs);
    if !pending.is_empty() {
        let media = crate::assets::media(deps)?;
        let t = run.tenant_id.clone();
        let n = crate::blocking(move || {
            let mut n = 0usize;
            for b in &pending {
                if media
                    .blobs
                    .shred(&t, b)
                    .map_err(crate::assets::media_error)?
                {
                    n += 1;
                }
            }
            Ok::<usize, ControlError>(n)
        })
        .await??;
        report.blobs_destroyed += n;
    }
    let (r, now) = (run.clone(), deps.clock.now());
    db::run(&deps.pool, move |c| {
        db::write_tx(c, |c| save(c, &r, next_step(&r.step), &report, now))
    })
    .await
}

async fn step_key(deps: &Deps, run: &RunRow) -> Result<()> {
    let mut report = run.report()?;
    let vault = deps.vault()?;
    let (t, p) = (run.tenant_id.clone(), run.person_id.clone());
    let destroyed = crate::blocking(move || vault.destroy_person_key(&t, &p)).await??;
    report.key_destroyed |= destroyed;
    let (r, now) = (run.clone(), deps.clock.now());
    db::run(&deps.pool, move |c| {
        db::write_tx(c, |c| save(c, &r, next_step(&r.step), &report, now))
    })
    .await
}

fn step_finish(c: &mut DbConn, run: &RunRow, who: &Who, now: chrono::NaiveDateTime) -> Result<()> {
    let report = run.report()?;
    let count = |d: FileDecision| report.files.iter().filter(|f| f.decision == d).count();
    crate::events::record(
        c,
        &run.tenant_id,
        crate::events::PERSON_ERASED,
        "person",
        &run.person_id,
        serde_json::json!({"person_id": run.person_id, "files": report.files.len()}),
        now,
    )?;
    audit::record(
        c,
        who,
        "person.erase",
        "person",
        Some(&run.person_id),
        serde_json::json!({
            "pseudonym": run.pseudonym,
            "erasure_id": run.id,
            "requested_by": run.requested_by,
            "files_pixelated": count(FileDecision::Pixelate),
            "files_hidden": count(FileDecision::Hide),
            "files_kept": count(FileDecision::Keep),
            "faces_unlinked": report.faces_unlinked,
            "templates_removed": report.templates_removed,
            "documents_deleted": report.documents_deleted,
            "signing_requests_revoked": report.signing_requests_revoked,
            "share_links_changed": report.share_links_changed,
            "exports_deleted": report.exports_deleted,
            "messages_deleted": report.messages_deleted,
            "blobs_destroyed": report.blobs_destroyed,
            "key_destroyed": report.key_destroyed,
        }),
    )?;
    save(c, run, DONE, &report, now)
}

// ---------------------------------------------------------------------------------------------
// The driver.

/// Runs the steps of run `run_id` from where it stands, as far as they go: to `done`, or to a
/// step that waits for the matcher (status `waiting`), or to an error (a retryable one leaves
/// the run `running` for the job; any other marks it `failed`). Returns the run as it stands.
pub async fn drive(deps: &Deps, tenant: &str, run_id: &str, who: &Who) -> Result<ErasureRunOut> {
    // A bound, not a limit that matters: each pass commits one step or one file.
    for _ in 0..100_000 {
        let (t, id) = (tenant.to_string(), run_id.to_string());
        let run = db::run(&deps.pool, move |c| load_run(c, &t, &id)).await?;
        if run.step == DONE {
            return run.out();
        }
        let step = run.step.clone();
        let r = one_step(deps, &run, who).await;
        match r {
            Ok(Next::Continue) => {}
            Ok(Next::Wait(why)) => {
                let (id, now) = (run.id.clone(), deps.clock.now());
                db::run(&deps.pool, move |c| {
                    set_status(c, &id, "waiting", &why, now)
                })
                .await?;
                let (t, id) = (tenant.to_string(), run_id.to_string());
                return db::run(&deps.pool, move |c| load_run(c, &t, &id))
                    .await?
                    .out();
            }
            Err(ControlError::Conflict {
                code: "erasure_busy",
                ..
            }) => continue,
            Err(e) => {
                let status = if e.is_retryable() {
                    "running"
                } else {
                    "failed"
                };
                let (id, now, msg) = (run.id.clone(), deps.clock.now(), e.to_string());
                let _ = db::run(&deps.pool, move |c| set_status(c, &id, status, &msg, now)).await;
                return Err(e);
            }
        }
        if step == "files" {
            crate::failpoint::failpoint("erasure.after_file");
        }
        let (t, id) = (tenant.to_string(), run_id.to_string());
        let now_step = db::run(&deps.pool, move |c| load_run(c, &t, &id))
            .await?
            .step;
        if now_step != step {
            crate::failpoint::failpoint(&format!("erasure.after_{step}"));
        }
    }
    Err(ControlError::Internal(format!(
        "erasure {run_id} did not finish"
    )))
}

async fn one_step(deps: &Deps, run: &RunRow, who: &Who) -> Result<Next> {
    let now = deps.clock.now();
    let (r, w) = (run.clone(), who.clone());
    match run.step.as_str() {
        "signing" => {
            db::run(&deps.pool, move |c| {
                secure_delete(c);
                db::write_tx(c, |c| step_signing(c, &r, &w, now))
            })
            .await?
        }
        "files" => {
            let plan = run.plan()?;
            let report = run.report()?;
            let done: HashSet<&str> = report.files.iter().map(|f| f.asset_id.as_str()).collect();
            match plan
                .files
                .iter()
                .find(|f| !done.contains(f.asset_id.as_str()))
            {
                Some(f) => step_file(deps, run, f).await?,
                None => {
                    db::run(&deps.pool, move |c| {
                        db::write_tx(c, |c| save(c, &r, next_step(&r.step), &report, now))
                    })
                    .await?
                }
            }
        }
        "faces" => {
            db::run(&deps.pool, move |c| {
                secure_delete(c);
                db::write_tx(c, |c| step_faces(c, &r, now))
            })
            .await?
        }
        "templates" => return step_templates(deps, run).await,
        "documents" => {
            db::run(&deps.pool, move |c| {
                secure_delete(c);
                db::write_tx(c, |c| step_documents(c, &r, now))
            })
            .await?
        }
        "links" => {
            let vault = deps.vault().ok();
            db::run(&deps.pool, move |c| {
                secure_delete(c);
                let contacts = contacts_of(c, vault.as_deref(), &r.tenant_id, &r.person_id)?;
                db::write_tx(c, |c| step_links(c, &r, &w, &contacts, now))
            })
            .await?
        }
        "personal" => {
            db::run(&deps.pool, move |c| {
                secure_delete(c);
                db::write_tx(c, |c| step_personal(c, &r, now))
            })
            .await?
        }
        "shred" => step_shred(deps, run).await?,
        "key" => step_key(deps, run).await?,
        "finish" => {
            db::run(&deps.pool, move |c| {
                secure_delete(c);
                db::write_tx(c, |c| step_finish(c, &r, &w, now))?;
                checkpoint(c);
                Ok(())
            })
            .await?
        }
        other => {
            return Err(ControlError::Internal(format!(
                "erasure {}: unknown step {other:?}",
                run.id
            )));
        }
    }
    Ok(Next::Continue)
}

/// The `erase_person` job: drives the run; while it waits for the matcher the job is retried.
pub async fn run_job(deps: &Deps, tenant: &str, run_id: &str) -> Result<()> {
    let who = Who::system("system:erasure", Some(tenant));
    let out = drive(deps, tenant, run_id, &who).await?;
    match out.status.as_str() {
        "waiting" => Err(ControlError::Unavailable {
            code: "matcher_unavailable",
            message: out
                .last_error
                .unwrap_or_else(|| "the erasure waits for the face matcher".into()),
        }),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Use cases.

fn require(ctx: &Ctx) -> Result<()> {
    ctx.require(Permission::ManagePersons)?;
    ctx.require(Permission::Erase)
}

/// The consequences of erasing a person, before confirming (`manage_persons` and `erase`).
pub async fn preview_erasure(ctx: &Ctx, person_id: String) -> Result<ErasurePreview> {
    require(ctx)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| plan(c, &t, &person_id)).await
}

/// Erases a person (`manage_persons` and `erase`): creates the run (or returns the existing
/// one, resuming it if it failed), fixes the plan, marks the person deleted, queues the
/// [`ErasePerson`] job (it takes over if this call does not finish) and runs the steps inline
/// as far as they go.
pub async fn start_erasure(ctx: &Ctx, person_id: String) -> Result<ErasureRunOut> {
    require(ctx)?;
    let (t, who, now) = (ctx.tenant().to_string(), ctx.who(), ctx.now);
    let run_id = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            if let Some(run) = run_of_person(c, &t, &person_id)? {
                if run.status == "failed" {
                    set_status(c, &run.id, "running", "resumed", now)?;
                    crate::jobs::enqueue_job_now(
                        c,
                        &t,
                        &ErasePerson {
                            run_id: run.id.clone(),
                        },
                        now,
                    )?;
                }
                return Ok(run.id);
            }
            let plan = plan(c, &t, &person_id)?;
            let id = db::new_id();
            diesel::insert_into(erasure_runs::table)
                .values((
                    erasure_runs::id.eq(&id),
                    erasure_runs::tenant_id.eq(&t),
                    erasure_runs::person_id.eq(&person_id),
                    erasure_runs::pseudonym.eq(&plan.pseudonym),
                    erasure_runs::status.eq("running"),
                    erasure_runs::step.eq(STEPS[0]),
                    erasure_runs::plan_json.eq(serde_json::to_string(&plan)?),
                    erasure_runs::report_json.eq(serde_json::to_string(&ErasureReport::default())?),
                    erasure_runs::requested_by.eq(who.user_id.clone().or(Some(who.label.clone()))),
                    erasure_runs::created_at.eq(now),
                    erasure_runs::updated_at.eq(now),
                ))
                .execute(c)?;
            // The person leaves the register now (no new links, requests or lookups).
            diesel::update(
                persons::table
                    .filter(persons::tenant_id.eq(&t))
                    .filter(persons::id.eq(&person_id))
                    .filter(persons::deleted_at.is_null()),
            )
            .set(persons::deleted_at.eq(Some(now)))
            .execute(c)?;
            crate::jobs::enqueue_job_at(
                c,
                &t,
                &ErasePerson { run_id: id.clone() },
                now + chrono::Duration::seconds(JOB_DELAY_SECS),
                now,
            )?;
            audit::record(
                c,
                &who,
                "person.erase_requested",
                "person",
                Some(&person_id),
                serde_json::json!({
                    "pseudonym": plan.pseudonym, "erasure_id": id, "files": plan.files.len(),
                }),
            )?;
            Ok(id)
        })
    })
    .await?;
    crate::failpoint::failpoint("erasure.after_start");
    let who = ctx.who();
    match drive(&ctx.deps, ctx.tenant(), &run_id, &who).await {
        Ok(out) => Ok(out),
        // A retryable failure is left to the job: the run as it stands is the answer.
        Err(e) if e.is_retryable() => {
            let (t, id) = (ctx.tenant().to_string(), run_id);
            db::run(&ctx.deps.pool, move |c| load_run(c, &t, &id))
                .await?
                .out()
        }
        Err(e) => Err(e),
    }
}

/// One erasure run (`manage_persons` and `erase`).
pub async fn get_erasure(ctx: &Ctx, run_id: String) -> Result<ErasureRunOut> {
    require(ctx)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| load_run(c, &t, &run_id))
        .await?
        .out()
}

/// The erasure run of a person, if one was started (`manage_persons` and `erase`).
pub async fn erasure_of_person(ctx: &Ctx, person_id: String) -> Result<Option<ErasureRunOut>> {
    require(ctx)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| run_of_person(c, &t, &person_id))
        .await?
        .map(|r| r.out())
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_each_other_to_done() {
        let mut s = STEPS[0];
        let mut seen = vec![s];
        while s != DONE {
            s = next_step(s);
            seen.push(s);
        }
        assert_eq!(seen.len(), STEPS.len() + 1);
        assert_eq!(next_step("nonsense"), DONE);
    }

    #[test]
    fn candidates_lose_the_erased_person_only() {
        let j = r#"[{"person_id":"a","score":0.9},{"person_id":"b","score":0.5}]"#;
        let out = drop_candidate(j, "a").unwrap_or_default();
        assert!(!out.contains("\"a\""), "{out}");
        assert!(out.contains("\"b\""), "{out}");
        assert_eq!(drop_candidate(j, "c"), None);
    }
}

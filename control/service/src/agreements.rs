//! Agreements (consents) of persons: create, list, read, withdraw, and attached documents (scans,
//! recordings) stored encrypted in the blob store. Every read is audited (consents are personal
//! data).

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use likeness_control_domain::{ConsentSource, TenantSettings, validate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Ctx;
use crate::audit::{self, Who};
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::Permission;
use crate::schema::{agreement_documents, agreements, persons};
use crate::settings::{self, domain_error};

/// Longest accepted note or withdrawal reason, in characters.
pub const MAX_TEXT_LEN: usize = 2000;

/// A consent to record.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgreement {
    /// Channels covered (each one of the tenant's channels).
    #[schema(example = json!(["web", "social"]))]
    pub channels: Vec<String>,
    /// First day the consent is valid.
    pub valid_from: NaiveDate,
    /// Last day it is valid (inclusive); absent = until withdrawn.
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
    /// How it was given.
    pub source: ConsentSource,
    /// Whether it explicitly covers biometric face matching (Art. 9).
    #[serde(default)]
    pub covers_face_matching: bool,
    /// Whether a guardian signed it (needed for minors).
    #[serde(default)]
    pub signed_by_guardian: bool,
    /// sha256 (hex) of the consent text the person agreed to.
    #[serde(default)]
    pub text_sha256: Option<String>,
    /// A free-text note.
    #[serde(default)]
    pub note: Option<String>,
}

/// A withdrawal.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    /// When the person withdrew (UTC; default now; not in the future). The consent counts as
    /// withdrawn from that day on.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub at: Option<NaiveDateTime>,
    /// Why (as the person said, or how the withdrawal arrived).
    pub reason: String,
}

/// A document attached to an agreement.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = agreement_documents)]
pub struct DocumentOut {
    /// ID.
    pub id: String,
    /// The agreement.
    pub agreement_id: String,
    /// Original file name.
    pub filename: String,
    /// Detected media type.
    pub mime: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// sha256 of the content (hex).
    pub sha256: String,
    /// Stored (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agreements)]
struct Row {
    id: String,
    tenant_id: String,
    person_id: String,
    channels_json: String,
    valid_from: NaiveDate,
    valid_until: Option<NaiveDate>,
    source: String,
    covers_face_matching: bool,
    signed_by_guardian: bool,
    text_sha256: Option<String>,
    note: Option<String>,
    withdrawn_at: Option<NaiveDateTime>,
    withdrawal_reason: Option<String>,
    created_by: Option<String>,
    created_at: NaiveDateTime,
}

/// The state of an agreement today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgreementState {
    /// In force.
    Active,
    /// Starts later.
    NotYetValid,
    /// Ended (valid_until passed).
    Expired,
    /// Withdrawn.
    Withdrawn,
}

/// An agreement with its documents.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgreementOut {
    /// ID.
    pub id: String,
    /// The person who consented.
    pub person_id: String,
    /// Channels covered.
    pub channels: Vec<String>,
    /// First day valid.
    pub valid_from: NaiveDate,
    /// Last day valid (inclusive), if limited.
    pub valid_until: Option<NaiveDate>,
    /// How it was given.
    pub source: ConsentSource,
    /// Covers biometric face matching.
    pub covers_face_matching: bool,
    /// Signed by a guardian.
    pub signed_by_guardian: bool,
    /// sha256 of the consent text.
    pub text_sha256: Option<String>,
    /// Note.
    pub note: Option<String>,
    /// When it was withdrawn (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub withdrawn_at: Option<NaiveDateTime>,
    /// Why it was withdrawn.
    pub withdrawal_reason: Option<String>,
    /// Recorded by (user ID).
    pub created_by: Option<String>,
    /// Recorded (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
    /// Its state today (UTC date).
    pub state: AgreementState,
    /// Attached documents.
    pub documents: Vec<DocumentOut>,
}

/// Today's date (UTC) on the system clock. The services use their clock's day instead
/// (`ctx.today()`, `deps.clock.today()`).
pub fn today() -> NaiveDate {
    db::now().date()
}

fn state_on(r: &Row, day: NaiveDate) -> AgreementState {
    if r.withdrawn_at.is_some_and(|w| w.date() <= day) {
        AgreementState::Withdrawn
    } else if day < r.valid_from {
        AgreementState::NotYetValid
    } else if r.valid_until.is_some_and(|u| u < day) {
        AgreementState::Expired
    } else {
        AgreementState::Active
    }
}

/// Seals a free-text field of an agreement (note, withdrawal reason) under the person's key:
/// staff may write a name or a family detail there, and erasure must reach backups of it too.
fn seal_text_of(tenant_id: &str, person_id: &str, text: Option<&str>) -> Result<Option<String>> {
    match text {
        None => Ok(None),
        Some(t) => Ok(Some(
            crate::vault::ambient(tenant_id, person_id)?.seal_text(tenant_id, person_id, t)?,
        )),
    }
}

/// Opens what [`seal_text_of`] sealed; text stored before the vault is returned as stored, and
/// nothing once the person's key is destroyed.
fn open_text_of(
    tenant_id: &str,
    person_id: &str,
    stored: Option<String>,
) -> Result<Option<String>> {
    match stored {
        Some(s) if crate::vault::Vault::is_sealed_text(&s) => {
            match crate::vault::ambient(tenant_id, person_id)?.open_text(tenant_id, person_id, &s) {
                Ok(t) => Ok(Some(t)),
                Err(ControlError::Gone { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        }
        other => Ok(other),
    }
}

/// The answer for `r` with its state on `day`.
fn out(r: Row, documents: Vec<DocumentOut>, day: NaiveDate) -> Result<AgreementOut> {
    let channels: Vec<String> = serde_json::from_str(&r.channels_json).map_err(|e| {
        ControlError::Internal(format!("agreement {}: bad channels_json: {e}", r.id))
    })?;
    let source: ConsentSource = r
        .source
        .parse()
        .map_err(|e| ControlError::Internal(format!("agreement {}: {e}", r.id)))?;
    let state = state_on(&r, day);
    let note = open_text_of(&r.tenant_id, &r.person_id, r.note.clone())?;
    let withdrawal_reason = open_text_of(&r.tenant_id, &r.person_id, r.withdrawal_reason.clone())?;
    Ok(AgreementOut {
        id: r.id,
        person_id: r.person_id,
        channels,
        valid_from: r.valid_from,
        valid_until: r.valid_until,
        source,
        covers_face_matching: r.covers_face_matching,
        signed_by_guardian: r.signed_by_guardian,
        text_sha256: r.text_sha256,
        note,
        withdrawn_at: r.withdrawn_at,
        withdrawal_reason,
        created_by: r.created_by,
        created_at: r.created_at,
        state,
        documents,
    })
}

/// 404 unless the person exists (and is not deleted) in the tenant.
pub fn require_person(conn: &mut DbConn, tenant_id: &str, person_id: &str) -> Result<()> {
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

fn text(field: &str, s: Option<String>) -> Result<Option<String>> {
    let Some(s) = s else { return Ok(None) };
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let n = t.chars().count();
    if n > MAX_TEXT_LEN {
        return Err(ControlError::invalid(
            field,
            format!("must be at most {MAX_TEXT_LEN} characters (got {n})"),
        ));
    }
    Ok(Some(t.to_string()))
}

/// Validates a new agreement against the tenant's settings; returns the normalised value.
pub fn validate_new(new: NewAgreement, settings: &TenantSettings) -> Result<NewAgreement> {
    validate::channels("channels", &new.channels).map_err(domain_error)?;
    for (i, c) in new.channels.iter().enumerate() {
        settings
            .check_channel(&format!("channels[{i}]"), c)
            .map_err(domain_error)?;
    }
    if let Some(u) = new.valid_until
        && u < new.valid_from
    {
        return Err(ControlError::invalid(
            "valid_until",
            format!("must not be before valid_from ({u} < {})", new.valid_from),
        ));
    }
    let text_sha256 = match new.text_sha256.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(h.to_ascii_lowercase())
        }
        Some(h) => {
            return Err(ControlError::invalid(
                "text_sha256",
                format!("must be 64 hex digits (got {} characters)", h.len()),
            ));
        }
    };
    Ok(NewAgreement {
        text_sha256,
        note: text("note", new.note)?,
        ..new
    })
}

fn documents_of(
    conn: &mut DbConn,
    tenant_id: &str,
    agreement_ids: &[String],
) -> Result<Vec<DocumentOut>> {
    Ok(agreement_documents::table
        .filter(agreement_documents::tenant_id.eq(tenant_id))
        .filter(agreement_documents::agreement_id.eq_any(agreement_ids))
        .order((
            agreement_documents::created_at.asc(),
            agreement_documents::id.asc(),
        ))
        .select(DocumentOut::as_select())
        .load(conn)?)
}

fn load(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<Row> {
    agreements::table
        .filter(agreements::tenant_id.eq(tenant_id))
        .filter(agreements::id.eq(id))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("agreement"))
}

fn full(conn: &mut DbConn, tenant_id: &str, r: Row, day: NaiveDate) -> Result<AgreementOut> {
    let docs = documents_of(conn, tenant_id, std::slice::from_ref(&r.id))?;
    out(r, docs, day)
}

/// Records a consent of `person_id` at `now` (the caller's clock: its `created_at`, and the
/// answer's `state` is the one on `now`'s day). Audited as `agreement.create`. Call inside
/// [`crate::db::write_tx`].
pub fn create(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    person_id: &str,
    new: NewAgreement,
    now: NaiveDateTime,
) -> Result<AgreementOut> {
    require_person(conn, tenant_id, person_id)?;
    let s = settings::get(conn, tenant_id)?;
    let new = validate_new(new, &s)?;
    let id = db::new_id();
    let channels_json = serde_json::to_string(&new.channels)?;
    let sealed_note = seal_text_of(tenant_id, person_id, new.note.as_deref())?;
    diesel::insert_into(agreements::table)
        .values((
            agreements::id.eq(&id),
            agreements::tenant_id.eq(tenant_id),
            agreements::person_id.eq(person_id),
            agreements::channels_json.eq(&channels_json),
            agreements::valid_from.eq(new.valid_from),
            agreements::valid_until.eq(new.valid_until),
            agreements::source.eq(new.source.as_str()),
            agreements::covers_face_matching.eq(new.covers_face_matching),
            agreements::signed_by_guardian.eq(new.signed_by_guardian),
            agreements::text_sha256.eq(&new.text_sha256),
            agreements::note.eq(&sealed_note),
            agreements::created_by.eq(&who.user_id),
            agreements::created_at.eq(now),
        ))
        .execute(conn)?;
    crate::exposure::refresh_person(conn, tenant_id, person_id, now)?;
    audit::record(
        conn,
        who,
        "agreement.create",
        "agreement",
        Some(&id),
        serde_json::json!({
            "person_id": person_id,
            "channels": new.channels,
            "valid_from": new.valid_from,
            "valid_until": new.valid_until,
            "source": new.source,
            "covers_face_matching": new.covers_face_matching,
            "signed_by_guardian": new.signed_by_guardian,
        }),
    )?;
    if new.covers_face_matching
        && let Some(until) = new.valid_until
    {
        queue_face_matching_end(conn, tenant_id, person_id, until, now)?;
    }
    let r = load(conn, tenant_id, &id)?;
    full(conn, tenant_id, r, now.date())
}

/// The moment a consent valid through `valid_until` (inclusive) has ended: the start of the
/// next day (UTC).
pub fn end_of_validity(valid_until: NaiveDate) -> NaiveDateTime {
    valid_until
        .succ_opt()
        .unwrap_or(valid_until)
        .and_time(chrono::NaiveTime::MIN)
}

/// Queues a `face_matching_consent_end` job due when a consent covering face matching ends
/// (in the caller's transaction): then the person's templates go unless another consent
/// covering face matching is in force. `now` (the caller's clock) stamps the job.
pub fn queue_face_matching_end(
    conn: &mut DbConn,
    tenant_id: &str,
    person_id: &str,
    valid_until: NaiveDate,
    now: NaiveDateTime,
) -> Result<String> {
    crate::jobs::enqueue_job_at(
        conn,
        tenant_id,
        &crate::job_kinds::FaceMatchingConsentEnd {
            person_id: person_id.to_string(),
        },
        end_of_validity(valid_until),
        now,
    )
}

/// Every agreement of a person, newest first, with documents and their state on `day` (the
/// caller's today). Audited as `agreement.list`. Call inside [`crate::db::write_tx`].
pub fn list_for_person(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    person_id: &str,
    day: NaiveDate,
) -> Result<Vec<AgreementOut>> {
    require_person(conn, tenant_id, person_id)?;
    let rows: Vec<Row> = agreements::table
        .filter(agreements::tenant_id.eq(tenant_id))
        .filter(agreements::person_id.eq(person_id))
        .order((agreements::created_at.desc(), agreements::id.desc()))
        .select(Row::as_select())
        .load(conn)?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut docs = documents_of(conn, tenant_id, &ids)?;
    let mut result = Vec::with_capacity(rows.len());
    for r in rows {
        let (mine, rest): (Vec<_>, Vec<_>) = docs.into_iter().partition(|d| d.agreement_id == r.id);
        docs = rest;
        result.push(out(r, mine, day)?);
    }
    audit::record(
        conn,
        who,
        "agreement.list",
        "person",
        Some(person_id),
        serde_json::json!({ "count": result.len() }),
    )?;
    Ok(result)
}

/// One agreement with its state on `day` (the caller's today). Audited as `agreement.read`.
/// Call inside [`crate::db::write_tx`].
pub fn get(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
    day: NaiveDate,
) -> Result<AgreementOut> {
    let r = load(conn, tenant_id, id)?;
    let person_id = r.person_id.clone();
    let a = full(conn, tenant_id, r, day)?;
    audit::record(
        conn,
        who,
        "agreement.read",
        "agreement",
        Some(id),
        serde_json::json!({ "person_id": person_id }),
    )?;
    Ok(a)
}

/// What a withdrawal did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WithdrawOutcome {
    /// The agreement after the withdrawal.
    pub agreement: AgreementOut,
    /// The person no longer has any consent in force today that covers face matching: their
    /// templates must be removed from the matcher.
    pub face_matching_ended: bool,
}

/// The day an agreement was signed, for the age that counts: the earlier of the day it was
/// recorded (`created_at`; it cannot have been signed later) and its first valid day
/// (`valid_from`; a consent valid from an earlier day was signed by then). Taking the earlier
/// day errs on the side of the minor: a consent recorded after an 18th birthday but valid
/// from a day before it counts as signed by a minor.
pub fn signing_day(valid_from: NaiveDate, created_at: NaiveDateTime) -> NaiveDate {
    valid_from.min(created_at.date())
}

/// Whether `person_id` has a consent in force on `day` that covers face matching — the one rule
/// (suggestion, enrolment, withdrawal and expiry all ask it). A consent counts when it covers
/// face matching, is in force on `day` (from `valid_from` through `valid_until`, not withdrawn
/// on or before `day`), and, if the person was a minor on its [`signing_day`] (below the
/// tenant's `age_threshold` by `date_of_birth`), was signed by a guardian. A person without a
/// date of birth on record is taken as an adult.
pub fn has_face_matching_consent(
    conn: &mut DbConn,
    tenant_id: &str,
    person_id: &str,
    day: NaiveDate,
) -> Result<bool> {
    let rows: Vec<Row> = agreements::table
        .filter(agreements::tenant_id.eq(tenant_id))
        .filter(agreements::person_id.eq(person_id))
        .filter(agreements::covers_face_matching.eq(true))
        .select(Row::as_select())
        .load(conn)?;
    let in_force: Vec<&Row> = rows
        .iter()
        .filter(|r| state_on(r, day) == AgreementState::Active)
        .collect();
    if in_force.is_empty() {
        return Ok(false);
    }
    if in_force.iter().any(|r| r.signed_by_guardian) {
        return Ok(true);
    }
    // The date of birth is sealed (the vault).
    let dob: Option<NaiveDate> =
        crate::persons::personal_one(conn, tenant_id, person_id)?.and_then(|p| p.date_of_birth);
    let Some(dob) = dob else {
        return Ok(true);
    };
    let threshold = settings::get(conn, tenant_id)?.age_threshold;
    Ok(in_force.iter().any(|r| {
        !likeness_control_domain::minor::is_minor(
            dob,
            signing_day(r.valid_from, r.created_at),
            threshold,
        )
    }))
}

/// Withdraws an agreement at `now`, the caller's clock: `at` defaults to `now` and may not lie
/// after it, and face matching ends when no consent covering it is in force on its day. A
/// second withdrawal answers 409 `already_withdrawn`. Audited as `agreement.withdraw`, and
/// the `consent.withdrawn` domain event is recorded. Call inside [`crate::db::write_tx`]; when [`WithdrawOutcome::face_matching_ended`] is set, the
/// caller queues the removal of the person's templates (see [`withdraw_consent`]).
pub fn withdraw_at(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
    w: Withdrawal,
    now: NaiveDateTime,
) -> Result<WithdrawOutcome> {
    let r = load(conn, tenant_id, id)?;
    if let Some(at) = r.withdrawn_at {
        return Err(ControlError::Conflict {
            code: "already_withdrawn",
            message: format!("agreement {id} was withdrawn at {at}"),
        });
    }
    let reason = text("reason", Some(w.reason))?
        .ok_or_else(|| ControlError::invalid("reason", "must not be empty"))?;
    let at = match w.at {
        Some(at) => {
            let at = likeness_control_domain::audit::truncate_micros(at);
            if at > now {
                return Err(ControlError::invalid(
                    "at",
                    format!("must not be in the future (got {at}, now is {now})"),
                ));
            }
            at
        }
        None => now,
    };
    diesel::update(
        agreements::table
            .filter(agreements::tenant_id.eq(tenant_id))
            .filter(agreements::id.eq(id)),
    )
    .set((
        agreements::withdrawn_at.eq(at),
        agreements::withdrawal_reason.eq(seal_text_of(tenant_id, &r.person_id, Some(&reason))?),
    ))
    .execute(conn)?;
    let face_matching_ended = r.covers_face_matching
        && !has_face_matching_consent(conn, tenant_id, &r.person_id, now.date())?;
    audit::record(
        conn,
        who,
        "agreement.withdraw",
        "agreement",
        Some(id),
        serde_json::json!({
            "person_id": r.person_id,
            "at": at,
            "reason": reason,
            "face_matching_ended": face_matching_ended,
        }),
    )?;
    // The files this person is on lose the consent now: hidden in this transaction.
    crate::exposure::refresh_person(conn, tenant_id, &r.person_id, now)?;
    // For the CMS integration: every withdrawal, by staff or by the person.
    crate::events::record(
        conn,
        tenant_id,
        crate::events::CONSENT_WITHDRAWN,
        "agreement",
        id,
        serde_json::json!({
            "person_id": r.person_id,
            "at": likeness_control_domain::time::format_utc(&at),
            "by": who.label,
            "face_matching_ended": face_matching_ended,
        }),
        now,
    )?;
    let r = load(conn, tenant_id, id)?;
    let agreement = full(conn, tenant_id, r, now.date())?;
    Ok(WithdrawOutcome {
        agreement,
        face_matching_ended,
    })
}

/// The answer to a withdrawal.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WithdrawResponse {
    /// What the withdrawal changed.
    #[serde(flatten)]
    pub outcome: WithdrawOutcome,
    /// The removal of the person's templates from the matcher, when face matching ended
    /// (`queued` when the matcher was down: it happens when it returns).
    pub template_removal: Option<crate::faces::TemplateRemoval>,
}

/// Withdraws a consent (`manage_consents`). When the person then has no consent in force that
/// covers face matching, the removal of their templates is queued in the same transaction as
/// the withdrawal (a crash after the commit cannot leave templates behind) and then run at
/// once if the matcher is up.
pub async fn withdraw_consent(
    ctx: &Ctx,
    id: String,
    w: Result<Withdrawal>,
) -> Result<WithdrawResponse> {
    ctx.require(Permission::ManageConsents)?;
    let w = w?; // the input is looked at only after the permission check
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    let (outcome, job) = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let outcome = withdraw_at(c, &who, &t, &id, w, now)?;
            let job = if outcome.face_matching_ended {
                Some(crate::faces::queue_person_template_removal(
                    c,
                    &t,
                    &outcome.agreement.person_id,
                    now,
                )?)
            } else {
                None
            };
            Ok((outcome, job))
        })
    })
    .await?;
    // A crash here must leave the removal to its queued job (the kill test stops here).
    crate::failpoint::failpoint("withdraw.after_commit");
    let template_removal = match job {
        Some(job_id) => Some(
            crate::faces::run_queued_person_template_removal(
                &ctx.deps,
                ctx.tenant(),
                &outcome.agreement.person_id,
                job_id,
            )
            .await?,
        ),
        None => None,
    };
    Ok(WithdrawResponse {
        outcome,
        template_removal,
    })
}

/// A document to attach to an agreement.
pub struct NewDocument {
    /// The file name (from the query or the multipart part).
    pub filename: Option<String>,
    /// The content, spooled to a temporary file (removed when dropped).
    pub file: likeness_control_media::UploadFile,
}

/// Attaches a document to a consent (`manage_consents`): checked (type by content, name),
/// stored encrypted, then recorded; if the record cannot be written the stored blob is
/// erased again, so nothing is half-written.
pub async fn attach_document(
    ctx: &Ctx,
    agreement_id: String,
    doc: NewDocument,
) -> Result<DocumentOut> {
    ctx.require(Permission::ManageConsents)?;
    let filename = doc.filename.ok_or_else(|| {
        ControlError::invalid(
            "filename",
            "missing: give ?filename= (or upload multipart/form-data with a file part)",
        )
    })?;
    // Only the first bytes are read (the type is recognised by them); the content is streamed
    // from the spooled file into the blob store.
    let file = std::sync::Arc::new(doc.file);
    let f2 = file.clone();
    let head = crate::blocking(move || f2.head(512))
        .await?
        .map_err(crate::assets::media_error)?;
    let t = ctx.tenant().to_string();
    let (t2, id2) = (t.clone(), agreement_id.clone());
    let (filename, mime, person_id) = db::run(&ctx.deps.pool, move |c| {
        let (filename, mime) = check_document(c, &t2, &id2, &filename, &head)?;
        let person_id: String = agreements::table
            .filter(agreements::tenant_id.eq(&t2))
            .filter(agreements::id.eq(&id2))
            .select(agreements::person_id)
            .first(c)?;
        Ok((filename, mime, person_id))
    })
    .await?;
    let store = ctx.deps.media()?;
    let vault = ctx.deps.vault()?;
    let (store2, t2, f2) = (store.clone(), t.clone(), file.clone());
    // Sealed under the person's key (the vault) before it is stored: erasing the person makes
    // every copy of it unreadable. The size and digest recorded are the document's own.
    let (key, size) = crate::blocking(move || -> Result<(String, u64)> {
        let plain = zeroize::Zeroizing::new(
            std::fs::read(f2.path())
                .map_err(|e| ControlError::Internal(format!("spooled document: {e}")))?,
        );
        let sealed = vault.seal_bytes(&t2, &person_id, &plain)?;
        let key = store2
            .blobs
            .put_new(&t2, &sealed)
            .map_err(crate::assets::media_error)?;
        Ok((key, u64::try_from(plain.len()).unwrap_or(u64::MAX)))
    })
    .await??;
    let (key2, t2, who, now) = (key.clone(), t.clone(), ctx.who(), ctx.now);
    let sha = file.sha256().to_owned();
    let res = if size == file.size() {
        db::run(&ctx.deps.pool, move |c| {
            db::write_tx(c, |c| {
                add_document_at(
                    c,
                    &who,
                    &t2,
                    &agreement_id,
                    &filename,
                    mime,
                    size,
                    &sha,
                    &key2,
                    now,
                )
            })
        })
        .await
    } else {
        Err(ControlError::Internal(format!(
            "the spooled document changed while it was stored ({} bytes, then {size})",
            file.size()
        )))
    };
    if res.is_err() {
        // Nothing half-written: the blob goes when its row could not be stored.
        let _ = crate::blocking(move || store.blobs.erase(&t, &key)).await;
    }
    res
}

/// A document's record and content (`see_persons`; the read is audited).
pub async fn read_document(
    ctx: &Ctx,
    agreement_id: String,
    document_id: String,
) -> Result<(DocumentOut, Vec<u8>)> {
    ctx.require(Permission::SeePersons)?;
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    let t2 = t.clone();
    let (doc, key, person_id) = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let (doc, key) = document_for_download(c, &who, &t2, &agreement_id, &document_id)?;
            let person_id: String = agreements::table
                .filter(agreements::tenant_id.eq(&t2))
                .filter(agreements::id.eq(&agreement_id))
                .select(agreements::person_id)
                .first(c)?;
            Ok((doc, key, person_id))
        })
    })
    .await?;
    let store = ctx.deps.media()?;
    let vault = ctx.deps.vault()?;
    let bytes = crate::blocking(move || -> Result<Vec<u8>> {
        let stored = store
            .blobs
            .get(&t, &key)
            .map_err(crate::assets::media_error)?;
        open_document(&vault, &t, &person_id, stored)
    })
    .await??;
    Ok((doc, bytes))
}

/// A document's content from its stored bytes: opened under the person's key when sealed (every
/// document stored since the vault), as stored otherwise (documents stored before it).
/// `person_erased` (410) once the person's key is destroyed.
pub fn open_document(
    vault: &crate::vault::Vault,
    tenant_id: &str,
    person_id: &str,
    stored: Vec<u8>,
) -> Result<Vec<u8>> {
    if crate::vault::Vault::is_sealed_bytes(&stored) {
        vault.open_bytes(tenant_id, person_id, &stored)
    } else {
        Ok(stored)
    }
}

/// Media types accepted as agreement documents, recognised by their content.
pub const DOCUMENT_TYPES: &[&str] = &[
    "application/pdf",
    "image/jpeg",
    "image/png",
    "image/tiff",
    "audio/mpeg",
    "audio/wav",
    "audio/ogg",
    "audio/flac",
    "audio/mp4",
];

/// The media type of a document by its first bytes, if it is one of [`DOCUMENT_TYPES`].
pub fn sniff_document(bytes: &[u8]) -> Option<&'static str> {
    let b = bytes;
    if b.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        Some("image/tiff")
    } else if b.starts_with(b"ID3") || (b.len() >= 2 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0) {
        Some("audio/mpeg")
    } else if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE" {
        Some("audio/wav")
    } else if b.starts_with(b"OggS") {
        Some("audio/ogg")
    } else if b.starts_with(b"fLaC") {
        Some("audio/flac")
    } else if b.len() >= 12 && &b[4..8] == b"ftyp" && matches!(&b[8..11], b"M4A" | b"mp4" | b"iso")
    {
        Some("audio/mp4")
    } else {
        None
    }
}

fn check_filename(name: &str) -> Result<String> {
    let n = validate::name("filename", name).map_err(domain_error)?;
    if n.contains('/') || n.contains('\\') {
        return Err(ControlError::invalid(
            "filename",
            "must be a file name without a directory",
        ));
    }
    Ok(n)
}

/// Checks an upload before it is stored: the agreement exists in the tenant, the file name is
/// sane, the content is not empty and is one of [`DOCUMENT_TYPES`]. Returns the file name and
/// media type.
pub fn check_document(
    conn: &mut DbConn,
    tenant_id: &str,
    agreement_id: &str,
    filename: &str,
    bytes: &[u8],
) -> Result<(String, &'static str)> {
    load(conn, tenant_id, agreement_id)?;
    let filename = check_filename(filename)?;
    if bytes.is_empty() {
        return Err(ControlError::invalid("body", "the document is empty"));
    }
    let mime = sniff_document(bytes).ok_or_else(|| ControlError::BadRequest {
        code: "unsupported_media_type",
        message: format!(
            "{filename}: not a supported document; accepted: {}",
            DOCUMENT_TYPES.join(", ")
        ),
    })?;
    Ok((filename, mime))
}

/// Records a document whose content is already stored encrypted under `blob_key`, stamped
/// `now` (the caller's clock). Audited as `agreement.document.add`. Call inside
/// [`crate::db::write_tx`].
#[allow(clippy::too_many_arguments)]
pub fn add_document_at(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    agreement_id: &str,
    filename: &str,
    mime: &str,
    size: u64,
    sha256: &str,
    blob_key: &str,
    now: NaiveDateTime,
) -> Result<DocumentOut> {
    let r = load(conn, tenant_id, agreement_id)?;
    let id = db::new_id();
    let sha = sha256.to_owned();
    let size = i64::try_from(size).map_err(|_| ControlError::TooLarge(format!("{size} bytes")))?;
    diesel::insert_into(agreement_documents::table)
        .values((
            agreement_documents::id.eq(&id),
            agreement_documents::tenant_id.eq(tenant_id),
            agreement_documents::agreement_id.eq(agreement_id),
            agreement_documents::filename.eq(filename),
            agreement_documents::mime.eq(mime),
            agreement_documents::size_bytes.eq(size),
            agreement_documents::sha256.eq(&sha),
            agreement_documents::blob_key.eq(blob_key),
            agreement_documents::created_at.eq(now),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        who,
        "agreement.document.add",
        "agreement",
        Some(agreement_id),
        serde_json::json!({
            "person_id": r.person_id,
            "document_id": id,
            "filename": filename,
            "mime": mime,
            "size_bytes": size,
            "sha256": sha,
        }),
    )?;
    agreement_documents::table
        .filter(agreement_documents::tenant_id.eq(tenant_id))
        .filter(agreement_documents::id.eq(&id))
        .select(DocumentOut::as_select())
        .first(conn)
        .map_err(Into::into)
}

/// A document's metadata and blob key, for download. Audited as `agreement.document.read`.
/// Call inside [`crate::db::write_tx`].
pub fn document_for_download(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    agreement_id: &str,
    document_id: &str,
) -> Result<(DocumentOut, String)> {
    let row: Option<(DocumentOut, String)> = agreement_documents::table
        .filter(agreement_documents::tenant_id.eq(tenant_id))
        .filter(agreement_documents::agreement_id.eq(agreement_id))
        .filter(agreement_documents::id.eq(document_id))
        .select((DocumentOut::as_select(), agreement_documents::blob_key))
        .first(conn)
        .optional()?;
    let (doc, key) = row.ok_or_else(|| ControlError::not_found("document"))?;
    audit::record(
        conn,
        who,
        "agreement.document.read",
        "agreement",
        Some(agreement_id),
        serde_json::json!({ "document_id": document_id }),
    )?;
    Ok((doc, key))
}

// Use cases (REST, console): one entry point per operation, each checking its own permissions;
// inputs a transport parses (`Result<T>`) are looked at only after the permission checks.

/// Records a consent of a person (`manage_consents`); see [`create`].
pub async fn record_consent(
    ctx: &Ctx,
    person_id: String,
    new: Result<NewAgreement>,
) -> Result<AgreementOut> {
    ctx.require(Permission::ManageConsents)?;
    let new = new?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| create(c, &who, &t, &person_id, new, now))
    })
    .await
}

/// Every consent of a person, newest first (`see_persons`; audited).
pub async fn list_consents(ctx: &Ctx, person_id: String) -> Result<Vec<AgreementOut>> {
    ctx.require(Permission::SeePersons)?;
    let (who, t, day) = (ctx.who(), ctx.tenant().to_string(), ctx.today());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| list_for_person(c, &who, &t, &person_id, day))
    })
    .await
}

/// One consent (`see_persons`; audited).
pub async fn get_consent(ctx: &Ctx, id: String) -> Result<AgreementOut> {
    ctx.require(Permission::SeePersons)?;
    let (who, t, day) = (ctx.who(), ctx.tenant().to_string(), ctx.today());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| get(c, &who, &t, &id, day))
    })
    .await
}

/// The file name and media type of a document about to be stored, checked by name and by its
/// first bytes `head`, before anything is recorded.
fn document_type(filename: Option<String>, head: &[u8]) -> Result<(String, &'static str)> {
    let filename = filename
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| ControlError::invalid("filename", "missing: the document has no name"))?;
    let filename = check_filename(&filename)?;
    if head.is_empty() {
        return Err(ControlError::invalid("document", "the document is empty"));
    }
    let mime = sniff_document(head).ok_or_else(|| ControlError::BadRequest {
        code: "unsupported_media_type",
        message: format!(
            "{filename}: not a supported document; accepted: {}",
            DOCUMENT_TYPES.join(", ")
        ),
    })?;
    Ok((filename, mime))
}

/// Records a consent together with its scanned document (`manage_consents`; the console's
/// form), all or nothing: the document is checked (name, type by content) and the consent
/// validated before anything is stored; the document is then stored encrypted, and the consent
/// and the document's record are written in one transaction (if that fails, the stored blob is
/// erased again). A refused document leaves no consent behind. Without a document it is
/// [`record_consent`].
pub async fn record_consent_with_document(
    ctx: &Ctx,
    person_id: String,
    new: Result<NewAgreement>,
    doc: Option<NewDocument>,
) -> Result<AgreementOut> {
    ctx.require(Permission::ManageConsents)?;
    let new = new?;
    let Some(doc) = doc else {
        return record_consent(ctx, person_id, Ok(new)).await;
    };
    let file = std::sync::Arc::new(doc.file);
    let f2 = file.clone();
    let head = crate::blocking(move || f2.head(512))
        .await?
        .map_err(crate::assets::media_error)?;
    let (filename, mime) = document_type(doc.filename, &head)?;
    let t = ctx.tenant().to_string();
    let (t2, p2, n2) = (t.clone(), person_id.clone(), new.clone());
    db::run(&ctx.deps.pool, move |c| {
        require_person(c, &t2, &p2)?;
        validate_new(n2, &settings::get(c, &t2)?).map(|_| ())
    })
    .await?;
    let store = ctx.deps.media()?;
    let (store2, t2, f2) = (store.clone(), t.clone(), file.clone());
    let (key, size) = crate::blocking(move || store2.blobs.put_file_new(&t2, f2.path()))
        .await?
        .map_err(crate::assets::media_error)?;
    let (key2, t2, who, now) = (key.clone(), t.clone(), ctx.who(), ctx.now);
    let sha = file.sha256().to_owned();
    let res = if size == file.size() {
        db::run(&ctx.deps.pool, move |c| {
            db::write_tx(c, |c| {
                let mut a = create(c, &who, &t2, &person_id, new, now)?;
                let d =
                    add_document_at(c, &who, &t2, &a.id, &filename, mime, size, &sha, &key2, now)?;
                a.documents.push(d);
                Ok(a)
            })
        })
        .await
    } else {
        Err(ControlError::Internal(format!(
            "the spooled document changed while it was stored ({} bytes, then {size})",
            file.size()
        )))
    };
    if res.is_err() {
        // Nothing half-written: the blob goes when its records could not be stored.
        let _ = crate::blocking(move || store.blobs.erase(&t, &key)).await;
    }
    res
}

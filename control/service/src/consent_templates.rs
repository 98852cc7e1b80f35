//! (SIGNING) Agreement templates per tenant, versioned: a version that has been sent is
//! immutable, editing it makes the next version. Bodies are Markdown, rendered safely
//! ([`render_markdown`]: raw HTML is shown as text, only http(s) and mailto links).
//!
//! ## The text's hash
//! Each version's `text_sha256` is the lowercase hex sha256 of the canonical JSON
//! (`likeness_control_domain::canonical`: keys sorted, no whitespace) of exactly what the
//! signer is shown:
//! `{"after_signing_text", "body_markdown", "face_matching_text" (or null), "language",
//! "legal_character", "scopes": [{"channel", "label" (or null), "mandatory"}, ..] (in order),
//! "title", "validity_days" (or null)}` — see [`text_sha256`]. The template's name, the version
//! number and the ids are not part of it: the same text has the same hash.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Ctx;
use crate::audit::{self, Who};
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::Permission;
use crate::schema::{consent_template_versions as ctv, consent_templates as ct};
use crate::settings::{self, domain_error};

/// The legal character of an agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegalCharacter {
    /// Consent under GDPR Art. 6(1)(a) (and Art. 9(2)(a) for face matching).
    GdprConsent,
    /// An image-rights contract (quitclaim).
    ImageRightsContract,
    /// A licence.
    Licence,
}

/// A channel the signer may allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// One of the tenant's channels (e.g. `web`).
    pub channel: String,
    /// The signer cannot sign without accepting it.
    #[serde(default)]
    pub mandatory: bool,
    /// What the signer reads (default: the channel's name).
    #[serde(default)]
    pub label: Option<String>,
}

/// One version of a template, as sent to signers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TemplateVersionOut {
    /// Version ID.
    pub id: String,
    /// The template.
    pub template_id: String,
    /// Version number (1, 2, ...).
    pub version: i32,
    /// Title.
    pub title: String,
    /// Body (Markdown).
    pub body_markdown: String,
    /// Body rendered to safe HTML.
    pub body_html: String,
    /// Language of the text (`en`, `sv`, `nl`).
    pub language: String,
    /// The channels the signer chooses among.
    pub scopes: Vec<Scope>,
    /// When set, a separate, never pre-ticked scope for face matching with this text.
    pub face_matching_text: Option<String>,
    /// Default validity in days (none: until withdrawn).
    pub validity_days: Option<i32>,
    /// Legal character.
    pub legal_character: LegalCharacter,
    /// Text shown after signing.
    pub after_signing_text: String,
    /// sha256 of the exact text shown.
    pub text_sha256: String,
    /// First sent (then immutable).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub first_sent_at: Option<NaiveDateTime>,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
}

impl LegalCharacter {
    /// The stored form (`gdpr_consent`, `image_rights_contract`, `licence`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GdprConsent => "gdpr_consent",
            Self::ImageRightsContract => "image_rights_contract",
            Self::Licence => "licence",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "gdpr_consent" => Ok(Self::GdprConsent),
            "image_rights_contract" => Ok(Self::ImageRightsContract),
            "licence" => Ok(Self::Licence),
            other => Err(ControlError::Internal(format!(
                "consent_template_versions.legal_character: unknown value {other:?}"
            ))),
        }
    }
}

/// The languages a template may be written in.
pub const LANGUAGES: [&str; 3] = ["en", "sv", "nl"];
/// Longest template name or title, in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Longest body, in characters.
pub const MAX_BODY_LEN: usize = 50_000;
/// Longest scope label, in characters.
pub const MAX_LABEL_LEN: usize = 200;
/// Longest face-matching text or text shown after signing, in characters.
pub const MAX_SHORT_TEXT_LEN: usize = 5_000;
/// Longest default validity, in days (ten years).
pub const MAX_VALIDITY_DAYS: i32 = 3650;

/// A template to create, or the new content of one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    /// Name for staff (e.g. `Event photos 2027`).
    pub name: String,
    /// Title the signer reads.
    pub title: String,
    /// The agreement's text (Markdown; raw HTML is shown as text).
    pub body_markdown: String,
    /// Language of the text: `en`, `sv` or `nl`.
    #[schema(example = "en")]
    pub language: String,
    /// The channels the signer chooses among (each one of the tenant's channels, once).
    pub scopes: Vec<Scope>,
    /// When set, a separate explicit scope for face matching (biometric data, GDPR Art. 9),
    /// never pre-ticked, with this text.
    #[serde(default)]
    pub face_matching_text: Option<String>,
    /// Default validity in days (1 to 3650; none: until withdrawn).
    #[serde(default)]
    pub validity_days: Option<i32>,
    /// Legal character.
    pub legal_character: LegalCharacter,
    /// Text shown after signing.
    #[serde(default)]
    pub after_signing_text: String,
}

/// A template in a list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TemplateSummary {
    /// Template ID.
    pub id: String,
    /// Name for staff.
    pub name: String,
    /// When archived (no new requests).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub archived_at: Option<NaiveDateTime>,
    /// The newest version's number.
    pub latest_version: i32,
    /// The newest version's ID.
    pub latest_version_id: String,
    /// The newest version's title.
    pub title: String,
    /// The newest version's language.
    pub language: String,
    /// Whether the newest version was sent (then editing makes a new version).
    pub sent: bool,
    /// Last changed (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: NaiveDateTime,
}

/// A template with all its versions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TemplateOut {
    /// Template ID.
    pub id: String,
    /// Name for staff.
    pub name: String,
    /// When archived (no new requests).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub archived_at: Option<NaiveDateTime>,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: NaiveDateTime,
    /// Versions, newest first.
    pub versions: Vec<TemplateVersionOut>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ct)]
struct TemplateRow {
    id: String,
    name: String,
    archived_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ctv)]
struct VersionRow {
    id: String,
    template_id: String,
    version: i32,
    title: String,
    body_markdown: String,
    language: String,
    scopes_json: String,
    face_matching_text: Option<String>,
    validity_days: Option<i32>,
    legal_character: String,
    after_signing_text: String,
    text_sha256: String,
    first_sent_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

fn version_out(r: VersionRow) -> Result<TemplateVersionOut> {
    let scopes: Vec<Scope> = serde_json::from_str(&r.scopes_json).map_err(|e| {
        ControlError::Internal(format!("consent_template_versions.scopes_json: {e}"))
    })?;
    Ok(TemplateVersionOut {
        body_html: render_markdown(&r.body_markdown),
        legal_character: LegalCharacter::parse(&r.legal_character)?,
        id: r.id,
        template_id: r.template_id,
        version: r.version,
        title: r.title,
        body_markdown: r.body_markdown,
        language: r.language,
        scopes,
        face_matching_text: r.face_matching_text,
        validity_days: r.validity_days,
        after_signing_text: r.after_signing_text,
        text_sha256: r.text_sha256,
        first_sent_at: r.first_sent_at,
        created_at: r.created_at,
    })
}

fn bounded(field: &str, s: &str, max: usize, required: bool) -> Result<String> {
    let t = s.trim();
    if required && t.is_empty() {
        return Err(ControlError::invalid(field, "must not be empty"));
    }
    let n = t.chars().count();
    if n > max {
        return Err(ControlError::invalid(
            field,
            format!("must be at most {max} characters (got {n})"),
        ));
    }
    Ok(t.to_string())
}

fn is_face_matching_word(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.contains("face") || l.contains("biometric")
}

/// Validates a template's content against the tenant's settings; returns it normalised
/// (trimmed; empty optional texts become none). Each error names its field
/// (e.g. `scopes[1].channel`).
pub fn validate_input(
    input: TemplateInput,
    settings: &likeness_control_domain::TenantSettings,
) -> Result<TemplateInput> {
    let name = bounded("name", &input.name, MAX_NAME_LEN, true)?;
    let title = bounded("title", &input.title, MAX_NAME_LEN, true)?;
    // The body keeps its inner layout (Markdown is whitespace-sensitive); only the ends go.
    let body = input.body_markdown.trim_end();
    let body = body.trim_start_matches(['\n', '\r']);
    if body.trim().is_empty() {
        return Err(ControlError::invalid("body_markdown", "must not be empty"));
    }
    let n = body.chars().count();
    if n > MAX_BODY_LEN {
        return Err(ControlError::invalid(
            "body_markdown",
            format!("must be at most {MAX_BODY_LEN} characters (got {n})"),
        ));
    }
    let language = input.language.trim().to_ascii_lowercase();
    if !LANGUAGES.contains(&language.as_str()) {
        return Err(ControlError::invalid(
            "language",
            format!(
                "unknown language {:?}; one of: {}",
                input.language,
                LANGUAGES.join(", ")
            ),
        ));
    }
    if input.scopes.is_empty() {
        return Err(ControlError::invalid(
            "scopes",
            "must list at least one channel the signer may allow",
        ));
    }
    let mut scopes: Vec<Scope> = Vec::with_capacity(input.scopes.len());
    for (i, s) in input.scopes.into_iter().enumerate() {
        let field = format!("scopes[{i}].channel");
        let channel = s.channel.trim().to_string();
        if is_face_matching_word(&channel) {
            return Err(ControlError::invalid(
                field,
                "face matching is never bundled into a channel: it is its own scope (set face_matching_text)",
            ));
        }
        likeness_control_domain::validate::channel(&field, &channel).map_err(domain_error)?;
        settings
            .check_channel(&field, &channel)
            .map_err(domain_error)?;
        if scopes.iter().any(|o| o.channel == channel) {
            return Err(ControlError::invalid(
                field,
                format!("channel {channel:?} is listed twice"),
            ));
        }
        let label = match s.label {
            Some(l) => {
                let l = bounded(&format!("scopes[{i}].label"), &l, MAX_LABEL_LEN, false)?;
                (!l.is_empty()).then_some(l)
            }
            None => None,
        };
        scopes.push(Scope {
            channel,
            mandatory: s.mandatory,
            label,
        });
    }
    let face_matching_text = match input.face_matching_text {
        Some(t) => {
            let t = bounded("face_matching_text", &t, MAX_SHORT_TEXT_LEN, false)?;
            (!t.is_empty()).then_some(t)
        }
        None => None,
    };
    if let Some(d) = input.validity_days
        && !(1..=MAX_VALIDITY_DAYS).contains(&d)
    {
        return Err(ControlError::invalid(
            "validity_days",
            format!("must be between 1 and {MAX_VALIDITY_DAYS} days, or absent (got {d})"),
        ));
    }
    let after_signing_text = bounded(
        "after_signing_text",
        &input.after_signing_text,
        MAX_SHORT_TEXT_LEN,
        false,
    )?;
    Ok(TemplateInput {
        name,
        title,
        body_markdown: body.to_string(),
        language,
        scopes,
        face_matching_text,
        validity_days: input.validity_days,
        legal_character: input.legal_character,
        after_signing_text,
    })
}

/// The canonical JSON of what the signer is shown (see the module's documentation).
pub fn signed_text_json(input: &TemplateInput) -> serde_json::Value {
    serde_json::json!({
        "title": input.title,
        "body_markdown": input.body_markdown,
        "language": input.language,
        "scopes": input.scopes.iter().map(|s| serde_json::json!({
            "channel": s.channel,
            "mandatory": s.mandatory,
            "label": s.label,
        })).collect::<Vec<_>>(),
        "face_matching_text": input.face_matching_text,
        "validity_days": input.validity_days,
        "legal_character": input.legal_character.as_str(),
        "after_signing_text": input.after_signing_text,
    })
}

/// sha256 (hex) of the canonical JSON of what the signer is shown ([`signed_text_json`]).
pub fn text_sha256(input: &TemplateInput) -> String {
    let canonical =
        likeness_control_domain::canonical::to_canonical_string(&signed_text_json(input));
    likeness_control_domain::evidence::sha256_hex(canonical.as_bytes())
}

fn load_template(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<TemplateRow> {
    ct::table
        .filter(ct::tenant_id.eq(tenant_id))
        .filter(ct::id.eq(id))
        .select(TemplateRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("consent template"))
}

fn latest_row(conn: &mut DbConn, tenant_id: &str, template_id: &str) -> Result<VersionRow> {
    ctv::table
        .filter(ctv::tenant_id.eq(tenant_id))
        .filter(ctv::template_id.eq(template_id))
        .order(ctv::version.desc())
        .select(VersionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::Internal(format!("template {template_id} has no version")))
}

/// The version `version_id` of the tenant (any state). For the signing flow.
pub fn load_version(
    conn: &mut DbConn,
    tenant_id: &str,
    version_id: &str,
) -> Result<TemplateVersionOut> {
    let r = ctv::table
        .filter(ctv::tenant_id.eq(tenant_id))
        .filter(ctv::id.eq(version_id))
        .select(VersionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("consent template version"))?;
    version_out(r)
}

/// The newest version of template `template_id` (not archived: an archived template answers
/// 409 `template_archived`). For the signing flow.
pub fn latest_version(
    conn: &mut DbConn,
    tenant_id: &str,
    template_id: &str,
) -> Result<TemplateVersionOut> {
    let t = load_template(conn, tenant_id, template_id)?;
    if t.archived_at.is_some() {
        return Err(ControlError::Conflict {
            code: "template_archived",
            message: format!("consent template {:?} is archived: no new requests", t.name),
        });
    }
    version_out(latest_row(conn, tenant_id, template_id)?)
}

/// Marks a version as sent (from then on immutable), in the caller's transaction. A version
/// sent before keeps its first time.
pub fn mark_sent(
    conn: &mut DbConn,
    tenant_id: &str,
    version_id: &str,
    now: NaiveDateTime,
) -> Result<()> {
    let exists: i64 = ctv::table
        .filter(ctv::tenant_id.eq(tenant_id))
        .filter(ctv::id.eq(version_id))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        return Err(ControlError::not_found("consent template version"));
    }
    diesel::update(
        ctv::table
            .filter(ctv::tenant_id.eq(tenant_id))
            .filter(ctv::id.eq(version_id))
            .filter(ctv::first_sent_at.is_null()),
    )
    .set(ctv::first_sent_at.eq(now))
    .execute(conn)?;
    Ok(())
}

fn insert_version(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    template_id: &str,
    version: i32,
    input: &TemplateInput,
    now: NaiveDateTime,
) -> Result<String> {
    let id = db::new_id();
    diesel::insert_into(ctv::table)
        .values((
            ctv::id.eq(&id),
            ctv::tenant_id.eq(tenant_id),
            ctv::template_id.eq(template_id),
            ctv::version.eq(version),
            ctv::title.eq(&input.title),
            ctv::body_markdown.eq(&input.body_markdown),
            ctv::language.eq(&input.language),
            ctv::scopes_json.eq(serde_json::to_string(&input.scopes)?),
            ctv::face_matching_text.eq(&input.face_matching_text),
            ctv::validity_days.eq(input.validity_days),
            ctv::legal_character.eq(input.legal_character.as_str()),
            ctv::after_signing_text.eq(&input.after_signing_text),
            ctv::text_sha256.eq(text_sha256(input)),
            ctv::created_by.eq(&who.user_id),
            ctv::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(id)
}

fn full(conn: &mut DbConn, tenant_id: &str, t: TemplateRow) -> Result<TemplateOut> {
    let rows: Vec<VersionRow> = ctv::table
        .filter(ctv::tenant_id.eq(tenant_id))
        .filter(ctv::template_id.eq(&t.id))
        .order(ctv::version.desc())
        .select(VersionRow::as_select())
        .load(conn)?;
    Ok(TemplateOut {
        id: t.id,
        name: t.name,
        archived_at: t.archived_at,
        created_at: t.created_at,
        updated_at: t.updated_at,
        versions: rows.into_iter().map(version_out).collect::<Result<_>>()?,
    })
}

fn audit_detail(input: &TemplateInput, version: i32, version_id: &str) -> serde_json::Value {
    serde_json::json!({
        "name": input.name,
        "title": input.title,
        "language": input.language,
        "version": version,
        "version_id": version_id,
        "text_sha256": text_sha256(input),
        "channels": input.scopes.iter().map(|s| s.channel.as_str()).collect::<Vec<_>>(),
        "face_matching": input.face_matching_text.is_some(),
    })
}

/// Creates a template with its version 1, in the caller's transaction. Audited as
/// `consent_template.create`.
pub fn create(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    input: TemplateInput,
    now: NaiveDateTime,
) -> Result<TemplateOut> {
    let input = validate_input(input, &settings::get(conn, tenant_id)?)?;
    let id = db::new_id();
    diesel::insert_into(ct::table)
        .values((
            ct::id.eq(&id),
            ct::tenant_id.eq(tenant_id),
            ct::name.eq(&input.name),
            ct::created_by.eq(&who.user_id),
            ct::created_at.eq(now),
            ct::updated_at.eq(now),
        ))
        .execute(conn)?;
    let vid = insert_version(conn, who, tenant_id, &id, 1, &input, now)?;
    audit::record(
        conn,
        who,
        "consent_template.create",
        "consent_template",
        Some(&id),
        audit_detail(&input, 1, &vid),
    )?;
    let t = load_template(conn, tenant_id, &id)?;
    full(conn, tenant_id, t)
}

/// Changes a template, in the caller's transaction: its newest version is edited in place
/// when it was never sent; a sent version is never changed, the change becomes version n+1
/// (unless only the name changed). An archived template cannot be changed (409
/// `template_archived`). Audited as `consent_template.update`.
pub fn update(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
    input: TemplateInput,
    now: NaiveDateTime,
) -> Result<TemplateOut> {
    let t = load_template(conn, tenant_id, id)?;
    if t.archived_at.is_some() {
        return Err(ControlError::Conflict {
            code: "template_archived",
            message: format!(
                "consent template {:?} is archived and cannot be changed",
                t.name
            ),
        });
    }
    let input = validate_input(input, &settings::get(conn, tenant_id)?)?;
    let latest = latest_row(conn, tenant_id, id)?;
    let sha = text_sha256(&input);
    let (version, version_id, how) = if latest.text_sha256 == sha {
        (latest.version, latest.id.clone(), "unchanged")
    } else {
        // Only a never-sent version is edited (the filter makes a concurrent first send win).
        let edited = if latest.first_sent_at.is_none() {
            diesel::update(
                ctv::table
                    .filter(ctv::tenant_id.eq(tenant_id))
                    .filter(ctv::id.eq(&latest.id))
                    .filter(ctv::first_sent_at.is_null()),
            )
            .set((
                ctv::title.eq(&input.title),
                ctv::body_markdown.eq(&input.body_markdown),
                ctv::language.eq(&input.language),
                ctv::scopes_json.eq(serde_json::to_string(&input.scopes)?),
                ctv::face_matching_text.eq(&input.face_matching_text),
                ctv::validity_days.eq(input.validity_days),
                ctv::legal_character.eq(input.legal_character.as_str()),
                ctv::after_signing_text.eq(&input.after_signing_text),
                ctv::text_sha256.eq(&sha),
            ))
            .execute(conn)?
                == 1
        } else {
            false
        };
        if edited {
            (latest.version, latest.id.clone(), "edited")
        } else {
            let v = latest.version + 1;
            let vid = insert_version(conn, who, tenant_id, id, v, &input, now)?;
            (v, vid, "new_version")
        }
    };
    diesel::update(
        ct::table
            .filter(ct::tenant_id.eq(tenant_id))
            .filter(ct::id.eq(id)),
    )
    .set((ct::name.eq(&input.name), ct::updated_at.eq(now)))
    .execute(conn)?;
    let mut detail = audit_detail(&input, version, &version_id);
    detail["change"] = serde_json::json!(how);
    audit::record(
        conn,
        who,
        "consent_template.update",
        "consent_template",
        Some(id),
        detail,
    )?;
    let t = load_template(conn, tenant_id, id)?;
    full(conn, tenant_id, t)
}

/// Archives a template (no new requests; sent ones stay valid), in the caller's transaction.
/// Archiving twice keeps the first time. Audited as `consent_template.archive`.
pub fn archive(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
    now: NaiveDateTime,
) -> Result<TemplateOut> {
    let t = load_template(conn, tenant_id, id)?;
    if t.archived_at.is_none() {
        diesel::update(
            ct::table
                .filter(ct::tenant_id.eq(tenant_id))
                .filter(ct::id.eq(id)),
        )
        .set((ct::archived_at.eq(now), ct::updated_at.eq(now)))
        .execute(conn)?;
        audit::record(
            conn,
            who,
            "consent_template.archive",
            "consent_template",
            Some(id),
            serde_json::json!({ "name": t.name }),
        )?;
    }
    let t = load_template(conn, tenant_id, id)?;
    full(conn, tenant_id, t)
}

/// The tenant's templates by name (archived ones only with `include_archived`).
pub fn list(
    conn: &mut DbConn,
    tenant_id: &str,
    include_archived: bool,
) -> Result<Vec<TemplateSummary>> {
    let mut q = ct::table
        .filter(ct::tenant_id.eq(tenant_id))
        .select(TemplateRow::as_select())
        .order((ct::name.asc(), ct::id.asc()))
        .into_boxed();
    if !include_archived {
        q = q.filter(ct::archived_at.is_null());
    }
    let templates: Vec<TemplateRow> = q.load(conn)?;
    let ids: Vec<&str> = templates.iter().map(|t| t.id.as_str()).collect();
    let versions: Vec<(String, i32, String, String, String, Option<NaiveDateTime>)> = ctv::table
        .filter(ctv::tenant_id.eq(tenant_id))
        .filter(ctv::template_id.eq_any(&ids))
        .select((
            ctv::template_id,
            ctv::version,
            ctv::id,
            ctv::title,
            ctv::language,
            ctv::first_sent_at,
        ))
        .load(conn)?;
    let mut out = Vec::with_capacity(templates.len());
    for t in templates {
        let Some(v) = versions.iter().filter(|v| v.0 == t.id).max_by_key(|v| v.1) else {
            continue;
        };
        out.push(TemplateSummary {
            id: t.id,
            name: t.name,
            archived_at: t.archived_at,
            latest_version: v.1,
            latest_version_id: v.2.clone(),
            title: v.3.clone(),
            language: v.4.clone(),
            sent: v.5.is_some(),
            updated_at: t.updated_at,
        });
    }
    Ok(out)
}

/// One template with its versions, newest first.
pub fn get(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<TemplateOut> {
    let t = load_template(conn, tenant_id, id)?;
    full(conn, tenant_id, t)
}

/// Whether `url` may be a link's target: `http`, `https` or `mailto` only.
fn safe_url(url: &str) -> bool {
    let u = url.trim_start().to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|p| u.starts_with(p))
}

/// A heading of the agreement's text one level down (h1 becomes h2; h6 stays h6), below the
/// page's title.
fn heading_below_title(level: pulldown_cmark::HeadingLevel) -> pulldown_cmark::HeadingLevel {
    use pulldown_cmark::HeadingLevel as H;
    match level {
        H::H1 => H::H2,
        H::H2 => H::H3,
        H::H3 => H::H4,
        H::H4 => H::H5,
        H::H5 | H::H6 => H::H6,
    }
}

/// Markdown (CommonMark with tables and strikethrough) to safe HTML: raw HTML, block or
/// inline, is shown as escaped text; links keep only `http`, `https` and `mailto` targets
/// (others become their text); images are never loaded: they become a link to the image
/// (with its alt text) or, without a safe address, the alt text. No attribute but a link's
/// `href` is ever written (table alignment is dropped: no `style`).
pub fn render_markdown(markdown: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    // For each open link or image: whether an <a> was emitted for it.
    let mut open: Vec<bool> = Vec::new();
    let events = Parser::new_ext(markdown, opts).filter_map(|ev| match ev {
        Event::Html(s) | Event::InlineHtml(s) => Some(Event::Text(s)),
        Event::Start(Tag::HtmlBlock) => Some(Event::Start(Tag::Paragraph)),
        Event::End(TagEnd::HtmlBlock) => Some(Event::End(TagEnd::Paragraph)),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let inside = open.iter().any(|o| *o);
            let keep = !inside && safe_url(&dest_url);
            open.push(keep);
            keep.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let inside = open.iter().any(|o| *o);
            let keep = !inside && safe_url(&dest_url);
            open.push(keep);
            keep.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
            if open.pop().unwrap_or(false) {
                Some(Event::End(TagEnd::Link))
            } else {
                None
            }
        }
        // Column alignment would be a style attribute, which the pages' CSP refuses.
        Event::Start(Tag::Table(aligns)) => Some(Event::Start(Tag::Table(
            aligns
                .iter()
                .map(|_| pulldown_cmark::Alignment::None)
                .collect(),
        ))),
        // The page's own <h1> is the title: the text's headings start one level below it.
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Some(Event::Start(Tag::Heading {
            level: heading_below_title(level),
            id,
            classes,
            attrs,
        })),
        Event::End(TagEnd::Heading(level)) => {
            Some(Event::End(TagEnd::Heading(heading_below_title(level))))
        }
        Event::InlineMath(s) | Event::DisplayMath(s) => Some(Event::Text(s)),
        Event::FootnoteReference(s) => Some(Event::Text(CowStr::from(format!("[^{s}]")))),
        other => Some(other),
    });
    let mut html = String::with_capacity(markdown.len() + markdown.len() / 4);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

// Use cases (REST, console): read = see_persons, write = manage_consents.

/// Creates a template (`manage_consents`); see [`create`].
pub async fn create_template(ctx: &Ctx, input: TemplateInput) -> Result<TemplateOut> {
    ctx.require(Permission::ManageConsents)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| create(c, &who, &t, input, now))
    })
    .await
}

/// The tenant's templates (`see_persons`); see [`list`].
pub async fn list_templates(ctx: &Ctx, include_archived: bool) -> Result<Vec<TemplateSummary>> {
    ctx.require(Permission::SeePersons)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| list(c, &t, include_archived)).await
}

/// One template with its versions (`see_persons`).
pub async fn get_template(ctx: &Ctx, id: String) -> Result<TemplateOut> {
    ctx.require(Permission::SeePersons)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| get(c, &t, &id)).await
}

/// Changes a template (`manage_consents`); see [`update`].
pub async fn update_template(ctx: &Ctx, id: String, input: TemplateInput) -> Result<TemplateOut> {
    ctx.require(Permission::ManageConsents)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| update(c, &who, &t, &id, input, now))
    })
    .await
}

/// Archives a template (`manage_consents`); see [`archive`].
pub async fn archive_template(ctx: &Ctx, id: String) -> Result<TemplateOut> {
    ctx.require(Permission::ManageConsents)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| archive(c, &who, &t, &id, now))
    })
    .await
}

/// One version (`see_persons`).
pub async fn get_version(ctx: &Ctx, version_id: String) -> Result<TemplateVersionOut> {
    ctx.require(Permission::SeePersons)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| load_version(c, &t, &version_id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_start_below_the_title() {
        let h = render_markdown("# Terms\n\n###### Small\n\ntext");
        assert!(h.contains("<h2>Terms</h2>"), "{h}");
        assert!(h.contains("<h6>Small</h6>"), "{h}");
        assert!(!h.contains("<h1"), "{h}");
    }

    #[test]
    fn raw_html_is_text() {
        let h =
            render_markdown("<script>alert(1)</script>\n\nhi <img src=x onerror=alert(1)> **b**");
        assert!(!h.contains("<script"), "{h}");
        assert!(!h.contains("<img"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(h.contains("<strong>b</strong>"), "{h}");
    }

    #[test]
    fn only_safe_links() {
        let h = render_markdown(
            "[a](javascript:alert(1)) [b](https://x.org/\"onmouseover=\") [c](mailto:a@b.se) [d](JaVaScRiPt:x) [e](data:text/html,x)",
        );
        assert!(!h.to_lowercase().contains("javascript:"), "{h}");
        assert!(!h.contains("data:"), "{h}");
        assert!(
            h.contains("href=\"https://x.org/%22onmouseover=%22\""),
            "{h}"
        );
        assert!(h.contains("href=\"mailto:a@b.se\""), "{h}");
        assert!(h.starts_with("<p>a <a"), "{h}");
    }

    #[test]
    fn images_are_not_loaded() {
        let h = render_markdown(
            "![alt text](https://evil.example/x.png) ![x](javascript:1) [![in](https://i/p.png)](https://l/)",
        );
        assert!(!h.contains("<img"), "{h}");
        assert!(
            h.contains("<a href=\"https://evil.example/x.png\">alt text</a>"),
            "{h}"
        );
        assert!(!h.contains("javascript"), "{h}");
        assert!(h.contains("<a href=\"https://l/\">in</a>"), "{h}");
    }
}

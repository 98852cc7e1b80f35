//! (SIGNING) Agreement templates per tenant, versioned: a version that has been sent is
//! immutable, editing it makes the next version. Bodies are Markdown, rendered safely
//! ([`render_markdown`]: raw HTML is shown as text, only http(s) and mailto links).

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::DbConn;
use crate::error::{ControlError, Result};

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

/// The version `version_id` of the tenant (any state). For the signing flow.
pub fn load_version(
    conn: &mut DbConn,
    tenant_id: &str,
    version_id: &str,
) -> Result<TemplateVersionOut> {
    let _ = (conn, tenant_id, version_id);
    Err(ControlError::Internal(
        "consent_templates::load_version: not built yet".into(),
    ))
}

/// The newest version of template `template_id` (not archived). For the signing flow.
pub fn latest_version(
    conn: &mut DbConn,
    tenant_id: &str,
    template_id: &str,
) -> Result<TemplateVersionOut> {
    let _ = (conn, tenant_id, template_id);
    Err(ControlError::Internal(
        "consent_templates::latest_version: not built yet".into(),
    ))
}

/// Marks a version as sent (from then on immutable), in the caller's transaction.
pub fn mark_sent(
    conn: &mut DbConn,
    tenant_id: &str,
    version_id: &str,
    now: NaiveDateTime,
) -> Result<()> {
    let _ = (conn, tenant_id, version_id, now);
    Err(ControlError::Internal(
        "consent_templates::mark_sent: not built yet".into(),
    ))
}

/// Markdown to safe HTML.
pub fn render_markdown(markdown: &str) -> String {
    let _ = markdown;
    String::new()
}

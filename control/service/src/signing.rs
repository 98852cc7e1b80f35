//! (SIGNING) Signing requests and the signer's flow: a link by e-mail or SMS, the exact text,
//! scopes to accept or decline, a one-time code (and a guardian's for minors), a sealed
//! record, a receipt, and withdrawal through the receipt's link.
//!
//! Staff side (a [`Ctx`]): [`create_requests`], [`list_requests`], [`get_request`],
//! [`revoke_request`], [`resend_request`]. Public side (no account; a raw link token and the
//! client's address): [`open_request`], [`submit_choices`], [`resend_code`], [`confirm_code`],
//! [`open_receipt`], [`receipt_pdf`], [`receipt_json`], [`start_withdrawal`],
//! [`confirm_withdrawal`], [`asset_preview`].

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{Duration, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use likeness_control_domain::{ConsentSource, minor, validate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

use crate::Ctx;
use crate::Deps;
use crate::agreements::{NewAgreement, Withdrawal};
use crate::audit::{self, Who};
use crate::config::SigningConfig;
use crate::consent_templates::{self, LegalCharacter, Scope, TemplateVersionOut};
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::events;
use crate::evidence::{self, EvidenceKind, EvidenceRow};
use crate::outbox::{self, Channel, OutgoingMessage};
use crate::pagination::Page;
use crate::roles::Permission;
use crate::schema::{
    agreements, assets, consent_template_versions, faces, otp_challenges, persons,
    signing_requests, tenants,
};
use crate::settings::{self, domain_error};

mod messages;
mod preview;

/// The state of a signing request (stored as its string; `expired` is also computed from
/// `expires_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Sent, not yet opened.
    Sent,
    /// The signer opened the link.
    Opened,
    /// Signed (the link is used up).
    Signed,
    /// The link expired unsigned.
    Expired,
    /// Revoked by staff.
    Revoked,
    /// Locked after too many wrong codes.
    Locked,
}

impl RequestStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Sent => "sent",
            RequestStatus::Opened => "opened",
            RequestStatus::Signed => "signed",
            RequestStatus::Expired => "expired",
            RequestStatus::Revoked => "revoked",
            RequestStatus::Locked => "locked",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "sent" => RequestStatus::Sent,
            "opened" => RequestStatus::Opened,
            "signed" => RequestStatus::Signed,
            "expired" => RequestStatus::Expired,
            "revoked" => RequestStatus::Revoked,
            "locked" => RequestStatus::Locked,
            other => {
                return Err(ControlError::invalid(
                    "status",
                    format!("unknown request status {other:?}"),
                ));
            }
        })
    }
}

/// Why a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// A first consent.
    #[default]
    Sign,
    /// The renewal of an agreement that ends.
    Renewal,
}

impl Purpose {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Sign => "sign",
            Purpose::Renewal => "renewal",
        }
    }
}

/// Requests to send, one per person, in one call.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSigningRequests {
    /// The persons asked.
    pub person_ids: Vec<String>,
    /// The template (its newest version is sent and pinned).
    pub template_id: String,
    /// E-mail or SMS (default: e-mail when the person has an address, else SMS).
    #[serde(default)]
    pub channel: Option<Channel>,
    /// `en`, `sv` or `nl` (default: the template's language).
    #[serde(default)]
    pub language: Option<String>,
    /// Files shown to the signer (each must show the person).
    #[serde(default)]
    pub asset_ids: Vec<String>,
    /// Sign (default) or renewal.
    #[serde(default)]
    pub purpose: Purpose,
    /// The agreement a renewal replaces.
    #[serde(default)]
    pub renews_agreement_id: Option<String>,
}

/// A person for whom no request was made, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BulkFailure {
    /// The person.
    pub person_id: String,
    /// Stable code (`not_found`, `no_email`, `no_phone`, `no_contact`, ...).
    pub code: String,
    /// Human message.
    pub message: String,
}

/// The outcome of [`create_requests`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkOutcome {
    /// The requests made (and sent through the outbox).
    pub created: Vec<SigningRequestOut>,
    /// The persons for whom none was made.
    pub failed: Vec<BulkFailure>,
}

/// A signing request as staff see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SigningRequestOut {
    /// ID.
    pub id: String,
    /// The person asked.
    pub person_id: String,
    /// Their name (or pseudonym when the tenant hides names).
    pub person_name: String,
    /// The template.
    pub template_id: String,
    /// The version sent (pinned).
    pub template_version_id: String,
    /// The version's title.
    pub template_title: String,
    /// The version's number.
    pub version: i32,
    /// Sign or renewal.
    pub purpose: Purpose,
    /// The agreement a renewal replaces.
    pub renews_agreement_id: Option<String>,
    /// E-mail or SMS.
    pub channel: Channel,
    /// The address, masked (`j***@example.org`, `+46*****12`).
    pub destination: String,
    /// Language of the messages and page.
    pub language: String,
    /// Status (`expired` when the link's time passed unsigned).
    pub status: RequestStatus,
    /// Files shown to the signer.
    pub asset_ids: Vec<String>,
    /// Last day the consent will be valid (none: until withdrawn).
    pub valid_until: Option<NaiveDate>,
    /// When the link expires (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub expires_at: NaiveDateTime,
    /// First opened (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc::option")]
    pub opened_at: Option<NaiveDateTime>,
    /// Signed (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc::option")]
    pub signed_at: Option<NaiveDateTime>,
    /// Revoked (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc::option")]
    pub revoked_at: Option<NaiveDateTime>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
    /// Locked after too many wrong codes (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc::option")]
    pub locked_at: Option<NaiveDateTime>,
    /// The agreement made by signing.
    pub agreement_id: Option<String>,
    /// The sealed evidence of the signature.
    pub evidence_id: Option<String>,
    /// Who sent it.
    pub created_by: Option<String>,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
}

/// Filters of [`list_requests`].
#[derive(Debug, Clone)]
pub struct RequestFilter {
    /// Only this status (`expired` included by time).
    pub status: Option<RequestStatus>,
    /// Only this person's.
    pub person_id: Option<String>,
    /// The page.
    pub page: Page,
}

/// Query parameters of `GET /api/v1/signing-requests`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestQuery {
    /// Only this status (`sent`, `opened`, `signed`, `expired`, `revoked`, `locked`).
    pub status: Option<RequestStatus>,
    /// Only this person's requests.
    pub person_id: Option<String>,
    /// Page number, from 1 (default 1).
    pub page: Option<i64>,
    /// Items per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
}

impl RequestQuery {
    /// The validated filter.
    pub fn filter(self) -> Result<RequestFilter> {
        let page = crate::pagination::PageQuery {
            page: self.page,
            per_page: self.per_page,
            sort: None,
        }
        .page()?;
        Ok(RequestFilter {
            status: self.status,
            person_id: self.person_id.filter(|s| !s.trim().is_empty()),
            page,
        })
    }
}

/// Why a request is revoked.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeInput {
    /// The reason (kept with the request).
    pub reason: String,
}

/// The signer's client, as the public pages see it (kept in the evidence).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Client IP address.
    pub ip: Option<String>,
    /// The browser's User-Agent.
    pub user_agent: Option<String>,
}

/// Where the signer is in the flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SignStep {
    /// Read the text and choose the scopes.
    Choose,
    /// Type the code(s) just sent.
    EnterCode {
        /// Where the signer's code went, masked.
        destination_masked: String,
        /// Where the guardian's code went, masked (minors).
        guardian_destination_masked: Option<String>,
        /// When the code expires (UTC).
        #[serde(with = "likeness_control_domain::time::utc")]
        code_expires_at: NaiveDateTime,
        /// A new code may be asked from then on (UTC).
        #[serde(with = "likeness_control_domain::time::utc")]
        resend_after: NaiveDateTime,
    },
}

/// The signer's page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignPage {
    /// The request.
    pub request_id: String,
    /// The tenant (who asks).
    pub tenant_name: String,
    /// Language of the page (`en`, `sv`, `nl`).
    pub language: String,
    /// The version's title.
    pub title: String,
    /// The exact text, rendered to safe HTML.
    pub body_html: String,
    /// The scopes to accept or decline.
    pub scopes: Vec<Scope>,
    /// The separate face-matching scope's text (never pre-ticked), when offered.
    pub face_matching_text: Option<String>,
    /// First day of validity.
    pub valid_from: NaiveDate,
    /// Last day of validity (none: until withdrawn).
    pub valid_until: Option<NaiveDate>,
    /// The legal character.
    pub legal_character: LegalCharacter,
    /// Who asks (the tenant's name).
    pub requester: String,
    /// How to withdraw later.
    pub withdraw_hint: String,
    /// Files shown (thumbnails via [`asset_preview`]).
    pub asset_ids: Vec<String>,
    /// The person is a minor today: a guardian must confirm too.
    pub needs_guardian: bool,
    /// Where the signer is.
    pub step: SignStep,
}

/// A guardian (for a minor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardianInput {
    /// The guardian's name.
    pub name: String,
    /// Their relation to the person (e.g. `parent`).
    pub relation: String,
    /// An e-mail address or phone number (E.164) for their own code.
    pub contact: String,
}

/// The signer's choices.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignChoices {
    /// Channels accepted (every mandatory one must be).
    pub accepted_scopes: Vec<String>,
    /// Face matching accepted (only when offered).
    pub face_matching: bool,
    /// The guardian (required for a minor).
    pub guardian: Option<GuardianInput>,
}

/// After a successful signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedOutcome {
    /// The template's text shown after signing.
    pub after_signing_text: String,
    /// The receipt link's token (`/receipt/{token}`).
    pub receipt_token: String,
    /// Language of the page.
    pub language: String,
    /// The agreement made.
    pub agreement_id: String,
}

/// The receipt document (H2's receipt JSON: record, hash, signature, key id).
pub type ReceiptDoc = likeness_control_domain::evidence::Receipt;

/// Where the person is in withdrawing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum WithdrawStep {
    /// Offer to withdraw.
    Offer,
    /// Type the code just sent.
    EnterCode {
        /// Where it went, masked.
        destination_masked: String,
        /// When it expires (UTC).
        #[serde(with = "likeness_control_domain::time::utc")]
        code_expires_at: NaiveDateTime,
    },
    /// Withdrawn.
    Done,
}

/// The receipt page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiptPage {
    /// The receipt (record, hash, signature, key id).
    pub receipt: ReceiptDoc,
    /// The tenant (who asked).
    pub tenant_name: String,
    /// The version's title.
    pub title: String,
    /// The version's number.
    pub version: i32,
    /// Scopes accepted.
    pub scopes_accepted: Vec<String>,
    /// Scopes declined.
    pub scopes_declined: Vec<String>,
    /// What the signer read for each accepted scope (the template version's label, else the
    /// channel's name), in the order of `scopes_accepted`.
    pub scope_labels_accepted: Vec<String>,
    /// What the signer read for each declined scope, in the order of `scopes_declined`.
    pub scope_labels_declined: Vec<String>,
    /// The guardian who agreed too (a minor's signature), if any.
    pub guardian: Option<ReceiptGuardian>,
    /// Face matching offered.
    pub face_matching_offered: bool,
    /// Face matching accepted.
    pub face_matching_accepted: bool,
    /// First day of validity.
    pub valid_from: NaiveDate,
    /// Last day of validity (none: until withdrawn).
    pub valid_until: Option<NaiveDate>,
    /// When it was signed (UTC).
    #[serde(with = "likeness_control_domain::time::utc")]
    pub signed_at: NaiveDateTime,
    /// The signer's name (or pseudonym).
    pub signer_name: String,
    /// When it was withdrawn (UTC), if it was.
    #[serde(with = "likeness_control_domain::time::utc::option")]
    pub withdrawn_at: Option<NaiveDateTime>,
    /// Language of the page.
    pub language: String,
    /// Where the person is in withdrawing.
    pub withdrawal: WithdrawStep,
}

/// The guardian on a receipt: they confirmed with their own code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptGuardian {
    /// The guardian's name, as given.
    pub name: String,
    /// The relation to the signer, as given (e.g. mother).
    pub relation: String,
}

// ---------------------------------------------------------------------------------------------
// Rows, tokens, codes
// ---------------------------------------------------------------------------------------------

/// A stored signing request.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_requests)]
struct ReqRow {
    id: String,
    tenant_id: String,
    person_id: String,
    template_version_id: String,
    purpose: String,
    renews_agreement_id: Option<String>,
    channel: String,
    destination: String,
    destination_sha256: String,
    language: String,
    asset_ids_json: String,
    valid_until: Option<NaiveDate>,
    status: String,
    pending_json: Option<String>,
    expires_at: NaiveDateTime,
    opened_at: Option<NaiveDateTime>,
    signed_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
    revoke_reason: Option<String>,
    locked_at: Option<NaiveDateTime>,
    agreement_id: Option<String>,
    evidence_id: Option<String>,
    created_by: Option<String>,
    created_at: NaiveDateTime,
}

impl ReqRow {
    fn channel(&self) -> Channel {
        if self.channel == "sms" {
            Channel::Sms
        } else {
            Channel::Email
        }
    }

    fn asset_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.asset_ids_json).unwrap_or_default()
    }

    fn pending(&self) -> Result<Option<Pending>> {
        match &self.pending_json {
            None => Ok(None),
            Some(j) => Ok(Some(serde_json::from_str(j).map_err(|e| {
                ControlError::Internal(format!("signing request {}: pending_json: {e}", self.id))
            })?)),
        }
    }

    /// The status, `expired` when the link's time passed unsigned.
    fn effective_status(&self, now: NaiveDateTime) -> RequestStatus {
        let st = RequestStatus::parse(&self.status).unwrap_or(RequestStatus::Expired);
        match st {
            RequestStatus::Sent | RequestStatus::Opened if self.expires_at <= now => {
                RequestStatus::Expired
            }
            other => other,
        }
    }

    /// `Ok` when the link may still be used to sign; else the clear answer why not.
    fn usable(&self, now: NaiveDateTime) -> Result<()> {
        match self.effective_status(now) {
            RequestStatus::Sent | RequestStatus::Opened => Ok(()),
            RequestStatus::Signed => Err(ControlError::Gone {
                code: "link_used",
                message:
                    "this link was used: the agreement is signed (see the receipt you received)"
                        .into(),
            }),
            RequestStatus::Revoked => Err(ControlError::Gone {
                code: "link_revoked",
                message: "this link was withdrawn by the sender; nothing was signed".into(),
            }),
            RequestStatus::Locked => Err(ControlError::Gone {
                code: "request_locked",
                message: "too many wrong codes: this link is locked; ask the sender for a new one"
                    .into(),
            }),
            RequestStatus::Expired => Err(ControlError::Gone {
                code: "link_expired",
                message: "this link has expired; ask the sender for a new one".into(),
            }),
        }
    }
}

/// The signer's choices between choosing and confirming (stored in `pending_json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    accepted_scopes: Vec<String>,
    declined_scopes: Vec<String>,
    face_matching: bool,
    guardian: Option<GuardianInput>,
}

/// A one-time code as stored (only its keyed hash).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = otp_challenges)]
struct Challenge {
    id: String,
    destination_sha256: String,
    code_hash: String,
    last_sent_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    attempts: i32,
    verified_at: Option<NaiveDateTime>,
    locked_at: Option<NaiveDateTime>,
}

/// Code purposes.
const SIGN: &str = "sign";
const GUARDIAN: &str = "guardian";
const WITHDRAW: &str = "withdraw";

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The form of an address that is hashed (e-mail case-insensitive).
fn normalized_destination(channel: Channel, to: &str) -> String {
    match channel {
        Channel::Email => to.trim().to_lowercase(),
        Channel::Sms => to.trim().to_string(),
    }
}

fn destination_sha256(channel: Channel, to: &str) -> String {
    sha256_hex(&normalized_destination(channel, to))
}

/// A new link token (32 random bytes, base64url) and its stored hash.
fn new_token() -> Result<(String, String)> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ControlError::Internal(format!("random: {e}")))?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let hash = sha256_hex(&token);
    Ok((token, hash))
}

/// A well-formed token (43 base64url characters), else `None`: a malformed one is answered
/// like an unknown one.
fn token_hash(token: &str) -> Option<String> {
    let t = token.trim();
    (t.len() == 43
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| sha256_hex(t))
}

/// Refuses (429 `too_many_unknown_links`) a client address past `[signing]`
/// `max_unknown_tokens_per_ip` unknown tokens within `unknown_token_window_secs`: before any
/// lookup, so a valid token answers the same.
fn public_guard(deps: &Deps, client: &ClientInfo) -> Result<()> {
    let cfg = &deps.config.signing;
    deps.public_throttle.check(
        client.ip.as_deref(),
        deps.clock.now(),
        cfg.max_unknown_tokens_per_ip,
        cfg.unknown_token_window_secs,
    )
}

/// Counts an unknown link or receipt token against the client's address.
fn public_noted<T>(deps: &Deps, ip: Option<&str>, r: Result<T>) -> Result<T> {
    if let Err(ControlError::NotFound(what)) = &r
        && (what == "signing link" || what == "receipt")
    {
        deps.public_throttle.missed(ip, deps.clock.now());
    }
    r
}

fn unknown_link() -> ControlError {
    ControlError::not_found("signing link")
}

/// A uniformly random 6-digit code.
fn new_code() -> Result<String> {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(|e| ControlError::Internal(format!("random: {e}")))?;
        let n = u32::from_le_bytes(b);
        // 4,294,000,000 is the largest multiple of 10^6 below 2^32: no bias.
        if n < 4_294_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// HMAC-SHA256(key, challenge id || code), hex.
fn code_hash(key: &[u8; 32], challenge_id: &str, code: &str) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| ControlError::Internal(format!("hmac: {e}")))?;
    mac.update(challenge_id.as_bytes());
    mac.update(code.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Whether `code` is the challenge's, compared in constant time.
fn code_matches(key: &[u8; 32], ch: &Challenge, code: &str) -> Result<bool> {
    let h = code_hash(key, &ch.id, code)?;
    Ok(h.len() == ch.code_hash.len() && bool::from(h.as_bytes().ct_eq(ch.code_hash.as_bytes())))
}

/// `Ok(code)` when `input` is 6 digits (spaces ignored).
fn code_format(field: &str, input: &str) -> Result<String> {
    let c: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    if c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) {
        Ok(c)
    } else {
        Err(ControlError::invalid(
            field,
            "must be the 6 digits of the code",
        ))
    }
}

/// The key of the one-time codes' hashes.
fn otp_key(deps: &Deps) -> Result<[u8; 32]> {
    Ok(deps.signer()?.derive_key("otp"))
}

fn secs_between(from: NaiveDateTime, to: NaiveDateTime) -> u64 {
    u64::try_from((to - from).num_seconds().max(1)).unwrap_or(1)
}

/// Where a code of `purpose` for this request (or receipt) stands.
fn latest_challenge(
    conn: &mut DbConn,
    tenant_id: &str,
    request_id: Option<&str>,
    evidence_id: Option<&str>,
    purpose: &str,
) -> Result<Option<Challenge>> {
    let mut q = otp_challenges::table
        .filter(otp_challenges::tenant_id.eq(tenant_id))
        .filter(otp_challenges::purpose.eq(purpose))
        .into_boxed();
    if let Some(r) = request_id {
        q = q.filter(otp_challenges::request_id.eq(r.to_string()));
    }
    if let Some(e) = evidence_id {
        q = q.filter(otp_challenges::evidence_id.eq(e.to_string()));
    }
    Ok(
        q.order((otp_challenges::created_at.desc(), otp_challenges::id.desc()))
            .select(Challenge::as_select())
            .first(conn)
            .optional()?,
    )
}

/// Refuses a new code when the last one of this kind went out less than `resend_min_secs`
/// ago, when `max_code_sends` went out already, or when the address got
/// `max_codes_per_destination_per_hour` codes in the last hour.
#[allow(clippy::too_many_arguments)]
fn check_send(
    conn: &mut DbConn,
    cfg: &SigningConfig,
    tenant_id: &str,
    request_id: Option<&str>,
    evidence_id: Option<&str>,
    purpose: &str,
    dest_sha: &str,
    now: NaiveDateTime,
) -> Result<()> {
    let mut q = otp_challenges::table
        .filter(otp_challenges::tenant_id.eq(tenant_id))
        .filter(otp_challenges::purpose.eq(purpose))
        .into_boxed();
    if let Some(r) = request_id {
        q = q.filter(otp_challenges::request_id.eq(r.to_string()));
    }
    if let Some(e) = evidence_id {
        q = q.filter(otp_challenges::evidence_id.eq(e.to_string()));
    }
    let sent: Vec<NaiveDateTime> = q.select(otp_challenges::last_sent_at).load(conn)?;
    if let Some(last) = sent.iter().max() {
        let next = *last + Duration::seconds(cfg.resend_min_secs);
        if next > now {
            let secs = secs_between(now, next);
            return Err(ControlError::RateLimited {
                code: "code_resend_too_soon",
                message: format!("a code was just sent; a new one can be sent in {secs} seconds"),
                retry_after_secs: secs,
            });
        }
    }
    if i64::try_from(sent.len()).unwrap_or(i64::MAX) >= i64::from(cfg.max_code_sends) {
        return Err(ControlError::RateLimited {
            code: "too_many_codes",
            message: format!(
                "{} codes were sent for this link already, no more can be sent; ask the sender for a new link",
                sent.len()
            ),
            retry_after_secs: 3600,
        });
    }
    let hour_ago = now - Duration::hours(1);
    let recent: Vec<NaiveDateTime> = otp_challenges::table
        .filter(otp_challenges::destination_sha256.eq(dest_sha))
        .filter(otp_challenges::last_sent_at.gt(hour_ago))
        .select(otp_challenges::last_sent_at)
        .load(conn)?;
    if i64::try_from(recent.len()).unwrap_or(i64::MAX) >= cfg.max_codes_per_destination_per_hour {
        let oldest = recent.iter().min().copied().unwrap_or(now);
        let secs = secs_between(now, oldest + Duration::hours(1));
        return Err(ControlError::RateLimited {
            code: "destination_rate_limited",
            message: format!(
                "too many codes were sent to this address in the last hour; try again in {secs} seconds"
            ),
            retry_after_secs: secs,
        });
    }
    Ok(())
}

/// What a new code goes with.
struct NewCode<'a> {
    tenant_id: &'a str,
    request_id: &'a str,
    evidence_id: Option<&'a str>,
    purpose: &'a str,
    channel: Channel,
    to: &'a str,
}

/// Creates a challenge and writes its message (`text` makes it from the code) to the outbox, in
/// the caller's transaction. Returns the challenge.
fn send_code(
    conn: &mut DbConn,
    key: &[u8; 32],
    cfg: &SigningConfig,
    c: NewCode<'_>,
    text: impl FnOnce(&str) -> messages::Text,
    now: NaiveDateTime,
) -> Result<Challenge> {
    let dest_sha = destination_sha256(c.channel, c.to);
    check_send(
        conn,
        cfg,
        c.tenant_id,
        (c.purpose != WITHDRAW).then_some(c.request_id),
        c.evidence_id,
        c.purpose,
        &dest_sha,
        now,
    )?;
    let id = db::new_id();
    let code = new_code()?;
    let hash = code_hash(key, &id, &code)?;
    let expires_at = now + Duration::minutes(cfg.code_ttl_minutes);
    diesel::insert_into(otp_challenges::table)
        .values((
            otp_challenges::id.eq(&id),
            otp_challenges::tenant_id.eq(c.tenant_id),
            otp_challenges::request_id.eq(c.request_id),
            otp_challenges::evidence_id.eq(c.evidence_id),
            otp_challenges::purpose.eq(c.purpose),
            otp_challenges::channel.eq(c.channel.as_str()),
            otp_challenges::destination_sha256.eq(&dest_sha),
            otp_challenges::code_hash.eq(&hash),
            otp_challenges::sends.eq(1),
            otp_challenges::first_sent_at.eq(now),
            otp_challenges::last_sent_at.eq(now),
            otp_challenges::expires_at.eq(expires_at),
            otp_challenges::attempts.eq(0),
            otp_challenges::created_at.eq(now),
        ))
        .execute(conn)?;
    let t = text(&code);
    // The code goes to the person (or their guardian): sealed under the person's key.
    let person_id: String = signing_requests::table
        .filter(signing_requests::tenant_id.eq(c.tenant_id))
        .filter(signing_requests::id.eq(c.request_id))
        .select(signing_requests::person_id)
        .first(conn)?;
    outbox::enqueue_about(
        conn,
        c.tenant_id,
        &person_id,
        OutgoingMessage {
            channel: c.channel,
            to: c.to.to_string(),
            subject: Some(t.subject),
            text: t.text,
            html: None,
            purpose: "code".into(),
            related_id: Some(c.request_id.to_string()),
            secret: true,
        },
        now,
    )?;
    latest_challenge(
        conn,
        c.tenant_id,
        Some(c.request_id),
        c.evidence_id,
        c.purpose,
    )?
    .ok_or_else(|| ControlError::Internal("the code just stored is missing".into()))
}

/// The channel of a guardian's contact: e-mail when it has an `@`, else SMS.
fn contact_channel(contact: &str) -> Channel {
    if contact.contains('@') {
        Channel::Email
    } else {
        Channel::Sms
    }
}

fn format_minute(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn time_str(t: NaiveDateTime) -> String {
    likeness_control_domain::time::format_utc(&t)
}

// ---------------------------------------------------------------------------------------------
// What the flow reads
// ---------------------------------------------------------------------------------------------

/// The person as the flow needs them (the personal fields opened from the vault).
#[derive(Debug, Clone)]
struct PersonRow {
    id: String,
    name: String,
    pseudonym: String,
    email: Option<String>,
    phone: Option<String>,
    date_of_birth: Option<NaiveDate>,
    deleted_at: Option<NaiveDateTime>,
}

/// The person (`None`: unknown, or erased).
fn person_row(conn: &mut DbConn, tenant_id: &str, person_id: &str) -> Result<Option<PersonRow>> {
    let row: Option<(String, String, Option<NaiveDateTime>)> = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::id.eq(person_id))
        .select((persons::id, persons::pseudonym, persons::deleted_at))
        .first(conn)
        .optional()?;
    let Some((id, pseudonym, deleted_at)) = row else {
        return Ok(None);
    };
    let Some(p) = crate::persons::personal_one(conn, tenant_id, &id)? else {
        return Ok(None);
    };
    Ok(Some(PersonRow {
        id,
        name: p.name,
        pseudonym,
        email: p.email,
        phone: p.phone,
        date_of_birth: p.date_of_birth,
        deleted_at,
    }))
}

fn tenant_name(conn: &mut DbConn, tenant_id: &str) -> Result<String> {
    Ok(tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::name)
        .first(conn)?)
}

fn find_request(conn: &mut DbConn, token: &str) -> Result<ReqRow> {
    let hash = token_hash(token).ok_or_else(unknown_link)?;
    signing_requests::table
        .filter(signing_requests::token_sha256.eq(hash))
        .select(ReqRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(unknown_link)?
        .opened()
}

fn load_request(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<ReqRow> {
    signing_requests::table
        .filter(signing_requests::tenant_id.eq(tenant_id))
        .filter(signing_requests::id.eq(id))
        .select(ReqRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("signing request"))?
        .opened()
}

impl ReqRow {
    /// The destination opened from the vault (sealed under the person's key; a request stored
    /// before the vault holds it plain; an erased person's reads as empty).
    fn opened(mut self) -> Result<Self> {
        if crate::vault::Vault::is_sealed_text(&self.destination) {
            let v = crate::vault::ambient(&self.tenant_id, &self.person_id)?;
            self.destination =
                match v.open_text(&self.tenant_id, &self.person_id, &self.destination) {
                    Ok(d) => d,
                    Err(ControlError::Gone { .. }) => String::new(),
                    Err(e) => return Err(e),
                };
        }
        if let Some(p) = &self.pending_json
            && crate::vault::Vault::is_sealed_text(p)
        {
            let v = crate::vault::ambient(&self.tenant_id, &self.person_id)?;
            self.pending_json = match v.open_text(&self.tenant_id, &self.person_id, p) {
                Ok(j) => Some(j),
                Err(ControlError::Gone { .. }) => None,
                Err(e) => return Err(e),
            };
        }
        Ok(self)
    }
}

/// The public pages' identity in the audit log: the person (by pseudonym), from their address.
fn signer_who(tenant_id: &str, pseudonym: &str, client: &ClientInfo) -> Who {
    Who {
        tenant_id: Some(tenant_id.to_string()),
        user_id: None,
        label: format!("signer:{pseudonym}"),
        ip: client.ip.clone(),
    }
}

/// Everything the signer's page shows, read in one go.
struct Context {
    req: ReqRow,
    person: PersonRow,
    version: TemplateVersionOut,
    tenant_name: String,
    needs_guardian: bool,
    age: Option<u32>,
}

fn context(conn: &mut DbConn, req: ReqRow, today: NaiveDate) -> Result<Context> {
    let person = person_row(conn, &req.tenant_id, &req.person_id)?
        .filter(|p| p.deleted_at.is_none())
        .ok_or_else(unknown_link)?;
    let version = consent_templates::load_version(conn, &req.tenant_id, &req.template_version_id)?;
    let tenant_name = tenant_name(conn, &req.tenant_id)?;
    let threshold = settings::get(conn, &req.tenant_id)?.age_threshold;
    let needs_guardian = person
        .date_of_birth
        .is_some_and(|dob| minor::is_minor(dob, today, threshold));
    let age = person.date_of_birth.map(|dob| minor::age_on(dob, today));
    Ok(Context {
        req,
        person,
        version,
        tenant_name,
        needs_guardian,
        age,
    })
}

fn sign_page(
    conn: &mut DbConn,
    cfg: &SigningConfig,
    cx: &Context,
    today: NaiveDate,
) -> Result<SignPage> {
    let step = match cx.req.pending()? {
        None => SignStep::Choose,
        Some(p) => {
            let t = &cx.req.tenant_id;
            let ch = latest_challenge(conn, t, Some(&cx.req.id), None, SIGN)?;
            match ch {
                None => SignStep::Choose,
                Some(ch) => SignStep::EnterCode {
                    destination_masked: outbox::mask_destination(
                        cx.req.channel(),
                        &cx.req.destination,
                    ),
                    guardian_destination_masked: p
                        .guardian
                        .as_ref()
                        .map(|g| outbox::mask_destination(contact_channel(&g.contact), &g.contact)),
                    code_expires_at: ch.expires_at,
                    resend_after: ch.last_sent_at + Duration::seconds(cfg.resend_min_secs),
                },
            }
        }
    };
    let v = &cx.version;
    Ok(SignPage {
        request_id: cx.req.id.clone(),
        tenant_name: cx.tenant_name.clone(),
        language: cx.req.language.clone(),
        title: v.title.clone(),
        body_html: v.body_html.clone(),
        scopes: v.scopes.clone(),
        face_matching_text: v.face_matching_text.clone(),
        valid_from: today,
        valid_until: cx.req.valid_until,
        legal_character: v.legal_character,
        requester: cx.tenant_name.clone(),
        withdraw_hint: messages::withdraw_hint(&cx.req.language).to_string(),
        asset_ids: cx.req.asset_ids(),
        needs_guardian: cx.needs_guardian,
        step,
    })
}

// ---------------------------------------------------------------------------------------------
// Staff side
// ---------------------------------------------------------------------------------------------

/// The answers for `rows`, with names as the actor may see them.
fn outs(
    conn: &mut DbConn,
    tenant_id: &str,
    rows: Vec<ReqRow>,
    hide_names: bool,
    now: NaiveDateTime,
) -> Result<Vec<SigningRequestOut>> {
    let rows = rows
        .into_iter()
        .map(ReqRow::opened)
        .collect::<Result<Vec<_>>>()?;
    let person_ids: Vec<String> = rows.iter().map(|r| r.person_id.clone()).collect();
    let mut real = crate::persons::names_of(conn, tenant_id, &person_ids)?;
    let names: HashMap<String, (String, String)> = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::id.eq_any(&person_ids))
        .select((persons::id, persons::pseudonym))
        .load::<(String, String)>(conn)?
        .into_iter()
        .map(|(id, p)| (real.remove(&id).unwrap_or_default(), id, p))
        .map(|(n, id, p)| (id, (n, p)))
        .collect();
    let version_ids: Vec<String> = rows.iter().map(|r| r.template_version_id.clone()).collect();
    let versions: HashMap<String, (String, i32, String)> = consent_template_versions::table
        .filter(consent_template_versions::tenant_id.eq(tenant_id))
        .filter(consent_template_versions::id.eq_any(&version_ids))
        .select((
            consent_template_versions::id,
            consent_template_versions::template_id,
            consent_template_versions::version,
            consent_template_versions::title,
        ))
        .load::<(String, String, i32, String)>(conn)?
        .into_iter()
        .map(|(id, t, v, title)| (id, (t, v, title)))
        .collect();
    rows.into_iter()
        .map(|r| {
            let status = r.effective_status(now);
            let person_name = names
                .get(&r.person_id)
                .map(|(n, p)| if hide_names { p.clone() } else { n.clone() })
                .unwrap_or_default();
            let (template_id, version, template_title) = versions
                .get(&r.template_version_id)
                .cloned()
                .unwrap_or_default();
            let purpose = if r.purpose == "renewal" {
                Purpose::Renewal
            } else {
                Purpose::Sign
            };
            Ok(SigningRequestOut {
                destination: outbox::mask_destination(r.channel(), &r.destination),
                channel: r.channel(),
                asset_ids: r.asset_ids(),
                id: r.id,
                person_id: r.person_id,
                person_name,
                template_id,
                template_version_id: r.template_version_id,
                template_title,
                version,
                purpose,
                renews_agreement_id: r.renews_agreement_id,
                language: r.language,
                status,
                valid_until: r.valid_until,
                expires_at: r.expires_at,
                opened_at: r.opened_at,
                signed_at: r.signed_at,
                revoked_at: r.revoked_at,
                revoke_reason: r.revoke_reason,
                locked_at: r.locked_at,
                agreement_id: r.agreement_id,
                evidence_id: r.evidence_id,
                created_by: r.created_by,
                created_at: r.created_at,
            })
        })
        .collect()
}

fn hide_names(conn: &mut DbConn, ctx: &Ctx) -> Result<bool> {
    let s = settings::get(conn, ctx.tenant())?;
    Ok(!crate::persons::shows_real_names(&ctx.actor, &s))
}

fn out_one(conn: &mut DbConn, ctx: &Ctx, r: ReqRow) -> Result<SigningRequestOut> {
    let hide = hide_names(conn, ctx)?;
    outs(conn, ctx.tenant(), vec![r], hide, ctx.now)?
        .pop()
        .ok_or_else(|| ControlError::Internal("a request vanished".into()))
}

/// Most persons in one bulk call.
pub const MAX_BULK: usize = 1000;

/// The link's message for a request (its token is known only here).
#[allow(clippy::too_many_arguments)]
fn enqueue_request_message(
    conn: &mut DbConn,
    cfg: &SigningConfig,
    tenant_id: &str,
    tenant: &str,
    title: &str,
    req_id: &str,
    lang: &str,
    channel: Channel,
    to: &str,
    token: &str,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<String> {
    let link = format!("{}/sign/{token}", cfg.public_base_url.trim_end_matches('/'));
    let m = messages::request(lang, tenant, title, &link, &format_minute(expires_at));
    let person_id: String = signing_requests::table
        .filter(signing_requests::tenant_id.eq(tenant_id))
        .filter(signing_requests::id.eq(req_id))
        .select(signing_requests::person_id)
        .first(conn)?;
    outbox::enqueue_about(
        conn,
        tenant_id,
        &person_id,
        OutgoingMessage {
            channel,
            to: to.to_string(),
            subject: Some(m.subject),
            text: m.text,
            html: None,
            purpose: "signing_request".into(),
            related_id: Some(req_id.to_string()),
            secret: true,
        },
        now,
    )
}

fn create_in_tx(
    c: &mut DbConn,
    ctx: &Ctx,
    new: &NewSigningRequests,
    person_ids: &[String],
    asset_ids: &[String],
) -> Result<BulkOutcome> {
    let (t, now, who) = (ctx.tenant(), ctx.now, ctx.who());
    let cfg = &ctx.deps.config.signing;
    let version = consent_templates::latest_version(c, t, &new.template_id)?;
    let language = new
        .language
        .clone()
        .unwrap_or_else(|| version.language.clone());
    if !asset_ids.is_empty() {
        let found: Vec<String> = assets::table
            .filter(assets::tenant_id.eq(t))
            .filter(assets::id.eq_any(asset_ids))
            .select(assets::id)
            .load(c)?;
        if let Some(missing) = asset_ids.iter().find(|a| !found.contains(a)) {
            return Err(ControlError::invalid(
                "asset_ids",
                format!("no file {missing} in this tenant"),
            ));
        }
    }
    let asset_ids_json = serde_json::to_string(asset_ids)?;
    let valid_until = version
        .validity_days
        .map(|d| ctx.today() + Duration::days(i64::from(d)));
    let expires_at = now + Duration::hours(cfg.link_ttl_hours);
    let tenant = tenant_name(c, t)?;
    let mut created_ids = Vec::new();
    let mut failed = Vec::new();
    for pid in person_ids {
        let fail = |code: &str, message: String| BulkFailure {
            person_id: pid.clone(),
            code: code.to_string(),
            message,
        };
        let Some(p) = person_row(c, t, pid)?.filter(|p| p.deleted_at.is_none()) else {
            failed.push(fail("not_found", format!("no person {pid}")));
            continue;
        };
        let email = p.email.clone().filter(|e| !e.trim().is_empty());
        let phone = p.phone.clone().filter(|e| !e.trim().is_empty());
        let (channel, to) = match (new.channel, email, phone) {
            (Some(Channel::Email), Some(e), _) | (None, Some(e), _) => (Channel::Email, e),
            (Some(Channel::Sms), _, Some(ph)) | (None, None, Some(ph)) => (Channel::Sms, ph),
            (Some(Channel::Email), None, _) => {
                failed.push(fail(
                    "no_email",
                    format!("{} has no e-mail address", p.pseudonym),
                ));
                continue;
            }
            (Some(Channel::Sms), _, None) => {
                failed.push(fail(
                    "no_phone",
                    format!("{} has no phone number", p.pseudonym),
                ));
                continue;
            }
            (None, None, None) => {
                failed.push(fail(
                    "no_contact",
                    format!(
                        "{} has neither an e-mail address nor a phone number",
                        p.pseudonym
                    ),
                ));
                continue;
            }
        };
        if let Some(aid) = &new.renews_agreement_id {
            let n: i64 = agreements::table
                .filter(agreements::tenant_id.eq(t))
                .filter(agreements::id.eq(aid))
                .filter(agreements::person_id.eq(pid))
                .count()
                .get_result(c)?;
            if n == 0 {
                failed.push(fail(
                    "agreement_not_found",
                    format!("{} has no agreement {aid} to renew", p.pseudonym),
                ));
                continue;
            }
        }
        let id = db::new_id();
        let (token, token_sha) = new_token()?;
        diesel::insert_into(signing_requests::table)
            .values((
                signing_requests::id.eq(&id),
                signing_requests::tenant_id.eq(t),
                signing_requests::person_id.eq(pid),
                signing_requests::template_version_id.eq(&version.id),
                signing_requests::purpose.eq(new.purpose.as_str()),
                signing_requests::renews_agreement_id.eq(&new.renews_agreement_id),
                signing_requests::channel.eq(channel.as_str()),
                signing_requests::destination
                    .eq(crate::vault::ambient(t, pid)?.seal_text(t, pid, &to)?),
                signing_requests::destination_sha256.eq(destination_sha256(channel, &to)),
                signing_requests::language.eq(&language),
                signing_requests::token_sha256.eq(&token_sha),
                signing_requests::asset_ids_json.eq(&asset_ids_json),
                signing_requests::valid_until.eq(valid_until),
                signing_requests::status.eq(RequestStatus::Sent.as_str()),
                signing_requests::expires_at.eq(expires_at),
                signing_requests::created_by.eq(&who.user_id),
                signing_requests::created_at.eq(now),
                signing_requests::updated_at.eq(now),
            ))
            .execute(c)?;
        enqueue_request_message(
            c,
            cfg,
            t,
            &tenant,
            &version.title,
            &id,
            &language,
            channel,
            &to,
            &token,
            expires_at,
            now,
        )?;
        audit::record(
            c,
            &who,
            "signing_request.create",
            "signing_request",
            Some(&id),
            serde_json::json!({
                "person_id": pid,
                "template_version_id": version.id,
                "channel": channel.as_str(),
                "language": language,
                "purpose": new.purpose.as_str(),
                "asset_ids": asset_ids,
            }),
        )?;
        created_ids.push(id);
    }
    if !created_ids.is_empty() {
        consent_templates::mark_sent(c, t, &version.id, now)?;
    }
    let rows: Vec<ReqRow> = signing_requests::table
        .filter(signing_requests::tenant_id.eq(t))
        .filter(signing_requests::id.eq_any(&created_ids))
        .order(signing_requests::id.asc())
        .select(ReqRow::as_select())
        .load(c)?;
    let hide = hide_names(c, ctx)?;
    Ok(BulkOutcome {
        created: outs(c, t, rows, hide, now)?,
        failed,
    })
}

fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && seen.insert(s.clone()))
        .collect()
}

/// Creates one request per person (per-person problems go to `failed`), each with its message
/// written to the outbox in the same transaction; the template's newest version is pinned and
/// marked sent. Permission: ManageConsents.
pub async fn create_requests(ctx: &Ctx, new: NewSigningRequests) -> Result<BulkOutcome> {
    ctx.require(Permission::ManageConsents)?;
    let person_ids = dedup(&new.person_ids);
    if person_ids.is_empty() {
        return Err(ControlError::invalid(
            "person_ids",
            "must list at least one person",
        ));
    }
    if person_ids.len() > MAX_BULK {
        return Err(ControlError::invalid(
            "person_ids",
            format!(
                "at most {MAX_BULK} persons per call (got {})",
                person_ids.len()
            ),
        ));
    }
    if let Some(l) = &new.language
        && !messages::LANGUAGES.contains(&l.as_str())
    {
        return Err(ControlError::invalid(
            "language",
            format!(
                "must be one of {} (got {l:?})",
                messages::LANGUAGES.join(", ")
            ),
        ));
    }
    if new.renews_agreement_id.is_some() && new.purpose != Purpose::Renewal {
        return Err(ControlError::invalid(
            "renews_agreement_id",
            "only with purpose renewal",
        ));
    }
    let asset_ids = dedup(&new.asset_ids);
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| create_in_tx(c, &ctx2, &new, &person_ids, &asset_ids))
    })
    .await
}

/// The tenant's requests, newest first (`expired` ones by time too). Permission: SeePersons;
/// audited as `signing_request.list`.
pub async fn list_requests(ctx: &Ctx, filter: RequestFilter) -> Result<Vec<SigningRequestOut>> {
    ctx.require(Permission::SeePersons)?;
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        let (t, now) = (ctx2.tenant(), ctx2.now);
        let mut q = signing_requests::table
            .filter(signing_requests::tenant_id.eq(t))
            .into_boxed();
        if let Some(p) = &filter.person_id {
            q = q.filter(signing_requests::person_id.eq(p.clone()));
        }
        match filter.status {
            None => {}
            Some(s @ (RequestStatus::Sent | RequestStatus::Opened)) => {
                q = q
                    .filter(signing_requests::status.eq(s.as_str()))
                    .filter(signing_requests::expires_at.gt(now));
            }
            Some(RequestStatus::Expired) => {
                q = q.filter(
                    signing_requests::status
                        .eq("expired")
                        .or(signing_requests::status
                            .eq_any(["sent", "opened"])
                            .and(signing_requests::expires_at.le(now))),
                );
            }
            Some(s) => q = q.filter(signing_requests::status.eq(s.as_str())),
        }
        let rows: Vec<ReqRow> = q
            .order((
                signing_requests::created_at.desc(),
                signing_requests::id.desc(),
            ))
            .limit(filter.page.per_page)
            .offset(filter.page.offset())
            .select(ReqRow::as_select())
            .load(c)?;
        let hide = hide_names(c, &ctx2)?;
        let out = outs(c, t, rows, hide, now)?;
        let who = ctx2.who();
        db::write_tx(c, |c| {
            audit::record(
                c,
                &who,
                "signing_request.list",
                "signing_request",
                None,
                serde_json::json!({
                    "status": filter.status.map(RequestStatus::as_str),
                    "person_id": filter.person_id,
                    "page": filter.page.page,
                    "count": out.len(),
                }),
            )
        })?;
        Ok(out)
    })
    .await
}

/// One request. Permission: SeePersons; audited as `signing_request.read`.
pub async fn get_request(ctx: &Ctx, id: String) -> Result<SigningRequestOut> {
    ctx.require(Permission::SeePersons)?;
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let r = load_request(c, ctx2.tenant(), &id)?;
            audit::record(
                c,
                &ctx2.who(),
                "signing_request.read",
                "signing_request",
                Some(&id),
                serde_json::json!({ "person_id": r.person_id }),
            )?;
            out_one(c, &ctx2, r)
        })
    })
    .await
}

/// Revokes an unsigned request (its link then says so). Permission: ManageConsents; audited as
/// `signing_request.revoke`.
pub async fn revoke_request(ctx: &Ctx, id: String, reason: String) -> Result<SigningRequestOut> {
    ctx.require(Permission::ManageConsents)?;
    let reason = reason.trim().to_string();
    if reason.is_empty() {
        return Err(ControlError::invalid("reason", "must not be empty"));
    }
    if reason.chars().count() > crate::agreements::MAX_TEXT_LEN {
        return Err(ControlError::invalid(
            "reason",
            format!(
                "must be at most {} characters",
                crate::agreements::MAX_TEXT_LEN
            ),
        ));
    }
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let (t, now, who) = (ctx2.tenant(), ctx2.now, ctx2.who());
            let r = load_request(c, t, &id)?;
            match r.effective_status(now) {
                RequestStatus::Signed => {
                    return Err(ControlError::Conflict {
                        code: "already_signed",
                        message: format!("request {id} is signed; withdraw the agreement instead"),
                    });
                }
                RequestStatus::Revoked => {
                    return Err(ControlError::Conflict {
                        code: "already_revoked",
                        message: format!("request {id} is revoked already"),
                    });
                }
                _ => {}
            }
            diesel::update(
                signing_requests::table
                    .filter(signing_requests::tenant_id.eq(t))
                    .filter(signing_requests::id.eq(&id)),
            )
            .set((
                signing_requests::status.eq(RequestStatus::Revoked.as_str()),
                signing_requests::revoked_at.eq(now),
                signing_requests::revoked_by.eq(who.user_id.clone().unwrap_or(who.label.clone())),
                signing_requests::revoke_reason.eq(&reason),
                signing_requests::updated_at.eq(now),
            ))
            .execute(c)?;
            audit::record(
                c,
                &who,
                "signing_request.revoke",
                "signing_request",
                Some(&id),
                serde_json::json!({ "person_id": r.person_id, "reason": reason }),
            )?;
            let r = load_request(c, t, &id)?;
            out_one(c, &ctx2, r)
        })
    })
    .await
}

/// Sends a request again with a new link (the old one dies, codes sent so far too; a locked or
/// expired request becomes usable again). Permission: ManageConsents; audited as
/// `signing_request.resend`.
pub async fn resend_request(ctx: &Ctx, id: String) -> Result<SigningRequestOut> {
    ctx.require(Permission::ManageConsents)?;
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let (t, now, who) = (ctx2.tenant(), ctx2.now, ctx2.who());
            let cfg = &ctx2.deps.config.signing;
            let r = load_request(c, t, &id)?;
            match r.effective_status(now) {
                RequestStatus::Signed => {
                    return Err(ControlError::Conflict {
                        code: "already_signed",
                        message: format!("request {id} is signed"),
                    });
                }
                RequestStatus::Revoked => {
                    return Err(ControlError::Conflict {
                        code: "already_revoked",
                        message: format!("request {id} is revoked; make a new one"),
                    });
                }
                _ => {}
            }
            let person = person_row(c, t, &r.person_id)?
                .filter(|p| p.deleted_at.is_none())
                .ok_or_else(|| ControlError::not_found("person"))?;
            let version = consent_templates::load_version(c, t, &r.template_version_id)?;
            let (token, token_sha) = new_token()?;
            let expires_at = now + Duration::hours(cfg.link_ttl_hours);
            diesel::delete(
                otp_challenges::table
                    .filter(otp_challenges::tenant_id.eq(t))
                    .filter(otp_challenges::request_id.eq(&id)),
            )
            .execute(c)?;
            diesel::update(
                signing_requests::table
                    .filter(signing_requests::tenant_id.eq(t))
                    .filter(signing_requests::id.eq(&id)),
            )
            .set((
                signing_requests::token_sha256.eq(&token_sha),
                signing_requests::status.eq(RequestStatus::Sent.as_str()),
                signing_requests::expires_at.eq(expires_at),
                signing_requests::locked_at.eq(None::<NaiveDateTime>),
                signing_requests::pending_json.eq(None::<String>),
                signing_requests::updated_at.eq(now),
            ))
            .execute(c)?;
            let tenant = tenant_name(c, t)?;
            enqueue_request_message(
                c,
                cfg,
                t,
                &tenant,
                &version.title,
                &id,
                &r.language,
                r.channel(),
                &r.destination,
                &token,
                expires_at,
                now,
            )?;
            audit::record(
                c,
                &who,
                "signing_request.resend",
                "signing_request",
                Some(&id),
                serde_json::json!({ "person_id": person.id }),
            )?;
            let r = load_request(c, t, &id)?;
            out_one(c, &ctx2, r)
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Public side: signing
// ---------------------------------------------------------------------------------------------

/// Longest guardian name or relation, in characters.
const MAX_GUARDIAN_FIELD: usize = 200;

fn guardian_field(field: &str, s: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ControlError::invalid(field, "must not be empty"));
    }
    if t.chars().count() > MAX_GUARDIAN_FIELD {
        return Err(ControlError::invalid(
            field,
            format!("must be at most {MAX_GUARDIAN_FIELD} characters"),
        ));
    }
    Ok(t.to_string())
}

/// Checks the signer's choices against the version; returns what is stored until the code
/// is confirmed.
fn validate_choices(cx: &Context, choices: SignChoices) -> Result<Pending> {
    let v = &cx.version;
    let mut accepted: Vec<String> = Vec::new();
    for s in choices.accepted_scopes {
        let s = s.trim().to_string();
        if s.is_empty() || accepted.contains(&s) {
            continue;
        }
        if !v.scopes.iter().any(|sc| sc.channel == s) {
            let offered: Vec<&str> = v.scopes.iter().map(|sc| sc.channel.as_str()).collect();
            return Err(ControlError::invalid(
                "accepted_scopes",
                format!(
                    "unknown scope {s:?}; this agreement offers: {}",
                    offered.join(", ")
                ),
            ));
        }
        accepted.push(s);
    }
    for sc in &v.scopes {
        if sc.mandatory && !accepted.contains(&sc.channel) {
            let label = sc.label.clone().unwrap_or_else(|| sc.channel.clone());
            return Err(ControlError::invalid(
                "accepted_scopes",
                format!(
                    "the scope {label:?} ({}) is required: without it this agreement cannot be signed",
                    sc.channel
                ),
            ));
        }
    }
    if accepted.is_empty() {
        return Err(ControlError::invalid(
            "accepted_scopes",
            "accept at least one scope to sign",
        ));
    }
    // In the version's order.
    let accepted_scopes: Vec<String> = v
        .scopes
        .iter()
        .filter(|sc| accepted.contains(&sc.channel))
        .map(|sc| sc.channel.clone())
        .collect();
    let declined_scopes: Vec<String> = v
        .scopes
        .iter()
        .filter(|sc| !accepted.contains(&sc.channel))
        .map(|sc| sc.channel.clone())
        .collect();
    if choices.face_matching && v.face_matching_text.is_none() {
        return Err(ControlError::invalid(
            "face_matching",
            "this agreement does not offer face matching",
        ));
    }
    let guardian = if cx.needs_guardian {
        let g = choices.guardian.ok_or_else(|| {
            ControlError::invalid(
                "guardian",
                "the person is a minor: a guardian must confirm too (name, relation, and an e-mail address or phone number)",
            )
        })?;
        let name = guardian_field("guardian.name", &g.name)?;
        let relation = guardian_field("guardian.relation", &g.relation)?;
        let raw = g.contact.trim();
        let contact = if raw.contains('@') {
            validate::email("guardian.contact", raw).map_err(domain_error)?
        } else if raw.is_empty() {
            return Err(ControlError::invalid(
                "guardian.contact",
                "must be an e-mail address or a phone number",
            ));
        } else {
            validate::phone_e164("guardian.contact", raw).map_err(|_| {
                ControlError::invalid(
                    "guardian.contact",
                    "must be an e-mail address or a phone number in international form (+46...)",
                )
            })?
        };
        let ch = contact_channel(&contact);
        if destination_sha256(ch, &contact) == cx.req.destination_sha256 {
            return Err(ControlError::invalid(
                "guardian.contact",
                "must be the guardian's own address, not the one this link was sent to",
            ));
        }
        Some(GuardianInput {
            name,
            relation,
            contact,
        })
    } else {
        None
    };
    Ok(Pending {
        accepted_scopes,
        declined_scopes,
        face_matching: choices.face_matching,
        guardian,
    })
}

/// A code that may still be typed (not expired, verified or locked).
fn live(ch: &Option<Challenge>, now: NaiveDateTime) -> Option<&Challenge> {
    ch.as_ref()
        .filter(|c| c.expires_at > now && c.verified_at.is_none() && c.locked_at.is_none())
}

/// Sends the signer's code (to the request's address) in the caller's transaction.
fn send_sign_code(
    c: &mut DbConn,
    key: &[u8; 32],
    cfg: &SigningConfig,
    cx: &Context,
    now: NaiveDateTime,
) -> Result<Challenge> {
    let (lang, tenant, title) = (&cx.req.language, &cx.tenant_name, &cx.version.title);
    let minutes = cfg.code_ttl_minutes;
    send_code(
        c,
        key,
        cfg,
        NewCode {
            tenant_id: &cx.req.tenant_id,
            request_id: &cx.req.id,
            evidence_id: None,
            purpose: SIGN,
            channel: cx.req.channel(),
            to: &cx.req.destination,
        },
        |code| messages::sign_code(lang, tenant, title, code, minutes),
        now,
    )
}

/// Sends the guardian's code in the caller's transaction.
fn send_guardian_code(
    c: &mut DbConn,
    key: &[u8; 32],
    cfg: &SigningConfig,
    cx: &Context,
    g: &GuardianInput,
    now: NaiveDateTime,
) -> Result<Challenge> {
    let (lang, tenant, title) = (&cx.req.language, &cx.tenant_name, &cx.version.title);
    let person = cx.person.name.clone();
    let minutes = cfg.code_ttl_minutes;
    send_code(
        c,
        key,
        cfg,
        NewCode {
            tenant_id: &cx.req.tenant_id,
            request_id: &cx.req.id,
            evidence_id: None,
            purpose: GUARDIAN,
            channel: contact_channel(&g.contact),
            to: &g.contact,
        },
        |code| messages::guardian_code(lang, tenant, title, &person, code, minutes),
        now,
    )
}

/// Opens the link: the request (if still usable) in its context.
fn open_ctx(c: &mut DbConn, token: &str, now: NaiveDateTime) -> Result<Context> {
    let req = find_request(c, token)?;
    req.usable(now)?;
    context(c, req, now.date())
}

/// The signer's page for the link token `token`; marks the request opened on first open
/// (audited as `signing_request.open`).
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn open_request(deps: &Arc<Deps>, token: &str, client: ClientInfo) -> Result<SignPage> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    let ip = client.ip.clone();
    public_noted(
        deps,
        ip.as_deref(),
        open_request_unguarded(deps, token, client).await,
    )
}

/// The body of `open_request` (no unknown-token throttle).
async fn open_request_unguarded(
    deps: &Arc<Deps>,
    token: &str,
    client: ClientInfo,
) -> Result<SignPage> {
    let now = deps.clock.now();
    let (token, d) = (token.to_string(), Arc::clone(deps));
    db::run(&deps.pool, move |c| {
        let mut cx = open_ctx(c, &token, now)?;
        if cx.req.status == RequestStatus::Sent.as_str() {
            let who = signer_who(&cx.req.tenant_id, &cx.person.pseudonym, &client);
            db::write_tx(c, |c| {
                let n = diesel::update(
                    signing_requests::table
                        .filter(signing_requests::id.eq(&cx.req.id))
                        .filter(signing_requests::status.eq(RequestStatus::Sent.as_str())),
                )
                .set((
                    signing_requests::status.eq(RequestStatus::Opened.as_str()),
                    signing_requests::opened_at.eq(now),
                    signing_requests::updated_at.eq(now),
                ))
                .execute(c)?;
                if n == 1 {
                    audit::record(
                        c,
                        &who,
                        "signing_request.open",
                        "signing_request",
                        Some(&cx.req.id),
                        serde_json::json!({
                            "person_id": cx.req.person_id,
                            "user_agent": client.user_agent,
                        }),
                    )?;
                }
                Ok(())
            })?;
            cx.req.status = RequestStatus::Opened.as_str().to_string();
            cx.req.opened_at = Some(now);
        }
        sign_page(c, &d.config.signing, &cx, now.date())
    })
    .await
}

/// Records the signer's choices (mandatory scopes accepted, a guardian for a minor) and sends
/// the code(s): the signer's to the request's address, the guardian's to their contact. A code
/// still valid is not sent again (the signer may change their choices). Throttled like
/// [`resend_code`].
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn submit_choices(
    deps: &Arc<Deps>,
    token: &str,
    choices: SignChoices,
    client: ClientInfo,
) -> Result<SignPage> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    let ip = client.ip.clone();
    public_noted(
        deps,
        ip.as_deref(),
        submit_choices_unguarded(deps, token, choices, client).await,
    )
}

/// The body of `submit_choices` (no unknown-token throttle).
async fn submit_choices_unguarded(
    deps: &Arc<Deps>,
    token: &str,
    choices: SignChoices,
    client: ClientInfo,
) -> Result<SignPage> {
    let now = deps.clock.now();
    let key = otp_key(deps)?;
    let (token, d) = (token.to_string(), Arc::clone(deps));
    db::run(&deps.pool, move |c| {
        let cfg = &d.config.signing;
        let cx = open_ctx(c, &token, now)?;
        let pending = validate_choices(&cx, choices)?;
        let who = signer_who(&cx.req.tenant_id, &cx.person.pseudonym, &client);
        db::write_tx(c, |c| {
            let fresh = load_request(c, &cx.req.tenant_id, &cx.req.id)?;
            fresh.usable(now)?;
            diesel::update(signing_requests::table.filter(signing_requests::id.eq(&cx.req.id)))
                .set((
                    // The guardian's name and contact: sealed under the person's key.
                    signing_requests::pending_json.eq(crate::vault::ambient(
                        &cx.req.tenant_id,
                        &cx.req.person_id,
                    )?
                    .seal_text(
                        &cx.req.tenant_id,
                        &cx.req.person_id,
                        &serde_json::to_string(&pending)?,
                    )?),
                    signing_requests::status.eq(RequestStatus::Opened.as_str()),
                    signing_requests::opened_at.eq(fresh.opened_at.unwrap_or(now)),
                    signing_requests::updated_at.eq(now),
                ))
                .execute(c)?;
            let t = &cx.req.tenant_id;
            let sign = latest_challenge(c, t, Some(&cx.req.id), None, SIGN)?;
            if live(&sign, now).is_none() {
                send_sign_code(c, &key, cfg, &cx, now)?;
            }
            if let Some(g) = &pending.guardian {
                let gch = latest_challenge(c, t, Some(&cx.req.id), None, GUARDIAN)?;
                let same = live(&gch, now).is_some_and(|ch| {
                    ch.destination_sha256
                        == destination_sha256(contact_channel(&g.contact), &g.contact)
                });
                if !same {
                    send_guardian_code(c, &key, cfg, &cx, g, now)?;
                }
            }
            audit::record(
                c,
                &who,
                "signing_request.choose",
                "signing_request",
                Some(&cx.req.id),
                serde_json::json!({
                    "person_id": cx.req.person_id,
                    "scopes_accepted": pending.accepted_scopes,
                    "scopes_declined": pending.declined_scopes,
                    "face_matching": pending.face_matching,
                    "guardian": pending.guardian.is_some(),
                }),
            )
        })?;
        let cx = open_ctx(c, &token, now)?;
        sign_page(c, cfg, &cx, now.date())
    })
    .await
}

fn no_code_sent() -> ControlError {
    ControlError::Conflict {
        code: "no_code_sent",
        message: "no code was sent yet: choose what you allow first".into(),
    }
}

/// Sends the code(s) again. Throttled: `[signing].resend_min_secs` between two sends,
/// `max_code_sends` per link, `max_codes_per_destination_per_hour` per address
/// (`RateLimited` with the seconds to wait).
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn resend_code(deps: &Arc<Deps>, token: &str, client: ClientInfo) -> Result<SignPage> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    let ip = client.ip.clone();
    public_noted(
        deps,
        ip.as_deref(),
        resend_code_unguarded(deps, token, client).await,
    )
}

/// The body of `resend_code` (no unknown-token throttle).
async fn resend_code_unguarded(
    deps: &Arc<Deps>,
    token: &str,
    client: ClientInfo,
) -> Result<SignPage> {
    let now = deps.clock.now();
    let key = otp_key(deps)?;
    let (token, d) = (token.to_string(), Arc::clone(deps));
    db::run(&deps.pool, move |c| {
        let cfg = &d.config.signing;
        let cx = open_ctx(c, &token, now)?;
        let pending = cx.req.pending()?.ok_or_else(no_code_sent)?;
        let who = signer_who(&cx.req.tenant_id, &cx.person.pseudonym, &client);
        db::write_tx(c, |c| {
            send_sign_code(c, &key, cfg, &cx, now)?;
            if let Some(g) = &pending.guardian {
                send_guardian_code(c, &key, cfg, &cx, g, now)?;
            }
            audit::record(
                c,
                &who,
                "signing_request.resend_code",
                "signing_request",
                Some(&cx.req.id),
                serde_json::json!({ "person_id": cx.req.person_id }),
            )
        })?;
        sign_page(c, cfg, &cx, now.date())
    })
    .await
}

/// Counts wrong codes (in their own transaction) and locks the request at
/// `max_code_attempts` wrong codes in all; returns the attempts left (`None`: locked now).
fn count_wrong(
    c: &mut DbConn,
    cfg: &SigningConfig,
    req: &ReqRow,
    wrong: &[&Challenge],
    who: &Who,
    now: NaiveDateTime,
) -> Result<Option<i32>> {
    db::write_tx(c, |c| {
        for ch in wrong {
            diesel::update(otp_challenges::table.filter(otp_challenges::id.eq(&ch.id)))
                .set(otp_challenges::attempts.eq(otp_challenges::attempts + 1))
                .execute(c)?;
        }
        let attempts: Vec<i32> = otp_challenges::table
            .filter(otp_challenges::tenant_id.eq(&req.tenant_id))
            .filter(otp_challenges::request_id.eq(&req.id))
            .filter(otp_challenges::purpose.eq_any([SIGN, GUARDIAN]))
            .select(otp_challenges::attempts)
            .load(c)?;
        let total: i32 = attempts.iter().sum();
        let left = cfg.max_code_attempts - total;
        if left > 0 {
            return Ok(Some(left));
        }
        let n = diesel::update(
            signing_requests::table
                .filter(signing_requests::id.eq(&req.id))
                .filter(signing_requests::status.eq_any(["sent", "opened"])),
        )
        .set((
            signing_requests::status.eq(RequestStatus::Locked.as_str()),
            signing_requests::locked_at.eq(now),
            signing_requests::updated_at.eq(now),
        ))
        .execute(c)?;
        if n == 1 {
            audit::record(
                c,
                who,
                "signing_request.lock",
                "signing_request",
                Some(&req.id),
                serde_json::json!({ "person_id": req.person_id, "attempts": total }),
            )?;
        }
        Ok(None)
    })
}

fn locked() -> ControlError {
    ControlError::Gone {
        code: "request_locked",
        message: "too many wrong codes: this link is locked; ask the sender for a new one".into(),
    }
}

fn code_expired(whose: &str) -> ControlError {
    ControlError::Gone {
        code: "code_expired",
        message: format!("{whose} code has expired; ask for a new one"),
    }
}

/// Checks the code(s) (6 digits; the guardian's too for a minor). A wrong code counts (at
/// `max_code_attempts` in all the request locks); an expired one answers `code_expired` (ask
/// for a new one). On success, in ONE transaction: the agreement (digital), the request
/// signed (its link used up), the sealed evidence with a receipt token, the receipt's message,
/// the `consent.signed` event and the audit entries.
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn confirm_code(
    deps: &Arc<Deps>,
    token: &str,
    code: &str,
    guardian_code: Option<&str>,
    client: ClientInfo,
) -> Result<SignedOutcome> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    let ip = client.ip.clone();
    public_noted(
        deps,
        ip.as_deref(),
        confirm_code_unguarded(deps, token, code, guardian_code, client).await,
    )
}

/// The body of `confirm_code` (no unknown-token throttle).
async fn confirm_code_unguarded(
    deps: &Arc<Deps>,
    token: &str,
    code: &str,
    guardian_code: Option<&str>,
    client: ClientInfo,
) -> Result<SignedOutcome> {
    let now = deps.clock.now();
    let key = otp_key(deps)?;
    let code = code_format("code", code)?;
    let gcode = guardian_code
        .filter(|g| !g.trim().is_empty())
        .map(|g| code_format("guardian_code", g))
        .transpose()?;
    let (token, d) = (token.to_string(), Arc::clone(deps));
    db::run(&deps.pool, move |c| {
        let cfg = &d.config.signing;
        let cx = open_ctx(c, &token, now)?;
        let t = cx.req.tenant_id.clone();
        let pending = cx.req.pending()?.ok_or_else(no_code_sent)?;
        let sign =
            latest_challenge(c, &t, Some(&cx.req.id), None, SIGN)?.ok_or_else(no_code_sent)?;
        let guardian = match &pending.guardian {
            Some(_) => Some(
                latest_challenge(c, &t, Some(&cx.req.id), None, GUARDIAN)?
                    .ok_or_else(no_code_sent)?,
            ),
            None => None,
        };
        if guardian.is_some() && gcode.is_none() {
            return Err(ControlError::invalid(
                "guardian_code",
                "the guardian's code is required too",
            ));
        }
        if sign.expires_at <= now {
            return Err(code_expired("the"));
        }
        if guardian.as_ref().is_some_and(|g| g.expires_at <= now) {
            return Err(code_expired("the guardian's"));
        }
        let ok_sign = code_matches(&key, &sign, &code)?;
        let ok_guardian = match (&guardian, &gcode) {
            (Some(g), Some(gc)) => code_matches(&key, g, gc)?,
            _ => true,
        };
        let who = signer_who(&t, &cx.person.pseudonym, &client);
        if !ok_sign || !ok_guardian {
            let mut wrong = Vec::new();
            if !ok_sign {
                wrong.push(&sign);
            }
            if let (false, Some(g)) = (ok_guardian, &guardian) {
                wrong.push(g);
            }
            return Err(match count_wrong(c, cfg, &cx.req, &wrong, &who, now)? {
                None => locked(),
                Some(left) => ControlError::invalid(
                    if ok_sign { "guardian_code" } else { "code" },
                    format!(
                        "wrong code; {left} attempt{} left",
                        if left == 1 { "" } else { "s" }
                    ),
                ),
            });
        }
        db::write_tx(c, |c| {
            sign_in_tx(
                c,
                &d,
                &cx,
                &pending,
                &sign,
                guardian.as_ref(),
                &client,
                &who,
                now,
            )
        })
    })
    .await
}

/// The signature, in the caller's transaction.
#[allow(clippy::too_many_arguments)]
fn sign_in_tx(
    c: &mut DbConn,
    deps: &Deps,
    cx: &Context,
    p: &Pending,
    sign: &Challenge,
    guardian: Option<&Challenge>,
    client: &ClientInfo,
    who: &Who,
    now: NaiveDateTime,
) -> Result<SignedOutcome> {
    let (t, req, v) = (&cx.req.tenant_id, &cx.req, &cx.version);
    let today = now.date();
    // Single use: only one confirmation turns the request signed.
    let n = diesel::update(
        signing_requests::table
            .filter(signing_requests::id.eq(&req.id))
            .filter(signing_requests::status.eq_any(["sent", "opened"]))
            .filter(signing_requests::expires_at.gt(now)),
    )
    .set((
        signing_requests::status.eq(RequestStatus::Signed.as_str()),
        signing_requests::signed_at.eq(now),
        signing_requests::ip.eq(&client.ip),
        signing_requests::user_agent.eq(&client.user_agent),
        signing_requests::updated_at.eq(now),
    ))
    .execute(c)?;
    if n != 1 {
        return Err(load_request(c, t, &req.id)?
            .usable(now)
            .err()
            .unwrap_or(ControlError::Gone {
                code: "link_used",
                message: "this link was used".into(),
            }));
    }
    diesel::update(
        otp_challenges::table.filter(
            otp_challenges::id.eq_any(
                [Some(&sign.id), guardian.map(|g| &g.id)]
                    .into_iter()
                    .flatten(),
            ),
        ),
    )
    .set(otp_challenges::verified_at.eq(now))
    .execute(c)?;
    let agreement = crate::agreements::create(
        c,
        who,
        t,
        &req.person_id,
        NewAgreement {
            channels: p.accepted_scopes.clone(),
            valid_from: today,
            valid_until: req.valid_until,
            source: ConsentSource::Digital,
            covers_face_matching: p.face_matching,
            signed_by_guardian: p.guardian.is_some(),
            text_sha256: Some(v.text_sha256.clone()),
            note: Some(format!(
                "signed digitally: {} v{} (signing request {})",
                v.title, v.version, req.id
            )),
        },
        now,
    )?;
    let asset_ids = req.asset_ids();
    let assets_json: Vec<serde_json::Value> = assets::table
        .filter(assets::tenant_id.eq(t))
        .filter(assets::id.eq_any(&asset_ids))
        .order(assets::id.asc())
        .select((assets::id, assets::sha256))
        .load::<(String, String)>(c)?
        .into_iter()
        .map(|(id, sha)| serde_json::json!({ "id": id, "sha256": sha }))
        .collect();
    let attempts_of = |c: &mut DbConn, purpose: &str| -> Result<i32> {
        let a: Vec<i32> = otp_challenges::table
            .filter(otp_challenges::tenant_id.eq(t))
            .filter(otp_challenges::request_id.eq(&req.id))
            .filter(otp_challenges::purpose.eq(purpose))
            .select(otp_challenges::attempts)
            .load(c)?;
        Ok(a.iter().sum())
    };
    let sign_attempts = attempts_of(c, SIGN)?;
    let guardian_json = match (&p.guardian, guardian) {
        (Some(g), Some(ch)) => serde_json::json!({
            "name": g.name,
            "relation": g.relation,
            "contact_sha256": ch.destination_sha256,
            "code_sent_at": time_str(ch.last_sent_at),
            "verified_at": time_str(now),
            "attempts": attempts_of(c, GUARDIAN)?,
        }),
        _ => serde_json::Value::Null,
    };
    let record = serde_json::json!({
        "agreement_id": agreement.id,
        "template": {
            "id": v.template_id,
            "version": v.version,
            "version_id": v.id,
            "title": v.title,
            "text_sha256": v.text_sha256,
            "legal_character": v.legal_character,
        },
        "scopes_accepted": p.accepted_scopes,
        "scopes_declined": p.declined_scopes,
        "face_matching": {
            "offered": v.face_matching_text.is_some(),
            "accepted": p.face_matching,
        },
        "valid_from": today.to_string(),
        "valid_until": req.valid_until.map(|d| d.to_string()),
        "request": {
            "id": req.id,
            "channel": req.channel,
            "destination_sha256": req.destination_sha256,
            "language": req.language,
            "purpose": req.purpose,
            "renews_agreement_id": req.renews_agreement_id,
        },
        "code": {
            "sent_at": time_str(sign.last_sent_at),
            "verified_at": time_str(now),
            "attempts": sign_attempts,
        },
        "guardian": guardian_json,
        "age_at_signing": cx.age,
        "person": { "id": cx.person.id, "pseudonym": cx.person.pseudonym },
        "assets": assets_json,
        "client": { "ip": client.ip, "user_agent": client.user_agent },
        "signed_at": time_str(now),
    });
    let sealed = evidence::seal(
        c,
        deps,
        t,
        EvidenceKind::Signature,
        &agreement.id,
        Some(&req.id),
        record,
        true,
        now,
    )?;
    let receipt_token = sealed
        .receipt_token
        .clone()
        .ok_or_else(|| ControlError::Internal("sealed without a receipt token".into()))?;
    diesel::update(signing_requests::table.filter(signing_requests::id.eq(&req.id)))
        .set((
            signing_requests::agreement_id.eq(&agreement.id),
            signing_requests::evidence_id.eq(&sealed.id),
        ))
        .execute(c)?;
    let link = format!(
        "{}/receipt/{receipt_token}",
        deps.config.signing.public_base_url.trim_end_matches('/')
    );
    let m = messages::receipt(
        &req.language,
        &cx.tenant_name,
        &v.title,
        &today.to_string(),
        &link,
    );
    outbox::enqueue_about(
        c,
        t,
        &req.person_id,
        OutgoingMessage {
            channel: req.channel(),
            to: req.destination.clone(),
            subject: Some(m.subject),
            text: m.text,
            html: None,
            purpose: "receipt".into(),
            related_id: Some(req.id.clone()),
            secret: true,
        },
        now,
    )?;
    events::record(
        c,
        t,
        events::CONSENT_SIGNED,
        "agreement",
        &agreement.id,
        serde_json::json!({
            "person_id": req.person_id,
            "request_id": req.id,
            "evidence_id": sealed.id,
            "renews_agreement_id": req.renews_agreement_id,
            "channels": p.accepted_scopes,
            "covers_face_matching": p.face_matching,
            "valid_from": today,
            "valid_until": req.valid_until,
        }),
        now,
    )?;
    audit::record(
        c,
        who,
        "signing_request.sign",
        "signing_request",
        Some(&req.id),
        serde_json::json!({
            "person_id": req.person_id,
            "agreement_id": agreement.id,
            "evidence_id": sealed.id,
            "record_sha256": sealed.record_sha256,
        }),
    )?;
    Ok(SignedOutcome {
        after_signing_text: v.after_signing_text.clone(),
        receipt_token,
        language: req.language.clone(),
        agreement_id: agreement.id,
    })
}

/// A file's thumbnail (JPEG) with every face that is not the signer's pixelated, for files
/// listed on the request only (else 404), while the link is usable.
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn asset_preview(
    deps: &Arc<Deps>,
    token: &str,
    asset_id: &str,
    client: ClientInfo,
) -> Result<Vec<u8>> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    public_noted(
        deps,
        client.ip.as_deref(),
        asset_preview_unguarded(deps, token, asset_id).await,
    )
}

/// The body of `asset_preview` (no unknown-token throttle).
async fn asset_preview_unguarded(deps: &Arc<Deps>, token: &str, asset_id: &str) -> Result<Vec<u8>> {
    let now = deps.clock.now();
    let (token, aid) = (token.to_string(), asset_id.to_string());
    let (tenant, asset, boxes) = db::run(&deps.pool, move |c| {
        let req = find_request(c, &token)?;
        req.usable(now)?;
        if !req.asset_ids().contains(&aid) {
            return Err(ControlError::not_found("file"));
        }
        let asset = crate::assets::get_row(c, &req.tenant_id, &aid)
            .map_err(|_| ControlError::not_found("file"))?;
        let faces: Vec<(Option<String>, String, f64, f64, f64, f64)> = faces::table
            .filter(faces::tenant_id.eq(&req.tenant_id))
            .filter(faces::asset_id.eq(&aid))
            .select((
                faces::person_id,
                faces::status,
                faces::box_x1,
                faces::box_y1,
                faces::box_x2,
                faces::box_y2,
            ))
            .load(c)?;
        let boxes: Vec<preview::FaceBox> = faces
            .into_iter()
            .filter(|(p, st, ..)| !(p.as_deref() == Some(&req.person_id) && st == "confirmed"))
            .map(|(_, _, x1, y1, x2, y2)| [x1, y1, x2, y2])
            .collect();
        Ok((req.tenant_id, asset, boxes))
    })
    .await?;
    let thumb = crate::assets::thumbnail(deps, tenant, asset.id.clone())
        .await
        .map_err(|e| match e {
            ControlError::NotFound(_) => ControlError::not_found("file"),
            other => other,
        })?;
    let (w, h) = (asset.width, asset.height);
    crate::blocking(move || preview::pixelate_faces(&thumb, w, h, &boxes)).await?
}

// ---------------------------------------------------------------------------------------------
// Public side: receipts and withdrawal
// ---------------------------------------------------------------------------------------------

fn unknown_receipt() -> ControlError {
    ControlError::not_found("receipt")
}

/// The signature record of the receipt token `token`.
fn find_receipt(c: &mut DbConn, token: &str) -> Result<EvidenceRow> {
    let (_, ev) = evidence::find_by_receipt_token(c, token)?;
    if ev.kind != EvidenceKind::Signature.as_str() || ev.request_id.is_none() {
        return Err(unknown_receipt());
    }
    Ok(ev)
}

/// The request a receipt's signature came from.
fn receipt_request(c: &mut DbConn, ev: &EvidenceRow) -> Result<ReqRow> {
    let rid = ev.request_id.as_deref().ok_or_else(unknown_receipt)?;
    load_request(c, &ev.tenant_id, rid)
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn receipt_page(c: &mut DbConn, ev: &EvidenceRow, now: NaiveDateTime) -> Result<ReceiptPage> {
    let t = &ev.tenant_id;
    let receipt = evidence::receipt_of(c, t, &ev.id)?;
    let req = receipt_request(c, ev)?;
    let record: serde_json::Value = serde_json::from_str(&ev.record_json)?;
    let withdrawn_at: Option<NaiveDateTime> = agreements::table
        .filter(agreements::tenant_id.eq(t))
        .filter(agreements::id.eq(&ev.agreement_id))
        .select(agreements::withdrawn_at)
        .first::<Option<NaiveDateTime>>(c)
        .optional()?
        .flatten();
    let signer_name = person_row(c, t, &req.person_id)?
        .filter(|p| p.deleted_at.is_none())
        .map(|p| p.name)
        .unwrap_or_default();
    let withdrawal = if withdrawn_at.is_some() {
        WithdrawStep::Done
    } else {
        let ch = latest_challenge(c, t, None, Some(&ev.id), WITHDRAW)?;
        match live(&ch, now) {
            Some(ch) => WithdrawStep::EnterCode {
                destination_masked: outbox::mask_destination(req.channel(), &req.destination),
                code_expires_at: ch.expires_at,
            },
            None => WithdrawStep::Offer,
        }
    };
    let day = |k: &str| record[k].as_str().and_then(|s| s.parse::<NaiveDate>().ok());
    let signed_at = record["signed_at"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.naive_utc())
        .or(req.signed_at)
        .unwrap_or(now);
    let scopes_accepted = strings(&record["scopes_accepted"]);
    let scopes_declined = strings(&record["scopes_declined"]);
    // The labels the signer read: from the sealed version (a version is never changed once
    // sent); the channel's name when it has none or the version cannot be read.
    let labels: HashMap<String, String> = record["template"]["version_id"]
        .as_str()
        .and_then(|vid| consent_templates::load_version(c, t, vid).ok())
        .map(|v| {
            v.scopes
                .into_iter()
                .filter_map(|s| {
                    let label = s.label.filter(|l| !l.trim().is_empty())?;
                    Some((s.channel, label))
                })
                .collect()
        })
        .unwrap_or_default();
    let label_of = |chs: &[String]| -> Vec<String> {
        chs.iter()
            .map(|ch| labels.get(ch).cloned().unwrap_or_else(|| ch.clone()))
            .collect()
    };
    let scope_labels_accepted = label_of(&scopes_accepted);
    let scope_labels_declined = label_of(&scopes_declined);
    let guardian = record["guardian"]["name"]
        .as_str()
        .map(|name| ReceiptGuardian {
            name: name.to_string(),
            relation: record["guardian"]["relation"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        });
    Ok(ReceiptPage {
        receipt,
        tenant_name: tenant_name(c, t)?,
        title: record["template"]["title"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        version: record["template"]["version"]
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or_default(),
        scopes_accepted,
        scopes_declined,
        scope_labels_accepted,
        scope_labels_declined,
        guardian,
        face_matching_offered: record["face_matching"]["offered"]
            .as_bool()
            .unwrap_or(false),
        face_matching_accepted: record["face_matching"]["accepted"]
            .as_bool()
            .unwrap_or(false),
        valid_from: day("valid_from").unwrap_or(signed_at.date()),
        valid_until: day("valid_until"),
        signed_at,
        signer_name,
        withdrawn_at,
        language: req.language,
        withdrawal,
    })
}

/// The receipt page of `receipt_token` (404 for an unknown token).
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn open_receipt(
    deps: &Arc<Deps>,
    receipt_token: &str,
    client: ClientInfo,
) -> Result<ReceiptPage> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    public_noted(
        deps,
        client.ip.as_deref(),
        open_receipt_unguarded(deps, receipt_token).await,
    )
}

/// The body of `open_receipt` (no unknown-token throttle).
async fn open_receipt_unguarded(deps: &Arc<Deps>, receipt_token: &str) -> Result<ReceiptPage> {
    let now = deps.clock.now();
    let token = receipt_token.to_string();
    db::run(&deps.pool, move |c| {
        let ev = find_receipt(c, &token)?;
        receipt_page(c, &ev, now)
    })
    .await
}

/// The language of the request behind a signing link, for the pages that say the link is dead
/// (expired, revoked, used, locked). `None` for an unknown or malformed token (then the
/// browser's language is used); it never says anything else about the request.
pub async fn link_language(deps: &Arc<Deps>, token: &str) -> Option<String> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    let token = token.to_string();
    db::run(&deps.pool, move |c| {
        find_request(c, &token).map(|r| r.language)
    })
    .await
    .ok()
}

/// The language of the request behind a receipt's link, like [`link_language`]; `None` for an
/// unknown token.
pub async fn receipt_language(deps: &Arc<Deps>, receipt_token: &str) -> Option<String> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    let token = receipt_token.to_string();
    db::run(&deps.pool, move |c| {
        let ev = find_receipt(c, &token)?;
        receipt_request(c, &ev).map(|r| r.language)
    })
    .await
    .ok()
}

/// The receipt as PDF (in the request's language).
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn receipt_pdf(
    deps: &Arc<Deps>,
    receipt_token: &str,
    client: ClientInfo,
) -> Result<Vec<u8>> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    public_noted(
        deps,
        client.ip.as_deref(),
        receipt_pdf_unguarded(deps, receipt_token).await,
    )
}

/// The body of `receipt_pdf` (no unknown-token throttle).
async fn receipt_pdf_unguarded(deps: &Arc<Deps>, receipt_token: &str) -> Result<Vec<u8>> {
    let token = receipt_token.to_string();
    let (receipt, lang) = db::run(&deps.pool, move |c| {
        let ev = find_receipt(c, &token)?;
        let req = receipt_request(c, &ev)?;
        Ok((
            evidence::receipt_of(c, &ev.tenant_id, &ev.id)?,
            req.language,
        ))
    })
    .await?;
    let base = deps
        .config
        .signing
        .public_base_url
        .trim_end_matches('/')
        .to_string();
    let withdraw = format!("{base}/receipt/{}", receipt_token.trim());
    crate::blocking(move || {
        evidence::receipt_pdf_with_links(&receipt, &lang, &base, Some(&withdraw))
    })
    .await?
}

/// The receipt as JSON (for offline verification: `likeness-control verify-receipt`).
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn receipt_json(
    deps: &Arc<Deps>,
    receipt_token: &str,
    client: ClientInfo,
) -> Result<String> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    public_noted(
        deps,
        client.ip.as_deref(),
        receipt_json_unguarded(deps, receipt_token).await,
    )
}

/// The body of `receipt_json` (no unknown-token throttle).
async fn receipt_json_unguarded(deps: &Arc<Deps>, receipt_token: &str) -> Result<String> {
    let token = receipt_token.to_string();
    let receipt = db::run(&deps.pool, move |c| {
        let ev = find_receipt(c, &token)?;
        evidence::receipt_of(c, &ev.tenant_id, &ev.id)
    })
    .await?;
    Ok(serde_json::to_string_pretty(&receipt)?)
}

/// The withdrawal's reason recorded on the agreement.
pub const WITHDRAWAL_REASON: &str = "withdrawn by the person through the receipt link";

/// Sends a withdrawal code to the request's original address (throttled like
/// [`resend_code`]). A consent withdrawn already answers its page (step `done`).
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn start_withdrawal(
    deps: &Arc<Deps>,
    receipt_token: &str,
    client: ClientInfo,
) -> Result<ReceiptPage> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    let ip = client.ip.clone();
    public_noted(
        deps,
        ip.as_deref(),
        start_withdrawal_unguarded(deps, receipt_token, client).await,
    )
}

/// The body of `start_withdrawal` (no unknown-token throttle).
async fn start_withdrawal_unguarded(
    deps: &Arc<Deps>,
    receipt_token: &str,
    client: ClientInfo,
) -> Result<ReceiptPage> {
    let now = deps.clock.now();
    let key = otp_key(deps)?;
    let (token, d) = (receipt_token.to_string(), Arc::clone(deps));
    db::run(&deps.pool, move |c| {
        let cfg = &d.config.signing;
        let ev = find_receipt(c, &token)?;
        let page = receipt_page(c, &ev, now)?;
        if page.withdrawn_at.is_some() {
            return Ok(page);
        }
        let req = receipt_request(c, &ev)?;
        let pseudonym = person_row(c, &ev.tenant_id, &req.person_id)?
            .map(|p| p.pseudonym)
            .unwrap_or_default();
        let who = signer_who(&ev.tenant_id, &pseudonym, &client);
        let tenant = page.tenant_name.clone();
        let title = page.title.clone();
        db::write_tx(c, |c| {
            let minutes = cfg.code_ttl_minutes;
            send_code(
                c,
                &key,
                cfg,
                NewCode {
                    tenant_id: &ev.tenant_id,
                    request_id: &req.id,
                    evidence_id: Some(&ev.id),
                    purpose: WITHDRAW,
                    channel: req.channel(),
                    to: &req.destination,
                },
                |code| messages::withdraw_code(&req.language, &tenant, &title, code, minutes),
                now,
            )?;
            audit::record(
                c,
                &who,
                "agreement.withdraw_code",
                "agreement",
                Some(&ev.agreement_id),
                serde_json::json!({ "person_id": req.person_id, "evidence_id": ev.id }),
            )
        })?;
        receipt_page(c, &ev, now)
    })
    .await
}

/// Checks the withdrawal code; on success, in ONE transaction: the agreement withdrawn, the
/// removal of face templates queued when face matching ended, the sealed withdrawal record
/// (chained), the `consent.withdrawn` event, the confirmation message and the audit entries.
/// The templates' removal then runs at once when the matcher is up (else its job does it).
///
/// Refused (429) for a client address past the unknown-token limit.
pub async fn confirm_withdrawal(
    deps: &Arc<Deps>,
    receipt_token: &str,
    code: &str,
    client: ClientInfo,
) -> Result<ReceiptPage> {
    // Opens (and registers) the vault that seals and opens what is about the person.
    let _ = deps.vault();
    public_guard(deps, &client)?;
    let ip = client.ip.clone();
    public_noted(
        deps,
        ip.as_deref(),
        confirm_withdrawal_unguarded(deps, receipt_token, code, client).await,
    )
}

/// The body of `confirm_withdrawal` (no unknown-token throttle).
async fn confirm_withdrawal_unguarded(
    deps: &Arc<Deps>,
    receipt_token: &str,
    code: &str,
    client: ClientInfo,
) -> Result<ReceiptPage> {
    let now = deps.clock.now();
    let key = otp_key(deps)?;
    let code = code_format("code", code)?;
    let (token, d) = (receipt_token.to_string(), Arc::clone(deps));
    let (page, job) = db::run(&deps.pool, move |c| {
        let cfg = &d.config.signing;
        let ev = find_receipt(c, &token)?;
        let page = receipt_page(c, &ev, now)?;
        if page.withdrawn_at.is_some() {
            return Ok((page, None));
        }
        let req = receipt_request(c, &ev)?;
        let person = person_row(c, &ev.tenant_id, &req.person_id)?.ok_or_else(unknown_receipt)?;
        let who = signer_who(&ev.tenant_id, &person.pseudonym, &client);
        let ch = latest_challenge(c, &ev.tenant_id, None, Some(&ev.id), WITHDRAW)?
            .filter(|ch| ch.verified_at.is_none())
            .ok_or_else(|| ControlError::Conflict {
                code: "no_code_sent",
                message: "no code was sent yet: ask for one first".into(),
            })?;
        if ch.locked_at.is_some() {
            return Err(code_locked());
        }
        if ch.expires_at <= now {
            return Err(code_expired("the"));
        }
        if !code_matches(&key, &ch, &code)? {
            let left = db::write_tx(c, |c| {
                diesel::update(otp_challenges::table.filter(otp_challenges::id.eq(&ch.id)))
                    .set(otp_challenges::attempts.eq(otp_challenges::attempts + 1))
                    .execute(c)?;
                // Read back inside the transaction: concurrent wrong codes all count.
                let attempts: i32 = otp_challenges::table
                    .filter(otp_challenges::id.eq(&ch.id))
                    .select(otp_challenges::attempts)
                    .first(c)?;
                let left = cfg.max_code_attempts - attempts;
                if left <= 0 {
                    diesel::update(otp_challenges::table.filter(otp_challenges::id.eq(&ch.id)))
                        .set(otp_challenges::locked_at.eq(now))
                        .execute(c)?;
                }
                Ok(left)
            })?;
            return Err(if left <= 0 {
                code_locked()
            } else {
                ControlError::invalid(
                    "code",
                    format!(
                        "wrong code; {left} attempt{} left",
                        if left == 1 { "" } else { "s" }
                    ),
                )
            });
        }
        let job = db::write_tx(c, |c| {
            withdraw_in_tx(
                c, &d, &ev, &req, &person, &page, &ch, &token, &client, &who, now,
            )
        })?;
        Ok((receipt_page(c, &ev, now)?, job))
    })
    .await?;
    if let Some((tenant, person_id, job_id)) = job {
        // The removal is queued in the withdrawal's transaction; a matcher that is down now
        // leaves it to its job.
        if let Err(e) =
            crate::faces::run_queued_person_template_removal(deps, &tenant, &person_id, job_id)
                .await
        {
            tracing::warn!(error = %e, "template removal after a withdrawal: left to its job");
        }
    }
    Ok(page)
}

fn code_locked() -> ControlError {
    ControlError::Gone {
        code: "code_locked",
        message: "too many wrong codes: ask for a new code".into(),
    }
}

/// The withdrawal, in the caller's transaction; returns the queued template removal (tenant,
/// person, job) when face matching ended.
#[allow(clippy::too_many_arguments)]
fn withdraw_in_tx(
    c: &mut DbConn,
    deps: &Deps,
    ev: &EvidenceRow,
    req: &ReqRow,
    person: &PersonRow,
    page: &ReceiptPage,
    ch: &Challenge,
    receipt_token: &str,
    client: &ClientInfo,
    who: &Who,
    now: NaiveDateTime,
) -> Result<Option<(String, String, String)>> {
    let t = &ev.tenant_id;
    let n = diesel::update(
        otp_challenges::table
            .filter(otp_challenges::id.eq(&ch.id))
            .filter(otp_challenges::verified_at.is_null()),
    )
    .set(otp_challenges::verified_at.eq(now))
    .execute(c)?;
    if n != 1 {
        return Err(ControlError::Conflict {
            code: "no_code_sent",
            message: "this code was used already".into(),
        });
    }
    let outcome = crate::agreements::withdraw_at(
        c,
        who,
        t,
        &ev.agreement_id,
        Withdrawal {
            at: None,
            reason: WITHDRAWAL_REASON.into(),
        },
        now,
    )?;
    let job = if outcome.face_matching_ended {
        Some((
            t.clone(),
            person.id.clone(),
            crate::faces::queue_person_template_removal(c, t, &person.id, now)?,
        ))
    } else {
        None
    };
    let record = serde_json::json!({
        "agreement_id": ev.agreement_id,
        "withdrawal_of": { "evidence_id": ev.id, "record_sha256": ev.record_sha256 },
        "reason": WITHDRAWAL_REASON,
        "request": {
            "id": req.id,
            "channel": req.channel,
            "destination_sha256": req.destination_sha256,
        },
        "code": {
            "sent_at": time_str(ch.last_sent_at),
            "verified_at": time_str(now),
            "attempts": ch.attempts,
        },
        "person": { "id": person.id, "pseudonym": person.pseudonym },
        "face_matching_ended": outcome.face_matching_ended,
        "client": { "ip": client.ip, "user_agent": client.user_agent },
        "withdrawn_at": time_str(now),
    });
    let sealed = evidence::seal(
        c,
        deps,
        t,
        EvidenceKind::Withdrawal,
        &ev.agreement_id,
        Some(&req.id),
        record,
        false,
        now,
    )?;
    let link = format!(
        "{}/receipt/{receipt_token}",
        deps.config.signing.public_base_url.trim_end_matches('/'),
    );
    let m = messages::withdrawn(
        &req.language,
        &page.tenant_name,
        &page.title,
        &now.date().to_string(),
        &link,
    );
    outbox::enqueue_about(
        c,
        t,
        &req.person_id,
        OutgoingMessage {
            channel: req.channel(),
            to: req.destination.clone(),
            subject: Some(m.subject),
            text: m.text,
            html: None,
            purpose: "withdrawal".into(),
            related_id: Some(req.id.clone()),
            secret: true,
        },
        now,
    )?;
    audit::record(
        c,
        who,
        "agreement.withdraw_by_person",
        "agreement",
        Some(&ev.agreement_id),
        serde_json::json!({
            "person_id": person.id,
            "evidence_id": sealed.id,
            "record_sha256": sealed.record_sha256,
            "face_matching_ended": outcome.face_matching_ended,
        }),
    )?;
    Ok(job)
}

//! (SIGNING) Signing requests and the signer's flow: a link by e-mail or SMS, the exact text,
//! scopes to accept or decline, a one-time code (and a guardian's for minors), a sealed
//! record, a receipt, and withdrawal through the receipt's link.
//!
//! Staff side (a [`Ctx`]): [`create_requests`], [`list_requests`], [`get_request`],
//! [`revoke_request`], [`resend_request`]. Public side (no account; a raw link token and the
//! client's address): [`open_request`], [`submit_choices`], [`resend_code`], [`confirm_code`],
//! [`open_receipt`], [`receipt_pdf`], [`receipt_json`], [`start_withdrawal`],
//! [`confirm_withdrawal`], [`asset_preview`].

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Ctx;
use crate::Deps;
use crate::consent_templates::{LegalCharacter, Scope};
use crate::error::{ControlError, Result};
use crate::outbox::Channel;
use crate::pagination::Page;

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
        code_expires_at: NaiveDateTime,
        /// A new code may be asked from then on (UTC).
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
pub type ReceiptDoc = serde_json::Value;

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
    /// Face matching offered.
    pub face_matching_offered: bool,
    /// Face matching accepted.
    pub face_matching_accepted: bool,
    /// First day of validity.
    pub valid_from: NaiveDate,
    /// Last day of validity (none: until withdrawn).
    pub valid_until: Option<NaiveDate>,
    /// When it was signed (UTC).
    pub signed_at: NaiveDateTime,
    /// The signer's name (or pseudonym).
    pub signer_name: String,
    /// When it was withdrawn (UTC), if it was.
    pub withdrawn_at: Option<NaiveDateTime>,
    /// Language of the page.
    pub language: String,
    /// Where the person is in withdrawing.
    pub withdrawal: WithdrawStep,
}

fn not_built<T>(what: &str) -> Result<T> {
    Err(ControlError::Internal(format!(
        "signing::{what}: not built yet"
    )))
}

// ---------------------------------------------------------------------------------------------
// Staff side
// ---------------------------------------------------------------------------------------------

/// Creates one request per person (per-person problems go to `failed`), each with its message
/// written to the outbox in the same transaction. Permission: ManageConsents.
pub async fn create_requests(ctx: &Ctx, new: NewSigningRequests) -> Result<BulkOutcome> {
    let _ = (ctx, new);
    not_built("create_requests")
}

/// The tenant's requests, newest first. Permission: SeePersons.
pub async fn list_requests(ctx: &Ctx, filter: RequestFilter) -> Result<Vec<SigningRequestOut>> {
    let _ = (ctx, filter);
    not_built("list_requests")
}

/// One request. Permission: SeePersons.
pub async fn get_request(ctx: &Ctx, id: String) -> Result<SigningRequestOut> {
    let _ = (ctx, id);
    not_built("get_request")
}

/// Revokes an unsigned request (its link then says so). Permission: ManageConsents.
pub async fn revoke_request(ctx: &Ctx, id: String, reason: String) -> Result<SigningRequestOut> {
    let _ = (ctx, id, reason);
    not_built("revoke_request")
}

/// Sends a request again with a new link (the old one dies). Permission: ManageConsents.
pub async fn resend_request(ctx: &Ctx, id: String) -> Result<SigningRequestOut> {
    let _ = (ctx, id);
    not_built("resend_request")
}

// ---------------------------------------------------------------------------------------------
// Public side
// ---------------------------------------------------------------------------------------------

/// The signer's page for the link token `token`; marks the request opened on first open.
pub async fn open_request(deps: &Deps, token: &str, client: ClientInfo) -> Result<SignPage> {
    let _ = (deps, token, client);
    not_built("open_request")
}

/// Records the signer's choices and sends the code(s).
pub async fn submit_choices(
    deps: &Deps,
    token: &str,
    choices: SignChoices,
    client: ClientInfo,
) -> Result<SignPage> {
    let _ = (deps, token, choices, client);
    not_built("submit_choices")
}

/// Sends the code(s) again (throttled).
pub async fn resend_code(deps: &Deps, token: &str, client: ClientInfo) -> Result<SignPage> {
    let _ = (deps, token, client);
    not_built("resend_code")
}

/// Checks the code(s); on success signs (agreement, sealed evidence, receipt) in one
/// transaction.
pub async fn confirm_code(
    deps: &Deps,
    token: &str,
    code: &str,
    guardian_code: Option<&str>,
    client: ClientInfo,
) -> Result<SignedOutcome> {
    let _ = (deps, token, code, guardian_code, client);
    not_built("confirm_code")
}

/// The receipt page of `receipt_token`.
pub async fn open_receipt(deps: &Deps, receipt_token: &str) -> Result<ReceiptPage> {
    let _ = (deps, receipt_token);
    not_built("open_receipt")
}

/// The receipt as PDF.
pub async fn receipt_pdf(deps: &Deps, receipt_token: &str) -> Result<Vec<u8>> {
    let _ = (deps, receipt_token);
    not_built("receipt_pdf")
}

/// The receipt as JSON (for offline verification).
pub async fn receipt_json(deps: &Deps, receipt_token: &str) -> Result<String> {
    let _ = (deps, receipt_token);
    not_built("receipt_json")
}

/// Sends a withdrawal code to the request's original destination (throttled).
pub async fn start_withdrawal(
    deps: &Deps,
    receipt_token: &str,
    client: ClientInfo,
) -> Result<ReceiptPage> {
    let _ = (deps, receipt_token, client);
    not_built("start_withdrawal")
}

/// Checks the withdrawal code; on success withdraws in one transaction.
pub async fn confirm_withdrawal(
    deps: &Deps,
    receipt_token: &str,
    code: &str,
    client: ClientInfo,
) -> Result<ReceiptPage> {
    let _ = (deps, receipt_token, code, client);
    not_built("confirm_withdrawal")
}

/// A file's thumbnail (JPEG) with every other person's face blurred, for files listed on the
/// request only.
pub async fn asset_preview(deps: &Deps, token: &str, asset_id: &str) -> Result<Vec<u8>> {
    let _ = (deps, token, asset_id);
    not_built("asset_preview")
}

//! Every word the console shows, in one place: one struct per part of the console, one
//! constant per language (`EN` today; Swedish and Dutch follow as `SV` and `NL` with the same
//! fields, so a missing translation is a compile error, not a blank on a page).

use likeness_control_domain::ComplianceStatus;

mod admin;
mod alerts;
mod common;
mod files;
mod library;
mod persons;
mod review;
mod rights;
mod shares;
mod signing;
mod webhooks;

pub use admin::Admin;
pub use alerts::Alerts;
pub use common::Common;
pub use files::Files;
pub use library::Library;
pub use persons::Persons;
pub use review::Review;
pub use rights::Rights;
pub use shares::Shares;
pub use signing::Signing;
pub use webhooks::Webhooks;

/// Declares a struct of `&'static str` fields and its English constant `EN`.
macro_rules! strings {
    ($(#[$meta:meta])* $name:ident { $($key:ident: $en:expr,)* }) => {
        $(#[$meta])*
        #[derive(Debug)]
        #[allow(missing_docs)]
        pub struct $name {
            $(pub $key: &'static str,)*
        }

        impl $name {
            /// English.
            pub const EN: $name = $name { $($key: $en,)* };
        }
    };
}
pub(crate) use strings;

/// All the console's strings in one language.
#[derive(Debug)]
pub struct Strings {
    /// Language tag (`lang` of the page).
    pub lang: &'static str,
    /// Layout, navigation, login, errors, shared words.
    pub common: Common,
    /// Overview and review queue.
    pub review: Review,
    /// Files: list, a file, upload.
    pub files: Files,
    /// The list of files and the upload page.
    pub library: Library,
    /// The register of persons and consents.
    pub persons: Persons,
    /// Settings, users, tokens, roles, audit log, re-matching.
    pub admin: Admin,
    /// Digital signing: templates, requests, outbox.
    pub signing: Signing,
    /// Webhook endpoints and deliveries.
    pub webhooks: Webhooks,
    /// Share links and portals.
    pub shares: Shares,
    /// Alerts of expiring consents, the digest preference.
    pub alerts: Alerts,
    /// Data-subject rights: policy, record of processing, export, erasure, pixelation.
    pub rights: Rights,
}

/// English.
pub static EN: Strings = Strings {
    lang: "en",
    common: Common::EN,
    review: Review::EN,
    files: Files::EN,
    library: Library::EN,
    persons: Persons::EN,
    admin: Admin::EN,
    signing: Signing::EN,
    webhooks: Webhooks::EN,
    shares: Shares::EN,
    alerts: Alerts::EN,
    rights: Rights::EN,
};

impl Strings {
    /// The name of a compliance status (also the code of a reason).
    pub fn status(&self, s: &ComplianceStatus) -> &'static str {
        let c = &self.common;
        match s {
            ComplianceStatus::NoLegalBasis => c.status_no_legal_basis,
            ComplianceStatus::NeverPublish => c.status_never_publish,
            ComplianceStatus::UnidentifiedFaces => c.status_unidentified_faces,
            ComplianceStatus::PersonsNotSpecified => c.status_persons_not_specified,
            ComplianceStatus::MinorWithoutGuardianConsent => {
                c.status_minor_without_guardian_consent
            }
            ComplianceStatus::Withdrawn => c.status_withdrawn,
            ComplianceStatus::MissingConsent => c.status_missing_consent,
            ComplianceStatus::Expired => c.status_expired,
            ComplianceStatus::Expiring => c.status_expiring,
            ComplianceStatus::Approved => c.status_approved,
        }
    }
}

/// The strings of the request's language (English until a second language exists).
pub fn for_request(_req: &actix_web::HttpRequest) -> &'static Strings {
    &EN
}

/// The message for a `?notice=` key set by a redirect after a successful form, or `None` for
/// an unknown key (nothing from the query string is ever shown as such).
pub fn notice(t: &'static Strings, key: &str) -> Option<&'static str> {
    Some(match key {
        "saved" => t.common.notice_saved,
        "logged_out" => t.common.notice_logged_out,
        "user_created" => t.admin.notice_user_created,
        "user_updated" => t.admin.notice_user_updated,
        "roles_saved" => t.admin.notice_roles_saved,
        "token_revoked" => t.admin.notice_token_revoked,
        "rematch_started" => t.admin.notice_rematch_started,
        "rematch_cancelled" => t.admin.notice_rematch_cancelled,
        "uploaded" => t.library.upload_uploaded,
        "template_created" => t.signing.notice_template_created,
        "template_archived" => t.signing.notice_template_archived,
        "request_sent" => t.signing.notice_request_sent,
        "requests_sent" => t.signing.notice_requests_sent,
        "request_resent" => t.signing.notice_request_resent,
        "request_revoked" => t.signing.notice_request_revoked,
        "message_retried" => t.signing.notice_message_retried,
        "share_revoked" => t.shares.notice_revoked,
        "webhook_saved" => t.webhooks.notice_saved,
        "webhook_enabled" => t.webhooks.notice_enabled,
        "webhook_disabled" => t.webhooks.notice_disabled,
        "webhook_deleted" => t.webhooks.notice_deleted,
        "webhook_test_queued" => t.webhooks.notice_test_queued,
        "webhook_redelivered" => t.webhooks.notice_redelivered,
        "policy_saved" => t.rights.notice_policy_saved,
        "export_requested" => t.rights.notice_export_requested,
        "erasure_started" => t.rights.notice_erasure_started,
        "erasure_done" => t.rights.notice_erasure_done,
        "pixelated" => t.rights.notice_pixelated,
        _ => return None,
    })
}

//! The enums of the control plane. Their snake_case string forms ([`Role::as_str`] etc.) are
//! what the database stores and what the API speaks; `FromStr` accepts exactly those forms and
//! its error names the bad value and lists the valid ones.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Error;

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $s:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case string form stored in the database and used by the API.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s,)+
                }
            }

            /// The valid string forms, comma separated (for error messages).
            pub fn valid_values() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(Error::UnknownValue {
                        kind: $kind,
                        value: s.to_owned(),
                        valid: Self::valid_values(),
                    }),
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;

            fn try_from(s: &str) -> Result<Self, Error> {
                s.parse()
            }
        }
    };
}

string_enum! {
    /// A user's role within a tenant. Each role has a default permission set
    /// ([`Role::default_permissions`]); tenants may change it.
    Role, "role" {
        /// Everything, including users and settings.
        Admin => "admin",
        /// Data protection: persons, consents, export, erasure, audit, settings.
        PrivacyOfficer => "privacy_officer",
        /// Uploads and tags files, maintains the register of persons.
        Editor => "editor",
        /// Reads files and their compliance status; sees no personal data.
        Viewer => "viewer",
        /// A machine client (CMS, DAM): uploads files and asks for their status.
        Integration => "integration",
    }
}

string_enum! {
    /// A permission a role may hold.
    Permission, "permission" {
        /// See persons (names, contact details, dates of birth).
        SeePersons => "see_persons",
        /// Create and change persons; link faces to them (deleting a person also needs
        /// `erase`).
        ManagePersons => "manage_persons",
        /// Record, change and withdraw consents; set the legal basis of assets.
        ManageConsents => "manage_consents",
        /// Upload, change and delete assets and their faces.
        ManageAssets => "manage_assets",
        /// Use (download for use) files that are not approved, where the tenant allows it.
        UseUnapprovedFiles => "use_unapproved_files",
        /// Export everything about a person (access requests).
        Export => "export",
        /// Erase personal data: delete a person (with `manage_persons`), their faces' links and
        /// their templates.
        Erase => "erase",
        /// Manage users, roles and API tokens.
        ManageUsers => "manage_users",
        /// Change the tenant's settings.
        ManageSettings => "manage_settings",
        /// Read the audit log.
        ReadAudit => "read_audit",
    }
}

string_enum! {
    /// The legal basis on which an asset (and the persons in it) may be used.
    LegalBasis, "legal basis" {
        /// Consent of every person shown is required (Art. 6(1)(a)).
        Consent => "consent",
        /// Necessary for a contract with the persons shown (Art. 6(1)(b)).
        Contract => "contract",
        /// Legitimate interest (Art. 6(1)(f)).
        LegitimateInterest => "legitimate_interest",
        /// An external agreement or stock licence covers the persons shown.
        ExternalAgreement => "external_agreement",
        /// Public interest (Art. 6(1)(e)).
        PublicInterest => "public_interest",
        /// Exempt: no identifiable persons are shown.
        ExemptNoIdentifiablePersons => "exempt_no_identifiable_persons",
        /// Exempt: historical material (the persons shown are deceased).
        ExemptHistorical => "exempt_historical",
        /// Exempt: artistic or journalistic purposes (Art. 85).
        ExemptArtisticJournalistic => "exempt_artistic_journalistic",
    }
}

impl LegalBasis {
    /// Whether this basis requires a consent from every person shown.
    pub const fn requires_consent(self) -> bool {
        matches!(self, LegalBasis::Consent)
    }

    /// Whether an identifiable face that is not linked to a person blocks approval under this
    /// basis. Bases that rest on the individual persons shown (consent, contract, legitimate
    /// interest: each needs to know *who* is shown) and the "no identifiable persons" exemption
    /// (which an identifiable face contradicts) block; bases that cover whoever is shown
    /// (external agreement/stock licence, public interest, historical, artistic/journalistic)
    /// do not.
    pub const fn unidentified_faces_block(self) -> bool {
        matches!(
            self,
            LegalBasis::Consent
                | LegalBasis::Contract
                | LegalBasis::LegitimateInterest
                | LegalBasis::ExemptNoIdentifiablePersons
        )
    }
}

string_enum! {
    /// The state of a face on an asset.
    FaceStatus, "face status" {
        /// Nobody decided who this is and the matcher had no suggestion.
        Unknown => "unknown",
        /// The matcher suggested candidates; no human decision yet.
        Suggested => "suggested",
        /// A human linked the face to a person.
        Confirmed => "confirmed",
        /// A human rejected the suggestion; the face is not linked to anybody.
        Rejected => "rejected",
        /// The face of a person whose data was erased (Art. 17), on a file the tenant's policy
        /// hides: no longer linked to anybody, it blocks the file in every channel under every
        /// legal basis.
        Erased => "erased",
    }
}

string_enum! {
    /// Where a face came from.
    FaceSource, "face source" {
        /// Found by the matcher's detector.
        Detected => "detected",
        /// Drawn by hand.
        Manual => "manual",
    }
}

string_enum! {
    /// How a consent was given.
    ConsentSource, "consent source" {
        /// A scanned paper form.
        PaperScan => "paper_scan",
        /// An audio recording.
        AudioRecording => "audio_recording",
        /// Given digitally (signed online).
        Digital => "digital",
    }
}

string_enum! {
    /// The compliance status of an asset for a channel on a date, and the code of each reason.
    ///
    /// Declaration order is the precedence, **worst first**: an asset's overall status is the
    /// first of these that any of its reasons has ([`ComplianceStatus::severity`]), `approved`
    /// when there is no reason. Rationale: problems that no consent can fix come first (no legal
    /// basis, a person who must never be published, faces nobody identified, nobody specified),
    /// then consent problems from the hardest to the easiest to resolve; `expiring` is allowed.
    ComplianceStatus, "compliance status" {
        /// No legal basis is set, or the one set does not hold.
        NoLegalBasis => "no_legal_basis",
        /// A person shown must never be published.
        NeverPublish => "never_publish",
        /// An identifiable face is not linked to a person.
        UnidentifiedFaces => "unidentified_faces",
        /// Consent is required but no person is linked to the asset.
        PersonsNotSpecified => "persons_not_specified",
        /// A minor's consent was not given by a guardian.
        MinorWithoutGuardianConsent => "minor_without_guardian_consent",
        /// A person withdrew the consent for this channel.
        Withdrawn => "withdrawn",
        /// A person has no consent for this channel on this date.
        MissingConsent => "missing_consent",
        /// A person's consent for this channel has ended.
        Expired => "expired",
        /// Allowed, but a consent ends within the tenant's notice period.
        Expiring => "expiring",
        /// Allowed.
        Approved => "approved",
    }
}

impl ComplianceStatus {
    /// Lower is worse. The overall status of an asset is the reason status with the lowest
    /// severity.
    pub fn severity(self) -> usize {
        Self::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or(Self::ALL.len())
    }

    /// Whether an asset with this status may be used.
    pub const fn allowed(self) -> bool {
        matches!(
            self,
            ComplianceStatus::Approved | ComplianceStatus::Expiring
        )
    }
}

string_enum! {
    /// What users may do with files that are not approved (a tenant setting).
    NonApprovedUse, "non-approved use policy" {
        /// Nobody may use them.
        Block => "block",
        /// Everybody may use them after a warning.
        Warn => "warn",
        /// Only users whose role has `use_unapproved_files` may use them.
        AllowWithPermission => "allow_with_permission",
    }
}

impl Role {
    /// The permissions a role has unless the tenant changed them.
    ///
    /// - admin: all.
    /// - privacy_officer: all but `manage_users` and `use_unapproved_files`.
    /// - editor: `see_persons`, `manage_persons`, `manage_assets`.
    /// - viewer: none (reads assets and their status without personal data).
    /// - integration: `manage_assets`.
    pub fn default_permissions(self) -> &'static [Permission] {
        use Permission as P;
        match self {
            Role::Admin => Permission::ALL,
            Role::PrivacyOfficer => &[
                P::SeePersons,
                P::ManagePersons,
                P::ManageConsents,
                P::ManageAssets,
                P::Export,
                P::Erase,
                P::ManageSettings,
                P::ReadAudit,
            ],
            Role::Editor => &[P::SeePersons, P::ManagePersons, P::ManageAssets],
            Role::Viewer => &[],
            Role::Integration => &[P::ManageAssets],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T>(all: &[T])
    where
        T: Copy + fmt::Debug + PartialEq + FromStr<Err = Error> + fmt::Display + Serialize,
    {
        for v in all {
            let s = v.to_string();
            assert_eq!(s.parse::<T>().unwrap(), *v);
            assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{s}\""));
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
        }
    }

    #[test]
    fn every_enum_roundtrips_through_its_string_form() {
        roundtrip(Role::ALL);
        roundtrip(Permission::ALL);
        roundtrip(LegalBasis::ALL);
        roundtrip(FaceStatus::ALL);
        roundtrip(FaceSource::ALL);
        roundtrip(ConsentSource::ALL);
        roundtrip(ComplianceStatus::ALL);
        roundtrip(NonApprovedUse::ALL);
    }

    #[test]
    fn string_forms_match_the_plan() {
        let roles: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            roles,
            [
                "admin",
                "privacy_officer",
                "editor",
                "viewer",
                "integration"
            ]
        );
        assert_eq!(LegalBasis::ALL.len(), 8);
        assert_eq!(Permission::ALL.len(), 10);
        assert_eq!(ComplianceStatus::ALL.len(), 10);
        assert_eq!(
            "exempt_artistic_journalistic"
                .parse::<LegalBasis>()
                .unwrap(),
            LegalBasis::ExemptArtisticJournalistic
        );
    }

    #[test]
    fn parse_error_names_the_value_and_lists_valid_ones() {
        let err = "Admin".parse::<Role>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"Admin\""), "{msg}");
        assert!(msg.contains("role"), "{msg}");
        assert!(
            msg.contains("admin, privacy_officer, editor, viewer, integration"),
            "{msg}"
        );
        assert!("".parse::<FaceStatus>().is_err());
        assert!(" consent".parse::<LegalBasis>().is_err());
    }

    #[test]
    fn serde_rejects_unknown_values() {
        assert!(serde_json::from_str::<Permission>("\"erase_all\"").is_err());
        assert_eq!(
            serde_json::from_str::<Permission>("\"read_audit\"").unwrap(),
            Permission::ReadAudit
        );
    }

    #[test]
    fn severity_is_declaration_order_and_allowed_is_approved_or_expiring() {
        assert!(
            ComplianceStatus::NoLegalBasis.severity() < ComplianceStatus::NeverPublish.severity()
        );
        assert!(ComplianceStatus::Expiring.severity() < ComplianceStatus::Approved.severity());
        let allowed: Vec<_> = ComplianceStatus::ALL
            .iter()
            .filter(|s| s.allowed())
            .copied()
            .collect();
        assert_eq!(
            allowed,
            [ComplianceStatus::Expiring, ComplianceStatus::Approved]
        );
    }

    #[test]
    fn default_permissions() {
        assert_eq!(Role::Admin.default_permissions(), Permission::ALL);
        assert!(Role::Viewer.default_permissions().is_empty());
        let po = Role::PrivacyOfficer.default_permissions();
        assert!(po.contains(&Permission::ManageConsents));
        assert!(!po.contains(&Permission::ManageUsers));
        assert!(
            !Role::Editor
                .default_permissions()
                .contains(&Permission::Erase)
        );
        assert!(
            Role::Integration
                .default_permissions()
                .contains(&Permission::ManageAssets)
        );
        for r in Role::ALL {
            let p = r.default_permissions();
            let mut d = p.to_vec();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), p.len(), "{r} has duplicate permissions");
        }
    }

    #[test]
    fn unidentified_faces_block_only_person_bound_bases() {
        let blocking: Vec<_> = LegalBasis::ALL
            .iter()
            .filter(|b| b.unidentified_faces_block())
            .map(|b| b.as_str())
            .collect();
        assert_eq!(
            blocking,
            [
                "consent",
                "contract",
                "legitimate_interest",
                "exempt_no_identifiable_persons"
            ]
        );
    }
}

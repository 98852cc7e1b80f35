//! The tenant's data-subject-rights policy (stored under the key `rights` of
//! `tenants.settings_json`, beside [`crate::settings::TenantSettings`]): what an erasure does to
//! the files a person appears in, and how long documents, evidence and access exports are kept.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::enums::LegalBasis;
use crate::error::Error;

/// The key of these settings in the tenant's settings JSON.
pub const KEY: &str = "rights";
/// Longest accepted document retention after an agreement ends (30 years).
pub const MAX_DOCUMENT_RETENTION_DAYS: u32 = 30 * 366;
/// Longest accepted evidence retention.
pub const MAX_EVIDENCE_RETENTION_YEARS: u32 = 30;
/// Longest accepted lifetime of an access-export download (30 days).
pub const MAX_EXPORT_TTL_HOURS: u32 = 30 * 24;

/// What an erasure does to a file the erased person appears in, when no other legal basis keeps
/// it (see [`RightsSettings::keep_on_other_basis`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ErasureFiles {
    /// A new version with the person's face pixelated; every older version is destroyed.
    #[default]
    Pixelate,
    /// The file is hidden everywhere (never allowed again), its bytes unchanged.
    Hide,
}

/// The decision an erasure takes for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileDecision {
    /// A new version with the face pixelated, older versions destroyed.
    Pixelate,
    /// Hidden everywhere.
    Hide,
    /// Kept as it is: another legal basis covers whoever is shown (named beside it).
    Keep,
}

/// The tenant's rights policy. Missing fields take their defaults; unknown ones are an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RightsSettings {
    /// What an erasure does to the person's files.
    pub erasure_files: ErasureFiles,
    /// Keep a file unchanged when its legal basis covers whoever is shown (external agreement,
    /// public interest, historical, artistic/journalistic), instead of `erasure_files`.
    pub keep_on_other_basis: bool,
    /// Days after an agreement ended (expired or withdrawn) after which the scheduler deletes
    /// its documents (scans, PDFs). The sealed evidence record is kept longer (below).
    #[schema(example = 365)]
    pub document_retention_days: u32,
    /// Years after an agreement ended after which its sealed evidence records are deleted.
    #[schema(example = 10)]
    pub evidence_retention_years: u32,
    /// Hours an access-export package stays downloadable.
    #[schema(example = 72)]
    pub export_ttl_hours: u32,
}

impl Default for RightsSettings {
    fn default() -> Self {
        RightsSettings {
            erasure_files: ErasureFiles::Pixelate,
            keep_on_other_basis: true,
            document_retention_days: 365,
            evidence_retention_years: 10,
            export_ttl_hours: 72,
        }
    }
}

impl RightsSettings {
    /// Checks every field; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if self.document_retention_days > MAX_DOCUMENT_RETENTION_DAYS {
            return Err(Error::invalid(
                "document_retention_days",
                format!("must be at most {MAX_DOCUMENT_RETENTION_DAYS} days"),
            ));
        }
        if self.evidence_retention_years > MAX_EVIDENCE_RETENTION_YEARS {
            return Err(Error::invalid(
                "evidence_retention_years",
                format!("must be at most {MAX_EVIDENCE_RETENTION_YEARS} years"),
            ));
        }
        if !(1..=MAX_EXPORT_TTL_HOURS).contains(&self.export_ttl_hours) {
            return Err(Error::invalid(
                "export_ttl_hours",
                format!("must be between 1 and {MAX_EXPORT_TTL_HOURS} hours"),
            ));
        }
        Ok(())
    }

    /// Reads the policy from a tenant's stored settings JSON (key [`KEY`]); absent: defaults.
    pub fn from_stored_json(json: &str) -> Result<Self, Error> {
        let json = json.trim();
        if json.is_empty() {
            return Ok(Self::default());
        }
        let v: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::invalid("settings", format!("invalid settings JSON: {e}")))?;
        match v.get(KEY) {
            None | Some(serde_json::Value::Null) => Ok(Self::default()),
            Some(r) => {
                let s: RightsSettings = serde_json::from_value(r.clone())
                    .map_err(|e| Error::invalid(KEY, format!("invalid rights settings: {e}")))?;
                s.validate()?;
                Ok(s)
            }
        }
    }

    /// Writes the policy into a tenant's stored settings JSON under [`KEY`], keeping every
    /// other key; returns the new JSON (canonical).
    pub fn merge_into_json(&self, stored: &str) -> String {
        let mut map = match serde_json::from_str::<serde_json::Value>(stored) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if let Ok(v) = serde_json::to_value(self) {
            map.insert(KEY.to_owned(), v);
        }
        crate::canonical::to_canonical_string(&serde_json::Value::Object(map))
    }

    /// The decision for a file with this legal basis. `None` (no basis set) and bases that rest
    /// on the individual persons shown (consent, contract, legitimate interest, "no identifiable
    /// persons") never keep a file: the erased person's face must not stay usable.
    pub fn decide(&self, basis: Option<LegalBasis>) -> FileDecision {
        let covers_whoever_is_shown = basis.is_some_and(|b| !b.unidentified_faces_block());
        if self.keep_on_other_basis && covers_whoever_is_shown {
            FileDecision::Keep
        } else {
            match self.erasure_files {
                ErasureFiles::Pixelate => FileDecision::Pixelate,
                ErasureFiles::Hide => FileDecision::Hide,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keys_and_round_trip() {
        let stored = r#"{"channels":["web"],"watermark":"x"}"#;
        assert_eq!(
            RightsSettings::from_stored_json(stored).ok(),
            Some(RightsSettings::default())
        );
        let mine = RightsSettings {
            erasure_files: ErasureFiles::Hide,
            document_retention_days: 30,
            ..RightsSettings::default()
        };
        let merged = mine.merge_into_json(stored);
        assert!(merged.contains("\"watermark\":\"x\""), "{merged}");
        assert_eq!(RightsSettings::from_stored_json(&merged).ok(), Some(mine));
        let bad = r#"{"rights":{"export_ttl_hours":0}}"#;
        assert!(RightsSettings::from_stored_json(bad).is_err());
        let unknown = r#"{"rights":{"erase_everything":true}}"#;
        assert!(RightsSettings::from_stored_json(unknown).is_err());
    }

    #[test]
    fn decisions_follow_the_basis() {
        let keep = RightsSettings::default();
        assert_eq!(
            keep.decide(Some(LegalBasis::PublicInterest)),
            FileDecision::Keep
        );
        assert_eq!(
            keep.decide(Some(LegalBasis::ExternalAgreement)),
            FileDecision::Keep
        );
        assert_eq!(
            keep.decide(Some(LegalBasis::Consent)),
            FileDecision::Pixelate
        );
        assert_eq!(
            keep.decide(Some(LegalBasis::Contract)),
            FileDecision::Pixelate
        );
        assert_eq!(keep.decide(None), FileDecision::Pixelate);
        let hide = RightsSettings {
            erasure_files: ErasureFiles::Hide,
            keep_on_other_basis: false,
            ..RightsSettings::default()
        };
        assert_eq!(
            hide.decide(Some(LegalBasis::PublicInterest)),
            FileDecision::Hide
        );
    }
}

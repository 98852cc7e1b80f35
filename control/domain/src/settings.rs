//! Tenant settings (stored as JSON in `tenants.settings_json`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::enums::NonApprovedUse;
use crate::error::Error;
use crate::validate;

/// Largest accepted notice period in days.
pub const MAX_NOTICE_DAYS: u32 = 3650;
/// Smallest accepted age of majority.
pub const MIN_AGE_THRESHOLD: u32 = 13;
/// Largest accepted age of majority.
pub const MAX_AGE_THRESHOLD: u32 = 21;

/// A tenant's settings. Missing fields take their defaults when read; unknown fields are an
/// error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// The channels a consent can cover and a compliance status is computed for.
    #[schema(example = json!(["web", "print", "social", "internal"]))]
    pub channels: Vec<String>,
    /// How many days before a consent ends an asset is reported as `expiring`.
    #[schema(example = 30)]
    pub notice_days: u32,
    /// The age of majority: younger persons need a consent signed by a guardian.
    #[schema(example = 18)]
    pub age_threshold: u32,
    /// Hide persons' names and show their pseudonymous IDs instead.
    pub pseudonymous_names: bool,
    /// What users may do with files that are not approved.
    pub non_approved_use: NonApprovedUse,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            channels: ["web", "print", "social", "internal"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            notice_days: 30,
            age_threshold: 18,
            pseudonymous_names: false,
            non_approved_use: NonApprovedUse::AllowWithPermission,
        }
    }
}

impl TenantSettings {
    /// Checks every field; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), Error> {
        validate::channels("channels", &self.channels)?;
        if self.notice_days > MAX_NOTICE_DAYS {
            return Err(Error::invalid(
                "notice_days",
                format!(
                    "must be at most {MAX_NOTICE_DAYS} days (got {})",
                    self.notice_days
                ),
            ));
        }
        if !(MIN_AGE_THRESHOLD..=MAX_AGE_THRESHOLD).contains(&self.age_threshold) {
            return Err(Error::invalid(
                "age_threshold",
                format!(
                    "must be between {MIN_AGE_THRESHOLD} and {MAX_AGE_THRESHOLD} years (got {})",
                    self.age_threshold
                ),
            ));
        }
        Ok(())
    }

    /// Parses settings JSON (as stored or as sent by a client) and validates it. An empty
    /// string or `{}` gives the defaults.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let json = json.trim();
        if json.is_empty() {
            return Ok(Self::default());
        }
        let s: TenantSettings = serde_json::from_str(json)
            .map_err(|e| Error::invalid("settings", format!("invalid settings JSON: {e}")))?;
        s.validate()?;
        Ok(s)
    }

    /// The keys of these settings (other modules may keep further keys in the same JSON
    /// object; [`TenantSettings::from_stored_json`] ignores them and
    /// [`TenantSettings::merge_into_json`] keeps them).
    pub const KEYS: &'static [&'static str] = &[
        "channels",
        "notice_days",
        "age_threshold",
        "pseudonymous_names",
        "non_approved_use",
    ];

    /// Reads the settings from a tenant's stored settings JSON: keys that are not settings of
    /// this type are ignored, missing ones take their defaults, the rest must be valid.
    pub fn from_stored_json(json: &str) -> Result<Self, Error> {
        let json = json.trim();
        if json.is_empty() {
            return Ok(Self::default());
        }
        let v: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::invalid("settings", format!("invalid settings JSON: {e}")))?;
        let serde_json::Value::Object(map) = v else {
            return Err(Error::invalid("settings", "must be a JSON object"));
        };
        let known: serde_json::Map<String, serde_json::Value> = map
            .into_iter()
            .filter(|(k, _)| Self::KEYS.contains(&k.as_str()))
            .collect();
        let s: TenantSettings = serde_json::from_value(serde_json::Value::Object(known))
            .map_err(|e| Error::invalid("settings", format!("invalid settings: {e}")))?;
        s.validate()?;
        Ok(s)
    }

    /// Writes these settings into a tenant's stored settings JSON, keeping any other keys;
    /// returns the new JSON (canonical). A stored value that is not a JSON object is replaced.
    pub fn merge_into_json(&self, stored: &str) -> String {
        let mut map = match serde_json::from_str::<serde_json::Value>(stored) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if let Ok(serde_json::Value::Object(mine)) = serde_json::to_value(self) {
            for (k, v) in mine {
                map.insert(k, v);
            }
        }
        crate::canonical::to_canonical_string(&serde_json::Value::Object(map))
    }

    /// The settings as compact JSON for storage.
    pub fn to_json(&self) -> String {
        crate::canonical::to_canonical_string(&serde_json::json!({
            "channels": self.channels,
            "notice_days": self.notice_days,
            "age_threshold": self.age_threshold,
            "pseudonymous_names": self.pseudonymous_names,
            "non_approved_use": self.non_approved_use.as_str(),
        }))
    }

    /// Checks that `channel` is one of this tenant's channels.
    pub fn check_channel(&self, field: &str, channel: &str) -> Result<(), Error> {
        if self.channels.iter().any(|c| c == channel) {
            Ok(())
        } else {
            Err(Error::invalid(
                field,
                format!(
                    "unknown channel {channel:?}; this tenant's channels: {}",
                    self.channels.join(", ")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = TenantSettings::default();
        assert_eq!(s.channels, ["web", "print", "social", "internal"]);
        assert_eq!(s.notice_days, 30);
        assert_eq!(s.age_threshold, 18);
        assert!(!s.pseudonymous_names);
        assert_eq!(s.non_approved_use, NonApprovedUse::AllowWithPermission);
        assert!(s.validate().is_ok());
        assert_eq!(TenantSettings::from_json("").unwrap(), s);
        assert_eq!(TenantSettings::from_json("{}").unwrap(), s);
    }

    #[test]
    fn json_roundtrip_and_partial_input() {
        let s = TenantSettings::from_json(
            r#"{"notice_days": 14, "non_approved_use": "block", "pseudonymous_names": true}"#,
        )
        .unwrap();
        assert_eq!(s.notice_days, 14);
        assert_eq!(s.non_approved_use, NonApprovedUse::Block);
        assert!(s.pseudonymous_names);
        assert_eq!(s.age_threshold, 18);
        assert_eq!(TenantSettings::from_json(&s.to_json()).unwrap(), s);
        assert!(!s.to_json().contains(' '));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"notice_days": 4000}"#, "notice_days"),
            (r#"{"age_threshold": 5}"#, "age_threshold"),
            (r#"{"age_threshold": 40}"#, "age_threshold"),
            (r#"{"channels": []}"#, "channels"),
            (r#"{"channels": ["web", "Web"]}"#, "channels[1]"),
            (r#"{"channels": ["web", "web"]}"#, "channels[1]"),
        ];
        for (json, field) in cases {
            let e = TenantSettings::from_json(json).unwrap_err();
            assert_eq!(e.field(), Some(field), "{json}: {e}");
        }
        for json in [
            r#"{"notice_days": -1}"#,
            r#"{"non_approved_use": "maybe"}"#,
            r#"{"colour": "red"}"#,
            "[1]",
            "{",
        ] {
            let e = TenantSettings::from_json(json).unwrap_err();
            assert_eq!(e.field(), Some("settings"), "{json}");
        }
        let e = TenantSettings::from_json(r#"{"non_approved_use": "maybe"}"#).unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
        let e = TenantSettings::from_json(r#"{"colour": "red"}"#).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn stored_json_keeps_and_ignores_other_keys() {
        let stored = r#"{"notice_days": 7, "media": {"max_upload": 5}}"#;
        let s = TenantSettings::from_stored_json(stored).unwrap();
        assert_eq!(s.notice_days, 7);
        let mut s2 = s.clone();
        s2.notice_days = 9;
        let merged = s2.merge_into_json(stored);
        assert!(merged.contains(r#""media":{"max_upload":5}"#), "{merged}");
        assert!(merged.contains(r#""notice_days":9"#), "{merged}");
        assert_eq!(TenantSettings::from_stored_json(&merged).unwrap(), s2);
        assert_eq!(
            TenantSettings::from_stored_json("").unwrap(),
            TenantSettings::default()
        );
        assert!(TenantSettings::from_stored_json("[]").is_err());
        assert!(TenantSettings::from_stored_json(r#"{"notice_days": "x"}"#).is_err());
        assert!(TenantSettings::from_stored_json(r#"{"age_threshold": 2}"#).is_err());
        assert_eq!(
            TenantSettings::default().merge_into_json("garbage"),
            TenantSettings::default().to_json()
        );
    }

    #[test]
    fn check_channel() {
        let s = TenantSettings::default();
        assert!(s.check_channel("channel", "web").is_ok());
        let e = s.check_channel("channel", "tv").unwrap_err();
        assert!(e.to_string().contains("\"tv\""), "{e}");
        assert!(
            e.to_string().contains("web, print, social, internal"),
            "{e}"
        );
    }
}

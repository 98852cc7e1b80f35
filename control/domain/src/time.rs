//! Timestamps on the wire: RFC 3339 in UTC with a `Z` (e.g. `2026-12-05T07:31:12.123456Z`).
//!
//! The database stores UTC as `NaiveDateTime`; without a zone a client (a browser) reads such a
//! value as local time. Put `#[serde(with = "likeness_control_domain::time::utc")]` on a
//! `NaiveDateTime` field of a DTO (`time::utc::option` on an `Option<NaiveDateTime>`, with
//! `default`) and keep `#[schema(value_type = String, format = DateTime)]` for the OpenAPI.
//!
//! Reading accepts RFC 3339 with any offset (converted to UTC) and, for compatibility with
//! clients of the old format, the zone-less form (`2026-12-05T07:31:12`), taken as UTC.

use chrono::{DateTime, NaiveDateTime, SecondsFormat};

/// Formats a UTC timestamp as RFC 3339 with `Z` (0, 3, 6 or 9 fractional digits, as needed).
pub fn format_utc(t: &NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses RFC 3339 with an offset (converted to UTC) or the zone-less form (taken as UTC).
pub fn parse_utc(s: &str) -> Result<NaiveDateTime, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.naive_utc());
    }
    s.parse::<NaiveDateTime>().map_err(|_| {
        format!(
            "invalid timestamp {s:?}: expected RFC 3339, e.g. 2026-12-05T07:31:12Z or 2026-12-05T08:31:12+01:00"
        )
    })
}

/// `#[serde(with = "...::time::utc")]` for a `NaiveDateTime` holding UTC.
pub mod utc {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer, de};

    /// Writes RFC 3339 with `Z`.
    pub fn serialize<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_utc(t))
    }

    /// Reads RFC 3339 with an offset, or the zone-less form as UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_utc(&s).map_err(de::Error::custom)
    }

    /// `#[serde(default, with = "...::time::utc::option")]` for an `Option<NaiveDateTime>`.
    pub mod option {
        use chrono::NaiveDateTime;
        use serde::{Deserialize, Deserializer, Serializer, de};

        /// Writes RFC 3339 with `Z`, or null.
        pub fn serialize<S: Serializer>(
            t: &Option<NaiveDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&super::super::format_utc(t)),
                None => s.serialize_none(),
            }
        }

        /// Reads RFC 3339 with an offset, the zone-less form as UTC, or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<NaiveDateTime>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| super::super::parse_utc(&s).map_err(de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        #[serde(with = "utc")]
        at: NaiveDateTime,
        #[serde(default, with = "utc::option")]
        maybe: Option<NaiveDateTime>,
    }

    fn at(s: &str) -> NaiveDateTime {
        s.parse().unwrap()
    }

    #[test]
    fn writes_utc_with_z() {
        let t = T {
            at: at("2026-12-05T07:31:12.123456"),
            maybe: None,
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"at":"2026-12-05T07:31:12.123456Z","maybe":null}"#
        );
        assert_eq!(
            format_utc(&at("2026-12-05T07:31:12")),
            "2026-12-05T07:31:12Z"
        );
    }

    #[test]
    fn reads_offsets_and_the_old_form() {
        let t: T = serde_json::from_str(
            r#"{"at":"2026-12-05T08:31:12+01:00","maybe":"2026-12-05T07:31:12.5"}"#,
        )
        .unwrap();
        assert_eq!(t.at, at("2026-12-05T07:31:12"));
        assert_eq!(t.maybe, Some(at("2026-12-05T07:31:12.5")));
        let t: T = serde_json::from_str(r#"{"at":"2026-12-05T07:31:12Z"}"#).unwrap();
        assert_eq!(t.maybe, None);
        assert!(serde_json::from_str::<T>(r#"{"at":"yesterday"}"#).is_err());
    }
}

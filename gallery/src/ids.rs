//! Validated identifiers. A tenant id names a directory, so it is restricted to a safe
//! alphabet; person ids are opaque strings from the control plane.

use crate::error::{GalleryError, Result};

/// A tenant id: 1-64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validates a tenant id.
    pub fn parse(s: &str) -> Result<Self> {
        likeness_common::ids::check_safe_id(s).map_err(|e| GalleryError::InvalidId {
            what: "tenant id",
            why: format!("{s:?}: {}", e.rule()),
        })?;
        Ok(Self(s.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates a person id: 1-128 bytes of UTF-8 without control characters.
pub fn check_person(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 128 {
        return Err(GalleryError::InvalidId {
            what: "person id",
            why: format!("{s:?}: must be 1 to 128 bytes"),
        });
    }
    if s.chars().any(char::is_control) {
        return Err(GalleryError::InvalidId {
            what: "person id",
            why: format!("{s:?}: control characters are not allowed"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_cannot_escape_the_data_directory() {
        for bad in ["", "../x", "a/b", ".", "..", "a b", &"x".repeat(65), "é"] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(TenantId::parse("acme-01_X").unwrap().as_str(), "acme-01_X");
    }

    #[test]
    fn person_ids_are_checked() {
        assert!(check_person("").is_err());
        assert!(check_person("a\nb").is_err());
        assert!(check_person(&"p".repeat(129)).is_err());
        check_person("person-42 Ö").unwrap();
    }
}

//! Roles and permissions, and the default permission set of each role (configurable per tenant
//! in `role_permissions`).
//!
//! Defaults (documented in control/README.md):
//! - `admin`: every permission.
//! - `privacy_officer`: every permission but `manage_users`.
//! - `editor`: `see_persons`, `manage_assets`.
//! - `viewer`: none (sees files, never personal data).
//! - `integration` (a CMS): `manage_assets`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user's role within a tenant.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users and settings.
    Admin,
    /// Data protection: persons, consents, export, erasure, audit.
    PrivacyOfficer,
    /// Works with files and tags persons.
    Editor,
    /// Looks at files.
    Viewer,
    /// A machine client (CMS) using an API token.
    Integration,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::PrivacyOfficer,
        Role::Editor,
        Role::Viewer,
        Role::Integration,
    ];

    /// The snake_case name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::PrivacyOfficer => "privacy_officer",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
            Self::Integration => "integration",
        }
    }

    /// The permissions a new tenant grants this role.
    pub fn default_permissions(self) -> Vec<Permission> {
        use Permission::*;
        match self {
            Self::Admin => Permission::ALL.to_vec(),
            Self::PrivacyOfficer => Permission::ALL
                .iter()
                .copied()
                .filter(|p| *p != ManageUsers)
                .collect(),
            Self::Editor => vec![SeePersons, ManageAssets],
            Self::Viewer => vec![],
            Self::Integration => vec![ManageAssets],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?} (one of: {})",
                    Role::ALL.map(|r| r.as_str()).join(", ")
                )
            })
    }
}

/// Something a role may be allowed to do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read persons (names, contact, faces linked to them).
    SeePersons,
    /// Create, change and delete persons; link faces.
    ManagePersons,
    /// Record, change and withdraw consents/agreements.
    ManageConsents,
    /// Upload and change files, faces and legal bases.
    ManageAssets,
    /// Use (download, publish) files that are not approved.
    UseUnapprovedFiles,
    /// Export everything about a person (access requests).
    Export,
    /// Erase a person and their data.
    Erase,
    /// Manage users, roles and API tokens of others.
    ManageUsers,
    /// Change tenant settings.
    ManageSettings,
    /// Read the audit log.
    ReadAudit,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 10] = [
        Permission::SeePersons,
        Permission::ManagePersons,
        Permission::ManageConsents,
        Permission::ManageAssets,
        Permission::UseUnapprovedFiles,
        Permission::Export,
        Permission::Erase,
        Permission::ManageUsers,
        Permission::ManageSettings,
        Permission::ReadAudit,
    ];

    /// The snake_case name stored in the database (and used as OpenAPI security scope).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeePersons => "see_persons",
            Self::ManagePersons => "manage_persons",
            Self::ManageConsents => "manage_consents",
            Self::ManageAssets => "manage_assets",
            Self::UseUnapprovedFiles => "use_unapproved_files",
            Self::Export => "export",
            Self::Erase => "erase",
            Self::ManageUsers => "manage_users",
            Self::ManageSettings => "manage_settings",
            Self::ReadAudit => "read_audit",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown permission {s:?} (one of: {})",
                    Permission::ALL.map(|p| p.as_str()).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert!("root".parse::<Role>().unwrap_err().contains("admin"));
    }

    #[test]
    fn defaults() {
        assert_eq!(
            Role::Admin.default_permissions().len(),
            Permission::ALL.len()
        );
        assert!(
            !Role::PrivacyOfficer
                .default_permissions()
                .contains(&Permission::ManageUsers)
        );
        assert!(Role::Viewer.default_permissions().is_empty());
    }
}

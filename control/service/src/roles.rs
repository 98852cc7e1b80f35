//! Roles and permissions: the enums and each role's default permissions come from
//! `likeness-control-domain` (one definition of the string forms); a tenant's effective
//! permissions live in `role_permissions` (seeded from the defaults, changed with
//! `PUT /api/v1/roles/{role}`).
//!
//! Defaults: admin all; privacy_officer all but `manage_users` and `use_unapproved_files`;
//! editor `see_persons`, `manage_persons`, `manage_assets`; viewer none; integration
//! `manage_assets`. `erase` is checked by `persons::erase_person` (deleting a person).

pub use likeness_control_domain::{Permission, Role};

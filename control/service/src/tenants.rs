//! Tenants: creation (with the default permissions of every role) and lookup. Tenant settings
//! (`settings_json`) are read and written only by `service::settings`.

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::{self, Who};
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::Role;
use crate::schema::{role_permissions, tenants};

/// A tenant.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    /// ID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Short unique name used at login.
    pub slug: String,
    /// Settings as JSON (see [`TenantSettings`]).
    #[serde(skip)]
    pub settings_json: String,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: chrono::NaiveDateTime,
}

pub use likeness_control_domain::TenantSettings;

/// Checks a slug: 2..=63 of `a-z0-9-`, not starting or ending with `-`.
pub fn validate_slug(slug: &str) -> Result<()> {
    let ok = (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ControlError::invalid(
            "tenant",
            "slug must be 2 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ))
    }
}

/// Finds a tenant by slug.
pub fn by_slug(conn: &mut DbConn, slug: &str) -> Result<Option<Tenant>> {
    Ok(tenants::table
        .filter(tenants::slug.eq(slug))
        .select(Tenant::as_select())
        .first(conn)
        .optional()?)
}

/// Finds a tenant by ID.
pub fn get(conn: &mut DbConn, id: &str) -> Result<Tenant> {
    tenants::table
        .filter(tenants::id.eq(id))
        .select(Tenant::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("tenant"))
}

/// Creates a tenant with the default permissions of every role. Call inside `db::write_tx`.
pub fn create(conn: &mut DbConn, who: &Who, slug: &str, name: &str) -> Result<Tenant> {
    validate_slug(slug)?;
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ControlError::invalid("name", "must be 1 to 200 characters"));
    }
    if by_slug(conn, slug)?.is_some() {
        return Err(ControlError::Conflict {
            code: "tenant_exists",
            message: format!("a tenant with slug {slug:?} exists already"),
        });
    }
    let t = Tenant {
        id: db::new_id(),
        name: name.to_string(),
        slug: slug.to_string(),
        settings_json: "{}".into(),
        created_at: db::now(),
    };
    diesel::insert_into(tenants::table)
        .values((
            tenants::id.eq(&t.id),
            tenants::name.eq(&t.name),
            tenants::slug.eq(&t.slug),
            tenants::settings_json.eq(&t.settings_json),
            tenants::created_at.eq(t.created_at),
        ))
        .execute(conn)?;
    for &role in Role::ALL {
        for p in role.default_permissions() {
            diesel::insert_into(role_permissions::table)
                .values((
                    role_permissions::tenant_id.eq(&t.id),
                    role_permissions::role.eq(role.as_str()),
                    role_permissions::permission.eq(p.as_str()),
                ))
                .execute(conn)?;
        }
    }
    let who = Who {
        tenant_id: Some(t.id.clone()),
        ..who.clone()
    };
    audit::record(
        conn,
        &who,
        "tenant.create",
        "tenant",
        Some(&t.id),
        serde_json::json!({"slug": t.slug, "name": t.name}),
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        validate_slug("demo").unwrap();
        validate_slug("a-1").unwrap();
        assert!(validate_slug("A").is_err());
        assert!(validate_slug("-x").is_err());
        assert!(validate_slug("x y").is_err());
    }
}

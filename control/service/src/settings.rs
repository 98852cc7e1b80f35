//! Tenant settings (channels, notice period, age threshold, pseudonymous names, what users may do
//! with files that are not approved), stored in `tenants.settings_json` next to any keys other
//! modules keep there. The type and its validation live in `likeness_control_domain::settings`.

use diesel::prelude::*;
use likeness_control_domain::TenantSettings;

use crate::audit::{self, Who};
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::Permission;
use crate::schema::tenants;

/// Maps a domain error to the control plane's error (`invalid_input` naming the field).
pub fn domain_error(e: likeness_control_domain::Error) -> ControlError {
    match e {
        likeness_control_domain::Error::Invalid { field, message } => {
            ControlError::Invalid { field, message }
        }
        likeness_control_domain::Error::UnknownValue { kind, value, valid } => {
            ControlError::invalid(
                kind.replace(' ', "_"),
                format!("unknown value {value:?}; valid values: {valid}"),
            )
        }
    }
}

/// Like [`domain_error`], naming `field` for an unknown enum value.
pub fn domain_error_at(field: &str, e: likeness_control_domain::Error) -> ControlError {
    match e {
        likeness_control_domain::Error::UnknownValue { value, valid, .. } => ControlError::invalid(
            field,
            format!("unknown value {value:?}; valid values: {valid}"),
        ),
        other => domain_error(other),
    }
}

fn stored(conn: &mut DbConn, tenant_id: &str) -> Result<String> {
    tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::settings_json)
        .first::<String>(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("tenant"))
}

/// The tenant's settings (defaults for keys never set): the one reader of tenant settings.
pub fn get(conn: &mut DbConn, tenant_id: &str) -> Result<TenantSettings> {
    let raw = stored(conn, tenant_id)?;
    TenantSettings::from_stored_json(&raw)
        .map_err(|e| ControlError::Internal(format!("stored settings of tenant {tenant_id}: {e}")))
}

/// Replaces the tenant's settings after validating them (the error names the field); other keys
/// in `settings_json` are kept. Audited as `settings.update` with the old and new values of each
/// changed key. Call inside [`crate::db::write_tx`].
pub fn put(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    new: TenantSettings,
) -> Result<TenantSettings> {
    new.validate().map_err(domain_error)?;
    let raw = stored(conn, tenant_id)?;
    let old = TenantSettings::from_stored_json(&raw).unwrap_or_default();
    let merged = new.merge_into_json(&raw);
    diesel::update(tenants::table.filter(tenants::id.eq(tenant_id)))
        .set(tenants::settings_json.eq(&merged))
        .execute(conn)?;
    let (old_v, new_v) = (serde_json::to_value(&old)?, serde_json::to_value(&new)?);
    let mut changed = serde_json::Map::new();
    for k in TenantSettings::KEYS {
        let (o, n) = (old_v.get(*k), new_v.get(*k));
        if o != n {
            changed.insert((*k).to_string(), serde_json::json!({ "old": o, "new": n }));
        }
    }
    if old.channels != new.channels
        || old.notice_days != new.notice_days
        || old.age_threshold != new.age_threshold
    {
        // Every file's verdicts may change: the scheduler's next tick recomputes them.
        crate::exposure::recheck_tenant(conn, tenant_id, db::now().date())?;
    }
    audit::record(
        conn,
        who,
        "settings.update",
        "tenant",
        Some(tenant_id),
        serde_json::json!({ "changed": changed }),
    )?;
    Ok(new)
}

/// The settings of the actor's tenant (every user of the tenant: clients need the channels and
/// the policy).
pub async fn get_settings(ctx: &Ctx) -> Result<TenantSettings> {
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| get(c, &t)).await
}

/// Replaces the settings of the actor's tenant (`manage_settings`); see [`put`].
pub async fn put_settings(ctx: &Ctx, new: Result<TenantSettings>) -> Result<TenantSettings> {
    ctx.require(Permission::ManageSettings)?;
    let new = new?;
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| put(c, &who, &t, new))
    })
    .await
}

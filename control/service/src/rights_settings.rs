//! The tenant's data-subject-rights policy ([`RightsSettings`]: what an erasure does to files,
//! how long documents, evidence and access exports are kept), stored under the key `rights` of
//! `tenants.settings_json` beside the other settings. Read: `read_audit` or `manage_settings`;
//! change: `manage_settings`, audited as `rights.update` with the old and new value of each
//! changed field.

use diesel::prelude::*;
use likeness_control_domain::rights::RightsSettings;

use crate::audit::{self, Who};
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::Permission;
use crate::schema::tenants;
use crate::settings::domain_error;

fn stored(conn: &mut DbConn, tenant_id: &str) -> Result<String> {
    tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::settings_json)
        .first::<String>(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("tenant"))
}

/// The tenant's rights policy (defaults when never set): the one reader of it.
pub fn get(conn: &mut DbConn, tenant_id: &str) -> Result<RightsSettings> {
    let raw = stored(conn, tenant_id)?;
    RightsSettings::from_stored_json(&raw).map_err(|e| {
        ControlError::Internal(format!("stored rights settings of tenant {tenant_id}: {e}"))
    })
}

/// Replaces the tenant's rights policy after validating it (the error names the field); the
/// other keys of `settings_json` are kept. Audited as `rights.update` with the changed fields.
/// Call inside [`crate::db::write_tx`].
pub fn put(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    new: RightsSettings,
) -> Result<RightsSettings> {
    new.validate().map_err(domain_error)?;
    let raw = stored(conn, tenant_id)?;
    let old = RightsSettings::from_stored_json(&raw).unwrap_or_default();
    let merged = new.merge_into_json(&raw);
    diesel::update(tenants::table.filter(tenants::id.eq(tenant_id)))
        .set(tenants::settings_json.eq(&merged))
        .execute(conn)?;
    let (old_v, new_v) = (serde_json::to_value(&old)?, serde_json::to_value(&new)?);
    let mut changed = serde_json::Map::new();
    if let (Some(o), Some(n)) = (old_v.as_object(), new_v.as_object()) {
        for (k, nv) in n {
            let ov = o.get(k);
            if ov != Some(nv) {
                changed.insert(k.clone(), serde_json::json!({ "old": ov, "new": nv }));
            }
        }
    }
    audit::record(
        conn,
        who,
        "rights.update",
        "tenant",
        Some(tenant_id),
        serde_json::json!({ "changed": changed }),
    )?;
    Ok(new)
}

/// Whether the actor may read the rights policy and the record of processing.
pub fn may_read(ctx: &Ctx) -> bool {
    ctx.has(Permission::ReadAudit) || ctx.has(Permission::ManageSettings)
}

/// `Ok` when the actor may read the policy (`read_audit` or `manage_settings`).
pub fn require_read(ctx: &Ctx) -> Result<()> {
    if may_read(ctx) {
        Ok(())
    } else {
        Err(ControlError::Forbidden(
            "read_audit or manage_settings".into(),
        ))
    }
}

/// The rights policy of the actor's tenant (`read_audit` or `manage_settings`).
pub async fn get_rights_settings(ctx: &Ctx) -> Result<RightsSettings> {
    require_read(ctx)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| get(c, &t)).await
}

/// Replaces the rights policy of the actor's tenant (`manage_settings`); see [`put`].
pub async fn put_rights_settings(ctx: &Ctx, new: Result<RightsSettings>) -> Result<RightsSettings> {
    ctx.require(Permission::ManageSettings)?;
    let new = new?;
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| put(c, &who, &t, new))
    })
    .await
}

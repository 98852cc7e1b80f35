//! The audit log of the caller's tenant.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::Deps;
use crate::api::extract::Query;
use crate::audit::{self, AuditEntry};
use crate::auth::Actor;
use crate::db;
use crate::error::{ControlError, ErrorBody, Result};
use crate::roles::Permission;

/// Filters of the audit list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries older than this seq (cursor: pass the previous page's `next_before`).
    pub before: Option<i64>,
    /// Entries per page, 1..=500 (default 100).
    pub limit: Option<i64>,
    /// Only this action, e.g. `person.read`.
    pub action: Option<String>,
    /// Only entries about this object.
    pub object_id: Option<String>,
}

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub items: Vec<AuditEntryOut>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// An audit entry as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryOut {
    /// Position in the chain.
    pub seq: i64,
    /// When (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub at: chrono::NaiveDateTime,
    /// Acting user.
    pub actor_user_id: Option<String>,
    /// Acting user's label.
    pub actor_label: String,
    /// Client IP.
    pub ip: Option<String>,
    /// Action, e.g. `person.read`.
    pub action: String,
    /// Object type.
    pub object_type: String,
    /// Object ID.
    pub object_id: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// This entry's chain hash.
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            actor_user_id: e.actor_user_id,
            actor_label: e.actor_label,
            ip: e.ip,
            action: e.action,
            object_type: e.object_type,
            object_id: e.object_id,
            detail: serde_json::from_str(&e.detail_json).unwrap_or(serde_json::Value::Null),
            hash: e.hash,
        }
    }
}

/// The tenant's audit log, newest first (cursor-paginated by `before`).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    security(("session" = ["read_audit"]), ("token" = ["read_audit"])),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(actor: Actor, state: web::Data<Deps>, q: Query<AuditQuery>) -> Result<HttpResponse> {
    actor.require(Permission::ReadAudit)?;
    let q = q.into_inner()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ControlError::invalid("limit", "must be between 1 and 500").into());
    }
    let t = actor.tenant_id.clone();
    let items = db::run(&state.pool, move |c| {
        audit::list(
            c,
            &t,
            q.before,
            limit,
            q.action.as_deref(),
            q.object_id.as_deref(),
        )
    })
    .await?;
    let next_before = if items.len() as i64 == limit {
        items.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(AuditPage {
        items: items.into_iter().map(Into::into).collect(),
        next_before,
    }))
}

/// OpenAPI paths of this module.
#[derive(OpenApi)]
#[openapi(paths(list))]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/audit", web::get().to(list));
}

//! The audit log: append-only and hash-chained. Every change and every read of personal data is
//! recorded with who (user and label), what (action, object), when and from where (client IP).
//!
//! The chain itself (hashing, verification, classification of a break) is
//! `likeness_control_domain::audit`: `hash = sha256(prev_hash || canonical JSON of the entry)`.
//! The one-row `audit_head`
//! table holds the last seq and hash and is updated in the same transaction, so [`verify`] finds an
//! edited, reordered or removed entry, the tail included.
//!
//! Write entries inside [`crate::db::write_tx`] (which takes the chain lock) with [`record`].

use diesel::prelude::*;
use likeness_control_domain::audit as chain;
use likeness_control_domain::canonical as chain_json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::Permission;
use crate::schema::{audit_head, audit_log};

pub use likeness_control_domain::audit::GENESIS_HASH;

/// Who did something, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    /// Tenant acted in (none for system-wide actions).
    pub tenant_id: Option<String>,
    /// The user (none for the system or the CLI).
    pub user_id: Option<String>,
    /// Human label: the user's e-mail, `token:<name>` or `cli`.
    pub label: String,
    /// Client IP address.
    pub ip: Option<String>,
}

impl Who {
    /// The system itself or the CLI, optionally within a tenant.
    pub fn system(label: &str, tenant_id: Option<&str>) -> Self {
        Self {
            tenant_id: tenant_id.map(str::to_string),
            user_id: None,
            label: label.to_string(),
            ip: None,
        }
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize, ToSchema)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    /// Position in the chain (1, 2, ...; no gaps).
    pub seq: i64,
    /// Tenant.
    pub tenant_id: Option<String>,
    /// When (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub at: chrono::NaiveDateTime,
    /// Acting user.
    pub actor_user_id: Option<String>,
    /// Acting user's label (e-mail, token name, `cli`).
    pub actor_label: String,
    /// Client IP.
    pub ip: Option<String>,
    /// What happened, `object.verb` (e.g. `person.read`, `person.update`).
    pub action: String,
    /// Kind of object (`person`, `user`, `asset`, ...).
    pub object_type: String,
    /// The object's ID.
    pub object_id: Option<String>,
    /// Details as canonical JSON (changed fields, filters of a list read, ...).
    pub detail_json: String,
    /// Previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// Canonical JSON (keys sorted, compact), as hashed by the chain.
pub fn canonical_json(v: &serde_json::Value) -> String {
    chain_json::to_canonical_string(v)
}

impl AuditEntry {
    /// The entry in the domain crate's chain form (`detail_json` parsed; unparsable text is
    /// kept as a string so that it fails verification instead of aborting it).
    pub fn to_chain(&self) -> chain::Entry {
        chain::Entry {
            seq: self.seq,
            content: chain::EntryContent {
                tenant_id: self.tenant_id.clone(),
                at: self.at,
                actor_user_id: self.actor_user_id.clone(),
                actor_label: self.actor_label.clone(),
                ip: self.ip.clone(),
                action: self.action.clone(),
                object_type: self.object_type.clone(),
                object_id: self.object_id.clone(),
                detail: serde_json::from_str(&self.detail_json)
                    .unwrap_or_else(|_| serde_json::Value::String(self.detail_json.clone())),
            },
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }
}

/// Takes the chain lock (the `audit_head` row) for the rest of the transaction.
pub fn lock_chain(conn: &mut DbConn) -> Result<()> {
    Ok(crate::db::lock_audit_chain(conn)?)
}

/// Appends one entry. Call inside [`crate::db::write_tx`]; `detail` is stored as canonical JSON.
pub fn record(
    conn: &mut DbConn,
    who: &Who,
    action: &str,
    object_type: &str,
    object_id: Option<&str>,
    detail: serde_json::Value,
) -> Result<i64> {
    let (head_seq, head_hash): (i64, String) = audit_head::table
        .filter(audit_head::id.eq(1))
        .select((audit_head::seq, audit_head::hash))
        .first(conn)?;
    let content = chain::EntryContent {
        tenant_id: who.tenant_id.clone(),
        at: chain::truncate_micros(crate::db::now()),
        actor_user_id: who.user_id.clone(),
        actor_label: who.label.clone(),
        ip: who.ip.clone(),
        action: action.to_string(),
        object_type: object_type.to_string(),
        object_id: object_id.map(str::to_string),
        detail,
    };
    let detail_json = canonical_json(&content.detail);
    let next = chain::next_entry(head_seq, &head_hash, content);
    let e = AuditEntry {
        seq: next.seq,
        tenant_id: next.content.tenant_id,
        at: next.content.at,
        actor_user_id: next.content.actor_user_id,
        actor_label: next.content.actor_label,
        ip: next.content.ip,
        action: next.content.action,
        object_type: next.content.object_type,
        object_id: next.content.object_id,
        detail_json,
        prev_hash: next.prev_hash,
        hash: next.hash,
    };
    diesel::insert_into(audit_log::table)
        .values(&e)
        .execute(conn)?;
    diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set((audit_head::seq.eq(e.seq), audit_head::hash.eq(&e.hash)))
        .execute(conn)?;
    Ok(e.seq)
}

/// Result of [`verify`]: entries checked, the last seq, and the first break if any.
pub type VerifyReport = chain::Report;

/// Walks the whole chain (in batches, ascending seq) and reports the first entry that was
/// edited, reordered or removed, comparing the end of the log with `audit_head` too.
pub fn verify(conn: &mut DbConn) -> Result<VerifyReport> {
    const BATCH: i64 = 5000;
    let head: Option<(i64, String)> = audit_head::table
        .filter(audit_head::id.eq(1))
        .select((audit_head::seq, audit_head::hash))
        .first(conn)
        .optional()?;
    let Some((head_seq, head_hash)) = head else {
        return Err(ControlError::AuditChain(
            "audit_head row missing: the database was not migrated or was tampered with".into(),
        ));
    };
    let mut failure: Option<ControlError> = None;
    let mut buf: std::collections::VecDeque<AuditEntry> = std::collections::VecDeque::new();
    let mut after = i64::MIN;
    let mut done = false;
    let entries = std::iter::from_fn(|| {
        if buf.is_empty() && !done {
            match audit_log::table
                .filter(audit_log::seq.gt(after))
                .order(audit_log::seq.asc())
                .limit(BATCH)
                .select(AuditEntry::as_select())
                .load(conn)
            {
                Ok(batch) => {
                    done = (batch.len() as i64) < BATCH;
                    if let Some(last) = batch.last() {
                        after = last.seq;
                    }
                    buf.extend(batch);
                }
                Err(e) => {
                    failure = Some(e.into());
                    done = true;
                }
            }
        }
        buf.pop_front().map(|e| e.to_chain())
    });
    let report = chain::verify(entries, Some((head_seq, head_hash.as_str())));
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// A page of the audit log of one tenant, newest first.
pub fn list(
    conn: &mut DbConn,
    tenant_id: &str,
    before_seq: Option<i64>,
    limit: i64,
    action: Option<&str>,
    object_id: Option<&str>,
) -> Result<Vec<AuditEntry>> {
    list_filtered(
        conn,
        tenant_id,
        before_seq,
        limit,
        action,
        object_id,
        &AuditFilter::default(),
    )
}

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

/// The tenant's audit log, newest first, cursor-paginated by `before` (`read_audit`).
pub async fn read_log(ctx: &Ctx, q: Result<AuditQuery>) -> Result<AuditPage> {
    search_log(ctx, q, AuditFilter::default()).await
}

/// Filters of the audit log beyond [`AuditQuery`]'s (the console's search form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries about objects of this type (`person`, `user`, ...).
    pub object_type: Option<String>,
    /// Only entries of this actor (their label: e-mail, `token:<name>`, `cli`).
    pub actor: Option<String>,
    /// Only entries at or after (UTC).
    pub from: Option<chrono::NaiveDateTime>,
    /// Only entries before (UTC).
    pub to: Option<chrono::NaiveDateTime>,
}

/// A page of the audit log of one tenant, newest first, with [`AuditFilter`]'s filters too.
#[allow(clippy::too_many_arguments)]
pub fn list_filtered(
    conn: &mut DbConn,
    tenant_id: &str,
    before_seq: Option<i64>,
    limit: i64,
    action: Option<&str>,
    object_id: Option<&str>,
    f: &AuditFilter,
) -> Result<Vec<AuditEntry>> {
    let mut q = audit_log::table
        .filter(audit_log::tenant_id.eq(tenant_id))
        .into_boxed();
    if let Some(b) = before_seq {
        q = q.filter(audit_log::seq.lt(b));
    }
    if let Some(a) = action {
        q = q.filter(audit_log::action.eq(a));
    }
    if let Some(o) = object_id {
        q = q.filter(audit_log::object_id.eq(o));
    }
    if let Some(t) = &f.object_type {
        q = q.filter(audit_log::object_type.eq(t));
    }
    if let Some(a) = &f.actor {
        q = q.filter(audit_log::actor_label.eq(a));
    }
    if let Some(t) = f.from {
        q = q.filter(audit_log::at.ge(t));
    }
    if let Some(t) = f.to {
        q = q.filter(audit_log::at.lt(t));
    }
    Ok(q.order(audit_log::seq.desc())
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)?)
}

/// The tenant's audit log like [`read_log`], also filtered by object type, actor and time
/// (`read_audit`).
pub async fn search_log(ctx: &Ctx, q: Result<AuditQuery>, f: AuditFilter) -> Result<AuditPage> {
    ctx.require(Permission::ReadAudit)?;
    let q = q?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ControlError::invalid("limit", "must be between 1 and 500"));
    }
    let t = ctx.tenant().to_string();
    let items = db::run(&ctx.deps.pool, move |c| {
        list_filtered(
            c,
            &t,
            q.before,
            limit,
            q.action.as_deref(),
            q.object_id.as_deref(),
            &f,
        )
    })
    .await?;
    let next_before = if items.len() as i64 == limit {
        items.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(AuditPage {
        items: items.into_iter().map(Into::into).collect(),
        next_before,
    })
}

/// Verifies the whole hash chain of the audit log (`read_audit`): entries checked, the last
/// seq, and where it first breaks, if it does. The chain is one for the whole database (every
/// tenant's entries are links of it), so the report counts all entries; it names no other
/// tenant's content.
pub async fn verify_chain(ctx: &Ctx) -> Result<VerifyReport> {
    ctx.require(Permission::ReadAudit)?;
    db::run(&ctx.deps.pool, verify).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_recursively() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn stored_rows_round_trip_to_the_chain() {
        let content = chain::EntryContent {
            tenant_id: Some("t".into()),
            at: chain::truncate_micros(crate::db::now()),
            actor_user_id: Some("u".into()),
            actor_label: "a@b".into(),
            ip: Some("127.0.0.1".into()),
            action: "person.read".into(),
            object_type: "person".into(),
            object_id: Some("p".into()),
            detail: serde_json::json!({"b": 1, "a": 2}),
        };
        let n = chain::next_entry(0, GENESIS_HASH, content.clone());
        let row = AuditEntry {
            seq: n.seq,
            tenant_id: content.tenant_id.clone(),
            at: content.at,
            actor_user_id: content.actor_user_id.clone(),
            actor_label: content.actor_label.clone(),
            ip: content.ip.clone(),
            action: content.action.clone(),
            object_type: content.object_type.clone(),
            object_id: content.object_id.clone(),
            detail_json: canonical_json(&content.detail),
            prev_hash: n.prev_hash.clone(),
            hash: n.hash.clone(),
        };
        assert!(chain::verify([row.to_chain()], Some((1, &n.hash))).ok());
        let mut edited = row.clone();
        edited.detail_json = r#"{"a":2,"b":3}"#.into();
        assert!(!chain::verify([edited.to_chain()], None).ok());
        let mut broken = row;
        broken.detail_json = "not json".into();
        assert!(!chain::verify([broken.to_chain()], None).ok());
    }
}

//! The audit log: append-only and hash-chained. Every change and every read of personal data is
//! recorded with who (user and label), what (action, object), when and from where (client IP).
//!
//! Each entry's `hash` is `sha256(canonical JSON of the entry's fields, prev_hash included)`;
//! `prev_hash` is the previous entry's hash (64 zeros for the first). The one-row `audit_head`
//! table holds the last seq and hash and is updated in the same transaction, so [`verify`] finds an
//! edited, reordered or removed entry, the tail included.
//!
//! Write entries inside [`crate::db::write_tx`] (which takes the chain lock) with [`record`].

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::db::DbConn;
use crate::error::{ControlError, Result};
use crate::schema::{audit_head, audit_log};

/// Hash before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// Canonical JSON: object keys sorted, no whitespace (serde_json's compact form).
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<&String, serde_json::Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                let mut out = serde_json::Map::new();
                for (k, v) in sorted {
                    out.insert(k.clone(), v);
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // A BTreeMap at the top level keeps keys sorted even with serde_json's preserve_order.
    match sort(v) {
        serde_json::Value::Object(m) => {
            let b: BTreeMap<String, serde_json::Value> = m.into_iter().collect();
            serde_json::to_string(&b).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

fn fmt_at(at: &chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The hash of an entry (every field but `hash` itself).
pub fn entry_hash(e: &AuditEntry) -> String {
    let mut m: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    m.insert("seq", e.seq.into());
    m.insert("tenant_id", e.tenant_id.clone().into());
    m.insert("at", fmt_at(&e.at).into());
    m.insert("actor_user_id", e.actor_user_id.clone().into());
    m.insert("actor_label", e.actor_label.clone().into());
    m.insert("ip", e.ip.clone().into());
    m.insert("action", e.action.clone().into());
    m.insert("object_type", e.object_type.clone().into());
    m.insert("object_id", e.object_id.clone().into());
    m.insert("detail_json", e.detail_json.clone().into());
    m.insert("prev_hash", e.prev_hash.clone().into());
    let canon = serde_json::to_string(&m).unwrap_or_default();
    hex::encode(Sha256::digest(canon.as_bytes()))
}

/// Takes the chain lock (the `audit_head` row) for the rest of the transaction.
pub fn lock_chain(conn: &mut DbConn) -> Result<()> {
    let n = diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set(audit_head::seq.eq(audit_head::seq))
        .execute(conn)?;
    if n != 1 {
        return Err(ControlError::AuditChain(
            "audit_head row missing: the database was not migrated or was tampered with".into(),
        ));
    }
    Ok(())
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
    let mut e = AuditEntry {
        seq: head_seq + 1,
        tenant_id: who.tenant_id.clone(),
        at: crate::db::now(),
        actor_user_id: who.user_id.clone(),
        actor_label: who.label.clone(),
        ip: who.ip.clone(),
        action: action.to_string(),
        object_type: object_type.to_string(),
        object_id: object_id.map(str::to_string),
        detail_json: canonical_json(&detail),
        prev_hash: head_hash,
        hash: String::new(),
    };
    e.hash = entry_hash(&e);
    diesel::insert_into(audit_log::table)
        .values(&e)
        .execute(conn)?;
    diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set((audit_head::seq.eq(e.seq), audit_head::hash.eq(&e.hash)))
        .execute(conn)?;
    Ok(e.seq)
}

/// Result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// The last seq of the log.
    pub last_seq: i64,
    /// Problems found (empty: the chain is intact).
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks the whole chain and reports every entry that was edited, reordered or removed.
pub fn verify(conn: &mut DbConn) -> Result<VerifyReport> {
    const BATCH: i64 = 2000;
    let mut report = VerifyReport {
        entries: 0,
        last_seq: 0,
        problems: Vec::new(),
    };
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut after = 0i64;
    loop {
        let batch: Vec<AuditEntry> = audit_log::table
            .filter(audit_log::seq.gt(after))
            .order(audit_log::seq.asc())
            .limit(BATCH)
            .select(AuditEntry::as_select())
            .load(conn)?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for e in &batch {
            report.entries += 1;
            if e.seq != expected_seq {
                report.problems.push(format!(
                    "entry {} follows entry {}: entries {}..{} were removed",
                    e.seq,
                    expected_seq - 1,
                    expected_seq,
                    e.seq - 1
                ));
            }
            if e.prev_hash != prev_hash {
                report.problems.push(format!(
                    "entry {}: prev_hash does not match the previous entry's hash (entries removed or reordered)",
                    e.seq
                ));
            }
            if entry_hash(e) != e.hash {
                report.problems.push(format!(
                    "entry {}: content does not match its hash (edited)",
                    e.seq
                ));
            }
            expected_seq = e.seq + 1;
            prev_hash = e.hash.clone();
            report.last_seq = e.seq;
        }
    }
    let head: Option<(i64, String)> = audit_head::table
        .filter(audit_head::id.eq(1))
        .select((audit_head::seq, audit_head::hash))
        .first(conn)
        .optional()?;
    match head {
        None => report
            .problems
            .push("audit_head row missing (removed)".to_string()),
        Some((seq, hash)) => {
            if seq != report.last_seq {
                report.problems.push(format!(
                    "the chain head says the last entry is {seq} but the log ends at {}: entries removed",
                    report.last_seq
                ));
            } else if hash != prev_hash {
                report.problems.push(format!(
                    "the chain head's hash does not match entry {seq} (edited or replaced)"
                ));
            }
        }
    }
    Ok(report)
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
    Ok(q.order(audit_log::seq.desc())
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)?)
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
    fn hash_covers_every_field() {
        let e = AuditEntry {
            seq: 1,
            tenant_id: Some("t".into()),
            at: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000)
                .unwrap()
                .naive_utc(),
            actor_user_id: Some("u".into()),
            actor_label: "a@b".into(),
            ip: Some("127.0.0.1".into()),
            action: "person.read".into(),
            object_type: "person".into(),
            object_id: Some("p".into()),
            detail_json: "{}".into(),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        let h = entry_hash(&e);
        assert_eq!(h.len(), 64);
        let mut edited = e.clone();
        edited.ip = Some("10.0.0.1".into());
        assert_ne!(entry_hash(&edited), h);
        let mut edited = e.clone();
        edited.at += chrono::TimeDelta::microseconds(1);
        assert_ne!(entry_hash(&edited), h);
        let mut edited = e;
        edited.seq = 2;
        assert_ne!(entry_hash(&edited), h);
    }
}

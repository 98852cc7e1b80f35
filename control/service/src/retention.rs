//! Retention, run by the scheduler's tick ([`tick`]), per tenant under its rights policy
//! ([`likeness_control_domain::rights::RightsSettings`]):
//!
//! - the documents (scans, PDFs) of an agreement that ended (withdrawn, or its last valid day
//!   passed) more than `document_retention_days` ago are deleted: their blobs, then in one
//!   transaction their rows, `agreements.documents_deleted_at` and the audit entry
//!   `agreement.documents_deleted` (a crash between the two leaves the rows: the next tick
//!   shreds the already-gone blobs again, a no-op, and commits);
//! - the sealed evidence records of an agreement that ended more than
//!   `evidence_retention_years` ago have their content deleted: the record is replaced by a
//!   tombstone holding only the chain fields (seq, previous hash, tenant, kind, agreement, key)
//!   and [`TOMBSTONE_KEY`], the receipt token is forgotten and `expires_on` set; the row's
//!   sha256 stays, so the tenant's evidence chain still verifies
//!   ([`crate::evidence::verify_chain`] accepts a tombstone in place of its record). Audited
//!   as `evidence.deleted`;
//! - expired access-export packages are deleted ([`crate::access_export::expire_exports`]).
//!
//! Everything is decided from the stored state at the clock's now, so a tick is idempotent and
//! a second process ticking the same database does nothing more.

use chrono::{Months, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use crate::Deps;
use crate::audit::{self, Who};
use crate::db::{self, DbConn};
use crate::error::Result;
use crate::schema::{agreement_documents, agreements, consent_evidence as ce, tenants};

/// The key a retention tombstone of an evidence record carries (the day it was deleted).
pub const TOMBSTONE_KEY: &str = "retention_deleted_on";

/// The audit label of the retention.
pub const ACTOR: &str = "system:retention";

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Agreements whose documents were deleted.
    pub agreements: usize,
    /// Documents deleted.
    pub documents: usize,
    /// Evidence records whose content was deleted.
    pub evidence: usize,
    /// Access-export packages expired.
    pub exports_expired: usize,
}

/// When an agreement ended: its withdrawal, or the end of its last valid day, whichever is
/// first; `None` while it has no end.
pub fn ended_at(
    withdrawn_at: Option<NaiveDateTime>,
    valid_until: Option<NaiveDate>,
) -> Option<NaiveDateTime> {
    let end = valid_until.map(crate::agreements::end_of_validity);
    match (withdrawn_at, end) {
        (Some(w), Some(e)) => Some(w.min(e)),
        (w, e) => w.or(e),
    }
}

/// Whether `record_json` is a retention tombstone.
pub fn is_tombstone(record: &serde_json::Value) -> bool {
    record.get(TOMBSTONE_KEY).is_some()
}

type Ended = (String, String, Option<NaiveDateTime>, Option<NaiveDate>);

/// The tenant's agreements that ended before `cutoff` (coarse filter in SQL, exact in Rust),
/// with `pending` limiting to those whose documents were not deleted yet.
fn ended_before(
    conn: &mut DbConn,
    tenant_id: &str,
    cutoff: NaiveDateTime,
    pending_documents: bool,
) -> Result<Vec<(String, String, NaiveDateTime)>> {
    let mut q = agreements::table
        .filter(agreements::tenant_id.eq(tenant_id))
        .filter(
            agreements::withdrawn_at
                .le(cutoff)
                .or(agreements::valid_until.lt(cutoff.date())),
        )
        .select((
            agreements::id,
            agreements::person_id,
            agreements::withdrawn_at,
            agreements::valid_until,
        ))
        .into_boxed();
    if pending_documents {
        q = q.filter(agreements::documents_deleted_at.is_null());
    }
    let rows: Vec<Ended> = q.load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, person, w, v)| {
            ended_at(w, v)
                .filter(|e| *e <= cutoff)
                .map(|e| (id, person, e))
        })
        .collect())
}

/// Deletes the documents of the tenant's agreements ended more than `days` before `now`.
async fn documents(
    deps: &Deps,
    tenant_id: &str,
    days: u32,
    now: NaiveDateTime,
) -> Result<(usize, usize)> {
    let cutoff = now - chrono::Duration::days(i64::from(days));
    let t = tenant_id.to_string();
    let due = db::run(&deps.pool, move |c| ended_before(c, &t, cutoff, true)).await?;
    let (mut agreements_done, mut docs_done) = (0usize, 0usize);
    for (agreement_id, person_id, ended) in due {
        let (t, a) = (tenant_id.to_string(), agreement_id.clone());
        let docs: Vec<(String, String)> = db::run(&deps.pool, move |c| {
            Ok(agreement_documents::table
                .filter(agreement_documents::tenant_id.eq(&t))
                .filter(agreement_documents::agreement_id.eq(&a))
                .select((agreement_documents::id, agreement_documents::blob_key))
                .load(c)?)
        })
        .await?;
        if !docs.is_empty() {
            // The blobs first: a crash after this leaves rows whose blobs are gone, and the
            // next tick finishes (shredding a missing blob is a no-op).
            let store = deps.media()?;
            let (t, keys) = (
                tenant_id.to_string(),
                docs.iter().map(|(_, k)| k.clone()).collect::<Vec<_>>(),
            );
            crate::blocking(move || -> Result<()> {
                for k in &keys {
                    store
                        .blobs
                        .shred(&t, k)
                        .map_err(crate::assets::media_error)?;
                }
                Ok(())
            })
            .await??;
        }
        let (t, a, n) = (tenant_id.to_string(), agreement_id.clone(), docs.len());
        let ids: Vec<String> = docs.into_iter().map(|(id, _)| id).collect();
        let changed = db::run(&deps.pool, move |c| {
            db::write_tx(c, |c| {
                // Decided again under the write lock: another process may have done it.
                let pending = agreements::table
                    .filter(agreements::tenant_id.eq(&t))
                    .filter(agreements::id.eq(&a))
                    .filter(agreements::documents_deleted_at.is_null())
                    .count()
                    .get_result::<i64>(c)?;
                if pending == 0 {
                    return Ok(false);
                }
                diesel::delete(
                    agreement_documents::table
                        .filter(agreement_documents::tenant_id.eq(&t))
                        .filter(agreement_documents::agreement_id.eq(&a))
                        .filter(agreement_documents::id.eq_any(&ids)),
                )
                .execute(c)?;
                diesel::update(
                    agreements::table
                        .filter(agreements::tenant_id.eq(&t))
                        .filter(agreements::id.eq(&a)),
                )
                .set(agreements::documents_deleted_at.eq(now))
                .execute(c)?;
                if n > 0 {
                    audit::record(
                        c,
                        &Who::system(ACTOR, Some(&t)),
                        "agreement.documents_deleted",
                        "agreement",
                        Some(&a),
                        serde_json::json!({
                            "person_id": person_id,
                            "documents": n,
                            "document_ids": ids,
                            "ended_at": likeness_control_domain::time::format_utc(&ended),
                            "document_retention_days": days,
                        }),
                    )?;
                }
                Ok(true)
            })
        })
        .await?;
        if changed {
            agreements_done += 1;
            docs_done += n;
        }
    }
    Ok((agreements_done, docs_done))
}

/// Replaces the content of the evidence records of the tenant's agreements ended more than
/// `years` before `now` by tombstones (see the module's documentation).
fn evidence(conn: &mut DbConn, tenant_id: &str, years: u32, now: NaiveDateTime) -> Result<usize> {
    let Some(cutoff) = now.checked_sub_months(Months::new(years.saturating_mul(12))) else {
        return Ok(0);
    };
    let due = ended_before(conn, tenant_id, cutoff, false)?;
    // Only agreements with a record not yet deleted (a tombstone has `expires_on`): no write
    // transaction for the ones done in earlier ticks.
    let mut pending = std::collections::HashSet::new();
    let ids: Vec<String> = due.iter().map(|(a, _, _)| a.clone()).collect();
    for chunk in ids.chunks(500) {
        let rows: Vec<String> = ce::table
            .filter(ce::tenant_id.eq(tenant_id))
            .filter(ce::agreement_id.eq_any(chunk))
            .filter(ce::expires_on.is_null())
            .select(ce::agreement_id)
            .distinct()
            .load(conn)?;
        pending.extend(rows);
    }
    let mut done = 0usize;
    for (agreement_id, person_id, ended) in due {
        if !pending.contains(&agreement_id) {
            continue;
        }
        let expires_on = ended
            .checked_add_months(Months::new(years.saturating_mul(12)))
            .unwrap_or(ended)
            .date();
        done += db::write_tx(conn, |c| {
            let rows: Vec<crate::evidence::EvidenceRow> = ce::table
                .filter(ce::tenant_id.eq(tenant_id))
                .filter(ce::agreement_id.eq(&agreement_id))
                .filter(ce::expires_on.is_null())
                .select(crate::evidence::EvidenceRow::as_select())
                .load(c)?;
            let mut seqs = Vec::new();
            for r in rows {
                let record: serde_json::Value =
                    serde_json::from_str(&r.record_json).unwrap_or(serde_json::Value::Null);
                if is_tombstone(&record) {
                    continue;
                }
                let tomb = serde_json::json!({
                    "seq": r.seq,
                    "prev_sha256": r.prev_sha256,
                    "tenant_id": r.tenant_id,
                    "kind": r.kind,
                    "agreement_id": r.agreement_id,
                    "key_id": r.key_id,
                    TOMBSTONE_KEY: now.date().to_string(),
                });
                diesel::update(ce::table.filter(ce::id.eq(&r.id)))
                    .set((
                        ce::record_json.eq(
                            likeness_control_domain::canonical::to_canonical_string(&tomb),
                        ),
                        ce::receipt_token_sha256.eq(None::<String>),
                        ce::expires_on.eq(Some(expires_on)),
                    ))
                    .execute(c)?;
                seqs.push(r.seq);
            }
            if !seqs.is_empty() {
                audit::record(
                    c,
                    &Who::system(ACTOR, Some(tenant_id)),
                    "evidence.deleted",
                    "agreement",
                    Some(&agreement_id),
                    serde_json::json!({
                        "person_id": person_id,
                        "records": seqs.len(),
                        "seqs": seqs,
                        "ended_at": likeness_control_domain::time::format_utc(&ended),
                        "evidence_retention_years": years,
                    }),
                )?;
            }
            Ok(seqs.len())
        })?;
    }
    Ok(done)
}

/// Applies the retention of one tenant at `now`.
pub async fn apply_tenant(
    deps: &Deps,
    tenant_id: &str,
    now: NaiveDateTime,
) -> Result<RetentionReport> {
    let t = tenant_id.to_string();
    let policy = db::run(&deps.pool, move |c| crate::rights_settings::get(c, &t)).await?;
    let (agreements_done, documents_done) =
        documents(deps, tenant_id, policy.document_retention_days, now).await?;
    let (t, years) = (tenant_id.to_string(), policy.evidence_retention_years);
    let evidence_done = db::run(&deps.pool, move |c| evidence(c, &t, years, now)).await?;
    Ok(RetentionReport {
        agreements: agreements_done,
        documents: documents_done,
        evidence: evidence_done,
        exports_expired: 0,
    })
}

/// One retention tick at the clock's now, over every tenant, then the expiry of access-export
/// packages. Called by the scheduler ([`crate::scheduler::spawn`]).
pub async fn tick(deps: &Deps) -> Result<RetentionReport> {
    let now = deps.clock.now();
    let tenant_ids: Vec<String> = db::run(&deps.pool, |c| {
        Ok(tenants::table
            .select(tenants::id)
            .order(tenants::id)
            .load(c)?)
    })
    .await?;
    let mut report = RetentionReport::default();
    for t in tenant_ids {
        let r = apply_tenant(deps, &t, now).await?;
        report.agreements += r.agreements;
        report.documents += r.documents;
        report.evidence += r.evidence;
    }
    report.exports_expired = crate::access_export::expire_exports(deps, now).await?;
    Ok(report)
}

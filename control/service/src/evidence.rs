//! (SIGNING) Sealed evidence: each signature or withdrawal becomes a record in canonical JSON,
//! its sha256 chained to the tenant's previous record, signed with the control plane's Ed25519
//! key ([`EvidenceSigner`]). Receipts carry record, hash, signature and key id, and verify
//! offline against the published public keys.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Deps;
use crate::db::DbConn;
use crate::error::{ControlError, Result};

/// The key that seals evidence (from `signing.key_file`).
pub struct EvidenceSigner {
    _private: (),
}

impl EvidenceSigner {
    /// Opens (or creates) the key of `cfg`.
    pub fn open(cfg: &crate::config::SigningConfig) -> Result<Self> {
        let _ = cfg;
        Err(ControlError::Internal(
            "EvidenceSigner::open: not built yet".into(),
        ))
    }
}

/// What a record is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A consent given (signed).
    Signature,
    /// A consent withdrawn.
    Withdrawal,
}

/// A sealed record, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Evidence ID.
    pub id: String,
    /// Position in the tenant's chain (from 1).
    pub seq: i64,
    /// The record (canonical JSON).
    pub record_json: String,
    /// Its sha256 (hex).
    pub record_sha256: String,
    /// Ed25519 signature (base64).
    pub signature: String,
    /// The signing key's id.
    pub key_id: String,
    /// The receipt link's token (only known right after sealing; stored hashed).
    pub receipt_token: Option<String>,
}

/// Seals `record` (its `seq` and `prev_sha256` are added here) in the caller's transaction.
/// With `with_receipt_token`, a receipt token is made and its hash stored.
#[allow(clippy::too_many_arguments)]
pub fn seal(
    conn: &mut DbConn,
    deps: &Deps,
    tenant_id: &str,
    kind: EvidenceKind,
    agreement_id: &str,
    request_id: Option<&str>,
    record: serde_json::Value,
    with_receipt_token: bool,
    now: NaiveDateTime,
) -> Result<Sealed> {
    let _ = (
        conn,
        deps,
        tenant_id,
        kind,
        agreement_id,
        request_id,
        record,
        with_receipt_token,
        now,
    );
    Err(ControlError::Internal(
        "evidence::seal: not built yet".into(),
    ))
}

//! (SIGNING) Sealed evidence: each signature or withdrawal becomes a record in canonical JSON,
//! its sha256 chained to the tenant's previous record, signed with the control plane's Ed25519
//! key ([`EvidenceSigner`]). Receipts carry record, hash, signature and key id, and verify
//! offline against the published public keys (the format and the verification are
//! `likeness_control_domain::evidence`).
//!
//! [`seal`] adds to the caller's record: `seq` (1, 2, .. per tenant), `prev_sha256` (the
//! previous record's sha256, 64 zeros for the first), `kind`, `sealed_at` (RFC 3339 UTC),
//! `key_id`, `tenant_id`, `agreement_id` and `request_id` (when given); these overwrite keys of
//! the same name.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use likeness_control_domain::evidence as domain;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

pub use likeness_control_domain::evidence::{PublicKey, Receipt, VerifyError};

use crate::Deps;
use crate::db::DbConn;
use crate::error::{ControlError, Result};
use crate::schema::{consent_evidence as ce, signing_keys as sk};

/// The key that seals evidence (from `signing.key_file`): an Ed25519 key whose 32-byte seed is
/// kept hex-encoded in the file. Other secrets (e.g. the one-time codes' HMAC key) are derived
/// from the seed ([`EvidenceSigner::derive_key`]).
pub struct EvidenceSigner {
    key: SigningKey,
    key_id: String,
    path: PathBuf,
}

impl std::fmt::Debug for EvidenceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceSigner")
            .field("key_id", &self.key_id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn key_file_error(path: &Path, message: impl std::fmt::Display) -> ControlError {
    ControlError::Config(format!("signing.key_file {}: {message}", path.display()))
}

fn parse_seed(path: &Path, text: &str) -> Result<[u8; 32]> {
    let t = text.trim();
    let bytes = hex::decode(t).map_err(|_| {
        key_file_error(
            path,
            "not a key: expected 64 hex digits (a 32-byte Ed25519 seed)",
        )
    })?;
    bytes.as_slice().try_into().map_err(|_| {
        key_file_error(
            path,
            format!(
                "not a key: expected 64 hex digits (a 32-byte Ed25519 seed), found {} bytes",
                bytes.len()
            ),
        )
    })
}

/// Writes a new random seed to `path` (mode 0600, parent folders made); `Ok(None)` when the
/// file appeared meanwhile (another process made it first).
fn create_key_file(path: &Path) -> Result<Option<[u8; 32]>> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| key_file_error(path, format!("cannot create its folder: {e}")))?;
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| ControlError::Internal(format!("random: {e}")))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(key_file_error(path, format!("cannot create: {e}"))),
    };
    f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| key_file_error(path, format!("cannot write: {e}")))?;
    tracing::info!(path = %path.display(), "created a new evidence signing key");
    Ok(Some(seed))
}

impl EvidenceSigner {
    /// Opens the key of `cfg` (`signing.key_file`), creating it when missing (32 random bytes,
    /// hex, mode 0600, parent folders made). A file that is not 64 hex digits is refused with
    /// an error naming the file.
    pub fn open(cfg: &crate::config::SigningConfig) -> Result<Self> {
        Self::open_path(&cfg.key_file)
    }

    /// Opens (or creates) the key file at `path`; see [`EvidenceSigner::open`].
    pub fn open_path(path: &Path) -> Result<Self> {
        let seed = match std::fs::read_to_string(path) {
            Ok(text) => parse_seed(path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create_key_file(path)? {
                Some(seed) => seed,
                None => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| key_file_error(path, format!("cannot read: {e}")))?;
                    parse_seed(path, &text)?
                }
            },
            Err(e) => return Err(key_file_error(path, format!("cannot read: {e}"))),
        };
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the evidence signing key is readable by others than its owner (chmod 600 it)");
            }
        }
        Ok(Self::from_seed(seed, path.to_path_buf()))
    }

    /// A signer over a given seed (tests; `path` is only shown in messages).
    pub fn from_seed(seed: [u8; 32], path: PathBuf) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let key_id = domain::key_id(&key.verifying_key().to_bytes());
        Self { key, key_id, path }
    }

    /// The key's id: the first 16 hex digits of the sha256 of the public key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The 32-byte public key, base64.
    pub fn public_key_base64(&self) -> String {
        domain::public_key_of(&self.key).public_key
    }

    /// The public key in its published form.
    pub fn public_key(&self) -> PublicKey {
        domain::public_key_of(&self.key)
    }

    /// A secret derived from the seed for one `purpose` (e.g. `otp`): HMAC-SHA256 keyed with
    /// the seed over `likeness:<purpose>`. Different purposes give unrelated keys.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let seed = self.key.to_bytes();
        // HMAC accepts keys of any length: this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&seed) else {
            return [0u8; 32];
        };
        mac.update(b"likeness:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Hashes and signs a record (its canonical JSON).
    pub fn seal_record(&self, record: &serde_json::Value) -> domain::SealedRecord {
        domain::seal_record(record, &self.key)
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

impl EvidenceKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Withdrawal => "withdrawal",
        }
    }
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

/// A stored evidence row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = ce)]
pub struct EvidenceRow {
    /// Evidence ID.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Position in the tenant's chain.
    pub seq: i64,
    /// `signature` or `withdrawal`.
    pub kind: String,
    /// The agreement it is evidence of.
    pub agreement_id: String,
    /// The signing request, if any.
    pub request_id: Option<String>,
    /// The record (canonical JSON).
    pub record_json: String,
    /// Its sha256 (hex).
    pub record_sha256: String,
    /// The previous record's sha256.
    pub prev_sha256: String,
    /// Ed25519 signature (base64).
    pub signature: String,
    /// The signing key's id.
    pub key_id: String,
    /// sha256 (hex) of the receipt token, if one was made.
    pub receipt_token_sha256: Option<String>,
    /// Sealed (UTC).
    pub created_at: NaiveDateTime,
}

/// sha256 (hex) of a receipt token, as stored.
pub fn receipt_token_sha256(token: &str) -> String {
    domain::sha256_hex(token.as_bytes())
}

fn new_receipt_token() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ControlError::Internal(format!("random: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// Stores the public half of the signer's key unless known already.
fn publish_key(conn: &mut DbConn, signer: &EvidenceSigner, now: NaiveDateTime) -> Result<()> {
    let known: i64 = sk::table
        .filter(sk::key_id.eq(signer.key_id()))
        .count()
        .get_result(conn)?;
    if known == 0 {
        diesel::insert_into(sk::table)
            .values((
                sk::key_id.eq(signer.key_id()),
                sk::algorithm.eq(domain::ALGORITHM),
                sk::public_key.eq(signer.public_key_base64()),
                sk::first_used_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Seals `record` (a JSON object; see the module's documentation for the keys added here) in
/// the caller's transaction, with `deps`' signer. With `with_receipt_token`, a receipt token
/// (32 random bytes, base64url) is made and its hash stored.
///
/// Two seals of one tenant cannot take the same `seq`: this takes the audit chain's lock
/// first (the row every write transaction updates), which serialises them on both backends;
/// the unique `(tenant_id, seq)` index is the last guard.
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
    let signer = deps.signer()?;
    seal_with(
        conn,
        &signer,
        tenant_id,
        kind,
        agreement_id,
        request_id,
        record,
        with_receipt_token,
        now,
    )
}

/// [`seal`] with a given signer.
#[allow(clippy::too_many_arguments)]
pub fn seal_with(
    conn: &mut DbConn,
    signer: &EvidenceSigner,
    tenant_id: &str,
    kind: EvidenceKind,
    agreement_id: &str,
    request_id: Option<&str>,
    record: serde_json::Value,
    with_receipt_token: bool,
    now: NaiveDateTime,
) -> Result<Sealed> {
    let serde_json::Value::Object(mut map) = record else {
        return Err(ControlError::Internal(
            "evidence::seal: the record must be a JSON object".into(),
        ));
    };
    crate::audit::lock_chain(conn)?;
    let last: Option<(i64, String)> = ce::table
        .filter(ce::tenant_id.eq(tenant_id))
        .order(ce::seq.desc())
        .select((ce::seq, ce::record_sha256))
        .first(conn)
        .optional()?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, domain::GENESIS_SHA256.to_string()),
    };
    use serde_json::json;
    map.insert("seq".into(), json!(seq));
    map.insert("prev_sha256".into(), json!(prev));
    map.insert("kind".into(), json!(kind.as_str()));
    map.insert(
        "sealed_at".into(),
        json!(likeness_control_domain::time::format_utc(&now)),
    );
    map.insert("key_id".into(), json!(signer.key_id()));
    map.insert("tenant_id".into(), json!(tenant_id));
    map.insert("agreement_id".into(), json!(agreement_id));
    if let Some(r) = request_id {
        map.insert("request_id".into(), json!(r));
    }
    let record = serde_json::Value::Object(map);
    let sealed = signer.seal_record(&record);
    publish_key(conn, signer, now)?;
    let receipt_token = if with_receipt_token {
        Some(new_receipt_token()?)
    } else {
        None
    };
    let id = crate::db::new_id();
    diesel::insert_into(ce::table)
        .values((
            ce::id.eq(&id),
            ce::tenant_id.eq(tenant_id),
            ce::seq.eq(seq),
            ce::kind.eq(kind.as_str()),
            ce::agreement_id.eq(agreement_id),
            ce::request_id.eq(request_id),
            ce::record_json.eq(&sealed.canonical),
            ce::record_sha256.eq(&sealed.sha256),
            ce::prev_sha256.eq(&prev),
            ce::signature.eq(&sealed.signature),
            ce::key_id.eq(signer.key_id()),
            ce::receipt_token_sha256.eq(receipt_token.as_deref().map(receipt_token_sha256)),
            ce::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(Sealed {
        id,
        seq,
        record_json: sealed.canonical,
        record_sha256: sealed.sha256,
        signature: sealed.signature,
        key_id: signer.key_id().to_string(),
        receipt_token,
    })
}

fn row_receipt(r: &EvidenceRow) -> Result<Receipt> {
    let record: serde_json::Value = serde_json::from_str(&r.record_json).map_err(|e| {
        ControlError::Internal(format!("consent_evidence {}: record_json: {e}", r.id))
    })?;
    Ok(domain::receipt(
        record,
        &r.record_sha256,
        &r.signature,
        &r.key_id,
    ))
}

/// One evidence row of the tenant.
pub fn load(conn: &mut DbConn, tenant_id: &str, evidence_id: &str) -> Result<EvidenceRow> {
    ce::table
        .filter(ce::tenant_id.eq(tenant_id))
        .filter(ce::id.eq(evidence_id))
        .select(EvidenceRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("evidence"))
}

/// The receipt of evidence `evidence_id`
/// (`{"format":"likeness-receipt/1","record":{..},"record_sha256","signature","key_id"}`).
pub fn receipt_of(conn: &mut DbConn, tenant_id: &str, evidence_id: &str) -> Result<Receipt> {
    row_receipt(&load(conn, tenant_id, evidence_id)?)
}

/// The evidence whose receipt token is `token`, with its tenant. An unknown (or malformed)
/// token answers 404 `receipt`.
pub fn find_by_receipt_token(conn: &mut DbConn, token: &str) -> Result<(String, EvidenceRow)> {
    let t = token.trim();
    if t.is_empty() || t.len() > 128 {
        return Err(ControlError::not_found("receipt"));
    }
    let row = ce::table
        .filter(ce::receipt_token_sha256.eq(receipt_token_sha256(t)))
        .select(EvidenceRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("receipt"))?;
    Ok((row.tenant_id.clone(), row))
}

/// A key ever used to seal evidence (as published).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct KeyOut {
    /// Key id (first 16 hex digits of the sha256 of the public key).
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key (base64).
    pub public_key: String,
    /// First used (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub first_used_at: NaiveDateTime,
}

/// The published keys: every key that ever sealed evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct KeysOut {
    /// The keys, oldest first.
    pub keys: Vec<KeyOut>,
}

/// Every key that ever sealed evidence (any tenant), oldest first.
pub fn keys(conn: &mut DbConn) -> Result<Vec<KeyOut>> {
    let rows: Vec<(String, String, String, NaiveDateTime)> = sk::table
        .order((sk::first_used_at.asc(), sk::key_id.asc()))
        .select((sk::key_id, sk::algorithm, sk::public_key, sk::first_used_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(key_id, algorithm, public_key, first_used_at)| KeyOut {
            key_id,
            algorithm,
            public_key,
            first_used_at,
        })
        .collect())
}

fn public_keys(conn: &mut DbConn) -> Result<Vec<PublicKey>> {
    Ok(keys(conn)?
        .into_iter()
        .map(|k| PublicKey {
            key_id: k.key_id,
            algorithm: k.algorithm,
            public_key: k.public_key,
        })
        .collect())
}

/// The first broken link of a tenant's evidence chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainBreak {
    /// The record's seq.
    pub seq: i64,
    /// Its id.
    pub evidence_id: String,
    /// What is wrong.
    pub reason: String,
}

/// The result of [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainReport {
    /// Records checked.
    pub checked: u64,
    /// The last seq checked.
    pub last_seq: i64,
    /// The first broken record, if any.
    pub first_broken: Option<ChainBreak>,
}

impl ChainReport {
    /// Whether the chain is intact.
    pub fn ok(&self) -> bool {
        self.first_broken.is_none()
    }
}

fn check_row(r: &EvidenceRow, expected_seq: i64, prev: &str, keys: &[PublicKey]) -> Option<String> {
    if r.seq != expected_seq {
        return Some(format!(
            "seq {} where {expected_seq} was expected (a record is missing)",
            r.seq
        ));
    }
    if r.prev_sha256 != prev {
        return Some(format!(
            "prev_sha256 {} is not the previous record's sha256 {prev}",
            r.prev_sha256
        ));
    }
    let record: serde_json::Value = match serde_json::from_str(&r.record_json) {
        Ok(v) => v,
        Err(e) => return Some(format!("record_json is not JSON: {e}")),
    };
    if likeness_control_domain::canonical::to_canonical_string(&record) != r.record_json {
        return Some("record_json is not in canonical form".into());
    }
    let field_ok = |k: &str, v: serde_json::Value| record.get(k) == Some(&v);
    if !field_ok("seq", serde_json::json!(r.seq))
        || !field_ok("prev_sha256", serde_json::json!(r.prev_sha256))
        || !field_ok("tenant_id", serde_json::json!(r.tenant_id))
        || !field_ok("kind", serde_json::json!(r.kind))
        || !field_ok("agreement_id", serde_json::json!(r.agreement_id))
        || !field_ok("key_id", serde_json::json!(r.key_id))
    {
        return Some(
            "the record's seq, prev_sha256, tenant, kind, agreement or key differ from its row"
                .into(),
        );
    }
    if crate::retention::is_tombstone(&record) {
        // Its content was deleted by retention; the row's sha256 still links the chain.
        return None;
    }
    domain::verify_record(&record, &r.record_sha256, &r.signature, &r.key_id, keys)
        .err()
        .map(|e| e.to_string())
}

/// Walks a tenant's evidence chain in seq order: each record's canonical form, sha256 and
/// signature (against the stored public keys), its seq (1, 2, .. no gaps) and its link to the
/// previous record's sha256. Reports the first broken record.
pub fn verify_chain(conn: &mut DbConn, tenant_id: &str) -> Result<ChainReport> {
    let keys = public_keys(conn)?;
    let mut report = ChainReport {
        checked: 0,
        last_seq: 0,
        first_broken: None,
    };
    let mut prev = domain::GENESIS_SHA256.to_string();
    let mut after = 0i64;
    loop {
        let batch: Vec<EvidenceRow> = ce::table
            .filter(ce::tenant_id.eq(tenant_id))
            .filter(ce::seq.gt(after))
            .order(ce::seq.asc())
            .limit(500)
            .select(EvidenceRow::as_select())
            .load(conn)?;
        if batch.is_empty() {
            return Ok(report);
        }
        for r in batch {
            let expected = report.last_seq + 1;
            if let Some(reason) = check_row(&r, expected, &prev, &keys) {
                report.first_broken = Some(ChainBreak {
                    seq: r.seq,
                    evidence_id: r.id,
                    reason,
                });
                return Ok(report);
            }
            report.checked += 1;
            report.last_seq = r.seq;
            after = r.seq;
            prev = r.record_sha256;
        }
    }
}

/// Verifies a receipt against the keys stored here (see
/// `likeness_control_domain::evidence::verify_receipt`).
pub fn verify_receipt(
    conn: &mut DbConn,
    receipt: &Receipt,
) -> Result<std::result::Result<(), VerifyError>> {
    let keys = public_keys(conn)?;
    Ok(domain::verify_receipt(receipt, &keys))
}

/// The receipt as a PDF (A4) with labels in `language` (`en`, `sv`, `nl`; others: English),
/// without links; see [`receipt_pdf_with_links`].
pub fn receipt_pdf(receipt: &Receipt, language: &str) -> Result<Vec<u8>> {
    crate::receipt_pdf::render(receipt, language, &crate::receipt_pdf::Links::default())
}

/// The receipt as a PDF with the line where its keys are published
/// (`<public_base_url>/api/v1/evidence/keys`) and the withdrawal link.
pub fn receipt_pdf_with_links(
    receipt: &Receipt,
    language: &str,
    public_base_url: &str,
    withdraw_url: Option<&str>,
) -> Result<Vec<u8>> {
    let links = crate::receipt_pdf::Links {
        keys_url: Some(format!(
            "{}/api/v1/evidence/keys",
            public_base_url.trim_end_matches('/')
        )),
        withdraw_url: withdraw_url.map(str::to_string),
    };
    crate::receipt_pdf::render(receipt, language, &links)
}

// Use cases.

/// Every key that ever sealed evidence (public: no permission needed).
pub async fn published_keys(deps: &Deps) -> Result<KeysOut> {
    crate::db::run(&deps.pool, |c| Ok(KeysOut { keys: keys(c)? })).await
}

/// Verifies a receipt against the published keys (public). A receipt that does not verify
/// counts against `client_ip` like an unknown link (`[signing]` `max_unknown_tokens_per_ip`);
/// past the limit the check is refused (429 `too_many_unknown_links`) before any lookup.
pub async fn check_receipt(
    deps: &Deps,
    receipt: Receipt,
    client_ip: Option<&str>,
) -> Result<std::result::Result<(), VerifyError>> {
    let cfg = &deps.config.signing;
    deps.public_throttle.check(
        client_ip,
        deps.clock.now(),
        cfg.max_unknown_tokens_per_ip,
        cfg.unknown_token_window_secs,
    )?;
    let out = crate::db::run(&deps.pool, move |c| verify_receipt(c, &receipt)).await?;
    if out.is_err() {
        deps.public_throttle.missed(client_ip, deps.clock.now());
    }
    Ok(out)
}

/// Walks the tenant's evidence chain (`read_audit`); see
/// [`verify_chain`].
pub async fn verify_evidence_chain(ctx: &crate::Ctx) -> Result<ChainReport> {
    ctx.require(crate::roles::Permission::ReadAudit)?;
    let t = ctx.tenant().to_string();
    crate::db::run(&ctx.deps.pool, move |c| verify_chain(c, &t)).await
}

/// Fetches published keys from a URL (`http(s)://.../api/v1/evidence/keys`) or reads them from
/// a file (the same JSON, or a bare array of keys).
pub async fn load_keys(source: &str) -> Result<Vec<PublicKey>> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        let resp = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ControlError::Internal(format!("http client: {e}")))?
            .get(source)
            .send()
            .await
            .map_err(|e| ControlError::invalid("keys", format!("cannot fetch {source}: {e}")))?;
        if !resp.status().is_success() {
            return Err(ControlError::invalid(
                "keys",
                format!("{source} answered {}", resp.status()),
            ));
        }
        resp.text()
            .await
            .map_err(|e| ControlError::invalid("keys", format!("cannot read {source}: {e}")))?
    } else {
        std::fs::read_to_string(source)
            .map_err(|e| ControlError::invalid("keys", format!("cannot read {source}: {e}")))?
    };
    domain::parse_keys(&text).map_err(|e| ControlError::invalid("keys", e.to_string()))
}

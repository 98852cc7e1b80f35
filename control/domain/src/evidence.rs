//! Sealed evidence of consent: the receipt format and its offline verification.
//!
//! A record is a JSON object (what was signed or withdrawn, when, by whom, with which key). Its
//! *canonical bytes* are the UTF-8 of its canonical JSON ([`crate::canonical`]: keys sorted by
//! their bytes, no whitespace). `record_sha256` is the lowercase hex sha256 of those bytes, and
//! `signature` is the Ed25519 signature of those same bytes (standard base64, padded). A key's
//! `key_id` is the first 16 hex digits of the sha256 of its 32-byte public key.
//!
//! A receipt is
//! `{"format":"likeness-receipt/1","record":{..},"record_sha256":"<hex>","signature":"<base64>","key_id":"<16 hex>"}`.
//! [`verify_receipt`] recomputes the canonical bytes from `record`, compares their sha256, and
//! checks the signature with the published key of `key_id`: changing any byte of the record's
//! content fails it. Records chain per tenant: each holds its `seq` and the previous record's
//! sha256 (`prev_sha256`, [`GENESIS_SHA256`] for the first).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The receipt format's name and version.
pub const RECEIPT_FORMAT: &str = "likeness-receipt/1";

/// The only signature algorithm.
pub const ALGORITHM: &str = "ed25519";

/// `prev_sha256` of a tenant's first record.
pub const GENESIS_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A receipt: the record, its sha256, the signature and the key's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// Always `likeness-receipt/1`.
    pub format: String,
    /// The sealed record (its canonical JSON is what is hashed and signed).
    #[schema(value_type = Object)]
    pub record: Value,
    /// sha256 (lowercase hex) of the record's canonical JSON.
    pub record_sha256: String,
    /// Ed25519 signature of the record's canonical JSON (base64).
    pub signature: String,
    /// The signing key's id (first 16 hex digits of the sha256 of the public key).
    pub key_id: String,
}

/// A published public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublicKey {
    /// Key id (first 16 hex digits of the sha256 of the public key).
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key (base64).
    pub public_key: String,
}

/// Why a receipt or a record does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a receipt of this format (names what is wrong).
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// No published key has the receipt's key id.
    #[error("unknown key {0}: not among the published keys")]
    UnknownKey(String),
    /// A published key is unusable (not 32 bytes of base64, or its id does not match it).
    #[error("bad public key {key_id}: {message}")]
    BadKey {
        /// The key's id.
        key_id: String,
        /// What is wrong with it.
        message: String,
    },
    /// The record's canonical JSON does not hash to `record_sha256`: the record was changed.
    #[error("hash mismatch: the record hashes to {actual}, the receipt says {expected}")]
    HashMismatch {
        /// `record_sha256` as stated.
        expected: String,
        /// The sha256 of the record as it is.
        actual: String,
    },
    /// The signature is not the key's signature of the record.
    #[error("bad signature: not a signature of this record by key {0}")]
    BadSignature(String),
}

impl VerifyError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "receipt_malformed",
            Self::UnknownKey(_) => "unknown_key",
            Self::BadKey { .. } => "bad_public_key",
            Self::HashMismatch { .. } => "hash_mismatch",
            Self::BadSignature(_) => "bad_signature",
        }
    }
}

/// The canonical bytes of a record (what is hashed and signed).
pub fn canonical_bytes(record: &Value) -> Vec<u8> {
    crate::canonical::to_canonical_string(record).into_bytes()
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The id of a public key: the first 16 hex digits of the sha256 of its 32 bytes.
pub fn key_id(public_key: &[u8; 32]) -> String {
    let mut h = sha256_hex(public_key);
    h.truncate(16);
    h
}

/// The published form of the public half of `key`.
pub fn public_key_of(key: &SigningKey) -> PublicKey {
    let pk = key.verifying_key().to_bytes();
    PublicKey {
        key_id: key_id(&pk),
        algorithm: ALGORITHM.to_string(),
        public_key: STANDARD.encode(pk),
    }
}

/// A record sealed by [`seal_record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// The canonical JSON of the record.
    pub canonical: String,
    /// Its sha256 (hex).
    pub sha256: String,
    /// Ed25519 signature of the canonical bytes (base64).
    pub signature: String,
}

/// Hashes and signs `record` with `key`.
pub fn seal_record(record: &Value, key: &SigningKey) -> SealedRecord {
    let canonical = crate::canonical::to_canonical_string(record);
    let sha256 = sha256_hex(canonical.as_bytes());
    let signature = STANDARD.encode(key.sign(canonical.as_bytes()).to_bytes());
    SealedRecord {
        canonical,
        sha256,
        signature,
    }
}

/// The receipt of a sealed record.
pub fn receipt(record: Value, record_sha256: &str, signature: &str, key_id: &str) -> Receipt {
    Receipt {
        format: RECEIPT_FORMAT.to_string(),
        record,
        record_sha256: record_sha256.to_string(),
        signature: signature.to_string(),
        key_id: key_id.to_string(),
    }
}

fn verifying_key(k: &PublicKey) -> Result<VerifyingKey, VerifyError> {
    let bad = |message: String| VerifyError::BadKey {
        key_id: k.key_id.clone(),
        message,
    };
    if !k.algorithm.eq_ignore_ascii_case(ALGORITHM) {
        return Err(bad(format!("algorithm {:?} is not ed25519", k.algorithm)));
    }
    let bytes = STANDARD
        .decode(k.public_key.trim())
        .map_err(|e| bad(format!("public_key is not base64: {e}")))?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| bad(format!("public_key has {} bytes, not 32", bytes.len())))?;
    if key_id(&arr) != k.key_id {
        return Err(bad("key_id does not match the public key".into()));
    }
    VerifyingKey::from_bytes(&arr).map_err(|e| bad(format!("not an Ed25519 public key: {e}")))
}

/// Verifies a record given as its stated sha256 and signature against `keys`: recomputes the
/// canonical bytes and their sha256, then checks the signature with the key of `key_id`.
pub fn verify_record(
    record: &Value,
    record_sha256: &str,
    signature: &str,
    key_id: &str,
    keys: &[PublicKey],
) -> Result<(), VerifyError> {
    if !record.is_object() {
        return Err(VerifyError::Malformed("record is not a JSON object".into()));
    }
    let key = keys
        .iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| VerifyError::UnknownKey(key_id.to_string()))?;
    let vk = verifying_key(key)?;
    let bytes = canonical_bytes(record);
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(record_sha256.trim()) {
        return Err(VerifyError::HashMismatch {
            expected: record_sha256.to_string(),
            actual,
        });
    }
    let sig_bytes = STANDARD
        .decode(signature.trim())
        .map_err(|e| VerifyError::Malformed(format!("signature is not base64: {e}")))?;
    let sig = Signature::from_slice(&sig_bytes).map_err(|_| {
        VerifyError::Malformed(format!("signature has {} bytes, not 64", sig_bytes.len()))
    })?;
    vk.verify(&bytes, &sig)
        .map_err(|_| VerifyError::BadSignature(key_id.to_string()))
}

/// Verifies a receipt against the published `keys` (see the module's documentation). The
/// record's own `key_id`, when present, must be the receipt's.
pub fn verify_receipt(receipt: &Receipt, keys: &[PublicKey]) -> Result<(), VerifyError> {
    if receipt.format != RECEIPT_FORMAT {
        return Err(VerifyError::Malformed(format!(
            "format is {:?}, expected {RECEIPT_FORMAT:?}",
            receipt.format
        )));
    }
    if let Some(k) = receipt.record.get("key_id")
        && k.as_str() != Some(receipt.key_id.as_str())
    {
        return Err(VerifyError::Malformed(format!(
            "the record's key_id {k} is not the receipt's {:?}",
            receipt.key_id
        )));
    }
    verify_record(
        &receipt.record,
        &receipt.record_sha256,
        &receipt.signature,
        &receipt.key_id,
        keys,
    )
}

/// Parses a receipt from JSON text, naming what is wrong.
pub fn parse_receipt(text: &str) -> Result<Receipt, VerifyError> {
    serde_json::from_str(text).map_err(|e| VerifyError::Malformed(e.to_string()))
}

/// Parses published keys: the answer of `GET /api/v1/evidence/keys` (`{"keys":[..]}`), or a
/// bare array of keys.
pub fn parse_keys(text: &str) -> Result<Vec<PublicKey>, VerifyError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| VerifyError::Malformed(format!("keys: {e}")))?;
    let list = match v {
        Value::Object(mut m) => m
            .remove("keys")
            .ok_or_else(|| VerifyError::Malformed("keys: no \"keys\" array".into()))?,
        other => other,
    };
    serde_json::from_value(list).map_err(|e| VerifyError::Malformed(format!("keys: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sample() -> (Receipt, Vec<PublicKey>) {
        let k = key(7);
        let pk = public_key_of(&k);
        let record = json!({
            "seq": 1, "prev_sha256": GENESIS_SHA256, "key_id": pk.key_id,
            "scopes_accepted": ["web", "print"], "signer": {"name": "Åsa Öberg"}
        });
        let s = seal_record(&record, &k);
        (
            receipt(record, &s.sha256, &s.signature, &pk.key_id),
            vec![pk],
        )
    }

    #[test]
    fn a_receipt_verifies_and_survives_a_json_round_trip() {
        let (r, keys) = sample();
        assert_eq!(verify_receipt(&r, &keys), Ok(()));
        let text = serde_json::to_string_pretty(&r).unwrap();
        let back = parse_receipt(&text).unwrap();
        assert_eq!(verify_receipt(&back, &keys), Ok(()));
        let keys_text = serde_json::to_string(&json!({ "keys": keys })).unwrap();
        assert_eq!(parse_keys(&keys_text).unwrap(), keys);
    }

    #[test]
    fn any_change_fails() {
        let (r, keys) = sample();
        let mut t = r.clone();
        t.record["scopes_accepted"][1] = json!("social");
        assert_eq!(
            verify_receipt(&t, &keys).unwrap_err().code(),
            "hash_mismatch"
        );
        let mut t = r.clone();
        t.record["signer"]["name"] = json!("Åsa Öberh");
        assert_eq!(
            verify_receipt(&t, &keys).unwrap_err().code(),
            "hash_mismatch"
        );
        // Record and hash changed together: the signature no longer matches.
        let mut t = r.clone();
        t.record["seq"] = json!(2);
        t.record_sha256 = sha256_hex(&canonical_bytes(&t.record));
        assert_eq!(
            verify_receipt(&t, &keys).unwrap_err().code(),
            "bad_signature"
        );
        let mut t = r.clone();
        t.key_id = "0000000000000000".into();
        t.record["key_id"] = json!("0000000000000000");
        assert_eq!(verify_receipt(&t, &keys).unwrap_err().code(), "unknown_key");
        let mut t = r.clone();
        t.format = "x".into();
        assert_eq!(
            verify_receipt(&t, &keys).unwrap_err().code(),
            "receipt_malformed"
        );
        // Another key under the right id.
        let mut other = public_key_of(&key(8));
        other.key_id = keys[0].key_id.clone();
        assert_eq!(
            verify_receipt(&r, &[other]).unwrap_err().code(),
            "bad_public_key"
        );
    }
}

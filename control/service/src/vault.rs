//! The vault: a person's personal data sealed under a key of that person (crypto-shredding).
//!
//! Every person has a random 256-bit key, created with the person. It is kept in the blob store
//! (`storage.dir`) as the blob `pkey-<person id>` of the tenant, which the blob store encrypts
//! under the tenant's data key (itself wrapped by the master key): the key is never in the
//! database. What the database holds about a person's identity — the register fields
//! ([`Personal`] in `persons.sealed`), the destinations and bodies of messages about them,
//! signing requests' destinations — and their agreements' documents in the blob store are
//! sealed under that key (AES-256-GCM, the tenant, the person and the purpose in the associated
//! data). Erasure destroys the key ([`Vault::destroy_person_key`]): every copy of those
//! ciphertexts, in database backups, WAL segments or replicas, can no longer be read.
//!
//! A person stays findable by e-mail or phone through keyed hashes
//! ([`Vault::email_index`], [`Vault::phone_index`]: HMAC-SHA256 under a per-tenant index key,
//! also kept in the blob store), which without that key say nothing about the address.
//!
//! Keys are cached in the process once read. A person erased by another process keeps its key
//! in this process's cache until it restarts; that does not bring anything back, since the
//! erasure also removed every ciphertext from the live database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDate;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use likeness_control_db::DbConn;
use likeness_control_db::schema::persons;
use likeness_control_media::{BlobStore, MediaError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{ControlError, Result};

/// Prefix of a sealed text (version 1).
const TEXT_PREFIX: &str = "pv1:";
/// Magic of sealed bytes (version 1).
const BYTES_MAGIC: &[u8; 4] = b"LPV1";
const NONCE_LEN: usize = 12;
/// The blob that holds the tenant's index key.
const INDEX_KEY_BLOB: &str = "index-key-v1";
/// Keys kept in memory before the cache is emptied (a bound, not a working-set size).
const CACHE_MAX: usize = 200_000;

/// The personal fields of a person: everything that identifies them in the register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Personal {
    /// Full name.
    pub name: String,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number (E.164).
    #[serde(default)]
    pub phone: Option<String>,
    /// Date of birth.
    #[serde(default)]
    pub date_of_birth: Option<NaiveDate>,
    /// Guardian's name (a guardian who is not in the register).
    #[serde(default)]
    pub guardian_name: Option<String>,
    /// Guardian's e-mail or phone.
    #[serde(default)]
    pub guardian_contact: Option<String>,
    /// The tenant's custom fields (a JSON object).
    #[serde(default)]
    pub custom_fields: serde_json::Value,
}

/// Seals and opens personal data under per-person keys kept in the blob store.
pub struct Vault {
    blobs: Arc<crate::assets::Media>,
    keys: Mutex<HashMap<(String, String), Arc<Aes256Gcm>>>,
    index_keys: Mutex<HashMap<String, Arc<Zeroizing<Vec<u8>>>>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

fn key_blob(person: &str) -> String {
    format!("pkey-{person}")
}

fn erased(_person: &str) -> ControlError {
    ControlError::Gone {
        code: "person_erased",
        message: "this person was erased: their personal data can no longer be read".into(),
    }
}

fn media_err(e: MediaError) -> ControlError {
    crate::assets::media_error(e)
}

fn aad(tenant: &str, person: &str, purpose: &str) -> Vec<u8> {
    format!("likeness person data v1\0{tenant}\0{person}\0{purpose}").into_bytes()
}

impl Vault {
    /// A vault over the process's blob store.
    pub fn new(media: Arc<crate::assets::Media>) -> Self {
        Self {
            blobs: media,
            keys: Mutex::new(HashMap::new()),
            index_keys: Mutex::new(HashMap::new()),
        }
    }

    fn store(&self) -> &BlobStore {
        &self.blobs.blobs
    }

    /// The person's key; created when `create` and absent (two processes racing get the
    /// same key: the blob is created only if absent, then read back).
    fn key(&self, tenant: &str, person: &str, create: bool) -> Result<Arc<Aes256Gcm>> {
        let id = (tenant.to_owned(), person.to_owned());
        if let Ok(keys) = self.keys.lock()
            && let Some(k) = keys.get(&id)
        {
            return Ok(Arc::clone(k));
        }
        let blob = key_blob(person);
        let raw = match self.store().get(tenant, &blob) {
            Ok(raw) => Zeroizing::new(raw),
            Err(MediaError::BlobNotFound { .. }) if create => {
                let mut fresh = Zeroizing::new([0u8; 32]);
                likeness_control_media::blob::random_bytes(&mut fresh[..]).map_err(media_err)?;
                self.store()
                    .put_if_absent(tenant, &blob, &fresh[..])
                    .map_err(media_err)?;
                Zeroizing::new(self.store().get(tenant, &blob).map_err(media_err)?)
            }
            Err(MediaError::BlobNotFound { .. }) => return Err(erased(person)),
            Err(e) => return Err(media_err(e)),
        };
        if raw.len() != 32 {
            return Err(ControlError::Internal(format!(
                "the key of person {person} is not 32 bytes"
            )));
        }
        let cipher = Arc::new(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&raw[..])));
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= CACHE_MAX {
                keys.clear();
            }
            keys.insert(id, Arc::clone(&cipher));
        }
        Ok(cipher)
    }

    fn seal_raw(&self, tenant: &str, person: &str, purpose: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let cipher = self.key(tenant, person, true)?;
        let mut nonce = [0u8; NONCE_LEN];
        likeness_control_media::blob::random_bytes(&mut nonce).map_err(media_err)?;
        let aad = aad(tenant, person, purpose);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| ControlError::Internal("sealing personal data failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open_raw(
        &self,
        tenant: &str,
        person: &str,
        purpose: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(ControlError::Internal(format!(
                "sealed data of person {person} is truncated"
            )));
        }
        let cipher = self.key(tenant, person, false)?;
        let aad = aad(tenant, person, purpose);
        cipher
            .decrypt(
                Nonce::from_slice(&sealed[..NONCE_LEN]),
                Payload {
                    msg: &sealed[NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| {
                ControlError::Internal(format!(
                    "sealed data of person {person} does not open under their key (tampered or moved)"
                ))
            })
    }

    /// Seals a person's register fields (stored in `persons.sealed`).
    pub fn seal_personal(&self, tenant: &str, person: &str, p: &Personal) -> Result<String> {
        let json = serde_json::to_vec(p)
            .map_err(|e| ControlError::Internal(format!("personal fields: {e}")))?;
        let json = Zeroizing::new(json);
        Ok(format!(
            "{TEXT_PREFIX}{}",
            B64.encode(self.seal_raw(tenant, person, "personal", &json)?)
        ))
    }

    /// Opens what [`Vault::seal_personal`] sealed; `person_erased` (410) once the key is gone.
    pub fn open_personal(&self, tenant: &str, person: &str, sealed: &str) -> Result<Personal> {
        let raw = Self::decode_text(person, sealed)?;
        let plain = Zeroizing::new(self.open_raw(tenant, person, "personal", &raw)?);
        serde_json::from_slice(&plain)
            .map_err(|e| ControlError::Internal(format!("personal fields of {person}: {e}")))
    }

    fn decode_text(person: &str, sealed: &str) -> Result<Vec<u8>> {
        let body = sealed.strip_prefix(TEXT_PREFIX).ok_or_else(|| {
            ControlError::Internal(format!(
                "sealed data of person {person} has no version prefix"
            ))
        })?;
        B64.decode(body).map_err(|e| {
            ControlError::Internal(format!("sealed data of person {person} is not base64: {e}"))
        })
    }

    /// Seals a text about a person (a message's destination or body, a signing request's
    /// destination): `pv1:` + base64.
    pub fn seal_text(&self, tenant: &str, person: &str, text: &str) -> Result<String> {
        Ok(format!(
            "{TEXT_PREFIX}{}",
            B64.encode(self.seal_raw(tenant, person, "text", text.as_bytes())?)
        ))
    }

    /// Opens what [`Vault::seal_text`] sealed.
    pub fn open_text(&self, tenant: &str, person: &str, sealed: &str) -> Result<String> {
        let raw = Self::decode_text(person, sealed)?;
        String::from_utf8(self.open_raw(tenant, person, "text", &raw)?)
            .map_err(|_| ControlError::Internal(format!("sealed text of {person} is not UTF-8")))
    }

    /// Whether a stored text is sealed (`pv1:`), as opposed to plain text written before the
    /// vault existed.
    pub fn is_sealed_text(stored: &str) -> bool {
        stored.starts_with(TEXT_PREFIX)
    }

    /// Seals bytes about a person (an agreement's document): `LPV1` + nonce + ciphertext.
    pub fn seal_bytes(&self, tenant: &str, person: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut out = BYTES_MAGIC.to_vec();
        out.extend_from_slice(&self.seal_raw(tenant, person, "bytes", bytes)?);
        Ok(out)
    }

    /// Opens what [`Vault::seal_bytes`] sealed.
    pub fn open_bytes(&self, tenant: &str, person: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        let body = sealed.strip_prefix(&BYTES_MAGIC[..]).ok_or_else(|| {
            ControlError::Internal(format!("sealed bytes of person {person} have no magic"))
        })?;
        self.open_raw(tenant, person, "bytes", body)
    }

    /// Whether bytes are sealed by [`Vault::seal_bytes`].
    pub fn is_sealed_bytes(stored: &[u8]) -> bool {
        stored.starts_with(&BYTES_MAGIC[..])
    }

    fn index_key(&self, tenant: &str) -> Result<Arc<Zeroizing<Vec<u8>>>> {
        if let Ok(keys) = self.index_keys.lock()
            && let Some(k) = keys.get(tenant)
        {
            return Ok(Arc::clone(k));
        }
        let raw = match self.store().get(tenant, INDEX_KEY_BLOB) {
            Ok(raw) => raw,
            Err(MediaError::BlobNotFound { .. }) => {
                let mut fresh = Zeroizing::new([0u8; 32]);
                likeness_control_media::blob::random_bytes(&mut fresh[..]).map_err(media_err)?;
                self.store()
                    .put_if_absent(tenant, INDEX_KEY_BLOB, &fresh[..])
                    .map_err(media_err)?;
                self.store()
                    .get(tenant, INDEX_KEY_BLOB)
                    .map_err(media_err)?
            }
            Err(e) => return Err(media_err(e)),
        };
        let key = Arc::new(Zeroizing::new(raw));
        if let Ok(mut keys) = self.index_keys.lock() {
            keys.insert(tenant.to_owned(), Arc::clone(&key));
        }
        Ok(key)
    }

    fn index(&self, tenant: &str, kind: &str, normalised: &str) -> Result<String> {
        let key = self.index_key(tenant)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key[..])
            .map_err(|e| ControlError::Internal(format!("index key: {e}")))?;
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(normalised.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// The keyed hash of an e-mail address (trimmed, lower-cased).
    pub fn email_index(&self, tenant: &str, email: &str) -> Result<String> {
        self.index(tenant, "email", &email.trim().to_lowercase())
    }

    /// The keyed hash of a phone number (its digits and a leading `+` only).
    pub fn phone_index(&self, tenant: &str, phone: &str) -> Result<String> {
        let t = phone.trim();
        let mut n: String = t.chars().filter(char::is_ascii_digit).collect();
        if t.starts_with('+') {
            n.insert(0, '+');
        }
        self.index(tenant, "phone", &n)
    }

    /// Makes sure the person has a key (creating it): call when registering a person, so that
    /// a later failure to create it cannot leave sealed data without a key.
    pub fn ensure_person_key(&self, tenant: &str, person: &str) -> Result<()> {
        self.key(tenant, person, true).map(|_| ())
    }

    /// Whether the person still has a key.
    pub fn has_person_key(&self, tenant: &str, person: &str) -> Result<bool> {
        self.store()
            .exists(tenant, &key_blob(person))
            .map_err(media_err)
    }

    /// Destroys the person's key (idempotent; `Ok(false)` when it was already gone): every
    /// ciphertext sealed under it, wherever a copy of it is, can no longer be opened.
    pub fn destroy_person_key(&self, tenant: &str, person: &str) -> Result<bool> {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(&(tenant.to_owned(), person.to_owned()));
        }
        self.store()
            .shred(tenant, &key_blob(person))
            .map_err(media_err)
    }
}

/// The personal fields of a person row (`None`: erased, or nothing sealed).
pub fn personal_of(
    conn: &mut DbConn,
    vault: &Vault,
    tenant: &str,
    person: &str,
) -> Result<Option<Personal>> {
    let sealed: Option<Option<String>> = persons::table
        .filter(persons::tenant_id.eq(tenant))
        .filter(persons::id.eq(person))
        .select(persons::sealed)
        .first(conn)
        .optional()?;
    match sealed.flatten() {
        None => Ok(None),
        Some(s) => match vault.open_personal(tenant, person, &s) {
            Ok(p) => Ok(Some(p)),
            Err(ControlError::Gone { .. }) => Ok(None),
            Err(e) => Err(e),
        },
    }
}

/// The personal fields of several persons of a tenant: id -> fields (erased persons, unknown
/// ids and rows without sealed data are absent).
pub fn personal_many(
    conn: &mut DbConn,
    vault: &Vault,
    tenant: &str,
    ids: &[String],
) -> Result<HashMap<String, Personal>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, Option<String>)> = persons::table
            .filter(persons::tenant_id.eq(tenant))
            .filter(persons::id.eq_any(chunk))
            .select((persons::id, persons::sealed))
            .load(conn)?;
        for (id, sealed) in rows {
            let Some(s) = sealed else { continue };
            match vault.open_personal(tenant, &id, &s) {
                Ok(p) => {
                    out.insert(id, p);
                }
                Err(ControlError::Gone { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

impl crate::Deps {
    /// The vault over this process's blob store (opened with it on first use).
    pub fn vault(&self) -> Result<Arc<Vault>> {
        if let Some(v) = self.vault.get() {
            return Ok(Arc::clone(v));
        }
        let fresh = Arc::new(Vault::new(self.media()?));
        let v = Arc::clone(self.vault.get_or_init(|| fresh));
        register(&v);
        Ok(v)
    }
}

/// The vaults opened in this process (one per [`crate::Deps`]; one in production), for code
/// deep inside a transaction that is handed a connection but no `Deps` (the compliance facts
/// of a refresh, a message queued by a signing step).
static OPENED: Mutex<Vec<std::sync::Weak<Vault>>> = Mutex::new(Vec::new());

fn register(v: &Arc<Vault>) {
    if let Ok(mut all) = OPENED.lock() {
        all.retain(|w| w.strong_count() > 0);
        if !all.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(v))) {
            all.push(Arc::downgrade(v));
        }
    }
}

/// The vault of this process that holds `person`'s key (with one vault open, that one). Errs
/// when no vault was opened in this process (`Deps::vault` opens and registers it).
pub fn ambient(tenant: &str, person: &str) -> Result<Arc<Vault>> {
    let live: Vec<Arc<Vault>> = OPENED
        .lock()
        .map(|all| all.iter().filter_map(std::sync::Weak::upgrade).collect())
        .unwrap_or_default();
    match live.len() {
        0 => Err(ControlError::Internal(
            "no vault is open in this process (Deps::vault)".into(),
        )),
        1 => Ok(Arc::clone(&live[0])),
        _ => {
            for v in &live {
                let cached = v
                    .keys
                    .lock()
                    .map(|k| k.contains_key(&(tenant.to_owned(), person.to_owned())))
                    .unwrap_or(false);
                if cached || v.has_person_key(tenant, person).unwrap_or(false) {
                    return Ok(Arc::clone(v));
                }
            }
            Ok(Arc::clone(&live[0]))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use likeness_control_media::MasterKey;

    fn vault(dir: &std::path::Path) -> Vault {
        let blobs = BlobStore::open(dir, MasterKey::random().unwrap()).unwrap();
        Vault::new(Arc::new(crate::assets::Media {
            blobs,
            limits: Default::default(),
            matcher: None,
        }))
    }

    #[test]
    fn seals_opens_and_shreds() {
        let tmp = tempfile::tempdir().unwrap();
        let v = vault(tmp.path());
        let p = Personal {
            name: "Ada Lovelace".into(),
            email: Some("ada@example.org".into()),
            ..Personal::default()
        };
        let sealed = v.seal_personal("t1", "p1", &p).unwrap();
        assert!(!sealed.contains("Ada"));
        assert_eq!(v.open_personal("t1", "p1", &sealed).unwrap(), p);
        // Another person's key does not open it (the person is in the associated data).
        v.ensure_person_key("t1", "p2").unwrap();
        assert!(v.open_personal("t1", "p2", &sealed).is_err());
        let text = v.seal_text("t1", "p1", "+46701234567").unwrap();
        assert_eq!(v.open_text("t1", "p1", &text).unwrap(), "+46701234567");
        let bytes = v.seal_bytes("t1", "p1", b"%PDF-1.7 scan").unwrap();
        assert!(Vault::is_sealed_bytes(&bytes));
        assert_eq!(v.open_bytes("t1", "p1", &bytes).unwrap(), b"%PDF-1.7 scan");
        // Indexes: stable, normalised, keyed per tenant.
        assert_eq!(
            v.email_index("t1", " ADA@example.org").unwrap(),
            v.email_index("t1", "ada@example.org").unwrap()
        );
        assert_ne!(
            v.email_index("t1", "ada@example.org").unwrap(),
            v.email_index("t2", "ada@example.org").unwrap()
        );
        assert_eq!(
            v.phone_index("t1", "+46 70-123 45 67").unwrap(),
            v.phone_index("t1", "+46701234567").unwrap()
        );
        // Destroyed: nothing opens, in this process or a fresh one over the same store.
        assert!(v.destroy_person_key("t1", "p1").unwrap());
        assert!(!v.destroy_person_key("t1", "p1").unwrap());
        for err in [
            v.open_personal("t1", "p1", &sealed).err(),
            v.open_text("t1", "p1", &text).err(),
            v.open_bytes("t1", "p1", &bytes).err(),
        ] {
            match err {
                Some(ControlError::Gone { code, .. }) => assert_eq!(code, "person_erased"),
                other => panic!("{other:?}"),
            }
        }
        assert!(!v.has_person_key("t1", "p1").unwrap());
        assert!(v.has_person_key("t1", "p2").unwrap());
    }
}

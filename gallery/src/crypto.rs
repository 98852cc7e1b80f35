//! Encryption at rest: AES-256-GCM. Every gallery file carries its own fresh data key,
//! wrapped (AES-256-GCM) by the master key with the tenant id as associated data; nonces under
//! a fresh data key are counters. Rewriting a file (compaction, erasure) therefore also
//! rotates its key: remnants of an old file left in free disk blocks stay unreadable.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::error::{GalleryError, Result};

/// Length of a wrapped data key: nonce (12) + key (32) + tag (16).
pub const WRAPPED_LEN: usize = 12 + 32 + 16;

/// The master key (32 bytes), from configuration: the shared [`likeness_common::MasterKey`]
/// (parsing, key files, generation; zeroized, never printed) with the gallery's cipher
/// operations on top.
#[derive(Clone, Debug)]
pub struct MasterKey(likeness_common::MasterKey);

impl From<likeness_common::MasterKey> for MasterKey {
    fn from(k: likeness_common::MasterKey) -> Self {
        Self(k)
    }
}

impl MasterKey {
    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self> {
        Ok(Self(likeness_common::MasterKey::from_hex(s)?))
    }

    /// A random key (tests, `generate-key`).
    pub fn random() -> Result<Self> {
        Ok(Self(likeness_common::MasterKey::random()?))
    }

    /// Hex form.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_bytes()))
    }

    /// Wraps a data key; `aad` binds it to its tenant and file.
    pub fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<[u8; WRAPPED_LEN]> {
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce)?;
        let ct = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &dek.0[..],
                    aad,
                },
            )
            .map_err(|_| GalleryError::MasterKey("encryption failed".into()))?;
        let mut out = [0u8; WRAPPED_LEN];
        out[..12].copy_from_slice(&nonce);
        out[12..].copy_from_slice(&ct);
        Ok(out)
    }

    /// Unwraps a data key; `None` when the master key (or the aad) does not match.
    pub fn unwrap_key(&self, wrapped: &[u8], aad: &[u8]) -> Option<DataKey> {
        if wrapped.len() != WRAPPED_LEN {
            return None;
        }
        let pt = self
            .cipher()
            .decrypt(
                Nonce::from_slice(&wrapped[..12]),
                Payload {
                    msg: &wrapped[12..],
                    aad,
                },
            )
            .ok()?;
        let arr: [u8; 32] = pt.as_slice().try_into().ok()?;
        Some(DataKey(Zeroizing::new(arr)))
    }

    /// Seals a small value with a random nonce (the key check file).
    pub fn seal(&self, msg: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce)?;
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher()
                .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
                .map_err(|_| GalleryError::MasterKey("encryption failed".into()))?,
        );
        Ok(out)
    }

    /// Opens a value sealed by [`MasterKey::seal`].
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 12 {
            return None;
        }
        self.cipher()
            .decrypt(
                Nonce::from_slice(&sealed[..12]),
                Payload {
                    msg: &sealed[12..],
                    aad,
                },
            )
            .ok()
    }
}

/// A per-file data key.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random key.
    pub fn random() -> Result<Self> {
        let mut k = [0u8; 32];
        random_bytes(&mut k)?;
        Ok(Self(Zeroizing::new(k)))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0[..]))
    }

    /// Encrypts with the counter nonce `n` (unique per key).
    pub fn seal(&self, n: u64, msg: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.cipher()
            .encrypt(Nonce::from_slice(&counter_nonce(n)), Payload { msg, aad })
            .map_err(|_| GalleryError::MasterKey("encryption failed".into()))
    }

    /// Decrypts; `None` if authentication fails.
    pub fn open(&self, n: u64, ct: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.cipher()
            .decrypt(
                Nonce::from_slice(&counter_nonce(n)),
                Payload { msg: ct, aad },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

fn counter_nonce(n: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_be_bytes());
    nonce
}

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| GalleryError::MasterKey(format!("no randomness: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trips_and_wrong_key_or_aad_fails() {
        let m = MasterKey::random().unwrap();
        let other = MasterKey::random().unwrap();
        let dek = DataKey::random().unwrap();
        let w = m.wrap(&dek, b"t1").unwrap();
        let back = m.unwrap_key(&w, b"t1").unwrap();
        let ct = dek.seal(7, b"hello", b"x").unwrap();
        assert_eq!(&back.open(7, &ct, b"x").unwrap()[..], b"hello");
        assert!(back.open(8, &ct, b"x").is_none());
        assert!(other.unwrap_key(&w, b"t1").is_none());
        assert!(m.unwrap_key(&w, b"t2").is_none());
        assert!(MasterKey::from_hex("abcd").is_err());
        assert_eq!(
            MasterKey::from_hex(&m.to_hex()).unwrap().to_hex(),
            m.to_hex()
        );
    }
}

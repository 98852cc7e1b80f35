//! Encrypted blob store.
//!
//! Layout under the root directory:
//! - `master.check`: a known value sealed with the master key, so a wrong key is reported at
//!   start-up rather than as corrupt blobs;
//! - `<tenant>/tenant.key`: the tenant's random 256-bit data key, wrapped (AES-256-GCM) by the
//!   master key with the tenant id in the associated data;
//! - `<tenant>/<xx>/<blob id>`: one blob, `LKB1` + 12-byte random nonce + AES-256-GCM
//!   ciphertext and tag, with the tenant and blob id in the associated data (a blob copied to
//!   another name or tenant does not decrypt). `xx` is the last two characters of the id.
//!
//! Writes go to a temporary file that is fsynced, renamed into place, and the directory is
//! fsynced: a blob is either complete or absent. Erasure removes the file and fsyncs the
//! directory; erasing a tenant removes its key with it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::error::{MediaError, Result};

const BLOB_MAGIC: &[u8; 4] = b"LKB1";
const KEY_MAGIC: &[u8; 4] = b"LKK1";
const CHECK_MAGIC: &[u8; 4] = b"LKC1";
const CHECK_VALUE: &[u8] = b"likeness-control blob store master key check";
const NONCE_LEN: usize = 12;

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| MediaError::Random(e.to_string()))
}

/// A fresh random blob id: 32 lowercase hex characters (128 bits).
pub fn new_blob_id() -> Result<String> {
    let mut b = [0u8; 16];
    random_bytes(&mut b)?;
    Ok(hex::encode(b))
}

/// The master key (32 bytes) that wraps the tenants' data keys: the shared
/// [`likeness_common::MasterKey`] (parsing, key files, generation; zeroized, never printed)
/// with the blob store's cipher on top.
#[derive(Clone, Debug)]
pub struct MasterKey(likeness_common::MasterKey);

impl From<likeness_common::MasterKey> for MasterKey {
    fn from(k: likeness_common::MasterKey) -> Self {
        Self(k)
    }
}

impl MasterKey {
    /// Parses 64 hex characters (surrounding white space is ignored).
    pub fn from_hex(s: &str) -> Result<Self> {
        Ok(likeness_common::MasterKey::from_hex(s)?.into())
    }

    /// Reads a key file holding the key as 64 hex characters.
    pub fn from_file(path: &Path) -> Result<Self> {
        Ok(likeness_common::MasterKey::from_file(path)?.into())
    }

    /// The key from configuration: exactly one of a hex string or a key file.
    pub fn from_config(hex_key: Option<&str>, key_file: Option<&Path>) -> Result<Self> {
        Ok(likeness_common::MasterKey::from_config(hex_key, key_file)?.into())
    }

    /// A random key (tests, key generation).
    pub fn random() -> Result<Self> {
        Ok(likeness_common::MasterKey::random()?.into())
    }

    /// Hex form (for `generate-key` style output).
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_bytes()))
    }
}

fn seal(cipher: &Aes256Gcm, magic: &[u8; 4], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        .map_err(|_| MediaError::Random("AES-GCM encryption failed".into()))?;
    let mut out = Vec::with_capacity(4 + NONCE_LEN + ct.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// `None` if the header is wrong; `Some(None)` if authentication fails.
fn open(cipher: &Aes256Gcm, magic: &[u8; 4], sealed: &[u8], aad: &[u8]) -> Option<Option<Vec<u8>>> {
    if sealed.len() < 4 + NONCE_LEN + 16 || &sealed[..4] != magic {
        return None;
    }
    let nonce = Nonce::from_slice(&sealed[4..4 + NONCE_LEN]);
    Some(
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[4 + NONCE_LEN..],
                    aad,
                },
            )
            .ok(),
    )
}

/// Checks that an id is a safe file name: the common safe-id rule (1-64 characters of
/// `[A-Za-z0-9_-]`), and at least 2 characters for a blob id (its shard directory).
fn check_id(what: &'static str, s: &str) -> Result<()> {
    let bad = |why| MediaError::InvalidId {
        what,
        value: s.to_owned(),
        why,
    };
    likeness_common::ids::check_safe_id(s).map_err(|e| bad(e.rule()))?;
    if s.len() < 2 && what == "blob id" {
        return Err(bad("must be at least 2 characters"));
    }
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| MediaError::io(dir, e))
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, directory fsync.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| MediaError::io(path, std::io::Error::other("path has no parent")))?;
    let mut suffix = [0u8; 8];
    random_bytes(&mut suffix)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| MediaError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| MediaError::io(&tmp, e))?;
        f.sync_all().map_err(|e| MediaError::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| MediaError::io(path, e))?;
        fsync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// The encrypted blob store.
pub struct BlobStore {
    root: PathBuf,
    master: MasterKey,
    keys: Mutex<HashMap<String, Arc<Aes256Gcm>>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Opens (creating if needed) the store at `root`. Fails with
    /// [`MediaError::WrongMasterKey`] when the store was created with another master key.
    pub fn open(root: impl Into<PathBuf>, master: MasterKey) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| MediaError::io(&root, e))?;
        let check = root.join("master.check");
        match fs::read(&check) {
            Ok(sealed) => match open(&master.cipher(), CHECK_MAGIC, &sealed, b"check") {
                None => {
                    return Err(MediaError::CorruptBlob(
                        check,
                        "not a master key check file".into(),
                    ));
                }
                Some(None) => {
                    return Err(MediaError::WrongMasterKey(format!(
                        "the blob store at {}",
                        root.display()
                    )));
                }
                Some(Some(v)) if v != CHECK_VALUE => {
                    return Err(MediaError::CorruptBlob(check, "unexpected content".into()));
                }
                Some(Some(_)) => {}
            },
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let sealed = seal(&master.cipher(), CHECK_MAGIC, CHECK_VALUE, b"check")?;
                create_if_absent(&check, &sealed)?;
                // Another process may have won the race with a different key: verify.
                return Self::open(root, master);
            }
            Err(e) => return Err(MediaError::io(&check, e)),
        }
        Ok(Self {
            root,
            master,
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tenant_dir(&self, tenant: &str) -> Result<PathBuf> {
        check_id("tenant id", tenant)?;
        Ok(self.root.join(tenant))
    }

    fn blob_path(&self, tenant: &str, blob: &str) -> Result<PathBuf> {
        check_id("blob id", blob)?;
        let dir = self.tenant_dir(tenant)?;
        let shard = &blob[blob.len() - 2..];
        Ok(dir.join(shard).join(blob))
    }

    fn key_aad(tenant: &str) -> Vec<u8> {
        format!("likeness-control tenant key v1\0{tenant}").into_bytes()
    }

    fn blob_aad(tenant: &str, blob: &str) -> Vec<u8> {
        format!("likeness-control blob v1\0{tenant}\0{blob}").into_bytes()
    }

    /// The tenant's data key, created on first use.
    fn tenant_cipher(&self, tenant: &str, create: bool) -> Result<Option<Arc<Aes256Gcm>>> {
        let mut keys = self
            .keys
            .lock()
            .map_err(|_| MediaError::Random("key cache lock poisoned".into()))?;
        if let Some(c) = keys.get(tenant) {
            return Ok(Some(c.clone()));
        }
        let dir = self.tenant_dir(tenant)?;
        let path = dir.join("tenant.key");
        let aad = Self::key_aad(tenant);
        let wrapped = match fs::read(&path) {
            Ok(w) => w,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                fs::create_dir_all(&dir).map_err(|e| MediaError::io(&dir, e))?;
                let mut dek = Zeroizing::new([0u8; 32]);
                random_bytes(&mut dek[..])?;
                let sealed = seal(&self.master.cipher(), KEY_MAGIC, &dek[..], &aad)?;
                create_if_absent(&path, &sealed)?;
                fsync_dir(&self.root)?;
                fs::read(&path).map_err(|e| MediaError::io(&path, e))?
            }
            Err(e) => return Err(MediaError::io(&path, e)),
        };
        let dek = match open(&self.master.cipher(), KEY_MAGIC, &wrapped, &aad) {
            None => {
                return Err(MediaError::CorruptBlob(
                    path,
                    "not a tenant key file".into(),
                ));
            }
            Some(None) => {
                return Err(MediaError::WrongMasterKey(format!(
                    "the data key of tenant {tenant} ({})",
                    path.display()
                )));
            }
            Some(Some(k)) => Zeroizing::new(k),
        };
        if dek.len() != 32 {
            return Err(MediaError::CorruptBlob(
                path,
                "data key is not 32 bytes".into(),
            ));
        }
        let cipher = Arc::new(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&dek[..])));
        keys.insert(tenant.to_owned(), cipher.clone());
        Ok(Some(cipher))
    }

    /// Stores `bytes` as blob `blob` of `tenant` (replacing any blob of that id), durably.
    pub fn put(&self, tenant: &str, blob: &str, bytes: &[u8]) -> Result<()> {
        let path = self.blob_path(tenant, blob)?;
        let cipher = self
            .tenant_cipher(tenant, true)?
            .ok_or_else(|| MediaError::Random("tenant key was not created".into()))?;
        let sealed = seal(&cipher, BLOB_MAGIC, bytes, &Self::blob_aad(tenant, blob))?;
        let dir = path
            .parent()
            .ok_or_else(|| MediaError::io(&path, std::io::Error::other("no parent")))?;
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| MediaError::io(dir, e))?;
            if let Some(td) = dir.parent() {
                fsync_dir(td)?;
            }
        }
        write_atomic(&path, &sealed)
    }

    /// Stores `bytes` under a fresh random id and returns the id.
    pub fn put_new(&self, tenant: &str, bytes: &[u8]) -> Result<String> {
        let id = new_blob_id()?;
        self.put(tenant, &id, bytes)?;
        Ok(id)
    }

    /// Reads and decrypts a blob.
    pub fn get(&self, tenant: &str, blob: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(tenant, blob)?;
        let not_found = || MediaError::BlobNotFound {
            tenant: tenant.to_owned(),
            blob: blob.to_owned(),
        };
        let sealed = match fs::read(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(MediaError::io(&path, e)),
        };
        let cipher = self.tenant_cipher(tenant, false)?.ok_or_else(not_found)?;
        match open(&cipher, BLOB_MAGIC, &sealed, &Self::blob_aad(tenant, blob)) {
            None => Err(MediaError::CorruptBlob(
                path,
                "bad header or truncated".into(),
            )),
            Some(None) => Err(MediaError::CorruptBlob(
                path,
                "authentication failed (modified, truncated or moved from another name)".into(),
            )),
            Some(Some(pt)) => Ok(pt),
        }
    }

    /// Whether the blob exists.
    pub fn exists(&self, tenant: &str, blob: &str) -> Result<bool> {
        Ok(self.blob_path(tenant, blob)?.is_file())
    }

    /// Erases a blob: removes the file and fsyncs its directory. Returns whether it existed.
    pub fn erase(&self, tenant: &str, blob: &str) -> Result<bool> {
        let path = self.blob_path(tenant, blob)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    fsync_dir(dir)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(MediaError::io(&path, e)),
        }
    }

    /// Erases every blob of a tenant and its data key. Returns whether the tenant had any.
    pub fn erase_tenant(&self, tenant: &str) -> Result<bool> {
        let dir = self.tenant_dir(tenant)?;
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(tenant);
        }
        // The key goes first: whatever remains after a crash is unreadable.
        let key = dir.join("tenant.key");
        match fs::remove_file(&key) {
            Ok(()) => fsync_dir(&dir)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(MediaError::io(&key, e)),
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => {
                fsync_dir(&self.root)?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(MediaError::io(&dir, e)),
        }
    }
}

/// Creates `path` with `bytes` unless it exists (atomic through a hard link).
fn create_if_absent(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| MediaError::io(path, std::io::Error::other("path has no parent")))?;
    let mut suffix = [0u8; 8];
    random_bytes(&mut suffix)?;
    let tmp = dir.join(format!(".new.{}.tmp", hex::encode(suffix)));
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| MediaError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| MediaError::io(&tmp, e))?;
        f.sync_all().map_err(|e| MediaError::io(&tmp, e))?;
        drop(f);
        match fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(MediaError::io(path, e)),
        }
        fsync_dir(dir)
    })();
    let _ = fs::remove_file(&tmp);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(check_id("tenant id", "abc-DEF_1").is_ok());
        assert!(check_id("tenant id", "../x").is_err());
        assert!(check_id("tenant id", "").is_err());
        assert!(check_id("blob id", "a").is_err());
        assert_eq!(new_blob_id().unwrap().len(), 32);
    }

    #[test]
    fn master_key_config() {
        let k = MasterKey::random().unwrap();
        assert_eq!(
            MasterKey::from_hex(&k.to_hex()).unwrap().to_hex(),
            k.to_hex()
        );
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_config(None, None).is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, format!("{}\n", k.to_hex())).unwrap();
        assert_eq!(
            MasterKey::from_config(None, Some(&p)).unwrap().to_hex(),
            k.to_hex()
        );
        assert!(MasterKey::from_config(Some(&k.to_hex()), Some(&p)).is_err());
        let e = MasterKey::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}

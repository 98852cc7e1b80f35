//! Encrypted blob store.
//!
//! Layout under the root directory:
//! - `master.check`: a known value sealed with the master key, so a wrong key is reported at
//!   start-up rather than as corrupt blobs;
//! - `<tenant>/tenant.key`: the tenant's random 256-bit data key, wrapped (AES-256-GCM) by the
//!   master key with the tenant id in the associated data;
//! - `<tenant>/<xx>/<blob id>`: one blob, `xx` being the last two characters of the id, in
//!   one of two formats, both with the tenant and blob id in the associated data (a blob copied
//!   to another name or tenant does not decrypt):
//!   - format 1 (in-memory content: [`BlobStore::put`]): `LKB1` + 12-byte random nonce +
//!     AES-256-GCM ciphertext and tag of the whole content;
//!   - format 2 (streamed: [`BlobStore::put_file_new`], [`BlobStore::put_reader`]): `LKB2` +
//!     chunk size (u32, little endian) + 8-byte random nonce prefix, then the content in chunks
//!     of that size (the last one shorter, possibly empty), each sealed with AES-256-GCM under
//!     the nonce `prefix ‖ chunk counter (u32, big endian)` and with the header and a
//!     final-chunk flag in the associated data, so a flipped byte, a reordered chunk or a
//!     truncation at any point fails authentication. Memory stays one chunk, whatever the size.
//!
//! - `.upload-tmp/`: uploads being received, spooled by the transport ([`BlobStore::spool_dir`];
//!   a name no tenant can have); what a crash left there is removed when the store is opened a
//!   day later.
//!
//! Writes go to a temporary file that is fsynced, renamed into place, and the directory is
//! fsynced: a blob is either complete or absent. Erasure removes the file and fsyncs the
//! directory; erasing a tenant removes its key with it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::error::{MediaError, Result};

const BLOB_MAGIC: &[u8; 4] = b"LKB1";
const BLOB2_MAGIC: &[u8; 4] = b"LKB2";
/// Plaintext bytes per chunk of a format-2 blob.
pub const CHUNK_SIZE: usize = 64 << 10;
const TAG_LEN: usize = 16;
const PREFIX_LEN: usize = 8;
const HEADER2_LEN: usize = 4 + 4 + PREFIX_LEN;
const KEY_MAGIC: &[u8; 4] = b"LKK1";
const CHECK_MAGIC: &[u8; 4] = b"LKC1";
const CHECK_VALUE: &[u8] = b"likeness-control blob store master key check";
const NONCE_LEN: usize = 12;
/// The spool directory's name under the root (not a valid tenant id: it has a dot).
const SPOOL_DIR: &str = ".upload-tmp";
/// Spooled files older than this were left by a crash.
const SPOOL_STALE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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
    write_atomic_with(path, |f, tmp| {
        f.write_all(bytes).map_err(|e| MediaError::io(tmp, e))
    })
}

/// Like [`write_atomic`], the content written by `fill` into the temporary file.
fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut File, &Path) -> Result<()>) -> Result<()> {
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
        fill(&mut f, &tmp)?;
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
        sweep_stale(&root.join(SPOOL_DIR));
        Ok(Self {
            root,
            master,
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// Where transports spool uploads before they are stored (on the blobs' disk).
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join(SPOOL_DIR)
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
        ensure_parent(&path)?;
        write_atomic(&path, &sealed)
    }

    /// Stores `bytes` as blob `blob` of `tenant` unless that blob exists; returns whether this
    /// call created it. Two processes racing get one winner: both then read the same blob
    /// (used for keys that must never be replaced, such as a person's key).
    pub fn put_if_absent(&self, tenant: &str, blob: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.blob_path(tenant, blob)?;
        if path.is_file() {
            return Ok(false);
        }
        let cipher = self
            .tenant_cipher(tenant, true)?
            .ok_or_else(|| MediaError::Random("tenant key was not created".into()))?;
        let sealed = seal(&cipher, BLOB_MAGIC, bytes, &Self::blob_aad(tenant, blob))?;
        ensure_parent(&path)?;
        let existed = path.is_file();
        create_if_absent(&path, &sealed)?;
        if let Some(dir) = path.parent() {
            fsync_dir(dir)?;
        }
        Ok(!existed)
    }

    /// Destroys a blob: overwrites its bytes with zeros (fsynced) before removing the file and
    /// fsyncing its directory, so that the file system's free blocks do not keep the sealed
    /// content on storage that overwrites in place (copy-on-write file systems and SSD
    /// remapping may still keep old blocks: the content is encrypted under the tenant key
    /// either way). Returns whether it existed.
    pub fn shred(&self, tenant: &str, blob: &str) -> Result<bool> {
        let path = self.blob_path(tenant, blob)?;
        match OpenOptions::new().write(true).open(&path) {
            Ok(mut f) => {
                let len = f.metadata().map_err(|e| MediaError::io(&path, e))?.len();
                let zeros = vec![0u8; usize::try_from(len).unwrap_or(0).min(1 << 20)];
                let mut left = len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64);
                    let n_usize = usize::try_from(n).unwrap_or(zeros.len());
                    f.write_all(&zeros[..n_usize])
                        .map_err(|e| MediaError::io(&path, e))?;
                    left -= n;
                }
                f.sync_all().map_err(|e| MediaError::io(&path, e))?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(MediaError::io(&path, e)),
        }
        self.erase(tenant, blob)
    }

    /// Stores what `reader` yields as blob `blob` of `tenant` (replacing any blob of that id),
    /// durably, encrypted chunk by chunk (format 2): memory stays one chunk whatever the size.
    /// Returns the number of bytes stored.
    pub fn put_reader(&self, tenant: &str, blob: &str, reader: &mut impl Read) -> Result<u64> {
        let path = self.blob_path(tenant, blob)?;
        let cipher = self
            .tenant_cipher(tenant, true)?
            .ok_or_else(|| MediaError::Random("tenant key was not created".into()))?;
        ensure_parent(&path)?;
        let aad = Self::blob_aad(tenant, blob);
        let mut total = 0u64;
        write_atomic_with(&path, |f, tmp| {
            let mut out = std::io::BufWriter::with_capacity(CHUNK_SIZE + TAG_LEN, f);
            total = seal_stream(&cipher, &aad, reader, &mut out, tmp)?;
            out.flush().map_err(|e| MediaError::io(tmp, e))
        })?;
        Ok(total)
    }

    /// Stores the file at `source` under a fresh random id, streamed (see
    /// [`BlobStore::put_reader`]), and returns the id and the number of bytes stored.
    pub fn put_file_new(&self, tenant: &str, source: &Path) -> Result<(String, u64)> {
        let mut f = File::open(source).map_err(|e| MediaError::io(source, e))?;
        let id = new_blob_id()?;
        let n = self.put_reader(tenant, &id, &mut f)?;
        Ok((id, n))
    }

    /// Stores `bytes` under a fresh random id and returns the id.
    pub fn put_new(&self, tenant: &str, bytes: &[u8]) -> Result<String> {
        let id = new_blob_id()?;
        self.put(tenant, &id, bytes)?;
        Ok(id)
    }

    /// Reads and decrypts a blob (either format) into memory.
    pub fn get(&self, tenant: &str, blob: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.copy_to(tenant, blob, &mut out)?;
        Ok(out)
    }

    /// Decrypts a blob (either format) into `out`; a format-2 blob is streamed chunk by chunk
    /// (its authenticated chunks are written as they are checked: when this fails part way,
    /// what was written must be discarded). Returns the number of bytes written.
    pub fn copy_to(&self, tenant: &str, blob: &str, out: &mut impl Write) -> Result<u64> {
        let path = self.blob_path(tenant, blob)?;
        let not_found = || MediaError::BlobNotFound {
            tenant: tenant.to_owned(),
            blob: blob.to_owned(),
        };
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(MediaError::io(&path, e)),
        };
        let cipher = self.tenant_cipher(tenant, false)?.ok_or_else(not_found)?;
        let aad = Self::blob_aad(tenant, blob);
        let mut magic = [0u8; 4];
        let got = read_full(&mut file, &mut magic).map_err(|e| MediaError::io(&path, e))?;
        if got == 4 && &magic == BLOB2_MAGIC {
            let len = file.metadata().map_err(|e| MediaError::io(&path, e))?.len();
            return open_stream(&cipher, &aad, &mut file, len, out)
                .map_err(|e| e.into_media(&path));
        }
        let mut sealed = magic[..got].to_vec();
        file.read_to_end(&mut sealed)
            .map_err(|e| MediaError::io(&path, e))?;
        match open(&cipher, BLOB_MAGIC, &sealed, &aad) {
            None => Err(MediaError::CorruptBlob(
                path,
                "bad header or truncated".into(),
            )),
            Some(None) => Err(MediaError::CorruptBlob(
                path,
                "authentication failed (modified, truncated or moved from another name)".into(),
            )),
            Some(Some(pt)) => {
                out.write_all(&pt).map_err(|e| MediaError::io(&path, e))?;
                Ok(pt.len() as u64)
            }
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

/// Removes files in `dir` last modified more than [`SPOOL_STALE`] ago (best effort).
fn sweep_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > SPOOL_STALE);
        if old {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Creates the shard directory of a blob path if needed (fsyncing the tenant directory).
fn ensure_parent(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| MediaError::io(path, std::io::Error::other("no parent")))?;
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| MediaError::io(dir, e))?;
        if let Some(td) = dir.parent() {
            fsync_dir(td)?;
        }
    }
    Ok(())
}

/// Reads until `buf` is full or the end; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn chunk_nonce(prefix: &[u8; PREFIX_LEN], counter: u32) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// Associated data of a chunk: the blob's, the header, and whether it is the last chunk.
fn chunk_aad(blob_aad: &[u8], header: &[u8; HEADER2_LEN], last: bool) -> Vec<u8> {
    let mut a = Vec::with_capacity(blob_aad.len() + HEADER2_LEN + 1);
    a.extend_from_slice(blob_aad);
    a.extend_from_slice(header);
    a.push(u8::from(last));
    a
}

/// Why a streamed operation failed: on the source/destination side or in the blob.
enum StreamError {
    Io(std::io::Error),
    Corrupt(String),
}

impl StreamError {
    fn into_media(self, path: &Path) -> MediaError {
        match self {
            Self::Io(e) => MediaError::io(path, e),
            Self::Corrupt(why) => MediaError::CorruptBlob(path.to_path_buf(), why),
        }
    }
}

/// Writes the format-2 encryption of what `reader` yields to `out`; returns the plaintext
/// size. The chunk after a full one is read before sealing it, to know whether it is last.
fn seal_stream(
    cipher: &Aes256Gcm,
    blob_aad: &[u8],
    reader: &mut impl Read,
    out: &mut impl Write,
    out_path: &Path,
) -> Result<u64> {
    let src = |e: std::io::Error| MediaError::io("(blob source)", e);
    let io = |e: std::io::Error| MediaError::io(out_path, e);
    let mut prefix = [0u8; PREFIX_LEN];
    random_bytes(&mut prefix)?;
    let mut header = [0u8; HEADER2_LEN];
    header[..4].copy_from_slice(BLOB2_MAGIC);
    header[4..8].copy_from_slice(&(CHUNK_SIZE as u32).to_le_bytes());
    header[8..].copy_from_slice(&prefix);
    out.write_all(&header).map_err(io)?;
    let mut cur = vec![0u8; CHUNK_SIZE];
    let mut next = vec![0u8; CHUNK_SIZE];
    let mut cur_len = read_full(reader, &mut cur).map_err(src)?;
    let mut counter: u32 = 0;
    let mut total = 0u64;
    loop {
        let (next_len, last) = if cur_len < CHUNK_SIZE {
            (0, true)
        } else {
            let n = read_full(reader, &mut next).map_err(src)?;
            (n, n == 0)
        };
        let aad = chunk_aad(blob_aad, &header, last);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&chunk_nonce(&prefix, counter)),
                Payload {
                    msg: &cur[..cur_len],
                    aad: &aad,
                },
            )
            .map_err(|_| MediaError::Random("AES-GCM encryption failed".into()))?;
        out.write_all(&ct).map_err(io)?;
        total += cur_len as u64;
        if last {
            return Ok(total);
        }
        counter = counter
            .checked_add(1)
            .ok_or_else(|| MediaError::Random("blob too large for format 2".into()))?;
        std::mem::swap(&mut cur, &mut next);
        cur_len = next_len;
    }
}

/// Decrypts a format-2 blob of `len` bytes whose magic was already read from `file`.
fn open_stream(
    cipher: &Aes256Gcm,
    blob_aad: &[u8],
    file: &mut impl Read,
    len: u64,
    out: &mut impl Write,
) -> std::result::Result<u64, StreamError> {
    let mut header = [0u8; HEADER2_LEN];
    header[..4].copy_from_slice(BLOB2_MAGIC);
    if read_full(file, &mut header[4..]).map_err(StreamError::Io)? != HEADER2_LEN - 4 {
        return Err(StreamError::Corrupt("truncated header".into()));
    }
    let mut cs = [0u8; 4];
    cs.copy_from_slice(&header[4..8]);
    let chunk = u32::from_le_bytes(cs) as usize;
    if chunk == 0 || chunk > 16 << 20 {
        return Err(StreamError::Corrupt(format!("bad chunk size {chunk}")));
    }
    let mut prefix = [0u8; PREFIX_LEN];
    prefix.copy_from_slice(&header[8..]);
    let sealed_chunk = (chunk + TAG_LEN) as u64;
    let body = len.saturating_sub(HEADER2_LEN as u64);
    // At least one chunk (an empty blob is one empty final chunk).
    let chunks = body.div_ceil(sealed_chunk).max(1);
    let mut buf = vec![0u8; chunk + TAG_LEN];
    let mut total = 0u64;
    for i in 0..chunks {
        let last = i + 1 == chunks;
        let n = read_full(file, &mut buf).map_err(StreamError::Io)?;
        if n < TAG_LEN || (!last && n != buf.len()) {
            return Err(StreamError::Corrupt(format!("chunk {i} truncated")));
        }
        let counter =
            u32::try_from(i).map_err(|_| StreamError::Corrupt("too many chunks".into()))?;
        let aad = chunk_aad(blob_aad, &header, last);
        let pt = cipher
            .decrypt(
                Nonce::from_slice(&chunk_nonce(&prefix, counter)),
                Payload {
                    msg: &buf[..n],
                    aad: &aad,
                },
            )
            .map_err(|_| {
                StreamError::Corrupt(format!(
                    "chunk {i} of {chunks}: authentication failed (modified, reordered, \
                     truncated or moved from another name)"
                ))
            })?;
        out.write_all(&pt).map_err(StreamError::Io)?;
        total += pt.len() as u64;
    }
    Ok(total)
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

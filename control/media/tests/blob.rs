//! The encrypted blob store on a real directory: round trips, no plaintext on disk, wrong
//! master key, blobs bound to their name and tenant, tampering, erasure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use likeness_control_media::{BlobStore, MasterKey, MediaError};

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn shared_photo() -> Vec<u8> {
    let dir = std::env::var_os("LIKENESS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    std::fs::read(dir.join("photos/img1.jpg")).unwrap()
}

#[test]
fn round_trip_and_no_plaintext_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::random().unwrap();
    let store = BlobStore::open(dir.path(), key.clone()).unwrap();
    let marker = b"PLAINTEXT-MARKER-0123456789-do-not-leak".repeat(50);
    let photo = shared_photo();
    store.put("tenant-a", "blob-0001", &marker).unwrap();
    let id = store.put_new("tenant-a", &photo).unwrap();
    store.put("tenant-b", "blob-0001", b"other tenant").unwrap();

    assert_eq!(store.get("tenant-a", "blob-0001").unwrap(), marker);
    assert_eq!(store.get("tenant-a", &id).unwrap(), photo);
    assert_eq!(store.get("tenant-b", "blob-0001").unwrap(), b"other tenant");

    // Every file under the root: no plaintext (a 32-byte window of each input), no key.
    let files = all_files(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !contains(&bytes, &marker[..32]),
            "{} leaks plaintext",
            f.display()
        );
        assert!(
            !contains(&bytes, &photo[1000..1032]),
            "{} leaks the photo",
            f.display()
        );
        assert!(!contains(&bytes, b"other tenant"), "{}", f.display());
        let k = hex::decode(key.to_hex()).unwrap();
        assert!(
            !contains(&bytes, &k),
            "{} holds the master key",
            f.display()
        );
        assert!(!f.file_name().unwrap().to_string_lossy().ends_with(".tmp"));
    }

    // Re-opened with the same key: still readable.
    drop(store);
    let store = BlobStore::open(dir.path(), key).unwrap();
    assert_eq!(store.get("tenant-a", &id).unwrap(), photo);
}

#[test]
fn wrong_master_key_is_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), MasterKey::random().unwrap()).unwrap();
    store.put("t1", "b1", b"secret").unwrap();
    drop(store);
    let e = BlobStore::open(dir.path(), MasterKey::random().unwrap()).unwrap_err();
    assert!(matches!(e, MediaError::WrongMasterKey(_)), "{e:?}");
    assert!(e.to_string().contains("wrong master key"), "{e}");

    // A tenant key wrapped by another master key (a directory copied between stores).
    let other = tempfile::tempdir().unwrap();
    let s2 = BlobStore::open(other.path(), MasterKey::random().unwrap()).unwrap();
    std::fs::create_dir_all(other.path().join("t1")).unwrap();
    std::fs::copy(
        dir.path().join("t1/tenant.key"),
        other.path().join("t1/tenant.key"),
    )
    .unwrap();
    let e = s2.put("t1", "b2", b"x").unwrap_err();
    assert!(matches!(e, MediaError::WrongMasterKey(_)), "{e:?}");
    assert!(e.to_string().contains("tenant t1"), "{e}");
}

#[test]
fn blobs_are_bound_to_name_and_tenant_and_tamper_evident() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), MasterKey::random().unwrap()).unwrap();
    store.put("t1", "aa01", b"first").unwrap();
    store.put("t1", "aa02", b"second").unwrap();
    let p1 = dir.path().join("t1/01/aa01");
    let p2 = dir.path().join("t1/02/aa02");
    // Swap the files: each decrypts under the wrong name -> refused.
    std::fs::copy(&p1, dir.path().join("tmp")).unwrap();
    std::fs::copy(&p2, &p1).unwrap();
    let e = store.get("t1", "aa01").unwrap_err();
    assert_eq!(e.code(), "corrupt_blob", "{e}");
    // Flip one byte.
    std::fs::copy(dir.path().join("tmp"), &p1).unwrap();
    assert_eq!(store.get("t1", "aa01").unwrap(), b"first");
    let mut b = std::fs::read(&p1).unwrap();
    let n = b.len();
    b[n - 3] ^= 1;
    std::fs::write(&p1, &b).unwrap();
    assert_eq!(store.get("t1", "aa01").unwrap_err().code(), "corrupt_blob");
    // Truncate.
    std::fs::write(&p1, &b[..10]).unwrap();
    assert_eq!(store.get("t1", "aa01").unwrap_err().code(), "corrupt_blob");
    // Bad ids never touch the file system outside the root.
    let e = store.get("../t1", "aa01").unwrap_err();
    assert_eq!(e.code(), "invalid_id", "{e}");
    assert_eq!(store.get("t1", "../x").unwrap_err().code(), "invalid_id");
}

#[test]
fn erase_removes_blob_and_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), MasterKey::random().unwrap()).unwrap();
    store.put("t1", "b1", b"one").unwrap();
    store.put("t1", "b2", b"two").unwrap();
    assert!(store.exists("t1", "b1").unwrap());
    assert!(store.erase("t1", "b1").unwrap());
    assert!(!store.erase("t1", "b1").unwrap());
    assert!(!store.exists("t1", "b1").unwrap());
    let e = store.get("t1", "b1").unwrap_err();
    assert!(matches!(e, MediaError::BlobNotFound { .. }), "{e:?}");
    assert_eq!(store.get("t1", "b2").unwrap(), b"two");
    assert!(store.erase_tenant("t1").unwrap());
    assert!(!dir.path().join("t1").exists());
    assert!(store.get("t1", "b2").is_err());
    assert!(!store.erase_tenant("t1").unwrap());
    // A new key is made on next use; the store still works.
    store.put("t1", "b3", b"three").unwrap();
    assert_eq!(store.get("t1", "b3").unwrap(), b"three");
}

#[test]
fn concurrent_first_writes_of_a_tenant_share_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::random().unwrap();
    // Two stores on one directory (two replicas) racing on a new tenant.
    let a = BlobStore::open(dir.path(), key.clone()).unwrap();
    let b = BlobStore::open(dir.path(), key).unwrap();
    std::thread::scope(|s| {
        for i in 0..8 {
            let st = if i % 2 == 0 { &a } else { &b };
            s.spawn(move || {
                st.put("t9", &format!("blob{i:02}"), &[i as u8; 100])
                    .unwrap()
            });
        }
    });
    for i in 0..8u8 {
        for st in [&a, &b] {
            assert_eq!(st.get("t9", &format!("blob{i:02}")).unwrap(), vec![i; 100]);
        }
    }
}

// Format 2: streamed, chunked blobs.

const CS: usize = likeness_control_media::blob::CHUNK_SIZE;
const SEALED: usize = CS + 16;
const HEADER: usize = 16;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn streamed(store: &BlobStore, bytes: &[u8]) -> (String, PathBuf) {
    let file = likeness_control_media::UploadFile::from_bytes(None, bytes).unwrap();
    let (id, n) = store.put_file_new("tenant-a", file.path()).unwrap();
    assert_eq!(n, bytes.len() as u64);
    let path = store
        .root()
        .join("tenant-a")
        .join(&id[id.len() - 2..])
        .join(&id);
    (id, path)
}

fn corrupt_message(store: &BlobStore, id: &str) -> String {
    match store.get("tenant-a", id).unwrap_err() {
        MediaError::CorruptBlob(_, why) => why,
        other => panic!("expected a corrupt blob, got {other:?}"),
    }
}

#[test]
fn streamed_round_trip_of_many_chunks_and_edge_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), MasterKey::random().unwrap()).unwrap();
    for n in [0, 1, CS - 1, CS, CS + 1, 3 * CS, 3 * CS + 12_345] {
        let bytes = pattern(n);
        let (id, path) = streamed(&store, &bytes);
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(&raw[..4], b"LKB2");
        assert!(n < 64 || !contains(&raw, &bytes[..32]), "plaintext on disk");
        assert_eq!(store.get("tenant-a", &id).unwrap(), bytes, "size {n}");
        let mut out = Vec::new();
        assert_eq!(store.copy_to("tenant-a", &id, &mut out).unwrap(), n as u64);
        assert_eq!(out, bytes);
    }
}

#[test]
fn old_format_blobs_still_read_next_to_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), MasterKey::random().unwrap()).unwrap();
    let old = pattern(3 * CS);
    store.put("tenant-a", "old-blob-01", &old).unwrap();
    let raw = all_files(dir.path())
        .into_iter()
        .find(|p| p.ends_with("old-blob-01"))
        .unwrap();
    assert_eq!(&std::fs::read(raw).unwrap()[..4], b"LKB1");
    let (id, _) = streamed(&store, &old);
    assert_eq!(store.get("tenant-a", "old-blob-01").unwrap(), old);
    assert_eq!(store.get("tenant-a", &id).unwrap(), old);
}

#[test]
fn streamed_blob_tampering_fails_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), MasterKey::random().unwrap()).unwrap();
    let bytes = pattern(3 * CS + 100);
    let (id, path) = streamed(&store, &bytes);
    let good = std::fs::read(&path).unwrap();
    assert_eq!(good.len(), HEADER + 3 * SEALED + 100 + 16);

    // A flipped byte in the second chunk.
    let mut bad = good.clone();
    bad[HEADER + SEALED + 10] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let why = corrupt_message(&store, &id);
    assert!(
        why.contains("chunk 1") && why.contains("authentication failed"),
        "{why}"
    );

    // Truncated at a chunk boundary (the now-last chunk was not sealed as the last one).
    std::fs::write(&path, &good[..HEADER + 2 * SEALED]).unwrap();
    let why = corrupt_message(&store, &id);
    assert!(
        why.contains("chunk 1") && why.contains("authentication failed"),
        "{why}"
    );

    // Truncated inside a chunk.
    std::fs::write(&path, &good[..good.len() - 5]).unwrap();
    assert!(corrupt_message(&store, &id).contains("authentication failed"));

    // Only the header left; a header cut short.
    std::fs::write(&path, &good[..HEADER]).unwrap();
    assert!(corrupt_message(&store, &id).contains("chunk 0"));
    std::fs::write(&path, &good[..10]).unwrap();
    assert!(corrupt_message(&store, &id).contains("truncated header"));

    // Chunks 0 and 1 swapped.
    let mut swapped = good[..HEADER].to_vec();
    swapped.extend_from_slice(&good[HEADER + SEALED..HEADER + 2 * SEALED]);
    swapped.extend_from_slice(&good[HEADER..HEADER + SEALED]);
    swapped.extend_from_slice(&good[HEADER + 2 * SEALED..]);
    std::fs::write(&path, &swapped).unwrap();
    let why = corrupt_message(&store, &id);
    assert!(
        why.contains("chunk 0") && why.contains("authentication failed"),
        "{why}"
    );

    // A chunk dropped from the middle.
    let mut dropped = good[..HEADER + SEALED].to_vec();
    dropped.extend_from_slice(&good[HEADER + 2 * SEALED..]);
    std::fs::write(&path, &dropped).unwrap();
    assert!(corrupt_message(&store, &id).contains("chunk 1"));

    // Moved to another name: does not decrypt.
    std::fs::write(&path, &good).unwrap();
    assert_eq!(store.get("tenant-a", &id).unwrap(), bytes);
    let other =
        path.with_file_name("ffffffffffffffffffffffffffffff".to_owned() + &id[id.len() - 2..]);
    std::fs::copy(&path, &other).unwrap();
    let other_id = other.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(corrupt_message(&store, &other_id).contains("authentication failed"));
}

#[test]
fn upload_file_spools_and_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = pattern(CS * 2 + 3);
    let f = likeness_control_media::UploadFile::from_bytes(Some(&dir.path().join("tmp")), &bytes)
        .unwrap();
    assert_eq!(f.size(), bytes.len() as u64);
    assert_eq!(
        f.sha256(),
        likeness_control_media::probe::sha256_hex(&bytes)
    );
    assert_eq!(std::fs::read(f.path()).unwrap(), bytes);
    let path = f.path().to_path_buf();
    drop(f);
    assert!(!path.exists(), "the spooled file is removed on drop");
}

#[test]
fn stale_spooled_files_are_swept_at_open_fresh_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::random().unwrap();
    let store = BlobStore::open(dir.path(), key.clone()).unwrap();
    let spool = store.spool_dir();
    assert!(spool.starts_with(dir.path()));
    std::fs::create_dir_all(&spool).unwrap();
    let (old, fresh) = (spool.join("upload-old"), spool.join("upload-fresh"));
    std::fs::write(&old, b"left by a crash").unwrap();
    std::fs::write(&fresh, b"being received").unwrap();
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(48 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    drop(store);
    BlobStore::open(dir.path(), key).unwrap();
    assert!(!old.exists());
    assert!(fresh.exists());
}

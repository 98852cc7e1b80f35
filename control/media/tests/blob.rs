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

//! On-disk formats: an encrypted snapshot (the whole gallery at one log sequence number) and
//! an encrypted write-ahead log of operations after it. Both files begin with their own
//! wrapped data key; every record or chunk is AES-256-GCM with its sequence number as nonce
//! and the tenant id, file kind and position as associated data, so records cannot be moved
//! between files, tenants or positions undetected.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::crypto::{DataKey, MasterKey, WRAPPED_LEN};
use crate::error::{GalleryError, Result};
use crate::ids::TenantId;

const SNAP_MAGIC: &[u8; 8] = b"LKSNAP01";
const WAL_MAGIC: &[u8; 8] = b"LKWAL001";
const ENTRIES_PER_CHUNK: usize = 4096;

/// An operation in the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A template was enrolled.
    Enroll {
        /// Template id.
        id: u64,
        /// Person id.
        person: String,
        /// Unit vector.
        vector: Vec<f32>,
    },
    /// Every template of a person was removed.
    RemovePerson {
        /// Person id.
        person: String,
    },
    /// Some templates were removed.
    RemoveTemplates {
        /// Template ids.
        ids: Vec<u64>,
    },
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.extend_from_slice(&(b.len().min(u16::MAX as usize) as u16).to_le_bytes());
    out.extend_from_slice(&b[..b.len().min(u16::MAX as usize)]);
}

fn put_vec(out: &mut Vec<u8>, v: &[f32]) {
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn floats(&mut self, dim: usize, out: &mut Vec<f32>) -> Option<()> {
        let s = self.take(dim.checked_mul(4)?)?;
        out.clear();
        out.extend(
            s.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Some(())
    }
    fn done(&self) -> bool {
        self.pos == self.b.len()
    }
}

impl Op {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Enroll { id, person, vector } => {
                out.push(1);
                out.extend_from_slice(&id.to_le_bytes());
                put_str(out, person);
                out.extend_from_slice(&(vector.len() as u32).to_le_bytes());
                put_vec(out, vector);
            }
            Op::RemovePerson { person } => {
                out.push(2);
                put_str(out, person);
            }
            Op::RemoveTemplates { ids } => {
                out.push(3);
                out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
                for id in ids {
                    out.extend_from_slice(&id.to_le_bytes());
                }
            }
        }
    }

    fn decode(b: &[u8]) -> Option<Op> {
        let mut r = Reader { b, pos: 0 };
        let op = match r.u8()? {
            1 => {
                let id = r.u64()?;
                let person = r.string()?;
                let dim = r.u32()? as usize;
                let mut vector = Vec::with_capacity(dim.min(4096));
                r.floats(dim, &mut vector)?;
                Op::Enroll { id, person, vector }
            }
            2 => Op::RemovePerson {
                person: r.string()?,
            },
            3 => {
                let n = r.u32()? as usize;
                let mut ids = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    ids.push(r.u64()?);
                }
                Op::RemoveTemplates { ids }
            }
            _ => return None,
        };
        r.done().then_some(op)
    }
}

/// Writes `path` atomically: a temporary file, fsync, rename, fsync of the directory.
pub fn atomic_write(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let f = File::create(&tmp).map_err(GalleryError::io(&tmp))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    write(&mut w)?;
    let f = w.into_inner().map_err(|e| GalleryError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(GalleryError::io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(GalleryError::io(path))?;
    sync_dir(path)
}

/// fsyncs the directory containing `path` so a rename or creation is durable.
pub fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(GalleryError::io(dir))
}

fn aad(tenant: &TenantId, kind: &[u8], prefix: &[u8], n: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(tenant.as_str().len() + kind.len() + prefix.len() + 9);
    a.extend_from_slice(tenant.as_str().as_bytes());
    a.push(0);
    a.extend_from_slice(kind);
    a.extend_from_slice(prefix);
    a.extend_from_slice(&n.to_le_bytes());
    a
}

/// What a snapshot header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Last log sequence number included.
    pub last_seq: u64,
    /// Next template id to assign.
    pub next_id: u64,
    /// Vector dimension.
    pub dim: usize,
    /// Number of templates.
    pub count: u64,
}

/// Writes a snapshot of `count` templates from `entries` under a fresh data key.
pub fn write_snapshot<'a>(
    path: &Path,
    master: &MasterKey,
    tenant: &TenantId,
    h: SnapshotHeader,
    entries: impl Iterator<Item = (u64, &'a str, &'a [f32])>,
) -> Result<()> {
    let dek = DataKey::random()?;
    let wrapped = master.wrap(&dek, &aad(tenant, b"snap-key", &[], 0))?;
    let chunks = (h.count as usize).div_ceil(ENTRIES_PER_CHUNK) as u64;
    let mut prefix = Vec::with_capacity(8 + WRAPPED_LEN + 44);
    prefix.extend_from_slice(SNAP_MAGIC);
    prefix.extend_from_slice(&wrapped);
    prefix.extend_from_slice(&h.last_seq.to_le_bytes());
    prefix.extend_from_slice(&h.next_id.to_le_bytes());
    prefix.extend_from_slice(&(h.dim as u32).to_le_bytes());
    prefix.extend_from_slice(&h.count.to_le_bytes());
    prefix.extend_from_slice(&chunks.to_le_bytes());
    let mut entries = entries.peekable();
    atomic_write(path, |w| {
        let io = GalleryError::io(path);
        w.write_all(&prefix).map_err(io)?;
        let mut buf =
            zeroize::Zeroizing::new(Vec::with_capacity(ENTRIES_PER_CHUNK * (h.dim * 4 + 32)));
        let mut written = 0u64;
        for c in 0..chunks {
            buf.clear();
            for _ in 0..ENTRIES_PER_CHUNK {
                let Some((id, person, v)) = entries.next() else {
                    break;
                };
                buf.extend_from_slice(&id.to_le_bytes());
                put_str(&mut buf, person);
                put_vec(&mut buf, v);
                written += 1;
            }
            let ct = dek.seal(c, &buf, &aad(tenant, b"snap", &prefix, c))?;
            w.write_all(&(ct.len() as u32).to_le_bytes())
                .and_then(|_| w.write_all(&ct))
                .map_err(GalleryError::io(path))?;
        }
        if written != h.count || entries.peek().is_some() {
            return Err(GalleryError::Corrupt {
                path: path.to_owned(),
                why: format!(
                    "snapshot writer got {written} entries, header says {}",
                    h.count
                ),
            });
        }
        Ok(())
    })
}

/// Reads a snapshot, calling `f` for every template. Any damage is an error (snapshots are
/// written atomically, so they are never torn).
pub fn read_snapshot(
    path: &Path,
    master: &MasterKey,
    tenant: &TenantId,
    mut f: impl FnMut(u64, String, &[f32]),
) -> Result<SnapshotHeader> {
    let corrupt = |why: &str| GalleryError::Corrupt {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut fh| fh.read_to_end(&mut data))
        .map_err(GalleryError::io(path))?;
    let plen = 8 + WRAPPED_LEN + 36;
    if data.len() < plen || &data[..8] != SNAP_MAGIC {
        return Err(corrupt("not a Likeness gallery snapshot"));
    }
    let prefix = &data[..plen];
    let dek = master
        .unwrap_key(&data[8..8 + WRAPPED_LEN], &aad(tenant, b"snap-key", &[], 0))
        .ok_or_else(|| GalleryError::WrongMasterKey(path.to_owned()))?;
    let mut r = Reader {
        b: &data[8 + WRAPPED_LEN..plen],
        pos: 0,
    };
    let (Some(last_seq), Some(next_id), Some(dim), Some(count), Some(chunks)) =
        (r.u64(), r.u64(), r.u32(), r.u64(), r.u64())
    else {
        return Err(corrupt("short header"));
    };
    let dim = dim as usize;
    let mut body = Reader {
        b: &data[plen..],
        pos: 0,
    };
    let mut seen = 0u64;
    let mut v = Vec::with_capacity(dim);
    for c in 0..chunks {
        let len = body.u32().ok_or_else(|| corrupt("truncated"))? as usize;
        let ct = body.take(len).ok_or_else(|| corrupt("truncated"))?;
        let pt = dek
            .open(c, ct, &aad(tenant, b"snap", prefix, c))
            .ok_or_else(|| corrupt(&format!("chunk {c} fails authentication")))?;
        let mut cr = Reader { b: &pt, pos: 0 };
        while !cr.done() {
            let id = cr.u64().ok_or_else(|| corrupt("bad entry"))?;
            let person = cr.string().ok_or_else(|| corrupt("bad entry"))?;
            cr.floats(dim, &mut v).ok_or_else(|| corrupt("bad entry"))?;
            f(id, person, &v);
            seen += 1;
        }
    }
    if seen != count || !body.done() {
        return Err(corrupt(&format!("{seen} entries, header says {count}")));
    }
    Ok(SnapshotHeader {
        last_seq,
        next_id,
        dim,
        count,
    })
}

/// The write-ahead log of one tenant.
pub struct Wal {
    path: PathBuf,
    file: File,
    dek: DataKey,
    prefix: Vec<u8>,
    tenant: TenantId,
    records: u64,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("path", &self.path)
            .field("records", &self.records)
            .finish()
    }
}

/// What replaying a log found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Valid records.
    pub records: u64,
    /// Bytes of a torn final write that were dropped.
    pub torn_bytes: u64,
}

impl Wal {
    /// Creates an empty log (atomically replacing any existing one) under a fresh data key.
    pub fn create(path: &Path, master: &MasterKey, tenant: &TenantId) -> Result<Self> {
        let dek = DataKey::random()?;
        let wrapped = master.wrap(&dek, &aad(tenant, b"wal-key", &[], 0))?;
        let mut prefix = WAL_MAGIC.to_vec();
        prefix.extend_from_slice(&wrapped);
        atomic_write(path, |w| {
            w.write_all(&prefix).map_err(GalleryError::io(path))
        })?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(GalleryError::io(path))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            dek,
            prefix,
            tenant: tenant.clone(),
            records: 0,
        })
    }

    /// Opens a log and replays its records through `f`. A torn final record (a write cut by
    /// a crash) is detected, dropped and truncated away; damage anywhere else is an error.
    pub fn open(
        path: &Path,
        master: &MasterKey,
        tenant: &TenantId,
        mut f: impl FnMut(u64, Op),
    ) -> Result<(Self, ReplayStats)> {
        let corrupt = |why: String| GalleryError::Corrupt {
            path: path.to_owned(),
            why,
        };
        let mut data = Vec::new();
        File::open(path)
            .and_then(|mut fh| fh.read_to_end(&mut data))
            .map_err(GalleryError::io(path))?;
        let plen = 8 + WRAPPED_LEN;
        if data.len() < plen || &data[..8] != WAL_MAGIC {
            return Err(corrupt("not a Likeness gallery log".into()));
        }
        let prefix = data[..plen].to_vec();
        let dek = master
            .unwrap_key(&data[8..plen], &aad(tenant, b"wal-key", &[], 0))
            .ok_or_else(|| GalleryError::WrongMasterKey(path.to_owned()))?;
        let mut pos = plen;
        let mut stats = ReplayStats::default();
        let mut last_seq = 0u64;
        while pos < data.len() {
            let rest = &data[pos..];
            if rest.len() < 12 {
                break;
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let seq = u64::from_le_bytes(rest[4..12].try_into().unwrap_or([0; 8]));
            if rest.len() < 12 + len {
                break;
            }
            let ct = &rest[12..12 + len];
            let is_last = rest.len() == 12 + len || rest[12 + len..].iter().all(|&b| b == 0);
            let opened = dek.open(seq, ct, &aad(tenant, b"wal", &prefix, seq));
            let op = opened.as_deref().and_then(|pt| Op::decode(pt));
            match op {
                Some(op) if seq > last_seq => {
                    f(seq, op);
                    last_seq = seq;
                    stats.records += 1;
                    pos += 12 + len;
                }
                _ if is_last || rest.iter().all(|&b| b == 0) => break,
                _ => {
                    return Err(corrupt(format!(
                        "record at byte {pos} fails authentication and is not the final write"
                    )));
                }
            }
        }
        if pos < data.len() {
            stats.torn_bytes = (data.len() - pos) as u64;
            let fh = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(GalleryError::io(path))?;
            fh.set_len(pos as u64).map_err(GalleryError::io(path))?;
            fh.sync_all().map_err(GalleryError::io(path))?;
            tracing::warn!(path = %path.display(), dropped = stats.torn_bytes, "dropped a torn write at the end of the gallery log");
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(GalleryError::io(path))?;
        Ok((
            Self {
                path: path.to_owned(),
                file,
                dek,
                prefix,
                tenant: tenant.clone(),
                records: stats.records,
            },
            stats,
        ))
    }

    /// Appends records and fsyncs; when it returns they survive a crash.
    pub fn append(&mut self, recs: &[(u64, Op)]) -> Result<()> {
        let mut buf = zeroize::Zeroizing::new(Vec::new());
        let mut out = Vec::new();
        for (seq, op) in recs {
            buf.clear();
            op.encode(&mut buf);
            let ct = self
                .dek
                .seal(*seq, &buf, &aad(&self.tenant, b"wal", &self.prefix, *seq))?;
            out.extend_from_slice(&(ct.len() as u32).to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&ct);
        }
        self.file
            .write_all(&out)
            .map_err(GalleryError::io(&self.path))?;
        self.file
            .sync_data()
            .map_err(GalleryError::io(&self.path))?;
        self.records += recs.len() as u64;
        Ok(())
    }

    /// Records in the log.
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TenantId {
        TenantId::parse("t1").unwrap()
    }

    #[test]
    fn snapshot_round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("snap");
        let m = MasterKey::random().unwrap();
        let vecs: Vec<(u64, String, Vec<f32>)> = (0..5000)
            .map(|i| (i, format!("p{}", i % 7), vec![i as f32; 4]))
            .collect();
        let h = SnapshotHeader {
            last_seq: 9,
            next_id: 5000,
            dim: 4,
            count: 5000,
        };
        write_snapshot(
            &p,
            &m,
            &t(),
            h,
            vecs.iter().map(|(i, s, v)| (*i, s.as_str(), v.as_slice())),
        )
        .unwrap();
        let mut got = Vec::new();
        let h2 = read_snapshot(&p, &m, &t(), |i, s, v| got.push((i, s, v.to_vec()))).unwrap();
        assert_eq!(h, h2);
        assert_eq!(got, vecs);
        // Another tenant's id, a wrong key or one flipped byte are all refused.
        assert!(read_snapshot(&p, &m, &TenantId::parse("t2").unwrap(), |_, _, _| {}).is_err());
        assert!(matches!(
            read_snapshot(&p, &MasterKey::random().unwrap(), &t(), |_, _, _| {}),
            Err(GalleryError::WrongMasterKey(_))
        ));
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 100] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(matches!(
            read_snapshot(&p, &m, &t(), |_, _, _| {}),
            Err(GalleryError::Corrupt { .. })
        ));
    }

    #[test]
    fn wal_drops_only_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal");
        let m = MasterKey::random().unwrap();
        let mut w = Wal::create(&p, &m, &t()).unwrap();
        for s in 1..=3u64 {
            w.append(&[(
                s,
                Op::Enroll {
                    id: s,
                    person: "a".into(),
                    vector: vec![1.0, 2.0],
                },
            )])
            .unwrap();
        }
        drop(w);
        let full = std::fs::read(&p).unwrap();
        // Cut in the middle of the last record: two records survive, the tail is dropped.
        std::fs::write(&p, &full[..full.len() - 5]).unwrap();
        let mut seen = vec![];
        let (_, st) = Wal::open(&p, &m, &t(), |s, _| seen.push(s)).unwrap();
        assert_eq!(seen, vec![1, 2]);
        assert!(st.torn_bytes > 0);
        assert!(std::fs::metadata(&p).unwrap().len() < full.len() as u64);
        // Damage in the middle is an error, not silently skipped.
        let mut bad = full.clone();
        bad[8 + WRAPPED_LEN + 20] ^= 0xFF;
        std::fs::write(&p, &bad).unwrap();
        assert!(matches!(
            Wal::open(&p, &m, &t(), |_, _| {}),
            Err(GalleryError::Corrupt { .. })
        ));
        // Zeros appended by a crash are a torn tail too.
        let mut z = full.clone();
        z.extend_from_slice(&[0u8; 64]);
        std::fs::write(&p, &z).unwrap();
        let mut n = 0;
        Wal::open(&p, &m, &t(), |_, _| n += 1).unwrap();
        assert_eq!(n, 3);
    }
}

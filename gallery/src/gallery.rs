//! Galleries of all tenants: lazily loaded, durable (write-ahead log + snapshots, fsync and
//! atomic rename), encrypted at rest, and erasable: a removal rewrites the tenant's files
//! without the removed templates (under fresh data keys) before it returns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::crypto::MasterKey;
use crate::error::{GalleryError, Result};
use crate::ids::{TenantId, check_person};
use crate::index::{self, Candidate, HnswParams, Index};
use crate::storage::{self, Op, SnapshotHeader, Wal};

const KEYCHECK: &str = "keycheck";
const KEYCHECK_PLAIN: &[u8] = b"likeness-gallery-keycheck-v1";

/// Gallery settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GalleryConfig {
    /// Directory holding `tenants/<id>/{snapshot,wal}` and the key check file.
    pub data_dir: PathBuf,
    /// Template dimension.
    pub dim: usize,
    /// Galleries with fewer live templates are searched exactly; larger ones through HNSW.
    pub exact_max: usize,
    /// HNSW parameters.
    pub hnsw: HnswParams,
    /// Log records after which the tenant's files are compacted into a new snapshot.
    pub snapshot_every: u64,
    /// Rebuild the graph when this fraction of its points has been removed.
    pub rebuild_stale_fraction: f32,
    /// Master key, 64 hex characters (prefer `master_key_file` or the environment). Never
    /// printed. Without a key the gallery is disabled.
    #[serde(skip_serializing)]
    pub master_key: Option<String>,
    /// File holding the master key in hex.
    pub master_key_file: Option<PathBuf>,
    /// Default minimum person score for Identify and Suggest (open-set identification needs a
    /// higher bar than 1:1 verification: see `bench identify`).
    pub default_threshold: f32,
    /// Default candidates per face.
    pub default_k: usize,
}

impl GalleryConfig {
    /// The configured master key: `None` when neither `master_key` nor `master_key_file` is set.
    pub fn master(&self) -> Result<Option<MasterKey>> {
        if self.master_key.is_none() && self.master_key_file.is_none() {
            return Ok(None);
        }
        let key = likeness_common::MasterKey::from_config(
            self.master_key.as_deref(),
            self.master_key_file.as_deref(),
        )?;
        Ok(Some(key.into()))
    }

    /// Checks values; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.dim == 0 || self.dim > 4096 {
            return Err(format!("gallery.dim must be 1..=4096, got {}", self.dim));
        }
        if self.hnsw.m < 2 || self.hnsw.m > 255 {
            return Err(format!(
                "gallery.hnsw.m must be 2..=255, got {}",
                self.hnsw.m
            ));
        }
        if self.hnsw.ef_search == 0 || self.hnsw.ef_construction == 0 {
            return Err("gallery.hnsw.ef_search and ef_construction must be at least 1".into());
        }
        if self.snapshot_every == 0 {
            return Err("gallery.snapshot_every must be at least 1".into());
        }
        if !(-1.0..=1.0).contains(&self.default_threshold) {
            return Err(format!(
                "gallery.default_threshold must be in [-1, 1], got {}",
                self.default_threshold
            ));
        }
        if self.default_k == 0 || self.default_k > 100 {
            return Err(format!(
                "gallery.default_k must be 1..=100, got {}",
                self.default_k
            ));
        }
        if self.master_key.is_some() && self.master_key_file.is_some() {
            return Err("set only one of gallery.master_key and gallery.master_key_file".into());
        }
        Ok(())
    }
}

impl Default for GalleryConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".data/gallery"),
            dim: 128,
            exact_max: 20_000,
            hnsw: HnswParams::default(),
            snapshot_every: 10_000,
            rebuild_stale_fraction: 0.2,
            master_key: None,
            master_key_file: None,
            default_threshold: 0.45,
            default_k: 5,
        }
    }
}

/// Statistics of one tenant's gallery.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TenantStats {
    /// Live templates.
    pub templates: u64,
    /// Distinct persons.
    pub persons: u64,
    /// "exact" or "hnsw".
    pub search: &'static str,
    /// Records in the log since the last snapshot.
    pub log_records: u64,
    /// Bytes of the tenant's files on disk.
    pub disk_bytes: u64,
    /// Approximate resident bytes of the in-memory index.
    pub memory_bytes: u64,
}

struct Writer {
    wal: Wal,
    seq: u64,
    next_id: u64,
}

/// One tenant's gallery.
pub struct Tenant {
    id: TenantId,
    dir: PathBuf,
    writer: Mutex<Option<Writer>>,
    index: Arc<RwLock<Index>>,
    building: Arc<Mutex<bool>>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant").field("id", &self.id).finish()
    }
}

/// All tenants' galleries.
pub struct Galleries {
    cfg: GalleryConfig,
    master: MasterKey,
    tenants: Mutex<HashMap<TenantId, Arc<Tenant>>>,
}

impl std::fmt::Debug for Galleries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Galleries")
            .field("data_dir", &self.cfg.data_dir)
            .finish()
    }
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("snapshot")
}
fn wal_path(dir: &Path) -> PathBuf {
    dir.join("wal")
}

/// Checks and L2-normalises a template.
pub fn normalise(v: &[f32], dim: usize) -> Result<Vec<f32>> {
    if v.len() != dim {
        return Err(GalleryError::InvalidTemplate(format!(
            "expected {dim} values, got {}",
            v.len()
        )));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(GalleryError::InvalidTemplate(
            "contains NaN or infinity".into(),
        ));
    }
    let n = index::dot(v, v).sqrt();
    if n < 1e-6 {
        return Err(GalleryError::InvalidTemplate("has zero length".into()));
    }
    Ok(v.iter().map(|x| x / n).collect())
}

impl Galleries {
    /// Opens the data directory, verifying the master key against its key check file. A wrong
    /// key fails here, before anything is served.
    pub fn open(cfg: GalleryConfig, master: MasterKey) -> Result<Self> {
        let tenants_dir = cfg.data_dir.join("tenants");
        std::fs::create_dir_all(&tenants_dir).map_err(GalleryError::io(&tenants_dir))?;
        let check = cfg.data_dir.join(KEYCHECK);
        if check.exists() {
            let sealed = std::fs::read(&check).map_err(GalleryError::io(&check))?;
            if master.open(&sealed, b"keycheck").as_deref() != Some(KEYCHECK_PLAIN) {
                return Err(GalleryError::WrongMasterKey(cfg.data_dir.clone()));
            }
        } else {
            let has_tenants = std::fs::read_dir(&tenants_dir)
                .map_err(GalleryError::io(&tenants_dir))?
                .next()
                .is_some();
            if has_tenants {
                return Err(GalleryError::Corrupt {
                    path: check,
                    why: "missing while galleries exist; refusing to guess the master key".into(),
                });
            }
            let sealed = master.seal(KEYCHECK_PLAIN, b"keycheck")?;
            storage::atomic_write(&check, |w| {
                std::io::Write::write_all(w, &sealed).map_err(GalleryError::io(&check))
            })?;
        }
        Ok(Self {
            cfg,
            master,
            tenants: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GalleryConfig {
        &self.cfg
    }

    fn tenant_dir(&self, t: &TenantId) -> PathBuf {
        self.cfg.data_dir.join("tenants").join(t.as_str())
    }

    /// The tenant's gallery, loading it on first use; `create` makes an empty one if absent.
    fn tenant(&self, t: &TenantId, create: bool) -> Result<Option<Arc<Tenant>>> {
        let mut map = self.tenants.lock();
        if let Some(g) = map.get(t) {
            return Ok(Some(g.clone()));
        }
        let dir = self.tenant_dir(t);
        if !dir.exists() && !create {
            return Ok(None);
        }
        let g = Arc::new(self.load(t, &dir)?);
        map.insert(t.clone(), g.clone());
        Ok(Some(g))
    }

    fn load(&self, t: &TenantId, dir: &Path) -> Result<Tenant> {
        let start = Instant::now();
        std::fs::create_dir_all(dir).map_err(GalleryError::io(dir))?;
        let mut idx = Index::new(self.cfg.dim);
        let snap = snapshot_path(dir);
        let mut header = SnapshotHeader {
            last_seq: 0,
            next_id: 1,
            dim: self.cfg.dim,
            count: 0,
        };
        if snap.exists() {
            header = storage::read_snapshot(&snap, &self.master, t, |id, person, v| {
                idx.add(id, Arc::from(person), v);
            })?;
            if header.dim != self.cfg.dim {
                return Err(GalleryError::Corrupt {
                    path: snap,
                    why: format!(
                        "templates have {} values, gallery.dim is {}",
                        header.dim, self.cfg.dim
                    ),
                });
            }
        }
        let wal = wal_path(dir);
        let mut seq = header.last_seq;
        let mut next_id = header.next_id;
        let mut stale = 0u64;
        let (wal, stats) = if wal.exists() {
            Wal::open(&wal, &self.master, t, |s, op| {
                if s <= header.last_seq {
                    stale += 1;
                    return;
                }
                seq = s;
                apply(&mut idx, &op, &mut next_id);
            })?
        } else {
            (Wal::create(&wal, &self.master, t)?, Default::default())
        };
        tracing::info!(
            tenant = %t, templates = idx.len(), log_records = stats.records,
            torn_bytes = stats.torn_bytes, ms = start.elapsed().as_millis() as u64,
            "gallery loaded"
        );
        let tenant = Tenant {
            id: t.clone(),
            dir: dir.to_owned(),
            writer: Mutex::new(Some(Writer { wal, seq, next_id })),
            index: Arc::new(RwLock::new(idx)),
            building: Arc::new(Mutex::new(false)),
        };
        // A crash during a compaction can leave records the snapshot already holds (for
        // example templates that were being erased): rewrite now.
        if stale > 0 {
            let mut w = tenant.writer.lock();
            if let Some(w) = w.as_mut() {
                self.compact(&tenant, w)?;
            }
        }
        self.maybe_build_graph(&tenant);
        Ok(tenant)
    }

    /// Writes a snapshot of the live templates and starts an empty log, both under fresh data
    /// keys; afterwards no file of the tenant holds a removed template.
    fn compact(&self, t: &Tenant, w: &mut Writer) -> Result<()> {
        let start = Instant::now();
        {
            let idx = t.index.read();
            let h = SnapshotHeader {
                last_seq: w.seq,
                next_id: w.next_id,
                dim: idx.dim(),
                count: idx.len() as u64,
            };
            storage::write_snapshot(&snapshot_path(&t.dir), &self.master, &t.id, h, idx.iter())?;
        }
        w.wal = Wal::create(&wal_path(&t.dir), &self.master, &t.id)?;
        tracing::info!(tenant = %t.id, ms = start.elapsed().as_millis() as u64, "gallery compacted");
        Ok(())
    }

    fn maybe_build_graph(&self, t: &Tenant) {
        let (len, uses, stale) = {
            let i = t.index.read();
            (i.len(), i.uses_graph(), i.graph_stale())
        };
        let want = len >= self.cfg.exact_max
            && (!uses || stale as f32 > self.cfg.rebuild_stale_fraction * len as f32);
        if !want {
            if len < self.cfg.exact_max / 2 && uses {
                t.index.write().drop_graph();
            }
            return;
        }
        let mut busy = t.building.lock();
        if *busy {
            return;
        }
        *busy = true;
        let index = t.index.clone();
        let building = t.building.clone();
        let params = self.cfg.hnsw;
        let min_len = self.cfg.exact_max / 2;
        let tenant = t.id.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("hnsw-{tenant}"))
            .spawn(move || {
                let start = Instant::now();
                let (ids, matrix) = index.read().build_input();
                let dim = index.read().dim();
                let points = ids.len();
                let built = index::build_graph(ids, matrix, dim, &params);
                {
                    // Not if the gallery shrank below the drop limit meanwhile.
                    let mut idx = index.write();
                    if idx.len() >= min_len {
                        idx.install_graph(built);
                    }
                }
                *building.lock() = false;
                tracing::info!(%tenant, points, ms = start.elapsed().as_millis() as u64, "hnsw graph built");
            });
        if spawned.is_err() {
            *busy = false;
        }
    }

    /// Enrolls templates of a person; returns their ids. Durable when it returns.
    pub fn enroll(&self, t: &TenantId, person: &str, templates: &[Vec<f32>]) -> Result<Vec<u64>> {
        check_person(person)?;
        if templates.is_empty() {
            return Err(GalleryError::InvalidTemplate(
                "at least one template is required".into(),
            ));
        }
        let vs: Vec<Vec<f32>> = templates
            .iter()
            .map(|v| normalise(v, self.cfg.dim))
            .collect::<Result<_>>()?;
        let tenant = self
            .tenant(t, true)?
            .ok_or_else(|| GalleryError::UnknownTenant(t.to_string()))?;
        let mut guard = tenant.writer.lock();
        let w = guard
            .as_mut()
            .ok_or_else(|| GalleryError::UnknownTenant(t.to_string()))?;
        let mut recs = Vec::with_capacity(vs.len());
        let mut ids = Vec::with_capacity(vs.len());
        let (mut seq, mut id) = (w.seq, w.next_id);
        for v in vs {
            seq += 1;
            ids.push(id);
            recs.push((
                seq,
                Op::Enroll {
                    id,
                    person: person.to_owned(),
                    vector: v,
                },
            ));
            id += 1;
        }
        w.wal.append(&recs)?;
        w.seq = seq;
        w.next_id = id;
        {
            let mut idx = tenant.index.write();
            let p: Arc<str> = Arc::from(person);
            for (_, op) in &recs {
                if let Op::Enroll { id, vector, .. } = op {
                    idx.add(*id, p.clone(), vector);
                }
            }
        }
        if w.wal.records() >= self.cfg.snapshot_every {
            self.compact(&tenant, w)?;
        }
        drop(guard);
        self.maybe_build_graph(&tenant);
        Ok(ids)
    }

    /// Removes every template of a person and erases them from disk before returning.
    pub fn remove_person(&self, t: &TenantId, person: &str) -> Result<usize> {
        check_person(person)?;
        let Some(tenant) = self.tenant(t, false)? else {
            return Ok(0);
        };
        let ids = tenant.index.read().ids_of(person);
        self.remove(
            &tenant,
            &ids,
            Op::RemovePerson {
                person: person.to_owned(),
            },
        )
    }

    /// Removes templates by id (all must belong to this tenant) and erases them from disk.
    pub fn remove_templates(&self, t: &TenantId, ids: &[u64]) -> Result<usize> {
        let Some(tenant) = self.tenant(t, false)? else {
            return Err(GalleryError::InvalidTemplate(format!(
                "unknown template ids {ids:?}"
            )));
        };
        {
            let idx = tenant.index.read();
            let unknown: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| !idx.contains(*id))
                .collect();
            if !unknown.is_empty() {
                return Err(GalleryError::InvalidTemplate(format!(
                    "unknown template ids {unknown:?} in tenant {t}; nothing was removed"
                )));
            }
        }
        self.remove(&tenant, ids, Op::RemoveTemplates { ids: ids.to_vec() })
    }

    fn remove(&self, tenant: &Arc<Tenant>, ids: &[u64], op: Op) -> Result<usize> {
        let mut guard = tenant.writer.lock();
        let w = guard
            .as_mut()
            .ok_or_else(|| GalleryError::UnknownTenant(tenant.id.to_string()))?;
        // Searches stop returning them at once ...
        let removed = tenant.index.write().remove_ids(ids);
        if removed.is_empty() {
            return Ok(0);
        }
        // ... and the removal is logged (durable) before the rewrite, so a crash in between
        // still loses nothing acknowledged and replays the removal.
        w.seq += 1;
        let seq = w.seq;
        w.wal.append(&[(seq, op)])?;
        self.compact(tenant, w)?;
        drop(guard);
        self.maybe_build_graph(tenant);
        Ok(removed.len())
    }

    /// The `k` best candidates per query (unit or not; normalised here), each above
    /// `threshold`; an empty list means "unknown".
    pub fn identify(
        &self,
        t: &TenantId,
        queries: &[Vec<f32>],
        k: usize,
        threshold: f32,
    ) -> Result<Vec<Vec<Candidate>>> {
        let qs: Vec<Vec<f32>> = queries
            .iter()
            .map(|q| normalise(q, self.cfg.dim))
            .collect::<Result<_>>()?;
        let Some(tenant) = self.tenant(t, false)? else {
            return Ok(vec![Vec::new(); qs.len()]);
        };
        let idx = tenant.index.read();
        Ok(qs
            .iter()
            .map(|q| idx.search(q, k, threshold, self.cfg.hnsw.ef_search))
            .collect())
    }

    /// Statistics of a tenant (zeros when it has no gallery).
    pub fn stats(&self, t: &TenantId) -> Result<TenantStats> {
        let Some(tenant) = self.tenant(t, false)? else {
            return Ok(TenantStats {
                search: "exact",
                ..Default::default()
            });
        };
        let log_records = tenant
            .writer
            .lock()
            .as_ref()
            .map(|w| w.wal.records())
            .unwrap_or(0);
        let idx = tenant.index.read();
        let disk = [snapshot_path(&tenant.dir), wal_path(&tenant.dir)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(TenantStats {
            templates: idx.len() as u64,
            persons: idx.persons() as u64,
            search: if idx.uses_graph() { "hnsw" } else { "exact" },
            log_records,
            disk_bytes: disk,
            memory_bytes: idx.memory_bytes() as u64,
        })
    }

    /// Deletes a tenant's gallery and files; returns whether it existed.
    pub fn drop_tenant(&self, t: &TenantId) -> Result<bool> {
        let tenant = self.tenant(t, false)?;
        let mut map = self.tenants.lock();
        if let Some(tenant) = &tenant {
            let mut w = tenant.writer.lock();
            *w = None;
            *tenant.index.write() = Index::new(self.cfg.dim);
        }
        map.remove(t);
        let dir = self.tenant_dir(t);
        if !dir.exists() {
            return Ok(false);
        }
        std::fs::remove_dir_all(&dir).map_err(GalleryError::io(&dir))?;
        storage::sync_dir(&dir)?;
        Ok(true)
    }

    /// Loads a tenant now (for warm-up); no-op if it has no gallery.
    pub fn preload(&self, t: &TenantId) -> Result<()> {
        self.tenant(t, false).map(|_| ())
    }
}

fn apply(idx: &mut Index, op: &Op, next_id: &mut u64) {
    match op {
        Op::Enroll { id, person, vector } => {
            idx.add(*id, Arc::from(person.as_str()), vector);
            *next_id = (*next_id).max(id + 1);
        }
        Op::RemovePerson { person } => {
            let ids = idx.ids_of(person);
            idx.remove_ids(&ids);
        }
        Op::RemoveTemplates { ids } => {
            idx.remove_ids(ids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_comes_from_exactly_one_of_key_and_key_file() {
        let k = MasterKey::random().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("master.hex");
        std::fs::write(&file, format!("{}\n", k.to_hex())).unwrap();
        let cfg = |key: Option<String>, key_file: Option<PathBuf>| GalleryConfig {
            master_key: key,
            master_key_file: key_file,
            ..GalleryConfig::default()
        };
        assert!(cfg(None, None).master().unwrap().is_none());
        let from_file = cfg(None, Some(file.clone())).master().unwrap().unwrap();
        assert_eq!(from_file.to_hex(), k.to_hex());
        let from_hex = cfg(Some(k.to_hex()), None).master().unwrap().unwrap();
        assert_eq!(from_hex.to_hex(), k.to_hex());
        let e = cfg(Some(k.to_hex()), Some(file)).master().unwrap_err();
        assert!(e.to_string().contains("configure only one"), "{e}");
        let e = cfg(None, Some(dir.path().join("missing")))
            .master()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("master key: cannot read key file"),
            "{e}"
        );
    }
}

//! (MEDIA) Assets: upload of images and videos into the encrypted blob store, thumbnails,
//! exact (sha256) and near (perceptual hash) duplicates, metadata, versions, download, delete.
//!
//! Every query is scoped by `tenant_id`; another tenant's asset answers 404. An upload of an
//! image enqueues a durable `suggest_faces` job in the same transaction (see
//! [`crate::jobs`]), so it succeeds while the matcher is down.

use std::sync::Arc;

use diesel::prelude::*;
use likeness_control_media::phash::{self, NEAR_DUPLICATE_MAX_DISTANCE};
use likeness_control_media::{
    BlobStore, MasterKey, MatcherClient, MatcherConfig, MediaError, MediaKind, ProbeLimits,
    UploadFile,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Deps;
use crate::audit::{self, Who};
use crate::auth::Actor;
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::pagination::{Dir, Page, PageQuery, Paginated};
use crate::roles::Permission;
use crate::schema::{
    asset_versions, assets, face_rejections, faces, jobs, renditions, share_link_assets,
    share_links,
};

/// The media services of one process: blob store, upload limits, matcher client.
#[derive(Debug)]
pub struct Media {
    /// Encrypted blobs.
    pub blobs: BlobStore,
    /// Upload limits.
    pub limits: ProbeLimits,
    /// The matcher client (`None` when `matcher.url` is empty).
    pub matcher: Option<MatcherClient>,
}

/// Maps media-layer errors to the control plane's error.
pub fn media_error(e: MediaError) -> ControlError {
    match e {
        MediaError::BadMedia { reason, message } => {
            if reason == "too_large" {
                ControlError::TooLarge(message)
            } else {
                ControlError::BadRequest {
                    code: match reason {
                        "empty" => "empty_file",
                        "unsupported_format" => "unsupported_media_type",
                        "limits_exceeded" => "image_limits_exceeded",
                        _ => "corrupt_file",
                    },
                    message,
                }
            }
        }
        MediaError::MatcherUnavailable(m) => ControlError::Unavailable {
            code: "matcher_unavailable",
            message: format!("the face matcher is unavailable: {m}"),
        },
        MediaError::MatcherBadInput(m) => ControlError::BadRequest {
            code: "matcher_rejected_input",
            message: m,
        },
        MediaError::BlobNotFound { .. } => ControlError::Internal(e.to_string()),
        MediaError::Matcher(m) => ControlError::Matcher(m),
        MediaError::MasterKeyConfig(m) => ControlError::Config(format!("storage: {m}")),
        other => ControlError::Internal(other.to_string()),
    }
}

/// The process's [`Media`] (created on first use from the configuration).
///
/// Master key: `storage.master_key` or `storage.master_key_file`; when neither is set a
/// development key is created next to the blob directory (`<storage.dir>.key`, mode 0600) and
/// a warning is logged.
pub fn media(state: &Deps) -> Result<Arc<Media>> {
    state.media()
}

/// Opens the blob store and the matcher client as configured.
pub fn open_media(config: &crate::Config) -> Result<Media> {
    let sc = &config.storage;
    let key = match (&sc.master_key, &sc.master_key_file) {
        (None, None) => dev_key(&sc.dir)?,
        (k, f) => MasterKey::from_config(k.as_deref(), f.as_deref()).map_err(media_error)?,
    };
    let blobs = BlobStore::open(&sc.dir, key).map_err(|e| match e {
        MediaError::WrongMasterKey(_) => ControlError::Config(format!("storage: {e}")),
        other => media_error(other),
    })?;
    let mc = &config.matcher;
    let matcher = if mc.url.trim().is_empty() {
        None
    } else {
        Some(
            MatcherClient::new(MatcherConfig {
                url: mc.url.clone(),
                request_timeout_ms: mc.timeout_ms,
                ..MatcherConfig::default()
            })
            .map_err(|e| ControlError::Config(format!("matcher.url: {e}")))?,
        )
    };
    Ok(Media {
        blobs,
        limits: ProbeLimits {
            max_image_bytes: config.server.max_body_bytes,
            max_video_bytes: config.server.max_body_bytes,
            ..ProbeLimits::default()
        },
        matcher,
    })
}

fn dev_key(dir: &std::path::Path) -> Result<MasterKey> {
    let path = dir.with_extension("key");
    if path.is_file() {
        return MasterKey::from_file(&path).map_err(media_error);
    }
    let key = MasterKey::random().map_err(media_error)?;
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| ControlError::Config(format!("storage.dir: {e}")))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(&path) {
        Ok(mut f) => {
            std::io::Write::write_all(&mut f, key.to_hex().as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| ControlError::Config(format!("{}: {e}", path.display())))?;
            tracing::warn!(path = %path.display(), "no storage.master_key configured: created a development master key next to the blobs; configure storage.master_key_file for production");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            MasterKey::from_file(&path).map_err(media_error)
        }
        Err(e) => Err(ControlError::Config(format!("{}: {e}", path.display()))),
    }
}

/// An asset as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = assets)]
pub struct AssetRow {
    /// ID.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// `image` or `video`.
    pub kind: String,
    /// Original file name.
    pub filename: String,
    /// MIME type from the magic bytes.
    pub mime: String,
    /// Size of the current version.
    pub size_bytes: i64,
    /// sha256 of the current version.
    pub sha256: String,
    /// Perceptual hash (16 hex) of the current version.
    pub phash: Option<String>,
    /// Width after orientation.
    pub width: Option<i32>,
    /// Height after orientation.
    pub height: Option<i32>,
    /// Blob of the current version.
    pub blob_key: String,
    /// Blob of the thumbnail.
    pub thumb_blob_key: Option<String>,
    /// Legal basis (DOMAIN).
    pub legal_basis: Option<String>,
    /// Note on the legal basis (DOMAIN).
    pub legal_basis_note: Option<String>,
    /// Free metadata (JSON object).
    pub metadata_json: String,
    /// Current version number.
    pub current_version: i32,
    /// Uploader.
    pub uploaded_by: Option<String>,
    /// Created.
    pub created_at: chrono::NaiveDateTime,
    /// Updated.
    pub updated_at: chrono::NaiveDateTime,
}

/// An asset in API answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AssetOut {
    /// ID.
    pub id: String,
    /// `image` or `video`.
    pub kind: String,
    /// Original file name.
    pub filename: String,
    /// MIME type.
    pub mime: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// sha256 (hex).
    pub sha256: String,
    /// Perceptual hash (16 hex characters), images only.
    pub phash: Option<String>,
    /// Width (after EXIF orientation), images only.
    pub width: Option<i32>,
    /// Height, images only.
    pub height: Option<i32>,
    /// Whether a thumbnail exists (`GET /api/v1/assets/{id}/thumbnail`).
    pub has_thumbnail: bool,
    /// Legal basis.
    pub legal_basis: Option<String>,
    /// Note on the legal basis.
    pub legal_basis_note: Option<String>,
    /// Free metadata.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Current version number (1 = original upload).
    pub current_version: i32,
    /// Uploader's user ID.
    pub uploaded_by: Option<String>,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: chrono::NaiveDateTime,
    /// Updated (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: chrono::NaiveDateTime,
}

impl From<AssetRow> for AssetOut {
    fn from(r: AssetRow) -> Self {
        Self {
            metadata: serde_json::from_str(&r.metadata_json)
                .unwrap_or_else(|_| serde_json::json!({})),
            has_thumbnail: r.thumb_blob_key.is_some(),
            id: r.id,
            kind: r.kind,
            filename: r.filename,
            mime: r.mime,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            phash: r.phash,
            width: r.width,
            height: r.height,
            legal_basis: r.legal_basis,
            legal_basis_note: r.legal_basis_note,
            current_version: r.current_version,
            uploaded_by: r.uploaded_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Another asset of the tenant that is the same file or looks the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Duplicate {
    /// The other asset.
    pub asset_id: String,
    /// Its file name.
    pub filename: String,
    /// `exact` (same sha256) or `near` (perceptual hash within the threshold).
    pub kind: String,
    /// Hamming distance of the perceptual hashes (0 for exact duplicates).
    pub distance: u32,
}

/// The answer to an upload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadOut {
    /// The new asset (or new version).
    pub asset: AssetOut,
    /// Exact and near duplicates among the tenant's other assets, closest first.
    pub duplicates: Vec<Duplicate>,
    /// Whether face detection was queued (images).
    pub faces_queued: bool,
}

/// One version of an asset.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, ToSchema)]
#[diesel(table_name = asset_versions)]
pub struct VersionOut {
    /// Version ID.
    pub id: String,
    /// Version number.
    pub version: i32,
    /// sha256.
    pub sha256: String,
    /// Size.
    pub size_bytes: i64,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: chrono::NaiveDateTime,
}

/// Fetches an asset row of the tenant (404 otherwise).
pub fn get_row(conn: &mut DbConn, tenant: &str, id: &str) -> Result<AssetRow> {
    assets::table
        .filter(assets::tenant_id.eq(tenant))
        .filter(assets::id.eq(id))
        .select(AssetRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found(format!("asset {id}")))
}

/// One asset.
pub fn get(conn: &mut DbConn, tenant: &str, id: &str) -> Result<AssetOut> {
    get_row(conn, tenant, id).map(Into::into)
}

/// Filters of the asset list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetFilter {
    /// `image` or `video`.
    pub kind: Option<String>,
    /// Substring of the file name.
    pub q: Option<String>,
    /// Exact sha256.
    pub sha256: Option<String>,
}

/// The tenant's assets matching `f`, as a query to count, order and page.
fn filtered(
    tenant: &str,
    f: &AssetFilter,
) -> assets::BoxedQuery<'static, <DbConn as diesel::Connection>::Backend> {
    let mut q = assets::table
        .filter(assets::tenant_id.eq(tenant.to_string()))
        .into_boxed();
    if let Some(k) = &f.kind {
        q = q.filter(assets::kind.eq(k.clone()));
    }
    if let Some(s) = &f.q {
        let pat = format!("%{}%", s.replace('%', "\\%").replace('_', "\\_"));
        q = q.filter(assets::filename.like(pat).escape('\\'));
    }
    if let Some(h) = &f.sha256 {
        q = q.filter(assets::sha256.eq(h.to_lowercase()));
    }
    q
}

/// Lists assets, newest first by default (sort keys: `created_at`, `filename`, `size_bytes`).
pub fn list(
    conn: &mut DbConn,
    tenant: &str,
    f: &AssetFilter,
    page: Page,
    sort: (&str, Dir),
) -> Result<Paginated<AssetOut>> {
    let base = || filtered(tenant, f);
    let total: i64 = base().count().get_result(conn)?;
    let mut q = base();
    q = match sort {
        ("filename", Dir::Asc) => q.order((assets::filename.asc(), assets::id.asc())),
        ("filename", Dir::Desc) => q.order((assets::filename.desc(), assets::id.desc())),
        ("size_bytes", Dir::Asc) => q.order((assets::size_bytes.asc(), assets::id.asc())),
        ("size_bytes", Dir::Desc) => q.order((assets::size_bytes.desc(), assets::id.desc())),
        (_, Dir::Asc) => q.order((assets::created_at.asc(), assets::id.asc())),
        (_, Dir::Desc) => q.order((assets::created_at.desc(), assets::id.desc())),
    };
    let rows: Vec<AssetRow> = q
        .select(AssetRow::as_select())
        .limit(page.per_page)
        .offset(page.offset())
        .load(conn)?;
    Ok(Paginated {
        items: rows.into_iter().map(Into::into).collect(),
        total,
        page: page.page,
        per_page: page.per_page,
    })
}

/// The orders of [`browse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrowseOrder {
    /// Newest upload first.
    #[default]
    Newest,
    /// Oldest upload first.
    Oldest,
    /// By file name.
    Name,
    /// Largest first.
    Largest,
}

/// One page of [`browse`].
#[derive(Debug, Clone, Serialize)]
pub struct BrowsePage {
    /// The files of this page.
    pub items: Vec<AssetOut>,
    /// The files matching the filter on all pages.
    pub total: i64,
    /// The cursor of the next page (the last file's ID), if there is one.
    pub next_after: Option<String>,
}

/// Lists assets page by page with a keyset cursor (`after`: the last asset of the previous
/// page), so that page 1,800 costs what page 1 does; for the console, whose lists must stay
/// fast at 100,000 files ([`list`] pages by offset for the REST API).
pub fn browse(
    conn: &mut DbConn,
    tenant: &str,
    f: &AssetFilter,
    order: BrowseOrder,
    after: Option<&str>,
    limit: i64,
) -> Result<BrowsePage> {
    let base = || filtered(tenant, f);
    let total: i64 = base().count().get_result(conn)?;
    let mut q = base();
    if let Some(a) = after {
        let (id, created, name, size): (String, chrono::NaiveDateTime, String, i64) = assets::table
            .filter(assets::tenant_id.eq(tenant))
            .filter(assets::id.eq(a))
            .select((
                assets::id,
                assets::created_at,
                assets::filename,
                assets::size_bytes,
            ))
            .first(conn)
            .optional()?
            .ok_or_else(|| ControlError::invalid("after", format!("no file {a}")))?;
        q = match order {
            // `key <= k AND (key < k OR id < i)` rather than `key < k OR (key = k AND id < i)`:
            // the first term bounds the index range on both databases (PostgreSQL does not use
            // the OR form as an index condition), the second only filters the ties.
            BrowseOrder::Newest => q.filter(
                assets::created_at
                    .le(created)
                    .and(assets::created_at.lt(created).or(assets::id.lt(id))),
            ),
            BrowseOrder::Oldest => q.filter(
                assets::created_at
                    .ge(created)
                    .and(assets::created_at.gt(created).or(assets::id.gt(id))),
            ),
            BrowseOrder::Name => q.filter(
                assets::filename
                    .ge(name.clone())
                    .and(assets::filename.gt(name).or(assets::id.gt(id))),
            ),
            BrowseOrder::Largest => q.filter(
                assets::size_bytes
                    .le(size)
                    .and(assets::size_bytes.lt(size).or(assets::id.lt(id))),
            ),
        };
    }
    q = match order {
        BrowseOrder::Newest => q.order((assets::created_at.desc(), assets::id.desc())),
        BrowseOrder::Oldest => q.order((assets::created_at.asc(), assets::id.asc())),
        BrowseOrder::Name => q.order((assets::filename.asc(), assets::id.asc())),
        BrowseOrder::Largest => q.order((assets::size_bytes.desc(), assets::id.desc())),
    };
    let mut rows: Vec<AssetRow> = q
        .select(AssetRow::as_select())
        .limit(limit + 1)
        .load(conn)?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(0);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_after = if more {
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(BrowsePage {
        items: rows.into_iter().map(Into::into).collect(),
        total,
        next_after,
    })
}

/// A page of the tenant's assets by keyset cursor (every user of the tenant; see [`browse`]).
pub async fn browse_assets(
    ctx: &Ctx,
    filter: AssetFilter,
    order: BrowseOrder,
    after: Option<String>,
    limit: i64,
) -> Result<BrowsePage> {
    if !(1..=500).contains(&limit) {
        return Err(ControlError::invalid("limit", "must be 1..=500"));
    }
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| {
        browse(c, &t, &filter, order, after.as_deref(), limit)
    })
    .await
}

/// Sort keys of [`list`].
pub const SORT_KEYS: &[&str] = &["created_at", "filename", "size_bytes"];

/// Exact and near duplicates of (`sha256`, `phash`) among the tenant's assets other than
/// `except`, closest first.
pub fn find_duplicates(
    conn: &mut DbConn,
    tenant: &str,
    sha256: &str,
    phash_hex: Option<&str>,
    except: Option<&str>,
) -> Result<Vec<Duplicate>> {
    let mut out = Vec::new();
    let exact: Vec<(String, String)> = assets::table
        .filter(assets::tenant_id.eq(tenant))
        .filter(assets::sha256.eq(sha256))
        .select((assets::id, assets::filename))
        .load(conn)?;
    for (id, filename) in exact {
        if Some(id.as_str()) != except {
            out.push(Duplicate {
                asset_id: id,
                filename,
                kind: "exact".into(),
                distance: 0,
            });
        }
    }
    if let Some(h) = phash_hex.and_then(phash::from_hex) {
        let all: Vec<(String, String, Option<String>, String)> = assets::table
            .filter(assets::tenant_id.eq(tenant))
            .filter(assets::phash.is_not_null())
            .filter(assets::sha256.ne(sha256))
            .select((assets::id, assets::filename, assets::phash, assets::sha256))
            .load(conn)?;
        for (id, filename, ph, _) in all {
            if Some(id.as_str()) == except {
                continue;
            }
            if let Some(other) = ph.as_deref().and_then(phash::from_hex) {
                let d = phash::hamming(h, other);
                if d <= NEAR_DUPLICATE_MAX_DISTANCE {
                    out.push(Duplicate {
                        asset_id: id,
                        filename,
                        kind: "near".into(),
                        distance: d,
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| {
        a.distance
            .cmp(&b.distance)
            .then(a.asset_id.cmp(&b.asset_id))
    });
    Ok(out)
}

/// Duplicates of an existing asset.
pub fn duplicates_of(conn: &mut DbConn, tenant: &str, id: &str) -> Result<Vec<Duplicate>> {
    let a = get_row(conn, tenant, id)?;
    find_duplicates(conn, tenant, &a.sha256, a.phash.as_deref(), Some(id))
}

fn check_filename(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 255 {
        return Err(ControlError::invalid(
            "filename",
            "must be 1 to 255 characters",
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(ControlError::invalid(
            "filename",
            "must not contain control characters or path separators",
        ));
    }
    Ok(name.to_string())
}

struct Stored {
    probe: likeness_control_media::Probe,
    blob: String,
    thumb: Option<String>,
}

/// Probes and stores a spooled upload, streamed from its file into the blob store (blocking:
/// run on the blocking pool). Only an image is read into memory, within the probe's limits.
fn probe_and_store(media: &Media, tenant: &str, file: &UploadFile) -> Result<Stored> {
    let probe = likeness_control_media::probe_file(file, &media.limits).map_err(media_error)?;
    let (blob, size) = media
        .blobs
        .put_file_new(tenant, file.path())
        .map_err(media_error)?;
    if size != file.size() {
        let _ = media.blobs.erase(tenant, &blob);
        return Err(ControlError::Internal(format!(
            "the spooled upload changed while it was stored ({} bytes, then {size})",
            file.size()
        )));
    }
    let thumb = match &probe.thumbnail_jpeg {
        Some(t) => match media.blobs.put_new(tenant, t) {
            Ok(id) => Some(id),
            Err(e) => {
                let _ = media.blobs.erase(tenant, &blob);
                return Err(media_error(e));
            }
        },
        None => None,
    };
    Ok(Stored { probe, blob, thumb })
}

fn erase_stored(media: &Media, tenant: &str, s: &Stored) {
    let _ = media.blobs.erase(tenant, &s.blob);
    if let Some(t) = &s.thumb {
        let _ = media.blobs.erase(tenant, t);
    }
}

/// Uploads a new asset: probe, encrypt and store file and thumbnail, record it with its
/// duplicates, and queue face detection for images — all or nothing.
pub async fn upload(
    state: &Deps,
    who: Who,
    tenant: String,
    filename: String,
    file: UploadFile,
    metadata: Option<serde_json::Value>,
) -> Result<UploadOut> {
    let filename = check_filename(&filename)?;
    let metadata = match metadata {
        None => serde_json::json!({}),
        Some(v @ serde_json::Value::Object(_)) => v,
        Some(_) => return Err(ControlError::invalid("metadata", "must be a JSON object")),
    };
    let media = media(state)?;
    let (m, t) = (media.clone(), tenant.clone());
    let stored = crate::blocking(move || probe_and_store(&m, &t, &file)).await??;
    let (m, t) = (media.clone(), tenant.clone());
    db::run(&state.pool, move |c| {
        let r = db::write_tx(c, |c| {
            insert_asset(c, &who, &t, filename, metadata, &stored)
        });
        if r.is_err() {
            erase_stored(&m, &t, &stored);
        }
        r
    })
    .await
}

fn insert_asset(
    c: &mut DbConn,
    who: &Who,
    tenant: &str,
    filename: String,
    metadata: serde_json::Value,
    s: &Stored,
) -> Result<UploadOut> {
    let p = &s.probe;
    let phash_hex = p.phash.map(phash::to_hex);
    let duplicates = find_duplicates(c, tenant, &p.sha256, phash_hex.as_deref(), None)?;
    let now = db::now();
    let row = AssetRow {
        id: db::new_id(),
        tenant_id: tenant.to_string(),
        kind: p.kind.as_str().into(),
        filename,
        mime: p.mime.into(),
        size_bytes: i64::try_from(p.size_bytes).unwrap_or(i64::MAX),
        sha256: p.sha256.clone(),
        phash: phash_hex,
        width: p.width.and_then(|w| i32::try_from(w).ok()),
        height: p.height.and_then(|h| i32::try_from(h).ok()),
        blob_key: s.blob.clone(),
        thumb_blob_key: s.thumb.clone(),
        legal_basis: None,
        legal_basis_note: None,
        metadata_json: serde_json::to_string(&metadata)?,
        current_version: 1,
        uploaded_by: who.user_id.clone(),
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(assets::table).values(&row).execute(c)?;
    insert_version(c, &row)?;
    let faces_queued = p.kind == MediaKind::Image;
    if faces_queued {
        crate::jobs::enqueue_suggest_at(c, tenant, &row.id, row.current_version, now)?;
    }
    crate::exposure::refresh_assets(c, tenant, std::slice::from_ref(&row.id), now)?;
    audit::record(
        c,
        who,
        "asset.upload",
        "asset",
        Some(&row.id),
        serde_json::json!({
            "filename": row.filename, "sha256": row.sha256, "size_bytes": row.size_bytes,
            "kind": row.kind, "duplicates": duplicates.len(),
        }),
    )?;
    Ok(UploadOut {
        asset: row.into(),
        duplicates,
        faces_queued,
    })
}

fn insert_version(c: &mut DbConn, row: &AssetRow) -> Result<()> {
    diesel::insert_into(asset_versions::table)
        .values((
            asset_versions::id.eq(db::new_id()),
            asset_versions::asset_id.eq(&row.id),
            asset_versions::tenant_id.eq(&row.tenant_id),
            asset_versions::version.eq(row.current_version),
            asset_versions::blob_key.eq(&row.blob_key),
            asset_versions::sha256.eq(&row.sha256),
            asset_versions::size_bytes.eq(row.size_bytes),
            asset_versions::created_at.eq(row.updated_at),
        ))
        .execute(c)?;
    Ok(())
}

/// Uploads a new version of an asset (same kind). Detected faces of the old version that no
/// human decided on are dropped and detection runs again; decided and hand-drawn faces stay.
pub async fn upload_version(
    state: &Deps,
    who: Who,
    tenant: String,
    asset_id: String,
    file: UploadFile,
) -> Result<UploadOut> {
    let media = media(state)?;
    {
        let (t, id) = (tenant.clone(), asset_id.clone());
        db::run(&state.pool, move |c| get_row(c, &t, &id)).await?;
    }
    let (m, t) = (media.clone(), tenant.clone());
    let stored = crate::blocking(move || probe_and_store(&m, &t, &file)).await??;
    let (m, t) = (media.clone(), tenant.clone());
    db::run(&state.pool, move |c| {
        let r = db::write_tx(c, |c| {
            let old = get_row(c, &t, &asset_id)?;
            let p = &stored.probe;
            if old.kind != p.kind.as_str() {
                return Err(ControlError::BadRequest {
                    code: "version_kind_mismatch",
                    message: format!(
                        "asset {asset_id} is a {}; a new version must be one too, not a {}",
                        old.kind,
                        p.kind.as_str()
                    ),
                });
            }
            let phash_hex = p.phash.map(phash::to_hex);
            let duplicates =
                find_duplicates(c, &t, &p.sha256, phash_hex.as_deref(), Some(&asset_id))?;
            let version = old.current_version + 1;
            let now = db::now();
            diesel::update(
                assets::table
                    .filter(assets::tenant_id.eq(&t))
                    .filter(assets::id.eq(&asset_id)),
            )
            .set((
                assets::mime.eq(p.mime),
                assets::size_bytes.eq(i64::try_from(p.size_bytes).unwrap_or(i64::MAX)),
                assets::sha256.eq(&p.sha256),
                assets::phash.eq(&phash_hex),
                assets::width.eq(p.width.and_then(|w| i32::try_from(w).ok())),
                assets::height.eq(p.height.and_then(|h| i32::try_from(h).ok())),
                assets::blob_key.eq(&stored.blob),
                assets::thumb_blob_key.eq(&stored.thumb),
                assets::current_version.eq(version),
                assets::updated_at.eq(now),
            ))
            .execute(c)?;
            let row = get_row(c, &t, &asset_id)?;
            insert_version(c, &row)?;
            let faces_queued = p.kind == MediaKind::Image;
            if faces_queued {
                crate::faces::drop_undecided_detected(c, &t, &asset_id)?;
                crate::jobs::enqueue_suggest(c, &t, &asset_id, version)?;
            }
            crate::exposure::refresh_assets(c, &t, std::slice::from_ref(&asset_id), now)?;
            audit::record(
                c,
                &who,
                "asset.new_version",
                "asset",
                Some(&asset_id),
                serde_json::json!({"version": version, "sha256": p.sha256}),
            )?;
            Ok((
                UploadOut {
                    asset: row.into(),
                    duplicates,
                    faces_queued,
                },
                old.thumb_blob_key,
            ))
        });
        match r {
            Ok((out, old_thumb)) => {
                // The old thumbnail is not kept (versions keep their originals).
                if let Some(th) = old_thumb {
                    let _ = m.blobs.erase(&t, &th);
                }
                Ok(out)
            }
            Err(e) => {
                erase_stored(&m, &t, &stored);
                Err(e)
            }
        }
    })
    .await
}

/// Versions of an asset, oldest first.
pub fn versions(conn: &mut DbConn, tenant: &str, id: &str) -> Result<Vec<VersionOut>> {
    get_row(conn, tenant, id)?;
    Ok(asset_versions::table
        .filter(asset_versions::tenant_id.eq(tenant))
        .filter(asset_versions::asset_id.eq(id))
        .order(asset_versions::version.asc())
        .select(VersionOut::as_select())
        .load(conn)?)
}

/// Changes of an asset's metadata.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetPatch {
    /// New file name.
    pub filename: Option<String>,
    /// Replaces the metadata (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// Changes file name or metadata.
pub fn update(
    conn: &mut DbConn,
    who: &Who,
    tenant: &str,
    id: &str,
    patch: AssetPatch,
) -> Result<AssetOut> {
    let mut row = get_row(conn, tenant, id)?;
    if let Some(f) = patch.filename {
        row.filename = check_filename(&f)?;
    }
    if let Some(m) = patch.metadata {
        if !m.is_object() {
            return Err(ControlError::invalid("metadata", "must be a JSON object"));
        }
        row.metadata_json = serde_json::to_string(&m)?;
    }
    row.updated_at = db::now();
    diesel::update(
        assets::table
            .filter(assets::tenant_id.eq(tenant))
            .filter(assets::id.eq(id)),
    )
    .set((
        assets::filename.eq(&row.filename),
        assets::metadata_json.eq(&row.metadata_json),
        assets::updated_at.eq(row.updated_at),
    ))
    .execute(conn)?;
    audit::record(
        conn,
        who,
        "asset.update",
        "asset",
        Some(id),
        serde_json::json!({"filename": row.filename}),
    )?;
    Ok(row.into())
}

/// Whether `actor` may use (download) the asset's file today.
///
/// The compliance rule ([`crate::compliance::require_use`]): an asset allowed in any
/// channel today may be used; otherwise the tenant's `non_approved_use` setting decides
/// (`block`: 403; `warn`: allowed with a warning; `allow_with_permission`: allowed with a
/// warning for actors holding `use_unapproved_files`, 403 for the others). `Ok(Some(warning))`
/// carries the warning to show.
pub fn may_use(
    conn: &mut DbConn,
    actor: &Actor,
    asset: &AssetOut,
    today: chrono::NaiveDate,
) -> Result<Option<String>> {
    crate::compliance::require_use(
        conn,
        &actor.tenant_id,
        &asset.id,
        actor.has(Permission::UseUnapprovedFiles),
        today,
    )
}

/// A file to send: bytes, MIME type, file name.
pub struct FileOut {
    /// Decrypted bytes.
    pub bytes: Vec<u8>,
    /// MIME type.
    pub mime: String,
    /// File name.
    pub filename: String,
    /// Set when the file is not approved for any channel today and the tenant's policy lets
    /// this user have it anyway: the transport shows it (REST: a `Warning` header).
    pub warning: Option<String>,
}

/// Reads the current (or a given) version of an asset, if [`may_use`] allows; audited.
pub async fn download(
    state: &Deps,
    actor: &Actor,
    id: String,
    version: Option<i32>,
) -> Result<FileOut> {
    let media = media(state)?;
    let (a, who, t) = (actor.clone(), actor.who(), actor.tenant_id.clone());
    let today = state.clock.today();
    let (asset, blob, warning) = db::run(&state.pool, move |c| {
        let asset = get(c, &t, &id)?;
        let warning = may_use(c, &a, &asset, today)?;
        let blob = match version {
            None => get_row(c, &t, &id)?.blob_key,
            Some(v) => asset_versions::table
                .filter(asset_versions::tenant_id.eq(&t))
                .filter(asset_versions::asset_id.eq(&id))
                .filter(asset_versions::version.eq(v))
                .select(asset_versions::blob_key)
                .first(c)
                .optional()?
                .ok_or_else(|| ControlError::not_found(format!("version {v} of asset {id}")))?,
        };
        db::write_tx(c, |c| {
            audit::record(
                c,
                &who,
                "asset.download",
                "asset",
                Some(&id),
                serde_json::json!({"version": version, "warning": warning}),
            )
        })?;
        Ok((asset, blob, warning))
    })
    .await?;
    let t = actor.tenant_id.clone();
    let bytes = crate::blocking(move || media.blobs.get(&t, &blob))
        .await?
        .map_err(media_error)?;
    Ok(FileOut {
        bytes,
        mime: if version.is_some() {
            "application/octet-stream".into()
        } else {
            asset.mime
        },
        filename: asset.filename,
        warning,
    })
}

/// The JPEG thumbnail of an image asset.
pub async fn thumbnail(state: &Deps, tenant: String, id: String) -> Result<Vec<u8>> {
    let media = media(state)?;
    let (t, i) = (tenant.clone(), id.clone());
    let row = db::run(&state.pool, move |c| get_row(c, &t, &i)).await?;
    let key = row
        .thumb_blob_key
        .ok_or_else(|| ControlError::not_found(format!("thumbnail of asset {id}")))?;
    crate::blocking(move || media.blobs.get(&tenant, &key))
        .await?
        .map_err(media_error)
}

/// Reads the current file of an asset without permission checks (jobs, re-matching).
pub async fn read_current(state: &Deps, tenant: &str, id: &str) -> Result<(AssetRow, Vec<u8>)> {
    let media = media(state)?;
    let (t, i) = (tenant.to_string(), id.to_string());
    let row = db::run(&state.pool, move |c| get_row(c, &t, &i)).await?;
    let (t, key) = (tenant.to_string(), row.blob_key.clone());
    let bytes = crate::blocking(move || media.blobs.get(&t, &key))
        .await?
        .map_err(media_error)?;
    Ok((row, bytes))
}

/// Deletes an asset: its faces (templates enrolled from them are removed from the matcher
/// first), versions, queued jobs, and every blob.
pub async fn delete(state: &Deps, who: Who, tenant: String, id: String) -> Result<()> {
    let media = media(state)?;
    {
        let (t, i) = (tenant.clone(), id.clone());
        db::run(&state.pool, move |c| get_row(c, &t, &i)).await?;
    }
    crate::faces::remove_asset_templates(state, &tenant, &id).await?;
    let (t, i) = (tenant.clone(), id.clone());
    let deleted_at = state.clock.now();
    let blobs = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            let row = get_row(c, &t, &i)?;
            let mut blobs: Vec<String> = asset_versions::table
                .filter(asset_versions::tenant_id.eq(&t))
                .filter(asset_versions::asset_id.eq(&i))
                .select(asset_versions::blob_key)
                .load(c)?;
            blobs.push(row.blob_key.clone());
            blobs.extend(row.thumb_blob_key.clone());
            // Its renditions, its place in share links, and its allowed set go with it.
            blobs.extend(
                renditions::table
                    .filter(renditions::tenant_id.eq(&t))
                    .filter(renditions::asset_id.eq(&i))
                    .select(renditions::blob_key)
                    .load::<String>(c)?,
            );
            diesel::delete(
                renditions::table
                    .filter(renditions::tenant_id.eq(&t))
                    .filter(renditions::asset_id.eq(&i)),
            )
            .execute(c)?;
            diesel::delete(
                share_link_assets::table.filter(
                    share_link_assets::share_id
                        .eq_any(
                            share_links::table
                                .filter(share_links::tenant_id.eq(&t))
                                .select(share_links::id),
                        )
                        .and(share_link_assets::asset_id.eq(&i)),
                ),
            )
            .execute(c)?;
            crate::exposure::forget_asset(c, &t, &i, deleted_at)?;
            crate::faces::delete_asset_faces(c, &t, &i)?;
            let face_ids = faces::table
                .filter(faces::tenant_id.eq(&t))
                .filter(faces::asset_id.eq(&i))
                .select(faces::id);
            diesel::delete(
                face_rejections::table.filter(face_rejections::face_id.eq_any(face_ids)),
            )
            .execute(c)?;
            diesel::delete(
                faces::table
                    .filter(faces::tenant_id.eq(&t))
                    .filter(faces::asset_id.eq(&i)),
            )
            .execute(c)?;
            diesel::delete(
                jobs::table
                    .filter(jobs::tenant_id.eq(&t))
                    .filter(jobs::payload_json.like(format!("%\"asset_id\":\"{i}\"%"))),
            )
            .execute(c)?;
            diesel::delete(
                asset_versions::table
                    .filter(asset_versions::tenant_id.eq(&t))
                    .filter(asset_versions::asset_id.eq(&i)),
            )
            .execute(c)?;
            diesel::delete(
                assets::table
                    .filter(assets::tenant_id.eq(&t))
                    .filter(assets::id.eq(&i)),
            )
            .execute(c)?;
            audit::record(
                c,
                &who,
                "asset.delete",
                "asset",
                Some(&i),
                serde_json::json!({"filename": row.filename, "sha256": row.sha256}),
            )?;
            Ok(blobs)
        })
    })
    .await?;
    let t = tenant.clone();
    crate::blocking(move || {
        for b in blobs {
            media.blobs.erase(&t, &b).map_err(media_error)?;
        }
        Ok::<(), ControlError>(())
    })
    .await??;
    Ok(())
}

// Use cases: one entry point per operation, each checking its own permissions; inputs a
// transport parses (`Result<T>`) are looked at only after the permission checks.

/// A file to upload as a new asset, as the transport received it.
#[derive(Debug)]
pub struct NewUpload {
    /// The file's name (required).
    pub filename: Option<String>,
    /// Metadata: a JSON object as text, optional.
    pub metadata: Option<String>,
    /// The file, spooled to a temporary file (removed when dropped).
    pub file: UploadFile,
}

/// Uploads an asset (`manage_assets`); see [`upload`]. A transport that reads a large body
/// checks the permission before reading it too.
pub async fn upload_asset(ctx: &Ctx, new: NewUpload) -> Result<UploadOut> {
    ctx.require(Permission::ManageAssets)?;
    let filename = new.filename.ok_or_else(|| {
        ControlError::invalid(
            "filename",
            "missing: give ?filename= (or upload multipart/form-data with a file part)",
        )
    })?;
    let metadata = new
        .metadata
        .map(|s| {
            serde_json::from_str(&s)
                .map_err(|e| ControlError::invalid("metadata", format!("not valid JSON: {e}")))
        })
        .transpose()?;
    upload(
        &ctx.deps,
        ctx.who(),
        ctx.tenant().to_string(),
        filename,
        new.file,
        metadata,
    )
    .await
}

/// Assets of the tenant (every user of the tenant; sort keys [`SORT_KEYS`], default
/// `-created_at`).
pub async fn list_assets(
    ctx: &Ctx,
    page: Result<PageQuery>,
    filter: Result<AssetFilter>,
) -> Result<Paginated<AssetOut>> {
    let (page, filter) = (page?, filter?);
    let p = page.page()?;
    let (key, dir) = page.sort(SORT_KEYS, ("created_at", Dir::Desc))?;
    let key = key.to_string();
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| {
        list(c, &t, &filter, p, (key.as_str(), dir))
    })
    .await
}

/// One asset (every user of the tenant).
pub async fn get_asset(ctx: &Ctx, id: String) -> Result<AssetOut> {
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| get(c, &t, &id)).await
}

/// Changes an asset's file name or metadata (`manage_assets`).
pub async fn update_asset(ctx: &Ctx, id: String, patch: Result<AssetPatch>) -> Result<AssetOut> {
    ctx.require(Permission::ManageAssets)?;
    let patch = patch?;
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| update(c, &who, &t, &id, patch))
    })
    .await
}

/// Deletes an asset with its versions, faces and files (`manage_assets`); see [`delete`].
/// Not an erasure in the sense of `erase`: the bank's own files are the editors' and
/// integrations' working material; erasing a person (and what shows them) needs `erase`.
pub async fn delete_asset(ctx: &Ctx, id: String) -> Result<()> {
    ctx.require(Permission::ManageAssets)?;
    delete(&ctx.deps, ctx.who(), ctx.tenant().to_string(), id).await
}

/// Uploads a new version of an asset (`manage_assets`); see [`upload_version`].
pub async fn upload_asset_version(ctx: &Ctx, id: String, file: UploadFile) -> Result<UploadOut> {
    ctx.require(Permission::ManageAssets)?;
    upload_version(&ctx.deps, ctx.who(), ctx.tenant().to_string(), id, file).await
}

/// Versions of an asset, oldest first (every user of the tenant).
pub async fn list_versions(ctx: &Ctx, id: String) -> Result<Vec<VersionOut>> {
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| versions(c, &t, &id)).await
}

/// Exact and near duplicates of an asset (every user of the tenant).
pub async fn list_duplicates(ctx: &Ctx, id: String) -> Result<Vec<Duplicate>> {
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| duplicates_of(c, &t, &id)).await
}

/// The JPEG thumbnail of an image asset (every user of the tenant).
pub async fn read_thumbnail(ctx: &Ctx, id: String) -> Result<Vec<u8>> {
    thumbnail(&ctx.deps, ctx.tenant().to_string(), id).await
}

/// Downloads a version of an asset's file (default the current one) if the actor may use it
/// today ([`may_use`]); audited.
pub async fn download_file(ctx: &Ctx, id: String, version: Option<i32>) -> Result<FileOut> {
    download(&ctx.deps, &ctx.actor, id, version).await
}

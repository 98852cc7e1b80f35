//! (PUBLISHING) The delivery endpoint's renditions and their in-memory cache.
//!
//! A rendition is a file's version in a size and format (`thumb.jpg`, `large.webp`, ...), or the
//! uploaded bytes (`original`). Renditions are generated once from the version's original,
//! stored as encrypted blobs with a row in `renditions`, and kept in memory in a byte-budget LRU
//! ([`RenditionCache`], in `Deps.renditions`), so a request for a rendition already in memory
//! touches neither the database nor the disk. Watermarked variants (`{size}.wm.{fmt}`) carry
//! a text drawn with a built-in bitmap font ([`watermark`]): the tenant's delivery watermark or
//! a share link's own text.
//!
//! The compliance decision is not made here: callers ask `deps.allowed` first.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use diesel::prelude::*;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbaImage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Deps;
use crate::assets::media_error;
use crate::audit;
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::Permission;
use crate::schema::{asset_versions, assets, renditions, tenants};

/// The settings key (in `tenants.settings_json`) of the delivery watermark text.
pub const WATERMARK_KEY: &str = "delivery_watermark";

/// Longest watermark text, in characters.
pub const WATERMARK_MAX_CHARS: usize = 100;

/// How long a process trusts the tenant's channels and watermark text it read (seconds).
pub const TENANT_TTL_SECS: u64 = 5;

/// A rendition's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 320 px long edge.
    Thumb,
    /// 640 px long edge.
    Small,
    /// 1280 px long edge.
    Medium,
    /// 2048 px long edge.
    Large,
    /// The image's own size, re-encoded.
    Full,
}

impl Size {
    /// Every size, in order.
    pub const ALL: [Size; 5] = [
        Size::Thumb,
        Size::Small,
        Size::Medium,
        Size::Large,
        Size::Full,
    ];

    /// The name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thumb => "thumb",
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
            Self::Full => "full",
        }
    }

    /// The longest edge in pixels (`None`: the image's own size). Images are never enlarged.
    pub fn long_edge(self) -> Option<u32> {
        match self {
            Self::Thumb => Some(320),
            Self::Small => Some(640),
            Self::Medium => Some(1280),
            Self::Large => Some(2048),
            Self::Full => None,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|z| z.as_str() == s)
    }
}

/// A rendition's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JPEG (quality 85).
    Jpg,
    /// PNG.
    Png,
    /// WebP (lossless: the encoder the image crate has).
    Webp,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Jpg, Format::Png, Format::Webp];

    /// The extension in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// What a rendition is: the uploaded bytes, or an image in a size and format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RenditionKind {
    /// The uploaded bytes of the version (images and videos).
    Original,
    /// A re-encoded image.
    Image {
        /// The size.
        size: Size,
        /// The encoding.
        format: Format,
    },
}

/// A parsed rendition name (`thumb.jpg`, `large.wm.webp`, `original`) with the watermark text
/// it carries, if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RenditionSpec {
    /// Original or image.
    pub kind: RenditionKind,
    /// The watermark text drawn on the image (`None`: none).
    pub watermark: Option<String>,
}

/// Every rendition name the delivery endpoint knows, without watermark variants.
pub fn rendition_names() -> Vec<String> {
    let mut out = Vec::new();
    for s in Size::ALL {
        for f in Format::ALL {
            out.push(format!("{}.{}", s.as_str(), f.as_str()));
        }
    }
    out.push("original".into());
    out
}

fn unknown(name: &str) -> ControlError {
    let shown: String = name.chars().take(80).collect();
    ControlError::not_found(format!(
        "rendition {shown:?} (known: original, or {{thumb|small|medium|large|full}}[.wm].{{jpg|png|webp}})"
    ))
}

impl RenditionSpec {
    /// Whether the name asks for the watermarked variant (`{size}.wm.{fmt}`).
    pub fn wants_watermark(name: &str) -> bool {
        name.split('.').nth(1) == Some("wm") && name.split('.').count() == 3
    }

    /// Parses a rendition name. `watermark`: the text to draw; when it is `Some`, every image
    /// rendition carries it (a share link's text applies to `thumb.jpg` too), and `original`
    /// is refused (its bytes cannot carry a watermark). A `.wm.` name without a text is
    /// refused too. Refusals are `NotFound` naming the rendition.
    pub fn parse(name: &str, watermark: Option<String>) -> Result<RenditionSpec> {
        let watermark = watermark
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty());
        if name == "original" {
            if watermark.is_some() {
                return Err(ControlError::not_found(
                    "rendition \"original\" with a watermark (use full.jpg)",
                ));
            }
            return Ok(RenditionSpec {
                kind: RenditionKind::Original,
                watermark: None,
            });
        }
        let parts: Vec<&str> = name.split('.').collect();
        let (size, wm, fmt) = match parts.as_slice() {
            [s, f] => (*s, false, *f),
            [s, "wm", f] => (*s, true, *f),
            _ => return Err(unknown(name)),
        };
        let (Some(size), Some(format)) = (Size::parse(size), Format::parse(fmt)) else {
            return Err(unknown(name));
        };
        if wm && watermark.is_none() {
            return Err(ControlError::not_found(format!(
                "rendition {name:?}: no watermark text is set"
            )));
        }
        Ok(RenditionSpec {
            kind: RenditionKind::Image { size, format },
            watermark,
        })
    }

    /// The name in URLs (`thumb.jpg`, `thumb.wm.jpg`, `original`).
    pub fn name(&self) -> String {
        match (&self.kind, &self.watermark) {
            (RenditionKind::Original, _) => "original".into(),
            (RenditionKind::Image { size, format }, None) => {
                format!("{}.{}", size.as_str(), format.as_str())
            }
            (RenditionKind::Image { size, format }, Some(_)) => {
                format!("{}.wm.{}", size.as_str(), format.as_str())
            }
        }
    }

    /// The stored key (`renditions.spec`): the name, with a hash of the watermark text so a
    /// changed text makes a new rendition.
    pub fn key(&self) -> String {
        match (&self.kind, &self.watermark) {
            (RenditionKind::Image { size, format }, Some(text)) => {
                let h = hex::encode(&Sha256::digest(text.as_bytes())[..8]);
                format!("{}.wm-{h}.{}", size.as_str(), format.as_str())
            }
            _ => self.name(),
        }
    }
}

/// Rendition bytes, ready to serve.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// The bytes.
    pub bytes: Bytes,
    /// The MIME type.
    pub mime: String,
    /// The strong entity tag, quoted (`"…"`).
    pub etag: String,
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(bytes)[..16]))
}

struct Entry {
    value: Arc<Rendition>,
    last_used: AtomicU64,
}

#[derive(Default)]
struct Lru {
    map: HashMap<String, Entry>,
    bytes: usize,
}

/// Rendition bytes kept in memory: at most a byte budget, the least recently used dropped first.
/// A lookup takes a read lock only (the recency is an atomic counter), so concurrent requests do
/// not serialise on it.
#[derive(Default)]
pub struct RenditionCache {
    budget: usize,
    lru: RwLock<Lru>,
    tick: AtomicU64,
    /// One generation at a time per rendition in this process.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Tenant id -> (its channels and watermark, read at).
    tenants: RwLock<HashMap<String, (Arc<TenantDelivery>, Instant)>>,
}

impl std::fmt::Debug for RenditionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenditionCache")
            .field("budget", &self.budget)
            .field("bytes", &self.used())
            .finish_non_exhaustive()
    }
}

fn cache_key(tenant_id: &str, asset_id: &str, version: i32, spec_key: &str) -> String {
    format!("{tenant_id}/{asset_id}/{version}/{spec_key}")
}

impl RenditionCache {
    /// A cache holding at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.lru.read().map(|l| l.bytes).unwrap_or(0)
    }

    /// Renditions held now.
    pub fn len(&self) -> usize {
        self.lru.read().map(|l| l.map.len()).unwrap_or(0)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rendition under `key`, marking it used.
    pub fn get(&self, key: &str) -> Option<Arc<Rendition>> {
        let l = self.lru.read().ok()?;
        let e = l.map.get(key)?;
        e.last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(Arc::clone(&e.value))
    }

    /// Keeps `value` under `key` if it fits in an eighth of the budget, dropping the least
    /// recently used entries until the total fits.
    pub fn insert(&self, key: String, value: Arc<Rendition>) {
        let size = value.bytes.len();
        if self.budget == 0 || size > self.budget / 8 {
            return;
        }
        let Ok(mut l) = self.lru.write() else {
            return;
        };
        let entry = Entry {
            value,
            last_used: AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed)),
        };
        if let Some(old) = l.map.insert(key, entry) {
            l.bytes -= old.value.bytes.len();
        }
        l.bytes += size;
        if l.bytes > self.budget {
            // Evict down to 90 % of the budget in one pass (amortises the sort).
            let target = self.budget / 10 * 9;
            let mut order: Vec<(u64, String, usize)> = l
                .map
                .iter()
                .map(|(k, e)| {
                    (
                        e.last_used.load(Ordering::Relaxed),
                        k.clone(),
                        e.value.bytes.len(),
                    )
                })
                .collect();
            order.sort_unstable_by_key(|(t, _, _)| *t);
            for (_, k, n) in order {
                if l.bytes <= target {
                    break;
                }
                l.map.remove(&k);
                l.bytes -= n;
            }
        }
    }

    /// Drops every rendition of a file (all versions).
    pub fn forget_asset(&self, tenant_id: &str, asset_id: &str) {
        let prefix = format!("{tenant_id}/{asset_id}/");
        if let Ok(mut l) = self.lru.write() {
            let keys: Vec<String> = l
                .map
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            for k in keys {
                if let Some(e) = l.map.remove(&k) {
                    l.bytes -= e.value.bytes.len();
                }
            }
        }
    }

    fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.inflight.lock() {
            Ok(mut m) => Arc::clone(m.entry(key.to_string()).or_default()),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn ungate(&self, key: &str) {
        if let Ok(mut m) = self.inflight.lock()
            && let Some(g) = m.get(key)
            && Arc::strong_count(g) == 1
        {
            m.remove(key);
        }
    }

    fn cached_tenant(&self, tenant_id: &str) -> Option<Arc<TenantDelivery>> {
        let w = self.tenants.read().ok()?;
        let (t, at) = w.get(tenant_id)?;
        (at.elapsed() < Duration::from_secs(TENANT_TTL_SECS)).then(|| Arc::clone(t))
    }

    fn remember_tenant(&self, tenant_id: &str, t: Arc<TenantDelivery>) {
        if let Ok(mut w) = self.tenants.write() {
            w.insert(tenant_id.to_string(), (t, Instant::now()));
        }
    }

    fn forget_tenant(&self, tenant_id: &str) {
        if let Ok(mut w) = self.tenants.write() {
            w.remove(tenant_id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generation

/// Largest decoded image the renditions accept (pixels).
const MAX_PIXELS: u64 = 100_000_000;

fn decode_oriented(bytes: &[u8]) -> Result<DynamicImage> {
    let bad = |m: String| ControlError::Internal(format!("rendition: {m}"));
    let format = image::guess_format(bytes).map_err(|e| bad(format!("not an image: {e}")))?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP
    ) {
        return Err(bad(format!("unsupported image format {format:?}")));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(bad(format!("image of {w}x{h} pixels is too large")));
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

/// Generates an image rendition from the original's bytes (blocking: call on the blocking pool).
pub fn generate(
    original: &[u8],
    size: Size,
    format: Format,
    watermark: Option<&str>,
) -> Result<Vec<u8>> {
    let img = decode_oriented(original)?;
    let (w, h) = (img.width(), img.height());
    let img = match size.long_edge() {
        Some(edge) if w.max(h) > edge => {
            let scale = f64::from(edge) / f64::from(w.max(h));
            let tw = ((f64::from(w) * scale).round() as u32).clamp(1, edge);
            let th = ((f64::from(h) * scale).round() as u32).clamp(1, edge);
            img.resize_exact(tw, th, FilterType::Triangle)
        }
        _ => img,
    };
    let keep_alpha = format != Format::Jpg && img.color().has_alpha();
    let mut rgba: RgbaImage = img.to_rgba8();
    if let Some(text) = watermark {
        watermark::draw(&mut rgba, text);
    }
    let mut out = Vec::new();
    let enc = |e: image::ImageError| ControlError::Internal(format!("rendition encoding: {e}"));
    match format {
        Format::Jpg => {
            let rgb = DynamicImage::ImageRgba8(rgba).to_rgb8();
            JpegEncoder::new_with_quality(&mut out, 85)
                .encode_image(&rgb)
                .map_err(enc)?;
        }
        Format::Png | Format::Webp => {
            let img = if keep_alpha {
                DynamicImage::ImageRgba8(rgba)
            } else {
                DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).to_rgb8())
            };
            if format == Format::Png {
                img.write_with_encoder(PngEncoder::new(&mut out))
                    .map_err(enc)?;
            } else {
                img.write_with_encoder(WebPEncoder::new_lossless(&mut out))
                    .map_err(enc)?;
            }
        }
    }
    Ok(out)
}

/// What is needed to make a rendition of a version: its original's blob and type.
struct Source {
    kind: String,
    mime: String,
    blob_key: String,
    sha256: String,
}

fn source(conn: &mut DbConn, tenant_id: &str, asset_id: &str, version: i32) -> Result<Source> {
    let (kind, mime, current): (String, String, i32) = assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(assets::id.eq(asset_id))
        .select((assets::kind, assets::mime, assets::current_version))
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found(format!("asset {asset_id}")))?;
    let (blob_key, sha256): (String, String) = asset_versions::table
        .filter(asset_versions::tenant_id.eq(tenant_id))
        .filter(asset_versions::asset_id.eq(asset_id))
        .filter(asset_versions::version.eq(version))
        .select((asset_versions::blob_key, asset_versions::sha256))
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found(format!("version {version} of asset {asset_id}")))?;
    Ok(Source {
        kind,
        // An older version's type is not recorded: sniffed when read.
        mime: if version == current {
            mime
        } else {
            String::new()
        },
        blob_key,
        sha256,
    })
}

fn sniff_mime(bytes: &[u8]) -> String {
    if let Some(m) = likeness_control_media::probe::sniff_video(bytes) {
        return m.into();
    }
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => "image/jpeg".into(),
        Ok(ImageFormat::Png) => "image/png".into(),
        Ok(ImageFormat::WebP) => "image/webp".into(),
        _ => "application/octet-stream".into(),
    }
}

/// The rendition `spec` of `version` of a file: from memory, else from the `renditions` table
/// and the blob store, else generated from the version's original (stored as a blob and a row
/// once; two processes racing to store the same rendition is harmless). No permission or
/// compliance check: the caller decided (`deps.allowed`). A video has only `original`.
pub async fn rendition(
    deps: &Deps,
    tenant_id: &str,
    asset_id: &str,
    version: i32,
    spec: &RenditionSpec,
) -> Result<Arc<Rendition>> {
    let spec_key = spec.key();
    let key = cache_key(tenant_id, asset_id, version, &spec_key);
    if let Some(r) = deps.renditions.get(&key) {
        return Ok(r);
    }
    let gate = deps.renditions.gate(&key);
    let out = {
        let _one = gate.lock().await;
        // Another request of this process may have made it while this one waited.
        match deps.renditions.get(&key) {
            Some(r) => Ok(r),
            None => load_or_make(deps, tenant_id, asset_id, version, spec, &spec_key).await,
        }
    };
    drop(gate);
    deps.renditions.ungate(&key);
    let r = out?;
    deps.renditions.insert(key, Arc::clone(&r));
    Ok(r)
}

async fn load_or_make(
    deps: &Deps,
    tenant_id: &str,
    asset_id: &str,
    version: i32,
    spec: &RenditionSpec,
    spec_key: &str,
) -> Result<Arc<Rendition>> {
    let media = deps.media()?;
    let (t, a, k) = (
        tenant_id.to_string(),
        asset_id.to_string(),
        spec_key.to_string(),
    );
    let (stored, src) = db::run(&deps.pool, move |c| {
        let stored: Option<(String, String, String)> = renditions::table
            .filter(renditions::tenant_id.eq(&t))
            .filter(renditions::asset_id.eq(&a))
            .filter(renditions::asset_version.eq(version))
            .filter(renditions::spec.eq(&k))
            .select((renditions::blob_key, renditions::mime, renditions::etag))
            .first(c)
            .optional()?;
        let src = match stored {
            Some(_) => None,
            None => Some(source(c, &t, &a, version)?),
        };
        Ok::<_, ControlError>((stored, src))
    })
    .await?;
    if let Some((blob_key, mime, etag)) = stored {
        let (m, t) = (Arc::clone(&media), tenant_id.to_string());
        let bytes = crate::blocking(move || m.blobs.get(&t, &blob_key))
            .await?
            .map_err(media_error)?;
        return Ok(Arc::new(Rendition {
            bytes: Bytes::from(bytes),
            mime,
            etag,
        }));
    }
    let Some(src) = src else {
        return Err(ControlError::Internal("rendition source missing".into()));
    };
    let (m, t, key) = (Arc::clone(&media), tenant_id.to_string(), src.blob_key);
    let original = crate::blocking(move || m.blobs.get(&t, &key))
        .await?
        .map_err(media_error)?;
    let (size, format) = match spec.kind {
        RenditionKind::Original => {
            let mime = if src.mime.is_empty() {
                sniff_mime(&original)
            } else {
                src.mime
            };
            return Ok(Arc::new(Rendition {
                bytes: Bytes::from(original),
                mime,
                etag: format!("\"{}\"", &src.sha256[..src.sha256.len().min(32)]),
            }));
        }
        RenditionKind::Image { size, format } => (size, format),
    };
    if src.kind != "image" {
        return Err(ControlError::not_found(format!(
            "rendition {:?} of a {} (only \"original\")",
            spec.name(),
            src.kind
        )));
    }
    let text = spec.watermark.clone();
    let bytes =
        crate::blocking(move || generate(&original, size, format, text.as_deref())).await??;
    let etag = etag_of(&bytes);
    // Stored once: the blob, then the row; if another process stored the row first, ours is
    // dropped (the bytes are the same rendition).
    let (m, t) = (Arc::clone(&media), tenant_id.to_string());
    let b = bytes.clone();
    let blob_key = crate::blocking(move || m.blobs.put_new(&t, &b))
        .await?
        .map_err(media_error)?;
    let (t, a, k, bk, e) = (
        tenant_id.to_string(),
        asset_id.to_string(),
        spec_key.to_string(),
        blob_key.clone(),
        etag.clone(),
    );
    let size_bytes = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    let mime = format.mime().to_string();
    let mi = mime.clone();
    let inserted = db::run(&deps.pool, move |c| {
        let r = diesel::insert_into(renditions::table)
            .values((
                renditions::tenant_id.eq(&t),
                renditions::asset_id.eq(&a),
                renditions::asset_version.eq(version),
                renditions::spec.eq(&k),
                renditions::blob_key.eq(&bk),
                renditions::mime.eq(&mi),
                renditions::size_bytes.eq(size_bytes),
                renditions::etag.eq(&e),
                renditions::created_at.eq(db::now()),
            ))
            .execute(c);
        match r {
            Ok(_) => Ok(true),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Ok(false),
            Err(e) => Err(ControlError::from(e)),
        }
    })
    .await?;
    if !inserted {
        let (m, t) = (Arc::clone(&media), tenant_id.to_string());
        let _ = crate::blocking(move || m.blobs.erase(&t, &blob_key)).await;
    }
    Ok(Arc::new(Rendition {
        bytes: Bytes::from(bytes),
        mime,
        etag,
    }))
}

/// Erases every stored rendition of a file (rows and blobs) and forgets them in this process:
/// for erasure and deletion. Returns how many were erased.
pub async fn erase_asset(deps: &Deps, tenant_id: &str, asset_id: &str) -> Result<usize> {
    deps.renditions.forget_asset(tenant_id, asset_id);
    let (t, a) = (tenant_id.to_string(), asset_id.to_string());
    let keys: Vec<String> = db::run(&deps.pool, move |c| {
        let keys = renditions::table
            .filter(renditions::tenant_id.eq(&t))
            .filter(renditions::asset_id.eq(&a))
            .select(renditions::blob_key)
            .load(c)?;
        diesel::delete(
            renditions::table
                .filter(renditions::tenant_id.eq(&t))
                .filter(renditions::asset_id.eq(&a)),
        )
        .execute(c)?;
        Ok::<_, ControlError>(keys)
    })
    .await?;
    let media = deps.media()?;
    let t = tenant_id.to_string();
    let n = keys.len();
    crate::blocking(move || {
        for k in keys {
            let _ = media.blobs.erase(&t, &k);
        }
    })
    .await?;
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// The tenant's delivery watermark

fn settings_value(conn: &mut DbConn, tenant_id: &str) -> Result<serde_json::Value> {
    let raw: String = tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::settings_json)
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("tenant"))?;
    Ok(serde_json::from_str(&raw).unwrap_or_default())
}

fn watermark_of(v: &serde_json::Value) -> Option<String> {
    v.get(WATERMARK_KEY)
        .and_then(|w| w.as_str())
        .map(str::to_string)
        .filter(|w| !w.trim().is_empty())
}

/// What the delivery endpoint needs of a tenant besides the allowed set: its channels (to tell
/// an unknown channel, 404, from a file not allowed on a known one, 451) and its watermark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantDelivery {
    /// The tenant's channels.
    pub channels: Vec<String>,
    /// The delivery watermark text (`None`: none set).
    pub watermark: Option<String>,
}

/// The tenant's channels and watermark as this process last read them (re-read at most every
/// [`TENANT_TTL_SECS`] seconds, so a change reaches every process within that time; a change
/// made by this process applies at once).
pub async fn tenant_delivery(deps: &Deps, tenant_id: &str) -> Result<Arc<TenantDelivery>> {
    if let Some(t) = deps.renditions.cached_tenant(tenant_id) {
        return Ok(t);
    }
    let t = tenant_id.to_string();
    let out = db::run(&deps.pool, move |c| {
        let v = settings_value(c, &t)?;
        let channels = crate::settings::get(c, &t)?.channels;
        Ok::<_, ControlError>(TenantDelivery {
            channels,
            watermark: watermark_of(&v),
        })
    })
    .await?;
    let out = Arc::new(out);
    deps.renditions.remember_tenant(tenant_id, Arc::clone(&out));
    Ok(out)
}

/// The address delivery URLs are built on: `delivery.public_base_url`, else
/// `signing.public_base_url` (no trailing slash).
pub fn base_url(config: &crate::Config) -> String {
    let b = if config.delivery.public_base_url.is_empty() {
        &config.signing.public_base_url
    } else {
        &config.delivery.public_base_url
    };
    b.trim_end_matches('/').to_string()
}

/// The public URL of a rendition: `{base}/d/{tenant_slug}/{asset_id}/{channel}/{rendition}`.
pub fn delivery_url(base: &str, slug: &str, asset_id: &str, channel: &str, name: &str) -> String {
    format!("{base}/d/{slug}/{asset_id}/{channel}/{name}")
}

/// A rendition's URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenditionUrl {
    /// The rendition name (`thumb.jpg`, `large.wm.webp`, `original`).
    pub name: String,
    /// Its public URL.
    pub url: String,
}

/// The delivery URLs of a file on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelDelivery {
    /// The channel.
    pub channel: String,
    /// Whether the URLs serve the file today (else they answer 451).
    pub served: bool,
    /// The last day they serve it under the current facts (`null`: no end known, or not
    /// served).
    #[schema(value_type = Option<String>, format = Date)]
    pub until: Option<chrono::NaiveDate>,
    /// The renditions (images: every size and format, and the watermarked variants when the
    /// tenant has a watermark; videos: `original` only).
    pub renditions: Vec<RenditionUrl>,
}

/// The delivery URLs of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssetDelivery {
    /// The file.
    pub asset_id: String,
    /// Its current version (what the URLs serve).
    pub version: i32,
    /// `image` or `video`.
    pub kind: String,
    /// Per channel of the tenant.
    pub channels: Vec<ChannelDelivery>,
}

/// The delivery URLs of a file per channel and rendition, and whether each channel's URLs serve
/// it today (from the allowed set the endpoint itself uses). Every user of the tenant.
pub async fn asset_delivery(ctx: &Ctx, asset_id: String) -> Result<AssetDelivery> {
    if asset_id.len() > 200 || asset_id.chars().any(char::is_control) {
        // Not an id any file has (and PostgreSQL refuses NUL bytes in text).
        return Err(ControlError::not_found("asset"));
    }
    let deps = &ctx.deps;
    deps.allowed.ensure_loaded(&deps.pool).await?;
    let (t, a) = (ctx.tenant().to_string(), asset_id.clone());
    let (slug, kind, version, channels, watermark) = db::run(&deps.pool, move |c| {
        let (kind, version): (String, i32) = assets::table
            .filter(assets::tenant_id.eq(&t))
            .filter(assets::id.eq(&a))
            .select((assets::kind, assets::current_version))
            .first(c)
            .optional()?
            .ok_or_else(|| ControlError::not_found(format!("asset {a}")))?;
        let slug: String = tenants::table
            .filter(tenants::id.eq(&t))
            .select(tenants::slug)
            .first(c)?;
        let channels = crate::settings::get(c, &t)?.channels;
        let watermark = watermark_of(&settings_value(c, &t)?);
        Ok::<_, ControlError>((slug, kind, version, channels, watermark))
    })
    .await?;
    let base = base_url(&deps.config);
    let today = ctx.today();
    let entry = deps.allowed.get(ctx.tenant(), &asset_id);
    let mut names = Vec::new();
    if kind == "image" {
        for s in Size::ALL {
            for f in Format::ALL {
                names.push(format!("{}.{}", s.as_str(), f.as_str()));
                if watermark.is_some() {
                    names.push(format!("{}.wm.{}", s.as_str(), f.as_str()));
                }
            }
        }
    }
    names.push("original".to_string());
    let channels = channels
        .into_iter()
        .map(|ch| {
            let allowed = entry
                .as_ref()
                .and_then(|e| e.channels.iter().find(|(c, _)| *c == ch).map(|(_, u)| *u));
            let served = entry.as_ref().is_some_and(|e| e.allows(&ch, today));
            ChannelDelivery {
                renditions: names
                    .iter()
                    .map(|n| RenditionUrl {
                        name: n.clone(),
                        url: delivery_url(&base, &slug, &asset_id, &ch, n),
                    })
                    .collect(),
                until: if served { allowed.flatten() } else { None },
                served,
                channel: ch,
            }
        })
        .collect();
    Ok(AssetDelivery {
        asset_id,
        version,
        kind,
        channels,
    })
}

/// The delivery watermark setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSetting {
    /// The text drawn on `{size}.wm.{fmt}` renditions (`null` or empty: none; at most 100
    /// characters; letters outside ASCII are drawn without their accents).
    #[serde(default)]
    pub text: Option<String>,
}

/// The tenant's delivery watermark (every user of the tenant).
pub async fn get_watermark(ctx: &Ctx) -> Result<WatermarkSetting> {
    let t = ctx.tenant().to_string();
    let v = db::run(&ctx.deps.pool, move |c| settings_value(c, &t)).await?;
    Ok(WatermarkSetting {
        text: watermark_of(&v),
    })
}

/// Sets the tenant's delivery watermark (`manage_settings`, checked before the body's parse
/// result); audited as `delivery.watermark`.
pub async fn set_watermark(ctx: &Ctx, new: Result<WatermarkSetting>) -> Result<WatermarkSetting> {
    ctx.require(Permission::ManageSettings)?;
    let text = new?
        .text
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(t) = &text {
        if t.chars().count() > WATERMARK_MAX_CHARS {
            return Err(ControlError::invalid(
                "text",
                format!("at most {WATERMARK_MAX_CHARS} characters"),
            ));
        }
        if t.chars().any(char::is_control) {
            return Err(ControlError::invalid(
                "text",
                "control characters are not allowed",
            ));
        }
    }
    let (who, tid, tx) = (ctx.who(), ctx.tenant().to_string(), text.clone());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let raw: String = tenants::table
                .filter(tenants::id.eq(&tid))
                .select(tenants::settings_json)
                .first(c)?;
            let mut v: serde_json::Value = serde_json::from_str(&raw).unwrap_or_default();
            if !v.is_object() {
                v = serde_json::json!({});
            }
            let old = v.get(WATERMARK_KEY).cloned();
            if let Some(o) = v.as_object_mut() {
                match &tx {
                    Some(t) => o.insert(WATERMARK_KEY.into(), serde_json::json!(t)),
                    None => o.remove(WATERMARK_KEY),
                };
            }
            diesel::update(tenants::table.filter(tenants::id.eq(&tid)))
                .set(tenants::settings_json.eq(serde_json::to_string(&v)?))
                .execute(c)?;
            audit::record(
                c,
                &who,
                "delivery.watermark",
                "tenant",
                Some(&tid),
                serde_json::json!({ "old": old, "new": tx }),
            )
        })
    })
    .await?;
    ctx.deps.renditions.forget_tenant(ctx.tenant());
    Ok(WatermarkSetting { text })
}

pub mod watermark {
    //! A watermark drawn with a built-in 5x7 bitmap font (no font files): the text in
    //! semi-transparent white with a dark shadow, tiled over the image in staggered rows.

    use image::RgbaImage;

    /// The 5x7 glyphs of ASCII 32..=126, five columns each, bit 0 the top row.
    const FONT: [[u8; 5]; 95] = [
        [0x00, 0x00, 0x00, 0x00, 0x00], // space
        [0x00, 0x00, 0x5F, 0x00, 0x00], // !
        [0x00, 0x07, 0x00, 0x07, 0x00], // "
        [0x14, 0x7F, 0x14, 0x7F, 0x14], // #
        [0x24, 0x2A, 0x7F, 0x2A, 0x12], // $
        [0x23, 0x13, 0x08, 0x64, 0x62], // %
        [0x36, 0x49, 0x55, 0x22, 0x50], // &
        [0x00, 0x05, 0x03, 0x00, 0x00], // '
        [0x00, 0x1C, 0x22, 0x41, 0x00], // (
        [0x00, 0x41, 0x22, 0x1C, 0x00], // )
        [0x08, 0x2A, 0x1C, 0x2A, 0x08], // *
        [0x08, 0x08, 0x3E, 0x08, 0x08], // +
        [0x00, 0x50, 0x30, 0x00, 0x00], // ,
        [0x08, 0x08, 0x08, 0x08, 0x08], // -
        [0x00, 0x60, 0x60, 0x00, 0x00], // .
        [0x20, 0x10, 0x08, 0x04, 0x02], // /
        [0x3E, 0x51, 0x49, 0x45, 0x3E], // 0
        [0x00, 0x42, 0x7F, 0x40, 0x00], // 1
        [0x42, 0x61, 0x51, 0x49, 0x46], // 2
        [0x21, 0x41, 0x45, 0x4B, 0x31], // 3
        [0x18, 0x14, 0x12, 0x7F, 0x10], // 4
        [0x27, 0x45, 0x45, 0x45, 0x39], // 5
        [0x3C, 0x4A, 0x49, 0x49, 0x30], // 6
        [0x01, 0x71, 0x09, 0x05, 0x03], // 7
        [0x36, 0x49, 0x49, 0x49, 0x36], // 8
        [0x06, 0x49, 0x49, 0x29, 0x1E], // 9
        [0x00, 0x36, 0x36, 0x00, 0x00], // :
        [0x00, 0x56, 0x36, 0x00, 0x00], // ;
        [0x08, 0x14, 0x22, 0x41, 0x00], // <
        [0x14, 0x14, 0x14, 0x14, 0x14], // =
        [0x00, 0x41, 0x22, 0x14, 0x08], // >
        [0x02, 0x01, 0x51, 0x09, 0x06], // ?
        [0x32, 0x49, 0x79, 0x41, 0x3E], // @
        [0x7E, 0x11, 0x11, 0x11, 0x7E], // A
        [0x7F, 0x49, 0x49, 0x49, 0x36], // B
        [0x3E, 0x41, 0x41, 0x41, 0x22], // C
        [0x7F, 0x41, 0x41, 0x22, 0x1C], // D
        [0x7F, 0x49, 0x49, 0x49, 0x41], // E
        [0x7F, 0x09, 0x09, 0x09, 0x01], // F
        [0x3E, 0x41, 0x49, 0x49, 0x7A], // G
        [0x7F, 0x08, 0x08, 0x08, 0x7F], // H
        [0x00, 0x41, 0x7F, 0x41, 0x00], // I
        [0x20, 0x40, 0x41, 0x3F, 0x01], // J
        [0x7F, 0x08, 0x14, 0x22, 0x41], // K
        [0x7F, 0x40, 0x40, 0x40, 0x40], // L
        [0x7F, 0x02, 0x0C, 0x02, 0x7F], // M
        [0x7F, 0x04, 0x08, 0x10, 0x7F], // N
        [0x3E, 0x41, 0x41, 0x41, 0x3E], // O
        [0x7F, 0x09, 0x09, 0x09, 0x06], // P
        [0x3E, 0x41, 0x51, 0x21, 0x5E], // Q
        [0x7F, 0x09, 0x19, 0x29, 0x46], // R
        [0x46, 0x49, 0x49, 0x49, 0x31], // S
        [0x01, 0x01, 0x7F, 0x01, 0x01], // T
        [0x3F, 0x40, 0x40, 0x40, 0x3F], // U
        [0x1F, 0x20, 0x40, 0x20, 0x1F], // V
        [0x3F, 0x40, 0x38, 0x40, 0x3F], // W
        [0x63, 0x14, 0x08, 0x14, 0x63], // X
        [0x07, 0x08, 0x70, 0x08, 0x07], // Y
        [0x61, 0x51, 0x49, 0x45, 0x43], // Z
        [0x00, 0x7F, 0x41, 0x41, 0x00], // [
        [0x02, 0x04, 0x08, 0x10, 0x20], // backslash
        [0x00, 0x41, 0x41, 0x7F, 0x00], // ]
        [0x04, 0x02, 0x01, 0x02, 0x04], // ^
        [0x40, 0x40, 0x40, 0x40, 0x40], // _
        [0x00, 0x01, 0x02, 0x04, 0x00], // `
        [0x20, 0x54, 0x54, 0x54, 0x78], // a
        [0x7F, 0x48, 0x44, 0x44, 0x38], // b
        [0x38, 0x44, 0x44, 0x44, 0x20], // c
        [0x38, 0x44, 0x44, 0x48, 0x7F], // d
        [0x38, 0x54, 0x54, 0x54, 0x18], // e
        [0x08, 0x7E, 0x09, 0x01, 0x02], // f
        [0x0C, 0x52, 0x52, 0x52, 0x3E], // g
        [0x7F, 0x08, 0x04, 0x04, 0x78], // h
        [0x00, 0x44, 0x7D, 0x40, 0x00], // i
        [0x20, 0x40, 0x44, 0x3D, 0x00], // j
        [0x7F, 0x10, 0x28, 0x44, 0x00], // k
        [0x00, 0x41, 0x7F, 0x40, 0x00], // l
        [0x7C, 0x04, 0x18, 0x04, 0x78], // m
        [0x7C, 0x08, 0x04, 0x04, 0x78], // n
        [0x38, 0x44, 0x44, 0x44, 0x38], // o
        [0x7C, 0x14, 0x14, 0x14, 0x08], // p
        [0x08, 0x14, 0x14, 0x18, 0x7C], // q
        [0x7C, 0x08, 0x04, 0x04, 0x08], // r
        [0x48, 0x54, 0x54, 0x54, 0x20], // s
        [0x04, 0x3F, 0x44, 0x40, 0x20], // t
        [0x3C, 0x40, 0x40, 0x20, 0x7C], // u
        [0x1C, 0x20, 0x40, 0x20, 0x1C], // v
        [0x3C, 0x40, 0x30, 0x40, 0x3C], // w
        [0x44, 0x28, 0x10, 0x28, 0x44], // x
        [0x0C, 0x50, 0x50, 0x50, 0x3C], // y
        [0x44, 0x64, 0x54, 0x4C, 0x44], // z
        [0x00, 0x08, 0x36, 0x41, 0x00], // {
        [0x00, 0x00, 0x7F, 0x00, 0x00], // |
        [0x00, 0x41, 0x36, 0x08, 0x00], // }
        [0x08, 0x04, 0x08, 0x10, 0x08], // ~
    ];

    /// The glyph of `c`: ASCII as is, common accented Latin letters without their accent,
    /// anything else `?`.
    pub fn glyph(c: char) -> [u8; 5] {
        let base = match c {
            'à'..='å' => 'a',
            'À'..='Å' => 'A',
            'è'..='ë' => 'e',
            'È'..='Ë' => 'E',
            'ì'..='ï' => 'i',
            'Ì'..='Ï' => 'I',
            'ò'..='ö' | 'ø' => 'o',
            'Ò'..='Ö' | 'Ø' => 'O',
            'ù'..='ü' => 'u',
            'Ù'..='Ü' => 'U',
            'ç' => 'c',
            'Ç' => 'C',
            'ñ' => 'n',
            'Ñ' => 'N',
            'ý' | 'ÿ' => 'y',
            'Ý' => 'Y',
            'ß' => 's',
            '©' => 'c',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        };
        FONT[(base as usize).saturating_sub(32).min(94)]
    }

    fn blend(img: &mut RgbaImage, x: u32, y: u32, rgb: [u8; 3], alpha: u16) {
        if x >= img.width() || y >= img.height() {
            return;
        }
        let p = img.get_pixel_mut(x, y);
        for (i, c) in rgb.iter().enumerate() {
            let old = u16::from(p.0[i]);
            p.0[i] = ((old * (255 - alpha) + u16::from(*c) * alpha) / 255) as u8;
        }
        // A transparent pixel under the text becomes visible.
        p.0[3] = p.0[3].max(alpha as u8);
    }

    fn draw_text(img: &mut RgbaImage, text: &[[u8; 5]], x0: i64, y0: i64, scale: u32) {
        let s = i64::from(scale);
        for (n, g) in text.iter().enumerate() {
            let gx = x0 + n as i64 * 6 * s;
            for (col, bits) in g.iter().enumerate() {
                for row in 0..7 {
                    if bits & (1 << row) == 0 {
                        continue;
                    }
                    for dy in 0..s {
                        for dx in 0..s {
                            let x = gx + col as i64 * s + dx;
                            let y = y0 + i64::from(row) * s + dy;
                            if x < 0 || y < 0 {
                                continue;
                            }
                            let (x, y) = (x as u32, y as u32);
                            let sh = scale.div_ceil(3).max(1);
                            blend(img, x + sh, y + sh, [0, 0, 0], 70);
                            blend(img, x, y, [255, 255, 255], 110);
                        }
                    }
                }
            }
        }
    }

    /// Draws `text` tiled over `img`: the glyph height about a twentieth of the shorter side
    /// (at least 7 px), staggered rows.
    pub fn draw(img: &mut RgbaImage, text: &str) {
        let glyphs: Vec<[u8; 5]> = text.chars().map(glyph).collect();
        if glyphs.is_empty() || img.width() == 0 || img.height() == 0 {
            return;
        }
        let short = img.width().min(img.height());
        let scale = (short / 20 / 7).max(1);
        let text_w = i64::from(glyphs.len() as u32 * 6 * scale);
        let line_h = i64::from(7 * scale);
        let step_x = text_w + i64::from(12 * scale);
        let step_y = line_h * 4;
        let (w, h) = (i64::from(img.width()), i64::from(img.height()));
        let mut row = 0i64;
        let mut y = line_h;
        while y < h {
            let mut x = -((row % 2) * step_x / 2);
            while x < w {
                draw_text(img, &glyphs, x, y, scale);
                x += step_x;
            }
            y += step_y;
            row += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let s = RenditionSpec::parse("thumb.jpg", None).map_err(|e| e.to_string());
        assert_eq!(
            s,
            Ok(RenditionSpec {
                kind: RenditionKind::Image {
                    size: Size::Thumb,
                    format: Format::Jpg
                },
                watermark: None
            })
        );
        assert!(RenditionSpec::parse("original", None).is_ok());
        assert!(RenditionSpec::parse("original", Some("x".into())).is_err());
        assert!(RenditionSpec::parse("huge.jpg", None).is_err());
        assert!(RenditionSpec::parse("thumb.gif", None).is_err());
        assert!(RenditionSpec::parse("thumb.wm.jpg", None).is_err());
        let wm = RenditionSpec::parse("thumb.wm.jpg", Some("ACME".into()));
        assert!(wm.as_ref().is_ok_and(|s| s.name() == "thumb.wm.jpg"));
        assert!(wm.is_ok_and(|s| s.key().starts_with("thumb.wm-")));
        assert!(RenditionSpec::wants_watermark("large.wm.webp"));
        assert!(!RenditionSpec::wants_watermark("large.webp"));
        assert_eq!(rendition_names().len(), 16);
    }

    #[test]
    fn cache_keeps_within_budget() {
        let c = RenditionCache::new(8000);
        for i in 0..50 {
            c.insert(
                format!("k{i}"),
                Arc::new(Rendition {
                    bytes: Bytes::from(vec![0u8; 900]),
                    mime: "x".into(),
                    etag: "e".into(),
                }),
            );
            // k0 is used again and again: it stays.
            let _ = c.get("k0");
        }
        assert!(c.used() <= 8000);
        assert!(c.get("k0").is_some());
        assert!(c.get("k1").is_none());
        assert!(c.get("k49").is_some());
    }

    #[test]
    fn generates_sizes_and_watermark() {
        let img = image::RgbImage::from_fn(800, 400, |x, _| image::Rgb([(x % 256) as u8, 90, 40]));
        let mut jpg = Vec::new();
        let r = JpegEncoder::new_with_quality(&mut jpg, 90).encode_image(&img);
        assert!(r.is_ok());
        for (size, format, edge) in [
            (Size::Thumb, Format::Jpg, 320),
            (Size::Small, Format::Png, 640),
            (Size::Large, Format::Webp, 800),
        ] {
            let out = generate(&jpg, size, format, Some("ACME ©"));
            let Ok(out) = out else {
                panic!("generate failed: {out:?}");
            };
            let back = image::load_from_memory(&out);
            assert!(back.is_ok_and(|b| b.width() == edge && b.height() == edge / 2));
        }
    }
}

//! (RIGHTS) Access-request exports (GDPR Art. 15 and 20): one call produces a package with
//! everything the organisation holds about a person, built by a durable job and delivered as
//! an expiring download.
//!
//! The package is a zip stored (encrypted, like every blob) in the blob store:
//! - `person.json`: machine-readable, one document ([`SCHEMA`]) with the register entry, every
//!   agreement with its sealed evidence, every file with the person's faces (boxes, status, who
//!   confirmed them and when), where those files were published, the audit entries about the
//!   person, and the processing information (purposes, recipients, retention, sources);
//! - `index.html`: the same for a person to read (self-contained, links into the zip);
//! - `files/<asset_id>.jpg`: a copy of every image the person appears in (current version,
//!   decoded and re-encoded, so EXIF, GPS and XMP are gone), in which every OTHER face is
//!   pixelated irreversibly (large blocks of the mean colour over the box enlarged by 20 %);
//!   their own face is untouched. Videos are listed, not copied;
//! - `agreements/<id>/receipt.json` (+ `receipt.pdf`) for agreements with sealed evidence, and
//!   `agreements/<id>/documents/<filename>`.
//!
//! Requests, builds and downloads are audited (`person.export_requested`,
//! `person.export_ready`, `person.export_downloaded`). A package expires after the tenant's
//! `export_ttl_hours` ([`RightsSettings`]): the download answers 410 `export_expired`, and
//! [`expire_exports`] (the scheduler) deletes its blob.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Cursor, Write};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader, RgbImage};
use likeness_control_domain::rights::RightsSettings;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::Deps;
use crate::agreements::{self, AgreementOut};
use crate::assets::{self, media_error};
use crate::audit::{self, AuditEntry, AuditEntryOut, Who};
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::faces::{self, FaceRow};
use crate::job_kinds::BuildExport;
use crate::jobs;
use crate::pagination::{MAX_PER_PAGE, Page};
use crate::publications::{self, PublicationOut};
use crate::roles::Permission;
use crate::schema::{
    access_exports, audit_log, consent_evidence, persons, share_link_assets, share_links, tenants,
    users,
};

/// The format of `person.json`.
pub const SCHEMA: &str = "likeness-access-export/1";
/// Status: waiting for its job.
pub const QUEUED: &str = "queued";
/// Status: being built.
pub const RUNNING: &str = "running";
/// Status: downloadable.
pub const READY: &str = "ready";
/// Status: the build failed (see `last_error`).
pub const FAILED: &str = "failed";
/// Status: the package expired and was deleted.
pub const EXPIRED: &str = "expired";
/// Most audit entries about the person put in a package.
pub const AUDIT_LIMIT: i64 = 20_000;
/// Share of the face box's width and height added on every side before pixelating.
pub const PIXELATE_MARGIN: f64 = 0.2;
/// Blocks across the (enlarged) box of a pixelated face: few, so nobody can be recognised.
pub const PIXELATE_BLOCKS: u32 = 4;

/// An access export and its progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportOut {
    /// ID.
    pub id: String,
    /// The person.
    pub person_id: String,
    /// The person's pseudonym.
    pub pseudonym: String,
    /// `queued`, `running`, `ready`, `failed` or `expired`.
    pub status: String,
    /// Parts built so far.
    pub done: i64,
    /// Parts to build (known once the build started).
    pub total: i64,
    /// Size of the package (zip), when ready.
    pub size_bytes: Option<i64>,
    /// sha256 (hex) of the package, when ready.
    pub sha256: Option<String>,
    /// When the download expires (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc::option")]
    pub expires_at: Option<NaiveDateTime>,
    /// How often it was downloaded.
    pub downloads: i32,
    /// Who asked for it (user ID).
    pub requested_by: Option<String>,
    /// Why the build failed.
    pub last_error: Option<String>,
    /// Requested (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
    /// Last change (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: NaiveDateTime,
    /// Built or failed (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc::option")]
    pub finished_at: Option<NaiveDateTime>,
    /// Where to download it (`GET`), when ready.
    pub download_url: Option<String>,
}

/// A package to send.
#[derive(Debug, Clone)]
pub struct ExportFile {
    /// The zip.
    pub bytes: Vec<u8>,
    /// File name for the download.
    pub filename: String,
    /// sha256 (hex) of the zip.
    pub sha256: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = access_exports)]
struct Row {
    id: String,
    tenant_id: String,
    person_id: String,
    pseudonym: String,
    status: String,
    done: i64,
    total: i64,
    blob_key: Option<String>,
    size_bytes: Option<i64>,
    sha256: Option<String>,
    expires_at: Option<NaiveDateTime>,
    downloads: i32,
    requested_by: Option<String>,
    last_error: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
}

impl Row {
    /// Whether the package is past its expiry at `now` (whatever the stored status says).
    fn expired_at(&self, now: NaiveDateTime) -> bool {
        self.status == EXPIRED || self.expires_at.is_some_and(|e| e <= now)
    }

    fn out(self, now: NaiveDateTime) -> ExportOut {
        let status = if self.status == READY && self.expired_at(now) {
            EXPIRED.to_string()
        } else {
            self.status
        };
        ExportOut {
            download_url: (status == READY)
                .then(|| format!("/api/v1/exports/{}/download", self.id)),
            id: self.id,
            person_id: self.person_id,
            pseudonym: self.pseudonym,
            status,
            done: self.done,
            total: self.total,
            size_bytes: self.size_bytes,
            sha256: self.sha256,
            expires_at: self.expires_at,
            downloads: self.downloads,
            requested_by: self.requested_by,
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        }
    }
}

fn load(c: &mut DbConn, tenant: &str, id: &str) -> Result<Row> {
    access_exports::table
        .filter(access_exports::tenant_id.eq(tenant))
        .filter(access_exports::id.eq(id))
        .select(Row::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ControlError::not_found(format!("export {id}")))
}

/// The person's pseudonym; 404 for an unknown person or another tenant's, 410
/// `person_erased` for an erased one.
fn person_pseudonym(c: &mut DbConn, tenant: &str, person: &str) -> Result<String> {
    let row: Option<(String, Option<NaiveDateTime>)> = persons::table
        .filter(persons::tenant_id.eq(tenant))
        .filter(persons::id.eq(person))
        .select((persons::pseudonym, persons::erased_at))
        .first(c)
        .optional()?;
    match row {
        None => Err(ControlError::not_found(format!("person {person}"))),
        Some((_, Some(_))) => Err(ControlError::Gone {
            code: "person_erased",
            message: format!("person {person} was erased: there is nothing left to export"),
        }),
        Some((p, None)) => Ok(p),
    }
}

fn rights_settings(c: &mut DbConn, tenant: &str) -> Result<RightsSettings> {
    let json: String = tenants::table
        .filter(tenants::id.eq(tenant))
        .select(tenants::settings_json)
        .first(c)?;
    RightsSettings::from_stored_json(&json).map_err(crate::settings::domain_error)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Queues the build of a package for a person (inside the caller's transaction); audited as
/// `person.export_requested`.
pub fn request(
    c: &mut DbConn,
    who: &Who,
    tenant: &str,
    person: &str,
    now: NaiveDateTime,
) -> Result<ExportOut> {
    let pseudonym = person_pseudonym(c, tenant, person)?;
    let id = new_id();
    diesel::insert_into(access_exports::table)
        .values((
            access_exports::id.eq(&id),
            access_exports::tenant_id.eq(tenant),
            access_exports::person_id.eq(person),
            access_exports::pseudonym.eq(&pseudonym),
            access_exports::status.eq(QUEUED),
            access_exports::done.eq(0i64),
            access_exports::total.eq(0i64),
            access_exports::downloads.eq(0i32),
            access_exports::requested_by.eq(who.user_id.as_deref()),
            access_exports::created_at.eq(now),
            access_exports::updated_at.eq(now),
        ))
        .execute(c)?;
    jobs::enqueue_job_now(
        c,
        tenant,
        &BuildExport {
            export_id: id.clone(),
        },
        now,
    )?;
    audit::record(
        c,
        who,
        "person.export_requested",
        "person",
        Some(person),
        json!({ "export_id": id }),
    )?;
    Ok(load(c, tenant, &id)?.out(now))
}

// ---------------------------------------------------------------------------------------------
// Building the package.

/// Everything read from the database for a package (the blobs are read afterwards).
struct Gathered {
    tenant_id: String,
    person_id: String,
    register: Value,
    agreements: Vec<AgreementOut>,
    /// agreement id -> its evidence rows (id, kind, seq, created_at, receipt JSON).
    evidence: HashMap<String, Vec<EvidenceItem>>,
    /// (agreement id, document id, filename, blob key)
    documents: Vec<(String, String, String, String)>,
    files: Vec<FileItem>,
    publications: Vec<PublicationOut>,
    audit: Vec<AuditEntryOut>,
    processing: Value,
}

struct EvidenceItem {
    id: String,
    kind: String,
    seq: i64,
    created_at: NaiveDateTime,
    receipt: likeness_control_domain::evidence::Receipt,
}

struct FileItem {
    asset: assets::AssetRow,
    /// The person's faces on it.
    own: Vec<FaceRow>,
    /// Every other face on it (pixelated in the copy).
    others: Vec<FaceRow>,
}

fn iso(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    // Drop credentials if any.
    host.rsplit_once('@').map_or(host, |(_, h)| h).to_string()
}

fn gather(
    c: &mut DbConn,
    vault: &crate::vault::Vault,
    tenant: &str,
    person: &str,
    pseudonym: &str,
    day: chrono::NaiveDate,
) -> Result<Gathered> {
    let who = Who::system("system:access-export", Some(tenant));
    // The register entry: the personal fields only through the vault.
    let personal = crate::vault::personal_of(c, vault, tenant, person)?;
    #[allow(clippy::type_complexity)]
    let row: (
        Option<String>,
        bool,
        Option<String>,
        NaiveDateTime,
        NaiveDateTime,
        Option<NaiveDateTime>,
    ) = persons::table
        .filter(persons::tenant_id.eq(tenant))
        .filter(persons::id.eq(person))
        .select((
            persons::guardian_person_id,
            persons::never_publish,
            persons::avatar_face_id,
            persons::created_at,
            persons::updated_at,
            persons::deleted_at,
        ))
        .first(c)?;
    let (guardian_person_id, never_publish, avatar_face_id, created_at, updated_at, deleted_at) =
        row;
    let p = personal.unwrap_or_default();
    let register = json!({
        "id": person,
        "pseudonym": pseudonym,
        "name": p.name,
        "email": p.email,
        "phone": p.phone,
        "date_of_birth": p.date_of_birth,
        "guardian_person_id": guardian_person_id,
        "guardian_name": p.guardian_name,
        "guardian_contact": p.guardian_contact,
        "custom_fields": if p.custom_fields.is_null() { json!({}) } else { p.custom_fields },
        "never_publish": never_publish,
        "avatar_face_id": avatar_face_id,
        "created_at": iso(created_at),
        "updated_at": iso(updated_at),
        "deleted_at": deleted_at.map(iso),
    });

    // Agreements, their evidence and documents.
    let agreements = agreements::list_for_person(c, &who, tenant, person, day)?;
    let ids: Vec<String> = agreements.iter().map(|a| a.id.clone()).collect();
    let ev_rows: Vec<(String, String, String, i64, NaiveDateTime)> = consent_evidence::table
        .filter(consent_evidence::tenant_id.eq(tenant))
        .filter(consent_evidence::agreement_id.eq_any(&ids))
        .order(consent_evidence::seq.asc())
        .select((
            consent_evidence::id,
            consent_evidence::agreement_id,
            consent_evidence::kind,
            consent_evidence::seq,
            consent_evidence::created_at,
        ))
        .load(c)?;
    let mut evidence: HashMap<String, Vec<EvidenceItem>> = HashMap::new();
    for (id, agreement_id, kind, seq, created_at) in ev_rows {
        let receipt = crate::evidence::receipt_of(c, tenant, &id)?;
        evidence
            .entry(agreement_id)
            .or_default()
            .push(EvidenceItem {
                id,
                kind,
                seq,
                created_at,
                receipt,
            });
    }
    let mut documents = Vec::new();
    for a in &agreements {
        for d in &a.documents {
            let (doc, key) = agreements::document_for_download(c, &who, tenant, &a.id, &d.id)?;
            documents.push((a.id.clone(), doc.id, doc.filename, key));
        }
    }

    // Files with the person's faces, and every face on them.
    let own_faces = faces::faces_of_person(c, tenant, person)?;
    let asset_ids: BTreeSet<String> = own_faces.iter().map(|f| f.asset_id.clone()).collect();
    let mut files = Vec::with_capacity(asset_ids.len());
    for asset_id in &asset_ids {
        let asset = assets::get_row(c, tenant, asset_id)?;
        let (own, others): (Vec<FaceRow>, Vec<FaceRow>) =
            faces::list_for_asset(c, tenant, asset_id)?
                .into_iter()
                .partition(|f| {
                    f.status == faces::CONFIRMED && f.person_id.as_deref() == Some(person)
                });
        files.push(FileItem { asset, own, others });
    }

    // Where those files were published.
    let mut publications = Vec::new();
    let mut page = 1;
    loop {
        let f = publications::Filter {
            asset_id: None,
            person_id: Some(person.to_string()),
            channel: None,
            active: None,
            page: Page {
                page,
                per_page: MAX_PER_PAGE,
            },
        };
        let p = publications::list(c, tenant, &f)?;
        let n = p.items.len();
        publications.extend(p.items);
        if n == 0 || i64::try_from(publications.len()).unwrap_or(i64::MAX) >= p.total {
            break;
        }
        page += 1;
    }

    // Audit entries about the person: about them, their agreements, or naming them.
    let mut objects = ids.clone();
    objects.push(person.to_string());
    let audit: Vec<AuditEntry> = audit_log::table
        .filter(audit_log::tenant_id.eq(tenant))
        .filter(
            audit_log::object_id
                .eq_any(&objects)
                .or(audit_log::detail_json.like(format!("%\"{person}\"%"))),
        )
        .order(audit_log::seq.asc())
        .limit(AUDIT_LIMIT)
        .select(AuditEntry::as_select())
        .load(c)?;
    let audit: Vec<AuditEntryOut> = audit.into_iter().map(Into::into).collect();

    // Processing information.
    let settings = crate::settings::get(c, tenant)?;
    let rights = rights_settings(c, tenant)?;
    let endpoints = crate::webhooks::list(c, tenant)?;
    let hosts: BTreeSet<String> = endpoints
        .iter()
        .filter(|e| e.enabled)
        .map(|e| host_of(&e.url))
        .collect();
    let asset_list: Vec<String> = asset_ids.iter().cloned().collect();
    #[allow(clippy::type_complexity)]
    let shares: Vec<(
        String,
        String,
        String,
        chrono::NaiveDate,
        Option<NaiveDateTime>,
    )> = share_links::table
        .filter(share_links::tenant_id.eq(tenant))
        .filter(
            share_links::id.eq_any(
                share_link_assets::table
                    .filter(share_link_assets::asset_id.eq_any(&asset_list))
                    .select(share_link_assets::share_id),
            ),
        )
        .order(share_links::created_at.asc())
        .select((
            share_links::id,
            share_links::title,
            share_links::channel,
            share_links::expires_on,
            share_links::revoked_at,
        ))
        .load(c)?;
    let sources: BTreeSet<String> = agreements
        .iter()
        .map(|a| format!("agreement recorded: {}", a.source.as_str()))
        .collect();
    let processing = json!({
        "controller": tenant_name(c, tenant)?,
        "purposes": settings.channels.iter().map(|ch| json!({
            "channel": ch,
            "purpose": format!("publication of photos and videos in the channel {ch}, where a legal basis allows it"),
        })).chain(std::iter::once(json!({
            "channel": null,
            "purpose": "face matching: finding the person in new files (biometric data), only with a consent that covers it",
        }))).collect::<Vec<_>>(),
        "legal_bases": files.iter().filter_map(|f| f.asset.legal_basis.clone()).collect::<BTreeSet<_>>(),
        "recipients": {
            "webhook_endpoints": hosts,
            "share_links": shares.iter().map(|(id, title, channel, expires_on, revoked_at)| json!({
                "id": id, "title": title, "channel": channel, "expires_on": expires_on,
                "revoked_at": revoked_at.map(iso),
            })).collect::<Vec<_>>(),
            "publications": publications.len(),
        },
        "retention": {
            "documents_days_after_agreement_ended": rights.document_retention_days,
            "evidence_years_after_agreement_ended": rights.evidence_retention_years,
            "export_download_hours": rights.export_ttl_hours,
            "erasure_files": rights.erasure_files,
            "keep_on_other_basis": rights.keep_on_other_basis,
        },
        "sources": {
            "register_entry": "entered by the organisation's staff",
            "files": "uploaded by the organisation's staff or integrations",
            "faces": "detected by the face matcher and confirmed by staff, or drawn by staff",
            "agreements": sources,
        },
    });

    Ok(Gathered {
        tenant_id: tenant.to_string(),
        person_id: person.to_string(),
        register,
        agreements,
        evidence,
        documents,
        files,
        publications,
        audit,
        processing,
    })
}

fn tenant_name(c: &mut DbConn, tenant: &str) -> Result<String> {
    Ok(tenants::table
        .filter(tenants::id.eq(tenant))
        .select(tenants::name)
        .first(c)?)
}

/// Labels of the users who decided faces: user id -> display name (or e-mail).
fn user_labels(c: &mut DbConn, tenant: &str, ids: &[String]) -> Result<HashMap<String, String>> {
    let rows: Vec<(String, String, String)> = users::table
        .filter(users::tenant_id.eq(tenant))
        .filter(users::id.eq_any(ids))
        .select((users::id, users::display_name, users::email))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|(id, name, email)| (id, if name.trim().is_empty() { email } else { name }))
        .collect())
}

fn set_progress(c: &mut DbConn, id: &str, done: i64, now: NaiveDateTime) -> Result<()> {
    diesel::update(access_exports::table.filter(access_exports::id.eq(id)))
        .set((
            access_exports::done.eq(done),
            access_exports::updated_at.eq(now),
        ))
        .execute(c)?;
    Ok(())
}

/// Decodes an image (EXIF orientation applied: face boxes are in the oriented image's
/// pixels), pixelates `boxes`, restores `keep` from the original, and encodes a JPEG without
/// any metadata.
pub fn redacted_copy(bytes: &[u8], boxes: &[[f64; 4]], keep: &[[f64; 4]]) -> Result<Vec<u8>> {
    let bad = |e: image::ImageError| ControlError::Internal(format!("image: {e}"));
    let mut decoder = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ControlError::Internal(format!("image: {e}")))?
        .into_decoder()
        .map_err(bad)?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let original: RgbImage = img.to_rgb8();
    let mut rgb = original.clone();
    for b in boxes {
        pixelate_face(&mut rgb, *b);
    }
    // The person's own face stays as it was, even where a neighbour's margin reached it.
    for k in keep {
        let (w, h) = (rgb.width(), rgb.height());
        let (x1, y1, x2, y2) = (
            clamp(k[0], w),
            clamp(k[1], h),
            clamp(k[2], w),
            clamp(k[3], h),
        );
        for y in y1..y2 {
            for x in x1..x2 {
                rgb.put_pixel(x, y, *original.get_pixel(x, y));
            }
        }
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(bad)?;
    Ok(out)
}

fn clamp(v: f64, max: u32) -> u32 {
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= f64::from(max) {
        max
    } else {
        // In range: the cast truncates toward zero.
        v as u32
    }
}

/// Pixelates a face irreversibly: the box enlarged by [`PIXELATE_MARGIN`] on every side is
/// replaced by about [`PIXELATE_BLOCKS`] x [`PIXELATE_BLOCKS`] blocks of their mean colour.
pub fn pixelate_face(img: &mut RgbImage, b: [f64; 4]) {
    let (bw, bh) = ((b[2] - b[0]).abs(), (b[3] - b[1]).abs());
    let (mx, my) = (bw * PIXELATE_MARGIN, bh * PIXELATE_MARGIN);
    let (w, h) = (img.width(), img.height());
    let (x1, y1, x2, y2) = (
        clamp(b[0].min(b[2]) - mx, w),
        clamp(b[1].min(b[3]) - my, h),
        clamp(b[0].max(b[2]) + mx, w),
        clamp(b[1].max(b[3]) + my, h),
    );
    if x2 <= x1 || y2 <= y1 {
        return;
    }
    let side = (x2 - x1).max(y2 - y1);
    let block = (side / PIXELATE_BLOCKS).max(8);
    let mut by = y1;
    while by < y2 {
        let ey = by.saturating_add(block).min(y2);
        let mut bx = x1;
        while bx < x2 {
            let ex = bx.saturating_add(block).min(x2);
            let mut sum = [0u64; 3];
            let mut n = 0u64;
            for y in by..ey {
                for x in bx..ex {
                    for (s, c) in sum.iter_mut().zip(img.get_pixel(x, y).0) {
                        *s += u64::from(c);
                    }
                    n += 1;
                }
            }
            if n > 0 {
                let mean = |s: u64| u8::try_from(s / n).unwrap_or(u8::MAX);
                let avg = image::Rgb([mean(sum[0]), mean(sum[1]), mean(sum[2])]);
                for y in by..ey {
                    for x in bx..ex {
                        img.put_pixel(x, y, avg);
                    }
                }
            }
            bx = ex;
        }
        by = ey;
    }
}

fn face_box(f: &FaceRow) -> [f64; 4] {
    [f.box_x1, f.box_y1, f.box_x2, f.box_y2]
}

/// A file name safe inside a zip and on every file system.
fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "document".into() } else { s }
}

fn zip_error(e: zip::result::ZipError) -> ControlError {
    ControlError::Internal(format!("zip: {e}"))
}

struct Zip {
    w: zip::ZipWriter<Cursor<Vec<u8>>>,
}

impl Zip {
    fn new() -> Self {
        Self {
            w: zip::ZipWriter::new(Cursor::new(Vec::new())),
        }
    }

    fn add(&mut self, name: &str, bytes: &[u8], compress: bool) -> Result<()> {
        let method = if compress {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .unix_permissions(0o644);
        self.w.start_file(name, opts).map_err(zip_error)?;
        self.w
            .write_all(bytes)
            .map_err(|e| ControlError::Internal(format!("zip: {e}")))
    }

    fn finish(self) -> Result<Vec<u8>> {
        Ok(self.w.finish().map_err(zip_error)?.into_inner())
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The readable index of the package (self-contained: no script, no external resource).
fn index_html(doc: &Value) -> String {
    let e = |v: &Value| html_escape(&text(v));
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    h.push_str("<title>What we hold about you</title><style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#eee}img{max-width:16rem;height:auto}code{font-size:.9em}</style></head><body>\n");
    let p = &doc["person"];
    h.push_str(&format!(
        "<h1>What {} holds about you</h1>\n<p>Generated {} (export {}). The same content, machine-readable, is in <a href=\"person.json\">person.json</a>.</p>\n",
        e(&doc["processing"]["controller"]),
        e(&doc["generated_at"]),
        e(&doc["export_id"])
    ));
    h.push_str("<h2>Register entry</h2>\n<table>\n");
    for k in [
        "name",
        "pseudonym",
        "email",
        "phone",
        "date_of_birth",
        "guardian_name",
        "guardian_contact",
        "never_publish",
        "created_at",
        "updated_at",
    ] {
        h.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            html_escape(&k.replace('_', " ")),
            e(&p[k])
        ));
    }
    if let Some(obj) = p["custom_fields"].as_object() {
        for (k, v) in obj {
            h.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                html_escape(k),
                e(v)
            ));
        }
    }
    h.push_str("</table>\n<h2>Agreements</h2>\n");
    let empty = Vec::new();
    let agreements = doc["agreements"].as_array().unwrap_or(&empty);
    if agreements.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<table><tr><th>Agreement</th><th>Channels</th><th>Valid</th><th>State</th><th>Receipts and documents</th></tr>\n");
        for a in agreements {
            let mut links = Vec::new();
            for ev in a["evidence"].as_array().unwrap_or(&empty) {
                for key in ["receipt_json", "receipt_pdf"] {
                    if let Some(path) = ev[key].as_str() {
                        links.push(format!(
                            "<a href=\"{}\">{}</a>",
                            html_escape(path),
                            html_escape(path.rsplit('/').next().unwrap_or(path))
                        ));
                    }
                }
            }
            for d in a["document_files"].as_array().unwrap_or(&empty) {
                if let Some(path) = d["path"].as_str() {
                    links.push(format!(
                        "<a href=\"{}\">{}</a>",
                        html_escape(path),
                        e(&d["filename"])
                    ));
                }
            }
            let channels: Vec<String> = a["channels"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(text)
                .collect();
            h.push_str(&format!(
                "<tr><td><code>{}</code><br>{}</td><td>{}</td><td>{} – {}</td><td>{}</td><td>{}</td></tr>\n",
                e(&a["id"]),
                e(&a["source"]),
                html_escape(&channels.join(", ")),
                e(&a["valid_from"]),
                e(&a["valid_until"]),
                e(&a["state"]),
                links.join("<br>")
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Files you appear in</h2>\n");
    let files = doc["files"].as_array().unwrap_or(&empty);
    if files.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<p>Copies: every other person's face is pixelated, and the files' metadata (EXIF, GPS) removed.</p>\n<table><tr><th>File</th><th>Your face</th><th>Copy</th></tr>\n");
        for f in files {
            let faces: Vec<String> = f["faces"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|x| {
                    format!(
                        "box {} ({}; confirmed by {} at {})",
                        html_escape(&x["box"].to_string()),
                        e(&x["status"]),
                        e(&x["decided_by"]["label"]),
                        e(&x["decided_at"])
                    )
                })
                .collect();
            let copy = match f["copy"].as_str() {
                Some(path) => format!(
                    "<a href=\"{0}\"><img src=\"{0}\" alt=\"{1}\"></a>",
                    html_escape(path),
                    e(&f["filename"])
                ),
                None => e(&f["copy_note"]),
            };
            h.push_str(&format!(
                "<tr><td>{}<br><code>{}</code><br>{} {}</td><td>{}</td><td>{}</td></tr>\n",
                e(&f["filename"]),
                e(&f["asset_id"]),
                e(&f["kind"]),
                e(&f["created_at"]),
                faces.join("<br>"),
                copy
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Where these files were published</h2>\n");
    let pubs = doc["publications"].as_array().unwrap_or(&empty);
    if pubs.is_empty() {
        h.push_str("<p>Nowhere.</p>\n");
    } else {
        h.push_str("<table><tr><th>File</th><th>Channel</th><th>Where</th><th>Placed</th><th>Removed</th></tr>\n");
        for p in pubs {
            h.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(&p["asset_id"]),
                e(&p["channel"]),
                e(&p["location"]),
                e(&p["placed_at"]),
                e(&p["removed_at"])
            ));
        }
        h.push_str("</table>\n");
    }
    let pr = &doc["processing"];
    h.push_str("<h2>How your data is processed</h2>\n<h3>Purposes</h3><ul>\n");
    for p in pr["purposes"].as_array().unwrap_or(&empty) {
        h.push_str(&format!("<li>{}</li>\n", e(&p["purpose"])));
    }
    h.push_str("</ul>\n<h3>Recipients</h3><ul>\n");
    for host in pr["recipients"]["webhook_endpoints"]
        .as_array()
        .unwrap_or(&empty)
    {
        h.push_str(&format!(
            "<li>Publishing system (CMS) at {}</li>\n",
            e(host)
        ));
    }
    for s in pr["recipients"]["share_links"].as_array().unwrap_or(&empty) {
        h.push_str(&format!(
            "<li>Share link “{}” (channel {}, until {})</li>\n",
            e(&s["title"]),
            e(&s["channel"]),
            e(&s["expires_on"])
        ));
    }
    h.push_str("</ul>\n<h3>Retention</h3><table>\n");
    if let Some(obj) = pr["retention"].as_object() {
        for (k, v) in obj {
            h.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                html_escape(&k.replace('_', " ")),
                e(v)
            ));
        }
    }
    h.push_str("</table>\n<h3>Sources</h3><table>\n");
    if let Some(obj) = pr["sources"].as_object() {
        for (k, v) in obj {
            let v = match v {
                Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join("; "),
                other => text(other),
            };
            h.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                html_escape(&k.replace('_', " ")),
                html_escape(&v)
            ));
        }
    }
    h.push_str("</table>\n<h2>Log of what was done with your data</h2>\n");
    let audit = doc["audit"].as_array().unwrap_or(&empty);
    h.push_str("<table><tr><th>When</th><th>What</th><th>By</th></tr>\n");
    for a in audit {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            e(&a["at"]),
            e(&a["action"]),
            e(&a["actor_label"])
        ));
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

/// Builds the package of export `id` (the `build_export` job): reads everything, writes the
/// copies and documents, stores the zip and marks the export ready. Progress (`done` of
/// `total`) is written as it goes. Idempotent: an export already finished is left alone.
pub async fn build_export(deps: &Deps, id: &str) -> Result<()> {
    let i = id.to_string();
    let row: Option<Row> = db::run(&deps.pool, move |c| {
        Ok(access_exports::table
            .filter(access_exports::id.eq(&i))
            .select(Row::as_select())
            .first(c)
            .optional()?)
    })
    .await?;
    let Some(row) = row else { return Ok(()) };
    if row.status != QUEUED && row.status != RUNNING {
        return Ok(());
    }
    match build(deps, &row).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_retryable() => Err(e),
        Err(e) => {
            let (i, msg, now) = (row.id.clone(), e.to_string(), deps.clock.now());
            db::run(&deps.pool, move |c| {
                diesel::update(access_exports::table.filter(access_exports::id.eq(&i)))
                    .set((
                        access_exports::status.eq(FAILED),
                        access_exports::last_error.eq(msg),
                        access_exports::updated_at.eq(now),
                        access_exports::finished_at.eq(now),
                    ))
                    .execute(c)?;
                Ok(())
            })
            .await?;
            Err(e)
        }
    }
}

async fn build(deps: &Deps, row: &Row) -> Result<()> {
    let media = deps.media()?;
    let vault = deps.vault()?;
    let now = deps.clock.now();
    let day = deps.clock.today();
    let (t, p, ps, i) = (
        row.tenant_id.clone(),
        row.person_id.clone(),
        row.pseudonym.clone(),
        row.id.clone(),
    );
    let v = vault.clone();
    let (g, labels, ttl) = db::run(&deps.pool, move |c| {
        db::write_tx(c, |c| {
            person_pseudonym(c, &t, &p)?;
            let g = gather(c, &v, &t, &p, &ps, day)?;
            let deciders: Vec<String> = g
                .files
                .iter()
                .flat_map(|f| f.own.iter().filter_map(|x| x.decided_by.clone()))
                .collect();
            let labels = user_labels(c, &t, &deciders)?;
            let ttl = rights_settings(c, &t)?.export_ttl_hours;
            let total = i64::try_from(g.files.len() + g.documents.len() + 1).unwrap_or(i64::MAX);
            diesel::update(access_exports::table.filter(access_exports::id.eq(&i)))
                .set((
                    access_exports::status.eq(RUNNING),
                    access_exports::done.eq(0i64),
                    access_exports::total.eq(total),
                    access_exports::updated_at.eq(now),
                ))
                .execute(c)?;
            Ok((g, labels, ttl))
        })
    })
    .await?;

    let mut zip = Zip::new();
    let mut done: i64 = 0;
    let tenant = g.tenant_id.clone();

    // Files: a redacted copy of every image, listed with the person's faces.
    let mut files_json = Vec::with_capacity(g.files.len());
    for f in &g.files {
        let a = &f.asset;
        let (copy, note) = if a.kind == "image" {
            let (m, t, key) = (media.clone(), tenant.clone(), a.blob_key.clone());
            let bytes = crate::blocking(move || m.blobs.get(&t, &key))
                .await?
                .map_err(media_error)?;
            let boxes: Vec<[f64; 4]> = f.others.iter().map(face_box).collect();
            let keep: Vec<[f64; 4]> = f.own.iter().map(face_box).collect();
            let jpeg = crate::blocking(move || redacted_copy(&bytes, &boxes, &keep)).await??;
            let path = format!("files/{}.jpg", a.id);
            zip.add(&path, &jpeg, false)?;
            (Some(path), None)
        } else {
            (
                None,
                Some("videos are listed, not copied: ask the organisation for a copy"),
            )
        };
        done += 1;
        let (i, d) = (row.id.clone(), done);
        db::run(&deps.pool, move |c| set_progress(c, &i, d, now)).await?;
        files_json.push(json!({
            "asset_id": a.id,
            "filename": a.filename,
            "kind": a.kind,
            "mime": a.mime,
            "width": a.width,
            "height": a.height,
            "current_version": a.current_version,
            "legal_basis": a.legal_basis,
            "created_at": iso(a.created_at),
            "copy": copy,
            "copy_note": note,
            "other_faces_pixelated": if copy.is_some() { f.others.len() } else { 0 },
            "faces": f.own.iter().map(|x| json!({
                "face_id": x.id,
                "box": face_box(x),
                "status": x.status,
                "source": x.source,
                "identifiable": x.identifiable,
                "template_enrolled": x.template_enrolled,
                "decided_by": {
                    "user_id": x.decided_by,
                    "label": x.decided_by.as_ref().and_then(|u| labels.get(u)),
                },
                "decided_at": x.decided_at.map(iso),
                "detected_at": iso(x.created_at),
            })).collect::<Vec<_>>(),
        }));
    }

    // Agreements: receipts and documents.
    let mut doc_paths: HashMap<String, Vec<Value>> = HashMap::new();
    let mut used = BTreeSet::new();
    for (agreement_id, doc_id, filename, key) in &g.documents {
        let (m, t, k) = (media.clone(), tenant.clone(), key.clone());
        let stored = crate::blocking(move || m.blobs.get(&t, &k))
            .await?
            .map_err(media_error)?;
        let bytes = if crate::vault::Vault::is_sealed_bytes(&stored) {
            vault.open_bytes(&tenant, &g.person_id, &stored)?
        } else {
            stored
        };
        let mut name = format!(
            "agreements/{agreement_id}/documents/{}",
            safe_name(filename)
        );
        if !used.insert(name.clone()) {
            name = format!(
                "agreements/{agreement_id}/documents/{doc_id}-{}",
                safe_name(filename)
            );
            used.insert(name.clone());
        }
        zip.add(&name, &bytes, true)?;
        doc_paths
            .entry(agreement_id.clone())
            .or_default()
            .push(json!({
                "document_id": doc_id, "filename": filename, "path": name,
            }));
        done += 1;
        let (i, d) = (row.id.clone(), done);
        db::run(&deps.pool, move |c| set_progress(c, &i, d, now)).await?;
    }
    let mut agreements_json = Vec::with_capacity(g.agreements.len());
    for a in &g.agreements {
        let mut v = serde_json::to_value(a)
            .map_err(|e| ControlError::Internal(format!("agreement JSON: {e}")))?;
        let mut evs = Vec::new();
        let mut receipt_written = false;
        for ev in g.evidence.get(&a.id).map(Vec::as_slice).unwrap_or(&[]) {
            let receipt_json = serde_json::to_vec_pretty(&ev.receipt)
                .map_err(|e| ControlError::Internal(format!("receipt JSON: {e}")))?;
            let base = if ev.kind == "signature" && !receipt_written {
                receipt_written = true;
                format!("agreements/{}/receipt", a.id)
            } else {
                format!("agreements/{}/{}-receipt-{}", a.id, ev.kind, ev.seq)
            };
            zip.add(&format!("{base}.json"), &receipt_json, true)?;
            let pdf = crate::evidence::receipt_pdf(&ev.receipt, "en")?;
            zip.add(&format!("{base}.pdf"), &pdf, false)?;
            evs.push(json!({
                "evidence_id": ev.id,
                "kind": ev.kind,
                "seq": ev.seq,
                "sealed_at": iso(ev.created_at),
                "receipt": ev.receipt,
                "receipt_json": format!("{base}.json"),
                "receipt_pdf": format!("{base}.pdf"),
            }));
        }
        if let Some(obj) = v.as_object_mut() {
            obj.insert("evidence".into(), Value::Array(evs));
            obj.insert(
                "document_files".into(),
                Value::Array(doc_paths.remove(&a.id).unwrap_or_default()),
            );
        }
        agreements_json.push(v);
    }

    let doc = json!({
        "schema": SCHEMA,
        "export_id": row.id,
        "generated_at": iso(now),
        "tenant_id": g.tenant_id,
        "person": g.register,
        "agreements": agreements_json,
        "files": files_json,
        "publications": g.publications,
        "audit": g.audit,
        "processing": g.processing,
        "notes": [
            "Copies of files are the current version, re-encoded: their metadata (EXIF, GPS, XMP) is removed and every other person's face is pixelated.",
            "Videos are listed, not copied.",
        ],
    });
    let person_json = serde_json::to_vec_pretty(&doc)
        .map_err(|e| ControlError::Internal(format!("person.json: {e}")))?;
    zip.add("person.json", &person_json, true)?;
    zip.add("index.html", index_html(&doc).as_bytes(), true)?;
    let bytes = zip.finish()?;
    let sha = likeness_control_media::probe::sha256_hex(&bytes);
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    let (m, t) = (media.clone(), tenant.clone());
    let key = crate::blocking(move || m.blobs.put_new(&t, &bytes))
        .await?
        .map_err(media_error)?;
    done += 1;
    let expires = now + chrono::TimeDelta::hours(i64::from(ttl));
    let (i, t, p) = (row.id.clone(), tenant.clone(), g.person_id.clone());
    let stored_key = key.clone();
    let updated = db::run(&deps.pool, move |c| {
        db::write_tx(c, |c| {
            let n = diesel::update(
                access_exports::table
                    .filter(access_exports::id.eq(&i))
                    .filter(access_exports::status.eq_any([QUEUED, RUNNING])),
            )
            .set((
                access_exports::status.eq(READY),
                access_exports::done.eq(done),
                access_exports::blob_key.eq(&stored_key),
                access_exports::size_bytes.eq(size),
                access_exports::sha256.eq(&sha),
                access_exports::expires_at.eq(expires),
                access_exports::updated_at.eq(now),
                access_exports::finished_at.eq(now),
                access_exports::last_error.eq(None::<String>),
            ))
            .execute(c)?;
            if n > 0 {
                audit::record(
                    c,
                    &Who::system("system:access-export", Some(&t)),
                    "person.export_ready",
                    "person",
                    Some(&p),
                    json!({ "export_id": i, "size_bytes": size, "sha256": sha }),
                )?;
            }
            Ok(n)
        })
    })
    .await?;
    if updated == 0 {
        // Another run finished it (or it was erased meanwhile): drop this copy.
        let t = tenant.clone();
        let _ = crate::blocking(move || media.blobs.erase(&t, &key)).await?;
    }
    Ok(())
}

/// Deletes the packages that expired by `now` (their blobs; the rows stay as `expired`).
/// Called by the scheduler's tick. Returns how many expired.
pub async fn expire_exports(deps: &Deps, now: NaiveDateTime) -> Result<usize> {
    let due: Vec<(String, String, Option<String>)> = db::run(&deps.pool, move |c| {
        Ok(access_exports::table
            .filter(access_exports::status.eq(READY))
            .filter(access_exports::expires_at.le(now))
            .select((
                access_exports::id,
                access_exports::tenant_id,
                access_exports::blob_key,
            ))
            .load(c)?)
    })
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let media = deps.media()?;
    let mut n = 0;
    for (id, tenant, key) in due {
        if let Some(k) = key {
            let (m, t) = (media.clone(), tenant.clone());
            crate::blocking(move || m.blobs.erase(&t, &k))
                .await?
                .map_err(media_error)?;
        }
        db::run(&deps.pool, move |c| {
            diesel::update(access_exports::table.filter(access_exports::id.eq(&id)))
                .set((
                    access_exports::status.eq(EXPIRED),
                    access_exports::blob_key.eq(None::<String>),
                    access_exports::updated_at.eq(now),
                ))
                .execute(c)?;
            Ok(())
        })
        .await?;
        n += 1;
    }
    Ok(n)
}

// Use cases (REST, console): one entry point per operation, each checking its own permissions.

/// Asks for a package of everything about a person (`export`): queues its build (202);
/// audited as `person.export_requested`. 404 for an unknown person or another tenant's, 410
/// `person_erased` for an erased one.
pub async fn request_export(ctx: &Ctx, person_id: String) -> Result<ExportOut> {
    ctx.require(Permission::Export)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    let out = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| request(c, &who, &t, &person_id, now))
    })
    .await?;
    Ok(out)
}

/// One export with its progress (`export`).
pub async fn get_export(ctx: &Ctx, id: String) -> Result<ExportOut> {
    ctx.require(Permission::Export)?;
    let (t, now) = (ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| Ok(load(c, &t, &id)?.out(now))).await
}

/// A person's exports, newest first (`export`; 404 for an unknown person).
pub async fn list_exports(ctx: &Ctx, person_id: String) -> Result<Vec<ExportOut>> {
    ctx.require(Permission::Export)?;
    let (t, now) = (ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        let known: i64 = persons::table
            .filter(persons::tenant_id.eq(&t))
            .filter(persons::id.eq(&person_id))
            .count()
            .get_result(c)?;
        if known == 0 {
            return Err(ControlError::not_found(format!("person {person_id}")));
        }
        let rows: Vec<Row> = access_exports::table
            .filter(access_exports::tenant_id.eq(&t))
            .filter(access_exports::person_id.eq(&person_id))
            .order((access_exports::created_at.desc(), access_exports::id.desc()))
            .select(Row::as_select())
            .load(c)?;
        Ok(rows.into_iter().map(|r| r.out(now)).collect())
    })
    .await
}

/// The package of a ready export (`export`; audited as `person.export_downloaded`): 409
/// `export_not_ready` while it is built (or failed), 410 `export_expired` after
/// `export_ttl_hours`.
pub async fn download_export(ctx: &Ctx, id: String) -> Result<ExportFile> {
    ctx.require(Permission::Export)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    let row = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let row = load(c, &t, &id)?;
            if row.expired_at(now) {
                return Err(ControlError::Gone {
                    code: "export_expired",
                    message: format!(
                        "export {id} expired at {}: ask for a new one",
                        row.expires_at.map(iso).unwrap_or_default()
                    ),
                });
            }
            if row.status != READY {
                return Err(ControlError::Conflict {
                    code: "export_not_ready",
                    message: match row.status.as_str() {
                        FAILED => format!(
                            "export {id} failed: {}",
                            row.last_error.clone().unwrap_or_default()
                        ),
                        _ => format!(
                            "export {id} is not ready yet ({} of {} parts built)",
                            row.done, row.total
                        ),
                    },
                });
            }
            diesel::update(access_exports::table.filter(access_exports::id.eq(&id)))
                .set((
                    access_exports::downloads.eq(access_exports::downloads + 1),
                    access_exports::updated_at.eq(now),
                ))
                .execute(c)?;
            audit::record(
                c,
                &who,
                "person.export_downloaded",
                "person",
                Some(&row.person_id),
                json!({ "export_id": id, "sha256": row.sha256 }),
            )?;
            Ok(row)
        })
    })
    .await?;
    let key = row
        .blob_key
        .clone()
        .ok_or_else(|| ControlError::Internal(format!("export {} has no package", row.id)))?;
    let media = ctx.deps.media()?;
    let t = row.tenant_id.clone();
    let bytes = crate::blocking(move || media.blobs.get(&t, &key))
        .await?
        .map_err(media_error)?;
    let sha = likeness_control_media::probe::sha256_hex(&bytes);
    if row.sha256.as_deref() != Some(sha.as_str()) {
        return Err(ControlError::Internal(format!(
            "export {}: the package does not match its sha256",
            row.id
        )));
    }
    Ok(ExportFile {
        filename: format!(
            "access-export-{}-{}.zip",
            safe_name(&row.pseudonym),
            row.created_at.format("%Y%m%d")
        ),
        bytes,
        sha256: sha,
    })
}

/// Counts of what a package holds, from its `person.json` (tests and the console).
pub fn summary(person_json: &Value) -> BTreeMap<&'static str, usize> {
    let n = |k: &str| person_json[k].as_array().map_or(0, Vec::len);
    BTreeMap::from([
        ("agreements", n("agreements")),
        ("files", n("files")),
        ("publications", n("publications")),
        ("audit", n("audit")),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([
                (x * 3 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ]);
        }
        img
    }

    fn jpeg(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 100)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        out
    }

    #[test]
    fn pixelates_the_enlarged_box_in_big_blocks() {
        let mut img = gradient(200, 200);
        pixelate_face(&mut img, [50.0, 50.0, 130.0, 130.0]);
        // The margin (20 % of 80 = 16 px) is covered: (34, 34) .. (146, 146).
        let side = 146 - 34;
        let block = side / PIXELATE_BLOCKS;
        assert_eq!(
            img.get_pixel(35, 35),
            img.get_pixel(34 + block - 1, 34 + block - 1)
        );
        assert_eq!(img.get_pixel(60, 60), img.get_pixel(61, 61));
        // Few distinct colours inside: one per block.
        let mut colours = BTreeSet::new();
        for y in 34..146 {
            for x in 34..146 {
                colours.insert(img.get_pixel(x, y).0);
            }
        }
        assert!(colours.len() <= 25, "{}", colours.len());
        // Outside, untouched.
        assert_eq!(img.get_pixel(10, 10), gradient(200, 200).get_pixel(10, 10));
        assert_eq!(
            img.get_pixel(150, 150),
            gradient(200, 200).get_pixel(150, 150)
        );
    }

    #[test]
    fn copy_keeps_own_face_and_drops_metadata() {
        let img = gradient(240, 120);
        let mut bytes = jpeg(&img);
        // An APP1 segment after SOI with a recognisable payload.
        let mut app1 = vec![0xFF, 0xE1, 0x00, 0x16];
        app1.extend_from_slice(b"Exif\0\0SECRET-GPS-DATA!");
        app1.truncate(4 + 0x14);
        bytes.splice(2..2, app1);
        let out = redacted_copy(
            &bytes,
            &[[100.0, 20.0, 180.0, 100.0]],
            &[[10.0, 20.0, 90.0, 100.0]],
        )
        .unwrap();
        assert!(!out.windows(4).any(|w| w == b"Exif"));
        assert!(!out.windows(6).any(|w| w == b"SECRET"));
        let back = image::load_from_memory(&out).unwrap().to_rgb8();
        assert_eq!((back.width(), back.height()), (240, 120));
        // The other face is blocks; the own face (whose box the margin reaches) keeps detail.
        assert_eq!(back.get_pixel(140, 60).0.len(), 3);
        let near = |a: &image::Rgb<u8>, b: &image::Rgb<u8>| {
            a.0.iter()
                .zip(b.0)
                .all(|(x, y)| (i32::from(*x) - i32::from(y)).abs() < 16)
        };
        assert!(near(back.get_pixel(85, 50), img.get_pixel(85, 50)));
        assert!(near(back.get_pixel(30, 50), img.get_pixel(30, 50)));
    }
}

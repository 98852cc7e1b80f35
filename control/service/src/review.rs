//! The console's review queue and file page as read models: what one page shows, loaded in one
//! database round trip per page with a bounded number of queries (no query per face): the faces
//! waiting for a human (keyset-paged, newest first, on the `faces(tenant_id, status,
//! created_at, id)` index), the persons they show or are suggested as (one query, names only as
//! [`crate::persons::shows_real_names`] allows), their avatars (one query), and for a file its
//! faces, legal basis, compliance per channel, versions, exact duplicates and audit trail.
//!
//! The decisions themselves are the faces module's ([`crate::faces::confirm_face`],
//! [`crate::faces::reject_face`], ...); this module only reads.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use likeness_control_media::matcher::Candidate;
use serde::Serialize;

use crate::assets::{AssetOut, AssetRow, Duplicate, VersionOut};
use crate::audit::{AuditEntry, AuditEntryOut};
use crate::compliance::{self, AssetCompliance, LegalBasisOut, Reader};
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::faces::{self, FaceRow};
use crate::roles::Permission;
use crate::schema::{assets, audit_log, faces as faces_t, persons};
use crate::settings;

/// Cards per page of the review queue.
pub const QUEUE_PAGE: i64 = 20;
/// Persons offered in each "another person" list of the review queue (20 cards: the page stays
/// small; the search narrows the list).
pub const QUEUE_PERSON_CHOICES: i64 = 25;
/// Persons offered in each "link a person" list of a file page.
pub const FILE_PERSON_CHOICES: i64 = 60;
/// Audit entries shown on a file page.
pub const FILE_AUDIT_LIMIT: i64 = 50;

/// Which faces the queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum QueueTab {
    /// Faces with a suggestion (`suggested`).
    Suggested,
    /// Identifiable faces nobody recognised (`unknown`).
    Unknown,
}

impl QueueTab {
    /// From the query string (`suggested` by default).
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s.unwrap_or("suggested") {
            "suggested" | "" => Ok(Self::Suggested),
            "unknown" => Ok(Self::Unknown),
            other => Err(ControlError::invalid(
                "tab",
                format!("unknown tab {other:?}: suggested or unknown"),
            )),
        }
    }

    /// The query-string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suggested => "suggested",
            Self::Unknown => "unknown",
        }
    }
}

/// A face's box on an image, with the image's size: enough to draw a crop from the asset's
/// thumbnail (same aspect ratio as the image; the box is in pixels of the oriented image).
#[derive(Debug, Clone, Serialize)]
pub struct Crop {
    /// The asset.
    pub asset_id: String,
    /// `[x1, y1, x2, y2]` in pixels of the oriented image.
    pub bbox: [f64; 4],
    /// Width of the oriented image.
    pub width: f64,
    /// Height of the oriented image.
    pub height: f64,
    /// Whether the asset has a thumbnail to crop.
    pub has_thumbnail: bool,
}

impl Crop {
    /// A square `viewBox` around the face with a margin, clamped to the image where it can be:
    /// `"x y side side"`.
    pub fn view_box(&self) -> String {
        let [x1, y1, x2, y2] = self.bbox;
        let side = ((x2 - x1).max(y2 - y1) * 1.3).max(1.0);
        let cx = (x1 + x2) / 2.0;
        let cy = (y1 + y2) / 2.0;
        let clamp = |c: f64, max: f64| {
            let v = c - side / 2.0;
            if side >= max {
                v
            } else {
                v.clamp(0.0, max - side)
            }
        };
        format!(
            "{:.1} {:.1} {:.1} {:.1}",
            clamp(cx, self.width),
            clamp(cy, self.height),
            side,
            side
        )
    }
}

/// A person as the console shows them next to a face.
#[derive(Debug, Clone, Serialize)]
pub struct PersonBrief {
    /// ID.
    pub id: String,
    /// The name, or the pseudonym where names are hidden.
    pub label: String,
    /// Their avatar face, when they have one.
    pub avatar: Option<Crop>,
}

/// A suggested person with the matcher's score.
#[derive(Debug, Clone, Serialize)]
pub struct Suggested {
    /// The person.
    pub person: PersonBrief,
    /// Cosine similarity.
    pub score: f32,
}

/// A face of the review queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueCard {
    /// The face.
    pub face_id: String,
    /// `suggested` or `unknown`.
    pub status: String,
    /// Its crop.
    pub crop: Crop,
    /// The asset's file name.
    pub filename: String,
    /// Detector score.
    pub detector_score: Option<f64>,
    /// Suggested persons, best first (rejected ones never appear).
    pub candidates: Vec<Suggested>,
    /// When the face was found.
    pub created_at: NaiveDateTime,
}

/// One page of the review queue.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewQueue {
    /// The tab shown.
    pub tab: QueueTab,
    /// The faces, newest first.
    pub cards: Vec<QueueCard>,
    /// Cursor of the next page (`after=`), absent on the last page.
    pub next_after: Option<String>,
    /// Whether this page was asked for with a cursor (not the first page).
    pub paged: bool,
    /// Persons offered for "another person" (see [`person_choices`]).
    pub choices: Vec<PersonBrief>,
    /// The search that chose them.
    pub q: Option<String>,
    /// Whether the user may decide (`manage_assets` and `see_persons`).
    pub can_decide: bool,
    /// Whether the user may register a person (`manage_persons`).
    pub can_create_person: bool,
}

/// The review queue's query string.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct QueueQuery {
    /// `suggested` (default) or `unknown`.
    pub tab: Option<String>,
    /// The cursor of the previous page's `next_after`.
    pub after: Option<String>,
    /// Narrows the persons offered for "another person".
    pub q: Option<String>,
    /// A notice key (read by the layout).
    pub notice: Option<String>,
}

fn encode_cursor(at: NaiveDateTime, id: &str) -> String {
    format!("{}~{id}", at.and_utc().timestamp_micros())
}

fn decode_cursor(s: &str) -> Result<(NaiveDateTime, String)> {
    let bad = || ControlError::invalid("after", "not a cursor of this list");
    let (micros, id) = s.split_once('~').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(bad)?
        .naive_utc();
    if id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok((at, id.to_string()))
}

fn parse_candidates(json: Option<&str>) -> Vec<Candidate> {
    json.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// Loads persons by ID in one query and their avatars in one more, labelled by name or by
/// pseudonym (`names`). Deleted persons are left out.
fn persons_by_id(
    c: &mut DbConn,
    tenant: &str,
    ids: &HashSet<String>,
    names: bool,
) -> Result<HashMap<String, PersonBrief>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&String> = ids.iter().collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(900) {
        let rows: Vec<(String, String, Option<String>)> = persons::table
            .filter(persons::tenant_id.eq(tenant))
            .filter(persons::id.eq_any(chunk))
            .filter(persons::deleted_at.is_null())
            .select((persons::id, persons::pseudonym, persons::avatar_face_id))
            .load(c)?;
        let rows = with_names(c, tenant, rows, names)?;
        out.extend(briefs(c, tenant, rows, names)?);
    }
    Ok(out)
}

/// `(id, name, pseudonym, avatar)`.
type NamedRow = (String, String, String, Option<String>);

/// `(id, pseudonym, avatar)` rows with the name opened from the vault (empty unless `names`).
fn with_names(
    c: &mut DbConn,
    tenant: &str,
    rows: Vec<(String, String, Option<String>)>,
    names: bool,
) -> Result<Vec<NamedRow>> {
    let mut real = if names {
        let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        crate::persons::names_of(c, tenant, &ids)?
    } else {
        HashMap::new()
    };
    Ok(rows
        .into_iter()
        .map(|(id, pseudonym, avatar)| {
            let name = real.remove(&id).unwrap_or_default();
            (id, name, pseudonym, avatar)
        })
        .collect())
}

fn briefs(
    c: &mut DbConn,
    tenant: &str,
    rows: Vec<(String, String, String, Option<String>)>,
    names: bool,
) -> Result<Vec<(String, PersonBrief)>> {
    // The chosen avatar face, else the person's first confirmed face (as the register shows).
    let without: Vec<&String> = rows
        .iter()
        .filter(|r| r.3.is_none())
        .map(|r| &r.0)
        .collect();
    let firsts: Vec<(Option<String>, Option<String>)> = if without.is_empty() {
        Vec::new()
    } else {
        faces_t::table
            .filter(faces_t::tenant_id.eq(tenant))
            .filter(faces_t::person_id.eq_any(&without))
            .filter(faces_t::status.eq(faces::CONFIRMED))
            .group_by(faces_t::person_id)
            .select((faces_t::person_id, diesel::dsl::min(faces_t::id)))
            .load(c)?
    };
    let mut avatar_of: HashMap<String, String> = firsts
        .into_iter()
        .filter_map(|(p, f)| Some((p?, f?)))
        .collect();
    for r in &rows {
        if let Some(f) = &r.3 {
            avatar_of.insert(r.0.clone(), f.clone());
        }
    }
    let avatar_ids: Vec<&String> = avatar_of.values().collect();
    let avatars = crops_of(c, tenant, &avatar_ids)?;
    Ok(rows
        .into_iter()
        .map(|(id, name, pseudonym, _)| {
            let brief = PersonBrief {
                id: id.clone(),
                label: if names { name } else { pseudonym },
                avatar: avatar_of.get(&id).and_then(|a| avatars.get(a).cloned()),
            };
            (id, brief)
        })
        .collect())
}

/// The crops of some faces (one query joining their assets).
fn crops_of(c: &mut DbConn, tenant: &str, face_ids: &[&String]) -> Result<HashMap<String, Crop>> {
    if face_ids.is_empty() {
        return Ok(HashMap::new());
    }
    type Row = (
        String,
        String,
        f64,
        f64,
        f64,
        f64,
        Option<i32>,
        Option<i32>,
        Option<String>,
    );
    let mut out = HashMap::new();
    for chunk in face_ids.chunks(900) {
        let rows: Vec<Row> = faces_t::table
            .inner_join(assets::table.on(assets::id.eq(faces_t::asset_id)))
            .filter(faces_t::tenant_id.eq(tenant))
            .filter(faces_t::id.eq_any(chunk))
            .select((
                faces_t::id,
                faces_t::asset_id,
                faces_t::box_x1,
                faces_t::box_y1,
                faces_t::box_x2,
                faces_t::box_y2,
                assets::width,
                assets::height,
                assets::thumb_blob_key,
            ))
            .load(c)?;
        for (id, asset_id, x1, y1, x2, y2, w, h, thumb) in rows {
            out.insert(
                id,
                Crop {
                    asset_id,
                    bbox: [x1, y1, x2, y2],
                    width: f64::from(w.unwrap_or(0)),
                    height: f64::from(h.unwrap_or(0)),
                    has_thumbnail: thumb.is_some(),
                },
            );
        }
    }
    Ok(out)
}

/// Persons to offer for linking a face: those whose name (or pseudonym) contains `q`, else
/// the first ones in name (or pseudonym) order; at most `limit`.
fn person_choices(
    c: &mut DbConn,
    tenant: &str,
    q: Option<&str>,
    names: bool,
    limit: i64,
) -> Result<Vec<PersonBrief>> {
    // Names are sealed (the vault): the search and the order by name run in memory.
    let rows: Vec<(String, String, Option<String>)> = persons::table
        .filter(persons::tenant_id.eq(tenant))
        .filter(persons::deleted_at.is_null())
        .select((persons::id, persons::pseudonym, persons::avatar_face_id))
        .load(c)?;
    let mut rows = with_names(c, tenant, rows, names)?;
    if let Some(text) = q.map(str::trim).filter(|s| !s.is_empty()) {
        let pat = text.to_lowercase().replace(['%', '_'], "");
        rows.retain(|(_, name, pseudonym, _)| {
            pseudonym.to_lowercase().contains(&pat) || (names && name.to_lowercase().contains(&pat))
        });
    }
    if names {
        rows.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    } else {
        rows.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
    }
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    // Avatars are not shown in a select list: no second query.
    Ok(rows
        .into_iter()
        .map(|(id, name, pseudonym, _)| PersonBrief {
            id,
            label: if names { name } else { pseudonym },
            avatar: None,
        })
        .collect())
}

fn candidates_of(cands: &[Candidate], people: &HashMap<String, PersonBrief>) -> Vec<Suggested> {
    cands
        .iter()
        .filter_map(|c| {
            people.get(&c.person_id).map(|p| Suggested {
                person: p.clone(),
                score: c.score,
            })
        })
        .collect()
}

/// One page of the review queue (`see_persons`: it shows who the faces may be). Faces of `tab`
/// newest first, [`QUEUE_PAGE`] per page, continued by `after` (a keyset cursor, so a deep
/// page costs what the first one does).
pub async fn review_queue(ctx: &Ctx, q: Result<QueueQuery>) -> Result<ReviewQueue> {
    ctx.require(Permission::SeePersons)?;
    let q = q?;
    let tab = QueueTab::parse(q.tab.as_deref())?;
    let after = q.after.as_deref().map(decode_cursor).transpose()?;
    let can_decide = ctx.has(Permission::ManageAssets);
    let can_create_person = can_decide && ctx.has(Permission::ManagePersons);
    let (t, actor) = (ctx.tenant().to_string(), ctx.actor.clone());
    db::run(&ctx.deps.pool, move |c| {
        let s = settings::get(c, &t)?;
        let names = crate::persons::shows_real_names(&actor, &s);
        let status = match tab {
            QueueTab::Suggested => faces::SUGGESTED,
            QueueTab::Unknown => faces::UNKNOWN,
        };
        let mut query = faces_t::table
            .inner_join(assets::table.on(assets::id.eq(faces_t::asset_id)))
            .filter(faces_t::tenant_id.eq(&t))
            .filter(faces_t::status.eq(status))
            .into_boxed();
        if tab == QueueTab::Unknown {
            query = query.filter(faces_t::identifiable.eq(true));
        }
        if let Some((at, id)) = &after {
            // A row comparison: an index bound on PostgreSQL and SQLite alike (an OR of the two
            // conditions is only a filter on PostgreSQL, scanning every newer face).
            query = query.filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("(faces.created_at, faces.id) < (")
                    .bind::<diesel::sql_types::Timestamp, _>(*at)
                    .sql(", ")
                    .bind::<diesel::sql_types::Text, _>(id.clone())
                    .sql(")"),
            );
        }
        type Row = (
            String,
            String,
            f64,
            f64,
            f64,
            f64,
            Option<f64>,
            Option<String>,
            NaiveDateTime,
            String,
            Option<i32>,
            Option<i32>,
            Option<String>,
        );
        let mut rows: Vec<Row> = query
            .order((faces_t::created_at.desc(), faces_t::id.desc()))
            .limit(QUEUE_PAGE + 1)
            .select((
                faces_t::id,
                faces_t::asset_id,
                faces_t::box_x1,
                faces_t::box_y1,
                faces_t::box_x2,
                faces_t::box_y2,
                faces_t::score,
                faces_t::candidates_json,
                faces_t::created_at,
                assets::filename,
                assets::width,
                assets::height,
                assets::thumb_blob_key,
            ))
            .load(c)?;
        let more = rows.len() as i64 > QUEUE_PAGE;
        rows.truncate(usize::try_from(QUEUE_PAGE).unwrap_or(20));
        let next_after = if more {
            rows.last().map(|r| encode_cursor(r.8, &r.0))
        } else {
            None
        };
        let parsed: Vec<Vec<Candidate>> = rows
            .iter()
            .map(|r| parse_candidates(r.7.as_deref()))
            .collect();
        let ids: HashSet<String> = parsed
            .iter()
            .flatten()
            .map(|c| c.person_id.clone())
            .collect();
        let people = persons_by_id(c, &t, &ids, names)?;
        let choices = if can_decide {
            person_choices(c, &t, q.q.as_deref(), names, QUEUE_PERSON_CHOICES)?
        } else {
            Vec::new()
        };
        let cards = rows
            .into_iter()
            .zip(parsed)
            .map(
                |(
                    (id, asset_id, x1, y1, x2, y2, score, _, created, filename, w, h, thumb),
                    cands,
                )| {
                    QueueCard {
                        face_id: id,
                        status: status.to_string(),
                        crop: Crop {
                            asset_id,
                            bbox: [x1, y1, x2, y2],
                            width: f64::from(w.unwrap_or(0)),
                            height: f64::from(h.unwrap_or(0)),
                            has_thumbnail: thumb.is_some(),
                        },
                        filename,
                        detector_score: score,
                        candidates: candidates_of(&cands, &people),
                        created_at: created,
                    }
                },
            )
            .collect();
        Ok(ReviewQueue {
            tab,
            cards,
            next_after,
            paged: after.is_some(),
            choices,
            q: q.q.filter(|s| !s.trim().is_empty()),
            can_decide,
            can_create_person,
        })
    })
    .await
}

/// A face on the file page.
#[derive(Debug, Clone, Serialize)]
pub struct FileFace {
    /// ID.
    pub id: String,
    /// `unknown`, `suggested`, `confirmed`, `rejected`.
    pub status: String,
    /// `detected` or `manual`.
    pub source: String,
    /// `[x1, y1, x2, y2]` in pixels of the oriented image.
    pub bbox: [f64; 4],
    /// Usable for identification.
    pub identifiable: bool,
    /// The linked person (confirmed faces; only with `see_persons`).
    pub person: Option<PersonBrief>,
    /// Suggested persons, best first (only with `see_persons`).
    pub candidates: Vec<Suggested>,
}

/// Everything the file page shows.
#[derive(Debug, Serialize)]
pub struct FilePage {
    /// The asset.
    pub asset: AssetOut,
    /// Its faces, left to right.
    pub faces: Vec<FileFace>,
    /// Whether the user may have the full image ([`crate::assets::may_use`]); otherwise the
    /// page shows the thumbnail.
    pub image_allowed: bool,
    /// Its legal basis.
    pub legal_basis: LegalBasisOut,
    /// Compliance per channel today.
    pub compliance: AssetCompliance,
    /// Versions, oldest first.
    pub versions: Vec<VersionOut>,
    /// Other assets that are the same file (same sha256).
    pub duplicates: Vec<Duplicate>,
    /// Near duplicates (perceptual hash), when asked for (`near`): a scan of the tenant's files.
    pub near_duplicates: Option<Vec<Duplicate>>,
    /// The audit entries about the file and its faces, newest first (`read_audit` only);
    /// reads and downloads only when asked for (`audit_reads`).
    pub audit: Option<Vec<AuditEntryOut>>,
    /// Whether the audit trail includes reads and downloads.
    pub audit_reads: bool,
    /// Persons offered for linking a face (with `manage_assets` and `see_persons`).
    pub choices: Vec<PersonBrief>,
    /// Whether persons are shown (`see_persons`).
    pub see_persons: bool,
}

/// Exact duplicates of an asset: the tenant's other assets with the same sha256 (indexed).
fn exact_duplicates(c: &mut DbConn, tenant: &str, a: &AssetRow) -> Result<Vec<Duplicate>> {
    let rows: Vec<(String, String)> = assets::table
        .filter(assets::tenant_id.eq(tenant))
        .filter(assets::sha256.eq(&a.sha256))
        .filter(assets::id.ne(&a.id))
        .order(assets::id.asc())
        .limit(100)
        .select((assets::id, assets::filename))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|(asset_id, filename)| Duplicate {
            asset_id,
            filename,
            kind: "exact".into(),
            distance: 0,
        })
        .collect())
}

/// The audit entries about an asset and its current faces, newest first, at most `limit`.
/// The sequence numbers come from the `audit_log(tenant_id, object_type, object_id, seq)` index
/// alone (no ORDER BY over the faces' entries: SQLite would walk the tenant's whole log by
/// `seq` instead), then the chosen entries are loaded by `seq`.
fn file_audit(
    c: &mut DbConn,
    tenant: &str,
    asset_id: &str,
    face_ids: &[String],
    limit: i64,
    reads: bool,
) -> Result<Vec<AuditEntry>> {
    let mut q = audit_log::table
        .filter(audit_log::tenant_id.eq(tenant))
        .filter(audit_log::object_type.eq("asset"))
        .filter(audit_log::object_id.eq(asset_id))
        .into_boxed();
    if !reads {
        q = q
            .filter(audit_log::action.not_like("%.read"))
            .filter(audit_log::action.ne("asset.download"));
    }
    let mut seqs: Vec<i64> = q
        .order(audit_log::seq.desc())
        .limit(limit)
        .select(audit_log::seq)
        .load(c)?;
    for chunk in face_ids.chunks(900) {
        let mut q = audit_log::table
            .filter(audit_log::tenant_id.eq(tenant))
            .filter(audit_log::object_type.eq("face"))
            .filter(audit_log::object_id.eq_any(chunk))
            .into_boxed();
        if !reads {
            q = q.filter(audit_log::action.not_like("%.read"));
        }
        let more: Vec<i64> = q.select(audit_log::seq).load(c)?;
        seqs.extend(more);
    }
    seqs.sort_unstable_by_key(|s| std::cmp::Reverse(*s));
    seqs.truncate(usize::try_from(limit).unwrap_or(50));
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<AuditEntry> = audit_log::table
        .filter(audit_log::seq.eq_any(&seqs))
        .select(AuditEntry::as_select())
        .load(c)?;
    out.sort_by_key(|e| std::cmp::Reverse(e.seq));
    Ok(out)
}

/// The file page's query string.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct FileQuery {
    /// Narrows the persons offered for linking a face.
    pub q: Option<String>,
    /// Look for near duplicates too (`1`).
    pub near: Option<String>,
    /// Show reads (`*.read`) and downloads in the audit trail too (`1`).
    pub reads: Option<String>,
    /// A notice key (read by the layout).
    pub notice: Option<String>,
}

/// Everything the file page of `asset_id` shows (every user of the tenant; persons and the
/// faces' candidates only with `see_persons`, by name only as
/// [`crate::persons::shows_real_names`] allows; the audit trail only with `read_audit`).
pub async fn file_page(ctx: &Ctx, asset_id: String, q: Result<FileQuery>) -> Result<FilePage> {
    let q = q?;
    let see_persons = ctx.has(Permission::SeePersons);
    let offer = see_persons && ctx.has(Permission::ManageAssets);
    let read_audit = ctx.has(Permission::ReadAudit);
    let use_unapproved = ctx.has(Permission::UseUnapprovedFiles);
    let near = q.near.as_deref().is_some_and(|v| v == "1" || v == "true");
    let reads = q.reads.as_deref().is_some_and(|v| v == "1" || v == "true");
    let (t, actor, today, reader) = (
        ctx.tenant().to_string(),
        ctx.actor.clone(),
        ctx.today(),
        Reader::of(ctx),
    );
    db::run(&ctx.deps.pool, move |c| {
        let row = crate::assets::get_row(c, &t, &asset_id)?;
        let s = settings::get(c, &t)?;
        let names = crate::persons::shows_real_names(&actor, &s);
        let face_rows: Vec<FaceRow> = faces::list_for_asset(c, &t, &asset_id)?;
        let parsed: Vec<Vec<Candidate>> = face_rows
            .iter()
            .map(|f| parse_candidates(f.candidates_json.as_deref()))
            .collect();
        let people = if see_persons {
            let ids: HashSet<String> = face_rows
                .iter()
                .filter_map(|f| f.person_id.clone())
                .chain(parsed.iter().flatten().map(|c| c.person_id.clone()))
                .collect();
            persons_by_id(c, &t, &ids, names)?
        } else {
            HashMap::new()
        };
        let faces_out: Vec<FileFace> = face_rows
            .iter()
            .zip(&parsed)
            .map(|(f, cands)| FileFace {
                id: f.id.clone(),
                status: f.status.clone(),
                source: f.source.clone(),
                bbox: [f.box_x1, f.box_y1, f.box_x2, f.box_y2],
                identifiable: f.identifiable,
                person: f.person_id.as_ref().and_then(|p| people.get(p).cloned()),
                candidates: if see_persons {
                    candidates_of(cands, &people)
                } else {
                    Vec::new()
                },
            })
            .collect();
        let image_allowed = compliance::use_check(c, &t, &asset_id, use_unapproved, today)?
            .decision
            != likeness_control_domain::UseDecision::Deny;
        let legal_basis = compliance::get_legal_basis(c, &t, &asset_id)?;
        let compliance = compliance::asset_compliance(c, &reader, &t, &asset_id, None, today)?;
        let versions = crate::assets::versions(c, &t, &asset_id)?;
        let duplicates = exact_duplicates(c, &t, &row)?;
        let near_duplicates = if near {
            Some(
                crate::assets::duplicates_of(c, &t, &asset_id)?
                    .into_iter()
                    .filter(|d| d.kind != "exact")
                    .collect(),
            )
        } else {
            None
        };
        let audit = if read_audit {
            let ids: Vec<String> = face_rows.iter().map(|f| f.id.clone()).collect();
            Some(
                file_audit(c, &t, &asset_id, &ids, FILE_AUDIT_LIMIT, reads)?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            )
        } else {
            None
        };
        let choices = if offer {
            person_choices(c, &t, q.q.as_deref(), names, FILE_PERSON_CHOICES)?
        } else {
            Vec::new()
        };
        Ok(FilePage {
            asset: row.into(),
            faces: faces_out,
            image_allowed,
            legal_basis,
            compliance,
            versions,
            duplicates,
            near_duplicates,
            audit,
            audit_reads: reads,
            choices,
            see_persons,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let at = chrono::DateTime::from_timestamp_micros(1_764_000_000_123_456)
            .map(|d| d.naive_utc())
            .unwrap_or_default();
        let s = encode_cursor(at, "abc-1");
        assert_eq!(decode_cursor(&s).ok(), Some((at, "abc-1".to_string())));
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor("12~").is_err());
    }

    #[test]
    fn crop_is_square_around_the_face_and_inside_the_image() {
        let c = Crop {
            asset_id: "a".into(),
            bbox: [0.0, 10.0, 100.0, 60.0],
            width: 1000.0,
            height: 500.0,
            has_thumbnail: true,
        };
        assert_eq!(c.view_box(), "0.0 0.0 130.0 130.0");
    }
}

//! (MEDIA) Faces of assets: detected by the matcher (box, landmarks, score, quality,
//! candidates, model version) or drawn by hand; confirmed (linked to a person, at most once per
//! asset), rejected (the person is never suggested again for that face) or unlinked.
//!
//! Confirming enrolls the face's template in the matcher only when the person has a valid
//! agreement that covers face matching; otherwise the face is linked without a template.
//! Rejecting or unlinking an enrolled face, withdrawing that consent, or deleting the person
//! removes the templates from the matcher ([`remove_person_templates`]). Matcher calls that
//! fail because it is down are queued as durable jobs, so they happen when it returns.

use diesel::prelude::*;
use likeness_control_media::matcher::{Candidate, SuggestedFace, Suggestion};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Deps;
use crate::assets::{media, media_error};
use crate::audit::{self, Who};
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::job_kinds::{EnrollFace, RemovePersonTemplates, RemoveTemplates};
use crate::jobs;
use crate::schema::{agreements, assets, face_rejections, faces, persons};

/// (MEDIA) Matcher templates enrolled from confirmed faces (defined with the schema).
pub use crate::schema::face_templates;

/// Face status `unknown`: no person, no suggestion.
pub const UNKNOWN: &str = "unknown";
/// Face status `suggested`: the matcher proposes candidates.
pub const SUGGESTED: &str = "suggested";
/// Face status `confirmed`: linked to a person by a human.
pub const CONFIRMED: &str = "confirmed";
/// Face status `rejected`: every suggestion rejected by a human.
pub const REJECTED: &str = "rejected";
/// Face source `detected`.
pub const DETECTED: &str = "detected";
/// Face source `manual`.
pub const MANUAL: &str = "manual";

/// Boxes overlapping by more than this (IoU) are the same face.
const SAME_FACE_IOU: f64 = 0.5;

/// A face as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = faces)]
pub struct FaceRow {
    /// ID.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Asset.
    pub asset_id: String,
    /// `detected` or `manual`.
    pub source: String,
    /// `unknown`, `suggested`, `confirmed`, `rejected`.
    pub status: String,
    /// Linked person (confirmed faces).
    pub person_id: Option<String>,
    /// Box left.
    pub box_x1: f64,
    /// Box top.
    pub box_y1: f64,
    /// Box right.
    pub box_x2: f64,
    /// Box bottom.
    pub box_y2: f64,
    /// Landmarks `[[x,y],..]`.
    pub landmarks_json: Option<String>,
    /// Detector score.
    pub score: Option<f64>,
    /// Usable for identification.
    pub identifiable: bool,
    /// Quality (JSON).
    pub quality_json: Option<String>,
    /// Candidates (JSON), rejected persons removed.
    pub candidates_json: Option<String>,
    /// Model version of the detection.
    pub model_version: Option<String>,
    /// Whether a template of this face is in the matcher.
    pub template_enrolled: bool,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<chrono::NaiveDateTime>,
    /// Created.
    pub created_at: chrono::NaiveDateTime,
}

/// A candidate in API answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CandidateOut {
    /// Person ID.
    pub person_id: String,
    /// Similarity (cosine).
    pub score: f32,
}

/// A face in API answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FaceOut {
    /// ID.
    pub id: String,
    /// Asset.
    pub asset_id: String,
    /// `detected` or `manual`.
    pub source: String,
    /// `unknown`, `suggested`, `confirmed`, `rejected`.
    pub status: String,
    /// Linked person (confirmed); hidden without `see_persons`.
    pub person_id: Option<String>,
    /// Box `[x1, y1, x2, y2]` in pixels of the oriented image.
    pub r#box: [f64; 4],
    /// Five landmarks.
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// Detector score.
    pub score: Option<f64>,
    /// Usable for identification (an identifiable face without a person blocks approval).
    pub identifiable: bool,
    /// Quality.
    #[schema(value_type = Option<Object>)]
    pub quality: Option<serde_json::Value>,
    /// Suggested persons, best first (rejected ones never appear); hidden without `see_persons`.
    pub candidates: Vec<CandidateOut>,
    /// Model version of the detection.
    pub model_version: Option<String>,
    /// Whether the matcher holds a template of this face.
    pub template_enrolled: bool,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub decided_at: Option<chrono::NaiveDateTime>,
}

impl FaceRow {
    fn candidates(&self) -> Vec<Candidate> {
        self.candidates_json
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }

    fn bbox(&self) -> [f64; 4] {
        [self.box_x1, self.box_y1, self.box_x2, self.box_y2]
    }

    /// The API form; `see_persons` decides whether person IDs are shown.
    pub fn out(&self, see_persons: bool) -> FaceOut {
        FaceOut {
            id: self.id.clone(),
            asset_id: self.asset_id.clone(),
            source: self.source.clone(),
            status: self.status.clone(),
            person_id: self.person_id.clone().filter(|_| see_persons),
            r#box: self.bbox(),
            landmarks: self
                .landmarks_json
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            score: self.score,
            identifiable: self.identifiable,
            quality: self
                .quality_json
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            candidates: if see_persons {
                self.candidates()
                    .into_iter()
                    .map(|c| CandidateOut {
                        person_id: c.person_id,
                        score: c.score,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            model_version: self.model_version.clone(),
            template_enrolled: self.template_enrolled,
            decided_by: self.decided_by.clone(),
            decided_at: self.decided_at,
        }
    }

    fn decided(&self) -> bool {
        self.source == MANUAL || self.status == CONFIRMED || self.status == REJECTED
    }
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let area = |r: [f64; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Faces of an asset (the asset must be the tenant's).
pub fn list_for_asset(c: &mut DbConn, tenant: &str, asset_id: &str) -> Result<Vec<FaceRow>> {
    crate::assets::get_row(c, tenant, asset_id)?;
    Ok(faces::table
        .filter(faces::tenant_id.eq(tenant))
        .filter(faces::asset_id.eq(asset_id))
        .order((faces::box_x1.asc(), faces::id.asc()))
        .select(FaceRow::as_select())
        .load(c)?)
}

/// One face of the tenant.
pub fn get_row(c: &mut DbConn, tenant: &str, id: &str) -> Result<FaceRow> {
    faces::table
        .filter(faces::tenant_id.eq(tenant))
        .filter(faces::id.eq(id))
        .select(FaceRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ControlError::not_found(format!("face {id}")))
}

fn rejected_persons(c: &mut DbConn, tenant: &str, face_id: &str) -> Result<Vec<String>> {
    Ok(face_rejections::table
        .filter(face_rejections::tenant_id.eq(tenant))
        .filter(face_rejections::face_id.eq(face_id))
        .select(face_rejections::person_id)
        .load(c)?)
}

/// A planned change of an asset's faces by a detection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MergePlan {
    /// Faces that would be added.
    pub added: usize,
    /// Undecided faces whose candidates would change.
    pub updated: usize,
    /// Undecided faces no longer detected, that would be removed.
    pub removed: usize,
    /// Detections matching a human-decided face (left untouched).
    pub kept_decided: usize,
}

impl MergePlan {
    /// Whether anything would change.
    pub fn changes(&self) -> bool {
        self.added + self.updated + self.removed > 0
    }
}

fn candidates_of(
    f: &SuggestedFace,
    rejected: &[String],
    barred: &std::collections::HashSet<String>,
) -> Vec<Candidate> {
    f.candidates
        .iter()
        .filter(|c| !rejected.contains(&c.person_id) && !barred.contains(&c.person_id))
        .cloned()
        .collect()
}

/// The persons among `persons` who must not be suggested on `day`: minors (below the tenant's
/// age threshold by date of birth) without a face-matching consent in force, which for a minor
/// means one signed by a guardian ([`crate::agreements::has_face_matching_consent`]).
pub fn barred_from_suggestion(
    c: &mut DbConn,
    tenant: &str,
    persons: &[String],
    day: chrono::NaiveDate,
) -> Result<std::collections::HashSet<String>> {
    let mut barred = std::collections::HashSet::new();
    if persons.is_empty() {
        return Ok(barred);
    }
    // Dates of birth are sealed (the vault).
    let dobs: Vec<(String, Option<chrono::NaiveDate>)> =
        crate::persons::personal_map(c, tenant, persons)?
            .into_iter()
            .map(|(id, p)| (id, p.date_of_birth))
            .collect();
    let threshold = crate::settings::get(c, tenant)?.age_threshold;
    for (id, dob) in dobs {
        if let Some(dob) = dob
            && likeness_control_domain::minor::is_minor(dob, day, threshold)
            && !has_face_matching_consent(c, tenant, &id, day)?
        {
            barred.insert(id);
        }
    }
    Ok(barred)
}

/// Merges a detection into the asset's faces (in the caller's transaction; `write == false`
/// only plans): a detection matching an undecided detected face updates it in place (its
/// rejections stay), one matching a confirmed, rejected or hand-drawn face changes nothing,
/// a new one is added; undecided detected faces no longer found are removed. Rejected persons
/// and minors without a guardian-signed face-matching consent ([`barred_from_suggestion`])
/// are never candidates. At `now` (the day decides who is a minor and whose consent is in
/// force).
pub fn merge_suggestion_at(
    c: &mut DbConn,
    tenant: &str,
    asset_id: &str,
    s: &Suggestion,
    write: bool,
    now: chrono::NaiveDateTime,
) -> Result<MergePlan> {
    let mut suggested: Vec<String> = s
        .faces
        .iter()
        .flat_map(|f| f.candidates.iter().map(|c| c.person_id.clone()))
        .collect();
    suggested.sort();
    suggested.dedup();
    let barred = barred_from_suggestion(c, tenant, &suggested, now.date())?;
    let existing: Vec<FaceRow> = faces::table
        .filter(faces::tenant_id.eq(tenant))
        .filter(faces::asset_id.eq(asset_id))
        .select(FaceRow::as_select())
        .load(c)?;
    let mut matched = vec![false; existing.len()];
    let mut plan = MergePlan::default();
    for f in &s.faces {
        let b = f.bbox.map(f64::from);
        let best = existing
            .iter()
            .enumerate()
            .filter(|(i, _)| !matched[*i])
            .map(|(i, e)| (i, iou(b, e.bbox())))
            .filter(|(_, v)| *v > SAME_FACE_IOU)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let quality = serde_json::to_string(&f.quality)?;
        let landmarks = serde_json::to_string(&f.landmarks)?;
        match best {
            Some((i, _)) if existing[i].decided() => {
                matched[i] = true;
                plan.kept_decided += 1;
            }
            Some((i, _)) => {
                matched[i] = true;
                let e = &existing[i];
                let rejected = rejected_persons(c, tenant, &e.id)?;
                let cands = candidates_of(f, &rejected, &barred);
                let status = if cands.is_empty() { UNKNOWN } else { SUGGESTED };
                let cj = serde_json::to_string(&cands)?;
                let same_people = e
                    .candidates()
                    .iter()
                    .map(|c| &c.person_id)
                    .eq(cands.iter().map(|c| &c.person_id));
                if !same_people || e.status != status {
                    plan.updated += 1;
                }
                if write {
                    diesel::update(faces::table.filter(faces::id.eq(&e.id)))
                        .set((
                            faces::status.eq(status),
                            faces::box_x1.eq(b[0]),
                            faces::box_y1.eq(b[1]),
                            faces::box_x2.eq(b[2]),
                            faces::box_y2.eq(b[3]),
                            faces::landmarks_json.eq(&landmarks),
                            faces::score.eq(f64::from(f.score)),
                            faces::identifiable.eq(f.quality.identifiable),
                            faces::quality_json.eq(&quality),
                            faces::candidates_json.eq(&cj),
                            faces::model_version.eq(&s.model_version),
                        ))
                        .execute(c)?;
                }
            }
            None => {
                plan.added += 1;
                if write {
                    let cands = candidates_of(f, &[], &barred);
                    let row = FaceRow {
                        id: db::new_id(),
                        tenant_id: tenant.into(),
                        asset_id: asset_id.into(),
                        source: DETECTED.into(),
                        status: if cands.is_empty() { UNKNOWN } else { SUGGESTED }.into(),
                        person_id: None,
                        box_x1: b[0],
                        box_y1: b[1],
                        box_x2: b[2],
                        box_y2: b[3],
                        landmarks_json: Some(landmarks),
                        score: Some(f64::from(f.score)),
                        identifiable: f.quality.identifiable,
                        quality_json: Some(quality),
                        candidates_json: Some(serde_json::to_string(&cands)?),
                        model_version: Some(s.model_version.clone()),
                        template_enrolled: false,
                        decided_by: None,
                        decided_at: None,
                        created_at: now,
                    };
                    diesel::insert_into(faces::table).values(&row).execute(c)?;
                }
            }
        }
    }
    for (i, e) in existing.iter().enumerate() {
        if !matched[i] && !e.decided() {
            plan.removed += 1;
            if write {
                diesel::delete(face_rejections::table.filter(face_rejections::face_id.eq(&e.id)))
                    .execute(c)?;
                diesel::delete(faces::table.filter(faces::id.eq(&e.id))).execute(c)?;
            }
        }
    }
    Ok(plan)
}

/// Removes the undecided detected faces of an asset (a new version is being detected).
pub fn drop_undecided_detected(c: &mut DbConn, tenant: &str, asset_id: &str) -> Result<usize> {
    let ids: Vec<String> = faces::table
        .filter(faces::tenant_id.eq(tenant))
        .filter(faces::asset_id.eq(asset_id))
        .filter(faces::source.eq(DETECTED))
        .filter(faces::status.eq_any([UNKNOWN, SUGGESTED]))
        .select(faces::id)
        .load(c)?;
    diesel::delete(face_rejections::table.filter(face_rejections::face_id.eq_any(&ids)))
        .execute(c)?;
    Ok(diesel::delete(faces::table.filter(faces::id.eq_any(&ids))).execute(c)?)
}

/// Removes the face rows' template bookkeeping of an asset (the asset is being deleted; the
/// templates were removed from the matcher by [`remove_asset_templates`]).
pub fn delete_asset_faces(c: &mut DbConn, tenant: &str, asset_id: &str) -> Result<()> {
    let ids: Vec<String> = faces::table
        .filter(faces::tenant_id.eq(tenant))
        .filter(faces::asset_id.eq(asset_id))
        .select(faces::id)
        .load(c)?;
    diesel::delete(
        face_templates::table
            .filter(face_templates::tenant_id.eq(tenant))
            .filter(face_templates::face_id.eq_any(&ids)),
    )
    .execute(c)?;
    Ok(())
}

/// Runs the matcher's Suggest on an asset's current file and merges the faces (the
/// `suggest_faces` job). A job for an older version is done without effect.
pub async fn detect_asset(state: &Deps, tenant: &str, asset_id: &str, version: i64) -> Result<()> {
    let m = media(state)?;
    let Some(matcher) = m.matcher.clone() else {
        return Err(ControlError::Unavailable {
            code: "matcher_unavailable",
            message: "no matcher configured (matcher.url is empty)".into(),
        });
    };
    let (row, bytes) = match crate::assets::read_current(state, tenant, asset_id).await {
        Ok(v) => v,
        Err(ControlError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if i64::from(row.current_version) != version && version != 0 {
        return Ok(());
    }
    let s = matcher.suggest(tenant, bytes).await.map_err(media_error)?;
    let (t, a) = (tenant.to_string(), asset_id.to_string());
    let clock_now = state.clock.now();
    db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            // The asset may have changed while the matcher worked.
            let now = crate::assets::get_row(c, &t, &a)?;
            if now.current_version != row.current_version {
                return Ok(());
            }
            let plan = merge_suggestion_at(c, &t, &a, &s, true, clock_now)?;
            crate::exposure::refresh_assets(c, &t, std::slice::from_ref(&a), clock_now)?;
            audit::record(
                c,
                &Who::system("matcher", Some(&t)),
                "faces.detect",
                "asset",
                Some(&a),
                serde_json::json!({
                    "faces": s.faces.len(), "added": plan.added, "updated": plan.updated,
                    "removed": plan.removed, "model_version": s.model_version,
                }),
            )?;
            Ok(())
        })
    })
    .await
}

/// A hand-drawn face.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFace {
    /// Box `[x1, y1, x2, y2]` in pixels of the oriented image.
    pub r#box: [f64; 4],
    /// Whether the face is identifiable (default true).
    pub identifiable: Option<bool>,
}

/// Draws a face by hand (videos too), at `now` (the caller's clock).
pub fn create_manual(
    c: &mut DbConn,
    who: &Who,
    tenant: &str,
    asset_id: &str,
    f: NewFace,
    now: chrono::NaiveDateTime,
) -> Result<FaceRow> {
    let asset = crate::assets::get_row(c, tenant, asset_id)?;
    let [x1, y1, x2, y2] = f.r#box;
    if !f.r#box.iter().all(|v| v.is_finite()) || x2 <= x1 || y2 <= y1 || x1 < 0.0 || y1 < 0.0 {
        return Err(ControlError::invalid(
            "box",
            "must be [x1, y1, x2, y2] with 0 <= x1 < x2 and 0 <= y1 < y2",
        ));
    }
    if let (Some(w), Some(h)) = (asset.width, asset.height)
        && (x2 > f64::from(w) + 0.5 || y2 > f64::from(h) + 0.5)
    {
        return Err(ControlError::invalid(
            "box",
            format!("lies outside the {w}x{h} image"),
        ));
    }
    let row = FaceRow {
        id: db::new_id(),
        tenant_id: tenant.into(),
        asset_id: asset_id.into(),
        source: MANUAL.into(),
        status: UNKNOWN.into(),
        person_id: None,
        box_x1: x1,
        box_y1: y1,
        box_x2: x2,
        box_y2: y2,
        landmarks_json: None,
        score: None,
        identifiable: f.identifiable.unwrap_or(true),
        quality_json: None,
        candidates_json: Some("[]".into()),
        model_version: None,
        template_enrolled: false,
        decided_by: who.user_id.clone(),
        decided_at: Some(now),
        created_at: now,
    };
    diesel::insert_into(faces::table).values(&row).execute(c)?;
    crate::exposure::refresh_assets(c, tenant, &[asset_id.to_string()], now)?;
    audit::record(
        c,
        who,
        "face.create",
        "face",
        Some(&row.id),
        serde_json::json!({"asset_id": asset_id, "box": f.r#box}),
    )?;
    Ok(row)
}

/// Whether the person has a consent in force on `day` that covers face matching (the one rule:
/// [`crate::agreements::has_face_matching_consent`], which for a minor at signing requires a
/// guardian's signature).
fn has_face_matching_consent(
    c: &mut DbConn,
    tenant: &str,
    person: &str,
    day: chrono::NaiveDate,
) -> Result<bool> {
    crate::agreements::has_face_matching_consent(c, tenant, person, day)
}

fn check_person(c: &mut DbConn, tenant: &str, person: &str) -> Result<()> {
    let n: i64 = persons::table
        .filter(persons::tenant_id.eq(tenant))
        .filter(persons::id.eq(person))
        .filter(persons::deleted_at.is_null())
        .count()
        .get_result(c)?;
    if n == 0 {
        return Err(ControlError::not_found(format!("person {person}")));
    }
    Ok(())
}

/// Template ids as the matcher names them (stored as BIGINT; never negative).
fn template_ids_u64(ids: Vec<i64>) -> Vec<u64> {
    ids.into_iter()
        .filter_map(|v| u64::try_from(v).ok())
        .collect()
}

/// Template ids enrolled from a face.
fn face_template_ids(c: &mut DbConn, tenant: &str, face: &str) -> Result<Vec<i64>> {
    Ok(face_templates::table
        .filter(face_templates::tenant_id.eq(tenant))
        .filter(face_templates::face_id.eq(face))
        .select(face_templates::template_id)
        .load(c)?)
}

/// Forgets a face's templates in the DB and queues their removal from the matcher (same
/// transaction: the removal happens even if the matcher is down now); the job is due at `now`.
fn queue_face_template_removal(
    c: &mut DbConn,
    tenant: &str,
    face: &str,
    now: chrono::NaiveDateTime,
) -> Result<bool> {
    let ids = face_template_ids(c, tenant, face)?;
    if ids.is_empty() {
        return Ok(false);
    }
    diesel::delete(
        face_templates::table
            .filter(face_templates::tenant_id.eq(tenant))
            .filter(face_templates::face_id.eq(face)),
    )
    .execute(c)?;
    diesel::update(faces::table.filter(faces::id.eq(face)))
        .set(faces::template_enrolled.eq(false))
        .execute(c)?;
    jobs::enqueue_job_now(
        c,
        tenant,
        &RemoveTemplates {
            template_ids: template_ids_u64(ids),
        },
        now,
    )?;
    Ok(true)
}

/// The result of a decision on a face.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionOut {
    /// The face after the decision.
    pub face: FaceOut,
    /// Confirm: whether a template was enrolled in the matcher (false without consent covering
    /// face matching, or while the matcher is down — then it is queued).
    pub template_enrolled: bool,
    /// Confirm: whether enrollment is queued for when the matcher returns.
    pub enrollment_queued: bool,
    /// Whether templates of this face are being removed from the matcher.
    pub templates_removed: bool,
}

/// Confirms that a face shows `person` (a person appears at most once per asset). Enrolls the
/// template when the person's consent covers face matching.
pub async fn confirm(
    state: &Deps,
    who: Who,
    tenant: String,
    face_id: String,
    person: String,
) -> Result<DecisionOut> {
    let (t, f, p, w) = (tenant.clone(), face_id.clone(), person.clone(), who.clone());
    let now = state.clock.now();
    let day = now.date();
    let (consent, removed) = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            let face = get_row(c, &t, &f)?;
            check_person(c, &t, &p)?;
            let other: Option<String> = faces::table
                .filter(faces::tenant_id.eq(&t))
                .filter(faces::asset_id.eq(&face.asset_id))
                .filter(faces::status.eq(CONFIRMED))
                .filter(faces::person_id.eq(&p))
                .filter(faces::id.ne(&f))
                .select(faces::id)
                .first(c)
                .optional()?;
            if let Some(o) = other {
                return Err(ControlError::Conflict {
                    code: "person_already_in_asset",
                    message: format!(
                        "person {p} is already linked to face {o} of this asset; unlink it first"
                    ),
                });
            }
            // Re-linking to another person: the old templates go.
            let removed = if face.person_id.as_deref() != Some(p.as_str()) {
                queue_face_template_removal(c, &t, &f, now)?
            } else {
                false
            };
            diesel::delete(
                face_rejections::table
                    .filter(face_rejections::face_id.eq(&f))
                    .filter(face_rejections::person_id.eq(&p)),
            )
            .execute(c)?;
            diesel::update(faces::table.filter(faces::id.eq(&f)))
                .set((
                    faces::status.eq(CONFIRMED),
                    faces::person_id.eq(&p),
                    faces::decided_by.eq(&w.user_id),
                    faces::decided_at.eq(now),
                ))
                .execute(c)?;
            crate::exposure::refresh_assets(c, &t, std::slice::from_ref(&face.asset_id), now)?;
            let consent = has_face_matching_consent(c, &t, &p, day)?;
            audit::record(
                c,
                &w,
                "face.confirm",
                "face",
                Some(&f),
                serde_json::json!({"person_id": p, "asset_id": face.asset_id, "face_matching_consent": consent}),
            )?;
            Ok((consent, removed))
        })
    })
    .await?;
    let (mut enrolled, mut queued) = (false, false);
    if consent {
        match enroll_confirmed(state, &tenant, &face_id).await {
            Ok(()) => enrolled = true,
            Err(e) => {
                tracing::warn!(face = %face_id, error = %e, "enrollment queued");
                let (t, f, now) = (tenant.clone(), face_id.clone(), state.clock.now());
                db::run(&state.pool, move |c| {
                    jobs::enqueue_job_now(c, &t, &EnrollFace { face_id: f }, now)
                })
                .await?;
                queued = true;
            }
        }
    }
    let (t, f) = (tenant.clone(), face_id.clone());
    let face = db::run(&state.pool, move |c| get_row(c, &t, &f)).await?;
    Ok(DecisionOut {
        face: face.out(true),
        template_enrolled: enrolled,
        enrollment_queued: queued,
        templates_removed: removed,
    })
}

/// Enrolls the template of a confirmed face if it still is confirmed, has none yet, and the
/// person's consent covers face matching (the `enroll_face` job). The database decides before
/// the matcher is asked: without consent nothing is sent to it.
pub async fn enroll_confirmed(state: &Deps, tenant: &str, face_id: &str) -> Result<()> {
    let (t, f) = (tenant.to_string(), face_id.to_string());
    let day = state.clock.today();
    let face = db::run(&state.pool, move |c| {
        let face = get_row(c, &t, &f)?;
        let ok = face.status == CONFIRMED
            && !face.template_enrolled
            && face
                .person_id
                .as_deref()
                .map(|p| has_face_matching_consent(c, &t, p, day))
                .transpose()?
                .unwrap_or(false);
        Ok(ok.then_some(face))
    })
    .await?;
    let Some(face) = face else {
        return Ok(());
    };
    let m = media(state)?;
    let matcher = m.matcher.clone().ok_or_else(|| ControlError::Unavailable {
        code: "matcher_unavailable",
        message: "no matcher configured (matcher.url is empty)".into(),
    })?;
    let person = face.person_id.clone().unwrap_or_default();
    let (_, bytes) = crate::assets::read_current(state, tenant, &face.asset_id).await?;
    let bbox = face.bbox().map(|v| v as f32);
    let ids = matcher
        .enroll_face(tenant, &person, bytes, bbox)
        .await
        .map_err(media_error)?;
    let (t, f, p) = (tenant.to_string(), face_id.to_string(), person.clone());
    let ids2 = ids.clone();
    let at = state.clock.now();
    let kept = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            // Still confirmed to the same person? Otherwise the template must go again.
            let now = get_row(c, &t, &f)?;
            if now.status != CONFIRMED || now.person_id.as_deref() != Some(p.as_str()) {
                jobs::enqueue_job_now(
                    c,
                    &t,
                    &RemoveTemplates {
                        template_ids: ids2.clone(),
                    },
                    at,
                )?;
                return Ok(false);
            }
            for id in &ids2 {
                diesel::insert_into(face_templates::table)
                    .values((
                        face_templates::template_id.eq(i64::try_from(*id).unwrap_or(i64::MAX)),
                        face_templates::tenant_id.eq(&t),
                        face_templates::face_id.eq(&f),
                        face_templates::person_id.eq(&p),
                        face_templates::created_at.eq(at),
                    ))
                    .execute(c)?;
            }
            diesel::update(faces::table.filter(faces::id.eq(&f)))
                .set(faces::template_enrolled.eq(true))
                .execute(c)?;
            audit::record(
                c,
                &Who::system("matcher", Some(&t)),
                "face.enroll",
                "face",
                Some(&f),
                serde_json::json!({"person_id": p, "templates": ids2}),
            )?;
            Ok(true)
        })
    })
    .await?;
    if !kept {
        tracing::info!(face = %face_id, "face changed during enrollment; template removal queued");
    }
    Ok(())
}

/// Rejects `person` for a face: never suggested again for it. If the face was confirmed to
/// that person it is unlinked and its templates are removed.
/// Decided at `now` (the caller's clock).
pub fn reject(
    c: &mut DbConn,
    who: &Who,
    tenant: &str,
    face_id: &str,
    person: &str,
    now: chrono::NaiveDateTime,
) -> Result<DecisionOut> {
    let face = get_row(c, tenant, face_id)?;
    let exists: i64 = face_rejections::table
        .filter(face_rejections::face_id.eq(face_id))
        .filter(face_rejections::person_id.eq(person))
        .count()
        .get_result(c)?;
    if exists == 0 {
        diesel::insert_into(face_rejections::table)
            .values((
                face_rejections::face_id.eq(face_id),
                face_rejections::person_id.eq(person),
                face_rejections::tenant_id.eq(tenant),
                face_rejections::rejected_by.eq(&who.user_id),
                face_rejections::rejected_at.eq(now),
            ))
            .execute(c)?;
    }
    let cands: Vec<Candidate> = face
        .candidates()
        .into_iter()
        .filter(|c| c.person_id != person)
        .collect();
    let was_linked = face.person_id.as_deref() == Some(person);
    let removed = if was_linked {
        queue_face_template_removal(c, tenant, face_id, now)?
    } else {
        false
    };
    let (status, person_id) = if face.status == CONFIRMED && !was_linked {
        (CONFIRMED, face.person_id.clone())
    } else if cands.is_empty() {
        (REJECTED, None)
    } else {
        (SUGGESTED, None)
    };
    diesel::update(faces::table.filter(faces::id.eq(face_id)))
        .set((
            faces::status.eq(status),
            faces::person_id.eq(&person_id),
            faces::candidates_json.eq(serde_json::to_string(&cands)?),
            faces::decided_by.eq(&who.user_id),
            faces::decided_at.eq(now),
        ))
        .execute(c)?;
    crate::exposure::refresh_assets(c, tenant, std::slice::from_ref(&face.asset_id), now)?;
    audit::record(
        c,
        who,
        "face.reject",
        "face",
        Some(face_id),
        serde_json::json!({"person_id": person, "asset_id": face.asset_id}),
    )?;
    Ok(DecisionOut {
        face: get_row(c, tenant, face_id)?.out(true),
        template_enrolled: false,
        enrollment_queued: false,
        templates_removed: removed,
    })
}

/// Unlinks a confirmed face (back to its suggestions) at `now` (the caller's clock); its
/// templates are removed.
pub fn unlink(
    c: &mut DbConn,
    who: &Who,
    tenant: &str,
    face_id: &str,
    now: chrono::NaiveDateTime,
) -> Result<DecisionOut> {
    let face = get_row(c, tenant, face_id)?;
    let removed = queue_face_template_removal(c, tenant, face_id, now)?;
    let status = if face.candidates().is_empty() {
        UNKNOWN
    } else {
        SUGGESTED
    };
    diesel::update(faces::table.filter(faces::id.eq(face_id)))
        .set((
            faces::status.eq(status),
            faces::person_id.eq(None::<String>),
            faces::decided_by.eq(&who.user_id),
            faces::decided_at.eq(now),
        ))
        .execute(c)?;
    crate::exposure::refresh_assets(c, tenant, std::slice::from_ref(&face.asset_id), now)?;
    audit::record(
        c,
        who,
        "face.unlink",
        "face",
        Some(face_id),
        serde_json::json!({"person_id": face.person_id, "asset_id": face.asset_id}),
    )?;
    Ok(DecisionOut {
        face: get_row(c, tenant, face_id)?.out(true),
        template_enrolled: false,
        enrollment_queued: false,
        templates_removed: removed,
    })
}

/// Deletes a face (hand-drawn or detected); its templates are removed (the removal is due at
/// `now`, the caller's clock).
pub fn delete(
    c: &mut DbConn,
    who: &Who,
    tenant: &str,
    face_id: &str,
    now: chrono::NaiveDateTime,
) -> Result<()> {
    let face = get_row(c, tenant, face_id)?;
    queue_face_template_removal(c, tenant, face_id, now)?;
    diesel::delete(face_rejections::table.filter(face_rejections::face_id.eq(face_id)))
        .execute(c)?;
    diesel::delete(faces::table.filter(faces::id.eq(face_id))).execute(c)?;
    crate::exposure::refresh_assets(c, tenant, std::slice::from_ref(&face.asset_id), now)?;
    audit::record(
        c,
        who,
        "face.delete",
        "face",
        Some(face_id),
        serde_json::json!({"asset_id": face.asset_id}),
    )?;
    Ok(())
}

/// What [`remove_person_templates`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TemplateRemoval {
    /// Templates the matcher removed now.
    pub removed: u32,
    /// True when the matcher was down: the removal is queued and happens when it returns.
    pub queued: bool,
}

/// Removes every matcher template of a person (consent covering face matching withdrawn,
/// person deleted). Called by DOMAIN (withdrawal) and CORE (person deletion), outside their
/// transaction. If the matcher is down the removal is queued as a durable job.
pub async fn remove_person_templates(
    state: &Deps,
    tenant: &str,
    person: &str,
) -> Result<TemplateRemoval> {
    match remove_person_templates_inner(state, tenant, person).await {
        Ok(n) => Ok(TemplateRemoval {
            removed: n,
            queued: false,
        }),
        Err(e) if e.is_retryable() => {
            let (t, p, now) = (tenant.to_string(), person.to_string(), state.clock.now());
            db::run(&state.pool, move |c| {
                forget_person_templates(c, &t, &p)?;
                jobs::enqueue_job_now(c, &t, &RemovePersonTemplates { person_id: p }, now)
            })
            .await?;
            Ok(TemplateRemoval {
                removed: 0,
                queued: true,
            })
        }
        Err(e) => Err(e),
    }
}

/// Queues the removal of every template of a person, inside the caller's transaction: the
/// templates are forgotten locally and a `remove_person_templates` job will remove them from
/// the matcher even if this process dies right after the commit. The job is due at `now` (the
/// caller's clock). Returns the job's ID.
pub fn queue_person_template_removal(
    c: &mut DbConn,
    tenant: &str,
    person: &str,
    now: chrono::NaiveDateTime,
) -> Result<String> {
    forget_person_templates(c, tenant, person)?;
    jobs::enqueue_job_now(
        c,
        tenant,
        &RemovePersonTemplates {
            person_id: person.to_string(),
        },
        now,
    )
}

/// Ends face matching for a person whose consent lapsed: if at `now` the person has no consent
/// in force covering face matching (expired, withdrawn, or — for a minor at signing — not
/// signed by a guardian) but still has templates, the templates are forgotten and a
/// `remove_person_templates` job is queued, in one transaction. Returns the job's ID, or `None`
/// when nothing was to be done. Idempotent and safe to run from several processes at once: the
/// deletion of the template rows decides (on PostgreSQL a concurrent run waits on the deleted
/// rows and then finds none), so one removal is queued per lapse.
pub fn end_lapsed_face_matching(
    c: &mut DbConn,
    tenant: &str,
    person: &str,
    now: chrono::NaiveDateTime,
) -> Result<Option<String>> {
    db::write_tx(c, |c| {
        if has_face_matching_consent(c, tenant, person, now.date())? {
            return Ok(None);
        }
        let gone = diesel::delete(
            face_templates::table
                .filter(face_templates::tenant_id.eq(tenant))
                .filter(face_templates::person_id.eq(person)),
        )
        .execute(c)?;
        if gone == 0 {
            return Ok(None);
        }
        diesel::update(
            faces::table
                .filter(faces::tenant_id.eq(tenant))
                .filter(faces::person_id.eq(person)),
        )
        .set(faces::template_enrolled.eq(false))
        .execute(c)?;
        let job = jobs::enqueue_job_now(
            c,
            tenant,
            &RemovePersonTemplates {
                person_id: person.to_string(),
            },
            now,
        )?;
        audit::record(
            c,
            &Who::system("scheduler", Some(tenant)),
            "person.face_matching_ended",
            "person",
            Some(person),
            serde_json::json!({"templates": gone, "job_id": job, "at": now}),
        )?;
        Ok(Some(job))
    })
}

/// Persons (tenant, person) who hold templates and may have lost their face-matching consent
/// by `day`: no consent covering face matching in force on that day by its dates and
/// withdrawal, or a date of birth on record (the guardian rule for minors needs the person's
/// age, checked per person by [`end_lapsed_face_matching`]).
pub fn persons_with_lapsing_templates(
    c: &mut DbConn,
    day: chrono::NaiveDate,
) -> Result<Vec<(String, String)>> {
    use diesel::dsl::{exists, not};
    let mut out: Vec<(String, String)> = face_templates::table
        .filter(not(exists(
            agreements::table
                .filter(agreements::tenant_id.eq(face_templates::tenant_id))
                .filter(agreements::person_id.eq(face_templates::person_id))
                .filter(agreements::covers_face_matching.eq(true))
                .filter(agreements::withdrawn_at.is_null())
                .filter(agreements::valid_from.le(day))
                .filter(
                    agreements::valid_until
                        .is_null()
                        .or(agreements::valid_until.ge(day)),
                ),
        )))
        .select((face_templates::tenant_id, face_templates::person_id))
        .distinct()
        .load(c)?;
    // Dates of birth are sealed (the vault): the holders of templates whose row may have one
    // (sealed, or plain before the vault), opened per tenant.
    let maybe_dob: Vec<(String, String)> = face_templates::table
        .filter(exists(
            persons::table
                .filter(persons::tenant_id.eq(face_templates::tenant_id))
                .filter(persons::id.eq(face_templates::person_id))
                .filter(
                    persons::sealed
                        .is_not_null()
                        .or(persons::date_of_birth.is_not_null()),
                ),
        ))
        .select((face_templates::tenant_id, face_templates::person_id))
        .distinct()
        .load(c)?;
    let mut by_tenant: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (t, p) in maybe_dob {
        by_tenant.entry(t).or_default().push(p);
    }
    for (t, ids) in by_tenant {
        for (id, p) in crate::persons::personal_map(c, &t, &ids)? {
            if p.date_of_birth.is_some() {
                out.push((t.clone(), id));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Runs a removal queued by [`queue_person_template_removal`] at once; when the matcher is
/// down (or fails) the job stays queued and the answer says so.
pub async fn run_queued_person_template_removal(
    state: &Deps,
    tenant: &str,
    person: &str,
    job_id: String,
) -> Result<TemplateRemoval> {
    match remove_person_templates_inner(state, tenant, person).await {
        Ok(n) => {
            let now = state.clock.now();
            db::run(&state.pool, move |c| {
                jobs::complete_queued_at(c, &job_id, now)
            })
            .await?;
            Ok(TemplateRemoval {
                removed: n,
                queued: false,
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, person, "template removal left to its queued job");
            Ok(TemplateRemoval {
                removed: 0,
                queued: true,
            })
        }
    }
}

fn forget_person_templates(c: &mut DbConn, tenant: &str, person: &str) -> Result<()> {
    let face_ids: Vec<String> = face_templates::table
        .filter(face_templates::tenant_id.eq(tenant))
        .filter(face_templates::person_id.eq(person))
        .select(face_templates::face_id)
        .load(c)?;
    diesel::delete(
        face_templates::table
            .filter(face_templates::tenant_id.eq(tenant))
            .filter(face_templates::person_id.eq(person)),
    )
    .execute(c)?;
    diesel::update(
        faces::table
            .filter(faces::tenant_id.eq(tenant))
            .filter(faces::id.eq_any(&face_ids).or(faces::person_id.eq(person))),
    )
    .set(faces::template_enrolled.eq(false))
    .execute(c)?;
    Ok(())
}

async fn remove_person_templates_inner(state: &Deps, tenant: &str, person: &str) -> Result<u32> {
    let n = remove_person_templates_now_count(state, tenant, person).await?;
    let (t, p) = (tenant.to_string(), person.to_string());
    db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            forget_person_templates(c, &t, &p)?;
            audit::record(
                c,
                &Who::system("matcher", Some(&t)),
                "person.templates_removed",
                "person",
                Some(&p),
                serde_json::json!({"removed": n}),
            )?;
            Ok(())
        })
    })
    .await?;
    Ok(n)
}

async fn remove_person_templates_now_count(
    state: &Deps,
    tenant: &str,
    person: &str,
) -> Result<u32> {
    let m = media(state)?;
    let matcher = m.matcher.clone().ok_or_else(|| ControlError::Unavailable {
        code: "matcher_unavailable",
        message: "no matcher configured (matcher.url is empty)".into(),
    })?;
    matcher
        .remove_person(tenant, person)
        .await
        .map_err(media_error)
}

/// The `remove_person_templates` job.
pub async fn remove_person_templates_now(state: &Deps, tenant: &str, person: &str) -> Result<()> {
    remove_person_templates_inner(state, tenant, person)
        .await
        .map(|_| ())
}

/// The `remove_templates` job.
pub async fn remove_templates_now(state: &Deps, tenant: &str, ids: Vec<u64>) -> Result<()> {
    let m = media(state)?;
    let matcher = m.matcher.clone().ok_or_else(|| ControlError::Unavailable {
        code: "matcher_unavailable",
        message: "no matcher configured (matcher.url is empty)".into(),
    })?;
    matcher
        .remove_templates(tenant, ids)
        .await
        .map_err(media_error)?;
    Ok(())
}

/// Removes the templates enrolled from an asset's faces (the asset is being deleted): queued
/// in a transaction, then run at once when the matcher is up.
pub async fn remove_asset_templates(state: &Deps, tenant: &str, asset_id: &str) -> Result<()> {
    let (t, a, now) = (tenant.to_string(), asset_id.to_string(), state.clock.now());
    let ids = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            let fids: Vec<String> = faces::table
                .filter(faces::tenant_id.eq(&t))
                .filter(faces::asset_id.eq(&a))
                .select(faces::id)
                .load(c)?;
            let ids: Vec<i64> = face_templates::table
                .filter(face_templates::tenant_id.eq(&t))
                .filter(face_templates::face_id.eq_any(&fids))
                .select(face_templates::template_id)
                .load(c)?;
            diesel::delete(
                face_templates::table
                    .filter(face_templates::tenant_id.eq(&t))
                    .filter(face_templates::face_id.eq_any(&fids)),
            )
            .execute(c)?;
            if !ids.is_empty() {
                jobs::enqueue_job_now(
                    c,
                    &t,
                    &RemoveTemplates {
                        template_ids: template_ids_u64(ids.clone()),
                    },
                    now,
                )?;
            }
            Ok(ids)
        })
    })
    .await?;
    if !ids.is_empty() {
        let ids: Vec<u64> = ids
            .into_iter()
            .filter_map(|v| u64::try_from(v).ok())
            .collect();
        // Best effort now; the queued job repeats it (removal is idempotent).
        let _ = remove_templates_now(state, tenant, ids).await;
    }
    Ok(())
}

/// Faces of the tenant's assets linked to a person (for DOMAIN's per-person views).
pub fn faces_of_person(c: &mut DbConn, tenant: &str, person: &str) -> Result<Vec<FaceRow>> {
    Ok(faces::table
        .inner_join(assets::table.on(assets::id.eq(faces::asset_id)))
        .filter(faces::tenant_id.eq(tenant))
        .filter(faces::person_id.eq(person))
        .filter(faces::status.eq(CONFIRMED))
        .select(FaceRow::as_select())
        .load(c)?)
}

// Use cases (REST, console): one entry point per operation, each checking its own permissions;
// inputs a transport parses (`Result<T>`) are looked at only after the permission checks.

/// A person named in a decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonRef {
    /// Person ID.
    pub person_id: String,
}

/// Faces of an asset (every user of the tenant; person IDs and candidates only with
/// `see_persons`).
pub async fn list_asset_faces(ctx: &crate::Ctx, asset_id: String) -> Result<Vec<FaceOut>> {
    let see = ctx.has(crate::roles::Permission::SeePersons);
    let t = ctx.tenant().to_string();
    let rows = db::run(&ctx.deps.pool, move |c| list_for_asset(c, &t, &asset_id)).await?;
    Ok(rows.iter().map(|r| r.out(see)).collect())
}

/// Draws a face by hand (`manage_assets`).
pub async fn draw_face(
    ctx: &crate::Ctx,
    asset_id: String,
    new: Result<NewFace>,
) -> Result<FaceOut> {
    ctx.require(crate::roles::Permission::ManageAssets)?;
    let new = new?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    let row = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| create_manual(c, &who, &t, &asset_id, new, now))
    })
    .await?;
    Ok(row.out(true))
}

/// Confirms that a face shows a person (`manage_assets` and `see_persons`); see [`confirm`].
pub async fn confirm_face(
    ctx: &crate::Ctx,
    face_id: String,
    person: Result<PersonRef>,
) -> Result<DecisionOut> {
    ctx.require(crate::roles::Permission::ManageAssets)?;
    ctx.require(crate::roles::Permission::SeePersons)?;
    let person = person?;
    confirm(
        &ctx.deps,
        ctx.who(),
        ctx.tenant().to_string(),
        face_id,
        person.person_id,
    )
    .await
}

/// Rejects a person for a face (`manage_assets` and `see_persons`); see [`reject`]. Queued
/// template removals run before the answer.
pub async fn reject_face(
    ctx: &crate::Ctx,
    face_id: String,
    person: Result<PersonRef>,
) -> Result<DecisionOut> {
    ctx.require(crate::roles::Permission::ManageAssets)?;
    ctx.require(crate::roles::Permission::SeePersons)?;
    let person = person?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    let out = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| reject(c, &who, &t, &face_id, &person.person_id, now))
    })
    .await?;
    run_template_removals(&ctx.deps).await;
    Ok(out)
}

/// Unlinks a confirmed face from its person (`manage_assets`); see [`unlink`]. Queued template
/// removals run before the answer.
pub async fn unlink_face(ctx: &crate::Ctx, face_id: String) -> Result<DecisionOut> {
    ctx.require(crate::roles::Permission::ManageAssets)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    let out = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| unlink(c, &who, &t, &face_id, now))
    })
    .await?;
    run_template_removals(&ctx.deps).await;
    Ok(out)
}

/// Deletes a face (`manage_assets`: correcting a file's faces, not an erasure of a person); see
/// [`delete`]. Queued template removals run before the answer.
pub async fn delete_face(ctx: &crate::Ctx, face_id: String) -> Result<()> {
    ctx.require(crate::roles::Permission::ManageAssets)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| delete(c, &who, &t, &face_id, now))
    })
    .await?;
    run_template_removals(&ctx.deps).await;
    Ok(())
}

/// Runs the queued template removals now (at most a few, one attempt each: a removal that
/// fails because the matcher is down is retried by the job workers), so that a decision that
/// answers `templates_removed: true` has taken effect in the matcher when it answers.
async fn run_template_removals(deps: &Deps) {
    const KINDS: &[&str] = &[jobs::REMOVE_TEMPLATES];
    let w = jobs::worker_id(usize::MAX);
    for _ in 0..8 {
        match jobs::run_once_kinds(deps, &w, KINDS).await {
            Ok(Some((_, jobs::Outcome::Done))) => {}
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "running queued template removals");
                break;
            }
        }
    }
}

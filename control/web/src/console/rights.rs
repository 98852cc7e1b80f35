//! The console's data-subject rights: the rights policy (`/admin/settings/rights`), the record
//! of processing (`/admin/settings/processing-record`), a person's access export (request,
//! progress on the person's page, download), their erasure (the consequences shown before
//! confirming, then the run's progress) and the pixelation of a file's unlinked faces. Every
//! handler calls the service functions, which check the permissions.

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use likeness_control_domain::rights::{ErasureFiles, FileDecision, RightsSettings};
use serde::Deserialize;

use crate::roles::Permission;
use crate::service::access_export::{self, ExportOut};
use crate::service::erasure::{self, ErasurePreview, ErasureRunOut};
use crate::service::processing_record::{self, ProcessingRecord};
use crate::service::{ControlError, bystanders, rights_settings};

use super::strings::Rights;
use super::{Button, ConsoleUser, Layout, Result, State, done, parse_form, render};

/// The label of an export's status.
pub fn export_status(t: &'static Rights, s: &str) -> &'static str {
    match s {
        "queued" => t.export_status_queued,
        "running" => t.export_status_running,
        "ready" => t.export_status_ready,
        "failed" => t.export_status_failed,
        _ => t.export_status_expired,
    }
}

/// The label of an erasure run's status.
pub fn run_status(t: &'static Rights, s: &str) -> &'static str {
    match s {
        "running" => t.erase_run_status_running,
        "waiting" => t.erase_run_status_waiting,
        "done" => t.erase_run_status_done,
        _ => t.erase_run_status_failed,
    }
}

/// A person's exports and erasure, for their page (empty when the role may not see them).
pub struct PersonRights {
    /// The person's exports, newest first (`export` permission).
    pub exports: Vec<ExportOut>,
    /// Whether the user may export.
    pub can_export: bool,
    /// The person's erasure run, if one started.
    pub erasure: Option<ErasureRunOut>,
}

/// Loads what the person's page shows about exports and erasure.
pub async fn person_rights(ctx: &crate::service::Ctx, person_id: &str) -> Result<PersonRights> {
    let can_export = ctx.has(Permission::Export);
    let exports = if can_export {
        access_export::list_exports(ctx, person_id.to_string()).await?
    } else {
        Vec::new()
    };
    let erasure = if ctx.has(Permission::Erase) && ctx.has(Permission::ManagePersons) {
        erasure::erasure_of_person(ctx, person_id.to_string()).await?
    } else {
        None
    };
    Ok(PersonRights {
        exports,
        can_export,
        erasure,
    })
}

// ---- The rights policy ----

#[derive(Template)]
#[template(path = "console/rights_settings.html")]
struct PolicyPage {
    l: Layout,
    s: RightsSettings,
    can_edit: bool,
}

impl PolicyPage {
    fn pixelate(&self) -> bool {
        self.s.erasure_files == ErasureFiles::Pixelate
    }
}

async fn policy_page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let s = rights_settings::get_rights_settings(&ctx).await?;
    render(&PolicyPage {
        l: Layout::new(&req, &user, &ctx, "settings"),
        s,
        can_edit: ctx.has(Permission::ManageSettings),
    })
}

#[derive(Deserialize)]
struct PolicyForm {
    erasure_files: String,
    keep_on_other_basis: Option<String>,
    document_retention_days: String,
    evidence_retention_years: String,
    export_ttl_hours: String,
}

fn number(field: &str, v: &str) -> crate::service::Result<u32> {
    v.trim()
        .parse()
        .map_err(|_| ControlError::invalid(field, format!("{v:?} is not a whole number")))
}

impl PolicyForm {
    fn settings(self) -> crate::service::Result<RightsSettings> {
        let erasure_files = match self.erasure_files.as_str() {
            "pixelate" => ErasureFiles::Pixelate,
            "hide" => ErasureFiles::Hide,
            other => {
                return Err(ControlError::invalid(
                    "erasure_files",
                    format!("unknown value {other:?}; valid values: pixelate, hide"),
                ));
            }
        };
        Ok(RightsSettings {
            erasure_files,
            keep_on_other_basis: self.keep_on_other_basis.is_some(),
            document_retention_days: number(
                "document_retention_days",
                &self.document_retention_days,
            )?,
            evidence_retention_years: number(
                "evidence_retention_years",
                &self.evidence_retention_years,
            )?,
            export_ttl_hours: number("export_ttl_hours", &self.export_ttl_hours)?,
        })
    }
}

async fn policy_save(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: PolicyForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    rights_settings::put_rights_settings(&ctx, form.settings()).await?;
    Ok(done(&req, "/admin/settings/rights?notice=policy_saved"))
}

// ---- The record of processing ----

#[derive(Template)]
#[template(path = "console/rights_record.html")]
struct RecordPage {
    l: Layout,
    r: ProcessingRecord,
}

impl RecordPage {
    fn pct(&self, x: &f64) -> String {
        format!("{:.2} %", x * 100.0)
    }
}

async fn record_page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let r = processing_record::processing_record(&ctx).await?;
    render(&RecordPage {
        l: Layout::new(&req, &user, &ctx, "settings"),
        r,
    })
}

// ---- Exports ----

async fn export_start(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let id = path.into_inner();
    access_export::request_export(&user.ctx(&state), id.clone()).await?;
    Ok(done(
        &req,
        &format!("/admin/persons/{id}?notice=export_requested#h-export"),
    ))
}

async fn export_download(
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let f = access_export::download_export(&user.ctx(&state), path.into_inner()).await?;
    let name: String = f
        .filename
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(f.bytes))
}

// ---- Erasure ----

#[derive(Template)]
#[template(path = "console/rights_erase.html")]
struct ErasePage {
    l: Layout,
    p: ErasurePreview,
    error: Option<&'static str>,
}

/// The label of a file's decision.
fn decision_label(t: &'static Rights, d: &FileDecision) -> &'static str {
    match d {
        FileDecision::Pixelate => t.erase_decision_pixelate,
        FileDecision::Hide => t.erase_decision_hide,
        FileDecision::Keep => t.erase_decision_keep,
    }
}

impl ErasePage {
    fn decision(&self, d: &FileDecision) -> &'static str {
        decision_label(&self.l.t.rights, d)
    }
    fn code(&self, d: &FileDecision) -> &'static str {
        match d {
            FileDecision::Pixelate => "pixelate",
            FileDecision::Hide => "hide",
            FileDecision::Keep => "keep",
        }
    }
    fn is_keep(&self, d: &FileDecision) -> bool {
        *d == FileDecision::Keep
    }
}

async fn erase_page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let id = path.into_inner();
    ctx.require(Permission::ManagePersons)?;
    ctx.require(Permission::Erase)?;
    if let Some(run) = erasure::erasure_of_person(&ctx, id.clone()).await? {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/admin/erasures/{}", run.id)))
            .finish());
    }
    let p = erasure::preview_erasure(&ctx, id).await?;
    let l = Layout::new(&req, &user, &ctx, "persons");
    let error =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .filter(|q| q.get("error").is_some_and(|e| e == "confirm"))
            .map(|_| l.t.rights.erase_need_confirm);
    render(&ErasePage { l, p, error })
}

#[derive(Deserialize)]
struct EraseForm {
    confirm: Option<String>,
}

async fn erase_start(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: EraseForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let id = path.into_inner();
    if form.confirm.is_none() {
        // The permission first: a role that may not erase learns nothing more.
        ctx.require(Permission::ManagePersons)?;
        ctx.require(Permission::Erase)?;
        return Ok(done(
            &req,
            &format!("/admin/persons/{id}/erase?error=confirm"),
        ));
    }
    let run = erasure::start_erasure(&ctx, id).await?;
    let notice = if run.status == "done" {
        "erasure_done"
    } else {
        "erasure_started"
    };
    Ok(done(
        &req,
        &format!("/admin/erasures/{}?notice={notice}", run.id),
    ))
}

#[derive(Template)]
#[template(path = "console/rights_erasure.html")]
struct RunPage {
    l: Layout,
    r: ErasureRunOut,
}

impl RunPage {
    fn status(&self) -> &'static str {
        run_status(&self.l.t.rights, &self.r.status)
    }
    fn decision(&self, d: &FileDecision) -> &'static str {
        decision_label(&self.l.t.rights, d)
    }
    fn finished(&self) -> bool {
        self.r.status == "done" || self.r.status == "failed"
    }
}

async fn run_page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let r = erasure::get_erasure(&ctx, path.into_inner()).await?;
    render(&RunPage {
        l: Layout::new(&req, &user, &ctx, "persons"),
        r,
    })
}

// ---- Bystanders ----

async fn pixelate(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let id = path.into_inner();
    bystanders::pixelate_unlinked(&user.ctx(&state), id.clone()).await?;
    Ok(done(&req, &format!("/admin/files/{id}?notice=pixelated")))
}

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/settings/rights", web::get().to(policy_page))
        .route("/admin/settings/rights", web::post().to(policy_save))
        .route(
            "/admin/settings/processing-record",
            web::get().to(record_page),
        )
        .route("/admin/persons/{id}/exports", web::post().to(export_start))
        .route(
            "/admin/exports/{id}/download",
            web::get().to(export_download),
        )
        .route("/admin/persons/{id}/erase", web::get().to(erase_page))
        .route("/admin/persons/{id}/erase", web::post().to(erase_start))
        .route("/admin/erasures/{id}", web::get().to(run_page))
        .route(
            "/admin/files/{id}/pixelate-unlinked",
            web::post().to(pixelate),
        );
}

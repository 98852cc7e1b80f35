//! The console's persons pages: the register (search, filters, status at a glance, avatars,
//! keyset pages), a new person, and a person (details and their edit form, consents with
//! their documents: record one with a scanned document, attach a scan, withdraw; the files
//! they appear in and their faces; erase).

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use likeness_control_domain::ConsentSource;
use serde::Deserialize;

use crate::api::upload;
use crate::roles::Permission;
use crate::service::agreements::{self, AgreementOut, AgreementState, NewAgreement, NewDocument};
use crate::service::compliance::{self, PersonAsset};
use crate::service::consent_templates::{self, TemplateSummary};
use crate::service::pagination::Page;
use crate::service::persons::{
    self, ConsentGlance, FaceCrop, NewPerson, PersonOut, PersonPatch, RegisterPage, RegisterQuery,
    RegisterShow,
};
use crate::service::signing::{self, RequestFilter, RequestStatus, SigningRequestOut};
use crate::service::{ControlError, Ctx, settings};

use super::{Button, ConsoleUser, Layout, Result, State, done, parse_form, render};

/// Faces shown on a person's page.
const FACES_SHOWN: i64 = 48;
/// Files (with their compliance) shown on a person's page, most recent first.
const FILES_SHOWN: usize = 50;

/// The register's filters, in the order offered.
const SHOWS: &[RegisterShow] = &[
    RegisterShow::All,
    RegisterShow::NoConsent,
    RegisterShow::Expiring,
    RegisterShow::Minors,
    RegisterShow::NeverPublish,
];

#[derive(Deserialize)]
struct RegisterParams {
    q: Option<String>,
    show: Option<String>,
    after: Option<String>,
    before: Option<String>,
}

fn parse_show(s: Option<&str>) -> Result<RegisterShow> {
    match s.map(str::trim).unwrap_or("") {
        "" => Ok(RegisterShow::All),
        v => SHOWS
            .iter()
            .copied()
            .find(|x| x.as_str() == v)
            .ok_or_else(|| ControlError::invalid("show", format!("unknown filter {v:?}")).into()),
    }
}

#[derive(Template)]
#[template(path = "console/persons.html")]
struct RegisterTpl {
    l: Layout,
    page: RegisterPage,
    q: String,
    show: RegisterShow,
    can_create: bool,
    /// The templates that can be sent (empty: no bulk "ask for consent" form).
    templates: Vec<TemplateSummary>,
}

impl RegisterTpl {
    fn show_label(&self, s: &RegisterShow) -> &'static str {
        let p = &self.l.t.persons;
        match s {
            RegisterShow::All => p.show_all,
            RegisterShow::NoConsent => p.show_no_consent,
            RegisterShow::Expiring => p.show_expiring,
            RegisterShow::Minors => p.show_minors,
            RegisterShow::NeverPublish => p.show_never_publish,
        }
    }

    fn shows(&self) -> &'static [RegisterShow] {
        SHOWS
    }

    fn can_ask(&self) -> bool {
        !self.templates.is_empty()
    }

    /// The query string of the current search and filter, for the pager's links.
    fn filter_query(&self) -> String {
        let mut s = String::new();
        if !self.q.is_empty() {
            s.push_str("q=");
            s.push_str(&urlencode(&self.q));
            s.push('&');
        }
        if self.show != RegisterShow::All {
            s.push_str("show=");
            s.push_str(self.show.as_str());
            s.push('&');
        }
        s
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn register(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let p = web::Query::<RegisterParams>::from_query(req.query_string())
        .map_err(|e| super::ConsoleError::Form(e.to_string()))?
        .into_inner();
    let show = parse_show(p.show.as_deref())?;
    let q = p.q.unwrap_or_default();
    let page = persons::register(
        &ctx,
        RegisterQuery {
            q: Some(q.clone()),
            show,
            after: p.after.filter(|s| !s.is_empty()),
            before: p.before.filter(|s| !s.is_empty()),
            limit: None,
        },
    )
    .await?;
    let templates = sendable_templates(&ctx).await?;
    render(&RegisterTpl {
        l: Layout::new(&req, &user, &ctx, "persons"),
        page,
        q,
        show,
        can_create: ctx.has(Permission::ManagePersons),
        templates,
    })
}

/// The agreement templates a user who may ask for consent can send (none for others).
async fn sendable_templates(ctx: &Ctx) -> Result<Vec<TemplateSummary>> {
    if !ctx.has(Permission::ManageConsents) {
        return Ok(Vec::new());
    }
    Ok(consent_templates::list_templates(ctx, false)
        .await?
        .into_iter()
        .filter(|t| t.archived_at.is_none())
        .collect())
}

/// Signing requests shown on a person's page, newest first.
const REQUESTS_SHOWN: i64 = 20;

/// The fields of the person form (new and edit).
#[derive(Debug, Default, Deserialize)]
struct PersonForm {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    date_of_birth: String,
    #[serde(default)]
    guardian_name: String,
    #[serde(default)]
    guardian_contact: String,
    #[serde(default)]
    never_publish: Option<String>,
}

fn opt_date(field: &str, s: &str) -> Result<Option<NaiveDate>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| {
            ControlError::invalid(field, format!("must be a date (YYYY-MM-DD), got {s:?}")).into()
        })
}

#[derive(Template)]
#[template(path = "console/person_new.html")]
struct NewTpl {
    l: Layout,
}

async fn new_page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManagePersons)?;
    render(&NewTpl {
        l: Layout::new(&req, &user, &ctx, "persons"),
    })
}

async fn create(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: PersonForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let new = opt_date("date_of_birth", &f.date_of_birth).map(|dob| NewPerson {
        name: f.name.unwrap_or_default(),
        email: Some(f.email),
        phone: Some(f.phone),
        date_of_birth: dob,
        guardian_person_id: None,
        guardian_name: Some(f.guardian_name),
        guardian_contact: Some(f.guardian_contact),
        never_publish: f.never_publish.is_some(),
        custom_fields: None,
    });
    let new = match new {
        Ok(n) => Ok(n),
        Err(super::ConsoleError::Service(e)) => Err(e),
        Err(e) => return Err(e),
    };
    let p = persons::create_person(&ctx, new).await?;
    Ok(done(&req, &format!("/admin/persons/{}?notice=saved", p.id)))
}

/// A consent as the page shows it.
struct ConsentView {
    a: AgreementOut,
    /// `valid`, `expiring`, `expired`, `withdrawn` or `not_yet_valid`.
    state: &'static str,
}

#[derive(Template)]
#[template(path = "console/person.html")]
struct PersonTpl {
    l: Layout,
    p: PersonOut,
    consents: Vec<ConsentView>,
    files: Vec<PersonAsset>,
    files_total: usize,
    faces: Vec<FaceCrop>,
    channels: Vec<String>,
    today: NaiveDate,
    /// Templates to send ("Ask for consent"; empty when the user may not).
    templates: Vec<TemplateSummary>,
    /// The person's signing requests, newest first.
    requests: Vec<SigningRequestOut>,
    /// Where the person's face is used (the most recent publications).
    publications: crate::pagination::Paginated<crate::service::publications::PublicationOut>,
    can_edit: bool,
    can_consent: bool,
    can_erase: bool,
    /// The person's access exports and erasure run.
    rights: super::rights::PersonRights,
}

impl PersonTpl {
    fn state_label(&self, state: &str) -> &'static str {
        let p = &self.l.t.persons;
        match state {
            "valid" => p.state_active,
            "expiring" => p.state_expiring,
            "expired" => p.state_expired,
            "withdrawn" => p.state_withdrawn,
            _ => p.state_not_yet_valid,
        }
    }

    fn source_label(&self, s: &ConsentSource) -> &'static str {
        let p = &self.l.t.persons;
        match s {
            ConsentSource::PaperScan => p.source_paper_scan,
            ConsentSource::AudioRecording => p.source_audio_recording,
            ConsentSource::Digital => p.source_digital,
        }
    }

    fn sources(&self) -> &'static [ConsentSource] {
        ConsentSource::ALL
    }

    /// The channels a file may be used on today.
    fn allowed_on(&self, f: &PersonAsset) -> String {
        f.compliance
            .verdicts
            .iter()
            .filter(|v| v.allowed)
            .map(|v| v.channel.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn opt<'a>(&self, v: &'a Option<String>) -> &'a str {
        v.as_deref().unwrap_or("")
    }

    fn export_status(&self, s: &str) -> &'static str {
        super::rights::export_status(&self.l.t.rights, s)
    }

    fn run_status(&self, s: &str) -> &'static str {
        super::rights::run_status(&self.l.t.rights, s)
    }

    fn request_status(&self, s: &RequestStatus) -> &'static str {
        super::signing::requests::status_label(&self.l.t.signing, s)
    }

    /// Whether the person has an e-mail address or a phone number to send a request to.
    fn has_contact(&self) -> bool {
        !self.opt(&self.p.email).trim().is_empty() || !self.opt(&self.p.phone).trim().is_empty()
    }
}

async fn person_page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let id = path.into_inner();
    let p = persons::get_person(&ctx, id.clone()).await?;
    let s = settings::get_settings(&ctx).await?;
    let today = ctx.today();
    let last_day = today
        .checked_add_days(chrono::Days::new(u64::from(s.notice_days)))
        .unwrap_or(today);
    let consents = agreements::list_consents(&ctx, id.clone())
        .await?
        .into_iter()
        .map(|a| {
            let state = match a.state {
                AgreementState::Withdrawn => "withdrawn",
                AgreementState::Expired => "expired",
                AgreementState::NotYetValid => "not_yet_valid",
                AgreementState::Active if a.valid_until.is_some_and(|u| u <= last_day) => {
                    "expiring"
                }
                AgreementState::Active => "valid",
            };
            ConsentView { a, state }
        })
        .collect();
    let (files, files_total) =
        compliance::check_person_files(&ctx, id.clone(), FILES_SHOWN).await?;
    let files = files.assets;
    let faces = persons::person_faces(&ctx, id.clone(), FACES_SHOWN).await?;
    let templates = sendable_templates(&ctx).await?;
    let publications = crate::service::publications::person_publications(
        &ctx,
        id.clone(),
        Ok(crate::service::publications::PageOnly {
            page: None,
            per_page: Some(crate::service::publications::SHOWN_ON_PAGES),
        }),
    )
    .await?;
    let rights = super::rights::person_rights(&ctx, &id).await?;
    let requests = signing::list_requests(
        &ctx,
        RequestFilter {
            status: None,
            person_id: Some(id),
            page: Page {
                page: 1,
                per_page: REQUESTS_SHOWN,
            },
        },
    )
    .await?;
    render(&PersonTpl {
        l: Layout::new(&req, &user, &ctx, "persons"),
        p,
        consents,
        files,
        files_total,
        faces,
        channels: s.channels,
        today,
        templates,
        requests,
        publications,
        can_edit: ctx.has(Permission::ManagePersons),
        can_consent: ctx.has(Permission::ManageConsents),
        can_erase: ctx.has(Permission::ManagePersons) && ctx.has(Permission::Erase),
        rights,
    })
}

async fn update(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: PersonForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let id = path.into_inner();
    let patch = opt_date("date_of_birth", &f.date_of_birth).map(|dob| PersonPatch {
        // Absent where names are hidden: the hidden name stays as it is.
        name: f.name,
        email: Some(Some(f.email)),
        phone: Some(Some(f.phone)),
        date_of_birth: Some(dob),
        guardian_name: Some(Some(f.guardian_name)),
        guardian_contact: Some(Some(f.guardian_contact)),
        never_publish: Some(f.never_publish.is_some()),
        ..PersonPatch::default()
    });
    let patch = match patch {
        Ok(p) => Ok(p),
        Err(super::ConsoleError::Service(e)) => Err(e),
        Err(e) => return Err(e),
    };
    persons::update_person(&ctx, id.clone(), patch).await?;
    Ok(done(&req, &format!("/admin/persons/{id}?notice=saved")))
}

async fn erase(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    persons::erase_person(&user.ctx(&state), path.into_inner()).await?;
    Ok(done(&req, "/admin/persons?notice=saved"))
}

/// Reads a multipart form (a file part `file` and text parts) after the permission check, and
/// checks its CSRF token (a text part, or the header a script sends) before anything is done.
async fn read_upload(
    req: &HttpRequest,
    user: &ConsoleUser,
    state: &State,
    payload: web::Payload,
) -> Result<upload::Upload> {
    let dir = upload::spool_dir(state);
    let limit = state.config.server.max_body_bytes;
    let up = upload::read(req, payload, limit, dir.as_deref()).await?;
    let header_token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok());
    user.check_csrf(up.fields.get("csrf").map(String::as_str).or(header_token))?;
    Ok(up)
}

/// The document of a form, or `None` when no file was chosen (a browser sends an empty part).
fn document_of(up: upload::Upload) -> Option<NewDocument> {
    if up.file.size() == 0 && up.filename.as_deref().is_none_or(|f| f.trim().is_empty()) {
        return None;
    }
    Some(NewDocument {
        filename: up.filename,
        file: up.file,
    })
}

/// The consent of a "Record a consent" form; `known` are the tenant's channels (checked boxes
/// `ch_<channel>` keep their order; others are passed on for the services to refuse).
fn new_agreement(
    up: &upload::Upload,
    known: &[String],
) -> std::result::Result<NewAgreement, ControlError> {
    let field = |k: &str| up.fields.get(k).map(|s| s.trim()).unwrap_or("");
    let date = |k: &str| -> std::result::Result<Option<NaiveDate>, ControlError> {
        match field(k) {
            "" => Ok(None),
            s => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| {
                    ControlError::invalid(k, format!("must be a date (YYYY-MM-DD), got {s:?}"))
                }),
        }
    };
    let mut checked: Vec<String> = up
        .fields
        .keys()
        .filter_map(|k| k.strip_prefix("ch_"))
        .map(str::to_string)
        .collect();
    checked.sort();
    let mut channels: Vec<String> = known
        .iter()
        .filter(|c| checked.contains(c))
        .cloned()
        .collect();
    channels.extend(checked.into_iter().filter(|c| !known.contains(c)));
    let valid_from =
        date("valid_from")?.ok_or_else(|| ControlError::invalid("valid_from", "is required"))?;
    let source = match field("source") {
        "" => ConsentSource::PaperScan,
        s => s
            .parse()
            .map_err(|_| ControlError::invalid("source", format!("unknown source {s:?}")))?,
    };
    Ok(NewAgreement {
        channels,
        valid_from,
        valid_until: date("valid_until")?,
        source,
        covers_face_matching: !field("covers_face_matching").is_empty(),
        signed_by_guardian: !field("signed_by_guardian").is_empty(),
        text_sha256: None,
        note: Some(field("note").to_string()),
    })
}

async fn record(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageConsents)?; // before the body is read (and in the service)
    let up = read_upload(&req, &user, &state, payload).await?;
    let id = path.into_inner();
    let known = settings::get_settings(&ctx).await?.channels;
    let new = new_agreement(&up, &known);
    agreements::record_consent_with_document(&ctx, id.clone(), new, document_of(up)).await?;
    Ok(done(
        &req,
        &format!("/admin/persons/{id}?notice=saved#consents"),
    ))
}

async fn attach(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageConsents)?;
    let up = read_upload(&req, &user, &state, payload).await?;
    let (person, agreement) = path.into_inner();
    let doc =
        document_of(up).ok_or_else(|| ControlError::invalid("file", "choose a file to attach"))?;
    agreements::attach_document(&ctx, agreement, doc).await?;
    Ok(done(
        &req,
        &format!("/admin/persons/{person}?notice=saved#consents"),
    ))
}

#[derive(Deserialize)]
struct WithdrawForm {
    #[serde(default)]
    reason: String,
}

async fn withdraw(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: WithdrawForm = parse_form(&user, &body)?;
    let (person, agreement) = path.into_inner();
    agreements::withdraw_consent(
        &user.ctx(&state),
        agreement,
        Ok(agreements::Withdrawal {
            at: None,
            reason: f.reason,
        }),
    )
    .await?;
    Ok(done(
        &req,
        &format!("/admin/persons/{person}?notice=saved#consents"),
    ))
}

async fn document(
    user: ConsoleUser,
    state: State,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let (_, agreement, doc) = path.into_inner();
    let (d, bytes) = agreements::read_document(&user.ctx(&state), agreement, doc).await?;
    let safe: String = d
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .content_type(d.mime.clone())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{safe}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(bytes))
}

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/persons", web::get().to(register))
        .route("/admin/persons/new", web::get().to(new_page))
        .route("/admin/persons/new", web::post().to(create))
        .route("/admin/persons/{id}", web::get().to(person_page))
        .route("/admin/persons/{id}", web::post().to(update))
        .route("/admin/persons/{id}/delete", web::post().to(erase))
        .route("/admin/persons/{id}/consents", web::post().to(record))
        .route(
            "/admin/persons/{id}/consents/{agreement}/withdraw",
            web::post().to(withdraw),
        )
        .route(
            "/admin/persons/{id}/consents/{agreement}/documents",
            web::post().to(attach),
        )
        .route(
            "/admin/persons/{id}/consents/{agreement}/documents/{document}",
            web::get().to(document),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert_eq!(parse_show(None).ok(), Some(RegisterShow::All));
        assert_eq!(parse_show(Some("minors")).ok(), Some(RegisterShow::Minors));
        assert!(parse_show(Some("nope")).is_err());
        assert_eq!(urlencode("a b&c"), "a%20b%26c");
    }
}

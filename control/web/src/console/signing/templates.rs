//! `/admin/templates`: the agreement templates (list, new, a template with its edit form and
//! version history, a version read-only, archive). A form's "Show a preview" button renders the
//! entered Markdown without saving (no script needed).

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::roles::Permission;
use crate::service::consent_templates::{
    self, LegalCharacter, Scope, TemplateInput, TemplateOut, TemplateSummary, TemplateVersionOut,
};
use crate::service::{ControlError, Ctx, settings};

use super::super::{
    Button, ConsoleError, ConsoleUser, Layout, Result, State, done, parse_form, render,
};

/// The languages a template may be written in.
pub(super) const LANGUAGES: &[&str] = &["en", "sv", "nl"];

/// The legal characters, in the order offered.
const LEGAL: &[LegalCharacter] = &[
    LegalCharacter::GdprConsent,
    LegalCharacter::ImageRightsContract,
    LegalCharacter::Licence,
];

/// The form's code of a legal character.
pub(super) fn legal_code(c: &LegalCharacter) -> &'static str {
    match c {
        LegalCharacter::GdprConsent => "gdpr_consent",
        LegalCharacter::ImageRightsContract => "image_rights_contract",
        LegalCharacter::Licence => "licence",
    }
}

/// The name of a language code.
pub(super) fn language_name(t: &super::super::strings::Signing, code: &str) -> &'static str {
    match code {
        "sv" => t.lang_sv,
        "nl" => t.lang_nl,
        _ => t.lang_en,
    }
}

#[derive(Deserialize)]
struct ListParams {
    archived: Option<String>,
}

#[derive(Template)]
#[template(path = "console/signing_templates.html")]
struct ListTpl {
    l: Layout,
    items: Vec<TemplateSummary>,
    archived: bool,
    can_manage: bool,
}

impl ListTpl {
    fn language(&self, code: &str) -> &'static str {
        language_name(&self.l.t.signing, code)
    }
}

async fn list(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let p = web::Query::<ListParams>::from_query(req.query_string())
        .map_err(|e| ConsoleError::Form(e.to_string()))?
        .into_inner();
    let archived = p.archived.is_some_and(|v| !v.is_empty() && v != "0");
    let items = consent_templates::list_templates(&ctx, archived).await?;
    render(&ListTpl {
        l: Layout::new(&req, &user, &ctx, "templates"),
        items,
        archived,
        can_manage: ctx.has(Permission::ManageConsents),
    })
}

/// One channel's row of the scopes table.
#[derive(Debug, Clone)]
struct ScopeRow {
    channel: String,
    offered: bool,
    mandatory: bool,
    label: String,
}

/// What the form shows: the saved version's values, or what was entered.
#[derive(Debug, Clone)]
struct FormValues {
    name: String,
    title: String,
    body_markdown: String,
    language: String,
    rows: Vec<ScopeRow>,
    face_matching_text: String,
    validity_days: String,
    legal_character: String,
    after_signing_text: String,
}

impl FormValues {
    /// An empty form over the tenant's channels (each offered, none mandatory).
    fn empty(channels: &[String]) -> Self {
        Self {
            name: String::new(),
            title: String::new(),
            body_markdown: String::new(),
            language: "en".into(),
            rows: channels
                .iter()
                .map(|c| ScopeRow {
                    channel: c.clone(),
                    offered: true,
                    mandatory: false,
                    label: String::new(),
                })
                .collect(),
            face_matching_text: String::new(),
            validity_days: String::new(),
            legal_character: "gdpr_consent".into(),
            after_signing_text: String::new(),
        }
    }

    /// The values of a saved version, with a row for every channel of the tenant and every
    /// channel the version has (in the version's order first).
    fn of_version(name: &str, v: &TemplateVersionOut, channels: &[String]) -> Self {
        let mut rows: Vec<ScopeRow> = v
            .scopes
            .iter()
            .map(|s| ScopeRow {
                channel: s.channel.clone(),
                offered: true,
                mandatory: s.mandatory,
                label: s.label.clone().unwrap_or_default(),
            })
            .collect();
        for c in channels {
            if !rows.iter().any(|r| &r.channel == c) {
                rows.push(ScopeRow {
                    channel: c.clone(),
                    offered: false,
                    mandatory: false,
                    label: String::new(),
                });
            }
        }
        Self {
            name: name.to_string(),
            title: v.title.clone(),
            body_markdown: v.body_markdown.clone(),
            language: v.language.clone(),
            rows,
            face_matching_text: v.face_matching_text.clone().unwrap_or_default(),
            validity_days: v.validity_days.map(|d| d.to_string()).unwrap_or_default(),
            legal_character: legal_code(&v.legal_character).into(),
            after_signing_text: v.after_signing_text.clone(),
        }
    }
}

/// The template form's fields (the scope rows come as parallel repeated fields, in order).
#[derive(Debug, Default, Deserialize)]
struct TemplateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body_markdown: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    scope_channel: Vec<String>,
    #[serde(default)]
    scope_label: Vec<String>,
    #[serde(default)]
    offered: Vec<String>,
    #[serde(default)]
    mandatory: Vec<String>,
    #[serde(default)]
    face_matching_text: String,
    #[serde(default)]
    validity_days: String,
    #[serde(default)]
    legal_character: String,
    #[serde(default)]
    after_signing_text: String,
    /// `preview`: render the entered text again without saving.
    #[serde(default)]
    action: Option<String>,
}

impl TemplateForm {
    fn values(&self) -> FormValues {
        FormValues {
            name: self.name.clone(),
            title: self.title.clone(),
            body_markdown: self.body_markdown.clone(),
            language: self.language.clone(),
            rows: self
                .scope_channel
                .iter()
                .enumerate()
                .map(|(i, c)| ScopeRow {
                    channel: c.clone(),
                    offered: self.offered.contains(c),
                    mandatory: self.mandatory.contains(c),
                    label: self.scope_label.get(i).cloned().unwrap_or_default(),
                })
                .collect(),
            face_matching_text: self.face_matching_text.clone(),
            validity_days: self.validity_days.clone(),
            legal_character: self.legal_character.clone(),
            after_signing_text: self.after_signing_text.clone(),
        }
    }

    fn previewing(&self) -> bool {
        self.action.as_deref() == Some("preview")
    }

    /// The input the services get (they validate it; only the form's own encodings are
    /// checked here).
    fn input(&self) -> std::result::Result<TemplateInput, ControlError> {
        let scopes = self
            .values()
            .rows
            .into_iter()
            .filter(|r| r.offered)
            .map(|r| Scope {
                channel: r.channel,
                mandatory: r.mandatory,
                label: Some(r.label.trim().to_string()).filter(|s| !s.is_empty()),
            })
            .collect();
        let validity_days = match self.validity_days.trim() {
            "" => None,
            s => Some(s.parse::<i32>().map_err(|_| {
                ControlError::invalid(
                    "validity_days",
                    format!("{s:?} is not a whole number of days"),
                )
            })?),
        };
        let legal_character = LEGAL
            .iter()
            .copied()
            .find(|c| legal_code(c) == self.legal_character.trim())
            .ok_or_else(|| {
                ControlError::invalid(
                    "legal_character",
                    format!("unknown legal character {:?}", self.legal_character),
                )
            })?;
        Ok(TemplateInput {
            name: self.name.trim().to_string(),
            title: self.title.trim().to_string(),
            body_markdown: self.body_markdown.clone(),
            language: self.language.trim().to_string(),
            scopes,
            face_matching_text: Some(self.face_matching_text.trim().to_string())
                .filter(|s| !s.is_empty()),
            validity_days,
            legal_character,
            after_signing_text: self.after_signing_text.trim().to_string(),
        })
    }
}

/// The new-template page and a template's page (edit form, preview, versions, archive).
#[derive(Template)]
#[template(path = "console/signing_template.html")]
struct TemplateTpl {
    l: Layout,
    /// `None` for a new template.
    tpl: Option<TemplateOut>,
    f: FormValues,
    /// Rendered Markdown to show as the preview (safe HTML from the services).
    preview_html: Option<String>,
    /// The latest version has been sent (saving makes a new one).
    latest_sent: bool,
    /// After saving a sent version: the new version's number.
    new_version: Option<i32>,
    can_manage: bool,
}

impl TemplateTpl {
    fn languages(&self) -> &'static [&'static str] {
        LANGUAGES
    }

    fn language(&self, code: &str) -> &'static str {
        language_name(&self.l.t.signing, code)
    }

    fn legal_codes(&self) -> Vec<&'static str> {
        LEGAL.iter().map(legal_code).collect()
    }

    fn legal_label(&self, code: &str) -> &'static str {
        let s = &self.l.t.signing;
        match code {
            "image_rights_contract" => s.legal_image_rights_contract,
            "licence" => s.legal_licence,
            _ => s.legal_gdpr_consent,
        }
    }

    /// Whether the form is shown: the user may change templates and this one is not archived.
    fn editable(&self) -> bool {
        self.can_manage && self.tpl.as_ref().is_none_or(|t| t.archived_at.is_none())
    }

    fn action(&self) -> String {
        match &self.tpl {
            Some(t) => format!("/admin/templates/{}", t.id),
            None => "/admin/templates".into(),
        }
    }
}

async fn tenant_channels(ctx: &Ctx) -> Result<Vec<String>> {
    Ok(settings::get_settings(ctx).await?.channels)
}

async fn new_page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageConsents)?;
    let channels = tenant_channels(&ctx).await?;
    render(&TemplateTpl {
        l: Layout::new(&req, &user, &ctx, "templates"),
        tpl: None,
        f: FormValues::empty(&channels),
        preview_html: None,
        latest_sent: false,
        new_version: None,
        can_manage: true,
    })
}

async fn create(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: TemplateForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageConsents)?;
    if f.previewing() {
        return render(&TemplateTpl {
            l: Layout::new(&req, &user, &ctx, "templates"),
            tpl: None,
            preview_html: Some(consent_templates::render_markdown(&f.body_markdown)),
            f: f.values(),
            latest_sent: false,
            new_version: None,
            can_manage: true,
        });
    }
    let t = consent_templates::create_template(&ctx, f.input()?).await?;
    Ok(done(
        &req,
        &format!("/admin/templates/{}?notice=template_created", t.id),
    ))
}

#[derive(Deserialize)]
struct TemplateParams {
    new_version: Option<i32>,
}

async fn page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let p = web::Query::<TemplateParams>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or(TemplateParams { new_version: None });
    let t = consent_templates::get_template(&ctx, path.into_inner()).await?;
    let channels = tenant_channels(&ctx).await?;
    let latest = t.versions.first();
    let f = match latest {
        Some(v) => FormValues::of_version(&t.name, v, &channels),
        None => FormValues::empty(&channels),
    };
    let latest_sent = latest.is_some_and(|v| v.first_sent_at.is_some());
    let preview_html = latest.map(|v| v.body_html.clone());
    let new_version = p
        .new_version
        .filter(|n| latest.is_some_and(|v| v.version == *n));
    render(&TemplateTpl {
        l: Layout::new(&req, &user, &ctx, "templates"),
        tpl: Some(t),
        f,
        preview_html,
        latest_sent,
        new_version,
        can_manage: ctx.has(Permission::ManageConsents),
    })
}

async fn update(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: TemplateForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageConsents)?;
    let id = path.into_inner();
    let before = consent_templates::get_template(&ctx, id.clone()).await?;
    if f.previewing() {
        let latest_sent = before
            .versions
            .first()
            .is_some_and(|v| v.first_sent_at.is_some());
        return render(&TemplateTpl {
            l: Layout::new(&req, &user, &ctx, "templates"),
            tpl: Some(before),
            preview_html: Some(consent_templates::render_markdown(&f.body_markdown)),
            f: f.values(),
            latest_sent,
            new_version: None,
            can_manage: true,
        });
    }
    let was = before.versions.first().map(|v| v.version);
    let after = consent_templates::update_template(&ctx, id.clone(), f.input()?).await?;
    let now = after.versions.first().map(|v| v.version);
    let location = match (was, now) {
        (Some(a), Some(b)) if b > a => format!("/admin/templates/{id}?new_version={b}"),
        _ => format!("/admin/templates/{id}?notice=saved"),
    };
    Ok(done(&req, &location))
}

async fn archive(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    consent_templates::archive_template(&user.ctx(&state), path.into_inner()).await?;
    Ok(done(&req, "/admin/templates?notice=template_archived"))
}

#[derive(Template)]
#[template(path = "console/signing_version.html")]
struct VersionTpl {
    l: Layout,
    tpl: TemplateOut,
    v: TemplateVersionOut,
}

impl VersionTpl {
    fn language(&self) -> &'static str {
        language_name(&self.l.t.signing, &self.v.language)
    }

    fn legal_label(&self) -> &'static str {
        let s = &self.l.t.signing;
        match self.v.legal_character {
            LegalCharacter::GdprConsent => s.legal_gdpr_consent,
            LegalCharacter::ImageRightsContract => s.legal_image_rights_contract,
            LegalCharacter::Licence => s.legal_licence,
        }
    }
}

async fn version_page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let (id, n) = path.into_inner();
    let n: i32 = n
        .parse()
        .map_err(|_| ControlError::not_found(format!("version {n}")))?;
    let mut tpl = consent_templates::get_template(&ctx, id).await?;
    let i = tpl
        .versions
        .iter()
        .position(|v| v.version == n)
        .ok_or_else(|| ControlError::not_found(format!("version {n}")))?;
    let v = tpl.versions.remove(i);
    render(&VersionTpl {
        l: Layout::new(&req, &user, &ctx, "templates"),
        tpl,
        v,
    })
}

/// Registers the templates pages.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/templates", web::get().to(list))
        .route("/admin/templates", web::post().to(create))
        .route("/admin/templates/new", web::get().to(new_page))
        .route("/admin/templates/{id}", web::get().to(page))
        .route("/admin/templates/{id}", web::post().to(update))
        .route("/admin/templates/{id}/archive", web::post().to(archive))
        .route(
            "/admin/templates/{id}/versions/{n}",
            web::get().to(version_page),
        );
}

//! The console's share links: `/admin/shares` (the list with a status filter, and the form
//! that creates one: its files pre-filled from `?asset=`, which a file's page links to),
//! `POST /admin/shares` (creates it and shows its link once), `/admin/shares/{id}` (its files
//! and whether each is shown now, its access log, revocation), `POST /admin/shares/{id}/revoke`.
//! Everyone of the tenant sees the list and a share's files; creating, revoking and the access
//! log need `manage_assets` (the forms are hidden from the others).

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::roles::Permission;
use crate::service::ControlError;
use crate::service::pagination::PageQuery;
use crate::service::settings;
use crate::service::shares::{
    self, AccessEntry, CreatedShare, NewShare, ShareDetail, ShareOut, ShareQuery, ShareStatus,
};

use crate::console::{Button, ConsoleUser, Layout, Result, State, done, parse_form, render};

/// Days ahead the form's end date starts at.
const DEFAULT_DAYS: u64 = 30;

#[derive(Template)]
#[template(path = "console/shares.html")]
struct ListPage {
    l: Layout,
    shares: Vec<ShareOut>,
    status: String,
    can_create: bool,
    channels: Vec<String>,
    asset_ids: String,
    from_file: bool,
    default_expires: String,
    max_expires: String,
    min_expires: String,
}

impl ListPage {
    fn status_name(&self, s: &ShareStatus) -> &'static str {
        status_name(&self.l, *s)
    }
}

fn status_name(l: &Layout, s: ShareStatus) -> &'static str {
    match s {
        ShareStatus::Active => l.t.shares.status_active,
        ShareStatus::Expired => l.t.shares.status_expired,
        ShareStatus::Revoked => l.t.shares.status_revoked,
    }
}

#[derive(Template)]
#[template(path = "console/share_created.html")]
struct CreatedPage {
    l: Layout,
    created: CreatedShare,
}

#[derive(Template)]
#[template(path = "console/share.html")]
struct SharePage {
    l: Layout,
    s: ShareDetail,
    log: Vec<AccessEntry>,
    can_manage: bool,
}

impl SharePage {
    fn status_name(&self) -> &'static str {
        status_name(&self.l, self.s.share.status)
    }

    fn is_active(&self) -> bool {
        self.s.share.status == ShareStatus::Active
    }

    /// The file name of a log row's file (its ID when the file is no longer in the share).
    fn file_name(&self, e: &AccessEntry) -> String {
        let Some(id) = &e.asset_id else {
            return String::new();
        };
        self.s
            .files
            .iter()
            .find(|f| &f.asset_id == id)
            .map_or_else(|| id.clone(), |f| f.filename.clone())
    }
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    asset: Vec<String>,
}

fn parse_status(s: Option<&str>) -> Result<Option<ShareStatus>> {
    Ok(match s.map(str::trim).unwrap_or("") {
        "" => None,
        "active" => Some(ShareStatus::Active),
        "expired" => Some(ShareStatus::Expired),
        "revoked" => Some(ShareStatus::Revoked),
        other => {
            return Err(ControlError::invalid(
                "status",
                format!("unknown status {other:?}; valid: active, expired, revoked"),
            )
            .into());
        }
    })
}

async fn list(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let q: ListQuery = serde_html_form::from_str(req.query_string()).unwrap_or_default();
    let status = parse_status(q.status.as_deref())?;
    let shares = shares::list_shares(
        &ctx,
        Ok(ShareQuery {
            status,
            per_page: Some(200),
            ..ShareQuery::default()
        }),
    )
    .await?;
    let can_create = ctx.has(Permission::ManageAssets);
    let channels = settings::get_settings(&ctx).await?.channels;
    let today = ctx.today();
    let fmt = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let ids: Vec<String> = q
        .asset
        .iter()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    render(&ListPage {
        l: Layout::new(&req, &user, &ctx, "shares"),
        shares,
        status: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        can_create,
        channels,
        from_file: !ids.is_empty(),
        asset_ids: ids.join("\n"),
        default_expires: fmt(today + chrono::Days::new(DEFAULT_DAYS)),
        max_expires: fmt(today
            .checked_add_months(chrono::Months::new(12))
            .unwrap_or(today)),
        min_expires: fmt(today),
    })
}

#[derive(Debug, Deserialize)]
struct NewShareForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    asset_ids: String,
    #[serde(default)]
    expires_on: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    allow_download: Option<String>,
    #[serde(default)]
    watermark_text: Option<String>,
}

impl NewShareForm {
    fn into_new(self) -> crate::service::Result<NewShare> {
        let expires_on = NaiveDate::parse_from_str(self.expires_on.trim(), "%Y-%m-%d")
            .map_err(|_| ControlError::invalid("expires_on", "must be a date (YYYY-MM-DD)"))?;
        Ok(NewShare {
            title: self.title,
            channel: self.channel,
            asset_ids: self
                .asset_ids
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            expires_on,
            password: self.password.filter(|p| !p.is_empty()),
            allow_download: self.allow_download.is_some(),
            watermark_text: self.watermark_text,
        })
    }
}

async fn create(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: NewShareForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageAssets)?;
    let created = shares::create_share(&ctx, form.into_new()).await?;
    let mut res = render(&CreatedPage {
        l: Layout::new(&req, &user, &ctx, "shares"),
        created,
    })?;
    // The link must not stay in a cache.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

async fn page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let id = id.into_inner();
    let s = shares::get_share(&ctx, id.clone()).await?;
    let can_manage = ctx.has(Permission::ManageAssets);
    let log = if can_manage {
        shares::access_log(
            &ctx,
            id,
            Ok(PageQuery {
                page: Some(1),
                per_page: Some(200),
                sort: None,
            }),
        )
        .await?
    } else {
        Vec::new()
    };
    render(&SharePage {
        l: Layout::new(&req, &user, &ctx, "shares"),
        s,
        log,
        can_manage,
    })
}

async fn revoke(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let id = id.into_inner();
    shares::revoke_share(&ctx, id.clone()).await?;
    Ok(done(
        &req,
        &format!("/admin/shares/{id}?notice=share_revoked"),
    ))
}

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/shares", web::get().to(list))
        .route("/admin/shares", web::post().to(create))
        .route("/admin/shares/{id}", web::get().to(page))
        .route("/admin/shares/{id}/revoke", web::post().to(revoke));
}

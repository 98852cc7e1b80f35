//! (PUBLISHING) Share links and media portals: a link to one file or a collection of the
//! tenant's files for one channel, with an end date, an optional password (Argon2id), view-only
//! or download, an optional watermark text, an access log, and revocation.
//!
//! Staff side (a [`Ctx`]; create, revoke and the access log need `manage_assets`, reading every
//! user of the tenant): [`create_share`], [`list_shares`], [`get_share`], [`revoke_share`],
//! [`access_log`].
//!
//! Public side (no account; the link's raw token and the visitor): [`open_portal`],
//! [`unlock`], [`portal_file`]. Which files are served is decided per request by the allowed
//! set in memory ([`crate::allowed::AllowedSet::check`] on the share's channel today), never by
//! a database query: a file that stops being allowed stops being served as soon as this
//! process's set follows the change. The share row itself (revoked? expired? password?) is
//! read per request.
//!
//! The token is 32 random bytes base64url; only its SHA-256 is stored, so the URL
//! (`{base}/s/{token}`) is shown once, on creation. A right password earns a cookie scoped to
//! the share's path: `{expiry}.{HMAC-SHA256(password hash, share id "." expiry)}` (hex), which
//! only the server can make (the key is the stored Argon2 hash) and which dies with the
//! share's password. Wrong passwords are throttled per share (at most
//! [`MAX_BAD_PASSWORDS`] within [`BAD_PASSWORD_WINDOW_SECS`], counted in the access log, so
//! every process sees them); unknown tokens count against the client's address like the
//! signing links' (`deps.public_throttle`, `[signing] max_unknown_tokens_per_ip`).
//!
//! Access log actions: `view` (the portal page), `image` (a rendition), `download`,
//! `password` (a password tried); outcomes: `ok`, `bad_password`, `denied` (the file is not
//! allowed on the share's channel today), `expired`, `revoked`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{Months, NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::Ctx;
use crate::Deps;
use crate::allowed::Decision;
use crate::audit;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::pagination::{Page, PageQuery};
use crate::roles::Permission;
use crate::schema::{assets, share_access_log, share_link_assets, share_links, tenants};
use crate::settings;
use crate::signing::ClientInfo;

/// Most files in one share.
pub const MAX_FILES: usize = 500;
/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest watermark text, in characters.
pub const MAX_WATERMARK: usize = 100;
/// Wrong passwords accepted per share within [`BAD_PASSWORD_WINDOW_SECS`]; then 429.
pub const MAX_BAD_PASSWORDS: i64 = 10;
/// The window of [`MAX_BAD_PASSWORDS`], in seconds.
pub const BAD_PASSWORD_WINDOW_SECS: i64 = 900;
/// How long a right password keeps a browser in (capped by the share's end), in hours.
pub const UNLOCK_HOURS: i64 = 12;
/// The rendition shown in the portal's grid.
pub const GRID_RENDITION: &str = "small.jpg";
/// The rendition a click on a grid image opens.
pub const LARGE_RENDITION: &str = "large.jpg";

/// Where a share stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShareStatus {
    /// The link works (until its end date, while not revoked).
    Active,
    /// Its last day has passed.
    Expired,
    /// Revoked by staff.
    Revoked,
}

impl ShareStatus {
    /// The status as a string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// A new share link.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    /// Title shown on the portal (1 to 200 characters).
    pub title: String,
    /// The channel whose compliance decides what is served (one of the tenant's channels).
    pub channel: String,
    /// The files (1 to 500 asset IDs of the tenant; duplicates are dropped, order is kept).
    pub asset_ids: Vec<String>,
    /// The last day the link works (today to one year ahead).
    pub expires_on: NaiveDate,
    /// Optional password (10 to 1024 characters), stored as an Argon2id hash.
    #[serde(default)]
    pub password: Option<String>,
    /// Whether visitors may download the files (else view only).
    #[serde(default)]
    pub allow_download: bool,
    /// Optional text drawn over every image served (at most 100 characters).
    #[serde(default)]
    pub watermark_text: Option<String>,
}

/// A share link (the token is never shown again after creation).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShareOut {
    /// Share ID.
    pub id: String,
    /// Title.
    pub title: String,
    /// The channel whose compliance decides what is served.
    pub channel: String,
    /// The last day the link works.
    pub expires_on: NaiveDate,
    /// Whether a password is needed.
    pub has_password: bool,
    /// Whether visitors may download.
    pub allow_download: bool,
    /// The watermark text, if any.
    pub watermark_text: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: NaiveDateTime,
    /// When it was revoked.
    pub revoked_at: Option<NaiveDateTime>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// Active, expired or revoked (now).
    pub status: ShareStatus,
    /// How many files it holds.
    pub file_count: i64,
}

/// A file of a share and whether it is served right now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShareFile {
    /// Asset ID.
    pub asset_id: String,
    /// The file's name.
    pub filename: String,
    /// `image` or `video`.
    pub kind: String,
    /// Whether the link serves it now (allowed on the share's channel today, the share
    /// active).
    pub served_now: bool,
}

/// A share link with its files.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShareDetail {
    /// The share.
    #[serde(flatten)]
    pub share: ShareOut,
    /// Its files, in the share's order.
    pub files: Vec<ShareFile>,
}

/// A share link just created: the only time its URL is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedShare {
    /// The share.
    #[serde(flatten)]
    pub share: ShareOut,
    /// The link to give out (`{base}/s/{token}`); not stored, shown only now.
    pub url: String,
}

/// One row of a share's access log.
#[derive(Debug, Clone, Serialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = share_access_log)]
pub struct AccessEntry {
    /// Row ID.
    pub id: String,
    /// The file asked for (none for the portal page and passwords).
    pub asset_id: Option<String>,
    /// `view`, `image`, `download` or `password`.
    pub action: String,
    /// `ok`, `bad_password`, `denied`, `expired` or `revoked`.
    pub outcome: String,
    /// Client address.
    pub ip: Option<String>,
    /// The browser's User-Agent.
    pub user_agent: Option<String>,
    /// When.
    pub at: NaiveDateTime,
}

/// Filter of the share list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShareQuery {
    /// `active`, `expired` or `revoked`.
    pub status: Option<ShareStatus>,
    /// Only shares holding this file.
    pub asset_id: Option<String>,
    /// Page number, from 1 (default 1).
    pub page: Option<i64>,
    /// Items per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
}

impl ShareQuery {
    /// The validated page.
    pub fn page(&self) -> Result<Page> {
        PageQuery {
            page: self.page,
            per_page: self.per_page,
            sort: None,
        }
        .page()
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = share_links)]
struct ShareRow {
    id: String,
    tenant_id: String,
    title: String,
    channel: String,
    expires_on: NaiveDate,
    password_hash: Option<String>,
    allow_download: bool,
    watermark_text: Option<String>,
    created_by: String,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    revoked_by: Option<String>,
}

impl ShareRow {
    fn status(&self, today: NaiveDate) -> ShareStatus {
        if self.revoked_at.is_some() {
            ShareStatus::Revoked
        } else if self.expires_on < today {
            ShareStatus::Expired
        } else {
            ShareStatus::Active
        }
    }

    fn out(self, today: NaiveDate, file_count: i64) -> ShareOut {
        let status = self.status(today);
        ShareOut {
            has_password: self.password_hash.is_some(),
            id: self.id,
            title: self.title,
            channel: self.channel,
            expires_on: self.expires_on,
            allow_download: self.allow_download,
            watermark_text: self.watermark_text,
            created_by: self.created_by,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
            revoked_by: self.revoked_by,
            status,
            file_count,
        }
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The stored hash of a well-formed token (43 base64url characters); `None` for anything
/// else (answered like an unknown token).
fn token_hash(token: &str) -> Option<String> {
    let t = token.trim();
    (t.len() == 43
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| sha256_hex(t))
}

/// The address share links are built on.
pub fn public_base(deps: &Deps) -> String {
    let d = deps.config.delivery.public_base_url.trim();
    let base = if d.is_empty() {
        deps.config.signing.public_base_url.trim()
    } else {
        d
    };
    base.trim_end_matches('/').to_string()
}

/// Whether an ID could be one of ours: not empty, at most 200 bytes, no control characters
/// (PostgreSQL refuses NUL in text: such IDs are answered before any query).
fn plausible_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 200 && !s.chars().any(char::is_control)
}

fn unknown_share() -> ControlError {
    ControlError::not_found("share link")
}

fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && seen.insert(s.clone()))
        .collect()
}

/// Validates a new share against the tenant (channels, files) and `today`; returns the
/// cleaned values: (title, asset ids, watermark).
fn validate_new(
    conn: &mut DbConn,
    tenant_id: &str,
    new: &NewShare,
    today: NaiveDate,
) -> Result<(String, Vec<String>, Option<String>)> {
    let title = new.title.trim().to_string();
    if title.is_empty() {
        return Err(ControlError::invalid("title", "must not be empty"));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(ControlError::invalid(
            "title",
            format!("must have at most {MAX_TITLE} characters"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(ControlError::invalid(
            "title",
            "must be one line without control characters",
        ));
    }
    if new.channel.chars().any(char::is_control) {
        return Err(ControlError::invalid(
            "channel",
            "must not contain control characters",
        ));
    }
    let channels = settings::get(conn, tenant_id)?.channels;
    if !channels.iter().any(|c| c == &new.channel) {
        return Err(ControlError::invalid(
            "channel",
            format!(
                "unknown channel {:?}; the tenant's channels: {}",
                new.channel,
                channels.join(", ")
            ),
        ));
    }
    if new.expires_on < today {
        return Err(ControlError::invalid(
            "expires_on",
            format!("must not be in the past (today is {today})"),
        ));
    }
    let last = today.checked_add_months(Months::new(12)).unwrap_or(today);
    if new.expires_on > last {
        return Err(ControlError::invalid(
            "expires_on",
            format!("must be at most one year ahead (on or before {last})"),
        ));
    }
    let watermark = new
        .watermark_text
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_string);
    if let Some(w) = &watermark {
        if w.chars().count() > MAX_WATERMARK {
            return Err(ControlError::invalid(
                "watermark_text",
                format!("must have at most {MAX_WATERMARK} characters"),
            ));
        }
        if w.chars().any(char::is_control) {
            return Err(ControlError::invalid(
                "watermark_text",
                "must be one line without control characters",
            ));
        }
    }
    let ids = dedup(&new.asset_ids);
    if ids.is_empty() {
        return Err(ControlError::invalid(
            "asset_ids",
            "must list at least one file",
        ));
    }
    if ids.len() > MAX_FILES {
        return Err(ControlError::invalid(
            "asset_ids",
            format!("at most {MAX_FILES} files per share (got {})", ids.len()),
        ));
    }
    let odd: Vec<String> = ids
        .iter()
        .filter(|i| !plausible_id(i))
        .map(|i| i.escape_debug().to_string())
        .collect();
    if !odd.is_empty() {
        return Err(ControlError::invalid(
            "asset_ids",
            format!("no such file in this tenant: {}", odd.join(", ")),
        ));
    }
    let found: HashSet<String> = assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(assets::id.eq_any(&ids))
        .select(assets::id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let missing: Vec<&str> = ids
        .iter()
        .filter(|i| !found.contains(*i))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ControlError::invalid(
            "asset_ids",
            format!("no such file in this tenant: {}", missing.join(", ")),
        ));
    }
    Ok((title, ids, watermark))
}

fn load_share(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<ShareRow> {
    if !plausible_id(id) {
        return Err(ControlError::not_found("share"));
    }
    share_links::table
        .filter(share_links::tenant_id.eq(tenant_id))
        .filter(share_links::id.eq(id))
        .select(ShareRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("share"))
}

fn file_count(conn: &mut DbConn, share_id: &str) -> Result<i64> {
    Ok(share_link_assets::table
        .filter(share_link_assets::share_id.eq(share_id))
        .count()
        .get_result(conn)?)
}

/// The share's files in order: (asset id, filename, kind).
fn files_of(conn: &mut DbConn, share: &ShareRow) -> Result<Vec<(String, String, String)>> {
    Ok(share_link_assets::table
        .inner_join(assets::table.on(assets::id.eq(share_link_assets::asset_id)))
        .filter(share_link_assets::share_id.eq(&share.id))
        .filter(assets::tenant_id.eq(&share.tenant_id))
        .order(share_link_assets::position.asc())
        .select((assets::id, assets::filename, assets::kind))
        .load(conn)?)
}

fn served_now(deps: &Deps, share: &ShareRow, asset_id: &str, today: NaiveDate) -> bool {
    share.status(today) == ShareStatus::Active
        && matches!(
            deps.allowed
                .check(&share.tenant_id, asset_id, &share.channel, today),
            Decision::Allowed { .. }
        )
}

fn new_token() -> Result<(String, String)> {
    let token = crate::auth::random_secret()?;
    let hash = sha256_hex(&token);
    Ok((token, hash))
}

// ---------------------------------------------------------------------------------------------
// Staff side.

/// Creates a share link (`manage_assets`); every field is validated and a problem names its
/// field (files of another tenant are refused naming them). The URL is in the answer only.
/// Audited as `share.create`.
pub async fn create_share(ctx: &Ctx, new: Result<NewShare>) -> Result<CreatedShare> {
    ctx.require(Permission::ManageAssets)?;
    let new = new?;
    let password_hash = match new.password.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => {
            let p = p.to_string();
            Some(crate::blocking(move || crate::auth::hash_password(&p)).await??)
        }
        None => None,
    };
    let (token, hash) = new_token()?;
    let url = format!("{}/s/{token}", public_base(&ctx.deps));
    let ctx2 = ctx.clone();
    let out = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let (t, now) = (ctx2.tenant().to_string(), ctx2.now);
            let (title, ids, watermark) = validate_new(c, &t, &new, ctx2.today())?;
            let who = ctx2.who();
            let row = ShareRow {
                id: db::new_id(),
                tenant_id: t.clone(),
                title,
                channel: new.channel.clone(),
                expires_on: new.expires_on,
                password_hash,
                allow_download: new.allow_download,
                watermark_text: watermark,
                created_by: who.label.clone(),
                created_at: now,
                revoked_at: None,
                revoked_by: None,
            };
            diesel::insert_into(share_links::table)
                .values((
                    share_links::id.eq(&row.id),
                    share_links::tenant_id.eq(&row.tenant_id),
                    share_links::token_hash.eq(&hash),
                    share_links::title.eq(&row.title),
                    share_links::channel.eq(&row.channel),
                    share_links::expires_on.eq(row.expires_on),
                    share_links::password_hash.eq(&row.password_hash),
                    share_links::allow_download.eq(row.allow_download),
                    share_links::watermark_text.eq(&row.watermark_text),
                    share_links::created_by.eq(&row.created_by),
                    share_links::created_at.eq(row.created_at),
                ))
                .execute(c)?;
            for (i, a) in ids.iter().enumerate() {
                diesel::insert_into(share_link_assets::table)
                    .values((
                        share_link_assets::share_id.eq(&row.id),
                        share_link_assets::asset_id.eq(a),
                        share_link_assets::position.eq(i32::try_from(i).unwrap_or(i32::MAX)),
                    ))
                    .execute(c)?;
            }
            audit::record(
                c,
                &who,
                "share.create",
                "share",
                Some(&row.id),
                serde_json::json!({
                    "title": row.title,
                    "channel": row.channel,
                    "expires_on": row.expires_on,
                    "asset_ids": ids,
                    "password": row.password_hash.is_some(),
                    "allow_download": row.allow_download,
                    "watermark_text": row.watermark_text,
                }),
            )?;
            let n = i64::try_from(ids.len()).unwrap_or(i64::MAX);
            Ok(row.out(ctx2.today(), n))
        })
    })
    .await?;
    Ok(CreatedShare { share: out, url })
}

/// The tenant's share links, newest first (every user of the tenant).
pub async fn list_shares(ctx: &Ctx, q: Result<ShareQuery>) -> Result<Vec<ShareOut>> {
    let q = q?;
    let page = q.page()?;
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        let (t, today) = (ctx2.tenant().to_string(), ctx2.today());
        let mut query = share_links::table
            .filter(share_links::tenant_id.eq(&t))
            .into_boxed();
        match q.status {
            None => {}
            Some(ShareStatus::Revoked) => {
                query = query.filter(share_links::revoked_at.is_not_null())
            }
            Some(ShareStatus::Expired) => {
                query = query
                    .filter(share_links::revoked_at.is_null())
                    .filter(share_links::expires_on.lt(today));
            }
            Some(ShareStatus::Active) => {
                query = query
                    .filter(share_links::revoked_at.is_null())
                    .filter(share_links::expires_on.ge(today));
            }
        }
        if let Some(a) = q
            .asset_id
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            if !plausible_id(a) {
                return Ok(Vec::new());
            }
            query = query.filter(
                share_links::id.eq_any(
                    share_link_assets::table
                        .filter(share_link_assets::asset_id.eq(a.to_string()))
                        .select(share_link_assets::share_id),
                ),
            );
        }
        let rows: Vec<ShareRow> = query
            .order((share_links::created_at.desc(), share_links::id.desc()))
            .limit(page.per_page)
            .offset(page.offset())
            .select(ShareRow::as_select())
            .load(c)?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let counts: HashMap<String, i64> = share_link_assets::table
            .filter(share_link_assets::share_id.eq_any(&ids))
            .group_by(share_link_assets::share_id)
            .select((share_link_assets::share_id, diesel::dsl::count_star()))
            .load::<(String, i64)>(c)?
            .into_iter()
            .collect();
        Ok(rows
            .into_iter()
            .map(|r| {
                let n = counts.get(&r.id).copied().unwrap_or(0);
                r.out(today, n)
            })
            .collect())
    })
    .await
}

/// One share link with its files and whether each is served now (every user of the tenant;
/// "served now" comes from the allowed set in memory, as the link itself decides).
pub async fn get_share(ctx: &Ctx, id: String) -> Result<ShareDetail> {
    ctx.deps.allowed.ensure_loaded(&ctx.deps.pool).await?;
    let ctx2 = ctx.clone();
    let (row, files) = db::run(&ctx.deps.pool, move |c| {
        let row = load_share(c, ctx2.tenant(), &id)?;
        let files = files_of(c, &row)?;
        Ok((row, files))
    })
    .await?;
    let today = ctx.today();
    let files: Vec<ShareFile> = files
        .into_iter()
        .map(|(asset_id, filename, kind)| ShareFile {
            served_now: served_now(&ctx.deps, &row, &asset_id, today),
            asset_id,
            filename,
            kind,
        })
        .collect();
    let n = i64::try_from(files.len()).unwrap_or(i64::MAX);
    Ok(ShareDetail {
        share: row.out(today, n),
        files,
    })
}

/// Revokes a share link (`manage_assets`): from now on it answers 410. Revoking a revoked
/// share changes nothing. Audited as `share.revoke`.
pub async fn revoke_share(ctx: &Ctx, id: String) -> Result<ShareOut> {
    ctx.require(Permission::ManageAssets)?;
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let t = ctx2.tenant().to_string();
            let mut row = load_share(c, &t, &id)?;
            if row.revoked_at.is_none() {
                let who = ctx2.who();
                diesel::update(
                    share_links::table
                        .filter(share_links::tenant_id.eq(&t))
                        .filter(share_links::id.eq(&id))
                        .filter(share_links::revoked_at.is_null()),
                )
                .set((
                    share_links::revoked_at.eq(ctx2.now),
                    share_links::revoked_by.eq(&who.label),
                ))
                .execute(c)?;
                audit::record(
                    c,
                    &who,
                    "share.revoke",
                    "share",
                    Some(&id),
                    serde_json::json!({ "title": row.title }),
                )?;
                row.revoked_at = Some(ctx2.now);
                row.revoked_by = Some(who.label);
            }
            let n = file_count(c, &id)?;
            Ok(row.out(ctx2.today(), n))
        })
    })
    .await
}

/// A share's access log, newest first (`manage_assets`).
pub async fn access_log(
    ctx: &Ctx,
    id: String,
    page: Result<PageQuery>,
) -> Result<Vec<AccessEntry>> {
    ctx.require(Permission::ManageAssets)?;
    let page = page?.page()?;
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        let t = ctx2.tenant().to_string();
        load_share(c, &t, &id)?;
        Ok(share_access_log::table
            .filter(share_access_log::tenant_id.eq(&t))
            .filter(share_access_log::share_id.eq(&id))
            .order((share_access_log::at.desc(), share_access_log::id.desc()))
            .limit(page.per_page)
            .offset(page.offset())
            .select(AccessEntry::as_select())
            .load(c)?)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Public side.

/// The visitor of a share link: their client and the share's unlock cookie, if any.
#[derive(Debug, Clone, Default)]
pub struct Visitor {
    /// Address and User-Agent (kept in the access log).
    pub client: ClientInfo,
    /// The value of the share's unlock cookie.
    pub unlock_cookie: Option<String>,
}

/// A file on the portal page.
#[derive(Debug, Clone, Serialize)]
pub struct PortalFile {
    /// Asset ID.
    pub asset_id: String,
    /// File name.
    pub filename: String,
    /// `image` or `video`.
    pub kind: String,
}

/// The portal page of an open share.
#[derive(Debug, Clone, Serialize)]
pub struct PortalPage {
    /// Title.
    pub title: String,
    /// Who shares (the tenant's name).
    pub tenant_name: String,
    /// The last day the link works.
    pub expires_on: NaiveDate,
    /// Whether downloads are offered.
    pub allow_download: bool,
    /// Whether images carry a watermark.
    pub watermarked: bool,
    /// The files served now, in the share's order.
    pub files: Vec<PortalFile>,
    /// How many files of the share are not served now.
    pub hidden: usize,
    /// How many files the share holds.
    pub total: usize,
}

/// What the portal link shows.
#[derive(Debug, Clone)]
pub enum Portal {
    /// A password is needed first.
    Password {
        /// The share's title.
        title: String,
        /// Who shares.
        tenant_name: String,
    },
    /// The portal.
    Open(PortalPage),
}

/// A file asked for through a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAsk {
    /// A rendition by name (`small.jpg`, `large.webp`, ...).
    Rendition(String),
    /// The download (the original, or a watermarked full-size JPEG when the share has a
    /// watermark).
    Download,
}

/// The answer to a file asked for through a share.
pub enum Served {
    /// The file.
    File {
        /// The rendition's bytes, type and ETag.
        rendition: Arc<crate::delivery::Rendition>,
        /// The name to download it as.
        filename: String,
    },
    /// The file is not allowed on the share's channel today (451).
    Unavailable,
    /// The share has a password and this visitor has not given it.
    NeedsPassword,
}

/// Refuses (429) a client address past the unknown-token limit (before any lookup).
fn public_guard(deps: &Deps, client: &ClientInfo) -> Result<()> {
    let cfg = &deps.config.signing;
    deps.public_throttle.check(
        client.ip.as_deref(),
        deps.clock.now(),
        cfg.max_unknown_tokens_per_ip,
        cfg.unknown_token_window_secs,
    )
}

/// Counts an unknown share token against the client's address.
fn public_noted<T>(deps: &Deps, ip: Option<&str>, r: Result<T>) -> Result<T> {
    if let Err(ControlError::NotFound(what)) = &r
        && what == "share link"
    {
        deps.public_throttle.missed(ip, deps.clock.now());
    }
    r
}

fn by_token(conn: &mut DbConn, token: &str) -> Result<ShareRow> {
    let hash = token_hash(token).ok_or_else(unknown_share)?;
    share_links::table
        .filter(share_links::token_hash.eq(hash))
        .select(ShareRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(unknown_share)
}

fn log(
    conn: &mut DbConn,
    share: &ShareRow,
    asset_id: Option<&str>,
    action: &str,
    outcome: &str,
    client: &ClientInfo,
    now: NaiveDateTime,
) -> Result<()> {
    db::write_tx(conn, |c| {
        diesel::insert_into(share_access_log::table)
            .values((
                share_access_log::id.eq(db::new_id()),
                share_access_log::tenant_id.eq(&share.tenant_id),
                share_access_log::share_id.eq(&share.id),
                share_access_log::asset_id.eq(asset_id),
                share_access_log::action.eq(action),
                share_access_log::outcome.eq(outcome),
                share_access_log::ip.eq(&client.ip),
                share_access_log::user_agent.eq(&client.user_agent),
                share_access_log::at.eq(now),
            ))
            .execute(c)?;
        Ok(())
    })
}

/// Loads the share of `token` and refuses a dead one (410 `share_revoked` / `share_expired`,
/// logged), an unknown one (404 `share link`).
fn open_share(
    conn: &mut DbConn,
    token: &str,
    action: &str,
    client: &ClientInfo,
    now: NaiveDateTime,
) -> Result<ShareRow> {
    let share = by_token(conn, token)?;
    match share.status(now.date()) {
        ShareStatus::Active => Ok(share),
        ShareStatus::Revoked => {
            log(conn, &share, None, action, "revoked", client, now)?;
            Err(ControlError::Gone {
                code: "share_revoked",
                message: "this share link was revoked".into(),
            })
        }
        ShareStatus::Expired => {
            log(conn, &share, None, action, "expired", client, now)?;
            Err(ControlError::Gone {
                code: "share_expired",
                message: "this share link has expired".into(),
            })
        }
    }
}

fn tenant_name(conn: &mut DbConn, tenant_id: &str) -> Result<String> {
    Ok(tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::name)
        .first(conn)?)
}

type HmacSha256 = Hmac<Sha256>;

fn unlock_mac(share: &ShareRow, expiry: i64) -> Option<String> {
    let key = share.password_hash.as_deref()?;
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).ok()?;
    mac.update(share.id.as_bytes());
    mac.update(b".");
    mac.update(expiry.to_string().as_bytes());
    Some(hex::encode(mac.finalize().into_bytes()))
}

/// Whether the visitor may see the share (no password, or a valid unlock cookie).
fn unlocked(share: &ShareRow, cookie: Option<&str>, now: NaiveDateTime) -> bool {
    if share.password_hash.is_none() {
        return true;
    }
    let Some((exp, mac)) = cookie.and_then(|c| c.split_once('.')) else {
        return false;
    };
    let Ok(exp) = exp.parse::<i64>() else {
        return false;
    };
    if exp <= now.and_utc().timestamp() {
        return false;
    }
    unlock_mac(share, exp).is_some_and(|want| crate::auth::constant_time_eq(&want, mac))
}

/// The unlock cookie's value for a share, valid until `until`.
fn unlock_value(share: &ShareRow, until: NaiveDateTime) -> Result<String> {
    let exp = until.and_utc().timestamp();
    let mac = unlock_mac(share, exp)
        .ok_or_else(|| ControlError::Internal("unlock of a share without a password".into()))?;
    Ok(format!("{exp}.{mac}"))
}

/// The portal of the share behind `token`: the files allowed on its channel today (others are
/// left out and counted), or the password form. Logged as `view`.
///
/// Errors: 429 past the unknown-token limit of the address, 404 `share link`, 410
/// `share_revoked` / `share_expired`.
pub async fn open_portal(deps: &Arc<Deps>, token: &str, visitor: Visitor) -> Result<Portal> {
    public_guard(deps, &visitor.client)?;
    deps.allowed.ensure_loaded(&deps.pool).await?;
    let ip = visitor.client.ip.clone();
    let (token, d) = (token.to_string(), Arc::clone(deps));
    let r = db::run(&deps.pool, move |c| {
        let now = d.clock.now();
        let share = open_share(c, &token, "view", &visitor.client, now)?;
        let tenant_name = tenant_name(c, &share.tenant_id)?;
        if !unlocked(&share, visitor.unlock_cookie.as_deref(), now) {
            return Ok(Portal::Password {
                title: share.title,
                tenant_name,
            });
        }
        let all = files_of(c, &share)?;
        let total = all.len();
        let files: Vec<PortalFile> = all
            .into_iter()
            .filter(|(a, _, _)| served_now(&d, &share, a, now.date()))
            .map(|(asset_id, filename, kind)| PortalFile {
                asset_id,
                filename,
                kind,
            })
            .collect();
        log(c, &share, None, "view", "ok", &visitor.client, now)?;
        Ok(Portal::Open(PortalPage {
            hidden: total - files.len(),
            total,
            title: share.title,
            tenant_name,
            expires_on: share.expires_on,
            allow_download: share.allow_download,
            watermarked: share.watermark_text.is_some(),
            files,
        }))
    })
    .await;
    public_noted(deps, ip.as_deref(), r)
}

/// Checks a share's password; a right one gives the unlock cookie's value and how many seconds
/// it lasts. A wrong one is logged (`password`, `bad_password`) and answers 400 naming
/// `password`; past [`MAX_BAD_PASSWORDS`] within the window, 429 `too_many_passwords` (with the
/// right password too).
pub async fn unlock(
    deps: &Arc<Deps>,
    token: &str,
    password: &str,
    visitor: Visitor,
) -> Result<(String, i64)> {
    public_guard(deps, &visitor.client)?;
    let ip = visitor.client.ip.clone();
    let (t, d, client) = (token.to_string(), Arc::clone(deps), visitor.client.clone());
    let share = public_noted(
        deps,
        ip.as_deref(),
        db::run(&deps.pool, move |c| {
            let now = d.clock.now();
            let share = open_share(c, &t, "password", &client, now)?;
            let since = now - TimeDelta::seconds(BAD_PASSWORD_WINDOW_SECS);
            let bad: i64 = share_access_log::table
                .filter(share_access_log::share_id.eq(&share.id))
                .filter(share_access_log::outcome.eq("bad_password"))
                .filter(share_access_log::at.ge(since))
                .count()
                .get_result(c)?;
            if bad >= MAX_BAD_PASSWORDS {
                return Err(ControlError::RateLimited {
                    code: "too_many_passwords",
                    message: "too many wrong passwords for this link; try again later".into(),
                    retry_after_secs: u64::try_from(BAD_PASSWORD_WINDOW_SECS).unwrap_or(900),
                });
            }
            Ok(share)
        })
        .await,
    )?;
    let Some(phc) = share.password_hash.clone() else {
        // No password needed: any answer opens it.
        return Ok((String::new(), 0));
    };
    let pw = password.to_string();
    let right = crate::blocking(move || crate::auth::verify_password(&pw, &phc)).await?;
    let now = deps.clock.now();
    db::run(&deps.pool, move |c| {
        if !right {
            log(
                c,
                &share,
                None,
                "password",
                "bad_password",
                &visitor.client,
                now,
            )?;
            return Err(ControlError::invalid("password", "wrong password"));
        }
        log(c, &share, None, "password", "ok", &visitor.client, now)?;
        let end_of_share = share
            .expires_on
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or(now);
        let until = (now + TimeDelta::hours(UNLOCK_HOURS)).min(end_of_share);
        Ok((
            unlock_value(&share, until)?,
            (until - now).num_seconds().max(1),
        ))
    })
    .await
}

/// A file of the share behind `token`: a rendition (`small.jpg`, ...; not `original` or `full`,
/// which only a download gives) or the download. Checked with the allowed set in memory on
/// every request: a file not allowed on the share's channel today is [`Served::Unavailable`]
/// (logged `denied`). With a watermark text every image carries it, and the download is a
/// watermarked full-size JPEG. Logged as `image` / `download`.
///
/// Errors: 429 past the unknown-token limit of the address, 404 `share link` (unknown token),
/// 404 for a file not in the share, an unknown rendition or a download the share does not
/// offer, 410 `share_revoked` / `share_expired`.
pub async fn portal_file(
    deps: &Arc<Deps>,
    token: &str,
    asset_id: &str,
    ask: FileAsk,
    visitor: Visitor,
) -> Result<Served> {
    public_guard(deps, &visitor.client)?;
    if !plausible_id(asset_id) {
        return Err(ControlError::not_found("file"));
    }
    deps.allowed.ensure_loaded(&deps.pool).await?;
    let ip = visitor.client.ip.clone();
    let (t, a, d, client) = (
        token.to_string(),
        asset_id.to_string(),
        Arc::clone(deps),
        visitor.client.clone(),
    );
    let action = match ask {
        FileAsk::Rendition(_) => "image",
        FileAsk::Download => "download",
    };
    let cookie = visitor.unlock_cookie.clone();
    let found = public_noted(
        deps,
        ip.as_deref(),
        db::run(&deps.pool, move |c| {
            let now = d.clock.now();
            let share = open_share(c, &t, action, &client, now)?;
            if !unlocked(&share, cookie.as_deref(), now) {
                return Ok(None);
            }
            let file: Option<(String, String)> = share_link_assets::table
                .inner_join(assets::table.on(assets::id.eq(share_link_assets::asset_id)))
                .filter(share_link_assets::share_id.eq(&share.id))
                .filter(share_link_assets::asset_id.eq(&a))
                .filter(assets::tenant_id.eq(&share.tenant_id))
                .select((assets::filename, assets::kind))
                .first(c)
                .optional()?;
            let (filename, kind) = file.ok_or_else(|| ControlError::not_found("file"))?;
            Ok(Some((share, filename, kind)))
        })
        .await,
    )?;
    let Some((share, filename, kind)) = found else {
        return Ok(Served::NeedsPassword);
    };
    let spec = match &ask {
        FileAsk::Rendition(name) => {
            if name == "original" || name.starts_with("full.") {
                return Err(ControlError::not_found(format!(
                    "rendition {name:?} (only the download gives the full file)"
                )));
            }
            crate::delivery::RenditionSpec::parse(name, share.watermark_text.clone())?
        }
        FileAsk::Download => {
            if !share.allow_download {
                return Err(ControlError::not_found("download (this link is view only)"));
            }
            match &share.watermark_text {
                Some(w) if kind == "image" => {
                    crate::delivery::RenditionSpec::parse("full.jpg", Some(w.clone()))?
                }
                _ => crate::delivery::RenditionSpec::parse("original", None)?,
            }
        }
    };
    let now = deps.clock.now();
    let decision = deps
        .allowed
        .check(&share.tenant_id, asset_id, &share.channel, now.date());
    let (share, client) = (Arc::new(share), visitor.client);
    let Decision::Allowed { version } = decision else {
        let (s, a, cl) = (Arc::clone(&share), asset_id.to_string(), client);
        db::run(&deps.pool, move |c| {
            log(c, &s, Some(&a), action, "denied", &cl, now)
        })
        .await?;
        return Ok(Served::Unavailable);
    };
    let rendition =
        crate::delivery::rendition(deps, &share.tenant_id, asset_id, version, &spec).await?;
    let (s, a) = (Arc::clone(&share), asset_id.to_string());
    db::run(&deps.pool, move |c| {
        log(c, &s, Some(&a), action, "ok", &client, now)
    })
    .await?;
    let filename = match (&ask, &spec.kind) {
        (FileAsk::Download, crate::delivery::RenditionKind::Image { .. }) => {
            let stem = filename
                .rsplit_once('.')
                .map_or(filename.as_str(), |(s, _)| s);
            format!("{stem}.jpg")
        }
        _ => filename,
    };
    Ok(Served::File {
        rendition,
        filename,
    })
}

/// The unlock cookie's name (one per share: its path is the share's).
pub const UNLOCK_COOKIE: &str = "lk_share";

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pw: Option<&str>) -> ShareRow {
        ShareRow {
            id: "s1".into(),
            tenant_id: "t".into(),
            title: "x".into(),
            channel: "web".into(),
            expires_on: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap_or_default(),
            password_hash: pw.map(str::to_string),
            allow_download: false,
            watermark_text: None,
            created_by: "a".into(),
            created_at: NaiveDateTime::default(),
            revoked_at: None,
            revoked_by: None,
        }
    }

    #[test]
    fn unlock_cookie_is_bound_to_the_password_hash_and_expires() {
        let now = NaiveDate::from_ymd_opt(2029, 1, 1)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap_or_default();
        let s = row(Some("$argon2id$hash-one"));
        let v = unlock_value(&s, now + TimeDelta::hours(1)).unwrap_or_default();
        assert!(unlocked(&s, Some(&v), now));
        assert!(!unlocked(&s, Some(&v), now + TimeDelta::hours(2)));
        assert!(!unlocked(&row(Some("$argon2id$hash-two")), Some(&v), now));
        assert!(!unlocked(&s, Some("garbage"), now));
        assert!(!unlocked(&s, None, now));
        assert!(unlocked(&row(None), None, now));
    }

    #[test]
    fn tokens_are_43_base64url_characters() {
        assert!(token_hash("short").is_none());
        assert!(token_hash(&"a".repeat(43)).is_some());
        assert!(token_hash(&format!("{}/", "a".repeat(42))).is_none());
    }
}

//! The delivery endpoint: `GET|HEAD /d/{tenant_slug}/{asset_id}/{channel}/{rendition}`, the
//! public URL a CMS embeds.
//!
//! The compliance decision comes from the allowed set in memory (`deps.allowed`), never from a
//! database query per request; a rendition already in memory (`deps.renditions`) is served
//! without touching the database or the disk.
//!
//! Answers:
//! - allowed: 200 with the bytes, `Content-Type`, `ETag` (304 on a matching `If-None-Match`),
//!   `Cache-Control: public, max-age=N, s-maxage=N` (`[delivery] max_age_secs`: how long a CDN
//!   or browser may keep it after it stopped being allowed, unless purged) and
//!   `Surrogate-Key: asset-<id> tenant-<slug>` (what a CDN purges on the `asset.hidden` webhook);
//! - known file not allowed on that channel today: 451 Unavailable For Legal Reasons (RFC 7725),
//!   `Cache-Control: no-store`, `Link: <{base}/>; rel="blocked-by"` (the server blocks it), and
//!   a generic body that names neither a person nor a reason;
//! - unknown tenant, or a file the tenant does not have (another tenant's included): 404 with the
//!   same generic wording for every such case, so the answer tells nothing about other tenants'
//!   files (a file of this tenant that exists but is not allowed answers 451: its existence is
//!   not a secret from whoever holds its URL, and a CMS must be able to tell "hidden" from "wrong
//!   URL");
//! - unknown rendition or channel: 404 naming it.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};

use crate::Deps;
use crate::error::error_response;
use crate::service::ControlError;
use crate::service::allowed::Decision;
use crate::service::delivery::{self, RenditionSpec};

/// The body of a 451: says only that the file is not available.
pub const UNAVAILABLE_BODY: &str = "{\"error\":{\"code\":\"unavailable_for_legal_reasons\",\
    \"message\":\"This file is not available here.\"}}";

/// The body of a 404 for an unknown tenant or file.
pub const NOT_FOUND_BODY: &str =
    "{\"error\":{\"code\":\"not_found\",\"message\":\"file not found\"}}";

/// The status of a file hidden for legal reasons (RFC 7725).
pub const UNAVAILABLE: StatusCode = StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS;

fn generic(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .content_type("application/json")
        .body(body)
}

fn failed(e: &ControlError) -> HttpResponse {
    let mut r = error_response(e);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Whether `If-None-Match` lists `etag` (weak comparison, `*` matches).
fn matches_etag(req: &HttpRequest, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

async fn serve(req: HttpRequest, state: web::Data<Deps>) -> HttpResponse {
    let m = req.match_info();
    let (Some(slug), Some(asset_id), Some(channel), Some(name)) = (
        m.get("tenant"),
        m.get("asset"),
        m.get("channel"),
        m.get("rendition"),
    ) else {
        return generic(StatusCode::NOT_FOUND, NOT_FOUND_BODY);
    };
    let deps = state.get_ref();
    if let Err(e) = deps.allowed.ensure_loaded(&deps.pool).await {
        return failed(&e);
    }
    let Some(tenant_id) = deps.allowed.tenant_by_slug(slug) else {
        return generic(StatusCode::NOT_FOUND, NOT_FOUND_BODY);
    };
    let today = deps.clock.today();
    let decision = deps.allowed.check(&tenant_id, asset_id, channel, today);
    let Decision::Allowed { version } = decision else {
        // Tell an unknown channel (404 naming it) from a file not allowed on a known one.
        return match delivery::tenant_delivery(deps, &tenant_id).await {
            Err(e) => failed(&e),
            Ok(t) if !t.channels.iter().any(|c| c == channel) => {
                failed(&ControlError::not_found(format!(
                    "channel {:?} (this tenant's channels: {})",
                    channel.chars().take(40).collect::<String>(),
                    t.channels.join(", ")
                )))
            }
            Ok(_) if decision == Decision::Unknown => {
                generic(StatusCode::NOT_FOUND, NOT_FOUND_BODY)
            }
            Ok(_) => {
                let mut r = generic(UNAVAILABLE, UNAVAILABLE_BODY);
                // RFC 7725 section 4: who implements the block (this server, not a person).
                let link = format!(
                    "<{}/>; rel=\"blocked-by\"",
                    delivery::base_url(&deps.config)
                );
                if let Ok(v) = HeaderValue::from_str(&link) {
                    r.headers_mut().insert(header::LINK, v);
                }
                r
            }
        };
    };
    let watermark = if RenditionSpec::wants_watermark(name) {
        match delivery::tenant_delivery(deps, &tenant_id).await {
            Ok(t) => t.watermark.clone(),
            Err(e) => return failed(&e),
        }
    } else {
        None
    };
    let spec = match RenditionSpec::parse(name, watermark) {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let r = match delivery::rendition(deps, &tenant_id, asset_id, version, &spec).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let max_age = deps.config.delivery.max_age_secs;
    let cache = format!("public, max-age={max_age}, s-maxage={max_age}");
    let surrogate = format!(
        "{} tenant-{slug}",
        crate::service::exposure::surrogate_key(asset_id)
    );
    let not_modified = matches_etag(&req, &r.etag);
    let mut b = HttpResponse::build(if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    });
    b.insert_header((header::CACHE_CONTROL, cache))
        .insert_header(("Surrogate-Key", surrogate))
        .insert_header((header::ETAG, r.etag.as_str()));
    if not_modified {
        return b.finish();
    }
    b.insert_header((header::CONTENT_TYPE, r.mime.as_str()));
    // For HEAD actix sends the headers (the length included) without the body.
    b.body(r.bytes.clone())
}

/// Registers the routes (a scope on `/d`: other paths fail its prefix check at once).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::scope("/d")
            .route(
                "/{tenant}/{asset}/{channel}/{rendition}",
                web::get().to(serve),
            )
            .route(
                "/{tenant}/{asset}/{channel}/{rendition}",
                web::head().to(serve),
            ),
    );
}

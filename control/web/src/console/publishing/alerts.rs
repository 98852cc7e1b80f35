//! The alerts page (`/admin/alerts`, `manage_consents`): the consents in force that end within a
//! window (default the tenant's notice period), soonest first, each with a button that sends a
//! renewal request pre-filled from it; and the user's own daily-digest preference.

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::roles::Permission;
use crate::service::alerts::{self, AlertList, AlertQuery, DigestPreference, DigestSetting};
use crate::service::{ControlError, Ctx};

use super::super::{Button, ConsoleUser, Layout, Result, State, done, parse_form, render};

#[derive(Template)]
#[template(path = "console/alerts.html")]
struct AlertsPage {
    l: Layout,
    list: AlertList,
    digest: DigestSetting,
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    within_days: Option<String>,
}

async fn page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx: Ctx = user.ctx(&state);
    ctx.require(Permission::ManageConsents)?;
    let q = web::Query::<PageQuery>::from_query(req.query_string())
        .map(|q| AlertQuery {
            within_days: q.into_inner().within_days,
        })
        .map_err(|e| ControlError::invalid("within_days", e.to_string()));
    let list = alerts::list_alerts(&ctx, q).await?;
    let digest = alerts::get_digest(&ctx).await?;
    render(&AlertsPage {
        l: Layout::new(&req, &user, &ctx, "alerts"),
        list,
        digest,
    })
}

async fn renew(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    alerts::renew_agreement(&user.ctx(&state), path.into_inner(), Ok(Default::default())).await?;
    Ok(done(&req, "/admin/alerts?notice=request_sent"))
}

/// The digest form: the checkbox `opt_out` is sent only when ticked.
#[derive(Debug, Deserialize)]
struct DigestForm {
    opt_out: Option<String>,
}

async fn digest(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: DigestForm = parse_form(&user, &body)?;
    let pref = DigestPreference {
        opt_out: f.opt_out.is_some_and(|v| !v.trim().is_empty()),
    };
    alerts::set_digest(&user.ctx(&state), Ok(pref)).await?;
    Ok(done(&req, "/admin/alerts?notice=saved"))
}

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/alerts", web::get().to(page))
        .route("/admin/alerts/digest", web::post().to(digest))
        .route("/admin/alerts/{agreement_id}/renew", web::post().to(renew));
}

//! The overview: what needs attention today.

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::service::overview::{self, Counts, Overview};

use super::{Button, ConsoleUser, Layout, Result, State, done, parse_form, render};

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    l: Layout,
    o: Overview,
}

impl OverviewPage {
    /// The share of the checked files that may not be used, in whole percent.
    fn percent_not_allowed(&self, c: &Counts) -> u64 {
        let n = &c.not_allowed;
        (n.files_not_allowed * 100)
            .checked_div(n.files_checked)
            .unwrap_or(0)
    }
}

async fn page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let o = overview::overview(&ctx).await?;
    render(&OverviewPage {
        l: Layout::new(&req, &user, &ctx, "overview"),
        o,
    })
}

async fn recount(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    overview::recount(&user.ctx(&state)).await?;
    Ok(done(&req, "/admin"))
}

/// Registers the overview's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin", web::get().to(page))
        .route("/admin/", web::get().to(page))
        .route("/admin/recount", web::post().to(recount));
}

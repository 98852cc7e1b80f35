//! `/admin/rematch`: re-matching runs with their progress, starting and cancelling one.
//! Progress refreshes with a link (no script) or by `static/admin.js`, which fetches this page
//! again and swaps the runs table while a run is running.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;

use crate::service::rematch::{self, JobQuery, RematchFilter, RunOut, StartRematch};
use crate::service::{ControlError, Ctx, Permission};

use super::super::{Button, ConsoleUser, Layout, Result, State, done, parse_form};

/// A run as shown: the run and its progress bar's values.
struct RunView {
    r: RunOut,
    /// `max` of the `<progress>` (at least 1).
    max: i64,
    /// `value` of the `<progress>`.
    value: i64,
    /// Seconds left, rounded.
    eta: Option<i64>,
}

impl From<RunOut> for RunView {
    fn from(r: RunOut) -> Self {
        let (max, value) = if r.total > 0 {
            (r.total, r.done.min(r.total))
        } else {
            (1, i64::from(r.status != "running"))
        };
        Self {
            max,
            value,
            eta: r.eta_seconds.map(|s| s.round() as i64),
            r,
        }
    }
}

#[derive(Template)]
#[template(path = "console/rematch.html")]
struct RematchPage {
    l: Layout,
    runs: Vec<RunView>,
    /// Whether a run is running (the script polls then).
    running: bool,
    /// The last error of a re-matching batch that is still to be retried or failed.
    job_error: Option<String>,
    /// Why starting a run failed (the form's answer).
    start_error: Option<String>,
}

async fn show(
    req: &HttpRequest,
    user: &ConsoleUser,
    ctx: &Ctx,
    start_error: Option<String>,
) -> Result<HttpResponse> {
    let runs: Vec<RunView> = rematch::list_rematch_runs(ctx)
        .await?
        .into_iter()
        .map(RunView::from)
        .collect();
    let running = runs.iter().any(|r| r.r.status == "running");
    let job_error = if running {
        rematch::list_jobs(
            ctx,
            Ok(JobQuery {
                status: None,
                limit: Some(50),
            }),
        )
        .await?
        .into_iter()
        .filter(|j| j.kind == rematch::REMATCH && j.status != "done")
        .find_map(|j| j.last_error)
    } else {
        None
    };
    let status = if start_error.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let html = RematchPage {
        l: Layout::new(req, user, ctx, "rematch"),
        runs,
        running,
        job_error,
        start_error,
    }
    .render()
    .map_err(|e| super::super::ConsoleError::Internal(format!("template: {e}")))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(html))
}

async fn page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    show(&req, &user, &ctx, None).await
}

#[derive(Deserialize)]
struct StartForm {
    dry_run: Option<String>,
    created_from: Option<String>,
    created_to: Option<String>,
    asset_ids: Option<String>,
}

fn date(field: &str, v: Option<String>) -> crate::service::Result<Option<NaiveDate>> {
    super::opt(v)
        .map(|v| {
            NaiveDate::parse_from_str(&v, "%Y-%m-%d").map_err(|_| {
                ControlError::invalid(field, format!("{v:?} is not a date (YYYY-MM-DD)"))
            })
        })
        .transpose()
}

fn midnight(d: NaiveDate) -> NaiveDateTime {
    d.and_time(chrono::NaiveTime::MIN)
}

impl StartForm {
    fn request(self) -> crate::service::Result<StartRematch> {
        let from = date("created_from", self.created_from)?;
        let to = date("created_to", self.created_to)?;
        let ids: Vec<String> = self
            .asset_ids
            .unwrap_or_default()
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Ok(StartRematch {
            filter: RematchFilter {
                asset_ids: (!ids.is_empty()).then_some(ids),
                created_from: from.map(midnight),
                // Up to and including the day: before the next midnight.
                created_to: to.and_then(|d| d.succ_opt()).map(midnight),
            },
            dry_run: self.dry_run.is_some(),
        })
    }
}

async fn start(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: StartForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    match rematch::start_rematch(&ctx, form.request()).await {
        Ok(_) => Ok(done(&req, "/admin/rematch?notice=rematch_started")),
        // What the caller can fix (or may not do) is an error page naming it; anything else
        // (the media store or the matcher not ready) is shown on the page itself.
        Err(
            e @ (ControlError::Invalid { .. }
            | ControlError::BadRequest { .. }
            | ControlError::Forbidden(_)
            | ControlError::NotFound(_)),
        ) => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "console: re-matching could not start");
            if !ctx.has(Permission::ManageAssets) {
                return Err(e.into());
            }
            show(&req, &user, &ctx, Some(e.public_message())).await
        }
    }
}

async fn cancel(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    rematch::cancel_rematch_run(&user.ctx(&state), id.into_inner()).await?;
    Ok(done(&req, "/admin/rematch?notice=rematch_cancelled"))
}

/// Registers the re-matching page.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/rematch", web::get().to(page))
        .route("/admin/rematch", web::post().to(start))
        .route("/admin/rematch/{id}/cancel", web::post().to(cancel));
}

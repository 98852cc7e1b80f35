//! The list of files: search, filter by kind, sort, pages by keyset cursor; or, with `?status=`, the files
//! whose compliance today has that status (checked by the compliance engine in ID order and
//! continued by cursor, as the REST API's compliance list).

use std::collections::HashMap;

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::service::ControlError;
use crate::service::assets::{self, AssetFilter, BrowseOrder, BrowsePage};
use crate::service::compliance::{self, ComplianceList, ListQuery, Standing};
use likeness_control_domain::ComplianceStatus;

use super::{ConsoleUser, Layout, Result, State, render};

/// Files per page.
const PER_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
struct FilesQuery {
    q: Option<String>,
    kind: Option<String>,
    sort: Option<String>,
    status: Option<String>,
    after: Option<String>,
}

impl FilesQuery {
    /// The query string with the same search, kind and sort, continuing after `after`
    /// (`None`: the first page).
    fn link(&self, after: Option<&str>) -> String {
        form_urlencoded(&[
            ("q", self.q.as_deref()),
            ("kind", self.kind.as_deref()),
            ("sort", self.sort.as_deref()),
            ("after", after),
        ])
    }
}

fn form_urlencoded(pairs: &[(&str, Option<&str>)]) -> String {
    let present: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    serde_html_form::to_string(present).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "console/files.html")]
struct FilesPage {
    l: Layout,
    query: FilesQuery,
    list: BrowsePage,
    standings: HashMap<String, Standing>,
    statuses: &'static [ComplianceStatus],
}

impl FilesPage {
    fn standing(&self, id: &str) -> Option<&Standing> {
        self.standings.get(id)
    }
}

#[derive(Template)]
#[template(path = "console/files_status.html")]
struct FilesByStatusPage {
    l: Layout,
    status: ComplianceStatus,
    list: ComplianceList,
    statuses: &'static [ComplianceStatus],
}

impl FilesByStatusPage {
    /// The worst status of a listed file over its channels.
    fn worst(&self, verdicts: &[likeness_control_domain::compliance::Verdict]) -> ComplianceStatus {
        verdicts
            .iter()
            .map(|v| v.status)
            .min_by_key(|s| s.severity())
            .unwrap_or(ComplianceStatus::Approved)
    }
}

/// Human file size.
pub fn human_size(bytes: &i64) -> String {
    let b = *bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

async fn list(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let query = web::Query::<FilesQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ControlError::BadRequest {
            code: "invalid_query",
            message: e.to_string(),
        })?;
    let l = Layout::new(&req, &user, &ctx, "files");
    if let Some(status) = query.status.as_deref().filter(|s| !s.is_empty()) {
        let parsed: ComplianceStatus = status
            .parse()
            .map_err(|_| ControlError::invalid("status", format!("unknown status {status:?}")))?;
        let list = compliance::list_assets(
            &ctx,
            Ok(ListQuery {
                status: Some(status.to_string()),
                allowed: Some(false).filter(|_| !parsed.allowed()),
                after: query.after.clone(),
                limit: Some(PER_PAGE as usize),
                ..ListQuery::default()
            }),
        )
        .await?;
        return render(&FilesByStatusPage {
            l,
            status: parsed,
            list,
            statuses: ComplianceStatus::ALL,
        });
    }
    let order = match query.sort.as_deref() {
        Some("oldest") => BrowseOrder::Oldest,
        Some("name") => BrowseOrder::Name,
        Some("size") => BrowseOrder::Largest,
        _ => BrowseOrder::Newest,
    };
    let filter = AssetFilter {
        kind: query.kind.clone().filter(|k| !k.is_empty()),
        q: query.q.clone().filter(|q| !q.trim().is_empty()),
        sha256: None,
    };
    let after = query.after.clone().filter(|a| !a.is_empty());
    let list = assets::browse_assets(&ctx, filter, order, after, PER_PAGE).await?;
    let ids = list.items.iter().map(|a| a.id.clone()).collect();
    let standings = compliance::standings_of(&ctx, ids).await?;
    render(&FilesPage {
        l,
        query,
        list,
        standings,
        statuses: ComplianceStatus::ALL,
    })
}

/// Registers the files list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/files", web::get().to(list));
}

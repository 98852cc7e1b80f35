//! `/admin/audit`: the audit log, newest first, paged and filtered, and the verification of its
//! hash chain.

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use chrono::NaiveDate;

use crate::audit::{self, AuditEntryOut, AuditFilter, AuditQuery, VerifyReport};
use crate::service::ControlError;
use crate::service::domain_audit::BreakKind;

use super::super::{Button, ConsoleUser, Layout, Result, State, parse_form, render};
use super::opt;

/// The filters as typed (kept for the form and the pager's links).
#[derive(Debug, Default, Deserialize)]
struct Filters {
    action: Option<String>,
    object_type: Option<String>,
    object_id: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    l: Layout,
    action: String,
    object_type: String,
    object_id: String,
    actor: String,
    from: String,
    to: String,
    limit: i64,
    items: Vec<AuditEntryOut>,
    /// The query string of the next (older) page.
    older: Option<String>,
    /// Whether this is not the newest page.
    paged: bool,
    /// The query string of the newest page with these filters.
    newest: String,
}

impl AuditPage {
    /// The query string filtering by one field.
    fn link(&self, key: &str, value: &str) -> String {
        query_string(&[(key, value.to_string())])
    }
}

fn number(field: &str, v: Option<String>) -> crate::service::Result<Option<i64>> {
    opt(v)
        .map(|v| {
            v.parse()
                .map_err(|_| ControlError::invalid(field, format!("{v:?} is not a whole number")))
        })
        .transpose()
}

fn date(field: &str, v: &str) -> crate::service::Result<Option<NaiveDate>> {
    if v.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| ControlError::invalid(field, format!("{v:?} is not a date (YYYY-MM-DD)")))
}

/// `key=value&...` of the non-empty pairs (form-encoded).
fn query_string(pairs: &[(&str, String)]) -> String {
    serde_html_form::to_string(
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default()
}

async fn page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let f = web::Query::<Filters>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let text = |v: Option<String>| opt(v).unwrap_or_default();
    let (action, object_type, object_id, actor) = (
        text(f.action),
        text(f.object_type),
        text(f.object_id),
        text(f.actor),
    );
    let (from, to) = (text(f.from), text(f.to));
    let some = |s: &String| Some(s.clone()).filter(|s| !s.is_empty());
    let paged = opt(f.before.clone()).is_some();
    let q = number("before", f.before).and_then(|before| {
        Ok(AuditQuery {
            before,
            limit: number("limit", f.limit)?,
            action: some(&action),
            object_id: some(&object_id),
        })
    });
    let filter = (|| {
        Ok::<_, ControlError>(AuditFilter {
            object_type: some(&object_type),
            actor: some(&actor),
            from: date("from", &from)?.map(|d| d.and_time(chrono::NaiveTime::MIN)),
            // Up to and including the day.
            to: date("to", &to)?
                .and_then(|d| d.succ_opt())
                .map(|d| d.and_time(chrono::NaiveTime::MIN)),
        })
    })();
    let limit = q.as_ref().ok().and_then(|q| q.limit).unwrap_or(100);
    // The permission first (a viewer gets 403, not a complaint about a filter).
    ctx.require(crate::roles::Permission::ReadAudit)?;
    let p = audit::search_log(&ctx, q, filter?).await?;
    let filters = [
        ("action", action.clone()),
        ("object_type", object_type.clone()),
        ("object_id", object_id.clone()),
        ("actor", actor.clone()),
        ("from", from.clone()),
        ("to", to.clone()),
        ("limit", limit.to_string()),
    ];
    let older = p.next_before.map(|b| {
        let mut pairs = filters.to_vec();
        pairs.push(("before", b.to_string()));
        query_string(&pairs)
    });
    let newest = query_string(&filters);
    render(&AuditPage {
        l: Layout::new(&req, &user, &ctx, "audit"),
        newest,
        action,
        object_type,
        object_id,
        actor,
        from,
        to,
        limit,
        items: p.items,
        older,
        paged,
    })
}

#[derive(Template)]
#[template(path = "console/audit_verify.html")]
struct VerifyPage {
    l: Layout,
    r: VerifyReport,
}

impl VerifyPage {
    fn kind(&self, k: &BreakKind) -> &'static str {
        let a = &self.l.t.admin;
        match k {
            BreakKind::Edited => a.audit_verify_kind_edited,
            BreakKind::Reordered => a.audit_verify_kind_reordered,
            BreakKind::Removed => a.audit_verify_kind_removed,
        }
    }
}

async fn verify(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let r = audit::verify_chain(&ctx).await?;
    render(&VerifyPage {
        l: Layout::new(&req, &user, &ctx, "audit"),
        r,
    })
}

/// Registers the audit pages.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/audit", web::get().to(page))
        .route("/admin/audit/verify", web::post().to(verify));
}

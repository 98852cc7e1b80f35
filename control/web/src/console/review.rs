//! The review queue (`/admin/review`): faces with a suggestion (or identifiable faces nobody
//! recognised), newest first, each beside the suggested person's avatar and score, with
//! Approve / Reject / Another person / New person. The decisions are plain forms posted to
//! `/admin/faces/{id}/...` (shared with the file page, which sends `back` to come back to
//! itself); `static/review.js` sends them with fetch and removes the card in place, and adds
//! the keyboard shortcuts.

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::service::faces::{self, PersonRef};
use crate::service::persons::{self, NewPerson};
use crate::service::review::{self, QueueQuery, ReviewQueue};

use super::{ConsoleUser, Layout, Result, State, done, parse_form, render};

#[derive(Template)]
#[template(path = "console/review.html")]
struct ReviewPage {
    l: Layout,
    q: ReviewQueue,
}

impl ReviewPage {
    fn tab_is(&self, tab: &str) -> bool {
        self.q.tab.as_str() == tab
    }

    /// The link to the next page.
    fn next_href(&self, after: &str) -> String {
        let mut s = format!(
            "/admin/review?tab={}&after={}",
            self.q.tab.as_str(),
            urlencode(after)
        );
        if let Some(q) = &self.q.q {
            s.push_str("&q=");
            s.push_str(&urlencode(q));
        }
        s
    }

    /// Where a decision comes back to: this tab (with the person search), first page.
    fn back(&self) -> String {
        let mut s = format!("/admin/review?tab={}", self.q.tab.as_str());
        if let Some(q) = &self.q.q {
            s.push_str("&q=");
            s.push_str(&urlencode(q));
        }
        s
    }
}

/// Percent-encodes a query-string value.
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let q = web::Query::<QueueQuery>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| crate::service::ControlError::invalid("query", e.to_string()));
    let q = review::review_queue(&ctx, q).await?;
    render(&ReviewPage {
        l: Layout::new(&req, &user, &ctx, "review"),
        q,
    })
}

/// A decision's form: the person (approve, reject, link) and where to go back to.
#[derive(Debug, Deserialize)]
struct DecideForm {
    person_id: Option<String>,
    back: Option<String>,
}

/// "New person": the name; the person is registered, then the face linked to them.
#[derive(Debug, Deserialize)]
struct NewPersonForm {
    name: Option<String>,
    back: Option<String>,
}

/// A form with only `back`.
#[derive(Debug, Deserialize)]
struct BackForm {
    back: Option<String>,
}

/// Where to redirect after a decision: the console path the form named (the queue by
/// default), with a notice. Anything that is not a plain console path goes to the queue.
pub(crate) fn back_to(back: Option<&str>, notice: &str) -> String {
    let path = back
        .filter(|b| {
            b.starts_with("/admin/")
                && !b.contains("//")
                && !b.contains('\\')
                && !b.contains('#')
                && !b.chars().any(char::is_control)
        })
        .unwrap_or("/admin/review");
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}notice={notice}")
}

fn person_ref(person_id: Option<String>) -> crate::service::Result<PersonRef> {
    match person_id.map(|p| p.trim().to_string()) {
        Some(p) if !p.is_empty() => Ok(PersonRef { person_id: p }),
        _ => Err(crate::service::ControlError::invalid(
            "person_id",
            "choose a person",
        )),
    }
}

async fn approve(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: DecideForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    faces::confirm_face(&ctx, path.into_inner(), person_ref(f.person_id)).await?;
    Ok(done(&req, &back_to(f.back.as_deref(), "saved")))
}

async fn reject(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: DecideForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    faces::reject_face(&ctx, path.into_inner(), person_ref(f.person_id)).await?;
    Ok(done(&req, &back_to(f.back.as_deref(), "saved")))
}

async fn new_person(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: NewPersonForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let face_id = path.into_inner();
    // May they link the face? Then register the person.
    ctx.require(crate::roles::Permission::ManageAssets)?;
    ctx.require(crate::roles::Permission::SeePersons)?;
    let p = persons::create_person(
        &ctx,
        Ok(NewPerson {
            name: f.name.unwrap_or_default(),
            ..NewPerson::default()
        }),
    )
    .await?;
    faces::confirm_face(&ctx, face_id, Ok(PersonRef { person_id: p.id })).await?;
    Ok(done(&req, &back_to(f.back.as_deref(), "saved")))
}

async fn unlink(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: BackForm = parse_form(&user, &body)?;
    faces::unlink_face(&user.ctx(&state), path.into_inner()).await?;
    Ok(done(&req, &back_to(f.back.as_deref(), "saved")))
}

async fn delete(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: BackForm = parse_form(&user, &body)?;
    faces::delete_face(&user.ctx(&state), path.into_inner()).await?;
    Ok(done(&req, &back_to(f.back.as_deref(), "saved")))
}

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/review", web::get().to(page))
        .route("/admin/faces/{face_id}/approve", web::post().to(approve))
        .route("/admin/faces/{face_id}/link", web::post().to(approve))
        .route("/admin/faces/{face_id}/reject", web::post().to(reject))
        .route(
            "/admin/faces/{face_id}/new-person",
            web::post().to(new_person),
        )
        .route("/admin/faces/{face_id}/unlink", web::post().to(unlink))
        .route("/admin/faces/{face_id}/delete", web::post().to(delete));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::review::QueueTab;

    #[test]
    fn back_only_to_console_paths() {
        assert_eq!(
            back_to(Some("/admin/files/x"), "saved"),
            "/admin/files/x?notice=saved"
        );
        assert_eq!(
            back_to(Some("/admin/review?tab=unknown"), "saved"),
            "/admin/review?tab=unknown&notice=saved"
        );
        for bad in [
            "https://evil",
            "//evil",
            "/admin//evil",
            "/other",
            "/admin/\\x",
        ] {
            assert_eq!(back_to(Some(bad), "saved"), "/admin/review?notice=saved");
        }
        assert_eq!(urlencode("a b&c"), "a%20b%26c");
        assert_eq!(QueueTab::Suggested.as_str(), "suggested");
    }
}

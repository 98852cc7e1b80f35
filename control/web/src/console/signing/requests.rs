//! `/admin/requests`: signing requests (the list by status, a request with its messages'
//! delivery, resend, revoke) and sending them: from a person's page
//! (`POST /admin/persons/{id}/request`, also the renewal of an agreement that ends) and in bulk
//! from the register (`POST /admin/requests`).

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::roles::Permission;
use crate::service::outbox::{self, Channel, MessageOut, MessageStatus, OutboxFilter};
use crate::service::pagination::Page;
use crate::service::signing::{
    self, BulkOutcome, NewSigningRequests, Purpose, RequestFilter, RequestStatus, SigningRequestOut,
};
use crate::service::{ControlError, Ctx};

use super::super::strings::Signing;
use super::super::{
    Button, ConsoleError, ConsoleUser, Layout, Result, State, done, parse_form, render,
};

/// Requests per page of the list.
const PER_PAGE: i64 = 50;

/// The statuses the list filters by, in the order offered.
pub(super) const STATUSES: &[RequestStatus] = &[
    RequestStatus::Sent,
    RequestStatus::Opened,
    RequestStatus::Signed,
    RequestStatus::Expired,
    RequestStatus::Revoked,
    RequestStatus::Locked,
];

/// The name of a request's status.
pub fn status_label(t: &Signing, s: &RequestStatus) -> &'static str {
    match s {
        RequestStatus::Sent => t.status_sent,
        RequestStatus::Opened => t.status_opened,
        RequestStatus::Signed => t.status_signed,
        RequestStatus::Expired => t.status_expired,
        RequestStatus::Revoked => t.status_revoked,
        RequestStatus::Locked => t.status_locked,
    }
}

/// The name of a channel.
pub fn channel_label(t: &Signing, c: &Channel) -> &'static str {
    match c {
        Channel::Email => t.channel_email,
        Channel::Sms => t.channel_sms,
    }
}

/// The name of a purpose.
pub fn purpose_label(t: &Signing, p: &Purpose) -> &'static str {
    match p {
        Purpose::Sign => t.purpose_sign,
        Purpose::Renewal => t.purpose_renewal,
    }
}

/// The name of a message's delivery status.
pub fn message_status_label(t: &Signing, s: &MessageStatus) -> &'static str {
    match s {
        MessageStatus::Pending => t.msg_pending,
        MessageStatus::Sent => t.msg_sent,
        MessageStatus::Dead => t.msg_dead,
    }
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    person: Option<String>,
    page: Option<i64>,
}

#[derive(Template)]
#[template(path = "console/signing_requests.html")]
struct ListTpl {
    l: Layout,
    items: Vec<SigningRequestOut>,
    status: Option<RequestStatus>,
    person: Option<String>,
    page: i64,
    has_next: bool,
}

impl ListTpl {
    fn statuses(&self) -> &'static [RequestStatus] {
        STATUSES
    }

    fn status_label(&self, s: &RequestStatus) -> &'static str {
        status_label(&self.l.t.signing, s)
    }

    fn channel_label(&self, c: &Channel) -> &'static str {
        channel_label(&self.l.t.signing, c)
    }

    fn purpose_label(&self, p: &Purpose) -> &'static str {
        purpose_label(&self.l.t.signing, p)
    }

    fn is_status(&self, s: &RequestStatus) -> bool {
        self.status.as_ref() == Some(s)
    }

    /// The query string of the current filter, for the pager's links.
    fn filter_query(&self) -> String {
        let mut q = String::new();
        if let Some(s) = self.status {
            q.push_str("status=");
            q.push_str(s.as_str());
            q.push('&');
        }
        if let Some(p) = &self.person {
            q.push_str("person=");
            q.push_str(&urlencode(p));
            q.push('&');
        }
        q
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn list(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let p = web::Query::<ListParams>::from_query(req.query_string())
        .map_err(|e| ConsoleError::Form(e.to_string()))?
        .into_inner();
    let status = match p.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(RequestStatus::parse(s)?),
    };
    let person = p.person.filter(|s| !s.trim().is_empty());
    let page = p.page.unwrap_or(1).clamp(1, 1_000_000);
    let items = signing::list_requests(
        &ctx,
        RequestFilter {
            status,
            person_id: person.clone(),
            page: Page {
                page,
                per_page: PER_PAGE,
            },
        },
    )
    .await?;
    let has_next = items.len() as i64 >= PER_PAGE;
    render(&ListTpl {
        l: Layout::new(&req, &user, &ctx, "requests"),
        items,
        status,
        person,
        page,
        has_next,
    })
}

/// The fields of an "Ask for consent" form (a person's page, a renewal, or the register's
/// bulk form: `person_ids` repeated).
#[derive(Debug, Default, Deserialize)]
struct AskForm {
    #[serde(default)]
    person_ids: Vec<String>,
    #[serde(default)]
    template_id: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    asset_ids: Vec<String>,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    renews_agreement_id: String,
}

impl AskForm {
    fn new_requests(
        self,
        person_ids: Vec<String>,
    ) -> std::result::Result<NewSigningRequests, ControlError> {
        let template_id = self.template_id.trim().to_string();
        if template_id.is_empty() {
            return Err(ControlError::invalid(
                "template_id",
                "choose an agreement template",
            ));
        }
        let channel = match self.channel.trim() {
            "" => None,
            s => Some(Channel::parse(s)?),
        };
        let purpose = match self.purpose.trim() {
            "" | "sign" => Purpose::Sign,
            "renewal" => Purpose::Renewal,
            s => {
                return Err(ControlError::invalid(
                    "purpose",
                    format!("unknown purpose {s:?}"),
                ));
            }
        };
        Ok(NewSigningRequests {
            person_ids,
            template_id,
            channel,
            language: None,
            asset_ids: self
                .asset_ids
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            purpose,
            renews_agreement_id: Some(self.renews_agreement_id.trim().to_string())
                .filter(|s| !s.is_empty()),
        })
    }
}

/// The page after a bulk send with failures: what was sent and what was not, and why.
#[derive(Template)]
#[template(path = "console/signing_sent.html")]
struct SentTpl {
    l: Layout,
    outcome: BulkOutcome,
}

impl SentTpl {
    fn status_label(&self, s: &RequestStatus) -> &'static str {
        status_label(&self.l.t.signing, s)
    }

    fn channel_label(&self, c: &Channel) -> &'static str {
        channel_label(&self.l.t.signing, c)
    }
}

async fn bulk(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let mut f: AskForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageConsents)?;
    let ids: Vec<String> = std::mem::take(&mut f.person_ids)
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(ControlError::invalid("person_ids", "select at least one person").into());
    }
    let outcome = signing::create_requests(&ctx, f.new_requests(ids)?).await?;
    if outcome.failed.is_empty() {
        return Ok(done(&req, "/admin/requests?notice=requests_sent"));
    }
    render(&SentTpl {
        l: Layout::new(&req, &user, &ctx, "requests"),
        outcome,
    })
}

async fn ask_one(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: AskForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let person = path.into_inner();
    let outcome = signing::create_requests(&ctx, f.new_requests(vec![person.clone()])?).await?;
    if let Some(fail) = outcome.failed.into_iter().next() {
        return Err(failure(fail.code, fail.message).into());
    }
    Ok(done(
        &req,
        &format!("/admin/persons/{person}?notice=request_sent#signing-requests"),
    ))
}

/// A refused request of a bulk call as an error (the page names the problem).
fn failure(code: String, message: String) -> ControlError {
    match code.as_str() {
        "not_found" => ControlError::NotFound(message),
        "forbidden" => ControlError::Forbidden(message),
        _ => ControlError::invalid("request", message),
    }
}

#[derive(Template)]
#[template(path = "console/signing_request.html")]
struct RequestTpl {
    l: Layout,
    r: SigningRequestOut,
    messages: Vec<MessageOut>,
    can_manage: bool,
}

impl RequestTpl {
    fn status_label(&self, s: &RequestStatus) -> &'static str {
        status_label(&self.l.t.signing, s)
    }

    fn channel_label(&self, c: &Channel) -> &'static str {
        channel_label(&self.l.t.signing, c)
    }

    fn purpose_label(&self, p: &Purpose) -> &'static str {
        purpose_label(&self.l.t.signing, p)
    }

    fn message_status(&self, s: &MessageStatus) -> &'static str {
        message_status_label(&self.l.t.signing, s)
    }

    /// Whether the request is still open (its link may be sent again or revoked).
    fn open(&self) -> bool {
        !matches!(
            self.r.status,
            RequestStatus::Signed | RequestStatus::Revoked
        )
    }
}

/// The messages of an object, newest first (the outbox's own list, filtered).
async fn messages_of(ctx: &Ctx, related_id: &str) -> Result<Vec<MessageOut>> {
    Ok(outbox::list_messages(
        ctx,
        OutboxFilter {
            status: None,
            related_id: Some(related_id.to_string()),
            page: Page {
                page: 1,
                per_page: 100,
            },
        },
    )
    .await?)
}

async fn page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let r = signing::get_request(&ctx, path.into_inner()).await?;
    let can_manage = ctx.has(Permission::ManageConsents);
    let messages = if can_manage {
        messages_of(&ctx, &r.id).await?
    } else {
        Vec::new()
    };
    render(&RequestTpl {
        l: Layout::new(&req, &user, &ctx, "requests"),
        r,
        messages,
        can_manage,
    })
}

async fn resend(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let r = signing::resend_request(&user.ctx(&state), path.into_inner()).await?;
    Ok(done(
        &req,
        &format!("/admin/requests/{}?notice=request_resent", r.id),
    ))
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    reason: String,
}

async fn revoke(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: RevokeForm = parse_form(&user, &body)?;
    let r = signing::revoke_request(
        &user.ctx(&state),
        path.into_inner(),
        f.reason.trim().to_string(),
    )
    .await?;
    Ok(done(
        &req,
        &format!("/admin/requests/{}?notice=request_revoked", r.id),
    ))
}

/// Registers the requests pages and the forms that send requests.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/requests", web::get().to(list))
        .route("/admin/requests", web::post().to(bulk))
        .route("/admin/requests/{id}", web::get().to(page))
        .route("/admin/requests/{id}/resend", web::post().to(resend))
        .route("/admin/requests/{id}/revoke", web::post().to(revoke))
        .route("/admin/persons/{id}/request", web::post().to(ask_one));
}

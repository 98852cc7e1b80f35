//! `/admin/outbox`: the messages that failed for good (dead, with a retry button) and those
//! still waiting for delivery (with their last error, if any).

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::service::outbox::{self, Channel, MessageOut, MessageStatus, OutboxFilter};
use crate::service::pagination::Page;

use super::super::{Button, ConsoleUser, Layout, Result, State, done, parse_form, render};
use super::requests::channel_label;

/// Messages shown per list.
const SHOWN: i64 = 200;

#[derive(Template)]
#[template(path = "console/signing_outbox.html")]
struct OutboxTpl {
    l: Layout,
    dead: Vec<MessageOut>,
    pending: Vec<MessageOut>,
}

impl OutboxTpl {
    fn channel_label(&self, c: &Channel) -> &'static str {
        channel_label(&self.l.t.signing, c)
    }

    /// The console page of the object a message belongs to (signing requests only).
    fn related_link(&self, m: &MessageOut) -> Option<String> {
        let id = m.related_id.as_deref()?;
        let is_request = matches!(
            m.purpose.as_str(),
            "signing_request" | "code" | "receipt" | "withdrawal" | "withdrawal_code"
        ) || m.purpose.starts_with("signing");
        is_request.then(|| format!("/admin/requests/{id}"))
    }
}

async fn list_status(ctx: &crate::service::Ctx, status: MessageStatus) -> Result<Vec<MessageOut>> {
    Ok(outbox::list_messages(
        ctx,
        OutboxFilter {
            status: Some(status),
            related_id: None,
            page: Page {
                page: 1,
                per_page: SHOWN,
            },
        },
    )
    .await?)
}

async fn page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let dead = list_status(&ctx, MessageStatus::Dead).await?;
    let pending = list_status(&ctx, MessageStatus::Pending).await?;
    render(&OutboxTpl {
        l: Layout::new(&req, &user, &ctx, "outbox"),
        dead,
        pending,
    })
}

async fn retry(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    outbox::retry_message(&user.ctx(&state), path.into_inner()).await?;
    Ok(done(&req, "/admin/outbox?notice=message_retried"))
}

/// Registers the outbox page.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/outbox", web::get().to(page))
        .route("/admin/outbox/{id}/retry", web::post().to(retry));
}

//! (SIGNING) The outbox: every e-mail and SMS is written here in the transaction of the change
//! that causes it ([`enqueue`]), then delivered by a `deliver_message` job (SMTP or the SMS
//! gateway) with retries and backoff, and marked dead after `outbox.max_attempts`. The row's id
//! is the message id (the e-mail's `Message-ID`, the SMS gateway's reference): delivering one
//! message twice is refused by the row's state.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Deps;
use crate::db::DbConn;
use crate::error::{ControlError, Result};

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// E-mail through SMTP.
    Email,
    /// SMS through the HTTP gateway.
    Sms,
}

impl Channel {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// E-mail or SMS.
    pub channel: Channel,
    /// The address (e-mail) or phone number (E.164).
    pub to: String,
    /// Subject (e-mail only).
    pub subject: Option<String>,
    /// Plain-text body (the SMS text).
    pub text: String,
    /// HTML body (e-mail only, optional).
    pub html: Option<String>,
    /// What it is for (e.g. `signing_request`, `code`, `receipt`, `withdrawal`).
    pub purpose: String,
    /// The object it belongs to (e.g. the signing request's id).
    pub related_id: Option<String>,
    /// The body holds a secret (a one-time code): it is blanked once delivered.
    pub secret: bool,
}

/// Writes `msg` to the outbox and queues its delivery, in the caller's transaction; returns
/// the message id.
pub fn enqueue(
    conn: &mut DbConn,
    tenant_id: &str,
    msg: OutgoingMessage,
    now: NaiveDateTime,
) -> Result<String> {
    let _ = (conn, tenant_id, msg, now);
    Err(ControlError::Internal(
        "outbox::enqueue: not built yet".into(),
    ))
}

/// Delivers one message (the `deliver_message` job).
pub async fn deliver(deps: &Deps, tenant_id: &str, message_id: &str) -> Result<()> {
    let _ = (deps, tenant_id, message_id);
    Err(ControlError::Internal(
        "outbox::deliver: not built yet".into(),
    ))
}

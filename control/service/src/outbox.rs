//! (SIGNING) The outbox: every e-mail and SMS is written here in the transaction of the change
//! that causes it ([`enqueue`]), then delivered by a `deliver_message` job (SMTP or the SMS
//! gateway) with retries and backoff, and marked dead after `outbox.max_attempts`. The row's id
//! is the message id (the e-mail's `Message-ID`, the SMS gateway's reference): delivering one
//! message twice is refused by the row's state.
//!
//! Delivery is at least once: a process that dies between the server's acceptance and the
//! row's update sends the message again on the job's next run, with the same `Message-ID`
//! (`<{id}@likeness>`) and SMS reference, so a receiver can tell the copy. Message bodies are
//! never logged; a message holding a secret (a one-time code) has its body blanked once
//! delivered.
//!
//! Configuration: `[mail]` (`smtp_url`: `smtp://host:port` plain, `smtp://host:587?tls=required`
//! STARTTLS, `smtps://user:pass@host:465` TLS), `[sms]` (gateway URL, method, authorization,
//! content type and body template), `[outbox] max_attempts`. A channel that is not configured
//! keeps its messages pending (the job retries with the job system's backoff) without counting
//! attempts.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Deps;
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::pagination::Page;
use crate::roles::Permission;
use crate::schema::outbox;

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

    /// The channel of a stored form.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "email" => Ok(Channel::Email),
            "sms" => Ok(Channel::Sms),
            other => Err(ControlError::Internal(format!(
                "outbox: unknown channel {other:?}"
            ))),
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

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting for (another) delivery attempt.
    Pending,
    /// Accepted by the SMTP server or the SMS gateway.
    Sent,
    /// Given up after `outbox.max_attempts` attempts (or refused for good); retried only by hand.
    Dead,
}

impl MessageStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Sent => "sent",
            MessageStatus::Dead => "dead",
        }
    }

    /// The status of a stored form.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(MessageStatus::Pending),
            "sent" => Ok(MessageStatus::Sent),
            "dead" => Ok(MessageStatus::Dead),
            other => Err(ControlError::Internal(format!(
                "outbox: unknown status {other:?}"
            ))),
        }
    }
}

/// A message as shown to staff: no body, the destination masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageOut {
    /// The message id (also its `Message-ID` / SMS reference).
    pub id: String,
    /// E-mail or SMS.
    pub channel: Channel,
    /// The destination, masked (`j***@example.org`, `+46*****12`).
    pub destination: String,
    /// Subject (e-mail).
    pub subject: Option<String>,
    /// What it is for (`signing_request`, `code`, `receipt`, ...).
    pub purpose: String,
    /// The object it belongs to (e.g. a signing request).
    pub related_id: Option<String>,
    /// Pending, sent or dead.
    pub status: MessageStatus,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// When the next attempt is due (pending messages).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub next_attempt_at: NaiveDateTime,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When the server or gateway accepted it.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub sent_at: Option<NaiveDateTime>,
    /// Written.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
    /// Last changed.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: NaiveDateTime,
}

/// Which messages to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxFilter {
    /// Only this status.
    pub status: Option<MessageStatus>,
    /// Only the messages of this object (e.g. a signing request).
    pub related_id: Option<String>,
    /// The page.
    pub page: Page,
}

/// Query parameters of `GET /api/v1/outbox`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Only this status (`pending`, `sent`, `dead`).
    pub status: Option<MessageStatus>,
    /// Only the messages of this object (e.g. a signing request's id).
    pub related_id: Option<String>,
    /// Page number, from 1 (default 1).
    pub page: Option<i64>,
    /// Items per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
}

impl OutboxQuery {
    /// The validated filter.
    pub fn filter(self) -> Result<OutboxFilter> {
        let page = crate::pagination::PageQuery {
            page: self.page,
            per_page: self.per_page,
            sort: None,
        }
        .page()?;
        Ok(OutboxFilter {
            status: self.status,
            related_id: self.related_id.filter(|s| !s.is_empty()),
            page,
        })
    }
}

/// An outbox row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
struct Row {
    id: String,
    tenant_id: String,
    person_id: Option<String>,
    channel: String,
    destination: String,
    subject: Option<String>,
    body_text: String,
    body_html: Option<String>,
    purpose: String,
    related_id: Option<String>,
    status: String,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    last_error: Option<String>,
    sent_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    secret: bool,
}

/// What staff see of a message about a person who was erased since.
pub const ERASED_PLACEHOLDER: &str = "(erased person)";

impl Row {
    /// The row with its destination, subject and bodies opened when they are sealed under the
    /// person's key (a message about a person); `true` when that person was erased since (the
    /// fields then hold [`ERASED_PLACEHOLDER`] / nothing).
    fn opened(mut self) -> Result<(Self, bool)> {
        let Some(person) = self.person_id.clone() else {
            return Ok((self, false));
        };
        let t = self.tenant_id.clone();
        let vault = crate::vault::ambient(&t, &person)?;
        let open = |s: &str| -> Result<Option<String>> {
            if !crate::vault::Vault::is_sealed_text(s) {
                return Ok(Some(s.to_string()));
            }
            match vault.open_text(&t, &person, s) {
                Ok(x) => Ok(Some(x)),
                Err(ControlError::Gone { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let Some(destination) = open(&self.destination)? else {
            self.destination = ERASED_PLACEHOLDER.into();
            self.subject = self.subject.map(|_| ERASED_PLACEHOLDER.into());
            self.body_text = String::new();
            self.body_html = None;
            return Ok((self, true));
        };
        self.destination = destination;
        self.subject = match self.subject.as_deref() {
            Some(s) => open(s)?,
            None => None,
        };
        self.body_text = open(&self.body_text)?.unwrap_or_default();
        self.body_html = match self.body_html.as_deref() {
            Some(s) => open(s)?,
            None => None,
        };
        Ok((self, false))
    }

    fn out(self) -> Result<MessageOut> {
        let (row, erased) = self.opened()?;
        let channel = Channel::parse(&row.channel)?;
        let s = row;
        Ok(MessageOut {
            destination: if erased {
                ERASED_PLACEHOLDER.to_string()
            } else {
                mask_destination(channel, &s.destination)
            },
            id: s.id,
            channel,
            subject: s.subject,
            purpose: s.purpose,
            related_id: s.related_id,
            status: MessageStatus::parse(&s.status)?,
            attempts: s.attempts,
            next_attempt_at: s.next_attempt_at,
            last_error: s.last_error,
            sent_at: s.sent_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        })
    }
}

/// A destination masked for display: `j***@example.org` (first letter of the local part),
/// `+46*****12` (country prefix and last two digits kept).
pub fn mask_destination(channel: Channel, to: &str) -> String {
    match channel {
        Channel::Email => match to.rsplit_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".into(),
        },
        Channel::Sms => {
            let chars: Vec<char> = to.chars().collect();
            if chars.len() <= 5 {
                return "*".repeat(chars.len());
            }
            let head = if chars.first() == Some(&'+') { 3 } else { 1 };
            let tail = 2;
            let mut s: String = chars[..head].iter().collect();
            s.push_str(&"*".repeat(chars.len() - head - tail));
            s.extend(&chars[chars.len() - tail..]);
            s
        }
    }
}

/// Writes `msg` to the outbox and queues its delivery, in the caller's transaction; returns
/// the message id.
pub fn enqueue(
    conn: &mut DbConn,
    tenant_id: &str,
    msg: OutgoingMessage,
    now: NaiveDateTime,
) -> Result<String> {
    enqueue_inner(conn, tenant_id, None, msg, now)
}

/// [`enqueue`] for a message about a person (a signing link, a code, a receipt): its
/// destination, subject and bodies are sealed under the person's key (the vault), so that
/// erasing the person makes every copy unreadable; `outbox.person_id` names them.
pub fn enqueue_about(
    conn: &mut DbConn,
    tenant_id: &str,
    person_id: &str,
    msg: OutgoingMessage,
    now: NaiveDateTime,
) -> Result<String> {
    enqueue_inner(conn, tenant_id, Some(person_id), msg, now)
}

fn enqueue_inner(
    conn: &mut DbConn,
    tenant_id: &str,
    person_id: Option<&str>,
    msg: OutgoingMessage,
    now: NaiveDateTime,
) -> Result<String> {
    let to = msg.to.trim().to_string();
    if to.is_empty() {
        return Err(ControlError::invalid("to", "a message needs a destination"));
    }
    let id = db::new_id();
    let (subject, html) = match msg.channel {
        Channel::Email => (msg.subject, msg.html),
        Channel::Sms => (None, None),
    };
    let (to, subject, text, html) = match person_id {
        None => (to, subject, msg.text, html),
        Some(p) => {
            let v = crate::vault::ambient(tenant_id, p)?;
            let seal = |x: &str| v.seal_text(tenant_id, p, x);
            (
                seal(&to)?,
                subject.as_deref().map(seal).transpose()?,
                seal(&msg.text)?,
                html.as_deref().map(seal).transpose()?,
            )
        }
    };
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(&id),
            outbox::tenant_id.eq(tenant_id),
            outbox::person_id.eq(person_id),
            outbox::channel.eq(msg.channel.as_str()),
            outbox::destination.eq(&to),
            outbox::subject.eq(subject),
            outbox::body_text.eq(text),
            outbox::body_html.eq(html),
            outbox::purpose.eq(msg.purpose),
            outbox::related_id.eq(msg.related_id),
            outbox::status.eq(MessageStatus::Pending.as_str()),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(now),
            outbox::created_at.eq(now),
            outbox::updated_at.eq(now),
            outbox::secret.eq(msg.secret),
        ))
        .execute(conn)?;
    crate::jobs::enqueue_job_now(
        conn,
        tenant_id,
        &crate::job_kinds::DeliverMessage {
            message_id: id.clone(),
        },
        now,
    )?;
    Ok(id)
}

fn load(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<Option<Row>> {
    Ok(outbox::table
        .filter(outbox::tenant_id.eq(tenant_id))
        .filter(outbox::id.eq(id))
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// Why one attempt failed.
enum Failure {
    /// The channel is not configured: the message waits, no attempt counted.
    NotConfigured(String),
    /// Worth trying again (server down, timeout, 5xx, ...).
    Transient(String),
    /// Will never succeed (a malformed address): dead at once.
    Permanent(String),
}

/// Delivers one message (the `deliver_message` job).
pub async fn deliver(deps: &Deps, tenant_id: &str, message_id: &str) -> Result<()> {
    let (t, id) = (tenant_id.to_string(), message_id.to_string());
    let row = db::run(&deps.pool, move |c| load(c, &t, &id)).await?;
    let Some(row) = row else {
        tracing::warn!(message = %message_id, "outbox: message to deliver not found");
        return Ok(());
    };
    if row.status != MessageStatus::Pending.as_str() {
        // Sent or dead already: idempotent on the message id.
        return Ok(());
    }
    if row.person_id.is_some() {
        deps.vault()?;
    }
    let (row, erased) = row.opened()?;
    if erased {
        // The person was erased since: nobody can (or may) read the message any more.
        let now = deps.clock.now();
        record_failure(
            deps,
            tenant_id,
            message_id,
            "the person was erased",
            true,
            now,
        )
        .await?;
        return Ok(());
    }
    let channel = Channel::parse(&row.channel)?;
    let attempt = match channel {
        Channel::Email => send_mail(deps, &row).await,
        Channel::Sms => send_sms(deps, &row).await,
    };
    let now = deps.clock.now();
    let max_attempts = deps.config.outbox.max_attempts.max(1);
    let (t, id) = (tenant_id.to_string(), message_id.to_string());
    match attempt {
        Ok(()) => {
            let secret = row.secret;
            db::run(&deps.pool, move |c| mark_sent(c, &t, &id, secret, now)).await?;
            tracing::info!(message = %message_id, channel = channel.as_str(), purpose = %row.purpose, "outbox: message delivered");
            Ok(())
        }
        Err(Failure::NotConfigured(why)) => {
            let w = why.clone();
            db::run(&deps.pool, move |c| {
                diesel::update(
                    outbox::table
                        .filter(outbox::tenant_id.eq(&t))
                        .filter(outbox::id.eq(&id))
                        .filter(outbox::status.eq(MessageStatus::Pending.as_str())),
                )
                .set((outbox::last_error.eq(&w), outbox::updated_at.eq(now)))
                .execute(c)
                .map_err(ControlError::from)
            })
            .await?;
            Err(ControlError::Unavailable {
                code: "outbox_not_configured",
                message: why,
            })
        }
        Err(Failure::Permanent(why)) => {
            record_failure(deps, tenant_id, message_id, &why, true, now).await?;
            tracing::warn!(message = %message_id, error = %why, "outbox: message refused for good (dead)");
            Ok(())
        }
        Err(Failure::Transient(why)) => {
            let attempts = row.attempts.saturating_add(1);
            let dead = attempts >= max_attempts;
            record_failure(deps, tenant_id, message_id, &why, dead, now).await?;
            if dead {
                tracing::warn!(message = %message_id, attempts, error = %why, "outbox: message dead after its last attempt");
                Ok(())
            } else {
                Err(ControlError::Unavailable {
                    code: "delivery_failed",
                    message: format!("delivery of message {message_id} failed: {why}"),
                })
            }
        }
    }
}

fn mark_sent(
    c: &mut DbConn,
    tenant_id: &str,
    id: &str,
    secret: bool,
    now: NaiveDateTime,
) -> Result<()> {
    let target = outbox::table
        .filter(outbox::tenant_id.eq(tenant_id))
        .filter(outbox::id.eq(id))
        .filter(outbox::status.eq(MessageStatus::Pending.as_str()));
    let set = (
        outbox::status.eq(MessageStatus::Sent.as_str()),
        outbox::attempts.eq(outbox::attempts + 1),
        outbox::sent_at.eq(Some(now)),
        outbox::last_error.eq(None::<String>),
        outbox::updated_at.eq(now),
    );
    if secret {
        diesel::update(target)
            .set((
                set,
                outbox::body_text.eq(""),
                outbox::body_html.eq(None::<String>),
            ))
            .execute(c)?;
    } else {
        diesel::update(target).set(set).execute(c)?;
    }
    Ok(())
}

async fn record_failure(
    deps: &Deps,
    tenant_id: &str,
    id: &str,
    why: &str,
    dead: bool,
    now: NaiveDateTime,
) -> Result<()> {
    let settings = crate::jobs::settings(deps)?;
    let (t, id, why) = (tenant_id.to_string(), id.to_string(), truncate(why, 1000));
    db::run(&deps.pool, move |c| {
        let attempts: i32 = outbox::table
            .filter(outbox::tenant_id.eq(&t))
            .filter(outbox::id.eq(&id))
            .select(outbox::attempts)
            .first(c)?;
        let attempts = attempts.saturating_add(1);
        let next = now
            + chrono::TimeDelta::from_std(crate::jobs::backoff(&settings, attempts))
                .unwrap_or(chrono::TimeDelta::seconds(60));
        let status = if dead {
            MessageStatus::Dead
        } else {
            MessageStatus::Pending
        };
        diesel::update(
            outbox::table
                .filter(outbox::tenant_id.eq(&t))
                .filter(outbox::id.eq(&id))
                .filter(outbox::status.eq(MessageStatus::Pending.as_str())),
        )
        .set((
            outbox::status.eq(status.as_str()),
            outbox::attempts.eq(attempts),
            outbox::last_error.eq(Some(why)),
            outbox::next_attempt_at.eq(next),
            outbox::updated_at.eq(now),
        ))
        .execute(c)?;
        Ok(())
    })
    .await
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Built SMTP transports by URL and timeout.
type Transports = HashMap<(String, u64), AsyncSmtpTransport<Tokio1Executor>>;

/// SMTP transports by URL (building one for TLS loads the system's certificates: done once).
fn transport(url: &str, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    static CACHE: OnceLock<Mutex<Transports>> = OnceLock::new();
    let key = (url.to_string(), timeout.as_millis() as u64);
    let cache = CACHE.get_or_init(Default::default);
    if let Ok(map) = cache.lock()
        && let Some(t) = map.get(&key)
    {
        return Ok(t.clone());
    }
    let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| {
            ControlError::Internal(format!(
                "[mail] smtp_url {:?} is not usable: {e}",
                db::redact_url(url)
            ))
        })?
        .timeout(Some(timeout))
        .build();
    if let Ok(mut map) = cache.lock() {
        map.insert(key, t.clone());
    }
    Ok(t)
}

async fn send_mail(deps: &Deps, row: &Row) -> std::result::Result<(), Failure> {
    let cfg = &deps.config.mail;
    if cfg.smtp_url.trim().is_empty() {
        return Err(Failure::NotConfigured("mail not configured".into()));
    }
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| Failure::NotConfigured(format!("[mail] from is not an address: {e}")))?;
    let to: Mailbox = row
        .destination
        .parse()
        .map_err(|e| Failure::Permanent(format!("not an e-mail address: {e}")))?;
    let builder = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(row.subject.clone().unwrap_or_default())
        .message_id(Some(format!("<{}@likeness>", row.id)))
        .date_now();
    let built = match &row.body_html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            row.body_text.clone(),
            html.clone(),
        )),
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(row.body_text.clone()),
    };
    let message = built.map_err(|e| Failure::Permanent(format!("cannot build the e-mail: {e}")))?;
    let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
    if let Some(addr) = plain_smtp_addr(&cfg.smtp_url) {
        return send_plain(&addr, timeout, &message)
            .await
            .map_err(|e| Failure::Transient(format!("SMTP: {e}")));
    }
    let transport =
        transport(&cfg.smtp_url, timeout).map_err(|e| Failure::NotConfigured(e.to_string()))?;
    match transport.send(message).await {
        Ok(_) => Ok(()),
        // A permanent answer (5xx) may come from a configuration being fixed (credentials):
        // it counts as an attempt like any other, and the message dies after the last one.
        Err(e) => Err(Failure::Transient(format!("SMTP: {e}"))),
    }
}

/// `host:port` of a plain `smtp://host[:port]` URL (no credentials, no `tls` parameter), the
/// local relay case, which [`send_plain`] serves; `None` for every other URL (lettre's transport).
fn plain_smtp_addr(url: &str) -> Option<String> {
    let rest = url.trim().strip_prefix("smtp://")?;
    if rest.contains(['@', '?', '#']) {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    Some(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:25")
    })
}

/// Sends `message` over plain SMTP on a connection of its own with `TCP_NODELAY`: lettre writes
/// a message's body and its final `.` separately and then waits for the answer, which Nagle's
/// algorithm and the server's delayed acknowledgement turn into a ~40 ms pause per message on a
/// socket without it. The whole exchange is bounded by `timeout`.
async fn send_plain(
    addr: &str,
    timeout: Duration,
    message: &lettre::Message,
) -> std::result::Result<(), String> {
    use lettre::transport::smtp::client::AsyncSmtpConnection;
    use lettre::transport::smtp::extension::ClientId;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut conn =
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &ClientId::default())
                .await
                .map_err(|e| e.to_string())?;
        let sent = conn
            .send(message.envelope(), &message.formatted())
            .await
            .map_err(|e| e.to_string());
        let _ = conn.quit().await;
        sent.map(|_| ())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer from {addr} within {} ms", timeout.as_millis()))?
}

/// One HTTP client for every gateway call (its connection pool is shared).
fn http_client() -> std::result::Result<reqwest::Client, Failure> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let c = reqwest::Client::builder()
        .build()
        .map_err(|e| Failure::NotConfigured(format!("HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| c).clone())
}

async fn send_sms(deps: &Deps, row: &Row) -> std::result::Result<(), Failure> {
    let cfg = &deps.config.sms;
    if cfg.url.trim().is_empty() {
        return Err(Failure::NotConfigured("sms not configured".into()));
    }
    let method = reqwest::Method::from_bytes(cfg.method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| {
            Failure::NotConfigured(format!("[sms] method {:?} is not valid", cfg.method))
        })?;
    let body = sms_body(
        &cfg.body_template,
        &cfg.content_type,
        &[
            ("to", &row.destination),
            ("from", &cfg.from),
            ("text", &row.body_text),
            ("message_id", &row.id),
        ],
    );
    let mut req = http_client()?
        .request(method, cfg.url.trim())
        .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
        .header(reqwest::header::CONTENT_TYPE, cfg.content_type.as_str())
        .body(body);
    if !cfg.authorization.is_empty() {
        req = req.header(reqwest::header::AUTHORIZATION, cfg.authorization.as_str());
    }
    let resp = req
        .send()
        .await
        // The error names the URL, never the body.
        .map_err(|e| Failure::Transient(format!("SMS gateway: {}", e.without_url())))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure::Transient(format!("SMS gateway answered {status}")))
    }
}

/// The SMS gateway's body: `template` with each `{name}` of `values` replaced in one pass
/// (a value is never searched for placeholders again), escaped for `content_type` (JSON string
/// content for JSON types, form encoding for `application/x-www-form-urlencoded`, as is
/// otherwise). Unknown `{...}` are kept.
pub fn sms_body(template: &str, content_type: &str, values: &[(&str, &str)]) -> String {
    let ct = content_type.to_ascii_lowercase();
    let escape = |v: &str| -> String {
        if ct.contains("json") {
            let quoted = serde_json::to_string(v).unwrap_or_default();
            quoted
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or_default()
                .to_string()
        } else if ct.contains("x-www-form-urlencoded") {
            form_encode(v)
        } else {
            v.to_string()
        }
    };
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let hit = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (close, *v))
        });
        match hit {
            Some((close, v)) => {
                out.push_str(&escape(v));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Every message in the outbox, oldest first, with its destination and plain-text body opened
/// (messages about a person are sealed under their key; an erased person's read as
/// [`ERASED_PLACEHOLDER`] and an empty body): `(destination, body_text)`. For operators'
/// diagnostics and tests; no permission check (a building block, like the other sync
/// functions).
pub fn opened_messages(conn: &mut DbConn) -> Result<Vec<(String, String)>> {
    outbox::table
        .order((outbox::created_at.asc(), outbox::id.asc()))
        .select(Row::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| r.opened().map(|(r, _)| (r.destination, r.body_text)))
        .collect()
}

/// The messages of one object (e.g. a signing request), newest first (for the flow's own
/// pages; the caller checks permissions).
pub fn messages_for(
    conn: &mut DbConn,
    tenant_id: &str,
    related_id: &str,
) -> Result<Vec<MessageOut>> {
    outbox::table
        .filter(outbox::tenant_id.eq(tenant_id))
        .filter(outbox::related_id.eq(related_id))
        .order((outbox::created_at.desc(), outbox::id.desc()))
        .select(Row::as_select())
        .load(conn)?
        .into_iter()
        .map(Row::out)
        .collect()
}

/// The tenant's messages, newest first (filter by status and object). Needs `manage_consents`.
pub async fn list_messages(ctx: &Ctx, filter: OutboxFilter) -> Result<Vec<MessageOut>> {
    ctx.require(Permission::ManageConsents)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| {
        let mut q = outbox::table
            .filter(outbox::tenant_id.eq(t))
            .select(Row::as_select())
            .into_boxed();
        if let Some(s) = filter.status {
            q = q.filter(outbox::status.eq(s.as_str()));
        }
        if let Some(r) = filter.related_id {
            q = q.filter(outbox::related_id.eq(r));
        }
        q.order((outbox::created_at.desc(), outbox::id.desc()))
            .limit(filter.page.per_page)
            .offset(filter.page.offset())
            .load(c)?
            .into_iter()
            .map(Row::out)
            .collect()
    })
    .await
}

/// [`list_messages`] from the query string of `GET /api/v1/outbox` (the permission is checked
/// before the query is looked at).
pub async fn list_messages_query(ctx: &Ctx, q: Result<OutboxQuery>) -> Result<Vec<MessageOut>> {
    ctx.require(Permission::ManageConsents)?;
    list_messages(ctx, q?.filter()?).await
}

/// One message (404 when not the tenant's). Needs `manage_consents`.
pub async fn get_message(ctx: &Ctx, id: String) -> Result<MessageOut> {
    ctx.require(Permission::ManageConsents)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| {
        load(c, &t, &id)?
            .ok_or_else(|| ControlError::not_found("message"))?
            .out()
    })
    .await
}

/// Puts a dead message back in the queue with fresh attempts (audited `outbox.retry`); a sent
/// message answers 409 `message_sent`, a pending one 409 `message_pending`. Needs
/// `manage_consents`.
pub async fn retry_message(ctx: &Ctx, id: String) -> Result<MessageOut> {
    ctx.require(Permission::ManageConsents)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let row = load(c, &t, &id)?.ok_or_else(|| ControlError::not_found("message"))?;
            match MessageStatus::parse(&row.status)? {
                MessageStatus::Sent => {
                    return Err(ControlError::Conflict {
                        code: "message_sent",
                        message: "the message was sent already".into(),
                    });
                }
                MessageStatus::Pending => {
                    return Err(ControlError::Conflict {
                        code: "message_pending",
                        message: "the message is waiting for delivery already".into(),
                    });
                }
                MessageStatus::Dead => {}
            }
            diesel::update(
                outbox::table
                    .filter(outbox::tenant_id.eq(&t))
                    .filter(outbox::id.eq(&id)),
            )
            .set((
                outbox::status.eq(MessageStatus::Pending.as_str()),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(now),
                outbox::updated_at.eq(now),
            ))
            .execute(c)?;
            crate::jobs::enqueue_job_now(
                c,
                &t,
                &crate::job_kinds::DeliverMessage {
                    message_id: id.clone(),
                },
                now,
            )?;
            crate::audit::record(
                c,
                &who,
                "outbox.retry",
                "message",
                Some(&id),
                serde_json::json!({
                    "channel": row.channel,
                    "purpose": row.purpose,
                    "attempts": row.attempts,
                }),
            )?;
            load(c, &t, &id)?
                .ok_or_else(|| ControlError::not_found("message"))?
                .out()
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_masked() {
        assert_eq!(
            mask_destination(Channel::Email, "jane@example.org"),
            "j***@example.org"
        );
        assert_eq!(
            mask_destination(Channel::Sms, "+46701234512"),
            "+46*******12"
        );
        assert_eq!(mask_destination(Channel::Sms, "0701234512"), "0*******12");
        assert_eq!(mask_destination(Channel::Email, "nope"), "***");
    }

    #[test]
    fn plain_smtp_urls_take_the_direct_path() {
        assert_eq!(
            plain_smtp_addr("smtp://127.0.0.1:2525").as_deref(),
            Some("127.0.0.1:2525")
        );
        assert_eq!(
            plain_smtp_addr("smtp://relay.local").as_deref(),
            Some("relay.local:25")
        );
        assert_eq!(
            plain_smtp_addr("smtp://[::1]:25/").as_deref(),
            Some("[::1]:25")
        );
        assert_eq!(plain_smtp_addr("smtp://h:587?tls=required"), None);
        assert_eq!(plain_smtp_addr("smtp://u:p@h:25"), None);
        assert_eq!(plain_smtp_addr("smtps://h"), None);
        assert_eq!(plain_smtp_addr(""), None);
    }

    #[test]
    fn sms_bodies_are_escaped_for_their_type() {
        let v = [
            ("to", "+4670"),
            ("text", "Say \"hi\" & {to}\n"),
            ("message_id", "m1"),
        ];
        assert_eq!(
            sms_body(
                r#"{"to":"{to}","text":"{text}","x":"{y}"}"#,
                "application/json",
                &v
            ),
            r#"{"to":"+4670","text":"Say \"hi\" & {to}\n","x":"{y}"}"#
        );
        assert_eq!(
            sms_body(
                "to={to}&text={text}&ref={message_id}",
                "application/x-www-form-urlencoded",
                &v
            ),
            "to=%2B4670&text=Say+%22hi%22+%26+%7Bto%7D%0A&ref=m1"
        );
        assert_eq!(sms_body("{text}", "text/plain", &v), "Say \"hi\" & {to}\n");
    }
}

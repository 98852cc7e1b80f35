//! (PUBLISHING) Webhooks to CMSs, signed as the Standard Webhooks specification does
//! (<https://www.standardwebhooks.com/>): any receiver verifies them with that specification's
//! libraries (`standardwebhooks` on PyPI, npm, ...).
//!
//! - Endpoints: per tenant, a URL (http or https, no credentials in it), a description, the
//!   event types wanted (a subset of [`crate::events::KINDS`]; none = all), a secret
//!   `whsec_<base64 of 32 random bytes>` (shown on creation, on rotation and on a reveal),
//!   enabled or disabled (with the reason), and the count of consecutive failures.
//! - Outbox: [`fan_out`] writes one `webhook_deliveries` row per enabled, subscribed endpoint in
//!   the transaction that records the event ([`crate::events::record`]): an event is queued if
//!   and only if its change committed. The body is the Standard Webhooks payload
//!   `{"type", "timestamp", "data"}`; `data` is the event's payload plus `tenant` (the slug)
//!   and `subject` (`{"type", "id"}`, e.g. the agreement of a `consent.withdrawn`).
//!   The message id (`webhook-id`) is `msg_<event id>`: the same on every attempt, so receivers
//!   de-duplicate on it (delivery is at least once).
//! - Order: deliveries of one endpoint and ordering key (the event's subject: a file, an
//!   agreement, a person) go out one at a time in `seq` order; a failing delivery holds back the
//!   later ones of its key until it is delivered or dead. Different keys do not wait for each
//!   other.
//! - Dispatch ([`spawn`]; [`deliver_due`] is one round, for tests): every `[webhooks] poll_ms`,
//!   and at once when this process queued a delivery, the due head of each key is claimed with
//!   a conditional `UPDATE` (status `sending`, `next_attempt_at` = the lease's end), so several
//!   processes on one database never send the same delivery at once; a claim whose process died
//!   is taken again when its lease ends. A POST carries `webhook-id`, `webhook-timestamp` (unix
//!   seconds, the wall clock: receivers reject stale ones) and `webhook-signature: v1,<base64
//!   HMAC-SHA256 of "{id}.{timestamp}.{body}">`. A 2xx answer delivers; anything else is retried
//!   with exponential backoff (5 s doubling, at most 1 h, ±10 % jitter) until `max_attempts`,
//!   then the delivery is `dead` (kept, redelivered by hand) and the next of its key proceeds.
//!   Every attempt is logged (`webhook_attempts`: status code, duration, error, the first KiB
//!   of the answer).
//! - A failing endpoint: a failed attempt also opens the endpoint's own backoff
//!   (`retry_after`, the same schedule on its count of consecutive failures): none of its
//!   deliveries is tried before it ends, so a receiver that is down gets one round of requests
//!   per interval, not one per file; failures of requests already in flight when it opened do
//!   not count again. `disable_after_failures` consecutive failures disable the endpoint (the
//!   reason is kept; its deliveries wait, and proceed when it is enabled again). With the
//!   defaults (100, intervals growing to 1 h) that is after about four days of failing.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore};
use utoipa::{IntoParams, ToSchema};

use crate::Deps;
use crate::audit::{self, Who};
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::pagination::{PageQuery, Paginated};
use crate::roles::Permission;
use crate::schema::{
    tenants, webhook_attempts as wa, webhook_deliveries as wd, webhook_endpoints as we,
};

/// The event type of a test delivery (sent to one endpoint only, whatever it subscribed to).
pub const TEST_EVENT: &str = "webhook.test";
/// The `User-Agent` of every request.
pub const USER_AGENT: &str = "Likeness-Webhooks/1";
/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2000;
/// The longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Bytes of an answer kept in the attempt log.
pub const EXCERPT_BYTES: usize = 1024;
/// The first retry's delay; each further one doubles, up to [`MAX_BACKOFF_SECS`].
pub const FIRST_BACKOFF_SECS: i64 = 5;
/// The longest delay between two attempts.
pub const MAX_BACKOFF_SECS: i64 = 3600;
/// How long a claim holds beyond the request timeout before another process may take it.
const LEASE_MARGIN_SECS: i64 = 60;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt, or for the earlier deliveries of its key.
    Pending,
    /// Claimed by a dispatcher: a request is in flight.
    Sending,
    /// Answered with a 2xx.
    Delivered,
    /// Failed `max_attempts` times: kept, redelivered only by hand.
    Dead,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: &'static [DeliveryStatus] =
        &[Self::Pending, Self::Sending, Self::Delivered, Self::Dead];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// The status of a stored name.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                ControlError::invalid(
                    "status",
                    format!("unknown status {s:?} (one of: pending, sending, delivered, dead)"),
                )
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Signing (Standard Webhooks)
// ---------------------------------------------------------------------------------------------

/// A fresh secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> Result<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| ControlError::Internal(format!("random: {e}")))?;
    Ok(format!("{SECRET_PREFIX}{}", B64.encode(key)))
}

/// The key bytes of a `whsec_...` secret.
fn secret_key(secret: &str) -> Result<Vec<u8>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = B64
        .decode(b64)
        .map_err(|e| ControlError::Internal(format!("webhook secret is not base64: {e}")))?;
    if key.is_empty() {
        return Err(ControlError::Internal("webhook secret is empty".into()));
    }
    Ok(key)
}

/// The `webhook-signature` value: `v1,` + base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}").
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Result<String> {
    let key = secret_key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| ControlError::Internal(format!("hmac: {e}")))?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = we)]
struct EndpointRow {
    id: String,
    url: String,
    description: String,
    secret: String,
    event_types: String,
    enabled: bool,
    disabled_reason: Option<String>,
    consecutive_failures: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// Deliveries of an endpoint by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryCounts {
    /// Waiting (or being retried).
    pub pending: i64,
    /// In flight now.
    pub sending: i64,
    /// Delivered.
    pub delivered: i64,
    /// Dead (gave up).
    pub dead: i64,
}

/// A webhook endpoint (its secret only where an answer says so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EndpointOut {
    /// ID.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// What it is (free text).
    pub description: String,
    /// The event types it receives (empty: all of them).
    pub event_types: Vec<String>,
    /// Whether events are queued for it and sent.
    pub enabled: bool,
    /// Why it is disabled (by whom, or after how many failures).
    pub disabled_reason: Option<String>,
    /// Consecutive failures since its last success (failures while it was already backing off
    /// count once).
    pub consecutive_failures: i32,
    /// Its deliveries by status.
    pub deliveries: DeliveryCounts,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: NaiveDateTime,
}

/// An endpoint with its signing secret (on creation, rotation and reveal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EndpointWithSecret {
    /// The endpoint.
    pub endpoint: EndpointOut,
    /// The signing secret (`whsec_...`): give it to the receiver; keep it secret.
    pub secret: String,
}

/// A new endpoint.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// Where to POST events: `http://` or `https://`, no user name or password in it.
    pub url: String,
    /// What it is (at most 500 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// Event types wanted (see `events`); none or empty: all.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Enabled (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A change to an endpoint: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    /// New URL.
    #[serde(default)]
    pub url: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New event types (empty: all).
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Enable (also clears the failure count) or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Checks a URL: http(s), a host, no credentials, at most [`MAX_URL_LEN`] characters.
pub fn validate_url(url: &str) -> Result<String> {
    let url = url.trim();
    if url.is_empty() {
        return Err(ControlError::invalid("url", "is required"));
    }
    if url.len() > MAX_URL_LEN {
        return Err(ControlError::invalid(
            "url",
            format!("is longer than {MAX_URL_LEN} characters"),
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ControlError::invalid("url", format!("is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ControlError::invalid(
            "url",
            format!("must be http or https, not {}", parsed.scheme()),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ControlError::invalid("url", "has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ControlError::invalid(
            "url",
            "must not contain a user name or password (the signature authenticates the sender)",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(ControlError::invalid("url", "must not contain a #fragment"));
    }
    Ok(url.to_string())
}

/// Checks event types: each one of [`crate::events::KINDS`]; sorted, without duplicates.
pub fn validate_event_types(types: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        let t = t.trim();
        if !crate::events::KINDS.contains(&t) {
            return Err(ControlError::invalid(
                "event_types",
                format!(
                    "unknown event type {t:?} (one of: {})",
                    crate::events::KINDS.join(", ")
                ),
            ));
        }
        out.push(t.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn validate_description(d: &str) -> Result<String> {
    let d = d.trim();
    if d.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ControlError::invalid(
            "description",
            format!("is longer than {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    Ok(d.to_string())
}

fn parse_types(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}

/// Whether an endpoint with these stored event types receives `kind`.
fn subscribed(stored: &str, kind: &str) -> bool {
    let types = parse_types(stored);
    types.is_empty() || types.iter().any(|t| t == kind)
}

fn counts_of(
    conn: &mut DbConn,
    tenant_id: &str,
    endpoint_id: Option<&str>,
) -> Result<Vec<(String, String, i64)>> {
    let base = wd::table.filter(wd::tenant_id.eq(tenant_id));
    let cols = (wd::endpoint_id, wd::status, diesel::dsl::count_star());
    Ok(match endpoint_id {
        Some(e) => base
            .filter(wd::endpoint_id.eq(e))
            .group_by((wd::endpoint_id, wd::status))
            .select(cols)
            .load(conn)?,
        None => base
            .group_by((wd::endpoint_id, wd::status))
            .select(cols)
            .load(conn)?,
    })
}

fn out_of(row: EndpointRow, counts: &[(String, String, i64)]) -> EndpointOut {
    let mut c = DeliveryCounts::default();
    for (e, st, n) in counts {
        if *e != row.id {
            continue;
        }
        match st.as_str() {
            "pending" => c.pending += n,
            "sending" => c.sending += n,
            "delivered" => c.delivered += n,
            "dead" => c.dead += n,
            _ => {}
        }
    }
    EndpointOut {
        event_types: parse_types(&row.event_types),
        id: row.id,
        url: row.url,
        description: row.description,
        enabled: row.enabled,
        disabled_reason: row.disabled_reason,
        consecutive_failures: row.consecutive_failures,
        deliveries: c,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn load_endpoint(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<EndpointRow> {
    we::table
        .filter(we::tenant_id.eq(tenant_id))
        .filter(we::id.eq(id))
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found(format!("webhook endpoint {id}")))
}

fn endpoint_out(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<EndpointOut> {
    let row = load_endpoint(conn, tenant_id, id)?;
    let counts = counts_of(conn, tenant_id, Some(id))?;
    Ok(out_of(row, &counts))
}

/// The tenant's endpoints, oldest first.
pub fn list(conn: &mut DbConn, tenant_id: &str) -> Result<Vec<EndpointOut>> {
    let rows: Vec<EndpointRow> = we::table
        .filter(we::tenant_id.eq(tenant_id))
        .order((we::created_at.asc(), we::id.asc()))
        .select(EndpointRow::as_select())
        .load(conn)?;
    let counts = counts_of(conn, tenant_id, None)?;
    Ok(rows.into_iter().map(|r| out_of(r, &counts)).collect())
}

/// Creates an endpoint with a fresh secret, in the caller's transaction. Audited as
/// `webhook_endpoint.create` (never with the secret).
pub fn create(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    input: EndpointInput,
    now: NaiveDateTime,
) -> Result<EndpointWithSecret> {
    let url = validate_url(&input.url)?;
    let description = validate_description(input.description.as_deref().unwrap_or_default())?;
    let types = validate_event_types(input.event_types.as_deref().unwrap_or_default())?;
    let enabled = input.enabled.unwrap_or(true);
    let secret = new_secret()?;
    let id = db::new_id();
    diesel::insert_into(we::table)
        .values((
            we::id.eq(&id),
            we::tenant_id.eq(tenant_id),
            we::url.eq(&url),
            we::description.eq(&description),
            we::secret.eq(&secret),
            we::event_types.eq(serde_json::to_string(&types)?),
            we::enabled.eq(enabled),
            we::disabled_reason.eq((!enabled).then(|| format!("disabled by {}", who.label))),
            we::consecutive_failures.eq(0),
            we::created_at.eq(now),
            we::updated_at.eq(now),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        who,
        "webhook_endpoint.create",
        "webhook_endpoint",
        Some(&id),
        serde_json::json!({"url": url, "event_types": types, "enabled": enabled}),
    )?;
    Ok(EndpointWithSecret {
        endpoint: endpoint_out(conn, tenant_id, &id)?,
        secret,
    })
}

/// Changes an endpoint, in the caller's transaction. Enabling clears the failure count and the
/// reason; disabling records who did it. Audited as `webhook_endpoint.update`.
pub fn update(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
    patch: EndpointPatch,
    now: NaiveDateTime,
) -> Result<EndpointOut> {
    let row = load_endpoint(conn, tenant_id, id)?;
    let url = match &patch.url {
        Some(u) => validate_url(u)?,
        None => row.url.clone(),
    };
    let description = match &patch.description {
        Some(d) => validate_description(d)?,
        None => row.description.clone(),
    };
    let types = match &patch.event_types {
        Some(t) => validate_event_types(t)?,
        None => parse_types(&row.event_types),
    };
    let (enabled, reason, failures) = match patch.enabled {
        Some(true) if !row.enabled => (true, None, 0),
        Some(false) if row.enabled => (
            false,
            Some(format!("disabled by {}", who.label)),
            row.consecutive_failures,
        ),
        _ => (
            row.enabled,
            row.disabled_reason.clone(),
            row.consecutive_failures,
        ),
    };
    diesel::update(
        we::table
            .filter(we::tenant_id.eq(tenant_id))
            .filter(we::id.eq(id)),
    )
    .set((
        we::url.eq(&url),
        we::description.eq(&description),
        we::event_types.eq(serde_json::to_string(&types)?),
        we::enabled.eq(enabled),
        we::disabled_reason.eq(&reason),
        we::consecutive_failures.eq(failures),
        we::updated_at.eq(now),
    ))
    .execute(conn)?;
    if enabled && !row.enabled {
        // Enabled again: try at once.
        diesel::update(
            we::table
                .filter(we::tenant_id.eq(tenant_id))
                .filter(we::id.eq(id)),
        )
        .set(we::retry_after.eq(None::<NaiveDateTime>))
        .execute(conn)?;
    }
    audit::record(
        conn,
        who,
        "webhook_endpoint.update",
        "webhook_endpoint",
        Some(id),
        serde_json::json!({"url": url, "description": description, "event_types": types,
            "enabled": enabled}),
    )?;
    endpoint_out(conn, tenant_id, id)
}

/// Deletes an endpoint with its deliveries and their attempts, in the caller's transaction.
/// Audited as `webhook_endpoint.delete`.
pub fn delete(conn: &mut DbConn, who: &Who, tenant_id: &str, id: &str) -> Result<()> {
    let row = load_endpoint(conn, tenant_id, id)?;
    let seqs = wd::table
        .filter(wd::tenant_id.eq(tenant_id))
        .filter(wd::endpoint_id.eq(id))
        .select(wd::seq);
    diesel::delete(
        wa::table
            .filter(wa::tenant_id.eq(tenant_id))
            .filter(wa::delivery_seq.eq_any(seqs)),
    )
    .execute(conn)?;
    let deliveries = diesel::delete(
        wd::table
            .filter(wd::tenant_id.eq(tenant_id))
            .filter(wd::endpoint_id.eq(id)),
    )
    .execute(conn)?;
    diesel::delete(
        we::table
            .filter(we::tenant_id.eq(tenant_id))
            .filter(we::id.eq(id)),
    )
    .execute(conn)?;
    audit::record(
        conn,
        who,
        "webhook_endpoint.delete",
        "webhook_endpoint",
        Some(id),
        serde_json::json!({"url": row.url, "deliveries": deliveries}),
    )?;
    Ok(())
}

/// Gives an endpoint a new secret (the old one stops working at once), in the caller's
/// transaction. Audited as `webhook_endpoint.rotate_secret`.
pub fn rotate(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
    now: NaiveDateTime,
) -> Result<EndpointWithSecret> {
    load_endpoint(conn, tenant_id, id)?;
    let secret = new_secret()?;
    diesel::update(
        we::table
            .filter(we::tenant_id.eq(tenant_id))
            .filter(we::id.eq(id)),
    )
    .set((we::secret.eq(&secret), we::updated_at.eq(now)))
    .execute(conn)?;
    audit::record(
        conn,
        who,
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint",
        Some(id),
        serde_json::json!({}),
    )?;
    Ok(EndpointWithSecret {
        endpoint: endpoint_out(conn, tenant_id, id)?,
        secret,
    })
}

/// An endpoint's current secret, in the caller's transaction. Audited as
/// `webhook_endpoint.reveal_secret` (a read of a secret).
pub fn reveal(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
) -> Result<EndpointWithSecret> {
    let row = load_endpoint(conn, tenant_id, id)?;
    audit::record(
        conn,
        who,
        "webhook_endpoint.reveal_secret",
        "webhook_endpoint",
        Some(id),
        serde_json::json!({}),
    )?;
    Ok(EndpointWithSecret {
        secret: row.secret.clone(),
        endpoint: endpoint_out(conn, tenant_id, id)?,
    })
}

// ---------------------------------------------------------------------------------------------
// The outbox: queueing
// ---------------------------------------------------------------------------------------------

/// Wakes the dispatchers of this process when a delivery was queued (the delivery is visible
/// once the caller's transaction commits: the dispatcher looks again shortly after).
fn queued() -> &'static Notify {
    static N: OnceLock<Notify> = OnceLock::new();
    N.get_or_init(Notify::new)
}

fn tenant_slug(conn: &mut DbConn, tenant_id: &str) -> Result<String> {
    Ok(tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::slug)
        .first(conn)?)
}

/// The Standard Webhooks body of an event: `{"type", "timestamp", "data"}`, `data` being the
/// payload with `tenant` (the slug) and `subject` (`{"type", "id"}`: what the event is about,
/// its ordering key) added when it is an object and lacks them.
pub fn body_of(
    kind: &str,
    at: NaiveDateTime,
    payload: &serde_json::Value,
    tenant_slug: &str,
    subject: (&str, &str),
) -> Result<String> {
    let mut data = payload.clone();
    if let Some(obj) = data.as_object_mut() {
        obj.entry("tenant")
            .or_insert_with(|| serde_json::Value::String(tenant_slug.to_string()));
        obj.entry("subject")
            .or_insert_with(|| serde_json::json!({"type": subject.0, "id": subject.1}));
    }
    let body = serde_json::json!({
        "type": kind,
        "timestamp": at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    });
    Ok(serde_json::to_string(&body)?)
}

#[allow(clippy::too_many_arguments)]
fn queue(
    conn: &mut DbConn,
    tenant_id: &str,
    endpoint_id: &str,
    event_id: &str,
    kind: &str,
    ordering_key: &str,
    body: &str,
    now: NaiveDateTime,
) -> Result<()> {
    diesel::insert_into(wd::table)
        .values((
            wd::tenant_id.eq(tenant_id),
            wd::endpoint_id.eq(endpoint_id),
            wd::message_id.eq(format!("msg_{event_id}")),
            wd::event_id.eq(event_id),
            wd::event_type.eq(kind),
            wd::ordering_key.eq(ordering_key),
            wd::payload.eq(body),
            wd::status.eq(DeliveryStatus::Pending.as_str()),
            wd::attempts.eq(0),
            wd::next_attempt_at.eq(now),
            wd::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Queues one delivery of the event for every enabled endpoint of the tenant subscribed to its
/// type, in the transaction that recorded the event ([`crate::events::record`] calls it).
/// Returns how many were queued.
pub fn fan_out(
    conn: &mut DbConn,
    tenant_id: &str,
    event: &crate::events::NewEvent<'_>,
    now: NaiveDateTime,
) -> Result<usize> {
    let endpoints: Vec<(String, String)> = we::table
        .filter(we::tenant_id.eq(tenant_id))
        .filter(we::enabled.eq(true))
        .select((we::id, we::event_types))
        .load(conn)?;
    let targets: Vec<String> = endpoints
        .into_iter()
        .filter(|(_, types)| subscribed(types, event.kind))
        .map(|(id, _)| id)
        .collect();
    if targets.is_empty() {
        return Ok(0);
    }
    let slug = tenant_slug(conn, tenant_id)?;
    let body = body_of(
        event.kind,
        now,
        event.payload,
        &slug,
        (event.subject_type, event.subject_id),
    )?;
    for endpoint_id in &targets {
        queue(
            conn,
            tenant_id,
            endpoint_id,
            event.id,
            event.kind,
            event.subject_id,
            &body,
            now,
        )?;
    }
    queued().notify_one();
    Ok(targets.len())
}

// ---------------------------------------------------------------------------------------------
// The dispatcher
// ---------------------------------------------------------------------------------------------

/// A delivery claimed by this process, with what it takes to send it.
#[derive(Debug, Clone)]
struct Claimed {
    seq: i64,
    tenant_id: String,
    endpoint_id: String,
    message_id: String,
    payload: String,
    /// The attempt number of this claim (attempts after the claim).
    attempts: i32,
    url: String,
    secret: String,
}

/// What one attempt gave.
#[derive(Debug, Clone)]
struct Outcome {
    ok: bool,
    status_code: Option<i32>,
    duration_ms: i32,
    error: Option<String>,
    excerpt: Option<String>,
}

/// Claims up to `limit` due deliveries: the head (lowest `seq` not delivered nor dead) of each
/// (endpoint, ordering key) whose attempt is due, or whose claim's lease ran out, of an
/// enabled endpoint, and with no other delivery of its key in flight. Each claim is a
/// conditional UPDATE (status and attempts as read): of several processes, one wins.
fn claim(
    conn: &mut DbConn,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: usize,
) -> Result<Vec<Claimed>> {
    use diesel::dsl::{exists, not};
    let d2 = diesel::alias!(crate::schema::webhook_deliveries as d2);
    let pending = DeliveryStatus::Pending.as_str();
    let sending = DeliveryStatus::Sending.as_str();
    let blocked = d2
        .filter(d2.field(wd::endpoint_id).eq(wd::endpoint_id))
        .filter(d2.field(wd::ordering_key).eq(wd::ordering_key))
        .filter(d2.field(wd::seq).ne(wd::seq))
        .filter(
            d2.field(wd::status)
                .eq_any([pending, sending])
                .and(d2.field(wd::seq).lt(wd::seq))
                .or(d2
                    .field(wd::status)
                    .eq(sending)
                    .and(d2.field(wd::next_attempt_at).gt(now))),
        );
    // Enabled, and not backing off after a failure.
    let enabled = we::table
        .filter(we::enabled.eq(true))
        .filter(we::retry_after.is_null().or(we::retry_after.le(now)))
        .select(we::id);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let candidates: Vec<(i64, String, i32)> = wd::table
        .filter(wd::status.eq_any([pending, sending]))
        .filter(wd::next_attempt_at.le(now))
        .filter(wd::endpoint_id.eq_any(enabled))
        .filter(not(exists(blocked)))
        .order((wd::next_attempt_at.asc(), wd::seq.asc()))
        .limit(limit)
        .select((wd::seq, wd::status, wd::attempts))
        .load(conn)?;
    let mut won = Vec::with_capacity(candidates.len());
    for (seq, status, attempts) in candidates {
        let n = diesel::update(
            wd::table
                .filter(wd::seq.eq(seq))
                .filter(wd::status.eq(&status))
                .filter(wd::attempts.eq(attempts)),
        )
        .set((
            wd::status.eq(sending),
            wd::next_attempt_at.eq(lease_until),
            wd::attempts.eq(attempts.saturating_add(1)),
        ))
        .execute(conn)?;
        if n == 1 {
            won.push(seq);
        }
    }
    if won.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<ClaimRow> = wd::table
        .inner_join(we::table.on(we::id.eq(wd::endpoint_id)))
        .filter(wd::seq.eq_any(&won))
        .select((
            wd::seq,
            wd::tenant_id,
            wd::endpoint_id,
            wd::message_id,
            wd::payload,
            wd::attempts,
            we::url,
            we::secret,
        ))
        .load(conn)?;
    let mut out: Vec<Claimed> = rows
        .into_iter()
        .map(
            |(seq, tenant_id, endpoint_id, message_id, payload, attempts, url, secret)| Claimed {
                seq,
                tenant_id,
                endpoint_id,
                message_id,
                payload,
                attempts,
                url,
                secret,
            },
        )
        .collect();
    out.sort_by_key(|c| won.iter().position(|s| *s == c.seq));
    Ok(out)
}

/// seq, tenant, endpoint, message id, payload, attempts, url, secret.
type ClaimRow = (i64, String, String, String, String, i32, String, String);

/// One HTTP client for every endpoint (a shared connection pool); redirects are not followed.
fn http_client() -> Result<reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let c = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ControlError::Internal(format!("HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| c).clone())
}

fn clip(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let mut end = max_bytes;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Sends one claimed delivery.
async fn send(c: &Claimed, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let elapsed = |s: Instant| i32::try_from(s.elapsed().as_millis()).unwrap_or(i32::MAX);
    // The wall clock (not the services' clock): receivers compare it with theirs.
    let timestamp = chrono::Utc::now().timestamp();
    let fail = |error: String, s: Instant| Outcome {
        ok: false,
        status_code: None,
        duration_ms: elapsed(s),
        error: Some(clip(&error, 1000)),
        excerpt: None,
    };
    let signature = match sign(&c.secret, &c.message_id, timestamp, &c.payload) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string(), started),
    };
    let client = match http_client() {
        Ok(cl) => cl,
        Err(e) => return fail(e.to_string(), started),
    };
    let request = client
        .post(&c.url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &c.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(c.payload.clone());
    let mut resp = match request.send().await {
        Ok(r) => r,
        Err(e) => return fail(format!("request failed: {}", e.without_url()), started),
    };
    let status = resp.status();
    let mut excerpt: Vec<u8> = Vec::new();
    let mut read_error = None;
    while excerpt.len() < EXCERPT_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                read_error = Some(format!("reading the answer: {}", e.without_url()));
                break;
            }
        }
    }
    let excerpt = clip(&String::from_utf8_lossy(&excerpt), EXCERPT_BYTES);
    let ok = status.is_success();
    Outcome {
        ok,
        status_code: Some(i32::from(status.as_u16())),
        duration_ms: elapsed(started),
        error: if ok {
            None
        } else {
            Some(read_error.unwrap_or_else(|| format!("answered {status}")))
        },
        excerpt: (!excerpt.is_empty()).then_some(excerpt),
    }
}

/// The delay before attempt `attempts + 1`: 5 s doubling per attempt, at most 1 h, ±10 %.
pub fn backoff(attempts: i32) -> TimeDelta {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let base = FIRST_BACKOFF_SECS
        .saturating_mul(1i64 << exp)
        .min(MAX_BACKOFF_SECS);
    let mut r = [0u8; 2];
    let jitter = if getrandom::fill(&mut r).is_ok() {
        // -10 % .. +10 % in steps of 1/65535.
        f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX) * 0.2 - 0.1
    } else {
        0.0
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let ms = (base as f64 * 1000.0 * (1.0 + jitter)) as i64;
    TimeDelta::milliseconds(ms.max(1000))
}

/// Records an attempt's outcome: the attempt row, the delivery's new status, the endpoint's
/// failure count. Returns the endpoint's failure count when it reached `disable_after` (the
/// caller disables it).
fn record(
    conn: &mut DbConn,
    c: &Claimed,
    o: &Outcome,
    now: NaiveDateTime,
    max_attempts: i32,
    disable_after: i32,
) -> Result<Option<i32>> {
    conn.transaction(|conn| {
        diesel::insert_into(wa::table)
            .values((
                wa::id.eq(db::new_id()),
                wa::tenant_id.eq(&c.tenant_id),
                wa::delivery_seq.eq(c.seq),
                wa::attempted_at.eq(now),
                wa::status_code.eq(o.status_code),
                wa::duration_ms.eq(o.duration_ms),
                wa::error.eq(&o.error),
                wa::response_excerpt.eq(&o.excerpt),
            ))
            .execute(conn)?;
        let mine = wd::table
            .filter(wd::seq.eq(c.seq))
            .filter(wd::status.eq(DeliveryStatus::Sending.as_str()))
            .filter(wd::attempts.eq(c.attempts));
        let updated = if o.ok {
            diesel::update(mine)
                .set((
                    wd::status.eq(DeliveryStatus::Delivered.as_str()),
                    wd::delivered_at.eq(Some(now)),
                    wd::last_status_code.eq(o.status_code),
                    wd::last_error.eq(None::<String>),
                    wd::next_attempt_at.eq(now),
                ))
                .execute(conn)?
        } else {
            let dead = c.attempts >= max_attempts.max(1);
            let (status, next) = if dead {
                (DeliveryStatus::Dead, now)
            } else {
                (DeliveryStatus::Pending, now + backoff(c.attempts))
            };
            diesel::update(mine)
                .set((
                    wd::status.eq(status.as_str()),
                    wd::last_status_code.eq(o.status_code),
                    wd::last_error.eq(&o.error),
                    wd::next_attempt_at.eq(next),
                ))
                .execute(conn)?
        };
        if updated == 0 {
            tracing::warn!(
                seq = c.seq,
                "webhooks: delivery no longer claimed by this attempt (lease ran out?)"
            );
        }
        let target = we::table.filter(we::id.eq(&c.endpoint_id));
        if o.ok {
            diesel::update(target)
                .set((
                    we::consecutive_failures.eq(0),
                    we::retry_after.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
            return Ok(None);
        }
        // A failure opens the endpoint's backoff; failures of requests that were in flight
        // while it was already open do not count again (one per backoff interval).
        let (failures, open_until): (i32, Option<NaiveDateTime>) = target
            .select((we::consecutive_failures, we::retry_after))
            .first(conn)?;
        if open_until.is_some_and(|t| t > now) {
            return Ok(None);
        }
        let failures = failures.saturating_add(1);
        diesel::update(target)
            .set((
                we::consecutive_failures.eq(failures),
                we::retry_after.eq(Some(now + backoff(failures))),
            ))
            .execute(conn)?;
        let enabled: bool = target.select(we::enabled).first(conn)?;
        Ok((enabled && disable_after > 0 && failures >= disable_after).then_some(failures))
    })
}

/// Disables an endpoint after `failures` consecutive failures (once: a conditional
/// update), audited as `webhook_endpoint.disable` by `system:webhooks`.
fn disable_failing(
    conn: &mut DbConn,
    c: &Claimed,
    failures: i32,
    last: &Outcome,
    now: NaiveDateTime,
) -> Result<bool> {
    let why = last.error.clone().unwrap_or_else(|| "failed".to_string());
    let reason = format!("disabled after {failures} consecutive failures (last: {why})");
    db::write_tx(conn, |conn| {
        let n = diesel::update(
            we::table
                .filter(we::id.eq(&c.endpoint_id))
                .filter(we::enabled.eq(true)),
        )
        .set((
            we::enabled.eq(false),
            we::disabled_reason.eq(Some(&reason)),
            we::updated_at.eq(now),
        ))
        .execute(conn)?;
        if n == 1 {
            audit::record(
                conn,
                &Who::system("system:webhooks", Some(&c.tenant_id)),
                "webhook_endpoint.disable",
                "webhook_endpoint",
                Some(&c.endpoint_id),
                serde_json::json!({"reason": reason, "consecutive_failures": failures}),
            )?;
        }
        Ok(n == 1)
    })
}

/// Sends one claimed delivery and records the outcome.
async fn attempt(deps: &Deps, c: Claimed) -> Result<bool> {
    let cfg = &deps.config.webhooks;
    let outcome = send(&c, Duration::from_millis(cfg.timeout_ms.max(1))).await;
    let now = deps.clock.now();
    let (max_attempts, disable_after) = (cfg.max_attempts, cfg.disable_after_failures);
    let ok = outcome.ok;
    if !ok {
        tracing::info!(seq = c.seq, endpoint = %c.endpoint_id, attempts = c.attempts,
            error = outcome.error.as_deref().unwrap_or_default(), "webhooks: attempt failed");
    }
    db::run(&deps.pool, move |conn| {
        if let Some(failures) = record(conn, &c, &outcome, now, max_attempts, disable_after)?
            && disable_failing(conn, &c, failures, &outcome, now)?
        {
            tracing::warn!(endpoint = %c.endpoint_id, failures,
                "webhooks: endpoint disabled after repeated failures");
        }
        Ok(())
    })
    .await?;
    Ok(ok)
}

async fn claim_due(deps: &Deps, limit: usize) -> Result<Vec<Claimed>> {
    let now = deps.clock.now();
    let lease = i64::try_from(deps.config.webhooks.timeout_ms / 1000)
        .unwrap_or(3600)
        .saturating_add(LEASE_MARGIN_SECS);
    let lease_until = now + TimeDelta::seconds(lease);
    db::run(&deps.pool, move |c| claim(c, now, lease_until, limit)).await
}

/// One dispatch round, synchronously: claims the due deliveries (at most `[webhooks]
/// concurrency`, one per endpoint and ordering key), sends them at once, records the outcomes.
/// Returns how many attempts were made (0: nothing was due). Tests call it instead of the
/// background dispatcher.
pub async fn deliver_due(deps: &Deps) -> Result<usize> {
    let claimed = claim_due(deps, deps.config.webhooks.concurrency.max(1)).await?;
    let n = claimed.len();
    let results = futures::future::join_all(claimed.into_iter().map(|c| attempt(deps, c))).await;
    for r in results {
        r?;
    }
    Ok(n)
}

/// Starts this process's dispatcher: claims due deliveries every `[webhooks] poll_ms` (and
/// soon after this process queued one, or `Deps.webhook_wake` was notified), keeps at most
/// `concurrency` requests in flight.
pub fn spawn(deps: Arc<Deps>) {
    tokio::spawn(dispatcher(deps));
}

/// Pauses after a wake-up: the queueing transaction may not have committed at the first look.
const QUICK_LOOKS_MS: [u64; 4] = [5, 20, 50, 100];

async fn dispatcher(deps: Arc<Deps>) {
    let cfg = deps.config.webhooks.clone();
    let concurrency = cfg.concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency));
    let finished = Arc::new(Notify::new());
    let poll = Duration::from_millis(cfg.poll_ms.max(10));
    let mut quick: Option<usize> = None;
    loop {
        let free = slots.available_permits();
        let mut claimed_all = false;
        if free > 0 {
            match claim_due(&deps, free).await {
                Ok(list) => {
                    claimed_all = !list.is_empty() && list.len() == free;
                    if !list.is_empty() {
                        quick = None;
                    }
                    for c in list {
                        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                            return;
                        };
                        let (deps, finished) = (Arc::clone(&deps), Arc::clone(&finished));
                        tokio::spawn(async move {
                            if let Err(e) = attempt(&deps, c).await {
                                tracing::error!(error = %e, "webhooks: recording an attempt");
                            }
                            drop(permit);
                            finished.notify_one();
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "webhooks: claiming due deliveries");
                    tokio::time::sleep(poll.max(Duration::from_secs(1))).await;
                    continue;
                }
            }
        }
        if claimed_all {
            // Wait for a free slot, not for the poll.
            finished.notified().await;
            continue;
        }
        let pause = match quick {
            Some(i) if i < QUICK_LOOKS_MS.len() => Duration::from_millis(QUICK_LOOKS_MS[i]),
            _ => poll,
        };
        tokio::select! {
            () = deps.webhook_wake.notified() => quick = Some(0),
            () = queued().notified() => quick = Some(0),
            () = finished.notified() => {}
            () = tokio::time::sleep(pause) => {
                quick = quick.map(|i| i + 1).filter(|i| *i < QUICK_LOOKS_MS.len());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deliveries: the log, redelivery, test events
// ---------------------------------------------------------------------------------------------

/// A delivery in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryOut {
    /// Its number (deliveries of one key go out in this order).
    pub seq: i64,
    /// The endpoint.
    pub endpoint_id: String,
    /// The `webhook-id` header (`msg_<event id>`): the same on every attempt.
    pub message_id: String,
    /// The event.
    pub event_id: String,
    /// The event's type (e.g. `asset.hidden`).
    pub event_type: String,
    /// The ordering key (the event's subject id).
    pub ordering_key: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due (pending), or the claim's lease ends (sending).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub next_attempt_at: NaiveDateTime,
    /// The last answer's status code.
    pub last_status_code: Option<i32>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was delivered (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub delivered_at: Option<NaiveDateTime>,
    /// Queued (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
}

/// One HTTP request of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptOut {
    /// When (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub attempted_at: NaiveDateTime,
    /// The answer's status code (none: no answer).
    pub status_code: Option<i32>,
    /// How long it took, in milliseconds.
    pub duration_ms: i32,
    /// What went wrong.
    pub error: Option<String>,
    /// The answer's first KiB.
    pub response_excerpt: Option<String>,
}

/// A delivery with its body and attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    /// The delivery.
    pub delivery: DeliveryOut,
    /// The body sent (the Standard Webhooks payload).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Its attempts, oldest first.
    pub attempts: Vec<AttemptOut>,
}

/// Query of the delivery log.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Page number, from 1 (default 1).
    pub page: Option<i64>,
    /// Items per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
    /// Only deliveries in this status (`pending`, `sending`, `delivered`, `dead`).
    pub status: Option<String>,
}

type DeliveryTuple = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    i32,
    NaiveDateTime,
    Option<i32>,
    Option<String>,
    Option<NaiveDateTime>,
    NaiveDateTime,
);

macro_rules! delivery_columns {
    () => {
        (
            wd::seq,
            wd::endpoint_id,
            wd::message_id,
            wd::event_id,
            wd::event_type,
            wd::ordering_key,
            wd::status,
            wd::attempts,
            wd::next_attempt_at,
            wd::last_status_code,
            wd::last_error,
            wd::delivered_at,
            wd::created_at,
        )
    };
}

fn delivery_of(t: DeliveryTuple) -> DeliveryOut {
    DeliveryOut {
        seq: t.0,
        endpoint_id: t.1,
        message_id: t.2,
        event_id: t.3,
        event_type: t.4,
        ordering_key: t.5,
        status: DeliveryStatus::parse(&t.6).unwrap_or(DeliveryStatus::Pending),
        attempts: t.7,
        next_attempt_at: t.8,
        last_status_code: t.9,
        last_error: t.10,
        delivered_at: t.11,
        created_at: t.12,
    }
}

/// An endpoint's deliveries, newest first, paged.
pub fn deliveries(
    conn: &mut DbConn,
    tenant_id: &str,
    endpoint_id: &str,
    q: &DeliveryQuery,
) -> Result<Paginated<DeliveryOut>> {
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
        sort: None,
    }
    .page()?;
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(DeliveryStatus::parse)
        .transpose()?;
    load_endpoint(conn, tenant_id, endpoint_id)?;
    let filtered = || {
        let mut b = wd::table
            .filter(wd::tenant_id.eq(tenant_id.to_string()))
            .filter(wd::endpoint_id.eq(endpoint_id.to_string()))
            .into_boxed();
        if let Some(st) = status {
            b = b.filter(wd::status.eq(st.as_str()));
        }
        b
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let items: Vec<DeliveryTuple> = filtered()
        .order(wd::seq.desc())
        .offset(page.offset())
        .limit(page.per_page)
        .select(delivery_columns!())
        .load(conn)?;
    Ok(Paginated {
        items: items.into_iter().map(delivery_of).collect(),
        total,
        page: page.page,
        per_page: page.per_page,
    })
}

fn load_delivery(
    conn: &mut DbConn,
    tenant_id: &str,
    endpoint_id: &str,
    seq: i64,
) -> Result<(DeliveryOut, String)> {
    let (t, payload): (DeliveryTuple, String) = wd::table
        .filter(wd::tenant_id.eq(tenant_id))
        .filter(wd::endpoint_id.eq(endpoint_id))
        .filter(wd::seq.eq(seq))
        .select((delivery_columns!(), wd::payload))
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            ControlError::not_found(format!("delivery {seq} of webhook endpoint {endpoint_id}"))
        })?;
    Ok((delivery_of(t), payload))
}

/// attempted_at, status code, duration, error, excerpt.
type AttemptTuple = (
    NaiveDateTime,
    Option<i32>,
    i32,
    Option<String>,
    Option<String>,
);

/// One delivery with its body and attempts.
pub fn delivery(
    conn: &mut DbConn,
    tenant_id: &str,
    endpoint_id: &str,
    seq: i64,
) -> Result<DeliveryDetail> {
    let (delivery, payload) = load_delivery(conn, tenant_id, endpoint_id, seq)?;
    let attempts: Vec<AttemptTuple> = wa::table
        .filter(wa::tenant_id.eq(tenant_id))
        .filter(wa::delivery_seq.eq(seq))
        .order((wa::attempted_at.asc(), wa::id.asc()))
        .select((
            wa::attempted_at,
            wa::status_code,
            wa::duration_ms,
            wa::error,
            wa::response_excerpt,
        ))
        .load(conn)?;
    Ok(DeliveryDetail {
        delivery,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
        attempts: attempts
            .into_iter()
            .map(
                |(attempted_at, status_code, duration_ms, error, response_excerpt)| AttemptOut {
                    attempted_at,
                    status_code,
                    duration_ms,
                    error,
                    response_excerpt,
                },
            )
            .collect(),
    })
}

/// Queues a delivery again (delivered or dead, or pending: at once), with a fresh count of
/// attempts, in the caller's transaction. It keeps its place (`seq`) in its key's order. A
/// delivery in flight answers 409 `delivery_in_flight`; an endpoint that is disabled 409
/// `endpoint_disabled`. Audited as `webhook_delivery.redeliver`.
pub fn requeue(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    endpoint_id: &str,
    seq: i64,
    now: NaiveDateTime,
) -> Result<DeliveryOut> {
    let endpoint = load_endpoint(conn, tenant_id, endpoint_id)?;
    let (d, _) = load_delivery(conn, tenant_id, endpoint_id, seq)?;
    if !endpoint.enabled {
        return Err(ControlError::Conflict {
            code: "endpoint_disabled",
            message: "the endpoint is disabled: enable it first".into(),
        });
    }
    if d.status == DeliveryStatus::Sending {
        return Err(ControlError::Conflict {
            code: "delivery_in_flight",
            message: format!("delivery {seq} is being sent right now"),
        });
    }
    diesel::update(
        wd::table
            .filter(wd::tenant_id.eq(tenant_id))
            .filter(wd::seq.eq(seq))
            .filter(wd::status.ne(DeliveryStatus::Sending.as_str())),
    )
    .set((
        wd::status.eq(DeliveryStatus::Pending.as_str()),
        wd::attempts.eq(0),
        wd::next_attempt_at.eq(now),
    ))
    .execute(conn)?;
    audit::record(
        conn,
        who,
        "webhook_delivery.redeliver",
        "webhook_endpoint",
        Some(endpoint_id),
        serde_json::json!({"seq": seq, "message_id": d.message_id, "was": d.status.as_str()}),
    )?;
    Ok(load_delivery(conn, tenant_id, endpoint_id, seq)?.0)
}

/// Queues a `webhook.test` event for one endpoint only (enabled or not: a disabled one keeps
/// it until enabled), in the caller's transaction. Audited as `webhook_endpoint.test`.
pub fn queue_test(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    endpoint_id: &str,
    now: NaiveDateTime,
) -> Result<DeliveryOut> {
    load_endpoint(conn, tenant_id, endpoint_id)?;
    let slug = tenant_slug(conn, tenant_id)?;
    let event_id = db::new_id();
    let payload = serde_json::json!({
        "endpoint_id": endpoint_id,
        "message": "a test event from Likeness",
    });
    let body = body_of(
        TEST_EVENT,
        now,
        &payload,
        &slug,
        ("webhook_endpoint", endpoint_id),
    )?;
    queue(
        conn,
        tenant_id,
        endpoint_id,
        &event_id,
        TEST_EVENT,
        TEST_EVENT,
        &body,
        now,
    )?;
    let seq: i64 = wd::table
        .filter(wd::endpoint_id.eq(endpoint_id))
        .filter(wd::message_id.eq(format!("msg_{event_id}")))
        .select(wd::seq)
        .first(conn)?;
    audit::record(
        conn,
        who,
        "webhook_endpoint.test",
        "webhook_endpoint",
        Some(endpoint_id),
        serde_json::json!({"seq": seq}),
    )?;
    Ok(load_delivery(conn, tenant_id, endpoint_id, seq)?.0)
}

// ---------------------------------------------------------------------------------------------
// Entry points (each needs `manage_settings`)
// ---------------------------------------------------------------------------------------------

/// The tenant's endpoints.
pub async fn list_endpoints(ctx: &Ctx) -> Result<Vec<EndpointOut>> {
    ctx.require(Permission::ManageSettings)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| list(c, &t)).await
}

/// Creates an endpoint; the answer carries its secret.
pub async fn create_endpoint(ctx: &Ctx, input: EndpointInput) -> Result<EndpointWithSecret> {
    ctx.require(Permission::ManageSettings)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| create(c, &who, &t, input, now))
    })
    .await
}

/// One endpoint.
pub async fn get_endpoint(ctx: &Ctx, id: String) -> Result<EndpointOut> {
    ctx.require(Permission::ManageSettings)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| endpoint_out(c, &t, &id)).await
}

/// Changes an endpoint; see [`update`].
pub async fn update_endpoint(ctx: &Ctx, id: String, patch: EndpointPatch) -> Result<EndpointOut> {
    ctx.require(Permission::ManageSettings)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    let out = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| update(c, &who, &t, &id, patch, now))
    })
    .await?;
    ctx.deps.webhook_wake.notify_one();
    Ok(out)
}

/// Deletes an endpoint with its delivery log.
pub async fn delete_endpoint(ctx: &Ctx, id: String) -> Result<()> {
    ctx.require(Permission::ManageSettings)?;
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| delete(c, &who, &t, &id))
    })
    .await
}

/// Gives an endpoint a new secret; the answer carries it.
pub async fn rotate_secret(ctx: &Ctx, id: String) -> Result<EndpointWithSecret> {
    ctx.require(Permission::ManageSettings)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| rotate(c, &who, &t, &id, now))
    })
    .await
}

/// An endpoint's secret (audited read).
pub async fn reveal_secret(ctx: &Ctx, id: String) -> Result<EndpointWithSecret> {
    ctx.require(Permission::ManageSettings)?;
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| reveal(c, &who, &t, &id))
    })
    .await
}

/// An endpoint's deliveries, newest first (`q` as parsed by the transport).
pub async fn list_deliveries(
    ctx: &Ctx,
    endpoint_id: String,
    q: Result<DeliveryQuery>,
) -> Result<Paginated<DeliveryOut>> {
    ctx.require(Permission::ManageSettings)?;
    let q = q?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| deliveries(c, &t, &endpoint_id, &q)).await
}

/// One delivery with its body and attempts.
pub async fn get_delivery(ctx: &Ctx, endpoint_id: String, seq: i64) -> Result<DeliveryDetail> {
    ctx.require(Permission::ManageSettings)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| delivery(c, &t, &endpoint_id, seq)).await
}

/// Queues a delivery again; see [`requeue`].
pub async fn redeliver(ctx: &Ctx, endpoint_id: String, seq: i64) -> Result<DeliveryOut> {
    ctx.require(Permission::ManageSettings)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    let out = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| requeue(c, &who, &t, &endpoint_id, seq, now))
    })
    .await?;
    ctx.deps.webhook_wake.notify_one();
    Ok(out)
}

/// Sends a `webhook.test` event to one endpoint; see [`queue_test`].
pub async fn send_test(ctx: &Ctx, endpoint_id: String) -> Result<DeliveryOut> {
    ctx.require(Permission::ManageSettings)?;
    let (who, t, now) = (ctx.who(), ctx.tenant().to_string(), ctx.now);
    let out = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| queue_test(c, &who, &t, &endpoint_id, now))
    })
    .await?;
    ctx.deps.webhook_wake.notify_one();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_example() {
        // The example of the Standard Webhooks reference libraries' tests.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn urls_are_checked() {
        assert!(validate_url("https://cms.example.org/hooks?x=1").is_ok());
        assert!(validate_url("http://127.0.0.1:8080/h").is_ok());
        for bad in [
            "",
            "ftp://cms.example.org/",
            "https://user:pw@cms.example.org/",
            "not a url",
            "https://cms.example.org/#frag",
        ] {
            let e = validate_url(bad).unwrap_err();
            assert!(e.to_string().starts_with("url:"), "{bad}: {e}");
        }
    }

    #[test]
    fn event_types_are_checked() {
        assert_eq!(
            validate_event_types(&[
                "consent.withdrawn".into(),
                "asset.hidden".into(),
                "asset.hidden".into()
            ])
            .unwrap(),
            vec!["asset.hidden".to_string(), "consent.withdrawn".to_string()]
        );
        assert!(validate_event_types(&["asset.eaten".into()]).is_err());
        assert!(subscribed("[]", "asset.hidden"));
        assert!(subscribed(r#"["asset.hidden"]"#, "asset.hidden"));
        assert!(!subscribed(r#"["asset.allowed"]"#, "asset.hidden"));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let s = |a| backoff(a).num_milliseconds();
        assert!((4_500..=5_500).contains(&s(1)));
        assert!((9_000..=11_000).contains(&s(2)));
        assert!((3_240_000..=3_960_000).contains(&s(30)));
    }

    #[test]
    fn secrets_are_32_random_bytes() {
        let s = new_secret().unwrap();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_key(&s).unwrap().len(), 32);
        assert_ne!(s, new_secret().unwrap());
    }
}

//! Domain events: facts other systems must hear about (a consent withdrawn, a file's
//! compliance changed), recorded in the transaction of the change that causes them. The CMS
//! integration delivers them; until then they are kept and listed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::{self, DbConn};
use crate::error::Result;
use crate::schema::domain_events;

/// Event kind: a person withdrew a consent (or staff withdrew it on their behalf).
pub const CONSENT_WITHDRAWN: &str = "consent.withdrawn";
/// Event kind: a person signed a consent digitally.
pub const CONSENT_SIGNED: &str = "consent.signed";

/// Event kind: a consent reached its end date (recorded by the scheduler the day after).
pub const CONSENT_EXPIRED: &str = "consent.expired";
/// Event kind: a person was erased.
pub const PERSON_ERASED: &str = "person.erased";

/// Every event kind a webhook endpoint can subscribe to.
pub const KINDS: &[&str] = &[
    crate::exposure::ASSET_HIDDEN,
    crate::exposure::ASSET_ALLOWED,
    crate::exposure::ASSET_EXPIRING,
    CONSENT_SIGNED,
    CONSENT_WITHDRAWN,
    CONSENT_EXPIRED,
    PERSON_ERASED,
];

/// An event as recorded, handed to the webhook fan-out in the same transaction.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// What it is about (e.g. `asset`, `agreement`, `person`).
    pub subject_type: &'a str,
    /// That thing's id (the ordering key of webhook deliveries).
    pub subject_id: &'a str,
    /// The details.
    pub payload: &'a serde_json::Value,
}

/// Records an event in the caller's transaction, and queues its webhook deliveries
/// ([`crate::webhooks::fan_out`]) in it too; returns its id.
pub fn record(
    conn: &mut DbConn,
    tenant_id: &str,
    kind: &str,
    subject_type: &str,
    subject_id: &str,
    payload: serde_json::Value,
    now: NaiveDateTime,
) -> Result<String> {
    let id = db::new_id();
    diesel::insert_into(domain_events::table)
        .values((
            domain_events::id.eq(&id),
            domain_events::tenant_id.eq(tenant_id),
            domain_events::kind.eq(kind),
            domain_events::subject_type.eq(subject_type),
            domain_events::subject_id.eq(subject_id),
            domain_events::payload_json.eq(serde_json::to_string(&payload)?),
            domain_events::created_at.eq(now),
        ))
        .execute(conn)?;
    crate::webhooks::fan_out(
        conn,
        tenant_id,
        &NewEvent {
            id: &id,
            kind,
            subject_type,
            subject_id,
            payload: &payload,
        },
        now,
    )?;
    Ok(id)
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = domain_events)]
pub struct EventRow {
    /// ID.
    pub id: String,
    /// Kind (e.g. `consent.withdrawn`).
    pub kind: String,
    /// What it is about (e.g. `agreement`).
    pub subject_type: String,
    /// Its id.
    pub subject_id: String,
    /// Details (JSON).
    pub payload_json: String,
    /// When (UTC).
    pub created_at: NaiveDateTime,
}

/// The tenant's events of `kind` (all kinds when `None`), oldest first.
pub fn list(conn: &mut DbConn, tenant_id: &str, kind: Option<&str>) -> Result<Vec<EventRow>> {
    let mut q = domain_events::table
        .filter(domain_events::tenant_id.eq(tenant_id))
        .into_boxed();
    if let Some(k) = kind {
        q = q.filter(domain_events::kind.eq(k.to_string()));
    }
    Ok(
        q.order((domain_events::created_at.asc(), domain_events::id.asc()))
            .select(EventRow::as_select())
            .load(conn)?,
    )
}

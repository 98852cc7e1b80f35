//! (PUBLISHING) Webhooks to CMSs, signed as the Standard Webhooks specification does.
//! (Being written: see /work/notes/publishing-contract.md.)

use chrono::NaiveDateTime;

use crate::Deps;
use crate::db::DbConn;
use crate::error::Result;

/// Queues one delivery of the event for every enabled endpoint of the tenant subscribed to its
/// type, in the transaction that recorded the event ([`crate::events::record`] calls it).
pub fn fan_out(
    _conn: &mut DbConn,
    _tenant_id: &str,
    _event: &crate::events::NewEvent<'_>,
    _now: NaiveDateTime,
) -> Result<usize> {
    Ok(0)
}

/// Starts this process's dispatcher.
pub fn spawn(_deps: std::sync::Arc<Deps>) {}

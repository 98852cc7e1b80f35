//! (PUBLISHING) Expiry alerts, the daily digest and `consent.expired` events.
//! (Being written: see /work/notes/publishing-contract.md.)

use crate::Deps;
use crate::error::Result;

/// The scheduler's part (every tick): `consent.expired` events, the daily digests.
pub async fn tick(_deps: &Deps) -> Result<()> {
    Ok(())
}

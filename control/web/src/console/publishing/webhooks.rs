//! The console's webhooks pages (being written: /work/notes/publishing-contract.md).

use actix_web::web::ServiceConfig;

/// Registers the routes.
pub fn configure(_cfg: &mut ServiceConfig) {}

//! The console's digital-signing pages: agreement templates and their versions, signing
//! requests (send, resend, revoke), and the outbox's failures.

use actix_web::web::ServiceConfig;

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    let _ = cfg;
}

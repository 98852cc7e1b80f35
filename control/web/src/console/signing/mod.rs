//! The console's digital-signing pages: agreement templates and their versions, signing
//! requests (send, resend, revoke), and the outbox's failures.

use actix_web::web::ServiceConfig;

mod outbox;
pub mod requests;
mod templates;

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(templates::configure)
        .configure(requests::configure)
        .configure(outbox::configure);
}

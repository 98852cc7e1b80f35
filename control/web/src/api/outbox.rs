//! The outbox (e-mails and SMS) and its delivery status.

use actix_web::web::ServiceConfig;

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    let _ = cfg;
}

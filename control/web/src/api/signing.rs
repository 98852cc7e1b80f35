//! Signing requests (staff side) and the evidence-sealing public keys.

use actix_web::web::ServiceConfig;

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    let _ = cfg;
}

//! Agreement templates and their versions.

use actix_web::web::ServiceConfig;

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    let _ = cfg;
}

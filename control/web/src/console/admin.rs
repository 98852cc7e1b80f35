//! The console's admin pages.

use actix_web::web::ServiceConfig;

/// Registers this module's routes.
pub fn configure(_cfg: &mut ServiceConfig) {}

//! The register of persons.

use actix_web::web::ServiceConfig;
use utoipa::OpenApi;

/// OpenAPI paths of this module.
#[derive(OpenApi)]
#[openapi()]
pub struct Api;

/// Registers this module's routes.
pub fn configure(_cfg: &mut ServiceConfig) {}

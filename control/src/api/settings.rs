//! (DOMAIN) settings REST handlers — owned by the DOMAIN helper.

use utoipa::OpenApi;

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi()]
pub struct Api;

/// Registers this module's routes (full paths, e.g. `/api/v1/settings`).
pub fn configure(_cfg: &mut actix_web::web::ServiceConfig) {}

//! (MEDIA) assets REST handlers — owned by the MEDIA helper.

use utoipa::OpenApi;

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi()]
pub struct Api;

/// Registers this module's routes (full paths, e.g. `/api/v1/assets`).
pub fn configure(_cfg: &mut actix_web::web::ServiceConfig) {}

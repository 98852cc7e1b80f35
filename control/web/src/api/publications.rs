//! REST: publications (being written: /work/notes/publishing-contract.md).

use actix_web::web::ServiceConfig;
use utoipa::OpenApi;

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi()]
pub struct Api;

/// Registers this module's routes (full paths).
pub fn configure(_cfg: &mut ServiceConfig) {}

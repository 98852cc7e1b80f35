//! The OpenAPI 3 document, merged from every `api::*::Api`, served at `/api/v1/openapi.json`.
//!
//! Security: an authenticated operation lists `security(("session" = ["perm"]), ("token" = ["perm"]))`
//! where `perm` is the permission it requires (empty list: any authenticated user). The
//! authorization-walk test reads these scopes.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "Browser session from POST /api/v1/auth/login; unsafe methods also need the \
                 X-CSRF-Token header with the csrf_token from the login answer.",
            ))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lk_...")
                    .description(Some("API token from POST /api/v1/tokens"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Likeness control plane",
        description = "Register of persons, files, faces, legal bases, consents, compliance and audit. \
                       Errors are JSON `{\"error\":{\"code\":\"...\",\"message\":\"...\"}}` with stable codes.",
        version = "1"
    ),
    paths(openapi_json),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&SecuritySchemes)
)]
struct Base;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    for part in [
        api::auth::Api::openapi(),
        api::users::Api::openapi(),
        api::persons::Api::openapi(),
        api::audit::Api::openapi(),
        api::assets::Api::openapi(),
        api::faces::Api::openapi(),
        api::jobs::Api::openapi(),
        api::agreements::Api::openapi(),
        api::compliance::Api::openapi(),
        api::settings::Api::openapi(),
        api::processing::Api::openapi(),
        api::outbox::Api::openapi(),
        api::publications::Api::openapi(),
        api::webhooks::Api::openapi(),
        api::shares::Api::openapi(),
        api::alerts::Api::openapi(),
        api::delivery::Api::openapi(),
        api::rights::Api::openapi(),
        api::signing::Api::openapi(),
        api::consent_templates::Api::openapi(),
        api::evidence::Api::openapi(),
        api::exports::Api::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}

/// The document as pretty JSON (what is served and snapshot-tested).
pub fn document_json() -> String {
    document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}

/// Registers `/api/v1/openapi.json`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/openapi.json", web::get().to(openapi_json));
}

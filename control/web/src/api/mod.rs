//! REST handlers under `/api/v1`. Each module exposes `configure` (routes, full paths) and
//! `Api` (its OpenAPI paths, merged by [`crate::openapi`]).

use actix_web::web::ServiceConfig;

/// Lazily parsed JSON bodies and query strings (auth and permission checks come first).
pub mod extract;
/// Reading uploaded files (raw body or multipart), after the permission check.
pub mod upload;

// CORE
pub mod audit;
pub mod auth;
pub mod persons;
pub mod users;

// MEDIA
pub mod assets;
pub mod faces;
pub mod jobs;

// DOMAIN
pub mod agreements;
pub mod compliance;
pub mod processing;
pub mod settings;

// SIGNING
pub mod consent_templates;
pub mod evidence;
pub mod outbox;
pub mod signing;

// PUBLISHING
pub mod alerts;
pub mod delivery;
pub mod publications;
pub mod shares;
pub mod webhooks;

// RIGHTS (erasure and bystanders)
pub mod rights;

// DATA-SUBJECT RIGHTS
pub mod exports;

/// Registers every route.
pub fn configure(cfg: &mut ServiceConfig) {
    crate::openapi::configure(cfg);
    auth::configure(cfg);
    users::configure(cfg);
    persons::configure(cfg);
    audit::configure(cfg);
    assets::configure(cfg);
    faces::configure(cfg);
    jobs::configure(cfg);
    agreements::configure(cfg);
    compliance::configure(cfg);
    settings::configure(cfg);
    processing::configure(cfg);
    consent_templates::configure(cfg);
    evidence::configure(cfg);
    signing::configure(cfg);
    outbox::configure(cfg);
    publications::configure(cfg);
    webhooks::configure(cfg);
    shares::configure(cfg);
    alerts::configure(cfg);
    delivery::configure(cfg);
    rights::configure(cfg);
    exports::configure(cfg);
}

//! The control plane's web edge: the REST API under `/api/v1` (thin actix handlers with their
//! utoipa annotations; OpenAPI at `/api/v1/openapi.json`), the extractors they share (the
//! [`auth::Actor`] of a request, lazily parsed JSON and queries, uploads), and the one
//! conversion of the services' errors into HTTP answers ([`error::ApiError`]); the probes
//! ([`health`]) and the Prometheus metrics ([`metrics`]); and the admin console under `/admin`
//! ([`console`]: server-rendered pages on the same service functions).
//!
//! Handlers parse, call one service function of `likeness-control-service`, and render.

pub mod api;
pub mod app;
pub mod auth;
pub mod console;
pub mod delivery;
pub mod error;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod public;

pub use likeness_control_service as service;
pub use likeness_control_service::{Deps, audit, config, db, pagination, roles, throttle};

//! The Likeness control plane: the system of record for persons, files, faces, legal bases,
//! consents and compliance, with an audit log; REST API under `/api/v1` (OpenAPI at
//! `/api/v1/openapi.json`), SQLite or PostgreSQL through one diesel code path.
//!
//! Layers: `api::*` (thin actix handlers, utoipa annotations) call `service::*` (shared by every
//! transport), which use `db`, `schema`, `audit`, `auth`. See control/README.md for how a module
//! plugs in.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod openapi;
pub mod pagination;
pub mod roles;
pub mod schema;
pub mod service;
pub mod throttle;

pub use app::AppState;
pub use auth::Actor;
pub use config::Config;
pub use db::{DbConn, DbPool};
pub use error::{ControlError, Result};
pub use likeness_control_domain::audit as domain_audit;
pub use roles::{Permission, Role};

//! The Likeness control plane: the system of record for persons, files, faces, legal bases,
//! consents and compliance, with an audit log. This crate is the server binary
//! (`likeness-control`); the library only gathers the layers for the binary and the
//! integration tests:
//!
//! - `likeness-control-db`: schema, migrations, pool, test database;
//! - `likeness-control-service`: the use cases with their permission checks;
//! - `likeness-control-web`: REST handlers, extractors, OpenAPI.

pub use likeness_control_service as service;
pub use likeness_control_service::{
    Deps, audit, config, db, domain_audit, error, pagination, roles, schema,
};
pub use likeness_control_web::{app, openapi};

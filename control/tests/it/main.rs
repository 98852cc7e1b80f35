//! The control plane's integration tests, in one binary (one build of the shared support in
//! `common`): the REST API in process over SQLite and PostgreSQL (`db_test!`), with the real
//! matcher where a test is about the matcher (`media`, `e2e`), and the real binaries across
//! processes (`processes`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

mod access_export;
mod alerts;
mod auth;
mod bystanders;
mod consent_templates;
mod consents;
mod console_admin;
mod console_basics;
mod console_file;
mod console_persons;
mod console_review;
mod console_rights;
mod console_signing;
mod delivery;
mod e2e;
mod erasure;
mod evidence;
mod exposure;
mod http;
mod lifecycle;
mod media;
mod openapi;
mod outbox;
mod permissions;
mod persons;
mod processes;
mod public_pages;
mod public_throttle;
mod publications;
mod publishing_journey;
mod retention;
mod shares;
mod signing;
mod signing_journey;
mod vault;
mod webhooks;

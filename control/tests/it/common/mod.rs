//! Test support shared by the control plane's integration tests: a fresh, migrated database per
//! test (`likeness_control_db::testing::TestDb`: a SQLite file, or a PostgreSQL database cloned
//! from a migrated template on the server named by `LIKENESS_TEST_PG_URL`), an in-process app,
//! and fixtures.
//!
//! ```ignore
//! use crate::common::*;
//! db_test!(my_test, |db: TestDb| async move {
//!     let app = test_app!(db);
//!     ...
//! });
//! ```
//! `db_test!` expands to two tests, `my_test::sqlite` and `my_test::postgres`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use actix_web::web;
use likeness_control::Deps;
use likeness_control::audit::Who;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::service::{tenants, users};

pub use likeness_control_db::testing::{Kind, TestDb};

#[macro_use]
pub mod console;
pub mod journey;
pub mod mail;
pub mod webhook_receiver;

/// App state over a test database.
pub trait TestState {
    /// Dependencies over this database (default config, storage under [`TestDb::dir`]).
    fn state(&self) -> web::Data<Deps>;
}

impl TestState for TestDb {
    fn state(&self) -> web::Data<Deps> {
        let mut cfg = Config::default();
        cfg.database.url = self.url.clone();
        cfg.storage.dir = self.dir().join("blobs");
        cfg.signing.key_file = self.dir().join("evidence-signing.key");
        web::Data::new(Deps::new(self.pool.clone(), cfg))
    }
}

/// Builds the in-process app over a [`TestDb`] (`actix_web::test::init_service`).
#[macro_export]
macro_rules! test_app {
    ($db:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .configure(|c| likeness_control::app::configure_app(c, $db.state())),
        )
        .await
    };
}

/// Defines a test that runs once on SQLite and once on PostgreSQL:
/// `db_test!(name, |db: TestDb| async move { ... });`
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[actix_web::test]
            async fn sqlite() {
                let db = $crate::common::TestDb::new($crate::common::Kind::Sqlite);
                ($body)(db).await
            }
            #[actix_web::test]
            async fn postgres() {
                let db = $crate::common::TestDb::new($crate::common::Kind::Postgres);
                ($body)(db).await
            }
        }
    };
}

/// Password of every fixture user.
pub const PASSWORD: &str = "fixture-password-1";

/// A tenant and one user per role, created through the services.
pub struct Fixture {
    /// Tenant ID.
    pub tenant_id: String,
    /// Tenant slug.
    pub slug: String,
    /// (role, user ID, e-mail) of each role's user.
    pub users: Vec<(Role, String, String)>,
}

impl Fixture {
    /// The user of `role`: (user ID, e-mail).
    pub fn user(&self, role: Role) -> (&str, &str) {
        let (_, id, email) = self.users.iter().find(|(r, _, _)| *r == role).unwrap();
        (id, email)
    }
}

/// Creates tenant `slug` with one user per role (`<role>@<slug>.test`, password [`PASSWORD`]).
pub fn fixture(db: &TestDb, slug: &str) -> Fixture {
    let mut conn = db.conn();
    db::write_tx(&mut conn, |c| {
        let t = tenants::create(c, &Who::system("test", None), slug, slug)?;
        let who = Who::system("test", Some(&t.id));
        let mut out = Vec::new();
        for &role in Role::ALL {
            let email = format!("{}@{slug}.test", role.as_str().replace('_', "-"));
            let u = users::create(
                c,
                &who,
                &t.id,
                users::NewUser {
                    email: email.clone(),
                    role,
                    display_name: None,
                    password: Some(PASSWORD.into()),
                },
            )?;
            out.push((role, u.id, email));
        }
        Ok(Fixture {
            tenant_id: t.id,
            slug: slug.to_string(),
            users: out,
        })
    })
    .unwrap()
}

/// Creates an API token for `user_id` and returns its secret.
pub fn token_for(db: &TestDb, tenant_id: &str, user_id: &str) -> String {
    let mut conn = db.conn();
    db::write_tx(&mut conn, |c| {
        users::create_token(
            c,
            &Who::system("test", Some(tenant_id)),
            tenant_id,
            user_id,
            "test",
        )
    })
    .unwrap()
    .1
}

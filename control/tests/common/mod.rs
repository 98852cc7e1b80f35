//! Test support shared by the control plane's integration tests: a fresh, migrated database per
//! test on SQLite (a temp file) and on PostgreSQL (a new database on the server named by
//! `LIKENESS_TEST_PG_URL`, dropped afterwards), an in-process app, and fixtures.
//!
//! ```ignore
//! mod common;
//! use common::*;
//! db_test!(my_test, |db: TestDb| async move {
//!     let app = test_app!(db);
//!     ...
//! });
//! ```
//! `db_test!` expands to two tests, `my_test::sqlite` and `my_test::postgres`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use actix_web::web;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use likeness_control::Deps;
use likeness_control::audit::Who;
use likeness_control::config::Config;
use likeness_control::db::{self, DbPool};
use likeness_control::roles::Role;
use likeness_control::service::{tenants, users};

/// The backend of a test database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL database.
    Postgres,
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    /// Its pool.
    pub pool: DbPool,
    /// Its URL (SQLite path or postgres:// URL).
    pub url: String,
    /// The backend.
    pub kind: Kind,
    dir: tempfile::TempDir,
    pg_drop: Option<(String, String)>,
}

/// The PostgreSQL server of the tests; fails the test with instructions when unset.
pub fn pg_admin_url() -> String {
    std::env::var("LIKENESS_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "LIKENESS_TEST_PG_URL is not set: PostgreSQL tests need a server. Start one with \
             `source deploy/postgres.sh` (installs and starts PostgreSQL on 127.0.0.1:55432 and \
             exports the variable), then rerun."
        )
    })
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let slash = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host = match slash {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

impl TestDb {
    /// A fresh database of `kind`.
    pub fn new(kind: Kind) -> Self {
        match kind {
            Kind::Sqlite => Self::sqlite(),
            Kind::Postgres => Self::postgres(),
        }
    }

    /// A fresh SQLite file, migrated.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("control.sqlite").display().to_string();
        let pool = db::connect(&url, 4, 10_000).unwrap();
        db::migrate(&mut pool.get().unwrap()).unwrap();
        Self {
            pool,
            url,
            kind: Kind::Sqlite,
            dir,
            pg_drop: None,
        }
    }

    /// A fresh PostgreSQL database, migrated; dropped when the value is dropped.
    pub fn postgres() -> Self {
        let admin = pg_admin_url();
        let name = format!("lk_test_{}", uuid::Uuid::now_v7().simple());
        let mut c = diesel::PgConnection::establish(&admin)
            .unwrap_or_else(|e| panic!("cannot connect to LIKENESS_TEST_PG_URL ({admin}): {e}"));
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = with_database(&admin, &name);
        let pool = db::connect(&url, 4, 10_000).unwrap();
        db::migrate(&mut pool.get().unwrap()).unwrap();
        Self {
            pool,
            url,
            kind: Kind::Postgres,
            dir: tempfile::tempdir().unwrap(),
            pg_drop: Some((admin, name)),
        }
    }

    /// A directory that lives as long as the database (blob stores, config files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A connection.
    pub fn conn(&self) -> db::PooledConn {
        self.pool.get().unwrap()
    }

    /// App state over this database (default config, storage under [`TestDb::dir`]).
    pub fn state(&self) -> web::Data<Deps> {
        let mut cfg = Config::default();
        cfg.database.url = self.url.clone();
        cfg.storage.dir = self.dir.path().join("blobs");
        web::Data::new(Deps::new(self.pool.clone(), cfg))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_drop.take()
            && let Ok(mut c) = diesel::PgConnection::establish(&admin)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
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

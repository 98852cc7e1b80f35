//! The test database: a fresh, migrated database per test on SQLite (a file in a temporary
//! directory) or PostgreSQL (a database on the server named by `LIKENESS_TEST_PG_URL`, cloned
//! from a migrated template and dropped afterwards).
//!
//! The PostgreSQL template is named after the migrations it holds (`lk_tpl_<hash>`), so it is
//! migrated once per server and set of migrations, by whichever test process gets there first
//! (an advisory lock keeps the others waiting); every test then clones it with
//! `CREATE DATABASE .. TEMPLATE`, which takes milliseconds instead of a full migration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;

use crate::{DbPool, PooledConn};

/// Environment variable naming the PostgreSQL server of the tests (an admin URL).
pub const PG_URL_VAR: &str = "LIKENESS_TEST_PG_URL";

/// The backend of a test database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL database.
    Postgres,
}

/// A fresh, migrated database for one test, removed when dropped.
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
    std::env::var(PG_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{PG_URL_VAR} is not set: PostgreSQL tests need a server. Start one with \
             `source deploy/postgres.sh` (installs and starts PostgreSQL on 127.0.0.1:55432 and \
             exports the variable), then rerun."
        )
    })
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
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

/// The template's name: a hash of the PostgreSQL migrations' names and contents.
fn template_name() -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let migrations = MigrationSource::<diesel::pg::Pg>::migrations(&crate::POSTGRES_MIGRATIONS)
        .expect("embedded migrations");
    for m in migrations {
        m.name().to_string().hash(&mut h);
    }
    include_str!("schema.rs").hash(&mut h);
    format!("lk_tpl_{:016x}", h.finish())
}

/// Creates and migrates the template once per server (idempotent, safe across processes).
fn ensure_template(admin: &str) -> String {
    let name = template_name();
    let mut c = diesel::PgConnection::establish(admin)
        .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR} ({admin}): {e}"));
    c.batch_execute("SELECT pg_advisory_lock(7423002)").unwrap();
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let exists: Exists = diesel::sql_query(format!(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}') AS exists"
    ))
    .get_result(&mut c)
    .unwrap();
    if !exists.exists {
        let building = format!("{name}_building");
        // Two statements: DROP/CREATE DATABASE cannot run inside a (multi-statement) transaction.
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {building}"))
            .unwrap();
        {
            let url = with_database(admin, &building);
            let mut t = crate::DbConn::Postgres(diesel::PgConnection::establish(&url).unwrap());
            crate::migrate(&mut t).unwrap();
        }
        // Renamed only once complete: a crash while migrating leaves no half-built template.
        execute_when_unused(
            &mut c,
            &format!("ALTER DATABASE {building} RENAME TO {name}"),
        );
    }
    c.batch_execute("SELECT pg_advisory_unlock(7423002)")
        .unwrap();
    name
}

/// Runs a statement that needs a database nobody is connected to (rename, clone). A session
/// that just disconnected may still be ending on the server: retry for up to 10 s.
fn execute_when_unused(c: &mut diesel::PgConnection, sql: &str) {
    for _ in 0..100 {
        match c.batch_execute(sql) {
            Ok(()) => return,
            Err(e) if e.to_string().contains("being accessed by other users") => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
    panic!("{sql}: the database stayed in use for 10 s");
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
        let pool = crate::connect(&url, 4, 10_000).unwrap();
        crate::migrate(&mut pool.get().unwrap()).unwrap();
        Self {
            pool,
            url,
            kind: Kind::Sqlite,
            dir,
            pg_drop: None,
        }
    }

    /// A fresh PostgreSQL database cloned from the migrated template; dropped with the value.
    pub fn postgres() -> Self {
        let admin = pg_admin_url();
        let template = ensure_template(&admin);
        let name = format!("lk_test_{}", uuid::Uuid::now_v7().simple());
        let mut c = diesel::PgConnection::establish(&admin)
            .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR} ({admin}): {e}"));
        execute_when_unused(
            &mut c,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        );
        let url = with_database(&admin, &name);
        let pool = crate::connect(&url, 4, 10_000).unwrap();
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
    pub fn conn(&self) -> PooledConn {
        self.pool.get().unwrap()
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

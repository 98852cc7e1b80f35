//! The control plane's database: one diesel connection type over SQLite and PostgreSQL
//! ([`DbConn`]), an r2d2 pool, the diesel [`schema`], the embedded twin migrations, and small
//! helpers every service uses (IDs, the write transaction, running on the blocking pool).
//! With the `testing` feature, [`testing`] gives tests a fresh migrated database.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

/// What can go wrong below the services: opening, migrating or querying the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `database.url` (or another setting) is unusable: names the key.
    #[error("{field}: {message}")]
    Config {
        /// The setting at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Could not get a pooled connection or open the database.
    #[error("database connection: {0}")]
    Connection(String),
    /// Migrations failed.
    #[error("migrations: {0}")]
    Migration(String),
    /// The audit chain's head row is missing (database not migrated or tampered with).
    #[error("audit chain: {0}")]
    AuditHead(String),
    /// A query failed.
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    /// The blocking task running the query panicked or was cancelled.
    #[error("blocking task: {0}")]
    Blocking(String),
}

impl From<r2d2::PoolError> for DbError {
    fn from(e: r2d2::PoolError) -> Self {
        Self::Connection(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = DbError> = std::result::Result<T, E>;

pub use multi::DbConn;

mod multi {
    // The derive generates undocumented public items (MultiBackend, ...).
    #![allow(missing_docs)]

    /// One connection to either backend; all queries are written once against this type.
    #[derive(diesel::MultiConnection)]
    pub enum DbConn {
        /// PostgreSQL (production).
        Postgres(diesel::PgConnection),
        /// SQLite (embedded default).
        Sqlite(diesel::SqliteConnection),
    }
}

/// The pool of [`DbConn`]s.
pub type DbPool = r2d2::Pool<Manager>;

/// A pooled connection.
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Which database backend a URL or connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl DbConn {
    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Migrations for SQLite.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// Migrations for PostgreSQL.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Where a configured URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file path.
    Sqlite(String),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Target {
    /// Parses `database.url`: `postgres://` / `postgresql://` is PostgreSQL, anything else a
    /// SQLite path (an optional `sqlite://` or `sqlite:` prefix is stripped).
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path == ":memory:" {
            return Err(DbError::Config {
                field: "database.url".into(),
                message: "needs a SQLite file path or a postgres:// URL".into(),
            });
        }
        if path.contains("://") {
            return Err(DbError::Config {
                field: "database.url".into(),
                message: format!("unknown scheme in {}", redact_url(url)),
            });
        }
        Ok(Self::Sqlite(path.to_string()))
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Hides the password of a URL (`postgres://user:***@host/db`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Opens connections for the pool, setting the SQLite pragmas on each.
#[derive(Debug, Clone)]
pub struct Manager {
    target: Target,
    sqlite_busy_timeout_ms: u32,
}

impl Manager {
    /// A manager for `target`.
    pub fn new(target: Target, sqlite_busy_timeout_ms: u32) -> Self {
        Self {
            target,
            sqlite_busy_timeout_ms,
        }
    }
}

/// Whether a SQLite connection's database is in WAL mode already.
fn is_wal(c: &mut diesel::SqliteConnection) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    diesel::sql_query("PRAGMA journal_mode")
        .load::<Mode>(c)
        .ok()
        .and_then(|m| m.into_iter().next())
        .is_some_and(|m| m.journal_mode.eq_ignore_ascii_case("wal"))
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> std::result::Result<DbConn, r2d2::Error> {
        match &self.target {
            Target::Postgres(url) => diesel::PgConnection::establish(url)
                .map(DbConn::Postgres)
                .map_err(r2d2::Error::ConnectionError),
            Target::Sqlite(path) => {
                let mut c = diesel::SqliteConnection::establish(path)
                    .map_err(r2d2::Error::ConnectionError)?;
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
                    self.sqlite_busy_timeout_ms
                ))
                .map_err(r2d2::Error::QueryError)?;
                // secure_delete (above): deleted rows and overwritten values are zeroed in the
                // file, so that what an erasure removed does not linger in free pages.
                // WAL is a property of the file: set it once. Switching needs the file to
                // itself and SQLite answers "database is locked" without waiting when the
                // pool's other connections open at the same moment, so look first.
                if !is_wal(&mut c) {
                    c.batch_execute("PRAGMA journal_mode = WAL;")
                        .map_err(r2d2::Error::QueryError)?;
                }
                Ok(DbConn::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> std::result::Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// Opens a pool on `url` (creating the SQLite file and its directory if needed).
pub fn connect(url: &str, pool_size: u32, sqlite_busy_timeout_ms: u32) -> Result<DbPool> {
    let target = Target::parse(url)?;
    if let Target::Sqlite(path) = &target
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbError::Connection(format!("cannot create {}: {e}", dir.display())))?;
    }
    let shown = redact_url(url);
    r2d2::Pool::builder()
        .max_size(pool_size)
        .connection_timeout(std::time::Duration::from_secs(30))
        .build(Manager::new(target, sqlite_busy_timeout_ms))
        .map_err(|e| DbError::Connection(format!("{shown}: {e}")))
}

/// Runs the pending migrations of the connection's backend; returns the versions applied.
pub fn migrate(conn: &mut DbConn) -> Result<Vec<String>> {
    let applied = match conn {
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.to_string()).collect()),
        DbConn::Postgres(c) => {
            // Several replicas may start at once: one migrates, the others wait.
            c.batch_execute("SELECT pg_advisory_lock(7423001)")?;
            let r = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>());
            c.batch_execute("SELECT pg_advisory_unlock(7423001)")?;
            r
        }
    };
    applied.map_err(|e| DbError::Migration(e.to_string()))
}

/// How [`refresh_statistics`] refreshes SQLite's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistics {
    /// A full `ANALYZE` (at start: seconds on an archive of 100,000 files).
    Full,
    /// `PRAGMA optimize`: re-analyses only the tables whose size changed a lot since (hourly).
    IfChanged,
}

/// Keeps the query planner's statistics current. SQLite gathers none by itself, and without
/// them (or with ones taken when the tables were nearly empty, or with sampled ones:
/// `analysis_limit` made the file and person pages 50-100 times slower) it prefers the
/// `(tenant_id, ...)` indexes over the primary key (with one tenant every row matches
/// `tenant_id`), which made lists of 100,000 files 10-100 times slower. `serve` runs a full
/// `ANALYZE` at start and the scheduler `PRAGMA optimize` hourly. PostgreSQL's autovacuum does
/// this on its own: nothing is done there. Returns whether anything ran.
pub fn refresh_statistics(conn: &mut DbConn, how: Statistics) -> Result<bool> {
    let DbConn::Sqlite(c) = conn else {
        return Ok(false);
    };
    c.batch_execute(match how {
        Statistics::Full => "ANALYZE",
        Statistics::IfChanged => "PRAGMA optimize=0x10002",
    })?;
    Ok(true)
}

/// Whether the connection's backend has migrations that were not applied yet (readiness).
pub fn has_pending_migrations(conn: &mut DbConn) -> Result<bool> {
    let pending = match conn {
        DbConn::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConn::Postgres(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
    };
    pending.map_err(|e| DbError::Migration(e.to_string()))
}

/// Takes the audit-chain lock (an UPDATE of the one `audit_head` row) for the rest of the
/// transaction.
pub fn lock_audit_chain(conn: &mut DbConn) -> Result<()> {
    use schema::audit_head;
    let n = diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set(audit_head::seq.eq(audit_head::seq))
        .execute(conn)?;
    if n != 1 {
        return Err(DbError::AuditHead(
            "audit_head row missing: the database was not migrated or was tampered with".into(),
        ));
    }
    Ok(())
}

/// Runs `f` in a transaction that first takes the audit-chain lock ([`lock_audit_chain`]). Use
/// it for every transaction that writes: on SQLite the write lock is taken up front (no
/// deadlock when a read is upgraded), on PostgreSQL audit appends are serialised. Rolls back on
/// error.
pub fn write_tx<T, E, F>(conn: &mut DbConn, f: F) -> std::result::Result<T, E>
where
    E: From<diesel::result::Error> + From<DbError>,
    F: FnOnce(&mut DbConn) -> std::result::Result<T, E>,
{
    conn.transaction(|c| {
        lock_audit_chain(c)?;
        f(c)
    })
}

/// Runs `f` with a pooled connection on the blocking thread pool (diesel is synchronous).
pub async fn run<T, E, F>(pool: &DbPool, f: F) -> std::result::Result<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: FnOnce(&mut DbConn) -> std::result::Result<T, E> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        f(&mut conn)
    })
    .await
    .map_err(|e| DbError::Blocking(e.to_string()))?
}

/// A new UUID v7 as a string (time-ordered: sorts by creation).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Now in UTC, truncated to microseconds (both backends store exactly this).
pub fn now() -> chrono::NaiveDateTime {
    let t = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::microseconds(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend() {
        assert_eq!(
            Target::parse("postgres://u:p@h/db").unwrap().backend(),
            Backend::Postgres
        );
        assert_eq!(
            Target::parse("sqlite://x/y.db").unwrap(),
            Target::Sqlite("x/y.db".into())
        );
        assert_eq!(
            Target::parse("a.db").unwrap(),
            Target::Sqlite("a.db".into())
        );
        assert!(Target::parse(":memory:").is_err());
        assert!(Target::parse("mysql://x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:1/db"),
            "postgres://u:***@h:1/db"
        );
        assert_eq!(redact_url("a.db"), "a.db");
    }
}

/// diesel's error types, for transports that classify [`DbError::Query`].
pub mod diesel_error {
    pub use diesel::result::{DatabaseErrorKind, Error};
}

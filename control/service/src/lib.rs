//! The control plane's use cases, shared by every transport (REST, console, CLI, jobs). No
//! HTTP here: errors are [`ControlError`]s that each transport converts once.
//!
//! Every process builds one [`Deps`] (the pool, the configuration, the blob store and matcher,
//! the login throttle, the clock) and hands it to the service functions.

use std::sync::{Arc, OnceLock};

pub use likeness_control_db::schema;

/// The database crate, with its transaction helpers typed for the services' error.
pub mod db {
    pub use likeness_control_db::*;

    use crate::error::Result as ServiceResult;

    /// [`likeness_control_db::write_tx`] returning the services' error.
    pub fn write_tx<T, F>(conn: &mut DbConn, f: F) -> ServiceResult<T>
    where
        F: FnOnce(&mut DbConn) -> ServiceResult<T>,
    {
        likeness_control_db::write_tx(conn, f)
    }

    /// [`likeness_control_db::run`] returning the services' error.
    pub async fn run<T, F>(pool: &DbPool, f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> ServiceResult<T> + Send + 'static,
    {
        likeness_control_db::run(pool, f).await
    }
}

pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod context;
pub mod error;
pub mod failpoint;
pub mod pagination;
pub mod roles;
pub mod throttle;

// CORE
pub mod persons;
pub mod tenants;
pub mod users;

// MEDIA
pub mod assets;
pub mod faces;
pub mod job_kinds;
pub mod jobs;
pub mod rematch;
pub mod scheduler;

// DOMAIN
pub mod agreements;
pub mod compliance;
pub mod processing_record;
pub mod retention;
pub mod rights_settings;
pub mod settings;

// SIGNING
pub mod consent_templates;
pub mod events;
pub mod evidence;
pub mod outbox;
pub mod receipt_pdf;
pub mod signing;

// PUBLISHING
pub mod alerts;
pub mod allowed;
pub mod delivery;
pub mod exposure;
pub mod publications;
pub mod shares;
pub mod webhooks;

// RIGHTS (data-subject rights)
pub mod bystanders;
pub mod erasure;

// THE CONSOLE'S READ MODELS
pub mod overview;
pub mod review;

// Data-subject rights (issue 15).
pub mod access_export;
pub mod vault;

pub use auth::Actor;
pub use clock::Clock;
pub use config::Config;
pub use context::Ctx;
pub use db::{DbConn, DbPool};
pub use error::{ControlError, Result};
pub use likeness_control_domain::audit as domain_audit;
pub use roles::{Permission, Role};

/// The dependencies of the service functions in one process: everything they reach beyond
/// their arguments. Built once at start-up (`Deps::new`), shared as `Arc<Deps>`.
pub struct Deps {
    /// The database pool.
    pub pool: DbPool,
    /// The configuration.
    pub config: Arc<Config>,
    /// Failed-login counters of this process.
    pub login_throttle: throttle::LoginThrottle,
    /// Unknown-token counters of the public pages, per client address.
    pub public_throttle: throttle::PublicThrottle,
    /// The clock of the services, the job workers and the scheduler.
    pub clock: Clock,
    /// The overview's cached counts of files that may not be used, per tenant.
    pub summaries: overview::SummaryCache,
    /// The allowed set in memory (delivery endpoint, share links).
    pub allowed: allowed::AllowedSet,
    /// The rendition bytes kept in memory by the delivery endpoint.
    pub renditions: delivery::RenditionCache,
    /// Wakes this process's webhook dispatcher when a delivery is queued.
    pub webhook_wake: std::sync::Arc<tokio::sync::Notify>,
    /// The blob store and matcher client, opened on first use from `[storage]` and `[matcher]`
    /// (a process that never touches files needs no master key).
    media: OnceLock<Arc<assets::Media>>,
    /// The key that seals evidence, opened on first use from `[signing]`.
    signer: OnceLock<Arc<evidence::EvidenceSigner>>,
    /// Per-person keys (crypto-shredding), opened with the blob store on first use.
    vault: OnceLock<Arc<vault::Vault>>,
}

impl Deps {
    /// Dependencies over a pool and a configuration.
    pub fn new(pool: DbPool, config: Config) -> Self {
        Self::with_clock(pool, config, Clock::system())
    }

    /// Dependencies with a given clock (tests: [`Clock::manual`]).
    pub fn with_clock(pool: DbPool, config: Config, clock: Clock) -> Self {
        let rendition_bytes = config.delivery.memory_cache_mib.saturating_mul(1024 * 1024);
        Self {
            pool,
            config: Arc::new(config),
            login_throttle: throttle::LoginThrottle::default(),
            public_throttle: throttle::PublicThrottle::default(),
            clock,
            summaries: overview::SummaryCache::default(),
            allowed: allowed::AllowedSet::default(),
            renditions: delivery::RenditionCache::new(rendition_bytes),
            webhook_wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            media: OnceLock::new(),
            signer: OnceLock::new(),
            vault: OnceLock::new(),
        }
    }

    /// The blob store and matcher client (opened on the first call).
    pub fn media(&self) -> Result<Arc<assets::Media>> {
        if let Some(m) = self.media.get() {
            return Ok(Arc::clone(m));
        }
        let fresh = Arc::new(assets::open_media(&self.config)?);
        // Two first callers may race: the first one stored wins, the other's copy is dropped.
        Ok(Arc::clone(self.media.get_or_init(|| fresh)))
    }
}

impl Deps {
    /// The key that seals evidence (opened, or created, on the first call).
    pub fn signer(&self) -> Result<Arc<evidence::EvidenceSigner>> {
        if let Some(s) = self.signer.get() {
            return Ok(Arc::clone(s));
        }
        let fresh = Arc::new(evidence::EvidenceSigner::open(&self.config.signing)?);
        Ok(Arc::clone(self.signer.get_or_init(|| fresh)))
    }
}

/// Runs blocking work (file I/O, image decoding, blob crypto) on the blocking thread pool.
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ControlError::Internal(format!("blocking task: {e}")))
}

/// Opens the database pool as configured in `[database]`.
pub fn connect_database(cfg: &config::DatabaseConfig) -> Result<DbPool> {
    Ok(db::connect(
        &cfg.url,
        cfg.pool_size,
        cfg.sqlite_busy_timeout_ms,
    )?)
}

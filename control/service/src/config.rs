//! Typed, documented configuration of the control plane: a TOML file plus environment overrides
//! (`LIKENESS_CONTROL__SECTION__KEY=value`, e.g. `LIKENESS_CONTROL__DATABASE__URL`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ControlError;

/// Prefix of environment overrides; sections are separated by a double underscore.
pub const ENV_PREFIX: &str = "LIKENESS_CONTROL__";

/// The whole control-plane configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP endpoint, sessions and request limits.
    pub server: ServerConfig,
    /// The database (SQLite file or PostgreSQL URL).
    pub database: DatabaseConfig,
    /// Encrypted blob storage (files, thumbnails, consent documents).
    pub storage: StorageConfig,
    /// The face matcher (gRPC).
    pub matcher: MatcherConfig,
    /// Logging.
    pub log: LogConfig,
    /// Background jobs and the scheduler.
    pub jobs: JobsConfig,
    /// Digital signing: public links, one-time codes, the evidence-sealing key.
    pub signing: SigningConfig,
    /// Outgoing e-mail (SMTP).
    pub mail: MailConfig,
    /// Outgoing SMS (an HTTP gateway).
    pub sms: SmsConfig,
    /// The outbox of e-mails and SMS: retries and the dead-letter state.
    pub outbox: OutboxConfig,
    /// The delivery endpoint (`/d/...`) and the allowed-set cache behind it and share links.
    pub delivery: DeliveryConfig,
    /// Webhooks to CMSs: timeouts, retries, disabling.
    pub webhooks: WebhooksConfig,
    /// Expiry alerts and the daily digest e-mail.
    pub alerts: AlertsConfig,
}

/// The delivery endpoint and the in-memory allowed set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// The address delivery URLs and share links are built on (empty: `signing.public_base_url`).
    pub public_base_url: String,
    /// `Cache-Control: max-age` (and `s-maxage`) of served renditions, in seconds: how long a
    /// CDN or browser may keep a file after it stopped being allowed, unless purged.
    pub max_age_secs: u32,
    /// Bytes of renditions kept in memory per process, in MiB (0: none).
    pub memory_cache_mib: usize,
    /// How often each process reads the allowed set's change log, in milliseconds.
    pub cache_poll_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            public_base_url: String::new(),
            max_age_secs: 60,
            memory_cache_mib: 256,
            cache_poll_ms: 50,
        }
    }
}

/// Webhook delivery policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Timeout of one request, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts of one delivery before it is dead (kept, shown, redelivered only by hand).
    pub max_attempts: i32,
    /// Consecutive failed attempts after which an endpoint is disabled.
    pub disable_after_failures: i32,
    /// The dispatcher's pause between looks for due deliveries, in milliseconds (a delivery
    /// queued in the same process is picked up at once).
    pub poll_ms: u64,
    /// Requests in flight at once per process.
    pub concurrency: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            max_attempts: 15,
            disable_after_failures: 100,
            poll_ms: 200,
            concurrency: 16,
        }
    }
}

/// Expiry alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// The hour (UTC, 0..=23) from which the daily digest of expiring consents is sent.
    pub digest_hour_utc: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self { digest_hour_utc: 7 }
    }
}

/// Digital signing: the public pages' address, link and code lifetimes, limits, and the key
/// that seals evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// The address the public pages are reached at, as put in links sent to persons (e.g.
    /// `https://consent.example.org`); no trailing slash.
    pub public_base_url: String,
    /// File holding the Ed25519 seed (hex, 32 bytes) that seals evidence; created (mode 0600)
    /// on first use when missing.
    pub key_file: PathBuf,
    /// How long a signing link stays valid, in hours.
    pub link_ttl_hours: i64,
    /// How long a one-time code stays valid, in minutes.
    pub code_ttl_minutes: i64,
    /// Wrong codes allowed per challenge; then the request locks.
    pub max_code_attempts: i32,
    /// Shortest pause between two codes sent for one request, in seconds.
    pub resend_min_secs: i64,
    /// Most codes sent for one request (or one receipt) in all.
    pub max_code_sends: i32,
    /// Most codes sent to one address (e-mail or phone) per hour, over all requests.
    pub max_codes_per_destination_per_hour: i64,
    /// Unknown link or receipt tokens one client address may try within
    /// `unknown_token_window_secs`; past it, every public token page from there answers 429
    /// (0: no limit).
    pub max_unknown_tokens_per_ip: usize,
    /// The window of `max_unknown_tokens_per_ip`, in seconds.
    pub unknown_token_window_secs: u64,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            public_base_url: "http://127.0.0.1:8080".into(),
            key_file: PathBuf::from(".data/evidence-signing.key"),
            link_ttl_hours: 14 * 24,
            code_ttl_minutes: 10,
            max_code_attempts: 5,
            resend_min_secs: 60,
            max_code_sends: 5,
            max_codes_per_destination_per_hour: 10,
            max_unknown_tokens_per_ip: 30,
            unknown_token_window_secs: 600,
        }
    }
}

/// Outgoing e-mail through an SMTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// SMTP server URL: `smtp://host:port` (plain, for a local relay), `smtp://host:587?tls=required`
    /// (STARTTLS) or `smtps://host:465` (TLS); user and password may be given in the URL
    /// (`smtps://user:pass@host`). Empty: e-mail is not configured (messages wait in the outbox).
    pub smtp_url: String,
    /// The sender (`Name <address>` or an address).
    pub from: String,
    /// Deadline of one SMTP delivery, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_url: String::new(),
            from: "Likeness <no-reply@localhost>".into(),
            timeout_ms: 10_000,
        }
    }
}

/// Outgoing SMS through any provider's HTTP API: a request to `url` with a body made from
/// `body_template`, where `{to}`, `{from}`, `{text}` and `{message_id}` are replaced (JSON-escaped
/// when `content_type` is JSON, form-encoded when it is `application/x-www-form-urlencoded`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// The gateway's endpoint; empty: SMS is not configured (messages wait in the outbox).
    pub url: String,
    /// HTTP method (`POST` or `PUT`).
    pub method: String,
    /// Value of the `Authorization` header (e.g. `Bearer ...` or `Basic ...`); empty: none.
    pub authorization: String,
    /// `Content-Type` of the body.
    pub content_type: String,
    /// The body, with `{to}`, `{from}`, `{text}`, `{message_id}` placeholders.
    pub body_template: String,
    /// The sender name or number passed as `{from}`.
    pub from: String,
    /// Deadline of one gateway call, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            method: "POST".into(),
            authorization: String::new(),
            content_type: "application/json".into(),
            body_template:
                r#"{"to":"{to}","from":"{from}","text":"{text}","reference":"{message_id}"}"#.into(),
            from: "Likeness".into(),
            timeout_ms: 10_000,
        }
    }
}

/// The outbox's delivery policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Delivery attempts before a message is dead (kept, shown, retried only by hand).
    pub max_attempts: i32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self { max_attempts: 12 }
    }
}

/// Background jobs: workers, polling, retries and leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Workers per process.
    pub workers: usize,
    /// Pause of an idle worker before it looks again, in milliseconds.
    pub poll_ms: u64,
    /// First retry delay in milliseconds; doubled per attempt.
    pub backoff_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub backoff_max_ms: u64,
    /// How long a claimed job stays with its worker before others may take it over, in seconds.
    pub lease_secs: u64,
    /// Pause between the scheduler's periodic ticks (expiry sweeps), in milliseconds.
    pub scheduler_tick_ms: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            poll_ms: 500,
            backoff_base_ms: 1000,
            backoff_max_ms: 60_000,
            lease_secs: 300,
            scheduler_tick_ms: 30_000,
        }
    }
}

/// HTTP endpoint, sessions and request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// HTTP worker threads (0: one per CPU core).
    pub workers: usize,
    /// Lifetime of a browser session, in minutes.
    pub session_ttl_minutes: i64,
    /// Set the `Secure` attribute on the session cookie (default on: browsers then send it
    /// only over HTTPS; turn it off only for plain-HTTP trials on localhost, as
    /// `deploy/quickstart.sh` does).
    pub cookie_secure: bool,
    /// Largest request body accepted, in bytes (uploads included).
    pub max_body_bytes: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted reverse proxy).
    pub trust_forwarded_for: bool,
    /// The window in which failed logins are counted, in seconds.
    pub login_window_secs: u64,
    /// Failed logins allowed per account (tenant + e-mail) within the window; then 429.
    pub login_max_failures_per_account: usize,
    /// Failed logins allowed per client address within the window; then 429.
    pub login_max_failures_per_ip: usize,
}

impl ServerConfig {
    /// The login throttle's limits.
    pub fn login_limits(&self) -> crate::throttle::Limits {
        crate::throttle::Limits {
            window: std::time::Duration::from_secs(self.login_window_secs),
            per_account: self.login_max_failures_per_account,
            per_ip: self.login_max_failures_per_ip,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            session_ttl_minutes: 12 * 60,
            cookie_secure: true,
            max_body_bytes: 256 << 20,
            trust_forwarded_for: false,
            login_window_secs: 15 * 60,
            login_max_failures_per_account: 5,
            login_max_failures_per_ip: 50,
        }
    }
}

/// The database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user:pass@host:port/db` for PostgreSQL; anything else is a SQLite file path
    /// (an optional `sqlite://` prefix is stripped; `:memory:` is refused).
    pub url: String,
    /// Most pooled connections.
    pub pool_size: u32,
    /// How long a SQLite writer waits for the write lock, in milliseconds.
    pub sqlite_busy_timeout_ms: u32,
    /// Run pending migrations when `serve` starts.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: ".data/likeness-control.sqlite".into(),
            pool_size: 8,
            sqlite_busy_timeout_ms: 10_000,
            migrate_on_start: true,
        }
    }
}

/// Encrypted blob storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory holding the encrypted blobs.
    pub dir: PathBuf,
    /// File holding the master key (hex, 32 bytes) that wraps the per-tenant data keys.
    pub master_key_file: Option<PathBuf>,
    /// The master key itself (hex); prefer `master_key_file` or the environment.
    pub master_key: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(".data/blobs"),
            master_key_file: None,
            master_key: None,
        }
    }
}

/// The face matcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatcherConfig {
    /// gRPC endpoint of `likeness-matcher serve`; empty disables matching.
    pub url: String,
    /// Deadline of one matcher call, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:50051".into(),
            timeout_ms: 30_000,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `likeness_control=debug`.
    pub filter: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Loads defaults, then the TOML file (if any), then environment overrides, and
    /// validates the result. Errors name the offending key and where it came from.
    pub fn load(file: Option<&Path>) -> Result<Self, ControlError> {
        let cfg: Config = likeness_common::config::load(file, ENV_PREFIX)
            .map_err(|e| ControlError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that parse but make no sense; the message names the key.
    pub fn validate(&self) -> Result<(), ControlError> {
        let bad = |key: &str, msg: &str| Err(ControlError::Config(format!("{key}: {msg}")));
        if self.database.url.trim().is_empty() {
            return bad("database.url", "must not be empty");
        }
        if self.database.url.trim() == ":memory:" {
            return bad(
                "database.url",
                "an in-memory SQLite database is not shared between pooled connections; use a file",
            );
        }
        if self.database.pool_size == 0 {
            return bad("database.pool_size", "must be at least 1");
        }
        if self.server.session_ttl_minutes <= 0 {
            return bad("server.session_ttl_minutes", "must be at least 1");
        }
        if self.server.max_body_bytes < 1024 {
            return bad("server.max_body_bytes", "must be at least 1024");
        }
        if self.server.login_window_secs == 0 {
            return bad("server.login_window_secs", "must be at least 1");
        }
        if self.server.login_max_failures_per_account == 0 {
            return bad(
                "server.login_max_failures_per_account",
                "must be at least 1",
            );
        }
        if self.jobs.workers == 0 {
            return bad("jobs.workers", "must be at least 1");
        }
        if self.jobs.poll_ms == 0 {
            return bad("jobs.poll_ms", "must be at least 1");
        }
        if self.jobs.backoff_base_ms == 0 || self.jobs.backoff_max_ms < self.jobs.backoff_base_ms {
            return bad(
                "jobs.backoff_max_ms",
                "needs 1 <= jobs.backoff_base_ms <= jobs.backoff_max_ms",
            );
        }
        if self.jobs.lease_secs == 0 {
            return bad("jobs.lease_secs", "must be at least 1");
        }
        if self.jobs.scheduler_tick_ms == 0 {
            return bad("jobs.scheduler_tick_ms", "must be at least 1");
        }
        if self.server.login_max_failures_per_ip == 0 {
            return bad("server.login_max_failures_per_ip", "must be at least 1");
        }
        Ok(())
    }

    /// The effective configuration as TOML (for `check-config`), secrets masked.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if !shown.sms.authorization.is_empty() {
            shown.sms.authorization = "(set)".into();
        }
        shown.mail.smtp_url = crate::db::redact_url(&shown.mail.smtp_url);
        if shown.storage.master_key.is_some() {
            shown.storage.master_key = Some("(set)".into());
        }
        shown.database.url = crate::db::redact_url(&shown.database.url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn wrong_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[database]\nurll = \"x\"\n").unwrap();
        let err = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn zero_pool_is_refused() {
        let mut c = Config::default();
        c.database.pool_size = 0;
        assert!(c.validate().unwrap_err().to_string().contains("pool_size"));
    }
}

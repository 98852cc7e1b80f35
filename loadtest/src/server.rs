//! Spawning `likeness-control serve` on a fresh database, with an admin and an API token.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hyper::Method;
use tokio::process::{Child, Command};

use crate::http::{Conn, Extra, Target};
use crate::{Args, Db};

const TENANT: &str = "loadtest";
const EMAIL: &str = "admin@loadtest.invalid";

/// A spawned server; `stop` ends it and removes its database.
pub struct Spawned {
    /// Its process ID (for CPU accounting).
    pub pid: Option<u32>,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// An admin's API token.
    pub token: String,
    child: Child,
    _dir: tempfile::TempDir,
    log: PathBuf,
    pg: Option<(String, String)>,
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("running psql (the PostgreSQL client; deploy/postgres.sh installs it)")?;
    if !out.status.success() {
        bail!(
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `postgres://.../postgres` with the database name replaced.
fn pg_db_url(url: &str, db: &str) -> Result<String> {
    let (head, tail) = url
        .rsplit_once('/')
        .context("--pg-url must be postgres://user@host:port/db")?;
    if !head.contains("://") || head.ends_with('/') {
        bail!("--pg-url must be postgres://user@host:port/db: {url}");
    }
    let query = tail.split_once('?').map(|(_, q)| format!("?{q}"));
    Ok(format!("{head}/{db}{}", query.unwrap_or_default()))
}

fn random_hex(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(b))
}

impl Spawned {
    /// Creates the database, the admin and starts the server; logs in and creates a token.
    pub async fn start(bin: &Path, args: &Args) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("likeness-loadtest-")
            .tempdir()
            .context("creating a temporary directory")?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
            l.local_addr()?.port()
        };
        let (db_url, pg) = match args.db {
            Db::Sqlite => (
                dir.path().join("control.sqlite").display().to_string(),
                None,
            ),
            Db::Postgres => {
                let name = format!("likeness_load_{}", random_hex(6)?);
                psql(&args.pg_url, &format!("CREATE DATABASE {name}"))?;
                (
                    pg_db_url(&args.pg_url, &name)?,
                    Some((args.pg_url.clone(), name)),
                )
            }
        };
        let key_file = dir.path().join("master.key");
        std::fs::write(&key_file, random_hex(32)?)?;
        let config = dir.path().join("control.toml");
        let toml = format!(
            "[server]\nhttp_addr = \"127.0.0.1:{port}\"\nworkers = {workers}\n\n\
             [database]\nurl = {db}\npool_size = {pool}\n\n\
             [storage]\ndir = {blobs}\nmaster_key_file = {key}\n\n\
             [matcher]\nurl = {matcher}\ntimeout_ms = 2000\n\n[log]\nfilter = \"warn\"\n",
            workers = args.server_workers,
            db = toml_str(&db_url),
            pool = args.pool_size,
            blobs = toml_str(&dir.path().join("blobs").display().to_string()),
            key = toml_str(&key_file.display().to_string()),
            matcher = toml_str(&args.matcher_url),
        );
        std::fs::write(&config, toml)?;
        let password = random_hex(12)?;
        let out = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(["create-admin", "--tenant", TENANT, "--email", EMAIL])
            .env("LIKENESS_ADMIN_PASSWORD", &password)
            .output()
            .await
            .with_context(|| format!("running {} create-admin", bin.display()))?;
        if !out.status.success() {
            bail!(
                "create-admin failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let log = dir.path().join("serve.log");
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} serve", bin.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        let mut s = Self {
            pid: child.id(),
            base: base.clone(),
            token: String::new(),
            child,
            _dir: dir,
            log,
            pg,
        };
        match s.login(&password).await {
            Ok(t) => {
                s.token = t;
                Ok(s)
            }
            Err(e) => {
                let tail = s.stop().await;
                Err(e.context(format!("server log: {tail}")))
            }
        }
    }

    async fn login(&mut self, password: &str) -> Result<String> {
        let target = Target::parse(&self.base, "none")?;
        let mut conn = Conn::new(&target);
        let started = Instant::now();
        let no_bearer = Extra {
            no_bearer: true,
            ..Extra::default()
        };
        let body = serde_json::json!({"tenant": TENANT, "email": EMAIL, "password": password});
        let login = loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("likeness-control serve exited at start ({st})");
            }
            let bytes = bytes::Bytes::from(serde_json::to_vec(&body)?);
            match conn
                .send(
                    Method::POST,
                    "/api/v1/auth/login",
                    Some(("application/json", bytes)),
                    &no_bearer,
                )
                .await
            {
                Ok(a) => break a.expect_status(200, "login")?,
                Err(_) if started.elapsed() < Duration::from_secs(90) => {
                    conn = Conn::new(&target);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.context("the server did not answer within 90 s")),
            }
        };
        let csrf = login.json()?["csrf_token"]
            .as_str()
            .context("login answer without csrf_token")?
            .to_string();
        let cookie = login
            .cookies
            .iter()
            .find_map(|c| {
                c.split(';')
                    .next()
                    .filter(|kv| kv.starts_with("lk_session="))
            })
            .context("login answer without the lk_session cookie")?
            .to_string();
        let session = Extra {
            cookie: Some(cookie),
            csrf: Some(csrf),
            no_bearer: true,
        };
        let bytes = bytes::Bytes::from(serde_json::to_vec(
            &serde_json::json!({"name": "likeness-loadtest"}),
        )?);
        let tok = conn
            .send(
                Method::POST,
                "/api/v1/tokens",
                Some(("application/json", bytes)),
                &session,
            )
            .await?
            .expect_status(201, "creating an API token")?;
        Ok(tok.json()?["secret"]
            .as_str()
            .context("token answer without secret")?
            .to_string())
    }

    /// Ends the server, drops its PostgreSQL database; returns a summary of its log.
    pub async fn stop(mut self) -> serde_json::Value {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        if let Some((url, name)) = &self.pg
            && let Err(e) = psql(url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        {
            eprintln!("likeness-loadtest: {e:#}");
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
        let warns = text.lines().filter(|l| l.contains("WARN")).count();
        let locked = text.matches("database is locked").count();
        let last: Vec<&str> = text.lines().rev().take(15).collect();
        serde_json::json!({
            "error_lines": errors.len(),
            "warn_lines": warns,
            "database_is_locked": locked,
            "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
            "last_lines": last.into_iter().rev().collect::<Vec<_>>(),
        })
    }
}

fn toml_str(s: &str) -> String {
    toml_escape(s)
}

/// A TOML basic string.
fn toml_escape(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => o.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_url_gets_the_database_replaced() {
        assert_eq!(
            pg_db_url("postgres://postgres@127.0.0.1:55432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:55432/x"
        );
        assert_eq!(
            pg_db_url("postgres://u@h/postgres?sslmode=disable", "y").unwrap(),
            "postgres://u@h/y?sslmode=disable"
        );
        assert!(pg_db_url("nonsense", "x").is_err());
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_escape("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}

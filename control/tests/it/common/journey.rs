//! A real `likeness-control serve` for journeys through HTTP: a SQLite file or a fresh
//! PostgreSQL database, the CLI's `migrate` and `create-admin`, `serve` on a free port with a
//! real SMTP server, the admin's API token; and the clients a journey needs (staff with the
//! token, a person's browser with cookies by hand).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use serde_json::{Value, json};

use crate::common::mail::{MailServer, free_port};

pub const BIN: &str = env!("CARGO_BIN_EXE_likeness-control");
pub const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
pub const ADMIN: &str = "admin@acme.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// Longest wait for background work (mail delivery by the job workers).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A SQLite file, or a fresh PostgreSQL database dropped at the end.
pub struct Database {
    /// Its URL.
    pub url: String,
    pg_drop: Option<(String, String)>,
}

impl Database {
    pub fn new(postgres: bool, dir: &Path) -> Self {
        if !postgres {
            return Self {
                url: dir.join("control.sqlite").display().to_string(),
                pg_drop: None,
            };
        }
        let admin = std::env::var("LIKENESS_TEST_PG_URL")
            .expect("LIKENESS_TEST_PG_URL (source deploy/postgres.sh)");
        let name = format!("lk_sign_{}", uuid::Uuid::now_v7().simple());
        let mut c = diesel::PgConnection::establish(&admin).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
        let host_end = base.find("://").map_or(0, |i| i + 3);
        let host = base[host_end..]
            .find('/')
            .map_or(base, |i| &base[..host_end + i]);
        let url = if query.is_empty() {
            format!("{host}/{name}")
        } else {
            format!("{host}/{name}?{query}")
        };
        Self {
            url,
            pg_drop: Some((admin, name)),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_drop.take()
            && let Ok(mut c) = diesel::PgConnection::establish(&admin)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// `likeness-control` with exactly `env` as its configuration.
pub fn command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("LIKENESS_CONTROL") || k == "LIKENESS_ADMIN_PASSWORD" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Runs a subcommand: (exit code, stdout).
pub fn cli(env: &[(String, String)], args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = command(env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    if code == 2 || code < 0 {
        panic!(
            "likeness-control {args:?}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (code, stdout)
}

/// `likeness-control serve`, killed on drop.
pub struct Serve(pub Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP answer.
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// `name=value` of a cookie it sets.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|h| h.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .and_then(|c| c.split(';').next())
            .map(str::to_string)
    }

    /// The value of the page's hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let t = self.text();
        let i = t.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        t[i..i + t[i..].find('"').unwrap()].to_string()
    }

    /// The first `href` starting with `prefix`.
    pub fn href(&self, prefix: &str) -> String {
        let t = self.text();
        let i = t
            .find(&format!("href=\"{prefix}"))
            .unwrap_or_else(|| panic!("no link to {prefix} in {t}"))
            + 6;
        t[i..i + t[i..].find('"').unwrap()].to_string()
    }
}

/// A client of the server: staff with a bearer token, or a person's browser (cookie by hand).
pub struct Http {
    /// The client (no redirects followed).
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The API token, if any.
    pub bearer: Option<String>,
}

impl Http {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(PATIENCE)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            bearer: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let req = match &self.bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.unwrap();
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.unwrap().to_vec(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post_json(&self, path: &str, v: Value) -> Answer {
        self.send(self.http.post(self.url(path)).json(&v)).await
    }

    pub async fn put_json(&self, path: &str, v: Value) -> Answer {
        self.send(self.http.put(self.url(path)).json(&v)).await
    }

    /// A browser's form post: the page's cookie and the same-origin `Origin` header.
    pub async fn post_form(&self, path: &str, cookie: &str, form: &str) -> Answer {
        self.send(
            self.http
                .post(self.url(path))
                .header("cookie", cookie)
                .header("origin", &self.base)
                .header("user-agent", "journey-test/1.0")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.to_string()),
        )
        .await
    }

    /// The web verdict of an asset today.
    pub async fn web_status(&self, asset: &str) -> String {
        let a = self
            .get(&format!("/api/v1/assets/{asset}/compliance?channel=web"))
            .await;
        assert_eq!(a.status, 200, "{}", a.text());
        let v = a.json();
        v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["channel"] == "web")
            .unwrap_or_else(|| panic!("no web verdict: {v}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// The six digits standing alone in a text.
pub fn code_in(text: &str) -> String {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(5))
        .find(|&i| {
            b[i..i + 6].iter().all(u8::is_ascii_digit)
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
                && (i + 6 == b.len() || !b[i + 6].is_ascii_alphanumeric())
        })
        .map(|i| text[i..i + 6].to_string())
        .unwrap_or_else(|| panic!("no code in {text:?}"))
}

/// A running server of tenant `acme` and its admin's API token.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin with an API token.
    pub staff: Http,
    /// Anonymous (a person's browser).
    pub anon: Http,
    /// The configuration it runs with.
    pub env: Vec<(String, String)>,
    serve: Serve,
}

impl Server {
    /// Migrates `db`, creates tenant `acme` and its admin, starts `serve` (job workers
    /// delivering mail to `smtp`; links in messages name the server's address) with the
    /// extra `LIKENESS_CONTROL__` settings `extra` (`("SECTION__KEY", value)`), logs in and
    /// makes the admin an API token.
    pub async fn start(
        db: &Database,
        dir: &Path,
        smtp: &MailServer,
        extra: &[(&str, String)],
    ) -> Self {
        let env_at = |port: u16| -> Vec<(String, String)> {
            [
                ("DATABASE__URL", db.url.clone()),
                ("DATABASE__POOL_SIZE", "4".into()),
                ("SERVER__HTTP_ADDR", format!("127.0.0.1:{port}")),
                ("SERVER__WORKERS", "2".into()),
                ("SERVER__COOKIE_SECURE", "false".into()),
                ("STORAGE__DIR", dir.join("blobs").display().to_string()),
                ("STORAGE__MASTER_KEY", KEY.into()),
                // No matcher: enrolments and removals wait in the job queue.
                ("MATCHER__URL", "http://127.0.0.1:9".into()),
                ("MATCHER__TIMEOUT_MS", "500".into()),
                // The links in the mails name the server's address, so the port is chosen first.
                (
                    "SIGNING__PUBLIC_BASE_URL",
                    format!("http://127.0.0.1:{port}"),
                ),
                (
                    "SIGNING__KEY_FILE",
                    dir.join("evidence.key").display().to_string(),
                ),
                ("MAIL__SMTP_URL", smtp.smtp_url()),
                ("MAIL__FROM", "Acme Pictures <consent@acme.test>".into()),
                ("LOG__FILTER", "warn".into()),
            ]
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (*k, v.clone())))
            .map(|(k, v)| (format!("LIKENESS_CONTROL__{k}"), v))
            .collect()
        };
        let env = env_at(free_port());
        assert_eq!(cli(&env, &["migrate"], "").0, 0);
        let (exit, out) = cli(
            &env,
            &[
                "create-admin",
                "--tenant",
                "acme",
                "--tenant-name",
                "Acme Pictures",
                "--email",
                ADMIN,
            ],
            &format!("{ADMIN_PASSWORD}\n"),
        );
        assert_eq!(exit, 0, "{out}");
        // `serve` on a free port; another port when another process took it meanwhile.
        let mut attempt = 0;
        let (_serve, base) = loop {
            attempt += 1;
            let port = free_port();
            let mut serve = Serve(
                command(&env_at(port))
                    .arg("serve")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap(),
            );
            let base = format!("http://127.0.0.1:{port}");
            let probe = reqwest::Client::new();
            let start = Instant::now();
            let up = loop {
                if probe
                    .get(format!("{base}/health/live"))
                    .send()
                    .await
                    .is_ok()
                {
                    break true;
                }
                if serve.0.try_wait().unwrap().is_some() {
                    break false;
                }
                assert!(start.elapsed() < PATIENCE, "the server did not start");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if up {
                break (serve, base);
            }
            assert!(attempt < 5, "likeness-control serve exited {attempt} times");
        };
        let anon = Http::new(&base);

        // Staff: log in once, make an API token, then work with it.
        let login = anon
            .post_json(
                "/api/v1/auth/login",
                json!({"tenant": "acme", "email": ADMIN, "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(login.status, 200, "{}", login.text());
        let session = login.cookie("lk_session").unwrap();
        let csrf = login.json()["csrf_token"].as_str().unwrap().to_string();
        let me = anon
            .send(
                anon.http
                    .get(format!("{base}/api/v1/me"))
                    .header("cookie", &session),
            )
            .await
            .json();
        let token = anon
            .send(
                anon.http
                    .post(format!("{base}/api/v1/tokens"))
                    .header("cookie", &session)
                    .header("x-csrf-token", &csrf)
                    .json(&json!({"name": "journey", "user_id": me["user"]["id"]})),
            )
            .await;
        assert_eq!(token.status, 201, "{}", token.text());
        let staff = Http {
            bearer: Some(token.json()["secret"].as_str().unwrap().to_string()),
            ..Http::new(&base)
        };
        Self {
            base: base.clone(),
            staff,
            anon: Http::new(&base),
            env,
            serve: _serve,
        }
    }
}

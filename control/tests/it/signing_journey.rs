//! (SIGNING) The whole journey through real HTTP, as a person would do it, on SQLite and
//! PostgreSQL: the real `likeness-control serve` (set up with its own CLI, its job workers
//! delivering the outbox) and a real SMTP server (aiosmtpd). Staff, with an API token, make a
//! person with an e-mail, a photo with a hand-drawn face confirmed as that person and consent as
//! its legal basis (not allowed yet), a template and a signing request. The test reads the mail
//! from the SMTP server, follows the link, ticks the scopes (face matching too), reads the code's
//! mail and types the code: the file is approved. The receipt (JSON) verifies through the API
//! and the CLI; a changed byte does not. The receipt's mail leads to the withdrawal: one code from
//! the next mail, and the file is no longer allowed, the person's templates are queued for
//! removal. Replaying the signing link gives 410.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use likeness_control_media::testing::data_dir;
use serde_json::{Value, json};

use crate::common::mail::{MailServer, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_likeness-control");
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const ADMIN: &str = "admin@acme.test";
const ADMIN_PASSWORD: &str = "admin-password-1";
const KARI: &str = "kari@example.org";
/// Longest wait for background work (mail delivery by the job workers).
const PATIENCE: Duration = Duration::from_secs(60);

/// A SQLite file, or a fresh PostgreSQL database dropped at the end.
struct Database {
    url: String,
    pg_drop: Option<(String, String)>,
}

impl Database {
    fn new(postgres: bool, dir: &Path) -> Self {
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
fn command(env: &[(String, String)]) -> Command {
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
fn cli(env: &[(String, String)], args: &[&str], stdin: &str) -> (i32, String) {
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
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// `name=value` of a cookie it sets.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|h| h.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .and_then(|c| c.split(';').next())
            .map(str::to_string)
    }

    /// The value of the page's hidden `csrf` field.
    fn csrf(&self) -> String {
        let t = self.text();
        let i = t.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        t[i..i + t[i..].find('"').unwrap()].to_string()
    }

    /// The first `href` starting with `prefix`.
    fn href(&self, prefix: &str) -> String {
        let t = self.text();
        let i = t
            .find(&format!("href=\"{prefix}"))
            .unwrap_or_else(|| panic!("no link to {prefix} in {t}"))
            + 6;
        t[i..i + t[i..].find('"').unwrap()].to_string()
    }
}

/// A client of the server: staff with a bearer token, or a person's browser (cookie by hand).
struct Http {
    http: reqwest::Client,
    base: String,
    bearer: Option<String>,
}

impl Http {
    fn new(base: &str) -> Self {
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

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
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

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post_json(&self, path: &str, v: Value) -> Answer {
        self.send(self.http.post(self.url(path)).json(&v)).await
    }

    async fn put_json(&self, path: &str, v: Value) -> Answer {
        self.send(self.http.put(self.url(path)).json(&v)).await
    }

    /// A browser's form post: the page's cookie and the same-origin `Origin` header.
    async fn post_form(&self, path: &str, cookie: &str, form: &str) -> Answer {
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
    async fn web_status(&self, asset: &str) -> String {
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
fn code_in(text: &str) -> String {
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

async fn journey(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new(postgres, dir.path());
    let smtp = MailServer::start();
    let env_at = |port: u16| -> Vec<(String, String)> {
        [
            ("DATABASE__URL", db.url.clone()),
            ("DATABASE__POOL_SIZE", "4".into()),
            ("SERVER__HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("SERVER__WORKERS", "2".into()),
            ("SERVER__COOKIE_SECURE", "false".into()),
            (
                "STORAGE__DIR",
                dir.path().join("blobs").display().to_string(),
            ),
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
                dir.path().join("evidence.key").display().to_string(),
            ),
            ("MAIL__SMTP_URL", smtp.smtp_url()),
            ("MAIL__FROM", "Acme Pictures <consent@acme.test>".into()),
            ("LOG__FILTER", "warn".into()),
        ]
        .into_iter()
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

    // A person with an e-mail; a photo with a hand-drawn face confirmed as her, consent as its
    // legal basis: not allowed yet.
    let p = staff
        .post_json(
            "/api/v1/persons",
            json!({"name": "Kari Nordmann", "email": KARI}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text());
    let person = p.json()["id"].as_str().unwrap().to_string();
    let photo = std::fs::read(data_dir().join("photos/img1.jpg")).unwrap();
    let up = staff
        .send(
            staff
                .http
                .post(format!("{base}/api/v1/assets?filename=kari.jpg"))
                .header("content-type", "application/octet-stream")
                .body(photo),
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text());
    let asset = up.json()["asset"]["id"].as_str().unwrap().to_string();
    let face = staff
        .post_json(
            &format!("/api/v1/assets/{asset}/faces"),
            json!({"box": [10.0, 10.0, 60.0, 80.0]}),
        )
        .await;
    assert_eq!(face.status, 201, "{}", face.text());
    let face = face.json()["id"].as_str().unwrap().to_string();
    let c = staff
        .post_json(
            &format!("/api/v1/faces/{face}/confirm"),
            json!({"person_id": person}),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.text());
    let lb = staff
        .put_json(
            &format!("/api/v1/assets/{asset}/legal-basis"),
            json!({"legal_basis": "consent"}),
        )
        .await;
    assert_eq!(lb.status, 200, "{}", lb.text());
    let before = staff.web_status(&asset).await;
    assert_ne!(before, "approved");

    // The template and the request.
    let t = staff
        .post_json(
            "/api/v1/consent-templates",
            json!({
                "name": "Spring fair",
                "title": "Photos of the spring fair",
                "body_markdown": "We would like to publish **photos** of you from the spring fair.",
                "language": "en",
                "scopes": [
                    {"channel": "web", "mandatory": true, "label": "Our website"},
                    {"channel": "print"}
                ],
                "face_matching_text": "We may recognise your face in our image bank.",
                "validity_days": 365,
                "legal_character": "gdpr_consent",
                "after_signing_text": "Thank you for helping us."
            }),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text());
    let template = t.json()["id"].as_str().unwrap().to_string();
    let r = staff
        .post_json(
            "/api/v1/signing-requests",
            json!({"person_ids": [person], "template_id": template, "asset_ids": [asset]}),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
    let rv = r.json();
    assert_eq!(rv["created"].as_array().unwrap().len(), 1, "{rv}");

    // The person: the mail, the link, the page.
    let mail = smtp.wait_for(KARI, PATIENCE).await;
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/sign/"))
        .unwrap_or_else(|| panic!("no signing link in {:?}", mail.text));
    assert!(link.starts_with(&format!("{base}/sign/")), "{link}");
    let page = anon.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.header("content-security-policy")
            .contains("default-src 'none'")
    );
    assert!(page.text().contains("Photos of the spring fair"));
    let cookie = page.cookie("lk_pcsrf").expect("the CSRF cookie");
    let csrf = page.csrf();
    // The file's thumbnail.
    let path = link.strip_prefix(&base).unwrap().to_string();
    let thumb = anon.get(&format!("{path}/files/{asset}")).await;
    assert_eq!(thumb.status, 200, "{}", thumb.text());
    assert_eq!(thumb.header("content-type"), "image/jpeg");
    assert_eq!(&thumb.body[..2], &[0xff, 0xd8]);

    // Choices -> the code page -> the code from the next mail -> signed.
    let code_page = anon
        .post_form(
            &link,
            &cookie,
            &format!("csrf={csrf}&scope=web&face_matching=yes"),
        )
        .await;
    assert_eq!(code_page.status, 200, "{}", code_page.text());
    assert!(code_page.text().contains("We sent a 6-digit code to"));
    let code_mail = smtp.wait_for_nth(KARI, 2, PATIENCE).await;
    let code = code_in(&code_mail.text);
    let done = anon
        .post_form(
            &format!("{path}/code"),
            &cookie,
            &format!("csrf={csrf}&code={code}"),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("Thank you for helping us."));
    let receipt = done.href("/receipt/");

    // At once, the file is approved for the web.
    assert_eq!(staff.web_status(&asset).await, "approved");

    // The receipt verifies (API and CLI); one changed byte does not.
    let json_answer = anon.get(&format!("{receipt}/receipt.json")).await;
    assert_eq!(json_answer.status, 200, "{}", json_answer.text());
    let receipt_json = json_answer.text();
    let v = anon
        .send(
            anon.http
                .post(format!("{base}/api/v1/evidence/verify"))
                .header("content-type", "application/json")
                .body(receipt_json.clone()),
        )
        .await;
    assert_eq!(v.status, 200, "{}", v.text());
    assert_eq!(v.json()["valid"], true);
    let tampered = receipt_json.replacen("\"web\"", "\"wex\"", 1);
    assert_ne!(tampered, receipt_json);
    let v = anon
        .send(
            anon.http
                .post(format!("{base}/api/v1/evidence/verify"))
                .header("content-type", "application/json")
                .body(tampered.clone()),
        )
        .await;
    assert_eq!(v.status, 400, "{}", v.text());
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, &receipt_json).unwrap();
    let keys = format!("{base}/api/v1/evidence/keys");
    let (exit, out) = cli(
        &[],
        &["verify-receipt", file.to_str().unwrap(), "--keys", &keys],
        "",
    );
    assert_eq!(exit, 0, "{out}");
    assert!(out.starts_with("valid"), "{out}");
    std::fs::write(&file, &tampered).unwrap();
    let (exit, out) = cli(
        &[],
        &["verify-receipt", file.to_str().unwrap(), "--keys", &keys],
        "",
    );
    assert_eq!(exit, 1, "{out}");
    assert!(out.contains("NOT VALID"), "{out}");

    // The receipt's mail -> the receipt page -> withdraw -> the code from the next mail -> done.
    let receipt_mail = smtp.wait_for_nth(KARI, 3, PATIENCE).await;
    let receipt_link = receipt_mail
        .links()
        .into_iter()
        .find(|l| l.contains("/receipt/"))
        .unwrap_or_else(|| panic!("no receipt link in {:?}", receipt_mail.text));
    assert!(
        receipt_link.ends_with(&receipt),
        "{receipt_link} vs {receipt}"
    );
    let rp = anon.get(&receipt_link).await;
    assert_eq!(rp.status, 200, "{}", rp.text());
    assert!(rp.text().contains("Withdraw my consent"));
    let cookie = rp.cookie("lk_pcsrf").unwrap_or(cookie);
    let csrf = rp.csrf();
    let wp = anon
        .post_form(
            &format!("{receipt}/withdraw"),
            &cookie,
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(wp.status, 200, "{}", wp.text());
    assert!(wp.text().contains("We sent a 6-digit code to"));
    let wmail = smtp.wait_for_nth(KARI, 4, PATIENCE).await;
    let wcode = code_in(&wmail.text);
    let wd = anon
        .post_form(
            &format!("{receipt}/withdraw/confirm"),
            &cookie,
            &format!("csrf={csrf}&code={wcode}"),
        )
        .await;
    assert_eq!(wd.status, 200, "{}", wd.text());
    assert!(
        wd.text().contains("Your consent is withdrawn"),
        "{}",
        wd.text()
    );

    // The file is no longer allowed; the person's templates are queued for removal.
    assert_ne!(staff.web_status(&asset).await, "approved");
    let jobs = staff.get("/api/v1/jobs?limit=500").await;
    assert_eq!(jobs.status, 200, "{}", jobs.text());
    let jobs = jobs.json();
    assert!(
        jobs.as_array().unwrap().iter().any(|j| {
            j["kind"].as_str().is_some_and(|k| k.starts_with("remove"))
                && j["payload_json"]
                    .as_str()
                    .is_some_and(|p| p.contains(&person))
        }),
        "no template removal queued: {jobs}"
    );
    // The receipt page says withdrawn; withdrawing needed no more steps than signing (a page,
    // a button, a code).
    let rp = anon.get(&receipt_link).await;
    assert_eq!(rp.status, 200);
    assert!(rp.text().contains("Withdrawn on"), "{}", rp.text());

    // The signing link again: used, 410.
    let replay = anon.get(&link).await;
    assert_eq!(replay.status, 410, "{}", replay.text());
    assert!(replay.text().contains("You have already signed"));
    let replay = anon
        .post_form(
            &format!("{path}/code"),
            &cookie,
            &format!("csrf={csrf}&code={code}"),
        )
        .await;
    assert_eq!(replay.status, 410, "{}", replay.text());
}

mod signing_journey_over_http {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::journey(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::journey(true).await;
    }
}

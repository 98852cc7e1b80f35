//! End-to-end across BOTH real processes, on SQLite and on PostgreSQL: the `likeness-control`
//! binary (set up with its own CLI as an operator would: `migrate`, `create-admin`, `serve` on
//! port 0, configured through `LIKENESS_CONTROL__*` variables) and the `likeness-matcher` binary
//! (real models, real photos), driven only over HTTP (and the matcher's gRPC for checks).
//!
//! The admin logs in (session cookie + CSRF header), creates an editor and a privacy officer and
//! an API token for each. Then: a consent for web only until D covering face matching; a first
//! photo of the person -> its face appears (the control plane's own job workers) -> confirmed,
//! the template is enrolled. The matcher is stopped, a second photo is uploaded, its job fails
//! and waits in the queue, the control plane is killed with SIGKILL; both processes come back
//! (the matcher on a new port, the same gallery) and the queued job is done after the restart:
//! the second photo's face is suggested as the enrolled person -> confirm -> consent as legal
//! basis -> approved for web, not for print; expiring on D, expired after D. A withdrawal makes
//! it withdrawn and removes the template from the matcher (which matched the person before and
//! no longer does). A group photo with one unlinked face is blocked. The audit chain is intact.

use std::future::Future;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use likeness_control_media::MatcherClient;
use likeness_control_media::testing::{MatcherProcess, data_dir};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_likeness-control");
/// Master key of the control plane's blob store and of the matcher's gallery.
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const TENANT: &str = "acme";
const ADMIN: &str = "admin@acme.test";
const ADMIN_PASSWORD: &str = "admin-password-1";
/// Longest wait for background work (a slow, shared CI machine; normally well under a second).
const PATIENCE: Duration = Duration::from_secs(90);

fn photo(rel: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The database: a SQLite file in a temp dir, or a fresh PostgreSQL database (dropped at the end).

enum Backend {
    Sqlite,
    Postgres,
}

struct Database {
    url: String,
    pg_drop: Option<(String, String)>,
}

impl Database {
    fn new(backend: Backend, dir: &Path) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: dir.join("control.sqlite").display().to_string(),
                pg_drop: None,
            },
            Backend::Postgres => {
                let admin = std::env::var("LIKENESS_TEST_PG_URL").unwrap_or_else(|_| {
                    panic!(
                        "LIKENESS_TEST_PG_URL is not set: start PostgreSQL with \
                         `source deploy/postgres.sh`, then rerun"
                    )
                });
                let name = format!("lk_proc_{}", uuid::Uuid::now_v7().simple());
                let mut c = diesel::PgConnection::establish(&admin)
                    .unwrap_or_else(|e| panic!("cannot connect to {admin}: {e}"));
                c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
                // postgres://user@host:port/db?query -> same server, database `name`.
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

// ---------------------------------------------------------------------------------------------
// The control-plane binary: its CLI, and `serve` as a child process killed on drop.

/// The `LIKENESS_CONTROL__*` configuration of one control-plane process.
fn control_env(db: &Database, dir: &Path, matcher_url: &str) -> Vec<(String, String)> {
    [
        ("DATABASE__URL", db.url.clone()),
        ("DATABASE__POOL_SIZE", "4".into()),
        ("SERVER__HTTP_ADDR", "127.0.0.1:0".into()),
        ("SERVER__WORKERS", "2".into()),
        ("STORAGE__DIR", dir.join("blobs").display().to_string()),
        ("STORAGE__MASTER_KEY", KEY.into()),
        ("MATCHER__URL", matcher_url.into()),
        ("MATCHER__TIMEOUT_MS", "60000".into()),
        ("LOG__FILTER", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("LIKENESS_CONTROL__{k}"), v))
    .collect()
}

/// `likeness-control` with exactly `env` as its configuration (nothing inherited).
fn control_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("LIKENESS_CONTROL") || k == "LIKENESS_ADMIN_PASSWORD" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Runs a CLI subcommand to completion; returns its stdout (fails the test on a non-zero exit).
fn cli(env: &[(String, String)], args: &[&str], stdin: &str) -> String {
    let mut child = control_command(env)
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
    assert!(
        out.status.success(),
        "likeness-control {args:?}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A running `likeness-control serve`; SIGKILLed when dropped.
struct Control {
    child: Child,
    /// `http://127.0.0.1:PORT`, from its `{"listening":{"http":…}}` line.
    base: String,
}

impl Control {
    fn start(env: &[(String, String)]) -> Self {
        let mut child = control_command(env)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Reads the announcement, then keeps draining stdout so the pipe never fills.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(e) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                panic!("likeness-control serve announced no address ({e}); exit: {status:?}");
            }
        };
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("first stdout line is not JSON ({e}): {line}"));
        let addr: std::net::SocketAddr = v["listening"]["http"]
            .as_str()
            .unwrap_or_else(|| panic!("no listening.http in {line}"))
            .parse()
            .unwrap();
        assert_ne!(addr.port(), 0, "{line}");
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// SIGKILL: no shutdown, no flush, whatever was in flight is lost.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "{status}");
    }
}

impl Control {
    /// Waits for the process to end by itself (a failpoint aborted it); fails the test if it
    /// is still running after [`PATIENCE`].
    fn wait_crash(mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "likeness-control did not stop at its failpoint"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// A small HTTP client: bearer token or session cookie + CSRF header.

#[derive(Clone)]
enum Auth {
    Anonymous,
    Bearer(String),
    Session { cookie: String, csrf: String },
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

enum Body {
    Empty,
    Json(Value),
    Raw(Vec<u8>),
}

impl Api {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .unwrap(),
            base: base.to_string(),
            auth: Auth::Anonymous,
        }
    }

    fn with(&self, auth: Auth) -> Self {
        Self {
            auth,
            ..self.clone()
        }
    }

    /// The same caller against a restarted server.
    fn at(&self, base: &str) -> Self {
        Self {
            base: base.to_string(),
            ..self.clone()
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Body) -> (u16, Value) {
        let unsafe_method = method != reqwest::Method::GET;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Auth::Anonymous => {}
            Auth::Bearer(t) => req = req.bearer_auth(t),
            Auth::Session { cookie, csrf } => {
                req = req.header("cookie", cookie);
                if unsafe_method && !csrf.is_empty() {
                    req = req.header("x-csrf-token", csrf);
                }
            }
        }
        req = match body {
            Body::Empty => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(b) => req
                .header("content-type", "application/octet-stream")
                .body(b),
        };
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, v)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Body::Empty).await
    }

    async fn post(&self, path: &str, v: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Body::Json(v)).await
    }

    async fn put(&self, path: &str, v: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Body::Json(v)).await
    }

    /// Uploads a photo from the shared data; returns the new asset's id.
    async fn upload(&self, filename: &str, rel: &str) -> String {
        let (s, v) = self
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/assets?filename={filename}"),
                Body::Raw(photo(rel)),
            )
            .await;
        assert_eq!(s, 201, "upload {rel}: {v}");
        v["asset"]["id"].as_str().unwrap().to_string()
    }

    /// The asset's `suggest_faces` job, if listed.
    async fn suggest_job(&self, asset: &str) -> Option<Value> {
        let (s, jobs) = self.get("/api/v1/jobs?limit=500").await;
        assert_eq!(s, 200, "{jobs}");
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| {
                j["kind"] == "suggest_faces"
                    && j["payload_json"]
                        .as_str()
                        .is_some_and(|p| p.contains(asset))
            })
            .cloned()
    }

    /// The asset's faces once the control plane's own workers have done its detection job.
    async fn faces_when_done(&self, asset: &str) -> Value {
        until(&format!("the detection job of asset {asset}"), || async {
            let job = self.suggest_job(asset).await?;
            assert_ne!(job["status"], "failed", "{job}");
            (job["status"] == "done").then_some(())
        })
        .await;
        let (s, fs) = self.get(&format!("/api/v1/assets/{asset}/faces")).await;
        assert_eq!(s, 200, "{fs}");
        fs
    }

    async fn compliance(&self, asset: &str, date: chrono::NaiveDate) -> Value {
        let (s, v) = self
            .get(&format!("/api/v1/assets/{asset}/compliance?date={date}"))
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    async fn confirm(&self, face: &str, person: &str) -> Value {
        let (s, v) = self
            .post(
                &format!("/api/v1/faces/{face}/confirm"),
                json!({"person_id": person}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }
}

/// Polls `f` every 100 ms until it gives a value; fails the test after [`PATIENCE`].
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn verdict<'a>(v: &'a Value, channel: &str) -> &'a Value {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["channel"] == channel)
        .unwrap_or_else(|| panic!("no verdict for {channel}: {v}"))
}

fn matches_person(s: &likeness_control_media::matcher::Suggestion, person: &str) -> bool {
    s.faces.iter().any(|f| {
        f.person_id.as_deref() == Some(person) || f.candidates.iter().any(|c| c.person_id == person)
    })
}

// ---------------------------------------------------------------------------------------------

async fn scenario(backend: Backend) {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let gallery = tempfile::tempdir().unwrap();
    let db = Database::new(backend, dir.path());
    let today = chrono::Utc::now().date_naive();
    let d = today + chrono::Days::new(60);

    // The operator's set-up: migrate, create the first admin (password on stdin).
    let mut m = MatcherProcess::start_any(gallery.path(), KEY)
        .await
        .unwrap();
    let env = control_env(&db, dir.path(), &m.url());
    let out = cli(&env, &["migrate"], "");
    let applied: usize = out
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("migrate: {out}"));
    assert!(applied >= 1, "{out}");
    assert!(cli(&env, &["migrate"], "").starts_with("0 migration(s) applied"));
    let out = cli(
        &env,
        &[
            "create-admin",
            "--tenant",
            TENANT,
            "--tenant-name",
            "Acme Pictures",
            "--email",
            ADMIN,
        ],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    assert!(
        out.contains(&format!("admin {ADMIN} created in tenant {TENANT}")),
        "{out}"
    );
    let control = Control::start(&env);
    let anon = Api::new(&control.base);

    // The admin logs in (cookie + CSRF), creates an editor and a privacy officer, and a token
    // for each.
    let (s, v) = anon.get("/api/v1/me").await;
    assert_eq!(s, 401, "{v}");
    let resp = anon
        .http
        .post(format!("{}/api/v1/auth/login", control.base))
        .json(&json!({"tenant": TENANT, "email": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find(|c| c.starts_with("lk_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let login: Value = resp.json().await.unwrap();
    let csrf = login["csrf_token"].as_str().unwrap().to_string();
    let admin = anon.with(Auth::Session {
        cookie: cookie.clone(),
        csrf,
    });
    let (s, me) = admin.get("/api/v1/me").await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["via"], "session", "{me}");
    assert_eq!(me["tenant_slug"], TENANT, "{me}");
    let tenant = me["tenant_id"].as_str().unwrap().to_string();
    let user = |role: &str| json!({"email": format!("{role}@acme.test"), "role": role, "password": "user-password-1"});
    // Without the CSRF header the session may not write.
    let no_csrf = anon.with(Auth::Session {
        cookie,
        csrf: String::new(),
    });
    let (s, v) = no_csrf.post("/api/v1/users", user("editor")).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "csrf_token_invalid", "{v}");
    let mut tokens = Vec::new();
    for role in ["editor", "privacy_officer"] {
        let (s, u) = admin.post("/api/v1/users", user(role)).await;
        assert_eq!(s, 201, "{u}");
        let (s, t) = admin
            .post(
                "/api/v1/tokens",
                json!({"name": format!("{role} e2e"), "user_id": u["id"]}),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        tokens.push(anon.with(Auth::Bearer(t["secret"].as_str().unwrap().into())));
    }
    let (mut ed, mut po) = (tokens[0].clone(), tokens[1].clone());
    let (s, me) = ed.get("/api/v1/me").await;
    assert_eq!(
        (s, &me["via"], &me["user"]["role"]),
        (200, &json!("token"), &json!("editor")),
        "{me}"
    );

    // The person, and his consent: web only until D, covering face matching.
    let (s, p) = ed
        .post("/api/v1/persons", json!({"name": "Al Pacino"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let pacino = p["id"].as_str().unwrap().to_string();
    let (s, a) = po
        .post(
            &format!("/api/v1/persons/{pacino}/agreements"),
            json!({"channels": ["web"], "valid_from": today - chrono::Days::new(1),
                "valid_until": d, "source": "digital", "covers_face_matching": true}),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    let agreement = a["id"].as_str().unwrap().to_string();

    // Enrol him from a first photo: its face comes from the control plane's own workers.
    let a1 = ed
        .upload("p1.jpg", "faces_dev/Al_Pacino_1800_crop.jpg")
        .await;
    let fs = ed.faces_when_done(&a1).await;
    assert_eq!(fs.as_array().unwrap().len(), 1, "{fs}");
    let v = ed.confirm(fs[0]["id"].as_str().unwrap(), &pacino).await;
    assert_eq!(v["template_enrolled"], true, "{v}");
    let mc = MatcherClient::new(m.client_config()).unwrap();
    assert_eq!(mc.tenant_stats(&tenant).await.unwrap(), (1, 1));
    drop(mc);

    // The matcher goes down; a second photo is uploaded; its detection fails and waits in the
    // queue (backoff); then the control plane is killed with SIGKILL.
    m.stop();
    let a2 = ed
        .upload("p2.jpg", "faces_dev/Al_Pacino_1805_crop.jpg")
        .await;
    let job = until("a failed attempt of the second photo's job", || async {
        let j = ed.suggest_job(&a2).await?;
        (j["status"] == "queued" && j["attempts"].as_i64() >= Some(1) && !j["last_error"].is_null())
            .then_some(j)
    })
    .await;
    control.kill9();
    // Both come back: the matcher on a new port over the same gallery, the control plane
    // pointed at it. The queued job is done after the restart.
    let m = MatcherProcess::start_any(gallery.path(), KEY)
        .await
        .unwrap();
    let mc = MatcherClient::new(m.client_config()).unwrap();
    assert_eq!(
        mc.tenant_stats(&tenant).await.unwrap(),
        (1, 1),
        "the gallery survives the matcher's SIGKILL"
    );
    let env = control_env(&db, dir.path(), &m.url());
    let control = Control::start(&env);
    (ed, po) = (ed.at(&control.base), po.at(&control.base));
    let fs = ed.faces_when_done(&a2).await;
    let done = ed.suggest_job(&a2).await.unwrap();
    assert_eq!(done["id"], job["id"], "the same job, not a new one: {done}");
    assert!(
        done["attempts"].as_i64() > job["attempts"].as_i64(),
        "{job} -> {done}"
    );
    assert_eq!(fs.as_array().unwrap().len(), 1, "{fs}");
    assert_eq!(fs[0]["status"], "suggested", "{fs}");
    assert_eq!(fs[0]["candidates"][0]["person_id"], pacino.as_str(), "{fs}");
    ed.confirm(fs[0]["id"].as_str().unwrap(), &pacino).await;

    // Legal basis: consent. Approved for web, not for print; expiring on D, expired after D.
    let (s, v) = po
        .put(
            &format!("/api/v1/assets/{a2}/legal-basis"),
            json!({"legal_basis": "consent"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let v = ed.compliance(&a2, today).await;
    assert_eq!(verdict(&v, "web")["status"], "approved", "{v}");
    assert_eq!(verdict(&v, "web")["allowed"], true, "{v}");
    assert_eq!(verdict(&v, "web")["until"], json!(d), "{v}");
    assert_eq!(verdict(&v, "print")["status"], "missing_consent", "{v}");
    assert_eq!(verdict(&v, "print")["allowed"], false, "{v}");
    let v = ed.compliance(&a2, d).await;
    assert_eq!(verdict(&v, "web")["status"], "expiring", "{v}");
    let v = ed.compliance(&a2, d + chrono::Days::new(1)).await;
    assert_eq!(verdict(&v, "web")["status"], "expired", "{v}");
    assert_eq!(verdict(&v, "web")["allowed"], false, "{v}");

    // Withdrawal: withdrawn, and his templates leave the matcher, which matched him before.
    let p2 = photo("faces_dev/Al_Pacino_1805_crop.jpg");
    let before = mc.suggest(&tenant, p2.clone()).await.unwrap();
    assert!(matches_person(&before, &pacino), "{before:?}");
    assert_eq!(mc.tenant_stats(&tenant).await.unwrap(), (2, 1));
    let (s, w) = po
        .post(
            &format!("/api/v1/agreements/{agreement}/withdraw"),
            json!({"reason": "asked by e-mail"}),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    assert_eq!(w["face_matching_ended"], true, "{w}");
    assert_eq!(w["template_removal"]["queued"], false, "{w}");
    assert_eq!(w["template_removal"]["removed"], 2, "{w}");
    assert_eq!(mc.tenant_stats(&tenant).await.unwrap().0, 0);
    let after = mc.suggest(&tenant, p2).await.unwrap();
    assert_eq!(after.faces.len(), 1, "{after:?}");
    assert!(!matches_person(&after, &pacino), "{after:?}");
    let v = ed.compliance(&a2, today).await;
    assert_eq!(verdict(&v, "web")["status"], "withdrawn", "{v}");
    assert_eq!(verdict(&v, "web")["allowed"], false, "{v}");

    // A group photo with one face linked (consent for web and print) and the others not:
    // blocked by the unlinked faces alone.
    let (s, p) = ed
        .post("/api/v1/persons", json!({"name": "Kari Nordmann"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let kari = p["id"].as_str().unwrap().to_string();
    let (s, a) = po
        .post(
            &format!("/api/v1/persons/{kari}/agreements"),
            json!({"channels": ["web", "print"], "valid_from": today, "source": "paper_scan"}),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    let g = ed.upload("couple.jpg", "group/deepface_couple.jpg").await;
    let fs = ed.faces_when_done(&g).await;
    let n = fs.as_array().unwrap().len();
    assert!(n >= 2, "{fs}");
    ed.confirm(fs[0]["id"].as_str().unwrap(), &kari).await;
    let (s, v) = po
        .put(
            &format!("/api/v1/assets/{g}/legal-basis"),
            json!({"legal_basis": "consent"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let v = ed.compliance(&g, today).await;
    let web = verdict(&v, "web");
    assert_eq!(web["status"], "unidentified_faces", "{v}");
    assert_eq!(web["allowed"], false, "{v}");
    let reasons = web["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().all(|r| r["code"] == "unidentified_faces"),
        "{v}"
    );
    assert_eq!(reasons.len(), n - 1, "{v}");

    // Every file he appears in; the audit chain is intact after all this (and the SIGKILL).
    let (s, v) = po
        .get(&format!("/api/v1/persons/{pacino}/compliance"))
        .await;
    assert_eq!(s, 200, "{v}");
    let files: Vec<&str> = v["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["p2.jpg", "p1.jpg"], "{v}");
    let out = cli(&env, &["audit", "verify"], "");
    assert!(out.starts_with("audit chain intact"), "{out}");
    drop(control);
    drop(m);
    eprintln!("scenario took {:.1} s", t0.elapsed().as_secs_f64());
}

/// The whole scenario, once per database backend.
mod photo_to_compliance_across_processes {
    use super::{Backend, scenario};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        scenario(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        scenario(Backend::Postgres).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Kill test: the control plane crashes right after a withdrawal's commit.

/// Logs the admin in (session cookie + CSRF header).
async fn admin_session(base: &str) -> Api {
    let anon = Api::new(base);
    let resp = anon
        .http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"tenant": TENANT, "email": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find(|c| c.starts_with("lk_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let login: Value = resp.json().await.unwrap();
    let csrf = login["csrf_token"].as_str().unwrap().to_string();
    anon.with(Auth::Session { cookie, csrf })
}

/// A person is enrolled in the real matcher from a real photo; their consent covering face
/// matching is withdrawn while the control plane has failpoint `withdraw.after_commit` set: the
/// process aborts right after the withdrawal's transaction commits, before it calls the
/// matcher. The templates are still in the matcher then. The control plane comes back (no
/// failpoint) and the removal queued in the withdrawal's own transaction runs: the matcher no
/// longer matches the person. (Were the removal queued after the commit, or only called, nothing
/// would remove the templates and the last wait would fail; the scheduler's expiry sweep, which
/// would catch them later, does not tick during the test.)
async fn withdrawal_crash(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let gallery = tempfile::tempdir().unwrap();
    let db = Database::new(backend, dir.path());
    let today = chrono::Utc::now().date_naive();
    let m = MatcherProcess::start_any(gallery.path(), KEY)
        .await
        .unwrap();
    let mut env = control_env(&db, dir.path(), &m.url());
    // No scheduler tick during the test (its expiry sweep would also find the templates of a
    // person without consent): only the job queued with the withdrawal may remove them.
    env.push((
        "LIKENESS_CONTROL__JOBS__SCHEDULER_TICK_MS".into(),
        "3600000".into(),
    ));
    cli(&env, &["migrate"], "");
    cli(
        &env,
        &[
            "create-admin",
            "--tenant",
            TENANT,
            "--tenant-name",
            "Acme",
            "--email",
            ADMIN,
        ],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    let mut crashing = env.clone();
    crashing.push((
        likeness_control::service::failpoint::ENV.into(),
        "withdraw.after_commit".into(),
    ));
    let control = Control::start(&crashing);
    let admin = admin_session(&control.base).await;
    let (s, me) = admin.get("/api/v1/me").await;
    assert_eq!(s, 200, "{me}");
    let tenant = me["tenant_id"].as_str().unwrap().to_string();

    // Enrolled from a photo, with a consent covering face matching.
    let (s, p) = admin
        .post("/api/v1/persons", json!({"name": "Al Pacino"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let pacino = p["id"].as_str().unwrap().to_string();
    let (s, a) = admin
        .post(
            &format!("/api/v1/persons/{pacino}/agreements"),
            json!({"channels": ["web"], "valid_from": today - chrono::Days::new(1),
                "source": "digital", "covers_face_matching": true}),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    let agreement = a["id"].as_str().unwrap().to_string();
    let a1 = admin
        .upload("p1.jpg", "faces_dev/Al_Pacino_1800_crop.jpg")
        .await;
    let fs = admin.faces_when_done(&a1).await;
    assert_eq!(fs.as_array().unwrap().len(), 1, "{fs}");
    let v = admin.confirm(fs[0]["id"].as_str().unwrap(), &pacino).await;
    assert_eq!(v["template_enrolled"], true, "{v}");
    let mc = MatcherClient::new(m.client_config()).unwrap();
    assert_eq!(mc.tenant_stats(&tenant).await.unwrap(), (1, 1));
    let probe = photo("faces_dev/Al_Pacino_1805_crop.jpg");
    let before = mc.suggest(&tenant, probe.clone()).await.unwrap();
    assert!(matches_person(&before, &pacino), "{before:?}");

    // The withdrawal: committed, then the process dies before it answers.
    let Auth::Session { cookie, csrf } = admin.auth.clone() else {
        unreachable!()
    };
    let answer = admin
        .http
        .post(format!(
            "{}/api/v1/agreements/{agreement}/withdraw",
            control.base
        ))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(&json!({"reason": "asked by e-mail"}))
        .send()
        .await;
    assert!(
        answer.is_err(),
        "the control plane answered instead of crashing: {answer:?}"
    );
    let status = control.wait_crash();
    assert!(!status.success(), "{status}");
    assert_eq!(
        mc.tenant_stats(&tenant).await.unwrap(),
        (1, 1),
        "the crash came before the matcher was called"
    );

    // Back up without the failpoint: the removal queued with the withdrawal runs.
    let control = Control::start(&env);
    let admin = admin.at(&control.base);
    let (s, v) = admin.get(&format!("/api/v1/agreements/{agreement}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "withdrawn", "the withdrawal was committed: {v}");
    until("the templates to leave the matcher", || async {
        (mc.tenant_stats(&tenant).await.ok()?.0 == 0).then_some(())
    })
    .await;
    let after = mc.suggest(&tenant, probe).await.unwrap();
    assert_eq!(after.faces.len(), 1, "{after:?}");
    assert!(!matches_person(&after, &pacino), "{after:?}");
    // One removal, the one queued with the withdrawal; the worker marks it done just after the
    // matcher answered: wait for that too.
    until("the removal job to be done", || async {
        let (s, jobs) = admin.get("/api/v1/jobs?limit=500").await;
        assert_eq!(s, 200, "{jobs}");
        let removal: Vec<Value> = jobs
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == "remove_person_templates")
            .cloned()
            .collect();
        assert!(removal.len() <= 1, "more than one removal queued: {jobs}");
        (removal.len() == 1 && removal[0]["status"] == "done").then_some(())
    })
    .await;
    drop(control);
    drop(m);
}

/// The kill test, once per database backend.
mod withdrawal_survives_a_crash_after_commit {
    use super::{Backend, withdrawal_crash};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        withdrawal_crash(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        withdrawal_crash(Backend::Postgres).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Publishing: two control-plane processes on one database stop serving a file together.

/// The status of a GET (any body).
async fn status_of(http: &reqwest::Client, url: &str) -> u16 {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .status()
        .as_u16()
}

/// Two `serve` processes on one database, as an operator scales out: a file allowed on the
/// web is served by both delivery endpoints; a consent withdrawn through the first process
/// makes the second one answer 451 within a second or so (each process follows the allowed
/// set's change log every `delivery.cache_poll_ms`; no database query per request).
async fn two_processes(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new(backend, dir.path());
    let today = chrono::Utc::now().date_naive();
    let mut env = control_env(&db, dir.path(), "http://127.0.0.1:9");
    env.push(("LIKENESS_CONTROL__LOG__FILTER".into(), "warn".into()));
    cli(&env, &["migrate"], "");
    cli(
        &env,
        &[
            "create-admin",
            "--tenant",
            TENANT,
            "--tenant-name",
            "Acme",
            "--email",
            ADMIN,
        ],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    let one = Control::start(&env);
    let two = Control::start(&env);
    let admin = admin_session(&one.base).await;
    let (s, p) = admin
        .post("/api/v1/persons", json!({"name": "Jane Roe"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let person = p["id"].as_str().unwrap().to_string();
    let (s, a) = admin
        .post(
            &format!("/api/v1/persons/{person}/agreements"),
            json!({"channels": ["web"], "valid_from": today - chrono::Days::new(1),
                "source": "paper_scan"}),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    let agreement = a["id"].as_str().unwrap().to_string();
    let asset = admin
        .upload("jane.jpg", "faces_dev/Al_Pacino_1800_crop.jpg")
        .await;
    let (s, face) = admin
        .post(
            &format!("/api/v1/assets/{asset}/faces"),
            json!({"box": [10.0, 10.0, 90.0, 110.0]}),
        )
        .await;
    assert_eq!(s, 201, "{face}");
    admin.confirm(face["id"].as_str().unwrap(), &person).await;
    let (s, v) = admin
        .put(
            &format!("/api/v1/assets/{asset}/legal-basis"),
            json!({"legal_basis": "consent"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let http = reqwest::Client::new();
    let path = format!("/d/{TENANT}/{asset}/web/small.jpg");
    for c in [&one, &two] {
        let url = format!("{}{path}", c.base);
        until(&format!("{url} to serve the file"), || async {
            (status_of(&http, &url).await == 200).then_some(())
        })
        .await;
    }
    let print = format!("{}/d/{TENANT}/{asset}/print/small.jpg", two.base);
    assert_eq!(status_of(&http, &print).await, 451, "no consent for print");

    let (s, v) = admin
        .post(
            &format!("/api/v1/agreements/{agreement}/withdraw"),
            json!({"reason": "asked by e-mail"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let t0 = Instant::now();
    for (name, c) in [("second", &two), ("first", &one)] {
        let url = format!("{}{path}", c.base);
        loop {
            if status_of(&http, &url).await == 451 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the {name} process still serves the file 10 s after the withdrawal"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!(
            "two processes: 451 from the {name} process {:?} after the withdrawal",
            t0.elapsed()
        );
    }
}

/// Two processes, once per database backend.
mod two_processes_on_one_database_stop_serving_together {
    use super::{Backend, two_processes};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        two_processes(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        two_processes(Backend::Postgres).await;
    }
}

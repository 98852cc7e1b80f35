//! The webhook receiver of the tests: `deploy/webhook-receiver.py` (a real HTTP server that
//! verifies every request with the Standard Webhooks reference library, `standardwebhooks` from
//! PyPI, installed by `deploy/webhook-deps.sh`), started on a free port and read back from its
//! JSON lines file.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use likeness_control::db;
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The venv python with `standardwebhooks` (installed on first use).
pub fn receiver_python() -> String {
    let out = Command::new("bash")
        .arg(repo_root().join("deploy/webhook-deps.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("deploy/webhook-deps.sh");
    assert!(out.status.success(), "deploy/webhook-deps.sh failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `deploy/webhook-receiver.py` on a free port, recording to a JSON lines file; killed on drop.
pub struct Receiver {
    python: String,
    port: u16,
    out: PathBuf,
    child: Option<Child>,
    secret: Option<String>,
    status: u16,
}

impl Receiver {
    pub fn start(dir: &Path) -> Self {
        let mut r = Receiver {
            python: receiver_python(),
            port: free_port(),
            out: dir.join(format!("hooks-{}.jsonl", db::new_id())),
            child: None,
            secret: None,
            status: 204,
        };
        r.start_again();
        r
    }

    pub fn start_again(&mut self) {
        let mut cmd = Command::new(&self.python);
        cmd.arg(repo_root().join("deploy/webhook-receiver.py"))
            .args(["--port", &self.port.to_string()])
            .arg("--out")
            .arg(&self.out)
            .args(["--status", &self.status.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(s) = &self.secret {
            cmd.args(["--secret", s]);
        }
        let mut child = cmd.spawn().expect("webhook receiver");
        let end = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("webhook receiver exited: {st}");
            }
            assert!(Instant::now() < end, "webhook receiver did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    pub async fn configure(&mut self, change: Value) {
        if let Some(s) = change["secret"].as_str() {
            self.secret = Some(s.to_string());
        }
        if let Some(s) = change["status"].as_u64() {
            self.status = u16::try_from(s).unwrap();
        }
        let resp = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/_control/config", self.port))
            .json(&change)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    /// Every request received so far, in order. A last line the receiver is still writing (no
    /// newline yet) is left for the next call.
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The message ids of the verified requests answered 2xx, in order.
    pub fn delivered(&self) -> Vec<String> {
        self.records()
            .iter()
            .filter(|r| r["verified"] == true && r["answered"].as_u64().unwrap() < 300)
            .map(|r| r["webhook_id"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

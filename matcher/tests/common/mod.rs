//! Helpers shared by the cross-process tests: start the real `likeness-matcher` binary on a
//! free 127.0.0.1 port and talk to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use likeness_proto::matcher_v1::matcher_client::MatcherClient;
use tonic::transport::Channel;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn models_dir() -> PathBuf {
    std::env::var_os("LIKENESS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/models"))
}

pub fn data(rel: &str) -> Vec<u8> {
    let dir = std::env::var_os("LIKENESS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data"));
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub child: Child,
    pub grpc: u16,
    pub metrics: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Spawns `likeness-matcher serve` on ports of the system's choosing (port 0) and reads
    /// the real ports from its `{"listening":…}` line, so no other process can take a port
    /// between choosing and binding.
    pub fn start(extra_env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_likeness-matcher"));
        cmd.arg("serve")
            .current_dir(root())
            .env("LIKENESS_MODELS_DIR", models_dir())
            .env("LIKENESS_MATCHER__SERVER__GRPC_ADDR", "127.0.0.1:0")
            .env("LIKENESS_MATCHER__SERVER__METRICS_ADDR", "127.0.0.1:0")
            .env("LIKENESS_MATCHER__PIPELINE__THREADS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn likeness-matcher");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines
            .next()
            .expect("likeness-matcher exited before it listened")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let port = |k: &str| {
            v["listening"][k]
                .as_str()
                .unwrap_or_else(|| panic!("no {k} address in {line}"))
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .port()
        };
        let (grpc, metrics) = (port("grpc"), port("metrics"));
        // Keep draining stdout so the pipe never fills.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            grpc,
            metrics,
        }
    }

    pub async fn client(&mut self) -> MatcherClient<Channel> {
        let url = format!("http://127.0.0.1:{}", self.grpc);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("matcher exited during start-up: {status}");
            }
            if let Ok(ch) = Channel::from_shared(url.clone()).unwrap().connect().await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
                let req = tonic_health::pb::HealthCheckRequest {
                    service: "likeness.matcher.v1.Matcher".into(),
                };
                if let Ok(r) = health.check(req).await
                    && r.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                {
                    return MatcherClient::new(ch)
                        .max_decoding_message_size(64 << 20)
                        .max_encoding_message_size(256 << 20);
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "matcher did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn metrics_text(&self) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

//! Test support (feature `testing`): runs the real `likeness-matcher` binary on a free local
//! port with an encrypted gallery, for the cross-process tests of the control plane.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use likeness_control_media::matcher::{MatcherClient, MatcherConfig};

/// A free TCP port on 127.0.0.1 (bound once and released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared models directory (`LIKENESS_MODELS_DIR` or `../shared/models`).
pub fn models_dir() -> PathBuf {
    std::env::var_os("LIKENESS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/models"))
}

/// The shared data directory (`LIKENESS_DATA_DIR` or `../shared/data`).
pub fn data_dir() -> PathBuf {
    std::env::var_os("LIKENESS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/data"))
}

/// Finds the `likeness-matcher` binary next to the running test's directory
/// (`target/<profile>/likeness-matcher`), building it with cargo if it is missing.
pub fn matcher_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?
        .to_path_buf();
    let bin = profile_dir.join("likeness-matcher");
    if bin.is_file() {
        return Ok(bin);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "likeness-matcher",
            "--bin",
            "likeness-matcher",
        ])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo to build likeness-matcher: {e}"))?;
    if status.success() && bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build -p likeness-matcher`",
            bin.display()
        ))
    }
}

/// A running `likeness-matcher serve`; killed when dropped.
#[derive(Debug)]
pub struct MatcherProcess {
    child: Option<Child>,
    /// The gRPC port.
    pub port: u16,
    /// Gallery directory.
    pub gallery_dir: PathBuf,
    /// Gallery master key (hex).
    pub master_key: String,
}

impl MatcherProcess {
    /// Starts the matcher on a port of the system's choosing (it binds port 0 and announces
    /// the real one, so no other process can take the port between choosing and binding)
    /// and waits until it is healthy (at most 90 s).
    pub async fn start_any(gallery_dir: &Path, master_key: &str) -> Result<Self, String> {
        Self::start(gallery_dir, master_key, 0).await
    }

    /// Starts the matcher on `port` (0: any free port) with its gallery in `gallery_dir` and
    /// waits until it is healthy (at most 90 s). A restart on a fixed port retries a few times
    /// if the port is briefly taken.
    pub async fn start(gallery_dir: &Path, master_key: &str, port: u16) -> Result<Self, String> {
        let mut last = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match Self::try_start(gallery_dir, master_key, port).await {
                Ok(p) => return Ok(p),
                Err(StartError::Bind(e)) => last = e,
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last)
    }

    async fn try_start(
        gallery_dir: &Path,
        master_key: &str,
        port: u16,
    ) -> Result<Self, StartError> {
        let bin = matcher_binary().map_err(StartError::Other)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .current_dir(workspace_root())
            .env("LIKENESS_MODELS_DIR", models_dir())
            .env(
                "LIKENESS_MATCHER__SERVER__GRPC_ADDR",
                format!("127.0.0.1:{port}"),
            )
            .env("LIKENESS_MATCHER__SERVER__METRICS_ADDR", "127.0.0.1:0")
            .env("LIKENESS_MATCHER__PIPELINE__THREADS", "1")
            .env("LIKENESS_MATCHER__GALLERY__DATA_DIR", gallery_dir)
            .env("LIKENESS_MATCHER__GALLERY__MASTER_KEY", master_key)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| StartError::Other(format!("spawn likeness-matcher: {e}")))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(StartError::Other("no stdout pipe".into()));
        };
        // The announcement comes right after binding, before the models load; the reader
        // thread keeps draining stdout afterwards so the pipe never fills.
        let (tx, rx) = tokio::sync::oneshot::channel::<Option<u16>>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(t) = tx.take() {
                    let _ = t.send(announced_grpc_port(&line));
                }
            }
        });
        let mut p = Self {
            child: Some(child),
            port,
            gallery_dir: gallery_dir.to_path_buf(),
            master_key: master_key.to_owned(),
        };
        match tokio::time::timeout(Duration::from_secs(90), rx).await {
            Ok(Ok(Some(bound))) => p.port = bound,
            Ok(Ok(None)) => {
                return Err(StartError::Other(
                    "likeness-matcher printed no {\"listening\": …} line".into(),
                ));
            }
            // stdout closed without a line: the process exited while binding.
            Ok(Err(_)) => {
                let status = p
                    .child
                    .as_mut()
                    .and_then(|c| c.wait().ok())
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(StartError::Bind(format!(
                    "matcher exited before listening on port {port}: {status}"
                )));
            }
            Err(_) => {
                return Err(StartError::Other(
                    "matcher did not listen within 90 s".into(),
                ));
            }
        }
        p.wait_healthy().await.map_err(StartError::Other)?;
        Ok(p)
    }

    /// The URL of its gRPC endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client configuration for it (short timeouts).
    pub fn client_config(&self) -> MatcherConfig {
        MatcherConfig {
            url: self.url(),
            connect_timeout_ms: 1_000,
            request_timeout_ms: 60_000,
            ..MatcherConfig::default()
        }
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let client = MatcherClient::new(self.client_config()).map_err(|e| e.to_string())?;
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("matcher exited during start-up: {status}"));
            }
            if client.health().await.is_ok() {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(90) {
                return Err("matcher did not become healthy within 90 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

enum StartError {
    /// The process exited before it announced its ports (typically: port in use).
    Bind(String),
    Other(String),
}

/// The gRPC port from the matcher's `{"listening":{"grpc":"127.0.0.1:N",…}}` line.
fn announced_grpc_port(line: &str) -> Option<u16> {
    let rest = line.split_once("\"listening\"")?.1;
    let rest = rest.split_once("\"grpc\":\"")?.1;
    let addr: std::net::SocketAddr = rest.split_once('"')?.0.parse().ok()?;
    Some(addr.port())
}

impl Drop for MatcherProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

//! `likeness-matcher`: serve the matcher over gRPC, check a configuration, or analyse files
//! in-process.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::{Parser, Subcommand};
use likeness_matcher::config::Config;
use likeness_matcher::output::FileJson;
use likeness_matcher::server;
use likeness_models::{ImageErrorKind, Pipeline};

#[derive(Parser)]
#[command(name = "likeness-matcher", version, about = "Likeness face matcher")]
struct Cli {
    /// Configuration file (TOML). Environment overrides: LIKENESS_MATCHER__SECTION__KEY.
    #[arg(long, short, global = true, env = "LIKENESS_MATCHER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve gRPC (Analyze, AnalyzeStream, health, reflection) and /metrics.
    Serve,
    /// Validate the configuration, the models (sha256, licence) and the ONNX Runtime library,
    /// then print the effective configuration.
    CheckConfig,
    /// Analyse image files in-process and print one JSON object per file, in order.
    /// Exit status: 0 all files analysed, 1 some file failed, 2 configuration/model error.
    Analyze {
        /// Include the L2-normalised embedding of every face.
        #[arg(long)]
        embeddings: bool,
        /// Image files (JPEG, PNG, WebP).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a new random master key (64 hex characters) for gallery.master_key_file.
    GenerateKey,
    /// Send image files to a running matcher over gRPC (Analyze) and print the same JSON lines
    /// as `analyze`. Exit status as for `analyze`.
    Call {
        /// Matcher address.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        addr: String,
        /// Include embeddings.
        #[arg(long)]
        embeddings: bool,
        /// Image files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Logs to stderr: `RUST_LOG` when set, else `log.level`, as `log.format`.
fn init_logging(cfg: &Config) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cfg.log.level.clone());
    likeness_common::logging::init(&filter, cfg.log.format);
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("likeness-matcher: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::GenerateKey) {
        return match likeness_gallery::MasterKey::random() {
            Ok(k) => {
                let _ = writeln!(std::io::stdout(), "{}", k.to_hex());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    init_logging(&cfg);
    if matches!(cli.cmd, Cmd::Analyze { .. }) {
        // `serve` and `check-config` choose the backend (engine::select) and log the line
        // saying which and why; `analyze` runs the CPU pipeline in process.
        tracing::info!("backend=cpu: `analyze` runs the CPU pipeline in process");
    }
    match cli.cmd {
        Cmd::Serve => serve(cfg),
        Cmd::CheckConfig => check_config(cfg),
        Cmd::Analyze { embeddings, files } => analyze(cfg, embeddings, &files),
        Cmd::Call {
            addr,
            embeddings,
            files,
        } => call(&addr, embeddings, &files),
        Cmd::GenerateKey => ExitCode::SUCCESS,
    }
}

fn serve(cfg: Config) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let res = rt.block_on(async {
        let grpc = server::bind(cfg.server.grpc_addr, "server.grpc_addr").await?;
        let metrics = match cfg.server.metrics_addr {
            Some(a) => Some(server::bind(a, "server.metrics_addr").await?),
            None => None,
        };
        announce_listening(&grpc, metrics.as_ref());
        server::run(cfg, grpc, metrics, async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
        })
        .await
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Prints one JSON line on stdout with the addresses actually bound, e.g.
/// `{"listening":{"grpc":"127.0.0.1:50051","metrics":"127.0.0.1:9464"}}`, so that a
/// supervisor (or a test) that configured port 0 learns the real ports.
fn announce_listening(grpc: &tokio::net::TcpListener, metrics: Option<&tokio::net::TcpListener>) {
    let addr = |l: &tokio::net::TcpListener| l.local_addr().ok().map(|a| a.to_string());
    let line = serde_json::json!({
        "listening": {
            "grpc": addr(grpc),
            "metrics": metrics.and_then(addr),
        }
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn check_config(cfg: Config) -> ExitCode {
    let (det, emb) = match likeness_models::pipeline::check_models(&cfg.pipeline) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let lib = match likeness_models::runtime::init(cfg.pipeline.onnxruntime_lib.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let gallery = match cfg.gallery.master() {
        Ok(None) => "disabled (no gallery.master_key_file)".to_owned(),
        Ok(Some(key)) => match likeness_gallery::Galleries::open(cfg.gallery.clone(), key) {
            Ok(_) => format!(
                "enabled, master key verified against {}",
                cfg.gallery.data_dir.display()
            ),
            Err(e) => return fail(e),
        },
        Err(e) => return fail(e),
    };
    // Which backend `serve` would run and why (on a GPU host this runs the device's
    // start-up check).
    let backend = match likeness_matcher::engine::select(&cfg) {
        Ok(s) => s.log_line,
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "# configuration OK");
    let _ = writeln!(out, "# gallery {gallery}");
    let _ = writeln!(
        out,
        "# detector {} ({}, sha256 verified, licence: {})",
        det.id, det.file, det.licence
    );
    let _ = writeln!(
        out,
        "# embedder {} ({}, sha256 verified, licence: {})",
        emb.id, emb.file, emb.licence
    );
    let _ = writeln!(out, "# onnxruntime {}", lib.display());
    let _ = writeln!(out, "# {backend}");
    let _ = write!(out, "{}", cfg.to_toml());
    ExitCode::SUCCESS
}

/// Analyses the files in process, as many at a time as the pipeline has lanes; the lines come
/// out in argument order.
fn analyze(cfg: Config, embeddings: bool, files: &[PathBuf]) -> ExitCode {
    let pipeline = match Pipeline::load(cfg.pipeline) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let workers = pipeline.lanes().clamp(1, files.len().max(1));
    let next = AtomicUsize::new(0);
    let mut out = JsonLines::default();
    let mut write_failed = false;
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, FileJson)>();
        for _ in 0..workers {
            let (tx, next, pipeline) = (tx.clone(), &next, &pipeline);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    if tx.send((i, analyze_file(pipeline, f, embeddings))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Lines that finished before an earlier file's wait here.
        let mut pending: BTreeMap<usize, FileJson> = BTreeMap::new();
        let mut emitted = 0;
        for (i, line) in rx {
            pending.insert(i, line);
            while let Some(line) = pending.remove(&emitted) {
                emitted += 1;
                if out.emit(&line).is_err() {
                    // Nobody reads the output any more: the workers stop at their next file.
                    write_failed = true;
                    next.store(files.len(), Ordering::Relaxed);
                    return;
                }
            }
        }
    });
    if write_failed {
        return ExitCode::from(2);
    }
    out.finish()
}

/// One file's `analyze` line.
fn analyze_file(pipeline: &Pipeline, f: &std::path::Path, embeddings: bool) -> FileJson {
    let name = f.display().to_string();
    match std::fs::read(f) {
        Err(e) => FileJson::failed(
            name,
            ImageErrorKind::Internal,
            format!("cannot read file: {e}"),
        ),
        Ok(bytes) => match pipeline.analyze_bytes(&bytes, None) {
            // The file's size: the pixels may be a reduced decode.
            Ok((img, faces)) => {
                FileJson::ok(name, img.source_width, img.source_height, faces, embeddings)
            }
            Err(e) => FileJson::failed(name, e.image_kind(), e.to_string()),
        },
    }
}

fn call(addr: &str, embeddings: bool, files: &[PathBuf]) -> ExitCode {
    use likeness_proto::matcher_v1 as pb;
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(async {
        let mut client = match pb::matcher_client::MatcherClient::connect(addr.to_owned()).await {
            Ok(c) => c
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
            Err(e) => return fail(format!("cannot connect to {addr}: {e}")),
        };
        let mut out = JsonLines::default();
        for f in files {
            let name = f.display().to_string();
            let line = match std::fs::read(f) {
                Err(e) => FileJson::failed(
                    name,
                    ImageErrorKind::Internal,
                    format!("cannot read file: {e}"),
                ),
                Ok(data) => {
                    let req = pb::AnalyzeRequest {
                        images: vec![pb::ImageInput {
                            id: name.clone(),
                            data,
                        }],
                        options: Some(pb::AnalyzeOptions {
                            include_embeddings: embeddings,
                            min_score: 0.0,
                        }),
                    };
                    match client.analyze(req).await {
                        Err(s) => return fail(format!("{name}: {} ({:?})", s.message(), s.code())),
                        Ok(r) => match r.into_inner().results.into_iter().next() {
                            None => return fail(format!("{name}: the server returned no result")),
                            Some(r) => FileJson::from_pb(name, r, embeddings),
                        },
                    }
                }
            };
            if out.emit(&line).is_err() {
                return ExitCode::from(2);
            }
        }
        out.finish()
    })
}

/// Writes the `analyze`/`call` JSON lines and remembers whether any file failed.
#[derive(Default)]
struct JsonLines {
    any_failed: bool,
}

impl JsonLines {
    fn emit(&mut self, line: &FileJson) -> std::io::Result<()> {
        self.any_failed |= line.error.is_some();
        let json = serde_json::to_string(line).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        writeln!(std::io::stdout().lock(), "{json}")
    }

    /// Exit status: 0 all files analysed, 1 some file failed.
    fn finish(self) -> ExitCode {
        if self.any_failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

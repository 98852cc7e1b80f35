//! `likeness-loadtest`: a bounded closed-loop load scenario for the `likeness-control` REST API.
//!
//! C concurrent clients (one keep-alive HTTP/1.1 connection each, loopback only) send, for a fixed
//! duration, a weighted mix of compliance queries (per asset, per person, filtered lists: lacking
//! consent, expiring within 30 days) and uploads of real images. Each client waits for its answer
//! before sending the next request (closed loop), so the offered load is bounded by C.
//!
//! With `--spawn-control` it first starts `likeness-control serve` on a fresh SQLite file or a
//! fresh PostgreSQL database and seeds a tenant through the API (admin via `create-admin`, an API
//! token, persons, agreements, uploaded assets with hand-drawn faces linked to persons, legal
//! bases). Without it, it loads an already running server given by `--url` and `--token`
//! (seeding that server's tenant the same way unless `--no-seed`).
//!
//! Results (per endpoint requests/s, p50/p90/p99/max from an HDR histogram, error counts with
//! their status and error code, the machine's load average before and after, CPU seconds used by
//! the server and by the load generator) are printed and written as JSON.

// A command-line tool: its report goes to stdout.
#![allow(clippy::print_stdout)]

mod http;
mod scenario;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

/// Database backend of the spawned server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Db {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server of `--pg-url`.
    Postgres,
}

impl Db {
    fn as_str(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        }
    }
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "likeness-loadtest",
    about = "Closed-loop load on likeness-control: compliance queries and uploads"
)]
pub struct Args {
    /// Start `likeness-control serve` (this binary) on a fresh database and tear it down after.
    #[arg(long)]
    pub spawn_control: Option<PathBuf>,
    /// Backend of the spawned server (also names the result file).
    #[arg(long, value_enum, default_value = "sqlite")]
    pub db: Db,
    /// PostgreSQL server for `--db postgres` (a fresh database is created on it and dropped after).
    #[arg(
        long,
        env = "LIKENESS_TEST_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:55432/postgres"
    )]
    pub pg_url: String,
    /// Matcher gRPC URL given to the spawned server. The default is a closed loopback port: the
    /// matcher is down, uploads must still succeed and face jobs wait in the queue.
    #[arg(long, default_value = "http://127.0.0.1:9")]
    pub matcher_url: String,
    /// HTTP worker threads of the spawned server (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub server_workers: usize,
    /// Database pool size of the spawned server.
    #[arg(long, default_value_t = 8)]
    pub pool_size: u32,
    /// Base URL of a running server (without `--spawn-control`), e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// API token (`lk_...`) of an admin of the running server (without `--spawn-control`).
    #[arg(long, env = "LIKENESS_LOADTEST_TOKEN")]
    pub token: Option<String>,
    /// Do not seed (the running server's tenant already holds persons and assets).
    #[arg(long)]
    pub no_seed: bool,
    /// Directory of JPEG/PNG images to upload (seeding first, then the load's uploads).
    #[arg(long, default_value = "/work/shared/data/faces_dev")]
    pub images: PathBuf,
    /// Persons to seed.
    #[arg(long, default_value_t = 200)]
    pub persons: usize,
    /// Assets to seed.
    #[arg(long, default_value_t = 300)]
    pub assets: usize,
    /// Concurrent clients of the load phase (closed loop); several values run one after another.
    #[arg(long, value_delimiter = ',', default_value = "8")]
    pub clients: Vec<usize>,
    /// Duration of each load phase, in seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Warm-up before each measured phase, in seconds (requests sent, not recorded).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Weighted mix `endpoint=weight,...` over asset_compliance, person_compliance,
    /// lacking_consent, expiring_30d, upload.
    #[arg(
        long,
        default_value = "asset_compliance=40,person_compliance=25,lacking_consent=10,expiring_30d=10,upload=15"
    )]
    pub mix: String,
    /// Result file (default bench/results/loadtest-<db>.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A free-text note stored in the result (e.g. what else ran on the machine).
    #[arg(long, default_value = "")]
    pub note: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("likeness-loadtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("likeness-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let mix = scenario::Mix::parse(&args.mix)?;
    let images = scenario::load_images(&args.images)?;
    if args.clients.is_empty() || args.clients.contains(&0) {
        bail!("--clients must be one or more positive numbers");
    }
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!("bench/results/loadtest-{}.json", args.db.as_str()))
    });
    let mut spawned = None;
    let (base, token) = match &args.spawn_control {
        Some(bin) => {
            let s = server::Spawned::start(bin, &args).await?;
            let base = s.base.clone();
            let token = s.token.clone();
            spawned = Some(s);
            (base, token)
        }
        None => {
            let base = args
                .url
                .clone()
                .context("give --spawn-control, or --url and --token of a running server")?;
            let token = args
                .token
                .clone()
                .context("--token (or LIKENESS_LOADTEST_TOKEN) is needed with --url")?;
            (base, token)
        }
    };
    let result = async {
        let target = http::Target::parse(&base, &token)?;
        let seed = if args.no_seed {
            scenario::discover(&target).await?
        } else {
            scenario::seed(&target, &images, args.persons, args.assets).await?
        };
        println!(
            "seeded: {} persons, {} assets ({} faces linked, {} left unidentified) in {:.1} s",
            seed.persons.len(),
            seed.assets.len(),
            seed.faces_linked,
            seed.faces_unlinked,
            seed.seconds
        );
        let mut phases = Vec::new();
        let mut next_image = seed.images_used;
        for &c in &args.clients {
            let pid = spawned.as_ref().and_then(|s: &server::Spawned| s.pid);
            let phase = scenario::run_phase(
                &target,
                &seed,
                &images,
                &mut next_image,
                &mix,
                c,
                Duration::from_secs(args.warmup),
                Duration::from_secs(args.duration),
                pid,
            )
            .await?;
            scenario::print_phase(&phase);
            phases.push(phase);
        }
        Ok::<_, anyhow::Error>((seed, phases))
    }
    .await;
    let server_log = match spawned.take() {
        Some(s) => Some(s.stop().await),
        None => None,
    };
    let (seed, phases) = result?;
    let report = serde_json::json!({
        "tool": "likeness-loadtest",
        "at": chrono::Utc::now().to_rfc3339(),
        "db": args.db.as_str(),
        "server": match &args.spawn_control {
            Some(bin) => serde_json::json!({
                "spawned": bin.display().to_string(),
                "workers": args.server_workers,
                "pool_size": args.pool_size,
                "matcher_url": args.matcher_url,
            }),
            None => serde_json::json!({ "url": base }),
        },
        "machine": scenario::machine(),
        "seed": {
            "persons": seed.persons.len(),
            "assets": seed.assets.len(),
            "faces_linked": seed.faces_linked,
            "faces_unlinked": seed.faces_unlinked,
            "seconds": seed.seconds,
            "images_dir": args.images.display().to_string(),
        },
        "mix": mix.to_json(),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "phases": phases,
        "server_log": server_log,
        "note": args.note,
    });
    if let Some(dir) = out.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = out.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming to {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

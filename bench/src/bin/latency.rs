//! Analyze latency through the real gRPC server: starts `likeness-matcher serve` (release
//! build) on a free 127.0.0.1 port, then for 1, 4 and 16 concurrent clients sends one-image
//! Analyze requests (an upload: a 1-3 MP photo with 1-2 faces) for a bounded number of
//! requests, and reports p50/p90/p99 latency and requests/s. Writes bench/results/latency.json.
//!
//! `cargo run --release -p likeness-bench --bin latency -- [--requests 40] [--clients 1,4,16]`
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use likeness_proto::matcher_v1 as pb;
use pb::matcher_client::MatcherClient;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// Requests per client at each concurrency.
    #[arg(long, default_value_t = 40)]
    requests: usize,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    clients: Vec<usize>,
    /// Images sent (cycled); default: a few ordinary photos from ../shared/data/photos.
    #[arg(long)]
    images: Vec<PathBuf>,
    /// Matcher binary.
    #[arg(long, default_value = "target/release/likeness-matcher")]
    matcher: PathBuf,
    /// Output JSON.
    #[arg(long, default_value = "bench/results/latency.json")]
    out: PathBuf,
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let images = if args.images.is_empty() {
        [
            "img1.jpg",
            "img2.jpg",
            "img4.jpg",
            "img5.jpg",
            "img11.jpg",
            "img15.jpg",
        ]
        .iter()
        .map(|f| PathBuf::from("../shared/data/photos").join(f))
        .collect()
    } else {
        args.images.clone()
    };
    let data: Vec<Vec<u8>> = images
        .iter()
        .map(|p| std::fs::read(p).with_context(|| p.display().to_string()))
        .collect::<anyhow::Result<_>>()?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&args.matcher)
        .arg("serve")
        .env(
            "LIKENESS_MATCHER__SERVER__GRPC_ADDR",
            format!("127.0.0.1:{port}"),
        )
        .env("LIKENESS_MATCHER__SERVER__METRICS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "start {} (build it with cargo build --release)",
                args.matcher.display()
            )
        })?;
    let mut guard = Guard(child);
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let channel = loop {
        if let Some(status) = guard.0.try_wait()? {
            bail!("matcher exited: {status}");
        }
        if let Ok(ch) = Channel::from_shared(url.clone())?.connect().await {
            break ch;
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("matcher did not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let client = MatcherClient::new(channel).max_encoding_message_size(64 << 20);
    // Warm-up.
    for d in &data {
        let mut c = client.clone();
        c.analyze(pb::AnalyzeRequest {
            images: vec![pb::ImageInput {
                id: "w".into(),
                data: d.clone(),
            }],
            options: None,
        })
        .await?;
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "Analyze latency through gRPC on 127.0.0.1 ({} cores, {cpu})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "clients", "p50 ms", "p90 ms", "p99 ms", "max ms", "req/s"
    );
    let mut rows = Vec::new();
    for &c in &args.clients {
        let load_before = load_avg();
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..c {
            let mut cl = client.clone();
            let data = data.clone();
            let n = args.requests;
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(n);
                let mut faces = 0usize;
                for i in 0..n {
                    let d = data[(k + i) % data.len()].clone();
                    let t = Instant::now();
                    let r = cl
                        .analyze(pb::AnalyzeRequest {
                            images: vec![pb::ImageInput {
                                id: i.to_string(),
                                data: d,
                            }],
                            options: None,
                        })
                        .await?;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    faces += r
                        .into_inner()
                        .results
                        .iter()
                        .map(|r| r.faces.len())
                        .sum::<usize>();
                }
                anyhow::Ok((lat, faces))
            }));
        }
        let mut all = Vec::new();
        let mut faces = 0;
        for t in tasks {
            let (l, f) = t.await??;
            all.extend(l);
            faces += f;
        }
        let wall = t0.elapsed().as_secs_f64();
        all.sort_by(f64::total_cmp);
        let row = serde_json::json!({
            "clients": c,
            "requests": all.len(),
            "faces": faces,
            "p50_ms": percentile(&all, 0.5),
            "p90_ms": percentile(&all, 0.9),
            "p99_ms": percentile(&all, 0.99),
            "max_ms": all.last().copied().unwrap_or(f64::NAN),
            "requests_per_s": all.len() as f64 / wall,
            // Other processes share the machine: 1/5/15-minute load averages around the row.
            "load_avg_before": load_before,
            "load_avg_after": load_avg(),
        });
        println!(
            "{:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.2}",
            c,
            percentile(&all, 0.5),
            percentile(&all, 0.9),
            percentile(&all, 0.99),
            all.last().copied().unwrap_or(f64::NAN),
            all.len() as f64 / wall
        );
        rows.push(row);
    }
    let report = serde_json::json!({
        "bench": "grpc_analyze_latency",
        "machine": format!("{} cores, {cpu}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)),
        "images": images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "requests_per_client": args.requests,
        "rows": rows,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

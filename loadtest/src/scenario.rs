//! The scenario: seeding a tenant through the API, the weighted request mix, the closed-loop
//! phases and their statistics.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chrono::{Days, NaiveDate, Utc};
use hdrhistogram::Histogram;
use hyper::Method;
use serde::Serialize;

use crate::http::{Answer, Conn, Extra, Target};

/// The endpoints of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    /// `GET /api/v1/assets/{id}/compliance` (every channel, today).
    AssetCompliance,
    /// `GET /api/v1/persons/{id}/compliance` (every file of the person; audited read).
    PersonCompliance,
    /// `GET /api/v1/compliance/assets?status=missing_consent&limit=50`.
    LackingConsent,
    /// `GET /api/v1/compliance/assets?expiring_within_days=30&limit=50`.
    Expiring30d,
    /// `POST /api/v1/assets?filename=..` with a real image as the body.
    Upload,
}

impl Endpoint {
    const ALL: [Endpoint; 5] = [
        Endpoint::AssetCompliance,
        Endpoint::PersonCompliance,
        Endpoint::LackingConsent,
        Endpoint::Expiring30d,
        Endpoint::Upload,
    ];

    fn name(self) -> &'static str {
        match self {
            Endpoint::AssetCompliance => "asset_compliance",
            Endpoint::PersonCompliance => "person_compliance",
            Endpoint::LackingConsent => "lacking_consent",
            Endpoint::Expiring30d => "expiring_30d",
            Endpoint::Upload => "upload",
        }
    }

    fn request(self) -> &'static str {
        match self {
            Endpoint::AssetCompliance => "GET /api/v1/assets/{id}/compliance",
            Endpoint::PersonCompliance => "GET /api/v1/persons/{id}/compliance",
            Endpoint::LackingConsent => {
                "GET /api/v1/compliance/assets?status=missing_consent&limit=50"
            }
            Endpoint::Expiring30d => {
                "GET /api/v1/compliance/assets?expiring_within_days=30&limit=50"
            }
            Endpoint::Upload => "POST /api/v1/assets?filename=.. (image body)",
        }
    }
}

/// Weights of the endpoints.
#[derive(Debug, Clone)]
pub struct Mix {
    weights: Vec<(Endpoint, u32)>,
    total: u32,
}

impl Mix {
    /// Parses `name=weight,...`.
    pub fn parse(s: &str) -> Result<Self> {
        let mut weights = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once('=')
                .with_context(|| format!("--mix entry {part:?} is not name=weight"))?;
            let ep = Endpoint::ALL
                .into_iter()
                .find(|e| e.name() == name.trim())
                .with_context(|| {
                    format!(
                        "--mix: unknown endpoint {name:?} (known: {})",
                        Endpoint::ALL.map(Endpoint::name).join(", ")
                    )
                })?;
            let w: u32 = w
                .trim()
                .parse()
                .with_context(|| format!("--mix: weight of {name} is not a number: {w:?}"))?;
            if weights.iter().any(|(e, _)| *e == ep) {
                bail!("--mix: {name} is given twice");
            }
            if w > 0 {
                weights.push((ep, w));
            }
        }
        let total = weights.iter().map(|(_, w)| *w).sum();
        if total == 0 {
            bail!("--mix: no endpoint has a positive weight");
        }
        Ok(Self { weights, total })
    }

    fn pick(&self, r: u32) -> Endpoint {
        let mut x = r % self.total;
        for (e, w) in &self.weights {
            if x < *w {
                return *e;
            }
            x -= w;
        }
        self.weights[0].0
    }

    /// The mix as JSON (`{"name": weight}` plus the request of each).
    pub fn to_json(&self) -> serde_json::Value {
        self.weights
            .iter()
            .map(|(e, w)| {
                (
                    e.name().to_string(),
                    serde_json::json!({"weight": w, "request": e.request()}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// A small xorshift generator (no need for cryptographic quality).
struct Rng(Cell<u64>);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(Cell::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1))
    }
    fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x
    }
    fn below(&self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// One image to upload.
pub struct Image {
    /// File name.
    pub name: String,
    /// Its bytes.
    pub bytes: Bytes,
}

/// Reads every `.jpg`, `.jpeg` and `.png` of a directory, sorted by name.
pub fn load_images(dir: &Path) -> Result<Vec<Image>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the image directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no .jpg/.jpeg/.png images in {}", dir.display());
    }
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("image.jpg")
                .to_string();
            Ok(Image {
                name,
                bytes: Bytes::from(bytes),
            })
        })
        .collect()
}

/// What the scenario works on.
pub struct Seed {
    /// Person IDs.
    pub persons: Vec<String>,
    /// Asset IDs.
    pub assets: Vec<String>,
    /// Faces drawn and confirmed to a person.
    pub faces_linked: usize,
    /// Faces drawn and left without a person (unidentified faces block approval).
    pub faces_unlinked: usize,
    /// Images of the directory used by the seeding (the load's uploads continue after them).
    pub images_used: usize,
    /// Seconds the seeding took.
    pub seconds: f64,
}

/// Runs `f(conn, i)` for `i` in `0..n` on `conc` connections; results in index order.
async fn par<T>(
    target: &Target,
    n: usize,
    conc: usize,
    f: impl AsyncFn(&mut Conn, usize) -> Result<T>,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let workers = (0..conc.max(1)).map(|_| async {
        let mut conn = Conn::new(target);
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            out.push((i, f(&mut conn, i).await?));
        }
        Ok::<_, anyhow::Error>(out)
    });
    let mut all = Vec::with_capacity(n);
    for r in futures::future::join_all(workers).await {
        all.extend(r?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

fn id_of(a: &Answer, what: &str, ptr: &str) -> Result<String> {
    a.json()?
        .pointer(ptr)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .with_context(|| format!("{what}: no {ptr} in the answer"))
}

fn day(today: NaiveDate, offset: i64) -> NaiveDate {
    if offset >= 0 {
        today.checked_add_days(Days::new(offset.unsigned_abs()))
    } else {
        today.checked_sub_days(Days::new(offset.unsigned_abs()))
    }
    .unwrap_or(today)
}

/// Seeds the tenant of `target` through the API: persons (some minors, some never-publish),
/// agreements (web/print; some expiring within 30 days, some expired, some withdrawn, a quarter
/// of the persons without any), uploaded assets with a legal basis and one hand-drawn face each,
/// confirmed to a person (one in ten left unidentified).
pub async fn seed(
    target: &Target,
    images: &[Image],
    n_persons: usize,
    n_assets: usize,
) -> Result<Seed> {
    const CONC: usize = 8;
    if n_persons == 0 || n_assets == 0 {
        bail!("--persons and --assets must be positive");
    }
    let started = Instant::now();
    let today = Utc::now().date_naive();
    let persons = par(target, n_persons, CONC, async |c: &mut Conn, i| {
        let mut body = serde_json::json!({
            "name": format!("Load Person {i:05}"),
            "email": format!("person{i}@loadtest.invalid"),
            "never_publish": i % 50 == 49,
        });
        if i % 20 == 7 {
            body["date_of_birth"] = serde_json::json!(day(today, -365 * 10).to_string());
        }
        let a = c
            .json(Method::POST, "/api/v1/persons", &body)
            .await?
            .expect_status(201, "creating a person")?;
        id_of(&a, "person", "/id")
    })
    .await?;
    par(target, n_persons, CONC, async |c: &mut Conn, i| {
        if i % 4 == 3 {
            return Ok(()); // a quarter has no consent at all
        }
        let (channels, until) = match i % 10 {
            0 | 1 => (vec!["web"], Some(day(today, 1 + (i as i64 % 29)))), // expiring < 30 d
            2 => (vec!["web", "print"], Some(day(today, -5))),             // expired
            3 => (vec!["web", "print", "social"], None),
            _ => (vec!["web", "print"], Some(day(today, 365))),
        };
        let body = serde_json::json!({
            "channels": channels,
            "valid_from": day(today, -200).to_string(),
            "valid_until": until.map(|d| d.to_string()),
            "source": "digital",
            "covers_face_matching": false,
            "signed_by_guardian": i % 40 == 7,
        });
        let p = &persons[i];
        let a = c
            .json(
                Method::POST,
                &format!("/api/v1/persons/{p}/agreements"),
                &body,
            )
            .await?
            .expect_status(201, "creating an agreement")?;
        if i % 25 == 4 {
            let id = id_of(&a, "agreement", "/id")?;
            c.json(
                Method::POST,
                &format!("/api/v1/agreements/{id}/withdraw"),
                &serde_json::json!({"reason": "load test withdrawal"}),
            )
            .await?
            .expect_status(200, "withdrawing an agreement")?;
        }
        Ok(())
    })
    .await?;
    let linked = par(target, n_assets, CONC, async |c: &mut Conn, i| {
        let img = &images[i % images.len()];
        let a = upload(c, img, i)
            .await?
            .expect_status(201, "seeding upload")?;
        let v = a.json()?;
        let id = v["asset"]["id"]
            .as_str()
            .context("upload answer without asset.id")?
            .to_string();
        let w = v["asset"]["width"].as_f64().unwrap_or(100.0);
        let h = v["asset"]["height"].as_f64().unwrap_or(100.0);
        if i % 20 != 19 {
            c.json(
                Method::PUT,
                &format!("/api/v1/assets/{id}/legal-basis"),
                &serde_json::json!({"legal_basis": "consent"}),
            )
            .await?
            .expect_status(200, "setting the legal basis")?;
        }
        let face = c
            .json(
                Method::POST,
                &format!("/api/v1/assets/{id}/faces"),
                &serde_json::json!({"box": [w * 0.2, h * 0.15, w * 0.8, h * 0.85]}),
            )
            .await?
            .expect_status(201, "drawing a face")?;
        let face_id = id_of(&face, "face", "/id")?;
        let link = i % 10 != 9;
        if link {
            // Assets cluster on persons (i and i + n_persons show the same person).
            let p = &persons[i % persons.len()];
            c.json(
                Method::POST,
                &format!("/api/v1/faces/{face_id}/confirm"),
                &serde_json::json!({"person_id": p}),
            )
            .await?
            .expect_status(200, "confirming a face")?;
        }
        Ok((id, link))
    })
    .await?;
    let faces_linked = linked.iter().filter(|(_, l)| *l).count();
    Ok(Seed {
        persons,
        faces_unlinked: linked.len() - faces_linked,
        assets: linked.into_iter().map(|(id, _)| id).collect(),
        faces_linked,
        images_used: n_assets,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn upload(c: &mut Conn, img: &Image, i: usize) -> Result<Answer> {
    let path = format!(
        "/api/v1/assets?filename=load-{i:06}-{}",
        url_part(&img.name)
    );
    let ct = if img.name.to_ascii_lowercase().ends_with(".png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    c.send(
        Method::POST,
        &path,
        Some((ct, img.bytes.clone())),
        &Extra::default(),
    )
    .await
}

/// Percent-encodes everything but unreserved characters.
fn url_part(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(char::from(b));
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Uses the persons and assets already in the tenant (first pages of the lists).
pub async fn discover(target: &Target) -> Result<Seed> {
    let started = Instant::now();
    let mut c = Conn::new(target);
    let ids = |a: Answer, what: &str| -> Result<Vec<String>> {
        let v = a.expect_status(200, what)?.json()?;
        Ok(v["items"]
            .as_array()
            .map(|xs| {
                xs.iter()
                    .filter_map(|x| x["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    };
    let persons = ids(
        c.get("/api/v1/persons?per_page=100").await?,
        "listing persons",
    )?;
    let assets = ids(
        c.get("/api/v1/assets?per_page=100").await?,
        "listing assets",
    )?;
    if persons.is_empty() || assets.is_empty() {
        bail!("--no-seed: the tenant has no persons or no assets to query");
    }
    Ok(Seed {
        persons,
        assets,
        faces_linked: 0,
        faces_unlinked: 0,
        images_used: 0,
        seconds: started.elapsed().as_secs_f64(),
    })
}

struct Stats {
    hist: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Stats {
    fn new() -> Result<Self> {
        Ok(Self {
            hist: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            ok: 0,
            errors: BTreeMap::new(),
        })
    }
}

/// Latency and throughput of one endpoint in one phase.
#[derive(Debug, Serialize)]
pub struct EndpointResult {
    /// Endpoint name.
    pub name: &'static str,
    /// The request.
    pub request: &'static str,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that failed (non-2xx answer or transport error).
    pub errors: u64,
    /// Successful requests per second over the measured window.
    pub rps: f64,
    /// Latency percentiles of the successful requests, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Errors by `status code` (or `transport`).
    pub error_kinds: BTreeMap<String, u64>,
}

/// One closed-loop phase.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// Concurrent clients.
    pub clients: usize,
    /// Length of the measured window, seconds.
    pub seconds: f64,
    /// Successful requests per second, all endpoints.
    pub rps: f64,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    pub errors: u64,
    /// p50 of every successful request, ms.
    pub p50_ms: f64,
    /// p99 of every successful request, ms.
    pub p99_ms: f64,
    /// Per endpoint.
    pub endpoints: Vec<EndpointResult>,
    /// `/proc/loadavg` before the phase (after warm-up) and after it.
    pub loadavg_before: String,
    /// After.
    pub loadavg_after: String,
    /// CPU seconds during the measured window: the server, this load generator, the whole
    /// machine (all cores; the rest is other processes, e.g. compilers of other work).
    pub cpu: serde_json::Value,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux).
fn proc_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// (busy, total) ticks of all CPUs.
fn machine_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

const HZ: f64 = 100.0;

struct CpuMark {
    server: Option<u64>,
    me: Option<u64>,
    machine: Option<(u64, u64)>,
}

impl CpuMark {
    fn now(server_pid: Option<u32>) -> Self {
        Self {
            server: server_pid.and_then(|p| proc_ticks(&p.to_string())),
            me: proc_ticks("self"),
            machine: machine_ticks(),
        }
    }

    fn since(&self, before: &CpuMark, wall: f64) -> serde_json::Value {
        let d = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b) as f64 / HZ),
            _ => None,
        };
        let server = d(self.server, before.server);
        let me = d(self.me, before.me);
        let (busy, total) = match (self.machine, before.machine) {
            (Some(a), Some(b)) => (
                Some(a.0.saturating_sub(b.0) as f64 / HZ),
                Some(a.1.saturating_sub(b.1) as f64 / HZ),
            ),
            _ => (None, None),
        };
        let other = match (busy, server, me) {
            (Some(b), Some(s), Some(m)) => Some((b - s - m).max(0.0)),
            _ => None,
        };
        serde_json::json!({
            "wall_s": wall,
            "server_cpu_s": server,
            "loadgen_cpu_s": me,
            "machine_busy_cpu_s": busy,
            "machine_total_cpu_s": total,
            "other_processes_cpu_s": other,
        })
    }
}

/// Runs one closed-loop phase of `clients` clients: warm-up, then the measured window.
#[allow(clippy::too_many_arguments)]
pub async fn run_phase(
    target: &Target,
    seed: &Seed,
    images: &[Image],
    next_image: &mut usize,
    mix: &Mix,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    server_pid: Option<u32>,
) -> Result<Phase> {
    let t0 = Instant::now();
    let measure_from = t0 + warmup;
    let stop_at = measure_from + duration;
    let image_counter = Cell::new(*next_image);
    let today = Utc::now().date_naive();
    let marks: std::cell::RefCell<Option<(CpuMark, String)>> = std::cell::RefCell::new(None);
    let workers = (0..clients).map(|k| {
        let rng = Rng::new(k as u64 + 1 + (t0.elapsed().as_nanos() as u64));
        let image_counter = &image_counter;
        let marks = &marks;
        async move {
            let mut conn = Conn::new(target);
            let mut stats: BTreeMap<Endpoint, Stats> = BTreeMap::new();
            loop {
                let start = Instant::now();
                if start >= stop_at {
                    break;
                }
                if start >= measure_from && marks.borrow().is_none() {
                    *marks.borrow_mut() = Some((CpuMark::now(server_pid), loadavg()));
                }
                let ep = mix.pick(u32::try_from(rng.next() >> 40).unwrap_or(0));
                let res = match ep {
                    Endpoint::AssetCompliance => {
                        let a = &seed.assets[rng.below(seed.assets.len())];
                        conn.get(&format!("/api/v1/assets/{a}/compliance?date={today}"))
                            .await
                    }
                    Endpoint::PersonCompliance => {
                        let p = &seed.persons[rng.below(seed.persons.len())];
                        conn.get(&format!("/api/v1/persons/{p}/compliance?date={today}"))
                            .await
                    }
                    Endpoint::LackingConsent => {
                        conn.get("/api/v1/compliance/assets?status=missing_consent&limit=50")
                            .await
                    }
                    Endpoint::Expiring30d => {
                        conn.get("/api/v1/compliance/assets?expiring_within_days=30&limit=50")
                            .await
                    }
                    Endpoint::Upload => {
                        let i = image_counter.get();
                        image_counter.set(i + 1);
                        upload(&mut conn, &images[i % images.len()], i).await
                    }
                };
                if start < measure_from {
                    continue;
                }
                let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                let st = match stats.entry(ep) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => v.insert(Stats::new()?),
                };
                match res {
                    Ok(a) if a.status.is_success() => {
                        st.ok += 1;
                        st.hist.saturating_record(us);
                    }
                    Ok(a) => {
                        *st.errors
                            .entry(format!("{} {}", a.status.as_u16(), a.error_code()))
                            .or_default() += 1;
                    }
                    Err(e) => {
                        *st.errors
                            .entry(format!("transport: {}", e.root_cause()))
                            .or_default() += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>(stats)
        }
    });
    let per_client = futures::future::join_all(workers).await;
    let end = Instant::now();
    let after = CpuMark::now(server_pid);
    let load_after = loadavg();
    *next_image = image_counter.get();
    let seconds = end.saturating_duration_since(measure_from).as_secs_f64();
    let mut merged: BTreeMap<Endpoint, Stats> = BTreeMap::new();
    for r in per_client {
        for (ep, s) in r? {
            let m = match merged.entry(ep) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(Stats::new()?),
            };
            m.hist.add(&s.hist)?;
            m.ok += s.ok;
            for (k, n) in s.errors {
                *m.errors.entry(k).or_default() += n;
            }
        }
    }
    let mut all = Stats::new()?;
    let ms = |us: u64| us as f64 / 1000.0;
    let mut endpoints = Vec::new();
    for (ep, s) in &merged {
        all.hist.add(&s.hist)?;
        all.ok += s.ok;
        let errors: u64 = s.errors.values().sum();
        endpoints.push(EndpointResult {
            name: ep.name(),
            request: ep.request(),
            ok: s.ok,
            errors,
            rps: s.ok as f64 / seconds.max(1e-9),
            p50_ms: ms(s.hist.value_at_quantile(0.5)),
            p90_ms: ms(s.hist.value_at_quantile(0.9)),
            p99_ms: ms(s.hist.value_at_quantile(0.99)),
            max_ms: ms(s.hist.max()),
            mean_ms: s.hist.mean() / 1000.0,
            error_kinds: s.errors.clone(),
        });
    }
    let (before, load_before) = marks
        .into_inner()
        .unwrap_or_else(|| (CpuMark::now(server_pid), loadavg()));
    Ok(Phase {
        clients,
        seconds,
        rps: all.ok as f64 / seconds.max(1e-9),
        ok: all.ok,
        errors: endpoints.iter().map(|e| e.errors).sum(),
        p50_ms: ms(all.hist.value_at_quantile(0.5)),
        p99_ms: ms(all.hist.value_at_quantile(0.99)),
        endpoints,
        loadavg_before: load_before,
        loadavg_after: load_after,
        cpu: after.since(&before, seconds),
    })
}

/// Prints a phase as a table.
pub fn print_phase(p: &Phase) {
    println!(
        "\n{} clients, {:.1} s: {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms, {} errors; loadavg {} -> {}; cpu {}",
        p.clients,
        p.seconds,
        p.rps,
        p.p50_ms,
        p.p99_ms,
        p.errors,
        p.loadavg_before,
        p.loadavg_after,
        p.cpu
    );
    println!(
        "{:<18} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}  errors",
        "endpoint", "ok", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for e in &p.endpoints {
        println!(
            "{:<18} {:>8} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {:?}",
            e.name, e.ok, e.rps, e.p50_ms, e.p90_ms, e.p99_ms, e.max_ms, e.error_kinds
        );
    }
}

/// The machine: cores, CPU model, memory.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("?")
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_string))
        .unwrap_or_default();
    serde_json::json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "mem": mem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_picks_by_weight() {
        let m = Mix::parse("asset_compliance=3, upload=1").unwrap();
        let picks: Vec<Endpoint> = (0..4).map(|r| m.pick(r)).collect();
        assert_eq!(
            picks,
            [
                Endpoint::AssetCompliance,
                Endpoint::AssetCompliance,
                Endpoint::AssetCompliance,
                Endpoint::Upload
            ]
        );
        assert!(Mix::parse("nope=1").is_err());
        assert!(Mix::parse("upload=x").is_err());
        assert!(Mix::parse("upload=0").is_err());
        assert!(Mix::parse("upload=1,upload=2").is_err());
    }

    #[test]
    fn url_parts_are_encoded() {
        assert_eq!(
            url_part("Alexander_Skarsgård 1.jpg"),
            "Alexander_Skarsg%C3%A5rd%201.jpg"
        );
    }
}

//! Prometheus metrics of the control plane, served as text on `GET /metrics` (no
//! authentication, like the matcher's: keep the path off the public reverse proxy).
//!
//! Requests (recorded by [`middleware`], registered in `configure_app`):
//! - `likeness_control_http_requests_total{method,route,status}`
//! - `likeness_control_http_request_duration_seconds{method,route}` (histogram, until the
//!   response head; a streamed body is not included)
//!
//! `route` is the matched route pattern (`/api/v1/persons/{person_id}`), never the raw path;
//! a path that matches no route is `unmatched`, so the label set stays bounded. `method` is one
//! of the standard methods or `other`.
//!
//! The job queue, read from the `jobs` table at scrape time (all tenants):
//! - `likeness_control_job_queue_depth{kind}`: queued jobs that are due (`run_after` <= now)
//! - `likeness_control_job_queue_oldest_seconds{kind}`: how long the longest-waiting due job
//!   has been due (now - its `run_after`; a retried job counts from its retry time)
//! - `likeness_control_jobs_scheduled{kind}`: queued jobs due later (retries, timed work)
//! - `likeness_control_jobs_running{kind}`: jobs a worker holds
//! - `likeness_control_jobs_failed{kind}`: jobs failed for good (`status = 'failed'` rows)
//! - `likeness_control_database_up`: 1 when those queries answered, else 0 (the job gauges are
//!   then absent)
//!
//! The request counters belong to the process (one registry, shared by every worker thread
//! and every app built in it).

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpMessage, HttpResponse};
use chrono::NaiveDateTime;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder, proto::MetricFamily,
};

use crate::Deps;

/// The request metrics of this process.
#[derive(Debug)]
struct HttpMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "likeness_control_http_requests_total",
                "HTTP requests by method, matched route pattern and status",
            ),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "likeness_control_http_request_duration_seconds",
                "Time to the response head by method and matched route pattern",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ]),
            &["method", "route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self {
            registry,
            requests,
            duration,
        })
    }
}

fn http_metrics() -> Option<&'static HttpMetrics> {
    static METRICS: OnceLock<Option<HttpMetrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match HttpMetrics::new() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(error = %e, "request metrics disabled");
                None
            }
        })
        .as_ref()
}

/// The route pattern of a request for which the router found no resource (set by the
/// fallback when the path is known but the method is not, see `app.rs`).
#[derive(Debug, Clone)]
pub(crate) struct KnownRoute(pub String);

/// The `route` label: the matched pattern, the pattern the fallback recognised, or `unmatched`.
fn route_label(req: &actix_web::HttpRequest) -> String {
    if let Some(p) = req.match_pattern().filter(|p| !p.is_empty()) {
        return p;
    }
    if let Some(KnownRoute(p)) = req.extensions().get::<KnownRoute>() {
        return p.clone();
    }
    "unmatched".into()
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts every answer by method, route pattern and status, and observes its
/// latency (use with `actix_web::middleware::from_fn`).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // No clone of the request may live while it is routed (actix needs it unshared).
    let start = Instant::now();
    let method = method_label(req.method());
    let res = next.call(req).await;
    if let Some(m) = http_metrics() {
        let (route, status) = match &res {
            Ok(r) => (route_label(r.request()), r.status()),
            Err(e) => ("unmatched".into(), e.as_response_error().status_code()),
        };
        m.requests
            .with_label_values(&[method, route.as_str(), status.as_str()])
            .inc();
        m.duration
            .with_label_values(&[method, route.as_str()])
            .observe(start.elapsed().as_secs_f64());
    }
    res
}

/// Per-kind job counts read at scrape time.
#[derive(Debug, Default)]
struct JobGauges {
    /// (kind, due queued jobs, earliest run_after among them)
    due: Vec<(String, i64, Option<NaiveDateTime>)>,
    /// (kind, queued jobs due later)
    scheduled: Vec<(String, i64)>,
    /// (kind, status, count) for running and failed jobs
    held: Vec<(String, String, i64)>,
}

fn read_jobs(
    c: &mut likeness_control_db::DbConn,
    now: NaiveDateTime,
) -> Result<JobGauges, likeness_control_db::DbError> {
    use diesel::dsl::{count_star, min};
    use diesel::prelude::*;
    use likeness_control_db::schema::jobs;
    let due = jobs::table
        .filter(jobs::status.eq("queued"))
        .filter(jobs::run_after.le(now))
        .group_by(jobs::kind)
        .select((jobs::kind, count_star(), min(jobs::run_after)))
        .load(c)?;
    let scheduled = jobs::table
        .filter(jobs::status.eq("queued"))
        .filter(jobs::run_after.gt(now))
        .group_by(jobs::kind)
        .select((jobs::kind, count_star()))
        .load(c)?;
    let held = jobs::table
        .filter(jobs::status.eq_any(["running", "failed"]))
        .group_by((jobs::kind, jobs::status))
        .select((jobs::kind, jobs::status, count_star()))
        .load(c)?;
    Ok(JobGauges {
        due,
        scheduled,
        held,
    })
}

fn job_families(
    jobs: Option<&JobGauges>,
    now: NaiveDateTime,
) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let registry = Registry::new();
    let up = IntGauge::new(
        "likeness_control_database_up",
        "1 when the job-queue queries of this scrape answered, else 0",
    )?;
    registry.register(Box::new(up.clone()))?;
    let Some(jobs) = jobs else {
        up.set(0);
        return Ok(registry.gather());
    };
    up.set(1);
    let gauge = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
        let g = IntGaugeVec::new(Opts::new(name, help), &["kind"])?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let depth = gauge(
        "likeness_control_job_queue_depth",
        "Queued jobs that are due (run_after <= now), by kind",
    )?;
    let scheduled = gauge(
        "likeness_control_jobs_scheduled",
        "Queued jobs due later (retries, timed work), by kind",
    )?;
    let running = gauge(
        "likeness_control_jobs_running",
        "Jobs held by a worker, by kind",
    )?;
    let failed = gauge(
        "likeness_control_jobs_failed",
        "Jobs failed for good (status failed), by kind",
    )?;
    let oldest = GaugeVec::new(
        Opts::new(
            "likeness_control_job_queue_oldest_seconds",
            "Seconds the longest-waiting due job has been due (now - run_after), by kind",
        ),
        &["kind"],
    )?;
    registry.register(Box::new(oldest.clone()))?;
    for (kind, n, first) in &jobs.due {
        depth.with_label_values(&[kind.as_str()]).set(*n);
        let waited = first
            .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        oldest.with_label_values(&[kind.as_str()]).set(waited);
    }
    for (kind, n) in &jobs.scheduled {
        scheduled.with_label_values(&[kind.as_str()]).set(*n);
    }
    for (kind, status, n) in &jobs.held {
        match status.as_str() {
            "running" => running.with_label_values(&[kind.as_str()]).set(*n),
            _ => failed.with_label_values(&[kind.as_str()]).set(*n),
        }
    }
    Ok(registry.gather())
}

/// The scrape: request metrics of the process, then the job queue read now.
async fn metrics(state: web::Data<Deps>) -> HttpResponse {
    let now = state.clock.now();
    let jobs = crate::health::probe(&state.pool, move |c| read_jobs(c, now)).await;
    let jobs = match jobs {
        Ok(j) => Some(j),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: job queue not readable");
            None
        }
    };
    let mut families = http_metrics()
        .map(|m| m.registry.gather())
        .unwrap_or_default();
    match job_families(jobs.as_ref(), now) {
        Ok(f) => families.extend(f),
        Err(e) => tracing::error!(error = %e, "metrics: job gauges"),
    }
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    if let Err(e) = encoder.encode(&families, &mut buf) {
        tracing::error!(error = %e, "metrics: encoding");
        buf = format!("# error encoding metrics: {e}\n").into_bytes();
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, encoder.format_type()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(buf)
}

/// Registers `GET /metrics`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

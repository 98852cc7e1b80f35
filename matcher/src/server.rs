//! Wiring: the gRPC server (matcher, health, reflection) and the `/metrics` HTTP endpoint.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use likeness_proto::matcher_v1::matcher_server::MatcherServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;
use crate::error::MatcherError;
use crate::grpc::GrpcMatcher;
use crate::metrics::Metrics;
use crate::service::MatcherService;

/// Binds a TCP listener, naming the address on failure.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, MatcherError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| MatcherError::Io(format!("cannot listen on {addr} ({what}): {e}")))
}

/// Serves `/metrics` (Prometheus text) and `/healthz` on `listener` until `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MatcherError> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| MatcherError::Io(format!("metrics server: {e}")))
}

/// Loads the pipeline and serves gRPC on `grpc` (and metrics on `metrics`, if given) until
/// `shutdown` resolves.
pub async fn run(
    cfg: Config,
    grpc: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MatcherError> {
    let metrics = Metrics::new().map_err(|e| MatcherError::Io(format!("metrics: {e}")))?;
    let svc = {
        let cfg = cfg.clone();
        let m = metrics.clone();
        tokio::task::spawn_blocking(move || MatcherService::start(&cfg, m))
            .await
            .map_err(|e| MatcherError::Io(format!("start-up task failed: {e}")))??
    };
    let svc = Arc::new(svc);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<MatcherServer<GrpcMatcher>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(likeness_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| MatcherError::Io(format!("reflection: {e}")))?;
    let matcher = GrpcMatcher::new(svc.clone(), cfg.server.max_stream_in_flight)
        .into_server(cfg.server.max_message_bytes);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut metrics_task = None;
    if let Some(l) = metrics_listener {
        tracing::info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics on /metrics");
        let mut rx = stop_rx.clone();
        metrics_task = Some(tokio::spawn(serve_metrics(
            l,
            metrics.clone(),
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        )));
    }
    let addr = grpc
        .local_addr()
        .map_err(|e| MatcherError::Io(e.to_string()))?;
    tracing::info!(%addr, detector = %cfg.pipeline.detector, embedder = %cfg.pipeline.embedder, "likeness-matcher serving gRPC");
    let mut rx = stop_rx.clone();
    let res = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(matcher)
        .serve_with_incoming_shutdown(TcpListenerStream::new(grpc), async move {
            let _ = rx.wait_for(|s| *s).await;
        });
    let shutdown_task = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let out = res
        .await
        .map_err(|e| MatcherError::Io(format!("gRPC server: {e}")));
    shutdown_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    tracing::info!("likeness-matcher stopped");
    out
}

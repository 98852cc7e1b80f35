//! Application state and the actix-web app: every route, JSON error handlers for bad bodies,
//! queries and paths, and the 404 fallback.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpResponse, error::InternalError};

use crate::config::Config;
use crate::db::DbPool;
use crate::error::{ControlError, Result};

type ExtMap = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// Shared state of the control plane, registered as `web::Data<AppState>`.
pub struct AppState {
    /// The database pool.
    pub pool: DbPool,
    /// The configuration.
    pub config: Arc<Config>,
    ext: Mutex<ExtMap>,
}

impl AppState {
    /// State over a pool and a configuration.
    pub fn new(pool: DbPool, config: Config) -> Self {
        Self {
            pool,
            config: Arc::new(config),
            ext: Mutex::new(HashMap::new()),
        }
    }

    /// A long-lived per-process singleton of type `T` (a blob store, a matcher client, ...),
    /// created by `init` on first use. Lets a module keep its own state without changing
    /// [`AppState`].
    pub fn ext<T, F>(&self, init: F) -> Result<Arc<T>>
    where
        T: Any + Send + Sync,
        F: FnOnce(&AppState) -> Result<T>,
    {
        let id = TypeId::of::<T>();
        {
            let map = self
                .ext
                .lock()
                .map_err(|_| ControlError::Internal("state lock poisoned".into()))?;
            if let Some(v) = map.get(&id) {
                return Arc::clone(v)
                    .downcast::<T>()
                    .map_err(|_| ControlError::Internal("state type mismatch".into()));
            }
        }
        // Initialised outside the lock (init may be slow); the first one stored wins.
        let fresh: Arc<dyn Any + Send + Sync> = Arc::new(init(self)?);
        let mut map = self
            .ext
            .lock()
            .map_err(|_| ControlError::Internal("state lock poisoned".into()))?;
        let v = Arc::clone(map.entry(id).or_insert(fresh));
        v.downcast::<T>()
            .map_err(|_| ControlError::Internal("state type mismatch".into()))
    }
}

fn bad(code: &'static str, err: impl std::fmt::Display) -> actix_web::Error {
    let e = ControlError::BadRequest {
        code,
        message: err.to_string(),
    };
    let resp = actix_web::ResponseError::error_response(&e);
    InternalError::from_response(e, resp).into()
}

/// Registers the state, extractor settings and every route (use in `App::configure`).
pub fn configure_app(cfg: &mut ServiceConfig, state: web::Data<AppState>) {
    let max_body = state.config.server.max_body_bytes;
    cfg.app_data(state)
        .app_data(
            web::JsonConfig::default()
                .limit(4 << 20)
                .error_handler(|e, _| bad("invalid_json", e)),
        )
        .app_data(web::QueryConfig::default().error_handler(|e, _| bad("invalid_query", e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| bad("invalid_path", e)))
        .app_data(web::PayloadConfig::new(max_body))
        .configure(crate::api::configure)
        .default_service(web::to(not_found));
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ControlError::NotFound(format!(
        "route {} {}",
        req.method(),
        req.path()
    )))
}

/// Runs the HTTP API on `server.http_addr` (port 0: any free port) with the job workers until
/// the process is stopped. `on_bound` gets the addresses actually bound, before serving starts
/// (the binary prints them, see `likeness-control serve`).
pub async fn serve(
    state: web::Data<AppState>,
    on_bound: impl FnOnce(&[std::net::SocketAddr]),
) -> Result<()> {
    let addr = state.config.server.http_addr;
    let workers = state.config.server.workers;
    crate::service::jobs::start(&state)?;
    let st = state.clone();
    let mut server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .wrap(actix_web::middleware::Logger::new("%a \"%r\" %s %b %Dms"))
            .configure(|c| configure_app(c, st.clone()))
    });
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server
        .bind(addr)
        .map_err(|e| ControlError::Config(format!("server.http_addr: cannot bind {addr}: {e}")))?;
    let bound = server.addrs();
    on_bound(&bound);
    for a in &bound {
        tracing::info!(addr = %a, "likeness-control listening");
    }
    server
        .run()
        .await
        .map_err(|e| ControlError::Internal(format!("http server: {e}")))
}

//! The actix-web app: every route, JSON error handlers for bad bodies,
//! queries and paths, and the 404 fallback.

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpResponse, error::InternalError};

use crate::Deps;
use crate::error::ControlError;

fn bad(code: &'static str, err: impl std::fmt::Display) -> actix_web::Error {
    let e = ControlError::BadRequest {
        code,
        message: err.to_string(),
    };
    let resp = crate::error::error_response(&e);
    InternalError::from_response(crate::error::ApiError(e), resp).into()
}

/// Registers the state, extractor settings and every route (use in `App::configure`).
pub fn configure_app(cfg: &mut ServiceConfig, state: web::Data<Deps>) {
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
    crate::error::error_response(&ControlError::NotFound(format!(
        "route {} {}",
        req.method(),
        req.path()
    )))
}

/// Runs the HTTP API on `server.http_addr` (port 0: any free port) with the job workers until
/// the process is stopped. `on_bound` gets the addresses actually bound, before serving starts
/// (the binary prints them, see `likeness-control serve`).
pub async fn serve(
    state: web::Data<Deps>,
    on_bound: impl FnOnce(&[std::net::SocketAddr]),
) -> crate::service::Result<()> {
    let addr = state.config.server.http_addr;
    let workers = state.config.server.workers;
    crate::service::jobs::start(&state.clone().into_inner())?;
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

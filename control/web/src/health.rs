//! Health probes, outside `/api/v1` and without authentication:
//!
//! - `GET /health/live`: the process serves HTTP (200 `{"status":"live"}`); restart it when
//!   this fails.
//! - `GET /health/ready`: the database answers a query within [`PROBE_TIMEOUT`] and no
//!   migration is pending (200 `{"status":"ready"}`); otherwise 503 with the JSON error body
//!   (`code` `not_ready`); take the instance out of the load balancer meanwhile. The reason
//!   (database unreachable, migrations pending) is in the message, details in the log.

use std::time::Duration;

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpResponse, http::header};
use likeness_control_db::{DbConn, DbError, DbPool};

use crate::Deps;
use crate::error::{ControlError, error_response};

/// Longest wait of a probe (and of the `/metrics` job gauges) for a connection and its query.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `f` on a pooled connection on the blocking pool, waiting at most [`PROBE_TIMEOUT`] for
/// the connection (a probe must not hang for the pool's usual 30 s when the database is down).
pub(crate) async fn probe<T, F>(pool: &DbPool, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T, DbError> + Send + 'static,
{
    let pool = pool.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_timeout(PROBE_TIMEOUT).map_err(DbError::from)?;
        f(&mut conn)
    });
    match tokio::time::timeout(PROBE_TIMEOUT * 2, task).await {
        Ok(joined) => joined.map_err(|e| DbError::Blocking(e.to_string()))?,
        Err(_) => Err(DbError::Connection(format!(
            "no answer within {} s",
            (PROBE_TIMEOUT * 2).as_secs()
        ))),
    }
}

async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "status": "live" }))
}

async fn ready(state: web::Data<Deps>) -> HttpResponse {
    let checked = probe(&state.pool, |c| {
        use diesel::connection::SimpleConnection;
        c.batch_execute("SELECT 1")?;
        likeness_control_db::has_pending_migrations(c)
    })
    .await;
    let message = match checked {
        Ok(false) => {
            return HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(serde_json::json!({ "status": "ready" }));
        }
        Ok(true) => {
            tracing::warn!("not ready: database migrations are pending");
            "database migrations are pending (run `likeness-control migrate`)"
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database check failed");
            "the database does not answer"
        }
    };
    error_response(&ControlError::Unavailable {
        code: "not_ready",
        message: message.into(),
    })
}

/// Registers `/health/live` and `/health/ready`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready));
}

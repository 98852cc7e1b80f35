//! The actix-web app: every route, JSON error handlers for bad bodies, queries and paths, the
//! fallback (404, or 405 for a known path with another method), and the edge middleware that
//! every answer passes:
//!
//! - request metrics ([`crate::metrics::middleware`]);
//! - `X-Content-Type-Options: nosniff` on every answer;
//! - `Cache-Control: no-store` on every answer except the public OpenAPI document (which gets
//!   it too when the request carried a session cookie or an `Authorization` header): API
//!   answers are personal data or secrets (the login's CSRF token, a new API token), and
//!   health and metrics are live values. It replaces what a handler set (a thumbnail's
//!   `private, max-age`): nothing authenticated stays in a browser's or proxy's cache;
//! - every 401 carries `WWW-Authenticate: Bearer realm="likeness"` (API token) and a second
//!   challenge naming the session cookie and the login path
//!   (`Cookie realm="likeness", form-action="/api/v1/auth/login", cookie-name="lk_session"`);
//! - every error answer has the JSON error body `{"error":{"code":..,"message":..}}`, also the
//!   ones actix raises itself (405 with its `Allow` header, 413, ...): a non-JSON error body is
//!   replaced, its status and headers are kept; except the console's and the public pages'
//!   (`/admin`, `/sign`, `/receipt`), which keep their HTML error pages;
//! - the public pages (`/sign/…`, `/receipt/…`) get a strict Content-Security-Policy
//!   ([`crate::public::PUBLIC_CSP`]: no script at all), `X-Frame-Options: DENY` and
//!   `Referrer-Policy: no-referrer` (their URLs hold the link's token).

use std::sync::OnceLock;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{Next, from_fn};
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpMessage, HttpResponse, error::InternalError};

use crate::Deps;
use crate::error::{ControlError, ErrorBody, ErrorDetail};

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
        // One scope over everything (an empty prefix), so that the edge middleware wraps every
        // route and the fallback; `from_fn` wrapped last runs first (metrics see the final
        // answer).
        .service(
            web::scope("")
                .wrap(from_fn(edge))
                .wrap(from_fn(crate::metrics::middleware))
                // First: the delivery endpoint's hot path is matched before the other routes'
                // patterns are tried (its scope is a plain prefix check for everything else).
                .configure(crate::delivery::configure)
                .configure(crate::api::configure)
                .configure(crate::console::configure)
                .configure(crate::public::configure)
                .configure(crate::health::configure)
                .configure(crate::metrics::configure)
                .default_service(web::to(fallback)),
        );
}

/// The routes the app serves, from the OpenAPI document plus the probes and `/metrics`:
/// (pattern, its matcher, its methods). The fallback uses it to tell 405 from 404.
fn known_routes() -> &'static [(String, ResourceDef, Vec<Method>)] {
    static ROUTES: OnceLock<Vec<(String, ResourceDef, Vec<Method>)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let doc = crate::openapi::document();
        let mut out: Vec<(String, ResourceDef, Vec<Method>)> = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let ops = [
                    (Method::GET, item.get.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::OPTIONS, item.options.is_some()),
                    (Method::HEAD, item.head.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::TRACE, item.trace.is_some()),
                ];
                let methods = ops.into_iter().filter(|(_, on)| *on).map(|(m, _)| m);
                (
                    path.clone(),
                    ResourceDef::new(path.as_str()),
                    methods.collect(),
                )
            })
            .collect();
        for path in ["/health/live", "/health/ready", "/metrics"] {
            out.push((path.into(), ResourceDef::new(path), vec![Method::GET]));
        }
        out
    })
}

/// The pattern of a known route matching `path` and the methods it allows (`None`: unknown).
fn allowed_methods(path: &str) -> Option<(&'static str, Vec<Method>)> {
    let mut pattern = None;
    let mut methods: Vec<Method> = Vec::new();
    for (p, def, ms) in known_routes() {
        if def.is_match(path) {
            pattern.get_or_insert(p.as_str());
            for m in ms {
                if !methods.contains(m) {
                    methods.push(m.clone());
                }
            }
        }
    }
    pattern.map(|p| (p, methods))
}

fn allow_header(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// No route matched: 405 (with `Allow`) when the path is known with other methods, else 404.
async fn fallback(req: actix_web::HttpRequest) -> HttpResponse {
    if crate::public::is_public(req.path()) {
        return crate::public::error::not_found_page(&req);
    }
    if is_console(req.path()) {
        use actix_web::ResponseError;
        return crate::console::ConsoleError::Service(ControlError::NotFound(format!(
            "page {}",
            req.path()
        )))
        .error_response();
    }
    if let Some((pattern, methods)) = allowed_methods(req.path()) {
        req.extensions_mut()
            .insert(crate::metrics::KnownRoute(pattern.to_string()));
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allow_header(&methods)))
            .json(ErrorBody {
                error: ErrorDetail {
                    code: "method_not_allowed".into(),
                    message: format!(
                        "method {} not allowed on {}; allowed: {}",
                        req.method(),
                        req.path(),
                        allow_header(&methods)
                    ),
                },
            });
    }
    crate::error::error_response(&ControlError::NotFound(format!(
        "route {} {}",
        req.method(),
        req.path()
    )))
}

/// The console's Content-Security-Policy: its own scripts and styles only (no inline script or
/// style attribute), images from itself (and `blob:` for previews of files being uploaded).
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'; object-src 'none'";

/// The `WWW-Authenticate` challenges of a 401: an API token, or the session cookie.
pub const AUTH_CHALLENGES: [&str; 2] = [
    "Bearer realm=\"likeness\"",
    "Cookie realm=\"likeness\", form-action=\"/api/v1/auth/login\", cookie-name=\"lk_session\"",
];

/// The stable code of an error status raised outside the services (`method_not_allowed`, ...).
fn status_code_name(status: StatusCode) -> String {
    match status {
        StatusCode::UNAUTHORIZED => "unauthenticated".into(),
        StatusCode::INTERNAL_SERVER_ERROR => "internal".into(),
        s => s
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(['-', ' '], "_"),
    }
}

/// Whether `path` is the console's (HTML pages, which keep their HTML error pages).
fn is_console(path: &str) -> bool {
    path == crate::console::PREFIX
        || path
            .strip_prefix(crate::console::PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn is_json(res: &ServiceResponse<BoxBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Gives an error answer that is not JSON yet the JSON error body (status and headers kept).
fn json_error_body(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || is_json(&res)
        || is_console(res.request().path())
    {
        return res;
    }
    if crate::public::is_public(res.request().path()) {
        return public_error_body(res);
    }
    let message = if status.is_server_error() {
        if let Some(e) = res.response().error() {
            tracing::error!(status = status.as_u16(), error = %e, "request failed");
        }
        "internal error; see the server log".to_string()
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        format!(
            "method {} not allowed on {}",
            res.request().method(),
            res.request().path()
        )
    } else {
        res.response()
            .error()
            .map(|e| e.to_string())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string())
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: status_code_name(status),
            message,
        },
    };
    let json = serde_json::to_string(&body).unwrap_or_default();
    res.map_body(|head, _| {
        head.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        head.headers_mut().remove(header::CONTENT_LENGTH);
        BoxBody::new(json)
    })
}

/// Gives an error answer of a public page that is not HTML (one actix raised itself: 405,
/// 413, ...) the public error page (status and headers kept).
fn public_error_body(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        return res;
    }
    let (page, content_type) = crate::public::error::status_page(res.request(), res.status());
    res.map_body(|head, _| {
        head.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        head.headers_mut().remove(header::CONTENT_LENGTH);
        BoxBody::new(page)
    })
}

/// The edge middleware: JSON error bodies, `nosniff`, `no-store`, 401 challenges, 405 `Allow`
/// (see the module documentation).
async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let credentials = req.headers().contains_key(header::AUTHORIZATION)
        || req.cookie(crate::auth::SESSION_COOKIE).is_some();
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let cacheable = get
        && ((!credentials && req.path() == "/api/v1/openapi.json")
            || req.path().starts_with("/admin/static/")
            || req.path() == crate::public::STYLESHEET);
    let console = is_console(req.path());
    let public = crate::public::is_public(req.path());
    // The delivery endpoint sets its own Cache-Control (public while allowed, no-store else).
    let delivery = req.path().starts_with("/d/");
    // Handlers' and extractors' errors arrive as responses; an `Err` here comes from a
    // middleware and is rendered by actix (no request is left to build an answer on: a clone
    // kept across the call would stop the router, which needs the request unshared).
    let res = next.call(req).await?.map_into_boxed_body();
    let mut res = json_error_body(res);
    let status = res.status();
    if status == StatusCode::METHOD_NOT_ALLOWED && !res.headers().contains_key(header::ALLOW) {
        let allowed = allowed_methods(res.request().path()).map(|(_, m)| allow_header(&m));
        if let Some(v) = allowed.and_then(|a| HeaderValue::from_str(&a).ok()) {
            res.headers_mut().insert(header::ALLOW, v);
        }
    }
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let own_cache_control = delivery && headers.contains_key(header::CACHE_CONTROL);
    if !(cacheable || own_cache_control) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if console {
        // The console's pages load only their own scripts, styles and images, are never framed
        // and post only to themselves.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    if public {
        // The persons' pages: no script at all, their own styles and images only, never
        // framed, forms only to themselves; no Referer (their URLs hold the link's token).
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::public::PUBLIC_CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if status == StatusCode::UNAUTHORIZED && !headers.contains_key(header::WWW_AUTHENTICATE) {
        for challenge in AUTH_CHALLENGES {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
    }
    Ok(res)
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
    crate::service::allowed::spawn(state.clone().into_inner());
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

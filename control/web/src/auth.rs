//! The [`Actor`] of a request: resolved by the services from an API token
//! (`Authorization: Bearer lk_...`) or the session cookie with its CSRF header on unsafe methods.
//!
//! ```ignore
//! async fn handler(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
//!     let out = service::persons::get(&state, &actor, id).await?; // checks its permission
//!     Ok(HttpResponse::Ok().json(out))
//! }
//! ```

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, web};

use crate::Deps;
use crate::error::ApiError;
pub use likeness_control_service::auth::*;

/// The authenticated caller of a request (the services' [`likeness_control_service::Actor`]).
#[derive(Debug, Clone)]
pub struct Actor(pub likeness_control_service::Actor);

impl Deref for Actor {
    type Target = likeness_control_service::Actor;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Actor {
    /// The services' actor.
    pub fn into_inner(self) -> likeness_control_service::Actor {
        self.0
    }
}

/// The client address of a request (the peer, or `X-Forwarded-For` when configured).
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for && let Some(ip) = req.connection_info().realip_remote_addr() {
        return Some(ip.to_string());
    }
    req.peer_addr().map(|a| a.ip().to_string())
}

impl FromRequest for Actor {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Actor, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<Deps>>().cloned();
        let bearer = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|s| s.trim().to_string());
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        let csrf = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let trust = state
            .as_ref()
            .map(|s| s.config.server.trust_forwarded_for)
            .unwrap_or(false);
        let ip = client_ip(req, trust);
        Box::pin(async move {
            let Some(state) = state else {
                return Err(ControlError::Internal("Deps not registered".into()).into());
            };
            let actor = authenticate(&state, bearer, cookie, csrf, unsafe_method, ip).await?;
            Ok(Actor(actor))
        })
    }
}

use likeness_control_service::ControlError;

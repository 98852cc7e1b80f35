//! Body and query extractors that never fail on their own: a malformed JSON body or query
//! string is reported only when the handler asks for the value, which it does after the
//! authentication and permission checks. So a caller without a session gets 401 and one
//! without the permission gets 403 — whatever they sent — never a 400 that confirms the
//! route's input format to someone who may not use it.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use likeness_control_service::error::{ControlError, Result};

fn bad(code: &'static str, e: &actix_web::Error) -> ControlError {
    ControlError::BadRequest {
        code,
        message: e.to_string(),
    }
}

/// A JSON request body (`Content-Type: application/json`, at most 4 MiB), parsed lazily:
/// [`Json::into_inner`] gives the value or the `invalid_json` error.
#[derive(Debug)]
pub struct Json<T>(Result<T>);

impl<T> Json<T> {
    /// The parsed body, or a 400 `invalid_json` error naming the problem.
    pub fn into_inner(self) -> Result<T> {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, std::result::Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = web::Json::<T>::from_request(req, payload);
        Box::pin(async move {
            Ok(Json(
                fut.await
                    .map(web::Json::into_inner)
                    .map_err(|e| bad("invalid_json", &e)),
            ))
        })
    }
}

/// Query-string parameters, parsed lazily: [`Query::into_inner`] gives the value or the
/// `invalid_query` error.
#[derive(Debug)]
pub struct Query<T>(Result<T>);

impl<T> Query<T> {
    /// The parsed parameters, or a 400 `invalid_query` error naming the problem.
    pub fn into_inner(self) -> Result<T> {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<std::result::Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let q = web::Query::<T>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .map_err(|e| ControlError::BadRequest {
                code: "invalid_query",
                message: e.to_string(),
            });
        std::future::ready(Ok(Query(q)))
    }
}

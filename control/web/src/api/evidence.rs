//! Sealed evidence, public (no authentication): anyone holding a receipt can check it.
//!
//! - `GET /api/v1/evidence/keys`: every key that ever sealed evidence (`key_id`, `algorithm`
//!   `ed25519`, `public_key` base64, `first_used_at`), for offline verification
//!   (`likeness-control verify-receipt RECEIPT.json --keys <this URL>`).
//! - `POST /api/v1/evidence/verify`: a receipt (`likeness-receipt/1` JSON) → 200 `{valid: true,
//!   key_id, record_sha256, seq, sealed_at}`, or 400 naming what failed (`hash_mismatch`,
//!   `bad_signature`, `unknown_key`, `receipt_malformed`, `invalid_json`).
//!
//! A receipt verifies when the sha256 of its record's canonical JSON (keys sorted by their
//! UTF-8 bytes, no whitespace) is `record_sha256` and `signature` is the Ed25519 signature of
//! those canonical bytes by the published key `key_id`.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::Deps;
use crate::api::extract::Json;
use crate::error::{ErrorBody, Result};
use crate::service::ControlError;
use crate::service::evidence::{self, KeyOut, KeysOut, Receipt};

/// The answer of a successful verification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerifyOut {
    /// Always true (a failure answers 400).
    pub valid: bool,
    /// The key that signed it.
    pub key_id: String,
    /// The record's sha256 (hex).
    pub record_sha256: String,
    /// The record's position in its tenant's chain.
    pub seq: Option<i64>,
    /// When it was sealed (as the record says).
    pub sealed_at: Option<String>,
}

/// The public keys that seal evidence (every key ever used), for offline verification.
#[utoipa::path(get, path = "/api/v1/evidence/keys", tag = "evidence",
    responses((status = 200, body = KeysOut)))]
async fn keys(state: web::Data<Deps>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(evidence::published_keys(&state).await?))
}

/// Verifies a receipt against the published keys.
#[utoipa::path(post, path = "/api/v1/evidence/verify", tag = "evidence",
    request_body = Receipt,
    responses((status = 200, body = VerifyOut), (status = 400, body = ErrorBody),
        (status = 429, description = "Too many failed verifications or unknown links from this \
address (`[signing] max_unknown_tokens_per_ip` within `unknown_token_window_secs`): try again \
after `Retry-After` seconds", body = ErrorBody)))]
async fn verify(
    req: actix_web::HttpRequest,
    state: web::Data<Deps>,
    body: Json<Receipt>,
) -> Result<HttpResponse> {
    let ip = crate::auth::client_ip(&req, state.config.server.trust_forwarded_for);
    let receipt = body.into_inner()?;
    let out = VerifyOut {
        valid: true,
        key_id: receipt.key_id.clone(),
        record_sha256: receipt.record_sha256.clone(),
        seq: receipt
            .record
            .get("seq")
            .and_then(serde_json::Value::as_i64),
        sealed_at: receipt
            .record
            .get("sealed_at")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
    };
    match evidence::check_receipt(&state, receipt, ip.as_deref()).await? {
        Ok(()) => Ok(HttpResponse::Ok().json(out)),
        Err(e) => Err(ControlError::BadRequest {
            code: e.code(),
            message: e.to_string(),
        }
        .into()),
    }
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(keys, verify),
    components(schemas(KeysOut, KeyOut, Receipt, VerifyOut))
)]
pub struct Api;

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/evidence/keys", web::get().to(keys))
        .route("/api/v1/evidence/verify", web::post().to(verify));
}

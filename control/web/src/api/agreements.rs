//! Agreements (consents) of persons and their documents.
//!
//! - `POST /api/v1/persons/{person_id}/agreements` (`manage_consents`): record a consent.
//! - `GET /api/v1/persons/{person_id}/agreements` (`see_persons`): a person's consents.
//! - `GET /api/v1/agreements/{agreement_id}` (`see_persons`).
//! - `POST /api/v1/agreements/{agreement_id}/withdraw` (`manage_consents`).
//! - `POST /api/v1/agreements/{agreement_id}/documents?filename=` (`manage_consents`): the raw
//!   file as the body (PDF, JPEG, PNG, TIFF, MP3, WAV, OGG, FLAC, M4A; recognised by content),
//!   stored encrypted in the blob store.
//! - `GET /api/v1/agreements/{agreement_id}/documents/{document_id}` (`see_persons`): download.

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use crate::Deps;
use crate::api::assets::UploadForm;
use crate::api::extract::{Json, Query};
use crate::api::upload;
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::roles::Permission;
use crate::service::Ctx;
use crate::service::agreements::{
    self, AgreementOut, AgreementState, DocumentOut, NewAgreement, NewDocument, WithdrawOutcome,
    WithdrawResponse, Withdrawal,
};

/// Records a consent of a person.
#[utoipa::path(post, path = "/api/v1/persons/{person_id}/agreements", tag = "agreements",
    request_body = NewAgreement,
    params(("person_id" = String, Path, description = "Person ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 201, body = AgreementOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn create_agreement(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<NewAgreement>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = agreements::record_consent(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(out))
}

/// Every consent of a person, newest first.
#[utoipa::path(get, path = "/api/v1/persons/{person_id}/agreements", tag = "agreements",
    params(("person_id" = String, Path, description = "Person ID")),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = Vec<AgreementOut>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_agreements(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(agreements::list_consents(&ctx, path.into_inner()).await?))
}

/// One consent.
#[utoipa::path(get, path = "/api/v1/agreements/{agreement_id}", tag = "agreements",
    params(("agreement_id" = String, Path, description = "Agreement ID")),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = AgreementOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_agreement(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(agreements::get_consent(&ctx, path.into_inner()).await?))
}

/// Withdraws a consent. When the person then has no consent in force that covers face
/// matching, their templates are removed from the matcher.
#[utoipa::path(post, path = "/api/v1/agreements/{agreement_id}/withdraw", tag = "agreements",
    request_body = Withdrawal,
    params(("agreement_id" = String, Path, description = "Agreement ID")),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 200, body = WithdrawResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn withdraw_agreement(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<Withdrawal>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = agreements::withdraw_consent(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Query of a document upload.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    /// The original file name (a multipart upload may give it as the file part's filename).
    pub filename: Option<String>,
}

/// Attaches a document (the raw file as the body) to a consent; stored encrypted.
#[utoipa::path(post, path = "/api/v1/agreements/{agreement_id}/documents", tag = "agreements",
    request_body(description = "The file (PDF, JPEG, PNG, TIFF, MP3, WAV, OGG, FLAC or M4A): the raw body, or a multipart/form-data form with a `file` part",
        content((Vec<u8> = "application/octet-stream"), (UploadForm = "multipart/form-data"))),
    params(("agreement_id" = String, Path, description = "Agreement ID"), DocumentQuery),
    security(("session" = ["manage_consents"]), ("token" = ["manage_consents"])),
    responses((status = 201, body = DocumentOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn add_document(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    query: Query<DocumentQuery>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageConsents)?; // before the body is read (and in the service)
    let query = query.into_inner()?;
    let dir = upload::spool_dir(&state);
    let limit = state.config.server.max_body_bytes;
    let file = upload::read(&req, payload, limit, dir.as_deref()).await?;
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let doc = NewDocument {
        filename: query.filename.or(file.filename),
        file: file.file,
    };
    let out = agreements::attach_document(&ctx, path.into_inner(), doc).await?;
    Ok(HttpResponse::Created().json(out))
}

/// Downloads a document.
#[utoipa::path(get, path = "/api/v1/agreements/{agreement_id}/documents/{document_id}",
    tag = "agreements",
    params(("agreement_id" = String, Path, description = "Agreement ID"),
        ("document_id" = String, Path, description = "Document ID")),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, description = "The file, with the media type recognised at upload",
            content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/pdf"),
                (Vec<u8> = "image/*"), (Vec<u8> = "audio/*"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_document(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (agreement_id, document_id) = path.into_inner();
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let (doc, bytes) = agreements::read_document(&ctx, agreement_id, document_id).await?;
    let safe: String = doc
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .content_type(doc.mime.clone())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{safe}\""),
        ))
        .body(bytes))
}

/// OpenAPI paths of this module (merged by `crate::openapi`).
#[derive(OpenApi)]
#[openapi(
    paths(
        create_agreement,
        list_agreements,
        get_agreement,
        withdraw_agreement,
        add_document,
        get_document
    ),
    components(schemas(
        AgreementOut,
        AgreementState,
        DocumentOut,
        NewAgreement,
        Withdrawal,
        WithdrawOutcome
    ))
)]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route(
        "/api/v1/persons/{person_id}/agreements",
        web::post().to(create_agreement),
    )
    .route(
        "/api/v1/persons/{person_id}/agreements",
        web::get().to(list_agreements),
    )
    .route(
        "/api/v1/agreements/{agreement_id}",
        web::get().to(get_agreement),
    )
    .route(
        "/api/v1/agreements/{agreement_id}/withdraw",
        web::post().to(withdraw_agreement),
    )
    .route(
        "/api/v1/agreements/{agreement_id}/documents",
        web::post().to(add_document),
    )
    .route(
        "/api/v1/agreements/{agreement_id}/documents/{document_id}",
        web::get().to(get_document),
    );
}

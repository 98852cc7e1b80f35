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

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::api::assets::UploadForm;
use crate::api::extract::{Json, Query};
use crate::api::upload;
use crate::app::AppState;
use crate::auth::Actor;
use crate::db;
use crate::error::{ControlError, ErrorBody, Result};
use crate::roles::Permission;
use crate::service::agreements::{
    self, AgreementOut, AgreementState, DocumentOut, NewAgreement, WithdrawOutcome, Withdrawal,
};
use crate::service::assets::{self, Media, media_error};
use crate::service::faces::{self, TemplateRemoval};

/// The process's blob store (MEDIA's, opened once from `[storage]`).
fn blob_store(state: &AppState) -> Result<Arc<Media>> {
    assets::media(state)
}

/// The answer to a withdrawal.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WithdrawResponse {
    /// What the withdrawal changed.
    #[serde(flatten)]
    pub outcome: WithdrawOutcome,
    /// The removal of the person's templates from the matcher, when face matching ended
    /// (`queued` when the matcher was down: it happens when it returns).
    pub template_removal: Option<TemplateRemoval>,
}

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
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<NewAgreement>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageConsents)?;
    let body = body.into_inner()?;
    let (who, t, p, body) = (
        actor.who(),
        actor.tenant_id.clone(),
        path.into_inner(),
        body,
    );
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| agreements::create(c, &who, &t, &p, body))
    })
    .await?;
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
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    actor.require(Permission::SeePersons)?;
    let (who, t, p) = (actor.who(), actor.tenant_id.clone(), path.into_inner());
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| agreements::list_for_person(c, &who, &t, &p))
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// One consent.
#[utoipa::path(get, path = "/api/v1/agreements/{agreement_id}", tag = "agreements",
    params(("agreement_id" = String, Path, description = "Agreement ID")),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, body = AgreementOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_agreement(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    actor.require(Permission::SeePersons)?;
    let (who, t, id) = (actor.who(), actor.tenant_id.clone(), path.into_inner());
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| agreements::get(c, &who, &t, &id))
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
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
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<Withdrawal>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageConsents)?;
    let body = body.into_inner()?;
    let (who, t, id, body) = (
        actor.who(),
        actor.tenant_id.clone(),
        path.into_inner(),
        body,
    );
    let t2 = t.clone();
    let outcome = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| agreements::withdraw(c, &who, &t2, &id, body))
    })
    .await?;
    // After the commit (no matcher call inside a transaction); queued if the matcher is down.
    let template_removal = if outcome.face_matching_ended {
        Some(faces::remove_person_templates(&state, &t, &outcome.agreement.person_id).await?)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(WithdrawResponse {
        outcome,
        template_removal,
    }))
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
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query<DocumentQuery>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageConsents)?;
    let query = query.into_inner()?;
    let file = upload::read(&req, payload, state.config.server.max_body_bytes).await?;
    let body = file.bytes;
    let (who, t, id) = (actor.who(), actor.tenant_id.clone(), path.into_inner());
    let filename = query.filename.or(file.filename).ok_or_else(|| {
        ControlError::invalid(
            "filename",
            "missing: give ?filename= (or upload multipart/form-data with a file part)",
        )
    })?;
    let (t2, id2, body2) = (t.clone(), id.clone(), body.clone());
    let (filename, mime) = db::run(&state.pool, move |c| {
        agreements::check_document(c, &t2, &id2, &filename, &body2)
    })
    .await?;
    let store = blob_store(&state)?;
    let (store2, t2, body2) = (store.clone(), t.clone(), body.clone());
    let key = web::block(move || store2.blobs.put_new(&t2, &body2))
        .await?
        .map_err(media_error)?;
    let key2 = key.clone();
    let t2 = t.clone();
    let res = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            agreements::add_document(c, &who, &t2, &id, &filename, mime, &body, &key2)
        })
    })
    .await;
    match res {
        Ok(doc) => Ok(HttpResponse::Created().json(doc)),
        Err(e) => {
            // Nothing half-written: the blob goes when its row could not be stored.
            let _ = web::block(move || store.blobs.erase(&t, &key)).await;
            Err(e)
        }
    }
}

/// Downloads a document.
#[utoipa::path(get, path = "/api/v1/agreements/{agreement_id}/documents/{document_id}",
    tag = "agreements",
    params(("agreement_id" = String, Path, description = "Agreement ID"),
        ("document_id" = String, Path, description = "Document ID")),
    security(("session" = ["see_persons"]), ("token" = ["see_persons"])),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_document(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    actor.require(Permission::SeePersons)?;
    let (who, t) = (actor.who(), actor.tenant_id.clone());
    let (agreement_id, document_id) = path.into_inner();
    let t2 = t.clone();
    let (doc, key) = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            agreements::document_for_download(c, &who, &t2, &agreement_id, &document_id)
        })
    })
    .await?;
    let store = blob_store(&state)?;
    let bytes = web::block(move || store.blobs.get(&t, &key))
        .await?
        .map_err(media_error)?;
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

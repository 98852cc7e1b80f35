//! Uploading files: many at once. Without JavaScript the form sends every chosen file in one
//! request and the answer lists what became of each; with `upload.js`, files can be dropped on
//! the page and are sent one request each, with a progress bar per file, and each answer (the
//! same list item) appears as it arrives.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::api::upload;
use crate::roles::Permission;
use crate::service::ControlError;
use crate::service::assets::{self, NewUpload, UploadOut};

use super::{ConsoleError, ConsoleUser, Layout, Result, State, from_script, render};

/// Most files in one request.
pub const MAX_FILES: usize = 100;

/// What became of one uploaded file.
#[derive(Debug)]
pub struct Outcome {
    /// The name it was sent with.
    pub filename: String,
    /// The new file, or why it was refused.
    pub result: std::result::Result<UploadOut, String>,
}

#[derive(Template)]
#[template(path = "console/upload.html")]
struct UploadPage {
    l: Layout,
    outcomes: Vec<Outcome>,
    error: Option<String>,
    max_files: usize,
}

#[derive(Template)]
#[template(path = "console/upload_item.html")]
struct UploadItem<'a> {
    l: &'a Layout,
    o: &'a Outcome,
}

async fn page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageAssets)?;
    render(&UploadPage {
        l: Layout::new(&req, &user, &ctx, "upload"),
        outcomes: Vec::new(),
        error: None,
        max_files: MAX_FILES,
    })
}

async fn send(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageAssets)?; // before the body is read (and in the service)
    let dir = upload::spool_dir(&state);
    let limit = state.config.server.max_body_bytes;
    let parts = upload::read_many(&req, payload, limit, dir.as_deref(), MAX_FILES).await?;
    user.check_csrf(parts.fields.get("csrf").map(String::as_str))?;
    let l = Layout::new(&req, &user, &ctx, "upload");
    if parts.files.is_empty() {
        return Err(ControlError::invalid("file", l.t.library.upload_none).into());
    }
    let mut outcomes = Vec::with_capacity(parts.files.len());
    for (name, file) in parts.files {
        let filename = name.unwrap_or_default();
        let new = NewUpload {
            filename: Some(filename.clone()),
            metadata: None,
            file,
        };
        let result = assets::upload_asset(&ctx, new)
            .await
            .map_err(|e| e.public_message());
        outcomes.push(Outcome { filename, result });
    }
    if from_script(&req) {
        // One file per request from upload.js: the list item alone.
        let mut html = String::new();
        for o in &outcomes {
            html.push_str(
                &UploadItem { l: &l, o }
                    .render()
                    .map_err(|e| ConsoleError::Internal(format!("template: {e}")))?,
            );
        }
        let status = if outcomes.iter().all(|o| o.result.is_ok()) {
            StatusCode::CREATED
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        return Ok(HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html));
    }
    render(&UploadPage {
        l,
        outcomes,
        error: None,
        max_files: MAX_FILES,
    })
}

/// Registers the upload page.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/upload", web::get().to(page))
        .route("/admin/upload", web::post().to(send));
}

//! Reading an uploaded file from the request body — after the permission check, streamed with
//! a size limit (`server.max_body_bytes`). Two forms are accepted:
//!
//! - the raw file as the body (`Content-Type` anything but multipart), its name in the query;
//! - `multipart/form-data` as a browser form sends it: a `file` part (its filename is the
//!   file's name) and optional text parts `filename` and `metadata` (a JSON object).

use std::collections::HashMap;

use actix_multipart::Multipart;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, http::header};
use futures::StreamExt;

use likeness_control_service::error::{ControlError, Result};

/// Largest text part (`filename`, `metadata`) of a multipart upload.
const MAX_TEXT_PART: usize = 64 << 10;

/// An uploaded file.
#[derive(Debug, Default)]
pub struct Upload {
    /// The file's bytes.
    pub bytes: Bytes,
    /// Its name: the `file` part's filename, or a `filename` text part (multipart only).
    pub filename: Option<String>,
    /// The other text parts of a multipart upload (e.g. `metadata`).
    pub fields: HashMap<String, String>,
}

fn too_large(limit: usize) -> ControlError {
    ControlError::TooLarge(format!(
        "the upload is larger than server.max_body_bytes ({limit} bytes)"
    ))
}

fn is_multipart(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Reads the upload of `req` from `payload`, at most `limit` bytes of file.
pub async fn read(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Upload> {
    if is_multipart(req) {
        read_multipart(req, payload, limit).await
    } else {
        Ok(Upload {
            bytes: read_raw(payload, limit).await?,
            ..Upload::default()
        })
    }
}

async fn read_raw(mut payload: web::Payload, limit: usize) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ControlError::BadRequest {
            code: "body_read_failed",
            message: format!("reading the request body: {e}"),
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn multipart_error(e: impl std::fmt::Display) -> ControlError {
    ControlError::BadRequest {
        code: "invalid_multipart",
        message: format!("multipart/form-data body: {e}"),
    }
}

async fn read_multipart(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Upload> {
    let mut parts = Multipart::new(req.headers(), payload);
    let mut out = Upload::default();
    let mut file: Option<Bytes> = None;
    while let Some(field) = parts.next().await {
        let mut field = field.map_err(multipart_error)?;
        let name = field.name().unwrap_or_default().to_owned();
        let part_filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        let cap = if name == "file" { limit } else { MAX_TEXT_PART };
        let mut buf = BytesMut::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(multipart_error)?;
            if buf.len() + chunk.len() > cap {
                return Err(if name == "file" {
                    too_large(limit)
                } else {
                    ControlError::invalid(&name, format!("longer than {MAX_TEXT_PART} bytes"))
                });
            }
            buf.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "file" => {
                if file.is_some() {
                    return Err(ControlError::invalid(
                        "file",
                        "more than one file part; upload one file per request",
                    ));
                }
                file = Some(buf.freeze());
                if out.filename.is_none() {
                    out.filename = part_filename.filter(|f| !f.trim().is_empty());
                }
            }
            "" => return Err(multipart_error("a part without a name")),
            _ => {
                let text = String::from_utf8(buf.to_vec())
                    .map_err(|_| ControlError::invalid(&name, "not UTF-8 text"))?;
                if name == "filename" {
                    out.filename = Some(text);
                } else {
                    out.fields.insert(name, text);
                }
            }
        }
    }
    out.bytes = file.ok_or_else(|| {
        ControlError::invalid("file", "the multipart body has no part named \"file\"")
    })?;
    Ok(out)
}

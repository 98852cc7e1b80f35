//! Reading an uploaded file from the request body — after the permission check, streamed with
//! a size limit (`server.max_body_bytes`) to a temporary file as it arrives (sha256 computed on
//! the way), so an upload's memory does not grow with its size. The file lies in the blob
//! store's spool directory (`.upload-tmp`; the system's temporary directory when the store
//! cannot be opened) and is removed when the [`Upload`] is dropped, or at once on any error. Two forms
//! are accepted:
//!
//! - the raw file as the body (`Content-Type` anything but multipart), its name in the query;
//! - `multipart/form-data` as a browser form sends it: a `file` part (its filename is the
//!   file's name) and optional text parts `filename` and `metadata` (a JSON object).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use actix_multipart::Multipart;
use actix_web::web::{self, BytesMut};
use actix_web::{HttpRequest, http::header};
use futures::StreamExt;

use likeness_control_media::{UploadFile, UploadWriter};
use likeness_control_service::Deps;
use likeness_control_service::error::{ControlError, Result};

/// Largest text part (`filename`, `metadata`) of a multipart upload.
const MAX_TEXT_PART: usize = 64 << 10;

/// Bytes gathered in memory before they are written to the temporary file (off the
/// request's thread).
const SPOOL_BUFFER: usize = 1 << 20;

/// An uploaded file.
#[derive(Debug)]
pub struct Upload {
    /// The file, spooled to a temporary file (removed when dropped).
    pub file: UploadFile,
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

/// Where uploads are spooled: `.upload-tmp` in the blob store's directory (a name no tenant
/// can have), so the file is on the disk the blobs go to; `None` (the system's temporary
/// directory) when the store cannot be opened.
pub fn spool_dir(deps: &Deps) -> Option<PathBuf> {
    deps.media().ok().map(|m| m.blobs.spool_dir())
}

fn spool_error(e: impl std::fmt::Display) -> ControlError {
    ControlError::Internal(format!("spooling the upload to a temporary file: {e}"))
}

/// A file being received: chunks gathered up to [`SPOOL_BUFFER`], then written on the
/// blocking pool. Dropped before [`Spool::finish`], its temporary file is removed.
struct Spool {
    writer: Option<UploadWriter>,
    buf: Vec<u8>,
    size: usize,
    limit: usize,
}

impl Spool {
    async fn new(dir: Option<&Path>, limit: usize) -> Result<Self> {
        let dir = dir.map(Path::to_path_buf);
        let writer = web::block(move || UploadWriter::new(dir.as_deref()))
            .await
            .map_err(spool_error)?
            .map_err(spool_error)?;
        Ok(Self {
            writer: Some(writer),
            buf: Vec::new(),
            size: 0,
            limit,
        })
    }

    async fn push(&mut self, chunk: &[u8]) -> Result<()> {
        if self.size + chunk.len() > self.limit {
            return Err(too_large(self.limit));
        }
        self.size += chunk.len();
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= SPOOL_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut w = self
            .writer
            .take()
            .ok_or_else(|| spool_error("the file was already closed"))?;
        let mut buf = std::mem::take(&mut self.buf);
        let (w, buf) = web::block(move || {
            w.write(&buf)?;
            buf.clear();
            Ok::<_, likeness_control_media::MediaError>((w, buf))
        })
        .await
        .map_err(spool_error)?
        .map_err(spool_error)?;
        self.writer = Some(w);
        self.buf = buf;
        Ok(())
    }

    async fn finish(mut self) -> Result<UploadFile> {
        self.flush().await?;
        let w = self
            .writer
            .take()
            .ok_or_else(|| spool_error("the file was already closed"))?;
        web::block(move || w.finish())
            .await
            .map_err(spool_error)?
            .map_err(spool_error)
    }
}

/// Reads the upload of `req` from `payload`, at most `limit` bytes of file, spooling the file
/// to a temporary file in `dir` (the system's temporary directory if `None`; see
/// [`spool_dir`]).
pub async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    dir: Option<&Path>,
) -> Result<Upload> {
    if is_multipart(req) {
        read_multipart(req, payload, limit, dir).await
    } else {
        Ok(Upload {
            file: read_raw(payload, limit, dir).await?,
            filename: None,
            fields: HashMap::new(),
        })
    }
}

async fn read_raw(
    mut payload: web::Payload,
    limit: usize,
    dir: Option<&Path>,
) -> Result<UploadFile> {
    let mut spool = Spool::new(dir, limit).await?;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ControlError::BadRequest {
            code: "body_read_failed",
            message: format!("reading the request body: {e}"),
        })?;
        spool.push(&chunk).await?;
    }
    spool.finish().await
}

fn multipart_error(e: impl std::fmt::Display) -> ControlError {
    ControlError::BadRequest {
        code: "invalid_multipart",
        message: format!("multipart/form-data body: {e}"),
    }
}

async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    dir: Option<&Path>,
) -> Result<Upload> {
    let parts = read_parts(req, payload, limit, dir, 1).await?;
    let (part_filename, file) = parts.files.into_iter().next().ok_or_else(|| {
        ControlError::invalid("file", "the multipart body has no part named \"file\"")
    })?;
    Ok(Upload {
        file,
        filename: parts.filename.or(part_filename),
        fields: parts.fields,
    })
}

/// The files of a multipart form that sends several (`<input type="file" name="file"
/// multiple>`), in the order sent, each with its part's file name, and the text parts.
#[derive(Debug)]
pub struct Uploads {
    /// Each `file` part: its file name (if the part has one) and the file.
    pub files: Vec<(Option<String>, UploadFile)>,
    /// A `filename` text part.
    pub filename: Option<String>,
    /// The other text parts (e.g. `csrf`).
    pub fields: HashMap<String, String>,
}

/// Reads a `multipart/form-data` body with up to `max_files` `file` parts, each at most
/// `limit` bytes, spooled like [`read`]'s.
pub async fn read_many(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    dir: Option<&Path>,
    max_files: usize,
) -> Result<Uploads> {
    if !is_multipart(req) {
        return Err(multipart_error("the body is not multipart/form-data"));
    }
    read_parts(req, payload, limit, dir, max_files).await
}

async fn read_parts(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    dir: Option<&Path>,
    max_files: usize,
) -> Result<Uploads> {
    let mut parts = Multipart::new(req.headers(), payload);
    let mut filename: Option<String> = None;
    let mut fields = HashMap::new();
    let mut files: Vec<(Option<String>, UploadFile)> = Vec::new();
    while let Some(field) = parts.next().await {
        let mut field = field.map_err(multipart_error)?;
        let name = field.name().unwrap_or_default().to_owned();
        let part_filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        if name == "file" {
            if files.len() == max_files {
                return Err(ControlError::invalid(
                    "file",
                    if max_files == 1 {
                        "more than one file part; upload one file per request".to_string()
                    } else {
                        format!("more than {max_files} files; upload them in several requests")
                    },
                ));
            }
            let mut spool = Spool::new(dir, limit).await?;
            while let Some(chunk) = field.next().await {
                spool.push(&chunk.map_err(multipart_error)?).await?;
            }
            let file = spool.finish().await?;
            // A browser sends an empty part (no name, no bytes) when no file was chosen.
            let part_filename = part_filename.filter(|f| !f.trim().is_empty());
            if part_filename.is_none() && file.size() == 0 && max_files > 1 {
                continue;
            }
            files.push((part_filename, file));
            continue;
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(multipart_error)?;
            if buf.len() + chunk.len() > MAX_TEXT_PART {
                return Err(ControlError::invalid(
                    &name,
                    format!("longer than {MAX_TEXT_PART} bytes"),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "" => return Err(multipart_error("a part without a name")),
            _ => {
                let text = String::from_utf8(buf.to_vec())
                    .map_err(|_| ControlError::invalid(&name, "not UTF-8 text"))?;
                if name == "filename" {
                    filename = Some(text);
                } else {
                    fields.insert(name, text);
                }
            }
        }
    }
    Ok(Uploads {
        files,
        filename,
        fields,
    })
}

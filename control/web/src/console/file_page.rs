//! A file's page (`/admin/files/{id}`): the image with every face boxed and labelled in an
//! `<svg class="boxes">` overlay (in the image's pixel coordinates), the faces with their
//! decisions (approve, reject, link, unlink, delete; the forms post to the review module's
//! `/admin/faces/{id}/...` with `back` set to this page), drawing a face by hand, the legal
//! basis, compliance per channel, versions, duplicates and the file's audit trail; and the
//! console's image routes: the thumbnail (`/thumbnail`, any user of the tenant) and the full
//! image (`/image`, as the download rule allows the user).

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::api::upload;
use crate::roles::Permission;
use crate::service::assets;
use crate::service::compliance::{self, LegalBasisIn};
use crate::service::faces::{self, NewFace};
use crate::service::review::{self, FileFace, FilePage, FileQuery};
use crate::service::{ControlError, Ctx};
use likeness_control_domain::LegalBasis;
use likeness_control_domain::compliance::Reason;

use super::strings::Strings;
use super::{ConsoleUser, Layout, Result, State, done, parse_form, render};

#[derive(Template)]
#[template(path = "console/file.html")]
struct FileTemplate {
    l: Layout,
    p: FilePage,
    /// May decide on faces (`manage_assets` and `see_persons`).
    can_decide: bool,
    /// May change faces (`manage_assets`).
    can_edit: bool,
    /// May set the legal basis (`manage_consents`).
    can_basis: bool,
    /// The person search of the link lists.
    q: Option<String>,
    /// Where the file is used (the most recent publications).
    publications: crate::pagination::Paginated<crate::service::publications::PublicationOut>,
}

impl FileTemplate {
    fn t(&self) -> &'static Strings {
        self.l.t
    }

    fn width(&self) -> f64 {
        f64::from(self.p.asset.width.unwrap_or(0))
    }

    fn height(&self) -> f64 {
        f64::from(self.p.asset.height.unwrap_or(0))
    }

    /// Whether the file has a size to draw boxes on (images, and videos with a known size).
    fn has_size(&self) -> bool {
        self.width() > 0.0 && self.height() > 0.0
    }

    /// The picture to show: the full image when the user may have it, else the thumbnail.
    fn image_src(&self) -> String {
        let id = &self.p.asset.id;
        if self.p.image_allowed {
            format!("/admin/files/{id}/image?v={}", self.p.asset.current_version)
        } else {
            format!("/admin/files/{id}/thumbnail")
        }
    }

    /// Identifiable faces of an image not confirmed as a person (what "pixelate the unlinked
    /// faces" would pixelate).
    fn unlinked_faces(&self) -> usize {
        if self.p.asset.kind != "image" {
            return 0;
        }
        self.p
            .faces
            .iter()
            .filter(|f| f.identifiable && !(f.status == "confirmed" && f.person.is_some()))
            .count()
    }

    /// The path of this page (the `back` of its forms).
    fn back(&self) -> String {
        format!("/admin/files/{}", self.p.asset.id)
    }

    /// Label size and stroke in the image's pixels, so that they read the same on any image.
    fn font_size(&self) -> f64 {
        (self.width().max(self.height()) / 40.0).max(10.0).round()
    }

    /// Where a face's label goes: above the box, or inside it at the top when there is no room.
    fn label_y(&self, f: &FileFace) -> f64 {
        let fs = self.font_size();
        if f.bbox[1] >= fs * 1.2 {
            (f.bbox[1] - fs * 0.3).round()
        } else {
            (f.bbox[1] + fs).round()
        }
    }

    /// Labels of faces in the right part of the image end at the box's right edge (so that
    /// they are not cut off at the image's edge).
    fn label_at_end(&self, f: &FileFace) -> bool {
        f.bbox[0] > self.width() * 0.6
    }

    fn label_x(&self, f: &FileFace) -> f64 {
        if self.label_at_end(f) {
            f.bbox[2]
        } else {
            f.bbox[0]
        }
    }

    /// A compliance reason's message with the face's ID replaced by its number on this page.
    fn reason_text(&self, r: &Reason) -> String {
        match &r.face_id {
            Some(id) => match self.p.faces.iter().position(|f| &f.id == id) {
                Some(i) => r.message.replace(id.as_str(), &format!("#{}", i + 1)),
                None => r.message.clone(),
            },
            None => r.message.clone(),
        }
    }

    /// What the box says: the confirmed person's name, the suggested person's name with "?",
    /// or "Unknown" (the service decides whether names or pseudonyms are shown; without
    /// `see_persons`, the status).
    fn face_label(&self, f: &FileFace) -> String {
        let t = &self.t().files;
        match f.status.as_str() {
            faces::CONFIRMED => f
                .person
                .as_ref()
                .map(|p| p.label.clone())
                .unwrap_or_else(|| t.file_confirmed.to_string()),
            faces::SUGGESTED => f
                .candidates
                .first()
                .map(|c| format!("{}?", c.person.label))
                .unwrap_or_else(|| format!("{}?", t.file_suggested)),
            _ => t.file_unknown.to_string(),
        }
    }

    fn status_name(&self, status: &str) -> &'static str {
        let t = &self.t().files;
        match status {
            faces::CONFIRMED => t.file_confirmed,
            faces::SUGGESTED => t.file_suggested,
            faces::REJECTED => t.file_rejected,
            _ => t.file_unknown,
        }
    }

    fn bases(&self) -> &'static [LegalBasis] {
        LegalBasis::ALL
    }

    fn basis_is(&self, b: &LegalBasis) -> bool {
        self.p.legal_basis.legal_basis == Some(*b)
    }

    fn basis_name(&self, b: &LegalBasis) -> &'static str {
        let t = &self.t().files;
        match b {
            LegalBasis::Consent => t.file_basis_consent,
            LegalBasis::Contract => t.file_basis_contract,
            LegalBasis::LegitimateInterest => t.file_basis_legitimate_interest,
            LegalBasis::ExternalAgreement => t.file_basis_external_agreement,
            LegalBasis::PublicInterest => t.file_basis_public_interest,
            LegalBasis::ExemptNoIdentifiablePersons => t.file_basis_exempt_no_identifiable_persons,
            LegalBasis::ExemptHistorical => t.file_basis_exempt_historical,
            LegalBasis::ExemptArtisticJournalistic => t.file_basis_exempt_artistic_journalistic,
        }
    }

    fn current_basis(&self) -> &'static str {
        match &self.p.legal_basis.legal_basis {
            Some(b) => self.basis_name(b),
            None => self.t().files.file_basis_none,
        }
    }

    fn size(&self, bytes: &i64) -> String {
        let b = *bytes as f64;
        if b >= 1_048_576.0 {
            format!("{:.1} MB", b / 1_048_576.0)
        } else if b >= 1024.0 {
            format!("{:.0} kB", b / 1024.0)
        } else {
            format!("{bytes} B")
        }
    }

    fn detail(&self, v: &serde_json::Value) -> String {
        let s = v.to_string();
        if s.len() > 300 {
            let mut end = 300;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &s[..end])
        } else {
            s
        }
    }
}

fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> crate::service::Result<T> {
    web::Query::<T>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| ControlError::invalid("query", e.to_string()))
}

async fn page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let fq: crate::service::Result<FileQuery> = query(&req);
    let q = fq
        .as_ref()
        .ok()
        .and_then(|f| f.q.clone())
        .filter(|s| !s.trim().is_empty());
    let id = path.into_inner();
    let p = review::file_page(&ctx, id.clone(), fq).await?;
    let publications = crate::service::publications::asset_publications(
        &ctx,
        id,
        Ok(crate::service::publications::PageOnly {
            page: None,
            per_page: Some(crate::service::publications::SHOWN_ON_PAGES),
        }),
    )
    .await?;
    render(&FileTemplate {
        l: Layout::new(&req, &user, &ctx, "files"),
        can_decide: ctx.has(Permission::ManageAssets) && ctx.has(Permission::SeePersons),
        can_edit: ctx.has(Permission::ManageAssets),
        can_basis: ctx.has(Permission::ManageConsents),
        q,
        p,
        publications,
    })
}

async fn thumbnail(
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let bytes = assets::read_thumbnail(&user.ctx(&state), path.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/jpeg")
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .body(bytes))
}

async fn image(user: ConsoleUser, state: State, path: web::Path<String>) -> Result<HttpResponse> {
    let f = assets::download_file(&user.ctx(&state), path.into_inner(), None).await?;
    let mime = if f.mime.starts_with("image/") || f.mime.starts_with("video/") {
        f.mime
    } else {
        "application/octet-stream".to_string()
    };
    Ok(HttpResponse::Ok()
        .content_type(mime)
        // The URL names the version (`?v=`): a new version is a new URL.
        .insert_header((header::CACHE_CONTROL, "private, max-age=600"))
        .body(f.bytes))
}

/// "Draw a face": the box in pixels of the image.
#[derive(Debug, Deserialize)]
struct DrawForm {
    x1: String,
    y1: String,
    x2: String,
    y2: String,
}

fn coord(name: &str, v: &str) -> crate::service::Result<f64> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| ControlError::invalid(name, "must be a number of pixels"))
}

async fn draw(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: DrawForm = parse_form(&user, &body)?;
    let id = path.into_inner();
    let new = (|| {
        Ok(NewFace {
            r#box: [
                coord("x1", &f.x1)?,
                coord("y1", &f.y1)?,
                coord("x2", &f.x2)?,
                coord("y2", &f.y2)?,
            ],
            identifiable: None,
        })
    })();
    faces::draw_face(&user.ctx(&state), id.clone(), new).await?;
    Ok(done(&req, &format!("/admin/files/{id}?notice=saved")))
}

/// The legal basis form: `legal_basis` (empty clears it) and a note.
#[derive(Debug, Deserialize)]
struct BasisForm {
    legal_basis: Option<String>,
    note: Option<String>,
}

fn basis_in(f: BasisForm) -> crate::service::Result<LegalBasisIn> {
    let legal_basis = match f.legal_basis.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<LegalBasis>()
                .map_err(|e| ControlError::invalid("legal_basis", e.to_string()))?,
        ),
    };
    Ok(LegalBasisIn {
        legal_basis,
        note: f.note.filter(|n| !n.trim().is_empty()),
    })
}

async fn legal_basis(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let f: BasisForm = parse_form(&user, &body)?;
    let id = path.into_inner();
    let ctx: Ctx = user.ctx(&state);
    compliance::put_legal_basis(&ctx, id.clone(), basis_in(f)).await?;
    Ok(done(&req, &format!("/admin/files/{id}?notice=saved")))
}

/// "Upload a new version": a multipart form with the `csrf` field and one `file`.
async fn new_version(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageAssets)?; // before the body is read (and in the service)
    let dir = upload::spool_dir(&state);
    let limit = state.config.server.max_body_bytes;
    let mut parts = upload::read_many(&req, payload, limit, dir.as_deref(), 1).await?;
    user.check_csrf(parts.fields.get("csrf").map(String::as_str))?;
    let (_, file) = parts
        .files
        .pop()
        .ok_or_else(|| ControlError::invalid("file", "choose a file"))?;
    let id = path.into_inner();
    assets::upload_asset_version(&ctx, id.clone(), file).await?;
    Ok(done(&req, &format!("/admin/files/{id}?notice=saved")))
}

/// Registers the file page's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/files/{asset_id}", web::get().to(page))
        .route(
            "/admin/files/{asset_id}/thumbnail",
            web::get().to(thumbnail),
        )
        .route("/admin/files/{asset_id}/image", web::get().to(image))
        .route("/admin/files/{asset_id}/faces", web::post().to(draw))
        .route(
            "/admin/files/{asset_id}/versions",
            web::post().to(new_version),
        )
        .route(
            "/admin/files/{asset_id}/legal-basis",
            web::post().to(legal_basis),
        );
}

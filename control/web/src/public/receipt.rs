//! The receipt page behind the receipt's link (`GET /receipt/{token}`): what was agreed, the
//! downloads (`receipt.pdf`, `receipt.json`), how to verify the record, and withdrawal in as
//! few steps as signing: "Withdraw my consent" (`POST /receipt/{token}/withdraw`, which sends a
//! code) -> the code page -> `POST /receipt/{token}/withdraw/confirm` -> done.

use actix_web::http::{StatusCode, header};
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::service::ControlError;
use crate::service::signing::{self, ReceiptPage, WithdrawStep};

use super::error::{about_receipt_link, in_lang};
use super::sign::{
    CodeForm, CodeView, attempts_left, clean_code, code_error, retry_after, shown_on_code_page,
};
use super::strings::{self, Strings};
use super::{Result, STYLESHEET, State, client_info, csrf, render_page};

#[derive(Template)]
#[template(path = "public/receipt.html")]
struct ReceiptView<'a> {
    t: &'static Strings,
    stylesheet: &'static str,
    csrf: String,
    token: &'a str,
    r: &'a ReceiptPage,
    record_sha256: Option<String>,
    key_id: Option<String>,
    /// The withdrawal's code was sent: its form is shown on the page.
    code_sent_to: Option<String>,
}

impl ReceiptView<'_> {
    fn date(d: &chrono::NaiveDate) -> String {
        d.format("%Y-%m-%d").to_string()
    }

    fn valid_from(&self) -> String {
        Self::date(&self.r.valid_from)
    }

    fn valid_until(&self) -> Option<String> {
        self.r.valid_until.as_ref().map(Self::date)
    }

    fn signed_at(&self) -> String {
        self.r.signed_at.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    fn withdrawn_at(&self) -> Option<String> {
        self.r
            .withdrawn_at
            .map(|w| w.format("%Y-%m-%d %H:%M UTC").to_string())
    }
}

#[derive(Template)]
#[template(path = "public/withdrawn.html")]
struct WithdrawnView<'a> {
    t: &'static Strings,
    stylesheet: &'static str,
    title: &'a str,
    receipt_url: String,
}

fn secure(state: &State) -> bool {
    state.config.server.cookie_secure
}

/// Renders the receipt page.
fn render_receipt(
    req: &HttpRequest,
    state: &State,
    token: &str,
    r: &ReceiptPage,
) -> Result<HttpResponse> {
    let t = strings::for_language(&r.language);
    let (csrf, cookie) = csrf::token(req, secure(state)).map_err(in_lang(t))?;
    let view = ReceiptView {
        t,
        stylesheet: STYLESHEET,
        csrf,
        token,
        r,
        record_sha256: Some(r.receipt.record_sha256.clone()).filter(|s| !s.is_empty()),
        key_id: Some(r.receipt.key_id.clone()).filter(|s| !s.is_empty()),
        code_sent_to: match &r.withdrawal {
            WithdrawStep::EnterCode {
                destination_masked, ..
            } => Some(destination_masked.clone()),
            _ => None,
        },
    };
    render_page(t, StatusCode::OK, &view, cookie)
}

/// Renders the withdrawal's code page (with a problem when shown again).
fn render_code(
    req: &HttpRequest,
    state: &State,
    status: StatusCode,
    token: &str,
    r: &ReceiptPage,
    problem: Option<&ControlError>,
) -> Result<HttpResponse> {
    let t = strings::for_language(&r.language);
    let (csrf, cookie) = csrf::token(req, secure(state)).map_err(in_lang(t))?;
    let (destination, minutes) = match &r.withdrawal {
        WithdrawStep::EnterCode {
            destination_masked,
            code_expires_at,
        } => (
            Some(destination_masked.clone()),
            Some(super::minutes_until(*code_expires_at, state.clock.now())),
        ),
        _ => (None, None),
    };
    let view = CodeView {
        t,
        stylesheet: STYLESHEET,
        title: t.withdraw_code_title,
        agreement: &r.title,
        requester: &r.tenant_name,
        csrf,
        action: format!("/receipt/{token}/withdraw/confirm"),
        resend_action: format!("/receipt/{token}/withdraw"),
        button: t.withdraw_confirm_button,
        destination,
        guardian_destination: None,
        minutes,
        error: problem.map(|e| code_error(t, e)),
        guardian_wrong: false,
        attempts_left: problem.and_then(attempts_left),
        retry_after_secs: problem.and_then(retry_after),
        notice: None,
    };
    let mut res = render_page(t, status, &view, cookie)?;
    if let Some(secs) = problem.and_then(retry_after)
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Ok(res)
}

/// Shows the withdrawal's code page again with a problem, or the receipt's own error page when
/// it cannot be opened.
async fn again(
    req: &HttpRequest,
    state: &State,
    token: &str,
    problem: ControlError,
) -> Result<HttpResponse> {
    let status = crate::error::status_of(&problem);
    match signing::open_receipt(state, token, client_info(req, state)).await {
        Ok(r) => render_code(req, state, status, token, &r, Some(&problem)),
        Err(e) => Err(about_receipt_link(req, state, token, e).await),
    }
}

/// `GET /receipt/{token}`.
async fn page(req: HttpRequest, state: State, path: web::Path<String>) -> Result<HttpResponse> {
    let token = path.into_inner();
    let r = match signing::open_receipt(&state, &token, client_info(&req, &state)).await {
        Ok(v) => v,
        Err(e) => return Err(about_receipt_link(&req, &state, &token, e).await),
    };
    render_receipt(&req, &state, &token, &r)
}

/// `GET /receipt/{token}/receipt.pdf`.
async fn pdf(req: HttpRequest, state: State, path: web::Path<String>) -> Result<HttpResponse> {
    let token = path.into_inner();
    let bytes = match signing::receipt_pdf(&state, &token, client_info(&req, &state)).await {
        Ok(v) => v,
        Err(e) => return Err(about_receipt_link(&req, &state, &token, e).await),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"receipt.pdf\"",
        ))
        .body(bytes))
}

/// `GET /receipt/{token}/receipt.json`.
async fn json(req: HttpRequest, state: State, path: web::Path<String>) -> Result<HttpResponse> {
    let token = path.into_inner();
    let text = match signing::receipt_json(&state, &token, client_info(&req, &state)).await {
        Ok(v) => v,
        Err(e) => return Err(about_receipt_link(&req, &state, &token, e).await),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"receipt.json\"",
        ))
        .body(text))
}

/// `POST /receipt/{token}/withdraw`: sends the code; shows the code page.
async fn withdraw(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let token = path.into_inner();
    let browser = strings::for_browser(&req);
    csrf::check_form(&req, &body).map_err(in_lang(browser))?;
    match signing::start_withdrawal(&state, &token, client_info(&req, &state)).await {
        Ok(r) => render_code(&req, &state, StatusCode::OK, &token, &r, None),
        Err(e) if shown_on_code_page(&e) => again(&req, &state, &token, e).await,
        Err(e) => Err(about_receipt_link(&req, &state, &token, e).await),
    }
}

/// `POST /receipt/{token}/withdraw/confirm`: checks the code and withdraws; shows the done page.
async fn confirm(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let token = path.into_inner();
    let browser = strings::for_browser(&req);
    csrf::check_form(&req, &body).map_err(in_lang(browser))?;
    let form: CodeForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    let code = clean_code(&form.code);
    match signing::confirm_withdrawal(&state, &token, &code, client_info(&req, &state)).await {
        Ok(r) => {
            let t = strings::for_language(&r.language);
            let view = WithdrawnView {
                t,
                stylesheet: STYLESHEET,
                title: &r.title,
                receipt_url: format!("/receipt/{token}"),
            };
            render_page(t, StatusCode::OK, &view, None)
        }
        Err(e) if shown_on_code_page(&e) => again(&req, &state, &token, e).await,
        Err(e) => Err(about_receipt_link(&req, &state, &token, e).await),
    }
}

/// Registers the receipt pages.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/receipt/{token}", web::get().to(page))
        .route("/receipt/{token}/receipt.pdf", web::get().to(pdf))
        .route("/receipt/{token}/receipt.json", web::get().to(json))
        .route("/receipt/{token}/withdraw", web::post().to(withdraw))
        .route("/receipt/{token}/withdraw/confirm", web::post().to(confirm));
}

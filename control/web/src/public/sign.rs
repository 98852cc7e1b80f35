//! The signing pages behind a request's link: the agreement with its choices
//! (`GET /sign/{token}`), the code page (after `POST /sign/{token}`, which sends the code; a new
//! code by `POST /sign/{token}/resend`), and the done page (after `POST /sign/{token}/code`).
//! A wrong code shows the code page again (400) with the attempts left; too many tries show it
//! with 429 and `Retry-After`; every other failure is an error page ([`super::error`]).

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::service::ControlError;
use crate::service::signing::{self, GuardianInput, SignChoices, SignPage, SignStep};

use super::error::{about_sign_link, in_lang, invalid_text};
use super::strings::{self, Strings};
use super::{PublicError, Result, STYLESHEET, State, client_info, csrf, render_page};

/// One scope as a checkbox.
#[derive(Debug)]
pub struct ScopeView {
    /// The channel (the checkbox's value).
    pub channel: String,
    /// What the signer reads.
    pub label: String,
    /// Must be accepted to sign.
    pub mandatory: bool,
    /// Ticked (only when the signer ticked it before a form shown again).
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "public/sign.html")]
struct SignView<'a> {
    t: &'static Strings,
    stylesheet: &'static str,
    csrf: String,
    token: &'a str,
    p: &'a SignPage,
    scopes: Vec<ScopeView>,
    face_checked: bool,
    guardian: GuardianInput,
    error: Option<&'static str>,
    detail: Option<String>,
}

impl SignView<'_> {
    fn valid_from(&self) -> String {
        self.p.valid_from.format("%Y-%m-%d").to_string()
    }

    fn valid_until(&self) -> Option<String> {
        self.p.valid_until.map(|d| d.format("%Y-%m-%d").to_string())
    }
}

/// The code page, for signing and for withdrawing.
#[derive(Template)]
#[template(path = "public/code.html")]
pub struct CodeView<'a> {
    /// Strings.
    pub t: &'static Strings,
    /// The stylesheet's path.
    pub stylesheet: &'static str,
    /// The page's title.
    pub title: &'static str,
    /// The agreement's title (context for the person).
    pub agreement: &'a str,
    /// Who asks.
    pub requester: &'a str,
    /// The CSRF value of the forms.
    pub csrf: String,
    /// Where the code form posts.
    pub action: String,
    /// Where "send a new code" posts.
    pub resend_action: String,
    /// The submit button's words.
    pub button: &'static str,
    /// Where the code went, masked.
    pub destination: Option<String>,
    /// Where the guardian's code went, masked (asks for the guardian's code too).
    pub guardian_destination: Option<String>,
    /// Minutes the code is still valid.
    pub minutes: Option<i64>,
    /// A problem to show (wrong code, too many tries).
    pub error: Option<&'static str>,
    /// The guardian's code (not the signer's) was the wrong one.
    pub guardian_wrong: bool,
    /// Attempts left after a wrong code.
    pub attempts_left: Option<u32>,
    /// Seconds to wait (429).
    pub retry_after_secs: Option<u64>,
    /// A notice (a new code was sent).
    pub notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "public/signed.html")]
struct SignedView {
    t: &'static Strings,
    stylesheet: &'static str,
    after_signing_text: String,
    receipt_url: String,
}

/// The form of the first page.
#[derive(Debug, Default, Deserialize)]
struct ChoicesForm {
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    face_matching: Option<String>,
    #[serde(default)]
    guardian_name: Option<String>,
    #[serde(default)]
    guardian_relation: Option<String>,
    #[serde(default)]
    guardian_contact: Option<String>,
}

impl ChoicesForm {
    fn choices(&self, needs_guardian: bool) -> SignChoices {
        let g = GuardianInput {
            name: self
                .guardian_name
                .as_deref()
                .unwrap_or("")
                .trim()
                .to_string(),
            relation: self
                .guardian_relation
                .as_deref()
                .unwrap_or("")
                .trim()
                .to_string(),
            contact: self
                .guardian_contact
                .as_deref()
                .unwrap_or("")
                .trim()
                .to_string(),
        };
        let any = !(g.name.is_empty() && g.relation.is_empty() && g.contact.is_empty());
        SignChoices {
            accepted_scopes: self.scope.clone(),
            face_matching: self.face_matching.is_some(),
            guardian: (needs_guardian || any).then_some(g),
        }
    }
}

/// The form of the code page.
#[derive(Debug, Default, Deserialize)]
pub struct CodeForm {
    /// The code.
    #[serde(default)]
    pub code: String,
    /// The guardian's code (minors).
    #[serde(default)]
    pub guardian_code: Option<String>,
}

/// A typed code without spaces or dashes.
pub fn clean_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

/// The number of attempts left that a wrong-code message names ("... 3 attempts left").
pub fn attempts_left(e: &ControlError) -> Option<u32> {
    let msg = e.public_message();
    if !msg.contains("attempt") {
        return None;
    }
    let digits: String = msg
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Whether only the guardian's code was wrong (the signer's was right).
pub fn guardian_wrong(e: &ControlError) -> bool {
    matches!(e, ControlError::Invalid { field, .. } if field == "guardian_code")
}

/// The seconds to wait that an error carries (429).
pub fn retry_after(e: &ControlError) -> Option<u64> {
    match e {
        ControlError::RateLimited {
            retry_after_secs, ..
        }
        | ControlError::TooManyAttempts { retry_after_secs } => Some(*retry_after_secs),
        _ => None,
    }
}

/// Whether a code form's error is shown on the code page again, where a new code can be asked
/// for (a wrong code: 400; too many tries: 429; an expired code, or a withdrawal's code
/// entered wrongly too often: 410) rather than on an error page.
pub fn shown_on_code_page(e: &ControlError) -> bool {
    match e {
        ControlError::Gone { code, .. } => matches!(*code, "code_expired" | "code_locked"),
        _ => matches!(
            crate::error::status_of(e),
            StatusCode::BAD_REQUEST | StatusCode::TOO_MANY_REQUESTS
        ),
    }
}

/// The words for a code page's error.
pub fn code_error(t: &'static Strings, e: &ControlError) -> &'static str {
    match e {
        ControlError::RateLimited { .. } | ControlError::TooManyAttempts { .. } => {
            t.rate_limited_text
        }
        ControlError::Gone {
            code: "code_locked",
            ..
        } => t.code_locked_text,
        ControlError::Gone { .. } => t.code_expired_text,
        _ => t.wrong_code,
    }
}

/// An answer with the page's status, and `Retry-After` for a 429.
fn with_retry(mut res: HttpResponse, retry: Option<u64>) -> HttpResponse {
    if let Some(secs) = retry
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn secure(state: &State) -> bool {
    state.config.server.cookie_secure
}

fn scopes_of(p: &SignPage, ticked: &[String]) -> Vec<ScopeView> {
    p.scopes
        .iter()
        .map(|s| ScopeView {
            channel: s.channel.clone(),
            label: s.label.clone().unwrap_or_else(|| s.channel.clone()),
            mandatory: s.mandatory,
            checked: ticked.contains(&s.channel),
        })
        .collect()
}

/// Renders the first page (the agreement and its choices), with `form` ticked as the signer
/// sent it when shown again with a problem.
fn render_sign(
    t: &'static Strings,
    status: StatusCode,
    token: &str,
    p: &SignPage,
    (csrf, cookie): (String, Option<Cookie<'static>>),
    form: Option<&ChoicesForm>,
    problem: Option<&ControlError>,
) -> Result<HttpResponse> {
    let ticked = form.map(|f| f.scope.clone()).unwrap_or_default();
    let choices = form.map(|f| f.choices(true));
    let view = SignView {
        t,
        stylesheet: STYLESHEET,
        csrf,
        token,
        p,
        scopes: scopes_of(p, &ticked),
        face_checked: form.is_some_and(|f| f.face_matching.is_some()),
        guardian: choices.and_then(|c| c.guardian).unwrap_or(GuardianInput {
            name: String::new(),
            relation: String::new(),
            contact: String::new(),
        }),
        error: problem.map(|e| match e {
            ControlError::Invalid { field, .. } => invalid_text(t, field),
            ControlError::BadRequest { code, .. } => invalid_text(t, code),
            ControlError::RateLimited { .. } => t.rate_limited_text,
            _ => t.invalid_text,
        }),
        detail: problem.map(|e| match retry_after(e) {
            Some(secs) => format!("{} {secs} {}.", t.retry_in, t.seconds),
            None => e.public_message(),
        }),
    };
    let res = render_page(t, status, &view, cookie)?;
    Ok(with_retry(res, problem.and_then(retry_after)))
}

/// The code page of a request whose code was sent.
#[allow(clippy::too_many_arguments)]
fn render_code(
    t: &'static Strings,
    status: StatusCode,
    token: &str,
    p: &SignPage,
    (csrf, cookie): (String, Option<Cookie<'static>>),
    problem: Option<&ControlError>,
    notice: Option<&'static str>,
    now: chrono::NaiveDateTime,
) -> Result<HttpResponse> {
    let (destination, guardian_destination, minutes) = match &p.step {
        SignStep::EnterCode {
            destination_masked,
            guardian_destination_masked,
            code_expires_at,
            ..
        } => (
            Some(destination_masked.clone()),
            guardian_destination_masked.clone(),
            Some(super::minutes_until(*code_expires_at, now)),
        ),
        SignStep::Choose => (None, None, None),
    };
    let view = CodeView {
        t,
        stylesheet: STYLESHEET,
        title: t.code_title,
        agreement: &p.title,
        requester: &p.requester,
        csrf,
        action: format!("/sign/{token}/code"),
        resend_action: format!("/sign/{token}/resend"),
        button: t.sign_button,
        destination,
        guardian_destination: guardian_destination.or_else(|| {
            // A minor's page asks for the guardian's code even when the destination is unknown.
            p.needs_guardian.then(String::new)
        }),
        minutes,
        error: problem.map(|e| {
            if guardian_wrong(e) {
                t.guardian_wrong_code
            } else {
                code_error(t, e)
            }
        }),
        guardian_wrong: problem.is_some_and(guardian_wrong),
        attempts_left: problem.and_then(attempts_left),
        retry_after_secs: problem.and_then(retry_after),
        notice,
    };
    let res = render_page(t, status, &view, cookie)?;
    Ok(with_retry(res, problem.and_then(retry_after)))
}

/// `GET /sign/{token}`: the agreement and its choices (or the code page when the code was sent).
async fn page(req: HttpRequest, state: State, path: web::Path<String>) -> Result<HttpResponse> {
    let token = path.into_inner();
    let p = match signing::open_request(&state, &token, client_info(&req, &state)).await {
        Ok(p) => p,
        Err(e) => return Err(about_sign_link(&req, &state, &token, e).await),
    };
    let t = strings::for_language(&p.language);
    let csrf = csrf::token(&req, secure(&state)).map_err(in_lang(t))?;
    match p.step {
        SignStep::Choose => render_sign(t, StatusCode::OK, &token, &p, csrf, None, None),
        SignStep::EnterCode { .. } => render_code(
            t,
            StatusCode::OK,
            &token,
            &p,
            csrf,
            None,
            None,
            state.clock.now(),
        ),
    }
}

/// Shows the page of the request again with a problem: the first page for a bad choice, else
/// the code page; an error page when the request cannot be opened any more.
async fn again(
    req: &HttpRequest,
    state: &State,
    token: &str,
    problem: ControlError,
    form: Option<&ChoicesForm>,
) -> Result<HttpResponse> {
    let status = crate::error::status_of(&problem);
    // A link that cannot be opened any more (used, locked, revoked) says so, whatever the form
    // had wrong.
    let p = match signing::open_request(state, token, client_info(req, state)).await {
        Ok(p) => p,
        Err(e) => return Err(about_sign_link(req, state, token, e).await),
    };
    let t = strings::for_language(&p.language);
    let csrf = csrf::token(req, secure(state)).map_err(in_lang(t))?;
    match form {
        Some(f) => render_sign(t, status, token, &p, csrf, Some(f), Some(&problem)),
        None => render_code(
            t,
            status,
            token,
            &p,
            csrf,
            Some(&problem),
            None,
            state.clock.now(),
        ),
    }
}

/// `POST /sign/{token}`: records the choices and sends the code; shows the code page.
async fn choose(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let token = path.into_inner();
    let browser = strings::for_browser(&req);
    csrf::check_form(&req, &body).map_err(in_lang(browser))?;
    let form: ChoicesForm = serde_html_form::from_bytes(&body).map_err(|e| PublicError {
        t: browser,
        error: ControlError::invalid("form", e.to_string()),
    })?;
    // Whether a guardian is needed is the service's to say: the fields are sent when filled.
    let choices = form.choices(false);
    match signing::submit_choices(&state, &token, choices, client_info(&req, &state)).await {
        Ok(p) => {
            let t = strings::for_language(&p.language);
            let csrf = csrf::token(&req, secure(&state)).map_err(in_lang(t))?;
            render_code(
                t,
                StatusCode::OK,
                &token,
                &p,
                csrf,
                None,
                None,
                state.clock.now(),
            )
        }
        Err(e) if crate::error::status_of(&e) == StatusCode::BAD_REQUEST => {
            again(&req, &state, &token, e, Some(&form)).await
        }
        Err(e) if crate::error::status_of(&e) == StatusCode::TOO_MANY_REQUESTS => {
            again(&req, &state, &token, e, Some(&form)).await
        }
        Err(e) => Err(about_sign_link(&req, &state, &token, e).await),
    }
}

/// `POST /sign/{token}/resend`: a new code (throttled); shows the code page.
async fn resend(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let token = path.into_inner();
    let browser = strings::for_browser(&req);
    csrf::check_form(&req, &body).map_err(in_lang(browser))?;
    match signing::resend_code(&state, &token, client_info(&req, &state)).await {
        Ok(p) => {
            let t = strings::for_language(&p.language);
            let csrf = csrf::token(&req, secure(&state)).map_err(in_lang(t))?;
            render_code(
                t,
                StatusCode::OK,
                &token,
                &p,
                csrf,
                None,
                Some(t.code_resent),
                state.clock.now(),
            )
        }
        Err(e) if shown_on_code_page(&e) => again(&req, &state, &token, e, None).await,
        Err(e) => Err(about_sign_link(&req, &state, &token, e).await),
    }
}

/// `POST /sign/{token}/code`: checks the code(s) and signs; shows the done page.
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
    let guardian_code = form
        .guardian_code
        .as_deref()
        .map(clean_code)
        .filter(|c| !c.is_empty());
    let res = signing::confirm_code(
        &state,
        &token,
        &code,
        guardian_code.as_deref(),
        client_info(&req, &state),
    )
    .await;
    match res {
        Ok(out) => {
            let t = strings::for_language(&out.language);
            let view = SignedView {
                t,
                stylesheet: STYLESHEET,
                after_signing_text: out.after_signing_text,
                receipt_url: format!("/receipt/{}", out.receipt_token),
            };
            render_page(t, StatusCode::OK, &view, None)
        }
        Err(e) if shown_on_code_page(&e) => again(&req, &state, &token, e, None).await,
        Err(e) => Err(about_sign_link(&req, &state, &token, e).await),
    }
}

/// `GET /sign/{token}/files/{asset_id}`: a file's thumbnail (JPEG, others' faces blurred).
async fn file(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (token, asset_id) = path.into_inner();
    let jpeg =
        match signing::asset_preview(&state, &token, &asset_id, client_info(&req, &state)).await {
            Ok(j) => j,
            Err(e) => return Err(about_sign_link(&req, &state, &token, e).await),
        };
    Ok(HttpResponse::Ok().content_type("image/jpeg").body(jpeg))
}

/// Registers the signing pages.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/sign/{token}", web::get().to(page))
        .route("/sign/{token}", web::post().to(choose))
        .route("/sign/{token}/resend", web::post().to(resend))
        .route("/sign/{token}/code", web::post().to(confirm))
        .route("/sign/{token}/files/{asset_id}", web::get().to(file));
}

//! Support for the console's tests: an app over a test database with a blob store (no matcher
//! runs: detections and enrolments are queued), logging in through the console's form, reading
//! pages and sending multipart forms.

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::{test, web};
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::roles::Role;

use super::{Fixture, PASSWORD, TestDb};

/// The blob store's master key in these tests.
pub const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// State with a blob store; the matcher's address answers nothing.
pub fn console_state(db: &TestDb) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(KEY.into());
    cfg.matcher.url = "http://127.0.0.1:9".into();
    cfg.server.cookie_secure = false;
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

/// The in-process app over a state (`console_test_app!(state)`).
#[macro_export]
macro_rules! console_test_app {
    ($st:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .configure(|c| likeness_control::app::configure_app(c, $st.clone())),
        )
        .await
    };
}

/// The body of an answer as text.
pub async fn body_text<B: actix_web::body::MessageBody>(
    resp: actix_web::dev::ServiceResponse<B>,
) -> String {
    String::from_utf8(test::read_body(resp).await.to_vec()).unwrap()
}

/// The value of `<meta name="csrf-token" content="...">` of a page.
pub fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

/// Logs `role`'s user of `f` in through the console's form: (session cookie, CSRF token, the
/// overview's HTML).
pub async fn console_login<S, B>(
    app: &S,
    f: &Fixture,
    role: Role,
) -> (Cookie<'static>, String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (_, email) = f.user(role);
    let form = format!("tenant={}&email={}&password={PASSWORD}", f.slug, email);
    let resp = test::call_service(
        app,
        test::TestRequest::post()
            .uri("/admin/login")
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers().get(header::LOCATION).unwrap(), "/admin");
    let cookie = resp
        .response()
        .cookies()
        .find(|c| c.name() == "lk_session")
        .unwrap()
        .into_owned();
    let page = test::call_service(
        app,
        test::TestRequest::get()
            .uri("/admin")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = body_text(page).await;
    (cookie, csrf_of(&html), html)
}

/// A `multipart/form-data` body of `(name, filename, bytes)` parts: (content type, body).
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "likeness-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// GET a console page with a session: (status, body).
pub async fn get<S, B>(app: &S, cookie: &Cookie<'static>, uri: &str) -> (StatusCode, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let resp = test::call_service(
        app,
        test::TestRequest::get()
            .uri(uri)
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let st = resp.status();
    (st, body_text(resp).await)
}

/// POST a urlencoded console form with a session: (status, Location, body).
pub async fn post<S, B>(
    app: &S,
    cookie: &Cookie<'static>,
    uri: &str,
    form: &str,
) -> (StatusCode, String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let resp = test::call_service(
        app,
        test::TestRequest::post()
            .uri(uri)
            .cookie(cookie.clone())
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form.to_string())
            .to_request(),
    )
    .await;
    let st = resp.status();
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (st, loc, body_text(resp).await)
}

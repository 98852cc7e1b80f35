//! (SIGNING) The persons' public pages in process, on SQLite and PostgreSQL: the signing page
//! renders the template's text escaped, with a strict CSP and no script; forms need the
//! double-submit CSRF cookie; every bad link answers a clear HTML page with its status
//! (unknown 404, expired / revoked / used / locked 410), a wrong code shows the code page again
//! (400) with the attempts left, a resend too soon 429 with `Retry-After`; Swedish and Dutch
//! requests get Swedish and Dutch pages. Staff's side (person, template, request) is set up
//! through the services; the link and the codes are read from the outbox (no job worker runs
//! here, so the messages wait there).

use std::sync::Arc;

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::web;
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::schema::signing_requests;
use likeness_control::service::{Ctx, consent_templates, persons, signing};
use serde_json::json;

use crate::common::*;

const CSP: &str = "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

fn state(db: &TestDb) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(console::KEY.into());
    cfg.matcher.url = "http://127.0.0.1:9".into();
    cfg.server.cookie_secure = false;
    cfg.signing.key_file = db.dir().join("evidence.key");
    cfg.signing.public_base_url = "http://localhost:8080".into();
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

/// A request sent to a person: its id and the link's token.
struct Sent {
    ctx: Ctx,
    request_id: String,
    token: String,
}

/// Every outbox body of the tenant, oldest first.
fn outbox_bodies(db: &TestDb) -> Vec<String> {
    // Messages about a person are sealed (the vault): opened by the service.
    likeness_control::service::outbox::opened_messages(&mut db.conn())
        .unwrap()
        .into_iter()
        .map(|(_, body)| body)
        .collect()
}

/// The token after `/sign/` in a text.
fn sign_token(text: &str) -> Option<String> {
    let i = text.find("/sign/")? + 6;
    let token: String = text[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}

/// A run of exactly six digits standing alone in a text (a one-time code).
fn six_digits(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            if j - i == 6 && (j == chars.len() || !chars[j].is_ascii_alphanumeric()) {
                return Some(chars[i..j].iter().collect());
            }
            i = j;
        } else {
            i += 1;
        }
    }
    None
}

/// The newest code in the outbox after the first `skip` messages.
fn code_after(db: &TestDb, skip: usize) -> String {
    outbox_bodies(db)
        .into_iter()
        .skip(skip)
        .rev()
        .find_map(|b| six_digits(&b))
        .expect("a code message in the outbox")
}

/// A tenant, a person (a minor when `minor`) with an e-mail, a template in `lang` whose
/// title and body hold HTML, and a request sent to the person.
async fn send(db: &TestDb, st: &web::Data<Deps>, lang: &str, minor: bool) -> Sent {
    let f = fixture(db, "acme");
    let deps: Arc<Deps> = st.clone().into_inner();
    let ctx = Ctx::system(deps, &f.tenant_id, "system:test");
    let dob = if minor {
        chrono::Utc::now().date_naive() - chrono::Days::new(10 * 365)
    } else {
        chrono::NaiveDate::from_ymd_opt(1990, 5, 17).unwrap()
    };
    let person = persons::create_person(
        &ctx,
        serde_json::from_value(json!({
            "name": "Kari Nordmann",
            "email": "kari@example.org",
            "date_of_birth": dob,
        }))
        .map_err(|e| likeness_control::service::ControlError::invalid("person", e.to_string())),
    )
    .await
    .unwrap();
    let input: consent_templates::TemplateInput = serde_json::from_value(json!({
        "name": "Event photos",
        "title": "Photos <b>from</b> the event",
        "body_markdown": "We would like to use **photos** of you.\n\n<script>alert('x')</script>\n",
        "language": lang,
        "scopes": [
            {"channel": "web", "mandatory": true, "label": "Our website"},
            {"channel": "print", "mandatory": false}
        ],
        "face_matching_text": "We may recognise your face in our image bank.",
        "validity_days": 365,
        "legal_character": "gdpr_consent",
        "after_signing_text": "Thank you <3"
    }))
    .unwrap();
    let tpl = consent_templates::create_template(&ctx, input)
        .await
        .unwrap();
    let out = signing::create_requests(
        &ctx,
        serde_json::from_value(json!({
            "person_ids": [person.id],
            "template_id": tpl.id,
            "language": lang,
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let request_id = out.created[0].id.clone();
    let token = outbox_bodies(db)
        .iter()
        .find_map(|b| sign_token(b))
        .expect("the link in the outbox");
    Sent {
        ctx,
        request_id,
        token,
    }
}

/// An answer: status, headers, body.
struct Page {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
    csrf_cookie: Option<Cookie<'static>>,
}

impl Page {
    fn header(&self, name: header::HeaderName) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let i = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[i..i + self.body[i..].find('"').unwrap()].to_string()
    }
}

async fn call<S, B>(app: &S, req: TestRequest) -> Page
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let csrf_cookie = resp
        .response()
        .cookies()
        .find(|c| c.name() == "lk_pcsrf")
        .map(|c| c.into_owned());
    let body = String::from_utf8_lossy(&test::read_body(resp).await).into_owned();
    Page {
        status,
        headers,
        body,
        csrf_cookie,
    }
}

fn form_post(uri: &str, cookie: Option<&Cookie<'static>>, form: &str) -> TestRequest {
    let mut r = TestRequest::post()
        .uri(uri)
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
        .set_payload(form.to_string());
    if let Some(c) = cookie {
        r = r.cookie(c.clone());
    }
    r
}

fn assert_public_headers(p: &Page) {
    assert_eq!(p.header(header::CONTENT_SECURITY_POLICY), CSP);
    assert_eq!(p.header(header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(p.header(header::REFERRER_POLICY), "no-referrer");
    assert_eq!(p.header(header::CACHE_CONTROL), "no-store");
    assert!(
        p.header(header::CONTENT_TYPE).starts_with("text/html"),
        "{}",
        p.header(header::CONTENT_TYPE)
    );
    assert!(!p.body.contains("<script"), "a script on the page");
    assert!(!p.body.contains("style=\""), "an inline style on the page");
}

db_test!(
    sign_page_escaped_with_csp_and_csrf,
    |db: TestDb| async move {
        let st = state(&db);
        let app = console_test_app!(st);
        let s = send(&db, &st, "en", false).await;
        let page = call(&app, TestRequest::get().uri(&format!("/sign/{}", s.token))).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_public_headers(&page);
        let b = &page.body;
        assert!(b.contains("<html lang=\"en\">"), "{b}");
        // The template's HTML is text.
        assert!(!b.contains("<b>"), "{b}");
        assert!(
            b.contains("Photos &#60;b&#62;from&#60;/b&#62; the event"),
            "{b}"
        );
        assert!(b.contains("&lt;script&gt;"), "{b}");
        assert!(b.contains("<strong>photos</strong>"), "{b}");
        // Scopes: none ticked; the mandatory one required and marked; face matching apart.
        assert!(!b.contains(" checked"), "{b}");
        assert!(b.contains("value=\"web\""), "{b}");
        assert!(b.contains("Our website"), "{b}");
        assert!(b.contains("(required)"), "{b}");
        assert_eq!(b.matches(" required>").count(), 1, "{b}");
        assert!(b.contains("name=\"face_matching\""), "{b}");
        assert!(
            b.contains("We may recognise your face in our image bank."),
            "{b}"
        );
        assert!(b.contains("Article 9"), "{b}");
        assert!(b.contains(">Continue</button>"), "{b}");
        assert!(
            !b.contains("guardian_name"),
            "an adult needs no guardian: {b}"
        );
        // The double-submit cookie.
        let cookie = page.csrf_cookie.clone().expect("the CSRF cookie");
        assert!(cookie.http_only().unwrap_or(false));
        assert_eq!(
            cookie.same_site(),
            Some(actix_web::cookie::SameSite::Strict)
        );
        assert_eq!(cookie.path(), Some("/"));
        assert_eq!(cookie.value(), page.csrf());

        // Forms without the matching cookie and field, or from another site: 403 pages.
        let uri = format!("/sign/{}", s.token);
        let form = format!("csrf={}&scope=web", page.csrf());
        let p = call(&app, form_post(&uri, None, &form)).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
        assert_public_headers(&p);
        assert!(p.body.contains("The form has expired"), "{}", p.body);
        let p = call(&app, form_post(&uri, Some(&cookie), "scope=web")).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
        let wrong = "csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&scope=web";
        let p = call(&app, form_post(&uri, Some(&cookie), wrong)).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
        let p = call(
            &app,
            form_post(&uri, Some(&cookie), &form)
                .insert_header((header::ORIGIN, "https://evil.example")),
        )
        .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
        // Nothing was sent by those.
        let before = outbox_bodies(&db).len();
        assert_eq!(before, 1);

        // The mandatory scope missing: the page again (400) naming it, nothing ticked for them.
        let p = call(
            &app,
            form_post(
                &uri,
                Some(&cookie),
                &format!("csrf={}&scope=print", page.csrf()),
            ),
        )
        .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
        assert!(
            p.body.contains("Please tick every required choice"),
            "{}",
            p.body
        );
        assert!(
            p.body.contains(
                "value=\"print\" id=\"scope-2\" aria-describedby=\"scopes-hint\" checked"
            ),
            "{}",
            p.body
        );
        assert_eq!(outbox_bodies(&db).len(), before);

        // The choices: the code page, where the code went (masked), a numeric one-time-code input.
        let p = call(&app, form_post(&uri, Some(&cookie), &form)).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert_public_headers(&p);
        assert!(p.body.contains("We sent a 6-digit code to"), "{}", p.body);
        assert!(!p.body.contains("kari@example.org"), "{}", p.body);
        assert!(p.body.contains("inputmode=\"numeric\""), "{}", p.body);
        assert!(
            p.body.contains("autocomplete=\"one-time-code\""),
            "{}",
            p.body
        );
        assert!(
            p.body
                .contains(&format!("action=\"/sign/{}/resend\"", s.token)),
            "{}",
            p.body
        );
        let code = code_after(&db, before);

        // A new code at once: too soon, 429 with Retry-After on the code page.
        let p = call(
            &app,
            form_post(
                &format!("/sign/{}/resend", s.token),
                Some(&cookie),
                &format!("csrf={}", page.csrf()),
            ),
        )
        .await;
        assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS, "{}", p.body);
        let retry: u64 = p.header(header::RETRY_AFTER).parse().unwrap();
        assert!(retry >= 1, "{retry}");
        assert!(p.body.contains("Try again in"), "{}", p.body);

        // A wrong code: the code page again, 400, with the attempts left.
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let code_uri = format!("/sign/{}/code", s.token);
        let p = call(
            &app,
            form_post(
                &code_uri,
                Some(&cookie),
                &format!("csrf={}&code={wrong}", page.csrf()),
            ),
        )
        .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
        assert!(p.body.contains("That code is not right"), "{}", p.body);
        assert!(p.body.contains("Attempts left: 4"), "{}", p.body);
        assert!(p.body.contains("aria-invalid=\"true\""), "{}", p.body);

        // The right code (typed with a space): signed; the receipt's link.
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        let p = call(
            &app,
            form_post(
                &code_uri,
                Some(&cookie),
                &format!("csrf={}&code={}", page.csrf(), spaced.replace(' ', "+")),
            ),
        )
        .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert_public_headers(&p);
        assert!(p.body.contains("Thank you, you have signed"), "{}", p.body);
        assert!(p.body.contains("Thank you &#60;3"), "{}", p.body);
        let i = p.body.find("href=\"/receipt/").expect("the receipt link") + 6;
        let receipt = p.body[i..i + p.body[i..].find('"').unwrap()].to_string();

        // The receipt page: downloads, how to verify, withdraw.
        let r = call(&app, TestRequest::get().uri(&receipt)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_public_headers(&r);
        assert!(
            r.body.contains(&format!("{receipt}/receipt.pdf")),
            "{}",
            r.body
        );
        assert!(
            r.body.contains(&format!("{receipt}/receipt.json")),
            "{}",
            r.body
        );
        assert!(r.body.contains("/api/v1/evidence/keys"), "{}", r.body);
        assert!(r.body.contains("Withdraw my consent"), "{}", r.body);
        let pdf = call(
            &app,
            TestRequest::get().uri(&format!("{receipt}/receipt.pdf")),
        )
        .await;
        assert_eq!(pdf.status, StatusCode::OK);
        assert_eq!(pdf.header(header::CONTENT_TYPE), "application/pdf");
        let json = call(
            &app,
            TestRequest::get().uri(&format!("{receipt}/receipt.json")),
        )
        .await;
        assert_eq!(json.status, StatusCode::OK);
        assert!(
            json.header(header::CONTENT_TYPE)
                .starts_with("application/json")
        );
        serde_json::from_str::<serde_json::Value>(&json.body).unwrap();

        // The link again: used, 410, pointing to the receipt.
        let p = call(&app, TestRequest::get().uri(&uri)).await;
        assert_eq!(p.status, StatusCode::GONE, "{}", p.body);
        assert_public_headers(&p);
        assert!(p.body.contains("You have already signed"), "{}", p.body);
        assert!(p.body.contains("receipt"), "{}", p.body);
        let _ = s.request_id;
    }
);

db_test!(bad_links_answer_clear_pages, |db: TestDb| async move {
    let st = state(&db);
    let app = console_test_app!(st);
    let s = send(&db, &st, "en", false).await;

    // Unknown: 404, also in Swedish for a Swedish browser; unknown paths below /sign too.
    let p = call(
        &app,
        TestRequest::get().uri("/sign/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    assert_public_headers(&p);
    assert!(p.body.contains("This link is not valid"), "{}", p.body);
    let p = call(
        &app,
        TestRequest::get()
            .uri("/receipt/nope")
            .insert_header((header::ACCEPT_LANGUAGE, "sv-SE,sv;q=0.9,en;q=0.5")),
    )
    .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    assert!(p.body.contains("<html lang=\"sv\">"), "{}", p.body);
    assert!(p.body.contains("Länken är inte giltig"), "{}", p.body);
    let p = call(&app, TestRequest::get().uri("/sign/a/b/c/d")).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    assert!(p.body.contains("This link is not valid"), "{}", p.body);
    let p = call(
        &app,
        TestRequest::get().uri(&format!("/sign/{}/code", s.token)),
    )
    .await;
    assert!(p.status.is_client_error(), "{}", p.status);
    assert!(p.header(header::CONTENT_TYPE).starts_with("text/html"));
    assert_public_headers(&p);

    // Locked after too many wrong codes: 400 with the attempts left each time, then 410.
    let uri = format!("/sign/{}", s.token);
    let page = call(&app, TestRequest::get().uri(&uri)).await;
    let cookie = page.csrf_cookie.clone().unwrap();
    let csrf = page.csrf();
    let p = call(
        &app,
        form_post(&uri, Some(&cookie), &format!("csrf={csrf}&scope=web")),
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let code = code_after(&db, 1);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut last = None;
    for n in 0..10 {
        let p = call(
            &app,
            form_post(
                &format!("{uri}/code"),
                Some(&cookie),
                &format!("csrf={csrf}&code={wrong}"),
            ),
        )
        .await;
        if p.status != StatusCode::BAD_REQUEST {
            assert!(n >= 4, "locked after {n} wrong codes");
            last = Some(p);
            break;
        }
        assert!(
            p.body.contains(&format!("Attempts left: {}", 4 - n)),
            "{}",
            p.body
        );
    }
    let p = last.expect("the request locks");
    assert_eq!(p.status, StatusCode::GONE, "{}", p.body);
    assert!(p.body.contains("This request is locked"), "{}", p.body);
    // Even the right code does nothing now, and the link says locked.
    let p = call(
        &app,
        form_post(
            &format!("{uri}/code"),
            Some(&cookie),
            &format!("csrf={csrf}&code={code}"),
        ),
    )
    .await;
    assert_eq!(p.status, StatusCode::GONE, "{}", p.body);
    let p = call(&app, TestRequest::get().uri(&uri)).await;
    assert_eq!(p.status, StatusCode::GONE, "{}", p.body);
    assert!(p.body.contains("This request is locked"), "{}", p.body);

    // Revoked by staff: 410.
    let s2 = signing::create_requests(
        &s.ctx,
        serde_json::from_value(json!({
            "person_ids": [signing::get_request(&s.ctx, s.request_id.clone()).await.unwrap().person_id],
            "template_id": signing::get_request(&s.ctx, s.request_id.clone()).await.unwrap().template_id,
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let id2 = s2.created[0].id.clone();
    let token2 = outbox_bodies(&db)
        .iter()
        .filter_map(|b| sign_token(b))
        .find(|t| *t != s.token)
        .unwrap();
    let p = call(&app, TestRequest::get().uri(&format!("/sign/{token2}"))).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    signing::revoke_request(&s.ctx, id2.clone(), "sent to the wrong person".into())
        .await
        .unwrap();
    let p = call(&app, TestRequest::get().uri(&format!("/sign/{token2}"))).await;
    assert_eq!(p.status, StatusCode::GONE, "{}", p.body);
    assert_public_headers(&p);
    assert!(
        p.body.contains("This link has been cancelled"),
        "{}",
        p.body
    );

    // Expired: 410.
    let s3 = signing::create_requests(
        &s.ctx,
        serde_json::from_value(json!({
            "person_ids": [signing::get_request(&s.ctx, id2.clone()).await.unwrap().person_id],
            "template_id": signing::get_request(&s.ctx, id2.clone()).await.unwrap().template_id,
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let id3 = s3.created[0].id.clone();
    let token3 = outbox_bodies(&db)
        .iter()
        .filter_map(|b| sign_token(b))
        .find(|t| *t != s.token && *t != token2)
        .unwrap();
    let past = chrono::Utc::now().naive_utc() - chrono::Duration::hours(1);
    diesel::update(signing_requests::table.find(&id3))
        .set(signing_requests::expires_at.eq(past))
        .execute(&mut db.conn())
        .unwrap();
    let p = call(&app, TestRequest::get().uri(&format!("/sign/{token3}"))).await;
    assert_eq!(p.status, StatusCode::GONE, "{}", p.body);
    assert!(p.body.contains("This link has expired"), "{}", p.body);
});

db_test!(swedish_and_dutch_pages, |db: TestDb| async move {
    let st = state(&db);
    let app = console_test_app!(st);
    let s = send(&db, &st, "sv", true).await;
    let p = call(&app, TestRequest::get().uri(&format!("/sign/{}", s.token))).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("<html lang=\"sv\">"), "{}", p.body);
    assert!(p.body.contains(">Fortsätt</button>"), "{}", p.body);
    assert!(p.body.contains("Vad godkänner du?"), "{}", p.body);
    assert!(p.body.contains("(obligatoriskt)"), "{}", p.body);
    // A minor: the guardian's fields, labelled.
    assert!(
        p.body.contains("<legend>Vårdnadshavare</legend>"),
        "{}",
        p.body
    );
    assert!(
        p.body.contains("<label for=\"guardian-name\">"),
        "{}",
        p.body
    );
    assert!(p.body.contains("id=\"guardian-contact\""), "{}", p.body);

    // The same request in Dutch.
    diesel::update(signing_requests::table.find(&s.request_id))
        .set(signing_requests::language.eq("nl"))
        .execute(&mut db.conn())
        .unwrap();
    let p = call(&app, TestRequest::get().uri(&format!("/sign/{}", s.token))).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("<html lang=\"nl\">"), "{}", p.body);
    assert!(p.body.contains(">Verder</button>"), "{}", p.body);
    assert!(p.body.contains("Ouder of voogd"), "{}", p.body);
});

/// The newest six-digit code sent to `destination`.
fn code_to(db: &TestDb, destination: &str) -> String {
    // Messages about a person are sealed (the vault): opened by the service, newest first.
    likeness_control::service::outbox::opened_messages(&mut db.conn())
        .unwrap()
        .iter()
        .rev()
        .filter(|(to, _)| to == destination)
        .find_map(|(_, b)| six_digits(b))
        .unwrap_or_else(|| panic!("no code to {destination}"))
}

db_test!(minor_signs_with_a_guardian, |db: TestDb| async move {
    let st = state(&db);
    let app = console_test_app!(st);
    let s = send(&db, &st, "en", true).await;
    let uri = format!("/sign/{}", s.token);
    let page = call(&app, TestRequest::get().uri(&uri)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("<legend>Parent or guardian</legend>"),
        "{}",
        page.body
    );
    let cookie = page.csrf_cookie.clone().unwrap();
    let csrf = page.csrf();

    // Without the guardian: the page again, naming what is missing.
    let p = call(
        &app,
        form_post(&uri, Some(&cookie), &format!("csrf={csrf}&scope=web")),
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("fill in the guardian"), "{}", p.body);

    // With the guardian: two codes, two inputs.
    let form = format!(
        "csrf={csrf}&scope=web&guardian_name=Anna+Nordmann&guardian_relation=mother&guardian_contact=anna%40example.org"
    );
    let p = call(&app, form_post(&uri, Some(&cookie), &form)).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(
        p.body.contains("The guardian&#39;s code was sent to"),
        "{}",
        p.body
    );
    assert!(p.body.contains("name=\"guardian_code\""), "{}", p.body);
    assert!(!p.body.contains("anna@example.org"), "{}", p.body);
    let code = code_to(&db, "kari@example.org");
    let gcode = code_to(&db, "anna@example.org");
    // The guardian's code wrong: 400, attempts left.
    let wrong = if gcode == "000000" {
        "111111"
    } else {
        "000000"
    };
    let p = call(
        &app,
        form_post(
            &format!("{uri}/code"),
            Some(&cookie),
            &format!("csrf={csrf}&code={code}&guardian_code={wrong}"),
        ),
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("Attempts left: 4"), "{}", p.body);
    assert!(
        p.body.contains("the guardian&#39;s code is not"),
        "{}",
        p.body
    );
    assert!(
        p.body
            .contains("name=\"guardian_code\" id=\"guardian-code\""),
        "{}",
        p.body
    );
    // Both right: signed.
    let p = call(
        &app,
        form_post(
            &format!("{uri}/code"),
            Some(&cookie),
            &format!("csrf={csrf}&code={code}&guardian_code={gcode}"),
        ),
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("Thank you, you have signed"), "{}", p.body);

    // The receipt: the scopes as the template labelled them (the channel's name where it has
    // no label), and the guardian who confirmed with their own code.
    let i = p.body.find("href=\"/receipt/").expect("the receipt's link") + 6;
    let receipt = &p.body[i..i + p.body[i..].find('"').unwrap()];
    let r = call(&app, TestRequest::get().uri(receipt)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_public_headers(&r);
    assert!(r.body.contains("<dd>Our website</dd>"), "{}", r.body);
    assert!(r.body.contains("<dd>print</dd>"), "{}", r.body);
    assert!(
        r.body.contains(
            "<dt>Guardian</dt><dd>Anna Nordmann (mother), confirmed with their own code</dd>"
        ),
        "{}",
        r.body
    );
});

db_test!(
    dead_link_answers_in_the_requests_language,
    |db: TestDb| async move {
        let st = state(&db);
        let app = console_test_app!(st);
        let s = send(&db, &st, "sv", false).await;
        signing::revoke_request(&s.ctx, s.request_id.clone(), "fel person".into())
            .await
            .unwrap();
        // A revoked Swedish request: 410 in Swedish, whatever the browser prefers.
        let p = call(
            &app,
            TestRequest::get()
                .uri(&format!("/sign/{}", s.token))
                .insert_header((header::ACCEPT_LANGUAGE, "en")),
        )
        .await;
        assert_eq!(p.status, StatusCode::GONE, "{}", p.body);
        assert_public_headers(&p);
        assert!(p.body.contains("<html lang=\"sv\">"), "{}", p.body);
        assert!(p.body.contains("Länken har dragits tillbaka"), "{}", p.body);
        // An unknown token keeps the browser's language.
        let p = call(
            &app,
            TestRequest::get()
                .uri("/sign/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                .insert_header((header::ACCEPT_LANGUAGE, "en")),
        )
        .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
        assert!(p.body.contains("<html lang=\"en\">"), "{}", p.body);
        assert!(p.body.contains("This link is not valid"), "{}", p.body);
    }
);

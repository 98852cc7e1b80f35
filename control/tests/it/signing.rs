//! SIGNING / the flow at service level and its REST API, on SQLite and PostgreSQL, with a real
//! SMTP server (aiosmtpd) from which the links and codes are read: requests in bulk (with the
//! persons that fail), the whole journey (link -> page -> choices -> code -> agreement -> the
//! file turns approved -> receipt verifies -> withdrawal -> the file no longer approved, face
//! templates queued for removal, events), and every bad path (wrong codes lock, expired,
//! revoked, replayed and guessed links, resend throttle, an expired code, a mandatory scope, a
//! minor without a guardian, the guardian's code).

use std::time::Duration;

use crate::common::mail::MailServer;
use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::{assets, faces, jobs as jobs_t, persons, signing_requests};
use likeness_control::service::consent_templates::{self, LegalCharacter, Scope, TemplateInput};
use likeness_control::service::signing::{
    self, ClientInfo, GuardianInput, NewSigningRequests, Purpose, RequestFilter, RequestStatus,
    SignChoices, SignStep, WithdrawStep,
};
use likeness_control::service::{Clock, ControlError, Ctx, events, evidence, jobs};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const MASTER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const BASE: &str = "https://consent.test";

fn config(db: &TestDb, smtp: &MailServer) -> Config {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(MASTER_KEY.into());
    cfg.matcher.url = String::new();
    cfg.mail.smtp_url = smtp.smtp_url();
    cfg.mail.from = "Likeness Test <no-reply@likeness.test>".into();
    cfg.mail.timeout_ms = 3_000;
    cfg.signing.key_file = db.dir().join("evidence.key");
    cfg.signing.public_base_url = BASE.into();
    cfg
}

struct Env {
    state: web::Data<Deps>,
    smtp: MailServer,
    f: Fixture,
}

impl Env {
    fn new(db: &TestDb) -> Self {
        let f = fixture(db, "acme");
        let smtp = MailServer::start();
        let cfg = config(db, &smtp);
        let clock = Clock::manual(db::now());
        let state = web::Data::new(Deps::with_clock(db.pool.clone(), cfg, clock));
        Env { state, smtp, f }
    }
    fn t(&self) -> &str {
        &self.f.tenant_id
    }
    /// A staff context with every permission (the clock's now).
    fn ctx(&self) -> Ctx {
        Ctx::system(self.state.clone().into_inner(), self.t(), "test")
    }
    async fn run_jobs(&self) {
        jobs::run_until_idle(&self.state, "signing-test")
            .await
            .unwrap();
    }
    fn advance(&self, secs: i64) {
        self.state.clock.advance(chrono::TimeDelta::seconds(secs));
    }
    fn today(&self) -> String {
        self.state.clock.today().to_string()
    }
    /// The newest mail to `to` once there are `n`, after running the jobs.
    async fn mail(&self, to: &str, n: usize) -> crate::common::mail::Mail {
        self.run_jobs().await;
        self.smtp.wait_for_nth(to, n, WAIT).await
    }
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("test-browser/1.0".into()),
    }
}

fn add_person(
    db: &TestDb,
    tenant: &str,
    name: &str,
    email: Option<&str>,
    phone: Option<&str>,
    dob: Option<&str>,
) -> String {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{}", &id[id.len() - 8..])),
            persons::email.eq(email),
            persons::phone.eq(phone),
            persons::date_of_birth.eq(dob.map(|d| d.parse::<chrono::NaiveDate>().unwrap())),
            persons::never_publish.eq(false),
            persons::custom_fields_json.eq("{}"),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

/// An image asset 200 x 100 whose thumbnail (100 x 50, stored encrypted) is a gradient.
fn add_asset(state: &Deps, db: &TestDb, tenant: &str, filename: &str) -> String {
    let mut img = image::RgbImage::new(100, 50);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = image::Rgb([(x * 2) as u8, (y * 4) as u8, 128]);
    }
    let mut jpeg = std::io::Cursor::new(Vec::new());
    img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let key = state
        .media()
        .unwrap()
        .blobs
        .put_new(tenant, jpeg.get_ref())
        .unwrap();
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(assets::table)
        .values((
            assets::id.eq(&id),
            assets::tenant_id.eq(tenant),
            assets::kind.eq("image"),
            assets::filename.eq(filename),
            assets::mime.eq("image/jpeg"),
            assets::size_bytes.eq(1000_i64),
            assets::sha256.eq("ab".repeat(32)),
            assets::blob_key.eq("none"),
            assets::thumb_blob_key.eq(Some(key)),
            assets::width.eq(Some(200)),
            assets::height.eq(Some(100)),
            assets::metadata_json.eq("{}"),
            assets::current_version.eq(1),
            assets::created_at.eq(now),
            assets::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

fn add_face(
    db: &TestDb,
    tenant: &str,
    asset: &str,
    person: Option<&str>,
    status: &str,
    b: [f64; 4],
) -> String {
    let id = db::new_id();
    diesel::insert_into(faces::table)
        .values((
            faces::id.eq(&id),
            faces::tenant_id.eq(tenant),
            faces::asset_id.eq(asset),
            faces::source.eq("detected"),
            faces::status.eq(status),
            faces::person_id.eq(person),
            faces::box_x1.eq(b[0]),
            faces::box_y1.eq(b[1]),
            faces::box_x2.eq(b[2]),
            faces::box_y2.eq(b[3]),
            faces::identifiable.eq(true),
            faces::template_enrolled.eq(false),
            faces::created_at.eq(db::now()),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

async fn template(env: &Env, face_matching: bool) -> String {
    let t = consent_templates::create_template(
        &env.ctx(),
        TemplateInput {
            name: "Event photos".into(),
            title: "Photos of the spring fair".into(),
            body_markdown: "We would like to publish **photos** of you.".into(),
            language: "en".into(),
            scopes: vec![
                Scope {
                    channel: "web".into(),
                    mandatory: true,
                    label: Some("Our website".into()),
                },
                Scope {
                    channel: "print".into(),
                    mandatory: false,
                    label: None,
                },
            ],
            face_matching_text: face_matching
                .then(|| "Find me in future photos by face matching".into()),
            validity_days: Some(365),
            legal_character: LegalCharacter::GdprConsent,
            after_signing_text: "Thank you for signing!".into(),
        },
    )
    .await
    .unwrap();
    t.id
}

fn request(person_ids: &[&str], template_id: &str, asset_ids: &[&str]) -> NewSigningRequests {
    NewSigningRequests {
        person_ids: person_ids.iter().map(|s| s.to_string()).collect(),
        template_id: template_id.into(),
        channel: None,
        language: None,
        asset_ids: asset_ids.iter().map(|s| s.to_string()).collect(),
        purpose: Purpose::Sign,
        renews_agreement_id: None,
    }
}

/// The link's token (the last path segment of the first link under `/{kind}/`).
fn token_in(mail: &crate::common::mail::Mail, kind: &str) -> String {
    let prefix = format!("{BASE}/{kind}/");
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {kind} link in {:?}", mail.text));
    link[prefix.len()..].to_string()
}

/// The 6-digit code in a mail.
fn code_in(mail: &crate::common::mail::Mail) -> String {
    mail.text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {:?}", mail.text))
        .to_string()
}

fn wrong(code: &str) -> String {
    let d = (code.as_bytes()[0] - b'0' + 1) % 10;
    format!("{d}{}", &code[1..])
}

fn gone_code(e: ControlError) -> &'static str {
    match e {
        ControlError::Gone { code, .. } => code,
        other => panic!("expected 410, got {other:?}"),
    }
}

fn invalid(e: ControlError) -> (String, String) {
    match e {
        ControlError::Invalid { field, message } => (field, message),
        other => panic!("expected 400, got {other:?}"),
    }
}

fn choose(scopes: &[&str], face_matching: bool) -> SignChoices {
    SignChoices {
        accepted_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        face_matching,
        guardian: None,
    }
}

/// The compliance status of `asset` for `channel` on `date` through REST (an editor).
async fn compliance<S>(app: &S, token: &str, asset: &str, channel: &str, date: &str) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let resp = test::call_service(
        app,
        TestRequest::get()
            .uri(&format!("/api/v1/assets/{asset}/compliance?date={date}"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = test::read_body_json(resp).await;
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["channel"] == channel)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

db_test!(signing_bulk_create_with_failures, |db: TestDb| async move {
    let env = Env::new(&db);
    let other = fixture(&db, "other");
    let tpl = template(&env, false).await;
    let kari = add_person(&db, env.t(), "Kari", Some("kari@example.org"), None, None);
    let ola = add_person(&db, env.t(), "Ola", None, Some("+4670123456"), None);
    let nobody = add_person(&db, env.t(), "Nobody", None, None, None);
    let gone = add_person(&db, env.t(), "Gone", Some("gone@example.org"), None, None);
    diesel::update(persons::table.filter(persons::id.eq(&gone)))
        .set(persons::deleted_at.eq(Some(db::now())))
        .execute(&mut db.conn())
        .unwrap();
    let foreign = add_person(
        &db,
        &other.tenant_id,
        "Foreign",
        Some("f@example.org"),
        None,
        None,
    );

    let out = signing::create_requests(
        &env.ctx(),
        request(&[&kari, &ola, &nobody, &gone, &foreign, &kari], &tpl, &[]),
    )
    .await
    .unwrap();
    assert_eq!(out.created.len(), 2, "{out:?}");
    let by_person = |p: &str| out.created.iter().find(|r| r.person_id == p).unwrap();
    let k = by_person(&kari);
    assert_eq!(k.channel.as_str(), "email");
    assert_eq!(k.destination, "k***@example.org");
    assert_eq!(k.status, RequestStatus::Sent);
    assert_eq!(k.version, 1);
    assert_eq!(k.template_title, "Photos of the spring fair");
    assert_eq!(k.language, "en");
    assert!(k.valid_until.is_some());
    assert_eq!(by_person(&ola).channel.as_str(), "sms");
    let codes: Vec<(&str, &str)> = out
        .failed
        .iter()
        .map(|f| (f.person_id.as_str(), f.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (nobody.as_str(), "no_contact"),
            (gone.as_str(), "not_found"),
            (foreign.as_str(), "not_found")
        ]
    );
    // Only e-mail asked: Ola has none.
    let mut r = request(&[&ola], &tpl, &[]);
    r.channel = Some(likeness_control::service::outbox::Channel::Email);
    let out2 = signing::create_requests(&env.ctx(), r).await.unwrap();
    assert_eq!(out2.failed[0].code, "no_email");
    // A bad language, an unknown template, an unknown file: the whole call is refused.
    let mut r = request(&[&kari], &tpl, &[]);
    r.language = Some("de".into());
    assert_eq!(
        invalid(signing::create_requests(&env.ctx(), r).await.unwrap_err()).0,
        "language"
    );
    let r = request(&[&kari], "no-such-template", &[]);
    assert!(signing::create_requests(&env.ctx(), r).await.is_err());
    let r = request(&[&kari], &tpl, &["no-such-file"]);
    assert_eq!(
        invalid(signing::create_requests(&env.ctx(), r).await.unwrap_err()).0,
        "asset_ids"
    );

    // A renewal names an agreement of that person; the agreement only with purpose renewal.
    let mut r = request(&[&kari], &tpl, &[]);
    r.renews_agreement_id = Some("no-such-agreement".into());
    assert_eq!(
        invalid(
            signing::create_requests(&env.ctx(), r.clone())
                .await
                .unwrap_err()
        )
        .0,
        "renews_agreement_id"
    );
    r.purpose = Purpose::Renewal;
    let out3 = signing::create_requests(&env.ctx(), r).await.unwrap();
    assert!(out3.created.is_empty());
    assert_eq!(out3.failed[0].code, "agreement_not_found");

    // The link's mail, with who asks, what, and the link.
    let mail = env.mail("kari@example.org", 1).await;
    assert!(mail.subject.contains("acme"), "{}", mail.subject);
    assert!(
        mail.text.contains("Photos of the spring fair"),
        "{}",
        mail.text
    );
    let token = token_in(&mail, "sign");
    assert_eq!(token.len(), 43);
    // The version is pinned and marked sent (immutable from now on).
    let v = consent_templates::get_template(&env.ctx(), tpl.clone())
        .await
        .unwrap();
    assert!(v.versions[0].first_sent_at.is_some());

    // Listing: filters by status and person; names shown.
    let all = signing::list_requests(
        &env.ctx(),
        RequestFilter {
            status: None,
            person_id: None,
            page: likeness_control::service::pagination::Page {
                page: 1,
                per_page: 50,
            },
        },
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 2);
    let mine = signing::list_requests(
        &env.ctx(),
        RequestFilter {
            status: Some(RequestStatus::Sent),
            person_id: Some(kari.clone()),
            page: likeness_control::service::pagination::Page {
                page: 1,
                per_page: 50,
            },
        },
    )
    .await
    .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].person_name, "Kari");
});

db_test!(signing_whole_flow_and_withdrawal, |db: TestDb| async move {
    let env = Env::new(&db);
    let tpl = template(&env, true).await;
    let kari = add_person(
        &db,
        env.t(),
        "Kari Nordmann",
        Some("kari@example.org"),
        None,
        Some("1990-01-01"),
    );
    let ola = add_person(&db, env.t(), "Ola", Some("ola@example.org"), None, None);
    let solo = add_asset(&env.state, &db, env.t(), "kari.jpg");
    add_face(
        &db,
        env.t(),
        &solo,
        Some(&kari),
        "confirmed",
        [10.0, 10.0, 60.0, 60.0],
    );
    let group = add_asset(&env.state, &db, env.t(), "group.jpg");
    add_face(
        &db,
        env.t(),
        &group,
        Some(&kari),
        "confirmed",
        [10.0, 10.0, 60.0, 60.0],
    );
    add_face(
        &db,
        env.t(),
        &group,
        Some(&ola),
        "confirmed",
        [120.0, 10.0, 180.0, 70.0],
    );
    let app = test::init_service(
        actix_web::App::new()
            .configure(|c| likeness_control::app::configure_app(c, env.state.clone())),
    )
    .await;
    let po = token_for(&db, env.t(), env.f.user(Role::PrivacyOfficer).0);
    let editor = token_for(&db, env.t(), env.f.user(Role::Editor).0);
    for a in [&solo, &group] {
        let resp = test::call_service(
            &app,
            TestRequest::put()
                .uri(&format!("/api/v1/assets/{a}/legal-basis"))
                .insert_header(("Authorization", format!("Bearer {po}")))
                .set_json(json!({"legal_basis": "consent"}))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let today = env.today();
    assert_eq!(
        compliance(&app, &editor, &solo, "web", &today).await,
        "missing_consent"
    );

    let out = signing::create_requests(&env.ctx(), request(&[&kari], &tpl, &[&solo, &group]))
        .await
        .unwrap();
    let req_id = out.created[0].id.clone();
    let mail = env.mail("kari@example.org", 1).await;
    let token = token_in(&mail, "sign");

    // The page: the exact text, scopes, validity, who asks, how to withdraw; opened.
    let page = signing::open_request(&env.state, &token, client())
        .await
        .unwrap();
    assert_eq!(page.request_id, req_id);
    assert_eq!(page.tenant_name, "acme");
    assert!(
        page.body_html.contains("<strong>photos</strong>"),
        "{}",
        page.body_html
    );
    assert_eq!(page.scopes.len(), 2);
    assert!(page.face_matching_text.is_some());
    assert!(!page.needs_guardian);
    assert_eq!(page.step, SignStep::Choose);
    assert!(page.withdraw_hint.contains("withdraw"));
    assert_eq!(page.asset_ids, vec![solo.clone(), group.clone()]);
    let r = signing::get_request(&env.ctx(), req_id.clone())
        .await
        .unwrap();
    assert_eq!(r.status, RequestStatus::Opened);
    assert!(r.opened_at.is_some());

    // Previews: only the request's files; Ola's face pixelated, Kari's not.
    let jpeg = signing::asset_preview(&env.state, &token, &group, client())
        .await
        .unwrap();
    let img = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (100, 50));
    // Ola's box is (60..90, 5..35) in the thumbnail (with its margin 54..96, 0..41, in blocks
    // of 7 pixels): a flat block; Kari's keeps its gradient.
    let (a, b) = (img.get_pixel(62, 8)[0], img.get_pixel(66, 12)[0]);
    assert!((i32::from(a) - i32::from(b)).abs() <= 6, "{a} {b}");
    let (a, b) = (img.get_pixel(10, 12)[0], img.get_pixel(25, 12)[0]);
    assert!((i32::from(b) - i32::from(a)) > 15, "{a} {b}");
    let other_asset = add_asset(&env.state, &db, env.t(), "other.jpg");
    assert!(matches!(
        signing::asset_preview(&env.state, &token, &other_asset, client()).await,
        Err(ControlError::NotFound(_))
    ));

    // Choices: a mandatory scope, unknown scopes refused.
    let e = signing::submit_choices(&env.state, &token, choose(&["print"], false), client())
        .await
        .unwrap_err();
    let (field, msg) = invalid(e);
    assert_eq!(field, "accepted_scopes");
    assert!(msg.contains("web") && msg.contains("Our website"), "{msg}");
    let e = signing::submit_choices(&env.state, &token, choose(&["web", "tv"], false), client())
        .await
        .unwrap_err();
    assert!(invalid(e).1.contains("tv"));
    let page = signing::submit_choices(&env.state, &token, choose(&["web"], true), client())
        .await
        .unwrap();
    let SignStep::EnterCode {
        destination_masked,
        guardian_destination_masked,
        ..
    } = &page.step
    else {
        panic!("{:?}", page.step)
    };
    assert_eq!(destination_masked, "k***@example.org");
    assert_eq!(guardian_destination_masked, &None);
    let code_mail = env.mail("kari@example.org", 2).await;
    let code = code_in(&code_mail);
    // The code's body is blanked in the outbox once delivered.
    // A wrong code counts; a malformed one is refused without counting.
    let e = signing::confirm_code(&env.state, &token, &wrong(&code), None, client())
        .await
        .unwrap_err();
    assert_eq!(
        invalid(e),
        (
            "code".to_string(),
            "wrong code; 4 attempts left".to_string()
        )
    );
    let e = signing::confirm_code(&env.state, &token, "12ab", None, client())
        .await
        .unwrap_err();
    assert_eq!(invalid(e).0, "code");
    // Changing the choices keeps the code that is still valid (no new mail).
    signing::submit_choices(
        &env.state,
        &token,
        choose(&["web", "print"], true),
        client(),
    )
    .await
    .unwrap();

    let done = signing::confirm_code(&env.state, &token, &code, None, client())
        .await
        .unwrap();
    assert_eq!(done.after_signing_text, "Thank you for signing!");
    assert_eq!(done.language, "en");
    // The agreement, digital, covering face matching; the request signed.
    let r = signing::get_request(&env.ctx(), req_id.clone())
        .await
        .unwrap();
    assert_eq!(r.status, RequestStatus::Signed);
    assert_eq!(r.agreement_id.as_deref(), Some(done.agreement_id.as_str()));
    let a =
        likeness_control::service::agreements::get_consent(&env.ctx(), done.agreement_id.clone())
            .await
            .unwrap();
    assert_eq!(a.channels, vec!["web".to_string(), "print".to_string()]);
    assert!(a.covers_face_matching);
    assert!(!a.signed_by_guardian);
    assert_eq!(a.source.as_str(), "digital");
    assert!(a.text_sha256.is_some());
    // The file is approved at once.
    assert_eq!(
        compliance(&app, &editor, &solo, "web", &today).await,
        "approved"
    );
    assert_eq!(
        compliance(&app, &editor, &solo, "print", &today).await,
        "approved"
    );

    // Replayed link: used.
    assert_eq!(
        gone_code(
            signing::open_request(&env.state, &token, client())
                .await
                .unwrap_err()
        ),
        "link_used"
    );
    assert_eq!(
        gone_code(
            signing::confirm_code(&env.state, &token, &code, None, client())
                .await
                .unwrap_err()
        ),
        "link_used"
    );

    // The receipt by mail; it verifies against the public key; a changed byte does not.
    let receipt_mail = env.mail("kari@example.org", 3).await;
    let rt = token_in(&receipt_mail, "receipt");
    assert_eq!(rt, done.receipt_token);
    let rp = signing::open_receipt(&env.state, &rt, client())
        .await
        .unwrap();
    assert_eq!(rp.title, "Photos of the spring fair");
    assert_eq!(rp.scopes_accepted, vec!["web", "print"]);
    assert!(rp.scopes_declined.is_empty());
    assert!(rp.face_matching_offered && rp.face_matching_accepted);
    assert_eq!(rp.signer_name, "Kari Nordmann");
    assert_eq!(rp.withdrawal, WithdrawStep::Offer);
    let keys = vec![env.state.signer().unwrap().public_key()];
    likeness_control_domain::evidence::verify_receipt(&rp.receipt, &keys).unwrap();
    let rec = &rp.receipt.record;
    assert_eq!(rec["template"]["version"], 1);
    assert_eq!(rec["request"]["id"], req_id.as_str());
    assert_eq!(rec["code"]["attempts"], 1);
    assert_eq!(rec["client"]["ip"], "203.0.113.7");
    assert!(rec["age_at_signing"].as_u64().is_some());
    assert_eq!(rec["guardian"], Value::Null);
    assert_eq!(rec["assets"].as_array().unwrap().len(), 2);
    assert!(!rec.to_string().contains("kari@example.org"));
    let mut tampered = rp.receipt.clone();
    tampered.record["scopes_accepted"] = json!(["web", "print", "tv"]);
    assert!(likeness_control_domain::evidence::verify_receipt(&tampered, &keys).is_err());
    let text = signing::receipt_json(&env.state, &rt, client())
        .await
        .unwrap();
    let parsed = likeness_control_domain::evidence::parse_receipt(&text).unwrap();
    likeness_control_domain::evidence::verify_receipt(&parsed, &keys).unwrap();
    let pdf = signing::receipt_pdf(&env.state, &rt, client())
        .await
        .unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    assert!(matches!(
        signing::open_receipt(&env.state, "not-a-receipt", client()).await,
        Err(ControlError::NotFound(_))
    ));
    {
        let mut c = db.conn();
        let ev = events::list(&mut c, env.t(), Some(events::CONSENT_SIGNED)).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].subject_id, done.agreement_id);
    }

    // Withdrawal through the receipt: one code, done.
    let rp = signing::start_withdrawal(&env.state, &rt, client())
        .await
        .unwrap();
    assert!(matches!(rp.withdrawal, WithdrawStep::EnterCode { .. }));
    let wmail = env.mail("kari@example.org", 4).await;
    let wcode = code_in(&wmail);
    let e = signing::confirm_withdrawal(&env.state, &rt, &wrong(&wcode), client())
        .await
        .unwrap_err();
    assert!(invalid(e).1.contains("wrong code"));
    // Five wrong codes lock that code (not the withdrawal): a new code is sent on request.
    for _ in 0..3 {
        signing::confirm_withdrawal(&env.state, &rt, &wrong(&wcode), client())
            .await
            .unwrap_err();
    }
    for c in [wrong(&wcode), wcode.clone()] {
        assert_eq!(
            gone_code(
                signing::confirm_withdrawal(&env.state, &rt, &c, client())
                    .await
                    .unwrap_err()
            ),
            "code_locked"
        );
    }
    env.advance(61);
    let rp = signing::start_withdrawal(&env.state, &rt, client())
        .await
        .unwrap();
    assert!(matches!(rp.withdrawal, WithdrawStep::EnterCode { .. }));
    let wcode = code_in(&env.mail("kari@example.org", 5).await);
    let rp = signing::confirm_withdrawal(&env.state, &rt, &wcode, client())
        .await
        .unwrap();
    assert_eq!(rp.withdrawal, WithdrawStep::Done);
    assert!(rp.withdrawn_at.is_some());
    let after = compliance(&app, &editor, &solo, "web", &today).await;
    assert!(
        after == "withdrawn" || after == "missing_consent",
        "{after}"
    );
    // Face matching ended: the templates' removal is queued.
    let kinds: Vec<String> = jobs_t::table
        .filter(jobs_t::tenant_id.eq(env.t()))
        .select(jobs_t::kind)
        .load(&mut db.conn())
        .unwrap();
    assert!(
        kinds.contains(&"remove_person_templates".to_string()),
        "{kinds:?}"
    );
    {
        let mut c = db.conn();
        let ev = events::list(&mut c, env.t(), Some(events::CONSENT_WITHDRAWN)).unwrap();
        assert_eq!(ev.len(), 1);
        let chain = evidence::verify_chain(&mut c, env.t()).unwrap();
        assert!(chain.ok(), "{chain:?}");
        assert_eq!(chain.checked, 2);
    }
    // The confirmation mail; a second withdrawal is a no-op.
    let confirm = env.mail("kari@example.org", 6).await;
    assert!(confirm.subject.contains("withdrawn"), "{}", confirm.subject);
    let rp = signing::confirm_withdrawal(&env.state, &rt, &wcode, client())
        .await
        .unwrap();
    assert_eq!(rp.withdrawal, WithdrawStep::Done);
});

db_test!(signing_bad_paths, |db: TestDb| async move {
    let env = Env::new(&db);
    let tpl = template(&env, false).await;
    let p = add_person(&db, env.t(), "Per", Some("per@example.org"), None, None);
    let q = add_person(&db, env.t(), "Quinn", Some("quinn@example.org"), None, None);
    let out = signing::create_requests(&env.ctx(), request(&[&p, &q], &tpl, &[]))
        .await
        .unwrap();
    let req_p = out
        .created
        .iter()
        .find(|r| r.person_id == p)
        .unwrap()
        .id
        .clone();
    let req_q = out
        .created
        .iter()
        .find(|r| r.person_id == q)
        .unwrap()
        .id
        .clone();
    let token = token_in(&env.mail("per@example.org", 1).await, "sign");
    let token_q = token_in(&env.mail("quinn@example.org", 1).await, "sign");

    // Guessed and malformed tokens: the same 404, saying nothing.
    for guess in [
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        "abc".to_string(),
        format!("{}x", &token[..42]),
        String::new(),
    ] {
        match signing::open_request(&env.state, &guess, client()).await {
            Err(ControlError::NotFound(what)) => assert_eq!(what, "signing link"),
            other => panic!("{other:?}"),
        }
    }

    // Resend throttle: a code just sent; then after the pause; at most max_code_sends.
    signing::open_request(&env.state, &token, client())
        .await
        .unwrap();
    signing::submit_choices(&env.state, &token, choose(&["web"], false), client())
        .await
        .unwrap();
    match signing::resend_code(&env.state, &token, client()).await {
        Err(ControlError::RateLimited {
            code,
            retry_after_secs,
            ..
        }) => {
            assert_eq!(code, "code_resend_too_soon");
            assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}");
        }
        other => panic!("{other:?}"),
    }
    // The code expires after 10 minutes: code_expired, a new one may be asked.
    let first = code_in(&env.mail("per@example.org", 2).await);
    env.advance(11 * 60);
    assert_eq!(
        gone_code(
            signing::confirm_code(&env.state, &token, &first, None, client())
                .await
                .unwrap_err()
        ),
        "code_expired"
    );
    for n in 3..=5 {
        signing::resend_code(&env.state, &token, client())
            .await
            .unwrap();
        env.mail("per@example.org", n).await;
        env.advance(61);
    }
    signing::resend_code(&env.state, &token, client())
        .await
        .unwrap();
    let latest = code_in(&env.mail("per@example.org", 6).await);
    env.advance(61);
    match signing::resend_code(&env.state, &token, client()).await {
        Err(ControlError::RateLimited { code, .. }) => assert_eq!(code, "too_many_codes"),
        other => panic!("{other:?}"),
    }

    // Wrong code five times: the request locks, even the right code is refused then.
    for left in (1..=4).rev() {
        let e = signing::confirm_code(&env.state, &token, &wrong(&latest), None, client())
            .await
            .unwrap_err();
        let (_, msg) = invalid(e);
        let s = if left == 1 { "" } else { "s" };
        assert_eq!(msg, format!("wrong code; {left} attempt{s} left"));
    }
    assert_eq!(
        gone_code(
            signing::confirm_code(&env.state, &token, &wrong(&latest), None, client())
                .await
                .unwrap_err()
        ),
        "request_locked"
    );
    assert_eq!(
        gone_code(
            signing::confirm_code(&env.state, &token, &latest, None, client())
                .await
                .unwrap_err()
        ),
        "request_locked"
    );
    assert_eq!(
        gone_code(
            signing::open_request(&env.state, &token, client())
                .await
                .unwrap_err()
        ),
        "request_locked"
    );
    let r = signing::get_request(&env.ctx(), req_p.clone())
        .await
        .unwrap();
    assert_eq!(r.status, RequestStatus::Locked);
    // Staff resend: a new link; the old one is dead.
    let r = signing::resend_request(&env.ctx(), req_p.clone())
        .await
        .unwrap();
    assert_eq!(r.status, RequestStatus::Sent);
    let token2 = token_in(&env.mail("per@example.org", 7).await, "sign");
    assert_ne!(token2, token);
    assert!(matches!(
        signing::open_request(&env.state, &token, client()).await,
        Err(ControlError::NotFound(_))
    ));
    signing::open_request(&env.state, &token2, client())
        .await
        .unwrap();

    // Revoked: the link says so; revoking twice is a conflict.
    let r = signing::revoke_request(&env.ctx(), req_q.clone(), "sent by mistake".into())
        .await
        .unwrap();
    assert_eq!(r.status, RequestStatus::Revoked);
    assert_eq!(r.revoke_reason.as_deref(), Some("sent by mistake"));
    assert_eq!(
        gone_code(
            signing::open_request(&env.state, &token_q, client())
                .await
                .unwrap_err()
        ),
        "link_revoked"
    );
    assert!(matches!(
        signing::revoke_request(&env.ctx(), req_q.clone(), "again".into()).await,
        Err(ControlError::Conflict { .. })
    ));
    assert_eq!(
        invalid(
            signing::revoke_request(&env.ctx(), req_p.clone(), "  ".into())
                .await
                .unwrap_err()
        )
        .0,
        "reason"
    );

    // Expired: past the link's time; listed as expired.
    env.advance(15 * 24 * 3600);
    assert_eq!(
        gone_code(
            signing::open_request(&env.state, &token2, client())
                .await
                .unwrap_err()
        ),
        "link_expired"
    );
    let expired = signing::list_requests(
        &env.ctx(),
        RequestFilter {
            status: Some(RequestStatus::Expired),
            person_id: None,
            page: likeness_control::service::pagination::Page {
                page: 1,
                per_page: 50,
            },
        },
    )
    .await
    .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, req_p);
    // The codes were stored hashed only.
    let hashes: Vec<String> = likeness_control::schema::otp_challenges::table
        .select(likeness_control::schema::otp_challenges::code_hash)
        .load(&mut db.conn())
        .unwrap();
    assert!(hashes.iter().all(|h| h.len() == 64 && *h != latest));
    let stored: Vec<String> = signing_requests::table
        .select(signing_requests::token_sha256)
        .load(&mut db.conn())
        .unwrap();
    assert!(!stored.contains(&token2));
});

db_test!(signing_minor_needs_guardian, |db: TestDb| async move {
    let env = Env::new(&db);
    let tpl = template(&env, true).await;
    // Twelve years old today.
    let dob = env.state.clock.today() - chrono::Days::new(12 * 366);
    let kid = add_person(
        &db,
        env.t(),
        "Kid",
        Some("kid@example.org"),
        None,
        Some(&dob.to_string()),
    );
    signing::create_requests(&env.ctx(), request(&[&kid], &tpl, &[]))
        .await
        .unwrap();
    let token = token_in(&env.mail("kid@example.org", 1).await, "sign");
    let page = signing::open_request(&env.state, &token, client())
        .await
        .unwrap();
    assert!(page.needs_guardian);
    // Without a guardian: refused, naming it.
    let e = signing::submit_choices(&env.state, &token, choose(&["web"], true), client())
        .await
        .unwrap_err();
    assert_eq!(invalid(e).0, "guardian");
    let mut ch = choose(&["web"], true);
    ch.guardian = Some(GuardianInput {
        name: "Mum".into(),
        relation: "parent".into(),
        contact: "not an address".into(),
    });
    let e = signing::submit_choices(&env.state, &token, ch.clone(), client())
        .await
        .unwrap_err();
    assert_eq!(invalid(e).0, "guardian.contact");
    ch.guardian = Some(GuardianInput {
        name: "Mum".into(),
        relation: "parent".into(),
        contact: "mum@example.org".into(),
    });
    let page = signing::submit_choices(&env.state, &token, ch, client())
        .await
        .unwrap();
    let SignStep::EnterCode {
        guardian_destination_masked,
        ..
    } = &page.step
    else {
        panic!("{:?}", page.step)
    };
    assert_eq!(
        guardian_destination_masked.as_deref(),
        Some("m***@example.org")
    );
    let code = code_in(&env.mail("kid@example.org", 2).await);
    let gmail = env.mail("mum@example.org", 1).await;
    assert!(gmail.text.contains("guardian"), "{}", gmail.text);
    let gcode = code_in(&gmail);
    // The guardian's code is required, and checked.
    let e = signing::confirm_code(&env.state, &token, &code, None, client())
        .await
        .unwrap_err();
    assert_eq!(invalid(e).0, "guardian_code");
    let e = signing::confirm_code(&env.state, &token, &code, Some(&wrong(&gcode)), client())
        .await
        .unwrap_err();
    assert_eq!(invalid(e).0, "guardian_code");
    let done = signing::confirm_code(&env.state, &token, &code, Some(&gcode), client())
        .await
        .unwrap();
    let a = likeness_control::service::agreements::get_consent(&env.ctx(), done.agreement_id)
        .await
        .unwrap();
    assert!(a.signed_by_guardian);
    let rp = signing::open_receipt(&env.state, &done.receipt_token, client())
        .await
        .unwrap();
    let rec = &rp.receipt.record;
    assert_eq!(rec["age_at_signing"], 12);
    assert_eq!(rec["guardian"]["name"], "Mum");
    assert_eq!(rec["guardian"]["relation"], "parent");
    assert_eq!(rec["guardian"]["attempts"], 1);
    assert!(rec["guardian"]["verified_at"].is_string());
    assert!(!rec.to_string().contains("mum@example.org"));
});

db_test!(signing_rest_api, |db: TestDb| async move {
    let env = Env::new(&db);
    let tpl = template(&env, false).await;
    let p = add_person(&db, env.t(), "Per", Some("per@example.org"), None, None);
    let app = test::init_service(
        actix_web::App::new()
            .configure(|c| likeness_control::app::configure_app(c, env.state.clone())),
    )
    .await;
    let po = token_for(&db, env.t(), env.f.user(Role::PrivacyOfficer).0);
    let editor = token_for(&db, env.t(), env.f.user(Role::Editor).0);
    let auth = |t: &str| ("Authorization", format!("Bearer {t}"));
    let body = json!({"person_ids": [p, "nobody"], "template_id": tpl});

    // An editor may not send requests.
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/signing-requests")
            .insert_header(auth(&editor))
            .set_json(&body)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/signing-requests")
            .insert_header(auth(&po))
            .set_json(json!({"person_ids": [p], "template_id": tpl, "language": "de"}))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/signing-requests")
            .insert_header(auth(&po))
            .set_json(&body)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = test::read_body_json(resp).await;
    assert_eq!(v["created"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["failed"][0]["code"], "not_found");
    let id = v["created"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(v["created"][0]["status"], "sent");
    assert_eq!(v["created"][0]["destination"], "p***@example.org");

    // Read: an editor sees them.
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/signing-requests?status=sent")
            .insert_header(auth(&editor))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = test::read_body_json(resp).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/signing-requests?status=bogus")
            .insert_header(auth(&editor))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/signing-requests/{id}"))
            .insert_header(auth(&editor))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Resend (new link), then revoke; the revoked link's page is 410.
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/signing-requests/{id}/resend"))
            .insert_header(auth(&po))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    env.mail("per@example.org", 2).await;
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/signing-requests/{id}/revoke"))
            .insert_header(auth(&editor))
            .set_json(json!({"reason": "no"}))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/signing-requests/{id}/revoke"))
            .insert_header(auth(&po))
            .set_json(json!({"reason": "wrong person"}))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = test::read_body_json(resp).await;
    assert_eq!(v["status"], "revoked");
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/signing-requests/{id}/resend"))
            .insert_header(auth(&po))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let newest = env.smtp.messages_to("per@example.org");
    let token = token_in(newest.last().unwrap(), "sign");
    assert_eq!(
        gone_code(
            signing::open_request(&env.state, &token, client())
                .await
                .unwrap_err()
        ),
        "link_revoked"
    );
});

/// The hidden `csrf` field of a public page (the double-submit cookie has the same value).
fn csrf_of(html: &str) -> String {
    let key = "name=\"csrf\" value=\"";
    let i = html
        .find(key)
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        + key.len();
    html[i..].split('"').next().unwrap().to_string()
}

/// A form POST to a public page with its CSRF value (cookie and field).
fn form_post(path: &str, csrf: &str, fields: &[(&str, &str)]) -> TestRequest {
    let mut body = format!("csrf={csrf}");
    for (k, v) in fields {
        body.push_str(&format!("&{k}={v}"));
    }
    TestRequest::post()
        .uri(path)
        .cookie(actix_web::cookie::Cookie::new("lk_pcsrf", csrf.to_string()))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .insert_header(("User-Agent", "journey-browser/2.0"))
        .set_payload(body)
}

async fn html<S>(app: &S, req: TestRequest) -> (StatusCode, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let resp = test::call_service(app, req.to_request()).await;
    let st = resp.status();
    let body = test::read_body(resp).await;
    (st, String::from_utf8_lossy(&body).into_owned())
}

db_test!(signing_http_journey_in_process, |db: TestDb| async move {
    // Request -> mail -> page -> code -> approved file -> receipt verifies -> withdrawal link
    // -> code -> file no longer allowed, templates' removal queued; all through HTTP.
    let env = Env::new(&db);
    let tpl = template(&env, true).await;
    let kari = add_person(
        &db,
        env.t(),
        "Kari Nordmann",
        Some("kari@example.org"),
        None,
        Some("1990-01-01"),
    );
    let solo = add_asset(&env.state, &db, env.t(), "kari.jpg");
    add_face(
        &db,
        env.t(),
        &solo,
        Some(&kari),
        "confirmed",
        [10.0, 10.0, 60.0, 60.0],
    );
    let app = test::init_service(
        actix_web::App::new()
            .configure(|c| likeness_control::app::configure_app(c, env.state.clone())),
    )
    .await;
    let po = token_for(&db, env.t(), env.f.user(Role::PrivacyOfficer).0);
    let editor = token_for(&db, env.t(), env.f.user(Role::Editor).0);
    let auth = |t: &str| ("Authorization", format!("Bearer {t}"));
    let resp = test::call_service(
        &app,
        TestRequest::put()
            .uri(&format!("/api/v1/assets/{solo}/legal-basis"))
            .insert_header(auth(&po))
            .set_json(json!({"legal_basis": "consent"}))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let today = env.today();
    assert_ne!(
        compliance(&app, &editor, &solo, "web", &today).await,
        "approved"
    );

    // Staff ask through REST.
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/signing-requests")
            .insert_header(auth(&po))
            .set_json(json!({"person_ids": [kari], "template_id": tpl, "asset_ids": [solo]}))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    // The person follows the link from the mail.
    let mail = env.mail("kari@example.org", 1).await;
    let token = token_in(&mail, "sign");
    let (st, page) = html(&app, TestRequest::get().uri(&format!("/sign/{token}"))).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert!(page.contains("Photos of the spring fair"));
    let csrf = csrf_of(&page);
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/sign/{token}/files/{solo}"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // A form without the CSRF cookie is refused.
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri(&format!("/sign/{token}"))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .set_payload(format!("csrf={csrf}&scope=web"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (st, page) = html(
        &app,
        form_post(
            &format!("/sign/{token}"),
            &csrf,
            &[("scope", "web"), ("face_matching", "yes")],
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert!(page.contains("name=\"code\""), "{page}");
    let code = code_in(&env.mail("kari@example.org", 2).await);
    let (st, page) = html(
        &app,
        form_post(
            &format!("/sign/{token}/code"),
            &csrf,
            &[("code", &wrong(&code))],
        ),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{page}");
    let (st, page) = html(
        &app,
        form_post(&format!("/sign/{token}/code"), &csrf, &[("code", &code)]),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert!(page.contains("Thank you for signing!"), "{page}");
    // The file is approved at once.
    assert_eq!(
        compliance(&app, &editor, &solo, "web", &today).await,
        "approved"
    );
    // The link is used up.
    let (st, _) = html(&app, TestRequest::get().uri(&format!("/sign/{token}"))).await;
    assert_eq!(st, StatusCode::GONE);

    // The receipt from the mail verifies through the published endpoint; a changed byte fails.
    let rt = token_in(&env.mail("kari@example.org", 3).await, "receipt");
    assert!(page.contains(&format!("/receipt/{rt}")));
    let (st, rpage) = html(&app, TestRequest::get().uri(&format!("/receipt/{rt}"))).await;
    assert_eq!(st, StatusCode::OK, "{rpage}");
    let (st, json_text) = html(
        &app,
        TestRequest::get().uri(&format!("/receipt/{rt}/receipt.json")),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let receipt: Value = serde_json::from_str(&json_text).unwrap();
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/evidence/verify")
            .set_json(&receipt)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = test::read_body_json(resp).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(
        receipt["record"]["client"]["user_agent"],
        "journey-browser/2.0"
    );
    let mut tampered = receipt.clone();
    tampered["record"]["valid_until"] = json!("2099-12-31");
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/evidence/verify")
            .set_json(&tampered)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/receipt/{rt}/receipt.pdf"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Withdrawal: the receipt's link, one code, done.
    let csrf = csrf_of(&rpage);
    let (st, page) = html(
        &app,
        form_post(&format!("/receipt/{rt}/withdraw"), &csrf, &[]),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    let wcode = code_in(&env.mail("kari@example.org", 4).await);
    let (st, page) = html(
        &app,
        form_post(
            &format!("/receipt/{rt}/withdraw/confirm"),
            &csrf,
            &[("code", &wcode)],
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert_ne!(
        compliance(&app, &editor, &solo, "web", &today).await,
        "approved"
    );
    let kinds: Vec<String> = jobs_t::table
        .filter(jobs_t::tenant_id.eq(env.t()))
        .select(jobs_t::kind)
        .load(&mut db.conn())
        .unwrap();
    assert!(
        kinds.contains(&"remove_person_templates".to_string()),
        "{kinds:?}"
    );
    // Staff see it: the agreement is withdrawn, and the events are there for the CMS.
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/persons/{kari}/agreements"))
            .insert_header(auth(&editor))
            .to_request(),
    )
    .await;
    let v: Value = test::read_body_json(resp).await;
    assert!(v[0]["withdrawn_at"].is_string(), "{v}");
    let mut c = db.conn();
    assert_eq!(
        events::list(&mut c, env.t(), Some(events::CONSENT_WITHDRAWN))
            .unwrap()
            .len(),
        1
    );
});

/// The token of the first `{BASE}/{kind}/` link in `text`.
fn token_in_text(text: &str, kind: &str) -> String {
    let prefix = format!("{BASE}/{kind}/");
    let link = crate::common::mail::links(text)
        .into_iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {kind} link in {text:?}"));
    link[prefix.len()..].to_string()
}

db_test!(signing_by_sms_in_swedish, |db: TestDb| async move {
    let env = Env::new(&db);
    let gw = crate::common::mail::SmsGateway::start();
    let mut cfg = config(&db, &env.smtp);
    cfg.sms.url = gw.url();
    cfg.sms.timeout_ms = 3_000;
    let state = web::Data::new(Deps::with_clock(
        db.pool.clone(),
        cfg,
        Clock::manual(db::now()),
    ));
    let ctx = Ctx::system(state.clone().into_inner(), env.t(), "test");
    let tpl = template(&env, false).await;
    let phone = "+46701234567";
    let p = add_person(&db, env.t(), "Sven", None, Some(phone), None);
    let mut r = request(&[&p], &tpl, &[]);
    r.language = Some("sv".into());
    let out = signing::create_requests(&ctx, r).await.unwrap();
    assert_eq!(out.created[0].channel.as_str(), "sms");
    assert_eq!(out.created[0].destination, "+46*******67");
    assert_eq!(out.created[0].language, "sv");
    let run = || async { jobs::run_until_idle(&state, "sms-test").await.unwrap() };
    run().await;
    let sms = gw.wait_for_nth(phone, 1, WAIT).await;
    assert!(sms.text.contains("ber om ditt samtycke"), "{}", sms.text);
    let token = token_in_text(&sms.text, "sign");
    let page = signing::open_request(&state, &token, client())
        .await
        .unwrap();
    assert_eq!(page.language, "sv");
    assert!(
        page.withdraw_hint.contains("återkalla"),
        "{}",
        page.withdraw_hint
    );
    let page = signing::submit_choices(&state, &token, choose(&["web"], false), client())
        .await
        .unwrap();
    let SignStep::EnterCode {
        destination_masked, ..
    } = &page.step
    else {
        panic!("{:?}", page.step)
    };
    assert_eq!(destination_masked, "+46*******67");
    run().await;
    let sms = gw.wait_for_nth(phone, 2, WAIT).await;
    assert!(sms.text.contains("Din kod"), "{}", sms.text);
    let code = sms
        .text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_string();
    let done = signing::confirm_code(&state, &token, &code, None, client())
        .await
        .unwrap();
    assert_eq!(done.language, "sv");
    run().await;
    let sms = gw.wait_for_nth(phone, 3, WAIT).await;
    assert_eq!(token_in_text(&sms.text, "receipt"), done.receipt_token);
    assert!(sms.text.contains("kvitto"), "{}", sms.text);
});

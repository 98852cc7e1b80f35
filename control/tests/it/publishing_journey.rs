//! (PUBLISHING) The "done when", through HTTP as a CMS and a person use it, on SQLite
//! and PostgreSQL: the real `likeness-control serve` (its job workers delivering mail and
//! webhooks, its allowed-set follower), a real SMTP server (aiosmtpd) and a real webhook
//! receiver that verifies every request with the Standard Webhooks reference library.
//!
//! The CMS (an `integration` user's API token) checks a file, gets its delivery URL, embeds
//! it (200, an image) and reports the placement; staff share the file with a link; the person
//! signs through their link, then withdraws through the receipt's link with one code: the
//! delivery URL answers 451, the share link stops serving the file, and the verified
//! `asset.hidden` webhook arrives, each within a second. The person's publications show where
//! their face was used.
//!
//! Time (in process, a manual clock): a consent ending in ten days is in the digest e-mail
//! (real SMTP) the day it enters the notice period, and the day after its last day the
//! scheduler's tick hides its file: the delivery URL answers 451 and the receiver verifies
//! `asset.hidden` and `consent.expired`.

use std::time::{Duration, Instant};

use chrono::Days;
use likeness_control_media::testing::data_dir;
use serde_json::{Value, json};

use crate::common::journey::{Answer, Database, Http, PATIENCE, Server, code_in};
use crate::common::mail::MailServer;
use crate::common::webhook_receiver::Receiver;

const KARI: &str = "kari@example.org";
/// The target from a withdrawal to hidden (checked loosely here; measured by
/// bench/outbox.sh <backend> publishing).
const TARGET: Duration = Duration::from_secs(1);

fn id_of(a: &Answer, what: &str) -> String {
    assert!(
        a.status == 200 || a.status == 201,
        "{what}: {} {}",
        a.status,
        a.text()
    );
    a.json()["id"].as_str().unwrap().to_string()
}

/// Polls `f` every 5 ms until it is true; the time it took (fails after [`PATIENCE`]).
async fn until<F, Fut>(what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < PATIENCE, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The verified deliveries of `kind` about `asset` the receiver got.
fn verified(rx: &Receiver, kind: &str, asset: &str) -> Vec<Value> {
    rx.records()
        .into_iter()
        .filter(|r| r["verified"] == true && r["type"] == kind && r["data"]["asset_id"] == asset)
        .collect()
}

async fn journey(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new(postgres, dir.path());
    let smtp = MailServer::start();
    let mut rx = Receiver::start(dir.path());
    let server = Server::start(&db, dir.path(), &smtp, &[]).await;
    let (base, anon, staff) = (server.base.clone(), &server.anon, &server.staff);

    // The CMS: an integration user with its own token.
    let u = staff
        .post_json(
            "/api/v1/users",
            json!({"email": "cms@acme.test", "role": "integration", "display_name": "CMS"}),
        )
        .await;
    let cms_user = id_of(&u, "integration user");
    let t = staff
        .post_json(
            "/api/v1/tokens",
            json!({"name": "website", "user_id": cms_user}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text());
    let cms = Http {
        bearer: Some(t.json()["secret"].as_str().unwrap().to_string()),
        ..Http::new(&base)
    };
    // Its webhook endpoint.
    let w = staff
        .post_json(
            "/api/v1/webhooks",
            json!({"url": rx.url(), "description": "website",
                   "event_types": ["asset.hidden", "asset.allowed", "consent.signed",
                                   "consent.withdrawn"]}),
        )
        .await;
    assert_eq!(w.status, 201, "{}", w.text());
    let secret = w.json()["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    rx.configure(json!({ "secret": secret })).await;

    // A person, a photo of her (a face confirmed as her, consent as its legal basis).
    let person = id_of(
        &staff
            .post_json(
                "/api/v1/persons",
                json!({"name": "Kari Nordmann", "email": KARI}),
            )
            .await,
        "person",
    );
    let photo = std::fs::read(data_dir().join("photos/img1.jpg")).unwrap();
    let up = staff
        .send(
            staff
                .http
                .post(format!("{base}/api/v1/assets?filename=kari.jpg"))
                .header("content-type", "application/octet-stream")
                .body(photo),
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text());
    let asset = up.json()["asset"]["id"].as_str().unwrap().to_string();
    let face = id_of(
        &staff
            .post_json(
                &format!("/api/v1/assets/{asset}/faces"),
                json!({"box": [10.0, 10.0, 60.0, 80.0]}),
            )
            .await,
        "face",
    );
    let c = staff
        .post_json(
            &format!("/api/v1/faces/{face}/confirm"),
            json!({"person_id": person}),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.text());
    let lb = staff
        .put_json(
            &format!("/api/v1/assets/{asset}/legal-basis"),
            json!({"legal_basis": "consent"}),
        )
        .await;
    assert_eq!(lb.status, 200, "{}", lb.text());

    // Not allowed yet: the CMS hears why.
    let check = cms
        .get(&format!("/api/v1/assets/{asset}/use-check?channel=web"))
        .await;
    assert_eq!(check.status, 200, "{}", check.text());
    let v = check.json();
    assert_eq!(v["allowed"], false, "{v}");
    assert!(v["delivery_url"].is_null(), "{v}");

    // She signs through her link (web only).
    let template = id_of(
        &staff
            .post_json(
                "/api/v1/consent-templates",
                json!({
                    "name": "Spring fair", "title": "Photos of the spring fair",
                    "body_markdown": "We would like to publish photos of you.",
                    "language": "en",
                    "scopes": [{"channel": "web", "mandatory": true}, {"channel": "print"}],
                    "validity_days": 365, "legal_character": "gdpr_consent",
                    "after_signing_text": "Thank you."
                }),
            )
            .await,
        "template",
    );
    let r = staff
        .post_json(
            "/api/v1/signing-requests",
            json!({"person_ids": [person], "template_id": template, "asset_ids": [asset]}),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
    let link = smtp
        .wait_for(KARI, PATIENCE)
        .await
        .links()
        .into_iter()
        .find(|l| l.contains("/sign/"))
        .expect("a signing link");
    let page = anon.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let (cookie, csrf) = (page.cookie("lk_pcsrf").unwrap(), page.csrf());
    let p = anon
        .post_form(&link, &cookie, &format!("csrf={csrf}&scope=web"))
        .await;
    assert_eq!(p.status, 200, "{}", p.text());
    let code = code_in(&smtp.wait_for_nth(KARI, 2, PATIENCE).await.text);
    let p = anon
        .post_form(
            &format!("{link}/code"),
            &cookie,
            &format!("csrf={csrf}&code={code}"),
        )
        .await;
    assert!(p.status == 200 || p.status == 303, "{}", p.text());

    // The CMS: check, embed, report.
    let check = cms
        .get(&format!("/api/v1/assets/{asset}/use-check?channel=web"))
        .await;
    let v = check.json();
    assert_eq!(v["allowed"], true, "{v}");
    let delivery = v["delivery_url"].as_str().unwrap().to_string();
    let delivery_path = delivery
        .split_once("/d/")
        .map(|(_, p)| format!("/d/{p}"))
        .unwrap();
    assert!(
        delivery_path.starts_with(&format!("/d/acme/{asset}/web/")),
        "{delivery}"
    );
    let print = cms
        .get(&format!("/api/v1/assets/{asset}/use-check?channel=print"))
        .await
        .json();
    assert_eq!(print["allowed"], false, "print was declined: {print}");
    until("the delivery URL to serve the file", || async {
        anon.get(&delivery_path).await.status == 200
    })
    .await;
    let img = anon.get(&delivery_path).await;
    assert_eq!(img.header("content-type"), "image/jpeg");
    assert_eq!(&img.body[..2], &[0xff, 0xd8]);
    assert!(
        img.header("surrogate-key")
            .contains(&format!("asset-{asset}"))
    );
    let print_url = delivery_path.replace("/web/", "/print/");
    assert_eq!(
        anon.get(&print_url).await.status,
        451,
        "not allowed in print"
    );
    let placed = cms
        .post_json(
            "/api/v1/publications",
            json!({"asset_id": asset, "channel": "web",
                   "location": "https://www.acme.test/news/spring-fair"}),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.text());

    // Staff share the file; a visitor sees it.
    let today = chrono::Utc::now().date_naive();
    let share = staff
        .post_json(
            "/api/v1/shares",
            json!({"title": "Spring fair", "channel": "web", "asset_ids": [asset],
                   "expires_on": today + Days::new(30), "allow_download": false}),
        )
        .await;
    assert_eq!(share.status, 201, "{}", share.text());
    let share_url = share.json()["url"].as_str().unwrap().to_string();
    let share_path = share_url
        .split_once("/s/")
        .map(|(_, p)| format!("/s/{p}"))
        .unwrap();
    let shared_image = format!("{share_path}/{asset}/small.jpg");
    let portal = anon.get(&share_path).await;
    assert_eq!(portal.status, 200, "{}", portal.text());
    assert_eq!(anon.get(&shared_image).await.status, 200);

    // She withdraws through the receipt's link: one code.
    let receipt = smtp
        .wait_for_nth(KARI, 3, PATIENCE)
        .await
        .links()
        .into_iter()
        .find(|l| l.contains("/receipt/"))
        .expect("a receipt link");
    let rp = anon.get(&receipt).await;
    assert_eq!(rp.status, 200, "{}", rp.text());
    let (cookie, csrf) = (rp.cookie("lk_pcsrf").unwrap_or(cookie), rp.csrf());
    let wp = anon
        .post_form(
            &format!("{receipt}/withdraw"),
            &cookie,
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(wp.status, 200, "{}", wp.text());
    let wcode = code_in(&smtp.wait_for_nth(KARI, 4, PATIENCE).await.text);
    let t0 = Instant::now();
    let wd = anon
        .post_form(
            &format!("{receipt}/withdraw/confirm"),
            &cookie,
            &format!("csrf={csrf}&code={wcode}"),
        )
        .await;
    assert_eq!(wd.status, 200, "{}", wd.text());
    until("the delivery URL to answer 451", || async {
        anon.get(&delivery_path).await.status == 451
    })
    .await;
    let to_451 = t0.elapsed();
    until("the share link to stop serving the file", || async {
        anon.get(&shared_image).await.status != 200
    })
    .await;
    let to_share = t0.elapsed();
    until("the verified asset.hidden webhook", || async {
        !verified(&rx, "asset.hidden", &asset).is_empty()
    })
    .await;
    let to_webhook = t0.elapsed();
    eprintln!(
        "publishing journey: withdrawal -> 451 {to_451:?}, share {to_share:?}, webhook {to_webhook:?}"
    );
    // A generous bound for a loaded CI machine; bench/outbox.sh publishing measures the real
    // latency (p99 in milliseconds).
    for (what, took) in [
        ("451", to_451),
        ("share", to_share),
        ("webhook", to_webhook),
    ] {
        assert!(took < TARGET * 5, "{what} took {took:?}");
    }
    let gone = anon.get(&delivery_path).await;
    assert_eq!(gone.status, 451);
    assert!(!gone.text().contains("Kari"), "451 names nobody");
    assert_eq!(gone.header("cache-control"), "no-store");
    let hidden = verified(&rx, "asset.hidden", &asset);
    let web = hidden[0]["data"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "web")
        .cloned()
        .unwrap_or_else(|| panic!("{hidden:?}"));
    assert!(
        web["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "withdrawn"),
        "{web}"
    );
    // The events of the file came in order: allowed (signed), then hidden (withdrawn).
    let kinds: Vec<String> = rx
        .records()
        .into_iter()
        .filter(|r| r["verified"] == true && r["data"]["asset_id"] == asset)
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["asset.allowed", "asset.hidden"]);
    // consent.withdrawn is its own delivery and may arrive after asset.hidden: wait for it.
    until("the verified consent.withdrawn webhook", || async {
        rx.records()
            .into_iter()
            .filter(|r| r["verified"] == true)
            .any(|r| r["type"] == "consent.withdrawn")
    })
    .await;
    // Where her face was used.
    let pubs = staff
        .get(&format!("/api/v1/persons/{person}/publications"))
        .await;
    assert_eq!(pubs.status, 200, "{}", pubs.text());
    assert!(
        pubs.text()
            .contains("https://www.acme.test/news/spring-fair"),
        "{}",
        pubs.text()
    );
    drop(server);
}

mod a_cms_sees_a_withdrawn_file_hidden_everywhere_at_once {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::journey(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::journey(true).await;
    }
}

// ---- time alone -----------------------------------------------------------------------------

mod time_alone {
    use std::time::Duration;

    use actix_web::http::StatusCode;
    use actix_web::test::{self, TestRequest};
    use actix_web::web;
    use chrono::{Days, NaiveDateTime, TimeDelta};
    use likeness_control::Deps;
    use likeness_control::config::Config;
    use likeness_control::roles::Role;
    use likeness_control::service::{Clock, alerts, exposure, jobs, webhooks};
    use likeness_control_media::testing::data_dir;
    use serde_json::{Value, json};

    use crate::common::mail::MailServer;
    use crate::common::webhook_receiver::Receiver;
    use crate::common::*;

    const WAIT: Duration = Duration::from_secs(20);

    fn state(db: &TestDb, now: NaiveDateTime, smtp: &MailServer) -> web::Data<Deps> {
        let mut cfg = Config::default();
        cfg.database.url = db.url.clone();
        cfg.storage.dir = db.dir().join("blobs");
        cfg.signing.public_base_url = "https://likeness.example.org".into();
        cfg.signing.key_file = db.dir().join("evidence-signing.key");
        cfg.matcher.url = String::new();
        cfg.mail.smtp_url = smtp.smtp_url();
        cfg.mail.from = "Likeness <no-reply@likeness.test>".into();
        cfg.mail.timeout_ms = 3_000;
        cfg.alerts.digest_hour_utc = 7;
        cfg.webhooks.timeout_ms = 3_000;
        web::Data::new(Deps::with_clock(db.pool.clone(), cfg, Clock::manual(now)))
    }

    async fn call<S>(app: &S, req: TestRequest, token: &str) -> (StatusCode, Value)
    where
        S: actix_web::dev::Service<
                actix_http::Request,
                Response = actix_web::dev::ServiceResponse,
                Error = actix_web::Error,
            >,
    {
        let resp = test::call_service(
            app,
            req.insert_header(("Authorization", format!("Bearer {token}")))
                .to_request(),
        )
        .await;
        let status = resp.status();
        let bytes = test::read_body(resp).await;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn status_of<S>(app: &S, uri: &str) -> StatusCode
    where
        S: actix_web::dev::Service<
                actix_http::Request,
                Response = actix_web::dev::ServiceResponse,
                Error = actix_web::Error,
            >,
    {
        test::call_service(app, TestRequest::get().uri(uri).to_request())
            .await
            .status()
    }

    fn verified_kinds(rx: &Receiver, subject: &str) -> Vec<String> {
        rx.records()
            .into_iter()
            .filter(|r| r["verified"] == true && r["data"]["subject"]["id"] == subject)
            .map(|r| r["type"].as_str().unwrap().to_string())
            .collect()
    }

    /// Runs what the scheduler's tick and the workers would: recompute, alerts, mail, webhooks.
    async fn scheduler_runs(state: &web::Data<Deps>) {
        exposure::tick(state).await.unwrap();
        alerts::tick(state).await.unwrap();
        jobs::run_until_idle(state, "time-test").await.unwrap();
        webhooks::deliver_due(state).await.unwrap();
        state
            .allowed
            .poll(&state.pool, state.clock.now())
            .await
            .unwrap();
    }

    db_test!(
        a_consent_reaching_its_end_hides_its_file_after_the_digest_warned,
        |db: TestDb| async move {
            let smtp = MailServer::start();
            let mut rx = Receiver::start(db.dir());
            let start: NaiveDateTime = "2027-03-01T08:00:00".parse().unwrap();
            let state = state(&db, start, &smtp);
            let app = actix_web::test::init_service(
                actix_web::App::new()
                    .configure(|c| likeness_control::app::configure_app(c, state.clone())),
            )
            .await;
            let f = fixture(&db, "acme");
            let admin = token_for(&db, &f.tenant_id, f.user(Role::Admin).0);
            let (s, w) = call(
                &app,
                TestRequest::post().uri("/api/v1/webhooks").set_json(json!({
                    "url": rx.url(),
                    "event_types": ["asset.hidden", "asset.expiring", "consent.expired"]
                })),
                &admin,
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{w}");
            rx.configure(json!({"secret": w["secret"]})).await;

            // A person on a photo; her consent for the web ends 40 days from now.
            let (s, p) = call(
                &app,
                TestRequest::post()
                    .uri("/api/v1/persons")
                    .set_json(json!({"name": "Ines Berg", "email": "ines@example.org"})),
                &admin,
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{p}");
            let person = p["id"].as_str().unwrap().to_string();
            let photo = std::fs::read(data_dir().join("photos/img1.jpg")).unwrap();
            let (s, up) = call(
                &app,
                TestRequest::post()
                    .uri("/api/v1/assets?filename=ines.jpg")
                    .insert_header(("content-type", "application/octet-stream"))
                    .set_payload(photo),
                &admin,
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{up}");
            let asset = up["asset"]["id"].as_str().unwrap().to_string();
            let (s, face) = call(
                &app,
                TestRequest::post()
                    .uri(&format!("/api/v1/assets/{asset}/faces"))
                    .set_json(json!({"box": [10.0, 10.0, 60.0, 80.0]})),
                &admin,
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{face}");
            let (s, v) = call(
                &app,
                TestRequest::post()
                    .uri(&format!(
                        "/api/v1/faces/{}/confirm",
                        face["id"].as_str().unwrap()
                    ))
                    .set_json(json!({"person_id": person})),
                &admin,
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let (s, v) = call(
                &app,
                TestRequest::put()
                    .uri(&format!("/api/v1/assets/{asset}/legal-basis"))
                    .set_json(json!({"legal_basis": "consent"})),
                &admin,
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let last_day = start.date() + Days::new(40);
            let (s, a) = call(
                &app,
                TestRequest::post()
                    .uri(&format!("/api/v1/persons/{person}/agreements"))
                    .set_json(json!({"channels": ["web"], "valid_from": start.date(),
                        "valid_until": last_day, "source": "paper_scan"})),
                &admin,
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{a}");
            let agreement = a["id"].as_str().unwrap().to_string();
            let url = format!("/d/acme/{asset}/web/small.jpg");
            scheduler_runs(&state).await;
            assert_eq!(status_of(&app, &url).await, StatusCode::OK);
            assert!(
                smtp.messages_to("admin@acme.test").is_empty(),
                "no digest outside the notice period"
            );

            // 30 days before the last day (the tenant's notice period): the digest goes to
            // those who manage consents; the CMS hears `asset.expiring`; the file is served.
            state.clock.set(
                (last_day - TimeDelta::days(30))
                    .and_hms_opt(8, 0, 0)
                    .unwrap(),
            );
            scheduler_runs(&state).await;
            let digest = smtp.wait_for("admin@acme.test", WAIT).await;
            // The e-mail names her by pseudonym (names stay in the console).
            assert!(!digest.text.contains("Ines Berg"), "{}", digest.text);
            assert!(
                digest.text.contains(p["pseudonym"].as_str().unwrap()),
                "{}",
                digest.text
            );
            assert!(
                digest.text.contains(&last_day.to_string())
                    || digest
                        .text
                        .contains(&last_day.format("%-d %B %Y").to_string()),
                "{}",
                digest.text
            );
            assert!(verified_kinds(&rx, &asset).contains(&"asset.expiring".to_string()));
            assert_eq!(status_of(&app, &url).await, StatusCode::OK);

            // The last day: still served. The day after: hidden, and the CMS is told.
            state.clock.set(last_day.and_hms_opt(23, 59, 0).unwrap());
            assert_eq!(status_of(&app, &url).await, StatusCode::OK);
            state
                .clock
                .set((last_day + Days::new(1)).and_hms_opt(0, 0, 30).unwrap());
            assert_eq!(
                status_of(&app, &url).await,
                StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
                "the date is checked in memory before any tick"
            );
            scheduler_runs(&state).await;
            assert_eq!(
                status_of(&app, &url).await,
                StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS
            );
            let kinds = verified_kinds(&rx, &asset);
            assert_eq!(kinds, vec!["asset.expiring", "asset.hidden"], "{kinds:?}");
            let hidden = rx
                .records()
                .into_iter()
                .find(|r| r["type"] == "asset.hidden")
                .unwrap();
            assert_eq!(
                hidden["data"]["channels"][0]["status"], "expired",
                "{hidden}"
            );
            assert_eq!(verified_kinds(&rx, &agreement), vec!["consent.expired"]);
        }
    );
}

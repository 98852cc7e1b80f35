//! SIGNING / outbox: messages written in the caller's transaction and delivered by the job system
//! into a real SMTP server (aiosmtpd) and a recording HTTP SMS gateway, on SQLite and
//! PostgreSQL: delivery, the SMS body template, a server that is down and comes back, the
//! dead-letter state and a retry by hand, delivering twice sending once, secret bodies blanked,
//! and the REST API with its permission.

use std::time::Duration;

use crate::common::mail::{MailServer, SmsGateway, parse_mail};
use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::{audit_log, jobs as jobs_t, outbox as outbox_t};
use likeness_control::service::Clock;
use likeness_control::service::jobs;
use likeness_control::service::outbox::{self, Channel, MessageStatus, OutgoingMessage};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn config(db: &TestDb) -> Config {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.mail.from = "Likeness Test <no-reply@likeness.test>".into();
    cfg.mail.timeout_ms = 3_000;
    cfg.sms.timeout_ms = 3_000;
    cfg
}

fn deps(db: &TestDb, cfg: Config) -> web::Data<Deps> {
    let clock = Clock::manual(db::now());
    web::Data::new(Deps::with_clock(db.pool.clone(), cfg, clock))
}

fn email(to: &str, purpose: &str) -> OutgoingMessage {
    OutgoingMessage {
        channel: Channel::Email,
        to: to.into(),
        subject: Some("Please sign — Vänligen signera".into()),
        text: "Hello,\nopen https://consent.test/sign/tok123 to sign.\n".into(),
        html: Some(
            "<p>Hello, <a href=\"https://consent.test/sign/tok123\">sign here</a></p>".into(),
        ),
        purpose: purpose.into(),
        related_id: Some("req-1".into()),
        secret: false,
    }
}

fn sms(to: &str, text: &str) -> OutgoingMessage {
    OutgoingMessage {
        channel: Channel::Sms,
        to: to.into(),
        subject: None,
        text: text.into(),
        html: None,
        purpose: "code".into(),
        related_id: Some("req-2".into()),
        secret: false,
    }
}

/// Enqueues `msg` in a write transaction (as a flow does), returns its id.
fn enqueue(state: &Deps, tenant: &str, msg: OutgoingMessage) -> String {
    let mut c = state.pool.get().unwrap();
    let now = state.clock.now();
    db::write_tx(&mut c, |c| outbox::enqueue(c, tenant, msg, now)).unwrap()
}

async fn run_jobs(state: &Deps) -> usize {
    jobs::run_until_idle(state, "outbox-test").await.unwrap()
}

/// Moves the manual clock past any backoff and runs the due jobs.
async fn later(state: &Deps) -> usize {
    state.clock.advance(chrono::TimeDelta::seconds(120));
    run_jobs(state).await
}

fn message(state: &Deps, tenant: &str, id: &str) -> outbox::MessageOut {
    let mut c = state.pool.get().unwrap();
    outbox::messages_for(&mut c, tenant, "req-1")
        .unwrap()
        .into_iter()
        .chain(outbox::messages_for(&mut c, tenant, "req-2").unwrap())
        .chain(outbox::messages_for(&mut c, tenant, "req-3").unwrap())
        .find(|m| m.id == id)
        .unwrap()
}

db_test!(
    outbox_mail_is_delivered_with_text_html_and_message_id,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let smtp = MailServer::start();
        let mut cfg = config(&db);
        cfg.mail.smtp_url = smtp.smtp_url();
        let state = deps(&db, cfg);
        let id = enqueue(
            &state,
            &f.tenant_id,
            email("jane@example.org", "signing_request"),
        );
        assert_eq!(
            message(&state, &f.tenant_id, &id).status,
            MessageStatus::Pending
        );
        assert_eq!(run_jobs(&state).await, 1);

        let mail = smtp.wait_for("jane@example.org", WAIT).await;
        assert_eq!(mail.subject, "Please sign — Vänligen signera");
        assert!(
            mail.from.contains("no-reply@likeness.test"),
            "{}",
            mail.from
        );
        assert_eq!(mail.message_id, format!("<{id}@likeness>"));
        assert_eq!(mail.outbox_id(), id);
        assert!(
            mail.text
                .contains("open https://consent.test/sign/tok123 to sign."),
            "{}",
            mail.text
        );
        assert!(mail.html.as_deref().unwrap().contains("sign here"));
        assert_eq!(
            mail.links(),
            vec!["https://consent.test/sign/tok123".to_string()]
        );

        let m = message(&state, &f.tenant_id, &id);
        assert_eq!(m.status, MessageStatus::Sent);
        assert_eq!(m.attempts, 1);
        assert!(m.sent_at.is_some());
        assert_eq!(m.last_error, None);
        assert_eq!(m.destination, "j***@example.org");
        // A plain-text mail (no HTML part) comes through too.
        let mut plain = email("kim@example.org", "receipt");
        plain.html = None;
        plain.related_id = Some("req-3".into());
        let id2 = enqueue(&state, &f.tenant_id, plain);
        run_jobs(&state).await;
        let mail = smtp.wait_for("kim@example.org", WAIT).await;
        assert_eq!(mail.html, None);
        assert!(mail.text.contains("https://consent.test/sign/tok123"));
        assert_eq!(
            message(&state, &f.tenant_id, &id2).status,
            MessageStatus::Sent
        );
    }
);

db_test!(
    outbox_enqueue_rolls_back_with_its_transaction,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let state = deps(&db, config(&db));
        let mut c = state.pool.get().unwrap();
        let now = state.clock.now();
        let r: Result<String, likeness_control::service::ControlError> =
            db::write_tx(&mut c, |c| {
                outbox::enqueue(c, &f.tenant_id, email("jane@example.org", "x"), now)?;
                Err(likeness_control::service::ControlError::Internal(
                    "the change failed".into(),
                ))
            });
        assert!(r.is_err());
        let n: i64 = outbox_t::table.count().get_result(&mut c).unwrap();
        let j: i64 = jobs_t::table
            .filter(jobs_t::kind.eq("deliver_message"))
            .count()
            .get_result(&mut c)
            .unwrap();
        assert_eq!((n, j), (0, 0), "no message and no job without the change");
    }
);

db_test!(
    outbox_sms_goes_through_the_gateway_with_the_body_template,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let gw = SmsGateway::start();
        let mut cfg = config(&db);
        cfg.sms.url = gw.url();
        cfg.sms.authorization = "Bearer gw-secret".into();
        cfg.sms.from = "Likeness".into();
        let state = deps(&db, cfg);
        let text = "Your code: 123456 \"quoted\" & {to}\nbye";
        let id = enqueue(&state, &f.tenant_id, sms("+46701234512", text));
        run_jobs(&state).await;
        let m = gw.wait_for("+46701234512", WAIT).await;
        assert_eq!(m.method, "POST");
        assert_eq!(m.text, text, "JSON-escaped then parsed back unchanged");
        assert_eq!(m.field("from").as_deref(), Some("Likeness"));
        assert_eq!(m.field("reference").as_deref(), Some(id.as_str()));
        assert_eq!(m.header("authorization"), Some("Bearer gw-secret"));
        assert_eq!(m.header("content-type"), Some("application/json"));
        let out = message(&state, &f.tenant_id, &id);
        assert_eq!(out.status, MessageStatus::Sent);
        assert_eq!(out.destination, "+46*******12");

        // A form-encoded provider with PUT.
        let mut cfg = config(&db);
        cfg.sms.url = gw.url();
        cfg.sms.method = "PUT".into();
        cfg.sms.content_type = "application/x-www-form-urlencoded".into();
        cfg.sms.body_template = "To={to}&Body={text}&Ref={message_id}".into();
        let state = deps(&db, cfg);
        let id = enqueue(
            &state,
            &f.tenant_id,
            sms("+31612345678", "Code 654321 & more=yes"),
        );
        run_jobs(&state).await;
        let end = std::time::Instant::now() + WAIT;
        let m = loop {
            if let Some(m) = gw.messages().into_iter().find(|x| x.method == "PUT") {
                break m;
            }
            assert!(std::time::Instant::now() < end, "no PUT at the gateway");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(m.method, "PUT");
        assert_eq!(m.field("To").as_deref(), Some("+31612345678"));
        assert_eq!(m.field("Body").as_deref(), Some("Code 654321 & more=yes"));
        assert_eq!(m.field("Ref").as_deref(), Some(id.as_str()));
    }
);

db_test!(
    outbox_smtp_down_keeps_the_message_until_it_is_back,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let mut smtp = MailServer::start();
        let mut cfg = config(&db);
        cfg.mail.smtp_url = smtp.smtp_url();
        let state = deps(&db, cfg);
        smtp.stop();
        let id = enqueue(
            &state,
            &f.tenant_id,
            email("jane@example.org", "signing_request"),
        );
        run_jobs(&state).await;
        let m = message(&state, &f.tenant_id, &id);
        assert_eq!(m.status, MessageStatus::Pending);
        assert_eq!(m.attempts, 1);
        assert!(
            m.last_error.as_deref().unwrap().contains("SMTP"),
            "{:?}",
            m.last_error
        );
        assert!(m.next_attempt_at > state.clock.now());
        // Not due again before its backoff.
        assert_eq!(run_jobs(&state).await, 0);
        later(&state).await;
        assert_eq!(message(&state, &f.tenant_id, &id).attempts, 2);

        smtp.start_again();
        later(&state).await;
        let m = message(&state, &f.tenant_id, &id);
        assert_eq!(m.status, MessageStatus::Sent);
        assert_eq!(m.attempts, 3);
        assert_eq!(m.last_error, None);
        smtp.wait_for("jane@example.org", WAIT).await;
        later(&state).await;
        assert_eq!(smtp.messages().len(), 1, "sent once");
    }
);

db_test!(
    outbox_unconfigured_channels_keep_messages_waiting,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let state = deps(&db, config(&db));
        let a = enqueue(&state, &f.tenant_id, email("jane@example.org", "x"));
        let b = enqueue(&state, &f.tenant_id, sms("+46701234512", "hi"));
        run_jobs(&state).await;
        later(&state).await;
        for (id, why) in [(a, "mail not configured"), (b, "sms not configured")] {
            let m = message(&state, &f.tenant_id, &id);
            assert_eq!(m.status, MessageStatus::Pending);
            assert_eq!(m.attempts, 0, "waiting is not an attempt");
            assert_eq!(m.last_error.as_deref(), Some(why));
        }
    }
);

db_test!(
    outbox_dead_after_max_attempts_then_retried_by_hand,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let gw = SmsGateway::start();
        gw.set_failing(true);
        let mut cfg = config(&db);
        cfg.sms.url = gw.url();
        cfg.outbox.max_attempts = 3;
        let state = deps(&db, cfg);
        let id = enqueue(&state, &f.tenant_id, sms("+46701234512", "Your link"));
        run_jobs(&state).await;
        later(&state).await;
        assert_eq!(
            message(&state, &f.tenant_id, &id).status,
            MessageStatus::Pending
        );
        later(&state).await;
        let m = message(&state, &f.tenant_id, &id);
        assert_eq!(m.status, MessageStatus::Dead);
        assert_eq!(m.attempts, 3);
        assert!(
            m.last_error.as_deref().unwrap().contains("503"),
            "{:?}",
            m.last_error
        );
        // Dead: no further attempts, the job is finished.
        assert_eq!(later(&state).await, 0);
        assert!(gw.messages().is_empty());

        gw.set_failing(false);
        let app = test::init_service(
            actix_web::App::new()
                .configure(|c| likeness_control::app::configure_app(c, state.clone())),
        )
        .await;
        let admin = bearer(&db, &f, Role::Admin);
        let (st, v) = call(
            &app,
            TestRequest::post().uri(&format!("/api/v1/outbox/{id}/retry")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "pending");
        assert_eq!(v["attempts"], 0);
        // The retry is audited.
        let audited: i64 = audit_log::table
            .filter(audit_log::action.eq("outbox.retry"))
            .filter(audit_log::object_id.eq(&id))
            .count()
            .get_result(&mut db.conn())
            .unwrap();
        assert_eq!(audited, 1);
        run_jobs(&state).await;
        gw.wait_for("+46701234512", WAIT).await;
        assert_eq!(
            message(&state, &f.tenant_id, &id).status,
            MessageStatus::Sent
        );
        // Sent: a retry is refused.
        let (st, v) = call(
            &app,
            TestRequest::post().uri(&format!("/api/v1/outbox/{id}/retry")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["error"]["code"], "message_sent");
    }
);

db_test!(
    outbox_delivering_twice_sends_once,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let smtp = MailServer::start();
        let mut cfg = config(&db);
        cfg.mail.smtp_url = smtp.smtp_url();
        let state = deps(&db, cfg);
        let id = enqueue(&state, &f.tenant_id, email("jane@example.org", "receipt"));
        run_jobs(&state).await;
        smtp.wait_for("jane@example.org", WAIT).await;
        // The job again (a worker that crashed after sending) and a second job for the same id.
        outbox::deliver(&state, &f.tenant_id, &id).await.unwrap();
        {
            let mut c = db.conn();
            let now = state.clock.now();
            db::write_tx(&mut c, |c| {
                jobs::enqueue_job_now(
                    c,
                    &f.tenant_id,
                    &likeness_control::service::job_kinds::DeliverMessage {
                        message_id: id.clone(),
                    },
                    now,
                )
            })
            .unwrap();
        }
        assert_eq!(run_jobs(&state).await, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1, "one mail for one message id");
        assert_eq!(message(&state, &f.tenant_id, &id).attempts, 1);
        // Another tenant's id is not delivered from this tenant.
        let g = fixture(&db, "other");
        outbox::deliver(&state, &g.tenant_id, &id).await.unwrap();
        assert_eq!(smtp.messages().len(), 1);
    }
);

db_test!(
    outbox_secret_bodies_are_blanked_once_delivered,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let gw = SmsGateway::start();
        let smtp = MailServer::start();
        let mut cfg = config(&db);
        cfg.sms.url = gw.url();
        cfg.mail.smtp_url = smtp.smtp_url();
        let state = deps(&db, cfg);
        let mut code = sms("+46701234512", "Your code is 918273");
        code.secret = true;
        let a = enqueue(&state, &f.tenant_id, code);
        let mut mail = email("jane@example.org", "code");
        mail.text = "Your code is 918273".into();
        mail.html = Some("<p>Your code is <b>918273</b></p>".into());
        mail.secret = true;
        let b = enqueue(&state, &f.tenant_id, mail);
        let kept = enqueue(&state, &f.tenant_id, email("kim@example.org", "receipt"));
        // Before delivery the body is there (it must be, to be sent).
        let body: String = outbox_t::table
            .find(&a)
            .select(outbox_t::body_text)
            .first(&mut db.conn())
            .unwrap();
        assert!(body.contains("918273"));
        run_jobs(&state).await;
        assert!(
            gw.wait_for("+46701234512", WAIT)
                .await
                .text
                .contains("918273")
        );
        assert!(
            smtp.wait_for("jane@example.org", WAIT)
                .await
                .text
                .contains("918273")
        );
        for id in [&a, &b] {
            let (text, html, subject, purpose): (String, Option<String>, Option<String>, String) =
                outbox_t::table
                    .find(id)
                    .select((
                        outbox_t::body_text,
                        outbox_t::body_html,
                        outbox_t::subject,
                        outbox_t::purpose,
                    ))
                    .first(&mut db.conn())
                    .unwrap();
            assert_eq!(text, "", "secret blanked");
            assert_eq!(html, None);
            assert_eq!(purpose, "code");
            if id == &b {
                assert!(subject.is_some(), "the subject is kept");
            }
        }
        let text: String = outbox_t::table
            .find(&kept)
            .select(outbox_t::body_text)
            .first(&mut db.conn())
            .unwrap();
        assert!(
            text.contains("tok123"),
            "a message that is not secret keeps its body"
        );
    }
);

fn bearer(db: &TestDb, f: &Fixture, role: Role) -> (&'static str, String) {
    (
        "Authorization",
        format!("Bearer {}", token_for(db, &f.tenant_id, f.user(role).0)),
    )
}

async fn call<S>(app: &S, req: TestRequest, auth: &(&'static str, String)) -> (StatusCode, Value)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let resp = test::call_service(app, req.insert_header(auth.clone()).to_request()).await;
    let status = resp.status();
    let bytes = test::read_body(resp).await;
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

db_test!(
    outbox_rest_lists_gets_and_retries_with_the_permission,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let g = fixture(&db, "other");
        let state = deps(&db, config(&db)); // nothing configured: messages stay pending
        let a = enqueue(
            &state,
            &f.tenant_id,
            email("jane@example.org", "signing_request"),
        );
        state.clock.advance(chrono::TimeDelta::seconds(1));
        let b = enqueue(
            &state,
            &f.tenant_id,
            sms("+46701234512", "secret text xyzzy-plugh"),
        );
        let theirs = enqueue(&state, &g.tenant_id, email("x@other.test", "receipt"));
        // One dead message.
        diesel::update(outbox_t::table.find(&a))
            .set(outbox_t::status.eq("dead"))
            .execute(&mut db.conn())
            .unwrap();
        let app = test::init_service(
            actix_web::App::new()
                .configure(|c| likeness_control::app::configure_app(c, state.clone())),
        )
        .await;
        let admin = bearer(&db, &f, Role::Admin);
        let officer = bearer(&db, &f, Role::PrivacyOfficer);

        let (st, v) = call(&app, TestRequest::get().uri("/api/v1/outbox"), &admin).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let ids: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![b.as_str(), a.as_str()],
            "newest first, own tenant only"
        );
        let body = v.to_string();
        assert!(!body.contains("xyzzy-plugh"), "no bodies in the API");
        assert!(!body.contains("jane@example.org"), "destinations masked");
        assert_eq!(v[0]["destination"], "+46*******12");
        assert_eq!(v[0]["channel"], "sms");

        let (st, v) = call(
            &app,
            TestRequest::get().uri("/api/v1/outbox?status=dead"),
            &officer,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["id"], a.as_str());
        let (_, v) = call(
            &app,
            TestRequest::get().uri("/api/v1/outbox?related_id=req-2"),
            &admin,
        )
        .await;
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["id"], b.as_str());
        let (_, v) = call(
            &app,
            TestRequest::get().uri("/api/v1/outbox?per_page=1&page=2"),
            &admin,
        )
        .await;
        assert_eq!(v[0]["id"], a.as_str());
        let (st, v) = call(
            &app,
            TestRequest::get().uri("/api/v1/outbox?status=bogus"),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

        let (st, v) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/outbox/{a}")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "dead");
        assert_eq!(v["purpose"], "signing_request");
        assert_eq!(v["related_id"], "req-1");
        let (st, _) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/outbox/{theirs}")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "another tenant's message");

        // Pending: a retry is refused; dead: put back.
        let (st, v) = call(
            &app,
            TestRequest::post().uri(&format!("/api/v1/outbox/{b}/retry")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["error"]["code"], "message_pending");

        // Without manage_consents: 403 everywhere (also before a bad query is looked at).
        for role in [Role::Viewer, Role::Editor] {
            let who = bearer(&db, &f, role);
            for req in [
                TestRequest::get().uri("/api/v1/outbox"),
                TestRequest::get().uri("/api/v1/outbox?status=bogus"),
                TestRequest::get().uri(&format!("/api/v1/outbox/{a}")),
                TestRequest::post().uri(&format!("/api/v1/outbox/{a}/retry")),
            ] {
                let (st, v) = call(&app, req, &who).await;
                assert_eq!(st, StatusCode::FORBIDDEN, "{role:?}: {v}");
            }
        }
        let (st, v) = call(
            &app,
            TestRequest::post().uri(&format!("/api/v1/outbox/{a}/retry")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "pending");
        // Unauthenticated.
        let resp =
            test::call_service(&app, TestRequest::get().uri("/api/v1/outbox").to_request()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
);

#[test]
fn outbox_mail_parser_reads_what_lettre_writes() {
    let raw = b"From: Likeness <no-reply@localhost>\r\nTo: jane@example.org\r\nSubject: =?utf-8?b?SGVqIETDpA==?=\r\nMessage-ID: <abc@likeness>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary=\"XyZ\"\r\n\r\n--XyZ\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nOpen https://x.test/sign/abc?l=3Dsv =\r\nnow.\r\n--XyZ\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPHA+aGk8L3A+\r\n--XyZ--\r\n";
    let m = parse_mail(raw);
    assert_eq!(m.subject, "Hej Dä");
    assert_eq!(m.to, "jane@example.org");
    assert_eq!(m.text, "Open https://x.test/sign/abc?l=sv now.");
    assert_eq!(m.html.as_deref(), Some("<p>hi</p>"));
    assert_eq!(m.outbox_id(), "abc");
    assert_eq!(m.links(), vec!["https://x.test/sign/abc?l=sv".to_string()]);
}

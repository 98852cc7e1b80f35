//! PUBLISHING / webhooks, on SQLite and PostgreSQL, delivered to a real receiver
//! (`deploy/webhook-receiver.py`) that verifies every request with the Standard Webhooks
//! reference library (`standardwebhooks` from PyPI, installed by `deploy/webhook-deps.sh`):
//! signatures verified, order per file kept while the first delivery fails, retries then dead,
//! redelivery, disabling after repeated failures, two dispatchers on one database sending each
//! delivery once, a staff withdrawal delivered as `consent.withdrawn`, and the REST API's
//! validation, tenant scoping and permission.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::audit_log;
use likeness_control::service::Clock;
use likeness_control::service::{events, webhooks};
use serde_json::{Value, json};

// ---- the receiver --------------------------------------------------------------------------

use crate::common::webhook_receiver::Receiver;

// ---- the app -------------------------------------------------------------------------------

fn config(db: &TestDb) -> Config {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.signing.key_file = db.dir().join("evidence-signing.key");
    cfg.matcher.url = String::new();
    cfg.webhooks.timeout_ms = 3_000;
    cfg
}

fn deps(db: &TestDb, cfg: Config) -> web::Data<Deps> {
    web::Data::new(Deps::with_clock(
        db.pool.clone(),
        cfg,
        Clock::manual(db::now()),
    ))
}

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
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, v)
}

macro_rules! app {
    ($state:expr) => {
        test::init_service(
            actix_web::App::new()
                .configure(|c| likeness_control::app::configure_app(c, $state.clone())),
        )
        .await
    };
}

/// Records an event in a write transaction (as a flow does); returns its id.
fn event(state: &Deps, tenant: &str, kind: &str, subject: &str, n: u32) -> String {
    let mut c = state.pool.get().unwrap();
    let now = state.clock.now();
    db::write_tx(&mut c, |c| {
        events::record(
            c,
            tenant,
            kind,
            "asset",
            subject,
            json!({"asset_id": subject, "n": n}),
            now,
        )
    })
    .unwrap()
}

/// Creates an endpoint through the API; returns (id, secret).
async fn endpoint<S>(
    app: &S,
    auth: &(&'static str, String),
    url: &str,
    types: Value,
) -> (String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let (st, v) = call(
        app,
        TestRequest::post()
            .uri("/api/v1/webhooks")
            .set_json(json!({"url": url, "description": "CMS", "event_types": types})),
        auth,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    (
        v["endpoint"]["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

/// Moves the manual clock past any backoff.
fn later(state: &Deps) {
    state.clock.advance(chrono::TimeDelta::hours(2));
}

// ---- the tests -----------------------------------------------------------------------------

db_test!(
    webhooks_signature_verified_by_the_real_receiver,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let state = deps(&db, config(&db));
        let app = app!(state);
        let admin = bearer(&db, &f, Role::Admin);
        let mut rx = Receiver::start(db.dir());
        let (id, secret) = endpoint(&app, &admin, &rx.url(), json!([])).await;
        assert!(secret.starts_with("whsec_"), "{secret}");
        rx.configure(json!({"secret": secret})).await;

        let ev = event(&state, &f.tenant_id, "asset.hidden", "asset-1", 1);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        assert_eq!(
            webhooks::deliver_due(&state).await.unwrap(),
            0,
            "delivered once"
        );
        let recs = rx.records();
        assert_eq!(recs.len(), 1, "{recs:?}");
        let r = &recs[0];
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["webhook_id"], format!("msg_{ev}"));
        assert_eq!(r["type"], "asset.hidden");
        assert_eq!(r["data"]["asset_id"], "asset-1");
        assert_eq!(r["data"]["tenant"], "acme");
        assert_eq!(
            r["data"]["subject"],
            json!({"type": "asset", "id": "asset-1"})
        );
        assert_eq!(r["user_agent"], "Likeness-Webhooks/1");

        // The log: delivered, one attempt answered 204.
        let (st, page) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}/deliveries")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 1);
        let d = &page["items"][0];
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["last_status_code"], 204);
        let seq = d["seq"].as_i64().unwrap();
        let (st, detail) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}/deliveries/{seq}")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{detail}");
        assert_eq!(detail["attempts"].as_array().unwrap().len(), 1);
        assert_eq!(detail["attempts"][0]["status_code"], 204);
        assert_eq!(detail["payload"]["type"], "asset.hidden");

        // A test event, to this endpoint only.
        let (st, t) = call(
            &app,
            TestRequest::post().uri(&format!("/api/v1/webhooks/{id}/test")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{t}");
        assert_eq!(t["event_type"], "webhook.test");
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        let last = rx.records().pop().unwrap();
        assert_eq!(last["verified"], true, "{last}");
        assert_eq!(last["type"], "webhook.test");

        // A rotated secret: the receiver that still has the old one refuses (the signature is
        // really checked), and verifies again with the new one.
        let (st, rot) = call(
            &app,
            TestRequest::post().uri(&format!("/api/v1/webhooks/{id}/rotate-secret")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{rot}");
        let new_secret = rot["secret"].as_str().unwrap().to_string();
        assert_ne!(new_secret, secret);
        event(&state, &f.tenant_id, "asset.allowed", "asset-2", 2);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        let last = rx.records().pop().unwrap();
        assert_eq!(last["verified"], false, "{last}");
        assert_eq!(last["answered"], 401);
        rx.configure(json!({"secret": new_secret})).await;
        later(&state);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        let last = rx.records().pop().unwrap();
        assert_eq!(last["verified"], true, "{last}");
        assert_eq!(last["type"], "asset.allowed");
        // The secret is never in the audit log.
        let details: Vec<String> = audit_log::table
            .select(audit_log::detail_json)
            .load(&mut db.conn())
            .unwrap();
        assert!(
            details
                .iter()
                .all(|d| !d.contains(&secret) && !d.contains(&new_secret))
        );
    }
);

db_test!(
    webhooks_keep_order_per_file_when_the_first_delivery_fails,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let state = deps(&db, config(&db));
        let app = app!(state);
        let admin = bearer(&db, &f, Role::Admin);
        let mut rx = Receiver::start(db.dir());
        let (_, secret) = endpoint(&app, &admin, &rx.url(), json!([])).await;
        rx.configure(json!({"secret": secret, "status": 500})).await;

        let a1 = event(&state, &f.tenant_id, "asset.hidden", "file-a", 1);
        let a2 = event(&state, &f.tenant_id, "asset.allowed", "file-a", 2);
        let a3 = event(&state, &f.tenant_id, "asset.hidden", "file-a", 3);
        let b1 = event(&state, &f.tenant_id, "asset.hidden", "file-b", 1);
        // The heads of both files go out; a2 and a3 wait behind the failing a1.
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 2);
        let ids: Vec<String> = rx
            .records()
            .iter()
            .map(|r| r["webhook_id"].as_str().unwrap().to_string())
            .collect();
        assert!(ids.contains(&format!("msg_{a1}")) && ids.contains(&format!("msg_{b1}")));
        assert_eq!(ids.len(), 2, "{ids:?}");
        // Not due before the backoff, and a2 still waits.
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 0);
        later(&state);
        assert_eq!(
            webhooks::deliver_due(&state).await.unwrap(),
            2,
            "a1 and b1 again"
        );
        assert_eq!(rx.records().len(), 4);
        assert!(rx.delivered().is_empty());

        rx.configure(json!({"status": 204})).await;
        later(&state);
        for _ in 0..10 {
            if webhooks::deliver_due(&state).await.unwrap() == 0 {
                break;
            }
        }
        let delivered = rx.delivered();
        let of_a: Vec<String> = delivered
            .iter()
            .filter(|m| **m != format!("msg_{b1}"))
            .cloned()
            .collect();
        assert_eq!(
            of_a,
            vec![
                format!("msg_{a1}"),
                format!("msg_{a2}"),
                format!("msg_{a3}")
            ],
            "file-a in order"
        );
        assert!(delivered.contains(&format!("msg_{b1}")));
        // Each message arrived verified exactly once.
        assert_eq!(delivered.len(), 4);
        // a2 was never sent before a1 was delivered.
        let recs = rx.records();
        let first_a2 = recs
            .iter()
            .position(|r| r["webhook_id"] == format!("msg_{a2}"))
            .unwrap();
        let a1_ok = recs
            .iter()
            .position(|r| r["webhook_id"] == format!("msg_{a1}") && r["answered"] == 204)
            .unwrap();
        assert!(a1_ok < first_a2);
    }
);

db_test!(
    webhooks_retry_then_dead_then_redeliver,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let mut cfg = config(&db);
        cfg.webhooks.max_attempts = 3;
        let state = deps(&db, cfg);
        let app = app!(state);
        let admin = bearer(&db, &f, Role::Admin);
        let mut rx = Receiver::start(db.dir());
        let (id, secret) = endpoint(&app, &admin, &rx.url(), json!(["asset.hidden"])).await;
        rx.configure(json!({"secret": secret, "status": 500})).await;

        // Not subscribed: nothing queued.
        event(&state, &f.tenant_id, "consent.signed", "file-a", 0);
        let e1 = event(&state, &f.tenant_id, "asset.hidden", "file-a", 1);
        // Attempt 1: the receiver is down (no answer at all).
        rx.stop();
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        rx.start_again();
        // Attempts 2 and 3: 500.
        later(&state);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        later(&state);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        later(&state);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 0, "dead");
        let (_, page) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}/deliveries?status=dead")),
            &admin,
        )
        .await;
        assert_eq!(page["total"], 1, "{page}");
        let d = &page["items"][0];
        assert_eq!(d["message_id"], format!("msg_{e1}"));
        assert_eq!(d["attempts"], 3);
        assert_eq!(d["last_status_code"], 500);
        let seq = d["seq"].as_i64().unwrap();
        let (_, detail) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}/deliveries/{seq}")),
            &admin,
        )
        .await;
        let attempts = detail["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 3, "{detail}");
        assert!(attempts[0]["status_code"].is_null());
        assert!(
            attempts[0]["error"]
                .as_str()
                .unwrap()
                .contains("request failed"),
            "{detail}"
        );
        assert_eq!(attempts[1]["status_code"], 500);
        assert!(
            attempts[2]["response_excerpt"]
                .as_str()
                .unwrap()
                .contains("500")
        );

        // A dead delivery does not hold back the next of its file.
        rx.configure(json!({"status": 204})).await;
        let e2 = event(&state, &f.tenant_id, "asset.hidden", "file-a", 2);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        assert_eq!(rx.delivered(), vec![format!("msg_{e2}")]);

        // Redelivered by hand: the same message id, verified.
        let (st, r) = call(
            &app,
            TestRequest::post().uri(&format!("/api/v1/webhooks/{id}/deliveries/{seq}/redeliver")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{r}");
        assert_eq!(r["status"], "pending");
        assert_eq!(r["attempts"], 0);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        assert_eq!(
            rx.delivered(),
            vec![format!("msg_{e2}"), format!("msg_{e1}")]
        );
        let (_, detail) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}/deliveries/{seq}")),
            &admin,
        )
        .await;
        assert_eq!(detail["delivery"]["status"], "delivered");
        assert_eq!(detail["attempts"].as_array().unwrap().len(), 4);
        // Unknown delivery numbers.
        for uri in [
            format!("/api/v1/webhooks/{id}/deliveries/999999"),
            format!("/api/v1/webhooks/{id}/deliveries/abc"),
        ] {
            let (st, _) = call(&app, TestRequest::get().uri(&uri), &admin).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{uri}");
        }
    }
);

db_test!(
    webhooks_endpoint_disabled_after_repeated_failures,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let mut cfg = config(&db);
        cfg.webhooks.disable_after_failures = 3;
        let state = deps(&db, cfg);
        let app = app!(state);
        let admin = bearer(&db, &f, Role::Admin);
        let mut rx = Receiver::start(db.dir());
        let (id, secret) = endpoint(&app, &admin, &rx.url(), json!([])).await;
        rx.configure(json!({"secret": secret, "status": 503})).await;
        let e1 = event(&state, &f.tenant_id, "asset.hidden", "file-a", 1);
        let e2 = event(&state, &f.tenant_id, "asset.hidden", "file-b", 1);
        // Three failing rounds (two requests each: the second failure of a round falls in the
        // backoff the first opened and does not count again).
        for _ in 0..3 {
            assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 2);
            assert_eq!(
                webhooks::deliver_due(&state).await.unwrap(),
                0,
                "backing off"
            );
            later(&state);
        }
        let (_, ep) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}")),
            &admin,
        )
        .await;
        assert_eq!(ep["enabled"], false, "{ep}");
        assert!(
            ep["disabled_reason"]
                .as_str()
                .unwrap()
                .contains("3 consecutive failures"),
            "{ep}"
        );
        assert_eq!(ep["deliveries"]["pending"], 2);
        // Disabled: nothing sent, nothing new queued.
        later(&state);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 0);
        event(&state, &f.tenant_id, "asset.hidden", "file-c", 1);
        assert_eq!(rx.records().len(), 6);
        let disabled: i64 = audit_log::table
            .filter(audit_log::action.eq("webhook_endpoint.disable"))
            .count()
            .get_result(&mut db.conn())
            .unwrap();
        assert_eq!(disabled, 1);

        // Enabled again: the count is cleared and the waiting deliveries go out.
        rx.configure(json!({"status": 200})).await;
        let (st, ep) = call(
            &app,
            TestRequest::patch()
                .uri(&format!("/api/v1/webhooks/{id}"))
                .set_json(json!({"enabled": true})),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{ep}");
        assert_eq!(ep["consecutive_failures"], 0);
        assert!(ep["disabled_reason"].is_null());
        later(&state);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 2);
        let mut got = rx.delivered();
        got.sort();
        let mut want = vec![format!("msg_{e1}"), format!("msg_{e2}")];
        want.sort();
        assert_eq!(got, want);
        // Disabled by hand: the reason names who.
        let (_, ep) = call(
            &app,
            TestRequest::patch()
                .uri(&format!("/api/v1/webhooks/{id}"))
                .set_json(json!({"enabled": false})),
            &admin,
        )
        .await;
        assert!(
            ep["disabled_reason"]
                .as_str()
                .unwrap()
                .starts_with("disabled by "),
            "{ep}"
        );
    }
);

db_test!(
    webhooks_two_dispatchers_send_each_delivery_once,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let mut cfg = config(&db);
        cfg.webhooks.concurrency = 8;
        let one = deps(&db, cfg.clone());
        let two = deps(&db, cfg);
        let app = app!(one);
        let admin = bearer(&db, &f, Role::Admin);
        let mut rx = Receiver::start(db.dir());
        let (_, secret) = endpoint(&app, &admin, &rx.url(), json!([])).await;
        rx.configure(json!({"secret": secret, "delay_ms": 20}))
            .await;
        let mut want = Vec::new();
        for i in 0..30 {
            // 10 files, 3 events each.
            let ev = event(
                &one,
                &f.tenant_id,
                "asset.hidden",
                &format!("f{}", i % 10),
                i,
            );
            want.push(format!("msg_{ev}"));
        }
        for _ in 0..50 {
            let (a, b) = futures::join!(webhooks::deliver_due(&one), webhooks::deliver_due(&two));
            if a.unwrap() + b.unwrap() == 0 {
                break;
            }
        }
        let recs = rx.records();
        assert_eq!(recs.len(), 30, "each delivery sent once");
        let mut got = rx.delivered();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        // Order per file kept across both dispatchers.
        for file in 0..10u32 {
            let ns: Vec<u64> = recs
                .iter()
                .filter(|r| r["data"]["asset_id"] == format!("f{file}"))
                .map(|r| r["data"]["n"].as_u64().unwrap())
                .collect();
            let mut sorted = ns.clone();
            sorted.sort();
            assert_eq!(ns, sorted, "file f{file}");
        }
    }
);

db_test!(
    webhooks_staff_withdrawal_is_delivered_as_consent_withdrawn,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let state = deps(&db, config(&db));
        let app = app!(state);
        let admin = bearer(&db, &f, Role::Admin);
        let mut rx = Receiver::start(db.dir());
        let (_, secret) = endpoint(&app, &admin, &rx.url(), json!(["consent.withdrawn"])).await;
        rx.configure(json!({"secret": secret})).await;
        let (st, p) = call(
            &app,
            TestRequest::post()
                .uri("/api/v1/persons")
                .set_json(json!({"name": "Kari Nordmann", "date_of_birth": "1980-05-01"})),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{p}");
        let pid = p["id"].as_str().unwrap();
        let today = state.clock.now().date().to_string();
        let (st, a) = call(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/persons/{pid}/agreements"))
                .set_json(json!({"channels": ["web"], "valid_from": today, "source": "digital"})),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{a}");
        let aid = a["id"].as_str().unwrap();
        let (st, w) = call(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/agreements/{aid}/withdraw"))
                .set_json(json!({"reason": "asked by phone"})),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{w}");
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        let recs = rx.records();
        assert_eq!(recs.len(), 1, "{recs:?}");
        assert_eq!(recs[0]["verified"], true);
        assert_eq!(recs[0]["type"], "consent.withdrawn");
        assert_eq!(
            recs[0]["data"]["subject"],
            json!({"type": "agreement", "id": aid})
        );
        assert_eq!(recs[0]["data"]["person_id"], pid);
        assert_eq!(recs[0]["data"]["tenant"], "acme");
    }
);

db_test!(
    webhooks_api_validates_scopes_tenants_and_checks_the_permission,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let g = fixture(&db, "other");
        let state = deps(&db, config(&db));
        let app = app!(state);
        let admin = bearer(&db, &f, Role::Admin);
        let officer = bearer(&db, &f, Role::PrivacyOfficer);
        let editor = bearer(&db, &f, Role::Editor);
        let theirs = bearer(&db, &g, Role::Admin);

        // Bad input names the field.
        for (body, field) in [
            (json!({"url": "ftp://cms.example.org/x"}), "url"),
            (json!({"url": "https://u:p@cms.example.org/x"}), "url"),
            (json!({"url": "not a url"}), "url"),
            (
                json!({"url": "https://cms.example.org/x", "event_types": ["asset.eaten"]}),
                "event_types",
            ),
            (
                json!({"url": "https://cms.example.org/x", "description": "x".repeat(501)}),
                "description",
            ),
        ] {
            let (st, v) = call(
                &app,
                TestRequest::post().uri("/api/v1/webhooks").set_json(&body),
                &admin,
            )
            .await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
            assert!(
                v["error"]["message"].as_str().unwrap().starts_with(field),
                "{body}: {v}"
            );
        }
        let (st, v) = call(
            &app,
            TestRequest::post()
                .uri("/api/v1/webhooks")
                .set_json(json!({"url": "https://cms.example.org/hooks",
                    "event_types": ["asset.hidden", "asset.allowed"]})),
            &officer,
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let id = v["endpoint"]["id"].as_str().unwrap().to_string();
        assert_eq!(
            v["endpoint"]["event_types"],
            json!(["asset.allowed", "asset.hidden"])
        );
        let (st, v) = call(
            &app,
            TestRequest::patch()
                .uri(&format!("/api/v1/webhooks/{id}"))
                .set_json(json!({"url": "gopher://x"})),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().starts_with("url"));

        // Another tenant's endpoint does not exist for them.
        for req in [
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}")),
            TestRequest::patch()
                .uri(&format!("/api/v1/webhooks/{id}"))
                .set_json(json!({"enabled": false})),
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}/deliveries")),
            TestRequest::post().uri(&format!("/api/v1/webhooks/{id}/test")),
            TestRequest::post().uri(&format!("/api/v1/webhooks/{id}/rotate-secret")),
            TestRequest::delete().uri(&format!("/api/v1/webhooks/{id}")),
        ] {
            let (st, v) = call(&app, req, &theirs).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
        }
        let (_, list) = call(&app, TestRequest::get().uri("/api/v1/webhooks"), &theirs).await;
        assert_eq!(list, json!([]));
        // Events of the other tenant are not queued for this endpoint.
        event(&state, &g.tenant_id, "asset.hidden", "x", 1);
        let (_, ep) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}")),
            &admin,
        )
        .await;
        assert_eq!(ep["deliveries"]["pending"], 0, "{ep}");

        // Without manage_settings: 403 everywhere; without credentials: 401.
        for req in [
            TestRequest::get().uri("/api/v1/webhooks"),
            TestRequest::post()
                .uri("/api/v1/webhooks")
                .set_json(json!({"url": "https://x.example/"})),
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}")),
            TestRequest::post().uri(&format!("/api/v1/webhooks/{id}/test")),
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}/deliveries/1")),
            TestRequest::post().uri(&format!("/api/v1/webhooks/{id}/deliveries/1/redeliver")),
        ] {
            let (st, v) = call(&app, req, &editor).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        }
        let resp = test::call_service(
            &app,
            TestRequest::get().uri("/api/v1/webhooks").to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

        // Paging and filters.
        let (st, v) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}/deliveries?status=eaten")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        let (st, v) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}/deliveries?per_page=0")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

        // Deleted, with its log.
        event(&state, &f.tenant_id, "asset.hidden", "x", 1);
        let (st, _) = call(
            &app,
            TestRequest::delete().uri(&format!("/api/v1/webhooks/{id}")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let (st, _) = call(
            &app,
            TestRequest::get().uri(&format!("/api/v1/webhooks/{id}")),
            &admin,
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
);

// ---- the console ---------------------------------------------------------------------------

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {html}"))
        + start.len();
    &html[i..i + html[i..].find(end).unwrap()]
}

db_test!(
    webhooks_console_creates_shows_the_log_and_redelivers,
    |db: TestDb| async move {
        use crate::common::console::*;
        let f = fixture(&db, "acme");
        let state = console_state(&db);
        let app = console_test_app!(state);
        let (cookie, csrf, overview) = console_login(&app, &f, Role::Admin).await;
        assert!(overview.contains("href=\"/admin/webhooks\""));
        let mut rx = Receiver::start(db.dir());

        let (st, html) = get(&app, &cookie, "/admin/webhooks").await;
        assert_eq!(st, StatusCode::OK);
        assert!(html.contains("New endpoint") && html.contains("No endpoints yet."));

        // Bad input: a 400 page naming the field; no CSRF token: 403.
        let (st, _, html) = post(
            &app,
            &cookie,
            "/admin/webhooks",
            &format!("csrf={csrf}&url=ftp%3A%2F%2Fcms.example.org%2F"),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(html.contains("url: must be http or https"), "{html}");
        let (st, _, _) = post(
            &app,
            &cookie,
            "/admin/webhooks",
            &format!("url={}", rx.url()),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);

        // Created: the secret is shown once.
        let (st, _, html) = post(
            &app,
            &cookie,
            "/admin/webhooks",
            &format!(
                "csrf={csrf}&url={}&description=Website&event_types=asset.hidden",
                rx.url()
            ),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{html}");
        let secret = between(&html, "value=\"whsec_", "\"");
        let secret = format!("whsec_{secret}");
        let id = between(&html, "href=\"/admin/webhooks/", "\"").to_string();
        rx.configure(json!({"secret": secret})).await;

        let (_, html) = get(&app, &cookie, "/admin/webhooks").await;
        assert!(html.contains(&rx.url()) && html.contains("asset.hidden"));

        // An event goes out; the page's log shows it with the answer's status code.
        let ev = event(&state, &f.tenant_id, "asset.hidden", "file-a", 1);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        let (st, html) = get(&app, &cookie, &format!("/admin/webhooks/{id}")).await;
        assert_eq!(st, StatusCode::OK);
        assert!(html.contains("data-status=\"delivered\""), "{html}");
        assert!(html.contains("<td>204</td>"), "{html}");
        let seq = between(&html, "data-seq=\"", "\"").to_string();
        let (st, html) = get(
            &app,
            &cookie,
            &format!("/admin/webhooks/{id}/deliveries/{seq}"),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert!(html.contains(&format!("msg_{ev}")) && html.contains("file-a"));

        // Redeliver: the same message arrives again, verified.
        let (st, loc, _) = post(
            &app,
            &cookie,
            &format!("/admin/webhooks/{id}/deliveries/{seq}/redeliver"),
            &format!("csrf={csrf}"),
        )
        .await;
        assert_eq!(st, StatusCode::SEE_OTHER);
        assert_eq!(
            loc,
            format!("/admin/webhooks/{id}?notice=webhook_redelivered")
        );
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        assert_eq!(
            rx.delivered(),
            vec![format!("msg_{ev}"), format!("msg_{ev}")]
        );

        // Send a test event; change the events; disable and enable.
        let (st, _, _) = post(
            &app,
            &cookie,
            &format!("/admin/webhooks/{id}/test"),
            &format!("csrf={csrf}"),
        )
        .await;
        assert_eq!(st, StatusCode::SEE_OTHER);
        assert_eq!(webhooks::deliver_due(&state).await.unwrap(), 1);
        assert_eq!(rx.records().last().unwrap()["type"], "webhook.test");
        let (st, _, _) = post(
            &app,
            &cookie,
            &format!("/admin/webhooks/{id}"),
            &format!(
                "csrf={csrf}&url={}&description=Web&event_types=asset.allowed&event_types=asset.hidden",
                rx.url()
            ),
        )
        .await;
        assert_eq!(st, StatusCode::SEE_OTHER);
        let (st, _, _) = post(
            &app,
            &cookie,
            &format!("/admin/webhooks/{id}/disable"),
            &format!("csrf={csrf}"),
        )
        .await;
        assert_eq!(st, StatusCode::SEE_OTHER);
        let (_, html) = get(&app, &cookie, &format!("/admin/webhooks/{id}")).await;
        assert!(html.contains("Disabled:") && html.contains("value=\"asset.allowed\" checked"));
        // Reveal shows the same secret; rotate a new one.
        let (st, _, html) = post(
            &app,
            &cookie,
            &format!("/admin/webhooks/{id}/reveal"),
            &format!("csrf={csrf}"),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert!(html.contains(&secret));
        let (_, _, html) = post(
            &app,
            &cookie,
            &format!("/admin/webhooks/{id}/rotate"),
            &format!("csrf={csrf}"),
        )
        .await;
        assert!(html.contains("whsec_") && !html.contains(&secret));

        // A role without manage_settings neither sees nor uses the pages.
        let (ecookie, ecsrf, eoverview) = console_login(&app, &f, Role::Editor).await;
        assert!(!eoverview.contains("href=\"/admin/webhooks\""));
        let (st, _) = get(&app, &ecookie, "/admin/webhooks").await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, _, _) = post(
            &app,
            &ecookie,
            &format!("/admin/webhooks/{id}/test"),
            &format!("csrf={ecsrf}"),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);

        // Deleted.
        let (st, loc, _) = post(
            &app,
            &cookie,
            &format!("/admin/webhooks/{id}/delete"),
            &format!("csrf={csrf}"),
        )
        .await;
        assert_eq!(st, StatusCode::SEE_OTHER);
        assert_eq!(loc, "/admin/webhooks?notice=webhook_deleted");
        let (st, _) = get(&app, &cookie, &format!("/admin/webhooks/{id}")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
);

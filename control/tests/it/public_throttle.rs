//! (SIGNING) Guessing links gets nowhere: past `[signing] max_unknown_tokens_per_ip` unknown
//! tokens within `unknown_token_window_secs`, every public token page from that client address
//! answers 429 with `Retry-After` before any lookup, a valid link too; another address is not
//! affected; after the window (the services' clock) the address works again. The receipt check
//! (`POST /api/v1/evidence/verify`) counts failed receipts the same way. On SQLite and
//! PostgreSQL, in process.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::web;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::service::{Clock, Ctx, consent_templates, persons, signing};
use serde_json::json;

use crate::common::*;

const ATTACKER: &str = "198.51.100.9:40000";
const OTHER: &str = "198.51.100.10:40000";

fn state(db: &TestDb) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(console::KEY.into());
    cfg.matcher.url = "http://127.0.0.1:9".into();
    cfg.server.cookie_secure = false;
    cfg.signing.key_file = db.dir().join("evidence.key");
    cfg.signing.public_base_url = "http://localhost:8080".into();
    cfg.signing.max_unknown_tokens_per_ip = 30;
    cfg.signing.unknown_token_window_secs = 600;
    web::Data::new(Deps::with_clock(
        db.pool.clone(),
        cfg,
        Clock::manual(db::now()),
    ))
}

/// A request sent to a person; the link's token (read from the outbox).
async fn send(db: &TestDb, st: &web::Data<Deps>) -> String {
    let f = fixture(db, "acme");
    let deps: Arc<Deps> = st.clone().into_inner();
    let ctx = Ctx::system(deps, &f.tenant_id, "system:test");
    let person = persons::create_person(
        &ctx,
        serde_json::from_value(json!({
            "name": "Kari Nordmann",
            "email": "kari@example.org",
            "date_of_birth": "1990-05-17",
        }))
        .map_err(|e| likeness_control::service::ControlError::invalid("person", e.to_string())),
    )
    .await
    .unwrap();
    let tpl = consent_templates::create_template(
        &ctx,
        serde_json::from_value(json!({
            "name": "Event photos",
            "title": "Photos from the event",
            "body_markdown": "We would like to use photos of you.",
            "language": "en",
            "scopes": [{"channel": "web", "mandatory": true}],
            "validity_days": 365,
            "legal_character": "gdpr_consent",
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let out = signing::create_requests(
        &ctx,
        serde_json::from_value(json!({
            "person_ids": [person.id],
            "template_id": tpl.id,
            "language": "en",
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    // Messages about a person are sealed (the vault): opened by the service.
    let bodies: Vec<String> = likeness_control::service::outbox::opened_messages(&mut db.conn())
        .unwrap()
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    bodies
        .iter()
        .find_map(|b| {
            let i = b.find("/sign/")? + 6;
            let t: String = b[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            (!t.is_empty()).then_some(t)
        })
        .expect("the link in the outbox")
}

fn get(uri: &str, peer: &str) -> TestRequest {
    TestRequest::get()
        .uri(uri)
        .peer_addr(peer.parse::<SocketAddr>().unwrap())
}

/// A 64-character token that matches nothing (`n` makes each one different).
fn guess(n: usize) -> String {
    format!("{n:0>43}")
}

db_test!(
    public_pages_throttle_unknown_tokens_per_address,
    |db: TestDb| async move {
        let st = state(&db);
        let app = console_test_app!(st);
        let token = send(&db, &st).await;

        // 30 unknown tokens (links and receipts) from one address: each a plain 404.
        for n in 0..30 {
            let uri = if n % 2 == 0 {
                format!("/sign/{}", guess(n))
            } else {
                format!("/receipt/{}", guess(n))
            };
            let resp = test::call_service(&app, get(&uri, ATTACKER).to_request()).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{uri}");
        }

        // Then the valid link from that address: 429 with Retry-After, like any token.
        for uri in [
            format!("/sign/{token}"),
            format!("/sign/{}", guess(99)),
            format!("/receipt/{}", guess(98)),
            format!("/sign/{token}/files/x"),
        ] {
            let resp = test::call_service(&app, get(&uri, ATTACKER).to_request()).await;
            assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{uri}");
            let retry: u64 = resp
                .headers()
                .get(header::RETRY_AFTER)
                .expect("Retry-After")
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=600).contains(&retry), "{retry}");
        }
        // The service says why (the same for a valid token).
        let deps: Arc<Deps> = st.clone().into_inner();
        let client = signing::ClientInfo {
            ip: Some("198.51.100.9".into()),
            user_agent: None,
        };
        match signing::open_request(&deps, &token, client.clone()).await {
            Err(likeness_control::service::ControlError::RateLimited { code, .. }) => {
                assert_eq!(code, "too_many_unknown_links")
            }
            other => panic!("{other:?}"),
        }

        // The receipt check from that address is refused too (JSON 429).
        let resp = test::call_service(
            &app,
            TestRequest::post()
                .uri("/api/v1/evidence/verify")
                .peer_addr(ATTACKER.parse::<SocketAddr>().unwrap())
                .set_json(json!({
                    "format": "likeness-receipt/1",
                    "record": {"seq": 1},
                    "record_sha256": "00",
                    "signature": "AA==",
                    "key_id": "0000000000000000"
                }))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

        // Another address still opens the link.
        let resp =
            test::call_service(&app, get(&format!("/sign/{token}"), OTHER).to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);

        // After the window, the first address works again.
        assert!(st.clock.advance(chrono::TimeDelta::seconds(601)));
        let resp =
            test::call_service(&app, get(&format!("/sign/{token}"), ATTACKER).to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = test::call_service(
            &app,
            get(&format!("/sign/{}", guess(97)), ATTACKER).to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
);

db_test!(
    public_receipt_check_counts_failed_receipts,
    |db: TestDb| async move {
        let st = state(&db);
        let app = console_test_app!(st);
        let bad = json!({
            "format": "likeness-receipt/1",
            "record": {"seq": 1},
            "record_sha256": "00",
            "signature": "AA==",
            "key_id": "0000000000000000"
        });
        let verify = |peer: &str| {
            TestRequest::post()
                .uri("/api/v1/evidence/verify")
                .peer_addr(peer.parse::<SocketAddr>().unwrap())
                .set_json(bad.clone())
                .to_request()
        };
        for _ in 0..30 {
            let resp = test::call_service(&app, verify(ATTACKER)).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        }
        let resp = test::call_service(&app, verify(ATTACKER)).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers().contains_key(header::RETRY_AFTER));
        let resp = test::call_service(&app, verify(OTHER)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
);

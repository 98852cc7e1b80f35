//! DOMAIN end-to-end: the control plane (in this process, over its REST API) and the real
//! `likeness-matcher` process (real models, real photos), on SQLite and PostgreSQL:
//! upload a real photo -> faces -> a suggestion for an enrolled person -> confirm -> consent for
//! web only until D -> approved for web, not for print; after D expired; a withdrawal makes it
//! withdrawn and removes the template from the matcher (it no longer matches); a group photo
//! with one unlinked face is blocked.

use crate::common::{TestDb, fixture, token_for};
use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::roles::Role;
use likeness_control::schema::persons;
use likeness_control::service::jobs::{self as job_svc};
use likeness_control_media::MatcherClient;
use likeness_control_media::testing::{MatcherProcess, data_dir};
use serde_json::{Value, json};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn data(rel: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn state(db: &TestDb, port: u16) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(KEY.into());
    cfg.matcher.url = format!("http://127.0.0.1:{port}");
    cfg.matcher.timeout_ms = 60_000;
    // Fast retries for the tests.
    cfg.jobs.poll_ms = 50;
    cfg.jobs.backoff_base_ms = 50;
    cfg.jobs.backoff_max_ms = 200;
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

fn add_person(db: &TestDb, tenant: &str, name: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now().naive_utc();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{id}")),
            persons::custom_fields_json.eq("{}"),
            persons::never_publish.eq(false),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

async fn read(resp: actix_web::dev::ServiceResponse) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = test::read_body(resp).await;
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, v)
}

/// `call!(app, token, request)` -> (status, JSON).
macro_rules! call {
    ($app:expr, $token:expr, $req:expr $(,)?) => {
        read(
            test::call_service(
                $app,
                $req.insert_header(("Authorization", format!("Bearer {}", $token)))
                    .to_request(),
            )
            .await
            .map_into_boxed_body(),
        )
    };
}

fn verdict<'a>(v: &'a Value, channel: &str) -> &'a Value {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["channel"] == channel)
        .unwrap_or_else(|| panic!("no verdict for {channel}: {v}"))
}

db_test!(
    photo_to_compliance_with_the_real_matcher,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let ed = token_for(&db, &t, f.user(Role::Editor).0);
        let po = token_for(&db, &t, f.user(Role::PrivacyOfficer).0);
        let gallery = tempfile::tempdir().unwrap();
        let m = MatcherProcess::start_any(gallery.path(), KEY)
            .await
            .unwrap();
        let st = state(&db, m.port);
        let app = test::init_service(
            App::new().configure(|c| likeness_control::app::configure_app(c, st.clone())),
        )
        .await;
        let mc = MatcherClient::new(m.client_config()).unwrap();
        let pacino = add_person(&db, &t, "Al Pacino");
        let today = chrono::Utc::now().date_naive();
        let d = today + chrono::Days::new(60);

        // Consent: web only until D, covering face matching.
        let (s, a) = call!(
            &app,
            po,
            test::TestRequest::post()
                .uri(&format!("/api/v1/persons/{pacino}/agreements"))
                .set_json(
                    json!({"channels": ["web"], "valid_from": today - chrono::Days::new(1),
                    "valid_until": d, "source": "digital", "covers_face_matching": true})
                )
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{a}");
        let agreement = a["id"].as_str().unwrap().to_string();

        // Enrol him from a first photo.
        let upload = |name: &str, rel: &str| {
            test::TestRequest::post()
                .uri(&format!("/api/v1/assets?filename={name}"))
                .insert_header(("content-type", "application/octet-stream"))
                .set_payload(data(rel))
        };
        let (s, v) = call!(
            &app,
            ed,
            upload("p1.jpg", "faces_dev/Al_Pacino_1800_crop.jpg")
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let a1 = v["asset"]["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let faces =
            |asset: &str| test::TestRequest::get().uri(&format!("/api/v1/assets/{asset}/faces"));
        let (_, fs) = call!(&app, ed, faces(&a1)).await;
        assert_eq!(fs.as_array().unwrap().len(), 1, "{fs}");
        let f1 = fs[0]["id"].as_str().unwrap().to_string();
        let (s, v) = call!(
            &app,
            ed,
            test::TestRequest::post()
                .uri(&format!("/api/v1/faces/{f1}/confirm"))
                .set_json(json!({"person_id": pacino}))
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["template_enrolled"], true, "{v}");
        assert_eq!(mc.tenant_stats(&t).await.unwrap().0, 1);

        // A second real photo: its face is suggested as him; confirm it.
        let (_, v) = call!(
            &app,
            ed,
            upload("p2.jpg", "faces_dev/Al_Pacino_1805_crop.jpg")
        )
        .await;
        let a2 = v["asset"]["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let (_, fs) = call!(&app, ed, faces(&a2)).await;
        assert_eq!(fs[0]["status"], "suggested", "{fs}");
        assert_eq!(fs[0]["candidates"][0]["person_id"], pacino.as_str(), "{fs}");
        let f2 = fs[0]["id"].as_str().unwrap().to_string();
        let (s, v) = call!(
            &app,
            ed,
            test::TestRequest::post()
                .uri(&format!("/api/v1/faces/{f2}/confirm"))
                .set_json(json!({"person_id": pacino}))
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");

        // Legal basis: consent. Approved for web, not for print; after D expired.
        let (s, v) = call!(
            &app,
            po,
            test::TestRequest::put()
                .uri(&format!("/api/v1/assets/{a2}/legal-basis"))
                .set_json(json!({"legal_basis": "consent"}))
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let compliance = |asset: &str, date: chrono::NaiveDate| {
            test::TestRequest::get().uri(&format!("/api/v1/assets/{asset}/compliance?date={date}"))
        };
        let (s, v) = call!(&app, ed, compliance(&a2, today)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(verdict(&v, "web")["status"], "approved", "{v}");
        assert_eq!(verdict(&v, "web")["until"], json!(d));
        assert_eq!(verdict(&v, "print")["status"], "missing_consent");
        assert_eq!(verdict(&v, "print")["allowed"], false);
        let (_, v) = call!(&app, ed, compliance(&a2, d)).await;
        assert_eq!(verdict(&v, "web")["status"], "expiring");
        let (_, v) = call!(&app, ed, compliance(&a2, d + chrono::Days::new(1))).await;
        assert_eq!(verdict(&v, "web")["status"], "expired");
        assert_eq!(verdict(&v, "web")["allowed"], false);

        // Withdrawal: withdrawn, and his template leaves the matcher.
        let (s, w) = call!(
            &app,
            po,
            test::TestRequest::post()
                .uri(&format!("/api/v1/agreements/{agreement}/withdraw"))
                .set_json(json!({"reason": "asked by e-mail"}))
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{w}");
        assert_eq!(w["face_matching_ended"], true);
        assert_eq!(w["template_removal"]["queued"], false, "{w}");
        assert!(
            w["template_removal"]["removed"].as_u64().unwrap() >= 1,
            "{w}"
        );
        assert_eq!(mc.tenant_stats(&t).await.unwrap().0, 0);
        let (_, v) = call!(&app, ed, compliance(&a2, today)).await;
        assert_eq!(verdict(&v, "web")["status"], "withdrawn", "{v}");
        // The matcher no longer knows him: a third photo of him gets no suggestion.
        let (_, v) = call!(
            &app,
            ed,
            upload("p3.jpg", "faces_dev/Al_Pacino_1808_crop.jpg")
        )
        .await;
        let a3 = v["asset"]["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let (_, fs) = call!(&app, ed, faces(&a3)).await;
        assert_eq!(fs.as_array().unwrap().len(), 1, "{fs}");
        assert_ne!(fs[0]["status"], "suggested", "{fs}");

        // A group photo with one face linked and one not: blocked by the unlinked face.
        let kari = add_person(&db, &t, "Kari Nordmann");
        let (s, a) = call!(
            &app,
            po,
            test::TestRequest::post()
                .uri(&format!("/api/v1/persons/{kari}/agreements"))
                .set_json(json!({"channels": ["web", "print"], "valid_from": today,
                    "source": "paper_scan"}))
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{a}");
        let (_, v) = call!(&app, ed, upload("couple.jpg", "group/deepface_couple.jpg")).await;
        let g = v["asset"]["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let (_, fs) = call!(&app, ed, faces(&g)).await;
        assert!(fs.as_array().unwrap().len() >= 2, "{fs}");
        let g1 = fs[0]["id"].as_str().unwrap().to_string();
        let (s, v) = call!(
            &app,
            ed,
            test::TestRequest::post()
                .uri(&format!("/api/v1/faces/{g1}/confirm"))
                .set_json(json!({"person_id": kari}))
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        call!(
            &app,
            po,
            test::TestRequest::put()
                .uri(&format!("/api/v1/assets/{g}/legal-basis"))
                .set_json(json!({"legal_basis": "consent"}))
        )
        .await;
        let (_, v) = call!(&app, ed, compliance(&g, today)).await;
        let web = verdict(&v, "web");
        assert_eq!(web["status"], "unidentified_faces", "{v}");
        assert_eq!(web["allowed"], false);
        let unlinked: Vec<&Value> = web["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["code"] == "unidentified_faces")
            .collect();
        assert_eq!(unlinked.len(), fs.as_array().unwrap().len() - 1, "{v}");
        // The same photo without its unlinked faces would be approved: the block is theirs alone.
        assert!(
            web["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["code"] == "unidentified_faces"),
            "{v}"
        );
        // Every file he appears in, with its status.
        let (s, v) = call!(
            &app,
            po,
            test::TestRequest::get().uri(&format!("/api/v1/persons/{pacino}/compliance"))
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let files: Vec<&str> = v["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["filename"].as_str().unwrap())
            .collect();
        assert_eq!(files, ["p2.jpg", "p1.jpg"], "{v}");
    }
);

//! DOMAIN: tenant settings, legal basis, agreements (consents) with encrypted documents,
//! withdrawal, and compliance queries per asset, per person and as filtered lists — on SQLite
//! and PostgreSQL. Persons, assets and faces are inserted directly (their endpoints belong to
//! other modules); everything DOMAIN owns goes through the HTTP API.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::{assets, audit_log, faces, persons, tenants};
use serde_json::{Value, json};

const MASTER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn state(db: &TestDb) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(MASTER_KEY.into());
    // No matcher here: template removals are queued (the end-to-end test runs a real one).
    cfg.matcher.url = String::new();
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

macro_rules! app {
    ($db:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .configure(|c| likeness_control::app::configure_app(c, state(&$db))),
        )
        .await
    };
}

async fn read(resp: actix_web::dev::ServiceResponse) -> (StatusCode, Value) {
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

/// Sends a request and returns the status and the JSON body.
macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {
        read(
            test::call_service($app, $req.to_request())
                .await
                .map_into_boxed_body(),
        )
    };
}

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

struct Tenant {
    f: Fixture,
    tokens: Vec<(Role, String)>,
}

impl Tenant {
    fn new(db: &TestDb, slug: &str) -> Self {
        let f = fixture(db, slug);
        let tokens = Role::ALL
            .iter()
            .map(|r| (*r, token_for(db, &f.tenant_id, f.user(*r).0)))
            .collect();
        Tenant { f, tokens }
    }
    fn token(&self, r: Role) -> (&'static str, String) {
        bearer(&self.tokens.iter().find(|(x, _)| *x == r).unwrap().1)
    }
    fn id(&self) -> &str {
        &self.f.tenant_id
    }
}

fn add_person(db: &TestDb, tenant: &str, name: &str, dob: Option<&str>) -> String {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{}", &id[id.len() - 8..])),
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

fn add_asset(db: &TestDb, tenant: &str, filename: &str) -> String {
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
            assets::sha256.eq("00".repeat(32)),
            assets::blob_key.eq("none"),
            assets::metadata_json.eq("{}"),
            assets::current_version.eq(1),
            assets::created_at.eq(now),
            assets::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

fn add_face(db: &TestDb, tenant: &str, asset: &str, person: Option<&str>, status: &str) -> String {
    let id = db::new_id();
    diesel::insert_into(faces::table)
        .values((
            faces::id.eq(&id),
            faces::tenant_id.eq(tenant),
            faces::asset_id.eq(asset),
            faces::source.eq("detected"),
            faces::status.eq(status),
            faces::person_id.eq(person),
            faces::box_x1.eq(0.0),
            faces::box_y1.eq(0.0),
            faces::box_x2.eq(10.0),
            faces::box_y2.eq(10.0),
            faces::identifiable.eq(true),
            faces::template_enrolled.eq(false),
            faces::created_at.eq(db::now()),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

fn audit_actions(db: &TestDb) -> Vec<String> {
    audit_log::table
        .order(audit_log::seq.asc())
        .select(audit_log::action)
        .load(&mut db.conn())
        .unwrap()
}

db_test!(settings_get_put_validate, |db: TestDb| async move {
    let t = Tenant::new(&db, "acme");
    let app = app!(db);

    // Defaults, readable by every user of the tenant.
    let (st, v) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/settings")
            .insert_header(t.token(Role::Viewer)),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["channels"], json!(["web", "print", "social", "internal"]));
    assert_eq!(v["notice_days"], 30);
    assert_eq!(v["age_threshold"], 18);
    assert_eq!(v["pseudonymous_names"], false);
    assert_eq!(v["non_approved_use"], "allow_with_permission");

    // Anonymous: 401.
    let (st, _) = call!(&app, TestRequest::get().uri("/api/v1/settings")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Another module's key in settings_json survives a PUT.
    diesel::update(tenants::table.filter(tenants::id.eq(t.id())))
        .set(tenants::settings_json.eq(r#"{"media":{"max_pixels":5}}"#))
        .execute(&mut db.conn())
        .unwrap();

    let new = json!({"channels": ["web", "print", "tv"], "notice_days": 14, "age_threshold": 16,
        "pseudonymous_names": true, "non_approved_use": "block"});
    for role in [Role::Editor, Role::Viewer, Role::Integration] {
        let (st, v) = call!(
            &app,
            TestRequest::put()
                .uri("/api/v1/settings")
                .insert_header(t.token(role))
                .set_json(&new),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{role}: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    let (st, v) = call!(
        &app,
        TestRequest::put()
            .uri("/api/v1/settings")
            .insert_header(t.token(Role::PrivacyOfficer))
            .set_json(&new),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, new);
    let (_, v) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/settings")
            .insert_header(t.token(Role::Editor)),
    )
    .await;
    assert_eq!(v, new);
    let raw: String = tenants::table
        .filter(tenants::id.eq(t.id()))
        .select(tenants::settings_json)
        .first(&mut db.conn())
        .unwrap();
    assert!(raw.contains(r#""media":{"max_pixels":5}"#), "{raw}");
    assert!(audit_actions(&db).contains(&"settings.update".to_string()));

    // Bad input names the field; nothing changes.
    let cases = [
        (
            json!({"channels": ["web", "Web"]}),
            "invalid_input",
            "channels[1]",
        ),
        (json!({"channels": []}), "invalid_input", "channels"),
        (
            json!({"notice_days": 99999}),
            "invalid_input",
            "notice_days",
        ),
        (
            json!({"age_threshold": 3}),
            "invalid_input",
            "age_threshold",
        ),
        (
            json!({"non_approved_use": "sometimes"}),
            "invalid_json",
            "sometimes",
        ),
        (json!({"colour": "red"}), "invalid_json", "colour"),
    ];
    for (body, code, needle) in cases {
        let (st, v) = call!(
            &app,
            TestRequest::put()
                .uri("/api/v1/settings")
                .insert_header(t.token(Role::Admin))
                .set_json(&body),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let (_, v) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/settings")
            .insert_header(t.token(Role::Editor)),
    )
    .await;
    assert_eq!(v, new);
});

db_test!(agreements_documents_withdrawal, |db: TestDb| async move {
    let t = Tenant::new(&db, "acme");
    let other = Tenant::new(&db, "other");
    let kari = add_person(&db, t.id(), "Kari Nordmann", Some("1990-01-01"));
    let foreign = add_person(&db, other.id(), "Ola Utlending", None);
    let app = app!(db);
    let po = t.token(Role::PrivacyOfficer);

    let consent = json!({"channels": ["web", "print"], "valid_from": "2026-01-01",
        "valid_until": "2027-12-31", "source": "paper_scan", "covers_face_matching": true,
        "note": "  signed at the shoot  "});
    // Editors may not record consents; another tenant's person is 404.
    let (st, _) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/persons/{kari}/agreements"))
            .insert_header(t.token(Role::Editor))
            .set_json(&consent),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/persons/{foreign}/agreements"))
            .insert_header(po.clone())
            .set_json(&consent),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    let (st, a) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/persons/{kari}/agreements"))
            .insert_header(po.clone())
            .set_json(&consent),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{a}");
    let aid = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["person_id"], kari.as_str());
    assert_eq!(a["channels"], json!(["web", "print"]));
    assert_eq!(a["note"], "signed at the shoot");
    assert_eq!(a["source"], "paper_scan");
    assert!(a["withdrawn_at"].is_null());

    // Validation names the field.
    let bad = [
        (
            json!({"channels": ["tv"], "valid_from": "2026-01-01", "source": "digital"}),
            "channels[0]",
        ),
        (
            json!({"channels": [], "valid_from": "2026-01-01", "source": "digital"}),
            "channels",
        ),
        (
            json!({"channels": ["web"], "valid_from": "2026-01-01", "valid_until": "2025-12-31",
            "source": "digital"}),
            "valid_until",
        ),
        (
            json!({"channels": ["web"], "valid_from": "2026-01-01", "source": "digital",
            "text_sha256": "abc"}),
            "text_sha256",
        ),
    ];
    for (body, field) in bad {
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/persons/{kari}/agreements"))
                .insert_header(po.clone())
                .set_json(&body),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_input");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{body}: {v}"
        );
    }
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/persons/{kari}/agreements"))
            .insert_header(po.clone())
            .set_json(json!({"channels": ["web"], "valid_from": "2026-01-01", "source": "fax"})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("fax"),
        "{v}"
    );

    // A document: stored encrypted, downloaded intact.
    let pdf = b"%PDF-1.4\nconsent of Kari Nordmann\n%%EOF\n".to_vec();
    let (st, d) = call!(
        &app,
        TestRequest::post()
            .uri(&format!(
                "/api/v1/agreements/{aid}/documents?filename=kari.pdf"
            ))
            .insert_header(po.clone())
            .set_payload(pdf.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
    assert_eq!(d["mime"], "application/pdf");
    assert_eq!(d["size_bytes"], pdf.len());
    let did = d["id"].as_str().unwrap().to_string();
    {
        use sha2::Digest;
        assert_eq!(d["sha256"], hex::encode(sha2::Sha256::digest(&pdf)));
    }
    let mut plaintext_on_disk = false;
    for e in walk(&db.dir().join("blobs")) {
        let bytes = std::fs::read(&e).unwrap();
        if bytes.windows(12).any(|w| w == b"Kari Nordman") {
            plaintext_on_disk = true;
        }
    }
    assert!(!plaintext_on_disk, "the document is stored in the clear");
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/agreements/{aid}/documents/{did}"))
            .insert_header(t.token(Role::Editor))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/pdf"
    );
    assert_eq!(test::read_body(resp).await.to_vec(), pdf);
    // Not a document; empty; a path as name; another tenant's agreement.
    for (uri, body, st_want) in [
        (
            format!("/api/v1/agreements/{aid}/documents?filename=x.exe"),
            b"MZ\x90\0".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/v1/agreements/{aid}/documents?filename=x.pdf"),
            Vec::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/v1/agreements/{aid}/documents?filename=../x.pdf"),
            pdf.clone(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/v1/agreements/{aid}/documents"),
            pdf.clone(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri(&uri)
                .insert_header(po.clone())
                .set_payload(body),
        )
        .await;
        assert_eq!(st, st_want, "{uri}: {v}");
    }
    let (st, _) = call!(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/agreements/{aid}/documents/{did}"))
            .insert_header(other.token(Role::Admin)),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call!(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/agreements/{aid}"))
            .insert_header(other.token(Role::Admin)),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call!(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/agreements/{aid}"))
            .insert_header(t.token(Role::Viewer)),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // List: with the document.
    let (st, list) = call!(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/persons/{kari}/agreements"))
            .insert_header(t.token(Role::Editor)),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["documents"][0]["id"], did.as_str());

    // Withdrawal: not in the future, a reason needed, only once.
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/agreements/{aid}/withdraw"))
            .insert_header(po.clone())
            .set_json(json!({"reason": "moved away", "at": "2999-01-01T00:00:00"})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("at"));
    let (st, _) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/agreements/{aid}/withdraw"))
            .insert_header(po.clone())
            .set_json(json!({"reason": "  "})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, w) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/agreements/{aid}/withdraw"))
            .insert_header(po.clone())
            .set_json(json!({"reason": "asked by phone"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{w}");
    assert_eq!(w["agreement"]["state"], "withdrawn");
    assert_eq!(w["agreement"]["withdrawal_reason"], "asked by phone");
    assert_eq!(w["face_matching_ended"], true);
    assert_eq!(w["template_removal"]["queued"], true, "{w}");
    let queued: i64 = likeness_control::schema::jobs::table
        .filter(
            likeness_control::schema::jobs::kind
                .eq(likeness_control::service::jobs::REMOVE_PERSON_TEMPLATES),
        )
        .count()
        .get_result(&mut db.conn())
        .unwrap();
    assert_eq!(queued, 1);
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/agreements/{aid}/withdraw"))
            .insert_header(po.clone())
            .set_json(json!({"reason": "again"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "already_withdrawn");

    let actions = audit_actions(&db);
    for a in [
        "agreement.create",
        "agreement.document.add",
        "agreement.document.read",
        "agreement.list",
        "agreement.withdraw",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} not audited: {actions:?}"
        );
    }
});

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

macro_rules! consent {
    ($app:expr, $t:expr, $person:expr, $body:expr $(,)?) => {{
        let (st, v) = call!(
            $app,
            TestRequest::post()
                .uri(&format!("/api/v1/persons/{}/agreements", $person))
                .insert_header($t.token(Role::PrivacyOfficer))
                .set_json(&$body)
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }};
}

fn status_of(v: &Value, channel: &str) -> String {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["channel"] == channel)
        .unwrap_or_else(|| panic!("no verdict for {channel}: {v}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

db_test!(
    legal_basis_and_compliance_queries,
    |db: TestDb| async move {
        let t = Tenant::new(&db, "acme");
        let other = Tenant::new(&db, "other");
        let kari = add_person(&db, t.id(), "Kari Nordmann", Some("1990-01-01"));
        let ola = add_person(&db, t.id(), "Ola Nordmann", Some("2015-06-01"));
        let solo = add_asset(&db, t.id(), "kari.jpg");
        add_face(&db, t.id(), &solo, Some(&kari), "confirmed");
        let group = add_asset(&db, t.id(), "group.jpg");
        add_face(&db, t.id(), &group, Some(&kari), "confirmed");
        add_face(&db, t.id(), &group, Some(&ola), "confirmed");
        let crowd = add_asset(&db, t.id(), "crowd.jpg");
        add_face(&db, t.id(), &crowd, Some(&kari), "confirmed");
        add_face(&db, t.id(), &crowd, None, "unknown");
        let empty = add_asset(&db, t.id(), "landscape.jpg");
        let app = app!(db);
        let po = t.token(Role::PrivacyOfficer);

        // No legal basis yet.
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{solo}/compliance?date=2026-06-01"))
                .insert_header(t.token(Role::Viewer)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["verdicts"].as_array().unwrap().len(), 4);
        assert_eq!(status_of(&v, "web"), "no_legal_basis");

        // Setting the basis: manage_consents; validated; another tenant's asset is 404.
        let (st, _) = call!(
            &app,
            TestRequest::put()
                .uri(&format!("/api/v1/assets/{solo}/legal-basis"))
                .insert_header(t.token(Role::Editor))
                .set_json(json!({"legal_basis": "consent"})),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, v) = call!(
            &app,
            TestRequest::put()
                .uri(&format!("/api/v1/assets/{solo}/legal-basis"))
                .insert_header(po.clone())
                .set_json(json!({"legal_basis": "consented"})),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("consented"),
            "{v}"
        );
        let (st, _) = call!(
            &app,
            TestRequest::put()
                .uri(&format!("/api/v1/assets/{solo}/legal-basis"))
                .insert_header(other.token(Role::Admin))
                .set_json(json!({"legal_basis": "consent"})),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        for a in [&solo, &group, &crowd] {
            let (st, v) = call!(
                &app,
                TestRequest::put()
                    .uri(&format!("/api/v1/assets/{a}/legal-basis"))
                    .insert_header(po.clone())
                    .set_json(json!({"legal_basis": "consent", "note": "shoot 2026"})),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            assert_eq!(v["legal_basis"], "consent");
        }
        let (st, v) = call!(
            &app,
            TestRequest::put()
                .uri(&format!("/api/v1/assets/{empty}/legal-basis"))
                .insert_header(po.clone())
                .set_json(json!({"legal_basis": "exempt_no_identifiable_persons"})),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (_, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{solo}/legal-basis"))
                .insert_header(t.token(Role::Viewer)),
        )
        .await;
        assert_eq!(v["note"], "shoot 2026");

        // Kari: web only until 2026-12-31.
        consent!(
            &app,
            &t,
            &kari,
            json!({"channels": ["web"], "valid_from": "2026-01-01", "valid_until": "2026-12-31",
            "source": "digital", "covers_face_matching": true}),
        );
        // Ola is a minor: his own consent is not enough.
        consent!(
            &app,
            &t,
            &ola,
            json!({"channels": ["web", "print"], "valid_from": "2026-01-01", "source": "paper_scan"}),
        );

        let q = |asset: &str, date: &str| {
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{asset}/compliance?date={date}"))
                .insert_header(t.token(Role::Editor))
        };
        let (_, v) = call!(&app, q(&solo, "2026-06-01")).await;
        assert_eq!(status_of(&v, "web"), "approved", "{v}");
        assert_eq!(status_of(&v, "print"), "missing_consent");
        assert_eq!(v["verdicts"][0]["until"], "2026-12-31");
        let (_, v) = call!(&app, q(&solo, "2026-12-15")).await;
        assert_eq!(status_of(&v, "web"), "expiring");
        let (_, v) = call!(&app, q(&solo, "2026-12-31")).await;
        assert_eq!(status_of(&v, "web"), "expiring");
        let (_, v) = call!(&app, q(&solo, "2027-01-01")).await;
        assert_eq!(status_of(&v, "web"), "expired");
        let (_, v) = call!(&app, q(&group, "2026-06-01")).await;
        assert_eq!(
            status_of(&v, "web"),
            "minor_without_guardian_consent",
            "{v}"
        );
        let (_, v) = call!(&app, q(&crowd, "2026-06-01")).await;
        assert_eq!(status_of(&v, "web"), "unidentified_faces");
        let (_, v) = call!(&app, q(&empty, "2026-06-01")).await;
        assert_eq!(status_of(&v, "print"), "approved");
        // Names are shown to readers with see_persons, pseudonyms to the others.
        let (_, v) = call!(&app, q(&solo, "2026-06-01")).await;
        let msg = v["verdicts"][1]["reasons"][0]["message"].as_str().unwrap();
        assert!(msg.contains("Kari Nordmann"), "{msg}");
        let (_, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!(
                    "/api/v1/assets/{solo}/compliance?date=2026-06-01&channel=print"
                ))
                .insert_header(t.token(Role::Viewer)),
        )
        .await;
        assert_eq!(v["verdicts"].as_array().unwrap().len(), 1);
        let msg = v["verdicts"][0]["reasons"][0]["message"].as_str().unwrap();
        assert!(!msg.contains("Kari"), "{msg}");
        assert!(msg.contains("P-"), "{msg}");
        // Bad channel, bad date, other tenant.
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{solo}/compliance?channel=tv"))
                .insert_header(t.token(Role::Viewer)),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(
            v["error"]["message"].as_str().unwrap().contains("tv"),
            "{v}"
        );
        let (st, _) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{solo}/compliance?date=2026-13-01"))
                .insert_header(t.token(Role::Viewer)),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let (st, _) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{solo}/compliance"))
                .insert_header(other.token(Role::Admin)),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND);

        // Per person: every file Kari appears in.
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!(
                    "/api/v1/persons/{kari}/compliance?date=2026-06-01"
                ))
                .insert_header(t.token(Role::Editor)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let files: Vec<&str> = v["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["filename"].as_str().unwrap())
            .collect();
        assert_eq!(files, ["crowd.jpg", "group.jpg", "kari.jpg"]);
        assert_eq!(status_of(&v["assets"][2], "web"), "approved");
        assert_eq!(v["assets"][2]["face_ids"].as_array().unwrap().len(), 1);
        let (st, _) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{kari}/compliance"))
                .insert_header(t.token(Role::Viewer)),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert!(audit_actions(&db).contains(&"compliance.person.read".to_string()));

        // Lists.
        let list = |query: &str| {
            TestRequest::get()
                .uri(&format!("/api/v1/compliance/assets?{query}"))
                .insert_header(t.token(Role::Integration))
        };
        let names = |v: &Value| -> Vec<String> {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["filename"].as_str().unwrap().to_string())
                .collect()
        };
        let (st, v) = call!(&app, list("channel=web&date=2026-06-01&allowed=false")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(names(&v), ["group.jpg", "crowd.jpg"]);
        assert!(v["next_after"].is_null());
        let (_, v) = call!(
            &app,
            list("channel=web&date=2026-06-01&expiring_within_days=300")
        )
        .await;
        assert_eq!(names(&v), ["kari.jpg"]);
        let (_, v) = call!(
            &app,
            list("channel=web&date=2026-06-01&expiring_within_days=30")
        )
        .await;
        assert_eq!(names(&v), Vec::<String>::new());
        let (_, v) = call!(
            &app,
            list("channel=print&date=2026-06-01&status=missing_consent,withdrawn")
        )
        .await;
        // crowd.jpg is worse (unidentified_faces), group.jpg too (a minor).
        assert_eq!(names(&v), ["kari.jpg"]);
        let (_, v) = call!(&app, list("date=2026-06-01&status=approved")).await;
        assert_eq!(names(&v), ["kari.jpg", "landscape.jpg"]);
        // Paging by cursor.
        let (_, p1) = call!(&app, list("channel=web&date=2026-06-01&limit=1")).await;
        assert_eq!(names(&p1), ["kari.jpg"]);
        let after = p1["next_after"].as_str().unwrap().to_string();
        let (_, p2) = call!(
            &app,
            list(&format!(
                "channel=web&date=2026-06-01&limit=2&after={after}"
            ))
        )
        .await;
        assert_eq!(names(&p2), ["group.jpg", "crowd.jpg"]);
        for (q, needle) in [
            ("status=fine", "fine"),
            ("limit=0", "limit"),
            ("channel=tv", "tv"),
            ("colour=red", "colour"),
        ] {
            let (st, v) = call!(&app, list(q)).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(needle),
                "{q}: {v}"
            );
        }
        // Another tenant sees none of it.
        let (_, v) = call!(
            &app,
            TestRequest::get()
                .uri("/api/v1/compliance/assets")
                .insert_header(other.token(Role::Admin)),
        )
        .await;
        assert_eq!(v["items"], json!([]));

        // Who lacks consent (see_persons): persons with the files concerned.
        let lacking = |query: &str, role: Role| {
            TestRequest::get()
                .uri(&format!("/api/v1/compliance/persons?{query}"))
                .insert_header(t.token(role))
        };
        let who = |v: &Value| -> Vec<(String, Vec<String>, Vec<String>)> {
            let mut out: Vec<_> = v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let mut files: Vec<String> = p["assets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a["filename"].as_str().unwrap().to_string())
                        .collect();
                    files.sort();
                    let mut st: Vec<String> = p["assets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .flat_map(|a| a["statuses"].as_array().unwrap().clone())
                        .map(|s| s.as_str().unwrap().to_string())
                        .collect();
                    st.sort();
                    st.dedup();
                    (p["label"].as_str().unwrap().to_string(), files, st)
                })
                .collect();
            out.sort();
            out
        };
        let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Web on 2026-06-01: Kari's consent covers it; Ola's lacks a guardian.
        let (st, v) = call!(&app, lacking("channel=web&date=2026-06-01", Role::Editor)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(
            who(&v),
            [(
                "Ola Nordmann".to_string(),
                s(&["group.jpg"]),
                s(&["minor_without_guardian_consent"])
            )]
        );
        // Print: Kari has no consent for it on any of her three files.
        let (_, v) = call!(&app, lacking("channel=print&date=2026-06-01", Role::Editor)).await;
        assert_eq!(
            who(&v),
            [
                (
                    "Kari Nordmann".to_string(),
                    s(&["crowd.jpg", "group.jpg", "kari.jpg"]),
                    s(&["missing_consent"])
                ),
                (
                    "Ola Nordmann".to_string(),
                    s(&["group.jpg"]),
                    s(&["minor_without_guardian_consent"])
                ),
            ]
        );
        let kari_item = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["person_id"] == kari.as_str())
            .unwrap();
        assert_eq!(kari_item["assets"][0]["channels"], json!(["print"]));
        assert!(
            kari_item["assets"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Kari Nordmann"),
            "{kari_item}"
        );
        // After the end date: expired, and only what was asked for.
        let (_, v) = call!(
            &app,
            lacking("channel=web&date=2027-01-01&status=expired", Role::Editor)
        )
        .await;
        assert_eq!(
            who(&v),
            [(
                "Kari Nordmann".to_string(),
                s(&["crowd.jpg", "group.jpg", "kari.jpg"]),
                s(&["expired"])
            )]
        );
        // Paging by cursor, bad input, permission, another tenant.
        let (_, p1) = call!(
            &app,
            lacking("channel=print&date=2026-06-01&limit=1", Role::Editor)
        )
        .await;
        assert_eq!(p1["items"].as_array().unwrap().len(), 1);
        let after = p1["next_after"].as_str().unwrap().to_string();
        let (_, p2) = call!(
            &app,
            lacking(
                &format!("channel=print&date=2026-06-01&after={after}"),
                Role::Editor
            )
        )
        .await;
        assert_eq!(p2["items"].as_array().unwrap().len(), 1);
        assert_ne!(p1["items"][0]["person_id"], p2["items"][0]["person_id"]);
        assert!(p2["next_after"].is_null(), "{p2}");
        for (q, needle) in [
            ("status=approved", "approved"),
            ("limit=501", "limit"),
            ("channel=tv", "tv"),
        ] {
            let (st, v) = call!(&app, lacking(q, Role::Editor)).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(needle),
                "{q}: {v}"
            );
        }
        let (st, _) = call!(&app, lacking("channel=print", Role::Viewer)).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (_, v) = call!(
            &app,
            TestRequest::get()
                .uri("/api/v1/compliance/persons?channel=print&date=2026-06-01")
                .insert_header(other.token(Role::Admin)),
        )
        .await;
        assert_eq!(v["items"], json!([]));
        assert!(audit_actions(&db).contains(&"compliance.persons.read".to_string()));

        // Withdrawal shows as withdrawn.
        let (_, list) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{kari}/agreements"))
                .insert_header(t.token(Role::Editor)),
        )
        .await;
        let aid = list[0]["id"].as_str().unwrap().to_string();
        let (st, _) = call!(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/agreements/{aid}/withdraw"))
                .insert_header(po.clone())
                .set_json(json!({"reason": "letter", "at": "2026-03-01T10:00:00"})),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        let (_, v) = call!(&app, q(&solo, "2026-06-01")).await;
        assert_eq!(status_of(&v, "web"), "withdrawn");
        // The day before the withdrawal it is still allowed, ending that day.
        let (_, v) = call!(&app, q(&solo, "2026-02-28")).await;
        assert_eq!(status_of(&v, "web"), "expiring");
        assert_eq!(v["verdicts"][0]["until"], "2026-02-28");
        let (_, v) = call!(&app, q(&solo, "2026-01-15")).await;
        assert_eq!(status_of(&v, "web"), "approved");
    }
);

db_test!(use_check_follows_the_policy, |db: TestDb| async move {
    use likeness_control::service::compliance::{require_use, use_check};
    use likeness_control_domain::UseDecision;
    let t = Tenant::new(&db, "acme");
    let kari = add_person(&db, t.id(), "Kari Nordmann", None);
    let ok = add_asset(&db, t.id(), "ok.jpg");
    let bad = add_asset(&db, t.id(), "bad.jpg");
    add_face(&db, t.id(), &ok, Some(&kari), "confirmed");
    add_face(&db, t.id(), &bad, None, "unknown");
    let app = app!(db);
    for a in [&ok, &bad] {
        let (st, _) = call!(
            &app,
            TestRequest::put()
                .uri(&format!("/api/v1/assets/{a}/legal-basis"))
                .insert_header(t.token(Role::Admin))
                .set_json(json!({"legal_basis": "consent"}))
        )
        .await;
        assert_eq!(st, StatusCode::OK);
    }
    let today = chrono::Utc::now().date_naive();
    consent!(
        &app,
        &t,
        &kari,
        json!({"channels": ["social"], "valid_from": today, "source": "digital"})
    );
    let mut c = db.conn();
    let u = use_check(&mut c, t.id(), &ok, false, today).unwrap();
    assert_eq!(u.decision, UseDecision::Allow);
    assert_eq!(u.allowed_channels, ["social"]);
    assert_eq!(
        require_use(&mut c, t.id(), &ok, false, today).unwrap(),
        None
    );
    // The day decides (the services' clock): the day before the consent starts, the same file
    // is allowed nowhere.
    let before = today.pred_opt().unwrap();
    let u = use_check(&mut c, t.id(), &ok, false, before).unwrap();
    assert_eq!(u.decision, UseDecision::Deny);
    assert!(u.allowed_channels.is_empty());
    // Default policy allow_with_permission.
    assert_eq!(
        use_check(&mut c, t.id(), &bad, false, today)
            .unwrap()
            .decision,
        UseDecision::Deny
    );
    assert!(
        require_use(&mut c, t.id(), &bad, true, today)
            .unwrap()
            .is_some()
    );
    let e = require_use(&mut c, t.id(), &bad, false, today).unwrap_err();
    assert_eq!(e.code(), "forbidden");
    for (policy, perm, want) in [
        ("block", true, UseDecision::Deny),
        ("warn", false, UseDecision::Warn),
    ] {
        diesel::update(tenants::table.filter(tenants::id.eq(t.id())))
            .set(tenants::settings_json.eq(format!(r#"{{"non_approved_use":"{policy}"}}"#)))
            .execute(&mut c)
            .unwrap();
        assert_eq!(
            use_check(&mut c, t.id(), &bad, perm, today)
                .unwrap()
                .decision,
            want,
            "{policy}"
        );
        assert_eq!(
            use_check(&mut c, t.id(), &ok, false, today)
                .unwrap()
                .decision,
            UseDecision::Allow
        );
    }
    assert_eq!(
        use_check(&mut c, "nope", &ok, true, today)
            .unwrap_err()
            .code(),
        "not_found"
    );
});

//! Publications and the use check (issue 14) through the REST API, on SQLite and PostgreSQL:
//! a CMS (integration token) records where it placed a file and when it removed it; the
//! history per file, per person (`see_persons`, audited) and filtered; the use check for today
//! (the materialised `asset_exposure`, the delivery endpoint's answer) and for other dates
//! (evaluated), with reasons that name persons only for callers who may see them; foreign and
//! unknown ids 404, bad input 400 naming the field.

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use likeness_control::audit::Who;
use likeness_control::config::Config;
use likeness_control::roles::Role;
use likeness_control::schema::{assets, audit_log, faces, persons};
use likeness_control::service::agreements::{self, NewAgreement};
use likeness_control::service::compliance::{self, LegalBasisIn};
use likeness_control::service::{Clock, exposure};
use likeness_control::{Deps, db};
use likeness_control_domain::{ConsentSource, LegalBasis};
use serde_json::{Value, json};

use crate::common::console::{console_login, get, post};
use crate::common::*;

fn start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2027, 3, 1)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn state(db: &TestDb) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.signing.public_base_url = "https://consent.example.org".into();
    cfg.matcher.url = String::new();
    cfg.server.cookie_secure = false;
    web::Data::new(Deps::with_clock(
        db.pool.clone(),
        cfg,
        Clock::manual(start()),
    ))
}

macro_rules! app {
    ($state:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .configure(|c| likeness_control::app::configure_app(c, $state.clone())),
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

macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {
        read(
            test::call_service($app, $req.to_request())
                .await
                .map_into_boxed_body(),
        )
    };
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
        let t = &self.tokens.iter().find(|(x, _)| *x == r).unwrap().1;
        ("Authorization", format!("Bearer {t}"))
    }
    fn id(&self) -> &str {
        &self.f.tenant_id
    }
}

fn person(db: &TestDb, tenant: &str, name: &str) -> String {
    let id = db::new_id();
    let now = start();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{}", &id[id.len() - 8..])),
            persons::email.eq(Some(format!("{}@example.org", id))),
            persons::never_publish.eq(false),
            persons::custom_fields_json.eq("{}"),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

/// A file showing `person` (one confirmed face), legal basis consent, computed now.
fn file_of(db: &TestDb, tenant: &str, person: &str) -> String {
    let id = db::new_id();
    let now = start();
    diesel::insert_into(assets::table)
        .values((
            assets::id.eq(&id),
            assets::tenant_id.eq(tenant),
            assets::kind.eq("image"),
            assets::filename.eq("team.jpg"),
            assets::mime.eq("image/jpeg"),
            assets::size_bytes.eq(1i64),
            assets::sha256.eq(format!("{id:0>64}")),
            assets::blob_key.eq(format!("k-{id}")),
            assets::metadata_json.eq("{}"),
            assets::current_version.eq(1),
            assets::created_at.eq(now),
            assets::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    diesel::insert_into(faces::table)
        .values((
            faces::id.eq(db::new_id()),
            faces::tenant_id.eq(tenant),
            faces::asset_id.eq(&id),
            faces::source.eq("detected"),
            faces::status.eq("confirmed"),
            faces::person_id.eq(Some(person)),
            faces::box_x1.eq(0.0),
            faces::box_y1.eq(0.0),
            faces::box_x2.eq(10.0),
            faces::box_y2.eq(10.0),
            faces::identifiable.eq(true),
            faces::template_enrolled.eq(false),
            faces::created_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    let mut c = db.conn();
    db::write_tx(&mut c, |c| {
        compliance::set_legal_basis(
            c,
            &Who::system("test", Some(tenant)),
            tenant,
            &id,
            LegalBasisIn {
                legal_basis: Some(LegalBasis::Consent),
                note: None,
            },
            now,
        )?;
        exposure::refresh_assets(c, tenant, std::slice::from_ref(&id), now).map(|_| ())
    })
    .unwrap();
    id
}

fn consent(db: &TestDb, tenant: &str, person: &str, channels: &[&str], until: &str) -> String {
    let mut c = db.conn();
    db::write_tx(&mut c, |c| {
        agreements::create(
            c,
            &Who::system("test", Some(tenant)),
            tenant,
            person,
            NewAgreement {
                channels: channels.iter().map(|s| s.to_string()).collect(),
                valid_from: day("2027-01-01"),
                valid_until: Some(day(until)),
                source: ConsentSource::PaperScan,
                covers_face_matching: false,
                signed_by_guardian: false,
                text_sha256: None,
                note: None,
            },
            start(),
        )
    })
    .unwrap()
    .id
}

fn audit_actions(db: &TestDb) -> Vec<String> {
    audit_log::table
        .order(audit_log::seq.asc())
        .select(audit_log::action)
        .load(&mut db.conn())
        .unwrap()
}

db_test!(
    publications_record_remove_and_list,
    |db: TestDb| async move {
        let t = Tenant::new(&db, "acme");
        let other = Tenant::new(&db, "other");
        let state = state(&db);
        let app = app!(state);
        let p = person(&db, t.id(), "Jane Roe");
        let a = file_of(&db, t.id(), &p);
        consent(&db, t.id(), &p, &["web"], "2027-06-30");
        let foreign_person = person(&db, other.id(), "Other Person");
        let foreign_asset = file_of(&db, other.id(), &foreign_person);

        // The CMS places the file on the web (allowed) and in print (not allowed: recorded anyway).
        let (st, web) = call!(
            &app,
            TestRequest::post()
                .uri("/api/v1/publications")
                .insert_header(t.token(Role::Integration))
                .set_json(json!({"asset_id": a, "channel": "web",
                "location": "https://news.example.org/summer", "placed_by": "cms:news"})),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{web}");
        assert_eq!(web["allowed"], true, "{web}");
        assert_eq!(web["publication"]["active"], true);
        assert_eq!(web["publication"]["placed_by"], "cms:news");
        assert_eq!(web["publication"]["filename"], "team.jpg");
        assert_eq!(web["publication"]["placed_at"], "2027-03-01T09:00:00Z");
        let web_id = web["publication"]["id"].as_str().unwrap().to_string();

        let (st, print) = call!(
            &app,
            TestRequest::post()
                .uri("/api/v1/publications")
                .insert_header(t.token(Role::Integration))
                .set_json(
                    json!({"asset_id": a, "channel": "print", "location": "catalogue-2027:p12",
                "placed_at": "2027-02-27T10:00:00+01:00"})
                ),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{print}");
        assert_eq!(print["allowed"], false, "{print}");
        assert_eq!(print["status"], "missing_consent");
        assert_eq!(print["publication"]["placed_at"], "2027-02-27T09:00:00Z");
        // Default placed_by: the caller.
        assert!(
            !print["publication"]["placed_by"]
                .as_str()
                .unwrap()
                .is_empty(),
            "{print}"
        );
        let reasons = print["reasons"].as_array().unwrap();
        assert!(!reasons.is_empty());
        // The integration may not see persons: no ids, no names.
        assert!(
            reasons.iter().all(|r| r.get("person_id").is_none()),
            "{print}"
        );
        assert!(!print.to_string().contains("Jane Roe"), "{print}");

        // A viewer may not record.
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri("/api/v1/publications")
                .insert_header(t.token(Role::Viewer))
                .set_json(json!({"asset_id": a, "channel": "web", "location": "x"})),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");

        // Per file (every user of the tenant), newest placement first.
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{a}/publications"))
                .insert_header(t.token(Role::Viewer)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["total"], 2);
        assert_eq!(v["items"][0]["id"], web_id.as_str());

        // Removal; the second one is a conflict.
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/publications/{web_id}/removal"))
                .insert_header(t.token(Role::Integration))
                .set_json(json!({"removed_by": "cms:news"})),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["active"], false);
        assert_eq!(v["removed_by"], "cms:news");
        assert_eq!(v["removed_at"], "2027-03-01T09:00:00Z");
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/publications/{web_id}/removal"))
                .insert_header(t.token(Role::Integration))
                .set_json(json!({})),
        )
        .await;
        assert_eq!(st, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["error"]["code"], "already_removed");

        // Filtered lists.
        for (q, n) in [
            ("active=true", 1),
            ("active=false", 1),
            ("channel=print", 1),
            (&format!("asset_id={a}") as &str, 2),
            ("channel=web&active=true", 0),
        ] {
            let (st, v) = call!(
                &app,
                TestRequest::get()
                    .uri(&format!("/api/v1/publications?{q}"))
                    .insert_header(t.token(Role::Viewer)),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{q}: {v}");
            assert_eq!(v["total"], n, "{q}: {v}");
        }
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/publications/{web_id}"))
                .insert_header(t.token(Role::Viewer)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["location"], "https://news.example.org/summer");

        // Where is this person's face used: needs see_persons, audited.
        for role in [Role::Viewer, Role::Integration] {
            let (st, v) = call!(
                &app,
                TestRequest::get()
                    .uri(&format!("/api/v1/persons/{p}/publications"))
                    .insert_header(t.token(role)),
            )
            .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{role}: {v}");
            let (st, _) = call!(
                &app,
                TestRequest::get()
                    .uri(&format!("/api/v1/publications?person_id={p}"))
                    .insert_header(t.token(role)),
            )
            .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{role}");
        }
        let before = audit_actions(&db)
            .iter()
            .filter(|a| *a == "publications.person.read")
            .count();
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{p}/publications"))
                .insert_header(t.token(Role::Editor)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["total"], 2, "{v}");
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/publications?person_id={p}&active=true"))
                .insert_header(t.token(Role::Editor)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["total"], 1, "{v}");
        let after = audit_actions(&db)
            .iter()
            .filter(|a| *a == "publications.person.read")
            .count();
        assert_eq!(after, before + 2);
        let actions = audit_actions(&db);
        assert!(actions.contains(&"publication.create".to_string()));
        assert!(actions.contains(&"publication.remove".to_string()));

        // Foreign and unknown ids: 404.
        let cases: Vec<(TestRequest, &str)> = vec![
            (
                TestRequest::post().uri("/api/v1/publications").set_json(
                    json!({"asset_id": foreign_asset, "channel": "web", "location": "x"}),
                ),
                "asset",
            ),
            (
                TestRequest::post()
                    .uri("/api/v1/publications")
                    .set_json(json!({"asset_id": "nope", "channel": "web", "location": "x"})),
                "asset",
            ),
            (
                TestRequest::post()
                    .uri("/api/v1/publications/nope/removal")
                    .set_json(json!({})),
                "publication",
            ),
            (
                TestRequest::get().uri(&format!("/api/v1/assets/{foreign_asset}/publications")),
                "asset",
            ),
            (
                TestRequest::get().uri(&format!("/api/v1/persons/{foreign_person}/publications")),
                "person",
            ),
            (
                TestRequest::get().uri(&format!("/api/v1/publications?person_id={foreign_person}")),
                "person",
            ),
            (
                TestRequest::get().uri("/api/v1/publications/nope"),
                "publication",
            ),
            // PostgreSQL refuses NUL bytes in text: answered before any query.
            (
                TestRequest::get().uri("/api/v1/publications/%00"),
                "publication",
            ),
            (
                TestRequest::get().uri("/api/v1/persons/%00/publications"),
                "person",
            ),
            (
                TestRequest::get().uri("/api/v1/assets/a%00b/use-check?channel=web"),
                "asset",
            ),
            (
                TestRequest::post()
                    .uri("/api/v1/publications")
                    .set_json(json!({"asset_id": "a\u{0}b", "channel": "web", "location": "x"})),
                "asset",
            ),
        ];
        for (req, what) in cases {
            let (st, v) = call!(&app, req.insert_header(t.token(Role::Admin))).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{what}: {v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(what),
                "{what}: {v}"
            );
        }
        // Another tenant's publication: 404 for its removal.
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/publications/{web_id}/removal"))
                .insert_header(other.token(Role::Admin))
                .set_json(json!({})),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

        // Bad input: 400 naming the field.
        let long = "x".repeat(2001);
        let bad = [
            (
                json!({"asset_id": a, "channel": "tv", "location": "x"}),
                "channel",
            ),
            (
                json!({"asset_id": a, "channel": "web", "location": " "}),
                "location",
            ),
            (
                json!({"asset_id": a, "channel": "web", "location": long}),
                "location",
            ),
            (
                json!({"asset_id": a, "channel": "web", "location": "x", "placed_at": "yesterday"}),
                "placed_at",
            ),
            (
                json!({"asset_id": a, "channel": "web", "location": "x",
                "placed_at": "2030-01-01T00:00:00Z"}),
                "placed_at",
            ),
            (
                json!({"asset_id": "", "channel": "web", "location": "x"}),
                "asset_id",
            ),
            (
                json!({"asset_id": a, "channel": "web", "location": "x", "colour": "red"}),
                "colour",
            ),
        ];
        for (body, field) in bad {
            let (st, v) = call!(
                &app,
                TestRequest::post()
                    .uri("/api/v1/publications")
                    .insert_header(t.token(Role::Integration))
                    .set_json(&body),
            )
            .await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
            assert!(v.to_string().contains(field), "{field}: {v}");
        }
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri("/api/v1/publications?active=maybe")
                .insert_header(t.token(Role::Viewer)),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("active:"),
            "{v}"
        );
        let print_id = print["publication"]["id"].as_str().unwrap();
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/publications/{print_id}/removal"))
                .insert_header(t.token(Role::Integration))
                .set_json(json!({"removed_at": "2027-01-01T00:00:00Z"})),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains("removed_at"), "{v}");
    }
);

db_test!(
    use_check_today_and_on_other_dates,
    |db: TestDb| async move {
        let t = Tenant::new(&db, "acme");
        let other = Tenant::new(&db, "other");
        let state = state(&db);
        let app = app!(state);
        let p = person(&db, t.id(), "Jane Roe");
        let a = file_of(&db, t.id(), &p);
        consent(&db, t.id(), &p, &["web"], "2027-06-30");
        let foreign = file_of(&db, other.id(), &person(&db, other.id(), "X"));

        let check = |q: String, role: Role| {
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{a}/use-check?{q}"))
                .insert_header(t.token(role))
        };

        // Today, allowed on the web: the stored row's answer, with the delivery URL.
        let (st, v) = call!(&app, check("channel=web".into(), Role::Integration)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["allowed"], true, "{v}");
        assert_eq!(v["status"], "approved");
        assert_eq!(v["date"], "2027-03-01");
        assert_eq!(v["until"], "2027-06-30");
        assert_eq!(
            v["delivery_url"],
            format!("https://consent.example.org/d/acme/{a}/web/large.jpg")
        );
        let rows = exposure::rows_of(&mut db.conn(), t.id(), &a).unwrap();
        let web_row = rows.iter().find(|r| r.channel == "web").unwrap();
        assert_eq!(v["status"], web_row.status.as_str());

        // Today, denied in print, with the reasons; without see_persons no id and no name.
        let (st, v) = call!(&app, check("channel=print".into(), Role::Integration)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["allowed"], false, "{v}");
        assert_eq!(v["status"], "missing_consent");
        assert_eq!(v["delivery_url"], Value::Null);
        let reasons = v["reasons"].as_array().unwrap();
        assert!(
            reasons.iter().any(|r| r["code"] == "missing_consent"),
            "{v}"
        );
        assert!(reasons.iter().all(|r| r.get("person_id").is_none()), "{v}");
        assert!(!v.to_string().contains("Jane Roe"), "{v}");

        // An editor (see_persons) sees the person, by name; the read is audited.
        let before = audit_actions(&db)
            .iter()
            .filter(|x| *x == "use_check.read")
            .count();
        let (st, v) = call!(&app, check("channel=print".into(), Role::Editor)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["reasons"][0]["person_id"], p.as_str(), "{v}");
        assert!(v.to_string().contains("Jane Roe"), "{v}");
        let after = audit_actions(&db)
            .iter()
            .filter(|x| *x == "use_check.read")
            .count();
        assert_eq!(after, before + 1);

        // Another date: evaluated. After the consent's last day: denied; before its first: denied;
        // within it: allowed.
        let (st, v) = call!(
            &app,
            check("channel=web&date=2027-07-01".into(), Role::Integration)
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["allowed"], false, "{v}");
        assert_eq!(v["date"], "2027-07-01");
        assert!(!v["reasons"].as_array().unwrap().is_empty(), "{v}");
        assert!(
            v["status"] == "expired" || v["status"] == "missing_consent",
            "{v}"
        );
        let (_, v) = call!(
            &app,
            check("channel=web&date=2026-12-31".into(), Role::Integration)
        )
        .await;
        assert_eq!(v["allowed"], false, "{v}");
        let (_, v) = call!(
            &app,
            check("channel=web&date=2027-06-30".into(), Role::Viewer)
        )
        .await;
        assert_eq!(v["allowed"], true, "{v}");
        assert_eq!(v["status"], "expiring", "{v}");
        assert!(v["delivery_url"].is_string(), "{v}");

        // Bad input names the field.
        for (q, field) in [
            ("", "channel"),
            ("channel=tv", "channel"),
            ("channel=web&date=tomorrow", "date"),
            ("channel=web&date=2027-02-30", "date"),
        ] {
            let (st, v) = call!(&app, check(q.into(), Role::Viewer)).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{field}:")),
                "{q}: {v}"
            );
        }
        // Unknown and foreign files: 404.
        for id in ["nope", foreign.as_str()] {
            let (st, v) = call!(
                &app,
                TestRequest::get()
                    .uri(&format!("/api/v1/assets/{id}/use-check?channel=web"))
                    .insert_header(t.token(Role::Viewer)),
            )
            .await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{id}: {v}");
        }
        // Time alone: the consent's end passed and the scheduler has not recomputed the stored
        // row yet; today's answer already says no.
        state.clock.advance(chrono::TimeDelta::days(122));
        let (st, v) = call!(&app, check("channel=web".into(), Role::Integration)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["date"], "2027-07-01");
        assert_eq!(v["allowed"], false, "{v}");
        assert_eq!(v["delivery_url"], Value::Null);

        // Anonymous: 401.
        let (st, _) = call!(
            &app,
            TestRequest::get().uri(&format!("/api/v1/assets/{a}/use-check?channel=web"))
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
);

db_test!(
    console_alerts_page_and_publication_sections,
    |db: TestDb| async move {
        let t = Tenant::new(&db, "acme");
        let state = state(&db);
        let app = app!(state);
        let p = person(&db, t.id(), "Jane Roe");
        let a = file_of(&db, t.id(), &p);
        let ag = consent(&db, t.id(), &p, &["web"], "2027-03-11");
        let (st, tpl) = call!(
            &app,
            TestRequest::post()
                .uri("/api/v1/consent-templates")
                .insert_header(t.token(Role::Admin))
                .set_json(json!({
                    "name": "Event photos", "title": "Photos", "body_markdown": "Photos of you.",
                    "language": "en", "scopes": [{"channel": "web", "mandatory": true}],
                    "validity_days": 365, "legal_character": "gdpr_consent",
                    "after_signing_text": "Thanks"
                })),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{tpl}");
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri("/api/v1/publications")
                .insert_header(t.token(Role::Integration))
                .set_json(json!({"asset_id": a, "channel": "web",
                    "location": "https://news.example.org/summer"})),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");

        // The alerts page: the consent, a renew button, the digest preference.
        let (admin, csrf, overview) = console_login(&app, &t.f, Role::Admin).await;
        assert!(overview.contains("href=\"/admin/alerts\""));
        let (st, html) = get(&app, &admin, "/admin/alerts").await;
        assert_eq!(st, StatusCode::OK, "{html}");
        assert!(html.contains("Jane Roe"), "{html}");
        assert!(html.contains("2027-03-11"), "{html}");
        let renew = format!("/admin/alerts/{ag}/renew");
        assert!(html.contains(&renew), "{html}");
        assert!(html.contains("name=\"opt_out\""), "{html}");

        // Without the CSRF field: refused.
        let (st, _, _) = post(&app, &admin, &renew, "").await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, loc, body) = post(&app, &admin, &renew, &format!("csrf={csrf}")).await;
        assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(loc, "/admin/alerts?notice=request_sent");
        let (_, html) = get(&app, &admin, "/admin/alerts").await;
        assert!(html.contains("/admin/requests/"), "{html}");
        assert!(!html.contains(&renew), "{html}");

        // The digest checkbox changes the user's own preference.
        let (st, loc, _) = post(
            &app,
            &admin,
            "/admin/alerts/digest",
            &format!("csrf={csrf}&opt_out=1"),
        )
        .await;
        assert_eq!(st, StatusCode::SEE_OTHER);
        assert_eq!(loc, "/admin/alerts?notice=saved");
        let (_, v) = call!(
            &app,
            TestRequest::get()
                .uri("/api/v1/users/me/digest")
                .insert_header(t.token(Role::Admin)),
        )
        .await;
        assert_eq!(v["opt_out"], true, "{v}");
        let (_, html) = get(&app, &admin, "/admin/alerts").await;
        assert!(html.contains(" checked"), "{html}");
        let (st, _, _) = post(
            &app,
            &admin,
            "/admin/alerts/digest",
            &format!("csrf={csrf}"),
        )
        .await;
        assert_eq!(st, StatusCode::SEE_OTHER);
        let (_, v) = call!(
            &app,
            TestRequest::get()
                .uri("/api/v1/users/me/digest")
                .insert_header(t.token(Role::Admin)),
        )
        .await;
        assert_eq!(v["opt_out"], false, "{v}");

        // Bad window: 400 naming it.
        let (st, html) = get(&app, &admin, "/admin/alerts?within_days=soon").await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(html.contains("within_days"), "{html}");

        // The file page and the person page show the publications.
        let (st, html) = get(&app, &admin, &format!("/admin/files/{a}")).await;
        assert_eq!(st, StatusCode::OK);
        assert!(html.contains("Where this file is used"), "{html}");
        assert!(html.contains("https://news.example.org/summer"), "{html}");
        let (st, html) = get(&app, &admin, &format!("/admin/persons/{p}")).await;
        assert_eq!(st, StatusCode::OK);
        assert!(
            html.contains("Where this person&#39;s face is used")
                || html.contains("Where this person's face is used"),
            "{html}"
        );
        assert!(html.contains("https://news.example.org/summer"), "{html}");

        // An editor (no manage_consents) neither sees nor may use the alerts page.
        let (editor, editor_csrf, overview) = console_login(&app, &t.f, Role::Editor).await;
        assert!(!overview.contains("href=\"/admin/alerts\""));
        let (st, _) = get(&app, &editor, "/admin/alerts").await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, _, _) = post(&app, &editor, &renew, &format!("csrf={editor_csrf}")).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        // ... but sees the file's publications.
        let (_, html) = get(&app, &editor, &format!("/admin/files/{a}")).await;
        assert!(html.contains("https://news.example.org/summer"), "{html}");
    }
);

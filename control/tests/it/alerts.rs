//! Expiry alerts (issue 14) on SQLite and PostgreSQL, on the services' manual clock with
//! `alerts::tick` called directly: `consent.expired` recorded once when a consent's last day
//! has passed (two ticks, one event); the daily digest through the outbox into a real SMTP
//! server (aiosmtpd), once per user and day, to the users whose role manages consents and who
//! did not opt out; the alert list; the own digest preference; a renewal request pre-filled
//! from the old agreement; foreign and unknown ids 404, bad input 400 naming the field.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use likeness_control::audit::Who;
use likeness_control::config::Config;
use likeness_control::roles::Role;
use likeness_control::schema::{agreements as agreements_t, digest_runs, outbox, persons};
use likeness_control::service::agreements::{self, NewAgreement, Withdrawal};
use likeness_control::service::{Clock, alerts, events, jobs};
use likeness_control::{Deps, db};
use likeness_control_domain::ConsentSource;
use serde_json::{Value, json};

use crate::common::mail::MailServer;
use crate::common::*;

const WAIT: Duration = Duration::from_secs(15);

fn at(s: &str) -> NaiveDateTime {
    s.parse().unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn state(db: &TestDb, now: NaiveDateTime, smtp: Option<&MailServer>) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.signing.public_base_url = "https://likeness.example.org".into();
    cfg.signing.key_file = db.dir().join("evidence-signing.key");
    cfg.matcher.url = String::new();
    cfg.mail.from = "Likeness Test <no-reply@likeness.test>".into();
    cfg.mail.timeout_ms = 3_000;
    cfg.alerts.digest_hour_utc = 7;
    if let Some(s) = smtp {
        cfg.mail.smtp_url = s.smtp_url();
    }
    let deps = web::Data::new(Deps::with_clock(db.pool.clone(), cfg, Clock::manual(now)));
    // Opened as a request's Ctx opens it: the service seals persons' free text under their key.
    deps.vault().unwrap();
    deps
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

fn person(db: &TestDb, tenant: &str, name: &str, email: Option<&str>) -> String {
    let id = db::new_id();
    let now = at("2027-01-01T00:00:00");
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{}", &id[id.len() - 8..])),
            persons::email.eq(email),
            persons::never_publish.eq(false),
            persons::custom_fields_json.eq("{}"),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

fn consent(db: &TestDb, tenant: &str, person: &str, until: &str) -> String {
    let mut c = db.conn();
    db::write_tx(&mut c, |c| {
        agreements::create(
            c,
            &Who::system("test", Some(tenant)),
            tenant,
            person,
            NewAgreement {
                channels: vec!["web".into(), "print".into()],
                valid_from: day("2027-01-01"),
                valid_until: Some(day(until)),
                source: ConsentSource::PaperScan,
                covers_face_matching: false,
                signed_by_guardian: false,
                text_sha256: None,
                note: None,
            },
            at("2027-01-01T00:00:00"),
        )
    })
    .unwrap()
    .id
}

fn expired_events(db: &TestDb, tenant: &str) -> Vec<Value> {
    events::list(&mut db.conn(), tenant, Some(events::CONSENT_EXPIRED))
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.payload_json).unwrap())
        .collect()
}

fn digest_rows(db: &TestDb, tenant: &str) -> Vec<(String, NaiveDate)> {
    digest_runs::table
        .filter(digest_runs::tenant_id.eq(tenant))
        .order((digest_runs::day.asc(), digest_runs::user_id.asc()))
        .select((digest_runs::user_id, digest_runs::day))
        .load(&mut db.conn())
        .unwrap()
}

fn digest_messages_to(db: &TestDb, to: &str) -> i64 {
    outbox::table
        .filter(outbox::purpose.eq("digest"))
        .filter(outbox::destination.eq(to))
        .count()
        .get_result(&mut db.conn())
        .unwrap()
}

db_test!(consent_expired_is_recorded_once, |db: TestDb| async move {
    let t = Tenant::new(&db, "acme");
    let state = state(&db, at("2027-03-01T09:00:00"), None);
    let p = person(&db, t.id(), "Jane Roe", None);
    let ends = consent(&db, t.id(), &p, "2027-03-10");
    let withdrawn = consent(&db, t.id(), &p, "2027-03-05");
    let mut c = db.conn();
    db::write_tx(&mut c, |c| {
        agreements::withdraw_at(
            c,
            &Who::system("test", Some(t.id())),
            t.id(),
            &withdrawn,
            Withdrawal {
                at: Some(at("2027-02-01T00:00:00")),
                reason: "asked".into(),
            },
            at("2027-02-01T00:00:00"),
        )
        .map(|_| ())
    })
    .unwrap();

    // In force: nothing to announce.
    alerts::tick(&state).await.unwrap();
    assert!(expired_events(&db, t.id()).is_empty());
    // Its last day: still in force.
    state.clock.advance(TimeDelta::days(9));
    alerts::tick(&state).await.unwrap();
    assert!(expired_events(&db, t.id()).is_empty());
    // The day after: announced once, however many ticks (and never the withdrawn one).
    state.clock.advance(TimeDelta::days(1));
    alerts::tick(&state).await.unwrap();
    alerts::tick(&state).await.unwrap();
    state.clock.advance(TimeDelta::hours(5));
    alerts::tick(&state).await.unwrap();
    let ev = expired_events(&db, t.id());
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["agreement_id"], ends.as_str());
    assert_eq!(ev[0]["person_id"], p.as_str());
    assert_eq!(ev[0]["valid_until"], "2027-03-10");
    assert_eq!(ev[0]["channels"], json!(["web", "print"]));
    let announced: Option<NaiveDateTime> = agreements_t::table
        .filter(agreements_t::id.eq(&ends))
        .select(agreements_t::end_announced_at)
        .first(&mut db.conn())
        .unwrap();
    assert_eq!(announced, Some(at("2027-03-11T09:00:00")));
});

db_test!(
    digest_once_per_day_to_managers_who_did_not_opt_out,
    |db: TestDb| async move {
        let smtp = MailServer::start();
        let t = Tenant::new(&db, "acme");
        let quiet = Tenant::new(&db, "quiet");
        let state = state(&db, at("2027-03-01T06:00:00"), Some(&smtp));
        let app = app!(state);
        let p = person(&db, t.id(), "Jane Roe", None);
        consent(&db, t.id(), &p, "2027-03-20");
        // Outside the notice period (30 days): not in the digest.
        let q = person(&db, t.id(), "Later Person", None);
        consent(&db, t.id(), &q, "2027-09-01");
        // The quiet tenant's consent ends far away: no digest there.
        let r = person(&db, quiet.id(), "Quiet Person", None);
        consent(&db, quiet.id(), &r, "2028-01-01");

        // The privacy officer opts out (their own preference).
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri("/api/v1/users/me/digest")
                .insert_header(t.token(Role::PrivacyOfficer)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["opt_out"], false);
        assert_eq!(v["recipient"], true);
        let (st, v) = call!(
            &app,
            TestRequest::put()
                .uri("/api/v1/users/me/digest")
                .insert_header(t.token(Role::PrivacyOfficer))
                .set_json(json!({"opt_out": true})),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["opt_out"], true);
        let (st, v) = call!(
            &app,
            TestRequest::put()
                .uri("/api/v1/users/me/digest")
                .insert_header(t.token(Role::Editor))
                .set_json(json!({"opt_out": "yes"})),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains("opt_out"), "{v}");
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri("/api/v1/users/me/digest")
                .insert_header(t.token(Role::Editor)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["recipient"], false, "{v}");

        // Before the digest hour: nothing.
        alerts::tick(&state).await.unwrap();
        assert!(digest_rows(&db, t.id()).is_empty());

        // From the hour on: one digest to the admin (manages consents, did not opt out); none to
        // the privacy officer (opted out) nor the editor (cannot manage consents).
        state.clock.advance(TimeDelta::hours(2));
        alerts::tick(&state).await.unwrap();
        alerts::tick(&state).await.unwrap();
        let admin = t.f.user(Role::Admin).0.to_string();
        assert_eq!(
            digest_rows(&db, t.id()),
            vec![(admin.clone(), day("2027-03-01"))]
        );
        assert!(digest_rows(&db, quiet.id()).is_empty());
        jobs::run_until_idle(&state, "alerts-test").await.unwrap();
        let mail = smtp.wait_for("admin@acme.test", WAIT).await;
        assert!(
            mail.subject.contains("1 consent ends soon"),
            "{}",
            mail.subject
        );
        // Pseudonyms only in the e-mail (names stay in the console, behind a login).
        assert!(!mail.text.contains("Jane Roe"), "{}", mail.text);
        assert!(
            mail.text.contains(&format!("P-{}", &p[p.len() - 8..])),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("2027-03-20"), "{}", mail.text);
        assert!(!mail.text.contains("Later Person"), "{}", mail.text);
        assert!(
            mail.text
                .contains("https://likeness.example.org/admin/alerts"),
            "{}",
            mail.text
        );
        assert_eq!(digest_messages_to(&db, "admin@acme.test"), 1);
        assert_eq!(digest_messages_to(&db, "privacy-officer@acme.test"), 0);
        assert_eq!(digest_messages_to(&db, "editor@acme.test"), 0);
        assert!(smtp.messages_to("privacy-officer@acme.test").is_empty());

        // Later the same day: no second one.
        state.clock.advance(TimeDelta::hours(10));
        alerts::tick(&state).await.unwrap();
        assert_eq!(digest_messages_to(&db, "admin@acme.test"), 1);

        // The next day before the hour: none yet; past it: the next digest.
        state.clock.advance(TimeDelta::hours(12));
        alerts::tick(&state).await.unwrap();
        assert_eq!(digest_messages_to(&db, "admin@acme.test"), 1);
        state.clock.advance(TimeDelta::hours(2));
        alerts::tick(&state).await.unwrap();
        assert_eq!(digest_messages_to(&db, "admin@acme.test"), 2);
        assert_eq!(digest_rows(&db, t.id()).len(), 2);
        jobs::run_until_idle(&state, "alerts-test").await.unwrap();
        smtp.wait_for_nth("admin@acme.test", 2, WAIT).await;
        assert!(smtp.messages_to("privacy-officer@acme.test").is_empty());
    }
);

db_test!(alert_list_and_renewal, |db: TestDb| async move {
    let t = Tenant::new(&db, "acme");
    let other = Tenant::new(&db, "other");
    let state = state(&db, at("2027-03-01T09:00:00"), None);
    let app = app!(state);
    let p = person(&db, t.id(), "Jane Roe", Some("jane@example.org"));
    let soon = consent(&db, t.id(), &p, "2027-03-11");
    let later = consent(&db, t.id(), &p, "2027-05-30");
    let o = person(&db, other.id(), "Other", Some("o@example.org"));
    let foreign = consent(&db, other.id(), &o, "2027-03-11");

    // The default window is the notice period (30 days).
    let (st, v) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/alerts")
            .insert_header(t.token(Role::PrivacyOfficer)),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["within_days"], 30);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["agreement_id"], soon.as_str());
    assert_eq!(items[0]["person_name"], "Jane Roe");
    assert_eq!(items[0]["days_left"], 10);
    assert_eq!(items[0]["files"], 0);
    assert_eq!(items[0]["renewal_request"], Value::Null);
    let (_, v) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/alerts?within_days=120")
            .insert_header(t.token(Role::PrivacyOfficer)),
    )
    .await;
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["agreement_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![soon.as_str(), later.as_str()], "soonest first");
    for q in ["within_days=abc", "within_days=-1", "within_days=99999"] {
        let (st, v) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/alerts?{q}"))
                .insert_header(t.token(Role::PrivacyOfficer)),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("within_days:"),
            "{v}"
        );
    }
    for role in [Role::Editor, Role::Viewer, Role::Integration] {
        let (st, _) = call!(
            &app,
            TestRequest::get()
                .uri("/api/v1/alerts")
                .insert_header(t.token(role)),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{role}");
        let (st, _) = call!(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/agreements/{soon}/renewal"))
                .insert_header(t.token(role)),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{role}");
    }

    // Renewal without a template in the tenant: 400 naming template_id.
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/agreements/{soon}/renewal"))
            .insert_header(t.token(Role::PrivacyOfficer)),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("template_id"), "{v}");

    let (st, tpl) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/consent-templates")
            .insert_header(t.token(Role::Admin))
            .set_json(json!({
                "name": "Event photos",
                "title": "Photos at the summer event",
                "body_markdown": "We would like to use photos of you.",
                "language": "en",
                "scopes": [{"channel": "web", "mandatory": true}, {"channel": "print"}],
                "validity_days": 365,
                "legal_character": "gdpr_consent",
                "after_signing_text": "Thank you!"
            })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{tpl}");

    // One call: a signing request for the same person, purpose renewal.
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/agreements/{soon}/renewal"))
            .insert_header(t.token(Role::PrivacyOfficer)),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["purpose"], "renewal");
    assert_eq!(v["renews_agreement_id"], soon.as_str());
    assert_eq!(v["person_id"], p.as_str());
    assert_eq!(v["template_id"], tpl["id"]);
    assert_eq!(v["channel"], "email");
    assert_eq!(v["status"], "sent");
    let request_id = v["id"].as_str().unwrap().to_string();
    // The message is about the person: sealed under their key (the vault), never plain.
    let queued: Vec<String> = outbox::table
        .filter(outbox::related_id.eq(&request_id))
        .filter(outbox::person_id.eq(&p))
        .select(outbox::destination)
        .load(&mut db.conn())
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert!(queued[0].starts_with("pv1:"), "{queued:?}");
    assert!(!queued[0].contains("jane@example.org"));
    // The alert shows it; a second renewal while it waits is a conflict.
    let (_, v) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/alerts")
            .insert_header(t.token(Role::Admin)),
    )
    .await;
    assert_eq!(v["items"][0]["renewal_request"]["id"], request_id.as_str());
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/agreements/{soon}/renewal"))
            .insert_header(t.token(Role::PrivacyOfficer))
            .set_json(json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "renewal_pending");

    // Foreign and unknown agreements: 404; bad input: 400 naming the field.
    for id in [foreign.as_str(), "nope", "%00"] {
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/agreements/{id}/renewal"))
                .insert_header(t.token(Role::PrivacyOfficer)),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{id}: {v}");
    }
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/agreements/{later}/renewal"))
            .insert_header(t.token(Role::PrivacyOfficer))
            .set_json(json!({"channel": "pigeon"})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("pigeon"), "{v}");
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/agreements/{later}/renewal"))
            .insert_header(t.token(Role::PrivacyOfficer))
            .set_json(json!({"language": "fr"})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("language:"),
        "{v}"
    );
});

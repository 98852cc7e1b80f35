//! The register of persons and the audit log (reads audited, tampering found) — on SQLite and
//! PostgreSQL.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use diesel::prelude::*;
use likeness_control::audit;
use likeness_control::domain_audit::BreakKind;
use likeness_control::roles::Role;
use likeness_control::schema::{audit_log, tenants};
use serde_json::{Value, json};

async fn call<S, B>(app: &S, req: actix_web::test::TestRequest) -> (StatusCode, Value)
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
    let bytes = test::read_body(resp).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn bearer(t: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {t}"))
}

db_test!(
    person_crud_minor_pseudonyms_and_audited_reads,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let admin = token_for(&db, &f.tenant_id, f.user(Role::Admin).0);
        let editor = token_for(&db, &f.tenant_id, f.user(Role::Editor).0);
        let viewer = token_for(&db, &f.tenant_id, f.user(Role::Viewer).0);
        let app = test_app!(db);

        let kid_dob =
            (chrono::Utc::now().date_naive() - chrono::TimeDelta::days(365 * 10)).to_string();
        let (st, kid) = call(&app, TestRequest::post().uri("/api/v1/persons").insert_header(bearer(&editor))
        .set_json(json!({"name": "Kari Nordmann", "date_of_birth": kid_dob, "email": "kari@example.org",
                         "custom_fields": {"team": "U12"}}))).await;
        assert_eq!(st, StatusCode::CREATED, "{kid}");
        assert_eq!(kid["minor"], true);
        assert_eq!(kid["display_name"], "Kari Nordmann");
        assert!(kid["pseudonym"].as_str().unwrap().starts_with("P-"));
        let kid_id = kid["id"].as_str().unwrap().to_string();

        let (st, adult) = call(&app, TestRequest::post().uri("/api/v1/persons").insert_header(bearer(&editor))
        .set_json(json!({"name": "Ola Nordmann", "date_of_birth": "1980-05-01", "phone": "+4712345678"}))).await;
        assert_eq!(st, StatusCode::CREATED, "{adult}");
        assert_eq!(adult["minor"], false);
        let adult_id = adult["id"].as_str().unwrap().to_string();

        // Bad input names the field.
        for (body, field) in [
            (json!({"name": ""}), "name"),
            (json!({"name": "X", "email": "not-an-email"}), "email"),
            (
                json!({"name": "X", "date_of_birth": "2999-01-01"}),
                "date_of_birth",
            ),
            (
                json!({"name": "X", "guardian_person_id": "nope"}),
                "guardian_person_id",
            ),
        ] {
            let (st, v) = call(
                &app,
                TestRequest::post()
                    .uri("/api/v1/persons")
                    .insert_header(bearer(&editor))
                    .set_json(body),
            )
            .await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(field),
                "{v}"
            );
        }

        // Guardian link, never_publish, clearing with null.
        let (st, v) = call(
            &app,
            TestRequest::patch()
                .uri(&format!("/api/v1/persons/{kid_id}"))
                .insert_header(bearer(&editor))
                .set_json(
                    json!({"guardian_person_id": adult_id, "never_publish": true, "email": null}),
                ),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["guardian_person_id"], adult_id);
        assert_eq!(v["never_publish"], true);
        assert!(v["email"].is_null());

        // List: filter, sort, paginate.
        let (st, v) = call(
            &app,
            TestRequest::get()
                .uri("/api/v1/persons?sort=-name&per_page=1")
                .insert_header(bearer(&editor)),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["total"], 2);
        assert_eq!(v["items"][0]["name"], "Ola Nordmann");
        let (_, v) = call(
            &app,
            TestRequest::get()
                .uri("/api/v1/persons?never_publish=true")
                .insert_header(bearer(&editor)),
        )
        .await;
        assert_eq!(v["total"], 1);
        let (_, v) = call(
            &app,
            TestRequest::get()
                .uri("/api/v1/persons?q=KARI")
                .insert_header(bearer(&editor)),
        )
        .await;
        assert_eq!(v["items"][0]["id"], kid_id);
        let (st, v) = call(
            &app,
            TestRequest::get()
                .uri("/api/v1/persons?sort=email")
                .insert_header(bearer(&editor)),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

        // The viewer sees no personal data.
        let (st, v) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{kid_id}"))
                .insert_header(bearer(&viewer)),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert_eq!(v["error"]["code"], "forbidden");

        // Pseudonymous names: the editor sees the pseudonym, the admin (export) the name.
        diesel::update(tenants::table.filter(tenants::id.eq(&f.tenant_id)))
            .set(tenants::settings_json.eq(r#"{"pseudonymous_names":true,"age_threshold":18}"#))
            .execute(&mut *db.conn())
            .unwrap();
        let (_, v) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{kid_id}"))
                .insert_header(bearer(&editor)),
        )
        .await;
        assert!(v["name"].is_null(), "{v}");
        assert_eq!(v["display_name"], kid["pseudonym"]);
        let (_, v) = call(
            &app,
            TestRequest::get()
                .uri("/api/v1/persons?q=kari")
                .insert_header(bearer(&editor)),
        )
        .await;
        assert!(v["items"][0]["name"].is_null());
        let (_, v) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{kid_id}"))
                .insert_header(bearer(&admin)),
        )
        .await;
        assert_eq!(v["name"], "Kari Nordmann");

        // Every read is in the audit log with who and what.
        let (st, v) = call(
            &app,
            TestRequest::get()
                .uri(&format!(
                    "/api/v1/audit?object_id={kid_id}&action=person.read"
                ))
                .insert_header(bearer(&admin)),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        let reads = v["items"].as_array().unwrap();
        assert_eq!(reads.len(), 2, "{v}"); // the editor's and the admin's; the refused viewer read is not a read
        assert!(
            reads.iter().any(|e| e["actor_label"] == "token:test"
                && e["actor_user_id"] == f.user(Role::Editor).0)
        );
        let (_, v) = call(
            &app,
            TestRequest::get()
                .uri("/api/v1/audit?action=person.list")
                .insert_header(bearer(&admin)),
        )
        .await;
        assert!(v["items"].as_array().unwrap().len() >= 4);

        // Delete is an erasure: the editor (no `erase`) is refused, the admin erases; then it
        // is gone (the erasure ran inline, its job queued in case it had stopped).
        let (st, v) = call(
            &app,
            TestRequest::delete()
                .uri(&format!("/api/v1/persons/{kid_id}"))
                .insert_header(bearer(&editor)),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("erase"),
            "{v}"
        );
        let (st, _) = call(
            &app,
            TestRequest::delete()
                .uri(&format!("/api/v1/persons/{kid_id}"))
                .insert_header(bearer(&admin)),
        )
        .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let (st, _) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{kid_id}"))
                .insert_header(bearer(&editor)),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        {
            use likeness_control::schema::jobs;
            let kinds: Vec<String> = jobs::table
                .select(jobs::kind)
                .load(&mut *db.conn())
                .unwrap();
            // DELETE is the full erasure (issue 15): it ran inline (no templates to remove
            // here) with its durable job queued to take over had it stopped.
            assert!(kinds.iter().any(|k| k == "erase_person"), "{kinds:?}");
        }
        let report = audit::verify(&mut db.conn()).unwrap();
        assert!(report.ok(), "{report:?}");
    }
);

db_test!(
    another_tenants_person_is_not_found,
    |db: TestDb| async move {
        let a = fixture(&db, "acme");
        let b = fixture(&db, "other");
        let a_admin = token_for(&db, &a.tenant_id, a.user(Role::Admin).0);
        let b_admin = token_for(&db, &b.tenant_id, b.user(Role::Admin).0);
        let app = test_app!(db);
        let (_, p) = call(
            &app,
            TestRequest::post()
                .uri("/api/v1/persons")
                .insert_header(bearer(&a_admin))
                .set_json(json!({"name": "Secret"})),
        )
        .await;
        let id = p["id"].as_str().unwrap();
        for req in [
            TestRequest::get().uri(&format!("/api/v1/persons/{id}")),
            TestRequest::patch()
                .uri(&format!("/api/v1/persons/{id}"))
                .set_json(json!({"name": "x"})),
            TestRequest::delete().uri(&format!("/api/v1/persons/{id}")),
        ] {
            let (st, v) = call(&app, req.insert_header(bearer(&b_admin))).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
        }
        let (_, v) = call(
            &app,
            TestRequest::get()
                .uri("/api/v1/persons")
                .insert_header(bearer(&b_admin)),
        )
        .await;
        assert_eq!(v["total"], 0);
        let (_, v) = call(
            &app,
            TestRequest::get()
                .uri("/api/v1/audit")
                .insert_header(bearer(&b_admin)),
        )
        .await;
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["object_id"] != id)
        );
    }
);

/// Builds a chain of a few entries and returns the DB.
fn chain(db: &TestDb) -> i64 {
    let f = fixture(db, "acme");
    let who = likeness_control::audit::Who::system("test", Some(&f.tenant_id));
    let mut c = db.conn();
    for i in 0..5 {
        likeness_control::db::write_tx(&mut c, |c| {
            audit::record(
                c,
                &who,
                "person.read",
                "person",
                Some(&format!("p{i}")),
                json!({"i": i}),
            )
        })
        .unwrap();
    }
    let r = audit::verify(&mut c).unwrap();
    assert!(r.ok(), "{r:?}");
    r.last_seq
}

db_test!(
    audit_verify_finds_an_edited_entry,
    |db: TestDb| async move {
        let last = chain(&db);
        diesel::update(audit_log::table.filter(audit_log::seq.eq(last - 2)))
            .set(audit_log::ip.eq(Some("203.0.113.9")))
            .execute(&mut *db.conn())
            .unwrap();
        let b = audit::verify(&mut db.conn())
            .unwrap()
            .first_break
            .expect("edit found");
        assert_eq!((b.seq, b.kind), (last - 2, BreakKind::Edited), "{b:?}");
    }
);

db_test!(
    audit_verify_finds_reordered_entries,
    |db: TestDb| async move {
        let last = chain(&db);
        let mut c = db.conn();
        for (from, to) in [(last - 2, -1), (last - 1, last - 2), (-1, last - 1)] {
            diesel::update(audit_log::table.filter(audit_log::seq.eq(from)))
                .set(audit_log::seq.eq(to))
                .execute(&mut *c)
                .unwrap();
        }
        let b = audit::verify(&mut c)
            .unwrap()
            .first_break
            .expect("reorder found");
        assert_eq!(b.kind, BreakKind::Reordered, "{b:?}");
    }
);

db_test!(
    audit_verify_finds_removed_entries,
    |db: TestDb| async move {
        let last = chain(&db);
        let mut c = db.conn();
        diesel::delete(audit_log::table.filter(audit_log::seq.eq(last - 3)))
            .execute(&mut *c)
            .unwrap();
        let b = audit::verify(&mut c)
            .unwrap()
            .first_break
            .expect("removal found");
        assert_eq!((b.seq, b.kind), (last - 3, BreakKind::Removed), "{b:?}");
    }
);

db_test!(audit_verify_finds_a_removed_tail, |db: TestDb| async move {
    let last = chain(&db);
    let mut c = db.conn();
    diesel::delete(audit_log::table.filter(audit_log::seq.eq(last)))
        .execute(&mut *c)
        .unwrap();
    let b = audit::verify(&mut c)
        .unwrap()
        .first_break
        .expect("tail removal found");
    assert_eq!((b.seq, b.kind), (last, BreakKind::Removed), "{b:?}");
});

db_test!(cli_create_admin_and_audit_verify, |db: TestDb| async move {
    let bin = env!("CARGO_BIN_EXE_likeness-control");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env("LIKENESS_CONTROL__DATABASE__URL", &db.url)
            .env("LIKENESS_ADMIN_PASSWORD", "cli-password-123")
            .output()
            .unwrap()
    };
    let out = run(&[
        "create-admin",
        "--tenant",
        "demo",
        "--email",
        "admin@demo.test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "create-admin",
        "--tenant",
        "demo",
        "--email",
        "admin@demo.test",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
    diesel::update(audit_log::table.filter(audit_log::seq.eq(1)))
        .set(audit_log::action.eq("tenant.renamed"))
        .execute(&mut *db.conn())
        .unwrap();
    let out = run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BROKEN at seq 1 (edited)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The login works with the CLI-made admin.
    let app = test_app!(db);
    let (st, v) = call(
        &app,
        TestRequest::post().uri("/api/v1/auth/login").set_json(
            json!({"tenant": "demo", "email": "admin@demo.test", "password": "cli-password-123"}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
});

db_test!(person_timestamps_are_rfc3339_utc, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let editor = token_for(&db, &f.tenant_id, f.user(Role::Editor).0);
    let app = test_app!(db);
    let (st, p) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/persons")
            .insert_header(bearer(&editor))
            .set_json(json!({"name": "Zulu"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    for key in ["created_at", "updated_at"] {
        let at = p[key].as_str().unwrap();
        assert!(at.ends_with('Z'), "{key}: {at}");
        let parsed = chrono::DateTime::parse_from_rfc3339(at).unwrap();
        let age = chrono::Utc::now().signed_duration_since(parsed);
        assert!(age.num_seconds().abs() < 300, "{key}: {at} is not UTC now");
    }
});

//! The console's data-subject rights in process, on SQLite and PostgreSQL: the rights policy
//! form (saved, audited, refused without CSRF, 400 naming a bad field, 403 for a viewer), the
//! record of processing (page, JSON and self-contained HTML over REST, minors counted through
//! the vault, the matcher's bench rates), and a person's page: export requested and listed,
//! erasure with its consequences shown before confirming, refused without the confirmation and
//! to a role without `erase`, then the run's page.

use actix_web::http::{StatusCode, header};
use actix_web::test;
use diesel::prelude::*;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::{audit_log, persons};
use likeness_control::service::vault::Personal;
use likeness_control::service::{Ctx, rights_settings};
use likeness_control_domain::rights::ErasureFiles;

use crate::common::console::{body_text, console_login, console_state, get, post};
use crate::common::{TestDb, fixture, token_for};

/// A person whose personal fields are sealed through the vault (as the services store them).
fn sealed_person(
    db: &TestDb,
    st: &actix_web::web::Data<likeness_control::Deps>,
    tenant: &str,
    name: &str,
    dob: Option<chrono::NaiveDate>,
) -> String {
    let id = db::new_id();
    let vault = st.vault().unwrap();
    let sealed = vault
        .seal_personal(
            tenant,
            &id,
            &Personal {
                name: name.into(),
                email: Some(format!(
                    "{}@example.test",
                    name.to_lowercase().replace(' ', ".")
                )),
                phone: None,
                date_of_birth: dob,
                guardian_name: None,
                guardian_contact: None,
                custom_fields: serde_json::json!({}),
            },
        )
        .unwrap();
    let now = db::now();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(""),
            persons::pseudonym.eq(format!("P-{}", &id[id.len() - 6..])),
            persons::never_publish.eq(false),
            persons::custom_fields_json.eq("{}"),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
            persons::sealed.eq(Some(sealed)),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

db_test!(policy_form_and_record, |db: TestDb| async move {
    let f = fixture(&db, "rights");
    let st = console_state(&db);
    let app = console_test_app!(st);
    let (admin, csrf, _) = console_login(&app, &f, Role::Admin).await;

    // The settings page links to both pages.
    let (s, html) = get(&app, &admin, "/admin/settings").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("href=\"/admin/settings/rights\""), "{html}");
    assert!(html.contains("href=\"/admin/settings/processing-record\""));

    let (s, html) = get(&app, &admin, "/admin/settings/rights").await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("<h1>Data-subject rights</h1>"));
    assert!(html.contains("value=\"365\""));

    // Without the CSRF token: refused, nothing changes.
    let form = "erasure_files=hide&document_retention_days=30&evidence_retention_years=5&export_ttl_hours=24";
    let (s, _, _) = post(&app, &admin, "/admin/settings/rights", form).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A bad number: 400 naming the field.
    let bad = format!(
        "csrf={csrf}&erasure_files=hide&document_retention_days=soon&evidence_retention_years=5&export_ttl_hours=24"
    );
    let (s, _, body) = post(&app, &admin, "/admin/settings/rights", &bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("document_retention_days"), "{body}");
    // Out of range: the domain's validation names the field.
    let bad = format!(
        "csrf={csrf}&erasure_files=hide&document_retention_days=30&evidence_retention_years=5&export_ttl_hours=0"
    );
    let (s, _, body) = post(&app, &admin, "/admin/settings/rights", &bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("export_ttl_hours"), "{body}");
    // Saved.
    let (s, loc, _) = post(
        &app,
        &admin,
        "/admin/settings/rights",
        &format!("csrf={csrf}&{form}"),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(loc, "/admin/settings/rights?notice=policy_saved");
    let saved = rights_settings::get(&mut db.conn(), &f.tenant_id).unwrap();
    assert_eq!(saved.erasure_files, ErasureFiles::Hide);
    assert!(!saved.keep_on_other_basis);
    assert_eq!(
        (
            saved.document_retention_days,
            saved.evidence_retention_years,
            saved.export_ttl_hours
        ),
        (30, 5, 24)
    );
    let audited: i64 = audit_log::table
        .filter(audit_log::action.eq("rights.update"))
        .count()
        .get_result(&mut db.conn())
        .unwrap();
    assert_eq!(audited, 1);
    let (_, html) = get(&app, &admin, "/admin/settings/rights?notice=policy_saved").await;
    assert!(html.contains("The rights policy was saved."));
    assert!(html.contains("value=\"30\""));

    // A viewer neither sees nor changes it.
    let (viewer, vcsrf, _) = console_login(&app, &f, Role::Viewer).await;
    let (s, _) = get(&app, &viewer, "/admin/settings/rights").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = get(&app, &viewer, "/admin/settings/processing-record").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = post(
        &app,
        &viewer,
        "/admin/settings/rights",
        &format!("csrf={vcsrf}&{form}"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The record of processing: a minor and an adult, read through the vault.
    let today = chrono::Utc::now().date_naive();
    sealed_person(
        &db,
        &st,
        &f.tenant_id,
        "Mia Minor",
        today.checked_sub_months(chrono::Months::new(12 * 10)),
    );
    sealed_person(
        &db,
        &st,
        &f.tenant_id,
        "Ada Adult",
        chrono::NaiveDate::from_ymd_opt(1980, 1, 1),
    );
    let (s, html) = get(&app, &admin, "/admin/settings/processing-record").await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("<h1>Record of processing activities</h1>"));
    assert!(html.contains("id=\"record-persons\">2<"), "{html}");
    assert!(html.contains("id=\"record-minors\">1<"), "{html}");
    assert!(html.contains("Biometric templates"));
    // The bench's open-set row at 0.45: 0.568 % of strangers get a suggestion.
    assert!(
        html.contains("id=\"record-false-suggestion\">0.57 %<"),
        "{html}"
    );
    assert!(html.contains("bench/results/identify.json"));
    // The policy just saved shows in the retention.
    assert!(html.contains("30 days after the agreement ended"), "{html}");

    // Over REST: JSON, HTML, a bad format, a role without the permission.
    let (admin_id, _) = f.user(Role::Admin);
    let token = token_for(&db, &f.tenant_id, admin_id);
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/v1/processing-record")
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
    assert_eq!(v["schema"], "likeness.processing_record/1");
    assert_eq!(v["categories_of_persons"]["minors"], 1);
    assert_eq!(v["retention"]["policy"]["document_retention_days"], 30);
    assert!(v["matcher"]["false_suggestion_rate"].as_f64().unwrap() < 0.01);
    let text = v.to_string();
    assert!(!text.contains("Mia Minor") && !text.contains("Ada Adult"));
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/v1/processing-record?format=html")
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()
            .get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = body_text(resp).await;
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Self-contained: no scripts, no external resources.
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("<link"));
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/v1/processing-record?format=xml")
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (viewer_id, _) = f.user(Role::Viewer);
    let vtoken = token_for(&db, &f.tenant_id, viewer_id);
    for uri in ["/api/v1/processing-record", "/api/v1/settings/rights"] {
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri(uri)
                .insert_header((header::AUTHORIZATION, format!("Bearer {vtoken}")))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{uri}");
    }
    // PUT: an unknown field is refused, a valid policy saved.
    for (body, want) in [
        (r#"{"erase_everything":true}"#, StatusCode::BAD_REQUEST),
        (r#"{"document_retention_days":90}"#, StatusCode::OK),
    ] {
        let resp = test::call_service(
            &app,
            test::TestRequest::put()
                .uri("/api/v1/settings/rights")
                .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), want, "{body}");
    }
    let ctx = Ctx::system(st.clone().into_inner(), &f.tenant_id, "test");
    let now = rights_settings::get_rights_settings(&ctx).await.unwrap();
    assert_eq!(now.document_retention_days, 90);
});

db_test!(person_export_and_erasure, |db: TestDb| async move {
    let f = fixture(&db, "rights-p");
    let st = console_state(&db);
    let app = console_test_app!(st);
    let (admin, csrf, _) = console_login(&app, &f, Role::Admin).await;
    let id = sealed_person(&db, &st, &f.tenant_id, "Erin Erase", None);

    // The person's page offers the export and the review of the erasure (not a direct delete).
    let (s, html) = get(&app, &admin, &format!("/admin/persons/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("Export everything about this person"),
        "{html}"
    );
    assert!(html.contains(&format!("href=\"/admin/persons/{id}/erase\"")));

    // Export: requested, then listed with its status.
    let (s, _, _) = post(&app, &admin, &format!("/admin/persons/{id}/exports"), "").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, loc, body) = post(
        &app,
        &admin,
        &format!("/admin/persons/{id}/exports"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    assert!(loc.contains("notice=export_requested"), "{loc}");
    let (_, html) = get(&app, &admin, &format!("/admin/persons/{id}")).await;
    assert!(html.contains("data-export-status="), "{html}");

    // Erasure: the consequences first.
    let (s, html) = get(&app, &admin, &format!("/admin/persons/{id}/erase")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Erase this person?"));
    assert!(html.contains("They appear in no file."));
    // An editor (no `erase`) may not see or start it.
    let (editor, ecsrf, _) = console_login(&app, &f, Role::Editor).await;
    let (s, _) = get(&app, &editor, &format!("/admin/persons/{id}/erase")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = post(
        &app,
        &editor,
        &format!("/admin/persons/{id}/erase"),
        &format!("csrf={ecsrf}&confirm=yes"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Unknown person: 404.
    let (s, _) = get(&app, &admin, "/admin/persons/no-such-person/erase").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Without the confirmation: back to the consequences, nothing erased.
    let (s, loc, _) = post(
        &app,
        &admin,
        &format!("/admin/persons/{id}/erase"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(loc, format!("/admin/persons/{id}/erase?error=confirm"));
    let (_, html) = get(&app, &admin, &loc).await;
    assert!(html.contains("Tick the box to confirm the erasure."));
    let sealed: Option<String> = persons::table
        .filter(persons::id.eq(&id))
        .select(persons::sealed)
        .first(&mut db.conn())
        .unwrap();
    assert!(sealed.is_some());
    // Confirmed: the run's page.
    let (s, loc, body) = post(
        &app,
        &admin,
        &format!("/admin/persons/{id}/erase"),
        &format!("csrf={csrf}&confirm=yes"),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    assert!(loc.starts_with("/admin/erasures/"), "{loc}");
    let (s, html) = get(&app, &admin, &loc).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"erasure-run\""));
    assert!(!html.contains("Erin Erase"));
    // The review page now leads to the run.
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/admin/persons/{id}/erase"))
            .cookie(admin.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
});

//! SIGNING: agreement templates through the REST API on SQLite and PostgreSQL — create, list,
//! read, versioning (a sent version is never changed), archive, permissions, validation errors
//! that name the field, and hostile Markdown rendered safely.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use diesel::prelude::*;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::audit_log;
use likeness_control::service::consent_templates;
use serde_json::{Value, json};

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

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

fn input() -> Value {
    json!({
        "name": "Event photos",
        "title": "Photos at the summer event",
        "body_markdown": "We would like to use **photos** of you.\n\nSee [our policy](https://example.org/privacy).",
        "language": "en",
        "scopes": [
            {"channel": "web", "mandatory": true, "label": "Our website"},
            {"channel": "print"},
            {"channel": "social", "mandatory": false}
        ],
        "face_matching_text": "Find me in future photos by face matching.",
        "validity_days": 730,
        "legal_character": "gdpr_consent",
        "after_signing_text": "Thank you!"
    })
}

db_test!(templates_crud_and_versions, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let admin = token_for(&db, &f.tenant_id, f.user(Role::Admin).0);
    let editor = token_for(&db, &f.tenant_id, f.user(Role::Editor).0);
    let app = test_app!(db);

    let (st, t) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/consent-templates")
            .insert_header(bearer(&admin))
            .set_json(input())
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["versions"].as_array().unwrap().len(), 1);
    let v1 = t["versions"][0].clone();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["scopes"][1]["label"], Value::Null);
    assert_eq!(v1["text_sha256"].as_str().unwrap().len(), 64);
    assert!(
        v1["body_html"]
            .as_str()
            .unwrap()
            .contains("<strong>photos</strong>")
    );
    // The hash is the documented one: sha256 of the canonical JSON of what the signer sees.
    let shown = json!({
        "title": v1["title"], "body_markdown": v1["body_markdown"], "language": "en",
        "scopes": [
            {"channel": "web", "mandatory": true, "label": "Our website"},
            {"channel": "print", "mandatory": false, "label": null},
            {"channel": "social", "mandatory": false, "label": null}
        ],
        "face_matching_text": v1["face_matching_text"], "validity_days": 730,
        "legal_character": "gdpr_consent", "after_signing_text": "Thank you!"
    });
    let canonical = likeness_control_domain::canonical::to_canonical_string(&shown);
    assert_eq!(
        v1["text_sha256"].as_str().unwrap(),
        likeness_control_domain::evidence::sha256_hex(canonical.as_bytes())
    );

    // Never sent: an edit changes version 1 in place.
    let mut changed = input();
    changed["title"] = json!("Photos at the summer event 2027");
    let (st, t) = call!(
        &app,
        TestRequest::put()
            .uri(&format!("/api/v1/consent-templates/{id}"))
            .insert_header(bearer(&admin))
            .set_json(&changed)
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(t["versions"].as_array().unwrap().len(), 1);
    let v1b = t["versions"][0].clone();
    assert_eq!(v1b["id"], v1["id"]);
    assert_eq!(v1b["title"], "Photos at the summer event 2027");
    assert_ne!(v1b["text_sha256"], v1["text_sha256"]);
    let v1_id = v1b["id"].as_str().unwrap().to_string();

    // Sent: immutable from then on.
    {
        let mut c = db.conn();
        let now = db::now();
        db::write_tx(&mut c, |c| {
            consent_templates::mark_sent(c, &f.tenant_id, &v1_id, now)
        })
        .unwrap();
        let v = consent_templates::latest_version(&mut c, &f.tenant_id, &id).unwrap();
        assert_eq!(v.first_sent_at, Some(now));
        // Marking it sent again keeps the first time.
        db::write_tx(&mut c, |c| {
            consent_templates::mark_sent(c, &f.tenant_id, &v1_id, now + chrono::TimeDelta::hours(1))
        })
        .unwrap();
        let v = consent_templates::load_version(&mut c, &f.tenant_id, &v1_id).unwrap();
        assert_eq!(v.first_sent_at, Some(now));
    }
    let mut changed2 = changed.clone();
    changed2["scopes"][2]["mandatory"] = json!(true);
    let (st, t) = call!(
        &app,
        TestRequest::put()
            .uri(&format!("/api/v1/consent-templates/{id}"))
            .insert_header(bearer(&admin))
            .set_json(&changed2)
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    let versions = t["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[0]["scopes"][2]["mandatory"], true);
    assert_eq!(versions[0]["first_sent_at"], Value::Null);
    assert_eq!(versions[1]["id"], v1b["id"]);
    assert_eq!(versions[1], v1b_with_sent(&v1b, &versions[1]));
    // The sent version reads as it was sent.
    let (st, v) = call!(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/consent-template-versions/{v1_id}"))
            .insert_header(bearer(&editor))
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["text_sha256"], v1b["text_sha256"]);
    assert_eq!(v["scopes"][2]["mandatory"], false);
    // Only the name changed: no new version.
    let mut renamed = changed2.clone();
    renamed["name"] = json!("Summer event");
    let (_, t) = call!(
        &app,
        TestRequest::put()
            .uri(&format!("/api/v1/consent-templates/{id}"))
            .insert_header(bearer(&admin))
            .set_json(&renamed)
    )
    .await;
    assert_eq!(t["name"], "Summer event");
    assert_eq!(t["versions"].as_array().unwrap().len(), 2);

    // List (the editor may read).
    let (st, list) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/consent-templates")
            .insert_header(bearer(&editor))
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["latest_version"], 2);
    assert_eq!(list[0]["sent"], false);
    assert_eq!(list[0]["name"], "Summer event");

    // Archive: gone from the list, no new requests, no edits.
    let (st, t) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/consent-templates/{id}/archive"))
            .insert_header(bearer(&admin))
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(t["archived_at"].is_string());
    let (_, list) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/consent-templates")
            .insert_header(bearer(&admin))
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 0);
    let (_, list) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/consent-templates?include_archived=true")
            .insert_header(bearer(&admin))
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let e = consent_templates::latest_version(&mut db.conn(), &f.tenant_id, &id).unwrap_err();
    assert_eq!(e.code(), "template_archived");
    let (st, e) = call!(
        &app,
        TestRequest::put()
            .uri(&format!("/api/v1/consent-templates/{id}"))
            .insert_header(bearer(&admin))
            .set_json(&changed2)
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");

    // Every write is audited.
    let actions: Vec<String> = audit_log::table
        .filter(audit_log::object_id.eq(&id))
        .order(audit_log::seq.asc())
        .select(audit_log::action)
        .load(&mut db.conn())
        .unwrap();
    assert_eq!(
        actions,
        [
            "consent_template.create",
            "consent_template.update",
            "consent_template.update",
            "consent_template.update",
            "consent_template.archive"
        ]
    );

    // Another tenant sees nothing of it.
    let g = fixture(&db, "other");
    let other = token_for(&db, &g.tenant_id, g.user(Role::Admin).0);
    let (st, _) = call!(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/consent-templates/{id}"))
            .insert_header(bearer(&other))
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call!(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/consent-template-versions/{v1_id}"))
            .insert_header(bearer(&other))
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
});

/// `v1b` as it reads once sent (only `first_sent_at` differs).
fn v1b_with_sent(v1b: &Value, sent: &Value) -> Value {
    assert!(sent["first_sent_at"].is_string());
    let mut v = v1b.clone();
    v["first_sent_at"] = sent["first_sent_at"].clone();
    v
}

db_test!(template_permissions, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let admin = token_for(&db, &f.tenant_id, f.user(Role::Admin).0);
    let app = test_app!(db);
    let (_, t) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/consent-templates")
            .insert_header(bearer(&admin))
            .set_json(input())
    )
    .await;
    let id = t["id"].as_str().unwrap().to_string();
    for role in [Role::Viewer, Role::Editor, Role::Integration] {
        let tok = token_for(&db, &f.tenant_id, f.user(role).0);
        // Writes: 403 whatever the body (even a malformed one).
        let (st, e) = call!(
            &app,
            TestRequest::post()
                .uri("/api/v1/consent-templates")
                .insert_header(bearer(&tok))
                .set_json(input())
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{role:?} {e}");
        let (st, _) = call!(
            &app,
            TestRequest::put()
                .uri(&format!("/api/v1/consent-templates/{id}"))
                .insert_header(bearer(&tok))
                .set_json(json!({"nonsense": 1}))
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{role:?}");
        let (st, _) = call!(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/consent-templates/{id}/archive"))
                .insert_header(bearer(&tok))
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{role:?}");
        let (st, _) = call!(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/consent-templates/{id}"))
                .insert_header(bearer(&tok))
        )
        .await;
        let read = if role == Role::Editor {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(st, read, "{role:?}");
    }
    let (st, _) = call!(&app, TestRequest::get().uri("/api/v1/consent-templates")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (_, t) = call!(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/consent-templates/{id}"))
            .insert_header(bearer(&admin))
    )
    .await;
    assert_eq!(t["versions"].as_array().unwrap().len(), 1);
    assert_eq!(t["archived_at"], Value::Null);
});

db_test!(template_validation_names_fields, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let admin = token_for(&db, &f.tenant_id, f.user(Role::Admin).0);
    let app = test_app!(db);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("name", json!(""), "name"),
        ("name", json!("x".repeat(201)), "name"),
        ("title", json!("   "), "title"),
        ("body_markdown", json!(""), "body_markdown"),
        ("body_markdown", json!("a".repeat(50_001)), "body_markdown"),
        ("language", json!("de"), "language"),
        ("scopes", json!([]), "scopes"),
        ("scopes", json!([{"channel": "tv"}]), "scopes[0].channel"),
        (
            "scopes",
            json!([{"channel": "web"}, {"channel": "web"}]),
            "scopes[1].channel",
        ),
        (
            "scopes",
            json!([{"channel": "web"}, {"channel": "face_matching"}]),
            "scopes[1].channel",
        ),
        (
            "scopes",
            json!([{"channel": "web", "label": "x".repeat(201)}]),
            "scopes[0].label",
        ),
        ("validity_days", json!(0), "validity_days"),
        ("validity_days", json!(3651), "validity_days"),
        (
            "face_matching_text",
            json!("x".repeat(5001)),
            "face_matching_text",
        ),
        (
            "after_signing_text",
            json!("x".repeat(5001)),
            "after_signing_text",
        ),
    ];
    for (key, value, field) in cases {
        let mut body = input();
        body[key] = value;
        let (st, e) = call!(
            &app,
            TestRequest::post()
                .uri("/api/v1/consent-templates")
                .insert_header(bearer(&admin))
                .set_json(&body)
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{key}: {e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("{field}:")), "{key}: {msg}");
    }
    // Unknown fields and legal characters are refused too.
    let mut body = input();
    body["legal_character"] = json!("handshake");
    let (st, _) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/consent-templates")
            .insert_header(bearer(&admin))
            .set_json(&body)
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let mut body = input();
    body["face_matching"] = json!(true);
    let (st, _) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/consent-templates")
            .insert_header(bearer(&admin))
            .set_json(&body)
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Nothing was created; no face matching text: no face matching scope.
    let (_, list) = call!(
        &app,
        TestRequest::get()
            .uri("/api/v1/consent-templates")
            .insert_header(bearer(&admin))
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 0);
    let mut body = input();
    body["face_matching_text"] = json!("  ");
    body["language"] = json!("SV");
    let (st, t) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/consent-templates")
            .insert_header(bearer(&admin))
            .set_json(&body)
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert_eq!(t["versions"][0]["face_matching_text"], Value::Null);
    assert_eq!(t["versions"][0]["language"], "sv");
});

db_test!(template_markdown_hostile, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let admin = token_for(&db, &f.tenant_id, f.user(Role::Admin).0);
    let app = test_app!(db);
    let mut body = input();
    body["body_markdown"] = json!(
        "# Hello\n\n<script>alert('x')</script>\n\n<div onclick=\"steal()\">block html</div>\n\n\
         Inline <img src=x onerror=alert(1)> and <a href=\"javascript:alert(2)\">a</a>.\n\n\
         [click](javascript:alert(3)) [data](data:text/html;base64,PHNjcmlwdD4=) \
         [vb](vbscript:msgbox) [ok](https://example.org/?a=1&b=\"2\") [mail](mailto:dpo@example.org)\n\n\
         ![tracker](https://evil.example/pixel.png) ![x](javascript:alert(4))\n\n\
         [ref]: javascript:alert(5)\n\n[ref] <https://auto.example/> <javascript:alert(6)>\n\n| a | b |\n|:--|--:|\n| 1 | 2 |"
    );
    let (st, t) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/consent-templates")
            .insert_header(bearer(&admin))
            .set_json(&body)
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let html = t["versions"][0]["body_html"].as_str().unwrap();
    check_tags(html);
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(html.contains("<h2>Hello</h2>"), "{html}");
    assert!(
        html.contains("<table>") && html.contains("<th>a</th>"),
        "{html}"
    );
    assert!(
        html.contains("javascript:alert(6)"),
        "shown as text: {html}"
    );
    assert!(
        html.contains("<a href=\"https://example.org/?a=1&amp;b=%222%22\">ok</a>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"mailto:dpo@example.org\">mail</a>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://evil.example/pixel.png\">tracker</a>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://auto.example/\">"),
        "{html}"
    );
    // The text the signer is shown keeps the Markdown as written.
    assert_eq!(t["versions"][0]["body_markdown"], body["body_markdown"]);
});

/// Every real tag of `html` (text `<` is escaped) is a plain formatting tag without attributes,
/// or a link whose only attribute is an http(s) or mailto `href`.
fn check_tags(html: &str) {
    const PLAIN: [&str; 22] = [
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "strong",
        "em",
        "code",
        "pre",
        "ul",
        "ol",
        "li",
        "blockquote",
        "hr",
        "br",
        "table",
        "thead",
        "tbody",
        "tr",
        "del",
    ];
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').expect("unclosed tag") + i;
        let tag = &rest[i + 1..end];
        rest = &rest[end + 1..];
        let closing = tag.starts_with('/');
        let tag = tag.trim_start_matches('/').trim_end_matches('/').trim();
        let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
        let name = name.to_ascii_lowercase();
        if name == "a" && !closing {
            let href = attrs
                .strip_prefix("href=\"")
                .and_then(|a| a.strip_suffix('"'))
                .unwrap_or_else(|| panic!("link with other attributes: <{tag}> in {html}"));
            assert!(!href.contains('"'), "{tag}");
            assert!(
                ["https://", "http://", "mailto:"]
                    .iter()
                    .any(|p| href.starts_with(p)),
                "unsafe link <{tag}> in {html}"
            );
        } else {
            assert!(
                PLAIN.contains(&name.as_str()) || ["a", "th", "td"].contains(&name.as_str()),
                "unexpected tag <{tag}> in {html}"
            );
            assert!(attrs.is_empty(), "attributes in <{tag}>");
        }
    }
}

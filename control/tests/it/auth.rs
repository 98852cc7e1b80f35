//! Login, sessions with CSRF, API tokens, users and roles — on SQLite and PostgreSQL.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use likeness_control::roles::Role;
use serde_json::{Value, json};

async fn body_json<B: actix_web::body::MessageBody>(
    resp: actix_web::dev::ServiceResponse<B>,
) -> (StatusCode, Value) {
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

db_test!(login_session_csrf_logout, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let app = test_app!(db);
    let (_, email) = f.user(Role::Admin);

    // Wrong password and unknown tenant answer the same 401.
    for (tenant, pw) in [("acme", "wrong-password-x"), ("nope", PASSWORD)] {
        let resp = test::call_service(
            &app,
            TestRequest::post()
                .uri("/api/v1/auth/login")
                .set_json(json!({"tenant": tenant, "email": email, "password": pw}))
                .to_request(),
        )
        .await;
        let (st, v) = body_json(resp).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"]["code"], "invalid_credentials");
    }

    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(
                json!({"tenant": "acme", "email": email.to_uppercase(), "password": PASSWORD}),
            )
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp
        .response()
        .cookies()
        .find(|c| c.name() == "lk_session")
        .expect("session cookie")
        .into_owned();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(
        cookie.same_site(),
        Some(actix_web::cookie::SameSite::Strict)
    );
    let (_, v) = body_json(resp).await;
    let csrf = v["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(v["user"]["role"], "admin");

    // GET with the cookie works without CSRF.
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/me")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let (st, v) = body_json(resp).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["tenant_slug"], "acme");
    assert_eq!(v["via"], "session");
    assert_eq!(v["permissions"].as_array().unwrap().len(), 10);

    // An unsafe method without or with a wrong CSRF token is refused.
    for header in [None, Some("wrong")] {
        let mut req = TestRequest::post()
            .uri("/api/v1/tokens")
            .cookie(cookie.clone())
            .set_json(json!({"name": "x"}));
        if let Some(h) = header {
            req = req.insert_header(("X-CSRF-Token", h));
        }
        let (st, v) = body_json(test::call_service(&app, req.to_request()).await).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert_eq!(v["error"]["code"], "csrf_token_invalid");
    }
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/tokens")
            .cookie(cookie.clone())
            .insert_header(("X-CSRF-Token", csrf.clone()))
            .set_json(json!({"name": "cms"}))
            .to_request(),
    )
    .await;
    let (st, v) = body_json(resp).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("lk_"));

    // Bearer tokens need no CSRF token.
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/me")
            .insert_header(("Authorization", format!("Bearer {secret}")))
            .to_request(),
    )
    .await;
    let (st, v) = body_json(resp).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["via"], "token");

    // Logout ends the session.
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/logout")
            .cookie(cookie.clone())
            .insert_header(("X-CSRF-Token", csrf))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/me")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    let (st, v) = body_json(resp).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthenticated");
});

db_test!(
    tokens_are_hashed_listed_and_revoked,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let (admin_id, _) = f.user(Role::Admin);
        let (editor_id, _) = f.user(Role::Editor);
        let admin = token_for(&db, &f.tenant_id, admin_id);
        let editor = token_for(&db, &f.tenant_id, editor_id);
        let app = test_app!(db);
        let auth = |t: &str| ("Authorization", format!("Bearer {t}"));

        // The secret is not stored.
        {
            use diesel::prelude::*;
            use likeness_control::schema::api_tokens;
            let hashes: Vec<String> = api_tokens::table
                .select(api_tokens::token_hash)
                .load(&mut *db.conn())
                .unwrap();
            assert_eq!(hashes.len(), 2);
            assert!(
                hashes
                    .iter()
                    .all(|h| h.len() == 64 && *h != admin && *h != editor)
            );
        }

        // The editor sees only its own token; `all` needs manage_users.
        let (st, v) = body_json(
            test::call_service(
                &app,
                TestRequest::get()
                    .uri("/api/v1/tokens")
                    .insert_header(auth(&editor))
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 1);
        let editor_token_id = v[0]["id"].as_str().unwrap().to_string();
        let (st, _) = body_json(
            test::call_service(
                &app,
                TestRequest::get()
                    .uri("/api/v1/tokens?all=true")
                    .insert_header(auth(&editor))
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, v) = body_json(
            test::call_service(
                &app,
                TestRequest::get()
                    .uri("/api/v1/tokens?all=true")
                    .insert_header(auth(&admin))
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 2);

        // The admin revokes the editor's token; it stops working at once.
        let (st, v) = body_json(
            test::call_service(
                &app,
                TestRequest::delete()
                    .uri(&format!("/api/v1/tokens/{editor_token_id}"))
                    .insert_header(auth(&admin))
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert!(v["revoked_at"].is_string());
        let (st, _) = body_json(
            test::call_service(
                &app,
                TestRequest::get()
                    .uri("/api/v1/me")
                    .insert_header(auth(&editor))
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        let (st, _) = body_json(
            test::call_service(
                &app,
                TestRequest::get()
                    .uri("/api/v1/me")
                    .insert_header(auth("lk_notatoken"))
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
);

db_test!(users_and_role_permissions, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let (admin_id, _) = f.user(Role::Admin);
    let (viewer_id, _) = f.user(Role::Viewer);
    let admin = token_for(&db, &f.tenant_id, admin_id);
    let viewer = token_for(&db, &f.tenant_id, viewer_id);
    let app = test_app!(db);
    let auth = |t: &str| ("Authorization", format!("Bearer {t}"));

    // Create a user; duplicate e-mail is a conflict; bad input names the field.
    let req = TestRequest::post()
        .uri("/api/v1/users")
        .insert_header(auth(&admin))
        .set_json(json!({"email": "New@Acme.test", "role": "editor", "password": "long-enough-pw"}))
        .to_request();
    let (st, v) = body_json(test::call_service(&app, req).await).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["email"], "new@acme.test");
    let req = TestRequest::post()
        .uri("/api/v1/users")
        .insert_header(auth(&admin))
        .set_json(json!({"email": "new@acme.test", "role": "editor", "password": "long-enough-pw"}))
        .to_request();
    let (st, v) = body_json(test::call_service(&app, req).await).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "user_exists");
    let req = TestRequest::post()
        .uri("/api/v1/users")
        .insert_header(auth(&admin))
        .set_json(json!({"email": "x@acme.test", "role": "editor", "password": "short"}))
        .to_request();
    let (st, v) = body_json(test::call_service(&app, req).await).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("password"),
        "{v}"
    );
    let req = TestRequest::post()
        .uri("/api/v1/users")
        .insert_header(auth(&admin))
        .set_json(json!({"email": "x@acme.test", "role": "root", "password": "long-enough-pw"}))
        .to_request();
    let (st, v) = body_json(test::call_service(&app, req).await).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_json");

    // Grant the viewer read_audit: it can then read the audit log.
    let (st, _) = body_json(
        test::call_service(
            &app,
            TestRequest::get()
                .uri("/api/v1/audit")
                .insert_header(auth(&viewer))
                .to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let req = TestRequest::put()
        .uri("/api/v1/roles/viewer")
        .insert_header(auth(&admin))
        .set_json(json!({"permissions": ["read_audit"]}))
        .to_request();
    let (st, v) = body_json(test::call_service(&app, req).await).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = body_json(
        test::call_service(
            &app,
            TestRequest::get()
                .uri("/api/v1/audit")
                .insert_header(auth(&viewer))
                .to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "role.update")
    );

    // The admin role cannot lose manage_users.
    let req = TestRequest::put()
        .uri("/api/v1/roles/admin")
        .insert_header(auth(&admin))
        .set_json(json!({"permissions": ["see_persons"]}))
        .to_request();
    let (st, _) = body_json(test::call_service(&app, req).await).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Disabling a user stops their token.
    let req = TestRequest::patch()
        .uri(&format!("/api/v1/users/{viewer_id}"))
        .insert_header(auth(&admin))
        .set_json(json!({"disabled": true}))
        .to_request();
    let (st, _) = body_json(test::call_service(&app, req).await).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = body_json(
        test::call_service(
            &app,
            TestRequest::get()
                .uri("/api/v1/me")
                .insert_header(auth(&viewer))
                .to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
});

db_test!(failed_logins_are_throttled, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let app = test_app!(db);
    let (_, email) = f.user(Role::Editor);
    let (_, other) = f.user(Role::Viewer);
    let login = |email: &str, pw: &str, ip: &str| {
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .peer_addr(format!("{ip}:40000").parse().unwrap())
            .set_json(json!({"tenant": "acme", "email": email, "password": pw}))
            .to_request()
    };
    // Five wrong passwords (the default per account) answer 401 ...
    for _ in 0..5 {
        let resp = test::call_service(&app, login(email, "guess", "10.0.0.1")).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // ... then the account is locked, from any address, even with the right password.
    for ip in ["10.0.0.1", "10.0.0.2"] {
        let resp = test::call_service(&app, login(email, PASSWORD, ip)).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = resp
            .headers()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        let (_, v) = body_json(resp).await;
        assert_eq!(v["error"]["code"], "too_many_attempts");
    }
    // Another account is not affected; its success does not unlock the first.
    let resp = test::call_service(&app, login(other, PASSWORD, "10.0.0.3")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = test::call_service(&app, login(email, PASSWORD, "10.0.0.3")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
});

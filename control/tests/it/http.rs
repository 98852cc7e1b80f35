//! The HTTP edge: health probes, `/metrics`, security headers, 401 challenges and JSON error
//! bodies on the answers actix gives itself (405).

use crate::common::*;
use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::web;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::roles::Role;
use serde_json::{Value, json};

async fn body_json<B: actix_web::body::MessageBody>(
    resp: actix_web::dev::ServiceResponse<B>,
) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = test::read_body(resp).await;
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{status}: body is not JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

fn header_of<B>(
    resp: &actix_web::dev::ServiceResponse<B>,
    name: header::HeaderName,
) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// An app over any pool (an unmigrated or unreachable database).
macro_rules! app_over {
    ($pool:expr) => {{
        let state = web::Data::new(Deps::new($pool, Config::default()));
        actix_web::test::init_service(
            actix_web::App::new()
                .configure(|c| likeness_control::app::configure_app(c, state.clone())),
        )
        .await
    }};
}

db_test!(health_live_and_ready, |db: TestDb| async move {
    let app = test_app!(db);
    for (uri, status) in [("/health/live", "live"), ("/health/ready", "ready")] {
        let resp = test::call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(
            header_of(&resp, header::CACHE_CONTROL),
            ["no-store"],
            "{uri}"
        );
        assert_eq!(
            header_of(&resp, header::X_CONTENT_TYPE_OPTIONS),
            ["nosniff"],
            "{uri}"
        );
        let (st, v) = body_json(resp).await;
        assert_eq!(st, StatusCode::OK, "{uri}: {v}");
        assert_eq!(v["status"], status, "{uri}");
    }
});

#[actix_web::test]
async fn ready_is_503_while_migrations_are_pending() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("unmigrated.sqlite").display().to_string();
    let pool = likeness_control_db::connect(&url, 2, 1000).unwrap();
    let app = app_over!(pool);
    let resp = test::call_service(&app, TestRequest::get().uri("/health/live").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = test::call_service(&app, TestRequest::get().uri("/health/ready").to_request()).await;
    let (st, v) = body_json(resp).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "not_ready");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("migrations are pending"),
        "{v}"
    );
}

#[actix_web::test]
async fn ready_is_503_when_the_database_does_not_answer() {
    // Nothing listens on port 1; the pool is built without connecting.
    let target = likeness_control_db::Target::parse("postgres://nobody@127.0.0.1:1/none").unwrap();
    let pool = diesel::r2d2::Pool::builder()
        .max_size(1)
        .build_unchecked(likeness_control_db::Manager::new(target, 1000));
    let app = app_over!(pool);
    let resp = test::call_service(&app, TestRequest::get().uri("/health/live").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = test::call_service(&app, TestRequest::get().uri("/health/ready").to_request()).await;
    let (st, v) = body_json(resp).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "not_ready");
    assert_eq!(v["error"]["message"], "the database does not answer");
    // The scrape still answers, saying the database is down.
    let resp = test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    assert!(text.contains("likeness_control_database_up 0"), "{text}");
}

/// The value of the sample `name{labels}` in a Prometheus text scrape.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn insert_job(db: &TestDb, tenant: &str, kind: &str, status: &str, run_after_secs: i64) {
    use diesel::prelude::*;
    use likeness_control_db::schema::jobs;
    let now = likeness_control_db::now();
    let run_after = now + chrono::TimeDelta::seconds(run_after_secs);
    diesel::insert_into(jobs::table)
        .values((
            jobs::id.eq(likeness_control_db::new_id()),
            jobs::tenant_id.eq(tenant),
            jobs::kind.eq(kind),
            jobs::payload_json.eq("{}"),
            jobs::status.eq(status),
            jobs::attempts.eq(0),
            jobs::run_after.eq(run_after),
            jobs::created_at.eq(run_after),
            jobs::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
}

db_test!(
    metrics_by_route_pattern_and_job_kind,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        // Two due jobs (the older due 100 s ago), one due later, one failed, one running.
        insert_job(&db, &f.tenant_id, "metrics_probe", "queued", -100);
        insert_job(&db, &f.tenant_id, "metrics_probe", "queued", -10);
        insert_job(&db, &f.tenant_id, "metrics_probe", "queued", 3600);
        insert_job(&db, &f.tenant_id, "metrics_probe", "failed", -5);
        insert_job(&db, &f.tenant_id, "metrics_probe", "running", -5);
        let app = test_app!(db);
        let id = "0193aaaa-bbbb-7ccc-8ddd-eeeeffff0000";
        let route = r#"route="/api/v1/persons/{person_id}""#;
        let counter =
            format!(r#"likeness_control_http_requests_total{{method="GET",{route},status="401"}}"#);

        let scrape = async || {
            let resp =
                test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
            assert_eq!(resp.status(), StatusCode::OK);
            assert!(
                header_of(&resp, header::CONTENT_TYPE)[0].starts_with("text/plain"),
                "{:?}",
                resp.headers()
            );
            String::from_utf8(test::read_body(resp).await.to_vec()).unwrap()
        };
        let before = sample(&scrape().await, &counter).unwrap_or(0.0);
        for _ in 0..2 {
            let resp = test::call_service(
                &app,
                TestRequest::get()
                    .uri(&format!("/api/v1/persons/{id}"))
                    .to_request(),
            )
            .await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        let text = scrape().await;
        // Counted under the pattern (the counters are per process: other tests may add to them).
        assert!(sample(&text, &counter).unwrap() >= before + 2.0, "{text}");
        assert!(
            !text.contains(id),
            "the raw path leaked into a label:\n{text}"
        );
        let hist = format!(
            r#"likeness_control_http_request_duration_seconds_count{{method="GET",{route}}}"#
        );
        assert!(sample(&text, &hist).unwrap() >= 2.0, "{text}");
        // A path no route matches is `unmatched`.
        let resp = test::call_service(
            &app,
            TestRequest::get().uri("/no/such/path/123").to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let text = scrape().await;
        assert!(!text.contains("/no/such/path"), "{text}");
        assert!(
        sample(
            &text,
            r#"likeness_control_http_requests_total{method="GET",route="unmatched",status="404"}"#
        )
        .is_some(),
        "{text}"
    );

        // The job queue, read at scrape time.
        let kind = r#"{kind="metrics_probe"}"#;
        assert_eq!(
            sample(&text, "likeness_control_database_up"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("likeness_control_job_queue_depth{kind}")),
            Some(2.0),
            "{text}"
        );
        let oldest = sample(
            &text,
            &format!("likeness_control_job_queue_oldest_seconds{kind}"),
        )
        .unwrap();
        assert!((100.0..200.0).contains(&oldest), "{oldest}\n{text}");
        for (name, n) in [
            ("likeness_control_jobs_scheduled", 1.0),
            ("likeness_control_jobs_failed", 1.0),
            ("likeness_control_jobs_running", 1.0),
        ] {
            assert_eq!(
                sample(&text, &format!("{name}{kind}")),
                Some(n),
                "{name}\n{text}"
            );
        }
    }
);

#[actix_web::test]
async fn security_headers_and_401_challenge() {
    let db = TestDb::new(Kind::Sqlite);
    let f = fixture(&db, "acme");
    let app = test_app!(db);
    let (_, email) = f.user(Role::Admin);

    // 401: JSON body and the challenges (API token; the session cookie and where to get it).
    let resp = test::call_service(&app, TestRequest::get().uri("/api/v1/me").to_request()).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenges = header_of(&resp, header::WWW_AUTHENTICATE);
    assert!(
        challenges.iter().any(|c| c == r#"Bearer realm="likeness""#),
        "{challenges:?}"
    );
    assert!(
        challenges.iter().any(|c| c.contains("lk_session")),
        "{challenges:?}"
    );
    assert_eq!(
        header_of(&resp, header::X_CONTENT_TYPE_OPTIONS),
        ["nosniff"]
    );
    assert_eq!(header_of(&resp, header::CACHE_CONTROL), ["no-store"]);
    let (_, v) = body_json(resp).await;
    assert_eq!(v["error"]["code"], "unauthenticated");

    // A failed login is a 401 too.
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(json!({"tenant": "acme", "email": email, "password": "wrong-password-x"}))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!header_of(&resp, header::WWW_AUTHENTICATE).is_empty());

    // The login answer carries secrets: not stored; the session cookie is Secure by default.
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(json!({"tenant": "acme", "email": email, "password": PASSWORD}))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, header::CACHE_CONTROL), ["no-store"]);
    assert_eq!(
        header_of(&resp, header::X_CONTENT_TYPE_OPTIONS),
        ["nosniff"]
    );
    let cookie = resp
        .response()
        .cookies()
        .find(|c| c.name() == "lk_session")
        .expect("session cookie")
        .into_owned();
    assert_eq!(cookie.secure(), Some(true), "{cookie}");

    // Authenticated answers (cookie or token) are not stored.
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/me")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, header::CACHE_CONTROL), ["no-store"]);
    assert_eq!(
        header_of(&resp, header::X_CONTENT_TYPE_OPTIONS),
        ["nosniff"]
    );

    // The public OpenAPI document may be cached, unless the request carried credentials.
    let resp = test::call_service(
        &app,
        TestRequest::get().uri("/api/v1/openapi.json").to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_of(&resp, header::X_CONTENT_TYPE_OPTIONS),
        ["nosniff"]
    );
    assert!(header_of(&resp, header::CACHE_CONTROL).is_empty());
    let token = token_for(&db, &f.tenant_id, f.user(Role::Admin).0);
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/openapi.json")
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .to_request(),
    )
    .await;
    assert_eq!(header_of(&resp, header::CACHE_CONTROL), ["no-store"]);
}

#[actix_web::test]
async fn cookie_secure_can_be_turned_off() {
    let db = TestDb::new(Kind::Sqlite);
    let f = fixture(&db, "acme");
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.server.cookie_secure = false;
    let state = web::Data::new(Deps::new(db.pool.clone(), cfg));
    let app = test::init_service(
        actix_web::App::new().configure(|c| likeness_control::app::configure_app(c, state.clone())),
    )
    .await;
    let resp = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(
                json!({"tenant": "acme", "email": f.user(Role::Admin).1, "password": PASSWORD}),
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
    assert_ne!(cookie.secure(), Some(true), "{cookie}");
}

#[actix_web::test]
async fn wrong_method_is_405_with_allow_and_the_json_body() {
    let db = TestDb::new(Kind::Sqlite);
    let app = test_app!(db);
    // A path registered with one method (falls through to the fallback) and a resource with
    // several (actix's own 405): both answer the JSON error body and `Allow`.
    for (method, uri, allow) in [
        (actix_web::http::Method::DELETE, "/api/v1/me", vec!["GET"]),
        (
            actix_web::http::Method::PUT,
            "/api/v1/assets",
            vec!["GET", "POST"],
        ),
        (
            actix_web::http::Method::POST,
            "/api/v1/persons/0193aaaa-bbbb-7ccc-8ddd-eeeeffff0000",
            vec!["GET", "PATCH", "DELETE"],
        ),
    ] {
        let resp = test::call_service(
            &app,
            TestRequest::default()
                .method(method.clone())
                .uri(uri)
                .to_request(),
        )
        .await;
        let allowed = header_of(&resp, header::ALLOW).join(", ");
        for m in &allow {
            assert!(allowed.contains(m), "{method} {uri}: Allow {allowed:?}");
        }
        assert_eq!(
            header_of(&resp, header::X_CONTENT_TYPE_OPTIONS),
            ["nosniff"]
        );
        assert!(
            header_of(&resp, header::CONTENT_TYPE)[0].starts_with("application/json"),
            "{method} {uri}"
        );
        let (st, v) = body_json(resp).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {v}");
        assert_eq!(v["error"]["code"], "method_not_allowed", "{method} {uri}");
        assert!(v["error"]["message"].as_str().unwrap().contains(uri), "{v}");
    }
    // An unknown path stays a 404 with the JSON body.
    let resp = test::call_service(
        &app,
        TestRequest::delete()
            .uri("/api/v1/nothing-here")
            .to_request(),
    )
    .await;
    let (st, v) = body_json(resp).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
}

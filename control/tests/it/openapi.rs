//! The OpenAPI document: served, valid JSON, equal to the committed snapshot
//! (`UPDATE_SNAPSHOTS=1` rewrites `tests/openapi.json`), and walked as every role.

use crate::common::*;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use likeness_control::roles::{Permission, Role};
use serde_json::{Value, json};

#[test]
fn openapi_matches_the_snapshot() {
    let doc = likeness_control::openapi::document_json();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, format!("{doc}\n")).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        doc.trim_end(),
        want.trim_end(),
        "the OpenAPI document changed: review, then run `UPDATE_SNAPSHOTS=1 cargo nextest run -p likeness-control openapi` and commit tests/openapi.json"
    );
}

struct Op {
    method: Method,
    path: String,
    /// None: public; Some(empty): any authenticated user; Some(ps): needs every one of ps.
    needs: Option<Vec<Permission>>,
    has_body: bool,
}

fn operations() -> Vec<Op> {
    let doc: Value = serde_json::from_str(&likeness_control::openapi::document_json()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            let Ok(method) = m.to_uppercase().parse::<Method>() else {
                continue;
            };
            let needs = op.get("security").and_then(Value::as_array).map(|reqs| {
                let scopes: Vec<&str> = reqs
                    .iter()
                    .flat_map(|r| r.as_object().unwrap().values())
                    .flat_map(|v| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()))
                    .collect();
                let mut ps: Vec<Permission> = scopes
                    .iter()
                    .map(|s| {
                        s.parse::<Permission>()
                            .unwrap_or_else(|e| panic!("{path}: {e}"))
                    })
                    .collect();
                ps.sort_by_key(|p| p.to_string());
                ps.dedup();
                ps
            });
            out.push(Op {
                method,
                path: path.clone(),
                needs,
                has_body: op.get("requestBody").is_some(),
            });
        }
    }
    assert!(out.len() >= 15, "too few operations: {}", out.len());
    out
}

db_test!(authorization_walk, |db: TestDb| async move {
    let a = fixture(&db, "acme");
    let b = fixture(&db, "other");
    let tokens: Vec<(Role, String)> = Role::ALL
        .iter()
        .map(|&r| (r, token_for(&db, &a.tenant_id, a.user(r).0)))
        .collect();
    let b_admin = token_for(&db, &b.tenant_id, b.user(Role::Admin).0);
    let perms = |r: Role| r.default_permissions().to_vec();
    let app = test_app!(db);
    // Objects of tenant A for the path parameters.
    let (st, person) = {
        let resp = test::call_service(
            &app,
            TestRequest::post()
                .uri("/api/v1/persons")
                .insert_header(("Authorization", format!("Bearer {}", tokens[0].1)))
                .set_json(json!({"name": "Walk"}))
                .to_request(),
        )
        .await;
        (resp.status(), test::read_body_json::<Value, _>(resp).await)
    };
    assert_eq!(st, StatusCode::CREATED);
    let fill = |path: &str| -> (String, bool) {
        let mut out = String::new();
        let mut real = true;
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            out.push('/');
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let v = match name {
                    "person_id" => person["id"].as_str().unwrap().to_string(),
                    "user_id" => a.user(Role::Viewer).0.to_string(),
                    "role" => "viewer".to_string(),
                    _ => {
                        real = false;
                        uuid::Uuid::now_v7().to_string()
                    }
                };
                out.push_str(&v);
            } else {
                out.push_str(seg);
            }
        }
        (out, real)
    };
    let ops = operations();
    let call = |op: &Op, uri: &str, token: Option<&str>| {
        let mut req = TestRequest::default().method(op.method.clone()).uri(uri);
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        if op.has_body {
            // A malformed body: who may not call the operation must learn 401/403, not 400.
            req = req
                .insert_header(("Content-Type", "application/json"))
                .set_payload("{not json");
        }
        req.to_request()
    };
    let mut checked = 0;
    // 1. Anonymous: 401 on every secured operation.  2. Another tenant's admin: 404 on objects.
    for op in &ops {
        let (uri, real) = fill(&op.path);
        let st = test::call_service(&app, call(op, &uri, None))
            .await
            .status();
        match &op.needs {
            Some(_) => assert_eq!(
                st,
                StatusCode::UNAUTHORIZED,
                "{} {} anonymous",
                op.method,
                op.path
            ),
            None => assert_ne!(
                st,
                StatusCode::UNAUTHORIZED,
                "{} {} is public",
                op.method,
                op.path
            ),
        }
        if op.needs.is_some() && real && op.path.contains("_id}") && !op.has_body {
            let st = test::call_service(&app, call(op, &uri, Some(&b_admin)))
                .await
                .status();
            assert_eq!(
                st,
                StatusCode::NOT_FOUND,
                "{} {} as another tenant",
                op.method,
                uri
            );
        }
        checked += 1;
    }
    // 3. Every role: 403 exactly when the role lacks the permission (mutations last).
    let mut ordered: Vec<&Op> = ops.iter().collect();
    ordered.sort_by_key(|o| (o.method == Method::DELETE, o.method != Method::GET));
    for op in ordered {
        let Some(needs) = &op.needs else { continue };
        let (uri, _) = fill(&op.path);
        for (role, token) in &tokens {
            let st = test::call_service(&app, call(op, &uri, Some(token)))
                .await
                .status();
            let allowed = needs.iter().all(|p| perms(*role).contains(p));
            if allowed {
                assert!(
                    st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                    "{} {} as {role}: {st} but the role has the permission",
                    op.method,
                    op.path
                );
            } else {
                assert_eq!(
                    st,
                    StatusCode::FORBIDDEN,
                    "{} {} as {role} lacks {needs:?}",
                    op.method,
                    op.path
                );
            }
        }
    }
    assert!(checked >= 15);
});

//! (PUBLISHING) Share links and media portals in process, on SQLite and PostgreSQL: created
//! through the REST API (validation naming the field; another tenant's files refused naming
//! them; `manage_assets` required), opened at `/s/{token}` (a password form first when it has
//! one: a wrong password 400, a right one a cookie for that share), images and downloads
//! served only while the file is allowed on the share's channel today (451 as soon as the
//! process's allowed set follows a change), revoked and expired links 410, unknown ones 404,
//! and every access in the share's access log.

use std::io::Cursor;

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::web;
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::audit::Who;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::share_links;
use likeness_control::service::compliance;
use serde_json::{Value, json};

use crate::common::*;

const PEER: &str = "10.9.8.7:40000";

fn state(db: &TestDb) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(console::KEY.into());
    cfg.matcher.url = "http://127.0.0.1:9".into();
    cfg.server.cookie_secure = false;
    cfg.signing.key_file = db.dir().join("evidence.key");
    cfg.signing.public_base_url = "http://share.test".into();
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

/// A small JPEG (a gradient), made here.
fn jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, 90])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// (status, headers, body) of one request.
async fn call<S, B>(app: &S, req: actix_http::Request) -> (StatusCode, header::HeaderMap, Vec<u8>)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let resp = test::call_service(app, req).await;
    let (st, h) = (resp.status(), resp.headers().clone());
    (st, h, test::read_body(resp).await.to_vec())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn api(method: &str, uri: &str, token: &str) -> TestRequest {
    let r = match method {
        "POST" => TestRequest::post(),
        _ => TestRequest::get(),
    };
    r.uri(uri)
        .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
}

fn public(uri: &str) -> TestRequest {
    TestRequest::get()
        .uri(uri)
        .peer_addr(PEER.parse().unwrap())
        .insert_header((header::USER_AGENT, "share-test/1"))
}

/// Uploads a JPEG as `name` through the API: its asset ID.
async fn upload<S, B>(app: &S, token: &str, name: &str) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (st, _, body) = call(
        app,
        api("POST", &format!("/api/v1/assets?filename={name}"), token)
            .insert_header((header::CONTENT_TYPE, "image/jpeg"))
            .set_payload(jpeg())
            .to_request(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{}", text(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["asset"]["id"].as_str().unwrap().to_string()
}

/// Sets (or clears) the file's legal basis (which refreshes its exposure) and lets the
/// process's allowed set follow.
async fn basis(db: &TestDb, st: &web::Data<Deps>, tenant: &str, asset: &str, b: Option<&str>) {
    let input: compliance::LegalBasisIn =
        serde_json::from_value(json!({ "legal_basis": b })).unwrap();
    let now = st.clock.now();
    db::write_tx(&mut db.conn(), |c| {
        compliance::set_legal_basis(
            c,
            &Who::system("test", Some(tenant)),
            tenant,
            asset,
            input,
            now,
        )
    })
    .unwrap();
    st.allowed.poll(&st.pool, st.clock.now()).await.unwrap();
}

/// Creates a share through the API: (id, token).
async fn create<S, B>(app: &S, token: &str, body: Value) -> (String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (st, _, out) = call(
        app,
        api("POST", "/api/v1/shares", token)
            .set_json(&body)
            .to_request(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{}", text(&out));
    let v: Value = serde_json::from_slice(&out).unwrap();
    let url = v["url"].as_str().unwrap();
    let tok = url
        .strip_prefix("http://share.test/s/")
        .expect(url)
        .to_string();
    assert_eq!(tok.len(), 43);
    assert_eq!(v["status"], "active");
    assert!(
        v.get("token_hash").is_none() && v.get("password_hash").is_none(),
        "{v}"
    );
    (v["id"].as_str().unwrap().to_string(), tok)
}

fn in_days(st: &web::Data<Deps>, days: i64) -> String {
    (st.clock.today() + chrono::TimeDelta::days(days)).to_string()
}

fn cookie_named(h: &header::HeaderMap, name: &str) -> Option<Cookie<'static>> {
    h.get_all(header::SET_COOKIE)
        .filter_map(|v| Cookie::parse_encoded(v.to_str().ok()?.to_string()).ok())
        .find(|c| c.name() == name)
}

fn csrf_field(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    html[i..i + html[i..].find('"').unwrap()].to_string()
}

db_test!(
    share_with_password_serves_allowed_files_and_logs,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = crate::console_test_app!(st);
        let (admin, _) = f.user(Role::Admin);
        let tok = token_for(&db, &f.tenant_id, admin);
        let a = upload(&app, &tok, "beach.jpg").await;
        let b = upload(&app, &tok, "party.jpg").await;
        basis(&db, &st, &f.tenant_id, &a, Some("legitimate_interest")).await;
        basis(&db, &st, &f.tenant_id, &b, Some("legitimate_interest")).await;

        let (id, token) = create(
            &app,
            &tok,
            json!({
                "title": "Press kit <summer>",
                "channel": "web",
                "asset_ids": [a, b, a],
                "expires_on": in_days(&st, 30),
                "password": "open sesame 42",
                "allow_download": true,
            }),
        )
        .await;

        // The staff view: both files served now, no duplicates.
        let (s, _, body) = call(
            &app,
            api("GET", &format!("/api/v1/shares/{id}"), &tok).to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["file_count"], 2);
        assert_eq!(v["has_password"], true);
        assert_eq!(v["files"][0]["asset_id"], a.as_str());
        assert_eq!(v["files"][0]["served_now"], true);
        assert_eq!(v["files"][1]["served_now"], true);

        // The password form first (no file yet), with no-store.
        let page = format!("/s/{token}");
        let (s, h, body) = call(&app, public(&page).to_request()).await;
        let html = text(&body);
        assert_eq!(s, StatusCode::OK, "{html}");
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert!(html.contains("This link is protected"), "{html}");
        assert!(
            html.contains("<label for=\"password\">Password</label>"),
            "{html}"
        );
        assert!(!html.contains(&a), "{html}");
        let pcsrf = cookie_named(&h, "lk_pcsrf").unwrap();
        let csrf = csrf_field(&html);
        // Images need the password too.
        let (s, _, _) = call(&app, public(&format!("{page}/{a}/small.jpg")).to_request()).await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // Without the CSRF pair: 403.
        let (s, _, _) = call(
            &app,
            TestRequest::post()
                .uri(&page)
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload("password=open+sesame+42")
                .to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // A wrong password: the form again, 400.
        let post = |pw: &str| {
            TestRequest::post()
                .uri(&page)
                .peer_addr(PEER.parse().unwrap())
                .cookie(pcsrf.clone())
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload(format!("csrf={csrf}&password={pw}"))
                .to_request()
        };
        let (s, _, body) = call(&app, post("guess")).await;
        let html = text(&body);
        assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
        assert!(html.contains("The password is not right"), "{html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");

        // The right one: 303 back, with the share's cookie on its path.
        let (s, h, _) = call(&app, post("open+sesame+42")).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h.get(header::LOCATION).unwrap(), page.as_str());
        let unlock = cookie_named(&h, "lk_share").unwrap();
        assert_eq!(unlock.path(), Some(page.as_str()));
        assert_eq!(unlock.http_only(), Some(true));

        // The portal: both files, the title escaped, download links.
        let (s, _, body) = call(&app, public(&page).cookie(unlock.clone()).to_request()).await;
        let html = text(&body);
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("Press kit &#60;summer&#62;")
                || html.contains("Press kit &lt;summer&gt;"),
            "{html}"
        );
        assert!(
            html.contains(&format!("src=\"/s/{token}/{a}/small.jpg\"")),
            "{html}"
        );
        assert!(
            html.contains(&format!("src=\"/s/{token}/{b}/small.jpg\"")),
            "{html}"
        );
        assert!(
            html.contains(&format!("href=\"/s/{token}/{a}/download\"")),
            "{html}"
        );
        assert!(html.contains("Shared by acme"), "{html}");

        // An image and a download.
        let (s, h, img) = call(
            &app,
            public(&format!("{page}/{a}/small.jpg"))
                .cookie(unlock.clone())
                .to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{}", text(&img));
        assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "image/jpeg");
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert!(img.starts_with(&[0xff, 0xd8]));
        let (s, h, file) = call(
            &app,
            public(&format!("{page}/{b}/download"))
                .cookie(unlock.clone())
                .to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(file, jpeg());
        assert!(
            h.get(header::CONTENT_DISPOSITION)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("party.jpg")
        );
        // Unknown renditions, the original by name, a file outside the share: 404.
        for uri in [
            format!("{page}/{a}/huge.gif"),
            format!("{page}/{a}/original"),
            format!("{page}/no-such-file/small.jpg"),
            format!("{page}/x%00y/small.jpg"),
        ] {
            let (s, _, _) = call(&app, public(&uri).cookie(unlock.clone()).to_request()).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
        }

        // The file stops being allowed: gone from the portal, its image 451, at once after the
        // process's set follows; the other one stays.
        basis(&db, &st, &f.tenant_id, &a, None).await;
        let (s, h, body) = call(
            &app,
            public(&format!("{page}/{a}/small.jpg"))
                .cookie(unlock.clone())
                .to_request(),
        )
        .await;
        assert_eq!(s.as_u16(), 451);
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert!(!text(&body).contains("beach"));
        let (s, _, _) = call(
            &app,
            public(&format!("{page}/{a}/download"))
                .cookie(unlock.clone())
                .to_request(),
        )
        .await;
        assert_eq!(s.as_u16(), 451);
        let (s, _, body) = call(&app, public(&page).cookie(unlock.clone()).to_request()).await;
        let html = text(&body);
        assert_eq!(s, StatusCode::OK);
        assert!(!html.contains(&a), "{html}");
        assert!(html.contains(&b), "{html}");
        assert!(html.contains("no longer available"), "{html}");
        let (s, _, body) = call(
            &app,
            api("GET", &format!("/api/v1/shares/{id}"), &tok).to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["files"][0]["served_now"], false);
        assert_eq!(v["files"][1]["served_now"], true);

        // The access log, newest first: who saw what, with address and browser.
        let (s, _, body) = call(
            &app,
            api(
                "GET",
                &format!("/api/v1/shares/{id}/access-log?per_page=100"),
                &tok,
            )
            .to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{}", text(&body));
        let log: Vec<Value> = serde_json::from_slice(&body).unwrap();
        let rows: Vec<(String, String, Option<String>)> = log
            .iter()
            .map(|r| {
                (
                    r["action"].as_str().unwrap().to_string(),
                    r["outcome"].as_str().unwrap().to_string(),
                    r["asset_id"].as_str().map(str::to_string),
                )
            })
            .collect();
        for want in [
            ("password".to_string(), "bad_password".to_string(), None),
            ("password".into(), "ok".into(), None),
            ("view".into(), "ok".into(), None),
            ("image".into(), "ok".into(), Some(a.clone())),
            ("download".into(), "ok".into(), Some(b.clone())),
            ("image".into(), "denied".into(), Some(a.clone())),
            ("download".into(), "denied".into(), Some(a.clone())),
        ] {
            assert!(rows.contains(&want), "{want:?} in {rows:?}");
        }
        assert_eq!(log[0]["action"], "view");
        assert!(log.iter().all(|r| r["ip"] == "10.9.8.7"), "{log:?}");
        assert!(
            log.iter().any(|r| r["user_agent"] == "share-test/1"),
            "{log:?}"
        );

        // Revoked: 410 for the page and its files, at once.
        let (s, _, body) = call(
            &app,
            api("POST", &format!("/api/v1/shares/{id}/revoke"), &tok).to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{}", text(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "revoked");
        let (s, _, body) = call(&app, public(&page).cookie(unlock.clone()).to_request()).await;
        assert_eq!(s, StatusCode::GONE);
        assert!(text(&body).contains("cancelled"), "{}", text(&body));
        let (s, _, _) = call(
            &app,
            public(&format!("{page}/{b}/small.jpg"))
                .cookie(unlock.clone())
                .to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::GONE);
        let (s, _, body) = call(
            &app,
            api("GET", "/api/v1/shares?status=revoked", &tok).to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1);
    }
);

db_test!(
    share_of_one_file_expired_unknown_and_unavailable,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = crate::console_test_app!(st);
        let (admin, _) = f.user(Role::Admin);
        let tok = token_for(&db, &f.tenant_id, admin);
        let a = upload(&app, &tok, "one.jpg").await;
        basis(&db, &st, &f.tenant_id, &a, Some("legitimate_interest")).await;
        let (id, token) = create(
        &app,
        &tok,
        json!({"title": "One", "channel": "print", "asset_ids": [a], "expires_on": in_days(&st, 0),
               "watermark_text": "ACME preview"}),
    )
    .await;
        let page = format!("/s/{token}");
        // No password: the portal at once; view only (no download).
        let (s, _, body) = call(&app, public(&page).to_request()).await;
        let html = text(&body);
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains(&format!("src=\"/s/{token}/{a}/small.jpg\"")),
            "{html}"
        );
        assert!(html.contains("watermark"), "{html}");
        assert!(!html.contains("/download"), "{html}");
        let (s, _, _) = call(&app, public(&format!("{page}/{a}/download")).to_request()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // The watermarked image differs from the plain one the delivery would make.
        let (s, _, img) = call(&app, public(&format!("{page}/{a}/small.png")).to_request()).await;
        assert_eq!(s, StatusCode::OK);
        assert!(img.starts_with(b"\x89PNG"));

        // Not allowed any more: a share of one file says so with 451.
        basis(&db, &st, &f.tenant_id, &a, None).await;
        let (s, h, body) = call(&app, public(&page).to_request()).await;
        let html = text(&body);
        assert_eq!(s.as_u16(), 451, "{html}");
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert!(html.contains("No longer available"), "{html}");
        assert!(!html.contains("one.jpg"), "{html}");

        // Expired (its last day was yesterday): 410.
        diesel::update(share_links::table.filter(share_links::id.eq(&id)))
            .set(share_links::expires_on.eq(st.clock.today() - chrono::TimeDelta::days(1)))
            .execute(&mut db.conn())
            .unwrap();
        let (s, _, body) = call(&app, public(&page).to_request()).await;
        assert_eq!(s, StatusCode::GONE);
        assert!(text(&body).contains("expired"), "{}", text(&body));
        let (s, _, body) = call(
            &app,
            api("GET", &format!("/api/v1/shares/{id}"), &tok).to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "expired");

        // Unknown and malformed tokens: 404 pages.
        for uri in [
            format!("/s/{}", "A".repeat(43)),
            "/s/short".to_string(),
            format!("/s/{}/{a}/small.jpg", "B".repeat(43)),
        ] {
            let (s, h, body) = call(&app, public(&uri).to_request()).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
            assert!(
                h.get(header::CONTENT_TYPE)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
            assert!(text(&body).contains("This link is not valid"));
        }
    }
);

db_test!(share_validation_and_permissions, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let other = fixture(&db, "globex");
    let st = state(&db);
    let app = crate::console_test_app!(st);
    let (admin, _) = f.user(Role::Admin);
    let tok = token_for(&db, &f.tenant_id, admin);
    let (oadmin, _) = other.user(Role::Admin);
    let otok = token_for(&db, &other.tenant_id, oadmin);
    let a = upload(&app, &tok, "mine.jpg").await;
    let foreign = upload(&app, &otok, "theirs.jpg").await;
    let ok =
        json!({"title": "T", "channel": "web", "asset_ids": [a], "expires_on": in_days(&st, 10)});

    let bad = |patch: Value| {
        let mut v = ok.clone();
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    for (body, field, words) in [
        (bad(json!({"title": "  "})), "title", "must not be empty"),
        (bad(json!({"channel": "billboard"})), "channel", "billboard"),
        (bad(json!({"asset_ids": []})), "asset_ids", "at least one"),
        (
            bad(json!({"asset_ids": [a, foreign, "nope"]})),
            "asset_ids",
            "nope",
        ),
        (
            bad(json!({"expires_on": in_days(&st, -1)})),
            "expires_on",
            "past",
        ),
        (
            bad(json!({"expires_on": in_days(&st, 400)})),
            "expires_on",
            "one year",
        ),
        (bad(json!({"password": "short"})), "password", "10"),
        (
            bad(json!({"watermark_text": "x".repeat(101)})),
            "watermark_text",
            "100",
        ),
    ] {
        let (s, _, out) = call(
            &app,
            api("POST", "/api/v1/shares", &tok)
                .set_json(&body)
                .to_request(),
        )
        .await;
        let t = text(&out);
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {t}");
        let v: Value = serde_json::from_str(&t).unwrap();
        assert!(t.contains(field) && t.contains(words), "{body}: {v}");
    }
    // The foreign file is named in the refusal.
    let (_, _, out) = call(
        &app,
        api("POST", "/api/v1/shares", &tok)
            .set_json(bad(json!({"asset_ids": [a, foreign]})))
            .to_request(),
    )
    .await;
    assert!(text(&out).contains(&foreign), "{}", text(&out));

    // IDs with control characters (PostgreSQL refuses NUL in text): answered before any query.
    let (s, _, out) = call(
        &app,
        api("POST", "/api/v1/shares", &tok)
            .set_json(bad(json!({"asset_ids": ["x\u{0}y"]})))
            .to_request(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{}", text(&out));
    assert!(text(&out).contains("asset_ids"), "{}", text(&out));
    for (m, uri, want) in [
        ("GET", "/api/v1/shares/x%00y", StatusCode::NOT_FOUND),
        ("POST", "/api/v1/shares/x%00y/revoke", StatusCode::NOT_FOUND),
        (
            "GET",
            "/api/v1/shares/x%00y/access-log",
            StatusCode::NOT_FOUND,
        ),
        ("GET", "/api/v1/shares?asset_id=x%00y", StatusCode::OK),
    ] {
        let (s, _, out) = call(&app, api(m, uri, &tok).to_request()).await;
        assert_eq!(s, want, "{uri}: {}", text(&out));
    }

    // Without manage_assets: 403 to create, revoke and read the log; listing is allowed.
    let (viewer, _) = f.user(Role::Viewer);
    let vtok = token_for(&db, &f.tenant_id, viewer);
    let (s, _, _) = call(
        &app,
        api("POST", "/api/v1/shares", &vtok)
            .set_json(&ok)
            .to_request(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (id, _) = create(&app, &tok, ok.clone()).await;
    for (m, uri) in [
        ("POST", format!("/api/v1/shares/{id}/revoke")),
        ("GET", format!("/api/v1/shares/{id}/access-log")),
    ] {
        let (s, _, _) = call(&app, api(m, &uri, &vtok).to_request()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{uri}");
    }
    let (s, _, body) = call(&app, api("GET", "/api/v1/shares", &vtok).to_request()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Another tenant sees nothing of it.
    let (s, _, _) = call(
        &app,
        api("GET", &format!("/api/v1/shares/{id}"), &otok).to_request(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(
        &app,
        api("POST", &format!("/api/v1/shares/{id}/revoke"), &otok).to_request(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
});

db_test!(console_shares_create_page_revoke, |db: TestDb| async move {
    use crate::common::console::{console_login, get, post};
    let f = fixture(&db, "acme");
    let st = state(&db);
    let app = crate::console_test_app!(st);
    let (admin, _) = f.user(Role::Admin);
    let tok = token_for(&db, &f.tenant_id, admin);
    let a = upload(&app, &tok, "beach.jpg").await;
    basis(&db, &st, &f.tenant_id, &a, Some("legitimate_interest")).await;
    let (cookie, csrf, _) = console_login(&app, &f, Role::Editor).await;

    // The file's page links to the form with the file filled in.
    let (s, html) = get(&app, &cookie, &format!("/admin/files/{a}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains(&format!("href=\"/admin/shares?asset={a}#new-share\"")),
        "{html}"
    );
    let (s, html) = get(&app, &cookie, &format!("/admin/shares?asset={a}")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains(&format!(">{a}</textarea>")), "{html}");
    assert!(
        html.contains("<label for=\"share-title\">Title</label>"),
        "{html}"
    );

    // Bad input: 400 naming the field; no CSRF: 403.
    let form = |title: &str, exp: &str| {
        format!(
            "csrf={csrf}&title={title}&channel=web&asset_ids={a}&expires_on={exp}&allow_download=1"
        )
    };
    let exp = in_days(&st, 7);
    let (s, _, body) = post(&app, &cookie, "/admin/shares", &form("", &exp)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("title"), "{body}");
    let (s, _, body) = post(&app, &cookie, "/admin/shares", &form("T", "soon")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("expires_on"), "{body}");
    let (s, _, _) = post(
        &app,
        &cookie,
        "/admin/shares",
        &format!("title=T&channel=web&asset_ids={a}&expires_on={exp}"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Created: the link shown once.
    let (s, _, html) = post(&app, &cookie, "/admin/shares", &form("Summer+kit", &exp)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("shown only this once"), "{html}");
    let i = html.find("value=\"http://share.test/s/").unwrap() + 7;
    let url = &html[i..i + html[i..].find('"').unwrap()];
    let token = url.rsplit('/').next().unwrap().to_string();
    let j = html.find("href=\"/admin/shares/").unwrap() + 20;
    let id = html[j..j + html[j..].find('"').unwrap()].to_string();
    let (s, _, _) = call(&app, public(&format!("/s/{token}")).to_request()).await;
    assert_eq!(s, StatusCode::OK);

    // The share's page: the file shown now, the access log, the revoke button.
    let (s, html) = get(&app, &cookie, &format!("/admin/shares/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("<h1>Summer kit</h1>"), "{html}");
    assert!(
        html.contains(&format!("data-asset-id=\"{a}\" data-served=\"true\"")),
        "{html}"
    );
    assert!(
        html.contains("data-action=\"view\" data-outcome=\"ok\""),
        "{html}"
    );
    assert!(
        html.contains(&format!("action=\"/admin/shares/{id}/revoke\"")),
        "{html}"
    );
    assert!(!html.contains(&token), "the token is never shown again");

    // A viewer sees the list but no form, no log, no revoke; posting is refused.
    let (vcookie, vcsrf, _) = console_login(&app, &f, Role::Viewer).await;
    let (s, html) = get(&app, &vcookie, "/admin/shares").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Summer kit"), "{html}");
    assert!(!html.contains("id=\"new-share\""), "{html}");
    let (s, html) = get(&app, &vcookie, &format!("/admin/shares/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!html.contains("/revoke\""), "{html}");
    assert!(!html.contains("data-action="), "{html}");
    let (s, _, _) = post(
        &app,
        &vcookie,
        &format!("/admin/shares/{id}/revoke"),
        &format!("csrf={vcsrf}"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Revoked from the console: the link answers 410 at once.
    let (s, loc, _) = post(
        &app,
        &cookie,
        &format!("/admin/shares/{id}/revoke"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(loc, format!("/admin/shares/{id}?notice=share_revoked"));
    let (_, html) = get(&app, &cookie, &loc).await;
    assert!(html.contains("The share link was revoked."), "{html}");
    let (s, _, _) = call(&app, public(&format!("/s/{token}")).to_request()).await;
    assert_eq!(s, StatusCode::GONE);
});

db_test!(
    share_throttles_passwords_and_unknown_tokens,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = crate::console_test_app!(st);
        let (admin, _) = f.user(Role::Admin);
        let tok = token_for(&db, &f.tenant_id, admin);
        let a = upload(&app, &tok, "one.jpg").await;
        let (_, token) = create(
            &app,
            &tok,
            json!({"title": "Locked", "channel": "web", "asset_ids": [a],
               "expires_on": in_days(&st, 3), "password": "the right one 1"}),
        )
        .await;
        let page = format!("/s/{token}");
        let (_, h, body) = call(&app, public(&page).to_request()).await;
        let pcsrf = cookie_named(&h, "lk_pcsrf").unwrap();
        let csrf = csrf_field(&text(&body));
        let post = |pw: &str| {
            TestRequest::post()
                .uri(&page)
                .peer_addr(PEER.parse().unwrap())
                .cookie(pcsrf.clone())
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload(format!("csrf={csrf}&password={pw}"))
                .to_request()
        };
        // Ten wrong passwords, then 429 with Retry-After: the right one too.
        for _ in 0..10 {
            let (s, _, _) = call(&app, post("wrong")).await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
        }
        let (s, h, body) = call(&app, post("the+right+one+1")).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{}", text(&body));
        assert!(h.get(header::RETRY_AFTER).is_some());

        // Unknown tokens count against the address ([signing] max_unknown_tokens_per_ip, 30 by
        // default); past the limit every share link from there answers 429, a valid one too.
        let limit = st.config.signing.max_unknown_tokens_per_ip;
        for i in 0..limit {
            let uri = format!("/s/{:A>43}", i);
            let (s, _, _) = call(&app, public(&uri).to_request()).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
        }
        let (s, h, _) = call(&app, public(&page).to_request()).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert!(h.get(header::RETRY_AFTER).is_some());
        // Another address is not affected.
        let (s, _, _) = call(
            &app,
            TestRequest::get()
                .uri(&page)
                .peer_addr("10.1.1.1:5000".parse().unwrap())
                .to_request(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
);

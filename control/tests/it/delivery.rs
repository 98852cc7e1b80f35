//! (PUBLISHING) The delivery endpoint `/d/{tenant}/{asset}/{channel}/{rendition}` over real HTTP
//! (a server on a free port, a real HTTP client), on SQLite and PostgreSQL: an allowed file is
//! served with its caching headers (public for `max_age_secs`, `Surrogate-Key`, `ETag` and 304,
//! HEAD), in every size and format, generated once (a second process reads the stored
//! rendition); a staff withdrawal makes the same URL answer 451 (RFC 7725, `no-store`, a body
//! naming no one) as soon as the process's allowed set follows; unknown renditions and channels
//! are 404 naming them; other tenants' files, unknown and corrupt ids are 404 with one generic
//! body; a video has its `original` only; the watermark variants follow the tenant's text; and
//! `GET /api/v1/assets/{id}/delivery` lists the URLs and whether each channel serves today.

use std::io::Cursor;

use actix_web::web;
use chrono::{Days, NaiveDateTime};
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::audit::Who;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::{faces, persons, renditions};
use likeness_control::service::agreements::{self, NewAgreement, Withdrawal};
use likeness_control::service::compliance::{self, LegalBasisIn};
use likeness_control::service::delivery::{self, RenditionSpec};
use likeness_control::service::faces as face_svc;
use likeness_control_domain::{ConsentSource, LegalBasis};
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};

use crate::common::*;

const BASE: &str = "http://cdn.test";

fn state(db: &TestDb) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(console::KEY.into());
    cfg.matcher.url = "http://127.0.0.1:9".into();
    cfg.signing.key_file = db.dir().join("evidence.key");
    cfg.delivery.public_base_url = format!("{BASE}/");
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

/// The app on a free port of 127.0.0.1, with a real HTTP client.
struct Server {
    url: String,
    state: web::Data<Deps>,
    handle: actix_web::dev::ServerHandle,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }
}

impl Server {
    fn start(db: &TestDb) -> Self {
        let state = state(db);
        let st = state.clone();
        let server = actix_web::HttpServer::new(move || {
            let st = st.clone();
            actix_web::App::new().configure(move |c| likeness_control::app::configure_app(c, st))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://{addr}"),
            state,
            handle,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.unwrap().to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.send(r).await
    }

    /// Uploads `bytes` as `name`: the asset ID.
    async fn upload(&self, token: &str, name: &str, bytes: Vec<u8>) -> String {
        let a = self
            .send(
                self.http
                    .post(format!("{}/api/v1/assets?filename={name}", self.url))
                    .bearer_auth(token)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(bytes),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text());
        a.json()["asset"]["id"].as_str().unwrap().to_string()
    }

    /// Lets the process's allowed set follow the changes.
    async fn follow(&self) {
        self.state
            .allowed
            .poll(&self.state.pool, self.state.clock.now())
            .await
            .unwrap();
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// A JPEG of `w` x `h` (a gradient), made here.
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 120])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// A few bytes an MP4 starts with (stored as a video without decoding).
fn mp4() -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0x18];
    v.extend_from_slice(b"ftypmp42\0\0\0\0mp42isom");
    v.extend_from_slice(&[0x42; 300]);
    v
}

fn set_basis(db: &TestDb, tenant: &str, asset: &str, basis: LegalBasis, now: NaiveDateTime) {
    db::write_tx(&mut db.conn(), |c| {
        compliance::set_legal_basis(
            c,
            &Who::system("test", Some(tenant)),
            tenant,
            asset,
            LegalBasisIn {
                legal_basis: Some(basis),
                note: None,
            },
            now,
        )
    })
    .unwrap();
}

fn decoded(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).unwrap();
    (img.width(), img.height())
}

fn rendition_rows(db: &TestDb, asset: &str) -> i64 {
    renditions::table
        .filter(renditions::asset_id.eq(asset))
        .count()
        .get_result(&mut db.conn())
        .unwrap()
}

db_test!(
    delivery_serves_an_allowed_file_with_caching_headers,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let admin = token_for(&db, &t, f.user(Role::Admin).0);
        let s = Server::start(&db);
        let a = s.upload(&admin, "team.jpg", jpeg(800, 500)).await;
        set_basis(
            &db,
            &t,
            &a,
            LegalBasis::LegitimateInterest,
            s.state.clock.now(),
        );
        s.follow().await;

        // The URLs, per channel, from the API.
        let d = s
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/assets/{a}/delivery"),
                &admin,
                None,
            )
            .await;
        assert_eq!(d.status, 200, "{}", d.text());
        let d = d.json();
        assert_eq!(d["kind"], "image");
        assert_eq!(d["version"], 1);
        let web = d["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == "web")
            .unwrap()
            .clone();
        assert_eq!(web["served"], true, "{d}");
        let thumb_url = web["renditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "thumb.jpg")
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(thumb_url, format!("{BASE}/d/acme/{a}/web/thumb.jpg"));
        let names: Vec<&str> = web["renditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"original") && names.contains(&"full.webp"),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.contains(".wm.")),
            "no watermark set: {names:?}"
        );

        // Served with its caching headers.
        let path = thumb_url.strip_prefix(BASE).unwrap().to_string();
        let r = s.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), "image/jpeg");
        assert_eq!(r.header("cache-control"), "public, max-age=60, s-maxage=60");
        assert_eq!(r.header("surrogate-key"), format!("asset-{a} tenant-acme"));
        let etag = r.header("etag").to_string();
        assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
        assert_eq!(decoded(&r.body), (320, 200));
        // A conditional request: 304 without a body, the same validators.
        let r304 = s
            .send(
                s.http
                    .get(format!("{}{path}", s.url))
                    .header(header::IF_NONE_MATCH, format!("\"other\", {etag}")),
            )
            .await;
        assert_eq!(r304.status, 304);
        assert!(r304.body.is_empty());
        assert_eq!(r304.header("etag"), etag);
        // HEAD: the headers and the length, no body.
        let head = s.send(s.http.head(format!("{}{path}", s.url))).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), r.body.len().to_string());
        assert_eq!(head.header("etag"), etag);

        // Sizes and formats (never enlarged).
        for (name, mime, dims) in [
            ("small.png", "image/png", (640, 400)),
            ("medium.webp", "image/webp", (800, 500)),
            ("large.jpg", "image/jpeg", (800, 500)),
            ("full.png", "image/png", (800, 500)),
        ] {
            let r = s.get(&format!("/d/acme/{a}/print/{name}")).await;
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            assert_eq!(r.header("content-type"), mime, "{name}");
            assert_eq!(decoded(&r.body), dims, "{name}");
        }
        // The original: the uploaded bytes.
        let o = s.get(&format!("/d/acme/{a}/web/original")).await;
        assert_eq!(o.status, 200);
        assert_eq!(o.body, jpeg(800, 500));
        assert_eq!(o.header("content-type"), "image/jpeg");

        // Generated once: stored (blob + row); asking again adds nothing, and another process
        // (an empty memory cache) reads the stored rendition with the same entity tag.
        let rows = rendition_rows(&db, &a);
        assert_eq!(
            rows, 5,
            "thumb.jpg, small.png, medium.webp, large.jpg, full.png"
        );
        let again = s.get(&path).await;
        assert_eq!(again.header("etag"), etag);
        assert_eq!(again.body, r.body);
        assert_eq!(rendition_rows(&db, &a), rows);
        let other = state(&db);
        let spec = RenditionSpec::parse("thumb.jpg", None).unwrap();
        let stored = delivery::rendition(&other, &t, &a, 1, &spec).await.unwrap();
        assert_eq!(stored.etag, etag);
        assert_eq!(stored.bytes.as_ref(), r.body.as_slice());
        assert_eq!(rendition_rows(&db, &a), rows);
        assert!(s.state.renditions.used() > 0);
        s.stop().await;
    }
);

db_test!(
    delivery_refuses_unknown_renditions_channels_ids_and_other_tenants,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let o = fixture(&db, "other");
        let t = f.tenant_id.clone();
        let admin = token_for(&db, &t, f.user(Role::Admin).0);
        let oadmin = token_for(&db, &o.tenant_id, o.user(Role::Admin).0);
        let s = Server::start(&db);
        let a = s.upload(&admin, "a.jpg", jpeg(200, 100)).await;
        let b = s.upload(&oadmin, "b.jpg", jpeg(200, 100)).await;
        let now = s.state.clock.now();
        set_basis(&db, &t, &a, LegalBasis::LegitimateInterest, now);
        set_basis(&db, &o.tenant_id, &b, LegalBasis::LegitimateInterest, now);
        s.follow().await;
        assert_eq!(
            s.get(&format!("/d/acme/{a}/web/thumb.jpg")).await.status,
            200
        );
        assert_eq!(
            s.get(&format!("/d/other/{b}/web/thumb.jpg")).await.status,
            200
        );

        // Unknown rendition or channel: 404 naming it.
        for (name, needle) in [
            ("huge.jpg", "huge.jpg"),
            ("thumb.gif", "thumb.gif"),
            ("thumb.wm.jpg", "no watermark"),
            ("thumb", "thumb"),
        ] {
            let r = s.get(&format!("/d/acme/{a}/web/{name}")).await;
            assert_eq!(r.status, 404, "{name}");
            assert_eq!(r.json()["error"]["code"], "not_found");
            assert!(r.text().contains(needle), "{name}: {}", r.text());
            assert_eq!(r.header("cache-control"), "no-store");
        }
        let r = s.get(&format!("/d/acme/{a}/billboard/thumb.jpg")).await;
        assert_eq!(r.status, 404);
        assert!(r.text().contains("billboard"), "{}", r.text());

        // Another tenant's file, unknown tenants and ids, corrupt ids: one generic 404.
        let generic = s.get(&format!("/d/acme/{b}/web/thumb.jpg")).await;
        assert_eq!(generic.status, 404);
        assert_eq!(generic.header("cache-control"), "no-store");
        let body = generic.text();
        assert!(!body.contains(&b), "{body}");
        for path in [
            format!("/d/other/{a}/web/thumb.jpg"),
            format!("/d/nobody/{a}/web/thumb.jpg"),
            format!("/d/acme/{}/web/thumb.jpg", db::new_id()),
            "/d/acme/not-a-uuid/web/thumb.jpg".to_string(),
            "/d/acme/%00%FF%2F..%2F/web/thumb.jpg".to_string(),
            format!("/d/acme/{}/web/thumb.jpg", "9".repeat(5000)),
        ] {
            let r = s.get(&path).await;
            assert_eq!(r.status, 404, "{path}: {}", r.text());
            assert_eq!(r.text(), body, "{path}");
        }
        // Paths outside the pattern: the app's 404.
        for path in [
            format!("/d/acme/{a}/web"),
            format!("/d/acme/{a}/web/thumb.jpg/x"),
        ] {
            let r = s.get(&path).await;
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(r.json()["error"]["code"], "not_found");
        }
        // Another tenant's file through the API: 404; a garbage id too.
        for id in [b.as_str(), "garbage", "%00"] {
            let r = s
                .api(
                    reqwest::Method::GET,
                    &format!("/api/v1/assets/{id}/delivery"),
                    &admin,
                    None,
                )
                .await;
            assert_eq!(r.status, 404, "{id}: {}", r.text());
        }
        // No credentials: 401.
        let r = s.get(&format!("/api/v1/assets/{a}/delivery")).await;
        assert_eq!(r.status, 401);
        // Methods other than GET and HEAD.
        let r = s
            .send(s.http.post(format!("{}/d/acme/{a}/web/thumb.jpg", s.url)))
            .await;
        assert!(r.status == 404 || r.status == 405, "{}", r.status);
        s.stop().await;
    }
);

fn person(db: &TestDb, tenant: &str, name: &str) -> String {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{id}")),
            persons::never_publish.eq(false),
            persons::custom_fields_json.eq("{}"),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

fn confirmed_face(db: &TestDb, tenant: &str, asset: &str, person: &str, now: NaiveDateTime) {
    let face = face_svc::FaceRow {
        id: db::new_id(),
        tenant_id: tenant.into(),
        asset_id: asset.into(),
        source: face_svc::DETECTED.into(),
        status: face_svc::CONFIRMED.into(),
        person_id: Some(person.into()),
        box_x1: 10.0,
        box_y1: 10.0,
        box_x2: 110.0,
        box_y2: 110.0,
        landmarks_json: None,
        score: Some(0.9),
        identifiable: true,
        quality_json: None,
        candidates_json: Some("[]".into()),
        model_version: None,
        template_enrolled: false,
        decided_by: None,
        decided_at: None,
        created_at: now,
    };
    diesel::insert_into(faces::table)
        .values(&face)
        .execute(&mut db.conn())
        .unwrap();
}

db_test!(
    delivery_answers_451_after_a_withdrawal,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let admin = token_for(&db, &t, f.user(Role::Admin).0);
        let s = Server::start(&db);
        let now = s.state.clock.now();
        let today = now.date();
        let a = s.upload(&admin, "jane.jpg", jpeg(400, 300)).await;
        let p = person(&db, &t, "Jane Roe");
        confirmed_face(&db, &t, &a, &p, now);
        set_basis(&db, &t, &a, LegalBasis::Consent, now);
        s.follow().await;
        let url = format!("/d/acme/{a}/web/small.jpg");
        let r = s.get(&url).await;
        assert_eq!(r.status, 451, "no consent yet: {}", r.text());

        let agreement = db::write_tx(&mut db.conn(), |c| {
            agreements::create(
                c,
                &Who::system("test", Some(&t)),
                &t,
                &p,
                NewAgreement {
                    channels: vec!["web".into()],
                    valid_from: today,
                    valid_until: Some(today + Days::new(365)),
                    source: ConsentSource::PaperScan,
                    covers_face_matching: false,
                    signed_by_guardian: false,
                    text_sha256: None,
                    note: None,
                },
                now,
            )
        })
        .unwrap()
        .id;
        s.follow().await;
        let r = s.get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("cache-control").starts_with("public"));
        // Not on a channel the consent does not cover.
        assert_eq!(
            s.get(&format!("/d/acme/{a}/print/small.jpg")).await.status,
            451
        );

        // Staff record the withdrawal; the process follows: the same URL is 451.
        db::write_tx(&mut db.conn(), |c| {
            agreements::withdraw_at(
                c,
                &Who::system("test", Some(&t)),
                &t,
                &agreement,
                Withdrawal {
                    at: None,
                    reason: "by phone".into(),
                },
                now,
            )
        })
        .unwrap();
        s.follow().await;
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let r = s
                .send(s.http.request(method.clone(), format!("{}{url}", s.url)))
                .await;
            assert_eq!(r.status, 451, "{method}");
            assert_eq!(r.header("cache-control"), "no-store", "{method}");
            assert_eq!(r.header("link"), format!("<{BASE}/>; rel=\"blocked-by\""));
            assert!(r.headers.get("etag").is_none());
            assert!(r.headers.get("surrogate-key").is_none());
            if method == reqwest::Method::GET {
                let body = r.text();
                assert_eq!(r.json()["error"]["code"], "unavailable_for_legal_reasons");
                for secret in ["Jane", "Roe", &p, "withdraw", "consent", &agreement] {
                    assert!(!body.contains(secret), "451 body reveals {secret}: {body}");
                }
            }
        }
        // A conditional request does not get a 304 either.
        let r = s
            .send(
                s.http
                    .get(format!("{}{url}", s.url))
                    .header(header::IF_NONE_MATCH, "*"),
            )
            .await;
        assert_eq!(r.status, 451);
        // The API says so too.
        let d = s
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/assets/{a}/delivery"),
                &admin,
                None,
            )
            .await
            .json();
        assert!(
            d["channels"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["served"] == false),
            "{d}"
        );
        s.stop().await;
    }
);

db_test!(
    delivery_serves_a_videos_original_only,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let admin = token_for(&db, &t, f.user(Role::Admin).0);
        let s = Server::start(&db);
        let v = s.upload(&admin, "clip.mp4", mp4()).await;
        set_basis(
            &db,
            &t,
            &v,
            LegalBasis::LegitimateInterest,
            s.state.clock.now(),
        );
        s.follow().await;
        let r = s.get(&format!("/d/acme/{v}/web/original")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), "video/mp4");
        assert_eq!(r.body, mp4());
        assert!(r.header("etag").len() > 10);
        let r = s.get(&format!("/d/acme/{v}/web/thumb.jpg")).await;
        assert_eq!(r.status, 404);
        assert!(r.text().contains("original"), "{}", r.text());
        let d = s
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/assets/{v}/delivery"),
                &admin,
                None,
            )
            .await
            .json();
        assert_eq!(d["kind"], "video");
        let names: Vec<&str> = d["channels"][0]["renditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["original"]);
        s.stop().await;
    }
);

db_test!(
    delivery_watermark_follows_the_tenant_text,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let admin = token_for(&db, &t, f.user(Role::Admin).0);
        let viewer = token_for(&db, &t, f.user(Role::Viewer).0);
        let s = Server::start(&db);
        let a = s.upload(&admin, "a.jpg", jpeg(640, 480)).await;
        set_basis(
            &db,
            &t,
            &a,
            LegalBasis::LegitimateInterest,
            s.state.clock.now(),
        );
        s.follow().await;
        let wm = format!("/d/acme/{a}/web/small.wm.png");
        assert_eq!(s.get(&wm).await.status, 404, "no watermark set yet");

        // Only manage_settings sets it; bad input names the field.
        let put = |tok: String, body: Value| {
            let s = &s;
            async move {
                s.api(
                    reqwest::Method::PUT,
                    "/api/v1/delivery/watermark",
                    &tok,
                    Some(body),
                )
                .await
            }
        };
        assert_eq!(put(viewer.clone(), json!({"text": "x"})).await.status, 403);
        let r = put(admin.clone(), json!({"text": "x".repeat(101)})).await;
        assert_eq!(r.status, 400);
        assert!(r.text().contains("text"), "{}", r.text());
        assert_eq!(put(admin.clone(), json!({"txt": "x"})).await.status, 400);
        let r = put(admin.clone(), json!({"text": "© ACME Bildbank"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["text"], "© ACME Bildbank");
        let g = s
            .api(
                reqwest::Method::GET,
                "/api/v1/delivery/watermark",
                &viewer,
                None,
            )
            .await;
        assert_eq!(g.json()["text"], "© ACME Bildbank");

        let plain = s.get(&format!("/d/acme/{a}/web/small.png")).await;
        let marked = s.get(&wm).await;
        assert_eq!(marked.status, 200, "{}", marked.text());
        assert_eq!(decoded(&marked.body), (640, 480));
        assert_ne!(marked.body, plain.body, "the watermark changes pixels");
        assert_ne!(marked.header("etag"), plain.header("etag"));
        // Listed by the API now.
        let d = s
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/assets/{a}/delivery"),
                &admin,
                None,
            )
            .await
            .json();
        assert!(d.to_string().contains("small.wm.png"), "{d}");

        // A new text makes a new rendition.
        assert_eq!(
            put(admin.clone(), json!({"text": "Other"})).await.status,
            200
        );
        let again = s.get(&wm).await;
        assert_eq!(again.status, 200);
        assert_ne!(again.header("etag"), marked.header("etag"));
        // Removed: the variant is gone.
        assert_eq!(put(admin.clone(), json!({"text": null})).await.status, 200);
        assert_eq!(s.get(&wm).await.status, 404);
        s.stop().await;
    }
);

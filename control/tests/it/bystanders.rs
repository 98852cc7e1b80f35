//! Bystanders (issue 15): on a photo where one face is linked and another is not, one call
//! pixelates the unlinked face into a new version, after which the file is no longer blocked by
//! unidentified faces; the linked face is untouched, the pixelated one is blocks of one colour.
//! Errors: nothing left to pixelate (409), a role without `manage_assets` (403), another
//! tenant's or an unknown file (404). On SQLite and PostgreSQL.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use likeness_control::roles::Role;
use serde_json::{Value, json};

async fn call<S, B>(app: &S, req: TestRequest) -> (StatusCode, Value)
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

async fn bytes_of<S, B>(app: &S, req: TestRequest) -> (StatusCode, Vec<u8>)
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
    (status, test::read_body(resp).await.to_vec())
}

fn bearer(t: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {t}"))
}

/// A textured 400x240 JPEG (every pixel differs from its neighbours).
pub fn textured_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(400, 240, |x, y| {
        let v = (x * 37 + y * 91 + (x * y) % 53) % 256;
        image::Rgb([v as u8, ((x * 7) % 256) as u8, ((y * 11) % 256) as u8])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out, 95,
        ))
        .unwrap();
    out
}

/// Mean absolute difference between horizontal neighbours inside a box (texture left).
pub fn texture(img: &image::RgbImage, b: [u32; 4]) -> f64 {
    let (mut sum, mut n) = (0f64, 0f64);
    for y in b[1]..b[3] {
        for x in b[0]..b[2] - 1 {
            let (p, q) = (img.get_pixel(x, y), img.get_pixel(x + 1, y));
            sum += (0..3)
                .map(|i| (f64::from(p[i]) - f64::from(q[i])).abs())
                .sum::<f64>();
            n += 3.0;
        }
    }
    sum / n
}

fn verdict<'a>(v: &'a Value, channel: &str) -> &'a Value {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["channel"] == channel)
        .unwrap_or_else(|| panic!("no verdict for {channel}: {v}"))
}

db_test!(pixelate_unlinked_faces, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let other = fixture(&db, "other");
    let t = f.tenant_id.clone();
    let editor = token_for(&db, &t, f.user(Role::Editor).0);
    let po = token_for(&db, &t, f.user(Role::PrivacyOfficer).0);
    let viewer = token_for(&db, &t, f.user(Role::Viewer).0);
    let stranger = token_for(&db, &other.tenant_id, other.user(Role::Admin).0);
    let app = test_app!(db);
    let today = chrono::Utc::now().date_naive();

    let (s, p) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/persons")
            .insert_header(bearer(&editor))
            .set_json(json!({"name": "Linked Person"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let person = p["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/persons/{person}/agreements"))
            .insert_header(bearer(&po))
            .set_json(json!({"channels": ["web"], "valid_from": today, "source": "paper_scan"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let original = textured_jpeg();
    let (s, v) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/assets?filename=group.jpg")
            .insert_header(bearer(&editor))
            .insert_header(("content-type", "application/octet-stream"))
            .set_payload(original.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let asset = v["asset"]["id"].as_str().unwrap().to_string();
    let mut face_ids = Vec::new();
    for b in [[40.0, 40.0, 140.0, 160.0], [240.0, 50.0, 340.0, 170.0]] {
        let (s, v) = call(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/assets/{asset}/faces"))
                .insert_header(bearer(&editor))
                .set_json(json!({"box": b})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        face_ids.push(v["id"].as_str().unwrap().to_string());
    }
    let (s, v) = call(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/faces/{}/confirm", face_ids[0]))
            .insert_header(bearer(&editor))
            .set_json(json!({"person_id": person})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        &app,
        TestRequest::put()
            .uri(&format!("/api/v1/assets/{asset}/legal-basis"))
            .insert_header(bearer(&po))
            .set_json(json!({"legal_basis": "consent"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let compliance =
        || TestRequest::get().uri(&format!("/api/v1/assets/{asset}/compliance?date={today}"));
    let (_, v) = call(&app, compliance().insert_header(bearer(&editor))).await;
    assert_eq!(verdict(&v, "web")["status"], "unidentified_faces", "{v}");

    // A role without manage_assets, another tenant, an unknown file.
    let pixelate =
        |a: &str| TestRequest::post().uri(&format!("/api/v1/assets/{a}/pixelate-unlinked"));
    let (s, v) = call(&app, pixelate(&asset).insert_header(bearer(&viewer))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("manage_assets"),
        "{v}"
    );
    let (s, v) = call(&app, pixelate(&asset).insert_header(bearer(&stranger))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = call(&app, pixelate("nope").insert_header(bearer(&editor))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // Pixelate: the unlinked face only, into version 2; the file is approved for web now.
    let (s, v) = call(&app, pixelate(&asset).insert_header(bearer(&editor))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2, "{v}");
    assert_eq!(v["asset"]["current_version"], 2, "{v}");
    assert_eq!(v["faces_pixelated"], json!([face_ids[1]]), "{v}");
    let (_, v) = call(&app, compliance().insert_header(bearer(&editor))).await;
    assert_eq!(verdict(&v, "web")["status"], "approved", "{v}");
    let (_, faces) = call(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/assets/{asset}/faces"))
            .insert_header(bearer(&editor)),
    )
    .await;
    let face = |id: &str| {
        faces
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(face(&face_ids[1])["identifiable"], false, "{faces}");
    assert_eq!(face(&face_ids[0])["identifiable"], true, "{faces}");
    assert_eq!(face(&face_ids[0])["status"], "confirmed", "{faces}");

    // The new bytes: the unlinked face is blocks (no texture left), the linked one untouched.
    let (s, now_bytes) = bytes_of(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/assets/{asset}/download"))
            .insert_header(bearer(&editor)),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_ne!(now_bytes, original);
    let before = image::load_from_memory(&original).unwrap().to_rgb8();
    let after = image::load_from_memory(&now_bytes).unwrap().to_rgb8();
    assert_eq!(after.dimensions(), before.dimensions());
    let (linked, unlinked) = ([50, 50, 130, 150], [250, 60, 330, 160]);
    assert!(
        texture(&before, unlinked) > 20.0,
        "{}",
        texture(&before, unlinked)
    );
    assert!(
        texture(&after, unlinked) < texture(&before, unlinked) / 4.0,
        "pixelated: {} vs {}",
        texture(&after, unlinked),
        texture(&before, unlinked)
    );
    assert!(
        (texture(&after, linked) - texture(&before, linked)).abs() < texture(&before, linked) / 4.0,
        "linked face kept: {} vs {}",
        texture(&after, linked),
        texture(&before, linked)
    );

    // Again: nothing left to pixelate.
    let (s, v) = call(&app, pixelate(&asset).insert_header(bearer(&editor))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "nothing_to_pixelate", "{v}");

    // The change is audited.
    let (_, log) = call(
        &app,
        TestRequest::get()
            .uri("/api/v1/audit?limit=200")
            .insert_header(bearer(&po)),
    )
    .await;
    assert!(log.to_string().contains("asset.pixelate_unlinked"), "{log}");
});

//! (RIGHTS) Access-request exports (Art. 15, 20) over the REST API, on SQLite and PostgreSQL,
//! with the real `likeness-matcher`: the package of a seeded person holds every agreement (with
//! its receipt and documents), file, face, publication and audit entry; the copies of the files
//! carry no EXIF/GPS; in every copy the matcher finds no identifiable face but the person's own
//! (every other person is enrolled and never suggested); expiry; wrong tenant; roles.

use std::io::{Cursor, Read};

use crate::common::{TestDb, fixture, token_for};
use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::roles::Role;
use likeness_control::schema::{access_exports, audit_log};
use likeness_control::service::evidence::{self, EvidenceKind};
use likeness_control::service::{access_export, jobs as job_svc};
use likeness_control_media::MatcherClient;
use likeness_control_media::testing::{MatcherProcess, data_dir};
use serde_json::{Value, json};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const MARKER: &[u8] = b"EXPORT-SECRET-GPS-MARKER";

fn data(rel: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn state(db: &TestDb, port: u16) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(KEY.into());
    cfg.signing.key_file = db.dir().join("evidence-signing.key");
    cfg.matcher.url = format!("http://127.0.0.1:{port}");
    cfg.matcher.timeout_ms = 60_000;
    cfg.jobs.poll_ms = 50;
    cfg.jobs.backoff_base_ms = 50;
    cfg.jobs.backoff_max_ms = 200;
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

/// A JPEG with an EXIF segment (APP1) holding an image description ([`MARKER`]) and a GPS IFD
/// (latitude 59° 19' N), inserted after the JFIF header.
fn with_exif(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut desc = MARKER.to_vec();
    desc.push(0);
    let be16 = |v: u16| v.to_be_bytes();
    let be32 = |v: u32| v.to_be_bytes();
    let mut t = Vec::new();
    t.extend_from_slice(b"MM\0\x2a");
    t.extend_from_slice(&be32(8));
    // IFD0 at 8: 2 entries -> ends at 8 + 2 + 24 + 4 = 38; the description at 38.
    let desc_at = 38u32;
    let gps_at = (desc_at + desc.len() as u32 + 1) & !1;
    t.extend_from_slice(&be16(2));
    t.extend_from_slice(&be16(0x010E));
    t.extend_from_slice(&be16(2));
    t.extend_from_slice(&be32(desc.len() as u32));
    t.extend_from_slice(&be32(desc_at));
    t.extend_from_slice(&be16(0x8825));
    t.extend_from_slice(&be16(4));
    t.extend_from_slice(&be32(1));
    t.extend_from_slice(&be32(gps_at));
    t.extend_from_slice(&be32(0));
    t.extend_from_slice(&desc);
    while (t.len() as u32) < gps_at {
        t.push(0);
    }
    // GPS IFD: LatitudeRef "N", Latitude 59/1 19/1 0/1.
    let rat_at = gps_at + 2 + 24 + 4;
    t.extend_from_slice(&be16(2));
    t.extend_from_slice(&be16(0x0001));
    t.extend_from_slice(&be16(2));
    t.extend_from_slice(&be32(2));
    t.extend_from_slice(b"N\0\0\0");
    t.extend_from_slice(&be16(0x0002));
    t.extend_from_slice(&be16(5));
    t.extend_from_slice(&be32(3));
    t.extend_from_slice(&be32(rat_at));
    t.extend_from_slice(&be32(0));
    for (n, d) in [(59u32, 1u32), (19, 1), (0, 1)] {
        t.extend_from_slice(&be32(n));
        t.extend_from_slice(&be32(d));
    }
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&be16((2 + 6 + t.len()) as u16));
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&t);
    // After APP0 (JFIF) if present.
    let mut at = 2;
    if jpeg[2..4] == [0xFF, 0xE0] {
        at = 4 + u16::from_be_bytes([jpeg[4], jpeg[5]]) as usize;
    }
    let mut out = jpeg[..at].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[at..]);
    // Still a valid image.
    image::load_from_memory(&out).unwrap();
    out
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let area = |r: [f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

fn box_of(v: &Value) -> [f64; 4] {
    let a = v.as_array().unwrap();
    [
        a[0].as_f64().unwrap(),
        a[1].as_f64().unwrap(),
        a[2].as_f64().unwrap(),
        a[3].as_f64().unwrap(),
    ]
}

macro_rules! call {
    ($app:expr, $token:expr, $req:expr) => {{
        let resp = test::call_service(
            $app,
            $req.insert_header(("Authorization", format!("Bearer {}", $token)))
                .to_request(),
        )
        .await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = test::read_body(resp).await;
        (status, body, headers)
    }};
}

macro_rules! json_call {
    ($app:expr, $token:expr, $req:expr) => {{
        let (s, b, _) = call!($app, $token, $req);
        let v: Value = if b.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&b)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&b)))
        };
        (s, v)
    }};
}

fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        out.insert(f.name().to_string(), b);
    }
    out
}

db_test!(
    export_is_complete_redacted_expiring_and_guarded,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let other = fixture(&db, "other");
        let gallery = tempfile::tempdir().unwrap();
        let m = MatcherProcess::start_any(gallery.path(), KEY)
            .await
            .unwrap();
        let mc = MatcherClient::new(m.client_config()).unwrap();
        let st = state(&db, m.port);
        let app = test::init_service(
            App::new().configure(|c| likeness_control::app::configure_app(c, st.clone())),
        )
        .await;
        let t = f.tenant_id.clone();
        let po = token_for(&db, &t, f.user(Role::PrivacyOfficer).0);
        let editor = token_for(&db, &t, f.user(Role::Editor).0);
        let other_po = token_for(&db, &other.tenant_id, other.user(Role::PrivacyOfficer).0);
        let today = chrono::Utc::now().date_naive();

        // Persons: the subject and one person per other face; each with a consent covering
        // face matching, so that every confirmed face is enrolled in the matcher.
        let new_person = async |name: &str, email: &str| -> String {
            let (s, v) = json_call!(
                &app,
                po,
                test::TestRequest::post()
                    .uri("/api/v1/persons")
                    .set_json(json!({"name": name, "email": email, "phone": "+46701234567"}))
            );
            assert_eq!(s, StatusCode::CREATED, "{v}");
            let id = v["id"].as_str().unwrap().to_string();
            let (s, v) = json_call!(
                &app,
                po,
                test::TestRequest::post()
                    .uri(&format!("/api/v1/persons/{id}/agreements"))
                    .set_json(
                        json!({"channels": ["web"], "valid_from": today - chrono::Days::new(1),
                        "source": "digital", "covers_face_matching": true})
                    )
            );
            assert_eq!(s, StatusCode::CREATED, "{v}");
            id
        };
        let subject = new_person("Åsa Exportsson", "asa.exportsson@example.org").await;

        // Two group photos; the first carries EXIF with GPS.
        let mut assets = Vec::new();
        for (name, bytes) in [
            ("group.jpg", with_exif(&data("group/insightface_t1.jpg"))),
            ("couple.jpg", data("group/deepface_couple.jpg")),
        ] {
            let (s, v) = json_call!(
                &app,
                po,
                test::TestRequest::post()
                    .uri(&format!("/api/v1/assets?filename={name}"))
                    .insert_header(("content-type", "application/octet-stream"))
                    .set_payload(bytes)
            );
            assert_eq!(s, StatusCode::CREATED, "{v}");
            assets.push(v["asset"]["id"].as_str().unwrap().to_string());
        }
        job_svc::run_until_idle(&st, "w").await.unwrap();

        // On each photo: the leftmost face is the subject, every other face someone else.
        let mut subject_boxes = Vec::new();
        let mut others = Vec::new();
        let mut subject_faces = Vec::new();
        for (ai, a) in assets.iter().enumerate() {
            let (_, v) = json_call!(
                &app,
                po,
                test::TestRequest::get().uri(&format!("/api/v1/assets/{a}/faces"))
            );
            let mut faces = v.as_array().unwrap().clone();
            assert!(faces.len() >= 2, "{faces:?}");
            faces.sort_by(|x, y| {
                x["box"][0]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&y["box"][0].as_f64().unwrap())
            });
            for (i, face) in faces.iter().enumerate() {
                let fid = face["id"].as_str().unwrap().to_string();
                let who = if i == 0 {
                    subject_boxes.push(box_of(&face["box"]));
                    subject_faces.push(fid.clone());
                    subject.clone()
                } else {
                    let p = new_person(
                        &format!("Other {ai}-{i}"),
                        &format!("other{ai}{i}@example.org"),
                    )
                    .await;
                    others.push(p.clone());
                    p
                };
                let (s, v) = json_call!(
                    &app,
                    po,
                    test::TestRequest::post()
                        .uri(&format!("/api/v1/faces/{fid}/confirm"))
                        .set_json(json!({"person_id": who}))
                );
                assert_eq!(s, StatusCode::OK, "{v}");
            }
        }
        job_svc::run_until_idle(&st, "w").await.unwrap();
        // The test has teeth: on the original group photo, the matcher finds the others.
        let found: std::collections::BTreeSet<String> = mc
            .suggest(&t, data("group/insightface_t1.jpg"))
            .await
            .unwrap()
            .faces
            .iter()
            .flat_map(|x| x.candidates.iter().map(|c| c.person_id.clone()))
            .filter(|p| others.contains(p))
            .collect();
        assert!(found.len() >= 3, "others found on the original: {found:?}");

        // A second agreement with a document and sealed evidence (signed digitally).
        let (s, v) = json_call!(
            &app,
            po,
            test::TestRequest::post()
                .uri(&format!("/api/v1/persons/{subject}/agreements"))
                .set_json(json!({"channels": ["web", "print"], "valid_from": today,
                    "source": "paper_scan", "note": "school photo"}))
        );
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let signed = v["id"].as_str().unwrap().to_string();
        let pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec();
        let (s, v) = json_call!(
            &app,
            po,
            test::TestRequest::post()
                .uri(&format!(
                    "/api/v1/agreements/{signed}/documents?filename=consent%20scan.pdf"
                ))
                .insert_header(("content-type", "application/octet-stream"))
                .set_payload(pdf.clone())
        );
        assert_eq!(s, StatusCode::CREATED, "{v}");
        {
            let mut c = db.conn();
            likeness_control::db::write_tx(&mut c, |c| {
                evidence::seal(
                    c,
                    &st,
                    &t,
                    EvidenceKind::Signature,
                    &signed,
                    None,
                    json!({"person": {"id": subject}, "scopes_accepted": ["web", "print"]}),
                    true,
                    likeness_control::db::now(),
                )
            })
            .unwrap();
        }
        // A publication of the first photo.
        let (s, v) = json_call!(
            &app,
            po,
            test::TestRequest::post()
                .uri("/api/v1/publications")
                .set_json(json!({"asset_id": assets[0], "channel": "web",
                    "location": "https://news.example.org/summer"}))
        );
        assert!(s.is_success(), "{v}");
        let publication = v["publication"]["id"].as_str().unwrap().to_string();

        // Guards: a role without `export`, another tenant, an unknown person.
        let uri = format!("/api/v1/persons/{subject}/exports");
        let (s, v) = json_call!(&app, editor, test::TestRequest::post().uri(&uri));
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let (s, v) = json_call!(&app, other_po, test::TestRequest::post().uri(&uri));
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        let (s, v) = json_call!(
            &app,
            po,
            test::TestRequest::post().uri("/api/v1/persons/nobody/exports")
        );
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

        // The request: 202, queued; not downloadable before it is built.
        let (s, v) = json_call!(&app, po, test::TestRequest::post().uri(&uri));
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["status"], "queued");
        let id = v["id"].as_str().unwrap().to_string();
        let (s, v) = json_call!(
            &app,
            po,
            test::TestRequest::get().uri(&format!("/api/v1/exports/{id}/download"))
        );
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["error"]["code"], "export_not_ready");
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let (s, v) = json_call!(
            &app,
            po,
            test::TestRequest::get().uri(&format!("/api/v1/exports/{id}"))
        );
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "ready", "{v}");
        assert_eq!(v["done"], v["total"], "{v}");
        assert_eq!(
            v["total"],
            2 + 1 + 1,
            "two files, one document, the package: {v}"
        );
        for (tok, code) in [
            (&other_po, StatusCode::NOT_FOUND),
            (&editor, StatusCode::FORBIDDEN),
        ] {
            let (s, _) = json_call!(
                &app,
                tok,
                test::TestRequest::get().uri(&format!("/api/v1/exports/{id}"))
            );
            assert_eq!(s, code);
            let (s, _) = json_call!(
                &app,
                tok,
                test::TestRequest::get().uri(&format!("/api/v1/exports/{id}/download"))
            );
            assert_eq!(s, code);
        }
        let (s, v) = json_call!(&app, po, test::TestRequest::get().uri(&uri));
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 1);
        let (s, _) = json_call!(&app, other_po, test::TestRequest::get().uri(&uri));
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, v) = json_call!(
            &app,
            po,
            test::TestRequest::get().uri("/api/v1/exports/nothing-here/download")
        );
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

        // The download.
        let (s, body, headers) = call!(
            &app,
            po,
            test::TestRequest::get().uri(&format!("/api/v1/exports/{id}/download"))
        );
        assert_eq!(s, StatusCode::OK);
        assert_eq!(headers.get("content-type").unwrap(), "application/zip");
        assert!(
            headers
                .get("content-disposition")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("attachment; filename=\"access-export-")
        );
        let files = unzip(&body);
        let doc: Value = serde_json::from_slice(&files["person.json"]).unwrap();
        assert_eq!(doc["schema"], access_export::SCHEMA);
        // The register entry.
        assert_eq!(doc["person"]["id"], subject.as_str());
        assert_eq!(doc["person"]["name"], "Åsa Exportsson");
        assert_eq!(doc["person"]["email"], "asa.exportsson@example.org");
        assert_eq!(doc["person"]["phone"], "+46701234567");
        // Every agreement, with the receipt (JSON + PDF) and the document.
        let agreements = doc["agreements"].as_array().unwrap();
        assert_eq!(agreements.len(), 2, "{agreements:?}");
        let a = agreements
            .iter()
            .find(|a| a["id"] == signed.as_str())
            .unwrap();
        assert_eq!(a["evidence"].as_array().unwrap().len(), 1);
        let receipt: Value =
            serde_json::from_slice(&files[&format!("agreements/{signed}/receipt.json")]).unwrap();
        assert_eq!(receipt["format"], "likeness-receipt/1");
        assert_eq!(receipt, a["evidence"][0]["receipt"]);
        assert!(files[&format!("agreements/{signed}/receipt.pdf")].starts_with(b"%PDF"));
        let doc_path = a["document_files"][0]["path"].as_str().unwrap();
        assert_eq!(files[doc_path], pdf);
        // Every file, with the subject's face (box, who confirmed, when).
        let exported: Vec<&Value> = doc["files"].as_array().unwrap().iter().collect();
        assert_eq!(exported.len(), 2);
        for (a, sbox) in assets.iter().zip(&subject_boxes) {
            let e = exported
                .iter()
                .find(|x| x["asset_id"] == a.as_str())
                .unwrap();
            assert_eq!(e["faces"].as_array().unwrap().len(), 1, "{e}");
            let face = &e["faces"][0];
            assert!(subject_faces.contains(&face["face_id"].as_str().unwrap().to_string()));
            assert_eq!(box_of(&face["box"]), *sbox);
            assert_eq!(face["status"], "confirmed");
            assert_eq!(
                face["decided_by"]["user_id"],
                f.user(Role::PrivacyOfficer).0
            );
            assert!(face["decided_at"].is_string(), "{face}");
            assert!(e["other_faces_pixelated"].as_u64().unwrap() >= 1);
            assert_eq!(e["copy"], format!("files/{a}.jpg"));
        }
        // Where they were published.
        assert!(
            doc["publications"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == publication.as_str())
        );
        // Every audit entry about the person.
        // (Everything recorded before the package was sealed.)
        let ready: i64 = audit_log::table
            .filter(audit_log::action.eq("person.export_ready"))
            .filter(audit_log::object_id.eq(&subject))
            .select(audit_log::seq)
            .first(&mut db.conn())
            .unwrap();
        let about: Vec<i64> = audit_log::table
            .filter(audit_log::tenant_id.eq(&t))
            .filter(audit_log::object_id.eq(&subject))
            .filter(audit_log::seq.lt(ready))
            .select(audit_log::seq)
            .load(&mut db.conn())
            .unwrap();
        let in_package: Vec<i64> = doc["audit"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert!(about.len() >= 3, "{about:?}");
        for s in &about {
            assert!(in_package.contains(s), "audit entry {s} missing");
        }
        assert!(
            doc["audit"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "person.export_requested")
        );
        // Processing information.
        assert_eq!(doc["processing"]["retention"]["export_download_hours"], 72);
        assert!(!doc["processing"]["purposes"].as_array().unwrap().is_empty());
        // The readable index: the name, links into the zip, nothing external.
        let html = String::from_utf8(files["index.html"].clone()).unwrap();
        assert!(html.contains("Åsa Exportsson"));
        assert!(html.contains("href=\"person.json\""));
        assert!(html.contains(&format!("src=\"files/{}.jpg\"", assets[0])));
        assert!(!html.contains("src=\"http") && !html.contains("<script"));

        // The copies: no EXIF/GPS, and no identifiable face but the subject's.
        for (a, sbox) in assets.iter().zip(&subject_boxes) {
            let copy = &files[&format!("files/{a}.jpg")];
            assert!(
                !find(copy, b"Exif") && !find(copy, MARKER),
                "metadata left in {a}"
            );
            let img = image::load_from_memory(copy).unwrap();
            assert!(img.width() > 0);
            let s = mc.suggest(&t, copy.clone()).await.unwrap();
            let mut own_found = false;
            for face in &s.faces {
                let b = face.bbox.map(f64::from);
                for c in &face.candidates {
                    assert!(
                        !others.contains(&c.person_id),
                        "another person recognised in {a}: {face:?}"
                    );
                }
                if iou(b, *sbox) > 0.3 {
                    own_found = true;
                } else {
                    assert!(
                        !face.quality.identifiable,
                        "an identifiable face other than the subject's in {a}: {face:?}"
                    );
                }
            }
            assert!(
                own_found,
                "the subject's own face is untouched in {a}: {s:?}"
            );
        }

        // The download is audited.
        let n: i64 = audit_log::table
            .filter(audit_log::action.eq("person.export_downloaded"))
            .filter(audit_log::object_id.eq(&subject))
            .count()
            .get_result(&mut db.conn())
            .unwrap();
        assert_eq!(n, 1);

        // Expiry: after export_ttl_hours the download is gone, and the scheduler deletes it.
        let key: String = access_exports::table
            .filter(access_exports::id.eq(&id))
            .select(access_exports::blob_key)
            .first::<Option<String>>(&mut db.conn())
            .unwrap()
            .unwrap();
        let media = st.media().unwrap();
        assert!(media.blobs.exists(&t, &key).unwrap());
        let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(1);
        diesel::update(access_exports::table.filter(access_exports::id.eq(&id)))
            .set(access_exports::expires_at.eq(past))
            .execute(&mut db.conn())
            .unwrap();
        let (s, v) = json_call!(
            &app,
            po,
            test::TestRequest::get().uri(&format!("/api/v1/exports/{id}/download"))
        );
        assert_eq!(s, StatusCode::GONE, "{v}");
        assert_eq!(v["error"]["code"], "export_expired");
        let n = access_export::expire_exports(&st, chrono::Utc::now().naive_utc())
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert!(!media.blobs.exists(&t, &key).unwrap());
        let (_, v) = json_call!(
            &app,
            po,
            test::TestRequest::get().uri(&format!("/api/v1/exports/{id}"))
        );
        assert_eq!(v["status"], "expired");
        assert_eq!(
            access_export::expire_exports(&st, chrono::Utc::now().naive_utc())
                .await
                .unwrap(),
            0
        );
    }
);

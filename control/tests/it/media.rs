//! (MEDIA) Assets, faces, the job queue and bulk re-matching over the REST API, on SQLite and
//! PostgreSQL, with the real `likeness-matcher` process (real models, real photos).

use std::path::PathBuf;
use std::time::Duration;

use crate::common::console::multipart;
use crate::common::{Fixture, TestDb, fixture, token_for};
use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::roles::Role;
use likeness_control::schema::{agreements, jobs, persons};
use likeness_control::service::jobs::Outcome;
use likeness_control::service::{faces as face_svc, jobs as job_svc};
use likeness_control_media::testing::{MatcherProcess, data_dir, free_port};
use likeness_control_media::{MatcherClient, MatcherConfig};
use serde_json::{Value, json};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn data(rel: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// App state over the test database with the matcher expected on `port`.
fn state(db: &TestDb, port: u16) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(KEY.into());
    cfg.matcher.url = format!("http://127.0.0.1:{port}");
    cfg.matcher.timeout_ms = 60_000;
    // Fast retries for the tests.
    cfg.jobs.poll_ms = 50;
    cfg.jobs.backoff_base_ms = 50;
    cfg.jobs.backoff_max_ms = 200;
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

macro_rules! app {
    ($st:expr) => {
        test::init_service(
            App::new().configure(|c| likeness_control::app::configure_app(c, $st.clone())),
        )
        .await
    };
}

struct Api<'a, S> {
    app: &'a S,
    token: String,
}

impl<'a, S, B> Api<'a, S>
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    async fn call(
        &self,
        req: test::TestRequest,
    ) -> (StatusCode, actix_web::web::Bytes, Option<String>) {
        let resp = test::call_service(
            self.app,
            req.insert_header(("Authorization", format!("Bearer {}", self.token)))
                .to_request(),
        )
        .await;
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        (status, test::read_body(resp).await, ct)
    }

    async fn json(&self, req: test::TestRequest) -> (StatusCode, Value) {
        let (s, b, _) = self.call(req).await;
        let v = if b.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&b)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&b)))
        };
        (s, v)
    }

    async fn upload(&self, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        self.json(
            test::TestRequest::post()
                .uri(&format!("/api/v1/assets?filename={name}"))
                .insert_header(("content-type", "application/octet-stream"))
                .set_payload(bytes),
        )
        .await
    }

    async fn faces(&self, asset: &str) -> Vec<Value> {
        let (s, v) = self
            .json(test::TestRequest::get().uri(&format!("/api/v1/assets/{asset}/faces")))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v.as_array().unwrap().clone()
    }
}

fn resized(bytes: &[u8], scale: f32) -> Vec<u8> {
    let img = image::load_from_memory(bytes).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let small = image::imageops::resize(
        &img,
        (w as f32 * scale) as u32,
        (h as f32 * scale) as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70)
        .encode_image(&small)
        .unwrap();
    out
}

fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn add_person(db: &TestDb, tenant: &str, name: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now().naive_utc();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{id}")),
            persons::custom_fields_json.eq("{}"),
            persons::never_publish.eq(false),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

fn add_consent(db: &TestDb, tenant: &str, person: &str, face_matching: bool) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let today = chrono::Utc::now().date_naive();
    diesel::insert_into(agreements::table)
        .values((
            agreements::id.eq(&id),
            agreements::tenant_id.eq(tenant),
            agreements::person_id.eq(person),
            agreements::channels_json.eq("[\"web\"]"),
            agreements::valid_from.eq(today - chrono::Days::new(1)),
            agreements::source.eq("digital"),
            agreements::covers_face_matching.eq(face_matching),
            agreements::signed_by_guardian.eq(false),
            agreements::created_at.eq(chrono::Utc::now().naive_utc()),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

fn editor_token(db: &TestDb, f: &Fixture) -> String {
    token_for(db, &f.tenant_id, f.user(Role::Editor).0)
}

db_test!(
    upload_duplicates_versions_download_delete,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let other = fixture(&db, "other");
        // No matcher: uploads still succeed, faces are queued.
        let st = state(&db, free_port().unwrap());
        let app = app!(st);
        let ed = Api {
            app: &app,
            token: editor_token(&db, &f),
        };
        let photo = data("photos/img1.jpg");
        let (s, v) = ed.upload("img1.jpg", photo.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let a1 = v["asset"]["id"].as_str().unwrap().to_string();
        assert_eq!(v["asset"]["kind"], "image");
        assert_eq!(v["asset"]["mime"], "image/jpeg");
        assert_eq!(v["asset"]["size_bytes"], photo.len());
        assert_eq!(v["asset"]["phash"].as_str().unwrap().len(), 16);
        assert_eq!(v["duplicates"], json!([]));
        assert_eq!(v["faces_queued"], true);

        // The same file again: an exact duplicate; a smaller recompressed copy: a near one.
        let (s, v) = ed.upload("copy.jpg", photo.clone()).await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(v["duplicates"][0]["asset_id"], a1.as_str());
        assert_eq!(v["duplicates"][0]["kind"], "exact");
        let (s, v) = ed.upload("small.jpg", resized(&photo, 0.5)).await;
        assert_eq!(s, StatusCode::CREATED);
        let near: Vec<_> = v["duplicates"].as_array().unwrap().iter().collect();
        assert_eq!(near.len(), 2, "{v}");
        assert!(near.iter().all(|d| d["kind"] == "near"), "{v}");
        let small = v["asset"]["id"].as_str().unwrap().to_string();
        // A different photo: no duplicates.
        let (_, v) = ed.upload("img2.jpg", data("photos/img2.jpg")).await;
        assert_eq!(v["duplicates"], json!([]), "{v}");

        // A video is stored without decoding.
        let mut mp4 = vec![0, 0, 0, 0x18];
        mp4.extend_from_slice(b"ftypisom\0\0\0\0isomavc1");
        mp4.extend(std::iter::repeat_n(7u8, 4000));
        let (s, v) = ed.upload("clip.mp4", mp4.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["asset"]["kind"], "video");
        assert_eq!(v["asset"]["has_thumbnail"], false);
        assert_eq!(v["faces_queued"], false);
        let video = v["asset"]["id"].as_str().unwrap().to_string();

        // Bad uploads name the problem.
        let (s, v) = ed.upload("x.txt", b"hello, not an image".to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["code"], "unsupported_media_type");
        let (s, v) = ed
            .upload("half.jpg", photo[..photo.len() / 2].to_vec())
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["code"], "corrupt_file");
        let (s, v) = ed.upload("a/b.jpg", photo.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

        // List, filter, thumbnail, duplicates.
        let (s, v) = ed
            .json(test::TestRequest::get().uri("/api/v1/assets?kind=image&sort=filename"))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["total"], 4);
        assert_eq!(v["items"][0]["filename"], "copy.jpg");
        let (s, body, ct) = ed
            .call(test::TestRequest::get().uri(&format!("/api/v1/assets/{a1}/thumbnail")))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("image/jpeg"));
        let thumb = image::load_from_memory(&body).unwrap();
        assert_eq!(thumb.width().max(thumb.height()), 320);
        let (_, v) = ed
            .json(test::TestRequest::get().uri(&format!("/api/v1/assets/{small}/duplicates")))
            .await;
        assert_eq!(v.as_array().unwrap().len(), 2, "{v}");

        // Download follows compliance. Not approved for any channel today (no legal basis yet)
        // under the default policy `allow_with_permission`: the editor (no
        // use_unapproved_files) and the viewer get 403; an admin gets the file with a Warning.
        let dl = format!("/api/v1/assets/{a1}/download");
        let (s, v) = ed.json(test::TestRequest::get().uri(&dl)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not approved"),
            "{v}"
        );
        let viewer = Api {
            app: &app,
            token: token_for(&db, &f.tenant_id, f.user(Role::Viewer).0),
        };
        let (s, v) = viewer.json(test::TestRequest::get().uri(&dl)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let admin_token = token_for(&db, &f.tenant_id, f.user(Role::Admin).0);
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri(&dl)
                .insert_header(("Authorization", format!("Bearer {admin_token}")))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let warning = resp
            .headers()
            .get("warning")
            .map(|h| h.to_str().unwrap().to_string());
        assert!(
            warning
                .as_deref()
                .is_some_and(|w| w.starts_with("299 - \"") && w.contains("not approved")),
            "{warning:?}"
        );
        assert_eq!(test::read_body(resp).await.as_ref(), photo.as_slice());
        // An approving legal basis (no faces yet: the matcher is down): everyone may use it.
        let admin = Api {
            app: &app,
            token: admin_token,
        };
        let (s, v) = admin
            .json(
                test::TestRequest::put()
                    .uri(&format!("/api/v1/assets/{a1}/legal-basis"))
                    .set_json(json!({"legal_basis": "exempt_artistic_journalistic"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, body, _) = ed.call(test::TestRequest::get().uri(&dl)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body.as_ref(), photo.as_slice());
        let (s, body, _) = viewer.call(test::TestRequest::get().uri(&dl)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body.as_ref(), photo.as_slice());
        let (s, _) = viewer.upload("v.jpg", photo.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Another tenant: 404 for everything.
        let stranger = Api {
            app: &app,
            token: editor_token(&db, &other),
        };
        for uri in [
            format!("/api/v1/assets/{a1}"),
            format!("/api/v1/assets/{a1}/download"),
            format!("/api/v1/assets/{a1}/thumbnail"),
            format!("/api/v1/assets/{a1}/faces"),
        ] {
            let (s, _) = stranger.json(test::TestRequest::get().uri(&uri)).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
        }
        let (s, _) = stranger
            .json(test::TestRequest::delete().uri(&format!("/api/v1/assets/{a1}")))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Its own upload of the same photo is not a duplicate of another tenant's.
        let (_, v) = stranger.upload("img1.jpg", photo.clone()).await;
        assert_eq!(v["duplicates"], json!([]));

        // Versions: a new file, the old one stays downloadable; a video cannot replace an image.
        let img2 = data("photos/img3.jpg");
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/assets/{a1}/versions"))
                    .set_payload(img2.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["asset"]["current_version"], 2);
        let (_, v) = ed
            .json(test::TestRequest::get().uri(&format!("/api/v1/assets/{a1}/versions")))
            .await;
        assert_eq!(v.as_array().unwrap().len(), 2);
        let (_, body, _) = ed
            .call(test::TestRequest::get().uri(&format!("/api/v1/assets/{a1}/download?version=1")))
            .await;
        assert_eq!(body.as_ref(), photo.as_slice());
        let (_, body, _) = ed
            .call(test::TestRequest::get().uri(&format!("/api/v1/assets/{a1}/download")))
            .await;
        assert_eq!(body.as_ref(), img2.as_slice());
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/assets/{a1}/versions"))
                    .set_payload(mp4.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["code"], "version_kind_mismatch");

        // Metadata.
        let (s, v) = ed
            .json(
                test::TestRequest::patch()
                    .uri(&format!("/api/v1/assets/{video}"))
                    .set_json(json!({"filename": "clip-final.mp4", "metadata": {"event": "gala"}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["metadata"]["event"], "gala");

        // No plaintext on disk: the photo's bytes appear in no file of the blob store.
        let blob_dir = db.dir().join("blobs");
        let files = files_under(&blob_dir);
        assert!(files.len() > 8, "{files:?}");
        for p in &files {
            let b = std::fs::read(p).unwrap();
            assert!(
                !b.windows(64).any(|w| w == &photo[2000..2064]),
                "{} holds plaintext",
                p.display()
            );
        }

        // Delete: gone, and its blobs (2 versions + thumbnail) erased.
        let before = files_under(&blob_dir).len();
        let (s, _) = ed
            .json(test::TestRequest::delete().uri(&format!("/api/v1/assets/{a1}")))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(files_under(&blob_dir).len(), before - 3);
        let (s, _) = ed
            .json(test::TestRequest::get().uri(&format!("/api/v1/assets/{a1}")))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
);

db_test!(
    faces_appear_when_the_matcher_returns,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let port = free_port().unwrap();
        let st = state(&db, port);
        let app = app!(st);
        let ed = Api {
            app: &app,
            token: editor_token(&db, &f),
        };
        let (s, v) = ed
            .upload("couple.jpg", data("group/deepface_couple.jpg"))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let asset = v["asset"]["id"].as_str().unwrap().to_string();

        // Matcher down: the job is put back with a delay, nothing is lost.
        let (job, outcome) = job_svc::run_once(&st, "w1").await.unwrap().unwrap();
        assert_eq!(job.kind, "suggest_faces");
        assert!(
            matches!(outcome, Outcome::Retry(ref m) if m.contains("unavailable")),
            "{outcome:?}"
        );
        let (status, attempts, err): (String, i32, Option<String>) = jobs::table
            .filter(jobs::id.eq(&job.id))
            .select((jobs::status, jobs::attempts, jobs::last_error))
            .first(&mut db.conn())
            .unwrap();
        assert_eq!((status.as_str(), attempts), ("queued", 1));
        assert!(err.unwrap().contains("matcher"));
        assert!(ed.faces(&asset).await.is_empty());

        // The matcher starts; the next attempt after the backoff stores the faces.
        let gallery = tempfile::tempdir().unwrap();
        let _m = MatcherProcess::start(gallery.path(), KEY, port)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = job_svc::run_until_idle(&st, "w1").await.unwrap();
        assert!(n >= 1);
        let faces = ed.faces(&asset).await;
        assert_eq!(faces.len(), 2, "{faces:?}");
        for face in &faces {
            assert_eq!(face["source"], "detected");
            assert_eq!(face["status"], "unknown");
            assert_eq!(face["landmarks"].as_array().unwrap().len(), 5);
            assert_eq!(
                face["model_version"],
                MatcherConfig::default().model_version.as_str()
            );
        }
        let (_, v) = ed
            .json(test::TestRequest::get().uri("/api/v1/jobs/stats"))
            .await;
        assert_eq!(v["done"], 1, "{v}");
        assert_eq!(v["queued"], 0, "{v}");

        // A hand-drawn face.
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/assets/{asset}/faces"))
                    .set_json(json!({"box": [1.0, 1.0, 30.0, 40.0]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["source"], "manual");
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/assets/{asset}/faces"))
                    .set_json(json!({"box": [50.0, 1.0, 30.0, 40.0]})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(ed.faces(&asset).await.len(), 3);
    }
);

db_test!(
    confirm_enrolls_only_with_consent_reject_sticks_templates_removed,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let gallery = tempfile::tempdir().unwrap();
        let m = MatcherProcess::start_any(gallery.path(), KEY)
            .await
            .unwrap();
        let st = state(&db, m.port);
        let app = app!(st);
        let ed = Api {
            app: &app,
            token: editor_token(&db, &f),
        };
        let mc = MatcherClient::new(m.client_config()).unwrap();
        let t = f.tenant_id.clone();
        let pacino = add_person(&db, &t, "Al Pacino");
        let other = add_person(&db, &t, "Someone Else");

        let (_, v) = ed
            .upload("p1.jpg", data("faces_dev/Al_Pacino_1800_crop.jpg"))
            .await;
        let a1 = v["asset"]["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let faces = ed.faces(&a1).await;
        assert_eq!(faces.len(), 1);
        let f1 = faces[0]["id"].as_str().unwrap().to_string();

        // No consent: linked, no template.
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{f1}/confirm"))
                    .set_json(json!({"person_id": pacino})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["face"]["status"], "confirmed");
        assert_eq!(v["template_enrolled"], false);
        assert_eq!(mc.tenant_stats(&t).await.unwrap().0, 0);
        // The same person on a second face of the asset: refused.
        let (_, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/assets/{a1}/faces"))
                    .set_json(json!({"box": [1.0, 1.0, 20.0, 20.0]})),
            )
            .await;
        let manual = v["id"].as_str().unwrap().to_string();
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{manual}/confirm"))
                    .set_json(json!({"person_id": pacino})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["error"]["code"], "person_already_in_asset");
        // Unknown person / other tenant's person: 404.
        let (s, _) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{manual}/confirm"))
                    .set_json(json!({"person_id": "nobody"})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // With a consent covering face matching: the template is enrolled.
        add_consent(&db, &t, &pacino, true);
        let (s, _) = ed
            .json(test::TestRequest::post().uri(&format!("/api/v1/faces/{f1}/unlink")))
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{f1}/confirm"))
                    .set_json(json!({"person_id": pacino})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["template_enrolled"], true, "{v}");
        assert_eq!(mc.tenant_stats(&t).await.unwrap(), (1, 1));

        // Another photo of him is suggested as him.
        let p2 = data("faces_dev/Al_Pacino_1805_crop.jpg");
        let (_, v) = ed.upload("p2.jpg", p2.clone()).await;
        let a2 = v["asset"]["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let faces = ed.faces(&a2).await;
        assert_eq!(faces[0]["status"], "suggested", "{faces:?}");
        assert_eq!(faces[0]["candidates"][0]["person_id"], pacino.as_str());
        let f2 = faces[0]["id"].as_str().unwrap().to_string();
        // A viewer sees the face but not who it may be.
        let viewer = Api {
            app: &app,
            token: token_for(&db, &t, f.user(Role::Viewer).0),
        };
        let vf = viewer.faces(&a2).await;
        assert_eq!(vf[0]["candidates"], json!([]));
        let (s, _) = viewer
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{f2}/reject"))
                    .set_json(json!({"person_id": pacino})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // Reject: he is never suggested for that face again, even after detection runs again.
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{f2}/reject"))
                    .set_json(json!({"person_id": pacino})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["face"]["status"], "rejected");
        assert_eq!(v["face"]["candidates"], json!([]));
        {
            let mut c = db.conn();
            likeness_control::db::write_tx(&mut c, |c| {
                job_svc::enqueue_suggest(c, &t, &a2, 0).map(|_| ())
            })
            .unwrap();
        }
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let faces = ed.faces(&a2).await;
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0]["id"], f2.as_str());
        assert_eq!(faces[0]["status"], "rejected");
        assert_eq!(faces[0]["candidates"], json!([]));
        // Confirming someone else on it is still possible (no consent: no template).
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{f2}/confirm"))
                    .set_json(json!({"person_id": other})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["template_enrolled"], false);

        // Rejecting the confirmed person of an enrolled face removes its template.
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{f1}/reject"))
                    .set_json(json!({"person_id": pacino})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["templates_removed"], true);
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let dump: Vec<(String, String, String, i32, Option<String>)> = jobs::table
            .select((
                jobs::kind,
                jobs::payload_json,
                jobs::status,
                jobs::attempts,
                jobs::last_error,
            ))
            .load(&mut db.conn())
            .unwrap();
        assert_eq!(mc.tenant_stats(&t).await.unwrap().0, 0, "{dump:#?}");
        let s = mc.suggest(&t, p2.clone()).await.unwrap();
        assert!(s.faces[0].candidates.is_empty(), "{s:?}");

        // Confirm again (consent still valid), then the person's templates are removed (consent
        // withdrawn / person deleted): the matcher no longer matches him.
        let (_, v) = ed
            .upload("p3.jpg", data("faces_dev/Al_Pacino_1806_crop.jpg"))
            .await;
        let a3 = v["asset"]["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let f3 = ed.faces(&a3).await[0]["id"].as_str().unwrap().to_string();
        let (_, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{f3}/confirm"))
                    .set_json(json!({"person_id": pacino})),
            )
            .await;
        assert_eq!(v["template_enrolled"], true, "{v}");
        let s = mc.suggest(&t, p2.clone()).await.unwrap();
        assert_eq!(s.faces[0].candidates[0].person_id, pacino);
        let r = face_svc::remove_person_templates(&st, &t, &pacino)
            .await
            .unwrap();
        assert_eq!((r.removed, r.queued), (1, false));
        let s = mc.suggest(&t, p2.clone()).await.unwrap();
        assert!(s.faces[0].candidates.is_empty(), "{s:?}");
        assert_eq!(mc.tenant_stats(&t).await.unwrap().0, 0);
        let faces = ed.faces(&a3).await;
        assert_eq!(faces[0]["template_enrolled"], false);
        assert_eq!(
            faces[0]["status"], "confirmed",
            "the link stays, the template goes"
        );
    }
);

db_test!(
    template_removal_waits_for_the_matcher,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let gallery = tempfile::tempdir().unwrap();
        let mut m = MatcherProcess::start_any(gallery.path(), KEY)
            .await
            .unwrap();
        let port = m.port;
        let st = state(&db, port);
        let app = app!(st);
        let ed = Api {
            app: &app,
            token: editor_token(&db, &f),
        };
        let t = f.tenant_id.clone();
        let p = add_person(&db, &t, "Al Pacino");
        add_consent(&db, &t, &p, true);
        let (_, v) = ed
            .upload("p1.jpg", data("faces_dev/Al_Pacino_1800_crop.jpg"))
            .await;
        let a = v["asset"]["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let face = ed.faces(&a).await[0]["id"].as_str().unwrap().to_string();
        let (_, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{face}/confirm"))
                    .set_json(json!({"person_id": p})),
            )
            .await;
        assert_eq!(v["template_enrolled"], true, "{v}");

        // Matcher down: the removal is queued, and done when it is back.
        m.stop();
        let r = face_svc::remove_person_templates(&st, &t, &p)
            .await
            .unwrap();
        assert!(r.queued);
        let m2 = MatcherProcess::start(gallery.path(), KEY, port)
            .await
            .unwrap();
        let mc = MatcherClient::new(m2.client_config()).unwrap();
        assert_eq!(mc.tenant_stats(&t).await.unwrap().0, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        job_svc::run_until_idle(&st, "w").await.unwrap();
        assert_eq!(mc.tenant_stats(&t).await.unwrap().0, 0);
    }
);

db_test!(
    rematch_dry_run_then_real_never_touching_decisions,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let gallery = tempfile::tempdir().unwrap();
        let mut m = MatcherProcess::start_any(gallery.path(), KEY)
            .await
            .unwrap();
        let port = m.port;
        let st = state(&db, port);
        let app = app!(st);
        let ed = Api {
            app: &app,
            token: editor_token(&db, &f),
        };
        let t = f.tenant_id.clone();
        let mut ids = Vec::new();
        for file in [
            "faces_dev/Al_Pacino_1800_crop.jpg",
            "faces_dev/Al_Pacino_1805_crop.jpg",
            "faces_dev/Al_Pacino_1808_crop.jpg",
            "faces_dev/Alfred_Molina_3937_crop.jpg",
        ] {
            let (_, v) = ed
                .upload(file.rsplit('/').next().unwrap(), data(file))
                .await;
            ids.push(v["asset"]["id"].as_str().unwrap().to_string());
        }
        job_svc::run_until_idle(&st, "w").await.unwrap();
        // Enroll him from the first photo (consent covers face matching).
        let p = add_person(&db, &t, "Al Pacino");
        add_consent(&db, &t, &p, true);
        let f0 = ed.faces(&ids[0]).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{f0}/confirm"))
                    .set_json(json!({"person_id": p})),
            )
            .await;
        assert_eq!(v["template_enrolled"], true, "{v}");
        // A human decision on the third photo: a hand-drawn face replacing nothing, and the detected
        // face rejected for someone else (status stays as decided).
        let f2 = ed.faces(&ids[2]).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let other = add_person(&db, &t, "Other");
        let (_, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{f2}/confirm"))
                    .set_json(json!({"person_id": other})),
            )
            .await;
        assert_eq!(v["face"]["status"], "confirmed");

        // Dry run: reports the Pacino photo that would get a suggestion, changes nothing.
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri("/api/v1/rematch")
                    .set_json(json!({"dry_run": true})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["total"], 4);
        let run = v["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let (_, v) = ed
            .json(test::TestRequest::get().uri(&format!("/api/v1/rematch/{run}")))
            .await;
        assert_eq!(v["status"], "done", "{v}");
        assert_eq!(v["done"], 4);
        assert_eq!(v["changed"], 1, "{v}");
        assert_eq!(v["report"]["changes"][0]["asset_id"], ids[1].as_str());
        assert_eq!(v["report"]["changes"][0]["updated"], 1);
        assert_eq!(v["report"]["decided_kept"], 2, "{v}");
        assert_eq!(ed.faces(&ids[1]).await[0]["status"], "unknown");

        // Real run, interrupted by the matcher going down: it resumes from its cursor.
        let (_, v) = ed
            .json(
                test::TestRequest::post()
                    .uri("/api/v1/rematch")
                    .set_json(json!({"filter": {"asset_ids": [ids[0], ids[1], ids[2]]}})),
            )
            .await;
        let run = v["id"].as_str().unwrap().to_string();
        assert_eq!(v["total"], 3);
        m.stop();
        let (_, o) = job_svc::run_once(&st, "w").await.unwrap().unwrap();
        assert!(matches!(o, Outcome::Retry(_)), "{o:?}");
        let (_, v) = ed
            .json(test::TestRequest::get().uri(&format!("/api/v1/rematch/{run}")))
            .await;
        assert_eq!(
            (v["status"].as_str(), v["done"].as_i64()),
            (Some("running"), Some(0))
        );
        let _m2 = MatcherProcess::start(gallery.path(), KEY, port)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        job_svc::run_until_idle(&st, "w2").await.unwrap();
        let (_, v) = ed
            .json(test::TestRequest::get().uri(&format!("/api/v1/rematch/{run}")))
            .await;
        assert_eq!(v["status"], "done", "{v}");
        assert_eq!(
            (v["done"].as_i64(), v["changed"].as_i64()),
            (Some(3), Some(1))
        );
        assert!(v["rate"].as_f64().unwrap() > 0.0);
        let faces = ed.faces(&ids[1]).await;
        assert_eq!(faces[0]["status"], "suggested");
        assert_eq!(faces[0]["candidates"][0]["person_id"], p.as_str());
        // Decisions untouched.
        assert_eq!(ed.faces(&ids[0]).await[0]["status"], "confirmed");
        let f2now = ed.faces(&ids[2]).await;
        assert_eq!(f2now[0]["status"], "confirmed");
        assert_eq!(f2now[0]["person_id"], other.as_str());
    }
);

db_test!(
    rematch_cli_works_the_queue_and_resumes,
    |db: TestDb| async move {
        use likeness_control::service::rematch::{CliOptions, run_cli};
        let f = fixture(&db, "acme");
        let gallery = tempfile::tempdir().unwrap();
        let mut m = MatcherProcess::start_any(gallery.path(), KEY)
            .await
            .unwrap();
        let port = m.port;
        let st = state(&db, port);
        let app = app!(st);
        let ed = Api {
            app: &app,
            token: editor_token(&db, &f),
        };
        for file in ["photos/img1.jpg", "photos/img2.jpg"] {
            let (s, _) = ed.upload("x.jpg", data(file)).await;
            assert_eq!(s, StatusCode::CREATED);
        }
        // The CLI works the queue: the upload jobs and the run.
        let out = run_cli(
            &st,
            CliOptions {
                tenant_slug: "acme".into(),
                dry_run: true,
                ..CliOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(out.status, "done");
        assert_eq!((out.done, out.total), (2, 2));
        let (_, v) = ed
            .json(test::TestRequest::get().uri("/api/v1/jobs/stats"))
            .await;
        assert_eq!(v["queued"], 0, "{v}");

        // A run started while the matcher is down is resumed by id once it is back.
        m.stop();
        let (_, v) = ed
            .json(
                test::TestRequest::post()
                    .uri("/api/v1/rematch")
                    .set_json(json!({})),
            )
            .await;
        let run = v["id"].as_str().unwrap().to_string();
        let (_, o) = job_svc::run_once(&st, "w").await.unwrap().unwrap();
        assert!(matches!(o, Outcome::Retry(_)), "{o:?}");
        let _m2 = MatcherProcess::start(gallery.path(), KEY, port)
            .await
            .unwrap();
        let out = run_cli(
            &st,
            CliOptions {
                tenant_slug: "acme".into(),
                resume: Some(run.clone()),
                ..CliOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (out.id.as_str(), out.status.as_str(), out.done),
            (run.as_str(), "done", 2)
        );
        let e = run_cli(
            &st,
            CliOptions {
                tenant_slug: "nope".into(),
                ..CliOptions::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "not_found");
    }
);

db_test!(
    a_rejected_person_never_comes_back_while_others_stay_suggested,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let gallery = tempfile::tempdir().unwrap();
        let m = MatcherProcess::start_any(gallery.path(), KEY)
            .await
            .unwrap();
        let st = state(&db, m.port);
        let app = app!(st);
        let ed = Api {
            app: &app,
            token: editor_token(&db, &f),
        };
        let t = f.tenant_id.clone();
        // Two register entries enrolled from the same photo (a duplicate entry in the register):
        // both match another photo of the man.
        let a = add_person(&db, &t, "A");
        let b = add_person(&db, &t, "B");
        for (p, file) in [
            (&a, "faces_dev/Al_Pacino_1800_crop.jpg"),
            (&b, "faces_dev/Al_Pacino_1800_crop.jpg"),
        ] {
            add_consent(&db, &t, p, true);
            let (_, v) = ed.upload("x.jpg", data(file)).await;
            let asset = v["asset"]["id"].as_str().unwrap().to_string();
            job_svc::run_until_idle(&st, "w").await.unwrap();
            let face = ed.faces(&asset).await[0]["id"]
                .as_str()
                .unwrap()
                .to_string();
            let (_, v) = ed
                .json(
                    test::TestRequest::post()
                        .uri(&format!("/api/v1/faces/{face}/confirm"))
                        .set_json(json!({ "person_id": p })),
                )
                .await;
            assert_eq!(v["template_enrolled"], true, "{v}");
        }
        let (_, v) = ed
            .upload("p.jpg", data("faces_dev/Al_Pacino_1805_crop.jpg"))
            .await;
        let asset = v["asset"]["id"].as_str().unwrap().to_string();
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let face = &ed.faces(&asset).await[0];
        let fid = face["id"].as_str().unwrap().to_string();
        let people: Vec<&str> = face["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["person_id"].as_str().unwrap())
            .collect();
        assert!(
            people.contains(&a.as_str()) && people.contains(&b.as_str()),
            "{face}"
        );

        let (_, v) = ed
            .json(
                test::TestRequest::post()
                    .uri(&format!("/api/v1/faces/{fid}/reject"))
                    .set_json(json!({ "person_id": a })),
            )
            .await;
        assert_eq!(v["face"]["status"], "suggested", "{v}");
        assert_eq!(v["face"]["candidates"][0]["person_id"], b.as_str());
        // Detection again, and a re-matching run: A stays out, B stays suggested.
        {
            let mut c = db.conn();
            likeness_control::db::write_tx(&mut c, |c| {
                job_svc::enqueue_suggest(c, &t, &asset, 0).map(|_| ())
            })
            .unwrap();
        }
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let (s, _) = ed
            .json(
                test::TestRequest::post()
                    .uri("/api/v1/rematch")
                    .set_json(json!({"filter": {"asset_ids": [asset]}})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        job_svc::run_until_idle(&st, "w").await.unwrap();
        let faces = ed.faces(&asset).await;
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0]["id"], fid.as_str());
        assert_eq!(faces[0]["status"], "suggested");
        let people: Vec<&str> = faces[0]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["person_id"].as_str().unwrap())
            .collect();
        assert_eq!(people, vec![b.as_str()]);
    }
);

db_test!(
    multipart_uploads_and_body_limits_after_the_permission_check,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let mut cfg = Config::default();
        cfg.database.url = db.url.clone();
        cfg.storage.dir = db.dir().join("blobs");
        cfg.storage.master_key = Some(KEY.into());
        cfg.server.max_body_bytes = 3_000_000;
        let st = web::Data::new(Deps::new(db.pool.clone(), cfg));
        let app = app!(st);
        let ed = Api {
            app: &app,
            token: editor_token(&db, &f),
        };
        let photo = data("photos/img1.jpg");
        assert!(photo.len() < 3_000_000, "{}", photo.len());

        // A browser form: the name comes from the file part, metadata from its own part.
        let (ct, body) = multipart(&[
            ("file", Some("from form.jpg"), &photo),
            ("metadata", None, br#"{"event": "open day"}"#),
        ]);
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri("/api/v1/assets")
                    .insert_header(("content-type", ct))
                    .set_payload(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["asset"]["filename"], "from form.jpg");
        assert_eq!(v["asset"]["size_bytes"], photo.len());
        assert_eq!(v["asset"]["metadata"]["event"], "open day", "{v}");
        let id = v["asset"]["id"].as_str().unwrap().to_string();
        // The stored file is byte for byte the uploaded one (an admin may download files
        // that are not approved yet).
        let admin = Api {
            app: &app,
            token: token_for(&db, &f.tenant_id, f.user(Role::Admin).0),
        };
        let (s, got, _) = admin
            .call(test::TestRequest::get().uri(&format!("/api/v1/assets/{id}/download")))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got.as_ref(), photo.as_slice());

        // A form without a file part, and a part with broken framing: 400 naming the problem.
        let (ct, body) = multipart(&[("metadata", None, b"{}")]);
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri("/api/v1/assets")
                    .insert_header(("content-type", ct))
                    .set_payload(body),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("file"),
            "{v}"
        );
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri("/api/v1/assets")
                    .insert_header(("content-type", "multipart/form-data; boundary=xyz"))
                    .set_payload("--xyz\r\nno headers and no end"),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        // A raw upload without a name: 400 naming `filename`.
        let (s, v) = ed
            .json(
                test::TestRequest::post()
                    .uri("/api/v1/assets")
                    .insert_header(("content-type", "image/jpeg"))
                    .set_payload(photo.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("filename"),
            "{v}"
        );

        // Over server.max_body_bytes, raw or multipart: 413, nothing stored.
        let big = vec![0u8; 3_000_001];
        let (s, v) = ed.upload("big.jpg", big.clone()).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        assert_eq!(v["error"]["code"], "payload_too_large");
        let (ct, body) = multipart(&[("file", Some("big.jpg"), &big)]);
        let (s, _) = ed
            .json(
                test::TestRequest::post()
                    .uri("/api/v1/assets")
                    .insert_header(("content-type", ct))
                    .set_payload(body),
            )
            .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        let (_, v) = ed
            .json(test::TestRequest::get().uri("/api/v1/assets"))
            .await;
        assert_eq!(v["total"], 1, "{v}");

        // Who may not upload learns 403 (a viewer) or 401 (nobody) — before the body counts.
        let viewer = Api {
            app: &app,
            token: token_for(&db, &f.tenant_id, f.user(Role::Viewer).0),
        };
        let (s, _) = viewer.upload("big.jpg", big.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/api/v1/assets?filename=big.jpg")
                .set_payload(big)
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
);

db_test!(
    jobs_of_a_crashed_process_are_released_at_start,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let mut c = db.conn();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        // A process that has exited (its pid is gone) and one that is alive (this one).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let mut ids = Vec::new();
        for by in [
            format!("{host}:{dead}:0"),
            format!("{host}:{}:0", std::process::id()),
            format!("elsewhere:{dead}:0"),
        ] {
            let id = likeness_control::db::write_tx(&mut c, |c| {
                job_svc::enqueue_suggest(c, &t, "some-asset", 0)
            })
            .unwrap();
            diesel::update(jobs::table.filter(jobs::id.eq(&id)))
                .set((
                    jobs::status.eq("running"),
                    jobs::locked_by.eq(&by),
                    jobs::locked_at.eq(chrono::Utc::now().naive_utc()),
                ))
                .execute(&mut c)
                .unwrap();
            ids.push(id);
        }
        assert_eq!(job_svc::release_orphans(&mut c).unwrap(), 1);
        let status = |id: &str, c: &mut likeness_control::db::PooledConn| -> String {
            jobs::table
                .filter(jobs::id.eq(id))
                .select(jobs::status)
                .first(c)
                .unwrap()
        };
        assert_eq!(status(&ids[0], &mut c), "queued");
        assert_eq!(status(&ids[1], &mut c), "running");
        assert_eq!(status(&ids[2], &mut c), "running");
    }
);

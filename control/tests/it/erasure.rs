//! Erasure (issue 15), on SQLite and PostgreSQL:
//! - the Done-when: a person with a name, e-mail and phone, an agreement with a document, a
//!   signing request (a real outbox message), confirmed faces on two files with templates in
//!   the real matcher. A backup is taken (SQLite: the db file after a checkpoint and `.dump`;
//!   PostgreSQL: `pg_dump`), the person erased; then a full dump, the raw database files and
//!   every data directory (blob store, matcher gallery) hold no occurrence of the name, e-mail,
//!   phone or template bytes, the matcher no longer knows them, and the backup's sealed data can
//!   no longer be opened. The audit chain verifies.
//! - the policies (pixelate, hide, keep), the preview, and the errors (unknown person, another
//!   tenant's person, a role without `erase`);
//! - a crash in the middle (failpoint, in a child process) resumes and completes.
//!
//! Known gaps the scans do not cover (reported): the audit log keeps an agreement document's
//! file name (`agreement.document.add`). An agreement's free-text note and withdrawal reason
//! are sealed under the person's key, so the seeded note carries the name.

use std::path::{Path, PathBuf};

use crate::bystanders::textured_jpeg;
use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::roles::Role;
use likeness_control::schema::{asset_versions, erasure_runs, outbox, persons, tenants};
use likeness_control::service::consent_templates::{self, LegalCharacter, Scope, TemplateInput};
use likeness_control::service::signing::{self, NewSigningRequests, Purpose};
use likeness_control::service::{Clock, ControlError, Ctx, erasure, jobs};
use likeness_control_domain::rights::{ErasureFiles, RightsSettings};
use likeness_control_media::MatcherClient;
use likeness_control_media::testing::{MatcherProcess, data_dir};
use serde_json::{Value, json};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const NAME: &str = "Zebulon Quartermaine";
const SURNAME: &str = "Quartermaine";
const EMAIL: &str = "zebulon.q@erasure-test.example";
const PHONE: &str = "+4798761234";
/// The child process of the crash test reads its setup from this variable.
const CHILD_ENV: &str = "LIKENESS_TEST_ERASURE_CHILD";

fn config(db: &TestDb, matcher: Option<String>) -> Config {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(KEY.into());
    cfg.matcher.url = matcher.unwrap_or_default();
    cfg.matcher.timeout_ms = 60_000;
    cfg.jobs.poll_ms = 50;
    cfg.jobs.backoff_base_ms = 50;
    cfg.jobs.backoff_max_ms = 200;
    cfg.signing.key_file = db.dir().join("evidence.key");
    cfg.signing.public_base_url = "https://consent.test".into();
    cfg
}

fn state(db: &TestDb, matcher: Option<String>) -> web::Data<Deps> {
    web::Data::new(Deps::with_clock(
        db.pool.clone(),
        config(db, matcher),
        Clock::manual(chrono::Utc::now().naive_utc()),
    ))
}

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

fn bearer(t: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {t}"))
}

fn verdict<'a>(v: &'a Value, channel: &str) -> &'a Value {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["channel"] == channel)
        .unwrap_or_else(|| panic!("no verdict for {channel}: {v}"))
}

/// The person with a name, e-mail and phone, an agreement (web, face matching) with a document.
async fn seed_person<S, B>(app: &S, editor: &str, po: &str) -> (String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let today = chrono::Utc::now().date_naive();
    let (s, p) = call(
        app,
        TestRequest::post()
            .uri("/api/v1/persons")
            .insert_header(bearer(editor))
            .set_json(json!({"name": NAME, "email": EMAIL, "phone": PHONE})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let person = p["id"].as_str().unwrap().to_string();
    let (s, a) = call(
        app,
        TestRequest::post()
            .uri(&format!("/api/v1/persons/{person}/agreements"))
            .insert_header(bearer(po))
            .set_json(
                json!({"channels": ["web"], "valid_from": today - chrono::Days::new(1),
                "source": "paper_scan", "covers_face_matching": true,
                "note": format!("signed at the fair by {NAME}")}),
            ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let agreement = a["id"].as_str().unwrap().to_string();
    let (s, d) = call(
        app,
        TestRequest::post()
            .uri(&format!(
                "/api/v1/agreements/{agreement}/documents?filename=consent-scan.jpg"
            ))
            .insert_header(bearer(po))
            .insert_header(("content-type", "application/octet-stream"))
            .set_payload(textured_jpeg()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    (person, agreement)
}

/// A signing request to the person (its e-mail queued in the real outbox, not sent).
async fn signing_request(st: &web::Data<Deps>, tenant: &str, person: &str) {
    let ctx = Ctx::system(st.clone().into_inner(), tenant, "test");
    let tpl = consent_templates::create_template(
        &ctx,
        TemplateInput {
            name: "Event photos".into(),
            title: "Photos of the spring fair".into(),
            body_markdown: "We would like to publish **photos** of you.".into(),
            language: "en".into(),
            scopes: vec![Scope {
                channel: "web".into(),
                mandatory: true,
                label: None,
            }],
            face_matching_text: None,
            validity_days: Some(365),
            legal_character: LegalCharacter::GdprConsent,
            after_signing_text: "Thank you!".into(),
        },
    )
    .await
    .unwrap();
    let out = signing::create_requests(
        &ctx,
        NewSigningRequests {
            person_ids: vec![person.to_string()],
            template_id: tpl.id,
            channel: None,
            language: None,
            asset_ids: vec![],
            purpose: Purpose::Sign,
            renews_agreement_id: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(out.created.len(), 1, "{out:?}");
}

/// Uploads `bytes` as `filename`; returns the asset id.
async fn upload<S, B>(app: &S, editor: &str, filename: &str, bytes: Vec<u8>) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (s, v) = call(
        app,
        TestRequest::post()
            .uri(&format!("/api/v1/assets?filename={filename}"))
            .insert_header(bearer(editor))
            .insert_header(("content-type", "application/octet-stream"))
            .set_payload(bytes),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["asset"]["id"].as_str().unwrap().to_string()
}

/// Draws a face by hand and confirms it as `person` (when given); returns the face id.
async fn drawn_face<S, B>(
    app: &S,
    editor: &str,
    asset: &str,
    b: [f64; 4],
    person: Option<&str>,
) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (s, v) = call(
        app,
        TestRequest::post()
            .uri(&format!("/api/v1/assets/{asset}/faces"))
            .insert_header(bearer(editor))
            .set_json(json!({"box": b})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    if let Some(p) = person {
        let (s, v) = call(
            app,
            TestRequest::post()
                .uri(&format!("/api/v1/faces/{id}/confirm"))
                .insert_header(bearer(editor))
                .set_json(json!({"person_id": p})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    id
}

async fn set_basis<S, B>(app: &S, po: &str, asset: &str, basis: &str)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (s, v) = call(
        app,
        TestRequest::put()
            .uri(&format!("/api/v1/assets/{asset}/legal-basis"))
            .insert_header(bearer(po))
            .set_json(json!({"legal_basis": basis})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

fn set_policy(db: &TestDb, tenant: &str, policy: &RightsSettings) {
    let mut c = db.conn();
    let stored: String = tenants::table
        .filter(tenants::id.eq(tenant))
        .select(tenants::settings_json)
        .first(&mut c)
        .unwrap();
    diesel::update(tenants::table.filter(tenants::id.eq(tenant)))
        .set(tenants::settings_json.eq(policy.merge_into_json(&stored)))
        .execute(&mut c)
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Dumps and scans.

/// A full dump of the database as text (SQLite `.dump`, PostgreSQL `pg_dump`).
fn dump(db: &TestDb) -> Vec<u8> {
    let out = match db.kind {
        Kind::Sqlite => std::process::Command::new("sqlite3")
            .arg(&db.url)
            .arg(".dump")
            .output()
            .expect("sqlite3 (apt-get install sqlite3)"),
        Kind::Postgres => {
            let pg_dump = std::fs::read_dir("/usr/lib/postgresql")
                .expect("/usr/lib/postgresql")
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin/pg_dump"))
                .find(|p| p.is_file())
                .expect("pg_dump under /usr/lib/postgresql/*/bin");
            std::process::Command::new(pg_dump)
                .arg("--no-owner")
                .arg(format!("--dbname={}", db.url))
                .output()
                .expect("pg_dump")
        }
    };
    assert!(
        out.status.success(),
        "dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.len() > 1000, "a dump of a few bytes");
    out.stdout
}

/// The SQLite database's own files (db, -wal, -shm).
fn sqlite_files(db: &TestDb) -> Vec<PathBuf> {
    let p = Path::new(&db.url);
    let name = p.file_name().unwrap().to_string_lossy().to_string();
    std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&name))
        })
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

/// The needles found in `hay`: text ones case-insensitively, byte ones exactly.
fn found(hay: &[u8], text: &[&str], bytes: &[(&str, &[u8])]) -> Vec<String> {
    let lower: Vec<u8> = hay.to_ascii_lowercase();
    let mut out = Vec::new();
    for t in text {
        let n = t.to_ascii_lowercase().into_bytes();
        if lower.windows(n.len()).any(|w| w == n.as_slice()) {
            out.push((*t).to_string());
        }
    }
    for (label, n) in bytes {
        if !n.is_empty() && hay.windows(n.len()).any(|w| w == *n) {
            out.push((*label).to_string());
        }
    }
    out
}

/// The sealed personal fields of the person in a dump (`pv1:...`), if the row was sealed.
fn sealed_in(dump: &[u8], person: &str) -> Option<String> {
    let text = String::from_utf8_lossy(dump);
    for line in text.lines().filter(|l| l.contains(person)) {
        if let Some(i) = line.find("pv1:") {
            let rest = &line[i..];
            let end = rest.find(['\'', '\t', ',', '\n']).unwrap_or(rest.len());
            return Some(rest[..end].to_string());
        }
    }
    None
}

/// A fixed 128-dimension template (the matcher's size) (unit length), enrolled directly for the person.
fn known_template() -> Vec<f32> {
    let v: Vec<f32> = (0..128)
        .map(|i| ((i * 7919 % 1009) as f32 / 1009.0) - 0.5)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn photo(rel: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

db_test!(erasure_leaves_nothing_behind, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let t = f.tenant_id.clone();
    let gallery = tempfile::tempdir().unwrap();
    let m = MatcherProcess::start_any(gallery.path(), KEY)
        .await
        .unwrap();
    let st = state(&db, Some(m.url()));
    let app = test::init_service(
        actix_web::App::new().configure(|c| likeness_control::app::configure_app(c, st.clone())),
    )
    .await;
    let admin = token_for(&db, &t, f.user(Role::Admin).0);
    let editor = token_for(&db, &t, f.user(Role::Editor).0);
    let po = token_for(&db, &t, f.user(Role::PrivacyOfficer).0);
    let mc = MatcherClient::new(m.client_config()).unwrap();

    let (person, _agreement) = seed_person(&app, &editor, &po).await;
    signing_request(&st, &t, &person).await;
    let queued: i64 = outbox::table
        .filter(outbox::tenant_id.eq(&t))
        .filter(outbox::person_id.eq(&person))
        .count()
        .get_result(&mut db.conn())
        .unwrap();
    assert_eq!(queued, 1, "the signing e-mail waits in the outbox");

    // Two photos of the person, confirmed (templates enrolled); the first under consent
    // (pixelated by the erasure), the second under public interest (kept).
    let a1 = upload(
        &app,
        &editor,
        "p1.jpg",
        photo("faces_dev/Al_Pacino_1800_crop.jpg"),
    )
    .await;
    let a2 = upload(
        &app,
        &editor,
        "p2.jpg",
        photo("faces_dev/Al_Pacino_1805_crop.jpg"),
    )
    .await;
    // Detection jobs are stamped with the system time: the manual clock catches up.
    st.clock.advance(chrono::TimeDelta::seconds(5));
    jobs::run_until_idle(&st, "w").await.unwrap();
    for a in [&a1, &a2] {
        let (_, fs) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{a}/faces"))
                .insert_header(bearer(&editor)),
        )
        .await;
        if fs.as_array().unwrap().len() != 1 {
            use likeness_control::schema::jobs as j;
            let rows: Vec<(String, String, Option<String>)> = j::table
                .select((j::kind, j::status, j::last_error))
                .load(&mut db.conn())
                .unwrap();
            panic!("faces of {a}: {fs}; jobs: {rows:?}");
        }
        let (s, v) = call(
            &app,
            TestRequest::post()
                .uri(&format!(
                    "/api/v1/faces/{}/confirm",
                    fs[0]["id"].as_str().unwrap()
                ))
                .insert_header(bearer(&editor))
                .set_json(json!({"person_id": person})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["template_enrolled"], true, "{v}");
    }
    set_basis(&app, &po, &a1, "consent").await;
    set_basis(&app, &po, &a2, "public_interest").await;
    // A template whose bytes we know, for the scans.
    let known = known_template();
    mc.enroll_templates(&t, &person, vec![known.clone()])
        .await
        .unwrap();
    assert_eq!(mc.tenant_stats(&t).await.unwrap().0, 3);
    let template_bytes: Vec<u8> = known.iter().flat_map(|x| x.to_le_bytes()).collect();

    // The backup, before.
    let backup_dir = tempfile::tempdir().unwrap();
    let mut backup_files: Vec<PathBuf> = Vec::new();
    if db.kind == Kind::Sqlite {
        let mut c = db.conn();
        if let likeness_control::db::DbConn::Sqlite(s) = &mut *c {
            s.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        }
        let copy = backup_dir.path().join("backup.sqlite");
        std::fs::copy(&db.url, &copy).unwrap();
        backup_files.push(copy);
    }
    let dump_before = dump(&db);

    // The preview names the consequences.
    let (s, pv) = call(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/persons/{person}/erasure/preview"))
            .insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{pv}");
    assert_eq!(pv["templates"], 2, "{pv}");
    assert_eq!(pv["matcher_needed"], true, "{pv}");
    assert_eq!(pv["documents"], 1, "{pv}");
    assert_eq!(pv["signing_requests"], 1, "{pv}");
    let decision = |a: &str| {
        pv["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["asset_id"] == a)
            .unwrap_or_else(|| panic!("{a} not in {pv}"))
            .clone()
    };
    assert_eq!(decision(&a1)["decision"], "pixelate", "{pv}");
    assert_eq!(decision(&a2)["decision"], "keep", "{pv}");
    assert_eq!(decision(&a2)["basis"], "public_interest", "{pv}");

    // Erase (DELETE is the full erasure): done at once.
    let (s, v) = call(
        &app,
        TestRequest::delete()
            .uri(&format!("/api/v1/persons/{person}"))
            .insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, run) = call(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/persons/{person}/erasure"))
            .insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "the existing run: {run}");
    assert_eq!(run["status"], "done", "{run}");
    let r = &run["report"];
    assert_eq!(r["documents_deleted"], 1, "{run}");
    assert_eq!(r["signing_requests_revoked"], 1, "{run}");
    assert!(r["messages_deleted"].as_u64().unwrap() >= 1, "{run}");
    assert!(r["templates_removed"].as_u64().unwrap() >= 2, "{run}");
    let outcome = |a: &str| {
        r["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["asset_id"] == a)
            .unwrap()
            .clone()
    };
    assert_eq!(outcome(&a1)["decision"], "pixelate", "{run}");
    assert_eq!(outcome(&a1)["version"], 2, "{run}");
    assert_eq!(outcome(&a2)["decision"], "keep", "{run}");
    assert_eq!(outcome(&a2)["basis"], "public_interest", "{run}");
    // The matcher no longer knows them; the register no longer shows them.
    assert_eq!(mc.tenant_stats(&t).await.unwrap().0, 0);
    let (s, _) = call(
        &app,
        TestRequest::get()
            .uri(&format!("/api/v1/persons/{person}"))
            .insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The pixelated file has one version left (the old one is destroyed).
    let versions: Vec<i32> = asset_versions::table
        .filter(asset_versions::asset_id.eq(&a1))
        .select(asset_versions::version)
        .load(&mut db.conn())
        .unwrap();
    assert_eq!(versions, [2]);
    // The tombstone: pseudonym and timestamps only.
    let (name, email, sealed, erased): (
        String,
        Option<String>,
        Option<String>,
        Option<chrono::NaiveDateTime>,
    ) = persons::table
        .filter(persons::id.eq(&person))
        .select((
            persons::name,
            persons::email,
            persons::sealed,
            persons::erased_at,
        ))
        .first(&mut db.conn())
        .unwrap();
    assert_eq!((name.as_str(), email, sealed), ("", None, None));
    assert!(erased.is_some());
    // The audit chain verifies.
    let report = likeness_control::audit::verify(&mut db.conn()).unwrap();
    assert!(report.first_break.is_none(), "{report:?}");

    // The scans: a full dump, the raw database files, every data directory.
    // (Not the surname alone: the audit log keeps a document's file name, see the module doc.)
    let text = [NAME, EMAIL, PHONE];
    let bytes: [(&str, &[u8]); 1] = [("template bytes", &template_bytes[..])];
    let dump_after = dump(&db);
    let hits = found(&dump_after, &text, &bytes);
    assert!(hits.is_empty(), "the dump after the erasure holds {hits:?}");
    let mut files: Vec<PathBuf> = Vec::new();
    if db.kind == Kind::Sqlite {
        files.extend(sqlite_files(&db));
    }
    files_under(&db.dir().join("blobs"), &mut files);
    files_under(gallery.path(), &mut files);
    assert!(files.len() > 3, "{files:?}");
    for p in &files {
        let hay = std::fs::read(p).unwrap();
        let hits = found(&hay, &text, &bytes);
        assert!(hits.is_empty(), "{} holds {hits:?}", p.display());
    }

    // The backup taken before: the sealed data can no longer be opened.
    let vault = st.vault().unwrap();
    match sealed_in(&dump_before, &person) {
        Some(s) => match vault.open_personal(&t, &person, &s) {
            Err(ControlError::Gone { code, .. }) => assert_eq!(code, "person_erased"),
            other => panic!("the backup's sealed data opened: {other:?}"),
        },
        None => panic!("the person's row in the backup holds no sealed data"),
    }
    // And it holds no plaintext name, e-mail or phone (they were sealed when written).
    let mut backup = vec![dump_before];
    for p in &backup_files {
        backup.push(std::fs::read(p).unwrap());
    }
    for b in &backup {
        let hits = found(b, &[NAME, EMAIL, PHONE], &[]);
        assert!(hits.is_empty(), "the backup holds plaintext {hits:?}");
    }
    drop(m);
});

db_test!(
    erasure_policies_preview_and_errors,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let other = fixture(&db, "other");
        let t = f.tenant_id.clone();
        let st = state(&db, None);
        let app = test::init_service(
            actix_web::App::new()
                .configure(|c| likeness_control::app::configure_app(c, st.clone())),
        )
        .await;
        let admin = token_for(&db, &t, f.user(Role::Admin).0);
        let editor = token_for(&db, &t, f.user(Role::Editor).0);
        let po = token_for(&db, &t, f.user(Role::PrivacyOfficer).0);
        let stranger = token_for(&db, &other.tenant_id, other.user(Role::Admin).0);
        set_policy(
            &db,
            &t,
            &RightsSettings {
                erasure_files: ErasureFiles::Hide,
                ..RightsSettings::default()
            },
        );
        let (person, _) = seed_person(&app, &editor, &po).await;
        let a = upload(&app, &editor, "hide-me.jpg", textured_jpeg()).await;
        let face = drawn_face(&app, &editor, &a, [40.0, 40.0, 140.0, 160.0], Some(&person)).await;
        set_basis(&app, &po, &a, "consent").await;
        let kept = upload(&app, &editor, "keep-me.jpg", textured_jpeg()).await;
        drawn_face(
            &app,
            &editor,
            &kept,
            [40.0, 40.0, 140.0, 160.0],
            Some(&person),
        )
        .await;
        set_basis(&app, &po, &kept, "external_agreement").await;

        // Errors: unknown person, another tenant's person, roles without erase.
        for uri in [
            "/api/v1/persons/nobody/erasure/preview".to_string(),
            format!("/api/v1/persons/{person}/erasure/preview"),
        ] {
            let token = if uri.contains("nobody") {
                &admin
            } else {
                &stranger
            };
            let (s, v) = call(
                &app,
                TestRequest::get().uri(&uri).insert_header(bearer(token)),
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{uri}: {v}");
            assert_eq!(v["error"]["code"], "not_found", "{v}");
        }
        for (req, token) in [
            (
                TestRequest::post().uri("/api/v1/persons/nobody/erasure"),
                &admin,
            ),
            (TestRequest::delete().uri("/api/v1/persons/nobody"), &admin),
            (
                TestRequest::post().uri(&format!("/api/v1/persons/{person}/erasure")),
                &stranger,
            ),
            (
                TestRequest::delete().uri(&format!("/api/v1/persons/{person}")),
                &stranger,
            ),
        ] {
            let (s, v) = call(&app, req.insert_header(bearer(token))).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        }
        for req in [
            TestRequest::get().uri(&format!("/api/v1/persons/{person}/erasure/preview")),
            TestRequest::post().uri(&format!("/api/v1/persons/{person}/erasure")),
            TestRequest::delete().uri(&format!("/api/v1/persons/{person}")),
        ] {
            let (s, v) = call(&app, req.insert_header(bearer(&editor))).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains("erase"),
                "{v}"
            );
        }

        // The preview: hide (the policy) and keep (a basis that covers whoever is shown).
        let (s, pv) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{person}/erasure/preview"))
                .insert_header(bearer(&po)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{pv}");
        assert_eq!(pv["policy"]["erasure_files"], "hide", "{pv}");
        assert_eq!(pv["matcher_needed"], false, "{pv}");
        let files = pv["files"].as_array().unwrap();
        assert_eq!(files.len(), 2, "{pv}");
        let of = |id: &str| files.iter().find(|x| x["asset_id"] == id).unwrap().clone();
        assert_eq!(of(&a)["decision"], "hide", "{pv}");
        assert_eq!(of(&a)["faces"], 1, "{pv}");
        assert_eq!(of(&kept)["decision"], "keep", "{pv}");
        assert_eq!(of(&kept)["basis"], "external_agreement", "{pv}");

        // Erase: 202 with the run, done at once (no matcher needed).
        let (s, run) = call(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/persons/{person}/erasure"))
                .insert_header(bearer(&po)),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{run}");
        assert_eq!(run["status"], "done", "{run}");
        assert_eq!(run["step"], "done", "{run}");
        let id = run["id"].as_str().unwrap().to_string();
        // Again: the same run (200); DELETE: 204; the run by id; not for another tenant.
        let (s, again) = call(
            &app,
            TestRequest::post()
                .uri(&format!("/api/v1/persons/{person}/erasure"))
                .insert_header(bearer(&po)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{again}");
        assert_eq!(again["id"], id.as_str());
        let (s, _) = call(
            &app,
            TestRequest::delete()
                .uri(&format!("/api/v1/persons/{person}"))
                .insert_header(bearer(&po)),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/erasures/{id}"))
                .insert_header(bearer(&admin)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["pseudonym"], run["pseudonym"]);
        assert!(!v.to_string().contains(SURNAME), "{v}");
        let (s, _) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/erasures/{id}"))
                .insert_header(bearer(&stranger)),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // After: the preview of an erased person is a 404.
        let (s, _) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{person}/erasure/preview"))
                .insert_header(bearer(&po)),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // The hidden file: blocked in every channel, under consent and under any other basis.
        let today = chrono::Utc::now().date_naive();
        for basis in ["consent", "public_interest", "exempt_artistic_journalistic"] {
            set_basis(&app, &po, &a, basis).await;
            let (_, v) = call(
                &app,
                TestRequest::get()
                    .uri(&format!("/api/v1/assets/{a}/compliance?date={today}"))
                    .insert_header(bearer(&editor)),
            )
            .await;
            for verdict in v["verdicts"].as_array().unwrap() {
                assert_eq!(verdict["allowed"], false, "{basis}: {v}");
                assert!(verdict.to_string().contains(&face), "{basis}: {v}");
            }
        }
        // The kept file: its face is unlinked and the basis covers whoever is shown.
        let (_, v) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/assets/{kept}/compliance?date={today}"))
                .insert_header(bearer(&editor)),
        )
        .await;
        assert_eq!(verdict(&v, "web")["allowed"], true, "{v}");
        assert!(!v.to_string().contains(&person), "{v}");
    }
);

// ---------------------------------------------------------------------------------------------
// A crash in the middle.

/// The child process of [`erasure_resumes_after_a_crash`]: erases the person named in
/// [`CHILD_ENV`] with the failpoint the parent set, which aborts it. Without the variable (a
/// normal test run) it does nothing.
#[actix_web::test]
async fn crash_child() {
    let Ok(setup) = std::env::var(CHILD_ENV) else {
        return;
    };
    let v: Value = serde_json::from_str(&setup).unwrap();
    let mut cfg = Config::default();
    cfg.database.url = v["url"].as_str().unwrap().into();
    cfg.storage.dir = v["blobs"].as_str().unwrap().into();
    cfg.storage.master_key = Some(KEY.into());
    cfg.signing.key_file = v["signing_key"].as_str().unwrap().into();
    let pool = likeness_control_db::connect(&cfg.database.url, 2, 5_000).unwrap();
    let deps = std::sync::Arc::new(Deps::new(pool, cfg));
    let ctx = Ctx::system(deps, v["tenant"].as_str().unwrap(), "test-child");
    let out = erasure::start_erasure(&ctx, v["person"].as_str().unwrap().into()).await;
    panic!("the failpoint did not abort the erasure: {out:?}");
}

db_test!(erasure_resumes_after_a_crash, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let t = f.tenant_id.clone();
    let st = state(&db, None);
    let app = test::init_service(
        actix_web::App::new().configure(|c| likeness_control::app::configure_app(c, st.clone())),
    )
    .await;
    let editor = token_for(&db, &t, f.user(Role::Editor).0);
    let po = token_for(&db, &t, f.user(Role::PrivacyOfficer).0);
    let (person, _) = seed_person(&app, &editor, &po).await;
    let mut assets = Vec::new();
    for name in ["one.jpg", "two.jpg"] {
        let a = upload(&app, &editor, name, textured_jpeg()).await;
        drawn_face(&app, &editor, &a, [40.0, 40.0, 140.0, 160.0], Some(&person)).await;
        set_basis(&app, &po, &a, "consent").await;
        assets.push(a);
    }

    // The child erases and aborts right after the first file.
    let setup = json!({
        "url": db.url, "blobs": db.dir().join("blobs"), "tenant": t, "person": person,
        "signing_key": db.dir().join("evidence.key"),
    });
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "erasure::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, setup.to_string())
        .env(
            likeness_control::service::failpoint::ENV,
            "erasure.after_file",
        )
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the child did not crash: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (step, status, report): (String, String, String) = erasure_runs::table
        .filter(erasure_runs::person_id.eq(&person))
        .select((
            erasure_runs::step,
            erasure_runs::status,
            erasure_runs::report_json,
        ))
        .first(&mut db.conn())
        .unwrap();
    assert_eq!((step.as_str(), status.as_str()), ("files", "running"));
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["files"].as_array().unwrap().len(), 1, "{report}");
    let name: String = persons::table
        .filter(persons::id.eq(&person))
        .select(persons::name)
        .first(&mut db.conn())
        .unwrap();
    let erased: Option<chrono::NaiveDateTime> = persons::table
        .filter(persons::id.eq(&person))
        .select(persons::erased_at)
        .first(&mut db.conn())
        .unwrap();
    assert!(erased.is_none(), "half-done: not erased yet ({name})");

    // The queued job takes over once it is due, and completes the run.
    st.clock.advance(chrono::TimeDelta::seconds(120));
    jobs::run_until_idle(&st, "w").await.unwrap();
    let ctx = Ctx::system(st.clone().into_inner(), &t, "test");
    let run = erasure::erasure_of_person(&ctx, person.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, "done", "{run:?}");
    assert_eq!(run.report.files.len(), 2, "{run:?}");
    assert!(
        run.report.files.iter().all(|f| f.version == Some(2)),
        "{run:?}"
    );
    assert_eq!(run.report.documents_deleted, 1, "{run:?}");
    assert!(run.report.pending_blobs.is_empty(), "{run:?}");
    let erased: Option<chrono::NaiveDateTime> = persons::table
        .filter(persons::id.eq(&person))
        .select(persons::erased_at)
        .first(&mut db.conn())
        .unwrap();
    assert!(erased.is_some());
    for a in &assets {
        let versions: Vec<i32> = asset_versions::table
            .filter(asset_versions::asset_id.eq(a))
            .select(asset_versions::version)
            .load(&mut db.conn())
            .unwrap();
        assert_eq!(versions, [2], "{a}");
    }
    // Starting it again changes nothing: the same, finished run.
    let again = erasure::start_erasure(&ctx, person.clone()).await.unwrap();
    assert_eq!((again.id, again.status.as_str()), (run.id, "done"));
    let report = likeness_control::audit::verify(&mut db.conn()).unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
});

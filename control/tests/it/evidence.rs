//! SIGNING: sealed evidence on SQLite and PostgreSQL — records chained per tenant and signed,
//! receipts that verify (and fail on any change), the public keys and verify endpoints without
//! authentication, the chain check, the key file, and the `verify-receipt` CLI.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use diesel::prelude::*;
use likeness_control::db;
use likeness_control::schema::consent_evidence;
use likeness_control::service::evidence::{self, EvidenceKind, EvidenceSigner};
use likeness_control_domain::evidence::{self as domain, GENESIS_SHA256, Receipt};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_likeness-control");

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

fn record(name: &str) -> Value {
    json!({
        "template": {"id": "t1", "version": 2, "title": "Summer event – photos", "text_sha256": "ab".repeat(32)},
        "scopes_accepted": ["web", "print"],
        "scopes_declined": ["social"],
        "face_matching": {"offered": true, "accepted": false},
        "valid_from": "2026-12-05",
        "valid_until": "2028-12-04",
        "person": {"id": "p1", "pseudonym": name},
        "signed_at": "2026-12-05T10:00:00Z",
        "seq": 999,
    })
}

/// Seals two records for `tenant` and returns them.
fn seal_two(db: &TestDb, tenant: &str) -> (evidence::Sealed, evidence::Sealed) {
    let state = db.state();
    let mut c = db.conn();
    let now = db::now();
    let a = db::write_tx(&mut c, |c| {
        evidence::seal(
            c,
            &state,
            tenant,
            EvidenceKind::Signature,
            "agr-1",
            Some("req-1"),
            record("Åsa Öberg"),
            true,
            now,
        )
    })
    .unwrap();
    let b = db::write_tx(&mut c, |c| {
        evidence::seal(
            c,
            &state,
            tenant,
            EvidenceKind::Withdrawal,
            "agr-1",
            None,
            json!({"withdrawn_at": "2026-12-06T09:00:00Z", "reason": "asked"}),
            false,
            now,
        )
    })
    .unwrap();
    (a, b)
}

db_test!(evidence_chain_and_receipts, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let g = fixture(&db, "other");
    let (a, b) = seal_two(&db, &f.tenant_id);
    assert_eq!((a.seq, b.seq), (1, 2));
    let ra: Value = serde_json::from_str(&a.record_json).unwrap();
    let rb: Value = serde_json::from_str(&b.record_json).unwrap();
    assert_eq!(ra["seq"], 1, "seal sets seq over the caller's");
    assert_eq!(ra["prev_sha256"], GENESIS_SHA256);
    assert_eq!(rb["prev_sha256"], a.record_sha256.as_str());
    assert_eq!(ra["kind"], "signature");
    assert_eq!(rb["kind"], "withdrawal");
    assert_eq!(ra["tenant_id"], f.tenant_id.as_str());
    assert_eq!(ra["request_id"], "req-1");
    assert_eq!(ra["key_id"], a.key_id.as_str());
    assert!(ra["sealed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        a.record_json,
        likeness_control_domain::canonical::to_canonical_string(&ra)
    );
    assert!(b.receipt_token.is_none());
    // Another tenant's chain starts at 1.
    let (g1, _) = seal_two(&db, &g.tenant_id);
    assert_eq!(g1.seq, 1);

    // The receipt token finds the record; an unknown one is 404.
    let token = a.receipt_token.clone().unwrap();
    assert!(token.len() >= 43);
    let mut c = db.conn();
    let (tenant, row) = evidence::find_by_receipt_token(&mut c, &token).unwrap();
    assert_eq!(
        (tenant.as_str(), row.id.as_str()),
        (f.tenant_id.as_str(), a.id.as_str())
    );
    let stored: Option<String> = consent_evidence::table
        .filter(consent_evidence::id.eq(&a.id))
        .select(consent_evidence::receipt_token_sha256)
        .first(&mut c)
        .unwrap();
    assert_ne!(
        stored.as_deref(),
        Some(token.as_str()),
        "only the hash is stored"
    );
    let e = evidence::find_by_receipt_token(&mut c, "nope").unwrap_err();
    assert_eq!(e.to_string(), "receipt not found");

    // The receipt verifies against the published keys, fetched without authentication.
    let receipt = evidence::receipt_of(&mut c, &f.tenant_id, &a.id).unwrap();
    assert_eq!(receipt.format, "likeness-receipt/1");
    assert!(evidence::receipt_of(&mut c, &g.tenant_id, &a.id).is_err());
    let app = test_app!(db);
    let (st, keys) = call!(&app, TestRequest::get().uri("/api/v1/evidence/keys")).await;
    assert_eq!(st, StatusCode::OK, "{keys}");
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert_eq!(keys["keys"][0]["key_id"], a.key_id.as_str());
    assert_eq!(keys["keys"][0]["algorithm"], "ed25519");
    let published = domain::parse_keys(&keys.to_string()).unwrap();
    assert_eq!(domain::verify_receipt(&receipt, &published), Ok(()));
    let (st, v) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/evidence/verify")
            .set_json(&receipt)
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["record_sha256"], a.record_sha256.as_str());

    // Any change fails: one scope, one character, the seq, the key.
    let tampered: Vec<(&str, Receipt, &str)> = {
        let mut out = Vec::new();
        let mut t = receipt.clone();
        t.record["scopes_accepted"][1] = json!("social");
        out.push(("scope", t, "hash_mismatch"));
        let mut t = receipt.clone();
        t.record["person"]["pseudonym"] = json!("Åsa Öbera");
        out.push(("one char", t, "hash_mismatch"));
        let mut t = receipt.clone();
        t.record["seq"] = json!(7);
        t.record_sha256 = domain::sha256_hex(&domain::canonical_bytes(&t.record));
        out.push(("rehashed", t, "bad_signature"));
        let mut t = receipt.clone();
        t.key_id = "0123456789abcdef".into();
        t.record["key_id"] = json!("0123456789abcdef");
        out.push(("unknown key", t, "unknown_key"));
        let mut t = receipt.clone();
        t.signature = "not base64!".into();
        out.push(("signature", t, "receipt_malformed"));
        out
    };
    for (what, t, code) in tampered {
        assert_eq!(
            domain::verify_receipt(&t, &published).unwrap_err().code(),
            code,
            "{what}"
        );
        let (st, e) = call!(
            &app,
            TestRequest::post()
                .uri("/api/v1/evidence/verify")
                .set_json(&t)
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {e}");
        assert_eq!(e["error"]["code"], code, "{what}: {e}");
    }
    let (st, e) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/evidence/verify")
            .set_json(json!({"format": "likeness-receipt/1"}))
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");

    // The chain is intact; an edited record is found at its seq.
    let report = evidence::verify_chain(&mut c, &f.tenant_id).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.checked, report.last_seq), (2, 2));
    let edited = a.record_json.replace("\"print\"", "\"social\"");
    diesel::update(consent_evidence::table.filter(consent_evidence::id.eq(&a.id)))
        .set(consent_evidence::record_json.eq(&edited))
        .execute(&mut c)
        .unwrap();
    let report = evidence::verify_chain(&mut c, &f.tenant_id).unwrap();
    let broken = report.first_broken.unwrap();
    assert_eq!(broken.seq, 1);
    assert!(broken.reason.contains("hash mismatch"), "{}", broken.reason);
    // The other tenant's chain is untouched.
    assert!(evidence::verify_chain(&mut c, &g.tenant_id).unwrap().ok());
    // A removed record breaks the link of the next.
    diesel::update(consent_evidence::table.filter(consent_evidence::id.eq(&a.id)))
        .set(consent_evidence::record_json.eq(&a.record_json))
        .execute(&mut c)
        .unwrap();
    diesel::delete(consent_evidence::table.filter(consent_evidence::id.eq(&a.id)))
        .execute(&mut c)
        .unwrap();
    let report = evidence::verify_chain(&mut c, &f.tenant_id).unwrap();
    assert_eq!(report.first_broken.unwrap().seq, 2);

    // The PDF receipt: a PDF with the labels of its language.
    let pdf = evidence::receipt_pdf_with_links(
        &receipt,
        "sv",
        "https://consent.example.org/",
        Some("https://consent.example.org/receipt/x/withdraw"),
    )
    .unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.contains("/WinAnsiEncoding"));
    // Swedish labels in WinAnsi (å = E5), the record's hash in full, the withdrawal link.
    let title = likeness_control::service::receipt_pdf::encode("Kvitto på ditt samtycke");
    assert!(
        text.contains(&format!("<{}>", hex::encode_upper(&title))),
        "title"
    );
    assert!(text.contains(&a.record_sha256[..32]));
    assert!(text.contains(&hex::encode_upper("/api/v1/evidence/keys")));
    assert!(text.contains("/Type /Page") || text.contains("/Type/Page"));
    let pdf_nl = evidence::receipt_pdf(&receipt, "nl").unwrap();
    assert!(pdf_nl.starts_with(b"%PDF-"));
});

db_test!(
    evidence_concurrent_seals_take_distinct_seqs,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let state = db.state();
        let mut handles = Vec::new();
        for i in 0..6 {
            let pool = db.pool.clone();
            let state = state.clone();
            let t = f.tenant_id.clone();
            handles.push(std::thread::spawn(move || {
                let mut c = pool.get().unwrap();
                db::write_tx(&mut c, |c| {
                    evidence::seal(
                        c,
                        &state,
                        &t,
                        EvidenceKind::Signature,
                        &format!("agr-{i}"),
                        None,
                        json!({"i": i}),
                        false,
                        db::now(),
                    )
                })
                .unwrap()
                .seq
            }));
        }
        let mut seqs: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        assert!(
            evidence::verify_chain(&mut db.conn(), &f.tenant_id)
                .unwrap()
                .ok()
        );
    }
);

#[test]
fn evidence_key_file_created_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/nested/evidence.key");
    let a = EvidenceSigner::open_path(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let b = EvidenceSigner::open_path(&path).unwrap();
    assert_eq!(a.key_id(), b.key_id());
    assert_eq!(a.public_key_base64(), b.public_key_base64());
    assert_eq!(a.key_id().len(), 16);
    // Derived keys: stable, different per purpose and per seed.
    assert_eq!(a.derive_key("otp"), b.derive_key("otp"));
    assert_ne!(a.derive_key("otp"), a.derive_key("other"));
    let c = EvidenceSigner::open_path(&dir.path().join("c.key")).unwrap();
    assert_ne!(a.key_id(), c.key_id());
    assert_ne!(a.derive_key("otp"), c.derive_key("otp"));
    // A malformed file is refused, naming the file.
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key\n").unwrap();
    let e = EvidenceSigner::open_path(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.key"), "{e}");
    std::fs::write(&bad, "abcd\n").unwrap();
    let e = EvidenceSigner::open_path(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.key") && e.contains("2 bytes"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "abcd\n",
        "left as it was"
    );
}

fn verify_cli(receipt: &std::path::Path, keys: &str) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .env_remove("LIKENESS_CONTROL_CONFIG")
        .arg("verify-receipt")
        .arg(receipt)
        .arg("--keys")
        .arg(keys)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[actix_web::test]
async fn evidence_cli_verify_receipt() {
    let db = TestDb::new(Kind::Sqlite);
    let f = fixture(&db, "acme");
    let (a, _) = seal_two(&db, &f.tenant_id);
    let receipt = evidence::receipt_of(&mut db.conn(), &f.tenant_id, &a.id).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("receipt.json");
    std::fs::write(&good, serde_json::to_string_pretty(&receipt).unwrap()).unwrap();
    let mut t = receipt.clone();
    t.record["scopes_declined"] = json!([]);
    let bad = dir.path().join("tampered.json");
    std::fs::write(&bad, serde_json::to_string(&t).unwrap()).unwrap();

    // Keys over HTTP from a real server on a free port.
    let state = db.state();
    let server = actix_web::HttpServer::new(move || {
        let state = state.clone();
        actix_web::App::new().configure(move |c| likeness_control::app::configure_app(c, state))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let url = format!("http://{addr}/api/v1/evidence/keys");
    let keys_file = dir.path().join("keys.json");
    let (good2, bad2, url2, kf) = (good.clone(), bad.clone(), url.clone(), keys_file.clone());
    let results = actix_web::rt::task::spawn_blocking(move || {
        let body = blocking_get(&url2);
        std::fs::write(&kf, body).unwrap();
        (
            verify_cli(&good2, &url2),
            verify_cli(&bad2, &url2),
            verify_cli(&good2, kf.to_str().unwrap()),
            verify_cli(&bad2, kf.to_str().unwrap()),
        )
    })
    .await
    .unwrap();
    handle.stop(true).await;
    let (ok_url, bad_url, ok_file, bad_file) = results;
    for (code, out) in [&ok_url, &ok_file] {
        assert_eq!(*code, 0, "{out}");
        assert!(
            out.starts_with(&format!(
                "valid: record sha256 {}, key {}, signed at 2026-12-05T10:00:00Z",
                a.record_sha256, a.key_id
            )),
            "{out}"
        );
    }
    for (code, out) in [&bad_url, &bad_file] {
        assert_eq!(*code, 1, "{out}");
        assert!(out.contains("hash mismatch"), "{out}");
    }
    // The chain check over the same database.
    let chain = |db_url: &str| {
        let out = std::process::Command::new(BIN)
            .env_remove("LIKENESS_CONTROL_CONFIG")
            .env("LIKENESS_CONTROL__DATABASE__URL", db_url)
            .args(["evidence", "verify-chain", "--tenant", "acme"])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = chain(&db.url);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 2 records, last seq 2"), "{out}");
    diesel::update(consent_evidence::table.filter(consent_evidence::id.eq(&a.id)))
        .set(consent_evidence::signature.eq(&b_signature_of(&db, &f.tenant_id)))
        .execute(&mut db.conn())
        .unwrap();
    let (code, out) = chain(&db.url);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 1"), "{out}");

    // No key with the receipt's id: named.
    let other_keys = dir.path().join("other.json");
    std::fs::write(&other_keys, r#"{"keys":[]}"#).unwrap();
    let (code, out) = verify_cli(&good, other_keys.to_str().unwrap());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown key"), "{out}");
}

/// The signature of the tenant's record 2 (to put on record 1).
fn b_signature_of(db: &TestDb, tenant: &str) -> String {
    consent_evidence::table
        .filter(consent_evidence::tenant_id.eq(tenant))
        .filter(consent_evidence::seq.eq(2))
        .select(consent_evidence::signature)
        .first(&mut db.conn())
        .unwrap()
}

/// A GET on a thread of its own (the CLI test's blocking part runs outside the runtime).
fn blocking_get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

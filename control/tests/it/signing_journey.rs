//! (SIGNING) The whole journey through real HTTP, as a person would do it, on SQLite and
//! PostgreSQL: the real `likeness-control serve` (set up with its own CLI, its job workers
//! delivering the outbox) and a real SMTP server (aiosmtpd). Staff, with an API token, make a
//! person with an e-mail, a photo with a hand-drawn face confirmed as that person and consent as
//! its legal basis (not allowed yet), a template and a signing request. The test reads the mail
//! from the SMTP server, follows the link, ticks the scopes (face matching too), reads the code's
//! mail and types the code: the file is approved. The receipt (JSON) verifies through the API
//! and the CLI; a changed byte does not. The receipt's mail leads to the withdrawal: one code from
//! the next mail, and the file is no longer allowed, the person's templates are queued for
//! removal. Replaying the signing link gives 410.

use likeness_control_media::testing::data_dir;
use serde_json::json;

use crate::common::journey::{Database, Http, PATIENCE, Server, cli, code_in};
use crate::common::mail::MailServer;

const KARI: &str = "kari@example.org";

async fn journey(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new(postgres, dir.path());
    let smtp = MailServer::start();
    let server = Server::start(&db, dir.path(), &smtp, &[]).await;
    let (base, anon, staff) = (server.base.clone(), Http::new(&server.base), &server.staff);

    // A person with an e-mail; a photo with a hand-drawn face confirmed as her, consent as its
    // legal basis: not allowed yet.
    let p = staff
        .post_json(
            "/api/v1/persons",
            json!({"name": "Kari Nordmann", "email": KARI}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text());
    let person = p.json()["id"].as_str().unwrap().to_string();
    let photo = std::fs::read(data_dir().join("photos/img1.jpg")).unwrap();
    let up = staff
        .send(
            staff
                .http
                .post(format!("{base}/api/v1/assets?filename=kari.jpg"))
                .header("content-type", "application/octet-stream")
                .body(photo),
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text());
    let asset = up.json()["asset"]["id"].as_str().unwrap().to_string();
    let face = staff
        .post_json(
            &format!("/api/v1/assets/{asset}/faces"),
            json!({"box": [10.0, 10.0, 60.0, 80.0]}),
        )
        .await;
    assert_eq!(face.status, 201, "{}", face.text());
    let face = face.json()["id"].as_str().unwrap().to_string();
    let c = staff
        .post_json(
            &format!("/api/v1/faces/{face}/confirm"),
            json!({"person_id": person}),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.text());
    let lb = staff
        .put_json(
            &format!("/api/v1/assets/{asset}/legal-basis"),
            json!({"legal_basis": "consent"}),
        )
        .await;
    assert_eq!(lb.status, 200, "{}", lb.text());
    let before = staff.web_status(&asset).await;
    assert_ne!(before, "approved");

    // The template and the request.
    let t = staff
        .post_json(
            "/api/v1/consent-templates",
            json!({
                "name": "Spring fair",
                "title": "Photos of the spring fair",
                "body_markdown": "We would like to publish **photos** of you from the spring fair.",
                "language": "en",
                "scopes": [
                    {"channel": "web", "mandatory": true, "label": "Our website"},
                    {"channel": "print"}
                ],
                "face_matching_text": "We may recognise your face in our image bank.",
                "validity_days": 365,
                "legal_character": "gdpr_consent",
                "after_signing_text": "Thank you for helping us."
            }),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text());
    let template = t.json()["id"].as_str().unwrap().to_string();
    let r = staff
        .post_json(
            "/api/v1/signing-requests",
            json!({"person_ids": [person], "template_id": template, "asset_ids": [asset]}),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
    let rv = r.json();
    assert_eq!(rv["created"].as_array().unwrap().len(), 1, "{rv}");

    // The person: the mail, the link, the page.
    let mail = smtp.wait_for(KARI, PATIENCE).await;
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/sign/"))
        .unwrap_or_else(|| panic!("no signing link in {:?}", mail.text));
    assert!(link.starts_with(&format!("{base}/sign/")), "{link}");
    let page = anon.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.header("content-security-policy")
            .contains("default-src 'none'")
    );
    assert!(page.text().contains("Photos of the spring fair"));
    let cookie = page.cookie("lk_pcsrf").expect("the CSRF cookie");
    let csrf = page.csrf();
    // The file's thumbnail.
    let path = link.strip_prefix(&base).unwrap().to_string();
    let thumb = anon.get(&format!("{path}/files/{asset}")).await;
    assert_eq!(thumb.status, 200, "{}", thumb.text());
    assert_eq!(thumb.header("content-type"), "image/jpeg");
    assert_eq!(&thumb.body[..2], &[0xff, 0xd8]);

    // Choices -> the code page -> the code from the next mail -> signed.
    let code_page = anon
        .post_form(
            &link,
            &cookie,
            &format!("csrf={csrf}&scope=web&face_matching=yes"),
        )
        .await;
    assert_eq!(code_page.status, 200, "{}", code_page.text());
    assert!(code_page.text().contains("We sent a 6-digit code to"));
    let code_mail = smtp.wait_for_nth(KARI, 2, PATIENCE).await;
    let code = code_in(&code_mail.text);
    let done = anon
        .post_form(
            &format!("{path}/code"),
            &cookie,
            &format!("csrf={csrf}&code={code}"),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("Thank you for helping us."));
    let receipt = done.href("/receipt/");

    // At once, the file is approved for the web.
    assert_eq!(staff.web_status(&asset).await, "approved");

    // The receipt verifies (API and CLI); one changed byte does not.
    let json_answer = anon.get(&format!("{receipt}/receipt.json")).await;
    assert_eq!(json_answer.status, 200, "{}", json_answer.text());
    let receipt_json = json_answer.text();
    let v = anon
        .send(
            anon.http
                .post(format!("{base}/api/v1/evidence/verify"))
                .header("content-type", "application/json")
                .body(receipt_json.clone()),
        )
        .await;
    assert_eq!(v.status, 200, "{}", v.text());
    assert_eq!(v.json()["valid"], true);
    let tampered = receipt_json.replacen("\"web\"", "\"wex\"", 1);
    assert_ne!(tampered, receipt_json);
    let v = anon
        .send(
            anon.http
                .post(format!("{base}/api/v1/evidence/verify"))
                .header("content-type", "application/json")
                .body(tampered.clone()),
        )
        .await;
    assert_eq!(v.status, 400, "{}", v.text());
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, &receipt_json).unwrap();
    let keys = format!("{base}/api/v1/evidence/keys");
    let (exit, out) = cli(
        &[],
        &["verify-receipt", file.to_str().unwrap(), "--keys", &keys],
        "",
    );
    assert_eq!(exit, 0, "{out}");
    assert!(out.starts_with("valid"), "{out}");
    std::fs::write(&file, &tampered).unwrap();
    let (exit, out) = cli(
        &[],
        &["verify-receipt", file.to_str().unwrap(), "--keys", &keys],
        "",
    );
    assert_eq!(exit, 1, "{out}");
    assert!(out.contains("NOT VALID"), "{out}");

    // The receipt's mail -> the receipt page -> withdraw -> the code from the next mail -> done.
    let receipt_mail = smtp.wait_for_nth(KARI, 3, PATIENCE).await;
    let receipt_link = receipt_mail
        .links()
        .into_iter()
        .find(|l| l.contains("/receipt/"))
        .unwrap_or_else(|| panic!("no receipt link in {:?}", receipt_mail.text));
    assert!(
        receipt_link.ends_with(&receipt),
        "{receipt_link} vs {receipt}"
    );
    let rp = anon.get(&receipt_link).await;
    assert_eq!(rp.status, 200, "{}", rp.text());
    assert!(rp.text().contains("Withdraw my consent"));
    let cookie = rp.cookie("lk_pcsrf").unwrap_or(cookie);
    let csrf = rp.csrf();
    let wp = anon
        .post_form(
            &format!("{receipt}/withdraw"),
            &cookie,
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(wp.status, 200, "{}", wp.text());
    assert!(wp.text().contains("We sent a 6-digit code to"));
    let wmail = smtp.wait_for_nth(KARI, 4, PATIENCE).await;
    let wcode = code_in(&wmail.text);
    let wd = anon
        .post_form(
            &format!("{receipt}/withdraw/confirm"),
            &cookie,
            &format!("csrf={csrf}&code={wcode}"),
        )
        .await;
    assert_eq!(wd.status, 200, "{}", wd.text());
    assert!(
        wd.text().contains("Your consent is withdrawn"),
        "{}",
        wd.text()
    );

    // The file is no longer allowed; the person's templates are queued for removal.
    assert_ne!(staff.web_status(&asset).await, "approved");
    let jobs = staff.get("/api/v1/jobs?limit=500").await;
    assert_eq!(jobs.status, 200, "{}", jobs.text());
    let jobs = jobs.json();
    assert!(
        jobs.as_array().unwrap().iter().any(|j| {
            j["kind"].as_str().is_some_and(|k| k.starts_with("remove"))
                && j["payload_json"]
                    .as_str()
                    .is_some_and(|p| p.contains(&person))
        }),
        "no template removal queued: {jobs}"
    );
    // The receipt page says withdrawn; withdrawing needed no more steps than signing (a page,
    // a button, a code).
    let rp = anon.get(&receipt_link).await;
    assert_eq!(rp.status, 200);
    assert!(rp.text().contains("Withdrawn on"), "{}", rp.text());

    // The signing link again: used, 410.
    let replay = anon.get(&link).await;
    assert_eq!(replay.status, 410, "{}", replay.text());
    assert!(replay.text().contains("You have already signed"));
    let replay = anon
        .post_form(
            &format!("{path}/code"),
            &cookie,
            &format!("csrf={csrf}&code={code}"),
        )
        .await;
    assert_eq!(replay.status, 410, "{}", replay.text());
}

mod signing_journey_over_http {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::journey(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::journey(true).await;
    }
}

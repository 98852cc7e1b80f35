//! The vault's readers (issue 15, crypto-shredding): persons' personal fields, signing requests'
//! destinations and messages about a person are stored sealed under the person's key, so a
//! full dump of the database (SQLite `.dump` and the raw database and WAL files; `pg_dump`)
//! holds no name, e-mail or phone; lookups by e-mail and phone work through the keyed index;
//! rows written before the vault are sealed at start-up; once the person's key is destroyed
//! nothing of theirs opens — on SQLite and PostgreSQL.

use std::time::Duration;

use crate::common::mail::MailServer;
use crate::common::*;
use actix_web::web;
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::schema::persons;
use likeness_control::service::consent_templates::{self, LegalCharacter, Scope, TemplateInput};
use likeness_control::service::pagination::PageQuery;
use likeness_control::service::persons::{self as reg, NewPerson, PersonFilter, PersonPatch};
use likeness_control::service::signing::{self, NewSigningRequests, Purpose};
use likeness_control::service::{ControlError, Ctx, jobs, outbox, vault};

const MASTER_KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";
const BASE: &str = "https://likeness.test";

fn state(db: &TestDb, smtp: &MailServer) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(MASTER_KEY.into());
    cfg.matcher.url = String::new();
    cfg.mail.smtp_url = smtp.smtp_url();
    cfg.mail.from = "Likeness Test <no-reply@likeness.test>".into();
    cfg.mail.timeout_ms = 3_000;
    cfg.signing.key_file = db.dir().join("evidence.key");
    cfg.signing.public_base_url = BASE.into();
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

/// Every byte of the database as a backup would hold it: SQLite's `.dump` and its raw database
/// and WAL files; PostgreSQL's `pg_dump`.
fn dump(db: &TestDb) -> Vec<u8> {
    let mut out = Vec::new();
    match db.kind {
        Kind::Sqlite => {
            let o = std::process::Command::new("sqlite3")
                .arg(&db.url)
                .arg(".dump")
                .output()
                .expect("sqlite3");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            out.extend(o.stdout);
            for suffix in ["", "-wal"] {
                if let Ok(b) = std::fs::read(format!("{}{suffix}", db.url)) {
                    out.extend(b);
                }
            }
        }
        Kind::Postgres => {
            let bin = std::fs::read_dir("/usr/lib/postgresql")
                .expect("/usr/lib/postgresql")
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin/pg_dump"))
                .find(|p| p.exists())
                .expect("pg_dump");
            let o = std::process::Command::new(bin)
                .arg("--dbname")
                .arg(&db.url)
                .output()
                .expect("pg_dump");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            out.extend(o.stdout);
        }
    }
    out
}

/// Whether `needle` occurs in `hay` (ASCII case-insensitive).
fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.to_ascii_lowercase().into_bytes();
    hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(&n))
}

fn assert_clean(db: &TestDb, secrets: &[&str]) {
    let d = dump(db);
    assert!(d.len() > 1000, "the dump is not empty");
    for s in secrets {
        assert!(!contains(&d, s), "{s:?} found in the database dump");
    }
}

async fn template(ctx: &Ctx) -> String {
    consent_templates::create_template(
        ctx,
        TemplateInput {
            name: "Event photos".into(),
            title: "Photos of the spring fair".into(),
            body_markdown: "We would like to publish **photos** of you.".into(),
            language: "en".into(),
            scopes: vec![Scope {
                channel: "web".into(),
                mandatory: true,
                label: Some("Our website".into()),
            }],
            face_matching_text: None,
            validity_days: Some(365),
            legal_character: LegalCharacter::GdprConsent,
            after_signing_text: "Thank you for signing!".into(),
        },
    )
    .await
    .unwrap()
    .id
}

fn by(email: Option<&str>, phone: Option<&str>) -> PersonFilter {
    PersonFilter {
        email: email.map(str::to_string),
        phone: phone.map(str::to_string),
        ..PersonFilter::default()
    }
}

async fn found(ctx: &Ctx, f: PersonFilter) -> Vec<String> {
    reg::list_persons(ctx, Ok(f), Ok(PageQuery::default()))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect()
}

db_test!(
    no_name_email_or_phone_in_a_dump_and_lookups_by_index,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let smtp = MailServer::start();
        let st = state(&db, &smtp);
        let ctx = Ctx::system(st.clone().into_inner(), &f.tenant_id, "test");
        let p = reg::create_person(
            &ctx,
            Ok(NewPerson {
                name: "Quirinus Zebulonsson".into(),
                email: Some("quirinus.zeb@example.org".into()),
                phone: Some("+4791234567".into()),
                date_of_birth: "1987-03-14".parse().ok(),
                guardian_name: Some("Gudrun Xylofonsdottir".into()),
                guardian_contact: Some("gudrun.xylo@example.org".into()),
                custom_fields: Some(serde_json::json!({"note": "Vindaloopreference"})),
                ..NewPerson::default()
            }),
        )
        .await
        .unwrap();
        assert_eq!(p.name.as_deref(), Some("Quirinus Zebulonsson"));
        let other = reg::create_person(
            &ctx,
            Ok(NewPerson {
                name: "Other Person".into(),
                email: Some("other@example.org".into()),
                ..NewPerson::default()
            }),
        )
        .await
        .unwrap();
        // Changed: the new values are sealed too.
        let q = reg::update_person(
            &ctx,
            p.id.clone(),
            Ok(PersonPatch {
                name: Some("Quirinus Zebulonsson-Wexford".into()),
                phone: Some(Some("+4798765432".into())),
                ..PersonPatch::default()
            }),
        )
        .await
        .unwrap();
        assert_eq!(q.email.as_deref(), Some("quirinus.zeb@example.org"));
        assert_eq!(q.phone.as_deref(), Some("+4798765432"));
        // The plain columns are blank.
        let (name, email, phone, sealed): (String, Option<String>, Option<String>, Option<String>) =
            persons::table
                .filter(persons::id.eq(&p.id))
                .select((
                    persons::name,
                    persons::email,
                    persons::phone,
                    persons::sealed,
                ))
                .first(&mut db.conn())
                .unwrap();
        assert_eq!((name.as_str(), email, phone), ("", None, None));
        assert!(sealed.unwrap().starts_with("pv1:"));
        // Read back through the API.
        let got = reg::get_person(&ctx, p.id.clone()).await.unwrap();
        assert_eq!(got.name.as_deref(), Some("Quirinus Zebulonsson-Wexford"));
        assert_eq!(got.guardian_name.as_deref(), Some("Gudrun Xylofonsdottir"));
        assert_eq!(got.custom_fields["note"], "Vindaloopreference");
        // Exact lookups through the keyed index (case and spacing normalised).
        assert_eq!(
            found(&ctx, by(Some(" Quirinus.Zeb@EXAMPLE.org"), None)).await,
            vec![p.id.clone()]
        );
        assert_eq!(
            found(&ctx, by(None, Some("+47 98 76 54 32"))).await,
            vec![p.id.clone()]
        );
        assert!(found(&ctx, by(None, Some("+4791234567"))).await.is_empty());
        assert!(
            found(&ctx, by(Some("nobody@example.org"), None))
                .await
                .is_empty()
        );
        assert_eq!(
            found(&ctx, by(Some("other@example.org"), None)).await,
            vec![other.id.clone()]
        );
        // The search and the order by name still work (in memory).
        let all = reg::list_persons(
            &ctx,
            Ok(PersonFilter {
                q: Some("zebulon".into()),
                ..PersonFilter::default()
            }),
            Ok(PageQuery::default()),
        )
        .await
        .unwrap();
        assert_eq!(all.total, 1);
        let sorted = reg::list_persons(&ctx, Ok(PersonFilter::default()), Ok(PageQuery::default()))
            .await
            .unwrap();
        let names: Vec<_> = sorted
            .items
            .iter()
            .map(|p| p.display_name.clone())
            .collect();
        assert_eq!(names, vec!["Other Person", "Quirinus Zebulonsson-Wexford"]);

        // A signing request: its destination and its message are sealed; delivery opens them.
        let tpl = template(&ctx).await;
        let out = signing::create_requests(
            &ctx,
            NewSigningRequests {
                person_ids: vec![p.id.clone()],
                template_id: tpl,
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
        let before_delivery = dump(&db);
        for s in ["quirinus.zeb@example.org", "Zebulonsson", "98765432"] {
            assert!(!contains(&before_delivery, s), "{s:?} in a pending message");
        }
        jobs::run_until_idle(&st, "vault-test").await.unwrap();
        let mail = smtp
            .wait_for_nth("quirinus.zeb@example.org", 1, Duration::from_secs(10))
            .await;
        assert!(mail.text.contains("/sign/"), "{}", mail.text);
        // Staff see the message (masked, opened).
        let msgs = outbox::list_messages_query(&ctx, Ok(Default::default()))
            .await
            .unwrap();
        assert!(
            msgs.iter().any(|m| m.destination.ends_with("@example.org")),
            "{msgs:?}"
        );

        assert_clean(
            &db,
            &[
                "Quirinus",
                "Zebulonsson",
                "Wexford",
                "quirinus.zeb@example.org",
                "4791234567",
                "4798765432",
                "Xylofonsdottir",
                "gudrun.xylo",
                "Vindaloopreference",
                "1987-03-14",
            ],
        );

        // Destroyed key: nothing of theirs opens any more.
        let v = st.vault().unwrap();
        let sealed: String = persons::table
            .filter(persons::id.eq(&p.id))
            .select(persons::sealed)
            .first::<Option<String>>(&mut db.conn())
            .unwrap()
            .unwrap();
        assert!(v.destroy_person_key(&f.tenant_id, &p.id).unwrap());
        match v.open_personal(&f.tenant_id, &p.id, &sealed) {
            Err(ControlError::Gone { code, .. }) => assert_eq!(code, "person_erased"),
            other => panic!("{other:?}"),
        }
        assert!(
            vault::personal_of(&mut db.conn(), &v, &f.tenant_id, &p.id)
                .unwrap()
                .is_none()
        );
        assert!(
            reg::personal_one(&mut db.conn(), &f.tenant_id, &p.id)
                .unwrap()
                .is_none()
        );
        // Their message shows a placeholder to staff.
        let msgs = outbox::list_messages_query(&ctx, Ok(Default::default()))
            .await
            .unwrap();
        assert!(
            msgs.iter()
                .any(|m| m.destination == outbox::ERASED_PLACEHOLDER),
            "{msgs:?}"
        );
        // The other person is untouched.
        let o = reg::get_person(&ctx, other.id.clone()).await.unwrap();
        assert_eq!(o.name.as_deref(), Some("Other Person"));
    }
);

db_test!(
    plaintext_rows_written_before_the_vault_are_sealed_at_start,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let smtp = MailServer::start();
        let st = state(&db, &smtp);
        let ctx = Ctx::system(st.clone().into_inner(), &f.tenant_id, "test");
        let id = db::new_id();
        let now = db::now();
        diesel::insert_into(persons::table)
            .values((
                persons::id.eq(&id),
                persons::tenant_id.eq(&f.tenant_id),
                persons::name.eq("Legacy Plaintextsson"),
                persons::pseudonym.eq("P-LEGACY01"),
                persons::email.eq(Some("legacy.plain@example.org")),
                persons::phone.eq(Some("+4711223344")),
                persons::date_of_birth.eq("1970-01-02".parse::<chrono::NaiveDate>().ok()),
                persons::never_publish.eq(false),
                persons::custom_fields_json.eq(r#"{"k":"Legacycustomvalue"}"#),
                persons::created_at.eq(now),
                persons::updated_at.eq(now),
            ))
            .execute(&mut db.conn())
            .unwrap();
        // Read as stored before it is sealed.
        let before = reg::get_person(&ctx, id.clone()).await.unwrap();
        assert_eq!(before.name.as_deref(), Some("Legacy Plaintextsson"));
        let r = reg::seal_plaintext_at_start(&st).await.unwrap();
        assert_eq!(r.persons, 1, "{r:?}");
        assert_eq!(r.vacuumed, db.kind == Kind::Sqlite);
        // Idempotent.
        let again = reg::seal_plaintext_at_start(&st).await.unwrap();
        assert_eq!(again, reg::SealReport::default());
        let after = reg::get_person(&ctx, id.clone()).await.unwrap();
        assert_eq!(after.name.as_deref(), Some("Legacy Plaintextsson"));
        assert_eq!(after.email.as_deref(), Some("legacy.plain@example.org"));
        assert_eq!(after.custom_fields["k"], "Legacycustomvalue");
        assert_eq!(
            found(&ctx, by(Some("legacy.plain@example.org"), None)).await,
            vec![id.clone()]
        );
        assert_eq!(
            found(&ctx, by(None, Some("+4711223344"))).await,
            vec![id.clone()]
        );
        // PostgreSQL keeps dead tuples until vacuumed; a dump shows live rows only.
        assert_clean(
            &db,
            &[
                "Plaintextsson",
                "legacy.plain@example.org",
                "4711223344",
                "Legacycustomvalue",
            ],
        );
    }
);

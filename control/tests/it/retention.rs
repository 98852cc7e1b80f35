//! Retention on SQLite and PostgreSQL with a manual clock: an ended agreement's documents are
//! deleted (blobs shredded, rows gone, `documents_deleted_at` set, audited) once the tenant's
//! `document_retention_days` have passed, not before, and not for an agreement still in force
//! or a tenant with a longer period; a tick is idempotent and finishes what a crash between the
//! blob and the rows left; evidence records of agreements ended more than
//! `evidence_retention_years` ago lose their content (receipts no longer resolve) while the
//! tenant's evidence chain still verifies.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use likeness_control::audit::Who;
use likeness_control::config::Config;
use likeness_control::schema::{
    agreement_documents, agreements as agr, audit_log, consent_evidence, persons,
};
use likeness_control::service::agreements::{self, NewAgreement, Withdrawal};
use likeness_control::service::evidence::{self, EvidenceKind};
use likeness_control::service::{Clock, retention, rights_settings};
use likeness_control::{Deps, db};
use likeness_control_domain::ConsentSource;
use likeness_control_domain::rights::RightsSettings;

use crate::common::{TestDb, fixture};

fn at(y: i32, m: u32, d: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
}

fn deps(db: &TestDb, clock: &Clock) -> Arc<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.signing.key_file = db.dir().join("evidence-signing.key");
    let deps = Arc::new(Deps::with_clock(db.pool.clone(), cfg, clock.clone()));
    // Opened as a request's Ctx opens it: the service seals persons' free text under their key.
    deps.vault().unwrap();
    deps
}

fn person(db: &TestDb, tenant: &str) -> String {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(""),
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

/// An agreement from 2020-01-01 with `docs` documents stored in the blob store and one sealed
/// signature record (with a receipt token). Returns (agreement, blob keys, receipt token).
fn agreement(
    db: &TestDb,
    deps: &Deps,
    tenant: &str,
    person: &str,
    until: Option<NaiveDate>,
    docs: usize,
) -> (String, Vec<String>, String) {
    let media = deps.media().unwrap();
    let mut c = db.conn();
    let created = at(2020, 1, 1);
    db::write_tx(&mut c, |c| {
        let who = Who::system("test", Some(tenant));
        let a = agreements::create(
            c,
            &who,
            tenant,
            person,
            NewAgreement {
                channels: vec!["web".into()],
                valid_from: created.date(),
                valid_until: until,
                source: ConsentSource::PaperScan,
                covers_face_matching: false,
                signed_by_guardian: false,
                text_sha256: None,
                note: None,
            },
            created,
        )?;
        let mut keys = Vec::new();
        for i in 0..docs {
            let bytes = format!("%PDF-1.4 scan {i} of Alice Secret");
            let key = media.blobs.put_new(tenant, bytes.as_bytes()).unwrap();
            agreements::add_document_at(
                c,
                &who,
                tenant,
                &a.id,
                &format!("scan-{i}.pdf"),
                "application/pdf",
                bytes.len() as u64,
                &format!("{i:0>64}"),
                &key,
                created,
            )?;
            keys.push(key);
        }
        let sealed = evidence::seal(
            c,
            deps,
            tenant,
            EvidenceKind::Signature,
            &a.id,
            None,
            serde_json::json!({ "signer_name": "Alice Secret" }),
            true,
            created,
        )?;
        Ok((a.id, keys, sealed.receipt_token.unwrap()))
    })
    .unwrap()
}

fn withdraw(db: &TestDb, tenant: &str, id: &str, when: NaiveDateTime) {
    let mut c = db.conn();
    db::write_tx(&mut c, |c| {
        agreements::withdraw_at(
            c,
            &Who::system("test", Some(tenant)),
            tenant,
            id,
            Withdrawal {
                at: Some(when),
                reason: "changed my mind".into(),
            },
            when,
        )
    })
    .unwrap();
}

fn doc_rows(db: &TestDb, agreement: &str) -> i64 {
    agreement_documents::table
        .filter(agreement_documents::agreement_id.eq(agreement))
        .count()
        .get_result(&mut db.conn())
        .unwrap()
}

fn deleted_at(db: &TestDb, agreement: &str) -> Option<NaiveDateTime> {
    agr::table
        .filter(agr::id.eq(agreement))
        .select(agr::documents_deleted_at)
        .first(&mut db.conn())
        .unwrap()
}

fn audits(db: &TestDb, action: &str) -> i64 {
    audit_log::table
        .filter(audit_log::action.eq(action))
        .count()
        .get_result(&mut db.conn())
        .unwrap()
}

db_test!(documents_then_evidence, |db: TestDb| async move {
    let f = fixture(&db, "ret");
    let other = fixture(&db, "ret-long");
    let clock = Clock::manual(at(2020, 1, 1));
    let deps = deps(&db, &clock);
    let t = f.tenant_id.as_str();
    let p = person(&db, t);
    // Ends with its last valid day 2020-06-30; withdrawn 2020-03-01; never ends; ends later.
    let (expired, expired_keys, expired_receipt) =
        agreement(&db, &deps, t, &p, NaiveDate::from_ymd_opt(2020, 6, 30), 2);
    let (withdrawn, withdrawn_keys, _) = agreement(&db, &deps, t, &p, None, 1);
    withdraw(&db, t, &withdrawn, at(2020, 3, 1));
    let (open, open_keys, open_receipt) = agreement(&db, &deps, t, &p, None, 1);
    let (crashed, crashed_keys, _) = agreement(&db, &deps, t, &p, None, 1);
    withdraw(&db, t, &crashed, at(2020, 3, 1));
    // Another tenant keeps documents ten years.
    let po = person(&db, &other.tenant_id);
    let (long, long_keys, _) = agreement(
        &db,
        &deps,
        &other.tenant_id,
        &po,
        NaiveDate::from_ymd_opt(2020, 6, 30),
        1,
    );
    {
        let mut c = db.conn();
        let long_policy = RightsSettings {
            document_retention_days: 3650,
            ..RightsSettings::default()
        };
        db::write_tx(&mut c, |c| {
            rights_settings::put(
                c,
                &Who::system("test", Some(&other.tenant_id)),
                &other.tenant_id,
                long_policy,
            )
        })
        .unwrap();
    }
    let media = deps.media().unwrap();
    let exists = |tenant: &str, k: &str| media.blobs.exists(tenant, k).unwrap();

    // Within the period (365 days from the withdrawal on 2020-03-01): nothing happens.
    clock.set(at(2021, 2, 28));
    let r = retention::tick(&deps).await.unwrap();
    assert_eq!((r.agreements, r.documents, r.evidence), (0, 0, 0), "{r:?}");
    assert_eq!(doc_rows(&db, &withdrawn), 1);
    assert!(exists(t, &withdrawn_keys[0]));

    // A crash after the blob was shredded and before the rows went: simulated by shredding
    // the blob of `crashed` by hand; the tick finishes it.
    media.blobs.shred(t, &crashed_keys[0]).unwrap();

    // 2021-07-02: the expired one (ended 2020-07-01) and the withdrawn ones are past 365 days.
    clock.set(at(2021, 7, 2));
    let r = retention::tick(&deps).await.unwrap();
    assert_eq!((r.agreements, r.documents, r.evidence), (3, 4, 0), "{r:?}");
    for (a, keys) in [
        (&expired, &expired_keys),
        (&withdrawn, &withdrawn_keys),
        (&crashed, &crashed_keys),
    ] {
        assert_eq!(doc_rows(&db, a), 0, "{a}");
        assert!(deleted_at(&db, a).is_some(), "{a}");
        for k in keys {
            assert!(!exists(t, k), "blob {k} of {a} still there");
        }
    }
    // Still in force: kept. The other tenant's longer period: kept.
    assert_eq!(doc_rows(&db, &open), 1);
    assert!(exists(t, &open_keys[0]));
    assert!(deleted_at(&db, &open).is_none());
    assert_eq!(doc_rows(&db, &long), 1);
    assert!(exists(&other.tenant_id, &long_keys[0]));
    assert_eq!(audits(&db, "agreement.documents_deleted"), 3);

    // Idempotent: a second tick (or a second process) does nothing more.
    let r = retention::tick(&deps).await.unwrap();
    assert_eq!((r.agreements, r.documents, r.evidence), (0, 0, 0), "{r:?}");
    assert_eq!(audits(&db, "agreement.documents_deleted"), 3);
    // The evidence of every agreement is still whole (ten years by default).
    assert!(evidence::find_by_receipt_token(&mut db.conn(), &expired_receipt).is_ok());

    // Evidence: one year for this tenant. On 2022-07-05 the agreements ended before 2021-07-05
    // lose their evidence records' content; the open one keeps it.
    {
        let mut c = db.conn();
        let short = RightsSettings {
            evidence_retention_years: 1,
            ..RightsSettings::default()
        };
        db::write_tx(&mut c, |c| {
            rights_settings::put(c, &Who::system("test", Some(t)), t, short)
        })
        .unwrap();
    }
    clock.set(at(2022, 7, 5));
    let r = retention::tick(&deps).await.unwrap();
    // One signature record each for expired, withdrawn and crashed.
    assert_eq!(r.evidence, 3, "{r:?}");
    let rows: Vec<(String, String, Option<NaiveDate>, Option<String>)> = consent_evidence::table
        .filter(consent_evidence::tenant_id.eq(t))
        .select((
            consent_evidence::agreement_id,
            consent_evidence::record_json,
            consent_evidence::expires_on,
            consent_evidence::receipt_token_sha256,
        ))
        .load(&mut db.conn())
        .unwrap();
    for (a, json, expires_on, token) in &rows {
        if *a == open {
            assert!(json.contains("Alice Secret"));
            assert!(expires_on.is_none());
            assert!(token.is_some());
        } else {
            assert!(!json.contains("Alice Secret"), "{json}");
            assert!(json.contains(retention::TOMBSTONE_KEY), "{json}");
            assert!(expires_on.is_some());
            assert!(token.is_none());
        }
    }
    assert_eq!(audits(&db, "evidence.deleted"), 3);
    let mut c = db.conn();
    assert!(evidence::find_by_receipt_token(&mut c, &expired_receipt).is_err());
    assert!(evidence::find_by_receipt_token(&mut c, &open_receipt).is_ok());
    // The chain still verifies, with the tombstones in place.
    let chain = evidence::verify_chain(&mut c, t).unwrap();
    assert!(chain.ok(), "{chain:?}");
    assert_eq!(chain.checked, 4);
    drop(c);
    // Idempotent.
    let r = retention::tick(&deps).await.unwrap();
    assert_eq!(r.evidence, 0, "{r:?}");
    assert_eq!(audits(&db, "evidence.deleted"), 3);
});

//! The allowed set (issue 14) on SQLite and PostgreSQL: every change that moves a file's
//! compliance records it in the same transaction (`asset_exposure`), with the `asset.hidden` /
//! `asset.allowed` / `asset.expiring` events and a row in the change log that every process's
//! in-memory copy follows; time alone (a consent ending or starting) is handled by the
//! scheduler's tick, and the in-memory check honours the last day even before it runs.

use std::sync::Arc;

use chrono::{Days, NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use likeness_control::audit::Who;
use likeness_control::config::Config;
use likeness_control::schema::{assets, faces, persons};
use likeness_control::service::agreements::{self, NewAgreement, Withdrawal};
use likeness_control::service::allowed::Decision;
use likeness_control::service::compliance::{self, LegalBasisIn};
use likeness_control::service::{Clock, events, exposure, faces as face_svc};
use likeness_control::{Deps, db};
use likeness_control_domain::{ConsentSource, LegalBasis};
use serde_json::Value;

use crate::common::{TestDb, fixture};

fn deps_at(db: &TestDb, at: NaiveDateTime) -> Arc<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    let deps = Arc::new(Deps::with_clock(db.pool.clone(), cfg, Clock::manual(at)));
    // Opened as a request's Ctx opens it: the service seals persons' free text under their key.
    deps.vault().unwrap();
    deps
}

fn start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2027, 3, 1)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap()
}

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

/// A file showing `person` (one confirmed face), legal basis consent, computed at `now`.
fn file_of(db: &TestDb, tenant: &str, person: &str, now: NaiveDateTime) -> String {
    let id = db::new_id();
    diesel::insert_into(assets::table)
        .values((
            assets::id.eq(&id),
            assets::tenant_id.eq(tenant),
            assets::kind.eq("image"),
            assets::filename.eq("team.jpg"),
            assets::mime.eq("image/jpeg"),
            assets::size_bytes.eq(1i64),
            assets::sha256.eq(format!("{id:0>64}")),
            assets::blob_key.eq(format!("k-{id}")),
            assets::metadata_json.eq("{}"),
            assets::current_version.eq(1),
            assets::created_at.eq(now),
            assets::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    let face = face_svc::FaceRow {
        id: db::new_id(),
        tenant_id: tenant.into(),
        asset_id: id.clone(),
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
    let mut c = db.conn();
    db::write_tx(&mut c, |c| {
        compliance::set_legal_basis(
            c,
            &Who::system("test", Some(tenant)),
            tenant,
            &id,
            LegalBasisIn {
                legal_basis: Some(LegalBasis::Consent),
                note: None,
            },
            now,
        )
    })
    .unwrap();
    id
}

fn consent(
    db: &TestDb,
    tenant: &str,
    person: &str,
    channels: &[&str],
    from: NaiveDate,
    until: Option<NaiveDate>,
    now: NaiveDateTime,
) -> String {
    let mut c = db.conn();
    db::write_tx(&mut c, |c| {
        agreements::create(
            c,
            &Who::system("test", Some(tenant)),
            tenant,
            person,
            NewAgreement {
                channels: channels.iter().map(|s| s.to_string()).collect(),
                valid_from: from,
                valid_until: until,
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
    .id
}

/// The tenant's events of `kind` about `asset`, as (payload) oldest first.
fn events_of(db: &TestDb, tenant: &str, kind: &str, subject: &str) -> Vec<Value> {
    events::list(&mut db.conn(), tenant, Some(kind))
        .unwrap()
        .into_iter()
        .filter(|e| e.subject_id == subject)
        .map(|e| serde_json::from_str(&e.payload_json).unwrap())
        .collect()
}

fn channels_of(payload: &Value) -> Vec<String> {
    let mut v: Vec<String> = payload["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn allowed_channels(db: &TestDb, tenant: &str, asset: &str) -> Vec<String> {
    exposure::rows_of(&mut db.conn(), tenant, asset)
        .unwrap()
        .into_iter()
        .filter(|r| r.allowed)
        .map(|r| r.channel)
        .collect()
}

db_test!(
    a_withdrawal_hides_the_file_in_its_transaction_and_in_every_process,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let now = start();
        let today = now.date();
        let p = person(&db, &t, "Jane Roe");
        let a = file_of(&db, &t, &p, now);
        assert!(
            allowed_channels(&db, &t, &a).is_empty(),
            "no consent yet: allowed nowhere"
        );
        // Two processes' copies of the allowed set, loaded now.
        let (one, two) = (deps_at(&db, now), deps_at(&db, now));
        one.allowed.load(&one.pool).await.unwrap();
        two.allowed.load(&two.pool).await.unwrap();
        assert_eq!(
            one.allowed.check(&t, &a, "web", today),
            Decision::NotAllowed
        );

        let agreement = consent(
            &db,
            &t,
            &p,
            &["web", "print"],
            today,
            Some(today + Days::new(365)),
            now,
        );
        assert_eq!(allowed_channels(&db, &t, &a), vec!["print", "web"]);
        let allowed = events_of(&db, &t, exposure::ASSET_ALLOWED, &a);
        assert_eq!(allowed.len(), 1, "{allowed:?}");
        assert_eq!(channels_of(&allowed[0]), vec!["print", "web"]);
        for d in [&one, &two] {
            d.allowed.poll(&d.pool, now).await.unwrap();
            assert_eq!(
                d.allowed.check(&t, &a, "web", today),
                Decision::Allowed { version: 1 }
            );
            assert_eq!(
                d.allowed.check(&t, &a, "social", today),
                Decision::NotAllowed
            );
        }

        // Staff record the person's withdrawal.
        let later = now + TimeDelta::hours(2);
        let mut c = db.conn();
        db::write_tx(&mut c, |c| {
            agreements::withdraw_at(
                c,
                &Who::system("test", Some(&t)),
                &t,
                &agreement,
                Withdrawal {
                    at: None,
                    reason: "by phone".into(),
                },
                later,
            )
        })
        .unwrap();
        assert!(allowed_channels(&db, &t, &a).is_empty());
        let hidden = events_of(&db, &t, exposure::ASSET_HIDDEN, &a);
        assert_eq!(hidden.len(), 1, "{hidden:?}");
        assert_eq!(channels_of(&hidden[0]), vec!["print", "web"]);
        assert_eq!(hidden[0]["surrogate_key"], format!("asset-{a}"));
        let reasons = hidden[0]["channels"][0]["reasons"].as_array().unwrap();
        assert!(
            reasons.iter().any(|r| r["code"] == "withdrawn"),
            "{reasons:?}"
        );
        assert!(
            !hidden[0].to_string().contains("Jane"),
            "events carry ids, not names"
        );
        // Both processes see it at their next poll of the change log.
        for d in [&one, &two] {
            d.allowed.poll(&d.pool, later).await.unwrap();
            assert_eq!(d.allowed.check(&t, &a, "web", today), Decision::NotAllowed);
        }
        // Another tenant's view of the same id: unknown.
        let g = fixture(&db, "other");
        assert_eq!(
            one.allowed.check(&g.tenant_id, &a, "web", today),
            Decision::Unknown
        );
    }
);

db_test!(
    time_alone_ends_and_starts_files_with_events_from_the_tick,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let now = start();
        let today = now.date();
        let deps = deps_at(&db, now);
        let p = person(&db, &t, "Ann Lee");
        let a = file_of(&db, &t, &p, now);
        // Ends in 10 days (inside the 30-day notice period): expiring at once.
        let until = today + Days::new(10);
        consent(&db, &t, &p, &["web"], today, Some(until), now);
        let expiring = events_of(&db, &t, exposure::ASSET_EXPIRING, &a);
        assert_eq!(expiring.len(), 1, "{expiring:?}");
        assert_eq!(expiring[0]["channels"][0]["until"], until.to_string());
        // A second person's file whose consent starts in five days.
        let q = person(&db, &t, "Bo Ek");
        let b = file_of(&db, &t, &q, now);
        let starts = today + Days::new(5);
        consent(&db, &t, &q, &["web"], starts, None, now);
        assert!(allowed_channels(&db, &t, &b).is_empty());

        deps.allowed.load(&deps.pool).await.unwrap();
        // A tick today changes nothing and records nothing new.
        let r = exposure::tick(&deps).await.unwrap();
        assert_eq!(r.events, 0, "{r:?}");

        // Five days on: the second file's consent starts.
        deps.clock.advance(TimeDelta::days(5));
        let r = exposure::tick(&deps).await.unwrap();
        assert!(r.assets >= 1, "{r:?}");
        assert_eq!(allowed_channels(&db, &t, &b), vec!["web"]);
        assert_eq!(events_of(&db, &t, exposure::ASSET_ALLOWED, &b).len(), 1);

        // The day after the last day: the memory copy says no before any tick...
        let after = until + Days::new(1);
        deps.clock.set(after.and_hms_opt(0, 0, 30).unwrap());
        assert_eq!(
            deps.allowed.check(&t, &a, "web", until),
            Decision::Allowed { version: 1 }
        );
        assert_eq!(
            deps.allowed.check(&t, &a, "web", after),
            Decision::NotAllowed
        );
        // ...and the tick records the hiding once.
        exposure::tick(&deps).await.unwrap();
        exposure::tick(&deps).await.unwrap();
        let hidden = events_of(&db, &t, exposure::ASSET_HIDDEN, &a);
        assert_eq!(hidden.len(), 1, "{hidden:?}");
        assert!(
            hidden[0]["channels"][0]["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["code"] == "expired"),
            "{hidden:?}"
        );
        assert!(allowed_channels(&db, &t, &a).is_empty());
    }
);

db_test!(
    erasing_a_person_hides_their_files_and_tells_the_cms,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let now = start();
        let p = person(&db, &t, "Ed Wu");
        let a = file_of(&db, &t, &p, now);
        consent(&db, &t, &p, &["web"], now.date(), None, now);
        assert_eq!(allowed_channels(&db, &t, &a), vec!["web"]);
        let mut c = db.conn();
        db::write_tx(&mut c, |c| {
            likeness_control::service::persons::delete(
                c,
                &Who::system("test", Some(&t)),
                &t,
                &p,
                now,
            )
        })
        .unwrap();
        let erased = events_of(&db, &t, events::PERSON_ERASED, &p);
        assert_eq!(erased.len(), 1);
        assert_eq!(erased[0]["person_id"], p.as_str());
        assert!(!erased[0].to_string().contains("Ed Wu"));
        assert!(allowed_channels(&db, &t, &a).is_empty());
        assert_eq!(events_of(&db, &t, exposure::ASSET_HIDDEN, &a).len(), 1);
    }
);

//! The consent lifecycle over time, on SQLite and PostgreSQL, with a manual clock instead of
//! sleeps and no matcher (the assertions are on the template rows, the queued jobs and the
//! stored suggestions): a face-matching consent that expires has the person's templates
//! removed by the scheduler's tick or by the job due at its end; a minor is never suggested nor
//! enrolled without a guardian-signed consent, the age that counts being the age on the day of
//! signing; the typed job registry runs a kind the services do not know, with retries and
//! due times on the clock; an agreement's state in the answers and the jobs the services queue
//! follow the services' clock, not the system's.

use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use likeness_control::audit::Who;
use likeness_control::config::Config;
use likeness_control::schema::{assets, audit_log, face_templates, faces, jobs, persons};
use likeness_control::service::agreements::{self, AgreementState, NewAgreement, Withdrawal};
use likeness_control::service::error::{ControlError, Result as SvcResult};
use likeness_control::service::job_kinds::{FaceMatchingConsentEnd, RemovePersonTemplates};
use likeness_control::service::jobs::{BackgroundJob, JobCtx, Outcome, Registry};
use likeness_control::service::{Clock, Ctx, faces as face_svc, jobs as job_svc, scheduler};
use likeness_control::{Deps, db};
use likeness_control_domain::ConsentSource;
use likeness_control_media::matcher::{Candidate, FaceQuality, SuggestedFace, Suggestion};
use serde::{Deserialize, Serialize};

use crate::common::{TestDb, fixture};

/// Dependencies over the test database with a manual clock standing at `at`.
fn deps_at(db: &TestDb, at: NaiveDateTime) -> Arc<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    Arc::new(Deps::with_clock(db.pool.clone(), cfg, Clock::manual(at)))
}

fn person(db: &TestDb, tenant: &str, name: &str, dob: Option<NaiveDate>) -> String {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{id}")),
            persons::date_of_birth.eq(dob),
            persons::never_publish.eq(false),
            persons::custom_fields_json.eq("{}"),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

fn consent(
    db: &TestDb,
    tenant: &str,
    person: &str,
    from: NaiveDate,
    until: Option<NaiveDate>,
    guardian: bool,
) -> String {
    let mut c = db.conn();
    db::write_tx(&mut c, |c| {
        agreements::create(
            c,
            &Who::system("test", Some(tenant)),
            tenant,
            person,
            NewAgreement {
                channels: vec!["web".into()],
                valid_from: from,
                valid_until: until,
                source: ConsentSource::Digital,
                covers_face_matching: true,
                signed_by_guardian: guardian,
                text_sha256: None,
                note: None,
            },
            db::now(),
        )
    })
    .unwrap()
    .id
}

fn asset(db: &TestDb, tenant: &str) -> String {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(assets::table)
        .values((
            assets::id.eq(&id),
            assets::tenant_id.eq(tenant),
            assets::kind.eq("image"),
            assets::filename.eq("x.jpg"),
            assets::mime.eq("image/jpeg"),
            assets::size_bytes.eq(1i64),
            assets::sha256.eq(format!("{id:0>64}")),
            assets::width.eq(Some(1000)),
            assets::height.eq(Some(1000)),
            assets::blob_key.eq(format!("k-{id}")),
            assets::metadata_json.eq("{}"),
            assets::current_version.eq(1),
            assets::created_at.eq(now),
            assets::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

fn face(db: &TestDb, tenant: &str, asset: &str, x: f64) -> String {
    let row = face_svc::FaceRow {
        id: db::new_id(),
        tenant_id: tenant.into(),
        asset_id: asset.into(),
        source: face_svc::DETECTED.into(),
        status: face_svc::UNKNOWN.into(),
        person_id: None,
        box_x1: x,
        box_y1: 10.0,
        box_x2: x + 100.0,
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
        created_at: db::now(),
    };
    diesel::insert_into(faces::table)
        .values(&row)
        .execute(&mut db.conn())
        .unwrap();
    row.id
}

/// A face of `person` whose template the matcher holds (as enrolment leaves it).
fn enrolled(db: &TestDb, tenant: &str, person: &str, template: i64) -> String {
    let a = asset(db, tenant);
    let f = face(db, tenant, &a, 10.0);
    diesel::update(faces::table.filter(faces::id.eq(&f)))
        .set((
            faces::status.eq(face_svc::CONFIRMED),
            faces::person_id.eq(person),
            faces::template_enrolled.eq(true),
        ))
        .execute(&mut db.conn())
        .unwrap();
    diesel::insert_into(face_templates::table)
        .values((
            face_templates::template_id.eq(template),
            face_templates::tenant_id.eq(tenant),
            face_templates::face_id.eq(&f),
            face_templates::person_id.eq(person),
            face_templates::created_at.eq(db::now()),
        ))
        .execute(&mut db.conn())
        .unwrap();
    f
}

fn templates_of(db: &TestDb, person: &str) -> i64 {
    face_templates::table
        .filter(face_templates::person_id.eq(person))
        .count()
        .get_result(&mut db.conn())
        .unwrap()
}

/// (status, run_after) of the jobs of `kind` whose payload names `id`.
fn jobs_of(db: &TestDb, kind: &str, id: &str) -> Vec<(String, NaiveDateTime)> {
    jobs::table
        .filter(jobs::kind.eq(kind))
        .filter(jobs::payload_json.like(format!("%{id}%")))
        .select((jobs::status, jobs::run_after))
        .load(&mut db.conn())
        .unwrap()
}

fn now() -> NaiveDateTime {
    db::now()
}

db_test!(
    expiry_removes_templates_on_the_tick,
    |db: TestDb| async move {
        let t = fixture(&db, "acme").tenant_id;
        let t0 = now();
        let today = t0.date();
        let deps = deps_at(&db, t0);
        // Ends tomorrow (inclusive); another person's consent does not end; a third person's ends
        // tomorrow too, but a second, open-ended consent keeps face matching in force.
        let ends = person(&db, &t, "Ends Tomorrow", None);
        consent(
            &db,
            &t,
            &ends,
            today - Days::new(10),
            Some(today + Days::new(1)),
            false,
        );
        let stays = person(&db, &t, "Open Ended", None);
        consent(&db, &t, &stays, today - Days::new(10), None, false);
        let two = person(&db, &t, "Two Consents", None);
        consent(
            &db,
            &t,
            &two,
            today - Days::new(10),
            Some(today + Days::new(1)),
            false,
        );
        consent(&db, &t, &two, today - Days::new(5), None, false);
        let f_ends = enrolled(&db, &t, &ends, 1);
        enrolled(&db, &t, &stays, 2);
        enrolled(&db, &t, &two, 3);

        // Today and tomorrow: in force, nothing happens.
        let r = scheduler::tick(&deps).await.unwrap();
        assert_eq!(r.removals_queued, 0, "{r:?}");
        deps.clock.advance(TimeDelta::days(1));
        let r = scheduler::tick(&deps).await.unwrap();
        assert_eq!(r.removals_queued, 0, "{r:?}");
        assert_eq!(templates_of(&db, &ends), 1);

        // A day later the consent has expired: its templates are forgotten and their removal from
        // the matcher is queued; the others keep theirs.
        deps.clock.advance(TimeDelta::days(1));
        let r = scheduler::tick(&deps).await.unwrap();
        assert_eq!(r.removals_queued, 1, "{r:?}");
        assert_eq!(templates_of(&db, &ends), 0);
        assert_eq!(templates_of(&db, &stays), 1);
        assert_eq!(templates_of(&db, &two), 1);
        let queued = jobs_of(&db, RemovePersonTemplates::KIND, &ends);
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!(queued[0].0, "queued");
        let enrolled_flag: bool = faces::table
            .filter(faces::id.eq(&f_ends))
            .select(faces::template_enrolled)
            .first(&mut db.conn())
            .unwrap();
        assert!(!enrolled_flag);
        let audited: i64 = audit_log::table
            .filter(audit_log::action.eq("person.face_matching_ended"))
            .filter(audit_log::object_id.eq(&ends))
            .count()
            .get_result(&mut db.conn())
            .unwrap();
        assert_eq!(audited, 1);

        // Idempotent: later ticks, also two at once (two processes on one database), queue
        // nothing more.
        let (a, b) = futures::join!(scheduler::tick(&deps), scheduler::tick(&deps));
        assert_eq!(a.unwrap().removals_queued + b.unwrap().removals_queued, 0);
        assert_eq!(jobs_of(&db, RemovePersonTemplates::KIND, &ends).len(), 1);

        // Two processes ticking when a consent has just lapsed queue its removal once.
        let late = person(&db, &t, "Late", None);
        consent(
            &db,
            &t,
            &late,
            today - Days::new(10),
            Some(deps.clock.today()),
            false,
        );
        enrolled(&db, &t, &late, 4);
        assert_eq!(scheduler::tick(&deps).await.unwrap().removals_queued, 0);
        deps.clock.advance(TimeDelta::days(1));
        let other = Arc::new(Deps::with_clock(
            db.pool.clone(),
            (*deps.config).clone(),
            deps.clock.clone(),
        ));
        let (a, b) = futures::join!(scheduler::tick(&deps), scheduler::tick(&other));
        assert_eq!(a.unwrap().removals_queued + b.unwrap().removals_queued, 1);
        assert_eq!(jobs_of(&db, RemovePersonTemplates::KIND, &late).len(), 1);
        assert_eq!(templates_of(&db, &late), 0);
    }
);

db_test!(
    a_job_due_at_the_consents_end_removes_templates,
    |db: TestDb| async move {
        let t = fixture(&db, "acme").tenant_id;
        let t0 = now();
        let today = t0.date();
        let deps = deps_at(&db, t0);
        let p = person(&db, &t, "Ends Today", None);
        consent(&db, &t, &p, today - Days::new(3), Some(today), false);
        enrolled(&db, &t, &p, 7);

        // Recording the consent queued a job due at its end: the start of the next day.
        let due = jobs_of(&db, FaceMatchingConsentEnd::KIND, &p);
        assert_eq!(
            due,
            vec![(
                "queued".to_string(),
                (today + Days::new(1)).and_hms_opt(0, 0, 0).unwrap()
            )]
        );
        const END: &[&str] = &[FaceMatchingConsentEnd::KIND];
        assert!(
            job_svc::run_once_kinds(&deps, "w", END)
                .await
                .unwrap()
                .is_none(),
            "not due yet"
        );
        assert_eq!(templates_of(&db, &p), 1);

        // A day later (no tick): the due job runs and queues the removal.
        deps.clock
            .set((today + Days::new(1)).and_hms_opt(0, 0, 1).unwrap());
        let (job, outcome) = job_svc::run_once_kinds(&deps, "w", END)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.kind, FaceMatchingConsentEnd::KIND);
        assert_eq!(outcome, Outcome::Done);
        assert_eq!(templates_of(&db, &p), 0);
        assert_eq!(jobs_of(&db, RemovePersonTemplates::KIND, &p).len(), 1);
        // The tick finds nothing left to do.
        assert_eq!(scheduler::tick(&deps).await.unwrap().removals_queued, 0);
    }
);

fn suggestion(persons: &[&str]) -> Suggestion {
    Suggestion {
        width: 1000,
        height: 1000,
        model_version: "test".into(),
        faces: vec![SuggestedFace {
            bbox: [500.0, 500.0, 600.0, 600.0],
            landmarks: vec![[0.0, 0.0]; 5],
            score: 0.9,
            quality: FaceQuality {
                face_size: 100.0,
                sharpness: 100.0,
                too_small: false,
                too_blurry: false,
                identifiable: true,
            },
            person_id: None,
            person_score: 0.0,
            candidates: persons
                .iter()
                .enumerate()
                .map(|(i, p)| Candidate {
                    person_id: p.to_string(),
                    score: 0.9 - i as f32 * 0.1,
                    template_id: i as u64,
                })
                .collect(),
        }],
    }
}

fn candidates_of(db: &TestDb, asset: &str) -> Vec<String> {
    let cj: Vec<Option<String>> = faces::table
        .filter(faces::asset_id.eq(asset))
        .select(faces::candidates_json)
        .load(&mut db.conn())
        .unwrap();
    cj.into_iter()
        .flatten()
        .flat_map(|s| serde_json::from_str::<Vec<Candidate>>(&s).unwrap())
        .map(|c| c.person_id)
        .collect()
}

fn enroll_jobs(db: &TestDb, face: &str) -> usize {
    jobs_of(db, job_svc::ENROLL_FACE, face).len()
}

db_test!(
    a_minor_needs_a_guardian_signed_consent,
    |db: TestDb| async move {
        let t = fixture(&db, "acme").tenant_id;
        let t0 = now();
        let today = t0.date();
        let deps = deps_at(&db, t0);
        let who = Who::system("test", Some(&t));
        let ten_years_ago = NaiveDate::from_ymd_opt(today.year() - 10, 6, 1).unwrap();
        let minor = person(&db, &t, "A Child", Some(ten_years_ago));
        let adult = person(&db, &t, "An Adult", None);
        consent(&db, &t, &minor, today - Days::new(1), None, false);
        consent(&db, &t, &adult, today - Days::new(1), None, false);
        let has = |p: &str| {
            let (t, p) = (t.clone(), p.to_string());
            agreements::has_face_matching_consent(&mut db.conn(), &t, &p, today).unwrap()
        };
        assert!(
            !has(&minor),
            "a minor's consent without a guardian does not count"
        );
        assert!(has(&adult));

        // Never suggested: the matcher's candidate is dropped, the adult stays.
        let a = asset(&db, &t);
        let s = suggestion(&[&minor, &adult]);
        db::write_tx(&mut db.conn(), |c| {
            face_svc::merge_suggestion_at(c, &t, &a, &s, true, deps.clock.now())
        })
        .unwrap();
        assert_eq!(candidates_of(&db, &a), vec![adult.clone()]);

        // Never enrolled: confirming links the face, with no template and none queued.
        let f = face(&db, &t, &a, 10.0);
        let out = face_svc::confirm(&deps, who.clone(), t.clone(), f.clone(), minor.clone())
            .await
            .unwrap();
        assert!(!out.template_enrolled && !out.enrollment_queued, "{out:?}");
        assert_eq!(enroll_jobs(&db, &f), 0);
        job_svc::enqueue_job(
            &mut db.conn(),
            &t,
            &likeness_control::service::job_kinds::EnrollFace { face_id: f.clone() },
        )
        .unwrap();
        // The queued job does nothing either (no consent; the matcher is not even asked).
        face_svc::enroll_confirmed(&deps, &t, &f).await.unwrap();
        assert_eq!(templates_of(&db, &minor), 0);

        // With a guardian's signature: suggested, and enrolment goes ahead (queued here: there is
        // no matcher in this test).
        consent(&db, &t, &minor, today, None, true);
        assert!(has(&minor));
        let a2 = asset(&db, &t);
        db::write_tx(&mut db.conn(), |c| {
            face_svc::merge_suggestion_at(c, &t, &a2, &s, true, deps.clock.now())
        })
        .unwrap();
        assert_eq!(candidates_of(&db, &a2), vec![minor.clone(), adult.clone()]);
        let f2 = face(&db, &t, &a2, 300.0);
        let out = face_svc::confirm(&deps, who, t.clone(), f2.clone(), minor.clone())
            .await
            .unwrap();
        assert!(out.enrollment_queued, "{out:?}");
        assert_eq!(enroll_jobs(&db, &f2), 1);
    }
);

db_test!(
    the_age_that_counts_is_the_age_at_signing,
    |db: TestDb| async move {
        let t = fixture(&db, "acme").tenant_id;
        let today = now().date();
        // 18 (the default threshold) since yesterday.
        let yesterday = today - Days::new(1);
        let dob = yesterday
            .with_year(yesterday.year() - 18)
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(yesterday.year() - 18, 2, 28).unwrap());
        let p = person(&db, &t, "Just Adult", Some(dob));
        let has = |day: NaiveDate| {
            agreements::has_face_matching_consent(&mut db.conn(), &t, &p, day).unwrap()
        };
        // Valid from (so signed by) a day when the person was 17: does not count, not even later.
        consent(&db, &t, &p, today - Days::new(30), None, false);
        assert!(!has(today));
        assert!(!has(today + Days::new(400)));
        // Signed today, as an adult: counts.
        consent(&db, &t, &p, today, None, false);
        assert!(has(today));
        // The signing day is the earlier of the first valid day and the day it was recorded.
        let created = today.and_hms_opt(12, 0, 0).unwrap();
        assert_eq!(
            agreements::signing_day(today - Days::new(3), created),
            today - Days::new(3)
        );
        assert_eq!(
            agreements::signing_day(today + Days::new(3), created),
            today
        );
    }
);

// A job kind the services do not know, registered by the test: no `match` to edit.

#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    note: String,
    /// Fail retryably until this attempt.
    #[serde(default)]
    flaky_until: i32,
    /// Fail for good.
    #[serde(default)]
    broken: bool,
}

impl BackgroundJob for Stamp {
    const KIND: &'static str = "test_stamp";

    async fn run(&self, ctx: &JobCtx<'_>) -> SvcResult<()> {
        if self.broken {
            return Err(ControlError::Internal("broken on purpose".into()));
        }
        if ctx.attempt < self.flaky_until {
            return Err(ControlError::Unavailable {
                code: "test_unavailable",
                message: format!("attempt {}", ctx.attempt),
            });
        }
        let (t, note, at) = (ctx.tenant.to_string(), self.note.clone(), ctx.now());
        db::run(&ctx.deps.pool, move |c| {
            likeness_control::audit::record(
                c,
                &Who::system("test", Some(&t)),
                "test.stamp",
                "test",
                Some(&note),
                serde_json::json!({"at": at}),
            )
        })
        .await
        .map(|_| ())
    }
}

fn stamped(db: &TestDb, note: &str) -> bool {
    audit_log::table
        .filter(audit_log::action.eq("test.stamp"))
        .filter(audit_log::object_id.eq(note))
        .count()
        .get_result::<i64>(&mut db.conn())
        .unwrap()
        == 1
}

db_test!(the_registry_runs_a_custom_kind, |db: TestDb| async move {
    let t = fixture(&db, "acme").tenant_id;
    // Jobs enqueued "now" carry the system time: the manual clock stands a minute ahead.
    let t0 = now() + TimeDelta::minutes(1);
    let deps = deps_at(&db, t0);
    let reg = Registry::new().register::<Stamp>();
    assert_eq!(reg.kinds(), vec!["test_stamp"]);
    assert!(Registry::standard().contains(job_svc::REMOVE_PERSON_TEMPLATES));
    assert!(!Registry::standard().contains("test_stamp"));
    let stamp = |note: &str, flaky_until: i32, broken: bool| Stamp {
        note: note.into(),
        flaky_until,
        broken,
    };
    let mut c = db.conn();
    job_svc::enqueue_job(&mut c, &t, &stamp("now", 0, false)).unwrap();
    job_svc::enqueue_job(&mut c, &t, &stamp("flaky", 2, false)).unwrap();
    let broken = job_svc::enqueue_job(&mut c, &t, &stamp("broken", 0, true)).unwrap();
    job_svc::enqueue_job_at(
        &mut c,
        &t,
        &stamp("in an hour", 0, false),
        t0 + TimeDelta::hours(1),
        t0,
    )
    .unwrap();
    drop(c);

    // The standard registry does not claim a kind it lacks.
    assert_eq!(job_svc::run_until_idle(&deps, "std").await.unwrap(), 0);

    // Ours: "now" runs, "flaky" goes back with backoff (on the clock), "broken" fails for good,
    // "in an hour" waits.
    assert_eq!(
        job_svc::run_until_idle_in(&deps, &reg, "w").await.unwrap(),
        3
    );
    assert!(stamped(&db, "now"));
    assert!(!stamped(&db, "flaky") && !stamped(&db, "in an hour"));
    let status: String = jobs::table
        .filter(jobs::id.eq(&broken))
        .select(jobs::status)
        .first(&mut db.conn())
        .unwrap();
    assert_eq!(status, "failed");

    // A minute later the retry is due (backoff 1 s), an hour later the scheduled one.
    deps.clock.advance(TimeDelta::minutes(1));
    assert_eq!(
        job_svc::run_until_idle_in(&deps, &reg, "w").await.unwrap(),
        1
    );
    assert!(stamped(&db, "flaky"));
    assert!(!stamped(&db, "in an hour"));
    deps.clock.advance(TimeDelta::hours(1));
    assert_eq!(
        job_svc::run_until_idle_in(&deps, &reg, "w").await.unwrap(),
        1
    );
    assert!(stamped(&db, "in an hour"));
    let left: i64 = jobs::table
        .filter(jobs::kind.eq("test_stamp"))
        .filter(jobs::status.ne("done"))
        .count()
        .get_result(&mut db.conn())
        .unwrap();
    assert_eq!(left, 1, "only the broken one is not done");
});

db_test!(
    answers_and_queued_jobs_follow_the_manual_clock,
    |db: TestDb| async move {
        let t = fixture(&db, "acme").tenant_id;
        // The services' clock stands a day behind the system's.
        let t0 = now() - TimeDelta::days(1);
        let day = t0.date();
        let deps = deps_at(&db, t0);
        // Each call reads the clock when its context is made.
        let ctx = || Ctx::system(deps.clone(), &t, "system:test");
        let new = |until: Option<NaiveDate>, face_matching: bool| NewAgreement {
            channels: vec!["web".into()],
            valid_from: day,
            valid_until: until,
            source: ConsentSource::Digital,
            covers_face_matching: face_matching,
            signed_by_guardian: false,
            text_sha256: None,
            note: None,
        };

        // Valid through the clock's today (which is yesterday on the system clock): active in
        // every answer until the clock passes valid_until, then expired.
        let p = person(&db, &t, "Ends Today", None);
        let a = agreements::record_consent(&ctx(), p.clone(), Ok(new(Some(day), false)))
            .await
            .unwrap();
        assert_eq!(a.state, AgreementState::Active);
        assert_eq!(a.created_at, t0, "recorded at the clock's now");
        let got = agreements::get_consent(&ctx(), a.id.clone()).await.unwrap();
        assert_eq!(got.state, AgreementState::Active);
        deps.clock.advance(TimeDelta::days(1));
        let got = agreements::get_consent(&ctx(), a.id.clone()).await.unwrap();
        assert_eq!(got.state, AgreementState::Expired);
        let listed = agreements::list_consents(&ctx(), p).await.unwrap();
        assert_eq!(listed[0].state, AgreementState::Expired);

        // A job queued with the clock a day behind the system time is due on that clock: the
        // withdrawal of a face-matching consent queues the removal of the person's templates
        // (left queued: there is no matcher), and a worker on the clock claims it at once.
        deps.clock.set(t0);
        let q = person(&db, &t, "Withdraws", None);
        let b = agreements::record_consent(&ctx(), q.clone(), Ok(new(None, true)))
            .await
            .unwrap();
        let w = agreements::withdraw_consent(
            &ctx(),
            b.id.clone(),
            Ok(Withdrawal {
                at: None,
                reason: "asked by phone".into(),
            }),
        )
        .await
        .unwrap();
        assert_eq!(w.outcome.agreement.state, AgreementState::Withdrawn);
        assert!(w.outcome.face_matching_ended);
        assert_eq!(w.outcome.agreement.withdrawn_at, Some(t0));
        assert_eq!(
            jobs_of(&db, RemovePersonTemplates::KIND, &q),
            vec![("queued".to_string(), t0)],
            "due at the clock's now"
        );
        let claimed = job_svc::claim_kinds_at(
            &mut db.conn(),
            "w",
            std::time::Duration::from_secs(300),
            &[RemovePersonTemplates::KIND],
            deps.clock.now(),
        )
        .unwrap()
        .expect("the job is due on the services' clock");
        assert!(claimed.payload_json.contains(&q), "{claimed:?}");
        assert_eq!(claimed.created_at, t0);
    }
);

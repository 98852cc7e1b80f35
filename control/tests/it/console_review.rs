//! The console's review queue in process, on SQLite and PostgreSQL: suggested faces (merged
//! through the faces service, as the matcher's answers are) are listed newest first with the
//! suggested person, approving links the face, a rejection sticks when the same suggestion is
//! merged again, "New person" registers and links, pages continue by cursor; a viewer neither
//! sees the queue nor gets decision buttons, and a form without its CSRF token is refused.
//! Also the helpers the file page's tests share.

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::test;
use diesel::prelude::*;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::{assets, faces, persons};
use likeness_control::service::faces as face_svc;
use likeness_control_media::matcher::{Candidate, FaceQuality, SuggestedFace, Suggestion};

use crate::common::console::console_login;
use crate::common::{Fixture, TestDb, fixture};

pub(crate) use crate::common::console::{body_text, console_state as state, get, post};
pub(crate) use crate::console_test_app as console_app;

/// Logs `role`'s user in through the console's form: (session cookie, CSRF token).
pub(crate) async fn login<S, B>(app: &S, f: &Fixture, role: Role) -> (Cookie<'static>, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (cookie, csrf, _) = console_login(app, f, role).await;
    (cookie, csrf)
}

/// A person, written as the register does.
pub(crate) fn person(db: &TestDb, tenant: &str, name: &str) -> String {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{}", &id[id.len() - 8..])),
            persons::never_publish.eq(false),
            persons::custom_fields_json.eq("{}"),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

/// A 1000x800 image asset without a stored file.
pub(crate) fn asset(db: &TestDb, tenant: &str, filename: &str) -> String {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(assets::table)
        .values((
            assets::id.eq(&id),
            assets::tenant_id.eq(tenant),
            assets::kind.eq("image"),
            assets::filename.eq(filename),
            assets::mime.eq("image/jpeg"),
            assets::size_bytes.eq(1i64),
            assets::sha256.eq(format!("{id:0>64}")),
            assets::width.eq(Some(1000)),
            assets::height.eq(Some(800)),
            assets::blob_key.eq(format!("k-{id}")),
            assets::thumb_blob_key.eq(Some(format!("t-{id}"))),
            assets::metadata_json.eq("{}"),
            assets::current_version.eq(1),
            assets::created_at.eq(now),
            assets::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

/// The matcher's answer: one face at `bbox` suggesting `persons`, best first.
pub(crate) fn suggestion(bbox: [f32; 4], persons: &[&str]) -> Suggestion {
    Suggestion {
        width: 1000,
        height: 800,
        model_version: "test".into(),
        faces: vec![SuggestedFace {
            bbox,
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

/// Merges a suggestion into an asset's faces at `now` (as the detection job does); returns the
/// asset's faces' IDs.
pub(crate) fn merge(
    db: &TestDb,
    tenant: &str,
    asset: &str,
    s: &Suggestion,
    now: chrono::NaiveDateTime,
) -> Vec<String> {
    db::write_tx(&mut db.conn(), |c| {
        face_svc::merge_suggestion_at(c, tenant, asset, s, true, now)
    })
    .unwrap();
    faces::table
        .filter(faces::asset_id.eq(asset))
        .select(faces::id)
        .load(&mut db.conn())
        .unwrap()
}

/// A face's (status, person, candidate persons).
pub(crate) fn face_state(db: &TestDb, face: &str) -> (String, Option<String>, Vec<String>) {
    let (status, person, cj): (String, Option<String>, Option<String>) = faces::table
        .filter(faces::id.eq(face))
        .select((faces::status, faces::person_id, faces::candidates_json))
        .first(&mut db.conn())
        .unwrap();
    let cands: Vec<Candidate> = cj
        .map(|s| serde_json::from_str(&s).unwrap())
        .unwrap_or_default();
    (
        status,
        person,
        cands.into_iter().map(|c| c.person_id).collect(),
    )
}

fn card_count(html: &str) -> usize {
    html.matches("<article class=\"face-card\"").count()
}

db_test!(
    review_queue_approve_reject_new_person,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let st = state(&db);
        let app = console_app!(st);
        let anna = person(&db, &t, "Anna Andersson");
        let bert = person(&db, &t, "Bert Berg");
        let now = db::now();
        let a1 = asset(&db, &t, "party.jpg");
        let f1 = merge(
            &db,
            &t,
            &a1,
            &suggestion([100.0, 100.0, 200.0, 220.0], &[&anna, &bert]),
            now,
        )
        .remove(0);
        let a2 = asset(&db, &t, "board.jpg");
        let f2 = merge(
            &db,
            &t,
            &a2,
            &suggestion([300.0, 100.0, 400.0, 220.0], &[&anna]),
            now + chrono::TimeDelta::seconds(1),
        )
        .remove(0);
        let a3 = asset(&db, &t, "staff.jpg");
        let f3 = merge(
            &db,
            &t,
            &a3,
            &suggestion([500.0, 100.0, 600.0, 220.0], &[&bert]),
            now + chrono::TimeDelta::seconds(2),
        )
        .remove(0);
        assert_eq!(face_state(&db, &f1).0, "suggested");

        let (cookie, csrf) = login(&app, &f, Role::Editor).await;
        let (status, html) = get(&app, &cookie, "/admin/review").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("<h1>Review queue</h1>"), "{html}");
        assert_eq!(card_count(&html), 3, "{html}");
        // Newest first.
        let pos = |id: &str| html.find(&format!("data-face-id=\"{id}\"")).unwrap();
        assert!(pos(&f3) < pos(&f2) && pos(&f2) < pos(&f1), "newest first");
        // The suggested person, the score, the crop from the thumbnail in the image's pixels.
        assert!(html.contains("Anna Andersson"), "{html}");
        assert!(html.contains("90%"), "{html}");
        assert!(
            html.contains(&format!("/admin/files/{a1}/thumbnail")),
            "{html}"
        );
        assert!(html.contains("width=\"1000\" height=\"800\""), "{html}");
        for label in ["Approve", "Reject", "Another person", "Link", "New person"] {
            assert!(html.contains(label), "{label}: {html}");
        }

        // Without the CSRF token: refused, nothing changes.
        let (status, _, _) = post(
            &app,
            &cookie,
            &format!("/admin/faces/{f1}/approve"),
            &format!("person_id={anna}"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = post(
            &app,
            &cookie,
            &format!("/admin/faces/{f1}/approve"),
            &format!("csrf=forged&person_id={anna}"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(face_state(&db, &f1).0, "suggested");

        // Reject Anna on f1: Bert stays suggested; merging the same answer again does not bring
        // Anna back.
        let (status, loc, body) = post(
            &app,
            &cookie,
            &format!("/admin/faces/{f1}/reject"),
            &format!("csrf={csrf}&person_id={anna}&back=%2Fadmin%2Freview%3Ftab%3Dsuggested"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(loc, "/admin/review?tab=suggested&notice=saved");
        assert_eq!(
            face_state(&db, &f1),
            ("suggested".into(), None, vec![bert.clone()])
        );
        merge(
            &db,
            &t,
            &a1,
            &suggestion([100.0, 100.0, 200.0, 220.0], &[&anna, &bert]),
            now + chrono::TimeDelta::seconds(10),
        );
        assert_eq!(
            face_state(&db, &f1),
            ("suggested".into(), None, vec![bert.clone()])
        );

        // Reject the only suggestion of f2 (from a script: 204): rejected, out of the queue, and it
        // stays so after the same answer is merged again.
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri(&format!("/admin/faces/{f2}/reject"))
                .cookie(cookie.clone())
                .insert_header(("X-Requested-With", "fetch"))
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload(format!("csrf={csrf}&person_id={anna}"))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(face_state(&db, &f2).0, "rejected");
        merge(
            &db,
            &t,
            &a2,
            &suggestion([300.0, 100.0, 400.0, 220.0], &[&anna]),
            now + chrono::TimeDelta::seconds(11),
        );
        let (st2, p2, c2) = face_state(&db, &f2);
        assert_eq!(st2, "rejected");
        assert_eq!(p2, None);
        assert!(!c2.contains(&anna), "{c2:?}");

        // Approve Bert on f1: linked.
        let (status, loc, _) = post(
            &app,
            &cookie,
            &format!("/admin/faces/{f1}/approve"),
            &format!("csrf={csrf}&person_id={bert}"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(loc, "/admin/review?notice=saved");
        assert_eq!(face_state(&db, &f1).0, "confirmed");
        assert_eq!(face_state(&db, &f1).1.as_deref(), Some(bert.as_str()));

        // The queue now holds f3 only, Bert's avatar being his confirmed face.
        let (_, html) = get(&app, &cookie, "/admin/review").await;
        assert!(
            html.contains("aria-label=\"Avatar of Bert Berg\""),
            "{html}"
        );
        assert_eq!(card_count(&html), 1, "{html}");
        assert!(html.contains(&format!("data-face-id=\"{f3}\"")));
        assert!(!html.contains("Anna Andersson</a></h2>"), "{html}");

        // "New person" on f3: registered and linked.
        let (status, _, body) = post(
            &app,
            &cookie,
            &format!("/admin/faces/{f3}/new-person"),
            &format!("csrf={csrf}&name=Cecilia+Carlsson"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let (st3, p3, _) = face_state(&db, &f3);
        assert_eq!(st3, "confirmed");
        // The name is sealed (the vault): read through the register.
        let name =
            likeness_control::service::persons::personal_one(&mut db.conn(), &t, &p3.unwrap())
                .unwrap()
                .unwrap()
                .name;
        assert_eq!(name, "Cecilia Carlsson");
        let (_, html) = get(&app, &cookie, "/admin/review").await;
        assert_eq!(card_count(&html), 0, "{html}");
        assert!(
            html.contains("No suggestion is waiting for review."),
            "{html}"
        );

        // An empty name: 400 naming the field, and no person registered.
        let a4 = asset(&db, &t, "x.jpg");
        let f4 = merge(
            &db,
            &t,
            &a4,
            &suggestion([10.0, 10.0, 90.0, 90.0], &[&anna]),
            now,
        )
        .remove(0);
        let (status, _, body) = post(
            &app,
            &cookie,
            &format!("/admin/faces/{f4}/new-person"),
            &format!("csrf={csrf}&name="),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("name"), "{body}");
        // Linking without a person: 400.
        let (status, _, body) = post(
            &app,
            &cookie,
            &format!("/admin/faces/{f4}/link"),
            &format!("csrf={csrf}&person_id="),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("person_id"), "{body}");

        // A viewer: no queue (403 page), and no decision may be posted.
        let (vcookie, vcsrf) = login(&app, &f, Role::Viewer).await;
        let (status, html) = get(&app, &vcookie, "/admin/review").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(html.contains("role=\"alert\""), "{html}");
        assert!(!html.contains("Approve"), "{html}");
        let (status, _, _) = post(
            &app,
            &vcookie,
            &format!("/admin/faces/{f4}/approve"),
            &format!("csrf={vcsrf}&person_id={anna}"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(face_state(&db, &f4).0, "suggested");
    }
);

db_test!(review_queue_pages_and_tabs, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let t = f.tenant_id.clone();
    let st = state(&db);
    let app = console_app!(st);
    let anna = person(&db, &t, "Anna Andersson");
    let now = db::now();
    let mut ids = Vec::new();
    for i in 0..23 {
        let a = asset(&db, &t, &format!("p{i}.jpg"));
        ids.push(
            merge(
                &db,
                &t,
                &a,
                &suggestion([10.0, 10.0, 90.0, 90.0], &[&anna]),
                now + chrono::TimeDelta::seconds(i),
            )
            .remove(0),
        );
    }
    // An unidentified face (no candidate) is on the second tab only.
    let a = asset(&db, &t, "unknown.jpg");
    let unknown = merge(&db, &t, &a, &suggestion([10.0, 10.0, 90.0, 90.0], &[]), now).remove(0);
    assert_eq!(face_state(&db, &unknown).0, "unknown");

    let (cookie, _) = login(&app, &f, Role::Admin).await;
    let (_, html) = get(&app, &cookie, "/admin/review").await;
    assert_eq!(card_count(&html), 20);
    assert!(html.contains(&format!("data-face-id=\"{}\"", ids[22])));
    assert!(!html.contains(&format!("data-face-id=\"{}\"", ids[2])));
    assert!(!html.contains(&format!("data-face-id=\"{unknown}\"")));
    let start = html
        .find("/admin/review?tab=suggested&#38;after=")
        .unwrap_or_else(|| panic!("{}", &html[html.find("class=\"pager\"").unwrap()..]));
    let href = &html[start..start + html[start..].find('"').unwrap()];
    let (status, page2) = get(&app, &cookie, &href.replace("&#38;", "&")).await;
    assert_eq!(status, StatusCode::OK, "{page2}");
    assert_eq!(card_count(&page2), 3, "{page2}");
    for id in &ids[..3] {
        assert!(page2.contains(&format!("data-face-id=\"{id}\"")));
    }
    assert!(
        !page2.contains("Older faces"),
        "the last page has no next link"
    );

    let (_, html) = get(&app, &cookie, "/admin/review?tab=unknown").await;
    assert_eq!(card_count(&html), 1, "{html}");
    assert!(html.contains(&format!("data-face-id=\"{unknown}\"")));
    assert!(html.contains("No suggestion"), "{html}");

    // A bad cursor or tab: 400 naming it.
    let (status, body) = get(&app, &cookie, "/admin/review?after=garbage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("after"), "{body}");
    let (status, body) = get(&app, &cookie, "/admin/review?tab=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("tab"), "{body}");
});

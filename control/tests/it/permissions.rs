//! Permissions are checked by the services: every service entry point refuses an actor without
//! the permission it needs (before it looks at its input), deleting a person is an erasure that
//! needs `erase`, and handlers answer 403 `forbidden` naming the permission.

use std::collections::BTreeSet;

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use likeness_control::error::ControlError;
use likeness_control::roles::{Permission, Role};
use likeness_control::service::auth::{Actor, AuthVia};
use likeness_control::service::{
    Ctx, agreements, assets, audit, compliance, faces, persons, rematch, settings, users,
};
use likeness_control_media::UploadFile;
use serde_json::{Value, json};

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

/// A malformed input as a transport reports it: the services must not get to it.
fn bad<T>() -> Result<T, ControlError> {
    Err(ControlError::BadRequest {
        code: "invalid_json",
        message: "malformed".into(),
    })
}

/// Awaits a service call and asserts it was refused for lacking `perm`.
macro_rules! refused {
    ($what:literal, $perm:expr, $call:expr) => {{
        match $call.await {
            Err(ControlError::Forbidden(m)) => {
                assert!(m.contains($perm.as_str()), "{}: {m}", $what)
            }
            Err(e) => panic!("{}: {e:?}, expected forbidden {}", $what, $perm),
            Ok(_) => panic!("{}: allowed without {}", $what, $perm),
        }
    }};
}

db_test!(
    permissions_every_entry_point_checks,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let deps = db.state().into_inner();
        let actor = |perms: &[Permission]| Actor {
            tenant_id: f.tenant_id.clone(),
            user_id: f.user(Role::Viewer).0.to_string(),
            label: "walker".into(),
            role: Role::Viewer,
            permissions: perms.iter().copied().collect::<BTreeSet<_>>(),
            via: AuthVia::Token,
            ip: None,
        };
        let none = Ctx::new(deps.clone(), actor(&[]));
        let id = || uuid::Uuid::now_v7().to_string();
        use Permission as P;

        // persons
        refused!(
            "list_persons",
            P::SeePersons,
            persons::list_persons(&none, bad(), bad())
        );
        refused!(
            "create_person",
            P::ManagePersons,
            persons::create_person(&none, bad())
        );
        refused!(
            "get_person",
            P::SeePersons,
            persons::get_person(&none, id())
        );
        refused!(
            "update_person",
            P::ManagePersons,
            persons::update_person(&none, id(), bad())
        );
        refused!(
            "erase_person",
            P::ManagePersons,
            persons::erase_person(&none, id())
        );
        let manager = Ctx::new(deps.clone(), actor(&[P::SeePersons, P::ManagePersons]));
        refused!(
            "erase_person (manage_persons)",
            P::Erase,
            persons::erase_person(&manager, id())
        );
        let eraser = Ctx::new(deps.clone(), actor(&[P::Erase]));
        refused!(
            "erase_person (erase)",
            P::ManagePersons,
            persons::erase_person(&eraser, id())
        );
        // settings, users, tokens, audit
        refused!(
            "put_settings",
            P::ManageSettings,
            settings::put_settings(&none, bad())
        );
        refused!("list_users", P::ManageUsers, users::list_users(&none));
        refused!(
            "create_user",
            P::ManageUsers,
            users::create_user(&none, bad())
        );
        refused!("get_user", P::ManageUsers, users::get_user(&none, id()));
        refused!(
            "update_user",
            P::ManageUsers,
            users::update_user(&none, id(), bad())
        );
        refused!("list_roles", P::ManageUsers, users::list_roles(&none));
        refused!(
            "set_role",
            P::ManageUsers,
            users::set_role(&none, "viewer".into(), bad())
        );
        refused!(
            "list_user_tokens all",
            P::ManageUsers,
            users::list_user_tokens(&none, Ok(users::TokenQuery { all: Some(true) }))
        );
        refused!(
            "issue_token for another user",
            P::ManageUsers,
            users::issue_token(
                &none,
                Ok(users::NewToken {
                    name: "x".into(),
                    user_id: Some(f.user(Role::Admin).0.to_string()),
                })
            )
        );
        refused!("read_log", P::ReadAudit, audit::read_log(&none, bad()));
        // compliance
        refused!(
            "put_legal_basis",
            P::ManageConsents,
            compliance::put_legal_basis(&none, id(), bad())
        );
        refused!(
            "check_person",
            P::SeePersons,
            compliance::check_person(&none, id(), bad())
        );
        refused!(
            "list_lacking_persons",
            P::SeePersons,
            compliance::list_lacking_persons(&none, bad())
        );
        // assets, faces, jobs
        let upload = || assets::NewUpload {
            filename: None,
            metadata: None,
            file: spooled(b"not a file"),
        };
        refused!(
            "upload_asset",
            P::ManageAssets,
            assets::upload_asset(&none, upload())
        );
        refused!(
            "update_asset",
            P::ManageAssets,
            assets::update_asset(&none, id(), bad())
        );
        refused!(
            "delete_asset",
            P::ManageAssets,
            assets::delete_asset(&none, id())
        );
        refused!(
            "upload_asset_version",
            P::ManageAssets,
            assets::upload_asset_version(&none, id(), spooled(b"x"))
        );
        refused!(
            "draw_face",
            P::ManageAssets,
            faces::draw_face(&none, id(), bad())
        );
        refused!(
            "confirm_face",
            P::ManageAssets,
            faces::confirm_face(&none, id(), bad())
        );
        refused!(
            "reject_face",
            P::ManageAssets,
            faces::reject_face(&none, id(), bad())
        );
        let assets_only = Ctx::new(deps.clone(), actor(&[P::ManageAssets]));
        refused!(
            "confirm_face (manage_assets)",
            P::SeePersons,
            faces::confirm_face(&assets_only, id(), bad())
        );
        refused!(
            "reject_face (manage_assets)",
            P::SeePersons,
            faces::reject_face(&assets_only, id(), bad())
        );
        refused!(
            "unlink_face",
            P::ManageAssets,
            faces::unlink_face(&none, id())
        );
        refused!(
            "delete_face",
            P::ManageAssets,
            faces::delete_face(&none, id())
        );
        refused!(
            "start_rematch",
            P::ManageAssets,
            rematch::start_rematch(&none, bad())
        );
        refused!(
            "list_rematch_runs",
            P::ManageAssets,
            rematch::list_rematch_runs(&none)
        );
        refused!(
            "get_rematch_run",
            P::ManageAssets,
            rematch::get_rematch_run(&none, id())
        );
        refused!(
            "cancel_rematch_run",
            P::ManageAssets,
            rematch::cancel_rematch_run(&none, id())
        );
        refused!(
            "list_jobs",
            P::ManageAssets,
            rematch::list_jobs(&none, bad())
        );
        refused!("job_stats", P::ManageAssets, rematch::job_stats(&none));
        // consents
        refused!(
            "record_consent",
            P::ManageConsents,
            agreements::record_consent(&none, id(), bad())
        );
        refused!(
            "list_consents",
            P::SeePersons,
            agreements::list_consents(&none, id())
        );
        refused!(
            "get_consent",
            P::SeePersons,
            agreements::get_consent(&none, id())
        );
        refused!(
            "withdraw_consent",
            P::ManageConsents,
            agreements::withdraw_consent(&none, id(), bad())
        );
        refused!(
            "attach_document",
            P::ManageConsents,
            agreements::attach_document(
                &none,
                id(),
                agreements::NewDocument {
                    filename: None,
                    file: spooled(b"x"),
                }
            )
        );
        refused!(
            "read_document",
            P::SeePersons,
            agreements::read_document(&none, id(), id())
        );

        // With the permission, the input is looked at (the malformed one is refused as such).
        let all = Ctx::new(deps.clone(), actor(Permission::ALL));
        match persons::create_person(&all, bad()).await {
            Err(ControlError::BadRequest { code, .. }) => assert_eq!(code, "invalid_json"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        // Reads open to every user of the tenant stay open without any permission.
        settings::get_settings(&none).await.unwrap();
        assets::list_assets(&none, Ok(Default::default()), Ok(Default::default()))
            .await
            .unwrap();
        match faces::list_asset_faces(&none, id()).await {
            Err(ControlError::NotFound(_)) => {}
            other => panic!("list_asset_faces: {:?}", other.map(|_| ())),
        }
    }
);

db_test!(
    permissions_erasing_a_person_needs_erase,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let token = |r: Role| token_for(&db, &f.tenant_id, f.user(r).0);
        let (admin, editor, po, viewer) = (
            token(Role::Admin),
            token(Role::Editor),
            token(Role::PrivacyOfficer),
            token(Role::Viewer),
        );
        let app = test_app!(db);
        let mut ids = Vec::new();
        for name in ["Ann", "Bo", "Cy"] {
            let (st, p) = call(
                &app,
                TestRequest::post()
                    .uri("/api/v1/persons")
                    .insert_header(bearer(&editor))
                    .set_json(json!({ "name": name })),
            )
            .await;
            assert_eq!(st, StatusCode::CREATED, "{p}");
            ids.push(p["id"].as_str().unwrap().to_string());
        }
        let delete = |id: &str, t: &str| {
            TestRequest::delete()
                .uri(&format!("/api/v1/persons/{id}"))
                .insert_header(bearer(t))
        };
        // The editor may manage persons but not erase them.
        let (st, v) = call(&app, delete(&ids[0], &editor)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["error"]["code"], "forbidden");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("erase"),
            "{v}"
        );
        // The privacy officer erases by default.
        let (st, v) = call(&app, delete(&ids[0], &po)).await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
        let (st, _) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{}", ids[0]))
                .insert_header(bearer(&admin)),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        // Given `erase`, the editor erases.
        let (st, v) = call(
        &app,
        TestRequest::put()
            .uri("/api/v1/roles/editor")
            .insert_header(bearer(&admin))
            .set_json(json!({"permissions": ["see_persons", "manage_persons", "manage_assets", "erase"]})),
    )
    .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, v) = call(&app, delete(&ids[1], &editor)).await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
        // `erase` alone is not enough: erasing from the register also needs `manage_persons`.
        let (st, v) = call(
            &app,
            TestRequest::put()
                .uri("/api/v1/roles/viewer")
                .insert_header(bearer(&admin))
                .set_json(json!({"permissions": ["erase"]})),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, v) = call(&app, delete(&ids[2], &viewer)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("manage_persons"),
            "{v}"
        );
        // The refused attempts erased nothing.
        let (st, _) = call(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/persons/{}", ids[2]))
                .insert_header(bearer(&admin)),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
    }
);

db_test!(permissions_handlers_answer_403, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let token = |r: Role| token_for(&db, &f.tenant_id, f.user(r).0);
    let (viewer, editor, integration) = (
        token(Role::Viewer),
        token(Role::Editor),
        token(Role::Integration),
    );
    let app = test_app!(db);
    let malformed = |req: TestRequest| {
        req.insert_header(("Content-Type", "application/json"))
            .set_payload("{not json")
    };
    let cases: Vec<(TestRequest, &str, &str)> = vec![
        (
            malformed(TestRequest::post().uri("/api/v1/persons")),
            &viewer,
            "manage_persons",
        ),
        (
            TestRequest::get().uri("/api/v1/persons?per_page=nope"),
            &integration,
            "see_persons",
        ),
        (
            malformed(TestRequest::put().uri("/api/v1/settings")),
            &editor,
            "manage_settings",
        ),
        (
            TestRequest::get().uri("/api/v1/audit"),
            &editor,
            "read_audit",
        ),
        (
            TestRequest::get().uri("/api/v1/users"),
            &editor,
            "manage_users",
        ),
        (
            malformed(TestRequest::put().uri("/api/v1/assets/x/legal-basis")),
            &editor,
            "manage_consents",
        ),
        (
            malformed(TestRequest::post().uri("/api/v1/rematch")),
            &viewer,
            "manage_assets",
        ),
        (
            malformed(TestRequest::post().uri("/api/v1/agreements/x/withdraw")),
            &editor,
            "manage_consents",
        ),
        (
            TestRequest::get().uri("/api/v1/tokens?all=true"),
            &editor,
            "manage_users",
        ),
    ];
    for (req, t, perm) in cases {
        let (st, v) = call(&app, req.insert_header(bearer(t))).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{perm}: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(perm),
            "{perm}: {v}"
        );
    }
});

/// `bytes` spooled to a temporary file, as the web edge hands an upload to the services.
fn spooled(bytes: &[u8]) -> UploadFile {
    UploadFile::from_bytes(None, bytes).unwrap()
}

//! The console's admin pages in process: settings, users, API tokens, the roles matrix, the
//! audit log with its verification and re-matching runs; each refused to a viewer and every
//! form refused without its CSRF token.

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::{App, test, web};
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::roles::{Permission, Role};
use likeness_control::service::{settings, users};

use crate::common::{Fixture, PASSWORD, TestDb, fixture};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The admin pages and their `<h1>`.
const PAGES: &[(&str, &str)] = &[
    ("/admin/settings", "<h1>Settings</h1>"),
    ("/admin/users", "<h1>Users</h1>"),
    ("/admin/tokens", "<h1>API tokens</h1>"),
    ("/admin/roles", "<h1>Roles and permissions</h1>"),
    ("/admin/audit", "<h1>Audit log</h1>"),
    ("/admin/rematch", "<h1>Re-matching</h1>"),
];

/// State with a blob store and a matcher address where nothing listens.
fn state(db: &TestDb) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(KEY.into());
    cfg.matcher.url = "http://127.0.0.1:9".into();
    cfg.server.cookie_secure = false;
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

macro_rules! admin_app {
    ($st:expr) => {
        test::init_service(
            App::new().configure(|c| likeness_control::app::configure_app(c, $st.clone())),
        )
        .await
    };
}

/// A logged-in browser: its session cookie and the session's CSRF token.
struct Browser {
    cookie: Cookie<'static>,
    csrf: String,
}

/// An answer: status, `Location`, body.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

async fn answer<B: actix_web::body::MessageBody>(
    resp: actix_web::dev::ServiceResponse<B>,
) -> Answer {
    let status = resp.status();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    Answer {
        status,
        location,
        body,
    }
}

/// The value of `<meta name="csrf-token" content="...">` of a page.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

/// `application/x-www-form-urlencoded` escaping.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A form body from pairs.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Logs in through the console's form; `None` if the login is refused.
async fn login_as<S, B>(app: &S, tenant: &str, email: &str, password: &str) -> Option<Browser>
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let resp = test::call_service(
        app,
        test::TestRequest::post()
            .uri("/admin/login")
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form(&[
                ("tenant", tenant),
                ("email", email),
                ("password", password),
            ]))
            .to_request(),
    )
    .await;
    if resp.status() != StatusCode::SEE_OTHER {
        return None;
    }
    assert_eq!(resp.headers().get(header::LOCATION).unwrap(), "/admin");
    let cookie = resp
        .response()
        .cookies()
        .find(|c| c.name() == "lk_session")
        .unwrap()
        .into_owned();
    let page = answer(
        test::call_service(
            app,
            test::TestRequest::get()
                .uri("/admin")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    Some(Browser {
        csrf: csrf_of(&page.body),
        cookie,
    })
}

async fn login<S, B>(app: &S, f: &Fixture, role: Role) -> Browser
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (_, email) = f.user(role);
    login_as(app, &f.slug, email, PASSWORD).await.unwrap()
}

async fn get<S, B>(app: &S, b: &Browser, uri: &str) -> Answer
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    answer(
        test::call_service(
            app,
            test::TestRequest::get()
                .uri(uri)
                .cookie(b.cookie.clone())
                .to_request(),
        )
        .await,
    )
    .await
}

/// Posts a form with the session's CSRF token (`csrf: false`: without it).
async fn post<S, B>(app: &S, b: &Browser, uri: &str, pairs: &[(&str, &str)], csrf: bool) -> Answer
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let mut all: Vec<(&str, &str)> = Vec::new();
    if csrf {
        all.push(("csrf", &b.csrf));
    }
    all.extend_from_slice(pairs);
    answer(
        test::call_service(
            app,
            test::TestRequest::post()
                .uri(uri)
                .cookie(b.cookie.clone())
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload(form(&all))
                .to_request(),
        )
        .await,
    )
    .await
}

db_test!(
    console_admin_pages_render_for_an_admin,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = admin_app!(st);
        let admin = login(&app, &f, Role::Admin).await;
        for (uri, h1) in PAGES {
            let a = get(&app, &admin, uri).await;
            assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.body);
            assert!(a.body.contains(h1), "{uri}: {}", a.body);
            assert!(a.body.contains("aria-current=\"page\""), "{uri}");
        }
        // Data on the pages: the channels, every fixture user, the roles' permissions.
        let s = get(&app, &admin, "/admin/settings").await.body;
        for c in ["web", "print", "social", "internal"] {
            assert!(s.contains(&format!("value=\"{c}\"")), "{c}");
        }
        assert!(s.contains("value=\"allow_with_permission\" checked"), "{s}");
        let u = get(&app, &admin, "/admin/users").await.body;
        for (_, _, email) in &f.users {
            assert!(u.contains(email.as_str()), "{email}");
        }
        let r = get(&app, &admin, "/admin/roles").await.body;
        assert!(r.contains("Editor: See persons"), "{r}");
        assert!(
            r.contains(r#"name="editor" value="see_persons" checked"#),
            "{r}"
        );
        assert!(r.contains(r#"name="viewer" value="see_persons">"#), "{r}");
    }
);

db_test!(
    console_admin_settings_save_and_name_a_bad_field,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = admin_app!(st);
        let admin = login(&app, &f, Role::Admin).await;
        let a = post(
            &app,
            &admin,
            "/admin/settings",
            &[
                ("channels", "web"),
                ("channels", "print"),
                ("channels", "social"),
                ("channels", "internal"),
                ("remove_channels", "internal"),
                ("new_channel", "newsletter"),
                ("notice_days", "14"),
                ("age_threshold", "16"),
                ("pseudonymous_names", "on"),
                ("non_approved_use", "block"),
            ],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(a.location.as_deref(), Some("/admin/settings?notice=saved"));
        let s = settings::get(&mut db.conn(), &f.tenant_id).unwrap();
        assert_eq!(s.channels, ["web", "print", "social", "newsletter"]);
        assert_eq!(s.notice_days, 14);
        assert_eq!(s.age_threshold, 16);
        assert!(s.pseudonymous_names);
        assert_eq!(s.non_approved_use.as_str(), "block");
        let page = get(&app, &admin, "/admin/settings?notice=saved").await.body;
        assert!(page.contains("Saved."), "{page}");
        assert!(page.contains("value=\"block\" checked"), "{page}");

        // Out of range, not a number, an unknown policy: a 400 page naming the field; nothing saved.
        for (field, value) in [
            ("notice_days", "4000"),
            ("notice_days", "soon"),
            ("age_threshold", "5"),
            ("non_approved_use", "maybe"),
        ] {
            let mut pairs = vec![
                ("channels", "web"),
                ("notice_days", "14"),
                ("age_threshold", "16"),
                ("non_approved_use", "block"),
            ];
            pairs.retain(|(k, _)| *k != field);
            pairs.push((field, value));
            let a = post(&app, &admin, "/admin/settings", &pairs, true).await;
            assert_eq!(
                a.status,
                StatusCode::BAD_REQUEST,
                "{field}={value}: {}",
                a.body
            );
            assert!(a.body.contains("<!doctype html>"), "{}", a.body);
            assert!(a.body.contains(field), "{field}: {}", a.body);
        }
        assert_eq!(settings::get(&mut db.conn(), &f.tenant_id).unwrap(), s);
    }
);

db_test!(
    console_admin_creates_a_user_who_logs_in,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = admin_app!(st);
        let admin = login(&app, &f, Role::Admin).await;
        let a = post(
            &app,
            &admin,
            "/admin/users",
            &[
                ("email", "New.Editor@Acme.test"),
                ("display_name", "Nell Editor"),
                ("role", "editor"),
                ("password", "a-long-enough-password"),
            ],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(
            a.location.as_deref(),
            Some("/admin/users?notice=user_created")
        );
        let page = get(&app, &admin, "/admin/users?notice=user_created")
            .await
            .body;
        assert!(page.contains("new.editor@acme.test"), "{page}");
        assert!(page.contains("Nell Editor"), "{page}");
        assert!(page.contains("The user was created."), "{page}");

        let nell = login_as(
            &app,
            "acme",
            "new.editor@acme.test",
            "a-long-enough-password",
        )
        .await
        .expect("the new user logs in");
        // An editor: the review queue, not the admin pages.
        let overview = get(&app, &nell, "/admin").await.body;
        assert!(overview.contains("Signed in as <strong>new.editor@acme.test</strong>"));
        assert!(!overview.contains("href=\"/admin/users\""), "{overview}");
        assert_eq!(
            get(&app, &nell, "/admin/users").await.status,
            StatusCode::FORBIDDEN
        );

        // A bad role or a short password: 400 naming it.
        let a = post(
            &app,
            &admin,
            "/admin/users",
            &[("email", "x@acme.test"), ("role", "boss"), ("password", "")],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.body.contains("role"), "{}", a.body);
        let a = post(
            &app,
            &admin,
            "/admin/users",
            &[
                ("email", "x@acme.test"),
                ("role", "viewer"),
                ("password", "short"),
            ],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.body.contains("password"), "{}", a.body);

        // Change the role, then disable: the user can no longer log in.
        let all = users::list(&mut db.conn(), &f.tenant_id).unwrap();
        let id = &all
            .iter()
            .find(|u| u.email == "new.editor@acme.test")
            .unwrap()
            .id;
        let uri = format!("/admin/users/{id}");
        let a = post(&app, &admin, &uri, &[("role", "viewer")], true).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let a = post(&app, &admin, &uri, &[("disabled", "true")], true).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let u = users::get(&mut db.conn(), &f.tenant_id, id).unwrap();
        assert_eq!(u.role, Role::Viewer);
        assert!(u.disabled);
        assert!(
            login_as(
                &app,
                "acme",
                "new.editor@acme.test",
                "a-long-enough-password"
            )
            .await
            .is_none()
        );
        // A new password for the editor: the old one stops working.
        let (editor, editor_email) = f.user(Role::Editor);
        let a = post(
            &app,
            &admin,
            &format!("/admin/users/{editor}"),
            &[("password", "a-brand-new-password")],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert!(
            login_as(&app, "acme", editor_email, PASSWORD)
                .await
                .is_none()
        );
        assert!(
            login_as(&app, "acme", editor_email, "a-brand-new-password")
                .await
                .is_some()
        );
        // Not yourself.
        let (me, _) = f.user(Role::Admin);
        let a = post(
            &app,
            &admin,
            &format!("/admin/users/{me}"),
            &[("disabled", "true")],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    }
);

db_test!(
    console_admin_roles_matrix_changes_a_permission,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = admin_app!(st);
        let admin = login(&app, &f, Role::Admin).await;
        // The matrix as it is, plus viewer: read_audit.
        let current = users::roles(&mut db.conn(), &f.tenant_id).unwrap();
        let mut pairs: Vec<(&str, &str)> = current
            .iter()
            .flat_map(|r| r.permissions.iter().map(|p| (r.role.as_str(), p.as_str())))
            .collect();
        pairs.push(("viewer", "read_audit"));
        let a = post(&app, &admin, "/admin/roles", &pairs, true).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(
            a.location.as_deref(),
            Some("/admin/roles?notice=roles_saved")
        );
        let after = users::roles(&mut db.conn(), &f.tenant_id).unwrap();
        let viewer = after.iter().find(|r| r.role == Role::Viewer).unwrap();
        assert_eq!(viewer.permissions, [Permission::ReadAudit]);
        for (b, a) in current.iter().zip(&after) {
            if b.role != Role::Viewer {
                assert_eq!(b, a);
            }
        }
        // The viewer now reads the audit log.
        let viewer = login(&app, &f, Role::Viewer).await;
        assert_eq!(
            get(&app, &viewer, "/admin/audit").await.status,
            StatusCode::OK
        );

        // The admin role must keep manage_users: the service's refusal is shown, nothing changes.
        let without: Vec<(&str, &str)> = pairs
            .iter()
            .copied()
            .filter(|&(r, p)| !(r == "admin" && p == "manage_users"))
            .filter(|&(r, _)| r != "editor")
            .collect();
        let a = post(&app, &admin, "/admin/roles", &without, true).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        assert!(a.body.contains("manage_users"), "{}", a.body);
        assert_eq!(users::roles(&mut db.conn(), &f.tenant_id).unwrap(), after);
    }
);

db_test!(
    console_admin_token_created_once_and_revoked,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = admin_app!(st);
        let admin = login(&app, &f, Role::Admin).await;
        let (integration, _) = f.user(Role::Integration);
        let a = post(
            &app,
            &admin,
            "/admin/tokens",
            &[("name", "dam-sync"), ("user_id", integration)],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(a.body.contains("Copy the token now"), "{}", a.body);
        let start = a.body.find("value=\"lk_").unwrap() + 7;
        let secret = a.body[start..start + a.body[start..].find('"').unwrap()].to_string();
        assert!(secret.len() > 20, "{secret}");
        // The token works.
        let call = |secret: String| {
            test::TestRequest::get()
                .uri("/api/v1/assets")
                .insert_header((header::AUTHORIZATION, format!("Bearer {secret}")))
                .to_request()
        };
        let resp = test::call_service(&app, call(secret.clone())).await;
        assert_eq!(resp.status(), StatusCode::OK);

        // Listed without its secret, then revoked.
        let list = get(&app, &admin, "/admin/tokens").await.body;
        assert!(list.contains("dam-sync"), "{list}");
        assert!(!list.contains(&secret));
        let tokens = users::list_tokens(&mut db.conn(), &f.tenant_id, None).unwrap();
        let t = tokens.iter().find(|t| t.name == "dam-sync").unwrap();
        assert_eq!(t.user_id, integration);
        let a = post(
            &app,
            &admin,
            &format!("/admin/tokens/{}/revoke", t.id),
            &[],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(
            a.location.as_deref(),
            Some("/admin/tokens?notice=token_revoked")
        );
        let list = get(&app, &admin, "/admin/tokens?notice=token_revoked")
            .await
            .body;
        assert!(list.contains("Revoked"), "{list}");
        assert!(list.contains("The token was revoked."), "{list}");
        let resp = test::call_service(&app, call(secret)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
);

db_test!(
    console_admin_audit_lists_and_verifies,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = admin_app!(st);
        let admin = login(&app, &f, Role::Admin).await;
        let a = get(&app, &admin, "/admin/audit").await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("<code>user.create</code>"), "{}", a.body);
        assert!(
            a.body.contains("<code>session.create</code>") || a.body.contains("login"),
            "{}",
            a.body
        );
        // Filtered and paged.
        let a = get(&app, &admin, "/admin/audit?action=user.create&limit=2").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(
            a.body.matches("<code>user.create</code>").count(),
            2,
            "{}",
            a.body
        );
        assert!(a.body.contains("rel=\"next\""), "{}", a.body);
        let a = get(&app, &admin, "/admin/audit?object_type=tenant").await;
        assert!(a.body.contains("<code>tenant.create</code>"), "{}", a.body);
        assert!(!a.body.contains("<code>user.create</code>"), "{}", a.body);
        let a = get(&app, &admin, "/admin/audit?actor=admin%40acme.test").await;
        assert!(a.body.contains("<code>auth.login</code>"), "{}", a.body);
        assert!(!a.body.contains("<code>user.create</code>"), "{}", a.body);
        let a = get(&app, &admin, "/admin/audit?from=2000-01-01&to=2000-01-02").await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("Nothing here."), "{}", a.body);
        let today = chrono::Utc::now().date_naive();
        let a = get(
            &app,
            &admin,
            &format!("/admin/audit?from={today}&to={today}"),
        )
        .await;
        assert!(a.body.contains("<code>user.create</code>"), "{}", a.body);
        let a = get(&app, &admin, "/admin/audit?to=tomorrow").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.body.contains("to: "), "{}", a.body);
        let a = get(&app, &admin, "/admin/audit?before=x").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.body.contains("before"), "{}", a.body);

        let a = post(&app, &admin, "/admin/audit/verify", &[], true).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(a.body.contains("data-ok=\"true\""), "{}", a.body);
        assert!(a.body.contains("The chain is intact."), "{}", a.body);
    }
);

db_test!(
    console_admin_rematch_starts_and_shows_what_happened,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = admin_app!(st);
        let admin = login(&app, &f, Role::Admin).await;
        let a = get(&app, &admin, "/admin/rematch").await;
        assert!(a.body.contains("No re-matching run yet."), "{}", a.body);
        assert!(a.body.contains("/admin/static/admin.js"), "{}", a.body);
        let a = post(
            &app,
            &admin,
            "/admin/rematch",
            &[
                ("dry_run", "on"),
                ("created_from", "2020-01-01"),
                ("created_to", ""),
            ],
            true,
        )
        .await;
        // The matcher is not running: the run starts all the same (its batches wait for the
        // matcher; a start that fails is shown on the page: the next test).
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(
            a.location.as_deref(),
            Some("/admin/rematch?notice=rematch_started")
        );
        let page = get(&app, &admin, "/admin/rematch?notice=rematch_started").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Re-matching started."), "{}", page.body);
        assert!(
            page.body.contains("data-status=\"running\""),
            "{}",
            page.body
        );
        assert!(page.body.contains("<progress"), "{}", page.body);
        assert!(page.body.contains("data-running=\"true\""), "{}", page.body);
        let start = page.body.find("data-run-id=\"").unwrap() + 13;
        let id = &page.body[start..start + page.body[start..].find('"').unwrap()];
        let a = post(
            &app,
            &admin,
            &format!("/admin/rematch/{id}/cancel"),
            &[],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let page = get(&app, &admin, "/admin/rematch").await.body;
        assert!(page.contains("data-status=\"cancelled\""), "{page}");
        assert!(page.contains("data-running=\"false\""), "{page}");
        // A bad date names the field.
        let a = post(
            &app,
            &admin,
            "/admin/rematch",
            &[("created_from", "yesterday")],
            true,
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.body.contains("created_from"), "{}", a.body);
    }
);

db_test!(
    console_admin_pages_refuse_a_viewer_and_forms_without_csrf,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = admin_app!(st);
        let viewer = login(&app, &f, Role::Viewer).await;
        let overview = get(&app, &viewer, "/admin").await.body;
        for (uri, _) in PAGES {
            assert!(
                !overview.contains(&format!("href=\"{uri}\"")),
                "{uri} in the nav"
            );
            let a = get(&app, &viewer, uri).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri}: {}", a.body);
            assert!(a.body.contains("<!doctype html>"), "{uri}");
        }
        for (uri, pairs) in [
            (
                "/admin/settings",
                &[
                    ("notice_days", "1"),
                    ("age_threshold", "18"),
                    ("non_approved_use", "block"),
                    ("channels", "web"),
                ][..],
            ),
            (
                "/admin/users",
                &[
                    ("email", "v@acme.test"),
                    ("role", "admin"),
                    ("password", "0123456789ab"),
                ][..],
            ),
            ("/admin/tokens", &[("name", "x")][..]),
            ("/admin/roles", &[("viewer", "manage_users")][..]),
            ("/admin/audit/verify", &[][..]),
            ("/admin/rematch", &[("dry_run", "on")][..]),
        ] {
            let a = post(&app, &viewer, uri, pairs, true).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "viewer {uri}: {}", a.body);
        }

        // An admin's forms without the CSRF token (or with another): 403, nothing changed.
        let admin = login(&app, &f, Role::Admin).await;
        let before = settings::get(&mut db.conn(), &f.tenant_id).unwrap();
        let bad = [
            ("notice_days", "1"),
            ("age_threshold", "18"),
            ("non_approved_use", "block"),
            ("channels", "web"),
        ];
        let a = post(&app, &admin, "/admin/settings", &bad, false).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
        let mut forged = vec![("csrf", "forged")];
        forged.extend_from_slice(&bad);
        let a = post(&app, &admin, "/admin/settings", &forged, false).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
        assert_eq!(settings::get(&mut db.conn(), &f.tenant_id).unwrap(), before);
        for uri in [
            "/admin/users",
            "/admin/tokens",
            "/admin/roles",
            "/admin/audit/verify",
            "/admin/rematch",
        ] {
            let a = post(&app, &admin, uri, &[], false).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri}: {}", a.body);
        }
        assert!(
            users::list_tokens(&mut db.conn(), &f.tenant_id, None)
                .unwrap()
                .is_empty()
        );
    }
);

db_test!(
    console_admin_rematch_start_failure_is_shown_on_the_page,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        // The blob store cannot be opened (its directory is a file): the media are not ready.
        let blocked = db.dir().join("not-a-directory");
        std::fs::write(&blocked, b"x").unwrap();
        let mut cfg = Config::default();
        cfg.database.url = db.url.clone();
        cfg.storage.dir = blocked;
        cfg.storage.master_key = Some(KEY.into());
        cfg.matcher.url = "http://127.0.0.1:9".into();
        cfg.server.cookie_secure = false;
        let st = web::Data::new(Deps::new(db.pool.clone(), cfg));
        let app = admin_app!(st);
        let admin = login(&app, &f, Role::Admin).await;
        let a = post(&app, &admin, "/admin/rematch", &[("dry_run", "on")], true).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
        assert!(a.body.contains("<h1>Re-matching</h1>"), "{}", a.body);
        assert!(
            a.body.contains("The run could not be started"),
            "{}",
            a.body
        );
        assert!(a.body.contains("No re-matching run yet."), "{}", a.body);
    }
);

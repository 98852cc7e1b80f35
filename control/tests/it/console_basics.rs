//! The console's frame in process: logging in and out, CSRF on every form, HTML error pages,
//! the overview, the files list (with compliance) and uploading several files at once.

use actix_web::http::{StatusCode, header};
use actix_web::test;
use likeness_control::roles::Role;
use likeness_control_media::testing::data_dir;

use crate::common::console::{body_text, console_login, console_state, multipart};
use crate::common::{PASSWORD, TestDb, fixture};

db_test!(console_login_logout_and_csrf, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let st = console_state(&db);
    let app = console_test_app!(st);

    // Not logged in: every page sends the browser to the login form.
    let resp = test::call_service(&app, test::TestRequest::get().uri("/admin").to_request()).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers().get(header::LOCATION).unwrap(),
        "/admin/login"
    );
    let resp = test::call_service(
        &app,
        test::TestRequest::get().uri("/admin/login").to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = body_text(resp).await;
    assert!(
        html.contains("<label for=\"password\">Password</label>"),
        "{html}"
    );

    // A wrong password: the form again, saying so, with 401.
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/admin/login")
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload("tenant=acme&email=admin%40acme.test&password=wrong-guess")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let html = body_text(resp).await;
    assert!(
        html.contains("Wrong organisation, e-mail or password."),
        "{html}"
    );
    assert!(
        html.contains("value=\"admin@acme.test\""),
        "the e-mail is kept: {html}"
    );

    // A login form posted from another site is refused.
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/admin/login")
            .insert_header((header::ORIGIN, "https://evil.example"))
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(format!(
                "tenant=acme&email=admin%40acme.test&password={PASSWORD}"
            ))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let (cookie, csrf, _) = console_login(&app, &f, Role::Admin).await;
    assert!(!csrf.is_empty());

    // The overview, with the console's security headers.
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/admin")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let csp = resp.headers().get(header::CONTENT_SECURITY_POLICY).unwrap();
    assert!(csp.to_str().unwrap().contains("script-src 'self'"));
    assert_eq!(resp.headers().get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
    let html = body_text(resp).await;
    assert!(html.contains("<h1>Overview</h1>"));
    assert!(html.contains("Files that may not be used"));

    // An unknown console page: an HTML 404, not JSON.
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/admin/no-such-page")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        resp.headers()
            .get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    // Logging out without the CSRF token is refused and leaves the session alive.
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/admin/logout")
            .cookie(cookie.clone())
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload("csrf=forged")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let html = body_text(resp).await;
    assert!(html.contains("CSRF"), "the page names the problem: {html}");
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/admin")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // With the token: logged out, the cookie no longer opens a page.
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/admin/logout")
            .cookie(cookie.clone())
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(format!("csrf={csrf}"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/admin")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
});

db_test!(
    console_upload_many_and_list_files,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = console_state(&db);
        let app = console_test_app!(st);
        let (cookie, csrf, _) = console_login(&app, &f, Role::Editor).await;
        let photo = std::fs::read(data_dir().join("group/deepface_couple.jpg")).unwrap();

        // Without the CSRF part nothing is stored.
        let (ct, body) = multipart(&[("file", Some("couple.jpg"), &photo)]);
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/admin/upload")
                .cookie(cookie.clone())
                .insert_header((header::CONTENT_TYPE, ct))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);

        // Two files in one form: the photo is stored, the corrupt one is refused by name.
        let (ct, body) = multipart(&[
            ("csrf", None, csrf.as_bytes()),
            ("file", Some("couple.jpg"), &photo),
            (
                "file",
                Some("broken.jpg"),
                b"\xff\xd8\xff\xe0 not really a jpeg",
            ),
        ]);
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/admin/upload")
                .cookie(cookie.clone())
                .insert_header((header::CONTENT_TYPE, ct))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let html = body_text(resp).await;
        assert_eq!(html.matches("class=\"badge yes\"").count(), 1, "{html}");
        assert_eq!(html.matches("class=\"badge no\"").count(), 1, "{html}");
        assert!(html.contains("broken.jpg"), "{html}");
        assert!(html.contains("faces are being detected"), "{html}");

        // The same photo again, as upload.js sends it (one file, X-Requested-With): the list item
        // alone, flagging the duplicate.
        let (ct, body) = multipart(&[
            ("csrf", None, csrf.as_bytes()),
            ("file", Some("couple-again.jpg"), &photo),
        ]);
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/admin/upload")
                .cookie(cookie.clone())
                .insert_header(("x-requested-with", "fetch"))
                .insert_header((header::CONTENT_TYPE, ct))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let html = body_text(resp).await;
        assert!(
            html.trim_start().starts_with("<li class=\"upload-item\">"),
            "{html}"
        );
        assert!(html.contains("the same file as"), "{html}");
        assert!(html.contains("couple.jpg"), "{html}");

        // The list shows both files with their standing: no legal basis yet.
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/admin/files")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let html = body_text(resp).await;
        assert!(html.contains("2 files"), "{html}");
        assert_eq!(
            html.matches("badge status-no_legal_basis").count(),
            2,
            "{html}"
        );
        assert!(html.contains("couple-again.jpg"));

        // Search by name.
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/admin/files?q=again")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        let html = body_text(resp).await;
        assert!(html.contains("1 files"), "{html}");

        // By compliance status, as the overview links it.
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/admin/files?status=no_legal_basis")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let html = body_text(resp).await;
        assert_eq!(
            html.matches("<td><span class=\"badge status-no_legal_basis\">")
                .count(),
            2,
            "{html}"
        );
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/admin/files?status=bogus")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(body_text(resp).await.contains("bogus"));

        // The overview counts them under their reason.
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/admin")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        let html = body_text(resp).await;
        assert!(
            html.contains("href=\"/admin/files?status=no_legal_basis\""),
            "{html}"
        );

        // A viewer sees no upload link and cannot upload.
        let (viewer, viewer_csrf, _) = console_login(&app, &f, Role::Viewer).await;
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/admin/files")
                .cookie(viewer.clone())
                .to_request(),
        )
        .await;
        let html = body_text(resp).await;
        assert!(!html.contains("href=\"/admin/upload\""), "{html}");
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/admin/upload")
                .cookie(viewer.clone())
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let (ct, body) = multipart(&[
            ("csrf", None, viewer_csrf.as_bytes()),
            ("file", Some("x.jpg"), &photo),
        ]);
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/admin/upload")
                .cookie(viewer)
                .insert_header((header::CONTENT_TYPE, ct))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
);

db_test!(
    files_browse_by_keyset_in_every_order,
    |db: TestDb| async move {
        use diesel::prelude::*;
        use likeness_control::schema::assets;
        use likeness_control::service::assets::{AssetFilter, BrowseOrder, browse};

        let f = fixture(&db, "acme");
        // Seven files; four share one upload time (ties are broken by ID), sizes and names mixed.
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let mut conn = db.conn();
        let specs = [
            ("b.jpg", 30, 0),
            ("a.jpg", 10, 0),
            ("d.jpg", 10, 0),
            ("c.jpg", 70, 0),
            ("g.jpg", 50, 60),
            ("e.jpg", 20, 120),
            ("f.jpg", 20, 180),
        ];
        for (i, (name, size, secs)) in specs.iter().enumerate() {
            let id = format!("asset-{i}");
            let at = t0 + chrono::TimeDelta::seconds(*secs);
            diesel::insert_into(assets::table)
                .values((
                    assets::id.eq(&id),
                    assets::tenant_id.eq(&f.tenant_id),
                    assets::kind.eq("image"),
                    assets::filename.eq(*name),
                    assets::mime.eq("image/jpeg"),
                    assets::size_bytes.eq(i64::from(*size)),
                    assets::sha256.eq(format!("{i:0>64}")),
                    assets::blob_key.eq(format!("k-{id}")),
                    assets::metadata_json.eq("{}"),
                    assets::current_version.eq(1),
                    assets::created_at.eq(at),
                    assets::updated_at.eq(at),
                ))
                .execute(&mut conn)
                .unwrap();
        }
        let walk = |conn: &mut likeness_control::service::DbConn, order: BrowseOrder| {
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = browse(
                    conn,
                    &f.tenant_id,
                    &AssetFilter::default(),
                    order,
                    after.as_deref(),
                    3,
                )
                .unwrap();
                assert_eq!(page.total, 7);
                assert!(page.items.len() <= 3);
                seen.extend(page.items.iter().map(|a| a.filename.clone()));
                match page.next_after {
                    Some(a) => after = Some(a),
                    None => break,
                }
            }
            seen.join(",")
        };
        assert_eq!(
            walk(&mut conn, BrowseOrder::Name),
            "a.jpg,b.jpg,c.jpg,d.jpg,e.jpg,f.jpg,g.jpg"
        );
        // Same time: by ID (asset-0..3 are b, a, d, c).
        assert_eq!(
            walk(&mut conn, BrowseOrder::Oldest),
            "b.jpg,a.jpg,d.jpg,c.jpg,g.jpg,e.jpg,f.jpg"
        );
        assert_eq!(
            walk(&mut conn, BrowseOrder::Newest),
            "f.jpg,e.jpg,g.jpg,c.jpg,d.jpg,a.jpg,b.jpg"
        );
        // Same size: by ID descending (a is asset-1, d asset-2; e asset-5, f asset-6).
        assert_eq!(
            walk(&mut conn, BrowseOrder::Largest),
            "c.jpg,g.jpg,b.jpg,f.jpg,e.jpg,d.jpg,a.jpg"
        );
        // A cursor that is not a file of the tenant is refused by name.
        let err = browse(
            &mut conn,
            &f.tenant_id,
            &AssetFilter::default(),
            BrowseOrder::Newest,
            Some("nope"),
            3,
        )
        .unwrap_err();
        assert!(err.to_string().contains("after"), "{err}");
    }
);

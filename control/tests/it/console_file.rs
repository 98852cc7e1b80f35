//! A file's console page in process, on SQLite and PostgreSQL: the image with one labelled box
//! per face, the faces' decisions posting back to the page, drawing a face, the legal basis
//! form changing the compliance per channel, the audit trail for who may read it; a viewer sees
//! the page without the forms and may not post them; the thumbnail and image routes.

use actix_web::http::{StatusCode, header};
use actix_web::test;
use likeness_control::roles::Role;
use likeness_control_media::testing::data_dir;

use crate::common::{TestDb, fixture};
use crate::console_review::{
    asset, body_text, console_app, face_state, get, login, merge, person, post, state, suggestion,
};

db_test!(
    file_page_boxes_faces_basis_compliance,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let t = f.tenant_id.clone();
        let st = state(&db);
        let app = console_app!(st);
        let anna = person(&db, &t, "Anna Andersson");
        let a = asset(&db, &t, "party.jpg");
        let face = merge(
            &db,
            &t,
            &a,
            &suggestion([100.0, 120.0, 200.0, 260.0], &[&anna]),
            likeness_control::db::now(),
        )
        .remove(0);

        let (cookie, csrf) = login(&app, &f, Role::Admin).await;
        let page = format!("/admin/files/{a}");
        let (status, html) = get(&app, &cookie, &page).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("<h1>party.jpg</h1>"), "{html}");
        assert!(
            html.contains("<svg class=\"boxes\" viewBox=\"0 0 1000 800\""),
            "{html}"
        );
        assert!(
            html.contains(&format!(
                "<g class=\"face\" data-face-id=\"{face}\" data-status=\"suggested\">"
            )),
            "{html}"
        );
        assert!(
            html.contains("<rect x=\"100\" y=\"120\" width=\"100\" height=\"140\"/>"),
            "{html}"
        );
        assert!(html.contains(">Anna Andersson?</text>"), "{html}");
        // The admin may use unapproved files: the full image.
        assert!(
            html.contains(&format!("src=\"/admin/files/{a}/image?v=1\"")),
            "{html}"
        );
        // Compliance: no legal basis, not allowed on any channel.
        assert!(html.contains("<th scope=\"col\">Allowed</th>"), "{html}");
        for ch in ["web", "print", "social", "internal"] {
            assert!(
                html.contains(&format!("<th scope=\"row\">{ch}</th>")),
                "{ch}: {html}"
            );
        }
        assert!(html.contains("badge no"), "{html}");
        assert!(!html.contains("badge yes"), "{html}");
        assert!(html.contains("No legal basis"), "{html}");
        // The forms, labelled.
        for s in [
            "<label for=\"basis\">Legal basis</label>",
            "Draw a face",
            "<label for=\"draw-x1\">",
            &format!("<label for=\"link-{face}\">Person</label>"),
            "Approve",
            "Reject",
            "Audit trail",
        ] {
            assert!(html.contains(s), "{s}: {html}");
        }

        // A legal basis that covers whoever is shown: allowed everywhere.
        let (status, loc, body) = post(
            &app,
            &cookie,
            &format!("/admin/files/{a}/legal-basis"),
            &format!("csrf={csrf}&legal_basis=exempt_historical&note=Archive+1952"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(loc, format!("/admin/files/{a}?notice=saved"));
        let (_, html) = get(&app, &cookie, &loc).await;
        assert!(
            html.contains("<p class=\"notice\" role=\"status\">Saved.</p>"),
            "{html}"
        );
        assert!(
            html.contains("value=\"exempt_historical\" selected"),
            "{html}"
        );
        assert!(html.contains("Archive 1952"), "{html}");
        assert!(html.contains("badge yes"), "{html}");
        assert!(!html.contains("badge no"), "{html}");
        // ... and the audit trail says who set it.
        assert!(html.contains("<code>asset.legal_basis</code>"), "{html}");

        // Consent as the basis: the unlinked identifiable face blocks it again.
        let (status, _, _) = post(
            &app,
            &cookie,
            &format!("/admin/files/{a}/legal-basis"),
            &format!("csrf={csrf}&legal_basis=consent"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, html) = get(&app, &cookie, &page).await;
        assert!(html.contains("badge no"), "{html}");
        assert!(html.contains("value=\"consent\" selected"), "{html}");
        // Reasons name the face by its number on the page, not its ID.
        assert!(html.contains("face #1 is identifiable"), "{html}");
        assert!(!html.contains(&format!("face {face} is")), "{html}");

        // A bad basis: 400 naming it; without CSRF: 403.
        let (status, _, body) = post(
            &app,
            &cookie,
            &format!("/admin/files/{a}/legal-basis"),
            &format!("csrf={csrf}&legal_basis=because"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("legal_basis"), "{body}");
        let (status, _, _) = post(
            &app,
            &cookie,
            &format!("/admin/files/{a}/legal-basis"),
            "legal_basis=contract",
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // Approve the suggestion from the file page: back to the page, labelled with the name.
        let (status, loc, _) = post(
            &app,
            &cookie,
            &format!("/admin/faces/{face}/approve"),
            &format!("csrf={csrf}&person_id={anna}&back=%2Fadmin%2Ffiles%2F{a}"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(loc, format!("/admin/files/{a}?notice=saved"));
        let (_, html) = get(&app, &cookie, &page).await;
        assert!(
            html.contains(&format!(
                "data-face-id=\"{face}\" data-status=\"confirmed\">"
            )),
            "{html}"
        );
        assert!(html.contains(">Anna Andersson</text>"), "{html}");
        assert!(html.contains("Unlink"), "{html}");

        // Draw a face by hand; bad numbers are a 400 naming the field.
        let (status, _, body) = post(
            &app,
            &cookie,
            &format!("/admin/files/{a}/faces"),
            &format!("csrf={csrf}&x1=600&y1=100&x2=700&y2=abc"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("y2"), "{body}");
        let (status, _, body) = post(
            &app,
            &cookie,
            &format!("/admin/files/{a}/faces"),
            &format!("csrf={csrf}&x1=600&y1=100&x2=1700&y2=200"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("box"), "{body}");
        let (status, _, body) = post(
            &app,
            &cookie,
            &format!("/admin/files/{a}/faces"),
            &format!("csrf={csrf}&x1=600&y1=100&x2=700.5&y2=230"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let (_, html) = get(&app, &cookie, &page).await;
        assert_eq!(html.matches("<g class=\"face\"").count(), 2, "{html}");
        assert!(
            html.contains("<rect x=\"600\" y=\"100\" width=\"100.5\" height=\"130\"/>"),
            "{html}"
        );
        assert!(html.contains("Delete face"), "{html}");
        assert!(html.contains("<code>face.create</code>"), "{html}");

        // A viewer: the page, the boxes and the compliance, none of the forms; posting is refused.
        let (vcookie, vcsrf) = login(&app, &f, Role::Viewer).await;
        let (status, html) = get(&app, &vcookie, &page).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("<svg class=\"boxes\""), "{html}");
        assert!(html.contains("<th scope=\"col\">Allowed</th>"), "{html}");
        for s in [
            "Approve",
            "Reject",
            "Unlink",
            "name=\"legal_basis\"",
            "Draw a face",
            "Audit trail",
        ] {
            assert!(!html.contains(s), "a viewer sees {s}: {html}");
        }
        // No names for a viewer: the label is the pseudonym.
        assert!(!html.contains("Anna Andersson"), "{html}");
        // A viewer may not use the unapproved file: the thumbnail is shown instead.
        assert!(
            html.contains(&format!("src=\"/admin/files/{a}/thumbnail\"")),
            "{html}"
        );
        let (status, _, _) = post(
            &app,
            &vcookie,
            &format!("/admin/files/{a}/legal-basis"),
            &format!("csrf={vcsrf}&legal_basis=contract"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = post(
            &app,
            &vcookie,
            &format!("/admin/faces/{face}/unlink"),
            &format!("csrf={vcsrf}"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(face_state(&db, &face).0, "confirmed");

        // Another tenant's file: 404.
        let (status, _) = get(&app, &cookie, "/admin/files/no-such-file").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
);

db_test!(file_page_thumbnail_and_image, |db: TestDb| async move {
    let f = fixture(&db, "acme");
    let st = state(&db);
    let app = console_app!(st);
    let (cookie, csrf) = login(&app, &f, Role::Admin).await;
    let photo = std::fs::read(data_dir().join("group/deepface_couple.jpg")).unwrap();
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/api/v1/assets?filename=couple.jpg")
            .cookie(cookie.clone())
            .insert_header(("X-CSRF-Token", csrf.clone()))
            .insert_header((header::CONTENT_TYPE, "image/jpeg"))
            .set_payload(photo.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
    let id = v["asset"]["id"].as_str().unwrap().to_string();

    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/admin/files/{id}/thumbnail"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get(header::CONTENT_TYPE).unwrap(),
        "image/jpeg"
    );
    let thumb = test::read_body(resp).await;
    assert!(thumb.starts_with(&[0xff, 0xd8]) && thumb.len() < photo.len());

    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/admin/files/{id}/image?v=1"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get(header::CONTENT_TYPE).unwrap(),
        "image/jpeg"
    );
    assert_eq!(test::read_body(resp).await.as_ref(), photo.as_slice());

    // A new version through the page's multipart form (CSRF in a text part).
    let boundary = "console-file-version-7f3a";
    let mut body = Vec::new();
    let mut part = |name: &str, filename: Option<&str>, bytes: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let head = match filename {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/jpeg\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    };
    part("csrf", None, csrf.as_bytes());
    part("file", Some("couple-v2.jpg"), &photo);
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri(&format!("/admin/files/{id}/versions"))
            .cookie(cookie.clone())
            .insert_header((
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            ))
            .set_payload(body)
            .to_request(),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{}",
        body_text(resp).await
    );
    let (_, html) = get(&app, &cookie, &format!("/admin/files/{id}")).await;
    assert!(
        html.contains(&format!("src=\"/admin/files/{id}/image?v=2\"")),
        "{html}"
    );
    assert!(html.contains("<label for=\"version-file\">"), "{html}");
    // The audit trail shows changes; views and downloads on request.
    assert!(html.contains("<code>asset.new_version</code>"), "{html}");
    assert!(!html.contains("<code>asset.download</code>"), "{html}");
    let (_, html) = get(&app, &cookie, &format!("/admin/files/{id}?reads=1")).await;
    assert!(html.contains("<code>asset.download</code>"), "{html}");

    // An editor may not use a file that is not approved (the tenant's default policy): 403,
    // and their file page shows the thumbnail with a note.
    let (ecookie, _) = login(&app, &f, Role::Editor).await;
    let (status, _) = get(&app, &ecookie, &format!("/admin/files/{id}/image")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, html) = get(&app, &ecookie, &format!("/admin/files/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!("src=\"/admin/files/{id}/thumbnail\"")),
        "{html}"
    );
    assert!(html.contains("Only a preview is shown"), "{html}");
    // Near duplicates on request.
    let (status, html) = get(&app, &ecookie, &format!("/admin/files/{id}?near=1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No similar file."), "{html}");
});

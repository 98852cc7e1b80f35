//! The console's digital-signing pages in process, on SQLite and PostgreSQL: templates (list,
//! new with a preview, edit in place before sending, a new version after sending, a version
//! read-only, archive), asking for consent from a person's page and in bulk from the register,
//! the requests (list by status, a request with its messages, resend, revoke) and the outbox;
//! roles without the permission neither see the entries nor can use the pages (403), forms
//! without the CSRF token are refused, bad input gives a 400 page naming the field.

use actix_web::http::StatusCode;
use actix_web::web;
use diesel::prelude::*;
use likeness_control::Deps;
use likeness_control::config::Config;
use likeness_control::db;
use likeness_control::roles::Role;
use likeness_control::schema::persons;

use crate::common::console::{KEY, console_login, get, post};
use crate::common::{TestDb, fixture};

/// State with a blob store, an evidence key in the test's directory and an SMTP address where
/// nothing listens (messages stay in the outbox: no job worker runs here).
fn state(db: &TestDb) -> web::Data<Deps> {
    let mut cfg = Config::default();
    cfg.database.url = db.url.clone();
    cfg.storage.dir = db.dir().join("blobs");
    cfg.storage.master_key = Some(KEY.into());
    cfg.matcher.url = "http://127.0.0.1:9".into();
    cfg.server.cookie_secure = false;
    cfg.signing.key_file = db.dir().join("evidence.key");
    cfg.signing.public_base_url = "http://127.0.0.1:9".into();
    web::Data::new(Deps::new(db.pool.clone(), cfg))
}

fn add_person(
    db: &TestDb,
    tenant: &str,
    name: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> String {
    let id = db::new_id();
    let now = db::now();
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&id),
            persons::tenant_id.eq(tenant),
            persons::name.eq(name),
            persons::pseudonym.eq(format!("P-{}", &id[id.len() - 8..]).to_uppercase()),
            persons::email.eq(email),
            persons::phone.eq(phone),
            persons::never_publish.eq(false),
            persons::custom_fields_json.eq("{}"),
            persons::created_at.eq(now),
            persons::updated_at.eq(now),
        ))
        .execute(&mut db.conn())
        .unwrap();
    id
}

/// `application/x-www-form-urlencoded` of pairs.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                k,
                v.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                            char::from(b).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The template form's fields: offered channels web and print (web mandatory).
fn template_fields<'a>(csrf: &'a str, name: &'a str, title: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("title", title),
        ("language", "en"),
        (
            "body_markdown",
            "# Photos\n\nWe may use **your picture**. <script>x</script>",
        ),
        ("scope_channel", "web"),
        ("scope_label", "Our website"),
        ("scope_channel", "print"),
        ("scope_label", ""),
        ("scope_channel", "social"),
        ("scope_label", ""),
        ("scope_channel", "internal"),
        ("scope_label", ""),
        ("offered", "web"),
        ("offered", "print"),
        ("mandatory", "web"),
        (
            "face_matching_text",
            "You allow us to recognise your face in our archive.",
        ),
        ("validity_days", "365"),
        ("legal_character", "gdpr_consent"),
        ("after_signing_text", "Thank you."),
    ]
}

/// The `data-<attr>="..."` values of a page, in order.
fn data_values(html: &str, attr: &str) -> Vec<String> {
    let key = format!("data-{attr}=\"");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&key) {
        rest = &rest[i + key.len()..];
        let e = rest.find('"').unwrap();
        out.push(rest[..e].to_string());
        rest = &rest[e..];
    }
    out
}

/// Creates a template through the form; returns its ID.
async fn create_template<S, B>(
    app: &S,
    cookie: &actix_web::cookie::Cookie<'static>,
    csrf: &str,
    name: &str,
) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (st, loc, body) = post(
        app,
        cookie,
        "/admin/templates",
        &form(&template_fields(csrf, name, "Photo consent")),
    )
    .await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    assert!(loc.ends_with("?notice=template_created"), "{loc}");
    loc.trim_start_matches("/admin/templates/")
        .trim_end_matches("?notice=template_created")
        .to_string()
}

db_test!(
    console_signing_pages_render_for_admin_and_are_refused_to_viewer,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = console_test_app!(st);
        let (admin, csrf, overview) = console_login(&app, &f, Role::Admin).await;
        for href in ["/admin/templates", "/admin/requests", "/admin/outbox"] {
            assert!(overview.contains(&format!("href=\"{href}\"")), "{href}");
        }
        for (uri, h1) in [
            ("/admin/templates", "<h1>Agreement templates</h1>"),
            ("/admin/templates/new", "<h1>New agreement template</h1>"),
            ("/admin/requests", "<h1>Signing requests</h1>"),
            ("/admin/outbox", "<h1>Outbox</h1>"),
        ] {
            let (s, html) = get(&app, &admin, uri).await;
            assert_eq!(s, StatusCode::OK, "{uri}: {html}");
            assert!(html.contains(h1), "{uri}");
            assert!(!html.contains("<script>"), "{uri}: no inline script");
        }
        // The new-template form offers a row per tenant channel and the face-matching scope
        // apart from them.
        let (_, html) = get(&app, &admin, "/admin/templates/new").await;
        for ch in ["web", "print", "social", "internal"] {
            assert!(html.contains(&format!("name=\"scope_channel\" value=\"{ch}\"")));
        }
        assert!(html.contains("name=\"face_matching_text\""));
        assert!(html.contains("GDPR Art. 9"));

        let (viewer, viewer_csrf, overview) = console_login(&app, &f, Role::Viewer).await;
        assert!(!overview.contains("href=\"/admin/templates\""));
        assert!(!overview.contains("href=\"/admin/outbox\""));
        for uri in [
            "/admin/templates",
            "/admin/templates/new",
            "/admin/requests",
            "/admin/outbox",
        ] {
            let (s, _) = get(&app, &viewer, uri).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{uri}");
        }
        let (s, _, _) = post(
            &app,
            &viewer,
            "/admin/templates",
            &form(&template_fields(&viewer_csrf, "x", "y")),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // An editor sees persons but may not ask for consent or write templates.
        let (editor, editor_csrf, overview) = console_login(&app, &f, Role::Editor).await;
        assert!(!overview.contains("href=\"/admin/templates\""));
        let (s, _, _) = post(
            &app,
            &editor,
            "/admin/templates",
            &form(&template_fields(&editor_csrf, "x", "y")),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = get(&app, &editor, "/admin/outbox").await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // No CSRF token: refused before anything is done.
        let mut fields = template_fields("wrong", "No token", "t");
        fields.remove(0);
        let (s, _, _) = post(&app, &admin, "/admin/templates", &form(&fields)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (_, html) = get(&app, &admin, "/admin/templates").await;
        assert!(!html.contains("No token"));

        // Bad input names the field.
        let mut fields = template_fields(&csrf, "Bad", "t");
        for p in fields.iter_mut() {
            if p.0 == "validity_days" {
                p.1 = "soon";
            }
        }
        let (s, _, body) = post(&app, &admin, "/admin/templates", &form(&fields)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(body.contains("validity_days"), "{body}");
    }
);

db_test!(
    console_signing_template_create_preview_edit_and_new_version_after_send,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = console_test_app!(st);
        let (admin, csrf, _) = console_login(&app, &f, Role::Admin).await;

        // A preview renders the Markdown safely and saves nothing.
        let mut fields = template_fields(&csrf, "Preview only", "t");
        fields.push(("action", "preview"));
        let (s, _, html) = post(&app, &admin, "/admin/templates", &form(&fields)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("<strong>your picture</strong>"), "{html}");
        assert!(!html.contains("<script>x</script>"));
        let (_, list) = get(&app, &admin, "/admin/templates").await;
        assert!(!list.contains("Preview only"));

        let id = create_template(&app, &admin, &csrf, "Event photos").await;
        let (s, html) = get(
            &app,
            &admin,
            &format!("/admin/templates/{id}?notice=template_created"),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("Template created."));
        assert!(html.contains("<strong>your picture</strong>"));
        assert!(html.contains("value=\"Our website\""));
        assert_eq!(data_values(&html, "version"), ["1"]);
        let (_, list) = get(&app, &admin, "/admin/templates").await;
        assert!(list.contains("Event photos"));

        // Not sent yet: edited in place.
        let fields = template_fields(&csrf, "Event photos", "Photo consent, edited");
        let (s, loc, _) = post(
            &app,
            &admin,
            &format!("/admin/templates/{id}"),
            &form(&fields),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(loc, format!("/admin/templates/{id}?notice=saved"));
        let (_, html) = get(&app, &admin, &format!("/admin/templates/{id}")).await;
        assert_eq!(data_values(&html, "version"), ["1"]);
        assert!(html.contains("Photo consent, edited"));

        // Sent from a person's page: the version becomes immutable.
        let p = add_person(
            &db,
            &f.tenant_id,
            "Ann Signer",
            Some("ann@example.org"),
            None,
        );
        let (_, html) = get(&app, &admin, &format!("/admin/persons/{p}")).await;
        assert!(html.contains("Ask for consent"));
        assert!(html.contains(&format!("<option value=\"{id}\">")));
        assert!(html.contains("ann@example.org"));
        let (s, loc, body) = post(
            &app,
            &admin,
            &format!("/admin/persons/{p}/request"),
            &form(&[("csrf", &csrf), ("template_id", &id), ("channel", "email")]),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(
            loc,
            format!("/admin/persons/{p}?notice=request_sent#signing-requests")
        );
        let (_, html) = get(&app, &admin, &format!("/admin/persons/{p}")).await;
        assert_eq!(data_values(&html, "status"), ["sent"]);

        // Editing now makes version 2; version 1 stays as sent.
        let (_, html) = get(&app, &admin, &format!("/admin/templates/{id}")).await;
        assert!(html.contains("saving creates a new version"));
        let fields = template_fields(&csrf, "Event photos", "Photo consent v2");
        let (s, loc, _) = post(
            &app,
            &admin,
            &format!("/admin/templates/{id}"),
            &form(&fields),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(loc, format!("/admin/templates/{id}?new_version=2"));
        let (_, html) = get(&app, &admin, &loc).await;
        assert!(html.contains("a new version was created"), "{html}");
        assert!(html.contains("Version 2</strong>"));
        assert_eq!(data_values(&html, "version"), ["2", "1"]);
        let (s, v1) = get(&app, &admin, &format!("/admin/templates/{id}/versions/1")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(v1.contains("Photo consent, edited"));
        assert!(!v1.contains("Photo consent v2"));
        assert!(!v1.contains("name=\"body_markdown\""), "read-only");
        let (s, _) = get(&app, &admin, &format!("/admin/templates/{id}/versions/9")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Archive: gone from the list (shown with ?archived=1) and from the person's form.
        let (s, loc, _) = post(
            &app,
            &admin,
            &format!("/admin/templates/{id}/archive"),
            &form(&[("csrf", &csrf)]),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(loc, "/admin/templates?notice=template_archived");
        let (_, list) = get(&app, &admin, "/admin/templates").await;
        assert!(!list.contains("Event photos"));
        let (_, list) = get(&app, &admin, "/admin/templates?archived=1").await;
        assert!(list.contains("Event photos"));
        let (_, html) = get(&app, &admin, &format!("/admin/persons/{p}")).await;
        assert!(!html.contains(&format!("<option value=\"{id}\">")));
    }
);

db_test!(
    console_signing_bulk_send_list_request_page_resend_revoke_outbox,
    |db: TestDb| async move {
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = console_test_app!(st);
        let (admin, csrf, _) = console_login(&app, &f, Role::Admin).await;
        let id = create_template(&app, &admin, &csrf, "Team photos").await;
        let a = add_person(
            &db,
            &f.tenant_id,
            "Anna Mail",
            Some("anna@example.org"),
            None,
        );
        let b = add_person(&db, &f.tenant_id, "Bert Phone", None, Some("+46701234567"));
        let c = add_person(&db, &f.tenant_id, "Cleo Nocontact", None, None);

        // The register offers the bulk form with a checkbox per person.
        let (_, reg) = get(&app, &admin, "/admin/persons").await;
        assert!(reg.contains("id=\"bulk-ask\""));
        assert!(reg.contains(&format!(
            "form=\"bulk-ask\" name=\"person_ids\" value=\"{a}\""
        )));

        // Nobody selected: a 400 page naming the field.
        let (s, _, body) = post(
            &app,
            &admin,
            "/admin/requests",
            &form(&[("csrf", &csrf), ("template_id", &id)]),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(body.contains("person_ids"));

        // Two who can be reached: sent, then the list.
        let (s, loc, body) = post(
            &app,
            &admin,
            "/admin/requests",
            &form(&[
                ("csrf", &csrf),
                ("person_ids", &a),
                ("person_ids", &b),
                ("template_id", &id),
            ]),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(loc, "/admin/requests?notice=requests_sent");
        let (s, list) = get(&app, &admin, &loc).await;
        assert_eq!(s, StatusCode::OK);
        assert!(list.contains("Requests sent."));
        assert!(list.contains("Anna Mail") && list.contains("Bert Phone"));
        assert!(list.contains("SMS") && list.contains("E-mail"));
        assert!(
            !list.contains("anna@example.org"),
            "destinations are masked"
        );
        let ids = data_values(&list, "request-id");
        assert_eq!(ids.len(), 2);

        // One who cannot: the result page names who was not sent and why.
        let (s, _, page) = post(
            &app,
            &admin,
            "/admin/requests",
            &form(&[
                ("csrf", &csrf),
                ("person_ids", &a),
                ("person_ids", &c),
                ("template_id", &id),
            ]),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("Not sent"));
        assert!(page.contains(&format!("data-person-id=\"{c}\"")));

        // A request's page: details, its message waiting in the outbox, resend and revoke.
        let r = &ids[0];
        let (s, html) = get(&app, &admin, &format!("/admin/requests/{r}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("Signing request"));
        assert!(!data_values(&html, "message-id").is_empty(), "{html}");
        let (s, loc, body) = post(
            &app,
            &admin,
            &format!("/admin/requests/{r}/resend"),
            &form(&[("csrf", &csrf)]),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(loc, format!("/admin/requests/{r}?notice=request_resent"));
        let (s, loc, body) = post(
            &app,
            &admin,
            &format!("/admin/requests/{r}/revoke"),
            &form(&[("csrf", &csrf), ("reason", "asked by phone")]),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
        let (_, html) = get(&app, &admin, &loc).await;
        assert!(html.contains("Request revoked"));
        assert!(html.contains("asked by phone"));
        assert!(!html.contains("/revoke\""), "no revoke form once revoked");
        let (_, revoked) = get(&app, &admin, "/admin/requests?status=revoked").await;
        assert_eq!(data_values(&revoked, "request-id"), std::slice::from_ref(r));
        let (_, sent) = get(&app, &admin, "/admin/requests?status=sent").await;
        assert!(!data_values(&sent, "request-id").contains(r));
        let (s, _) = get(&app, &admin, "/admin/requests?status=bogus").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        // The outbox lists the waiting messages (no worker runs here).
        let (s, html) = get(&app, &admin, "/admin/outbox").await;
        assert_eq!(s, StatusCode::OK);
        assert!(!data_values(&html, "message-id").is_empty());

        // An editor can't send requests: no form on the person page or the register, and
        // the posts are refused.
        let (editor, editor_csrf, _) = console_login(&app, &f, Role::Editor).await;
        let (s, html) = get(&app, &editor, &format!("/admin/persons/{a}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(!html.contains("ask-consent"));
        assert!(!html.contains("/request\""));
        let (_, reg) = get(&app, &editor, "/admin/persons").await;
        assert!(!reg.contains("bulk-ask"));
        let (s, _, _) = post(
            &app,
            &editor,
            "/admin/requests",
            &form(&[
                ("csrf", &editor_csrf),
                ("person_ids", &a),
                ("template_id", &id),
            ]),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) = post(
            &app,
            &editor,
            &format!("/admin/persons/{a}/request"),
            &form(&[("csrf", &editor_csrf), ("template_id", &id)]),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);

db_test!(
    console_signing_renewal_of_an_ending_consent_from_the_person_page,
    |db: TestDb| async move {
        use likeness_control::schema::agreements;
        let f = fixture(&db, "acme");
        let st = state(&db);
        let app = console_test_app!(st);
        let (admin, csrf, _) = console_login(&app, &f, Role::Admin).await;
        let id = create_template(&app, &admin, &csrf, "Renewal photos").await;
        let p = add_person(
            &db,
            &f.tenant_id,
            "Rita Renew",
            Some("rita@example.org"),
            None,
        );
        let agreement = db::new_id();
        let now = db::now();
        diesel::insert_into(agreements::table)
            .values((
                agreements::id.eq(&agreement),
                agreements::tenant_id.eq(&f.tenant_id),
                agreements::person_id.eq(&p),
                agreements::channels_json.eq(r#"["web"]"#),
                agreements::valid_from.eq(now.date() - chrono::TimeDelta::days(300)),
                agreements::valid_until.eq(Some(now.date() + chrono::TimeDelta::days(10))),
                agreements::source.eq("paper_scan"),
                agreements::covers_face_matching.eq(false),
                agreements::signed_by_guardian.eq(false),
                agreements::created_at.eq(now),
            ))
            .execute(&mut db.conn())
            .unwrap();

        // The ending consent offers a renewal request next to it.
        let (_, html) = get(&app, &admin, &format!("/admin/persons/{p}")).await;
        assert!(html.contains("data-state=\"expiring\""));
        assert!(html.contains(&format!(
            "name=\"renews_agreement_id\" value=\"{agreement}\""
        )));
        let (s, loc, body) = post(
            &app,
            &admin,
            &format!("/admin/persons/{p}/request"),
            &form(&[
                ("csrf", &csrf),
                ("template_id", &id),
                ("purpose", "renewal"),
                ("renews_agreement_id", &agreement),
            ]),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
        assert!(loc.contains("notice=request_sent"));
        let (_, list) = get(&app, &admin, &format!("/admin/requests?person={p}")).await;
        assert_eq!(data_values(&list, "request-id").len(), 1);
        assert!(list.contains("Renewal"), "{list}");

        // Without the CSRF token nothing is sent; an unknown purpose is a 400 naming it.
        let (s, _, _) = post(
            &app,
            &admin,
            &format!("/admin/persons/{p}/request"),
            &form(&[("template_id", &id)]),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, body) = post(
            &app,
            &admin,
            &format!("/admin/persons/{p}/request"),
            &form(&[("csrf", &csrf), ("template_id", &id), ("purpose", "later")]),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(body.contains("purpose"));
        let (_, list) = get(&app, &admin, &format!("/admin/requests?person={p}")).await;
        assert_eq!(data_values(&list, "request-id").len(), 1);
    }
);

//! `/admin/webhooks`: the tenant's webhook endpoints (list and create), a page per endpoint
//! (change, enable or disable, rotate or show the secret, send a test event, delete, and the
//! delivery log with a Redeliver button per delivery), and a page per delivery (its attempts
//! and the body sent). Everything needs `manage_settings` (the services check it).

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::service::pagination::Paginated;
use crate::service::webhooks::{
    self, DeliveryDetail, DeliveryOut, DeliveryQuery, DeliveryStatus, EndpointInput, EndpointOut,
    EndpointPatch, EndpointWithSecret,
};

use super::super::{Button, ConsoleUser, Layout, Result, State, done, parse_form, render};

/// Every event type an endpoint can subscribe to.
fn kinds() -> &'static [&'static str] {
    crate::service::events::KINDS
}

fn status_label(l: &Layout, s: DeliveryStatus) -> &'static str {
    let w = &l.t.webhooks;
    match s {
        DeliveryStatus::Pending => w.status_pending,
        DeliveryStatus::Sending => w.status_sending,
        DeliveryStatus::Delivered => w.status_delivered,
        DeliveryStatus::Dead => w.status_dead,
    }
}

fn opt(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

// ---- the list ----

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct ListPage {
    l: Layout,
    endpoints: Vec<EndpointOut>,
    kinds: &'static [&'static str],
}

async fn list_page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let endpoints = webhooks::list_endpoints(&ctx).await?;
    render(&ListPage {
        l: Layout::new(&req, &user, &ctx, "webhooks"),
        endpoints,
        kinds: kinds(),
    })
}

#[derive(Deserialize)]
struct EndpointForm {
    url: String,
    description: Option<String>,
    #[serde(default)]
    event_types: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/webhooks_secret.html")]
struct SecretPage {
    l: Layout,
    e: EndpointWithSecret,
}

/// The page that shows a secret (never cached).
fn secret_page(l: Layout, e: EndpointWithSecret) -> Result<HttpResponse> {
    let mut res = render(&SecretPage { l, e })?;
    res.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

async fn create(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: EndpointForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let created = webhooks::create_endpoint(
        &ctx,
        EndpointInput {
            url: form.url,
            description: opt(form.description),
            event_types: Some(form.event_types),
            enabled: Some(true),
        },
    )
    .await?;
    secret_page(Layout::new(&req, &user, &ctx, "webhooks"), created)
}

// ---- an endpoint ----

#[derive(Deserialize)]
struct LogQuery {
    page: Option<i64>,
    status: Option<String>,
}

#[derive(Template)]
#[template(path = "console/webhooks_endpoint.html")]
struct EndpointPage {
    l: Layout,
    e: EndpointOut,
    kinds: &'static [&'static str],
    log: Paginated<DeliveryOut>,
    statuses: &'static [DeliveryStatus],
    filter: String,
    prev: Option<String>,
    next: Option<String>,
}

impl EndpointPage {
    fn status(&self, s: &DeliveryStatus) -> &'static str {
        status_label(&self.l, *s)
    }
    fn subscribed(&self, kind: &str) -> bool {
        self.e.event_types.iter().any(|t| t == kind)
    }
}

fn page_link(id: &str, page: i64, filter: &str) -> String {
    if filter.is_empty() {
        format!("/admin/webhooks/{id}?page={page}")
    } else {
        format!("/admin/webhooks/{id}?page={page}&status={filter}")
    }
}

async fn endpoint_page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let id = id.into_inner();
    let q = web::Query::<LogQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or(LogQuery {
            page: None,
            status: None,
        });
    let e = webhooks::get_endpoint(&ctx, id.clone()).await?;
    let filter = opt(q.status).unwrap_or_default();
    let log = webhooks::list_deliveries(
        &ctx,
        id.clone(),
        Ok(DeliveryQuery {
            page: q.page,
            per_page: Some(50),
            status: (!filter.is_empty()).then(|| filter.clone()),
        }),
    )
    .await?;
    let prev = (log.page > 1).then(|| page_link(&id, log.page - 1, &filter));
    let next = (log.page * log.per_page < log.total).then(|| page_link(&id, log.page + 1, &filter));
    render(&EndpointPage {
        l: Layout::new(&req, &user, &ctx, "webhooks"),
        e,
        kinds: kinds(),
        log,
        statuses: DeliveryStatus::ALL,
        filter,
        prev,
        next,
    })
}

async fn update(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: EndpointForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let id = id.into_inner();
    webhooks::update_endpoint(
        &ctx,
        id.clone(),
        EndpointPatch {
            url: Some(form.url),
            description: Some(form.description.unwrap_or_default()),
            event_types: Some(form.event_types),
            enabled: None,
        },
    )
    .await?;
    Ok(done(
        &req,
        &format!("/admin/webhooks/{id}?notice=webhook_saved"),
    ))
}

async fn set_enabled(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: String,
    body: &[u8],
    enabled: bool,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, body)?;
    let ctx = user.ctx(&state);
    webhooks::update_endpoint(
        &ctx,
        id.clone(),
        EndpointPatch {
            enabled: Some(enabled),
            ..EndpointPatch::default()
        },
    )
    .await?;
    let notice = if enabled {
        "webhook_enabled"
    } else {
        "webhook_disabled"
    };
    Ok(done(&req, &format!("/admin/webhooks/{id}?notice={notice}")))
}

async fn enable(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    set_enabled(req, user, state, id.into_inner(), &body, true).await
}

async fn disable(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    set_enabled(req, user, state, id.into_inner(), &body, false).await
}

async fn rotate(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let e = webhooks::rotate_secret(&ctx, id.into_inner()).await?;
    secret_page(Layout::new(&req, &user, &ctx, "webhooks"), e)
}

async fn reveal(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let e = webhooks::reveal_secret(&ctx, id.into_inner()).await?;
    secret_page(Layout::new(&req, &user, &ctx, "webhooks"), e)
}

async fn send_test(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let id = id.into_inner();
    webhooks::send_test(&ctx, id.clone()).await?;
    Ok(done(
        &req,
        &format!("/admin/webhooks/{id}?notice=webhook_test_queued"),
    ))
}

async fn delete(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    webhooks::delete_endpoint(&ctx, id.into_inner()).await?;
    Ok(done(&req, "/admin/webhooks?notice=webhook_deleted"))
}

// ---- a delivery ----

#[derive(Template)]
#[template(path = "console/webhooks_delivery.html")]
struct DeliveryPage {
    l: Layout,
    endpoint_id: String,
    d: DeliveryDetail,
    body: String,
}

impl DeliveryPage {
    fn status(&self, s: &DeliveryStatus) -> &'static str {
        status_label(&self.l, *s)
    }
}

/// A delivery's number from the path (a non-number is a delivery that does not exist).
fn seq_of(s: &str) -> Result<i64> {
    Ok(s.parse::<i64>()
        .map_err(|_| crate::service::ControlError::not_found(format!("delivery {s}")))?)
}

async fn delivery_page(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let (id, seq) = path.into_inner();
    let seq = seq_of(&seq)?;
    let d = webhooks::get_delivery(&ctx, id.clone(), seq).await?;
    let body = serde_json::to_string_pretty(&d.payload).unwrap_or_default();
    render(&DeliveryPage {
        l: Layout::new(&req, &user, &ctx, "webhooks"),
        endpoint_id: id,
        d,
        body,
    })
}

async fn redeliver(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    let (id, seq) = path.into_inner();
    let seq = seq_of(&seq)?;
    webhooks::redeliver(&ctx, id.clone(), seq).await?;
    Ok(done(
        &req,
        &format!("/admin/webhooks/{id}?notice=webhook_redelivered"),
    ))
}

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/webhooks", web::get().to(list_page))
        .route("/admin/webhooks", web::post().to(create))
        .route("/admin/webhooks/{id}", web::get().to(endpoint_page))
        .route("/admin/webhooks/{id}", web::post().to(update))
        .route("/admin/webhooks/{id}/enable", web::post().to(enable))
        .route("/admin/webhooks/{id}/disable", web::post().to(disable))
        .route("/admin/webhooks/{id}/rotate", web::post().to(rotate))
        .route("/admin/webhooks/{id}/reveal", web::post().to(reveal))
        .route("/admin/webhooks/{id}/test", web::post().to(send_test))
        .route("/admin/webhooks/{id}/delete", web::post().to(delete))
        .route(
            "/admin/webhooks/{id}/deliveries/{seq}",
            web::get().to(delivery_page),
        )
        .route(
            "/admin/webhooks/{id}/deliveries/{seq}/redeliver",
            web::post().to(redeliver),
        );
}

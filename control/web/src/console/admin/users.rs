//! `/admin/users`, `/admin/tokens` and `/admin/roles`: the tenant's users, their API tokens and
//! the roles' permissions (a matrix).

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::roles::{Permission, Role};
use crate::service::users::{
    self, CreatedToken, NewToken, NewUser, SetPermissions, TokenOut, TokenQuery, UserOut, UserPatch,
};
use crate::service::{ControlError, Ctx};

use super::super::{Button, ConsoleUser, Layout, Result, State, done, parse_form, render};
use super::opt;

fn role(field: &str, v: &str) -> crate::service::Result<Role> {
    v.trim()
        .parse()
        .map_err(|e| crate::service::settings::domain_error_at(field, e))
}

// ---- Users ----

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    l: Layout,
    users: Vec<UserOut>,
    me: String,
    roles: &'static [Role],
}

async fn users_page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let list = users::list_users(&ctx).await?;
    render(&UsersPage {
        l: Layout::new(&req, &user, &ctx, "users"),
        users: list,
        me: ctx.actor.user_id.clone(),
        roles: Role::ALL,
    })
}

#[derive(Deserialize)]
struct NewUserForm {
    email: String,
    display_name: Option<String>,
    role: String,
    password: Option<String>,
}

async fn create_user(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: NewUserForm = parse_form(&user, &body)?;
    let new = role("role", &form.role).map(|role| NewUser {
        email: form.email,
        role,
        display_name: opt(form.display_name),
        password: form.password.filter(|p| !p.is_empty()),
    });
    users::create_user(&user.ctx(&state), new).await?;
    Ok(done(&req, "/admin/users?notice=user_created"))
}

#[derive(Deserialize)]
struct UserForm {
    role: Option<String>,
    disabled: Option<bool>,
    password: Option<String>,
}

async fn update_user(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: UserForm = parse_form(&user, &body)?;
    let patch = opt(form.role)
        .map(|r| role("role", &r))
        .transpose()
        .map(|role| UserPatch {
            role,
            disabled: form.disabled,
            password: form.password.filter(|p| !p.is_empty()),
            ..UserPatch::default()
        });
    users::update_user(&user.ctx(&state), id.into_inner(), patch).await?;
    Ok(done(&req, "/admin/users?notice=user_updated"))
}

// ---- API tokens ----

/// A token with the e-mail of its user.
struct TokenRow {
    t: TokenOut,
    user: String,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    l: Layout,
    tokens: Vec<TokenRow>,
    users: Vec<UserOut>,
    me: String,
}

async fn tokens_page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let tokens = users::list_user_tokens(&ctx, Ok(TokenQuery { all: Some(true) })).await?;
    let list = users::list_users(&ctx).await?;
    let tokens = tokens
        .into_iter()
        .map(|t| TokenRow {
            user: list
                .iter()
                .find(|u| u.id == t.user_id)
                .map(|u| u.email.clone())
                .unwrap_or_else(|| t.user_id.clone()),
            t,
        })
        .collect();
    render(&TokensPage {
        l: Layout::new(&req, &user, &ctx, "tokens"),
        tokens,
        users: list.into_iter().filter(|u| !u.disabled).collect(),
        me: ctx.actor.user_id.clone(),
    })
}

#[derive(Template)]
#[template(path = "console/token_created.html")]
struct TokenCreatedPage {
    l: Layout,
    created: CreatedToken,
    user: String,
}

#[derive(Deserialize)]
struct NewTokenForm {
    name: String,
    user_id: Option<String>,
}

async fn create_token(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: NewTokenForm = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    // Only those who manage users reach this page (the token list needs it).
    ctx.require(Permission::ManageUsers)?;
    let created = users::issue_token(
        &ctx,
        Ok(NewToken {
            name: form.name,
            user_id: opt(form.user_id),
        }),
    )
    .await?;
    let owner = users::get_user(&ctx, created.token.user_id.clone()).await?;
    let mut res = render(&TokenCreatedPage {
        l: Layout::new(&req, &user, &ctx, "tokens"),
        created,
        user: owner.email,
    })?;
    // The secret must not stay in a cache.
    res.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

async fn revoke_token(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let ctx = user.ctx(&state);
    ctx.require(Permission::ManageUsers)?;
    users::revoke_user_token(&ctx, id.into_inner()).await?;
    Ok(done(&req, "/admin/tokens?notice=token_revoked"))
}

// ---- Roles ----

/// One checkbox of the matrix.
struct Cell {
    role: Role,
    checked: bool,
    /// "Editor: See persons" (its label).
    label: String,
}

/// One permission: a row of the matrix.
struct Row {
    perm: Permission,
    name: &'static str,
    help: &'static str,
    cells: Vec<Cell>,
}

#[derive(Template)]
#[template(path = "console/roles.html")]
struct RolesPage {
    l: Layout,
    roles: &'static [Role],
    rows: Vec<Row>,
}

async fn roles_page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    let current = users::list_roles(&ctx).await?;
    let l = Layout::new(&req, &user, &ctx, "roles");
    let a = &l.t.admin;
    let rows = Permission::ALL
        .iter()
        .map(|&perm| {
            let (name, help) = a.permission(&perm);
            Row {
                perm,
                name,
                help,
                cells: current
                    .iter()
                    .map(|r| Cell {
                        role: r.role,
                        checked: r.permissions.contains(&perm),
                        label: format!("{}: {}", a.role(&r.role), name),
                    })
                    .collect(),
            }
        })
        .collect();
    render(&RolesPage {
        l,
        roles: Role::ALL,
        rows,
    })
}

/// Saves the whole matrix: checkboxes are named by role (`editor=see_persons`). The admin role
/// is saved first, so that a refusal (it must keep `manage_users`) changes nothing.
async fn save_roles(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let _: Button = parse_form(&user, &body)?;
    let pairs: Vec<(String, String)> = serde_html_form::from_bytes(&body)
        .map_err(|e| super::super::ConsoleError::Form(e.to_string()))?;
    let ctx: Ctx = user.ctx(&state);
    let current = users::list_roles(&ctx).await?;
    for r in &current {
        let wanted: crate::service::Result<Vec<Permission>> = pairs
            .iter()
            .filter(|(k, _)| k == r.role.as_str())
            .map(|(_, v)| {
                v.parse().map_err(|_| {
                    ControlError::invalid("permissions", format!("unknown permission {v:?}"))
                })
            })
            .collect();
        let mut wanted = wanted?;
        wanted.sort();
        wanted.dedup();
        let mut had = r.permissions.clone();
        had.sort();
        if wanted != had {
            users::set_role(
                &ctx,
                r.role.as_str().to_string(),
                Ok(SetPermissions {
                    permissions: wanted,
                }),
            )
            .await?;
        }
    }
    Ok(done(&req, "/admin/roles?notice=roles_saved"))
}

/// Registers the users, tokens and roles pages.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/users", web::get().to(users_page))
        .route("/admin/users", web::post().to(create_user))
        .route("/admin/users/{id}", web::post().to(update_user))
        .route("/admin/tokens", web::get().to(tokens_page))
        .route("/admin/tokens", web::post().to(create_token))
        .route("/admin/tokens/{id}/revoke", web::post().to(revoke_token))
        .route("/admin/roles", web::get().to(roles_page))
        .route("/admin/roles", web::post().to(save_roles));
}

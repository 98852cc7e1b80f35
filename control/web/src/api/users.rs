//! Users, role permissions and API tokens.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::db;
use crate::error::{ControlError, ErrorBody, Result};
use crate::roles::{Permission, Role};
use crate::service::users::{self, NewUser, RolePermissions, TokenOut, UserOut, UserPatch};

/// Every user of the tenant.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = Vec<UserOut>), (status = 403, body = ErrorBody)))]
async fn list_users(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    actor.require(Permission::ManageUsers)?;
    let t = actor.tenant_id.clone();
    let out = db::run(&state.pool, move |c| users::list(c, &t)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 201, body = UserOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<NewUser>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageUsers)?;
    let body = body.into_inner()?;
    let (who, t, body) = (actor.who(), actor.tenant_id.clone(), body);
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| users::create(c, &who, &t, body))
    })
    .await?;
    Ok(HttpResponse::Created().json(out))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "User ID")),
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = UserOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_user(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageUsers)?;
    let (t, id) = (actor.tenant_id.clone(), path.into_inner());
    let out = db::run(&state.pool, move |c| users::get(c, &t, &id)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Changes a user's role, name, password or disables them.
#[utoipa::path(patch, path = "/api/v1/users/{user_id}", tag = "users", request_body = UserPatch,
    params(("user_id" = String, Path, description = "User ID")),
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = UserOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_user(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<UserPatch>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageUsers)?;
    let body = body.into_inner()?;
    let (who, t, id, body) = (
        actor.who(),
        actor.tenant_id.clone(),
        path.into_inner(),
        body,
    );
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| users::update(c, &who, &t, &id, body))
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Every role with its permissions in this tenant.
#[utoipa::path(get, path = "/api/v1/roles", tag = "users",
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = Vec<RolePermissions>), (status = 403, body = ErrorBody)))]
async fn list_roles(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    actor.require(Permission::ManageUsers)?;
    let t = actor.tenant_id.clone();
    let out = db::run(&state.pool, move |c| users::roles(c, &t)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// New permissions of a role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPermissions {
    /// The complete new set.
    pub permissions: Vec<Permission>,
}

/// Replaces a role's permissions (the admin role always keeps `manage_users`).
#[utoipa::path(put, path = "/api/v1/roles/{role}", tag = "users", request_body = SetPermissions,
    params(("role" = Role, Path, description = "Role")),
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = RolePermissions), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn set_role(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<SetPermissions>,
) -> Result<HttpResponse> {
    actor.require(Permission::ManageUsers)?;
    let body = body.into_inner()?;
    let role: Role = path
        .parse()
        .map_err(|e| ControlError::invalid("role", format!("{e}")))?;
    let (who, t, perms) = (actor.who(), actor.tenant_id.clone(), body.permissions);
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            users::set_role_permissions(c, &who, &t, role, &perms)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Filter of the token list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Every user's tokens (needs `manage_users`); default: only the caller's.
    pub all: Option<bool>,
}

/// The caller's API tokens (or everyone's with `all=true` and `manage_users`).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(TokenQuery),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Vec<TokenOut>), (status = 403, body = ErrorBody)))]
async fn list_tokens(
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<TokenQuery>,
) -> Result<HttpResponse> {
    let q = q.into_inner()?;
    let all = q.all.unwrap_or(false);
    if all {
        actor.require(Permission::ManageUsers)?;
    }
    let (t, u) = (actor.tenant_id.clone(), actor.user_id.clone());
    let out = db::run(&state.pool, move |c| {
        users::list_tokens(c, &t, (!all).then_some(u.as_str()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// A new token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A name to recognise it by.
    pub name: String,
    /// Create it for this user (needs `manage_users`); default: the caller.
    pub user_id: Option<String>,
}

/// A created token with its secret (shown only this once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub token: TokenOut,
    /// Use as `Authorization: Bearer <secret>`; it cannot be shown again.
    pub secret: String,
}

/// Creates an API token (for the caller, or for another user with `manage_users`).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    security(("session" = []), ("token" = [])),
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_token(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<NewToken>,
) -> Result<HttpResponse> {
    let body = body.into_inner()?;
    let user_id = match body.user_id {
        Some(u) if u != actor.user_id => {
            actor.require(Permission::ManageUsers)?;
            u
        }
        _ => actor.user_id.clone(),
    };
    let (who, t) = (actor.who(), actor.tenant_id.clone());
    let (token, secret) = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            users::create_token(c, &who, &t, &user_id, &body.name)
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(CreatedToken { token, secret }))
}

/// Revokes a token (the caller's own, or anyone's with `manage_users`).
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "tokens",
    params(("token_id" = String, Path, description = "Token ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = TokenOut), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let only = (!actor.has(Permission::ManageUsers)).then(|| actor.user_id.clone());
    let (who, t, id) = (actor.who(), actor.tenant_id.clone(), path.into_inner());
    let out = db::run(&state.pool, move |c| {
        db::write_tx(c, |c| {
            users::revoke_token(c, &who, &t, &id, only.as_deref())
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// OpenAPI paths of this module.
#[derive(OpenApi)]
#[openapi(paths(
    list_users,
    create_user,
    get_user,
    update_user,
    list_roles,
    set_role,
    list_tokens,
    create_token,
    revoke_token
))]
pub struct Api;

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/api/v1/users", web::get().to(list_users))
        .route("/api/v1/users", web::post().to(create_user))
        .route("/api/v1/users/{user_id}", web::get().to(get_user))
        .route("/api/v1/users/{user_id}", web::patch().to(update_user))
        .route("/api/v1/roles", web::get().to(list_roles))
        .route("/api/v1/roles/{role}", web::put().to(set_role))
        .route("/api/v1/tokens", web::get().to(list_tokens))
        .route("/api/v1/tokens", web::post().to(create_token))
        .route("/api/v1/tokens/{token_id}", web::delete().to(revoke_token));
}

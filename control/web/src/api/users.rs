//! Users, role permissions and API tokens.

use actix_web::HttpResponse;
use actix_web::web::{self, ServiceConfig};
use utoipa::OpenApi;

use crate::Deps;
use crate::api::extract::{Json, Query};
use crate::auth::Actor;
use crate::error::{ErrorBody, Result};
use crate::roles::Role;
use crate::service::Ctx;
use crate::service::users::{
    self, CreatedToken, NewToken, NewUser, RolePermissions, SetPermissions, TokenOut, TokenQuery,
    UserOut, UserPatch,
};

/// Every user of the tenant.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = Vec<UserOut>), (status = 403, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_users(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(users::list_users(&ctx).await?))
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 201, body = UserOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn create_user(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<NewUser>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = users::create_user(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(out))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "User ID")),
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = UserOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn get_user(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(users::get_user(&ctx, path.into_inner()).await?))
}

/// Changes a user's role, name, password or disables them.
#[utoipa::path(patch, path = "/api/v1/users/{user_id}", tag = "users", request_body = UserPatch,
    params(("user_id" = String, Path, description = "User ID")),
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = UserOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn update_user(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<UserPatch>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = users::update_user(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Every role with its permissions in this tenant.
#[utoipa::path(get, path = "/api/v1/roles", tag = "users",
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = Vec<RolePermissions>), (status = 403, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_roles(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(users::list_roles(&ctx).await?))
}

/// Replaces a role's permissions (the admin role always keeps `manage_users`).
#[utoipa::path(put, path = "/api/v1/roles/{role}", tag = "users", request_body = SetPermissions,
    params(("role" = Role, Path, description = "Role")),
    security(("session" = ["manage_users"]), ("token" = ["manage_users"])),
    responses((status = 200, body = RolePermissions), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn set_role(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
    body: Json<SetPermissions>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = users::set_role(&ctx, path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// The caller's API tokens (or everyone's with `all=true` and `manage_users`).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(TokenQuery),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = Vec<TokenOut>), (status = 403, body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_tokens(
    actor: Actor,
    state: web::Data<Deps>,
    q: Query<TokenQuery>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    Ok(HttpResponse::Ok().json(users::list_user_tokens(&ctx, q.into_inner()).await?))
}

/// Creates an API token (for the caller, or for another user with `manage_users`).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    security(("session" = []), ("token" = [])),
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn create_token(
    actor: Actor,
    state: web::Data<Deps>,
    body: Json<NewToken>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = users::issue_token(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(out))
}

/// Revokes a token (the caller's own, or anyone's with `manage_users`).
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "tokens",
    params(("token_id" = String, Path, description = "Token ID")),
    security(("session" = []), ("token" = [])),
    responses((status = 200, body = TokenOut), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn revoke_token(
    actor: Actor,
    state: web::Data<Deps>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let ctx = Ctx::new(state.into_inner(), actor.into_inner());
    let out = users::revoke_user_token(&ctx, path.into_inner()).await?;
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

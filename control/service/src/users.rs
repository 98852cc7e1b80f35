//! Users, roles' permissions, sessions (login/logout) and API tokens of a tenant.

use std::collections::BTreeSet;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{self, Who};
use crate::auth;
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::{Permission, Role};
use crate::schema::{api_tokens, role_permissions, sessions, users};

/// A user as shown by the API (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserOut {
    /// ID.
    pub id: String,
    /// E-mail (login name within the tenant).
    pub email: String,
    /// Role.
    pub role: Role,
    /// Display name.
    pub display_name: String,
    /// A disabled user cannot log in and their tokens stop working.
    pub disabled: bool,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: chrono::NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    email: String,
    role: String,
    display_name: String,
    disabled: bool,
    created_at: chrono::NaiveDateTime,
}

impl UserRow {
    fn out(self) -> Result<UserOut> {
        Ok(UserOut {
            role: self
                .role
                .parse()
                .map_err(|e| ControlError::Internal(format!("user {}: {e}", self.id)))?,
            id: self.id,
            email: self.email,
            display_name: self.display_name,
            disabled: self.disabled,
            created_at: self.created_at,
        })
    }
}

/// A new user.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// E-mail (unique within the tenant).
    pub email: String,
    /// Role.
    pub role: Role,
    /// Display name (default: the e-mail).
    pub display_name: Option<String>,
    /// Password (at least 10 characters); none for `integration` users who use API tokens only.
    pub password: Option<String>,
}

/// Changes to a user (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New role.
    pub role: Option<Role>,
    /// New display name.
    pub display_name: Option<String>,
    /// Disable or enable (disabling also ends the user's sessions).
    pub disabled: Option<bool>,
    /// New password.
    pub password: Option<String>,
}

/// Normalises and checks an e-mail address.
pub fn normalize_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.chars().any(char::is_whitespace);
    if ok {
        Ok(e)
    } else {
        Err(ControlError::invalid("email", "is not an e-mail address"))
    }
}

fn check_display_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(ControlError::invalid(
            "display_name",
            "must be 1 to 200 characters",
        ));
    }
    Ok(n.to_string())
}

/// Creates a user. Call inside `db::write_tx`.
pub fn create(conn: &mut DbConn, who: &Who, tenant_id: &str, new: NewUser) -> Result<UserOut> {
    let email = normalize_email(&new.email)?;
    let display_name = check_display_name(new.display_name.as_deref().unwrap_or(&email))?;
    let password_hash = match &new.password {
        Some(p) => Some(auth::hash_password(p)?),
        None if new.role == Role::Integration => None,
        None => {
            return Err(ControlError::invalid(
                "password",
                "required (only integration users may have none)",
            ));
        }
    };
    let exists: i64 = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::email.eq(&email))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(ControlError::Conflict {
            code: "user_exists",
            message: format!("a user with e-mail {email} exists already"),
        });
    }
    let u = UserOut {
        id: db::new_id(),
        email,
        role: new.role,
        display_name,
        disabled: false,
        created_at: db::now(),
    };
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&u.id),
            users::tenant_id.eq(tenant_id),
            users::email.eq(&u.email),
            users::password_hash.eq(password_hash),
            users::role.eq(u.role.as_str()),
            users::display_name.eq(&u.display_name),
            users::disabled.eq(false),
            users::created_at.eq(u.created_at),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        who,
        "user.create",
        "user",
        Some(&u.id),
        serde_json::json!({"email": u.email, "role": u.role}),
    )?;
    Ok(u)
}

/// Every user of a tenant, by e-mail.
pub fn list(conn: &mut DbConn, tenant_id: &str) -> Result<Vec<UserOut>> {
    users::table
        .filter(users::tenant_id.eq(tenant_id))
        .order(users::email.asc())
        .select(UserRow::as_select())
        .load(conn)?
        .into_iter()
        .map(UserRow::out)
        .collect()
}

/// One user of a tenant (404 for another tenant's).
pub fn get(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<UserOut> {
    users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::id.eq(id))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("user"))?
        .out()
}

/// Changes a user. Call inside `db::write_tx`.
pub fn update(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
    patch: UserPatch,
) -> Result<UserOut> {
    let before = get(conn, tenant_id, id)?;
    let mut changed = serde_json::Map::new();
    if who.user_id.as_deref() == Some(id)
        && (patch.disabled == Some(true) || patch.role.is_some_and(|r| r != before.role))
    {
        return Err(ControlError::invalid(
            "role",
            "you cannot change your own role or disable yourself",
        ));
    }
    let target = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::id.eq(id));
    if let Some(role) = patch.role {
        diesel::update(target)
            .set(users::role.eq(role.as_str()))
            .execute(conn)?;
        changed.insert("role".into(), serde_json::json!(role));
    }
    if let Some(name) = &patch.display_name {
        let name = check_display_name(name)?;
        diesel::update(target)
            .set(users::display_name.eq(&name))
            .execute(conn)?;
        changed.insert("display_name".into(), serde_json::json!(name));
    }
    if let Some(disabled) = patch.disabled {
        diesel::update(target)
            .set(users::disabled.eq(disabled))
            .execute(conn)?;
        changed.insert("disabled".into(), serde_json::json!(disabled));
    }
    if let Some(pw) = &patch.password {
        let h = auth::hash_password(pw)?;
        diesel::update(target)
            .set(users::password_hash.eq(Some(h)))
            .execute(conn)?;
        changed.insert("password".into(), serde_json::json!("changed"));
    }
    if patch.disabled == Some(true) || patch.password.is_some() {
        diesel::delete(
            sessions::table
                .filter(sessions::tenant_id.eq(tenant_id))
                .filter(sessions::user_id.eq(id)),
        )
        .execute(conn)?;
    }
    audit::record(
        conn,
        who,
        "user.update",
        "user",
        Some(id),
        serde_json::Value::Object(changed),
    )?;
    get(conn, tenant_id, id)
}

/// The permissions of one role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolePermissions {
    /// The role.
    pub role: Role,
    /// Its permissions in this tenant.
    pub permissions: Vec<Permission>,
}

/// Every role's permissions in a tenant.
pub fn roles(conn: &mut DbConn, tenant_id: &str) -> Result<Vec<RolePermissions>> {
    Role::ALL
        .iter()
        .map(|&role| {
            Ok(RolePermissions {
                role,
                permissions: auth::permissions_of(conn, tenant_id, role)?
                    .into_iter()
                    .collect(),
            })
        })
        .collect()
}

/// Replaces a role's permissions. The admin role always keeps `manage_users` (no lock-out).
/// Call inside `db::write_tx`.
pub fn set_role_permissions(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    role: Role,
    permissions: &[Permission],
) -> Result<RolePermissions> {
    let set: BTreeSet<Permission> = permissions.iter().copied().collect();
    if role == Role::Admin && !set.contains(&Permission::ManageUsers) {
        return Err(ControlError::invalid(
            "permissions",
            "the admin role must keep manage_users (otherwise nobody could change roles)",
        ));
    }
    diesel::delete(
        role_permissions::table
            .filter(role_permissions::tenant_id.eq(tenant_id))
            .filter(role_permissions::role.eq(role.as_str())),
    )
    .execute(conn)?;
    for p in &set {
        diesel::insert_into(role_permissions::table)
            .values((
                role_permissions::tenant_id.eq(tenant_id),
                role_permissions::role.eq(role.as_str()),
                role_permissions::permission.eq(p.as_str()),
            ))
            .execute(conn)?;
    }
    audit::record(
        conn,
        who,
        "role.update",
        "role",
        Some(role.as_str()),
        serde_json::json!({"permissions": set}),
    )?;
    Ok(RolePermissions {
        role,
        permissions: set.into_iter().collect(),
    })
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The raw session secret (cookie value; only its hash is stored).
    pub session: String,
    /// CSRF token to send as `X-CSRF-Token` on unsafe requests.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at: chrono::NaiveDateTime,
    /// The user.
    pub user: UserOut,
    /// The tenant's ID.
    pub tenant_id: String,
}

// A valid Argon2id hash of a random string: verified when the user does not exist so that
// both cases take the same time.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Rj1jXjQ0x3yCP4cxdPr8Lr9Sx0Y0uqK1pS1x0vM1g2E";

/// Checks credentials and opens a session (401 `invalid_credentials` for any mismatch).
/// Audits success and failure. Opens its own write transactions (not inside `db::write_tx`:
/// the Argon2 check runs before any lock is taken).
/// Logs in through the process's login throttle: refused with `TooManyAttempts` while the
/// account or the address has too many recent failures; a failure counts, a success clears the
/// account's count.
pub async fn login_throttled(
    deps: &crate::Deps,
    tenant_slug: String,
    email: String,
    password: String,
    ip: Option<String>,
) -> Result<LoginOutcome> {
    let limits = deps.config.server.login_limits();
    let ttl = deps.config.server.session_ttl_minutes;
    let throttle = &deps.login_throttle;
    throttle.check(&limits, &tenant_slug, &email, ip.as_deref())?;
    let (t, e, ip2) = (tenant_slug.clone(), email.clone(), ip.clone());
    let res = db::run(&deps.pool, move |c| login(c, &t, &e, &password, ip2, ttl)).await;
    match &res {
        Ok(_) => throttle.succeeded(&tenant_slug, &email),
        Err(ControlError::InvalidCredentials) => {
            throttle.failed(&tenant_slug, &email, ip.as_deref())
        }
        Err(_) => {}
    }
    res
}

/// Checks the credentials and opens a session (no throttle: see [`login_throttled`]).
pub fn login(
    conn: &mut DbConn,
    tenant_slug: &str,
    email: &str,
    password: &str,
    ip: Option<String>,
    ttl_minutes: i64,
) -> Result<LoginOutcome> {
    let email_n = email.trim().to_lowercase();
    let tenant_id = auth::tenant_id_by_slug(conn, tenant_slug.trim())?;
    let row: Option<(String, Option<String>, bool)> = match &tenant_id {
        Some(t) => users::table
            .filter(users::tenant_id.eq(t))
            .filter(users::email.eq(&email_n))
            .select((users::id, users::password_hash, users::disabled))
            .first(conn)
            .optional()?,
        None => None,
    };
    let hash = row
        .as_ref()
        .and_then(|r| r.1.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_string());
    let good = auth::verify_password(password, &hash);
    let (Some(tenant_id), Some((user_id, Some(_), false)), true) = (tenant_id.clone(), row, good)
    else {
        let who = Who {
            tenant_id,
            user_id: None,
            label: email_n.clone(),
            ip,
        };
        db::write_tx(conn, |c| {
            audit::record(
                c,
                &who,
                "auth.login_failed",
                "user",
                None,
                serde_json::json!({"email": email_n}),
            )
        })?;
        return Err(ControlError::InvalidCredentials);
    };
    let session = auth::random_secret()?;
    let csrf_token = auth::random_secret()?;
    db::write_tx(conn, |conn| {
        let now = db::now();
        let expires_at = now + chrono::TimeDelta::minutes(ttl_minutes);
        diesel::insert_into(sessions::table)
            .values((
                sessions::id_hash.eq(auth::secret_hash(&session)),
                sessions::tenant_id.eq(&tenant_id),
                sessions::user_id.eq(&user_id),
                sessions::csrf_token.eq(&csrf_token),
                sessions::created_at.eq(now),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(conn)?;
        // Expired sessions of anyone are removed on the way.
        diesel::delete(sessions::table.filter(sessions::expires_at.lt(now))).execute(conn)?;
        let user = get(conn, &tenant_id, &user_id)?;
        let who = Who {
            tenant_id: Some(tenant_id.clone()),
            user_id: Some(user_id.clone()),
            label: user.email.clone(),
            ip,
        };
        audit::record(
            conn,
            &who,
            "auth.login",
            "user",
            Some(&user_id),
            serde_json::json!({}),
        )?;
        Ok(LoginOutcome {
            session,
            csrf_token,
            expires_at,
            user,
            tenant_id,
        })
    })
}

/// Ends a session. Call inside `db::write_tx`.
pub fn logout(conn: &mut DbConn, who: &Who, raw_session: &str) -> Result<()> {
    diesel::delete(sessions::table.filter(sessions::id_hash.eq(auth::secret_hash(raw_session))))
        .execute(conn)?;
    audit::record(
        conn,
        who,
        "auth.logout",
        "user",
        who.user_id.as_deref(),
        serde_json::json!({}),
    )?;
    Ok(())
}

/// An API token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize, ToSchema)]
#[diesel(table_name = api_tokens)]
pub struct TokenOut {
    /// ID.
    pub id: String,
    /// The user the token acts as.
    pub user_id: String,
    /// Name given at creation.
    pub name: String,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: chrono::NaiveDateTime,
    /// Last use (UTC, to the minute).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub last_used_at: Option<chrono::NaiveDateTime>,
    /// Revoked (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "likeness_control_domain::time::utc::option")]
    pub revoked_at: Option<chrono::NaiveDateTime>,
}

/// Creates an API token for `user_id` of the tenant; returns it and the secret (shown once).
/// Call inside `db::write_tx`.
pub fn create_token(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    user_id: &str,
    name: &str,
) -> Result<(TokenOut, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ControlError::invalid("name", "must be 1 to 100 characters"));
    }
    get(conn, tenant_id, user_id)?;
    let secret = format!("{}{}", auth::TOKEN_PREFIX, auth::random_secret()?);
    let t = TokenOut {
        id: db::new_id(),
        user_id: user_id.to_string(),
        name: name.to_string(),
        created_at: db::now(),
        last_used_at: None,
        revoked_at: None,
    };
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(&t.id),
            api_tokens::tenant_id.eq(tenant_id),
            api_tokens::user_id.eq(&t.user_id),
            api_tokens::name.eq(&t.name),
            api_tokens::token_hash.eq(auth::secret_hash(&secret)),
            api_tokens::created_at.eq(t.created_at),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        who,
        "token.create",
        "api_token",
        Some(&t.id),
        serde_json::json!({"name": t.name, "user_id": t.user_id}),
    )?;
    Ok((t, secret))
}

/// Tokens of a tenant, optionally only those of one user; newest first.
pub fn list_tokens(
    conn: &mut DbConn,
    tenant_id: &str,
    user_id: Option<&str>,
) -> Result<Vec<TokenOut>> {
    let mut q = api_tokens::table
        .filter(api_tokens::tenant_id.eq(tenant_id))
        .into_boxed();
    if let Some(u) = user_id {
        q = q.filter(api_tokens::user_id.eq(u));
    }
    Ok(q.order(api_tokens::created_at.desc())
        .select(TokenOut::as_select())
        .load(conn)?)
}

/// Revokes a token (404 if not in the tenant, or not the user's when `only_user` is given).
/// Call inside `db::write_tx`.
pub fn revoke_token(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
    only_user: Option<&str>,
) -> Result<TokenOut> {
    let mut q = api_tokens::table
        .filter(api_tokens::tenant_id.eq(tenant_id))
        .filter(api_tokens::id.eq(id))
        .into_boxed();
    if let Some(u) = only_user {
        q = q.filter(api_tokens::user_id.eq(u));
    }
    let t: TokenOut = q
        .select(TokenOut::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("token"))?;
    if t.revoked_at.is_none() {
        diesel::update(api_tokens::table.filter(api_tokens::id.eq(id)))
            .set(api_tokens::revoked_at.eq(Some(db::now())))
            .execute(conn)?;
        audit::record(
            conn,
            who,
            "token.revoke",
            "api_token",
            Some(id),
            serde_json::json!({"name": t.name}),
        )?;
    }
    api_tokens::table
        .filter(api_tokens::id.eq(id))
        .select(TokenOut::as_select())
        .first(conn)
        .map_err(Into::into)
}

// Use cases: one entry point per operation, each checking its own permissions; inputs a
// transport parses (`Result<T>`) are looked at only after the permission checks.

/// Every user of the tenant (`manage_users`).
pub async fn list_users(ctx: &Ctx) -> Result<Vec<UserOut>> {
    ctx.require(Permission::ManageUsers)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| list(c, &t)).await
}

/// Creates a user (`manage_users`).
pub async fn create_user(ctx: &Ctx, new: Result<NewUser>) -> Result<UserOut> {
    ctx.require(Permission::ManageUsers)?;
    let new = new?;
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| create(c, &who, &t, new))
    })
    .await
}

/// One user (`manage_users`).
pub async fn get_user(ctx: &Ctx, id: String) -> Result<UserOut> {
    ctx.require(Permission::ManageUsers)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| get(c, &t, &id)).await
}

/// Changes a user (`manage_users`).
pub async fn update_user(ctx: &Ctx, id: String, patch: Result<UserPatch>) -> Result<UserOut> {
    ctx.require(Permission::ManageUsers)?;
    let patch = patch?;
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| update(c, &who, &t, &id, patch))
    })
    .await
}

/// Every role with its permissions in the tenant (`manage_users`).
pub async fn list_roles(ctx: &Ctx) -> Result<Vec<RolePermissions>> {
    ctx.require(Permission::ManageUsers)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| roles(c, &t)).await
}

/// New permissions of a role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPermissions {
    /// The complete new set.
    pub permissions: Vec<Permission>,
}

/// Replaces the permissions of `role` (its string form; `manage_users`).
pub async fn set_role(
    ctx: &Ctx,
    role: String,
    body: Result<SetPermissions>,
) -> Result<RolePermissions> {
    ctx.require(Permission::ManageUsers)?;
    let body = body?;
    let role: Role = role
        .parse()
        .map_err(|e| ControlError::invalid("role", format!("{e}")))?;
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            set_role_permissions(c, &who, &t, role, &body.permissions)
        })
    })
    .await
}

/// Filter of the token list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Every user's tokens (needs `manage_users`); default: only the caller's.
    pub all: Option<bool>,
}

/// The caller's API tokens, or everyone's with `all=true` (`manage_users`).
pub async fn list_user_tokens(ctx: &Ctx, q: Result<TokenQuery>) -> Result<Vec<TokenOut>> {
    let all = q?.all.unwrap_or(false);
    if all {
        ctx.require(Permission::ManageUsers)?;
    }
    let (t, u) = (ctx.tenant().to_string(), ctx.actor.user_id.clone());
    db::run(&ctx.deps.pool, move |c| {
        list_tokens(c, &t, (!all).then_some(u.as_str()))
    })
    .await
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

/// Creates an API token for the caller, or for another user of the tenant (`manage_users`).
pub async fn issue_token(ctx: &Ctx, new: Result<NewToken>) -> Result<CreatedToken> {
    let new = new?;
    let user_id = match new.user_id {
        Some(u) if u != ctx.actor.user_id => {
            ctx.require(Permission::ManageUsers)?;
            u
        }
        _ => ctx.actor.user_id.clone(),
    };
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    let (token, secret) = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| create_token(c, &who, &t, &user_id, &new.name))
    })
    .await?;
    Ok(CreatedToken { token, secret })
}

/// Revokes a token: the caller's own, or anyone's in the tenant with `manage_users` (another
/// user's token is not found without it).
pub async fn revoke_user_token(ctx: &Ctx, id: String) -> Result<TokenOut> {
    let only = (!ctx.has(Permission::ManageUsers)).then(|| ctx.actor.user_id.clone());
    let (who, t) = (ctx.who(), ctx.tenant().to_string());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| revoke_token(c, &who, &t, &id, only.as_deref()))
    })
    .await
}

/// Ends the session whose raw secret is `raw_session` (the caller's own).
pub async fn end_session(ctx: &Ctx, raw_session: String) -> Result<()> {
    let who = ctx.who();
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| logout(c, &who, &raw_session))
    })
    .await
}

/// The caller's tenant and user record.
pub async fn whoami(ctx: &Ctx) -> Result<(crate::tenants::Tenant, UserOut)> {
    let (t, u) = (ctx.tenant().to_string(), ctx.actor.user_id.clone());
    db::run(&ctx.deps.pool, move |c| {
        Ok((crate::tenants::get(c, &t)?, get(c, &t, &u)?))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email(" Ann@Example.org ").unwrap(),
            "ann@example.org"
        );
        assert!(normalize_email("ann").is_err());
        assert!(normalize_email("@x.org").is_err());
        assert!(normalize_email("a b@x.org").is_err());
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}

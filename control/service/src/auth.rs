//! Authentication and authorization: Argon2id passwords, browser sessions (HttpOnly cookie +
//! CSRF token on unsafe methods), hashed API tokens (`Authorization: Bearer lk_...`), and the
//! [`Actor`] extractor every handler takes.
//!
//! ```ignore
//! async fn handler(actor: Actor, state: web::Data<Deps>) -> Result<HttpResponse> {
//!     actor.require(Permission::SeePersons)?; // 403 `forbidden` otherwise
//!     let who = actor.who();                 // for audit::record
//!     ...
//! }
//! ```

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use utoipa::ToSchema;

use crate::audit::Who;
use crate::db::DbConn;
use crate::error::{ControlError, Result};
use crate::roles::{Permission, Role};
use crate::schema::{api_tokens, role_permissions, sessions, tenants, users};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "lk_session";
/// Header carrying the CSRF token on unsafe requests of cookie sessions.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// Prefix of API tokens.
pub const TOKEN_PREFIX: &str = "lk_";

/// How the actor authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthVia {
    /// Browser session cookie.
    Session,
    /// API token.
    Token,
}

/// The authenticated caller of a request: tenant, user, role and effective permissions.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The tenant every query must be scoped to.
    pub tenant_id: String,
    /// The user.
    pub user_id: String,
    /// The user's e-mail (or `token:<name>` for API tokens).
    pub label: String,
    /// The user's role.
    pub role: Role,
    /// The role's permissions in this tenant.
    pub permissions: BTreeSet<Permission>,
    /// Session or token.
    pub via: AuthVia,
    /// Client IP.
    pub ip: Option<String>,
}

impl Actor {
    /// Whether the actor has `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// `Ok` if the actor has `p`, else 403 `forbidden` naming the permission.
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.has(p) {
            Ok(())
        } else {
            Err(ControlError::Forbidden(p.as_str().to_string()))
        }
    }

    /// The audit identity of this actor.
    pub fn who(&self) -> Who {
        Who {
            tenant_id: Some(self.tenant_id.clone()),
            user_id: Some(self.user_id.clone()),
            label: self.label.clone(),
            ip: self.ip.clone(),
        }
    }
}

/// Resolves the credentials of a request to its actor: an API token if one is given, else the
/// session cookie, whose CSRF token must match on unsafe methods (401 / 403 otherwise).
pub async fn authenticate(
    deps: &crate::Deps,
    bearer: Option<String>,
    cookie: Option<String>,
    csrf: Option<String>,
    unsafe_method: bool,
    ip: Option<String>,
) -> Result<Actor> {
    let mut actor = if let Some(token) = bearer {
        crate::db::run(&deps.pool, move |c| authenticate_token(c, &token)).await?
    } else if let Some(raw) = cookie {
        let (actor, expected) =
            crate::db::run(&deps.pool, move |c| authenticate_session(c, &raw)).await?;
        if unsafe_method && !csrf.is_some_and(|got| constant_time_eq(&got, &expected)) {
            return Err(ControlError::Csrf);
        }
        actor
    } else {
        return Err(ControlError::Unauthenticated);
    };
    actor.ip = ip;
    Ok(actor)
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn argon2() -> Argon2<'static> {
    // OWASP's first recommended Argon2id setting: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with Argon2id (PHC string).
pub fn hash_password(password: &str) -> Result<String> {
    validate_password(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ControlError::Internal(format!("random: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| ControlError::Internal(format!("salt: {e}")))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ControlError::Internal(format!("argon2: {e}")))
}

/// Checks a password against a stored PHC hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Password policy: 10 to 1024 characters.
pub fn validate_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < 10 {
        return Err(ControlError::invalid(
            "password",
            "must have at least 10 characters",
        ));
    }
    if n > 1024 {
        return Err(ControlError::invalid(
            "password",
            "must have at most 1024 characters",
        ));
    }
    Ok(())
}

/// 32 random bytes, base64url without padding.
pub fn random_secret() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ControlError::Internal(format!("random: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// sha256 hex of a secret (sessions and tokens are stored only hashed).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The effective permissions of `role` in `tenant_id`.
pub fn permissions_of(
    conn: &mut DbConn,
    tenant_id: &str,
    role: Role,
) -> Result<BTreeSet<Permission>> {
    let names: Vec<String> = role_permissions::table
        .filter(role_permissions::tenant_id.eq(tenant_id))
        .filter(role_permissions::role.eq(role.as_str()))
        .select(role_permissions::permission)
        .load(conn)?;
    Ok(names.iter().filter_map(|n| n.parse().ok()).collect())
}

#[derive(Queryable)]
struct UserAuthRow {
    id: String,
    tenant_id: String,
    email: String,
    role: String,
    disabled: bool,
}

fn actor_for_user(
    conn: &mut DbConn,
    tenant_id: &str,
    user_id: &str,
    via: AuthVia,
    label: Option<String>,
) -> Result<Actor> {
    let u: Option<UserAuthRow> = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::id.eq(user_id))
        .select((
            users::id,
            users::tenant_id,
            users::email,
            users::role,
            users::disabled,
        ))
        .first(conn)
        .optional()?;
    let Some(u) = u else {
        return Err(ControlError::Unauthenticated);
    };
    if u.disabled {
        return Err(ControlError::Unauthenticated);
    }
    let role: Role = u
        .role
        .parse()
        .map_err(|e| ControlError::Internal(format!("user {}: {e}", u.id)))?;
    let permissions = permissions_of(conn, &u.tenant_id, role)?;
    Ok(Actor {
        tenant_id: u.tenant_id,
        user_id: u.id,
        label: label.unwrap_or(u.email),
        role,
        permissions,
        via,
        ip: None,
    })
}

/// Resolves a session cookie to its actor and CSRF token (401 if unknown or expired).
pub fn authenticate_session(conn: &mut DbConn, raw: &str) -> Result<(Actor, String)> {
    let row: Option<(String, String, String, chrono::NaiveDateTime)> = sessions::table
        .filter(sessions::id_hash.eq(secret_hash(raw)))
        .select((
            sessions::tenant_id,
            sessions::user_id,
            sessions::csrf_token,
            sessions::expires_at,
        ))
        .first(conn)
        .optional()?;
    let Some((tenant_id, user_id, csrf, expires_at)) = row else {
        return Err(ControlError::Unauthenticated);
    };
    if expires_at <= crate::db::now() {
        return Err(ControlError::Unauthenticated);
    }
    let actor = actor_for_user(conn, &tenant_id, &user_id, AuthVia::Session, None)?;
    Ok((actor, csrf))
}

type TokenAuthRow = (
    String,
    String,
    String,
    String,
    Option<chrono::NaiveDateTime>,
    Option<chrono::NaiveDateTime>,
);

/// Resolves an API token to its actor (401 if unknown or revoked).
pub fn authenticate_token(conn: &mut DbConn, raw: &str) -> Result<Actor> {
    if !raw.starts_with(TOKEN_PREFIX) {
        return Err(ControlError::Unauthenticated);
    }
    let row: Option<TokenAuthRow> = api_tokens::table
        .filter(api_tokens::token_hash.eq(secret_hash(raw)))
        .select((
            api_tokens::id,
            api_tokens::tenant_id,
            api_tokens::user_id,
            api_tokens::name,
            api_tokens::revoked_at,
            api_tokens::last_used_at,
        ))
        .first(conn)
        .optional()?;
    let Some((id, tenant_id, user_id, name, revoked, last_used)) = row else {
        return Err(ControlError::Unauthenticated);
    };
    if revoked.is_some() {
        return Err(ControlError::Unauthenticated);
    }
    let actor = actor_for_user(
        conn,
        &tenant_id,
        &user_id,
        AuthVia::Token,
        Some(format!("token:{name}")),
    )?;
    let now = crate::db::now();
    // Record use at most once a minute (keeps SQLite writers quiet under load).
    if last_used.is_none_or(|t| now - t > chrono::TimeDelta::minutes(1)) {
        diesel::update(api_tokens::table.filter(api_tokens::id.eq(&id)))
            .set(api_tokens::last_used_at.eq(Some(now)))
            .execute(conn)?;
    }
    Ok(actor)
}

/// The tenant ID of a slug.
pub fn tenant_id_by_slug(conn: &mut DbConn, slug: &str) -> Result<Option<String>> {
    Ok(tenants::table
        .filter(tenants::slug.eq(slug))
        .select(tenants::id)
        .first(conn)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = random_secret().unwrap();
        assert_ne!(a, random_secret().unwrap());
        assert_eq!(secret_hash(&a).len(), 64);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}

//! Accounts: PC registration and login (argon2), mini-program users by openid with tokens
//! stored in the database (so every instance sees them), and the one shipping address.

use super::ServiceError;
use crate::db::{self, Conn};
use crate::domain::Scope;
use crate::models::user::{self, AddressFields, NewToken};
use crate::models::{now, Address, NewUser, User};
use crate::validators::{AddressCmd, Credentials};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::Rng;

pub fn hash_password(password: &str) -> Result<String, ServiceError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates a user with a password; `username` taken -> a field error on `username`.
pub fn register(conn: &mut Conn, cred: &Credentials, scope: Scope) -> Result<User, ServiceError> {
    let hash = hash_password(&cred.password)?;
    let t = now();
    let new = NewUser {
        openid: None,
        username: Some(&cred.username),
        password_hash: Some(&hash),
        nickname: &cred.username,
        scope: scope.code(),
        created_at: t,
        updated_at: t,
    };
    match user::insert(conn, &new) {
        Err(e) if db::is_unique_violation(&e) => {
            return Err(ServiceError::field("username", "该用户名已被注册"))
        }
        other => other?,
    };
    user::find_by_username(conn, &cred.username)?
        .ok_or_else(|| ServiceError::Internal("user vanished after insert".into()))
}

/// The user these credentials belong to. The same error for an unknown name and a wrong
/// password, and the hash is computed either way, so neither answer nor timing tells which.
pub fn login(conn: &mut Conn, cred: &Credentials) -> Result<User, ServiceError> {
    let found = user::find_by_username(conn, &cred.username)?;
    let hash = found.as_ref().and_then(|u| u.password_hash.clone());
    let ok = match &hash {
        Some(h) => password_matches(h, &cred.password),
        None => {
            let _ = hash_password(&cred.password);
            false
        }
    };
    match found {
        Some(u) if ok => Ok(u),
        _ => Err(ServiceError::BadCredentials),
    }
}

pub fn find(conn: &mut Conn, id: i32) -> Result<Option<User>, ServiceError> {
    Ok(user::find(conn, id)?)
}

/// The user of this openid, created on first login.
fn user_for_openid(conn: &mut Conn, openid: &str) -> Result<User, ServiceError> {
    if let Some(u) = user::find_by_openid(conn, openid)? {
        return Ok(u);
    }
    let t = now();
    let new = NewUser {
        openid: Some(openid),
        username: None,
        password_hash: None,
        nickname: "微信用户",
        scope: Scope::User.code(),
        created_at: t,
        updated_at: t,
    };
    match user::insert(conn, &new) {
        // Two first logins at once: the other one created the user.
        Err(e) if db::is_unique_violation(&e) => {}
        other => {
            other?;
        }
    }
    user::find_by_openid(conn, openid)?
        .ok_or_else(|| ServiceError::Internal("user vanished after insert".into()))
}

/// A fresh random token for the user of `openid`, valid for `ttl_minutes`.
pub fn issue_token(
    conn: &mut Conn,
    openid: &str,
    ttl_minutes: i64,
) -> Result<String, ServiceError> {
    let user = user_for_openid(conn, openid)?;
    let token = hex::encode(rand::thread_rng().gen::<[u8; 24]>());
    let t = now();
    user::insert_token(
        conn,
        &NewToken {
            token: &token,
            user_id: user.id,
            scope: user.scope,
            expires_at: t + chrono::Duration::minutes(ttl_minutes),
            created_at: t,
        },
    )?;
    Ok(token)
}

/// The user id and scope a token grants, or `TokenInvalid`.
pub fn resolve_token(conn: &mut Conn, token: &str) -> Result<(i32, Scope), ServiceError> {
    if token.is_empty() || token.len() > 64 {
        return Err(ServiceError::TokenInvalid);
    }
    let (uid, scope) = user::token_grant(conn, token, now())?.ok_or(ServiceError::TokenInvalid)?;
    let scope = Scope::from_code(scope).ok_or(ServiceError::TokenInvalid)?;
    Ok((uid, scope))
}

pub fn address(conn: &mut Conn, user_id: i32) -> Result<Option<Address>, ServiceError> {
    Ok(user::address_of(conn, user_id)?)
}

/// Creates or updates the user's address.
pub fn save_address(conn: &mut Conn, user_id: i32, a: &AddressCmd) -> Result<(), ServiceError> {
    let fields = AddressFields {
        user_id,
        name: &a.name,
        mobile: &a.mobile,
        province: &a.province,
        city: &a.city,
        district: &a.district,
        detail: &a.detail,
        updated_at: now(),
    };
    let save = |c: &mut Conn| db::write_tx(c, |c| user::save_address(c, &fields).map(|_| ()));
    match save(conn) {
        // A concurrent first save inserted the row: retrying turns ours into an update.
        Err(e) if db::is_unique_violation(&e) => save(conn)?,
        other => other?,
    }
    Ok(())
}

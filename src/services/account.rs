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

/// Failed logins allowed before the account starts to wait.
const FREE_FAILURES: i32 = 3;
/// Longest wait after repeated failures.
const MAX_LOCK_SECONDS: i64 = 300;

/// The wait after `failures` failed logins in a row: 0 for the first few, then doubling.
pub fn lock_seconds(failures: i32) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let exp = u32::try_from(failures - FREE_FAILURES).unwrap_or(0).min(16);
    (1i64 << exp).min(MAX_LOCK_SECONDS)
}

/// The throttle key of a typed name: its SHA-256 in hex, one width whatever was typed.
fn throttle_key(username: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(username.as_bytes()))
}

/// Login with a growing delay after repeated failures (kept in the database, so every
/// instance enforces it). Failures are counted by the name typed, whether or not a user has
/// it: an unknown name waits exactly as a known one, so the answers tell no names apart.
/// `require_admin`: only scope-32 users get in.
pub fn login_guarded(
    conn: &mut Conn,
    cred: &Credentials,
    require_admin: bool,
) -> Result<User, ServiceError> {
    let t = now();
    let key = throttle_key(&cred.username);
    let throttle = user::throttle(conn, &key)?;
    if let Some(until) = throttle
        .as_ref()
        .and_then(|th| th.locked_until)
        .filter(|until| *until > t)
    {
        let wait = (until - t).num_seconds().max(1);
        return Err(ServiceError::Refused(format!(
            "尝试次数过多，请 {wait} 秒后再试"
        )));
    }
    match login(conn, cred) {
        Ok(u) => {
            if throttle.is_some() {
                user::clear_failed_logins(conn, &key)?;
            }
            if require_admin && u.scope != Scope::Admin.code() {
                return Err(ServiceError::Forbidden);
            }
            Ok(u)
        }
        Err(ServiceError::BadCredentials) => {
            let wait = lock_seconds(throttle.map_or(0, |th| th.failures) + 1);
            let until = (wait > 0).then(|| t + chrono::Duration::seconds(wait));
            match user::record_failed_login(conn, &key, until, t) {
                // A concurrent first failure inserted the row: ours becomes an update.
                Err(e) if db::is_unique_violation(&e) => {
                    user::record_failed_login(conn, &key, until, t)?
                }
                other => other?,
            }
            Err(ServiceError::BadCredentials)
        }
        Err(e) => Err(e),
    }
}

/// Whether an admin session issued at `session_version` still stands: the user exists, is
/// still an admin, and has not changed its password since.
pub fn admin_session_valid(
    conn: &mut Conn,
    user_id: i32,
    session_version: i32,
) -> Result<bool, ServiceError> {
    Ok(user::find(conn, user_id)?
        .is_some_and(|u| u.scope == Scope::Admin.code() && u.session_version == session_version))
}

/// Sets an admin's password (`jiesuan reset-admin-password`): every session of that admin
/// ends, and the failed logins under its name are forgotten.
pub fn reset_admin_password(
    conn: &mut Conn,
    username: &str,
    password: &str,
) -> Result<(), ServiceError> {
    let admin = user::find_by_username(conn, username)?
        .filter(|u| u.scope == Scope::Admin.code())
        .ok_or_else(|| ServiceError::field("username", "没有这个管理员"))?;
    let hash = hash_password(password)?;
    user::set_password(conn, admin.id, &hash, now())?;
    user::clear_failed_logins(conn, &throttle_key(username))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_wait_grows_after_three_failures() {
        let waits: Vec<i64> = (1..=12).map(super::lock_seconds).collect();
        assert_eq!(waits, vec![0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    }
}

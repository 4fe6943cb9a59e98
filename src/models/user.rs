//! `users`, `user_address` and `user_token`.

use super::schema::{login_throttle, user_address, user_token, users};
use crate::db::Conn;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i32,
    pub openid: Option<String>,
    pub username: Option<String>,
    pub password_hash: Option<String>,
    pub nickname: String,
    pub scope: i32,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    /// Bumped when the password changes or the admin is removed: older sessions end.
    pub session_version: i32,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub openid: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub nickname: &'a str,
    pub scope: i32,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

pub fn insert(conn: &mut Conn, u: &NewUser<'_>) -> QueryResult<usize> {
    diesel::insert_into(users::table).values(u).execute(conn)
}

pub fn find(conn: &mut Conn, id: i32) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_openid(conn: &mut Conn, openid: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::openid.eq(openid))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_username(conn: &mut Conn, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn count_with_scope(conn: &mut Conn, scope: i32) -> QueryResult<i64> {
    users::table
        .filter(users::scope.eq(scope))
        .count()
        .get_result(conn)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = user_address)]
pub struct Address {
    pub id: i32,
    pub user_id: i32,
    pub name: String,
    pub mobile: String,
    pub province: String,
    pub city: String,
    pub district: String,
    pub detail: String,
    pub updated_at: chrono::NaiveDateTime,
}

#[derive(Debug, Insertable, AsChangeset)]
#[diesel(table_name = user_address)]
pub struct AddressFields<'a> {
    pub user_id: i32,
    pub name: &'a str,
    pub mobile: &'a str,
    pub province: &'a str,
    pub city: &'a str,
    pub district: &'a str,
    pub detail: &'a str,
    pub updated_at: chrono::NaiveDateTime,
}

pub fn address_of(conn: &mut Conn, user_id: i32) -> QueryResult<Option<Address>> {
    user_address::table
        .filter(user_address::user_id.eq(user_id))
        .select(Address::as_select())
        .first(conn)
        .optional()
}

/// Updates the user's one address; inserts it when there is none. Returns true on insert.
pub fn save_address(conn: &mut Conn, fields: &AddressFields<'_>) -> QueryResult<bool> {
    let updated =
        diesel::update(user_address::table.filter(user_address::user_id.eq(fields.user_id)))
            .set(fields)
            .execute(conn)?;
    if updated > 0 {
        return Ok(false);
    }
    diesel::insert_into(user_address::table)
        .values(fields)
        .execute(conn)?;
    Ok(true)
}

#[derive(Debug, Insertable)]
#[diesel(table_name = user_token)]
pub struct NewToken<'a> {
    pub token: &'a str,
    pub user_id: i32,
    pub scope: i32,
    pub expires_at: chrono::NaiveDateTime,
    pub created_at: chrono::NaiveDateTime,
}

pub fn insert_token(conn: &mut Conn, t: &NewToken<'_>) -> QueryResult<usize> {
    diesel::insert_into(user_token::table)
        .values(t)
        .execute(conn)
}

/// The (user id, scope) a token grants, if it exists and has not expired at `now`.
pub fn token_grant(
    conn: &mut Conn,
    token: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<Option<(i32, i32)>> {
    user_token::table
        .filter(user_token::token.eq(token))
        .filter(user_token::expires_at.gt(now))
        .select((user_token::user_id, user_token::scope))
        .first(conn)
        .optional()
}

/// Sets a new password hash and bumps the session version; true if the user exists.
pub fn set_password(
    conn: &mut Conn,
    id: i32,
    password_hash: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::session_version.eq(users::session_version + 1),
            users::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Failed logins in a row under one typed name, and how long that name must wait.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = login_throttle)]
pub struct Throttle {
    pub failures: i32,
    pub locked_until: Option<chrono::NaiveDateTime>,
}

pub fn throttle(conn: &mut Conn, name_key: &str) -> QueryResult<Option<Throttle>> {
    login_throttle::table
        .find(name_key)
        .select(Throttle::as_select())
        .first(conn)
        .optional()
}

/// Counts a failed login under `name_key` and makes it wait until `locked_until` (may be
/// None). Portable "upsert": update, else insert; a concurrent first insert makes ours an
/// update on retry (the caller sees the unique violation).
pub fn record_failed_login(
    conn: &mut Conn,
    name_key: &str,
    locked_until: Option<chrono::NaiveDateTime>,
    now: chrono::NaiveDateTime,
) -> QueryResult<()> {
    let updated = diesel::update(login_throttle::table.find(name_key))
        .set((
            login_throttle::failures.eq(login_throttle::failures + 1),
            login_throttle::locked_until.eq(locked_until),
            login_throttle::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(login_throttle::table)
            .values((
                login_throttle::name_key.eq(name_key),
                login_throttle::failures.eq(1),
                login_throttle::locked_until.eq(locked_until),
                login_throttle::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn clear_failed_logins(conn: &mut Conn, name_key: &str) -> QueryResult<usize> {
    diesel::delete(login_throttle::table.find(name_key)).execute(conn)
}

//! `api_token`: server API tokens (the mini-program's access_token), one row per app, shared
//! by every instance. Refreshes are claimed by compare-and-set on `lease_until`, so one
//! instance refreshes at a time and the others keep using the current token.

use super::schema::api_token;
use crate::db::{is_unique_violation, Conn};
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = api_token)]
pub struct ApiToken {
    pub name: String,
    pub token: String,
    pub expires_at: NaiveDateTime,
    pub lease_until: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("lease_until", &self.lease_until)
            .finish()
    }
}

pub fn find(conn: &mut Conn, name: &str) -> QueryResult<Option<ApiToken>> {
    api_token::table
        .find(name)
        .select(ApiToken::as_select())
        .first(conn)
        .optional()
}

/// Claims the refresh of `name` until `until`: the first claimant inserts an empty, expired
/// row; later, the UPDATE succeeds only if no other refresh holds an unexpired lease. True
/// when the caller must refresh.
pub fn claim_refresh(
    conn: &mut Conn,
    name: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(api_token::table)
        .values((
            api_token::name.eq(name),
            api_token::token.eq(""),
            api_token::expires_at.eq(now),
            api_token::lease_until.eq(Some(until)),
            api_token::updated_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => return Ok(true),
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(e),
    }
    let taken = diesel::update(
        api_token::table.filter(api_token::name.eq(name)).filter(
            api_token::lease_until
                .is_null()
                .or(api_token::lease_until.lt(now)),
        ),
    )
    .set(api_token::lease_until.eq(Some(until)))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Stores a fresh token and ends the refresh lease.
pub fn store(
    conn: &mut Conn,
    name: &str,
    token: &str,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(api_token::table.filter(api_token::name.eq(name)))
        .set((
            api_token::token.eq(token),
            api_token::expires_at.eq(expires_at),
            api_token::lease_until.eq(None::<NaiveDateTime>),
            api_token::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Ends a refresh lease that did not get a token (the next caller tries again).
pub fn release(conn: &mut Conn, name: &str) -> QueryResult<usize> {
    diesel::update(api_token::table.filter(api_token::name.eq(name)))
        .set(api_token::lease_until.eq(None::<NaiveDateTime>))
        .execute(conn)
}

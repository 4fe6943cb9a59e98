//! `pay_attempt`, `pay_log` and `refund`: the payment history of an order.

use super::schema::{pay_attempt, pay_log};
use crate::db::Conn;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pay_attempt)]
pub struct PayAttempt {
    pub id: i32,
    pub order_id: i32,
    pub out_trade_no: String,
    pub provider: String,
    pub channel: String,
    pub amount: i64,
    pub status: i32,
    pub sign_type: Option<String>,
    pub provider_ref: Option<String>,
    pub credential: Option<String>,
    pub transaction_no: Option<String>,
    pub expires_at: chrono::NaiveDateTime,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    pub query_count: i32,
    pub next_query_at: Option<chrono::NaiveDateTime>,
    pub not_found_count: i32,
    /// When a shopper's poll last made the shop ask the platform (see `claim_ask`).
    pub asked_at: Option<chrono::NaiveDateTime>,
    /// JSAPI: the openid the prepay_id was made for (only that user can pay it).
    pub payer: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = pay_attempt)]
pub struct NewAttempt<'a> {
    pub order_id: i32,
    pub out_trade_no: &'a str,
    pub provider: &'a str,
    pub channel: &'a str,
    pub amount: i64,
    pub status: i32,
    pub sign_type: Option<&'a str>,
    pub payer: Option<&'a str>,
    pub expires_at: chrono::NaiveDateTime,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

/// Inserts an attempt and reads it back by its unique out_trade_no.
pub fn insert_attempt(conn: &mut Conn, a: &NewAttempt<'_>) -> QueryResult<PayAttempt> {
    diesel::insert_into(pay_attempt::table)
        .values(a)
        .execute(conn)?;
    pay_attempt::table
        .filter(pay_attempt::out_trade_no.eq(a.out_trade_no))
        .select(PayAttempt::as_select())
        .first(conn)
}

pub fn attempts_of(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<PayAttempt>> {
    pay_attempt::table
        .filter(pay_attempt::order_id.eq(order_id))
        .order(pay_attempt::id.asc())
        .select(PayAttempt::as_select())
        .load(conn)
}

pub fn attempt_count(conn: &mut Conn, order_id: i32) -> QueryResult<i64> {
    pay_attempt::table
        .filter(pay_attempt::order_id.eq(order_id))
        .count()
        .get_result(conn)
}

/// Attempts in one status, all orders.
pub fn attempts_in_status(conn: &mut Conn, status: i32) -> QueryResult<i64> {
    pay_attempt::table
        .filter(pay_attempt::status.eq(status))
        .count()
        .get_result(conn)
}

pub fn find_attempt(conn: &mut Conn, out_trade_no: &str) -> QueryResult<Option<PayAttempt>> {
    pay_attempt::table
        .filter(pay_attempt::out_trade_no.eq(out_trade_no))
        .select(PayAttempt::as_select())
        .first(conn)
        .optional()
}

/// Records what the gateway answered at creation (prepay_id / ch_ id, code_url / credential).
pub fn set_prepared(
    conn: &mut Conn,
    id: i32,
    provider_ref: &str,
    credential: Option<&str>,
) -> QueryResult<usize> {
    diesel::update(pay_attempt::table.find(id))
        .set((
            pay_attempt::provider_ref.eq(provider_ref),
            pay_attempt::credential.eq(credential),
            pay_attempt::updated_at.eq(super::now()),
        ))
        .execute(conn)
}

/// Records a query that found no payment and when to ask next.
pub fn backoff(conn: &mut Conn, id: i32, next: chrono::NaiveDateTime) -> QueryResult<usize> {
    diesel::update(pay_attempt::table.find(id))
        .set((
            pay_attempt::query_count.eq(pay_attempt::query_count + 1),
            pay_attempt::next_query_at.eq(next),
        ))
        .execute(conn)
}

/// Records a query the platform answered "no such trade"; the new count.
pub fn not_found(conn: &mut Conn, id: i32, next: chrono::NaiveDateTime) -> QueryResult<i32> {
    diesel::update(pay_attempt::table.find(id))
        .set((
            pay_attempt::not_found_count.eq(pay_attempt::not_found_count + 1),
            pay_attempt::next_query_at.eq(next),
        ))
        .execute(conn)?;
    pay_attempt::table
        .find(id)
        .select(pay_attempt::not_found_count)
        .first(conn)
}

/// Claims the right to ask the platform about an attempt in `status` now: true for exactly
/// one caller when it was never asked for a shopper or last asked at or before `since`
/// (compare-and-set on `asked_at`, so concurrent polls from any instance ask once).
pub fn claim_ask(
    conn: &mut Conn,
    id: i32,
    status: i32,
    since: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    let rows = diesel::update(
        pay_attempt::table
            .filter(pay_attempt::id.eq(id))
            .filter(pay_attempt::status.eq(status))
            .filter(
                pay_attempt::asked_at
                    .is_null()
                    .or(pay_attempt::asked_at.le(since)),
            ),
    )
    .set(pay_attempt::asked_at.eq(now))
    .execute(conn)?;
    Ok(rows == 1)
}

/// Compare-and-set of an attempt's status; true when this call moved it.
pub fn cas_attempt(
    conn: &mut Conn,
    id: i32,
    from: &[i32],
    to: i32,
    transaction_no: Option<&str>,
) -> QueryResult<bool> {
    let target = pay_attempt::table
        .filter(pay_attempt::id.eq(id))
        .filter(pay_attempt::status.eq_any(from));
    let rows = match transaction_no {
        Some(t) => diesel::update(target)
            .set((
                pay_attempt::status.eq(to),
                pay_attempt::transaction_no.eq(t),
                pay_attempt::updated_at.eq(super::now()),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                pay_attempt::status.eq(to),
                pay_attempt::updated_at.eq(super::now()),
            ))
            .execute(conn)?,
    };
    Ok(rows == 1)
}

/// Attempts in `status` due for a query at `now`: never asked and created before `before`,
/// or whose backoff has run out. Oldest first.
pub fn attempts_due(
    conn: &mut Conn,
    status: i32,
    before: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<PayAttempt>> {
    pay_attempt::table
        .filter(pay_attempt::status.eq(status))
        .filter(
            pay_attempt::next_query_at
                .is_null()
                .and(pay_attempt::created_at.lt(before))
                .or(pay_attempt::next_query_at.le(now)),
        )
        .order(pay_attempt::id.asc())
        .limit(limit)
        .select(PayAttempt::as_select())
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pay_log)]
pub struct PayLog {
    pub id: i32,
    pub provider: String,
    pub kind: String,
    pub out_trade_no: Option<String>,
    pub order_id: Option<i32>,
    pub dedupe_key: Option<String>,
    pub raw_body: String,
    pub headers: String,
    pub remote_addr: String,
    pub verified: bool,
    pub outcome: String,
    pub reply: String,
    pub created_at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = pay_log)]
pub struct NewPayLog {
    pub provider: String,
    pub kind: String,
    pub out_trade_no: Option<String>,
    pub order_id: Option<i32>,
    pub dedupe_key: Option<String>,
    pub raw_body: String,
    pub headers: String,
    pub remote_addr: String,
    pub verified: bool,
    pub outcome: String,
    pub reply: String,
    pub created_at: chrono::NaiveDateTime,
}

/// Widths of the `pay_log` columns (VARCHAR(n) on MariaDB and PostgreSQL; the migrations of
/// every backend agree). `reply` and `headers` are TEXT: 64 KB on MariaDB.
pub mod log_width {
    pub const PROVIDER: usize = 16;
    pub const KIND: usize = 24;
    pub const OUT_TRADE_NO: usize = 32;
    pub const DEDUPE_KEY: usize = 96;
    pub const REMOTE_ADDR: usize = 64;
    pub const OUTCOME: usize = 64;
    pub const TEXT: usize = 8 * 1024;
}

/// Width of `transaction_no` and `provider_ref` (orders, pay_attempt, refund) and of
/// `refund.out_refund_no`.
pub const REF_WIDTH: usize = 64;

/// `s` as a column can hold it: NUL (which PostgreSQL TEXT cannot store) replaced by U+FFFD,
/// cut to `max` characters.
pub fn storable(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .take(max)
        .collect()
}

/// Whether `s` fits a column of `max` characters as it is (no NUL, not too long).
pub fn fits(s: &str, max: usize) -> bool {
    !s.contains('\0') && s.chars().count() <= max
}

pub fn insert_log(conn: &mut Conn, row: &NewPayLog) -> QueryResult<usize> {
    diesel::insert_into(pay_log::table)
        .values(row)
        .execute(conn)
}

/// Sets the outcome and reply of the log row holding `dedupe_key`.
pub fn finish_log(
    conn: &mut Conn,
    dedupe_key: &str,
    outcome: &str,
    reply: &str,
) -> QueryResult<usize> {
    diesel::update(pay_log::table.filter(pay_log::dedupe_key.eq(dedupe_key)))
        .set((pay_log::outcome.eq(outcome), pay_log::reply.eq(reply)))
        .execute(conn)
}

pub fn logs_of_order(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<PayLog>> {
    pay_log::table
        .filter(pay_log::order_id.eq(order_id))
        .order(pay_log::id.asc())
        .select(PayLog::as_select())
        .load(conn)
}

pub fn log_count(conn: &mut Conn) -> QueryResult<i64> {
    pay_log::table.count().get_result(conn)
}

/// Whether a log row with this dedupe key exists (a payment already applied).
pub fn dedupe_exists(conn: &mut Conn, key: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        pay_log::table.filter(pay_log::dedupe_key.eq(key)),
    ))
    .get_result(conn)
}

/// Succeeded attempts of `providers` whose success was recorded in `[from, to)`: the shop's
/// side of a day's bill.
pub fn succeeded_between(
    conn: &mut Conn,
    providers: &[&str],
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<PayAttempt>> {
    pay_attempt::table
        .filter(pay_attempt::provider.eq_any(providers))
        .filter(pay_attempt::status.eq(crate::domain::AttemptStatus::Succeeded.code()))
        .filter(pay_attempt::updated_at.ge(from))
        .filter(pay_attempt::updated_at.lt(to))
        .order(pay_attempt::id.asc())
        .select(PayAttempt::as_select())
        .load(conn)
}

/// Whether the pay log holds a row of `kind` for `out_trade_no` with one of `outcomes`.
pub fn logged_as(
    conn: &mut Conn,
    out_trade_no: &str,
    kind: &str,
    outcomes: &[&str],
) -> QueryResult<bool> {
    let n: i64 = pay_log::table
        .filter(pay_log::out_trade_no.eq(out_trade_no))
        .filter(pay_log::kind.eq(kind))
        .filter(pay_log::outcome.eq_any(outcomes))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn attempt_by_id(conn: &mut Conn, id: i32) -> QueryResult<Option<PayAttempt>> {
    pay_attempt::table
        .find(id)
        .select(PayAttempt::as_select())
        .first(conn)
        .optional()
}

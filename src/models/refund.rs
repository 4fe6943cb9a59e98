//! `refund`: one row per refund request, unique by out_refund_no.

use super::schema::refund;
use crate::db::Conn;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refund)]
pub struct Refund {
    pub id: i32,
    pub order_id: i32,
    pub attempt_id: i32,
    pub out_refund_no: String,
    pub amount: i64,
    pub reason: String,
    pub status: i32,
    pub provider_ref: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    /// Submissions that got a retryable answer (or none).
    pub tries: i32,
    /// When the refund sweep submits it (again); `None`: not by the sweep (an admin's).
    pub next_try_at: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refund)]
pub struct NewRefund<'a> {
    pub order_id: i32,
    pub attempt_id: i32,
    pub out_refund_no: &'a str,
    pub amount: i64,
    pub reason: &'a str,
    pub status: i32,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    pub next_try_at: Option<chrono::NaiveDateTime>,
}

pub fn insert(conn: &mut Conn, r: &NewRefund<'_>) -> QueryResult<Refund> {
    diesel::insert_into(refund::table).values(r).execute(conn)?;
    refund::table
        .filter(refund::out_refund_no.eq(r.out_refund_no))
        .select(Refund::as_select())
        .first(conn)
}

pub fn find_by_no(conn: &mut Conn, out_refund_no: &str) -> QueryResult<Option<Refund>> {
    refund::table
        .filter(refund::out_refund_no.eq(out_refund_no))
        .select(Refund::as_select())
        .first(conn)
        .optional()
}

pub fn of_order(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<Refund>> {
    refund::table
        .filter(refund::order_id.eq(order_id))
        .order(refund::id.asc())
        .select(Refund::as_select())
        .load(conn)
}

/// Compare-and-set of a refund's status (and the platform's refund id when given).
pub fn cas(
    conn: &mut Conn,
    id: i32,
    from: &[i32],
    to: i32,
    provider_ref: Option<&str>,
) -> QueryResult<bool> {
    let target = refund::table
        .filter(refund::id.eq(id))
        .filter(refund::status.eq_any(from));
    let rows = match provider_ref {
        Some(r) => diesel::update(target)
            .set((
                refund::status.eq(to),
                refund::provider_ref.eq(r),
                refund::updated_at.eq(super::now()),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((refund::status.eq(to), refund::updated_at.eq(super::now())))
            .execute(conn)?,
    };
    Ok(rows == 1)
}

/// Refunds in a status, oldest first (the sweep re-asks about unfinished ones).
pub fn in_status(conn: &mut Conn, status: i32, limit: i64) -> QueryResult<Vec<Refund>> {
    refund::table
        .filter(refund::status.eq(status))
        .order(refund::id.asc())
        .limit(limit)
        .select(Refund::as_select())
        .load(conn)
}

pub fn count_in_status(conn: &mut Conn, status: i32) -> QueryResult<i64> {
    refund::table
        .filter(refund::status.eq(status))
        .count()
        .get_result(conn)
}

/// Pending refunds whose next submission is due, oldest first.
pub fn due(
    conn: &mut Conn,
    pending: i32,
    at: chrono::NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Refund>> {
    refund::table
        .filter(refund::status.eq(pending))
        .filter(refund::next_try_at.le(at))
        .order(refund::id.asc())
        .limit(limit)
        .select(Refund::as_select())
        .load(conn)
}

/// A submission got a retryable answer: count it and submit again at `next`.
pub fn retry_at(conn: &mut Conn, id: i32, next: chrono::NaiveDateTime) -> QueryResult<()> {
    diesel::update(refund::table.find(id))
        .set((
            refund::tries.eq(refund::tries + 1),
            refund::next_try_at.eq(Some(next)),
            refund::updated_at.eq(super::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Succeeded refunds of `providers`' payments, completed in `[from, to)`: the shop's side of
/// a day's bill.
pub fn succeeded_between(
    conn: &mut Conn,
    providers: &[&str],
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<Refund>> {
    use super::schema::pay_attempt;
    refund::table
        .inner_join(pay_attempt::table.on(pay_attempt::id.eq(refund::attempt_id)))
        .filter(pay_attempt::provider.eq_any(providers))
        .filter(refund::status.eq(crate::domain::RefundStatus::Succeeded.code()))
        .filter(refund::updated_at.ge(from))
        .filter(refund::updated_at.lt(to))
        .order(refund::id.asc())
        .select(Refund::as_select())
        .load(conn)
}

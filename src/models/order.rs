//! `orders` and `order_product`. Status writes are compare-and-set on the old status.

use super::schema::{order_product, orders};
use crate::db::Conn;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orders)]
pub struct Order {
    pub id: i32,
    pub order_no: String,
    pub user_id: i32,
    pub status: i32,
    pub total_price: i64,
    pub total_count: i32,
    pub snap_name: String,
    pub snap_img: String,
    pub snap_address: String,
    pub snap_items: String,
    pub pay_channel: Option<String>,
    pub pay_name: Option<String>,
    pub transaction_no: Option<String>,
    pub paid_at: Option<chrono::NaiveDateTime>,
    pub expires_at: chrono::NaiveDateTime,
    pub closed_at: Option<chrono::NaiveDateTime>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = orders)]
pub struct NewOrder<'a> {
    pub order_no: &'a str,
    pub user_id: i32,
    pub status: i32,
    pub total_price: i64,
    pub total_count: i32,
    pub snap_name: &'a str,
    pub snap_img: &'a str,
    pub snap_address: &'a str,
    pub snap_items: &'a str,
    pub expires_at: chrono::NaiveDateTime,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

/// One line of `snap_items`: the product as it was when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLine {
    pub id: i32,
    pub name: String,
    pub price: i64,
    pub count: i32,
    pub total_price: i64,
    #[serde(default)]
    pub main_img_url: String,
}

/// Inserts the order and returns its id, found again by its unique order number (portable:
/// MySQL has no RETURNING, and "the last row" is a race).
pub fn insert(conn: &mut Conn, o: &NewOrder<'_>) -> QueryResult<i32> {
    use diesel::result::{DatabaseErrorKind, Error};
    diesel::insert_into(orders::table).values(o).execute(conn)?;
    match orders::table
        .filter(orders::order_no.eq(o.order_no))
        .select(orders::id)
        .first(conn)
    {
        // Our own insert, unseen: the transaction was aborted under us (a Galera node's
        // brute-force abort). A conflict, to be run again, never a 500.
        Err(Error::NotFound) => Err(Error::DatabaseError(
            DatabaseErrorKind::SerializationFailure,
            Box::new("the order just inserted is not visible: transaction aborted".to_string()),
        )),
        other => other,
    }
}

pub fn insert_line(
    conn: &mut Conn,
    order_id: i32,
    product_id: i32,
    count: i32,
) -> QueryResult<usize> {
    diesel::insert_into(order_product::table)
        .values((
            order_product::order_id.eq(order_id),
            order_product::product_id.eq(product_id),
            order_product::count.eq(count),
        ))
        .execute(conn)
}

/// `(product_id, count)` of an order, by product id.
pub fn lines(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<(i32, i32)>> {
    order_product::table
        .filter(order_product::order_id.eq(order_id))
        .order(order_product::product_id.asc())
        .select((order_product::product_id, order_product::count))
        .load(conn)
}

pub fn find(conn: &mut Conn, id: i32) -> QueryResult<Option<Order>> {
    orders::table
        .find(id)
        .select(Order::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_no(conn: &mut Conn, order_no: &str) -> QueryResult<Option<Order>> {
    orders::table
        .filter(orders::order_no.eq(order_no))
        .select(Order::as_select())
        .first(conn)
        .optional()
}

/// A page of the user's orders, newest first, and the user's order count.
pub fn page_of_user(
    conn: &mut Conn,
    user_id: i32,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Order>, i64)> {
    let rows = orders::table
        .filter(orders::user_id.eq(user_id))
        .order(orders::id.desc())
        .limit(limit)
        .offset(offset)
        .select(Order::as_select())
        .load(conn)?;
    let total = orders::table
        .filter(orders::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok((rows, total))
}

pub fn count(conn: &mut Conn) -> QueryResult<i64> {
    orders::table.count().get_result(conn)
}

/// What a verified payment writes on the order.
#[derive(Debug, Clone)]
pub struct PaidFields<'a> {
    pub pay_channel: &'a str,
    pub pay_name: &'a str,
    pub transaction_no: &'a str,
    pub paid_at: chrono::NaiveDateTime,
}

/// Compare-and-set `from -> to` with the payment fields; true when this call moved it.
pub fn cas_paid(
    conn: &mut Conn,
    id: i32,
    from: i32,
    to: i32,
    paid: &PaidFields<'_>,
) -> QueryResult<bool> {
    let rows = diesel::update(
        orders::table
            .filter(orders::id.eq(id))
            .filter(orders::status.eq(from)),
    )
    .set((
        orders::status.eq(to),
        orders::pay_channel.eq(paid.pay_channel),
        orders::pay_name.eq(paid.pay_name),
        orders::transaction_no.eq(paid.transaction_no),
        orders::paid_at.eq(paid.paid_at),
        orders::updated_at.eq(super::now()),
    ))
    .execute(conn)?;
    Ok(rows == 1)
}

/// Compare-and-set of the status alone.
pub fn cas_status(conn: &mut Conn, id: i32, from: i32, to: i32) -> QueryResult<bool> {
    let rows = diesel::update(
        orders::table
            .filter(orders::id.eq(id))
            .filter(orders::status.eq(from)),
    )
    .set((orders::status.eq(to), orders::updated_at.eq(super::now())))
    .execute(conn)?;
    Ok(rows == 1)
}

/// The status code of an order.
pub fn status_of_no(conn: &mut Conn, order_no: &str) -> QueryResult<Option<i32>> {
    orders::table
        .filter(orders::order_no.eq(order_no))
        .select(orders::status)
        .first(conn)
        .optional()
}

/// Unpaid orders whose expiry has passed, oldest first.
pub fn expired_unpaid(
    conn: &mut Conn,
    unpaid: i32,
    now: chrono::NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Order>> {
    orders::table
        .filter(orders::status.eq(unpaid))
        .filter(orders::expires_at.le(now))
        .order(orders::expires_at.asc())
        .limit(limit)
        .select(Order::as_select())
        .load(conn)
}

/// Compare-and-set `from -> Closed`, stamping closed_at.
pub fn cas_closed(
    conn: &mut Conn,
    id: i32,
    from: i32,
    to: i32,
    at: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    let rows = diesel::update(
        orders::table
            .filter(orders::id.eq(id))
            .filter(orders::status.eq(from)),
    )
    .set((
        orders::status.eq(to),
        orders::closed_at.eq(at),
        orders::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(rows == 1)
}

/// Touches the order row if it is still in `status`: the first statement of a transaction
/// that must be serialised per order (it takes the row's write lock on MySQL and PostgreSQL;
/// SQLite's BEGIN IMMEDIATE already serialises).
pub fn lock_in_status(conn: &mut Conn, id: i32, status: &[i32]) -> QueryResult<bool> {
    let rows = diesel::update(
        orders::table
            .filter(orders::id.eq(id))
            .filter(orders::status.eq_any(status)),
    )
    .set(orders::updated_at.eq(super::now()))
    .execute(conn)?;
    Ok(rows == 1)
}

/// Takes the order row's write lock for the rest of the transaction (MySQL, PostgreSQL;
/// SQLite's BEGIN IMMEDIATE already holds the database's).
pub fn touch(conn: &mut Conn, id: i32) -> QueryResult<usize> {
    diesel::update(orders::table.filter(orders::id.eq(id)))
        .set(orders::updated_at.eq(super::now()))
        .execute(conn)
}

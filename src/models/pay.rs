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
}

pub fn attempts_of(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<PayAttempt>> {
    pay_attempt::table
        .filter(pay_attempt::order_id.eq(order_id))
        .order(pay_attempt::id.asc())
        .select(PayAttempt::as_select())
        .load(conn)
}

pub fn log_count(conn: &mut Conn) -> QueryResult<i64> {
    pay_log::table.count().get_result(conn)
}

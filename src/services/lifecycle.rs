//! After placement: closing unpaid orders (stock given back), delivery, refunds, and the
//! callback-health alarm. Every status write is compare-and-set and writes an `order_event`
//! in the same transaction.

use super::ServiceError;
use crate::db::{self, Conn};
use crate::domain::{AttemptStatus, Channel, OrderStatus, RefundStatus};
use crate::models::event;
use crate::models::order;
use crate::models::pay;
use crate::models::refund as refunds;
use crate::models::schema::pay_log;
use crate::models::shipment;
use crate::models::{now, product, Order};
use diesel::prelude::*;

fn status_of(o: &Order) -> Result<OrderStatus, ServiceError> {
    OrderStatus::from_code(o.status).map_err(|e| ServiceError::Internal(e.to_string()))
}

/// Unpaid orders past their expiry.
pub fn expired_unpaid(conn: &mut Conn, limit: i64) -> Result<Vec<Order>, ServiceError> {
    Ok(order::expired_unpaid(
        conn,
        OrderStatus::Unpaid.code(),
        now(),
        limit,
    )?)
}

/// Unpaid -> Closed with its stock given back and its pending attempts closed, in one
/// transaction. False when the order was no longer unpaid (a payment won the race).
pub fn close(
    conn: &mut Conn,
    order_id: i32,
    actor: &str,
    note: &str,
) -> Result<bool, ServiceError> {
    close_once(conn, order_id, actor, note)
}

fn close_once(
    conn: &mut Conn,
    order_id: i32,
    actor: &str,
    note: &str,
) -> Result<bool, ServiceError> {
    db::write_tx(conn, |c| {
        let from = OrderStatus::Unpaid;
        let to = from
            .close()
            .ok_or_else(|| ServiceError::Internal("unpaid cannot close".into()))?;
        if !order::cas_closed(c, order_id, from.code(), to.code(), now())? {
            return Ok(false);
        }
        for (pid, n) in order::lines(c, order_id)? {
            product::release_stock(c, pid, n)?;
        }
        let pending = AttemptStatus::Pending;
        if let Some(closed) = pending.close() {
            for a in pay::attempts_of(c, order_id)? {
                pay::cas_attempt(c, a.id, &[pending.code()], closed.code(), None)?;
            }
        }
        event::record(
            c,
            order_id,
            "closed",
            Some((from.code(), to.code())),
            actor,
            note,
        )?;
        Ok(true)
    })
}

pub use crate::domain::CARRIERS;

/// What the admin typed to ship an order.
#[derive(Debug, Clone)]
pub struct ShipRequest {
    pub order_id: i32,
    pub carrier: String,
    pub tracking_no: String,
    pub actor: String,
}

impl ShipRequest {
    /// Field errors (`carrier`, `tracking_no`) for what cannot be a parcel.
    pub fn check(&self) -> super::FieldErrors {
        let mut e = super::FieldErrors::new();
        if !CARRIERS.contains(&self.carrier.as_str()) {
            e.insert("carrier".into(), "请选择快递公司".into());
        }
        let no = &self.tracking_no;
        if no.is_empty()
            || no.len() > 40
            || !no.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            e.insert(
                "tracking_no".into(),
                "请填写运单号（字母、数字或 -，40 位以内）".into(),
            );
        }
        e
    }
}

/// Paid -> Delivered, or PartiallyRefunded kept as is, with the parcel recorded.
pub fn deliver(conn: &mut Conn, req: &ShipRequest) -> Result<(), ServiceError> {
    let errors = req.check();
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    let order_id = req.order_id;
    db::write_tx(conn, |c| {
        let o = order::find(c, order_id)?.ok_or(ServiceError::OrderNotFound)?;
        let from = status_of(&o)?;
        let to = from.deliver().ok_or(ServiceError::Refused(
            "只有已支付（或部分退款）的订单可以发货".into(),
        ))?;
        if shipment::of_order(c, order_id)?.is_some() {
            return Err(ServiceError::Refused("订单已发货".into()));
        }
        if to != from && !order::cas_status(c, order_id, from.code(), to.code())? {
            return Err(ServiceError::Refused(
                "订单状态刚刚变化，请刷新后重试".into(),
            ));
        }
        // The unique index refuses a parcel recorded meanwhile by another request.
        if let Err(e) = shipment::insert(c, order_id, &req.carrier, &req.tracking_no, &req.actor) {
            return Err(if db::is_unique_violation(&e) {
                ServiceError::Refused("订单已发货".into())
            } else {
                e.into()
            });
        }
        // Paid in the mini-program: WeChat holds the money until the parcel is reported.
        let channel = o.pay_channel.as_deref().and_then(Channel::parse);
        if channel.is_some_and(Channel::in_mini_program) {
            shipment::require_upload(c, order_id, now())?;
        }
        event::record(
            c,
            order_id,
            "delivered",
            (to != from).then_some((from.code(), to.code())),
            &req.actor,
            &format!("{} {}", req.carrier, req.tracking_no),
        )?;
        Ok(())
    })
}

/// Whether the platforms' callbacks are reaching the shop.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct CallbackHealth {
    pub degraded: bool,
    /// Payments confirmed by query within the window.
    pub confirmed_by_query: i64,
    /// The newest verified notification, Asia/Shanghai.
    pub last_verified_notification: Option<String>,
}

/// The database's figures for `/metrics`: open (pending) attempts and refunds by status
/// (the pool's figures and the retry count are the caller's).
pub fn metrics_figures(conn: &mut Conn) -> Result<crate::metrics::DbFigures, ServiceError> {
    let open_attempts = pay::attempts_in_status(conn, AttemptStatus::Pending.code())?;
    let refunds = RefundStatus::ALL
        .into_iter()
        .map(|s| Ok((s, refunds::count_in_status(conn, s.code())?)))
        .collect::<Result<Vec<_>, ServiceError>>()?;
    Ok(crate::metrics::DbFigures {
        open_attempts,
        refunds,
        pool_connections: 0,
        pool_idle: 0,
        db_retries: 0,
    })
}

/// Degraded when, within `window`, no verified notification arrived but at least
/// `min_confirmations` payments had to be confirmed by query: callbacks are failing (a WAF,
/// a CDN, a wrong notify_url). Clears with the next verified notification.
pub fn callback_health(
    conn: &mut Conn,
    window: chrono::Duration,
    min_confirmations: i64,
) -> Result<CallbackHealth, ServiceError> {
    let since = now() - window;
    let last: Option<chrono::NaiveDateTime> = pay_log::table
        .filter(pay_log::kind.eq_any(["notify", "webhook"]))
        .filter(pay_log::verified.eq(true))
        .select(diesel::dsl::max(pay_log::created_at))
        .first(conn)?;
    let confirmed: i64 = pay_log::table
        .filter(pay_log::kind.eq("query"))
        .filter(pay_log::outcome.eq_any(["paid", "late_paid", "paid_out_of_stock"]))
        .filter(pay_log::created_at.gt(since))
        .count()
        .get_result(conn)?;
    let quiet = last.is_none_or(|t| t < since);
    Ok(CallbackHealth {
        degraded: quiet && confirmed >= min_confirmations,
        confirmed_by_query: confirmed,
        last_verified_notification: last.map(crate::domain::format_shanghai),
    })
}

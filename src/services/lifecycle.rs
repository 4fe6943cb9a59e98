//! After placement: closing unpaid orders (stock given back), delivery, refunds, and the
//! callback-health alarm. Every status write is compare-and-set and writes an `order_event`
//! in the same transaction.

use super::ServiceError;
use crate::db::{self, Conn};
use crate::domain::{AttemptStatus, Money, OrderStatus, RefundStatus};
use crate::models::event;
use crate::models::order;
use crate::models::pay::{self, PayAttempt};
use crate::models::refund::{self as refunds, NewRefund, Refund};
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
    super::retry_deadlocks(|| close_once(conn, order_id, actor, note))
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

/// What has been refunded on an order so far (succeeded refunds).
pub fn refunded_total(conn: &mut Conn, order_id: i32) -> Result<Money, ServiceError> {
    let done = RefundStatus::Succeeded.code();
    let mut total = Money::ZERO;
    for r in refunds::of_order(conn, order_id)?
        .iter()
        .filter(|r| r.status == done)
    {
        total = total.checked_add(Money::from_fen(r.amount))?;
    }
    Ok(total)
}

/// The carriers an admin can pick when shipping.
pub const CARRIERS: [&str; 9] = [
    "顺丰速运",
    "京东物流",
    "中国邮政",
    "EMS",
    "中通快递",
    "圆通速递",
    "韵达快递",
    "申通快递",
    "极兔速递",
];

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

/// The attempt that paid the order: the succeeded one whose transaction number the order
/// carries, else the first that succeeded.
pub fn paying_attempt<'a>(o: &Order, attempts: &'a [PayAttempt]) -> Option<&'a PayAttempt> {
    let succeeded = || {
        attempts
            .iter()
            .filter(|a| a.status == AttemptStatus::Succeeded.code())
    };
    succeeded()
        .find(|a| a.transaction_no == o.transaction_no)
        .or_else(|| succeeded().next())
}

/// Money of `attempt` committed to refunds that are not refused (a second payment's own
/// refund draws on that payment, not on the one that paid the order).
pub fn held_by_refunds(refunds: &[Refund], attempt: &PayAttempt) -> i64 {
    refunds
        .iter()
        .filter(|x| x.attempt_id == attempt.id)
        .filter(|x| RefundStatus::from_code(x.status).is_some_and(RefundStatus::holds_money))
        .map(|x| x.amount)
        .sum()
}

/// An admin's refund request.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub order_id: i32,
    pub amount: Money,
    pub reason: String,
    /// Made when the form was rendered: a retried submit is the same refund.
    pub out_refund_no: String,
    pub actor: String,
}

/// Statuses an order can be refunded from.
fn refundable(s: OrderStatus) -> bool {
    s.refund(false).is_some()
}

/// Records a refund (Pending) if the order can still give back that much. The order row is
/// locked first, so two requests at once are serialised and the second sees the first.
/// A retry with the same out_refund_no returns the same refund (`false`: not new).
pub fn start_refund(
    conn: &mut Conn,
    r: &RefundRequest,
) -> Result<(Refund, PayAttempt, bool), ServiceError> {
    if r.amount.fen() <= 0 {
        return Err(ServiceError::field("amount", "退款金额必须大于 0"));
    }
    let ok = (1..=64).contains(&r.out_refund_no.len())
        && r.out_refund_no.bytes().all(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(ServiceError::field("out_refund_no", "退款单号无效"));
    }
    let result = db::write_tx(conn, |c| {
        let codes: Vec<i32> = OrderStatus::ALL
            .into_iter()
            .filter(|s| refundable(*s))
            .map(OrderStatus::code)
            .collect();
        if !order::lock_in_status(c, r.order_id, &codes)? {
            return Err(ServiceError::Refused("该订单当前状态不能退款".into()));
        }
        let o = order::find(c, r.order_id)?.ok_or(ServiceError::OrderNotFound)?;
        let attempts = pay::attempts_of(c, o.id)?;
        let attempt = paying_attempt(&o, &attempts)
            .cloned()
            .ok_or_else(|| ServiceError::Refused("订单没有成功的支付记录".into()))?;
        if let Some(existing) = refunds::find_by_no(c, &r.out_refund_no)? {
            if existing.order_id == r.order_id && existing.amount == r.amount.fen() {
                return Ok((existing, attempt, false));
            }
            return Err(ServiceError::Refused("退款单号已被使用".into()));
        }
        let held = held_by_refunds(&refunds::of_order(c, o.id)?, &attempt);
        let left = attempt.amount - held;
        if r.amount.fen() > left {
            return Err(ServiceError::field(
                "amount",
                &format!("退款金额超过可退金额 {}", Money::from_fen(left.max(0))),
            ));
        }
        let t = now();
        let refund = refunds::insert(
            c,
            &NewRefund {
                order_id: o.id,
                attempt_id: attempt.id,
                out_refund_no: &r.out_refund_no,
                amount: r.amount.fen(),
                reason: &r.reason,
                status: RefundStatus::Pending.code(),
                created_at: t,
                updated_at: t,
                next_try_at: None,
            },
        )?;
        let note = format!("申请退款 {}：{}", r.amount, r.reason);
        event::record(c, o.id, "refund_requested", None, &r.actor, &note)?;
        Ok((refund, attempt, true))
    });
    match result {
        // The same out_refund_no submitted twice at once: the other one recorded it.
        Err(ServiceError::Db(e)) if db::is_unique_violation(&e) => {
            let again = start_refund(conn, r)?;
            Ok((again.0, again.1, false))
        }
        other => other,
    }
}

/// The platform accepted the refund.
pub fn refund_accepted(
    conn: &mut Conn,
    refund_id: i32,
    provider_ref: &str,
) -> Result<(), ServiceError> {
    let from = RefundStatus::Pending;
    if let Some(to) = from.accept() {
        refunds::cas(
            conn,
            refund_id,
            &[from.code()],
            to.code(),
            Some(provider_ref),
        )?;
    }
    Ok(())
}

/// The platform refused the refund: the money is refundable again.
pub fn refund_failed(conn: &mut Conn, refund_id: i32, why: &str) -> Result<(), ServiceError> {
    db::write_tx(conn, |c| {
        let from = [
            RefundStatus::Pending.code(),
            RefundStatus::Processing.code(),
        ];
        if refunds::cas(c, refund_id, &from, RefundStatus::Failed.code(), None)? {
            let order_id = refunds_order(c, refund_id)?;
            event::record(c, order_id, "refund_failed", None, "system", why)?;
        }
        Ok(())
    })
}

/// The platform closed the refund or could not deliver it (WeChat REFUNDCLOSE / CHANGE):
/// Abnormal, an alarm for the admin, and never submitted again automatically.
pub fn refund_abnormal(conn: &mut Conn, refund_id: i32, why: &str) -> Result<(), ServiceError> {
    db::write_tx(conn, |c| {
        let from = [
            RefundStatus::Pending.code(),
            RefundStatus::Processing.code(),
        ];
        if refunds::cas(c, refund_id, &from, RefundStatus::Abnormal.code(), None)? {
            let order_id = refunds_order(c, refund_id)?;
            event::record(c, order_id, "refund_abnormal", None, "system", why)?;
            log::warn!("refund {refund_id} is abnormal at the platform: {why}");
        }
        Ok(())
    })
}

/// The wait before the `n`th resubmission of a refund: 30 s doubling, at most an hour.
pub fn refund_retry_after(tries: i32) -> chrono::Duration {
    super::pay::backoff_after(tries)
}

/// The platform could not settle the refund yet (SYSTEMERROR, BIZERR_NEED_RETRY,
/// FREQUENCY_LIMITED, a timeout): it stays Pending and the refund sweep submits it again,
/// with the same out_refund_no, later.
pub fn refund_retry(conn: &mut Conn, r: &Refund) -> Result<(), ServiceError> {
    refunds::retry_at(conn, r.id, now() + refund_retry_after(r.tries))?;
    Ok(())
}

/// Pending refunds due for (re)submission by the refund sweep.
pub fn due_refunds(conn: &mut Conn, limit: i64) -> Result<Vec<Refund>, ServiceError> {
    Ok(refunds::due(
        conn,
        RefundStatus::Pending.code(),
        now(),
        limit,
    )?)
}

fn refunds_order(c: &mut Conn, refund_id: i32) -> Result<i32, ServiceError> {
    use crate::models::schema::refund;
    Ok(refund::table
        .find(refund_id)
        .select(refund::order_id)
        .first(c)?)
}

/// The refund is done (notification or query): Succeeded, and the order Refunded or
/// PartiallyRefunded by the sum of its succeeded refunds. Runs inside the caller's
/// transaction; true when this call completed it.
pub fn complete_refund_in(
    c: &mut Conn,
    r: &Refund,
    provider_ref: &str,
    actor: &str,
) -> Result<bool, ServiceError> {
    let from = [
        RefundStatus::Pending.code(),
        RefundStatus::Processing.code(),
    ];
    if !refunds::cas(
        c,
        r.id,
        &from,
        RefundStatus::Succeeded.code(),
        Some(provider_ref),
    )? {
        return Ok(false);
    }
    let attempts = pay::attempts_of(c, r.order_id)?;
    let paid = attempts
        .iter()
        .find(|a| a.id == r.attempt_id)
        .map(|a| a.amount)
        .unwrap_or(0);
    let done: i64 = refunds::of_order(c, r.order_id)?
        .iter()
        .filter(|x| x.attempt_id == r.attempt_id && x.status == RefundStatus::Succeeded.code())
        .map(|x| x.amount)
        .sum();
    let o = order::find(c, r.order_id)?.ok_or(ServiceError::OrderNotFound)?;
    if paying_attempt(&o, &attempts).is_some_and(|a| a.id != r.attempt_id) {
        // A second payment given back: the order keeps the status its own payment gave it.
        event::record(
            c,
            o.id,
            "refunded",
            None,
            actor,
            &format!("重复支付退款 {} 成功", Money::from_fen(r.amount)),
        )?;
        return Ok(true);
    }
    for _ in 0..3 {
        let o = order::find(c, r.order_id)?.ok_or(ServiceError::OrderNotFound)?;
        let s = status_of(&o)?;
        let Some(to) = s.refund(done >= paid) else {
            // Already Refunded (e.g. a second payment's refund): keep the status.
            event::record(
                c,
                o.id,
                "refunded",
                None,
                actor,
                &format!("退款 {} 成功", Money::from_fen(r.amount)),
            )?;
            return Ok(true);
        };
        if order::cas_status(c, o.id, s.code(), to.code())? {
            let note = format!(
                "退款 {} 成功（累计 {}）",
                Money::from_fen(r.amount),
                Money::from_fen(done)
            );
            event::record(
                c,
                o.id,
                "refunded",
                Some((s.code(), to.code())),
                actor,
                &note,
            )?;
            return Ok(true);
        }
    }
    Err(ServiceError::Internal(format!(
        "order {} kept changing",
        r.order_id
    )))
}

pub fn refund_by_no(conn: &mut Conn, out_refund_no: &str) -> Result<Option<Refund>, ServiceError> {
    Ok(refunds::find_by_no(conn, out_refund_no)?)
}

/// The attempt a refund draws on.
pub fn refund_attempt(conn: &mut Conn, r: &Refund) -> Result<PayAttempt, ServiceError> {
    pay::attempts_of(conn, r.order_id)?
        .into_iter()
        .find(|a| a.id == r.attempt_id)
        .ok_or_else(|| ServiceError::Internal(format!("refund {} has no attempt", r.id)))
}

/// Refunds the platform accepted and has not finished.
pub fn unfinished_refunds(conn: &mut Conn, limit: i64) -> Result<Vec<Refund>, ServiceError> {
    Ok(refunds::in_status(
        conn,
        RefundStatus::Processing.code(),
        limit,
    )?)
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
/// (the pool's figures are the caller's).
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

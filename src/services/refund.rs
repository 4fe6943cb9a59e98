//! Refunds, in one place: recording one (the order row locked, the refundable amount
//! checked), submitting it through its attempt's connector (an open answer retried under
//! the same out_refund_no), asking about it, completing it exactly once whichever door
//! reports it (notification or query: one dedupe key), and the refund sweep.

use super::gateway::{clip, outbound, trade, Gateway};
use super::pay::{self, LogEntry};
use super::{run, ServiceError};
use crate::db::{self, Conn};
use crate::domain::{AttemptStatus, Money, OrderStatus, Provider, RefundStatus};
use crate::models::event;
use crate::models::order;
use crate::models::pay::{self as pay_model, PayAttempt};
use crate::models::refund::{self as refunds, NewRefund, Refund};
use crate::models::{now, Order};
use crate::payment::connector::{RefundOrder, RefundState, Submitted};
use diesel::prelude::*;

/// The one key under which a platform's refund is completed: a refund reported by its
/// notification and found by a query is the same refund.
pub fn dedupe_key(provider: Provider, refund_ref: &str) -> String {
    format!("{}-refund:{refund_ref}", provider.id_space())
}

/// How long a new refund waits for its first submission's answer before the refund sweep
/// submits it (again: the platforms settle a repeat as the same refund).
const UNANSWERED_SUBMISSION: chrono::Duration = chrono::Duration::minutes(2);

fn status_of(o: &Order) -> Result<OrderStatus, ServiceError> {
    OrderStatus::from_code(o.status).map_err(|e| ServiceError::Internal(e.to_string()))
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
        let attempts = pay_model::attempts_of(c, o.id)?;
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
                // Submitted at once by whoever asked; if that never records an answer (a
                // crash, a failure before the call), the refund sweep submits it then.
                next_try_at: Some(t + UNANSWERED_SUBMISSION),
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
    let attempts = pay_model::attempts_of(c, r.order_id)?;
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
    pay_model::attempts_of(conn, r.order_id)?
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

/// Completes a refund the platform reports done, exactly once: the log row with its
/// `dedupe_key` first (a duplicate rolls back on the unique index), then the refund and the
/// order. True when this call completed it.
pub fn apply_refund(
    conn: &mut Conn,
    refund: &Refund,
    provider_ref: &str,
    entry: &LogEntry,
    out_trade_no: &str,
    reply: &str,
) -> Result<bool, ServiceError> {
    use crate::models::pay as pay_rows;
    let key = dedupe_key(entry.provider, provider_ref);
    let dedupe_key = key.as_str();
    let actor = format!("{} {}", entry.provider, entry.kind);
    let row = |outcome: &str, key: Option<&str>| {
        entry.row(
            Some(out_trade_no),
            Some(refund.order_id),
            key,
            outcome,
            reply,
        )
    };
    let result = crate::db::write_tx(conn, |c| -> Result<bool, ServiceError> {
        pay_rows::insert_log(c, &row("refund_processing", Some(dedupe_key)))?;
        let done = complete_refund_in(c, refund, provider_ref, &actor)?;
        let outcome = if done { "refunded" } else { "refund_duplicate" };
        pay_rows::finish_log(c, dedupe_key, outcome, reply)?;
        Ok(done)
    });
    match result {
        Err(ServiceError::Db(e)) if crate::db::is_unique_violation(&e) => {
            crate::db::write_tx(conn, |c| {
                pay_rows::insert_log(c, &row("refund_duplicate", None))
            })?;
            Ok(false)
        }
        other => other,
    }
}

/// A refund as its connector sees it.
fn refund_order(r: &Refund, attempt: &PayAttempt) -> RefundOrder {
    RefundOrder {
        trade: trade(attempt),
        out_refund_no: r.out_refund_no.clone(),
        amount: Money::from_fen(r.amount),
        reason: r.reason.clone(),
        tries: r.tries,
        refund_ref: r.provider_ref.clone(),
    }
}

impl Gateway {
    /// Records and submits a refund; a retried request returns the same refund.
    pub async fn refund(&self, req: RefundRequest) -> Result<Refund, ServiceError> {
        let (refund, _, _) = run(&self.db, move |c| start_refund(c, &req)).await?;
        self.submit_refund(refund).await
    }

    /// Sends a Pending refund to its platform (a refund already sent is returned as it is);
    /// the refund as it stands afterwards. Only a definitive refusal fails it (an error); an
    /// answer that leaves the outcome open (a timeout, a 5xx, SYSTEMERROR,
    /// BIZERR_NEED_RETRY, FREQUENCY_LIMITED) keeps it Pending for the refund sweep, which
    /// submits it again under the same out_refund_no.
    pub async fn submit_refund(&self, refund: Refund) -> Result<Refund, ServiceError> {
        if refund.status != RefundStatus::Pending.code() {
            return Ok(refund);
        }
        let r = refund.clone();
        let attempt = run(&self.db, move |c| refund_attempt(c, &r)).await?;
        let (id, no) = (refund.id, attempt.out_trade_no.clone());
        let (provider, connector) = self.connector_of(&attempt).await?;
        match connector.refund(&refund_order(&refund, &attempt)).await {
            Submitted::Accepted { refund_ref, raw } => {
                let entry = outbound(provider, "refund", raw);
                run(&self.db, move |c| {
                    refund_accepted(c, id, &refund_ref)?;
                    pay::log_only(c, &entry, Some(&no), "refund_accepted", "")
                })
                .await?;
            }
            Submitted::Retry(why) => {
                let entry = outbound(provider, "refund", why.clone());
                let outcome = clip(&format!("refund_retry: {why}"), 64);
                let r = refund.clone();
                run(&self.db, move |c| {
                    refund_retry(c, &r)?;
                    pay::log_only(c, &entry, Some(&no), &outcome, "")
                })
                .await?;
                // Not an error for whoever asked: the refund is recorded and the refund
                // sweep sees it through.
                log::warn!(
                    "refund {} not settled yet, will be retried: {why}",
                    refund.out_refund_no
                );
            }
            Submitted::Refused(why) => {
                let entry = outbound(provider, "refund", why.clone());
                let outcome = clip(&format!("refund_failed: {why}"), 64);
                run(&self.db, move |c| {
                    refund_failed(c, id, &outcome)?;
                    pay::log_only(c, &entry, Some(&no), &outcome, "")
                })
                .await?;
                return Err(ServiceError::Gateway(format!("refund: {why}")));
            }
        }
        let out = refund.out_refund_no.clone();
        run(&self.db, move |c| refund_by_no(c, &out))
            .await?
            .ok_or_else(|| ServiceError::Internal("refund vanished".into()))
    }

    /// Asks the platform about a refund it accepted; completes it when done, and marks it
    /// abnormal when the platform closed it or could not deliver it.
    pub async fn query_refund(&self, refund: &Refund) -> Result<bool, ServiceError> {
        let r = refund.clone();
        let attempt = run(&self.db, move |c| refund_attempt(c, &r)).await?;
        let (provider, connector) = self.connector_of(&attempt).await?;
        let state = connector
            .refund_query(&refund_order(refund, &attempt))
            .await
            .map_err(|e| ServiceError::Gateway(e.message))?;
        let entry = |raw: String| outbound(provider, "refund_query", raw);
        let (r, no, id) = (refund.clone(), attempt.out_trade_no.clone(), refund.id);
        match state {
            RefundState::Done { refund_ref, raw } => {
                let entry = entry(raw);
                run(&self.db, move |c| {
                    apply_refund(c, &r, &refund_ref, &entry, &no, "")
                })
                .await
            }
            RefundState::Processing { raw } => {
                let entry = entry(raw);
                run(&self.db, move |c| {
                    pay::log_only(c, &entry, Some(&no), "refund_processing", "")
                })
                .await?;
                Ok(false)
            }
            RefundState::Abnormal { status, note, raw } => {
                let entry = entry(raw);
                run(&self.db, move |c| {
                    refund_abnormal(c, id, &note)?;
                    let outcome = format!("refund_{}", status.to_lowercase());
                    pay::log_only(c, &entry, Some(&no), &outcome, "")
                })
                .await?;
                Ok(false)
            }
            RefundState::Failed { why, raw } => {
                let entry = entry(raw);
                run(&self.db, move |c| {
                    refund_failed(c, id, &clip(&why, 64))?;
                    pay::log_only(c, &entry, Some(&no), "refund_failed", "")
                })
                .await?;
                Ok(false)
            }
        }
    }

    /// The refund sweep: submits the Pending refunds that are due (a second payment's
    /// automatic refund, a retry after an open answer), then asks about every refund still
    /// processing. How many completed.
    pub async fn sweep_refunds(&self) -> Result<usize, ServiceError> {
        let due = run(&self.db, |c| due_refunds(c, 100)).await?;
        for r in due {
            if let Err(e) = self.submit_refund(r.clone()).await {
                log::warn!("refund {} not submitted: {e}", r.out_refund_no);
            }
        }
        let open = run(&self.db, |c| unfinished_refunds(c, 100)).await?;
        let mut done = 0;
        for r in &open {
            match self.query_refund(r).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(e) => log::warn!("refund query of {} failed: {e}", r.out_refund_no),
            }
        }
        Ok(done)
    }
}

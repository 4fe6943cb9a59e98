//! Payment bookkeeping in the database: attempts, the payment log, and the one function that
//! turns a verified payment into a paid order — whether a notification or a query found it.
//!
//! Exactly once: the log row of a payment carries a unique dedupe key (`provider:payment id`)
//! and is inserted in the same transaction as the compare-and-set of the attempt and the
//! order. A second delivery, concurrent or late, on any instance, hits the unique index,
//! rolls back, and is logged as a duplicate that changed nothing.

use super::ServiceError;
use crate::db::{self, Conn};
use crate::domain::{AttemptStatus, Channel, Money, OrderStatus, Provider, RefundStatus};
use crate::models::event;
use crate::models::order::{self, PaidFields};
use crate::models::pay::{self, NewAttempt, NewPayLog, PayAttempt};
use crate::models::refund::{self as refunds, NewRefund};
use crate::models::{now, product, Order};

/// Most attempts per order: out_trade_no is the order number plus two digits.
pub const MAX_ATTEMPTS: i64 = 99;

/// Which order a shopper wants to pay.
#[derive(Debug, Clone)]
pub enum OrderRef {
    /// By id, for this user (the mini-program API).
    Owned { user_id: i32, order_id: i32 },
    /// By order number, no owner check (the QR link is opened on a phone with no session).
    ByNo(String),
}

fn find_order(conn: &mut Conn, r: &OrderRef) -> Result<Order, ServiceError> {
    match r {
        OrderRef::Owned { user_id, order_id } => super::order::owned(conn, *user_id, *order_id),
        OrderRef::ByNo(no) => order::find_by_no(conn, no)?.ok_or(ServiceError::OrderNotFound),
    }
}

/// Checks the order can still be paid.
pub fn payable(o: &Order) -> Result<(), ServiceError> {
    match OrderStatus::from_code(o.status) {
        Ok(OrderStatus::Unpaid) if o.expires_at > now() => Ok(()),
        Ok(OrderStatus::Unpaid) | Ok(OrderStatus::Closed) => {
            Err(ServiceError::OrderNotPayable("订单已超时关闭"))
        }
        Ok(_) => Err(ServiceError::OrderNotPayable("订单已支付过啦")),
        Err(_) => Err(ServiceError::Internal(format!(
            "order {} has status {}",
            o.id, o.status
        ))),
    }
}

/// The shortest payment window the platforms accept: WeChat refuses a `time_expire` less than
/// 5 minutes ahead (PARAM_ERROR "time_expire时间过短"), and so do WeChat channels behind
/// Ping++. One more minute covers the trip to the platform.
pub const MIN_PAY_WINDOW: chrono::Duration = chrono::Duration::minutes(6);

/// An attempt is reused only while the shopper still has this long to pay with it.
const REUSE_MARGIN: chrono::Duration = chrono::Duration::minutes(2);

/// An attempt being created (no platform answer yet) is waited for this long before another
/// is started beside it.
const IN_FLIGHT: chrono::Duration = chrono::Duration::seconds(15);

/// When an attempt started at `t` for an order held until `order_expires_at` expires at the
/// platform: the order's deadline, but never sooner than the platforms accept. A payment
/// started in the last minutes of the hold outlives it; the timeout close settles such an
/// attempt at its platform before closing the order, and a payment after that is a late
/// payment.
pub fn attempt_expiry(
    order_expires_at: chrono::NaiveDateTime,
    t: chrono::NaiveDateTime,
) -> chrono::NaiveDateTime {
    order_expires_at.max(t + MIN_PAY_WINDOW)
}

/// Inserts the order's next attempt (inside the caller's transaction).
fn insert_next_attempt(c: &mut Conn, o: &Order, via: &Via) -> Result<PayAttempt, ServiceError> {
    let n = pay::attempt_count(c, o.id)? + 1;
    if n > MAX_ATTEMPTS {
        return Err(ServiceError::OrderNotPayable(
            "支付尝试次数过多，请重新下单",
        ));
    }
    let t = now();
    let out_trade_no = format!("{}{n:02}", o.order_no);
    Ok(pay::insert_attempt(
        c,
        &NewAttempt {
            order_id: o.id,
            out_trade_no: &out_trade_no,
            provider: via.provider.as_str(),
            channel: via.channel.as_str(),
            amount: o.total_price,
            status: AttemptStatus::Pending.code(),
            sign_type: via.sign_type,
            payer: via.payer.as_deref(),
            expires_at: attempt_expiry(o.expires_at, t),
            created_at: t,
            updated_at: t,
        },
    )?)
}

/// Two attempts started at once took the same number: the caller takes the next one.
fn retry_numbering<T>(mut f: impl FnMut() -> Result<T, ServiceError>) -> Result<T, ServiceError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match f() {
            Err(ServiceError::Db(e)) if db::is_unique_violation(&e) && tries < 5 => continue,
            other => return other,
        }
    }
}

/// How an attempt pays: the shopper's channel, and the platform serving it (with its
/// signing scheme) when the attempt was made; the attempt keeps both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub channel: Channel,
    pub provider: Provider,
    pub sign_type: Option<&'static str>,
    /// JSAPI: the payer's openid; a live attempt is reused only for the same payer.
    pub payer: Option<String>,
}

/// Records the intent to pay (a new attempt with its own out_trade_no) and commits, before
/// any call to the platform.
pub fn start_attempt(
    conn: &mut Conn,
    which: &OrderRef,
    via: Via,
) -> Result<(Order, PayAttempt), ServiceError> {
    retry_numbering(|| {
        db::write_tx(conn, |c| {
            let o = find_order(c, which)?;
            payable(&o)?;
            let a = insert_next_attempt(c, &o, &via)?;
            Ok((o, a))
        })
    })
}

/// What `reuse_or_start` found.
#[derive(Debug, Clone)]
pub enum Start {
    /// A live attempt of the channel: show its credential again.
    Reuse(Order, PayAttempt),
    /// A new attempt, recorded and committed: create it at the platform.
    New(Order, PayAttempt),
    /// Another request is creating this channel's attempt right now: ask again shortly.
    Wait,
}

/// Whether `a` can be shown again: pending, created at the platform, and with time left to
/// pay both before its expiry and within its credential's life (`Channel::
/// credential_life_seconds`: a prepay_id or code_url 2 hours, an H5 page 5 minutes).
pub fn reusable(a: &PayAttempt, channel: Channel, t: chrono::NaiveDateTime) -> bool {
    a.channel == channel.as_str()
        && a.status == AttemptStatus::Pending.code()
        && a.provider_ref.is_some()
        && a.expires_at > t + REUSE_MARGIN
        && a.created_at + chrono::Duration::seconds(channel.credential_life_seconds())
            > t + REUSE_MARGIN
}

/// The live attempt of this channel, or a new one. The order row is locked first, so
/// requests for one order (500 anonymous scans of its QR at once) queue here and share one
/// attempt instead of each using up a trade number.
pub fn reuse_or_start(conn: &mut Conn, which: &OrderRef, via: &Via) -> Result<Start, ServiceError> {
    retry_numbering(|| {
        db::write_tx(conn, |c| {
            let o = find_order(c, which)?;
            payable(&o)?;
            order::touch(c, o.id)?;
            let t = now();
            let latest = pay::attempts_of(c, o.id)?.into_iter().rev().find(|a| {
                a.channel == via.channel.as_str()
                    && a.provider == via.provider.as_str()
                    && a.payer == via.payer
                    && a.status == AttemptStatus::Pending.code()
            });
            if let Some(a) = latest {
                if reusable(&a, via.channel, t) {
                    return Ok(Start::Reuse(o, a));
                }
                if a.provider_ref.is_none() && a.created_at + IN_FLIGHT > t {
                    return Ok(Start::Wait);
                }
            }
            let a = insert_next_attempt(c, &o, via)?;
            Ok(Start::New(o, a))
        })
    })
}

/// Records what the platform answered at creation.
pub fn record_prepared(
    conn: &mut Conn,
    attempt_id: i32,
    provider_ref: &str,
    credential: Option<&str>,
) -> Result<(), ServiceError> {
    pay::set_prepared(conn, attempt_id, provider_ref, credential)?;
    Ok(())
}

/// The platform refused to create the payment: the attempt failed.
pub fn record_failed(conn: &mut Conn, attempt_id: i32) -> Result<(), ServiceError> {
    let s = AttemptStatus::Pending;
    if let Some(to) = s.fail() {
        pay::cas_attempt(conn, attempt_id, &[s.code()], to.code(), None)?;
    }
    Ok(())
}

/// What one inbound message or outbound call looked like, for `pay_log`.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub provider: Provider,
    /// `notify`, `webhook`, `query`, `create`, `close`…
    pub kind: &'static str,
    pub raw_body: String,
    pub headers: String,
    pub remote_addr: String,
    pub verified: bool,
}

impl LogEntry {
    /// The `pay_log` row of this message. Whatever came from outside is made storable (NUL
    /// replaced, cut to the column's width), so a hostile message is still logged on every
    /// backend. Dedupe keys are built from identifiers already checked to fit.
    pub(crate) fn row(
        &self,
        out_trade_no: Option<&str>,
        order_id: Option<i32>,
        dedupe_key: Option<&str>,
        outcome: &str,
        reply: &str,
    ) -> NewPayLog {
        use pay::{log_width as w, storable};
        NewPayLog {
            provider: storable(self.provider.as_str(), w::PROVIDER),
            kind: storable(self.kind, w::KIND),
            out_trade_no: out_trade_no.map(|s| storable(s, w::OUT_TRADE_NO)),
            order_id,
            dedupe_key: dedupe_key.map(|s| storable(s, w::DEDUPE_KEY)),
            raw_body: storable(&self.raw_body, usize::MAX),
            headers: storable(&self.headers, w::TEXT),
            remote_addr: storable(&self.remote_addr, w::REMOTE_ADDR),
            verified: self.verified,
            outcome: storable(outcome, w::OUTCOME),
            reply: storable(reply, w::TEXT),
            created_at: now(),
        }
    }
}

/// Writes a log row that changes nothing else (a rejected message, an outbound call). The
/// order is looked up only by a trade number that could exist.
pub fn log_only(
    conn: &mut Conn,
    entry: &LogEntry,
    out_trade_no: Option<&str>,
    outcome: &str,
    reply: &str,
) -> Result<(), ServiceError> {
    let order_id = match out_trade_no {
        Some(no) if pay::fits(no, pay::log_width::OUT_TRADE_NO) => {
            pay::find_attempt(conn, no)?.map(|a| a.order_id)
        }
        Some(_) | None => None,
    };
    pay::insert_log(
        conn,
        &entry.row(out_trade_no, order_id, None, outcome, reply),
    )?;
    Ok(())
}

/// A payment the platform vouched for (signature verified, or answered to our query).
#[derive(Debug, Clone)]
pub struct Proof {
    pub provider: Provider,
    pub out_trade_no: String,
    /// The platform's id of this payment: WeChat's transaction_id, Ping++'s ch_ id.
    pub payment_id: String,
    /// The channel's trade number, shown on the order.
    pub transaction_no: String,
    pub amount: Money,
}

impl Proof {
    /// The same payment has the same key, whichever door (notification or query) it came
    /// through.
    pub fn dedupe_key(&self) -> String {
        format!("{}:{}", self.provider.id_space(), self.payment_id)
    }
}

/// What a proof did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Unpaid -> Paid.
    Paid {
        order_id: i32,
    },
    /// Closed -> Paid: the stock could be reserved again.
    LatePaid {
        order_id: i32,
    },
    /// Closed -> PaidButOutOfStock: the money arrived, the goods went elsewhere.
    PaidOutOfStock {
        order_id: i32,
    },
    /// The order had been paid through another attempt: a second payment to give back.
    PaidTwice {
        order_id: i32,
    },
    /// This very payment was already applied.
    Duplicate,
    UnknownTrade,
    AmountMismatch {
        expected: Money,
    },
}

impl Applied {
    pub fn outcome(&self) -> &'static str {
        match self {
            Applied::Paid { .. } => "paid",
            Applied::LatePaid { .. } => "late_paid",
            Applied::PaidOutOfStock { .. } => "paid_out_of_stock",
            Applied::PaidTwice { .. } => "paid_twice",
            Applied::Duplicate => "duplicate",
            Applied::UnknownTrade => "unknown_trade",
            Applied::AmountMismatch { .. } => "amount_mismatch",
        }
    }

    /// Money arrived for an order through this proof (the first time).
    pub fn is_payment(&self) -> bool {
        matches!(
            self,
            Applied::Paid { .. }
                | Applied::LatePaid { .. }
                | Applied::PaidOutOfStock { .. }
                | Applied::PaidTwice { .. }
        )
    }

    /// The platform should stop sending this message.
    pub fn acknowledged(&self) -> bool {
        !matches!(self, Applied::UnknownTrade | Applied::AmountMismatch { .. })
    }
}

/// Applies a verified payment: one function, two doors (notification and query). `reply`
/// gives the text that will be answered for an outcome, so the log holds what was sent.
pub fn apply_payment(
    conn: &mut Conn,
    proof: &Proof,
    entry: &LogEntry,
    reply: &dyn Fn(&Applied) -> String,
) -> Result<Applied, ServiceError> {
    let key = proof.dedupe_key();
    // The common duplicate (a retry after the first was applied) needs no transaction of
    // its own: one read, one log row. Duplicates racing the first still meet the unique key.
    if pay::dedupe_exists(conn, &key)? {
        return log_duplicate(conn, proof, entry, reply);
    }
    let result = apply_once(conn, proof, entry, reply, &key);
    match result {
        Err(ServiceError::Db(e)) if db::is_unique_violation(&e) => {
            log_duplicate(conn, proof, entry, reply)
        }
        other => other,
    }
}

/// One try of `apply_payment`'s transaction.
fn apply_once(
    conn: &mut Conn,
    proof: &Proof,
    entry: &LogEntry,
    reply: &dyn Fn(&Applied) -> String,
    key: &str,
) -> Result<Applied, ServiceError> {
    db::write_tx(conn, |c| -> Result<Applied, ServiceError> {
        let Some(attempt) = pay::find_attempt(c, &proof.out_trade_no)? else {
            let a = Applied::UnknownTrade;
            pay::insert_log(
                c,
                &entry.row(
                    Some(&proof.out_trade_no),
                    None,
                    None,
                    a.outcome(),
                    &reply(&a),
                ),
            )?;
            return Ok(a);
        };
        let log = |c: &mut Conn, a: &Applied, key: Option<&str>| {
            pay::insert_log(
                c,
                &entry.row(
                    Some(&proof.out_trade_no),
                    Some(attempt.order_id),
                    key,
                    a.outcome(),
                    &reply(a),
                ),
            )
        };
        if attempt.amount != proof.amount.fen() {
            let a = Applied::AmountMismatch {
                expected: Money::from_fen(attempt.amount),
            };
            log(c, &a, None)?;
            return Ok(a);
        }
        let actor = format!("{} {}", entry.provider, entry.kind);
        let applied = settle(c, &attempt, proof, &actor)?;
        // The log row carries the unique dedupe key and is written last, with its outcome:
        // a duplicate running beside the first waits on the attempt's row, finds nothing
        // left to move, then fails on the unique index and rolls back whole.
        let row = entry.row(
            Some(&proof.out_trade_no),
            Some(attempt.order_id),
            Some(key),
            applied.outcome(),
            &reply(&applied),
        );
        pay::insert_log(c, &row)?;
        Ok(applied)
    })
}

/// Logs a delivery of a payment that was already applied; changes nothing else.
fn log_duplicate(
    conn: &mut Conn,
    proof: &Proof,
    entry: &LogEntry,
    reply: &dyn Fn(&Applied) -> String,
) -> Result<Applied, ServiceError> {
    let a = Applied::Duplicate;
    let order_id = pay::find_attempt(conn, &proof.out_trade_no)?.map(|x| x.order_id);
    let row = entry.row(
        Some(&proof.out_trade_no),
        order_id,
        None,
        a.outcome(),
        &reply(&a),
    );
    db::write_tx(conn, |c| pay::insert_log(c, &row))?;
    Ok(a)
}

/// The attempt and order transitions of one payment (inside the caller's transaction).
fn settle(
    c: &mut Conn,
    attempt: &PayAttempt,
    proof: &Proof,
    actor: &str,
) -> Result<Applied, ServiceError> {
    // Lock the order row before the attempt's: the timeout close takes them in that order,
    // and the same order everywhere means a payment racing a close waits instead of
    // deadlocking.
    order::touch(c, attempt.order_id)?;
    let from: Vec<i32> = AttemptStatus::ALL
        .into_iter()
        .filter(|s| s.succeed().is_some())
        .map(AttemptStatus::code)
        .collect();
    let moved = pay::cas_attempt(
        c,
        attempt.id,
        &from,
        AttemptStatus::Succeeded.code(),
        Some(&proof.transaction_no),
    )?;
    if !moved {
        // Succeeded already under another transaction id: report, change nothing.
        return Ok(Applied::Duplicate);
    }
    let channel = Channel::parse(&attempt.channel).ok_or_else(|| {
        ServiceError::Internal(format!(
            "attempt {} has channel {}",
            attempt.id, attempt.channel
        ))
    })?;
    let paid = PaidFields {
        pay_channel: channel.as_str(),
        pay_name: channel.pay_name(),
        transaction_no: &proof.transaction_no,
        paid_at: now(),
    };
    // The timeout job may move the order between our read and our write: re-read and retry.
    for _ in 0..3 {
        let o = order::find(c, attempt.order_id)?.ok_or(ServiceError::OrderNotFound)?;
        let status =
            OrderStatus::from_code(o.status).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let note = format!(
            "{} {} {}",
            channel.pay_name(),
            Money::from_fen(attempt.amount),
            proof.transaction_no
        );
        if let Some(to) = status.pay() {
            if order::cas_paid(c, o.id, status.code(), to.code(), &paid)? {
                event::record(
                    c,
                    o.id,
                    "paid",
                    Some((status.code(), to.code())),
                    actor,
                    &note,
                )?;
                return Ok(Applied::Paid { order_id: o.id });
            }
            continue;
        }
        if status == OrderStatus::Closed {
            let reserved = reserve_again(c, o.id)?;
            let to = status.late_pay(reserved).ok_or_else(|| {
                ServiceError::Internal("closed order refused a late payment".into())
            })?;
            if order::cas_paid(c, o.id, status.code(), to.code(), &paid)? {
                if reserved {
                    event::record(
                        c,
                        o.id,
                        "late_paid",
                        Some((status.code(), to.code())),
                        actor,
                        &note,
                    )?;
                    return Ok(Applied::LatePaid { order_id: o.id });
                }
                out_of_stock_refund(c, attempt, actor, &note)?;
                log::warn!(
                    "order {} paid after closing and its stock is gone: refund pending",
                    o.order_no
                );
                return Ok(Applied::PaidOutOfStock { order_id: o.id });
            }
            if reserved {
                release(c, o.id)?;
            }
            continue;
        }
        // The money of this second payment goes back through the normal refund path: one
        // refund row (unique out_refund_no) in the transaction that applies the payment, so
        // however often its notification arrives it is refunded once. The refund sweep
        // submits it; the admin sees the alarm.
        insert_refund(c, attempt, "重复支付，自动全额退款", Some(now()))?;
        event::record(
            c,
            o.id,
            "paid_twice",
            None,
            actor,
            &format!("重复支付：{note}，已自动发起退款"),
        )?;
        log::warn!(
            "order {} was paid twice ({}): the second payment is being refunded",
            o.order_no,
            attempt.out_trade_no
        );
        return Ok(Applied::PaidTwice { order_id: o.id });
    }
    Err(ServiceError::Internal(format!(
        "order {} kept changing",
        attempt.order_id
    )))
}

/// A payment that came after the stock went elsewhere: a pending full refund for the admin
/// to submit, and the event that raises the alert.
fn out_of_stock_refund(
    c: &mut Conn,
    attempt: &PayAttempt,
    actor: &str,
    note: &str,
) -> Result<(), ServiceError> {
    insert_refund(c, attempt, "支付时库存已售罄，全额退款", None)?;
    let s = (
        OrderStatus::Closed.code(),
        OrderStatus::PaidButOutOfStock.code(),
    );
    event::record(
        c,
        attempt.order_id,
        "paid_out_of_stock",
        Some(s),
        actor,
        &format!("{note}：库存不足，待退款"),
    )?;
    Ok(())
}

/// A full refund of one attempt, numbered after it (so there is only ever one). With
/// `next_try_at` the refund sweep submits it; without, an admin does.
fn insert_refund(
    c: &mut Conn,
    attempt: &PayAttempt,
    reason: &str,
    next_try_at: Option<chrono::NaiveDateTime>,
) -> Result<(), ServiceError> {
    let t = now();
    refunds::insert(
        c,
        &NewRefund {
            order_id: attempt.order_id,
            attempt_id: attempt.id,
            out_refund_no: &format!("{}R", attempt.out_trade_no),
            amount: attempt.amount,
            reason,
            status: RefundStatus::Pending.code(),
            created_at: t,
            updated_at: t,
            next_try_at,
        },
    )?;
    Ok(())
}

/// Reserves a closed order's stock again, all lines or none.
fn reserve_again(c: &mut Conn, order_id: i32) -> Result<bool, ServiceError> {
    let lines = order::lines(c, order_id)?;
    let mut done = Vec::new();
    for (pid, n) in &lines {
        if product::reserve_stock(c, *pid, *n)? {
            done.push((*pid, *n));
        } else {
            for (p, k) in done {
                product::release_stock(c, p, k)?;
            }
            return Ok(false);
        }
    }
    Ok(true)
}

fn release(c: &mut Conn, order_id: i32) -> Result<(), ServiceError> {
    for (pid, n) in order::lines(c, order_id)? {
        product::release_stock(c, pid, n)?;
    }
    Ok(())
}

/// The attempt with this out_trade_no.
pub fn attempt(conn: &mut Conn, out_trade_no: &str) -> Result<Option<PayAttempt>, ServiceError> {
    Ok(pay::find_attempt(conn, out_trade_no)?)
}

/// The order's pending attempts (those worth asking the gateway about).
pub fn pending_attempts(conn: &mut Conn, order_id: i32) -> Result<Vec<PayAttempt>, ServiceError> {
    Ok(pay::attempts_of(conn, order_id)?
        .into_iter()
        .filter(|a| a.status == AttemptStatus::Pending.code())
        .collect())
}

/// Pending attempts due for the reconciliation sweep: older than `age` and not asked
/// recently (see `backoff_after`).
pub fn stale_pending(
    conn: &mut Conn,
    age: chrono::Duration,
    limit: i64,
) -> Result<Vec<PayAttempt>, ServiceError> {
    let t = now();
    Ok(pay::attempts_due(
        conn,
        AttemptStatus::Pending.code(),
        t - age,
        t,
        limit,
    )?)
}

/// Longest wait between two queries of one attempt.
const MAX_BACKOFF_SECONDS: i64 = 3600;

/// The wait before asking again after the `n`th query found nothing: 30 s doubling, at most
/// an hour, so a shopper who never pays costs a handful of queries, not one per sweep.
pub fn backoff_after(n: i32) -> chrono::Duration {
    let exp = u32::try_from(n).unwrap_or(0).min(10);
    chrono::Duration::seconds((30i64 << exp).min(MAX_BACKOFF_SECONDS))
}

/// "No such trade" answers after which an attempt ends.
pub const NOT_FOUND_LIMIT: i32 = 3;

/// The platform says it has no such trade (ORDERNOTEXIST, "No such charge"): it never
/// created it, or lost it. Counted; after `NOT_FOUND_LIMIT` answers the attempt ends (Failed)
/// and is never asked about again. True when this call ended it.
pub fn unknown_at_platform(conn: &mut Conn, attempt: &PayAttempt) -> Result<bool, ServiceError> {
    let n = pay::not_found(
        conn,
        attempt.id,
        now() + backoff_after(attempt.not_found_count),
    )?;
    if n < NOT_FOUND_LIMIT {
        return Ok(false);
    }
    let s = AttemptStatus::Pending;
    let Some(to) = s.fail() else {
        return Ok(false);
    };
    let ended = pay::cas_attempt(conn, attempt.id, &[s.code()], to.code(), None)?;
    if ended {
        log::warn!(
            "attempt {} is unknown at its platform after {n} queries: ended",
            attempt.out_trade_no
        );
    }
    Ok(ended)
}

/// The sweep asked and the platform has no payment yet: ask again later.
pub fn queried_unpaid(conn: &mut Conn, attempt: &PayAttempt) -> Result<(), ServiceError> {
    pay::backoff(conn, attempt.id, now() + backoff_after(attempt.query_count))?;
    Ok(())
}

/// Shortest wait between two shopper-triggered queries of one attempt: a tenth of its age,
/// between 3 s and a minute, so a pay page left open for the whole window asks a few dozen
/// times, not once a second.
pub fn ask_interval(age: chrono::Duration) -> chrono::Duration {
    (age / 10).clamp(chrono::Duration::seconds(3), chrono::Duration::seconds(60))
}

/// The order's pending attempts that a waiting shopper may have the shop ask the platform
/// about now: created at the platform, at least `min_age` old, and not asked within their
/// `ask_interval`. Each is claimed by compare-and-set, so concurrent polls ask once.
pub fn claim_asks(
    conn: &mut Conn,
    order_id: i32,
    min_age: chrono::Duration,
) -> Result<Vec<PayAttempt>, ServiceError> {
    let t = now();
    let mut claimed = Vec::new();
    for a in pending_attempts(conn, order_id)? {
        let age = t - a.created_at;
        if a.provider_ref.is_none() || age < min_age {
            continue;
        }
        let since = t - ask_interval(age);
        if pay::claim_ask(conn, a.id, AttemptStatus::Pending.code(), since, t)? {
            claimed.push(a);
        }
    }
    Ok(claimed)
}

/// Whether a shopper's page may settle the order's attempts at their platforms now: none is
/// open there, or one was claimed just now (see `claim_asks`), so pages shown again and
/// again while a platform does not answer ask it once per interval.
pub fn may_settle(conn: &mut Conn, order_id: i32) -> Result<bool, ServiceError> {
    let open = pending_attempts(conn, order_id)?
        .iter()
        .any(|a| a.provider_ref.is_some());
    Ok(!open || !claim_asks(conn, order_id, chrono::Duration::zero())?.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_back_off_to_an_hour() {
        let waits: Vec<i64> = (0..9)
            .map(|n| super::backoff_after(n).num_seconds())
            .collect();
        assert_eq!(waits, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn shoppers_ask_every_few_seconds_then_every_minute() {
        let waits: Vec<i64> = [0, 10, 60, 300, 900, 3600]
            .iter()
            .map(|s| super::ask_interval(chrono::Duration::seconds(*s)).num_seconds())
            .collect();
        assert_eq!(waits, vec![3, 3, 6, 30, 60, 60]);
    }
}

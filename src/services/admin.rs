//! What the admin console reads: today's figures, filtered order lists and their CSV, one
//! order's whole history, the payment log, the catalogue. Writes go through `lifecycle`,
//! `gateway` and the conditional stock update.

use super::{FieldErrors, ServiceError};
use crate::db::Conn;
use crate::domain::{shanghai, Money, OrderStatus, RefundStatus};
use crate::models::event::{self, OrderEvent};
use crate::models::pay::{self, PayAttempt, PayLog};
use crate::models::refund::{self as refunds, Refund};
use crate::models::schema::{orders, pay_log, refund, shipment, users};
use crate::models::{now, Order, User};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use diesel::prelude::*;
use std::collections::{BTreeMap, HashMap};

type Backend = <Conn as diesel::Connection>::Backend;

/// Statuses in which the order's money was received.
pub const PAID_STATUSES: [OrderStatus; 5] = [
    OrderStatus::Paid,
    OrderStatus::Delivered,
    OrderStatus::PaidButOutOfStock,
    OrderStatus::Refunded,
    OrderStatus::PartiallyRefunded,
];

fn paid_codes() -> Vec<i32> {
    PAID_STATUSES.iter().map(|s| s.code()).collect()
}

/// Midnight of a Shanghai date, in UTC.
pub fn shanghai_midnight(d: NaiveDate) -> NaiveDateTime {
    let local = d.and_hms_opt(0, 0, 0).unwrap_or_default();
    shanghai()
        .from_local_datetime(&local)
        .single()
        .map(|t| t.naive_utc())
        .unwrap_or(local)
}

pub use crate::domain::today_shanghai;

/// The admin's order filter, parsed.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<i32>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub order_no: Option<String>,
    pub user: Option<String>,
    pub channel: Option<String>,
    pub min: Option<Money>,
    pub max: Option<Money>,
    /// What needs doing (the dashboard's tiles).
    pub todo: Option<Todo>,
}

/// The dashboard's to-do tiles, each a filter of the order list (`todo=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Todo {
    /// Paid (or partly refunded) and no parcel recorded: 待发货.
    Ship,
    /// A refund waiting to be sent or at the platform: 退款中.
    Refunding,
    /// Paid without stock, or a refund the platform closed: 异常.
    Alarm,
}

impl Todo {
    pub const ALL: [Todo; 3] = [Todo::Ship, Todo::Refunding, Todo::Alarm];

    pub fn as_str(self) -> &'static str {
        match self {
            Todo::Ship => "ship",
            Todo::Refunding => "refunding",
            Todo::Alarm => "alarm",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Todo::Ship => "待发货",
            Todo::Refunding => "退款中",
            Todo::Alarm => "异常",
        }
    }

    pub fn parse(s: &str) -> Option<Todo> {
        Todo::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl OrderFilter {
    /// Parses the query string's fields; bad ones are named and ignored.
    pub fn parse(q: &BTreeMap<String, String>) -> (OrderFilter, FieldErrors) {
        let mut e = FieldErrors::new();
        let get = |k: &str| {
            q.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut f = OrderFilter::default();
        if let Some(s) = get("status") {
            match s.parse().ok().and_then(|c| OrderStatus::from_code(c).ok()) {
                Some(st) => f.status = Some(st.code()),
                None => {
                    e.insert("status".into(), "未知状态".into());
                }
            }
        }
        for (k, slot) in [("from", &mut f.from), ("to", &mut f.to)] {
            if let Some(s) = get(k) {
                match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
                    Ok(d) => *slot = Some(d),
                    Err(_) => {
                        e.insert(k.into(), "日期格式为 2026-11-23".into());
                    }
                }
            }
        }
        if let (Some(from), Some(to)) = (f.from, f.to) {
            if from > to {
                e.insert("to".into(), "截止日期不能早于起始日期".into());
                f.from = None;
                f.to = None;
            }
        }
        for (k, slot) in [("min", &mut f.min), ("max", &mut f.max)] {
            if let Some(s) = get(k) {
                match Money::parse_yuan(&s) {
                    Ok(m) if m.fen() >= 0 => *slot = Some(m),
                    _ => {
                        e.insert(k.into(), "金额为元，最多两位小数".into());
                    }
                }
            }
        }
        f.order_no = get("order_no").filter(|s| s.bytes().all(|b| b.is_ascii_alphanumeric()));
        if get("order_no").is_some() && f.order_no.is_none() {
            e.insert("order_no".into(), "订单号只含字母和数字".into());
        }
        f.user = get("user");
        f.channel = get("channel");
        if let Some(t) = get("todo") {
            match Todo::parse(&t) {
                Some(t) => f.todo = Some(t),
                None => {
                    e.insert("todo".into(), "未知的待办".into());
                }
            }
        }
        (f, e)
    }

    /// The query string that reproduces this filter.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let mut push = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                q.push((k, v));
            }
        };
        push("status", self.status.map(|s| s.to_string()));
        push("from", self.from.map(|d| d.to_string()));
        push("to", self.to.map(|d| d.to_string()));
        push("order_no", self.order_no.clone());
        push("user", self.user.clone());
        push("channel", self.channel.clone());
        push("min", self.min.map(Money::yuan));
        push("max", self.max.map(Money::yuan));
        push("todo", self.todo.map(|t| t.as_str().to_string()));
        q
    }
}

/// The user ids a "user" filter means: a numeric id, a username or an openid.
fn user_ids(conn: &mut Conn, who: &str) -> QueryResult<Vec<i32>> {
    let id: Option<i32> = who.parse().ok();
    users::table
        .filter(
            users::username
                .eq(who)
                .or(users::openid.eq(who))
                .or(users::id.eq(id.unwrap_or(-1))),
        )
        .select(users::id)
        .load(conn)
}

fn filtered<'a>(f: &'a OrderFilter, ids: &'a Option<Vec<i32>>) -> orders::BoxedQuery<'a, Backend> {
    let mut q = orders::table.into_boxed();
    if let Some(s) = f.status {
        q = q.filter(orders::status.eq(s));
    }
    if let Some(d) = f.from {
        q = q.filter(orders::created_at.ge(shanghai_midnight(d)));
    }
    if let Some(d) = f.to.and_then(|d| d.succ_opt()) {
        q = q.filter(orders::created_at.lt(shanghai_midnight(d)));
    }
    if let Some(no) = &f.order_no {
        q = q.filter(orders::order_no.like(format!("{no}%")));
    }
    if let Some(ids) = ids {
        q = q.filter(orders::user_id.eq_any(ids.clone()));
    }
    if let Some(c) = &f.channel {
        q = q.filter(orders::pay_channel.eq(c.clone()));
    }
    if let Some(m) = f.min {
        q = q.filter(orders::total_price.ge(m.fen()));
    }
    if let Some(m) = f.max {
        q = q.filter(orders::total_price.le(m.fen()));
    }
    match f.todo {
        Some(Todo::Ship) => {
            q = q
                .filter(orders::status.eq_any(shippable_codes()))
                .filter(diesel::dsl::not(
                    orders::id.eq_any(shipment::table.select(shipment::order_id)),
                ));
        }
        Some(Todo::Refunding) => {
            q = q.filter(
                orders::id.eq_any(
                    refund::table
                        .filter(refund::status.eq_any(refunding_codes()))
                        .select(refund::order_id),
                ),
            );
        }
        Some(Todo::Alarm) => {
            q = q.filter(
                orders::status
                    .eq(OrderStatus::PaidButOutOfStock.code())
                    .or(orders::id.eq_any(
                        refund::table
                            .filter(refund::status.eq(RefundStatus::Abnormal.code()))
                            .select(refund::order_id),
                    )),
            );
        }
        None => {}
    }
    q
}

/// Statuses from which an order can be shipped.
fn shippable_codes() -> Vec<i32> {
    OrderStatus::ALL
        .iter()
        .filter(|s| s.deliver().is_some())
        .map(|s| s.code())
        .collect()
}

fn refunding_codes() -> Vec<i32> {
    vec![
        RefundStatus::Pending.code(),
        RefundStatus::Processing.code(),
    ]
}

/// How many orders each to-do tile counts.
pub fn todo_counts(conn: &mut Conn) -> Result<Vec<(Todo, i64)>, ServiceError> {
    let none = None;
    Todo::ALL
        .into_iter()
        .map(|t| {
            let f = OrderFilter {
                todo: Some(t),
                ..OrderFilter::default()
            };
            let n: i64 = filtered(&f, &none).count().get_result(conn)?;
            Ok((t, n))
        })
        .collect()
}

/// One Shanghai day's orders placed and money taken.
#[derive(Debug, Clone)]
pub struct DayFigures {
    pub date: NaiveDate,
    pub orders: i64,
    pub paid: Money,
}

/// The last `days` Shanghai days, oldest first, today last.
pub fn last_days(conn: &mut Conn, days: u32) -> Result<Vec<DayFigures>, ServiceError> {
    let today = today_shanghai();
    let first = (1..days).fold(today, |d, _| d.pred_opt().unwrap_or(d));
    let start = shanghai_midnight(first);
    let rows: Vec<(NaiveDateTime, Option<NaiveDateTime>, i64)> = orders::table
        .filter(orders::created_at.ge(start).or(orders::paid_at.ge(start)))
        .select((orders::created_at, orders::paid_at, orders::total_price))
        .load(conn)?;
    let day_of = |t: NaiveDateTime| t.and_utc().with_timezone(&shanghai()).date_naive();
    let mut out: Vec<DayFigures> = first
        .iter_days()
        .take(days as usize)
        .map(|date| DayFigures {
            date,
            orders: 0,
            paid: Money::from_fen(0),
        })
        .collect();
    for (created, paid_at, total) in rows {
        if let Some(d) = out.iter_mut().find(|d| d.date == day_of(created)) {
            d.orders += 1;
        }
        if let Some(d) = paid_at.and_then(|p| out.iter_mut().find(|d| d.date == day_of(p))) {
            d.paid = d.paid.checked_add(Money::from_fen(total))?;
        }
    }
    Ok(out)
}

/// A page of the filtered orders (newest first) with their users, the count, and the sum
/// paid over the whole filtered set.
pub struct OrderPage {
    pub rows: Vec<(Order, String)>,
    pub count: i64,
    pub paid: Money,
}

fn user_names(conn: &mut Conn, ids: Vec<i32>) -> QueryResult<HashMap<i32, String>> {
    let found: Vec<User> = users::table
        .filter(users::id.eq_any(ids))
        .select(User::as_select())
        .load(conn)?;
    Ok(found
        .into_iter()
        .map(|u| {
            let name = u.username.clone().unwrap_or_else(|| {
                format!("{}（{}）", u.nickname, u.openid.clone().unwrap_or_default())
            });
            (u.id, name)
        })
        .collect())
}

pub fn orders_page(
    conn: &mut Conn,
    f: &OrderFilter,
    page: i64,
    size: i64,
) -> Result<OrderPage, ServiceError> {
    let ids = match &f.user {
        Some(who) => Some(user_ids(conn, who)?),
        None => None,
    };
    let count: i64 = filtered(f, &ids).count().get_result(conn)?;
    let paid: i64 = filtered(f, &ids)
        .filter(orders::status.eq_any(paid_codes()))
        .select(orders::total_price)
        .load::<i64>(conn)?
        .into_iter()
        .sum();
    let rows: Vec<Order> = filtered(f, &ids)
        .order(orders::id.desc())
        .limit(size)
        .offset((page.max(1) - 1) * size)
        .select(Order::as_select())
        .load(conn)?;
    let names = user_names(conn, rows.iter().map(|o| o.user_id).collect())?;
    Ok(OrderPage {
        rows: rows
            .into_iter()
            .map(|o| {
                let n = names.get(&o.user_id).cloned().unwrap_or_default();
                (o, n)
            })
            .collect(),
        count,
        paid: Money::from_fen(paid),
    })
}

/// Every order of the filter, newest first, with users (for CSV).
pub fn all_orders(
    conn: &mut Conn,
    f: &OrderFilter,
    limit: i64,
) -> Result<Vec<(Order, String)>, ServiceError> {
    let page = orders_page(conn, f, 1, limit)?;
    Ok(page.rows)
}

/// Today's figures (Asia/Shanghai day).
#[derive(Debug, Clone)]
pub struct Today {
    pub date: NaiveDate,
    pub orders: i64,
    pub paid: Money,
    pub unpaid: i64,
    pub closed: i64,
    pub refunds: i64,
    pub out_of_stock: Vec<(Order, String)>,
    /// Every background job's lease row: its last run and outcome.
    pub jobs: Vec<crate::models::job_lease::JobLease>,
}

pub fn today(conn: &mut Conn) -> Result<Today, ServiceError> {
    let date = today_shanghai();
    let start = shanghai_midnight(date);
    let end = date.succ_opt().map(shanghai_midnight).unwrap_or(start);
    let orders_today: i64 = orders::table
        .filter(orders::created_at.ge(start).and(orders::created_at.lt(end)))
        .count()
        .get_result(conn)?;
    let paid: i64 = orders::table
        .filter(orders::paid_at.ge(start).and(orders::paid_at.lt(end)))
        .select(orders::total_price)
        .load::<i64>(conn)?
        .into_iter()
        .sum();
    let unpaid: i64 = orders::table
        .filter(orders::status.eq(OrderStatus::Unpaid.code()))
        .count()
        .get_result(conn)?;
    let closed: i64 = orders::table
        .filter(orders::closed_at.ge(start).and(orders::closed_at.lt(end)))
        .count()
        .get_result(conn)?;
    let refunds_today: i64 = refund::table
        .filter(refund::status.eq(RefundStatus::Succeeded.code()))
        .filter(refund::updated_at.ge(start).and(refund::updated_at.lt(end)))
        .count()
        .get_result(conn)?;
    let f = OrderFilter {
        status: Some(OrderStatus::PaidButOutOfStock.code()),
        ..OrderFilter::default()
    };
    let out_of_stock = orders_page(conn, &f, 1, 50)?.rows;
    Ok(Today {
        date,
        orders: orders_today,
        paid: Money::from_fen(paid),
        unpaid,
        closed,
        refunds: refunds_today,
        out_of_stock,
        jobs: crate::models::job_lease::all(conn)?,
    })
}

/// Orders waiting for a refund because their stock was gone when the payment came.
pub fn out_of_stock_count(conn: &mut Conn) -> Result<i64, ServiceError> {
    Ok(orders::table
        .filter(orders::status.eq(OrderStatus::PaidButOutOfStock.code()))
        .count()
        .get_result(conn)?)
}

/// Refunds that need an admin: abnormal at the platform (closed or undeliverable: settle
/// them in the merchant platform), and orders paid twice in the last day (the second payment
/// is refunded automatically; the admin should know it happened).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefundAlarms {
    pub abnormal: i64,
    pub paid_twice_today: i64,
}

pub fn refund_alarms(conn: &mut Conn) -> Result<RefundAlarms, ServiceError> {
    use crate::models::schema::order_event;
    let abnormal = refunds::count_in_status(conn, RefundStatus::Abnormal.code())?;
    let paid_twice_today = order_event::table
        .filter(order_event::kind.eq("paid_twice"))
        .filter(order_event::created_at.gt(now() - chrono::Duration::hours(24)))
        .count()
        .get_result(conn)?;
    Ok(RefundAlarms {
        abnormal,
        paid_twice_today,
    })
}

/// One order and everything that happened to it.
pub struct OrderHistory {
    pub order: Order,
    pub user: String,
    pub attempts: Vec<PayAttempt>,
    pub refunds: Vec<Refund>,
    pub events: Vec<OrderEvent>,
    pub logs: Vec<PayLog>,
    pub shipment: Option<crate::models::shipment::Shipment>,
}

pub fn order_history(conn: &mut Conn, order_id: i32) -> Result<OrderHistory, ServiceError> {
    let attempts = pay::attempts_of(conn, order_id)?;
    let refunds = refunds::of_order(conn, order_id)?;
    let events = event::of_order(conn, order_id)?;
    let logs = pay::logs_of_order(conn, order_id)?;
    let shipment = crate::models::shipment::of_order(conn, order_id)?;
    // Read last, so it is at least as new as the rows above: a refund read as done has
    // its order's status written in the same transaction (no "已退款" beside "已支付").
    let order = crate::models::order::find(conn, order_id)?.ok_or(ServiceError::OrderNotFound)?;
    let user = user_names(conn, vec![order.user_id])?
        .remove(&order.user_id)
        .unwrap_or_default();
    Ok(OrderHistory {
        attempts,
        refunds,
        events,
        logs,
        shipment,
        order,
        user,
    })
}

/// Records an admin's action on the order's timeline.
pub fn note(
    conn: &mut Conn,
    order_id: i32,
    kind: &str,
    actor: &str,
    text: &str,
) -> Result<(), ServiceError> {
    event::record(conn, order_id, kind, None, actor, text)?;
    Ok(())
}

/// The payment log filter: provider, verified (`yes`/`no`), outcome.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub provider: Option<String>,
    pub verified: Option<bool>,
    pub outcome: Option<String>,
}

pub fn pay_logs(
    conn: &mut Conn,
    f: &LogFilter,
    page: i64,
    size: i64,
) -> Result<(Vec<PayLog>, i64), ServiceError> {
    let q = || {
        let mut q = pay_log::table.into_boxed::<Backend>();
        if let Some(p) = &f.provider {
            q = q.filter(pay_log::provider.eq(p.clone()));
        }
        if let Some(v) = f.verified {
            q = q.filter(pay_log::verified.eq(v));
        }
        if let Some(o) = &f.outcome {
            q = q.filter(pay_log::outcome.eq(o.clone()));
        }
        q
    };
    let count: i64 = q().count().get_result(conn)?;
    let rows = q()
        .order(pay_log::id.desc())
        .limit(size)
        .offset((page.max(1) - 1) * size)
        .select(PayLog::as_select())
        .load(conn)?;
    Ok((rows, count))
}

//! Order placement against real stock, and reading orders back for their owner.
//!
//! Placement is one write transaction: check the products and the address, reserve stock with
//! one conditional update per line in ascending id order (no oversell, no deadlock), then
//! insert the order with its snapshot and its order_product rows. Any line short rolls the
//! whole transaction back.

use super::ServiceError;
use crate::db::{self, Conn};
use crate::domain::{generate_order_no, shanghai, Money, OrderStatus};
use crate::models::order::{self, OrderLine};
use crate::models::{now, product, user, NewOrder, Order};
use crate::validators::PlaceOrderCmd;
use serde::{Deserialize, Serialize};

/// One line of the stock check, in the zerg shop's JSON shape.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineStatus {
    pub id: i32,
    pub have_stock: bool,
    pub count: i32,
    pub name: String,
    pub total_price: i64,
}

#[derive(Debug, Clone)]
pub struct PlacedOrder {
    pub order_id: i32,
    pub order_no: String,
    pub created_at: chrono::NaiveDateTime,
}

/// Why an order was not placed although the request was valid: stock ran short.
#[derive(Debug, Clone)]
pub struct Shortage {
    pub lines: Vec<LineStatus>,
    pub order_price: Money,
    pub total_count: i64,
}

#[derive(Debug, Clone)]
pub enum Placement {
    Placed(PlacedOrder),
    OutOfStock(Shortage),
}

/// The address as frozen into `orders.snap_address` (and as the API shows the saved one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SnapAddress {
    pub name: String,
    pub mobile: String,
    pub province: String,
    pub city: String,
    pub district: String,
    pub detail: String,
}

impl From<user::Address> for SnapAddress {
    fn from(a: user::Address) -> Self {
        SnapAddress {
            name: a.name,
            mobile: a.mobile,
            province: a.province,
            city: a.city,
            district: a.district,
            detail: a.detail,
        }
    }
}

enum TxError {
    Service(ServiceError),
    Short(Shortage),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Service(ServiceError::Db(e))
    }
}

impl db::DbFailure for TxError {
    fn db_error(&self) -> Option<&diesel::result::Error> {
        match self {
            TxError::Service(e) => e.db_error(),
            TxError::Short(_) => None,
        }
    }
}

impl From<crate::domain::MoneyError> for TxError {
    fn from(e: crate::domain::MoneyError) -> Self {
        TxError::Service(e.into())
    }
}

impl From<ServiceError> for TxError {
    fn from(e: ServiceError) -> Self {
        TxError::Service(e)
    }
}

/// Places an order for `user_id`. A unique-violation on the order number (two orders in the
/// same microsecond drawing the same digits) retries with a new number.
pub fn place(
    conn: &mut Conn,
    user_id: i32,
    cmd: &PlaceOrderCmd,
    timeout_minutes: i64,
) -> Result<Placement, ServiceError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match db::write_tx(conn, |c| place_once(c, user_id, cmd, timeout_minutes)) {
            Ok(placed) => return Ok(Placement::Placed(placed)),
            Err(TxError::Short(s)) => return Ok(Placement::OutOfStock(s)),
            Err(TxError::Service(ServiceError::Db(e)))
                if db::is_unique_violation(&e) && tries < 3 =>
            {
                log::warn!("order number collision, retrying: {e}");
            }
            Err(TxError::Service(e)) => return Err(e),
        }
    }
}

fn place_once(
    conn: &mut Conn,
    user_id: i32,
    cmd: &PlaceOrderCmd,
    timeout_minutes: i64,
) -> Result<PlacedOrder, TxError> {
    let ids: Vec<i32> = cmd.lines.iter().map(|(id, _)| id.0).collect();
    let found = product::find_many(conn, &ids)?;
    let mut lines = Vec::with_capacity(cmd.lines.len());
    for (id, count) in &cmd.lines {
        let p = found
            .iter()
            .find(|p| p.id == id.0 && p.on_sale)
            .ok_or(ServiceError::ProductNotFound(id.0))?;
        lines.push((p, *count));
    }
    let address = user::address_of(conn, user_id)?.ok_or(ServiceError::NoAddress)?;

    let mut statuses = Vec::with_capacity(lines.len());
    let mut order_price = Money::ZERO;
    let mut total_count: i64 = 0;
    let mut short = false;
    for (p, count) in &lines {
        let line_total = Money::from_fen(p.price).checked_mul(i64::from(*count))?;
        order_price = order_price.checked_add(line_total)?;
        total_count += i64::from(*count);
        // Ascending id order (the command is sorted): concurrent orders take row locks in
        // the same order and cannot deadlock.
        let reserved = product::reserve_stock(conn, p.id, *count)?;
        short |= !reserved;
        statuses.push(LineStatus {
            id: p.id,
            have_stock: reserved,
            count: *count,
            name: p.name.clone(),
            total_price: line_total.fen(),
        });
    }
    if short {
        return Err(TxError::Short(Shortage {
            lines: statuses,
            order_price,
            total_count,
        }));
    }

    let snap_items: Vec<OrderLine> = lines
        .iter()
        .zip(&statuses)
        .map(|((p, count), s)| OrderLine {
            id: p.id,
            name: p.name.clone(),
            price: p.price,
            count: *count,
            total_price: s.total_price,
            main_img_url: p.main_img_url.clone(),
        })
        .collect();
    let first = lines
        .first()
        .map(|(p, _)| *p)
        .ok_or(ServiceError::Internal("no lines".into()))?;
    let snap_name = if lines.len() > 1 {
        format!("{}等", first.name)
    } else {
        first.name.clone()
    };
    let snap_address = to_json(&SnapAddress::from(address))?;
    let snap_items = to_json(&snap_items)?;

    let t = now();
    let order_no = generate_order_no(t.and_utc().with_timezone(&shanghai()));
    let total_count =
        i32::try_from(total_count).map_err(|_| ServiceError::Internal("count".into()))?;
    let order_id = order::insert(
        conn,
        &NewOrder {
            order_no: order_no.as_str(),
            user_id,
            status: OrderStatus::Unpaid.code(),
            total_price: order_price.fen(),
            total_count,
            snap_name: &snap_name,
            snap_img: &first.main_img_url,
            snap_address: &snap_address,
            snap_items: &snap_items,
            expires_at: t + chrono::Duration::minutes(timeout_minutes),
            created_at: t,
            updated_at: t,
        },
    )?;
    for (p, count) in &lines {
        order::insert_line(conn, order_id, p.id, *count)?;
    }
    let placed = (0, OrderStatus::Unpaid.code());
    crate::models::event::record(
        conn,
        order_id,
        "placed",
        Some(placed),
        &format!("user {user_id}"),
        &format!("{order_price}，{total_count} 件"),
    )?;
    Ok(PlacedOrder {
        order_id,
        order_no: order_no.to_string(),
        created_at: t,
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<String, ServiceError> {
    serde_json::to_string(v).map_err(|e| ServiceError::Internal(e.to_string()))
}

/// The order, if it belongs to `user_id`.
pub fn owned(conn: &mut Conn, user_id: i32, order_id: i32) -> Result<Order, ServiceError> {
    let o = order::find(conn, order_id)?.ok_or(ServiceError::OrderNotFound)?;
    if o.user_id != user_id {
        return Err(ServiceError::NotOwner);
    }
    Ok(o)
}

/// The order with this number, if it belongs to `user_id`.
pub fn owned_by_no(conn: &mut Conn, user_id: i32, order_no: &str) -> Result<Order, ServiceError> {
    let o = order::find_by_no(conn, order_no)?.ok_or(ServiceError::OrderNotFound)?;
    if o.user_id != user_id {
        return Err(ServiceError::NotOwner);
    }
    Ok(o)
}

/// A page (1-based) of the user's orders, newest first, and the total count.
pub fn page_of_user(
    conn: &mut Conn,
    user_id: i32,
    page: i64,
    size: i64,
) -> Result<(Vec<Order>, i64), ServiceError> {
    // A page past i64 rows is refused as input, not left to overflow.
    let offset = (page - 1).checked_mul(size);
    let Some(offset) = offset.filter(|_| page >= 1 && (1..=50).contains(&size)) else {
        return Err(ServiceError::field(
            "page",
            "page 从 1 开始，size 为 1 到 50",
        ));
    };
    Ok(order::page_of_user(conn, user_id, offset, size)?)
}

/// The snapshot lines of an order.
pub fn snap_items(o: &Order) -> Vec<OrderLine> {
    serde_json::from_str(&o.snap_items).unwrap_or_default()
}

/// The snapshot address of an order.
pub fn snap_address(o: &Order) -> Option<SnapAddress> {
    serde_json::from_str(&o.snap_address).ok()
}

/// One of the shopper's orders with its payments, refunds and status history.
pub struct OrderDetail {
    pub order: Order,
    pub attempts: Vec<crate::models::pay::PayAttempt>,
    pub refunds: Vec<crate::models::refund::Refund>,
    pub events: Vec<crate::models::event::OrderEvent>,
}

/// The order `order_no` of `user_id` with everything the shopper may see about it.
pub fn detail(conn: &mut Conn, user_id: i32, order_no: &str) -> Result<OrderDetail, ServiceError> {
    let order = owned_by_no(conn, user_id, order_no)?;
    Ok(OrderDetail {
        attempts: crate::models::pay::attempts_of(conn, order.id)?,
        refunds: crate::models::refund::of_order(conn, order.id)?,
        events: crate::models::event::of_order(conn, order.id)?,
        order,
    })
}

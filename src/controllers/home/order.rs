//! Checkout, order placement, "我的订单" and the pay page.

use super::cart::priced_lines;
use super::{address_view, current, history, order_row, payment_views, refund_views, snap_line};
use crate::controllers::error::PageError;
use crate::controllers::session::{Cart, Shopper};
use crate::controllers::{csrf_form, db, layout, render, render_status, see_other};
use crate::domain::{OrderStatus, ProductId};
use crate::models::Order;
use crate::services::order::{self as orders, Placement};
use crate::services::{account, ServiceError};
use crate::startup::AppState;
use crate::validators::PlaceOrderCmd;
use crate::views::{CheckoutPage, OrderDetailPage, OrdersPage, PayPage};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::collections::BTreeMap;

async fn checkout_page(
    state: &AppState,
    shopper: &Shopper,
    cart: &Cart,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let (lines, total) = priced_lines(state, cart).await?;
    let uid = shopper.id;
    let address = db(state, move |c| account::address(c, uid)).await?;
    let page = CheckoutPage {
        layout: layout(&shopper.session, cart),
        blocked: lines.iter().any(|l| !l.available),
        lines,
        total: total.to_string(),
        address: address.map(|a| address_view(a.into())),
        error,
    };
    render_status(state, &page, status)
}

pub async fn checkout(
    state: web::Data<AppState>,
    shopper: Shopper,
    cart: Cart,
) -> Result<HttpResponse, PageError> {
    checkout_page(&state, &shopper, &cart, None, StatusCode::OK).await
}

/// `POST /home/order/save`: places the cart as an order and goes to its pay page.
pub async fn save(
    state: web::Data<AppState>,
    shopper: Shopper,
    cart: Cart,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let _: BTreeMap<String, String> = csrf_form(&shopper.session, &body)?;
    if cart.lines.is_empty() {
        return checkout_page(
            &state,
            &shopper,
            &cart,
            Some("购物车是空的".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let mut merged: BTreeMap<i32, i32> = BTreeMap::new();
    for (id, n) in &cart.lines {
        *merged.entry(*id).or_insert(0) += n;
    }
    let cmd = PlaceOrderCmd {
        lines: merged
            .into_iter()
            .map(|(id, n)| (ProductId(id), n))
            .collect(),
    };
    let uid = shopper.id;
    let timeout = state.config.order_timeout_minutes;
    let outcome = db(&state, move |c| orders::place(c, uid, &cmd, timeout)).await;
    let error = match outcome {
        Ok(Placement::Placed(placed)) => {
            state.metrics.orders_placed.inc();
            let mut res = see_other(&format!("/home/order/pay?order_sn={}", placed.order_no));
            res.add_cookie(&Cart::default().cookie())
                .map_err(PageError::internal)?;
            return Ok(res);
        }
        Ok(Placement::OutOfStock(short)) => {
            let names: Vec<String> = short
                .lines
                .iter()
                .filter(|l| !l.have_stock)
                .map(|l| l.name.clone())
                .collect();
            format!("库存不足：{}。请修改数量后再提交。", names.join("、"))
        }
        Err(ServiceError::NoAddress) => {
            return Ok(see_other("/home/address?next=/home/order/checkout"));
        }
        Err(ServiceError::ProductNotFound(id)) => {
            format!("商品 {id} 已下架，请从购物车中删除后再提交。")
        }
        Err(e) => return Err(e.into()),
    };
    checkout_page(&state, &shopper, &cart, Some(error), StatusCode::CONFLICT).await
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
}

pub async fn list(
    state: web::Data<AppState>,
    shopper: Shopper,
    cart: Cart,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    const SIZE: i64 = 10;
    let page = q.page.unwrap_or(1).max(1);
    let uid = shopper.id;
    let (rows, total) = db(&state, move |c| orders::page_of_user(c, uid, page, SIZE)).await?;
    render(
        &state,
        &OrdersPage {
            layout: layout(&shopper.session, &cart),
            orders: rows.iter().map(order_row).collect(),
            page,
            pages: ((total + SIZE - 1) / SIZE).max(1),
        },
    )
}

#[derive(Deserialize)]
pub struct OrderSnQuery {
    #[serde(default)]
    order_sn: String,
}

/// The shopper's order `order_no` as it stands now (an expired one closed first).
async fn owned_now(state: &AppState, uid: i32, order_no: &str) -> Result<Order, PageError> {
    let no = order_no.to_string();
    let order = db(state, move |c| orders::owned_by_no(c, uid, &no)).await?;
    Ok(current(state, order, None).await?)
}

/// `GET /home/order/pay?order_sn=`: the order's summary and, as payment arrives, its status.
/// An order past paying (paid, refunded, closed, expired) goes to its result page, so a
/// reload or the back button never shows a stale QR.
pub async fn pay(
    state: web::Data<AppState>,
    shopper: Shopper,
    cart: Cart,
    req: actix_web::HttpRequest,
    q: web::Query<OrderSnQuery>,
) -> Result<HttpResponse, PageError> {
    let order = owned_now(&state, shopper.id, &q.order_sn).await?;
    if order.status != OrderStatus::Unpaid.code() {
        return Ok(see_other(&super::pay::polling(&order.order_no).result_url));
    }
    let address =
        orders::snap_address(&order).ok_or_else(|| PageError::internal("bad snap_address"))?;
    let qr_url = format!(
        "{}/home/order/qrpay?id={}",
        state.public_url, order.order_no
    );
    let page = PayPage {
        layout: layout(&shopper.session, &cart),
        order: order_row(&order),
        lines: orders::snap_items(&order).iter().map(snap_line).collect(),
        address: address_view(address),
        expires_at: crate::domain::format_shanghai(order.expires_at),
        expires_at_unix: order.expires_at.and_utc().timestamp(),
        qr_svg: super::pay::qr_svg(&state, &qr_url)?,
        qr_url,
        wechat_native_url: format!("/home/order/wxpay?order_sn={}", order.order_no),
        alipay_page_url: (state.config.cashier == crate::config::Cashier::Direct).then(|| {
            format!(
                "/home/order/qrpay?id={}&channel=alipay_pc_direct",
                order.order_no
            )
        }),
        polling: super::pay::polling(&order.order_no),
        sandbox: state.sandbox.is_some(),
        detail_url: format!("/home/order/detail?order_sn={}", order.order_no),
        phone: super::pay::phone_cashier(&state, &req, &order.order_no),
    };
    let mut res = render(&state, &page)?;
    super::pay::no_store(&mut res);
    Ok(res)
}

/// `GET /home/order/detail?order_sn=`: one of the shopper's orders, with its lines, address,
/// payments, refunds and history, 去支付 / 取消订单 while unpaid and 再次购买.
pub async fn detail(
    state: web::Data<AppState>,
    shopper: Shopper,
    cart: Cart,
    q: web::Query<OrderSnQuery>,
) -> Result<HttpResponse, PageError> {
    let uid = shopper.id;
    owned_now(&state, uid, &q.order_sn).await?;
    let no = q.order_sn.clone();
    let d = db(&state, move |c| orders::detail(c, uid, &no)).await?;
    let address =
        orders::snap_address(&d.order).ok_or_else(|| PageError::internal("bad snap_address"))?;
    let row = order_row(&d.order);
    let page = OrderDetailPage {
        layout: layout(&shopper.session, &cart),
        pay_url: row
            .payable
            .then(|| format!("/home/order/pay?order_sn={}", d.order.order_no)),
        order: row,
        lines: orders::snap_items(&d.order).iter().map(snap_line).collect(),
        address: address_view(address),
        payments: payment_views(&d.attempts),
        refunds: refund_views(&d.refunds),
        history: history(&d.events),
    };
    render(&state, &page)
}

#[derive(Deserialize)]
struct OrderForm {
    #[serde(default)]
    order_sn: String,
}

/// `POST /home/order/cancel`: 取消订单 of an unpaid order: its attempts are settled at their
/// platforms (a payment found there pays it instead) and it closes, its stock released.
pub async fn cancel(
    state: web::Data<AppState>,
    shopper: Shopper,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: OrderForm = csrf_form(&shopper.session, &body)?;
    let uid = shopper.id;
    let no = form.order_sn.clone();
    let order = db(&state, move |c| orders::owned_by_no(c, uid, &no)).await?;
    if order.status == OrderStatus::Unpaid.code() {
        state
            .gateway()
            .settle_and_close(order.id, &format!("user {uid}"), "用户取消订单")
            .await?;
    }
    Ok(see_other(&format!(
        "/home/order/detail?order_sn={}",
        order.order_no
    )))
}

/// `POST /home/order/again`: 重新下单 / 再次购买: the order's lines go into the cart and the
/// shopper to checkout, where stock and prices are today's.
pub async fn again(
    state: web::Data<AppState>,
    shopper: Shopper,
    mut cart: Cart,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: OrderForm = csrf_form(&shopper.session, &body)?;
    let uid = shopper.id;
    let order = db(&state, move |c| orders::owned_by_no(c, uid, &form.order_sn)).await?;
    for l in orders::snap_items(&order) {
        cart.set(l.id, l.count);
    }
    let mut res = see_other("/home/order/checkout");
    res.add_cookie(&cart.cookie())
        .map_err(PageError::internal)?;
    Ok(res)
}

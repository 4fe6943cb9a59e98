//! The PC site (the ThinkPHP shop's `/home/...` URLs): catalogue, cart, account, checkout.

pub mod account;
pub mod cart;
pub mod cashier;
pub mod order;
pub mod pay;
pub mod shop;

use crate::controllers::db;
use crate::domain::{format_shanghai, Channel, Money, OrderStatus, RefundStatus};
use crate::models::event::OrderEvent;
use crate::models::pay::PayAttempt;
use crate::models::refund::Refund;
use crate::models::{Order, OrderLine, Product};
use crate::services::order::SnapAddress;
use crate::services::ServiceError;
use crate::startup::AppState;
use crate::views::{
    AddressView, HistoryEntry, LineView, OrderRow, PaymentView, ProductCard, RefundView,
};

pub fn product_card(p: &Product) -> ProductCard {
    ProductCard {
        id: p.id,
        name: p.name.clone(),
        price: Money::from_fen(p.price).to_string(),
        stock: p.stock,
        main_img_url: p.main_img_url.clone(),
        summary: p.summary.clone(),
        in_stock: p.stock > 0,
        max_count: p.stock.clamp(1, 999),
    }
}

pub fn order_row(o: &Order) -> OrderRow {
    let status = OrderStatus::from_code(o.status);
    OrderRow {
        id: o.id,
        order_no: o.order_no.clone(),
        created_at: format_shanghai(o.created_at),
        snap_name: o.snap_name.clone(),
        snap_img: o.snap_img.clone(),
        total_count: o.total_count,
        total: Money::from_fen(o.total_price).to_string(),
        status: o.status,
        status_label: status.map(|s| s.label()).unwrap_or("未知").to_string(),
        payable: status == Ok(OrderStatus::Unpaid) && o.expires_at > crate::models::now(),
    }
}

pub fn snap_line(l: &OrderLine) -> LineView {
    LineView {
        id: l.id,
        name: l.name.clone(),
        main_img_url: l.main_img_url.clone(),
        price: Money::from_fen(l.price).to_string(),
        count: l.count,
        line_total: Money::from_fen(l.total_price).to_string(),
        available: true,
        max_count: l.count,
        warning: None,
    }
}

pub fn address_view(a: SnapAddress) -> AddressView {
    AddressView {
        name: a.name,
        mobile: a.mobile,
        province: a.province,
        city: a.city,
        district: a.district,
        detail: a.detail,
    }
}

/// The order as its shopper should see it now: an unpaid order past its expiry is closed
/// first (its platform asked, its stock released); with `ask_after`, an unpaid order's
/// attempts at least that old are asked about at their platform (rate-limited in the
/// database), so a lost notification does not leave the shopper waiting for the sweep.
pub async fn current(
    state: &AppState,
    o: Order,
    ask_after: Option<chrono::Duration>,
) -> Result<Order, ServiceError> {
    let gateway = state.gateway();
    let changed = if o.status != OrderStatus::Unpaid.code() {
        false
    } else if o.expires_at <= crate::models::now() {
        gateway.close_if_expired(&o).await
    } else if let Some(age) = ask_after {
        gateway.ask_for_shopper(o.id, age).await
    } else {
        false
    };
    if !changed {
        return Ok(o);
    }
    let id = o.id;
    db(state, move |c| {
        crate::models::order::find(c, id)?.ok_or(ServiceError::OrderNotFound)
    })
    .await
}

/// The payments that went through (succeeded attempts).
pub fn payment_views(attempts: &[PayAttempt]) -> Vec<PaymentView> {
    let paid = crate::domain::AttemptStatus::Succeeded.code();
    attempts
        .iter()
        .filter(|a| a.status == paid)
        .map(|a| PaymentView {
            pay_name: Channel::parse(&a.channel)
                .map(|c| c.pay_name())
                .unwrap_or("在线支付")
                .to_string(),
            amount: Money::from_fen(a.amount).to_string(),
            transaction_no: a.transaction_no.clone().unwrap_or_default(),
            paid_at: format_shanghai(a.updated_at),
        })
        .collect()
}

pub fn refund_views(refunds: &[Refund]) -> Vec<RefundView> {
    refunds
        .iter()
        .map(|r| {
            let status = RefundStatus::from_code(r.status);
            // A refund the shop must still sort out is, to the shopper, still on its way.
            let label = match status {
                Some(RefundStatus::Succeeded) => "已到账",
                Some(RefundStatus::Failed) | Some(RefundStatus::Abnormal) => "处理中",
                Some(s) => s.label(),
                None => "处理中",
            };
            RefundView {
                amount: Money::from_fen(r.amount).to_string(),
                status_label: label.to_string(),
                done: status == Some(RefundStatus::Succeeded),
                created_at: format_shanghai(r.created_at),
            }
        })
        .collect()
}

/// The order's history in the shopper's words; admin notes and alarms stay on the admin side.
pub fn history(events: &[OrderEvent]) -> Vec<HistoryEntry> {
    events
        .iter()
        .filter_map(|e| {
            let text = match e.kind.as_str() {
                "placed" => "提交订单",
                "paid" | "late_paid" => "支付成功",
                "paid_out_of_stock" => "支付成功，但商品已售完，货款将全额退回",
                "paid_twice" => "重复支付，多付的款项将退回",
                "closed" if e.actor == "system" => "超时未支付，订单已关闭",
                "closed" if e.actor.starts_with("user") => "您取消了订单",
                "closed" => "订单已关闭",
                "delivered" => "商家已发货",
                "refund_requested" => "商家发起退款",
                "refunded" => "退款已到账",
                _ => return None,
            };
            Some(HistoryEntry {
                at: format_shanghai(e.created_at),
                text: text.to_string(),
            })
        })
        .collect()
}

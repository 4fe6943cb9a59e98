//! The PC site (the ThinkPHP shop's `/home/...` URLs): catalogue, cart, account, checkout.

pub mod account;
pub mod cart;
pub mod order;
pub mod pay;
pub mod shop;

use crate::domain::{format_shanghai, Money, OrderStatus};
use crate::models::{Order, OrderLine, Product};
use crate::services::order::SnapAddress;
use crate::views::{AddressView, LineView, OrderRow, ProductCard};

pub fn product_card(p: &Product) -> ProductCard {
    ProductCard {
        id: p.id,
        name: p.name.clone(),
        price: Money::from_fen(p.price).to_string(),
        stock: p.stock,
        main_img_url: p.main_img_url.clone(),
        summary: p.summary.clone(),
        in_stock: p.stock > 0,
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

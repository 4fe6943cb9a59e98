//! The admin console (`/admin/...`): login, today's figures, orders with their whole payment
//! history and actions, the payment log, the catalogue. Every handler takes `Admin`.

pub mod auth;
pub mod orders;
pub mod paylog;
pub mod products;
pub mod reconcile;

use super::db;
use super::error::PageError;
use super::session::Admin;
use crate::domain::{format_shanghai, Money, OrderStatus};
use crate::models::Order;
use crate::services::{admin, lifecycle};
use crate::startup::AppState;
use crate::views::admin::{AdminLayout, AdminOrderRow, Choice, NavSection};

/// The layout, with the alarms every admin page shows.
pub async fn layout(
    state: &AppState,
    who: &Admin,
    nav: NavSection,
    flash: Option<String>,
) -> Result<AdminLayout, PageError> {
    let window = chrono::Duration::seconds(state.config.callback_alarm_after_seconds);
    let min = state.config.callback_alarm_min_confirmations;
    let (health, stranded, refunds, recon_open) = db(state, move |c| {
        Ok((
            lifecycle::callback_health(c, window, min)?,
            admin::out_of_stock_count(c)?,
            admin::refund_alarms(c)?,
            crate::models::recon::unresolved_count(c)?,
        ))
    })
    .await?;
    let mut alarms = Vec::new();
    if health.degraded {
        alarms.push(format!(
            "支付回调疑似中断：{} 笔支付靠主动查询确认，最近一次验签通过的通知：{}。请检查 notify_url、WAF 或 CDN。",
            health.confirmed_by_query,
            health.last_verified_notification.unwrap_or_else(|| "无".into())
        ));
    }
    if stranded > 0 {
        alarms.push(format!("{stranded} 个订单已支付但缺货，等待退款。"));
    }
    if refunds.abnormal > 0 {
        alarms.push(format!(
            "{} 笔退款异常（退款关闭或退款到账失败），系统不会自动重退，请在商户平台人工处理。",
            refunds.abnormal
        ));
    }
    if recon_open > 0 {
        alarms.push(format!(
            "对账发现 {recon_open} 个差异待处理，请到“对账”页核对。"
        ));
    }
    if refunds.paid_twice_today > 0 {
        alarms.push(format!(
            "24 小时内 {} 笔订单被重复支付，多付的款项已自动原路退回，请留意退款结果。",
            refunds.paid_twice_today
        ));
    }
    Ok(AdminLayout {
        admin: who.name.clone(),
        csrf: who.session.data.csrf.clone(),
        flash,
        alarms,
        nav,
    })
}

pub fn order_row(o: &Order, user: &str) -> AdminOrderRow {
    let status = OrderStatus::from_code(o.status);
    AdminOrderRow {
        id: o.id,
        order_no: o.order_no.clone(),
        created_at: format_shanghai(o.created_at),
        user: user.to_string(),
        snap_name: o.snap_name.clone(),
        total_count: o.total_count,
        total: Money::from_fen(o.total_price).to_string(),
        status: o.status,
        status_label: status.map(|s| s.label()).unwrap_or("未知").into(),
        pay_name: o.pay_name.clone().unwrap_or_default(),
        paid_at: o.paid_at.map(format_shanghai).unwrap_or_default(),
    }
}

/// `<select>` options with an empty "all" choice first.
pub fn choices(all: &str, options: &[(String, String)], selected: Option<&str>) -> Vec<Choice> {
    std::iter::once((String::new(), all.to_string()))
        .chain(options.iter().cloned())
        .map(|(value, label)| Choice {
            selected: selected.unwrap_or_default() == value,
            value,
            label,
        })
        .collect()
}

/// `?page=N` links around the current page.
pub fn page_links(
    base: &str,
    query: &[(&str, String)],
    page: i64,
    pages: i64,
) -> (Option<String>, Option<String>) {
    let link = |p: i64| {
        let mut q: Vec<(&str, String)> = query.to_vec();
        q.push(("page", p.to_string()));
        format!(
            "{base}?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    };
    (
        (page > 1).then(|| link(page - 1)),
        (page < pages).then(|| link(page + 1)),
    )
}

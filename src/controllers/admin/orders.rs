//! `/admin` (today), `/admin/orders` (filters, pages, CSV), `/admin/orders/{id}` (the whole
//! history) and its actions: re-query, close, deliver, refund.

use super::{choices, layout, order_row, page_links};
use crate::controllers::error::PageError;
use crate::controllers::home::{address_view, snap_line};
use crate::controllers::session::Admin;
use crate::controllers::{csrf_form, db, render, render_status, see_other};
use crate::domain::{format_shanghai, AttemptStatus, Channel, Money, OrderStatus, RefundStatus};
use crate::models::pay::PayLog;
use crate::services::admin::{self, OrderFilter, OrderHistory};
use crate::services::lifecycle::ShipRequest;
use crate::services::refund::{self, RefundRequest};
use crate::services::{lifecycle, order as orders, ServiceError};
use crate::startup::AppState;
use crate::views::admin::{
    event_words, log_kind_words, outcome_words, AttemptRow, DashboardPage, NavSection,
    OrderDetailPage, OrdersListPage, RefundProgress, RefundRow, ShipmentView, TimelineEntry,
    TodoTile, WeekChart,
};
use crate::views::Form;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::collections::BTreeMap;

const PAGE_SIZE: i64 = 20;

pub async fn dashboard(state: web::Data<AppState>, who: Admin) -> Result<HttpResponse, PageError> {
    let (t, todos, days) = db(&state, |c| {
        Ok((
            admin::today(c)?,
            admin::todo_counts(c)?,
            admin::last_days(c, 7)?,
        ))
    })
    .await?;
    let todos = todos
        .into_iter()
        .map(|(t, count)| TodoTile {
            id: format!("todo-{}", t.as_str()),
            label: t.label().to_string(),
            count,
            href: format!("/admin/orders?todo={}", t.as_str()),
        })
        .collect();
    let days: Vec<(String, i64, i64, String)> = days
        .iter()
        .map(|d| {
            (
                d.date.to_string(),
                d.orders,
                d.paid.fen(),
                d.paid.to_string(),
            )
        })
        .collect();
    let lay = layout(&state, &who, NavSection::Dashboard, None).await?;
    let callback_alarm = lay
        .alarms
        .iter()
        .find(|a| a.starts_with("支付回调"))
        .cloned();
    render(
        &state,
        &DashboardPage {
            today: t.date.to_string(),
            orders_today: t.orders,
            paid_today: t.paid.to_string(),
            unpaid: t.unpaid,
            closed_today: t.closed,
            refunds_today: t.refunds,
            callback_alarm,
            out_of_stock: t
                .out_of_stock
                .iter()
                .map(|(o, u)| order_row(o, u))
                .collect(),
            jobs: t.jobs.iter().map(Into::into).collect(),
            todos,
            week: WeekChart::new(&days),
            layout: lay,
        },
    )
}

fn status_choices(selected: Option<i32>) -> Vec<crate::views::admin::Choice> {
    let options: Vec<(String, String)> = OrderStatus::ALL
        .iter()
        .map(|s| (s.code().to_string(), s.label().to_string()))
        .collect();
    choices(
        "全部状态",
        &options,
        selected.map(|s| s.to_string()).as_deref(),
    )
}

fn channel_choices(selected: Option<&str>) -> Vec<crate::views::admin::Choice> {
    let options: Vec<(String, String)> = Channel::ALL
        .iter()
        .map(|c| {
            (
                c.as_str().to_string(),
                format!("{}（{}）", c.pay_name(), c.as_str()),
            )
        })
        .collect();
    choices("全部渠道", &options, selected)
}

fn todo_choices(selected: Option<admin::Todo>) -> Vec<crate::views::admin::Choice> {
    let options: Vec<(String, String)> = admin::Todo::ALL
        .iter()
        .map(|t| (t.as_str().to_string(), t.label().to_string()))
        .collect();
    choices("全部", &options, selected.map(|t| t.as_str()))
}

pub async fn list(
    state: web::Data<AppState>,
    who: Admin,
    q: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let (filter, errors) = OrderFilter::parse(&q);
    let page: i64 = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let f = filter.clone();
    let found = db(&state, move |c| admin::orders_page(c, &f, page, PAGE_SIZE)).await?;
    let pages = ((found.count + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let query = filter.query();
    let (prev_url, next_url) = page_links("/admin/orders", &query, page, pages);
    let csv_url = format!(
        "/admin/orders.csv?{}",
        serde_urlencoded::to_string(&query).unwrap_or_default()
    );
    let values = q
        .iter()
        .filter(|(k, _)| *k != "page")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let lay = layout(&state, &who, NavSection::Orders, None).await?;
    render(
        &state,
        &OrdersListPage {
            layout: lay,
            filter: Form { values, errors },
            statuses: status_choices(filter.status),
            channels: channel_choices(filter.channel.as_deref()),
            todos: todo_choices(filter.todo),
            orders: found.rows.iter().map(|(o, u)| order_row(o, u)).collect(),
            total_count: found.count,
            total_paid: found.paid.to_string(),
            page,
            pages,
            prev_url,
            next_url,
            csv_url,
        },
    )
}

/// A CSV field: quoted when needed, and a leading `= + - @` defused (no formulas in Excel).
pub(super) fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A number-like identifier (order or transaction number) kept as text in a spreadsheet:
/// written `="…"`, a formula whose value is the string itself. Excel and LibreOffice Calc both
/// evaluate it on opening a CSV, so a 28-digit number stays exact instead of becoming
/// 4.2E+27; a leading tab or apostrophe is kept by Excel but trimmed or shown by Calc.
/// Only plain `[A-Za-z0-9_]` values are wrapped, so no other formula can be smuggled in;
/// the result is a whole CSV field, already quoted.
pub(super) fn csv_text_id(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        format!("\"=\"\"{s}\"\"\"")
    } else {
        csv_field(s)
    }
}

/// `/admin/orders.csv?…`: the filtered set with line items; yuan from fen, Asia/Shanghai
/// times, UTF-8 with BOM so Excel opens it.
pub async fn csv(
    state: web::Data<AppState>,
    _who: Admin,
    q: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let (filter, _) = OrderFilter::parse(&q);
    let rows = db(&state, move |c| admin::all_orders(c, &filter, 100_000)).await?;
    let mut out = String::from("\u{feff}订单号,下单时间,用户,状态,支付方式,支付时间,交易号,金额(元),件数,商品明细,收货人,手机,收货地址\r\n");
    for (o, user) in &rows {
        let items = orders::snap_items(o)
            .iter()
            .map(|l| {
                format!(
                    "{}×{}（单价 {}）",
                    l.name,
                    l.count,
                    Money::from_fen(l.price).yuan()
                )
            })
            .collect::<Vec<_>>()
            .join("；");
        let a = orders::snap_address(o);
        let text = [
            format_shanghai(o.created_at),
            user.clone(),
            OrderStatus::from_code(o.status)
                .map(|s| s.label())
                .unwrap_or("未知")
                .to_string(),
            o.pay_name.clone().unwrap_or_default(),
            o.paid_at.map(format_shanghai).unwrap_or_default(),
        ];
        let rest = [
            Money::from_fen(o.total_price).yuan(),
            o.total_count.to_string(),
            items,
            a.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
            a.as_ref().map(|a| a.mobile.clone()).unwrap_or_default(),
            a.map(|a| format!("{}{}{}{}", a.province, a.city, a.district, a.detail))
                .unwrap_or_default(),
        ];
        let fields: Vec<String> = std::iter::once(csv_text_id(&o.order_no))
            .chain(text.iter().map(|f| csv_field(f)))
            .chain(std::iter::once(csv_text_id(
                o.transaction_no.as_deref().unwrap_or_default(),
            )))
            .chain(rest.iter().map(|f| csv_field(f)))
            .collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    let name = format!("orders-{}.csv", admin::today_shanghai());
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .body(out))
}

fn log_title(l: &PayLog) -> String {
    format!(
        "{}（{}）：{}",
        log_kind_words(&l.kind),
        l.provider,
        outcome_words(&l.outcome)
    )
}

fn timeline(h: &OrderHistory) -> Vec<TimelineEntry> {
    let mut all: Vec<(chrono::NaiveDateTime, u8, i32, TimelineEntry)> = Vec::new();
    for e in &h.events {
        let change = match (e.from_status, e.to_status) {
            (Some(f), Some(t)) => {
                let label = |c: i32| {
                    OrderStatus::from_code(c)
                        .map(|s| s.label())
                        .unwrap_or("新建")
                };
                format!("{} → {}", label(f), label(t))
            }
            _ => String::new(),
        };
        all.push((
            e.created_at,
            0,
            e.id,
            TimelineEntry {
                at: format_shanghai(e.created_at),
                kind: "event".into(),
                kind_label: "状态/操作".into(),
                title: format!("{} {change}", event_words(&e.kind)),
                actor: e.actor.clone(),
                detail: e.note.clone(),
                headers: String::new(),
                raw: None,
                verified: None,
                reply: None,
            },
        ));
    }
    for l in &h.logs {
        all.push((
            l.created_at,
            1,
            l.id,
            TimelineEntry {
                at: format_shanghai(l.created_at),
                kind: l.kind.clone(),
                kind_label: log_kind_words(&l.kind).into(),
                title: log_title(l),
                actor: if l.remote_addr.is_empty() {
                    "shop".into()
                } else {
                    l.remote_addr.clone()
                },
                detail: l
                    .out_trade_no
                    .as_ref()
                    .map(|n| format!("商户单号 {n}"))
                    .unwrap_or_default(),
                headers: l.headers.clone(),
                raw: Some(l.raw_body.clone()),
                verified: Some(l.verified),
                reply: (!l.reply.is_empty()).then(|| l.reply.clone()),
            },
        ));
    }
    for r in &h.refunds {
        all.push((
            r.created_at,
            2,
            r.id,
            TimelineEntry {
                at: format_shanghai(r.created_at),
                kind: "refund".into(),
                kind_label: "退款单".into(),
                title: format!("退款单 {}：{}", r.out_refund_no, Money::from_fen(r.amount)),
                actor: String::new(),
                detail: format!(
                    "{}，{}",
                    RefundStatus::from_code(r.status)
                        .map(|s| s.label())
                        .unwrap_or("未知"),
                    r.reason
                ),
                headers: String::new(),
                raw: None,
                verified: None,
                reply: None,
            },
        ));
    }
    all.sort_by_key(|(t, k, id, _)| (*t, *k, *id));
    all.into_iter().map(|(_, _, _, e)| e).collect()
}

fn refundable(h: &OrderHistory) -> Money {
    let Some(paid) = refund::paying_attempt(&h.order, &h.attempts) else {
        return Money::from_fen(0);
    };
    Money::from_fen((paid.amount - refund::held_by_refunds(&h.refunds, paid)).max(0))
}

/// The order page's two forms as typed (after a refused POST), or empty.
#[derive(Default)]
struct ActionForms {
    refund: Form,
    ship: Form,
}

fn refund_rows(h: &OrderHistory) -> Vec<RefundRow> {
    h.refunds
        .iter()
        .map(|r| RefundRow {
            id: r.id,
            out_refund_no: r.out_refund_no.clone(),
            amount: Money::from_fen(r.amount).to_string(),
            reason: r.reason.clone(),
            status: r.status,
            status_label: RefundStatus::from_code(r.status)
                .map(|s| s.label())
                .unwrap_or("未知")
                .into(),
            provider_ref: r.provider_ref.clone().unwrap_or_default(),
            created_at: format_shanghai(r.created_at),
            submittable: r.status == RefundStatus::Pending.code(),
        })
        .collect()
}

/// A refund still on its way (waiting to be sent or at the platform).
fn refund_in_progress(h: &OrderHistory) -> bool {
    h.refunds.iter().any(|r| {
        r.status == RefundStatus::Pending.code() || r.status == RefundStatus::Processing.code()
    })
}

fn carrier_choices(selected: Option<&str>) -> Vec<crate::views::admin::Choice> {
    let options: Vec<(String, String)> = lifecycle::CARRIERS
        .iter()
        .map(|c| (c.to_string(), c.to_string()))
        .collect();
    choices("请选择", &options, selected)
}

/// `/admin/orders/{id}/refunds.json`: what the order page's refund poll shows.
pub async fn refunds_json(
    state: web::Data<AppState>,
    _who: Admin,
    path: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    let id = *path;
    let h = db(&state, move |c| admin::order_history(c, id)).await?;
    let progress = RefundProgress {
        status_label: OrderStatus::from_code(h.order.status)
            .map(|s| s.label())
            .unwrap_or("未知")
            .into(),
        in_progress: refund_in_progress(&h),
        refunds: refund_rows(&h),
    };
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(progress))
}

async fn detail_page(
    state: &AppState,
    who: &Admin,
    order_id: i32,
    flash: Option<String>,
    forms: ActionForms,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let h = db(state, move |c| admin::order_history(c, order_id)).await?;
    let s = OrderStatus::from_code(h.order.status).map_err(PageError::internal)?;
    let left = refundable(&h);
    let page = OrderDetailPage {
        layout: layout(state, who, NavSection::Orders, flash).await?,
        order: order_row(&h.order, &h.user),
        user_id: h.order.user_id,
        transaction_no: h.order.transaction_no.clone().unwrap_or_default(),
        expires_at: format_shanghai(h.order.expires_at),
        closed_at: h.order.closed_at.map(format_shanghai).unwrap_or_default(),
        lines: orders::snap_items(&h.order).iter().map(snap_line).collect(),
        address: orders::snap_address(&h.order).map(address_view),
        attempts: h
            .attempts
            .iter()
            .map(|a| AttemptRow {
                out_trade_no: a.out_trade_no.clone(),
                provider: a.provider.clone(),
                channel: a.channel.clone(),
                amount: Money::from_fen(a.amount).to_string(),
                status_label: AttemptStatus::from_code(a.status)
                    .map(|s| s.label())
                    .unwrap_or("未知")
                    .into(),
                provider_ref: a.provider_ref.clone().unwrap_or_default(),
                transaction_no: a.transaction_no.clone().unwrap_or_default(),
                created_at: format_shanghai(a.created_at),
            })
            .collect(),
        refunds: refund_rows(&h),
        timeline: timeline(&h),
        can_close: s.close().is_some(),
        can_deliver: s.deliver().is_some() && h.shipment.is_none(),
        can_refund: s.refund(false).is_some() && left.fen() > 0,
        refundable: left.to_string(),
        refundable_yuan: left.yuan(),
        out_refund_no: format!("{}R{}", h.order.order_no, crate::sandbox::random_digits(6)),
        refund_in_progress: refund_in_progress(&h),
        carriers: carrier_choices(forms.ship.values.get("carrier").map(String::as_str)),
        shipment: h.shipment.as_ref().map(shipment_view),
        refund_form: forms.refund,
        ship_form: forms.ship,
    };
    render_status(state, &page, status)
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

fn done_message(code: &str) -> Option<String> {
    Some(
        match code {
            "query" => "已向支付平台重新查询",
            "close" => "订单已关闭，库存已释放",
            "close_paid" => "关闭前发现订单已支付，未关闭",
            "deliver" => "已标记发货",
            "refund" => "退款已提交",
            _ => return None,
        }
        .to_string(),
    )
}

pub async fn detail(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<i32>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    let flash = q.done.as_deref().and_then(done_message);
    detail_page(
        &state,
        &who,
        *path,
        flash,
        ActionForms::default(),
        StatusCode::OK,
    )
    .await
}

fn back(order_id: i32, done: &str) -> HttpResponse {
    see_other(&format!("/admin/orders/{order_id}?done={done}"))
}

pub async fn requery(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<i32>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let _: BTreeMap<String, String> = csrf_form(&who.session, &body)?;
    let id = *path;
    let result = state.gateway().query_order(id).await;
    let text = match &result {
        Ok(found) if found.is_empty() => "平台未确认新的支付".to_string(),
        Ok(found) => found
            .iter()
            .map(|a| a.outcome())
            .collect::<Vec<_>>()
            .join("、"),
        Err(e) => format!("查询失败：{e}"),
    };
    let name = who.name.clone();
    db(&state, move |c| {
        admin::note(c, id, "admin_query", &name, &text)
    })
    .await?;
    Ok(back(id, "query"))
}

pub async fn close(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<i32>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let _: BTreeMap<String, String> = csrf_form(&who.session, &body)?;
    let id = *path;
    let closed = state
        .gateway()
        .settle_and_close(id, &who.name, "管理员关闭")
        .await?;
    Ok(back(id, if closed { "close" } else { "close_paid" }))
}

fn shipment_view(p: &crate::models::shipment::Shipment) -> ShipmentView {
    use crate::models::shipment::UploadStatus;
    let status = UploadStatus::from_code(p.upload_status);
    let upload = match status {
        None | Some(UploadStatus::NotNeeded) => None,
        Some(UploadStatus::Pending) if p.upload_tries == 0 => Some("待上传".to_string()),
        Some(UploadStatus::Pending) => Some(format!(
            "上传未成功（已试 {} 次），将于 {} 重试",
            p.upload_tries,
            p.upload_next_at.map(format_shanghai).unwrap_or_default()
        )),
        Some(UploadStatus::Uploaded) => Some("已上传".to_string()),
        Some(UploadStatus::Refused) => Some("微信拒绝，需人工处理".to_string()),
    };
    ShipmentView {
        carrier: p.carrier.clone(),
        tracking_no: p.tracking_no.clone(),
        actor: p.actor.clone(),
        created_at: format_shanghai(p.created_at),
        upload_problem: p.upload_tries > 0 && status != Some(UploadStatus::Uploaded),
        upload,
        upload_error: p.upload_error.clone(),
    }
}

#[derive(Deserialize)]
struct ShipForm {
    #[serde(default)]
    carrier: String,
    #[serde(default)]
    tracking_no: String,
}

pub async fn deliver(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<i32>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: ShipForm = csrf_form(&who.session, &body)?;
    let req = ShipRequest {
        order_id: *path,
        carrier: form.carrier.trim().to_string(),
        tracking_no: form.tracking_no.trim().to_string(),
        actor: who.name.clone(),
    };
    let r = req.clone();
    let errors = match db(&state, move |c| lifecycle::deliver(c, &r)).await {
        Ok(()) => {
            // Reported to WeChat now if it was paid in the mini-program; a failure stays
            // due for the shipping sweep and shows on the order page.
            if let Err(e) = state.gateway().upload_shipping(req.order_id).await {
                log::warn!("shipping upload of order {} failed: {e}", req.order_id);
            }
            return Ok(back(req.order_id, "deliver"));
        }
        Err(ServiceError::Invalid(e)) => e,
        Err(e) => return Err(e.into()),
    };
    let values = BTreeMap::from([
        ("carrier".to_string(), form.carrier),
        ("tracking_no".to_string(), form.tracking_no),
    ]);
    let ship = Form { values, errors };
    let forms = ActionForms {
        ship,
        ..ActionForms::default()
    };
    detail_page(
        &state,
        &who,
        req.order_id,
        None,
        forms,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

#[derive(Deserialize)]
struct RefundForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    out_refund_no: String,
    #[serde(default)]
    confirm: String,
}

pub async fn refund(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<i32>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: RefundForm = csrf_form(&who.session, &body)?;
    let id = *path;
    let mut errors = BTreeMap::new();
    let amount = Money::parse_yuan(&form.amount).ok().filter(|m| m.fen() > 0);
    if amount.is_none() {
        errors.insert(
            "amount".to_string(),
            "请输入大于 0 的金额（元，最多两位小数）".to_string(),
        );
    }
    let reason = form.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 80 {
        errors.insert(
            "reason".to_string(),
            "请填写退款原因（80 字以内）".to_string(),
        );
    }
    if form.confirm != "1" {
        errors.insert(
            "confirm".to_string(),
            "请勾选确认：退款提交后款项将原路退回，无法撤销".to_string(),
        );
    }
    if let (Some(amount), true) = (amount, errors.is_empty()) {
        let req = RefundRequest {
            order_id: id,
            amount,
            reason: reason.clone(),
            out_refund_no: form.out_refund_no.clone(),
            actor: who.name.clone(),
        };
        match state.gateway().refund(req).await {
            Ok(_) => return Ok(back(id, "refund")),
            Err(ServiceError::Invalid(e)) => errors.extend(e),
            Err(ServiceError::Refused(why)) => {
                errors.insert("form".into(), why);
            }
            Err(ServiceError::Gateway(why)) => {
                errors.insert("form".into(), format!("支付平台拒绝了退款：{why}"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let values = BTreeMap::from([
        ("amount".to_string(), form.amount),
        ("reason".to_string(), form.reason),
    ]);
    let forms = ActionForms {
        refund: Form { values, errors },
        ..ActionForms::default()
    };
    detail_page(
        &state,
        &who,
        id,
        None,
        forms,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// Submits a refund that was recorded but never sent (a payment without stock).
pub async fn submit_refund(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<(i32, i32)>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let _: BTreeMap<String, String> = csrf_form(&who.session, &body)?;
    let (order_id, refund_id) = path.into_inner();
    let h = db(&state, move |c| admin::order_history(c, order_id)).await?;
    let r = h
        .refunds
        .into_iter()
        .find(|r| r.id == refund_id)
        .ok_or_else(|| PageError::not_found("退款单不存在"))?;
    let (name, text) = (who.name.clone(), format!("提交退款 {}", r.out_refund_no));
    db(&state, move |c| {
        admin::note(c, order_id, "refund_submitted", &name, &text)
    })
    .await?;
    state.gateway().submit_refund(r).await?;
    Ok(back(order_id, "refund"))
}

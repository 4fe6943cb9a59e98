//! The PC pay flow of the ThinkPHP shop: the QR's URL (`qrpay`), the status poll, the result
//! page, and the direct WeChat NATIVE QR.

use super::{current, order_row};
use crate::controllers::error::PageError;
use crate::controllers::session::{Cart, Session, Shopper};
use crate::controllers::{db, layout, render};
use crate::domain::{format_shanghai, Channel, Money, OrderStatus};
use crate::models::order as order_rows;
use crate::models::Order;
use crate::services::pay::OrderRef;
use crate::startup::AppState;
use crate::views::{PayResultPage, PhoneCashier, Polling, ScanPromptPage, WxNativePage};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::sync::Arc;

/// Most QR codes kept rendered; past this the cache starts over.
const QR_CACHE_SIZE: usize = 10_000;

type QrCache = std::collections::HashMap<String, Arc<str>>;

fn qr_cache(state: &AppState) -> std::sync::MutexGuard<'_, QrCache> {
    // A poisoned cache still holds whole entries: use it.
    state.qr_cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// The QR code of `content` as inline SVG, rendered once and then served from the cache.
pub fn qr_svg(state: &AppState, content: &str) -> Result<String, PageError> {
    let hit = qr_cache(state).get(content).cloned();
    if let Some(svg) = hit {
        return Ok(svg.to_string());
    }
    let svg: Arc<str> = render_qr(content)?.into();
    let mut cache = qr_cache(state);
    if cache.len() >= QR_CACHE_SIZE {
        cache.clear();
    }
    cache.insert(content.to_string(), svg.clone());
    Ok(svg.to_string())
}

/// Renders the QR code of `content` as inline SVG (no XML declaration).
fn render_qr(content: &str) -> Result<String, PageError> {
    let code = qrcode::QrCode::new(content.as_bytes()).map_err(PageError::internal)?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    Ok(match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    })
}

pub fn polling(order_no: &str) -> Polling {
    Polling {
        status_url: format!("/home/order/status?order_sn={order_no}"),
        result_url: format!("/home/order/payresult?order_sn={order_no}"),
    }
}

/// Whether WeChat Pay can take payments in a phone browser outside WeChat: H5, APIv3 only.
pub fn wechat_h5(state: &AppState) -> bool {
    state.config.wechat.api_version == crate::config::ApiVersion::V3
}

fn user_agent(req: &HttpRequest) -> &str {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A phone's browser (WeChat's and Alipay's included), by User-Agent.
pub fn on_phone(req: &HttpRequest) -> bool {
    let ua = user_agent(req);
    ["Mobile", "Android", "iPhone", "iPad"]
        .iter()
        .any(|w| ua.contains(w))
}

/// The phone cashier of order `no` for this browser (`cashier = "direct"` on a phone).
pub fn phone_cashier(state: &AppState, req: &HttpRequest, no: &str) -> Option<PhoneCashier> {
    if state.config.cashier != crate::config::Cashier::Direct || !on_phone(req) {
        return None;
    }
    let hint = |h: &str| Some(h.to_string());
    let alipay = Some(format!("/home/order/qrpay?id={no}&channel=alipay_wap"));
    // An app's own browser pays with that app only.
    let cashier = match scanner(req) {
        // The QR's link in WeChat: the shop's cashier, or Ping++'s wx_pub_qr without one.
        Some(Channel::WxPubQr) => PhoneCashier {
            alipay_url: None,
            wechat_url: Some(format!("/home/order/qrpay?id={no}")),
            hint: hint("支付宝支付请点击右上角“…”，选择在浏览器中打开本页面。"),
        },
        Some(_) => PhoneCashier {
            alipay_url: alipay,
            wechat_url: None,
            hint: hint("微信支付请在微信中打开本页面。"),
        },
        None if wechat_h5(state) => PhoneCashier {
            alipay_url: alipay,
            wechat_url: Some(format!("/home/order/qrpay?id={no}&channel=wx_wap")),
            hint: None,
        },
        None => PhoneCashier {
            alipay_url: alipay,
            wechat_url: None,
            hint: hint("微信支付请在微信中打开本页面，或在电脑上扫码支付。"),
        },
    };
    Some(cashier)
}

/// The scanning app, by User-Agent: WeChat or Alipay.
fn scanner(req: &HttpRequest) -> Option<Channel> {
    let ua = user_agent(req);
    if ua.contains("MicroMessenger") {
        Some(Channel::WxPubQr)
    } else if ua.contains("AlipayClient") {
        Some(Channel::AlipayQr)
    } else {
        None
    }
}

#[derive(Deserialize)]
pub struct QrPayQuery {
    #[serde(default)]
    id: String,
    /// The plain browser's "pay with Alipay" link sets `alipay_qr`.
    channel: Option<String>,
}

/// Why an order can no longer be paid, in the shopper's words; `None` while it can.
pub(super) fn ended(o: &Order) -> Option<String> {
    match OrderStatus::from_code(o.status).ok()? {
        OrderStatus::Unpaid => None,
        OrderStatus::Closed => {
            Some("订单已关闭，无法继续支付。如仍需要，请在商城重新下单。".into())
        }
        _ => Some("订单已支付，无需再次付款。".into()),
    }
}

/// `GET /home/order/qrpay?id=ORDER_SN`: WeChat -> wx_pub_qr, Alipay -> alipay_qr (a Ping++
/// charge, or with `cashier = "direct"` the shop's own Alipay precreate), redirected to its
/// credential; `channel=alipay_wap|alipay_pc_direct` (direct only) -> Alipay's phone or PC
/// cashier; a plain browser is asked to scan. An order
/// past paying (closed, paid) says so instead.
pub async fn qrpay(
    state: web::Data<AppState>,
    session: Session,
    cart: Cart,
    req: HttpRequest,
    q: web::Query<QrPayQuery>,
) -> Result<HttpResponse, PageError> {
    let direct = state.config.cashier == crate::config::Cashier::Direct;
    // WeChat scanning the shop's own cashier: the payer's openid first, then JSAPI.
    if state.config.wechat_cashier() && scanner(&req) == Some(Channel::WxPubQr) {
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, super::cashier::cashier_url(&q.id)))
            .finish());
    }
    let no = q.id.clone();
    let o = db(&state, move |c| {
        order_rows::find_by_no(c, &no)?.ok_or(crate::services::ServiceError::OrderNotFound)
    })
    .await?;
    let o = current(&state, o, None).await?;
    // A browser may choose Alipay: its QR through Ping++, or with the shop's own accounts
    // the phone (wap.pay) or PC (page.pay) cashier of Alipay, or WeChat's H5 (APIv3).
    let chosen = q
        .channel
        .as_deref()
        .and_then(Channel::parse)
        .filter(|c| match c {
            Channel::AlipayQr => true,
            Channel::AlipayPage | Channel::AlipayWap => direct,
            Channel::WxWap => direct && wechat_h5(&state),
            _ => false,
        });
    let ended = ended(&o);
    let channel = match scanner(&req).or(chosen) {
        Some(channel) if ended.is_none() => channel,
        _ => {
            let qr_url = format!("{}/home/order/qrpay?id={}", state.public_url, o.order_no);
            let (amount, qr_svg) = match ended {
                Some(_) => (String::new(), String::new()),
                None => (
                    Money::from_fen(o.total_price).to_string(),
                    qr_svg(&state, &qr_url)?,
                ),
            };
            return render(
                &state,
                &ScanPromptPage {
                    layout: layout(&session, &cart),
                    order_no: o.order_no.clone(),
                    snap_name: o.snap_name.clone(),
                    amount,
                    qr_svg,
                    alipay_url: format!(
                        "/home/order/qrpay?id={}&channel={}",
                        o.order_no,
                        if direct { "alipay_wap" } else { "alipay_qr" }
                    ),
                    wechat_h5_url: (direct && wechat_h5(&state))
                        .then(|| format!("/home/order/qrpay?id={}&channel=wx_wap", o.order_no)),
                    ended,
                },
            );
        }
    };
    let ip = crate::controllers::client_ip(&state, &req);
    // WeChat binds an H5 page to the address that asked for it: one per address.
    let payer = (channel == Channel::WxWap).then(|| ip.clone());
    let prepared = state
        .gateway()
        .prepare(OrderRef::ByNo(o.order_no.clone()), channel, payer, ip)
        .await?;
    // A Ping++ charge's credential is an object by channel; Alipay direct's is the
    // precreate code itself, which the Alipay app opens to pay.
    let credential = prepared.created.credential.clone().unwrap_or_default();
    let target = match serde_json::from_str::<serde_json::Value>(&credential) {
        Ok(v) if v.is_object() => v[channel.as_str()].as_str().map(str::to_string),
        _ => Some(credential).filter(|c| c.starts_with("http")),
    }
    .ok_or_else(|| PageError::internal("charge without a QR credential"))?;
    // WeChat's H5 page sends the browser back to `redirect_url` after paying.
    let target = match channel {
        Channel::WxWap => {
            let back = format!("{}{}", state.public_url, polling(&o.order_no).result_url);
            let q = serde_urlencoded::to_string([("redirect_url", back)]).unwrap_or_default();
            format!("{target}&{q}")
        }
        _ => target,
    };
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, target))
        .finish())
}

#[derive(Deserialize)]
pub struct OrderSn {
    #[serde(default)]
    order_sn: String,
}

/// The order `order_no` if `uid` owns it.
fn owners_order(
    c: &mut crate::db::Conn,
    uid: Option<i32>,
    order_no: &str,
) -> Result<Option<Order>, crate::services::ServiceError> {
    Ok(order_rows::find_by_no(c, order_no)?.filter(|o| Some(o.user_id) == uid))
}

/// How long an attempt waits for its notification before the polling pay page has the shop
/// ask the platform (then every `pay::ask_interval`).
const POLL_ASKS_AFTER_SECONDS: i64 = 5;

/// `GET|POST /home/order/status?order_sn=`: the seed's polling answer, for the order's owner
/// (anyone else is told there is no such order). An attempt pending for a while is asked
/// about at its platform, an expired order closed.
pub async fn status(
    state: web::Data<AppState>,
    session: Session,
    q: web::Query<OrderSn>,
) -> HttpResponse {
    let no = q.order_sn.clone();
    let uid = session.data.uid;
    let found = match db(&state, move |c| owners_order(c, uid, &no)).await {
        Ok(Some(o)) => {
            let after = chrono::Duration::seconds(POLL_ASKS_AFTER_SECONDS);
            current(&state, o, Some(after)).await.map(Some)
        }
        other => other,
    };
    match found {
        Ok(Some(o)) => HttpResponse::Ok()
            .json(serde_json::json!({"code": 200, "msg": "success", "data": o.status})),
        Ok(None) => HttpResponse::NotFound()
            .json(serde_json::json!({"code": 404, "msg": "订单编号错误", "data": null})),
        Err(e) => {
            log::error!("status poll failed: {e}");
            HttpResponse::InternalServerError()
                .json(serde_json::json!({"code": 500, "msg": "error", "data": null}))
        }
    }
}

/// What the result page says about an order in `status`.
fn result_state(status: Option<OrderStatus>) -> &'static str {
    match status {
        Some(OrderStatus::Paid | OrderStatus::Delivered | OrderStatus::PaidButOutOfStock) => "paid",
        Some(OrderStatus::Refunded | OrderStatus::PartiallyRefunded) => "refunded",
        Some(OrderStatus::Closed) => "closed",
        Some(OrderStatus::Unpaid) | None => "unpaid",
    }
}

/// `GET /home/order/payresult?order_sn=`: 我已完成支付 lands here, so an unpaid order is
/// asked about at its platform first (rate-limited per attempt). Only for the order's
/// owner: anyone else reads 订单编号错误.
pub async fn payresult(
    state: web::Data<AppState>,
    shopper: Shopper,
    cart: Cart,
    q: web::Query<OrderSn>,
) -> Result<HttpResponse, PageError> {
    let no = q.order_sn.clone();
    let uid = Some(shopper.id);
    let found = db(&state, move |c| owners_order(c, uid, &no)).await?;
    let (session, cart) = (shopper.session, cart);
    let Some(o) = found else {
        return render(
            &state,
            &PayResultPage {
                layout: layout(&session, &cart),
                found: false,
                state: "unpaid",
                order_no: String::new(),
                pay_name: String::new(),
                amount: String::new(),
                refunded: String::new(),
                status_label: String::new(),
                pay_url: "/".into(),
                detail_url: "/home/orders".into(),
            },
        );
    };
    let o = current(&state, o, Some(chrono::Duration::zero())).await?;
    let status = OrderStatus::from_code(o.status).ok();
    let state_name = result_state(status);
    let refunded = if state_name == "refunded" {
        let id = o.id;
        db(&state, move |c| {
            crate::services::refund::refunded_total(c, id)
        })
        .await?
        .to_string()
    } else {
        String::new()
    };
    let page = PayResultPage {
        layout: layout(&session, &cart),
        found: true,
        state: state_name,
        order_no: o.order_no.clone(),
        pay_name: o.pay_name.clone().unwrap_or_default(),
        amount: Money::from_fen(o.total_price).to_string(),
        refunded,
        status_label: status.map(|s| s.label()).unwrap_or("未知").into(),
        pay_url: format!("/home/order/pay?order_sn={}", o.order_no),
        detail_url: format!("/home/order/detail?order_sn={}", o.order_no),
    };
    let mut res = render(&state, &page)?;
    no_store(&mut res);
    Ok(res)
}

/// Pages whose state changes under the shopper (pay, result) are fetched anew on reload and
/// on the back button rather than shown from the cache.
pub fn no_store(res: &mut HttpResponse) {
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
}

/// `GET /home/order/wxpay?order_sn=`: WeChat NATIVE, the QR of a `code_url` (reused while
/// the attempt lives, so reloading shows the same code).
pub async fn wxpay(
    state: web::Data<AppState>,
    shopper: Shopper,
    cart: Cart,
    req: HttpRequest,
    q: web::Query<OrderSn>,
) -> Result<HttpResponse, PageError> {
    let uid = shopper.id;
    let no = q.order_sn.clone();
    let o = db(&state, move |c| {
        crate::services::order::owned_by_no(c, uid, &no)
    })
    .await?;
    let prepared = state
        .gateway()
        .prepare(
            OrderRef::Owned {
                user_id: uid,
                order_id: o.id,
            },
            Channel::WxNative,
            None,
            crate::controllers::client_ip(&state, &req),
        )
        .await?;
    let code_url = prepared.created.credential.unwrap_or_default();
    let phone_url = state.sandbox.as_ref().map(|_| {
        let q = serde_urlencoded::to_string([("code_url", code_url.as_str())]).unwrap_or_default();
        format!("{}/wxpay/phone?{q}", state.sandbox_url())
    });
    render(
        &state,
        &WxNativePage {
            layout: layout(&shopper.session, &cart),
            order: order_row(&o),
            qr_svg: qr_svg(&state, &code_url)?,
            code_url,
            phone_url,
            expires_at: format_shanghai(o.expires_at),
            expires_at_unix: o.expires_at.and_utc().timestamp(),
            polling: polling(&o.order_no),
            pay_url: format!("/home/order/pay?order_sn={}", o.order_no),
        },
    )
}

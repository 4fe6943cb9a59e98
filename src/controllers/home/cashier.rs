//! The shop's own cashier in the WeChat browser (`cashier = "direct"`): the PC pay page's
//! QR opened in WeChat comes here. The Official Account's web OAuth (snsapi_base, no
//! consent screen) gives the payer's openid, kept in the session; the cashier page then
//! shows the order with a JSAPI payment (`wx_pub`, under the Official Account's appid) that
//! WeixinJSBridge starts. The PC page keeps polling and switches by itself.

use super::current;
use super::pay::ended;
use crate::controllers::error::PageError;
use crate::controllers::session::{Cart, Session};
use crate::controllers::{db, layout, render};
use crate::domain::{Channel, Money, OrderStatus};
use crate::models::order as order_rows;
use crate::payment::wechat::login::{self, App};
use crate::services::pay::OrderRef;
use crate::services::ServiceError;
use crate::startup::AppState;
use crate::views::WxCashierPage;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The cashier page of order `no`.
pub fn cashier_url(no: &str) -> String {
    format!("/home/order/wxcashier?id={no}")
}

/// The cashier page of order `no` once WeChat said it was paid.
fn paid_url(no: &str) -> String {
    format!("/home/order/wxcashier?id={no}&paid=1")
}

/// The cashier's pages exist only when the shop takes WeChat itself (`Config::wechat_cashier`).
fn own_cashier(state: &AppState) -> Result<(), PageError> {
    match state.config.wechat_cashier() {
        true => Ok(()),
        false => Err(PageError::not_found("页面不存在")),
    }
}

fn found(to: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Hex digits of the MAC that starts an OAuth `state`.
const STATE_MAC_LEN: usize = 16;

/// The OAuth `state` for order `no`: a MAC of the order number under the session's CSRF
/// token (16 hex digits; the token itself never leaves the page) then the number, all
/// alphanumeric as WeChat requires. Coming back, the MAC proves the code was asked for by
/// this browser, so nobody can plant their openid in someone else's session.
fn oauth_state(session: &Session, no: &str) -> String {
    let digest = Sha256::digest(format!("{}:oauth:{no}", session.data.csrf).as_bytes());
    format!("{}{no}", &hex::encode(digest)[..STATE_MAC_LEN])
}

/// The Official Account's authorize URL that comes back to `/home/order/wxoauth`.
fn authorize_url(state: &AppState, session: &Session, no: &str) -> String {
    let back = format!("{}/home/order/wxoauth", state.public_url);
    let query = serde_urlencoded::to_string([
        ("appid", state.config.wechat.oa_appid.as_str()),
        ("redirect_uri", back.as_str()),
        ("response_type", "code"),
        ("scope", "snsapi_base"),
        ("state", oauth_state(session, no).as_str()),
    ])
    .unwrap_or_default();
    format!(
        "{}/connect/oauth2/authorize?{query}#wechat_redirect",
        state.wechat_oauth_base()
    )
}

#[derive(Deserialize)]
pub struct OAuthReturn {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
}

/// `GET /home/order/wxoauth?code=&state=`: WeChat's OAuth comes back; the code is traded
/// for the openid (once: codes are single-use), kept in the session, and the browser goes
/// on to the cashier. A refused or missing code says so and offers to try again.
pub async fn oauth_return(
    state: web::Data<AppState>,
    session: Session,
    q: web::Query<OAuthReturn>,
) -> Result<HttpResponse, PageError> {
    own_cashier(&state)?;
    let no = q
        .state
        .get(STATE_MAC_LEN..)
        .filter(|no| !no.is_empty() && oauth_state(&session, no) == q.state)
        .ok_or_else(|| PageError::bad_request("授权已过期，请重新扫码。"))?
        .to_string();
    if q.code.is_empty() {
        // The user refused (snsapi_userinfo only) or WeChat sent no code.
        return Err(PageError::forbidden(
            "未获得微信授权，无法使用微信支付。请重新扫码。",
        ));
    }
    let wx = &state.config.wechat;
    let app = App {
        appid: &wx.oa_appid,
        secret: &wx.oa_app_secret,
    };
    let base = state.wechat_login_base();
    match login::oauth_openid(&state.http, &base, &app, &q.code).await {
        Ok(openid) => {
            session.set_wx_openid(&wx.oa_appid, &openid);
            Ok(found(&cashier_url(&no)))
        }
        Err(login::LoginError::Snapshot { .. }) => Err(PageError::forbidden(
            "当前是朋友圈快照页，无法支付。请点击页面底部的“前往完整页面”后再付款。",
        )),
        Err(e @ login::LoginError::Refused { .. }) => {
            log::warn!("wechat oauth refused: {e}");
            Err(PageError::forbidden("微信授权已失效，请重新扫码。"))
        }
        Err(e) => Err(PageError::from(ServiceError::WechatLogin(e))),
    }
}

#[derive(Deserialize)]
pub struct CashierQuery {
    #[serde(default)]
    id: String,
    /// Set by the page once WeChat said the payment went through.
    paid: Option<String>,
}

/// `GET /home/order/wxcashier?id=ORDER_SN`: the order with its JSAPI payment, started by
/// WeixinJSBridge. Without the payer's openid the browser first goes through OAuth; an order
/// past paying says so (支付成功 once WeChat's answer came back and the page reloaded).
pub async fn wechat(
    state: web::Data<AppState>,
    session: Session,
    cart: Cart,
    req: HttpRequest,
    q: web::Query<CashierQuery>,
) -> Result<HttpResponse, PageError> {
    own_cashier(&state)?;
    let no = q.id.clone();
    let o = db(&state, move |c| {
        order_rows::find_by_no(c, &no)?.ok_or(ServiceError::OrderNotFound)
    })
    .await?;
    // Back from paying: the notification may not have come yet, so ask (rate-limited).
    let back_from_paying = q.paid.is_some();
    let ask = back_from_paying.then(chrono::Duration::zero);
    let o = current(&state, o, ask).await?;
    let mut page = WxCashierPage {
        layout: layout(&session, &cart),
        order_no: o.order_no.clone(),
        snap_name: o.snap_name.clone(),
        amount: Money::from_fen(o.total_price).to_string(),
        launch: None,
        confirming: false,
        ended: ended(&o),
        paid: !matches!(
            OrderStatus::from_code(o.status),
            Ok(OrderStatus::Unpaid | OrderStatus::Closed) | Err(_)
        ),
        self_url: paid_url(&o.order_no),
        jsbridge_url: state
            .sandbox
            .is_some()
            .then(|| "/sandbox/wechat/jsbridge.js".to_string()),
    };
    if page.ended.is_none() && back_from_paying {
        // WeChat said ok, the shop has not heard yet: the page asks again in a moment.
        page.confirming = true;
    } else if page.ended.is_none() {
        // An openid of another Official Account (the configuration changed) is no use.
        let oa = state.config.wechat.oa_appid.as_str();
        let ours = session.data.wx_appid.as_deref() == Some(oa);
        let Some(openid) = session.data.wx_openid.clone().filter(|_| ours) else {
            return Ok(found(&authorize_url(&state, &session, &o.order_no)));
        };
        let prepared = state
            .gateway()
            .prepare(
                OrderRef::ByNo(o.order_no.clone()),
                Channel::WxPub,
                Some(openid),
                crate::controllers::client_ip(&state, &req),
            )
            .await?;
        let launch = state
            .gateway()
            .launch(&prepared, chrono::Utc::now().timestamp())
            .ok_or_else(|| PageError::internal("a WeChat payment without launch parameters"))?;
        page.launch = Some(serde_json::to_string(&launch).map_err(PageError::internal)?);
    }
    let mut res = render(&state, &page)?;
    super::pay::no_store(&mut res);
    Ok(res)
}

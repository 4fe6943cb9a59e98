//! The sandbox's HTTP face (mounted only in sandbox mode): the same paths as
//! `api.weixin.qq.com`, `api.mch.weixin.qq.com` (v2 XML and APIv3 JSON), `api.pingxx.com` and
//! Alipay's `gateway.do`, the simulated phone pages and Alipay cashier, and a control API for
//! tests (`/sandbox/control/...`).

use super::error::PageError;
use super::render;
use crate::domain::Money;
use crate::sandbox::alipay::GatewayReply;
use crate::sandbox::pingpp::RequestAuth;
use crate::sandbox::{wxa, wxlogin, FaultRule, Sandbox};
use crate::startup::AppState;
use crate::views::SandboxPhonePage;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

fn sandbox(state: &AppState) -> Result<Arc<Sandbox>, PageError> {
    state
        .sandbox
        .clone()
        .ok_or_else(|| PageError::not_found("沙箱未启用"))
}

/// Which of WeChat's code exchanges a `sns/…` request is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CodeKind {
    /// `sns/jscode2session`: the mini-program's `wx.login` code (`js_code`).
    MiniProgram,
    /// `sns/oauth2/access_token`: the Official Account's web OAuth code (`code`).
    OfficialAccount,
}

/// Trades the code in `q` as WeChat does; WeChat answers 200 with errcode in the body,
/// whatever went wrong.
fn exchange_code(
    state: &AppState,
    q: &HashMap<String, String>,
    kind: CodeKind,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(state)?;
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let (appid, secret, code_key) = match kind {
        CodeKind::MiniProgram => (&sb.wechat_appid, &sb.wechat_app_secret, "js_code"),
        CodeKind::OfficialAccount => (
            &sb.official_account_appid,
            &sb.official_account_secret,
            "code",
        ),
    };
    let app = wxlogin::MiniProgram { appid, secret };
    let exchange = wxlogin::CodeExchange {
        appid: get("appid"),
        secret: get("secret"),
        js_code: get(code_key),
        grant_type: get("grant_type"),
    };
    let now = chrono::Utc::now().timestamp();
    let st = &mut sb.state();
    let answer = match kind {
        CodeKind::MiniProgram => wxlogin::jscode2session(st, &app, &exchange, now),
        CodeKind::OfficialAccount => wxlogin::oauth_access_token(st, &app, &exchange, now),
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// `GET /sandbox/wxapi/sns/jscode2session`.
pub async fn jscode2session(
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    exchange_code(&state, &q, CodeKind::MiniProgram)
}

/// `GET /sandbox/wxapi/sns/oauth2/access_token`: the Official Account's web OAuth code
/// traded for the openid.
pub async fn oauth_access_token(
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    exchange_code(&state, &q, CodeKind::OfficialAccount)
}

/// The cookie that stands for the WeChat account of a sandbox browser.
const WX_USER_COOKIE: &str = "sbx_wx_user";

fn wx_user(req: &HttpRequest) -> Option<String> {
    req.cookie(WX_USER_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

fn user_agent_has(req: &HttpRequest, word: &str) -> bool {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains(word))
}

/// `GET /sandbox/wechat/connect/oauth2/authorize`: the WeChat browser asks its user (here:
/// the browser's sandbox WeChat account, made on first use) and comes back to the
/// redirect_uri with a code; anything WeChat refuses shows its error page.
pub async fn oauth_authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let known = wx_user(&req);
    let user = known
        .clone()
        .unwrap_or_else(|| crate::sandbox::random_id(24));
    let oa = wxlogin::OfficialAccount {
        appid: &sb.official_account_appid,
        domain: &sb.shop_domain,
    };
    let ask = wxlogin::Authorize {
        appid: get("appid"),
        redirect_uri: get("redirect_uri"),
        response_type: get("response_type"),
        scope: get("scope"),
        state: get("state"),
    };
    let in_wechat = user_agent_has(&req, "MicroMessenger");
    let now = chrono::Utc::now().timestamp();
    let answer = wxlogin::authorize(&mut sb.state(), &oa, &ask, &user, in_wechat, now);
    let mut res = match answer {
        Ok(to) => HttpResponse::Found()
            .insert_header((actix_web::http::header::LOCATION, to))
            .finish(),
        Err(why) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(format!(
                "<!doctype html><meta charset=utf-8><title>微信网页授权</title>\
                 <p id=oauth-error>Oops! Something went wrong:( {}</p>",
                tera::escape_html(&why)
            )),
    };
    if known.is_none() {
        let cookie = actix_web::cookie::Cookie::build(WX_USER_COOKIE, user)
            .path("/sandbox")
            .http_only(true)
            .finish();
        res.add_cookie(&cookie).map_err(PageError::internal)?;
    }
    Ok(res)
}

/// `GET /sandbox/wechat/jsbridge.js`: the stand-in for the WeChat browser's WeixinJSBridge.
pub async fn jsbridge_js(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    sandbox(&state)?;
    Ok(HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("../sandbox/jsbridge.js")))
}

/// `POST /sandbox/wechat/jsapi_pay`: what the WeChat browser does once its user confirms a
/// `getBrandWCPayRequest`; answers the callback's `{err_msg, err_desc}`.
pub async fn jsapi_pay(
    state: web::Data<AppState>,
    req: HttpRequest,
    launch: web::Json<crate::sandbox::jsbridge::Launch>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let user = wx_user(&req).filter(|_| user_agent_has(&req, "MicroMessenger"));
    Ok(
        HttpResponse::Ok().json(match sb.bridge_pay(user.as_deref(), &launch) {
            Ok(_) => serde_json::json!({"err_msg": "get_brand_wcpay_request:ok"}),
            Err(why) => serde_json::json!({
                "err_msg": "get_brand_wcpay_request:fail",
                "err_desc": why,
            }),
        }),
    )
}

/// `POST /sandbox/wxapi/cgi-bin/stable_token`.
pub async fn stable_token(
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let now = sb.now();
    Ok(HttpResponse::Ok().json(wxa::stable_token(&sb, &body, now)))
}

/// `POST /sandbox/wxapi/wxa/sec/order/upload_shipping_info?access_token=…`.
pub async fn upload_shipping_info(
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let now = sb.now();
    let token = q
        .get("access_token")
        .map(String::as_str)
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(wxa::upload_shipping_info(&sb, token, &body, now)))
}

/// `GET /sandbox/control/shipping`: the uploads WeChat accepted.
pub async fn shipping(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let list: Vec<wxa::Shipped> = sb.state().wxa.shipped.values().cloned().collect();
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /sandbox/control/tokens`: how many access_tokens were issued and are held.
pub async fn tokens(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let issued = sandbox(&state)?.state().wxa.tokens.len();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "issued": issued })))
}

/// `POST /sandbox/control/revoke_tokens`: every access_token dies now.
pub async fn revoke_tokens(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    wxa::revoke_tokens(&mut sandbox(&state)?.state());
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct WxLoginCommand {
    user: String,
}

/// `POST /sandbox/control/wx_login {"user"}`: what `wx.login` does on that user's phone in
/// the mini-program: `{"code"}`, single-use, for five minutes.
pub async fn wx_login(
    state: web::Data<AppState>,
    cmd: web::Json<WxLoginCommand>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    if cmd.user.is_empty() {
        return Ok(HttpResponse::BadRequest().json(serde_json::json!({"error": "user required"})));
    }
    let now = chrono::Utc::now().timestamp();
    let code = wxlogin::issue_code(&mut sb.state(), &sb.wechat_appid, &cmd.user, now);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "code": code })))
}

fn xml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// `POST /sandbox/wxpay/pay/{action}`.
pub async fn wxpay_api(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    Ok(match path.as_str() {
        "unifiedorder" => xml(sb.wx_unifiedorder(&body)),
        "orderquery" => xml(sb.wx_orderquery(&body)),
        "closeorder" => xml(sb.wx_closeorder(&body)),
        "downloadbill" => match sb.wx_downloadbill(&body) {
            Ok(csv) => HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body(csv),
            Err(refusal) => xml(refusal),
        },
        "refundquery" => xml(sb.wx_refundquery(&body)),
        _ => return Err(PageError::not_found("no such API")),
    })
}

#[derive(Deserialize)]
pub struct WxPhoneQuery {
    prepay_id: Option<String>,
    code_url: Option<String>,
    /// H5: where the page sends the browser after paying (the shop's result page).
    redirect_url: Option<String>,
}

fn wx_page(
    sb: &Sandbox,
    o: &crate::sandbox::WxOrder,
    done: bool,
    error: Option<String>,
    redirect_url: Option<&str>,
) -> SandboxPhonePage {
    let mut pairs = vec![("out_trade_no", o.out_trade_no.as_str())];
    pairs.extend(redirect_url.map(|r| ("redirect_url", r)));
    let q = serde_urlencoded::to_string(pairs).unwrap_or_default();
    SandboxPhonePage {
        app_name: "微信支付".into(),
        merchant: "结算商城".into(),
        subject: o.body.clone(),
        amount: Money::from_fen(o.total_fee).to_string(),
        trade_no: o.out_trade_no.clone(),
        action: format!("{}/wxpay/phone/pay?{q}", sb.base_url),
        done: done || o.trade_state == "SUCCESS",
        error,
    }
}

/// The phone of a WeChat user about to pay a prepay_id (wx.requestPayment) or a code_url (a
/// scan).
pub async fn wx_phone(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<WxPhoneQuery>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let o = sb
        .wx_find(q.prepay_id.as_deref(), q.code_url.as_deref())
        .ok_or_else(|| PageError::not_found("支付单不存在"))?;
    let back = q.redirect_url.as_deref();
    if o.trade_type == "MWEB" {
        // WeChat's H5 page: only outside WeChat, and back only to the merchant's H5 domain.
        if user_agent_has(&req, "MicroMessenger") {
            let why = "请在微信外打开订单，进行支付".to_string();
            return render(&state, &wx_page(&sb, &o, false, Some(why), None));
        }
        if let Some(why) = back.and_then(|r| foreign_domain(&sb, r)) {
            return render(&state, &wx_page(&sb, &o, false, Some(why), None));
        }
    }
    render(&state, &wx_page(&sb, &o, false, None, back))
}

/// Why WeChat would not send the browser back to `url`: not on the shop's H5 domain.
fn foreign_domain(sb: &Sandbox, url: &str) -> Option<String> {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    (host.as_deref() != Some(sb.shop_domain.as_str()))
        .then(|| "商家参数格式有误：redirect_url 不在 H5 支付域名下".to_string())
}

#[derive(Deserialize)]
pub struct TradeQuery {
    #[serde(default)]
    out_trade_no: String,
}

#[derive(Deserialize)]
pub struct PhonePayQuery {
    #[serde(default)]
    out_trade_no: String,
    redirect_url: Option<String>,
}

pub async fn wx_phone_pay(
    state: web::Data<AppState>,
    q: web::Query<PhonePayQuery>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let result = sb.wx_pay(&q.out_trade_no);
    let o = sb
        .state()
        .wx
        .get(&q.out_trade_no)
        .cloned()
        .ok_or_else(|| PageError::not_found("支付单不存在"))?;
    let back = q
        .redirect_url
        .as_deref()
        .filter(|r| o.trade_type == "MWEB" && foreign_domain(&sb, r).is_none());
    let page = match (result, back) {
        // H5: back to the merchant's page once paid.
        (Ok(_), Some(to)) => {
            return Ok(HttpResponse::SeeOther()
                .insert_header((actix_web::http::header::LOCATION, to))
                .finish())
        }
        (Ok(_), None) => wx_page(&sb, &o, true, None, None),
        (Err(e), _) => wx_page(&sb, &o, false, Some(e), back),
    };
    render(&state, &page)
}

fn pp_reply((status, body): (u16, String)) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK),
    )
    .content_type("application/json;charset=UTF-8")
    .body(body)
}

/// The raw path and query the merchant signed: the request's, without the sandbox scope it
/// reached the platform under (its base URL).
fn signed_target<'a>(req: &'a HttpRequest, scope: &str) -> &'a str {
    let full = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_default();
    full.strip_prefix(scope).unwrap_or(full)
}

/// Ping++'s `/v1/...` as `/sandbox/pingpp/v1/...`; `uri` is what the merchant signed.
fn pp_auth(sb: &Sandbox, req: &HttpRequest, body: &[u8]) -> Result<(), (u16, String)> {
    let header = |k: &str| req.headers().get(k).and_then(|v| v.to_str().ok());
    let uri = signed_target(req, "/sandbox/pingpp");
    sb.pp_authenticate(&RequestAuth {
        authorization: header("authorization"),
        timestamp: header("pingplusplus-request-timestamp"),
        signature: header("pingplusplus-signature"),
        request_uri: uri,
        body,
    })
}

pub async fn pp_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    if let Err(res) = pp_auth(&sb, &req, &body) {
        return Ok(pp_reply(res));
    }
    Ok(pp_reply(sb.pp_create(&body)))
}

pub async fn pp_retrieve(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    if let Err(res) = pp_auth(&sb, &req, b"") {
        return Ok(pp_reply(res));
    }
    Ok(pp_reply(sb.pp_retrieve(&path)))
}

pub async fn pp_list(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    if let Err(res) = pp_auth(&sb, &req, b"") {
        return Ok(pp_reply(res));
    }
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    Ok(pp_reply(
        sb.pp_list(q.get("app[id]").map(String::as_str), limit),
    ))
}

fn pp_page(
    sb: &Sandbox,
    c: &crate::payment::pingpp::Charge,
    done: bool,
    error: Option<String>,
) -> SandboxPhonePage {
    SandboxPhonePage {
        app_name: if c.channel.starts_with("alipay") {
            "支付宝"
        } else {
            "微信支付"
        }
        .into(),
        merchant: "结算商城".into(),
        subject: c.subject.clone(),
        amount: Money::from_fen(c.amount).to_string(),
        trade_no: c.order_no.clone(),
        action: format!("{}/pingpp/phone/{}", sb.base_url, c.id),
        done: done || c.paid,
        error,
    }
}

/// The credential of a QR channel: the scanning app's confirmation screen.
pub async fn pp_phone(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let c = sb
        .pp_find(&path)
        .ok_or_else(|| PageError::not_found("支付单不存在"))?;
    render(&state, &pp_page(&sb, &c, false, None))
}

pub async fn pp_phone_pay(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let result = sb.pp_pay(&path);
    let c = sb
        .pp_find(&path)
        .ok_or_else(|| PageError::not_found("支付单不存在"))?;
    let page = match result {
        Ok(_) => pp_page(&sb, &c, true, None),
        Err(e) => pp_page(&sb, &c, false, Some(e)),
    };
    render(&state, &page)
}

/// pingpp-js test mode: `GET /notify/charges/{id}?livemode=false` pays and answers `success`.
pub async fn pp_test_notify(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    Ok(match sb.pp_pay(&path) {
        Ok(_) => HttpResponse::Ok().body("success"),
        Err(e) => HttpResponse::BadRequest().body(e),
    })
}

/// `POST /sandbox/control/faults`: faults for trades starting with `prefix`.
pub async fn set_faults(
    state: web::Data<AppState>,
    rule: web::Json<FaultRule>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    sb.state().rules.push(rule.into_inner());
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /sandbox/control/faults`.
pub async fn clear_faults(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    sandbox(&state)?.state().rules.clear();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct PayCommand {
    out_trade_no: Option<String>,
    charge_id: Option<String>,
}

/// `POST /sandbox/control/pay`: what pressing 确认支付 does, for tests.
pub async fn control_pay(
    state: web::Data<AppState>,
    cmd: web::Json<PayCommand>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let result = match (&cmd.out_trade_no, &cmd.charge_id) {
        (_, Some(ch)) => sb.pp_pay(ch).map(|c| serde_json::json!({"paid": c.id})),
        (Some(no), None) if sb.state().alipay.trades.contains_key(no) => sb
            .ali_pay(no)
            .map(|t| serde_json::json!({"paid": t.out_trade_no, "trade_no": t.trade_no})),
        (Some(no), None) => sb.wx_pay(no).map(
            |o| serde_json::json!({"paid": o.out_trade_no, "transaction_id": o.transaction_id}),
        ),
        (None, None) => Err("out_trade_no or charge_id required".into()),
    };
    Ok(match result {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::BadRequest().json(serde_json::json!({"error": e})),
    })
}

/// `GET /sandbox/control/deliveries?out_trade_no=`: every delivery try and its answer.
pub async fn deliveries(
    state: web::Data<AppState>,
    q: web::Query<TradeQuery>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let list: Vec<_> = sb
        .state()
        .deliveries
        .iter()
        .filter(|d| q.out_trade_no.is_empty() || d.out_trade_no == q.out_trade_no)
        .cloned()
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// `POST /sandbox/wxpay/secapi/pay/refund` (the sandbox needs no client certificate).
pub async fn wxpay_refund(
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (reply, hang_ms) = sandbox(&state)?.wx_refund(&body);
    hang(hang_ms).await;
    Ok(xml(reply))
}

/// Holds an answer back (the refund_hang_ms fault: the merchant times out first).
async fn hang(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

pub async fn pp_refund(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    if let Err(res) = pp_auth(&sb, &req, &body) {
        return Ok(pp_reply(res));
    }
    let (reply, hang_ms) = sb.pp_refund_faulty(&path, &body);
    hang(hang_ms).await;
    Ok(pp_reply(reply))
}

/// `GET /sandbox/pingpp/v1/charges/{id}/refunds?limit=`.
pub async fn pp_refund_list(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    if let Err(res) = pp_auth(&sb, &req, b"") {
        return Ok(pp_reply(res));
    }
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    Ok(pp_reply(sb.pp_refund_list(&path, limit)))
}

/// `GET /sandbox/control/refunds?out_trade_no=`: the refunds the platform holds for a
/// trade (WeChat and Ping++), to count them.
pub async fn refunds(
    state: web::Data<AppState>,
    q: web::Query<TradeQuery>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let st = sb.state();
    let mut list: Vec<serde_json::Value> = st
        .wx_refunds
        .values()
        .filter(|r| r.out_trade_no == q.out_trade_no)
        .map(|r| {
            serde_json::json!({"provider": "wechat", "out_refund_no": r.out_refund_no,
                "refund_id": r.refund_id, "amount": r.refund_fee, "status": r.status})
        })
        .collect();
    list.extend(
        st.refunds
            .values()
            .filter(|r| r.charge_order_no == q.out_trade_no)
            .map(|r| {
                serde_json::json!({"provider": "pingpp", "out_refund_no": r.metadata["out_refund_no"],
                    "refund_id": r.id, "amount": r.amount, "status": r.status})
            }),
    );
    list.extend(
        st.alipay
            .refunds
            .iter()
            .filter(|r| r.out_trade_no == q.out_trade_no)
            .map(|r| {
                serde_json::json!({"provider": "alipay", "out_refund_no": r.out_request_no,
                    "amount": r.amount, "status": "REFUND_SUCCESS"})
            }),
    );
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize)]
pub struct ClockCommand {
    advance_seconds: i64,
}

/// `POST /sandbox/control/clock {advance_seconds}`: moves the sandbox's clock ahead (its
/// 2-hour credential lives and expiry checks), for tests.
pub async fn advance_clock(
    state: web::Data<AppState>,
    cmd: web::Json<ClockCommand>,
) -> Result<HttpResponse, PageError> {
    sandbox(&state)?.state().clock_offset += cmd.advance_seconds;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct AgeCommand {
    seconds: i64,
}

/// `POST /sandbox/control/age {seconds}`: every WeChat trade and refund moves that far into
/// the past (so today's trades are on yesterday's bill), the clock staying where it is.
pub async fn age_trades(
    state: web::Data<AppState>,
    cmd: web::Json<AgeCommand>,
) -> Result<HttpResponse, PageError> {
    sandbox(&state)?.age_trades(cmd.seconds);
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /sandbox/alipay/bill/{token}`: the bill zip a `bill_download_url` names, for 30 s.
pub async fn alipay_bill(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    match sb.ali_bill_zip(&token) {
        Some(zip) => Ok(HttpResponse::Ok().content_type("application/zip").body(zip)),
        None => Err(PageError::not_found("账单下载链接无效或已过期")),
    }
}

/// `POST /sandbox/control/forget`: the sandbox forgets every trade, as after a restart.
pub async fn forget(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    sandbox(&state)?.forget();
    Ok(HttpResponse::NoContent().finish())
}

pub async fn pp_refund_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    if let Err(res) = pp_auth(&sb, &req, b"") {
        return Ok(pp_reply(res));
    }
    Ok(pp_reply(sb.pp_refund_get(&path.0, &path.1)))
}

/// The scope the sandbox's WeChat Pay API is mounted under: a client whose base is
/// `{public}/sandbox/wxpay` signs `/v3/…`, so this prefix is not part of what it signed.
const WXPAY_SCOPE: &str = "/sandbox/wxpay";

/// `/sandbox/wxpay/v3/…`: WeChat Pay APIv3 (every path; the sandbox routes by method and
/// path itself, from the raw request target the merchant signed).
pub async fn wxpay_v3(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let header = |k: &str| req.headers().get(k).and_then(|v| v.to_str().ok());
    let reply = sb.v3_handle(&crate::sandbox::wxpay_v3::Request {
        method: req.method().as_str(),
        target: signed_target(&req, WXPAY_SCOPE),
        authorization: header("authorization"),
        accept: header("accept"),
        user_agent: header("user-agent"),
        body: &body,
    });
    hang(reply.hang_ms).await;
    let status = actix_web::http::StatusCode::from_u16(reply.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    for (k, v) in reply.headers {
        res.insert_header((k, v));
    }
    Ok(if reply.body.is_empty() {
        res.finish()
    } else if reply.text {
        res.content_type("text/plain; charset=utf-8")
            .body(reply.body)
    } else {
        res.content_type("application/json; charset=utf-8")
            .body(reply.body)
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RotateCommand {
    retire: bool,
}

/// `POST /sandbox/control/rotate_cert {retire?}`: starts the next APIv3 platform certificate
/// (the old one stays listed); a second call, or `retire`, retires the old one. Answers the
/// serials: `{current, listed, retired}`.
pub async fn rotate_cert(
    state: web::Data<AppState>,
    cmd: Option<web::Json<RotateCommand>>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let retire = cmd.is_some_and(|c| c.retire);
    Ok(match sb.v3_rotate(retire) {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::Conflict().json(serde_json::json!({ "error": e })),
    })
}

/// `GET|POST /sandbox/alipay/gateway.do`: parameters in the query and/or a form body. API
/// methods answer signed JSON; page.pay / wap.pay send the browser on to the cashier, or
/// show Alipay's error page.
pub async fn alipay_gateway(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    match sb.ali_gateway(req.query_string(), &body) {
        GatewayReply::Json { body, hang_ms } => {
            hang(hang_ms).await;
            // The live gateway labels its JSON text/html.
            Ok(HttpResponse::Ok()
                .content_type("text/html;charset=utf-8")
                .body(body))
        }
        GatewayReply::Cashier(url) => Ok(HttpResponse::Found()
            .insert_header(("location", url))
            .finish()),
        GatewayReply::ErrorPage(f) => Err(PageError::bad_request(format!(
            "错误代码 {} 错误原因: {}",
            f.sub_code.trim_start_matches("isv."),
            f.sub_msg
        ))),
    }
}

fn ali_page(
    sb: &Sandbox,
    t: &crate::sandbox::alipay::Trade,
    kind: &str,
    error: Option<String>,
) -> SandboxPhonePage {
    SandboxPhonePage {
        app_name: "支付宝".into(),
        merchant: "结算商城".into(),
        subject: t.subject.clone(),
        amount: Money::from_fen(t.total).to_string(),
        trade_no: t.out_trade_no.clone(),
        action: format!("{}/alipay/{kind}/{}", sb.base_url, t.code),
        done: matches!(t.status, "TRADE_SUCCESS" | "TRADE_FINISHED"),
        error,
    }
}

/// The trade behind `/alipay/{qr|cashier}/{code}`.
fn ali_trade(
    sb: &Sandbox,
    path: &(String, String),
) -> Result<crate::sandbox::alipay::Trade, PageError> {
    let (kind, code) = path;
    if kind != "qr" && kind != "cashier" {
        return Err(PageError::not_found("页面不存在"));
    }
    sb.ali_by_code(code)
        .ok_or_else(|| PageError::not_found("交易不存在"))
}

/// `GET /sandbox/alipay/{qr|cashier}/{code}`: the Alipay app after scanning a precreate QR,
/// or the cashier a page.pay / wap.pay form led to. The trade exists from now on.
pub async fn alipay_phone(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let t = ali_trade(&sb, &path)?;
    let page = match sb.ali_open(&t.code) {
        Ok(t) => ali_page(&sb, &t, &path.0, None),
        Err(e) => ali_page(&sb, &t, &path.0, Some(e)),
    };
    render(&state, &page)
}

/// `POST /sandbox/alipay/{qr|cashier}/{code}`: 确认付款. The cashier then sends the browser
/// to `return_url` with signed parameters.
pub async fn alipay_phone_pay(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let sb = sandbox(&state)?;
    let t = ali_trade(&sb, &path)?;
    match sb.ali_pay(&t.out_trade_no) {
        Ok(paid) => match sb.ali_return_url(&paid).filter(|_| path.0 == "cashier") {
            Some(url) => Ok(HttpResponse::Found()
                .insert_header(("location", url))
                .finish()),
            None => render(&state, &ali_page(&sb, &paid, &path.0, None)),
        },
        Err(e) => {
            let now = sb.ali_by_code(&t.code).unwrap_or(t);
            render(&state, &ali_page(&sb, &now, &path.0, Some(e)))
        }
    }
}

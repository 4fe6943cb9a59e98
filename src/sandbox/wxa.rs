//! The mini-program server API as WeChat plays it: `cgi-bin/stable_token` (one token per app
//! while it lives, renewed in its last five minutes; `force_refresh` at most every 30 s, the
//! old token dying five minutes later) and `wxa/sec/order/upload_shipping_info` (the token,
//! the payment, its payer and every field checked; one re-upload per payment). Answers are
//! always HTTP 200 with `errcode`, as WeChat's are.

use super::{random_id, Sandbox, State};
use serde_json::{json, Value};

/// How long a token lives (seconds).
pub const TOKEN_LIFE: i64 = 7200;
/// A token replaced by a forced refresh keeps working this long.
const OLD_TOKEN_GRACE: i64 = 300;
/// Forced refreshes at least this far apart.
const FORCE_INTERVAL: i64 = 30;
/// The carriers of WeChat's delivery list the sandbox knows (`get_delivery_list` ids).
pub const EXPRESS_COMPANIES: [&str; 12] = [
    "SF", "JD", "YZPY", "EMS", "ZTO", "YTO", "YD", "STO", "JTSD", "DBL", "ZJS", "HTKY",
];

/// An issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub appid: String,
    pub expires_at: i64,
}

/// One accepted upload, as WeChat keeps it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shipped {
    pub transaction_id: String,
    pub out_trade_no: String,
    /// Accepted uploads of this payment (the first, and at most one re-upload).
    pub uploads: u32,
    pub upload_time: String,
    pub body: Value,
}

/// The mini-program tokens and shipping uploads the sandbox holds.
#[derive(Debug, Default)]
pub struct WxaState {
    pub tokens: std::collections::HashMap<String, IssuedToken>,
    /// The app's current stable token.
    pub current: Option<String>,
    pub last_force: Option<i64>,
    pub shipped: std::collections::HashMap<String, Shipped>,
    /// Uploads answered 10060001 so far, by trade (the `shipping_unindexed` fault).
    pub unindexed: std::collections::HashMap<String, u32>,
}

fn err(code: i64, msg: &str) -> Value {
    json!({ "errcode": code, "errmsg": msg })
}

fn issue(st: &mut WxaState, appid: &str, now: i64) -> String {
    let token = format!("SANDBOX_{}", random_id(120));
    st.tokens.insert(
        token.clone(),
        IssuedToken {
            appid: appid.into(),
            expires_at: now + TOKEN_LIFE,
        },
    );
    st.current = Some(token.clone());
    token
}

/// `POST cgi-bin/stable_token`.
pub fn stable_token(sb: &Sandbox, body: &[u8], now: i64) -> Value {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return err(47001, "data format error");
    };
    let field = |k: &str| req[k].as_str().unwrap_or_default();
    if field("grant_type") != "client_credential" {
        return err(40002, "invalid grant_type");
    }
    if field("appid") != sb.wechat_appid {
        return err(40013, "invalid appid");
    }
    if field("secret") != sb.wechat_app_secret {
        return err(40125, "invalid appsecret");
    }
    let force = req["force_refresh"].as_bool().unwrap_or(false);
    let mut st = sb.state();
    let w = &mut st.wxa;
    let live = w
        .current
        .clone()
        .and_then(|t| w.tokens.get(&t).map(|i| (t, i.expires_at)));
    let token = match live {
        Some(_) if force && w.last_force.is_some_and(|f| now - f < FORCE_INTERVAL) => {
            return err(45009, "reach max api minute quota limit");
        }
        Some((t, _)) if force => {
            if let Some(old) = w.tokens.get_mut(&t) {
                old.expires_at = old.expires_at.min(now + OLD_TOKEN_GRACE);
            }
            w.last_force = Some(now);
            issue(w, &sb.wechat_appid, now)
        }
        // The platform renews a token in its last five minutes; the old one lives on.
        Some((t, exp)) if exp - now > OLD_TOKEN_GRACE => t,
        _ => issue(w, &sb.wechat_appid, now),
    };
    let expires_in = w.tokens.get(&token).map_or(0, |i| i.expires_at - now);
    json!({ "access_token": token, "expires_in": expires_in })
}

/// Every current token dies now (tests of the 40001 → refresh → retry path).
pub fn revoke_tokens(st: &mut State) {
    st.wxa.tokens.clear();
}

/// The payment an upload names, as the platform holds it: trade number, payer, whether it
/// was refunded.
struct Payment {
    out_trade_no: String,
    openid: String,
    refunded: bool,
}

fn find_payment(st: &State, transaction_id: &str) -> Option<Payment> {
    if let Some(o) = st
        .wx
        .values()
        .find(|o| o.transaction_id.as_deref() == Some(transaction_id))
    {
        return Some(Payment {
            out_trade_no: o.out_trade_no.clone(),
            openid: o.openid.clone(),
            refunded: o.trade_state == "REFUND",
        });
    }
    st.charges
        .values()
        .find(|c| c.channel == "wx_lite" && c.transaction_no.as_deref() == Some(transaction_id))
        .map(|c| Payment {
            out_trade_no: c.order_no.clone(),
            openid: c.extra["open_id"].as_str().unwrap_or_default().into(),
            refunded: c.amount_refunded > 0,
        })
}

/// What is wrong with an upload's fields, as WeChat words it (47001 with the field).
fn field_error(req: &Value) -> Option<String> {
    let logistics = req["logistics_type"].as_i64().unwrap_or(0);
    if !(1..=4).contains(&logistics) {
        return Some("logistics_type".into());
    }
    let mode = req["delivery_mode"].as_i64().unwrap_or(0);
    if mode != 1 && mode != 2 {
        return Some("delivery_mode".into());
    }
    let list = req["shipping_list"].as_array().cloned().unwrap_or_default();
    if list.is_empty() || list.len() > 15 || (mode == 1 && list.len() != 1) {
        return Some("shipping_list".into());
    }
    for p in &list {
        let desc = p["item_desc"].as_str().unwrap_or_default();
        if desc.is_empty() || desc.chars().count() > 120 {
            return Some("item_desc".into());
        }
        if logistics == 1 {
            let tracking = p["tracking_no"].as_str().unwrap_or_default();
            let company = p["express_company"].as_str().unwrap_or_default();
            if tracking.is_empty() || tracking.len() > 128 {
                return Some("tracking_no".into());
            }
            if !EXPRESS_COMPANIES.contains(&company) {
                return Some("express_company".into());
            }
            // SF Express needs a contact, masked but for the last four digits.
            let contact = p["contact"]["receiver_contact"]
                .as_str()
                .or(p["contact"]["consignor_contact"].as_str())
                .unwrap_or_default();
            if company == "SF" && !contact.contains('*') {
                return Some("contact".into());
            }
        }
    }
    let time = req["upload_time"].as_str().unwrap_or_default();
    if chrono::DateTime::parse_from_rfc3339(time).is_err() {
        return Some("upload_time".into());
    }
    if req["payer"]["openid"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        return Some("payer.openid".into());
    }
    None
}

/// `POST wxa/sec/order/upload_shipping_info?access_token=…`.
pub fn upload_shipping_info(sb: &Sandbox, access_token: &str, body: &[u8], now: i64) -> Value {
    let mut st = sb.state();
    match st.wxa.tokens.get(access_token) {
        None => {
            return err(
                40001,
                "invalid credential, access_token is invalid or not latest",
            )
        }
        Some(t) if t.expires_at <= now => return err(42001, "access_token expired"),
        Some(_) => {}
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return err(47001, "data format error");
    };
    let key = &req["order_key"];
    let transaction_id = match key["order_number_type"].as_i64() {
        Some(2) => key["transaction_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        Some(1) => {
            let (mchid, no) = (
                key["mchid"].as_str().unwrap_or_default(),
                key["out_trade_no"].as_str().unwrap_or_default(),
            );
            let found = st
                .wx
                .get(no)
                .filter(|_| mchid == sb.wechat_mch_id)
                .and_then(|o| o.transaction_id.clone());
            found.unwrap_or_default()
        }
        _ => return err(47001, "data format error: order_key.order_number_type"),
    };
    if let Some(field) = field_error(&req) {
        return err(47001, &format!("data format error: {field}"));
    }
    let Some(pay) = find_payment(&st, &transaction_id) else {
        return err(10060001, "支付单不存在");
    };
    let faults = st.faults_for(&pay.out_trade_no);
    let seen = st
        .wxa
        .unindexed
        .entry(pay.out_trade_no.clone())
        .or_insert(0);
    if *seen < faults.shipping_unindexed {
        *seen += 1;
        return err(10060001, "支付单不存在");
    }
    if pay.refunded {
        return err(10060004, "支付单处于不可发货的状态");
    }
    if req["payer"]["openid"].as_str() != Some(pay.openid.as_str()) {
        return err(10060002, "支付者 openid 与支付单不符");
    }
    let upload_time = req["upload_time"].as_str().unwrap_or_default().to_string();
    let shipped = st.wxa.shipped.get(&transaction_id).cloned();
    let uploads = match shipped {
        Some(s) if s.uploads >= 2 => return err(10060003, "支付单已使用重新发货机会"),
        Some(s) if !later(&upload_time, &s.upload_time) => {
            return err(47001, "data format error: upload_time")
        }
        Some(s) => s.uploads + 1,
        None => 1,
    };
    st.wxa.shipped.insert(
        transaction_id.clone(),
        Shipped {
            transaction_id,
            out_trade_no: pay.out_trade_no,
            uploads,
            upload_time,
            body: req,
        },
    );
    err(0, "ok")
}

/// Whether RFC 3339 time `a` is after `b`.
fn later(a: &str, b: &str) -> bool {
    match (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => a > b,
        _ => false,
    }
}

//! APIv3 trades: the prepay field rules, idempotency by out_trade_no, the `Transaction`
//! object of queries and payment notifications, and close.

use super::{
    err, ok, optional, order_not_exist, param, required, str_field, Done, Signing, V3Error,
};
use crate::sandbox::{
    deliver, random_id, Faults, Sandbox, WxApi, WxOrder, CREDENTIAL_LIFE, H5_URL_LIFE,
};
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn valid_out_trade_no(no: &str) -> bool {
    (6..=32).contains(&no.len())
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b))
}

pub(super) fn valid_notify_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    url.chars().count() <= 255
        && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && !url.contains('?')
        && !url.contains('#')
        && !url.chars().any(char::is_whitespace)
}

/// The `amount` object: `{total > 0 integer, currency "CNY" if present}`.
fn amount_total(v: &Value) -> Result<i64, V3Error> {
    let Some(amount) = v.get("amount").filter(|a| a.is_object()) else {
        return Err(param("缺少参数 amount"));
    };
    let total = match amount.get("total") {
        Some(t) => t.as_i64().filter(|n| *n > 0),
        None => return Err(param("缺少参数 amount.total")),
    };
    let Some(total) = total else {
        return Err(param("amount.total 必须为大于 0 的整数（单位：分）"));
    };
    match amount.get("currency") {
        None => Ok(total),
        Some(c) if c == "CNY" => Ok(total),
        Some(_) => Err(param("amount.currency 只支持 CNY")),
    }
}

fn trade_state_desc(state: &str) -> &'static str {
    match state {
        "SUCCESS" => "支付成功",
        "REFUND" => "转入退款",
        "CLOSED" => "订单已关闭",
        _ => "订单未支付",
    }
}

/// `yyyyMMddHHmmss` (Beijing) as RFC 3339.
fn time_end_rfc3339(t: &str) -> Option<String> {
    let naive = chrono::NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S").ok()?;
    Some(naive.format("%Y-%m-%dT%H:%M:%S+08:00").to_string())
}

/// What makes two prepay requests "the same" (their repeat returns the same credential).
fn same_order(o: &WxOrder, n: &WxOrder) -> bool {
    o.api == WxApi::V3
        && o.appid == n.appid
        && o.trade_type == n.trade_type
        && o.body == n.body
        && o.total_fee == n.total_fee
        && o.openid == n.openid
        && o.attach == n.attach
        && o.notify_url == n.notify_url
        && o.time_expire == n.time_expire
}

impl Sandbox {
    /// `POST /v3/pay/transactions/{jsapi,native,h5}`: a new order, or the same request
    /// again (the same credential while it lives), or a refusal.
    pub(super) fn v3_prepay(
        self: &Arc<Self>,
        trade_type: &'static str,
        v: &Value,
    ) -> Result<Done, V3Error> {
        let order = self.v3_order(trade_type, v)?;
        let (no, now) = (order.out_trade_no.clone(), order.created_at);
        let mut state = self.state();
        let answer = match state.wx.get_mut(&no) {
            None => {
                state.wx.insert(no.clone(), order.clone());
                order
            }
            Some(o) if matches!(o.trade_state, "SUCCESS" | "REFUND") => {
                return Err(err(400, "ORDER_PAID", "该订单已支付"))
            }
            Some(o) if o.trade_state == "CLOSED" => {
                return Err(err(400, "ORDER_CLOSED", "订单已关闭"))
            }
            Some(o) if !same_order(o, &order) => {
                return Err(err(403, "OUT_TRADE_NO_USED", "商户订单号重复"))
            }
            Some(o) => {
                let life = if o.trade_type == "MWEB" {
                    H5_URL_LIFE
                } else {
                    CREDENTIAL_LIFE
                };
                // The same request again: the same credential while it lives, a new one after.
                if now > o.created_at + life {
                    o.prepay_id = order.prepay_id;
                    o.code_url = order.code_url;
                    o.h5_url = order.h5_url;
                    o.created_at = now;
                }
                o.clone()
            }
        };
        drop(state);
        let body = match trade_type {
            "NATIVE" => json!({ "code_url": answer.code_url }),
            "MWEB" => json!({ "h5_url": answer.h5_url }),
            _ => json!({ "prepay_id": answer.prepay_id }),
        };
        Ok(ok(body, &no))
    }

    /// The order a prepay request asks for, with fresh credentials, if every field rule
    /// holds.
    fn v3_order(&self, trade_type: &'static str, v: &Value) -> Result<WxOrder, V3Error> {
        let appid = required(v, "appid", 32)?;
        let mchid = required(v, "mchid", 32)?;
        if !self.bound_appid(&appid) || mchid != self.wechat_mch_id {
            return Err(err(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"));
        }
        let description = required(v, "description", 127)?;
        let no = required(v, "out_trade_no", 32)?;
        if !valid_out_trade_no(&no) {
            return Err(param("out_trade_no 须为 6-32 位数字、大小写字母、_-|*"));
        }
        let notify_url = required(v, "notify_url", 255)?;
        if !valid_notify_url(&notify_url) {
            return Err(param("notify_url 须为 http(s) 绝对地址，不能带参数"));
        }
        let total = amount_total(v)?;
        let attach = optional(v, "attach", 128)?;
        let now = self.now();
        let time_expire = match str_field(v, "time_expire") {
            None if v.get("time_expire").is_some() => return Err(param("time_expire 格式错误")),
            None => None,
            Some(t) => {
                let at = chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|_| param("time_expire 须为 RFC 3339 格式"))?
                    .timestamp();
                if at - now < 5 * 60 {
                    return Err(param("time_expire时间过短，刷卡至少1分钟，其他5分钟"));
                }
                Some(at)
            }
        };
        let openid = match trade_type {
            "JSAPI" => {
                let payer = v.get("payer").cloned().unwrap_or_default();
                let openid = required(&payer, "openid", 128)
                    .map_err(|_| param("JSAPI 支付必须传 payer.openid"))?;
                match self.state().openids.get(&openid) {
                    None => return Err(param("openid 不存在")),
                    Some(issuer) if *issuer != appid => return Err(param("appid和openid不匹配")),
                    Some(_) => openid,
                }
            }
            _ => String::new(),
        };
        if trade_type == "MWEB" {
            let scene = v.get("scene_info").cloned().unwrap_or_default();
            let ip = str_field(&scene, "payer_client_ip").unwrap_or_default();
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(param(
                    "H5 支付必须传 scene_info.payer_client_ip（用户的 IP 地址）",
                ));
            }
            let kind = scene
                .get("h5_info")
                .and_then(|h| str_field(h, "type"))
                .unwrap_or_default();
            if kind.is_empty() {
                return Err(param("H5 支付必须传 scene_info.h5_info.type"));
            }
        }
        let prepay_id = format!(
            "wx{}{}",
            chrono::Utc::now().format("%d%H%M%S"),
            random_id(24).to_lowercase()
        );
        Ok(WxOrder {
            api: WxApi::V3,
            appid,
            out_trade_no: no.clone(),
            body: description,
            total_fee: total,
            trade_type: trade_type.to_string(),
            openid,
            notify_url,
            code_url: (trade_type == "NATIVE")
                .then(|| format!("weixin://wxpay/bizpayurl?pr={}", random_id(7))),
            h5_url: (trade_type == "MWEB")
                .then(|| format!("{}/wxpay/phone?prepay_id={prepay_id}", self.base_url)),
            prepay_id,
            attach,
            sign_type: "RSA".into(),
            trade_state: "NOTPAY",
            transaction_id: None,
            time_end: None,
            created_at: now,
            time_expire,
        })
    }

    /// `GET /v3/pay/transactions/out-trade-no/{no}` or `…/id/{transaction_id}`, `?mchid=`.
    pub(super) fn v3_query(
        &self,
        mchid: Option<&str>,
        this: impl Fn(&WxOrder) -> bool,
    ) -> Result<Done, V3Error> {
        if mchid != Some(self.wechat_mch_id.as_str()) {
            return Err(param("mchid 与商户号不一致"));
        }
        let found = self.state().wx.values().find(|o| this(o)).cloned();
        let o = found.ok_or_else(order_not_exist)?;
        Ok(ok(self.transaction(&o, false), &o.out_trade_no))
    }

    /// The `Transaction` object of query answers and payment notifications.
    fn transaction(&self, o: &WxOrder, wrong_amount: bool) -> Value {
        let paid = matches!(o.trade_state, "SUCCESS" | "REFUND");
        let total = o.total_fee + i64::from(wrong_amount);
        let mut t = Map::new();
        t.insert("appid".into(), json!(o.appid));
        t.insert("mchid".into(), json!(self.wechat_mch_id));
        t.insert("out_trade_no".into(), json!(o.out_trade_no));
        t.insert("trade_type".into(), json!(o.trade_type));
        t.insert("trade_state".into(), json!(o.trade_state));
        t.insert(
            "trade_state_desc".into(),
            json!(trade_state_desc(o.trade_state)),
        );
        t.insert("attach".into(), json!(o.attach));
        let mut amount = json!({"total": total, "currency": "CNY", "payer_currency": "CNY"});
        if paid {
            t.insert("transaction_id".into(), json!(o.transaction_id));
            t.insert("bank_type".into(), json!("OTHERS"));
            if let Some(at) = o.time_end.as_deref().and_then(time_end_rfc3339) {
                t.insert("success_time".into(), json!(at));
            }
            amount["payer_total"] = json!(total);
        }
        if !o.openid.is_empty() {
            t.insert("payer".into(), json!({ "openid": o.openid }));
        }
        t.insert("amount".into(), amount);
        Value::Object(t)
    }

    /// `POST /v3/pay/transactions/out-trade-no/{no}/close` → 204.
    pub(super) fn v3_close(&self, no: &str, v: &Value) -> Result<Done, V3Error> {
        if str_field(v, "mchid") != Some(self.wechat_mch_id.as_str()) {
            return Err(param("mchid 与商户号不一致"));
        }
        let mut state = self.state();
        let o = state.wx.get_mut(no).ok_or_else(order_not_exist)?;
        match o.trade_state {
            "SUCCESS" | "REFUND" => Err(err(400, "ORDER_PAID", "订单已支付，不能关闭")),
            "CLOSED" => Err(err(400, "ORDER_CLOSED", "订单已关闭")),
            _ => {
                o.trade_state = "CLOSED";
                Ok(Done {
                    status: 204,
                    body: None,
                    trade: no.to_string(),
                    hang_ms: 0,
                })
            }
        }
    }

    /// The TRANSACTION.SUCCESS notification of a paid APIv3 order.
    pub(in crate::sandbox) fn v3_payment_message(
        &self,
        paid: &WxOrder,
        faults: &Faults,
    ) -> deliver::Message {
        let plaintext = self.transaction(paid, faults.wrong_amount);
        deliver::Message {
            provider: "wechat_v3",
            out_trade_no: paid.out_trade_no.clone(),
            url: paid.notify_url.clone(),
            content_type: "application/json",
            headers: Vec::new(),
            v3_signing: Some(Signing::notification(faults)),
            body: self.v3_event(
                "TRANSACTION.SUCCESS",
                "支付成功",
                "transaction",
                &plaintext,
                faults.v3_bad_tag,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_trade_no_and_notify_url_rules() {
        assert!(valid_out_trade_no("A1_-|*"));
        assert!(!valid_out_trade_no("A1234"));
        assert!(!valid_out_trade_no("A1234#"));
        assert!(!valid_out_trade_no(&"1".repeat(33)));
        assert!(valid_notify_url("https://shop.example.com/notify"));
        assert!(valid_notify_url("http://127.0.0.1:8080/notify"));
        assert!(!valid_notify_url("https://shop.example.com/notify?x=1"));
        assert!(!valid_notify_url("/notify"));
        assert!(!valid_notify_url("ftp://x/notify"));
    }
}

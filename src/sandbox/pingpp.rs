//! Ping++ as the platform answers it: `/v1/charges` create, retrieve and list with Bearer or
//! Basic auth, the merchant request signature when a merchant public key is configured,
//! credentials per channel, and `charge.succeeded` Events signed with the platform key.

use super::{deliver, random_digits, random_id, Sandbox};
use crate::payment::pingpp::objects::{ApiErrorBody, ErrorEnvelope};
use crate::payment::pingpp::{sign, Charge, CreateCharge, Event};
use crate::payment::wechat::client::nonce;
use crate::payment::wechat::sign::{sign as wx_sign, Params, SignType};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// An HTTP status and a JSON body.
pub type Reply = (u16, String);

fn error(status: u16, kind: &str, message: &str, param: Option<&str>, code: Option<&str>) -> Reply {
    let body = ErrorEnvelope {
        error: ApiErrorBody {
            kind: kind.into(),
            message: message.into(),
            code: code.map(str::to_string),
            param: param.map(str::to_string),
        },
    };
    (status, serde_json::to_string(&body).unwrap_or_default())
}

/// Ping++'s 404 for an unknown id.
fn no_such(kind: &str, id: &str) -> Reply {
    error(
        404,
        "invalid_request_error",
        &format!("No such {kind}: {id}"),
        Some("id"),
        None,
    )
}

fn invalid(message: &str, param: Option<&str>) -> Reply {
    error(400, "invalid_request_error", message, param, None)
}

/// What the sandbox needs of a request to authenticate it.
pub struct RequestAuth<'a> {
    pub authorization: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    /// Path from `/v1/…` plus `?query` as sent.
    pub request_uri: &'a str,
    pub body: &'a [u8],
}

impl Sandbox {
    /// Bearer or HTTP Basic (key as user, empty password); then the merchant signature.
    pub fn pp_authenticate(&self, a: &RequestAuth<'_>) -> Result<(), Reply> {
        let key = a.authorization.and_then(|h| {
            if let Some(k) = h.strip_prefix("Bearer ") {
                return Some(k.trim().to_string());
            }
            let basic = h.strip_prefix("Basic ")?;
            let decoded = String::from_utf8(B64.decode(basic.trim()).ok()?).ok()?;
            decoded.split_once(':').map(|(user, _)| user.to_string())
        });
        match key {
            None => {
                return Err(error(
                    401,
                    "invalid_request_error",
                    "No API key provided. 请在 Authorization 中提供 API Key。",
                    None,
                    None,
                ))
            }
            Some(k) if k != self.pingpp_secret_key => {
                return Err(error(
                    401,
                    "invalid_request_error",
                    "Invalid API key provided: API Key 无效。",
                    None,
                    None,
                ))
            }
            Some(_) => {}
        }
        if let Some(public) = &self.merchant_public_key {
            let (Some(ts), Some(sig)) = (a.timestamp, a.signature) else {
                return Err(error(
                    401,
                    "invalid_request_error",
                    "没有提供签名串，需要在 header 中加入签名串。",
                    None,
                    None,
                ));
            };
            let mut message = a.body.to_vec();
            message.extend_from_slice(a.request_uri.as_bytes());
            message.extend_from_slice(ts.as_bytes());
            if !sign::verify(public, &message, sig) {
                return Err(error(
                    401,
                    "invalid_request_error",
                    "签名验证失败。",
                    None,
                    None,
                ));
            }
        }
        Ok(())
    }

    /// `POST /v1/charges`.
    pub fn pp_create(&self, body: &[u8]) -> Reply {
        let req: CreateCharge = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return invalid(&format!("请求参数错误：{e}"), None),
        };
        if req.app.id != self.pingpp_app_id {
            return invalid(&format!("No such app: {}", req.app.id), Some("app"));
        }
        let channel = req.channel.as_str();
        if !matches!(channel, "alipay_qr" | "wx_pub_qr" | "wx_pub" | "wx_lite") {
            return invalid(&format!("不支持的渠道：{channel}"), Some("channel"));
        }
        if req.amount <= 0 {
            return invalid("amount 必须大于 0", Some("amount"));
        }
        if req.currency != "cny" {
            return invalid("currency 只支持 cny", Some("currency"));
        }
        let range = if channel.starts_with("wx") {
            2..=32
        } else {
            1..=64
        };
        if !range.contains(&req.order_no.len())
            || !req.order_no.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return invalid("order_no 格式错误", Some("order_no"));
        }
        if req.subject.chars().count() > 32 || req.subject.is_empty() {
            return invalid("subject 长度为 1 到 32", Some("subject"));
        }
        if req.body.chars().count() > 128 || req.body.is_empty() {
            return invalid("body 长度为 1 到 128", Some("body"));
        }
        let extra_str = |k: &str| {
            req.extra
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let required = match channel {
            "wx_pub_qr" => Some("product_id"),
            "wx_pub" | "wx_lite" => Some("open_id"),
            _ => None,
        };
        if let Some(k) = required {
            if extra_str(k).is_empty() {
                return invalid(
                    &format!("missing request parameter: {k}"),
                    Some(&format!("extra[{k}]")),
                );
            }
        }
        // time_expire: 1 minute to 15 days ahead; WeChat channels behind Ping++ need the
        // 5 minutes WeChat itself needs.
        let now = self.now();
        if let Some(t) = req.time_expire {
            let least = if channel.starts_with("wx") {
                5 * 60
            } else {
                60
            };
            if t - now < least || t - now > 15 * 86_400 {
                return invalid(
                    &format!(
                        "time_expire 参数错误：须在当前时间 {} 分钟后到 15 天以内",
                        least / 60
                    ),
                    Some("time_expire"),
                );
            }
        }
        if req.client_ip.parse::<Ipv4Addr>().is_err() {
            return invalid(
                "invalid request parameter: client_ip 须为 IPv4 地址",
                Some("client_ip"),
            );
        }
        // wx_lite pays with a mini-program openid, wx_pub with an Official Account one;
        // WeChat refuses any other, and Ping++ passes the refusal on.
        let bound_app = match channel {
            "wx_lite" => Some(&self.wechat_appid),
            "wx_pub" => Some(&self.official_account_appid),
            _ => None,
        };
        if let Some(appid) = bound_app {
            if !self.openid_of_app(&extra_str("open_id"), appid) {
                return error(
                    402,
                    "channel_error",
                    &format!(
                        "对支付渠道的请求未能成功。来自 {channel} 渠道的错误信息：appid and openid not match"
                    ),
                    None,
                    Some("channel_returns_fail"),
                );
            }
        }
        let mut state = self.state();
        if let Some(existing) = state.charges.values().find(|c| c.order_no == req.order_no) {
            let same = existing.amount == req.amount && existing.channel == req.channel;
            let answer = if same && !existing.paid {
                Ok(existing.clone())
            } else {
                Err(error(
                    400,
                    "invalid_request_error",
                    "订单号已被使用",
                    Some("order_no"),
                    Some("charge_order_no_used"),
                ))
            };
            return match answer {
                Ok(c) => (200, serde_json::to_string(&c).unwrap_or_default()),
                Err(e) => e,
            };
        }
        let id = format!("ch_{}", random_id(24));
        let credential = match channel {
            "alipay_qr" | "wx_pub_qr" => {
                json!({"object": "credential", channel: format!("{}/pingpp/phone/{id}", self.base_url)})
            }
            _ => json!({"object": "credential", channel: self.jsapi_credential()}),
        };
        let charge = Charge {
            id: id.clone(),
            object: "charge".into(),
            created: now,
            livemode: false,
            paid: false,
            refunded: false,
            reversed: false,
            app: req.app.id.clone(),
            channel: req.channel.clone(),
            order_no: req.order_no.clone(),
            client_ip: req.client_ip.clone(),
            amount: req.amount,
            amount_settle: req.amount,
            currency: req.currency.clone(),
            subject: req.subject.clone(),
            body: req.body.clone(),
            extra: if req.extra.is_null() {
                json!({})
            } else {
                req.extra.clone()
            },
            time_paid: None,
            time_expire: Some(req.time_expire.unwrap_or(now + 86_400)),
            time_settle: None,
            transaction_no: None,
            refunds: json!({"object": "list", "url": format!("/v1/charges/{id}/refunds"), "has_more": false, "data": []}),
            amount_refunded: 0,
            failure_code: None,
            failure_msg: None,
            metadata: if req.metadata.is_null() {
                json!({})
            } else {
                req.metadata.clone()
            },
            credential,
            description: req.description.clone(),
        };
        state.charges.insert(id.clone(), charge.clone());
        state.charge_ids.push(id);
        (200, serde_json::to_string(&charge).unwrap_or_default())
    }

    /// The six keys `wx.requestPayment` needs, signed as WeChat would (MD5).
    fn jsapi_credential(&self) -> Value {
        let mut p = Params::new();
        p.insert("appId".into(), self.wechat_appid.clone());
        p.insert(
            "timeStamp".into(),
            chrono::Utc::now().timestamp().to_string(),
        );
        p.insert("nonceStr".into(), nonce());
        p.insert(
            "package".into(),
            format!("prepay_id=wx{}", random_id(26).to_lowercase()),
        );
        p.insert("signType".into(), "MD5".into());
        let pay_sign = wx_sign(&p, &self.wechat_key, SignType::Md5);
        p.insert("paySign".into(), pay_sign);
        json!(p)
    }

    /// `GET /v1/charges/{id}`.
    pub fn pp_retrieve(&self, id: &str) -> Reply {
        match self.state().charges.get(id) {
            Some(c) => (200, serde_json::to_string(c).unwrap_or_default()),
            None => no_such("charge", id),
        }
    }

    /// `GET /v1/charges?app[id]=…&limit=…`, newest first.
    pub fn pp_list(&self, app_id: Option<&str>, limit: usize) -> Reply {
        let Some(app) = app_id else {
            return invalid("missing request parameter: app[id]", Some("app[id]"));
        };
        let state = self.state();
        let data: Vec<&Charge> = state
            .charge_ids
            .iter()
            .rev()
            .filter_map(|id| state.charges.get(id))
            .filter(|c| c.app == app)
            .take(limit.clamp(1, 100))
            .collect();
        let has_more = state.charges.values().filter(|c| c.app == app).count() > data.len();
        let body =
            json!({"object": "list", "url": "/v1/charges", "has_more": has_more, "data": data});
        (200, body.to_string())
    }

    pub fn pp_find(&self, id: &str) -> Option<Charge> {
        self.state().charges.get(id).cloned()
    }

    /// The shopper confirms in the app: the charge is paid and `charge.succeeded` goes out.
    pub fn pp_pay(self: &Arc<Self>, id: &str) -> Result<Charge, String> {
        let now = self.now();
        let mut state = self.state();
        let c = state.charges.get_mut(id).ok_or("支付单不存在")?;
        if c.paid {
            return Err("该支付单已支付".into());
        }
        if c.time_expire.is_some_and(|t| t < now) {
            return Err("支付单已过期".into());
        }
        // Behind wx_pub_qr is a WeChat code_url, behind wx_pub / wx_lite a prepay_id: 2 hours.
        if c.channel.starts_with("wx") && now > c.created + super::CREDENTIAL_LIFE {
            return Err("二维码已过期，请刷新后重新扫码".into());
        }
        c.paid = true;
        c.time_paid = Some(now);
        c.transaction_no = Some(match c.channel.as_str() {
            "alipay_qr" => format!("2026{}", random_digits(24)),
            _ => format!("42000{}", random_digits(23)),
        });
        if c.channel.starts_with("wx") {
            if let Some(extra) = c.extra.as_object_mut() {
                extra.insert("bank_type".into(), json!("CFT"));
            }
        }
        let paid = c.clone();
        let faults = state.faults_for(&paid.order_no);
        drop(state);
        let mut object = serde_json::to_value(&paid).unwrap_or_default();
        if faults.wrong_amount {
            object["amount"] = json!(paid.amount + 1);
        }
        self.pp_deliver("charge.succeeded", object, &paid.order_no, &faults);
        Ok(paid)
    }

    /// Posts an Event of `kind` about `object` to the webhook URL, signed with the platform
    /// key (or not, under the bad_signature fault).
    pub fn pp_deliver(
        self: &Arc<Self>,
        kind: &str,
        object: Value,
        order_no: &str,
        faults: &super::Faults,
    ) {
        let event = Event {
            id: format!("evt_{}", random_id(24)),
            created: chrono::Utc::now().timestamp(),
            livemode: false,
            kind: kind.into(),
            data: crate::payment::pingpp::objects::EventData { object },
            object: "event".into(),
            pending_webhooks: 1,
            request: Some(format!("iar_{}", random_id(24))),
        };
        let body = serde_json::to_string(&event).unwrap_or_default();
        let signed = if faults.bad_signature {
            format!("{body} ")
        } else {
            body.clone()
        };
        let signature = sign::sign(&self.platform_key, signed.as_bytes()).unwrap_or_default();
        let msg = deliver::Message {
            provider: "pingpp",
            out_trade_no: order_no.to_string(),
            url: self.pingpp_webhook_url.clone(),
            content_type: "application/json",
            headers: vec![("X-Pingplusplus-Signature", signature)],
            v3_signing: None,
            body,
        };
        deliver::send(self.clone(), faults, msg);
    }

    /// `POST /v1/charges/{id}/refunds`: pending now, `refund.succeeded` shortly after.
    /// `POST /v1/charges/{id}/refunds` with the refund faults of the charge's trade: the
    /// reply, and how long to hold it back.
    pub fn pp_refund_faulty(self: &Arc<Self>, charge_id: &str, body: &[u8]) -> (Reply, u64) {
        let reply = self.pp_refund(charge_id, body);
        if reply.0 != 200 {
            return (reply, 0);
        }
        let trade = self
            .pp_find(charge_id)
            .map(|c| c.order_no)
            .unwrap_or_default();
        let faults = self.state().faults_for(&trade);
        // The money is taken (the refund is recorded); the answer may still go wrong.
        if self.refund_error_due(&trade, &faults) {
            return (error(502, "api_error", "Bad Gateway", None, None), 0);
        }
        (reply, faults.refund_hang_ms)
    }

    /// `GET /v1/charges/{id}/refunds`: the charge's refunds, newest first.
    pub fn pp_refund_list(&self, charge_id: &str, limit: usize) -> Reply {
        let state = self.state();
        if !state.charges.contains_key(charge_id) {
            return no_such("charge", charge_id);
        }
        let mut data: Vec<&crate::payment::pingpp::Refund> = state
            .refunds
            .values()
            .filter(|r| r.charge == charge_id)
            .collect();
        data.sort_by_key(|r| std::cmp::Reverse((r.created, r.id.clone())));
        let has_more = data.len() > limit.clamp(1, 100);
        data.truncate(limit.clamp(1, 100));
        let body = json!({
            "object": "list",
            "url": format!("/v1/charges/{charge_id}/refunds"),
            "has_more": has_more,
            "data": data,
        });
        (200, body.to_string())
    }

    pub fn pp_refund(self: &Arc<Self>, charge_id: &str, body: &[u8]) -> Reply {
        let req: crate::payment::pingpp::CreateRefund = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return invalid(&format!("请求参数错误：{e}"), None),
        };
        if req.description.is_empty() || req.description.chars().count() > 255 {
            return invalid("description 长度为 1 到 255", Some("description"));
        }
        let mut state = self.state();
        let Some(c) = state.charges.get_mut(charge_id) else {
            return no_such("charge", charge_id);
        };
        if !c.paid {
            return error(
                400,
                "invalid_request_error",
                "该支付单未支付，不能退款",
                None,
                Some("refund_refused"),
            );
        }
        let left = c.amount - c.amount_refunded;
        let amount = req.amount.unwrap_or(left);
        if amount <= 0 || amount > left {
            return error(
                400,
                "invalid_request_error",
                "退款金额超过可退金额",
                Some("amount"),
                Some("refund_refused"),
            );
        }
        c.amount_refunded += amount;
        c.refunded = c.amount_refunded == c.amount;
        let refund = crate::payment::pingpp::Refund {
            id: format!("re_{}", random_id(24)),
            object: "refund".into(),
            order_no: random_id(27).to_lowercase(),
            amount,
            created: chrono::Utc::now().timestamp(),
            succeed: false,
            status: "pending".into(),
            time_succeed: None,
            description: req.description.clone(),
            failure_code: None,
            failure_msg: None,
            metadata: if req.metadata.is_null() {
                json!({})
            } else {
                req.metadata.clone()
            },
            charge: c.id.clone(),
            charge_order_no: c.order_no.clone(),
            transaction_no: None,
            extra: json!({}),
            funding_source: None,
        };
        let faults = state.faults_for(&refund.charge_order_no);
        state.refunds.insert(refund.id.clone(), refund.clone());
        drop(state);
        let (sb, id) = (self.clone(), refund.id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let done = {
                let mut st = sb.state();
                st.refunds.get_mut(&id).map(|r| {
                    r.status = "succeeded".into();
                    r.succeed = true;
                    r.time_succeed = Some(chrono::Utc::now().timestamp());
                    r.transaction_no = Some(format!("50300{}", random_digits(24)));
                    r.clone()
                })
            };
            if let Some(r) = done {
                let no = r.charge_order_no.clone();
                sb.pp_deliver(
                    "refund.succeeded",
                    serde_json::to_value(&r).unwrap_or_default(),
                    &no,
                    &faults,
                );
            }
        });
        (200, serde_json::to_string(&refund).unwrap_or_default())
    }

    /// `GET /v1/charges/{id}/refunds/{re_id}`.
    pub fn pp_refund_get(&self, charge_id: &str, refund_id: &str) -> Reply {
        match self
            .state()
            .refunds
            .get(refund_id)
            .filter(|r| r.charge == charge_id)
        {
            Some(r) => (200, serde_json::to_string(r).unwrap_or_default()),
            None => no_such("refund", refund_id),
        }
    }
}

//! Inbound notifications: WeChat Pay v2 XML and Ping++ webhooks. Each is verified (signature
//! over the raw bytes, merchant or app, currency, mode) before anything but its `pay_log` row
//! is written; a verified payment goes through `pay::apply_payment`, like a query's.

use super::pay::{self, Applied, LogEntry, Proof};
use super::ServiceError;
use crate::db::Conn;
use crate::domain::{Money, Provider};
use crate::payment::pingpp::{Charge, Event};
use crate::payment::wechat::{notify as wx, sign, xml, SignType};
use rsa::RsaPublicKey;

/// The request as received, for the log.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub body: Vec<u8>,
    pub headers: String,
    pub remote_addr: String,
}

impl Inbound {
    fn entry(&self, provider: Provider, kind: &'static str, verified: bool) -> LogEntry {
        LogEntry {
            provider,
            kind,
            raw_body: String::from_utf8_lossy(&self.body).into_owned(),
            headers: self.headers.clone(),
            remote_addr: self.remote_addr.clone(),
            verified,
        }
    }
}

/// The merchant the WeChat notifications must be for.
#[derive(Debug, Clone)]
pub struct WechatMerchant {
    pub appid: String,
    pub mch_id: String,
    pub key: String,
}

/// Handles a WeChat payment notification; returns the XML reply.
pub fn wechat(conn: &mut Conn, m: &WechatMerchant, req: &Inbound) -> Result<String, ServiceError> {
    let reject =
        |conn: &mut Conn, verified: bool, no: Option<&str>, outcome: &str, reason: &str| {
            let reply = wx::fail_reply(reason);
            pay::log_only(
                conn,
                &req.entry(Provider::Wechat, "notify", verified),
                no,
                outcome,
                &reply,
            )?;
            Ok(reply)
        };
    let fields = match xml::parse(&req.body) {
        Ok(f) => f,
        Err(e) => {
            return reject(
                conn,
                false,
                None,
                "malformed",
                &format!("报文格式错误：{e}"),
            )
        }
    };
    let no = fields.get("out_trade_no").cloned().unwrap_or_default();
    let no = (!no.is_empty()).then_some(no);
    // The algorithm the attempt was created with, if the notification does not say.
    let hint = match &no {
        Some(n) => pay::attempt(conn, n)?
            .and_then(|a| a.sign_type)
            .and_then(|t| SignType::parse(&t)),
        None => None,
    };
    if !sign::verify(&fields, &m.key, hint) {
        return reject(conn, false, no.as_deref(), "bad_signature", "签名失败");
    }
    let notice = match wx::paid_notice(&fields) {
        Ok(n) => n,
        // A verified notice of a failed payment: acknowledged, nothing to do.
        Err(why) => {
            let reply = wx::SUCCESS_REPLY.to_string();
            pay::log_only(
                conn,
                &req.entry(Provider::Wechat, "notify", true),
                no.as_deref(),
                &format!("not_paid: {why}"),
                &reply,
            )?;
            return Ok(reply);
        }
    };
    if notice.appid != m.appid || notice.mch_id != m.mch_id {
        return reject(conn, true, no.as_deref(), "wrong_merchant", "商户号不匹配");
    }
    if notice.fee_type != "CNY" {
        return reject(conn, true, no.as_deref(), "wrong_currency", "币种不匹配");
    }
    let proof = Proof {
        provider: Provider::Wechat,
        out_trade_no: notice.out_trade_no,
        payment_id: notice.transaction_id.clone(),
        transaction_no: notice.transaction_id,
        amount: Money::from_fen(notice.total_fee),
    };
    let reply = |a: &Applied| match a {
        Applied::UnknownTrade => wx::fail_reply("订单不存在"),
        Applied::AmountMismatch { .. } => wx::fail_reply("金额不匹配"),
        _ => wx::SUCCESS_REPLY.to_string(),
    };
    let applied = pay::apply_payment(
        conn,
        &proof,
        &req.entry(Provider::Wechat, "notify", true),
        &reply,
    )?;
    Ok(reply(&applied))
}

/// The app the Ping++ webhooks must be for.
#[derive(Debug, Clone)]
pub struct PingppApp {
    pub app_id: String,
    pub public_key: RsaPublicKey,
    pub livemode: bool,
}

/// An HTTP status and a short body: Ping++ only looks at the status (2xx = delivered).
pub type WebhookReply = (u16, String);

/// Handles a Ping++ webhook. Bad or absent signature, wrong app, amount or mode -> 400;
/// unknown order -> 404; duplicates -> 200; an internal error is returned for a 500.
pub fn pingpp(
    conn: &mut Conn,
    app: &PingppApp,
    req: &Inbound,
    signature: Option<&str>,
) -> Result<WebhookReply, ServiceError> {
    let reject = |conn: &mut Conn, verified: bool, no: Option<&str>, status: u16, outcome: &str| {
        let reply = (status, format!("fail: {outcome}"));
        pay::log_only(
            conn,
            &req.entry(Provider::Pingpp, "webhook", verified),
            no,
            outcome,
            &reply.1,
        )?;
        Ok(reply)
    };
    let Some(sig) = signature.filter(|s| !s.trim().is_empty()) else {
        return reject(conn, false, None, 400, "missing_signature");
    };
    if !crate::payment::pingpp::sign::verify(&app.public_key, &req.body, sig) {
        return reject(conn, false, None, 400, "bad_signature");
    }
    let event: Event = match serde_json::from_slice(&req.body) {
        Ok(e) => e,
        Err(_) => return reject(conn, true, None, 400, "malformed"),
    };
    match event.kind.as_str() {
        "charge.succeeded" => {}
        "refund.succeeded" => {
            let reply = (200, "success".to_string());
            pay::log_only(
                conn,
                &req.entry(Provider::Pingpp, "webhook", true),
                None,
                "refund_received",
                &reply.1,
            )?;
            return Ok(reply);
        }
        _ => return reject(conn, true, None, 400, "unknown_type"),
    }
    let charge: Charge = match serde_json::from_value(event.data.object.clone()) {
        Ok(c) => c,
        Err(_) => return reject(conn, true, None, 400, "malformed"),
    };
    let no = Some(charge.order_no.as_str());
    if charge.app != app.app_id {
        return reject(conn, true, no, 400, "wrong_app");
    }
    if charge.currency != "cny" {
        return reject(conn, true, no, 400, "wrong_currency");
    }
    if charge.livemode != app.livemode || event.livemode != app.livemode {
        return reject(conn, true, no, 400, "wrong_mode");
    }
    if !charge.paid {
        return reject(conn, true, no, 400, "not_paid");
    }
    let proof = Proof {
        provider: Provider::Pingpp,
        out_trade_no: charge.order_no.clone(),
        payment_id: charge.id.clone(),
        transaction_no: charge
            .transaction_no
            .clone()
            .unwrap_or_else(|| charge.id.clone()),
        amount: Money::from_fen(charge.amount),
    };
    let reply = |a: &Applied| -> WebhookReply {
        match a {
            Applied::UnknownTrade => (404, "fail: unknown_trade".into()),
            Applied::AmountMismatch { .. } => (400, "fail: amount_mismatch".into()),
            _ => (200, "success".into()),
        }
    };
    let applied = pay::apply_payment(
        conn,
        &proof,
        &req.entry(Provider::Pingpp, "webhook", true),
        &|a| reply(a).1,
    )?;
    Ok(reply(&applied))
}

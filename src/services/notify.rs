//! Inbound notifications: WeChat Pay v2 XML and Ping++ webhooks. Each is verified (signature
//! over the raw bytes, merchant or app, currency, mode) before anything but its `pay_log` row
//! is written; a verified payment goes through `pay::apply_payment`, like a query's.

use super::pay::{self, Applied, LogEntry, Proof};
use super::ServiceError;
use crate::db::Conn;
use crate::domain::{Money, Provider};
use crate::models::pay::{fits, log_width, storable, REF_WIDTH};
use crate::payment::pingpp::sign::RsaPublicKey;
use crate::payment::pingpp::{Charge, Event};
use crate::payment::wechat::sign::Params;
use crate::payment::wechat::{notify as wx, sign, xml, SignType};

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

/// What became of one notification: the reply to send, and what the log line and the
/// metrics say about it.
#[derive(Debug, Clone)]
pub struct Notified<R> {
    pub reply: R,
    pub provider: Provider,
    pub out_trade_no: Option<String>,
    /// The signature (or decryption) checked out.
    pub verified: bool,
    /// The `pay_log` outcome: `paid`, `duplicate`, `bad_signature`…
    pub outcome: String,
    /// The channel of the attempt a payment was applied to (none when nothing was paid).
    pub paid_channel: Option<String>,
}

impl<R> Notified<R> {
    fn new(reply: R, provider: Provider, no: Option<&str>, verified: bool, outcome: &str) -> Self {
        Notified {
            reply,
            provider,
            out_trade_no: no.map(str::to_string),
            verified,
            outcome: outcome.to_string(),
            paid_channel: None,
        }
    }

    /// A verified payment's result, with the channel when it paid an order.
    fn applied(
        conn: &mut Conn,
        reply: R,
        proof: &Proof,
        applied: &Applied,
    ) -> Result<Self, ServiceError> {
        let mut n = Notified::new(
            reply,
            proof.provider,
            Some(&proof.out_trade_no),
            true,
            applied.outcome(),
        );
        if applied.is_payment() {
            n.paid_channel = pay::attempt(conn, &proof.out_trade_no)?.map(|a| a.channel);
        }
        Ok(n)
    }
}

/// A notification whose only row is its `pay_log` line (refused, or acknowledged with
/// nothing to do): the line, with the reply's text, and what became of it.
fn logged<R>(
    conn: &mut Conn,
    entry: &LogEntry,
    no: Option<&str>,
    outcome: &str,
    reply: R,
    text: &str,
) -> Result<Notified<R>, ServiceError> {
    pay::log_only(conn, entry, no, outcome, text)?;
    Ok(Notified::new(
        reply,
        entry.provider,
        no,
        entry.verified,
        outcome,
    ))
}

/// The `pay_log` outcome and the platform's reason of a message refused as bad input.
type Refusal = (&'static str, String);

/// Bad input whatever the platform: a NUL byte (PostgreSQL cannot store it, no platform
/// sends it).
const BAD_INPUT: &str = "bad_input";

fn nul_refusal() -> Refusal {
    (BAD_INPUT, "报文含有非法字符".into())
}

/// A WeChat XML body's fields; a NUL anywhere, raw or as `&#0;`, is bad input.
fn wechat_fields(body: &[u8]) -> Result<Params, Refusal> {
    if body.contains(&0) {
        return Err(nul_refusal());
    }
    let fields = xml::parse(body).map_err(|e| ("malformed", format!("报文格式错误：{e}")))?;
    no_nul(&fields)?;
    Ok(fields)
}

fn no_nul(fields: &Params) -> Result<(), Refusal> {
    if fields
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(nul_refusal());
    }
    Ok(())
}

/// Identifiers our columns hold as they are: a trade number of at most 32 characters, the
/// platform's ids of at most 64; anything else is refused, never cut (a cut id could meet
/// another's dedupe key).
fn ids_fit(out_trade_no: &str, refs: &[&str]) -> Result<(), Refusal> {
    if !fits(out_trade_no, log_width::OUT_TRADE_NO) {
        return Err(("bad_out_trade_no", "out_trade_no 无效".into()));
    }
    if refs.iter().any(|r| !fits(r, REF_WIDTH)) {
        return Err((BAD_INPUT, "交易号无效".into()));
    }
    Ok(())
}

/// The merchant the WeChat notifications must be for.
#[derive(Clone)]
pub struct WechatMerchant {
    pub appid: String,
    /// The Official Account's appid (the shop's cashier in WeChat pays under it).
    pub oa_appid: String,
    pub mch_id: String,
    pub key: String,
}

impl std::fmt::Debug for WechatMerchant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatMerchant")
            .field("appid", &self.appid)
            .field("oa_appid", &self.oa_appid)
            .field("mch_id", &self.mch_id)
            .field("key", &crate::config::Redacted(&self.key))
            .finish()
    }
}

impl WechatMerchant {
    /// Whether `appid` is one of the merchant's (its mini-program, its Official Account).
    fn owns(&self, appid: &str) -> bool {
        appid == self.appid || appid == self.oa_appid
    }
}

/// Handles a WeChat payment notification; returns the XML reply.
pub fn wechat(
    conn: &mut Conn,
    m: &WechatMerchant,
    req: &Inbound,
) -> Result<Notified<String>, ServiceError> {
    let reject =
        |conn: &mut Conn, verified: bool, no: Option<&str>, outcome: &str, reason: &str| {
            let reply = wx::fail_reply(reason);
            let entry = req.entry(Provider::Wechat, "notify", verified);
            logged(conn, &entry, no, outcome, reply.clone(), &reply)
        };
    let fields = match wechat_fields(&req.body) {
        Ok(f) => f,
        Err((outcome, reason)) => return reject(conn, false, None, outcome, &reason),
    };
    let no = fields.get("out_trade_no").cloned().unwrap_or_default();
    let no = (!no.is_empty()).then_some(no);
    if let Some(Err((outcome, reason))) = no.as_deref().map(|n| ids_fit(n, &[])) {
        return reject(conn, false, no.as_deref(), outcome, &reason);
    }
    // The algorithm the attempt was created with, needed only when neither sign_type nor
    // the sign's length tells (saves a query per notification).
    let undecided = sign::detect(&fields, None).is_none();
    let hint = match &no {
        Some(n) if undecided => pay::attempt(conn, n)?
            .and_then(|a| a.sign_type)
            .and_then(|t| SignType::parse(&t)),
        Some(_) | None => None,
    };
    if !sign::verify(&fields, &m.key, hint) {
        return reject(conn, false, no.as_deref(), "bad_signature", "签名失败");
    }
    let says_paid = |k: &str| fields.get(k).map(String::as_str) == Some("SUCCESS");
    let notice = match wx::paid_notice(&fields) {
        Ok(n) => n,
        // Paid, but the amount or the transaction cannot be read: WeChat must retry, or the
        // payment would be lost.
        Err(why) if says_paid("return_code") && says_paid("result_code") => {
            let outcome = format!("unreadable: {why}");
            return reject(conn, true, no.as_deref(), &outcome, "报文字段无效");
        }
        // A verified notice of a failed payment: acknowledged, nothing to do.
        Err(why) => {
            let reply = wx::SUCCESS_REPLY.to_string();
            let outcome = format!("not_paid: {why}");
            let entry = req.entry(Provider::Wechat, "notify", true);
            return logged(conn, &entry, no.as_deref(), &outcome, reply.clone(), &reply);
        }
    };
    if let Err((outcome, reason)) = ids_fit(&notice.out_trade_no, &[&notice.transaction_id]) {
        return reject(conn, true, no.as_deref(), outcome, &reason);
    }
    if !m.owns(&notice.appid) || notice.mch_id != m.mch_id {
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
    Notified::applied(conn, reply(&applied), &proof, &applied)
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
) -> Result<Notified<WebhookReply>, ServiceError> {
    let reject = |conn: &mut Conn, verified: bool, no: Option<&str>, status: u16, outcome: &str| {
        let text = format!("fail: {outcome}");
        let entry = req.entry(Provider::Pingpp, "webhook", verified);
        logged(conn, &entry, no, outcome, (status, text.clone()), &text)
    };
    if req.body.contains(&0) {
        return reject(conn, false, None, 400, BAD_INPUT);
    }
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
        "refund.succeeded" if event.livemode != app.livemode => {
            return reject(conn, true, None, 400, "wrong_mode")
        }
        "refund.succeeded" => return pingpp_refund(conn, req, &event.data.object),
        _ => return reject(conn, true, None, 400, "unknown_type"),
    }
    let charge: Charge = match serde_json::from_value(event.data.object.clone()) {
        Ok(c) => c,
        Err(_) => return reject(conn, true, None, 400, "malformed"),
    };
    let no = Some(charge.order_no.as_str());
    let transaction_no = charge.transaction_no.as_deref().unwrap_or_default();
    if let Err((outcome, _)) = ids_fit(&charge.order_no, &[&charge.id, transaction_no]) {
        return reject(conn, true, no, 400, outcome);
    }
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
    Notified::applied(conn, reply(&applied), &proof, &applied)
}

/// Handles WeChat's refund notification (`req_info` encrypted, no `sign`); the XML reply.
pub fn wechat_refund(
    conn: &mut Conn,
    m: &WechatMerchant,
    req: &Inbound,
) -> Result<Notified<String>, ServiceError> {
    let reject =
        |conn: &mut Conn, verified: bool, no: Option<&str>, outcome: &str, reason: &str| {
            let reply = wx::fail_reply(reason);
            let entry = req.entry(Provider::Wechat, "refund_notify", verified);
            logged(conn, &entry, no, outcome, reply.clone(), &reply)
        };
    let outer = match wechat_fields(&req.body) {
        Ok(f) => f,
        Err((outcome, reason)) => return reject(conn, false, None, outcome, &reason),
    };
    let get = |k: &str| outer.get(k).cloned().unwrap_or_default();
    if !m.owns(&get("appid")) || get("mch_id") != m.mch_id {
        return reject(conn, false, None, "wrong_merchant", "商户号不匹配");
    }
    // Only the holder of the API key can make req_info decrypt: that is the verification.
    let inner = match crate::payment::wechat::refund::decrypt_req_info(&get("req_info"), &m.key) {
        Ok(f) => f,
        Err(_) => return reject(conn, false, None, "bad_req_info", "解密失败"),
    };
    let field = |k: &str| inner.get(k).cloned().unwrap_or_default();
    let (no, out_refund_no, refund_id) = (
        field("out_trade_no"),
        field("out_refund_no"),
        field("refund_id"),
    );
    if let Err((outcome, reason)) =
        no_nul(&inner).and_then(|()| ids_fit(&no, &[&out_refund_no, &refund_id]))
    {
        return reject(conn, true, Some(&no), outcome, &reason);
    }
    let Some(refund) = super::refund::refund_by_no(conn, &out_refund_no)? else {
        return reject(conn, true, Some(&no), "unknown_refund", "退款单不存在");
    };
    // Decrypting proves it came from WeChat; the content must still be about this refund:
    // its own trade, and no more money than was asked for.
    let attempt = super::refund::refund_attempt(conn, &refund)?;
    if attempt.out_trade_no != no {
        return reject(
            conn,
            true,
            Some(&no),
            "refund_trade_mismatch",
            "退款单与订单不匹配",
        );
    }
    let fee_ok = field("refund_fee")
        .parse::<i64>()
        .is_ok_and(|fee| fee > 0 && fee <= refund.amount);
    if !fee_ok {
        return reject(
            conn,
            true,
            Some(&no),
            "refund_amount_mismatch",
            "退款金额不匹配",
        );
    }
    let entry = req.entry(Provider::Wechat, "refund_notify", true);
    let reply = wx::SUCCESS_REPLY.to_string();
    let status = storable(&field("refund_status"), 32);
    if status != "SUCCESS" {
        // REFUNDCLOSE or CHANGE: settled by hand in the merchant platform; never refunded
        // again automatically.
        super::refund::refund_abnormal(conn, refund.id, &format!("微信退款 {status}，需人工处理"))?;
        let outcome = format!("refund_{}", status.to_lowercase());
        return logged(conn, &entry, Some(&no), &outcome, reply.clone(), &reply);
    }
    let done = super::refund::apply_refund(conn, &refund, &refund_id, &entry, &no, &reply)?;
    let outcome = if done { "refunded" } else { "refund_duplicate" };
    Ok(Notified::new(
        reply,
        Provider::Wechat,
        Some(&no),
        true,
        outcome,
    ))
}

/// A Ping++ `refund.succeeded` webhook (already verified by the caller).
fn pingpp_refund(
    conn: &mut Conn,
    req: &Inbound,
    object: &serde_json::Value,
) -> Result<Notified<WebhookReply>, ServiceError> {
    let entry = req.entry(Provider::Pingpp, "webhook", true);
    let done = |status: u16, text: &str, no: Option<&str>, outcome: &str| {
        Notified::new(
            (status, text.to_string()),
            Provider::Pingpp,
            no,
            true,
            outcome,
        )
    };
    let refund: crate::payment::pingpp::Refund = match serde_json::from_value(object.clone()) {
        Ok(r) => r,
        Err(_) => {
            pay::log_only(conn, &entry, None, "malformed", "fail: malformed")?;
            return Ok(done(400, "fail: malformed", None, "malformed"));
        }
    };
    let no = refund.charge_order_no.clone();
    let out_refund_no = refund.metadata["out_refund_no"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Err((outcome, _)) = ids_fit(&no, &[&out_refund_no, &refund.id]) {
        let reply = format!("fail: {outcome}");
        pay::log_only(conn, &entry, Some(&no), outcome, &reply)?;
        return Ok(done(400, &reply, Some(&no), outcome));
    }
    let found = match super::refund::refund_by_no(conn, &out_refund_no)? {
        Some(r) => {
            let charge = super::refund::refund_attempt(conn, &r)?.provider_ref;
            (r.amount == refund.amount && charge.as_deref() == Some(refund.charge.as_str()))
                .then_some(r)
        }
        None => None,
    };
    let Some(ours) = found else {
        pay::log_only(
            conn,
            &entry,
            Some(&no),
            "unknown_refund",
            "fail: unknown_refund",
        )?;
        return Ok(done(
            404,
            "fail: unknown_refund",
            Some(&no),
            "unknown_refund",
        ));
    };
    if refund.status != "succeeded" {
        pay::log_only(conn, &entry, Some(&no), "refund_not_succeeded", "success")?;
        return Ok(done(200, "success", Some(&no), "refund_not_succeeded"));
    }
    let applied = super::refund::apply_refund(conn, &ours, &refund.id, &entry, &no, "success")?;
    let outcome = if applied {
        "refunded"
    } else {
        "refund_duplicate"
    };
    Ok(done(200, "success", Some(&no), outcome))
}

/// The merchant the WeChat Pay APIv3 notifications must be for.
#[derive(Debug, Clone)]
pub struct WechatV3Merchant {
    pub appid: String,
    /// The Official Account's appid (the shop's cashier in WeChat pays under it).
    pub oa_appid: String,
    pub mchid: String,
}

/// A WeChat Pay APIv3 reply: an empty 204, or an error status with `{"code":"FAIL",…}`
/// (WeChat delivers again).
pub type V3Reply = crate::payment::wechat_v3::NotifyReply;

/// The pay log's outcome for a notification that failed verification or decryption, and
/// the status to answer it with.
fn v3_refusal(e: &crate::payment::wechat_v3::NotifyError) -> (&'static str, u16) {
    use crate::payment::wechat_v3::{NotifyError, VerifyError};
    match e {
        NotifyError::Unverified(VerifyError::Probe) => ("signtest", 401),
        NotifyError::Unverified(VerifyError::Stale { .. }) => ("stale_timestamp", 401),
        NotifyError::Unverified(VerifyError::UnknownSerial(_) | VerifyError::NotInForce(_)) => {
            ("unknown_serial", 401)
        }
        NotifyError::Unverified(_) => ("bad_signature", 401),
        NotifyError::Decrypt(_) => ("bad_ciphertext", 400),
        NotifyError::Malformed(_) => ("malformed", 400),
    }
}

/// Handles a WeChat Pay APIv3 notification whose signature the caller checked (async: a
/// rotation may need the platform's new certificate first) and whose resource it opened:
/// `verified` is that notification, or why there is none. Payments go through
/// `apply_payment`, refunds through `refund::apply_refund`, as every other door's.
pub fn wechat_v3(
    conn: &mut Conn,
    m: &WechatV3Merchant,
    req: &Inbound,
    verified: &Result<
        crate::payment::wechat_v3::Notification,
        crate::payment::wechat_v3::NotifyError,
    >,
) -> Result<Notified<V3Reply>, ServiceError> {
    use crate::payment::wechat_v3::{connector, Event, RefundStatus};
    const P: Provider = Provider::WechatV3;
    let reject = |conn: &mut Conn,
                  verified: bool,
                  no: Option<&str>,
                  outcome: &str,
                  status: u16,
                  reason: &str| {
        let reply = V3Reply::failure(status, reason);
        let text = reply.body.clone();
        logged(
            conn,
            &req.entry(P, "notify", verified),
            no,
            outcome,
            reply,
            &text,
        )
    };
    let acknowledge = |conn: &mut Conn, no: Option<&str>, outcome: &str| {
        let entry = req.entry(P, "notify", true);
        logged(conn, &entry, no, outcome, V3Reply::success(), "")
    };
    if req.body.contains(&0) {
        return reject(conn, false, None, BAD_INPUT, 400, "报文含有非法字符");
    }
    let notification = match verified {
        Ok(n) => n,
        Err(e) => {
            let (outcome, status) = v3_refusal(e);
            return reject(conn, false, None, outcome, status, "验签失败");
        }
    };
    let event = match notification.event() {
        Ok(e) => e,
        Err(_) => return reject(conn, true, None, "malformed", 400, "报文格式错误"),
    };
    match event {
        Event::Paid(t) => {
            let no = t.out_trade_no.clone();
            let paid = match connector::paid(&t, &[&m.appid, &m.oa_appid], &m.mchid) {
                Ok(Some(p)) => p,
                // A verified notice of a trade that is not paid: nothing to do.
                Ok(None) => return acknowledge(conn, Some(&no), "not_paid"),
                // Paid, but unreadable: WeChat must deliver again, or the payment is lost.
                Err("unreadable") => {
                    return reject(conn, true, Some(&no), "unreadable", 500, "报文字段无效")
                }
                Err(outcome) => return reject(conn, true, Some(&no), outcome, 400, "商户号不匹配"),
            };
            if let Err((outcome, reason)) = ids_fit(&paid.out_trade_no, &[&paid.payment_id]) {
                return reject(conn, true, Some(&no), outcome, 400, &reason);
            }
            let proof = Proof {
                provider: P,
                out_trade_no: paid.out_trade_no,
                payment_id: paid.payment_id,
                transaction_no: paid.transaction_no,
                amount: paid.amount,
            };
            let reply = |a: &Applied| match a {
                Applied::UnknownTrade => V3Reply::failure(404, "订单不存在"),
                Applied::AmountMismatch { .. } => V3Reply::failure(400, "金额不匹配"),
                _ => V3Reply::success(),
            };
            let entry = req.entry(P, "notify", true);
            let applied = pay::apply_payment(conn, &proof, &entry, &|a| reply(a).body)?;
            Notified::applied(conn, reply(&applied), &proof, &applied)
        }
        Event::Refund(n) => {
            let no = n.out_trade_no.clone();
            if n.mchid != m.mchid {
                return reject(conn, true, Some(&no), "wrong_merchant", 400, "商户号不匹配");
            }
            if let Err((outcome, reason)) = ids_fit(&no, &[&n.out_refund_no, &n.refund_id]) {
                return reject(conn, true, Some(&no), outcome, 400, &reason);
            }
            let Some(refund) = super::refund::refund_by_no(conn, &n.out_refund_no)? else {
                return reject(conn, true, Some(&no), "unknown_refund", 404, "退款单不存在");
            };
            // Verified as WeChat's; it must still be about this refund.
            let attempt = super::refund::refund_attempt(conn, &refund)?;
            if attempt.out_trade_no != no || n.amount.refund.fen() != refund.amount {
                return reject(
                    conn,
                    true,
                    Some(&no),
                    "refund_mismatch",
                    400,
                    "退款单不匹配",
                );
            }
            match n.refund_status {
                RefundStatus::Success => {
                    let entry = req.entry(P, "notify", true);
                    let done =
                        super::refund::apply_refund(conn, &refund, &n.refund_id, &entry, &no, "")?;
                    let outcome = if done { "refunded" } else { "refund_duplicate" };
                    Ok(Notified::new(
                        V3Reply::success(),
                        P,
                        Some(&no),
                        true,
                        outcome,
                    ))
                }
                RefundStatus::Abnormal | RefundStatus::Closed => {
                    let word = if n.refund_status == RefundStatus::Closed {
                        "CLOSED"
                    } else {
                        "ABNORMAL"
                    };
                    super::refund::refund_abnormal(
                        conn,
                        refund.id,
                        &format!("微信退款 {word}，需人工处理"),
                    )?;
                    acknowledge(conn, Some(&no), &format!("refund_{}", word.to_lowercase()))
                }
                RefundStatus::Processing | RefundStatus::Other => {
                    acknowledge(conn, Some(&no), "refund_processing")
                }
            }
        }
        Event::Other(kind) => acknowledge(conn, None, &format!("ignored: {kind}")),
    }
}

/// The Alipay app the notifications must be for.
#[derive(Debug, Clone)]
pub struct AlipayApp {
    pub app_id: String,
    pub seller_id: String,
    pub public_key: RsaPublicKey,
}

/// Handles an Alipay notification; the reply is the plain body Alipay reads: `success`
/// (delivered) or `fail` (deliver again).
pub fn alipay(
    conn: &mut Conn,
    app: &AlipayApp,
    req: &Inbound,
) -> Result<Notified<String>, ServiceError> {
    use crate::payment::alipay::notify::NoticeError;
    const P: Provider = Provider::Alipay;
    let answer = |conn: &mut Conn, verified: bool, no: Option<&str>, outcome: &str, ok: bool| {
        let reply = if ok { "success" } else { "fail" };
        let entry = req.entry(P, "notify", verified);
        logged(conn, &entry, no, outcome, reply.to_string(), reply)
    };
    if req.body.contains(&0) {
        return answer(conn, false, None, BAD_INPUT, false);
    }
    let notice = match crate::payment::alipay::parse_notification(&app.public_key, &req.body) {
        Ok(n) => n,
        Err(NoticeError::BadSignature) => return answer(conn, false, None, "bad_signature", false),
        Err(NoticeError::Malformed(_)) => return answer(conn, false, None, "malformed", false),
    };
    let no = notice.out_trade_no.clone();
    if let Err((outcome, _)) = ids_fit(&no, &[&notice.trade_no]) {
        return answer(conn, true, Some(&no), outcome, false);
    }
    if notice.app_id != app.app_id || notice.seller_id != app.seller_id {
        return answer(conn, true, Some(&no), "wrong_merchant", false);
    }
    if notice.is_refund() {
        // A refund's notification: completes the refund it names (out_biz_no); one without
        // (a full refund may carry none) is left to the refund sweep's query.
        let Some(out_refund_no) = notice.out_biz_no.clone() else {
            return answer(conn, true, Some(&no), "refund_notice", true);
        };
        if ids_fit(&no, &[&out_refund_no]).is_err() {
            return answer(conn, true, Some(&no), BAD_INPUT, false);
        }
        let Some(refund) = super::refund::refund_by_no(conn, &out_refund_no)? else {
            return answer(conn, true, Some(&no), "unknown_refund", false);
        };
        if super::refund::refund_attempt(conn, &refund)?.out_trade_no != no {
            return answer(conn, true, Some(&no), "refund_mismatch", false);
        }
        let entry = req.entry(P, "notify", true);
        let done =
            super::refund::apply_refund(conn, &refund, &out_refund_no, &entry, &no, "success")?;
        let outcome = if done { "refunded" } else { "refund_duplicate" };
        return Ok(Notified::new("success".into(), P, Some(&no), true, outcome));
    }
    if !notice.is_payment() {
        let outcome = format!("not_paid: {}", notice.trade_status);
        return answer(conn, true, Some(&no), &outcome, true);
    }
    let proof = Proof {
        provider: P,
        out_trade_no: notice.out_trade_no.clone(),
        payment_id: notice.trade_no.clone(),
        transaction_no: notice.trade_no,
        amount: notice.total_amount,
    };
    let reply = |a: &Applied| match a {
        Applied::UnknownTrade | Applied::AmountMismatch { .. } => "fail".to_string(),
        _ => "success".to_string(),
    };
    let applied = pay::apply_payment(conn, &proof, &req.entry(P, "notify", true), &reply)?;
    Notified::applied(conn, reply(&applied), &proof, &applied)
}

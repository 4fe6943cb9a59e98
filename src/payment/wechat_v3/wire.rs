//! APIv3 request and answer bodies. Requests are built from the shop's terms (`Money`, a UTC
//! expiry) and checked against the field limits before anything is sent; amounts become
//! integer fen only here, at the wire.

use crate::domain::{shanghai, Money};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `description` is string(127): bytes of UTF-8.
pub const DESCRIPTION_MAX_BYTES: usize = 127;
/// Refund `reason` is string(80).
pub const REASON_MAX_BYTES: usize = 80;

/// The longest prefix of `s` within `max` bytes that ends at a character boundary.
pub fn cut_to_bytes(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `2026-12-01T18:30:00+08:00`: RFC 3339 in Beijing time, no fraction (the Go SDK's `Z`
/// form is not known to be accepted).
pub fn time_expire(t: DateTime<Utc>) -> String {
    t.with_timezone(&shanghai())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// `out_trade_no`: 6–32 characters of `[0-9A-Za-z_-|*]`.
pub fn check_out_trade_no(no: &str) -> Result<(), String> {
    let ok = (6..=32).contains(&no.len())
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    ok.then_some(())
        .ok_or_else(|| format!("out_trade_no {no:?} is not 6-32 of [0-9A-Za-z_-|*]"))
}

/// `out_refund_no`: 1–64 characters of `[0-9A-Za-z_-|*@]`.
pub fn check_out_refund_no(no: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&no.len())
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b));
    ok.then_some(())
        .ok_or_else(|| format!("out_refund_no {no:?} is not 1-64 of [0-9A-Za-z_-|*@]"))
}

fn check_amount(what: &str, m: Money) -> Result<i64, String> {
    (m.fen() >= 1)
        .then_some(m.fen())
        .ok_or_else(|| format!("{what} must be at least 1 fen, not {}", m.fen()))
}

/// A payment to start, in the shop's terms; the same for JSAPI, NATIVE and H5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepay {
    /// The Official Account or mini-program appid bound to the merchant.
    pub appid: String,
    /// Cut to 127 bytes at a character boundary.
    pub description: String,
    pub out_trade_no: String,
    pub amount: Money,
    /// https, absolute, no query.
    pub notify_url: String,
    pub time_expire: Option<DateTime<Utc>>,
    pub attach: Option<String>,
}

/// How the payer pays: in WeChat (JSAPI, the payer's openid under `appid`), by scanning a QR
/// code (NATIVE), or in a mobile browser (H5, the payer's IPv4 address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeType<'a> {
    Jsapi { openid: &'a str },
    Native,
    H5 { payer_client_ip: &'a str },
}

impl TradeType<'_> {
    pub(super) fn path(&self) -> &'static str {
        match self {
            TradeType::Jsapi { .. } => "/v3/pay/transactions/jsapi",
            TradeType::Native => "/v3/pay/transactions/native",
            TradeType::H5 { .. } => "/v3/pay/transactions/h5",
        }
    }
}

#[derive(Debug, Serialize)]
struct PrepayBody<'a> {
    appid: &'a str,
    mchid: &'a str,
    description: &'a str,
    out_trade_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_expire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attach: Option<&'a str>,
    notify_url: &'a str,
    amount: OrderAmount,
    #[serde(skip_serializing_if = "Option::is_none")]
    payer: Option<PayerBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scene_info: Option<SceneInfo<'a>>,
}

#[derive(Debug, Serialize)]
struct OrderAmount {
    total: i64,
    currency: &'static str,
}

#[derive(Debug, Serialize)]
struct PayerBody<'a> {
    openid: &'a str,
}

#[derive(Debug, Serialize)]
struct SceneInfo<'a> {
    payer_client_ip: &'a str,
    h5_info: H5Info,
}

#[derive(Debug, Serialize)]
struct H5Info {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The JSON body of a prepay request, or why it must not be sent.
pub fn prepay_body(mchid: &str, p: &Prepay, trade_type: &TradeType<'_>) -> Result<Vec<u8>, String> {
    check_out_trade_no(&p.out_trade_no)?;
    let total = check_amount("amount", p.amount)?;
    let (payer, scene_info) = match *trade_type {
        TradeType::Jsapi { openid } => (Some(PayerBody { openid }), None),
        TradeType::Native => (None, None),
        TradeType::H5 { payer_client_ip } => (
            None,
            Some(SceneInfo {
                payer_client_ip,
                h5_info: H5Info { kind: "Wap" },
            }),
        ),
    };
    let body = PrepayBody {
        appid: &p.appid,
        mchid,
        description: cut_to_bytes(&p.description, DESCRIPTION_MAX_BYTES),
        out_trade_no: &p.out_trade_no,
        time_expire: p.time_expire.map(time_expire),
        attach: p.attach.as_deref(),
        notify_url: &p.notify_url,
        amount: OrderAmount {
            total,
            currency: "CNY",
        },
        payer,
        scene_info,
    };
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// What a prepay answers: `prepay_id` (JSAPI), `code_url` (NATIVE), `h5_url` (H5).
#[derive(Debug, Deserialize)]
pub(super) struct PrepayAnswer {
    prepay_id: Option<String>,
    code_url: Option<String>,
    h5_url: Option<String>,
}

/// A started payment: what the payer's side needs, per trade type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// For the JSAPI launch parameters (valid 2 hours).
    PrepayId(String),
    /// `weixin://wxpay/bizpayurl?pr=…`, shown as a QR code (valid 2 hours).
    CodeUrl(String),
    /// Where to send the payer's browser (valid 5 minutes).
    H5Url(String),
}

impl PrepayAnswer {
    pub(super) fn prepared(self, trade_type: &TradeType<'_>) -> Option<Prepared> {
        match trade_type {
            TradeType::Jsapi { .. } => self.prepay_id.map(Prepared::PrepayId),
            TradeType::Native => self.code_url.map(Prepared::CodeUrl),
            TradeType::H5 { .. } => self.h5_url.map(Prepared::H5Url),
        }
    }
}

/// `trade_state` of a query or a payment notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TradeState {
    #[serde(rename = "SUCCESS")]
    Success,
    /// A refund was made (转入退款): the trade was paid.
    #[serde(rename = "REFUND")]
    Refund,
    #[serde(rename = "NOTPAY")]
    NotPay,
    #[serde(rename = "CLOSED")]
    Closed,
    #[serde(rename = "REVOKED")]
    Revoked,
    #[serde(rename = "USERPAYING")]
    UserPaying,
    #[serde(rename = "PAYERROR")]
    PayError,
    #[serde(other)]
    Other,
}

impl TradeState {
    /// SUCCESS, or REFUND (paid, then refunded in part or whole).
    pub fn was_paid(self) -> bool {
        matches!(self, TradeState::Success | TradeState::Refund)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Payer {
    pub openid: String,
}

/// `amount` of a transaction: `total` is the order's amount (reconcile against it);
/// `payer_total` what the payer paid after coupons.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TransactionAmount {
    pub total: Money,
    #[serde(default)]
    pub payer_total: Option<Money>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub payer_currency: Option<String>,
}

/// A transaction as the query answers it and the TRANSACTION.SUCCESS notification carries
/// it. Which fields an unpaid trade has is not documented, so all but `out_trade_no` and
/// `trade_state` may be missing (`appid`/`mchid` then read as "", which matches no
/// merchant's own: compare them before believing a payment).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Transaction {
    #[serde(default)]
    pub appid: String,
    #[serde(default)]
    pub mchid: String,
    pub out_trade_no: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub trade_type: Option<String>,
    pub trade_state: TradeState,
    #[serde(default)]
    pub trade_state_desc: Option<String>,
    #[serde(default)]
    pub bank_type: Option<String>,
    #[serde(default)]
    pub attach: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub success_time: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    pub payer: Option<Payer>,
    #[serde(default)]
    pub amount: Option<TransactionAmount>,
}

/// A refund to ask for, in the shop's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub out_trade_no: String,
    /// Retry under the same number (and amount) after any error or timeout.
    pub out_refund_no: String,
    /// Cut to 80 bytes at a character boundary.
    pub reason: Option<String>,
    pub notify_url: Option<String>,
    pub refund: Money,
    /// The payment's whole amount.
    pub total: Money,
}

#[derive(Debug, Serialize)]
struct RefundBody<'a> {
    out_trade_no: &'a str,
    out_refund_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_url: Option<&'a str>,
    amount: RefundBodyAmount,
}

#[derive(Debug, Serialize)]
struct RefundBodyAmount {
    refund: i64,
    total: i64,
    currency: &'static str,
}

/// The JSON body of a refund request, or why it must not be sent.
pub fn refund_body(r: &RefundRequest) -> Result<Vec<u8>, String> {
    check_out_trade_no(&r.out_trade_no)?;
    check_out_refund_no(&r.out_refund_no)?;
    let refund = check_amount("refund", r.refund)?;
    let total = check_amount("total", r.total)?;
    if refund > total {
        return Err(format!("refund {refund} exceeds the total {total}"));
    }
    let body = RefundBody {
        out_trade_no: &r.out_trade_no,
        out_refund_no: &r.out_refund_no,
        reason: r
            .reason
            .as_deref()
            .map(|s| cut_to_bytes(s, REASON_MAX_BYTES)),
        notify_url: r.notify_url.as_deref(),
        amount: RefundBodyAmount {
            refund,
            total,
            currency: "CNY",
        },
    };
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// `status` of a refund (answer, query) and `refund_status` of its notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RefundStatus {
    #[serde(rename = "SUCCESS")]
    Success,
    /// Closed: the money did not go back. WxJava's docs spell it `CLOSE`.
    #[serde(rename = "CLOSED", alias = "CLOSE")]
    Closed,
    #[serde(rename = "PROCESSING")]
    Processing,
    /// Stuck (say the payer's card was cancelled): the merchant must act; not final.
    #[serde(rename = "ABNORMAL")]
    Abnormal,
    #[serde(other)]
    Other,
}

/// `amount` of a refund. `payer_total`/`payer_refund` leave coupons out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefundAmount {
    pub total: Money,
    pub refund: Money,
    #[serde(default)]
    pub payer_total: Option<Money>,
    #[serde(default)]
    pub payer_refund: Option<Money>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// A refund as `POST /v3/refund/domestic/refunds` and the refund query answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub out_refund_no: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    pub out_trade_no: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub user_received_account: Option<String>,
    #[serde(default)]
    pub success_time: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    pub create_time: Option<DateTime<chrono::FixedOffset>>,
    pub status: RefundStatus,
    #[serde(default)]
    pub funds_account: Option<String>,
    pub amount: RefundAmount,
}

/// The resource of a REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED notification
/// (no appid, no trade_state).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefundNotice {
    pub mchid: String,
    pub out_trade_no: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    pub out_refund_no: String,
    pub refund_id: String,
    pub refund_status: RefundStatus,
    #[serde(default)]
    pub success_time: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    pub user_received_account: Option<String>,
    pub amount: RefundAmount,
}

/// The error body of a non-2xx answer: `{"code","message","detail"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(super) struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn prepay() -> Prepay {
        Prepay {
            appid: "wxd678efh567hg6787".into(),
            description: "测".repeat(50),
            out_trade_no: "A2026120112345601".into(),
            amount: Money::from_fen(1999),
            notify_url: "https://shop.example.com/notify".into(),
            time_expire: Utc.with_ymd_and_hms(2026, 12, 1, 10, 30, 0).single(),
            attach: None,
        }
    }

    fn json(v: Result<Vec<u8>, String>) -> serde_json::Value {
        let bytes = v.unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn time_expire_is_beijing_time_with_its_offset() {
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 10, 30, 0).single();
        assert_eq!(
            t.map(time_expire).as_deref(),
            Some("2026-12-01T18:30:00+08:00")
        );
    }

    #[test]
    fn descriptions_are_cut_to_127_bytes_at_a_character_boundary() {
        assert_eq!(cut_to_bytes(&"测".repeat(50), 127), "测".repeat(42));
        assert_eq!(cut_to_bytes("short", 127), "short");
        assert_eq!(cut_to_bytes("a测", 2), "a");
        let body = json(prepay_body("1900000109", &prepay(), &TradeType::Native));
        assert_eq!(body["description"].as_str().map(str::len), Some(126));
    }

    #[test]
    fn each_channel_sends_its_own_payer_fields_and_fen() {
        let jsapi = json(prepay_body(
            "1900000109",
            &prepay(),
            &TradeType::Jsapi { openid: "oUpF8u" },
        ));
        assert_eq!(jsapi["payer"]["openid"], "oUpF8u");
        assert_eq!(
            jsapi["amount"],
            serde_json::json!({"total": 1999, "currency": "CNY"})
        );
        assert_eq!(jsapi["time_expire"], "2026-12-01T18:30:00+08:00");
        assert_eq!(jsapi["mchid"], "1900000109");
        assert!(jsapi.get("scene_info").is_none() && jsapi.get("attach").is_none());

        let native = json(prepay_body("1900000109", &prepay(), &TradeType::Native));
        assert!(native.get("payer").is_none() && native.get("scene_info").is_none());

        let h5 = json(prepay_body(
            "1900000109",
            &prepay(),
            &TradeType::H5 {
                payer_client_ip: "203.0.113.7",
            },
        ));
        assert_eq!(
            h5["scene_info"],
            serde_json::json!({"payer_client_ip": "203.0.113.7", "h5_info": {"type": "Wap"}})
        );
    }

    #[test]
    fn bad_numbers_and_amounts_are_refused_before_sending() {
        for no in ["12345", &"1".repeat(33), "A20261201 1", "订单123456"] {
            let p = Prepay {
                out_trade_no: no.to_string(),
                ..prepay()
            };
            assert!(prepay_body("m", &p, &TradeType::Native).is_err(), "{no}");
        }
        let free = Prepay {
            amount: Money::ZERO,
            ..prepay()
        };
        assert!(prepay_body("m", &free, &TradeType::Native).is_err());
        let r = RefundRequest {
            out_trade_no: "A2026120112345601".into(),
            out_refund_no: "A2026120112345601R".into(),
            reason: Some("退".repeat(30)),
            notify_url: None,
            refund: Money::from_fen(500),
            total: Money::from_fen(1999),
        };
        let body = json(refund_body(&r));
        assert_eq!(
            body["amount"],
            serde_json::json!({"refund": 500, "total": 1999, "currency": "CNY"})
        );
        assert_eq!(body["reason"].as_str().map(str::len), Some(78));
        assert!(body.get("notify_url").is_none());
        let too_much = RefundRequest {
            refund: Money::from_fen(2000),
            ..r.clone()
        };
        assert!(refund_body(&too_much).is_err());
        let bad_no = RefundRequest {
            out_refund_no: "R 1".into(),
            ..r
        };
        assert!(refund_body(&bad_no).is_err());
    }

    #[test]
    fn an_unpaid_trade_reads_with_its_ids_alone() {
        let t: Result<Transaction, _> =
            serde_json::from_str(r#"{"out_trade_no":"A2026120112345601","trade_state":"NOTPAY"}"#);
        let t = t.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.trade_state, TradeState::NotPay);
        assert_eq!((t.appid.as_str(), t.amount), ("", None));
    }

    #[test]
    fn unknown_states_are_read_as_other_and_close_is_closed() {
        let s: Result<RefundStatus, _> = serde_json::from_str("\"CLOSE\"");
        assert_eq!(s.ok(), Some(RefundStatus::Closed));
        let t: Result<TradeState, _> = serde_json::from_str("\"SOMETHING_NEW\"");
        assert_eq!(t.ok(), Some(TradeState::Other));
        assert!(TradeState::Refund.was_paid() && !TradeState::NotPay.was_paid());
    }
}

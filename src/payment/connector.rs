//! One shape for every payment platform: the shop's flows (create, query, close, refund)
//! speak to a `Connector` and never to a platform's own client. Each platform implements it
//! in its own module; `services::gateway` picks the connector once, by the attempt's
//! provider. May import domain only (and the futures it returns).

use crate::domain::{Channel, Money, Provider};
use crate::payment::bill::{Bill, BillError};
use std::future::Future;
use std::pin::Pin;

/// What a connector's calls return: a boxed future, so connectors can sit behind `dyn`.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A payment to create at the platform, in the shop's terms (yuan strings, byte limits and
/// time formats are the connector's business).
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub channel: Channel,
    /// The attempt's trade number (order number + 2 digits).
    pub out_trade_no: String,
    pub order_no: String,
    pub order_id: i32,
    /// The order's first product (WeChat NATIVE `product_id`, Ping++ `wx_pub_qr`).
    pub product_id: String,
    /// The order's snapshot name ("茶 等 3 件").
    pub subject: String,
    pub amount: Money,
    /// The attempt's expiry (UTC): never under the platforms' minimum window.
    pub expires_at: chrono::NaiveDateTime,
    /// The shopper's address as the shop sees it.
    pub client_ip: String,
    /// The payer's openid (JSAPI, mini-program, Official Account).
    pub payer: Option<String>,
}

/// A trade as the shop recorded it, for the calls after creation.
#[derive(Debug, Clone)]
pub struct Trade {
    pub channel: Option<Channel>,
    pub out_trade_no: String,
    /// The platform's id for it (prepay_id, ch_…), once created.
    pub provider_ref: Option<String>,
    /// What the platform keeps for the client (code_url, a charge's credential).
    pub credential: Option<String>,
    pub amount: Money,
    /// The attempt's expiry (UTC).
    pub expires_at: chrono::NaiveDateTime,
}

/// A payment the platform created (or, for a reused attempt, still holds).
#[derive(Debug, Clone)]
pub struct Created {
    /// prepay_id, ch_…
    pub provider_ref: String,
    /// code_url, or the charge's credential object as JSON text.
    pub credential: Option<String>,
    /// The platform's answer as it came (for the pay log, and clients that want it whole).
    pub raw: String,
}

/// A platform call that did not give a usable answer.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong, for the caller's error (never a secret).
    pub message: String,
    /// The platform's answer, or the error text, for the pay log.
    pub raw: String,
}

impl Failure {
    pub fn new(message: impl Into<String>, raw: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            raw: raw.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A payment the platform confirms, read from its verified answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    pub out_trade_no: String,
    /// The platform's payment id: with the provider, the dedupe key of the payment.
    pub payment_id: String,
    /// The id the shopper's bank or wallet shows.
    pub transaction_no: String,
    pub amount: Money,
}

/// What the platform says about one trade.
#[derive(Debug, Clone)]
pub enum TradeState {
    Paid {
        paid: Paid,
        raw: String,
    },
    /// Not paid (yet); `state` is the platform's word for it, for the pay log.
    Unpaid {
        state: String,
        raw: String,
    },
    /// The platform has no such trade (never created, or lost).
    Unknown {
        raw: String,
    },
    /// The answer is about another merchant, app or mode: believed by nobody.
    Foreign {
        outcome: &'static str,
        raw: String,
    },
}

/// What closing a trade at the platform came to.
#[derive(Debug, Clone)]
pub enum Closed {
    /// Closed now, or already closed or unknown there (`outcome` says which).
    Closed { outcome: String, raw: String },
    /// Paid between the shop's query and the close: query it again and apply it.
    AlreadyPaid { raw: String },
    /// The platform cannot close trades (Ping++: a charge expires at its time_expire).
    NotClosable,
}

/// A refund to submit or ask about.
#[derive(Debug, Clone)]
pub struct RefundOrder {
    /// The paid trade.
    pub trade: Trade,
    pub out_refund_no: String,
    pub amount: Money,
    pub reason: String,
    /// Submissions so far whose outcome stayed open.
    pub tries: i32,
    /// The platform's refund id, once accepted.
    pub refund_ref: Option<String>,
}

/// What a refund submission came to.
#[derive(Debug, Clone)]
pub enum Submitted {
    Accepted {
        refund_ref: String,
        raw: String,
    },
    /// The outcome is open: submit again later with the same out_refund_no.
    Retry(String),
    /// A definitive refusal.
    Refused(String),
}

/// What a refund query found.
#[derive(Debug, Clone)]
pub enum RefundState {
    Done {
        refund_ref: String,
        raw: String,
    },
    Processing {
        raw: String,
    },
    /// Closed or diverted at the platform: for an admin, never refunded again
    /// automatically. `status` is the platform's word (REFUNDCLOSE, CHANGE, ABNORMAL…).
    Abnormal {
        status: String,
        note: String,
        raw: String,
    },
    Failed {
        why: String,
        raw: String,
    },
}

/// The signed parameters of `wx.requestPayment` / `getBrandWCPayRequest`, keys as WeChat
/// wants them (`timeStamp` a string).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsapiLaunch {
    pub app_id: String,
    pub time_stamp: String,
    pub nonce_str: String,
    pub package: String,
    pub sign_type: String,
    pub pay_sign: String,
}

/// One platform, as the shop's flows see it.
pub trait Connector: Send + Sync {
    fn provider(&self) -> Provider;

    /// The attempt's signing scheme, stored with it (WeChat v2: MD5 or HMAC-SHA256).
    fn sign_type(&self) -> Option<&'static str> {
        None
    }

    /// Creates a payment.
    fn create<'a>(&'a self, req: &'a PaymentRequest) -> Call<'a, Result<Created, Failure>>;

    /// A live attempt shown again: what the client needs, as the platform still holds it.
    /// By default the recorded prepay id and credential, with no platform call.
    fn resume<'a>(&'a self, trade: &'a Trade) -> Call<'a, Result<Created, Failure>> {
        let created = Created {
            provider_ref: trade.provider_ref.clone().unwrap_or_default(),
            credential: trade.credential.clone(),
            raw: String::new(),
        };
        Box::pin(async move { Ok(created) })
    }

    /// The launch parameters for a JSAPI prepay id (WeChat); `None` for a platform whose
    /// clients take its own credential instead.
    /// Whether `trade_bill` fetches anything.
    fn has_bill(&self) -> bool {
        false
    }

    /// The platform's trade bill (对账单) of a Beijing day: every payment and refund it
    /// booked that day.
    fn trade_bill(&self, _day: chrono::NaiveDate) -> Call<'_, Result<Bill, BillError>> {
        Box::pin(async { Err(BillError::Unsupported) })
    }

    fn jsapi_launch(
        &self,
        _channel: Channel,
        _prepay_id: &str,
        _timestamp: i64,
    ) -> Option<JsapiLaunch> {
        None
    }

    /// Asks about a trade.
    fn query<'a>(&'a self, trade: &'a Trade) -> Call<'a, Result<TradeState, Failure>>;

    /// Closes an unpaid trade so it can no longer be paid.
    fn close<'a>(&'a self, trade: &'a Trade) -> Call<'a, Result<Closed, Failure>>;

    /// Submits a refund; a repeat under the same out_refund_no is the same refund.
    fn refund<'a>(&'a self, r: &'a RefundOrder) -> Call<'a, Submitted>;

    /// Asks about a refund the platform accepted.
    fn refund_query<'a>(&'a self, r: &'a RefundOrder) -> Call<'a, Result<RefundState, Failure>>;
}

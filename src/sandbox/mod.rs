//! The built-in sandbox: plays WeChat Pay v2, WeChat Pay APIv3, Ping++ and Alipay byte for
//! byte (same paths, fields, signatures and replies), pays on a simulated phone page (and
//! Alipay's cashier), and delivers signed notifications over HTTP with the platforms' retry
//! schedules (compressed), with fault injection. v2 and APIv3 orders share one store
//! (`State::wx`, marked by `WxApi`), as one merchant's orders do on the platform; `wxpay_v3`
//! says how APIv3 signs, encrypts and rotates its certificates; `alipay` plays `gateway.do`
//! (public-key and certificate mode) with its own trades and refunds (`State::alipay`). May import payment (wire formats and signing), config and assets (its
//! built-in keys), never services: it is another party, reached only over HTTP.

pub mod alipay;
pub mod deliver;
pub mod jsbridge;
pub mod pingpp;
pub mod wxa;
pub mod wxbill;
pub mod wxlogin;
pub mod wxpay;
pub mod wxpay_v3;

use crate::config::Config;
use crate::payment::pingpp::sign::{RsaPrivateKey, RsaPublicKey};
use crate::payment::pingpp::Charge;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Faults injected into notification delivery.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Faults {
    /// Copies of each notification, sent concurrently (0 or 1 = one).
    pub copies: u32,
    /// Delay before the first delivery, in milliseconds.
    pub delay_ms: u64,
    /// Notify an amount one fen higher than paid.
    pub wrong_amount: bool,
    /// Send a signature that does not verify.
    pub bad_signature: bool,
    /// Never deliver (the query path must find the payment).
    pub never_deliver: bool,
    /// The first this-many refund requests of a trade take the money, then answer
    /// WeChat's SYSTEMERROR / Ping++'s 502 (the outcome looks open to the merchant).
    pub refund_system_errors: u32,
    /// Refund requests take the money, then hold the answer back this long (longer than
    /// the merchant waits: a timeout after the money left).
    pub refund_hang_ms: u64,
    /// A WeChat refund ends in this status instead of SUCCESS: `REFUNDCLOSE` or `CLOSED`
    /// (closed), `CHANGE` or `ABNORMAL` (abnormal), in v2 or APIv3 spelling.
    pub refund_status: String,
    /// The first this-many shipping uploads of the trade answer 10060001 (the payment not
    /// indexed yet, as right after its notification).
    pub shipping_unindexed: u32,
    /// APIv3: answers and the first send of each notification carry a
    /// `WECHATPAY/SIGNTEST/…` probe instead of a signature (retries are signed).
    pub v3_signtest: bool,
    /// APIv3: answers and notifications are signed with a timestamp 10 minutes old.
    pub v3_stale_timestamp: bool,
    /// APIv3: the notification's ciphertext has its GCM tag corrupted.
    pub v3_bad_tag: bool,
    /// APIv3: notifications are signed by a retired platform certificate.
    pub v3_retired_cert: bool,
    /// Alipay: answers go out with `/` escaped as `\/` but signed over the plain text (as
    /// some live answers are: a client verifies the raw text, then the unescaped one).
    pub alipay_escaped_slashes: bool,
    /// Bills: the platform has no such payment: the trade is left off the day's bill and
    /// v2's orderquery answers ORDERNOTEXIST (once paid: the shop heard of it before).
    pub bill_omit: bool,
    /// Bills: the trade's amount on the bill is not a number (a malformed line).
    pub bill_malformed: bool,
    /// Bills: the trade's amount on the bill is one fen higher than paid.
    pub bill_wrong_amount: bool,
    /// Bills: each refund of the trade is on the bill twice (refunded twice).
    pub bill_duplicate_refund: bool,
}

impl Faults {
    /// The status a WeChat refund ends in (v2 spelling), by the `refund_status` fault.
    pub fn refund_end(&self) -> &'static str {
        match self.refund_status.as_str() {
            "REFUNDCLOSE" | "CLOSED" => "REFUNDCLOSE",
            "CHANGE" | "ABNORMAL" => "CHANGE",
            _ => "SUCCESS",
        }
    }
}

/// Faults for trade numbers starting with `prefix` (empty: every trade).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultRule {
    pub prefix: String,
    #[serde(flatten)]
    pub faults: Faults,
}

/// One delivery attempt of one notification copy.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub provider: &'static str,
    pub out_trade_no: String,
    pub copy: u32,
    pub try_no: u32,
    pub status: Option<u16>,
    pub reply: String,
    pub acknowledged: bool,
}

/// Which WeChat Pay API created an order: its notification goes out in that API's format
/// (the platform keeps one order space per merchant, so each API can query the other's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WxApi {
    V2,
    V3,
}

/// A WeChat order as the platform keeps it.
#[derive(Debug, Clone)]
pub struct WxOrder {
    pub api: WxApi,
    pub appid: String,
    pub out_trade_no: String,
    pub body: String,
    pub total_fee: i64,
    pub trade_type: String,
    pub openid: String,
    pub notify_url: String,
    pub prepay_id: String,
    pub code_url: Option<String>,
    /// APIv3 H5: the page the shopper's browser is sent to (lives 5 minutes).
    pub h5_url: Option<String>,
    pub attach: String,
    pub sign_type: String,
    pub trade_state: &'static str,
    pub transaction_id: Option<String>,
    pub time_end: Option<String>,
    /// When the prepay_id / code_url was issued (sandbox clock, unix seconds): both live
    /// 2 hours.
    pub created_at: i64,
    /// The order's `time_expire` (unix seconds), if one was sent.
    pub time_expire: Option<i64>,
}

/// A WeChat refund as the platform keeps it.
#[derive(Debug, Clone)]
pub struct WxRefund {
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub refund_id: String,
    pub refund_fee: i64,
    /// v2 spelling: PROCESSING, SUCCESS, REFUNDCLOSE, CHANGE.
    pub status: &'static str,
    /// When the refund was taken (sandbox clock, unix seconds).
    pub created_at: i64,
}

#[derive(Debug, Default)]
pub struct State {
    pub wx: HashMap<String, WxOrder>,
    pub charges: HashMap<String, Charge>,
    pub refunds: HashMap<String, crate::payment::pingpp::Refund>,
    /// WeChat refunds by out_refund_no.
    pub wx_refunds: HashMap<String, WxRefund>,
    /// APIv3 bill downloads: token -> (the file, when it was made).
    pub bills: HashMap<String, (String, i64)>,
    /// Alipay bill downloads: token -> (the zip, when it was made).
    pub ali_bills: HashMap<String, (Vec<u8>, i64)>,
    /// Charge ids in creation order.
    pub charge_ids: Vec<String>,
    pub rules: Vec<FaultRule>,
    pub deliveries: Vec<Delivery>,
    /// Refund requests answered with an error so far, by trade (the refund_system_errors
    /// fault).
    pub refund_errors: HashMap<String, u32>,
    /// Seconds the sandbox's clock runs ahead of the real one (tests of 2-hour limits).
    pub clock_offset: i64,
    /// Codes handed out by the simulated `wx.login`, by code.
    pub login_codes: HashMap<String, wxlogin::LoginCode>,
    /// The appid each openid was issued under (at its `jscode2session` login).
    pub openids: HashMap<String, String>,
    /// Mini-program access_tokens and shipping uploads.
    pub wxa: wxa::WxaState,
    /// APIv3 platform certificates: which is current, which are listed or retired.
    pub v3_rotation: wxpay_v3::Rotation,
    /// Alipay's trades and refunds.
    pub alipay: alipay::AliState,
}

/// Why the platform refuses a WeChat refund request (v2 and APIv3 word it each their way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundRefusal {
    /// The out_refund_no names a refund of another trade or amount.
    OtherRefund,
    /// More than the trade has left to refund (or nothing).
    NotEnough,
}

impl State {
    /// Takes a WeChat refund of `fee` from trade `no` (of `total`) under `rno`: the same
    /// refund again (false) or a new one, PROCESSING (true).
    pub fn take_wx_refund(
        &mut self,
        no: &str,
        rno: &str,
        fee: i64,
        total: i64,
        now: i64,
    ) -> Result<(WxRefund, bool), RefundRefusal> {
        match self.wx_refunds.get(rno) {
            Some(r) if r.refund_fee == fee && r.out_trade_no == no => {
                return Ok((r.clone(), false))
            }
            Some(_) => return Err(RefundRefusal::OtherRefund),
            None => {}
        }
        let refunded: i64 = self
            .wx_refunds
            .values()
            .filter(|r| r.out_trade_no == no)
            .map(|r| r.refund_fee)
            .sum();
        if fee <= 0 || refunded + fee > total {
            return Err(RefundRefusal::NotEnough);
        }
        let r = WxRefund {
            out_trade_no: no.to_string(),
            out_refund_no: rno.to_string(),
            refund_id: format!("50300{}", random_digits(24)),
            refund_fee: fee,
            status: "PROCESSING",
            created_at: now,
        };
        self.wx_refunds.insert(rno.to_string(), r.clone());
        Ok((r, true))
    }

    /// The faults for this trade: the last rule whose prefix matches.
    pub fn faults_for(&self, out_trade_no: &str) -> Faults {
        self.rules
            .iter()
            .rev()
            .find(|r| out_trade_no.starts_with(&r.prefix))
            .map(|r| r.faults.clone())
            .unwrap_or_default()
    }
}

/// The platforms' own keys, loaded at start.
pub struct Platforms {
    pub v3: wxpay_v3::Platform,
    pub alipay: alipay::Platform,
}

/// The sandbox: settings, keys and in-memory state (it plays an outside party, so its state
/// is its own, not the shop's database).
pub struct Sandbox {
    /// The mini-program's appid (the merchant's WeChat Pay appid too).
    pub wechat_appid: String,
    pub wechat_app_secret: String,
    /// The merchant's Official Account: bound to its WeChat Pay (the shop's own cashier
    /// pays under it) and to Ping++'s `wx_pub` channel; its web OAuth hands out openids.
    pub official_account_appid: String,
    pub official_account_secret: String,
    /// The shop's host: the Official Account's web-page domain (网页授权域名) and the H5
    /// payment domain, the only places WeChat sends a browser back to.
    pub shop_domain: String,
    pub wechat_mch_id: String,
    pub wechat_key: String,
    pub pingpp_app_id: String,
    pub pingpp_secret_key: String,
    /// Where Ping++ posts webhooks (the shop's `/home/notify/pingpp`).
    pub pingpp_webhook_url: String,
    /// The sandbox's own base URL, for credential links.
    pub base_url: String,
    pub platform_key: RsaPrivateKey,
    pub merchant_public_key: Option<RsaPublicKey>,
    /// APIv3: the merchant key it checks requests with, and its own signing keys.
    pub v3: wxpay_v3::Platform,
    /// Alipay: the app's public key it checks requests with, its own signing key, the
    /// certificate SNs of certificate mode.
    pub alipay: alipay::Platform,
    pub retry_divisor: u32,
    pub http: reqwest::Client,
    state: Mutex<State>,
}

impl Sandbox {
    pub fn new(
        config: &Config,
        base_url: String,
        shop_url: &str,
        platform_key: RsaPrivateKey,
        merchant_public_key: Option<RsaPublicKey>,
        platforms: Platforms,
        http: reqwest::Client,
    ) -> Arc<Sandbox> {
        Arc::new(Sandbox {
            wechat_appid: config.wechat.appid.clone(),
            wechat_app_secret: config.wechat.app_secret.clone(),
            official_account_appid: config.wechat.oa_appid.clone(),
            official_account_secret: config.wechat.oa_app_secret.clone(),
            shop_domain: reqwest::Url::parse(shop_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default(),
            wechat_mch_id: config.wechat.mch_id.clone(),
            wechat_key: config.wechat.api_key.clone(),
            pingpp_app_id: config.pingpp.app_id.clone(),
            pingpp_secret_key: config.pingpp.secret_key.clone(),
            pingpp_webhook_url: format!("{shop_url}/home/notify/pingpp"),
            base_url,
            platform_key,
            merchant_public_key,
            v3: platforms.v3,
            alipay: platforms.alipay,
            retry_divisor: config.sandbox.retry_divisor.max(1),
            http,
            state: Mutex::new(State::default()),
        })
    }

    /// The sandbox's clock (unix seconds): the real one, moved ahead by the control API.
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.state().clock_offset
    }

    /// Forgets every trade, refund and delivery, as a sandbox restarted would (its faults
    /// and certificates stay).
    pub fn forget(&self) {
        let mut st = self.state();
        let rules = std::mem::take(&mut st.rules);
        let v3_rotation = st.v3_rotation;
        *st = State {
            rules,
            v3_rotation,
            ..State::default()
        };
    }

    /// Moves every WeChat and Alipay trade and refund `seconds` into the past (their bill
    /// day with them), while the clock stays: APIv3 answers must be signed, and Alipay
    /// requests stamped, close to the other side's clock, so a test cannot move the clock a
    /// day on for a bill.
    pub fn age_trades(&self, seconds: i64) {
        let mut st = self.state();
        let shift = |t: &str| {
            let at = chrono::NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S").ok()?;
            Some(
                (at - chrono::Duration::seconds(seconds))
                    .format("%Y%m%d%H%M%S")
                    .to_string(),
            )
        };
        for o in st.wx.values_mut() {
            o.created_at -= seconds;
            o.time_end = o.time_end.as_deref().and_then(shift);
        }
        for r in st.wx_refunds.values_mut() {
            r.created_at -= seconds;
        }
        let back = |t: &mut Option<i64>| *t = t.map(|at| at - seconds);
        for t in st.alipay.trades.values_mut() {
            t.requested_at -= seconds;
            t.expire_at -= seconds;
            back(&mut t.gmt_create);
            back(&mut t.gmt_payment);
            back(&mut t.gmt_close);
        }
        for r in &mut st.alipay.refunds {
            r.at -= seconds;
        }
    }

    /// Counts a refund request of `trade` against the refund_system_errors fault: true when
    /// this one must be answered with an error.
    pub fn refund_error_due(&self, trade: &str, faults: &Faults) -> bool {
        let mut st = self.state();
        let n = st.refund_errors.entry(trade.to_string()).or_insert(0);
        if *n < faults.refund_system_errors {
            *n += 1;
            return true;
        }
        false
    }

    /// The state, even if a panicking thread poisoned the lock (the data stays consistent:
    /// every change is a single insert or field write).
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `appid` is bound to the merchant (its mini-program or its Official Account):
    /// WeChat Pay refuses any other ("appid和mch_id不匹配").
    pub fn bound_appid(&self, appid: &str) -> bool {
        appid == self.wechat_appid || appid == self.official_account_appid
    }

    /// Whether `openid` was issued under `appid`.
    pub fn openid_of_app(&self, openid: &str, appid: &str) -> bool {
        self.state().openids.get(openid).map(String::as_str) == Some(appid)
    }
}

/// Fen as the platforms' yuan string (`0.01`).
pub fn yuan(fen: i64) -> String {
    crate::domain::Money::from_fen(fen).yuan()
}

/// Unix seconds as Beijing wall-clock time.
pub fn beijing_time(unix: i64) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .with_timezone(&crate::domain::shanghai())
        .naive_local()
}

/// `len` random characters from `[0-9A-Za-z]`.
pub fn random_id(len: usize) -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// `len` random decimal digits.
pub fn random_digits(len: usize) -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..len)
        .map(|_| char::from(b'0' + r.gen_range(0..10u8)))
        .collect()
}

/// How long the platforms keep a prepay_id or NATIVE code_url usable (seconds).
pub const CREDENTIAL_LIFE: i64 = 2 * 3600;
/// How long an H5 payment's page (`mweb_url` / `h5_url`) can be opened (seconds).
pub const H5_URL_LIFE: i64 = 5 * 60;

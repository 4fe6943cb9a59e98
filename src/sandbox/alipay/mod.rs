//! Alipay OpenAPI as the platform answers it on `gateway.do`: GET or POST, parameters in the
//! query and/or an x-www-form-urlencoded body; the common parameters and the app's RSA2
//! signature (every parameter but `sign`, empties dropped, sorted, raw values) checked with
//! the app public key, and in certificate mode `app_cert_sn` / `alipay_root_cert_sn`;
//! answers `{"<method>_response":{…},"sign":"…"}` signed over the exact text of the response
//! object with the sandbox's Alipay key. The trade methods, the QR / cashier pages and the
//! notifications are in `trade.rs`, refunds in `refund.rs`. Written from the protocol fact
//! sheet and sharing nothing with the shop's Alipay client, so the two cannot agree on one
//! mistake, but the certificate SNs of `payment::x509` (python-alipay-sdk checks those). May
//! import payment::pingpp::sign (RSA), payment::x509, config, assets and domain.

pub mod bill;
pub mod refund;
pub mod trade;

use super::Sandbox;
use crate::assets::read_key;
use crate::config::Config;
use crate::payment::pingpp::sign::{self as rsa, RsaPrivateKey, RsaPublicKey};
use crate::payment::x509;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Request or notification parameters, sorted by key (ASCII) as Alipay signs them.
pub type Params = BTreeMap<String, String>;

/// The certificates the sandbox's Alipay issued to the app and signs with (certificate
/// mode): committed test certificates from one throwaway CA.
pub const APP_CERT: &str = "keys/sandbox/alipay_app_cert.pem";
pub const ALIPAY_CERT: &str = "keys/sandbox/alipay_platform_cert.pem";
pub const ROOT_CERT: &str = "keys/sandbox/alipay_root_cert.pem";

/// How far a request's `timestamp` (Beijing time) may be from the sandbox clock. Alipay's
/// tolerance is not published (only its error, `isv.invalid-timestamp`, is): 10 minutes is
/// the sandbox's choice, so a client writing UTC wall time (8 hours off) is refused.
pub const TIMESTAMP_SKEW_SECONDS: i64 = 10 * 60;

/// Certificate mode: the SNs the platform expects of requests and announces on answers.
#[derive(Debug, Clone)]
pub struct CertSns {
    pub app_cert_sn: String,
    pub alipay_root_cert_sn: String,
    pub alipay_cert_sn: String,
}

/// The app the sandbox's Alipay knows, and its own keys.
pub struct Platform {
    pub app_id: String,
    pub seller_id: String,
    pub app_public_key: RsaPublicKey,
    pub private_key: RsaPrivateKey,
    /// Set when the shop is configured in certificate mode (`alipay.app_cert` …).
    pub certs: Option<CertSns>,
}

impl Platform {
    /// The app's id, PID and public key from the configuration; the platform's key and
    /// certificates from the embedded sandbox keys.
    pub fn load(config: &Config) -> Result<Platform, (String, String)> {
        fn read(path: &str) -> Result<String, (String, String)> {
            read_key(path).map_err(|e| (path.to_string(), e.to_string()))
        }
        fn err(path: &str) -> impl Fn(rsa::KeyError) -> (String, String) + '_ {
            move |e| (path.to_string(), e.to_string())
        }
        let sb = &config.sandbox;
        let app_public_key = rsa::public_key(&read(&sb.alipay_app_public_key)?)
            .map_err(err(&sb.alipay_app_public_key))?;
        let private_key = rsa::private_key(&read(&sb.alipay_private_key)?)
            .map_err(err(&sb.alipay_private_key))?;
        let certs = if config.alipay.certificate_mode() {
            Some(CertSns {
                app_cert_sn: x509::alipay_cert_sn(&read(APP_CERT)?).map_err(err(APP_CERT))?,
                alipay_root_cert_sn: x509::alipay_root_cert_sn(&read(ROOT_CERT)?)
                    .map_err(err(ROOT_CERT))?,
                alipay_cert_sn: x509::alipay_cert_sn(&read(ALIPAY_CERT)?)
                    .map_err(err(ALIPAY_CERT))?,
            })
        } else {
            None
        };
        Ok(Platform {
            app_id: config.alipay.app_id.clone(),
            seller_id: config.alipay.seller_id.clone(),
            app_public_key,
            private_key,
            certs,
        })
    }
}

/// What Alipay signs and verifies: every parameter but those `skip`ped, empties dropped,
/// sorted, `k=v` joined with `&`, raw values.
pub fn sign_content(params: &Params, skip: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A failure: Alipay's code, sub_code and sub_msg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub sub_code: &'static str,
    pub sub_msg: String,
}

impl Failure {
    fn new(code: &'static str, sub_code: &'static str, sub_msg: impl Into<String>) -> Failure {
        Failure {
            code,
            sub_code,
            sub_msg: sub_msg.into(),
        }
    }

    /// 40001: a required common parameter is missing.
    pub fn missing(sub_code: &'static str, what: &str) -> Failure {
        Failure::new("40001", sub_code, format!("缺少{what}参数"))
    }

    /// 40002: a common parameter is invalid.
    pub fn invalid(sub_code: &'static str, sub_msg: impl Into<String>) -> Failure {
        Failure::new("40002", sub_code, sub_msg)
    }

    /// 40004: the business refuses (`ACQ.*`).
    pub fn business(sub_code: &'static str, sub_msg: impl Into<String>) -> Failure {
        Failure::new("40004", sub_code, sub_msg)
    }

    /// `ACQ.INVALID_PARAMETER`.
    pub fn parameter(sub_msg: impl Into<String>) -> Failure {
        Failure::business("ACQ.INVALID_PARAMETER", sub_msg)
    }

    fn msg(&self) -> &'static str {
        match self.code {
            "20000" => "Service Currently Unavailable",
            "40001" => "Missing Required Arguments",
            "40002" => "Invalid Arguments",
            "40004" => "Business Failed",
            "40006" => "Insufficient Permissions",
            _ => "Unknown",
        }
    }
}

/// One answer field, in the order written.
pub type Field = (&'static str, Value);

/// A checked request: its parameters and its `biz_content` object.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: Params,
    pub biz: serde_json::Map<String, Value>,
}

impl Call {
    /// A common parameter (empty when absent).
    pub fn param(&self, k: &str) -> &str {
        self.params.get(k).map(String::as_str).unwrap_or_default()
    }

    /// A `biz_content` field as text: strings as they are, numbers as written, else empty.
    pub fn biz(&self, k: &str) -> String {
        match self.biz.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    }
}

/// The methods the sandbox plays.
pub const METHODS: [&str; 8] = [
    "alipay.trade.precreate",
    "alipay.trade.page.pay",
    "alipay.trade.wap.pay",
    "alipay.trade.query",
    "alipay.trade.close",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.data.dataservice.bill.downloadurl.query",
];

/// Whether a method is a browser form (page.pay, wap.pay): its answer is a page, not JSON.
pub fn is_page_method(method: &str) -> bool {
    matches!(method, "alipay.trade.page.pay" | "alipay.trade.wap.pay")
}

/// What `gateway.do` answers.
#[derive(Debug)]
pub enum GatewayReply {
    /// A signed JSON answer (`text/html;charset=utf-8`, as the live gateway labels it),
    /// held back `hang_ms` first.
    Json { body: String, hang_ms: u64 },
    /// page.pay / wap.pay accepted: the browser goes on to the cashier.
    Cashier(String),
    /// page.pay / wap.pay refused: the error page Alipay shows the shopper.
    ErrorPage(Failure),
}

/// The parameters of a gateway request: the query's, then the form body's.
pub fn parse_params(query: &str, body: &[u8]) -> Result<Params, Failure> {
    let bad = |_| Failure::invalid("isv.invalid-parameter", "参数格式错误");
    let mut params: Params = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .map_err(bad)?
        .into_iter()
        .collect();
    if !body.is_empty() {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(bad)?;
        params.extend(form);
    }
    Ok(params)
}

impl Sandbox {
    /// `gateway.do`: checks the common parameters and the signature, then runs the method.
    pub fn ali_gateway(self: &std::sync::Arc<Self>, query: &str, body: &[u8]) -> GatewayReply {
        let params = match parse_params(query, body) {
            Ok(p) => p,
            Err(f) => return self.ali_error_response(&f),
        };
        let method = params.get("method").cloned().unwrap_or_default();
        if method.is_empty() {
            return self.ali_error_response(&Failure::missing("isv.missing-method", "方法名"));
        }
        if !METHODS.contains(&method.as_str()) {
            return self
                .ali_error_response(&Failure::invalid("isv.invalid-method", "不存在的方法名"));
        }
        let call = match self.ali_authenticate(&method, params) {
            Ok(c) => c,
            Err(f) if is_page_method(&method) => return GatewayReply::ErrorPage(f),
            Err(f) => return self.ali_json(&method, Err(f), 0, false),
        };
        let (answer, hang_ms) = match method.as_str() {
            "alipay.trade.page.pay" | "alipay.trade.wap.pay" => {
                return match self.ali_page_pay(&call) {
                    Ok(url) => GatewayReply::Cashier(url),
                    Err(f) => GatewayReply::ErrorPage(f),
                }
            }
            "alipay.trade.precreate" => (self.ali_precreate(&call), 0),
            "alipay.trade.query" => (self.ali_query(&call), 0),
            "alipay.trade.close" => (self.ali_close(&call), 0),
            "alipay.trade.refund" => self.ali_refund(&call),
            "alipay.data.dataservice.bill.downloadurl.query" => (self.ali_bill_url(&call), 0),
            // alipay.trade.fastpay.refund.query, the last of METHODS.
            _ => (self.ali_refund_query(&call), 0),
        };
        let faults = self.state().faults_for(&call.biz("out_trade_no"));
        self.ali_json(&method, answer, hang_ms, faults.alipay_escaped_slashes)
    }

    /// The common parameters, certificate SNs and signature; the request with its
    /// `biz_content` parsed.
    fn ali_authenticate(&self, method: &str, params: Params) -> Result<Call, Failure> {
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
        let p = &self.alipay;
        if get("app_id").is_empty() {
            return Err(Failure::missing("isv.missing-app-id", "AppID"));
        }
        if get("app_id") != p.app_id {
            return Err(Failure::invalid("isv.invalid-app-id", "无效的AppID参数"));
        }
        if !get("charset").eq_ignore_ascii_case("utf-8") {
            return Err(Failure::invalid("isv.invalid-charset", "字符集错误"));
        }
        if get("sign").is_empty() {
            return Err(Failure::missing("isv.missing-signature", "签名"));
        }
        match get("sign_type") {
            "" => return Err(Failure::missing("isv.missing-signature-type", "签名类型")),
            "RSA2" => {}
            _ => {
                return Err(Failure::invalid(
                    "isv.invalid-signature-type",
                    "无效的签名类型",
                ))
            }
        }
        let ts = get("timestamp");
        if ts.is_empty() {
            return Err(Failure::missing("isv.missing-timestamp", "时间戳"));
        }
        let fresh = beijing(ts, "%Y-%m-%d %H:%M:%S")
            .is_some_and(|t| (t - self.now()).abs() <= TIMESTAMP_SKEW_SECONDS);
        if !fresh || ts.len() != 19 {
            return Err(Failure::invalid(
                "isv.invalid-timestamp",
                "非法的时间戳参数",
            ));
        }
        match get("version") {
            "" => return Err(Failure::missing("isv.missing-version", "版本")),
            "1.0" => {}
            _ => {
                return Err(Failure::invalid(
                    "isv.invalid-parameter",
                    "version 参数无效",
                ))
            }
        }
        if !get("format").is_empty() && !get("format").eq_ignore_ascii_case("json") {
            return Err(Failure::invalid("isv.invalid-format", "参数格式错误"));
        }
        match &p.certs {
            Some(c) => {
                if get("app_cert_sn") != c.app_cert_sn {
                    return Err(Failure::invalid(
                        "isv.app-cert-not-exist",
                        "应用公钥证书不存在",
                    ));
                }
                if get("alipay_root_cert_sn") != c.alipay_root_cert_sn {
                    return Err(Failure::invalid(
                        "isv.invalid-alipay-root-cert-sn",
                        "无效支付宝根证书序列号",
                    ));
                }
            }
            // A public-key app has no certificate: an SN names nothing it knows.
            None if !get("app_cert_sn").is_empty() => {
                return Err(Failure::invalid(
                    "isv.app-cert-not-exist",
                    "应用公钥证书不存在",
                ))
            }
            None => {}
        }
        let content = sign_content(&params, &["sign"]);
        if !rsa::verify(&p.app_public_key, content.as_bytes(), get("sign")) {
            return Err(Failure::invalid(
                "isv.invalid-signature",
                format!("验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}"),
            ));
        }
        let biz = match serde_json::from_str::<Value>(get("biz_content")) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Failure::parameter("biz_content 参数无效（应为 JSON 对象）")),
        };
        Ok(Call {
            method: method.to_string(),
            params,
            biz,
        })
    }

    /// Signs `object` (its exact text) and wraps it as Alipay does: the response object
    /// first, `alipay_cert_sn` in certificate mode, `sign` last. `escaped`: the object goes
    /// out with `/` written `\/`, signed as it was (the answers Java's SDK verifies again
    /// with `\/` turned back into `/`).
    pub fn ali_envelope(&self, key: &str, object: &str, escaped: bool) -> String {
        let sign = rsa::sign(&self.alipay.private_key, object.as_bytes()).unwrap_or_default();
        let object = if escaped {
            object.replace('/', "\\/")
        } else {
            object.to_string()
        };
        let cert = match &self.alipay.certs {
            Some(c) => format!(",\"alipay_cert_sn\":\"{}\"", c.alipay_cert_sn),
            None => String::new(),
        };
        format!("{{\"{key}\":{object}{cert},\"sign\":\"{sign}\"}}")
    }

    /// A method's signed answer: code 10000 with `fields`, or the failure.
    fn ali_json(
        &self,
        method: &str,
        answer: Result<Vec<Field>, Failure>,
        hang_ms: u64,
        escaped: bool,
    ) -> GatewayReply {
        let fields = match answer {
            Ok(mut fields) => {
                fields.splice(
                    0..0,
                    [
                        ("code", Value::from("10000")),
                        ("msg", Value::from("Success")),
                    ],
                );
                fields
            }
            Err(f) => failure_fields(&f),
        };
        let key = format!("{}_response", method.replace('.', "_"));
        GatewayReply::Json {
            body: self.ali_envelope(&key, &object(&fields), escaped),
            hang_ms,
        }
    }

    /// A gateway failure with no method to name: under `error_response`.
    fn ali_error_response(&self, f: &Failure) -> GatewayReply {
        GatewayReply::Json {
            body: self.ali_envelope("error_response", &object(&failure_fields(f)), false),
            hang_ms: 0,
        }
    }

    /// Signs notification or return parameters as Alipay does (all but `sign` and
    /// `sign_type`); `bad` signs something else, a signature that does not verify.
    pub fn ali_sign_params(&self, params: &mut Params, bad: bool) {
        let mut content = sign_content(params, &["sign", "sign_type"]);
        if bad {
            content.push_str("&tampered=1");
        }
        let sign = rsa::sign(&self.alipay.private_key, content.as_bytes()).unwrap_or_default();
        params.insert("sign".into(), sign);
    }
}

fn failure_fields(f: &Failure) -> Vec<Field> {
    vec![
        ("code", Value::from(f.code)),
        ("msg", Value::from(f.msg())),
        ("sub_code", Value::from(f.sub_code)),
        ("sub_msg", Value::from(f.sub_msg.clone())),
    ]
}

/// A JSON object with its fields in the given order (the text that gets signed).
pub fn object(fields: &[Field]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A Beijing wall-clock time in `format` as unix seconds.
pub fn beijing(t: &str, format: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(t, format)
        .ok()?
        .and_local_timezone(crate::domain::shanghai())
        .single()
        .map(|d| d.timestamp())
}

/// Unix seconds as Alipay writes times: `yyyy-MM-dd HH:mm:ss`, Beijing.
pub fn beijing_text(unix: i64) -> String {
    super::beijing_time(unix)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub use super::yuan;

/// A trade as the sandbox's Alipay keeps it.
#[derive(Debug, Clone)]
pub struct Trade {
    pub out_trade_no: String,
    pub trade_no: String,
    /// The method that made it (`alipay.trade.precreate`, `…page.pay`, `…wap.pay`).
    pub method: String,
    pub total: i64,
    pub subject: String,
    pub body: String,
    pub notify_url: String,
    pub return_url: String,
    pub passback_params: String,
    /// The code in the QR or cashier URL (`{base}/alipay/qr/{code}`, `…/cashier/{code}`).
    pub code: String,
    /// precreate: the QR's text.
    pub qr_code: Option<String>,
    /// The trade exists for queries once the buyer scanned the QR or reached the cashier.
    pub created: bool,
    /// WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_CLOSED or TRADE_FINISHED.
    pub status: &'static str,
    /// When the request came (sandbox clock).
    pub requested_at: i64,
    /// Unpaid after this: closed (timeout_express / time_expire).
    pub expire_at: i64,
    /// precreate: the QR cannot be scanned after this (qr_code_timeout_express, ≤ 2 h).
    pub qr_expire_at: Option<i64>,
    pub gmt_create: Option<i64>,
    pub gmt_payment: Option<i64>,
    pub gmt_close: Option<i64>,
    pub buyer_id: String,
    /// Refunded so far, fen.
    pub refunded: i64,
}

impl Trade {
    /// Closes an unpaid trade whose time is up (Alipay's timeout close).
    pub fn expire(&mut self, now: i64) {
        if self.status == "WAIT_BUYER_PAY" && now > self.expire_at {
            self.status = "TRADE_CLOSED";
            self.gmt_close = Some(self.expire_at);
        }
    }
}

/// A refund as the sandbox's Alipay keeps it.
#[derive(Debug, Clone)]
pub struct Refund {
    pub out_trade_no: String,
    pub out_request_no: String,
    pub amount: i64,
    pub at: i64,
}

/// Alipay's trades (by out_trade_no) and refunds (by out_trade_no and out_request_no).
#[derive(Debug, Default)]
pub struct AliState {
    pub trades: HashMap<String, Trade>,
    pub refunds: Vec<Refund>,
}

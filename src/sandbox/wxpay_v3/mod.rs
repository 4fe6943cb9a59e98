//! WeChat Pay APIv3 as the platform answers it, on the paths of `api.mch.weixin.qq.com`
//! (`/v3/pay/transactions/{jsapi,native,h5}`, the queries by out_trade_no and by
//! transaction_id, close, `/v3/refund/domestic/refunds` and its query, `/v3/certificates`).
//!
//! Every request's `Authorization` (`WECHATPAY2-SHA256-RSA2048`, over
//! `METHOD\nURL\ntimestamp\nnonce\nbody\n`) is checked with the merchant public key and
//! serial, within 5 minutes of the sandbox clock; every answer is signed
//! (`timestamp\nnonce\nbody\n`) with the key of the merchant's mode: the WeChat Pay public
//! key's private half (serial = its `PUB_KEY_ID_…`) when the shop is configured with a public
//! key, else the current platform certificate. Notifications are JSON envelopes whose
//! `resource` is AES-256-GCM under the APIv3 key, signed afresh on each send.
//!
//! Trades (prepay, query objects, close) are in `trade`, refunds in `refund`; this module
//! holds the keys, the signing both ways, the AEAD, routing and certificates.
//!
//! Orders share the v2 store (`State::wx`, marked `WxApi::V3`), so the phone page and
//! `/sandbox/control/pay` pay them, and refunds share `State::wx_refunds`. Certificates
//! rotate by `/sandbox/control/rotate_cert` (`Rotation`). Written against the fact sheet,
//! not the shop's client: the two must not share a mistake. May import payment (RSA, PEM and
//! `x509` only) and config.

mod refund;
mod trade;

use super::{random_id, Faults, Sandbox};
use crate::assets::read_key;
use crate::config::Config;
use crate::payment::pingpp::sign::{self as rsa, RsaPrivateKey, RsaPublicKey};
use crate::payment::x509;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;

/// The only signature scheme of APIv3 requests, answers and notifications.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// The sandbox's WeChat Pay public key id (public-key mode).
pub use crate::config::SANDBOX_V3_PUBLIC_KEY_ID as PUBLIC_KEY_ID;
/// How far a request's timestamp may be from the platform's clock (seconds).
pub const CLOCK_SKEW: i64 = 5 * 60;
/// The `v3_stale_timestamp` fault's age (seconds).
const STALE: i64 = 10 * 60;

const PUBLIC_KEY_PRIVATE: &str = "keys/sandbox/wechat_v3_pubkey_private.pem";
/// The platform's certificates in issue order: the first was retired before the sandbox
/// started (the `v3_retired_cert` fault signs with it), the second is current at start, the
/// others wait for `rotate_cert`.
const CERTIFICATES: [(&str, &str); 4] = [
    (
        "keys/sandbox/wechat_v3_platform_1_cert.pem",
        "keys/sandbox/wechat_v3_platform_1_private.pem",
    ),
    (
        "keys/sandbox/wechat_v3_platform_2_cert.pem",
        "keys/sandbox/wechat_v3_platform_2_private.pem",
    ),
    (
        "keys/sandbox/wechat_v3_platform_3_cert.pem",
        "keys/sandbox/wechat_v3_platform_3_private.pem",
    ),
    (
        "keys/sandbox/wechat_v3_platform_4_cert.pem",
        "keys/sandbox/wechat_v3_platform_4_private.pem",
    ),
];

/// One platform certificate and its private key.
pub struct PlatformCert {
    pub info: x509::CertInfo,
    pub pem: String,
    key: RsaPrivateKey,
}

/// The platform side of one merchant's APIv3: the merchant key it checks requests with and
/// the keys it signs with.
pub struct Platform {
    merchant_key: RsaPublicKey,
    merchant_serial: String,
    apiv3_key: String,
    /// Public-key mode: the WeChat Pay public key's private half.
    public_key: Option<RsaPrivateKey>,
    certs: Vec<PlatformCert>,
}

/// A key file the platform could not use: (path, why).
pub type LoadError = (String, String);

impl Platform {
    /// Whether `signature` is the merchant's RSA signature of `message` (a JSAPI paySign).
    pub fn merchant_signed(&self, message: &[u8], signature: &str) -> bool {
        rsa::verify(&self.merchant_key, message, signature)
    }

    /// The merchant's key and serial from the configuration, the platform's own keys from
    /// the embedded sandbox keys. Public-key mode when the shop is configured with a WeChat
    /// Pay public key.
    pub fn load(config: &Config) -> Result<Platform, LoadError> {
        fn read(path: &str) -> Result<String, LoadError> {
            read_key(path).map_err(|e| (path.to_string(), e.to_string()))
        }
        fn private(path: &str) -> Result<RsaPrivateKey, LoadError> {
            rsa::private_key(&read(path)?).map_err(|e| (path.to_string(), e.to_string()))
        }
        let path = &config.sandbox.wechat_v3_merchant_public_key;
        let merchant_key =
            rsa::public_key(&read(path)?).map_err(|e| (path.clone(), e.to_string()))?;
        let mut certs = Vec::new();
        for (cert, key) in CERTIFICATES {
            let pem = read(cert)?;
            let info = x509::cert_info(&pem).map_err(|e| (cert.to_string(), e.to_string()))?;
            certs.push(PlatformCert {
                info,
                pem,
                key: private(key)?,
            });
        }
        let public_key = match config.wechat.v3_public_key {
            Some(_) => Some(private(PUBLIC_KEY_PRIVATE)?),
            None => None,
        };
        Ok(Platform {
            merchant_key,
            merchant_serial: config.wechat.v3_cert_serial.clone(),
            apiv3_key: config.wechat.apiv3_key.clone(),
            public_key,
            certs,
        })
    }

    pub fn public_key_mode(&self) -> bool {
        self.public_key.is_some()
    }

    pub fn certificates(&self) -> &[PlatformCert] {
        &self.certs
    }
}

/// Which platform certificates are current, listed (valid for verifying) and retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Index in `CERTIFICATES` of the certificate that signs.
    pub current: usize,
    /// The one before `current` is still listed (the overlap of a rotation).
    pub overlap: bool,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            current: 1,
            overlap: false,
        }
    }
}

impl Rotation {
    /// Indexes of the listed certificates, oldest first.
    pub fn listed(&self) -> Vec<usize> {
        let first = if self.overlap {
            self.current.saturating_sub(1)
        } else {
            self.current
        };
        (first..=self.current).collect()
    }

    /// The most recently retired certificate.
    pub fn retired(&self) -> usize {
        let listed = self.listed();
        listed[0].saturating_sub(1)
    }

    /// One `rotate_cert`: ends an overlap (retiring the old certificate), else starts the
    /// next certificate with the old one still listed; `retire` ends an overlap only.
    pub fn rotate(&mut self, retire: bool, count: usize) -> Result<(), &'static str> {
        if self.overlap || retire {
            self.overlap = false;
            return Ok(());
        }
        if self.current + 1 >= count {
            return Err("no certificate left to start");
        }
        self.current += 1;
        self.overlap = true;
        Ok(())
    }
}

/// How one answer or notification send is signed (from its trade's faults).
#[derive(Debug, Clone, Copy, Default)]
pub struct Signing {
    pub probe: bool,
    pub stale: bool,
    pub corrupt: bool,
    pub retired: bool,
}

impl Signing {
    /// Answers get the APIv3 probe and stale-timestamp faults only: `bad_signature` and
    /// `v3_retired_cert` are about notifications, as in v2.
    fn answer(f: &Faults) -> Signing {
        Signing {
            probe: f.v3_signtest,
            stale: f.v3_stale_timestamp,
            corrupt: false,
            retired: false,
        }
    }

    fn notification(f: &Faults) -> Signing {
        Signing {
            corrupt: f.bad_signature,
            retired: f.v3_retired_cert,
            ..Signing::answer(f)
        }
    }

    /// A probe goes out once: the platform re-sends with a real signature after the
    /// merchant refuses it.
    pub fn for_try(&self, try_no: usize) -> Signing {
        Signing {
            probe: self.probe && try_no == 0,
            ..*self
        }
    }
}

/// An APIv3 request as it reached the sandbox.
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query as the merchant signed them (`/v3/…`), undecoded.
    pub target: &'a str,
    pub authorization: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub body: &'a [u8],
}

/// The sandbox's answer: status, JSON body ("" for 204) and signature headers; `hang_ms`
/// holds it back (the refund_hang_ms fault).
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// A bill file: plain text, not JSON.
    pub text: bool,
    pub headers: Vec<(&'static str, String)>,
    pub hang_ms: u64,
}

/// An error as WeChat answers it: HTTP status and `{"code","message"}`.
#[derive(Debug)]
struct V3Error {
    status: u16,
    code: &'static str,
    message: String,
}

fn err(status: u16, code: &'static str, message: impl Into<String>) -> V3Error {
    V3Error {
        status,
        code,
        message: message.into(),
    }
}

fn param(message: impl Into<String>) -> V3Error {
    err(400, "PARAM_ERROR", message)
}

fn sign_error(message: &str) -> V3Error {
    err(401, "SIGN_ERROR", message)
}

fn order_not_exist() -> V3Error {
    err(404, "ORDER_NOT_EXIST", "订单不存在")
}

/// What a successful call produced: status, JSON (None for 204), the trade whose faults
/// apply, and how long to hold the answer.
struct Done {
    status: u16,
    body: Option<Value>,
    trade: String,
    hang_ms: u64,
}

fn ok(body: Value, trade: &str) -> Done {
    Done {
        status: 200,
        body: Some(body),
        trade: trade.to_string(),
        hang_ms: 0,
    }
}

enum Route {
    Prepay(&'static str),
    QueryByNo(String),
    QueryById(String),
    Close(String),
    Refund,
    RefundQuery(String),
    Certificates,
    TradeBill,
    BillFile,
}

/// `%XX` escapes of a path segment decoded (`|` may come as `%7C`); None if not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn route(method: &str, path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.strip_prefix("/v3/")?.split('/').collect();
    let seg = |i: usize| segs.get(i).and_then(|s| percent_decode(s));
    Some(match (method, segs.as_slice()) {
        ("POST", ["pay", "transactions", "jsapi"]) => Route::Prepay("JSAPI"),
        ("POST", ["pay", "transactions", "native"]) => Route::Prepay("NATIVE"),
        ("POST", ["pay", "transactions", "h5"]) => Route::Prepay("MWEB"),
        ("GET", ["pay", "transactions", "out-trade-no", _]) => Route::QueryByNo(seg(3)?),
        ("GET", ["pay", "transactions", "id", _]) => Route::QueryById(seg(3)?),
        ("POST", ["pay", "transactions", "out-trade-no", _, "close"]) => Route::Close(seg(3)?),
        ("POST", ["refund", "domestic", "refunds"]) => Route::Refund,
        ("GET", ["refund", "domestic", "refunds", _]) => Route::RefundQuery(seg(3)?),
        ("GET", ["certificates"]) => Route::Certificates,
        ("GET", ["bill", "tradebill"]) => Route::TradeBill,
        ("GET", ["billdownload", "file"]) => Route::BillFile,
        _ => return None,
    })
}

/// The `key="value"` pairs of an `Authorization` header after the scheme, in any order.
fn auth_fields(header: &str) -> Option<std::collections::HashMap<&str, &str>> {
    let rest = header.strip_prefix(SCHEME)?.strip_prefix(' ')?;
    rest.split(',')
        .map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            Some((k.trim(), v.trim().strip_prefix('"')?.strip_suffix('"')?))
        })
        .collect()
}

/// `Accept` admits JSON (`application/json`, `application/*`, `*/*`, or a list with one).
fn accepts_json(accept: &str) -> bool {
    accept.split(',').any(|t| {
        let t = t.split(';').next().unwrap_or_default().trim();
        t.eq_ignore_ascii_case("application/json") || t == "application/*" || t == "*/*"
    })
}

/// Unix seconds as RFC 3339 in Beijing time (`2026-12-01T12:00:00+08:00`).
pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .with_timezone(&crate::domain::shanghai())
        .format("%Y-%m-%dT%H:%M:%S+08:00")
        .to_string()
}

/// AES-256-GCM as APIv3 uses it: base64(ciphertext ‖ tag) under the APIv3 key, with a
/// 12-character nonce and `associated_data`.
pub fn aead_encrypt(apiv3_key: &str, nonce: &str, aad: &str, plaintext: &[u8]) -> Option<String> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, apiv3_key.as_bytes()).ok()?);
    let nonce = Nonce::try_assume_unique_for_key(nonce.as_bytes()).ok()?;
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(aad.as_bytes()), &mut buf)
        .ok()?;
    Some(B64.encode(buf))
}

fn str_field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// A required string field of at most `max` bytes.
fn required(v: &Value, k: &str, max: usize) -> Result<String, V3Error> {
    match v.get(k) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= max => Ok(s.clone()),
        Some(Value::String(s)) if !s.is_empty() => Err(param(format!("{k} 长度超过 {max} 字节"))),
        Some(Value::String(_)) | None => Err(param(format!("缺少参数 {k}"))),
        Some(_) => Err(param(format!("{k} 必须为字符串"))),
    }
}

/// An optional string field of at most `max` bytes ("" when absent).
fn optional(v: &Value, k: &str, max: usize) -> Result<String, V3Error> {
    match v.get(k) {
        None => Ok(String::new()),
        Some(_) => required(v, k, max),
    }
}

/// Strings with a 4-byte UTF-8 character (emoji) or a JSON null anywhere are refused.
fn clean_json(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => s.chars().all(|c| c.len_utf8() <= 3),
        Value::Array(a) => a.iter().all(clean_json),
        Value::Object(o) => o.values().all(clean_json),
        _ => true,
    }
}

impl Sandbox {
    /// Answers one APIv3 request.
    pub fn v3_handle(self: &Arc<Self>, req: &Request) -> Reply {
        let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
        if matches!(route(req.method, path), Some(Route::BillFile)) {
            let (status, body) = match self.v3_bill_file(req, query) {
                Ok(text) => (200, text),
                Err(e) => (
                    e.status,
                    json!({"code": e.code, "message": e.message}).to_string(),
                ),
            };
            return Reply {
                status,
                text: status == 200,
                body,
                headers: Vec::new(),
                hang_ms: 0,
            };
        }
        let (done, trade) = match self.v3_answer(req) {
            Ok(d) => {
                let trade = d.trade.clone();
                (d, trade)
            }
            Err(e) => (
                Done {
                    status: e.status,
                    body: Some(json!({"code": e.code, "message": e.message})),
                    trade: String::new(),
                    hang_ms: 0,
                },
                String::new(),
            ),
        };
        let body = done.body.map(|b| b.to_string()).unwrap_or_default();
        let faults = self.state().faults_for(&trade);
        let headers = self.v3_headers(&body, &Signing::answer(&faults));
        Reply {
            status: done.status,
            body,
            text: false,
            headers,
            hang_ms: done.hang_ms,
        }
    }

    /// `GET /v3/billdownload/file?token=`: the bill file a tradebill answer pointed to,
    /// for five minutes; WeChat does not sign it (its SHA1 was in the signed answer).
    fn v3_bill_file(&self, req: &Request, query: &str) -> Result<String, V3Error> {
        self.v3_authenticate(req)?;
        let q: std::collections::HashMap<String, String> =
            serde_urlencoded::from_str(query).unwrap_or_default();
        let token = q.get("token").map(String::as_str).unwrap_or_default();
        let now = self.now();
        let state = self.state();
        match state.bills.get(token) {
            Some((text, made)) if now - made <= 300 => Ok(text.clone()),
            _ => Err(err(404, "RESOURCE_NOT_EXISTS", "账单下载链接无效或已过期")),
        }
    }

    /// `GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL`: the day's bill's SHA1
    /// and where to download it.
    fn v3_trade_bill(
        &self,
        query: &std::collections::HashMap<String, String>,
    ) -> Result<Done, V3Error> {
        let date = query
            .get("bill_date")
            .map(String::as_str)
            .unwrap_or_default();
        let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|_| param("bill_date 格式应为 YYYY-MM-DD"))?;
        if !matches!(
            query.get("bill_type").map(String::as_str),
            None | Some("ALL")
        ) {
            return Err(param("沙箱只生成 ALL 类型的账单"));
        }
        let text = self.wx_bill(day).map_err(|why| match why {
            super::wxbill::NoBill::Creating => {
                err(400, "STATEMENT_CREATING", "账单生成中，请稍后再试")
            }
            super::wxbill::NoBill::Empty => err(400, "NO_STATEMENT_EXIST", "账单文件不存在"),
        })?;
        use sha1::Digest;
        let hash = hex::encode(sha1::Sha1::digest(text.as_bytes()));
        let token = random_id(32);
        let now = self.now();
        self.state().bills.insert(token.clone(), (text, now));
        let url = format!("{}/wxpay/v3/billdownload/file?token={token}", self.base_url);
        Ok(ok(
            json!({"hash_type": "SHA1", "hash_value": hash, "download_url": url}),
            "",
        ))
    }

    fn v3_answer(self: &Arc<Self>, req: &Request) -> Result<Done, V3Error> {
        let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
        let route = route(req.method, path)
            .ok_or_else(|| err(404, "RESOURCE_NOT_EXISTS", "请求的资源不存在"))?;
        let has = |h: Option<&str>| h.is_some_and(|v| !v.trim().is_empty());
        if !has(req.user_agent) || !req.accept.is_some_and(accepts_json) {
            return Err(err(400, "INVALID_REQUEST", "Http头缺少Accept或User-Agent"));
        }
        self.v3_authenticate(req)?;
        let query: std::collections::HashMap<String, String> =
            serde_urlencoded::from_str(query).unwrap_or_default();
        let body = || -> Result<Value, V3Error> {
            let v: Value =
                serde_json::from_slice(req.body).map_err(|_| param("请求体不是合法的 JSON"))?;
            if !v.is_object() {
                return Err(param("请求体必须是 JSON 对象"));
            }
            if !clean_json(&v) {
                return Err(param("字段不能为 null，字符串不能含 4 字节 UTF-8 字符"));
            }
            Ok(v)
        };
        let mchid = query.get("mchid").map(String::as_str);
        match route {
            Route::Prepay(kind) => self.v3_prepay(kind, &body()?),
            Route::QueryByNo(no) => self.v3_query(mchid, |o| o.out_trade_no == no),
            Route::QueryById(id) => {
                self.v3_query(mchid, |o| o.transaction_id.as_deref() == Some(id.as_str()))
            }
            Route::Close(no) => self.v3_close(&no, &body()?),
            Route::Refund => self.v3_refund(&body()?),
            Route::RefundQuery(rno) => self.v3_refund_query(&rno),
            Route::Certificates => self.v3_certificates(),
            Route::TradeBill => self.v3_trade_bill(&query),
            Route::BillFile => Err(err(404, "RESOURCE_NOT_EXISTS", "请求的资源不存在")),
        }
    }

    /// Checks `Authorization`: scheme, merchant, serial, timestamp window, RSA signature over
    /// the raw request target and body.
    fn v3_authenticate(&self, req: &Request) -> Result<(), V3Error> {
        let header = req
            .authorization
            .ok_or_else(|| sign_error("缺少 Authorization 头"))?;
        let f = auth_fields(header).ok_or_else(|| {
            sign_error("Authorization 格式错误，认证类型应为 WECHATPAY2-SHA256-RSA2048")
        })?;
        let field = |k: &str| f.get(k).copied().filter(|v| !v.is_empty());
        let (Some(mchid), Some(nonce), Some(signature), Some(timestamp), Some(serial)) = (
            field("mchid"),
            field("nonce_str"),
            field("signature"),
            field("timestamp"),
            field("serial_no"),
        ) else {
            return Err(sign_error(
                "Authorization 缺少 mchid、nonce_str、signature、timestamp 或 serial_no",
            ));
        };
        if mchid != self.wechat_mch_id {
            return Err(err(400, "MCH_NOT_EXISTS", "商户号不存在"));
        }
        if serial != self.v3.merchant_serial {
            return Err(sign_error("商户证书序列号有误"));
        }
        let ts: i64 = timestamp
            .parse()
            .map_err(|_| sign_error("timestamp 格式错误"))?;
        if (self.now() - ts).abs() > CLOCK_SKEW {
            return Err(sign_error("timestamp 与当前时间相差超过 5 分钟"));
        }
        let mut message =
            format!("{}\n{}\n{timestamp}\n{nonce}\n", req.method, req.target).into_bytes();
        message.extend_from_slice(req.body);
        message.push(b'\n');
        if !rsa::verify(&self.v3.merchant_key, &message, signature) {
            return Err(sign_error("错误的签名，验签失败"));
        }
        Ok(())
    }

    /// The signature headers of an answer or a notification send.
    pub fn v3_headers(&self, body: &str, how: &Signing) -> Vec<(&'static str, String)> {
        let rotation = self.state().v3_rotation;
        let cert = |i: usize| self.v3.certs.get(i);
        let (serial, key) = match (&self.v3.public_key, how.retired) {
            (_, true) => cert(rotation.retired()).map(|c| (c.info.serial.clone(), &c.key)),
            (Some(k), false) => Some((PUBLIC_KEY_ID.to_string(), k)),
            (None, false) => cert(rotation.current).map(|c| (c.info.serial.clone(), &c.key)),
        }
        .unzip();
        let timestamp = self.now() - if how.stale { STALE } else { 0 };
        let nonce = hex::encode_upper(rand::random::<[u8; 16]>());
        let mut message = format!("{timestamp}\n{nonce}\n{body}\n");
        if how.corrupt {
            message.push(' ');
        }
        let signature = if how.probe {
            format!("WECHATPAY/SIGNTEST/{}", random_id(40))
        } else {
            key.and_then(|k| rsa::sign(k, message.as_bytes()).ok())
                .unwrap_or_default()
        };
        vec![
            ("Wechatpay-Serial", serial.unwrap_or_default()),
            ("Wechatpay-Signature", signature),
            ("Wechatpay-Timestamp", timestamp.to_string()),
            ("Wechatpay-Nonce", nonce),
            ("Wechatpay-Signature-Type", SCHEME.to_string()),
            (
                "Request-ID",
                format!("08{}", hex::encode_upper(rand::random::<[u8; 15]>())),
            ),
        ]
    }

    /// A notification envelope: the plaintext encrypted under the APIv3 key.
    fn v3_event(
        &self,
        event_type: &str,
        summary: &str,
        original_type: &str,
        plaintext: &Value,
        bad_tag: bool,
    ) -> String {
        let nonce = random_id(12);
        let mut ciphertext = aead_encrypt(
            &self.v3.apiv3_key,
            &nonce,
            original_type,
            plaintext.to_string().as_bytes(),
        )
        .unwrap_or_default();
        if bad_tag {
            // Flip one bit of the tag (the last 16 bytes).
            if let Ok(mut bytes) = B64.decode(&ciphertext) {
                if let Some(last) = bytes.last_mut() {
                    *last ^= 0x01;
                }
                ciphertext = B64.encode(bytes);
            }
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        json!({
            "id": format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..]),
            "create_time": rfc3339(self.now()),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": original_type,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ciphertext,
                "associated_data": original_type,
                "nonce": nonce,
            },
        })
        .to_string()
    }

    /// `GET /v3/certificates`: the listed, currently valid certificates, each encrypted
    /// under the APIv3 key. A merchant in public-key mode has none.
    fn v3_certificates(&self) -> Result<Done, V3Error> {
        if self.v3.public_key_mode() {
            return Err(err(
                404,
                "RESOURCE_NOT_EXISTS",
                "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥",
            ));
        }
        let now = self.now();
        let listed = self.state().v3_rotation.listed();
        let data: Vec<Value> = listed
            .iter()
            .filter_map(|i| self.v3.certs.get(*i))
            .filter(|c| c.info.not_before <= now && now <= c.info.not_after)
            .map(|c| {
                let nonce = random_id(12);
                json!({
                    "serial_no": c.info.serial,
                    "effective_time": rfc3339(c.info.not_before),
                    "expire_time": rfc3339(c.info.not_after),
                    "encrypt_certificate": {
                        "algorithm": "AEAD_AES_256_GCM",
                        "nonce": nonce,
                        "associated_data": "certificate",
                        "ciphertext": aead_encrypt(&self.v3.apiv3_key, &nonce, "certificate", c.pem.as_bytes()),
                    },
                })
            })
            .collect();
        Ok(ok(json!({ "data": data }), ""))
    }

    /// `POST /sandbox/control/rotate_cert`: the rotation after this step, as serials.
    pub fn v3_rotate(&self, retire: bool) -> Result<Value, &'static str> {
        let mut st = self.state();
        st.v3_rotation.rotate(retire, self.v3.certs.len())?;
        let r = st.v3_rotation;
        drop(st);
        let serial = |i: usize| self.v3.certs.get(i).map(|c| c.info.serial.clone());
        let listed = r.listed();
        Ok(json!({
            "current": serial(r.current),
            "listed": listed.iter().filter_map(|i| serial(*i)).collect::<Vec<_>>(),
            "retired": (0..listed[0]).filter_map(serial).collect::<Vec<_>>(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_starts_a_certificate_then_retires_the_old_one() {
        let mut r = Rotation::default();
        assert_eq!((r.listed(), r.retired()), (vec![1], 0));
        assert!(r.rotate(false, 4).is_ok());
        assert_eq!((r.current, r.listed(), r.retired()), (2, vec![1, 2], 0));
        assert!(r.rotate(false, 4).is_ok(), "the second call retires");
        assert_eq!((r.current, r.listed(), r.retired()), (2, vec![2], 1));
        assert!(r.rotate(false, 4).is_ok());
        assert!(
            r.rotate(true, 4).is_ok(),
            "the retire flag ends the overlap"
        );
        assert_eq!((r.current, r.listed(), r.retired()), (3, vec![3], 2));
        assert!(r.rotate(false, 4).is_err(), "no fifth certificate");
    }

    #[test]
    fn authorization_pairs_are_read_in_any_order() {
        let h = r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="N",signature="S=",timestamp="2",serial_no="A""#;
        let f = auth_fields(h).unwrap_or_default();
        assert_eq!(f.get("signature"), Some(&"S="));
        assert_eq!(f.get("serial_no"), Some(&"A"));
        assert!(auth_fields("Bearer x").is_none());
        assert!(auth_fields(r#"WECHATPAY2-SHA256-RSA2048 mchid=1"#).is_none());
    }

    #[test]
    fn headers_and_paths_are_read_as_sent() {
        assert!(accepts_json("application/json"));
        assert!(accepts_json("*/*"));
        assert!(accepts_json("text/plain, application/json;q=0.9"));
        assert!(!accepts_json("text/html"));
        assert_eq!(percent_decode("A%7CB").as_deref(), Some("A|B"));
    }
}

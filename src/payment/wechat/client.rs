//! The WeChat Pay v2 client: `unifiedorder`, `orderquery`, `closeorder`, and the JSAPI
//! parameters for `wx.requestPayment`. Live mode and the sandbox differ only in `base`.

use super::sign::{sign, verify, Params, SignType};
use super::xml::{parse, to_xml, MAX_BODY};
use crate::config::Redacted;
use crate::payment::bill::{Bill, BillError, MAX_BILL_BYTES};
use crate::payment::connector::JsapiLaunch;
use crate::payment::transport_error;
use rand::distributions::Alphanumeric;
use rand::Rng;

/// Merchant credentials and where the API lives.
#[derive(Clone)]
pub struct WxPay {
    pub http: reqwest::Client,
    /// `https://api.mch.weixin.qq.com` or the sandbox's `…/sandbox/wxpay`.
    pub base: String,
    pub appid: String,
    pub mch_id: String,
    pub key: String,
    pub sign_type: SignType,
    /// A client carrying the merchant certificate, for `secapi` (live mode).
    pub cert_http: Option<reqwest::Client>,
}

impl std::fmt::Debug for WxPay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WxPay")
            .field("base", &self.base)
            .field("appid", &self.appid)
            .field("mch_id", &self.mch_id)
            .field("key", &Redacted(&self.key))
            .field("sign_type", &self.sign_type)
            .field("cert_http", &self.cert_http.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeType {
    Jsapi,
    Native,
}

impl TradeType {
    pub const fn as_str(self) -> &'static str {
        match self {
            TradeType::Jsapi => "JSAPI",
            TradeType::Native => "NATIVE",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UnifiedOrder {
    pub body: String,
    pub out_trade_no: String,
    pub total_fee: i64,
    pub spbill_create_ip: String,
    pub notify_url: String,
    pub trade_type: TradeType,
    pub openid: Option<String>,
    pub product_id: Option<String>,
    /// `yyyyMMddHHmmss`, Beijing time.
    pub time_expire: Option<String>,
}

/// One request and its answer, kept for `pay_log`.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: String,
    pub response: String,
    pub fields: Params,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WxError {
    #[error("transport error: {0}")]
    Transport(String),
    #[error("bad response: {0}")]
    BadResponse(String),
    #[error("return_code FAIL: {0}")]
    Fail(String),
    #[error("{code}: {desc}")]
    Business {
        code: String,
        desc: String,
        response: String,
    },
}

pub fn nonce() -> String {
    rand::thread_rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Parameters from pairs, empty values left out (as the signature rule wants).
pub fn params<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Params {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

impl WxPay {
    /// Signs and posts `params` to `path`, checks the answer's transport code, signature
    /// and business code.
    async fn call(&self, path: &str, p: Params) -> Result<Exchange, WxError> {
        self.call_with(path, p, false).await
    }

    /// As `call`; `client_cert` sends the request with the merchant's TLS client certificate
    /// (the `secapi` paths).
    pub(super) async fn call_with(
        &self,
        path: &str,
        mut p: Params,
        client_cert: bool,
    ) -> Result<Exchange, WxError> {
        p.insert("appid".into(), self.appid.clone());
        p.insert("mch_id".into(), self.mch_id.clone());
        p.insert("nonce_str".into(), nonce());
        if self.sign_type == SignType::HmacSha256 {
            p.insert("sign_type".into(), self.sign_type.as_str().into());
        }
        let s = sign(&p, &self.key, self.sign_type);
        p.insert("sign".into(), s);
        let request = to_xml(&p);
        let url = format!("{}{}", self.base.trim_end_matches('/'), path);
        let http = match (&self.cert_http, client_cert) {
            (Some(c), true) => c,
            _ => &self.http,
        };
        let res = http
            .post(&url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(request.clone())
            .send()
            .await
            .map_err(|e| WxError::Transport(format!("{path}: {}", transport_error(e))))?;
        let bytes = res
            .bytes()
            .await
            .map_err(|e| WxError::Transport(format!("{path}: {}", transport_error(e))))?;
        if bytes.len() > MAX_BODY {
            return Err(WxError::BadResponse("response too large".into()));
        }
        let response = String::from_utf8_lossy(&bytes).into_owned();
        let fields = parse(&bytes).map_err(|e| WxError::BadResponse(e.to_string()))?;
        let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
        if field("return_code") != "SUCCESS" {
            log::warn!("{path} answered FAIL: {response}");
            return Err(WxError::Fail(field("return_msg")));
        }
        if !verify(&fields, &self.key, Some(self.sign_type)) {
            return Err(WxError::BadResponse(
                "response signature does not verify".into(),
            ));
        }
        if fields.contains_key("result_code") && field("result_code") != "SUCCESS" {
            return Err(WxError::Business {
                code: field("err_code"),
                desc: field("err_code_des"),
                response,
            });
        }
        Ok(Exchange {
            request,
            response,
            fields,
        })
    }

    /// `POST /pay/unifiedorder`: a prepay_id (and a code_url for NATIVE).
    pub async fn unified_order(&self, o: &UnifiedOrder) -> Result<Exchange, WxError> {
        let p = params([
            ("body", o.body.clone()),
            ("out_trade_no", o.out_trade_no.clone()),
            ("total_fee", o.total_fee.to_string()),
            ("fee_type", "CNY".to_string()),
            ("spbill_create_ip", o.spbill_create_ip.clone()),
            ("notify_url", o.notify_url.clone()),
            ("trade_type", o.trade_type.as_str().to_string()),
            ("openid", o.openid.clone().unwrap_or_default()),
            ("product_id", o.product_id.clone().unwrap_or_default()),
            ("time_expire", o.time_expire.clone().unwrap_or_default()),
        ]);
        self.call("/pay/unifiedorder", p).await
    }

    /// `POST /pay/orderquery` by out_trade_no.
    pub async fn order_query(&self, out_trade_no: &str) -> Result<Exchange, WxError> {
        self.call(
            "/pay/orderquery",
            params([("out_trade_no", out_trade_no.to_string())]),
        )
        .await
    }

    /// `POST /pay/closeorder`.
    pub async fn close_order(&self, out_trade_no: &str) -> Result<Exchange, WxError> {
        self.call(
            "/pay/closeorder",
            params([("out_trade_no", out_trade_no.to_string())]),
        )
        .await
    }

    /// `POST /pay/downloadbill`: the `ALL` bill of a Beijing day. The file comes as plain
    /// CSV (unsigned); a refusal comes as XML (`No Bill Exist`: no trade that day; `Bill
    /// Creating`: not made yet).
    pub async fn download_bill(&self, day: chrono::NaiveDate) -> Result<Bill, BillError> {
        let mut p = params([
            ("appid", self.appid.clone()),
            ("mch_id", self.mch_id.clone()),
            ("nonce_str", nonce()),
            ("bill_date", day.format("%Y%m%d").to_string()),
            ("bill_type", "ALL".to_string()),
        ]);
        let s = sign(&p, &self.key, self.sign_type);
        p.insert("sign".into(), s);
        let url = format!("{}/pay/downloadbill", self.base.trim_end_matches('/'));
        let failed = |e| BillError::Failed(format!("downloadbill: {}", transport_error(e)));
        let res = self
            .http
            .post(&url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(to_xml(&p))
            .send()
            .await
            .map_err(failed)?;
        if !res.status().is_success() {
            return Err(BillError::Failed(format!(
                "downloadbill answered HTTP {}",
                res.status()
            )));
        }
        let too_big = || BillError::Failed("downloadbill: the file is too large".into());
        if res
            .content_length()
            .is_some_and(|n| n > MAX_BILL_BYTES as u64)
        {
            return Err(too_big());
        }
        let bytes = res.bytes().await.map_err(failed)?;
        if bytes.len() > MAX_BILL_BYTES {
            return Err(too_big());
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| BillError::Failed("downloadbill: not UTF-8".into()))?;
        if !text.trim_start().starts_with('<') {
            return super::bill::parse(&text);
        }
        let fields = parse(text.as_bytes()).map_err(|e| BillError::Failed(e.to_string()))?;
        let msg = fields.get("return_msg").cloned().unwrap_or_default();
        Err(match msg.as_str() {
            "No Bill Exist" => BillError::Empty,
            "Bill Creating" => BillError::NotReady(msg),
            _ => BillError::Failed(format!("downloadbill: {msg}")),
        })
    }

    /// The five signed keys for `wx.requestPayment`; `timeStamp` is a string.
    pub fn jsapi_params(&self, prepay_id: &str, timestamp: i64) -> JsapiLaunch {
        let mut p = params([
            ("appId", self.appid.clone()),
            ("timeStamp", timestamp.to_string()),
            ("nonceStr", nonce()),
            ("package", format!("prepay_id={prepay_id}")),
            ("signType", self.sign_type.as_str().to_string()),
        ]);
        let pay_sign = sign(&p, &self.key, self.sign_type);
        let mut take = |k: &str| p.remove(k).unwrap_or_default();
        JsapiLaunch {
            app_id: take("appId"),
            time_stamp: take("timeStamp"),
            nonce_str: take("nonceStr"),
            package: take("package"),
            sign_type: take("signType"),
            pay_sign,
        }
    }
}

//! The APIv3 HTTP client. Every request is signed; every answer, 2xx or not, is verified
//! against its raw bytes before it is believed (only a 5xx without signature headers is let
//! through, as an open outcome). Live mode and a sandbox differ only in `base`.

use super::aead::ApiV3Key;
use super::certs::CertError;
use super::error::{Exchange, PlatformError, V3Error};
use super::notify::{parse_notification, Notification, NotifyError};
use super::sign::{nonce, JsapiParams, Signer};
use super::verify::{SignedHeaders, Verifier, VerifyError, PUB_KEY_ID_PREFIX};
use super::wire::{
    check_out_refund_no, check_out_trade_no, prepay_body, refund_body, ErrorBody, Prepared, Prepay,
    PrepayAnswer, Refund, RefundRequest, TradeType, Transaction,
};
use crate::payment::bill::{BillError, MAX_BILL_BYTES};
use crate::payment::pingpp::sign::RsaPrivateKey;
use crate::payment::transport_error;
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use reqwest::Method;
use serde::de::DeserializeOwned;
use sha1::Digest;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// "Now", as the caller's clock (the real one, a test's, the sandbox's) tells it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Answers larger than this are not read.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

const UA: &str = concat!(
    "jiesuan/",
    env!("CARGO_PKG_VERSION"),
    " (WechatPay-APIv3; Rust reqwest)"
);

/// The merchant's credentials.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub mchid: String,
    /// The serial of the merchant API certificate (upper-case hex).
    pub serial_no: String,
    /// The merchant API private key (`apiclient_key.pem`).
    pub private_key: RsaPrivateKey,
    pub api_v3_key: ApiV3Key,
}

/// A verified answer and the exchange that brought it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    pub value: T,
    pub exchange: Exchange,
}

/// An APIv3 client for one merchant. Clones share the verifier (and so the certificates a
/// refresh brings).
#[derive(Clone)]
pub struct WxPayV3 {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    signer: Signer,
    api_v3_key: ApiV3Key,
    verifier: Arc<RwLock<Verifier>>,
    clock: Clock,
}

impl std::fmt::Debug for WxPayV3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WxPayV3")
            .field("base", &self.base)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// An answer as it came, before anything in it is believed.
#[derive(Clone)]
struct Raw {
    status: u16,
    headers: Result<SignedHeaders, VerifyError>,
    body: Vec<u8>,
    exchange: Exchange,
}

impl WxPayV3 {
    /// `base`: `https://api.mch.weixin.qq.com` or a sandbox's base; `timeout` bounds each
    /// request whole.
    pub fn new(
        http: reqwest::Client,
        base: &str,
        timeout: Duration,
        merchant: Merchant,
        verifier: Verifier,
        clock: Clock,
    ) -> WxPayV3 {
        WxPayV3 {
            http,
            base: base.trim_end_matches('/').to_string(),
            timeout,
            signer: Signer::new(&merchant.mchid, &merchant.serial_no, merchant.private_key),
            api_v3_key: merchant.api_v3_key,
            verifier: Arc::new(RwLock::new(verifier)),
            clock,
        }
    }

    /// The same client, verifying with `verifier`: one set of platform certificates shared
    /// by every client of the process (a refresh seen by all).
    pub fn sharing(mut self, verifier: Arc<RwLock<Verifier>>) -> WxPayV3 {
        self.verifier = verifier;
        self
    }

    pub fn mchid(&self) -> &str {
        self.signer.mchid()
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// A copy of the verifier as it is now: its certificate set is what to store after a
    /// refresh (`certificate_set().to_json()`).
    pub fn verifier(&self) -> Verifier {
        self.verifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the verifier (say with certificates another instance stored).
    pub fn set_verifier(&self, verifier: Verifier) {
        *self.verifier.write().unwrap_or_else(|p| p.into_inner()) = verifier;
    }

    /// Signs and sends one request; reads the answer without believing it.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Raw, V3Error> {
        self.send_up_to(method, path_and_query, body, MAX_ANSWER_BYTES)
            .await
    }

    /// As `send`, reading an answer of at most `limit` bytes.
    async fn send_up_to(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Raw, V3Error> {
        let url = reqwest::Url::parse(&format!("{}{path_and_query}", self.base))
            .map_err(|e| V3Error::Invalid(format!("URL: {e}")))?;
        // What is signed is what is sent, as the platform sees it: the path and query as
        // the URL parser wrote them, below the base (api.mch.weixin.qq.com has no path of
        // its own; a base with one, like the sandbox's, is the platform's root).
        let base_path = reqwest::Url::parse(&self.base)
            .map(|b| b.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let path = url.path().strip_prefix(&base_path).unwrap_or(url.path());
        let target = match url.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let now = self.now();
        let body = body.unwrap_or_default();
        let authorization = self.signer.authorization(
            method.as_str(),
            &target,
            now.timestamp(),
            &nonce(),
            &body,
        )?;
        let request_line = format!("{method} {target}");
        let mut request = self
            .http
            .request(method, url)
            .timeout(self.timeout)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, UA);
        if let Some(serial) = self
            .verifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .preferred_serial(now)
        {
            request = request.header("Wechatpay-Serial", serial);
        }
        if !body.is_empty() {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let transport = |e: reqwest::Error| V3Error::Transport {
            timeout: e.is_timeout(),
            message: format!("{request_line}: {}", transport_error(e)),
        };
        let res = request.send().await.map_err(transport)?;
        let status = res.status().as_u16();
        let headers = SignedHeaders::from_headers(res.headers());
        let request_id = res
            .headers()
            .get("Request-ID")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let too_large = res.content_length().is_some_and(|n| n > limit as u64);
        let answer = if too_large {
            Vec::new()
        } else {
            res.bytes().await.map_err(transport)?.to_vec()
        };
        let exchange = Exchange {
            request_line,
            request_body: String::from_utf8_lossy(&body).into_owned(),
            status,
            response_body: String::from_utf8_lossy(&answer).into_owned(),
            request_id,
        };
        if too_large || answer.len() > limit {
            return Err(V3Error::BadAnswer {
                status,
                why: "answer too large".into(),
                exchange: Box::new(exchange),
            });
        }
        Ok(Raw {
            status,
            headers,
            body: answer,
            exchange,
        })
    }

    /// Believes an answer only once its signature verifies.
    fn verified(&self, raw: Raw) -> Result<Raw, V3Error> {
        let checked = raw.headers.as_ref().map_err(Clone::clone).and_then(|h| {
            self.verifier
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .verify(h, &raw.body, self.now())
        });
        match checked {
            Ok(()) => Ok(raw),
            Err(VerifyError::MissingHeader(_)) if raw.status >= 500 => Err(V3Error::Unsigned {
                status: raw.status,
                exchange: Box::new(raw.exchange),
            }),
            Err(error) => Err(V3Error::Unverified {
                status: raw.status,
                error,
                exchange: Box::new(raw.exchange),
            }),
        }
    }

    /// As `verified`; an answer signed by a platform certificate this client does not know
    /// yet (WeChat Pay started signing with a new one) first brings the certificates up to
    /// date, then is checked once more.
    async fn checked(&self, raw: Raw) -> Result<Raw, V3Error> {
        match self.verified(raw.clone()) {
            Err(V3Error::Unverified {
                error: VerifyError::UnknownSerial(serial),
                ..
            }) if !serial.starts_with(PUB_KEY_ID_PREFIX) => {
                // A download that fails leaves the answer unverified (an open outcome), never
                // replaced by the download's own error: a refund WeChat took must not read
                // as refused.
                if let Err(e) = self.refresh_certificates().await {
                    log::warn!("platform certificates not refreshed: {e}");
                }
                self.verified(raw)
            }
            other => other,
        }
    }

    /// A verified answer with the expected status, or the platform's verified refusal.
    fn expect(raw: Raw, status: u16) -> Result<Raw, V3Error> {
        if raw.status == status {
            return Ok(raw);
        }
        if (200..300).contains(&raw.status) {
            return Err(V3Error::BadAnswer {
                status: raw.status,
                why: format!("expected {status}"),
                exchange: Box::new(raw.exchange),
            });
        }
        match serde_json::from_slice::<ErrorBody>(&raw.body) {
            Ok(e) => Err(V3Error::Platform(PlatformError {
                status: raw.status,
                code: e.code,
                message: e.message,
                exchange: Box::new(raw.exchange),
            })),
            Err(e) => Err(V3Error::BadAnswer {
                status: raw.status,
                why: format!("error body: {e}"),
                exchange: Box::new(raw.exchange),
            }),
        }
    }

    fn json<T: DeserializeOwned>(raw: Raw) -> Result<Answer<T>, V3Error> {
        match serde_json::from_slice(&raw.body) {
            Ok(value) => Ok(Answer {
                value,
                exchange: raw.exchange,
            }),
            Err(e) => Err(V3Error::BadAnswer {
                status: raw.status,
                why: e.to_string(),
                exchange: Box::new(raw.exchange),
            }),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer<T>, V3Error> {
        let raw = self.send(method, path_and_query, body).await?;
        Self::json(Self::expect(self.checked(raw).await?, 200)?)
    }

    /// `POST /v3/pay/transactions/{jsapi|native|h5}`.
    pub async fn prepay(
        &self,
        order: &Prepay,
        trade_type: TradeType<'_>,
    ) -> Result<Answer<Prepared>, V3Error> {
        let body = prepay_body(self.mchid(), order, &trade_type).map_err(V3Error::Invalid)?;
        let answer: Answer<PrepayAnswer> = self
            .call(Method::POST, trade_type.path(), Some(body))
            .await?;
        match answer.value.prepared(&trade_type) {
            Some(value) => Ok(Answer {
                value,
                exchange: answer.exchange,
            }),
            None => Err(V3Error::BadAnswer {
                status: answer.exchange.status,
                why: "no prepay_id / code_url / h5_url".into(),
                exchange: Box::new(answer.exchange),
            }),
        }
    }

    /// `GET /v3/pay/transactions/out-trade-no/{no}?mchid=…`.
    pub async fn query(&self, out_trade_no: &str) -> Result<Answer<Transaction>, V3Error> {
        check_out_trade_no(out_trade_no).map_err(V3Error::Invalid)?;
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={}",
            self.mchid()
        );
        self.call(Method::GET, &path, None).await
    }

    /// `POST /v3/pay/transactions/out-trade-no/{no}/close` → 204. See
    /// `V3Error::is_order_closed` and `may_be_paid` for the refusals that matter.
    pub async fn close(&self, out_trade_no: &str) -> Result<Exchange, V3Error> {
        check_out_trade_no(out_trade_no).map_err(V3Error::Invalid)?;
        let path = format!("/v3/pay/transactions/out-trade-no/{out_trade_no}/close");
        let body = serde_json::json!({ "mchid": self.mchid() }).to_string();
        let raw = self
            .send(Method::POST, &path, Some(body.into_bytes()))
            .await?;
        Ok(Self::expect(self.checked(raw).await?, 204)?.exchange)
    }

    /// `POST /v3/refund/domestic/refunds`. `PROCESSING` is the usual answer.
    pub async fn refund(&self, r: &RefundRequest) -> Result<Answer<Refund>, V3Error> {
        let body = refund_body(r).map_err(V3Error::Invalid)?;
        self.call(Method::POST, "/v3/refund/domestic/refunds", Some(body))
            .await
    }

    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
    pub async fn refund_query(&self, out_refund_no: &str) -> Result<Answer<Refund>, V3Error> {
        check_out_refund_no(out_refund_no).map_err(V3Error::Invalid)?;
        let path = format!("/v3/refund/domestic/refunds/{out_refund_no}");
        self.call(Method::GET, &path, None).await
    }

    /// `GET /v3/bill/tradebill?bill_date=&bill_type=ALL`, then the file at its
    /// `download_url` (asked for with a signed request like any other; WeChat does not sign
    /// the file, so it is believed only if its SHA1 is the verified answer's `hash_value`).
    /// `STATEMENT_CREATING`: not made yet; `NO_STATEMENT_EXIST`: no trade that day.
    pub async fn trade_bill(&self, day: chrono::NaiveDate) -> Result<String, BillError> {
        let path = format!("/v3/bill/tradebill?bill_date={day}&bill_type=ALL");
        let answer: Answer<BillAnswer> = match self.call(Method::GET, &path, None).await {
            Ok(a) => a,
            Err(e) => {
                return Err(match e.platform().map(|p| p.code.as_str()) {
                    Some("STATEMENT_CREATING") => BillError::NotReady(e.to_string()),
                    Some("NO_STATEMENT_EXIST") => BillError::Empty,
                    _ => BillError::Failed(format!("tradebill: {e}")),
                })
            }
        };
        let a = answer.value;
        if !a.hash_type.eq_ignore_ascii_case("SHA1") {
            return Err(BillError::Failed(format!(
                "tradebill: hash_type {}",
                a.hash_type
            )));
        }
        // The file lives below the same base as every other path of the API.
        let file = a
            .download_url
            .strip_prefix(self.base.trim_end_matches('/'))
            .filter(|p| p.starts_with("/v3/billdownload/file?"))
            .ok_or_else(|| {
                BillError::Failed(format!("tradebill: download_url {}", a.download_url))
            })?;
        let raw = self
            .send_up_to(Method::GET, file, None, MAX_BILL_BYTES)
            .await
            .map_err(|e| BillError::Failed(format!("bill download: {e}")))?;
        if raw.status != 200 {
            return Err(BillError::Failed(format!(
                "bill download answered HTTP {}",
                raw.status
            )));
        }
        let digest = hex::encode(sha1::Sha1::digest(&raw.body));
        if !digest.eq_ignore_ascii_case(&a.hash_value) {
            return Err(BillError::Failed(
                "bill download: the file's SHA1 is not the hash_value".into(),
            ));
        }
        String::from_utf8(raw.body)
            .map_err(|_| BillError::Failed("bill download: not UTF-8".into()))
    }

    /// `GET /v3/certificates` into the verifier's set (see `CertificateSet::accept_download`);
    /// how many serials were new. Store `verifier().certificate_set().to_json()` after.
    pub async fn refresh_certificates(&self) -> Result<usize, V3Error> {
        let raw = self.send(Method::GET, "/v3/certificates", None).await?;
        if raw.status != 200 {
            Self::expect(self.verified(raw)?, 200)?;
            return Ok(0);
        }
        let headers = match raw.headers {
            Ok(h) => h,
            Err(error) => {
                return Err(V3Error::Unverified {
                    status: raw.status,
                    error,
                    exchange: Box::new(raw.exchange),
                })
            }
        };
        let now = self.now();
        let taken = self
            .verifier
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .certificate_set_mut()
            .accept_download(&headers, &raw.body, &self.api_v3_key, now);
        taken.map_err(|e| match e {
            CertError::Unverified(error) => V3Error::Unverified {
                status: raw.status,
                error,
                exchange: Box::new(raw.exchange),
            },
            other => V3Error::BadAnswer {
                status: raw.status,
                why: other.to_string(),
                exchange: Box::new(raw.exchange),
            },
        })
    }

    /// The JSAPI / mini-program launch parameters for a prepay_id, stamped with the clock.
    pub fn pay_params(&self, appid: &str, prepay_id: &str) -> Result<JsapiParams, V3Error> {
        Ok(self
            .signer
            .pay_params(appid, prepay_id, self.now().timestamp(), &nonce())?)
    }

    /// A notification verified with this client's verifier, clock and APIv3 key.
    pub fn notification(
        &self,
        headers: &SignedHeaders,
        body: &[u8],
    ) -> Result<Notification, NotifyError> {
        let verifier = self.verifier.read().unwrap_or_else(|p| p.into_inner());
        parse_notification(&verifier, &self.api_v3_key, headers, body, self.now())
    }
}

/// `GET /v3/bill/tradebill`'s answer.
#[derive(Debug, serde::Deserialize)]
struct BillAnswer {
    hash_type: String,
    hash_value: String,
    download_url: String,
}

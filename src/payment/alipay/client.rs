//! The Alipay OpenAPI client: RSA2-signed calls to `gateway.do` (system parameters in the
//! query, `biz_content` in a form body, as the official SDKs send them), every answer
//! verified over the raw text of its `<method>_response` before it is believed; and the
//! signed URL a browser follows for `page.pay` / `wap.pay`. In certificate mode every
//! request names the app's and the root's certificate SNs, and an answer naming an Alipay
//! certificate other than the configured one is not believed.

use super::sign::{raw_value, sign_request, verify_response, Params};
use crate::payment::pingpp::sign::{RsaPrivateKey, RsaPublicKey};
use crate::payment::transport_error;
use serde_json::Value;
use std::time::Duration;

/// Certificate mode (公钥证书模式): the SNs of the three certificates Alipay issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSn {
    /// `appCertPublicKey_<APPID>.crt`'s, sent and signed with every request.
    pub app_cert_sn: String,
    /// `alipayRootCert.crt`'s, sent and signed with every request.
    pub alipay_root_cert_sn: String,
    /// `alipayCertPublicKey_RSA2.crt`'s, whose key verifies answers: an answer naming
    /// another was signed by a certificate the shop does not have.
    pub alipay_cert_sn: String,
}

/// One merchant app at Alipay.
#[derive(Clone)]
pub struct Alipay {
    pub http: reqwest::Client,
    /// `https://openapi.alipay.com/gateway.do`, or the sandbox's.
    pub gateway: String,
    pub app_id: String,
    /// The app's private key (RSA2 requests).
    pub key: RsaPrivateKey,
    /// Alipay's public key (answers and notifications); in certificate mode the key of
    /// `alipayCertPublicKey_RSA2.crt`.
    pub alipay_key: RsaPublicKey,
    /// Certificate mode; None in public-key mode.
    pub cert: Option<CertSn>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Alipay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alipay")
            .field("gateway", &self.gateway)
            .field("app_id", &self.app_id)
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// Why a call did not give a usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AlipayError {
    /// No answer (unreachable, timed out): the outcome is open.
    #[error("{0}")]
    Transport(String),
    /// An answer that is not Alipay's, or not readable: the outcome is open.
    #[error("answer not believed: {0}")]
    Unverified(String),
    /// A verified answer that says no.
    #[error("{code} {msg}: {sub_code} {sub_msg}")]
    Business {
        code: String,
        msg: String,
        sub_code: String,
        sub_msg: String,
        raw: String,
    },
    /// A request refused before sending (a key that cannot sign).
    #[error("{0}")]
    Invalid(String),
}

impl AlipayError {
    /// Open outcome: call again with the same parameters (the same out_trade_no or
    /// out_request_no), or query. No answer, one not believed, 20000 (service unavailable)
    /// and ACQ.SYSTEM_ERROR are; every other verified refusal is definitive.
    pub fn is_retryable(&self) -> bool {
        match self {
            AlipayError::Transport(_) | AlipayError::Unverified(_) => true,
            AlipayError::Business { code, sub_code, .. } => {
                code == "20000" || sub_code == "ACQ.SYSTEM_ERROR"
            }
            AlipayError::Invalid(_) => false,
        }
    }

    /// The verified refusal's sub_code (`ACQ.TRADE_NOT_EXIST`…), or "".
    pub fn sub_code(&self) -> &str {
        match self {
            AlipayError::Business { sub_code, .. } => sub_code,
            _ => "",
        }
    }

    /// The platform's answer as it came, for the pay log.
    pub fn raw(&self) -> String {
        match self {
            AlipayError::Business { raw, .. } => raw.clone(),
            other => other.to_string(),
        }
    }
}

/// A verified successful answer: the `<method>_response` object and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub value: Value,
    pub raw: String,
}

impl Answer {
    pub fn field(&self, k: &str) -> String {
        self.value[k].as_str().unwrap_or_default().to_string()
    }
}

/// Alipay's `timestamp`: Beijing time, `yyyy-MM-dd HH:mm:ss`.
pub fn beijing(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&crate::domain::shanghai())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl Alipay {
    /// The signed parameters of `method` with `biz_content`, and the extra common ones
    /// (`notify_url`, `return_url`).
    fn signed(
        &self,
        method: &str,
        biz: &Value,
        extra: &[(&str, &str)],
    ) -> Result<Params, AlipayError> {
        let mut p = Params::new();
        let mut put = |k: &str, v: &str| {
            p.insert(k.to_string(), v.to_string());
        };
        put("app_id", &self.app_id);
        put("method", method);
        put("format", "JSON");
        put("charset", "utf-8");
        put("sign_type", "RSA2");
        put("timestamp", &beijing(chrono::Utc::now()));
        put("version", "1.0");
        put("biz_content", &biz.to_string());
        if let Some(c) = &self.cert {
            put("app_cert_sn", &c.app_cert_sn);
            put("alipay_root_cert_sn", &c.alipay_root_cert_sn);
        }
        for (k, v) in extra {
            put(k, v);
        }
        let sign = sign_request(&self.key, &p).map_err(|e| AlipayError::Invalid(e.to_string()))?;
        p.insert("sign".into(), sign);
        Ok(p)
    }

    /// Calls `method` with `biz_content`; a verified `10000` answer, or why not.
    pub async fn call(
        &self,
        method: &str,
        biz: &Value,
        extra: &[(&str, &str)],
    ) -> Result<Answer, AlipayError> {
        let mut p = self.signed(method, biz, extra)?;
        let biz_content = p.remove("biz_content").unwrap_or_default();
        let query = serde_urlencoded::to_string(&p).unwrap_or_default();
        let res = self
            .http
            .post(format!("{}?{query}", self.gateway))
            .timeout(self.timeout)
            .form(&[("biz_content", biz_content)])
            .send()
            .await
            .map_err(|e| AlipayError::Transport(format!("{method}: {}", transport_error(e))))?;
        let status = res.status().as_u16();
        let body = res
            .text()
            .await
            .map_err(|e| AlipayError::Transport(format!("{method}: {}", transport_error(e))))?;
        self.read(method, status, body)
    }

    /// The answer of `method`, believed only if Alipay signed it.
    fn read(&self, method: &str, status: u16, body: String) -> Result<Answer, AlipayError> {
        let unverified =
            |why: &str| AlipayError::Unverified(format!("{method} HTTP {status}: {why}"));
        let key = format!("{}_response", method.replace('.', "_"));
        let json: Value = serde_json::from_str(&body).map_err(|_| unverified("not JSON"))?;
        if let Some(why) = self.foreign_certificate(method, &json) {
            return Err(unverified(&why));
        }
        let raw = raw_value(&body, &key)
            .or_else(|| raw_value(&body, "error_response"))
            .ok_or_else(|| unverified("no response object"))?;
        let sig = json["sign"].as_str().unwrap_or_default();
        if sig.is_empty() || !verify_response(&self.alipay_key, raw, sig) {
            return Err(unverified("signature does not verify"));
        }
        let value: Value = serde_json::from_str(raw).map_err(|_| unverified("unreadable"))?;
        let text = |k: &str| value[k].as_str().unwrap_or_default().to_string();
        if text("code") != "10000" {
            return Err(AlipayError::Business {
                code: text("code"),
                msg: text("msg"),
                sub_code: text("sub_code"),
                sub_msg: text("sub_msg"),
                raw: body,
            });
        }
        Ok(Answer { value, raw: body })
    }

    /// Why an answer is not signed by the configured Alipay certificate, if it names another
    /// (`alipay_cert_sn`): Alipay rotated its certificate, and its new key is one the shop
    /// does not have. Answers without the field are verified with the configured key.
    fn foreign_certificate(&self, method: &str, json: &Value) -> Option<String> {
        let ours = &self.cert.as_ref()?.alipay_cert_sn;
        let theirs = json["alipay_cert_sn"]
            .as_str()
            .filter(|sn| !sn.is_empty())?;
        if theirs == ours {
            return None;
        }
        log::warn!(
            "Alipay answered {method} with certificate SN {theirs}, not {ours} (alipay.alipay_cert): \
             Alipay has a new certificate; the merchant must download the new \
             alipayCertPublicKey_RSA2.crt from the open platform and set alipay.alipay_cert to it"
        );
        Some(format!(
            "signed with Alipay certificate {theirs}, not {ours}"
        ))
    }

    /// The signed URL of a browser method (`alipay.trade.page.pay`, `alipay.trade.wap.pay`):
    /// the browser is sent there and comes back to `return_url`.
    pub fn browser_url(
        &self,
        method: &str,
        biz: &Value,
        extra: &[(&str, &str)],
    ) -> Result<String, AlipayError> {
        let p = self.signed(method, biz, extra)?;
        let query = serde_urlencoded::to_string(&p).unwrap_or_default();
        Ok(format!("{}?{query}", self.gateway))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::pingpp::sign as rsa;

    const PLATFORM_SN: &str = "f969d4437bcf01cad5a5428519cd7b14";

    fn client(cert: Option<CertSn>) -> Alipay {
        let key = |pem| rsa::private_key(pem).unwrap_or_else(|e| panic!("{e}"));
        let public = |pem| rsa::public_key(pem).unwrap_or_else(|e| panic!("{e}"));
        // reqwest's rustls needs its provider, as at start.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Alipay {
            http: reqwest::Client::new(),
            gateway: "https://openapi.example/gateway.do".into(),
            app_id: "2021000100000001".into(),
            key: key(include_str!("../../../keys/sandbox/alipay_app_private.pem")),
            alipay_key: public(include_str!(
                "../../../keys/sandbox/alipay_platform_public.pem"
            )),
            cert,
            timeout: Duration::from_secs(5),
        }
    }

    fn cert_mode() -> Option<CertSn> {
        Some(CertSn {
            app_cert_sn: "cb8ed781ed476b2f7982d70b7ebcd67d".into(),
            alipay_root_cert_sn: "f7f936ab258ad2cfb59567281911f572".into(),
            alipay_cert_sn: PLATFORM_SN.into(),
        })
    }

    /// A query answer signed by the sandbox platform's key, naming `sn` if any.
    fn answer(sn: Option<&str>) -> String {
        let key = rsa::private_key(include_str!(
            "../../../keys/sandbox/alipay_platform_private.pem"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let object = r#"{"code":"10000","msg":"Success","trade_status":"WAIT_BUYER_PAY"}"#;
        let sign = rsa::sign(&key, object.as_bytes()).unwrap_or_default();
        let sn = sn
            .map(|s| format!(",\"alipay_cert_sn\":\"{s}\""))
            .unwrap_or_default();
        format!("{{\"alipay_trade_query_response\":{object}{sn},\"sign\":\"{sign}\"}}")
    }

    fn read(client: &Alipay, body: String) -> Result<Answer, AlipayError> {
        client.read("alipay.trade.query", 200, body)
    }

    #[test]
    fn an_answer_naming_another_alipay_certificate_is_not_believed() {
        let certified = client(cert_mode());
        let rotated = read(&certified, answer(Some("0123456789abcdef0123456789abcdef")));
        assert!(
            matches!(&rotated, Err(AlipayError::Unverified(why)) if why.contains("certificate")),
            "{rotated:?}"
        );
        assert!(
            rotated.is_err_and(|e| e.is_retryable()),
            "the outcome is open"
        );
        assert!(read(&certified, answer(Some(PLATFORM_SN))).is_ok());
        assert!(
            read(&certified, answer(None)).is_ok(),
            "no SN: our key decides"
        );
        // Public-key mode has no certificate to compare with: the signature decides.
        assert!(read(&client(None), answer(Some("0123"))).is_ok());
    }

    #[test]
    fn certificate_mode_signs_both_sns_into_every_request() {
        let app_public =
            rsa::public_key(include_str!("../../../keys/sandbox/alipay_app_public.pem"))
                .unwrap_or_else(|e| panic!("{e}"));
        let biz = serde_json::json!({ "out_trade_no": "T1" });
        let p = client(cert_mode())
            .signed("alipay.trade.page.pay", &biz, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p["app_cert_sn"], "cb8ed781ed476b2f7982d70b7ebcd67d");
        assert_eq!(p["alipay_root_cert_sn"], "f7f936ab258ad2cfb59567281911f572");
        let content = crate::payment::alipay::sign::sign_content(&p, false);
        assert!(content.contains("&app_cert_sn=cb8e"), "{content}");
        assert!(rsa::verify(&app_public, content.as_bytes(), &p["sign"]));
        let plain = client(None)
            .signed("alipay.trade.page.pay", &biz, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!plain.contains_key("app_cert_sn") && !plain.contains_key("alipay_root_cert_sn"));
    }
}

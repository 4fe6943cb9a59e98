//! The merchant's side of APIv3 signatures: the `Authorization` header of every request and
//! the `paySign` of the JSAPI / mini-program launch parameters. SHA256withRSA (PKCS#1 v1.5,
//! deterministic) with the merchant API key, through `payment::pingpp::sign`.

/// v2 and v3 hand the same five keys and `paySign` to `wx.requestPayment`, and make their
/// nonces alike.
pub use crate::payment::connector::JsapiLaunch as JsapiParams;
use crate::payment::pingpp::sign::{sign, KeyError, RsaPrivateKey};
pub use crate::payment::wechat::client::nonce;

/// The scheme of the `Authorization` header, and the `Wechatpay-Signature-Type` of answers.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// `METHOD\nURL\ntimestamp\nnonce\nbody\n`; `url` is the path and query exactly as sent, and
/// a request without a body has an empty body line.
pub fn request_message(
    method: &str,
    url: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut m = format!("{method}\n{url}\n{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// Who signs: the merchant id, the serial of the merchant API certificate and its key.
#[derive(Clone)]
pub struct Signer {
    mchid: String,
    serial_no: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("mchid", &self.mchid)
            .field("serial_no", &self.serial_no)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(mchid: &str, serial_no: &str, key: RsaPrivateKey) -> Signer {
        Signer {
            mchid: mchid.to_string(),
            serial_no: serial_no.to_string(),
            key,
        }
    }

    pub fn mchid(&self) -> &str {
        &self.mchid
    }

    /// The `Authorization` header value for one request.
    pub fn authorization(
        &self,
        method: &str,
        url: &str,
        timestamp: i64,
        nonce: &str,
        body: &[u8],
    ) -> Result<String, KeyError> {
        let signature = sign(
            &self.key,
            &request_message(method, url, timestamp, nonce, body),
        )?;
        Ok(format!(
            "{SCHEME} mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.mchid, self.serial_no
        ))
    }

    /// The launch parameters for a prepay_id: paySign over `appId\ntimeStamp\nnonceStr\npackage\n`
    /// (signType is not signed). `appid` must be the one the prepay was made with.
    pub fn pay_params(
        &self,
        appid: &str,
        prepay_id: &str,
        timestamp: i64,
        nonce: &str,
    ) -> Result<JsapiParams, KeyError> {
        let package = format!("prepay_id={prepay_id}");
        let message = format!("{appid}\n{timestamp}\n{nonce}\n{package}\n");
        Ok(JsapiParams {
            app_id: appid.to_string(),
            time_stamp: timestamp.to_string(),
            nonce_str: nonce.to_string(),
            package,
            sign_type: "RSA".to_string(),
            pay_sign: sign(&self.key, message.as_bytes())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_is_signed_with_an_empty_body_line() {
        let m = request_message("GET", "/v3/certificates", 1700000000, "N", b"");
        assert_eq!(m, b"GET\n/v3/certificates\n1700000000\nN\n\n");
    }
}

//! WeChat Pay v2 refunds: `secapi/pay/refund` (the merchant's TLS client certificate in live
//! mode), `pay/refundquery`, and the refund notification whose `req_info` is
//! base64(AES-256-ECB, PKCS#7) keyed with the lowercase hex MD5 of the API key.

use super::client::{Exchange, WxError, WxPay};
use super::sign::Params;
use super::xml;
use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes256;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::{Digest, Md5};

#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub total_fee: i64,
    pub refund_fee: i64,
    pub refund_desc: String,
    pub notify_url: String,
}

impl WxPay {
    /// `POST /secapi/pay/refund`: SUCCESS means accepted; the outcome comes later.
    pub async fn refund(&self, r: &RefundRequest) -> Result<Exchange, WxError> {
        let mut p = Params::new();
        p.insert("out_trade_no".into(), r.out_trade_no.clone());
        p.insert("out_refund_no".into(), r.out_refund_no.clone());
        p.insert("total_fee".into(), r.total_fee.to_string());
        p.insert("refund_fee".into(), r.refund_fee.to_string());
        if !r.refund_desc.is_empty() {
            p.insert("refund_desc".into(), r.refund_desc.clone());
        }
        p.insert("notify_url".into(), r.notify_url.clone());
        self.call_with("/secapi/pay/refund", p, true).await
    }

    /// `POST /pay/refundquery` by out_refund_no.
    pub async fn refund_query(&self, out_refund_no: &str) -> Result<Exchange, WxError> {
        let mut p = Params::new();
        p.insert("out_refund_no".into(), out_refund_no.to_string());
        self.call_with("/pay/refundquery", p, false).await
    }
}

fn cipher(api_key: &str) -> Aes256 {
    let key = hex::encode(Md5::digest(api_key.as_bytes()));
    Aes256::new(GenericArray::from_slice(key.as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReqInfoError {
    #[error("req_info is not base64")]
    Base64,
    #[error("req_info does not decrypt")]
    Decrypt,
    #[error("decrypted req_info: {0}")]
    Xml(String),
}

/// Decrypts `req_info` into the fields of its `<root>`.
pub fn decrypt_req_info(req_info: &str, api_key: &str) -> Result<Params, ReqInfoError> {
    let mut data = B64
        .decode(req_info.trim())
        .map_err(|_| ReqInfoError::Base64)?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(ReqInfoError::Decrypt);
    }
    let c = cipher(api_key);
    for block in data.chunks_mut(16) {
        c.decrypt_block(GenericArray::from_mut_slice(block));
    }
    let pad = usize::from(*data.last().ok_or(ReqInfoError::Decrypt)?);
    let ok = (1..=16).contains(&pad)
        && data[data.len() - pad..]
            .iter()
            .all(|b| usize::from(*b) == pad);
    if !ok {
        return Err(ReqInfoError::Decrypt);
    }
    data.truncate(data.len() - pad);
    xml::parse_root(&data, "root").map_err(|e| ReqInfoError::Xml(e.to_string()))
}

/// Encrypts a `<root>` document as WeChat does (the sandbox sends refund notifications).
pub fn encrypt_req_info(plain: &str, api_key: &str) -> String {
    let mut data = plain.as_bytes().to_vec();
    let pad = 16 - data.len() % 16;
    data.extend(std::iter::repeat_n(pad as u8, pad));
    let c = cipher(api_key);
    for block in data.chunks_mut(16) {
        c.encrypt_block(GenericArray::from_mut_slice(block));
    }
    B64.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/wechat/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_sdk_refund_notification_decrypts() {
        let meta: serde_json::Value =
            serde_json::from_str(&vector("refund_notify.json")).unwrap_or_default();
        let outer = xml::parse(vector("refund_notify.xml").as_bytes()).unwrap_or_default();
        let key = meta["api_key"].as_str().unwrap_or_default();
        let inner = decrypt_req_info(&outer["req_info"], key).unwrap_or_else(|e| panic!("{e}"));
        for (k, v) in meta["expect"].as_object().into_iter().flatten() {
            assert_eq!(inner.get(k).map(String::as_str), v.as_str(), "{k}");
        }
        assert!(decrypt_req_info(&outer["req_info"], "wrong-key").is_err());
    }

    #[test]
    fn encryption_round_trips() {
        let doc = "<root><out_refund_no><![CDATA[R1]]></out_refund_no><refund_status>SUCCESS</refund_status></root>";
        let enc = encrypt_req_info(doc, "k");
        let back = decrypt_req_info(&enc, "k").unwrap_or_default();
        assert_eq!(back.get("out_refund_no").map(String::as_str), Some("R1"));
    }
}

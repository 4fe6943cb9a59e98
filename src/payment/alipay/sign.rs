//! Alipay's RSA2 signatures: the sign string of a request or a notification, and the raw
//! text of a synchronous answer's `<method>_response` object, which is what Alipay signs.

use crate::payment::pingpp::sign::{self as rsa, KeyError, RsaPrivateKey, RsaPublicKey};
use std::collections::BTreeMap;

/// Parameters by name, sorted (the order of the sign string).
pub type Params = BTreeMap<String, String>;

/// `k=v&…` over the parameters sorted by key, empty values and `sign` left out (and
/// `sign_type` too for a notification), values raw.
pub fn sign_content(params: &Params, drop_sign_type: bool) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && *k != "sign" && !(drop_sign_type && *k == "sign_type"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The request's `sign`: SHA256withRSA (RSA2) over its sign string, base64.
pub fn sign_request(key: &RsaPrivateKey, params: &Params) -> Result<String, KeyError> {
    rsa::sign(key, sign_content(params, false).as_bytes())
}

/// Whether a notification's fields (decoded once) carry Alipay's signature: `sign` and
/// `sign_type` left out of the sign string.
pub fn verify_notification(key: &RsaPublicKey, fields: &Params) -> bool {
    let Some(sig) = fields.get("sign") else {
        return false;
    };
    fields.get("sign_type").map(String::as_str) == Some("RSA2")
        && rsa::verify(key, sign_content(fields, true).as_bytes(), sig)
}

/// The raw text of the JSON value of `key` at the top level of `body` (quote- and
/// escape-aware), exactly as sent.
pub fn raw_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("\"{key}\"");
    let at = body.find(&needle)? + needle.len();
    let rest = &body[at..];
    let colon = rest.find(':')?;
    let value = rest[colon + 1..].trim_start();
    let start = body.len() - value.len();
    let bytes = value.as_bytes();
    match bytes.first()? {
        b'{' | b'[' => {
            let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
            for (i, &b) in bytes.iter().enumerate() {
                if in_str {
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => in_str = false,
                        _ => {}
                    }
                    continue;
                }
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(&body[start..start + i + 1]);
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        _ => None,
    }
}

/// Whether an answer's `<method>_response` text carries Alipay's signature; the text as
/// sent first, then with `\/` read as `/` (answers may escape slashes).
pub fn verify_response(key: &RsaPublicKey, raw: &str, sig: &str) -> bool {
    rsa::verify(key, raw.as_bytes(), sig)
        || (raw.contains("\\/") && rsa::verify(key, raw.replace("\\/", "/").as_bytes(), sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_string_is_sorted_without_empties_and_sign() {
        let p: Params = [
            ("method", "alipay.trade.query"),
            ("app_id", "2021"),
            ("sign", "x"),
            ("notify_url", ""),
            ("sign_type", "RSA2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            sign_content(&p, false),
            "app_id=2021&method=alipay.trade.query&sign_type=RSA2"
        );
        assert_eq!(
            sign_content(&p, true),
            "app_id=2021&method=alipay.trade.query"
        );
    }

    #[test]
    fn the_response_object_is_cut_as_sent() {
        let body = r#"{"alipay_trade_query_response":{"code":"10000","msg":"Success","x":"a}\"{","qr":"https:\/\/qr"},"sign":"abc"}"#;
        assert_eq!(
            raw_value(body, "alipay_trade_query_response"),
            Some(r#"{"code":"10000","msg":"Success","x":"a}\"{","qr":"https:\/\/qr"}"#)
        );
        assert_eq!(raw_value(body, "missing"), None);
    }
}

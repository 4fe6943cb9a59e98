//! Checks against vectors made by independent code (`tests/fixtures/wechat_v3/make_vectors.py`,
//! Python's `cryptography`), so that this module and a sandbox built on it cannot agree on a
//! shared mistake; and the client against a one-shot HTTP server playing WeChat Pay.

use super::*;
use crate::domain::Money;
use crate::payment::pingpp::sign::{private_key, public_key, sign, verify, RsaPrivateKey};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::Value;

const VECTORS: &str = include_str!("../../../tests/fixtures/wechat_v3/vectors.json");
const MERCHANT_PRIVATE: &str = include_str!("../../../keys/sandbox/wechat_v3_merchant_private.pem");
const MERCHANT_PUBLIC: &str = include_str!("../../../keys/sandbox/wechat_v3_merchant_public.pem");
const PLATFORM_PRIVATE: &str =
    include_str!("../../../tests/fixtures/wechat_v3/platform_private.pem");

fn v() -> Value {
    serde_json::from_str(VECTORS).unwrap_or_else(|e| panic!("vectors.json: {e}"))
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn at(unix: i64) -> DateTime<Utc> {
    ok(Utc
        .timestamp_opt(unix, 0)
        .single()
        .ok_or("timestamp out of range"))
}

fn now() -> DateTime<Utc> {
    at(v()["now"].as_i64().unwrap_or_default())
}

fn merchant_key() -> RsaPrivateKey {
    ok(private_key(MERCHANT_PRIVATE))
}

fn signer() -> Signer {
    let v = v();
    Signer::new(&s(&v["mchid"]), &s(&v["merchant_serial"]), merchant_key())
}

fn api_v3_key() -> ApiV3Key {
    ok(ApiV3Key::new(&s(&v()["apiv3_key"])))
}

fn headers(answer: &Value) -> SignedHeaders {
    let h = answer["headers"].clone();
    ok(SignedHeaders::from_lookup(|name| {
        h.get(name).and_then(Value::as_str).map(str::to_string)
    }))
}

/// Takes the certificate download `name` of the vectors into `set` at the vectors' clock.
fn accept(set: &mut CertificateSet, name: &str) -> Result<usize, CertError> {
    let c = &v()[name];
    set.accept_download(&headers(c), s(&c["body"]).as_bytes(), &api_v3_key(), now())
}

/// The vectors' certificate `which` (`platform`, `old_platform`) in force from..until.
fn certificate(which: &str, effective: i64, expire: i64) -> PlatformCertificate {
    let v = v();
    ok(PlatformCertificate::new(
        &s(&v[format!("{which}_serial")]),
        &s(&v[format!("{which}_certificate")]),
        at(effective),
        at(expire),
    ))
}

/// The current platform certificate: 2026-01-01 to 2031-01-01.
fn platform_certificate() -> PlatformCertificate {
    certificate("platform", 1_767_225_600, 1_924_992_000)
}

/// The certificate being rotated out: 2021-06-01 to 2027-01-01.
fn old_certificate() -> PlatformCertificate {
    certificate("old_platform", 1_622_505_600, 1_798_761_600)
}

/// Certificate mode, with the Python-made certificate, plus the WeChat Pay public key.
fn verifier() -> Verifier {
    let v = v();
    let mut set = CertificateSet::default();
    set.insert(platform_certificate());
    ok(Verifier::certificates(set)
        .with_public_key(&s(&v["pub_key_id"]), &s(&v["wechatpay_public_key"])))
}

#[test]
fn the_authorization_header_equals_pythons_byte_for_byte() {
    for name in ["request_post", "request_get"] {
        let r = &v()[name];
        let header = ok(signer().authorization(
            &s(&r["method"]),
            &s(&r["url"]),
            r["timestamp"].as_i64().unwrap_or_default(),
            &s(&r["nonce"]),
            s(&r["body"]).as_bytes(),
        ));
        assert_eq!(header, s(&r["authorization"]), "{name}");
        let message = sign::request_message(
            &s(&r["method"]),
            &s(&r["url"]),
            r["timestamp"].as_i64().unwrap_or_default(),
            &s(&r["nonce"]),
            s(&r["body"]).as_bytes(),
        );
        assert_eq!(message, s(&r["message"]).into_bytes(), "{name}");
    }
}

#[test]
fn pay_sign_equals_pythons() {
    let p = &v()["pay_sign"];
    let params = ok(signer().pay_params(
        &s(&p["appId"]),
        &s(&p["prepay_id"]),
        ok(s(&p["timeStamp"]).parse::<i64>()),
        &s(&p["nonceStr"]),
    ));
    assert_eq!(params.pay_sign, s(&p["paySign"]));
    let json = ok(serde_json::to_value(&params));
    for key in [
        "appId",
        "timeStamp",
        "nonceStr",
        "package",
        "signType",
        "paySign",
    ] {
        assert_eq!(json[key], p[key], "{key}");
    }
}

#[test]
fn pythons_answer_verifies_in_both_modes_and_with_an_empty_body() {
    let v = v();
    for name in ["response", "response_pubkey", "response_empty"] {
        let a = &v[name];
        assert_eq!(
            verifier().verify(&headers(a), s(&a["body"]).as_bytes(), now()),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            headers(a).message(s(&a["body"]).as_bytes()),
            s(&a["message"]).into_bytes()
        );
    }
    // Public key mode alone knows no certificate serial.
    let only_key = ok(Verifier::public_key(
        &s(&v["pub_key_id"]),
        &s(&v["wechatpay_public_key"]),
    ));
    let a = &v["response_pubkey"];
    assert_eq!(
        only_key.verify(&headers(a), s(&a["body"]).as_bytes(), now()),
        Ok(())
    );
    let a = &v["response"];
    assert_eq!(
        only_key.verify(&headers(a), s(&a["body"]).as_bytes(), now()),
        Err(VerifyError::UnknownSerial(s(&v["platform_serial"])))
    );
    assert!(Verifier::public_key("1234", &s(&v["wechatpay_public_key"])).is_err());
}

#[test]
fn any_single_change_to_a_signed_answer_is_refused() {
    let a = &v()["response"];
    let body = s(&a["body"]);
    let good = headers(a);
    let check = |h: &SignedHeaders, body: &[u8]| verifier().verify(h, body, now());

    let mut flipped = body.clone().into_bytes();
    flipped[20] ^= 1;
    assert_eq!(check(&good, &flipped), Err(VerifyError::BadSignature));
    assert_eq!(
        check(&good, format!("{body} ").as_bytes()),
        Err(VerifyError::BadSignature)
    );

    let later = SignedHeaders {
        timestamp: (now().timestamp() + 1).to_string(),
        ..good.clone()
    };
    assert_eq!(
        check(&later, body.as_bytes()),
        Err(VerifyError::BadSignature)
    );
    let other_nonce = SignedHeaders {
        nonce: format!("{}0", good.nonce),
        ..good.clone()
    };
    assert_eq!(
        check(&other_nonce, body.as_bytes()),
        Err(VerifyError::BadSignature)
    );
    let pubkey_serial = SignedHeaders {
        serial: s(&v()["pub_key_id"]),
        ..good.clone()
    };
    assert_eq!(
        check(&pubkey_serial, body.as_bytes()),
        Err(VerifyError::BadSignature)
    );
    let unknown = SignedHeaders {
        serial: "7132D72A03E93CDDF8C03BBD1F37EEDF3B5A5D6F".into(),
        ..good.clone()
    };
    assert!(matches!(
        check(&unknown, body.as_bytes()),
        Err(VerifyError::UnknownSerial(_))
    ));
    let probe = SignedHeaders {
        signature: format!("WECHATPAY/SIGNTEST/{}", good.signature),
        ..good.clone()
    };
    assert_eq!(check(&probe, body.as_bytes()), Err(VerifyError::Probe));
    let other_type = SignedHeaders {
        signature_type: Some("WECHATPAY2-SM2-WITH-SM3".into()),
        ..good.clone()
    };
    assert!(matches!(
        check(&other_type, body.as_bytes()),
        Err(VerifyError::SignatureType(_))
    ));
    let untyped = SignedHeaders {
        signature_type: None,
        ..good.clone()
    };
    assert_eq!(check(&untyped, body.as_bytes()), Ok(()));
}

#[test]
fn an_answer_five_minutes_off_is_stale() {
    let a = &v()["response"];
    let body = s(&a["body"]);
    let h = headers(a);
    let check = |t: DateTime<Utc>| verifier().verify(&h, body.as_bytes(), t);
    assert_eq!(check(now() + TimeDelta::seconds(299)), Ok(()));
    assert_eq!(check(now() - TimeDelta::seconds(299)), Ok(()));
    assert_eq!(
        check(now() + TimeDelta::seconds(300)),
        Err(VerifyError::Stale { skew_seconds: 300 })
    );
    assert_eq!(
        check(now() - TimeDelta::seconds(300)),
        Err(VerifyError::Stale { skew_seconds: -300 })
    );
    let words = SignedHeaders {
        timestamp: "soon".into(),
        ..h.clone()
    };
    assert_eq!(
        verifier().verify(&words, body.as_bytes(), now()),
        Err(VerifyError::BadTimestamp)
    );
}

#[test]
fn missing_signature_headers_are_named() {
    let r = SignedHeaders::from_lookup(|name| (name != "Wechatpay-Nonce").then(|| "x".to_string()));
    assert_eq!(r, Err(VerifyError::MissingHeader("Wechatpay-Nonce")));
}

#[test]
fn pythons_gcm_ciphertext_opens_and_a_bad_tag_is_refused() {
    let g = &v()["gcm"];
    let key = ok(ApiV3Key::new(&s(&g["key"])));
    let plain = ok(key.open(
        &s(&g["nonce"]),
        &s(&g["associated_data"]),
        &s(&g["ciphertext"]),
    ));
    assert_eq!(String::from_utf8_lossy(&plain), s(&g["plaintext"]));
    // Our seal equals Python's (same key, nonce, data).
    let sealed = ok(key.seal(
        &s(&g["nonce"]),
        &s(&g["associated_data"]),
        s(&g["plaintext"]).as_bytes(),
    ));
    assert_eq!(sealed, s(&g["ciphertext"]));

    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut raw = ok(b64.decode(s(&g["ciphertext"])));
    let last = raw.len() - 1;
    raw[last] ^= 0x01; // the tag's last byte
    let bad_tag = b64.encode(&raw);
    assert_eq!(
        key.open(&s(&g["nonce"]), &s(&g["associated_data"]), &bad_tag),
        Err(AeadError::Tag)
    );
    raw[last] ^= 0x01;
    raw[0] ^= 0x80; // a ciphertext byte
    assert_eq!(
        key.open(
            &s(&g["nonce"]),
            &s(&g["associated_data"]),
            &b64.encode(&raw)
        ),
        Err(AeadError::Tag)
    );
}

#[test]
fn the_python_certificate_is_read_and_its_key_verifies_a_python_signature() {
    let v = v();
    let cert = platform_certificate();
    let expected = ok(public_key(&s(&v["platform_public_key"])));
    assert_eq!(cert.key(), &expected);
    let a = &v["response"];
    assert!(verify(
        cert.key(),
        s(&a["message"]).as_bytes(),
        &s(&a["headers"]["Wechatpay-Signature"])
    ));
    // A certificate whose serial is not the one stated is refused.
    let wrong = PlatformCertificate::new(
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E2",
        &s(&v["platform_certificate"]),
        at(1_767_225_600),
        at(1_924_992_000),
    );
    assert!(matches!(wrong, Err(CertError::SerialMismatch { .. })));
    // Leading zeros and case do not matter.
    assert!(PlatformCertificate::new(
        &format!("00{}", s(&v["platform_serial"]).to_lowercase()),
        &s(&v["platform_certificate"]),
        at(1_767_225_600),
        at(1_924_992_000),
    )
    .is_ok());
}

#[test]
fn the_first_certificate_download_trusts_its_own_certificates_and_stores_as_json() {
    let v = v();
    let c = &v["certificates"];
    let mut set = CertificateSet::default();
    assert!(set.needs_refresh(now(), TimeDelta::hours(12)));
    let added = ok(accept(&mut set, "certificates"));
    assert_eq!(added, 1);
    let cert = set.get(&s(&v["platform_serial"])).cloned();
    assert_eq!(
        cert.as_ref().map(PlatformCertificate::pem),
        Some(s(&v["platform_certificate"]).as_str())
    );
    assert_eq!(cert.map(|c| c.effective()), Some(at(1_767_225_600)));
    assert!(!set.needs_refresh(now(), TimeDelta::hours(12)));
    assert!(set.needs_refresh(
        at(1_924_992_000) - TimeDelta::hours(11),
        TimeDelta::hours(12)
    ));

    // Known now: the same download again adds nothing and still verifies.
    assert_eq!(accept(&mut set, "certificates"), Ok(0));

    let stored = set.to_json();
    let back = ok(CertificateSet::from_json(&stored));
    assert_eq!(back, set);
    let a = &v["response"];
    assert_eq!(
        Verifier::certificates(back).verify(&headers(a), s(&a["body"]).as_bytes(), now()),
        Ok(())
    );
    assert!(CertificateSet::from_json(&stored.replace("MII", "MIJ")).is_err());

    // A tampered download or one sealed under another key is refused.
    let mut fresh = CertificateSet::default();
    let tampered = s(&c["body"]).replace("2031-01-01T08", "2032-01-01T08");
    assert!(matches!(
        fresh.accept_download(&headers(c), tampered.as_bytes(), &api_v3_key(), now()),
        Err(CertError::Unverified(VerifyError::BadSignature))
    ));
    let other_key = ok(ApiV3Key::new("Z".repeat(32).as_str()));
    assert!(matches!(
        fresh.accept_download(&headers(c), s(&c["body"]).as_bytes(), &other_key, now()),
        Err(CertError::Decrypt { .. })
    ));
    assert!(fresh.is_empty());
}

#[test]
fn a_later_download_signed_by_the_new_certificate_it_brings_is_followed() {
    let v = v();
    // Knowing only the old certificate, an answer signed by the new one it carries (opened
    // with the APIv3 key) is taken: the platform has started signing with it.
    let mut set = CertificateSet::default();
    set.insert(old_certificate());
    assert_eq!(accept(&mut set, "certificates"), Ok(1));
    assert!(set.get(&s(&v["platform_serial"])).is_some());
    // The same answer with its body changed verifies with nothing.
    let mut set = CertificateSet::default();
    set.insert(old_certificate());
    let c = &v["certificates"];
    let body = s(&c["body"]).replacen("\"data\"", "\"data\" ", 1);
    assert!(set
        .accept_download(&headers(c), body.as_bytes(), &api_v3_key(), now())
        .is_err());
    assert_eq!(set.len(), 1);
}

#[test]
fn during_a_rotation_both_serials_verify_until_the_old_one_expires() {
    let v = v();
    let mut set = CertificateSet::default();
    set.insert(old_certificate());
    assert_eq!(accept(&mut set, "certificates_rotation"), Ok(1));
    assert_eq!(set.len(), 2);
    let verifier = Verifier::certificates(set.clone());
    for name in ["response", "certificates_rotation"] {
        let a = &v[name];
        assert_eq!(
            verifier.verify(&headers(a), s(&a["body"]).as_bytes(), now()),
            Ok(()),
            "{name}"
        );
    }
    assert_eq!(
        verifier.preferred_serial(now()),
        Some(s(&v["platform_serial"])),
        "the newest is announced"
    );
    // After 2027-01-01 the old certificate verifies nothing and a refresh drops it.
    let later = at(1_798_761_600);
    let a = &v["certificates_rotation"];
    let h = SignedHeaders {
        timestamp: later.timestamp().to_string(),
        ..headers(a)
    };
    assert_eq!(
        verifier.verify(&h, s(&a["body"]).as_bytes(), later),
        Err(VerifyError::NotInForce(s(&v["old_platform_serial"])))
    );
    set.prune(later);
    assert_eq!(set.len(), 1);
    assert!(set.get(&s(&v["platform_serial"])).is_some());
}

/// The vectors' notification `name` (headers, body) with `body` in its place.
fn notified(name: &str, body: &str, h: Option<SignedHeaders>) -> Result<Notification, NotifyError> {
    let h = h.unwrap_or_else(|| headers(&v()[name]));
    parse_notification(&verifier(), &api_v3_key(), &h, body.as_bytes(), now())
}

#[test]
fn pythons_payment_notification_is_verified_and_read() {
    let n = &v()["payment_notification"];
    let note = ok(notified("payment_notification", &s(&n["body"]), None));
    assert_eq!(note.id, "EV-2018022511223320873");
    assert_eq!(note.original_type.as_deref(), Some("transaction"));
    let Event::Paid(t) = ok(note.event()) else {
        panic!("not a payment")
    };
    assert_eq!(t.out_trade_no, "1217752501201407033233368018");
    assert_eq!(
        t.transaction_id.as_deref(),
        Some("4200000000202612011234567890")
    );
    assert_eq!(t.trade_state, TradeState::Success);
    assert_eq!(
        t.payer.map(|p| p.openid).as_deref(),
        Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    );
    let amount = t.amount.unwrap_or_else(|| panic!("no amount"));
    assert_eq!(amount.total, Money::from_fen(100));
    assert_eq!(amount.payer_total, Some(Money::from_fen(90)));
    assert_eq!(
        t.success_time.map(|t| t.to_utc()),
        Some(at(1_796_110_175)) // 2026-12-01T15:29:35+08:00
    );

    // The same body with one byte changed, or a probe signature, is refused before decrypting.
    let tampered = s(&n["body"]).replacen("支付成功", "支付失败", 1);
    assert!(matches!(
        notified("payment_notification", &tampered, None),
        Err(NotifyError::Unverified(VerifyError::BadSignature))
    ));
    let probe = SignedHeaders {
        signature: "WECHATPAY/SIGNTEST/abc".into(),
        ..headers(n)
    };
    assert!(matches!(
        notified("payment_notification", &s(&n["body"]), Some(probe)),
        Err(NotifyError::Unverified(VerifyError::Probe))
    ));
}

#[test]
fn pythons_refund_notification_signed_with_the_public_key_is_read() {
    let v = v();
    let body = s(&v["refund_notification"]["body"]);
    let note = ok(notified("refund_notification", &body, None));
    assert_eq!(note.resource, s(&v["refund_plaintext"]));
    let Event::Refund(r) = ok(note.event()) else {
        panic!("not a refund")
    };
    assert_eq!(r.refund_status, RefundStatus::Success);
    assert_eq!(r.out_refund_no, "1217752501201407033233368018R");
    assert_eq!(r.amount.refund, Money::from_fen(40));
    assert_eq!(r.amount.total, Money::from_fen(100));
    assert_eq!(r.amount.payer_refund, Some(Money::from_fen(36)));
}

// ---- the client against a one-shot server ----

mod client {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::time::Duration;

    /// Serves one connection with `answer`; yields the request's bytes.
    fn serve_once(answer: Vec<u8>) -> (String, std::thread::JoinHandle<String>) {
        let listener = ok(std::net::TcpListener::bind("127.0.0.1:0"));
        let base = format!("http://{}", ok(listener.local_addr()));
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = ok(listener.accept());
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = ok(conn.read(&mut buf));
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|n| n.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            ok(conn.write_all(&answer));
            String::from_utf8_lossy(&seen).into_owned()
        });
        (base, handle)
    }

    /// An HTTP answer signed by the Python-made platform key (or not signed at all).
    fn answer(status: u16, body: &str, signed: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nRequest-ID: 08F78BB5\r\n",
            body.len()
        );
        if signed {
            let timestamp = now().timestamp();
            let nonce = "4a1b2c3d4e5f";
            let key = ok(private_key(PLATFORM_PRIVATE));
            let signature = ok(sign(
                &key,
                format!("{timestamp}\n{nonce}\n{body}\n").as_bytes(),
            ));
            head.push_str(&format!(
                "Wechatpay-Serial: {}\r\nWechatpay-Signature: {signature}\r\nWechatpay-Timestamp: {timestamp}\r\nWechatpay-Nonce: {nonce}\r\nWechatpay-Signature-Type: WECHATPAY2-SHA256-RSA2048\r\n",
                s(&v()["platform_serial"])
            ));
        }
        format!("{head}\r\n{body}").into_bytes()
    }

    fn client(base: &str) -> WxPayV3 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = ok(reqwest::Client::builder().build());
        let v = v();
        let merchant = Merchant {
            mchid: s(&v["mchid"]),
            serial_no: s(&v["merchant_serial"]),
            private_key: merchant_key(),
            api_v3_key: api_v3_key(),
        };
        WxPayV3::new(
            http,
            base,
            Duration::from_secs(5),
            merchant,
            verifier(),
            Arc::new(now),
        )
    }

    fn order() -> Prepay {
        Prepay {
            appid: "wxd678efh567hg6787".into(),
            description: "测试商品".into(),
            out_trade_no: "A2026120112345601".into(),
            amount: Money::from_fen(1999),
            notify_url: "https://shop.example.com/notify".into(),
            time_expire: None,
            attach: None,
        }
    }

    /// The request's head lines by lower-case name, and its body.
    fn parse_request(raw: &str) -> (String, std::collections::HashMap<String, String>, String) {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut lines = head.lines();
        let start = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (start, headers, body.to_string())
    }

    #[tokio::test]
    async fn a_prepay_is_signed_as_sent_and_its_signed_answer_believed() {
        let (base, seen) = serve_once(answer(
            200,
            r#"{"code_url":"weixin://wxpay/bizpayurl?pr=abc"}"#,
            true,
        ));
        let got = ok(client(&base).prepay(&order(), TradeType::Native).await);
        assert_eq!(
            got.value,
            Prepared::CodeUrl("weixin://wxpay/bizpayurl?pr=abc".into())
        );
        assert_eq!(got.exchange.request_id.as_deref(), Some("08F78BB5"));
        let (start, h, body) = parse_request(&ok(seen.join().map_err(|_| "server")));
        assert_eq!(start, "POST /v3/pay/transactions/native HTTP/1.1");
        assert_eq!(
            h.get("accept").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(
            h.get("content-type").map(String::as_str),
            Some("application/json")
        );
        assert!(h.get("user-agent").is_some_and(|ua| !ua.is_empty()));
        assert_eq!(h.get("wechatpay-serial"), Some(&s(&v()["pub_key_id"])));
        // The Authorization header verifies with the merchant's public key over what was sent.
        let auth = h.get("authorization").cloned().unwrap_or_default();
        let pairs: std::collections::HashMap<&str, &str> = auth
            .trim_start_matches("WECHATPAY2-SHA256-RSA2048 ")
            .split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        assert_eq!(pairs.get("mchid"), Some(&"1900000109"));
        let message = format!(
            "POST\n/v3/pay/transactions/native\n{}\n{}\n{body}\n",
            pairs.get("timestamp").unwrap_or(&""),
            pairs.get("nonce_str").unwrap_or(&"")
        );
        let merchant_public = ok(public_key(MERCHANT_PUBLIC));
        assert!(verify(
            &merchant_public,
            message.as_bytes(),
            pairs.get("signature").unwrap_or(&"")
        ));
        let sent: Value = ok(serde_json::from_str(&body));
        assert_eq!(sent["amount"]["total"], 1999);
    }

    #[tokio::test]
    async fn a_signed_refusal_is_a_platform_error_with_its_retry_class() {
        let (base, seen) = serve_once(answer(
            404,
            r#"{"code":"ORDER_NOT_EXIST","message":"订单不存在"}"#,
            true,
        ));
        let e = client(&base).query("A2026120112345601").await.err();
        let (start, h, _) = parse_request(&ok(seen.join().map_err(|_| "server")));
        assert_eq!(
            start,
            "GET /v3/pay/transactions/out-trade-no/A2026120112345601?mchid=1900000109 HTTP/1.1"
        );
        assert!(!h.contains_key("content-type"));
        let e = e.unwrap_or_else(|| panic!("a 404 is an error"));
        assert!(e.is_not_found() && !e.is_retryable(), "{e:?}");
        assert_eq!(e.platform().map(|p| p.message.as_str()), Some("订单不存在"));
    }

    #[tokio::test]
    async fn an_unsigned_5xx_is_an_open_outcome_and_an_unsigned_4xx_is_not_believed() {
        let (base, _) = serve_once(answer(502, "<html>Bad Gateway</html>", false));
        let e = client(&base).close("A2026120112345601").await.err();
        assert!(
            matches!(e, Some(V3Error::Unsigned { status: 502, .. })),
            "{e:?}"
        );
        assert!(e.is_some_and(|e| e.is_retryable()));

        let (base, _) = serve_once(answer(
            400,
            r#"{"code":"ORDER_CLOSED","message":"x"}"#,
            false,
        ));
        let e = client(&base).close("A2026120112345601").await.err();
        assert!(
            matches!(
                e,
                Some(V3Error::Unverified {
                    status: 400,
                    error: VerifyError::MissingHeader(_),
                    ..
                })
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_close_is_a_signed_204_and_a_forged_200_is_refused() {
        let (base, seen) = serve_once(answer(204, "", true));
        let exchange = ok(client(&base).close("A2026120112345601").await);
        assert_eq!(exchange.status, 204);
        let (start, _, body) = parse_request(&ok(seen.join().map_err(|_| "server")));
        assert_eq!(
            start,
            "POST /v3/pay/transactions/out-trade-no/A2026120112345601/close HTTP/1.1"
        );
        assert_eq!(body, r#"{"mchid":"1900000109"}"#);

        let mut forged = answer(
            200,
            r#"{"code_url":"weixin://wxpay/bizpayurl?pr=abc"}"#,
            true,
        );
        let text = String::from_utf8_lossy(&forged).replace("pr=abc", "pr=abd");
        forged = text.into_bytes();
        let (base, _) = serve_once(forged);
        let e = client(&base)
            .prepay(&order(), TradeType::Native)
            .await
            .err();
        assert!(
            matches!(
                e,
                Some(V3Error::Unverified {
                    error: VerifyError::BadSignature,
                    ..
                })
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_refund_is_read_in_fen_and_bad_requests_never_leave() {
        let body = r#"{"refund_id":"50000000382019052709732678859","out_refund_no":"A2026120112345601R","transaction_id":"4200000000202612011234567890","out_trade_no":"A2026120112345601","channel":"ORIGINAL","create_time":"2026-12-01T16:00:00+08:00","status":"PROCESSING","amount":{"total":1999,"refund":500,"payer_total":1999,"payer_refund":500,"currency":"CNY"}}"#;
        let (base, seen) = serve_once(answer(200, body, true));
        let request = RefundRequest {
            out_trade_no: "A2026120112345601".into(),
            out_refund_no: "A2026120112345601R".into(),
            reason: None,
            notify_url: Some("https://shop.example.com/notify/refund".into()),
            refund: Money::from_fen(500),
            total: Money::from_fen(1999),
        };
        let r = ok(client(&base).refund(&request).await);
        assert_eq!(r.value.status, RefundStatus::Processing);
        assert_eq!(r.value.amount.refund, Money::from_fen(500));
        let (start, _, _) = parse_request(&ok(seen.join().map_err(|_| "server")));
        assert_eq!(start, "POST /v3/refund/domestic/refunds HTTP/1.1");

        // Refused before any connection (nothing listens at port 9).
        let c = client("http://127.0.0.1:9");
        let bad = RefundRequest {
            refund: Money::from_fen(2000),
            ..request
        };
        assert!(matches!(c.refund(&bad).await, Err(V3Error::Invalid(_))));
        assert!(matches!(c.query("short").await, Err(V3Error::Invalid(_))));
        let e = c.refund_query("A2026120112345601R").await.err();
        assert!(
            matches!(&e, Some(V3Error::Transport { message, .. }) if !message.contains("127.0.0.1")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn certificates_are_downloaded_into_the_shared_verifier() {
        let c = &v()["certificates"];
        let body = s(&c["body"]);
        let (base, _) = serve_once(answer(200, &body, true));
        let client = client(&base);
        client.set_verifier(ok(Verifier::public_key(
            &s(&v()["pub_key_id"]),
            &s(&v()["wechatpay_public_key"]),
        )));
        let twin = client.clone();
        assert_eq!(client.refresh_certificates().await, Ok(1));
        let set = twin.verifier().certificate_set().clone();
        assert!(set.get(&s(&v()["platform_serial"])).is_some());
    }
}

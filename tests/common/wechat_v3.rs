//! WeChat Pay APIv3 as an independent party signs and seals it: ring and base64 directly,
//! never the shop's code, so the shop's verifier and this signer cannot share a bug.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::signature::{self, RsaKeyPair};
use serde_json::{json, Value};

pub const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/sandbox");

/// The DER inside a PEM file of keys/sandbox.
pub fn pem_der(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(format!("{KEYS}/{name}")).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    B64.decode(b64).unwrap()
}

pub fn key_pair(name: &str) -> RsaKeyPair {
    RsaKeyPair::from_pkcs8(&pem_der(name)).unwrap()
}

/// SHA256withRSA of `message` with the committed private key `key`, base64.
pub fn sign(key: &str, message: &str) -> String {
    let pair = key_pair(key);
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut sig,
    )
    .unwrap();
    B64.encode(sig)
}

/// Checks a base64 SHA256withRSA signature over `message` with the public half of the
/// committed private key `key`.
pub fn verify(key: &str, message: &str, signature_b64: &str) -> bool {
    use ring::signature::{KeyPair, UnparsedPublicKey};
    let pair = key_pair(key);
    let Ok(sig) = B64.decode(signature_b64) else {
        return false;
    };
    UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        pair.public_key().as_ref(),
    )
    .verify(message.as_bytes(), &sig)
    .is_ok()
}

/// AES-256-GCM open with the APIv3 key.
pub fn decrypt(apiv3_key: &str, nonce: &str, aad: &str, ciphertext: &str) -> Option<String> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, apiv3_key.as_bytes()).ok()?);
    let mut buf = B64.decode(ciphertext).ok()?;
    let nonce = Nonce::try_assume_unique_for_key(nonce.as_bytes()).ok()?;
    let plain = key
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// AES-256-GCM seal with the APIv3 key: base64 of ciphertext and tag.
pub fn seal(apiv3_key: &str, nonce: &str, aad: &str, plaintext: &str) -> String {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, apiv3_key.as_bytes()).unwrap());
    let mut buf = plaintext.as_bytes().to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce.as_bytes()).unwrap();
    key.seal_in_place_append_tag(nonce, Aad::from(aad.as_bytes()), &mut buf)
        .unwrap();
    B64.encode(buf)
}

/// A notification as WeChat Pay sends it: `resource` sealed with `apiv3_key`, the body
/// signed with `key` under `serial` at `timestamp`. Headers and body.
pub fn notification(
    key: &str,
    serial: &str,
    apiv3_key: &str,
    event_type: &str,
    resource: &Value,
    timestamp: i64,
) -> (Vec<(&'static str, String)>, String) {
    let original_type = if event_type.starts_with("REFUND") {
        "refund"
    } else {
        "transaction"
    };
    let nonce = format!("{:012}", rand::random::<u32>());
    let body = json!({
        "id": format!("EV-{}", rand::random::<u64>()),
        "create_time": "2026-12-01T18:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": seal(apiv3_key, &nonce, original_type, &resource.to_string()),
            "associated_data": original_type,
            "nonce": nonce,
        },
    })
    .to_string();
    let sig_nonce = format!("{:032X}", rand::random::<u128>());
    let signature = sign(key, &format!("{timestamp}\n{sig_nonce}\n{body}\n"));
    let headers = vec![
        ("content-type", "application/json".to_string()),
        ("wechatpay-serial", serial.to_string()),
        ("wechatpay-timestamp", timestamp.to_string()),
        ("wechatpay-nonce", sig_nonce),
        ("wechatpay-signature", signature),
        (
            "wechatpay-signature-type",
            "WECHATPAY2-SHA256-RSA2048".to_string(),
        ),
    ];
    (headers, body)
}

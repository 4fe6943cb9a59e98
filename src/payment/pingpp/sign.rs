//! Ping++ signatures: RSA-SHA256 (PKCS#1 v1.5, base64) over the raw webhook body, and the
//! merchant request signature over raw body + request URI + timestamp.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, thiserror::Error)]
#[error("bad RSA key: {0}")]
pub struct KeyError(String);

/// Reads an SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`) PEM.
pub fn public_key(pem: &str) -> Result<RsaPublicKey, KeyError> {
    RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .map_err(|e| KeyError(e.to_string()))
}

/// Reads a PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`) PEM.
pub fn private_key(pem: &str) -> Result<RsaPrivateKey, KeyError> {
    RsaPrivateKey::from_pkcs1_pem(pem.trim())
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem.trim()))
        .map_err(|e| KeyError(e.to_string()))
}

/// base64(RSA-SHA256 PKCS#1 v1.5) of `message`. Deterministic.
pub fn sign(key: &RsaPrivateKey, message: &[u8]) -> Result<String, KeyError> {
    let digest = Sha256::digest(message);
    key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
        .map(|s| B64.encode(s))
        .map_err(|e| KeyError(e.to_string()))
}

/// Checks a base64 RSA-SHA256 signature over `message` (whitespace in the base64 ignored).
/// Verification runs on every webhook, so it uses ring (about 15 times faster than the
/// pure-Rust big integers `rsa` signs with).
pub fn verify(key: &RsaPublicKey, message: &[u8], signature_b64: &str) -> bool {
    use rsa::traits::PublicKeyParts;
    let cleaned: String = signature_b64
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let Ok(sig) = B64.decode(cleaned) else {
        return false;
    };
    let components = ring::signature::RsaPublicKeyComponents {
        n: key.n().to_bytes_be(),
        e: key.e().to_bytes_be(),
    };
    components
        .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, message, &sig)
        .is_ok()
}

/// The merchant request signature: over body (empty for GET) + request URI + timestamp.
pub fn request_signature(
    key: &RsaPrivateKey,
    body: &[u8],
    request_uri: &str,
    timestamp: &str,
) -> Result<String, KeyError> {
    let mut message = body.to_vec();
    message.extend_from_slice(request_uri.as_bytes());
    message.extend_from_slice(timestamp.as_bytes());
    sign(key, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/pingpp/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_three_sdk_webhooks_verify_and_fail_under_other_keys() {
        for n in 1..=3 {
            let body = vector(&format!("webhook{n}.body.json"));
            let sig = vector(&format!("webhook{n}.signature.b64"));
            for m in 1..=3 {
                let key = public_key(&vector(&format!("webhook{m}.pubkey.pem")))
                    .unwrap_or_else(|e| panic!("{e}"));
                // Sets 1 and 2 may share a key; only a different key must refuse.
                let same_key = vector(&format!("webhook{m}.pubkey.pem"))
                    == vector(&format!("webhook{n}.pubkey.pem"));
                assert_eq!(
                    verify(&key, body.as_bytes(), &sig),
                    same_key,
                    "body {n} key {m}"
                );
            }
            let mut tampered = body.clone().into_bytes();
            tampered[10] ^= 1;
            let key = public_key(&vector(&format!("webhook{n}.pubkey.pem")))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!verify(&key, &tampered, &sig));
            assert!(!verify(&key, body.as_bytes(), "not base64!"));
        }
    }

    #[test]
    fn the_request_signature_is_reproduced_byte_for_byte() {
        let v: serde_json::Value =
            serde_json::from_str(&vector("request_signature.json")).unwrap_or_default();
        let key = private_key(&vector("merchant.private.pem")).unwrap_or_else(|e| panic!("{e}"));
        let s = request_signature(
            &key,
            v["body"].as_str().unwrap_or_default().as_bytes(),
            v["request_uri"].as_str().unwrap_or_default(),
            v["timestamp"].as_str().unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s, v["signature"].as_str().unwrap_or_default());
        let public = public_key(&vector("merchant.public.pem")).unwrap_or_else(|e| panic!("{e}"));
        assert!(verify(
            &public,
            v["signed_string"].as_str().unwrap_or_default().as_bytes(),
            &s
        ));
    }
}

//! Ping++ signatures: RSA-SHA256 (PKCS#1 v1.5, base64) over the raw webhook body, and the
//! merchant request signature over raw body + request URI + timestamp. ring does the RSA
//! (the `rsa` crate carries RUSTSEC-2023-0071); PEM and the SPKI wrapper are read here.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::signature::{self as sig, RsaKeyPair, UnparsedPublicKey};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad RSA key: {0}")]
pub struct KeyError(String);

pub(crate) fn bad(why: impl Into<String>) -> KeyError {
    KeyError(why.into())
}

impl From<String> for KeyError {
    fn from(why: String) -> KeyError {
        KeyError(why)
    }
}

/// An RSA public key, held as the PKCS#1 `RSAPublicKey` DER that ring verifies with.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey(Arc<[u8]>);

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPublicKey({} bytes)", self.0.len())
    }
}

/// An RSA private key (ring's key pair); its Debug output shows nothing of it.
#[derive(Clone)]
pub struct RsaPrivateKey(Arc<RsaKeyPair>);

impl std::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaPrivateKey(<redacted>)")
    }
}

/// The label and DER bytes of the first PEM block in `pem`.
pub(crate) fn pem_block(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let mut lines = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let label = lines
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| bad("no PEM block"))?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines {
        if line == end {
            let der = B64
                .decode(body)
                .map_err(|e| bad(format!("PEM base64: {e}")))?;
            return Ok((label, der));
        }
        body.push_str(line);
    }
    Err(bad(format!("no {end}")))
}

/// One DER element at the start of `der`: (tag, contents, the rest).
pub(crate) fn der_element(der: &[u8]) -> Result<(u8, &[u8], &[u8]), KeyError> {
    let malformed = || bad("malformed DER");
    let (&tag, rest) = der.split_first().ok_or_else(malformed)?;
    let (&first, rest) = rest.split_first().ok_or_else(malformed)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(malformed());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(malformed());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
/// The DER of OID 1.2.840.113549.1.1.1 (rsaEncryption).
const RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// Checks a PKCS#1 `RSAPublicKey`: SEQUENCE { INTEGER n, INTEGER e }, nothing after.
fn pkcs1_public(der: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let (tag, body, rest) = der_element(der)?;
    let (n_tag, _, body) = der_element(body)?;
    let (e_tag, _, tail) = der_element(body)?;
    if tag != SEQUENCE
        || n_tag != INTEGER
        || e_tag != INTEGER
        || !tail.is_empty()
        || !rest.is_empty()
    {
        return Err(bad("not an RSA public key"));
    }
    Ok(RsaPublicKey(der.into()))
}

/// The `RSAPublicKey` inside an SPKI: SEQUENCE { SEQUENCE { rsaEncryption, … }, BIT STRING }.
fn spki_public(der: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let (tag, body, _) = der_element(der)?;
    let (alg_tag, alg, body) = der_element(body)?;
    let (bits_tag, bits, _) = der_element(body)?;
    if tag != SEQUENCE || alg_tag != SEQUENCE || !alg.starts_with(RSA_ENCRYPTION) {
        return Err(bad("not an RSA public key"));
    }
    match bits.split_first() {
        Some((0, key)) if bits_tag == BIT_STRING => pkcs1_public(key),
        _ => Err(bad("malformed public key bits")),
    }
}

/// Reads an SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`) PEM.
pub fn public_key(pem: &str) -> Result<RsaPublicKey, KeyError> {
    match pem_block(pem)? {
        (label, der) if label == "PUBLIC KEY" => spki_public(&der),
        (label, der) if label == "RSA PUBLIC KEY" => pkcs1_public(&der),
        (label, _) => Err(bad(format!("{label} is not a public key"))),
    }
}

/// The serial number (big-endian bytes, sign byte dropped) and the RSA public key of an X.509
/// certificate (`BEGIN CERTIFICATE`). Only `tbsCertificate` is walked, to its
/// `subjectPublicKeyInfo`: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
/// OPTIONAL, serialNumber INTEGER, signature, issuer, validity, subject, subjectPublicKeyInfo,
/// … }, … }. The certificate's own signature is not checked (its trust comes from how it was
/// delivered: WeChat Pay seals it with the APIv3 key).
pub fn certificate(pem: &str) -> Result<(Vec<u8>, RsaPublicKey), KeyError> {
    const VERSION: u8 = 0xa0;
    let (label, der) = pem_block(pem)?;
    if label != "CERTIFICATE" {
        return Err(bad(format!("{label} is not a certificate")));
    }
    let (tag, cert, _) = der_element(&der)?;
    let (tbs_tag, tbs, _) = der_element(cert)?;
    if tag != SEQUENCE || tbs_tag != SEQUENCE {
        return Err(bad("not an X.509 certificate"));
    }
    let (mut field, mut body, mut rest) = der_element(tbs)?;
    if field == VERSION {
        (field, body, rest) = der_element(rest)?;
    }
    if field != INTEGER {
        return Err(bad("no certificate serial number"));
    }
    let serial = body.strip_prefix(&[0]).unwrap_or(body).to_vec();
    // signature algorithm, issuer, validity, subject
    for _ in 0..4 {
        let (t, _, r) = der_element(rest)?;
        if t != SEQUENCE {
            return Err(bad("malformed tbsCertificate"));
        }
        rest = r;
    }
    let (_, _, after) = der_element(rest)?;
    Ok((serial, spki_public(&rest[..rest.len() - after.len()])?))
}

/// Reads a PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`) PEM.
pub fn private_key(pem: &str) -> Result<RsaPrivateKey, KeyError> {
    let pair = match pem_block(pem)? {
        (label, der) if label == "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        (label, der) if label == "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        (label, _) => return Err(bad(format!("{label} is not a private key"))),
    };
    pair.map(|p| RsaPrivateKey(Arc::new(p)))
        .map_err(|e| bad(e.to_string()))
}

/// base64(RSA-SHA256 PKCS#1 v1.5) of `message`. Deterministic.
pub fn sign(key: &RsaPrivateKey, message: &[u8]) -> Result<String, KeyError> {
    let mut out = vec![0; key.0.public().modulus_len()];
    key.0
        .sign(
            &sig::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            message,
            &mut out,
        )
        .map_err(|e| bad(e.to_string()))?;
    Ok(B64.encode(out))
}

/// Checks a base64 RSA-SHA256 signature over `message` (whitespace in the base64 ignored).
pub fn verify(key: &RsaPublicKey, message: &[u8], signature_b64: &str) -> bool {
    let cleaned: String = signature_b64
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let Ok(signature) = B64.decode(cleaned) else {
        return false;
    };
    UnparsedPublicKey::new(&sig::RSA_PKCS1_2048_8192_SHA256, &key.0[..])
        .verify(message, &signature)
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
    fn keys_are_read_by_their_pem_label_and_refused_otherwise() {
        let public = vector("merchant.public.pem");
        let private = vector("merchant.private.pem");
        assert!(public_key(&public).is_ok());
        assert!(private_key(&private).is_ok());
        assert!(
            public_key(&private).is_err(),
            "a private key is no public key"
        );
        assert!(private_key(&public).is_err());
        assert!(
            certificate(&public).is_err(),
            "a public key is no certificate"
        );
        assert!(public_key("not a key").is_err());
        let cut = public.replace("-----END PUBLIC KEY-----", "");
        assert!(public_key(&cut).is_err(), "unterminated");
        let garbled = public.replacen("MII", "MIJ", 1);
        assert!(public_key(&garbled).is_err(), "bad DER");
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

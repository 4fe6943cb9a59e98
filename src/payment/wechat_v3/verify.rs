//! Checking what WeChat Pay signs (API answers and notifications): the `Wechatpay-*` headers,
//! SHA256withRSA over `timestamp\nnonce\nbody\n` of the raw body bytes, a timestamp within
//! five minutes of the caller's clock, probe signatures refused, the key chosen by serial.

use super::certs::CertificateSet;
use super::sign::SCHEME;
use crate::payment::pingpp::sign::{public_key, verify, KeyError, RsaPublicKey};
use chrono::{DateTime, Utc};

/// Answers and notifications more than this far from now (either way) are refused, as the
/// Go, PHP and Node SDKs do (`|now − timestamp| ≥ 300 s`).
pub const MAX_SKEW_SECONDS: i64 = 300;

/// WeChat Pay sends signatures starting with this on purpose, to find merchants that do not
/// verify; they never verify.
pub const PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";

/// The prefix of a WeChat Pay public key's id.
pub const PUB_KEY_ID_PREFIX: &str = "PUB_KEY_ID_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no {0} header")]
    MissingHeader(&'static str),
    #[error("signature type {0:?} is not {SCHEME}")]
    SignatureType(String),
    #[error("Wechatpay-Timestamp is not a number")]
    BadTimestamp,
    #[error("signed {skew_seconds} s away from now")]
    Stale { skew_seconds: i64 },
    #[error("a WECHATPAY/SIGNTEST/ probe signature")]
    Probe,
    #[error("unknown serial {0:?}")]
    UnknownSerial(String),
    #[error("the certificate {0:?} is not in force now")]
    NotInForce(String),
    #[error("the signature does not verify")]
    BadSignature,
}

/// The signature headers of an answer or a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub serial: String,
    pub signature: String,
    pub timestamp: String,
    pub nonce: String,
    /// `Wechatpay-Signature-Type`, when sent: it must then name the RSA scheme.
    pub signature_type: Option<String>,
}

impl SignedHeaders {
    /// Reads the headers through `get` (which should match names case-insensitively, as
    /// both actix's and reqwest's header maps do).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<SignedHeaders, VerifyError> {
        let need = |name: &'static str| get(name).ok_or(VerifyError::MissingHeader(name));
        Ok(SignedHeaders {
            serial: need("Wechatpay-Serial")?,
            signature: need("Wechatpay-Signature")?,
            timestamp: need("Wechatpay-Timestamp")?,
            nonce: need("Wechatpay-Nonce")?,
            signature_type: get("Wechatpay-Signature-Type"),
        })
    }

    pub fn from_headers(h: &reqwest::header::HeaderMap) -> Result<SignedHeaders, VerifyError> {
        SignedHeaders::from_lookup(|name| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        })
    }

    /// `timestamp\nnonce\nbody\n`.
    pub fn message(&self, body: &[u8]) -> Vec<u8> {
        let mut m = format!("{}\n{}\n", self.timestamp, self.nonce).into_bytes();
        m.extend_from_slice(body);
        m.push(b'\n');
        m
    }

    /// Everything but the key: probe, signature type, timestamp window; then the signature
    /// with the key `key_for` picks by serial.
    pub(super) fn check<'k>(
        &self,
        body: &[u8],
        now: DateTime<Utc>,
        key_for: impl FnOnce(&str) -> Result<&'k RsaPublicKey, VerifyError>,
    ) -> Result<(), VerifyError> {
        if self.signature.starts_with(PROBE_PREFIX) {
            return Err(VerifyError::Probe);
        }
        if let Some(t) = self.signature_type.as_deref().filter(|t| *t != SCHEME) {
            return Err(VerifyError::SignatureType(t.to_string()));
        }
        let at: i64 = self
            .timestamp
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        let skew_seconds = now.timestamp().saturating_sub(at);
        if skew_seconds.saturating_abs() >= MAX_SKEW_SECONDS {
            return Err(VerifyError::Stale { skew_seconds });
        }
        let key = key_for(&self.serial)?;
        if verify(key, &self.message(body), &self.signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

/// What verifies WeChat Pay's signatures: its public key (with the id it is sent under),
/// the platform certificates, or both (while a merchant migrates from one to the other).
#[derive(Debug, Clone)]
pub struct Verifier {
    public_key: Option<(String, RsaPublicKey)>,
    certificates: CertificateSet,
}

impl Verifier {
    /// WeChat Pay public key mode: answers carry `Wechatpay-Serial: PUB_KEY_ID_…`.
    pub fn public_key(id: &str, pem: &str) -> Result<Verifier, KeyError> {
        Verifier::certificates(CertificateSet::default()).with_public_key(id, pem)
    }

    /// Platform certificate mode (the set may be empty until the first download).
    pub fn certificates(set: CertificateSet) -> Verifier {
        Verifier {
            public_key: None,
            certificates: set,
        }
    }

    /// Adds (or replaces) the public key; the certificates stay.
    pub fn with_public_key(mut self, id: &str, pem: &str) -> Result<Verifier, KeyError> {
        if !id.starts_with(PUB_KEY_ID_PREFIX) {
            return Err(KeyError::from(format!(
                "a WeChat Pay public key id starts with {PUB_KEY_ID_PREFIX}"
            )));
        }
        self.public_key = Some((id.to_string(), public_key(pem)?));
        Ok(self)
    }

    pub fn certificate_set(&self) -> &CertificateSet {
        &self.certificates
    }

    pub fn certificate_set_mut(&mut self) -> &mut CertificateSet {
        &mut self.certificates
    }

    /// What to announce in a request's `Wechatpay-Serial`: the public key's id, else the
    /// serial of the newest certificate in force.
    pub fn preferred_serial(&self, now: DateTime<Utc>) -> Option<String> {
        match &self.public_key {
            Some((id, _)) => Some(id.clone()),
            None => self
                .certificates
                .newest_in_force(now)
                .map(|c| c.serial_no().to_string()),
        }
    }

    /// Checks a signed answer or notification against the raw body bytes.
    pub fn verify(
        &self,
        headers: &SignedHeaders,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        headers.check(body, now, |serial| match &self.public_key {
            Some((id, key)) if id == serial => Ok(key),
            _ => self.certificates.key_for(serial, now),
        })
    }
}

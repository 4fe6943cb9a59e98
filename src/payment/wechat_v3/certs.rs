//! Platform certificates (the older of WeChat Pay's two ways to verify it): the set known by
//! serial, refreshed from `GET /v3/certificates`, kept as JSON by the caller (the database,
//! shared by every instance). Old serials stay until they expire: during a rotation answers
//! and notifications come signed by the old or the new certificate.

use super::aead::{AeadError, ApiV3Key, EncryptedResource};
use super::verify::{SignedHeaders, VerifyError};
use crate::payment::pingpp::sign::{certificate, KeyError, RsaPublicKey};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("certificate {stated:?} carries serial {actual:?}")]
    SerialMismatch { stated: String, actual: String },
    #[error("certificate {0:?} expires before it takes effect")]
    Times(String),
    #[error("certificate {serial:?}: {error}")]
    Decrypt { serial: String, error: AeadError },
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("the certificate download does not verify: {0}")]
    Unverified(VerifyError),
}

/// One platform certificate: its serial (upper-case hex), PEM, time in force and RSA key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformCertificate {
    serial_no: String,
    pem: String,
    effective: DateTime<Utc>,
    expire: DateTime<Utc>,
    key: RsaPublicKey,
}

/// Serials compare as numbers: upper-case hex without leading zeros (Python SDKs drop them).
fn serial_key(serial: &str) -> String {
    let s = serial.trim().trim_start_matches('0').to_ascii_uppercase();
    if s.is_empty() {
        "0".to_string()
    } else {
        s
    }
}

impl PlatformCertificate {
    /// Reads the PEM; its serial number must be `serial_no`.
    pub fn new(
        serial_no: &str,
        pem: &str,
        effective: DateTime<Utc>,
        expire: DateTime<Utc>,
    ) -> Result<PlatformCertificate, CertError> {
        let (serial, key) = certificate(pem)?;
        let actual = hex::encode_upper(serial);
        if serial_key(&actual) != serial_key(serial_no) {
            return Err(CertError::SerialMismatch {
                stated: serial_no.to_string(),
                actual,
            });
        }
        if expire <= effective {
            return Err(CertError::Times(serial_no.to_string()));
        }
        Ok(PlatformCertificate {
            serial_no: serial_no.to_string(),
            pem: pem.to_string(),
            effective,
            expire,
            key,
        })
    }

    pub fn serial_no(&self) -> &str {
        &self.serial_no
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn effective(&self) -> DateTime<Utc> {
        self.effective
    }

    pub fn expire(&self) -> DateTime<Utc> {
        self.expire
    }

    pub fn key(&self) -> &RsaPublicKey {
        &self.key
    }

    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.effective <= now && now < self.expire
    }
}

/// The stored form, one per certificate: `{"serial","pem","effective","expire"}`.
#[derive(Serialize, Deserialize)]
struct Stored {
    serial: String,
    pem: String,
    effective: DateTime<Utc>,
    expire: DateTime<Utc>,
}

/// The platform certificates known, by serial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateSet {
    by_serial: BTreeMap<String, PlatformCertificate>,
}

/// `GET /v3/certificates`: `{"data":[{serial_no, effective_time, expire_time, encrypt_certificate}]}`.
#[derive(Deserialize)]
struct Download {
    data: Vec<Downloaded>,
}

#[derive(Deserialize)]
struct Downloaded {
    serial_no: String,
    effective_time: DateTime<FixedOffset>,
    expire_time: DateTime<FixedOffset>,
    encrypt_certificate: EncryptedResource,
}

/// The certificates in a `/v3/certificates` answer, opened with the APIv3 key (not yet
/// trusted: the answer's signature is checked by `CertificateSet::accept_download`).
pub fn parse_download(body: &[u8], key: &ApiV3Key) -> Result<Vec<PlatformCertificate>, CertError> {
    let download: Download =
        serde_json::from_slice(body).map_err(|e| CertError::Malformed(e.to_string()))?;
    download
        .data
        .into_iter()
        .map(|d| {
            let pem = key
                .decrypt(&d.encrypt_certificate)
                .map_err(|error| CertError::Decrypt {
                    serial: d.serial_no.clone(),
                    error,
                })?;
            PlatformCertificate::new(
                &d.serial_no,
                &pem,
                d.effective_time.to_utc(),
                d.expire_time.to_utc(),
            )
        })
        .collect()
}

impl CertificateSet {
    pub fn insert(&mut self, c: PlatformCertificate) {
        self.by_serial.insert(serial_key(&c.serial_no), c);
    }

    pub fn get(&self, serial: &str) -> Option<&PlatformCertificate> {
        self.by_serial.get(&serial_key(serial))
    }

    pub fn iter(&self) -> impl Iterator<Item = &PlatformCertificate> {
        self.by_serial.values()
    }

    pub fn len(&self) -> usize {
        self.by_serial.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_serial.is_empty()
    }

    /// The key of the certificate `serial`, if known and in force at `now`.
    pub fn key_for(&self, serial: &str, now: DateTime<Utc>) -> Result<&RsaPublicKey, VerifyError> {
        match self.get(serial) {
            None => Err(VerifyError::UnknownSerial(serial.to_string())),
            Some(c) if !c.in_force(now) => Err(VerifyError::NotInForce(serial.to_string())),
            Some(c) => Ok(&c.key),
        }
    }

    /// The certificate in force that expires last.
    pub fn newest_in_force(&self, now: DateTime<Utc>) -> Option<&PlatformCertificate> {
        self.iter()
            .filter(|c| c.in_force(now))
            .max_by_key(|c| c.expire)
    }

    /// True when no certificate is known or the newest expires within `ahead` of `now`.
    pub fn needs_refresh(&self, now: DateTime<Utc>, ahead: TimeDelta) -> bool {
        match self.iter().map(|c| c.expire).max() {
            None => true,
            Some(expire) => expire - now <= ahead,
        }
    }

    /// Drops the certificates expired at `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.by_serial.retain(|_, c| c.expire > now);
    }

    /// Takes in a `/v3/certificates` answer (headers and raw body): the answer must be signed
    /// by a certificate already known and in force, or by one it brings itself (their being
    /// sealed with the APIv3 key vouches for them: a platform that has started signing with
    /// its new certificate is followed at once).
    /// Expired certificates are dropped. Returns how many serials were new.
    pub fn accept_download(
        &mut self,
        headers: &SignedHeaders,
        body: &[u8],
        key: &ApiV3Key,
        now: DateTime<Utc>,
    ) -> Result<usize, CertError> {
        let fresh = parse_download(body, key)?;
        self.prune(now);
        // Signed by a certificate already trusted, or by one of those it brings: they are
        // authenticated by the APIv3 key that opened them (as the official SDKs do), and a
        // platform that has started signing with its new certificate is followed at once.
        let signers = fresh.iter().cloned().fold(self.clone(), |mut s, c| {
            s.insert(c);
            s
        });
        headers
            .check(body, now, |serial| signers.key_for(serial, now))
            .map_err(CertError::Unverified)?;
        let before = self.len();
        for c in fresh {
            self.insert(c);
        }
        self.prune(now);
        Ok(self.len().saturating_sub(before))
    }

    /// `[{"serial","pem","effective","expire"}, …]` for the caller to store.
    pub fn to_json(&self) -> String {
        let stored: Vec<Stored> = self
            .iter()
            .map(|c| Stored {
                serial: c.serial_no.clone(),
                pem: c.pem.clone(),
                effective: c.effective,
                expire: c.expire,
            })
            .collect();
        serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_string())
    }

    /// Reads what `to_json` wrote; every PEM is parsed and checked against its serial again.
    pub fn from_json(json: &str) -> Result<CertificateSet, CertError> {
        let stored: Vec<Stored> =
            serde_json::from_str(json).map_err(|e| CertError::Malformed(e.to_string()))?;
        let mut set = CertificateSet::default();
        for s in stored {
            set.insert(PlatformCertificate::new(
                &s.serial,
                &s.pem,
                s.effective,
                s.expire,
            )?);
        }
        Ok(set)
    }
}

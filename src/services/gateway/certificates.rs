//! WeChat Pay APIv3 platform certificates (platform-certificate mode): kept in the process's
//! one verifier and in `api_token` (one row per merchant, JSON), so every instance verifies
//! with the same set. A set that is empty, about to expire, or missing a serial WeChat just
//! signed with is first completed from the database, then downloaded (`GET
//! /v3/certificates`) by one instance at a time; old serials stay until they expire.

use super::Gateway;
use crate::models::{api_token, now};
use crate::payment::wechat_v3::{
    CertificateSet, Notification, NotifyError, SignedHeaders, VerifyError,
};
use crate::services::{run, ServiceError};

/// Certificates are downloaded again this long before the newest one expires.
const REFRESH_AHEAD: chrono::Duration = chrono::Duration::hours(12);
/// How long one instance may take to download before another may try.
const DOWNLOAD_LEASE: chrono::Duration = chrono::Duration::seconds(30);

impl Gateway {
    fn certificates_row(&self) -> String {
        let mchid = self.wechat_v3.as_ref().map(|v3| v3.client.mchid());
        format!("wechatpay_certs:{}", mchid.unwrap_or_default())
    }

    /// Whether the verifier can verify what WeChat signs now (and `serial`, if given).
    fn certificates_ready(&self, serial: Option<&str>) -> bool {
        let Some(v3) = &self.wechat_v3 else {
            return true;
        };
        let verifier = v3.client.verifier();
        let set = verifier.certificate_set();
        let t = chrono::Utc::now();
        !set.needs_refresh(t, REFRESH_AHEAD) && serial.is_none_or(|s| set.get(s).is_some())
    }

    /// Makes the APIv3 verifier ready (platform-certificate mode only): from the database
    /// when another instance has the certificates, else by downloading them. `serial`: a
    /// certificate WeChat signed with that this process does not know (a rotation).
    pub async fn v3_certificates(&self, serial: Option<&str>) -> Result<(), ServiceError> {
        let Some(v3) = self.wechat_v3.as_ref().filter(|_| self.v3_certificate_mode) else {
            return Ok(());
        };
        let name = self.certificates_row();
        if self.certificates_ready(serial) {
            return self.share_certificates(&name).await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            // What another instance stored.
            let n = name.clone();
            let stored = run(&self.db, move |c| Ok(api_token::find(c, &n)?)).await?;
            if let Some(set) = stored.and_then(|row| CertificateSet::from_json(&row.token).ok()) {
                let mut verifier = v3.client.verifier();
                for c in set.iter() {
                    verifier.certificate_set_mut().insert(c.clone());
                }
                v3.client.set_verifier(verifier);
                if self.certificates_ready(serial) {
                    return Ok(());
                }
            }
            let (n, t) = (name.clone(), now());
            let claimed = run(&self.db, move |c| {
                Ok(api_token::claim_refresh(c, &n, t, t + DOWNLOAD_LEASE)?)
            })
            .await?;
            if claimed {
                return self.download_certificates(&name).await;
            }
            if std::time::Instant::now() >= deadline {
                // Another instance is downloading: verify with what is here meanwhile.
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Certificates this process learnt by itself (a client that met a new serial in an
    /// answer downloads them) are stored for the other instances.
    async fn share_certificates(&self, name: &str) -> Result<(), ServiceError> {
        let Some(v3) = &self.wechat_v3 else {
            return Ok(());
        };
        let verifier = v3.client.verifier();
        let mut all = verifier.certificate_set().clone();
        let shared = {
            let held = self.v3_memory.stored();
            all.iter().all(|c| held.contains(c.serial_no()))
        };
        if shared {
            return Ok(());
        }
        let n = name.to_string();
        let stored = run(&self.db, move |c| Ok(api_token::find(c, &n)?)).await?;
        let known = stored
            .and_then(|row| CertificateSet::from_json(&row.token).ok())
            .unwrap_or_default();
        self.v3_memory.remember(&known);
        if all.iter().all(|c| known.get(c.serial_no()).is_some()) {
            return Ok(());
        }
        for c in known.iter() {
            all.insert(c.clone());
        }
        let until = all
            .iter()
            .map(|c| c.expire().naive_utc())
            .max()
            .unwrap_or_else(now);
        let (n, json) = (name.to_string(), all.to_json());
        run(&self.db, move |c| {
            if api_token::find(c, &n)?.is_none() {
                api_token::claim_refresh(c, &n, now(), now())?;
            }
            Ok(api_token::store(c, &n, &json, until, now())?)
        })
        .await?;
        self.v3_memory.remember(&all);
        Ok(())
    }

    async fn download_certificates(&self, name: &str) -> Result<(), ServiceError> {
        let Some(v3) = &self.wechat_v3 else {
            return Ok(());
        };
        let n = name.to_string();
        match v3.client.refresh_certificates().await {
            Ok(fresh) => {
                let verifier = v3.client.verifier();
                let set = verifier.certificate_set();
                let json = set.to_json();
                let until = set
                    .iter()
                    .map(|c| c.expire().naive_utc())
                    .max()
                    .unwrap_or_else(now);
                log::info!(
                    "WeChat Pay platform certificates: {fresh} new, {} held",
                    set.len()
                );
                run(&self.db, move |c| {
                    Ok(api_token::store(c, &n, &json, until, now())?)
                })
                .await?;
                self.v3_memory.remember(set);
                Ok(())
            }
            Err(e) => {
                run(&self.db, move |c| Ok(api_token::release(c, &n)?)).await?;
                Err(ServiceError::Gateway(format!(
                    "WeChat Pay platform certificates: {e}"
                )))
            }
        }
    }
}

/// Notifications signed by an unknown serial bring at most one certificate download per
/// this interval (per process).
const UNKNOWN_SERIAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// What the process remembers about its platform certificates, shared by its gateways.
#[derive(Debug, Default)]
pub struct CertificateMemory {
    /// When a notification's unknown serial last brought a download.
    serial_download: std::sync::Mutex<Option<std::time::Instant>>,
    /// The serials the database is known to hold: while the verifier holds no other, there
    /// is nothing to share, and no APIv3 call or notification reads the row for it.
    stored: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl CertificateMemory {
    fn stored(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, set: &CertificateSet) {
        self.stored()
            .extend(set.iter().map(|c| c.serial_no().to_string()));
    }
}

impl Gateway {
    /// Whether a notification's unknown serial may bring a download now (and notes it).
    fn may_download_for_serial(&self) -> bool {
        let mut last = self
            .v3_memory
            .serial_download
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < UNKNOWN_SERIAL_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// A WeChat Pay APIv3 notification verified over its raw bytes and opened. A serial this
    /// process does not know (WeChat started signing with a new certificate) first brings
    /// the platform's certificates up to date, then the notification is checked once more.
    pub async fn v3_notification(
        &self,
        headers: Result<SignedHeaders, VerifyError>,
        body: &[u8],
    ) -> Result<Notification, NotifyError> {
        let Some(v3) = &self.wechat_v3 else {
            return Err(NotifyError::Malformed(
                "WeChat Pay APIv3 is not configured".into(),
            ));
        };
        let headers = headers?;
        if let Err(e) = self.v3_certificates(None).await {
            log::warn!("{e}");
        }
        match v3.client.notification(&headers, body) {
            // Anyone can post a serial: at most one download per interval for such a
            // notification, so forged ones cannot make the shop hammer WeChat.
            Err(NotifyError::Unverified(VerifyError::UnknownSerial(serial)))
                if self.v3_certificate_mode && self.may_download_for_serial() =>
            {
                if let Err(e) = self.v3_certificates(Some(&serial)).await {
                    log::warn!("{e}");
                }
                v3.client.notification(&headers, body)
            }
            other => other,
        }
    }
}

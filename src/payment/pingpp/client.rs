//! The Ping++ client: charges create / retrieve / list with the secret key, and the merchant
//! request signature when a merchant private key is configured.

use super::objects::{ApiErrorBody, Charge, CreateCharge, CreateRefund, ErrorEnvelope, Refund};
use super::sign::request_signature;
use super::sign::RsaPrivateKey;
use crate::config::Redacted;
use crate::payment::transport_error;

#[derive(Clone)]
pub struct Pingpp {
    pub http: reqwest::Client,
    /// `https://api.pingxx.com` or the sandbox's `…/sandbox/pingpp`.
    pub base: String,
    pub secret_key: String,
    pub merchant_key: Option<RsaPrivateKey>,
}

impl std::fmt::Debug for Pingpp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pingpp")
            .field("base", &self.base)
            .field("secret_key", &Redacted(&self.secret_key))
            .field(
                "merchant_key",
                &self.merchant_key.as_ref().map(|_| Redacted("key")),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PingppError {
    #[error("transport error: {0}")]
    Transport(String),
    #[error("bad response: {0}")]
    BadResponse(String),
    #[error("{status} {}: {}", .error.kind, .error.message)]
    Api { status: u16, error: ApiErrorBody },
}

/// A charge and the raw JSON it came in, for `pay_log`.
#[derive(Debug, Clone)]
pub struct ChargeReply {
    pub charge: Charge,
    pub raw: String,
}

impl Pingpp {
    /// Sends one request. `uri` is the path from `/v1/…` with its query, exactly as signed.
    async fn send(
        &self,
        method: reqwest::Method,
        uri: &str,
        body: Option<String>,
    ) -> Result<String, PingppError> {
        self.send_with(method, uri, body, true).await
    }

    /// `retry_502`: the SDKs retry once on 502; a refund POST must not (a 502 may come after
    /// the money left: the caller looks for the refund before posting again).
    async fn send_with(
        &self,
        method: reqwest::Method,
        uri: &str,
        body: Option<String>,
        retry_502: bool,
    ) -> Result<String, PingppError> {
        let url = format!("{}{}", self.base.trim_end_matches('/'), uri);
        let body_bytes = body.clone().unwrap_or_default();
        for attempt in 0..2 {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.secret_key);
            if let Some(b) = &body {
                req = req
                    .header("content-type", "application/json;charset=UTF-8")
                    .body(b.clone());
            }
            if let Some(key) = &self.merchant_key {
                let ts = chrono::Utc::now().timestamp().to_string();
                let sig = request_signature(key, body_bytes.as_bytes(), uri, &ts)
                    .map_err(|e| PingppError::Transport(e.to_string()))?;
                req = req
                    .header("Pingplusplus-Request-Timestamp", ts)
                    .header("Pingplusplus-Signature", sig);
            }
            let res = req
                .send()
                .await
                .map_err(|e| PingppError::Transport(format!("{uri}: {}", transport_error(e))))?;
            let status = res.status().as_u16();
            let text = res
                .text()
                .await
                .map_err(|e| PingppError::Transport(format!("{uri}: {}", transport_error(e))))?;
            if status == 502 && attempt == 0 && retry_502 {
                continue;
            }
            if (200..300).contains(&status) {
                return Ok(text);
            }
            let error = serde_json::from_str::<ErrorEnvelope>(&text)
                .map(|e| e.error)
                .unwrap_or(ApiErrorBody {
                    kind: "api_error".into(),
                    message: text.chars().take(200).collect(),
                    code: None,
                    param: None,
                });
            return Err(PingppError::Api { status, error });
        }
        Err(PingppError::Transport(format!("{uri}: 502 twice")))
    }

    fn charge(raw: String) -> Result<ChargeReply, PingppError> {
        let charge = serde_json::from_str(&raw)
            .map_err(|e| PingppError::BadResponse(format!("not a charge: {e}")))?;
        Ok(ChargeReply { charge, raw })
    }

    pub async fn create_charge(&self, req: &CreateCharge) -> Result<ChargeReply, PingppError> {
        let body = serde_json::to_string(req).map_err(|e| PingppError::Transport(e.to_string()))?;
        let raw = self
            .send(reqwest::Method::POST, "/v1/charges", Some(body))
            .await?;
        Self::charge(raw)
    }

    pub async fn retrieve_charge(&self, id: &str) -> Result<ChargeReply, PingppError> {
        let raw = self
            .send(reqwest::Method::GET, &format!("/v1/charges/{id}"), None)
            .await?;
        Self::charge(raw)
    }

    /// `GET /v1/charges?app[id]=…&limit=…`: the newest charges of the app.
    pub async fn list_charges(&self, app_id: &str, limit: u32) -> Result<Vec<Charge>, PingppError> {
        let uri = format!("/v1/charges?app%5Bid%5D={app_id}&limit={limit}");
        let raw = self.send(reqwest::Method::GET, &uri, None).await?;
        let v: serde_json::Value =
            serde_json::from_str(&raw).map_err(|e| PingppError::BadResponse(e.to_string()))?;
        serde_json::from_value(v["data"].clone())
            .map_err(|e| PingppError::BadResponse(e.to_string()))
    }

    /// `POST /v1/charges/{id}/refunds`.
    pub async fn create_refund(
        &self,
        charge_id: &str,
        req: &CreateRefund,
    ) -> Result<(Refund, String), PingppError> {
        let body = serde_json::to_string(req).map_err(|e| PingppError::Transport(e.to_string()))?;
        let raw = self
            .send_with(
                reqwest::Method::POST,
                &format!("/v1/charges/{charge_id}/refunds"),
                Some(body),
                false,
            )
            .await?;
        let refund = serde_json::from_str(&raw)
            .map_err(|e| PingppError::BadResponse(format!("not a refund: {e}")))?;
        Ok((refund, raw))
    }

    /// `GET /v1/charges/{id}/refunds?limit=100`: the charge's refunds, newest first.
    pub async fn list_refunds(
        &self,
        charge_id: &str,
    ) -> Result<(Vec<Refund>, String), PingppError> {
        let raw = self
            .send(
                reqwest::Method::GET,
                &format!("/v1/charges/{charge_id}/refunds?limit=100"),
                None,
            )
            .await?;
        let v: serde_json::Value =
            serde_json::from_str(&raw).map_err(|e| PingppError::BadResponse(e.to_string()))?;
        let list = serde_json::from_value(v["data"].clone())
            .map_err(|e| PingppError::BadResponse(format!("not a refund list: {e}")))?;
        Ok((list, raw))
    }

    /// `GET /v1/charges/{id}/refunds/{re_id}`.
    pub async fn retrieve_refund(
        &self,
        charge_id: &str,
        refund_id: &str,
    ) -> Result<(Refund, String), PingppError> {
        let raw = self
            .send(
                reqwest::Method::GET,
                &format!("/v1/charges/{charge_id}/refunds/{refund_id}"),
                None,
            )
            .await?;
        let refund = serde_json::from_str(&raw)
            .map_err(|e| PingppError::BadResponse(format!("not a refund: {e}")))?;
        Ok((refund, raw))
    }
}

//! Notifications: verify the signed POST (headers and raw body), open its sealed `resource`,
//! read it as a payment or a refund; and the bodies to answer with.

use super::aead::{AeadError, ApiV3Key, EncryptedResource};
use super::verify::{SignedHeaders, Verifier, VerifyError};
use super::wire::{RefundNotice, Transaction};
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("notification not verified: {0}")]
    Unverified(#[from] VerifyError),
    #[error("malformed notification: {0}")]
    Malformed(String),
    #[error("notification resource: {0}")]
    Decrypt(#[from] AeadError),
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(default)]
    create_time: Option<String>,
    event_type: String,
    #[serde(default)]
    summary: Option<String>,
    resource: EncryptedResource,
}

/// A verified notification with its resource opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The notification's id (the same on every re-delivery).
    pub id: String,
    pub create_time: Option<String>,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`…
    pub event_type: String,
    pub summary: Option<String>,
    /// `transaction`, `refund`.
    pub original_type: Option<String>,
    /// The opened resource, JSON.
    pub resource: String,
}

/// What a notification says, read by its event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// TRANSACTION.SUCCESS
    Paid(Transaction),
    /// REFUND.SUCCESS, REFUND.ABNORMAL, REFUND.CLOSED
    Refund(RefundNotice),
    /// An event type this module does not read.
    Other(String),
}

/// Verifies a notification against the raw body bytes (never re-serialised), then opens its
/// resource with the APIv3 key.
pub fn parse_notification(
    verifier: &Verifier,
    key: &ApiV3Key,
    headers: &SignedHeaders,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Notification, NotifyError> {
    verifier.verify(headers, body, now)?;
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| NotifyError::Malformed(e.to_string()))?;
    let resource = key.decrypt(&envelope.resource)?;
    Ok(Notification {
        id: envelope.id,
        create_time: envelope.create_time,
        event_type: envelope.event_type,
        summary: envelope.summary,
        original_type: envelope.resource.original_type,
        resource,
    })
}

impl Notification {
    /// The resource read by event type: a payment or a refund.
    pub fn event(&self) -> Result<Event, NotifyError> {
        let malformed = |e: serde_json::Error| NotifyError::Malformed(e.to_string());
        match self.event_type.as_str() {
            "TRANSACTION.SUCCESS" => serde_json::from_str(&self.resource)
                .map(Event::Paid)
                .map_err(malformed),
            "REFUND.SUCCESS" | "REFUND.ABNORMAL" | "REFUND.CLOSED" => {
                serde_json::from_str(&self.resource)
                    .map(Event::Refund)
                    .map_err(malformed)
            }
            other => Ok(Event::Other(other.to_string())),
        }
    }
}

/// The answer to a notification. Success is a 204 with no body (200 or 204 both count);
/// failure is a 4xx/5xx with `{"code":"FAIL","message":…}`, and WeChat Pay delivers again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyReply {
    pub status: u16,
    pub body: String,
}

impl NotifyReply {
    pub fn success() -> NotifyReply {
        NotifyReply {
            status: 204,
            body: String::new(),
        }
    }

    /// `status` outside 400..=599 becomes 500: only an error status brings a re-delivery.
    pub fn failure(status: u16, message: &str) -> NotifyReply {
        NotifyReply {
            status: if (400..=599).contains(&status) {
                status
            } else {
                500
            },
            body: serde_json::json!({"code": "FAIL", "message": message}).to_string(),
        }
    }

    /// `application/json` with a body, none without.
    pub fn content_type(&self) -> Option<&'static str> {
        (!self.body.is_empty()).then_some("application/json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_an_empty_204_or_a_fail_body_with_an_error_status() {
        assert_eq!(NotifyReply::success().status, 204);
        assert_eq!(NotifyReply::success().body, "");
        assert_eq!(NotifyReply::success().content_type(), None);
        let fail = NotifyReply::failure(401, "签名错误 \"x\"");
        assert_eq!(fail.status, 401);
        let v: serde_json::Value = serde_json::from_str(&fail.body).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"code": "FAIL", "message": "签名错误 \"x\""})
        );
        assert_eq!(NotifyReply::failure(200, "x").status, 500);
    }
}

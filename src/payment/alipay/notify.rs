//! Alipay's asynchronous notifications (异步通知): a form POST, verified as Alipay specifies
//! (values decoded exactly once; `sign` and `sign_type` left out; sorted), then read.

use super::sign::{verify_notification, Params};
use crate::domain::Money;
use crate::payment::pingpp::sign::RsaPublicKey;

/// A verified notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlipayNotice {
    pub notify_id: String,
    pub app_id: String,
    pub seller_id: String,
    pub out_trade_no: String,
    pub trade_no: String,
    /// WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED.
    pub trade_status: String,
    pub total_amount: Money,
    /// Cumulative refunded amount (a refund's notification), if any.
    pub refund_fee: Option<Money>,
    /// The refund's out_request_no (a partial refund's notification).
    pub out_biz_no: Option<String>,
}

impl AlipayNotice {
    /// TRADE_SUCCESS or TRADE_FINISHED, with no refund in it: a payment.
    pub fn is_payment(&self) -> bool {
        matches!(
            self.trade_status.as_str(),
            "TRADE_SUCCESS" | "TRADE_FINISHED"
        ) && !self.is_refund()
    }

    /// Money went back (a refund's notification): a `refund_fee` above zero.
    pub fn is_refund(&self) -> bool {
        self.refund_fee.is_some_and(|f| f.fen() > 0)
    }
}

/// Why a notification is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("signature does not verify")]
    BadSignature,
}

/// The fields of a form body, each decoded once.
pub fn form_fields(body: &[u8]) -> Result<Params, NoticeError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|e| NoticeError::Malformed(e.to_string()))?;
    Ok(pairs.into_iter().collect())
}

/// Verifies and reads a notification body.
pub fn parse_notification(key: &RsaPublicKey, body: &[u8]) -> Result<AlipayNotice, NoticeError> {
    let fields = form_fields(body)?;
    if !verify_notification(key, &fields) {
        return Err(NoticeError::BadSignature);
    }
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let money = |k: &str| -> Result<Option<Money>, NoticeError> {
        match fields.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => Money::parse_yuan(v)
                .map(Some)
                .map_err(|_| NoticeError::Malformed(format!("{k} {v:?}"))),
        }
    };
    let total_amount =
        money("total_amount")?.ok_or_else(|| NoticeError::Malformed("no total_amount".into()))?;
    let notice = AlipayNotice {
        notify_id: get("notify_id"),
        app_id: get("app_id"),
        seller_id: get("seller_id"),
        out_trade_no: get("out_trade_no"),
        trade_no: get("trade_no"),
        trade_status: get("trade_status"),
        total_amount,
        refund_fee: money("refund_fee")?,
        out_biz_no: fields.get("out_biz_no").filter(|v| !v.is_empty()).cloned(),
    };
    if notice.out_trade_no.is_empty() || notice.trade_no.is_empty() {
        return Err(NoticeError::Malformed("no out_trade_no or trade_no".into()));
    }
    Ok(notice)
}

//! What can go wrong in an APIv3 call, and which outcomes are still open (retry with the same
//! parameters, or query) versus definitive (fact sheet PROTOCOLS-v3-alipay.md §A6).

use super::verify::VerifyError;
use crate::payment::pingpp::sign::KeyError;

/// One request and its answer as seen on the wire, for the payment log. The request line has
/// no host; no secret is in it (the Authorization header is left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// `POST /v3/pay/transactions/native`
    pub request_line: String,
    pub request_body: String,
    pub status: u16,
    pub response_body: String,
    /// The `Request-ID` header, for WeChat Pay's support.
    pub request_id: Option<String>,
}

/// A verified answer that says no: `{"code","message"}` with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct PlatformError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub exchange: Box<Exchange>,
}

/// Codes whose outcome is open: the request may or may not have taken effect, or the platform
/// asks to come back later. 2020 tables spell some without the underscore.
const OPEN_CODES: &[&str] = &[
    "SYSTEM_ERROR",
    "SYSTEMERROR",
    "SERVICE_UNAVAILABLE",
    "FREQUENCY_LIMITED",
    "RATELIMIT_EXCEEDED",
    "RATE_LIMITED",
    "USER_PAYING",
    "USERPAYING",
    "BIZERR_NEED_RETRY",
];

/// Listed under HTTP 500 but definitive.
const DEFINITIVE_500: &[&str] = &["INVALID_TRANSACTIONID", "OPENID_MISMATCH"];

impl PlatformError {
    /// Open outcome: retry with identical parameters (the same out_trade_no / out_refund_no
    /// and amount), or query. SYSTEM_ERROR, FREQUENCY_LIMITED and the rate limits,
    /// SERVICE_UNAVAILABLE, USER_PAYING, and any other 429 or 5xx but INVALID_TRANSACTIONID
    /// and OPENID_MISMATCH. Everything else (PARAM_ERROR, SIGN_ERROR, ORDER_CLOSED,
    /// OUT_TRADE_NO_USED, NOT_ENOUGH, USER_ACCOUNT_ABNORMAL, ORDER_NOT_EXIST…) is definitive.
    pub fn is_retryable(&self) -> bool {
        let code = self.code.as_str();
        if OPEN_CODES.contains(&code) {
            return true;
        }
        if DEFINITIVE_500.contains(&code) {
            return false;
        }
        self.status == 429 || self.status >= 500
    }

    fn is(&self, codes: &[&str]) -> bool {
        codes.contains(&self.code.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V3Error {
    /// Refused before sending: the request breaks a field rule.
    #[error("request not sent: {0}")]
    Invalid(String),
    /// The merchant key could not sign.
    #[error("signing: {0}")]
    Key(#[from] KeyError),
    /// No answer (refused connection, timeout, cut body); the text has no URL in it.
    #[error("transport error: {message}")]
    Transport { message: String, timeout: bool },
    /// A 5xx without signature headers: a gateway's own page, not WeChat Pay's word.
    #[error("unsigned {status} answer")]
    Unsigned {
        status: u16,
        exchange: Box<Exchange>,
    },
    /// An answer that does not verify: not believed, whatever it says.
    #[error("unverified {status} answer: {error}")]
    Unverified {
        status: u16,
        error: VerifyError,
        exchange: Box<Exchange>,
    },
    /// A verified answer that cannot be read, or an unexpected status.
    #[error("unexpected {status} answer: {why}")]
    BadAnswer {
        status: u16,
        why: String,
        exchange: Box<Exchange>,
    },
    /// A verified refusal.
    #[error(transparent)]
    Platform(PlatformError),
}

impl V3Error {
    /// True when the outcome is open: nothing trustworthy says what happened, so retry with
    /// identical parameters or query later. A transport failure or timeout, an unsigned 5xx,
    /// an answer that does not verify or cannot be read, and the open platform codes are;
    /// a request refused before sending and the definitive platform codes are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            V3Error::Invalid(_) | V3Error::Key(_) => false,
            V3Error::Transport { .. }
            | V3Error::Unsigned { .. }
            | V3Error::Unverified { .. }
            | V3Error::BadAnswer { .. } => true,
            V3Error::Platform(e) => e.is_retryable(),
        }
    }

    pub fn platform(&self) -> Option<&PlatformError> {
        match self {
            V3Error::Platform(e) => Some(e),
            _ => None,
        }
    }

    /// The trade or refund is unknown to WeChat Pay (`ORDER_NOT_EXIST`,
    /// `RESOURCE_NOT_EXISTS`; the 2020 spelling `ORDERNOTEXIST`). For a trade created a
    /// moment ago, ask once more before believing it.
    pub fn is_not_found(&self) -> bool {
        self.platform()
            .is_some_and(|e| e.is(&["ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS"]))
    }

    /// The trade is already closed (`ORDER_CLOSED`): closing again is a no-op.
    pub fn is_order_closed(&self) -> bool {
        self.platform()
            .is_some_and(|e| e.is(&["ORDER_CLOSED", "ORDERCLOSED"]))
    }

    /// A close refused because the trade may have been paid: query it and apply the payment.
    /// v3's code for this is not documented (v2 says ORDERPAID), so the v2 spelling, its
    /// underscored form and TRADE_ERROR all count.
    pub fn may_be_paid(&self) -> bool {
        self.platform()
            .is_some_and(|e| e.is(&["ORDERPAID", "ORDER_PAID", "TRADE_ERROR"]))
    }

    /// What was sent and answered, when an answer came.
    pub fn exchange(&self) -> Option<&Exchange> {
        match self {
            V3Error::Unsigned { exchange, .. }
            | V3Error::Unverified { exchange, .. }
            | V3Error::BadAnswer { exchange, .. } => Some(exchange),
            V3Error::Platform(e) => Some(&e.exchange),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(status: u16, code: &str) -> V3Error {
        V3Error::Platform(PlatformError {
            status,
            code: code.into(),
            message: String::new(),
            exchange: Box::new(Exchange {
                request_line: String::new(),
                request_body: String::new(),
                status,
                response_body: String::new(),
                request_id: None,
            }),
        })
    }

    #[test]
    fn open_outcomes_are_retried_and_definitive_ones_are_not() {
        for (status, code) in [
            (500, "SYSTEM_ERROR"),
            (500, "SYSTEMERROR"),
            (429, "FREQUENCY_LIMITED"),
            (429, "RATELIMIT_EXCEEDED"),
            (503, "SERVICE_UNAVAILABLE"),
            (502, "ANYTHING"),
            (202, "USER_PAYING"),
        ] {
            assert!(platform(status, code).is_retryable(), "{status} {code}");
        }
        for (status, code) in [
            (400, "PARAM_ERROR"),
            (400, "INVALID_REQUEST"),
            (401, "SIGN_ERROR"),
            (400, "ORDER_CLOSED"),
            (403, "OUT_TRADE_NO_USED"),
            (403, "NOT_ENOUGH"),
            (403, "USER_ACCOUNT_ABNORMAL"),
            (403, "NO_AUTH"),
            (404, "ORDER_NOT_EXIST"),
            (404, "RESOURCE_NOT_EXISTS"),
            (500, "INVALID_TRANSACTIONID"),
            (500, "OPENID_MISMATCH"),
        ] {
            assert!(!platform(status, code).is_retryable(), "{status} {code}");
        }
        let timeout = V3Error::Transport {
            message: "timed out".into(),
            timeout: true,
        };
        assert!(timeout.is_retryable());
        assert!(!V3Error::Invalid("x".into()).is_retryable());
    }

    #[test]
    fn the_helpers_name_not_found_closed_and_maybe_paid() {
        assert!(platform(404, "ORDER_NOT_EXIST").is_not_found());
        assert!(platform(404, "RESOURCE_NOT_EXISTS").is_not_found());
        assert!(!platform(500, "SYSTEM_ERROR").is_not_found());
        assert!(platform(400, "ORDER_CLOSED").is_order_closed());
        assert!(platform(400, "ORDERPAID").may_be_paid());
        assert!(platform(403, "TRADE_ERROR").may_be_paid());
        assert!(!platform(400, "ORDER_CLOSED").may_be_paid());
    }
}

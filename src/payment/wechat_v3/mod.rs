//! WeChat Pay APIv3: signatures, verification, AES-256-GCM, platform certificates, wire
//! bodies, notifications and the HTTP client. May import `domain`, the RSA primitives of
//! `payment::pingpp::sign`, `payment::transport_error`, `payment::connector` and v2's `nonce`; never
//! config, services or the database (all comes in through constructor parameters), so it can
//! sit behind the shop's connector interface.

pub mod aead;
pub mod certs;
pub mod client;
pub mod connector;
pub mod error;
pub mod notify;
pub mod sign;
pub mod verify;
pub mod wire;

#[cfg(test)]
mod tests;

pub use aead::{AeadError, ApiV3Key, EncryptedResource};
pub use certs::{CertError, CertificateSet, PlatformCertificate};
pub use client::{Answer, Clock, Merchant, WxPayV3};
pub use error::{Exchange, PlatformError, V3Error};
pub use notify::{parse_notification, Event, Notification, NotifyError, NotifyReply};
pub use sign::{JsapiParams, Signer};
pub use verify::{SignedHeaders, Verifier, VerifyError};
pub use wire::{
    Prepared, Prepay, Refund, RefundNotice, RefundRequest, RefundStatus, TradeState, TradeType,
    Transaction,
};

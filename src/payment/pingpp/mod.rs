//! Ping++: charges through one aggregated gateway (WeChat and Alipay), RSA-signed webhooks.

pub mod client;
pub mod connector;
pub mod objects;
pub mod sign;

pub use client::{ChargeReply, Pingpp, PingppError};
pub use objects::{AppRef, Charge, CreateCharge, CreateRefund, Event, Refund};

/// Reads a header case-insensitively (Apache lower-cases `X-Pingplusplus-Signature`).
pub const SIGNATURE_HEADER: &str = "x-pingplusplus-signature";

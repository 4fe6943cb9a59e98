//! WeChat: the mini-program login and WeChat Pay v2 (XML, MD5/HMAC-SHA256 signatures).

pub mod bill;
pub mod client;
pub mod connector;
pub mod login;
pub mod notify;
pub mod refund;
pub mod shipping;
pub mod sign;
pub mod xml;

pub use client::{Exchange, TradeType, UnifiedOrder, WxError, WxPay};
pub use sign::{Params, SignType};

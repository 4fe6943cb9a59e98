//! Alipay direct (OpenAPI `gateway.do`): RSA2 signing, verified answers and notifications,
//! and `AlipayConnector` behind the connector interface. May import domain, the RSA
//! primitives of `payment::pingpp::sign`, `payment::transport_error` and
//! `payment::connector`; never config, services or the database.

pub mod bill;
pub mod client;
pub mod connector;
pub mod notify;
pub mod sign;

pub use client::{Alipay, AlipayError, Answer, CertSn};
pub use connector::AlipayConnector;
pub use notify::{parse_notification, AlipayNotice};

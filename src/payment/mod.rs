//! Payment platforms' wire formats, signing and clients. May import domain and config (and
//! derive utoipa schemas for objects the API passes on).

pub mod alipay;
pub mod bill;
pub mod connector;
pub mod pingpp;
pub mod wechat;
pub mod wechat_v3;
pub mod x509;

/// An outbound HTTP error as text that is safe to show and log: without the request URL
/// (`sns/jscode2session` carries the AppSecret in its query) but with the causes, which
/// say what went wrong (refused connection, timeout, undecodable body).
pub fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

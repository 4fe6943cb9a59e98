//! `GET {base}/sns/jscode2session`: trades a `wx.login` code for the user's openid.
//!
//! The request carries the AppSecret in its query string, so no error of this module holds
//! the URL or the answer's body (a proxy's error page may echo the URL).

use crate::config::WechatConfig;
use crate::payment::transport_error;
use serde::Deserialize;

#[derive(Deserialize)]
struct Answer {
    openid: Option<String>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

/// Why a login failed; the text is safe to log (no URL, no secret).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoginError {
    /// No usable answer: unreachable, timed out, or not JSON.
    #[error("jscode2session failed: {0}")]
    Transport(String),
    /// An HTTP error status (a proxy or the platform in trouble).
    #[error("jscode2session answered HTTP {0}")]
    Status(u16),
    /// WeChat refused the code (40029 invalid, 40163 already used…).
    #[error("jscode2session refused the code: errcode {errcode} {errmsg}")]
    Refused { errcode: i64, errmsg: String },
}

/// The openid for `code`, or why there is none.
pub async fn code2session(
    http: &reqwest::Client,
    base: &str,
    cfg: &WechatConfig,
    code: &str,
) -> Result<String, LoginError> {
    let url = format!("{}/sns/jscode2session", base.trim_end_matches('/'));
    let res = http
        .get(&url)
        .query(&[
            ("appid", cfg.appid.as_str()),
            ("secret", cfg.app_secret.as_str()),
            ("js_code", code),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await
        .map_err(|e| LoginError::Transport(transport_error(e)))?;
    if !res.status().is_success() {
        return Err(LoginError::Status(res.status().as_u16()));
    }
    let answer: Answer = res
        .json()
        .await
        .map_err(|e| LoginError::Transport(transport_error(e)))?;
    match (answer.openid, answer.errcode) {
        (Some(openid), None | Some(0)) if !openid.is_empty() => Ok(openid),
        (_, code) => Err(LoginError::Refused {
            errcode: code.unwrap_or(-1),
            errmsg: answer.errmsg.unwrap_or_default(),
        }),
    }
}

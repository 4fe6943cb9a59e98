//! `GET {base}/sns/jscode2session`: trades a `wx.login` code for the user's openid.

use crate::config::WechatConfig;
use serde::Deserialize;

#[derive(Deserialize)]
struct Answer {
    openid: Option<String>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

/// The openid for `code`, or WeChat's error message.
pub async fn code2session(
    http: &reqwest::Client,
    base: &str,
    cfg: &WechatConfig,
    code: &str,
) -> Result<String, String> {
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
        .map_err(|e| format!("request to {url} failed: {e}"))?;
    let answer: Answer = res
        .json()
        .await
        .map_err(|e| format!("unreadable answer from {url}: {e}"))?;
    match (answer.openid, answer.errcode) {
        (Some(openid), None | Some(0)) if !openid.is_empty() => Ok(openid),
        (_, code) => Err(format!(
            "errcode {} {}",
            code.unwrap_or(-1),
            answer.errmsg.unwrap_or_default()
        )),
    }
}

//! WeChat's two code exchanges: `GET {base}/sns/jscode2session` trades a mini-program
//! `wx.login` code for the user's openid; `GET {base}/sns/oauth2/access_token` trades the
//! code of an Official Account's web OAuth (snsapi_base) for the openid under that account.
//!
//! Both requests carry the AppSecret in their query string, so no error of this module holds
//! the URL or the answer's body (a proxy's error page may echo the URL).

use crate::config::WechatConfig;
use crate::payment::transport_error;
use serde::Deserialize;

#[derive(Deserialize)]
struct Answer {
    openid: Option<String>,
    errcode: Option<i64>,
    errmsg: Option<String>,
    /// 1: a Moments snapshot page's visitor, whose openid is virtual.
    is_snapshotuser: Option<i64>,
}

/// Why a login failed; the text is safe to log (no URL, no secret).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoginError {
    /// No usable answer: unreachable, timed out, or not JSON.
    #[error("{call} failed: {why}")]
    Transport { call: &'static str, why: String },
    /// An HTTP error status (a proxy or the platform in trouble).
    #[error("{call} answered HTTP {status}")]
    Status { call: &'static str, status: u16 },
    /// A Moments snapshot page's visitor (`is_snapshotuser`): a virtual openid that cannot
    /// pay; the page must be opened in full first.
    #[error("{call}: a snapshot page's visitor")]
    Snapshot { call: &'static str },
    /// WeChat refused the code (40029 invalid, 40163 already used…).
    #[error("{call} refused the code: errcode {errcode} {errmsg}")]
    Refused {
        call: &'static str,
        errcode: i64,
        errmsg: String,
    },
}

/// An app that trades codes for openids: its appid and AppSecret.
pub struct App<'a> {
    pub appid: &'a str,
    pub secret: &'a str,
}

/// The openid a code exchange at `{base}/sns/{call}` answers for `code`.
async fn exchange(
    http: &reqwest::Client,
    base: &str,
    call: &'static str,
    query: &[(&str, &str)],
) -> Result<String, LoginError> {
    let url = format!("{}/sns/{call}", base.trim_end_matches('/'));
    let transport = |e| LoginError::Transport {
        call,
        why: transport_error(e),
    };
    let res = http
        .get(&url)
        .query(query)
        .send()
        .await
        .map_err(transport)?;
    if !res.status().is_success() {
        let status = res.status().as_u16();
        return Err(LoginError::Status { call, status });
    }
    let answer: Answer = res.json().await.map_err(transport)?;
    if answer.is_snapshotuser == Some(1) {
        return Err(LoginError::Snapshot { call });
    }
    match (answer.openid, answer.errcode) {
        (Some(openid), None | Some(0)) if !openid.is_empty() => Ok(openid),
        (_, code) => Err(LoginError::Refused {
            call,
            errcode: code.unwrap_or(-1),
            errmsg: answer.errmsg.unwrap_or_default(),
        }),
    }
}

/// The mini-program user's openid for a `wx.login` `code`, or why there is none.
pub async fn code2session(
    http: &reqwest::Client,
    base: &str,
    cfg: &WechatConfig,
    code: &str,
) -> Result<String, LoginError> {
    let query = [
        ("appid", cfg.appid.as_str()),
        ("secret", cfg.app_secret.as_str()),
        ("js_code", code),
        ("grant_type", "authorization_code"),
    ];
    exchange(http, base, "jscode2session", &query).await
}

/// The openid under the Official Account `app` for the `code` its web OAuth (snsapi_base)
/// redirected back with, or why there is none. The access_token that comes with it is not
/// needed: snsapi_base grants nothing but the openid.
pub async fn oauth_openid(
    http: &reqwest::Client,
    base: &str,
    app: &App<'_>,
    code: &str,
) -> Result<String, LoginError> {
    let query = [
        ("appid", app.appid),
        ("secret", app.secret),
        ("code", code),
        ("grant_type", "authorization_code"),
    ];
    exchange(http, base, "oauth2/access_token", &query).await
}

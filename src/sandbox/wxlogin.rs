//! WeChat's logins as it plays them. The mini-program's: `wx.login` on the phone hands out a
//! code (here `POST /sandbox/control/wx_login`, for a named test user), and
//! `sns/jscode2session` trades it once, within five minutes, for that user's openid under
//! that appid. The Official Account's web OAuth (`connect/oauth2/authorize`, only in the
//! WeChat browser, back to a page of the account's authorised domain) hands out the same
//! kind of code, traded by `sns/oauth2/access_token`. The sandbox remembers which appid
//! issued each openid, so its pay APIs can refuse a mismatch as the platforms do ("appid
//! and openid not match").

use super::{random_id, State};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// How long a `wx.login` code may be traded (WeChat: 5 minutes).
pub const CODE_TTL_SECONDS: i64 = 300;

/// A code handed out by `wx.login`.
#[derive(Debug, Clone)]
pub struct LoginCode {
    pub appid: String,
    pub openid: String,
    /// Unix seconds.
    pub issued_at: i64,
    pub used: bool,
    /// A Moments snapshot page's visitor (朋友圈快照页, a user whose name starts with
    /// `snapshot`): WeChat hands out a virtual openid with `is_snapshotuser: 1`.
    pub snapshot: bool,
}

/// The app a `jscode2session` request must name.
pub struct MiniProgram<'a> {
    pub appid: &'a str,
    pub secret: &'a str,
}

/// The query of a `jscode2session` request.
pub struct CodeExchange<'a> {
    pub appid: &'a str,
    pub secret: &'a str,
    pub js_code: &'a str,
    pub grant_type: &'a str,
}

/// The openid of test user `user` under `appid`: stable, and different per appid, as
/// WeChat's openids are.
pub fn openid_of(appid: &str, user: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!("{appid}:{user}").as_bytes()));
    format!("oSbx{}", &digest[..24])
}

/// `wx.login` on the phone of `user` in the app `appid`: a fresh single-use code.
pub fn issue_code(state: &mut State, appid: &str, user: &str, now: i64) -> String {
    // Codes nobody traded in time are dead: forget them.
    state
        .login_codes
        .retain(|_, c| now - c.issued_at <= CODE_TTL_SECONDS);
    let code = random_id(32);
    state.login_codes.insert(
        code.clone(),
        LoginCode {
            appid: appid.into(),
            openid: openid_of(appid, user),
            issued_at: now,
            used: false,
            snapshot: user.starts_with("snapshot"),
        },
    );
    code
}

/// The openid a fresh code of `app` stands for (the code is used up), or WeChat's errcode
/// answer (always with HTTP 200).
fn trade_code(
    state: &mut State,
    app: &MiniProgram<'_>,
    q: &CodeExchange<'_>,
    now: i64,
) -> Result<(String, bool), Value> {
    if q.appid != app.appid {
        return Err(json!({"errcode": 40013, "errmsg": "invalid appid"}));
    }
    if q.secret != app.secret {
        return Err(json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    if q.grant_type != "authorization_code" {
        return Err(json!({"errcode": 40002, "errmsg": "invalid grant_type"}));
    }
    let Some(code) = state.login_codes.get_mut(q.js_code) else {
        return Err(json!({"errcode": 40029, "errmsg": "invalid code"}));
    };
    if code.appid != q.appid || now - code.issued_at > CODE_TTL_SECONDS {
        return Err(json!({"errcode": 40029, "errmsg": "invalid code"}));
    }
    if code.used {
        return Err(json!({"errcode": 40163, "errmsg": "code been used"}));
    }
    code.used = true;
    let openid = code.openid.clone();
    let snapshot = code.snapshot;
    state.openids.insert(openid.clone(), code.appid.clone());
    Ok((openid, snapshot))
}

/// `GET sns/jscode2session`: the openid for a fresh code, or WeChat's errcode (always with
/// HTTP 200).
pub fn jscode2session(
    state: &mut State,
    app: &MiniProgram<'_>,
    q: &CodeExchange<'_>,
    now: i64,
) -> Value {
    match trade_code(state, app, q, now) {
        Ok((openid, _)) => json!({
            "openid": openid,
            "session_key": hex::encode(&Sha256::digest(format!("{openid}:{now}").as_bytes())[..16]),
        }),
        Err(refusal) => refusal,
    }
}

/// `GET sns/oauth2/access_token`: the web OAuth's code traded for the openid under the
/// Official Account (with a page access_token the shop does not need), or WeChat's errcode.
pub fn oauth_access_token(
    state: &mut State,
    app: &MiniProgram<'_>,
    q: &CodeExchange<'_>,
    now: i64,
) -> Value {
    match trade_code(state, app, q, now) {
        Ok((openid, snapshot)) => {
            let mut v = json!({
                "access_token": random_id(64),
                "expires_in": 7200,
                "refresh_token": random_id(64),
                "openid": openid,
                "scope": "snsapi_base",
            });
            if snapshot {
                v["is_snapshotuser"] = json!(1);
            }
            v
        }
        Err(refusal) => refusal,
    }
}

/// A `connect/oauth2/authorize` request.
pub struct Authorize<'a> {
    pub appid: &'a str,
    pub redirect_uri: &'a str,
    pub response_type: &'a str,
    pub scope: &'a str,
    pub state: &'a str,
}

/// The Official Account the authorize page serves: its appid and the domain of its pages
/// (网页授权域名), the only place it sends codes to.
pub struct OfficialAccount<'a> {
    pub appid: &'a str,
    pub domain: &'a str,
}

/// `connect/oauth2/authorize` in the WeChat browser of `user`: where WeChat sends the
/// browser (the redirect_uri with `code` and `state`), or the error page's text. Outside
/// WeChat (`in_wechat` false) the page only asks to open the link in WeChat.
pub fn authorize(
    state: &mut State,
    oa: &OfficialAccount<'_>,
    q: &Authorize<'_>,
    user: &str,
    in_wechat: bool,
    now: i64,
) -> Result<String, String> {
    if !in_wechat {
        return Err("请在微信客户端打开链接".into());
    }
    if q.appid != oa.appid {
        return Err("10016 appid 参数错误".into());
    }
    if q.response_type != "code" {
        return Err("10004 response_type 参数错误".into());
    }
    if !matches!(q.scope, "snsapi_base" | "snsapi_userinfo") {
        return Err("10005 此公众号没有 scope 参数对应的授权作用域权限".into());
    }
    if q.state.len() > 128 || !q.state.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("state 参数错误：最多 128 字节的 a-zA-Z0-9".into());
    }
    let host = reqwest::Url::parse(q.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    if host.as_deref() != Some(oa.domain) {
        return Err("10003 redirect_uri 域名与后台配置不一致".into());
    }
    let code = issue_code(state, q.appid, user, now);
    let sep = if q.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let back = serde_urlencoded::to_string([("code", code.as_str()), ("state", q.state)])
        .unwrap_or_default();
    Ok(format!("{}{sep}{back}", q.redirect_uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: MiniProgram<'static> = MiniProgram {
        appid: "wxmini",
        secret: "s3cret",
    };

    fn trade(state: &mut State, code: &str, now: i64) -> Value {
        let q = CodeExchange {
            appid: APP.appid,
            secret: APP.secret,
            js_code: code,
            grant_type: "authorization_code",
        };
        jscode2session(state, &APP, &q, now)
    }

    #[test]
    fn a_code_is_traded_once_for_the_users_openid() {
        let mut state = State::default();
        let a = issue_code(&mut state, APP.appid, "alice", 1000);
        let a2 = issue_code(&mut state, APP.appid, "alice", 1000);
        let b = issue_code(&mut state, APP.appid, "bob", 1000);
        assert_ne!(a, a2, "every wx.login gives a new code");
        let first = trade(&mut state, &a, 1001);
        assert_eq!(first["openid"], openid_of(APP.appid, "alice"));
        assert_eq!(trade(&mut state, &a2, 1001)["openid"], first["openid"]);
        assert_ne!(trade(&mut state, &b, 1001)["openid"], first["openid"]);
        assert_eq!(trade(&mut state, &a, 1002)["errcode"], 40163);
        assert_eq!(trade(&mut state, "made-up", 1002)["errcode"], 40029);
        assert_eq!(
            state
                .openids
                .get(&openid_of(APP.appid, "alice"))
                .map(String::as_str),
            Some(APP.appid)
        );
    }

    #[test]
    fn a_code_dies_after_five_minutes_and_belongs_to_its_app() {
        let mut state = State::default();
        let late = issue_code(&mut state, APP.appid, "carol", 1000);
        assert_eq!(
            trade(&mut state, &late, 1000 + CODE_TTL_SECONDS + 1)["errcode"],
            40029
        );
        let other_app = issue_code(&mut state, "wxother", "carol", 1000);
        assert_eq!(trade(&mut state, &other_app, 1001)["errcode"], 40029);
        let in_time = issue_code(&mut state, APP.appid, "carol", 1000);
        assert!(trade(&mut state, &in_time, 1000 + CODE_TTL_SECONDS)["openid"].is_string());
        let q = CodeExchange {
            appid: APP.appid,
            secret: "wrong",
            js_code: "x",
            grant_type: "authorization_code",
        };
        assert_eq!(jscode2session(&mut state, &APP, &q, 1000)["errcode"], 40125);
    }
}

//! The mini-program login as WeChat plays it: `wx.login` on the phone hands out a code (here
//! `POST /sandbox/control/wx_login`, for a named test user), and `sns/jscode2session` trades
//! it once, within five minutes, for that user's openid under that appid. The sandbox
//! remembers which appid issued each openid, so its pay APIs can refuse a mismatch as the
//! platforms do ("appid and openid not match").

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
        },
    );
    code
}

/// `GET sns/jscode2session`: the openid for a fresh code, or WeChat's errcode (always with
/// HTTP 200).
pub fn jscode2session(
    state: &mut State,
    app: &MiniProgram<'_>,
    q: &CodeExchange<'_>,
    now: i64,
) -> Value {
    if q.appid != app.appid {
        return json!({"errcode": 40013, "errmsg": "invalid appid"});
    }
    if q.secret != app.secret {
        return json!({"errcode": 40125, "errmsg": "invalid appsecret"});
    }
    if q.grant_type != "authorization_code" {
        return json!({"errcode": 40002, "errmsg": "invalid grant_type"});
    }
    let Some(code) = state.login_codes.get_mut(q.js_code) else {
        return json!({"errcode": 40029, "errmsg": "invalid code"});
    };
    if code.appid != q.appid || now - code.issued_at > CODE_TTL_SECONDS {
        return json!({"errcode": 40029, "errmsg": "invalid code"});
    }
    if code.used {
        return json!({"errcode": 40163, "errmsg": "code been used"});
    }
    code.used = true;
    let openid = code.openid.clone();
    state.openids.insert(openid.clone(), code.appid.clone());
    json!({
        "openid": openid,
        "session_key": hex::encode(&Sha256::digest(format!("{openid}:{now}").as_bytes())[..16]),
    })
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

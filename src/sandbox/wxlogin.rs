//! `sns/jscode2session` as WeChat answers it: every well-formed code maps to a stable test
//! openid (the same code always gives the same user).

use crate::config::WechatConfig;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub fn jscode2session(
    cfg: &WechatConfig,
    appid: &str,
    secret: &str,
    code: &str,
    grant: &str,
) -> Value {
    if appid != cfg.appid || secret != cfg.app_secret {
        return json!({"errcode": 40125, "errmsg": "invalid appsecret"});
    }
    if grant != "authorization_code" {
        return json!({"errcode": 40002, "errmsg": "invalid grant_type"});
    }
    let well_formed = (1..=128).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed || code == "invalid" {
        return json!({"errcode": 40029, "errmsg": "invalid code"});
    }
    let digest = hex::encode(Sha256::digest(format!("{appid}:{code}").as_bytes()));
    json!({
        "openid": format!("oSbx{}", &digest[..24]),
        "session_key": hex::encode(&Sha256::digest(digest.as_bytes())[..16]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_code_gives_the_same_openid() {
        let cfg = WechatConfig::default();
        let a = jscode2session(
            &cfg,
            &cfg.appid,
            &cfg.app_secret,
            "abc",
            "authorization_code",
        );
        let b = jscode2session(
            &cfg,
            &cfg.appid,
            &cfg.app_secret,
            "abc",
            "authorization_code",
        );
        let c = jscode2session(
            &cfg,
            &cfg.appid,
            &cfg.app_secret,
            "abd",
            "authorization_code",
        );
        assert_eq!(a["openid"], b["openid"]);
        assert_ne!(a["openid"], c["openid"]);
        let bad = jscode2session(&cfg, &cfg.appid, "wrong", "abc", "authorization_code");
        assert_eq!(bad["errcode"], 40125);
    }
}

//! The wechatpayv3 Python SDK (PyPI, pinned in `.ci/run`) against the sandbox's WeChat Pay
//! APIv3, in public-key mode and in platform-certificate mode: the SDK's own signing,
//! verification, certificate download and notification decryption must accept the
//! sandbox, and the sandbox must refuse what the platform refuses. Built with
//! `--features e2e`; the script is `tests/e2e/wechatpayv3_check.py`.
#![cfg(feature = "e2e")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fresh_database_url, test_config, TestApp};
use serde_json::{json, Value};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/sandbox");

/// Runs the script against `app`; its one line of JSON.
async fn sdk_check(app: &TestApp, prefix: &str) -> Value {
    let wx = &app.state.config.wechat;
    let public_key = wx
        .v3_public_key
        .as_ref()
        .map(|_| format!("{KEYS}/wechat_v3_pubkey_public.pem"));
    let cfg = json!({
        "base": app.state.wechat_v3_base(),
        "control": format!("{}/sandbox/control", app.url),
        "jscode2session": format!("{}/sandbox/wxapi/sns/jscode2session", app.url),
        "appid": wx.appid, "app_secret": wx.app_secret, "mchid": wx.mch_id,
        "cert_serial": wx.v3_cert_serial, "apiv3_key": wx.apiv3_key,
        "private_key": format!("{KEYS}/wechat_v3_merchant_private.pem"),
        "public_key": public_key, "public_key_id": wx.v3_public_key_id,
        "prefix": prefix,
    });
    common::python_json("wechatpayv3_check.py", &cfg, &[]).await
}

fn assert_the_sdk_agreed(v: &Value, prefix: &str) {
    assert!(v["prepay_id"].as_str().unwrap().starts_with("wx"), "{v}");
    assert!(v["code_url"]
        .as_str()
        .unwrap()
        .starts_with("weixin://wxpay/bizpayurl?pr="));
    assert_eq!(v["queried"], "NOTPAY");
    assert_eq!(v["closed"], "CLOSED");
    assert_eq!(
        v["notified"],
        json!(["TRANSACTION.SUCCESS", "SUCCESS", format!("{prefix}J1"), 1])
    );
    assert_eq!(v["short_time_expire"], json!([400, "PARAM_ERROR"]));
    assert_eq!(v["wrong_key"], json!([401, "SIGN_ERROR"]));
}

#[tokio::test]
async fn wechatpayv3_in_public_key_mode_pays_queries_and_closes_on_the_sandbox() {
    let mut config = test_config(&fresh_database_url());
    config.wechat.v3_public_key = Some(jiesuan::config::SANDBOX_V3_PUBLIC_KEY.into());
    config.wechat.v3_public_key_id = Some(jiesuan::config::SANDBOX_V3_PUBLIC_KEY_ID.into());
    let app = TestApp::spawn_on(config).await;
    let v = sdk_check(&app, "SDKPUB").await;
    assert_eq!(v["mode"], "public_key");
    assert_the_sdk_agreed(&v, "SDKPUB");
}

#[tokio::test]
async fn wechatpayv3_in_certificate_mode_downloads_certificates_and_follows_a_rotation() {
    let app = TestApp::spawn().await;
    let v = sdk_check(&app, "SDKCERT").await;
    assert_eq!(v["mode"], "certificate");
    assert_the_sdk_agreed(&v, "SDKCERT");
    assert_eq!(v["rotated"], true, "{v}");
}

/// Notifications made by independent code (Python `cryptography`): right in every part it
/// pays once; wrong in any single part (key, timestamp, probe, serial, body, APIv3 key,
/// amount, currency, merchant, app, trade) it changes nothing.
#[tokio::test]
async fn notifications_made_by_python_cryptography_pay_only_when_right_in_every_part() {
    let mut config = test_config(&fresh_database_url());
    config.wechat.api_version = jiesuan::config::ApiVersion::V3;
    config.wechat.v3_public_key_id = Some(jiesuan::config::SANDBOX_V3_PUBLIC_KEY_ID.into());
    config.wechat.v3_public_key = Some(jiesuan::config::SANDBOX_V3_PUBLIC_KEY.into());
    let app = TestApp::spawn_on(config).await;
    let (_, id, no, _) = app.native_order("py-notify").await;
    let wx = &app.state.config.wechat;
    let cfg = json!({
        "url": format!("{}/api/v1/pay/v3/notify", app.url),
        "key": format!("{KEYS}/wechat_v3_pubkey_private.pem"),
        "stranger_key": format!("{KEYS}/wechat_v3_merchant_private.pem"),
        "serial": wx.v3_public_key_id, "apiv3_key": wx.apiv3_key,
        "appid": wx.appid, "mchid": wx.mch_id,
        "out_trade_no": no, "total": app.attempts(id)[0].amount,
    });
    let v = common::python_json("wechatpay_v3_notify.py", &cfg, &[]).await;
    let statuses = v.as_object().unwrap();
    assert_eq!(statuses.len(), 13, "{v}");
    for (case, status) in statuses {
        let status = status.as_u64().unwrap();
        if case.starts_with("right") {
            assert_eq!(status, 204, "{case}: {v}");
        } else {
            assert!((400..600).contains(&status), "{case} was accepted: {v}");
        }
    }
    assert_eq!(common::order_status(&app, id), 2);
    let logs = app.pay_logs(id);
    let paid = logs.iter().filter(|l| l.2 == "paid").count();
    let duplicates = logs.iter().filter(|l| l.2 == "duplicate").count();
    assert_eq!((paid, duplicates), (1, 1), "{logs:?}");
}

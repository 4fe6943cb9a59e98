//! python-alipay-sdk (PyPI, pinned in `.ci/run`) against the sandbox's Alipay gateway: the
//! SDK's own signing and GET transport must be accepted, and its own verification must
//! accept the sandbox's answers and notifications; in certificate mode (DCAliPay) the SNs it
//! computes from the committed certificates must be the ones the sandbox expects. Built with `--features e2e`; the script
//! is `tests/e2e/alipay_check.py`.
#![cfg(feature = "e2e")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fresh_database_url, test_config, TestApp};
use serde_json::{json, Value};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/sandbox");

/// Runs the script against `app` with `extra` settings; its one line of JSON.
async fn sdk_check(app: &TestApp, prefix: &str, extra: Value) -> Value {
    let mut cfg = json!({
        "gateway": app.state.alipay_gateway(),
        "control": format!("{}/sandbox/control", app.url),
        "app_id": app.state.config.alipay.app_id,
        "app_private_key": format!("{KEYS}/alipay_app_private.pem"),
        "alipay_public_key": format!("{KEYS}/alipay_platform_public.pem"),
        "prefix": prefix,
    });
    if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        cfg.extend(extra.clone());
    }
    // The SDK writes its local time as `timestamp`; Alipay reads Beijing time.
    common::python_json("alipay_check.py", &cfg, &[("TZ", "Asia/Shanghai")]).await
}

#[tokio::test]
async fn python_alipay_sdk_precreates_queries_refunds_and_verifies_the_sandbox() {
    let app = TestApp::spawn().await;
    let v = sdk_check(&app, "PYSDK", json!({})).await;
    assert_eq!(v["precreate"], json!(["10000", "PYSDKQ1"]));
    assert_eq!(v["before_scan"], "ACQ.TRADE_NOT_EXIST");
    assert_eq!(v["after_scan"], "WAIT_BUYER_PAY");
    assert_eq!(
        v["notify"],
        json!([true, false, "TRADE_SUCCESS", "PYSDKQ1"]),
        "the SDK's verify"
    );
    assert_eq!(v["paid"], "TRADE_SUCCESS");
    assert_eq!(v["refund"], json!(["Y", "0.01"]));
    assert_eq!(v["refund_query"], "REFUND_SUCCESS");
    assert_eq!(v["wap"], json!([302, true]), "QUICK_WAP_PAY from the SDK");
    assert_eq!(v["wrong_key"], json!(["40002", "isv.invalid-signature"]));
}

#[tokio::test]
async fn python_alipay_sdk_in_certificate_mode_computes_the_sns_the_sandbox_expects() {
    let mut config = test_config(&fresh_database_url());
    config.alipay.app_cert = Some("keys/sandbox/alipay_app_cert.pem".into());
    config.alipay.alipay_cert = Some("keys/sandbox/alipay_platform_cert.pem".into());
    config.alipay.alipay_root_cert = Some("keys/sandbox/alipay_root_cert.pem".into());
    let app = TestApp::spawn_on(config).await;
    let certs = json!({"certs": {
        "app_cert": format!("{KEYS}/alipay_app_cert.pem"),
        "alipay_cert": format!("{KEYS}/alipay_platform_cert.pem"),
        "alipay_root_cert": format!("{KEYS}/alipay_root_cert.pem"),
    }});
    let v = sdk_check(&app, "PYCERT", certs).await;
    assert_eq!(
        v["sns"],
        json!([
            "cb8ed781ed476b2f7982d70b7ebcd67d",
            "f7f936ab258ad2cfb59567281911f572"
        ]),
        "the SDK's own SNs of the committed certificates"
    );
    assert_eq!(v["precreate"], json!(["10000", "PYCERTQ1"]));
    assert_eq!(v["before_scan"], "ACQ.TRADE_NOT_EXIST");
}

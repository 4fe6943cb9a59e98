//! WeChat Pay APIv3 end to end: the mini-program and the PC QR pay over v3 in both
//! verification modes; notifications signed and sealed by independent code (tests/common)
//! are believed only when every part is right, and a storm of copies across two instances
//! pays once; a certificate rotation loses nothing; v2 and v3 attempts of one order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::wechat_v3::{key_pair, notification};
use common::{fresh_database_url, order_status, test_config, TestApp};
use jiesuan::config::{
    ApiVersion, Config, SANDBOX_APIV3_KEY, SANDBOX_V3_PUBLIC_KEY, SANDBOX_V3_PUBLIC_KEY_ID,
};
use ring::signature::{self, KeyPair, UnparsedPublicKey};
use serde_json::{json, Value};

/// APIv3 in platform-certificate mode (the default), or with the WeChat Pay public key.
fn v3_config(database_url: &str, public_key: bool) -> Config {
    let mut config = test_config(database_url);
    config.wechat.api_version = ApiVersion::V3;
    if public_key {
        config.wechat.v3_public_key_id = Some(SANDBOX_V3_PUBLIC_KEY_ID.into());
        config.wechat.v3_public_key = Some(SANDBOX_V3_PUBLIC_KEY.into());
    }
    config
}

async fn v3_app(public_key: bool) -> TestApp {
    TestApp::spawn_on(v3_config(&fresh_database_url(), public_key)).await
}

#[tokio::test]
async fn the_mini_program_pays_over_v3_in_both_modes() {
    for public_key in [false, true] {
        let app = v3_app(public_key).await;
        let (token, id, _) = app.unpaid_order(&format!("v3-mini-{public_key}")).await;
        let res = app
            .post_json("/api/v1/pay/pre_order", &token, &json!({ "id": id }))
            .await;
        assert_eq!(res.status(), 200);
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["signType"], "RSA");
        let package = p["package"].as_str().unwrap();
        assert!(package.starts_with("prepay_id="), "{p}");
        // paySign over appId\ntimeStamp\nnonceStr\npackage\n with the merchant's key,
        // checked by code that is not the shop's.
        let message = format!(
            "{}\n{}\n{}\n{package}\n",
            app.state.config.wechat.appid,
            p["timeStamp"].as_str().unwrap(),
            p["nonceStr"].as_str().unwrap()
        );
        let merchant = key_pair("wechat_v3_merchant_private.pem");
        UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            merchant.public_key().as_ref(),
        )
        .verify(
            message.as_bytes(),
            &B64.decode(p["paySign"].as_str().unwrap()).unwrap(),
        )
        .expect("paySign verifies");

        let a = app.attempts(id).pop().unwrap();
        assert_eq!(
            (a.provider.as_str(), a.channel.as_str()),
            ("wechat_v3", "wx_jsapi")
        );
        app.sandbox_pay(json!({ "out_trade_no": a.out_trade_no }))
            .await;
        app.wait_for_status(id, 2).await;
        let logs = app.pay_logs(id);
        assert!(
            logs.iter()
                .any(|(kind, verified, outcome, _)| kind == "notify"
                    && *verified
                    && outcome == "paid"),
            "{logs:?}"
        );
        if !public_key {
            // The platform certificates are kept for every instance.
            let json: String = app.with_conn(|c| {
                jiesuan::models::api_token::find(c, "wechatpay_certs:1900000109")
                    .unwrap()
                    .unwrap()
                    .token
            });
            assert!(json.contains("BEGIN CERTIFICATE"), "{json}");
        }
    }
}

#[tokio::test]
async fn the_pc_qr_pays_over_v3_and_shows_the_same_code_on_every_reload() {
    let app = v3_app(false).await;
    let (token, id, no, code_url) = app.native_order("v3-native").await;
    assert!(code_url.starts_with("weixin://"), "{code_url}");
    let again: Value = app
        .post_json("/api/v1/pay/native", &token, &json!({ "id": id }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["code_url"], code_url.as_str());
    assert_eq!(again["out_trade_no"], no.as_str());
    // The shopper says it paid before the notification: the query door finds nothing yet.
    let q = app
        .post_json("/api/v1/pay/query", &token, &json!({ "id": id }))
        .await;
    assert_eq!(q.status(), 200);
    assert_eq!(order_status(&app, id), 1);
    app.set_faults(json!({ "prefix": no, "never_deliver": true }))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    // No notification: the query finds the payment, verified as WeChat's.
    app.post_json("/api/v1/pay/query", &token, &json!({ "id": id }))
        .await;
    assert_eq!(order_status(&app, id), 2);
}

/// A TRANSACTION.SUCCESS resource for `no`.
fn paid_resource(app: &TestApp, no: &str, total: i64) -> Value {
    let wx = &app.state.config.wechat;
    json!({
        "appid": wx.appid, "mchid": wx.mch_id, "out_trade_no": no,
        "transaction_id": format!("42000{}", &no[no.len() - 12..]),
        "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
        "bank_type": "OTHERS", "success_time": "2026-12-01T18:00:00+08:00",
        "payer": { "openid": "o-v3-payer" },
        "amount": { "total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY" },
    })
}

/// Posts a notification; its HTTP status.
async fn post(app: &TestApp, headers: &[(&str, String)], body: &str) -> u16 {
    let mut req = app
        .api
        .post(format!("{}/api/v1/pay/v3/notify", app.url))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, v.clone());
    }
    req.send().await.unwrap().status().as_u16()
}

/// A notification's headers and body.
type Signed = (Vec<(&'static str, String)>, String);

/// A TRANSACTION.SUCCESS notification of `resource`, signed with `key` as `serial`.
fn signed(resource: &Value, key: &str, serial: &str, timestamp: i64) -> Signed {
    notification(
        key,
        serial,
        SANDBOX_APIV3_KEY,
        "TRANSACTION.SUCCESS",
        resource,
        timestamp,
    )
}

#[tokio::test]
async fn a_notification_wrong_in_any_single_part_changes_nothing() {
    let app = v3_app(true).await;
    let (_, id, no, _) = app.native_order("v3-forged").await;
    let total = app.attempts(id)[0].amount;
    let now = chrono::Utc::now().timestamp();
    let good = paid_resource(&app, &no, total);
    let key = "wechat_v3_pubkey_private.pem";
    let mut cases: Vec<(&str, Signed)> = Vec::new();
    let (h, b) = signed(
        &good,
        "wechat_v3_merchant_private.pem",
        SANDBOX_V3_PUBLIC_KEY_ID,
        now,
    );
    cases.push(("wrong key", (h, b)));
    let (h, b) = signed(&good, key, SANDBOX_V3_PUBLIC_KEY_ID, now - 400);
    cases.push(("stale", (h, b)));
    let (mut h, b) = signed(&good, key, SANDBOX_V3_PUBLIC_KEY_ID, now);
    for (k, v) in h.iter_mut() {
        if *k == "wechatpay-signature" {
            *v = format!("WECHATPAY/SIGNTEST/{v}");
        }
    }
    cases.push(("signtest", (h, b)));
    // The ciphertext changed and the body signed again: only the GCM tag can tell.
    let (mut h, b) = signed(&good, key, SANDBOX_V3_PUBLIC_KEY_ID, now);
    let mut v: Value = serde_json::from_str(&b).unwrap();
    let c = v["resource"]["ciphertext"].as_str().unwrap().to_string();
    let flipped = if c.starts_with('A') { "B" } else { "A" };
    v["resource"]["ciphertext"] = json!(format!("{flipped}{}", &c[1..]));
    let tampered = v.to_string();
    let nonce = h
        .iter()
        .find(|(k, _)| *k == "wechatpay-nonce")
        .unwrap()
        .1
        .clone();
    let sig = common::wechat_v3::sign(key, &format!("{now}\n{nonce}\n{tampered}\n"));
    for (k, v) in h.iter_mut() {
        if *k == "wechatpay-signature" {
            *v = sig.clone();
        }
    }
    cases.push(("tampered ciphertext", (h, tampered)));
    let mut wrong_amount = good.clone();
    wrong_amount["amount"]["total"] = json!(total + 1);
    let (h, b) = signed(&wrong_amount, key, SANDBOX_V3_PUBLIC_KEY_ID, now);
    cases.push(("wrong amount", (h, b)));
    let mut wrong_mchid = good.clone();
    wrong_mchid["mchid"] = json!("1900000999");
    let (h, b) = signed(&wrong_mchid, key, SANDBOX_V3_PUBLIC_KEY_ID, now);
    cases.push(("wrong mchid", (h, b)));
    let mut wrong_appid = good.clone();
    wrong_appid["appid"] = json!("wx0000000000000000");
    let (h, b) = signed(&wrong_appid, key, SANDBOX_V3_PUBLIC_KEY_ID, now);
    cases.push(("wrong appid", (h, b)));
    let (h, b) = signed(
        &good,
        key,
        "PUB_KEY_ID_0000000000000000000000000000000000000",
        now,
    );
    cases.push(("unknown serial", (h, b)));

    for (what, (headers, body)) in &cases {
        let status = post(&app, headers, body).await;
        assert!((400..600).contains(&status), "{what}: {status}");
        assert_eq!(order_status(&app, id), 1, "{what} paid the order");
    }
    let logs = app.pay_logs(id);
    let outcomes: Vec<&str> = logs.iter().map(|l| l.2.as_str()).collect();
    for expected in ["amount_mismatch", "wrong_merchant"] {
        assert!(outcomes.contains(&expected), "{expected} in {outcomes:?}");
    }

    // The same notification, right in every part, pays.
    let (h, b) = signed(&good, key, SANDBOX_V3_PUBLIC_KEY_ID, now);
    assert_eq!(post(&app, &h, &b).await, 204);
    assert_eq!(order_status(&app, id), 2);
}

#[tokio::test]
async fn sixty_four_copies_across_two_instances_pay_once() {
    let database_url = fresh_database_url();
    let first = TestApp::spawn_on(v3_config(&database_url, true)).await;
    let second = TestApp::spawn_on(v3_config(&database_url, true)).await;
    let (_, id, no, _) = first.native_order("v3-storm").await;
    let total = first.attempts(id)[0].amount;
    let stock = first.stock(1);
    let (headers, body) = signed(
        &paid_resource(&first, &no, total),
        "wechat_v3_pubkey_private.pem",
        SANDBOX_V3_PUBLIC_KEY_ID,
        chrono::Utc::now().timestamp(),
    );
    let urls = [first.url.clone(), second.url.clone()].map(|u| format!("{u}/api/v1/pay/v3/notify"));
    let headers: Vec<(&str, String)> = headers.into_iter().collect();
    let replies = first.storm(&urls, &headers, &body, 64, 32).await;
    assert!(replies.iter().all(|(s, _)| *s == 204), "{replies:?}");
    assert_eq!(order_status(&first, id), 2);
    assert_eq!(
        first.stock(1),
        stock,
        "stock was taken at placement, never again"
    );
    let logs = first.pay_logs(id);
    let paid = logs.iter().filter(|l| l.2 == "paid").count();
    let duplicates = logs.iter().filter(|l| l.2 == "duplicate").count();
    assert_eq!((paid, duplicates), (1, 63), "{logs:?}");
}

#[tokio::test]
async fn a_certificate_rotation_mid_stream_loses_nothing() {
    let app = v3_app(false).await;
    let (_, first, no1, _) = app.native_order("v3-rot-1").await;
    app.sandbox_pay(json!({ "out_trade_no": no1 })).await;
    app.wait_for_status(first, 2).await;
    // WeChat starts signing with a new certificate while the old one is still listed.
    assert_eq!(app.rotate_cert(json!({})).await.0, 200);
    let (_, second, no2, _) = app.native_order("v3-rot-2").await;
    app.sandbox_pay(json!({ "out_trade_no": no2 })).await;
    app.wait_for_status(second, 2).await;
    // Then retires the old one.
    assert_eq!(app.rotate_cert(json!({ "retire": true })).await.0, 200);
    let (_, third, no3, _) = app.native_order("v3-rot-3").await;
    app.sandbox_pay(json!({ "out_trade_no": no3 })).await;
    app.wait_for_status(third, 2).await;
    let held: String = app.with_conn(|c| {
        jiesuan::models::api_token::find(c, "wechatpay_certs:1900000109")
            .unwrap()
            .unwrap()
            .token
    });
    let serials = held.matches("\"serial\"").count();
    assert!(
        serials >= 2,
        "the new certificate was stored beside the old: {held}"
    );
}

#[tokio::test]
async fn an_order_with_a_v2_and_a_v3_attempt_is_paid_once_and_the_second_payment_refunded() {
    let database_url = fresh_database_url();
    let v2 = TestApp::spawn_on(test_config(&database_url)).await;
    let mut config = v3_config(&database_url, false);
    // One WeChat for both instances: the first one's sandbox.
    config.wechat.pay_base = Some(format!("{}/sandbox/wxpay", v2.url));
    config.wechat.v3_base = Some(format!("{}/sandbox/wxpay", v2.url));
    config.wechat.login_base = Some(format!("{}/sandbox/wxapi", v2.url));
    let v3 = TestApp::spawn_on(config).await;

    let (token, id, old_no, _) = v2.native_order("v2-then-v3").await;
    // The merchant switched to APIv3: the v2 QR stays payable, a new payment is v3.
    let v: Value = v3
        .post_json("/api/v1/pay/native", &token, &json!({ "id": id }))
        .await
        .json()
        .await
        .unwrap();
    let new_no = v["out_trade_no"].as_str().unwrap().to_string();
    assert_ne!(new_no, old_no);
    let providers: Vec<String> = v3.attempts(id).into_iter().map(|a| a.provider).collect();
    assert_eq!(providers, ["wechat", "wechat_v3"]);

    v2.sandbox_pay(json!({ "out_trade_no": old_no })).await;
    v2.wait_for_status(id, 2).await;
    v2.sandbox_pay(json!({ "out_trade_no": new_no })).await;
    // The second payment is refunded in full, over v3, by the refund sweep.
    for _ in 0..100 {
        v3.state.gateway().sweep_refunds().await.unwrap();
        let refunds = jiesuan::models::refund::of_order(&mut v3.conn(), id).unwrap();
        if refunds.iter().any(|r| r.status == 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refunds = jiesuan::models::refund::of_order(&mut v3.conn(), id).unwrap();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].status, 3, "{refunds:?}");
    assert_eq!(refunds[0].out_refund_no, format!("{new_no}R"));
    assert_eq!(order_status(&v3, id), 2, "still paid by the first payment");
    // And the v2 attempt is still asked about over v2.
    let a = v3
        .attempts(id)
        .into_iter()
        .find(|a| a.provider == "wechat")
        .unwrap();
    assert_eq!(a.status, 2);
}

#[tokio::test]
async fn the_pc_pay_page_shows_a_v3_native_qr_that_the_phone_pays() {
    let app = v3_app(false).await;
    app.pc_register("v3pc").await;
    app.pc_address().await;
    let order_no = app.pc_order(1, 1).await;
    let (status, body) = app
        .pc_get(&format!("/home/order/wxpay?order_sn={order_no}"))
        .await;
    assert_eq!(status, 200);
    let doc = common::html(&body);
    let code_url = common::select_text(&doc, "#code-url").unwrap();
    assert!(code_url.starts_with("weixin://"), "{code_url}");
    let id = app.order_by_no(&order_no).id;
    let a = app.attempts(id).pop().unwrap();
    assert_eq!(a.provider, "wechat_v3");
    assert_eq!(a.credential.as_deref(), Some(code_url.as_str()));
    // The phone that scans it pays; the notification comes over APIv3.
    app.sandbox_pay(json!({ "out_trade_no": a.out_trade_no }))
        .await;
    app.wait_for_status(id, 2).await;
}

//! WeChat Pay v2 end to end through the sandbox: JSAPI and NATIVE, notify storms, the query
//! path, and everything a forged or broken notification must not change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{order_status, test_config, wechat_notification as notification, TestApp};
use jiesuan::payment::wechat::notify::SUCCESS_REPLY;
use jiesuan::payment::wechat::sign::{sign, verify, Params, SignType};
use jiesuan::payment::wechat::xml::{parse, to_xml};
use serde_json::{json, Value};

async fn notify(app: &TestApp, body: &str) -> (u16, String) {
    let res = app
        .api
        .post(format!("{}/api/v1/pay/notify", app.url))
        .header("content-type", "text/xml")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn the_mini_program_pays_through_jsapi_and_the_notify_marks_it_paid_once() {
    let app = TestApp::spawn().await;
    let (token, id, order_no) = app.unpaid_order("mini").await;
    let stock = app.stock(1);
    let res = app
        .post_json("/api/v1/pay/pre_order", &token, &json!({ "id": id }))
        .await;
    assert_eq!(res.status(), 200);
    let p: Value = res.json().await.unwrap();
    let package = p["package"].as_str().unwrap();
    assert!(package.starts_with("prepay_id=wx"));
    assert!(p["timeStamp"].is_string(), "timeStamp is a string");
    assert!(p.get("appId").is_none());
    // paySign covers exactly appId, timeStamp, nonceStr, package, signType.
    let mut signed: Params = ["timeStamp", "nonceStr", "package", "signType"]
        .iter()
        .map(|k| (k.to_string(), p[*k].as_str().unwrap().to_string()))
        .collect();
    signed.insert("appId".into(), app.state.config.wechat.appid.clone());
    signed.insert("sign".into(), p["paySign"].as_str().unwrap().to_string());
    assert!(verify(
        &signed,
        &app.state.config.wechat.api_key,
        Some(SignType::Md5)
    ));

    let attempt = &app.attempts(id)[0];
    assert_eq!(attempt.out_trade_no, format!("{order_no}01"));
    assert_eq!(attempt.channel, "wx_jsapi");

    // The sandbox phone plays wx.requestPayment.
    let prepay_id = package.trim_start_matches("prepay_id=");
    let phone = app
        .api
        .get(format!(
            "{}/sandbox/wxpay/phone?prepay_id={prepay_id}",
            app.url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let doc = common::html(&phone);
    assert!(common::select_text(&doc, "form#confirm")
        .unwrap()
        .contains("确认支付"));
    let action = common::select_attr(&doc, "form#confirm", "action").unwrap();
    let res = app.api.post(&action).send().await.unwrap();
    assert_eq!(res.status(), 200);

    app.wait_for_status(id, 2).await;
    let o = jiesuan::models::order::find(&mut app.conn(), id)
        .unwrap()
        .unwrap();
    assert_eq!(o.pay_name.as_deref(), Some("微信支付"));
    assert_eq!(o.pay_channel.as_deref(), Some("wx_jsapi"));
    assert!(o.transaction_no.unwrap().starts_with("42000"));
    assert!(o.paid_at.is_some());
    assert_eq!(
        app.stock(1),
        stock,
        "paying moves no stock: it was reserved at placement"
    );
    let d = app.deliveries(&attempt.out_trade_no).await;
    assert!(
        d.iter()
            .any(|d| d["acknowledged"] == true && d["reply"] == SUCCESS_REPLY),
        "{d:?}"
    );
    let logs = app.pay_logs(id);
    assert_eq!(logs.iter().filter(|l| l.3).count(), 1, "{logs:?}");
    assert!(logs.iter().any(|l| l.0 == "create"));

    // Paying again is refused.
    let res = app
        .post_json("/api/v1/pay/pre_order", &token, &json!({ "id": id }))
        .await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 80003);
}

#[tokio::test]
async fn the_native_flow_pays_from_a_scanned_code_url() {
    let app = TestApp::spawn().await;
    let (token, id, no, _) = app.native_attempt("native").await;
    // The same QR while the attempt lives.
    let again: Value = app
        .post_json("/api/v1/pay/native", &token, &json!({ "id": id }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["out_trade_no"], no.as_str());
    assert_eq!(app.attempts(id).len(), 1);
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    app.wait_for_status(id, 2).await;
    assert_eq!(app.attempts(id)[0].status, 2);
}

async fn storm_pays_once(apps: &[&TestApp]) {
    let app = apps[0];
    let (_, id, no, amount) = app.native_attempt("storm").await;
    let body = notification(
        app,
        &no,
        amount,
        "4200000000202611230000000001",
        &app.state.config.wechat.api_key,
    );
    let urls: Vec<String> = apps
        .iter()
        .map(|a| format!("{}/api/v1/pay/notify", a.url))
        .collect();
    let before = app.all_stock();
    let replies = app
        .storm(&urls, &[("content-type", "text/xml".into())], &body, 64, 32)
        .await;
    assert_eq!(replies.len(), 64);
    for (status, reply) in &replies {
        assert_eq!((*status, reply.as_str()), (200, SUCCESS_REPLY));
    }
    assert_eq!(order_status(app, id), 2);
    let logs = app.pay_logs(id);
    let notifies: Vec<_> = logs.iter().filter(|l| l.0 == "notify").collect();
    assert_eq!(notifies.len(), 64);
    assert_eq!(notifies.iter().filter(|l| l.3).count(), 1, "one dedupe row");
    assert_eq!(notifies.iter().filter(|l| l.2 == "paid").count(), 1);
    assert_eq!(notifies.iter().filter(|l| l.2 == "duplicate").count(), 63);
    assert_eq!(app.all_stock(), before, "stock moved by no notification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_duplicates_thirty_two_at_a_time_pay_once() {
    let app = TestApp::spawn().await;
    storm_pays_once(&[&app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_split_across_two_instances_on_one_database_pays_once() {
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_on(test_config(&first.database_url)).await;
    storm_pays_once(&[&first, &second]).await;
}

#[tokio::test]
async fn a_lost_notification_is_found_by_the_query_path() {
    let app = TestApp::spawn().await;
    let (token, id, no, _) = app.native_attempt("lost").await;
    app.set_faults(json!({"prefix": no, "never_deliver": true}))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(order_status(&app, id), 1, "no notification, no payment");
    let res = app
        .post_json("/api/v1/pay/query", &token, &json!({ "id": id }))
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], 2);
    assert!(app
        .pay_logs(id)
        .iter()
        .any(|l| l.0 == "query" && l.2 == "paid"));
    // Asking again changes nothing.
    let v: Value = app
        .post_json("/api/v1/pay/query", &token, &json!({ "id": id }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], 2);
    assert_eq!(app.pay_logs(id).iter().filter(|l| l.3).count(), 1);
}

#[tokio::test]
async fn the_background_sweep_pays_an_order_whose_notification_never_came() {
    let database_url = common::fresh_database_url();
    let mut config = test_config(&database_url);
    config.sweep_interval_seconds = 1;
    config.query_pending_after_seconds = 0;
    let app = TestApp::spawn_on(config).await;
    let (_, id, no, _) = app.native_attempt("sweep").await;
    app.set_faults(json!({"prefix": no, "never_deliver": true}))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    app.wait_for_status(id, 2).await;
    assert!(app
        .pay_logs(id)
        .iter()
        .any(|l| l.0 == "query" && l.2 == "paid"));
}

#[tokio::test]
async fn forged_and_broken_notifications_change_nothing() {
    let app = TestApp::spawn().await;
    let (_, id, no, amount) = app.native_attempt("forged").await;
    let key = app.state.config.wechat.api_key.clone();
    let logs_before = app.pay_log_count();
    let forged = notification(
        &app,
        &no,
        amount,
        "4200000000202611230000000002",
        "not-the-key-000000000000000000000",
    );
    let wrong_amount = notification(&app, &no, amount - 1, "4200000000202611230000000003", &key);
    let unknown = notification(
        &app,
        "NOSUCHTRADE0101",
        amount,
        "4200000000202611230000000004",
        &key,
    );
    let mut other_merchant =
        parse(notification(&app, &no, amount, "4200000000202611230000000005", &key).as_bytes())
            .unwrap();
    other_merchant.insert("appid".into(), "wxOtherMerchant1".into());
    let s = sign(&other_merchant, &key, SignType::Md5);
    other_merchant.insert("sign".into(), s);
    let other_merchant = to_xml(&other_merchant);
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><out_trade_no>&x;</out_trade_no></xml>"#;
    for (body, reason) in [
        (forged.as_str(), "签名失败"),
        (wrong_amount.as_str(), "金额不匹配"),
        (unknown.as_str(), "订单不存在"),
        (other_merchant.as_str(), "商户号不匹配"),
        ("<xml><a>unclosed", "报文格式错误"),
        (xxe, "报文格式错误"),
    ] {
        let (status, reply) = notify(&app, body).await;
        assert_eq!(status, 200, "{reason}");
        let fields = parse(reply.as_bytes()).unwrap();
        assert_eq!(fields["return_code"], "FAIL", "{reason}: {reply}");
        assert!(fields["return_msg"].contains(reason), "{reason}: {reply}");
    }
    let res = app
        .api
        .post(format!("{}/api/v1/pay/notify", app.url))
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413, "a 2 MB body");
    assert_eq!(order_status(&app, id), 1);
    assert_eq!(app.attempts(id)[0].status, 1);
    assert_eq!(
        app.pay_log_count(),
        logs_before + 6,
        "each rejection is logged, nothing else"
    );
    let logs = app.pay_logs(id);
    assert!(logs.iter().any(|l| l.2 == "bad_signature" && !l.1));
    assert!(logs.iter().any(|l| l.2 == "amount_mismatch" && l.1));
    assert!(logs.iter().all(|l| !l.3), "no dedupe row");

    let get = app
        .api
        .get(format!("{}/api/v1/pay/notify", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert!(get.text().await.unwrap().contains("FAIL"));
}

#[tokio::test]
async fn an_hmac_signed_notification_without_sign_type_is_accepted() {
    let app = TestApp::spawn().await;
    let (_, id, no, amount) = app.native_attempt("hmac").await;
    let key = app.state.config.wechat.api_key.clone();
    let mut p =
        parse(notification(&app, &no, amount, "4200000000202611230000000009", &key).as_bytes())
            .unwrap();
    p.remove("sign");
    let s = sign(&p, &key, SignType::HmacSha256);
    assert_eq!(s.len(), 64);
    p.insert("sign".into(), s);
    let (_, reply) = notify(&app, &to_xml(&p)).await;
    assert_eq!(reply, SUCCESS_REPLY);
    assert_eq!(order_status(&app, id), 2);
}

#[tokio::test]
async fn sandbox_faults_duplicate_corrupt_and_retry_deliveries() {
    let app = TestApp::spawn().await;

    let (_, id, no, _) = app.native_attempt("copies").await;
    app.set_faults(json!({"prefix": no, "copies": 3})).await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    app.wait_for_status(id, 2).await;
    for _ in 0..100 {
        if app.deliveries(&no).await.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let d = app.deliveries(&no).await;
    assert_eq!(
        d.iter().filter(|d| d["acknowledged"] == true).count(),
        3,
        "{d:?}"
    );
    assert_eq!(app.pay_logs(id).iter().filter(|l| l.3).count(), 1);

    let (_, id, no, _) = app.native_attempt("wrong-amount").await;
    app.set_faults(json!({"prefix": no, "wrong_amount": true}))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    // Refused with FAIL, so the sandbox retries on the (compressed) schedule.
    for _ in 0..200 {
        if app.deliveries(&no).await.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let d = app.deliveries(&no).await;
    assert!(d.len() >= 3, "retried: {d:?}");
    assert!(d.iter().all(|d| d["acknowledged"] == false));
    assert_eq!(order_status(&app, id), 1);

    let (_, id, no, _) = app.native_attempt("bad-sign").await;
    app.set_faults(json!({"prefix": no, "bad_signature": true}))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    for _ in 0..100 {
        if !app.deliveries(&no).await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(app.deliveries(&no).await[0]["reply"]
        .as_str()
        .unwrap()
        .contains("签名失败"));
    assert_eq!(order_status(&app, id), 1);
}

#[tokio::test]
async fn pre_order_checks_owner_and_expiry() {
    let app = TestApp::spawn().await;
    let (_, id, _) = app.unpaid_order("owner").await;
    let other = app.buyer("intruder").await;
    let res = app
        .post_json("/api/v1/pay/pre_order", &other, &json!({ "id": id }))
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .post_json("/api/v1/pay/pre_order", &other, &json!({ "id": "x" }))
        .await;
    assert_eq!(res.status(), 400);

    let (token, id, _) = app.unpaid_order("late").await;
    app.with_conn(|c| {
        use diesel::prelude::*;
        use jiesuan::models::schema::orders;
        diesel::update(orders::table.find(id))
            .set(orders::expires_at.eq(jiesuan::models::now() - chrono::Duration::seconds(1)))
            .execute(c)
            .unwrap();
    });
    let res = app
        .post_json("/api/v1/pay/pre_order", &token, &json!({ "id": id }))
        .await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 80003);
    assert!(app.attempts(id).is_empty());
}

#[tokio::test]
async fn the_sandbox_keeps_out_trade_no_unique_like_wechat() {
    use jiesuan::payment::wechat::{TradeType, UnifiedOrder, WxError};
    let app = TestApp::spawn().await;
    let wx = app.state.gateway().wechat.pay;
    let order = |fee: i64| UnifiedOrder {
        body: "结算商城-测试".into(),
        out_trade_no: "SANDBOXUNIQ0101".into(),
        total_fee: fee,
        spbill_create_ip: "127.0.0.1".into(),
        notify_url: format!("{}/api/v1/pay/notify", app.url),
        trade_type: TradeType::Native,
        openid: None,
        product_id: Some("1".into()),
        time_expire: None,
    };
    let first = wx.unified_order(&order(100)).await.unwrap();
    let again = wx.unified_order(&order(100)).await.unwrap();
    assert_eq!(
        first.fields["prepay_id"], again.fields["prepay_id"],
        "an identical repeat gets the same prepay_id"
    );
    match wx.unified_order(&order(101)).await {
        Err(WxError::Business { code, .. }) => assert_eq!(code, "OUT_TRADE_NO_USED"),
        other => panic!("{other:?}"),
    }
    // A wrong key is refused before anything else.
    let forged = jiesuan::payment::wechat::WxPay {
        key: "not-the-merchant-key".into(),
        ..wx.clone()
    };
    match forged.order_query("SANDBOXUNIQ0101").await {
        Err(WxError::Fail(msg)) => assert!(msg.contains("签名错误"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let closed = wx.close_order("SANDBOXUNIQ0101").await.unwrap();
    assert_eq!(closed.fields["result_code"], "SUCCESS");
    let state = wx.order_query("SANDBOXUNIQ0101").await.unwrap();
    assert_eq!(state.fields["trade_state"], "CLOSED");
}

#[tokio::test]
async fn the_sandbox_wants_an_openid_of_its_appid_and_an_ipv4_spbill_create_ip() {
    use jiesuan::payment::wechat::{TradeType, UnifiedOrder, WxError};
    let app = TestApp::spawn().await;
    app.token("jsapi-user").await;
    let wx = app.state.gateway().wechat.pay;
    let order = |no: &str, openid: &str, ip: &str| UnifiedOrder {
        body: "结算商城-测试".into(),
        out_trade_no: no.into(),
        total_fee: 100,
        spbill_create_ip: ip.into(),
        notify_url: format!("{}/api/v1/pay/notify", app.url),
        trade_type: TradeType::Jsapi,
        openid: Some(openid.into()),
        product_id: None,
        time_expire: None,
    };
    let openid = jiesuan::sandbox::wxlogin::openid_of(&wx.appid, "jsapi-user");
    let ok = wx
        .unified_order(&order("SBXOPENID01", &openid, "203.0.113.9"))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let cases = [
        (
            "SBXOPENID02",
            "oSbxNeverLoggedIn",
            "203.0.113.9",
            "invalid openid",
        ),
        (
            "SBXOPENID03",
            openid.as_str(),
            "::1",
            "invalid spbill_create_ip",
        ),
        (
            "SBXOPENID04",
            openid.as_str(),
            "::ffff:203.0.113.9",
            "invalid spbill_create_ip",
        ),
    ];
    for (no, openid, ip, want) in cases {
        match wx.unified_order(&order(no, openid, ip)).await {
            Err(WxError::Fail(msg)) => assert_eq!(msg, want, "{no}"),
            other => panic!("{no}: {other:?}"),
        }
    }
}

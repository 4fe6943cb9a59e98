//! The ThinkPHP shop's Ping++ QR flow end to end through the sandbox: one QR for WeChat and
//! Alipay, the signed webhook, polling, the result page; storms, forgeries, the query path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    html, order_status, select_attr, select_text, test_config, TestApp, ALIPAY_UA, WECHAT_UA,
};
use jiesuan::payment::pingpp::sign;
use serde_json::{json, Value};

/// Opens the QR's URL with a scanner's User-Agent; returns the redirect target.
async fn scan(app: &TestApp, order_no: &str, ua: &str) -> String {
    let (status, to, _) = app.open_qr(order_no, ua).await;
    assert_eq!(status, 302, "{order_no}");
    to
}

/// A `charge.succeeded` event for the attempt's charge, as Ping++ would send it.
async fn event_for(app: &TestApp, order_id: i32, edit: impl Fn(&mut Value)) -> String {
    let attempt = app.attempts(order_id).pop().unwrap();
    let ch = attempt.provider_ref.unwrap();
    let mut charge: Value = app
        .api
        .get(format!("{}/sandbox/pingpp/v1/charges/{ch}", app.url))
        .bearer_auth(&app.state.config.pingpp.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    charge["paid"] = json!(true);
    charge["time_paid"] = json!(1_790_000_000);
    charge["transaction_no"] = json!("4200000000202611239999999999");
    let mut event = json!({
        "id": "evt_400240816160755820469807", "created": 1_790_000_000, "livemode": false,
        "type": "charge.succeeded", "data": {"object": charge}, "object": "event",
        "request": "iar_mrrvj9ivPOaHPOi9aLPWPqvT", "pending_webhooks": 0
    });
    edit(&mut event);
    event.to_string()
}

async fn webhook(app: &TestApp, body: &str, signature: Option<String>) -> u16 {
    let mut req = app
        .api
        .post(format!("{}/home/notify/pingpp", app.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = signature {
        // Lower-case, as Apache forwards it.
        req = req.header("x-pingplusplus-signature", s);
    }
    req.send().await.unwrap().status().as_u16()
}

fn signed(body: &str) -> Option<String> {
    Some(common::pingpp_signature(body))
}

/// A PC shopper with an order and a charge created by scanning: (order id, order no).
async fn scanned_order(app: &TestApp, who: &str, ua: &str) -> (i32, String) {
    app.pc_register(who).await;
    app.pc_address().await;
    let no = app.pc_order(2, 1).await;
    scan(app, &no, ua).await;
    (app.order_by_no(&no).id, no)
}

#[tokio::test]
async fn the_seed_flow_pays_by_wechat_or_alipay_from_one_qr() {
    let app = TestApp::spawn().await;
    app.pc_register("qr_buyer").await;
    app.pc_address().await;
    for (ua, channel, name) in [
        (WECHAT_UA, "wx_pub_qr", "微信支付"),
        (ALIPAY_UA, "alipay_qr", "支付宝"),
    ] {
        let no = app.pc_order(3, 1).await;
        let (status, page) = app.pc_get(&format!("/home/order/pay?order_sn={no}")).await;
        assert_eq!(status, 200);
        let doc = html(&page);
        assert_eq!(common::count_matches(&doc, "#qr svg"), 1, "inline SVG QR");
        assert!(select_text(&doc, "#pay-methods")
            .unwrap()
            .contains("扫码付（支持支付宝、微信）"));
        assert_eq!(
            select_attr(&doc, "#qr-link", "href").unwrap(),
            format!("{}/home/order/qrpay?id={no}", app.url)
        );
        assert!(select_attr(&doc, "#countdown", "data-expires").is_some());
        assert!(select_text(&doc, ".amount").unwrap().contains("¥59.00"));

        let target = scan(&app, &no, ua).await;
        assert!(
            target.starts_with(&format!("{}/sandbox/pingpp/phone/ch_", app.url)),
            "{target}"
        );
        let order = app.order_by_no(&no);
        let attempt = app.attempts(order.id).pop().unwrap();
        assert_eq!(attempt.channel, channel);
        assert_eq!(attempt.out_trade_no, format!("{no}01"));
        assert_eq!(
            attempt.expires_at, order.expires_at,
            "time_expire is the order's expiry"
        );

        let phone = app
            .api
            .get(&target)
            .header("user-agent", ua)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let doc = html(&phone);
        assert!(select_text(&doc, "#amount").unwrap().contains("59.00"));
        let action = select_attr(&doc, "form#confirm", "action").unwrap();
        let done = app
            .api
            .post(&action)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(select_text(&html(&done), "#done").is_some());

        app.wait_for_status(order.id, 2).await;
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let v: Value = app
                .browser
                .request(
                    method,
                    format!("{}/home/order/status?order_sn={no}", app.url),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(v, json!({"code": 200, "msg": "success", "data": 2}));
        }
        let (_, result) = app
            .pc_get(&format!("/home/order/payresult?order_sn={no}"))
            .await;
        let doc = html(&result);
        assert_eq!(common::count_matches(&doc, "#result.result-success"), 1);
        assert_eq!(select_text(&doc, "#pay-name").unwrap(), name);
        let paid = app.order_by_no(&no);
        assert_eq!(paid.pay_channel.as_deref(), Some(channel));
        assert_eq!(paid.pay_name.as_deref(), Some(name));
        assert!(paid.transaction_no.is_some() && paid.paid_at.is_some());
    }

    // A plain browser is asked to scan, with Alipay as the default link.
    let no = app.pc_order(4, 1).await;
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/home/order/qrpay?id={no}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc = html(&res.text().await.unwrap());
    assert!(select_text(&doc, "#scan-hint")
        .unwrap()
        .contains("微信或支付宝"));
    let alipay = select_attr(&doc, "#alipay-link", "href").unwrap();
    let res = app
        .browser
        .get(format!("{}{alipay}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);

    let (_, body) = app
        .pc_get("/home/order/payresult?order_sn=NOSUCHORDER")
        .await;
    assert!(select_text(&html(&body), "#result.result-fail")
        .unwrap()
        .contains("订单编号错误"));
}

async fn storm_pays_once(apps: &[&TestApp]) {
    let app = apps[0];
    let (id, _) = scanned_order(app, "storm_pp", WECHAT_UA).await;
    let body = event_for(app, id, |_| {}).await;
    let sig = signed(&body).unwrap();
    let urls: Vec<String> = apps
        .iter()
        .map(|a| format!("{}/home/notify/pingpp", a.url))
        .collect();
    let before = app.all_stock();
    let replies = app
        .storm(
            &urls,
            &[
                ("content-type", "application/json".into()),
                ("X-Pingplusplus-Signature", sig),
            ],
            &body,
            64,
            32,
        )
        .await;
    assert!(
        replies.iter().all(|(s, _)| (200..300).contains(s)),
        "{replies:?}"
    );
    assert_eq!(order_status(app, id), 2);
    let hooks: Vec<_> = app
        .pay_logs(id)
        .into_iter()
        .filter(|l| l.0 == "webhook")
        .collect();
    assert_eq!(hooks.len(), 64);
    assert_eq!(hooks.iter().filter(|l| l.3).count(), 1, "one dedupe row");
    assert_eq!(hooks.iter().filter(|l| l.2 == "paid").count(), 1);
    assert_eq!(app.all_stock(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_webhook_sixty_four_times_pays_once() {
    let app = TestApp::spawn().await;
    storm_pays_once(&[&app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_storm_across_two_instances_pays_once() {
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_on(test_config(&first.database_url)).await;
    storm_pays_once(&[&first, &second]).await;
}

#[tokio::test]
async fn forged_or_wrong_webhooks_are_rejected_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (id, _) = scanned_order(&app, "forger", ALIPAY_UA).await;
    let good = event_for(&app, id, |_| {}).await;
    let vectors = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pingpp/merchant.private.pem"
    );
    let other_key = sign::private_key(&std::fs::read_to_string(vectors).unwrap()).unwrap();
    let forged = Some(sign::sign(&other_key, good.as_bytes()).unwrap());
    let wrong_amount = event_for(&app, id, |e| e["data"]["object"]["amount"] = json!(1)).await;
    let wrong_app = event_for(&app, id, |e| {
        e["data"]["object"]["app"] = json!("app_SomebodyElse001")
    })
    .await;
    let unknown = event_for(&app, id, |e| {
        e["data"]["object"]["order_no"] = json!("NOSUCHORDER01")
    })
    .await;
    let live = event_for(&app, id, |e| {
        e["livemode"] = json!(true);
        e["data"]["object"]["livemode"] = json!(true);
    })
    .await;
    let unknown_type = event_for(&app, id, |e| e["type"] = json!("charge.exploded")).await;
    let logs_before = app.pay_log_count();
    let cases: Vec<(&str, Option<String>, u16)> = vec![
        (&good, forged, 400),
        (&good, None, 400),
        (&good, Some("bm90IGEgc2lnbmF0dXJl".into()), 400),
        (&wrong_amount, signed(&wrong_amount), 400),
        (&wrong_app, signed(&wrong_app), 400),
        (&unknown, signed(&unknown), 404),
        (&live, signed(&live), 400),
        (&unknown_type, signed(&unknown_type), 400),
        ("{not json", signed("{not json"), 400),
    ];
    let n = cases.len() as i64;
    for (body, sig, want) in cases {
        assert_eq!(webhook(&app, body, sig).await, want, "{body}");
    }
    assert_eq!(order_status(&app, id), 1);
    assert_eq!(app.attempts(id)[0].status, 1);
    assert_eq!(
        app.pay_log_count(),
        logs_before + n,
        "each rejection logged, nothing else"
    );
    assert!(app.pay_logs(id).iter().all(|l| !l.3));

    // A refund event must carry a Refund, not a Charge.
    let refund = event_for(&app, id, |e| e["type"] = json!("refund.succeeded")).await;
    assert_eq!(webhook(&app, &refund, signed(&refund)).await, 400);
    // The genuine one still works afterwards.
    assert_eq!(webhook(&app, &good, signed(&good)).await, 200);
    assert_eq!(order_status(&app, id), 2);
}

#[tokio::test]
async fn the_mini_program_gets_a_wx_lite_charge_with_its_openid() {
    let app = TestApp::spawn().await;
    let (token, id, _) = app.unpaid_order("lite").await;
    let res = app
        .post_json(
            "/api/v1/pay/pingpp",
            &token,
            &json!({"id": id, "channel": "wx_lite"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let charge: Value = res.json().await.unwrap();
    assert_eq!(charge["object"], "charge");
    assert_eq!(charge["channel"], "wx_lite");
    let openid = jiesuan::models::user::find_by_openid(
        &mut app.conn(),
        charge["extra"]["open_id"].as_str().unwrap(),
    )
    .unwrap();
    assert!(openid.is_some(), "extra.open_id is the user's openid");
    let cred = charge["credential"]["wx_lite"].as_object().unwrap();
    for k in [
        "appId",
        "timeStamp",
        "nonceStr",
        "package",
        "signType",
        "paySign",
    ] {
        assert!(cred.contains_key(k), "{k}");
    }
    let res = app
        .post_json(
            "/api/v1/pay/pingpp",
            &token,
            &json!({"id": id, "channel": "alipay_qr"}),
        )
        .await;
    assert_eq!(res.status(), 400);

    // Paid through the sandbox's test-mode hook (pingpp-js runTestMode).
    let ch = charge["id"].as_str().unwrap();
    let res = app
        .api
        .get(format!(
            "{}/sandbox/pingpp/notify/charges/{ch}?livemode=false",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "success");
    app.wait_for_status(id, 2).await;
}

#[tokio::test]
async fn a_lost_webhook_is_found_by_querying_the_charge() {
    let app = TestApp::spawn().await;
    let (token, id, no) = app.unpaid_order("lost_pp").await;
    app.set_faults(json!({"prefix": no, "never_deliver": true}))
        .await;
    let charge: Value = app
        .post_json(
            "/api/v1/pay/pingpp",
            &token,
            &json!({"id": id, "channel": "wx_lite"}),
        )
        .await
        .json()
        .await
        .unwrap();
    app.sandbox_pay(json!({"charge_id": charge["id"]})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(order_status(&app, id), 1);
    let v: Value = app
        .post_json("/api/v1/pay/query", &token, &json!({ "id": id }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], 2);
    assert!(app
        .pay_logs(id)
        .iter()
        .any(|l| l.0 == "query" && l.2 == "paid"));
}

#[tokio::test]
async fn the_sandbox_api_authenticates_like_ping_plus_plus() {
    let app = TestApp::spawn().await;
    let key = app.state.config.pingpp.secret_key.clone();
    let url = format!(
        "{}/sandbox/pingpp/v1/charges?app%5Bid%5D={}&limit=3",
        app.url, app.state.config.pingpp.app_id
    );
    let bearer = app.api.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(bearer.status(), 200);
    let list: Value = bearer.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let basic = app
        .api
        .get(&url)
        .basic_auth(&key, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    for res in [
        app.api
            .get(&url)
            .bearer_auth("sk_test_wrong")
            .send()
            .await
            .unwrap(),
        app.api.get(&url).send().await.unwrap(),
    ] {
        assert_eq!(res.status(), 401);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let res = app
        .api
        .get(format!("{}/sandbox/pingpp/v1/charges/ch_nothing", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .api
        .post(format!("{}/sandbox/pingpp/v1/charges", app.url))
        .bearer_auth(&key)
        .json(&json!({"order_no": "A1234567", "app": {"id": app.state.config.pingpp.app_id}, "channel": "wx_pub",
                      "amount": 100, "client_ip": "127.0.0.1", "currency": "cny", "subject": "s", "body": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["message"], "missing request parameter: open_id");
}

#[tokio::test]
async fn with_a_merchant_key_requests_are_signed_and_checked() {
    let vectors = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pingpp");
    let mut config = test_config(&common::fresh_database_url());
    config.pingpp.merchant_private_key = Some(format!("{vectors}/merchant.private.pem"));
    config.sandbox.merchant_public_key = Some(format!("{vectors}/merchant.public.pem"));
    let app = TestApp::spawn_on(config).await;
    let (id, _) = scanned_order(&app, "signer", WECHAT_UA).await;
    assert!(
        app.attempts(id)[0]
            .provider_ref
            .as_deref()
            .unwrap()
            .starts_with("ch_"),
        "signed request accepted"
    );
    let res = app
        .api
        .get(format!("{}/sandbox/pingpp/v1/charges/ch_x", app.url))
        .bearer_auth(&app.state.config.pingpp.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let v: Value = res.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("签名"));
}

#[tokio::test]
async fn the_mini_program_pays_with_wx_lite_only() {
    let app = TestApp::spawn().await;
    let (token, id, _) = app.unpaid_order("lite-only").await;
    let res = app
        .post_json(
            "/api/v1/pay/pingpp",
            &token,
            &json!({"id": id, "channel": "wx_pub"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 10000);
    assert!(v["msg"].as_str().unwrap().contains("wx_lite"), "{v}");
    assert!(app.attempts(id).is_empty(), "nothing was started");
}

/// Creates a charge at the sandbox directly; (status, body).
async fn create_charge(
    app: &TestApp,
    channel: &str,
    open_id: &str,
    client_ip: &str,
) -> (u16, Value) {
    let res = app
        .api
        .post(format!("{}/sandbox/pingpp/v1/charges", app.url))
        .bearer_auth(&app.state.config.pingpp.secret_key)
        .json(&json!({"order_no": format!("OID{}", rand_no()), "app": {"id": app.state.config.pingpp.app_id},
                      "channel": channel, "amount": 100, "client_ip": client_ip, "currency": "cny",
                      "subject": "s", "body": "b", "extra": {"open_id": open_id}}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

fn rand_no() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn the_sandbox_wants_the_openid_of_the_channels_app_and_an_ipv4_client_ip() {
    let app = TestApp::spawn().await;
    app.token("mini-user").await;
    let mini_openid =
        jiesuan::sandbox::wxlogin::openid_of(&app.state.config.wechat.appid, "mini-user");
    let (status, v) = create_charge(&app, "wx_lite", &mini_openid, "127.0.0.1").await;
    assert_eq!(status, 200, "{v}");
    for (channel, open_id) in [
        ("wx_pub", mini_openid.as_str()),
        ("wx_lite", "oSbxNeverLoggedIn"),
    ] {
        let (status, v) = create_charge(&app, channel, open_id, "127.0.0.1").await;
        assert_eq!(status, 402, "{channel} {open_id}: {v}");
        assert_eq!(v["error"]["type"], "channel_error");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("来自 {channel} 渠道"))
                && msg.ends_with("appid and openid not match"),
            "{msg}"
        );
    }
    for ip in ["::1", "::ffff:127.0.0.1", "localhost", ""] {
        let (status, v) = create_charge(&app, "wx_lite", &mini_openid, ip).await;
        assert_eq!(status, 400, "{ip}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "client_ip", "{ip}");
    }
}

//! The live-mode rules of the platforms, each enforced by the sandbox and followed by the
//! shop: payment windows and credential lives, refunds that never pay twice, a second
//! payment given back, anonymous scans, trades the platform does not know, livemode and
//! cross-checks on every door.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{order_status, test_config, TestApp};
use diesel::prelude::*;
use jiesuan::domain::RefundStatus;
use jiesuan::models::schema::{orders, pay_attempt, refund};
use jiesuan::payment::wechat::{TradeType, UnifiedOrder, WxError};

use serde_json::{json, Value};

/// Moves the order's deadline to `seconds` from now.
fn expire_in(app: &TestApp, order_id: i32, seconds: i64) {
    diesel::update(orders::table.find(order_id))
        .set(orders::expires_at.eq(jiesuan::models::now() + chrono::Duration::seconds(seconds)))
        .execute(&mut app.conn())
        .unwrap();
}

async fn native(app: &TestApp, token: &str, id: i32) -> Value {
    let res = app
        .post_json("/api/v1/pay/native", token, &json!({ "id": id }))
        .await;
    let status = res.status();
    let v: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

/// Opens the QR's URL as WeChat would; the status and redirect target.
async fn scan(app: &TestApp, order_no: &str) -> (u16, String) {
    let (status, to, _) = app.open_qr(order_no, common::WECHAT_UA).await;
    (status, to)
}

async fn control(app: &TestApp, path: &str, body: Value) {
    app.sandbox_control(path, body).await;
}

/// The refunds the platform holds for a trade.
async fn platform_refunds(app: &TestApp, out_trade_no: &str) -> Vec<Value> {
    app.api
        .get(format!(
            "{}/sandbox/control/refunds?out_trade_no={out_trade_no}",
            app.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn refunds_of(app: &TestApp, order_id: i32) -> Vec<jiesuan::models::refund::Refund> {
    jiesuan::models::refund::of_order(&mut app.conn(), order_id).unwrap()
}

/// Makes every pending refund due for the sweep now (instead of waiting out its backoff).
fn refunds_due_now(app: &TestApp) {
    diesel::update(refund::table.filter(refund::next_try_at.is_not_null()))
        .set(refund::next_try_at.eq(Some(jiesuan::models::now())))
        .execute(&mut app.conn())
        .unwrap();
}

/// Runs the refund sweep until the order's refunds settle (at most `rounds` times).
async fn sweep_until_settled(app: &TestApp, order_id: i32, rounds: usize) {
    let gw = app.state.gateway();
    for _ in 0..rounds {
        refunds_due_now(app);
        gw.sweep_refunds().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        let open = refunds_of(app, order_id).iter().any(|r| {
            r.status == RefundStatus::Pending.code() || r.status == RefundStatus::Processing.code()
        });
        if !open {
            return;
        }
    }
}

use common::refund_request as request;

// ---- 3. Expiry rules ------------------------------------------------------------------

#[tokio::test]
async fn a_payment_started_in_the_last_minute_of_the_hold_still_works() {
    let app = TestApp::spawn().await;
    // WeChat NATIVE, directly.
    let (token, id, _) = app.unpaid_order("last_minute_native").await;
    expire_in(&app, id, 50);
    let v = native(&app, &token, id).await;
    let attempt = app.attempts(id).pop().unwrap();
    let window = attempt.expires_at - jiesuan::models::now();
    assert!(
        window >= chrono::Duration::minutes(5),
        "the attempt outlives the order's deadline: {window}"
    );
    app.sandbox_pay(json!({ "out_trade_no": v["out_trade_no"] }))
        .await;
    app.wait_for_status(id, 2).await;

    // wx_pub_qr through Ping++, opened by an anonymous scan.
    let (_, id, no) = app.unpaid_order("last_minute_qr").await;
    expire_in(&app, id, 50);
    let (status, to) = scan(&app, &no).await;
    assert_eq!(status, 302, "{to}");
    let ch = app.attempts(id).pop().unwrap().provider_ref.unwrap();
    app.sandbox_pay(json!({ "charge_id": ch })).await;
    app.wait_for_status(id, 2).await;
}

#[tokio::test]
async fn the_sandbox_refuses_payment_windows_the_platforms_refuse() {
    let app = TestApp::spawn().await;
    let gw = app.state.gateway();
    let beijing = |minutes: i64| {
        (chrono::Utc::now() + chrono::Duration::minutes(minutes))
            .with_timezone(&jiesuan::domain::shanghai())
            .format("%Y%m%d%H%M%S")
            .to_string()
    };
    let order = |no: &str, expire: String| UnifiedOrder {
        body: "测试".into(),
        out_trade_no: no.into(),
        total_fee: 1,
        spbill_create_ip: "203.0.113.7".into(),
        notify_url: format!("{}/api/v1/pay/notify", app.url),
        trade_type: TradeType::Native,
        openid: None,
        product_id: Some("1".into()),
        time_expire: Some(expire),
    };
    match gw
        .wechat
        .pay
        .unified_order(&order("WINDOW0001", beijing(3)))
        .await
    {
        Err(WxError::Business { code, desc, .. }) => {
            assert_eq!(code, "PARAM_ERROR");
            assert!(desc.contains("time_expire时间过短"), "{desc}");
        }
        other => panic!("a 3-minute window must be refused: {other:?}"),
    }
    assert!(gw
        .wechat
        .pay
        .unified_order(&order("WINDOW0002", beijing(6)))
        .await
        .is_ok());

    // Ping++: 1 minute to 15 days, and 5 minutes for WeChat channels.
    let now = chrono::Utc::now().timestamp();
    for (channel, ahead, ok) in [
        ("alipay_qr", 30, false),
        ("alipay_qr", 120, true),
        ("wx_pub_qr", 120, false),
        ("wx_pub_qr", 16 * 86_400, false),
        ("wx_pub_qr", 400, true),
    ] {
        let body = json!({
            "order_no": format!("W{}{ahead}", channel.replace('_', "")),
            "app": {"id": app.state.config.pingpp.app_id},
            "channel": channel, "amount": 1, "client_ip": "203.0.113.7",
            "currency": "cny", "subject": "测试", "body": "测试",
            "extra": {"product_id": "1"}, "time_expire": now + ahead,
        });
        let res = app
            .api
            .post(format!("{}/sandbox/pingpp/v1/charges", app.url))
            .bearer_auth(&app.state.config.pingpp.secret_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap();
        if ok {
            assert_eq!(status, 200, "{channel} {ahead}: {v}");
        } else {
            assert_eq!(status, 400, "{channel} {ahead}: {v}");
            assert_eq!(v["error"]["param"], "time_expire");
        }
    }
}

#[tokio::test]
async fn a_native_code_is_never_shown_past_its_two_hours() {
    let app = TestApp::spawn().await;
    let (token, id, _) = app.unpaid_order("two_hours").await;
    let first = native(&app, &token, id).await;
    let again = native(&app, &token, id).await;
    assert_eq!(
        first["code_url"], again["code_url"],
        "reused while it lives"
    );

    // The sandbox's clock runs 2 hours ahead: the old code cannot pay any more.
    control(&app, "clock", json!({ "advance_seconds": 2 * 3600 + 60 })).await;
    let text = app
        .sandbox_pay_refused(first["out_trade_no"].as_str().unwrap())
        .await;
    assert!(text.contains("过期"), "{text}");

    control(
        &app,
        "clock",
        json!({ "advance_seconds": -(2 * 3600 + 60) }),
    )
    .await;
    // The shop's attempt is (nearly) two hours old too: a new code, under a new trade number.
    diesel::update(pay_attempt::table.filter(pay_attempt::order_id.eq(id)))
        .set(pay_attempt::created_at.eq(jiesuan::models::now() - chrono::Duration::minutes(119)))
        .execute(&mut app.conn())
        .unwrap();
    let fresh = native(&app, &token, id).await;
    assert_ne!(fresh["out_trade_no"], first["out_trade_no"]);
    assert_ne!(fresh["code_url"], first["code_url"]);
    app.sandbox_pay(json!({ "out_trade_no": fresh["out_trade_no"] }))
        .await;
    app.wait_for_status(id, 2).await;
}

// ---- 4. Refunds never pay twice -------------------------------------------------------

#[tokio::test]
async fn a_wechat_refund_answered_systemerror_is_retried_under_the_same_number() {
    let app = TestApp::spawn().await;
    let (id, _) = app.paid_wechat_order("retry_refund").await;
    let trade = app.attempts(id)[0].out_trade_no.clone();
    let amount = app.attempts(id)[0].amount;
    app.set_faults(json!({ "prefix": trade, "refund_system_errors": 2 }))
        .await;
    let gw = app.state.gateway();
    let r = gw.refund(request(id, amount, "RETRY0001")).await.unwrap();
    assert_eq!(
        r.status,
        RefundStatus::Pending.code(),
        "SYSTEMERROR leaves the outcome open: not failed, not refundable again"
    );
    assert!(r.next_try_at.is_some(), "the sweep will submit it again");
    // An admin trying a second refund now finds nothing left to refund.
    assert!(gw.refund(request(id, amount, "RETRY0002")).await.is_err());

    sweep_until_settled(&app, id, 6).await;
    let done = refunds_of(&app, id);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, RefundStatus::Succeeded.code());
    let held = platform_refunds(&app, &trade).await;
    assert_eq!(
        held.len(),
        1,
        "the platform holds exactly one refund: {held:?}"
    );
    assert_eq!(held[0]["out_refund_no"], "RETRY0001");
    assert_eq!(order_status(&app, id), 6);
}

/// A Ping++-paid order (wx_pub_qr scanned and paid): (order id, out_trade_no, amount).
async fn paid_pingpp_order(app: &TestApp, code: &str) -> (i32, String, i64) {
    let (_, id, no) = app.unpaid_order(code).await;
    scan(app, &no).await;
    let a = app.attempts(id).pop().unwrap();
    app.sandbox_pay(json!({ "charge_id": a.provider_ref.clone().unwrap() }))
        .await;
    app.wait_for_status(id, 2).await;
    (id, a.out_trade_no, a.amount)
}

#[tokio::test]
async fn a_pingpp_refund_that_timed_out_is_found_not_posted_again() {
    let mut config = test_config(&common::fresh_database_url());
    config.platform_timeout_seconds = 1;
    let app = TestApp::spawn_on(config).await;
    let (id, trade, amount) = paid_pingpp_order(&app, "hung_refund").await;
    // No refund.succeeded webhook either: only the shop's own look-up can find it.
    app.set_faults(json!({ "prefix": trade, "refund_hang_ms": 2500, "never_deliver": true }))
        .await;
    let gw = app.state.gateway();
    let r = gw
        .refund(request(id, amount - 1, "HUNG0001"))
        .await
        .unwrap();
    assert_eq!(r.status, RefundStatus::Pending.code());
    assert_eq!(r.tries, 1);
    let held = platform_refunds(&app, &trade).await;
    assert_eq!(held.len(), 1, "the money left: {held:?}");

    sweep_until_settled(&app, id, 6).await;
    let held = platform_refunds(&app, &trade).await;
    assert_eq!(held.len(), 1, "looked up, not posted again: {held:?}");
    assert_eq!(
        refunds_of(&app, id)[0].status,
        RefundStatus::Succeeded.code()
    );
    assert_eq!(order_status(&app, id), 7, "partly refunded");
}

#[tokio::test]
async fn a_pingpp_refund_answered_502_is_not_posted_twice() {
    let app = TestApp::spawn().await;
    let (id, trade, amount) = paid_pingpp_order(&app, "bad_gateway_refund").await;
    app.set_faults(json!({ "prefix": trade, "refund_system_errors": 1 }))
        .await;
    let gw = app.state.gateway();
    let r = gw
        .refund(request(id, amount / 2, "BADGW0001"))
        .await
        .unwrap();
    assert_eq!(r.status, RefundStatus::Pending.code());
    sweep_until_settled(&app, id, 6).await;
    let held = platform_refunds(&app, &trade).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["amount"], amount / 2);
    assert_eq!(
        refunds_of(&app, id)[0].status,
        RefundStatus::Succeeded.code()
    );
}

#[tokio::test]
async fn a_closed_or_diverted_refund_is_an_alarm_and_never_refunded_again() {
    let app = TestApp::spawn().await;
    for (code, status) in [
        ("refund_closed", "REFUNDCLOSE"),
        ("refund_change", "CHANGE"),
    ] {
        let (id, _) = app.paid_wechat_order(code).await;
        let a = app.attempts(id)[0].clone();
        app.set_faults(json!({ "prefix": a.out_trade_no, "refund_status": status }))
            .await;
        let gw = app.state.gateway();
        gw.refund(request(id, a.amount, &format!("AB{status}")))
            .await
            .unwrap();
        // The notification (or the query) reports the status.
        for _ in 0..100 {
            if refunds_of(&app, id)[0].status == RefundStatus::Abnormal.code() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            refunds_of(&app, id)[0].status,
            RefundStatus::Abnormal.code()
        );
        sweep_until_settled(&app, id, 2).await;
        assert_eq!(platform_refunds(&app, &a.out_trade_no).await.len(), 1);
        assert_eq!(
            order_status(&app, id),
            2,
            "the order is not marked refunded"
        );
        assert!(
            gw.refund(request(id, 1, &format!("AGAIN{status}")))
                .await
                .is_err(),
            "the money stays held until an admin settles it"
        );
    }
    app.admin_login().await;
    let (_, page) = app.pc_get("/admin").await;
    let alarms = common::select_text(&common::html(&page), "#alarms").unwrap_or_default();
    assert!(alarms.contains("2 笔退款异常"), "{alarms}");
}

// ---- 7. Test keys never pay live orders -----------------------------------------------

#[tokio::test]
async fn a_live_shop_refuses_a_test_mode_charge_found_by_query() {
    let app = TestApp::spawn().await;
    let (_, id, no) = app.unpaid_order("test_mode_query").await;
    scan(&app, &no).await;
    let a = app.attempts(id).pop().unwrap();
    // Paid at the sandbox, notification lost.
    app.set_faults(json!({ "prefix": a.out_trade_no, "never_deliver": true }))
        .await;
    app.sandbox_pay(json!({ "charge_id": a.provider_ref.clone().unwrap() }))
        .await;
    let mut live = app.state.gateway();
    live.pingpp.livemode = true;
    assert!(live.query_attempt(&a).await.is_err());
    assert_eq!(order_status(&app, id), 1, "a test charge paid nothing");
    assert!(app
        .pay_logs(id)
        .iter()
        .any(|(kind, verified, outcome, _)| kind == "query"
            && !verified
            && outcome == "wrong_mode"));
    // The sandbox shop itself takes it.
    assert!(app
        .state
        .gateway()
        .query_attempt(&a)
        .await
        .unwrap()
        .is_some());
    assert_eq!(order_status(&app, id), 2);
}

#[tokio::test]
async fn a_refund_webhook_of_the_other_mode_changes_nothing() {
    let app = TestApp::spawn().await;
    let (id, _, amount) = paid_pingpp_order(&app, "mode_refund").await;
    let a = app.attempts(id).pop().unwrap();
    // A refund exists and is processing; a live-mode event about it must not complete it.
    let no = "MODE0001";
    app.set_faults(json!({ "prefix": a.out_trade_no, "never_deliver": true }))
        .await;
    app.state
        .gateway()
        .refund(request(id, amount, no))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = refunds_of(&app, id).pop().unwrap();
    let refund_obj: Value = app
        .api
        .get(format!(
            "{}/sandbox/pingpp/v1/charges/{}/refunds/{}",
            app.url,
            a.provider_ref.clone().unwrap(),
            r.provider_ref.clone().unwrap()
        ))
        .bearer_auth(&app.state.config.pingpp.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = json!({
        "id": "evt_400240816160755820469000", "created": 1_790_000_000, "livemode": true,
        "type": "refund.succeeded", "data": {"object": refund_obj}, "object": "event",
        "request": null, "pending_webhooks": 0
    })
    .to_string();
    let sig = common::pingpp_signature(&event);
    let res = app
        .api
        .post(format!("{}/home/notify/pingpp", app.url))
        .header("x-pingplusplus-signature", sig)
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_ne!(
        refunds_of(&app, id).pop().unwrap().status,
        RefundStatus::Succeeded.code()
    );
    assert_eq!(order_status(&app, id), 2);
}

#[tokio::test]
async fn a_wechat_refund_notification_must_match_its_refund() {
    let app = TestApp::spawn().await;
    let (id, _) = app.paid_wechat_order("cross_check").await;
    let (other, _) = app.paid_wechat_order("cross_check_other").await;
    let a = app.attempts(id)[0].clone();
    let b = app.attempts(other)[0].clone();
    app.set_faults(json!({ "prefix": a.out_trade_no, "never_deliver": true }))
        .await;
    let gw = app.state.gateway();
    let r = gw.refund(request(id, a.amount, "CROSS0001")).await.unwrap();
    let key = &app.state.config.wechat.api_key;
    let notify = |trade: &str, fee: i64| {
        let root = format!(
            "<root><out_refund_no>CROSS0001</out_refund_no><out_trade_no>{trade}</out_trade_no>\
             <refund_fee>{fee}</refund_fee><refund_id>{}</refund_id><refund_status>SUCCESS</refund_status>\
             <total_fee>{}</total_fee></root>",
            r.provider_ref.clone().unwrap(),
            a.amount
        );
        let req_info = jiesuan::payment::wechat::refund::encrypt_req_info(&root, key);
        format!(
            "<xml><return_code>SUCCESS</return_code><appid>{}</appid><mch_id>{}</mch_id>\
             <nonce_str>abc</nonce_str><req_info>{req_info}</req_info></xml>",
            app.state.config.wechat.appid, app.state.config.wechat.mch_id
        )
    };
    for (trade, fee, why) in [
        (b.out_trade_no.as_str(), a.amount, "another order's trade"),
        (
            a.out_trade_no.as_str(),
            a.amount + 1,
            "more than the refund",
        ),
    ] {
        let reply = app
            .api
            .post(format!("{}/api/v1/pay/refund_notify", app.url))
            .body(notify(trade, fee))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(reply.contains("FAIL"), "{why}: {reply}");
        assert_ne!(
            refunds_of(&app, id)[0].status,
            RefundStatus::Succeeded.code(),
            "{why}"
        );
    }
    assert_eq!(order_status(&app, id), 2);
    assert_eq!(order_status(&app, other), 2);
}

// ---- 8. A second payment is refunded --------------------------------------------------

#[tokio::test]
async fn a_second_payment_of_a_paid_order_is_refunded_once() {
    let app = TestApp::spawn().await;
    let (token, id, _) = app.unpaid_order("pays_twice").await;
    let first = native(&app, &token, id).await;
    // The mini-program's JSAPI attempt, opened while the QR was still showing.
    let res = app
        .post_json("/api/v1/pay/pre_order", &token, &json!({ "id": id }))
        .await;
    assert_eq!(res.status(), 200);
    let second = app
        .attempts(id)
        .into_iter()
        .find(|a| a.channel == "wx_jsapi")
        .unwrap();
    app.set_faults(json!({ "prefix": second.out_trade_no, "copies": 4 }))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": first["out_trade_no"] }))
        .await;
    app.wait_for_status(id, 2).await;
    app.sandbox_pay(json!({ "out_trade_no": second.out_trade_no }))
        .await;
    // Four copies of the second notification, one refund.
    for _ in 0..100 {
        if refunds_of(&app, id).len() == 1 && app.deliveries(&second.out_trade_no).await.len() >= 4
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let refunds = refunds_of(&app, id);
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].attempt_id, second.id);
    assert_eq!(refunds[0].amount, second.amount);

    sweep_until_settled(&app, id, 4).await;
    let held = platform_refunds(&app, &second.out_trade_no).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["amount"], second.amount);
    assert_eq!(
        refunds_of(&app, id)[0].status,
        RefundStatus::Succeeded.code()
    );
    assert!(
        platform_refunds(&app, first["out_trade_no"].as_str().unwrap())
            .await
            .is_empty()
    );
    assert_eq!(
        order_status(&app, id),
        2,
        "the order stays paid by its first payment"
    );
    // The first payment is still fully refundable by the admin.
    let a = app.attempts(id)[0].clone();
    app.state
        .gateway()
        .refund(request(id, a.amount, "FIRST0001"))
        .await
        .unwrap();

    app.admin_login().await;
    let (_, page) = app.pc_get("/admin").await;
    let alarms = common::select_text(&common::html(&page), "#alarms").unwrap_or_default();
    assert!(alarms.contains("重复支付"), "{alarms}");
}

// ---- 9. Anonymous scans cannot exhaust an order ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_anonymous_scans_leave_the_order_payable() {
    let app = TestApp::spawn().await;
    let (_, id, no) = app.unpaid_order("scanned_a_lot").await;
    let mut targets = std::collections::HashSet::new();
    let app = std::sync::Arc::new(app);
    for round in 0..25 {
        let scans = (0..20).map(|_| {
            let (app, no) = (app.clone(), no.clone());
            tokio::spawn(async move { scan(&app, &no).await })
        });
        for s in futures::future::join_all(scans).await {
            let (status, to) = s.unwrap();
            assert_eq!(status, 302, "round {round}: {to}");
            targets.insert(to);
        }
    }
    assert_eq!(app.attempts(id).len(), 1, "one attempt for every scan");
    assert_eq!(targets.len(), 1, "the same charge every time");
    let ch = app.attempts(id)[0].provider_ref.clone().unwrap();
    app.sandbox_pay(json!({ "charge_id": ch })).await;
    app.wait_for_status(id, 2).await;
}

// ---- 10. Attempts the platform does not know end --------------------------------------

#[tokio::test]
async fn an_attempt_the_platform_forgot_ends_and_never_blocks_the_close() {
    let app = TestApp::spawn().await;
    let (token, id, _) = app.unpaid_order("forgotten").await;
    native(&app, &token, id).await;
    control(&app, "forget", json!({})).await;
    let gw = app.state.gateway();
    for n in 1..=3 {
        gw.query_order(id).await.unwrap();
        let a = &app.attempts(id)[0];
        assert_eq!(a.not_found_count, n);
        assert_eq!(a.status, if n < 3 { 1 } else { 4 }, "after {n} queries");
    }
    assert!(gw.query_order(id).await.unwrap().is_empty());
    assert_eq!(app.attempts(id)[0].not_found_count, 3, "never asked again");

    // Another order, forgotten just before its deadline: the timeout close goes through.
    let (token, id2, _) = app.unpaid_order("forgotten_late").await;
    native(&app, &token, id2).await;
    control(&app, "forget", json!({})).await;
    expire_in(&app, id2, -1);
    let stock = app.stock(1);
    assert_eq!(gw.close_expired().await.unwrap(), 1);
    assert_eq!(order_status(&app, id2), 5);
    assert_eq!(app.stock(1), stock + 1);
}

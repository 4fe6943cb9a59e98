//! After placement: the timeout close racing payments, late payments, reconciliation and
//! its alarm, refunds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{order_status, refund_request, test_config, TestApp};
use diesel::prelude::*;
use jiesuan::payment::wechat::notify::SUCCESS_REPLY;

use jiesuan::services::ServiceError;
use serde_json::{json, Value};

fn expire(app: &TestApp, order_id: i32) {
    use jiesuan::models::schema::orders;
    diesel::update(orders::table.find(order_id))
        .set(orders::expires_at.eq(jiesuan::models::now() - chrono::Duration::seconds(1)))
        .execute(&mut app.conn())
        .unwrap();
}

/// An order of one unit of `product` with a WeChat NATIVE attempt: (token, id, out_trade_no, amount).
async fn native_order(app: &TestApp, code: &str, product: i32) -> (String, i32, String, i64) {
    let token = app.buyer(code).await;
    let (_, v) = app.place(&token, &[(product, 1)]).await;
    let id = v["order_id"].as_i64().unwrap() as i32;
    let v: Value = app
        .post_json("/api/v1/pay/native", &token, &json!({ "id": id }))
        .await
        .json()
        .await
        .unwrap();
    let amount = app.attempts(id)[0].amount;
    (
        token,
        id,
        v["out_trade_no"].as_str().unwrap().to_string(),
        amount,
    )
}

async fn notify(app: &TestApp, body: String) -> String {
    app.api
        .post(format!("{}/api/v1/pay/notify", app.url))
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_timeout_job_racing_a_notification_never_loses_stock_or_counts_it_twice() {
    let app = TestApp::spawn().await;
    app.set_stock(7, 1000);
    let gateway = app.state.gateway();
    let token = app.buyer("racer").await;
    let mut closed_first = 0;
    for i in 0..50 {
        let (_, v) = app.place(&token, &[(7, 1)]).await;
        let id = v["order_id"].as_i64().unwrap() as i32;
        let out: Value = app
            .post_json("/api/v1/pay/native", &token, &json!({ "id": id }))
            .await
            .json()
            .await
            .unwrap();
        let no = out["out_trade_no"].as_str().unwrap().to_string();
        let amount = app.attempts(id)[0].amount;
        let before = app.stock(7);
        expire(&app, id);
        let body = common::wechat_notification(
            &app,
            &no,
            amount,
            &format!("42000000002026112300{i:08}"),
            &app.state.config.wechat.api_key,
        );
        let (closed, reply) = tokio::join!(
            gateway.settle_and_close(id, "system", "race"),
            notify(&app, body)
        );
        assert_eq!(reply, SUCCESS_REPLY);
        if closed.unwrap() {
            closed_first += 1;
        }
        let status = order_status(&app, id);
        assert_eq!(
            status, 2,
            "round {i}: paid, either directly or by the late-payment rule"
        );
        assert_eq!(
            app.stock(7),
            before,
            "round {i}: the paid order holds exactly its one unit"
        );
        let events: Vec<String> = jiesuan::models::event::of_order(&mut app.conn(), id)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        if events.contains(&"closed".to_string()) {
            assert!(
                events.contains(&"late_paid".to_string()),
                "round {i}: {events:?}"
            );
        }
    }
    assert_eq!(app.stock(7), 1000 - 50);
    println!("the close won {closed_first} of 50 races");
}

#[tokio::test]
async fn an_expired_unpaid_order_is_closed_at_the_gateway_and_its_stock_returns() {
    let app = TestApp::spawn().await;
    let (_, id, no, _) = native_order(&app, "sleepy", 5).await;
    let stock = app.stock(5);
    expire(&app, id);
    assert_eq!(app.state.gateway().close_expired().await.unwrap(), 1);
    assert_eq!(order_status(&app, id), 5);
    assert_eq!(app.stock(5), stock + 1);
    assert_eq!(app.attempts(id)[0].status, 3, "attempt closed");
    assert!(app
        .pay_logs(id)
        .iter()
        .any(|l| l.0 == "close" && l.2 == "closed"));
    // Nothing left to close; closing twice changes nothing.
    assert_eq!(app.state.gateway().close_expired().await.unwrap(), 0);
    assert!(!app
        .state
        .gateway()
        .settle_and_close(id, "system", "again")
        .await
        .unwrap());
    assert_eq!(app.stock(5), stock + 1);
    // The gateway no longer takes the payment.
    app.sandbox_pay_refused(&no).await;
}

#[tokio::test]
async fn a_late_payment_without_stock_waits_for_a_refund() {
    let app = TestApp::spawn().await;
    let (_, id, no, amount) = native_order(&app, "too-late", 6).await;
    // Paid at the platform, but the notification is lost and the shop closes the order.
    app.set_faults(json!({"prefix": no, "never_deliver": true}))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    assert!(jiesuan::services::lifecycle::close(&mut app.conn(), id, "test", "closed").unwrap());
    app.set_stock(6, 0);
    // The query door finds the payment: it is recorded, never refused for lack of stock.
    let attempt = app.attempts(id).pop().unwrap();
    let applied = app.state.gateway().query_attempt(&attempt).await.unwrap();
    assert_eq!(
        applied,
        Some(jiesuan::services::pay::Applied::PaidOutOfStock { order_id: id })
    );
    assert_eq!(order_status(&app, id), 4);
    assert_eq!(app.stock(6), 0, "nothing oversold");
    let refunds = jiesuan::models::refund::of_order(&mut app.conn(), id).unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!((refunds[0].amount, refunds[0].status), (amount, 1));
    // The pending refund goes out, and completes by notification.
    app.api
        .delete(format!("{}/sandbox/control/faults", app.url))
        .send()
        .await
        .unwrap();
    let r = app
        .state
        .gateway()
        .submit_refund(refunds[0].clone())
        .await
        .unwrap();
    assert_eq!(r.status, 2);
    app.wait_for_status(id, 6).await;
}

#[tokio::test]
async fn a_lost_notification_is_paid_by_the_sweep_and_the_alarm_fires_and_clears() {
    let mut config = test_config(&common::fresh_database_url());
    config.query_pending_after_seconds = 0;
    config.callback_alarm_after_seconds = 3600;
    config.callback_alarm_min_confirmations = 2;
    let app = TestApp::spawn_on(config).await;
    let health = || async {
        let v: Value = app
            .api
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v
    };
    assert_eq!(health().await["status"], "ok");
    let mut ids = Vec::new();
    for code in ["quiet-1", "quiet-2"] {
        let (_, id, no, _) = native_order(&app, code, 3).await;
        app.set_faults(json!({"prefix": no, "never_deliver": true}))
            .await;
        app.sandbox_pay(json!({ "out_trade_no": no })).await;
        ids.push(id);
    }
    let (confirmed, _, _) = jiesuan::jobs::tick(&app.state.gateway(), &app.state).await;
    assert_eq!(confirmed, 2);
    for id in &ids {
        assert_eq!(order_status(&app, *id), 2);
    }
    let h = health().await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["detail"]["health"]["confirmed_by_query"], 2);

    // A verified notification arrives: callbacks work again.
    let (_, id, no, _) = native_order(&app, "loud", 3).await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    app.wait_for_status(id, 2).await;
    assert_eq!(health().await["status"], "ok");
}

/// A paid order through `channel` ("wechat" NATIVE or Ping++ "wx_lite"): (id, amount).
async fn paid_order(app: &TestApp, code: &str, channel: &str) -> (i32, i64) {
    let (token, id, _) = app.unpaid_order(code).await;
    if channel == "wechat" {
        let v: Value = app
            .post_json("/api/v1/pay/native", &token, &json!({ "id": id }))
            .await
            .json()
            .await
            .unwrap();
        app.sandbox_pay(json!({ "out_trade_no": v["out_trade_no"] }))
            .await;
    } else {
        let v: Value = app
            .post_json(
                "/api/v1/pay/pingpp",
                &token,
                &json!({"id": id, "channel": "wx_lite"}),
            )
            .await
            .json()
            .await
            .unwrap();
        app.sandbox_pay(json!({ "charge_id": v["id"] })).await;
    }
    app.wait_for_status(id, 2).await;
    (id, app.attempts(id)[0].amount)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_refunds_at_once_give_back_the_money_once() {
    let app = TestApp::spawn().await;
    for channel in ["wechat", "pingpp"] {
        let (id, amount) = paid_order(&app, &format!("twice-{channel}"), channel).await;
        let gw = app.state.gateway();
        let (a, b) = tokio::join!(
            gw.refund(refund_request(id, amount, &format!("RA{id}"))),
            gw.refund(refund_request(id, amount, &format!("RB{id}")))
        );
        let ok = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "{channel}: {a:?} {b:?}");
        let refused = [a, b].into_iter().find_map(Result::err).unwrap();
        assert!(
            matches!(refused, ServiceError::Invalid(ref f) if f.contains_key("amount")),
            "{refused:?}"
        );
        // The same request retried at once is the same refund.
        let same = format!("RC{id}");
        let (c, d) = tokio::join!(
            gw.refund(refund_request(id, amount, &same)),
            gw.refund(refund_request(id, amount, &same))
        );
        assert!(c.is_err() && d.is_err(), "nothing left to refund");
        app.wait_for_status(id, 6).await;
        assert_eq!(
            jiesuan::models::refund::of_order(&mut app.conn(), id)
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn partial_refunds_add_up_to_refunded_and_no_further() {
    let app = TestApp::spawn().await;
    for channel in ["wechat", "pingpp"] {
        let (id, amount) = paid_order(&app, &format!("partial-{channel}"), channel).await;
        let gw = app.state.gateway();
        let first = gw
            .refund(refund_request(id, 1000, &format!("P1{id}")))
            .await
            .unwrap();
        // A retry of the same request is idempotent.
        let again = gw
            .refund(refund_request(id, 1000, &format!("P1{id}")))
            .await
            .unwrap();
        assert_eq!(first.id, again.id);
        app.wait_for_status(id, 7).await;
        gw.refund(refund_request(id, amount - 1000, &format!("P2{id}")))
            .await
            .unwrap();
        app.wait_for_status(id, 6).await;
        let more = gw.refund(refund_request(id, 1, &format!("P3{id}"))).await;
        assert!(more.is_err(), "{more:?}");
        let done: Vec<_> = jiesuan::models::refund::of_order(&mut app.conn(), id).unwrap();
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|r| r.status == 3));
        assert_eq!(done.iter().map(|r| r.amount).sum::<i64>(), amount);
    }
}

#[tokio::test]
async fn duplicate_refund_notifications_complete_the_refund_once() {
    let app = TestApp::spawn().await;
    let (id, amount) = paid_order(&app, "dup-refund", "wechat").await;
    let no = app.attempts(id)[0].out_trade_no.clone();
    app.set_faults(json!({"prefix": no, "copies": 3})).await;
    app.state
        .gateway()
        .refund(refund_request(id, amount, &format!("D{id}")))
        .await
        .unwrap();
    app.wait_for_status(id, 6).await;
    for _ in 0..100 {
        let acked = app
            .deliveries(&no)
            .await
            .into_iter()
            .filter(|d| d["acknowledged"] == true)
            .count();
        if acked >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logs = app.pay_logs(id);
    let notes: Vec<_> = logs.iter().filter(|l| l.0 == "refund_notify").collect();
    assert_eq!(notes.len(), 3, "{logs:?}");
    assert_eq!(notes.iter().filter(|l| l.2 == "refunded").count(), 1);
    assert_eq!(
        notes.iter().filter(|l| l.2 == "refund_duplicate").count(),
        2
    );
    let events = jiesuan::models::event::of_order(&mut app.conn(), id).unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "refunded").count(), 1);
}

#[tokio::test]
async fn the_sweep_backs_off_from_attempts_that_stay_unpaid() {
    let mut config = test_config(&common::fresh_database_url());
    config.query_pending_after_seconds = 0;
    let app = TestApp::spawn_on(config).await;
    let (_, id, _, _) = native_order(&app, "never-pays", 2).await;
    let gw = app.state.gateway();
    assert_eq!(gw.sweep(chrono::Duration::zero()).await.unwrap(), 0);
    let a = app.attempts(id).pop().unwrap();
    assert_eq!(a.query_count, 1);
    assert!(a.next_query_at.unwrap() > jiesuan::models::now() + chrono::Duration::seconds(20));
    let queries = |app: &TestApp| app.pay_logs(id).iter().filter(|l| l.0 == "query").count();
    assert_eq!(queries(&app), 1);
    // The next sweeps leave it alone until its backoff runs out.
    gw.sweep(chrono::Duration::zero()).await.unwrap();
    gw.sweep(chrono::Duration::zero()).await.unwrap();
    assert_eq!(queries(&app), 1);
    assert_eq!(app.attempts(id).pop().unwrap().query_count, 1);
}

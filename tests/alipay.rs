//! Alipay direct (`cashier = "direct"`) end to end: the one QR opened in Alipay pays through
//! the shop's own precreate, the notification (or the query door) pays once, copies across
//! two instances pay once, a notification signed by independent code is believed only when
//! every part is right, the timeout close closes the Alipay trade first, and partial and
//! full refunds go back through Alipay. In certificate mode (公钥证书模式) the same flows
//! name the certificates' SNs, and a wrong app certificate or a rotated Alipay one stops
//! the call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::wechat_v3::sign;
use common::{fresh_database_url, order_status, test_config, TestApp, ALIPAY_UA};
use jiesuan::config::{Cashier, Config};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn direct(database_url: &str) -> Config {
    // Before any server of this binary starts: the first logger set stays, and one test
    // reads the warning a rotated Alipay certificate brings.
    common::capture_logs();
    let mut config = test_config(database_url);
    config.cashier = Cashier::Direct;
    config
}

async fn direct_app() -> TestApp {
    TestApp::spawn_on(direct(&fresh_database_url())).await
}

/// A PC shopper's order, its QR opened by the Alipay app: (order id, out_trade_no, the
/// precreate code the app is sent to).
async fn scanned(app: &TestApp, name: &str) -> (i32, String, String) {
    app.pc_register(name).await;
    app.pc_address().await;
    let order_no = app.pc_order(1, 1).await;
    let (status, location, _) = app.open_qr(&order_no, ALIPAY_UA).await;
    assert_eq!(status, 302, "{location}");
    let id = app.order_by_no(&order_no).id;
    let a = app.attempts(id).pop().unwrap();
    assert_eq!(
        (a.provider.as_str(), a.channel.as_str()),
        ("alipay", "alipay_qr")
    );
    assert_eq!(a.credential.as_deref(), Some(location.as_str()));
    (id, a.out_trade_no, location)
}

/// A scanned order paid in Alipay, paid at the shop by Alipay's notification, which was
/// believed: (order id, out_trade_no).
async fn paid_by_notification(app: &TestApp, name: &str) -> (i32, String) {
    let (id, no, _) = scanned(app, name).await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    app.wait_for_status(id, 2).await;
    let logs = app.pay_logs(id);
    assert!(
        logs.iter()
            .any(|(kind, verified, outcome, _)| kind == "notify" && *verified && outcome == "paid"),
        "{logs:?}"
    );
    (id, no)
}

#[tokio::test]
async fn the_qr_opened_in_alipay_pays_through_the_shops_own_precreate() {
    let app = direct_app().await;
    let (id, _) = paid_by_notification(&app, "aliscan").await;
    let o = jiesuan::models::order::find(&mut app.conn(), id)
        .unwrap()
        .unwrap();
    assert_eq!(o.pay_name.as_deref(), Some("支付宝"));
}

#[tokio::test]
async fn without_a_notification_the_query_door_finds_the_payment() {
    let app = direct_app().await;
    let (id, no, _) = scanned(&app, "aliquery").await;
    let gateway = app.state.gateway();
    // Not scanned yet: Alipay has no such trade, which is "not paid", not "lost".
    assert!(gateway.query_order(id).await.unwrap().is_empty());
    assert_eq!(app.attempts(id)[0].status, 1, "the attempt lives on");
    // And its answers escape their slashes (`https:\/\/`), signed over the plain text.
    app.set_faults(json!({ "prefix": no, "never_deliver": true, "alipay_escaped_slashes": true }))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    assert_eq!(gateway.query_order(id).await.unwrap().len(), 1);
    assert_eq!(order_status(&app, id), 2);
}

/// A payment notification as Alipay sends it, signed by independent code with the
/// sandbox platform's key; `fields` overrides the right ones.
fn notification(app: &TestApp, no: &str, total: &str, fields: &[(&str, &str)]) -> String {
    let a = &app.state.config.alipay;
    let mut f: BTreeMap<String, String> = [
        ("notify_time", "2026-12-01 18:00:06"),
        ("notify_type", "trade_status_sync"),
        ("notify_id", "2026120100222180006000000001"),
        ("app_id", a.app_id.as_str()),
        ("auth_app_id", a.app_id.as_str()),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("sign_type", "RSA2"),
        ("trade_no", "2026120122001400000000000001"),
        ("out_trade_no", no),
        ("buyer_id", "2088000000000001"),
        ("seller_id", a.seller_id.as_str()),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", total),
        ("receipt_amount", total),
        ("buyer_pay_amount", total),
        ("subject", "结算商城+茶"),
        ("gmt_create", "2026-12-01 18:00:01"),
        ("gmt_payment", "2026-12-01 18:00:05"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in fields {
        f.insert(k.to_string(), v.to_string());
    }
    if !f.contains_key("sign") {
        let content = sign_string(&f);
        f.insert("sign".into(), platform_sign(&content));
    }
    serde_urlencoded::to_string(&f).unwrap()
}

/// Alipay's sign string of a notification: sorted, no empties, no `sign` or `sign_type`.
fn sign_string(f: &BTreeMap<String, String>) -> String {
    f.iter()
        .filter(|(k, v)| !v.is_empty() && *k != "sign" && *k != "sign_type")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The sign Alipay's key makes over `content`.
fn platform_sign(content: &str) -> String {
    sign("alipay_platform_private.pem", content)
}

async fn post(app: &TestApp, body: &str) -> String {
    app.api
        .post(format!("{}/home/notify/alipay", app.url))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_notification_wrong_in_any_single_part_changes_nothing() {
    let app = direct_app().await;
    let (id, no, _) = scanned(&app, "aliforged").await;
    let total = jiesuan::domain::Money::from_fen(app.attempts(id)[0].amount).yuan();
    let more = jiesuan::domain::Money::from_fen(app.attempts(id)[0].amount + 1).yuan();
    let good = notification(&app, &no, &total, &[]);
    // The right sign string, but the `+` of the subject read as a space (decoded twice).
    let right: BTreeMap<String, String> = serde_urlencoded::from_str(&good).unwrap();
    let content = sign_string(&right);
    let twice = notification(
        &app,
        &no,
        &total,
        &[("sign", &platform_sign(&content.replace('+', " ")))],
    );
    let other_key = notification(
        &app,
        &no,
        &total,
        &[("sign", &sign("alipay_app_private.pem", &content))],
    );
    let cases = [
        ("amount", notification(&app, &no, &more, &[])),
        (
            "seller_id",
            notification(&app, &no, &total, &[("seller_id", "2088999999999999")]),
        ),
        (
            "app_id",
            notification(&app, &no, &total, &[("app_id", "2021999999999999")]),
        ),
        ("signed by another key", other_key),
        ("decoded twice", twice),
        // A field changed after signing.
        ("changed", good.replace("TRADE_SUCCESS", "TRADE_FINISHED")),
        ("sign_type", good.replace("sign_type=RSA2", "sign_type=RSA")),
    ];
    for (what, body) in &cases {
        assert_eq!(post(&app, body).await, "fail", "{what}");
        assert_eq!(order_status(&app, id), 1, "{what} paid the order");
    }
    assert_eq!(post(&app, &good).await, "success");
    assert_eq!(order_status(&app, id), 2);
    let outcomes: Vec<String> = app.pay_logs(id).into_iter().map(|l| l.2).collect();
    for expected in ["amount_mismatch", "wrong_merchant", "paid"] {
        assert!(
            outcomes.iter().any(|o| o == expected),
            "{expected}: {outcomes:?}"
        );
    }
}

#[tokio::test]
async fn sixty_four_copies_across_two_instances_pay_once() {
    let database_url = fresh_database_url();
    let first = TestApp::spawn_on(direct(&database_url)).await;
    let second = TestApp::spawn_on(direct(&database_url)).await;
    let (id, no, _) = scanned(&first, "alistorm").await;
    let total = jiesuan::domain::Money::from_fen(first.attempts(id)[0].amount).yuan();
    let body = notification(&first, &no, &total, &[]);
    let urls = [first.url.clone(), second.url.clone()].map(|u| format!("{u}/home/notify/alipay"));
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8".to_string(),
    )];
    let replies = first.storm(&urls, &headers, &body, 64, 32).await;
    assert!(
        replies.iter().all(|(s, b)| *s == 200 && b == "success"),
        "{replies:?}"
    );
    assert_eq!(order_status(&first, id), 2);
    let logs = first.pay_logs(id);
    let paid = logs.iter().filter(|l| l.2 == "paid").count();
    let duplicates = logs.iter().filter(|l| l.2 == "duplicate").count();
    assert_eq!((paid, duplicates), (1, 63), "{logs:?}");
}

#[tokio::test]
async fn the_timeout_close_closes_the_alipay_trade_first() {
    let app = direct_app().await;
    let (id, no, code) = scanned(&app, "alitimeout").await;
    // The phone opened the code: the trade exists at Alipay, waiting for the buyer.
    let res = app.api.get(&code).send().await.unwrap();
    assert_eq!(res.status(), 200);
    expire(&app, id);
    assert_eq!(app.state.gateway().close_expired().await.unwrap(), 1);
    assert_eq!(order_status(&app, id), 5);
    let closes: Vec<_> = app
        .pay_logs(id)
        .into_iter()
        .filter(|l| l.0 == "close")
        .collect();
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(closes[0].2, "closed");
    // Alipay refuses to take the money now.
    app.sandbox_pay_refused(&no).await;
}

#[tokio::test]
async fn a_trade_alipay_closed_at_its_deadline_lets_the_order_close() {
    let app = direct_app().await;
    let (id, _, code) = scanned(&app, "aliexpired").await;
    assert_eq!(app.api.get(&code).send().await.unwrap().status(), 200);
    // Alipay closed the trade by itself (at its time_expire, about the order's deadline);
    // here closed through the connector, behind the shop's back.
    let trade = trade_of(&app, id);
    let gateway = app.state.gateway();
    let alipay = gateway
        .connector(jiesuan::domain::Provider::Alipay)
        .unwrap();
    assert!(alipay.close(&trade).await.is_ok());
    expire(&app, id);
    assert_eq!(app.state.gateway().close_expired().await.unwrap(), 1);
    assert_eq!(order_status(&app, id), 5);
}

/// Moves the order's deadline into the past.
fn expire(app: &TestApp, id: i32) {
    use diesel::prelude::*;
    use jiesuan::models::schema::orders;
    diesel::update(orders::table.filter(orders::id.eq(id)))
        .set(orders::expires_at.eq(jiesuan::models::now() - chrono::Duration::minutes(1)))
        .execute(&mut app.conn())
        .unwrap();
}

#[tokio::test]
async fn partial_and_full_refunds_go_back_through_alipay() {
    let app = direct_app().await;
    let (id, no, _) = scanned(&app, "alirefund").await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    app.wait_for_status(id, 2).await;
    let amount = app.attempts(id)[0].amount;
    let gateway = app.state.gateway();
    gateway
        .refund(common::refund_request(id, 1, &format!("RA{id}")))
        .await
        .unwrap();
    settle_refunds(&app, id, 7).await;
    gateway
        .refund(common::refund_request(id, amount - 1, &format!("RB{id}")))
        .await
        .unwrap();
    settle_refunds(&app, id, 6).await;
    let held: Value = app
        .sandbox_view(&format!("refunds?out_trade_no={no}"))
        .await;
    let amounts: Vec<i64> = held
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts.iter().sum::<i64>(), amount, "{held}");
}

/// Waits until the order reaches `status`, asking Alipay about open refunds meanwhile.
async fn settle_refunds(app: &TestApp, id: i32, status: i32) {
    for _ in 0..100 {
        if order_status(app, id) == status {
            return;
        }
        app.state.gateway().sweep_refunds().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("order {id} is {} not {status}", order_status(app, id));
}

/// Follows the shop's link through Alipay's cashier: the browser is sent to gateway.do,
/// then to the cashier page, pays there, and comes back. Where it comes back to.
async fn through_the_cashier(app: &TestApp, browser: &reqwest::Client, link: &str) -> String {
    let res = browser
        .get(format!("{}{link}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "{link}");
    let gateway = common::location(&res);
    assert!(gateway.contains("/sandbox/alipay/gateway.do?"), "{gateway}");
    let res = browser.get(&gateway).send().await.unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let cashier = common::location(&res);
    let page = browser.get(&cashier).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let doc = common::html(&page.text().await.unwrap());
    let action = common::select_attr(&doc, "form#confirm", "action").unwrap();
    let action = if action.starts_with('/') {
        format!("{}{action}", app.url)
    } else {
        action
    };
    let paid = browser.post(&action).send().await.unwrap();
    assert_eq!(paid.status(), 302);
    common::location(&paid)
}

#[tokio::test]
async fn the_pc_and_phone_cashiers_pay_and_come_back_to_the_result_page() {
    let app = direct_app().await;
    app.pc_register("alipage").await;
    app.pc_address().await;
    let order_no = app.pc_order(1, 1).await;
    let (_, body) = app
        .pc_get(&format!("/home/order/pay?order_sn={order_no}"))
        .await;
    let link = common::select_attr(&common::html(&body), "#alipay-page", "href").unwrap();
    let back = through_the_cashier(&app, &app.browser, &link).await;
    let result = format!("{}/home/order/payresult?order_sn={order_no}", app.url);
    assert!(back.starts_with(&result), "{back}");
    let id = app.order_by_no(&order_no).id;
    let a = app.attempts(id).pop().unwrap();
    assert_eq!(
        (a.provider.as_str(), a.channel.as_str()),
        ("alipay", "alipay_pc_direct")
    );
    app.wait_for_status(id, 2).await;
    let (status, body) = app.pc_get(&back[app.url.len()..]).await;
    assert_eq!(status, 200);
    assert!(body.contains("支付成功"), "{body}");

    // A phone browser opens the QR of another order: 支付宝 takes it to the phone cashier.
    let order_no = app.pc_order(2, 1).await;
    let (status, _, body) = app
        .open_qr(
            &order_no,
            "Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36",
        )
        .await;
    assert_eq!(status, 200);
    let link = common::select_attr(&common::html(&body), "#alipay-link", "href").unwrap();
    assert!(link.ends_with("channel=alipay_wap"), "{link}");
    let phone = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back = through_the_cashier(&app, &phone, &link).await;
    assert!(
        back.contains(&format!("payresult?order_sn={order_no}")),
        "{back}"
    );
    let id = app.order_by_no(&order_no).id;
    assert_eq!(app.attempts(id).pop().unwrap().channel, "alipay_wap");
    app.wait_for_status(id, 2).await;
}

/// The direct cashier in certificate mode: the app's, Alipay's and the root certificate
/// (the sandbox's committed ones unless changed).
fn certificate_mode(app_cert: &str, alipay_cert: &str) -> Config {
    let mut config = direct(&fresh_database_url());
    let keys = |file: &str| Some(format!("keys/sandbox/{file}"));
    config.alipay.app_cert = keys(app_cert);
    config.alipay.alipay_cert = keys(alipay_cert);
    config.alipay.alipay_root_cert = keys("alipay_root_cert.pem");
    // Never read in certificate mode: the key inside alipay_cert verifies.
    config.alipay.alipay_public_key = "no-such-public-key.pem".into();
    config
}

async fn certified_app() -> TestApp {
    TestApp::spawn_on(certificate_mode(
        "alipay_app_cert.pem",
        "alipay_platform_cert.pem",
    ))
    .await
}

/// The Alipay trade of an order's latest attempt, as the connector takes it.
fn trade_of(app: &TestApp, id: i32) -> jiesuan::payment::connector::Trade {
    let a = app.attempts(id).pop().unwrap();
    jiesuan::payment::connector::Trade {
        channel: Some(jiesuan::domain::Channel::AlipayQr),
        out_trade_no: a.out_trade_no,
        provider_ref: a.provider_ref,
        credential: a.credential,
        amount: jiesuan::domain::Money::from_fen(a.amount),
        expires_at: a.expires_at,
    }
}

#[tokio::test]
async fn in_certificate_mode_a_scan_pays_and_the_query_and_a_refund_go_through() {
    let app = certified_app().await;
    // Believed with the key inside alipay_platform_cert.pem (no public key is configured).
    let (id, _) = paid_by_notification(&app, "alicert").await;
    let gateway = app.state.gateway();
    let alipay = gateway
        .connector(jiesuan::domain::Provider::Alipay)
        .unwrap();
    let state = alipay.query(&trade_of(&app, id)).await.unwrap();
    assert!(
        matches!(state, jiesuan::payment::connector::TradeState::Paid { .. }),
        "{state:?}"
    );
    let amount = app.attempts(id)[0].amount;
    gateway
        .refund(common::refund_request(id, amount, &format!("RC{id}")))
        .await
        .unwrap();
    settle_refunds(&app, id, 6).await;
}

#[tokio::test]
async fn in_certificate_mode_the_pc_cashier_url_names_both_certificates() {
    let app = certified_app().await;
    app.pc_register("alicertpage").await;
    app.pc_address().await;
    let order_no = app.pc_order(1, 1).await;
    let link = format!("/home/order/qrpay?id={order_no}&channel=alipay_pc_direct");
    let res = app
        .browser
        .get(format!("{}{link}", app.url))
        .send()
        .await
        .unwrap();
    let gateway = common::location(&res);
    assert!(
        gateway.contains("app_cert_sn=cb8ed781ed476b2f7982d70b7ebcd67d")
            && gateway.contains("alipay_root_cert_sn=f7f936ab258ad2cfb59567281911f572"),
        "{gateway}"
    );
    let back = through_the_cashier(&app, &app.browser, &link).await;
    assert!(
        back.contains(&format!("payresult?order_sn={order_no}")),
        "{back}"
    );
    app.wait_for_status(app.order_by_no(&order_no).id, 2).await;
}

/// What Alipay answers, in certificate mode with these certificates, to a query about a
/// trade the shop never made (the request itself is judged first), and the shop.
async fn query_an_unknown_trade(
    app_cert: &str,
    alipay_cert: &str,
) -> (TestApp, jiesuan::payment::connector::Failure) {
    let app = TestApp::spawn_on(certificate_mode(app_cert, alipay_cert)).await;
    let trade = jiesuan::payment::connector::Trade {
        channel: Some(jiesuan::domain::Channel::AlipayQr),
        out_trade_no: "CERTCHECK0101".into(),
        provider_ref: None,
        credential: None,
        amount: jiesuan::domain::Money::from_fen(1),
        expires_at: jiesuan::models::now() + chrono::Duration::minutes(30),
    };
    let gateway = app.state.gateway();
    let alipay = gateway
        .connector(jiesuan::domain::Provider::Alipay)
        .unwrap();
    let refused = alipay.query(&trade).await.unwrap_err();
    (app, refused)
}

#[tokio::test]
async fn an_app_certificate_alipay_did_not_issue_is_refused_by_alipay() {
    // A valid certificate, but not the app's: its SN names nothing Alipay knows.
    let (app, refused) =
        query_an_unknown_trade("alipay_platform_cert.pem", "alipay_platform_cert.pem").await;
    assert!(
        refused.message.contains("isv.app-cert-not-exist"),
        "{refused:?}"
    );
    // The shopper's scan gets no Alipay QR either.
    app.pc_register("aliwrongapp").await;
    app.pc_address().await;
    let order_no = app.pc_order(1, 1).await;
    let (status, location, _) = app.open_qr(&order_no, ALIPAY_UA).await;
    assert_ne!(status, 302, "{location}");
}

#[tokio::test]
async fn an_answer_from_a_rotated_alipay_certificate_is_not_believed_and_says_why() {
    // The shop still holds a certificate other than the one Alipay now signs with.
    let (_app, refused) =
        query_an_unknown_trade("alipay_app_cert.pem", "alipay_app_cert.pem").await;
    assert!(
        refused.message.contains("answer not believed")
            && refused.message.contains("f969d4437bcf01cad5a5428519cd7b14"),
        "{refused:?}"
    );
    let warned = common::log_lines()
        .into_iter()
        .any(|l| l.contains("download the new") && l.contains("alipayCertPublicKey"));
    assert!(warned, "the merchant is told what to do");
}

#[test]
fn a_missing_or_unusable_certificate_stops_the_start_naming_the_file() {
    let mut missing = certificate_mode("alipay_app_cert.pem", "alipay_platform_cert.pem");
    missing.alipay.alipay_root_cert = Some("no-such-root.crt".into());
    let e = jiesuan::startup::check(&missing).unwrap_err().to_string();
    assert!(
        e.contains("alipay.alipay_root_cert") && e.contains("no-such-root.crt"),
        "{e}"
    );
    // A key is not a certificate.
    let mut key = certificate_mode("alipay_app_cert.pem", "alipay_platform_public.pem");
    key.alipay.alipay_public_key = "keys/sandbox/alipay_platform_public.pem".into();
    let e = jiesuan::startup::check(&key).unwrap_err().to_string();
    assert!(
        e.contains("alipay.alipay_cert") && e.contains("alipay_platform_public.pem"),
        "{e}"
    );
}

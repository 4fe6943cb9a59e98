//! Bad input an outside test found: redirects off-site through `next`, CR/LF and NUL bytes,
//! over-long identifiers in notifications, paid notifications that cannot be read, and a
//! login delay that told which usernames exist. Each gets a 4xx or the platform's FAIL
//! reply, a log row where a notification came in, and never a 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    html, order_status, select_attr, select_text, wechat_notification, wechat_notification_with,
    TestApp,
};
use diesel::prelude::*;
use jiesuan::models::pay::PayLog;
use jiesuan::payment::wechat::refund::encrypt_req_info;
use jiesuan::payment::wechat::xml::parse;
use serde_json::{json, Value};

/// The newest `pay_log` row, whatever it belongs to.
fn last_log(app: &TestApp) -> PayLog {
    use jiesuan::models::schema::pay_log;
    pay_log::table
        .order(pay_log::id.desc())
        .select(PayLog::as_select())
        .first(&mut app.conn())
        .unwrap()
}

async fn post(
    app: &TestApp,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> (u16, String) {
    let mut req = app.api.post(format!("{}{path}", app.url)).body(body);
    for (k, v) in headers {
        req = req.header(*k, v.clone());
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn wechat_notify(app: &TestApp, body: impl Into<Vec<u8>>) -> String {
    let (status, reply) = post(app, "/api/v1/pay/notify", body.into(), &[]).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

fn return_code(reply: &str) -> String {
    parse(reply.as_bytes()).unwrap()["return_code"].clone()
}

/// An unpaid order with a NATIVE attempt: (order id, out_trade_no, amount).
async fn native_order(app: &TestApp, code: &str) -> (i32, String, i64) {
    let (token, id, _) = app.unpaid_order(code).await;
    let res = app
        .post_json("/api/v1/pay/native", &token, &json!({ "id": id }))
        .await;
    assert_eq!(res.status(), 200);
    let attempt = app.attempts(id).pop().unwrap();
    (id, attempt.out_trade_no, attempt.amount)
}

async fn pingpp_webhook(app: &TestApp, body: impl Into<Vec<u8>>, sig: String) -> u16 {
    let headers = [
        ("content-type", "application/json".to_string()),
        ("x-pingplusplus-signature", sig),
    ];
    post(app, "/home/notify/pingpp", body.into(), &headers)
        .await
        .0
}

/// A signed Ping++ `charge.succeeded` for `order_no` (the charge need not exist).
fn pingpp_event(app: &TestApp, order_no: &str) -> String {
    json!({
        "id": "evt_400240816160755820469807", "created": 1_790_000_000, "livemode": false,
        "type": "charge.succeeded", "object": "event", "pending_webhooks": 0,
        "data": {"object": {
            "id": "ch_Hm5uTSifDOuTy9iLeLPSurrD", "object": "charge", "livemode": false,
            "created": 1_790_000_000, "client_ip": "127.0.0.1",
            "paid": true, "app": app.state.config.pingpp.app_id, "channel": "wx_pub_qr",
            "order_no": order_no, "amount": 1, "currency": "cny", "subject": "s", "body": "b",
            "transaction_no": "4200000000202611239999999999", "time_paid": 1_790_000_000,
            "refunded": false, "amount_refunded": 0, "metadata": {}, "credential": {}
        }}
    })
    .to_string()
}

/// A WeChat refund notification whose encrypted part holds these fields.
fn refund_notification(app: &TestApp, inner: &[(&str, &str)]) -> String {
    let cfg = &app.state.config.wechat;
    let root: String = inner
        .iter()
        .map(|(k, v)| format!("<{k}><![CDATA[{v}]]></{k}>"))
        .collect();
    let req_info = encrypt_req_info(&format!("<root>{root}</root>"), &cfg.api_key);
    format!(
        "<xml><return_code>SUCCESS</return_code><appid>{}</appid><mch_id>{}</mch_id>\
         <req_info>{req_info}</req_info></xml>",
        cfg.appid, cfg.mch_id
    )
}

#[tokio::test]
async fn next_after_login_or_registration_only_follows_local_paths() {
    let app = TestApp::spawn().await;
    let (_, page) = app.pc_get("/home/register?next=/%09/evil.example").await;
    let next = select_attr(&html(&page), "input[name=next]", "value");
    assert_eq!(
        next.as_deref(),
        Some("/"),
        "the form carries no tab-split path"
    );

    let csrf = app.pc_csrf("/home/register").await;
    let (status, location, _) = app
        .pc_post(
            "/home/register",
            &[
                ("csrf", &csrf),
                ("username", "tabby"),
                ("password", "secret-123"),
                ("password2", "secret-123"),
                ("next", "/\t/evil.example"),
            ],
        )
        .await;
    assert_eq!((status, location.as_str()), (303, "/"), "registration");

    let csrf = app.pc_csrf("/").await;
    app.pc_post("/home/logout", &[("csrf", &csrf)]).await;
    for next in [
        "/\t/evil.example",
        "/\\evil.example",
        "/home/cart\r\nSet-Cookie: x=1",
    ] {
        let csrf = app.pc_csrf("/home/login").await;
        let (status, location, _) = app
            .pc_post(
                "/home/login",
                &[
                    ("csrf", &csrf),
                    ("username", "tabby"),
                    ("password", "secret-123"),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(
            (status, location.as_str()),
            (303, "/"),
            "login, next={next:?}"
        );
    }

    app.admin_login().await;
    let csrf = app.pc_csrf("/admin/login").await;
    let (status, location, _) = app
        .pc_post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("username", "boss"),
                ("password", "boss-pass-123"),
                ("next", "/admin\r\nSet-Cookie: x=1"),
            ],
        )
        .await;
    assert_eq!((status, location.as_str()), (303, "/admin"), "admin login");
}

#[tokio::test]
async fn a_nul_byte_in_a_query_string_or_a_form_is_refused_with_a_400() {
    let app = TestApp::spawn().await;
    app.pc_register("nully").await;
    for path in [
        "/home/order/pay?order_sn=%00",
        "/home/order/status?order_sn=2026%0011",
        "/home/login?next=/%00",
    ] {
        let (status, body) = app.pc_get(path).await;
        assert_eq!(status, 400, "{path}");
        assert!(
            select_text(&html(&body), "h1").is_some(),
            "an error page for {path}"
        );
    }
    let res = app
        .api
        .get(format!("{}/api/v1/product/recent?count=%00", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 10000);

    let csrf = app.pc_csrf("/home/login").await;
    let (status, _, _) = app
        .pc_post(
            "/home/login",
            &[("csrf", &csrf), ("username", "nu\0lly"), ("password", "x")],
        )
        .await;
    assert_eq!(status, 400, "login form with NUL");
    let csrf = app.pc_csrf("/home/address").await;
    let (status, _, _) = app
        .pc_post(
            "/home/address",
            &[
                ("csrf", &csrf),
                ("name", "李\0四"),
                ("mobile", "13900139000"),
            ],
        )
        .await;
    assert_eq!(status, 400, "address form with NUL");
    let res = app
        .api
        .post(format!("{}/api/v1/token/user", app.url))
        .json(&json!({"code": "abc\u{0}def"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "wx.login code with NUL");
}

#[tokio::test]
async fn notifications_with_a_nul_byte_are_refused_and_logged_without_it() {
    let app = TestApp::spawn().await;
    let (id, no, amount) = native_order(&app, "nul-notify").await;
    let key = app.state.config.wechat.api_key.clone();

    // Correctly signed, with a NUL in a field the signature covers.
    let body = wechat_notification_with(
        &app,
        &no,
        amount,
        "4200000000202611230000000101",
        &key,
        |p| {
            p.insert("attach".into(), "a\0b".into());
        },
    );
    assert_eq!(return_code(&wechat_notify(&app, body).await), "FAIL");
    let log = last_log(&app);
    assert_eq!(
        (log.kind.as_str(), log.outcome.as_str()),
        ("notify", "bad_input")
    );
    assert!(!log.verified);
    assert!(!log.raw_body.contains('\0') && log.raw_body.contains("a\u{FFFD}b"));
    assert_eq!(order_status(&app, id), 1, "not paid");

    let good = pingpp_event(&app, "P2026112300000101");
    let with_nul = good.replacen('{', "{\0", 1);
    assert_eq!(
        pingpp_webhook(&app, with_nul.clone(), common::pingpp_signature(&with_nul)).await,
        400
    );
    let log = last_log(&app);
    assert_eq!(
        (log.kind.as_str(), log.outcome.as_str()),
        ("webhook", "bad_input")
    );
    assert!(!log.raw_body.contains('\0'));
    // Escaped in JSON, the NUL reaches a field only after the signature was checked.
    let escaped = pingpp_event(&app, "P20261123\u{0}0101");
    assert_eq!(
        pingpp_webhook(&app, escaped.clone(), common::pingpp_signature(&escaped)).await,
        400
    );
    assert_eq!(last_log(&app).outcome, "bad_out_trade_no");

    let refund =
        refund_notification(&app, &[("out_trade_no", &no)]).replacen("<xml>", "<xml>\0", 1);
    let (status, reply) = post(&app, "/api/v1/pay/refund_notify", refund.into(), &[]).await;
    assert_eq!((status, return_code(&reply).as_str()), (200, "FAIL"));
    let log = last_log(&app);
    assert_eq!(
        (log.kind.as_str(), log.outcome.as_str()),
        ("refund_notify", "bad_input")
    );
    let refund = refund_notification(
        &app,
        &[
            ("out_trade_no", &no),
            ("out_refund_no", "R\0"),
            ("refund_id", "5030"),
        ],
    );
    let (status, reply) = post(&app, "/api/v1/pay/refund_notify", refund.into(), &[]).await;
    assert_eq!((status, return_code(&reply).as_str()), (200, "FAIL"));
    assert_eq!(last_log(&app).outcome, "bad_input");
}

#[tokio::test]
async fn over_long_identifiers_get_a_fail_reply_and_a_log_row_cut_to_the_column() {
    let app = TestApp::spawn().await;
    let (id, no, amount) = native_order(&app, "long-ids").await;
    let key = app.state.config.wechat.api_key.clone();
    let long = "A".repeat(300);

    let body = wechat_notification(&app, &long, amount, "4200000000202611230000000201", &key);
    assert_eq!(return_code(&wechat_notify(&app, body).await), "FAIL");
    let log = last_log(&app);
    assert_eq!(log.outcome, "bad_out_trade_no");
    assert_eq!(log.out_trade_no.as_deref(), Some(&long[..32]));

    let body = wechat_notification(&app, &no, amount, &long, &key);
    assert_eq!(return_code(&wechat_notify(&app, body).await), "FAIL");
    assert_eq!(last_log(&app).outcome, "bad_input");
    assert_eq!(
        order_status(&app, id),
        1,
        "a transaction id no column holds pays nothing"
    );

    let event = pingpp_event(&app, &long);
    assert_eq!(
        pingpp_webhook(&app, event.clone(), common::pingpp_signature(&event)).await,
        400
    );
    let log = last_log(&app);
    assert_eq!(log.outcome, "bad_out_trade_no");
    assert_eq!(log.out_trade_no.map(|n| n.chars().count()), Some(32));

    let refund = refund_notification(
        &app,
        &[
            ("out_trade_no", &long),
            ("out_refund_no", &long),
            ("refund_id", &long),
            ("refund_status", "SUCCESS"),
            ("refund_fee", "1"),
        ],
    );
    let (status, reply) = post(&app, "/api/v1/pay/refund_notify", refund.into(), &[]).await;
    assert_eq!((status, return_code(&reply).as_str()), (200, "FAIL"));
    let log = last_log(&app);
    assert_eq!(log.kind, "refund_notify");
    assert_eq!(log.out_trade_no.map(|n| n.len()), Some(32));

    // The real notification still pays.
    let body = wechat_notification(&app, &no, amount, "4200000000202611230000000202", &key);
    assert_eq!(return_code(&wechat_notify(&app, body).await), "SUCCESS");
    assert_eq!(order_status(&app, id), 2);
}

#[tokio::test]
async fn a_paid_notification_whose_amount_or_transaction_cannot_be_read_is_retried() {
    let app = TestApp::spawn().await;
    let (id, no, amount) = native_order(&app, "unreadable").await;
    let key = app.state.config.wechat.api_key.clone();
    let txn = "4200000000202611230000000301";
    for (what, edit) in [
        (
            "total_fee",
            Box::new(|p: &mut jiesuan::payment::wechat::sign::Params| {
                p.insert("total_fee".into(), "1.00".into());
            }) as Box<dyn FnOnce(&mut _)>,
        ),
        (
            "transaction_id",
            Box::new(|p: &mut jiesuan::payment::wechat::sign::Params| {
                p.remove("transaction_id");
            }),
        ),
    ] {
        let body = wechat_notification_with(&app, &no, amount, txn, &key, edit);
        let reply = wechat_notify(&app, body).await;
        assert_eq!(
            return_code(&reply),
            "FAIL",
            "{what}: WeChat must send it again"
        );
        let log = last_log(&app);
        assert!(
            log.verified && log.outcome.starts_with("unreadable"),
            "{what}: {}",
            log.outcome
        );
    }
    assert_eq!(order_status(&app, id), 1);
    let body = wechat_notification(&app, &no, amount, txn, &key);
    assert_eq!(return_code(&wechat_notify(&app, body).await), "SUCCESS");
    assert_eq!(order_status(&app, id), 2);
}

/// Wrong passwords for `username` on the admin login until it is told to wait (at most
/// eight); what each answer said, the wait's seconds left out (they depend on timing).
async fn failures_until_told_to_wait(app: &TestApp, username: &str) -> Vec<(u16, String)> {
    let mut seen = Vec::new();
    while seen.len() < 8 {
        let csrf = app.pc_csrf("/admin/login").await;
        let (status, _, body) = app
            .pc_post(
                "/admin/login",
                &[
                    ("csrf", &csrf),
                    ("username", username),
                    ("password", "wrong-pass-1"),
                ],
            )
            .await;
        let said = select_text(&html(&body), "#login-error").unwrap_or_default();
        let said: String = said.chars().filter(|c| !c.is_ascii_digit()).collect();
        let waits = said.contains("尝试次数过多");
        seen.push((status, said));
        if waits {
            break;
        }
    }
    seen
}

#[tokio::test]
async fn the_login_delay_answers_alike_for_known_and_unknown_names() {
    let app = TestApp::spawn().await;
    app.create_admin("boss", "boss-pass-123");
    let known = failures_until_told_to_wait(&app, "boss").await;
    let unknown = failures_until_told_to_wait(&app, "ghost").await;
    assert!(
        known.last().unwrap().1.contains("尝试次数过多"),
        "{known:?}"
    );
    assert!(
        unknown.last().unwrap().1.contains("尝试次数过多"),
        "{unknown:?}"
    );
    assert_eq!(known[..3], unknown[..3], "the first answers too");
    assert_eq!(known.last(), unknown.last());
}

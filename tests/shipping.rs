//! WeChat's 发货信息管理: an order paid in the mini-program is reported to WeChat when the
//! admin ships it, with an access_token shared by the instances; uploads WeChat cannot take
//! yet are retried by the sweep, and refusals show on the admin's order page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{html, select_text, test_config, TestApp};
use diesel::prelude::*;
use jiesuan::models::schema::{api_token, shipment};
use serde_json::{json, Value};

/// A mini-program buyer's order, paid by JSAPI in the sandbox: (order id, out_trade_no).
async fn paid_in_mini_program(app: &TestApp, code: &str) -> (i32, String) {
    let (token, id, _) = app.unpaid_order(code).await;
    let res = app
        .post_json("/api/v1/pay/pre_order", &token, &json!({ "id": id }))
        .await;
    assert_eq!(res.status(), 200);
    let no = app.attempts(id).pop().unwrap().out_trade_no;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    app.wait_for_status(id, 2).await;
    (id, no)
}

/// The admin's 发货; the order page afterwards.
async fn ship(app: &TestApp, id: i32, carrier: &str, tracking_no: &str) -> scraper::Html {
    let page = format!("/admin/orders/{id}");
    let csrf = app.pc_csrf(&page).await;
    let (status, _, _) = app
        .pc_post(
            &format!("{page}/deliver"),
            &[
                ("csrf", &csrf),
                ("carrier", carrier),
                ("tracking_no", tracking_no),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (_, body) = app.pc_get(&page).await;
    html(&body)
}

async fn uploads(app: &TestApp) -> Vec<Value> {
    app.sandbox_view("shipping").await
}

/// (upload_status, upload_tries, upload_error) of the order's parcel.
fn upload_state(app: &TestApp, id: i32) -> (i32, i32, Option<String>) {
    shipment::table
        .filter(shipment::order_id.eq(id))
        .select((
            shipment::upload_status,
            shipment::upload_tries,
            shipment::upload_error,
        ))
        .first(&mut app.conn())
        .unwrap()
}

/// Makes a waiting upload due now (the sweep's backoff is minutes).
fn make_due(app: &TestApp, id: i32) {
    diesel::update(shipment::table.filter(shipment::order_id.eq(id)))
        .set(shipment::upload_next_at.eq(Some(jiesuan::models::now())))
        .execute(&mut app.conn())
        .unwrap();
}

#[tokio::test]
async fn shipping_a_mini_program_order_reports_it_to_wechat() {
    let app = TestApp::spawn().await;
    app.admin_login().await;
    let (id, no) = paid_in_mini_program(&app, "ship-a").await;
    let doc = ship(&app, id, "顺丰速运", "SF1234567890").await;
    assert_eq!(select_text(&doc, "#shipment-upload").unwrap(), "已上传");
    assert_eq!(upload_state(&app, id).0, 2);

    let list = uploads(&app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let body = &list[0]["body"];
    let order = app.order_by_no(&no[..no.len() - 2]);
    assert_eq!(list[0]["out_trade_no"], no.as_str());
    assert_eq!(
        body["order_key"]["transaction_id"].as_str(),
        order.transaction_no.as_deref()
    );
    assert_eq!(body["shipping_list"][0]["express_company"], "SF");
    assert_eq!(body["shipping_list"][0]["tracking_no"], "SF1234567890");
    let contact = body["shipping_list"][0]["contact"]["receiver_contact"]
        .as_str()
        .unwrap();
    assert!(contact.contains("****"), "{contact}");
    assert!(body["upload_time"].as_str().unwrap().ends_with("+08:00"));

    // The token is kept for the next upload: one row, with time left.
    let (token, expires): (String, chrono::NaiveDateTime) = api_token::table
        .select((api_token::token, api_token::expires_at))
        .first(&mut app.conn())
        .unwrap();
    assert!(!token.is_empty());
    assert!(expires > jiesuan::models::now() + chrono::Duration::minutes(100));
}

#[tokio::test]
async fn orders_paid_outside_the_mini_program_are_not_reported() {
    let app = TestApp::spawn().await;
    app.admin_login().await;
    // NATIVE (the PC QR) is not a mini-program payment.
    let (id, _) = app.paid_wechat_order("ship-native").await;
    let doc = ship(&app, id, "中通快递", "ZT100200300").await;
    assert!(select_text(&doc, "#shipment-upload").is_none());
    assert_eq!(upload_state(&app, id), (0, 0, None));
    assert!(uploads(&app).await.is_empty());
}

#[tokio::test]
async fn an_upload_wechat_cannot_take_yet_is_retried_by_the_sweep() {
    let app = TestApp::spawn().await;
    app.admin_login().await;
    let (id, no) = paid_in_mini_program(&app, "ship-late").await;
    // Right after its notification WeChat may not know the payment yet.
    app.set_faults(json!({ "prefix": no, "shipping_unindexed": 2 }))
        .await;
    let doc = ship(&app, id, "京东物流", "JD0001234567").await;
    let (status, tries, error) = upload_state(&app, id);
    assert_eq!((status, tries), (1, 1));
    assert!(error.unwrap().contains("10060001"));
    let shown = select_text(&doc, "#shipment-upload").unwrap();
    assert!(shown.contains("重试"), "{shown}");
    assert!(select_text(&doc, "#shipment-upload-error")
        .unwrap()
        .contains("10060001"));

    // Not due yet: the sweep leaves it.
    let gateway = app.state.gateway();
    assert_eq!(gateway.sweep_shipping().await.unwrap(), 0);
    make_due(&app, id);
    assert_eq!(
        gateway.sweep_shipping().await.unwrap(),
        0,
        "still unindexed"
    );
    assert_eq!(upload_state(&app, id).1, 2);
    make_due(&app, id);
    assert_eq!(gateway.sweep_shipping().await.unwrap(), 1);
    assert_eq!(upload_state(&app, id), (2, 3, None));
    assert_eq!(uploads(&app).await.len(), 1);
    let (_, body) = app.pc_get(&format!("/admin/orders/{id}")).await;
    let doc = html(&body);
    assert_eq!(select_text(&doc, "#shipment-upload").unwrap(), "已上传");
    assert!(select_text(&doc, "#shipment-upload-error").is_none());
}

#[tokio::test]
async fn a_refunded_payment_is_refused_for_good_and_shown_to_the_admin() {
    let app = TestApp::spawn().await;
    app.admin_login().await;
    let (id, _) = paid_in_mini_program(&app, "ship-refunded").await;
    let refund = common::refund_request(id, 1, &format!("RSHIP{id}"));
    app.state.gateway().refund(refund).await.unwrap();
    app.state.gateway().sweep_refunds().await.unwrap();
    app.wait_for_status(id, 7).await;
    let doc = ship(&app, id, "圆通速递", "YT9876543210").await;
    let (status, _, error) = upload_state(&app, id);
    assert_eq!(status, 3);
    assert!(error.unwrap().contains("10060004"));
    assert_eq!(
        select_text(&doc, "#shipment-upload").unwrap(),
        "微信拒绝，需人工处理"
    );
    // Never retried.
    make_due(&app, id);
    assert_eq!(app.state.gateway().sweep_shipping().await.unwrap(), 0);
    assert_eq!(upload_state(&app, id).1, 1);
}

#[tokio::test]
async fn a_token_wechat_calls_dead_is_replaced_once_and_the_upload_goes_through() {
    let app = TestApp::spawn().await;
    app.admin_login().await;
    let (first, _) = paid_in_mini_program(&app, "ship-t1").await;
    ship(&app, first, "申通快递", "ST0000000001").await;
    assert_eq!(upload_state(&app, first).0, 2);
    let old: String = api_token::table
        .select(api_token::token)
        .first(&mut app.conn())
        .unwrap();

    app.sandbox_control("revoke_tokens", json!({})).await;
    let (second, _) = paid_in_mini_program(&app, "ship-t2").await;
    ship(&app, second, "韵达快递", "YD0000000002").await;
    assert_eq!(upload_state(&app, second), (2, 1, None));
    let new: String = api_token::table
        .select(api_token::token)
        .first(&mut app.conn())
        .unwrap();
    assert_ne!(old, new);
    assert_eq!(uploads(&app).await.len(), 2);
}

#[tokio::test]
async fn instances_share_one_token_and_refresh_it_one_at_a_time() {
    let first = TestApp::spawn().await;
    let mut config = test_config(&first.database_url);
    // Both instances talk to the first one's sandbox, as they would to one WeChat.
    config.wechat.login_base = Some(format!("{}/sandbox/wxapi", first.url));
    let second = TestApp::spawn_on(config).await;
    let gateways = [first.state.gateway(), second.state.gateway()];
    let asks = (0..16).map(|i| {
        let g = gateways[i % 2].clone();
        async move { g.access_token(None).await.unwrap() }
    });
    let tokens = futures::future::join_all(asks).await;
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
    let issued: Value = first.sandbox_view("tokens").await;
    assert_eq!(issued["issued"], 1, "one refresh for everyone");

    // A token near its end is refreshed before it ends.
    diesel::update(api_token::table)
        .set(api_token::expires_at.eq(jiesuan::models::now() + chrono::Duration::minutes(2)))
        .execute(&mut first.conn())
        .unwrap();
    let renewed = gateways[1].access_token(None).await.unwrap();
    let expires: chrono::NaiveDateTime = api_token::table
        .select(api_token::expires_at)
        .first(&mut first.conn())
        .unwrap();
    assert!(expires > jiesuan::models::now() + chrono::Duration::minutes(100));
    assert_eq!(gateways[0].access_token(None).await.unwrap(), renewed);
}

/// WeChat's answer to a raw call of the sandbox's mini-program API.
async fn wxapi(app: &TestApp, path: &str, body: &Value) -> Value {
    app.api
        .post(format!("{}/sandbox/wxapi{path}", app.url))
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sandbox_refuses_what_wechat_refuses() {
    let app = TestApp::spawn().await;
    let wx = &app.state.config.wechat;
    let ask = |secret: &str, force: bool| {
        json!({ "grant_type": "client_credential", "appid": wx.appid, "secret": secret,
                "force_refresh": force })
    };
    let bad = wxapi(&app, "/cgi-bin/stable_token", &ask("wrong", false)).await;
    assert_eq!(bad["errcode"], 40125);
    let mut other_app = ask(&wx.app_secret, false);
    other_app["appid"] = json!("wx0000000000000000");
    assert_eq!(
        wxapi(&app, "/cgi-bin/stable_token", &other_app).await["errcode"],
        40013
    );
    let first = wxapi(&app, "/cgi-bin/stable_token", &ask(&wx.app_secret, false)).await;
    let token = first["access_token"].as_str().unwrap().to_string();
    assert!(first["expires_in"].as_i64().unwrap() > 7000);
    // The same token while it lives; a forced refresh replaces it, at most every 30 s.
    let again = wxapi(&app, "/cgi-bin/stable_token", &ask(&wx.app_secret, false)).await;
    assert_eq!(again["access_token"], token.as_str());
    let forced = wxapi(&app, "/cgi-bin/stable_token", &ask(&wx.app_secret, true)).await;
    assert_ne!(forced["access_token"], token.as_str());
    let too_soon = wxapi(&app, "/cgi-bin/stable_token", &ask(&wx.app_secret, true)).await;
    assert_eq!(too_soon["errcode"], 45009);
    let token = forced["access_token"].as_str().unwrap().to_string();

    let (id, _) = paid_in_mini_program(&app, "ship-strict").await;
    let order = jiesuan::models::order::find(&mut app.conn(), id)
        .unwrap()
        .unwrap();
    let payer = jiesuan::models::user::find(&mut app.conn(), order.user_id)
        .unwrap()
        .unwrap()
        .openid
        .unwrap();
    let valid = |time: &str| {
        json!({
            "order_key": { "order_number_type": 2, "transaction_id": order.transaction_no },
            "logistics_type": 1, "delivery_mode": 1,
            "shipping_list": [{ "tracking_no": "SF1", "express_company": "SF",
                                "item_desc": "茶", "contact": { "receiver_contact": "138****8000" } }],
            "upload_time": time, "payer": { "openid": payer },
        })
    };
    let upload = |body: Value, token: String| {
        let app = &app;
        async move {
            wxapi(
                app,
                &format!("/wxa/sec/order/upload_shipping_info?access_token={token}"),
                &body,
            )
            .await["errcode"]
                .as_i64()
                .unwrap()
        }
    };
    let t1 = "2026-12-01T10:00:00.000+08:00";
    assert_eq!(upload(valid(t1), "nope".into()).await, 40001);
    let mut no_contact = valid(t1);
    no_contact["shipping_list"][0]["contact"] = json!({});
    assert_eq!(upload(no_contact, token.clone()).await, 47001);
    let mut long = valid(t1);
    long["shipping_list"][0]["item_desc"] = json!("茶".repeat(121));
    assert_eq!(upload(long, token.clone()).await, 47001);
    let mut carrier = valid(t1);
    carrier["shipping_list"][0]["express_company"] = json!("NOPE");
    assert_eq!(upload(carrier, token.clone()).await, 47001);
    let mut stranger = valid(t1);
    stranger["payer"]["openid"] = json!("o-someone-else");
    assert_eq!(upload(stranger, token.clone()).await, 10060002);
    let mut unknown = valid(t1);
    unknown["order_key"]["transaction_id"] = json!("4200000000000000000000000000");
    assert_eq!(upload(unknown, token.clone()).await, 10060001);
    // Accepted, one re-upload with a later time, then no more.
    assert_eq!(upload(valid(t1), token.clone()).await, 0);
    assert_eq!(upload(valid(t1), token.clone()).await, 47001, "not later");
    assert_eq!(
        upload(valid("2026-12-01T11:00:00+08:00"), token.clone()).await,
        0
    );
    assert_eq!(
        upload(valid("2026-12-01T12:00:00+08:00"), token.clone()).await,
        10060003
    );
}

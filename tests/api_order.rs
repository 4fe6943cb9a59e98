//! The mini-program API: login, address, order placement rules, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{sample_address, TestApp};
use diesel::prelude::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_login_gets_a_token_and_the_same_user_the_same_account() {
    let app = TestApp::spawn().await;
    let a = app.token("code-a").await;
    let b = app.token("code-a").await;
    assert_ne!(a, b, "each login gets a fresh token");
    app.post_json("/api/v1/address", &a, &sample_address())
        .await;
    let res = app.get_api("/api/v1/address", &b).await;
    assert_eq!(
        res.status(),
        200,
        "the second token belongs to the same user"
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["mobile"], "13800138000");

    let res = app.log_in("invalid").await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 10004);
    assert_eq!(v["request_url"], "/api/v1/token/user");
}

#[tokio::test]
async fn a_login_code_works_once_and_only_if_wx_login_issued_it() {
    let app = TestApp::spawn().await;
    let code = app.login_code("once").await;
    assert_eq!(app.log_in(&code).await.status(), 200);
    for reused_or_made_up in [code.as_str(), "abc123"] {
        let res = app.log_in(reused_or_made_up).await;
        assert_eq!(res.status(), 400);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error_code"], 10004);
        assert_eq!(v["msg"], "微信登录失败，请重新登录");
    }
    // WeChat's own words, as the sandbox says them.
    let wx = &app.state.config.wechat;
    let session = |code: &str| {
        app.api
            .get(format!("{}/sandbox/wxapi/sns/jscode2session", app.url))
            .query(&[
                ("appid", wx.appid.as_str()),
                ("secret", wx.app_secret.as_str()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ])
            .send()
    };
    let answer: Value = session(&code).await.unwrap().json().await.unwrap();
    assert_eq!(answer["errcode"], 40163, "{answer}");
    let answer: Value = session("abc123").await.unwrap().json().await.unwrap();
    assert_eq!(answer["errcode"], 40029, "{answer}");
    let fresh = app.login_code("once").await;
    let answer: Value = session(&fresh).await.unwrap().json().await.unwrap();
    assert!(answer["openid"].is_string(), "{answer}");
}

#[tokio::test]
async fn an_order_reserves_stock_and_freezes_a_snapshot() {
    let app = TestApp::spawn().await;
    let token = app.buyer("buyer").await;
    let (s1, s3) = (app.stock(1), app.stock(3));
    let (status, v) = app.place(&token, &[(3, 2), (1, 1), (3, 1)]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["pass"], true);
    let order_id = v["order_id"].as_i64().unwrap();
    let order_no = v["order_no"].as_str().unwrap();
    assert_eq!(order_no.len(), 17);
    assert!(v["create_time"].as_str().unwrap().len() == 19);
    assert_eq!(app.stock(1), s1 - 1);
    assert_eq!(app.stock(3), s3 - 3, "duplicate lines are merged");

    let res = app
        .get_api(&format!("/api/v1/order/{order_id}"), &token)
        .await;
    assert_eq!(res.status(), 200);
    let o: Value = res.json().await.unwrap();
    assert_eq!(o["order_no"], order_no);
    assert_eq!(o["status"], 1);
    assert_eq!(o["snap_name"], "西湖龙井 明前特级 100g等");
    assert_eq!(o["total_count"], 4);
    assert_eq!(o["total_price"], 16800 + 3 * 5900);
    let items = o["snap_items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["id"], 3);
    assert_eq!(items[1]["count"], 3);
    assert_eq!(items[1]["total_price"], 3 * 5900);
    assert_eq!(o["snap_address"]["detail"], "科技园南路 1 号");

    // Prices change later; the snapshot does not.
    app.with_conn(|c| {
        use jiesuan::models::schema::products;
        diesel::update(products::table.find(3))
            .set(products::price.eq(1))
            .execute(c)
            .unwrap();
    });
    let o: Value = app
        .get_api(&format!("/api/v1/order/{order_id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(o["snap_items"][1]["price"], 5900);

    let lines: Vec<(i32, i32)> =
        app.with_conn(|c| jiesuan::models::order::lines(c, order_id as i32).unwrap());
    assert_eq!(lines, vec![(1, 1), (3, 3)]);

    let expires: chrono::NaiveDateTime = app.with_conn(|c| {
        use jiesuan::models::schema::orders;
        orders::table
            .find(order_id as i32)
            .select(orders::expires_at)
            .first(c)
            .unwrap()
    });
    let minutes = (expires - jiesuan::models::now()).num_minutes();
    assert!((28..=30).contains(&minutes), "expires in {minutes} minutes");
}

#[tokio::test]
async fn a_short_line_rolls_back_the_whole_order() {
    let app = TestApp::spawn().await;
    let token = app.buyer("short").await;
    app.set_stock(2, 1);
    let before = app.all_stock();
    let (status, v) = app.place(&token, &[(1, 1), (2, 2)]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["pass"], false);
    assert_eq!(v["order_id"], -1);
    assert_eq!(v["orderPrice"], 16800 + 2 * 8900);
    assert_eq!(v["totalCount"], 3);
    let lines = v["pStatusArray"].as_array().unwrap();
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["haveStock"], true);
    assert_eq!(lines[1]["haveStock"], false);
    assert_eq!(lines[1]["name"], "云南小粒咖啡豆 500g");
    assert_eq!(lines[1]["totalPrice"], 2 * 8900);
    assert_eq!(app.all_stock(), before, "no stock moved");
    assert_eq!(app.order_count(), 0);
}

#[tokio::test]
async fn unknown_or_off_sale_products_are_named() {
    let app = TestApp::spawn().await;
    let token = app.buyer("unknown").await;
    let (status, v) = app.place(&token, &[(1, 1), (999, 1)]).await;
    assert_eq!(status, 404);
    assert_eq!(v["error_code"], 80001);
    assert!(v["msg"].as_str().unwrap().contains("999"), "{v}");

    app.with_conn(|c| {
        use jiesuan::models::schema::products;
        diesel::update(products::table.find(4))
            .set(products::on_sale.eq(false))
            .execute(c)
            .unwrap();
    });
    let before = app.all_stock();
    let (status, v) = app.place(&token, &[(4, 1)]).await;
    assert_eq!(status, 404);
    assert!(v["msg"].as_str().unwrap().contains('4'));
    assert_eq!(app.all_stock(), before);
    assert_eq!(app.order_count(), 0);
    let res = app.get_api("/api/v1/product/4", &token).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn no_address_means_error_60001() {
    let app = TestApp::spawn().await;
    let token = app.token("homeless").await;
    let before = app.all_stock();
    let (status, v) = app.place(&token, &[(1, 1)]).await;
    assert_eq!((status, v["error_code"].as_i64()), (404, Some(60001)));
    assert_eq!(app.all_stock(), before);
    assert_eq!(app.order_count(), 0);
}

#[tokio::test]
async fn bad_order_bodies_get_10000_and_write_nothing() {
    let app = TestApp::spawn().await;
    let token = app.buyer("bad-input").await;
    let before = app.all_stock();
    let fifty_one: Vec<Value> = (1..=51)
        .map(|i| json!({"product_id": i, "count": 1}))
        .collect();
    let cases = vec![
        json!({"products": []}),
        json!({}),
        json!({"products": "1"}),
        json!({"products": [{"product_id": 1, "count": 0}]}),
        json!({"products": [{"product_id": 1, "count": -1}]}),
        json!({"products": [{"product_id": 1, "count": "abc"}]}),
        json!({"products": [{"product_id": 1, "count": 1000}]}),
        json!({"products": [{"product_id": "x", "count": 1}]}),
        json!({"products": [{"count": 1}]}),
        json!({ "products": fifty_one }),
    ];
    for body in cases {
        let res = app.post_json("/api/v1/order", &token, &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error_code"], 10000, "{body} -> {v}");
        assert_eq!(v["request_url"], "/api/v1/order");
        assert!(!v["msg"].as_str().unwrap().is_empty());
    }

    let res = app
        .api
        .post(format!("{}/api/v1/order", app.url))
        .header("token", &token)
        .header("content-type", "application/json")
        .body("{\"products\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "malformed JSON");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 10000);

    let big = format!(
        "{{\"products\": [], \"pad\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let res = app
        .api
        .post(format!("{}/api/v1/order", app.url))
        .header("token", &token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413, "a 2 MB body");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 10000);

    assert_eq!(app.all_stock(), before);
    assert_eq!(app.order_count(), 0);
}

#[tokio::test]
async fn tokens_are_checked() {
    let app = TestApp::spawn().await;
    let token = app.buyer("owner").await;
    let body = json!({"products": [{"product_id": 1, "count": 1}]});

    let res = app
        .api
        .post(format!("{}/api/v1/order", app.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "missing token");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 10001);

    let res = app
        .post_json("/api/v1/order", "forged-token-123", &body)
        .await;
    assert_eq!(res.status(), 401, "forged token");

    app.with_conn(|c| {
        use jiesuan::models::schema::user_token;
        diesel::update(user_token::table.filter(user_token::token.eq(&token)))
            .set(user_token::expires_at.eq(jiesuan::models::now() - chrono::Duration::seconds(1)))
            .execute(c)
            .unwrap();
    });
    let res = app.post_json("/api/v1/order", &token, &body).await;
    assert_eq!(res.status(), 401, "expired token");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 10001);
    assert_eq!(app.order_count(), 0);
}

#[tokio::test]
async fn another_users_order_is_refused() {
    let app = TestApp::spawn().await;
    let alice = app.buyer("alice").await;
    let bob = app.buyer("bob").await;
    let (_, v) = app.place(&alice, &[(1, 1)]).await;
    let id = v["order_id"].as_i64().unwrap();
    let res = app.get_api(&format!("/api/v1/order/{id}"), &bob).await;
    assert_eq!(res.status(), 403);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 10003);
    let res = app.get_api("/api/v1/order/424242", &bob).await;
    assert_eq!(res.status(), 404);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], 80000);
}

#[tokio::test]
async fn orders_are_listed_by_user_newest_first() {
    let app = TestApp::spawn().await;
    let token = app.buyer("lister").await;
    let other = app.buyer("other").await;
    for id in 1..=3 {
        app.place(&token, &[(id, 1)]).await;
    }
    app.place(&other, &[(5, 1)]).await;
    let res = app
        .get_api("/api/v1/order/by_user?page=1&size=2", &token)
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["total"], 3);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["snap_img"], "/static/img/products/p3.svg");
    let v: Value = app
        .get_api("/api/v1/order/by_user?page=2&size=2", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let res = app.get_api("/api/v1/order/by_user?page=0", &token).await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn products_are_served_with_prices_in_fen() {
    let app = TestApp::spawn().await;
    let v: Value = app
        .api
        .get(format!("{}/api/v1/product/5", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["price"], 39900);
    assert_eq!(v["name"], "降噪蓝牙耳机");
    for key in ["id", "name", "price", "stock", "main_img_url", "summary"] {
        assert!(v.get(key).is_some(), "{key}");
    }
    let list: Value = app
        .api
        .get(format!("{}/api/v1/product/recent?count=3", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![8, 7, 6]);
    let res = app
        .api
        .get(format!("{}/api/v1/product/recent?count=99", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .api
        .get(format!("{}/api/v1/product/abc", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .api
        .get(format!("{}/api/v1/nothing", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn an_invalid_address_names_its_fields_and_keeps_the_old_one() {
    let app = TestApp::spawn().await;
    let token = app.buyer("addr").await;
    let mut bad = sample_address();
    bad["mobile"] = json!("12345");
    bad["name"] = json!("");
    let res = app.post_json("/api/v1/address", &token, &bad).await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    let msg = v["msg"].as_str().unwrap();
    assert!(msg.contains("mobile") && msg.contains("name"), "{msg}");
    let v: Value = app
        .get_api("/api/v1/address", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "张三");
}

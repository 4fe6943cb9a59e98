//! The shopper's journeys around paying (issue 13): a lost notification found while the pay
//! page waits, expired and closed orders that say so, paid orders that stay paid on reload,
//! and 我的订单 → order detail with cancel, buy again and refunds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{count_matches, html, order_status, select_attr, select_text, TestApp, WECHAT_UA};
use diesel::prelude::*;
use jiesuan::domain::Money;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A logged-in shopper with an address and an unpaid PC order of one product 1, scanned with
/// WeChat (a Ping++ charge exists): the order number.
async fn scanned_order(app: &TestApp, name: &str) -> String {
    app.pc_register(name).await;
    app.pc_address().await;
    let no = app.pc_order(1, 1).await;
    let (status, _, _) = app.open_qr(&no, WECHAT_UA).await;
    assert_eq!(status, 302);
    no
}

/// Presses 确认支付 on the sandbox phone for the order's charge.
async fn pay_charge(app: &TestApp, order_id: i32) {
    let ch = app.attempts(order_id).pop().unwrap().provider_ref.unwrap();
    app.sandbox_pay(json!({ "charge_id": ch })).await;
}

async fn poll(app: &TestApp, no: &str) -> i64 {
    let res = app
        .browser
        .post(format!("{}/home/order/status?order_sn={no}", app.url))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    v["data"].as_i64().unwrap()
}

fn queries(app: &TestApp, order_id: i32) -> usize {
    app.pay_logs(order_id)
        .iter()
        .filter(|l| l.0 == "query")
        .count()
}

/// Moves the order's expiry (and its attempts') into the past.
fn expire(app: &TestApp, order_id: i32) {
    use jiesuan::models::schema::{orders, pay_attempt};
    let past = jiesuan::models::now() - chrono::Duration::minutes(1);
    diesel::update(orders::table.find(order_id))
        .set(orders::expires_at.eq(past))
        .execute(&mut app.conn())
        .unwrap();
    diesel::update(pay_attempt::table.filter(pay_attempt::order_id.eq(order_id)))
        .set(pay_attempt::expires_at.eq(past))
        .execute(&mut app.conn())
        .unwrap();
}

// ---- 1. A lost notification does not strand the shopper ---------------------------------

#[tokio::test]
async fn a_lost_notification_is_found_while_the_pay_page_polls() {
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "lost_note").await;
    let id = app.order_by_no(&no).id;
    app.set_faults(json!({"prefix": no, "never_deliver": true}))
        .await;
    pay_charge(&app, id).await;
    let paid_at = Instant::now();
    // The pay page polls once a second.
    let mut status = poll(&app, &no).await;
    while status != 2 && paid_at.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        status = poll(&app, &no).await;
    }
    assert_eq!(status, 2, "not paid {:?} after paying", paid_at.elapsed());
    assert!(app.deliveries(&format!("{no}01")).await.is_empty());
    assert!(app
        .pay_logs(id)
        .iter()
        .any(|l| l.0 == "query" && l.2 == "paid"));
    // The pay page now sends the shopper to the result.
    let (code, _) = app.pc_get(&format!("/home/order/pay?order_sn={no}")).await;
    assert_eq!(code, 303);
}

#[tokio::test]
async fn i_have_paid_asks_the_platform_at_once() {
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "said_paid").await;
    let id = app.order_by_no(&no).id;
    app.set_faults(json!({"prefix": no, "never_deliver": true}))
        .await;
    pay_charge(&app, id).await;
    // 我已完成支付 right after paying, long before the sweep.
    let (code, body) = app
        .pc_get(&format!("/home/order/payresult?order_sn={no}"))
        .await;
    assert_eq!(code, 200);
    let doc = html(&body);
    assert_eq!(count_matches(&doc, "#result.result-success"), 1, "{body}");
    assert_eq!(order_status(&app, id), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_polls_at_once_ask_the_platform_once() {
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "many_polls").await;
    let id = app.order_by_no(&no).id;
    // The attempt has been waiting for a minute.
    {
        use jiesuan::models::schema::pay_attempt;
        let then = jiesuan::models::now() - chrono::Duration::minutes(1);
        diesel::update(pay_attempt::table.filter(pay_attempt::order_id.eq(id)))
            .set(pay_attempt::created_at.eq(then))
            .execute(&mut app.conn())
            .unwrap();
    }
    let before = queries(&app, id);
    let polls = (0..20).map(|_| poll(&app, &no));
    let answers = futures::future::join_all(polls).await;
    assert!(answers.iter().all(|s| *s == 1));
    assert_eq!(queries(&app, id) - before, 1, "{:?}", app.pay_logs(id));
    // Within the interval, further polls read the database only.
    poll(&app, &no).await;
    assert_eq!(queries(&app, id) - before, 1);
    // A young attempt is not asked about at all: its notification is still on its way.
    let other = app.pc_order(2, 1).await;
    app.open_qr(&other, WECHAT_UA).await;
    let other_id = app.order_by_no(&other).id;
    poll(&app, &other).await;
    assert_eq!(queries(&app, other_id), 0);
}

// ---- 2. Expired and closed orders read as such -------------------------------------------

#[tokio::test]
async fn an_expired_order_reads_closed_everywhere_and_can_be_ordered_again() {
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "expired").await;
    let order = app.order_by_no(&no);
    let stock = app.stock(1);
    // Before the deadline the QR has its (hidden) 二维码已失效 cover, for the countdown.
    let (_, body) = app.pc_get(&format!("/home/order/pay?order_sn={no}")).await;
    let doc = html(&body);
    assert!(select_text(&doc, "#qr-expired")
        .unwrap()
        .contains("二维码已失效"));
    assert_eq!(count_matches(&doc, "#qr-expired[hidden]"), 1);

    expire(&app, order.id);
    let (code, _) = app.pc_get(&format!("/home/order/pay?order_sn={no}")).await;
    assert_eq!(
        code, 303,
        "the pay page of an expired order is the result page"
    );
    assert_eq!(
        order_status(&app, order.id),
        5,
        "closed at once, not at the sweep"
    );
    assert_eq!(app.stock(1), stock + 1, "its stock released");

    let (code, body) = app
        .pc_get(&format!("/home/order/payresult?order_sn={no}"))
        .await;
    assert_eq!(code, 200);
    let doc = html(&body);
    assert_eq!(count_matches(&doc, "#result.result-closed"), 1);
    assert_eq!(select_text(&doc, "#result h1").unwrap(), "订单已关闭");
    assert_eq!(select_text(&doc, "#reorder").unwrap(), "重新下单");
    assert_eq!(count_matches(&doc, ".amount"), 0);

    // The QR's link, in a plain browser and in WeChat: no 400 page, no amount to pay.
    for ua in ["Mozilla/5.0 (X11; Linux x86_64)", WECHAT_UA] {
        let (code, _, body) = app.open_qr(&no, ua).await;
        assert_eq!(code, 200, "{ua}");
        let doc = html(&body);
        assert!(select_text(&doc, "#ended-reason")
            .unwrap()
            .contains("订单已关闭"));
        assert!(!body.contains("应付金额"));
        assert_eq!(count_matches(&doc, ".amount, #qr svg"), 0);
    }

    // 重新下单: the same lines, a new order.
    let csrf = app.pc_csrf("/home/orders").await;
    let (code, location, _) = app
        .pc_post("/home/order/again", &[("csrf", &csrf), ("order_sn", &no)])
        .await;
    assert_eq!((code, location.as_str()), (303, "/home/order/checkout"));
    let (code, location, _) = app.pc_post("/home/order/save", &[("csrf", &csrf)]).await;
    assert_eq!(code, 303);
    let again = location.strip_prefix("/home/order/pay?order_sn=").unwrap();
    assert_ne!(again, no);
    assert_eq!(app.order_by_no(again).snap_items, order.snap_items);
}

#[tokio::test]
async fn pages_shown_again_and_again_settle_an_expired_order_once_per_interval() {
    use jiesuan::models::schema::pay_attempt;
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "expired_often").await;
    let id = app.order_by_no(&no).id;
    expire(&app, id);
    // A page asked the platform a moment ago (and, say, got no answer): not again yet.
    let just_now = jiesuan::models::now();
    diesel::update(pay_attempt::table.filter(pay_attempt::order_id.eq(id)))
        .set(pay_attempt::asked_at.eq(Some(just_now)))
        .execute(&mut app.conn())
        .unwrap();
    for _ in 0..3 {
        poll(&app, &no).await;
    }
    assert_eq!(queries(&app, id), 0);
    assert_eq!(order_status(&app, id), 1);
    // Once the interval has passed, the next page settles and closes it.
    let earlier = just_now - chrono::Duration::seconds(10);
    diesel::update(pay_attempt::table.filter(pay_attempt::order_id.eq(id)))
        .set(pay_attempt::asked_at.eq(Some(earlier)))
        .execute(&mut app.conn())
        .unwrap();
    assert_eq!(poll(&app, &no).await, 5);
    assert_eq!(queries(&app, id), 1);
}

// ---- 3. Paid orders read as paid ---------------------------------------------------------

#[tokio::test]
async fn a_paid_orders_pay_page_is_its_result_page() {
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "reloads").await;
    let id = app.order_by_no(&no).id;
    pay_charge(&app, id).await;
    app.wait_for_status(id, 2).await;

    let res = app
        .browser
        .get(format!("{}/home/order/pay?order_sn={no}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!("/home/order/payresult?order_sn={no}")
    );
    let res = app
        .browser
        .get(format!("{}/home/order/payresult?order_sn={no}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let doc = html(&res.text().await.unwrap());
    assert_eq!(count_matches(&doc, "#result.result-success"), 1);
    assert_eq!(count_matches(&doc, "#countdown, #qr"), 0);
    assert_eq!(
        select_attr(&doc, "#detail-link", "href").unwrap(),
        format!("/home/order/detail?order_sn={no}")
    );
    assert_eq!(select_attr(&doc, "#shop-link", "href").unwrap(), "/");

    // Its QR link says it is paid rather than taking a second payment.
    let (code, _, body) = app.open_qr(&no, WECHAT_UA).await;
    assert_eq!(code, 200);
    assert!(select_text(&html(&body), "#ended-reason")
        .unwrap()
        .contains("已支付"));
    assert_eq!(app.attempts(id).len(), 1);
}

// ---- 4. 我的订单 → order detail ------------------------------------------------------------

#[tokio::test]
async fn an_unpaid_order_is_cancelled_from_its_detail_page() {
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "cancels").await;
    let id = app.order_by_no(&no).id;
    let stock = app.stock(1);

    let (_, body) = app.pc_get("/home/orders").await;
    let detail = format!("/home/order/detail?order_sn={no}");
    assert_eq!(
        select_attr(&html(&body), "a.order-link", "href").unwrap(),
        detail
    );
    let (code, body) = app.pc_get(&detail).await;
    assert_eq!(code, 200);
    let doc = html(&body);
    assert_eq!(select_text(&doc, "#order-status").unwrap(), "待支付");
    assert_eq!(count_matches(&doc, "#order-lines .order-line"), 1);
    assert!(select_text(&doc, "#order-address")
        .unwrap()
        .contains("文三路 100 号"));
    assert!(select_text(&doc, "#history").unwrap().contains("提交订单"));
    assert!(select_text(&doc, "#history").unwrap().contains("北京时间"));
    assert_eq!(select_text(&doc, "#cancel-order").unwrap(), "取消订单");

    // Without the CSRF token nothing happens.
    let (code, _, _) = app
        .pc_post("/home/order/cancel", &[("order_sn", &no)])
        .await;
    assert!(code >= 400);
    assert_eq!(order_status(&app, id), 1);

    let csrf = select_attr(&doc, "input[name=csrf]", "value").unwrap();
    let (code, location, _) = app
        .pc_post("/home/order/cancel", &[("csrf", &csrf), ("order_sn", &no)])
        .await;
    assert_eq!((code, location.as_str()), (303, detail.as_str()));
    assert_eq!(order_status(&app, id), 5);
    assert_eq!(app.stock(1), stock + 1);
    // The platform was asked before closing (a payment there would have won).
    assert!(app.pay_logs(id).iter().any(|l| l.0 == "query"));

    let (_, body) = app.pc_get(&detail).await;
    let doc = html(&body);
    assert_eq!(select_text(&doc, "#order-status").unwrap(), "已关闭");
    assert!(select_text(&doc, "#history")
        .unwrap()
        .contains("您取消了订单"));
    assert_eq!(count_matches(&doc, "#cancel-order, #pay-link"), 0);
    assert_eq!(select_text(&doc, "#buy-again").unwrap(), "重新下单");
}

#[tokio::test]
async fn a_refunded_order_shows_its_refund_on_the_detail_and_result_pages() {
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "refunded").await;
    let order = app.order_by_no(&no);
    pay_charge(&app, order.id).await;
    app.wait_for_status(order.id, 2).await;
    app.state
        .gateway()
        .refund(common::refund_request(
            order.id,
            order.total_price,
            &format!("RF{}", order.id),
        ))
        .await
        .unwrap();
    app.wait_for_status(order.id, 6).await;
    let total = Money::from_fen(order.total_price).to_string();

    let (_, body) = app
        .pc_get(&format!("/home/order/detail?order_sn={no}"))
        .await;
    let doc = html(&body);
    assert_eq!(select_text(&doc, "#order-status").unwrap(), "已退款");
    let payment = select_text(&doc, ".payment-record").unwrap();
    assert!(payment.contains(&total), "{payment}");
    let refund = select_text(&doc, ".refund-record.refund-done").unwrap();
    assert!(refund.contains(&format!("退款 {total} 已到账")), "{refund}");
    assert!(select_text(&doc, "#history")
        .unwrap()
        .contains("退款已到账"));
    assert_eq!(select_text(&doc, "#buy-again").unwrap(), "再次购买");
    assert_eq!(count_matches(&doc, "#cancel-order"), 0);

    let (_, body) = app
        .pc_get(&format!("/home/order/payresult?order_sn={no}"))
        .await;
    let doc = html(&body);
    assert_eq!(count_matches(&doc, "#result.result-refunded"), 1);
    assert_eq!(select_text(&doc, "#result h1").unwrap(), "订单已退款");
    assert_eq!(select_text(&doc, "#refunded-amount").unwrap(), total);
}

#[tokio::test]
async fn someone_elses_order_detail_is_not_found() {
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "owner_a").await;
    let other = TestApp {
        browser: common::browser(),
        ..app
    };
    other.pc_register("owner_b").await;
    let (code, _) = other
        .pc_get(&format!("/home/order/detail?order_sn={no}"))
        .await;
    assert_eq!(code, 404);
    let csrf = other.pc_csrf("/home/orders").await;
    let (code, _, _) = other
        .pc_post("/home/order/cancel", &[("csrf", &csrf), ("order_sn", &no)])
        .await;
    assert_eq!(code, 404);
    assert_eq!(other.order_by_no(&no).status, 1);
}

// ---- 5. Cart and stock -------------------------------------------------------------------

#[tokio::test]
async fn a_line_beyond_the_stock_is_marked_left_out_of_the_total_and_stops_checkout() {
    let app = TestApp::spawn().await;
    {
        use jiesuan::models::schema::products;
        diesel::update(products::table.find(2))
            .set(products::price.eq(123_456_789_i64))
            .execute(&mut app.conn())
            .unwrap();
    }
    app.set_stock(1, 3);
    app.pc_register("short").await;
    app.pc_address().await;
    let csrf = app.pc_csrf("/home/goods/1").await;
    let (_, body) = app.pc_get("/home/goods/1").await;
    let doc = html(&body);
    assert_eq!(select_attr(&doc, "#count", "max").unwrap(), "3");
    assert_eq!(select_text(&doc, ".stock").unwrap(), "仅剩 3 件");
    for (id, n) in [("1", "5"), ("2", "1")] {
        app.pc_post(
            "/home/cart/add",
            &[("csrf", &csrf), ("product_id", id), ("count", n)],
        )
        .await;
    }

    let (_, body) = app.pc_get("/home/cart").await;
    let doc = html(&body);
    assert_eq!(count_matches(&doc, ".cart-line.unavailable"), 1);
    assert_eq!(
        select_text(&doc, ".cart-line.unavailable .line-warning").unwrap(),
        "库存不足，仅剩 3 件"
    );
    assert_eq!(select_attr(&doc, "#count-1", "max").unwrap(), "3");
    // Only the line that can be bought counts, in thousands.
    assert_eq!(
        select_text(&doc, ".total .amount").unwrap(),
        "¥1,234,567.89"
    );
    assert_eq!(count_matches(&doc, "a#checkout-link"), 0);
    assert!(select_text(&doc, "#cart-blocked").is_some());
    let (_, body) = app.pc_get("/home/order/checkout").await;
    let doc = html(&body);
    assert_eq!(count_matches(&doc, "#place-order button[disabled]"), 1);

    // Fixed: checkout opens again.
    app.pc_post(
        "/home/cart/update",
        &[("csrf", &csrf), ("product_id", "1"), ("count", "3")],
    )
    .await;
    let (_, body) = app.pc_get("/home/cart").await;
    let doc = html(&body);
    assert_eq!(count_matches(&doc, ".cart-line.unavailable"), 0);
    assert_eq!(
        select_attr(&doc, "a#checkout-link", "href").unwrap(),
        "/home/order/checkout"
    );
    assert_eq!(
        select_text(&doc, ".cart-line .line-note").unwrap(),
        "仅剩 3 件"
    );
}

// ---- 6. Small things that lose shoppers ---------------------------------------------------

#[tokio::test]
async fn registering_from_checkout_returns_to_checkout() {
    let app = TestApp::spawn().await;
    let (code, _) = app.pc_get("/home/order/checkout").await;
    assert_eq!(code, 303);
    let next = "/home/order/checkout";
    let (_, body) = app
        .pc_get("/home/login?next=%2Fhome%2Forder%2Fcheckout")
        .await;
    let register = select_attr(&html(&body), "#register-link", "href").unwrap();
    assert_eq!(register, "/home/register?next=%2Fhome%2Forder%2Fcheckout");
    let (_, body) = app.pc_get(&register).await;
    let doc = html(&body);
    assert_eq!(
        select_attr(&doc, "#register-form input[name=next]", "value").unwrap(),
        next
    );
    let csrf = select_attr(&doc, "input[name=csrf]", "value").unwrap();
    let (code, location, _) = app
        .pc_post(
            "/home/register",
            &[
                ("csrf", &csrf),
                ("username", "from_checkout"),
                ("password", "secret-123"),
                ("password2", "secret-123"),
                ("next", next),
            ],
        )
        .await;
    assert_eq!((code, location.as_str()), (303, next));
}

#[tokio::test]
async fn the_header_shows_the_shopper_on_error_pages_too() {
    let app = TestApp::spawn().await;
    app.pc_register("still_me").await;
    for path in [
        "/no/such/page",
        "/home/goods/9999",
        "/home/order/detail?order_sn=NONE",
    ] {
        let (code, body) = app.pc_get(path).await;
        assert_eq!(code, 404, "{path}");
        let doc = html(&body);
        assert_eq!(
            select_text(&doc, ".nav-user").unwrap(),
            "still_me",
            "{path}"
        );
    }
}

#[tokio::test]
async fn saving_the_address_confirms_and_returns_where_the_shopper_came_from() {
    let app = TestApp::spawn().await;
    app.pc_register("addr_nav").await;
    let (_, body) = app.pc_get("/home/orders").await;
    assert_eq!(
        select_attr(&html(&body), "a.nav-address", "href").unwrap(),
        "/home/address"
    );
    // Opened from 我的订单 through the nav: back there, with a confirmation.
    let res = app
        .browser
        .get(format!("{}/home/address", app.url))
        .header("referer", format!("{}/home/orders", app.url))
        .send()
        .await
        .unwrap();
    let doc = html(&res.text().await.unwrap());
    let next = select_attr(&doc, "input[name=next]", "value").unwrap();
    assert_eq!(next, "/home/orders");
    let csrf = select_attr(&doc, "input[name=csrf]", "value").unwrap();
    let (code, location) = app.pc_save_address(&csrf, &next).await;
    assert_eq!(
        (code, location.as_str()),
        (303, "/home/orders?done=address")
    );
    let (_, body) = app.pc_get(&location).await;
    assert_eq!(
        select_text(&html(&body), ".flash").unwrap(),
        "收货地址已保存"
    );
}

#[tokio::test]
async fn status_and_result_need_the_owner_and_the_qr_link_shows_only_the_cashier() {
    let app = TestApp::spawn().await;
    let no = scanned_order(&app, "owner").await;
    let (_, body) = app.pc_get(&format!("/home/order/pay?order_sn={no}")).await;
    assert!(select_text(&html(&body), "#deadline")
        .unwrap()
        .contains("北京时间"));

    let stranger = reqwest::Client::new();
    let res = stranger
        .post(format!("{}/home/order/status?order_sn={no}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let other = TestApp {
        browser: common::browser(),
        ..app
    };
    other.pc_register("not_owner").await;
    let (code, body) = other
        .pc_get(&format!("/home/order/payresult?order_sn={no}"))
        .await;
    assert_eq!(code, 200);
    let doc = html(&body);
    assert_eq!(count_matches(&doc, "#result.result-fail"), 1);
    assert_eq!(count_matches(&doc, "#order-no, #pay-name, .price"), 0);

    // A phone opening the QR sees what a cashier shows: order, goods, amount; no address.
    let (code, _, body) = other
        .open_qr(&no, "Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36")
        .await;
    assert_eq!(code, 200);
    let doc = html(&body);
    assert_eq!(select_text(&doc, "#order-no").unwrap(), no);
    assert!(!body.contains("文三路") && !body.contains("13900139000"));
}

#[tokio::test]
async fn products_are_found_by_name_and_two_fit_across_a_phone() {
    let app = TestApp::spawn().await;
    let (_, body) = app.pc_get("/?q=%E5%92%96%E5%95%A1").await;
    let doc = html(&body);
    let names: Vec<String> = doc
        .select(&scraper::Selector::parse(".product-name").unwrap())
        .map(|e| e.text().collect())
        .collect();
    assert!(!names.is_empty());
    assert!(names.iter().all(|n| n.contains("咖啡")), "{names:?}");
    assert_eq!(select_attr(&doc, "#q", "value").unwrap(), "咖啡");
    // Wildcards are taken literally.
    let (_, body) = app.pc_get("/?q=%25").await;
    assert_eq!(count_matches(&html(&body), ".product-card"), 0);
    let (_, body) = app.pc_get("/").await;
    assert!(count_matches(&html(&body), ".product-card") > names.len());

    let (_, css) = app.pc_get("/static/css/site.css").await;
    let phone = css.split("@media (max-width: 480px)").nth(1).unwrap();
    assert!(phone.contains(".products { grid-template-columns: repeat(2, minmax(0, 1fr))"));
}

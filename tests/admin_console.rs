//! Issue 13's admin points: shipping and refunding, a readable timeline, the dashboard,
//! CSV numbers as text and date ranges, contrast of the admin colours.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{html, select_attr, select_text, TestApp};

#[tokio::test]
async fn csv_numbers_stay_text_and_a_backwards_date_range_is_refused() {
    let app = TestApp::spawn().await;
    let (id, no) = app.paid_wechat_order("csv-text").await;
    app.admin_login().await;
    let tx = jiesuan::models::order::find(&mut app.conn(), id)
        .unwrap()
        .unwrap()
        .transaction_no
        .unwrap();
    let text = app
        .browser
        .get(format!("{}/admin/orders.csv", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = text.lines().nth(1).unwrap();
    let fields: Vec<&str> = row.split(',').collect();
    assert_eq!(fields[0], format!("\"=\"\"{no}\"\"\""), "{row}");
    assert_eq!(fields[6], format!("\"=\"\"{tx}\"\"\""), "{row}");

    let today = jiesuan::services::admin::today_shanghai();
    let yesterday = today.pred_opt().unwrap();
    let (status, body) = app
        .pc_get(&format!("/admin/orders?from={today}&to={yesterday}"))
        .await;
    assert_eq!(status, 200);
    let doc = html(&body);
    assert!(select_text(&doc, "#error-to")
        .unwrap()
        .contains("不能早于起始日期"));
    assert_eq!(
        common::select_attr(&doc, "#f-from", "value").unwrap(),
        today.to_string(),
        "what was typed is kept"
    );
}

async fn refunds_json(app: &TestApp, order_id: i32) -> serde_json::Value {
    let url = format!("{}/admin/orders/{order_id}/refunds.json", app.url);
    let res = app.browser.get(url).send().await.unwrap();
    res.json().await.unwrap()
}

async fn order_form(app: &TestApp, order_id: i32) -> (String, String) {
    let (_, body) = app.pc_get(&format!("/admin/orders/{order_id}")).await;
    let doc = html(&body);
    (
        select_attr(&doc, "input[name=csrf]", "value").unwrap(),
        select_attr(&doc, "#refund-form input[name=out_refund_no]", "value").unwrap_or_default(),
    )
}

#[tokio::test]
async fn shipping_asks_for_carrier_and_tracking_and_works_after_a_partial_refund() {
    let app = TestApp::spawn().await;
    let (paid, _) = app.paid_wechat_order("ship-after-refund").await;
    app.admin_login().await;
    let page = format!("/admin/orders/{paid}");

    // 退款 needs its 确认 box ticked; the page says how much can still be refunded.
    let (_, body) = app.pc_get(&page).await;
    let doc = html(&body);
    assert!(select_text(&doc, "#refund-hint")
        .unwrap()
        .contains("可退金额 ¥168.00"));
    assert!(select_attr(&doc, "#refund-confirm", "required").is_some());
    let (csrf, out_refund_no) = order_form(&app, paid).await;
    let refund = |confirm: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("amount", "18.00".to_string()),
            ("reason", "少发一件".to_string()),
            ("out_refund_no", out_refund_no.clone()),
            ("confirm", confirm.to_string()),
        ]
    };
    let form = refund("");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = app.pc_post(&format!("{page}/refund"), &pairs).await;
    assert_eq!(status, 422);
    let doc = html(&body);
    assert!(select_text(&doc, "#error-confirm")
        .unwrap()
        .contains("确认"));
    assert_eq!(
        select_attr(&doc, "#refund-reason", "value").unwrap(),
        "少发一件"
    );
    assert!(jiesuan::models::refund::of_order(&mut app.conn(), paid)
        .unwrap()
        .is_empty());
    let form = refund("1");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = app.pc_post(&format!("{page}/refund"), &pairs).await;
    assert_eq!(status, 303);
    app.wait_for_status(paid, 7).await;

    // The refunds' progress as JSON, for the page's poll.
    let v = refunds_json(&app, paid).await;
    assert_eq!(v["status_label"], "部分退款");
    assert_eq!(v["refunds"][0]["status_label"], "已退款");
    assert_eq!(v["in_progress"], false);

    // 发货 without carrier or number is refused by field, keeping what was typed.
    let (csrf, _) = order_form(&app, paid).await;
    let (status, _, body) = app
        .pc_post(
            &format!("{page}/deliver"),
            &[("csrf", &csrf), ("carrier", ""), ("tracking_no", "SF 12")],
        )
        .await;
    assert_eq!(status, 422);
    let doc = html(&body);
    assert!(select_text(&doc, "#error-carrier").is_some());
    assert!(select_text(&doc, "#error-tracking_no").is_some());
    assert_eq!(
        select_attr(&doc, "#ship-tracking", "value").unwrap(),
        "SF 12"
    );
    let (status, location, _) = app
        .pc_post(
            &format!("{page}/deliver"),
            &[
                ("csrf", &csrf),
                ("carrier", "顺丰速运"),
                ("tracking_no", "SF1234567890"),
            ],
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (303, &*format!("{page}?done=deliver"))
    );
    // Still says it was partly refunded; the parcel is on the page and the timeline.
    assert_eq!(common::order_status(&app, paid), 7);
    let (_, body) = app.pc_get(&format!("{page}?done=deliver")).await;
    let doc = html(&body);
    assert_eq!(select_text(&doc, "#order-status").unwrap(), "部分退款");
    assert_eq!(select_text(&doc, "#shipment-carrier").unwrap(), "顺丰速运");
    assert_eq!(
        select_text(&doc, "#shipment-tracking").unwrap(),
        "SF1234567890"
    );
    assert!(select_text(&doc, "#flash").unwrap().contains("发货"));
    assert!(select_text(&doc, "#timeline")
        .unwrap()
        .contains("SF1234567890"));
    assert!(select_text(&doc, "#ship-form").is_none(), "shipped once");
}

#[tokio::test]
async fn the_order_page_polls_a_refund_still_on_its_way() {
    let app = TestApp::spawn().await;
    let (paid, _) = app.paid_wechat_order("refund-poll").await;
    // A refund recorded but not sent yet (as for an order paid without stock).
    app.with_conn(|c| {
        use diesel::prelude::*;
        use jiesuan::models::schema::refund;
        let attempt = &jiesuan::models::pay::attempts_of(c, paid).unwrap()[0];
        diesel::insert_into(refund::table)
            .values((
                refund::order_id.eq(paid),
                refund::attempt_id.eq(attempt.id),
                refund::out_refund_no.eq(format!("{}R1", attempt.out_trade_no)),
                refund::amount.eq(100),
                refund::reason.eq("测试"),
                refund::status.eq(1),
                refund::created_at.eq(jiesuan::models::now()),
                refund::updated_at.eq(jiesuan::models::now()),
            ))
            .execute(c)
            .unwrap();
    });
    app.admin_login().await;
    let (_, body) = app.pc_get(&format!("/admin/orders/{paid}")).await;
    let doc = html(&body);
    assert_eq!(
        select_attr(&doc, "#refunds", "data-poll").unwrap(),
        format!("/admin/orders/{paid}/refunds.json")
    );
    assert!(select_attr(&doc, "script[src='/static/js/refundpoll.js']", "src").is_some());
    let v = refunds_json(&app, paid).await;
    assert_eq!(v["in_progress"], true);
    assert_eq!(v["refunds"][0]["status_label"], "待提交");
}

#[tokio::test]
async fn the_timeline_reads_in_words_with_raw_messages_folded_away() {
    let app = TestApp::spawn().await;
    let (paid, _) = app.paid_wechat_order("timeline-words").await;
    app.admin_login().await;
    let (_, body) = app.pc_get(&format!("/admin/orders/{paid}")).await;
    let doc = html(&body);
    let notify = select_text(&doc, "#timeline .kind-notify .timeline-head").unwrap();
    assert!(
        notify.contains("支付通知") && notify.contains("支付成功"),
        "{notify}"
    );
    let events: Vec<String> = {
        let sel = scraper::Selector::parse("#timeline .kind-event .timeline-title").unwrap();
        doc.select(&sel).map(|e| e.text().collect()).collect()
    };
    assert!(events.iter().any(|t| t.starts_with("下单")), "{events:?}");
    assert!(
        events.iter().any(|t| t.contains("待支付 → 已支付")),
        "{events:?}"
    );
    // Raw bodies and headers only inside a closed 原始报文.
    let sel = scraper::Selector::parse("#timeline pre.raw").unwrap();
    for pre in doc.select(&sel) {
        let details = pre
            .ancestors()
            .filter_map(scraper::ElementRef::wrap)
            .find(|e| e.value().name() == "details")
            .expect("raw text inside <details>");
        assert!(details.value().attr("open").is_none());
        assert_eq!(
            details
                .select(&scraper::Selector::parse("summary").unwrap())
                .next()
                .unwrap()
                .text()
                .collect::<String>(),
            "原始报文"
        );
    }
    // A second copy of the notification reads 重复通知（已忽略）.
    let n = app.pay_logs(paid).len();
    let attempt = app.attempts(paid).remove(0);
    let again = common::wechat_notification(
        &app,
        &attempt.out_trade_no,
        attempt.amount,
        attempt.transaction_no.as_deref().unwrap(),
        &app.state.config.wechat.api_key,
    );
    app.browser
        .post(format!("{}/api/v1/pay/notify", app.url))
        .body(again)
        .send()
        .await
        .unwrap();
    assert_eq!(app.pay_logs(paid).len(), n + 1);
    let (_, body) = app.pc_get(&format!("/admin/orders/{paid}")).await;
    assert!(select_text(&html(&body), "#timeline")
        .unwrap()
        .contains("重复通知（已忽略）"));
}

#[tokio::test]
async fn every_product_save_shows_a_confirmation() {
    let app = TestApp::spawn().await;
    app.admin_login().await;
    let csrf = app.pc_csrf("/admin/products").await;
    let (status, location, _) = app
        .pc_post(
            "/admin/products/1/stock",
            &[("csrf", &csrf), ("delta", "+3")],
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/admin/products?done=stock")
    );
    let (_, body) = app.pc_get(&location).await;
    assert_eq!(select_text(&html(&body), "#flash").unwrap(), "库存已更新");
}

#[tokio::test]
async fn the_dashboard_says_what_needs_doing_and_draws_the_week() {
    let app = TestApp::spawn().await;
    let (paid, paid_no) = app.paid_wechat_order("dash-paid").await;
    app.unpaid_order("dash-unpaid").await;
    app.admin_login().await;
    let (_, body) = app.pc_get("/admin").await;
    let doc = html(&body);
    assert_eq!(
        select_attr(&doc, ".admin-nav a[aria-current=page]", "href").unwrap(),
        "/admin"
    );
    assert_eq!(select_text(&doc, "#todo-ship .stat-value").unwrap(), "1");
    assert_eq!(
        select_text(&doc, "#todo-refunding .stat-value").unwrap(),
        "0"
    );
    assert_eq!(select_text(&doc, "#todo-alarm .stat-value").unwrap(), "0");
    let href = select_attr(&doc, "#todo-ship", "href").unwrap();
    assert_eq!(href, "/admin/orders?todo=ship");
    // The week: seven days, today last, drawn as SVG on the server.
    assert_eq!(common::count_matches(&doc, "svg.week-chart .chart-bar"), 7);
    assert_eq!(common::count_matches(&doc, "#week-table .week-row"), 7);
    let sel = scraper::Selector::parse("#week-table .week-row").unwrap();
    let today: String = doc.select(&sel).next_back().unwrap().text().collect();
    assert!(today.contains("¥168.00") && today.contains('2'), "{today}");
    assert!(!body.contains("<script"), "no chart library");

    let (_, body) = app.pc_get(&href).await;
    let doc = html(&body);
    assert_eq!(
        select_attr(&doc, ".admin-nav a[aria-current=page]", "href").unwrap(),
        "/admin/orders"
    );
    assert_eq!(common::count_matches(&doc, ".order-row"), 1);
    assert!(select_text(&doc, ".order-row").unwrap().contains(&paid_no));

    // Shipped: no longer to do.
    let csrf = app.pc_csrf(&format!("/admin/orders/{paid}")).await;
    let (status, _, _) = app
        .pc_post(
            &format!("/admin/orders/{paid}/deliver"),
            &[
                ("csrf", &csrf),
                ("carrier", "中通快递"),
                ("tracking_no", "ZT100"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (_, body) = app.pc_get("/admin").await;
    assert_eq!(
        select_text(&html(&body), "#todo-ship .stat-value").unwrap(),
        "0"
    );
    let (_, body) = app.pc_get("/admin/orders?todo=ship").await;
    assert_eq!(common::count_matches(&html(&body), ".order-row"), 0);
}

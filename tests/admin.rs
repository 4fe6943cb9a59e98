//! The admin console: access, pages, filters, CSV, the order's history and actions,
//! products, escaping, CSRF, the login delay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{count_matches, html, order_status, select_attr, select_text, TestApp};
use diesel::prelude::*;

const PAGES: [&str; 7] = [
    "/admin",
    "/admin/orders",
    "/admin/orders/1",
    "/admin/paylog",
    "/admin/products",
    "/admin/products/new",
    "/admin/products/1/edit",
];

#[tokio::test]
async fn admin_pages_need_an_admin_and_render_for_one() {
    let app = TestApp::spawn().await;
    let (id, no) = app.paid_wechat_order("seen-by-admin").await;
    assert_eq!(id, 1);
    for path in PAGES.iter().chain(&["/admin/orders.csv"]) {
        let res = app
            .browser
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "anonymous {path}");
        assert!(res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/admin/login?next="));
    }
    app.pc_register("just_a_shopper").await;
    for path in PAGES {
        let (status, _) = app.pc_get(path).await;
        assert_eq!(status, 303, "shopper {path}");
    }

    app.admin_login().await;
    for path in PAGES {
        let (status, body) = app.pc_get(path).await;
        assert_eq!(status, 200, "admin {path}");
        assert!(select_text(&html(&body), "h1, h2").is_some(), "{path}");
    }
    let (_, body) = app.pc_get("/admin").await;
    assert_eq!(
        select_text(&html(&body), "#orders-today .stat-value").unwrap(),
        "1"
    );
    let (_, body) = app.pc_get("/admin/orders").await;
    let doc = html(&body);
    assert_eq!(count_matches(&doc, ".order-row"), 1);
    assert!(select_text(&doc, ".order-row").unwrap().contains(&no));
    let (_, body) = app.pc_get("/admin/products").await;
    assert_eq!(count_matches(&html(&body), ".product-row"), 8);

    let (_, body) = app.pc_get(&format!("/admin/orders/{id}")).await;
    let doc = html(&body);
    assert!(select_text(&doc, "#order-no").unwrap().contains(&no));
    let timeline = select_text(&doc, "#timeline").unwrap();
    assert!(
        timeline.contains("下单") && timeline.contains("支付成功"),
        "{timeline}"
    );
    assert!(count_matches(&doc, "#timeline .kind-notify") >= 1);
    assert!(count_matches(&doc, "#timeline .kind-create") >= 1);
    assert!(count_matches(&doc, "#timeline .verified") >= 1);
    assert!(body.contains("&lt;xml&gt;"), "raw bodies are shown escaped");
    assert_eq!(
        count_matches(&doc, "#attempts tr"),
        2,
        "header + one attempt"
    );

    let (_, body) = app.pc_get("/admin/paylog").await;
    assert!(count_matches(&html(&body), ".paylog-row") >= 2);
}

#[tokio::test]
async fn orders_filter_by_status_number_user_date_and_amount() {
    let app = TestApp::spawn().await;
    let (paid, paid_no) = app.paid_wechat_order("filter-paid").await;
    let (_, unpaid, unpaid_no) = app.unpaid_order("filter-unpaid").await;
    app.admin_login().await;
    let rows = |body: String| -> Vec<String> {
        let doc = html(&body);
        let sel = scraper::Selector::parse(".order-row .order-link").unwrap();
        doc.select(&sel)
            .map(|e| e.text().collect::<String>().trim().to_string())
            .collect()
    };
    let (_, body) = app.pc_get("/admin/orders?status=2").await;
    assert_eq!(rows(body.clone()), vec![paid_no.clone()]);
    assert_eq!(select_text(&html(&body), "#total-count").unwrap(), "1");
    assert_eq!(select_text(&html(&body), "#total-paid").unwrap(), "¥168.00");
    let (_, body) = app.pc_get("/admin/orders?status=1").await;
    assert_eq!(rows(body), vec![unpaid_no.clone()]);
    let (_, body) = app
        .pc_get(&format!(
            "/admin/orders?order_no={}",
            &unpaid_no[..unpaid_no.len() - 1]
        ))
        .await;
    assert_eq!(rows(body), vec![unpaid_no.clone()]);
    let today = jiesuan::services::admin::today_shanghai();
    let (_, body) = app
        .pc_get(&format!("/admin/orders?from={today}&to={today}"))
        .await;
    assert_eq!(rows(body).len(), 2);
    let yesterday = today.pred_opt().unwrap();
    let (_, body) = app.pc_get(&format!("/admin/orders?to={yesterday}")).await;
    assert!(rows(body).is_empty());
    let (_, body) = app
        .pc_get("/admin/orders?min=100&max=200&channel=wx_native")
        .await;
    assert_eq!(rows(body), vec![paid_no.clone()]);
    let (_, body) = app.pc_get("/admin/orders?max=1.5").await;
    assert!(rows(body).is_empty());
    // The user filter takes an id.
    let uid: i32 = jiesuan::models::order::find(&mut app.conn(), unpaid)
        .unwrap()
        .unwrap()
        .user_id;
    let (_, body) = app.pc_get(&format!("/admin/orders?user={uid}")).await;
    assert_eq!(rows(body), vec![unpaid_no]);
    // Bad filters are named, not fatal.
    let (status, body) = app.pc_get("/admin/orders?from=yesterday&min=abc").await;
    assert_eq!(status, 200);
    let doc = html(&body);
    assert!(
        select_text(&doc, "#error-from").is_some() && select_text(&doc, "#error-min").is_some()
    );
    let _ = paid;
}

#[tokio::test]
async fn the_csv_holds_the_filtered_orders_with_yuan_and_shanghai_times() {
    let app = TestApp::spawn().await;
    let (id, no) = app.paid_wechat_order("csv").await;
    app.unpaid_order("csv-unpaid").await;
    app.admin_login().await;
    let res = app
        .browser
        .get(format!("{}/admin/orders.csv?status=2", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let bytes = res.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "BOM for Excel");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("订单号,下单时间,用户,状态,支付方式"));
    let row = lines[1];
    assert!(
        row.starts_with(&format!("\"=\"\"{no}\"\"\",")),
        "the order number stays text: {row}"
    );
    assert!(row.contains(",168.00,"), "{row}");
    assert!(row.contains("西湖龙井 明前特级 100g×1"), "{row}");
    assert!(row.contains("已支付") && row.contains("微信支付"));
    let created = jiesuan::models::order::find(&mut app.conn(), id)
        .unwrap()
        .unwrap()
        .created_at;
    assert!(
        row.contains(&jiesuan::domain::format_shanghai(created)),
        "times in Asia/Shanghai"
    );
}

async fn action(
    app: &TestApp,
    order_id: i32,
    what: &str,
    extra: &[(&str, &str)],
) -> (u16, String, String) {
    let (_, body) = app.pc_get(&format!("/admin/orders/{order_id}")).await;
    let csrf = select_attr(&html(&body), "input[name=csrf]", "value").unwrap();
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(extra);
    app.pc_post(&format!("/admin/orders/{order_id}/{what}"), &form)
        .await
}

#[tokio::test]
async fn an_admin_refunds_delivers_closes_and_requeries_from_the_order_page() {
    let app = TestApp::spawn().await;
    let (paid, _) = app.paid_wechat_order("refund-me").await;
    app.admin_login().await;

    let ship = [("carrier", "顺丰速运"), ("tracking_no", "SF1234567890")];
    let (status, _, _) = action(&app, paid, "deliver", &ship).await;
    assert_eq!(status, 303);
    assert_eq!(order_status(&app, paid), 3);

    let (_, body) = app.pc_get(&format!("/admin/orders/{paid}")).await;
    let doc = html(&body);
    let out_refund_no =
        select_attr(&doc, "#refund-form input[name=out_refund_no]", "value").unwrap();
    let (status, _, body) = action(
        &app,
        paid,
        "refund",
        &[
            ("amount", "500"),
            ("reason", "多退"),
            ("out_refund_no", &out_refund_no),
            ("confirm", "1"),
        ],
    )
    .await;
    assert_eq!(status, 422, "more than paid");
    assert!(select_text(&html(&body), "#error-amount")
        .unwrap()
        .contains("可退"));
    let (status, location, _) = action(
        &app,
        paid,
        "refund",
        &[
            ("amount", "18.00"),
            ("reason", "部分退款"),
            ("out_refund_no", &out_refund_no),
            ("confirm", "1"),
        ],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, &*format!("/admin/orders/{paid}?done=refund"))
    );
    app.wait_for_status(paid, 7).await;
    let (_, body) = app.pc_get(&format!("/admin/orders/{paid}")).await;
    let doc = html(&body);
    assert!(select_text(&doc, "#refunds").unwrap().contains("¥18.00"));
    let timeline = select_text(&doc, "#timeline").unwrap();
    assert!(
        timeline.contains("申请退款") && timeline.contains("boss"),
        "{timeline}"
    );
    assert!(
        count_matches(&doc, "#timeline .kind-refund_notify") >= 1,
        "the refund notification is on the page"
    );
    // Delivered orders cannot be delivered again.
    let (status, _, _) = action(&app, paid, "deliver", &ship).await;
    assert_eq!(status, 400);

    let (_, unpaid, _) = app.unpaid_order("close-me").await;
    let stock = app.stock(1);
    let (status, _, _) = action(&app, unpaid, "query", &[]).await;
    assert_eq!(status, 303);
    let (status, _, _) = action(&app, unpaid, "close", &[]).await;
    assert_eq!(status, 303);
    assert_eq!(order_status(&app, unpaid), 5);
    assert_eq!(app.stock(1), stock + 1);
    let events = jiesuan::models::event::of_order(&mut app.conn(), unpaid).unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "admin_query" && e.actor == "boss"));
    assert!(events
        .iter()
        .any(|e| e.kind == "closed" && e.actor == "boss"));
}

#[tokio::test]
async fn a_forged_admin_post_is_refused() {
    let app = TestApp::spawn().await;
    let (paid, _) = app.paid_wechat_order("forged-admin").await;
    app.admin_login().await;
    for (path, form) in [
        (
            format!("/admin/orders/{paid}/refund"),
            vec![("amount", "1"), ("reason", "x"), ("out_refund_no", "X1")],
        ),
        (format!("/admin/orders/{paid}/deliver"), vec![]),
        ("/admin/products/1/stock".to_string(), vec![("delta", "-5")]),
    ] {
        let (status, _, _) = app.pc_post(&path, &form).await;
        assert_eq!(status, 403, "{path}");
    }
    assert_eq!(order_status(&app, paid), 2);
    assert!(jiesuan::models::refund::of_order(&mut app.conn(), paid)
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn markup_comes_out_escaped_on_admin_pages() {
    let app = TestApp::spawn().await;
    app.with_conn(|c| {
        use jiesuan::models::schema::products;
        diesel::update(products::table.find(1))
            .set(products::name.eq("<script>alert('p')</script>"))
            .execute(c)
            .unwrap();
    });
    let token = app.token("xss-admin").await;
    let mut addr = common::sample_address();
    addr["detail"] = serde_json::json!("<script>alert('a')</script>");
    app.post_json("/api/v1/address", &token, &addr).await;
    let (_, v) = app.place(&token, &[(1, 1)]).await;
    let id = v["order_id"].as_i64().unwrap();
    app.admin_login().await;
    for path in [
        "/admin".to_string(),
        "/admin/orders".into(),
        format!("/admin/orders/{id}"),
        "/admin/products".into(),
        "/admin/products/1/edit".into(),
    ] {
        let (status, body) = app.pc_get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains("<script>alert"), "{path} leaks markup");
    }
    let res = app
        .browser
        .get(format!("{}/admin/orders.csv", app.url))
        .send()
        .await
        .unwrap();
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("<script>alert('a')</script>"),
        "CSV is data, not HTML"
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_make_the_login_wait() {
    let app = TestApp::spawn().await;
    app.create_admin("boss", "boss-pass-123");
    let token = app.pc_csrf("/admin/login").await;
    for _ in 0..3 {
        let (status, _, body) = app
            .pc_post(
                "/admin/login",
                &[
                    ("csrf", &token),
                    ("username", "boss"),
                    ("password", "wrong-one"),
                ],
            )
            .await;
        assert_eq!(status, 422);
        assert!(select_text(&html(&body), "#login-error")
            .unwrap()
            .contains("用户名或密码错误"));
    }
    // Even the right password waits now.
    let (status, _, body) = app
        .pc_post(
            "/admin/login",
            &[
                ("csrf", &token),
                ("username", "boss"),
                ("password", "boss-pass-123"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(select_text(&html(&body), "#login-error")
        .unwrap()
        .contains("秒后再试"));

    // A shopper's right password is not enough.
    app.pc_register("not_admin").await;
    let token = app.pc_csrf("/admin/login").await;
    let (status, _, body) = app
        .pc_post(
            "/admin/login",
            &[
                ("csrf", &token),
                ("username", "not_admin"),
                ("password", "secret-123"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(select_text(&html(&body), "#login-error")
        .unwrap()
        .contains("没有管理员权限"));
}

#[tokio::test]
async fn products_are_created_edited_and_their_stock_moves_by_deltas() {
    let app = TestApp::spawn().await;
    app.admin_login().await;
    let csrf = app.pc_csrf("/admin/products/new").await;
    let (status, _, body) = app
        .pc_post(
            "/admin/products/new",
            &[
                ("csrf", &csrf),
                ("name", "新茶"),
                ("price", "abc"),
                ("main_img_url", "/static/img/placeholder.svg"),
                ("stock", "5"),
                ("on_sale", "1"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    let doc = html(&body);
    assert!(select_text(&doc, "#error-price").is_some());
    assert_eq!(
        select_attr(&doc, "input[name=name]", "value").unwrap(),
        "新茶"
    );
    let (status, _, _) = app
        .pc_post(
            "/admin/products/new",
            &[
                ("csrf", &csrf),
                ("name", "新茶"),
                ("price", "12.5"),
                ("main_img_url", "/static/img/placeholder.svg"),
                ("stock", "5"),
                ("on_sale", "1"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let v: serde_json::Value = app
        .api
        .get(format!("{}/api/v1/product/9", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["price"].as_i64(), v["stock"].as_i64()),
        (Some(1250), Some(5))
    );

    let (status, _, _) = app
        .pc_post(
            "/admin/products/9/edit",
            &[
                ("csrf", &csrf),
                ("name", "新茶（改）"),
                ("price", "13"),
                ("main_img_url", "/static/img/placeholder.svg"),
                ("summary", ""),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let res = app
        .api
        .get(format!("{}/api/v1/product/9", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "saved without on_sale: off the shelf");

    let before = app.stock(1);
    let (status, _, body) = app
        .pc_post(
            "/admin/products/1/stock",
            &[("csrf", &csrf), ("delta", &format!("-{}", before + 1))],
        )
        .await;
    assert_eq!(status, 409);
    assert!(select_text(&html(&body), "#stock-error").is_some());
    assert_eq!(app.stock(1), before);
    let (status, _, _) = app
        .pc_post(
            "/admin/products/1/stock",
            &[("csrf", &csrf), ("delta", "+5")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(app.stock(1), before + 5);
}

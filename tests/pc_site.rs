//! The PC site as a browser uses it: register, address, cart, checkout, 我的订单.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{count_matches, html, select_attr, select_text, TestApp};
use diesel::prelude::*;

#[tokio::test]
async fn a_new_user_registers_buys_two_products_and_sees_the_order() {
    let app = TestApp::spawn().await;
    let (s1, s2) = (app.stock(1), app.stock(2));

    let (status, body) = app.pc_get("/").await;
    assert_eq!(status, 200);
    assert_eq!(count_matches(&html(&body), ".product-card"), 8);

    app.pc_register("shopper_li").await;
    let (_, body) = app.pc_get("/").await;
    assert!(
        body.contains("shopper_li"),
        "the layout names the logged-in user"
    );

    // The checkout sends a user without an address to the address form first.
    app.pc_address().await;

    let token = app.pc_csrf("/home/goods/1").await;
    let (status, location, _) = app
        .pc_post(
            "/home/cart/add",
            &[("csrf", &token), ("product_id", "1"), ("count", "1")],
        )
        .await;
    assert_eq!((status, location.as_str()), (303, "/home/cart"));
    app.pc_post(
        "/home/cart/add",
        &[("csrf", &token), ("product_id", "2"), ("count", "2")],
    )
    .await;

    let (_, body) = app.pc_get("/home/cart").await;
    let doc = html(&body);
    assert!(body.contains("西湖龙井") && body.contains("咖啡豆"));
    assert!(
        select_text(&doc, "body").unwrap().contains("¥346.00"),
        "total = 168 + 2 × 89"
    );

    let (status, body) = app.pc_get("/home/order/checkout").await;
    assert_eq!(status, 200);
    let doc = html(&body);
    assert_eq!(count_matches(&doc, "form#place-order"), 1);
    assert!(body.contains("文三路 100 号"));

    let (status, location, _) = app.pc_post("/home/order/save", &[("csrf", &token)]).await;
    assert_eq!(status, 303);
    let order_sn = location
        .strip_prefix("/home/order/pay?order_sn=")
        .expect(&location)
        .to_string();

    let (status, body) = app.pc_get(&location).await;
    assert_eq!(status, 200);
    let doc = html(&body);
    assert_eq!(select_text(&doc, "#order-no").unwrap(), order_sn);
    assert_eq!(select_text(&doc, "#order-status").unwrap(), "待支付");

    let (_, body) = app.pc_get("/home/orders").await;
    let doc = html(&body);
    assert_eq!(count_matches(&doc, ".order-row"), 1);
    assert!(select_text(&doc, ".order-row").unwrap().contains(&order_sn));

    assert_eq!((app.stock(1), app.stock(2)), (s1 - 1, s2 - 2));
    let (_, body) = app.pc_get("/home/cart").await;
    assert_eq!(
        count_matches(&html(&body), "#checkout-link"),
        0,
        "the cart is empty after ordering"
    );
}

#[tokio::test]
async fn forms_with_errors_keep_what_was_typed() {
    let app = TestApp::spawn().await;
    let token = app.pc_csrf("/home/register").await;
    let (status, _, body) = app
        .pc_post(
            "/home/register",
            &[
                ("csrf", &token),
                ("username", "ab"),
                ("password", "short"),
                ("password2", "other"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    let doc = html(&body);
    assert_eq!(select_attr(&doc, "input#username", "value").unwrap(), "ab");
    for field in ["username", "password", "password2"] {
        assert!(
            select_text(&doc, &format!("#error-{field}")).is_some(),
            "{field}"
        );
    }
    assert_eq!(
        select_attr(&doc, "input#password", "value"),
        None,
        "passwords are never echoed"
    );

    app.pc_register("typist").await;
    let token = app.pc_csrf("/home/address").await;
    let (status, _, body) = app
        .pc_post(
            "/home/address",
            &[
                ("csrf", &token),
                ("name", "王五"),
                ("mobile", "123"),
                ("province", "江苏省"),
                ("city", "南京市"),
                ("district", ""),
                ("detail", "中山路 1 号"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    let doc = html(&body);
    assert_eq!(select_attr(&doc, "input#name", "value").unwrap(), "王五");
    assert_eq!(select_attr(&doc, "input#mobile", "value").unwrap(), "123");
    assert!(select_text(&doc, "#error-mobile").is_some());
    assert!(select_text(&doc, "#error-district").is_some());
    assert!(select_text(&doc, "#error-name").is_none());

    // Registering a taken name says so on the field.
    app.browser
        .post(format!("{}/home/logout", app.url))
        .form(&[("csrf", app.pc_csrf("/").await)])
        .send()
        .await
        .unwrap();
    let token = app.pc_csrf("/home/register").await;
    let (status, _, body) = app
        .pc_post(
            "/home/register",
            &[
                ("csrf", &token),
                ("username", "typist"),
                ("password", "secret-123"),
                ("password2", "secret-123"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(select_text(&html(&body), "#error-username")
        .unwrap()
        .contains("已被注册"));
}

#[tokio::test]
async fn login_is_required_and_wrong_passwords_are_refused() {
    let app = TestApp::spawn().await;
    let (status, _) = app.pc_get("/home/orders").await;
    assert_eq!(status, 303);
    let res = app
        .browser
        .get(format!("{}/home/order/checkout", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers().get("location").unwrap(),
        "/home/login?next=%2Fhome%2Forder%2Fcheckout"
    );

    app.pc_register("forgetful").await;
    app.browser
        .post(format!("{}/home/logout", app.url))
        .form(&[("csrf", app.pc_csrf("/").await)])
        .send()
        .await
        .unwrap();
    let token = app.pc_csrf("/home/login").await;
    let (status, _, body) = app
        .pc_post(
            "/home/login",
            &[
                ("csrf", &token),
                ("username", "forgetful"),
                ("password", "wrong-pass"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    let doc = html(&body);
    assert!(select_text(&doc, ".alert-error")
        .unwrap()
        .contains("用户名或密码错误"));
    assert_eq!(
        select_attr(&doc, "input#username", "value").unwrap(),
        "forgetful"
    );

    let (status, location, _) = app
        .pc_post(
            "/home/login",
            &[
                ("csrf", &token),
                ("username", "forgetful"),
                ("password", "secret-123"),
                ("next", "/home/orders"),
            ],
        )
        .await;
    assert_eq!((status, location.as_str()), (303, "/home/orders"));
    let (status, _) = app.pc_get("/home/orders").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let app = TestApp::spawn().await;
    app.pc_register("careful").await;
    app.pc_address().await;
    let token = app.pc_csrf("/home/goods/1").await;
    app.pc_post(
        "/home/cart/add",
        &[("csrf", &token), ("product_id", "1"), ("count", "1")],
    )
    .await;
    let before = app.all_stock();
    let (status, _, _) = app.pc_post("/home/order/save", &[]).await;
    assert_eq!(status, 403);
    let (status, _, _) = app.pc_post("/home/order/save", &[("csrf", "forged")]).await;
    assert_eq!(status, 403);
    assert_eq!(app.order_count(), 0);
    assert_eq!(app.all_stock(), before);
}

#[tokio::test]
async fn someone_elses_pay_page_is_not_found_and_stock_outs_are_explained() {
    let app = TestApp::spawn().await;
    let api_token = app.buyer("api-user").await;
    let (_, v) = app.place(&api_token, &[(1, 1)]).await;
    let other_no = v["order_no"].as_str().unwrap().to_string();

    app.pc_register("curious").await;
    app.pc_address().await;
    let (status, body) = app
        .pc_get(&format!("/home/order/pay?order_sn={other_no}"))
        .await;
    assert_eq!(status, 404);
    assert!(body.contains("订单编号错误"));

    app.set_stock(5, 1);
    let token = app.pc_csrf("/home/goods/5").await;
    app.pc_post(
        "/home/cart/add",
        &[("csrf", &token), ("product_id", "5"), ("count", "3")],
    )
    .await;
    let (status, _, body) = app.pc_post("/home/order/save", &[("csrf", &token)]).await;
    assert_eq!(status, 409);
    let doc = html(&body);
    assert!(select_text(&doc, "#checkout-error")
        .unwrap()
        .contains("降噪蓝牙耳机"));
    assert_eq!(app.stock(5), 1);
}

#[tokio::test]
async fn markup_in_product_names_and_addresses_comes_out_escaped() {
    let app = TestApp::spawn().await;
    app.with_conn(|c| {
        use jiesuan::models::schema::products;
        diesel::update(products::table.find(1))
            .set(products::name.eq("<script>alert(1)</script>"))
            .execute(c)
            .unwrap();
    });
    app.pc_register("xss_tester").await;
    let token = app.pc_csrf("/home/address").await;
    app.pc_post(
        "/home/address",
        &[
            ("csrf", &token),
            ("name", "<script>x</script>"),
            ("mobile", "13900139000"),
            ("province", "浙江省"),
            ("city", "杭州市"),
            ("district", "西湖区"),
            ("detail", "<img src=x onerror=alert(1)>"),
        ],
    )
    .await;
    app.pc_post(
        "/home/cart/add",
        &[("csrf", &token), ("product_id", "1"), ("count", "1")],
    )
    .await;
    let (_, pay_page, _) = app.pc_post("/home/order/save", &[("csrf", &token)]).await;
    let result_page = pay_page.replace("/pay?", "/payresult?");
    for path in [
        "/",
        "/home/goods/1",
        "/home/cart",
        "/home/order/checkout",
        "/home/orders",
        "/home/address",
        pay_page.as_str(),
        result_page.as_str(),
    ] {
        let (status, body) = app.pc_get(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains("<script>alert"), "{path} leaks markup");
        assert!(!body.contains("<img src=x"), "{path} leaks markup");
    }
    let (_, body) = app.pc_get("/").await;
    assert!(body.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"));
}

#[tokio::test]
async fn unknown_pages_render_the_error_page() {
    let app = TestApp::spawn().await;
    let (status, body) = app.pc_get("/no/such/page").await;
    assert_eq!(status, 404);
    assert!(select_text(&html(&body), "h1").is_some());
    let (status, _) = app.pc_get("/home/goods/999").await;
    assert_eq!(status, 404);
    let (status, _) = app.pc_get("/static/css/site.css").await;
    assert_eq!(status, 200);
}

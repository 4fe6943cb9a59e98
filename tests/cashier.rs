//! The shop's own cashier (`cashier = "direct"`) on the WeChat side: the PC QR opened in
//! WeChat goes through the Official Account's OAuth (snsapi_base) for the payer's openid,
//! then a JSAPI payment under the Official Account's appid that the (sandbox) WeixinJSBridge
//! pays, over WeChat Pay v2 and APIv3; the paySign is checked by independent code here; the
//! sandbox refuses what WeChat refuses (a used code, a foreign redirect_uri, another user
//! paying, a tampered paySign, OAuth outside WeChat). A phone browser gets the phone cashier:
//! Alipay wap.pay and WeChat H5 (APIv3), back to the shop's result page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    browser, fresh_database_url, html, location, order_status, select_attr, select_text,
    test_config, TestApp, WECHAT_UA,
};
use jiesuan::config::{
    ApiVersion, Cashier, Config, SANDBOX_OA_APPID, SANDBOX_V3_PUBLIC_KEY, SANDBOX_V3_PUBLIC_KEY_ID,
};
use md5::{Digest, Md5};
use serde_json::Value;

const PHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

fn direct(version: ApiVersion) -> Config {
    let mut config = test_config(&fresh_database_url());
    config.cashier = Cashier::Direct;
    config.wechat.api_version = version;
    if version == ApiVersion::V3 {
        config.wechat.v3_public_key_id = Some(SANDBOX_V3_PUBLIC_KEY_ID.into());
        config.wechat.v3_public_key = Some(SANDBOX_V3_PUBLIC_KEY.into());
    }
    config
}

/// A phone's WeChat browser: its own cookies (its sandbox WeChat account), no redirects.
fn wechat_phone() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(WECHAT_UA)
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String, String) {
    let res = client.get(url).send().await.unwrap();
    let status = res.status().as_u16();
    let to = location(&res);
    (status, to, res.text().await.unwrap())
}

/// `to` made absolute against the shop.
fn absolute(app: &TestApp, to: &str) -> String {
    if to.starts_with("http") {
        to.to_string()
    } else {
        format!("{}{to}", app.url)
    }
}

/// A PC shopper's order: (order id, order number).
async fn pc_order(app: &TestApp, name: &str) -> (i32, String) {
    app.pc_register(name).await;
    app.pc_address().await;
    let no = app.pc_order(1, 1).await;
    (app.order_by_no(&no).id, no)
}

/// The QR opened in WeChat, followed to the cashier page: the OAuth round trip's code and
/// state, and the page.
struct Scanned {
    code: String,
    state: String,
    page: String,
}

async fn scan_in_wechat(app: &TestApp, phone: &reqwest::Client, no: &str) -> Scanned {
    let (status, to, _) = get(phone, &format!("{}/home/order/qrpay?id={no}", app.url)).await;
    assert_eq!(
        (status, to.as_str()),
        (302, format!("/home/order/wxcashier?id={no}").as_str())
    );
    let (status, authorize, _) = get(phone, &absolute(app, &to)).await;
    assert_eq!(status, 302);
    let base = format!("{}/sandbox/wechat/connect/oauth2/authorize?", app.url);
    assert!(authorize.starts_with(&base), "{authorize}");
    assert!(authorize.ends_with("#wechat_redirect"), "{authorize}");
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(authorize[base.len()..].trim_end_matches("#wechat_redirect"))
            .unwrap();
    let param = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(param("appid"), SANDBOX_OA_APPID);
    assert_eq!(param("scope"), "snsapi_base");
    assert_eq!(
        param("redirect_uri"),
        format!("{}/home/order/wxoauth", app.url)
    );
    let (status, back, _) = get(phone, &authorize).await;
    assert_eq!(status, 302);
    let bq: Vec<(String, String)> =
        serde_urlencoded::from_str(back.split_once('?').unwrap().1).unwrap();
    let bparam = |k: &str| {
        bq.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let (code, state) = (bparam("code"), bparam("state"));
    let (status, to, _) = get(phone, &back).await;
    assert_eq!(
        (status, to.as_str()),
        (302, format!("/home/order/wxcashier?id={no}").as_str())
    );
    let (status, _, page) = get(phone, &absolute(app, &to)).await;
    assert_eq!(status, 200, "{page}");
    Scanned { code, state, page }
}

/// The launch parameters on a cashier page.
fn launch_of(page: &str) -> Value {
    let attr = select_attr(&html(page), "#wx-pay", "data-launch").expect("a 微信支付 button");
    serde_json::from_str(&attr).unwrap()
}

/// What the WeChat browser's WeixinJSBridge (the sandbox's) answers for `launch`.
async fn bridge_pay(app: &TestApp, phone: &reqwest::Client, launch: &Value) -> Value {
    phone
        .post(format!("{}/sandbox/wechat/jsapi_pay", app.url))
        .json(launch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The v2 paySign, computed here independently of the shop: MD5 over the sorted keys and
/// the API key, upper-case hex.
fn v2_pay_sign(launch: &Value, key: &str) -> String {
    let mut keys = ["appId", "nonceStr", "package", "signType", "timeStamp"];
    keys.sort_unstable();
    let text: Vec<String> = keys
        .iter()
        .map(|k| format!("{k}={}", launch[*k].as_str().unwrap()))
        .collect();
    let text = format!("{}&key={key}", text.join("&"));
    hex::encode_upper(Md5::digest(text.as_bytes()))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

async fn wechat_cashier_pays(version: ApiVersion) {
    let app = TestApp::spawn_on(direct(version)).await;
    let (id, no) = pc_order(&app, "wxcashier").await;
    let phone = wechat_phone();
    let scanned = scan_in_wechat(&app, &phone, &no).await;
    let launch = launch_of(&scanned.page);
    assert_eq!(s(&launch["appId"]), SANDBOX_OA_APPID);
    assert!(s(&launch["package"]).starts_with("prepay_id="));
    match version {
        ApiVersion::V2 => {
            assert_eq!(s(&launch["signType"]), "MD5");
            let key = &app.state.config.wechat.api_key;
            assert_eq!(s(&launch["paySign"]), v2_pay_sign(&launch, key));
        }
        ApiVersion::V3 => {
            assert_eq!(s(&launch["signType"]), "RSA");
            let message = format!(
                "{}\n{}\n{}\n{}\n",
                s(&launch["appId"]),
                s(&launch["timeStamp"]),
                s(&launch["nonceStr"]),
                s(&launch["package"])
            );
            assert!(common::wechat_v3::verify(
                "wechat_v3_merchant_private.pem",
                &message,
                s(&launch["paySign"])
            ));
        }
    }
    let attempts = app.attempts(id);
    assert_eq!(attempts.len(), 1);
    let provider = if version == ApiVersion::V3 {
        "wechat_v3"
    } else {
        "wechat"
    };
    assert_eq!(
        (attempts[0].provider.as_str(), attempts[0].channel.as_str()),
        (provider, "wx_pub")
    );
    // Opening the cashier again reuses the attempt (the same prepay_id).
    let (_, _, again) = get(&phone, &format!("{}/home/order/wxcashier?id={no}", app.url)).await;
    assert_eq!(launch_of(&again)["package"], launch["package"]);
    assert_eq!(app.attempts(id).len(), 1);

    // The notification is lost: the page reloaded after WeChat's ok asks WeChat, under the
    // Official Account's appid (an answer for another appid would not be believed).
    let prefix = attempts[0].out_trade_no.clone();
    app.set_faults(serde_json::json!({ "prefix": prefix, "never_deliver": true }))
        .await;
    let answer = bridge_pay(&app, &phone, &launch).await;
    assert_eq!(answer["err_msg"], "get_brand_wcpay_request:ok", "{answer}");
    let back = select_attr(&html(&scanned.page), "#wx-pay", "data-return").unwrap();
    assert!(back.ends_with("&paid=1"), "{back}");
    let (_, _, page) = get(&phone, &absolute(&app, &back)).await;
    assert_eq!(
        select_text(&html(&page), "#cashier-paid").as_deref(),
        Some("支付成功")
    );
    assert_eq!(order_status(&app, id), 2);
    assert!(app
        .pay_logs(id)
        .iter()
        .any(|(kind, _, outcome, _)| kind == "query" && outcome == "paid"));
    let o = app.order_by_no(&no);
    assert_eq!(o.pay_name.as_deref(), Some("微信支付"));
    // Paid once: a second confirmation is refused by WeChat.
    let twice = bridge_pay(&app, &phone, &launch).await;
    assert_eq!(twice["err_msg"], "get_brand_wcpay_request:fail");
    assert_eq!(order_status(&app, id), 2);
    // A partial refund goes back through WeChat for the Official Account's trade.
    app.state
        .gateway()
        .refund(common::refund_request(id, 100, &format!("RW{id}")))
        .await
        .unwrap();
    for _ in 0..100 {
        if order_status(&app, id) == 7 {
            return;
        }
        app.state.gateway().sweep_refunds().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the refund never completed: {}", order_status(&app, id));
}

#[tokio::test]
async fn the_qr_opened_in_wechat_pays_with_oauth_and_jsapi_over_v2() {
    wechat_cashier_pays(ApiVersion::V2).await;
}

#[tokio::test]
async fn the_qr_opened_in_wechat_pays_with_oauth_and_jsapi_over_v3() {
    wechat_cashier_pays(ApiVersion::V3).await;
}

#[tokio::test]
async fn oauth_codes_are_single_use_and_bound_to_the_browser_that_asked() {
    let app = TestApp::spawn_on(direct(ApiVersion::V2)).await;
    let (_, no) = pc_order(&app, "wxoauth").await;
    let phone = wechat_phone();
    let scanned = scan_in_wechat(&app, &phone, &no).await;
    let back = |code: &str, state: &str| {
        let q = serde_urlencoded::to_string([("code", code), ("state", state)]).unwrap();
        format!("{}/home/order/wxoauth?{q}", app.url)
    };
    // The same code again: WeChat answers 40163, the shopper is asked to scan again.
    let (status, _, page) = get(&phone, &back(&scanned.code, &scanned.state)).await;
    assert_eq!(status, 403);
    assert!(page.contains("微信授权已失效"), "{page}");
    // A state made for another browser's session is refused before any code is traded.
    let other = wechat_phone();
    let (status, _, page) = get(&other, &back("whatever", &scanned.state)).await;
    assert_eq!(status, 400);
    assert!(page.contains("授权已过期"), "{page}");
}

#[tokio::test]
async fn the_sandbox_authorize_page_refuses_what_wechat_refuses() {
    let app = TestApp::spawn_on(direct(ApiVersion::V2)).await;
    let authorize = |appid: &str, redirect: &str, state: &str| {
        let q = serde_urlencoded::to_string([
            ("appid", appid),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "snsapi_base"),
            ("state", state),
        ])
        .unwrap();
        format!("{}/sandbox/wechat/connect/oauth2/authorize?{q}", app.url)
    };
    let ours = format!("{}/home/order/wxoauth", app.url);
    let phone = wechat_phone();
    let refused = |page: &str| select_text(&html(page), "#oauth-error").unwrap_or_default();
    let (status, _, page) = get(
        &phone,
        &authorize(SANDBOX_OA_APPID, "https://evil.example/x", "s1"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(refused(&page).contains("10003"), "{page}");
    let (_, _, page) = get(&phone, &authorize("wxnotours", &ours, "s1")).await;
    assert!(refused(&page).contains("appid"), "{page}");
    let (_, _, page) = get(&phone, &authorize(SANDBOX_OA_APPID, &ours, "not_alnum!")).await;
    assert!(refused(&page).contains("state"), "{page}");
    // A desktop browser is told to open the link in WeChat.
    let (_, _, page) = get(&browser(), &authorize(SANDBOX_OA_APPID, &ours, "s1")).await;
    assert!(refused(&page).contains("请在微信客户端打开链接"), "{page}");
    let (status, to, _) = get(&phone, &authorize(SANDBOX_OA_APPID, &ours, "s1")).await;
    assert_eq!(status, 302);
    assert!(to.starts_with(&format!("{ours}?code=")), "{to}");
}

#[tokio::test]
async fn the_bridge_refuses_another_user_a_tampered_sign_and_a_browser_outside_wechat() {
    let app = TestApp::spawn_on(direct(ApiVersion::V3)).await;
    let (id, no) = pc_order(&app, "wxbridge").await;
    let phone = wechat_phone();
    let launch = launch_of(&scan_in_wechat(&app, &phone, &no).await.page);
    let refused = |answer: &Value| {
        assert_eq!(
            answer["err_msg"], "get_brand_wcpay_request:fail",
            "{answer}"
        );
        answer["err_desc"].as_str().unwrap().to_string()
    };
    // Another WeChat user scanning the same QR gets a payment of their own (a prepay_id is
    // bound to its payer), and cannot pay the first user's.
    let other = wechat_phone();
    let theirs = launch_of(&scan_in_wechat(&app, &other, &no).await.page);
    assert_ne!(theirs["package"], launch["package"]);
    let payers: Vec<Option<String>> = app.attempts(id).into_iter().map(|a| a.payer).collect();
    assert_eq!(payers.len(), 2);
    assert!(payers[0].is_some() && payers[1].is_some() && payers[0] != payers[1]);
    let answer = bridge_pay(&app, &other, &launch).await;
    assert!(refused(&answer).contains("下单用户"), "{answer}");
    let mut tampered = launch.clone();
    tampered["nonceStr"] = Value::String("tampered0000000000".into());
    assert!(refused(&bridge_pay(&app, &phone, &tampered).await).contains("签名"));
    let desktop = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let outside = refused(&bridge_pay(&app, &desktop, &launch).await);
    assert_eq!(outside, "请在微信客户端中打开");
    assert_eq!(order_status(&app, id), 1, "nothing was paid");
    let ok = bridge_pay(&app, &phone, &launch).await;
    assert_eq!(ok["err_msg"], "get_brand_wcpay_request:ok", "{ok}");
    app.wait_for_status(id, 2).await;
}

/// The PC shopper's pay page as a phone browser shows it.
async fn phone_pay_page(app: &TestApp, no: &str, ua: &str) -> scraper::Html {
    let res = app
        .browser
        .get(format!("{}/home/order/pay?order_sn={no}", app.url))
        .header("user-agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    html(&res.text().await.unwrap())
}

#[tokio::test]
async fn a_phone_browser_pays_with_wechat_h5_and_comes_back_to_the_result_page() {
    let app = TestApp::spawn_on(direct(ApiVersion::V3)).await;
    let (id, no) = pc_order(&app, "wxh5").await;
    let page = phone_pay_page(&app, &no, PHONE_UA).await;
    let alipay = select_attr(&page, "#phone-alipay", "href").unwrap();
    assert_eq!(
        alipay,
        format!("/home/order/qrpay?id={no}&channel=alipay_wap")
    );
    let wechat = select_attr(&page, "#phone-wechat", "href").unwrap();
    let res = app
        .browser
        .get(absolute(&app, &wechat))
        .header("user-agent", PHONE_UA)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 302);
    let h5 = location(&res);
    assert!(
        h5.starts_with(&format!("{}/sandbox/wxpay/phone?prepay_id=", app.url)),
        "{h5}"
    );
    let a = app.attempts(id).pop().unwrap();
    assert_eq!(
        (a.provider.as_str(), a.channel.as_str()),
        ("wechat_v3", "wx_wap")
    );
    // WeChat's H5 page refuses to open inside WeChat.
    let (_, _, inside) = get(&wechat_phone(), &h5).await;
    assert!(inside.contains("请在微信外打开订单"), "{inside}");
    // In the phone's browser: confirm, then back to the shop's result page.
    let phone = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(PHONE_UA)
        .build()
        .unwrap();
    let (status, _, body) = get(&phone, &h5).await;
    assert_eq!(status, 200);
    let action = select_attr(&html(&body), "form", "action").unwrap();
    let res = phone.post(absolute(&app, &action)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(
        location(&res),
        format!("{}/home/order/payresult?order_sn={no}", app.url)
    );
    app.wait_for_status(id, 2).await;
}

#[tokio::test]
async fn over_v2_the_phone_cashier_says_how_to_pay_with_wechat() {
    let app = TestApp::spawn_on(direct(ApiVersion::V2)).await;
    let (_, no) = pc_order(&app, "wxv2phone").await;
    let page = phone_pay_page(&app, &no, PHONE_UA).await;
    assert!(select_attr(&page, "#phone-alipay", "href").is_some());
    assert!(select_attr(&page, "#phone-wechat", "href").is_none());
    assert!(select_text(&page, "#phone-hint")
        .unwrap()
        .contains("在微信中打开"));
    // In WeChat's own browser: WeChat only (the QR's link, which goes to the cashier), and
    // how to pay with Alipay; in Alipay's, Alipay only.
    let page = phone_pay_page(&app, &no, WECHAT_UA).await;
    assert_eq!(
        select_attr(&page, "#phone-wechat", "href").unwrap(),
        format!("/home/order/qrpay?id={no}")
    );
    assert!(select_attr(&page, "#phone-alipay", "href").is_none());
    assert!(select_text(&page, "#phone-hint")
        .unwrap()
        .contains("浏览器中打开"));
    let page = phone_pay_page(&app, &no, common::ALIPAY_UA).await;
    assert!(select_attr(&page, "#phone-alipay", "href").is_some());
    assert!(select_attr(&page, "#phone-wechat", "href").is_none());
    // A desktop gets no phone cashier.
    let page = phone_pay_page(&app, &no, "Mozilla/5.0 (X11; Linux x86_64) Chrome/126").await;
    assert!(select_attr(&page, "#phone-alipay", "href").is_none());
    // A made-up wx_wap link over v2 shows the scan page, and starts no payment.
    let (status, _) = app
        .pc_get(&format!("/home/order/qrpay?id={no}&channel=wx_wap"))
        .await;
    assert_eq!(status, 200);
    assert!(app.attempts(app.order_by_no(&no).id).is_empty());
}

#[tokio::test]
async fn a_snapshot_pages_visitor_cannot_pay() {
    let app = TestApp::spawn_on(direct(ApiVersion::V2)).await;
    let (id, no) = pc_order(&app, "wxsnapshot").await;
    // WeChat gives a Moments snapshot page's visitor a virtual openid (is_snapshotuser).
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let sandbox = format!("{}/sandbox", app.url).parse().unwrap();
    jar.add_cookie_str("sbx_wx_user=snapshot-visitor; Path=/sandbox", &sandbox);
    let phone = reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(WECHAT_UA)
        .build()
        .unwrap();
    let mut url = format!("{}/home/order/wxcashier?id={no}", app.url);
    let mut last = (0, String::new());
    for _ in 0..4 {
        let (status, to, body) = get(&phone, &url).await;
        last = (status, body);
        if status != 302 {
            break;
        }
        url = absolute(&app, &to);
    }
    assert_eq!(last.0, 403, "{}", last.1);
    assert!(last.1.contains("朋友圈快照页"), "{}", last.1);
    assert!(
        app.attempts(id).is_empty(),
        "no payment for a virtual openid"
    );
}

#[tokio::test]
async fn without_the_shops_own_cashier_the_cashier_pages_do_not_exist() {
    let app = TestApp::spawn().await;
    let (_, no) = pc_order(&app, "wxnocashier").await;
    let (status, _) = app.pc_get(&format!("/home/order/wxcashier?id={no}")).await;
    assert_eq!(status, 404);
    let (status, _) = app.pc_get("/home/order/wxoauth?code=x&state=y").await;
    assert_eq!(status, 404);
    // WeChat scans still go to Ping++'s wx_pub_qr.
    let (status, to, _) = app.open_qr(&no, WECHAT_UA).await;
    assert_eq!(status, 302);
    assert!(to.contains("/sandbox/pingpp/phone/"), "{to}");
}

#[tokio::test]
async fn an_h5_page_is_shown_again_only_within_its_five_minutes() {
    let app = TestApp::spawn_on(direct(ApiVersion::V3)).await;
    let (id, no) = pc_order(&app, "wxh5again").await;
    let url = format!("{}/home/order/qrpay?id={no}&channel=wx_wap", app.url);
    let open = || async {
        let res = app
            .browser
            .get(&url)
            .header("user-agent", PHONE_UA)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 302);
        location(&res)
    };
    let first = open().await;
    assert_eq!(open().await, first, "the same page within its life");
    assert_eq!(app.attempts(id).len(), 1);
    assert_eq!(app.attempts(id)[0].payer.as_deref(), Some("127.0.0.1"));
    // Four minutes on, the page has less than the reuse margin left: a new one.
    app.with_conn(|c| {
        use diesel::prelude::*;
        use jiesuan::models::schema::pay_attempt::dsl as a;
        let earlier = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(4);
        diesel::update(a::pay_attempt.filter(a::order_id.eq(id)))
            .set(a::created_at.eq(earlier))
            .execute(c)
            .unwrap();
    });
    assert_ne!(open().await, first);
    assert_eq!(app.attempts(id).len(), 2);
}

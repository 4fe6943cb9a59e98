//! The shopper's address sent to the platforms (`spbill_create_ip`, `client_ip`) is IPv4:
//! mapped IPv6 unwrapped, `X-Forwarded-For` believed only from trusted proxies, and the
//! server's own address for a shopper on IPv6 only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{test_config, TestApp};
use serde_json::{json, Value};
use std::net::TcpListener;

const SERVER_IP: &str = "198.51.100.20";

/// A wx_lite charge for a fresh order, asked with `headers` through `client`; its client_ip.
async fn charged_ip(
    app: &TestApp,
    user: &str,
    client: &reqwest::Client,
    base: &str,
    xff: Option<&str>,
) -> String {
    let (token, id, _) = app.unpaid_order(user).await;
    let mut req = client
        .post(format!("{base}/api/v1/pay/pingpp"))
        .header("token", token)
        .json(&json!({"id": id, "channel": "wx_lite"}));
    if let Some(v) = xff {
        req = req.header("x-forwarded-for", v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{user}");
    let charge: Value = res.json().await.unwrap();
    charge["client_ip"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let mut config = test_config(&common::fresh_database_url());
    config.server_ip = Some(SERVER_IP.into());
    let untrusting = TestApp::spawn_on(config.clone()).await;
    let spoofed = charged_ip(
        &untrusting,
        "spoof",
        &untrusting.api,
        &untrusting.url,
        Some("203.0.113.9"),
    )
    .await;
    assert_eq!(spoofed, "127.0.0.1", "anyone can write X-Forwarded-For");

    config.database_url = common::fresh_database_url();
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = TestApp::spawn_on(config).await;
    let cases = [
        (Some("10.9.9.9, 203.0.113.9"), "203.0.113.9"),
        (Some("::ffff:203.0.113.10"), "203.0.113.10"),
        (Some("2001:db8::7"), SERVER_IP),
        (None, "127.0.0.1"),
    ];
    for (i, (xff, want)) in cases.into_iter().enumerate() {
        let got = charged_ip(&app, &format!("proxied-{i}"), &app.api, &app.url, xff).await;
        assert_eq!(got, want, "{xff:?}");
    }
}

#[tokio::test]
async fn a_dual_stack_listener_sends_ipv4_and_ipv6_shoppers_get_the_server_ip() {
    let mut config = test_config(&common::fresh_database_url());
    config.server_ip = Some(SERVER_IP.into());
    let app = TestApp::spawn_with_listener(config, TcpListener::bind("[::]:0").unwrap()).await;
    let port = app.url.rsplit(':').next().unwrap().to_string();

    // Over IPv4 the peer is ::ffff:127.0.0.1.
    let got = charged_ip(&app, "mapped", &app.api, &app.url, None).await;
    assert_eq!(got, "127.0.0.1");
    let v6 = format!("http://[::1]:{port}");
    let got = charged_ip(&app, "ipv6-only", &app.api, &v6, None).await;
    assert_eq!(got, SERVER_IP);

    // WeChat JSAPI from both: the sandbox takes nothing but IPv4.
    for (user, base) in [("jsapi-mapped", &app.url), ("jsapi-v6", &v6)] {
        let (token, id, _) = app.unpaid_order(user).await;
        let res = app
            .api
            .post(format!("{base}/api/v1/pay/pre_order"))
            .header("token", token)
            .json(&json!({ "id": id }))
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert_eq!(status, 200, "{user}: {}", res.text().await.unwrap());
    }
}

//! `/metrics`: off unless configured, behind its bearer token when one is set, and counting
//! what the shop did: orders, payments, notifications (a duplicate too), jobs, requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{test_config, wechat_notification, TestApp};
use std::time::Duration;

const TOKEN: &str = "scrape-token-7f3a";

async fn app_with_metrics(token: Option<&str>) -> TestApp {
    let mut config = test_config(&common::fresh_database_url());
    config.metrics = true;
    config.metrics_token = token.map(str::to_string);
    TestApp::spawn_on(config).await
}

/// The metrics text once it has a line starting with `series` (counters are bumped just
/// after the database commits, so a reader may be a moment early).
async fn scrape_until(app: &TestApp, series: &str) -> String {
    let auth = format!("Bearer {TOKEN}");
    for _ in 0..100 {
        let (status, text) = app.scrape(Some(&auth)).await;
        assert_eq!(status, 200, "{text}");
        if text.lines().any(|l| l.starts_with(series)) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {series} in {}", app.scrape(Some(&auth)).await.1);
}

#[tokio::test]
async fn metrics_are_not_served_unless_configured() {
    let app = TestApp::spawn().await;
    let (status, _) = app.scrape(None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn metrics_with_a_token_answer_only_its_bearer() {
    let app = app_with_metrics(Some(TOKEN)).await;
    assert_eq!(app.scrape(None).await.0, 401);
    assert_eq!(app.scrape(Some("Bearer wrong")).await.0, 401);
    assert_eq!(app.scrape(Some(TOKEN)).await.0, 401, "the scheme is needed");
    let (status, text) = app.scrape(Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("# TYPE jiesuan_orders_placed_total counter"),
        "{text}"
    );
    assert!(text.contains("jiesuan_db_pool_connections "), "{text}");
}

#[tokio::test]
async fn metrics_without_a_token_are_open() {
    let app = app_with_metrics(None).await;
    let (status, text) = app.scrape(None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("jiesuan_open_attempts 0"), "{text}");
    // Nothing conflicted on one instance alone (tests/cluster.rs sees it count).
    assert!(text.contains("jiesuan_db_retries_total 0"), "{text}");
}

#[tokio::test]
async fn metrics_count_an_order_its_payment_a_duplicate_and_the_jobs() {
    let app = app_with_metrics(Some(TOKEN)).await;
    let (id, _) = app.paid_wechat_order("metrics-buyer").await;
    let attempt = app.attempts(id).remove(0);
    let duplicate = wechat_notification(
        &app,
        &attempt.out_trade_no,
        attempt.amount,
        attempt.transaction_no.as_deref().unwrap(),
        &app.state.config.wechat.api_key,
    );
    let res = app
        .api
        .post(format!("{}/api/v1/pay/notify", app.url))
        .body(duplicate)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    jiesuan::jobs::tick(&app.state.gateway(), &app.state).await;
    let res = app
        .api
        .get(format!("{}/api/v1/product/1", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let text = scrape_until(
        &app,
        r#"jiesuan_notifications_total{outcome="duplicate",provider="wechat"} 1"#,
    )
    .await;
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(has("jiesuan_orders_placed_total 1"), "{text}");
    assert!(
        has(&format!(
            r#"jiesuan_payments_applied_total{{channel="{}",provider="wechat"}} 1"#,
            attempt.channel
        )),
        "{text}"
    );
    assert!(
        has(r#"jiesuan_notifications_total{outcome="paid",provider="wechat"} 1"#),
        "{text}"
    );
    assert!(has("jiesuan_open_attempts 0"), "{text}");
    assert!(has(r#"jiesuan_refunds{status="pending"} 0"#), "{text}");
    assert!(
        has(r#"jiesuan_job_runs_total{job="timeout_close"} 1"#),
        "{text}"
    );
    // Latency is labelled by route pattern, never by the raw path with its ids.
    assert!(
        text.lines().any(|l| l.starts_with(
            r#"jiesuan_http_request_duration_seconds_count{method="GET",route="/api/v1/product/{id}",status="200"}"#
        )),
        "{text}"
    );
    assert!(!text.contains("/api/v1/product/1"), "{text}");
}

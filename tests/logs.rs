//! Logs operators can use: one INFO line per notification with provider, trade number,
//! verification and outcome; a client's malformed request is no ERROR.
//!
//! This test binary keeps every log line (`common::capture_logs`) and reads them back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{log_lines, wechat_notification, TestApp};
use std::time::Duration;

async fn app() -> TestApp {
    common::capture_logs();
    TestApp::spawn().await
}

/// The notification line of `out_trade_no` with `outcome`, waited for (the sandbox delivers
/// in the background).
async fn notification_line(out_trade_no: &str, outcome: &str) -> String {
    let wanted = |l: &&String| {
        l.starts_with("INFO jiesuan::controllers::notify")
            && l.contains(&format!("out_trade_no={out_trade_no} "))
            && l.ends_with(&format!("outcome={outcome}"))
    };
    for _ in 0..100 {
        if let Some(l) = log_lines().iter().find(wanted) {
            return l.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no notification line for {out_trade_no} {outcome}: {:#?}",
        log_lines()
    );
}

#[tokio::test]
async fn every_notification_logs_provider_trade_verification_and_outcome() {
    let app = app().await;
    let (id, _) = app.paid_wechat_order("log-buyer").await;
    let attempt = app.attempts(id).remove(0);
    let no = attempt.out_trade_no.clone();
    let line = notification_line(&no, "paid").await;
    assert!(
        line.contains("provider=wechat") && line.contains("verified=true"),
        "{line}"
    );

    let forged = wechat_notification(&app, &no, attempt.amount, "4200000000000001", "wrong-key");
    let res = app
        .api
        .post(format!("{}/api/v1/pay/notify", app.url))
        .body(forged.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let line = notification_line(&no, "bad_signature").await;
    assert!(
        line.contains("provider=wechat") && line.contains("verified=false"),
        "{line}"
    );
    // The body (and its signature) stays in pay_log, out of the log.
    let sign = forged.split("<sign>").nth(1).unwrap_or_default();
    let sign = sign.trim_start_matches("<![CDATA[");
    let sign = sign.split([']', '<']).next().unwrap_or_default();
    assert!(!sign.is_empty());
    let leaked: Vec<String> = log_lines()
        .into_iter()
        .filter(|l| l.contains(sign))
        .collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
}

#[tokio::test]
async fn a_clients_malformed_requests_are_not_errors() {
    let app = app().await;
    let token = app.token("clumsy-client").await;
    let res = app
        .api
        .post(format!("{}/api/v1/order", app.url))
        .header("token", &token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .api
        .post(format!("{}/home/notify/pingpp", app.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    notification_line_without_trade("missing_signature").await;
    let errors: Vec<String> = log_lines()
        .into_iter()
        .filter(|l| l.starts_with("ERROR"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// A refused notification without a readable trade number logs `out_trade_no=-`.
async fn notification_line_without_trade(outcome: &str) {
    notification_line("-", outcome).await;
}

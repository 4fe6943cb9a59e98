//! No secret reaches a client or a log: the mini-program login with its platform down,
//! answering 502 with an HTML page, answering garbage, and working.
//!
//! Everything the shop logs goes through the `log` crate, so this test binary installs its
//! own logger (before any server starts, at trace level) and reads every line back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{log_lines, test_config, TestApp};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;

const SECRET: &str = "AppSecret-d41d8cd98f00b204e980";

async fn app_with_login_base(login_base: Option<String>) -> TestApp {
    // The first test to get here installs the logger; TestApp's env_logger then steps aside.
    common::capture_logs();
    let mut config = test_config(&common::fresh_database_url());
    config.wechat.app_secret = SECRET.into();
    config.wechat.login_base = login_base;
    TestApp::spawn_on(config).await
}

/// POSTs a login code; (status, body).
async fn login(app: &TestApp, code: &str) -> (u16, String) {
    let res = app.log_in(code).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

fn assert_no_secret_logged() {
    let lines = log_lines();
    assert!(!lines.is_empty(), "the logger captures");
    for line in &lines {
        assert!(!line.contains(SECRET), "secret in the log: {line}");
    }
}

/// A one-shot HTTP server answering every request with `status` and an HTML page that
/// echoes the request line (as a proxy's error page may); its base URL.
fn echoing_server(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = vec![0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = head.lines().next().unwrap_or_default().to_string();
            let body = format!("<html><body><h1>{status}</h1><p>{line}</p></body></html>");
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    url
}

#[tokio::test]
async fn a_login_platform_that_cannot_be_reached_leaks_no_secret() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let app = app_with_login_base(Some(closed)).await;
    let (status, body) = login(&app, "some-code").await;
    assert_eq!(status, 502, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error_code"], 10004);
    assert_eq!(v["msg"], "微信登录暂时不可用，请稍后再试");
    assert!(
        !body.contains(SECRET) && !body.contains("secret="),
        "{body}"
    );
    assert!(
        log_lines()
            .iter()
            .any(|l| l.contains("wechat login") && l.contains("jscode2session failed")),
        "the failure is logged"
    );
    assert_no_secret_logged();
}

#[tokio::test]
async fn a_login_platform_answering_html_leaks_no_secret() {
    for status in ["502 Bad Gateway", "200 OK"] {
        let app = app_with_login_base(Some(echoing_server(status))).await;
        let (code, body) = login(&app, "some-code").await;
        assert_eq!(code, 502, "{status}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["msg"], "微信登录暂时不可用，请稍后再试", "{status}");
        assert!(!body.contains(SECRET), "{status}: {body}");
    }
    let lines = log_lines();
    assert!(lines.iter().any(|l| l.contains("answered HTTP 502")));
    assert!(lines
        .iter()
        .any(|l| l.contains("jscode2session failed") && l.contains("decoding")));
    assert_no_secret_logged();
}

#[tokio::test]
async fn a_working_login_logs_no_secret_either() {
    // The sandbox's own jscode2session is served by the shop: its access log sees the query.
    let app = app_with_login_base(None).await;
    let token = app.token("quiet-user").await;
    assert!(!token.is_empty());
    let (status, body) = login(&app, "made-up-code").await;
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["msg"], "微信登录失败，请重新登录");
    assert!(log_lines()
        .iter()
        .any(|l| l.contains("/sandbox/wxapi/sns/jscode2session")));
    assert_no_secret_logged();
}

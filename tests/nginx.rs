//! README's deployment, followed: Debian's nginx in front of the shop with
//! `deploy/jiesuan-proxy.conf`, the shop trusting it (`trusted_proxies = 127.0.0.1/32`) and
//! reached at nginx's URL (`public_url`). The shopper's address sent to the platform and
//! the URLs the shop hands out come out right through the proxy.
//!
//! Needs `nginx` (`.ci/run` installs it). Without the `e2e` feature a missing nginx skips the
//! test with a message; with it (CI) a missing nginx fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{html, select_attr, test_config, TestApp, WECHAT_UA};
use serde_json::{json, Value};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The nginx binary: `JIESUAN_NGINX`, else Debian's `/usr/sbin/nginx`, else `nginx` on PATH.
fn nginx_binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var("JIESUAN_NGINX").ok(),
        Some("/usr/sbin/nginx".into()),
        Some("nginx".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// nginx as a child process (not a daemon), killed when dropped.
struct Nginx {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts nginx on a free port, proxying to `upstream` (host:port) with the repository's
/// proxy settings; its pid file, logs and temp paths all in a temp dir of its own.
fn start_nginx(binary: &Path, upstream: &str) -> Nginx {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("jiesuan-nginx-{port}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let snippet = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/jiesuan-proxy.conf");
    let conf = format!(
        "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream jiesuan {{ server {upstream}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ include {snippet}; }}
    }}
}}
"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut nginx = Nginx {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return nginx;
        }
        if let Ok(Some(status)) = nginx.child.try_wait() {
            let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
            panic!("nginx exited ({status}): {log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nginx did not listen on {port}");
}

#[tokio::test]
async fn behind_nginx_the_shopper_address_and_the_public_url_come_out_right() {
    let Some(binary) = nginx_binary() else {
        if cfg!(feature = "e2e") {
            panic!("nginx is not installed (run .ci/run, or apt-get install nginx)");
        }
        eprintln!("skipped: nginx is not installed (apt-get install nginx; CI runs this test)");
        return;
    };
    // The shop's port first: nginx's configuration names it, and the shop's public URL is
    // nginx's.
    let shop = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = shop.local_addr().unwrap().to_string();
    let nginx = start_nginx(&binary, &upstream);
    let mut config = test_config(&common::fresh_database_url());
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    config.public_url = Some(nginx.url.clone());
    config.server_ip = Some("198.51.100.20".into());
    let app = TestApp::spawn_with_listener(config, shop).await;

    // A Ping++ charge asked through nginx by a client that sends its own X-Forwarded-For:
    // nginx appends the client's address (127.0.0.1, trusted), so the shopper is the
    // address before it.
    let (token, id, _) = app.unpaid_order("behind-nginx").await;
    let res = app
        .api
        .post(format!("{}/api/v1/pay/pingpp", nginx.url))
        .header("token", token)
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"id": id, "channel": "wx_lite"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    let charge: Value = res.json().await.unwrap();
    assert_eq!(charge["client_ip"], "203.0.113.9", "{charge}");

    // The pay page, through nginx: its QR link is nginx's URL, and it opens through nginx.
    app.pc_register("nginx_buyer").await;
    app.pc_address().await;
    let no = app.pc_order(1, 1).await;
    let res = app
        .browser
        .get(format!("{}/home/order/pay?order_sn={no}", nginx.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = html(&res.text().await.unwrap());
    let qr = select_attr(&page, "#qr-link", "href").unwrap();
    assert_eq!(qr, format!("{}/home/order/qrpay?id={no}", nginx.url));
    let phone = reqwest::Client::builder()
        .user_agent(WECHAT_UA)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = phone.get(&qr).send().await.unwrap();
    let status = res.status().as_u16();
    let location = common::location(&res);
    assert_eq!(status, 302, "{location} {}", res.text().await.unwrap());
    // The WeChat app is sent on to pay at the platform (the sandbox, mounted in the shop):
    // through nginx as well.
    assert!(
        location.starts_with(&format!("{}/sandbox/", nginx.url)),
        "{location}"
    );
    let access = std::fs::read_to_string(nginx.dir.join("access.log")).unwrap();
    assert!(access.contains("/home/order/qrpay?id="), "{access}");
}

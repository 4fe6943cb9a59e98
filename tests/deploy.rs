//! One binary to deploy: it carries its templates, static files and sandbox keys, serves from
//! any directory, writes nothing before its configuration is valid, lists its commands,
//! backs SQLite up while the shop runs, reports readiness and stops cleanly on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use diesel::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_jiesuan");

/// A fresh empty directory under the system's temp dir.
fn empty_dir(name: &str) -> PathBuf {
    let n: u64 = rand::random();
    let dir = std::env::temp_dir().join(format!("jiesuan-{name}-{n:016x}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary run in `dir` with only the given settings (no inherited `JIESUAN_*`).
fn jiesuan(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("JIESUAN_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn output(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    jiesuan(dir, env).args(args).output().unwrap()
}

/// A running `jiesuan serve` in an empty working directory, on a fresh SQLite database in
/// `data`; stopped with SIGKILL when dropped.
struct Server {
    child: Child,
    url: String,
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(env: &[(&str, &str)]) -> Server {
        Server::start_with(env, |_| Stdio::inherit()).await
    }

    /// `stderr` makes the process's standard error from the data directory.
    async fn start_with(env: &[(&str, &str)], stderr: impl FnOnce(&Path) -> Stdio) -> Server {
        let dir = empty_dir("cwd");
        let data = empty_dir("data");
        let url = sqlite_url(&data);
        // reqwest is built without a default crypto provider (the shop installs ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let mut all = vec![("JIESUAN_BIND", bind.as_str()), ("DATABASE_URL", &url)];
        all.extend_from_slice(env);
        let child = jiesuan(&dir, &all)
            .stdout(Stdio::null())
            .stderr(stderr(&data))
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            url: format!("http://{bind}"),
            data,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = reqwest::get(format!("{}/healthz", server.url)).await {
                if res.status() == 200 {
                    return server;
                }
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("jiesuan exited before serving: {status}");
            }
            assert!(Instant::now() < deadline, "jiesuan did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.url)).await.unwrap()
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.wait_exit()
    }

    fn sigterm(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "jiesuan did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("shop.db").display())
}

#[tokio::test]
async fn the_binary_serves_pages_and_css_from_an_empty_directory() {
    let server = Server::start(&[]).await;
    let home = server.get("/").await;
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("/home/goods/1"));
    assert_eq!(server.get("/home/goods/1").await.status(), 200);
    let css = server.get("/static/css/site.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(
        server.get("/static/img/products/p1.svg").await.status(),
        200
    );
    // Cached copies are revalidated by ETag; HEAD works as for any static file server.
    let etag = css.headers()["etag"].to_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let again = http
        .get(format!("{}/static/css/site.css", server.url))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let head = http
        .head(format!("{}/static/css/site.css", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(server.get("/static/css/nothing.css").await.status(), 404);
    assert_eq!(server.get("/static/../Cargo.toml").await.status(), 404);
}

#[tokio::test]
async fn files_in_the_assets_dir_win_over_the_embedded_ones() {
    let assets = empty_dir("assets");
    std::fs::create_dir_all(assets.join("static/css")).unwrap();
    std::fs::write(assets.join("static/css/site.css"), "body{color:#c00}").unwrap();
    std::fs::create_dir_all(assets.join("templates")).unwrap();
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/base.html"))
            .unwrap();
    std::fs::write(
        assets.join("templates/base.html"),
        base.replacen("<body", "<!-- restyled --><body", 1),
    )
    .unwrap();
    let server = Server::start(&[("JIESUAN_ASSETS_DIR", assets.to_str().unwrap())]).await;
    let css = server
        .get("/static/css/site.css")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(css, "body{color:#c00}");
    let home = server.get("/").await.text().await.unwrap();
    assert!(home.contains("<!-- restyled -->"));
    // The files it does not override are still the embedded ones.
    assert_eq!(server.get("/static/css/admin.css").await.status(), 200);
}

#[test]
fn an_invalid_setting_exits_non_zero_having_written_nothing() {
    let cwd = empty_dir("cwd");
    let out = output(&cwd, &[("JIESUAN_ORDER_TIMEOUT_MINUTES", "soon")], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JIESUAN_ORDER_TIMEOUT_MINUTES"));
    assert_eq!(entries(&cwd), Vec::<String>::new());
}

#[test]
fn a_missing_key_file_stops_the_start_before_any_database_or_session_key_is_made() {
    let cwd = empty_dir("cwd");
    // The default database is data/jiesuan.db under the working directory.
    let out = output(
        &cwd,
        &[("JIESUAN_PINGPP_WEBHOOK_PUBLIC_KEY", "no-such-key.pem")],
        &["serve"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-key.pem"));
    assert_eq!(entries(&cwd), Vec::<String>::new());
}

#[test]
fn a_port_in_use_stops_the_start_before_anything_is_written() {
    let cwd = empty_dir("cwd");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let out = output(&cwd, &[("JIESUAN_BIND", &bind)], &["serve"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
    assert_eq!(entries(&cwd), Vec::<String>::new());
}

#[test]
fn help_lists_every_command() {
    let cwd = empty_dir("cwd");
    for flag in ["--help", "help", "-h"] {
        let out = output(&cwd, &[("JIESUAN_ORDER_TIMEOUT_MINUTES", "soon")], &[flag]);
        assert!(out.status.success(), "{flag}");
        let text = String::from_utf8_lossy(&out.stdout);
        for command in [
            "serve",
            "migrate",
            "create-admin",
            "reset-admin-password",
            "backup",
            "check-config",
            "reconcile",
        ] {
            assert!(text.contains(command), "{flag} lists {command}");
        }
    }
    let out = output(&cwd, &[], &["no-such-command"]);
    assert!(!out.status.success());
    assert_eq!(entries(&cwd), Vec::<String>::new());
}

#[test]
fn check_config_prints_the_effective_configuration_without_secrets() {
    let cwd = empty_dir("cwd");
    let secret = "ab".repeat(64);
    let out = output(
        &cwd,
        &[
            ("JIESUAN_ORDER_TIMEOUT_MINUTES", "45"),
            ("JIESUAN_SESSION_SECRET", &secret),
            ("DATABASE_URL", "mysql://shop:hunter2@db.example/shop"),
        ],
        &["check-config"],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("order_timeout_minutes: 45"), "{text}");
    assert!(text.contains("<redacted>"));
    assert!(!text.contains(&secret));
    assert!(!text.contains("hunter2"));
    assert!(!text.contains("sandboxsandboxsandbox"));
    assert_eq!(entries(&cwd), Vec::<String>::new());

    let out = output(
        &cwd,
        &[("JIESUAN_ORDER_TIMEOUT_MINUTES", "0")],
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("order_timeout_minutes"));
    assert_eq!(entries(&cwd), Vec::<String>::new());
}

#[test]
fn check_config_takes_alipay_certificate_mode_whole_and_refuses_half_of_it() {
    let cwd = empty_dir("cwd");
    let config = cwd.join("cert.toml");
    let config_env = [("JIESUAN_CONFIG", config.to_str().unwrap())];
    let check = |certs: &str| {
        let text = format!("cashier = \"direct\"\n[alipay]\n{certs}");
        std::fs::write(&config, text).unwrap();
        let out = output(&cwd, &config_env, &["check-config"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let whole = "app_cert = \"keys/sandbox/alipay_app_cert.pem\"\n\
                 alipay_cert = \"keys/sandbox/alipay_platform_cert.pem\"\n\
                 alipay_root_cert = \"keys/sandbox/alipay_root_cert.pem\"\n";
    let (ok, err) = check(whole);
    assert!(ok, "{err}");
    let (ok, err) = check("app_cert = \"keys/sandbox/alipay_app_cert.pem\"\n");
    assert!(!ok);
    assert!(
        err.contains("alipay.alipay_cert and alipay.alipay_root_cert missing"),
        "{err}"
    );
    let (ok, err) = check(&whole.replace("keys/sandbox/alipay_root_cert.pem", "gone.crt"));
    assert!(!ok);
    assert!(err.contains("alipay.alipay_root_cert (gone.crt)"), "{err}");
    assert_eq!(entries(&cwd), vec!["cert.toml".to_string()]);
}

#[tokio::test]
async fn backup_copies_a_running_shops_sqlite_database() {
    let data = empty_dir("data");
    let url = sqlite_url(&data);
    let app = TestApp::spawn_on(common::test_config(&url)).await;
    let token = app.buyer("backup-buyer").await;
    let (status, placed) = app.place(&token, &[(1, 2), (3, 1)]).await;
    assert_eq!(status, 200, "{placed}");
    let order_no = placed["order_no"].as_str().unwrap().to_string();

    let copy = empty_dir("backup").join("copy.db");
    let copy_arg = copy.to_str().unwrap().to_string();
    let cwd = empty_dir("cwd");
    let out = output(&cwd, &[("DATABASE_URL", &url)], &["backup", &copy_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The shop keeps serving while and after the copy is taken.
    let (status, _) = app.place(&token, &[(2, 1)]).await;
    assert_eq!(status, 200);

    use jiesuan::models::schema::orders;
    let mut conn = SqliteConnection::establish(&copy_arg).unwrap();
    let numbers: Vec<String> = orders::table
        .select(orders::order_no)
        .load(&mut conn)
        .unwrap();
    assert_eq!(numbers, vec![order_no]);

    // A second backup to the same file is refused rather than overwriting it.
    let out = output(&cwd, &[("DATABASE_URL", &url)], &["backup", &copy_arg]);
    assert!(!out.status.success());
}

#[test]
fn backup_points_the_servers_to_their_own_dump_tools() {
    let cwd = empty_dir("cwd");
    let out = output(
        &cwd,
        &[("DATABASE_URL", "mysql://root@127.0.0.1:1/shop")],
        &["backup", "x.db"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mysqldump"));
    let out = output(
        &cwd,
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/shop")],
        &["backup", "x.db"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    assert_eq!(entries(&cwd), Vec::<String>::new());
}

#[tokio::test]
async fn readyz_is_503_while_a_migration_is_pending_and_healthz_stays_200() {
    let app = TestApp::spawn().await;
    let res = reqwest::get(format!("{}/readyz", app.url)).await.unwrap();
    assert_eq!(res.status(), 200);
    app.with_conn(|c| {
        diesel::sql_query(
            "DELETE FROM __diesel_schema_migrations WHERE version = (SELECT v FROM \
             (SELECT MAX(version) AS v FROM __diesel_schema_migrations) AS latest)",
        )
        .execute(c)
        .unwrap();
    });
    let res = reqwest::get(format!("{}/readyz", app.url)).await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["pending_migrations"], 1);
    let res = reqwest::get(format!("{}/healthz", app.url)).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn sigterm_lets_the_binary_finish_and_exit_zero() {
    let mut server = Server::start(&[
        ("JIESUAN_SWEEP_INTERVAL_SECONDS", "1"),
        ("JIESUAN_SHUTDOWN_GRACE_SECONDS", "5"),
    ])
    .await;
    assert_eq!(server.get("/readyz").await.status(), 200);
    let status = server.terminate();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn every_request_has_an_id_echoed_back_and_in_the_access_log() {
    let server = Server::start_with(&[("RUST_LOG", "info")], |data| {
        Stdio::from(std::fs::File::create(data.join("stderr.log")).unwrap())
    })
    .await;
    let log_path = server.data.join("stderr.log");
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/", server.url))
        .header("X-Request-Id", "edge-4f1c.7:a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "edge-4f1c.7:a_b");
    let made = server.get("/healthz").await;
    let made = made.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made.len(), 16, "{made}");
    assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
    // An id that is not a plain token is replaced, not copied into the log.
    let res = http
        .get(format!("{}/", server.url))
        .header("X-Request-Id", "forged \" 200 line")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "forged \" 200 line");
    // A client's malformed request is its fault: logged below ERROR.
    let res = http
        .post(format!("{}/api/v1/token/user", server.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = http
        .post(format!("{}/api/v1/pay/notify", server.url))
        .body("<xml><broken>")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_client_error());

    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains(&format!("id={made}")) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.contains("id=edge-4f1c.7:a_b"), "{text}");
    assert!(text.contains(&format!("id={made}")), "{text}");
    assert!(!text.contains("forged"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
}

#[tokio::test]
async fn a_request_in_flight_at_sigterm_is_answered_before_the_exit() {
    use std::io::{Read, Write};
    let mut server = Server::start(&[("JIESUAN_SHUTDOWN_GRACE_SECONDS", "10")]).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    let body = r#"{"user":"in-flight"}"#;
    write!(
        tcp,
        "POST /sandbox/control/wx_login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..5]
    )
    .unwrap();
    tcp.flush().unwrap();
    // Give the server the headers, then ask it to stop while the body is still coming.
    std::thread::sleep(Duration::from_millis(300));
    server.sigterm();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    // New connections are refused meanwhile.
    assert!(reqwest::get(format!("{}/healthz", server.url))
        .await
        .is_err());
    tcp.write_all(&body.as_bytes()[5..]).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"code\""), "{answer}");
    let status = server.wait_exit();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn reconcile_runs_a_day_from_the_command_line() {
    let server = Server::start(&[]).await;
    let db = sqlite_url(&server.data);
    let cwd = empty_dir("cwd");
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("JIESUAN_PUBLIC_URL", server.url.as_str()),
    ];
    // Today's bill is not made yet: the day is recorded as not ready, and said so.
    let today = chrono::Utc::now()
        .with_timezone(&jiesuan::domain::shanghai())
        .date_naive()
        .to_string();
    let out = output(&cwd, &env, &["reconcile", "--date", &today]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("wechat {today}: not_ready")),
        "{stdout}"
    );
    // Yesterday had no trade: a clean, empty day.
    let out = output(&cwd, &env, &["reconcile"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(": done — 0 payment(s)"), "{stdout}");
    let out = output(&cwd, &env, &["reconcile", "--date", "2026-13-01"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
}

//! Admin sessions can be revoked: a password reset ends every session of that admin, a
//! removed admin (demoted or deleted) is logged out on its next request, on any instance.
//! `create-admin` follows the shop's registration rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{test_config, TestApp};
use diesel::prelude::*;
use jiesuan::models::schema::users;

/// Another browser (its own cookie jar) logged in as `boss` on `app`.
async fn second_browser(app: &TestApp, password: &str) -> reqwest::Client {
    let browser = common::browser();
    app.admin_login_in(&browser, "boss", password).await;
    browser
}

/// Status and Location of `GET /admin/orders` for this browser.
async fn orders_page(app: &TestApp, browser: &reqwest::Client) -> (u16, String) {
    let res = browser
        .get(format!("{}/admin/orders", app.url))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), common::location(&res))
}

/// What a browser without a standing admin session gets.
fn logged_out() -> (u16, String) {
    (303, "/admin/login?next=%2Fadmin%2Forders".into())
}

/// Runs the `jiesuan` binary against the test's database.
fn jiesuan(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_jiesuan"))
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env("JIESUAN_SEED_DEMO_DATA", "false")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_password_reset_from_the_command_line_ends_every_session_of_that_admin() {
    let app = TestApp::spawn().await;
    app.admin_login().await;
    let other = second_browser(&app, "boss-pass-123").await;
    // Another instance on the same database (with its own cookie key).
    let twin = TestApp::spawn_on(test_config(&app.database_url)).await;
    let on_twin = second_browser(&twin, "boss-pass-123").await;
    assert_eq!(orders_page(&app, &app.browser).await.0, 200);
    assert_eq!(orders_page(&app, &other).await.0, 200);
    assert_eq!(orders_page(&twin, &on_twin).await.0, 200);

    let out = jiesuan(&app, &["reset-admin-password", "boss", "short"]);
    assert!(!out.status.success(), "a too short password is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("密码长度"));
    let out = jiesuan(&app, &["reset-admin-password", "nobody", "new-pass-456"]);
    assert!(!out.status.success(), "no such admin");
    let out = jiesuan(&app, &["reset-admin-password", "boss", "new-pass-456"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(orders_page(&app, &app.browser).await, logged_out());
    assert_eq!(orders_page(&app, &other).await, logged_out());
    assert_eq!(orders_page(&twin, &on_twin).await, logged_out());
    let again = second_browser(&twin, "new-pass-456").await;
    assert_eq!(orders_page(&twin, &again).await.0, 200);

    let csrf = app.pc_csrf("/admin/login").await;
    let (status, _, _) = app
        .pc_post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("username", "boss"),
                ("password", "boss-pass-123"),
            ],
        )
        .await;
    assert_eq!(status, 422, "the old password no longer works");
}

#[tokio::test]
async fn a_demoted_or_deleted_admin_is_logged_out_on_the_next_request() {
    let app = TestApp::spawn().await;
    app.admin_login().await;
    let other = second_browser(&app, "boss-pass-123").await;
    assert_eq!(orders_page(&app, &app.browser).await.0, 200);
    assert_eq!(orders_page(&app, &other).await.0, 200);

    let demote = diesel::update(users::table.filter(users::username.eq("boss")))
        .set(users::scope.eq(16))
        .execute(&mut app.conn())
        .unwrap();
    assert_eq!(demote, 1);
    assert_eq!(orders_page(&app, &app.browser).await, logged_out());
    // Made admin again, the revoked session stays revoked: it was cleared.
    diesel::update(users::table.filter(users::username.eq("boss")))
        .set(users::scope.eq(32))
        .execute(&mut app.conn())
        .unwrap();
    assert_eq!(orders_page(&app, &app.browser).await, logged_out());

    diesel::delete(users::table.filter(users::username.eq("boss")))
        .execute(&mut app.conn())
        .unwrap();
    assert_eq!(orders_page(&app, &other).await, logged_out());
}

#[tokio::test]
async fn create_admin_follows_the_registration_rules() {
    let app = TestApp::spawn().await;
    for (args, says) in [
        (["create-admin", "x", "long-enough-1"], "用户名"),
        (["create-admin", "bad name!", "long-enough-1"], "用户名"),
        (["create-admin", "chief", "short"], "密码长度"),
    ] {
        let out = jiesuan(&app, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}"
        );
    }
    let out = jiesuan(&app, &["create-admin", "chief", "long-enough-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = jiesuan(&app, &["create-admin", "chief", "long-enough-2"]);
    assert!(!out.status.success(), "the name is taken");
    assert!(String::from_utf8_lossy(&out.stderr).contains("已被注册"));
    let scope: i32 = users::table
        .filter(users::username.eq("chief"))
        .select(users::scope)
        .first(&mut app.conn())
        .unwrap();
    assert_eq!(scope, 32);
}

//! The test harness: `TestApp::spawn()` starts the real server on port 0 against a fresh
//! database of the backend under test, with the sandbox as the payment platform.
//!
//! The backend comes from `JIESUAN_TEST_DB`: `sqlite` (default, a temp file per test), or a
//! server URL (`mysql://root@127.0.0.1:3306/test`, `postgres://postgres@127.0.0.1:5432/test`)
//! on which each test creates its own database `jt_<random>`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod wechat_v3;

#[cfg(any(feature = "mysql", feature = "postgres"))]
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use jiesuan::config::Config;
use jiesuan::db::{Backend, Conn, Pool};
use jiesuan::payment::wechat::sign::{sign, Params, SignType};
use jiesuan::payment::wechat::xml::to_xml;
use jiesuan::startup::{build_state, run, AppState};
use rand::Rng;
use serde_json::{json, Value};
use std::net::TcpListener;

pub struct TestApp {
    pub url: String,
    pub pool: Pool,
    pub state: AppState,
    pub database_url: String,
    /// Follows no redirects and keeps cookies: a browser one step at a time.
    pub browser: reqwest::Client,
    pub api: reqwest::Client,
}

/// A browser one step at a time: follows no redirects, keeps its own cookies.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn random_suffix() -> String {
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

/// A URL of a fresh, empty database of the backend under test.
pub fn fresh_database_url() -> String {
    fresh_database_on(&std::env::var("JIESUAN_TEST_DB").unwrap_or_else(|_| "sqlite".into()))
}

/// A URL of a fresh, empty database on the server `base` names (its database part replaced).
pub fn fresh_database_on(base: &str) -> String {
    let base = base.to_string();
    let name = format!("jt_{}", random_suffix());
    match Backend::of_url(&base) {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("jiesuan-{name}"));
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}", dir.join("shop.db").display())
        }
        Backend::Mysql => {
            #[cfg(feature = "mysql")]
            {
                let mut c = diesel::MysqlConnection::establish(&base).expect("connect to MariaDB");
                c.batch_execute(&format!(
                    "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                ))
                .unwrap();
            }
            replace_db_name(&base, &name)
        }
        Backend::Postgres => {
            #[cfg(feature = "postgres")]
            {
                let mut c = diesel::PgConnection::establish(&without_tls(&base))
                    .expect("connect to PostgreSQL");
                c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            }
            without_tls(&replace_db_name(&base, &name))
        }
    }
}

/// The local test server needs no TLS, and leaving it off keeps OpenSSL's exit-time cleanup
/// from racing server threads that still hold TLS connections when a test binary exits
/// (seen once as "double free or corruption" after every test had passed).
fn without_tls(url: &str) -> String {
    if url.contains("sslmode=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=disable")
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (head, _) = url
        .rsplit_once('/')
        .expect("a database URL ends with /name");
    format!("{head}/{name}")
}

pub fn test_config(database_url: &str) -> Config {
    let mut config = Config {
        database_url: database_url.to_string(),
        bind: "127.0.0.1:0".into(),
        session_secret: Some(
            hex::encode(rand::thread_rng().gen::<[u8; 32]>())
                + &hex::encode(rand::thread_rng().gen::<[u8; 32]>()),
        ),
        db_pool_size: 8,
        ..Config::default()
    };
    config.seed_demo_data = true;
    // Tests drive the sweep themselves where they need it.
    config.sweep_interval_seconds = 0;
    // The daily reconciliation only where a test asks for it, whatever the hour in Beijing.
    config.reconcile_hour = 24;
    config
}

impl TestApp {
    /// A server on a fresh database seeded with the demo products.
    pub async fn spawn() -> TestApp {
        let database_url = fresh_database_url();
        TestApp::spawn_on(test_config(&database_url)).await
    }

    /// A server with this configuration (a second instance can share a database).
    pub async fn spawn_on(config: Config) -> TestApp {
        TestApp::spawn_with_listener(config, TcpListener::bind("127.0.0.1:0").unwrap()).await
    }

    /// A server on `listener` (e.g. a dual-stack `[::]:0`); the harness, and the shop itself
    /// when the listener is on every address, reach it at 127.0.0.1.
    pub async fn spawn_with_listener(mut config: Config, listener: TcpListener) -> TestApp {
        let _ = env_logger::builder().is_test(true).try_init();
        let addr = listener.local_addr().unwrap();
        let port = addr.port();
        if config.public_url.is_none() && addr.ip().is_unspecified() {
            config.public_url = Some(format!("http://127.0.0.1:{port}"));
        }
        let database_url = config.database_url.clone();
        let state = tokio::task::spawn_blocking(move || {
            let state = build_state(config).expect("build state");
            let mut conn = state.pool.get().unwrap();
            jiesuan::services::seed::products(&mut conn).unwrap();
            state
        })
        .await
        .unwrap();
        let server = run(listener, state.clone()).unwrap();
        // The test's own copy reaches the platforms where the server does.
        let mut state = state;
        state.public_url = format!("http://127.0.0.1:{port}");
        tokio::spawn(server);
        let browser = browser();
        TestApp {
            url: format!("http://127.0.0.1:{port}"),
            pool: state.pool.clone(),
            state,
            database_url,
            browser,
            api: reqwest::Client::new(),
        }
    }

    pub fn conn(&self) -> jiesuan::db::PooledConn {
        self.pool.get().unwrap()
    }

    /// What `wx.login` gives the mini-program on `user`'s phone: a fresh single-use code.
    pub async fn login_code(&self, user: &str) -> String {
        let res = self
            .api
            .post(format!("{}/sandbox/control/wx_login", self.url))
            .json(&json!({ "user": user }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "wx.login for {user}");
        let v: Value = res.json().await.unwrap();
        v["code"].as_str().unwrap().to_string()
    }

    /// Logs the mini-program user `user` in (a fresh `wx.login` code each time: the same
    /// user, a new token); returns the token.
    pub async fn token(&self, user: &str) -> String {
        let code = self.login_code(user).await;
        let res = self.log_in(&code).await;
        assert_eq!(res.status(), 200, "token for {user}");
        let v: Value = res.json().await.unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// `POST /api/v1/token/user {code}`.
    pub async fn log_in(&self, code: &str) -> reqwest::Response {
        self.api
            .post(format!("{}/api/v1/token/user", self.url))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap()
    }

    /// A token user with an address: ready to order.
    pub async fn buyer(&self, code: &str) -> String {
        let token = self.token(code).await;
        let res = self
            .post_json("/api/v1/address", &token, &sample_address())
            .await;
        assert_eq!(res.status(), 201);
        token
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.api
            .post(format!("{}{path}", self.url))
            .header("token", token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_api(&self, path: &str, token: &str) -> reqwest::Response {
        self.api
            .get(format!("{}{path}", self.url))
            .header("token", token)
            .send()
            .await
            .unwrap()
    }

    /// Places an order through the API and returns the JSON answer.
    pub async fn place(&self, token: &str, lines: &[(i32, i64)]) -> (u16, Value) {
        let products: Vec<Value> = lines
            .iter()
            .map(|(id, n)| json!({"product_id": id, "count": n}))
            .collect();
        let res = self
            .post_json("/api/v1/order", token, &json!({ "products": products }))
            .await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub fn stock(&self, product_id: i32) -> i32 {
        use jiesuan::models::schema::products;
        products::table
            .find(product_id)
            .select(products::stock)
            .first(&mut self.conn())
            .unwrap()
    }

    pub fn set_stock(&self, product_id: i32, stock: i32) {
        use jiesuan::models::schema::products;
        diesel::update(products::table.find(product_id))
            .set(products::stock.eq(stock))
            .execute(&mut self.conn())
            .unwrap();
    }

    pub fn order_count(&self) -> i64 {
        use jiesuan::models::schema::{order_product, orders};
        let n: i64 = orders::table.count().get_result(&mut self.conn()).unwrap();
        let lines: i64 = order_product::table
            .count()
            .get_result(&mut self.conn())
            .unwrap();
        assert!(n > 0 || lines == 0, "order_product rows without orders");
        n
    }

    /// All stock, by product id: the "nothing changed" check.
    pub fn all_stock(&self) -> Vec<(i32, i32)> {
        use jiesuan::models::schema::products;
        products::table
            .select((products::id, products::stock))
            .order(products::id.asc())
            .load(&mut self.conn())
            .unwrap()
    }

    pub fn with_conn<T>(&self, f: impl FnOnce(&mut Conn) -> T) -> T {
        f(&mut self.conn())
    }
}

pub fn sample_address() -> Value {
    json!({
        "name": "张三", "mobile": "13800138000", "province": "广东省",
        "city": "深圳市", "district": "南山区", "detail": "科技园南路 1 号"
    })
}

/// Parses HTML for CSS-selector assertions.
pub fn html(text: &str) -> scraper::Html {
    scraper::Html::parse_document(text)
}

/// The text of the first element matching `selector`, trimmed.
pub fn select_text(doc: &scraper::Html, selector: &str) -> Option<String> {
    let sel = scraper::Selector::parse(selector).unwrap();
    doc.select(&sel)
        .next()
        .map(|e| e.text().collect::<String>().trim().to_string())
}

pub fn count_matches(doc: &scraper::Html, selector: &str) -> usize {
    let sel = scraper::Selector::parse(selector).unwrap();
    doc.select(&sel).count()
}

/// The value of attribute `attr` on the first element matching `selector`.
pub fn select_attr(doc: &scraper::Html, selector: &str, attr: &str) -> Option<String> {
    let sel = scraper::Selector::parse(selector).unwrap();
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr(attr).map(str::to_string))
}

/// Status code of an order.
pub fn order_status(app: &TestApp, order_id: i32) -> i32 {
    use jiesuan::models::schema::orders;
    orders::table
        .find(order_id)
        .select(orders::status)
        .first(&mut app.conn())
        .unwrap()
}

impl TestApp {
    /// A buyer with an order for one unit of the first product (id 1, but a Galera node
    /// hands out ids with its own offset): (token, order id, order no).
    pub async fn unpaid_order(&self, code: &str) -> (String, i32, String) {
        let token = self.buyer(code).await;
        let first = self.all_stock().first().map_or(1, |p| p.0);
        let (status, v) = self.place(&token, &[(first, 1)]).await;
        assert_eq!(status, 200, "{v}");
        let id = v["order_id"].as_i64().unwrap() as i32;
        (token, id, v["order_no"].as_str().unwrap().to_string())
    }

    /// A buyer's order and its WeChat NATIVE attempt (`/api/v1/pay/native`):
    /// (token, order id, out_trade_no, code_url).
    pub async fn native_order(&self, code: &str) -> (String, i32, String, String) {
        let (token, id, _) = self.unpaid_order(code).await;
        let res = self
            .post_json("/api/v1/pay/native", &token, &json!({ "id": id }))
            .await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        let no = v["out_trade_no"].as_str().unwrap().to_string();
        (token, id, no, v["code_url"].as_str().unwrap().to_string())
    }

    /// `POST /sandbox/control/rotate_cert` (WeChat Pay APIv3): (status, answer).
    pub async fn rotate_cert(&self, body: Value) -> (u16, Value) {
        let res = self
            .api
            .post(format!("{}/sandbox/control/rotate_cert", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    /// A NATIVE attempt for a fresh order: (token, order id, out_trade_no, amount).
    pub async fn native_attempt(&self, code: &str) -> (String, i32, String, i64) {
        let (token, id, no, code_url) = self.native_order(code).await;
        assert!(code_url.starts_with("weixin://wxpay/bizpayurl?pr="));
        (token, id, no, self.attempts(id)[0].amount)
    }

    /// `GET /metrics` with this `Authorization` header, if any: (status, text).
    pub async fn scrape(&self, auth: Option<&str>) -> (u16, String) {
        let mut req = self.api.get(format!("{}/metrics", self.url));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// Asserts that every background job ran, each about once per one-second interval over
    /// `elapsed` seconds (one instance's rate, however many instances tick), with an `ok`.
    pub fn assert_jobs_ran_once_per_interval(&self, elapsed: f64) {
        use jiesuan::models::schema::job_lease;
        let rows: Vec<(String, i64, Option<String>)> = self.with_conn(|c| {
            job_lease::table
                .select((job_lease::name, job_lease::runs, job_lease::last_outcome))
                .order(job_lease::name.asc())
                .load(c)
                .unwrap()
        });
        // A day's reconciliation holds a lease of its own while it runs (from
        // `reconcile_hour`, the daily job reconciles yesterday).
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| !r.0.starts_with("reconcile:"))
            .collect();
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            names,
            [
                jiesuan::jobs::CALLBACK_HEALTH,
                jiesuan::jobs::DAILY_RECONCILE,
                jiesuan::jobs::RECONCILIATION_SWEEP,
                jiesuan::jobs::REFUND_SWEEP,
                jiesuan::jobs::SHIPPING_UPLOAD,
                jiesuan::jobs::TIMEOUT_CLOSE,
            ]
        );
        // One instance alone runs each job about once a second (the first tick at once);
        // several without leases would run it as many times as often.
        let once_per_interval = elapsed.floor() as i64 + 2;
        for (name, runs, outcome) in &rows {
            assert!(
                (2..=once_per_interval).contains(runs),
                "{name} ran {runs} times in {elapsed:.1}s"
            );
            assert!(
                outcome.as_deref().unwrap_or("").starts_with("ok"),
                "{name}: {outcome:?}"
            );
        }
    }

    /// Waits (up to 10 s) until the order has `status`; panics otherwise.
    pub async fn wait_for_status(&self, order_id: i32, status: i32) {
        for _ in 0..200 {
            if order_status(self, order_id) == status {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "order {order_id} never reached status {status} (is {})",
            order_status(self, order_id)
        );
    }

    /// Presses 确认支付 in the sandbox (WeChat by out_trade_no, Ping++ by charge id).
    pub async fn sandbox_pay(&self, body: Value) -> Value {
        let res = self
            .api
            .post(format!("{}/sandbox/control/pay", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Presses 确认支付 for a WeChat trade the sandbox must refuse to pay: why it refused.
    pub async fn sandbox_pay_refused(&self, out_trade_no: &str) -> String {
        let res = self
            .api
            .post(format!("{}/sandbox/control/pay", self.url))
            .json(&json!({ "out_trade_no": out_trade_no }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{out_trade_no} was paid");
        res.text().await.unwrap()
    }

    pub async fn set_faults(&self, rule: Value) {
        self.sandbox_control("faults", rule).await;
    }

    /// POSTs a command to the sandbox's control API (`faults`, `clock`, `forget`…); it
    /// answers 204.
    pub async fn sandbox_control(&self, path: &str, body: Value) {
        let res = self
            .api
            .post(format!("{}/sandbox/control/{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{path}");
    }

    /// What the sandbox's control API shows at `path` (`deliveries?…`, `shipping`…).
    pub async fn sandbox_view<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.api
            .get(format!("{}/sandbox/control/{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn deliveries(&self, out_trade_no: &str) -> Vec<Value> {
        self.sandbox_view(&format!("deliveries?out_trade_no={out_trade_no}"))
            .await
    }

    /// The attempts of an order.
    pub fn attempts(&self, order_id: i32) -> Vec<jiesuan::models::pay::PayAttempt> {
        jiesuan::models::pay::attempts_of(&mut self.conn(), order_id).unwrap()
    }

    /// `pay_log` rows of an order: (kind, verified, outcome, has a dedupe key).
    pub fn pay_logs(&self, order_id: i32) -> Vec<(String, bool, String, bool)> {
        jiesuan::models::pay::logs_of_order(&mut self.conn(), order_id)
            .unwrap()
            .into_iter()
            .map(|l| (l.kind, l.verified, l.outcome, l.dedupe_key.is_some()))
            .collect()
    }

    /// All pay_log rows, however related.
    pub fn pay_log_count(&self) -> i64 {
        jiesuan::models::pay::log_count(&mut self.conn()).unwrap()
    }

    /// Sends `n` copies of the same request body, `at_once` at a time; returns (status, body).
    pub async fn storm(
        &self,
        urls: &[String],
        headers: &[(&str, String)],
        body: &str,
        n: usize,
        at_once: usize,
    ) -> Vec<(u16, String)> {
        use futures::StreamExt;
        let client = reqwest::Client::new();
        futures::stream::iter(0..n)
            .map(|i| {
                let mut req = client.post(&urls[i % urls.len()]).body(body.to_string());
                for (k, v) in headers {
                    req = req.header(*k, v.clone());
                }
                async move {
                    let res = req.send().await.unwrap();
                    (res.status().as_u16(), res.text().await.unwrap())
                }
            })
            .buffer_unordered(at_once)
            .collect()
            .await
    }
}

/// The PC site, one browser step at a time (cookies kept, redirects not followed).
impl TestApp {
    pub async fn pc_get(&self, path: &str) -> (u16, String) {
        let res = self
            .browser
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// The CSRF token of the form on a page.
    pub async fn pc_csrf(&self, path: &str) -> String {
        let (_, body) = self.pc_get(path).await;
        select_attr(&html(&body), "input[name=csrf]", "value").expect("a form with csrf")
    }

    /// POSTs a form; returns (status, Location header, body).
    pub async fn pc_post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let res = self
            .browser
            .post(format!("{}{path}", self.url))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let location = location(&res);
        (status, location, res.text().await.unwrap())
    }

    pub async fn pc_register(&self, name: &str) {
        let token = self.pc_csrf("/home/register").await;
        let (status, location, _) = self
            .pc_post(
                "/home/register",
                &[
                    ("csrf", &token),
                    ("username", name),
                    ("password", "secret-123"),
                    ("password2", "secret-123"),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!((status, location.as_str()), (303, "/"));
    }

    pub async fn pc_address(&self) {
        let token = self.pc_csrf("/home/address").await;
        let (status, _) = self.pc_save_address(&token, "/home/order/checkout").await;
        assert_eq!(status, 303);
    }

    /// Saves the sample address with this CSRF token and `next`: (status, Location).
    pub async fn pc_save_address(&self, csrf: &str, next: &str) -> (u16, String) {
        let (status, location, _) = self
            .pc_post(
                "/home/address",
                &[
                    ("csrf", csrf),
                    ("name", "李四"),
                    ("mobile", "13900139000"),
                    ("province", "浙江省"),
                    ("city", "杭州市"),
                    ("district", "西湖区"),
                    ("detail", "文三路 100 号"),
                    ("next", next),
                ],
            )
            .await;
        (status, location)
    }

    /// Puts `count` of a product in the cart and places the order; returns its order number.
    pub async fn pc_order(&self, product_id: i32, count: i32) -> String {
        let token = self.pc_csrf(&format!("/home/goods/{product_id}")).await;
        let (pid, n) = (product_id.to_string(), count.to_string());
        self.pc_post(
            "/home/cart/add",
            &[("csrf", &token), ("product_id", &pid), ("count", &n)],
        )
        .await;
        let (status, location, _) = self.pc_post("/home/order/save", &[("csrf", &token)]).await;
        assert_eq!(status, 303);
        location
            .strip_prefix("/home/order/pay?order_sn=")
            .unwrap()
            .to_string()
    }

    /// Opens the QR's URL (`/home/order/qrpay?id=`) as the app with User-Agent `ua` would,
    /// following no redirect: (status, Location, body).
    pub async fn open_qr(&self, order_no: &str, ua: &str) -> (u16, String, String) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(ua)
            .build()
            .unwrap();
        let res = client
            .get(format!("{}/home/order/qrpay?id={order_no}", self.url))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let location = location(&res);
        (status, location, res.text().await.unwrap())
    }

    pub fn order_by_no(&self, order_no: &str) -> jiesuan::models::Order {
        jiesuan::models::order::find_by_no(&mut self.conn(), order_no)
            .unwrap()
            .unwrap()
    }
}

impl TestApp {
    /// Creates an admin `boss` and logs the browser client in as it.
    pub async fn admin_login(&self) {
        self.create_admin("boss", "boss-pass-123");
        self.admin_login_in(&self.browser, "boss", "boss-pass-123")
            .await;
    }

    /// Creates a scope-32 user.
    pub fn create_admin(&self, username: &str, password: &str) {
        let cred = jiesuan::validators::Credentials {
            username: username.into(),
            password: password.into(),
        };
        jiesuan::services::account::register(
            &mut self.conn(),
            &cred,
            jiesuan::domain::Scope::Admin,
        )
        .unwrap();
    }

    /// Logs `browser` in through /admin/login; it must land on /admin.
    pub async fn admin_login_in(&self, browser: &reqwest::Client, username: &str, password: &str) {
        let page = browser
            .get(format!("{}/admin/login", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = select_attr(&html(&page), "input[name=csrf]", "value").unwrap();
        let res = browser
            .post(format!("{}/admin/login", self.url))
            .form(&[
                ("csrf", csrf.as_str()),
                ("username", username),
                ("password", password),
                ("next", "/admin"),
            ])
            .send()
            .await
            .unwrap();
        let location = res.headers().get("location").cloned();
        assert_eq!(
            (res.status().as_u16(), location),
            (303, Some("/admin".parse().unwrap())),
            "{username} logs in with {password}"
        );
    }

    /// A paid mini-program order (WeChat NATIVE through the sandbox): (order id, order no).
    pub async fn paid_wechat_order(&self, code: &str) -> (i32, String) {
        let (token, id, no) = self.unpaid_order(code).await;
        let v: Value = self
            .post_json("/api/v1/pay/native", &token, &json!({ "id": id }))
            .await
            .json()
            .await
            .unwrap();
        self.sandbox_pay(json!({ "out_trade_no": v["out_trade_no"] }))
            .await;
        self.wait_for_status(id, 2).await;
        (id, no)
    }
}

/// A payment notification as WeChat would sign it (or not).
pub fn wechat_notification(
    app: &TestApp,
    out_trade_no: &str,
    total_fee: i64,
    transaction_id: &str,
    key: &str,
) -> String {
    wechat_notification_with(app, out_trade_no, total_fee, transaction_id, key, |_| {})
}

/// As `wechat_notification`, with its fields edited before signing.
pub fn wechat_notification_with(
    app: &TestApp,
    out_trade_no: &str,
    total_fee: i64,
    transaction_id: &str,
    key: &str,
    edit: impl FnOnce(&mut Params),
) -> String {
    let cfg = &app.state.config.wechat;
    let mut p: Params = [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", cfg.appid.as_str()),
        ("mch_id", cfg.mch_id.as_str()),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("openid", "oSbxTest"),
        ("trade_type", "JSAPI"),
        ("bank_type", "CFT"),
        ("fee_type", "CNY"),
        ("transaction_id", transaction_id),
        ("out_trade_no", out_trade_no),
        ("time_end", "20261123120000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.insert("total_fee".into(), total_fee.to_string());
    p.insert("cash_fee".into(), total_fee.to_string());
    edit(&mut p);
    let s = sign(&p, key, SignType::Md5);
    p.insert("sign".into(), s);
    to_xml(&p)
}

/// A phone's WeChat, as its User-Agent says.
pub const WECHAT_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47";
/// A phone's Alipay, as its User-Agent says.
pub const ALIPAY_UA: &str =
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Mobile Safari/537.36 AlipayClient/10.5.36";

/// An admin's refund request of `fen` under `out_refund_no`.
pub fn refund_request(
    order_id: i32,
    fen: i64,
    out_refund_no: &str,
) -> jiesuan::services::refund::RefundRequest {
    jiesuan::services::refund::RefundRequest {
        order_id,
        amount: jiesuan::domain::Money::from_fen(fen),
        reason: "测试退款".into(),
        out_refund_no: out_refund_no.into(),
        actor: "admin".into(),
    }
}

/// Runs the Python script `tests/e2e/<script>` (with `JIESUAN_PYTHON`, else `python3`) with
/// `cfg` as its one argument and `env` set; the last line it prints, as JSON. Panics with
/// its output when it fails.
pub async fn python_json(script: &'static str, cfg: &Value, env: &[(&str, &str)]) -> Value {
    let python = std::env::var("JIESUAN_PYTHON").unwrap_or_else(|_| "python3".into());
    let arg = cfg.to_string();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(script)
            .arg(&arg)
            .envs(env)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e} (run .ci/run to install it)"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}

/// A response's Location header, or "".
pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

static LOG_LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOG_LINES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// Makes this test binary's logger one that keeps every line (`LEVEL target: message`) for
/// `log_lines`; call it before any server starts (TestApp's env_logger then steps aside).
pub fn capture_logs() {
    if log::set_logger(&CAPTURE).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// Every line logged so far, by anything in the process (after `capture_logs`).
pub fn log_lines() -> Vec<String> {
    LOG_LINES.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// `X-Pingplusplus-Signature` of `body` as the sandbox's Ping++ platform key signs it.
pub fn pingpp_signature(body: &str) -> String {
    use jiesuan::payment::pingpp::sign;
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/keys/sandbox/pingpp_platform_private.pem"
    ))
    .unwrap();
    sign::sign(&sign::private_key(&pem).unwrap(), body.as_bytes()).unwrap()
}

//! The sandbox's WeChat Pay APIv3, spoken to by an independent little merchant written here
//! (ring and base64 directly, never the shop's code): request signing, the field rules,
//! idempotency, payment and refund notifications to a receiver that checks their signatures
//! and decrypts them itself, certificate rotation, public-key mode and each APIv3 fault.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::{fresh_database_url, test_config, TestApp};
use ring::signature::{self, RsaKeyPair};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use common::wechat_v3::{decrypt, key_pair, KEYS};

/// Verifies a platform signature (`timestamp\nnonce\nbody\n`) with the public half of the
/// committed private key `key`.
fn verifies(key: &str, headers: &Headers, body: &str) -> bool {
    let message = format!(
        "{}\n{}\n{body}\n",
        headers.get("wechatpay-timestamp"),
        headers.get("wechatpay-nonce")
    );
    common::wechat_v3::verify(key, &message, headers.get("wechatpay-signature"))
}

/// Response or notification headers, by lower-case name.
#[derive(Debug, Clone, Default)]
struct Headers(Vec<(String, String)>);

impl Headers {
    fn get(&self, k: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    fn of(map: &reqwest::header::HeaderMap) -> Headers {
        Headers(
            map.iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
        )
    }
}

/// The merchant: its own signer over `METHOD\nURL\ntimestamp\nnonce\nbody\n`.
struct Merchant<'a> {
    app: &'a TestApp,
    key: RsaKeyPair,
    mchid: String,
    serial: String,
}

struct Answer {
    status: u16,
    headers: Headers,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> (u16, String) {
        (
            self.status,
            self.json()["code"].as_str().unwrap_or("").to_string(),
        )
    }
}

impl<'a> Merchant<'a> {
    fn of(app: &'a TestApp) -> Merchant<'a> {
        let wx = &app.state.config.wechat;
        Merchant {
            app,
            key: key_pair("wechat_v3_merchant_private.pem"),
            mchid: wx.mch_id.clone(),
            serial: wx.v3_cert_serial.clone(),
        }
    }

    fn authorization(&self, method: &str, target: &str, body: &str, ts: i64) -> String {
        let nonce = format!("{:032X}", rand::random::<u128>());
        let message = format!("{method}\n{target}\n{ts}\n{nonce}\n{body}\n");
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message.as_bytes(),
                &mut sig,
            )
            .unwrap();
        // py3's order of the pairs, not go's: the platform reads them in any order.
        format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{}\",timestamp=\"{ts}\",serial_no=\"{}\"",
            self.mchid,
            B64.encode(sig),
            self.serial
        )
    }

    async fn send(&self, method: &str, target: &str, body: &str, auth: Option<String>) -> Answer {
        let url = format!("{}{target}", self.app.state.wechat_v3_base());
        let req = match method {
            "GET" => self.app.api.get(url),
            _ => self.app.api.post(url).body(body.to_string()),
        };
        let mut req = req
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("user-agent", "jiesuan-test-merchant/1.0");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = Headers::of(res.headers());
        Answer {
            status,
            headers,
            body: res.text().await.unwrap(),
        }
    }

    async fn call(&self, method: &str, target: &str, body: &Value) -> Answer {
        let body = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let ts = chrono::Utc::now().timestamp();
        let auth = self.authorization(method, target, &body, ts);
        self.send(method, target, &body, Some(auth)).await
    }

    fn order(&self, no: &str, notify_url: &str) -> Value {
        json!({
            "appid": self.app.state.config.wechat.appid, "mchid": self.mchid,
            "description": "结算商城-测试商品", "out_trade_no": no,
            "notify_url": notify_url, "amount": {"total": 168, "currency": "CNY"},
        })
    }

    async fn native(&self, no: &str, notify_url: &str) -> Answer {
        self.call(
            "POST",
            "/v3/pay/transactions/native",
            &self.order(no, notify_url),
        )
        .await
    }

    async fn refund(&self, no: &str, rno: &str, fee: i64, url: &str) -> Answer {
        self.call("POST", REFUNDS, &refund_body(no, rno, fee, url))
            .await
    }

    async fn query(&self, no: &str) -> Answer {
        let target = format!(
            "/v3/pay/transactions/out-trade-no/{no}?mchid={}",
            self.mchid
        );
        self.call("GET", &target, &Value::Null).await
    }
}

/// The openid the sandbox's mini-program login gives `user`.
async fn openid(app: &TestApp, user: &str) -> String {
    let code = app.login_code(user).await;
    let wx = &app.state.config.wechat;
    let v: Value = app
        .api
        .get(format!("{}/sandbox/wxapi/sns/jscode2session", app.url))
        .query(&[
            ("appid", wx.appid.as_str()),
            ("secret", wx.app_secret.as_str()),
            ("js_code", code.as_str()),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["openid"].as_str().unwrap().to_string()
}

/// A notify_url that records every request and answers from a script (then 204).
struct Receiver {
    url: String,
    calls: Arc<Mutex<Vec<(Headers, String)>>>,
}

impl Receiver {
    async fn start(replies: &[u16]) -> Receiver {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let calls: Arc<Mutex<Vec<(Headers, String)>>> = Arc::default();
        let replies = Arc::new(Mutex::new(replies.iter().copied().collect::<VecDeque<_>>()));
        let (c, r) = (calls.clone(), replies.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (c, r) = (c.clone(), r.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (c, r) = (c.clone(), r.clone());
                async move {
                    let headers = Headers(
                        req.headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                    );
                    c.lock()
                        .unwrap()
                        .push((headers, String::from_utf8_lossy(&body).into_owned()));
                    let status = r.lock().unwrap().pop_front().unwrap_or(204);
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .finish()
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/notify/wechat_v3"),
            calls,
        }
    }

    /// Waits (≤ 10 s) for at least `n` requests; returns them all.
    async fn wait_for(&self, n: usize) -> Vec<(Headers, String)> {
        for _ in 0..200 {
            if self.calls.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let calls = self.calls.lock().unwrap().clone();
        assert!(
            calls.len() >= n,
            "{} of {n} notifications came",
            calls.len()
        );
        calls
    }
}

/// The decrypted `resource` of a notification body.
fn resource(app: &TestApp, body: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(body).unwrap();
    let r = &v["resource"];
    assert_eq!(r["algorithm"], "AEAD_AES_256_GCM");
    let plain = decrypt(
        &app.state.config.wechat.apiv3_key,
        r["nonce"].as_str().unwrap(),
        r["associated_data"].as_str().unwrap(),
        r["ciphertext"].as_str().unwrap(),
    )?;
    serde_json::from_str(&plain).ok()
}

/// The platform certificate keys, in issue order: the first retired before the sandbox
/// started, the second current at start.
const CERT_KEYS: [&str; 4] = [
    "wechat_v3_platform_1_private.pem",
    "wechat_v3_platform_2_private.pem",
    "wechat_v3_platform_3_private.pem",
    "wechat_v3_platform_4_private.pem",
];

#[tokio::test]
async fn a_native_prepay_is_answered_signed_and_its_repeat_gives_the_same_code_url() {
    let app = TestApp::spawn().await;
    let m = Merchant::of(&app);
    let url = format!("{}/api/v1/pay/notify_v3", app.url);
    let first = m.native("V3NATIVE0001", &url).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let code_url = first.json()["code_url"].as_str().unwrap().to_string();
    assert!(code_url.starts_with("weixin://wxpay/bizpayurl?pr="));
    assert!(verifies(CERT_KEYS[1], &first.headers, &first.body));
    assert!(!verifies(CERT_KEYS[0], &first.headers, &first.body));
    assert_eq!(
        first.headers.get("wechatpay-signature-type"),
        "WECHATPAY2-SHA256-RSA2048"
    );
    assert!(!first.headers.get("request-id").is_empty());
    assert!(first
        .headers
        .get("content-type")
        .contains("application/json"));

    let again = m.native("V3NATIVE0001", &url).await;
    assert_eq!(again.json()["code_url"], code_url.as_str());
    let mut changed = m.order("V3NATIVE0001", &url);
    changed["amount"]["total"] = json!(169);
    let refused = m
        .call("POST", "/v3/pay/transactions/native", &changed)
        .await;
    assert_eq!(refused.code(), (403, "OUT_TRADE_NO_USED".into()));

    let q = m.query("V3NATIVE0001").await;
    assert_eq!(q.status, 200);
    assert_eq!(q.json()["trade_state"], "NOTPAY");
    assert!(verifies(CERT_KEYS[1], &q.headers, &q.body));
    assert_eq!(
        m.query("V3NOSUCH0001").await.code(),
        (404, "ORDER_NOT_EXIST".into())
    );

    // The phone that scans the code_url pays it, as in v2.
    let phone = app
        .api
        .get(format!("{}/sandbox/wxpay/phone", app.url))
        .query(&[("code_url", code_url.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(phone.status(), 200);
    let doc = common::html(&phone.text().await.unwrap());
    let action = common::select_attr(&doc, "form#confirm", "action").unwrap();
    assert_eq!(app.api.post(&action).send().await.unwrap().status(), 200);
    assert_eq!(
        m.query("V3NATIVE0001").await.json()["trade_state"],
        "SUCCESS"
    );
}

#[tokio::test]
async fn a_code_url_dies_after_two_hours_and_the_platform_clock_judges_timestamps() {
    let app = TestApp::spawn().await;
    let m = Merchant::of(&app);
    assert_eq!(
        m.native("V3EXPIRE0001", "https://shop.example.com/n")
            .await
            .status,
        200
    );
    app.sandbox_control("clock", json!({"advance_seconds": 2 * 3600 + 1}))
        .await;
    let refusal = app.sandbox_pay_refused("V3EXPIRE0001").await;
    assert!(refusal.contains("二维码已过期"), "{refusal}");
    // A merchant whose clock is two hours behind the platform's is refused.
    assert_eq!(
        m.query("V3EXPIRE0001").await.code(),
        (401, "SIGN_ERROR".into())
    );
}

#[tokio::test]
async fn requests_and_fields_are_refused_as_wechat_refuses_them() {
    let app = TestApp::spawn().await;
    let m = Merchant::of(&app);
    let url = format!("{}/notify", app.url);
    let target = "/v3/pay/transactions/native";
    let body = m.order("V3REFUSE0001", &url).to_string();
    let now = chrono::Utc::now().timestamp();

    // Signature: another body, a stale clock, another serial, none at all.
    let other = m.authorization("POST", target, "{}", now);
    let a = m.send("POST", target, &body, Some(other)).await;
    assert_eq!(a.code(), (401, "SIGN_ERROR".into()));
    let stale = m.authorization("POST", target, &body, now - 400);
    let a = m.send("POST", target, &body, Some(stale)).await;
    assert_eq!(a.code(), (401, "SIGN_ERROR".into()));
    let serial = m
        .authorization("POST", target, &body, now)
        .replace(&m.serial, "1234567890ABCDEF1234567890ABCDEF12345678");
    let a = m.send("POST", target, &body, Some(serial)).await;
    assert_eq!(a.code(), (401, "SIGN_ERROR".into()));
    assert_eq!(
        m.send("POST", target, &body, None).await.code(),
        (401, "SIGN_ERROR".into())
    );
    // reqwest sends `Accept: */*` unless told otherwise: an Accept without JSON.
    let no_accept = app
        .api
        .post(format!("{}/sandbox/wxpay{target}", app.url))
        .header("user-agent", "x")
        .header("accept", "text/html")
        .header("authorization", m.authorization("POST", target, &body, now))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_accept.status(), 400);
    assert!(
        verifies(
            CERT_KEYS[1],
            &Headers::of(no_accept.headers()),
            &no_accept.text().await.unwrap()
        ),
        "errors are signed too"
    );

    let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let in_minutes = |n: i64| {
        (chrono::Utc::now() + chrono::Duration::minutes(n))
            .with_timezone(&beijing)
            .format("%Y-%m-%dT%H:%M:%S+08:00")
            .to_string()
    };
    let cases: Vec<(&str, Value)> = vec![
        ("description", json!("好".repeat(43))),
        ("out_trade_no", json!("V3S01")),
        ("out_trade_no", json!("V3 SPACE 01")),
        ("amount", json!({"total": 0})),
        ("amount", json!({"total": 1.5})),
        ("amount", json!({"total": 100, "currency": "USD"})),
        ("amount", json!(100)),
        ("time_expire", json!(in_minutes(4))),
        ("time_expire", json!("20991231235959")),
        ("notify_url", json!(format!("{url}?a=1"))),
        ("notify_url", json!("/relative/notify")),
        ("attach", json!("a".repeat(129))),
        ("description", json!("表情😀")),
    ];
    for (field, value) in cases {
        let mut order = m.order("V3FIELDS001", &url);
        order[field] = value.clone();
        let a = m.call("POST", target, &order).await;
        assert_eq!(
            a.code(),
            (400, "PARAM_ERROR".into()),
            "{field} = {value}: {}",
            a.body
        );
    }
    let mut order = m.order("V3FIELDS001", &url);
    order["appid"] = json!("wxsomeoneelse0001");
    assert_eq!(
        m.call("POST", target, &order).await.code(),
        (400, "APPID_MCHID_NOT_MATCH".into())
    );
    // 127 bytes of description and 5 minutes ahead are still fine.
    let mut order = m.order("V3FIELDS002", &url);
    order["description"] = json!(format!("{}a", "好".repeat(42)));
    order["time_expire"] = json!(in_minutes(6));
    assert_eq!(m.call("POST", target, &order).await.status, 200);

    // JSAPI needs an openid of this app; H5 the payer's IP and h5_info.type.
    let jsapi = "/v3/pay/transactions/jsapi";
    let a = m.call("POST", jsapi, &m.order("V3JSAPI0001", &url)).await;
    assert_eq!(a.code(), (400, "PARAM_ERROR".into()));
    let mut order = m.order("V3JSAPI0001", &url);
    order["payer"] = json!({"openid": "o-never-issued"});
    assert_eq!(
        m.call("POST", jsapi, &order).await.code(),
        (400, "PARAM_ERROR".into())
    );
    order["payer"] = json!({"openid": openid(&app, "v3-jsapi").await});
    let a = m.call("POST", jsapi, &order).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.json()["prepay_id"].as_str().unwrap().starts_with("wx"));
    let h5 = "/v3/pay/transactions/h5";
    let mut order = m.order("V3H5000001", &url);
    assert_eq!(
        m.call("POST", h5, &order).await.code(),
        (400, "PARAM_ERROR".into())
    );
    order["scene_info"] = json!({"payer_client_ip": "203.0.113.9"});
    assert_eq!(
        m.call("POST", h5, &order).await.code(),
        (400, "PARAM_ERROR".into())
    );
    order["scene_info"]["h5_info"] = json!({"type": "Wap"});
    let a = m.call("POST", h5, &order).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.json()["h5_url"]
        .as_str()
        .unwrap()
        .contains("/sandbox/wxpay/phone?prepay_id=wx"));

    let wrong_mchid = "/v3/pay/transactions/out-trade-no/V3FIELDS002?mchid=1";
    assert_eq!(
        m.call("GET", wrong_mchid, &Value::Null).await.code(),
        (400, "PARAM_ERROR".into())
    );
}

#[tokio::test]
async fn a_payment_is_notified_signed_and_encrypted_until_acknowledged() {
    let app = TestApp::spawn().await;
    let m = Merchant::of(&app);
    let rx = Receiver::start(&[500, 200]).await;
    let payer = openid(&app, "v3-payer").await;
    let mut order = m.order("V3PAID000001", &rx.url);
    order["payer"] = json!({ "openid": payer });
    order["attach"] = json!("order 7");
    let a = m.call("POST", "/v3/pay/transactions/jsapi", &order).await;
    assert_eq!(a.status, 200, "{}", a.body);
    app.sandbox_pay(json!({"out_trade_no": "V3PAID000001"}))
        .await;

    let calls = rx.wait_for(2).await;
    for (headers, body) in &calls[..2] {
        assert!(verifies(CERT_KEYS[1], headers, body), "{headers:?}");
        assert_eq!(headers.get("content-type"), "application/json");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["event_type"], "TRANSACTION.SUCCESS");
        assert_eq!(v["resource_type"], "encrypt-resource");
        assert_eq!(v["resource"]["original_type"], "transaction");
        assert_eq!(v["resource"]["associated_data"], "transaction");
        let t = resource(&app, body).expect("decrypts");
        assert_eq!(t["out_trade_no"], "V3PAID000001");
        assert_eq!(t["trade_state"], "SUCCESS");
        assert_eq!(t["amount"]["total"], 168);
        assert_eq!(t["payer"]["openid"], payer.as_str());
        assert_eq!(t["attach"], "order 7");
        assert_eq!(t["mchid"], m.mchid.as_str());
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.calls.lock().unwrap().len(), 2, "200 ends the retries");
    let d = app.deliveries("V3PAID000001").await;
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0]["provider"], "wechat_v3");
    assert_eq!(
        (d[0]["acknowledged"].clone(), d[1]["acknowledged"].clone()),
        (json!(false), json!(true))
    );

    let q = m.query("V3PAID000001").await.json();
    assert_eq!(q["trade_state"], "SUCCESS");
    let tx = q["transaction_id"].as_str().unwrap();
    let by_id = format!("/v3/pay/transactions/id/{tx}?mchid={}", m.mchid);
    assert_eq!(
        m.call("GET", &by_id, &Value::Null).await.json()["out_trade_no"],
        "V3PAID000001"
    );
    let close = "/v3/pay/transactions/out-trade-no/V3PAID000001/close";
    let a = m.call("POST", close, &json!({"mchid": m.mchid})).await;
    assert_eq!(a.code(), (400, "ORDER_PAID".into()));
}

#[tokio::test]
async fn close_answers_204_signed_and_a_closed_order_cannot_be_paid() {
    let app = TestApp::spawn().await;
    let m = Merchant::of(&app);
    assert_eq!(
        m.native("V3CLOSE00001", "https://shop.example.com/n")
            .await
            .status,
        200
    );
    let close = "/v3/pay/transactions/out-trade-no/V3CLOSE00001/close";
    let a = m.call("POST", close, &json!({"mchid": m.mchid})).await;
    assert_eq!(a.status, 204);
    assert_eq!(a.body, "");
    assert!(verifies(CERT_KEYS[1], &a.headers, ""));
    let again = m.call("POST", close, &json!({"mchid": m.mchid})).await;
    assert_eq!(again.code(), (400, "ORDER_CLOSED".into()));
    assert_eq!(
        m.query("V3CLOSE00001").await.json()["trade_state"],
        "CLOSED"
    );
    assert!(app
        .sandbox_pay_refused("V3CLOSE00001")
        .await
        .contains("订单已关闭"));
    let missing = "/v3/pay/transactions/out-trade-no/V3NOSUCH0002/close";
    let a = m.call("POST", missing, &json!({"mchid": m.mchid})).await;
    assert_eq!(a.code(), (404, "ORDER_NOT_EXIST".into()));
}

/// A paid NATIVE order whose notifications go to `rx`.
async fn paid(m: &Merchant<'_>, rx: &Receiver, no: &str) {
    assert_eq!(m.native(no, &rx.url).await.status, 200);
    m.app.sandbox_pay(json!({ "out_trade_no": no })).await;
}

fn refund_body(no: &str, rno: &str, fee: i64, url: &str) -> Value {
    json!({"out_trade_no": no, "out_refund_no": rno, "reason": "测试",
           "notify_url": url, "amount": {"refund": fee, "total": 168, "currency": "CNY"}})
}

const REFUNDS: &str = "/v3/refund/domestic/refunds";

#[tokio::test]
async fn refunds_are_idempotent_by_out_refund_no_and_notified() {
    let app = TestApp::spawn().await;
    let m = Merchant::of(&app);
    let rx = Receiver::start(&[]).await;
    paid(&m, &rx, "V3REFUND0001").await;
    rx.wait_for(1).await;

    let a = m.refund("V3REFUND0001", "V3R1", 100, &rx.url).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let r = a.json();
    assert_eq!(r["status"], "PROCESSING");
    assert!(r.get("success_time").is_none(), "absent until SUCCESS");
    let again = m.refund("V3REFUND0001", "V3R1", 100, &rx.url).await;
    assert_eq!(again.json()["refund_id"], r["refund_id"]);
    let changed = m.refund("V3REFUND0001", "V3R1", 50, &rx.url).await;
    assert_eq!(changed.code(), (400, "PARAM_ERROR".into()));
    let too_much = m.refund("V3REFUND0001", "V3R2", 69, &rx.url).await;
    assert_eq!(too_much.code(), (403, "NOT_ENOUGH".into()));

    let calls = rx.wait_for(2).await;
    let (headers, body) = &calls[1];
    assert!(verifies(CERT_KEYS[1], headers, body));
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["event_type"], "REFUND.SUCCESS");
    let plain = resource(&app, body).unwrap();
    assert_eq!(plain["refund_status"], "SUCCESS");
    assert_eq!(plain["out_refund_no"], "V3R1");
    assert_eq!(plain["amount"]["refund"], 100);
    let q = m
        .call("GET", &format!("{REFUNDS}/V3R1"), &Value::Null)
        .await
        .json();
    assert_eq!(q["status"], "SUCCESS");
    assert!(q["success_time"].is_string());
    assert_eq!(
        m.query("V3REFUND0001").await.json()["trade_state"],
        "REFUND"
    );
    let a = m
        .call("GET", &format!("{REFUNDS}/V3NOSUCH"), &Value::Null)
        .await;
    assert_eq!(a.code(), (404, "RESOURCE_NOT_EXISTS".into()));
    assert_eq!(m.native("V3UNPAID0001", &rx.url).await.status, 200);
    let unpaid = m.refund("V3UNPAID0001", "V3R3", 1, &rx.url).await;
    assert_eq!(unpaid.code(), (404, "RESOURCE_NOT_EXISTS".into()));
}

#[tokio::test]
async fn refund_faults_take_the_money_then_fail_or_end_abnormal() {
    let app = TestApp::spawn().await;
    let m = Merchant::of(&app);
    let rx = Receiver::start(&[]).await;
    paid(&m, &rx, "V3RFAULT0001").await;
    rx.wait_for(1).await;
    app.set_faults(
        json!({"prefix": "V3RFAULT0001", "refund_system_errors": 1, "refund_status": "ABNORMAL"}),
    )
    .await;
    let body = refund_body("V3RFAULT0001", "V3RF1", 168, &rx.url);
    let a = m.call("POST", REFUNDS, &body).await;
    assert_eq!(a.code(), (500, "SYSTEM_ERROR".into()));
    let retry = m.call("POST", REFUNDS, &body).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    let held: Vec<Value> = app
        .api
        .get(format!(
            "{}/sandbox/control/refunds?out_trade_no=V3RFAULT0001",
            app.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(held.len(), 1, "one refund for both requests: {held:?}");
    let calls = rx.wait_for(2).await;
    let v: Value = serde_json::from_str(&calls[1].1).unwrap();
    assert_eq!(v["event_type"], "REFUND.ABNORMAL");
    assert_eq!(
        resource(&app, &calls[1].1).unwrap()["refund_status"],
        "ABNORMAL"
    );
    let q = m
        .call("GET", &format!("{REFUNDS}/V3RF1"), &Value::Null)
        .await
        .json();
    assert_eq!(q["status"], "ABNORMAL");

    app.set_faults(
        json!({"prefix": "V3RFAULT0002", "refund_status": "CLOSED", "refund_hang_ms": 300}),
    )
    .await;
    paid(&m, &rx, "V3RFAULT0002").await;
    rx.wait_for(3).await;
    let started = std::time::Instant::now();
    let a = m.refund("V3RFAULT0002", "V3RF2", 1, &rx.url).await;
    assert_eq!(a.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let calls = rx.wait_for(4).await;
    let v: Value = serde_json::from_str(&calls[3].1).unwrap();
    assert_eq!(v["event_type"], "REFUND.CLOSED");
}

/// The serials and PEMs `/v3/certificates` lists, decrypted with the test's own code.
async fn certificates(app: &TestApp, m: &Merchant<'_>) -> Vec<(String, String)> {
    let a = m.call("GET", "/v3/certificates", &Value::Null).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let e = &c["encrypt_certificate"];
            assert_eq!(e["associated_data"], "certificate");
            assert!(c["effective_time"].as_str().unwrap().ends_with("+08:00"));
            let pem = decrypt(
                &app.state.config.wechat.apiv3_key,
                e["nonce"].as_str().unwrap(),
                "certificate",
                e["ciphertext"].as_str().unwrap(),
            )
            .unwrap();
            (c["serial_no"].as_str().unwrap().to_string(), pem)
        })
        .collect()
}

fn cert_file(n: usize) -> String {
    std::fs::read_to_string(format!("{KEYS}/wechat_v3_platform_{n}_cert.pem")).unwrap()
}

#[tokio::test]
async fn certificates_rotate_with_an_overlap_and_a_retirement() {
    let app = TestApp::spawn().await;
    let m = Merchant::of(&app);
    let listed = certificates(&app, &m).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1, cert_file(2));
    let start = listed[0].0.clone();

    let r = app.rotate_cert(json!({})).await.1;
    assert_eq!(r["listed"].as_array().unwrap().len(), 2, "{r}");
    let listed = certificates(&app, &m).await;
    assert_eq!(listed.len(), 2, "the old certificate overlaps the new one");
    assert!(listed.iter().any(|(_, pem)| *pem == cert_file(3)));
    assert_eq!(
        r["current"],
        listed
            .iter()
            .find(|(_, p)| *p == cert_file(3))
            .unwrap()
            .0
            .as_str()
    );
    // Answers are now signed by the new certificate.
    let a = m.native("V3ROTATE0001", "https://shop.example.com/n").await;
    assert!(verifies(CERT_KEYS[2], &a.headers, &a.body));
    assert_eq!(
        a.headers.get("wechatpay-serial"),
        r["current"].as_str().unwrap()
    );

    let r = app.rotate_cert(json!({})).await.1;
    assert!(
        r["retired"].as_array().unwrap().contains(&json!(start)),
        "{r}"
    );
    let listed = certificates(&app, &m).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1, cert_file(3));
    assert_eq!(app.rotate_cert(json!({})).await.0, 200);
    let r = app.rotate_cert(json!({"retire": true})).await.1;
    assert_eq!(r["listed"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(
        app.rotate_cert(json!({})).await.0,
        409,
        "no fifth certificate"
    );
}

#[tokio::test]
async fn public_key_mode_signs_as_the_public_key_id_and_lists_no_certificates() {
    let mut config = test_config(&fresh_database_url());
    config.wechat.v3_public_key = Some(jiesuan::config::SANDBOX_V3_PUBLIC_KEY.into());
    config.wechat.v3_public_key_id = Some(jiesuan::config::SANDBOX_V3_PUBLIC_KEY_ID.into());
    let app = TestApp::spawn_on(config).await;
    let m = Merchant::of(&app);
    let a = m.native("V3PUBKEY0001", "https://shop.example.com/n").await;
    assert_eq!(a.status, 200);
    assert!(a.headers.get("wechatpay-serial").starts_with("PUB_KEY_ID_"));
    assert!(verifies(
        "wechat_v3_pubkey_private.pem",
        &a.headers,
        &a.body
    ));
    let c = m.call("GET", "/v3/certificates", &Value::Null).await;
    assert_eq!(c.code(), (404, "RESOURCE_NOT_EXISTS".into()));
}

#[tokio::test]
async fn each_v3_fault_shows_on_the_wire() {
    let app = TestApp::spawn().await;
    let m = Merchant::of(&app);

    // A probe on the answer, and on the first send of the notification only.
    let rx = Receiver::start(&[401]).await;
    app.set_faults(json!({"prefix": "V3PROBE", "v3_signtest": true}))
        .await;
    let a = m.native("V3PROBE00001", &rx.url).await;
    assert!(a
        .headers
        .get("wechatpay-signature")
        .starts_with("WECHATPAY/SIGNTEST/"));
    assert!(!verifies(CERT_KEYS[1], &a.headers, &a.body));
    app.sandbox_pay(json!({"out_trade_no": "V3PROBE00001"}))
        .await;
    let calls = rx.wait_for(2).await;
    assert!(calls[0]
        .0
        .get("wechatpay-signature")
        .starts_with("WECHATPAY/SIGNTEST/"));
    assert!(
        verifies(CERT_KEYS[1], &calls[1].0, &calls[1].1),
        "re-sent signed"
    );

    // A timestamp 10 minutes old, correctly signed.
    let rx = Receiver::start(&[]).await;
    app.set_faults(json!({"prefix": "V3STALE", "v3_stale_timestamp": true}))
        .await;
    let a = m.native("V3STALE00001", &rx.url).await;
    let ts: i64 = a.headers.get("wechatpay-timestamp").parse().unwrap();
    assert!(chrono::Utc::now().timestamp() - ts >= 590);
    assert!(verifies(CERT_KEYS[1], &a.headers, &a.body));
    app.sandbox_pay(json!({"out_trade_no": "V3STALE00001"}))
        .await;
    let calls = rx.wait_for(1).await;
    let ts: i64 = calls[0].0.get("wechatpay-timestamp").parse().unwrap();
    assert!(chrono::Utc::now().timestamp() - ts >= 590);

    // A corrupted GCM tag: signed, but it does not decrypt.
    let rx = Receiver::start(&[]).await;
    app.set_faults(json!({"prefix": "V3BADTAG", "v3_bad_tag": true}))
        .await;
    paid(&m, &rx, "V3BADTAG0001").await;
    let calls = rx.wait_for(1).await;
    assert!(verifies(CERT_KEYS[1], &calls[0].0, &calls[0].1));
    assert!(resource(&app, &calls[0].1).is_none());

    // Signed by a retired certificate: not among those listed.
    let rx = Receiver::start(&[]).await;
    app.set_faults(json!({"prefix": "V3RETIRED", "v3_retired_cert": true}))
        .await;
    paid(&m, &rx, "V3RETIRED001").await;
    let calls = rx.wait_for(1).await;
    assert!(verifies(CERT_KEYS[0], &calls[0].0, &calls[0].1));
    let serial = calls[0].0.get("wechatpay-serial").to_string();
    assert!(certificates(&app, &m)
        .await
        .iter()
        .all(|(s, _)| *s != serial));

    // The v2 faults apply too: a bad signature, a wrong amount, copies.
    let rx = Receiver::start(&[]).await;
    app.set_faults(
        json!({"prefix": "V3OLDFAULTS", "bad_signature": true, "wrong_amount": true, "copies": 2}),
    )
    .await;
    let a = m.native("V3OLDFAULTS1", &rx.url).await;
    assert!(
        verifies(CERT_KEYS[1], &a.headers, &a.body),
        "answers stay signed"
    );
    app.sandbox_pay(json!({"out_trade_no": "V3OLDFAULTS1"}))
        .await;
    let calls = rx.wait_for(2).await;
    for (headers, body) in &calls {
        assert!(!verifies(CERT_KEYS[1], headers, body));
        assert_eq!(resource(&app, body).unwrap()["amount"]["total"], 169);
    }
}

//! The sandbox's Alipay, spoken to by an independent little merchant written here (ring and
//! base64 directly, never the shop's code): the common parameters and the RSA2 signature,
//! the field rules, each method, refunds and their idempotency, notifications to a receiver
//! that verifies them itself, the page.pay / wap.pay cashier round trip and certificate mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fresh_database_url, test_config, TestApp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The SNs of the committed certificates, computed outside Rust (Python: md5 of the RFC 2253
/// issuer and the decimal serial `openssl x509 -serial` shows).
const APP_CERT_SN: &str = "cb8ed781ed476b2f7982d70b7ebcd67d";
const ROOT_CERT_SN: &str = "f7f936ab258ad2cfb59567281911f572";
const ALIPAY_CERT_SN: &str = "f969d4437bcf01cad5a5428519cd7b14";

/// SHA256withRSA with the committed app private key, base64.
fn app_sign(content: &str) -> String {
    common::wechat_v3::sign("alipay_app_private.pem", content)
}

/// Checks a base64 SHA256withRSA signature with the public half of the committed
/// `alipay_platform_private.pem` (the sandbox's Alipay key).
fn platform_verifies(content: &str, sign: &str) -> bool {
    common::wechat_v3::verify("alipay_platform_private.pem", content, sign)
}

/// Sorted `k=v` joined with `&`, empties and `skip` left out.
fn content(params: &BTreeMap<String, String>, skip: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Beijing wall time now, as Alipay wants `timestamp`.
fn beijing_now() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The raw text of the `key` object in a response, quote- and escape-aware.
fn raw_object<'a>(body: &'a str, key: &str) -> &'a str {
    let at = body.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    let bytes = body.as_bytes();
    let (mut depth, mut in_str, mut esc) = (0, false, false);
    for (i, &b) in bytes.iter().enumerate().skip(at) {
        match (in_str, esc, b) {
            (true, true, _) => esc = false,
            (true, false, b'\\') => esc = true,
            (true, false, b'"') => in_str = false,
            (true, false, _) => {}
            (false, _, b'"') => in_str = true,
            (false, _, b'{') => depth += 1,
            (false, _, b'}') => {
                depth -= 1;
                if depth == 0 {
                    return &body[at..=i];
                }
            }
            _ => {}
        }
    }
    panic!("no {key} object in {body}")
}

/// An independent merchant: builds, signs and sends gateway calls.
struct Merchant<'a> {
    app: &'a TestApp,
    /// Certificate mode: send the app and root certificate SNs.
    cert: bool,
}

impl Merchant<'_> {
    fn gateway(&self) -> String {
        format!("{}/sandbox/alipay/gateway.do", self.app.url)
    }

    /// The common parameters of `method` with `biz` and `extra`, signed (changes in
    /// `extra` apply before signing; `("sign", …)` in `tamper` after).
    fn params(
        &self,
        method: &str,
        biz: &Value,
        extra: &[(&str, &str)],
    ) -> BTreeMap<String, String> {
        let mut p: BTreeMap<String, String> = [
            ("app_id", "2021000100000001"),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("version", "1.0"),
            // Unknown to the platform, signed like the rest (as the Java SDK sends it).
            ("alipay_sdk", "independent-test/1.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        p.insert("timestamp".into(), beijing_now());
        p.insert("biz_content".into(), biz.to_string());
        if self.cert {
            p.insert("app_cert_sn".into(), APP_CERT_SN.into());
            p.insert("alipay_root_cert_sn".into(), ROOT_CERT_SN.into());
        }
        for (k, v) in extra {
            p.insert(k.to_string(), v.to_string());
        }
        let sign = app_sign(&content(&p, &["sign"]));
        p.insert("sign".into(), sign);
        p
    }

    /// POSTs as the Java and Node SDKs do (system parameters in the query, biz_content in
    /// the form body); the raw answer.
    async fn send(&self, params: &BTreeMap<String, String>) -> String {
        let (body, query): (Vec<_>, Vec<_>) = params.iter().partition(|(k, _)| *k == "biz_content");
        let res = self
            .app
            .api
            .post(self.gateway())
            .query(&query)
            .form(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    /// Calls `method` and returns its verified `…_response` object.
    async fn call(&self, method: &str, biz: Value) -> Value {
        self.call_with(method, biz, &[]).await
    }

    async fn call_with(&self, method: &str, biz: Value, extra: &[(&str, &str)]) -> Value {
        let raw = self.send(&self.params(method, &biz, extra)).await;
        verified(&raw, &format!("{}_response", method.replace('.', "_")))
    }
}

/// The `key` object of an answer, after checking the answer's signature over its raw text
/// and that `sign` comes last.
fn verified(raw: &str, key: &str) -> Value {
    let v: Value = serde_json::from_str(raw).unwrap();
    let object = raw_object(raw, key);
    assert!(raw.starts_with(&format!("{{\"{key}\":")), "{raw}");
    assert!(raw.trim_end().ends_with("\"}"), "sign last: {raw}");
    let sign = v["sign"].as_str().unwrap();
    assert!(platform_verifies(object, sign), "answer signature: {raw}");
    serde_json::from_str(object).unwrap()
}

fn sub_code(v: &Value) -> &str {
    v["sub_code"].as_str().unwrap_or("")
}

/// A notify receiver answering each request with the next body (then `success`).
struct Receiver {
    url: String,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start(replies: &[&'static str]) -> Receiver {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let replies = Arc::new(Mutex::new(replies.iter().copied().collect::<VecDeque<_>>()));
        let (c, r) = (calls.clone(), replies.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (c, r) = (c.clone(), r.clone());
            App::new().default_service(web::to(move |body: web::Bytes| {
                let (c, r) = (c.clone(), r.clone());
                async move {
                    c.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                    let reply = r.lock().unwrap().pop_front().unwrap_or("success");
                    HttpResponse::Ok().body(reply)
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/notify/alipay"),
            calls,
        }
    }

    /// Waits (≤ 10 s) for at least `n` notifications; each decoded once, its signature
    /// checked (all fields but sign and sign_type, sorted).
    async fn wait_for(&self, n: usize) -> Vec<BTreeMap<String, String>> {
        for _ in 0..200 {
            if self.calls.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let calls = self.calls.lock().unwrap().clone();
        assert!(calls.len() >= n, "{} of {n} notifications", calls.len());
        calls
            .iter()
            .map(|body| serde_urlencoded::from_str(body).unwrap())
            .collect()
    }
}

fn verifies_notification(f: &BTreeMap<String, String>) -> bool {
    platform_verifies(&content(f, &["sign", "sign_type"]), &f["sign"])
}

async fn precreate(m: &Merchant<'_>, no: &str, total: &str, notify_url: &str) -> Value {
    let r = m
        .call_with(
            "alipay.trade.precreate",
            json!({"out_trade_no": no, "total_amount": total, "subject": "结算商城订单"}),
            &[("notify_url", notify_url)],
        )
        .await;
    assert_eq!(r["code"], "10000", "{r}");
    r
}

#[tokio::test]
async fn the_common_parameters_and_the_rsa2_signature_are_checked_as_alipay_does() {
    let app = TestApp::spawn().await;
    let m = Merchant {
        app: &app,
        cert: false,
    };
    let q = json!({"out_trade_no": "NOPE0001"});
    let r = m.call("alipay.trade.query", q.clone()).await;
    assert_eq!(
        (r["code"].as_str(), sub_code(&r)),
        (Some("40004"), "ACQ.TRADE_NOT_EXIST")
    );
    assert_eq!(r["msg"], "Business Failed");

    // The Python SDK's way: a GET with every parameter in the query.
    let params = m.params("alipay.trade.query", &q, &[]);
    let raw = app
        .api
        .get(m.gateway())
        .query(&params)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sub_code(&verified(&raw, "alipay_trade_query_response")),
        "ACQ.TRADE_NOT_EXIST"
    );

    let mut forged = params.clone();
    forged.insert(
        "biz_content".into(),
        json!({"out_trade_no": "OTHER"}).to_string(),
    );
    let r = verified(&m.send(&forged).await, "alipay_trade_query_response");
    assert_eq!(
        (r["code"].as_str(), sub_code(&r)),
        (Some("40002"), "isv.invalid-signature")
    );
    let echoed = r["sub_msg"].as_str().unwrap();
    assert!(
        echoed.contains(&content(&forged, &["sign"])),
        "the sign string is echoed: {echoed}"
    );

    for (extra, code, expected) in [
        (
            ("app_id", "2021000199999999"),
            "40002",
            "isv.invalid-app-id",
        ),
        (("sign_type", "RSA"), "40002", "isv.invalid-signature-type"),
        (("charset", "GBK"), "40002", "isv.invalid-charset"),
        (("version", "2.0"), "40002", "isv.invalid-parameter"),
        (("timestamp", ""), "40001", "isv.missing-timestamp"),
        (
            ("timestamp", "2024/05/01 12:00:00"),
            "40002",
            "isv.invalid-timestamp",
        ),
        (
            ("app_cert_sn", APP_CERT_SN),
            "40002",
            "isv.app-cert-not-exist",
        ),
    ] {
        let r = m.call_with("alipay.trade.query", q.clone(), &[extra]).await;
        assert_eq!(
            (r["code"].as_str(), sub_code(&r)),
            (Some(code), expected),
            "{extra:?}"
        );
    }
    // A host writing UTC wall time is 8 hours off.
    let utc = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let r = m
        .call_with("alipay.trade.query", q.clone(), &[("timestamp", &utc)])
        .await;
    assert_eq!(sub_code(&r), "isv.invalid-timestamp");

    let raw = m.send(&m.params("alipay.trade.nope", &q, &[])).await;
    let r = verified(&raw, "error_response");
    assert_eq!(
        (r["code"].as_str(), sub_code(&r)),
        (Some("40002"), "isv.invalid-method")
    );
}

#[tokio::test]
async fn trade_fields_are_refused_where_the_live_gateway_refuses_them() {
    let app = TestApp::spawn().await;
    let m = Merchant {
        app: &app,
        cert: false,
    };
    let good = json!({"out_trade_no": "FIELDS_01", "total_amount": "0.01", "subject": "订单"});
    let cases = [
        ("out_trade_no", json!("FIELDS-01"), "ACQ.INVALID_PARAMETER"),
        (
            "out_trade_no",
            json!("F".repeat(65)),
            "ACQ.INVALID_PARAMETER",
        ),
        ("total_amount", json!("0.001"), "ACQ.INVALID_PARAMETER"),
        ("total_amount", json!("0"), "ACQ.INVALID_PARAMETER"),
        ("total_amount", json!("1e2"), "ACQ.INVALID_PARAMETER"),
        (
            "total_amount",
            json!("100000000.01"),
            "ACQ.TOTAL_FEE_EXCEED",
        ),
        ("subject", json!("a/b"), "ACQ.INVALID_PARAMETER"),
        ("subject", json!("a=b"), "ACQ.INVALID_PARAMETER"),
        ("subject", json!("字".repeat(257)), "ACQ.INVALID_PARAMETER"),
        ("timeout_express", json!("16d"), "ACQ.INVALID_PARAMETER"),
        ("timeout_express", json!("1.5h"), "ACQ.INVALID_PARAMETER"),
        (
            "time_expire",
            json!("2030-01-01T00:00:00"),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            "qr_code_timeout_express",
            json!("3h"),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            "product_code",
            json!("QUICK_WAP_WAY"),
            "ACQ.INVALID_PARAMETER",
        ),
    ];
    for (field, value, expected) in cases {
        let mut biz = good.clone();
        biz[field] = value.clone();
        let r = m.call("alipay.trade.precreate", biz).await;
        assert_eq!(
            (r["code"].as_str(), sub_code(&r)),
            (Some("40004"), expected),
            "{field}={value}"
        );
    }
    let first = m.call("alipay.trade.precreate", good.clone()).await;
    assert_eq!(first["code"], "10000", "{first}");
    assert_eq!(first["out_trade_no"], "FIELDS_01");
    let again = m.call("alipay.trade.precreate", good.clone()).await;
    assert_eq!(
        again["qr_code"], first["qr_code"],
        "the same call, the same QR"
    );
    let mut changed = good.clone();
    changed["total_amount"] = json!("0.02");
    let r = m.call("alipay.trade.precreate", changed).await;
    assert_eq!(sub_code(&r), "ACQ.CONTEXT_INCONSISTENT");
    let mut timed = good.clone();
    timed["out_trade_no"] = json!("FIELDS_02");
    timed["timeout_express"] = json!("90m");
    timed["time_expire"] = json!("2099-01-01 10:00:00");
    assert_eq!(
        m.call("alipay.trade.precreate", timed).await["code"],
        "10000"
    );
}

#[tokio::test]
async fn a_precreate_trade_exists_once_scanned_and_its_payment_is_notified_until_success() {
    let app = TestApp::spawn().await;
    let m = Merchant {
        app: &app,
        cert: false,
    };
    let rx = Receiver::start(&["fail", "success "]).await;
    let r = precreate(&m, "QR_PAID_01", "0.01", &rx.url).await;
    let qr = r["qr_code"].as_str().unwrap().to_string();
    assert!(
        qr.starts_with(&format!("{}/sandbox/alipay/qr/bax0", app.url)),
        "{qr}"
    );
    let by_no = json!({"out_trade_no": "QR_PAID_01"});
    for method in ["alipay.trade.query", "alipay.trade.close"] {
        let r = m.call(method, by_no.clone()).await;
        assert_eq!(
            sub_code(&r),
            "ACQ.TRADE_NOT_EXIST",
            "{method} before the scan"
        );
    }
    let page = app.api.get(&qr).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("支付宝") && html.contains("QR_PAID_01"),
        "{html}"
    );
    let q = m.call("alipay.trade.query", by_no.clone()).await;
    assert_eq!(q["trade_status"], "WAIT_BUYER_PAY", "{q}");
    assert_eq!(q["total_amount"], "0.01");

    let paid = app.sandbox_pay(json!({"out_trade_no": "QR_PAID_01"})).await;
    assert_eq!(paid["paid"], "QR_PAID_01");
    let sent = rx.wait_for(3).await;
    for n in &sent {
        assert!(verifies_notification(n), "{n:?}");
        assert_eq!(n["notify_type"], "trade_status_sync");
        assert_eq!(n["trade_status"], "TRADE_SUCCESS");
        assert_eq!(n["total_amount"], "0.01");
        assert_eq!(n["receipt_amount"], "0.01");
        assert_eq!(n["app_id"], "2021000100000001");
        assert_eq!(n["seller_id"], "2088102100000001");
        assert_eq!(n["sign_type"], "RSA2");
        assert_eq!(n["out_trade_no"], "QR_PAID_01");
        assert_eq!(n["trade_no"], paid["trade_no"].as_str().unwrap());
        assert_eq!(
            n["notify_id"], sent[0]["notify_id"],
            "one notify_id across re-sends"
        );
        assert!(n["gmt_payment"].len() == 19 && n["buyer_id"].starts_with("2088"));
        let bills: Value = serde_json::from_str(&n["fund_bill_list"]).unwrap();
        assert_eq!(bills[0]["amount"], "0.01");
    }
    // `fail` and `success ` (not exactly `success`) are not acknowledgements.
    let log = app.deliveries("QR_PAID_01").await;
    let acked: Vec<bool> = log
        .iter()
        .map(|d| d["acknowledged"].as_bool().unwrap())
        .collect();
    assert_eq!(acked, [false, false, true], "{log:?}");
    assert_eq!(log[0]["provider"], "alipay");

    let q = m.call("alipay.trade.query", by_no.clone()).await;
    assert_eq!(q["trade_status"], "TRADE_SUCCESS");
    assert_eq!(q["buyer_pay_amount"], "0.01");
    let by_trade_no = json!({"trade_no": paid["trade_no"]});
    assert_eq!(
        m.call("alipay.trade.query", by_trade_no).await["out_trade_no"],
        "QR_PAID_01"
    );
    let c = m.call("alipay.trade.close", by_no.clone()).await;
    assert_eq!(sub_code(&c), "ACQ.TRADE_STATUS_ERROR");
    let r = precreate_again(&m, "QR_PAID_01").await;
    assert_eq!(sub_code(&r), "ACQ.TRADE_HAS_SUCCESS");
}

async fn precreate_again(m: &Merchant<'_>, no: &str) -> Value {
    m.call(
        "alipay.trade.precreate",
        json!({"out_trade_no": no, "total_amount": "0.01", "subject": "结算商城订单"}),
    )
    .await
}

#[tokio::test]
async fn a_scanned_trade_closes_once_and_a_closed_one_cannot_be_paid() {
    let app = TestApp::spawn().await;
    let m = Merchant {
        app: &app,
        cert: false,
    };
    let r = precreate(&m, "QR_CLOSE_01", "5.00", "").await;
    app.api
        .get(r["qr_code"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let by_no = json!({"out_trade_no": "QR_CLOSE_01"});
    let c = m.call("alipay.trade.close", by_no.clone()).await;
    assert_eq!(c["code"], "10000", "{c}");
    assert_eq!(
        m.call("alipay.trade.query", by_no.clone()).await["trade_status"],
        "TRADE_CLOSED"
    );
    assert_eq!(
        sub_code(&m.call("alipay.trade.close", by_no).await),
        "ACQ.TRADE_STATUS_ERROR"
    );
    assert!(app
        .sandbox_pay_refused("QR_CLOSE_01")
        .await
        .contains("关闭"));
    assert_eq!(
        sub_code(&precreate_again(&m, "QR_CLOSE_01").await),
        "ACQ.TRADE_HAS_CLOSE"
    );
}

/// The browser's form post of page.pay / wap.pay: system parameters in the action URL,
/// biz_content as a hidden input.
async fn open_cashier(app: &TestApp, params: &BTreeMap<String, String>) -> reqwest::Response {
    let (body, query): (Vec<_>, Vec<_>) = params.iter().partition(|(k, _)| *k == "biz_content");
    app.browser
        .post(format!("{}/sandbox/alipay/gateway.do", app.url))
        .query(&query)
        .form(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn page_pay_and_wap_pay_go_from_the_form_to_the_cashier_and_back_to_return_url() {
    let app = TestApp::spawn().await;
    let m = Merchant {
        app: &app,
        cert: false,
    };
    let rx = Receiver::start(&[]).await;
    for (method, code, no) in [
        (
            "alipay.trade.page.pay",
            "FAST_INSTANT_TRADE_PAY",
            "PAGE_PAY_01",
        ),
        ("alipay.trade.wap.pay", "QUICK_WAP_WAY", "WAP_PAY_01"),
    ] {
        let biz = json!({"out_trade_no": no, "total_amount": "12.30", "subject": "网页支付",
            "product_code": code});
        let return_url = "https://shop.example.com/home/pay/return?from=alipay";
        let params = m.params(
            method,
            &biz,
            &[("return_url", return_url), ("notify_url", &rx.url)],
        );
        let res = open_cashier(&app, &params).await;
        assert_eq!(res.status(), 302, "{method}");
        let cashier = common::location(&res);
        assert!(cashier.contains("/sandbox/alipay/cashier/"), "{cashier}");
        let by_no = json!({"out_trade_no": no});
        let r = m.call("alipay.trade.query", by_no.clone()).await;
        assert_eq!(
            sub_code(&r),
            "ACQ.TRADE_NOT_EXIST",
            "not before the cashier"
        );

        let page = app.browser.get(&cashier).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let doc = common::html(&page.text().await.unwrap());
        assert_eq!(common::select_text(&doc, "#trade-no").as_deref(), Some(no));
        let action = common::select_attr(&doc, "form#confirm", "action").unwrap();
        let q = m.call("alipay.trade.query", by_no.clone()).await;
        assert_eq!(q["trade_status"], "WAIT_BUYER_PAY");

        let paid = app.browser.post(&action).send().await.unwrap();
        assert_eq!(paid.status(), 302);
        let back = common::location(&paid);
        let (base, query) = back.split_once("?from=alipay&").unwrap();
        assert_eq!(base, "https://shop.example.com/home/pay/return");
        let f: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap();
        assert!(verifies_notification(&f), "return_url is signed: {f:?}");
        assert_eq!(f["method"], format!("{method}.return"));
        assert_eq!(
            (f["out_trade_no"].as_str(), f["total_amount"].as_str()),
            (no, "12.30")
        );
        let q = m.call("alipay.trade.query", by_no).await;
        assert_eq!(q["trade_status"], "TRADE_SUCCESS");
    }
    let sent = rx.wait_for(2).await;
    assert!(sent.iter().all(verifies_notification));

    // A form whose signature does not verify gets Alipay's error page.
    let mut params = m.params(
        "alipay.trade.page.pay",
        &json!({"out_trade_no": "PAGE_BAD", "total_amount": "1.00", "subject": "x",
            "product_code": "FAST_INSTANT_TRADE_PAY"}),
        &[],
    );
    params.insert("total_amount".into(), "0.01".into());
    let res = open_cashier(&app, &params).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("invalid-signature"));
}

#[tokio::test]
async fn refunds_are_idempotent_by_out_request_no_and_notified_on_the_trade() {
    let app = TestApp::spawn().await;
    let m = Merchant {
        app: &app,
        cert: false,
    };
    let rx = Receiver::start(&[]).await;
    precreate(&m, "REFUND_01", "1.00", &rx.url).await;
    app.sandbox_pay(json!({"out_trade_no": "REFUND_01"})).await;
    rx.wait_for(1).await;
    let refund = |amount: &str, rno: &str| json!({"out_trade_no": "REFUND_01", "refund_amount": amount, "out_request_no": rno});
    let r = m.call("alipay.trade.refund", refund("0.30", "R1")).await;
    assert_eq!(
        (r["fund_change"].as_str(), r["refund_fee"].as_str()),
        (Some("Y"), Some("0.30")),
        "{r}"
    );
    let r = m.call("alipay.trade.refund", refund("0.30", "R1")).await;
    assert_eq!(
        (r["fund_change"].as_str(), r["refund_fee"].as_str()),
        (Some("N"), Some("0.30")),
        "{r}"
    );
    let r = m.call("alipay.trade.refund", refund("0.40", "R1")).await;
    assert_eq!(sub_code(&r), "ACQ.DISCORDANT_REPEAT_REQUEST");
    let r = m.call("alipay.trade.refund", refund("0.80", "R2")).await;
    assert_eq!(sub_code(&r), "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");
    let r = m.call("alipay.trade.refund", refund("0.70", "R2")).await;
    assert_eq!(
        (r["fund_change"].as_str(), r["refund_fee"].as_str()),
        (Some("Y"), Some("1.00"))
    );
    let by_no = json!({"out_trade_no": "REFUND_01"});
    assert_eq!(
        m.call("alipay.trade.query", by_no).await["trade_status"],
        "TRADE_CLOSED"
    );

    let rq = |rno: &str| json!({"out_trade_no": "REFUND_01", "out_request_no": rno});
    let r = m.call("alipay.trade.fastpay.refund.query", rq("R1")).await;
    assert_eq!(
        (r["refund_status"].as_str(), r["refund_amount"].as_str()),
        (Some("REFUND_SUCCESS"), Some("0.30"))
    );
    let r = m.call("alipay.trade.fastpay.refund.query", rq("R9")).await;
    assert_eq!(r["code"], "10000");
    assert!(r.get("refund_status").is_none(), "no such refund: {r}");

    let sent = rx.wait_for(3).await;
    assert!(sent.iter().all(verifies_notification));
    let partial = sent
        .iter()
        .find(|n| n.get("out_biz_no").map(String::as_str) == Some("R1"))
        .unwrap();
    assert_eq!(partial["trade_status"], "TRADE_SUCCESS");
    assert_eq!(partial["refund_fee"], "0.30");
    assert!(partial.contains_key("gmt_refund"));
    let full = sent
        .iter()
        .find(|n| n.get("out_biz_no").map(String::as_str) == Some("R2"))
        .unwrap();
    assert_eq!(full["trade_status"], "TRADE_CLOSED");
    assert_eq!(full["refund_fee"], "1.00");
    assert!(full.contains_key("gmt_close"));
    let held: Vec<Value> = app.sandbox_view("refunds?out_trade_no=REFUND_01").await;
    assert_eq!(held.len(), 2);
}

#[tokio::test]
async fn a_refund_system_error_comes_after_the_money_left_and_a_retry_finds_it() {
    let app = TestApp::spawn().await;
    let m = Merchant {
        app: &app,
        cert: false,
    };
    app.set_faults(
        json!({"prefix": "SYSERR_", "refund_system_errors": 1, "bad_signature": true,
        "wrong_amount": true}),
    )
    .await;
    let rx = Receiver::start(&[]).await;
    precreate(&m, "SYSERR_01", "2.00", &rx.url).await;
    app.sandbox_pay(json!({"out_trade_no": "SYSERR_01"})).await;
    let sent = rx.wait_for(1).await;
    assert!(!verifies_notification(&sent[0]), "the bad_signature fault");
    assert_eq!(sent[0]["total_amount"], "2.01", "the wrong_amount fault");
    let biz = json!({"out_trade_no": "SYSERR_01", "refund_amount": "2.00", "out_request_no": "R1"});
    let r = m.call("alipay.trade.refund", biz.clone()).await;
    assert_eq!(sub_code(&r), "ACQ.SYSTEM_ERROR");
    let r = m.call("alipay.trade.refund", biz).await;
    assert_eq!(
        (r["fund_change"].as_str(), r["refund_fee"].as_str()),
        (Some("N"), Some("2.00")),
        "{r}"
    );
}

#[tokio::test]
async fn certificate_mode_checks_the_app_and_root_sns_and_names_the_signing_certificate() {
    let mut config = test_config(&fresh_database_url());
    config.alipay.app_cert = Some("keys/sandbox/alipay_app_cert.pem".into());
    config.alipay.alipay_cert = Some("keys/sandbox/alipay_platform_cert.pem".into());
    config.alipay.alipay_root_cert = Some("keys/sandbox/alipay_root_cert.pem".into());
    let app = TestApp::spawn_on(config).await;
    let m = Merchant {
        app: &app,
        cert: true,
    };
    let biz = json!({"out_trade_no": "CERT_01", "total_amount": "0.01", "subject": "证书模式"});
    let raw = m.send(&m.params("alipay.trade.precreate", &biz, &[])).await;
    let r = verified(&raw, "alipay_trade_precreate_response");
    assert_eq!(r["code"], "10000", "{raw}");
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["alipay_cert_sn"], ALIPAY_CERT_SN);
    let object = raw_object(&raw, "alipay_trade_precreate_response");
    assert!(
        raw.contains(&format!("{object},\"alipay_cert_sn\"")),
        "response, cert SN, sign"
    );

    let plain = Merchant {
        app: &app,
        cert: false,
    };
    let r = plain
        .call("alipay.trade.query", json!({"out_trade_no": "CERT_01"}))
        .await;
    assert_eq!(sub_code(&r), "isv.app-cert-not-exist");
    let r = m
        .call_with(
            "alipay.trade.query",
            json!({"out_trade_no": "CERT_01"}),
            &[(
                "alipay_root_cert_sn",
                "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6",
            )],
        )
        .await;
    assert_eq!(sub_code(&r), "isv.invalid-alipay-root-cert-sn");
}

#[tokio::test]
async fn escaped_slashes_are_signed_as_the_plain_text_and_a_closed_wap_trade_is_notified() {
    let app = TestApp::spawn().await;
    let m = Merchant {
        app: &app,
        cert: false,
    };
    app.set_faults(json!({"prefix": "SLASH_", "alipay_escaped_slashes": true}))
        .await;
    let biz = json!({"out_trade_no": "SLASH_01", "total_amount": "0.01", "subject": "x"});
    let raw = m.send(&m.params("alipay.trade.precreate", &biz, &[])).await;
    assert!(raw.contains("\"qr_code\":\"http:\\/\\/"), "{raw}");
    let object = raw_object(&raw, "alipay_trade_precreate_response");
    let v: Value = serde_json::from_str(&raw).unwrap();
    let sign = v["sign"].as_str().unwrap();
    assert!(
        !platform_verifies(object, sign),
        "the raw text is not what was signed"
    );
    assert!(platform_verifies(&object.replace("\\/", "/"), sign));

    let rx = Receiver::start(&[]).await;
    let params = m.params(
        "alipay.trade.wap.pay",
        &json!({"out_trade_no": "WAP_CLOSE_01", "total_amount": "3.00", "subject": "手机",
            "product_code": "QUICK_WAP_WAY"}),
        &[("notify_url", &rx.url)],
    );
    let cashier = common::location(&open_cashier(&app, &params).await);
    app.browser.get(&cashier).send().await.unwrap();
    let by_no = json!({"out_trade_no": "WAP_CLOSE_01"});
    assert_eq!(m.call("alipay.trade.close", by_no).await["code"], "10000");
    let sent = rx.wait_for(1).await;
    assert!(verifies_notification(&sent[0]));
    assert_eq!(sent[0]["trade_status"], "TRADE_CLOSED");
    assert!(!sent[0].contains_key("refund_fee") && sent[0].contains_key("gmt_close"));
}

//! Daily reconciliation against WeChat Pay's bill (v2 `downloadbill` from the sandbox): a
//! clean day has no difference; each bill fault gives exactly its difference; a payment the
//! shop missed is applied once (补单), whichever of the bill and a late notification comes
//! first; a day run again replaces its result without applying twice; two runs at once are
//! one; a bill not made yet is `not_ready`, a malformed one `failed` naming its line; the
//! admin 对账 page shows the day, resolves a difference with the admin's name, exports CSV.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{html, order_status, select_text, TestApp};
use jiesuan::domain::Provider;
use jiesuan::services::reconcile::{Kind, Outcome};
use serde_json::{json, Value};

/// Today in Beijing: the day the tests' payments are on.
fn today() -> chrono::NaiveDate {
    chrono::Utc::now()
        .with_timezone(&jiesuan::domain::shanghai())
        .date_naive()
}

/// A NATIVE order of user `code`, created at the sandbox: (order id, out_trade_no, fen).
async fn native(app: &TestApp, code: &str) -> (i32, String, i64) {
    let (_, id, no, amount) = app.native_attempt(code).await;
    (id, no, amount)
}

/// Pays `no` at the sandbox and waits for the shop to know.
async fn pay(app: &TestApp, id: i32, no: &str) {
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    app.wait_for_status(id, 2).await;
}

/// The sandbox's day ends: yesterday's bill can be made.
async fn next_day(app: &TestApp) {
    app.sandbox_control("clock", json!({ "advance_seconds": 86_400 }))
        .await;
}

async fn reconcile(app: &TestApp, holder: &str) -> Outcome {
    app.state
        .gateway()
        .reconcile(today(), Provider::Wechat, holder)
        .await
        .unwrap()
        .expect("the day's lease")
}

/// Today's bill is not made yet; then the trades move to yesterday (APIv3 answers and
/// Alipay requests must be timed close to the other side's clock, so the sandbox's clock
/// cannot move a day on instead) and yesterday is reconciled.
async fn today_then_yesterday(app: &TestApp, provider: Provider) -> Outcome {
    let gateway = app.state.gateway();
    let early = gateway.reconcile(today(), provider, "early").await.unwrap();
    assert_eq!(early.unwrap().run.status, "not_ready");
    app.sandbox_control("age", json!({ "seconds": 86_400 }))
        .await;
    let yesterday = today() - chrono::Duration::days(1);
    gateway
        .reconcile(yesterday, provider, "late")
        .await
        .unwrap()
        .unwrap()
}

/// (kind, out_trade_no) of each difference, sorted.
fn kinds(o: &Outcome) -> Vec<(&'static str, String)> {
    let mut v: Vec<_> = o
        .differences
        .iter()
        .map(|d| (d.kind.as_str(), d.out_trade_no.clone().unwrap_or_default()))
        .collect();
    v.sort();
    v
}

/// Refunds `fen` of order `id` and waits until WeChat has done it.
async fn refund(app: &TestApp, id: i32, fen: i64, no: &str, status: i32) {
    let gateway = app.state.gateway();
    gateway
        .refund(common::refund_request(id, fen, no))
        .await
        .unwrap();
    for _ in 0..100 {
        if order_status(app, id) == status {
            return;
        }
        gateway.sweep_refunds().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("refund {no} never completed");
}

#[tokio::test]
async fn a_clean_day_has_no_difference_and_counts_payments_refunds_and_fees() {
    let app = TestApp::spawn().await;
    let (a, a_no, a_fen) = native(&app, "clean_a").await;
    let (b, b_no, b_fen) = native(&app, "clean_b").await;
    pay(&app, a, &a_no).await;
    pay(&app, b, &b_no).await;
    refund(&app, b, 100, &format!("RC{b}"), 7).await;
    // Today's bill is not made yet.
    let early = reconcile(&app, "early").await;
    assert_eq!(early.run.status, "not_ready", "{:?}", early.run);
    next_day(&app).await;
    let o = reconcile(&app, "clean").await;
    assert_eq!(o.run.status, "done", "{:?}", o.run);
    assert!(o.differences.is_empty(), "{:?}", o.differences);
    assert_eq!((o.run.payments, o.run.payment_total), (2, a_fen + b_fen));
    assert_eq!((o.run.refunds, o.run.refund_total), (1, 100));
    // 0.6 %: fen × 6 in 1/100000 yuan, the refund's fee given back.
    assert_eq!(o.run.fee_e5, (a_fen + b_fen - 100) * 6);
}

#[tokio::test]
async fn each_fault_of_the_bill_is_exactly_its_difference() {
    let app = TestApp::spawn().await;
    // Paid at WeChat, the notification lost: the shop never heard of it.
    let (missed, missed_no, _) = native(&app, "f_missed").await;
    app.set_faults(json!({ "prefix": missed_no, "never_deliver": true }))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": missed_no })).await;
    // Paid in the shop; WeChat has no such payment.
    let (lost, lost_no, _) = native(&app, "f_lost").await;
    pay(&app, lost, &lost_no).await;
    app.set_faults(json!({ "prefix": lost_no, "bill_omit": true }))
        .await;
    // WeChat's bill says another amount.
    let (changed, changed_no, _) = native(&app, "f_changed").await;
    app.set_faults(json!({ "prefix": changed_no, "bill_wrong_amount": true }))
        .await;
    pay(&app, changed, &changed_no).await;
    // A refund WeChat booked twice.
    let (twice, twice_no, _) = native(&app, "f_twice").await;
    app.set_faults(json!({ "prefix": twice_no, "bill_duplicate_refund": true }))
        .await;
    pay(&app, twice, &twice_no).await;
    refund(&app, twice, 100, &format!("RT{twice}"), 7).await;
    // And one that is right.
    let (fine, fine_no, _) = native(&app, "f_fine").await;
    pay(&app, fine, &fine_no).await;
    assert_eq!(order_status(&app, missed), 1, "the shop has not heard");

    next_day(&app).await;
    let o = reconcile(&app, "faults").await;
    assert_eq!(
        kinds(&o),
        vec![
            ("amount_mismatch", changed_no.clone()),
            ("duplicate_refund", twice_no.clone()),
            ("missing_in_shop", missed_no.clone()),
            ("missing_on_platform", lost_no.clone()),
        ]
    );
    let _ = fine;
    // The missed payment is applied (补单), through apply_payment, once.
    assert_eq!(order_status(&app, missed), 2);
    let applied = o
        .differences
        .iter()
        .find(|d| d.kind == Kind::MissingInShop)
        .unwrap();
    assert_eq!(applied.order_id, Some(missed));
    let bill_rows = |app: &TestApp| {
        app.pay_logs(missed)
            .into_iter()
            .filter(|(kind, _, outcome, _)| kind == "bill" && outcome.starts_with("paid"))
            .count()
    };
    assert_eq!(bill_rows(&app), 1);

    // Its notification comes after all: a duplicate, nothing applied again.
    let attempt = app.attempts(missed).pop().unwrap();
    let tx = attempt.transaction_no.clone().unwrap();
    let key = app.state.config.wechat.api_key.clone();
    let body = common::wechat_notification(&app, &missed_no, attempt.amount, &tx, &key);
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/pay/notify", app.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("SUCCESS"));
    assert!(app
        .pay_logs(missed)
        .iter()
        .any(|(kind, _, outcome, _)| kind == "notify" && outcome == "duplicate"));

    // Run again: the same differences (the 补单 still listed), nothing applied twice.
    let again = reconcile(&app, "faults-again").await;
    assert_eq!(kinds(&again), kinds(&o));
    assert_eq!(bill_rows(&app), 1);
    let stored: i64 = app.with_conn(|c| {
        use diesel::prelude::*;
        use jiesuan::models::schema::recon_diff::dsl as d;
        d::recon_diff.count().get_result(c).unwrap()
    });
    assert_eq!(stored, 4, "a day run again replaces its differences");
}

#[tokio::test]
async fn a_late_notification_before_the_bill_leaves_nothing_to_apply() {
    let app = TestApp::spawn().await;
    let (id, no, amount) = native(&app, "late_first").await;
    app.set_faults(json!({ "prefix": no, "never_deliver": true }))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    // The query door (or a late notification) finds it first.
    let tx = {
        let found = app.state.gateway().query_order(id).await.unwrap();
        assert_eq!(found.len(), 1);
        app.attempts(id).pop().unwrap().transaction_no.unwrap()
    };
    assert_eq!(order_status(&app, id), 2);
    let _ = (tx, amount);
    next_day(&app).await;
    let o = reconcile(&app, "late").await;
    assert!(o.differences.is_empty(), "{:?}", o.differences);
    assert!(!app
        .pay_logs(id)
        .iter()
        .any(|(kind, _, _, _)| kind == "bill"));
}

#[tokio::test]
async fn a_day_held_by_another_instance_is_not_run_and_concurrent_runs_apply_once() {
    let app = TestApp::spawn().await;
    let (id, no, _) = native(&app, "twice_run").await;
    app.set_faults(json!({ "prefix": no, "never_deliver": true }))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": no })).await;
    next_day(&app).await;
    let day = today();
    // Another instance is reconciling the day: this one does not.
    let name = format!("reconcile:wechat:{day}");
    let held = app.with_conn(|c| {
        let now = chrono::Utc::now().naive_utc();
        jiesuan::models::job_lease::acquire(
            c,
            &name,
            "instance-a",
            now,
            chrono::Duration::minutes(10),
        )
        .unwrap()
    });
    assert!(held);
    let gateway = app.state.gateway();
    let skipped = gateway
        .reconcile(day, Provider::Wechat, "instance-b")
        .await
        .unwrap();
    assert!(skipped.is_none(), "one instance holds the day");
    assert_eq!(
        order_status(&app, id),
        1,
        "nothing applied by the skipped run"
    );
    app.with_conn(|c| {
        jiesuan::models::job_lease::release(c, &name, "instance-a", chrono::Utc::now().naive_utc())
            .unwrap()
    });
    // Two at once, in whichever order they get the lease: the payment is applied once, the
    // day has one result.
    let (g1, g2) = (app.state.gateway(), app.state.gateway());
    let (a, b) = tokio::join!(
        g1.reconcile(day, Provider::Wechat, "instance-c"),
        g2.reconcile(day, Provider::Wechat, "instance-d"),
    );
    assert!(a.unwrap().is_some() || b.unwrap().is_some());
    assert_eq!(order_status(&app, id), 2);
    let applied = app
        .pay_logs(id)
        .into_iter()
        .filter(|(kind, _, outcome, _)| kind == "bill" && outcome.starts_with("paid"))
        .count();
    assert_eq!(applied, 1);
    let runs: i64 = app.with_conn(|c| {
        use diesel::prelude::*;
        use jiesuan::models::schema::recon_run::dsl as r;
        r::recon_run.count().get_result(c).unwrap()
    });
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn a_malformed_bill_fails_naming_its_line() {
    let app = TestApp::spawn().await;
    let (id, no, _) = native(&app, "malformed").await;
    app.set_faults(json!({ "prefix": no, "bill_malformed": true }))
        .await;
    pay(&app, id, &no).await;
    next_day(&app).await;
    let o = reconcile(&app, "malformed").await;
    assert_eq!(o.run.status, "failed");
    let error = o.run.error.unwrap();
    assert!(error.contains("line 2"), "{error}");
}

#[tokio::test]
async fn the_admin_page_shows_the_day_resolves_a_difference_and_exports_it() {
    let app = TestApp::spawn().await;
    let (id, no, _) = native(&app, "admin_recon").await;
    pay(&app, id, &no).await;
    app.set_faults(json!({ "prefix": no, "bill_wrong_amount": true }))
        .await;
    next_day(&app).await;
    app.admin_login().await;
    let day = today().to_string();
    // 重新对账 runs the day.
    let csrf = common::select_attr(
        &html(&app.pc_get(&format!("/admin/reconcile?date={day}")).await.1),
        "#recon-run input[name=csrf]",
        "value",
    )
    .unwrap();
    let (status, to, _) = app
        .pc_post("/admin/reconcile/run", &[("csrf", &csrf), ("date", &day)])
        .await;
    assert_eq!(
        (status, to.as_str()),
        (
            303,
            format!("/admin/reconcile?date={day}&done=run").as_str()
        )
    );
    let (_, page) = app.pc_get(&to).await;
    let doc = html(&page);
    assert_eq!(
        select_text(&doc, "tr.recon-run .recon-payments").as_deref(),
        Some("1")
    );
    assert_eq!(
        common::count_matches(&doc, "tr.recon-diff[data-kind=amount_mismatch]"),
        1
    );
    // Every admin page says there is a difference to look at.
    let (_, dash) = app.pc_get("/admin").await;
    assert!(dash.contains("对账发现 1 个差异待处理"), "{dash}");
    let action = common::select_attr(&doc, "form.recon-resolve", "action").unwrap();
    let (status, _, _) = app
        .pc_post(&action, &[("csrf", &csrf), ("date", &day), ("note", "")])
        .await;
    assert_eq!(status, 400, "a note is required");
    let (status, _, _) = app
        .pc_post(
            &action,
            &[
                ("csrf", &csrf),
                ("date", &day),
                ("note", "微信账单金额有误，已联系客服"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (_, page) = app.pc_get(&format!("/admin/reconcile?date={day}")).await;
    let resolved = select_text(&html(&page), ".recon-resolved").unwrap();
    assert!(resolved.contains("已联系客服"), "{resolved}");
    assert!(resolved.contains("boss"), "{resolved}");
    let (_, dash) = app.pc_get("/admin").await;
    assert!(!dash.contains("对账发现"), "resolved: no alarm");
    // 重新对账 finds it again: it stays resolved, with its note.
    let (status, _, _) = app
        .pc_post("/admin/reconcile/run", &[("csrf", &csrf), ("date", &day)])
        .await;
    assert_eq!(status, 303);
    let (_, page) = app.pc_get(&format!("/admin/reconcile?date={day}")).await;
    let again = select_text(&html(&page), ".recon-resolved").unwrap();
    assert_eq!(again, resolved);
    let (status, csv) = app
        .pc_get(&format!("/admin/reconcile.csv?date={day}"))
        .await;
    assert_eq!(status, 200);
    assert!(csv.contains("支付金额不一致") && csv.contains(&no), "{csv}");
    let _: Value = json!(null);
}

#[tokio::test]
async fn an_apiv3_merchant_reconciles_with_its_tradebill() {
    let mut config = common::test_config(&common::fresh_database_url());
    config.wechat.api_version = jiesuan::config::ApiVersion::V3;
    config.wechat.v3_public_key_id = Some(jiesuan::config::SANDBOX_V3_PUBLIC_KEY_ID.into());
    config.wechat.v3_public_key = Some(jiesuan::config::SANDBOX_V3_PUBLIC_KEY.into());
    let app = TestApp::spawn_on(config).await;
    assert_eq!(
        app.state.gateway().billed_providers(),
        vec![Provider::WechatV3]
    );
    let (paid, paid_no, paid_fen) = native(&app, "v3_paid").await;
    pay(&app, paid, &paid_no).await;
    let (missed, missed_no, missed_fen) = native(&app, "v3_missed").await;
    app.set_faults(json!({ "prefix": missed_no, "never_deliver": true }))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": missed_no })).await;
    assert_eq!(app.attempts(missed)[0].provider, "wechat_v3");
    let o = today_then_yesterday(&app, Provider::WechatV3).await;
    assert_eq!(o.run.status, "done", "{:?}", o.run);
    assert_eq!(
        (o.run.payments, o.run.payment_total),
        (2, paid_fen + missed_fen)
    );
    assert_eq!(kinds(&o), vec![("missing_in_shop", missed_no.clone())]);
    assert_eq!(order_status(&app, missed), 2);
}

#[tokio::test]
async fn alipay_direct_reconciles_with_its_gbk_zip_bill() {
    let mut config = common::test_config(&common::fresh_database_url());
    config.cashier = jiesuan::config::Cashier::Direct;
    let app = TestApp::spawn_on(config).await;
    assert!(app
        .state
        .gateway()
        .billed_providers()
        .contains(&Provider::Alipay));
    app.pc_register("ali_recon").await;
    app.pc_address().await;
    // The Alipay app scans the shop's QR: its precreate attempt.
    let scan = || async {
        let order_no = app.pc_order(1, 1).await;
        let (status, _, _) = app.open_qr(&order_no, common::ALIPAY_UA).await;
        assert_eq!(status, 302);
        let id = app.order_by_no(&order_no).id;
        let a = app.attempts(id).pop().unwrap();
        assert_eq!(a.provider, "alipay");
        (id, a.out_trade_no, a.amount)
    };
    let (paid, paid_no, paid_fen) = scan().await;
    app.sandbox_pay(json!({ "out_trade_no": paid_no })).await;
    app.wait_for_status(paid, 2).await;
    let (missed, missed_no, missed_fen) = scan().await;
    app.set_faults(json!({ "prefix": missed_no, "never_deliver": true }))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": missed_no })).await;
    let (twice, twice_no, twice_fen) = scan().await;
    app.set_faults(json!({ "prefix": twice_no, "bill_duplicate_refund": true }))
        .await;
    app.sandbox_pay(json!({ "out_trade_no": twice_no })).await;
    app.wait_for_status(twice, 2).await;
    refund(&app, twice, 100, &format!("RA{twice}"), 7).await;
    assert_eq!(order_status(&app, missed), 1);
    let o = today_then_yesterday(&app, Provider::Alipay).await;
    assert_eq!(o.run.status, "done", "{:?}", o.run);
    assert_eq!(
        (o.run.payments, o.run.payment_total),
        (3, paid_fen + missed_fen + twice_fen)
    );
    assert_eq!((o.run.refunds, o.run.refund_total), (2, 200));
    assert_eq!(
        kinds(&o),
        vec![
            ("duplicate_refund", twice_no.clone()),
            ("missing_in_shop", missed_no.clone()),
        ]
    );
    assert_eq!(order_status(&app, missed), 2, "补单");
    let _ = paid;
}

#[tokio::test]
async fn the_daily_job_reconciles_the_last_three_days_from_its_hour() {
    let count = |app: &TestApp| -> i64 {
        app.with_conn(|c| {
            use diesel::prelude::*;
            use jiesuan::models::schema::recon_run::dsl as r;
            r::recon_run.count().get_result(c).unwrap()
        })
    };
    // reconcile_hour = 24: never by itself.
    let mut config = common::test_config(&common::fresh_database_url());
    config.reconcile_hour = 24;
    let never = TestApp::spawn_on(config).await;
    jiesuan::jobs::tick(&never.state.gateway(), &never.state).await;
    assert_eq!(count(&never), 0);
    // From hour 0: yesterday and the two days before, once each.
    let mut config = common::test_config(&common::fresh_database_url());
    config.reconcile_hour = 0;
    let app = TestApp::spawn_on(config).await;
    jiesuan::jobs::tick(&app.state.gateway(), &app.state).await;
    assert_eq!(count(&app), 3);
    let days: Vec<String> = app.with_conn(|c| {
        use diesel::prelude::*;
        use jiesuan::models::schema::recon_run::dsl as r;
        r::recon_run
            .select(r::bill_date)
            .order(r::bill_date.desc())
            .load(c)
            .unwrap()
    });
    let yesterday = today() - chrono::Duration::days(1);
    assert_eq!(days[0], yesterday.to_string());
    // A done day is not fetched again: its run stays as it was.
    let finished = || {
        app.with_conn(|c| {
            use diesel::prelude::*;
            use jiesuan::models::schema::recon_run::dsl as r;
            r::recon_run
                .select(r::finished_at)
                .order(r::bill_date.asc())
                .load::<chrono::NaiveDateTime>(c)
                .unwrap()
        })
    };
    let before = finished();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    jiesuan::jobs::tick(&app.state.gateway(), &app.state).await;
    assert_eq!(count(&app), 3);
    assert_eq!(finished(), before);
}

//! The shop on replicated databases: three instances on a three-node MariaDB Galera cluster
//! (multi-primary: a conflicting commit fails at certification and must be retried), and two
//! instances on a PostgreSQL primary whose synchronous standby is promoted when it dies.
//! `scripts/cluster.sh start` starts the servers and prints the variables read here; the tests
//! take turns (one kills servers the others use).
#![cfg(all(feature = "cluster", feature = "mysql", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fresh_database_on, order_status, test_config, wechat_notification, TestApp};
use jiesuan::config::Config;
use jiesuan::payment::wechat::notify::SUCCESS_REPLY;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One cluster test at a time: the kill tests take servers away from the others.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run `eval \"$(scripts/cluster.sh start)\"`"))
}

/// Runs `scripts/cluster.sh ARGS` (kill, restart, promote a server).
fn cluster(args: &[&str]) {
    let status = std::process::Command::new(env("JIESUAN_CLUSTER_SCRIPT"))
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "cluster.sh {args:?}: {status}");
}

/// `base` with its database part replaced by `url`'s.
fn same_database(base: &str, url: &str) -> String {
    let (head, _) = base.rsplit_once('/').unwrap();
    let (_, name) = url.rsplit_once('/').unwrap();
    format!("{head}/{name}")
}

/// Three instances, instance i on Galera node i, one fresh database, one session secret;
/// their jobs tick every `sweep_interval_seconds` (0: never).
async fn galera_shops(sweep_interval_seconds: u64) -> Vec<TestApp> {
    let nodes: Vec<String> = (1..=3)
        .map(|i| env(&format!("JIESUAN_GALERA_{i}")))
        .collect();
    let url = fresh_database_on(&nodes[0]);
    let mut config = test_config(&url);
    config.metrics = true;
    config.sweep_interval_seconds = sweep_interval_seconds;
    let mut apps = Vec::new();
    for node in &nodes {
        apps.push(TestApp::spawn_on(on(&config, &same_database(node, &url))).await);
    }
    apps
}

fn on(config: &Config, database_url: &str) -> Config {
    Config {
        database_url: database_url.to_string(),
        ..config.clone()
    }
}

/// Retries made by the instances, as `/metrics` reports them.
async fn retries(apps: &[TestApp]) -> u64 {
    let mut total = 0;
    for app in apps {
        let (_, text) = app.scrape(None).await;
        let counted: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("jiesuan_db_retries_total "))
            .unwrap_or_else(|| panic!("no retry counter in {text}"))
            .parse()
            .unwrap();
        assert_eq!(counted, app.state.db.retries());
        total += counted;
    }
    total
}

/// The signed notification of `no`'s payment.
fn paid(app: &TestApp, no: &str, amount: i64, n: usize) -> String {
    let key = app.state.config.wechat.api_key.clone();
    wechat_notification(
        app,
        no,
        amount,
        &format!("42000000002026120100{n:08}"),
        &key,
    )
}

fn notify_url(app: &TestApp) -> String {
    format!("{}/api/v1/pay/notify", app.url)
}

/// Every `notify` row of the order: one paid with the dedupe key, the rest duplicates.
fn assert_paid_once(app: &TestApp, id: i32, copies: Option<usize>) {
    assert_eq!(order_status(app, id), 2, "order {id}");
    let logs = app.pay_logs(id);
    let notifies: Vec<_> = logs.iter().filter(|l| l.0 == "notify").collect();
    assert_eq!(
        notifies.iter().filter(|l| l.3).count(),
        1,
        "one dedupe row: {logs:?}"
    );
    assert_eq!(
        notifies.iter().filter(|l| l.2 == "paid").count(),
        1,
        "{logs:?}"
    );
    if let Some(n) = copies {
        assert_eq!(notifies.len(), n, "{logs:?}");
        assert_eq!(
            notifies.iter().filter(|l| l.2 == "duplicate").count(),
            n - 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_copies_over_three_galera_nodes_pay_once_and_all_are_answered_success() {
    let _turn = SERIAL.lock().await;
    let apps = galera_shops(0).await;
    let urls: Vec<String> = apps.iter().map(notify_url).collect();
    for trial in 0..10 {
        let shop = &apps[trial % 3];
        let (_, id, no, amount) = shop.native_attempt(&format!("storm-{trial}")).await;
        let before = shop.all_stock();
        let body = paid(shop, &no, amount, trial);
        let replies = shop
            .storm(&urls, &[("content-type", "text/xml".into())], &body, 64, 32)
            .await;
        for (status, reply) in &replies {
            assert_eq!(
                (*status, reply.as_str()),
                (200, SUCCESS_REPLY),
                "trial {trial}"
            );
        }
        for app in &apps {
            assert_paid_once(app, id, Some(64));
            assert_eq!(app.all_stock(), before, "trial {trial}: stock moved");
        }
    }
    eprintln!(
        "galera storms: {} database retries over 10 x 64 notifications",
        retries(&apps).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_shoppers_on_three_galera_nodes_buy_the_last_ten_units_exactly() {
    let _turn = SERIAL.lock().await;
    let apps = galera_shops(0).await;
    // Galera hands each node its own auto-increment offset: the ids are not 1..n.
    let (product, _) = *apps[0].all_stock().last().unwrap();
    apps[0].set_stock(product, 10);
    let mut shoppers = Vec::new();
    for i in 0..40 {
        let app = &apps[i % 3];
        shoppers.push((app, app.buyer(&format!("last-{i}")).await));
    }
    let line = [(product, 1)];
    let results =
        futures::future::join_all(shoppers.iter().map(|(app, t)| app.place(t, &line))).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    let placed = results.iter().filter(|(_, v)| v["pass"] == true).count();
    assert_eq!(placed, 10);
    for app in &apps {
        assert_eq!(app.stock(product), 0);
        assert_eq!(app.order_count(), 10);
    }
    eprintln!(
        "galera placement: {} database retries for 40 shoppers",
        retries(&apps).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_galera_run_each_job_once_per_interval() {
    let _turn = SERIAL.lock().await;
    // From before the first instance starts: its jobs tick while the others start.
    let started = Instant::now();
    let apps = galera_shops(1).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let elapsed = started.elapsed().as_secs_f64();
    // Read on another node than the first instance's.
    apps[2].assert_jobs_ran_once_per_interval(elapsed);
}

/// Sends every copy (round robin over `targets`, `at_once` at a time) while `during` runs;
/// counts the answers in `answered`; returns the copies not answered SUCCESS, with when each
/// of those answers came.
async fn deliver(
    copies: &[(usize, String)],
    targets: &[String],
    at_once: usize,
    answered: &AtomicUsize,
    during: impl std::future::Future<Output = ()>,
) -> (Vec<(usize, String)>, Vec<Instant>) {
    use futures::StreamExt;
    let client = reqwest::Client::new();
    let sent = futures::stream::iter(copies.iter().enumerate())
        .map(|(i, (order, body))| {
            let req = client
                .post(&targets[i % targets.len()])
                .header("content-type", "text/xml")
                .body(body.clone());
            async move {
                let ok = match req.send().await {
                    Ok(res) => {
                        res.status() == 200 && res.text().await.is_ok_and(|t| t == SUCCESS_REPLY)
                    }
                    Err(_) => false,
                };
                answered.fetch_add(1, Ordering::Relaxed);
                (ok, *order, body.clone(), Instant::now())
            }
        })
        .buffer_unordered(at_once)
        .collect::<Vec<_>>();
    let (answers, ()) = futures::join!(sent, during);
    let failed_at = answers.iter().filter(|a| !a.0).map(|a| a.3).collect();
    let failed = answers
        .into_iter()
        .filter(|a| !a.0)
        .map(|a| (a.1, a.2))
        .collect();
    (failed, failed_at)
}

/// Eight orders with NATIVE attempts placed through `apps`, and 48 signed copies of each
/// order's notification, interleaved: ((order id, out_trade_no, amount), (order, copy)).
async fn orders_and_copies(
    apps: &[TestApp],
    code: &str,
) -> (Vec<(i32, String, i64)>, Vec<(usize, String)>) {
    let mut orders = Vec::new();
    for i in 0..8 {
        let (_, id, no, amount) = apps[i % apps.len()]
            .native_attempt(&format!("{code}-{i}"))
            .await;
        orders.push((id, no, amount));
    }
    let mut copies = Vec::new();
    for _ in 0..48 {
        for (k, (_, no, amount)) in orders.iter().enumerate() {
            copies.push((k, paid(&apps[0], no, *amount, k)));
        }
    }
    (orders, copies)
}

fn report(what: &str, failed: usize, copies: usize, rounds: usize, apps: &[TestApp]) {
    let retries: u64 = apps.iter().map(|a| a.state.db.retries()).sum();
    eprintln!(
        "{what}: {failed} of {copies} copies failed and were redelivered in {rounds} round(s); {retries} database retries"
    );
}

/// Waits until `n` answers have come.
async fn after_answers(answered: &AtomicUsize, n: usize) {
    while answered.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Redelivers what failed, as the platform does, until every copy is answered SUCCESS.
async fn redeliver(mut failed: Vec<(usize, String)>, targets: &[String]) -> usize {
    let mut rounds = 0;
    while !failed.is_empty() {
        rounds += 1;
        assert!(
            rounds <= 10,
            "{} copies never answered SUCCESS",
            failed.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        failed = deliver(&failed, targets, 8, &AtomicUsize::new(0), async {})
            .await
            .0;
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_galera_node_killed_mid_storm_loses_nothing_and_rejoins() {
    let _turn = SERIAL.lock().await;
    let apps = galera_shops(0).await;
    let (orders, copies) = orders_and_copies(&apps[..2], "kill").await;
    let before = apps[0].all_stock();
    let all: Vec<String> = apps.iter().map(notify_url).collect();
    let answered = AtomicUsize::new(0);
    let kill = async {
        after_answers(&answered, copies.len() / 4).await;
        cluster(&["kill-galera", "3"]);
    };
    let (failed, _) = deliver(&copies, &all, 32, &answered, kill).await;
    let failed_count = failed.len();
    // The load balancer takes the third instance out; the platform redelivers.
    let rounds = redeliver(failed, &all[..2]).await;
    for (id, _, _) in &orders {
        assert_paid_once(&apps[0], *id, None);
    }
    assert_eq!(apps[1].all_stock(), before);

    cluster(&["start-galera", "3"]);
    // Rejoined: the third instance answers a late copy (its lost connections replaced), and
    // the node has every payment.
    let (_, no, amount) = &orders[0];
    let late = paid(&apps[0], no, *amount, 0);
    let late = deliver(&[(0, late)], &all[2..], 1, &AtomicUsize::new(0), async {}).await;
    assert!(late.0.is_empty(), "the rejoined instance refused a copy");
    let node3 = &apps[2].database_url;
    let direct = TestApp::spawn_on(test_config(node3)).await;
    for (id, _, _) in &orders {
        assert_paid_once(&direct, *id, None);
    }
    report("galera kill", failed_count, copies.len(), rounds, &apps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_primary_killed_mid_storm_fails_over_to_its_standby_losing_nothing() {
    let _turn = SERIAL.lock().await;
    cluster(&["restart-pg"]);
    let primary = env("JIESUAN_PG_PRIMARY");
    let standby = env("JIESUAN_PG_STANDBY");
    let url = fresh_database_on(&primary);
    let host = |u: &str| {
        u.split('@')
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    let (_, name) = url.rsplit_once('/').unwrap();
    let name = name.split('?').next().unwrap();
    // libpq tries the hosts in turn and keeps the one that accepts writes.
    let both = format!(
        "postgres://postgres@{},{}/{name}?target_session_attrs=read-write&connect_timeout=2&sslmode=disable",
        host(&primary),
        host(&standby)
    );
    let config = test_config(&both);
    let apps = [
        TestApp::spawn_on(config.clone()).await,
        TestApp::spawn_on(config).await,
    ];
    let (orders, copies) = orders_and_copies(&apps, "failover").await;
    let all: Vec<String> = apps.iter().map(notify_url).collect();
    let promoted = std::sync::Mutex::new(None);
    let answered = AtomicUsize::new(0);
    let failover = async {
        after_answers(&answered, copies.len() / 4).await;
        cluster(&["kill-pg-primary"]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster(&["promote-pg-standby"]);
        *promoted.lock().unwrap() = Some(Instant::now());
    };
    let (failed, failed_at) = deliver(&copies, &all, 32, &answered, failover).await;
    let promoted = promoted.lock().unwrap().unwrap();
    // Failures, if any, belong to the failover: none once it is some seconds behind.
    assert!(
        failed_at
            .iter()
            .all(|t| t.saturating_duration_since(promoted) < Duration::from_secs(5)),
        "errors long after the promotion"
    );
    let failed_count = failed.len();
    let rounds = redeliver(failed, &all).await;
    // Everything is on the promoted standby, read there directly.
    let direct = TestApp::spawn_on(test_config(&same_database(&standby, &url))).await;
    for (id, _, _) in &orders {
        assert_paid_once(&direct, *id, None);
    }
    report(
        "postgres failover",
        failed_count,
        copies.len(),
        rounds,
        &apps,
    );
}

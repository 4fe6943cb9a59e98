//! Concurrent buyers never oversell.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_buyers_for_five_units_make_exactly_five_orders() {
    let app = TestApp::spawn().await;
    app.set_stock(6, 5);
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(app.buyer(&format!("crowd-{i}")).await);
    }
    let results = futures::future::join_all(tokens.iter().map(|t| app.place(t, &[(6, 1)]))).await;
    let mut passed = 0;
    for (status, v) in &results {
        assert_eq!(*status, 200, "{v}");
        if v["pass"] == true {
            passed += 1;
        } else {
            assert_eq!(v["order_id"], -1);
            assert_eq!(v["pStatusArray"][0]["haveStock"], false);
        }
    }
    assert_eq!(passed, 5);
    assert_eq!(app.stock(6), 0);
    assert_eq!(app.order_count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crossing_multi_line_orders_neither_deadlock_nor_oversell() {
    let app = TestApp::spawn().await;
    app.set_stock(1, 6);
    app.set_stock(2, 6);
    let mut tokens = Vec::new();
    for i in 0..12 {
        tokens.push(app.buyer(&format!("cross-{i}")).await);
    }
    let app = &app;
    // Half list the lines one way round, half the other: ids are sorted before reserving.
    let results = futures::future::join_all(tokens.iter().enumerate().map(|(i, t)| {
        let lines: Vec<(i32, i64)> = if i % 2 == 0 {
            vec![(1, 1), (2, 1)]
        } else {
            vec![(2, 1), (1, 1)]
        };
        async move { app.place(t, &lines).await }
    }))
    .await;
    let passed = results
        .iter()
        .filter(|(s, v)| *s == 200 && v["pass"] == true)
        .count();
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert_eq!(passed, 6);
    assert_eq!((app.stock(1), app.stock(2)), (0, 0));
}

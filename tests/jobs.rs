//! Background jobs run once across instances: two shops on one database, each ticking every
//! second, share each job through its `job_lease` row, and the admin dashboard shows every
//! job's last run and outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{count_matches, fresh_database_url, html, test_config, TestApp};
use std::time::Duration;

#[tokio::test]
async fn two_instances_on_one_database_run_each_job_once_per_interval() {
    let database_url = fresh_database_url();
    let mut config = test_config(&database_url);
    config.sweep_interval_seconds = 1;
    // From before the first instance starts: its jobs tick while the second one starts.
    let started = std::time::Instant::now();
    let first = TestApp::spawn_on(config.clone()).await;
    let second = TestApp::spawn_on(config).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let elapsed = started.elapsed().as_secs_f64();

    first.assert_jobs_ran_once_per_interval(elapsed);

    second.admin_login().await;
    let res = second
        .browser
        .get(format!("{}/admin", second.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc = html(&res.text().await.unwrap());
    assert_eq!(count_matches(&doc, "#jobs .job-row"), 6);
    let sel =
        scraper::Selector::parse("#jobs .job-row[data-job=timeout_close] .job-outcome").unwrap();
    let outcome: String = doc.select(&sel).next().unwrap().text().collect();
    assert!(outcome.starts_with("ok"), "{outcome}");
}

#[tokio::test]
async fn a_lease_held_by_another_instance_is_taken_only_once_it_expires() {
    use jiesuan::models::job_lease::acquire;
    let app = TestApp::spawn().await;
    let now = jiesuan::models::now();
    let ttl = chrono::Duration::seconds(30);
    app.with_conn(|c| {
        assert!(acquire(c, "probe", "a", now, ttl).unwrap());
        assert!(!acquire(c, "probe", "b", now, ttl).unwrap());
        // The holder renews its own lease.
        assert!(acquire(c, "probe", "a", now + ttl / 2, ttl).unwrap());
        assert!(!acquire(c, "probe", "b", now + ttl, ttl).unwrap());
        assert!(acquire(c, "probe", "b", now + ttl * 2, ttl).unwrap());
        assert!(!acquire(c, "probe", "a", now + ttl * 2, ttl).unwrap());
    });
}

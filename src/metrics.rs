//! The shop's Prometheus series: one registry per `AppState` (tests run many apps in one
//! process, so nothing is global). Counters are bumped where things happen; the database
//! figures (pool, open attempts, refunds by status) are read at scrape time. Imports nothing
//! of the shop but its domain types.

use crate::domain::RefundStatus;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every series the shop exports.
pub struct Metrics {
    registry: Registry,
    pub orders_placed: IntCounter,
    pub payments_applied: IntCounterVec,
    pub notifications: IntCounterVec,
    pub job_runs: IntCounterVec,
    pub job_failures: IntCounterVec,
    pub request_seconds: HistogramVec,
    db_retries: IntCounter,
    refunds: IntGaugeVec,
    open_attempts: IntGauge,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
}

/// What the database says at scrape time.
pub struct DbFigures {
    pub open_attempts: i64,
    pub refunds: Vec<(RefundStatus, i64)>,
    /// r2d2's `state()`: connections open, of which idle.
    pub pool_connections: u32,
    pub pool_idle: u32,
    /// `Db::retries()`: database work run again after a conflict or a lost connection.
    pub db_retries: u64,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> Result<C, prometheus::Error> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new_custom(Some("jiesuan".into()), None)?;
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(&r, IntCounterVec::new(Opts::new(name, help), labels)?)
        };
        let gauge = |name: &str, help: &str| register(&r, IntGauge::new(name, help)?);
        Ok(Metrics {
            orders_placed: register(
                &r,
                IntCounter::new("orders_placed_total", "Orders placed (stock reserved)")?,
            )?,
            payments_applied: counter_vec(
                "payments_applied_total",
                "Payments applied to an order, by either door (notification or query)",
                &["provider", "channel"],
            )?,
            notifications: counter_vec(
                "notifications_total",
                "Payment notifications by their pay_log outcome",
                &["provider", "outcome"],
            )?,
            job_runs: counter_vec("job_runs_total", "Background job runs", &["job"])?,
            job_failures: counter_vec("job_failures_total", "Background job failures", &["job"])?,
            request_seconds: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_request_duration_seconds",
                        "Request latency by matched route",
                    ),
                    &["method", "route", "status"],
                )?,
            )?,
            db_retries: register(
                &r,
                IntCounter::new(
                    "db_retries_total",
                    "Database work run again: a transaction the database rolled back for a conflict (deadlock, Galera certification, node not ready) or work whose connection was lost",
                )?,
            )?,
            refunds: register(
                &r,
                IntGaugeVec::new(Opts::new("refunds", "Refunds by status"), &["status"])?,
            )?,
            open_attempts: gauge("open_attempts", "Payment attempts still pending")?,
            pool_connections: gauge("db_pool_connections", "Database connections open")?,
            pool_idle: gauge("db_pool_idle_connections", "Database connections idle")?,
            registry: r,
        })
    }

    /// The text exposition of every series, the database figures set first.
    pub fn render(&self, db: &DbFigures) -> Result<String, prometheus::Error> {
        self.open_attempts.set(db.open_attempts);
        for (status, n) in &db.refunds {
            let label = format!("{status:?}").to_lowercase();
            self.refunds.with_label_values(&[label.as_str()]).set(*n);
        }
        self.pool_connections.set(i64::from(db.pool_connections));
        self.pool_idle.set(i64::from(db.pool_idle));
        // The count lives in `Db`; the counter catches up with it (it never goes down).
        self.db_retries
            .inc_by(db.db_retries.saturating_sub(self.db_retries.get()));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Counts one notification by provider and outcome (the `pay_log` outcome string).
    pub fn notification(&self, provider: &str, outcome: &str) {
        self.notifications
            .with_label_values(&[provider, outcome])
            .inc();
    }

    /// Counts a job's run, and its failure.
    pub fn job(&self, name: &str, ok: bool) {
        self.job_runs.with_label_values(&[name]).inc();
        if !ok {
            self.job_failures.with_label_values(&[name]).inc();
        }
    }
}

//! Background jobs, in process. Each job takes its lease row in `job_lease` before it runs,
//! so N instances on one database run each job once per interval; every write they make is
//! compare-and-set besides. On shutdown the current job step finishes before the loop ends.
//! May import services and models.

use crate::models::job_lease;
use crate::services::gateway::Gateway;
use crate::services::{lifecycle, run};
use crate::startup::AppState;
use chrono::Timelike;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// The jobs' names in `job_lease`, in the order a round runs them.
pub const RECONCILIATION_SWEEP: &str = "reconciliation_sweep";
pub const TIMEOUT_CLOSE: &str = "timeout_close";
pub const REFUND_SWEEP: &str = "refund_sweep";
pub const SHIPPING_UPLOAD: &str = "shipping_upload";
pub const CALLBACK_HEALTH: &str = "callback_health";
pub const DAILY_RECONCILE: &str = "daily_reconcile";

/// A bill that was not ready (or could not be fetched) is tried again after this long.
const RECONCILE_RETRY: chrono::Duration = chrono::Duration::minutes(30);

/// This instance's claim on the jobs: who it is, and how long a lease it takes (one interval).
pub struct Lease {
    pub holder: String,
    pub ttl: chrono::Duration,
}

impl Lease {
    /// A holder name unique to this process.
    pub fn new(interval: Duration) -> Lease {
        Lease {
            holder: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
            ttl: chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::seconds(30)),
        }
    }
}

/// Runs `job` if `lease` (when given) lets this instance run `name` now, and records its
/// outcome in the lease row. None when skipped or failed (the failure is logged).
async fn leased<T: Display>(
    state: &AppState,
    lease: Option<&Lease>,
    name: &'static str,
    job: impl Future<Output = Result<T, String>>,
) -> Option<T> {
    let Some(lease) = lease else {
        let result = job.await;
        state.metrics.job(name, result.is_ok());
        return result.map_err(|e| log::warn!("{name} failed: {e}")).ok();
    };
    let (holder, ttl) = (lease.holder.clone(), lease.ttl);
    let taken = run(&state.db, move |c| {
        Ok(job_lease::acquire(
            c,
            name,
            &holder,
            crate::models::now(),
            ttl,
        )?)
    })
    .await;
    match taken {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            log::warn!("{name}: cannot take its lease: {e}");
            return None;
        }
    }
    let result = job.await;
    state.metrics.job(name, result.is_ok());
    let outcome = match &result {
        Ok(v) => format!("ok: {v}"),
        Err(e) => format!("failed: {e}"),
    };
    let holder = lease.holder.clone();
    let recorded = run(&state.db, move |c| {
        Ok(job_lease::finish(
            c,
            name,
            &holder,
            crate::models::now(),
            &outcome,
        )?)
    })
    .await;
    if let Err(e) = recorded {
        log::warn!("{name}: cannot record its run: {e}");
    }
    result.map_err(|e| log::warn!("{name} failed: {e}")).ok()
}

/// One round of every job, each under its lease when one is given; returns what it did.
async fn round(
    gateway: &Gateway,
    state: &AppState,
    lease: Option<&Lease>,
) -> (usize, usize, usize) {
    let age = chrono::Duration::seconds(state.config.query_pending_after_seconds);
    // Ask before closing: a payment found by the sweep must not be closed first.
    let sweep = async { gateway.sweep(age).await.map_err(|e| e.to_string()) };
    let confirmed = leased(state, lease, RECONCILIATION_SWEEP, sweep).await;
    let close = async { gateway.close_expired().await.map_err(|e| e.to_string()) };
    let closed = leased(state, lease, TIMEOUT_CLOSE, close).await;
    let refunds = async { gateway.sweep_refunds().await.map_err(|e| e.to_string()) };
    let refunded = leased(state, lease, REFUND_SWEEP, refunds).await;
    let shipping = async { gateway.sweep_shipping().await.map_err(|e| e.to_string()) };
    if let Some(n @ 1..) = leased(state, lease, SHIPPING_UPLOAD, shipping).await {
        log::info!("jobs: {n} parcel(s) reported to WeChat");
    }
    let window = chrono::Duration::seconds(state.config.callback_alarm_after_seconds);
    let min = state.config.callback_alarm_min_confirmations;
    let health = async {
        let h = run(&state.db, move |c| {
            lifecycle::callback_health(c, window, min)
        })
        .await
        .map_err(|e| e.to_string())?;
        if h.degraded {
            log::warn!(
                "callbacks look broken: {} payment(s) confirmed by query, last verified notification {:?} (check the notify URL, WAF or CDN)",
                h.confirmed_by_query,
                h.last_verified_notification
            );
        }
        Ok::<_, String>(if h.degraded { "degraded" } else { "healthy" })
    };
    leased(state, lease, CALLBACK_HEALTH, health).await;
    let holder = lease.map_or("tick", |l| l.holder.as_str());
    let bills = daily_reconcile(gateway, state, holder);
    if let Some(n @ 1..) = leased(state, lease, DAILY_RECONCILE, bills).await {
        log::info!("jobs: {n} day bill(s) reconciled");
    }
    (
        confirmed.unwrap_or(0),
        closed.unwrap_or(0),
        refunded.unwrap_or(0),
    )
}

/// The last three days' bills, from `reconcile_hour` (Beijing time): each billed platform
/// whose day has no good run yet is reconciled; one not ready or failed is tried again
/// after `RECONCILE_RETRY`. Each day's run takes its own lease besides (`Gateway::reconcile`).
async fn daily_reconcile(
    gateway: &Gateway,
    state: &AppState,
    holder: &str,
) -> Result<usize, String> {
    let now = chrono::Utc::now().with_timezone(&crate::domain::shanghai());
    if now.hour() < state.config.reconcile_hour {
        return Ok(0);
    }
    let mut done = 0;
    // Yesterday, and the two days before in case the shop was down.
    let mut due = Vec::new();
    for n in 1..=3 {
        let day = now.date_naive() - chrono::Duration::days(n);
        for provider in gateway.billed_providers() {
            due.push((day, provider));
        }
    }
    for (day, provider) in due {
        let key = day.to_string();
        let last = run(&state.db, move |c| {
            Ok(crate::models::recon::run_of(c, &key, provider.as_str())?)
        })
        .await
        .map_err(|e| e.to_string())?;
        let due = match last {
            None => true,
            Some(r) if r.status == "done" => false,
            Some(r) => r.finished_at + RECONCILE_RETRY < crate::models::now(),
        };
        if !due {
            continue;
        }
        // A failure is recorded on the day (tried again after RECONCILE_RETRY); the other
        // days and platforms go on.
        match gateway.reconcile(day, provider, holder).await {
            Ok(Some(_)) => done += 1,
            Ok(None) => {}
            Err(e) => log::warn!("reconciliation of {provider} {day} failed: {e}"),
        }
    }
    Ok(done)
}

/// One round of every job, without leases (tests drive the jobs with it); returns what it did.
pub async fn tick(gateway: &Gateway, state: &AppState) -> (usize, usize, usize) {
    round(gateway, state, None).await
}

/// The running job loop: stop it to let its current step finish.
pub struct Jobs {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Jobs {
    /// Asks the loop to end after its current step and waits up to `grace` for it.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, self.task).await.is_err() {
            log::warn!("background jobs did not finish within {grace:?}; exiting anyway");
        }
    }

    /// Lets the loop run for as long as the runtime does.
    pub fn detach(self) {
        drop(self.stop);
    }
}

/// Starts the jobs every `sweep_interval_seconds` (none when 0): the reconciliation sweep
/// (pending attempts asked about at their gateway), the timeout close, the refund queries,
/// the shipping uploads, the callback-health check; each under its lease.
pub fn spawn(state: &AppState) -> Option<Jobs> {
    let every = state.config.sweep_interval_seconds;
    if every == 0 {
        return None;
    }
    let state = state.clone();
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let gateway = state.gateway();
        let lease = Lease::new(Duration::from_secs(every));
        let mut interval = tokio::time::interval(Duration::from_secs(every));
        let mut detached = false;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                changed = stopped.changed(), if !detached => {
                    match changed {
                        Ok(()) if *stopped.borrow() => break,
                        Ok(()) => continue,
                        // The handle was detached: nobody will ask the loop to stop.
                        Err(_) => {
                            detached = true;
                            continue;
                        }
                    }
                }
            }
            let (confirmed, closed, refunded) = round(&gateway, &state, Some(&lease)).await;
            if confirmed + closed + refunded > 0 {
                log::info!("jobs: {confirmed} payment(s) confirmed by query, {closed} order(s) closed, {refunded} refund(s) completed");
            }
        }
    });
    Some(Jobs { stop, task })
}

//! Background jobs, in process: each instance runs them, and every write they make is
//! compare-and-set, so several instances on one database never apply anything twice.
//! May import services.

use crate::services::gateway::Gateway;
use crate::services::{lifecycle, run};
use crate::startup::AppState;
use std::time::Duration;

/// One round of every job; returns what it did, for logs and tests.
pub async fn tick(gateway: &Gateway, state: &AppState) -> (usize, usize, usize) {
    let age = chrono::Duration::seconds(state.config.query_pending_after_seconds);
    // Ask before closing: a payment found by the sweep must not be closed first.
    let confirmed = gateway.sweep(age).await.unwrap_or_else(|e| {
        log::warn!("reconciliation sweep failed: {e}");
        0
    });
    let closed = gateway.close_expired().await.unwrap_or_else(|e| {
        log::warn!("timeout close failed: {e}");
        0
    });
    let refunded = gateway.sweep_refunds().await.unwrap_or_else(|e| {
        log::warn!("refund sweep failed: {e}");
        0
    });
    let window = chrono::Duration::seconds(state.config.callback_alarm_after_seconds);
    let min = state.config.callback_alarm_min_confirmations;
    match run(&state.db, move |c| lifecycle::callback_health(c, window, min)).await {
        Ok(h) if h.degraded => log::warn!(
            "callbacks look broken: {} payment(s) confirmed by query, last verified notification {:?} (check the notify URL, WAF or CDN)",
            h.confirmed_by_query,
            h.last_verified_notification
        ),
        Ok(_) => {}
        Err(e) => log::warn!("callback health check failed: {e}"),
    }
    (confirmed, closed, refunded)
}

/// Starts the jobs every `sweep_interval_seconds`: the reconciliation sweep (pending
/// attempts asked about at their gateway), the timeout close, the refund queries.
pub fn spawn(state: &AppState) {
    let every = state.config.sweep_interval_seconds;
    if every == 0 {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let gateway = state.gateway();
        let mut interval = tokio::time::interval(Duration::from_secs(every));
        loop {
            interval.tick().await;
            let (confirmed, closed, refunded) = tick(&gateway, &state).await;
            if confirmed + closed + refunded > 0 {
                log::info!("jobs: {confirmed} payment(s) confirmed by query, {closed} order(s) closed, {refunded} refund(s) completed");
            }
        }
    });
}

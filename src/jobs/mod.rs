//! Background jobs, in process: each instance runs them, and every write they make is
//! compare-and-set, so several instances on one database never apply anything twice.
//! May import services.

use crate::startup::AppState;
use std::time::Duration;

/// Starts the reconciliation sweep: pending attempts older than the configured age are asked
/// about at their gateway; a confirmed payment is applied as a notification would be.
pub fn spawn(state: &AppState) {
    let every = state.config.sweep_interval_seconds;
    if every == 0 {
        return;
    }
    let age = chrono::Duration::seconds(state.config.query_pending_after_seconds);
    let state = state.clone();
    tokio::spawn(async move {
        let gateway = state.gateway();
        let mut tick = tokio::time::interval(Duration::from_secs(every));
        loop {
            tick.tick().await;
            match gateway.sweep(age).await {
                Ok(0) => {}
                Ok(n) => log::info!("sweep: {n} payment(s) confirmed by query"),
                Err(e) => log::warn!("sweep failed: {e}"),
            }
        }
    });
}

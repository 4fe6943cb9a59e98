//! Asking a platform about a trade: the query door of a payment (applied exactly as a
//! notification would be), for the shopper who says they paid, the pay page that polls,
//! and the reconciliation sweep.

use super::{outbound, trade, Gateway};
use crate::models::pay::PayAttempt;
use crate::payment::connector::TradeState;
use crate::services::pay::{self, Applied, LogEntry, Proof};
use crate::services::{run, ServiceError};

impl Gateway {
    /// Asks the platform about one attempt; a payment it confirms is applied exactly as a
    /// notification would be. `None`: not paid (yet), or unknown at the platform (counted:
    /// after a few such answers the attempt ends).
    pub async fn query_attempt(
        &self,
        attempt: &PayAttempt,
    ) -> Result<Option<Applied>, ServiceError> {
        let (provider, connector) = self.connector_of(attempt).await?;
        let no = attempt.out_trade_no.clone();
        let answer = match connector.query(&trade(attempt)).await {
            Ok(answer) => answer,
            Err(e) => {
                self.log(
                    outbound(provider, "query", e.raw),
                    no,
                    "query_failed".into(),
                )
                .await?;
                return Err(ServiceError::Gateway(e.message));
            }
        };
        let (paid, raw) = match answer {
            TradeState::Paid { paid, raw } => (paid, raw),
            TradeState::Unpaid { state, raw } => {
                self.log(outbound(provider, "query", raw), no, state)
                    .await?;
                return Ok(None);
            }
            TradeState::Unknown { raw } => {
                let a = attempt.clone();
                run(&self.db, move |c| {
                    let ended = pay::unknown_at_platform(c, &a)?;
                    let outcome = if ended {
                        "unknown_ended"
                    } else {
                        "unknown_trade"
                    };
                    pay::log_only(
                        c,
                        &outbound(provider, "query", raw.clone()),
                        Some(&no),
                        outcome,
                        "",
                    )
                })
                .await?;
                return Ok(None);
            }
            TradeState::Foreign { outcome, raw } => {
                // Nobody believes it: logged as unverified, and the caller hears of it.
                let entry = LogEntry {
                    verified: false,
                    ..outbound(provider, "query", raw)
                };
                self.log(entry, no, outcome.into()).await?;
                return Err(ServiceError::Gateway(format!(
                    "{provider} answered about {} for another app, merchant or mode \
                     ({outcome})",
                    attempt.out_trade_no
                )));
            }
        };
        let proof = Proof {
            provider,
            out_trade_no: paid.out_trade_no,
            payment_id: paid.payment_id,
            transaction_no: paid.transaction_no,
            amount: paid.amount,
        };
        let entry = outbound(provider, "query", raw);
        let applied = run(&self.db, move |c| {
            pay::apply_payment(c, &proof, &entry, &|_| String::new())
        })
        .await?;
        if applied.is_payment() {
            self.metrics
                .payments_applied
                .with_label_values(&[attempt.provider.as_str(), attempt.channel.as_str()])
                .inc();
        }
        Ok(Some(applied))
    }

    /// Asks about every pending attempt of an order (the client says it paid, or the sweep).
    pub async fn query_order(&self, order_id: i32) -> Result<Vec<Applied>, ServiceError> {
        let attempts = run(&self.db, move |c| pay::pending_attempts(c, order_id)).await?;
        let mut out = Vec::new();
        for a in attempts.iter().filter(|a| a.provider_ref.is_some()) {
            if let Some(applied) = self.query_attempt(a).await? {
                out.push(applied);
            }
        }
        Ok(out)
    }

    /// A shopper is waiting (the pay page polls, or 我已完成支付): asks the platform about
    /// the order's attempts that are due (see `pay::claim_asks`), so a lost notification
    /// does not leave the shopper waiting for the sweep. Failures are logged, not returned:
    /// the caller answers from the database either way. True when a payment was applied.
    pub async fn ask_for_shopper(&self, order_id: i32, min_age: chrono::Duration) -> bool {
        let claimed = run(&self.db, move |c| pay::claim_asks(c, order_id, min_age)).await;
        let claimed = match claimed {
            Ok(a) => a,
            Err(e) => {
                log::warn!("claiming a shopper's query of order {order_id} failed: {e}");
                return false;
            }
        };
        let mut paid = false;
        for a in &claimed {
            match self.query_attempt(a).await {
                Ok(Some(_)) => paid = true,
                Ok(None) => {}
                Err(e) => log::warn!("shopper's query of {} failed: {e}", a.out_trade_no),
            }
        }
        paid
    }

    /// The reconciliation sweep: pending attempts older than `age` are asked about.
    pub async fn sweep(&self, age: chrono::Duration) -> Result<usize, ServiceError> {
        let stale = run(&self.db, move |c| pay::stale_pending(c, age, 100)).await?;
        let mut paid = 0;
        for a in stale.iter().filter(|a| a.provider_ref.is_some()) {
            let outcome = self.query_attempt(a).await;
            if let Ok(Some(_)) = outcome {
                paid += 1;
                continue;
            }
            if let Err(e) = &outcome {
                log::warn!("sweep: query of {} failed: {e}", a.out_trade_no);
            }
            // Not paid, or the platform did not answer: back off before asking again.
            let attempt = a.clone();
            run(&self.db, move |c| pay::queried_unpaid(c, &attempt)).await?;
        }
        Ok(paid)
    }
}

//! Closing unpaid orders: their open attempts are settled at the platforms first (a payment
//! found pays the order instead), then the order closes and its stock goes back.

use super::{outbound, trade, Gateway};
use crate::models::Order;
use crate::payment::connector::Closed;
use crate::services::{lifecycle, pay, run, ServiceError};

const TIMEOUT_NOTE: &str = "超时未支付，自动关闭";

impl Gateway {
    /// An unpaid order past its expiry is settled and closed now rather than at the next
    /// timeout sweep, so the shopper reads 已关闭 at once. True when it was closed or paid by
    /// this call; a platform that does not answer leaves it to the sweep (logged), and is
    /// asked again by a page no more often than `pay::ask_interval` allows.
    pub async fn close_if_expired(&self, o: &Order) -> bool {
        let unpaid = o.status == crate::domain::OrderStatus::Unpaid.code();
        if !unpaid || o.expires_at > crate::models::now() {
            return false;
        }
        let id = o.id;
        match run(&self.db, move |c| pay::may_settle(c, id)).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                log::warn!("closing expired order {} failed: {e}", o.order_no);
                return false;
            }
        }
        match self.settle_and_close(o.id, "system", TIMEOUT_NOTE).await {
            Ok(_) => true,
            Err(e) => {
                log::warn!("closing expired order {} failed: {e}", o.order_no);
                false
            }
        }
    }

    /// Settles an unpaid order's open attempts at their platforms, then closes it. A payment
    /// the platform confirms pays the order instead (as a notification would). True when
    /// the order was closed by this call.
    pub async fn settle_and_close(
        &self,
        order_id: i32,
        actor: &str,
        note: &str,
    ) -> Result<bool, ServiceError> {
        let attempts = run(&self.db, move |c| pay::pending_attempts(c, order_id)).await?;
        for a in attempts.iter().filter(|a| a.provider_ref.is_some()) {
            if self.query_attempt(a).await?.is_some() {
                return Ok(false);
            }
            let (provider, connector) = self.connector_of(a).await?;
            let no = a.out_trade_no.clone();
            match connector.close(&trade(a)).await {
                Ok(Closed::Closed { outcome, raw }) => {
                    self.log(outbound(provider, "close", raw), no, outcome)
                        .await?
                }
                // Paid between our query and the close: apply it.
                Ok(Closed::AlreadyPaid { raw }) => {
                    self.log(outbound(provider, "close", raw), no, "orderpaid".into())
                        .await?;
                    if self.query_attempt(a).await?.is_some() {
                        return Ok(false);
                    }
                    return Err(ServiceError::Gateway(
                        "the close says paid, the query does not".into(),
                    ));
                }
                // It expires at its time_expire; a late success still pays through the
                // late-payment rule.
                Ok(Closed::NotClosable) => {}
                Err(e) => {
                    self.log(
                        outbound(provider, "close", e.raw),
                        no,
                        "close_failed".into(),
                    )
                    .await?;
                    return Err(ServiceError::Gateway(e.message));
                }
            }
        }
        let (actor, note) = (actor.to_string(), note.to_string());
        run(&self.db, move |c| {
            lifecycle::close(c, order_id, &actor, &note)
        })
        .await
    }

    /// The timeout job: closes unpaid orders past their expiry. Returns how many closed.
    pub async fn close_expired(&self) -> Result<usize, ServiceError> {
        let expired = run(&self.db, |c| lifecycle::expired_unpaid(c, 100)).await?;
        let mut closed = 0;
        for o in expired {
            match self.settle_and_close(o.id, "system", TIMEOUT_NOTE).await {
                Ok(true) => closed += 1,
                Ok(false) => {}
                Err(e) => log::warn!("timeout close of {} failed: {e}", o.order_no),
            }
        }
        Ok(closed)
    }
}

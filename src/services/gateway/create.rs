//! Creating a payment: the live attempt of the channel is shown again, or a new one is
//! recorded, created at its platform, and its answer recorded.

use super::{clip, outbound, trade, Gateway};
use crate::domain::Channel;
use crate::models::pay::PayAttempt;
use crate::models::Order;
use crate::payment::connector::{Created, PaymentRequest};
use crate::services::pay::{self, OrderRef};
use crate::services::{run, ServiceError};

/// How long a request waits for another one creating the same attempt.
const WAIT_FOR_IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(10);

/// A payment ready for the shopper: the attempt and what its platform gave for the client.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub attempt: PayAttempt,
    pub order: Order,
    /// prepay_id / ch_… with the code_url or credential; `raw` is the platform's answer
    /// (a Ping++ charge object, for clients that take it whole).
    pub created: Created,
}

impl Gateway {
    /// The live attempt of `channel` for the order, or a new one; waits while another
    /// request is creating it.
    async fn begin(
        &self,
        which: OrderRef,
        via: pay::Via,
    ) -> Result<(Order, PayAttempt, bool), ServiceError> {
        let deadline = std::time::Instant::now() + WAIT_FOR_IN_FLIGHT;
        loop {
            let (w, v) = (which.clone(), via.clone());
            let start = run(&self.db, move |c| pay::reuse_or_start(c, &w, &v)).await?;
            match start {
                pay::Start::Wait if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                pay::Start::Wait => {
                    return Err(ServiceError::Gateway(
                        "another request is still creating this payment".into(),
                    ))
                }
                pay::Start::Reuse(o, a) => return Ok((o, a, false)),
                pay::Start::New(o, a) => return Ok((o, a, true)),
            }
        }
    }

    /// The signed launch parameters of a prepared JSAPI payment (`wx.requestPayment`).
    pub fn launch(
        &self,
        prepared: &Prepared,
        timestamp: i64,
    ) -> Option<crate::payment::connector::JsapiLaunch> {
        let provider = crate::domain::Provider::parse(&prepared.attempt.provider)?;
        let channel = Channel::parse(&prepared.attempt.channel)?;
        self.connector(provider).ok()?.jsapi_launch(
            channel,
            &prepared.created.provider_ref,
            timestamp,
        )
    }

    /// A payment of the order on `channel`: a live attempt of the channel is shown again
    /// (the same QR on every reload, within the credential's two hours), else a new one is
    /// created at the platform that serves the channel. `payer`: the openid for JSAPI,
    /// mini-program and Official Account payments.
    pub async fn prepare(
        &self,
        which: OrderRef,
        channel: Channel,
        payer: Option<String>,
        client_ip: String,
    ) -> Result<Prepared, ServiceError> {
        let provider = self.provider_for(channel);
        let connector = self.connect(provider).await?;
        let via = pay::Via {
            channel,
            provider,
            sign_type: connector.sign_type(),
            // Only these bind a payment to one payer (an openid, an H5 page's address);
            // other channels reuse their attempt whoever asks, as before payers were kept.
            payer: payer.clone().filter(|_| channel.is_direct_wechat()),
        };
        let (order, attempt, new) = self.begin(which, via).await?;
        if !new {
            let created = connector
                .resume(&trade(&attempt))
                .await
                .map_err(|e| ServiceError::Gateway(e.message))?;
            return Ok(Prepared {
                attempt,
                order,
                created,
            });
        }
        let product_id = crate::services::order::snap_items(&order)
            .first()
            .map(|l| l.id.to_string())
            .unwrap_or_else(|| order.id.to_string());
        let request = PaymentRequest {
            channel,
            out_trade_no: attempt.out_trade_no.clone(),
            order_no: order.order_no.clone(),
            order_id: order.id,
            product_id,
            subject: order.snap_name.clone(),
            amount: crate::domain::Money::from_fen(attempt.amount),
            expires_at: attempt.expires_at,
            client_ip,
            payer,
        };
        let answer = connector.create(&request).await;
        let (id, no) = (attempt.id, attempt.out_trade_no.clone());
        match answer {
            Ok(created) => {
                let (p, cu) = (created.provider_ref.clone(), created.credential.clone());
                let entry = outbound(provider, "create", created.raw.clone());
                run(&self.db, move |c| {
                    pay::record_prepared(c, id, &p, cu.as_deref())?;
                    pay::log_only(c, &entry, Some(&no), "prepared", "")
                })
                .await?;
                let mut attempt = attempt;
                attempt.provider_ref = Some(created.provider_ref.clone());
                attempt.credential = created.credential.clone();
                Ok(Prepared {
                    attempt,
                    order,
                    created,
                })
            }
            Err(e) => {
                let entry = outbound(provider, "create", e.raw.clone());
                let outcome = clip(&format!("failed: {}", e.message), 64);
                run(&self.db, move |c| {
                    pay::record_failed(c, id)?;
                    pay::log_only(c, &entry, Some(&no), &outcome, "")
                })
                .await?;
                Err(ServiceError::Gateway(e.message))
            }
        }
    }
}

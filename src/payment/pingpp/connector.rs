//! Ping++ behind the connector interface: charges (created, retrieved; never closed: they
//! expire at their time_expire) and refunds (no idempotency key: an open submission is
//! looked for before it is posted again).

use super::{AppRef, ChargeReply, CreateCharge, CreateRefund, Pingpp, PingppError};
use crate::domain::{Channel, Money, Provider};
use crate::payment::connector::{
    Call, Closed, Connector, Created, Failure, Paid, PaymentRequest, RefundOrder, RefundState,
    Submitted, Trade, TradeState,
};
use serde_json::json;

/// Ping++ for the shop's flows.
#[derive(Debug, Clone)]
pub struct PingppConnector {
    pub client: Pingpp,
    pub app_id: String,
    /// Live mode: answers must say `livemode: true`, and test-mode objects pay nothing.
    pub livemode: bool,
}

/// At most `n` characters (Ping++ subject ≤ 32, body ≤ 128, descriptions ≤ 255).
fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn failure(call: &str, e: PingppError) -> Failure {
    Failure::new(format!("{call}: {e}"), e.to_string())
}

/// A charge as the shop records it: its id, its credential object, the answer whole.
fn created(reply: ChargeReply) -> Created {
    Created {
        provider_ref: reply.charge.id.clone(),
        credential: Some(reply.charge.credential.to_string()),
        raw: reply.raw,
    }
}

impl PingppConnector {
    async fn create_charge(&self, req: &PaymentRequest) -> Result<Created, Failure> {
        let extra = match req.channel {
            Channel::WxPubQr => json!({ "product_id": req.product_id }),
            Channel::WxPub | Channel::WxLite => {
                json!({ "open_id": req.payer.clone().unwrap_or_default() })
            }
            Channel::AlipayQr
            | Channel::AlipayPage
            | Channel::AlipayWap
            | Channel::WxJsapi
            | Channel::WxNative => serde_json::Value::Null,
            // The shop offers WeChat H5 only with its own WeChat Pay (cashier = "direct").
            Channel::WxWap => return Err(Failure::new("wx_wap is not offered through Ping++", "")),
        };
        let request = CreateCharge {
            order_no: req.out_trade_no.clone(),
            app: AppRef {
                id: self.app_id.clone(),
            },
            channel: req.channel.as_str().into(),
            amount: req.amount.fen(),
            client_ip: req.client_ip.clone(),
            currency: "cny".into(),
            subject: clip(&req.subject, 32),
            body: clip(
                &format!("结算商城订单 {}：{}", req.order_no, req.subject),
                128,
            ),
            extra,
            time_expire: Some(req.expires_at.and_utc().timestamp()),
            metadata: json!({ "order_no": req.order_no }),
            description: None,
        };
        let reply = self
            .client
            .create_charge(&request)
            .await
            .map_err(|e| failure("create charge", e))?;
        Ok(created(reply))
    }

    /// The same charge again, with its credential as Ping++ keeps it.
    async fn retrieve(&self, trade: &Trade) -> Result<Created, Failure> {
        let ch = trade.provider_ref.clone().unwrap_or_default();
        let reply = self
            .client
            .retrieve_charge(&ch)
            .await
            .map_err(|e| failure("retrieve charge", e))?;
        Ok(created(reply))
    }

    async fn query_charge(&self, trade: &Trade) -> Result<TradeState, Failure> {
        let Some(ch) = trade.provider_ref.clone() else {
            return Ok(TradeState::Unpaid {
                state: "not_created".into(),
                raw: String::new(),
            });
        };
        let reply = match self.client.retrieve_charge(&ch).await {
            Ok(r) => r,
            Err(PingppError::Api { status: 404, error }) => {
                return Ok(TradeState::Unknown {
                    raw: format!("404 {}", error.message),
                })
            }
            Err(e) => return Err(failure("retrieve charge", e)),
        };
        let c = &reply.charge;
        // Checked before `paid`: a test-mode charge "paid" without money must never pay a
        // live order, nor a live one a sandbox order.
        if c.livemode != self.livemode {
            return Ok(TradeState::Foreign {
                outcome: "wrong_mode",
                raw: reply.raw,
            });
        }
        if c.app != self.app_id || c.currency != "cny" || c.order_no != trade.out_trade_no {
            return Ok(TradeState::Foreign {
                outcome: "wrong_app",
                raw: reply.raw,
            });
        }
        if !c.paid {
            return Ok(TradeState::Unpaid {
                state: "not_paid".into(),
                raw: reply.raw,
            });
        }
        Ok(TradeState::Paid {
            paid: Paid {
                out_trade_no: c.order_no.clone(),
                payment_id: c.id.clone(),
                transaction_no: c.transaction_no.clone().unwrap_or_else(|| c.id.clone()),
                amount: Money::from_fen(c.amount),
            },
            raw: reply.raw.clone(),
        })
    }

    async fn submit(&self, r: &RefundOrder) -> Submitted {
        let ch = r.trade.provider_ref.clone().unwrap_or_default();
        // An earlier POST (this one's first try, or a request that died before its
        // answer was recorded) may have taken the money, and Ping++ has no idempotency
        // key: look for our refund before posting.
        match self.client.list_refunds(&ch).await {
            Ok((list, raw)) => {
                let ours = list
                    .into_iter()
                    .find(|re| re.metadata["out_refund_no"].as_str() == Some(&r.out_refund_no));
                if let Some(re) = ours {
                    return Submitted::Accepted {
                        refund_ref: re.id,
                        raw,
                    };
                }
            }
            Err(e) => return Submitted::Retry(format!("list refunds: {e}")),
        }
        let req = CreateRefund {
            description: clip(&r.reason, 255),
            amount: Some(r.amount.fen()),
            metadata: json!({ "out_refund_no": r.out_refund_no }),
        };
        match self.client.create_refund(&ch, &req).await {
            Ok((re, raw)) => Submitted::Accepted {
                refund_ref: re.id,
                raw,
            },
            Err(e @ PingppError::Api { status, .. })
                if (400..500).contains(&status) && status != 429 =>
            {
                Submitted::Refused(e.to_string())
            }
            Err(e) => Submitted::Retry(e.to_string()),
        }
    }

    async fn ask_refund(&self, r: &RefundOrder) -> Result<RefundState, Failure> {
        let ch = r.trade.provider_ref.clone().unwrap_or_default();
        let re = r.refund_ref.clone().unwrap_or_default();
        let (obj, raw) = self
            .client
            .retrieve_refund(&ch, &re)
            .await
            .map_err(|e| failure("retrieve refund", e))?;
        Ok(match obj.status.as_str() {
            "succeeded" => RefundState::Done {
                refund_ref: obj.id,
                raw,
            },
            "failed" => RefundState::Failed {
                why: format!(
                    "Ping++ 退款失败 {}",
                    obj.failure_msg.clone().unwrap_or_default()
                ),
                raw,
            },
            _ => RefundState::Processing { raw },
        })
    }
}

impl Connector for PingppConnector {
    fn provider(&self) -> Provider {
        Provider::Pingpp
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> Call<'a, Result<Created, Failure>> {
        Box::pin(self.create_charge(req))
    }

    fn resume<'a>(&'a self, trade: &'a Trade) -> Call<'a, Result<Created, Failure>> {
        Box::pin(self.retrieve(trade))
    }

    fn query<'a>(&'a self, trade: &'a Trade) -> Call<'a, Result<TradeState, Failure>> {
        Box::pin(self.query_charge(trade))
    }

    fn close<'a>(&'a self, _trade: &'a Trade) -> Call<'a, Result<Closed, Failure>> {
        // A charge cannot be closed: it expires at time_expire (the attempt's expiry), and
        // a late success still pays through the late-payment rule.
        Box::pin(async { Ok(Closed::NotClosable) })
    }

    fn refund<'a>(&'a self, r: &'a RefundOrder) -> Call<'a, Submitted> {
        Box::pin(self.submit(r))
    }

    fn refund_query<'a>(&'a self, r: &'a RefundOrder) -> Call<'a, Result<RefundState, Failure>> {
        Box::pin(self.ask_refund(r))
    }
}

//! Alipay direct behind the connector interface: `alipay.trade.precreate` (the QR),
//! `trade.query`, `trade.close`, `trade.refund` (out_request_no = the shop's out_refund_no:
//! a retry is the same refund) and `trade.fastpay.refund.query`. Yuan strings exist only
//! here, made from `Money`.

use super::client::{beijing, Alipay, AlipayError};
use crate::domain::{Channel, Money, Provider};
use crate::payment::bill::{Bill, BillError, MAX_BILL_BYTES};
use crate::payment::connector::{
    Call, Closed, Connector, Created, Failure, Paid, PaymentRequest, RefundOrder, RefundState,
    Submitted, Trade, TradeState,
};
use serde_json::json;

/// Alipay for the shop's flows.
#[derive(Debug, Clone)]
pub struct AlipayConnector {
    pub client: Alipay,
    /// The merchant's PID (2088…): notifications must name it.
    pub seller_id: String,
    /// `{public}/home/notify/alipay`.
    pub notify_url: String,
    /// The shop's URL the cashier returns the browser to, before the order number
    /// (`{public}/home/order/payresult?order_sn=`).
    pub return_to: String,
}

/// `subject`: ≤ 256 characters, without `/ = &`.
fn subject(s: &str) -> String {
    s.chars()
        .map(|c| if matches!(c, '/' | '=' | '&') { ' ' } else { c })
        .take(256)
        .collect()
}

fn failure(call: &str, e: &AlipayError) -> Failure {
    Failure::new(format!("{call}: {e}"), e.raw())
}

fn yuan(v: &serde_json::Value) -> Option<Money> {
    v.as_str().and_then(|s| Money::parse_yuan(s).ok())
}

impl AlipayConnector {
    /// The signed cashier URL of a page.pay / wap.pay trade. Its parameters come from the
    /// trade alone (the subject names the trade), so showing it again makes the same trade
    /// with a fresh timestamp, never a "different" one (ACQ.CONTEXT_INCONSISTENT).
    fn cashier_url(&self, channel: Channel, trade: &Trade) -> Result<Created, Failure> {
        let no = &trade.out_trade_no;
        let order_no = &no[..no.len().saturating_sub(2)];
        let (method, product_code) = match channel {
            Channel::AlipayWap => ("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
            _ => ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
        };
        let mut biz = json!({
            "out_trade_no": no,
            "total_amount": trade.amount.yuan(),
            "subject": format!("结算商城订单 {order_no}"),
            "product_code": product_code,
            "time_expire": beijing(trade.expires_at.and_utc()),
        });
        let back = format!("{}{order_no}", self.return_to);
        if channel == Channel::AlipayWap {
            biz["quit_url"] = json!(back);
        }
        let extra = [
            ("notify_url", self.notify_url.as_str()),
            ("return_url", back.as_str()),
        ];
        let url = self
            .client
            .browser_url(method, &biz, &extra)
            .map_err(|e| failure(method, &e))?;
        Ok(Created {
            provider_ref: no.clone(),
            credential: Some(url),
            raw: String::new(),
        })
    }

    async fn precreate(&self, req: &PaymentRequest) -> Result<Created, Failure> {
        let biz = json!({
            "out_trade_no": req.out_trade_no,
            "total_amount": req.amount.yuan(),
            "subject": subject(&format!("结算商城-{}", req.subject)),
            "time_expire": beijing(req.expires_at.and_utc()),
        });
        let notify = [("notify_url", self.notify_url.as_str())];
        let a = self
            .client
            .call("alipay.trade.precreate", &biz, &notify)
            .await
            .map_err(|e| failure("precreate", &e))?;
        let qr = a.field("qr_code");
        if qr.is_empty() {
            return Err(Failure::new("precreate: no qr_code", a.raw));
        }
        // The trade is known by its number (it exists at Alipay once scanned).
        Ok(Created {
            provider_ref: req.out_trade_no.clone(),
            credential: Some(qr),
            raw: a.raw,
        })
    }

    async fn query_trade(&self, trade: &Trade) -> Result<TradeState, Failure> {
        let biz = json!({ "out_trade_no": trade.out_trade_no });
        let a = match self.client.call("alipay.trade.query", &biz, &[]).await {
            Ok(a) => a,
            // A precreated trade exists only once scanned: not paid (yet).
            Err(e) if e.sub_code() == "ACQ.TRADE_NOT_EXIST" => {
                return Ok(TradeState::Unpaid {
                    state: "trade_not_exist".into(),
                    raw: e.raw(),
                })
            }
            Err(e) => return Err(failure("query", &e)),
        };
        let status = a.field("trade_status");
        if status != "TRADE_SUCCESS" && status != "TRADE_FINISHED" {
            return Ok(TradeState::Unpaid {
                state: format!("trade_status {status}"),
                raw: a.raw,
            });
        }
        if a.field("out_trade_no") != trade.out_trade_no {
            return Ok(TradeState::Foreign {
                outcome: "wrong_trade",
                raw: a.raw,
            });
        }
        let (Some(amount), trade_no) = (yuan(&a.value["total_amount"]), a.field("trade_no")) else {
            return Err(Failure::new("query: unreadable total_amount", a.raw));
        };
        Ok(TradeState::Paid {
            paid: Paid {
                out_trade_no: trade.out_trade_no.clone(),
                payment_id: trade_no.clone(),
                transaction_no: trade_no,
                amount,
            },
            raw: a.raw,
        })
    }

    async fn close_trade(&self, trade: &Trade) -> Result<Closed, Failure> {
        let biz = json!({ "out_trade_no": trade.out_trade_no });
        match self.client.call("alipay.trade.close", &biz, &[]).await {
            Ok(a) => Ok(Closed::Closed {
                outcome: "closed".into(),
                raw: a.raw,
            }),
            // Never scanned: nothing to close (the code dies at its time_expire).
            Err(e) if e.sub_code() == "ACQ.TRADE_NOT_EXIST" => Ok(Closed::Closed {
                outcome: "trade_not_exist".into(),
                raw: e.raw(),
            }),
            // Only WAIT_BUYER_PAY closes: it was paid, or closed already (Alipay closes a
            // trade at its time_expire, which is about when the shop closes the order).
            Err(e) if e.sub_code() == "ACQ.TRADE_STATUS_ERROR" => {
                match self.query_trade(trade).await? {
                    TradeState::Paid { raw, .. } => Ok(Closed::AlreadyPaid { raw }),
                    TradeState::Unpaid { state, raw } if state == "trade_status TRADE_CLOSED" => {
                        Ok(Closed::Closed {
                            outcome: "already_closed".into(),
                            raw,
                        })
                    }
                    _ => Err(failure("close", &e)),
                }
            }
            Err(e) => Err(failure("close", &e)),
        }
    }

    async fn submit(&self, r: &RefundOrder) -> Submitted {
        let biz = json!({
            "out_trade_no": r.trade.out_trade_no,
            "refund_amount": r.amount.yuan(),
            "out_request_no": r.out_refund_no,
            "refund_reason": r.reason.chars().take(256).collect::<String>(),
        });
        match self.client.call("alipay.trade.refund", &biz, &[]).await {
            // Accepted; fund_change N (a repeat) is confirmed by the refund query.
            Ok(a) => Submitted::Accepted {
                refund_ref: r.out_refund_no.clone(),
                raw: a.raw,
            },
            Err(e) if e.is_retryable() => Submitted::Retry(e.to_string()),
            Err(e) => Submitted::Refused(e.to_string()),
        }
    }

    async fn ask_refund(&self, r: &RefundOrder) -> Result<RefundState, Failure> {
        let biz = json!({
            "out_trade_no": r.trade.out_trade_no,
            "out_request_no": r.out_refund_no,
        });
        let a = self
            .client
            .call("alipay.trade.fastpay.refund.query", &biz, &[])
            .await
            .map_err(|e| failure("refund query", &e))?;
        Ok(match a.field("refund_status").as_str() {
            "REFUND_SUCCESS" => RefundState::Done {
                refund_ref: r.out_refund_no.clone(),
                raw: a.raw,
            },
            // No refund_status: Alipay did not refund it (or not yet). Not retried blindly:
            // an admin looks at it (its money stays held meanwhile).
            "" => RefundState::Abnormal {
                status: "NOT_REFUNDED".into(),
                note: "支付宝查询无此退款（未退款），需人工处理".into(),
                raw: a.raw,
            },
            _ => RefundState::Processing { raw: a.raw },
        })
    }
}

impl AlipayConnector {
    /// The day's trade bill: `alipay.data.dataservice.bill.downloadurl.query`, then the zip
    /// at its `bill_download_url` (valid 30 s). Alipay makes no bill of a day before the next
    /// morning, and says only "no bill" (`…BILL_NOT_EXIST`) for a bill not made yet and for a
    /// day without trades: yesterday's is taken as not ready, an older day's as empty.
    async fn bill(&self, day: chrono::NaiveDate) -> Result<Bill, BillError> {
        let today = crate::domain::today_shanghai();
        if day >= today {
            return Err(BillError::NotReady(format!("{day} is not over")));
        }
        let biz = json!({ "bill_type": "trade", "bill_date": day.to_string() });
        let answer = self
            .client
            .call("alipay.data.dataservice.bill.downloadurl.query", &biz, &[])
            .await;
        let url = match answer {
            Ok(a) => a.field("bill_download_url"),
            Err(e) if e.sub_code().to_ascii_uppercase().contains("BILL_NOT_EXIST") => {
                return Err(if day + chrono::Duration::days(1) >= today {
                    BillError::NotReady(e.to_string())
                } else {
                    BillError::Empty
                });
            }
            Err(e) => return Err(BillError::Failed(format!("bill url: {e}"))),
        };
        let failed = |e: reqwest::Error| {
            BillError::Failed(format!(
                "bill download: {}",
                crate::payment::transport_error(e)
            ))
        };
        let res = self.client.http.get(&url).send().await.map_err(failed)?;
        if !res.status().is_success() {
            return Err(BillError::Failed(format!(
                "bill download answered HTTP {}",
                res.status()
            )));
        }
        if res
            .content_length()
            .is_some_and(|n| n > MAX_BILL_BYTES as u64)
        {
            return Err(BillError::Failed("bill download: too large".into()));
        }
        let zip = res.bytes().await.map_err(failed)?;
        if zip.len() > MAX_BILL_BYTES {
            return Err(BillError::Failed("bill download: too large".into()));
        }
        super::bill::parse(&super::bill::detail_csv(&zip)?)
    }
}

impl Connector for AlipayConnector {
    fn provider(&self) -> Provider {
        Provider::Alipay
    }

    fn has_bill(&self) -> bool {
        true
    }

    fn trade_bill(&self, day: chrono::NaiveDate) -> Call<'_, Result<Bill, BillError>> {
        Box::pin(self.bill(day))
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> Call<'a, Result<Created, Failure>> {
        Box::pin(async move {
            match req.channel {
                Channel::AlipayQr => self.precreate(req).await,
                // No call: the browser takes the signed request to Alipay's cashier.
                Channel::AlipayPage | Channel::AlipayWap => {
                    let trade = Trade {
                        channel: Some(req.channel),
                        out_trade_no: req.out_trade_no.clone(),
                        provider_ref: None,
                        credential: None,
                        amount: req.amount,
                        expires_at: req.expires_at,
                    };
                    self.cashier_url(req.channel, &trade)
                }
                other => Err(Failure::new(
                    format!("Alipay direct does not take {other} payments"),
                    "",
                )),
            }
        })
    }

    fn resume<'a>(&'a self, trade: &'a Trade) -> Call<'a, Result<Created, Failure>> {
        let created = match trade.channel {
            // A cashier URL is signed with its timestamp: a fresh one each time it is shown.
            Some(c @ (Channel::AlipayPage | Channel::AlipayWap)) => self.cashier_url(c, trade),
            _ => Ok(Created {
                provider_ref: trade.provider_ref.clone().unwrap_or_default(),
                credential: trade.credential.clone(),
                raw: String::new(),
            }),
        };
        Box::pin(async move { created })
    }

    fn query<'a>(&'a self, trade: &'a Trade) -> Call<'a, Result<TradeState, Failure>> {
        Box::pin(self.query_trade(trade))
    }

    fn close<'a>(&'a self, trade: &'a Trade) -> Call<'a, Result<Closed, Failure>> {
        Box::pin(self.close_trade(trade))
    }

    fn refund<'a>(&'a self, r: &'a RefundOrder) -> Call<'a, Submitted> {
        Box::pin(self.submit(r))
    }

    fn refund_query<'a>(&'a self, r: &'a RefundOrder) -> Call<'a, Result<RefundState, Failure>> {
        Box::pin(self.ask_refund(r))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn subjects_lose_what_alipay_refuses() {
        assert_eq!(super::subject("茶/壶=1&2"), "茶 壶 1 2");
        assert_eq!(super::subject(&"字".repeat(300)).chars().count(), 256);
    }
}

//! Talking to the payment platforms, in the order that keeps the books right: record the
//! intent and commit, call the platform with no transaction open, record the result. The
//! only async part of the service layer; every database step is a synchronous service call
//! on the blocking pool.

use super::pay::{self, Applied, LogEntry, OrderRef, Proof};
use super::{run, ServiceError};
use crate::db::Db;
use crate::domain::{Channel, Money, Provider};
use crate::models::pay::PayAttempt;
use crate::models::Order;
use crate::payment::pingpp::{AppRef, ChargeReply, CreateCharge, Pingpp};
use crate::payment::wechat::{notify, Exchange, TradeType, UnifiedOrder, WxError, WxPay};
use serde_json::json;

/// Everything needed to reach the platforms.
#[derive(Clone)]
pub struct Gateway {
    pub db: Db,
    pub wxpay: WxPay,
    pub pingpp: Pingpp,
    pub pingpp_app_id: String,
    /// WeChat's notify_url: `{public}/api/v1/pay/notify`.
    pub wechat_notify_url: String,
    /// The server's own address, sent as `spbill_create_ip` for NATIVE payments.
    pub server_ip: String,
}

/// A prepared WeChat payment.
#[derive(Debug, Clone)]
pub struct WechatPrepared {
    pub attempt: PayAttempt,
    pub order: Order,
    pub prepay_id: String,
    pub code_url: Option<String>,
}

fn outbound(provider: Provider, kind: &'static str, body: String) -> LogEntry {
    LogEntry {
        provider,
        kind,
        raw_body: body,
        headers: String::new(),
        remote_addr: String::new(),
        verified: true,
    }
}

/// WeChat's `time_expire`: `yyyyMMddHHmmss` in Beijing time.
fn beijing(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .with_timezone(&crate::domain::shanghai())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// Ping++ subject (≤ 32 characters) and body (≤ 128).
fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl Gateway {
    async fn log(
        &self,
        entry: LogEntry,
        out_trade_no: String,
        outcome: String,
    ) -> Result<(), ServiceError> {
        run(&self.db, move |c| {
            pay::log_only(c, &entry, Some(&out_trade_no), &outcome, "")
        })
        .await
    }

    /// A WeChat JSAPI or NATIVE payment. NATIVE reuses a live code_url of the order, so the
    /// QR on the pay page stays the same across reloads.
    pub async fn wechat_prepay(
        &self,
        which: OrderRef,
        trade: TradeType,
        openid: Option<String>,
        client_ip: String,
    ) -> Result<WechatPrepared, ServiceError> {
        let channel = match trade {
            TradeType::Jsapi => Channel::WxJsapi,
            TradeType::Native => Channel::WxNative,
        };
        if trade == TradeType::Native {
            let w = which.clone();
            let reused = run(&self.db, move |c| {
                let o = match &w {
                    OrderRef::Owned { user_id, order_id } => {
                        super::order::owned(c, *user_id, *order_id)?
                    }
                    OrderRef::ByNo(no) => crate::models::order::find_by_no(c, no)?
                        .ok_or(ServiceError::OrderNotFound)?,
                };
                pay::payable(&o)?;
                Ok(pay::reusable_attempt(c, o.id, channel)?.map(|a| (o, a)))
            })
            .await?;
            if let Some((order, attempt)) = reused {
                return Ok(WechatPrepared {
                    prepay_id: attempt.provider_ref.clone().unwrap_or_default(),
                    code_url: attempt.credential.clone(),
                    attempt,
                    order,
                });
            }
        }
        let sign_type = self.wxpay.sign_type.as_str();
        let (order, attempt) = run(&self.db, move |c| {
            pay::start_attempt(c, &which, channel, Some(sign_type))
        })
        .await?;
        let request = UnifiedOrder {
            body: clip(&format!("结算商城-{}", order.snap_name), 40),
            out_trade_no: attempt.out_trade_no.clone(),
            total_fee: attempt.amount,
            spbill_create_ip: if trade == TradeType::Native {
                self.server_ip.clone()
            } else {
                client_ip
            },
            notify_url: self.wechat_notify_url.clone(),
            trade_type: trade,
            openid,
            product_id: (trade == TradeType::Native).then(|| order.id.to_string()),
            time_expire: Some(beijing(order.expires_at)),
        };
        let answer = self.wxpay.unified_order(&request).await;
        let (id, no) = (attempt.id, attempt.out_trade_no.clone());
        match answer {
            Ok(ex) => {
                let prepay_id = ex.fields.get("prepay_id").cloned().unwrap_or_default();
                let code_url = ex.fields.get("code_url").cloned();
                let (p, cu) = (prepay_id.clone(), code_url.clone());
                let entry = outbound(Provider::Wechat, "create", ex.response.clone());
                run(&self.db, move |c| {
                    pay::record_prepared(c, id, &p, cu.as_deref())?;
                    pay::log_only(c, &entry, Some(&no), "prepared", "")
                })
                .await?;
                let mut attempt = attempt;
                attempt.provider_ref = Some(prepay_id.clone());
                attempt.credential = code_url.clone();
                Ok(WechatPrepared {
                    attempt,
                    order,
                    prepay_id,
                    code_url,
                })
            }
            Err(e) => {
                let body = match &e {
                    WxError::Business { response, .. } => response.clone(),
                    other => other.to_string(),
                };
                let entry = outbound(Provider::Wechat, "create", body);
                let outcome = format!("failed: {e}");
                run(&self.db, move |c| {
                    pay::record_failed(c, id)?;
                    pay::log_only(c, &entry, Some(&no), &clip(&outcome, 64), "")
                })
                .await?;
                Err(ServiceError::Gateway(format!("unifiedorder: {e}")))
            }
        }
    }

    /// A Ping++ charge for the order on `channel`; `open_id` for wx_pub / wx_lite.
    pub async fn pingpp_charge(
        &self,
        which: OrderRef,
        channel: Channel,
        client_ip: String,
        open_id: Option<String>,
    ) -> Result<(PayAttempt, ChargeReply), ServiceError> {
        let (order, attempt) = run(&self.db, move |c| {
            pay::start_attempt(c, &which, channel, None)
        })
        .await?;
        let first_product = super::order::snap_items(&order)
            .first()
            .map(|l| l.id.to_string())
            .unwrap_or_else(|| order.id.to_string());
        let extra = match channel {
            Channel::WxPubQr => json!({ "product_id": first_product }),
            Channel::WxPub | Channel::WxLite => json!({ "open_id": open_id.unwrap_or_default() }),
            Channel::AlipayQr | Channel::WxJsapi | Channel::WxNative => serde_json::Value::Null,
        };
        let request = CreateCharge {
            order_no: attempt.out_trade_no.clone(),
            app: AppRef {
                id: self.pingpp_app_id.clone(),
            },
            channel: channel.as_str().into(),
            amount: attempt.amount,
            client_ip,
            currency: "cny".into(),
            subject: clip(&order.snap_name, 32),
            body: clip(
                &format!("结算商城订单 {}：{}", order.order_no, order.snap_name),
                128,
            ),
            extra,
            time_expire: Some(order.expires_at.and_utc().timestamp()),
            metadata: json!({ "order_no": order.order_no }),
            description: None,
        };
        let answer = self.pingpp.create_charge(&request).await;
        let (id, no) = (attempt.id, attempt.out_trade_no.clone());
        match answer {
            Ok(reply) => {
                let ch = reply.charge.id.clone();
                let credential = reply.charge.credential.to_string();
                let entry = outbound(Provider::Pingpp, "create", reply.raw.clone());
                run(&self.db, move |c| {
                    pay::record_prepared(c, id, &ch, Some(&credential))?;
                    pay::log_only(c, &entry, Some(&no), "prepared", "")
                })
                .await?;
                Ok((attempt, reply))
            }
            Err(e) => {
                let entry = outbound(Provider::Pingpp, "create", e.to_string());
                let outcome = clip(&format!("failed: {e}"), 64);
                run(&self.db, move |c| {
                    pay::record_failed(c, id)?;
                    pay::log_only(c, &entry, Some(&no), &outcome, "")
                })
                .await?;
                Err(ServiceError::Gateway(format!("create charge: {e}")))
            }
        }
    }

    /// Asks the platform about one attempt; a payment it confirms is applied exactly as a
    /// notification would be. `None`: not paid (yet).
    pub async fn query_attempt(
        &self,
        attempt: &PayAttempt,
    ) -> Result<Option<Applied>, ServiceError> {
        let proof = match Provider::parse(&attempt.provider) {
            Some(Provider::Wechat) => self.query_wechat(attempt).await?,
            Some(Provider::Pingpp) => self.query_pingpp(attempt).await?,
            None => {
                return Err(ServiceError::Internal(format!(
                    "provider {}",
                    attempt.provider
                )))
            }
        };
        let Some((proof, raw)) = proof else {
            return Ok(None);
        };
        let entry = LogEntry {
            raw_body: raw,
            ..outbound(proof.provider, "query", String::new())
        };
        let applied = run(&self.db, move |c| {
            pay::apply_payment(c, &proof, &entry, &|_| String::new())
        })
        .await?;
        Ok(Some(applied))
    }

    async fn query_wechat(
        &self,
        attempt: &PayAttempt,
    ) -> Result<Option<(Proof, String)>, ServiceError> {
        let no = attempt.out_trade_no.clone();
        let answer: Result<Exchange, WxError> = self.wxpay.order_query(&no).await;
        let ex = match answer {
            Ok(ex) => ex,
            Err(e) => {
                self.log(
                    outbound(Provider::Wechat, "query", e.to_string()),
                    no,
                    "query_failed".into(),
                )
                .await?;
                return Err(ServiceError::Gateway(format!("orderquery: {e}")));
            }
        };
        let state = ex.fields.get("trade_state").cloned().unwrap_or_default();
        if state != "SUCCESS" {
            let outcome = format!("trade_state {state}");
            self.log(
                outbound(Provider::Wechat, "query", ex.response),
                no,
                outcome,
            )
            .await?;
            return Ok(None);
        }
        let notice = notify::paid_notice(&ex.fields).map_err(ServiceError::Gateway)?;
        if notice.appid != self.wxpay.appid || notice.mch_id != self.wxpay.mch_id {
            return Err(ServiceError::Gateway(
                "orderquery answered for another merchant".into(),
            ));
        }
        Ok(Some((
            Proof {
                provider: Provider::Wechat,
                out_trade_no: notice.out_trade_no,
                payment_id: notice.transaction_id.clone(),
                transaction_no: notice.transaction_id,
                amount: Money::from_fen(notice.total_fee),
            },
            ex.response,
        )))
    }

    async fn query_pingpp(
        &self,
        attempt: &PayAttempt,
    ) -> Result<Option<(Proof, String)>, ServiceError> {
        let no = attempt.out_trade_no.clone();
        let Some(ch) = attempt.provider_ref.clone() else {
            return Ok(None);
        };
        let reply = match self.pingpp.retrieve_charge(&ch).await {
            Ok(r) => r,
            Err(e) => {
                let entry = outbound(Provider::Pingpp, "query", e.to_string());
                self.log(entry, no, "query_failed".into()).await?;
                return Err(ServiceError::Gateway(format!("retrieve charge: {e}")));
            }
        };
        let c = &reply.charge;
        if !c.paid {
            self.log(
                outbound(Provider::Pingpp, "query", reply.raw.clone()),
                no,
                "not_paid".into(),
            )
            .await?;
            return Ok(None);
        }
        if c.app != self.pingpp_app_id || c.currency != "cny" || c.order_no != attempt.out_trade_no
        {
            return Err(ServiceError::Gateway(
                "charge belongs to another app or order".into(),
            ));
        }
        Ok(Some((
            Proof {
                provider: Provider::Pingpp,
                out_trade_no: c.order_no.clone(),
                payment_id: c.id.clone(),
                transaction_no: c.transaction_no.clone().unwrap_or_else(|| c.id.clone()),
                amount: Money::from_fen(c.amount),
            },
            reply.raw.clone(),
        )))
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

    /// The reconciliation sweep: pending attempts older than `age` are asked about.
    pub async fn sweep(&self, age: chrono::Duration) -> Result<usize, ServiceError> {
        let stale = run(&self.db, move |c| pay::stale_pending(c, age, 100)).await?;
        let mut paid = 0;
        for a in stale.iter().filter(|a| a.provider_ref.is_some()) {
            match self.query_attempt(a).await {
                Ok(Some(_)) => paid += 1,
                Ok(None) => {}
                Err(e) => log::warn!("sweep: query of {} failed: {e}", a.out_trade_no),
            }
        }
        Ok(paid)
    }
}

//! Talking to the payment platforms, in the order that keeps the books right: record the
//! intent and commit, call the platform with no transaction open, record the result. The
//! only async part of the service layer; every database step is a synchronous service call
//! on the blocking pool.

use super::lifecycle::{self, RefundRequest};
use super::pay::{self, Applied, LogEntry, OrderRef, Proof};
use super::{run, ServiceError};
use crate::db::Db;
use crate::domain::{Channel, Money, Provider};
use crate::models::pay::PayAttempt;
use crate::models::refund::Refund;
use crate::models::Order;
use crate::payment::pingpp::{
    AppRef, ChargeReply, CreateCharge, CreateRefund, Pingpp, PingppError,
};
use crate::payment::wechat::refund::RefundRequest as WxRefund;
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
    /// WeChat's refund notify_url: `{public}/api/v1/pay/refund_notify`.
    pub wechat_refund_notify_url: String,
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
            if Provider::parse(&a.provider) == Some(Provider::Wechat) {
                let no = a.out_trade_no.clone();
                match self.wxpay.close_order(&no).await {
                    Ok(ex) => {
                        self.log(
                            outbound(Provider::Wechat, "close", ex.response),
                            no,
                            "closed".into(),
                        )
                        .await?
                    }
                    // Paid between our query and the close: apply it.
                    Err(WxError::Business { code, response, .. }) if code == "ORDERPAID" => {
                        self.log(
                            outbound(Provider::Wechat, "close", response),
                            no,
                            "orderpaid".into(),
                        )
                        .await?;
                        if self.query_attempt(a).await?.is_some() {
                            return Ok(false);
                        }
                        return Err(ServiceError::Gateway(
                            "closeorder says paid, orderquery does not".into(),
                        ));
                    }
                    Err(WxError::Business { code, response, .. })
                        if code == "ORDERCLOSED" || code == "ORDERNOTEXIST" =>
                    {
                        self.log(
                            outbound(Provider::Wechat, "close", response),
                            no,
                            code.to_lowercase(),
                        )
                        .await?;
                    }
                    Err(e) => {
                        self.log(
                            outbound(Provider::Wechat, "close", e.to_string()),
                            no,
                            "close_failed".into(),
                        )
                        .await?;
                        return Err(ServiceError::Gateway(format!("closeorder: {e}")));
                    }
                }
            }
            // Ping++ charges cannot be closed: they expire at time_expire (the order's
            // expiry), and a late success still pays through the late-payment rule.
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
            match self
                .settle_and_close(o.id, "system", "超时未支付，自动关闭")
                .await
            {
                Ok(true) => closed += 1,
                Ok(false) => {}
                Err(e) => log::warn!("timeout close of {} failed: {e}", o.order_no),
            }
        }
        Ok(closed)
    }

    /// Records and submits a refund; a retried request returns the same refund.
    pub async fn refund(&self, req: RefundRequest) -> Result<Refund, ServiceError> {
        let (refund, _, _) = run(&self.db, move |c| lifecycle::start_refund(c, &req)).await?;
        self.submit_refund(refund).await
    }

    /// Sends a Pending refund to its platform (a refund already sent is returned as it is).
    pub async fn submit_refund(&self, refund: Refund) -> Result<Refund, ServiceError> {
        if refund.status != crate::domain::RefundStatus::Pending.code() {
            return Ok(refund);
        }
        let r = refund.clone();
        let attempt = run(&self.db, move |c| lifecycle::refund_attempt(c, &r)).await?;
        let (id, no) = (refund.id, attempt.out_trade_no.clone());
        match Provider::parse(&attempt.provider) {
            Some(Provider::Wechat) => {
                let req = WxRefund {
                    out_trade_no: attempt.out_trade_no.clone(),
                    out_refund_no: refund.out_refund_no.clone(),
                    total_fee: attempt.amount,
                    refund_fee: refund.amount,
                    refund_desc: clip(&refund.reason, 80),
                    notify_url: self.wechat_refund_notify_url.clone(),
                };
                match self.wxpay.refund(&req).await {
                    Ok(ex) => {
                        let refund_id = ex.fields.get("refund_id").cloned().unwrap_or_default();
                        let entry = outbound(Provider::Wechat, "refund", ex.response);
                        run(&self.db, move |c| {
                            lifecycle::refund_accepted(c, id, &refund_id)?;
                            pay::log_only(c, &entry, Some(&no), "refund_accepted", "")
                        })
                        .await?;
                    }
                    Err(e) => {
                        return self
                            .refund_refused(
                                id,
                                no,
                                Provider::Wechat,
                                e.to_string(),
                                matches!(e, WxError::Business { .. }),
                            )
                            .await
                    }
                }
            }
            Some(Provider::Pingpp) => {
                let ch = attempt.provider_ref.clone().unwrap_or_default();
                let req = CreateRefund {
                    description: clip(&refund.reason, 255),
                    amount: Some(refund.amount),
                    metadata: json!({ "out_refund_no": refund.out_refund_no }),
                };
                match self.pingpp.create_refund(&ch, &req).await {
                    Ok((re, raw)) => {
                        let entry = outbound(Provider::Pingpp, "refund", raw);
                        run(&self.db, move |c| {
                            lifecycle::refund_accepted(c, id, &re.id)?;
                            pay::log_only(c, &entry, Some(&no), "refund_accepted", "")
                        })
                        .await?;
                    }
                    Err(e) => {
                        let final_no = matches!(e, PingppError::Api { status, .. } if (400..500).contains(&status));
                        return self
                            .refund_refused(id, no, Provider::Pingpp, e.to_string(), final_no)
                            .await;
                    }
                }
            }
            None => {
                return Err(ServiceError::Internal(format!(
                    "provider {}",
                    attempt.provider
                )))
            }
        }
        let out = refund.out_refund_no.clone();
        run(&self.db, move |c| lifecycle::refund_by_no(c, &out))
            .await?
            .ok_or_else(|| ServiceError::Internal("refund vanished".into()))
    }

    /// The platform said no (`refused`: for good) or could not be reached (left Pending).
    async fn refund_refused(
        &self,
        id: i32,
        no: String,
        provider: Provider,
        why: String,
        refused: bool,
    ) -> Result<Refund, ServiceError> {
        let entry = outbound(provider, "refund", why.clone());
        let outcome = clip(&format!("refund_failed: {why}"), 64);
        run(&self.db, move |c| {
            if refused {
                lifecycle::refund_failed(c, id, &outcome)?;
            }
            pay::log_only(c, &entry, Some(&no), &outcome, "")
        })
        .await?;
        Err(ServiceError::Gateway(format!("refund: {why}")))
    }

    /// Asks the platform about a refund it accepted; completes it when done.
    pub async fn query_refund(&self, refund: &Refund) -> Result<bool, ServiceError> {
        let r = refund.clone();
        let attempt = run(&self.db, move |c| lifecycle::refund_attempt(c, &r)).await?;
        let (done, provider_ref, raw, provider) = match Provider::parse(&attempt.provider) {
            Some(Provider::Wechat) => {
                let ex = self
                    .wxpay
                    .refund_query(&refund.out_refund_no)
                    .await
                    .map_err(|e| ServiceError::Gateway(format!("refundquery: {e}")))?;
                let status = ex
                    .fields
                    .get("refund_status_0")
                    .cloned()
                    .unwrap_or_default();
                let id = ex.fields.get("refund_id_0").cloned().unwrap_or_default();
                (status == "SUCCESS", id, ex.response, Provider::Wechat)
            }
            Some(Provider::Pingpp) => {
                let ch = attempt.provider_ref.clone().unwrap_or_default();
                let re = refund.provider_ref.clone().unwrap_or_default();
                let (obj, raw) = self
                    .pingpp
                    .retrieve_refund(&ch, &re)
                    .await
                    .map_err(|e| ServiceError::Gateway(format!("retrieve refund: {e}")))?;
                (obj.status == "succeeded", obj.id, raw, Provider::Pingpp)
            }
            None => {
                return Err(ServiceError::Internal(format!(
                    "provider {}",
                    attempt.provider
                )))
            }
        };
        let entry = LogEntry {
            raw_body: raw,
            ..outbound(provider, "refund_query", String::new())
        };
        let key = format!("{provider}-refund:{provider_ref}");
        let r = refund.clone();
        let no = attempt.out_trade_no.clone();
        if !done {
            run(&self.db, move |c| {
                pay::log_only(c, &entry, Some(&no), "refund_processing", "")
            })
            .await?;
            return Ok(false);
        }
        run(&self.db, move |c| {
            super::notify::apply_refund(c, &r, &provider_ref, &key, &entry, &no, "")
        })
        .await
    }

    /// The refund sweep: asks about every refund still processing.
    pub async fn sweep_refunds(&self) -> Result<usize, ServiceError> {
        let open = run(&self.db, |c| lifecycle::unfinished_refunds(c, 100)).await?;
        let mut done = 0;
        for r in &open {
            match self.query_refund(r).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(e) => log::warn!("refund query of {} failed: {e}", r.out_refund_no),
            }
        }
        Ok(done)
    }
}

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
    /// Live mode: the platforms' answers must say `livemode: true` (Ping++), and test-mode
    /// objects pay nothing.
    pub livemode: bool,
    /// Counts the payments the query door applies.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// What a platform said about one attempt.
enum Answer {
    /// Paid: the proof and the raw answer.
    Paid(Proof, String),
    /// Not paid (yet).
    Unpaid,
    /// The platform has no such trade (never created, or lost).
    Unknown(String),
}

/// WeChat refund error codes that mean "not settled yet: call again with the same
/// out_refund_no", now or later. Every other business error is a refusal.
const WX_REFUND_RETRYABLE: [&str; 4] = [
    "SYSTEMERROR",
    "BIZERR_NEED_RETRY",
    "FREQUENCY_LIMITED",
    "INVALID_REQ_TOO_MUCH",
];

/// How long a request waits for another one creating the same attempt.
const WAIT_FOR_IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(10);

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

/// At most `n` bytes of UTF-8, cut at a character boundary: WeChat's `body` is String(128)
/// in bytes (a Chinese character takes 3, an emoji 4).
fn clip_bytes(s: &str, n: usize) -> String {
    let mut end = 0;
    for (i, ch) in s.char_indices() {
        if i + ch.len_utf8() > n {
            break;
        }
        end = i + ch.len_utf8();
    }
    s[..end].to_string()
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

    /// The live attempt of `channel` for the order, or a new one; waits while another
    /// request is creating it.
    async fn begin(
        &self,
        which: OrderRef,
        channel: Channel,
        sign_type: Option<&'static str>,
    ) -> Result<(Order, PayAttempt, bool), ServiceError> {
        let deadline = std::time::Instant::now() + WAIT_FOR_IN_FLIGHT;
        loop {
            let w = which.clone();
            let start = run(&self.db, move |c| {
                pay::reuse_or_start(c, &w, channel, sign_type)
            })
            .await?;
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

    /// A WeChat JSAPI or NATIVE payment. A live attempt of the same kind is reused (the same
    /// QR on every reload, the same prepay_id), within the credential's two hours.
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
        let sign_type = self.wxpay.sign_type.as_str();
        let (order, attempt, new) = self.begin(which, channel, Some(sign_type)).await?;
        if !new {
            return Ok(WechatPrepared {
                prepay_id: attempt.provider_ref.clone().unwrap_or_default(),
                code_url: attempt.credential.clone(),
                attempt,
                order,
            });
        }
        let request = UnifiedOrder {
            body: clip_bytes(&format!("结算商城-{}", order.snap_name), 128),
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
            time_expire: Some(beijing(attempt.expires_at)),
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
        let (order, attempt, new) = self.begin(which, channel, None).await?;
        if !new {
            // The same charge again (its credential, as Ping++ keeps it).
            let ch = attempt.provider_ref.clone().unwrap_or_default();
            let reply = self
                .pingpp
                .retrieve_charge(&ch)
                .await
                .map_err(|e| ServiceError::Gateway(format!("retrieve charge: {e}")))?;
            return Ok((attempt, reply));
        }
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
            time_expire: Some(attempt.expires_at.and_utc().timestamp()),
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
    /// notification would be. `None`: not paid (yet), or unknown at the platform (counted:
    /// after a few such answers the attempt ends).
    pub async fn query_attempt(
        &self,
        attempt: &PayAttempt,
    ) -> Result<Option<Applied>, ServiceError> {
        let answer = match Provider::parse(&attempt.provider) {
            Some(Provider::Wechat) => self.query_wechat(attempt).await?,
            Some(Provider::Pingpp) => self.query_pingpp(attempt).await?,
            None => {
                return Err(ServiceError::Internal(format!(
                    "provider {}",
                    attempt.provider
                )))
            }
        };
        let (proof, raw) = match answer {
            Answer::Paid(proof, raw) => (proof, raw),
            Answer::Unpaid => return Ok(None),
            Answer::Unknown(raw) => {
                let provider = Provider::parse(&attempt.provider).unwrap_or(Provider::Wechat);
                let (a, no) = (attempt.clone(), attempt.out_trade_no.clone());
                run(&self.db, move |c| {
                    let ended = pay::unknown_at_platform(c, &a)?;
                    let outcome = if ended {
                        "unknown_ended"
                    } else {
                        "unknown_trade"
                    };
                    pay::log_only(c, &outbound(provider, "query", raw), Some(&no), outcome, "")
                })
                .await?;
                return Ok(None);
            }
        };
        let entry = LogEntry {
            raw_body: raw,
            ..outbound(proof.provider, "query", String::new())
        };
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

    async fn query_wechat(&self, attempt: &PayAttempt) -> Result<Answer, ServiceError> {
        let no = attempt.out_trade_no.clone();
        let answer: Result<Exchange, WxError> = self.wxpay.order_query(&no).await;
        let ex = match answer {
            Ok(ex) => ex,
            Err(WxError::Business { code, response, .. }) if code == "ORDERNOTEXIST" => {
                return Ok(Answer::Unknown(response))
            }
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
        // REFUND: paid, then (partly) refunded; the payment still counts.
        if state != "SUCCESS" && state != "REFUND" {
            let outcome = format!("trade_state {state}");
            self.log(
                outbound(Provider::Wechat, "query", ex.response),
                no,
                outcome,
            )
            .await?;
            return Ok(Answer::Unpaid);
        }
        let notice = notify::paid_notice(&ex.fields).map_err(ServiceError::Gateway)?;
        if notice.appid != self.wxpay.appid || notice.mch_id != self.wxpay.mch_id {
            return Err(ServiceError::Gateway(
                "orderquery answered for another merchant".into(),
            ));
        }
        Ok(Answer::Paid(
            Proof {
                provider: Provider::Wechat,
                out_trade_no: notice.out_trade_no,
                payment_id: notice.transaction_id.clone(),
                transaction_no: notice.transaction_id,
                amount: Money::from_fen(notice.total_fee),
            },
            ex.response,
        ))
    }

    async fn query_pingpp(&self, attempt: &PayAttempt) -> Result<Answer, ServiceError> {
        let no = attempt.out_trade_no.clone();
        let Some(ch) = attempt.provider_ref.clone() else {
            return Ok(Answer::Unpaid);
        };
        let reply = match self.pingpp.retrieve_charge(&ch).await {
            Ok(r) => r,
            Err(PingppError::Api { status: 404, error }) => {
                return Ok(Answer::Unknown(format!("404 {}", error.message)))
            }
            Err(e) => {
                let entry = outbound(Provider::Pingpp, "query", e.to_string());
                self.log(entry, no, "query_failed".into()).await?;
                return Err(ServiceError::Gateway(format!("retrieve charge: {e}")));
            }
        };
        let c = &reply.charge;
        // Checked before `paid`: a test-mode charge "paid" without money must never pay a
        // live order, nor a live one a sandbox order.
        let wrong = if c.livemode != self.livemode {
            Some("wrong_mode")
        } else if c.app != self.pingpp_app_id
            || c.currency != "cny"
            || c.order_no != attempt.out_trade_no
        {
            Some("wrong_app")
        } else {
            None
        };
        if let Some(outcome) = wrong {
            let entry = LogEntry {
                verified: false,
                ..outbound(Provider::Pingpp, "query", reply.raw.clone())
            };
            self.log(entry, no, outcome.into()).await?;
            return Err(ServiceError::Gateway(format!(
                "charge {ch} does not belong to this app, order or mode ({outcome})"
            )));
        }
        if !c.paid {
            self.log(
                outbound(Provider::Pingpp, "query", reply.raw.clone()),
                no,
                "not_paid".into(),
            )
            .await?;
            return Ok(Answer::Unpaid);
        }
        Ok(Answer::Paid(
            Proof {
                provider: Provider::Pingpp,
                out_trade_no: c.order_no.clone(),
                payment_id: c.id.clone(),
                transaction_no: c.transaction_no.clone().unwrap_or_else(|| c.id.clone()),
                amount: Money::from_fen(c.amount),
            },
            reply.raw.clone(),
        ))
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
        match self
            .settle_and_close(o.id, "system", "超时未支付，自动关闭")
            .await
        {
            Ok(_) => true,
            Err(e) => {
                log::warn!("closing expired order {} failed: {e}", o.order_no);
                false
            }
        }
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

    /// Sends a Pending refund to its platform (a refund already sent is returned as it is);
    /// the refund as it stands afterwards. Only a definitive refusal fails it (an error); an answer that leaves the outcome open (a
    /// timeout, a 5xx, SYSTEMERROR, BIZERR_NEED_RETRY, FREQUENCY_LIMITED) keeps it Pending
    /// for the refund sweep, which submits it again under the same out_refund_no. A Ping++
    /// refund whose first POST went unanswered is looked for at Ping++ before any new POST.
    pub async fn submit_refund(&self, refund: Refund) -> Result<Refund, ServiceError> {
        if refund.status != crate::domain::RefundStatus::Pending.code() {
            return Ok(refund);
        }
        let r = refund.clone();
        let attempt = run(&self.db, move |c| lifecycle::refund_attempt(c, &r)).await?;
        let (id, no) = (refund.id, attempt.out_trade_no.clone());
        let provider = Provider::parse(&attempt.provider)
            .ok_or_else(|| ServiceError::Internal(format!("provider {}", attempt.provider)))?;
        let sent = match provider {
            Provider::Wechat => self.submit_wechat_refund(&refund, &attempt).await,
            Provider::Pingpp => self.submit_pingpp_refund(&refund, &attempt).await,
        };
        match sent {
            Submitted::Accepted { refund_id, raw } => {
                let entry = outbound(provider, "refund", raw);
                run(&self.db, move |c| {
                    lifecycle::refund_accepted(c, id, &refund_id)?;
                    pay::log_only(c, &entry, Some(&no), "refund_accepted", "")
                })
                .await?;
            }
            Submitted::Retry(why) => {
                let entry = outbound(provider, "refund", why.clone());
                let outcome = clip(&format!("refund_retry: {why}"), 64);
                let r = refund.clone();
                run(&self.db, move |c| {
                    lifecycle::refund_retry(c, &r)?;
                    pay::log_only(c, &entry, Some(&no), &outcome, "")
                })
                .await?;
                // Not an error for whoever asked: the refund is recorded and the refund
                // sweep sees it through.
                log::warn!(
                    "refund {} not settled yet, will be retried: {why}",
                    refund.out_refund_no
                );
            }
            Submitted::Refused(why) => {
                let entry = outbound(provider, "refund", why.clone());
                let outcome = clip(&format!("refund_failed: {why}"), 64);
                run(&self.db, move |c| {
                    lifecycle::refund_failed(c, id, &outcome)?;
                    pay::log_only(c, &entry, Some(&no), &outcome, "")
                })
                .await?;
                return Err(ServiceError::Gateway(format!("refund: {why}")));
            }
        }
        let out = refund.out_refund_no.clone();
        run(&self.db, move |c| lifecycle::refund_by_no(c, &out))
            .await?
            .ok_or_else(|| ServiceError::Internal("refund vanished".into()))
    }

    async fn submit_wechat_refund(&self, refund: &Refund, attempt: &PayAttempt) -> Submitted {
        let req = WxRefund {
            out_trade_no: attempt.out_trade_no.clone(),
            out_refund_no: refund.out_refund_no.clone(),
            total_fee: attempt.amount,
            refund_fee: refund.amount,
            refund_desc: clip(&refund.reason, 80),
            notify_url: self.wechat_refund_notify_url.clone(),
        };
        match self.wxpay.refund(&req).await {
            Ok(ex) => Submitted::Accepted {
                refund_id: ex.fields.get("refund_id").cloned().unwrap_or_default(),
                raw: ex.response,
            },
            Err(WxError::Business { code, response, .. })
                if WX_REFUND_RETRYABLE.contains(&code.as_str()) =>
            {
                Submitted::Retry(format!("{code}: {response}"))
            }
            Err(e @ WxError::Business { .. }) => Submitted::Refused(e.to_string()),
            // No answer, or one we cannot read: the refund may have gone through, and
            // WeChat settles a repeat of the same out_refund_no as the same refund.
            Err(e) => Submitted::Retry(e.to_string()),
        }
    }

    async fn submit_pingpp_refund(&self, refund: &Refund, attempt: &PayAttempt) -> Submitted {
        let ch = attempt.provider_ref.clone().unwrap_or_default();
        if refund.tries > 0 {
            // An earlier POST got no clear answer: it may have taken the money. Ping++ has
            // no idempotency key, so look for our refund before posting again.
            match self.pingpp.list_refunds(&ch).await {
                Ok((list, raw)) => {
                    let ours = list.into_iter().find(|re| {
                        re.metadata["out_refund_no"].as_str() == Some(&refund.out_refund_no)
                    });
                    if let Some(re) = ours {
                        return Submitted::Accepted {
                            refund_id: re.id,
                            raw,
                        };
                    }
                }
                Err(e) => return Submitted::Retry(format!("list refunds: {e}")),
            }
        }
        let req = CreateRefund {
            description: clip(&refund.reason, 255),
            amount: Some(refund.amount),
            metadata: json!({ "out_refund_no": refund.out_refund_no }),
        };
        match self.pingpp.create_refund(&ch, &req).await {
            Ok((re, raw)) => Submitted::Accepted {
                refund_id: re.id,
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

    /// Asks the platform about a refund it accepted; completes it when done, and marks it
    /// abnormal when the platform closed it or could not deliver it.
    pub async fn query_refund(&self, refund: &Refund) -> Result<bool, ServiceError> {
        let r = refund.clone();
        let attempt = run(&self.db, move |c| lifecycle::refund_attempt(c, &r)).await?;
        let (status, provider_ref, raw, provider) = match Provider::parse(&attempt.provider) {
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
                let status = match status.as_str() {
                    "SUCCESS" => RefundAnswer::Done,
                    "REFUNDCLOSE" | "CHANGE" => RefundAnswer::Abnormal(status),
                    _ => RefundAnswer::Processing,
                };
                (status, id, ex.response, Provider::Wechat)
            }
            Some(Provider::Pingpp) => {
                let ch = attempt.provider_ref.clone().unwrap_or_default();
                let re = refund.provider_ref.clone().unwrap_or_default();
                let (obj, raw) = self
                    .pingpp
                    .retrieve_refund(&ch, &re)
                    .await
                    .map_err(|e| ServiceError::Gateway(format!("retrieve refund: {e}")))?;
                let status = match obj.status.as_str() {
                    "succeeded" => RefundAnswer::Done,
                    "failed" => RefundAnswer::Failed(format!(
                        "Ping++ 退款失败 {}",
                        obj.failure_msg.clone().unwrap_or_default()
                    )),
                    _ => RefundAnswer::Processing,
                };
                (status, obj.id, raw, Provider::Pingpp)
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
        let id = refund.id;
        match status {
            RefundAnswer::Done => {
                run(&self.db, move |c| {
                    super::notify::apply_refund(c, &r, &provider_ref, &key, &entry, &no, "")
                })
                .await
            }
            RefundAnswer::Processing => {
                run(&self.db, move |c| {
                    pay::log_only(c, &entry, Some(&no), "refund_processing", "")
                })
                .await?;
                Ok(false)
            }
            RefundAnswer::Abnormal(why) => {
                run(&self.db, move |c| {
                    lifecycle::refund_abnormal(c, id, &format!("微信退款 {why}，需人工处理"))?;
                    pay::log_only(
                        c,
                        &entry,
                        Some(&no),
                        &format!("refund_{}", why.to_lowercase()),
                        "",
                    )
                })
                .await?;
                Ok(false)
            }
            RefundAnswer::Failed(why) => {
                run(&self.db, move |c| {
                    lifecycle::refund_failed(c, id, &clip(&why, 64))?;
                    pay::log_only(c, &entry, Some(&no), "refund_failed", "")
                })
                .await?;
                Ok(false)
            }
        }
    }

    /// The refund sweep: submits the Pending refunds that are due (a second payment's
    /// automatic refund, a retry after an open answer), then asks about every refund still
    /// processing. How many completed.
    pub async fn sweep_refunds(&self) -> Result<usize, ServiceError> {
        let due = run(&self.db, |c| lifecycle::due_refunds(c, 100)).await?;
        for r in due {
            if let Err(e) = self.submit_refund(r.clone()).await {
                log::warn!("refund {} not submitted: {e}", r.out_refund_no);
            }
        }
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

/// What a refund submission came to.
enum Submitted {
    Accepted {
        refund_id: String,
        raw: String,
    },
    /// The outcome is open: submit again later with the same out_refund_no.
    Retry(String),
    /// A definitive refusal.
    Refused(String),
}

/// What a refund query found.
enum RefundAnswer {
    Done,
    Processing,
    /// REFUNDCLOSE or CHANGE: for an admin, never to be refunded again automatically.
    Abnormal(String),
    Failed(String),
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wechat_body_is_cut_in_bytes_at_a_character_boundary() {
        let name = format!("结算商城-{}", "🍵茶".repeat(40));
        let body = super::clip_bytes(&name, 128);
        assert!(body.len() <= 128 && body.len() > 120, "{}", body.len());
        assert!(name.starts_with(&body));
        assert_eq!(super::clip_bytes("abc", 128), "abc");
    }
}

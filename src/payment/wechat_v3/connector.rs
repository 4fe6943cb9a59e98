//! WeChat Pay APIv3 behind the connector interface: JSAPI and NATIVE prepay, query, close,
//! refund and refund query, with the platform's answers (verified by the client) read into
//! the shop's outcomes.

use super::client::WxPayV3;
use super::error::{Exchange, V3Error};
use super::wire::{
    cut_to_bytes, Prepared, Prepay, RefundRequest, RefundStatus, TradeType, Transaction,
    DESCRIPTION_MAX_BYTES, REASON_MAX_BYTES,
};
use crate::domain::{Channel, Provider};
use crate::payment::connector::{
    Call, Closed, Connector, Created, Failure, JsapiLaunch, Paid, PaymentRequest, RefundOrder,
    RefundState, Submitted, Trade, TradeState,
};

/// WeChat Pay APIv3 for the shop's flows.
#[derive(Debug, Clone)]
pub struct WechatV3 {
    pub client: WxPayV3,
    /// The mini-program's appid, bound to the merchant.
    pub appid: String,
    /// The Official Account's appid, bound to the merchant: the shop's cashier in WeChat
    /// (`wx_pub`) pays under it.
    pub oa_appid: String,
    /// `{public}/api/v1/pay/v3/notify`: payments and refunds.
    pub notify_url: String,
}

/// The answer as it came, for the pay log.
fn raw(ex: &Exchange) -> String {
    ex.response_body.clone()
}

fn failure(call: &str, e: &V3Error) -> Failure {
    let body = e.exchange().map(raw).unwrap_or_else(|| e.to_string());
    Failure::new(format!("{call}: {e}"), body)
}

/// A transaction of this merchant (one of its `appids`, its `mchid`), in CNY, and paid: the
/// payment it proves. `Err`: the pay log's outcome for a transaction nobody may believe.
pub fn paid(t: &Transaction, appids: &[&str], mchid: &str) -> Result<Option<Paid>, &'static str> {
    if !appids.contains(&t.appid.as_str()) || t.mchid != mchid {
        return Err("wrong_merchant");
    }
    if !t.trade_state.was_paid() {
        return Ok(None);
    }
    let amount = t.amount.as_ref().ok_or("unreadable")?;
    if amount.currency.as_deref().unwrap_or("CNY") != "CNY" {
        return Err("wrong_currency");
    }
    let id = t.transaction_id.clone().filter(|s| !s.is_empty());
    let id = id.ok_or("unreadable")?;
    Ok(Some(Paid {
        out_trade_no: t.out_trade_no.clone(),
        payment_id: id.clone(),
        transaction_no: id,
        amount: amount.total,
    }))
}

impl WechatV3 {
    /// The appid a trade of `channel` is made with.
    fn appid_of(&self, channel: Option<Channel>) -> &str {
        match channel {
            Some(Channel::WxPub) => &self.oa_appid,
            _ => &self.appid,
        }
    }

    async fn create_trade(&self, req: &PaymentRequest) -> Result<Created, Failure> {
        let order = Prepay {
            appid: self.appid_of(Some(req.channel)).to_string(),
            description: cut_to_bytes(&format!("结算商城-{}", req.subject), DESCRIPTION_MAX_BYTES)
                .to_string(),
            out_trade_no: req.out_trade_no.clone(),
            amount: req.amount,
            notify_url: self.notify_url.clone(),
            time_expire: Some(req.expires_at.and_utc()),
            attach: None,
        };
        let payer = req.payer.clone().unwrap_or_default();
        let trade = match req.channel {
            Channel::WxNative => TradeType::Native,
            Channel::WxWap => TradeType::H5 {
                payer_client_ip: &req.client_ip,
            },
            _ => TradeType::Jsapi { openid: &payer },
        };
        let answer = self
            .client
            .prepay(&order, trade)
            .await
            .map_err(|e| failure("prepay", &e))?;
        let (provider_ref, credential) = match answer.value {
            Prepared::PrepayId(id) => (id, None),
            // NATIVE has no prepay_id: the trade is known by its number.
            Prepared::CodeUrl(url) => (req.out_trade_no.clone(), Some(url)),
            Prepared::H5Url(url) => (req.out_trade_no.clone(), Some(url)),
        };
        Ok(Created {
            provider_ref,
            credential,
            raw: raw(&answer.exchange),
        })
    }

    async fn query_trade(&self, trade: &Trade) -> Result<TradeState, Failure> {
        let answer = match self.client.query(&trade.out_trade_no).await {
            Ok(a) => a,
            Err(e) if e.is_not_found() => {
                return Ok(TradeState::Unknown {
                    raw: e.exchange().map(raw).unwrap_or_default(),
                })
            }
            Err(e) => return Err(failure("query", &e)),
        };
        let t = &answer.value;
        let body = raw(&answer.exchange);
        match paid(t, &[self.appid_of(trade.channel)], self.client.mchid()) {
            Ok(Some(paid)) => Ok(TradeState::Paid { paid, raw: body }),
            // An unpaid trade may come without appid/mchid: only a paid one must name us.
            Ok(None) | Err("wrong_merchant") if !t.trade_state.was_paid() => {
                Ok(TradeState::Unpaid {
                    state: format!(
                        "trade_state {}",
                        format!("{:?}", t.trade_state).to_uppercase()
                    ),
                    raw: body,
                })
            }
            Ok(None) => Err(Failure::new(
                "query: a paid trade without its payment",
                body,
            )),
            Err(outcome) => Ok(TradeState::Foreign { outcome, raw: body }),
        }
    }

    async fn close_trade(&self, trade: &Trade) -> Result<Closed, Failure> {
        match self.client.close(&trade.out_trade_no).await {
            Ok(ex) => Ok(Closed::Closed {
                outcome: "closed".into(),
                raw: raw(&ex),
            }),
            Err(e) if e.may_be_paid() => Ok(Closed::AlreadyPaid {
                raw: e.exchange().map(raw).unwrap_or_default(),
            }),
            Err(e) if e.is_order_closed() || e.is_not_found() => Ok(Closed::Closed {
                outcome: e
                    .platform()
                    .map(|p| p.code.to_lowercase())
                    .unwrap_or_default(),
                raw: e.exchange().map(raw).unwrap_or_default(),
            }),
            Err(e) => Err(failure("close", &e)),
        }
    }

    async fn submit(&self, r: &RefundOrder) -> Submitted {
        let req = RefundRequest {
            out_trade_no: r.trade.out_trade_no.clone(),
            out_refund_no: r.out_refund_no.clone(),
            reason: Some(cut_to_bytes(&r.reason, REASON_MAX_BYTES).to_string()),
            notify_url: Some(self.notify_url.clone()),
            refund: r.amount,
            total: r.trade.amount,
        };
        match self.client.refund(&req).await {
            Ok(a) => Submitted::Accepted {
                refund_ref: a.value.refund_id,
                raw: raw(&a.exchange),
            },
            // No answer to believe, or "come back later": the same out_refund_no is the
            // same refund at WeChat.
            Err(e) if e.is_retryable() => Submitted::Retry(e.to_string()),
            Err(e) => Submitted::Refused(e.to_string()),
        }
    }

    async fn ask_refund(&self, r: &RefundOrder) -> Result<RefundState, Failure> {
        let a = self
            .client
            .refund_query(&r.out_refund_no)
            .await
            .map_err(|e| failure("refund query", &e))?;
        let body = raw(&a.exchange);
        Ok(refund_state(a.value.status, a.value.refund_id, body))
    }
}

/// A refund's status (answer, query or notification) as the shop reads it.
pub fn refund_state(status: RefundStatus, refund_ref: String, raw: String) -> RefundState {
    match status {
        RefundStatus::Success => RefundState::Done { refund_ref, raw },
        RefundStatus::Closed | RefundStatus::Abnormal => {
            let word = if status == RefundStatus::Closed {
                "CLOSED"
            } else {
                "ABNORMAL"
            };
            RefundState::Abnormal {
                status: word.into(),
                note: format!("微信退款 {word}，需人工处理"),
                raw,
            }
        }
        RefundStatus::Processing | RefundStatus::Other => RefundState::Processing { raw },
    }
}

impl Connector for WechatV3 {
    fn provider(&self) -> Provider {
        Provider::WechatV3
    }

    fn sign_type(&self) -> Option<&'static str> {
        Some("RSA")
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> Call<'a, Result<Created, Failure>> {
        Box::pin(self.create_trade(req))
    }

    fn has_bill(&self) -> bool {
        true
    }

    fn trade_bill(
        &self,
        day: chrono::NaiveDate,
    ) -> Call<'_, Result<crate::payment::bill::Bill, crate::payment::bill::BillError>> {
        Box::pin(async move {
            let text = self.client.trade_bill(day).await?;
            crate::payment::wechat::bill::parse(&text)
        })
    }

    fn jsapi_launch(
        &self,
        channel: Channel,
        prepay_id: &str,
        _timestamp: i64,
    ) -> Option<JsapiLaunch> {
        let appid = self.appid_of(Some(channel));
        self.client.pay_params(appid, prepay_id).ok()
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

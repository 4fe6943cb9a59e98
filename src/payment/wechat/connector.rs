//! WeChat Pay v2 behind the connector interface: unifiedorder, orderquery, closeorder,
//! refund and refundquery, with WeChat's error codes read into the shop's outcomes.

use super::refund::RefundRequest;
use super::{notify, Exchange, TradeType, UnifiedOrder, WxError, WxPay};
use crate::domain::{Channel, Money, Provider};
use crate::payment::connector::{
    Call, Closed, Connector, Created, Failure, JsapiLaunch, Paid, PaymentRequest, RefundOrder,
    RefundState, Submitted, Trade, TradeState,
};

/// Refund error codes that mean "not settled yet: call again with the same out_refund_no",
/// now or later. Every other business error is a refusal.
const REFUND_RETRYABLE: [&str; 4] = [
    "SYSTEMERROR",
    "BIZERR_NEED_RETRY",
    "FREQUENCY_LIMITED",
    "INVALID_REQ_TOO_MUCH",
];

/// WeChat Pay v2 for the shop's flows.
#[derive(Debug, Clone)]
pub struct WechatV2 {
    /// Under the mini-program's appid.
    pub pay: WxPay,
    /// The same merchant under its Official Account's appid: the shop's cashier in WeChat
    /// (`wx_pub`) pays, and is asked about, under it.
    pub oa: WxPay,
    /// `{public}/api/v1/pay/notify`.
    pub notify_url: String,
    /// `{public}/api/v1/pay/refund_notify`.
    pub refund_notify_url: String,
    /// The server's own address, sent as `spbill_create_ip` for NATIVE payments.
    pub server_ip: String,
}

/// WeChat's `time_expire`: `yyyyMMddHHmmss` in Beijing time.
fn beijing(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .with_timezone(&crate::domain::shanghai())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// At most `n` bytes of UTF-8, cut at a character boundary: WeChat's `body` is String(128)
/// in bytes (a Chinese character takes 3, an emoji 4).
pub fn clip_bytes(s: &str, n: usize) -> String {
    let mut end = 0;
    for (i, ch) in s.char_indices() {
        if i + ch.len_utf8() > n {
            break;
        }
        end = i + ch.len_utf8();
    }
    s[..end].to_string()
}

fn failure(call: &str, e: WxError) -> Failure {
    let raw = match &e {
        WxError::Business { response, .. } => response.clone(),
        other => other.to_string(),
    };
    Failure::new(format!("{call}: {e}"), raw)
}

impl WechatV2 {
    /// The client under the appid a trade of `channel` is made with.
    fn client(&self, channel: Option<Channel>) -> &WxPay {
        match channel {
            Some(Channel::WxPub) => &self.oa,
            _ => &self.pay,
        }
    }

    async fn create_trade(&self, req: &PaymentRequest) -> Result<Created, Failure> {
        let trade = match req.channel {
            Channel::WxNative => TradeType::Native,
            Channel::WxJsapi | Channel::WxPub => TradeType::Jsapi,
            other => {
                let why = format!("{other} is not a WeChat Pay v2 payment (H5 needs APIv3)");
                return Err(Failure::new(why, ""));
            }
        };
        let native = trade == TradeType::Native;
        let request = UnifiedOrder {
            body: clip_bytes(&format!("结算商城-{}", req.subject), 128),
            out_trade_no: req.out_trade_no.clone(),
            total_fee: req.amount.fen(),
            spbill_create_ip: if native {
                self.server_ip.clone()
            } else {
                req.client_ip.clone()
            },
            notify_url: self.notify_url.clone(),
            trade_type: trade,
            openid: req.payer.clone(),
            product_id: native.then(|| req.order_id.to_string()),
            time_expire: Some(beijing(req.expires_at)),
        };
        let ex = self
            .client(Some(req.channel))
            .unified_order(&request)
            .await
            .map_err(|e| failure("unifiedorder", e))?;
        Ok(Created {
            provider_ref: ex.fields.get("prepay_id").cloned().unwrap_or_default(),
            credential: ex.fields.get("code_url").cloned(),
            raw: ex.response,
        })
    }

    async fn query_trade(&self, trade: &Trade) -> Result<TradeState, Failure> {
        let pay = self.client(trade.channel);
        let answer: Result<Exchange, WxError> = pay.order_query(&trade.out_trade_no).await;
        let ex = match answer {
            Ok(ex) => ex,
            Err(WxError::Business { code, response, .. }) if code == "ORDERNOTEXIST" => {
                return Ok(TradeState::Unknown { raw: response })
            }
            Err(e) => return Err(failure("orderquery", e)),
        };
        let state = ex.fields.get("trade_state").cloned().unwrap_or_default();
        // REFUND: paid, then (partly) refunded; the payment still counts.
        if state != "SUCCESS" && state != "REFUND" {
            return Ok(TradeState::Unpaid {
                state: format!("trade_state {state}"),
                raw: ex.response,
            });
        }
        let notice = notify::paid_notice(&ex.fields).map_err(|e| Failure::new(e, &ex.response))?;
        if notice.appid != pay.appid || notice.mch_id != pay.mch_id {
            return Ok(TradeState::Foreign {
                outcome: "wrong_app",
                raw: ex.response,
            });
        }
        Ok(TradeState::Paid {
            paid: Paid {
                out_trade_no: notice.out_trade_no,
                payment_id: notice.transaction_id.clone(),
                transaction_no: notice.transaction_id,
                amount: Money::from_fen(notice.total_fee),
            },
            raw: ex.response,
        })
    }

    async fn close_trade(&self, trade: &Trade) -> Result<Closed, Failure> {
        match self
            .client(trade.channel)
            .close_order(&trade.out_trade_no)
            .await
        {
            Ok(ex) => Ok(Closed::Closed {
                outcome: "closed".into(),
                raw: ex.response,
            }),
            Err(WxError::Business { code, response, .. }) if code == "ORDERPAID" => {
                Ok(Closed::AlreadyPaid { raw: response })
            }
            Err(WxError::Business { code, response, .. })
                if code == "ORDERCLOSED" || code == "ORDERNOTEXIST" =>
            {
                Ok(Closed::Closed {
                    outcome: code.to_lowercase(),
                    raw: response,
                })
            }
            Err(e) => Err(failure("closeorder", e)),
        }
    }

    async fn submit(&self, r: &RefundOrder) -> Submitted {
        let req = RefundRequest {
            out_trade_no: r.trade.out_trade_no.clone(),
            out_refund_no: r.out_refund_no.clone(),
            total_fee: r.trade.amount.fen(),
            refund_fee: r.amount.fen(),
            refund_desc: r.reason.chars().take(80).collect(),
            notify_url: self.refund_notify_url.clone(),
        };
        match self.client(r.trade.channel).refund(&req).await {
            // Accepted without its refund_id: unreadable, asked again (the same refund).
            Ok(ex) => match ex.fields.get("refund_id").filter(|id| !id.is_empty()) {
                Some(id) => Submitted::Accepted {
                    refund_ref: id.clone(),
                    raw: ex.response,
                },
                None => Submitted::Retry(format!(
                    "refund accepted without refund_id: {}",
                    ex.response
                )),
            },
            Err(WxError::Business { code, response, .. })
                if REFUND_RETRYABLE.contains(&code.as_str()) =>
            {
                Submitted::Retry(format!("{code}: {response}"))
            }
            Err(e @ WxError::Business { .. }) => Submitted::Refused(e.to_string()),
            // No answer, or one we cannot read: the refund may have gone through, and
            // WeChat settles a repeat of the same out_refund_no as the same refund.
            Err(e) => Submitted::Retry(e.to_string()),
        }
    }

    async fn ask_refund(&self, r: &RefundOrder) -> Result<RefundState, Failure> {
        let ex = self
            .client(r.trade.channel)
            .refund_query(&r.out_refund_no)
            .await
            .map_err(|e| failure("refundquery", e))?;
        let field = |k: &str| ex.fields.get(k).cloned().unwrap_or_default();
        let (status, refund_ref) = (field("refund_status_0"), field("refund_id_0"));
        Ok(match status.as_str() {
            "SUCCESS" => RefundState::Done {
                refund_ref,
                raw: ex.response,
            },
            "REFUNDCLOSE" | "CHANGE" => RefundState::Abnormal {
                note: format!("微信退款 {status}，需人工处理"),
                status,
                raw: ex.response,
            },
            _ => RefundState::Processing { raw: ex.response },
        })
    }
}

impl Connector for WechatV2 {
    fn provider(&self) -> Provider {
        Provider::Wechat
    }

    fn sign_type(&self) -> Option<&'static str> {
        Some(self.pay.sign_type.as_str())
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
        Box::pin(self.pay.download_bill(day))
    }

    fn jsapi_launch(
        &self,
        channel: Channel,
        prepay_id: &str,
        timestamp: i64,
    ) -> Option<JsapiLaunch> {
        Some(
            self.client(Some(channel))
                .jsapi_params(prepay_id, timestamp),
        )
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
    fn a_wechat_body_is_cut_in_bytes_at_a_character_boundary() {
        let name = format!("结算商城-{}", "🍵茶".repeat(40));
        let body = super::clip_bytes(&name, 128);
        assert!(body.len() <= 128 && body.len() > 120, "{}", body.len());
        assert!(name.starts_with(&body));
        assert_eq!(super::clip_bytes("abc", 128), "abc");
    }
}

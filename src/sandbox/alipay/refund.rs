//! Alipay's refunds: `alipay.trade.refund` (synchronous; one refund per out_request_no,
//! `fund_change` Y the first time and N on repeats, cumulative `refund_fee`) with its
//! notification to the payment's notify_url, and `alipay.trade.fastpay.refund.query`.

use super::trade::amount;
use super::{beijing_text, yuan, Call, Failure, Field, Refund};
use crate::sandbox::Sandbox;
use serde_json::Value;
use std::sync::Arc;

impl Sandbox {
    /// `alipay.trade.refund`, with the refund faults: the answer (an error after the money
    /// was taken, for `refund_system_errors`) and how long to hold it back.
    pub(super) fn ali_refund(self: &Arc<Self>, call: &Call) -> (Result<Vec<Field>, Failure>, u64) {
        let answer = self.ali_take_refund(call);
        let Ok((fields, trade)) = answer else {
            return (answer.map(|(f, _)| f), 0);
        };
        let faults = self.state().faults_for(&trade);
        if self.refund_error_due(&trade, &faults) {
            let f = Failure::business("ACQ.SYSTEM_ERROR", "系统错误，请使用相同的参数再次调用");
            return (Err(f), faults.refund_hang_ms);
        }
        (Ok(fields), faults.refund_hang_ms)
    }

    /// Takes the refund (or finds the same one again); its answer and the trade's number.
    fn ali_take_refund(self: &Arc<Self>, call: &Call) -> Result<(Vec<Field>, String), Failure> {
        let t = self.ali_find(call)?;
        let fee = amount(&call.biz("refund_amount"), "refund_amount")?;
        // Without out_request_no the refund is the trade's one full refund, named by it.
        let rno = match call.biz("out_request_no") {
            r if r.is_empty() => t.out_trade_no.clone(),
            r if r.len() > 64 => return Err(Failure::parameter("out_request_no 参数无效")),
            r => r,
        };
        let now = self.now();
        let mut st = self.state();
        let same = st
            .alipay
            .refunds
            .iter()
            .find(|r| r.out_trade_no == t.out_trade_no && r.out_request_no == rno)
            .cloned();
        let (refund, new) = match same {
            Some(r) if r.amount == fee => (r, false),
            Some(_) => {
                return Err(Failure::business(
                    "ACQ.DISCORDANT_REPEAT_REQUEST",
                    "请求信息不一致",
                ))
            }
            None => {
                match t.status {
                    "TRADE_SUCCESS" => {}
                    "TRADE_FINISHED" => {
                        return Err(Failure::business("ACQ.TRADE_HAS_FINISHED", "交易已完结"))
                    }
                    _ => {
                        return Err(Failure::business(
                            "ACQ.TRADE_STATUS_ERROR",
                            "交易状态不合法",
                        ))
                    }
                }
                if t.refunded + fee > t.total {
                    return Err(Failure::business(
                        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                        "退款金额超限",
                    ));
                }
                let r = Refund {
                    out_trade_no: t.out_trade_no.clone(),
                    out_request_no: rno,
                    amount: fee,
                    at: now,
                };
                st.alipay.refunds.push(r.clone());
                (r, true)
            }
        };
        let trade = st
            .alipay
            .trades
            .get_mut(&t.out_trade_no)
            .ok_or_else(|| Failure::business("ACQ.TRADE_NOT_EXIST", "交易不存在"))?;
        if new {
            trade.refunded += fee;
            if trade.refunded == trade.total {
                trade.status = "TRADE_CLOSED";
                trade.gmt_close = Some(now);
            }
        }
        let after = trade.clone();
        let faults = st.faults_for(&t.out_trade_no);
        drop(st);
        if new {
            self.ali_notify(&after, Some((&refund.out_request_no, refund.at)), &faults);
        }
        let fields = vec![
            ("trade_no", Value::from(after.trade_no.clone())),
            ("out_trade_no", Value::from(after.out_trade_no.clone())),
            ("buyer_logon_id", Value::from("sbx***@sandbox.com")),
            ("fund_change", Value::from(if new { "Y" } else { "N" })),
            ("refund_fee", Value::from(yuan(after.refunded))),
            ("gmt_refund_pay", Value::from(beijing_text(refund.at))),
            ("buyer_user_id", Value::from(after.buyer_id.clone())),
            ("send_back_fee", Value::from(yuan(refund.amount))),
        ];
        Ok((fields, after.out_trade_no))
    }

    /// `alipay.trade.fastpay.refund.query`: REFUND_SUCCESS for a refund taken; no refund
    /// fields when there is none under that out_request_no.
    pub(super) fn ali_refund_query(&self, call: &Call) -> Result<Vec<Field>, Failure> {
        let t = self.ali_find(call)?;
        let rno = match call.biz("out_request_no") {
            r if r.is_empty() => t.out_trade_no.clone(),
            r => r,
        };
        let found = self
            .state()
            .alipay
            .refunds
            .iter()
            .find(|r| r.out_trade_no == t.out_trade_no && r.out_request_no == rno)
            .cloned();
        let mut fields = vec![
            ("trade_no", Value::from(t.trade_no.clone())),
            ("out_trade_no", Value::from(t.out_trade_no.clone())),
            ("out_request_no", Value::from(rno)),
        ];
        if let Some(r) = found {
            fields.extend([
                ("total_amount", Value::from(yuan(t.total))),
                ("refund_amount", Value::from(yuan(r.amount))),
                ("refund_status", Value::from("REFUND_SUCCESS")),
                ("gmt_refund_pay", Value::from(beijing_text(r.at))),
            ]);
        }
        Ok(fields)
    }
}

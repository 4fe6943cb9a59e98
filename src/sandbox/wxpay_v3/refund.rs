//! APIv3 refunds: taken PROCESSING (idempotent by out_refund_no, shared with v2), ended
//! shortly after with a REFUND.* notification, under the refund faults.

use super::trade::valid_notify_url;
use super::{err, ok, optional, param, required, rfc3339, str_field, Done, Signing, V3Error};
use crate::sandbox::{deliver, Faults, RefundRefusal, Sandbox, WxOrder, WxRefund};
use serde_json::{json, Value};
use std::sync::Arc;

/// A v2 refund status in APIv3 spelling.
fn refund_status_v3(status: &str) -> &'static str {
    match status {
        "SUCCESS" => "SUCCESS",
        "REFUNDCLOSE" => "CLOSED",
        "CHANGE" => "ABNORMAL",
        _ => "PROCESSING",
    }
}

impl Sandbox {
    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
    pub(super) fn v3_refund_query(&self, rno: &str) -> Result<Done, V3Error> {
        let st = self.state();
        let r = st.wx_refunds.get(rno).cloned();
        let r = r.ok_or_else(|| err(404, "RESOURCE_NOT_EXISTS", "退款单不存在"))?;
        let o = st.wx.get(&r.out_trade_no).cloned();
        drop(st);
        let o = o.ok_or_else(|| err(404, "RESOURCE_NOT_EXISTS", "订单不存在"))?;
        Ok(ok(self.refund_json(&r, &o), &r.out_trade_no))
    }

    /// The refund object of refund answers.
    fn refund_json(&self, r: &WxRefund, o: &WxOrder) -> Value {
        let status = refund_status_v3(r.status);
        let mut v = json!({
            "refund_id": r.refund_id,
            "out_refund_no": r.out_refund_no,
            "transaction_id": o.transaction_id,
            "out_trade_no": r.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": rfc3339(r.created_at),
            "status": status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": o.total_fee,
                "refund": r.refund_fee,
                "from": [],
                "payer_total": o.total_fee,
                "payer_refund": r.refund_fee,
                "settlement_refund": r.refund_fee,
                "settlement_total": o.total_fee,
                "discount_refund": 0,
                "currency": "CNY",
            },
            "promotion_detail": [],
        });
        // go parses success_time as a time: absent, never "", until SUCCESS.
        if status == "SUCCESS" {
            v["success_time"] = json!(rfc3339(r.created_at));
        }
        v
    }

    /// `POST /v3/refund/domestic/refunds`: taken (PROCESSING), ended shortly after with a
    /// REFUND.* notification; the refund faults apply after the money is taken.
    pub(super) fn v3_refund(self: &Arc<Self>, v: &Value) -> Result<Done, V3Error> {
        let rno = required(v, "out_refund_no", 64)?;
        let ok_rno = rno
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b));
        if !ok_rno {
            return Err(param("out_refund_no 须为数字、大小写字母、_-|*@"));
        }
        let _reason = optional(v, "reason", 80)?;
        let notify_url = optional(v, "notify_url", 256)?;
        if !notify_url.is_empty() && !valid_notify_url(&notify_url) {
            return Err(param("notify_url 须为 http(s) 绝对地址，不能带参数"));
        }
        let amount = v.get("amount").cloned().unwrap_or_default();
        let int = |k: &str| amount.get(k).and_then(Value::as_i64);
        let (Some(fee), Some(total)) = (int("refund"), int("total")) else {
            return Err(param(
                "amount.refund 和 amount.total 必须为整数（单位：分）",
            ));
        };
        if amount.get("currency") != Some(&json!("CNY")) {
            return Err(param("amount.currency 必须为 CNY"));
        }
        let now = self.now();
        let mut state = self.state();
        let order = match (str_field(v, "transaction_id"), str_field(v, "out_trade_no")) {
            (Some(t), _) => state
                .wx
                .values()
                .find(|o| o.transaction_id.as_deref() == Some(t))
                .cloned(),
            (None, Some(no)) => state.wx.get(no).cloned(),
            (None, None) => return Err(param("transaction_id 和 out_trade_no 必须填一个")),
        };
        let order = order
            .filter(|o| matches!(o.trade_state, "SUCCESS" | "REFUND"))
            .ok_or_else(|| err(404, "RESOURCE_NOT_EXISTS", "订单不存在或未支付"))?;
        if total != order.total_fee {
            return Err(param("amount.total 与订单金额不一致"));
        }
        let no = order.out_trade_no.clone();
        let (refund, new) = match state.take_wx_refund(&no, &rno, fee, total, now) {
            Ok(taken) => taken,
            Err(RefundRefusal::OtherRefund) => {
                return Err(param("退款单号已用于其他退款，参数不一致"))
            }
            Err(RefundRefusal::NotEnough) => {
                return Err(err(403, "NOT_ENOUGH", "退款金额超过订单可退金额"))
            }
        };
        let faults = state.faults_for(&no);
        drop(state);
        if new {
            let url = if notify_url.is_empty() {
                order.notify_url.clone()
            } else {
                notify_url
            };
            self.finish_v3_refund(refund.clone(), order.clone(), url, faults.clone());
        }
        if self.refund_error_due(&no, &faults) {
            return Err(err(
                500,
                "SYSTEM_ERROR",
                "系统错误，请使用相同参数稍后重新调用",
            ));
        }
        Ok(Done {
            hang_ms: faults.refund_hang_ms,
            ..ok(self.refund_json(&refund, &order), &no)
        })
    }

    fn finish_v3_refund(
        self: &Arc<Self>,
        r: WxRefund,
        order: WxOrder,
        url: String,
        faults: Faults,
    ) {
        let sb = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let status = faults.refund_end();
            sb.end_refund(&r, status);
            let v3_status = refund_status_v3(status);
            let (event, summary) = match v3_status {
                "SUCCESS" => ("REFUND.SUCCESS", "退款成功"),
                "CLOSED" => ("REFUND.CLOSED", "退款关闭"),
                _ => ("REFUND.ABNORMAL", "退款异常"),
            };
            let mut plaintext = json!({
                "mchid": sb.wechat_mch_id,
                "out_trade_no": r.out_trade_no,
                "transaction_id": order.transaction_id,
                "out_refund_no": r.out_refund_no,
                "refund_id": r.refund_id,
                "refund_status": v3_status,
                "user_received_account": "支付用户零钱",
                "amount": {
                    "total": order.total_fee,
                    "refund": r.refund_fee + i64::from(faults.wrong_amount),
                    "payer_total": order.total_fee,
                    "payer_refund": r.refund_fee + i64::from(faults.wrong_amount),
                },
            });
            if v3_status == "SUCCESS" {
                plaintext["success_time"] = json!(rfc3339(sb.now()));
            }
            let msg = deliver::Message {
                provider: "wechat_v3",
                out_trade_no: r.out_trade_no.clone(),
                url,
                content_type: "application/json",
                headers: Vec::new(),
                v3_signing: Some(Signing::notification(&faults)),
                body: sb.v3_event(event, summary, "refund", &plaintext, faults.v3_bad_tag),
            };
            deliver::send(sb, &faults, msg);
        });
    }
}

//! The payment notification WeChat posts to `notify_url`, and the replies it understands.

use super::sign::Params;

/// The one reply that stops WeChat from notifying again.
pub const SUCCESS_REPLY: &str =
    "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>";

/// A FAIL reply with a reason (WeChat will retry).
pub fn fail_reply(reason: &str) -> String {
    format!(
        "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[{}]]></return_msg></xml>",
        reason.replace("]]>", "")
    )
}

/// The fields of a successful payment that the shop checks and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidNotice {
    pub appid: String,
    pub mch_id: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub total_fee: i64,
    pub fee_type: String,
    pub trade_type: String,
}

/// Reads the payment fields of a notification (or an orderquery answer with
/// `trade_state=SUCCESS`). The signature must have been verified before.
pub fn paid_notice(p: &Params) -> Result<PaidNotice, String> {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    if get("return_code") != "SUCCESS" {
        return Err(format!("return_code {}", get("return_code")));
    }
    if get("result_code") != "SUCCESS" {
        return Err(format!(
            "result_code {} {}",
            get("result_code"),
            get("err_code")
        ));
    }
    let total_fee = get("total_fee")
        .parse()
        .map_err(|_| "total_fee is not an integer".to_string())?;
    let notice = PaidNotice {
        appid: get("appid"),
        mch_id: get("mch_id"),
        out_trade_no: get("out_trade_no"),
        transaction_id: get("transaction_id"),
        total_fee,
        fee_type: p.get("fee_type").cloned().unwrap_or_else(|| "CNY".into()),
        trade_type: get("trade_type"),
    };
    if notice.out_trade_no.is_empty() || notice.transaction_id.is_empty() {
        return Err("out_trade_no or transaction_id missing".into());
    }
    Ok(notice)
}

//! Alipay's trades: `alipay.trade.precreate` (a QR whose trade exists once scanned),
//! `alipay.trade.page.pay` / `alipay.trade.wap.pay` (a form the browser brings to the
//! cashier), `alipay.trade.query`, `alipay.trade.close`; paying on the phone, the cashier or
//! the control API; the `trade_status_sync` notification and the signed `return_url`.

use super::{beijing, beijing_text, yuan, Call, Failure, Field, Params, Trade};
use crate::sandbox::{deliver, random_digits, random_id, Faults, Sandbox};
use serde_json::{json, Value};
use std::sync::Arc;

/// The largest amount Alipay takes: 100,000,000 yuan, in fen.
const MAX_TOTAL: i64 = 100_000_000 * 100;
/// An unpaid trade's default life (15 days) and the QR's (2 hours, also its maximum).
const DEFAULT_TIMEOUT: i64 = 15 * 86_400;
const QR_LIFE: i64 = 2 * 3600;

/// A yuan amount as Alipay takes it: digits, at most two decimals, 0.01 to 100000000.
pub fn amount(text: &str, field: &str) -> Result<i64, Failure> {
    let bad = || Failure::parameter(format!("{field} 参数格式错误"));
    let (int, frac) = text.split_once('.').unwrap_or((text, "00"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) || frac.len() > 2 || int.len() > 12 {
        return Err(bad());
    }
    let fen = crate::domain::Money::parse_yuan(text)
        .map_err(|_| bad())?
        .fen();
    if fen > MAX_TOTAL {
        return Err(Failure::business(
            "ACQ.TOTAL_FEE_EXCEED",
            "订单金额超过限额",
        ));
    }
    if fen < 1 {
        return Err(Failure::parameter(format!(
            "{field} 必须在 0.01 到 100000000 之间"
        )));
    }
    Ok(fen)
}

/// `Nm` / `Nh` / `Nd` (integers) or `1c` (until the end of the day): seconds from `now`,
/// within 1 minute and 15 days.
fn relative(text: &str, now: i64) -> Option<i64> {
    let secs = if text == "1c" {
        let today = chrono::DateTime::from_timestamp(now, 0)?
            .with_timezone(&crate::domain::shanghai())
            .date_naive();
        let midnight = today.succ_opt()?.and_hms_opt(0, 0, 0)?;
        beijing(
            &midnight.format("%Y-%m-%d %H:%M:%S").to_string(),
            "%Y-%m-%d %H:%M:%S",
        )? - now
    } else {
        let (n, unit) = text.split_at(text.len().checked_sub(1)?);
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i64 = n.parse().ok()?;
        n.checked_mul(match unit {
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        })?
    };
    (60..=15 * 86_400).contains(&secs).then_some(secs)
}

/// `out_trade_no`: up to 64 letters, digits and underscores.
pub fn valid_out_trade_no(no: &str) -> bool {
    (1..=64).contains(&no.len()) && no.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The product codes each creating method takes. wap.pay: the official `QUICK_WAP_WAY`, and
/// `QUICK_WAP_PAY`, which python-alipay-sdk sends and the live gateway takes.
fn product_codes(method: &str) -> &'static [&'static str] {
    match method {
        "alipay.trade.precreate" => &["", "FACE_TO_FACE_PAYMENT"],
        "alipay.trade.page.pay" => &["FAST_INSTANT_TRADE_PAY"],
        _ => &["QUICK_WAP_WAY", "QUICK_WAP_PAY"],
    }
}

impl Sandbox {
    /// A new trade from a creating call, its fields checked as the live gateway does.
    fn ali_new_trade(&self, call: &Call, now: i64) -> Result<Trade, Failure> {
        let no = call.biz("out_trade_no");
        if !valid_out_trade_no(&no) {
            return Err(Failure::parameter(
                "out_trade_no 参数无效（最长 64 位字母、数字、下划线）",
            ));
        }
        let total = amount(&call.biz("total_amount"), "total_amount")?;
        let subject = call.biz("subject");
        if subject.is_empty() || subject.chars().count() > 256 || subject.contains(['/', '=', '&'])
        {
            return Err(Failure::parameter(
                "subject 参数无效（必填，最长 256 字，不能含 / = &）",
            ));
        }
        if !product_codes(&call.method).contains(&call.biz("product_code").as_str()) {
            return Err(Failure::parameter("product_code 参数无效"));
        }
        let seller = call.biz("seller_id");
        if !seller.is_empty() && seller != self.alipay.seller_id {
            return Err(Failure::parameter("seller_id 与应用签约的商户不符"));
        }
        let notify_url = call.param("notify_url").to_string();
        let url_ok = |u: &str| {
            u.is_empty()
                || (u.len() <= 256 && (u.starts_with("http://") || u.starts_with("https://")))
        };
        if !url_ok(&notify_url) || !url_ok(call.param("return_url")) {
            return Err(Failure::invalid(
                "isv.invalid-parameter",
                "notify_url/return_url 格式错误",
            ));
        }
        let mut expire_at = now + DEFAULT_TIMEOUT;
        let timeout = call.biz("timeout_express");
        if !timeout.is_empty() {
            let secs = relative(&timeout, now)
                .ok_or_else(|| Failure::parameter("timeout_express 参数无效（1m～15d）"))?;
            expire_at = now + secs;
        }
        let time_expire = call.biz("time_expire");
        if !time_expire.is_empty() {
            // time_expire wins over timeout_express; seconds are optional in older docs.
            expire_at = beijing(&time_expire, "%Y-%m-%d %H:%M:%S")
                .or_else(|| beijing(&time_expire, "%Y-%m-%d %H:%M"))
                .ok_or_else(|| Failure::parameter("time_expire 格式错误（yyyy-MM-dd HH:mm:ss）"))?;
        }
        let qr_expire_at = match call.method.as_str() {
            "alipay.trade.precreate" => {
                let qr = call.biz("qr_code_timeout_express");
                let secs = match qr.as_str() {
                    "" => QR_LIFE,
                    t => relative(t, now).filter(|s| *s <= QR_LIFE).ok_or_else(|| {
                        Failure::parameter("qr_code_timeout_express 参数无效（1m～2h）")
                    })?,
                };
                Some(now + secs)
            }
            _ => None,
        };
        let date = chrono::DateTime::from_timestamp(now, 0)
            .unwrap_or_default()
            .with_timezone(&crate::domain::shanghai())
            .format("%Y%m%d");
        Ok(Trade {
            out_trade_no: no,
            trade_no: format!("{date}22001{}", random_digits(15)),
            method: call.method.clone(),
            total,
            subject,
            body: call.biz("body"),
            notify_url,
            return_url: call.param("return_url").to_string(),
            passback_params: call.biz("passback_params"),
            code: format!("bax0{}", random_id(20).to_lowercase()),
            qr_code: None,
            created: false,
            status: "WAIT_BUYER_PAY",
            requested_at: now,
            expire_at,
            qr_expire_at,
            gmt_create: None,
            gmt_payment: None,
            gmt_close: None,
            buyer_id: String::new(),
            refunded: 0,
        })
    }

    /// Stores a new trade, or answers a repeat of one: the same again reuses it, a paid or
    /// closed one or different parameters are refused. The stored trade.
    fn ali_place(&self, new: Trade, now: i64) -> Result<Trade, Failure> {
        let mut st = self.state();
        let trades = &mut st.alipay.trades;
        let Some(old) = trades.get_mut(&new.out_trade_no) else {
            trades.insert(new.out_trade_no.clone(), new.clone());
            return Ok(new);
        };
        old.expire(now);
        match old.status {
            "TRADE_SUCCESS" | "TRADE_FINISHED" => {
                return Err(Failure::business("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"))
            }
            "TRADE_CLOSED" => return Err(Failure::business("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")),
            _ => {}
        }
        if old.total != new.total || old.subject != new.subject {
            return Err(Failure::business(
                "ACQ.CONTEXT_INCONSISTENT",
                "交易信息被篡改",
            ));
        }
        // The latest call's URLs and method (a QR may follow a wap.pay of the same trade).
        old.method = new.method;
        old.notify_url = new.notify_url;
        old.return_url = new.return_url;
        if new.qr_expire_at.is_some() {
            old.qr_expire_at = new.qr_expire_at;
        }
        Ok(old.clone())
    }

    /// `alipay.trade.precreate`: a QR pointing at the sandbox's phone page.
    pub(super) fn ali_precreate(&self, call: &Call) -> Result<Vec<Field>, Failure> {
        let now = self.now();
        let t = self.ali_place(self.ali_new_trade(call, now)?, now)?;
        let qr = format!("{}/alipay/qr/{}", self.base_url, t.code);
        if let Some(stored) = self.state().alipay.trades.get_mut(&t.out_trade_no) {
            stored.qr_code = Some(qr.clone());
        }
        Ok(vec![
            ("out_trade_no", Value::from(t.out_trade_no)),
            ("qr_code", Value::from(qr)),
        ])
    }

    /// `alipay.trade.page.pay` / `alipay.trade.wap.pay`: where the browser goes on to (the
    /// cashier). The trade exists once the shopper reaches it.
    pub(super) fn ali_page_pay(&self, call: &Call) -> Result<String, Failure> {
        let now = self.now();
        let t = self.ali_place(self.ali_new_trade(call, now)?, now)?;
        Ok(format!("{}/alipay/cashier/{}", self.base_url, t.code))
    }

    /// The trade a query, close or refund names (`trade_no` wins), once it exists.
    pub(super) fn ali_find(&self, call: &Call) -> Result<Trade, Failure> {
        let (no, tno) = (call.biz("out_trade_no"), call.biz("trade_no"));
        if no.is_empty() && tno.is_empty() {
            return Err(Failure::parameter("out_trade_no 和 trade_no 不能同时为空"));
        }
        let now = self.now();
        let mut st = self.state();
        let found = st.alipay.trades.values_mut().find(|t| {
            t.created
                && if tno.is_empty() {
                    t.out_trade_no == no
                } else {
                    t.trade_no == tno
                }
        });
        let Some(t) = found else {
            return Err(Failure::business("ACQ.TRADE_NOT_EXIST", "交易不存在"));
        };
        t.expire(now);
        Ok(t.clone())
    }

    /// `alipay.trade.query`.
    pub(super) fn ali_query(&self, call: &Call) -> Result<Vec<Field>, Failure> {
        let t = self.ali_find(call)?;
        let mut fields = vec![
            ("trade_no", Value::from(t.trade_no.clone())),
            ("out_trade_no", Value::from(t.out_trade_no.clone())),
            ("buyer_logon_id", Value::from(BUYER_LOGON_ID)),
            ("trade_status", Value::from(t.status)),
            ("total_amount", Value::from(yuan(t.total))),
        ];
        let paid = t.gmt_payment.is_some();
        let (got, at) = match t.gmt_payment {
            Some(at) => (yuan(t.total), beijing_text(at)),
            None => ("0.00".into(), String::new()),
        };
        fields.extend([
            ("receipt_amount", Value::from(got.clone())),
            ("buyer_pay_amount", Value::from(got.clone())),
            ("point_amount", Value::from("0.00")),
            ("invoice_amount", Value::from(got)),
        ]);
        if paid {
            fields.push(("send_pay_date", Value::from(at)));
            fields.push(("fund_bill_list", fund_bills(t.total)));
        }
        fields.push(("buyer_user_id", Value::from(t.buyer_id)));
        Ok(fields)
    }

    /// `alipay.trade.close`: only a WAIT_BUYER_PAY trade. A wap.pay trade's close is
    /// notified (TRADE_CLOSED without refund fields); QR and PC trades notify payments only.
    pub(super) fn ali_close(self: &Arc<Self>, call: &Call) -> Result<Vec<Field>, Failure> {
        let t = self.ali_find(call)?;
        if t.status != "WAIT_BUYER_PAY" {
            return Err(Failure::business(
                "ACQ.TRADE_STATUS_ERROR",
                "交易状态不合法",
            ));
        }
        let now = self.now();
        let mut st = self.state();
        let faults = st.faults_for(&t.out_trade_no);
        let closed = st.alipay.trades.get_mut(&t.out_trade_no).map(|stored| {
            stored.status = "TRADE_CLOSED";
            stored.gmt_close = Some(now);
            stored.clone()
        });
        drop(st);
        if let Some(closed) = closed.filter(|c| c.method == "alipay.trade.wap.pay") {
            self.ali_notify(&closed, None, &faults);
        }
        Ok(vec![
            ("trade_no", Value::from(t.trade_no)),
            ("out_trade_no", Value::from(t.out_trade_no)),
        ])
    }

    /// The buyer scans the QR or reaches the cashier (`code` from its URL): the trade
    /// exists from now on.
    pub fn ali_open(&self, code: &str) -> Result<Trade, String> {
        let now = self.now();
        let mut st = self.state();
        let t = st
            .alipay
            .trades
            .values_mut()
            .find(|t| t.code == code)
            .ok_or("交易不存在")?;
        t.expire(now);
        if !t.created && t.qr_expire_at.is_some_and(|at| now > at) {
            return Err("二维码已过期，请刷新后重新扫码".into());
        }
        t.created = true;
        t.gmt_create.get_or_insert(now);
        if t.buyer_id.is_empty() {
            t.buyer_id = format!("2088{}", random_digits(12));
        }
        Ok(t.clone())
    }

    /// The trade behind a QR or cashier code.
    pub fn ali_by_code(&self, code: &str) -> Option<Trade> {
        let st = self.state();
        st.alipay.trades.values().find(|t| t.code == code).cloned()
    }

    /// The buyer pays (phone, cashier or `/control/pay`): WAIT_BUYER_PAY → TRADE_SUCCESS,
    /// then the notification goes to notify_url.
    pub fn ali_pay(self: &Arc<Self>, out_trade_no: &str) -> Result<Trade, String> {
        let code = self
            .state()
            .alipay
            .trades
            .get(out_trade_no)
            .map(|t| t.code.clone())
            .ok_or("交易不存在")?;
        self.ali_open(&code)?;
        let now = self.now();
        let mut st = self.state();
        let t = st.alipay.trades.get_mut(out_trade_no).ok_or("交易不存在")?;
        match t.status {
            "WAIT_BUYER_PAY" => {}
            "TRADE_SUCCESS" | "TRADE_FINISHED" => return Err("该交易已支付".into()),
            _ => return Err("交易已关闭，请重新下单".into()),
        }
        t.status = "TRADE_SUCCESS";
        t.gmt_payment = Some(now);
        let paid = t.clone();
        let faults = st.faults_for(out_trade_no);
        drop(st);
        self.ali_notify(&paid, None, &faults);
        Ok(paid)
    }

    /// Sends a `trade_status_sync` notification of `t` (after a refund: `refund` is its
    /// out_request_no and the refund fields are added), as the faults say.
    pub(super) fn ali_notify(
        self: &Arc<Self>,
        t: &Trade,
        refund: Option<(&str, i64)>,
        faults: &Faults,
    ) {
        if t.notify_url.is_empty() {
            return;
        }
        let now = self.now();
        let total = yuan(t.total + i64::from(faults.wrong_amount));
        let p = &self.alipay;
        let mut f: Params = [
            ("notify_time", beijing_text(now)),
            ("notify_type", "trade_status_sync".into()),
            (
                "notify_id",
                format!(
                    "{}0022{}",
                    t.trade_no.get(..8).unwrap_or_default(),
                    random_id(24).to_lowercase()
                ),
            ),
            ("app_id", p.app_id.clone()),
            ("auth_app_id", p.app_id.clone()),
            ("charset", "utf-8".into()),
            ("version", "1.0".into()),
            ("sign_type", "RSA2".into()),
            ("trade_no", t.trade_no.clone()),
            ("out_trade_no", t.out_trade_no.clone()),
            ("buyer_id", t.buyer_id.clone()),
            ("buyer_logon_id", BUYER_LOGON_ID.into()),
            ("seller_id", p.seller_id.clone()),
            ("trade_status", t.status.into()),
            ("total_amount", total.clone()),
            ("receipt_amount", total.clone()),
            ("invoice_amount", total.clone()),
            ("buyer_pay_amount", total),
            ("point_amount", "0.00".into()),
            ("subject", t.subject.clone()),
            ("body", t.body.clone()),
            ("passback_params", t.passback_params.clone()),
            (
                "gmt_create",
                t.gmt_create.map(beijing_text).unwrap_or_default(),
            ),
            (
                "gmt_payment",
                t.gmt_payment.map(beijing_text).unwrap_or_default(),
            ),
            (
                "gmt_close",
                t.gmt_close.map(beijing_text).unwrap_or_default(),
            ),
            ("fund_bill_list", fund_bills(t.total).to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .filter(|(_, v)| !v.is_empty())
        .collect();
        if let Some((out_request_no, at)) = refund {
            f.insert("refund_fee".into(), yuan(t.refunded));
            f.insert("gmt_refund".into(), beijing_text(at));
            f.insert("out_biz_no".into(), out_request_no.to_string());
        }
        self.ali_sign_params(&mut f, faults.bad_signature);
        let msg = deliver::Message {
            provider: "alipay",
            out_trade_no: t.out_trade_no.clone(),
            url: t.notify_url.clone(),
            content_type: "application/x-www-form-urlencoded; charset=utf-8",
            headers: Vec::new(),
            v3_signing: None,
            body: serde_urlencoded::to_string(&f).unwrap_or_default(),
        };
        deliver::send(self.clone(), faults, msg);
    }

    /// Where the cashier sends the browser after paying: `return_url` with the signed
    /// parameters of the payment (not proof of it), or None without a return_url.
    pub fn ali_return_url(&self, t: &Trade) -> Option<String> {
        if t.return_url.is_empty() {
            return None;
        }
        let p = &self.alipay;
        let mut f: Params = [
            ("app_id", p.app_id.clone()),
            ("auth_app_id", p.app_id.clone()),
            ("charset", "utf-8".into()),
            ("method", format!("{}.return", t.method)),
            ("out_trade_no", t.out_trade_no.clone()),
            ("seller_id", p.seller_id.clone()),
            ("sign_type", "RSA2".into()),
            ("timestamp", beijing_text(self.now())),
            ("total_amount", yuan(t.total)),
            ("trade_no", t.trade_no.clone()),
            ("version", "1.0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.ali_sign_params(&mut f, false);
        let sep = if t.return_url.contains('?') { '&' } else { '?' };
        let query = serde_urlencoded::to_string(&f).unwrap_or_default();
        Some(format!("{}{sep}{query}", t.return_url))
    }
}

/// The sandbox buyer's masked account, as Alipay shows it to merchants.
const BUYER_LOGON_ID: &str = "sbx***@sandbox.com";

/// How the buyer paid: all from the Alipay balance.
fn fund_bills(total: i64) -> Value {
    json!([{ "amount": yuan(total), "fundChannel": "ALIPAYACCOUNT" }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_yuan_strings_with_two_decimals_within_alipays_range() {
        assert_eq!(amount("0.01", "total_amount"), Ok(1));
        assert_eq!(amount("88.8", "total_amount"), Ok(8880));
        assert_eq!(amount("100000000", "total_amount"), Ok(MAX_TOTAL));
        for bad in [
            "", "0", "0.00", "-1", "1.001", "1.", ".5", " 1", "1e2", "+1",
        ] {
            assert!(amount(bad, "total_amount").is_err(), "{bad:?}");
        }
        assert_eq!(
            amount("100000000.01", "total_amount").map_err(|f| f.sub_code),
            Err("ACQ.TOTAL_FEE_EXCEED")
        );
    }

    #[test]
    fn relative_timeouts_are_minutes_hours_days_or_the_rest_of_the_day() {
        assert_eq!(relative("90m", 0), Some(5400));
        assert_eq!(relative("2h", 0), Some(7200));
        assert_eq!(relative("15d", 0), Some(15 * 86_400));
        for bad in ["16d", "0m", "1.5h", "m", "", "10s", "1c1"] {
            assert_eq!(relative(bad, 0), None, "{bad:?}");
        }
        // 1970-01-01 00:00 UTC is 08:00 in Beijing: 16 hours to its midnight.
        assert_eq!(relative("1c", 0), Some(16 * 3600));
        assert!(valid_out_trade_no("A_1"));
        assert!(!valid_out_trade_no("A-1"));
        assert!(!valid_out_trade_no(&"a".repeat(65)));
    }
}

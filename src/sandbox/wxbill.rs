//! WeChat Pay v2's `pay/downloadbill` as the platform answers it: the merchant's trades paid
//! and refunds taken on a Beijing day, as the `ALL` CSV (header, backquoted rows, summary
//! header and row), written here from the fact sheet and not with the shop's parser. A day
//! not over yet (sandbox clock) answers `Bill Creating`; a day without trades `No Bill Exist`.
//! The bill faults (`bill_omit`, `bill_wrong_amount`, `bill_duplicate_refund`,
//! `bill_malformed`) change the file as a platform's books could differ from the shop's.

use super::{beijing_time as beijing, yuan, Sandbox, WxOrder, WxRefund};
use crate::payment::wechat::xml::to_xml;
use chrono::NaiveDate;

const HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const SUMMARY: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// The 0.6 % fee in 1/100000 yuan (fen × 600 / 100000 yuan = fen × 6).
fn fee_e5(fen: i64) -> i64 {
    fen * 6
}

fn e5(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{}.{:05}", v.abs() / 100_000, v.abs() % 100_000)
}

/// A bill row: the values in header order, each with WeChat's backquote.
fn row(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a day has no bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBill {
    /// The day is not over (sandbox clock): the bill is still being made.
    Creating,
    /// No trade that day.
    Empty,
}

/// v2's refusal: FAIL and its message, as XML.
fn v2_refusal(msg: &str) -> String {
    to_xml(&crate::payment::wechat::client::params([
        ("return_code", "FAIL".to_string()),
        ("return_msg", msg.to_string()),
    ]))
}

/// What the bill needs of a paid order.
struct Paid<'a> {
    order: &'a WxOrder,
    at: chrono::NaiveDateTime,
}

impl Sandbox {
    /// `POST /pay/downloadbill`: the signed request's `ALL` bill, or WeChat's XML refusal.
    pub fn wx_downloadbill(&self, body: &[u8]) -> Result<String, String> {
        let (f, _) = self.authenticate(body)?;
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
        if !matches!(get("bill_type"), "" | "ALL") {
            return Err(v2_refusal("the sandbox makes ALL bills only"));
        }
        let Ok(day) = NaiveDate::parse_from_str(get("bill_date"), "%Y%m%d") else {
            return Err(v2_refusal("invalid bill_date"));
        };
        self.wx_bill(day).map_err(|r| {
            v2_refusal(match r {
                NoBill::Creating => "Bill Creating",
                NoBill::Empty => "No Bill Exist",
            })
        })
    }

    /// The merchant's `ALL` bill of `day` (v2 and APIv3 give the same file), or why none.
    pub fn wx_bill(&self, day: NaiveDate) -> Result<String, NoBill> {
        if day >= beijing(self.now()).date() {
            return Err(NoBill::Creating);
        }
        let state = self.state();
        let paid_at = |o: &WxOrder| {
            let t = o.time_end.as_deref()?;
            chrono::NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S").ok()
        };
        let mut paid: Vec<Paid<'_>> = state
            .wx
            .values()
            .filter(|o| matches!(o.trade_state, "SUCCESS" | "REFUND"))
            .filter_map(|o| {
                Some(Paid {
                    order: o,
                    at: paid_at(o)?,
                })
            })
            .filter(|p| p.at.date() == day)
            .collect();
        paid.sort_by_key(|p| p.at);
        let mut refunds: Vec<&WxRefund> = state
            .wx_refunds
            .values()
            .filter(|r| r.status == "SUCCESS" && beijing(r.created_at).date() == day)
            .collect();
        refunds.sort_by_key(|r| r.created_at);
        let mut lines = vec![HEADER.to_string()];
        let (mut count, mut total, mut refunded, mut fees) = (0, 0, 0, 0);
        for p in &paid {
            let f = state.faults_for(&p.order.out_trade_no);
            if f.bill_omit {
                continue;
            }
            let amount = p.order.total_fee + i64::from(f.bill_wrong_amount);
            let mut values = self.bill_row(p.order, p.at, None, amount);
            if f.bill_malformed {
                values[24] = "1x8.00".into();
            }
            lines.push(row(&values));
            (count, total, fees) = (count + 1, total + amount, fees + fee_e5(amount));
        }
        for r in refunds {
            let f = state.faults_for(&r.out_trade_no);
            let Some(o) = state.wx.get(&r.out_trade_no) else {
                continue;
            };
            let copies = if f.bill_duplicate_refund { 2 } else { 1 };
            for _ in 0..copies {
                lines.push(row(&self.bill_row(
                    o,
                    beijing(r.created_at),
                    Some(r),
                    r.refund_fee,
                )));
                (count, refunded, fees) = (
                    count + 1,
                    refunded + r.refund_fee,
                    fees - fee_e5(r.refund_fee),
                );
            }
        }
        if count == 0 {
            return Err(NoBill::Empty);
        }
        lines.push(SUMMARY.to_string());
        lines.push(row(&[
            count.to_string(),
            yuan(total),
            yuan(refunded),
            "0.00".into(),
            e5(fees),
            yuan(total),
            yuan(refunded),
        ]));
        Ok(lines.join("\r\n") + "\r\n")
    }

    /// A trade's row: its payment (`refund` None, `amount` as billed) or one of its refunds.
    fn bill_row(
        &self,
        o: &WxOrder,
        at: chrono::NaiveDateTime,
        refund: Option<&WxRefund>,
        amount: i64,
    ) -> Vec<String> {
        let s = |v: &str| v.to_string();
        let zero = || s("0.00");
        let (state, settled, refund_cells, fee, ordered, asked) = match refund {
            None => (
                "SUCCESS",
                yuan(amount),
                [s("0"), s("0"), zero(), zero(), s(""), s("")],
                fee_e5(amount),
                yuan(amount),
                zero(),
            ),
            Some(r) => (
                "REFUND",
                zero(),
                [
                    r.refund_id.clone(),
                    r.out_refund_no.clone(),
                    yuan(amount),
                    zero(),
                    s("ORIGINAL"),
                    s("SUCCESS"),
                ],
                -fee_e5(amount),
                zero(),
                yuan(amount),
            ),
        };
        let mut row = vec![
            at.format("%Y-%m-%d %H:%M:%S").to_string(),
            o.appid.clone(),
            self.wechat_mch_id.clone(),
            s("0"),
            s(""),
            o.transaction_id.clone().unwrap_or_default(),
            o.out_trade_no.clone(),
            o.openid.clone(),
            o.trade_type.clone(),
            s(state),
            s("CMB_CREDIT"),
            s("CNY"),
            settled,
            zero(),
        ];
        row.extend(refund_cells);
        row.extend([
            o.body.clone(),
            o.attach.clone(),
            e5(fee),
            s("0.60%"),
            ordered,
            asked,
            s(""),
        ]);
        row
    }
}

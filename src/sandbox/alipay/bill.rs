//! `alipay.data.dataservice.bill.downloadurl.query` as Alipay answers it: for a finished
//! Beijing day with trades, a `bill_download_url` valid 30 seconds; behind it a zip with the
//! detail CSV (`…_业务明细.csv`) and its summary, in GBK, written here from the fact sheet:
//! `#` comment lines, the 25-column header, a row per trade (交易) or refund (退款, negative
//! amounts), each id cell followed by a tab. The bill faults change it as for WeChat. (Zip
//! entry names are written in UTF-8: the zip writer has no way to write GBK names.)

use super::{beijing_text, yuan, Call, Failure, Field, Sandbox};
use serde_json::Value;
use std::io::Write;

const HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

/// How long a download URL works (Alipay: 30 s).
const URL_LIFE: i64 = 30;

fn day_of(unix: i64) -> chrono::NaiveDate {
    super::super::beijing_time(unix).date()
}

/// The 0.6 % service fee of `fen`, as Alipay writes it (negative: the merchant pays it).
fn fee(fen: i64) -> String {
    let e5 = fen * 6;
    format!("-{}.{:02}", e5 / 100_000, (e5 % 100_000) / 1_000)
}

#[allow(clippy::too_many_arguments)]
fn row(
    trade_no: &str,
    out_trade_no: &str,
    kind: &str,
    subject: &str,
    at: i64,
    amount: String,
    refund_no: &str,
    fee: String,
) -> String {
    let t = beijing_text(at);
    [
        format!("{trade_no}\t"),
        format!("{out_trade_no}\t"),
        kind.to_string(),
        format!("{subject}\t"),
        t.clone(),
        t,
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        "buy***@example.com".into(),
        amount.clone(),
        amount,
        "0.00".into(),
        "0.00".into(),
        "0.00".into(),
        "0.00".into(),
        "0.00".into(),
        String::new(),
        "0.00".into(),
        "0.00".into(),
        if refund_no.is_empty() {
            String::new()
        } else {
            format!("{refund_no}\t")
        },
        fee,
        "0.00".into(),
        String::new(),
    ]
    .join(",")
}

impl Sandbox {
    /// `alipay.data.dataservice.bill.downloadurl.query`.
    pub(super) fn ali_bill_url(&self, call: &Call) -> Result<Vec<Field>, Failure> {
        match call.biz("bill_type").as_str() {
            "trade" => {}
            "signcustomer" => return Err(Failure::parameter("沙箱只生成 trade 账单")),
            _ => return Err(Failure::parameter("bill_type 错误")),
        }
        let date = call.biz("bill_date");
        let day = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
            .map_err(|_| Failure::parameter("bill_date 格式错误"))?;
        let now = self.now();
        let none = || Failure::business("isp.bill_not_exist", "账单不存在");
        if day >= day_of(now) {
            return Err(none());
        }
        let csv = self.ali_bill_csv(day).ok_or_else(none)?;
        let zip = zip_of(&self.alipay.seller_id, day, &csv).map_err(|_| none())?;
        let token = super::super::random_id(32);
        self.state().ali_bills.insert(token.clone(), (zip, now));
        let url = format!("{}/alipay/bill/{token}", self.base_url);
        Ok(vec![("bill_download_url", Value::from(url))])
    }

    /// The detail CSV of `day`, or None without trades.
    fn ali_bill_csv(&self, day: chrono::NaiveDate) -> Option<String> {
        let now = self.now(); // before the state's lock: the clock reads it too
        let st = self.state();
        let mut trades: Vec<_> = st
            .alipay
            .trades
            .values()
            .filter(|t| t.gmt_payment.is_some_and(|at| day_of(at) == day))
            .collect();
        trades.sort_by_key(|t| t.gmt_payment);
        let mut refunds: Vec<_> = st
            .alipay
            .refunds
            .iter()
            .filter(|r| day_of(r.at) == day)
            .collect();
        refunds.sort_by_key(|r| r.at);
        if trades.is_empty() && refunds.is_empty() {
            return None;
        }
        let mut lines = vec![
            "#支付宝业务明细查询".to_string(),
            format!("#账号：[{}0156]", self.alipay.seller_id),
            format!("#起始日期：[{day} 00:00:00]   终止日期：[{} 00:00:00]", day + chrono::Duration::days(1)),
            "#-----------------------------------------业务明细列表----------------------------------------".into(),
            HEADER.into(),
        ];
        let (mut paid, mut total) = (0, 0);
        for t in trades {
            let f = st.faults_for(&t.out_trade_no);
            if f.bill_omit {
                continue;
            }
            let fen = t.total + i64::from(f.bill_wrong_amount);
            let amount = if f.bill_malformed {
                "1x8.00".into()
            } else {
                yuan(fen)
            };
            let at = t.gmt_payment.unwrap_or_default();
            lines.push(row(
                &t.trade_no,
                &t.out_trade_no,
                "交易",
                &t.subject,
                at,
                amount,
                "",
                fee(fen),
            ));
            (paid, total) = (paid + 1, total + fen);
        }
        let (mut back, mut back_total) = (0, 0);
        for r in refunds {
            let Some(t) = st.alipay.trades.get(&r.out_trade_no) else {
                continue;
            };
            let copies = if st.faults_for(&r.out_trade_no).bill_duplicate_refund {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let refund_fee = fee(r.amount).trim_start_matches('-').to_string();
                let amount = format!("-{}", yuan(r.amount));
                lines.push(row(
                    &t.trade_no,
                    &t.out_trade_no,
                    "退款",
                    &t.subject,
                    r.at,
                    amount,
                    &r.out_request_no,
                    refund_fee,
                ));
                (back, back_total) = (back + 1, back_total + r.amount);
            }
        }
        lines.push("#-----------------------------------------业务明细列表结束------------------------------------".into());
        lines.push(format!(
            "#交易合计：{paid}笔，商家实收共{}元，商家优惠共0.00元",
            yuan(total)
        ));
        lines.push(format!(
            "#退款合计：{back}笔，商家实收共-{}元，商家优惠共0.00元",
            yuan(back_total)
        ));
        lines.push(format!("#导出时间：[{}]", beijing_text(now)));
        Some(lines.join("\r\n") + "\r\n")
    }

    /// The zip behind a download URL, while it works.
    pub fn ali_bill_zip(&self, token: &str) -> Option<Vec<u8>> {
        let now = self.now();
        let st = self.state();
        st.ali_bills
            .get(token)
            .filter(|(_, made)| now - made <= URL_LIFE)
            .map(|(zip, _)| zip.clone())
    }
}

/// The bill zip: the detail file and a summary, GBK.
fn zip_of(pid: &str, day: chrono::NaiveDate, csv: &str) -> zip::result::ZipResult<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default();
    let stem = format!("{pid}0156_{}", day.format("%Y%m%d"));
    zip.start_file(format!("{stem}_业务明细.csv"), options)?;
    zip.write_all(&encoding_rs::GBK.encode(csv).0)?;
    zip.start_file(format!("{stem}_业务明细(汇总).csv"), options)?;
    zip.write_all(&encoding_rs::GBK.encode("#支付宝业务汇总查询\r\n").0)?;
    zip.finish()?;
    Ok(out.into_inner())
}

//! Alipay's trade bill (`alipay.data.dataservice.bill.downloadurl.query`, `bill_type=trade`):
//! a zip whose entry names and CSV files are GBK; the detail file (`…_业务明细.csv`) has `#`
//! comment lines around a header row and one row per trade (业务类型 `交易`) or refund
//! (`退款`, negative amounts), each cell followed by a tab (against spreadsheet mangling).

use crate::domain::Money;
use crate::payment::bill::{yuan_e5, Bill, BillError, BillLine, LineKind};
use std::io::Read;

fn gbk(bytes: &[u8]) -> String {
    encoding_rs::GBK.decode(bytes).0.into_owned()
}

/// The detail CSV of a bill zip, decoded from GBK.
pub fn detail_csv(zip: &[u8]) -> Result<String, BillError> {
    let bad = |why: String| BillError::Failed(format!("bill zip: {why}"));
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| bad(e.to_string()))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(e.to_string()))?;
        // Alipay writes the names in GBK without the zip's UTF-8 flag; a tool that rezips
        // the file may have written them as UTF-8.
        let names = [gbk(entry.name_raw()), entry.name().to_string()];
        let detail = |n: &String| n.ends_with("业务明细.csv") && !n.contains("汇总");
        if names.iter().any(detail) {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| bad(e.to_string()))?;
            return Ok(gbk(&bytes));
        }
    }
    Err(bad("no 业务明细.csv in it".into()))
}

/// A cell without Alipay's trailing tab and spaces.
fn cell(v: &str) -> &str {
    v.trim_matches(|c: char| c == '\t' || c == ' ')
}

/// Reads the detail CSV; a row that cannot be read is an error naming its line.
pub fn parse(text: &str) -> Result<Bill, BillError> {
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .skip_while(|(_, l)| l.starts_with('#') || l.trim().is_empty());
    let Some((hline, header)) = rows.next() else {
        return Ok(Bill::default());
    };
    let header: Vec<&str> = header.split(',').map(cell).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| BillError::Malformed {
                line: hline,
                why: format!("no column {name}"),
            })
    };
    let (trade_no, out_trade_no, kind, amount) = (
        col("支付宝交易号")?,
        col("商户订单号")?,
        col("业务类型")?,
        col("订单金额（元）")?,
    );
    let (refund_no, fee) = (col("退款批次号/请求号")?, col("服务费（元）")?);
    let mut bill = Bill::default();
    for (n, row) in rows {
        if row.starts_with('#') {
            break; // 业务明细列表结束, then the totals
        }
        if row.trim().is_empty() {
            continue;
        }
        let values: Vec<&str> = row.split(',').map(cell).collect();
        let bad = |why: String| BillError::Malformed { line: n, why };
        if values.len() != header.len() {
            let why = format!("{} values for {} columns", values.len(), header.len());
            return Err(bad(why));
        }
        let kind = match values[kind] {
            "交易" => LineKind::Payment,
            "退款" => LineKind::Refund,
            other => return Err(bad(format!("业务类型 {other:?}"))),
        };
        let raw = values[amount];
        let money = Money::parse_yuan(raw.trim_start_matches('-'))
            .map_err(|_| bad(format!("订单金额 {raw:?} is not yuan")))?;
        let fee_text = values[fee];
        let fee_abs = match fee_text {
            "" => 0,
            f => yuan_e5(f)
                .map(i64::abs)
                .ok_or_else(|| bad(format!("服务费 {f:?}")))?,
        };
        let (out, id) = (values[out_trade_no], values[trade_no]);
        if out.is_empty() || id.is_empty() {
            return Err(bad("no 商户订单号 or 支付宝交易号".into()));
        }
        let out_refund_no = (kind == LineKind::Refund)
            .then(|| values[refund_no].to_string())
            .filter(|r| !r.is_empty());
        if kind == LineKind::Refund && out_refund_no.is_none() {
            return Err(bad("a refund without 退款批次号/请求号".into()));
        }
        bill.lines.push(BillLine {
            line: n,
            kind,
            out_trade_no: out.to_string(),
            payment_id: id.to_string(),
            out_refund_no,
            refund_id: None,
            amount: money,
            // What the merchant pays is positive; a refund gives its fee back.
            fee_e5: if kind == LineKind::Refund {
                -fee_abs
            } else {
                fee_abs
            },
        });
    }
    Ok(bill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A detail file as Alipay writes it: comments, header, a trade and its refund (cells
    /// with their tab), the end marker and totals.
    const DETAIL: &str = "#支付宝业务明细查询\r
#账号：[20881021000000010156]\r
#起始日期：[2026年12月01日 00:00:00]   终止日期：[2026年12月02日 00:00:00]\r
#-----------------------------------------业务明细列表----------------------------------------\r
支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\r
2026120122001400000000000001\t,JC0110000000123401\t,交易,结算商城-咖啡豆\t,2026-12-01 10:15:02,2026-12-01 10:15:09,,,,,buy***@example.com,168.00,168.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,-1.01,0.00,\r
2026120122001400000000000001\t,JC0110000000123401\t,退款,结算商城-咖啡豆\t,2026-12-01 11:20:45,2026-12-01 11:20:45,,,,,buy***@example.com,-68.00,-68.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,JC0110000000123401R1\t,0.41,0.00,\r
#-----------------------------------------业务明细列表结束------------------------------------\r
#交易合计：1笔，商家实收共168.00元，商家优惠共0.00元\r
#退款合计：1笔，商家实收共-68.00元，商家优惠共0.00元\r
#导出时间：[2026年12月02日 09:01:12]\r
";

    fn read(text: &str) -> Bill {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_detail_file_reads_trades_refunds_and_fees() {
        let bill = read(DETAIL);
        assert_eq!(bill.lines.len(), 2);
        let (pay, refund) = (&bill.lines[0], &bill.lines[1]);
        assert_eq!(pay.kind, LineKind::Payment);
        assert_eq!(pay.out_trade_no, "JC0110000000123401");
        assert_eq!(pay.payment_id, "2026120122001400000000000001");
        assert_eq!((pay.amount, pay.fee_e5), (Money::from_fen(16_800), 101_000));
        assert_eq!(refund.kind, LineKind::Refund);
        assert_eq!(
            refund.out_refund_no.as_deref(),
            Some("JC0110000000123401R1")
        );
        assert_eq!(
            (refund.amount, refund.fee_e5),
            (Money::from_fen(6_800), -41_000)
        );
        assert_eq!(refund.line, 7);
    }

    #[test]
    fn a_bad_row_names_its_line() {
        let broken = DETAIL.replacen(",168.00,168.00,", ",16x.00,168.00,", 1);
        assert!(matches!(
            parse(&broken),
            Err(BillError::Malformed { line: 6, .. })
        ));
        let short = DETAIL.replacen(",交易,", ",", 1);
        assert!(matches!(
            parse(&short),
            Err(BillError::Malformed { line: 6, .. })
        ));
    }

    #[test]
    fn the_zip_holds_the_detail_file_in_gbk() {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default();
        let summary = "20881021000000010156_20261201_业务明细(汇总).csv";
        let detail = "20881021000000010156_20261201_业务明细.csv";
        zip.start_file(summary, options)
            .unwrap_or_else(|e| panic!("{e}"));
        zip.write_all(b"x").unwrap_or_else(|e| panic!("{e}"));
        zip.start_file(detail, options)
            .unwrap_or_else(|e| panic!("{e}"));
        let (body, _, _) = encoding_rs::GBK.encode(DETAIL);
        zip.write_all(&body).unwrap_or_else(|e| panic!("{e}"));
        zip.finish().unwrap_or_else(|e| panic!("{e}"));
        let text = detail_csv(out.get_ref()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&text).lines.len(), 2);
    }
}

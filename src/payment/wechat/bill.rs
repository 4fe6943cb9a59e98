//! WeChat Pay's trade bill (v2 `pay/downloadbill` and APIv3 `tradebill` give the same
//! file): UTF-8 CSV, a header row, one row per trade with every value prefixed by a
//! backquote, then a summary header (总交易单数,…) and one summary row. In an `ALL` bill a
//! payment's 交易状态 is SUCCESS and a refund's REFUND (with the refund columns filled).

use crate::domain::Money;
use crate::payment::bill::{yuan_e5, Bill, BillError, BillLine, LineKind};

/// The value of a cell: WeChat writes `` `value ``; a lone backquote is empty.
fn cell(raw: &str) -> &str {
    let v = raw.trim();
    v.strip_prefix('`').unwrap_or(v).trim()
}

/// The columns a line is read from, by the header's names (the ALL, SUCCESS and REFUND
/// bills order them differently; older bills say 总金额 for 订单金额).
struct Columns {
    out_trade_no: usize,
    transaction_id: usize,
    state: usize,
    amount: usize,
    out_refund_no: Option<usize>,
    refund_id: Option<usize>,
    /// 申请退款金额 (what the merchant asked for, as the shop records it), else 退款金额
    /// (net of coupons) in bills without it.
    refund_amount: Option<usize>,
    fee: Option<usize>,
}

impl Columns {
    fn of(header: &[&str], line: usize) -> Result<Columns, BillError> {
        let find = |name: &str| header.iter().position(|h| cell(h) == name);
        let need = |name: &str| {
            find(name).ok_or_else(|| BillError::Malformed {
                line,
                why: format!("no column {name}"),
            })
        };
        let amount = find("订单金额")
            .or_else(|| find("总金额"))
            .or_else(|| find("应结订单金额"))
            .ok_or_else(|| BillError::Malformed {
                line,
                why: "no amount column (订单金额 / 总金额)".into(),
            })?;
        Ok(Columns {
            out_trade_no: need("商户订单号")?,
            transaction_id: need("微信订单号")?,
            state: need("交易状态")?,
            amount,
            out_refund_no: find("商户退款单号"),
            refund_id: find("微信退款单号"),
            refund_amount: find("申请退款金额").or_else(|| find("退款金额")),
            fee: find("手续费"),
        })
    }
}

/// Reads a WeChat trade bill; a row that cannot be read is an error naming its line.
pub fn parse(text: &str) -> Result<Bill, BillError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((hline, header)) = rows.next() else {
        return Ok(Bill::default());
    };
    let header: Vec<&str> = header.split(',').collect();
    let cols = Columns::of(&header, hline)?;
    let mut bill = Bill::default();
    for (n, row) in rows {
        if row.trim_start().starts_with("总交易单数") {
            break; // the summary header; the summary row follows
        }
        // Every value starts with a backquote, so a comma inside one (a product name) is
        // not a separator: values are split at comma-backquote.
        let values: Vec<&str> = match row.trim_start().strip_prefix('`') {
            Some(rest) => rest.split(",`").collect(),
            None => row.split(',').collect(),
        };
        if values.len() != header.len() {
            return Err(BillError::Malformed {
                line: n,
                why: format!("{} values for {} columns", values.len(), header.len()),
            });
        }
        bill.lines.push(read_row(&cols, &values, n)?);
    }
    Ok(bill)
}

fn read_row(cols: &Columns, values: &[&str], n: usize) -> Result<BillLine, BillError> {
    let bad = |why: String| BillError::Malformed { line: n, why };
    let get = |i: usize| cell(values[i]);
    let opt = |i: Option<usize>| i.map(get).filter(|v| !v.is_empty()).map(str::to_string);
    let money = |i: usize, what: &str| {
        Money::parse_yuan(get(i)).map_err(|_| bad(format!("{what} {:?} is not yuan", get(i))))
    };
    let kind = match get(cols.state) {
        "REFUND" => LineKind::Refund,
        "SUCCESS" => LineKind::Payment,
        other => return Err(bad(format!("交易状态 {other:?}"))),
    };
    let amount = match (kind, cols.refund_amount) {
        (LineKind::Refund, Some(i)) => money(i, "退款金额")?,
        (LineKind::Refund, None) => return Err(bad("a refund without 退款金额".into())),
        (LineKind::Payment, _) => money(cols.amount, "订单金额")?,
    };
    let fee_e5 = match cols.fee.map(get) {
        None | Some("") => 0,
        Some(f) => yuan_e5(f).ok_or_else(|| bad(format!("手续费 {f:?}")))?,
    };
    let (out_trade_no, payment_id) = (get(cols.out_trade_no), get(cols.transaction_id));
    if out_trade_no.is_empty() || payment_id.is_empty() {
        return Err(bad("no 商户订单号 or 微信订单号".into()));
    }
    let line = BillLine {
        line: n,
        kind,
        out_trade_no: out_trade_no.to_string(),
        payment_id: payment_id.to_string(),
        // A payment's refund columns hold `0`: only a refund has them.
        out_refund_no: opt(cols.out_refund_no).filter(|_| kind == LineKind::Refund),
        refund_id: opt(cols.refund_id).filter(|_| kind == LineKind::Refund),
        amount,
        fee_e5,
    };
    if kind == LineKind::Refund && line.out_refund_no.is_none() {
        return Err(bad("a refund without 商户退款单号".into()));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Bill {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An `ALL` bill as WeChat writes it (the 27 columns, backquoted values, a payment and
    /// its refund, the summary).
    const ALL: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r
`2026-12-01 10:15:02,`wxd678efh567hg6787,`1230000109,`0,`,`4200002026120112345678901,`JC0110000000123401,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`CMB_CREDIT,`CNY,`168.00,`0.00,`0,`0,`0.00,`0.00,`,`,`结算商城-云南小粒咖啡豆,`,`1.00800,`0.60%,`168.00,`0.00,`\r
`2026-12-01 11:20:45,`wxd678efh567hg6787,`1230000109,`0,`,`4200002026120112345678901,`JC0110000000123401,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`REFUND,`CMB_CREDIT,`CNY,`0.00,`0.00,`50000012026120100001,`JC0110000000123401R1,`68.00,`0.00,`ORIGINAL,`SUCCESS,`结算商城-云南小粒咖啡豆,`,`-0.40800,`0.60%,`0.00,`68.00,`\r
总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r
`2,`168.00,`68.00,`0.00,`0.60000,`168.00,`68.00\r
";

    #[test]
    fn an_all_bill_reads_payments_refunds_and_fees() {
        let bill = read(ALL);
        assert_eq!(bill.lines.len(), 2);
        let (pay, refund) = (&bill.lines[0], &bill.lines[1]);
        assert_eq!(pay.kind, LineKind::Payment);
        assert_eq!(pay.out_trade_no, "JC0110000000123401");
        assert_eq!(pay.payment_id, "4200002026120112345678901");
        assert_eq!(pay.amount, Money::from_fen(16_800));
        assert_eq!(pay.fee_e5, 100_800);
        assert_eq!(pay.out_refund_no, None);
        assert_eq!(refund.kind, LineKind::Refund);
        assert_eq!(
            refund.out_refund_no.as_deref(),
            Some("JC0110000000123401R1")
        );
        assert_eq!(refund.refund_id.as_deref(), Some("50000012026120100001"));
        assert_eq!(refund.amount, Money::from_fen(6_800));
        assert_eq!(refund.fee_e5, -40_800);
        assert_eq!(refund.line, 3);
        // A lone backquote is an empty value.
        let empty = ALL.replacen("`1.00800,", "`,", 1);
        assert_eq!(read(&empty).lines[0].fee_e5, 0);
    }

    #[test]
    fn a_malformed_row_is_an_error_naming_its_line() {
        let broken = ALL.replacen("`168.00,`0.00,`\r", "`16x.00,`0.00,`\r", 1);
        match parse(&broken) {
            Err(BillError::Malformed { line: 2, why }) => {
                assert!(why.contains("订单金额"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let short = ALL.replacen(",`CMB_CREDIT", "", 1);
        assert!(matches!(
            parse(&short),
            Err(BillError::Malformed { line: 2, .. })
        ));
        let unknown = ALL.replacen("`SUCCESS,`CMB", "`PAYING,`CMB", 1);
        assert!(matches!(
            parse(&unknown),
            Err(BillError::Malformed { line: 2, .. })
        ));
        assert!(matches!(
            parse("交易时间,商户号\n`x,`y\n"),
            Err(BillError::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn a_comma_inside_a_value_is_not_a_separator() {
        let named = ALL.replacen("`结算商城-云南小粒咖啡豆,", "`结算商城-咖啡豆, 500g,", 1);
        let bill = read(&named);
        assert_eq!(bill.lines[0].amount, Money::from_fen(16_800));
        assert_eq!(bill.lines[0].fee_e5, 100_800);
    }

    #[test]
    fn a_refund_is_what_was_asked_for_not_net_of_coupons() {
        // 退款金额 68.00 minus a 10.00 coupon; 申请退款金额 stays 68.00.
        let coupon = ALL.replacen("`68.00,`0.00,`ORIGINAL", "`58.00,`10.00,`ORIGINAL", 1);
        assert_eq!(read(&coupon).lines[1].amount, Money::from_fen(6_800));
    }

    #[test]
    fn an_empty_bill_has_no_lines() {
        assert_eq!(read("").lines, vec![]);
    }
}

//! A platform's daily trade bill (对账单) in the shop's terms: one line per payment or
//! refund with the platform's numbers, read by each platform's module from its own format.

use crate::domain::Money;

/// The largest bill file read (a day of a few hundred thousand trades).
pub const MAX_BILL_BYTES: usize = 256 << 20;

/// What a bill line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Payment,
    Refund,
}

/// One payment or refund as the platform's bill has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillLine {
    /// The line's number in the file (1 = the first line), for messages.
    pub line: usize,
    pub kind: LineKind,
    pub out_trade_no: String,
    /// The platform's id of the payment (WeChat's transaction_id).
    pub payment_id: String,
    /// Refunds: the shop's refund number and the platform's refund id.
    pub out_refund_no: Option<String>,
    pub refund_id: Option<String>,
    /// The payment's order amount, or the refund's amount.
    pub amount: Money,
    /// The platform's fee in 1/100000 yuan (WeChat writes 5 decimals; negative on refunds).
    pub fee_e5: i64,
}

/// A day's bill: its lines, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bill {
    pub lines: Vec<BillLine>,
}

/// Why there is no bill to compare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillError {
    /// The platform has not made the day's bill yet (or the day is too recent): try later.
    #[error("bill not ready: {0}")]
    NotReady(String),
    /// The platform says the day had no trade at all: an empty bill.
    #[error("no bill: the day had no trade")]
    Empty,
    /// The file cannot be read; `line` names where.
    #[error("malformed bill at line {line}: {why}")]
    Malformed { line: usize, why: String },
    /// No answer to believe (unreachable, refused, bad signature).
    #[error("bill download failed: {0}")]
    Failed(String),
    /// The platform has no bill the shop can fetch.
    #[error("this platform has no bill download")]
    Unsupported,
}

/// A decimal yuan amount with at most five decimals (`0.04000`, `-0.00600`) in 1/100000 yuan.
pub fn yuan_e5(s: &str) -> Option<i64> {
    let (neg, t) = match s.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.trim()),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || frac.len() > 5 || !digits(frac) {
        return None;
    }
    let whole: i64 = int.parse().ok()?;
    let frac: i64 = format!("{frac:0<5}").parse().ok()?;
    let v = whole.checked_mul(100_000)?.checked_add(frac)?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::yuan_e5;

    #[test]
    fn fees_keep_their_five_decimals() {
        assert_eq!(yuan_e5("0.04000"), Some(4_000));
        assert_eq!(yuan_e5("-0.00600"), Some(-600));
        assert_eq!(yuan_e5("12"), Some(1_200_000));
        assert_eq!(yuan_e5("0.000001"), None);
        assert_eq!(yuan_e5("1,0"), None);
        assert_eq!(yuan_e5(""), None);
    }
}

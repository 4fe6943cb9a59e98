//! `Money`: an amount in fen (1/100 yuan) held as `i64`; no float ever touches it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of Chinese yuan in fen. Arithmetic is checked: overflow is an error, never a wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount overflow")]
    Overflow,
    #[error("not a valid yuan amount: {0:?}")]
    Parse(String),
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_fen(fen: i64) -> Money {
        Money(fen)
    }

    pub const fn fen(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.0
            .checked_sub(other.0)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_mul(self, count: i64) -> Result<Money, MoneyError> {
        self.0
            .checked_mul(count)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    /// The yuan string used on the wire and in CSV: `12.30`, `-0.05`.
    pub fn yuan(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }

    /// Parses a yuan string with at most two decimals (`12`, `12.3`, `12.30`) into fen.
    pub fn parse_yuan(s: &str) -> Result<Money, MoneyError> {
        let bad = || MoneyError::Parse(s.to_string());
        let t = s.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let yuan: i64 = int.parse().map_err(|_| bad())?;
        let mut cents: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        if frac.len() == 1 {
            cents *= 10;
        }
        let fen = yuan
            .checked_mul(100)
            .and_then(|v| v.checked_add(cents))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money(if neg { -fen } else { fen }))
    }
}

impl fmt::Display for Money {
    /// `¥12.30`, `¥1,234,567.00`: thousands separated for people (the wire uses `yuan`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yuan = self.yuan();
        let (sign, digits) = match yuan.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("", yuan.as_str()),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "00"));
        let mut grouped = String::with_capacity(int.len() + int.len() / 3);
        for (i, ch) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        write!(f, "¥{sign}{grouped}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_yuan_with_two_decimals() {
        assert_eq!(Money::from_fen(1230).to_string(), "¥12.30");
        assert_eq!(Money::from_fen(5).to_string(), "¥0.05");
        assert_eq!(Money::from_fen(99_999).to_string(), "¥999.99");
        assert_eq!(Money::from_fen(100_000).to_string(), "¥1,000.00");
        assert_eq!(Money::from_fen(123_456_789).to_string(), "¥1,234,567.89");
        assert_eq!(Money::from_fen(-123_456_789).to_string(), "¥-1,234,567.89");
        assert_eq!(Money::from_fen(-5).yuan(), "-0.05");
        assert_eq!(Money::ZERO.yuan(), "0.00");
    }

    #[test]
    fn parses_yuan_strings_exactly() {
        assert_eq!(Money::parse_yuan("12.3"), Ok(Money::from_fen(1230)));
        assert_eq!(Money::parse_yuan("0.01"), Ok(Money::from_fen(1)));
        assert_eq!(Money::parse_yuan("7"), Ok(Money::from_fen(700)));
        assert!(Money::parse_yuan("1.234").is_err());
        assert!(Money::parse_yuan("abc").is_err());
        assert!(Money::parse_yuan(".5").is_err());
        assert!(Money::parse_yuan("99999999999999999999").is_err());
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(
            Money::from_fen(i64::MAX).checked_add(Money::from_fen(1)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::from_fen(250).checked_mul(3),
            Ok(Money::from_fen(750))
        );
        assert_eq!(
            Money::from_fen(i64::MAX).checked_mul(2),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::from_fen(300).checked_sub(Money::from_fen(500)),
            Ok(Money::from_fen(-200))
        );
    }
}

//! Order numbers in the zerg shop's style, made unique by time plus randomness.

use super::OrderNo;
use chrono::{Datelike, Timelike};
use rand::Rng;

/// Year letter (A = 2017, as in the zerg shop, wrapping after Z), month as one uppercase hex
/// digit, day (2 digits), seconds of the day (5 digits), microseconds (6 digits) and two random
/// digits: 20 characters, all alphanumeric, sortable by time within a year. A collision needs
/// two orders in the same microsecond drawing the same two digits; the placement transaction
/// retries on a unique violation for that case.
pub fn generate_order_no(now: chrono::DateTime<chrono::FixedOffset>) -> OrderNo {
    let letter = (b'A' + ((now.year() - 2017).rem_euclid(26)) as u8) as char;
    let secs = now.num_seconds_from_midnight();
    let micros = now.timestamp_subsec_micros() % 1_000_000;
    let rnd: u8 = rand::thread_rng().gen_range(0..100);
    OrderNo::new_unchecked(format!(
        "{letter}{:X}{:02}{secs:05}{micros:06}{rnd:02}",
        now.month(),
        now.day()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn order_no_has_the_zerg_shape() {
        let t = crate::domain::shanghai()
            .with_ymd_and_hms(2026, 11, 23, 11, 7, 52)
            .single()
            .unwrap_or_else(|| unreachable!());
        let no = generate_order_no(t);
        let s = no.as_str();
        assert_eq!(s.len(), 17, "{s}");
        assert!(s.starts_with("JB23"), "{s}");
        assert_eq!(&s[4..9], "40072");
        assert!(OrderNo::parse(s).is_some());
    }
}

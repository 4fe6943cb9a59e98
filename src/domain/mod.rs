//! Domain types shared by every layer: money, identifiers, statuses, order numbers.
//! May import only std, serde and chrono.

mod ids;
mod money;
mod order_no;
mod payment;
mod status;

pub use ids::{OrderId, OrderNo, ProductId, UserId};
pub use money::{Money, MoneyError};
pub use order_no::generate_order_no;
pub use payment::{AttemptStatus, Channel, Provider, RefundStatus, CARRIERS};
pub use status::{OrderStatus, Scope, UnknownStatus};

/// China Standard Time has had no daylight saving since 1991: a fixed +08:00 offset is exact.
pub fn shanghai() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| unreachable!("+08:00 is in range"))
}

/// Today's date in Asia/Shanghai (Beijing).
pub fn today_shanghai() -> chrono::NaiveDate {
    chrono::Utc::now().with_timezone(&shanghai()).date_naive()
}

/// Formats a UTC timestamp as Asia/Shanghai wall-clock time, `2026-11-23 11:07:52`.
pub fn format_shanghai(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .with_timezone(&shanghai())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

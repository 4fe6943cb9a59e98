//! Rows, inserts and queries, one file per table group. Every function takes `&mut Conn`
//! and leaves transactions to the services. May import diesel and domain (and derive utoipa
//! schemas for what the API shows as it is stored).

pub mod api_token;
pub mod event;
pub mod job_lease;
pub mod order;
pub mod pay;
pub mod product;
pub mod recon;
pub mod refund;
pub mod schema;
pub mod shipment;
pub mod user;

pub use order::{NewOrder, Order, OrderLine};
pub use product::{NewProduct, Product};
pub use user::{Address, NewUser, User};

/// Now, in UTC, at the microsecond precision all three backends store.
pub fn now() -> chrono::NaiveDateTime {
    let t = chrono::Utc::now().naive_utc();
    t.with_nanosecond_trunc()
}

trait TruncMicros {
    fn with_nanosecond_trunc(self) -> Self;
}

impl TruncMicros for chrono::NaiveDateTime {
    fn with_nanosecond_trunc(self) -> Self {
        use chrono::Timelike;
        let micros = self.nanosecond() / 1000 * 1000;
        self.with_nanosecond(micros).unwrap_or(self)
    }
}

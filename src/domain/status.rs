//! Order status and user scope, with the order's transitions as methods.
//!
//! Every transition matches every variant (no wildcard arm), so a new status cannot slip
//! through unnoticed. The database write that follows is compare-and-set on the old status.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Unpaid,
    Paid,
    Delivered,
    PaidButOutOfStock,
    Closed,
    Refunded,
    PartiallyRefunded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown status code {0}")]
pub struct UnknownStatus(pub i32);

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Unpaid,
        OrderStatus::Paid,
        OrderStatus::Delivered,
        OrderStatus::PaidButOutOfStock,
        OrderStatus::Closed,
        OrderStatus::Refunded,
        OrderStatus::PartiallyRefunded,
    ];

    /// The code stored in `orders.status` (the ThinkPHP shop's numbers).
    pub const fn code(self) -> i32 {
        match self {
            OrderStatus::Unpaid => 1,
            OrderStatus::Paid => 2,
            OrderStatus::Delivered => 3,
            OrderStatus::PaidButOutOfStock => 4,
            OrderStatus::Closed => 5,
            OrderStatus::Refunded => 6,
            OrderStatus::PartiallyRefunded => 7,
        }
    }

    pub fn from_code(code: i32) -> Result<OrderStatus, UnknownStatus> {
        OrderStatus::ALL
            .into_iter()
            .find(|s| s.code() == code)
            .ok_or(UnknownStatus(code))
    }

    /// What a shopper reads.
    pub const fn label(self) -> &'static str {
        match self {
            OrderStatus::Unpaid => "待支付",
            OrderStatus::Paid => "已支付",
            OrderStatus::Delivered => "已发货",
            OrderStatus::PaidButOutOfStock => "已支付（缺货待退款）",
            OrderStatus::Closed => "已关闭",
            OrderStatus::Refunded => "已退款",
            OrderStatus::PartiallyRefunded => "部分退款",
        }
    }

    /// A verified payment for an order waiting for it.
    pub fn pay(self) -> Option<OrderStatus> {
        match self {
            OrderStatus::Unpaid => Some(OrderStatus::Paid),
            OrderStatus::Paid
            | OrderStatus::Delivered
            | OrderStatus::PaidButOutOfStock
            | OrderStatus::Closed
            | OrderStatus::Refunded
            | OrderStatus::PartiallyRefunded => None,
        }
    }

    /// A verified payment for an order that was already closed: stock re-reserved or not.
    pub fn late_pay(self, stock_reserved: bool) -> Option<OrderStatus> {
        match self {
            OrderStatus::Closed if stock_reserved => Some(OrderStatus::Paid),
            OrderStatus::Closed => Some(OrderStatus::PaidButOutOfStock),
            OrderStatus::Unpaid
            | OrderStatus::Paid
            | OrderStatus::Delivered
            | OrderStatus::PaidButOutOfStock
            | OrderStatus::Refunded
            | OrderStatus::PartiallyRefunded => None,
        }
    }

    /// Timeout or cancellation of an unpaid order.
    pub fn close(self) -> Option<OrderStatus> {
        match self {
            OrderStatus::Unpaid => Some(OrderStatus::Closed),
            OrderStatus::Paid
            | OrderStatus::Delivered
            | OrderStatus::PaidButOutOfStock
            | OrderStatus::Closed
            | OrderStatus::Refunded
            | OrderStatus::PartiallyRefunded => None,
        }
    }

    /// Shipping the goods. A partly refunded order can still be shipped (the rest of it) and
    /// keeps saying it was partly refunded; its shipment row records that it went out.
    pub fn deliver(self) -> Option<OrderStatus> {
        match self {
            OrderStatus::Paid => Some(OrderStatus::Delivered),
            OrderStatus::PartiallyRefunded => Some(OrderStatus::PartiallyRefunded),
            OrderStatus::Unpaid
            | OrderStatus::Delivered
            | OrderStatus::PaidButOutOfStock
            | OrderStatus::Closed
            | OrderStatus::Refunded => None,
        }
    }

    /// A refund that brings the refunded total to the paid amount (`full`) or below it.
    pub fn refund(self, full: bool) -> Option<OrderStatus> {
        let next = if full {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        };
        match self {
            OrderStatus::Paid
            | OrderStatus::Delivered
            | OrderStatus::PaidButOutOfStock
            | OrderStatus::PartiallyRefunded => Some(next),
            OrderStatus::Unpaid | OrderStatus::Closed | OrderStatus::Refunded => None,
        }
    }
}

impl Serialize for OrderStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.code())
    }
}

/// What a token or session may do: 16 = shopper, 32 = admin (the ThinkPHP shop's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    User,
    Admin,
}

impl Scope {
    pub const fn code(self) -> i32 {
        match self {
            Scope::User => 16,
            Scope::Admin => 32,
        }
    }

    pub fn from_code(code: i32) -> Option<Scope> {
        match code {
            16 => Some(Scope::User),
            32 => Some(Scope::Admin),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::from_code(s.code()), Ok(s));
        }
        assert_eq!(OrderStatus::from_code(9), Err(UnknownStatus(9)));
    }

    #[test]
    fn only_unpaid_orders_can_be_paid_or_closed() {
        for s in OrderStatus::ALL {
            let unpaid = s == OrderStatus::Unpaid;
            assert_eq!(s.pay().is_some(), unpaid, "{s:?}");
            assert_eq!(s.close().is_some(), unpaid, "{s:?}");
        }
    }

    #[test]
    fn a_late_payment_depends_on_stock() {
        assert_eq!(OrderStatus::Closed.late_pay(true), Some(OrderStatus::Paid));
        assert_eq!(
            OrderStatus::Closed.late_pay(false),
            Some(OrderStatus::PaidButOutOfStock)
        );
        assert_eq!(OrderStatus::Paid.late_pay(true), None);
    }

    #[test]
    fn refunds_need_a_payment() {
        assert_eq!(
            OrderStatus::Paid.refund(false),
            Some(OrderStatus::PartiallyRefunded)
        );
        assert_eq!(
            OrderStatus::PartiallyRefunded.refund(true),
            Some(OrderStatus::Refunded)
        );
        assert_eq!(OrderStatus::Unpaid.refund(true), None);
        assert_eq!(OrderStatus::Refunded.refund(true), None);
        assert_eq!(OrderStatus::Paid.deliver(), Some(OrderStatus::Delivered));
        assert_eq!(OrderStatus::Closed.deliver(), None);
        assert_eq!(
            OrderStatus::PartiallyRefunded.deliver(),
            Some(OrderStatus::PartiallyRefunded)
        );
    }
}

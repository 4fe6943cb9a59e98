//! Payment attempts: their status, provider and channel.

use std::fmt;

/// The status of one `pay_attempt`. Transitions match every variant; writes are
/// compare-and-set on the old status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptStatus {
    Pending,
    Succeeded,
    Closed,
    Failed,
}

impl AttemptStatus {
    pub const ALL: [AttemptStatus; 4] = [
        AttemptStatus::Pending,
        AttemptStatus::Succeeded,
        AttemptStatus::Closed,
        AttemptStatus::Failed,
    ];

    pub const fn code(self) -> i32 {
        match self {
            AttemptStatus::Pending => 1,
            AttemptStatus::Succeeded => 2,
            AttemptStatus::Closed => 3,
            AttemptStatus::Failed => 4,
        }
    }

    pub fn from_code(code: i32) -> Option<AttemptStatus> {
        AttemptStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    pub const fn label(self) -> &'static str {
        match self {
            AttemptStatus::Pending => "待支付",
            AttemptStatus::Succeeded => "已支付",
            AttemptStatus::Closed => "已关闭",
            AttemptStatus::Failed => "失败",
        }
    }

    /// A verified payment. A closed attempt can still be paid: a charge that cannot be
    /// closed at the gateway (Ping++) may succeed after the shop gave up on it.
    pub fn succeed(self) -> Option<AttemptStatus> {
        match self {
            AttemptStatus::Pending | AttemptStatus::Closed => Some(AttemptStatus::Succeeded),
            AttemptStatus::Succeeded | AttemptStatus::Failed => None,
        }
    }

    pub fn close(self) -> Option<AttemptStatus> {
        match self {
            AttemptStatus::Pending => Some(AttemptStatus::Closed),
            AttemptStatus::Succeeded | AttemptStatus::Closed | AttemptStatus::Failed => None,
        }
    }

    pub fn fail(self) -> Option<AttemptStatus> {
        match self {
            AttemptStatus::Pending => Some(AttemptStatus::Failed),
            AttemptStatus::Succeeded | AttemptStatus::Closed | AttemptStatus::Failed => None,
        }
    }
}

/// The status of one `refund` row: recorded, accepted by the platform, done, refused, or
/// abnormal (closed or diverted at the platform: an admin settles it by hand, and nothing
/// refunds it again automatically).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    Pending,
    Processing,
    Succeeded,
    Failed,
    Abnormal,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 5] = [
        RefundStatus::Pending,
        RefundStatus::Processing,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
        RefundStatus::Abnormal,
    ];

    pub const fn code(self) -> i32 {
        match self {
            RefundStatus::Pending => 1,
            RefundStatus::Processing => 2,
            RefundStatus::Succeeded => 3,
            RefundStatus::Failed => 4,
            RefundStatus::Abnormal => 5,
        }
    }

    pub fn from_code(code: i32) -> Option<RefundStatus> {
        RefundStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    pub const fn label(self) -> &'static str {
        match self {
            RefundStatus::Pending => "待提交",
            RefundStatus::Processing => "退款中",
            RefundStatus::Succeeded => "已退款",
            RefundStatus::Failed => "退款失败",
            RefundStatus::Abnormal => "退款异常（需人工处理）",
        }
    }

    /// Counts against the refundable amount: everything but a refused refund. An abnormal
    /// one holds its money too: it may have left (CHANGE), and only an admin may decide.
    pub const fn holds_money(self) -> bool {
        match self {
            RefundStatus::Pending
            | RefundStatus::Processing
            | RefundStatus::Succeeded
            | RefundStatus::Abnormal => true,
            RefundStatus::Failed => false,
        }
    }

    pub fn succeed(self) -> Option<RefundStatus> {
        match self {
            RefundStatus::Pending | RefundStatus::Processing => Some(RefundStatus::Succeeded),
            RefundStatus::Succeeded | RefundStatus::Failed | RefundStatus::Abnormal => None,
        }
    }

    pub fn accept(self) -> Option<RefundStatus> {
        match self {
            RefundStatus::Pending => Some(RefundStatus::Processing),
            RefundStatus::Processing
            | RefundStatus::Succeeded
            | RefundStatus::Failed
            | RefundStatus::Abnormal => None,
        }
    }

    pub fn fail(self) -> Option<RefundStatus> {
        match self {
            RefundStatus::Pending | RefundStatus::Processing => Some(RefundStatus::Failed),
            RefundStatus::Succeeded | RefundStatus::Failed | RefundStatus::Abnormal => None,
        }
    }

    /// The platform closed the refund or could not deliver it (REFUNDCLOSE, CHANGE).
    pub fn abnormal(self) -> Option<RefundStatus> {
        match self {
            RefundStatus::Pending | RefundStatus::Processing => Some(RefundStatus::Abnormal),
            RefundStatus::Succeeded | RefundStatus::Failed | RefundStatus::Abnormal => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// WeChat Pay v2 (XML, MD5/HMAC).
    Wechat,
    /// WeChat Pay APIv3 (JSON, RSA, AES-256-GCM).
    WechatV3,
    Pingpp,
    /// Alipay direct (OpenAPI, RSA2).
    Alipay,
}

impl Provider {
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Wechat => "wechat",
            Provider::WechatV3 => "wechat_v3",
            Provider::Pingpp => "pingpp",
            Provider::Alipay => "alipay",
        }
    }

    /// The platform whose ids the provider's payments and refunds carry: WeChat Pay v2
    /// and APIv3 share one space of transaction_id and refund_id (one merchant, one trade
    /// reachable by both APIs), so a payment has one dedupe key whichever API reported it.
    pub const fn id_space(self) -> Provider {
        match self {
            Provider::Wechat | Provider::WechatV3 => Provider::Wechat,
            Provider::Pingpp => Provider::Pingpp,
            Provider::Alipay => Provider::Alipay,
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "wechat" => Some(Provider::Wechat),
            "wechat_v3" => Some(Provider::WechatV3),
            "pingpp" => Some(Provider::Pingpp),
            "alipay" => Some(Provider::Alipay),
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the shopper pays: direct WeChat Pay (`wx_jsapi`, `wx_native`) or a Ping++ channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    WxJsapi,
    WxNative,
    WxLite,
    WxPub,
    WxPubQr,
    AlipayQr,
    /// Alipay's PC web cashier (`alipay.trade.page.pay`; Ping++'s `alipay_pc_direct`).
    AlipayPage,
    /// Alipay in a phone browser (`alipay.trade.wap.pay`; Ping++'s `alipay_wap`).
    AlipayWap,
    /// WeChat Pay in a phone browser outside WeChat (APIv3 H5; Ping++'s `wx_wap`).
    WxWap,
}

impl Channel {
    pub const ALL: [Channel; 9] = [
        Channel::WxJsapi,
        Channel::WxNative,
        Channel::WxLite,
        Channel::WxPub,
        Channel::WxPubQr,
        Channel::AlipayQr,
        Channel::AlipayPage,
        Channel::AlipayWap,
        Channel::WxWap,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::WxJsapi => "wx_jsapi",
            Channel::WxNative => "wx_native",
            Channel::WxLite => "wx_lite",
            Channel::WxPub => "wx_pub",
            Channel::WxPubQr => "wx_pub_qr",
            Channel::AlipayQr => "alipay_qr",
            Channel::AlipayPage => "alipay_pc_direct",
            Channel::AlipayWap => "alipay_wap",
            Channel::WxWap => "wx_wap",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub const fn provider(self) -> Provider {
        match self {
            Channel::WxJsapi | Channel::WxNative => Provider::Wechat,
            Channel::WxLite
            | Channel::WxPub
            | Channel::WxPubQr
            | Channel::AlipayQr
            | Channel::AlipayPage
            | Channel::AlipayWap
            | Channel::WxWap => Provider::Pingpp,
        }
    }

    /// Paid inside the mini-program (its JSAPI payments, Ping++ `wx_lite`): WeChat's
    /// 发货信息管理 holds the merchant's money for such an order until its parcel is
    /// reported. (`wx_jsapi` is the mini-program's; the shop's own Official Account JSAPI
    /// payment is `wx_pub`.)
    pub const fn in_mini_program(self) -> bool {
        matches!(self, Channel::WxJsapi | Channel::WxLite)
    }

    /// Alipay's: with `cashier = "direct"` the shop's own Alipay app takes them.
    pub const fn is_alipay(self) -> bool {
        matches!(
            self,
            Channel::AlipayQr | Channel::AlipayPage | Channel::AlipayWap
        )
    }

    /// WeChat's, taken by the shop's own WeChat Pay account with `cashier = "direct"`: the
    /// Official Account JSAPI payment of the shop's cashier (`wx_pub`) and H5 (`wx_wap`).
    pub const fn is_direct_wechat(self) -> bool {
        matches!(self, Channel::WxPub | Channel::WxWap)
    }

    /// How long the platform keeps the payment's credential usable (seconds): an H5 page
    /// 5 minutes, a prepay_id, code_url or charge 2 hours.
    pub const fn credential_life_seconds(self) -> i64 {
        match self {
            Channel::WxWap => 5 * 60,
            _ => 2 * 3600,
        }
    }

    /// The pay name shown to shoppers and stored on the order.
    pub const fn pay_name(self) -> &'static str {
        match self {
            Channel::WxJsapi
            | Channel::WxNative
            | Channel::WxLite
            | Channel::WxPub
            | Channel::WxPubQr
            | Channel::WxWap => "微信支付",
            Channel::AlipayQr | Channel::AlipayPage | Channel::AlipayWap => "支付宝",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The carriers an admin can pick when shipping.
pub const CARRIERS: [&str; 9] = [
    "顺丰速运",
    "京东物流",
    "中国邮政",
    "EMS",
    "中通快递",
    "圆通速递",
    "韵达快递",
    "申通快递",
    "极兔速递",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_succeed_once() {
        assert_eq!(
            AttemptStatus::Pending.succeed(),
            Some(AttemptStatus::Succeeded)
        );
        assert_eq!(AttemptStatus::Succeeded.succeed(), None);
        assert_eq!(
            AttemptStatus::Closed.succeed(),
            Some(AttemptStatus::Succeeded)
        );
        for s in AttemptStatus::ALL {
            assert_eq!(AttemptStatus::from_code(s.code()), Some(s));
        }
    }

    #[test]
    fn channels_know_their_provider_and_name() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::AlipayQr.pay_name(), "支付宝");
        assert_eq!(Channel::WxPubQr.provider(), Provider::Pingpp);
        assert_eq!(Channel::WxNative.provider(), Provider::Wechat);
    }
}

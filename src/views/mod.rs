//! One `Serialize` page struct per template; handlers never build a tera context by hand.
//! Amounts arrive here already formatted (`¥12.30`), times in Asia/Shanghai.
//! May import domain and serde only.

pub mod admin;

use serde::Serialize;
use std::collections::BTreeMap;

/// What every page's layout (`base.html`) needs.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Layout {
    /// The logged-in shopper's display name.
    pub user: Option<String>,
    /// Number of items in the cart cookie.
    pub cart_count: i64,
    /// The CSRF token every POST form carries as hidden field `csrf`.
    pub csrf: String,
    /// A one-line notice shown at the top (e.g. "地址已保存").
    pub flash: Option<String>,
}

/// A template and the page struct that fills it.
pub trait Page: Serialize {
    const TEMPLATE: &'static str;
}

macro_rules! page {
    ($ty:ty, $file:literal) => {
        impl Page for $ty {
            const TEMPLATE: &'static str = $file;
        }
    };
}

/// Field values as typed and one message per field in error.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Form {
    pub values: BTreeMap<String, String>,
    pub errors: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductCard {
    pub id: i32,
    pub name: String,
    pub price: String,
    pub stock: i32,
    pub main_img_url: String,
    pub summary: String,
    pub in_stock: bool,
    /// The most one order can take: the stock, at most 999.
    pub max_count: i32,
}

#[derive(Debug, Serialize)]
pub struct HomePage {
    pub layout: Layout,
    pub products: Vec<ProductCard>,
    /// The search term (`/?q=`), empty for the whole catalogue.
    pub query: String,
}
page!(HomePage, "index.html");

#[derive(Debug, Serialize)]
pub struct ProductPage {
    pub layout: Layout,
    pub product: ProductCard,
}
page!(ProductPage, "product.html");

#[derive(Debug, Clone, Serialize)]
pub struct LineView {
    pub id: i32,
    pub name: String,
    pub main_img_url: String,
    pub price: String,
    pub count: i32,
    pub line_total: String,
    /// False when the product ran short or left the shelf since it was put in the cart.
    pub available: bool,
    /// The most the quantity control allows: the real stock (at most 999).
    pub max_count: i32,
    /// 仅剩 N 件, 已售罄, 已下架 …: what the shopper should know about the line.
    pub warning: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CartPage {
    pub layout: Layout,
    pub lines: Vec<LineView>,
    pub total: String,
    /// Some line cannot be bought as it stands: checkout waits until it is fixed.
    pub blocked: bool,
}
page!(CartPage, "cart.html");

#[derive(Debug, Clone, Serialize)]
pub struct AddressView {
    pub name: String,
    pub mobile: String,
    pub province: String,
    pub city: String,
    pub district: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct CheckoutPage {
    pub layout: Layout,
    pub lines: Vec<LineView>,
    pub total: String,
    pub address: Option<AddressView>,
    /// Some line cannot be bought as it stands (see `CartPage::blocked`).
    pub blocked: bool,
    /// Why the last attempt to place the order failed, if it did.
    pub error: Option<String>,
}
page!(CheckoutPage, "checkout.html");

#[derive(Debug, Serialize)]
pub struct AddressPage {
    pub layout: Layout,
    pub form: Form,
    /// Where to go after saving (`/home/order/checkout` when coming from checkout).
    pub next: String,
}
page!(AddressPage, "address.html");

#[derive(Debug, Serialize)]
pub struct LoginPage {
    pub layout: Layout,
    pub form: Form,
    pub next: String,
    /// 注册 keeps `next`: registering from checkout returns to checkout.
    pub register_url: String,
}
page!(LoginPage, "login.html");

#[derive(Debug, Serialize)]
pub struct RegisterPage {
    pub layout: Layout,
    pub form: Form,
    pub next: String,
    /// 登录 keeps `next`.
    pub login_url: String,
}
page!(RegisterPage, "register.html");

#[derive(Debug, Clone, Serialize)]
pub struct OrderRow {
    pub id: i32,
    pub order_no: String,
    pub created_at: String,
    pub snap_name: String,
    pub snap_img: String,
    pub total_count: i32,
    pub total: String,
    pub status: i32,
    pub status_label: String,
    /// Unpaid and not yet expired: the pay page is worth a link.
    pub payable: bool,
}

#[derive(Debug, Serialize)]
pub struct OrdersPage {
    pub layout: Layout,
    pub orders: Vec<OrderRow>,
    pub page: i64,
    pub pages: i64,
}
page!(OrdersPage, "orders.html");

/// Where a pay page polls and where it goes once the order is paid.
#[derive(Debug, Clone, Serialize)]
pub struct Polling {
    /// `/home/order/status?order_sn=…`: answers `{"code":200,"msg":"success","data":<status>}`.
    pub status_url: String,
    /// `/home/order/payresult?order_sn=…`.
    pub result_url: String,
}

#[derive(Debug, Serialize)]
pub struct PayPage {
    pub layout: Layout,
    pub order: OrderRow,
    pub lines: Vec<LineView>,
    pub address: AddressView,
    /// Expiry in Asia/Shanghai, and as unix seconds for the countdown.
    pub expires_at: String,
    pub expires_at_unix: i64,
    /// Inline SVG (generated here, no user data) of the QR whose content is `qr_url`.
    pub qr_svg: String,
    /// `…/home/order/qrpay?id=ORDER_SN`: opened by the WeChat or Alipay scanner.
    pub qr_url: String,
    /// The second option: WeChat NATIVE, direct (`/home/order/wxpay?order_sn=…`).
    pub wechat_native_url: String,
    /// With `cashier = "direct"`: Alipay's PC cashier (page.pay).
    pub alipay_page_url: Option<String>,
    pub polling: Polling,
    /// Sandbox mode: explain how to play the phone.
    pub sandbox: bool,
    /// The order's detail page (取消订单 is there).
    pub detail_url: String,
    /// A phone's browser with `cashier = "direct"`: pay here instead of scanning.
    pub phone: Option<PhoneCashier>,
}
page!(PayPage, "pay.html");

/// The WeChat NATIVE QR (direct WeChat Pay, `code_url`).
#[derive(Debug, Serialize)]
pub struct WxNativePage {
    pub layout: Layout,
    pub order: OrderRow,
    pub qr_svg: String,
    pub code_url: String,
    /// Sandbox mode: the page that plays scanning this code.
    pub phone_url: Option<String>,
    pub expires_at: String,
    pub expires_at_unix: i64,
    pub polling: Polling,
    /// Back to the pay page.
    pub pay_url: String,
}
page!(WxNativePage, "wxpay.html");

/// `/home/order/payresult`.
#[derive(Debug, Serialize)]
pub struct PayResultPage {
    pub layout: Layout,
    /// False: no such order (订单编号错误).
    pub found: bool,
    /// What the shopper reads: `paid`, `refunded` (in part or whole), `closed` or `unpaid`.
    pub state: &'static str,
    pub order_no: String,
    pub pay_name: String,
    pub amount: String,
    /// Refunded so far (the `refunded` state).
    pub refunded: String,
    pub status_label: String,
    /// Unpaid: back to the pay page.
    pub pay_url: String,
    /// The order's detail page (`/home/order/detail?order_sn=…`).
    pub detail_url: String,
}
page!(PayResultPage, "payresult.html");

/// The QR's URL opened in a plain browser: scan with WeChat or Alipay instead. An order that
/// can no longer be paid says why instead (`ended`), with neither QR nor amount.
#[derive(Debug, Serialize)]
pub struct ScanPromptPage {
    pub layout: Layout,
    pub order_no: String,
    pub snap_name: String,
    pub amount: String,
    pub qr_svg: String,
    /// Pay with Alipay from this browser (the seed's default link).
    pub alipay_url: String,
    /// Pay with WeChat from this browser (H5, APIv3 with `cashier = "direct"`).
    pub wechat_h5_url: Option<String>,
    /// 订单已关闭 / 订单已支付 …: the order is past paying.
    pub ended: Option<String>,
}
page!(ScanPromptPage, "scan.html");

/// The shop's cashier in the WeChat browser (`cashier = "direct"`): the order and its JSAPI
/// payment, started by WeixinJSBridge.
#[derive(Debug, Serialize)]
pub struct WxCashierPage {
    pub layout: Layout,
    pub order_no: String,
    pub snap_name: String,
    pub amount: String,
    /// `getBrandWCPayRequest`'s parameters as JSON; `None` once the order is past paying.
    pub launch: Option<String>,
    /// WeChat said the payment went through and the shop has not heard of it yet: the page
    /// shows 正在确认 and asks again in a moment.
    pub confirming: bool,
    /// 订单已支付 / 订单已关闭 …: the order is past paying.
    pub ended: Option<String>,
    /// Paid (the ended page says 支付成功).
    pub paid: bool,
    /// This page once WeChat says the payment went through (`&paid=1`).
    pub self_url: String,
    /// Sandbox mode: the sandbox's stand-in for WeixinJSBridge.
    pub jsbridge_url: Option<String>,
}
page!(WxCashierPage, "wxcashier.html");

/// A phone browser's pay page (`cashier = "direct"`): pay in this browser.
#[derive(Debug, Serialize)]
pub struct PhoneCashier {
    /// 支付宝: wap.pay (not in WeChat's browser).
    pub alipay_url: Option<String>,
    /// 微信支付: the cashier in WeChat's browser, or H5 (APIv3) in another browser.
    pub wechat_url: Option<String>,
    /// How to pay with the app this browser cannot pay with.
    pub hint: Option<String>,
}

/// A payment of an order as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentView {
    pub pay_name: String,
    pub amount: String,
    pub transaction_no: String,
    pub paid_at: String,
}

/// A refund as its owner sees it (`退款 ¥x 已到账`).
#[derive(Debug, Clone, Serialize)]
pub struct RefundView {
    pub amount: String,
    pub status_label: String,
    /// The money is back.
    pub done: bool,
    pub created_at: String,
}

/// One line of an order's status history, in the shopper's words.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub at: String,
    pub text: String,
}

/// `/home/order/detail?order_sn=`: 我的订单 → one order.
#[derive(Debug, Serialize)]
pub struct OrderDetailPage {
    pub layout: Layout,
    pub order: OrderRow,
    pub lines: Vec<LineView>,
    pub address: AddressView,
    pub payments: Vec<PaymentView>,
    pub refunds: Vec<RefundView>,
    pub history: Vec<HistoryEntry>,
    /// Unpaid and not expired: 去支付 and 取消订单.
    pub pay_url: Option<String>,
}
page!(OrderDetailPage, "order_detail.html");

/// The sandbox's simulated phone: the scanning app's confirmation screen.
#[derive(Debug, Serialize)]
pub struct SandboxPhonePage {
    /// 微信支付 or 支付宝.
    pub app_name: String,
    pub merchant: String,
    pub subject: String,
    pub amount: String,
    pub trade_no: String,
    /// POST here to pay (form with no fields).
    pub action: String,
    /// Paid just now or before.
    pub done: bool,
    pub error: Option<String>,
}
page!(SandboxPhonePage, "sandbox_phone.html");

#[derive(Debug, Serialize)]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub title: String,
    pub message: String,
}
page!(ErrorPage, "error.html");

//! One `Serialize` page struct per template; handlers never build a tera context by hand.
//! Amounts arrive here already formatted (`¥12.30`), times in Asia/Shanghai.
//! May import domain and serde only.

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
}

#[derive(Debug, Serialize)]
pub struct HomePage {
    pub layout: Layout,
    pub products: Vec<ProductCard>,
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
}

#[derive(Debug, Serialize)]
pub struct CartPage {
    pub layout: Layout,
    pub lines: Vec<LineView>,
    pub total: String,
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
}
page!(LoginPage, "login.html");

#[derive(Debug, Serialize)]
pub struct RegisterPage {
    pub layout: Layout,
    pub form: Form,
    pub next: String,
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

#[derive(Debug, Serialize)]
pub struct PayPage {
    pub layout: Layout,
    pub order: OrderRow,
    pub lines: Vec<LineView>,
    pub address: AddressView,
    /// Expiry in Asia/Shanghai, and as unix seconds for the countdown.
    pub expires_at: String,
    pub expires_at_unix: i64,
}
page!(PayPage, "pay.html");

#[derive(Debug, Serialize)]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub title: String,
    pub message: String,
}
page!(ErrorPage, "error.html");

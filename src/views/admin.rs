//! Page structs of the admin console (`templates/admin/*.html`). Amounts are formatted
//! (`¥12.30`), times are Asia/Shanghai strings.

use super::{AddressView, Form, LineView, Page};
use serde::Serialize;

macro_rules! page {
    ($ty:ty, $file:literal) => {
        impl Page for $ty {
            const TEMPLATE: &'static str = $file;
        }
    };
}

/// What every admin page's layout (`admin/base.html`) needs.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AdminLayout {
    /// The admin's name (shown with a logout button: POST /admin/logout with `csrf`).
    pub admin: String,
    pub csrf: String,
    /// A one-line notice after an action ("退款已提交").
    pub flash: Option<String>,
    /// Alarms for the banner on every admin page (callbacks failing, orders paid without stock).
    pub alarms: Vec<String>,
    /// The nav entry of this page (`aria-current="page"`).
    pub nav: NavSection,
}

/// The admin nav's entries.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NavSection {
    #[default]
    Dashboard,
    Orders,
    Paylog,
    Products,
    Reconcile,
}

#[derive(Debug, Serialize)]
pub struct AdminLoginPage {
    pub csrf: String,
    /// Values: `username`; errors: `username`, `password`, `form` (whole-form message).
    pub form: Form,
    pub next: String,
}
page!(AdminLoginPage, "admin/login.html");

/// One order in a list.
#[derive(Debug, Clone, Serialize)]
pub struct AdminOrderRow {
    pub id: i32,
    pub order_no: String,
    pub created_at: String,
    pub user: String,
    pub snap_name: String,
    pub total_count: i32,
    pub total: String,
    pub status: i32,
    pub status_label: String,
    pub pay_name: String,
    pub paid_at: String,
}

#[derive(Debug, Serialize)]
pub struct DashboardPage {
    pub layout: AdminLayout,
    /// Today (Asia/Shanghai): orders placed, amount paid, unpaid now, closed, refunds.
    pub today: String,
    pub orders_today: i64,
    pub paid_today: String,
    pub unpaid: i64,
    pub closed_today: i64,
    pub refunds_today: i64,
    /// Callbacks failing (the /healthz alarm): explanation, or None.
    pub callback_alarm: Option<String>,
    /// Orders paid after their stock was gone, waiting for a refund.
    pub out_of_stock: Vec<AdminOrderRow>,
    /// The background jobs' last runs (`#jobs`), one `.job-row` each.
    pub jobs: Vec<JobRow>,
    /// What needs doing: 待发货, 退款中, 异常, each a link to its filtered order list.
    pub todos: Vec<TodoTile>,
    /// The last 7 days' orders and takings, drawn on the server.
    pub week: WeekChart,
}
page!(DashboardPage, "admin/dashboard.html");

/// A to-do tile: `id` (`todo-ship`…), label, count and the order list it opens.
#[derive(Debug, Clone, Serialize)]
pub struct TodoTile {
    pub id: String,
    pub label: String,
    pub count: i64,
    pub href: String,
}

/// An inline SVG bar chart of takings per day, the orders count under each bar; also shown
/// as a table (`#week-table`) for screen readers and exact figures.
#[derive(Debug, Clone, Serialize)]
pub struct WeekChart {
    pub width: i64,
    pub height: i64,
    /// The baseline's y.
    pub base_y: i64,
    pub bars: Vec<ChartBar>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChartBar {
    /// `MM-DD` and the full date.
    pub label: String,
    pub date: String,
    pub orders: i64,
    pub paid: String,
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    /// The label's centre.
    pub cx: i64,
}

impl WeekChart {
    const W: i64 = 560;
    const H: i64 = 220;
    const TOP: i64 = 24;
    const BOTTOM: i64 = 44;

    /// Bars scaled to the largest day's takings: `(date YYYY-MM-DD, orders, fen, takings text)`.
    pub fn new(days: &[(String, i64, i64, String)]) -> WeekChart {
        let n = days.len().max(1) as i64;
        let slot = Self::W / n;
        let w = slot * 3 / 5;
        let base_y = Self::H - Self::BOTTOM;
        let room = base_y - Self::TOP;
        let max = days.iter().map(|d| d.2).max().unwrap_or(0).max(1);
        let bars = days
            .iter()
            .enumerate()
            .map(|(i, (date, orders, fen, paid))| {
                let h = if *fen > 0 {
                    (i128::from(*fen) * i128::from(room) / i128::from(max)).max(2) as i64
                } else {
                    0
                };
                let x = i as i64 * slot + (slot - w) / 2;
                ChartBar {
                    label: date.get(5..).unwrap_or(date).to_string(),
                    date: date.clone(),
                    orders: *orders,
                    paid: paid.clone(),
                    x,
                    y: base_y - h,
                    w,
                    h,
                    cx: x + w / 2,
                }
            })
            .collect();
        WeekChart {
            width: Self::W,
            height: Self::H,
            base_y,
            bars,
        }
    }
}

/// One background job on the dashboard: its name, last run (Asia/Shanghai), outcome, how
/// many runs, and which instance holds it.
#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    pub name: String,
    pub last_run_at: String,
    pub last_outcome: String,
    pub runs: i64,
    pub holder: String,
}

impl From<&crate::models::job_lease::JobLease> for JobRow {
    fn from(j: &crate::models::job_lease::JobLease) -> Self {
        JobRow {
            name: j.name.clone(),
            last_run_at: j
                .last_run_at
                .map(crate::domain::format_shanghai)
                .unwrap_or_default(),
            last_outcome: j.last_outcome.clone().unwrap_or_default(),
            runs: j.runs,
            holder: j.holder.clone(),
        }
    }
}

/// A `<select>` option.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// `/admin/orders`: GET form `#order-filter` with fields status (select), from, to
/// (dates), order_no, user, channel (select), min, max (yuan); the list; totals; pages.
#[derive(Debug, Serialize)]
pub struct OrdersListPage {
    pub layout: AdminLayout,
    /// The filter as typed (`from`, `to`, `order_no`, `user`, `min`, `max`); errors by field.
    pub filter: Form,
    pub statuses: Vec<Choice>,
    pub channels: Vec<Choice>,
    /// `todo` (待发货 / 退款中 / 异常), the dashboard tiles' filters.
    pub todos: Vec<Choice>,
    pub orders: Vec<AdminOrderRow>,
    pub total_count: i64,
    /// Sum paid over the whole filtered set.
    pub total_paid: String,
    pub page: i64,
    pub pages: i64,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
    /// The same filter as CSV.
    pub csv_url: String,
}
page!(OrdersListPage, "admin/orders.html");

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub out_trade_no: String,
    pub provider: String,
    pub channel: String,
    pub amount: String,
    pub status_label: String,
    pub provider_ref: String,
    pub transaction_no: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefundRow {
    pub id: i32,
    pub out_refund_no: String,
    pub amount: String,
    pub reason: String,
    pub status: i32,
    pub status_label: String,
    pub provider_ref: String,
    pub created_at: String,
    /// Recorded but never sent (e.g. a payment without stock): a 提交退款 button,
    /// POST /admin/orders/{order}/refunds/{id}/submit.
    pub submittable: bool,
}

/// One line of the order's timeline: a status change, a notification or call, a refund.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub at: String,
    /// `event`, `notify`, `webhook`, `query`, `create`, `close`, `refund`…
    pub kind: String,
    /// The kind in words (支付通知, 查询支付, 状态/操作…).
    pub kind_label: String,
    pub title: String,
    pub actor: String,
    pub detail: String,
    /// Inbound/outbound logs only: the signature headers (folded away with the body),
    /// the raw body (shown escaped in a <pre>), verification,
    /// and the reply sent.
    pub headers: String,
    pub raw: Option<String>,
    pub verified: Option<bool>,
    pub reply: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OrderDetailPage {
    pub layout: AdminLayout,
    pub order: AdminOrderRow,
    pub user_id: i32,
    pub transaction_no: String,
    pub expires_at: String,
    pub closed_at: String,
    pub lines: Vec<LineView>,
    pub address: Option<AddressView>,
    pub attempts: Vec<AttemptRow>,
    pub refunds: Vec<RefundRow>,
    pub timeline: Vec<TimelineEntry>,
    /// Actions, each a POST form with `csrf` to `/admin/orders/{id}/…`:
    /// `query` (重新查询), `close` (关闭订单), `deliver` (标记发货),
    /// `refund` (fields: amount in yuan, reason, out_refund_no hidden).
    pub can_close: bool,
    pub can_deliver: bool,
    pub can_refund: bool,
    /// Still refundable, e.g. `¥12.30` (for the refund form's hint and default).
    pub refundable: String,
    pub refundable_yuan: String,
    /// Made at render: a resubmitted form is the same refund.
    pub out_refund_no: String,
    /// The refund form as typed, with errors (`amount`, `reason`, `confirm`: the required
    /// 确认 checkbox, so a refund is never one stray click, with or without JS).
    pub refund_form: Form,
    /// The 发货 form (`carrier` from `carriers`, `tracking_no`) as typed, with errors.
    pub ship_form: Form,
    pub carriers: Vec<Choice>,
    /// The parcel sent, once shipped.
    pub shipment: Option<ShipmentView>,
    /// A refund is on its way (待提交 / 退款中): the page polls
    /// `/admin/orders/{id}/refunds.json` (`static/js/refundpoll.js`) until it ends.
    pub refund_in_progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShipmentView {
    pub carrier: String,
    pub tracking_no: String,
    pub actor: String,
    pub created_at: String,
    /// WeChat's 发货信息管理 for a mini-program order: what came of the upload (None: not
    /// paid in the mini-program), whether it is a problem, and WeChat's last error.
    pub upload: Option<String>,
    pub upload_problem: bool,
    pub upload_error: Option<String>,
}

/// `/admin/orders/{id}/refunds.json`: the order's status and each refund's, for the polling
/// script of the order page.
#[derive(Debug, Clone, Serialize)]
pub struct RefundProgress {
    pub status_label: String,
    pub in_progress: bool,
    pub refunds: Vec<RefundRow>,
}
page!(OrderDetailPage, "admin/order.html");

#[derive(Debug, Clone, Serialize)]
pub struct PayLogRow {
    pub id: i32,
    pub at: String,
    pub provider: String,
    pub kind: String,
    pub out_trade_no: String,
    /// Link to `/admin/orders/{order_id}` when known.
    pub order_id: Option<i32>,
    pub verified: bool,
    pub outcome: String,
    pub remote_addr: String,
    pub raw: String,
    pub reply: String,
}

/// `/admin/paylog`: GET form `#paylog-filter` with provider, verified (yes/no), outcome.
#[derive(Debug, Serialize)]
pub struct PayLogPage {
    pub layout: AdminLayout,
    pub filter: Form,
    pub providers: Vec<Choice>,
    pub verified: Vec<Choice>,
    pub rows: Vec<PayLogRow>,
    pub page: i64,
    pub pages: i64,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
}
page!(PayLogPage, "admin/paylog.html");

#[derive(Debug, Clone, Serialize)]
pub struct AdminProductRow {
    pub id: i32,
    pub name: String,
    pub price: String,
    pub stock: i32,
    pub main_img_url: String,
    pub on_sale: bool,
}

/// `/admin/products`: the list, each with an edit link `/admin/products/{id}/edit` and a
/// stock form POST `/admin/products/{id}/stock` (field `delta`, may be negative).
#[derive(Debug, Serialize)]
pub struct ProductsPage {
    pub layout: AdminLayout,
    pub products: Vec<AdminProductRow>,
    /// A stock change that was refused, by product id.
    pub stock_error: Option<String>,
}
page!(ProductsPage, "admin/products.html");

/// Create (`/admin/products/new`) or edit (`/admin/products/{id}/edit`): POST to `action`
/// with name, price (yuan), main_img_url, summary, on_sale (checkbox, value "1"), and for a
/// new product `stock`.
#[derive(Debug, Serialize)]
pub struct ProductFormPage {
    pub layout: AdminLayout,
    pub title: String,
    pub action: String,
    pub is_new: bool,
    pub form: Form,
    /// Images under /static/img/products the form can offer.
    pub images: Vec<String>,
}
page!(ProductFormPage, "admin/product_form.html");

/// What a `pay_log` kind is, in the admin's words.
pub fn log_kind_words(kind: &str) -> &str {
    match kind {
        "notify" => "支付通知",
        "webhook" => "支付通知（Webhook）",
        "query" => "查询支付",
        "create" => "创建支付",
        "close" => "关闭支付单",
        "refund" => "发起退款",
        "refund_notify" => "退款通知",
        "refund_query" => "查询退款",
        other => other,
    }
}

/// What came of a logged message or call, in the admin's words; an outcome with details
/// (`unreadable: …`) keeps them after the words, an unknown one is shown as it is.
pub fn outcome_words(outcome: &str) -> String {
    let (code, rest) = match outcome.split_once(':') {
        Some((c, r)) => (c, r.trim()),
        None => (outcome, ""),
    };
    let words = match code {
        "paid" | "success" => "支付成功",
        "late_paid" => "关闭后到账（已恢复订单）",
        "paid_out_of_stock" => "关闭后到账，缺货待退款",
        "paid_twice" => "重复支付（多付部分自动退款）",
        "duplicate" => "重复通知（已忽略）",
        "unknown_trade" => "未知的商户单号",
        "amount_mismatch" => "金额不符（已拒绝）",
        "bad_signature" => "验签失败",
        "bad_input" | "malformed" | "unreadable" => "报文无法解析",
        "bad_out_trade_no" => "商户单号无效",
        "bad_req_info" => "退款通知解密失败",
        "wrong_app" => "应用 ID 不符",
        "wrong_merchant" => "商户号不符",
        "wrong_currency" => "币种不符",
        "wrong_mode" => "测试/正式模式不符",
        "unknown_type" => "未知的通知类型",
        "not_paid" => "平台显示未支付",
        "closed" => "已关闭",
        "prepared" => "已下单，等待支付",
        "failed" | "error" => "失败",
        "refunded" => "退款成功",
        "refund_accepted" | "refund_processing" => "退款受理中",
        "refund_failed" => "退款失败",
        "refund_duplicate" => "重复退款通知（已忽略）",
        "refund_not_succeeded" => "退款未成功",
        "unknown_refund" => "未知的退款单",
        "unknown_ended" => "平台查无此单，已停止查询",
        _ => return outcome.to_string(),
    };
    if rest.is_empty() {
        words.to_string()
    } else {
        format!("{words}：{rest}")
    }
}

/// What an `order_event` kind is, in the admin's words.
pub fn event_words(kind: &str) -> &str {
    match kind {
        "placed" => "下单",
        "paid" => "支付成功",
        "late_paid" => "关闭后到账",
        "paid_out_of_stock" => "关闭后到账，缺货",
        "paid_twice" => "重复支付",
        "closed" => "订单关闭",
        "delivered" => "发货",
        "refund_requested" => "申请退款",
        "refund_submitted" => "提交退款",
        "refunded" => "退款到账",
        "refund_failed" => "退款失败",
        "refund_abnormal" => "退款异常",
        "admin_query" => "管理员查询支付",
        other => other,
    }
}

/// One platform's reconciliation of a day, as the 对账 page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReconRunRow {
    pub provider: String,
    /// `done`, `not_ready`, `failed`; `status_label` in Chinese.
    pub status: String,
    pub status_label: String,
    pub payments: i32,
    pub payment_total: String,
    pub refunds: i32,
    pub refund_total: String,
    pub fees: String,
    pub differences: i32,
    pub error: Option<String>,
    pub finished_at: String,
}

/// One difference found by the reconciliation.
#[derive(Debug, Clone, Serialize)]
pub struct ReconDiffRow {
    pub id: i32,
    pub provider: String,
    pub kind: String,
    pub kind_label: String,
    pub order_id: Option<i32>,
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub shop_value: String,
    pub platform_value: String,
    /// `applied` (补单) or `alarm`.
    pub action: String,
    pub resolved: Option<String>,
}

/// `/admin/reconcile?date=`: a day's runs per platform and their differences.
#[derive(Debug, Serialize)]
pub struct ReconPage {
    pub layout: AdminLayout,
    pub date: String,
    pub runs: Vec<ReconRunRow>,
    pub diffs: Vec<ReconDiffRow>,
    /// Earlier days with a run, newest first (links).
    pub days: Vec<String>,
    pub csv_url: String,
    /// The platforms whose bills are fetched.
    pub providers: Vec<String>,
}
page!(ReconPage, "admin/reconcile.html");

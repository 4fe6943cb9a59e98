//! `POST /api/v1/order`, `GET /api/v1/order/{id}`, `GET /api/v1/order/by_user`.

use super::{shopper, IdPath};
use crate::controllers::db;
use crate::controllers::error::{ApiError, ApiErrorJson};
use crate::controllers::session::ApiUser;
use crate::domain::format_shanghai;
use crate::models::order::OrderLine;
use crate::models::Order;
use crate::services::order::{self as orders, LineStatus, Placement, SnapAddress};
use crate::services::ServiceError;
use crate::startup::AppState;
use crate::validators::PlaceOrderBody;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

/// The answer to an order request: placed, or refused whole because stock ran short.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PlacementJson {
    Placed(PlacedJson),
    OutOfStock(ShortageJson),
}

/// `pass: true`: the order is placed and holds its stock.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlacedJson {
    order_no: String,
    order_id: i32,
    /// Shanghai time, `YYYY-MM-DD HH:MM:SS`.
    create_time: String,
    pass: bool,
}

/// `pass: false`, `order_id: -1`: nothing was written; the lines say which ran short.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShortageJson {
    pass: bool,
    #[serde(rename = "order_id")]
    order_id: i32,
    /// Fen.
    order_price: i64,
    total_count: i64,
    p_status_array: Vec<LineStatus>,
}

/// Places an order against real stock.
#[utoipa::path(
    post,
    path = "/api/v1/order",
    operation_id = "order_place",
    tag = "order",
    request_body = PlaceOrderBody,
    security(("token" = [])),
    responses(
        (status = 200, description = "placed, or refused for stock (`pass`)", body = PlacementJson),
        (status = 400, description = "10000: the lines in error, by name", body = ApiErrorJson),
        (status = 403, description = "10002: not a shopper's token", body = ApiErrorJson),
        (
            status = 404,
            description = "60001: no address; 80001: a product unknown or off sale",
            body = ApiErrorJson,
        ),
    ),
)]
pub async fn place(
    state: web::Data<AppState>,
    user: ApiUser,
    body: web::Json<PlaceOrderBody>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let cmd = body.validate().map_err(ServiceError::Invalid)?;
    let timeout = state.config.order_timeout_minutes;
    let answer = match db(&state, move |c| orders::place(c, uid, &cmd, timeout)).await? {
        Placement::Placed(p) => {
            state.metrics.orders_placed.inc();
            PlacementJson::Placed(PlacedJson {
                order_no: p.order_no,
                order_id: p.order_id,
                create_time: format_shanghai(p.created_at),
                pass: true,
            })
        }
        Placement::OutOfStock(s) => PlacementJson::OutOfStock(ShortageJson {
            pass: false,
            order_id: -1,
            order_price: s.order_price.fen(),
            total_count: s.total_count,
            p_status_array: s.lines,
        }),
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// An order in a list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderSummaryJson {
    id: i32,
    order_no: String,
    /// 1 unpaid, 2 paid, 3 delivered, 4 paid but out of stock, 5 closed, 6 refunded,
    /// 7 partially refunded.
    status: i32,
    /// Fen.
    total_price: i64,
    total_count: i32,
    snap_name: String,
    snap_img: String,
    create_time: String,
}

impl From<&Order> for OrderSummaryJson {
    fn from(o: &Order) -> Self {
        OrderSummaryJson {
            id: o.id,
            order_no: o.order_no.clone(),
            status: o.status,
            total_price: o.total_price,
            total_count: o.total_count,
            snap_name: o.snap_name.clone(),
            snap_img: o.snap_img.clone(),
            create_time: format_shanghai(o.created_at),
        }
    }
}

/// An order with its snapshot: lines and address as they were when it was placed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderDetailJson {
    #[serde(flatten)]
    summary: OrderSummaryJson,
    snap_items: Vec<OrderLine>,
    #[schema(required = true)]
    snap_address: Option<SnapAddress>,
    expires_at: String,
    #[schema(required = true)]
    pay_name: Option<String>,
    #[schema(required = true)]
    paid_at: Option<String>,
}

/// One of the caller's orders.
#[utoipa::path(
    get,
    path = "/api/v1/order/{id}",
    operation_id = "order_detail",
    tag = "order",
    params(IdPath),
    security(("token" = [])),
    responses(
        (status = 200, description = "the order", body = OrderDetailJson),
        (status = 403, description = "10003: another user's order", body = ApiErrorJson),
        (status = 404, description = "80000: no such order", body = ApiErrorJson),
    ),
)]
pub async fn detail(
    state: web::Data<AppState>,
    user: ApiUser,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.id()?;
    let uid = user.id;
    let o = db(&state, move |c| orders::owned(c, uid, id)).await?;
    Ok(HttpResponse::Ok().json(OrderDetailJson {
        summary: OrderSummaryJson::from(&o),
        snap_items: orders::snap_items(&o),
        snap_address: orders::snap_address(&o),
        expires_at: format_shanghai(o.expires_at),
        pay_name: o.pay_name,
        paid_at: o.paid_at.map(format_shanghai),
    }))
}

/// `?page=&size=`, read as text so that `abc` gets error 10000 with a message.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based (default 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    page: Option<String>,
    /// Orders per page (default 15).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 50)]
    size: Option<String>,
}

/// A page of the caller's orders.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderPageJson {
    current_page: i64,
    total: i64,
    data: Vec<OrderSummaryJson>,
}

/// The caller's orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/order/by_user",
    operation_id = "order_by_user",
    tag = "order",
    params(PageQuery),
    security(("token" = [])),
    responses(
        (status = 200, description = "one page", body = OrderPageJson),
    ),
)]
pub async fn by_user(
    state: web::Data<AppState>,
    user: ApiUser,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let num = |v: &Option<String>, default: i64| -> Result<i64, ServiceError> {
        match v {
            None => Ok(default),
            Some(s) => s
                .parse()
                .map_err(|_| ServiceError::field("page", "page 和 size 必须是正整数")),
        }
    };
    let page = num(&q.page, 1)?;
    let size = num(&q.size, 15)?;
    let uid = user.id;
    let (rows, total) = db(&state, move |c| orders::page_of_user(c, uid, page, size)).await?;
    Ok(HttpResponse::Ok().json(OrderPageJson {
        current_page: page,
        total,
        data: rows.iter().map(OrderSummaryJson::from).collect(),
    }))
}

//! `POST /api/v1/order`, `GET /api/v1/order/{id}`, `GET /api/v1/order/by_user`.

use super::shopper;
use crate::controllers::db;
use crate::controllers::error::ApiError;
use crate::controllers::session::ApiUser;
use crate::domain::format_shanghai;
use crate::models::Order;
use crate::services::order::{self as orders, Placement};
use crate::services::ServiceError;
use crate::startup::AppState;
use crate::validators;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn place(
    state: web::Data<AppState>,
    user: ApiUser,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let cmd = validators::place_order(&body).map_err(ServiceError::Invalid)?;
    let timeout = state.config.order_timeout_minutes;
    let answer = match db(&state, move |c| orders::place(c, uid, &cmd, timeout)).await? {
        Placement::Placed(p) => {
            state.metrics.orders_placed.inc();
            json!({
            "order_no": p.order_no,
            "order_id": p.order_id,
            "create_time": format_shanghai(p.created_at),
            "pass": true,
            })
        }
        Placement::OutOfStock(s) => json!({
            "pass": false,
            "order_id": -1,
            "orderPrice": s.order_price.fen(),
            "totalCount": s.total_count,
            "pStatusArray": s.lines,
        }),
    };
    Ok(HttpResponse::Ok().json(answer))
}

fn summary(o: &Order) -> Value {
    json!({
        "id": o.id,
        "order_no": o.order_no,
        "status": o.status,
        "total_price": o.total_price,
        "total_count": o.total_count,
        "snap_name": o.snap_name,
        "snap_img": o.snap_img,
        "create_time": format_shanghai(o.created_at),
    })
}

pub async fn detail(
    state: web::Data<AppState>,
    user: ApiUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i32 = path
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ServiceError::field("id", "id 必须是正整数"))?;
    let uid = user.id;
    let o = db(&state, move |c| orders::owned(c, uid, id)).await?;
    let mut v = summary(&o);
    v["snap_items"] = serde_json::to_value(orders::snap_items(&o)).unwrap_or(Value::Null);
    v["snap_address"] = serde_json::to_value(orders::snap_address(&o)).unwrap_or(Value::Null);
    v["expires_at"] = json!(format_shanghai(o.expires_at));
    v["pay_name"] = json!(o.pay_name);
    v["paid_at"] = json!(o.paid_at.map(format_shanghai));
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<String>,
    size: Option<String>,
}

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
    Ok(HttpResponse::Ok().json(json!({
        "current_page": page,
        "total": total,
        "data": rows.iter().map(summary).collect::<Vec<_>>(),
    })))
}

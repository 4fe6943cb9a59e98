//! `GET /api/v1/product/{id}` and `GET /api/v1/product/recent?count=`.

use super::IdPath;
use crate::controllers::db;
use crate::controllers::error::{ApiError, ApiErrorJson};
use crate::models::Product;
use crate::services::{catalog, ServiceError};
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

/// A product as the mini-program sees it; price in fen.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProductJson {
    id: i32,
    name: String,
    /// Fen.
    price: i64,
    stock: i32,
    main_img_url: String,
    summary: String,
}

impl From<Product> for ProductJson {
    fn from(p: Product) -> Self {
        ProductJson {
            id: p.id,
            name: p.name,
            price: p.price,
            stock: p.stock,
            main_img_url: p.main_img_url,
            summary: p.summary,
        }
    }
}

/// One product on sale.
#[utoipa::path(
    get,
    path = "/api/v1/product/{id}",
    operation_id = "product_one",
    tag = "product",
    params(IdPath),
    responses(
        (status = 200, description = "the product", body = ProductJson),
        (status = 404, description = "80001: unknown or off sale", body = ApiErrorJson),
    ),
)]
pub async fn one(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.id()?;
    let p = db(&state, move |c| catalog::product(c, id)).await?;
    Ok(HttpResponse::Ok().json(ProductJson::from(p)))
}

/// `?count=`, read as text so that `abc` gets error 10000 with a message.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentQuery {
    /// How many (default 15).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 15)]
    count: Option<String>,
}

/// The newest products on sale.
#[utoipa::path(
    get,
    path = "/api/v1/product/recent",
    operation_id = "product_recent",
    tag = "product",
    params(RecentQuery),
    responses(
        (status = 200, description = "newest first", body = Vec<ProductJson>),
    ),
)]
pub async fn recent(
    state: web::Data<AppState>,
    q: web::Query<RecentQuery>,
) -> Result<HttpResponse, ApiError> {
    let count: i64 = match &q.count {
        None => 15,
        Some(s) => s
            .parse()
            .map_err(|_| ServiceError::field("count", "count 必须是 1 到 15 之间的整数"))?,
    };
    let list = db(&state, move |c| catalog::recent(c, count)).await?;
    Ok(HttpResponse::Ok().json(list.into_iter().map(ProductJson::from).collect::<Vec<_>>()))
}

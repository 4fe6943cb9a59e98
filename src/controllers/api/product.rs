//! `GET /api/v1/product/{id}` and `GET /api/v1/product/recent?count=`.

use crate::controllers::db;
use crate::controllers::error::ApiError;
use crate::models::Product;
use crate::services::{catalog, ServiceError};
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

/// A product as the mini-program sees it; price in fen.
#[derive(Serialize)]
pub struct ProductJson {
    id: i32,
    name: String,
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

pub async fn one(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i32 = path
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ServiceError::field("id", "id 必须是正整数"))?;
    let p = db(&state, move |c| catalog::product(c, id)).await?;
    Ok(HttpResponse::Ok().json(ProductJson::from(p)))
}

#[derive(Deserialize)]
pub struct RecentQuery {
    count: Option<String>,
}

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

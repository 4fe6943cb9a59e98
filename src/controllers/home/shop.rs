//! Home page and product page.

use super::product_card;
use crate::controllers::error::PageError;
use crate::controllers::session::{Cart, Session};
use crate::controllers::{db, layout, render};
use crate::services::catalog;
use crate::startup::AppState;
use crate::views::{HomePage, ProductPage};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /?q=`: the products on sale, or those whose name contains `q`.
pub async fn index(
    state: web::Data<AppState>,
    session: Session,
    cart: Cart,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, PageError> {
    let term = q.q.trim().to_string();
    let t = term.clone();
    let products = db(&state, move |c| catalog::search(c, &t)).await?;
    render(
        &state,
        &HomePage {
            layout: layout(&session, &cart),
            products: products.iter().map(product_card).collect(),
            query: term,
        },
    )
}

pub async fn goods(
    state: web::Data<AppState>,
    session: Session,
    cart: Cart,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id: i32 = path
        .parse()
        .map_err(|_| PageError::not_found("商品不存在"))?;
    let product = db(&state, move |c| catalog::product(c, id)).await?;
    render(
        &state,
        &ProductPage {
            layout: layout(&session, &cart),
            product: product_card(&product),
        },
    )
}

//! The cart, kept in a cookie: view, add, change.

use crate::controllers::error::PageError;
use crate::controllers::session::{Cart, Session};
use crate::controllers::{csrf_form, db, layout, render, see_other};
use crate::domain::Money;
use crate::services::{catalog, ServiceError};
use crate::startup::AppState;
use crate::views::{CartPage, LineView};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

/// Stock at or below which a line says 仅剩 N 件.
const LOW_STOCK: i32 = 10;

/// The cart's lines with current prices, and the total of the available ones.
pub async fn priced_lines(
    state: &AppState,
    cart: &Cart,
) -> Result<(Vec<LineView>, Money), ServiceError> {
    let ids: Vec<i32> = cart.lines.iter().map(|(id, _)| *id).collect();
    let products = db(state, move |c| catalog::many(c, &ids)).await?;
    let mut total = Money::ZERO;
    let mut lines = Vec::new();
    for (id, count) in &cart.lines {
        let Some(p) = products.iter().find(|p| p.id == *id) else {
            continue;
        };
        let line_total = Money::from_fen(p.price).checked_mul(i64::from(*count))?;
        let available = p.on_sale && p.stock >= *count;
        let warning = if !p.on_sale {
            Some("已下架".to_string())
        } else if p.stock <= 0 {
            Some("已售罄".to_string())
        } else if p.stock < *count {
            Some(format!("库存不足，仅剩 {} 件", p.stock))
        } else if p.stock <= LOW_STOCK {
            Some(format!("仅剩 {} 件", p.stock))
        } else {
            None
        };
        if available {
            total = total.checked_add(line_total)?;
        }
        lines.push(LineView {
            id: p.id,
            name: p.name.clone(),
            main_img_url: p.main_img_url.clone(),
            price: Money::from_fen(p.price).to_string(),
            count: *count,
            line_total: line_total.to_string(),
            available,
            max_count: p.stock.clamp(0, 999),
            warning,
        });
    }
    Ok((lines, total))
}

pub async fn view(
    state: web::Data<AppState>,
    session: Session,
    cart: Cart,
) -> Result<HttpResponse, PageError> {
    let (lines, total) = priced_lines(&state, &cart).await?;
    render(
        &state,
        &CartPage {
            layout: layout(&session, &cart),
            blocked: lines.iter().any(|l| !l.available),
            lines,
            total: total.to_string(),
        },
    )
}

#[derive(Deserialize)]
struct LineForm {
    product_id: i32,
    count: i32,
}

fn line_form(session: &Session, body: &[u8]) -> Result<LineForm, PageError> {
    let f: LineForm = csrf_form(session, body)?;
    if f.product_id > 0 && (0..=999).contains(&f.count) {
        Ok(f)
    } else {
        Err(PageError::bad_request("数量必须是 0 到 999 之间的整数"))
    }
}

pub async fn add(
    state: web::Data<AppState>,
    session: Session,
    mut cart: Cart,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = line_form(&session, &body)?;
    let id = form.product_id;
    db(&state, move |c| catalog::product(c, id)).await?;
    cart.add(form.product_id, form.count.max(1));
    let mut res = see_other("/home/cart");
    res.add_cookie(&cart.cookie())
        .map_err(PageError::internal)?;
    Ok(res)
}

pub async fn update(
    session: Session,
    mut cart: Cart,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = line_form(&session, &body)?;
    cart.set(form.product_id, form.count);
    let mut res = see_other("/home/cart");
    res.add_cookie(&cart.cookie())
        .map_err(PageError::internal)?;
    Ok(res)
}

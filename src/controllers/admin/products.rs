//! `/admin/products`: list, create, edit; stock changes are deltas applied with a
//! conditional update, never overwrites that race with orders.

use super::layout;
use crate::controllers::error::PageError;
use crate::controllers::session::Admin;
use crate::controllers::{csrf_form, db, render_status, see_other};
use crate::domain::Money;
use crate::models::now;
use crate::models::product::{self, NewProduct, ProductChanges};
use crate::services::ServiceError;
use crate::startup::AppState;
use crate::views::admin::{AdminProductRow, NavSection, ProductFormPage, ProductsPage};
use crate::views::Form;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::collections::BTreeMap;

async fn list_page(
    state: &AppState,
    who: &Admin,
    stock_error: Option<String>,
    flash: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let all = db(state, |c| Ok(product::all(c)?)).await?;
    let page = ProductsPage {
        layout: layout(state, who, NavSection::Products, flash).await?,
        products: all
            .into_iter()
            .map(|p| AdminProductRow {
                id: p.id,
                name: p.name,
                price: Money::from_fen(p.price).to_string(),
                stock: p.stock,
                main_img_url: p.main_img_url,
                on_sale: p.on_sale,
            })
            .collect(),
        stock_error,
    };
    render_status(state, &page, status)
}

#[derive(Deserialize)]
pub struct SavedQuery {
    done: Option<String>,
}

/// The confirmation shown after a save (`?done=…` on the redirect).
fn saved_message(code: &str) -> Option<String> {
    Some(
        match code {
            "created" => "商品已创建",
            "saved" => "商品已保存",
            "stock" => "库存已更新",
            _ => return None,
        }
        .to_string(),
    )
}

pub async fn list(
    state: web::Data<AppState>,
    who: Admin,
    q: web::Query<SavedQuery>,
) -> Result<HttpResponse, PageError> {
    let flash = q.done.as_deref().and_then(saved_message);
    list_page(&state, &who, None, flash, StatusCode::OK).await
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ProductForm {
    name: String,
    price: String,
    main_img_url: String,
    summary: String,
    on_sale: Option<String>,
    stock: String,
}

/// A checked product form.
struct ProductFields {
    name: String,
    price: Money,
    main_img_url: String,
    summary: String,
    on_sale: bool,
    stock: i32,
}

impl ProductForm {
    fn values(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("name".into(), self.name.clone()),
            ("price".into(), self.price.clone()),
            ("main_img_url".into(), self.main_img_url.clone()),
            ("summary".into(), self.summary.clone()),
            ("on_sale".into(), self.on_sale.clone().unwrap_or_default()),
            ("stock".into(), self.stock.clone()),
        ])
    }

    fn check(&self, is_new: bool) -> Result<ProductFields, BTreeMap<String, String>> {
        let mut e = BTreeMap::new();
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 80 {
            e.insert("name".into(), "商品名称为 1 到 80 个字".into());
        }
        let price = Money::parse_yuan(&self.price).ok().filter(|m| m.fen() > 0);
        if price.is_none() {
            e.insert(
                "price".into(),
                "价格为大于 0 的金额（元，最多两位小数）".into(),
            );
        }
        let img = self.main_img_url.trim().to_string();
        if !img.starts_with("/static/") || img.contains("..") || img.len() > 255 {
            e.insert(
                "main_img_url".into(),
                "图片地址须为 /static/ 下的文件".into(),
            );
        }
        if self.summary.chars().count() > 255 {
            e.insert("summary".into(), "简介最多 255 个字".into());
        }
        let stock = if is_new {
            match self.stock.trim().parse::<i32>() {
                Ok(n) if (0..=1_000_000).contains(&n) => n,
                _ => {
                    e.insert("stock".into(), "库存为 0 到 1000000 的整数".into());
                    0
                }
            }
        } else {
            0
        };
        match (e.is_empty(), price) {
            (true, Some(price)) => Ok(ProductFields {
                name,
                price,
                main_img_url: img,
                summary: self.summary.trim().to_string(),
                on_sale: self.on_sale.as_deref() == Some("1"),
                stock,
            }),
            _ => Err(e),
        }
    }
}

fn images() -> Vec<String> {
    (1..=8)
        .map(|i| format!("/static/img/products/p{i}.svg"))
        .collect()
}

async fn form_page(
    state: &AppState,
    who: &Admin,
    id: Option<i32>,
    form: Form,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let page = ProductFormPage {
        layout: layout(state, who, NavSection::Products, None).await?,
        title: if id.is_some() {
            "编辑商品"
        } else {
            "新增商品"
        }
        .into(),
        action: id.map_or("/admin/products/new".into(), |i| {
            format!("/admin/products/{i}/edit")
        }),
        is_new: id.is_none(),
        form,
        images: images(),
    };
    render_status(state, &page, status)
}

pub async fn new_form(state: web::Data<AppState>, who: Admin) -> Result<HttpResponse, PageError> {
    let values = BTreeMap::from([
        ("on_sale".to_string(), "1".to_string()),
        ("stock".to_string(), "0".to_string()),
        (
            "main_img_url".to_string(),
            "/static/img/placeholder.svg".to_string(),
        ),
    ]);
    form_page(
        &state,
        &who,
        None,
        Form {
            values,
            errors: BTreeMap::new(),
        },
        StatusCode::OK,
    )
    .await
}

pub async fn create(
    state: web::Data<AppState>,
    who: Admin,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: ProductForm = csrf_form(&who.session, &body)?;
    match form.check(true) {
        Ok(p) => {
            db(&state, move |c| {
                let t = now();
                product::insert(
                    c,
                    &NewProduct {
                        name: &p.name,
                        price: p.price.fen(),
                        stock: p.stock,
                        main_img_url: &p.main_img_url,
                        summary: &p.summary,
                        on_sale: p.on_sale,
                        created_at: t,
                        updated_at: t,
                    },
                )?;
                Ok(())
            })
            .await?;
            Ok(see_other("/admin/products?done=created"))
        }
        Err(errors) => {
            let f = Form {
                values: form.values(),
                errors,
            };
            form_page(&state, &who, None, f, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

pub async fn edit_form(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    let id = *path;
    let p = db(&state, move |c| {
        product::find(c, id)?.ok_or(ServiceError::ProductNotFound(id))
    })
    .await?;
    let values = BTreeMap::from([
        ("name".to_string(), p.name),
        ("price".to_string(), Money::from_fen(p.price).yuan()),
        ("main_img_url".to_string(), p.main_img_url),
        ("summary".to_string(), p.summary),
        (
            "on_sale".to_string(),
            if p.on_sale { "1" } else { "" }.to_string(),
        ),
    ]);
    form_page(
        &state,
        &who,
        Some(id),
        Form {
            values,
            errors: BTreeMap::new(),
        },
        StatusCode::OK,
    )
    .await
}

pub async fn update(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<i32>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: ProductForm = csrf_form(&who.session, &body)?;
    let id = *path;
    match form.check(false) {
        Ok(p) => {
            let found = db(&state, move |c| {
                Ok(product::update(
                    c,
                    id,
                    &ProductChanges {
                        name: &p.name,
                        price: p.price.fen(),
                        main_img_url: &p.main_img_url,
                        summary: &p.summary,
                        on_sale: p.on_sale,
                        updated_at: now(),
                    },
                )?)
            })
            .await?;
            if !found {
                return Err(PageError::not_found("商品不存在"));
            }
            Ok(see_other("/admin/products?done=saved"))
        }
        Err(errors) => {
            let f = Form {
                values: form.values(),
                errors,
            };
            form_page(&state, &who, Some(id), f, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

#[derive(Deserialize)]
struct StockForm {
    #[serde(default)]
    delta: String,
}

pub async fn stock(
    state: web::Data<AppState>,
    who: Admin,
    path: web::Path<i32>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: StockForm = csrf_form(&who.session, &body)?;
    let id = *path;
    let delta = form
        .delta
        .trim()
        .trim_start_matches('+')
        .parse::<i32>()
        .ok()
        .filter(|d| *d != 0 && d.abs() <= 1_000_000);
    let Some(delta) = delta else {
        return list_page(
            &state,
            &who,
            Some(format!("商品 {id}：库存变化须为非零整数，如 +10 或 -3")),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    if db(&state, move |c| Ok(product::adjust_stock(c, id, delta)?)).await? {
        return Ok(see_other("/admin/products?done=stock"));
    }
    list_page(
        &state,
        &who,
        Some(format!("商品 {id}：库存不足，无法减少 {}", -delta)),
        None,
        StatusCode::CONFLICT,
    )
    .await
}

//! `POST /api/v1/address` (create or update) and `GET /api/v1/address`.

use super::shopper;
use crate::controllers::db;
use crate::controllers::error::ApiError;
use crate::controllers::session::ApiUser;
use crate::services::{account, ServiceError};
use crate::startup::AppState;
use crate::validators::AddressForm;
use actix_web::{web, HttpResponse};

pub async fn save(
    state: web::Data<AppState>,
    user: ApiUser,
    body: web::Json<AddressForm>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let cmd = body.validate().map_err(ServiceError::Invalid)?;
    db(&state, move |c| account::save_address(c, uid, &cmd)).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"msg": "ok", "error_code": 0})))
}

pub async fn get(state: web::Data<AppState>, user: ApiUser) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let a = db(&state, move |c| account::address(c, uid))
        .await?
        .ok_or(ServiceError::NoAddress)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "name": a.name, "mobile": a.mobile, "province": a.province,
        "city": a.city, "district": a.district, "detail": a.detail,
    })))
}

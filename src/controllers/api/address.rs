//! `POST /api/v1/address` (create or update) and `GET /api/v1/address`.

use super::shopper;
use crate::controllers::db;
use crate::controllers::error::{ApiError, ApiErrorJson};
use crate::controllers::session::ApiUser;
use crate::services::order::SnapAddress;
use crate::services::{account, ServiceError};
use crate::startup::AppState;
use crate::validators::AddressForm;
use actix_web::{web, HttpResponse};
use serde::Serialize;

/// The zerg shop's "done" answer: `{"msg":"ok","error_code":0}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DoneJson {
    msg: &'static str,
    error_code: u32,
}

/// Saves the shopper's one address (replacing the old one).
#[utoipa::path(
    post,
    path = "/api/v1/address",
    operation_id = "address_save",
    tag = "address",
    request_body = AddressForm,
    security(("token" = [])),
    responses(
        (status = 201, description = "saved", body = DoneJson),
        (status = 400, description = "10000: the fields in error, by name", body = ApiErrorJson),
        (status = 403, description = "10002: not a shopper's token", body = ApiErrorJson),
    ),
)]
pub async fn save(
    state: web::Data<AppState>,
    user: ApiUser,
    body: web::Json<AddressForm>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let cmd = body.validate().map_err(ServiceError::Invalid)?;
    db(&state, move |c| account::save_address(c, uid, &cmd)).await?;
    Ok(HttpResponse::Created().json(DoneJson {
        msg: "ok",
        error_code: 0,
    }))
}

/// The shopper's address.
#[utoipa::path(
    get,
    path = "/api/v1/address",
    operation_id = "address_get",
    tag = "address",
    security(("token" = [])),
    responses(
        (status = 200, description = "the address", body = SnapAddress),
        (status = 403, description = "10002: not a shopper's token", body = ApiErrorJson),
        (status = 404, description = "60001: no address yet", body = ApiErrorJson),
    ),
)]
pub async fn get(state: web::Data<AppState>, user: ApiUser) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let a = db(&state, move |c| account::address(c, uid))
        .await?
        .ok_or(ServiceError::NoAddress)?;
    Ok(HttpResponse::Ok().json(SnapAddress::from(a)))
}

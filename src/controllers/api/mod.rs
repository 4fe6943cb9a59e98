//! The mini-program JSON API (`/api/v1/...`, the zerg shop's routes and error shape).

pub mod address;
pub mod openapi;
pub mod order;
pub mod pay;
pub mod product;
pub mod token;

use super::error::ApiError;
use super::session::ApiUser;
use crate::domain::Scope;
use crate::services::ServiceError;
use serde::Deserialize;

/// Requires a shopper token (scope 16), as the zerg shop's `needExclusiveScope`.
pub fn shopper(user: ApiUser) -> Result<i32, ApiError> {
    match user.scope {
        Scope::User => Ok(user.id),
        Scope::Admin => Err(ServiceError::Forbidden.into()),
    }
}

/// `{id}` in a path, read as text so that `abc` or `0` gets error 10000 rather than a bare 404.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    #[param(value_type = i32, minimum = 1)]
    id: String,
}

impl IdPath {
    pub fn id(&self) -> Result<i32, ServiceError> {
        self.id
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ServiceError::field("id", "id 必须是正整数"))
    }
}

/// Turns actix's query string errors (a key given twice, say) into error 10000, in the API's
/// shape rather than actix's plain text.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(format!("参数格式错误：{err}")).into()
}

/// Turns actix's path errors (a segment that is not UTF-8 once decoded) into error 10000.
pub fn path_error(
    err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(format!("路径格式错误：{err}")).into()
}

/// Turns actix's JSON payload errors (bad syntax, wrong type, too large) into error 10000.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let e = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            10000,
            "请求体过大",
        ),
        E::ContentType => ApiError::bad_request("Content-Type 必须是 application/json"),
        other => ApiError::bad_request(format!("JSON 格式错误：{other}")),
    };
    e.into()
}

//! `POST /api/v1/token/user {code}`: a `wx.login` code in, a token out.

use crate::controllers::db;
use crate::controllers::error::{ApiError, ApiErrorJson};
use crate::payment::wechat::login;
use crate::services::{account, ServiceError};
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

/// `{code}`; `code` is read as any JSON so that a number or null gets error 10000.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CodeBody {
    /// What `wx.login` gave the mini-program (single use, five minutes).
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 128, required = true)]
    code: serde_json::Value,
}

/// The token to send as the `token` header.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenJson {
    token: String,
}

/// Trades a `wx.login` code for a token.
#[utoipa::path(
    post,
    path = "/api/v1/token/user",
    operation_id = "token_user",
    tag = "token",
    request_body = CodeBody,
    responses(
        (status = 200, description = "logged in", body = TokenJson),
        (
            status = 400,
            description = "10000: no code; 10004: WeChat refused the code",
            body = ApiErrorJson,
        ),
        (
            status = 502,
            description = "10004: WeChat's login service did not answer",
            body = ApiErrorJson,
        ),
    ),
)]
pub async fn user(
    state: web::Data<AppState>,
    body: web::Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let code = body.code.as_str().unwrap_or_default().trim().to_string();
    if code.is_empty() || code.len() > 128 || code.chars().any(char::is_control) {
        return Err(ServiceError::field("code", "code 不能为空").into());
    }
    let openid = login::code2session(
        &state.http,
        &state.wechat_login_base(),
        &state.config.wechat,
        &code,
    )
    .await
    .map_err(ServiceError::WechatLogin)?;
    let ttl = state.config.token_ttl_minutes;
    let token = db(&state, move |c| account::issue_token(c, &openid, ttl)).await?;
    Ok(HttpResponse::Ok().json(TokenJson { token }))
}

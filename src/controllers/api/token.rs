//! `POST /api/v1/token/user {code}`: a `wx.login` code in, a token out.

use crate::controllers::db;
use crate::controllers::error::ApiError;
use crate::payment::wechat::login;
use crate::services::{account, ServiceError};
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct CodeBody {
    #[serde(default)]
    code: serde_json::Value,
}

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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "token": token })))
}

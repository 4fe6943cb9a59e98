//! The sandbox's HTTP face (mounted only in sandbox mode). For now: the mini-program login
//! endpoint `sns/jscode2session`, as `api.weixin.qq.com` answers it.

use crate::sandbox::wxlogin;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use std::collections::HashMap;

pub async fn jscode2session(
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let answer = wxlogin::jscode2session(
        &state.config.wechat,
        get("appid"),
        get("secret"),
        get("js_code"),
        get("grant_type"),
    );
    // WeChat answers 200 with errcode in the body, whatever went wrong.
    HttpResponse::Ok().json(answer)
}

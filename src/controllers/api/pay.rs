//! `POST /api/v1/pay/pre_order` (WeChat JSAPI), `/pay/native` (WeChat NATIVE),
//! `/pay/pingpp` (a Ping++ charge for the mini-program) and `/pay/query` (ask the gateway).

use super::shopper;
use crate::controllers::db;
use crate::controllers::error::ApiError;
use crate::controllers::session::ApiUser;
use crate::domain::Channel;
use crate::services::pay::OrderRef;
use crate::services::{account, ServiceError};
use crate::startup::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct IdBody {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    channel: Value,
}

fn order_id(body: &IdBody) -> Result<i32, ServiceError> {
    body.id
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| ServiceError::field("id", "id 必须是正整数"))
}

async fn openid(state: &AppState, uid: i32) -> Result<String, ServiceError> {
    db(state, move |c| account::find(c, uid))
        .await?
        .and_then(|u| u.openid)
        .ok_or(ServiceError::Forbidden)
}

/// JSAPI parameters for `wx.requestPayment` (appId left out, as the zerg shop does).
pub async fn pre_order(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    body: web::Json<IdBody>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let id = order_id(&body)?;
    let open_id = openid(&state, uid).await?;
    let gw = state.gateway();
    let prepared = gw
        .prepare(
            OrderRef::Owned {
                user_id: uid,
                order_id: id,
            },
            Channel::WxJsapi,
            Some(open_id),
            crate::controllers::client_ip(&state, &req),
        )
        .await?;
    let p = gw
        .launch(&prepared, chrono::Utc::now().timestamp())
        .ok_or_else(|| {
            ServiceError::Internal("a JSAPI payment without launch parameters".into())
        })?;
    Ok(HttpResponse::Ok().json(json!({
        "timeStamp": p.time_stamp,
        "nonceStr": p.nonce_str,
        "package": p.package,
        "signType": p.sign_type,
        "paySign": p.pay_sign,
    })))
}

/// A WeChat NATIVE code_url for the order.
pub async fn native(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    body: web::Json<IdBody>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let id = order_id(&body)?;
    let prepared = state
        .gateway()
        .prepare(
            OrderRef::Owned {
                user_id: uid,
                order_id: id,
            },
            Channel::WxNative,
            None,
            crate::controllers::client_ip(&state, &req),
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "code_url": prepared.created.credential,
        "out_trade_no": prepared.attempt.out_trade_no,
    })))
}

/// A Ping++ `wx_lite` charge with its six-key credential. `wx_pub` needs the payer's
/// Official Account openid, and a mini-program user only has a mini-program one (the
/// platform refuses it: "appid and openid not match"), so it is refused here.
pub async fn pingpp(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    body: web::Json<IdBody>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let id = order_id(&body)?;
    let channel = match body.channel.as_str().and_then(Channel::parse) {
        Some(Channel::WxLite) => Channel::WxLite,
        Some(Channel::WxPub) => {
            return Err(ServiceError::field(
                "channel",
                "小程序内不能使用 wx_pub（需要公众号 openid），请使用 wx_lite",
            )
            .into())
        }
        _ => return Err(ServiceError::field("channel", "channel 只能是 wx_lite").into()),
    };
    let open_id = openid(&state, uid).await?;
    let prepared = state
        .gateway()
        .prepare(
            OrderRef::Owned {
                user_id: uid,
                order_id: id,
            },
            channel,
            Some(open_id),
            crate::controllers::client_ip(&state, &req),
        )
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(prepared.created.raw))
}

/// The client says it paid: ask the gateway (the client's word is never proof).
pub async fn query(
    state: web::Data<AppState>,
    user: ApiUser,
    body: web::Json<IdBody>,
) -> Result<HttpResponse, ApiError> {
    let uid = user.id;
    let id = order_id(&body)?;
    db(&state, move |c| crate::services::order::owned(c, uid, id)).await?;
    state.gateway().query_order(id).await?;
    let o = db(&state, move |c| crate::services::order::owned(c, uid, id)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "id": o.id,
        "status": o.status,
        "pay_name": o.pay_name,
    })))
}

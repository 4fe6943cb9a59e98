//! `POST /api/v1/pay/pre_order` (WeChat JSAPI), `/pay/native` (WeChat NATIVE),
//! `/pay/pingpp` (a Ping++ charge for the mini-program) and `/pay/query` (ask the gateway).

use super::shopper;
use crate::controllers::db;
use crate::controllers::error::{ApiError, ApiErrorJson};
use crate::controllers::session::ApiUser;
use crate::domain::Channel;
use crate::payment::pingpp::objects::Charge;
use crate::services::pay::OrderRef;
use crate::services::{account, ServiceError};
use crate::startup::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{id}`: the order. Read as any JSON so that "abc" or -1 gets error 10000.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct IdBody {
    #[serde(default)]
    #[schema(value_type = i32, minimum = 1, required = true)]
    id: Value,
}

/// `{id, channel}`: the order and the Ping++ channel.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChargeBody {
    #[serde(default)]
    #[schema(value_type = i32, minimum = 1, required = true)]
    id: Value,
    /// Only `wx_lite`: `wx_pub` needs an Official Account openid.
    #[serde(default)]
    #[schema(value_type = String, pattern = "^wx_lite$", required = true)]
    channel: Value,
}

fn order_id(id: &Value) -> Result<i32, ServiceError> {
    id.as_i64()
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

/// The signed parameters of `wx.requestPayment`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JsapiJson {
    /// Unix seconds, as text.
    time_stamp: String,
    nonce_str: String,
    /// `prepay_id=…`.
    package: String,
    sign_type: String,
    pay_sign: String,
}

/// A WeChat NATIVE payment: the QR's content and the trade number.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NativeJson {
    /// `weixin://…`.
    #[schema(required = true)]
    code_url: Option<String>,
    out_trade_no: String,
}

/// The order's status after asking the platform.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PayStatusJson {
    id: i32,
    /// The order's status, as `GET /api/v1/order/{id}` gives it.
    status: i32,
    #[schema(required = true)]
    pay_name: Option<String>,
}

/// What starting a payment answers besides its success.
#[derive(utoipa::IntoResponses)]
pub enum PayRefusals {
    #[response(
        status = 400,
        description = "10000: bad id (or channel); 80003: not payable (paid, closed)"
    )]
    BadRequest(ApiErrorJson),
    #[response(
        status = 403,
        description = "10002: not a shopper, or no openid; 10003: another user's order"
    )]
    Forbidden(ApiErrorJson),
    #[response(status = 404, description = "80000: no such order")]
    NotFound(ApiErrorJson),
    #[response(
        status = 502,
        description = "90000: the platform refused or did not answer"
    )]
    Platform(ApiErrorJson),
}

/// JSAPI parameters for `wx.requestPayment` (appId left out, as the zerg shop does).
#[utoipa::path(
    post,
    path = "/api/v1/pay/pre_order",
    operation_id = "pay_pre_order",
    tag = "pay",
    request_body = IdBody,
    security(("token" = [])),
    responses(
        (status = 200, description = "the parameters", body = JsapiJson),
        PayRefusals,
    ),
)]
pub async fn pre_order(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    body: web::Json<IdBody>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let id = order_id(&body.id)?;
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
    Ok(HttpResponse::Ok().json(JsapiJson {
        time_stamp: p.time_stamp,
        nonce_str: p.nonce_str,
        package: p.package,
        sign_type: p.sign_type,
        pay_sign: p.pay_sign,
    }))
}

/// A WeChat NATIVE code_url for the order.
#[utoipa::path(
    post,
    path = "/api/v1/pay/native",
    operation_id = "pay_native",
    tag = "pay",
    request_body = IdBody,
    security(("token" = [])),
    responses(
        (status = 200, description = "the QR's content", body = NativeJson),
        PayRefusals,
    ),
)]
pub async fn native(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    body: web::Json<IdBody>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let id = order_id(&body.id)?;
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
    Ok(HttpResponse::Ok().json(NativeJson {
        code_url: prepared.created.credential,
        out_trade_no: prepared.attempt.out_trade_no,
    }))
}

/// A Ping++ `wx_lite` charge with its six-key credential. `wx_pub` needs the payer's
/// Official Account openid, and a mini-program user only has a mini-program one (the
/// platform refuses it: "appid and openid not match"), so it is refused here. The charge is
/// passed on as Ping++ sent it.
#[utoipa::path(
    post,
    path = "/api/v1/pay/pingpp",
    operation_id = "pay_pingpp",
    tag = "pay",
    request_body = ChargeBody,
    security(("token" = [])),
    responses(
        (status = 200, description = "the Ping++ charge with its `credential`", body = Charge),
        PayRefusals,
    ),
)]
pub async fn pingpp(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    body: web::Json<ChargeBody>,
) -> Result<HttpResponse, ApiError> {
    let uid = shopper(user)?;
    let id = order_id(&body.id)?;
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
#[utoipa::path(
    post,
    path = "/api/v1/pay/query",
    operation_id = "pay_query",
    tag = "pay",
    request_body = IdBody,
    security(("token" = [])),
    responses(
        (status = 200, description = "the order's status now", body = PayStatusJson),
        (status = 403, description = "10003: another user's order", body = ApiErrorJson),
        (status = 404, description = "80000: no such order", body = ApiErrorJson),
        (status = 502, description = "90000: the platform did not answer", body = ApiErrorJson),
    ),
)]
pub async fn query(
    state: web::Data<AppState>,
    user: ApiUser,
    body: web::Json<IdBody>,
) -> Result<HttpResponse, ApiError> {
    let uid = user.id;
    let id = order_id(&body.id)?;
    db(&state, move |c| crate::services::order::owned(c, uid, id)).await?;
    state.gateway().query_order(id).await?;
    let o = db(&state, move |c| crate::services::order::owned(c, uid, id)).await?;
    Ok(HttpResponse::Ok().json(PayStatusJson {
        id: o.id,
        status: o.status,
        pay_name: o.pay_name,
    }))
}

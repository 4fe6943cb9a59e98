//! The one place where errors become HTTP.
//!
//! - The JSON API answers `{"msg","error_code","request_url"}` with a stable code (the zerg
//!   shop's shape). `ApiError::error_response` cannot see the request, so it attaches an
//!   `ApiErrorBody` and the `api_errors` middleware writes the body with the request's URL.
//! - Pages answer `error.html`, rendered by the `page_errors` middleware, which has the
//!   templates at hand; a missing login becomes a redirect to the login page.
//! - 5xx bodies are opaque; the cause chain goes to the log.

use super::session::{Cart, Session};
use crate::payment::wechat::login::LoginError;
use crate::services::ServiceError;
use crate::startup::AppState;
use crate::views::{ErrorPage, Layout};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

/// What the JSON API says about an error, before the request URL is known.
#[derive(Debug, Clone)]
pub struct ApiErrorBody {
    pub status: StatusCode,
    pub error_code: u32,
    pub msg: String,
}

/// The JSON API's error body on the wire (`error_code` 0 never appears here).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiErrorJson {
    /// What went wrong, in Chinese, for the shopper.
    pub msg: String,
    /// The stable code (`From<ServiceError>` below lists them).
    pub error_code: u32,
    /// Path and query of the request that failed.
    pub request_url: String,
}

/// An error of the JSON API.
#[derive(Debug)]
pub struct ApiError(pub ApiErrorBody);

impl ApiError {
    pub fn new(status: StatusCode, error_code: u32, msg: impl Into<String>) -> ApiError {
        ApiError(ApiErrorBody {
            status,
            error_code,
            msg: msg.into(),
        })
    }

    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, 10000, msg)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.error_code, self.0.msg)
    }
}

fn field_summary(errors: &crate::services::FieldErrors) -> String {
    errors
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use StatusCode as S;
        let (status, code, msg) = match &e {
            ServiceError::Invalid(errors) => (S::BAD_REQUEST, 10000, field_summary(errors)),
            ServiceError::TokenInvalid => (S::UNAUTHORIZED, 10001, "Token 已过期或无效".into()),
            ServiceError::Forbidden => (S::FORBIDDEN, 10002, "权限不够".into()),
            ServiceError::NotOwner => (S::FORBIDDEN, 10003, "订单与用户不匹配".into()),
            ServiceError::NoAddress => (S::NOT_FOUND, 60001, "用户收货地址不存在，下单失败".into()),
            ServiceError::OrderNotFound => (S::NOT_FOUND, 80000, "订单不存在".into()),
            ServiceError::OrderNotPayable(why) => (S::BAD_REQUEST, 80003, (*why).to_string()),
            ServiceError::Refused(why) => (S::CONFLICT, 80004, why.clone()),
            ServiceError::Gateway(m) => {
                log::error!("payment platform error: {m}");
                (
                    S::BAD_GATEWAY,
                    90000,
                    "支付平台暂时无法处理，请稍后再试".into(),
                )
            }
            ServiceError::ProductNotFound(id) => {
                (S::NOT_FOUND, 80001, format!("商品 {id} 不存在或已下架"))
            }
            ServiceError::BadCredentials => (S::UNAUTHORIZED, 10001, "用户名或密码错误".into()),
            // Fixed texts: the platform's words stay in the log.
            ServiceError::WechatLogin(e @ LoginError::Refused { .. }) => {
                log::warn!("wechat login: {e}");
                (S::BAD_REQUEST, 10004, "微信登录失败，请重新登录".into())
            }
            ServiceError::WechatLogin(e) => {
                log::error!("wechat login: {e}");
                (
                    S::BAD_GATEWAY,
                    10004,
                    "微信登录暂时不可用，请稍后再试".into(),
                )
            }
            ServiceError::Db(_) | ServiceError::Pool(_) | ServiceError::Internal(_) => {
                log::error!("internal error: {e:?}");
                (S::INTERNAL_SERVER_ERROR, 999, "服务器内部错误".into())
            }
        };
        ApiError::new(status, code, msg)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.0.status).finish();
        res.extensions_mut().insert(self.0.clone());
        res
    }
}

/// Writes the JSON body of every `ApiError`, with the URL of the request that failed.
pub async fn api_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let body = res.response().extensions().get::<ApiErrorBody>().cloned();
    let Some(b) = body else {
        return Ok(res.map_into_boxed_body());
    };
    let json = ApiErrorJson {
        msg: b.msg,
        error_code: b.error_code,
        request_url: res.request().uri().to_string(),
    };
    Ok(res.into_response(HttpResponse::build(b.status).json(json)))
}

/// An error of a server-rendered page.
#[derive(Debug)]
pub enum PageError {
    /// Not logged in: go to the login page and come back to `next` afterwards.
    LoginRequired { next: String },
    /// Not an admin: go to the admin login page.
    AdminLoginRequired { next: String },
    /// An error page with this status and message.
    Show {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone)]
struct PageErrorBody {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl PageError {
    pub fn not_found(message: impl Into<String>) -> PageError {
        PageError::Show {
            status: StatusCode::NOT_FOUND,
            title: "页面不存在",
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> PageError {
        PageError::Show {
            status: StatusCode::BAD_REQUEST,
            title: "请求有误",
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> PageError {
        PageError::Show {
            status: StatusCode::FORBIDDEN,
            title: "无法完成操作",
            message: message.into(),
        }
    }

    pub fn internal(cause: impl fmt::Debug) -> PageError {
        log::error!("internal error: {cause:?}");
        PageError::Show {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "服务器开小差了",
            message: "请稍后再试。".into(),
        }
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::LoginRequired { next } | PageError::AdminLoginRequired { next } => {
                write!(f, "login required for {next}")
            }
            PageError::Show {
                status, message, ..
            } => write!(f, "{status} {message}"),
        }
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::OrderNotFound | ServiceError::NotOwner => {
                PageError::not_found("订单编号错误")
            }
            ServiceError::ProductNotFound(id) => {
                PageError::not_found(format!("商品 {id} 不存在或已下架"))
            }
            ServiceError::Invalid(errors) => PageError::bad_request(field_summary(&errors)),
            ServiceError::Forbidden => PageError::forbidden("没有权限"),
            ServiceError::OrderNotPayable(why) => PageError::bad_request(why),
            ServiceError::Refused(why) => PageError::bad_request(why),
            other => PageError::internal(other),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::LoginRequired { .. } | PageError::AdminLoginRequired { .. } => {
                StatusCode::SEE_OTHER
            }
            PageError::Show { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PageError::LoginRequired { next } => login_redirect("/home/login", next),
            PageError::AdminLoginRequired { next } => login_redirect("/admin/login", next),
            PageError::Show {
                status,
                title,
                message,
            } => {
                let mut res = HttpResponse::build(*status).finish();
                res.extensions_mut().insert(PageErrorBody {
                    status: *status,
                    title,
                    message: message.clone(),
                });
                res
            }
        }
    }
}

fn login_redirect(login: &str, next: &str) -> HttpResponse {
    let next = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("{login}?{next}")))
        .finish()
}

/// Renders `error.html` for every `PageError`, and for bare 404s of unknown pages.
pub async fn page_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let body = res.response().extensions().get::<PageErrorBody>().cloned();
    let Some(b) = body else {
        return Ok(res.map_into_boxed_body());
    };
    let state = res.request().app_data::<web::Data<AppState>>().cloned();
    // The header still shows who is logged in and the cart (no new session is written).
    let layout = match Session::extract(res.request()).await {
        Ok(session) => {
            let cart = Cart::extract(res.request()).await.unwrap_or_default();
            super::layout(&session, &cart)
        }
        Err(_) => Layout::default(),
    };
    let html = state.and_then(|s| {
        let page = ErrorPage {
            layout,
            status: b.status.as_u16(),
            title: b.title.to_string(),
            message: b.message.clone(),
        };
        super::render_html(&s.tera, &page).ok()
    });
    let out = match html {
        Some(html) => HttpResponse::build(b.status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        None => HttpResponse::build(b.status)
            .content_type("text/plain; charset=utf-8")
            .body(format!("{} {}", b.title, b.message)),
    };
    Ok(res.into_response(out))
}

/// Refuses a request whose path or query string carries a NUL byte (see
/// `validators::has_nul`): a 400 in the shape of its scope (the JSON API's error or
/// `error.html`). Wrapped inside the scope's error middleware, which writes the body.
pub async fn refuse_nul(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let uri = req.uri();
    let nul = crate::validators::has_nul(uri.path().as_bytes())
        || uri
            .query()
            .is_some_and(|q| crate::validators::has_nul(q.as_bytes()));
    if !nul {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    log::warn!("request with a NUL byte in its URL refused: {}", req.path());
    let res = if req.path().starts_with("/api/") {
        ApiError::bad_request("请求含有非法字符").error_response()
    } else {
        PageError::bad_request("网址含有非法字符。").error_response()
    };
    Ok(req.into_response(res))
}

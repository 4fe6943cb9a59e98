//! The notify routes the platforms call: WeChat Pay v2 XML and Ping++ webhooks. Replies are
//! the platform's own: WeChat's SUCCESS/FAIL XML, Ping++'s HTTP status. An internal error is
//! a failure the platform retries.

use super::db;
use crate::payment::pingpp::SIGNATURE_HEADER;
use crate::payment::wechat::notify::fail_reply;
use crate::payment::wechat_v3::SignedHeaders;
use crate::services::notify::{self, Inbound, Notified, V3Reply};
use crate::startup::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

fn inbound(req: &HttpRequest, body: &web::Bytes, keep: &[&str]) -> Inbound {
    let headers = keep
        .iter()
        .filter_map(|k| {
            req.headers()
                .get(*k)
                .and_then(|v| v.to_str().ok())
                .map(|v| format!("{k}: {v}"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    Inbound {
        body: body.to_vec(),
        headers,
        remote_addr: req.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
    }
}

/// One INFO line per notification (provider, trade, verification, outcome; never the body),
/// and its counts in the metrics.
fn finished<R>(state: &AppState, n: &Notified<R>) {
    let provider = n.provider.as_str();
    log::info!(
        "notification provider={provider} out_trade_no={} verified={} outcome={}",
        n.out_trade_no.as_deref().unwrap_or("-"),
        n.verified,
        n.outcome
    );
    state.metrics.notification(provider, &n.outcome);
    if let Some(channel) = &n.paid_channel {
        state
            .metrics
            .payments_applied
            .with_label_values(&[provider, channel.as_str()])
            .inc();
    }
}

fn xml(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// `POST /api/v1/pay/notify`.
pub async fn wechat(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let msg = inbound(&req, &body, &["content-type", "user-agent"]);
    let merchant = state.wechat_merchant();
    match db(&state, move |c| notify::wechat(c, &merchant, &msg)).await {
        Ok(n) => {
            finished(&state, &n);
            xml(StatusCode::OK, n.reply)
        }
        Err(e) => {
            log::error!("wechat notify failed: {e:?}");
            xml(StatusCode::INTERNAL_SERVER_ERROR, fail_reply("系统繁忙"))
        }
    }
}

/// `GET /api/v1/pay/notify`: answered, so a probe sees the route, but nothing is done.
pub async fn wechat_get() -> HttpResponse {
    xml(StatusCode::OK, fail_reply("请使用 POST"))
}

/// `POST /home/notify/pingpp`.
pub async fn pingpp(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let msg = inbound(
        &req,
        &body,
        &[SIGNATURE_HEADER, "content-type", "user-agent"],
    );
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let app = state.pingpp_app();
    let result = db(&state, move |c| {
        notify::pingpp(c, &app, &msg, signature.as_deref())
    })
    .await;
    match result {
        Ok(n) => {
            finished(&state, &n);
            let (status, text) = n.reply;
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                .content_type("text/plain; charset=utf-8")
                .body(text)
        }
        Err(e) => {
            log::error!("pingpp webhook failed: {e:?}");
            HttpResponse::InternalServerError().body("fail: internal")
        }
    }
}

/// `POST /api/v1/pay/refund_notify`: WeChat's refund notification.
pub async fn wechat_refund(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let msg = inbound(&req, &body, &["content-type", "user-agent"]);
    let merchant = state.wechat_merchant();
    match db(&state, move |c| notify::wechat_refund(c, &merchant, &msg)).await {
        Ok(n) => {
            finished(&state, &n);
            xml(StatusCode::OK, n.reply)
        }
        Err(e) => {
            log::error!("wechat refund notify failed: {e:?}");
            xml(StatusCode::INTERNAL_SERVER_ERROR, fail_reply("系统繁忙"))
        }
    }
}

/// The headers a WeChat Pay APIv3 notification is signed with, kept in its log row.
const V3_HEADERS: [&str; 6] = [
    "content-type",
    "user-agent",
    "wechatpay-serial",
    "wechatpay-timestamp",
    "wechatpay-nonce",
    "wechatpay-signature",
];

/// `POST /api/v1/pay/v3/notify`: WeChat Pay APIv3 payments and refunds. The signature is
/// checked here, before the database (a new platform certificate may have to be fetched).
pub async fn wechat_v3(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let reply = |r: V3Reply| {
        let mut res = HttpResponse::build(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        );
        match r.content_type() {
            Some(t) => res.content_type(t).body(r.body),
            None => res.finish(),
        }
    };
    let Some(merchant) = state.wechat_v3_merchant() else {
        return reply(V3Reply::failure(404, "未启用微信支付 APIv3"));
    };
    let msg = inbound(&req, &body, &V3_HEADERS);
    let headers = SignedHeaders::from_lookup(|k| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let verified = state.gateway().v3_notification(headers, &body).await;
    match db(&state, move |c| {
        notify::wechat_v3(c, &merchant, &msg, &verified)
    })
    .await
    {
        Ok(n) => {
            finished(&state, &n);
            reply(n.reply)
        }
        Err(e) => {
            log::error!("wechat v3 notify failed: {e:?}");
            reply(V3Reply::failure(500, "系统繁忙"))
        }
    }
}

/// `POST /home/notify/alipay`: Alipay's asynchronous notifications (payments and refunds).
/// The reply is the plain `success`, or `fail` and Alipay delivers again.
pub async fn alipay(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let text = |body: &str| {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(body.to_string())
    };
    let Some(app) = state.alipay_app() else {
        return text("fail");
    };
    let msg = inbound(&req, &body, &["content-type", "user-agent"]);
    match db(&state, move |c| notify::alipay(c, &app, &msg)).await {
        Ok(n) => {
            finished(&state, &n);
            text(&n.reply)
        }
        Err(e) => {
            log::error!("alipay notify failed: {e:?}");
            text("fail")
        }
    }
}

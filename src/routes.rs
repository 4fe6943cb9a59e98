//! The one table of every route.

use crate::config::PayMode;
use crate::controllers::{admin, api, error, home, notify, ops, sandbox, session};
use actix_web::middleware::from_fn;
use actix_web::web;

/// Largest JSON body the API reads.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Largest notification body read (WeChat's limit for its own XML; Ping++ events are smaller).
pub const NOTIFY_LIMIT: usize = 64 * 1024;
/// Largest form body the PC site reads.
pub const FORM_LIMIT: usize = 16 * 1024;

/// `metrics`: whether `/metrics` is served (else it is one more unknown page).
pub fn configure(cfg: &mut web::ServiceConfig, mode: PayMode, metrics: bool) {
    cfg.app_data(web::PayloadConfig::new(FORM_LIMIT));
    if metrics {
        cfg.route("/metrics", web::get().to(ops::metrics));
    }
    // The platforms' notify routes answer in their own formats, outside the API's error
    // shape and the session cookie.
    cfg.service(
        web::resource("/api/v1/pay/notify")
            .app_data(web::PayloadConfig::new(NOTIFY_LIMIT))
            .route(web::post().to(notify::wechat))
            .route(web::get().to(notify::wechat_get)),
    );
    cfg.service(
        web::resource("/api/v1/pay/refund_notify")
            .app_data(web::PayloadConfig::new(NOTIFY_LIMIT))
            .route(web::post().to(notify::wechat_refund)),
    );
    cfg.service(
        web::resource("/api/v1/pay/v3/notify")
            .app_data(web::PayloadConfig::new(NOTIFY_LIMIT))
            .route(web::post().to(notify::wechat_v3)),
    );
    cfg.service(
        web::resource("/home/notify/alipay")
            .app_data(web::PayloadConfig::new(NOTIFY_LIMIT))
            .route(web::post().to(notify::alipay)),
    );
    cfg.service(
        web::resource("/home/notify/pingpp")
            .app_data(web::PayloadConfig::new(NOTIFY_LIMIT))
            .route(web::post().to(notify::pingpp)),
    );
    cfg.service(
        web::scope("/api/v1")
            .app_data(
                web::JsonConfig::default()
                    .limit(JSON_LIMIT)
                    .error_handler(api::json_error),
            )
            .app_data(web::QueryConfig::default().error_handler(api::query_error))
            .app_data(web::PathConfig::default().error_handler(api::path_error))
            .wrap(from_fn(error::refuse_nul))
            .wrap(from_fn(error::api_errors))
            .route("/openapi.json", web::get().to(api::openapi::document))
            .route("/token/user", web::post().to(api::token::user))
            .route("/address", web::post().to(api::address::save))
            .route("/address", web::get().to(api::address::get))
            .route("/order", web::post().to(api::order::place))
            .route("/order/by_user", web::get().to(api::order::by_user))
            .route("/order/{id}", web::get().to(api::order::detail))
            .route("/product/recent", web::get().to(api::product::recent))
            .route("/product/{id}", web::get().to(api::product::one))
            .route("/pay/pre_order", web::post().to(api::pay::pre_order))
            .route("/pay/native", web::post().to(api::pay::native))
            .route("/pay/pingpp", web::post().to(api::pay::pingpp))
            .route("/pay/query", web::post().to(api::pay::query))
            .default_service(web::to(api_not_found)),
    );
    if mode == PayMode::Sandbox {
        cfg.service(
            web::scope("/sandbox")
                .app_data(web::PayloadConfig::new(NOTIFY_LIMIT))
                .wrap(from_fn(error::page_errors))
                .route(
                    "/wxapi/sns/jscode2session",
                    web::get().to(sandbox::jscode2session),
                )
                .route(
                    "/wxapi/sns/oauth2/access_token",
                    web::get().to(sandbox::oauth_access_token),
                )
                .route(
                    "/wechat/connect/oauth2/authorize",
                    web::get().to(sandbox::oauth_authorize),
                )
                .route("/wechat/jsbridge.js", web::get().to(sandbox::jsbridge_js))
                .route("/wechat/jsapi_pay", web::post().to(sandbox::jsapi_pay))
                .route(
                    "/wxapi/cgi-bin/stable_token",
                    web::post().to(sandbox::stable_token),
                )
                .route(
                    "/wxapi/wxa/sec/order/upload_shipping_info",
                    web::post().to(sandbox::upload_shipping_info),
                )
                .route("/wxpay/pay/{action}", web::post().to(sandbox::wxpay_api))
                // APIv3: POST pay/transactions/{jsapi,native,h5}, GET
                // pay/transactions/out-trade-no/{no} and id/{transaction_id}, POST
                // pay/transactions/out-trade-no/{no}/close, POST refund/domestic/refunds,
                // GET refund/domestic/refunds/{no}, GET certificates.
                .route("/wxpay/v3/{tail:.*}", web::route().to(sandbox::wxpay_v3))
                .route(
                    "/wxpay/secapi/pay/refund",
                    web::post().to(sandbox::wxpay_refund),
                )
                .route(
                    "/pingpp/v1/charges/{id}/refunds",
                    web::post().to(sandbox::pp_refund),
                )
                .route(
                    "/pingpp/v1/charges/{id}/refunds",
                    web::get().to(sandbox::pp_refund_list),
                )
                .route(
                    "/pingpp/v1/charges/{id}/refunds/{re}",
                    web::get().to(sandbox::pp_refund_get),
                )
                .route("/wxpay/phone", web::get().to(sandbox::wx_phone))
                .route("/wxpay/phone/pay", web::post().to(sandbox::wx_phone_pay))
                .route("/pingpp/v1/charges", web::post().to(sandbox::pp_create))
                .route("/pingpp/v1/charges", web::get().to(sandbox::pp_list))
                .route(
                    "/pingpp/v1/charges/{id}",
                    web::get().to(sandbox::pp_retrieve),
                )
                .route("/pingpp/phone/{id}", web::get().to(sandbox::pp_phone))
                .route("/pingpp/phone/{id}", web::post().to(sandbox::pp_phone_pay))
                .route(
                    "/pingpp/notify/charges/{id}",
                    web::get().to(sandbox::pp_test_notify),
                )
                .route("/alipay/gateway.do", web::get().to(sandbox::alipay_gateway))
                .route(
                    "/alipay/gateway.do",
                    web::post().to(sandbox::alipay_gateway),
                )
                .route("/alipay/bill/{token}", web::get().to(sandbox::alipay_bill))
                .route(
                    "/alipay/{kind}/{code}",
                    web::get().to(sandbox::alipay_phone),
                )
                .route(
                    "/alipay/{kind}/{code}",
                    web::post().to(sandbox::alipay_phone_pay),
                )
                .route("/control/faults", web::post().to(sandbox::set_faults))
                .route("/control/faults", web::delete().to(sandbox::clear_faults))
                .route("/control/pay", web::post().to(sandbox::control_pay))
                .route("/control/wx_login", web::post().to(sandbox::wx_login))
                .route("/control/deliveries", web::get().to(sandbox::deliveries))
                .route("/control/refunds", web::get().to(sandbox::refunds))
                .route("/control/clock", web::post().to(sandbox::advance_clock))
                .route("/control/forget", web::post().to(sandbox::forget))
                .route("/control/age", web::post().to(sandbox::age_trades))
                .route("/control/shipping", web::get().to(sandbox::shipping))
                .route("/control/tokens", web::get().to(sandbox::tokens))
                .route(
                    "/control/revoke_tokens",
                    web::post().to(sandbox::revoke_tokens),
                )
                .route("/control/rotate_cert", web::post().to(sandbox::rotate_cert)),
        );
    }
    cfg.service(
        web::scope("")
            .wrap(from_fn(error::refuse_nul))
            .wrap(from_fn(session::write_session))
            .wrap(from_fn(error::page_errors))
            .route("/", web::get().to(home::shop::index))
            .route("/home/goods/{id}", web::get().to(home::shop::goods))
            .route("/home/cart", web::get().to(home::cart::view))
            .route("/home/cart/add", web::post().to(home::cart::add))
            .route("/home/cart/update", web::post().to(home::cart::update))
            .route("/home/login", web::get().to(home::account::login_form))
            .route("/home/login", web::post().to(home::account::login))
            .route(
                "/home/register",
                web::get().to(home::account::register_form),
            )
            .route("/home/register", web::post().to(home::account::register))
            .route("/home/logout", web::post().to(home::account::logout))
            .route("/home/address", web::get().to(home::account::address_form))
            .route("/home/address", web::post().to(home::account::save_address))
            .route("/home/orders", web::get().to(home::order::list))
            .route("/home/order/checkout", web::get().to(home::order::checkout))
            .route("/home/order/save", web::post().to(home::order::save))
            .route("/home/order/pay", web::get().to(home::order::pay))
            .route("/home/order/detail", web::get().to(home::order::detail))
            .route("/home/order/cancel", web::post().to(home::order::cancel))
            .route("/home/order/again", web::post().to(home::order::again))
            .route("/home/order/qrpay", web::get().to(home::pay::qrpay))
            .route(
                "/home/order/wxcashier",
                web::get().to(home::cashier::wechat),
            )
            .route(
                "/home/order/wxoauth",
                web::get().to(home::cashier::oauth_return),
            )
            .route("/home/order/wxpay", web::get().to(home::pay::wxpay))
            .route("/home/order/status", web::get().to(home::pay::status))
            .route("/home/order/status", web::post().to(home::pay::status))
            .route("/home/order/payresult", web::get().to(home::pay::payresult))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(ops::readyz))
            .route("/admin/login", web::get().to(admin::auth::login_form))
            .route("/admin/login", web::post().to(admin::auth::login))
            .route("/admin/logout", web::post().to(admin::auth::logout))
            .route("/admin", web::get().to(admin::orders::dashboard))
            .route("/admin/orders", web::get().to(admin::orders::list))
            .route("/admin/orders.csv", web::get().to(admin::orders::csv))
            .route("/admin/orders/{id}", web::get().to(admin::orders::detail))
            .route(
                "/admin/orders/{id}/refunds.json",
                web::get().to(admin::orders::refunds_json),
            )
            .route(
                "/admin/orders/{id}/query",
                web::post().to(admin::orders::requery),
            )
            .route(
                "/admin/orders/{id}/close",
                web::post().to(admin::orders::close),
            )
            .route(
                "/admin/orders/{id}/deliver",
                web::post().to(admin::orders::deliver),
            )
            .route(
                "/admin/orders/{id}/refund",
                web::post().to(admin::orders::refund),
            )
            .route(
                "/admin/orders/{id}/refunds/{rid}/submit",
                web::post().to(admin::orders::submit_refund),
            )
            .route("/admin/paylog", web::get().to(admin::paylog::list))
            .route("/admin/reconcile", web::get().to(admin::reconcile::page))
            .route("/admin/reconcile.csv", web::get().to(admin::reconcile::csv))
            .route(
                "/admin/reconcile/run",
                web::post().to(admin::reconcile::run_day),
            )
            .route(
                "/admin/reconcile/diffs/{id}/resolve",
                web::post().to(admin::reconcile::resolve),
            )
            .route("/admin/products", web::get().to(admin::products::list))
            .route(
                "/admin/products/new",
                web::get().to(admin::products::new_form),
            )
            .route(
                "/admin/products/new",
                web::post().to(admin::products::create),
            )
            .route(
                "/admin/products/{id}/edit",
                web::get().to(admin::products::edit_form),
            )
            .route(
                "/admin/products/{id}/edit",
                web::post().to(admin::products::update),
            )
            .route(
                "/admin/products/{id}/stock",
                web::post().to(admin::products::stock),
            )
            .route("/static/{path:.*}", web::get().to(ops::static_file))
            .route("/static/{path:.*}", web::head().to(ops::static_file))
            .default_service(web::to(page_not_found)),
    );
}

async fn api_not_found() -> Result<actix_web::HttpResponse, error::ApiError> {
    Err(error::ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        10000,
        "接口不存在",
    ))
}

async fn page_not_found() -> Result<actix_web::HttpResponse, error::PageError> {
    Err(error::PageError::not_found("您访问的页面不存在。"))
}

/// Liveness plus the callback alarm: `degraded` when payments keep being confirmed by query
/// while no verified notification arrives.
async fn healthz(state: web::Data<crate::startup::AppState>) -> actix_web::HttpResponse {
    let window = chrono::Duration::seconds(state.config.callback_alarm_after_seconds);
    let min = state.config.callback_alarm_min_confirmations;
    let health = crate::controllers::db(&state, move |c| {
        crate::services::lifecycle::callback_health(c, window, min)
    })
    .await;
    match health {
        Ok(h) if h.degraded => actix_web::HttpResponse::Ok().json(serde_json::json!({
            "status": "degraded",
            "detail": {"callbacks": "no verified notification while payments are confirmed by query", "health": h},
        })),
        Ok(h) => actix_web::HttpResponse::Ok().json(serde_json::json!({"status": "ok", "detail": {"health": h}})),
        Err(e) => {
            log::error!("healthz: {e}");
            actix_web::HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "down"}))
        }
    }
}

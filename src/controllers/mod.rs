//! Thin handlers: extract, turn the DTO into a command, call one service, answer with a page,
//! a redirect or JSON. May import services, validators and views.

pub mod admin;
pub mod api;
pub mod error;
pub mod home;
pub mod notify;
pub mod sandbox;
pub mod session;

use crate::db::Conn;
use crate::services::ServiceError;
use crate::startup::AppState;
use crate::views::{Layout, Page};
use actix_web::http::header;
use actix_web::HttpResponse;
use error::PageError;
use serde::de::DeserializeOwned;
use session::{Cart, Session};

/// Runs a blocking service call on the blocking pool with a pooled connection.
pub async fn db<T, F>(state: &AppState, f: F) -> Result<T, ServiceError>
where
    T: Send + 'static,
    F: FnOnce(&mut Conn) -> Result<T, ServiceError> + Send + 'static,
{
    crate::services::run(&state.db, f).await
}

/// Renders a page struct with its template.
pub fn render_html<P: Page>(tera: &tera::Tera, page: &P) -> Result<String, tera::Error> {
    let ctx = tera::Context::from_serialize(page)?;
    tera.render(P::TEMPLATE, &ctx)
}

/// A 200 HTML response of the page.
pub fn render<P: Page>(state: &AppState, page: &P) -> Result<HttpResponse, PageError> {
    render_status(state, page, actix_web::http::StatusCode::OK)
}

pub fn render_status<P: Page>(
    state: &AppState,
    page: &P,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, PageError> {
    let html = render_html(&state.tera, page).map_err(PageError::internal)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// The layout of every page: who is logged in, the cart badge, the CSRF token.
pub fn layout(session: &Session, cart: &Cart) -> Layout {
    Layout {
        user: session.data.name.clone(),
        cart_count: cart.count(),
        csrf: session.data.csrf.clone(),
        flash: None,
    }
}

/// The shopper's address as the platforms want it (`spbill_create_ip`, `client_ip`).
pub fn client_ip(req: &actix_web::HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// 303 See Other: the answer to a successful form POST.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

#[derive(serde::Deserialize, Default)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// Parses an urlencoded form after checking its `csrf` field against the session.
pub fn csrf_form<T: DeserializeOwned>(session: &Session, body: &[u8]) -> Result<T, PageError> {
    let field: CsrfField = serde_urlencoded::from_bytes(body).unwrap_or_default();
    session.check_csrf(&field.csrf)?;
    if crate::validators::has_nul(body) {
        log::warn!("form with a NUL byte refused");
        return Err(PageError::bad_request("表单含有非法字符。"));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| PageError::bad_request(format!("表单格式错误：{e}")))
}

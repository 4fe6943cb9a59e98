//! What operators and browsers need besides the shop's pages: static files from memory, the
//! readiness probe and request ids. May import db, assets and error.

use crate::controllers::error::PageError;
use crate::startup::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// `GET /static/{path}`: the embedded file, or the one in `assets_dir/static/`, with an ETag.
pub async fn static_file(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let Some(file) = state.static_files.get(&path) else {
        return Err(PageError::not_found("您访问的页面不存在。"));
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == file.etag || t.trim() == "*")
        });
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, file.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if fresh {
        return Ok(res.finish());
    }
    Ok(res.content_type(file.content_type).body(file.body.clone()))
}

/// `GET /readyz`: 200 when the database answers and its schema is current, else 503 (a load
/// balancer sends no traffic to an instance that would fail every request).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.run(crate::db::pending_migrations).await {
        Ok(0) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Ok(n) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "not ready", "pending_migrations": n})),
        Err(e) => {
            log::warn!("readyz: {e}");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "not ready", "database": "unreachable"}))
        }
    }
}

/// The request id header: taken from the client (a proxy's) when it is a plain token, else
/// made; echoed in the response and written in the access log line.
pub const REQUEST_ID: &str = "x-request-id";

/// A usable incoming id: 1–64 characters of letters, digits and `-_.:` (nothing that could
/// forge a log line).
fn plain_id(v: &header::HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_string())
}

/// Outermost middleware: gives every request an `X-Request-Id` (before the access log reads
/// it) and echoes it in the response.
pub async fn request_id(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let name = header::HeaderName::from_static(REQUEST_ID);
    let id = req
        .headers()
        .get(&name)
        .and_then(plain_id)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()));
    let value = header::HeaderValue::from_str(&id)
        .unwrap_or_else(|_| header::HeaderValue::from_static("invalid"));
    req.headers_mut().insert(name.clone(), value.clone());
    let mut res = next.call(req).await?;
    res.headers_mut().insert(name, value);
    Ok(res)
}

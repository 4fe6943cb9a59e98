//! What operators and browsers need besides the shop's pages: static files from memory and
//! the readiness probe. May import db, assets and error.

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

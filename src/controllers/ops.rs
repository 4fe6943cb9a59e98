//! What operators and browsers need besides the shop's pages: static files from memory, the
//! readiness probe, request ids and the metrics. May import db, services, assets, metrics
//! and error.

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
    // Lines logged while the request is served carry its id (JSON log format).
    let mut res = crate::logging::REQUEST_ID.scope(id, next.call(req)).await?;
    res.headers_mut().insert(name, value);
    Ok(res)
}

/// Times every request into the latency histogram, labelled by the matched route pattern
/// (`/admin/orders/{id}`), never the raw path: one series per route, whatever the ids.
pub async fn observe(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().to_string();
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let status = res.status().as_u16().to_string();
        metrics
            .request_seconds
            .with_label_values(&[method.as_str(), route.as_str(), status.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// The bearer token matches (compared as SHA-256 digests, so the time taken says nothing
/// about the token).
fn bearer_matches(req: &HttpRequest, token: &str) -> bool {
    use sha2::{Digest, Sha256};
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    Sha256::digest(given.trim().as_bytes()) == Sha256::digest(token.as_bytes())
}

/// `GET /metrics` (routed only when `metrics` is on): the Prometheus text format, behind
/// `Authorization: Bearer <metrics_token>` when one is configured.
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(token) = &state.config.metrics_token {
        if !bearer_matches(&req, token) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .body("unauthorized");
        }
    }
    let figures =
        crate::services::run(&state.db, crate::services::lifecycle::metrics_figures).await;
    let figures = match figures {
        Ok(mut f) => {
            let pool = state.pool.state();
            f.pool_connections = pool.connections;
            f.pool_idle = pool.idle_connections;
            f.db_retries = state.db.retries();
            f
        }
        Err(e) => {
            log::error!("metrics: {e}");
            return HttpResponse::ServiceUnavailable().body("database unavailable");
        }
    };
    match state.metrics.render(&figures) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            log::error!("metrics: {e}");
            HttpResponse::InternalServerError().body("metrics unavailable")
        }
    }
}

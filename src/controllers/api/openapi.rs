//! The mini-program API's contract: an OpenAPI document built from the handlers'
//! `#[utoipa::path]` annotations and the request and response types they use, served at
//! `GET /api/v1/openapi.json`. The platforms' notify routes under `/api/v1/pay/` are left out:
//! they speak the platforms' formats, not this API's.

use super::{address, order, pay, product, token};
use crate::controllers::error::ApiErrorJson;
use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The document; `ApiDoc::openapi()` builds it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jiesuan mini-program API",
        description = "The mini-program's JSON API. Log in with `POST /api/v1/token/user` and \
            send the token as the `token` header. Money is integer fen. Every error answers \
            `{\"msg\",\"error_code\",\"request_url\"}`."
    ),
    paths(
        token::user,
        address::save,
        address::get,
        order::place,
        order::by_user,
        order::detail,
        product::recent,
        product::one,
        pay::pre_order,
        pay::native,
        pay::pingpp,
        pay::query,
        document,
    ),
    components(schemas(ApiErrorJson)),
    modifiers(&CommonAnswers)
)]
pub struct ApiDoc;

/// What every operation may answer besides its own answers, added here once: 400 (a NUL byte
/// in the URL, a malformed body or parameter), 500; 413 for a body over `JSON_LIMIT`; 401
/// where a token is required. Also declares the `token` header scheme.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut Document) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "token",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("token"))),
            );
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                let mut common = vec![
                    ("400", "10000: bad request"),
                    ("500", "999: internal error"),
                ];
                if op.request_body.is_some() {
                    common.push(("413", "10000: body too large"));
                }
                if op.security.is_some() {
                    common.push(("401", "10001: token missing, unknown or expired"));
                }
                for (status, description) in common {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_answer(description));
                }
            }
        }
    }
}

fn error_answer(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ApiErrorJson")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
        .into()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "contract",
    responses(
        (status = 200, description = "the OpenAPI document", body = Object),
    ),
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

//! `/admin/login` (scope 32, growing delay after failures), `/admin/logout`.

use crate::controllers::error::PageError;
use crate::controllers::session::Session;
use crate::controllers::{csrf_form, db, render_status, see_other};
use crate::services::{account, ServiceError};
use crate::startup::AppState;
use crate::validators::{safe_next, AccountForm};
use crate::views::admin::AdminLoginPage;
use crate::views::Form;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

pub async fn login_form(
    state: web::Data<AppState>,
    session: Session,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let page = AdminLoginPage {
        csrf: session.data.csrf.clone(),
        form: Form::default(),
        next: safe_next(&q.next, "/admin"),
    };
    render_status(&state, &page, StatusCode::OK)
}

pub async fn login(
    state: web::Data<AppState>,
    session: Session,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: AccountForm = csrf_form(&session, &body)?;
    let next = safe_next(&form.next, "/admin");
    let next = if next.starts_with("/admin") {
        next
    } else {
        "/admin".into()
    };
    let errors = match form.login() {
        Ok(cred) => match db(&state, move |c| account::login_guarded(c, &cred, true)).await {
            Ok(user) => {
                let name = user
                    .username
                    .clone()
                    .unwrap_or_else(|| user.nickname.clone());
                session.login_admin(user.id, &name, user.session_version);
                return Ok(see_other(&next));
            }
            Err(ServiceError::BadCredentials) => {
                BTreeMap::from([("form".into(), "用户名或密码错误".into())])
            }
            Err(ServiceError::Forbidden) => {
                BTreeMap::from([("form".into(), "该账号没有管理员权限".into())])
            }
            Err(ServiceError::Refused(why)) => BTreeMap::from([("form".into(), why)]),
            Err(e) => return Err(e.into()),
        },
        Err(errors) => errors,
    };
    let page = AdminLoginPage {
        csrf: session.data.csrf.clone(),
        form: Form {
            values: form.values(),
            errors,
        },
        next,
    };
    render_status(&state, &page, StatusCode::UNPROCESSABLE_ENTITY)
}

pub async fn logout(session: Session, body: web::Bytes) -> Result<HttpResponse, PageError> {
    let _: BTreeMap<String, String> = csrf_form(&session, &body)?;
    session.logout();
    Ok(see_other("/admin/login"))
}

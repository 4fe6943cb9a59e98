//! Register, log in, log out, and the shipping address.

use crate::controllers::error::PageError;
use crate::controllers::session::{Cart, Session, Shopper};
use crate::controllers::{csrf_form, db, layout, render_status, see_other, with_done};
use crate::services::{account, ServiceError};
use crate::startup::AppState;
use crate::validators::{safe_next, AccountForm, AddressForm};
use crate::views::{AddressPage, Form, LoginPage, RegisterPage};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

/// `page?next=…`: the other account page, keeping where to go afterwards.
fn keep_next(page: &str, next: &str) -> String {
    let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    format!("{page}?{q}")
}

fn login_page(
    state: &AppState,
    session: &Session,
    cart: &Cart,
    form: Form,
    next: String,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let page = LoginPage {
        layout: layout(session, cart),
        form,
        register_url: keep_next("/home/register", &next),
        next,
    };
    render_status(state, &page, status)
}

pub async fn login_form(
    state: web::Data<AppState>,
    session: Session,
    cart: Cart,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(&q.next, "/");
    login_page(
        &state,
        &session,
        &cart,
        Form::default(),
        next,
        StatusCode::OK,
    )
}

pub async fn login(
    state: web::Data<AppState>,
    session: Session,
    cart: Cart,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: AccountForm = csrf_form(&session, &body)?;
    let next = safe_next(&form.next, "/");
    let errors = match form.login() {
        Ok(cred) => match db(&state, move |c| account::login_guarded(c, &cred, false)).await {
            Ok(user) => {
                let name = user
                    .username
                    .clone()
                    .unwrap_or_else(|| user.nickname.clone());
                session.login(user.id, &name);
                return Ok(see_other(&next));
            }
            Err(ServiceError::BadCredentials) => {
                BTreeMap::from([("form".to_string(), "用户名或密码错误".to_string())])
            }
            Err(ServiceError::Refused(why)) => BTreeMap::from([("form".to_string(), why)]),
            Err(e) => return Err(e.into()),
        },
        Err(errors) => errors,
    };
    let f = Form {
        values: form.values(),
        errors,
    };
    login_page(
        &state,
        &session,
        &cart,
        f,
        next,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

pub async fn register_form(
    state: web::Data<AppState>,
    session: Session,
    cart: Cart,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(&q.next, "/");
    let page = RegisterPage {
        layout: layout(&session, &cart),
        form: Form::default(),
        login_url: keep_next("/home/login", &next),
        next,
    };
    render_status(&state, &page, StatusCode::OK)
}

pub async fn register(
    state: web::Data<AppState>,
    session: Session,
    cart: Cart,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: AccountForm = csrf_form(&session, &body)?;
    let next = safe_next(&form.next, "/");
    let errors = match form.register() {
        Ok(cred) => {
            let result = db(&state, move |c| {
                account::register(c, &cred, crate::domain::Scope::User)
            })
            .await;
            match result {
                Ok(user) => {
                    session.login(user.id, &user.nickname);
                    return Ok(see_other(&next));
                }
                Err(ServiceError::Invalid(errors)) => errors,
                Err(e) => return Err(e.into()),
            }
        }
        Err(errors) => errors,
    };
    let page = RegisterPage {
        layout: layout(&session, &cart),
        form: Form {
            values: form.values(),
            errors,
        },
        login_url: keep_next("/home/login", &next),
        next,
    };
    render_status(&state, &page, StatusCode::UNPROCESSABLE_ENTITY)
}

pub async fn logout(session: Session, body: web::Bytes) -> Result<HttpResponse, PageError> {
    let _: BTreeMap<String, String> = csrf_form(&session, &body)?;
    session.logout();
    Ok(see_other("/"))
}

/// The page the shopper came from (the `Referer`'s path), unless it is the address page.
fn came_from(req: &HttpRequest) -> Option<String> {
    let referer = req.headers().get(header::REFERER)?.to_str().ok()?;
    let after_scheme = referer.split_once("://").map_or(referer, |(_, rest)| rest);
    let path = &after_scheme[after_scheme.find('/')?..];
    (!path.starts_with("/home/address")).then(|| path.to_string())
}

/// `GET /home/address?next=`: after saving, back to `next`, else to the page the shopper
/// came from, else to checkout.
pub async fn address_form(
    state: web::Data<AppState>,
    shopper: Shopper,
    cart: Cart,
    req: HttpRequest,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let uid = shopper.id;
    let current = db(&state, move |c| account::address(c, uid)).await?;
    let values = current
        .map(|a| {
            AddressForm {
                name: a.name,
                mobile: a.mobile,
                province: a.province,
                city: a.city,
                district: a.district,
                detail: a.detail,
            }
            .values()
        })
        .unwrap_or_default();
    let page = AddressPage {
        layout: layout(&shopper.session, &cart),
        form: Form {
            values,
            errors: BTreeMap::new(),
        },
        next: match came_from(&req) {
            Some(back) if q.next.is_empty() => safe_next(&back, "/home/order/checkout"),
            _ => safe_next(&q.next, "/home/order/checkout"),
        },
    };
    render_status(&state, &page, StatusCode::OK)
}

#[derive(Deserialize)]
struct AddressPost {
    #[serde(flatten)]
    form: AddressForm,
    #[serde(default)]
    next: String,
}

pub async fn save_address(
    state: web::Data<AppState>,
    shopper: Shopper,
    cart: Cart,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let post: AddressPost = csrf_form(&shopper.session, &body)?;
    let next = safe_next(&post.next, "/home/order/checkout");
    match post.form.validate() {
        Ok(cmd) => {
            let uid = shopper.id;
            db(&state, move |c| account::save_address(c, uid, &cmd)).await?;
            Ok(see_other(&with_done(&next, "address")))
        }
        Err(errors) => {
            let page = AddressPage {
                layout: layout(&shopper.session, &cart),
                form: Form {
                    values: post.form.values(),
                    errors,
                },
                next,
            };
            render_status(&state, &page, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

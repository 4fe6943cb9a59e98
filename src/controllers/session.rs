//! Who is asking: the PC session (an encrypted, signed cookie holding the user and the CSRF
//! token; nothing is kept on the server, so any instance can serve any request), the cart
//! cookie, and the mini-program's `token` header.
//!
//! Taking `Shopper` as a handler parameter means login is required; `ApiUser` likewise for
//! the JSON API.

use super::db;
use super::error::{ApiError, PageError};
use crate::domain::Scope;
use crate::services::account;
use crate::startup::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::future::{ready, Future, Ready};
use std::pin::Pin;

const SESSION_COOKIE: &str = "jiesuan_session";
const CART_COOKIE: &str = "jiesuan_cart";
/// Sessions older than this are ignored: log in again.
const SESSION_DAYS: i64 = 14;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionData {
    pub uid: Option<i32>,
    pub name: Option<String>,
    pub csrf: String,
    /// Unix seconds when issued.
    pub iat: i64,
    /// Logged in through /admin/login as a scope-32 user.
    #[serde(default)]
    pub admin: bool,
    /// The user's `session_version` at login: the `Admin` extractor refuses the session once
    /// the database has moved on (password changed, admin removed).
    #[serde(default)]
    pub ver: i32,
    /// The shopper's openid under the Official Account, learnt by the cashier's WeChat
    /// OAuth (snsapi_base): a WeChat browser pays with it without asking again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wx_openid: Option<String>,
    /// The Official Account `wx_openid` belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wx_appid: Option<String>,
}

impl SessionData {
    fn fresh() -> SessionData {
        SessionData {
            uid: None,
            name: None,
            csrf: hex::encode(rand::thread_rng().gen::<[u8; 16]>()),
            iat: chrono::Utc::now().timestamp(),
            admin: false,
            ver: 0,
            wx_openid: None,
            wx_appid: None,
        }
    }
}

/// A session to write back in the response (new, logged in or logged out).
#[derive(Debug, Clone)]
struct SessionWrite(SessionData);

/// The PC session of this request; created (and later set as a cookie) if there was none.
#[derive(Debug, Clone)]
pub struct Session {
    pub data: SessionData,
    req: HttpRequest,
}

impl Session {
    fn load(req: &HttpRequest) -> Session {
        if let Some(w) = req.extensions().get::<SessionWrite>() {
            return Session {
                data: w.0.clone(),
                req: req.clone(),
            };
        }
        let from_cookie = req.cookie(SESSION_COOKIE).and_then(|c| {
            let state = req.app_data::<web::Data<AppState>>()?;
            let plain = CookieJar::new().private(&state.cookie_key).decrypt(c)?;
            let data: SessionData = serde_json::from_str(plain.value()).ok()?;
            let age = chrono::Utc::now().timestamp() - data.iat;
            (0..SESSION_DAYS * 86_400).contains(&age).then_some(data)
        });
        let data = match from_cookie {
            Some(d) => d,
            None => {
                let d = SessionData::fresh();
                req.extensions_mut().insert(SessionWrite(d.clone()));
                d
            }
        };
        Session {
            data,
            req: req.clone(),
        }
    }

    /// The one-line notice the redirect to this page asked for (`?done=…`).
    pub fn flash(&self) -> Option<String> {
        let done = self
            .req
            .query_string()
            .split('&')
            .find_map(|kv| kv.strip_prefix("done="))?;
        match done {
            "address" => Some("收货地址已保存".into()),
            _ => None,
        }
    }

    /// Refuses a POST whose `csrf` field does not match the session's token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), PageError> {
        use subtle_eq::eq;
        if !submitted.is_empty() && eq(submitted.as_bytes(), self.data.csrf.as_bytes()) {
            Ok(())
        } else {
            log::warn!("csrf token mismatch on {}", self.req.path());
            Err(PageError::forbidden("页面已过期，请返回上一页刷新后重试。"))
        }
    }

    /// Logs the user in with a new session (new CSRF token: no fixation).
    pub fn login(&self, uid: i32, name: &str) {
        let mut d = SessionData::fresh();
        d.uid = Some(uid);
        d.name = Some(name.to_string());
        self.req.extensions_mut().insert(SessionWrite(d));
    }

    /// Logs an admin in (scope 32 checked by the caller) at the user's session version.
    pub fn login_admin(&self, uid: i32, name: &str, session_version: i32) {
        let mut d = SessionData::fresh();
        d.uid = Some(uid);
        d.name = Some(name.to_string());
        d.admin = true;
        d.ver = session_version;
        self.req.extensions_mut().insert(SessionWrite(d));
    }

    /// Remembers the WeChat payer's openid (Official Account) in this session.
    pub fn set_wx_openid(&self, appid: &str, openid: &str) {
        let mut d = self.data.clone();
        d.wx_openid = Some(openid.to_string());
        d.wx_appid = Some(appid.to_string());
        self.req.extensions_mut().insert(SessionWrite(d));
    }

    pub fn logout(&self) {
        self.req
            .extensions_mut()
            .insert(SessionWrite(SessionData::fresh()));
    }
}

mod subtle_eq {
    /// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
    pub fn eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl FromRequest for Session {
    type Error = actix_web::Error;
    type Future = Ready<Result<Session, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Session::load(req)))
    }
}

/// A logged-in PC user; taking it as a parameter requires login.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub id: i32,
    pub session: Session,
}

impl FromRequest for Shopper {
    type Error = PageError;
    type Future = Ready<Result<Shopper, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = Session::load(req);
        ready(match session.data.uid {
            Some(id) => Ok(Shopper { id, session }),
            None => Err(PageError::LoginRequired {
                next: req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "/".into()),
            }),
        })
    }
}

/// A logged-in admin; taking it as a parameter requires an admin session that the database
/// still stands behind (checked on every request, so a password change or a removal ends
/// the admin's other sessions on any instance). Anonymous users, shoppers and revoked
/// sessions go to the admin login page.
#[derive(Debug, Clone)]
pub struct Admin {
    pub id: i32,
    pub name: String,
    pub session: Session,
}

impl FromRequest for Admin {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Admin, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = Session::load(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let login = PageError::AdminLoginRequired {
            next: req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "/admin".into()),
        };
        Box::pin(async move {
            let (Some(id), true, Some(state)) = (session.data.uid, session.data.admin, state)
            else {
                return Err(login);
            };
            let ver = session.data.ver;
            if !db(&state, move |c| account::admin_session_valid(c, id, ver)).await? {
                log::info!("admin session of user {id} revoked");
                session.logout();
                return Err(login);
            }
            Ok(Admin {
                id,
                name: session.data.name.clone().unwrap_or_default(),
                session,
            })
        })
    }
}

/// Sets the session cookie when the session was created or changed during the request.
pub async fn write_session(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut res = next.call(req).await?.map_into_boxed_body();
    let write = res.request().extensions().get::<SessionWrite>().cloned();
    let state = res.request().app_data::<web::Data<AppState>>().cloned();
    if let (Some(SessionWrite(data)), Some(state)) = (write, state) {
        let value =
            serde_json::to_string(&data).map_err(actix_web::error::ErrorInternalServerError)?;
        let mut jar = CookieJar::new();
        jar.private_mut(&state.cookie_key).add(
            Cookie::build(SESSION_COOKIE, value)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(state.public_url.starts_with("https://"))
                .finish(),
        );
        if let Some(c) = jar.get(SESSION_COOKIE) {
            res.response_mut().add_cookie(c)?;
        }
    }
    Ok(res)
}

/// The cart: `(product id, count)` lines kept in a plain cookie `1:2,5:1`. It is only a wish
/// list; prices and stock are always read from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    pub lines: Vec<(i32, i32)>,
}

impl Cart {
    pub const MAX_LINES: usize = 50;

    pub fn parse(s: &str) -> Cart {
        let lines = s
            .split(',')
            .filter_map(|pair| {
                let (id, n) = pair.split_once(':')?;
                let id: i32 = id.parse().ok()?;
                let n: i32 = n.parse().ok()?;
                (id > 0 && (1..=999).contains(&n)).then_some((id, n))
            })
            .take(Cart::MAX_LINES)
            .collect();
        Cart { lines }
    }

    pub fn count(&self) -> i64 {
        self.lines.iter().map(|(_, n)| i64::from(*n)).sum()
    }

    /// Sets a product's count (0 removes it); counts are capped at 999.
    pub fn set(&mut self, id: i32, count: i32) {
        let count = count.clamp(0, 999);
        match self.lines.iter().position(|(p, _)| *p == id) {
            Some(i) if count > 0 => self.lines[i].1 = count,
            Some(i) => {
                self.lines.remove(i);
            }
            None if count > 0 && self.lines.len() < Cart::MAX_LINES => self.lines.push((id, count)),
            None => {}
        }
    }

    pub fn add(&mut self, id: i32, count: i32) {
        let now = self.lines.iter().find(|(p, _)| *p == id).map_or(0, |l| l.1);
        self.set(id, now.saturating_add(count));
    }

    pub fn cookie(&self) -> Cookie<'static> {
        let value = self
            .lines
            .iter()
            .map(|(id, n)| format!("{id}:{n}"))
            .collect::<Vec<_>>()
            .join(",");
        Cookie::build(CART_COOKIE, value)
            .path("/")
            .same_site(SameSite::Lax)
            .http_only(true)
            .max_age(actix_web::cookie::time::Duration::days(30))
            .finish()
    }
}

impl FromRequest for Cart {
    type Error = actix_web::Error;
    type Future = Ready<Result<Cart, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req
            .cookie(CART_COOKIE)
            .map(|c| Cart::parse(c.value()))
            .unwrap_or_default()))
    }
}

/// A mini-program user, by the `token` header; taking it requires a valid token.
#[derive(Debug, Clone, Copy)]
pub struct ApiUser {
    pub id: i32,
    pub scope: Scope,
}

impl FromRequest for ApiUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<ApiUser, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req
            .headers()
            .get("token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::bad_request("no state"))?;
            let (id, scope) = db(&state, move |c| account::resolve_token(c, &token)).await?;
            Ok(ApiUser { id, scope })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cart_cookie_round_trips_and_drops_junk() {
        let mut cart = Cart::parse("1:2,x:1,3:0,4:1000,5:1");
        assert_eq!(cart.lines, vec![(1, 2), (5, 1)]);
        cart.add(1, 3);
        cart.set(5, 0);
        cart.add(7, 1);
        assert_eq!(cart.cookie().value(), "1:5,7:1");
        assert_eq!(cart.count(), 6);
    }
}

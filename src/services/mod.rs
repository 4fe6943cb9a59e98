//! Business flows: order placement, accounts, addresses, catalogue, seeding. Transactions live
//! here. Services are synchronous, take `&mut Conn`, and import neither actix nor tera.

pub mod account;
pub mod admin;
pub mod catalog;
pub mod gateway;
pub mod lifecycle;
pub mod notify;
pub mod order;
pub mod pay;
pub mod reconcile;
pub mod refund;
pub mod seed;
pub mod shipping;

use std::collections::BTreeMap;

/// Field name -> message (Chinese, shown next to the field or returned in the JSON error).
pub type FieldErrors = BTreeMap<String, String>;

/// The service layer's one error type; `controllers::error` maps it to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid input: {0:?}")]
    Invalid(FieldErrors),
    #[error("token invalid or expired")]
    TokenInvalid,
    #[error("not allowed for this account")]
    Forbidden,
    #[error("the order belongs to another user")]
    NotOwner,
    #[error("the user has no address")]
    NoAddress,
    #[error("order not found")]
    OrderNotFound,
    #[error("order cannot be paid: {0}")]
    OrderNotPayable(&'static str),
    #[error("refused: {0}")]
    Refused(String),
    #[error("payment platform: {0}")]
    Gateway(String),
    #[error("product {0} not found or not on sale")]
    ProductNotFound(i32),
    #[error("wrong username or password")]
    BadCredentials,
    #[error(transparent)]
    WechatLogin(#[from] crate::payment::wechat::login::LoginError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// One invalid field.
    pub fn field(name: &str, message: &str) -> ServiceError {
        ServiceError::Invalid(BTreeMap::from([(name.to_string(), message.to_string())]))
    }
}

impl From<crate::db::RunError<ServiceError>> for ServiceError {
    fn from(e: crate::db::RunError<ServiceError>) -> Self {
        match e {
            crate::db::RunError::Inner(e) => e,
            crate::db::RunError::Pool(e) => ServiceError::Pool(e),
            crate::db::RunError::Join(m) => ServiceError::Internal(m),
        }
    }
}

/// Runs a synchronous service call on the blocking pool (again, when its database conflicted
/// or its connection was lost: see `Db::run`).
pub async fn run<T, F>(db: &crate::db::Db, f: F) -> Result<T, ServiceError>
where
    T: Send + 'static,
    F: FnMut(&mut crate::db::Conn) -> Result<T, ServiceError> + Send + 'static,
{
    Ok(db.run(f).await?)
}

impl crate::db::DbFailure for ServiceError {
    fn db_error(&self) -> Option<&diesel::result::Error> {
        match self {
            ServiceError::Db(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::domain::MoneyError> for ServiceError {
    fn from(e: crate::domain::MoneyError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

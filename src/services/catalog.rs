//! The catalogue as shoppers see it.

use super::ServiceError;
use crate::db::Conn;
use crate::models::{product, Product};

pub fn on_sale(conn: &mut Conn) -> Result<Vec<Product>, ServiceError> {
    Ok(product::on_sale(conn)?)
}

/// Longest search term taken (in characters); the rest is ignored.
pub const SEARCH_MAX_CHARS: usize = 50;

/// Products on sale whose name contains `term`; all of them for an empty term.
pub fn search(conn: &mut Conn, term: &str) -> Result<Vec<Product>, ServiceError> {
    let term: String = term.trim().chars().take(SEARCH_MAX_CHARS).collect();
    if term.is_empty() {
        return on_sale(conn);
    }
    Ok(product::search(conn, &term)?)
}

/// A product that is on sale, or `ProductNotFound`.
pub fn product(conn: &mut Conn, id: i32) -> Result<Product, ServiceError> {
    match product::find(conn, id)? {
        Some(p) if p.on_sale => Ok(p),
        _ => Err(ServiceError::ProductNotFound(id)),
    }
}

/// The newest products, at most `count` (1..=15, as in the zerg shop).
pub fn recent(conn: &mut Conn, count: i64) -> Result<Vec<Product>, ServiceError> {
    if !(1..=15).contains(&count) {
        return Err(ServiceError::field(
            "count",
            "count 必须是 1 到 15 之间的整数",
        ));
    }
    Ok(product::recent(conn, count)?)
}

/// The products among `ids` that exist, by id (off-sale ones included: the caller decides).
pub fn many(conn: &mut Conn, ids: &[i32]) -> Result<Vec<Product>, ServiceError> {
    Ok(product::find_many(conn, ids)?)
}

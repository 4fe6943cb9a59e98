//! `products`: the catalogue and its stock. Stock moves only by conditional updates.

use super::schema::products;
use crate::db::Conn;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i32,
    pub name: String,
    pub price: i64,
    pub stock: i32,
    pub main_img_url: String,
    pub summary: String,
    pub on_sale: bool,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = products)]
pub struct NewProduct<'a> {
    pub name: &'a str,
    pub price: i64,
    pub stock: i32,
    pub main_img_url: &'a str,
    pub summary: &'a str,
    pub on_sale: bool,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

pub fn insert(conn: &mut Conn, p: &NewProduct<'_>) -> QueryResult<usize> {
    diesel::insert_into(products::table).values(p).execute(conn)
}

pub fn count(conn: &mut Conn) -> QueryResult<i64> {
    products::table.count().get_result(conn)
}

pub fn find(conn: &mut Conn, id: i32) -> QueryResult<Option<Product>> {
    products::table
        .find(id)
        .select(Product::as_select())
        .first(conn)
        .optional()
}

/// The products with these ids, in ascending id order.
pub fn find_many(conn: &mut Conn, ids: &[i32]) -> QueryResult<Vec<Product>> {
    products::table
        .filter(products::id.eq_any(ids))
        .order(products::id.asc())
        .select(Product::as_select())
        .load(conn)
}

pub fn on_sale(conn: &mut Conn) -> QueryResult<Vec<Product>> {
    products::table
        .filter(products::on_sale.eq(true))
        .order(products::id.asc())
        .select(Product::as_select())
        .load(conn)
}

/// Products on sale whose name contains `term` (taken literally: `%` and `_` are escaped).
pub fn search(conn: &mut Conn, term: &str) -> QueryResult<Vec<Product>> {
    let escaped = term
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    products::table
        .filter(products::on_sale.eq(true))
        .filter(products::name.like(format!("%{escaped}%")).escape('\\'))
        .order(products::id.asc())
        .select(Product::as_select())
        .load(conn)
}

/// The newest products on sale, newest first.
pub fn recent(conn: &mut Conn, limit: i64) -> QueryResult<Vec<Product>> {
    products::table
        .filter(products::on_sale.eq(true))
        .order((products::created_at.desc(), products::id.desc()))
        .limit(limit)
        .select(Product::as_select())
        .load(conn)
}

/// `UPDATE products SET stock = stock - n WHERE id = ? AND stock >= n`: true when reserved.
/// Needs no row lock and cannot oversell: the condition and the write are one statement.
pub fn reserve_stock(conn: &mut Conn, id: i32, n: i32) -> QueryResult<bool> {
    let rows = diesel::update(
        products::table
            .filter(products::id.eq(id))
            .filter(products::stock.ge(n)),
    )
    .set(products::stock.eq(products::stock - n))
    .execute(conn)?;
    Ok(rows == 1)
}

/// Gives reserved stock back (an order closed).
pub fn release_stock(conn: &mut Conn, id: i32, n: i32) -> QueryResult<usize> {
    diesel::update(products::table.filter(products::id.eq(id)))
        .set(products::stock.eq(products::stock + n))
        .execute(conn)
}

/// Adds `delta` (may be negative) to the stock unless that would go below zero: a change
/// that races with orders, never an overwrite. True when applied.
pub fn adjust_stock(conn: &mut Conn, id: i32, delta: i32) -> QueryResult<bool> {
    let rows = diesel::update(
        products::table
            .filter(products::id.eq(id))
            .filter(products::stock.ge(-delta)),
    )
    .set((
        products::stock.eq(products::stock + delta),
        products::updated_at.eq(super::now()),
    ))
    .execute(conn)?;
    Ok(rows == 1)
}

/// Everything, on sale or not, by id.
pub fn all(conn: &mut Conn) -> QueryResult<Vec<Product>> {
    products::table
        .order(products::id.asc())
        .select(Product::as_select())
        .load(conn)
}

#[derive(Debug, AsChangeset)]
#[diesel(table_name = products)]
pub struct ProductChanges<'a> {
    pub name: &'a str,
    pub price: i64,
    pub main_img_url: &'a str,
    pub summary: &'a str,
    pub on_sale: bool,
    pub updated_at: chrono::NaiveDateTime,
}

pub fn update(conn: &mut Conn, id: i32, c: &ProductChanges<'_>) -> QueryResult<bool> {
    Ok(diesel::update(products::table.find(id))
        .set(c)
        .execute(conn)?
        == 1)
}

//! `shipment`: the parcel sent for an order (carrier, tracking number), one per order.

use super::schema::shipment;
use crate::db::Conn;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = shipment)]
pub struct Shipment {
    pub id: i32,
    pub order_id: i32,
    pub carrier: String,
    pub tracking_no: String,
    pub actor: String,
    pub created_at: chrono::NaiveDateTime,
}

/// Records the parcel (in the caller's transaction); a second one for the order is a unique
/// violation.
pub fn insert(
    conn: &mut Conn,
    order_id: i32,
    carrier: &str,
    tracking_no: &str,
    actor: &str,
) -> QueryResult<usize> {
    let actor: String = actor.chars().take(64).collect();
    diesel::insert_into(shipment::table)
        .values((
            shipment::order_id.eq(order_id),
            shipment::carrier.eq(carrier),
            shipment::tracking_no.eq(tracking_no),
            shipment::actor.eq(actor),
            shipment::created_at.eq(super::now()),
        ))
        .execute(conn)
}

pub fn of_order(conn: &mut Conn, order_id: i32) -> QueryResult<Option<Shipment>> {
    shipment::table
        .filter(shipment::order_id.eq(order_id))
        .select(Shipment::as_select())
        .first(conn)
        .optional()
}

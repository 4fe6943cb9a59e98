//! `order_event`: what happened to an order and who did it, for the admin's timeline.

use super::schema::order_event;
use crate::db::Conn;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_event)]
pub struct OrderEvent {
    pub id: i32,
    pub order_id: i32,
    pub kind: String,
    pub from_status: Option<i32>,
    pub to_status: Option<i32>,
    pub actor: String,
    pub note: String,
    pub created_at: chrono::NaiveDateTime,
}

/// Records an event (in the caller's transaction, beside the change it describes).
pub fn record(
    conn: &mut Conn,
    order_id: i32,
    kind: &str,
    from_to: Option<(i32, i32)>,
    actor: &str,
    note: &str,
) -> QueryResult<usize> {
    let note: String = note.chars().take(255).collect();
    let actor: String = actor.chars().take(64).collect();
    diesel::insert_into(order_event::table)
        .values((
            order_event::order_id.eq(order_id),
            order_event::kind.eq(kind),
            order_event::from_status.eq(from_to.map(|f| f.0)),
            order_event::to_status.eq(from_to.map(|f| f.1)),
            order_event::actor.eq(actor),
            order_event::note.eq(note),
            order_event::created_at.eq(super::now()),
        ))
        .execute(conn)
}

pub fn of_order(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<OrderEvent>> {
    order_event::table
        .filter(order_event::order_id.eq(order_id))
        .order(order_event::id.asc())
        .select(OrderEvent::as_select())
        .load(conn)
}

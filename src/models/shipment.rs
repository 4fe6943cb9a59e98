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
    /// WeChat's 发货信息管理: see `UploadStatus`.
    pub upload_status: i32,
    pub upload_tries: i32,
    pub upload_next_at: Option<chrono::NaiveDateTime>,
    pub upload_error: Option<String>,
}

/// Whether a parcel must be, or was, reported to WeChat (`upload_shipping_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    /// Not paid in the mini-program: nothing to report.
    NotNeeded,
    /// To upload, at `upload_next_at`.
    Pending,
    Uploaded,
    /// Refused by WeChat for good (`upload_error` says why).
    Refused,
}

impl UploadStatus {
    pub const ALL: [UploadStatus; 4] = [
        UploadStatus::NotNeeded,
        UploadStatus::Pending,
        UploadStatus::Uploaded,
        UploadStatus::Refused,
    ];

    pub const fn code(self) -> i32 {
        match self {
            UploadStatus::NotNeeded => 0,
            UploadStatus::Pending => 1,
            UploadStatus::Uploaded => 2,
            UploadStatus::Refused => 3,
        }
    }

    pub fn from_code(code: i32) -> Option<UploadStatus> {
        UploadStatus::ALL.into_iter().find(|s| s.code() == code)
    }
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

/// Marks the order's parcel for upload now (in the caller's transaction).
pub fn require_upload(
    conn: &mut Conn,
    order_id: i32,
    now: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(shipment::table.filter(shipment::order_id.eq(order_id)))
        .set((
            shipment::upload_status.eq(UploadStatus::Pending.code()),
            shipment::upload_next_at.eq(Some(now)),
        ))
        .execute(conn)
}

/// Parcels due for upload, oldest first.
pub fn due_uploads(
    conn: &mut Conn,
    now: chrono::NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Shipment>> {
    shipment::table
        .filter(shipment::upload_status.eq(UploadStatus::Pending.code()))
        .filter(shipment::upload_next_at.le(now))
        .order(shipment::id.asc())
        .limit(limit)
        .select(Shipment::as_select())
        .load(conn)
}

/// Claims a due upload: moves its next try to `retry_at` if it is still due, so two
/// instances do not upload one parcel at once. True when the caller uploads it.
pub fn claim_upload(
    conn: &mut Conn,
    id: i32,
    now: chrono::NaiveDateTime,
    retry_at: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(
        shipment::table
            .filter(shipment::id.eq(id))
            .filter(shipment::upload_status.eq(UploadStatus::Pending.code()))
            .filter(shipment::upload_next_at.le(now)),
    )
    .set(shipment::upload_next_at.eq(Some(retry_at)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Records how an upload went: `status` with the error (if any); a retry at `next_at`.
pub fn record_upload(
    conn: &mut Conn,
    id: i32,
    status: UploadStatus,
    error: Option<&str>,
    next_at: Option<chrono::NaiveDateTime>,
) -> QueryResult<usize> {
    let error: Option<String> = error.map(|e| e.chars().take(255).collect());
    diesel::update(shipment::table.filter(shipment::id.eq(id)))
        .set((
            shipment::upload_status.eq(status.code()),
            shipment::upload_tries.eq(shipment::upload_tries + 1),
            shipment::upload_error.eq(error),
            shipment::upload_next_at.eq(next_at),
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

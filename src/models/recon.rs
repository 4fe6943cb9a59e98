//! `recon_run` and `recon_diff`: the daily reconciliation's result per Beijing day and
//! provider, and its differences. A day run again replaces its run and its differences in
//! one transaction (delete, then insert: portable, no upsert).

use super::schema::{recon_diff, recon_run};
use crate::db::Conn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recon_run)]
pub struct ReconRun {
    #[diesel(skip_insertion)]
    pub id: i32,
    /// `YYYY-MM-DD`, Beijing.
    pub bill_date: String,
    pub provider: String,
    /// `done`, `not_ready` (no bill yet: run again later) or `failed`.
    pub status: String,
    pub payments: i32,
    pub payment_total: i64,
    pub refunds: i32,
    pub refund_total: i64,
    /// The platform's fees, in 1/100000 yuan.
    pub fee_e5: i64,
    pub differences: i32,
    pub error: Option<String>,
    pub finished_at: NaiveDateTime,
}

/// A difference; `id` is the database's (left out when inserted).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recon_diff)]
pub struct ReconDiff {
    #[diesel(skip_insertion)]
    pub id: i32,
    pub bill_date: String,
    pub provider: String,
    pub kind: String,
    pub out_trade_no: Option<String>,
    pub out_refund_no: Option<String>,
    pub order_id: Option<i32>,
    pub shop_value: String,
    pub platform_value: String,
    /// `applied` (补单: paid through apply_payment) or `alarm` (for a person).
    pub action: String,
    pub resolved_by: Option<String>,
    pub resolved_note: Option<String>,
    pub resolved_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// Replaces the run of (`run.bill_date`, `run.provider`) and its differences.
/// A difference found again keeps its resolution (who, when, the note).
pub fn replace(conn: &mut Conn, run: &ReconRun, diffs: &[ReconDiff]) -> QueryResult<()> {
    let day = recon_diff::bill_date.eq(&run.bill_date);
    let provider = recon_diff::provider.eq(&run.provider);
    let resolved: Vec<ReconDiff> = recon_diff::table
        .filter(day)
        .filter(provider)
        .filter(recon_diff::resolved_at.is_not_null())
        .select(ReconDiff::as_select())
        .load(conn)?;
    let same = |old: &ReconDiff, new: &ReconDiff| {
        old.kind == new.kind
            && old.out_trade_no == new.out_trade_no
            && old.out_refund_no == new.out_refund_no
    };
    diesel::delete(recon_diff::table.filter(day).filter(provider)).execute(conn)?;
    diesel::delete(
        recon_run::table
            .filter(recon_run::bill_date.eq(&run.bill_date))
            .filter(recon_run::provider.eq(&run.provider)),
    )
    .execute(conn)?;
    diesel::insert_into(recon_run::table)
        .values(run)
        .execute(conn)?;
    for d in diffs {
        let mut d = d.clone();
        if let Some(old) = resolved.iter().find(|old| same(old, &d)) {
            d.resolved_by = old.resolved_by.clone();
            d.resolved_note = old.resolved_note.clone();
            d.resolved_at = old.resolved_at;
        }
        diesel::insert_into(recon_diff::table)
            .values(&d)
            .execute(conn)?;
    }
    Ok(())
}

/// The run of a day and provider, if there is one.
pub fn run_of(conn: &mut Conn, day: &str, provider: &str) -> QueryResult<Option<ReconRun>> {
    recon_run::table
        .filter(recon_run::bill_date.eq(day))
        .filter(recon_run::provider.eq(provider))
        .select(ReconRun::as_select())
        .first(conn)
        .optional()
}

/// The latest runs, newest day first.
pub fn recent_runs(conn: &mut Conn, limit: i64) -> QueryResult<Vec<ReconRun>> {
    recon_run::table
        .order((recon_run::bill_date.desc(), recon_run::provider.asc()))
        .limit(limit)
        .select(ReconRun::as_select())
        .load(conn)
}

/// The differences of a day (all providers), in the order found.
pub fn diffs_of(conn: &mut Conn, day: &str) -> QueryResult<Vec<ReconDiff>> {
    recon_diff::table
        .filter(recon_diff::bill_date.eq(day))
        .order(recon_diff::id.asc())
        .select(ReconDiff::as_select())
        .load(conn)
}

/// Unresolved differences, newest first.
pub fn unresolved(conn: &mut Conn, limit: i64) -> QueryResult<Vec<ReconDiff>> {
    recon_diff::table
        .filter(recon_diff::resolved_at.is_null())
        .filter(recon_diff::action.eq("alarm"))
        .order(recon_diff::id.desc())
        .limit(limit)
        .select(ReconDiff::as_select())
        .load(conn)
}

/// How many alarms nobody resolved yet.
pub fn unresolved_count(conn: &mut Conn) -> QueryResult<i64> {
    recon_diff::table
        .filter(recon_diff::resolved_at.is_null())
        .filter(recon_diff::action.eq("alarm"))
        .count()
        .get_result(conn)
}

/// Marks a difference resolved by `admin` with `note` (once: a resolved one stays as it was).
pub fn resolve(
    conn: &mut Conn,
    id: i32,
    admin: &str,
    note: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(
        recon_diff::table
            .filter(recon_diff::id.eq(id))
            .filter(recon_diff::resolved_at.is_null()),
    )
    .set((
        recon_diff::resolved_by.eq(admin),
        recon_diff::resolved_note.eq(note),
        recon_diff::resolved_at.eq(at),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

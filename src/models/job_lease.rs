//! `job_lease`: which instance may run a background job now, and how its last run went.
//! Portable compare-and-set only (no upsert, no `FOR UPDATE`), so it works on every backend.

use super::schema::job_lease;
use crate::db::{is_unique_violation, Conn};
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = job_lease)]
pub struct JobLease {
    pub name: String,
    pub holder: String,
    pub expires_at: NaiveDateTime,
    pub last_run_at: Option<NaiveDateTime>,
    pub last_outcome: Option<String>,
    pub runs: i64,
}

/// Takes the lease of job `name` for `holder` until `now + ttl`: the first taker inserts the
/// row; later, an UPDATE succeeds only if the lease has expired or is the holder's own.
/// True when `holder` may run the job.
pub fn acquire(
    conn: &mut Conn,
    name: &str,
    holder: &str,
    now: NaiveDateTime,
    ttl: chrono::Duration,
) -> QueryResult<bool> {
    let until = now + ttl;
    let inserted = diesel::insert_into(job_lease::table)
        .values((
            job_lease::name.eq(name),
            job_lease::holder.eq(holder),
            job_lease::expires_at.eq(until),
            job_lease::runs.eq(0),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => return Ok(true),
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(e),
    }
    let taken = diesel::update(
        job_lease::table.filter(job_lease::name.eq(name)).filter(
            job_lease::expires_at
                .lt(now)
                .or(job_lease::holder.eq(holder)),
        ),
    )
    .set((
        job_lease::holder.eq(holder),
        job_lease::expires_at.eq(until),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Records a finished run of `name` by `holder` (the lease stays until it expires, so no
/// other instance runs the job again within the interval).
pub fn finish(
    conn: &mut Conn,
    name: &str,
    holder: &str,
    now: NaiveDateTime,
    outcome: &str,
) -> QueryResult<usize> {
    let outcome: String = outcome.chars().take(255).collect();
    diesel::update(
        job_lease::table
            .filter(job_lease::name.eq(name))
            .filter(job_lease::holder.eq(holder)),
    )
    .set((
        job_lease::last_run_at.eq(Some(now)),
        job_lease::last_outcome.eq(Some(outcome)),
        job_lease::runs.eq(job_lease::runs + 1),
    ))
    .execute(conn)
}

/// Every job's lease and last run, by name.
pub fn all(conn: &mut Conn) -> QueryResult<Vec<JobLease>> {
    job_lease::table
        // A day's reconciliation holds a lease of its own; it is not a recurring job.
        .filter(job_lease::name.not_like("reconcile:%"))
        .order(job_lease::name.asc())
        .select(JobLease::as_select())
        .load(conn)
}

/// Gives up `holder`'s lease of `name` now (a one-off job that finished: the next caller,
/// from any instance, may run it again at once).
pub fn release(conn: &mut Conn, name: &str, holder: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        job_lease::table
            .filter(job_lease::name.eq(name))
            .filter(job_lease::holder.eq(holder)),
    )
    .set(job_lease::expires_at.eq(now - chrono::Duration::seconds(1)))
    .execute(conn)?;
    Ok(())
}

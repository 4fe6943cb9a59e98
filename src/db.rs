//! The database connection: one enum over the three backends, chosen at run time by URL,
//! a pool, migrations per backend, and the write-transaction helper.
//! May import diesel only; everything above talks to `Conn` and `Pool`.

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{self, CustomizeConnection};
use diesel::{Connection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

/// A connection to whichever backend `DATABASE_URL` names.
#[derive(diesel::MultiConnection)]
pub enum Conn {
    #[cfg(feature = "postgres")]
    Postgresql(diesel::PgConnection),
    #[cfg(feature = "mysql")]
    Mysql(diesel::MysqlConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("mysql://") {
            Backend::Mysql
        } else {
            Backend::Sqlite
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
            Backend::Postgres => "postgres",
        }
    }
}

/// The SQLite file path named by a `sqlite://` URL or a bare path.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// Opens connections by URL scheme and keeps the real error (diesel's derived `establish`
/// tries every backend in turn and discards their errors).
#[derive(Debug)]
pub struct Manager {
    url: String,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Conn, r2d2::Error> {
        use r2d2::Error::ConnectionError as CE;
        let url = self.url.as_str();
        match Backend::of_url(url) {
            #[cfg(feature = "postgres")]
            Backend::Postgres => Ok(Conn::Postgresql(
                diesel::PgConnection::establish(url).map_err(CE)?,
            )),
            #[cfg(feature = "mysql")]
            Backend::Mysql => Ok(Conn::Mysql(
                diesel::MysqlConnection::establish(url).map_err(CE)?,
            )),
            Backend::Sqlite => Ok(Conn::Sqlite(
                SqliteConnection::establish(sqlite_path(url)).map_err(CE)?,
            )),
            #[allow(unreachable_patterns)]
            other => Err(CE(diesel::ConnectionError::InvalidConnectionUrl(format!(
                "this build has no {} support; rebuild with `--features {}`",
                other.name(),
                other.name()
            )))),
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), r2d2::Error> {
        r2d2::R2D2Connection::ping(conn).map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        r2d2::R2D2Connection::is_broken(conn)
    }
}

/// Per-connection settings: SQLite pragmas (they do not persist, except WAL) and
/// statement deadlines on the servers, so no query holds a pooled connection forever.
#[derive(Debug)]
struct SessionSettings;

impl CustomizeConnection<Conn, r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), r2d2::Error> {
        let sql = match conn {
            Conn::Sqlite(_) => {
                // synchronous=FULL: a commit is on disk before it returns, so a payment the
                // shop acknowledged survives a power cut (NORMAL could lose the last ones).
                "PRAGMA busy_timeout=10000; PRAGMA journal_mode=WAL; \
                 PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
            }
            #[cfg(feature = "mysql")]
            Conn::Mysql(_) => "SET SESSION max_statement_time=30; SET SESSION time_zone='+00:00';",
            #[cfg(feature = "postgres")]
            Conn::Postgresql(_) => "SET statement_timeout = 30000; SET TIME ZONE 'UTC';",
        };
        conn.batch_execute(sql).map_err(r2d2::Error::QueryError)
    }
}

/// Builds the pool; for SQLite, creates the file's directory first.
pub fn connect(url: &str, max_size: u32) -> Result<Pool, String> {
    if Backend::of_url(url) == Backend::Sqlite {
        if let Some(dir) = std::path::Path::new(sqlite_path(url)).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
        }
    }
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(10))
        // No `SELECT 1` round trip on every checkout: a connection that broke is noticed by
        // `has_broken` when it comes back, and the request that met it fails and is retried.
        .test_on_check_out(false)
        .connection_customizer(Box::new(SessionSettings))
        .build(Manager {
            url: url.to_string(),
        })
        .map_err(|e| format!("cannot connect to the database: {e}"))
}

fn migrations_of(conn: &Conn) -> EmbeddedMigrations {
    match conn {
        Conn::Sqlite(_) => SQLITE_MIGRATIONS,
        #[cfg(feature = "mysql")]
        Conn::Mysql(_) => MYSQL_MIGRATIONS,
        #[cfg(feature = "postgres")]
        Conn::Postgresql(_) => POSTGRES_MIGRATIONS,
    }
}

/// How many of the binary's migrations the database has not applied yet.
pub fn pending_migrations(conn: &mut Conn) -> Result<usize, String> {
    let set = migrations_of(conn);
    conn.pending_migrations(set)
        .map(|v| v.len())
        .map_err(|e| format!("cannot list migrations: {e}"))
}

/// Applies the pending migrations of the connection's backend; returns how many ran.
pub fn migrate(conn: &mut Conn) -> Result<usize, String> {
    let set = migrations_of(conn);
    conn.run_pending_migrations(set)
        .map(|v| v.len())
        .map_err(|e| format!("migration failed: {e}"))
}

/// Copies a running shop's SQLite database to `target` with `VACUUM INTO`: one consistent
/// snapshot, taken while other connections keep writing. The servers have their own tools.
pub fn backup(url: &str, target: &std::path::Path) -> Result<(), String> {
    match Backend::of_url(url) {
        Backend::Sqlite => {}
        Backend::Mysql => {
            return Err("backup copies SQLite databases; for MariaDB/MySQL use `mysqldump --single-transaction DBNAME > FILE`".into())
        }
        Backend::Postgres => {
            return Err(
                "backup copies SQLite databases; for PostgreSQL use `pg_dump -Fc DBNAME > FILE`"
                    .into(),
            )
        }
    }
    let source = sqlite_path(url);
    if !std::path::Path::new(source).is_file() {
        return Err(format!("no SQLite database at {source}"));
    }
    if target.exists() {
        return Err(format!("{} exists already", target.display()));
    }
    let target = target
        .to_str()
        .ok_or_else(|| format!("{} is not a UTF-8 path", target.display()))?;
    let mut conn = SqliteConnection::establish(source).map_err(|e| e.to_string())?;
    conn.batch_execute("PRAGMA busy_timeout=10000;")
        .map_err(|e| e.to_string())?;
    conn.batch_execute(&format!("VACUUM INTO '{}'", target.replace('\'', "''")))
        .map_err(|e| format!("backup failed: {e}"))
}

/// One writer at a time per process for SQLite (see `write_tx`).
static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How many times a write transaction runs before its conflict reaches the caller. A
/// multi-primary cluster (Galera) fails a conflicting commit on one node when another node's
/// commit on the same rows got there first; under a storm of duplicate notifications on one
/// order a few rounds are common, ten in a row would mean something is wrong.
const TX_ATTEMPTS: u32 = 10;

/// The errors a write transaction may return, so it can tell a database conflict (run it
/// again) from a business refusal (give it back).
pub trait DbFailure {
    /// The database error inside, if this is one.
    fn db_error(&self) -> Option<&diesel::result::Error>;
}

impl DbFailure for diesel::result::Error {
    fn db_error(&self) -> Option<&diesel::result::Error> {
        Some(self)
    }
}

/// A plain message (migrations, backups) carries no database error to retry on.
impl DbFailure for String {
    fn db_error(&self) -> Option<&diesel::result::Error> {
        None
    }
}

thread_local! {
    /// Retries made on this thread since `Db::run` began its call: the hand-off from
    /// `write_tx`, which sees only a connection, to the `Db` that counts them per app.
    static RETRIES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Sleeps before retry `attempt` (1, 2, ...): exponential from `base`, capped at `cap`, with
/// full jitter so the transactions that collided do not collide again in step.
fn backoff(attempt: u32, base: Duration, cap: Duration) {
    use rand::Rng;
    RETRIES.with(|r| r.set(r.get() + 1));
    let ceiling = base.saturating_mul(1 << attempt.min(10)).min(cap);
    let millis = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    std::thread::sleep(Duration::from_millis(
        rand::thread_rng().gen_range(millis / 4..=millis),
    ));
}

/// Runs `f` in a writing transaction, again (a bounded number of times, with jittered
/// backoff) when the database rolled it back for a conflict: a deadlock victim, a
/// serialization failure, a Galera certification failure at commit, a Galera node not ready.
/// The whole transaction runs again, so `f` must not keep state between its runs; nested in
/// another transaction it runs once, and the outer one is retried instead.
///
/// On SQLite it begins with `BEGIN IMMEDIATE`, which takes the write lock up front: a
/// deferred `BEGIN` that reads and then writes fails with "database is locked" under
/// concurrency, whatever the busy timeout.
pub fn write_tx<T, E>(conn: &mut Conn, mut f: impl FnMut(&mut Conn) -> Result<T, E>) -> Result<T, E>
where
    E: From<diesel::result::Error> + DbFailure,
{
    type Tm = <Conn as Connection>::TransactionManager;
    // Irrefutable in a SQLite-only build; the other backends take the `else`.
    #[allow(irrefutable_let_patterns)]
    let Conn::Sqlite(sqlite) = conn
    else {
        let nested = Tm::transaction_manager_status_mut(conn)
            .transaction_depth()
            .map_or(true, |depth| depth.is_some());
        let mut attempt = 1;
        loop {
            match conn.transaction(&mut f) {
                // A connection whose rollback failed too is broken: `Db::run` retries on
                // another one.
                Err(e)
                    if !nested
                        && attempt < TX_ATTEMPTS
                        && e.db_error().is_some_and(is_retryable)
                        && !Tm::is_broken_transaction_manager(conn) =>
                {
                    log::info!(
                        "transaction rolled back by the database (try {attempt}), running it again: {:?}",
                        e.db_error()
                    );
                    backoff(
                        attempt,
                        Duration::from_millis(4),
                        Duration::from_millis(250),
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    };
    // SQLite has one writer. Queueing this process's writers on a mutex wakes the next one
    // the moment the last commits; left to SQLite's busy handler they poll with sleeps of up
    // to 100 ms, which is what the tail latency was made of. Other processes on the same
    // file still meet the busy timeout.
    let _writer = SQLITE_WRITER.lock().unwrap_or_else(|p| p.into_inner());
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(v) => {
            Tm::commit_transaction(conn)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rollback) = Tm::rollback_transaction(conn) {
                log::error!("rollback failed: {rollback}");
            }
            Err(e)
        }
    }
}

/// True when an error is a unique-constraint violation (same meaning on every backend).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// The text of a database error (diesel keeps MariaDB's error number to itself).
fn message(e: &diesel::result::Error) -> &str {
    match e {
        diesel::result::Error::DatabaseError(_, info) => info.message(),
        _ => "",
    }
}

/// True when the database rolled a transaction back and running it again on the same
/// connection is safe and expected: a deadlock or serialization conflict (MariaDB 1213 — also
/// Galera's certification failure at commit —, PostgreSQL 40001/40P01), or a Galera node that
/// is not ready (1047 "WSREP has not yet prepared node for application use", while it leaves
/// or rejoins the cluster).
pub fn is_retryable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        Error::RollbackErrorOnCommit { commit_error, .. } => is_retryable(commit_error),
        Error::DatabaseError(DatabaseErrorKind::Unknown, _) => {
            let m = message(e);
            m.contains("WSREP has not yet prepared node") || m.contains("Deadlock found")
        }
        _ => false,
    }
}

/// True when the connection itself is gone (the server died, was restarted or failed over)
/// or cannot be used again (a rollback failed, as Galera may answer after aborting a
/// transaction): the work can run again on a new connection, never on this one.
pub fn is_connection_lost(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        Error::BrokenTransactionManager => true,
        Error::RollbackErrorOnCommit {
            commit_error,
            rollback_error,
        } => is_connection_lost(commit_error) || is_connection_lost(rollback_error),
        Error::DatabaseError(DatabaseErrorKind::Unknown, _) => {
            // "MySQL server has gone away", "Server has gone away", "Lost connection to…"
            let m = message(e).to_lowercase();
            m.contains("lost connection to") || m.contains("server has gone away")
        }
        _ => false,
    }
}

/// How long `Db::run` keeps trying a unit of work whose connection was lost (or that no
/// connection could be had for): a failover — a standby promoted, a Galera node's clients
/// moved — should take less than this.
const RECONNECT_BUDGET: Duration = Duration::from_secs(20);

/// Runs synchronous database work on the blocking thread pool, off the async workers.
#[derive(Clone)]
pub struct Db {
    pub pool: Pool,
    retries: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    #[error(transparent)]
    Inner(E),
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("blocking task failed: {0}")]
    Join(String),
}

/// The connection failed while committing: the transaction may or may not be durable. (A
/// COMMIT refused as a conflict, Galera's certification failure, did not commit.)
fn commit_uncertain(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::RollbackErrorOnCommit { commit_error, .. }
        if !is_retryable(commit_error))
}

impl Db {
    pub fn new(pool: Pool) -> Db {
        Db {
            pool,
            retries: Default::default(),
        }
    }

    /// Transactions and units of work run again since start (conflicts, lost connections).
    pub fn retries(&self) -> u64 {
        self.retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` with a pooled connection on the blocking pool. When the connection was lost,
    /// or a conflict outlived `write_tx`'s retries (or hit a write outside it), `f` runs again
    /// on a fresh connection, with backoff, for up to `RECONNECT_BUDGET`; so `f` must be safe
    /// to run again, as the shop's compare-and-set writes are. Never after a COMMIT whose
    /// outcome is unknown (the connection died while committing): that error is returned.
    pub async fn run<T, E, F>(&self, mut f: F) -> Result<T, RunError<E>>
    where
        T: Send + 'static,
        E: DbFailure + Send + 'static,
        F: FnMut(&mut Conn) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        let retries = self.retries.clone();
        let joined = tokio::task::spawn_blocking(move || {
            RETRIES.with(|r| r.set(0));
            let started = std::time::Instant::now();
            let mut attempt = 1;
            let result = loop {
                let result = pool
                    .get()
                    .map_err(RunError::Pool)
                    .and_then(|mut conn| run_once(&mut conn, &mut f));
                let again = match &result {
                    Err(RunError::Pool(_)) => true,
                    // A COMMIT that got no answer may have been durable: running the work
                    // again could do it twice (a second order), so it is the caller's error.
                    Err(RunError::Inner(e)) => e.db_error().is_some_and(|e| {
                        !commit_uncertain(e) && (is_connection_lost(e) || is_retryable(e))
                    }),
                    _ => false,
                };
                if !again || started.elapsed() >= RECONNECT_BUDGET {
                    break result;
                }
                log::warn!("database unavailable (try {attempt}), running the work again");
                backoff(attempt, Duration::from_millis(50), Duration::from_secs(2));
                attempt += 1;
            };
            retries.fetch_add(
                RETRIES.with(|r| r.get()),
                std::sync::atomic::Ordering::Relaxed,
            );
            result
        })
        .await;
        joined.map_err(|e| RunError::Join(e.to_string()))?
    }
}

/// One run of `f`; a connection found lost is marked broken so the pool drops it instead of
/// handing it to the next request.
fn run_once<T, E: DbFailure>(
    conn: &mut PooledConn,
    f: &mut impl FnMut(&mut Conn) -> Result<T, E>,
) -> Result<T, RunError<E>> {
    let result = f(conn);
    if let Err(e) = &result {
        if e.db_error().is_some_and(is_connection_lost) {
            <Conn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
                .set_in_error();
        }
    }
    result.map_err(RunError::Inner)
}

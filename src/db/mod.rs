//! Database access: one connection type over PostgreSQL and SQLite, the pool, and migrations.

pub mod explain;
pub mod group;
pub mod schema;
mod threads;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{CacheSize, SimpleConnection};
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::{DatabaseSettings, Settings};
use crate::error::{Error, Result};

/// The PostgreSQL migrations, embedded in the binary (public for the tests that replay an
/// upgrade one migration at a time).
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// The SQLite migrations, embedded in the binary.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A connection to either backend; every query in the crate is written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database a `DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A libpq connection string (`postgres://…` or `postgresql://…`).
    Postgres(String),
    /// A SQLite database file.
    Sqlite(PathBuf),
}

impl Target {
    /// Reads the backend from the URL's scheme. A URL without a scheme is a SQLite file path.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .or_else(|| url.strip_prefix("file:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err("DATABASE_URL names no SQLite file".into());
        }
        if path.contains(":memory:") || path.starts_with(':') {
            return Err(
                "an in-memory SQLite database cannot be shared by the pool: name a file".into(),
            );
        }
        if let Some((scheme, _)) = url.split_once("://") {
            if !scheme.eq_ignore_ascii_case("sqlite") {
                return Err(format!(
                    "unsupported database scheme {scheme:?}: use postgres:// or sqlite://"
                ));
            }
        }
        Ok(Target::Sqlite(PathBuf::from(path)))
    }

    /// A description safe to log: the password of a PostgreSQL URL is masked.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("SQLite at {}", path.display()),
            Target::Postgres(url) => {
                let masked = match (url.find("://"), url.rfind('@')) {
                    (Some(start), Some(at)) if at > start => {
                        let userinfo = &url[start + 3..at];
                        match userinfo.split_once(':') {
                            Some((user, _)) => {
                                format!("{}{user}:***{}", &url[..start + 3], &url[at..])
                            }
                            None => url.clone(),
                        }
                    }
                    _ => url.clone(),
                };
                format!("PostgreSQL at {masked}")
            }
        }
    }
}

/// Opens connections for the pool and prepares each one (SQLite pragmas).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    target: Target,
    sqlite_busy_timeout_ms: u32,
    statement_cache: bool,
}

/// A pooled connection, with a mark the pool reads to drop it after it lost its server.
pub struct PoolConn {
    conn: DbConn,
    broken: bool,
}

impl PoolConn {
    /// The connection itself.
    pub fn conn(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

impl ConnectionManager {
    /// A manager for the database of `settings`.
    pub fn new(settings: &DatabaseSettings) -> Result<Self, String> {
        Ok(ConnectionManager {
            target: Target::parse(&settings.database_url)?,
            sqlite_busy_timeout_ms: settings.sqlite_busy_timeout_ms,
            statement_cache: settings.statement_cache,
        })
    }

    /// The database this manager connects to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Opens and prepares one connection.
    pub fn establish(&self) -> Result<DbConn, diesel::ConnectionError> {
        match &self.target {
            Target::Postgres(url) => {
                // libpq takes the URL as it is: several hosts, `target_session_attrs` and the
                // rest of its parameters pick the server.
                let mut conn = PgConnection::establish(url)?;
                if !self.statement_cache {
                    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
                }
                Ok(DbConn::Pg(conn))
            }
            Target::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // WAL lets readers run beside the writer; busy_timeout makes writers queue
                // instead of failing at once; foreign keys are off by default in SQLite.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {};\
                     PRAGMA journal_mode = WAL;\
                     PRAGMA foreign_keys = ON;\
                     PRAGMA synchronous = FULL;",
                    self.sqlite_busy_timeout_ms
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = PoolConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PoolConn, Self::Error> {
        let conn = self
            .establish()
            .map_err(diesel::r2d2::Error::ConnectionError)?;
        Ok(PoolConn {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut PoolConn) -> Result<(), Self::Error> {
        conn.conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut PoolConn) -> bool {
        conn.broken || conn.conn.is_broken()
    }
}

/// The connection pool, counting the requests that wait for a connection (for metrics), and
/// the database threads that run requests' calls on its connections.
#[derive(Clone)]
pub struct Pool {
    core: Core,
    threads: threads::DbThreads,
}

/// The pool itself: what the database threads hold (not the queue, so that they end with the
/// last `Pool`).
#[derive(Clone)]
struct Core {
    inner: r2d2::Pool<ConnectionManager>,
    waiting: Arc<AtomicUsize>,
    target: Arc<Target>,
    /// Whether the pool's server must take writes: a connection that finds itself on a
    /// read-only server (a standby, or a primary demoted by a failover) is dropped.
    writes: bool,
}

type PooledConn = r2d2::PooledConnection<ConnectionManager>;

impl Pool {
    /// Checks a connection out, waiting at most the checkout timeout (`DB_POOL_TIMEOUT_MS`).
    pub fn get(&self) -> Result<PooledConn, r2d2::Error> {
        self.core.waiting.fetch_add(1, Ordering::Relaxed);
        let conn = self.core.inner.get();
        self.core.waiting.fetch_sub(1, Ordering::Relaxed);
        conn
    }

    /// Open and idle connections.
    pub fn state(&self) -> r2d2::State {
        self.core.inner.state()
    }

    /// The database the pool connects to.
    pub fn target(&self) -> &Target {
        &self.core.target
    }

    /// Requests waiting for a connection or a database thread right now.
    pub fn waiting(&self) -> usize {
        self.core.waiting.load(Ordering::Relaxed)
    }
}

/// Opens one connection (creating a SQLite file and its folder if needed) and applies pending
/// migrations: what the administration commands use.
pub fn connect_one(settings: &DatabaseSettings) -> Result<DbConn, String> {
    let manager = ConnectionManager::new(settings)?;
    open_migrated(&manager)
}

fn open_migrated(manager: &ConnectionManager) -> Result<DbConn, String> {
    if let Target::Sqlite(path) = manager.target() {
        create_parent_dir(path)?;
    }
    let mut conn = manager
        .establish()
        .map_err(|e| format!("cannot connect to {}: {e}", manager.target().describe()))?;
    run_migrations(&mut conn)?;
    Ok(conn)
}

/// Creates the database (SQLite: the file and its folder) if needed, applies pending
/// migrations and opens the pool.
pub fn connect(settings: &Settings) -> Result<Pool, String> {
    let manager = ConnectionManager::new(&settings.database)?;
    drop(open_migrated(&manager)?);
    Ok(open_pool(manager, settings, true))
}

/// Opens the pool for the admin API's dashboard reads: the server `DATABASE_READ_URL` names
/// (a PostgreSQL standby, so no migration runs there, and the database's settings are
/// `DATABASE_URL`'s), or the primary's pool when it names none.
pub fn connect_reads(settings: &Settings, primary: &Pool) -> Result<Pool, String> {
    let Some(url) = settings.database_read_url.as_deref() else {
        return Ok(primary.clone());
    };
    let database = DatabaseSettings {
        database_url: url.to_owned(),
        ..settings.database.clone()
    };
    let manager =
        ConnectionManager::new(&database).map_err(|e| format!("DATABASE_READ_URL: {e}"))?;
    if !matches!(
        (manager.target(), primary.target()),
        (Target::Postgres(_), Target::Postgres(_))
    ) {
        return Err(
            "DATABASE_READ_URL names a PostgreSQL standby, and needs DATABASE_URL on PostgreSQL"
                .into(),
        );
    }
    log::info!("dashboard reads from {}", manager.target().describe());
    Ok(open_pool(manager, settings, false))
}

fn open_pool(manager: ConnectionManager, settings: &Settings, writes: bool) -> Pool {
    let target = Arc::new(manager.target().clone());
    let pool_size = settings.db_pool_size();
    let inner = r2d2::Pool::builder()
        .max_size(settings.db_pool_size())
        .connection_timeout(settings.db_pool_timeout())
        // A check-out query on every request costs a round trip; broken connections are
        // found by `has_broken` instead.
        .test_on_check_out(false)
        // Connections are opened when a request needs one, never in the background: start-up
        // does not wait for a whole pool, and no connection attempt is left running at exit
        // (libpq's teardown would race it).
        .min_idle(Some(0))
        .idle_timeout(Some(Duration::from_secs(600)))
        .build_unchecked(manager);
    let core = Core {
        inner,
        waiting: Arc::new(AtomicUsize::new(0)),
        target,
        writes,
    };
    let threads = threads::DbThreads::start(
        &core,
        settings.db_threads(pool_size),
        settings.db_pool_timeout(),
    );
    Pool { core, threads }
}

fn create_parent_dir(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the folder {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// Applies the embedded migrations of the connection's backend; returns how many ran.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, String> {
    let applied = match conn {
        DbConn::Pg(c) => c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len()),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    }
    .map_err(|e| format!("migrations failed: {e}{}", pooler_hint(&e.to_string())))?;
    if applied > 0 {
        log::info!("applied {applied} database migration(s)");
    }
    Ok(applied)
}

/// What to add to a database error's message for the operator when it is a cached statement
/// that the server connection does not have (or has another of, by the same name): what a
/// pooler in transaction mode (PgBouncer before 1.21) causes, since it sends each transaction
/// to any of its server connections.
pub fn pooler_hint(message: &str) -> &'static str {
    if message.contains("prepared statement \"") {
        " (behind a connection pooler in transaction mode, set DB_STATEMENT_CACHE=false)"
    } else {
        ""
    }
}

/// How many embedded migrations the database has not applied yet.
pub fn pending_migrations(conn: &mut DbConn) -> Result<usize, String> {
    match conn {
        DbConn::Pg(c) => c.pending_migrations(PG_MIGRATIONS).map(|v| v.len()),
        DbConn::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    }
    .map_err(|e| format!("cannot read the applied migrations: {e}"))
}

/// Whether the database of `settings` answers and has every migration applied, checked on a
/// connection of its own (a busy pool says nothing about the database).
pub fn check_ready(settings: &DatabaseSettings) -> Result<usize, String> {
    let manager = ConnectionManager::new(settings)?;
    let mut conn = manager
        .establish()
        .map_err(|e| format!("cannot connect: {e}"))?;
    pending_migrations(&mut conn)
}

/// Runs `f` with a connection checked out of `pool`, on the calling thread.
///
/// A pool that has no free connection within the checkout timeout answers
/// `Error::Unavailable` (503). When `f` fails and the connection no longer answers a ping, the
/// failure was the server going away (a restart, a killed backend, a network cut), whatever
/// error the driver reported for it: the connection is dropped from the pool and the request
/// answered 503 + Retry-After rather than 500. A connection that met a busy SQLite is kept.
pub fn with_conn<T>(pool: &Pool, f: impl FnOnce(&mut DbConn) -> Result<T>) -> Result<T> {
    Kept::default().run(&pool.core, None, f)
}

/// A pooled connection that a database thread or a writer keeps while work keeps coming, and
/// gives back (by [`Kept::release`] or by being dropped) when it runs out.
#[derive(Default)]
struct Kept {
    conn: Option<PooledConn>,
}

impl Kept {
    /// Gives the connection back to the pool.
    fn release(&mut self) {
        self.conn = None;
    }

    /// Runs `f` on the kept connection, checking one out first when none is kept (within
    /// `wait`, or the pool's checkout timeout). A failure on a connection that no longer
    /// answers a ping, or a panic, drops the connection from the pool; the first is answered
    /// `Unavailable`, the second `Internal`.
    fn run<T>(
        &mut self,
        core: &Core,
        wait: Option<Duration>,
        f: impl FnOnce(&mut DbConn) -> Result<T>,
    ) -> Result<T> {
        let pooled = match &mut self.conn {
            Some(pooled) => pooled,
            empty => {
                core.waiting.fetch_add(1, Ordering::Relaxed);
                let checked_out = match wait {
                    Some(wait) => core.inner.get_timeout(wait),
                    None => core.inner.get(),
                };
                core.waiting.fetch_sub(1, Ordering::Relaxed);
                empty.insert(checked_out?)
            }
        };
        let failed = match catch_unwind(AssertUnwindSafe(|| f(&mut pooled.conn))) {
            Ok(Err(err @ (Error::Unavailable | Error::Internal(_))))
                if pooled.conn.ping().is_err() =>
            {
                log::warn!("database connection lost, dropped from the pool: {err:?}");
                Error::Unavailable
            }
            Ok(Err(err @ (Error::Unavailable | Error::Internal(_))))
                if core.writes && read_only(&mut pooled.conn) =>
            {
                // After a failover the old primary may come back as a standby: the next
                // connection goes through libpq's host list (`target_session_attrs`) again.
                log::warn!("database connection is on a read-only server, dropped: {err:?}");
                Error::Unavailable
            }
            Ok(result) => return result,
            Err(_) => {
                // It may have left a transaction open.
                log::error!("a database call panicked; its connection is dropped from the pool");
                Error::Internal("a database call panicked".into())
            }
        };
        pooled.broken = true;
        self.conn = None;
        Err(failed)
    }
}

/// Whether the connection's server refuses writes (a hot standby, or a primary demoted by a
/// failover). SQLite never does; a server that does not answer counts as read-only.
fn read_only(conn: &mut DbConn) -> bool {
    #[derive(diesel::QueryableByName)]
    struct ReadOnly {
        #[diesel(sql_type = diesel::sql_types::Text)]
        transaction_read_only: String,
    }
    match conn {
        DbConn::Sqlite(_) => false,
        DbConn::Pg(conn) => {
            use diesel::RunQueryDsl;
            diesel::sql_query("SHOW transaction_read_only")
                .get_result::<ReadOnly>(conn)
                .map_or(true, |row| row.transaction_read_only != "off")
        }
    }
}

/// [`with_conn`] for request handlers: `f` runs on one of the database threads
/// (`db::threads`), on the connection that thread keeps.
pub async fn run<T, F>(pool: &Pool, f: F) -> Result<T>
where
    F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    pool.threads.run(&pool.core, f).await
}

//! Settings, read from the environment (and `.env`, loaded by `main`) or from command-line flags.
//!
//! Every setting has a safe default so that `cotterd` runs on a fresh machine with none set.
//! [`DatabaseSettings`] are what every command needs (flags before or after the command);
//! [`Settings`] adds what only the server uses, so that `cotterd projects list --bind-addr …` is
//! refused rather than ignored.

use std::time::Duration;

/// Where the embedded SQLite database lives when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/cotterd.db";
/// How long SQLite waits on a locked database by default, in milliseconds.
const DEFAULT_SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;

/// Where the data is: the settings of every command.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseSettings {
    /// Database to use: `postgres://…` / `postgresql://…` for PostgreSQL, `sqlite://PATH` (or a
    /// plain file path) for SQLite.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL,
          hide_env_values = true)]
    pub database_url: String,

    /// How long SQLite waits on a locked database before giving up, in milliseconds.
    #[arg(long, global = true, env = "SQLITE_BUSY_TIMEOUT_MS",
          default_value_t = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
          value_parser = clap::value_parser!(u32).range(0..=600_000))]
    pub sqlite_busy_timeout_ms: u32,

    /// Whether PostgreSQL connections keep their statements prepared, one parse per statement
    /// and connection. Set it to false behind a pooler that does not carry prepared statements
    /// across transactions (PgBouncer in transaction mode, before 1.21): each statement is then
    /// sent with its text, unnamed, in one round trip.
    #[arg(long, global = true, env = "DB_STATEMENT_CACHE", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub statement_cache: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            sqlite_busy_timeout_ms: DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
            statement_cache: true,
        }
    }
}

/// The settings of the server: the database's and its own, in one typed struct.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// The database's settings: parsed as every command's (`main` puts them here), not as flags
    /// of their own.
    #[arg(skip)]
    pub database: DatabaseSettings,

    /// A PostgreSQL server (a streaming-replication standby) for the admin API's dashboard
    /// reads: user lists, searches, counts, sign-up counts and exports. Everything else, every
    /// read a client may make right after its own write included, stays on `DATABASE_URL`.
    /// Unset: every read goes to `DATABASE_URL`.
    #[arg(long, env = "DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<String>,

    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: String,

    /// HTTP worker threads (0: one per CPU core).
    #[arg(long, env = "WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Database connections in the pool (0: four per CPU core). Many more costs read throughput
    /// when the database shares the cores; fewer costs writes, which wait on commits.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub db_pool_size: u32,

    /// How long a request waits for a free database connection before it is answered
    /// 503 with `Retry-After`, in milliseconds.
    #[arg(long, env = "DB_POOL_TIMEOUT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub db_pool_timeout_ms: u64,

    /// Threads that run requests' database calls, each keeping one pooled connection (0: two
    /// per CPU core, at most half the pool, so that the group writers, key loads, transfers and
    /// upkeep find connections too).
    #[arg(long, env = "DB_THREADS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub db_threads: u64,

    /// Threads that commit creates in groups (0: one on SQLite, two on PostgreSQL). Each holds
    /// a pooled connection while its group commits.
    #[arg(long, env = "DB_WRITERS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=64))]
    pub db_writers: u64,

    /// How long a project's keys are cached, in seconds. A revoked secret, a new secret or a
    /// changed project policy takes effect within this time. 0 disables the cache.
    #[arg(long, env = "AUTH_CACHE_TTL_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub auth_cache_ttl_secs: u64,

    /// How many projects' keys the cache holds at most (known and unknown key ids alike).
    #[arg(long, env = "AUTH_CACHE_CAPACITY", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub auth_cache_capacity: u64,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    pub max_body_bytes: u64,

    /// Largest request head accepted (request line and headers), in bytes; larger ones get 431.
    /// (actix itself refuses heads of a few hundred KiB before this is checked.)
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=131_072))]
    pub max_header_bytes: u64,

    /// Highest page number `GET /api/v0/user/list` accepts (50 users a page).
    #[arg(long, env = "MAX_PAGE", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(i64).range(0..=100_000_000))]
    pub max_page: i64,

    /// How long `GET /readyz` waits for the database before answering 503, in milliseconds.
    #[arg(long, env = "READY_TIMEOUT_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub ready_timeout_ms: u64,

    /// How long a client may take to send a request's headers, in milliseconds; slower clients
    /// get 408 and are disconnected.
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub header_timeout_ms: u64,

    /// How long a client may take to send a request's body, in milliseconds; slower clients get
    /// 408.
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub body_timeout_ms: u64,

    /// How long an idle keep-alive connection is kept open, in seconds (0: no keep-alive).
    #[arg(long, env = "KEEP_ALIVE_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub keep_alive_secs: u64,

    /// On SIGTERM: how long requests in flight may take to finish before the server
    /// stops anyway, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_timeout_secs: u64,

    /// Reads (get, list) a project may make per second on average, with bursts of twice that;
    /// past it the answer is 429 with `Retry-After`. 0 turns the limit off.
    #[arg(long, env = "RATE_LIMIT_READS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate_limit_reads: u32,

    /// Writes (creates, KYC updates, account opens) a project may make per second on average,
    /// with bursts of twice that. 0 turns the limit off.
    #[arg(long, env = "RATE_LIMIT_WRITES", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate_limit_writes: u32,

    /// Admin API calls (`/admin/v1/…`) a project may make per second on average, with bursts
    /// of twice that: a budget of their own, so a dashboard cannot starve the project's clients.
    /// 0 turns the limit off.
    #[arg(long, env = "RATE_LIMIT_ADMIN", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate_limit_admin: u32,

    /// Days a soft-deleted user is kept (restorable) before the server purges it for good
    /// (0: never). Several instances may run the purge at once.
    #[arg(long, env = "DELETED_USER_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub deleted_user_retention_days: u32,

    /// Hours the first answer to a create sent with an `Idempotency-Key` is kept and replayed.
    #[arg(long, env = "IDEMPOTENCY_TTL_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(u32).range(1..=720))]
    pub idempotency_ttl_hours: u32,

    /// How far the `timestamp` of a signed login approval (`POST /api/v0/event/create`) may be
    /// from the server's clock, in seconds; an accepted approval is refused if sent again
    /// within twice this time.
    #[arg(long, env = "EVENT_MAX_SKEW_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub event_max_skew_secs: u64,

    /// Days a login event (`POST /api/v0/event/create`) is kept before the server deletes it
    /// (0: kept until its user is purged).
    #[arg(long, env = "EVENT_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub event_retention_days: u32,

    /// When set, `GET /metrics` needs `Authorization: Bearer <this token>`.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Password hashes computed at once (0: one less than the CPU cores, at least 1, so that
    /// reads keep a core while sign-ups are hashed). Each takes 19 MiB while it runs.
    #[arg(long, env = "HASH_CONCURRENCY", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=256))]
    pub hash_concurrency: u32,

    /// Password hashes allowed to wait for a free slot; past that a sign-up gets 503 with
    /// `Retry-After` at once.
    #[arg(long, env = "HASH_QUEUE", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub hash_queue: u64,

    /// Largest import file (`POST /admin/v1/users/import`), in bytes; a larger one gets 413 and
    /// nothing is written. The file is spooled to a temporary file (under `TMPDIR`) while it
    /// arrives, never held in memory.
    #[arg(long, env = "MAX_IMPORT_BYTES", default_value_t = 64 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=(16u64 << 30)))]
    pub max_import_bytes: u64,

    /// Exports and imports one server runs at once (each holds a database connection and a
    /// thread for its duration); past that a request gets 503 with `Retry-After`.
    #[arg(long, env = "TRANSFER_CONCURRENCY", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub transfer_concurrency: u32,

    /// Serves the browser console at `/admin/` and accepts its sessions on the admin API
    /// (`false`: the console's pages and `/admin/v1/session` answer 404, and only the two
    /// headers open the admin API).
    #[arg(long, env = "CONSOLE_ENABLED", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub console_enabled: bool,

    /// Leaves `Secure` off the console's session cookie whatever the address (for a console
    /// reached over plain HTTP on a trusted network). Without it, `Secure` is left off only for a
    /// browser on the server's own machine (loopback server, peer and host, no proxy header).
    #[arg(long, env = "CONSOLE_INSECURE_COOKIES", default_value_t = false,
          action = clap::ArgAction::Set)]
    pub console_insecure_cookies: bool,

    /// Seconds a console session may go unused before it ends.
    #[arg(long, env = "CONSOLE_IDLE_TIMEOUT_SECS", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub console_idle_timeout_secs: u64,

    /// Seconds a console session lasts at most, however it is used.
    #[arg(long, env = "CONSOLE_SESSION_MAX_SECS", default_value_t = 43_200,
          value_parser = clap::value_parser!(u64).range(300..=2_592_000))]
    pub console_session_max_secs: u64,

    /// Console sign-in attempts one client address may make per minute (bursts of as many);
    /// past it the answer is 429 with `Retry-After`. 0 turns the limit off.
    #[arg(long, env = "CONSOLE_SIGNIN_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub console_signin_per_minute: u32,
}

impl Settings {
    /// The defaults, with the given database: what tests and tools start from.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        use clap::{FromArgMatches, Parser};

        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            settings: Settings,
        }
        // Parse an empty command line with the environment ignored, so only defaults apply.
        let matches = <Defaults as clap::CommandFactory>::command()
            .mut_args(|arg| arg.env(None::<&str>))
            .get_matches_from(["cotterd"]);
        let mut settings = Defaults::from_arg_matches(&matches)
            .expect("default settings are valid")
            .settings;
        settings.database.database_url = database_url.into();
        settings
    }

    /// The pool checkout timeout as a duration.
    pub fn db_pool_timeout(&self) -> Duration {
        Duration::from_millis(self.db_pool_timeout_ms)
    }

    /// Connections in the pool, with `0` resolved against the CPU count.
    pub fn db_pool_size(&self) -> u32 {
        match self.db_pool_size {
            0 => std::thread::available_parallelism().map_or(4, |n| n.get() as u32 * 4),
            n => n,
        }
    }

    /// Database threads, with `0` resolved against the CPU count and the pool's size.
    pub fn db_threads(&self, pool_size: u32) -> usize {
        match self.db_threads {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                (cores * 2).min(pool_size as usize / 2).max(1)
            }
            n => n as usize,
        }
    }

    /// Password hashes computed at once, with `0` resolved against the CPU count.
    pub fn hash_concurrency(&self) -> usize {
        match self.hash_concurrency {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1),
            n => n as usize,
        }
    }

    /// The key cache's time to live as a duration.
    pub fn auth_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.auth_cache_ttl_secs)
    }
}

//! The limit of `bench/run`'s SQLite rows: the server's own queries, run directly through
//! diesel on the server's own pool (same pragmas: WAL, `synchronous = FULL`), without HTTP.
//!
//! ```text
//! cargo build --release --example sqlite_bench
//! target/release/examples/sqlite_bench --database-url sqlite:///tmp/b.db --key K --create-key K2 \
//!     --users 40000 --seconds 5 --threads 1,2,4,8
//! ```
//!
//! For each operation, for each thread count, `--seconds` of calls on that many threads (each
//! taking a pooled connection per call, as a request does): get by identifier
//! (`users::find_by_identifier`, identifiers `0`..`--users` of project `--key`, as bench/run
//! seeds them), create (`users::insert` of a new user in project `--create-key`), list page 0
//! (`users::list_page`) and the admin list's first page (`users::admin::page`, 50 active users,
//! newest first). Prints one JSON object: per operation the best rate and its thread count.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cotterd::config::Settings;
use cotterd::ids::ProjectId;
use cotterd::users::admin::{self, Filter, Order, Start, Status};
use cotterd::users::{self, Identifier};
use cotterd::{auth, db, time};

struct Args {
    database_url: String,
    key: String,
    create_key: String,
    users: u64,
    seconds: u64,
    threads: Vec<usize>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        database_url: String::new(),
        key: String::new(),
        create_key: String::new(),
        users: 0,
        seconds: 5,
        threads: vec![1, 2, 4, 8],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--database-url" => args.database_url = value.clone(),
            "--key" => args.key = value.clone(),
            "--create-key" => args.create_key = value.clone(),
            "--users" => args.users = number()?,
            "--seconds" => args.seconds = number()?,
            "--threads" => {
                args.threads = value
                    .split(',')
                    .map(|n| n.parse().map_err(|e| format!("--threads: {e}")))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.database_url.is_empty() || args.key.is_empty() || args.create_key.is_empty() {
        return Err("--database-url, --key and --create-key are needed".into());
    }
    if args.users == 0 {
        return Err("--users must be at least 1".into());
    }
    Ok(args)
}

/// A cheap per-thread random number (xorshift), so that the generator costs nothing next to
/// the query.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One timed operation: called with the thread's number, its call count and its generator.
type Op = Arc<dyn Fn(usize, u64, &mut Rng) -> Result<(), String> + Send + Sync>;

/// Calls `op(thread, n, rng)` on `threads` threads for `seconds`; calls per second.
fn rate(threads: usize, seconds: u64, op: Op) -> Result<f64, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, done, op) = (stop.clone(), done.clone(), op.clone());
            thread::spawn(move || -> Result<(), String> {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) << 32));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    op(t, n, &mut rng)?;
                    n += 1;
                }
                done.fetch_add(n, Ordering::Relaxed);
                Ok(())
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker
            .join()
            .map_err(|_| "a worker panicked".to_owned())??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn project(pool: &db::Pool, key: &str) -> Result<ProjectId, String> {
    let id = cotterd::ids::parse_uuid(key).ok_or("not a key id")?;
    db::with_conn(pool, |conn| auth::project_for_operator(conn, &id)).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sqlite_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let args = args()?;
    let mut settings = Settings::with_database(&args.database_url);
    // One connection per thread at most, as the server's pool would have them free.
    settings.db_pool_size = args.threads.iter().copied().max().unwrap_or(1) as u32;
    settings.db_pool_timeout_ms = 30_000;
    let pool = db::connect(&settings)?;
    let reads = project(&pool, &args.key)?;
    let writes = project(&pool, &args.create_key)?;
    let nonce = std::process::id();
    let users = args.users;
    let err = |e: cotterd::error::Error| e.to_string();

    let mut ops: Vec<(&str, Op)> = Vec::new();
    {
        let (pool, project) = (pool.clone(), reads.clone());
        ops.push((
            "get",
            Arc::new(move |_, _, rng| {
                let identifier = Identifier::parse(&rng.below(users).to_string()).map_err(err)?;
                db::with_conn(&pool, |conn| {
                    users::find_by_identifier(conn, &project, &identifier)
                })
                .map(drop)
                .map_err(err)
            }),
        ));
    }
    {
        let (pool, project) = (pool.clone(), writes.clone());
        // Numbered across every run, so that no identifier is made twice.
        let next = Arc::new(AtomicU64::new(0));
        ops.push((
            "create",
            Arc::new(move |_, _, _| {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let identifier =
                    Identifier::parse(&format!("direct-{nonce}-{n}@example.com")).map_err(err)?;
                let user = users::new_user(&project, identifier, time::now());
                db::with_conn(&pool, |conn| users::insert(conn, user))
                    .map(drop)
                    .map_err(err)
            }),
        ));
    }
    {
        let (pool, project) = (pool.clone(), reads.clone());
        ops.push((
            "list0",
            Arc::new(move |_, _, _| {
                db::with_conn(&pool, |conn| users::list_page(conn, &project, 0))
                    .map(drop)
                    .map_err(err)
            }),
        ));
    }
    {
        let (pool, project) = (pool.clone(), reads.clone());
        ops.push((
            "admin0",
            Arc::new(move |_, _, _| {
                let filter = Filter {
                    status: Status::Active,
                    prefix: None,
                    created_after: None,
                    created_before: None,
                };
                db::with_conn(&pool, |conn| {
                    admin::page(
                        conn,
                        &project,
                        &filter,
                        Order::CreatedDesc,
                        &Start::First,
                        50,
                    )
                })
                .map(drop)
                .map_err(err)
            }),
        ));
    }

    let mut out = serde_json::Map::new();
    for (name, op) in ops {
        let mut best = (0.0f64, 0usize);
        let mut each = serde_json::Map::new();
        for &threads in &args.threads {
            let per_second = rate(threads, args.seconds, op.clone())?;
            eprintln!("== sqlite_bench {name}, {threads} threads: {per_second:.0}/s");
            each.insert(threads.to_string(), serde_json::json!(per_second.round()));
            if per_second > best.0 {
                best = (per_second, threads);
            }
        }
        out.insert(
            name.to_owned(),
            serde_json::json!({"rate": best.0.round(), "threads": best.1, "each": each}),
        );
    }
    Ok(serde_json::Value::Object(out).to_string())
}

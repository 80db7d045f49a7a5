//! A database that keeps every connection busy, and a SQLite file locked past `busy_timeout`:
//! each request answers 503 with `Retry-After` in its API's error shape within the timeout, the
//! probes still answer, nothing is written, and the same requests succeed once it is free.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{init_service, TestRequest};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use futures_util::future::{join, join_all};
use serde_json::{json, Value};

use crate::common::envelope::Api;
use crate::common::{
    create_req, figure, get_by_identifier_req, list_req, send, v2_get_req, v2_open_account_req,
    v2_patch_req, Backend, Keys, Reply, TestApp, TestDb,
};
use cotterd::db::Target;

/// Sends one request and measures how long its answer took.
async fn timed<S, B>(svc: &S, req: TestRequest) -> (Reply, Duration)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let started = Instant::now();
    let reply = send(svc, req).await;
    (reply, started.elapsed())
}

/// Milliseconds with one decimal, for figures.
fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// The nearest-rank percentile `p` (0 to 1) of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The SQLite file of a test database.
fn sqlite_path(db: &TestDb) -> PathBuf {
    match Target::parse(&db.url) {
        Ok(Target::Sqlite(path)) => path,
        other => panic!("not a SQLite database: {other:?}"),
    }
}

/// A user created through the app; returns its id.
async fn create_user<S, B>(svc: &S, keys: &Keys, identifier: &str) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = send(svc, create_req(&keys.id, identifier)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()["ID"].as_str().expect("ID").to_owned()
}

// -- every pool connection busy in the database ------------------------------------------------

const POOL_SIZE: u32 = 2;
const POOL_TIMEOUT_MS: u64 = 300;
/// What a 503 may take beyond the wait it answers for: scheduling on a busy machine. A bound on
/// correctness (the wait is bounded), not a performance target.
const MARGIN_MS: u64 = 700;
/// How long the pool's connections stay busy.
const HOLD: Duration = Duration::from_secs(3);
const REQUESTS: usize = 40;

/// Connections checked out of a pool, each kept busy in the database on a thread of its own until
/// [`HOLD`] has passed.
struct Busy {
    holders: Vec<JoinHandle<()>>,
}

impl Busy {
    /// Checks out every connection of the app's pool and returns once each is busy in the
    /// database: PostgreSQL shows them running `pg_sleep`; on SQLite one holds the write lock
    /// (`BEGIN IMMEDIATE`) and the others a read transaction.
    fn start(app: &TestApp) -> Self {
        let size = app.state.settings.db_pool_size() as usize;
        let backend = app.db.backend;
        let tag = format!("faults_{}", uuid::Uuid::new_v4().simple());
        let (ready, checked_out) = mpsc::channel();
        let holders = (0..size)
            .map(|i| {
                let (pool, ready, tag) = (app.state.pool.clone(), ready.clone(), tag.clone());
                thread::spawn(move || {
                    let mut pooled = pool.get().expect("check a connection out");
                    let conn = pooled.conn();
                    match backend {
                        Backend::Postgres => {
                            ready.send(()).expect("report");
                            let secs = HOLD.as_secs_f64();
                            conn.batch_execute(&format!("SELECT /* {tag} */ pg_sleep({secs})"))
                                .expect("pg_sleep runs to its end");
                        }
                        Backend::Sqlite => {
                            conn.batch_execute(if i == 0 {
                                "BEGIN IMMEDIATE"
                            } else {
                                "BEGIN; SELECT count(*) FROM users;"
                            })
                            .expect("open a transaction");
                            ready.send(()).expect("report");
                            thread::sleep(HOLD);
                            conn.batch_execute("COMMIT").expect("commit");
                        }
                    }
                })
            })
            .collect();
        for _ in 0..size {
            checked_out
                .recv_timeout(Duration::from_secs(10))
                .expect("every pool connection checked out");
        }
        match backend {
            Backend::Postgres => wait_until_sleeping(&app.db.url, &tag, size),
            Backend::Sqlite => assert_write_locked(&sqlite_path(&app.db)),
        }
        Busy { holders }
    }

    /// Waits for the holders to release their connections.
    fn finish(self) {
        for holder in self.holders {
            holder.join().expect("a holder failed");
        }
    }
}

/// Waits until `count` backends run the tagged `pg_sleep`, as PostgreSQL itself reports.
fn wait_until_sleeping(url: &str, tag: &str, count: usize) {
    let mut conn = PgConnection::establish(url).expect("connect to watch");
    let query = format!(
        "(SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
         AND pid <> pg_backend_pid() AND query LIKE '%{tag}%')"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sleeping: i64 = diesel::select(diesel::dsl::sql::<BigInt>(&query))
            .get_result(&mut conn)
            .expect("read pg_stat_activity");
        if sleeping as usize == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sleeping} of {count} connections in pg_sleep"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts another connection holds the SQLite write lock: one that does not wait cannot take it.
fn assert_write_locked(path: &std::path::Path) {
    let mut probe = SqliteConnection::establish(&path.to_string_lossy()).expect("open the file");
    let err = probe
        .batch_execute("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE;")
        .expect_err("the write lock is held");
    assert!(err.to_string().contains("locked"), "{err}");
}

/// The requests sent while the pool is busy, and again once it is free.
#[derive(Debug, Clone, Copy)]
enum Route {
    V0Create,
    V0GetByIdentifier,
    V0GetById,
    V0List,
    V2Get,
    V2Patch,
}

/// What the requests need: a project whose keys are cached, one whose keys are not (loading
/// them takes a connection too), and a user.
struct Fixture {
    warm: Keys,
    cold: Keys,
    user_id: String,
    identifier: String,
}

impl Route {
    const ALL: [Route; 6] = [
        Route::V0Create,
        Route::V0GetByIdentifier,
        Route::V0GetById,
        Route::V0List,
        Route::V2Get,
        Route::V2Patch,
    ];

    fn api(self) -> Api {
        match self {
            Route::V2Get | Route::V2Patch => Api::V2,
            _ => Api::V0,
        }
    }

    /// Whether the `n`th request on this route is of the project whose keys are not cached.
    fn cold(self, n: usize) -> bool {
        matches!(self, Route::V0GetByIdentifier | Route::V0List) && n % 2 == 1
    }

    /// The `n`th request on this route. Gets by identifier and lists alternate between the two
    /// projects; every request answers 200 once the pool is free.
    fn request(self, f: &Fixture, n: usize) -> TestRequest {
        let either = if self.cold(n) { &f.cold } else { &f.warm };
        match self {
            Route::V0Create => create_req(&f.warm.id, &format!("new{n}@example.com")),
            Route::V0GetByIdentifier => get_by_identifier_req(&either.id, &f.identifier),
            Route::V0GetById => TestRequest::get()
                .uri(&format!("/api/v0/user/{}", f.user_id))
                .insert_header(("API_KEY_ID", f.warm.id.as_str())),
            Route::V0List => list_req(either, "0"),
            Route::V2Get => v2_get_req(&f.warm, &f.user_id),
            Route::V2Patch => v2_patch_req(
                &f.warm,
                &f.user_id,
                &json!({ "kyc_id": format!("kyc-{n}") }),
            ),
        }
    }
}

async fn a_busy_pool_answers_503_in_each_apis_shape(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.db_pool_size = POOL_SIZE;
        s.db_pool_timeout_ms = POOL_TIMEOUT_MS;
        s.auth_cache_ttl_secs = 60;
    });
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let (warm, cold) = (app.project("warm"), app.project("cold"));
    let identifier = "held@example.com".to_owned();
    let user_id = create_user(&svc, &warm, &identifier).await;
    let fixture = Fixture {
        warm,
        cold,
        user_id,
        identifier,
    };
    let users_before = app.count_all_users();
    let requests = || (0..REQUESTS).map(|n| (n, Route::ALL[n % Route::ALL.len()]));

    let busy = Busy::start(&app);
    let sent = requests().map(|(n, route)| timed(&svc, route.request(&fixture, n)));
    let health = timed(&svc, TestRequest::get().uri("/healthz"));
    let (replies, (health, health_took)) = join(join_all(sent), health).await;
    let ready = send(&svc, TestRequest::get().uri("/readyz")).await;
    busy.finish();

    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert!(
        health_took < Duration::from_millis(POOL_TIMEOUT_MS),
        "/healthz waited for the pool: {health_took:?}"
    );
    assert_eq!(ready.status, StatusCode::OK, "/readyz: {}", ready.body);
    let mut took = Vec::new();
    for ((n, route), (reply, elapsed)) in requests().zip(&replies) {
        let what = format!("request {n} ({route:?}) after {elapsed:?}");
        reply.assert_unavailable(route.api(), &what);
        // It waited for a connection for the checkout timeout. (Concurrent loads of the cold
        // project's keys are one load: the requests that joined it late get its answer sooner.)
        assert!(
            route.cold(n) || *elapsed >= Duration::from_millis(POOL_TIMEOUT_MS) * 9 / 10,
            "{what}: answered before the checkout timeout"
        );
        took.push(*elapsed);
    }
    took.sort();
    let p99 = percentile(&took, 0.99);
    assert!(
        p99 <= Duration::from_millis(POOL_TIMEOUT_MS + MARGIN_MS),
        "p99 {p99:?} past the checkout timeout of {POOL_TIMEOUT_MS} ms + {MARGIN_MS} ms"
    );
    assert_eq!(app.count_all_users(), users_before, "a 503 wrote a user");

    // The same requests, now that the connections are free.
    let mut creates = 0;
    for (n, route) in requests() {
        let reply = send(&svc, route.request(&fixture, n)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{n} {route:?}: {}",
            reply.body
        );
        creates += usize::from(matches!(route, Route::V0Create));
    }
    assert_eq!(app.count_all_users(), users_before + creates as i64);

    let prefix = format!("pool.{}", backend.label());
    figure(&format!("{prefix}.size"), POOL_SIZE);
    figure(&format!("{prefix}.timeout_ms"), POOL_TIMEOUT_MS);
    figure(&format!("{prefix}.requests"), replies.len());
    figure(&format!("{prefix}.503s"), took.len());
    figure(&format!("{prefix}.p50_ms"), ms(percentile(&took, 0.5)));
    figure(&format!("{prefix}.p99_ms"), ms(p99));
    figure(&format!("{prefix}.max_ms"), ms(took[took.len() - 1]));
    figure(&format!("{prefix}.healthz_ms"), ms(health_took));
}

both_backends!(a_busy_pool_answers_503_in_each_apis_shape);

// -- a SQLite write lock held past busy_timeout ---------------------------------------------------

const BUSY_TIMEOUT_MS: u32 = 300;

/// Writes of each kind, each answering `expected` when the database is free.
fn lock_writes(keys: &Keys, plain: &str, verified: &str) -> Vec<(Api, StatusCode, TestRequest)> {
    (0..3)
        .flat_map(|n| {
            [
                (
                    Api::V0,
                    StatusCode::OK,
                    create_req(&keys.id, &format!("locked{n}@example.com")),
                ),
                (
                    Api::V2,
                    StatusCode::OK,
                    v2_patch_req(keys, plain, &json!({ "kyc_id": "late" })),
                ),
                (
                    Api::V2,
                    StatusCode::CREATED,
                    v2_open_account_req(keys, verified, "checking"),
                ),
            ]
        })
        .collect()
}

/// Reads of each kind; all answer 200.
fn lock_reads(keys: &Keys, plain: &str) -> Vec<TestRequest> {
    (0..2)
        .flat_map(|_| {
            [
                get_by_identifier_req(&keys.id, "plain@example.com"),
                list_req(keys, "0"),
                v2_get_req(keys, plain),
            ]
        })
        .collect()
}

#[actix_web::test]
async fn sqlite_writes_past_busy_timeout_answer_503_while_reads_go_on() {
    let app = TestApp::with_settings(Backend::Sqlite, |s| {
        // Enough connections for every request: only SQLite's lock makes anyone wait.
        s.db_pool_size = 32;
        s.database.sqlite_busy_timeout_ms = BUSY_TIMEOUT_MS;
        s.auth_cache_ttl_secs = 60;
    });
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let keys = app.project("p");
    let plain = create_user(&svc, &keys, "plain@example.com").await;
    let verified = create_user(&svc, &keys, "verified@example.com").await;
    assert_eq!(
        send(
            &svc,
            v2_patch_req(&keys, &verified, &json!({ "kyc_id": "kyc-1" }))
        )
        .await
        .status,
        StatusCode::OK
    );
    let profile = |id: &str| v2_get_req(&keys, id);

    let mut locker =
        SqliteConnection::establish(&sqlite_path(&app.db).to_string_lossy()).expect("open");
    locker
        .batch_execute("BEGIN IMMEDIATE")
        .expect("take the lock");
    let writes = lock_writes(&keys, &plain, &verified);
    let apis: Vec<Api> = writes.iter().map(|(api, ..)| *api).collect();
    let written = join_all(writes.into_iter().map(|(_, _, req)| timed(&svc, req)));
    let read = join_all(
        lock_reads(&keys, &plain)
            .into_iter()
            .map(|r| timed(&svc, r)),
    );
    let (written, read) = join(written, read).await;
    // Nothing was written while the lock was held.
    assert_eq!(app.count_all_users(), 2);
    let unchanged = send(&svc, profile(&plain)).await.json();
    assert_eq!(unchanged["kyc_id"], Value::Null, "{unchanged}");
    let no_accounts = send(&svc, profile(&verified)).await.json();
    assert_eq!(no_accounts["account_ids"], json!([]), "{no_accounts}");
    locker.batch_execute("ROLLBACK").expect("release the lock");

    let mut took = Vec::new();
    for (n, (api, (reply, elapsed))) in apis.iter().zip(&written).enumerate() {
        let what = format!("write {n} after {elapsed:?}");
        reply.assert_unavailable(*api, &what);
        let busy_timeout = Duration::from_millis(BUSY_TIMEOUT_MS.into());
        assert!(
            *elapsed >= busy_timeout * 9 / 10,
            "{what}: SQLite did not wait for its busy timeout"
        );
        assert!(
            *elapsed <= busy_timeout + Duration::from_millis(MARGIN_MS),
            "{what}: waited well past the busy timeout"
        );
        took.push(*elapsed);
    }
    for (reply, elapsed) in &read {
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "a read beside the lock, after {elapsed:?}: {}",
            reply.body
        );
    }

    // The same writes once the lock is gone.
    for (n, (_, expected, req)) in lock_writes(&keys, &plain, &verified)
        .into_iter()
        .enumerate()
    {
        let reply = send(&svc, req).await;
        assert_eq!(reply.status, expected, "write {n}: {}", reply.body);
    }
    assert_eq!(app.count_all_users(), 5);
    assert_eq!(send(&svc, profile(&plain)).await.json()["kyc_id"], "late");
    let opened = send(&svc, profile(&verified)).await.json();
    assert_eq!(opened["account_ids"].as_array().map(Vec::len), Some(3));

    took.sort();
    let read_max = read.iter().map(|(_, d)| *d).max().unwrap_or_default();
    figure("pool.sqlite_lock.busy_timeout_ms", BUSY_TIMEOUT_MS);
    figure("pool.sqlite_lock.writes", took.len());
    figure("pool.sqlite_lock.503s", took.len());
    figure("pool.sqlite_lock.max_ms", ms(took[took.len() - 1]));
    figure("pool.sqlite_lock.reads_ok", read.len());
    figure("pool.sqlite_lock.read_max_ms", ms(read_max));
}

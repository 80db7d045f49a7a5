//! Faults through the real app, and what clients see of them:
//!
//! - every pool connection busy in the database (PostgreSQL: `pg_sleep`; SQLite: an open write
//!   transaction and an open read transaction): each request answers 503 with `Retry-After` in
//!   its API's error shape within the checkout timeout, `/healthz` and `/readyz` still answer,
//!   nothing is written, and the very same requests succeed once the connections are free;
//! - a SQLite write lock held by a connection outside the pool past `busy_timeout`: writes
//!   answer 503 the same way, reads go on beside the lock (WAL);
//! - many concurrent writers and readers on one SQLite file through three server instances over
//!   real sockets (two in this process, each with a pool of its own, and a separate `cotterd`
//!   process): no 5xx, every acknowledged write stored exactly once, nothing stored that was not
//!   acknowledged.
//!
//! Measured numbers are printed as figures (`common::figure`); only correctness bounds are
//! asserted, never speed.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{init_service, TestRequest};
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use futures_util::future::{join, join_all};
use serde_json::{json, Value};

use common::server::{http, start_server, Server};
use common::{
    create_req, figure, get_by_identifier_req, list_req, send, Backend, Keys, Reply, TestApp,
    TestDb,
};
use cotterd::db::schema::{accounts, users};
use cotterd::db::Target;
use cotterd::AppState;

// -- shared helpers -------------------------------------------------------------------------------

/// Which error envelope a route answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// Cotter's `{"msg", "type"}`.
    V0,
    /// Cradl's `{"error_codes", "msg"}`.
    V2,
}

/// Asserts a 503 with `Retry-After: 1` in the API's error shape.
fn assert_unavailable(reply: &Reply, api: Api, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        reply.body
    );
    assert_eq!(
        reply.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "{what}: Retry-After"
    );
    match api {
        Api::V0 => {
            reply.assert_error(StatusCode::SERVICE_UNAVAILABLE);
        }
        Api::V2 => {
            let body = reply.json();
            assert_eq!(
                body["error_codes"],
                json!(["SERVICE_UNAVAILABLE"]),
                "{what}"
            );
            assert!(
                body["msg"].as_str().is_some_and(|m| !m.is_empty()),
                "{what}: {body}"
            );
            assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{what}: {body}");
        }
    }
}

/// A request with both keys, as every v2 route needs.
fn with_keys(req: TestRequest, keys: &Keys) -> TestRequest {
    req.insert_header(("API_KEY_ID", keys.id.as_str()))
        .insert_header(("API_SECRET_KEY", keys.secret.as_str()))
}

fn v2_patch(keys: &Keys, user_id: &str, kyc_id: &str) -> TestRequest {
    with_keys(
        TestRequest::patch()
            .uri(&format!("/v2/users/{user_id}"))
            .set_json(json!({ "kyc_id": kyc_id })),
        keys,
    )
}

fn v2_open_account(keys: &Keys, user_id: &str) -> TestRequest {
    with_keys(
        TestRequest::post()
            .uri("/v2/accounts")
            .set_json(json!({"user_id": user_id, "account_type": "checking"})),
        keys,
    )
}

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

// -- 6. every pool connection busy in the database ----------------------------------------------

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
            Route::V2Get => with_keys(
                TestRequest::get().uri(&format!("/v2/users/{}", f.user_id)),
                &f.warm,
            ),
            Route::V2Patch => v2_patch(&f.warm, &f.user_id, &format!("kyc-{n}")),
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
        assert_unavailable(reply, route.api(), &what);
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

// -- 6'. a SQLite write lock held past busy_timeout ------------------------------------------------

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
                (Api::V2, StatusCode::OK, v2_patch(keys, plain, "late")),
                (
                    Api::V2,
                    StatusCode::CREATED,
                    v2_open_account(keys, verified),
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
                with_keys(TestRequest::get().uri(&format!("/v2/users/{plain}")), keys),
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
        send(&svc, v2_patch(&keys, &verified, "kyc-1")).await.status,
        StatusCode::OK
    );
    let profile = |id: &str| with_keys(TestRequest::get().uri(&format!("/v2/users/{id}")), &keys);

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
        assert_unavailable(reply, *api, &what);
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

// -- 7. SQLite under concurrent writers -----------------------------------------------------------

const WRITERS: usize = 16;
const CREATES_PER_WRITER: usize = 40;
const READERS: usize = 4;
/// Identifiers every writer tries to create once: exactly one create of each may succeed.
const CONTENDED: usize = 5;
/// A generous wait for a connection: this test is about SQLite's locking, not the pool's.
const WRITERS_POOL_TIMEOUT_MS: u64 = 3_000;

/// A server instance serving the app in this process, on a thread with its own actix system.
struct InProcess {
    port: u16,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    fn start(state: AppState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (handle_tx, handle_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(move || cotterd::app(state.clone()))
                    .workers(2)
                    .disable_signals()
                    .listen(listener)
                    .expect("listen")
                    .run();
                handle_tx
                    .send(server.handle())
                    .expect("hand the handle over");
                server.await.expect("the server ran");
            });
        });
        let handle = handle_rx.recv().expect("the server started");
        InProcess {
            port,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `cotterd` binary serving the same database from a process of its own, its log drained
/// as it comes (kept for failure messages).
fn start_process(db: &TestDb) -> (Server, JoinHandle<String>) {
    let timeout = WRITERS_POOL_TIMEOUT_MS.to_string();
    let (server, stderr) = start_server(
        db,
        &[
            ("WORKERS", "2"),
            ("DB_POOL_SIZE", "4"),
            ("DB_POOL_TIMEOUT_MS", &timeout),
            ("RATE_LIMIT_READS", "0"),
            ("RATE_LIMIT_WRITES", "0"),
            ("RUST_LOG", "warn"),
        ],
    );
    let log = thread::spawn(move || {
        let (mut stderr, mut log) = (stderr, String::new());
        let _ = stderr.read_to_string(&mut log);
        log
    });
    (server, log)
}

/// One HTTP/1.1 exchange on a fresh connection with both keys, as a client elsewhere makes it.
fn request(
    port: u16,
    method: &str,
    path: &str,
    keys: &Keys,
    body: Option<&Value>,
) -> (u16, String) {
    let body = body.map(Value::to_string).unwrap_or_default();
    http(
        port,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAPI_KEY_ID: {}\r\n\
             API_SECRET_KEY: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            keys.id,
            keys.secret,
            body.len()
        ),
    )
}

/// Whether a page of users is strictly newest first (`created_at` desc, then `ID` desc).
fn newest_first(page: &[Value]) -> bool {
    let key = |u: &Value| {
        let at = u["created_at"].as_str().unwrap_or_default();
        let at = DateTime::parse_from_rfc3339(at).map(|t| t.with_timezone(&Utc));
        (at.ok(), u["ID"].as_str().unwrap_or_default().to_owned())
    };
    page.windows(2).all(|w| key(&w[0]) > key(&w[1]))
}

/// What one client sent and what the servers acknowledged.
#[derive(Default)]
struct Log {
    requests: usize,
    server_errors: usize,
    busy: usize,
    /// Answers other than the expected ones, for the failure message.
    unexpected: Vec<String>,
    /// Acknowledged creates: (user id, identifier).
    users: Vec<(String, String)>,
    /// Acknowledged KYC references: (user id, kyc_id).
    kyc: Vec<(String, String)>,
    /// Acknowledged account opens, in the order they were acknowledged: (account id, user id).
    accounts: Vec<(String, String)>,
}

/// A client of the three instances, sending one request at a time.
struct Client {
    ports: [u16; 3],
    keys: Keys,
    log: Log,
}

impl Client {
    /// Sends a request to instance `at` (modulo 3). Returns the JSON answer when its status is
    /// one of `expected`; records it as unexpected otherwise.
    fn call(
        &mut self,
        at: usize,
        method: &str,
        path: &str,
        body: Option<Value>,
        expected: &[u16],
    ) -> Option<(u16, Value)> {
        let at = at % self.ports.len();
        let (status, raw) = request(self.ports[at], method, path, &self.keys, body.as_ref());
        self.log.requests += 1;
        self.log.server_errors += usize::from(status >= 500);
        self.log.busy += usize::from(status == 503);
        if !expected.contains(&status) {
            self.log
                .unexpected
                .push(format!("{method} {path} on instance {at}: {status} {raw}"));
            return None;
        }
        Some((status, serde_json::from_str(&raw).unwrap_or(Value::Null)))
    }

    /// Creates a v0 user; returns its id when the create was acknowledged.
    fn create(&mut self, at: usize, identifier: &str, expected: &[u16]) -> Option<String> {
        let body = json!({ "identifier": identifier });
        let (status, user) = self.call(at, "POST", "/api/v0/user/create", Some(body), expected)?;
        if status != 200 {
            return None;
        }
        let id = user["ID"].as_str()?.to_owned();
        self.log.users.push((id.clone(), identifier.to_owned()));
        Some(id)
    }

    /// Creates a v2 user with a password; returns its id.
    fn create_profile(&mut self, at: usize, email: &str) -> Option<String> {
        let body = json!({
            "login": {"email": email, "password": "correct horse battery staple"},
            "phone_number": "+15551234567",
            "first_name": "Ada",
            "last_name": "Lovelace",
        });
        let (_, written) = self.call(at, "POST", "/v2/users", Some(body), &[201])?;
        let id = written["id"].as_str()?.to_owned();
        self.log.users.push((id.clone(), email.to_owned()));
        Some(id)
    }

    fn set_kyc(&mut self, at: usize, user: &str, kyc_id: &str) {
        let path = format!("/v2/users/{user}");
        if self
            .call(
                at,
                "PATCH",
                &path,
                Some(json!({ "kyc_id": kyc_id })),
                &[200],
            )
            .is_some()
        {
            self.log.kyc.push((user.to_owned(), kyc_id.to_owned()));
        }
    }

    fn open_account(&mut self, at: usize, user: &str) {
        let body = json!({"user_id": user, "account_type": "savings"});
        if let Some((_, written)) = self.call(at, "POST", "/v2/accounts", Some(body), &[201]) {
            let id = written["id"].as_str().unwrap_or_default().to_owned();
            self.log.accounts.push((id, user.to_owned()));
        }
    }

    /// Reads a user by identifier on instance `at`: it must be the acknowledged one.
    fn expect_user(&mut self, at: usize, identifier: &str, id: &str) {
        let path = format!("/api/v0/user?identifier={}", common::url_encode(identifier));
        if let Some((_, user)) = self.call(at, "GET", &path, None, &[200]) {
            if user["ID"] != id {
                self.log.unexpected.push(format!(
                    "{identifier} acknowledged as {id}, instance {} reads {user}",
                    at % 3
                ));
            }
        }
    }

    /// Reads a page of the list on instance `at`: it must be in order.
    fn list(&mut self, at: usize, page: usize) {
        let path = format!("/api/v0/user/list?page={page}");
        if let Some((_, users)) = self.call(at, "GET", &path, None, &[200]) {
            let page = users.as_array().cloned().unwrap_or_default();
            if page.len() > 50 || !newest_first(&page) {
                self.log
                    .unexpected
                    .push(format!("page {page:?} out of order or too long"));
            }
        }
    }

    /// The account ids a v2 user lists, oldest first.
    fn account_ids(&mut self, at: usize, user: &str) -> Vec<String> {
        let path = format!("/v2/users/{user}");
        let Some((_, profile)) = self.call(at, "GET", &path, None, &[200]) else {
            return Vec::new();
        };
        profile["account_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One writer's work, spread over the three instances: a v2 user of its own with a KYC
/// reference and two accounts, 40 v0 creates each read back from another instance, KYC updates
/// and accounts on some of them, accounts on a user every writer shares, one create of each
/// contended identifier (some in another case), and list pages.
fn write(w: usize, client: &mut Client, shared: &str) {
    if let Some(own) = client.create_profile(w, &format!("writer{w}@v2.example.com")) {
        client.set_kyc(w + 1, &own, &format!("kyc-writer{w}"));
        client.open_account(w + 2, &own);
        client.open_account(w, &own);
        let opened: Vec<String> = client
            .log
            .accounts
            .iter()
            .filter(|(_, user)| *user == own)
            .map(|(id, _)| id.clone())
            .collect();
        if client.account_ids(w + 1, &own) != opened {
            client
                .log
                .unexpected
                .push(format!("{own} does not list {opened:?} oldest first"));
        }
    }
    for j in 0..CREATES_PER_WRITER {
        let at = w + j;
        let identifier = format!("w{w}-{j}@example.com");
        if let Some(id) = client.create(at, &identifier, &[200]) {
            if j.is_multiple_of(4) {
                client.expect_user(at + 1, &identifier, &id);
            }
            if j % 8 == 3 {
                client.set_kyc(at + 2, &id, &format!("kyc-{w}-{j}"));
                client.open_account(at, &id);
            }
        }
        if j % 10 == 5 {
            client.open_account(at + 1, shared);
        }
        if j % 10 == 9 {
            client.list(at + 2, j % 3);
        }
        if j < CONTENDED {
            let k = (j + w) % CONTENDED;
            let contended = format!("contended{k}@example.com");
            let variant = if w.is_multiple_of(2) {
                contended
            } else {
                contended.to_uppercase()
            };
            client.create(at + 1, &variant, &[200, 409]);
        }
    }
}

/// A reader until `stop`: list pages and gets by identifier, round the instances.
fn read(r: usize, client: &mut Client, stop: &AtomicBool) {
    let mut i = r;
    while !stop.load(Ordering::Relaxed) {
        client.list(i, i % 4);
        let path = format!("/api/v0/user?identifier=w{}-0@example.com", i % WRITERS);
        client.call(i + 1, "GET", &path, None, &[200]);
        i += 1;
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `work` for each client on a thread of its own; returns the clients' logs.
fn run_clients<F>(count: usize, ports: [u16; 3], keys: &Keys, work: F) -> Vec<JoinHandle<Log>>
where
    F: Fn(usize, &mut Client) + Send + Sync + 'static,
{
    let work = Arc::new(work);
    (0..count)
        .map(|i| {
            let (work, keys) = (work.clone(), keys.clone());
            thread::spawn(move || {
                let mut client = Client {
                    ports,
                    keys,
                    log: Log::default(),
                };
                work(i, &mut client);
                client.log
            })
        })
        .collect()
}

/// Asserts that each writer's accounts of the shared user are listed (oldest first) in the order
/// the writer opened them, whichever instance opened each.
fn assert_opening_order_kept(listed: &[String], writer_logs: &[Log], shared: &str) {
    let position: HashMap<&str, usize> = listed
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for (w, log) in writer_logs.iter().enumerate() {
        let mine: Vec<Option<&usize>> = log
            .accounts
            .iter()
            .filter(|(_, user)| user == shared)
            .map(|(id, _)| position.get(id.as_str()))
            .collect();
        assert!(
            mine.iter().all(Option::is_some) && mine.windows(2).all(|p| p[0] < p[1]),
            "writer {w}'s accounts of the shared user, as listed: {mine:?}"
        );
    }
}

/// A stored user: id, identifier, kyc_id.
type UserRow = (String, String, Option<String>);
/// A stored account: id, user id.
type AccountRow = (String, String);

/// The project's users and accounts, as stored.
fn stored_rows(app: &TestApp, issuer: &str) -> (Vec<UserRow>, Vec<AccountRow>) {
    let mut pooled = app.state.pool.get().expect("connection");
    let users = users::table
        .filter(users::issuer.eq(issuer))
        .select((users::id, users::identifier, users::kyc_id))
        .load(pooled.conn())
        .expect("users");
    let accounts = accounts::table
        .filter(accounts::issuer.eq(issuer))
        .select((accounts::id, accounts::user_id))
        .load(pooled.conn())
        .expect("accounts");
    (users, accounts)
}

#[test]
fn sqlite_concurrent_writers_lose_nothing() {
    let app = TestApp::with_settings(Backend::Sqlite, |s| {
        s.db_pool_timeout_ms = WRITERS_POOL_TIMEOUT_MS;
    });
    let keys = app.project("writers");
    let second =
        AppState::open(app.state.settings.clone()).expect("a second instance on the same file");
    let a = InProcess::start(app.state.clone());
    let b = InProcess::start(second);
    let (c, c_log) = start_process(&app.db);
    let ports = [a.port, b.port, c.port];

    // A user every writer opens accounts for.
    let mut setup = Client {
        ports,
        keys: keys.clone(),
        log: Log::default(),
    };
    let shared = setup
        .create(0, "shared@example.com", &[200])
        .expect("the shared user");
    setup.set_kyc(1, &shared, "kyc-shared");

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = {
        let stop = stop.clone();
        run_clients(READERS, ports, &keys, move |r, client| {
            read(r, client, &stop)
        })
    };
    let shared_user = shared.clone();
    let writers = run_clients(WRITERS, ports, &keys, move |w, client| {
        write(w, client, &shared_user)
    });
    let writer_logs: Vec<Log> = writers
        .into_iter()
        .map(|t| t.join().expect("a writer panicked"))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let reader_logs: Vec<Log> = readers
        .into_iter()
        .map(|t| t.join().expect("a reader panicked"))
        .collect();
    let elapsed = started.elapsed();

    let listed = setup.account_ids(2, &shared);
    assert_opening_order_kept(&listed, &writer_logs, &shared);
    drop((a, b, c));
    let c_log = c_log.join().unwrap_or_default();

    let logs: Vec<&Log> = writer_logs
        .iter()
        .chain(&reader_logs)
        .chain([&setup.log])
        .collect();
    let unexpected: Vec<&String> = logs.iter().flat_map(|l| &l.unexpected).collect();
    let requests: usize = logs.iter().map(|l| l.requests).sum();
    let server_errors: usize = logs.iter().map(|l| l.server_errors).sum();
    let busy: usize = logs.iter().map(|l| l.busy).sum();

    // What the database holds against what was acknowledged.
    let (rows, account_rows) = stored_rows(&app, &keys.id);
    let acknowledged: HashMap<&str, &str> = logs
        .iter()
        .flat_map(|l| &l.users)
        .map(|(id, identifier)| (id.as_str(), identifier.as_str()))
        .collect();
    let stored: HashMap<&str, (&str, Option<&str>)> = rows
        .iter()
        .map(|(id, identifier, kyc)| (id.as_str(), (identifier.as_str(), kyc.as_deref())))
        .collect();
    let lost: Vec<&&str> = acknowledged
        .keys()
        .filter(|id| stored.get(*id).map(|(i, _)| i) != acknowledged.get(*id))
        .collect();
    let extra: Vec<&&str> = stored
        .keys()
        .filter(|id| !acknowledged.contains_key(*id))
        .collect();
    let wrong_kyc: Vec<&(String, String)> = logs
        .iter()
        .flat_map(|l| &l.kyc)
        .filter(|(id, kyc)| stored.get(id.as_str()).and_then(|(_, k)| *k) != Some(kyc.as_str()))
        .collect();
    let opened: HashSet<(&str, &str)> = logs
        .iter()
        .flat_map(|l| &l.accounts)
        .map(|(id, user)| (id.as_str(), user.as_str()))
        .collect();
    let account_set: HashSet<(&str, &str)> = account_rows
        .iter()
        .map(|(id, user)| (id.as_str(), user.as_str()))
        .collect();
    let per_contended: Vec<usize> = (0..CONTENDED)
        .map(|k| {
            let name = format!("contended{k}@example.com");
            acknowledged
                .values()
                .filter(|i| i.eq_ignore_ascii_case(&name))
                .count()
        })
        .collect();

    figure("sqlite_writers.instances", ports.len());
    figure("sqlite_writers.writers", WRITERS);
    figure("sqlite_writers.readers", READERS);
    figure("sqlite_writers.requests", requests);
    figure("sqlite_writers.acknowledged", acknowledged.len());
    figure("sqlite_writers.rows", rows.len());
    figure("sqlite_writers.lost", lost.len());
    figure("sqlite_writers.extra_rows", extra.len());
    figure("sqlite_writers.accounts", account_rows.len());
    figure("sqlite_writers.5xx", server_errors);
    figure("sqlite_writers.busy_503s", busy);
    figure("sqlite_writers.elapsed_ms", elapsed.as_millis());

    assert!(
        unexpected.is_empty(),
        "unexpected answers: {unexpected:#?}\nthe process's log: {c_log}"
    );
    assert_eq!(server_errors, 0);
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(extra.is_empty(), "stored but never acknowledged: {extra:?}");
    assert_eq!(rows.len(), acknowledged.len());
    assert!(
        wrong_kyc.is_empty(),
        "acknowledged KYC not stored: {wrong_kyc:?}"
    );
    assert_eq!(account_set, opened, "accounts stored against acknowledged");
    assert_eq!(account_rows.len(), opened.len());
    assert_eq!(
        per_contended,
        vec![1; CONTENDED],
        "creates of each contended identifier"
    );
    let expected_users = 1 + WRITERS * (1 + CREATES_PER_WRITER) + CONTENDED;
    assert_eq!(
        acknowledged.len(),
        expected_users,
        "every create acknowledged"
    );
}

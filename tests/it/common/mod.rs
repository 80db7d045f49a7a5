//! Test harness: the real actix app over a real database, SQLite (a temp file) or the
//! PostgreSQL server on 127.0.0.1:5432 (a fresh schema per test, dropped afterwards).
//!
//! `TEST_DATABASE_URL` names the PostgreSQL server's maintenance database (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the tests work in a database `cotterd_test`
//! on that server, created when missing. An unreachable server fails the test with a clear
//! message: nothing is skipped.
//!
//! Beside it: the route catalogue the security suites iterate (`catalogue`), the error shapes
//! of each API (`envelope`), requests built once and sent in process or over a socket (`req`),
//! what the database holds (`rows`) and the real binary (`server`).

pub mod catalogue;
pub mod envelope;
pub mod req;
pub mod rows;
pub mod server;
pub mod statements;

use cotterd::audit::Context;
use std::sync::OnceLock;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use serde_json::Value;

use cotterd::config::Settings;
use cotterd::{projects, AppState};

/// The database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The password of every test sign-up.
pub const PASSWORD: &str = "correct horse battery staple";
/// A device's public key as React Native and Flutter enroll it: a raw Ed25519 key (from a fixed
/// seed), standard base64.
pub fn device_key() -> String {
    use base64::Engine;
    let signing = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    base64::engine::general_purpose::STANDARD.encode(signing.verifying_key().to_bytes())
}

/// The `encKey` of an enrollment check for [`device_key`]: base64url of the key string.
pub fn device_enc_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(device_key())
}

/// A body enrolling [`device_key`] as a trusted device.
pub fn enroll_device_body() -> Value {
    serde_json::json!({
        "method": "TRUSTED_DEVICE",
        "enrolled": true,
        "code": device_key(),
        "algorithm": "ED25519",
    })
}

/// A signed login approval for the user named `user` whose signature is wrong: answered
/// 200 `approved: false`, and no failed attempt of a secret.
pub fn unsigned_event_body(user: &str) -> Value {
    serde_json::json!({
        "client_user_id": user,
        "event": "LOGIN_OR_UPDATE_NAME",
        "ip": "192.0.2.1",
        "location": "unknown",
        "timestamp": chrono::Utc::now().timestamp().to_string(),
        "method": "TRUSTED_DEVICE",
        "code": "AAAA",
        "approved": true,
    })
}

/// The id of Cotter's zero user (an identifier with no user).
pub const NIL_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Runs each named `async fn(Backend)` as two tests, `sqlite::NAME` and `postgres::NAME`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

const TEST_DATABASE: &str = "cotterd_test";

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `admin_url` with its database swapped for `database`.
fn url_for(database: &str) -> String {
    let admin = admin_url();
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("&{query}")
    };
    format!("{server}/{database}?sslmode=disable{query}")
}

fn connect_pg(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url}: {e}\n\
             The tests need the server on 127.0.0.1:5432 (start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or \
             TEST_DATABASE_URL naming another."
        )
    })
}

/// Creates the shared test database once per test process.
fn ensure_test_database() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let mut admin = connect_pg(&admin_url());
        let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{TEST_DATABASE}')"
        )))
        .get_result(&mut admin)
        .expect("query pg_database");
        if !exists {
            // Another test process may create it at the same moment: that is fine.
            if let Err(e) = admin.batch_execute(&format!("CREATE DATABASE {TEST_DATABASE}")) {
                let msg = e.to_string();
                assert!(
                    msg.contains("already exists") || msg.contains("duplicate key"),
                    "cannot create the test database: {msg}"
                );
            }
        }
    });
}

/// A database of its own for one test, removed when dropped.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<String>,
}

impl TestDb {
    pub fn new(backend: Backend) -> Self {
        statements::install();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDb {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_schema: None,
                }
            }
            Backend::Postgres => {
                ensure_test_database();
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let base = url_for(TEST_DATABASE);
                connect_pg(&base)
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .expect("create test schema");
                TestDb {
                    url: format!("{base}&options=-c%20search_path%3D{schema}"),
                    backend,
                    _dir: None,
                    pg_schema: Some(schema),
                }
            }
        }
    }
}

impl TestDb {
    /// A PostgreSQL test database's schema (its `search_path`).
    pub fn pg_schema(&self) -> &str {
        self.pg_schema
            .as_deref()
            .expect("a PostgreSQL test database")
    }

    /// A connection to the PostgreSQL server as the tests' administrator (not in the test's
    /// schema): for what a test does to the server around the app.
    pub fn pg_admin(&self) -> PgConnection {
        connect_pg(&url_for(TEST_DATABASE))
    }

    /// This PostgreSQL test database's URL with `hosts` (libpq's `host:port,host:port` list)
    /// instead of its server, logged in as `role` with `password`, and `extra` parameters
    /// (`&name=value…`) after its own.
    pub fn pg_url_as(&self, hosts: &str, role: &str, password: &str, extra: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL");
        let (_, after_userinfo) = rest.rsplit_once('@').unwrap_or(("", rest));
        let (_, path) = after_userinfo
            .split_once('/')
            .expect("a database in the URL");
        format!("{scheme}://{role}:{password}@{hosts}/{path}{extra}")
    }

    /// The `host:port` of the PostgreSQL server the tests use.
    pub fn pg_host(&self) -> String {
        let rest = self.url.split_once("://").expect("a URL").1;
        let after_userinfo = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let host = after_userinfo
            .split_once('/')
            .map_or(after_userinfo, |(host, _)| host);
        if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:5432")
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            statements::assert_none_failed();
        }
        if let Some(schema) = &self.pg_schema {
            if let Ok(mut conn) = PgConnection::establish(&url_for(TEST_DATABASE)) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// Settings for tests: a small pool, no rate limits (`ops` tests them), and the defaults
/// otherwise.
pub fn test_settings(db: &TestDb) -> Settings {
    let mut settings = Settings::with_database(&db.url);
    settings.db_pool_size = 4;
    settings.rate_limit_reads = 0;
    settings.rate_limit_writes = 0;
    settings.rate_limit_admin = 0;
    settings
}

/// The app's state over a fresh database. Keep the `TestDb` alive as long as the state.
pub struct TestApp {
    pub state: AppState,
    pub db: TestDb,
}

impl TestApp {
    pub fn new(backend: Backend) -> Self {
        Self::with_settings(backend, |_| {})
    }

    pub fn with_settings(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::new(backend);
        let mut settings = test_settings(&db);
        adjust(&mut settings);
        let state = AppState::open(settings).expect("open the test database");
        TestApp { state, db }
    }

    /// A new project: its `API_KEY_ID` and first `API_SECRET_KEY`.
    pub fn project(&self, name: &str) -> Keys {
        self.project_with_policy(name, false)
    }

    pub fn project_with_policy(&self, name: &str, require_secret: bool) -> Keys {
        let mut conn = self.state.pool.get().expect("connection");
        let (project, secret) =
            projects::create(conn.conn(), name, require_secret, &Context::cli())
                .expect("create project");
        Keys {
            id: project.id,
            secret: secret.secret,
        }
    }

    /// The id a project's queries are scoped by, for its keys (checked as a server checks them).
    pub fn project_id(&self, keys: &Keys) -> cotterd::ids::ProjectId {
        let mut conn = self.state.pool.get().expect("connection");
        cotterd::auth::verify_keys(conn.conn(), &keys.id, &keys.secret)
            .expect("the project's keys")
            .id()
            .clone()
    }
}

/// A project's keys.
#[derive(Debug, Clone)]
pub struct Keys {
    pub id: String,
    pub secret: String,
}

/// What a request got back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one request through the app.
pub async fn send<S, B>(app: &S, req: TestRequest) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = test::read_body(res).await;
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
    }
}

/// `POST /api/v0/user/create` with `API_KEY_ID` and a JSON body.
pub fn create_req(key: &str, identifier: &str) -> TestRequest {
    TestRequest::post()
        .uri("/api/v0/user/create")
        .insert_header(("API_KEY_ID", key))
        .set_json(serde_json::json!({ "identifier": identifier }))
}

/// `GET /api/v0/user?identifier=…` with `API_KEY_ID`.
pub fn get_by_identifier_req(key: &str, identifier: &str) -> TestRequest {
    let query: String = url_encode(identifier);
    TestRequest::get()
        .uri(&format!("/api/v0/user?identifier={query}"))
        .insert_header(("API_KEY_ID", key))
}

/// `req` with both of a project's keys, as the list and every v2 route need.
pub fn with_keys(req: TestRequest, keys: &Keys) -> TestRequest {
    req.insert_header(("API_KEY_ID", keys.id.as_str()))
        .insert_header(("API_SECRET_KEY", keys.secret.as_str()))
}

/// `GET /api/v0/user/list?page=N` with both keys.
pub fn list_req(keys: &Keys, page: &str) -> TestRequest {
    with_keys(
        TestRequest::get().uri(&format!("/api/v0/user/list?page={page}")),
        keys,
    )
}

/// A v2 sign-up body.
pub fn v2_user(email: &str, password: &str, phone: &str, first_name: &str) -> Value {
    serde_json::json!({
        "login": {"email": email, "password": password},
        "phone_number": phone,
        "first_name": first_name,
        "last_name": "Lovelace",
    })
}

/// `POST /v2/users` with both keys.
pub fn v2_create_req(keys: &Keys, body: &Value) -> TestRequest {
    with_keys(TestRequest::post().uri("/v2/users").set_json(body), keys)
}

/// `GET /v2/users/{id}` with both keys.
pub fn v2_get_req(keys: &Keys, id: &str) -> TestRequest {
    with_keys(TestRequest::get().uri(&format!("/v2/users/{id}")), keys)
}

/// `PATCH /v2/users/{id}` with both keys and `body`.
pub fn v2_patch_req(keys: &Keys, id: &str, body: &Value) -> TestRequest {
    with_keys(
        TestRequest::patch()
            .uri(&format!("/v2/users/{id}"))
            .set_json(body),
        keys,
    )
}

/// `POST /v2/accounts` with both keys.
pub fn v2_open_account_req(keys: &Keys, user_id: &str, account_type: &str) -> TestRequest {
    with_keys(
        TestRequest::post()
            .uri("/v2/accounts")
            .set_json(serde_json::json!({"user_id": user_id, "account_type": account_type})),
        keys,
    )
}

/// `id` (v2) or `ID` (v0) of a successful reply.
pub fn reply_id(reply: &Reply) -> String {
    let json = reply.json();
    json.get("id")
        .or_else(|| json.get("ID"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no id in {}", reply.body))
        .to_owned()
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Prints one measured figure as `figure: NAME = VALUE`. `reliability/run` runs the suites with
/// `--nocapture` and gathers these lines into its table; `cargo test` shows them with
/// `-- --nocapture`.
pub fn figure(name: &str, value: impl std::fmt::Display) {
    println!("figure: {name} = {value}");
}

impl Backend {
    /// `sqlite` or `postgres`, for figure names.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// One round of the server's upkeep (`janitor::round`), run as the server runs it: on a thread
/// of the server's, so that `statements` hears and checks what it sends.
pub fn upkeep(
    pool: &cotterd::db::Pool,
    at: chrono::NaiveDateTime,
    keep: cotterd::janitor::Keep,
) -> (cotterd::janitor::Round, Option<cotterd::error::Error>) {
    let pool = pool.clone();
    std::thread::Builder::new()
        .name(statements::UPKEEP_THREAD.into())
        .spawn(move || cotterd::janitor::round(&pool, at, keep))
        .expect("start the upkeep thread")
        .join()
        .expect("the upkeep round panicked")
}

//! `cotterd copy`, the real binary between real databases: a source filled through the CLI and
//! the APIs (every table holding rows) copied SQLite → PostgreSQL → SQLite and PostgreSQL →
//! SQLite → PostgreSQL, every row equal on every side (and byte for byte after a round trip), a
//! server on each copy answering as the source did, new events taking fresh ids; the refusals
//! (a non-empty target, an unknown table or column, pending or unknown migrations) that write
//! nothing; and the copier's table list held equal to a freshly migrated database's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::process::{Command, Output};

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::test::init_service;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::{json, Value};

use crate::common::req::{call, Req};
use crate::common::rows::{AccountRow, UserRow};
use crate::common::server::{send_wire, start_server};
use crate::common::{
    device_key, enroll_device_body, v2_user, Backend, Keys, TestApp, TestDb, PASSWORD,
};
use cotterd::config::DatabaseSettings;
use cotterd::db::schema::{
    accounts, audit_events, console_sessions, credential_attempts, events, idempotency_keys,
    project_secrets, projects, used_signatures, user_identifiers, user_methods, users,
};
use cotterd::db::{ConnectionManager, DbConn, Target};

// ---------------------------------------------------------------------------------------------
// The binary and the databases
// ---------------------------------------------------------------------------------------------

/// `cotterd ARGS` with `DATABASE_URL` naming a file that must stay untouched (the copy ignores
/// it).
fn cotterd(args: &[&str]) -> Output {
    let unused = tempfile::tempdir().unwrap();
    let decoy = unused.path().join("unused.db");
    let output = Command::new(env!("CARGO_BIN_EXE_cotterd"))
        .args(args)
        .env("DATABASE_URL", format!("sqlite://{}", decoy.display()))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cotterd");
    if args.first() == Some(&"copy") {
        assert!(!decoy.exists(), "copy opened DATABASE_URL");
    }
    output
}

/// `cotterd ARGS` on `db`, which must succeed: its standard output.
fn cli(db: &TestDb, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_cotterd"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cotterd");
    success(&output)
}

fn success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "cotterd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `cotterd copy --from FROM --to TO`, which must succeed: its standard output.
fn copy(from: &TestDb, to: &TestDb) -> String {
    success(&cotterd(&["copy", "--from", &from.url, "--to", &to.url]))
}

/// `cotterd copy`, which must fail with `expected` in its message; the message.
fn refused(from: &str, to: &str, expected: &str) -> String {
    let output = cotterd(&["copy", "--from", from, "--to", to]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "copy succeeded: {stderr}");
    assert!(
        stderr.starts_with("cotterd: ") && stderr.contains(expected),
        "expected {expected:?} in {stderr}"
    );
    stderr
}

/// A project made with the CLI: its keys.
fn cli_project(db: &TestDb) -> Keys {
    let out = cli(db, &["projects", "create", "--name", "Demo", "--json"]);
    let keys: Value = serde_json::from_str(&out).unwrap();
    Keys {
        id: keys["api_key_id"].as_str().unwrap().to_owned(),
        secret: keys["api_secret_key"].as_str().unwrap().to_owned(),
    }
}

/// A connection of the server's own kind (no migration run).
fn connect(url: &str) -> DbConn {
    let settings = DatabaseSettings {
        database_url: url.to_owned(),
        ..DatabaseSettings::default()
    };
    ConnectionManager::new(&settings)
        .unwrap()
        .establish()
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

fn execute(db: &TestDb, sql: &str) {
    connect(&db.url)
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// How many tables the database has (0 for a SQLite file that does not exist: not created).
fn table_count(db: &TestDb) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let sql = match Target::parse(&db.url).unwrap() {
        Target::Sqlite(path) if !path.exists() => return 0,
        Target::Sqlite(_) => "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'",
        Target::Postgres(_) => {
            "SELECT count(*) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
    };
    diesel::sql_query(sql)
        .get_result::<Count>(&mut connect(&db.url))
        .unwrap()
        .n
}

// ---------------------------------------------------------------------------------------------
// What the databases hold
// ---------------------------------------------------------------------------------------------

fn lines<T: Debug>(rows: QueryResult<Vec<T>>) -> Vec<String> {
    rows.expect("read a table")
        .iter()
        .map(|row| format!("{row:?}"))
        .collect()
}

type Time = NaiveDateTime;

/// Every row of every table, every column, in primary-key order, as the server reads them
/// (each row's `Debug` form: times to the nanosecond, binary as bytes, NULL as `None`).
fn dump(db: &TestDb) -> BTreeMap<&'static str, Vec<String>> {
    let conn = &mut connect(&db.url);
    BTreeMap::from([
        (
            "projects",
            lines(
                projects::table
                    .select(projects::all_columns)
                    .order(projects::id)
                    .load::<(String, String, bool, Time)>(conn),
            ),
        ),
        (
            "project_secrets",
            lines(
                project_secrets::table
                    .select(project_secrets::all_columns)
                    .order(project_secrets::id)
                    .load::<(String, String, String, Vec<u8>, Time, Option<Time>)>(conn),
            ),
        ),
        (
            "users",
            lines(
                users::table
                    .select(users::all_columns)
                    .order(users::id)
                    .load::<UserRow>(conn),
            ),
        ),
        (
            "user_identifiers",
            lines(
                user_identifiers::table
                    .select(user_identifiers::all_columns)
                    .order((
                        user_identifiers::user_id,
                        user_identifiers::identifier_normalized,
                    ))
                    .load::<(String, String, String, Option<Time>)>(conn),
            ),
        ),
        (
            "user_methods",
            lines(
                user_methods::table
                    .select(user_methods::all_columns)
                    .order(user_methods::id)
                    .load::<(
                        String,
                        String,
                        String,
                        String,
                        String,
                        Option<String>,
                        Option<String>,
                        Option<String>,
                        Option<String>,
                        Option<String>,
                        Time,
                        Time,
                    )>(conn),
            ),
        ),
        (
            "credential_attempts",
            lines(
                credential_attempts::table
                    .select(credential_attempts::all_columns)
                    .order((
                        credential_attempts::user_id,
                        credential_attempts::credential,
                    ))
                    .load::<(String, String, String, i32, Option<Time>)>(conn),
            ),
        ),
        (
            "events",
            lines(
                events::table
                    .select(events::all_columns)
                    .order(events::id)
                    .load::<(
                        i64,
                        String,
                        String,
                        String,
                        String,
                        String,
                        String,
                        String,
                        String,
                        bool,
                        Time,
                    )>(conn),
            ),
        ),
        (
            "used_signatures",
            lines(
                used_signatures::table
                    .select(used_signatures::all_columns)
                    .order((used_signatures::issuer, used_signatures::signature_hash))
                    .load::<(String, String, Time)>(conn),
            ),
        ),
        (
            "accounts",
            lines(
                accounts::table
                    .select(accounts::all_columns)
                    .order(accounts::id)
                    .load::<AccountRow>(conn),
            ),
        ),
        (
            "audit_events",
            lines(
                audit_events::table
                    .select(audit_events::all_columns)
                    .order(audit_events::id)
                    .load::<(
                        String,
                        String,
                        Time,
                        String,
                        String,
                        Option<String>,
                        Option<String>,
                        String,
                    )>(conn),
            ),
        ),
        (
            "console_sessions",
            lines(
                console_sessions::table
                    .select(console_sessions::all_columns)
                    .order(console_sessions::id)
                    .load::<(String, String, Vec<u8>, String, Time, Time, Option<Time>)>(conn),
            ),
        ),
        (
            "idempotency_keys",
            lines(
                idempotency_keys::table
                    .select(idempotency_keys::all_columns)
                    .order((idempotency_keys::issuer, idempotency_keys::key))
                    .load::<(
                        String,
                        String,
                        Vec<u8>,
                        Time,
                        Option<i32>,
                        Option<String>,
                        Option<Vec<u8>>,
                        Option<String>,
                    )>(conn),
            ),
        ),
    ])
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Every table as the database itself stores it, its rows sorted: on SQLite each value
/// `quote()`d (its storage class and exact bytes: a timestamp's text, a blob's hex), on
/// PostgreSQL each row's text form. diesel's migration table is left out (its times differ).
fn raw_dump(db: &TestDb) -> BTreeMap<String, Vec<String>> {
    let mut conn = connect(&db.url);
    let tables = cotterd::copy::catalogue(&mut conn).unwrap();
    let mut dump = BTreeMap::new();
    for table in tables.keys() {
        let sql = match &conn {
            DbConn::Sqlite(_) => {
                #[derive(QueryableByName)]
                struct Column {
                    #[diesel(sql_type = Text)]
                    name: String,
                }
                let columns: Vec<Column> = diesel::sql_query(format!(
                    "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
                ))
                .load(&mut conn)
                .unwrap();
                let values: Vec<String> = columns
                    .iter()
                    .map(|c| format!("quote(\"{}\")", c.name))
                    .collect();
                format!(
                    "SELECT {} AS line FROM \"{table}\"",
                    values.join(" || '|' || ")
                )
            }
            DbConn::Pg(_) => format!("SELECT t::text AS line FROM \"{table}\" t"),
        };
        let mut rows: Vec<String> = diesel::sql_query(sql)
            .load::<Line>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
        rows.sort();
        dump.insert(table.clone(), rows);
    }
    dump
}

// ---------------------------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------------------------

const LOGIN: &str = "LOGIN_OR_UPDATE_NAME";
const PIN: &str = "135790";

/// A database filled through the CLI and the APIs so that every table holds rows, with what
/// the APIs answered about its users.
struct Source {
    app: TestApp,
    keys: Keys,
    /// `GET /api/v0/user?identifier=a@x.io` (PIN and device enrolled, events, attempts).
    user_a: Value,
    /// `GET /v2/users/{id}` of the v2 user (password, kyc id, account; disabled).
    user_b: (String, Value),
    /// `GET /admin/v1/users/{id}` of the soft-deleted user.
    user_c: (String, Value),
    /// The id of the newest event, whose row was then deleted: a new event must get the next.
    last_event_id: i64,
}

async fn ok<S, B>(svc: &S, req: Req) -> Value
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &req).await;
    assert!(
        reply.status.is_success(),
        "{}: {} {}",
        req.describe(),
        reply.status,
        reply.body
    );
    if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()
    }
}

/// A PIN login event of the user `app-a`.
fn pin_event(keys: &Keys, code: &str) -> Req {
    Req::post("/api/v0/event/create")
        .key_id(&keys.id)
        .json(&json!({
            "client_user_id": "app-a", "issuer": keys.id, "event": LOGIN, "ip": "192.0.2.1",
            "location": "unknown", "timestamp": "1591234567", "method": "PIN", "code": code,
            "approved": true, "public_key": "", "algorithm": "",
        }))
}

fn get_a(keys: &Keys) -> Req {
    Req::get("/api/v0/user?identifier=a@x.io").key_id(&keys.id)
}

fn get_b(keys: &Keys, id: &str) -> Req {
    Req::get(format!("/v2/users/{id}")).keys(keys)
}

fn get_c(keys: &Keys, id: &str) -> Req {
    Req::get(format!("/admin/v1/users/{id}")).keys(keys)
}

async fn fill(backend: Backend) -> Source {
    let app = TestApp::new(backend);
    let keys = cli_project(&app.db);
    // A second secret, revoked: a `revoked_at`.
    let second: Value = serde_json::from_str(&cli(
        &app.db,
        &["secrets", "create", "--project", &keys.id, "--json"],
    ))
    .unwrap();
    let second = second["api_secret_key"].as_str().unwrap();
    let prefix = &second[..cotterd::projects::SECRET_PREFIX.len() + 8];
    cli(
        &app.db,
        &[
            "secrets",
            "revoke",
            "--project",
            &keys.id,
            "--secret-prefix",
            prefix,
        ],
    );

    let svc = init_service(cotterd::app(app.state.clone())).await;
    // v0: the app's id, two identifiers, an Idempotency-Key; a PIN and a device key; a right
    // PIN, then a wrong one (counted), then a signed approval (a used signature).
    let body = json!({"client_user_id": "app-a", "identifiers": ["a@x.io", "a2@x.io"]});
    let create = Req::post("/api/v0/user/create")
        .key_id(&keys.id)
        .header("Idempotency-Key", "create-a")
        .json(&body);
    let a = ok(&svc, create).await;
    let a_id = a["ID"].as_str().unwrap().to_owned();
    let put = |body: Value| {
        Req::new(Method::PUT, format!("/api/v0/user/{a_id}"))
            .key_id(&keys.id)
            .json(&body)
    };
    ok(
        &svc,
        put(json!({"method": "PIN", "enrolled": true, "code": PIN})),
    )
    .await;
    ok(&svc, put(enroll_device_body())).await;
    assert_eq!(ok(&svc, pin_event(&keys, PIN)).await["approved"], true);
    assert_eq!(
        ok(&svc, pin_event(&keys, "975310")).await["approved"],
        false
    );
    let ts = chrono::Utc::now().timestamp().to_string();
    let signing = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let message = format!("app-a{}{LOGIN}{ts}TRUSTED_DEVICEtrue", keys.id);
    let signature = {
        use ed25519_dalek::Signer;
        STANDARD.encode(signing.sign(message.as_bytes()).to_bytes())
    };
    let signed = Req::post("/api/v0/event/create")
        .key_id(&keys.id)
        .json(&json!({
            "client_user_id": "app-a", "issuer": keys.id, "event": LOGIN, "ip": "192.0.2.1",
            "location": "unknown", "timestamp": ts, "method": "TRUSTED_DEVICE",
            "code": signature, "approved": true, "public_key": device_key(),
            "algorithm": "ED25519",
        }));
    let signed = ok(&svc, signed).await;
    assert_eq!(signed["approved"], true, "{signed}");

    // v2: a password, a kyc id, an account (with an Idempotency-Key), a failed password check;
    // then disabled through the admin API.
    let b = ok(
        &svc,
        Req::post("/v2/users").keys(&keys).json(&v2_user(
            "b@x.io",
            PASSWORD,
            "+15551234567",
            "Ada",
        )),
    )
    .await;
    let b_id = b["id"].as_str().unwrap().to_owned();
    ok(
        &svc,
        Req::patch(format!("/v2/users/{b_id}"))
            .keys(&keys)
            .json(&json!({"kyc_id": "kyc-b"})),
    )
    .await;
    ok(
        &svc,
        Req::post("/v2/accounts")
            .keys(&keys)
            .header("Idempotency-Key", "open-b")
            .json(&json!({"user_id": b_id, "account_type": "savings"})),
    )
    .await;
    let wrong = Req::post("/v2/users/verify")
        .keys(&keys)
        .json(&json!({"email": "b@x.io", "password": "not the password"}));
    assert!(call(&svc, &wrong).await.status.is_client_error());
    ok(
        &svc,
        Req::post(format!("/admin/v1/users/{b_id}/disable")).keys(&keys),
    )
    .await;

    // A user soft-deleted through the admin API.
    let c = ok(
        &svc,
        Req::post("/api/v0/user/create")
            .key_id(&keys.id)
            .json(&json!({"identifier": "c@x.io"})),
    )
    .await;
    let c_id = c["ID"].as_str().unwrap().to_owned();
    ok(
        &svc,
        Req::new(Method::DELETE, format!("/admin/v1/users/{c_id}")).keys(&keys),
    )
    .await;

    // A console session.
    ok(
        &svc,
        Req::post("/admin/v1/session").json(&json!({"key_id": keys.id, "secret": keys.secret})),
    )
    .await;

    let user_a = ok(&svc, get_a(&keys)).await;
    let user_b = ok(&svc, get_b(&keys, &b_id)).await;
    let user_c = ok(&svc, get_c(&keys, &c_id)).await;
    assert_eq!(user_c["status"], "deleted", "{user_c}");

    // The newest event goes (as the upkeep or a purge removes events): its id stays used.
    let last_event_id = {
        let mut conn = app.state.pool.get().unwrap();
        let last: i64 = events::table
            .select(diesel::dsl::max(events::id))
            .first::<Option<i64>>(conn.conn())
            .unwrap()
            .unwrap();
        diesel::delete(events::table.find(last))
            .execute(conn.conn())
            .unwrap();
        last
    };

    for (table, rows) in dump(&app.db) {
        assert!(!rows.is_empty(), "the source has no {table} row");
    }
    Source {
        app,
        keys,
        user_a,
        user_b: (b_id, user_b),
        user_c: (c_id, user_c),
        last_event_id,
    }
}

// ---------------------------------------------------------------------------------------------
// Checks of a copy
// ---------------------------------------------------------------------------------------------

/// The command's output: what it copies from and to, a line per table with its rows, a final
/// line; nothing secret.
fn assert_report(out: &str, source: &Source) {
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("copying "), "{out}");
    let rows = dump(&source.app.db);
    let tables = cotterd::copy::tables();
    assert_eq!(lines.len(), tables.len() + 2, "{out}");
    for (table, line) in tables.iter().zip(&lines[1..]) {
        let n = rows[table.name].len();
        let expected = format!(
            "{}: {n} {} copied, checksum ",
            table.name,
            if n == 1 { "row" } else { "rows" }
        );
        assert!(line.starts_with(&expected), "{line} (expected {expected})");
    }
    assert!(lines.last().unwrap().ends_with("committed"), "{out}");
    for secret in [&source.keys.secret, "$argon2", PASSWORD, PIN] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
}

/// A server on `copy` answers as the source did, and a new event takes the id after the
/// newest the source ever handed out.
fn answers_like_the_source(source: &Source, copy: &TestDb) {
    let (server, _log) = start_server(copy, &[("RUST_LOG", "warn")]);
    let keys = &source.keys;
    let answer = |req: Req| {
        let (status, body) = send_wire(server.port, &req);
        assert!(
            (200..300).contains(&status),
            "{}: {status} {body}",
            req.describe()
        );
        serde_json::from_str::<Value>(&body).unwrap()
    };
    assert_eq!(answer(get_a(keys)), source.user_a);
    assert_eq!(answer(get_b(keys, &source.user_b.0)), source.user_b.1);
    assert_eq!(answer(get_c(keys, &source.user_c.0)), source.user_c.1);
    let event = answer(pin_event(keys, PIN));
    assert_eq!(event["approved"], true, "{event}");
    assert_eq!(event["ID"], source.last_event_id + 1, "{event}");
}

/// Copying into `target` again is refused, and leaves it as it was.
fn refuses_a_non_empty_target(source: &Source, target: &TestDb) {
    let before = dump(target);
    refused(
        &source.app.db.url,
        &target.url,
        "is not empty: table `projects`",
    );
    assert_eq!(dump(target), before);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// SQLite → PostgreSQL (outgrowing SQLite), then back to a new SQLite file: every row equal,
/// the round trip byte for byte; servers on both copies answer as the source did.
#[actix_web::test]
async fn copies_sqlite_to_postgres_and_back() {
    let source = fill(Backend::Sqlite).await;
    let pg = TestDb::new(Backend::Postgres);
    let out = copy(&source.app.db, &pg);
    assert_report(&out, &source);
    assert_eq!(dump(&pg), dump(&source.app.db));

    let back = TestDb::new(Backend::Sqlite);
    assert_report(&copy(&pg, &back), &source);
    assert_eq!(dump(&back), dump(&source.app.db));
    assert_eq!(raw_dump(&back), raw_dump(&source.app.db));

    refuses_a_non_empty_target(&source, &pg);
    answers_like_the_source(&source, &pg);
    answers_like_the_source(&source, &back);
}

/// PostgreSQL → SQLite, then back to a new PostgreSQL schema: every row equal, the round trip
/// byte for byte; a server on the SQLite copy answers as the source did.
#[actix_web::test]
async fn copies_postgres_to_sqlite_and_back() {
    let source = fill(Backend::Postgres).await;
    let lite = TestDb::new(Backend::Sqlite);
    assert_report(&copy(&source.app.db, &lite), &source);
    assert_eq!(dump(&lite), dump(&source.app.db));

    let back = TestDb::new(Backend::Postgres);
    assert_report(&copy(&lite, &back), &source);
    assert_eq!(dump(&back), dump(&source.app.db));
    assert_eq!(raw_dump(&back), raw_dump(&source.app.db));

    refuses_a_non_empty_target(&source, &lite);
    answers_like_the_source(&source, &lite);
}

/// Between two databases of the same backend, in batches of one row.
async fn copies_within_a_backend(backend: Backend) {
    let source = TestDb::new(backend);
    let keys = cli_project(&source);
    cli(&source, &["secrets", "create", "--project", &keys.id]);
    let target = TestDb::new(backend);
    let out = success(&cotterd(&[
        "copy",
        "--from",
        &source.url,
        "--to",
        &target.url,
        "--batch",
        "1",
    ]));
    assert!(out.contains("project_secrets: 2 rows copied"), "{out}");
    assert!(out.contains("audit_events: 3 rows copied"), "{out}");
    assert_eq!(dump(&target), dump(&source));
    assert_eq!(raw_dump(&target), raw_dump(&source));
}

/// A target that does not hold what was written (here a trigger alters each project) fails the
/// check: the copy is rolled back, the target left without a row.
async fn a_copy_that_differs_is_rolled_back(backend: Backend) {
    let source = TestDb::new(backend);
    cli_project(&source);
    let target = TestDb::new(backend);
    cli(&target, &["migrate"]);
    execute(
        &target,
        match backend {
            Backend::Sqlite => {
                "CREATE TRIGGER tamper AFTER INSERT ON projects BEGIN \
                 UPDATE projects SET name = 'tampered' WHERE id = NEW.id; END;"
            }
            Backend::Postgres => {
                "CREATE FUNCTION tamper() RETURNS trigger AS $$ \
                 BEGIN NEW.name := 'tampered'; RETURN NEW; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER tamper BEFORE INSERT ON projects \
                 FOR EACH ROW EXECUTE FUNCTION tamper();"
            }
        },
    );
    let stderr = refused(
        &source.url,
        &target.url,
        "projects: the copy differs from the source (source 1 row, checksum ",
    );
    assert!(
        stderr.contains("nothing was written to the target"),
        "{stderr}"
    );
    for (table, rows) in dump(&target) {
        assert!(rows.is_empty(), "{table} holds {rows:?}");
    }
}

/// What the copier cannot copy whole is refused before the target is touched (not even
/// created or migrated): the same database twice, a missing source, a table or a column it
/// does not know, pending migrations or migrations of a newer cotterd.
async fn refuses_what_it_cannot_copy_whole(backend: Backend) {
    let source = TestDb::new(backend);
    cli_project(&source);
    let other = match backend {
        Backend::Sqlite => Backend::Postgres,
        Backend::Postgres => Backend::Sqlite,
    };
    let target = TestDb::new(other);
    let untouched = || assert_eq!(table_count(&target), 0, "the target was touched");

    refused(&source.url, &source.url, "the same database");
    let gone = TestDb::new(Backend::Sqlite);
    refused(&gone.url, &target.url, "does not exist");
    untouched();

    execute(
        &source,
        "CREATE TABLE nicknames (user_id TEXT PRIMARY KEY, nickname TEXT)",
    );
    refused(
        &source.url,
        &target.url,
        "a table `nicknames` that the copier does not know",
    );
    untouched();
    execute(&source, "DROP TABLE nicknames");

    execute(&source, "ALTER TABLE users ADD COLUMN nickname TEXT");
    refused(&source.url, &target.url, "a column `users.nickname`");
    untouched();
    execute(&source, "ALTER TABLE users DROP COLUMN nickname");

    execute(
        &source,
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('99991231000000')",
    );
    refused(&source.url, &target.url, "which this cotterd does not know");
    untouched();
    execute(
        &source,
        "DELETE FROM __diesel_schema_migrations WHERE version = '99991231000000'",
    );

    // As it was again, it copies.
    let out = success(&cotterd(&[
        "copy",
        "--from",
        &source.url,
        "--to",
        &target.url,
    ]));
    assert!(out.contains("projects: 1 row copied"), "{out}");
}

/// A source with a pending migration is refused: `cotterd migrate` upgrades it first (the copy
/// never migrates its source).
async fn refuses_a_source_with_pending_migrations(backend: Backend) {
    let source = TestDb::new(backend);
    cli_project(&source);
    let target = TestDb::new(backend);
    execute(
        &source,
        "DELETE FROM __diesel_schema_migrations \
         WHERE version = (SELECT max(version) FROM __diesel_schema_migrations)",
    );
    let stderr = refused(&source.url, &target.url, "1 pending migration(s)");
    assert!(stderr.contains("`cotterd migrate`"), "{stderr}");
    assert_eq!(table_count(&target), 0, "the target was touched");
}

/// The copier handles exactly the tables and columns of a freshly migrated database, and the
/// serial columns: a migration that adds a table or a column fails here until the copier
/// copies it.
async fn the_copier_knows_every_table_and_column(backend: Backend) {
    let app = TestApp::new(backend);
    let mut conn = connect(&app.db.url);
    let found = cotterd::copy::catalogue(&mut conn).unwrap();
    let known: BTreeMap<String, BTreeSet<String>> = cotterd::copy::tables()
        .iter()
        .map(|t| {
            let columns = t.columns.iter().map(|c| c.to_string()).collect();
            (t.name.to_owned(), columns)
        })
        .collect();
    assert_eq!(found, known);

    let serial_sql = match backend {
        Backend::Postgres => {
            "SELECT table_name::text || '.' || column_name::text AS line \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND (column_default LIKE 'nextval(%' \
               OR is_identity = 'YES')"
        }
        Backend::Sqlite => {
            "SELECT m.name || '.' || p.name AS line \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.sql LIKE '%AUTOINCREMENT%' AND p.pk = 1"
        }
    };
    let serial: BTreeSet<String> = diesel::sql_query(serial_sql)
        .load::<Line>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    let known_serial: BTreeSet<String> = cotterd::copy::tables()
        .iter()
        .filter_map(|t| t.serial.map(|c| format!("{}.{c}", t.name)))
        .collect();
    assert_eq!(serial, known_serial);
}

both_backends!(
    copies_within_a_backend,
    a_copy_that_differs_is_rolled_back,
    refuses_what_it_cannot_copy_whole,
    refuses_a_source_with_pending_migrations,
    the_copier_knows_every_table_and_column,
);

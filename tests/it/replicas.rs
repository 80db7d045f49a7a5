//! Past one database server, on PostgreSQL: which reads `DATABASE_READ_URL` serves, a
//! connection that finds itself on a read-only server (a primary demoted by a failover), and a
//! multi-host `DATABASE_URL` that goes to the host that takes writes.
//!
//! A standby is played by what makes one observable: a stale copy of the primary's schema for
//! the read pool (`cotterd copy`, then writes on the primary alone), and, for a demoted primary,
//! a login role whose new sessions are read-only (`default_transaction_read_only`) with its
//! existing sessions terminated. `reliability/run` fails over to a real streaming standby.

use actix_web::http::StatusCode;
use actix_web::test::init_service;
use diesel::connection::SimpleConnection;
use diesel::PgConnection;
use serde_json::Value;

use crate::common::req::{call, call_ok, Req};
use crate::common::{test_settings, url_encode, Backend, Keys, Reply, TestApp, TestDb, NIL_ID};
use cotterd::config::DatabaseSettings;
use cotterd::AppState;

/// The identifiers an admin list answer holds.
fn listed(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["identifier"].as_str().expect("identifier").to_owned())
        .collect()
}

fn create(keys: &Keys, identifier: &str) -> Req {
    Req::post("/api/v0/user/create")
        .key_id(&keys.id)
        .json(&serde_json::json!({ "identifier": identifier }))
}

fn get_by_identifier(keys: &Keys, identifier: &str) -> Req {
    Req::get(format!(
        "/api/v0/user?identifier={}",
        url_encode(identifier)
    ))
    .key_id(&keys.id)
}

#[actix_web::test]
async fn dashboard_reads_come_from_the_read_server_and_client_reads_from_the_primary() {
    let app = TestApp::new(Backend::Postgres);
    let keys = app.project("replicas");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let early = call_ok(&svc, &create(&keys, "early@example.com")).await;

    // The "standby": the primary as it is now, in a schema of its own.
    let replica = TestDb::new(Backend::Postgres);
    let settings = |url: &str| DatabaseSettings {
        database_url: url.to_owned(),
        ..DatabaseSettings::default()
    };
    cotterd::copy::run(
        &settings(&app.db.url),
        &settings(&replica.url),
        1000,
        &mut std::io::sink(),
    )
    .expect("copy the primary into the replica");

    // The read server is reached as a role whose sessions are read-only, as a standby's are:
    // a write sent there by mistake fails the test.
    let mut reader = Role::new(&replica);
    reader.grant_reads(&replica);
    reader.set_read_only(true);

    // Written on the primary alone from here on: the replica is stale.
    let late = call_ok(&svc, &create(&keys, "late@example.com")).await;
    let late_id = late["ID"].as_str().expect("ID").to_owned();

    let mut both = test_settings(&app.db);
    both.database_read_url =
        Some(replica.pg_url_as(&replica.pg_host(), &reader.name, ROLE_PASSWORD, ""));
    let state = AppState::open(both).expect("open with a read server");
    let svc = init_service(cotterd::app(state)).await;

    // The dashboard reads answer from the replica: it has the early user and not the late one.
    let list = call_ok(
        &svc,
        &Req::get("/admin/v1/users?status=all&include_total=true").keys(&keys),
    )
    .await;
    assert_eq!(listed(&list), ["early@example.com"], "{list}");
    assert_eq!(list["total"], 1, "{list}");
    let found = call_ok(&svc, &Req::get("/admin/v1/users?q=late").keys(&keys)).await;
    assert_eq!(listed(&found), Vec::<String>::new(), "{found}");
    let count = call_ok(
        &svc,
        &Req::get("/admin/v1/users/count?status=all").keys(&keys),
    )
    .await;
    assert_eq!(count["count"], 1, "{count}");
    let signups = call_ok(
        &svc,
        &Req::get("/admin/v1/stats/signups?days=2").keys(&keys),
    )
    .await;
    let signed_up: i64 = signups
        .as_array()
        .expect("days")
        .iter()
        .map(|day| day["count"].as_i64().expect("count"))
        .sum();
    assert_eq!(signed_up, 1, "{signups}");
    let export = call(&svc, &Req::get("/admin/v1/users/export").keys(&keys)).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    let exported: Vec<String> = export
        .body
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("an NDJSON record");
            record["identifier"]
                .as_str()
                .expect("identifier")
                .to_owned()
        })
        .collect();
    assert_eq!(exported, ["early@example.com"]);
    // The export's audit event is written on the primary, where the audit trail is read.
    let audit = call_ok(&svc, &Req::get("/admin/v1/audit?limit=10").keys(&keys)).await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert!(actions.contains(&"users.export"), "{audit}");

    // What a client reads right after its own write comes from the primary: the late user is
    // there, never Cotter's zero user.
    let by_identifier = call_ok(&svc, &get_by_identifier(&keys, "late@example.com")).await;
    assert_eq!(by_identifier["ID"], late_id.as_str(), "{by_identifier}");
    assert_ne!(by_identifier["ID"], NIL_ID);
    let by_id = call_ok(
        &svc,
        &Req::get(format!("/api/v0/user/{late_id}")).key_id(&keys.id),
    )
    .await;
    assert_eq!(by_id["ID"], late_id.as_str(), "{by_id}");
    let admin_user = call_ok(
        &svc,
        &Req::get(format!("/admin/v1/users/{late_id}")).keys(&keys),
    )
    .await;
    assert_eq!(admin_user["identifier"], "late@example.com", "{admin_user}");
    let v2 = call_ok(&svc, &Req::get(format!("/v2/users/{late_id}")).keys(&keys)).await;
    assert_eq!(v2["id"], late_id.as_str(), "{v2}");
    let taken = call(&svc, &create(&keys, "late@example.com")).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert_ne!(early["ID"], late["ID"]);
}

#[actix_web::test]
async fn the_read_server_must_be_postgresql_beside_postgresql() {
    let sqlite = TestDb::new(Backend::Sqlite);
    let postgres = TestDb::new(Backend::Postgres);
    for (primary, read) in [(&sqlite, &postgres), (&postgres, &sqlite)] {
        let mut settings = test_settings(primary);
        settings.database_read_url = Some(read.url.clone());
        let err = AppState::open(settings)
            .err()
            .expect("a read server that is not PostgreSQL beside PostgreSQL is refused");
        assert!(err.contains("DATABASE_READ_URL"), "{err}");
    }
}

/// A login role of its own for one test, able to work in the test's schema; dropped with what it
/// owns when the test ends.
struct Role {
    name: String,
    admin: PgConnection,
}

const ROLE_PASSWORD: &str = "replica-test";

impl Role {
    fn new(db: &TestDb) -> Self {
        let name = format!(
            "t_role_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut admin = db.pg_admin();
        admin
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN PASSWORD '{ROLE_PASSWORD}';\
                 GRANT ALL ON SCHEMA {} TO {name};",
                db.pg_schema()
            ))
            .expect("create the test's role");
        Role { name, admin }
    }

    /// Whether the role's new sessions are read-only, as a standby's are (its existing sessions
    /// keep what they had).
    fn set_read_only(&mut self, read_only: bool) {
        let setting = if read_only {
            "SET default_transaction_read_only = on"
        } else {
            "RESET default_transaction_read_only"
        };
        self.admin
            .batch_execute(&format!("ALTER ROLE {} {setting}", self.name))
            .expect("alter the role");
    }

    /// Lets the role read every table of `db`'s schema (tables another role made there).
    fn grant_reads(&mut self, db: &TestDb) {
        self.admin
            .batch_execute(&format!(
                "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}",
                db.pg_schema(),
                self.name
            ))
            .expect("grant reads");
    }

    /// Ends the role's sessions (the server's pooled connections), as a failover ends them.
    fn end_sessions(&mut self) {
        self.admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'",
                self.name
            ))
            .expect("end the role's sessions");
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        self.end_sessions();
        let _ = self.admin.batch_execute(&format!(
            "DROP OWNED BY {0} CASCADE; DROP ROLE {0}",
            self.name
        ));
    }
}

/// The app over `db`'s schema as `role`, on `hosts` with `extra` URL parameters, with one
/// pooled connection: what the next request gets is the connection the last one left.
fn app_as(db: &TestDb, role: &Role, hosts: &str, extra: &str) -> AppState {
    let mut settings = test_settings(db);
    settings.database.database_url = db.pg_url_as(hosts, &role.name, ROLE_PASSWORD, extra);
    settings.db_pool_size = 1;
    settings.db_threads = 1;
    settings.db_writers = 1;
    AppState::open(settings).expect("open the app as the test's role")
}

/// A new project of `state`'s database, made as the CLI makes one.
fn project(state: &AppState, name: &str) -> Keys {
    let mut conn = state.pool.get().expect("a connection");
    let (project, secret) =
        cotterd::projects::create(conn.conn(), name, false, &cotterd::audit::Context::cli())
            .expect("create a project");
    Keys {
        id: project.id,
        secret: secret.secret,
    }
}

fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        reply.body
    );
    assert!(
        reply.headers.contains_key("retry-after"),
        "{what}: 503 without Retry-After"
    );
}

#[actix_web::test]
async fn a_connection_on_a_read_only_server_is_dropped() {
    let db = TestDb::new(Backend::Postgres);
    let mut role = Role::new(&db);
    let state = app_as(&db, &role, &db.pg_host(), "");
    let svc = init_service(cotterd::app(state.clone())).await;
    let keys = project(&state, "read-only");
    let before = call_ok(&svc, &create(&keys, "before@example.com")).await;

    // The server the pool reaches now refuses writes, as a demoted primary does.
    role.set_read_only(true);
    role.end_sessions();
    // The first request meets the ended session (503, the connection dropped); then reads go
    // on, on a connection to the read-only server.
    let mut found = None;
    for _ in 0..3 {
        let reply = call(&svc, &get_by_identifier(&keys, "before@example.com")).await;
        if reply.status == StatusCode::OK {
            found = Some(reply.json());
            break;
        }
        assert_unavailable(&reply, "a read on a lost connection");
    }
    let found = found.expect("reads answer on the read-only server");
    assert_eq!(found["ID"], before["ID"]);
    // A write there is refused: 503 with Retry-After, never a 500, nothing stored.
    let refused = call(&svc, &create(&keys, "during@example.com")).await;
    assert_unavailable(&refused, "a create on a read-only server");

    // The server takes writes again (the failover is over). A connection kept from the
    // read-only server would stay read-only for its whole session: the next create succeeds
    // at once only because that connection was dropped and a new one opened.
    role.set_read_only(false);
    let after = call(&svc, &create(&keys, "during@example.com")).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    let listed = call_ok(&svc, &Req::get("/admin/v1/users?status=all").keys(&keys)).await;
    let mut identifiers = self::listed(&listed);
    identifiers.sort();
    assert_eq!(identifiers, ["before@example.com", "during@example.com"]);
}

#[actix_web::test]
async fn a_multi_host_url_skips_a_dead_host_and_waits_out_a_read_only_one() {
    let db = TestDb::new(Backend::Postgres);
    let mut role = Role::new(&db);
    // The first host refuses connections (nothing listens on port 1): libpq goes on to the
    // next, and `target_session_attrs=read-write` accepts only a server that takes writes.
    let hosts = format!("127.0.0.1:1,{}", db.pg_host());
    let state = app_as(&db, &role, &hosts, "&target_session_attrs=read-write");
    let svc = init_service(cotterd::app(state.clone())).await;
    let keys = project(&state, "multi-host");
    call_ok(&svc, &create(&keys, "first@example.com")).await;

    // No host takes writes: libpq refuses every session, and every request (reads too, as a
    // client cannot tell them apart from a primary that is gone) is a 503 with Retry-After.
    role.set_read_only(true);
    role.end_sessions();
    for req in [
        create(&keys, "second@example.com"),
        get_by_identifier(&keys, "first@example.com"),
        create(&keys, "second@example.com"),
    ] {
        let reply = call(&svc, &req).await;
        assert_unavailable(&reply, &req.describe());
    }

    // A host takes writes again: the next request is served there.
    role.set_read_only(false);
    call_ok(&svc, &create(&keys, "second@example.com")).await;
    let second = call_ok(&svc, &get_by_identifier(&keys, "second@example.com")).await;
    assert_eq!(second["identifier"], "second@example.com");
}

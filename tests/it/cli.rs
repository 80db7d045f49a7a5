//! The `cotterd` binary itself: the administration commands and a served request over real
//! HTTP, on SQLite and on PostgreSQL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::req::Req;
use crate::common::server::{send_wire, start_server};
use crate::common::{v2_user, Backend, Keys, TestApp, TestDb};
use cotterd::projects;

fn cotterd(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cotterd"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cotterd")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "cotterd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A new project made with the CLI: its API_KEY_ID and API_SECRET_KEY.
fn new_project(db: &TestDb) -> (String, String) {
    let out = stdout(&cotterd(
        db,
        &["projects", "create", "--name", "Demo", "--json"],
    ));
    let keys: Value = serde_json::from_str(&out).unwrap();
    (
        keys["api_key_id"].as_str().unwrap().to_owned(),
        keys["api_secret_key"].as_str().unwrap().to_owned(),
    )
}

fn live_hashes(db: &TestDb, project: &str) -> Vec<[u8; 32]> {
    let state = cotterd::AppState::open(crate::common::test_settings(db)).unwrap();
    let mut conn = state.pool.get().unwrap();
    let project = uuid::Uuid::parse_str(project).unwrap();
    projects::live_secret_hashes(conn.conn(), &project).unwrap()
}

async fn projects_and_secrets_commands(backend: Backend) {
    let db = TestDb::new(backend);
    assert!(stdout(&cotterd(&db, &["migrate"])).contains("up to date"));
    assert!(stdout(&cotterd(&db, &["projects", "list"])).contains("No projects"));

    let out = stdout(&cotterd(
        &db,
        &["projects", "create", "--name", "Demo", "--json"],
    ));
    let keys: Value = serde_json::from_str(&out).unwrap();
    let id = keys["api_key_id"].as_str().unwrap().to_owned();
    let first = keys["api_secret_key"].as_str().unwrap().to_owned();
    // Exactly the documented line, keys in that order, spaced as documented.
    assert_eq!(
        out,
        format!("{{\"api_key_id\": \"{id}\", \"api_secret_key\": \"{first}\"}}\n")
    );
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().to_string(), id);
    assert!(first.starts_with(projects::SECRET_PREFIX) && first.len() >= 64);
    assert!(projects::secret_matches(&first, &live_hashes(&db, &id)));

    let listed: Value =
        serde_json::from_str(&stdout(&cotterd(&db, &["projects", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["api_key_id"], id.as_str());
    assert_eq!(listed[0]["name"], "Demo");
    assert_eq!(listed[0]["require_secret"], false);
    let table = stdout(&cotterd(&db, &["projects", "list"]));
    assert!(table.contains(&id) && !table.contains(&first), "{table}");

    // Rotation: a second secret, then the first revoked by its prefix.
    let out = stdout(&cotterd(
        &db,
        &["secrets", "create", "--project", &id, "--json"],
    ));
    let second: Value = serde_json::from_str(&out).unwrap();
    let second = second["api_secret_key"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let hashes = live_hashes(&db, &id);
    assert!(
        projects::secret_matches(&first, &hashes) && projects::secret_matches(&second, &hashes)
    );
    let listing = stdout(&cotterd(&db, &["secrets", "list", "--project", &id]));
    assert!(
        !listing.contains(&first) && !listing.contains(&second),
        "secrets are never shown again"
    );

    let prefix = &first[..projects::SECRET_PREFIX.len() + 8];
    let revoke = [
        "secrets",
        "revoke",
        "--project",
        &id,
        "--secret-prefix",
        prefix,
    ];
    stdout(&cotterd(&db, &revoke));
    let hashes = live_hashes(&db, &id);
    assert!(!projects::secret_matches(&first, &hashes));
    assert!(projects::secret_matches(&second, &hashes));
    // Revoking it again finds no live secret.
    let again = cotterd(&db, &revoke);
    assert!(!again.status.success());

    stdout(&cotterd(
        &db,
        &[
            "projects",
            "set",
            "--project",
            &id,
            "--require-secret",
            "true",
        ],
    ));
    let listed: Value =
        serde_json::from_str(&stdout(&cotterd(&db, &["projects", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["require_secret"], true);

    // Every change above is in the project's audit trail, made by `cli`, the secrets named by
    // their printed prefixes only; the failed second revoke left nothing.
    let state = cotterd::AppState::open(crate::common::test_settings(&db)).unwrap();
    let mut conn = state.pool.get().unwrap();
    let project = cotterd::auth::verify_keys(conn.conn(), &id, &second).unwrap();
    let (events, more) = cotterd::audit::page(conn.conn(), project.id(), 50, None, None).unwrap();
    assert!(!more);
    assert_eq!(events[0].action, "project.update", "newest first");
    let mut trail: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.detail.as_str()))
        .collect();
    trail.sort();
    let second_prefix = &second[..projects::SECRET_PREFIX.len() + 8];
    let first_detail = format!(r#"{{"secret_prefix":"{prefix}"}}"#);
    let second_detail = format!(r#"{{"secret_prefix":"{second_prefix}"}}"#);
    let mut expected = vec![
        ("cli", "project.create", r#"{"require_secret":false}"#),
        ("cli", "secret.create", first_detail.as_str()),
        ("cli", "secret.create", second_detail.as_str()),
        ("cli", "secret.revoke", first_detail.as_str()),
        ("cli", "project.update", r#"{"require_secret":true}"#),
    ];
    expected.sort();
    assert_eq!(trail, expected);
    for event in &events {
        assert!(
            !event.detail.contains(&first[prefix.len()..]),
            "a secret in the trail"
        );
    }
}

async fn commands_reject_bad_input_clearly(backend: Backend) {
    let db = TestDb::new(backend);
    let fails = |args: &[&str], expected: &str| {
        let out = cotterd(&db, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    fails(&["projects", "create", "--name", "  "], "project name");
    fails(
        &["migrate", "--database-url", "mysql://x"],
        "unsupported database scheme",
    );
    fails(
        &["projects", "create", "--name", &"x".repeat(101)],
        "project name",
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    fails(&["secrets", "create", "--project", &unknown], "no project");
    fails(&["secrets", "create", "--project", "not-a-uuid"], "invalid");
    fails(
        &[
            "projects",
            "set",
            "--project",
            &unknown,
            "--require-secret",
            "true",
        ],
        "no project",
    );
    let out = stdout(&cotterd(
        &db,
        &["projects", "create", "--name", "p", "--json"],
    ));
    let id = serde_json::from_str::<Value>(&out).unwrap()["api_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    fails(
        &[
            "secrets",
            "revoke",
            "--project",
            &id,
            "--secret-prefix",
            "cotterd_sk_",
        ],
        "prefix",
    );
    fails(&["secrets", "revoke", "--project", &id], "--secret-prefix");
}

async fn serves_the_documented_curl_requests(backend: Backend) {
    let db = TestDb::new(backend);
    let (server, stderr) = start_server(&db, &[]);
    // With no project yet, the log says how to create one.
    let (lines, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    while !seen.contains("cotterd projects create") {
        let line = log
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no hint in the log: {seen}"));
        seen.push_str(&line);
    }

    let (id, secret) = new_project(&db);

    let body = r#"{"identifier": "hello@gmail.com"}"#;
    let create = Req::post("/api/v0/user/create")
        .key_id(&id)
        .body(Some("application/json"), body);
    let (status, created) = send_wire(server.port, &create);
    assert_eq!(status, 200, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["identifier"], "hello@gmail.com");

    let find = Req::get("/api/v0/user?identifier=hello@gmail.com").key_id(&id);
    let (status, found) = send_wire(server.port, &find);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&found).unwrap(), created);

    let user_id = created["ID"].as_str().unwrap();
    let (status, by_id) = send_wire(
        server.port,
        &Req::get(format!("/api/v0/user/{user_id}")).key_id(&id),
    );
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&by_id).unwrap(), created);
    let wrong_secret = Req::get("/api/v0/user/list?page=0")
        .key_id(&id)
        .header("API_SECRET_KEY", "cotterd_sk_wrong");
    let (status, refused) = send_wire(server.port, &wrong_secret);
    assert_eq!(status, 401);
    assert_eq!(serde_json::from_str::<Value>(&refused).unwrap()["type"], "");

    // The secret first: header order does not matter.
    let list = Req::get("/api/v0/user/list?page=0")
        .header("API_SECRET_KEY", &secret)
        .key_id(&id);
    let (status, list) = send_wire(server.port, &list);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap(),
        serde_json::json!([created])
    );
    drop(server);
}

/// SIGTERM with sign-ups in flight (each waiting its turn for the one hashing slot): every one
/// of them completes, then the process exits 0.
async fn sigterm_lets_requests_in_flight_finish(backend: Backend) {
    let db = TestDb::new(backend);
    let (id, secret) = new_project(&db);
    let (mut server, _stderr) =
        start_server(&db, &[("HASH_CONCURRENCY", "1"), ("RUST_LOG", "warn")]);
    let port = server.port;
    let in_flight: Vec<_> = (0..4)
        .map(|i| {
            let (id, secret) = (id.clone(), secret.clone());
            std::thread::spawn(move || {
                let keys = Keys { id, secret };
                let body = v2_user(
                    &format!("u{i}@example.com"),
                    "correct horse",
                    "+15551234567",
                    "A",
                );
                send_wire(port, &Req::post("/v2/users").keys(&keys).json(&body))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(30));
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // New connections are refused at once, while the sign-ups in flight go on.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still accepting after SIGTERM"
    );
    for request in in_flight {
        let (status, body) = request.join().unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let started = Instant::now();
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

/// Clients that send headers or a body too slowly are answered 408 and cut off.
async fn slow_clients_are_cut_off(backend: Backend) {
    let db = TestDb::new(backend);
    let (id, _) = new_project(&db);
    let (server, _stderr) =
        start_server(&db, &[("HEADER_TIMEOUT_MS", "300"), ("RUST_LOG", "warn")]);
    let read_all = |mut stream: TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    };

    let started = Instant::now();
    let mut headers = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .unwrap();
    let response = read_all(headers);
    assert!(response.starts_with("HTTP/1.1 408"), "{response:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    drop(server);
    let (server, _stderr) = start_server(&db, &[("BODY_TIMEOUT_MS", "300"), ("RUST_LOG", "warn")]);
    let started = Instant::now();
    let mut body = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    body.write_all(
        format!(
            "POST /api/v0/user/create HTTP/1.1\r\nHost: localhost\r\nAPI_KEY_ID: {id}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"identifier\""
        )
        .as_bytes(),
    )
    .unwrap();
    let response = read_all(body);
    assert!(response.starts_with("HTTP/1.1 408"), "{response:?}");
    assert!(
        response.contains(r#""type":"""#),
        "in Cotter's error shape: {response}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Two server processes on one database behave as one: racing duplicate creates leave one
/// user, and pages read from either server together hold every user exactly once.
async fn two_instances_behave_as_one(backend: Backend) {
    let db = TestDb::new(backend);
    let (id, secret) = new_project(&db);
    let (a, _a_log) = start_server(&db, &[("RUST_LOG", "warn")]);
    let (b, _b_log) = start_server(&db, &[("RUST_LOG", "warn")]);
    let ports = [a.port, b.port];
    let create = move |port: u16, key: &str, identifier: &str| {
        let body = serde_json::json!({ "identifier": identifier });
        send_wire(
            port,
            &Req::post("/api/v0/user/create").key_id(key).json(&body),
        )
    };

    let racers: Vec<_> = (0..12)
        .map(|i| {
            let id = id.clone();
            std::thread::spawn(move || {
                create(
                    ports[i % 2],
                    &id,
                    if i % 3 == 0 {
                        "Race@Example.com"
                    } else {
                        "race@example.com"
                    },
                )
            })
        })
        .collect();
    let statuses: Vec<u16> = racers.into_iter().map(|r| r.join().unwrap().0).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        11,
        "{statuses:?}"
    );

    for i in 0..59 {
        assert_eq!(
            create(ports[i % 2], &id, &format!("user{i}@example.com")).0,
            200
        );
    }
    let page = |port: u16, page: u32| -> Vec<Value> {
        let keys = Keys {
            id: id.clone(),
            secret: secret.clone(),
        };
        let list = Req::get(format!("/api/v0/user/list?page={page}")).keys(&keys);
        let (status, body) = send_wire(port, &list);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let first = page(a.port, 0);
    let second = page(b.port, 1);
    assert_eq!((first.len(), second.len()), (50, 10));
    assert_eq!(page(b.port, 0), first, "both servers list the same page");
    let mut ids: Vec<&str> = first
        .iter()
        .chain(&second)
        .map(|u| u["ID"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 60, "every user exactly once");
}

/// The log of a whole session (requests with keys, a password, identifiers, errors) holds no
/// secret, password or identifier, and every access line carries its request id.
async fn logs_carry_no_secrets(backend: Backend) {
    let db = TestDb::new(backend);
    let (id, secret) = new_project(&db);
    let (server, stderr) = start_server(&db, &[("RUST_LOG", "debug,diesel=debug")]);
    let password = "hunter2-correct-horse";
    let keys = Keys {
        id: id.clone(),
        secret: secret.clone(),
    };
    let body = v2_user("secret.person@example.com", password, "+15551234567", "A");
    let requests = [
        Req::post("/v2/users").keys(&keys).json(&body),
        Req::get("/api/v0/user?identifier=secret.person@example.com")
            .key_id(&id)
            .header("X-Request-Id", "trace-77"),
        Req::get("/api/v0/user/list?page=0")
            .key_id(&id)
            .header("API_SECRET_KEY", &format!("{secret}x")),
    ];
    for request in &requests {
        send_wire(server.port, request);
    }
    drop(server);
    let mut log = String::new();
    BufReader::new(stderr).read_to_string(&mut log).unwrap();
    assert!(log.contains("request_id=trace-77"), "{log}");
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("INFO  actix_web::middleware::logger"))
        .collect();
    assert_eq!(access.len(), requests.len(), "{log}");
    for line in access {
        let id = line.rsplit("request_id=").next().unwrap();
        assert!(line.contains("request_id=") && !id.is_empty(), "{line}");
    }
    for private in [secret.as_str(), &secret[..24], password, "secret.person"] {
        assert!(!log.contains(private), "{private} in the log:\n{log}");
    }
}

/// The server's own settings belong to `cotterd` alone or to `cotterd serve`: an
/// administration command refuses them as flags rather than ignoring them. In the environment
/// they are shared configuration, and ignored by the commands. The database's go anywhere.
async fn serve_settings_belong_to_serve(backend: Backend) {
    let db = TestDb::new(backend);
    let nil = "00000000-0000-0000-0000-000000000000";
    for (args, expected) in [
        (
            &["projects", "list", "--bind-addr", "127.0.0.1:1"][..],
            "unexpected argument '--bind-addr'",
        ),
        (
            &["secrets", "list", "--project", nil, "--max-page", "3"],
            "unexpected argument '--max-page'",
        ),
        (
            &["migrate", "--workers", "2"],
            "unexpected argument '--workers'",
        ),
        (
            &["--bind-addr", "127.0.0.1:1", "projects", "list"],
            "--bind-addr is a setting of the server",
        ),
    ] {
        let out = cotterd(&db, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let with_env = Command::new(env!("CARGO_BIN_EXE_cotterd"))
        .args(["projects", "list", "--database-url", &db.url])
        .env("BIND_ADDR", "127.0.0.1:1")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cotterd");
    assert!(stdout(&with_env).contains("No projects"));
    // The database's flags go before or after any command.
    let before = Command::new(env!("CARGO_BIN_EXE_cotterd"))
        .args(["--database-url", &db.url, "projects", "list"])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cotterd");
    assert!(stdout(&before).contains("No projects"));
    let help = stdout(&cotterd(&db, &["serve", "--help"]));
    assert!(
        help.contains("--bind-addr") && help.contains("--database-url"),
        "{help}"
    );
}

/// A stored row the server cannot read (its methods column is not a JSON list) is a 500 with
/// the generic message, never an empty list passed off as the truth; the detail is logged once,
/// and only at error level.
async fn corrupt_rows_are_errors_logged_once(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let (server, stderr) = start_server(&app.db, &[("RUST_LOG", "debug")]);
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut log);
        log
    });
    let create = Req::post("/api/v0/user/create")
        .key_id(&keys.id)
        .json(&serde_json::json!({"identifier": "broken@example.com"}));
    let (status, created) = send_wire(server.port, &create);
    assert_eq!(status, 200, "{created}");
    let user_id = serde_json::from_str::<Value>(&created).unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_owned();
    {
        use cotterd::db::schema::users;
        use diesel::prelude::*;
        let mut pooled = app.state.pool.get().unwrap();
        diesel::update(users::table.find(&user_id))
            .set(users::enrolled.eq("{not a list"))
            .execute(pooled.conn())
            .unwrap();
    }
    let reads = [
        Req::get(format!("/api/v0/user/{user_id}")).key_id(&keys.id),
        Req::get("/api/v0/user?identifier=broken@example.com").key_id(&keys.id),
        Req::get("/api/v0/user/list?page=0").keys(&keys),
    ];
    for read in &reads {
        let (status, body) = send_wire(server.port, read);
        assert_eq!(status, 500, "{}: {body}", read.describe());
        assert_eq!(body, r#"{"msg":"internal server error","type":""}"#);
    }
    drop(server);
    let log = log.join().unwrap();
    let detail: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("not a JSON list"))
        .collect();
    assert_eq!(detail.len(), reads.len(), "once per request:\n{log}");
    assert!(
        detail.iter().all(|line| line.contains("ERROR")),
        "{detail:#?}"
    );
}

both_backends!(
    projects_and_secrets_commands,
    commands_reject_bad_input_clearly,
    serve_settings_belong_to_serve,
    corrupt_rows_are_errors_logged_once,
    serves_the_documented_curl_requests,
    sigterm_lets_requests_in_flight_finish,
    slow_clients_are_cut_off,
    two_instances_behave_as_one,
    logs_carry_no_secrets,
);

//! The credentials matrix: every keyed route of the catalogue under every kind of
//! credentials, in process and against the real binary, whose answers and debug log must hold
//! no secret; and the key comparison itself.

use cotterd::audit::Context;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use actix_web::test::init_service;
use serde_json::json;

use super::{listing, signed_up_with_kyc};
use crate::common::catalogue::{Route, KEYED_ROUTES};
use crate::common::envelope::{reply_from_wire, shape_problem};
use crate::common::req::{call, Req};
use crate::common::rows::Snapshot;
use crate::common::server::{http_bytes, start_server};
use crate::common::{
    device_enc_key, enroll_device_body, figure, reply_id, unsigned_event_body, url_encode, v2_user,
    Backend, Keys, Reply, TestApp, PASSWORD,
};
use cotterd::projects;

/// The kinds of credentials every keyed route is tried with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    None,
    IdOnly,
    WrongSecret,
    OtherProjectsSecret,
    RevokedSecret,
    InQueryString,
    Correct,
}

const CREDS: [(Cred, &str); 7] = [
    (Cred::None, "none"),
    (Cred::IdOnly, "id only"),
    (Cred::WrongSecret, "wrong secret"),
    (Cred::OtherProjectsSecret, "other's secret"),
    (Cred::RevokedSecret, "revoked"),
    (Cred::InQueryString, "in query"),
    (Cred::Correct, "correct"),
];

/// A project the matrix targets, with a user of each API to reach.
#[derive(Debug)]
struct Target {
    keys: Keys,
    require_secret: bool,
    /// A secret the project had, revoked before any request.
    revoked: String,
    v0_identifier: String,
    v0_id: String,
    /// A v2 user with a kyc_id, so that accounts can be opened.
    v2_id: String,
    v2_email: String,
    /// A user the admin API deletes and restores (both succeed in either order).
    deleted_id: String,
    /// A user the admin API disables and enables.
    disabled_id: String,
    /// A live secret of the project besides its first (so that it is not the last one), which
    /// the admin API revokes.
    spare_secret_id: String,
}

/// The projects of the matrix: one with and one without `--require-secret`, and a third
/// whose secret is "another project's".
struct Matrix {
    targets: [Target; 2],
    other: Keys,
    made_up_secret: String,
}

impl Matrix {
    async fn new(app: &TestApp) -> Self {
        let svc = init_service(cotterd::app(app.state.clone())).await;
        let mut targets = Vec::new();
        for (name, require_secret) in [("open", false), ("strict", true)] {
            let keys = app.project_with_policy(name, require_secret);
            let project = uuid::Uuid::parse_str(&keys.id).unwrap();
            let revoked = {
                let mut conn = app.state.pool.get().unwrap();
                let extra = projects::add_secret(conn.conn(), &project, &Context::cli()).unwrap();
                projects::revoke_secret(
                    conn.conn(),
                    &project,
                    &extra.prefix,
                    projects::LastSecret::Allow,
                    &Context::cli(),
                )
                .unwrap();
                extra.secret
            };
            let spare_secret_id = {
                let mut conn = app.state.pool.get().unwrap();
                projects::add_secret(conn.conn(), &project, &Context::cli())
                    .unwrap()
                    .id
            };
            let v0_identifier = format!("reach.{name}@example.com");
            let req = Req::post("/api/v0/user/create").keys(&keys);
            let v0_id =
                reply_id(&call(&svc, &req.json(&json!({ "identifier": v0_identifier }))).await);
            let v2_email = format!("reach2.{name}@example.com");
            let body = v2_user(&v2_email, PASSWORD, "+15551234567", "Ada");
            let v2_id = signed_up_with_kyc(&svc, &keys, &body, "kyc").await;
            let mut admin_ids = Vec::new();
            for role in ["deleted", "disabled"] {
                let req = Req::post("/api/v0/user/create").keys(&keys);
                let identifier = format!("{role}.{name}@example.com");
                admin_ids.push(reply_id(
                    &call(&svc, &req.json(&json!({ "identifier": identifier }))).await,
                ));
            }
            let [deleted_id, disabled_id]: [String; 2] = admin_ids.try_into().unwrap();
            targets.push(Target {
                spare_secret_id,
                deleted_id,
                disabled_id,
                keys,
                require_secret,
                revoked,
                v0_identifier,
                v0_id,
                v2_id,
                v2_email,
            });
        }
        let mut made_up = [0u8; 32];
        made_up[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Matrix {
            targets: targets.try_into().unwrap(),
            other: app.project("other"),
            made_up_secret: format!("{}{}", projects::SECRET_PREFIX, hex::encode(made_up)),
        }
    }

    /// Every secret the matrix sends: none of them may be seen in an answer or a log line.
    fn secrets(&self) -> Vec<&str> {
        let mut all = vec![self.other.secret.as_str(), self.made_up_secret.as_str()];
        for target in &self.targets {
            all.extend([target.keys.secret.as_str(), target.revoked.as_str()]);
        }
        all
    }

    /// A request of `route` that succeeds with the right keys (without keys yet); `n` makes
    /// what it creates unique.
    fn request(&self, route: Route, target: &Target, n: usize) -> Req {
        match route {
            Route::V0Create => Req::post("/api/v0/user/create")
                .json(&json!({ "identifier": format!("made{n}@example.com") })),
            Route::V0Get => Req::get(format!(
                "/api/v0/user?identifier={}",
                url_encode(&target.v0_identifier)
            )),
            Route::V0GetById => Req::get(format!("/api/v0/user/{}", target.v0_id)),
            Route::V0List => Req::get("/api/v0/user/list?page=0"),
            Route::V2Create => Req::post("/v2/users").json(&v2_user(
                &format!("signup{n}@example.com"),
                PASSWORD,
                "+15551234567",
                "Ada",
            )),
            Route::V2Get => Req::get(format!("/v2/users/{}", target.v2_id)),
            Route::V2Patch => Req::patch(format!("/v2/users/{}", target.v2_id))
                .json(&json!({ "kyc_id": format!("kyc-{n}") })),
            Route::V2Accounts => Req::post("/v2/accounts")
                .json(&json!({"user_id": target.v2_id, "account_type": "savings"})),
            Route::AdminList => Req::get("/admin/v1/users?include_total=true"),
            Route::AdminCreate => Req::post("/admin/v1/users")
                .json(&json!({ "identifier": format!("admin{n}@example.com") })),
            Route::AdminCount => Req::get("/admin/v1/users/count?status=all"),
            Route::AdminGet => Req::get(format!("/admin/v1/users/{}", target.v0_id)),
            Route::AdminDelete => Req::new(
                Method::DELETE,
                format!("/admin/v1/users/{}", target.deleted_id),
            ),
            Route::AdminRestore => {
                Req::post(format!("/admin/v1/users/{}/restore", target.deleted_id))
            }
            Route::AdminDisable => {
                Req::post(format!("/admin/v1/users/{}/disable", target.disabled_id))
            }
            Route::AdminEnable => {
                Req::post(format!("/admin/v1/users/{}/enable", target.disabled_id))
            }
            Route::AdminAudit => Req::get("/admin/v1/audit?limit=5"),
            Route::AdminSignups => Req::get("/admin/v1/stats/signups?days=2"),
            Route::V0UpdateMethods => {
                Req::new(Method::PUT, format!("/api/v0/user/{}", target.v0_id))
                    .json(&enroll_device_body())
            }
            Route::V0UpdateMethodsByCotterId => Req::new(
                Method::PUT,
                format!("/api/v0/user/methods?cotter_user_id={}", target.v0_id),
            )
            .json(&enroll_device_body()),
            Route::V0EnrolledByCotterId => Req::get(format!(
                "/api/v0/user/methods?cotter_user_id={}&method=TRUSTED_DEVICE&public_key={}",
                target.v0_id,
                device_enc_key()
            )),
            Route::V0Enrolled => Req::get(format!("/api/v0/user/enrolled/{}/PIN", target.v0_id)),
            Route::V0EnrolledKey => Req::get(format!(
                "/api/v0/user/enrolled/{}/TRUSTED_DEVICE/{}",
                target.v0_id,
                device_enc_key()
            )),
            Route::V0EnrolledAny => Req::get(format!(
                "/api/v0/user/enrolled/any/{}/TRUSTED_DEVICE",
                target.v0_id
            )),
            Route::V0ResetPin => Req::post(format!("/api/v0/user/reset/start/{}", target.v0_id)),
            Route::V0Event => {
                Req::post("/api/v0/event/create").json(&unsigned_event_body(&target.v0_id))
            }
            Route::V2Verify => Req::post("/v2/users/verify")
                .json(&json!({"email": target.v2_email, "password": PASSWORD})),
            Route::AdminUserEvents => Req::get(format!("/admin/v1/users/{}/events", target.v0_id)),
            Route::AdminExport => Req::get("/admin/v1/users/export?status=active"),
            Route::AdminImport => Req::post("/admin/v1/users/import").body(
                Some("application/x-ndjson"),
                format!(
                    "{}\n",
                    json!({ "identifier": format!("imported{n}@example.com") })
                ),
            ),
            Route::AdminSecrets => Req::get("/admin/v1/secrets"),
            Route::AdminCreateSecret => Req::post("/admin/v1/secrets"),
            // Only the cell with the right keys revokes it: the others are refused before.
            Route::AdminRevokeSecret => Req::post(format!(
                "/admin/v1/secrets/{}/revoke",
                target.spare_secret_id
            )),
        }
    }

    fn with(&self, req: Req, cred: Cred, target: &Target) -> Req {
        let id = target.keys.id.as_str();
        let secret = |secret: &str| {
            req.clone()
                .header("API_KEY_ID", id)
                .header("API_SECRET_KEY", secret)
        };
        match cred {
            Cred::None => req,
            Cred::IdOnly => req.header("API_KEY_ID", id),
            Cred::WrongSecret => secret(&self.made_up_secret),
            Cred::OtherProjectsSecret => secret(&self.other.secret),
            Cred::RevokedSecret => secret(&target.revoked),
            Cred::InQueryString => {
                let separator = if req.uri.contains('?') { '&' } else { '?' };
                let uri = format!(
                    "{}{separator}API_KEY_ID={id}&API_SECRET_KEY={}",
                    req.uri, target.keys.secret
                );
                Req { uri, ..req }
            }
            Cred::Correct => req.keys(&target.keys),
        }
    }

    /// Every cell: (target, route, credentials, request, whether it must succeed).
    fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for (t, target) in self.targets.iter().enumerate() {
            for (r, keyed) in KEYED_ROUTES.iter().enumerate() {
                for (c, (cred, _)) in CREDS.iter().enumerate() {
                    let n = cells.len();
                    let req = self.with(self.request(keyed.route, target, n), *cred, target);
                    // A secret that is sent is checked even where none is needed: only the
                    // correct one, or none at all on a route and project that need none, pass.
                    let must_succeed = match cred {
                        Cred::Correct => true,
                        Cred::IdOnly => !(keyed.needs_secret || target.require_secret),
                        _ => false,
                    };
                    cells.push(Cell {
                        target: t,
                        route: r,
                        cred: c,
                        req,
                        must_succeed,
                    });
                }
            }
        }
        cells
    }
}

struct Cell {
    target: usize,
    route: usize,
    cred: usize,
    req: Req,
    must_succeed: bool,
}

/// What is wrong with a cell's answer, if anything: a success where 401 was due, or the other
/// way round, or a 401 out of its API's shape.
fn cell_problem(cell: &Cell, reply: &Reply, path: &str) -> Option<String> {
    let (status, body) = (reply.status, reply.body.as_str());
    let keyed = &KEYED_ROUTES[cell.route];
    let (route, success) = (keyed.route.name(), keyed.success);
    let expected = if cell.must_succeed {
        success
    } else {
        StatusCode::UNAUTHORIZED
    };
    if status != expected {
        return Some(format!(
            "{route} with {}: {status}, expected {expected}: {body}",
            CREDS[cell.cred].1
        ));
    }
    if status == StatusCode::UNAUTHORIZED {
        let v2_code_ok = !path.starts_with("/v2/") || body.contains("\"UNAUTHORIZED\"");
        if let Some(problem) =
            shape_problem(path, reply).or((!v2_code_ok).then(|| "no UNAUTHORIZED code".to_owned()))
        {
            return Some(format!("{route} with {}: {problem}", CREDS[cell.cred].1));
        }
    }
    None
}

/// The matrix as a table: one row per route, one column per kind of credentials.
fn print_matrix(title: &str, matrix: &Matrix, cells: &[Cell], statuses: &[u16]) {
    let mut table = String::new();
    for (t, target) in matrix.targets.iter().enumerate() {
        let policy = if target.require_secret {
            "with"
        } else {
            "without"
        };
        table.push_str(&format!(
            "\ncredentials matrix, {title}, project {policy} --require-secret:\n"
        ));
        table.push_str(&format!("{:<36}", "route"));
        for (_, name) in CREDS {
            table.push_str(&format!("{name:>16}"));
        }
        for (r, route) in KEYED_ROUTES.iter().enumerate() {
            table.push_str(&format!("\n{:<36}", route.route.name()));
            for (_, status) in cells
                .iter()
                .zip(statuses)
                .filter(|(cell, _)| cell.target == t && cell.route == r)
            {
                table.push_str(&format!("{status:>16}"));
            }
        }
        table.push('\n');
    }
    // One print, so that tests running alongside do not cut into the table.
    println!("{table}");
}

/// Rows in users and accounts, in all.
fn rows(app: &TestApp) -> usize {
    Snapshot::take(app, None).rows()
}

/// The secrets of every project: how many there are, and how many are live.
fn secret_rows(app: &TestApp) -> (usize, usize) {
    use cotterd::db::schema::project_secrets;
    use diesel::prelude::*;
    let mut conn = app.state.pool.get().unwrap();
    let revoked: Vec<Option<chrono::NaiveDateTime>> = project_secrets::table
        .select(project_secrets::revoked_at)
        .load(conn.conn())
        .unwrap();
    let live = revoked.iter().filter(|at| at.is_none()).count();
    (revoked.len(), live)
}

/// Every keyed route under every kind of credentials, for a project with and one without
/// `--require-secret`: exactly the cells with the right keys succeed, the others are 401 in the
/// route's shape and write nothing (no user, account or secret row, no secret revoked).
async fn credentials_matrix(backend: Backend) {
    let app = TestApp::new(backend);
    let matrix = Matrix::new(&app).await;
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let cells = matrix.cells();
    let rows_before = rows(&app);
    let (secrets_before, live_before) = secret_rows(&app);
    let mut statuses = Vec::new();
    let mut problems = Vec::new();
    let mut unexpected_successes = 0;
    let mut unexpected_401 = 0;
    let mut creating_successes = 0;
    let (mut secrets_issued, mut secrets_revoked) = (0, 0);
    for cell in &cells {
        let reply = call(&svc, &cell.req).await;
        statuses.push(reply.status.as_u16());
        unexpected_successes += usize::from(reply.status.is_success() && !cell.must_succeed);
        unexpected_401 +=
            usize::from(reply.status == StatusCode::UNAUTHORIZED && cell.must_succeed);
        let route = KEYED_ROUTES[cell.route].route;
        creating_successes += usize::from(reply.status.is_success() && route.creates());
        secrets_issued +=
            usize::from(reply.status.is_success() && route == Route::AdminCreateSecret);
        secrets_revoked +=
            usize::from(reply.status.is_success() && route == Route::AdminRevokeSecret);
        problems.extend(cell_problem(cell, &reply, cell.req.path()));
    }
    print_matrix(
        &format!("{backend:?}, in process"),
        &matrix,
        &cells,
        &statuses,
    );
    figure(&format!("creds.{}.cells", backend.label()), cells.len());
    figure(
        &format!("creds.{}.unexpected_successes", backend.label()),
        unexpected_successes,
    );
    figure(
        &format!("creds.{}.unexpected_401", backend.label()),
        unexpected_401,
    );
    assert!(problems.is_empty(), "{}", listing(&problems));
    assert_eq!(
        rows(&app),
        rows_before + creating_successes,
        "only the successes wrote rows"
    );
    assert_eq!(
        secret_rows(&app),
        (
            secrets_before + secrets_issued,
            live_before + secrets_issued - secrets_revoked
        ),
        "only the successes issued or revoked secrets"
    );
    assert_eq!(
        (secrets_issued, secrets_revoked),
        (2, 2),
        "one issue and one revocation per project"
    );
}

/// The matrix and v2 sign-ups with passwords sent to the real binary over sockets, logging at
/// debug level: no secret, secret hash (hex) or password is in any answer or log line.
async fn credentials_never_leak_from_the_process(backend: Backend) {
    let app = TestApp::new(backend);
    let matrix = Matrix::new(&app).await;
    let (server, stderr) = start_server(
        &app.db,
        &[
            ("RUST_LOG", "debug"),
            ("RATE_LIMIT_READS", "0"),
            ("RATE_LIMIT_WRITES", "0"),
        ],
    );
    // Read the log as it comes: a full pipe would stall the server.
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });

    // Sign-ups with passwords: accepted, refused for a taken email, a bad phone, missing keys
    // and a password too long (1,200 bytes).
    let open = &matrix.targets[0].keys;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let passwords: Vec<String> = ["signup", "taken", "badphone", "nokeys", "\u{FB01}-nfkc"]
        .iter()
        .map(|what| format!("pw-{what}-{tag}"))
        .chain([format!("long-{tag}-").repeat(30)])
        .collect();
    let signups = [
        (
            "pw1@example.com",
            "+15551234567",
            Some(open),
            StatusCode::CREATED,
        ),
        (
            "pw1@example.com",
            "+15551234567",
            Some(open),
            StatusCode::CONFLICT,
        ),
        (
            "pw2@example.com",
            "555",
            Some(open),
            StatusCode::BAD_REQUEST,
        ),
        (
            "pw3@example.com",
            "+15551234567",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "pw4@example.com",
            "+15551234567",
            Some(open),
            StatusCode::CREATED,
        ),
        (
            "pw5@example.com",
            "+15551234567",
            Some(open),
            StatusCode::BAD_REQUEST,
        ),
    ];

    let mut answers = Vec::new();
    let mut send = |req: &Req| {
        let response = http_bytes(server.port, &req.wire());
        let body = String::from_utf8_lossy(&response.body).into_owned();
        answers.push(format!("{}\r\n\r\n{body}", response.head));
        reply_from_wire(&response.head, body)
    };
    let cells = matrix.cells();
    let mut statuses = Vec::new();
    let mut problems = Vec::new();
    for cell in &cells {
        let reply = send(&cell.req);
        statuses.push(reply.status.as_u16());
        problems.extend(cell_problem(cell, &reply, cell.req.path()));
    }
    for ((email, phone, keys, expected), password) in signups.iter().zip(&passwords) {
        let mut req = Req::post("/v2/users").json(&v2_user(email, password, phone, "Ada"));
        if let Some(keys) = keys {
            req = req.keys(keys);
        }
        let Reply { status, body, .. } = send(&req);
        if status != *expected {
            problems.push(format!(
                "sign-up {email}: {status}, expected {expected}: {body}"
            ));
        }
    }
    let requests = answers.len();
    drop(server);
    let log = log.join().unwrap();

    let mut forbidden: Vec<String> = Vec::new();
    for secret in matrix.secrets() {
        let hash = hex::encode(projects::hash_secret(secret));
        forbidden.extend([
            secret.to_owned(),
            secret[..projects::SECRET_PREFIX.len() + 12].to_owned(),
            hash.to_uppercase(),
            hash,
        ]);
    }
    forbidden.extend(
        passwords
            .iter()
            .map(|p| p.chars().take(24).collect::<String>()),
    );
    forbidden.push("$argon2".to_owned());
    let mut found = Vec::new();
    for (source, text) in answers
        .iter()
        .map(|a| ("answer", a))
        .chain(log.iter().map(|l| ("log", l)))
    {
        for secret in forbidden.iter().filter(|s| text.contains(s.as_str())) {
            found.push(format!("{secret:?} in {source}: {text}"));
        }
    }

    print_matrix(
        &format!("{backend:?}, over sockets"),
        &matrix,
        &cells,
        &statuses,
    );
    figure(
        &format!("creds.{}.process_requests", backend.label()),
        requests,
    );
    figure(
        &format!("creds.{}.log_lines_scanned", backend.label()),
        log.len(),
    );
    figure(
        &format!("creds.{}.secret_in_output", backend.label()),
        found.len(),
    );
    assert!(problems.is_empty(), "{}", listing(&problems));
    assert!(
        log.len() >= requests,
        "an access line per request at least: {log:?}"
    );
    assert!(found.is_empty(), "{}", listing(&found));
}

/// The key check at unit level: among several live hashes each live secret is accepted, a
/// revoked one and near misses are not.
async fn secrets_match_only_live_hashes(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let other = app.project("q");
    let project = uuid::Uuid::parse_str(&keys.id).unwrap();
    let mut conn = app.state.pool.get().unwrap();
    let mut live = vec![keys.secret.clone()];
    live.extend((0..4).map(|_| {
        projects::add_secret(conn.conn(), &project, &Context::cli())
            .unwrap()
            .secret
    }));
    let revoked = live.remove(2);
    projects::revoke_secret(
        conn.conn(),
        &project,
        &revoked[..projects::SECRET_PREFIX.len() + 8],
        projects::LastSecret::Allow,
        &Context::cli(),
    )
    .unwrap();
    let hashes = projects::live_secret_hashes(conn.conn(), &project).unwrap();
    assert_eq!(hashes.len(), 4);
    for secret in &live {
        assert!(projects::secret_matches(secret, &hashes), "{secret}");
    }
    let sample = &live[3];
    let mut flipped = sample.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    for wrong in [
        revoked,
        other.secret,
        flipped,
        sample[..sample.len() - 1].to_owned(),
        format!("{sample} "),
        sample.to_uppercase(),
        sample[..projects::SECRET_PREFIX.len() + 8].to_owned(),
        projects::SECRET_PREFIX.to_owned(),
        String::new(),
    ] {
        assert!(
            !projects::secret_matches(&wrong, &hashes),
            "{wrong:?} accepted"
        );
    }
}

/// Keys are checked before the body is read, on every keyed route: a request without valid
/// keys whose body never arrives is answered 401 in its API's shape at once, not 408 when the
/// body timeout runs out (5 s here; the bound asserted is that, with room to spare).
async fn keys_are_checked_before_the_body_arrives(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let (server, _log) = start_server(
        &app.db,
        &[("BODY_TIMEOUT_MS", "5000"), ("RUST_LOG", "warn")],
    );
    let mut answered = Vec::new();
    for keyed in &KEYED_ROUTES {
        let path = keyed
            .template
            .replace("{client_user_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{user_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{secret_id}", &uuid::Uuid::new_v4().to_string());
        let unknown = format!("API_KEY_ID: {}\r\n", uuid::Uuid::new_v4());
        let wrong_secret = format!(
            "API_KEY_ID: {}\r\nAPI_SECRET_KEY: cotterd_sk_nope\r\n",
            keys.id
        );
        // None; a key no project has (its lookup goes to the database); a wrong secret.
        for credentials in ["", unknown.as_str(), wrong_secret.as_str()] {
            let started = Instant::now();
            let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            // A body larger than MAX_BODY_BYTES is announced, ten bytes of it arrive, and then
            // nothing: reading it would answer 413 or, after the body timeout, 408.
            let head = format!(
                "{} {path} HTTP/1.1\r\nHost: localhost\r\n{credentials}\
                 Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{\"login\": ",
                keyed.method
            );
            stream.write_all(head.as_bytes()).unwrap();
            let (head, body) = read_response(&mut stream);
            let took = started.elapsed();
            let what = format!("{} {path} with {credentials:?}", keyed.method);
            assert!(head.starts_with("HTTP/1.1 401"), "{what}: {head:?}");
            assert!(
                took < Duration::from_secs(3),
                "{what}: answered after {took:?}, as if it had waited for the body"
            );
            let reply = reply_from_wire(&head, body);
            assert_eq!(shape_problem(&path, &reply), None, "{what}");
            answered.push(took);
        }
    }
    assert_eq!(answered.len(), 3 * KEYED_ROUTES.len());
}

/// A response's head, and its body of the `Content-Length` the head gives, read off `stream`
/// without waiting for the server to close it.
fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let complete = |bytes: &[u8]| {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(str::to_owned)
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let body = bytes.get(end + 4..end + 4 + length)?;
        Some((head, String::from_utf8_lossy(body).into_owned()))
    };
    loop {
        if let Some(response) = complete(&bytes) {
            return response;
        }
        let read = stream.read(&mut buffer).unwrap_or(0);
        if read == 0 {
            return (String::from_utf8_lossy(&bytes).into_owned(), String::new());
        }
        bytes.extend_from_slice(&buffer[..read]);
    }
}

both_backends!(
    credentials_matrix,
    credentials_never_leak_from_the_process,
    secrets_match_only_live_hashes,
    keys_are_checked_before_the_body_arrives,
);

//! Many concurrent writers and readers on one SQLite file through three server instances over
//! real sockets (two in this process, each with a pool of its own, and a separate `cotterd`
//! process): no 5xx, every acknowledged write stored exactly once, nothing stored that was not
//! acknowledged, accounts listed in the order they were opened.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::common::req::Req;
use crate::common::server::{http_bytes, start_server, Server};
use crate::common::{figure, url_encode, Backend, Keys, TestApp, TestDb, PASSWORD};
use cotterd::AppState;

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
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let mut req = Req::new(method, path).keys(keys);
    if let Some(body) = body {
        req = req.json(body);
    }
    let response = http_bytes(port, &req.wire());
    let body = String::from_utf8(response.body).expect("UTF-8 body");
    (response.status, body)
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
            "login": {"email": email, "password": PASSWORD},
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
        let path = format!("/api/v0/user?identifier={}", url_encode(identifier));
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
    let rows = app.user_rows(Some(&keys.id));
    let account_rows = app.account_rows(Some(&keys.id));
    let acknowledged: HashMap<&str, &str> = logs
        .iter()
        .flat_map(|l| &l.users)
        .map(|(id, identifier)| (id.as_str(), identifier.as_str()))
        .collect();
    let stored: HashMap<&str, (&str, Option<&str>)> = rows
        .iter()
        .map(|row| {
            (
                row.id.as_str(),
                (row.identifier.as_str(), row.kyc_id.as_deref()),
            )
        })
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
        .map(|row| (row.id.as_str(), row.user_id.as_str()))
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

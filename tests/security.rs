//! Security checks (issue 6), against the real app on real databases.
//!
//! 1. **Hostile input on every route** ([`hostile_inputs_answer_alike_on_both_backends`]): one
//!    generated corpus (control bytes and NUL in bodies, queries and paths, invalid UTF-8, a 2 MB
//!    body, 100k-deep JSON, absurd page numbers, SQL and LIKE metacharacters, case, width, NFKC
//!    and lookalike spellings of existing identifiers, wrong content types, duplicate keys) is
//!    sent with valid keys to a SQLite app and a PostgreSQL app. No answer may be a 5xx, every
//!    error must be in its API's shape, no rejected request may change a row, and both backends
//!    must give the same verdict to every input.
//! 2. **Cross-project probes** ([`other_projects_cannot_reach_a_users`]): project B tries every
//!    way to reach project A's users (identifiers and their variants, user and account ids in
//!    several spellings, writes, mixed keys, list pages). No answer may carry anything of A's,
//!    each must be byte-identical to the answer for a target that does not exist, and A's rows
//!    must not change.
//! 3. **The credentials matrix** ([`credentials_matrix`] and
//!    [`credentials_never_leak_from_the_process`]): every keyed route under every kind of
//!    credentials, for a project with and one without `--require-secret`, in process and then
//!    against the real binary over sockets, whose responses and debug log must not hold a
//!    secret, its hash or a password. [`secrets_match_only_live_hashes`] checks the key
//!    comparison itself among several live secrets.
//!
//! Each part prints its figures with `common::figure` (`cargo test --test security --
//! --nocapture` shows them).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::test::{init_service, TestRequest};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Value};

use common::server::{http_bytes, start_server};
use common::{figure, send, url_encode, Backend, Keys, Reply, TestApp};
use cotterd::db::schema::{accounts, users};
use cotterd::projects;
use cotterd::users::{normalize_identifier, Identifier};

const PASSWORD: &str = "correct horse battery staple";
const NIL_ID: &str = "00000000-0000-0000-0000-000000000000";

// ---------------------------------------------------------------------------------------------
// Requests, replies and what the database holds
// ---------------------------------------------------------------------------------------------

/// One HTTP request, built once and sent through the in-process app or over a socket.
#[derive(Debug, Clone)]
struct Req {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn new(method: Method, uri: impl Into<String>) -> Self {
        Req {
            method,
            uri: uri.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn get(uri: impl Into<String>) -> Self {
        Self::new(Method::GET, uri)
    }

    fn post(uri: impl Into<String>) -> Self {
        Self::new(Method::POST, uri)
    }

    fn patch(uri: impl Into<String>) -> Self {
        Self::new(Method::PATCH, uri)
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Both of a project's keys, as headers.
    fn keys(self, keys: &Keys) -> Self {
        self.header("API_KEY_ID", &keys.id)
            .header("API_SECRET_KEY", &keys.secret)
    }

    /// A body, with this `Content-Type` (none when `None`).
    fn body(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        if let Some(content_type) = content_type {
            self = self.header("Content-Type", content_type);
        }
        self.body = body.into();
        self
    }

    fn json(self, value: &Value) -> Self {
        self.body(Some("application/json"), serde_json::to_vec(value).unwrap())
    }

    fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// A one-line description for failure messages: method, URI and the body's start.
    fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(100)]);
        let uri: String = self.uri.chars().take(120).collect();
        let content_type = self
            .headers
            .iter()
            .find(|(name, _)| name == "Content-Type")
            .map_or("-", |(_, value)| value);
        format!(
            "{} {uri} [{content_type}] {body:?}{}",
            self.method,
            if self.body.len() > 100 { "…" } else { "" }
        )
    }

    fn test_request(&self) -> TestRequest {
        let mut req = TestRequest::default()
            .method(self.method.clone())
            .uri(&self.uri);
        for (name, value) in &self.headers {
            req = req.append_header((name.as_str(), value.as_str()));
        }
        if !self.body.is_empty() {
            req = req.set_payload(self.body.clone());
        }
        req
    }

    /// The request as bytes on the wire, closing the connection after the answer.
    fn wire(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: localhost\r\n",
            self.method, self.uri
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Sends a [`Req`] through the in-process app.
async fn call<S, B>(svc: &S, req: &Req) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    send(svc, req.test_request()).await
}

/// Signs a v2 user up with `body` and sets its `kyc_id` (asserting both succeed); its id.
async fn signed_up_with_kyc<S, B>(svc: &S, keys: &Keys, body: &Value, kyc_id: &str) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let id = reply_id(&call(svc, &Req::post("/v2/users").keys(keys).json(body)).await);
    let patch = Req::patch(format!("/v2/users/{id}")).keys(keys);
    let reply = call(svc, &patch.json(&json!({ "kyc_id": kyc_id }))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    id
}

/// What is wrong with an error reply's shape, if anything: `{"msg", "type": ""}` for Cotter's
/// v0 API and everything outside `/v2`; `{"error_codes": [CODES], "msg"}` under `/v2`.
fn shape_problem(path: &str, reply: &Reply) -> Option<String> {
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&reply.body) else {
        return Some(format!("not a JSON object: {:?}", reply.body));
    };
    let msg_ok = body
        .get("msg")
        .and_then(Value::as_str)
        .is_some_and(|m| !m.is_empty());
    let ok = if path == "/v2" || path.starts_with("/v2/") {
        let codes_ok = body
            .get("error_codes")
            .and_then(Value::as_array)
            .is_some_and(|codes| {
                !codes.is_empty()
                    && codes.iter().all(|c| {
                        c.as_str().is_some_and(|c| {
                            !c.is_empty() && c.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                        })
                    })
            });
        body.len() == 2 && msg_ok && codes_ok
    } else {
        body.len() == 2 && msg_ok && body.get("type") == Some(&json!(""))
    };
    (!ok).then(|| format!("not in the API's error shape: {}", reply.body))
}

/// A string the server wrote that differs from run to run: a UUID or a time (not the zero
/// time of Cotter's zero user).
fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

fn is_time(s: &str) -> bool {
    s != cotterd::time::ZERO_TIME && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Turns replies into verdicts that two runs of the same requests can be compared on: ids
/// become stable names (the seeds' names, then `id#N` in order of first appearance), times
/// become `<time>`, a body that is not JSON becomes its content type.
#[derive(Default)]
struct Normaliser {
    names: HashMap<String, String>,
}

impl Normaliser {
    fn name(&mut self, id: &str, name: &str) {
        self.names.insert(id.to_lowercase(), name.to_owned());
    }

    fn value(&mut self, value: &mut Value) {
        match value {
            Value::String(s) if s != NIL_ID && is_uuid(s) => {
                let next = format!("id#{}", self.names.len());
                *s = self.names.entry(s.to_lowercase()).or_insert(next).clone();
            }
            Value::String(s) if is_time(s) => *s = "<time>".to_owned(),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.value(v)),
            _ => {}
        }
    }

    fn verdict(&mut self, reply: &Reply) -> String {
        let body = match serde_json::from_str::<Value>(&reply.body) {
            Ok(mut json) => {
                self.value(&mut json);
                json.to_string()
            }
            Err(_) => format!(
                "<{} body>",
                reply
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("untyped")
            ),
        };
        format!("{} {body}", reply.status.as_u16())
    }
}

/// A user row in three parts (tuples of more than 12 are not `Debug`): id, issuer, identifiers
/// and methods; times; the v2 profile with the password hash.
type UserRow = (
    (
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    ),
    (NaiveDateTime, NaiveDateTime, Option<NaiveDateTime>),
    (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
);
type AccountRow = (String, String, String, String, NaiveDateTime);

/// Every row of `users` and `accounts` (of one issuer, or all), by id, every column as text.
#[derive(Debug, Clone, Default, PartialEq)]
struct Snapshot {
    users: BTreeMap<String, String>,
    accounts: BTreeMap<String, String>,
}

impl Snapshot {
    fn take(app: &TestApp, issuer: Option<&str>) -> Self {
        let mut conn = app.state.pool.get().expect("connection");
        let keep = |row_issuer: &str| issuer.is_none_or(|issuer| issuer == row_issuer);
        let users = users::table
            .select((
                (
                    users::id,
                    users::issuer,
                    users::identifier,
                    users::identifier_normalized,
                    users::enrolled,
                    users::default_method,
                    users::identifiers,
                ),
                (users::created_at, users::updated_at, users::deleted_at),
                (
                    users::password_hash,
                    users::phone_number,
                    users::first_name,
                    users::last_name,
                    users::kyc_id,
                ),
            ))
            .load::<UserRow>(conn.conn())
            .expect("load users")
            .into_iter()
            .filter(|row| keep(&row.0 .1))
            .map(|row| (row.0 .0.clone(), format!("{row:?}")))
            .collect();
        let accounts = accounts::table
            .select(accounts::all_columns)
            .load::<AccountRow>(conn.conn())
            .expect("load accounts")
            .into_iter()
            .filter(|row| keep(&row.2))
            .map(|row| (row.0.clone(), format!("{row:?}")))
            .collect();
        Snapshot { users, accounts }
    }

    /// Ids of rows added since `before`, and of rows changed or removed since.
    fn diff(&self, before: &Snapshot) -> (Vec<String>, Vec<String>) {
        let mut added = Vec::new();
        let mut changed = Vec::new();
        for (now, then) in [
            (&self.users, &before.users),
            (&self.accounts, &before.accounts),
        ] {
            for (id, row) in now {
                match then.get(id) {
                    None => added.push(id.clone()),
                    Some(old) if old != row => changed.push(id.clone()),
                    Some(_) => {}
                }
            }
            changed.extend(then.keys().filter(|id| !now.contains_key(*id)).cloned());
        }
        (added, changed)
    }
}

/// A v2 sign-up body.
fn v2_user(email: &str, password: &str, phone: &str, first_name: &str) -> Value {
    json!({
        "login": {"email": email, "password": password},
        "phone_number": phone,
        "first_name": first_name,
        "last_name": "Lovelace",
    })
}

/// `id` (v2) or `ID` (v0) of a successful reply.
fn reply_id(reply: &Reply) -> String {
    let json = reply.json();
    json.get("id")
        .or_else(|| json.get("ID"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no id in {}", reply.body))
        .to_owned()
}

/// Spellings of `identifier` that are the same identifier once normalised: case, full width,
/// NFKC ligatures and compatibility characters, surrounding whitespace. Always seven, in the
/// same order, some equal to `identifier` when it has no letter to respell.
fn same_spellings(identifier: &str) -> [String; 7] {
    let full_width: String = identifier
        .chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
            c => c,
        })
        .collect();
    let mixed_case: String = identifier
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    [
        identifier.to_uppercase(),
        mixed_case,
        full_width,
        identifier.replace("fi", "\u{FB01}"),
        identifier.replace('@', "\u{FF20}"),
        identifier.replace('k', "\u{212A}"),
        format!("  {identifier}\t\n"),
    ]
}

/// Spellings that look like `identifier` but are other identifiers: Cyrillic and Greek
/// letters, a dotless i, a capital I for an l, a zero-width space (those that differ from it).
fn lookalike_spellings(identifier: &str) -> Vec<String> {
    vec![
        identifier.replacen('a', "\u{430}", 1),
        identifier.replacen('e', "\u{435}", 1),
        identifier.replacen('i', "\u{131}", 1),
        identifier.replacen('l', "I", 1),
        identifier.replacen('n', "\u{3B7}", 1),
        format!("{identifier}\u{200B}"),
    ]
    .into_iter()
    .filter(|s| s != identifier)
    .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Hostile input on every route, both backends side by side
// ---------------------------------------------------------------------------------------------

/// The user made through v0 before the corpus runs.
const KATE: &str = "kate.file@example.com";
/// The user made through v2 before the corpus runs, with a `kyc_id` and an account.
const NINA: &str = "nina.file@example.com";
/// What the corpus writes for the seeds' ids, which differ between backends.
const NINA_ID: &str = "@@NINA@@";
const KATE_ID: &str = "@@KATE@@";
const ACCOUNT_ID: &str = "@@ACCOUNT@@";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    V0Create,
    V0Get,
    V0GetById,
    V0List,
    V2Create,
    V2Get,
    V2Patch,
    V2Accounts,
    /// Probes, metrics, the OpenAPI document, paths that are no route.
    Other,
}

impl Route {
    /// The table a 2xx of this route adds a row to, if any.
    fn creates(self) -> bool {
        matches!(self, Route::V0Create | Route::V2Create | Route::V2Accounts)
    }
}

/// What an input must get, beyond the rules every input is held to.
#[derive(Debug, Clone)]
enum Check {
    None,
    /// A lookup: 400 for an invalid identifier, else 200 with the zero user or a user whose
    /// identifier normalises to this.
    Lookup(Option<String>),
    /// The seed's identifier spelled otherwise: finds it (get), conflicts with it (create).
    Same(&'static str),
    /// A lookalike of the seed's identifier: not the seed (get), a new user (create).
    Distinct(&'static str),
    /// Must be refused with 400 (e.g. a query that is not UTF-8 once decoded).
    BadRequest,
}

struct Input {
    route: Route,
    req: Req,
    check: Check,
}

/// Strings that probe validation, encoding and the queries: control bytes and NUL, SQL and
/// LIKE metacharacters, Unicode edge cases, lengths at and past the limits.
fn hostile_strings() -> Vec<String> {
    let controls = [
        '\0', '\x01', '\x07', '\x08', '\t', '\n', '\r', '\x1b', '\x1f', '\x7f', '\u{85}', '\u{9b}',
    ];
    let sql = [
        "'",
        "''",
        "\"",
        "`",
        "%",
        "%%",
        "_",
        "\\",
        "\\%",
        "\\_",
        ";",
        "--",
        "';--",
        "' OR '1'='1",
        "' OR 1=1 --",
        "\" OR \"\"=\"",
        "1; DROP TABLE users; --",
        "'); DELETE FROM users; --",
        "' UNION SELECT id, issuer FROM users --",
        "$1",
        "$$",
        "?",
        "*",
        "/*",
        "*/",
        "E'\\x00'",
        "%@example.com",
        "_ate.file@example.com",
        "kate.file@example.co_",
        "kate.file@%",
        "%kate%",
        "k%e.file@example.com",
        "KATE.FILE@EXAMPLE.COM' --",
    ];
    let unicode = [
        "",
        " ",
        "\u{3000}",
        "\u{FEFF}",
        "\u{200B}",
        "\u{202E}moc.elpmaxe@x",
        "\u{FFFF}",
        "\u{10FFFF}",
        "e\u{301}@example.com",
        "\u{FDFA}",
        "\u{1F600}@example.com",
        "\u{1C5}@example.com",
        "\u{130}@example.com",
        "\u{DF}@example.com",
    ];
    let mut out: Vec<String> = controls
        .iter()
        .flat_map(|c| [format!("a{c}b@example.com"), c.to_string()])
        .collect();
    out.push(format!("{KATE}\0"));
    out.extend(sql.iter().chain(&unicode).map(|s| (*s).to_owned()));
    out.extend([
        "\u{FDFA}".repeat(60),
        "\u{E9}".repeat(254),
        "\u{E9}".repeat(255),
        "\u{1F600}".repeat(254),
        "a".repeat(5000),
    ]);
    out
}

/// JSON values put where a string field belongs: other types, escapes (NUL, lone surrogates,
/// an escaped spelling of a seed), numbers no type holds, and text that is not JSON.
fn hostile_json_values() -> Vec<String> {
    let escaped_kate: String = KATE
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    [
        "null",
        "0",
        "-0",
        "1e400",
        "99999999999999999999999",
        "true",
        "[]",
        "{}",
        "[\"a\"]",
        "{\"$ne\": null}",
        "\"\\u0000\"",
        "\"a\\u0000b\"",
        "\"\\ud800\"",
        "\"\\udc00\\ud800\"",
        "NaN",
        "Infinity",
        "'single'",
        "\"unterminated",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([format!("\"{escaped_kate}\"")])
    .collect()
}

/// A route that takes a body: its method, its URI, and its body around one field's raw JSON
/// value.
type BodyRoute = (Route, Method, &'static str, fn(&[u8]) -> Vec<u8>);

/// The four routes that take a body.
fn body_routes() -> [BodyRoute; 4] {
    fn wrap(before: &str, value: &[u8], after: &str) -> Vec<u8> {
        [before.as_bytes(), value, after.as_bytes()].concat()
    }
    [
        (Route::V0Create, Method::POST, "/api/v0/user/create", |v| {
            wrap("{\"identifier\": ", v, "}")
        }),
        (Route::V2Create, Method::POST, "/v2/users", |v| {
            wrap(
                "{\"login\": {\"email\": ",
                v,
                ", \"password\": \"correct horse\"}, \"phone_number\": \"+15551234567\", \
                 \"first_name\": \"A\", \"last_name\": \"B\"}",
            )
        }),
        (Route::V2Patch, Method::PATCH, "/v2/users/@@NINA@@", |v| {
            wrap("{\"kyc_id\": ", v, "}")
        }),
        (Route::V2Accounts, Method::POST, "/v2/accounts", |v| {
            wrap("{\"user_id\": \"@@NINA@@\", \"account_type\": ", v, "}")
        }),
    ]
}

/// Builds the corpus in the order it runs: reads first (so that lookups meet only the seeds),
/// then updates, then creates.
#[derive(Default)]
struct Corpus(Vec<Input>);

impl Corpus {
    fn add(&mut self, route: Route, req: Req, check: Check) {
        self.0.push(Input { route, req, check });
    }

    /// An input held to the rules every input is held to, and no more.
    fn plain(&mut self, route: Route, req: Req) {
        self.add(route, req, Check::None);
    }

    /// A value unique to the next input, for bodies that must not collide with each other.
    fn unique(&self) -> usize {
        self.0.len()
    }
}

fn corpus() -> Vec<Input> {
    let strings = hostile_strings();
    let mut c = Corpus::default();

    // Lookups by identifier: every hostile string, the seeds' spellings, raw query strings.
    for s in &strings {
        let check = Check::Lookup(Identifier::parse(s).ok().map(|id| id.normalized));
        let uri = format!("/api/v0/user?identifier={}", url_encode(s));
        c.add(Route::V0Get, Req::get(uri), check);
    }
    for seed in [KATE, NINA] {
        let same = same_spellings(seed).map(|s| (s, Check::Same(seed)));
        let lookalikes = lookalike_spellings(seed).into_iter();
        for (s, check) in same
            .into_iter()
            .chain(lookalikes.map(|s| (s, Check::Distinct(seed))))
        {
            let uri = format!("/api/v0/user?identifier={}", url_encode(&s));
            c.add(Route::V0Get, Req::get(uri), check);
        }
    }
    // Not UTF-8 once percent-decoded: refused, not read with U+FFFD in place.
    for query in [
        "identifier=%FF",
        "identifier=%C0%AF",
        "identifier=a%ED%A0%80",
    ] {
        let req = Req::get(format!("/api/v0/user?{query}"));
        c.add(Route::V0Get, req, Check::BadRequest);
    }
    for query in [
        "identifier=%00",
        "identifier=%",
        "identifier=%zz",
        "identifier",
        "identifier=",
        "identifier=a@example.com&identifier=kate.file@example.com",
        "IDENTIFIER=kate.file@example.com",
        "identifier[]=kate.file@example.com",
        "identifier=kate.file%40example.com%00",
        "identifier=+kate.file@example.com+",
        "",
    ] {
        c.plain(Route::V0Get, Req::get(format!("/api/v0/user?{query}")));
    }

    c.add(
        Route::V0List,
        Req::get("/api/v0/user/list?page=0&x=%FF".to_owned()),
        Check::BadRequest,
    );

    // Ids in paths: every hostile string encoded, and raw segments.
    let raw_segments = [
        "%FF",
        "%C0%AF",
        "%00",
        "%2F",
        "..",
        "%2E%2E",
        "%",
        "%zz",
        NIL_ID,
        KATE_ID,
        NINA_ID,
        ACCOUNT_ID,
        "%7B@@NINA@@%7D",
        "urn:uuid:@@NINA@@",
        "%20@@NINA@@",
        "@@NINA@@%00",
        "@@NINA@@%20",
        "@@NINA@@/x",
    ];
    let segments: Vec<String> = strings
        .iter()
        .map(|s| url_encode(s))
        .chain(raw_segments.iter().map(|s| (*s).to_owned()))
        .collect();
    for segment in &segments {
        c.plain(
            Route::V0GetById,
            Req::get(format!("/api/v0/user/{segment}")),
        );
        c.plain(Route::V2Get, Req::get(format!("/v2/users/{segment}")));
    }

    // Pages.
    for page in [
        "0",
        "1",
        "-0",
        "+1",
        "%2B1",
        "1e3",
        "1e400",
        "99999999999999999999",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "1000000",
        "1000001",
        "-1",
        "0x10",
        "010",
        "1.0",
        "1.",
        "%201",
        "1%20",
        "%091%0A",
        "%00",
        "1%00",
        "",
        "%FF",
        "NaN",
        "inf",
        "%EF%BC%91",
        "%D9%A1",
        "1_000",
        "1,0",
        "%",
    ] {
        c.plain(
            Route::V0List,
            Req::get(format!("/api/v0/user/list?page={page}")),
        );
    }
    for query in ["page=1&page=2", "page", "PAGE=1", "page[]=1", ""] {
        c.plain(
            Route::V0List,
            Req::get(format!("/api/v0/user/list?{query}")),
        );
    }

    // Routes without keys, and paths that are no route, with hostile queries and segments.
    for path in ["/healthz", "/readyz", "/metrics", "/api/openapi.json"] {
        for suffix in ["?%FF", "?%00=%00", "?a=1&a=2", "/%00", "/..%2F", "%20"] {
            c.plain(Route::Other, Req::get(format!("{path}{suffix}")));
        }
        let post = Req::post(path).body(Some("application/json"), b"{\"a\":\x00\xff}".to_vec());
        c.plain(Route::Other, post);
    }
    for path in [
        "/v2",
        "/v2/%FF",
        "/v2/users/x/y",
        "/v2/%00",
        "/api/v0/%00",
        "/api/v0/user/",
    ] {
        c.plain(Route::Other, Req::get(path));
    }

    // Wrong methods on every route.
    for (route, path) in [
        (Route::V0Create, "/api/v0/user/create"),
        (
            Route::V0Get,
            "/api/v0/user?identifier=kate.file@example.com",
        ),
        (Route::V0GetById, "/api/v0/user/@@KATE@@"),
        (Route::V0List, "/api/v0/user/list"),
        (Route::V2Create, "/v2/users"),
        (Route::V2Get, "/v2/users/@@NINA@@"),
        (Route::V2Accounts, "/v2/accounts"),
    ] {
        for method in [Method::DELETE, Method::PUT] {
            let req = Req::new(method, path).json(&json!({"kyc_id": "x"}));
            c.plain(route, req);
        }
    }

    // Updates: hostile ids in the path, hostile kyc_ids and user_ids in the body.
    for segment in &segments {
        let req = Req::patch(format!("/v2/users/{segment}")).json(&json!({"kyc_id": "kyc-path"}));
        c.plain(Route::V2Patch, req);
    }
    for s in &strings {
        let patch = |body: Value| Req::patch(format!("/v2/users/{NINA_ID}")).json(&body);
        c.plain(Route::V2Patch, patch(json!({"kyc_id": s})));
        c.plain(
            Route::V2Patch,
            patch(json!({"kyc_id": "kyc-u", "user_id": s})),
        );
    }

    // Accounts: hostile user_ids and account types.
    for s in strings.iter().chain(&segments) {
        let body = json!({"user_id": s, "account_type": "checking"});
        c.plain(Route::V2Accounts, Req::post("/v2/accounts").json(&body));
    }
    for s in &strings {
        let body = json!({"user_id": NINA_ID, "account_type": s});
        c.plain(Route::V2Accounts, Req::post("/v2/accounts").json(&body));
    }

    // Bodies: wrong JSON values, bytes that are not UTF-8, sizes, depths, duplicate keys,
    // content types. A "valid" body is unique to its input, so that it may create a row.
    for (route, method, uri, body) in body_routes() {
        let at = |bytes: Vec<u8>, content_type: Option<&str>| {
            Req::new(method.clone(), uri).body(content_type, bytes)
        };
        for value in hostile_json_values() {
            c.plain(route, at(body(value.as_bytes()), Some("application/json")));
        }
        let deep = |open: &str| open.repeat(100_000);
        let mut raw: Vec<Vec<u8>> = vec![
            body(b"\"\xff\xfe\""),
            body(b"\"\xc0\xaf\""),
            body(b"\"\xed\xa0\x80\""),
            body(deep("[").as_bytes()),
            body(deep("{\"a\":").as_bytes()),
            deep("[").into_bytes(),
            deep("{").into_bytes(),
            deep("{\"a\":").into_bytes(),
            body(format!("\"{}\"", "a".repeat(2 << 20)).as_bytes()),
            Vec::new(),
            b"   ".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            b"\"str\"".to_vec(),
            b"{\"a\": 1}".to_vec(),
            b"{\"a\": {\"b\": 1, \"b\": 2}}".to_vec(),
        ];
        let valid = |c: &Corpus| match route {
            Route::V2Patch => format!("\"kyc-{}\"", c.unique()),
            Route::V2Accounts => "\"savings\"".to_owned(),
            _ => format!("\"b{}@example.com\"", c.unique()),
        };
        let dup = |v1: &str, v2: &str| -> Vec<u8> {
            let one = String::from_utf8(body(v1.as_bytes())).unwrap();
            let two = String::from_utf8(body(v2.as_bytes())).unwrap();
            // Both objects' members in one: every key twice, the second time with `v2`.
            format!("{},{}", &one[..one.len() - 1], &two[1..]).into_bytes()
        };
        raw.push(dup("\"d1@example.com\"", "\"d2@example.com\""));
        for bytes in raw {
            c.plain(route, at(bytes, Some("application/json")));
        }
        for wrapper in [
            |b: Vec<u8>| [b"\xef\xbb\xbf".to_vec(), b].concat(),
            |b: Vec<u8>| b[..b.len() - 1].to_vec(),
            |b: Vec<u8>| [b, b"x".to_vec()].concat(),
            |b: Vec<u8>| [b.clone(), b].concat(),
            |b: Vec<u8>| [b"/**/".to_vec(), b].concat(),
            |b: Vec<u8>| b.iter().flat_map(|&byte| [byte, 0]).collect::<Vec<u8>>(),
        ] {
            let bytes = wrapper(body(valid(&c).as_bytes()));
            c.plain(route, at(bytes, Some("application/json")));
        }
        for content_type in [
            None,
            Some("text/plain"),
            Some("multipart/form-data; boundary=x"),
            Some("application/x-www-form-urlencoded"),
            Some("application/json; charset=latin1"),
            Some("application/json; charset=utf-16"),
            Some("APPLICATION/JSON"),
            Some("application/vnd.api+json"),
            Some("application/json, text/plain"),
            Some("text/json"),
            Some(""),
        ] {
            let bytes = body(valid(&c).as_bytes());
            c.plain(route, at(bytes, content_type));
        }
        let latin1 = body(b"\"\xe9@example.com\"");
        c.plain(route, at(latin1, Some("application/json; charset=latin1")));
        let form = b"identifier=x".to_vec();
        c.plain(route, at(form, Some("application/x-www-form-urlencoded")));
    }
    // Duplicate keys nested inside the v2 bodies (`body_routes` covers the top level).
    for (route, uri, raw) in [
        (Route::V2Create, "/v2/users", "{\"login\": {\"email\": \"n1@example.com\", \"email\": \"n2@example.com\", \"password\": \"correct horse\"}, \"phone_number\": \"+15551234567\", \"first_name\": \"A\", \"last_name\": \"B\"}"),
        (Route::V2Accounts, "/v2/accounts", "{\"user_id\": \"@@NINA@@\", \"account_type\": \"checking\", \"x\": {\"a\": 1, \"a\": 2}}"),
    ] {
        c.plain(route, Req::post(uri).body(Some("application/json"), raw));
    }
    let nested = Req::patch(format!("/v2/users/{NINA_ID}")).body(
        Some("application/json"),
        "{\"kyc_id\": \"k\", \"user_id\": {\"a\": 1, \"a\": 2}}",
    );
    c.plain(Route::V2Patch, nested);
    let nested = Req::post("/api/v0/user/create").body(
        Some("application/json"),
        "{\"identifier\": {\"a\": 1, \"a\": 2}}",
    );
    c.plain(Route::V0Create, nested);

    // v2 sign-ups: each hostile string as the email, and as the first name, the phone number
    // and the password next to NINA's email: every field is validated before the email is
    // found taken, so a valid value gets 409 without the deliberately slow password hash. A few
    // names are stored for real, under emails of their own.
    for s in &strings {
        for body in [
            v2_user(s, PASSWORD, "+15551234567", "Ada"),
            v2_user(NINA, PASSWORD, "+15551234567", s),
            v2_user(NINA, PASSWORD, s, "Ada"),
            v2_user(NINA, s, "+15551234567", "Ada"),
        ] {
            c.plain(Route::V2Create, Req::post("/v2/users").json(&body));
        }
    }
    for name in [
        "' OR '1'='1",
        "1; DROP TABLE users; --",
        "\\%_",
        "\u{202E}x",
        "\u{10FFFF}",
    ] {
        let email = format!("s{}@example.com", c.unique());
        let body = v2_user(&email, PASSWORD, "+15551234567", name);
        c.plain(Route::V2Create, Req::post("/v2/users").json(&body));
    }
    // v2 takes the seeds' same spellings (both taken) and NINA's lookalikes (new); v0 takes
    // them after, with KATE's lookalikes, so that no lookalike is created twice.
    let spellings = |lookalikes_of: &'static str| {
        let mut all: Vec<(String, Check)> = Vec::new();
        for seed in [KATE, NINA] {
            all.extend(
                same_spellings(seed)
                    .into_iter()
                    .map(|s| (s, Check::Same(seed))),
            );
        }
        all.extend(
            lookalike_spellings(lookalikes_of)
                .into_iter()
                .map(|s| (s, Check::Distinct(lookalikes_of))),
        );
        all
    };
    for (s, check) in spellings(NINA) {
        let body = v2_user(&s, PASSWORD, "+15551234567", "Ada");
        c.add(Route::V2Create, Req::post("/v2/users").json(&body), check);
    }

    // v0 creates: every hostile string, then the seeds' spellings.
    for s in &strings {
        let req = Req::post("/api/v0/user/create").json(&json!({ "identifier": s }));
        c.plain(Route::V0Create, req);
    }
    for (s, check) in spellings(KATE) {
        let req = Req::post("/api/v0/user/create").json(&json!({ "identifier": s }));
        c.add(Route::V0Create, req, check);
    }
    c.0
}

/// Replaces every `needle` in `haystack`.
fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// What one backend made of the corpus.
#[derive(Default)]
struct Run {
    verdicts: Vec<String>,
    server_errors: Vec<String>,
    shape_errors: Vec<String>,
    check_failures: Vec<String>,
    /// Rows added or changed by requests that were refused.
    rows_created_by_rejected: usize,
    rows_changed_by_rejected: usize,
    /// Requests whose changes do not fit their answer: a 2xx that changed other rows than the
    /// one it answered with, a refusal that changed any.
    unaccounted_changes: Vec<String>,
    /// Rows at the end that no 2xx answered for, and rows a 2xx answered for that are gone.
    rows_unexplained: usize,
}

/// Seeds a fresh app (KATE through v0; NINA through v2 with a kyc_id and an account), then sends
/// it the corpus, one request at a time, checking each answer and what it changed.
async fn run_corpus(backend: Backend, corpus: &[Input]) -> Run {
    // Bodies up to 1 MiB reach the JSON parser, so that the 100k-deep documents are parsed;
    // the 2 MB body is still refused.
    let app = TestApp::with_settings(backend, |s| s.max_body_bytes = 1 << 20);
    let keys = app.project("hostile");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let kate = reply_id(
        &call(
            &svc,
            &Req::post("/api/v0/user/create")
                .keys(&keys)
                .json(&json!({ "identifier": KATE })),
        )
        .await,
    );
    let nina_body = v2_user(NINA, PASSWORD, "+15551234567", "Nina");
    let nina = signed_up_with_kyc(&svc, &keys, &nina_body, "kyc-nina").await;
    let open = Req::post("/v2/accounts").keys(&keys);
    let account = reply_id(
        &call(
            &svc,
            &open.json(&json!({"user_id": nina, "account_type": "checking"})),
        )
        .await,
    );

    let mut names = Normaliser::default();
    names.name(&keys.id, "issuer");
    let seeds = HashMap::from([(KATE, kate.clone()), (NINA, nina.clone())]);
    for (name, id) in [("kate", &kate), ("nina", &nina), ("account", &account)] {
        names.name(id, name);
    }
    let substitutions = [(NINA_ID, &nina), (KATE_ID, &kate), (ACCOUNT_ID, &account)];

    let mut run = Run::default();
    let mut expected = Snapshot::take(&app, None);
    let mut before = expected.clone();
    for input in corpus {
        let mut req = input.req.clone().keys(&keys);
        for (placeholder, id) in substitutions {
            req.uri = req.uri.replace(placeholder, id);
            req.body = replace_bytes(&req.body, placeholder.as_bytes(), id.as_bytes());
        }
        let what = input.req.describe();
        let reply = call(&svc, &req).await;
        run.verdicts.push(names.verdict(&reply));
        if reply.status.is_server_error() {
            run.server_errors
                .push(format!("{what} -> {} {}", reply.status, reply.body));
        }
        if !reply.status.is_success() {
            if let Some(problem) = shape_problem(req.path(), &reply) {
                run.shape_errors
                    .push(format!("{what} -> {} {problem}", reply.status));
            }
        }
        if let Err(failure) = check(input, &reply, &seeds) {
            run.check_failures.push(format!("{what}: {failure}"));
        }
        if req.method == Method::GET {
            continue; // reads write nothing (checked at the end: every row is accounted for)
        }
        let after = Snapshot::take(&app, None);
        let (added, changed) = after.diff(&before);
        if reply.status.is_success() {
            let id = reply_id(&reply);
            let fits = match input.route {
                r if r.creates() => added == [id.clone()] && changed.is_empty(),
                Route::V2Patch => added.is_empty() && changed.iter().all(|row| *row == id),
                _ => added.is_empty() && changed.is_empty(),
            };
            if !fits {
                run.unaccounted_changes
                    .push(format!("{what}: added {added:?}, changed {changed:?}"));
            }
            if input.route.creates() {
                let table = if input.route == Route::V2Accounts {
                    &mut expected.accounts
                } else {
                    &mut expected.users
                };
                table.insert(id, String::new());
            }
        } else {
            run.rows_created_by_rejected += added.len();
            run.rows_changed_by_rejected += changed.len();
            if !added.is_empty() || !changed.is_empty() {
                run.unaccounted_changes.push(format!(
                    "{what} -> {}: added {added:?}, changed {changed:?}",
                    reply.status
                ));
            }
        }
        before = after;
    }
    let end = Snapshot::take(&app, None);
    for (now, wanted) in [
        (&end.users, &expected.users),
        (&end.accounts, &expected.accounts),
    ] {
        let now: BTreeSet<&String> = now.keys().collect();
        let wanted: BTreeSet<&String> = wanted.keys().collect();
        run.rows_unexplained += now.symmetric_difference(&wanted).count();
    }
    run
}

/// The input's own check (see [`Check`]).
fn check(input: &Input, reply: &Reply, seeds: &HashMap<&str, String>) -> Result<(), String> {
    let found = || -> String {
        serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|json| json["ID"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let want = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected {what}, got {} {}",
                reply.status, reply.body
            ))
        }
    };
    let is = |status: StatusCode| reply.status == status;
    match (&input.check, input.route) {
        (Check::None, _) => Ok(()),
        (Check::BadRequest, _) => want(is(StatusCode::BAD_REQUEST), "400"),
        (Check::Lookup(None), _) => want(is(StatusCode::BAD_REQUEST), "400 (invalid identifier)"),
        (Check::Lookup(Some(normalized)), _) => {
            let json: Value = serde_json::from_str(&reply.body).unwrap_or_default();
            let returned = json["identifier"].as_str().unwrap_or_default();
            want(
                is(StatusCode::OK)
                    && (found() == NIL_ID || normalize_identifier(returned) == *normalized),
                "the zero user or a user with this identifier",
            )
        }
        (Check::Same(seed), Route::V0Get) => {
            want(is(StatusCode::OK) && found() == seeds[seed], "the seed")
        }
        (Check::Distinct(seed), Route::V0Get) => {
            want(is(StatusCode::OK) && found() != seeds[seed], "not the seed")
        }
        (Check::Same(_), Route::V0Create) => want(
            is(StatusCode::CONFLICT) && reply.body.contains("user already exist"),
            "409 user already exist",
        ),
        // v2 takes ASCII emails only: a spelling may be refused as invalid, never created.
        (Check::Same(_), Route::V2Create) => want(
            is(StatusCode::CONFLICT) && reply.body.contains("\"EMAIL_TAKEN\"")
                || is(StatusCode::BAD_REQUEST) && reply.body.contains("\"EMAIL_INVALID\""),
            "409 EMAIL_TAKEN (or 400 EMAIL_INVALID)",
        ),
        (Check::Distinct(_), Route::V0Create) => want(is(StatusCode::OK), "200 (a new user)"),
        (Check::Distinct(_), Route::V2Create) => want(
            is(StatusCode::CREATED)
                || is(StatusCode::BAD_REQUEST) && reply.body.contains("\"EMAIL_INVALID\""),
            "201 (a new user; or 400 EMAIL_INVALID)",
        ),
        (check, route) => Err(format!("no rule for {check:?} on {route:?}")),
    }
}

/// Prints the first few entries of a list of problems and how many there were.
fn listing(problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(15).map(String::as_str).collect();
    format!("{} in all:\n  {}", problems.len(), shown.join("\n  "))
}

#[actix_web::test]
async fn hostile_inputs_answer_alike_on_both_backends() {
    let corpus = corpus();
    let (sqlite, postgres) = futures_util::future::join(
        run_corpus(Backend::Sqlite, &corpus),
        run_corpus(Backend::Postgres, &corpus),
    )
    .await;

    let mut differences = Vec::new();
    for (i, input) in corpus.iter().enumerate() {
        if sqlite.verdicts[i] != postgres.verdicts[i] {
            differences.push(format!(
                "{}\n    sqlite:   {}\n    postgres: {}",
                input.req.describe(),
                sqlite.verdicts[i],
                postgres.verdicts[i]
            ));
        }
    }
    let runs = [("sqlite", &sqlite), ("postgres", &postgres)];
    let total = |f: fn(&Run) -> usize| runs.iter().map(|(_, run)| f(run)).sum::<usize>();
    let checks = corpus
        .iter()
        .filter(|i| !matches!(i.check, Check::None))
        .count();

    for (name, value) in [
        ("hostile.inputs", corpus.len()),
        ("hostile.requests", 2 * corpus.len()),
        ("hostile.5xx", total(|r| r.server_errors.len())),
        (
            "hostile.error_shape_violations",
            total(|r| r.shape_errors.len()),
        ),
        ("hostile.identifier_checks", 2 * checks),
        (
            "hostile.identifier_check_failures",
            total(|r| r.check_failures.len()),
        ),
        (
            "hostile.rows_created_by_rejected",
            total(|r| r.rows_created_by_rejected),
        ),
        (
            "hostile.rows_changed_by_rejected",
            total(|r| r.rows_changed_by_rejected),
        ),
        (
            "hostile.rows_unaccounted",
            total(|r| r.rows_unexplained + r.unaccounted_changes.len()),
        ),
        ("hostile.backend_verdict_differences", differences.len()),
    ] {
        figure(name, value);
    }
    for difference in &differences {
        println!("backends differ: {difference}");
    }

    for (backend, run) in runs {
        assert!(
            run.server_errors.is_empty(),
            "{backend}: 5xx: {}",
            listing(&run.server_errors)
        );
        assert!(
            run.shape_errors.is_empty(),
            "{backend}: {}",
            listing(&run.shape_errors)
        );
        assert!(
            run.check_failures.is_empty(),
            "{backend}: {}",
            listing(&run.check_failures)
        );
        assert!(
            run.unaccounted_changes.is_empty() && run.rows_unexplained == 0,
            "{backend}: rows not explained by a 2xx ({} at the end): {}",
            run.rows_unexplained,
            listing(&run.unaccounted_changes)
        );
    }
    assert!(
        differences.is_empty(),
        "verdicts differ between backends: {}",
        listing(&differences)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Cross-project probes (BOLA)
// ---------------------------------------------------------------------------------------------

/// A project's users, and every string about them that no other project may ever see.
struct Population {
    keys: Keys,
    user_ids: Vec<String>,
    account_ids: Vec<String>,
    identifiers: Vec<String>,
    /// Ids, identifiers (as given and normalised), emails, kyc ids, account ids, phones, names,
    /// the project's keys.
    private: Vec<String>,
    /// `private` without the identifiers (for answers that echo an identifier the caller sent).
    private_but_identifiers: Vec<String>,
}

/// Makes a project's users: two through v0 (one with a mixed-case identifier), two through v2
/// (one with a kyc_id and two accounts). `tag` and `digit` keep every value apart from other
/// projects'.
async fn populate<S, B>(svc: &S, keys: &Keys, tag: &str, digit: u8) -> Population
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let upper = tag.to_uppercase();
    let (mut user_ids, mut account_ids) = (Vec::new(), Vec::new());
    let mut others = vec![keys.id.clone(), keys.secret.clone()];
    let v0 = [
        format!("fiona.{tag}@example.com"),
        format!("Oscar.{upper}@Example.com"),
    ];
    for identifier in &v0 {
        let req = Req::post("/api/v0/user/create").keys(keys);
        let reply = call(svc, &req.json(&json!({ "identifier": identifier }))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        user_ids.push(reply_id(&reply));
    }
    let v2 = [
        format!("carol.{tag}@example.com"),
        format!("dave.{tag}@example.com"),
    ];
    for (n, email) in v2.iter().enumerate() {
        let (phone, first, last) = (
            format!("+1555{digit}00{n}77"),
            format!("First{upper}{n}"),
            format!("Last{upper}{n}"),
        );
        let body = json!({
            "login": {"email": email, "password": PASSWORD},
            "phone_number": phone, "first_name": first, "last_name": last,
        });
        let reply = call(svc, &Req::post("/v2/users").keys(keys).json(&body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        user_ids.push(reply_id(&reply));
        others.extend([phone, first, last]);
    }
    let carol = user_ids[2].clone();
    let kyc = format!("kyc-carol-{tag}-7741");
    let req = Req::patch(format!("/v2/users/{carol}")).keys(keys);
    assert_eq!(
        call(svc, &req.json(&json!({ "kyc_id": kyc }))).await.status,
        StatusCode::OK
    );
    others.push(kyc);
    for account_type in ["checking", "savings"] {
        let body = json!({"user_id": carol, "account_type": account_type});
        let reply = call(svc, &Req::post("/v2/accounts").keys(keys).json(&body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        account_ids.push(reply_id(&reply));
    }
    others.extend(user_ids.iter().chain(&account_ids).cloned());
    others.extend(others.clone().iter().map(|s| s.to_uppercase()));
    let identifiers: Vec<String> = v0.into_iter().chain(v2).collect();
    let mut private = others.clone();
    for identifier in &identifiers {
        private.extend([
            identifier.clone(),
            identifier.to_lowercase(),
            normalize_identifier(identifier),
        ]);
    }
    Population {
        keys: keys.clone(),
        user_ids,
        account_ids,
        identifiers,
        private,
        private_but_identifiers: others,
    }
}

/// What a probe's answer is compared with.
enum Twin {
    /// The answer to this request for a target that does not exist: must be byte-identical.
    Exact(Req),
    /// The answer to this create of an unused identifier: must be equal once ids, times and the
    /// identifier are normalised (B may use A's identifiers: projects are separate namespaces,
    /// and a 409 would tell B that A has the user).
    Alike(Req),
    /// A page of B's own list: must hold B's users only.
    OwnPage,
}

struct Probe {
    req: Req,
    twin: Twin,
}

/// A UUID spelled the ways `Uuid::try_parse` accepts: lower and upper case, braced, simple, URN.
fn id_spellings(id: &str) -> [String; 5] {
    [
        id.to_lowercase(),
        id.to_uppercase(),
        format!("{{{id}}}"),
        id.replace('-', ""),
        format!("urn:uuid:{id}"),
    ]
}

/// Every way of B's (`b`) to reach A's (`a`) users, each with its twin.
fn bola_probes(a: &Population, b: &Population) -> Vec<Probe> {
    let mut probes = Vec::new();
    let random = || uuid::Uuid::new_v4().to_string();
    let mut exact = |req: Req, twin: Req| {
        probes.push(Probe {
            req,
            twin: Twin::Exact(twin),
        })
    };

    // A's identifiers, every spelling, against the same spelling of an unused identifier.
    for (n, identifier) in a.identifiers.iter().enumerate() {
        let unused = format!("nofile{n}.z@example.com");
        let spellings = |id: &str| {
            let mut all = vec![id.to_owned(), id.to_lowercase()];
            all.extend(same_spellings(id));
            all.into_iter().map(|s| {
                Req::get(format!("/api/v0/user?identifier={}", url_encode(&s))).keys(&b.keys)
            })
        };
        let theirs: Vec<Req> = spellings(identifier).collect();
        for (req, twin) in theirs.into_iter().zip(spellings(&unused)) {
            exact(req, twin);
        }
    }

    // A's user ids (and account ids, which are no user ids either), every spelling, on every
    // route that takes a user id, against the same spelling of a random id.
    let by_id: [fn(&str, &Keys) -> Req; 4] = [
        |id, k| Req::get(format!("/api/v0/user/{}", url_encode(id))).keys(k),
        |id, k| Req::get(format!("/v2/users/{}", url_encode(id))).keys(k),
        |id, k| {
            Req::patch(format!("/v2/users/{}", url_encode(id)))
                .keys(k)
                .json(&json!({"kyc_id": "kyc-by-b"}))
        },
        |id, k| {
            Req::post("/v2/accounts")
                .keys(k)
                .json(&json!({"user_id": id, "account_type": "checking"}))
        },
    ];
    for id in a.user_ids.iter().chain(&a.account_ids) {
        let twin = random();
        for (theirs, unused) in id_spellings(id).iter().zip(id_spellings(&twin)) {
            for request in by_id {
                exact(request(theirs, &b.keys), request(&unused, &b.keys));
            }
        }
    }

    // B's own user with A's ids (and A's key id as an issuer) in the body.
    let mine = &b.user_ids[2];
    for id in &a.user_ids {
        let patch = |body: Value| {
            Req::patch(format!("/v2/users/{mine}"))
                .keys(&b.keys)
                .json(&body)
        };
        exact(
            patch(json!({"kyc_id": "k", "user_id": id})),
            patch(json!({"kyc_id": "k", "user_id": random()})),
        );
    }
    {
        let (issuer, twin) = (&a.keys.id, random());
        let create = |issuer: &str| {
            Req::post("/api/v0/user/create")
                .keys(&b.keys)
                .json(&json!({"identifier": "mass@example.com", "issuer": issuer}))
        };
        exact(create(issuer), create(&twin));
        let signup = |issuer: &str| {
            let mut body = v2_user("mass@example.com", PASSWORD, "+15551234567", "Mass");
            body["issuer"] = json!(issuer);
            Req::post("/v2/users").keys(&b.keys).json(&body)
        };
        exact(signup(issuer), signup(&twin));
        let patch = |issuer: &str| {
            Req::patch(format!("/v2/users/{mine}"))
                .keys(&b.keys)
                .json(&json!({"kyc_id": "k", "issuer": issuer}))
        };
        exact(patch(issuer), patch(&twin));
    }

    // Mixed keys: one project's key id with the other's secret, both ways; two key ids.
    let wrong = format!("{}{}", projects::SECRET_PREFIX, "0".repeat(64));
    for (id_of, secret_of, targets) in [(a, b, &b.user_ids), (b, a, &a.user_ids)] {
        let mixed = Keys {
            id: id_of.keys.id.clone(),
            secret: secret_of.keys.secret.clone(),
        };
        let made_up = Keys {
            id: id_of.keys.id.clone(),
            secret: wrong.clone(),
        };
        exact(
            Req::get("/api/v0/user/list?page=0").keys(&mixed),
            Req::get("/api/v0/user/list?page=0").keys(&made_up),
        );
        for id in targets {
            let twin = random();
            for request in by_id {
                exact(request(id, &mixed), request(&twin, &mixed));
            }
        }
    }
    for id in &a.user_ids {
        // B's keys and A's key id as a second API_KEY_ID header, after B's and before them.
        let after = |target: &str| {
            Req::get(format!("/v2/users/{target}"))
                .keys(&b.keys)
                .header("API_KEY_ID", &a.keys.id)
        };
        let before = |target: &str| {
            Req::get(format!("/v2/users/{target}"))
                .header("API_KEY_ID", &a.keys.id)
                .keys(&b.keys)
        };
        exact(after(id), after(&random()));
        exact(before(id), before(&random()));
    }

    // Every page of B's list, and one far past the end.
    for page in [0, 1, 2, 1_000_000] {
        probes.push(Probe {
            req: Req::get(format!("/api/v0/user/list?page={page}")).keys(&b.keys),
            twin: Twin::OwnPage,
        });
    }

    // Last, as they add to B: creates of A's identifiers, against creates of unused ones.
    for (n, identifier) in a.identifiers.iter().enumerate() {
        let unused = format!("unused{n}.z@example.com");
        let v0 = |id: &str| {
            Req::post("/api/v0/user/create")
                .keys(&b.keys)
                .json(&json!({ "identifier": id }))
        };
        let v2 = |id: &str| {
            Req::post("/v2/users")
                .keys(&b.keys)
                .json(&v2_user(id, PASSWORD, "+15551234567", "Bee"))
        };
        probes.push(Probe {
            req: v0(&identifier.to_uppercase()),
            twin: Twin::Alike(v0(&unused.to_uppercase())),
        });
        probes.push(Probe {
            req: v2(identifier),
            twin: Twin::Alike(v2(&unused)),
        });
    }
    probes
}

/// An answer with what differs between two creates blanked: ids, times, the identifier.
fn alike(reply: &Reply) -> String {
    let mut names = Normaliser::default();
    let mut verdict = names.verdict(reply);
    if let Ok(json) = serde_json::from_str::<Value>(&reply.body) {
        if let Some(identifier) = json["identifier"].as_str() {
            verdict = verdict.replace(&Value::from(identifier).to_string(), "\"<identifier>\"");
        }
    }
    verdict
}

/// Project B probes project A's users every way it can; nothing of A's comes back, every answer
/// is the one a missing target gets, and A's rows do not change.
async fn other_projects_cannot_reach_a_users(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let a = populate(&svc, &app.project("a"), "a", 1).await;
    let b = populate(&svc, &app.project("b"), "b", 2).await;
    let a_before = Snapshot::take(&app, Some(&a.keys.id));

    let probes = bola_probes(&a, &b);
    let mut leaks = Vec::new();
    let mut differing = Vec::new();
    let mut listed = BTreeSet::new();
    for probe in &probes {
        let reply = call(&svc, &probe.req).await;
        let what = probe.req.describe();
        let private = match probe.twin {
            Twin::Alike(_) => &a.private_but_identifiers,
            _ => &a.private,
        };
        let headers: Vec<&str> = reply
            .headers
            .iter()
            .filter_map(|(_, v)| v.to_str().ok())
            .collect();
        let seen = format!("{} {}", reply.body, headers.join(" "));
        for secret in private.iter().filter(|s| seen.contains(s.as_str())) {
            leaks.push(format!("{what}: {secret:?} in {}", reply.body));
        }
        let difference = match &probe.twin {
            Twin::Exact(twin) => {
                let twin = call(&svc, twin).await;
                ((reply.status, &reply.body) != (twin.status, &twin.body))
                    .then(|| format!("missing target: {} {}", twin.status, twin.body))
            }
            Twin::Alike(twin) => {
                let twin = alike(&call(&svc, twin).await);
                (alike(&reply) != twin).then(|| format!("unused identifier: {twin}"))
            }
            Twin::OwnPage => {
                let users = reply.json().as_array().cloned().unwrap_or_default();
                let ids: Vec<String> = users
                    .iter()
                    .map(|u| u["ID"].as_str().unwrap_or_default().to_owned())
                    .collect();
                let own = users.iter().all(|u| u["issuer"] == b.keys.id.as_str())
                    && ids.iter().all(|id| b.user_ids.contains(id));
                listed.extend(ids);
                (reply.status != StatusCode::OK || !own)
                    .then(|| "a user that is not B's".to_owned())
            }
        };
        if let Some(difference) = difference {
            differing.push(format!(
                "{what}\n    got: {} {}\n    {difference}",
                reply.status, reply.body
            ));
        }
    }
    let b_ids: BTreeSet<String> = b.user_ids.iter().cloned().collect();
    if listed != b_ids {
        differing.push(format!("B's pages held {listed:?}, B has {b_ids:?}"));
    }
    let a_after = Snapshot::take(&app, Some(&a.keys.id));
    let (added, changed) = a_after.diff(&a_before);

    figure(&format!("bola.{}.probes", backend.label()), probes.len());
    figure(&format!("bola.{}.leaks", backend.label()), leaks.len());
    figure(
        &format!("bola.{}.answers_differing_from_not_found", backend.label()),
        differing.len(),
    );
    figure(
        &format!("bola.{}.a_rows_changed", backend.label()),
        added.len() + changed.len(),
    );
    assert!(
        leaks.is_empty(),
        "A's data in B's answers: {}",
        listing(&leaks)
    );
    assert!(
        differing.is_empty(),
        "answers that tell A's users apart: {}",
        listing(&differing)
    );
    assert_eq!(
        a_after, a_before,
        "A's rows changed: added {added:?}, changed {changed:?}"
    );
    assert_eq!(a_before.users.len(), 4);
    assert_eq!(a_before.accounts.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 3. The credentials matrix
// ---------------------------------------------------------------------------------------------

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

/// A route that takes keys.
struct KeyedRoute {
    route: Route,
    name: &'static str,
    /// Whether it needs `API_SECRET_KEY` even when the project does not require it everywhere.
    needs_secret: bool,
    success: StatusCode,
}

const fn keyed(
    route: Route,
    name: &'static str,
    needs_secret: bool,
    success: StatusCode,
) -> KeyedRoute {
    KeyedRoute {
        route,
        name,
        needs_secret,
        success,
    }
}

/// Every route that takes keys: v0's list and all of v2 need the secret.
const KEYED_ROUTES: [KeyedRoute; 8] = [
    keyed(
        Route::V0Create,
        "POST /api/v0/user/create",
        false,
        StatusCode::OK,
    ),
    keyed(
        Route::V0Get,
        "GET /api/v0/user?identifier=",
        false,
        StatusCode::OK,
    ),
    keyed(
        Route::V0GetById,
        "GET /api/v0/user/{id}",
        false,
        StatusCode::OK,
    ),
    keyed(Route::V0List, "GET /api/v0/user/list", true, StatusCode::OK),
    keyed(Route::V2Create, "POST /v2/users", true, StatusCode::CREATED),
    keyed(Route::V2Get, "GET /v2/users/{id}", true, StatusCode::OK),
    keyed(Route::V2Patch, "PATCH /v2/users/{id}", true, StatusCode::OK),
    keyed(
        Route::V2Accounts,
        "POST /v2/accounts",
        true,
        StatusCode::CREATED,
    ),
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
                let extra = projects::add_secret(conn.conn(), &project).unwrap();
                projects::revoke_secret(conn.conn(), &project, &extra.prefix).unwrap();
                extra.secret
            };
            let v0_identifier = format!("reach.{name}@example.com");
            let req = Req::post("/api/v0/user/create").keys(&keys);
            let v0_id =
                reply_id(&call(&svc, &req.json(&json!({ "identifier": v0_identifier }))).await);
            let body = v2_user(
                &format!("reach2.{name}@example.com"),
                PASSWORD,
                "+15551234567",
                "Ada",
            );
            let v2_id = signed_up_with_kyc(&svc, &keys, &body, "kyc").await;
            targets.push(Target {
                keys,
                require_secret,
                revoked,
                v0_identifier,
                v0_id,
                v2_id,
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
            Route::Other => unreachable!("not a keyed route"),
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
fn cell_problem(cell: &Cell, status: StatusCode, body: &str, path: &str) -> Option<String> {
    let KeyedRoute {
        name: route,
        success,
        ..
    } = KEYED_ROUTES[cell.route];
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
        let reply = Reply {
            status,
            headers: Default::default(),
            body: body.to_owned(),
        };
        let v2_code_ok = !path.starts_with("/v2/") || body.contains("\"UNAUTHORIZED\"");
        if let Some(problem) =
            shape_problem(path, &reply).or((!v2_code_ok).then(|| "no UNAUTHORIZED code".to_owned()))
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
        table.push_str(&format!("{:<30}", "route"));
        for (_, name) in CREDS {
            table.push_str(&format!("{name:>16}"));
        }
        for (r, route) in KEYED_ROUTES.iter().enumerate() {
            table.push_str(&format!("\n{:<30}", route.name));
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
    let all = Snapshot::take(app, None);
    all.users.len() + all.accounts.len()
}

/// Every keyed route under every kind of credentials, for a project with and one without
/// `--require-secret`: exactly the cells with the right keys succeed, the others are 401 in the
/// route's shape and write nothing.
async fn credentials_matrix(backend: Backend) {
    let app = TestApp::new(backend);
    let matrix = Matrix::new(&app).await;
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let cells = matrix.cells();
    let rows_before = rows(&app);
    let mut statuses = Vec::new();
    let mut problems = Vec::new();
    let mut unexpected_successes = 0;
    let mut unexpected_401 = 0;
    let mut creating_successes = 0;
    for cell in &cells {
        let reply = call(&svc, &cell.req).await;
        statuses.push(reply.status.as_u16());
        unexpected_successes += usize::from(reply.status.is_success() && !cell.must_succeed);
        unexpected_401 +=
            usize::from(reply.status == StatusCode::UNAUTHORIZED && cell.must_succeed);
        let route = KEYED_ROUTES[cell.route].route;
        creating_successes += usize::from(reply.status.is_success() && route.creates());
        problems.extend(cell_problem(
            cell,
            reply.status,
            &reply.body,
            cell.req.path(),
        ));
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
        (StatusCode::from_u16(response.status).unwrap(), body)
    };
    let cells = matrix.cells();
    let mut statuses = Vec::new();
    let mut problems = Vec::new();
    for cell in &cells {
        let (status, body) = send(&cell.req);
        statuses.push(status.as_u16());
        problems.extend(cell_problem(cell, status, &body, cell.req.path()));
    }
    for ((email, phone, keys, expected), password) in signups.iter().zip(&passwords) {
        let mut req = Req::post("/v2/users").json(&v2_user(email, password, phone, "Ada"));
        if let Some(keys) = keys {
            req = req.keys(keys);
        }
        let (status, body) = send(&req);
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
    live.extend((0..4).map(|_| projects::add_secret(conn.conn(), &project).unwrap().secret));
    let revoked = live.remove(2);
    projects::revoke_secret(
        conn.conn(),
        &project,
        &revoked[..projects::SECRET_PREFIX.len() + 8],
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

both_backends!(
    other_projects_cannot_reach_a_users,
    credentials_matrix,
    credentials_never_leak_from_the_process,
    secrets_match_only_live_hashes,
);

//! Hostile input on every route: one corpus, sent to a SQLite app and a PostgreSQL app side by
//! side, every answer and every row change checked.

use std::collections::{BTreeSet, HashMap};

use actix_web::http::{Method, StatusCode};
use actix_web::test::init_service;
use serde_json::{json, Value};

use super::{listing, lookalike_spellings, same_spellings, signed_up_with_kyc, Normaliser};
use crate::common::catalogue::{route_of, Route, KEYED_ROUTES};
use crate::common::envelope::shape_problem;
use crate::common::req::{call, Req};
use crate::common::rows::Snapshot;
use crate::common::{
    enroll_device_body, figure, reply_id, unsigned_event_body, url_encode, v2_user, Backend, Reply,
    TestApp, NIL_ID, PASSWORD,
};
use cotterd::users::{normalize_identifier, Identifier};

/// The user made through v0 before the corpus runs.
const KATE: &str = "kate.file@example.com";
/// The user made through v2 before the corpus runs, with a `kyc_id` and an account.
const NINA: &str = "nina.file@example.com";
/// What the corpus writes for the seeds' ids, which differ between backends.
const NINA_ID: &str = "@@NINA@@";
const KATE_ID: &str = "@@KATE@@";
/// A user id no user has.
const NO_USER: &str = "5d1c0b3e-8f7a-4c2d-9e6b-1a2b3c4d5e6f";
const ACCOUNT_ID: &str = "@@ACCOUNT@@";
/// The seeds' project's one secret (revoking it is refused: it is the last live one), and its
/// id in capitals.
const SECRET_ID: &str = "@@SECRET@@";
const SECRET_ID_UPPER: &str = "@@SECRET_UPPER@@";

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
    /// The keyed route it is sent to; `None` for probes, metrics, the OpenAPI document and
    /// paths that are no route.
    route: Option<Route>,
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

/// A URI of `route` that reaches a seed (or creates a user), with placeholders for the seeds'
/// ids.
fn sample_uri(route: Route) -> &'static str {
    match route {
        Route::V0Create => "/api/v0/user/create",
        Route::V0Get => "/api/v0/user?identifier=kate.file@example.com",
        Route::V0GetById => "/api/v0/user/@@KATE@@",
        Route::V0List => "/api/v0/user/list",
        Route::V2Create => "/v2/users",
        Route::V2Get | Route::V2Patch => "/v2/users/@@NINA@@",
        Route::V2Accounts => "/v2/accounts",
        Route::AdminList | Route::AdminCreate => "/admin/v1/users",
        Route::AdminCount => "/admin/v1/users/count",
        Route::AdminGet | Route::AdminDelete => "/admin/v1/users/@@KATE@@",
        Route::AdminRestore => "/admin/v1/users/@@KATE@@/restore",
        Route::AdminDisable => "/admin/v1/users/@@KATE@@/disable",
        Route::AdminEnable => "/admin/v1/users/@@KATE@@/enable",
        Route::AdminAudit => "/admin/v1/audit",
        Route::AdminSignups => "/admin/v1/stats/signups",
        Route::V0UpdateMethods => "/api/v0/user/@@KATE@@",
        Route::V0UpdateMethodsByCotterId => "/api/v0/user/methods?cotter_user_id=@@KATE@@",
        Route::V0EnrolledByCotterId => "/api/v0/user/methods?cotter_user_id=@@KATE@@&method=PIN",
        Route::V0Enrolled => "/api/v0/user/enrolled/@@KATE@@/PIN",
        Route::V0EnrolledKey => "/api/v0/user/enrolled/@@KATE@@/TRUSTED_DEVICE/QUFBQQ",
        Route::V0EnrolledAny => "/api/v0/user/enrolled/any/@@KATE@@/TRUSTED_DEVICE",
        Route::V0ResetPin => "/api/v0/user/reset/start/@@KATE@@",
        Route::V0Event => "/api/v0/event/create",
        Route::V2Verify => "/v2/users/verify",
        Route::AdminUserEvents => "/admin/v1/users/@@KATE@@/events",
        Route::AdminExport => "/admin/v1/users/export",
        Route::AdminImport => "/admin/v1/users/import?dry_run=true",
        Route::AdminSecrets | Route::AdminCreateSecret => "/admin/v1/secrets",
        // A secret id no project has: never the seeds' project's own secret, which the corpus
        // sends its requests with.
        Route::AdminRevokeSecret => "/admin/v1/secrets/0b7e3f1a-52c4-4d8e-9f60-a1b2c3d4e5f6/revoke",
    }
}

/// A body around one field's raw JSON value.
type Wrap = fn(&[u8]) -> Vec<u8>;

/// The body of `route` around one field's raw JSON value, for the routes that take a body.
fn body_around(route: Route) -> Option<Wrap> {
    fn wrap(before: &str, value: &[u8], after: &str) -> Vec<u8> {
        [before.as_bytes(), value, after.as_bytes()].concat()
    }
    match route {
        Route::V0Create => Some(|v| wrap("{\"identifier\": ", v, "}")),
        Route::V2Create => Some(|v| {
            wrap(
                "{\"login\": {\"email\": ",
                v,
                ", \"password\": \"correct horse\"}, \"phone_number\": \"+15551234567\", \
                 \"first_name\": \"A\", \"last_name\": \"B\"}",
            )
        }),
        Route::V2Patch => Some(|v| wrap("{\"kyc_id\": ", v, "}")),
        Route::V2Accounts => {
            Some(|v| wrap("{\"user_id\": \"@@NINA@@\", \"account_type\": ", v, "}"))
        }
        Route::AdminCreate => Some(|v| wrap("{\"identifier\": ", v, "}")),
        Route::V0UpdateMethods | Route::V0UpdateMethodsByCotterId => Some(|v| {
            wrap(
                "{\"method\": \"TRUSTED_DEVICE\", \"enrolled\": true, \"code\": ",
                v,
                "}",
            )
        }),
        // A stale timestamp: whatever the value, nothing is approved.
        Route::V0Event => Some(|v| {
            wrap(
                "{\"client_user_id\": \"@@KATE@@\", \"event\": \"LOGIN\", \"timestamp\": \
                 \"1700000000\", \"method\": \"TRUSTED_DEVICE\", \"approved\": true, \"code\": ",
                v,
                "}",
            )
        }),
        Route::V2Verify => Some(|v| wrap("{\"email\": ", v, ", \"password\": \"wrong horse\"}")),
        Route::V0EnrolledByCotterId
        | Route::V0Enrolled
        | Route::V0EnrolledKey
        | Route::V0EnrolledAny
        | Route::V0ResetPin
        | Route::AdminUserEvents => None,
        Route::V0Get
        | Route::V0GetById
        | Route::V0List
        | Route::V2Get
        | Route::AdminList
        | Route::AdminCount
        | Route::AdminGet
        | Route::AdminDelete
        | Route::AdminRestore
        | Route::AdminDisable
        | Route::AdminEnable
        | Route::AdminAudit
        | Route::AdminSignups
        | Route::AdminExport => None,
        // One NDJSON line; sent as application/json it is refused as no array, still a 200
        // whose lines say so. The corpus imports as a dry run: nothing is written.
        Route::AdminImport => Some(|v| wrap("{\"identifier\": ", v, "}\n")),
        // Neither reads a body: whatever is sent, the secret is issued (201), or the unknown
        // secret is not found (404).
        Route::AdminCreateSecret => Some(|v| wrap("{\"name\": ", v, "}")),
        Route::AdminRevokeSecret => Some(|v| wrap("{\"reason\": ", v, "}")),
        Route::AdminSecrets => None,
    }
}

/// Builds the corpus in the order it runs: reads first (so that lookups meet only the seeds),
/// then updates, then creates.
#[derive(Default)]
struct Corpus(Vec<Input>);

impl Corpus {
    fn add(&mut self, route: Route, req: Req, check: Check) {
        self.0.push(Input {
            route: Some(route),
            req,
            check,
        });
    }

    /// An input held to the rules every input is held to, and no more.
    fn plain(&mut self, route: Route, req: Req) {
        self.add(route, req, Check::None);
    }

    /// An input to no keyed route.
    fn other(&mut self, req: Req) {
        self.0.push(Input {
            route: None,
            req,
            check: Check::None,
        });
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
            c.other(Req::get(format!("{path}{suffix}")));
        }
        let post = Req::post(path).body(Some("application/json"), b"{\"a\":\x00\xff}".to_vec());
        c.other(post);
    }
    for path in [
        "/v2",
        "/v2/%FF",
        "/v2/users/x/y",
        "/v2/%00",
        "/api/v0/%00",
        "/api/v0/user/",
    ] {
        c.other(Req::get(path));
    }

    // Wrong methods on every route (once per path).
    let mut paths = BTreeSet::new();
    for keyed in &KEYED_ROUTES {
        let path = sample_uri(keyed.route);
        if !paths.insert(path) {
            continue;
        }
        for method in [Method::DELETE, Method::PUT] {
            // Only methods the path does not serve (DELETE is a route of an admin path).
            if route_of(&method, path).is_some() {
                continue;
            }
            let req = Req::new(method, path).json(&json!({"kyc_id": "x"}));
            c.plain(keyed.route, req);
        }
    }

    // The admin API: hostile ids in every path that names a user (none reaches a user, so
    // nothing changes), hostile values of every list, count, audit and statistics parameter.
    for segment in &segments {
        for (route, method, suffix) in [
            (Route::AdminGet, Method::GET, ""),
            (Route::AdminDelete, Method::DELETE, ""),
            (Route::AdminDelete, Method::DELETE, "?purge=true"),
            (Route::AdminRestore, Method::POST, "/restore"),
            (Route::AdminDisable, Method::POST, "/disable"),
            (Route::AdminEnable, Method::POST, "/enable"),
        ] {
            // The seeds are changed by none of these but a read: a success would change a row.
            if method != Method::GET && segment.contains("@@") {
                continue;
            }
            let uri = format!("/admin/v1/users/{segment}{suffix}");
            c.plain(route, Req::new(method, uri));
        }
    }
    for s in &strings {
        let v = url_encode(s);
        for param in [
            "limit",
            "order",
            "q",
            "status",
            "created_after",
            "created_before",
            "cursor",
            "include_total",
        ] {
            c.plain(
                Route::AdminList,
                Req::get(format!("/admin/v1/users?{param}={v}")),
            );
        }
        for param in ["q", "status", "created_after", "order"] {
            let uri = format!("/admin/v1/users/count?{param}={v}");
            c.plain(Route::AdminCount, Req::get(uri));
        }
        for param in ["q", "status", "created_before", "after", "include", "limit"] {
            let uri = format!("/admin/v1/users/export?{param}={v}");
            c.plain(Route::AdminExport, Req::get(uri));
        }
        for param in ["on_conflict", "dry_run"] {
            let uri = format!("/admin/v1/users/import?dry_run=true&{param}={v}");
            let line = b"{\"identifier\": \"hostile.import@example.com\"}\n".to_vec();
            c.plain(
                Route::AdminImport,
                Req::post(uri).body(Some("application/x-ndjson"), line),
            );
        }
        c.plain(
            Route::AdminAudit,
            Req::get(format!("/admin/v1/audit?cursor={v}")),
        );
        c.plain(
            Route::AdminAudit,
            Req::get(format!("/admin/v1/audit?limit={v}")),
        );
        let uri = format!("/admin/v1/stats/signups?days={v}");
        c.plain(Route::AdminSignups, Req::get(uri));
        let uri = format!("/admin/v1/users/{NO_USER}?purge={v}");
        c.plain(Route::AdminDelete, Req::new(Method::DELETE, uri));
    }
    for query in [
        "limit=500&status=all&include_total=true",
        "q=%25&order=identifier.asc",
        "q=_&status=deleted",
        "created_after=2026-01-01T00:00:00Z&created_before=2025-01-01T00:00:00Z",
        "cursor=eyJ2IjoxfQ",
        "cursor=%00",
        "limit=1&limit=2",
    ] {
        c.plain(
            Route::AdminList,
            Req::get(format!("/admin/v1/users?{query}")),
        );
    }

    // The project's secrets, before any is issued (the list then holds the one secret): hostile
    // query strings on the list, hostile ids in the revocation's path. No segment names a live
    // secret but the seeds' project's own, which is its last (409 LAST_SECRET, nothing revoked).
    for s in &strings {
        let v = url_encode(s);
        for param in ["limit", "cursor", "project_id", "status"] {
            c.plain(
                Route::AdminSecrets,
                Req::get(format!("/admin/v1/secrets?{param}={v}")),
            );
        }
        let uri = format!("/admin/v1/secrets/{NO_USER}/revoke?secret_id={v}");
        c.plain(Route::AdminRevokeSecret, Req::post(uri));
    }
    for query in ["%FF", "%00=%00", "a=1&a=2", "API_KEY_ID=%00", ""] {
        c.plain(
            Route::AdminSecrets,
            Req::get(format!("/admin/v1/secrets?{query}")),
        );
    }
    let secret_segments = [
        SECRET_ID,
        SECRET_ID_UPPER,
        "%7B@@SECRET@@%7D",
        "urn:uuid:@@SECRET@@",
        "%20@@SECRET@@",
        "@@SECRET@@%00",
        "@@SECRET@@%20",
        "@@SECRET@@/x",
        "cotterd_sk_",
        "cotterd_sk_%25",
    ];
    for segment in segments.iter().map(String::as_str).chain(secret_segments) {
        let uri = format!("/admin/v1/secrets/{segment}/revoke");
        c.plain(Route::AdminRevokeSecret, Req::post(uri));
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

    // Cotter's SDK calls: hostile ids in their paths and queries, hostile keys, PINs, methods
    // and event fields. None enrolls anything for a seed (no value is a valid key or a PIN that
    // could be enrolled), so no user row changes; events and attempt counts are not user rows.
    for segment in &segments {
        for (route, uri) in [
            (Route::V0Enrolled, format!("/api/v0/user/enrolled/{segment}/PIN")),
            (
                Route::V0EnrolledKey,
                format!("/api/v0/user/enrolled/@@KATE@@/TRUSTED_DEVICE/{segment}"),
            ),
            (
                Route::V0EnrolledAny,
                format!("/api/v0/user/enrolled/any/{segment}/TRUSTED_DEVICE"),
            ),
            (
                Route::V0EnrolledByCotterId,
                format!("/api/v0/user/methods?cotter_user_id={segment}&method=PIN"),
            ),
            (
                Route::V0EnrolledByCotterId,
                format!(
                    "/api/v0/user/methods?cotter_user_id=@@KATE@@&method=TRUSTED_DEVICE&public_key={segment}"
                ),
            ),
            (Route::AdminUserEvents, format!("/admin/v1/users/{segment}/events")),
        ] {
            c.plain(route, Req::get(uri));
        }
        c.plain(
            Route::V0ResetPin,
            Req::post(format!("/api/v0/user/reset/start/{segment}")),
        );
        // A seed would enroll the key: only the ids that reach none.
        if !segment.contains("@@") {
            let uri = format!("/api/v0/user/{segment}");
            c.plain(
                Route::V0UpdateMethods,
                Req::new(Method::PUT, uri).json(&enroll_device_body()),
            );
            let uri = format!("/api/v0/user/methods?cotter_user_id={segment}");
            c.plain(
                Route::V0UpdateMethodsByCotterId,
                Req::new(Method::PUT, uri).json(&enroll_device_body()),
            );
        }
        c.plain(
            Route::V0Event,
            Req::post("/api/v0/event/create").json(&unsigned_event_body(segment)),
        );
    }
    for s in &strings {
        let v = url_encode(s);
        c.plain(
            Route::V0Enrolled,
            Req::get(format!("/api/v0/user/enrolled/@@KATE@@/{v}")),
        );
        c.plain(
            Route::AdminUserEvents,
            Req::get(format!("/admin/v1/users/@@KATE@@/events?cursor={v}")),
        );
        c.plain(
            Route::AdminUserEvents,
            Req::get(format!("/admin/v1/users/@@KATE@@/events?limit={v}")),
        );
        let put = |body: Value| Req::new(Method::PUT, "/api/v0/user/@@KATE@@").json(&body);
        c.plain(
            Route::V0UpdateMethods,
            put(json!({"method": s, "enrolled": true, "code": "2580"})),
        );
        c.plain(
            Route::V0UpdateMethods,
            put(json!({"method": "TRUSTED_DEVICE", "enrolled": true, "code": s})),
        );
        // An empty algorithm is no algorithm: that input would enroll the key.
        if !s.is_empty() {
            c.plain(
                Route::V0UpdateMethods,
                put(json!({"method": "TRUSTED_DEVICE", "enrolled": true, "code": enroll_device_body()["code"], "algorithm": s})),
            );
        }

        if !s.bytes().all(|b| b.is_ascii_digit()) {
            c.plain(
                Route::V0UpdateMethods,
                put(json!({"method": "PIN", "enrolled": true, "code": s})),
            );
        }
        c.plain(
            Route::V0UpdateMethods,
            put(json!({"method": "PIN", "enrolled": false, "code": s})),
        );
        for field in [
            "client_user_id",
            "event",
            "ip",
            "location",
            "timestamp",
            "method",
            "code",
            "public_key",
            "algorithm",
            "issuer",
        ] {
            let mut body = unsigned_event_body(KATE_ID);
            body[field] = json!(s);
            c.plain(
                Route::V0Event,
                Req::post("/api/v0/event/create").json(&body),
            );
        }
        let verify = |body: Value| Req::post("/v2/users/verify").json(&body);
        c.plain(
            Route::V2Verify,
            verify(json!({"email": s, "password": PASSWORD})),
        );
        c.plain(
            Route::V2Verify,
            verify(json!({"email": NINA, "password": s})),
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
    for keyed in &KEYED_ROUTES {
        let Some(body) = body_around(keyed.route) else {
            continue;
        };
        let (route, uri) = (keyed.route, sample_uri(keyed.route));
        let at = |bytes: Vec<u8>, content_type: Option<&str>| {
            Req::new(keyed.method.clone(), uri).body(content_type, bytes)
        };
        // The import reads NDJSON: its bodies are sent as such (application/json is an array).
        let json = match route {
            Route::AdminImport => "application/x-ndjson",
            _ => "application/json",
        };
        for value in hostile_json_values() {
            c.plain(route, at(body(value.as_bytes()), Some(json)));
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
            c.plain(route, at(bytes, Some(json)));
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
            c.plain(route, at(bytes, Some(json)));
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
    // Duplicate keys nested inside the v2 bodies (`body_around` covers the top level).
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

    // Secrets issued with hostile query strings (each issues one: no user or account row).
    for s in &strings {
        let uri = format!("/admin/v1/secrets?name={}", url_encode(s));
        c.plain(Route::AdminCreateSecret, Req::post(uri));
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
    /// Secrets at the end that no 201 issued, and secrets revoked (none may be: the only one
    /// the corpus can name is the project's last).
    secrets_unexplained: Vec<String>,
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

    let secret = {
        let mut conn = app.state.pool.get().unwrap();
        let project = uuid::Uuid::parse_str(&keys.id).unwrap();
        let secrets = cotterd::projects::list_secrets(conn.conn(), &project).unwrap();
        assert_eq!(secrets.len(), 1, "a new project has one secret");
        secrets[0].id.clone()
    };
    let secret_upper = secret.to_uppercase();

    let mut names = Normaliser::default();
    names.name(&keys.id, "issuer");
    names.name(&secret, "secret");

    let seeds = HashMap::from([(KATE, kate.clone()), (NINA, nina.clone())]);
    for (name, id) in [("kate", &kate), ("nina", &nina), ("account", &account)] {
        names.name(id, name);
    }
    let substitutions = [
        (NINA_ID, &nina),
        (KATE_ID, &kate),
        (ACCOUNT_ID, &account),
        (SECRET_ID_UPPER, &secret_upper),
        (SECRET_ID, &secret),
    ];

    let mut run = Run::default();
    let mut secrets_issued = 0;
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
        // PIN reset is not served yet: its 501 is its answer, not a failure.
        let not_served =
            input.route == Some(Route::V0ResetPin) && reply.status == StatusCode::NOT_IMPLEMENTED;
        if reply.status.is_server_error() && !not_served {
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
        if reply.status.is_success() {
            match input.route {
                Some(Route::AdminCreateSecret) => secrets_issued += 1,
                Some(Route::AdminRevokeSecret) => run
                    .secrets_unexplained
                    .push(format!("{what}: revoked a secret: {}", reply.body)),
                _ => {}
            }
        }
        if req.method == Method::GET {
            continue; // reads write nothing (checked at the end: every row is accounted for)
        }
        let after = Snapshot::take(&app, None);
        let (added, changed) = after.diff(&before);
        if reply.status.is_success() {
            // The corpus imports as a dry run: its successes write nothing.
            let creates =
                input.route.is_some_and(Route::creates) && input.route != Some(Route::AdminImport);
            // Only a create's or a patch's answer names a row (an event's `ID` is a number).
            let id = || reply_id(&reply);
            let fits = match input.route {
                _ if creates => added == [id()] && changed.is_empty(),
                Some(Route::V2Patch) => added.is_empty() && changed.iter().all(|row| *row == id()),
                _ => added.is_empty() && changed.is_empty(),
            };
            if !fits {
                run.unaccounted_changes
                    .push(format!("{what}: added {added:?}, changed {changed:?}"));
            }
            if creates {
                let table = if input.route == Some(Route::V2Accounts) {
                    &mut expected.accounts
                } else {
                    &mut expected.users
                };
                table.insert(id(), String::new());
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
    let mut conn = app.state.pool.get().unwrap();
    let project = uuid::Uuid::parse_str(&keys.id).unwrap();
    let secrets = cotterd::projects::list_secrets(conn.conn(), &project).unwrap();
    let live = secrets.iter().filter(|s| s.revoked_at.is_none()).count();
    if secrets.len() != 1 + secrets_issued || live != secrets.len() || secrets[0].id != secret {
        run.secrets_unexplained.push(format!(
            "{} secrets ({live} live) after {secrets_issued} issued",
            secrets.len()
        ));
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
        (Check::Same(seed), Some(Route::V0Get)) => {
            want(is(StatusCode::OK) && found() == seeds[seed], "the seed")
        }
        (Check::Distinct(seed), Some(Route::V0Get)) => {
            want(is(StatusCode::OK) && found() != seeds[seed], "not the seed")
        }
        (Check::Same(_), Some(Route::V0Create)) => want(
            is(StatusCode::CONFLICT) && reply.body.contains("user already exist"),
            "409 user already exist",
        ),
        // v2 takes ASCII emails only: a spelling may be refused as invalid, never created.
        (Check::Same(_), Some(Route::V2Create)) => want(
            is(StatusCode::CONFLICT) && reply.body.contains("\"EMAIL_TAKEN\"")
                || is(StatusCode::BAD_REQUEST) && reply.body.contains("\"EMAIL_INVALID\""),
            "409 EMAIL_TAKEN (or 400 EMAIL_INVALID)",
        ),
        (Check::Distinct(_), Some(Route::V0Create)) => want(is(StatusCode::OK), "200 (a new user)"),
        (Check::Distinct(_), Some(Route::V2Create)) => want(
            is(StatusCode::CREATED)
                || is(StatusCode::BAD_REQUEST) && reply.body.contains("\"EMAIL_INVALID\""),
            "201 (a new user; or 400 EMAIL_INVALID)",
        ),
        (check, route) => Err(format!("no rule for {check:?} on {route:?}")),
    }
}

/// Every keyed route of the catalogue is sent inputs.
#[test]
fn the_corpus_covers_every_keyed_route() {
    let covered: BTreeSet<Route> = corpus()
        .iter()
        .filter_map(|input| route_of(&input.req.method, input.req.path()))
        .collect();
    let all: BTreeSet<Route> = KEYED_ROUTES.iter().map(|keyed| keyed.route).collect();
    assert_eq!(covered, all, "keyed routes the corpus does not reach");
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
        (
            "hostile.secrets_unaccounted",
            total(|r| r.secrets_unexplained.len()),
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
        assert!(
            run.secrets_unexplained.is_empty(),
            "{backend}: {}",
            listing(&run.secrets_unexplained)
        );
    }
    assert!(
        differences.is_empty(),
        "verdicts differ between backends: {}",
        listing(&differences)
    );
}

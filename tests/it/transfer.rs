//! Moving users in and out of a project, through the real app and the real binary, on SQLite
//! and on PostgreSQL: `GET /admin/v1/users/export`, `POST /admin/v1/users/import` and
//! `cotterd users export / import`.
//!
//! - a project's users, made through every API, exported, imported on the other backend and
//!   exported again give the same file byte for byte (and again with `skip` and `update`);
//! - the export's gzip, resumption, filters and refusals;
//! - Cotter's own `GET /api/v0/user/list` pages, imported, are printed back by the v0 API as
//!   Cotter printed them (but for `issuer`);
//! - hostile files and uploads: bad lines, duplicates, bodies over the limit, unknown hashes,
//!   identifiers equal once normalised, a connection dropped mid-upload, dry runs, wrong media
//!   types and keys, another project's ids;
//! - imported bcrypt, PBKDF2 and argon2 hashes check and are upgraded to argon2id;
//! - the CLI's export and import.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, init_service};
use actix_web::web::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::common::req::{call, Req};
use crate::common::rows::Snapshot;
use crate::common::server::{http_bytes, send_wire, start_server};
use crate::common::{url_encode, v2_user, Backend, Keys, TestApp, TestDb, NIL_ID, PASSWORD};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const EXPORT: &str = "/admin/v1/users/export";
const IMPORT: &str = "/admin/v1/users/import";
const NDJSON: &str = "application/x-ndjson";
const JSON: &str = "application/json";
/// What Go printed for an unset time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// The prefix of every hash this server makes.
const ARGON2ID_NOW: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

fn other_backend(backend: Backend) -> Backend {
    match backend {
        Backend::Sqlite => Backend::Postgres,
        Backend::Postgres => Backend::Sqlite,
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn export_uri(query: &str) -> String {
    if query.is_empty() {
        EXPORT.to_owned()
    } else {
        format!("{EXPORT}?{query}")
    }
}

fn import_uri(query: &str) -> String {
    if query.is_empty() {
        IMPORT.to_owned()
    } else {
        format!("{IMPORT}?{query}")
    }
}

fn import_req(keys: &Keys, query: &str, media: &str, body: impl Into<Vec<u8>>) -> Req {
    Req::post(import_uri(query))
        .keys(keys)
        .body(Some(media), body)
}

/// The export's body (it must answer 200 with NDJSON).
async fn export<S, B>(svc: &S, keys: &Keys, query: &str) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &Req::get(export_uri(query)).keys(keys)).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "export {query}: {}",
        reply.body
    );
    assert_eq!(content_type(&reply.headers), NDJSON, "export {query}");
    assert!(
        reply.body.is_empty() || reply.body.ends_with('\n'),
        "every line ends: {:?}",
        reply.body
    );
    reply.body
}

/// The records of an NDJSON file.
fn records(ndjson: &str) -> Vec<Value> {
    ndjson
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// An import's answer: one result per record, and the summary.
#[derive(Debug)]
struct Imported {
    results: Vec<Value>,
    summary: Value,
}

impl Imported {
    fn statuses(&self) -> Vec<&str> {
        self.results
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect()
    }

    fn codes(&self) -> Vec<Option<&str>> {
        self.results.iter().map(|r| r["code"].as_str()).collect()
    }

    fn lines(&self) -> Vec<u64> {
        self.results
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect()
    }

    fn ids(&self) -> Vec<Option<&str>> {
        self.results.iter().map(|r| r["id"].as_str()).collect()
    }
}

/// Reads an import's NDJSON answer, checking the shape of every line.
fn parse_import(body: &str) -> Imported {
    let mut lines: Vec<Value> = records(body);
    let last = lines
        .pop()
        .unwrap_or_else(|| panic!("no summary: {body:?}"));
    let object = last.as_object().expect("the summary line is an object");
    assert_eq!(object.len(), 1, "the last line is {{\"summary\"}}: {last}");
    let summary = last["summary"].clone();
    for result in &lines {
        let mut keys: Vec<&str> = result
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {result}"))
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "detail", "id", "line", "status"], "{result}");
        let status = result["status"].as_str().unwrap();
        assert!(
            ["created", "updated", "skipped", "error"].contains(&status),
            "{result}"
        );
        if status == "error" || status == "skipped" {
            assert!(
                result["code"].is_string() && result["detail"].is_string(),
                "{result}"
            );
        }
    }
    Imported {
        results: lines,
        summary,
    }
}

/// Imports `body` (which must be answered 200).
async fn import<S, B>(
    svc: &S,
    keys: &Keys,
    query: &str,
    media: &str,
    body: impl Into<Vec<u8>>,
) -> Imported
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &import_req(keys, query, media, body)).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "import {query}: {}",
        reply.body
    );
    assert_eq!(content_type(&reply.headers), NDJSON);
    parse_import(&reply.body)
}

/// The summary a complete import ends with.
fn summary(counts: [u64; 5], dry_run: bool, on_conflict: &str) -> Value {
    let [records, created, updated, skipped, errors] = counts;
    json!({
        "records": records,
        "created": created,
        "updated": updated,
        "skipped": skipped,
        "errors": errors,
        "dry_run": dry_run,
        "on_conflict": on_conflict,
        "complete": true,
    })
}

/// `GET /admin/v1/users/count?status=all`.
async fn count_all<S, B>(svc: &S, keys: &Keys) -> i64
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(
        svc,
        &Req::get("/admin/v1/users/count?status=all").keys(keys),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()["count"].as_i64().unwrap()
}

/// The project's `users.import` audit events, newest first.
async fn import_events<S, B>(svc: &S, keys: &Keys) -> Vec<Value>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &Req::get("/admin/v1/audit?limit=500").keys(keys)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "users.import")
        .cloned()
        .collect()
}

/// A request answered 2xx; its JSON.
async fn ok_json<S, B>(svc: &S, req: Req) -> Value
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
    reply.json()
}

/// A request through the app with its raw answer (the body may be compressed).
async fn call_raw<S, B>(svc: &S, req: &Req) -> (StatusCode, HeaderMap, Bytes)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(svc, req.test_request().to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, test::read_body(res).await)
}

/// Inflates a gzip body with actix-http's own decoder (the `compress-gzip` feature actix-web is
/// built with here).
async fn gunzip(body: Bytes) -> Vec<u8> {
    use actix_http::encoding::Decoder;
    use actix_http::error::PayloadError;
    use actix_http::header::ContentEncoding;
    let input = futures_util::stream::iter(vec![Ok::<_, PayloadError>(body)]);
    let mut decoder = Decoder::new(input, ContentEncoding::Gzip);
    let mut out = Vec::new();
    while let Some(chunk) = decoder.next().await {
        out.extend_from_slice(&chunk.expect("valid gzip"));
    }
    out
}

/// Asserts two exports are the same, line by line (naming the first that differs), then byte
/// for byte.
fn assert_same_file(expected: &str, actual: &str, what: &str) {
    let (left, right): (Vec<&str>, Vec<&str>) =
        (expected.lines().collect(), actual.lines().collect());
    for (n, (l, r)) in left.iter().zip(&right).enumerate() {
        assert_eq!(l, r, "{what}: line {} differs", n + 1);
    }
    assert_eq!(left.len(), right.len(), "{what}: line count");
    assert_eq!(expected, actual, "{what}: bytes");
}

/// NDJSON of minimal records, one a line.
fn minimal_ndjson(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

// ---------------------------------------------------------------------------------------------
// A project made through the APIs
// ---------------------------------------------------------------------------------------------

/// What [`populate`] made.
struct Made {
    /// Every user, in creation order.
    ids: Vec<String>,
    /// Users with a password (v2 sign-ups).
    with_password: Vec<String>,
    disabled: Vec<String>,
    deleted: Vec<String>,
    /// Accounts opened.
    accounts: usize,
}

/// Fills a project through the v0, v2 and admin APIs: v0 creates (app ids, identifier lists,
/// identifiers as typed), admin creates, v2 sign-ups with passwords, phones, names, KYC ids and
/// accounts; some users disabled, some deleted, a deleted user's identifier and app id taken
/// again by a new user. `scale` 1 makes about 30 users; 0 makes 10.
async fn populate<S, B>(svc: &S, keys: &Keys, scale: usize) -> Made
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut made = Made {
        ids: Vec::new(),
        with_password: Vec::new(),
        disabled: Vec::new(),
        deleted: Vec::new(),
        accounts: 0,
    };
    let v0 = |body: Value| {
        Req::post("/api/v0/user/create")
            .key_id(&keys.id)
            .json(&body)
    };
    let id_of = |json: &Value| {
        json.get("ID")
            .or_else(|| json.get("id"))
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    };
    let mut v0_bodies = vec![
        json!({"identifier": "plain0@example.com"}),
        json!({"identifier": "Plain1@Example.com"}),
        json!({"identifier": "gone@example.com", "client_user_id": "app-user-gone"}),
        json!({"identifier": "app0@example.com", "client_user_id": "app-user-0"}),
        json!({"identifier": "multi0@example.com", "identifiers": ["+15550000100", "multi0-alias"]}),
        json!({"identifiers": ["multi1@example.com", "Multi1-Alias"], "client_user_id": "app-multi-1"}),
    ];
    if scale > 0 {
        v0_bodies.extend([
            json!({"identifier": "plain2@example.com"}),
            json!({"identifier": "plain3@example.com", "identifiers": ["plain3@example.com"]}),
            json!({"identifier": "user.name+tag@example.com", "client_user_id": "app|user:4"}),
            json!({"identifier": "app1@example.com", "client_user_id": "app-user-1"}),
            json!({"identifier": "app2@example.com", "client_user_id": "7d1a8a4e-app-2"}),
            json!({"identifier": "ｆｕｌｌ@example.com"}),
            json!({"identifier": "Ünïcödé@Example.com"}),
            json!({"identifier": "+15550000200"}),
            json!({"client_user_id": "only-app-id"}),
            json!({"identifier": "multi2@example.com", "identifiers": ["multi2@example.com", "MULTI2-B"]}),
        ]);
    }
    let mut by_identifier = std::collections::HashMap::new();
    for body in v0_bodies {
        let created = ok_json(svc, v0(body.clone())).await;
        by_identifier.insert(
            created["identifier"].as_str().unwrap().to_owned(),
            id_of(&created),
        );
        made.ids.push(id_of(&created));
    }
    for i in 0..(1 + 2 * scale) {
        let body = json!({"identifier": format!("admin{i}@example.com")});
        let created = ok_json(svc, Req::post("/admin/v1/users").keys(keys).json(&body)).await;
        made.ids.push(id_of(&created));
    }
    let v2_count = 4 + 6 * scale;
    let mut v2_ids = Vec::new();
    for i in 0..v2_count {
        let body = v2_user(
            &format!("v2-{i}@example.com"),
            PASSWORD,
            &format!("+1555123{i:04}"),
            &format!("Ada{i}"),
        );
        let created = ok_json(svc, Req::post("/v2/users").keys(keys).json(&body)).await;
        let id = id_of(&created);
        made.ids.push(id.clone());
        made.with_password.push(id.clone());
        v2_ids.push(id.clone());
        if i % 2 == 0 {
            let patch = json!({"kyc_id": format!("kyc_{i}")});
            ok_json(
                svc,
                Req::patch(format!("/v2/users/{id}"))
                    .keys(keys)
                    .json(&patch),
            )
            .await;
            let types: &[&str] = if i % 4 == 0 {
                &["checking", "savings"]
            } else {
                &["checking"]
            };
            for account_type in types {
                let open = json!({"user_id": id, "account_type": account_type});
                ok_json(svc, Req::post("/v2/accounts").keys(keys).json(&open)).await;
                made.accounts += 1;
            }
        }
    }
    // Disabled: a v0 user, an admin user, two v2 users (one with accounts).
    let mut disable = vec![made.ids[0].clone(), v2_ids[1].clone(), v2_ids[2].clone()];
    // Deleted: one with an app id, one with an identifier list, v2 users with and without
    // accounts, a disabled one.
    let mut delete = vec![
        by_identifier["gone@example.com"].clone(),
        by_identifier["multi1@example.com"].clone(),
        v2_ids[3].clone(),
        v2_ids[0].clone(),
    ];
    if scale > 0 {
        disable.push(by_identifier["app1@example.com"].clone());
        delete.push(by_identifier["Ünïcödé@Example.com"].clone());
        delete.push(v2_ids[2].clone());
    }
    for id in &disable {
        ok_json(
            svc,
            Req::post(format!("/admin/v1/users/{id}/disable")).keys(keys),
        )
        .await;
    }
    for id in &delete {
        ok_json(
            svc,
            Req::new(Method::DELETE, format!("/admin/v1/users/{id}")).keys(keys),
        )
        .await;
    }
    made.disabled = disable
        .into_iter()
        .filter(|id| !delete.contains(id))
        .collect();
    made.deleted = delete;
    // The deleted user's identifier and app id, taken again by a new user.
    let again = ok_json(
        svc,
        v0(json!({"identifier": "GONE@example.com", "client_user_id": "app-user-gone"})),
    )
    .await;
    made.ids.push(id_of(&again));
    made
}

// ---------------------------------------------------------------------------------------------
// 1. The round trip
// ---------------------------------------------------------------------------------------------

async fn export_import_round_trip_to_the_other_backend_is_byte_identical(backend: Backend) {
    let source = TestApp::new(backend);
    let keys = source.project("A");
    let svc = init_service(cotterd::app(source.state.clone())).await;
    let made = populate(&svc, &keys, 1).await;
    assert!(made.ids.len() >= 30, "{} users", made.ids.len());

    let file = export(&svc, &keys, "include=password_hash").await;
    let exported = records(&file);
    // The source is what was made: every user, oldest first, with its status, hash and
    // accounts.
    let ids: Vec<&str> = exported.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, made.ids, "every user, in creation order");
    let mut accounts = 0;
    for record in &exported {
        let id = record["id"].as_str().unwrap().to_owned();
        let status = if made.deleted.contains(&id) {
            "deleted"
        } else if made.disabled.contains(&id) {
            "disabled"
        } else {
            "active"
        };
        assert_eq!(record["status"], status, "{record}");
        assert!(record.get("issuer").is_none(), "{record}");
        match record["password_hash"].as_str() {
            Some(hash) => {
                assert!(made.with_password.contains(&id), "{record}");
                assert!(hash.starts_with(ARGON2ID_NOW), "{record}");
                assert_eq!(record["profile"]["email"], record["identifier"]);
            }
            None => {
                assert!(!made.with_password.contains(&id), "{record}");
                assert!(record["password_hash"].is_null(), "{record}");
            }
        }
        let held = record["accounts"].as_array().unwrap();
        let listed: Vec<&Value> = held.iter().map(|a| &a["id"]).collect();
        assert_eq!(
            record["account_ids"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            listed
        );
        accounts += held.len();
    }
    assert_eq!(accounts, made.accounts);
    let gone: Vec<&Value> = exported
        .iter()
        .filter(|r| r["client_user_id"] == "app-user-gone")
        .collect();
    assert_eq!(
        gone.len(),
        2,
        "the deleted user and the one that took its app id"
    );
    assert_eq!(gone[0]["status"], "deleted");
    assert_eq!(gone[1]["status"], "active");

    // Into a project on the other backend.
    let target = TestApp::new(other_backend(backend));
    let keys_b = target.project("B");
    let svc_b = init_service(cotterd::app(target.state.clone())).await;
    let imported = import(&svc_b, &keys_b, "", NDJSON, file.clone()).await;
    let n = exported.len() as u64;
    for (i, (result, record)) in imported.results.iter().zip(&exported).enumerate() {
        assert_eq!(
            result,
            &json!({"line": i + 1, "status": "created", "id": record["id"], "code": null, "detail": null})
        );
    }
    assert_eq!(imported.results.len(), exported.len());
    assert_eq!(imported.summary, summary([n, n, 0, 0, 0], false, "fail"));
    let again = export(&svc_b, &keys_b, "include=password_hash").await;
    assert_same_file(&file, &again, "export of the imported project");
    // Every column of every row, but the project.
    let rows = |app: &TestApp, issuer: &str| {
        let users: Vec<String> = app
            .user_rows(Some(issuer))
            .into_iter()
            .map(|mut row| {
                row.issuer.clear();
                format!("{row:?}")
            })
            .collect();
        let accounts: Vec<String> = app
            .account_rows(Some(issuer))
            .into_iter()
            .map(|mut row| {
                row.issuer.clear();
                format!("{row:?}")
            })
            .collect();
        (users, accounts)
    };
    assert_eq!(rows(&source, &keys.id), rows(&target, &keys_b.id));
    // One audit event for the batch, with counts and no user named.
    let events = import_events(&svc_b, &keys_b).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["user_id"], Value::Null);
    let detail = &events[0]["detail"];
    assert_eq!(
        (
            &detail["created"],
            &detail["updated"],
            &detail["skipped"],
            &detail["errors"],
            &detail["on_conflict"]
        ),
        (&json!(n), &json!(0), &json!(0), &json!(0), &json!("fail"))
    );
    assert!(!detail.to_string().contains("@example.com"), "{detail}");

    // Again with skip: every record skipped, nothing written.
    let before = Snapshot::take(&target, Some(&keys_b.id));
    let skipped = import(&svc_b, &keys_b, "on_conflict=skip", NDJSON, file.clone()).await;
    for (result, record) in skipped.results.iter().zip(&exported) {
        assert_eq!(result["status"], "skipped", "{result}");
        assert_eq!(
            result["id"], record["id"],
            "the user in the way: the same one"
        );
        assert_eq!(result["code"], "ID_EXISTS", "{result}");
    }
    assert_eq!(skipped.summary, summary([n, 0, 0, n, 0], false, "skip"));
    assert_eq!(Snapshot::take(&target, Some(&keys_b.id)), before);
    assert_same_file(
        &file,
        &export(&svc_b, &keys_b, "include=password_hash").await,
        "after skip",
    );
    assert_eq!(
        import_events(&svc_b, &keys_b).await.len(),
        1,
        "no event for no write"
    );

    // And with update: every record rewrites its user, to the same thing.
    let updated = import(&svc_b, &keys_b, "on_conflict=update", NDJSON, file.clone()).await;
    for (result, record) in updated.results.iter().zip(&exported) {
        assert_eq!(result["status"], "updated", "{result}");
        assert_eq!(result["id"], record["id"]);
        assert_eq!(result["code"], Value::Null, "{result}");
    }
    assert_eq!(updated.summary, summary([n, 0, n, 0, 0], false, "update"));
    assert_same_file(
        &file,
        &export(&svc_b, &keys_b, "include=password_hash").await,
        "after update",
    );
    assert_eq!(rows(&source, &keys.id), rows(&target, &keys_b.id));
    let events = import_events(&svc_b, &keys_b).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["detail"]["updated"], json!(n), "newest first");
}

/// A file of several batches (1,000 records each): results in file order, a record meeting one
/// of an earlier batch (committed) or of its own batch, one audit event per written batch; the
/// export reads them back in chunks, and resumes at any chunk boundary.
async fn large_imports_go_in_batches_in_file_order_and_export_in_chunks(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let n = 2_500;
    let mut lines: Vec<Value> = (0..n)
        .map(|i| json!({"identifier": format!("bulk{i}@example.com")}))
        .collect();
    lines[1_500] = json!({"identifier": "BULK10@example.com"});
    lines[2_000] = json!({"identifier": "bulk2001@example.com"});
    lines[2_001] = json!({"identifier": "Bulk2001@Example.com"});
    let imported = import(&svc, &keys, "", NDJSON, minimal_ndjson(&lines)).await;
    assert_eq!(imported.lines(), (1..=n as u64).collect::<Vec<_>>());
    for (k, code) in imported.codes().into_iter().enumerate() {
        let expected = if k == 1_500 || k == 2_001 {
            Some("IDENTIFIER_TAKEN")
        } else {
            None
        };
        assert_eq!(code, expected, "record {}", k + 1);
    }
    assert_eq!(
        imported.summary,
        summary([2_500, 2_498, 0, 0, 2], false, "fail")
    );
    assert_eq!(count_all(&svc, &keys).await, 2_498);
    let events = import_events(&svc, &keys).await;
    let batches: Vec<(u64, u64, u64)> = events
        .iter()
        .rev()
        .map(|e| {
            let d = &e["detail"];
            (
                d["batch"].as_u64().unwrap(),
                d["created"].as_u64().unwrap(),
                d["errors"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(batches, [(1, 1_000, 0), (2, 999, 1), (3, 499, 1)]);
    let import_ids: Vec<&Value> = events.iter().map(|e| &e["detail"]["import"]).collect();
    assert!(
        import_ids.iter().all(|id| *id == import_ids[0]),
        "one import"
    );

    let file = export(&svc, &keys, "").await;
    let all = records(&file);
    assert_eq!(all.len(), 2_498);
    let key = |r: &Value| {
        (
            parse_time(r["created_at"].as_str().unwrap()),
            r["id"].as_str().unwrap().to_owned(),
        )
    };
    assert!(
        all.windows(2).all(|w| key(&w[0]) < key(&w[1])),
        "oldest first, then by id"
    );
    let mut exported: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut created: Vec<&str> = imported
        .results
        .iter()
        .filter(|r| r["status"] == "created")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    exported.sort_unstable();
    created.sort_unstable();
    assert_eq!(exported, created);
    let lines: Vec<&str> = file.lines().collect();
    for k in [0, 997, 998, 999, 1_000, 1_997, 1_998, 2_496, 2_497] {
        let after = all[k]["id"].as_str().unwrap();
        let resumed = export(&svc, &keys, &format!("after={after}")).await;
        let tail: String = lines[k + 1..].iter().map(|l| format!("{l}\n")).collect();
        assert!(
            resumed == tail,
            "after record {k}: {} lines",
            resumed.lines().count()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The export
// ---------------------------------------------------------------------------------------------

async fn export_gzip_resumption_filters_and_refusals(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let made = populate(&svc, &keys, 0).await;
    for i in 0..3 {
        let body = json!({"identifier": format!("theirs{i}@example.com")});
        ok_json(
            &svc,
            Req::post("/api/v0/user/create")
                .key_id(&other.id)
                .json(&body),
        )
        .await;
    }
    let theirs = export(&svc, &other, "").await;
    let their_ids: Vec<String> = records(&theirs)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(their_ids.len(), 3);

    let plain = export(&svc, &keys, "").await;
    let all = records(&plain);
    let ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, made.ids, "only this project's users, oldest first");
    for record in &all {
        assert!(
            record.get("password_hash").is_none(),
            "no password_hash key without include: {record}"
        );
        assert!(!their_ids.contains(&record["id"].as_str().unwrap().to_owned()));
    }
    assert!(!plain.contains("theirs"));
    for (query, with) in [
        ("include=", false),
        ("include=password_hash", true),
        ("status=all&include=password_hash", true),
    ] {
        let file = export(&svc, &keys, query).await;
        let got = records(&file);
        assert_eq!(got.len(), all.len(), "{query}");
        for (record, bare) in got.iter().zip(&all) {
            assert_eq!(
                record.get("password_hash").is_some(),
                with,
                "{query}: {record}"
            );
            let mut record = record.clone();
            record.as_object_mut().unwrap().remove("password_hash");
            assert_eq!(&record, bare, "{query}");
        }
    }

    // gzip when asked for, the same file inside.
    let req = Req::get(EXPORT)
        .keys(&keys)
        .header("Accept-Encoding", "gzip");
    let (status, headers, body) = call_raw(&svc, &req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    assert_eq!(content_type(&headers), NDJSON);
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");
    assert_ne!(&body[..], plain.as_bytes());
    assert_eq!(String::from_utf8(gunzip(body).await).unwrap(), plain);
    let (_, headers, body) = call_raw(&svc, &Req::get(EXPORT).keys(&keys)).await;
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(&body[..], plain.as_bytes());

    // `after` resumes just after the named user, at any point, deleted users included.
    let lines: Vec<&str> = plain.lines().collect();
    for k in [0, 1, lines.len() / 2, lines.len() - 2, lines.len() - 1] {
        let resumed = export(&svc, &keys, &format!("after={}", ids[k])).await;
        let tail: String = lines[k + 1..].iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(resumed, tail, "after user {k}");
    }
    let deleted = &made.deleted[0];
    let k = ids.iter().position(|id| id == deleted).unwrap();
    let resumed = export(
        &svc,
        &keys,
        &format!("after={deleted}&include=password_hash"),
    )
    .await;
    assert_eq!(records(&resumed).len(), ids.len() - k - 1);
    assert_eq!(records(&resumed)[0]["id"], ids[k + 1]);
    let upper = ids[3].to_uppercase();
    let resumed = export(&svc, &keys, &format!("after={upper}")).await;
    assert_eq!(records(&resumed).len(), ids.len() - 4, "an id in capitals");

    // Filters.
    for status in ["active", "disabled", "deleted"] {
        let got = records(&export(&svc, &keys, &format!("status={status}")).await);
        let expected: Vec<&Value> = all.iter().filter(|r| r["status"] == status).collect();
        assert!(!expected.is_empty(), "{status}");
        assert_eq!(got.iter().collect::<Vec<_>>(), expected, "status={status}");
    }
    let got = records(&export(&svc, &keys, "q=V2-").await);
    let expected: Vec<&Value> = all
        .iter()
        .filter(|r| r["identifier"].as_str().unwrap().starts_with("v2-"))
        .collect();
    assert!(expected.len() >= 4);
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        expected,
        "q=V2- (case folded)"
    );
    let got = records(&export(&svc, &keys, "q=v2-&status=active").await);
    assert!(got.iter().all(|r| r["status"] == "active"));
    assert_eq!(
        got.len(),
        expected.iter().filter(|r| r["status"] == "active").count()
    );
    let middle = all[all.len() / 2]["created_at"].as_str().unwrap();
    let after = records(
        &export(
            &svc,
            &keys,
            &format!("created_after={}", url_encode(middle)),
        )
        .await,
    );
    let before = records(
        &export(
            &svc,
            &keys,
            &format!("created_before={}", url_encode(middle)),
        )
        .await,
    );
    assert_eq!(after.first(), Some(&all[all.len() / 2]), "at or after");
    assert_eq!(
        before.last(),
        Some(&all[all.len() / 2 - 1]),
        "strictly before"
    );
    assert_eq!(after.len() + before.len(), all.len());

    // Refusals, before anything is sent.
    let nobody = uuid::Uuid::new_v4().to_string();
    for (query, code) in [
        ("foo=1", "INVALID_REQUEST"),
        ("status=all&status=all", "INVALID_REQUEST"),
        ("include=secrets", "INVALID_PARAMETER"),
        ("include=password_hash,accounts", "INVALID_PARAMETER"),
        ("after=not-a-uuid", "INVALID_PARAMETER"),
        (&format!("after={nobody}"), "INVALID_PARAMETER"),
        (&format!("after={}", their_ids[0]), "INVALID_PARAMETER"),
        ("status=gone", "INVALID_PARAMETER"),
        ("created_after=yesterday", "INVALID_PARAMETER"),
    ] {
        let reply = call(&svc, &Req::get(export_uri(query)).keys(&keys)).await;
        assert_eq!(
            reply.assert_problem(StatusCode::BAD_REQUEST),
            code,
            "{query}"
        );
        assert_eq!(content_type(&reply.headers), "application/problem+json");
    }
    // The other project's export resumes after its own users only.
    let resumed = export(&svc, &other, &format!("after={}", their_ids[0])).await;
    assert_eq!(records(&resumed).len(), 2);
    for req in [
        Req::get(EXPORT),
        Req::get(EXPORT).key_id(&keys.id),
        Req::get(EXPORT)
            .key_id(&keys.id)
            .header("API_SECRET_KEY", &other.secret),
    ] {
        let reply = call(&svc, &req).await;
        assert_eq!(
            reply.assert_problem(StatusCode::UNAUTHORIZED),
            "UNAUTHORIZED"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Cotter's list pages
// ---------------------------------------------------------------------------------------------

/// A time of the dump: the `i`th minute-apart instant, shifted by `days`, with one of the
/// fractions Go prints (trailing zeros trimmed).
fn cotter_time(i: usize, days: i64) -> String {
    let base = DateTime::parse_from_rfc3339("2020-08-01T05:55:57Z")
        .unwrap()
        .with_timezone(&Utc);
    let t = base + chrono::Duration::minutes(7 * i as i64) + chrono::Duration::days(days);
    let fraction = ["", ".4803", ".480314", ".5", ".000001", ".123456", ".01"][i % 7];
    format!("{}{fraction}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// `n` Cotter User objects as `GET /api/v0/user/list` printed them.
fn cotter_users(n: usize, issuer: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let id = uuid::Uuid::new_v4().to_string();
            let client_user_id = if i % 4 == 1 {
                format!("app-user-{i}")
            } else {
                id.clone()
            };
            let zero = i % 10 == 3;
            let created_at = if zero {
                ZERO_TIME.to_owned()
            } else {
                cotter_time(i, 0)
            };
            let updated_at = if zero || i % 7 == 0 {
                ZERO_TIME.to_owned()
            } else {
                cotter_time(i, 30)
            };
            let deleted_at = if i % 9 == 4 {
                cotter_time(i, 60)
            } else {
                ZERO_TIME.to_owned()
            };
            let identifier = format!("cotter{i}@example.com");
            let identifiers = if i % 5 == 2 {
                json!([identifier, format!("+1555{i:07}"), format!("User{i}")])
            } else {
                Value::Null
            };
            let (enrolled, default_method) = if i % 15 == 7 {
                (json!(["WEBAUTHN"]), json!("WEBAUTHN"))
            } else {
                (json!([]), Value::Null)
            };
            json!({
                "ID": id,
                "created_at": created_at,
                "updated_at": updated_at,
                "deleted_at": deleted_at,
                "issuer": issuer,
                "client_user_id": client_user_id,
                "enrolled": enrolled,
                "default_method": default_method,
                "identifier": identifier,
                "identifiers": identifiers,
            })
        })
        .collect()
}

/// The users as JSON arrays of 50, pretty-printed one after the other (as saved list pages),
/// and the line each object starts on.
fn list_pages(users: &[Value]) -> (String, Vec<u64>) {
    let mut body = String::new();
    let mut line = 1u64;
    let mut starts = Vec::new();
    let mut push = |body: &mut String, text: &str| {
        line += text.matches('\n').count() as u64;
        body.push_str(text);
        line
    };
    for page in users.chunks(50) {
        push(&mut body, "[\n");
        for (k, user) in page.iter().enumerate() {
            let pretty = serde_json::to_string_pretty(user)
                .unwrap()
                .replace('\n', "\n  ");
            starts.push(push(&mut body, "  "));
            push(&mut body, &pretty);
            push(&mut body, if k + 1 < page.len() { ",\n" } else { "\n" });
        }
        push(&mut body, "]\n");
    }
    (body, starts)
}

fn parse_time(raw: &str) -> NaiveDateTime {
    DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|e| panic!("{raw}: {e}"))
        .naive_utc()
}

/// What the v0 API prints for an imported Cotter user: the object, in the project, with no
/// methods (keys and PINs never move).
fn as_imported(user: &Value, issuer: &str) -> Value {
    let mut user = user.clone();
    user["issuer"] = json!(issuer);
    user["enrolled"] = json!([]);
    user["default_method"] = Value::Null;
    user
}

/// Every page of `GET /api/v0/user/list`, until an empty one.
async fn list_all<S, B>(svc: &S, keys: &Keys) -> Vec<Value>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut all = Vec::new();
    for page in 0.. {
        let list = ok_json(
            svc,
            Req::get(format!("/api/v0/user/list?page={page}")).keys(keys),
        )
        .await;
        let list = list.as_array().unwrap().clone();
        assert!(list.len() <= 50);
        if list.is_empty() {
            break;
        }
        all.extend(list);
    }
    all
}

/// The three sample objects of Cotter's documentation of `GET /api/v0/user/list`, its
/// comments left out: their ids are placeholders, not UUIDs.
const COTTER_DOC_SAMPLES: &str = r#"[
  {
    "ID": "jklmnopqr-abcd-abcd-abcd-1168d4b38d0d",
    "created_at": "0001-01-01T00:00:00Z",
    "updated_at": "0001-01-01T00:00:00Z",
    "deleted_at": "0001-01-01T00:00:00Z",
    "issuer": "abcdefgh-abcd-abcd-abcd-f901315ad31b",
    "client_user_id": "jklmnopqr-abcd-abcd-abcd-1168d4b38d0d",
    "enrolled": [],
    "default_method": null,
    "identifier": "team1@cotter.app",
    "identifiers": null
  },
  {
    "ID": "stuvxyza-abcd-abcd-abcd-6eb4c013e610",
    "created_at": "0001-01-01T00:00:00Z",
    "updated_at": "0001-01-01T00:00:00Z",
    "deleted_at": "0001-01-01T00:00:00Z",
    "issuer": "abcdefgh-abcd-abcd-abcd-f901315ad31b",
    "client_user_id": "stuvxyza-abcd-abcd-abcd-6eb4c013e610",
    "enrolled": [],
    "default_method": null,
    "identifier": "team2@cotter.app",
    "identifiers": null
  },
  {
    "ID": "abcdefgh-abcd-abcd-abcd-22bc178867ef",
    "created_at": "0001-01-01T00:00:00Z",
    "updated_at": "2020-07-21T02:42:16.318885Z",
    "deleted_at": "0001-01-01T00:00:00Z",
    "issuer": "abcdefgh-abcd-abcd-abcd-f901315ad31b",
    "client_user_id": "bdabcdefgh-abcd-abcd-abcd-22bc178867ef",
    "enrolled": [
      "WEBAUTHN"
    ],
    "default_method": "WEBAUTHN",
    "identifier": "team@cotter.app",
    "identifiers": null
  }
]"#;

async fn cotter_list_dump_imports_and_reads_back_as_cotter_printed_it(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("from json pages");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let cotter_issuer = uuid::Uuid::new_v4().to_string();
    let dump = cotter_users(120, &cotter_issuer);
    let (pages, starts) = list_pages(&dump);
    assert_eq!(pages.matches("]\n[").count(), 2, "three arrays");

    let imported = import(&svc, &keys, "", JSON, pages.clone()).await;
    assert_eq!(
        imported.lines(),
        starts,
        "each result names the line its object starts on"
    );
    for (result, user) in imported.results.iter().zip(&dump) {
        assert_eq!(result["status"], "created", "{result}");
        assert_eq!(result["id"], user["ID"], "the id is kept");
        let enrolled = !user["enrolled"].as_array().unwrap().is_empty();
        let expected_code = if enrolled {
            json!("ENROLLED_NOT_IMPORTED")
        } else {
            Value::Null
        };
        assert_eq!(result["code"], expected_code, "{result}");
    }
    assert_eq!(
        imported.summary,
        summary([120, 120, 0, 0, 0], false, "fail")
    );

    // The same set as NDJSON, into a project of another database (ids are unique across a
    // server): the same answers on its own lines.
    let second = TestApp::new(backend);
    let keys_nd = second.project("from ndjson");
    let svc_nd = init_service(cotterd::app(second.state.clone())).await;
    let ndjson = minimal_ndjson(&dump);
    let imported = import(&svc_nd, &keys_nd, "", NDJSON, ndjson.clone()).await;
    assert_eq!(imported.lines(), (1..=120).collect::<Vec<u64>>());
    assert_eq!(imported.statuses(), vec!["created"; 120]);
    // Into another project of the first database: every id is taken.
    let third = app.project("same database");
    let refused = import(&svc, &third, "on_conflict=update", NDJSON, ndjson).await;
    assert_eq!(refused.codes(), vec![Some("ID_TAKEN"); 120]);
    assert_eq!(
        refused.summary,
        summary([120, 0, 0, 0, 120], false, "update")
    );
    assert_eq!(count_all(&svc, &third).await, 0);

    // The v0 API prints the live users as Cotter did, newest first, 50 a page.
    let mut live: Vec<&Value> = dump
        .iter()
        .filter(|u| u["deleted_at"] == ZERO_TIME)
        .collect();
    assert!(live.len() < 120 && live.len() > 100);
    live.sort_by(|a, b| {
        let key = |u: &Value| {
            (
                parse_time(u["created_at"].as_str().unwrap()),
                u["ID"].as_str().unwrap().to_owned(),
            )
        };
        key(b).cmp(&key(a))
    });
    for (svc_keys, label) in [(&keys, "json pages"), (&keys_nd, "ndjson")] {
        let (listed, expected): (Vec<Value>, Vec<Value>) = if label == "ndjson" {
            (
                list_all(&svc_nd, svc_keys).await,
                live.iter().map(|u| as_imported(u, &svc_keys.id)).collect(),
            )
        } else {
            (
                list_all(&svc, svc_keys).await,
                live.iter().map(|u| as_imported(u, &svc_keys.id)).collect(),
            )
        };
        assert_eq!(listed.len(), expected.len(), "{label}");
        for (got, want) in listed.iter().zip(&expected) {
            assert_eq!(got, want, "{label}");
        }
    }
    let zero_created = live.iter().filter(|u| u["created_at"] == ZERO_TIME).count();
    assert!(
        zero_created >= 2,
        "ties at Go's zero time are ordered by id"
    );

    // Each found by every identifier and by its app's id (or its ID); deleted ones are not.
    for user in &dump {
        let expected = as_imported(user, &keys.id);
        let identifier = user["identifier"].as_str().unwrap();
        let by_identifier = ok_json(
            &svc,
            Req::get(format!(
                "/api/v0/user?identifier={}",
                url_encode(identifier)
            ))
            .key_id(&keys.id),
        )
        .await;
        let client_user_id = user["client_user_id"].as_str().unwrap();
        let by_app_id = call(
            &svc,
            &Req::get(format!("/api/v0/user/{client_user_id}")).key_id(&keys.id),
        )
        .await;
        if user["deleted_at"] == ZERO_TIME {
            assert_eq!(by_identifier, expected);
            assert_eq!(by_app_id.status, StatusCode::OK, "{client_user_id}");
            assert_eq!(by_app_id.json(), expected);
            for more in user["identifiers"].as_array().into_iter().flatten() {
                let found = ok_json(
                    &svc,
                    Req::get(format!(
                        "/api/v0/user?identifier={}",
                        url_encode(&more.as_str().unwrap().to_lowercase())
                    ))
                    .key_id(&keys.id),
                )
                .await;
                assert_eq!(found, expected, "{more}");
            }
            if client_user_id != user["ID"] {
                let by_id = ok_json(
                    &svc,
                    Req::get(format!("/api/v0/user/{}", user["ID"].as_str().unwrap()))
                        .key_id(&keys.id),
                )
                .await;
                assert_eq!(by_id, expected);
            }
        } else {
            assert_eq!(by_identifier["ID"], NIL_ID, "a deleted user is not found");
            assert_eq!(by_app_id.status, StatusCode::NOT_FOUND);
        }
    }

    // The documentation's own samples, mixed with valid users: the placeholders are refused
    // on their lines, the others created.
    let samples: Vec<Value> = serde_json::from_str(COTTER_DOC_SAMPLES).unwrap();
    let valid = cotter_users(3, &cotter_issuer)
        .into_iter()
        .enumerate()
        .map(|(k, mut u)| {
            u["identifier"] = json!(format!("mixed{k}@example.com"));
            u["identifiers"] = Value::Null;
            u
        })
        .collect::<Vec<_>>();
    let mixed = vec![
        valid[0].clone(),
        samples[0].clone(),
        valid[1].clone(),
        samples[1].clone(),
        samples[2].clone(),
        valid[2].clone(),
    ];
    let (body, starts) = list_pages(&mixed);
    let keys_mixed = app.project("mixed");
    let imported = import(&svc, &keys_mixed, "", JSON, body).await;
    assert_eq!(imported.lines(), starts);
    assert_eq!(
        imported.statuses(),
        ["created", "error", "created", "error", "error", "created"]
    );
    for (k, result) in imported.results.iter().enumerate() {
        if result["status"] == "error" {
            assert_eq!(result["code"], "INVALID_ID", "{result}");
            assert_eq!(result["id"], Value::Null, "{result}");
            let placeholder = mixed[k]["ID"].as_str().unwrap();
            assert!(
                result["detail"].as_str().unwrap().contains(placeholder),
                "{result}"
            );
        } else {
            assert_eq!(result["id"], mixed[k]["ID"]);
        }
    }
    assert_eq!(imported.summary, summary([6, 3, 0, 0, 3], false, "fail"));
    assert_eq!(count_all(&svc, &keys_mixed).await, 3);
    let found = ok_json(
        &svc,
        Req::get("/api/v0/user?identifier=team1@cotter.app").key_id(&keys_mixed.id),
    )
    .await;
    assert_eq!(found["ID"], NIL_ID);
}

// ---------------------------------------------------------------------------------------------
// 4. Hostile imports
// ---------------------------------------------------------------------------------------------

async fn import_bad_lines_are_reported_on_their_line_and_the_rest_imported(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let big = format!(
        "{{\"identifier\": \"big@example.com\", \"client_user_id\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let body = [
        r#"{"identifier": "a@example.com"}"#,
        r#"{"identifier": "b@example.com"}"#,
        r#"{"identifier": "c@example.com""#,
        "",
        r#"{"identifier": "d@example.com"}"#,
        "[1, 2]",
        r#"{"identifier": "e@example.com", "shoe_size": 43}"#,
        big.as_str(),
        r#"{"ID": "a9b4c1de-6bbf-4a8a-9c70-6a0a1f1b2c3d", "identifier": "f@example.com", "created_at": "yesterday"}"#,
        r#"{"identifier": "g@example.com", "password_hash": "$2b$04$short"}"#,
        "   ",
        r#"{"identifier": "h@example.com"}"#,
    ]
    .join("\n");
    let imported = import(&svc, &keys, "", NDJSON, body).await;
    assert_eq!(imported.lines(), [1, 2, 3, 5, 6, 7, 8, 9, 10, 12]);
    assert_eq!(
        imported.codes(),
        [
            None,
            None,
            Some("INVALID_JSON"),
            None,
            Some("INVALID_JSON"),
            Some("INVALID_RECORD"),
            Some("RECORD_TOO_LARGE"),
            Some("INVALID_TIME"),
            Some("UNSUPPORTED_PASSWORD_HASH"),
            None,
        ]
    );
    assert_eq!(imported.summary, summary([10, 4, 0, 0, 6], false, "fail"));
    assert_eq!(count_all(&svc, &keys).await, 4);

    // A JSON array: a bad element is refused on its line and the next ones read; an array
    // left open ends the file with a line-numbered error, the records before it kept.
    let body = "[\n  {\"identifier\": \"arr1@example.com\"},\n  {\"identifier\": tru},\n  {\"identifier\": \"arr2@example.com\"}\n]\n[\n  {\"identifier\": \"arr3@example.com\"}\n  {\"identifier\": \"arr4@example.com\"}\n]";
    let imported = import(&svc, &keys, "", JSON, body).await;
    assert_eq!(imported.lines(), [2, 3, 4, 7, 8]);
    assert_eq!(
        imported.statuses(),
        ["created", "error", "created", "created", "error"]
    );
    assert_eq!(imported.codes()[1], Some("INVALID_JSON"));
    assert_eq!(imported.codes()[4], Some("INVALID_JSON"));
    assert_eq!(count_all(&svc, &keys).await, 7);
    // A JSON body that is not an array at all.
    let imported = import(
        &svc,
        &keys,
        "",
        JSON,
        r#"{"identifier": "obj@example.com"}"#,
    )
    .await;
    assert_eq!(imported.codes(), [Some("INVALID_JSON")]);
    assert_eq!(count_all(&svc, &keys).await, 7);
    // An empty file: no records.
    let imported = import(&svc, &keys, "", NDJSON, "").await;
    assert_eq!(imported.summary, summary([0, 0, 0, 0, 0], false, "fail"));
}

async fn import_conflicts_within_a_file_and_with_the_database(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;

    // The same id twice in one file: the second meets the first.
    let id = uuid::Uuid::new_v4().to_string();
    let body = minimal_ndjson(&[
        json!({"ID": id, "identifier": "first@example.com"}),
        json!({"ID": id, "identifier": "second@example.com"}),
    ]);
    let fail = app.project("fail");
    let imported = import(&svc, &fail, "", NDJSON, body.clone()).await;
    assert_eq!(imported.statuses(), ["created", "error"]);
    assert_eq!(imported.codes(), [None, Some("ID_EXISTS")]);
    assert_eq!(imported.ids(), [Some(id.as_str()), Some(id.as_str())]);
    let found = ok_json(
        &svc,
        Req::get(format!("/api/v0/user/{id}")).key_id(&fail.id),
    )
    .await;
    assert_eq!(found["identifier"], "first@example.com");

    let skip_db = TestApp::new(backend);
    let skip_svc = init_service(cotterd::app(skip_db.state.clone())).await;
    let skip = skip_db.project("skip");
    let imported = import(&skip_svc, &skip, "on_conflict=skip", NDJSON, body.clone()).await;
    assert_eq!(imported.statuses(), ["created", "skipped"]);
    assert_eq!(imported.codes(), [None, Some("ID_EXISTS")]);
    assert_eq!(imported.ids(), [Some(id.as_str()), Some(id.as_str())]);
    assert_eq!(imported.summary, summary([2, 1, 0, 1, 0], false, "skip"));

    let update_db = TestApp::new(backend);
    let update_svc = init_service(cotterd::app(update_db.state.clone())).await;
    let update = update_db.project("update");
    let imported = import(&update_svc, &update, "on_conflict=update", NDJSON, body).await;
    assert_eq!(imported.statuses(), ["created", "updated"]);
    let found = ok_json(
        &update_svc,
        Req::get(format!("/api/v0/user/{id}")).key_id(&update.id),
    )
    .await;
    assert_eq!(
        found["identifier"], "second@example.com",
        "the later record wins"
    );
    let old = ok_json(
        &update_svc,
        Req::get("/api/v0/user?identifier=first@example.com").key_id(&update.id),
    )
    .await;
    assert_eq!(old["ID"], NIL_ID, "the old identifier left with the update");

    // Identifiers equal once normalised (case, width): minimal records and records with ids.
    // Ids are unique across the server: each project gets ids of its own.
    let normalised = |u1: &str| {
        minimal_ndjson(&[
            json!({"identifier": "Ada@Example.com"}),
            json!({"identifier": "ada@example.com"}),
            json!({"identifier": "ａｄａ@example.com"}),
            json!({"ID": u1, "identifier": "Grace@Example.com"}),
            json!({"ID": uuid::Uuid::new_v4().to_string(), "identifier": "grace@example.com"}),
            json!({
                "ID": uuid::Uuid::new_v4().to_string(),
                "identifier": "x@example.com",
                "identifiers": ["x@example.com", "ＧＲＡＣＥ@example.com"],
            }),
            json!({"identifier": "someone@example.com", "client_user_id": "app-7"}),
            json!({"identifier": "someone-else@example.com", "client_user_id": "app-7"}),
        ])
    };
    let p = app.project("normalised, fail");
    let u1 = uuid::Uuid::new_v4().to_string();
    let imported = import(&svc, &p, "", NDJSON, normalised(&u1)).await;
    assert_eq!(
        imported.statuses(),
        ["created", "error", "error", "created", "error", "error", "created", "error"]
    );
    assert_eq!(
        imported.codes(),
        [
            None,
            Some("IDENTIFIER_TAKEN"),
            Some("IDENTIFIER_TAKEN"),
            None,
            Some("IDENTIFIER_TAKEN"),
            Some("IDENTIFIER_TAKEN"),
            None,
            Some("CLIENT_USER_ID_TAKEN"),
        ]
    );
    assert_eq!(count_all(&svc, &p).await, 3);
    let found = ok_json(
        &svc,
        Req::get(format!(
            "/api/v0/user?identifier={}",
            url_encode("ＡＤＡ@EXAMPLE.COM")
        ))
        .key_id(&p.id),
    )
    .await;
    assert_eq!(found["identifier"], "Ada@Example.com", "kept as given");

    let q = app.project("normalised, skip");
    let u1 = uuid::Uuid::new_v4().to_string();
    let imported = import(&svc, &q, "on_conflict=skip", NDJSON, normalised(&u1)).await;
    assert_eq!(
        imported.statuses(),
        ["created", "skipped", "skipped", "created", "skipped", "skipped", "created", "skipped"]
    );
    let ada = imported.ids()[0].unwrap().to_owned();
    let ids = imported.ids();
    assert_eq!(
        ids[1],
        Some(ada.as_str()),
        "skipped for the user in the way"
    );
    assert_eq!(ids[2], Some(ada.as_str()));
    assert_eq!(ids[4], Some(u1.as_str()));
    assert_eq!(ids[5], Some(u1.as_str()));
    assert_eq!(ids[7], ids[6]);
    assert_eq!(count_all(&svc, &q).await, 3);

    // Against users already in the database, made through the API.
    let r = app.project("existing");
    ok_json(
        &svc,
        Req::post("/api/v0/user/create")
            .key_id(&r.id)
            .json(&json!({"identifier": "Hopper@Example.com", "client_user_id": "app-hopper"})),
    )
    .await;
    let body = minimal_ndjson(&[
        json!({"identifier": "hopper@example.com"}),
        json!({"ID": uuid::Uuid::new_v4().to_string(), "identifier": "ＨＯＰＰＥＲ@example.com"}),
        json!({"identifier": "other@example.com", "client_user_id": "app-hopper"}),
    ]);
    let imported = import(&svc, &r, "", NDJSON, body).await;
    assert_eq!(
        imported.codes(),
        [
            Some("IDENTIFIER_TAKEN"),
            Some("IDENTIFIER_TAKEN"),
            Some("CLIENT_USER_ID_TAKEN")
        ]
    );
    assert_eq!(count_all(&svc, &r).await, 1);

    // Another project's export, in the same database: its ids are taken, whatever on_conflict.
    let theirs = app.project("theirs");
    let made = populate(&svc, &theirs, 0).await;
    let file = export(&svc, &theirs, "include=password_hash").await;
    let mine = app.project("mine");
    for mode in ["fail", "skip", "update"] {
        let imported = import(
            &svc,
            &mine,
            &format!("on_conflict={mode}"),
            NDJSON,
            file.clone(),
        )
        .await;
        let n = made.ids.len();
        assert_eq!(imported.codes(), vec![Some("ID_TAKEN"); n], "{mode}");
        let ids: Vec<Option<&str>> = made.ids.iter().map(|id| Some(id.as_str())).collect();
        assert_eq!(imported.ids(), ids, "{mode}");
        let n = n as u64;
        assert_eq!(imported.summary, summary([n, 0, 0, 0, n], false, mode));
    }
    assert_eq!(count_all(&svc, &mine).await, 0);
    assert_same_file(
        &file,
        &export(&svc, &theirs, "include=password_hash").await,
        "the owner's users are untouched",
    );
}

/// Each record is checked as the APIs check what they store, and refused with its own code.
async fn import_checks_each_record_with_the_apis_rules(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    // A user with everything: password, profile, KYC id, two accounts.
    let body = v2_user("owner@example.com", PASSWORD, "+15551230000", "Ada");
    let owner = ok_json(&svc, Req::post("/v2/users").keys(&keys).json(&body)).await;
    let owner = owner["id"].as_str().unwrap().to_owned();
    let patch = json!({"kyc_id": "kyc_owner"});
    ok_json(
        &svc,
        Req::patch(format!("/v2/users/{owner}"))
            .keys(&keys)
            .json(&patch),
    )
    .await;
    for account_type in ["checking", "savings"] {
        let open = json!({"user_id": owner, "account_type": account_type});
        ok_json(&svc, Req::post("/v2/accounts").keys(&keys).json(&open)).await;
    }
    let exported = records(&export(&svc, &keys, "include=password_hash").await);
    let original = exported[0].clone();
    assert_eq!(original["accounts"].as_array().unwrap().len(), 2);

    // The owner's record as another user: an id, identifier and accounts of its own.
    let fresh = |k: usize| {
        let mut record = original.clone();
        let id = uuid::Uuid::new_v4().to_string();
        let identifier = format!("rule{k}@example.com");
        record["id"] = json!(id);
        record["client_user_id"] = json!(id);
        record["identifier"] = json!(identifier);
        record["profile"]["email"] = json!(identifier);
        let accounts: Vec<Value> = original["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let mut a = a.clone();
                a["id"] = json!(uuid::Uuid::new_v4().to_string());
                a
            })
            .collect();
        record["account_ids"] = json!(accounts.iter().map(|a| a["id"].clone()).collect::<Vec<_>>());
        record["accounts"] = json!(accounts);
        record
    };
    type Change = Box<dyn Fn(&mut Value)>;
    let owner_for_client = owner.clone();
    let original_accounts = original["accounts"].clone();
    let original_account_ids = original["account_ids"].clone();
    let cases: Vec<(Option<&str>, Change)> = vec![
        (None, Box::new(|_| {})),
        (
            Some("INVALID_ID"),
            Box::new(|r| r["id"] = json!("jklmnopqr-abcd-abcd-abcd-1168d4b38d0d")),
        ),
        (Some("INVALID_ID"), Box::new(|r| r["id"] = json!(""))),
        (Some("INVALID_RECORD"), Box::new(|r| r["id"] = json!(42))),
        (
            Some("INVALID_IDENTIFIER"),
            Box::new(|r| r["identifier"] = json!("bell\u{7}@example.com")),
        ),
        (
            Some("INVALID_IDENTIFIER"),
            Box::new(|r| r["identifier"] = json!(format!("{}@example.com", "x".repeat(250)))),
        ),
        (
            Some("INVALID_IDENTIFIER"),
            Box::new(|r| {
                let many: Vec<String> = (0..12).map(|i| format!("many{i}@example.com")).collect();
                r["identifiers"] = json!(many);
            }),
        ),
        (
            Some("INVALID_CLIENT_USER_ID"),
            Box::new(|r| r["client_user_id"] = json!("app/user")),
        ),
        (
            Some("INVALID_CLIENT_USER_ID"),
            Box::new(|r| r["client_user_id"] = json!("x".repeat(201))),
        ),
        (
            Some("INVALID_TIME"),
            Box::new(|r| r["created_at"] = json!("2020-13-01T00:00:00Z")),
        ),
        (
            Some("INVALID_TIME"),
            Box::new(|r| r["updated_at"] = json!("2020-08-01 05:55:57")),
        ),
        (
            Some("INVALID_TIME"),
            Box::new(|r| {
                r["status"] = json!("deleted");
                r["deleted_at"] = json!("yesterday");
            }),
        ),
        (
            Some("INVALID_TIME"),
            Box::new(|r| r["accounts"][1]["created_at"] = json!("soon")),
        ),
        (
            Some("INVALID_PROFILE"),
            Box::new(|r| r["profile"]["email"] = json!("someone-else@example.com")),
        ),
        (
            Some("INVALID_PROFILE"),
            Box::new(|r| r["profile"]["phone_number"] = json!("555-1234")),
        ),
        (
            Some("INVALID_PROFILE"),
            Box::new(|r| r["profile"]["first_name"] = json!("  ")),
        ),
        (
            Some("INVALID_PROFILE"),
            Box::new(|r| r["profile"]["kyc_id"] = json!("a\u{0}b")),
        ),
        (
            Some("INVALID_RECORD"),
            Box::new(|r| r["profile"]["shoe_size"] = json!(43)),
        ),
        (
            Some("INVALID_ACCOUNT"),
            Box::new(|r| r["profile"]["kyc_id"] = Value::Null),
        ),
        (
            Some("INVALID_ACCOUNT"),
            Box::new(|r| r["accounts"][0]["type"] = json!("brokerage")),
        ),
        (
            Some("INVALID_ACCOUNT"),
            Box::new(|r| {
                r["accounts"][0]["id"] = json!("acct-1");
                r["account_ids"][0] = json!("acct-1");
            }),
        ),
        (
            Some("INVALID_ACCOUNT"),
            Box::new(|r| r["account_ids"] = json!([r["account_ids"][1], r["account_ids"][0]])),
        ),
        (
            Some("INVALID_ACCOUNT"),
            Box::new(|r| {
                r["accounts"][1]["id"] = r["accounts"][0]["id"].clone();
                r["account_ids"][1] = r["account_ids"][0].clone();
            }),
        ),
        (
            Some("INVALID_RECORD"),
            Box::new(|r| r["status"] = json!("disabled")),
        ),
        (
            Some("INVALID_RECORD"),
            Box::new(|r| r["status"] = json!("gone")),
        ),
        (
            Some("INVALID_RECORD"),
            Box::new(|r| r["issuer"] = json!(uuid::Uuid::new_v4().to_string())),
        ),
        (
            Some("INVALID_RECORD"),
            Box::new(|r| r["ID"] = r["id"].clone()),
        ),
        (
            Some("INVALID_RECORD"),
            Box::new(|r| r["enrolled"] = json!("PIN")),
        ),
        (
            Some("INVALID_RECORD"),
            Box::new(|r| r["identifier"] = json!(7)),
        ),
        (
            Some("UNSUPPORTED_PASSWORD_HASH"),
            Box::new(|r| r["password_hash"] = json!("$1$abc$def")),
        ),
        (Some("ID_EXISTS"), {
            let owner = owner.clone();
            Box::new(move |r| r["id"] = json!(owner))
        }),
        (
            Some("IDENTIFIER_TAKEN"),
            Box::new(|r| {
                r["identifier"] = json!("OWNER@example.com");
                r["profile"]["email"] = json!("OWNER@example.com");
            }),
        ),
        (
            Some("CLIENT_USER_ID_TAKEN"),
            Box::new(move |r| r["client_user_id"] = json!(owner_for_client)),
        ),
        (
            Some("ACCOUNT_ID_TAKEN"),
            Box::new(move |r| {
                r["accounts"] = original_accounts.clone();
                r["account_ids"] = original_account_ids.clone();
            }),
        ),
        (
            Some("PASSWORD_NOT_IMPORTED"),
            Box::new(|r| {
                r.as_object_mut().unwrap().remove("password_hash");
            }),
        ),
        (
            Some("ENROLLED_NOT_IMPORTED"),
            Box::new(|r| r["enrolled"] = json!(["TRUSTED_DEVICE"])),
        ),
        (
            None,
            Box::new(|r| {
                r["status"] = json!("deleted");
                r["deleted_at"] = json!("2021-01-01T00:00:00+02:00");
            }),
        ),
    ];
    let lines: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(k, (_, change))| {
            let mut record = fresh(k);
            change(&mut record);
            record
        })
        .collect();
    let imported = import(&svc, &keys, "", NDJSON, minimal_ndjson(&lines)).await;
    let expected: Vec<Option<&str>> = cases.iter().map(|(code, _)| *code).collect();
    assert_eq!(imported.codes(), expected);
    let notes = ["PASSWORD_NOT_IMPORTED", "ENROLLED_NOT_IMPORTED"];
    for (result, (code, _)) in imported.results.iter().zip(&cases) {
        let created = code.is_none_or(|c| notes.contains(&c));
        assert_eq!(
            result["status"],
            if created { "created" } else { "error" },
            "{result}"
        );
    }
    let created = cases
        .iter()
        .filter(|(code, _)| code.is_none_or(|c| notes.contains(&c)))
        .count();
    assert_eq!(count_all(&svc, &keys).await, 1 + created as i64);
    // The created ones as their records said (the deleted one's time in UTC).
    let now = records(&export(&svc, &keys, "include=password_hash").await);
    let first = now.iter().find(|r| r["id"] == lines[0]["id"]).unwrap();
    assert_eq!(first, &lines[0]);
    let deleted = now
        .iter()
        .find(|r| r["id"] == lines[cases.len() - 1]["id"])
        .unwrap();
    assert_eq!(deleted["deleted_at"], "2020-12-31T22:00:00Z");
    assert_eq!(deleted["status"], "deleted");
}

/// NDJSON of minimal records `prefix{i}@example.com` of at most `size` bytes, padded with
/// blank lines to exactly `size`.
fn sized_file(prefix: &str, size: usize) -> (Vec<u8>, usize) {
    let mut body = Vec::with_capacity(size);
    let mut n = 0;
    loop {
        let line = format!("{{\"identifier\":\"{prefix}{n}@example.com\"}}\n");
        if body.len() + line.len() > size {
            break;
        }
        body.extend_from_slice(line.as_bytes());
        n += 1;
    }
    body.resize(size, b'\n');
    (body, n)
}

async fn import_bodies_over_the_limit_are_refused_before_anything_is_written(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| s.max_import_bytes = 64 * 1024);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let (over, _) = sized_file("over", 65 * 1024);
    let reply = call(&svc, &import_req(&keys, "", NDJSON, over)).await;
    assert_eq!(
        reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE),
        "BODY_TOO_LARGE"
    );
    assert_eq!(count_all(&svc, &keys).await, 0);
    assert!(import_events(&svc, &keys).await.is_empty());
    let (one_more, _) = sized_file("one-more", 64 * 1024 + 1);
    let reply = call(&svc, &import_req(&keys, "dry_run=true", NDJSON, one_more)).await;
    assert_eq!(
        reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE),
        "BODY_TOO_LARGE"
    );

    // Exactly the limit is a file.
    let (exact, n) = sized_file("exact", 64 * 1024);
    let imported = import(&svc, &keys, "", NDJSON, exact).await;
    let n = n as u64;
    assert_eq!(imported.summary, summary([n, n, 0, 0, 0], false, "fail"));
    assert_eq!(count_all(&svc, &keys).await, n as i64);

    // 65 MiB against the default limit (64 MiB).
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let started = Instant::now();
    let mut huge = b"{\"identifier\":\"huge@example.com\"}\n".to_vec();
    huge.resize(65 * 1024 * 1024, b' ');
    let reply = call(&svc, &import_req(&keys, "", NDJSON, huge)).await;
    assert_eq!(
        reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE),
        "BODY_TOO_LARGE"
    );
    assert_eq!(count_all(&svc, &keys).await, 0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

async fn import_refuses_password_hashes_of_unknown_schemes(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let bcrypt = bcrypt::hash("pw", 4).unwrap();
    let refused = [
        "5f4dcc3b5aa765d61d8327deb882cf99".to_owned(),
        "$1$abc$def".to_owned(),
        "$scrypt$ln=16,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_owned(),
        bcrypt.replacen("$04$", "$31$", 1),
        bcrypt.replacen("$04$", "$03$", 1),
        bcrypt.replacen("$2b$", "$2x$", 1),
        "$pbkdf2-sha512$i=1000,l=64$c2FsdA$aGFzaA".to_owned(),
        "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_owned(),
        String::new(),
        format!("$2b$04${}", "a".repeat(600)),
    ];
    let mut lines: Vec<Value> = refused
        .iter()
        .enumerate()
        .map(
            |(i, hash)| json!({"identifier": format!("bad{i}@example.com"), "password_hash": hash}),
        )
        .collect();
    lines.push(json!({"identifier": "good@example.com", "password_hash": bcrypt}));
    let imported = import(&svc, &keys, "", NDJSON, minimal_ndjson(&lines)).await;
    let mut expected = vec![Some("UNSUPPORTED_PASSWORD_HASH"); refused.len()];
    expected.push(None);
    assert_eq!(imported.codes(), expected);
    assert_eq!(count_all(&svc, &keys).await, 1);
    let file = export(&svc, &keys, "include=password_hash").await;
    assert_eq!(
        records(&file)[0]["password_hash"],
        json!(bcrypt),
        "stored as given"
    );
}

/// A request's bytes, sent over a fresh connection; the answer's status line (`None` when the
/// server closed the connection without one). Write and read errors are tolerated: a server
/// may refuse a body before reading all of it.
fn send_leniently(port: u16, bytes: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    response.lines().next().map(str::to_owned)
}

/// A body sent with `Transfer-Encoding: chunked` (as the import's streamed answer is), joined.
fn dechunk(head: &str, body: Vec<u8>) -> Vec<u8> {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body;
    }
    let mut out = Vec::new();
    let mut rest = &body[..];
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size = std::str::from_utf8(&rest[..end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        rest = &rest[end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

async fn import_over_a_dropped_connection_writes_nothing(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let (server, _log) = start_server(
        &app.db,
        &[("RUST_LOG", "warn"), ("MAX_IMPORT_BYTES", "65536")],
    );
    let file: String = (0..300)
        .map(|i| format!("{{\"identifier\":\"dropped{i}@example.com\"}}\n"))
        .collect();
    let head = format!(
        "POST {IMPORT} HTTP/1.1\r\nHost: localhost\r\nAPI_KEY_ID: {}\r\nAPI_SECRET_KEY: {}\r\n\
         Content-Type: {NDJSON}\r\nContent-Length: {}\r\n\r\n",
        keys.id,
        keys.secret,
        file.len()
    );

    // Half the file, then the connection closes.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
        .write_all(&file.as_bytes()[..file.len() / 2])
        .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stream.shutdown(Shutdown::Both).unwrap();
    drop(stream);
    // The server is still up and wrote nothing, then or a moment later.
    let (status, _) = send_wire(server.port, &Req::get("/healthz"));
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(count_all(&svc, &keys).await, 0);
    assert!(import_events(&svc, &keys).await.is_empty());

    // A chunked body (no length announced) over the server's limit: 413 once it is seen.
    let big: String = (0..2_000)
        .map(|i| format!("{{\"identifier\":\"chunked{i}@example.com\"}}\n"))
        .collect();
    assert!(big.len() > 65_536);
    let mut chunked = format!(
        "POST {IMPORT} HTTP/1.1\r\nHost: localhost\r\nAPI_KEY_ID: {}\r\nAPI_SECRET_KEY: {}\r\n\
         Content-Type: {NDJSON}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        keys.id, keys.secret
    )
    .into_bytes();
    for piece in big.as_bytes().chunks(8 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let status = send_leniently(server.port, &chunked);
    assert!(
        status
            .as_deref()
            .is_none_or(|s| s.starts_with("HTTP/1.1 413")),
        "{status:?}"
    );
    assert_eq!(count_all(&svc, &keys).await, 0);

    // The whole file, sent whole, is imported: the file was never the problem.
    let full = Req::post(IMPORT)
        .keys(&keys)
        .body(Some(NDJSON), file.clone());
    let response = http_bytes(server.port, &full.wire());
    let body = String::from_utf8(dechunk(&response.head, response.body)).unwrap();
    assert_eq!(response.status, 200, "{body}");
    assert_eq!(
        parse_import(&body).summary,
        summary([300, 300, 0, 0, 0], false, "fail")
    );
    assert_eq!(count_all(&svc, &keys).await, 300);
}

async fn import_dry_run_checks_everything_and_writes_nothing(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    ok_json(
        &svc,
        Req::post("/api/v0/user/create")
            .key_id(&keys.id)
            .json(&json!({"identifier": "taken@example.com"})),
    )
    .await;
    let before = Snapshot::take(&app, None);
    let id = uuid::Uuid::new_v4().to_string();
    let body = minimal_ndjson(&[
        json!({"identifier": "new1@example.com"}),
        json!({"ID": id, "identifier": "new2@example.com", "enrolled": ["PIN"]}),
        json!({"ID": id, "identifier": "new3@example.com"}),
        json!({"identifier": "TAKEN@example.com"}),
        json!({"identifier": "new4@example.com", "password_hash": "$1$abc$def"}),
    ]);
    for mode in ["fail", "skip"] {
        let imported = import(
            &svc,
            &keys,
            &format!("dry_run=true&on_conflict={mode}"),
            NDJSON,
            body.clone(),
        )
        .await;
        let conflict = if mode == "fail" { "error" } else { "skipped" };
        assert_eq!(
            imported.statuses(),
            ["created", "created", conflict, conflict, "error"],
            "{mode}"
        );
        assert_eq!(
            imported.codes(),
            [
                None,
                Some("ENROLLED_NOT_IMPORTED"),
                Some("ID_EXISTS"),
                Some("IDENTIFIER_TAKEN"),
                Some("UNSUPPORTED_PASSWORD_HASH")
            ]
        );
        assert_eq!(imported.summary["dry_run"], true);
        assert_eq!(imported.summary["created"], 2);
        assert_eq!(Snapshot::take(&app, None), before, "nothing written");
        assert_eq!(count_all(&svc, &keys).await, 1);
        assert!(import_events(&svc, &keys).await.is_empty());
    }
    // dry_run=false is a real import.
    let imported = import(&svc, &keys, "dry_run=false", NDJSON, body).await;
    assert_eq!(imported.summary["dry_run"], false);
    assert_eq!(count_all(&svc, &keys).await, 3);
}

async fn import_refuses_wrong_keys_media_types_and_parameters(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let body = minimal_ndjson(&[json!({"identifier": "a@example.com"})]);

    for req in [
        Req::post(IMPORT).body(Some(NDJSON), body.clone()),
        Req::post(IMPORT)
            .key_id(&keys.id)
            .body(Some(NDJSON), body.clone()),
        Req::post(IMPORT)
            .key_id(&keys.id)
            .header("API_SECRET_KEY", &other.secret)
            .body(Some(NDJSON), body.clone()),
        Req::post(IMPORT)
            .key_id(&uuid::Uuid::new_v4().to_string())
            .header("API_SECRET_KEY", &keys.secret)
            .body(Some(NDJSON), body.clone()),
    ] {
        let reply = call(&svc, &req).await;
        assert_eq!(
            reply.assert_problem(StatusCode::UNAUTHORIZED),
            "UNAUTHORIZED",
            "{}",
            req.describe()
        );
    }
    for media in [
        Some("text/plain"),
        Some("application/xml"),
        Some("multipart/form-data; boundary=x"),
        Some("text/csv"),
        None,
    ] {
        let req = Req::post(IMPORT).keys(&keys).body(media, body.clone());
        let reply = call(&svc, &req).await;
        assert_eq!(
            reply.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            "UNSUPPORTED_MEDIA_TYPE",
            "{media:?}"
        );
    }
    // The other names of NDJSON, and parameters on the media type.
    for (k, media) in [
        "application/ndjson",
        "application/jsonl",
        "application/x-ndjson; charset=utf-8",
        "Application/X-NDJSON",
    ]
    .into_iter()
    .enumerate()
    {
        let body = minimal_ndjson(&[json!({"identifier": format!("media{k}@example.com")})]);
        let imported = import(&svc, &keys, "", media, body).await;
        assert_eq!(imported.statuses(), ["created"], "{media}");
    }
    for (query, code) in [
        ("on_conflict=merge", "INVALID_PARAMETER"),
        ("on_conflict=", "INVALID_PARAMETER"),
        ("dry_run=yes", "INVALID_PARAMETER"),
        ("format=json", "INVALID_REQUEST"),
        ("dry_run=true&dry_run=true", "INVALID_REQUEST"),
    ] {
        let reply = call(&svc, &import_req(&keys, query, NDJSON, body.clone())).await;
        assert_eq!(
            reply.assert_problem(StatusCode::BAD_REQUEST),
            code,
            "{query}"
        );
    }
    assert_eq!(count_all(&svc, &keys).await, 4);
}

// ---------------------------------------------------------------------------------------------
// 5. Imported password hashes
// ---------------------------------------------------------------------------------------------

async fn imported_password_hashes_verify_and_are_upgraded_to_argon2id(backend: Backend) {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    let argon2 = |algorithm: argon2::Algorithm, password: &str| {
        argon2::Argon2::new(
            algorithm,
            argon2::Version::V0x13,
            argon2::Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
    };
    let pbkdf2 = |password: &str| {
        pbkdf2::Pbkdf2
            .hash_password_customized(
                password.as_bytes(),
                Some(pbkdf2::Algorithm::Pbkdf2Sha256.ident()),
                None,
                pbkdf2::Params {
                    rounds: 1_000,
                    output_length: 32,
                },
                &salt,
            )
            .unwrap()
            .to_string()
    };
    let bcrypt_2b = bcrypt::hash("bcrypt pass 2b", 4).unwrap();
    let users: Vec<(&str, String, &str)> = vec![
        ("bcrypt-2b@example.com", bcrypt_2b.clone(), "bcrypt pass 2b"),
        (
            "bcrypt-2a@example.com",
            bcrypt::hash("bcrypt pass 2a", 5)
                .unwrap()
                .replacen("$2b$", "$2a$", 1),
            "bcrypt pass 2a",
        ),
        (
            "bcrypt-2y@example.com",
            bcrypt::hash("bcrypt pass 2y", 4)
                .unwrap()
                .replacen("$2b$", "$2y$", 1),
            "bcrypt pass 2y",
        ),
        ("pbkdf2@example.com", pbkdf2("pbkdf2 pass"), "pbkdf2 pass"),
        (
            "argon2i@example.com",
            argon2(argon2::Algorithm::Argon2i, "argon2i pass"),
            "argon2i pass",
        ),
        (
            "argon2d@example.com",
            argon2(argon2::Algorithm::Argon2d, "argon2d pass"),
            "argon2d pass",
        ),
        (
            "argon2id-weak@example.com",
            argon2(argon2::Algorithm::Argon2id, "argon2id pass"),
            "argon2id pass",
        ),
    ];
    assert!(
        users[3].1.starts_with("$pbkdf2-sha256$i=1000,l=32$"),
        "{}",
        users[3].1
    );
    assert!(users[4].1.starts_with("$argon2i$"), "{}", users[4].1);
    let lines: Vec<Value> = users
        .iter()
        .map(|(email, hash, _)| json!({"identifier": email, "password_hash": hash}))
        .collect();
    let imported = import(&svc, &keys, "", NDJSON, minimal_ndjson(&lines)).await;
    assert_eq!(imported.statuses(), vec!["created"; users.len()]);
    let stored = |file: &str| -> Vec<String> {
        records(file)
            .iter()
            .map(|r| r["password_hash"].as_str().unwrap().to_owned())
            .collect()
    };
    let as_given: Vec<String> = users.iter().map(|u| u.1.clone()).collect();
    let file = export(&svc, &keys, "include=password_hash").await;
    assert_eq!(stored(&file), as_given, "stored as given");
    for record in records(&file) {
        assert_eq!(record["profile"]["email"], record["identifier"], "a login");
    }

    let verify = |email: &str, password: &str| {
        Req::post("/v2/users/verify")
            .keys(&keys)
            .json(&json!({"email": email, "password": password}))
    };
    for (k, (email, _, password)) in users.iter().enumerate() {
        let wrong = call(&svc, &verify(email, &format!("{password}!"))).await;
        assert_eq!(
            wrong.assert_v2_error(StatusCode::UNAUTHORIZED),
            ["INVALID_CREDENTIALS"],
            "{email}"
        );
        assert_eq!(
            stored(&export(&svc, &keys, "include=password_hash").await)[k],
            as_given[k],
            "a wrong password changes nothing"
        );
        let right = call(&svc, &verify(email, password)).await;
        assert_eq!(right.status, StatusCode::OK, "{email}: {}", right.body);
        assert_eq!(right.json()["id"], imported.results[k]["id"]);
        let now = stored(&export(&svc, &keys, "include=password_hash").await)[k].clone();
        assert!(now.starts_with(ARGON2ID_NOW), "{email}: re-hashed, {now}");
        let again = call(&svc, &verify(email, password)).await;
        assert_eq!(again.status, StatusCode::OK, "{email}: {}", again.body);
        assert_eq!(
            stored(&export(&svc, &keys, "include=password_hash").await)[k],
            now,
            "a current hash is kept"
        );
        let wrong = call(&svc, &verify(email, "not it at all")).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{email}");
    }

    // A user with a hash that was imported and then re-imported with update keeps the new
    // one it was given.
    let fresh = bcrypt::hash("second pass", 4).unwrap();
    let line = json!({"identifier": "bcrypt-2b@example.com", "password_hash": fresh});
    let updated = import(
        &svc,
        &keys,
        "on_conflict=update",
        NDJSON,
        format!("{line}\n"),
    )
    .await;
    assert_eq!(updated.statuses(), ["updated"]);
    assert_eq!(updated.ids()[0], imported.ids()[0]);
    let wrong = call(&svc, &verify("bcrypt-2b@example.com", "bcrypt pass 2b")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right = call(&svc, &verify("bcrypt-2b@example.com", "second pass")).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
}

// ---------------------------------------------------------------------------------------------
// 6. The CLI
// ---------------------------------------------------------------------------------------------

fn cotterd(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cotterd"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cotterd")
}

fn succeeded(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failed(output: &Output, what: &str) -> String {
    assert!(
        !output.status.success(),
        "{what} succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn cli_export_and_import_move_a_project(backend: Backend) {
    let source = TestApp::new(backend);
    let keys = source.project("A");
    let svc = init_service(cotterd::app(source.state.clone())).await;
    let made = populate(&svc, &keys, 0).await;
    let n = made.ids.len();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.ndjson");

    let out = cotterd(
        &source.db,
        &[
            "users",
            "export",
            "--project",
            &keys.id,
            "--output",
            path_str(&path),
            "--include-password-hash",
        ],
    );
    succeeded(&out, "export");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{n} users written")), "{stderr}");
    let file = std::fs::read_to_string(&path).unwrap();
    assert_same_file(
        &export(&svc, &keys, "include=password_hash").await,
        &file,
        "the CLI's export is the API's",
    );
    let to_stdout = succeeded(
        &cotterd(&source.db, &["users", "export", "--project", &keys.id]),
        "export to stdout",
    );
    assert_same_file(&export(&svc, &keys, "").await, &to_stdout, "without hashes");

    let target = TestApp::new(other_backend(backend));
    let keys_b = target.project("B");
    let svc_b = init_service(cotterd::app(target.state.clone())).await;
    let import_args = |extra: &[&'static str]| {
        let mut args = vec![
            "users".to_owned(),
            "import".to_owned(),
            "--project".to_owned(),
            keys_b.id.clone(),
            path_str(&path).to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cotterd(&target.db, &args)
    };

    let dry = parse_import(&succeeded(&run(import_args(&["--dry-run"])), "dry run"));
    assert_eq!(dry.statuses(), vec!["created"; n]);
    let n64 = n as u64;
    assert_eq!(dry.summary, summary([n64, n64, 0, 0, 0], true, "fail"));
    assert_eq!(
        count_all(&svc_b, &keys_b).await,
        0,
        "a dry run writes nothing"
    );

    let done = parse_import(&succeeded(&run(import_args(&[])), "import"));
    assert_eq!(done.statuses(), vec!["created"; n]);
    assert_eq!(done.lines(), (1..=n64).collect::<Vec<_>>());
    assert_eq!(done.summary, summary([n64, n64, 0, 0, 0], false, "fail"));
    assert_same_file(
        &file,
        &export(&svc_b, &keys_b, "include=password_hash").await,
        "the imported project",
    );
    let events = import_events(&svc_b, &keys_b).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], "cli");

    // Again: every record fails (a non-zero exit), or is skipped.
    let again = run(import_args(&[]));
    let stderr = failed(&again, "a second import");
    assert!(
        stderr.contains(&format!("{n} records were not imported")),
        "{stderr}"
    );
    let results = parse_import(&String::from_utf8(again.stdout).unwrap());
    assert_eq!(results.codes(), vec![Some("ID_EXISTS"); n]);
    let skipped = parse_import(&succeeded(
        &run(import_args(&["--on-conflict", "skip"])),
        "skip",
    ));
    assert_eq!(skipped.statuses(), vec!["skipped"; n]);

    // A .json file is read as JSON arrays (Cotter's pages).
    let json_path = dir.path().join("cotter.json");
    let cotter = cotter_users(60, &uuid::Uuid::new_v4().to_string());
    std::fs::write(&json_path, list_pages(&cotter).0).unwrap();
    let imported = parse_import(&succeeded(
        &cotterd(
            &target.db,
            &[
                "users",
                "import",
                "--project",
                &keys_b.id,
                path_str(&json_path),
            ],
        ),
        "a .json import",
    ));
    assert_eq!(imported.statuses(), vec!["created"; 60]);
    assert_eq!(count_all(&svc_b, &keys_b).await, (n + 60) as i64);

    // A project that does not exist, or no project at all: a clear refusal.
    let nobody = uuid::Uuid::new_v4().to_string();
    for args in [
        vec!["users", "export", "--project", &nobody],
        vec!["users", "import", "--project", &nobody, path_str(&path)],
        vec![
            "users",
            "import",
            "--project",
            &nobody,
            "--dry-run",
            path_str(&path),
        ],
    ] {
        let stderr = failed(&cotterd(&target.db, &args), &format!("{args:?}"));
        assert!(stderr.contains("no project"), "{args:?}: {stderr}");
    }
    for args in [
        vec!["users", "export"],
        vec!["users", "import", path_str(&path)],
    ] {
        let stderr = failed(&cotterd(&target.db, &args), &format!("{args:?}"));
        assert!(stderr.contains("--project"), "{args:?}: {stderr}");
    }
    let stderr = failed(
        &cotterd(&target.db, &["users", "export", "--project", "not-a-uuid"]),
        "a project id that is not a UUID",
    );
    assert!(stderr.contains("invalid"), "{stderr}");
    let missing = dir.path().join("missing.ndjson");
    let stderr = failed(
        &cotterd(
            &target.db,
            &[
                "users",
                "import",
                "--project",
                &keys_b.id,
                path_str(&missing),
            ],
        ),
        "a missing file",
    );
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert_eq!(count_all(&svc_b, &keys_b).await, (n + 60) as i64);
}

/// `update` applies in file order: a later record in the same batch may take what an update
/// gave up, and a minimal record naming nothing to change is skipped, not an error.
async fn updates_in_a_batch_free_what_they_replace(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let keys = app.project("updates");
    let made = import(
        &svc,
        &keys,
        "",
        NDJSON,
        minimal_ndjson(&[json!({"identifier": "y@example.com", "client_user_id": "app-y"})]),
    )
    .await;
    let y = made.ids()[0].unwrap().to_owned();
    let fresh = uuid::Uuid::new_v4().to_string();
    let body = minimal_ndjson(&[
        json!({"ID": y, "identifier": "y@example.com", "client_user_id": "app-y",
               "deleted_at": "2021-01-01T00:00:00Z"}),
        json!({"ID": fresh, "identifier": "Y@example.com", "client_user_id": "app-y"}),
        json!({"identifier": "y@example.com"}),
        json!({"identifier": "after@example.com"}),
    ]);
    let imported = import(&svc, &keys, "on_conflict=update", NDJSON, body).await;
    assert_eq!(
        imported.statuses(),
        ["updated", "created", "skipped", "created"],
        "{:?}",
        imported.codes()
    );
    assert_eq!(imported.codes()[2], Some("NOTHING_TO_UPDATE"));
    assert_eq!(imported.ids()[2], Some(fresh.as_str()));
    assert_eq!(imported.summary["complete"], true);
    let found = ok_json(
        &svc,
        Req::get("/api/v0/user?identifier=y@example.com").key_id(&keys.id),
    )
    .await;
    assert_eq!(found["ID"], fresh.as_str());
}

/// Ids and app ids cannot shadow each other within a project; another project's ids are not
/// revealed through `client_user_id`; an update may not leave accounts without a `kyc_id`.
async fn imported_ids_never_shadow_or_reveal_other_users(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let keys = app.project("ids");
    let other = app.project("other");

    // A user whose app id is a UUID; a later record may not take that UUID as its id.
    let app_id = uuid::Uuid::new_v4().to_string();
    let body = minimal_ndjson(&[json!({"identifier": "v@example.com", "client_user_id": app_id})]);
    let made = import(&svc, &keys, "", NDJSON, body).await;
    let v = made.ids()[0].unwrap().to_owned();
    let body = minimal_ndjson(&[json!({"id": app_id, "identifier": "w@example.com"})]);
    for mode in ["", "on_conflict=skip", "on_conflict=update"] {
        let refused = import(&svc, &keys, mode, NDJSON, body.clone()).await;
        assert_eq!(refused.codes(), [Some("ID_TAKEN")], "{mode}");
        assert_ne!(refused.statuses(), ["created"], "{mode}");
    }
    let found = ok_json(
        &svc,
        Req::get(format!("/api/v0/user/{app_id}")).key_id(&keys.id),
    )
    .await;
    assert_eq!(found["ID"], v.as_str());

    // Another project's user id as an app id: nothing to say about it here.
    let theirs = import(
        &svc,
        &other,
        "",
        NDJSON,
        minimal_ndjson(&[json!({"identifier": "t@example.com"})]),
    )
    .await;
    let theirs = theirs.ids()[0].unwrap().to_owned();
    let body = minimal_ndjson(&[json!({"identifier": "x@example.com", "client_user_id": theirs})]);
    let twin = minimal_ndjson(&[json!({"identifier": "x@example.com",
                                       "client_user_id": uuid::Uuid::new_v4().to_string()})]);
    let (one, two) = (
        import(&svc, &keys, "dry_run=true", NDJSON, body).await,
        import(&svc, &keys, "dry_run=true", NDJSON, twin).await,
    );
    assert_eq!(one.statuses(), ["created"]);
    assert_eq!(one.statuses(), two.statuses());
    assert_eq!(one.codes(), two.codes());

    // A user with an account keeps its kyc_id through an update.
    let id = uuid::Uuid::new_v4().to_string();
    let account = uuid::Uuid::new_v4().to_string();
    let with_account = json!({"id": id, "identifier": "k@example.com",
        "profile": {"email": null, "phone_number": null, "first_name": null, "last_name": null,
                    "kyc_id": "kyc-1"},
        "accounts": [{"id": account, "type": "checking", "created_at": "2026-01-01T00:00:00Z"}]});
    let made = import(&svc, &keys, "", NDJSON, minimal_ndjson(&[with_account])).await;
    assert_eq!(made.statuses(), ["created"]);
    let without = json!({"id": id, "identifier": "k@example.com",
        "profile": {"email": null, "phone_number": null, "first_name": null, "last_name": null,
                    "kyc_id": null}});
    let refused = import(
        &svc,
        &keys,
        "on_conflict=update",
        NDJSON,
        minimal_ndjson(&[without]),
    )
    .await;
    assert_eq!(refused.statuses(), ["error"]);
    assert_eq!(refused.codes(), [Some("INVALID_ACCOUNT")]);
    let kept = ok_json(&svc, Req::get(format!("/admin/v1/users/{id}")).keys(&keys)).await;
    assert_eq!(kept["profile"]["kyc_id"], "kyc-1");
}

both_backends!(
    imported_ids_never_shadow_or_reveal_other_users,
    updates_in_a_batch_free_what_they_replace,
    export_import_round_trip_to_the_other_backend_is_byte_identical,
    large_imports_go_in_batches_in_file_order_and_export_in_chunks,
    export_gzip_resumption_filters_and_refusals,
    cotter_list_dump_imports_and_reads_back_as_cotter_printed_it,
    import_bad_lines_are_reported_on_their_line_and_the_rest_imported,
    import_conflicts_within_a_file_and_with_the_database,
    import_checks_each_record_with_the_apis_rules,
    import_bodies_over_the_limit_are_refused_before_anything_is_written,
    import_refuses_password_hashes_of_unknown_schemes,
    import_over_a_dropped_connection_writes_nothing,
    import_dry_run_checks_everything_and_writes_nothing,
    import_refuses_wrong_keys_media_types_and_parameters,
    imported_password_hashes_verify_and_are_upgraded_to_argon2id,
    cli_export_and_import_move_a_project,
);

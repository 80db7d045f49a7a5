//! The admin API (`/admin/v1`) through the real app, on SQLite and on PostgreSQL: lists (orders,
//! filters, prefix search, keyset pages and their links), counts, the user object, create,
//! soft delete, restore, purge, disable and enable and how v0 and v2 see them, the audit trail,
//! sign-up statistics; `Idempotency-Key` on every creating route; the retention purge.

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::test::init_service;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::common::envelope::Api;
use crate::common::req::{call, Req};
use crate::common::rows::Snapshot;
use crate::common::{url_encode, v2_user, Backend, Keys, Reply, TestApp, NIL_ID, PASSWORD};
use cotterd::db::schema::idempotency_keys;
use cotterd::janitor::{self, Round};
use cotterd::users::{self, Identifier};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A test app without the admin budget: these tests make hundreds of admin calls in a moment
/// (`ops` tests the budget).
fn new_app(backend: Backend) -> TestApp {
    TestApp::with_settings(backend, |s| s.rate_limit_admin = 0)
}

/// The keys of an admin user object, sorted.
const USER_KEYS: [&str; 13] = [
    "account_ids",
    "client_user_id",
    "created_at",
    "default_method",
    "deleted_at",
    "disabled_at",
    "enrolled",
    "id",
    "identifier",
    "identifiers",
    "profile",
    "status",
    "updated_at",
];

/// The keys of its `profile`, sorted.
const PROFILE_KEYS: [&str; 5] = ["email", "first_name", "kyc_id", "last_name", "phone_number"];

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Asserts an admin user object's shape: exactly its keys, `id` a UUID equal to
/// `client_user_id`, a known status.
fn assert_user_shape(user: &Value) {
    assert_eq!(sorted_keys(user), USER_KEYS, "{user}");
    assert_eq!(sorted_keys(&user["profile"]), PROFILE_KEYS, "{user}");
    let id = user["id"].as_str().expect("id");
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().to_string(), id);
    assert_eq!(user["client_user_id"], user["id"]);
    assert!(
        ["active", "disabled", "deleted"].contains(&user["status"].as_str().unwrap()),
        "{user}"
    );
    assert!(user["enrolled"].is_array() && user["account_ids"].is_array());
}

/// An RFC 3339 time as the database keeps it.
fn t(rfc3339: &str) -> NaiveDateTime {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .naive_utc()
}

/// Inserts a user directly, created at `at`; its id.
fn insert_at(app: &TestApp, keys: &Keys, identifier: &str, at: NaiveDateTime) -> String {
    let project = app.project_id(keys);
    let user = users::new_user(&project, Identifier::parse(identifier).unwrap(), at);
    let mut conn = app.state.pool.get().expect("connection");
    users::insert(conn.conn(), user).expect("insert user").id
}

fn get(keys: &Keys, uri: &str) -> Req {
    Req::get(uri).keys(keys)
}

fn post(keys: &Keys, uri: &str, body: &Value) -> Req {
    Req::post(uri).keys(keys).json(body)
}

fn delete(keys: &Keys, uri: &str) -> Req {
    Req::new(Method::DELETE, uri).keys(keys)
}

fn users_uri(query: &str) -> String {
    if query.is_empty() {
        "/admin/v1/users".to_owned()
    } else {
        format!("/admin/v1/users?{query}")
    }
}

/// `query` with one more `name=value` pair.
fn and(query: &str, pair: &str) -> String {
    if query.is_empty() {
        pair.to_owned()
    } else {
        format!("{query}&{pair}")
    }
}

/// The `identifier`s of a page, in order.
fn identifiers(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users in {page}"))
        .iter()
        .map(|u| u["identifier"].as_str().unwrap().to_owned())
        .collect()
}

/// The `id`s of a page, in order.
fn ids(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users in {page}"))
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The `Link` header's `(rel, url)` pairs, in order.
fn links(reply: &Reply) -> Vec<(String, String)> {
    let Some(header) = reply.headers.get("link") else {
        return Vec::new();
    };
    header
        .to_str()
        .expect("ASCII Link header")
        .split(", ")
        .map(|part| {
            let (url, rel) = part
                .split_once(">; rel=\"")
                .unwrap_or_else(|| panic!("Link part {part:?}"));
            let url = url.strip_prefix('<').expect("<url>");
            let rel = rel.strip_suffix('"').expect("rel=\"…\"");
            (rel.to_owned(), url.to_owned())
        })
        .collect()
}

fn link(reply: &Reply, rel: &str) -> Option<String> {
    links(reply)
        .into_iter()
        .find(|(r, _)| r == rel)
        .map(|(_, url)| url)
}

/// The `Idempotent-Replayed` header, if any.
fn replayed(reply: &Reply) -> Option<&str> {
    reply
        .headers
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap())
}

/// The ids of the project's users in an order (`created_at.desc`, `created_at.asc`,
/// `identifier.asc`), as the database holds them, of the users `keep` selects.
fn order_of(
    app: &TestApp,
    keys: &Keys,
    order: &str,
    keep: impl Fn(&crate::common::rows::UserRow) -> bool,
) -> Vec<String> {
    let mut rows: Vec<_> = app
        .user_rows(Some(&keys.id))
        .into_iter()
        .filter(|r| keep(r))
        .collect();
    match order {
        "created_at.desc" => rows.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id))),
        "created_at.asc" => rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id))),
        "identifier.asc" => rows.sort_by(|a, b| {
            (&a.identifier_normalized, &a.id).cmp(&(&b.identifier_normalized, &b.id))
        }),
        other => panic!("order {other}"),
    }
    rows.into_iter().map(|r| r.id).collect()
}

fn is_active(row: &crate::common::rows::UserRow) -> bool {
    row.deleted_at.is_none() && row.disabled_at.is_none()
}

/// One page of the list, which must answer 200.
async fn list<S, B>(svc: &S, keys: &Keys, query: &str) -> Value
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &get(keys, &users_uri(query))).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    reply.json()
}

/// The count for `query`, which must answer 200.
async fn count<S, B>(svc: &S, keys: &Keys, query: &str) -> i64
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let uri = if query.is_empty() {
        "/admin/v1/users/count".to_owned()
    } else {
        format!("/admin/v1/users/count?{query}")
    };
    let reply = call(svc, &get(keys, &uri)).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    let json = reply.json();
    assert_eq!(sorted_keys(&json), ["count"], "{json}");
    json["count"].as_i64().unwrap()
}

/// Every page of the list for `query`, following `next_cursor`.
async fn walk<S, B>(svc: &S, keys: &Keys, query: &str) -> Vec<Value>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut pages = vec![list(svc, keys, query).await];
    while let Some(cursor) = pages.last().unwrap()["next_cursor"].as_str() {
        let next = list(svc, keys, &and(query, &format!("cursor={cursor}"))).await;
        pages.push(next);
        assert!(pages.len() < 500, "the pages never end");
    }
    pages
}

/// The ids of every page of `query`, in order.
async fn walk_ids<S, B>(svc: &S, keys: &Keys, query: &str) -> Vec<String>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    walk(svc, keys, query).await.iter().flat_map(ids).collect()
}

/// `POST /admin/v1/users`, which must answer 201; the user.
async fn create_user<S, B>(svc: &S, keys: &Keys, identifier: &str) -> Value
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let body = json!({ "identifier": identifier });
    let reply = call(svc, &post(keys, "/admin/v1/users", &body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let user = reply.json();
    assert_user_shape(&user);
    user
}

/// An admin change: `delete`, `purge` (`DELETE`), or `restore`, `disable`, `enable` (`POST`).
async fn change<S, B>(svc: &S, keys: &Keys, id: &str, what: &str) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = match what {
        "delete" => delete(keys, &format!("/admin/v1/users/{id}")),
        "purge" => delete(keys, &format!("/admin/v1/users/{id}?purge=true")),
        _ => Req::post(format!("/admin/v1/users/{id}/{what}")).keys(keys),
    };
    call(svc, &req).await
}

/// `POST /v2/users` (then `PATCH` its `kyc_id` when given), which must succeed; the id.
async fn v2_signup<S, B>(svc: &S, keys: &Keys, email: &str, kyc_id: Option<&str>) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let body = v2_user(email, PASSWORD, "+15551234567", "Ada");
    let reply = call(svc, &post(keys, "/v2/users", &body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    if let Some(kyc_id) = kyc_id {
        set_kyc(svc, keys, &id, kyc_id).await;
    }
    id
}

async fn set_kyc<S, B>(svc: &S, keys: &Keys, id: &str, kyc_id: &str)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = Req::patch(format!("/v2/users/{id}"))
        .keys(keys)
        .json(&json!({ "kyc_id": kyc_id }));
    let reply = call(svc, &req).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

fn open_account_req(keys: &Keys, user_id: &str, account_type: &str) -> Req {
    post(
        keys,
        "/v2/accounts",
        &json!({ "user_id": user_id, "account_type": account_type }),
    )
}

/// `POST /v2/accounts`, which must answer 201; the account's id.
async fn open_account<S, B>(svc: &S, keys: &Keys, user_id: &str) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &open_account_req(keys, user_id, "checking")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// The project's whole audit trail, newest first (one page of 500).
async fn audit_events<S, B>(svc: &S, keys: &Keys) -> Vec<Value>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &get(keys, "/admin/v1/audit?limit=500")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let page = reply.json();
    assert!(page["next_cursor"].is_null(), "{page}");
    page["events"].as_array().unwrap().clone()
}

/// Asserts an error reply in `api`'s shape with this status and (v2, admin) code.
fn assert_refused(reply: &Reply, api: Api, status: StatusCode, code: &str) {
    match api {
        Api::V0 => {
            reply.assert_error(status);
        }
        Api::V2 => assert_eq!(reply.assert_v2_error(status), [code], "{}", reply.body),
        Api::Admin => assert_eq!(reply.assert_problem(status), code, "{}", reply.body),
    }
}

/// Rows of the idempotency table of the project, by key: (key, status, resource_id).
fn idempotency_rows(app: &TestApp, keys: &Keys) -> Vec<(String, Option<i32>, Option<String>)> {
    let mut conn = app.state.pool.get().expect("connection");
    idempotency_keys::table
        .filter(idempotency_keys::issuer.eq(keys.id.as_str()))
        .order(idempotency_keys::key)
        .select((
            idempotency_keys::key,
            idempotency_keys::status,
            idempotency_keys::resource_id,
        ))
        .load(conn.conn())
        .expect("load idempotency keys")
}

/// Stores an idempotency row directly, as a claim (`answer` `None`: its request still runs) or
/// a completed answer.
fn store_claim(
    app: &TestApp,
    keys: &Keys,
    key: &str,
    fingerprint: &[u8],
    started_at: NaiveDateTime,
    answer: Option<(i32, &str, &[u8])>,
) {
    let mut conn = app.state.pool.get().expect("connection");
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::issuer.eq(keys.id.as_str()),
            // As a caller with the secret's key is stored.
            idempotency_keys::key.eq(format!("s:{key}")),
            idempotency_keys::fingerprint.eq(fingerprint),
            idempotency_keys::started_at.eq(started_at),
            idempotency_keys::status.eq(answer.map(|a| a.0)),
            idempotency_keys::content_type.eq(answer.map(|a| a.1)),
            idempotency_keys::body.eq(answer.map(|a| a.2)),
        ))
        .execute(conn.conn())
        .expect("insert an idempotency row");
}

// ---------------------------------------------------------------------------------------------
// Lists and counts
// ---------------------------------------------------------------------------------------------

async fn list_defaults_and_limits(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let base = t("2026-01-10T08:00:00Z");
    for i in 0..55 {
        insert_at(
            &app,
            &keys,
            &format!("u{i:02}@x.io"),
            base + chrono::Duration::seconds(i),
        );
    }
    insert_at(
        &app,
        &other,
        "theirs@x.io",
        base + chrono::Duration::days(1),
    );
    let disabled = create_user(&svc, &keys, "disabled@x.io").await;
    let deleted = create_user(&svc, &keys, "deleted@x.io").await;
    let id = |u: &Value| u["id"].as_str().unwrap().to_owned();
    assert_eq!(
        change(&svc, &keys, &id(&disabled), "disable").await.status,
        StatusCode::OK
    );
    assert_eq!(
        change(&svc, &keys, &id(&deleted), "delete").await.status,
        StatusCode::OK
    );

    // Default: the active users, newest first, 50 a page.
    let reply = call(&svc, &get(&keys, "/admin/v1/users")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let page = reply.json();
    assert_eq!(
        sorted_keys(&page),
        ["next_cursor", "prev_cursor", "users"],
        "no total unless asked"
    );
    let expected: Vec<String> = (5..55).rev().map(|i| format!("u{i:02}@x.io")).collect();
    assert_eq!(identifiers(&page), expected);
    for user in page["users"].as_array().unwrap() {
        assert_user_shape(user);
        assert_eq!(user["status"], "active");
        assert_eq!(user["profile"]["email"], Value::Null);
    }
    assert!(page["next_cursor"].is_string());
    assert!(page["prev_cursor"].is_null());
    let rels: Vec<String> = links(&reply).into_iter().map(|(rel, _)| rel).collect();
    assert_eq!(rels, ["next"]);

    // The largest page holds them all, with no cursors and no Link.
    let reply = call(&svc, &get(&keys, "/admin/v1/users?limit=500")).await;
    let all = reply.json();
    assert_eq!(all["users"].as_array().unwrap().len(), 55);
    assert!(all["next_cursor"].is_null() && all["prev_cursor"].is_null());
    assert!(reply.headers.get("link").is_none());
    let page = list(&svc, &keys, "limit=1").await;
    assert_eq!(identifiers(&page), ["u54@x.io"]);

    // `include_total`: every user the filters select, across pages; absent otherwise.
    let page = list(&svc, &keys, "limit=2&include_total=true").await;
    assert_eq!(page["total"], 55);
    let page = list(&svc, &keys, "include_total=false").await;
    assert!(page.get("total").is_none(), "{page}");
    let page = list(&svc, &keys, "status=all&include_total=true&limit=1").await;
    assert_eq!(page["total"], 57);

    // Bad values name the parameter; an unknown parameter is refused.
    for bad in [
        "limit=0",
        "limit=501",
        "limit=x",
        "limit=-1",
        "limit=",
        "limit=1.5",
        "limit=99999999999",
        "order=newest",
        "status=gone",
        "include_total=yes",
    ] {
        let reply = call(&svc, &get(&keys, &users_uri(bad))).await;
        assert_eq!(
            reply.assert_problem(StatusCode::BAD_REQUEST),
            "INVALID_PARAMETER",
            "{bad}"
        );
    }
    // Unknown or repeated parameters: INVALID_REQUEST.
    for unknown in [
        "page=2",
        "sort=created_at",
        "limit=5&offset=10",
        "limit=5&limit=6",
        "status=all&status=all",
    ] {
        let reply = call(&svc, &get(&keys, &users_uri(unknown))).await;
        assert_eq!(
            reply.assert_problem(StatusCode::BAD_REQUEST),
            "INVALID_REQUEST",
            "{unknown}"
        );
    }

    // The other project sees only its own user.
    let theirs = list(&svc, &other, "status=all").await;
    assert_eq!(identifiers(&theirs), ["theirs@x.io"]);
}

async fn list_orders_are_exact(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let t0 = t("2026-02-01T00:00:00Z");
    let t1 = t0 + chrono::Duration::seconds(1);
    let t2 = t0 + chrono::Duration::seconds(2);
    let carol = insert_at(&app, &keys, "carol", t0);
    // Three users created at the same moment: the id decides between them.
    let mut tied = [
        insert_at(&app, &keys, "alice", t1),
        insert_at(&app, &keys, "Bob@x.io", t1),
        insert_at(&app, &keys, "dave", t1),
    ];
    let eve = insert_at(&app, &keys, "eve", t2);
    tied.sort();

    let page = list(&svc, &keys, "order=created_at.desc").await;
    let mut expected = vec![eve.clone()];
    expected.extend(tied.iter().rev().cloned());
    expected.push(carol.clone());
    assert_eq!(ids(&page), expected);
    assert_eq!(ids(&list(&svc, &keys, "").await), expected, "the default");

    let page = list(&svc, &keys, "order=created_at.asc").await;
    let mut expected = vec![carol.clone()];
    expected.extend(tied.iter().cloned());
    expected.push(eve.clone());
    assert_eq!(ids(&page), expected);

    // The normalised identifier: `Bob@x.io` sorts as `bob@x.io`, between alice and carol.
    let page = list(&svc, &keys, "order=identifier.asc").await;
    assert_eq!(
        identifiers(&page),
        ["alice", "Bob@x.io", "carol", "dave", "eve"]
    );

    // A deleted `dave` and a live `DAVE` share the normalised identifier: the id decides.
    let dave = ids(&page)[3].clone();
    assert_eq!(
        change(&svc, &keys, &dave, "delete").await.status,
        StatusCode::OK
    );
    let dave2 = insert_at(&app, &keys, "DAVE", t1);
    let page = list(&svc, &keys, "order=identifier.asc&status=all").await;
    let mut daves = [dave.clone(), dave2.clone()];
    daves.sort();
    let got = ids(&page);
    assert_eq!(got[3..5], daves, "{page}");
    assert_eq!(identifiers(&page)[..3], ["alice", "Bob@x.io", "carol"]);
    assert_eq!(identifiers(&page)[5], "eve");

    // Each order is what the database holds, sorted the same way, and pages of 1 and 2 split
    // it without a gap or a repeat (ties included).
    for order in ["created_at.desc", "created_at.asc", "identifier.asc"] {
        for status in ["active", "all"] {
            let expected = order_of(&app, &keys, order, |r| status == "all" || is_active(r));
            let query = format!("order={order}&status={status}");
            assert_eq!(ids(&list(&svc, &keys, &query).await), expected, "{query}");
            for limit in [1, 2] {
                let paged = walk_ids(&svc, &keys, &format!("{query}&limit={limit}")).await;
                assert_eq!(paged, expected, "{query} by {limit}");
            }
        }
    }
}

async fn list_prefix_search_is_literal_and_normalised(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    for identifier in [
        "Ada@x.io",
        "Adelaide@x.io",
        "bada@x.io",
        "a%b@x.io",
        "ab@x.io",
        "a_b@x.io",
        "axb@x.io",
        "ｚｅｄ@x.io",
    ] {
        create_user(&svc, &keys, identifier).await;
    }
    let search = |q: &str| format!("order=identifier.asc&q={}", url_encode(q));
    let cases: [(&str, &[&str]); 10] = [
        ("ADA", &["Ada@x.io"]),
        ("ａｄａ", &["Ada@x.io"]),
        ("ada", &["Ada@x.io"]),
        (" ada ", &["Ada@x.io"]),
        ("ad", &["Ada@x.io", "Adelaide@x.io"]),
        ("a%", &["a%b@x.io"]),
        ("a_", &["a_b@x.io"]),
        ("zed", &["ｚｅｄ@x.io"]),
        ("ada@x.io", &["Ada@x.io"]),
        ("nobody", &[]),
    ];
    for (q, expected) in cases {
        let query = search(q);
        assert_eq!(
            identifiers(&list(&svc, &keys, &query).await),
            expected,
            "{q:?}"
        );
        assert_eq!(
            count(&svc, &keys, &format!("q={}", url_encode(q))).await,
            expected.len() as i64,
            "{q:?}"
        );
    }
    // `a` finds every identifier starting with a, whatever follows; empty means none.
    let page = list(&svc, &keys, &search("a")).await;
    assert_eq!(
        identifiers(&page),
        [
            "a%b@x.io",
            "a_b@x.io",
            "ab@x.io",
            "Ada@x.io",
            "Adelaide@x.io",
            "axb@x.io"
        ]
    );
    assert_eq!(
        list(&svc, &keys, "q=").await["users"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    // Too long, or a control character: refused.
    for bad in ["x".repeat(255), "a\u{1}".to_owned()] {
        let reply = call(&svc, &get(&keys, &users_uri(&search(&bad)))).await;
        assert_eq!(
            reply.assert_problem(StatusCode::BAD_REQUEST),
            "INVALID_PARAMETER"
        );
    }
    assert_eq!(
        list(&svc, &keys, &search(&"x".repeat(254))).await["users"],
        json!([])
    );
}

async fn list_status_filters(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let mut id = std::collections::HashMap::new();
    for name in ["active1", "active2", "disabled1", "deleted1", "both1"] {
        let user = create_user(&svc, &keys, name).await;
        id.insert(name, user["id"].as_str().unwrap().to_owned());
    }
    for (name, what) in [
        ("disabled1", "disable"),
        ("deleted1", "delete"),
        ("both1", "disable"),
        ("both1", "delete"),
    ] {
        let reply = change(&svc, &keys, &id[name], what).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{name} {what}: {}",
            reply.body
        );
    }
    let cases: [(&str, &[&str]); 5] = [
        ("", &["active1", "active2"]),
        ("status=active", &["active1", "active2"]),
        ("status=disabled", &["disabled1"]),
        ("status=deleted", &["both1", "deleted1"]),
        (
            "status=all",
            &["active1", "active2", "both1", "deleted1", "disabled1"],
        ),
    ];
    for (query, expected) in cases {
        let page = list(
            &svc,
            &keys,
            &and(query, "order=identifier.asc&include_total=true"),
        )
        .await;
        assert_eq!(identifiers(&page), expected, "{query}");
        assert_eq!(page["total"], expected.len(), "{query}");
        assert_eq!(
            count(&svc, &keys, query).await,
            expected.len() as i64,
            "{query}"
        );
        for user in page["users"].as_array().unwrap() {
            let status = user["status"].as_str().unwrap();
            let want = match user["identifier"].as_str().unwrap() {
                "disabled1" => "disabled",
                "deleted1" | "both1" => "deleted",
                _ => "active",
            };
            assert_eq!(status, want, "{user}");
            assert_eq!(user["deleted_at"].is_null(), status != "deleted", "{user}");
        }
    }
    let both = list(&svc, &keys, "status=deleted&q=both").await;
    assert!(both["users"][0]["disabled_at"].is_string(), "{both}");
}

async fn list_time_filters(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    for (identifier, at) in [
        ("jan1", "2026-01-01T00:00:00Z"),
        ("jan2", "2026-01-02T00:00:00Z"),
        ("jan2noon", "2026-01-02T12:00:00.5Z"),
        ("jan3", "2026-01-03T00:00:00Z"),
    ] {
        insert_at(&app, &keys, identifier, t(at));
    }
    let q = |name: &str, at: &str| format!("{name}={}", url_encode(at));
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            q("created_after", "2026-01-02T00:00:00Z"),
            vec!["jan2", "jan2noon", "jan3"],
        ),
        (q("created_before", "2026-01-02T00:00:00Z"), vec!["jan1"]),
        (
            format!(
                "{}&{}",
                q("created_after", "2026-01-02T00:00:00Z"),
                q("created_before", "2026-01-03T00:00:00Z")
            ),
            vec!["jan2", "jan2noon"],
        ),
        // Any offset, read as UTC.
        (
            q("created_after", "2026-01-02T02:00:00+02:00"),
            vec!["jan2", "jan2noon", "jan3"],
        ),
        (
            q("created_before", "2026-01-01T20:00:00-05:00"),
            vec!["jan1", "jan2"],
        ),
        // Fractions count, to the microsecond.
        (
            q("created_after", "2026-01-02T12:00:00.5Z"),
            vec!["jan2noon", "jan3"],
        ),
        (
            q("created_after", "2026-01-02T12:00:00.500001Z"),
            vec!["jan3"],
        ),
        (
            q("created_before", "2026-01-02T12:00:00.500001Z"),
            vec!["jan1", "jan2", "jan2noon"],
        ),
        (q("created_after", "2030-01-01T00:00:00Z"), vec![]),
    ];
    for (query, expected) in cases {
        let page = list(&svc, &keys, &and(&query, "order=created_at.asc")).await;
        assert_eq!(identifiers(&page), expected, "{query}");
        assert_eq!(
            count(&svc, &keys, &query).await,
            expected.len() as i64,
            "{query}"
        );
    }
    for bad in [
        "yesterday",
        "2026-01-02",
        "2026-01-02T00:00:00",
        "2026-13-02T00:00:00Z",
        "",
    ] {
        for name in ["created_after", "created_before"] {
            let query = q(name, bad);
            let reply = call(&svc, &get(&keys, &users_uri(&query))).await;
            assert_eq!(
                reply.assert_problem(StatusCode::BAD_REQUEST),
                "INVALID_PARAMETER",
                "{query}"
            );
            let reply = call(&svc, &get(&keys, &format!("/admin/v1/users/count?{query}"))).await;
            assert_eq!(
                reply.assert_problem(StatusCode::BAD_REQUEST),
                "INVALID_PARAMETER",
                "count {query}"
            );
        }
    }
}

async fn list_pages_follow_cursors_and_links(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let base = t("2026-03-01T00:00:00Z");
    for i in 0..23 {
        // Three users share each creation time, so that pages split ties.
        insert_at(
            &app,
            &keys,
            &format!("page{i:02}@x.io"),
            base + chrono::Duration::seconds(i / 3),
        );
    }
    let expected = order_of(&app, &keys, "created_at.desc", is_active);
    assert_eq!(expected.len(), 23);

    // Forward with next_cursor: every user once, in order, five a page.
    let query = "limit=5&include_total=true";
    let pages = walk(&svc, &keys, query).await;
    assert_eq!(pages.len(), 5);
    let seen: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(seen, expected);
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(ids(page), expected[i * 5..(i * 5 + 5).min(23)], "page {i}");
        assert_eq!(page["total"], 23);
        assert_eq!(page["prev_cursor"].is_null(), i == 0, "page {i}");
        assert_eq!(page["next_cursor"].is_null(), i == 4, "page {i}");
    }

    // The same walk by the Link header's rel="next" gives the same pages, and each page's
    // Link names exactly its cursors.
    let mut uri = users_uri(query);
    for (i, page) in pages.iter().enumerate() {
        let reply = call(&svc, &get(&keys, &uri)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        assert_eq!(&reply.json(), page, "page {i} by its link");
        let mut rels = Vec::new();
        for (rel, url) in links(&reply) {
            assert!(url.starts_with("/admin/v1/users?"), "{url}");
            assert!(
                url.contains("limit=5") && url.contains("include_total=true"),
                "{url}"
            );
            let cursor = page[format!("{rel}_cursor")].as_str().unwrap();
            assert!(url.ends_with(&format!("cursor={cursor}")), "{url}");
            assert_eq!(url.matches("cursor=").count(), 1, "{url}");
            rels.push(rel);
        }
        let want: Vec<&str> = match i {
            0 => vec!["next"],
            4 => vec!["prev"],
            _ => vec!["next", "prev"],
        };
        assert_eq!(rels, want, "page {i}");
        match link(&reply, "next") {
            Some(next) => uri = next,
            None => assert_eq!(i, 4),
        }
    }

    // Back with prev_cursor, and by rel="prev": exactly the page before.
    for i in 1..pages.len() {
        let cursor = pages[i]["prev_cursor"].as_str().unwrap();
        let back = list(&svc, &keys, &format!("{query}&cursor={cursor}")).await;
        assert_eq!(back, pages[i - 1], "back from page {i}");
        let page_uri = format!(
            "{}&cursor={}",
            users_uri(query),
            pages[i - 1]["next_cursor"].as_str().unwrap()
        );
        let reply = call(&svc, &get(&keys, &page_uri)).await;
        assert_eq!(reply.json(), pages[i]);
        let prev = link(&reply, "prev").expect("a rel=prev link after page 0");
        let followed = call(&svc, &get(&keys, &prev)).await;
        assert_eq!(followed.status, StatusCode::OK, "{prev}: {}", followed.body);
        assert_eq!(followed.json(), pages[i - 1], "rel=prev of page {i}");
    }

    // Filters travel in the links: a prefix, every status, the identifier order.
    let query = format!(
        "q={}&status=all&limit=4&order=identifier.asc",
        url_encode("PAGE1")
    );
    let expected: Vec<String> = (10..20).map(|i| format!("page{i}@x.io")).collect();
    let mut uri = users_uri(&query);
    let mut seen = Vec::new();
    loop {
        let reply = call(&svc, &get(&keys, &uri)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        seen.extend(identifiers(&reply.json()));
        match link(&reply, "next") {
            Some(next) => uri = next,
            None => break,
        }
        assert!(seen.len() <= 10);
    }
    assert_eq!(seen, expected);
}

async fn list_cursors_belong_to_their_list(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let base = t("2026-04-01T00:00:00Z");
    for i in 0..12 {
        insert_at(
            &app,
            &keys,
            &format!("c{i:02}@x.io"),
            base + chrono::Duration::seconds(i),
        );
    }
    let expected = order_of(&app, &keys, "created_at.desc", is_active);
    let first = list(&svc, &keys, "limit=5").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    // Another page size is the same list.
    let page = list(&svc, &keys, &format!("limit=3&cursor={cursor}")).await;
    assert_eq!(ids(&page), expected[5..8]);
    let page = list(&svc, &keys, &format!("cursor={cursor}")).await;
    assert_eq!(ids(&page), expected[5..]);
    assert!(page["next_cursor"].is_null());
    // An empty cursor is none.
    assert_eq!(
        ids(&list(&svc, &keys, "limit=5&cursor=").await),
        expected[..5]
    );

    // `status=active` is the default written out: the same list.
    let page = list(
        &svc,
        &keys,
        &format!("limit=5&status=active&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&page), expected[5..10]);
    // Other filters or another order: refused, not another list paged.
    for other in [
        "status=all",
        "status=deleted",
        "status=disabled",
        "q=c",
        "order=created_at.asc",
        "order=identifier.asc",
        "created_after=2026-01-01T00:00:00Z",
        "created_before=2030-01-01T00:00:00Z",
    ] {
        let query = format!("limit=5&{other}&cursor={cursor}");
        let reply = call(&svc, &get(&keys, &users_uri(&query))).await;
        assert_eq!(
            reply.assert_problem(StatusCode::BAD_REQUEST),
            "CURSOR_MISMATCH",
            "{other}"
        );
    }
    // A cursor of an ordered list is refused on the default one.
    let by_name = list(&svc, &keys, "limit=5&order=identifier.asc").await;
    let name_cursor = by_name["next_cursor"].as_str().unwrap();
    let reply = call(
        &svc,
        &get(&keys, &users_uri(&format!("cursor={name_cursor}"))),
    )
    .await;
    assert_eq!(
        reply.assert_problem(StatusCode::BAD_REQUEST),
        "CURSOR_MISMATCH"
    );
    // The audit trail's cursors and the list's are not interchangeable.
    let audit = call(&svc, &get(&keys, "/admin/v1/audit?limit=1"))
        .await
        .json();
    let audit_cursor = audit["next_cursor"].as_str().expect("two events at least");
    let reply = call(
        &svc,
        &get(&keys, &users_uri(&format!("cursor={audit_cursor}"))),
    )
    .await;
    assert_eq!(
        reply.assert_problem(StatusCode::BAD_REQUEST),
        "CURSOR_MISMATCH"
    );
    let reply = call(
        &svc,
        &get(&keys, &format!("/admin/v1/audit?cursor={cursor}")),
    )
    .await;
    assert_eq!(
        reply.assert_problem(StatusCode::BAD_REQUEST),
        "CURSOR_MISMATCH"
    );

    // Malformed cursors.
    let wire: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&cursor).unwrap()).unwrap();
    let tampered = |field: &str, value: Value| {
        let mut wire = wire.clone();
        wire[field] = value;
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap())
    };
    let malformed = [
        "x".to_owned(),
        URL_SAFE_NO_PAD.encode(b"junk"),
        URL_SAFE_NO_PAD.encode(b"{}"),
        URL_SAFE_NO_PAD.encode(b"[1,2,3]"),
        format!("{cursor}!"),
        "A".repeat(3000),
        tampered("v", json!(2)),
        tampered("d", json!("z")),
        tampered("k", json!("soon")),
        tampered("i", json!("not-a-uuid")),
    ];
    for bad in malformed {
        let reply = call(
            &svc,
            &get(&keys, &users_uri(&format!("cursor={}", url_encode(&bad)))),
        )
        .await;
        assert_eq!(
            reply.assert_problem(StatusCode::BAD_REQUEST),
            "CURSOR_INVALID",
            "{bad:.60}"
        );
    }
}

async fn counts_equal_the_lists(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let base = t("2026-05-01T00:00:00Z");
    let mut made = Vec::new();
    for i in 0..30 {
        let name = if i % 3 == 0 { "alpha" } else { "beta" };
        made.push(insert_at(
            &app,
            &keys,
            &format!("{name}{i:02}@x.io"),
            base + chrono::Duration::hours(i),
        ));
    }
    insert_at(&app, &other, "alpha-theirs@x.io", base);
    for id in &made[..4] {
        assert_eq!(
            change(&svc, &keys, id, "delete").await.status,
            StatusCode::OK
        );
    }
    for id in &made[4..7] {
        assert_eq!(
            change(&svc, &keys, id, "disable").await.status,
            StatusCode::OK
        );
    }
    let after = url_encode("2026-05-01T10:00:00Z");
    let before = url_encode("2026-05-01T20:00:00Z");
    let filters = [
        String::new(),
        "status=all".to_owned(),
        "status=deleted".to_owned(),
        "status=disabled".to_owned(),
        "q=alpha".to_owned(),
        "q=ALPHA&status=all".to_owned(),
        format!("created_after={after}"),
        format!("created_before={before}&status=all"),
        format!("created_after={after}&created_before={before}&q=beta"),
        "q=gamma".to_owned(),
    ];
    let mut counts = Vec::new();
    for filter in &filters {
        let listed = list(&svc, &keys, &and(filter, "limit=500&include_total=true")).await;
        let n = listed["users"].as_array().unwrap().len() as i64;
        assert_eq!(count(&svc, &keys, filter).await, n, "{filter}");
        assert_eq!(listed["total"], n, "{filter}");
        let paged = walk_ids(&svc, &keys, &and(filter, "limit=7")).await;
        assert_eq!(paged.len() as i64, n, "{filter} by 7");
        counts.push(n);
    }
    assert_eq!(counts[..4], [23, 30, 4, 3]);
    // The count takes the filters only.
    for bad in ["limit=5", "order=identifier.asc", "cursor=x", "status=none"] {
        let reply = call(&svc, &get(&keys, &format!("/admin/v1/users/count?{bad}"))).await;
        reply.assert_problem(StatusCode::BAD_REQUEST);
    }
}

// ---------------------------------------------------------------------------------------------
// One user
// ---------------------------------------------------------------------------------------------

async fn get_shows_the_whole_user(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    // A v2 user: its login is the email of its profile; its accounts oldest first.
    let id = v2_signup(&svc, &keys, "Ada@Example.com", Some("kyc_1")).await;
    let first = open_account(&svc, &keys, &id).await;
    let second = open_account(&svc, &keys, &id).await;
    let reply = call(&svc, &get(&keys, &format!("/admin/v1/users/{id}"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        reply
            .headers
            .get("content-type")
            .is_some_and(|v| v == "application/json"),
        "{:?}",
        reply.headers
    );
    let user = reply.json();
    assert_user_shape(&user);
    assert_eq!(user["id"], id.as_str());
    assert_eq!(user["identifier"], "Ada@Example.com");
    assert_eq!(user["status"], "active");
    assert_eq!(user["disabled_at"], Value::Null);
    assert_eq!(user["deleted_at"], Value::Null);
    assert_eq!(user["enrolled"], json!([]));
    assert_eq!(user["default_method"], Value::Null);
    assert_eq!(
        user["profile"],
        json!({
            "email": "Ada@Example.com",
            "phone_number": "+15551234567",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "kyc_id": "kyc_1",
        })
    );
    assert_eq!(user["account_ids"], json!([first, second]));
    assert!(!reply.body.contains("argon2") && !reply.body.contains(PASSWORD));
    assert!(!reply.body.contains("password"), "{}", reply.body);
    // The times are the v0 API's, to the character.
    let v0 = call(
        &svc,
        &Req::get(format!("/api/v0/user/{id}")).key_id(&keys.id),
    )
    .await;
    assert_eq!(v0.status, StatusCode::OK);
    let v0 = v0.json();
    assert_eq!(user["created_at"], v0["created_at"]);
    assert_eq!(user["updated_at"], v0["updated_at"]);
    // An upper-case id is the same user.
    let upper = call(
        &svc,
        &get(&keys, &format!("/admin/v1/users/{}", id.to_uppercase())),
    )
    .await;
    assert_eq!(upper.status, StatusCode::OK);
    assert_eq!(upper.json(), user);

    // A v0 user: no profile.
    let v0 = call(
        &svc,
        &Req::post("/api/v0/user/create")
            .key_id(&keys.id)
            .json(&json!({"identifier": "plain@example.com"})),
    )
    .await
    .json();
    let v0_id = v0["ID"].as_str().unwrap();
    let user = call(&svc, &get(&keys, &format!("/admin/v1/users/{v0_id}")))
        .await
        .json();
    assert_user_shape(&user);
    assert_eq!(user["identifier"], "plain@example.com");
    assert_eq!(
        user["profile"],
        json!({"email": null, "phone_number": null, "first_name": null, "last_name": null, "kyc_id": null})
    );
    assert_eq!(user["account_ids"], json!([]));
    assert_eq!(user["created_at"], v0["created_at"]);

    // Unknown, not a UUID, another project's: the same 404.
    let theirs = v2_signup(&svc, &other, "theirs@example.com", None).await;
    let mut bodies = Vec::new();
    for missing in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
        theirs.clone(),
        NIL_ID.to_owned(),
    ] {
        let reply = call(&svc, &get(&keys, &format!("/admin/v1/users/{missing}"))).await;
        assert_eq!(
            reply.assert_problem(StatusCode::NOT_FOUND),
            "USER_NOT_FOUND",
            "{missing}"
        );
        bodies.push(reply.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // The other project sees its own.
    let reply = call(&svc, &get(&other, &format!("/admin/v1/users/{theirs}"))).await;
    assert_eq!(reply.status, StatusCode::OK);
}

async fn create_follows_the_identifier_rules(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let reply = call(
        &svc,
        &post(
            &keys,
            "/admin/v1/users",
            &json!({"identifier": "  Grace@Example.com "}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let user = reply.json();
    assert_user_shape(&user);
    assert_eq!(user["identifier"], "Grace@Example.com");
    assert_eq!(user["status"], "active");
    assert_eq!(user["created_at"], user["updated_at"]);
    assert_eq!(user["profile"]["email"], Value::Null);
    assert_eq!(user["account_ids"], json!([]));
    let id = user["id"].as_str().unwrap();
    let row = app.user_row(id);
    assert_eq!(row.identifier, "Grace@Example.com");
    assert_eq!(row.identifier_normalized, "grace@example.com");
    assert_eq!((row.deleted_at, row.disabled_at), (None, None));
    // v0 sees it.
    let v0 = call(
        &svc,
        &Req::get("/api/v0/user?identifier=grace%40example.com").key_id(&keys.id),
    )
    .await
    .json();
    assert_eq!(v0["ID"], id);
    // And the read is what was answered.
    let read = call(&svc, &get(&keys, &format!("/admin/v1/users/{id}")))
        .await
        .json();
    assert_eq!(read, user);

    // Taken, whatever the case or width; through v0 too.
    for variant in [
        "GRACE@example.com",
        "grace@example.com",
        "ｇｒａｃｅ@example.com",
    ] {
        let reply = call(
            &svc,
            &post(&keys, "/admin/v1/users", &json!({"identifier": variant})),
        )
        .await;
        assert_eq!(
            reply.assert_problem(StatusCode::CONFLICT),
            "IDENTIFIER_TAKEN",
            "{variant}"
        );
    }
    call(
        &svc,
        &Req::post("/api/v0/user/create")
            .key_id(&keys.id)
            .json(&json!({"identifier": "linus@example.com"})),
    )
    .await;
    let reply = call(
        &svc,
        &post(
            &keys,
            "/admin/v1/users",
            &json!({"identifier": "Linus@Example.com"}),
        ),
    )
    .await;
    assert_eq!(
        reply.assert_problem(StatusCode::CONFLICT),
        "IDENTIFIER_TAKEN"
    );

    // Bad identifiers and bodies.
    for body in [
        json!({"identifier": ""}),
        json!({"identifier": "   "}),
        json!({"identifier": "a\u{0}b"}),
        json!({"identifier": "x".repeat(255)}),
        json!({"identifier": 5}),
        json!({"identifier": null}),
        json!({}),
        json!({"identifier": "ok@example.com", "role": "admin"}),
        json!({"identifier": "ok@example.com", "status": "disabled"}),
        json!(["ok@example.com"]),
    ] {
        let reply = call(&svc, &post(&keys, "/admin/v1/users", &body)).await;
        let code = reply.assert_problem(StatusCode::BAD_REQUEST);
        assert!(code.starts_with("INVALID_"), "{body}: {code}");
    }
    for raw in [
        "{",
        "",
        "null",
        r#"{"identifier": "a@b.co", "identifier": "c@d.co"}"#,
    ] {
        let req = Req::post("/admin/v1/users")
            .keys(&keys)
            .body(Some("application/json"), raw);
        let reply = call(&svc, &req).await;
        reply.assert_problem(StatusCode::BAD_REQUEST);
    }
    // Not JSON: 415, as a problem.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let req = Req::post("/admin/v1/users")
            .keys(&keys)
            .body(content_type, r#"{"identifier": "ok@example.com"}"#);
        let reply = call(&svc, &req).await;
        assert_eq!(
            reply.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            "UNSUPPORTED_MEDIA_TYPE",
            "{content_type:?}"
        );
    }
    assert_eq!(
        app.count_users(&keys.id),
        2,
        "no refused create wrote a row"
    );
    // The 255-character edge: 254 is fine.
    create_user(&svc, &keys, &"y".repeat(254)).await;
}

async fn soft_delete_hides_the_user_from_v0_and_v2(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let kept = v2_signup(&svc, &keys, "keep@example.com", None).await;
    let id = v2_signup(&svc, &keys, "Del@Example.com", Some("kyc_d")).await;
    let account = open_account(&svc, &keys, &id).await;

    let deleted = change(&svc, &keys, &id, "delete").await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let user = deleted.json();
    assert_user_shape(&user);
    assert_eq!(user["status"], "deleted");
    let deleted_at = user["deleted_at"]
        .as_str()
        .expect("deleted_at set")
        .to_owned();
    DateTime::parse_from_rfc3339(&deleted_at).expect("RFC 3339");
    assert_eq!(user["disabled_at"], Value::Null);
    assert_eq!(user["account_ids"], json!([account]));
    assert_eq!(user["profile"]["kyc_id"], "kyc_d");

    // v0: the zero user by identifier, 404 by id, not listed.
    let by_identifier = call(
        &svc,
        &Req::get("/api/v0/user?identifier=del%40example.com").key_id(&keys.id),
    )
    .await;
    assert_eq!(by_identifier.status, StatusCode::OK);
    assert_eq!(by_identifier.json()["ID"], NIL_ID);
    let by_id = call(
        &svc,
        &Req::get(format!("/api/v0/user/{id}")).key_id(&keys.id),
    )
    .await;
    by_id.assert_error(StatusCode::NOT_FOUND);
    let listed = call(&svc, &Req::get("/api/v0/user/list?page=0").keys(&keys)).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["ID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, std::slice::from_ref(&kept));

    // v2: not found, for reading, patching and opening accounts.
    let reply = call(&svc, &get(&keys, &format!("/v2/users/{id}"))).await;
    assert_eq!(
        reply.assert_v2_error(StatusCode::NOT_FOUND),
        ["USER_NOT_FOUND"]
    );
    let patch = Req::patch(format!("/v2/users/{id}"))
        .keys(&keys)
        .json(&json!({"kyc_id": "kyc_x"}));
    let reply = call(&svc, &patch).await;
    assert_eq!(
        reply.assert_v2_error(StatusCode::NOT_FOUND),
        ["USER_NOT_FOUND"]
    );
    let reply = call(&svc, &open_account_req(&keys, &id, "savings")).await;
    assert_eq!(
        reply.assert_v2_error(StatusCode::NOT_FOUND),
        ["USER_NOT_FOUND"]
    );
    assert_eq!(app.count_accounts(), 1);
    assert_eq!(app.user_row(&id).kyc_id.as_deref(), Some("kyc_d"));

    // The admin API still reads it.
    let read = call(&svc, &get(&keys, &format!("/admin/v1/users/{id}"))).await;
    assert_eq!(read.json(), user);

    // Deleting again changes nothing and answers the same.
    let again = change(&svc, &keys, &id, "delete").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, deleted.body);

    // Its identifier is free: v0 may create it again; the deleted row stays.
    let recreated = call(
        &svc,
        &Req::post("/api/v0/user/create")
            .key_id(&keys.id)
            .json(&json!({"identifier": "del@example.com"})),
    )
    .await;
    assert_eq!(recreated.status, StatusCode::OK, "{}", recreated.body);
    let new_id = recreated.json()["ID"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    let row = app.user_row(&id);
    assert!(row.deleted_at.is_some());
    assert_eq!(row.identifier, "Del@Example.com");
    assert_eq!(app.user_rows(Some(&keys.id)).len(), 3);
    let found = call(
        &svc,
        &Req::get("/api/v0/user?identifier=del%40example.com").key_id(&keys.id),
    )
    .await;
    assert_eq!(found.json()["ID"], new_id.as_str());

    // Restoring now would make two live users of one identifier: 409, nothing changed.
    let reply = change(&svc, &keys, &id, "restore").await;
    assert_eq!(
        reply.assert_problem(StatusCode::CONFLICT),
        "IDENTIFIER_TAKEN"
    );
    assert!(app.user_row(&id).deleted_at.is_some());
    let restores = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["action"] == "user.restore")
            .count()
    };
    assert_eq!(
        restores(&audit_events(&svc, &keys).await),
        0,
        "a refused restore records nothing"
    );

    // Once the new user is purged, the old one comes back, with its account.
    let purged = change(&svc, &keys, &new_id, "purge").await;
    assert_eq!(purged.status, StatusCode::NO_CONTENT, "{}", purged.body);
    let restored = change(&svc, &keys, &id, "restore").await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    let user = restored.json();
    assert_user_shape(&user);
    assert_eq!(user["status"], "active");
    assert_eq!(user["deleted_at"], Value::Null);
    assert_eq!(user["account_ids"], json!([account]));
    assert_eq!(app.user_row(&id).deleted_at, None);
    assert_eq!(restores(&audit_events(&svc, &keys).await), 1);
    let found = call(
        &svc,
        &Req::get("/api/v0/user?identifier=del%40example.com").key_id(&keys.id),
    )
    .await;
    assert_eq!(found.json()["ID"], id.as_str());
    let v2 = call(&svc, &get(&keys, &format!("/v2/users/{id}"))).await;
    assert_eq!(v2.status, StatusCode::OK);
    assert_eq!(v2.json()["account_ids"], json!([account]));
    // Restoring a live user answers it as it is.
    let again = change(&svc, &keys, &id, "restore").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, restored.body);

    // Unknown users: 404 for each change.
    let missing = uuid::Uuid::new_v4().to_string();
    for what in ["delete", "restore", "disable", "enable", "purge"] {
        let reply = change(&svc, &keys, &missing, what).await;
        assert_eq!(
            reply.assert_problem(StatusCode::NOT_FOUND),
            "USER_NOT_FOUND",
            "{what}"
        );
    }
}

async fn purge_erases_the_user_and_its_accounts(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let id = v2_signup(&svc, &keys, "gone@example.com", Some("kyc_g")).await;
    open_account(&svc, &keys, &id).await;
    open_account(&svc, &keys, &id).await;
    let kept = v2_signup(&svc, &keys, "kept@example.com", Some("kyc_k")).await;
    let kept_account = open_account(&svc, &keys, &kept).await;

    // Only `true` or `false`; no other parameter.
    for bad in [
        "purge=maybe",
        "purge=1",
        "purge=TRUE",
        "purge=",
        "force=true",
    ] {
        let reply = call(&svc, &delete(&keys, &format!("/admin/v1/users/{id}?{bad}"))).await;
        let code = reply.assert_problem(StatusCode::BAD_REQUEST);
        assert!(code.starts_with("INVALID_"), "{bad}: {code}");
    }
    // Another project cannot purge it.
    let reply = call(
        &svc,
        &delete(&other, &format!("/admin/v1/users/{id}?purge=true")),
    )
    .await;
    assert_eq!(
        reply.assert_problem(StatusCode::NOT_FOUND),
        "USER_NOT_FOUND"
    );
    assert_eq!(app.user_row(&id).deleted_at, None, "nothing happened yet");

    let reply = change(&svc, &keys, &id, "purge").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(reply.body, "");
    let rows = app.user_rows(Some(&keys.id));
    assert_eq!(
        rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [kept.as_str()]
    );
    let accounts = app.account_rows(Some(&keys.id));
    assert_eq!(
        accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [kept_account.as_str()]
    );
    // Gone for every route.
    let reply = change(&svc, &keys, &id, "purge").await;
    assert_eq!(
        reply.assert_problem(StatusCode::NOT_FOUND),
        "USER_NOT_FOUND"
    );
    let reply = call(&svc, &get(&keys, &format!("/admin/v1/users/{id}"))).await;
    assert_eq!(
        reply.assert_problem(StatusCode::NOT_FOUND),
        "USER_NOT_FOUND"
    );
    let reply = change(&svc, &keys, &id, "restore").await;
    assert_eq!(
        reply.assert_problem(StatusCode::NOT_FOUND),
        "USER_NOT_FOUND"
    );
    assert_eq!(count(&svc, &keys, "status=all").await, 1);

    // `purge=false` is a soft delete; a soft-deleted user can be purged.
    let reply = call(
        &svc,
        &delete(&keys, &format!("/admin/v1/users/{kept}?purge=false")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["status"], "deleted");
    let reply = change(&svc, &keys, &kept, "purge").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(app.count_users(&keys.id), 0);
    assert_eq!(app.count_accounts(), 0);

    // A purged user's stored idempotent answer goes with it: a retry runs anew.
    let body = json!({"identifier": "retried@example.com"});
    let create = post(&keys, "/admin/v1/users", &body).header("Idempotency-Key", "purge-me");
    let first = call(&svc, &create).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let first_id = first.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(idempotency_rows(&app, &keys).len(), 1);
    assert_eq!(
        change(&svc, &keys, &first_id, "purge").await.status,
        StatusCode::NO_CONTENT
    );
    assert!(idempotency_rows(&app, &keys).is_empty());
    let second = call(&svc, &create).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(replayed(&second), None);
    assert_ne!(second.json()["id"], first_id.as_str());

    // So do the stored answers of its accounts' openings, which name accounts that are gone;
    // another user's stay.
    let owner = v2_signup(&svc, &keys, "owner@example.com", Some("kyc_o")).await;
    let other_owner = v2_signup(&svc, &keys, "other.owner@example.com", Some("kyc_p")).await;
    for (user, key) in [(&owner, "open-1"), (&other_owner, "open-2")] {
        let open = open_account_req(&keys, user, "savings").header("Idempotency-Key", key);
        assert_eq!(call(&svc, &open).await.status, StatusCode::CREATED);
    }
    let before = idempotency_rows(&app, &keys).len();
    assert_eq!(
        change(&svc, &keys, &owner, "purge").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(idempotency_rows(&app, &keys).len(), before - 1);
    let open = open_account_req(&keys, &owner, "savings").header("Idempotency-Key", "open-1");
    let retried = call(&svc, &open).await;
    assert_eq!(replayed(&retried), None, "{}", retried.body);
    assert_eq!(
        retried.assert_v2_error(StatusCode::NOT_FOUND),
        ["USER_NOT_FOUND"]
    );
}

async fn disabled_users_cannot_open_accounts(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let id = v2_signup(&svc, &keys, "Dis@Example.com", Some("kyc_d")).await;

    let disabled = change(&svc, &keys, &id, "disable").await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let user = disabled.json();
    assert_user_shape(&user);
    assert_eq!(user["status"], "disabled");
    let disabled_at = user["disabled_at"]
        .as_str()
        .expect("disabled_at set")
        .to_owned();
    DateTime::parse_from_rfc3339(&disabled_at).expect("RFC 3339");
    assert_eq!(user["deleted_at"], Value::Null);
    assert!(app.user_row(&id).disabled_at.is_some());

    // Disabling again changes nothing and answers the same.
    let again = change(&svc, &keys, &id, "disable").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["disabled_at"], disabled_at.as_str());
    assert_eq!(again.body, disabled.body);

    // v0 and v2 still see it; v2 refuses it accounts.
    let v0 = call(
        &svc,
        &Req::get("/api/v0/user?identifier=dis%40example.com").key_id(&keys.id),
    )
    .await;
    assert_eq!(v0.json()["ID"], id.as_str());
    let v0 = call(
        &svc,
        &Req::get(format!("/api/v0/user/{id}")).key_id(&keys.id),
    )
    .await;
    assert_eq!(v0.status, StatusCode::OK);
    let listed = call(&svc, &Req::get("/api/v0/user/list?page=0").keys(&keys)).await;
    assert_eq!(listed.json()[0]["ID"], id.as_str());
    let v2 = call(&svc, &get(&keys, &format!("/v2/users/{id}"))).await;
    assert_eq!(v2.status, StatusCode::OK);
    let reply = call(&svc, &open_account_req(&keys, &id, "checking")).await;
    assert_eq!(
        reply.assert_v2_error(StatusCode::CONFLICT),
        ["USER_DISABLED"]
    );
    assert_eq!(app.count_accounts(), 0);
    assert_eq!(
        identifiers(&list(&svc, &keys, "status=disabled").await),
        ["Dis@Example.com"]
    );
    assert_eq!(list(&svc, &keys, "").await["users"], json!([]));

    // Enabled: active again, and accounts open.
    let enabled = change(&svc, &keys, &id, "enable").await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    let user = enabled.json();
    assert_eq!(user["status"], "active");
    assert_eq!(user["disabled_at"], Value::Null);
    assert_eq!(app.user_row(&id).disabled_at, None);
    let again = change(&svc, &keys, &id, "enable").await;
    assert_eq!(again.body, enabled.body);
    let account = open_account(&svc, &keys, &id).await;
    let user = call(&svc, &get(&keys, &format!("/admin/v1/users/{id}")))
        .await
        .json();
    assert_eq!(user["account_ids"], json!([account]));

    // A deleted user is neither disabled nor enabled.
    assert_eq!(
        change(&svc, &keys, &id, "delete").await.status,
        StatusCode::OK
    );
    for what in ["disable", "enable"] {
        let reply = change(&svc, &keys, &id, what).await;
        assert_eq!(
            reply.assert_problem(StatusCode::CONFLICT),
            "USER_DELETED",
            "{what}"
        );
    }
    let row = app.user_row(&id);
    assert_eq!(row.disabled_at, None);
    assert!(row.deleted_at.is_some());
}

// ---------------------------------------------------------------------------------------------
// Audit trail and statistics
// ---------------------------------------------------------------------------------------------

async fn the_audit_trail_records_every_change(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    assert!(keys.secret.starts_with("cotterd_sk_"));
    let actor = format!("secret:{}", &keys.secret[..19]);

    // Users of every API, whose identifiers must never appear in the trail.
    let identifier = "Audited.Person@Example.com";
    v2_signup(&svc, &keys, "v2.person@example.com", Some("kyc_a")).await;
    call(
        &svc,
        &Req::post("/api/v0/user/create")
            .key_id(&keys.id)
            .json(&json!({"identifier": "v0.person@example.com"})),
    )
    .await;

    let create = post(
        &keys,
        "/admin/v1/users",
        &json!({ "identifier": identifier }),
    )
    .header("X-Request-Id", "req-create");
    let reply = call(&svc, &create).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let steps = [
        (
            "req-delete",
            delete(&keys, &format!("/admin/v1/users/{id}")),
            StatusCode::OK,
        ),
        (
            "req-restore",
            Req::post(format!("/admin/v1/users/{id}/restore")).keys(&keys),
            StatusCode::OK,
        ),
        (
            "req-disable",
            Req::post(format!("/admin/v1/users/{id}/disable")).keys(&keys),
            StatusCode::OK,
        ),
        (
            "req-enable",
            Req::post(format!("/admin/v1/users/{id}/enable")).keys(&keys),
            StatusCode::OK,
        ),
        // Changes that change nothing record nothing.
        (
            "req-enable-again",
            Req::post(format!("/admin/v1/users/{id}/enable")).keys(&keys),
            StatusCode::OK,
        ),
        (
            "req-purge",
            delete(&keys, &format!("/admin/v1/users/{id}?purge=true")),
            StatusCode::NO_CONTENT,
        ),
        // Refusals record nothing.
        (
            "req-restore-gone",
            Req::post(format!("/admin/v1/users/{id}/restore")).keys(&keys),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (request_id, req, status) in steps {
        let reply = call(&svc, &req.header("X-Request-Id", request_id)).await;
        assert_eq!(reply.status, status, "{request_id}: {}", reply.body);
        assert_eq!(
            reply.headers.get("x-request-id").unwrap(),
            request_id,
            "the id is echoed"
        );
    }

    let reply = call(&svc, &get(&keys, "/admin/v1/audit")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    for secret in [
        identifier,
        "audited.person@example.com",
        "v2.person",
        "v0.person",
        "Audited",
    ] {
        assert!(!reply.body.contains(secret), "{secret} in {}", reply.body);
    }
    assert!(!reply.body.contains(&keys.secret), "the secret itself");
    let page = reply.json();
    assert_eq!(sorted_keys(&page), ["events", "next_cursor", "prev_cursor"]);
    assert!(page["next_cursor"].is_null() && page["prev_cursor"].is_null());
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 8, "{page}");
    let expected = [
        ("user.purge", "req-purge", json!({"reason": "request"})),
        ("user.enable", "req-enable", json!({})),
        ("user.disable", "req-disable", json!({})),
        ("user.restore", "req-restore", json!({})),
        ("user.delete", "req-delete", json!({})),
        ("user.create", "req-create", json!({})),
    ];
    for (event, (action, request_id, detail)) in events.iter().zip(&expected) {
        assert_eq!(
            sorted_keys(event),
            [
                "action",
                "actor",
                "at",
                "detail",
                "id",
                "request_id",
                "user_id"
            ],
            "{event}"
        );
        assert_eq!(event["action"], *action, "{event}");
        assert_eq!(event["actor"], actor.as_str(), "{event}");
        assert_eq!(event["user_id"], id.as_str(), "{event}");
        assert_eq!(event["request_id"], *request_id, "{event}");
        assert_eq!(event["detail"], *detail, "{event}");
        uuid::Uuid::parse_str(event["id"].as_str().unwrap()).expect("event ids are UUIDs");
    }
    // The harness made the project with the CLI's functions: recorded too, oldest.
    let mut first: Vec<&str> = events[6..]
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    first.sort();
    assert_eq!(first, ["project.create", "secret.create"]);
    for event in &events[6..] {
        assert_eq!(event["actor"], "cli", "{event}");
        assert_eq!(event["user_id"], Value::Null, "{event}");
        assert_eq!(event["request_id"], Value::Null, "{event}");
        assert!(event["detail"].is_object(), "{event}");
    }
    let secret_event = events[6..]
        .iter()
        .find(|e| e["action"] == "secret.create")
        .unwrap();
    assert_eq!(secret_event["detail"]["secret_prefix"], &keys.secret[..19]);
    // Newest first.
    let times: Vec<DateTime<Utc>> = events
        .iter()
        .map(|e| {
            DateTime::parse_from_rfc3339(e["at"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Two a page: every event once, in the same order; and back again.
    let mut pages = Vec::new();
    let mut uri = "/admin/v1/audit?limit=2".to_owned();
    loop {
        let page = call(&svc, &get(&keys, &uri)).await.json();
        let next = page["next_cursor"].as_str().map(str::to_owned);
        pages.push(page);
        match next {
            Some(cursor) => uri = format!("/admin/v1/audit?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages.len() <= 4);
    }
    assert_eq!(pages.len(), 4);
    let paged: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["events"].as_array().unwrap())
        .collect();
    assert_eq!(paged, events.iter().collect::<Vec<_>>());
    for i in 1..pages.len() {
        let cursor = pages[i]["prev_cursor"]
            .as_str()
            .expect("prev_cursor after page 0");
        let back = call(
            &svc,
            &get(&keys, &format!("/admin/v1/audit?limit=2&cursor={cursor}")),
        )
        .await
        .json();
        assert_eq!(back["events"], pages[i - 1]["events"], "back from page {i}");
    }
    assert!(pages[0]["prev_cursor"].is_null());

    // Each project sees its own trail.
    let theirs = audit_events(&svc, &other).await;
    let mut actions: Vec<&str> = theirs
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort();
    assert_eq!(actions, ["project.create", "secret.create"]);

    for bad in ["limit=0", "limit=501", "limit=x", "cursor=x", "user_id=1"] {
        let reply = call(&svc, &get(&keys, &format!("/admin/v1/audit?{bad}"))).await;
        reply.assert_problem(StatusCode::BAD_REQUEST);
    }
}

async fn signups_count_each_utc_day(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let today = Utc::now().date_naive();
    let noon = |days_ago: u64| {
        (today - chrono::Days::new(days_ago))
            .and_hms_opt(12, 0, 0)
            .unwrap()
    };
    insert_at(&app, &keys, "yesterday@x.io", noon(1));
    insert_at(&app, &keys, "last-week@x.io", noon(5));
    insert_at(&app, &keys, "last-year@x.io", noon(400));
    create_user(&svc, &keys, "now1@x.io").await;
    create_user(&svc, &keys, "now2@x.io").await;
    // A user deleted since still signed up that day.
    let gone = create_user(&svc, &keys, "now3@x.io").await;
    let deleted = change(&svc, &keys, gone["id"].as_str().unwrap(), "delete").await;
    assert_eq!(deleted.status, StatusCode::OK);
    create_user(&svc, &other, "theirs@x.io").await;

    let reply = call(&svc, &get(&keys, "/admin/v1/stats/signups?days=3")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    if Utc::now().date_naive() != today {
        return; // The UTC day turned during the test: the counts are of two days.
    }
    let day = |days_ago: u64| {
        (today - chrono::Days::new(days_ago))
            .format("%Y-%m-%d")
            .to_string()
    };
    assert_eq!(
        reply.json(),
        json!([
            {"date": day(2), "count": 0},
            {"date": day(1), "count": 1},
            {"date": day(0), "count": 3},
        ])
    );

    let series = |days: &str| {
        let svc = &svc;
        let keys = &keys;
        let days = days.to_owned();
        async move {
            let uri = if days.is_empty() {
                "/admin/v1/stats/signups".to_owned()
            } else {
                format!("/admin/v1/stats/signups?days={days}")
            };
            let reply = call(svc, &get(keys, &uri)).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            reply.json().as_array().unwrap().clone()
        }
    };
    for (days, len, total) in [("", 30, 5), ("1", 1, 3), ("7", 7, 5), ("366", 366, 5)] {
        let entries = series(days).await;
        assert_eq!(entries.len(), len, "days={days}");
        let dates: Vec<NaiveDate> = entries
            .iter()
            .map(|e| NaiveDate::parse_from_str(e["date"].as_str().unwrap(), "%Y-%m-%d").unwrap())
            .collect();
        assert_eq!(*dates.last().unwrap(), today);
        assert!(
            dates
                .windows(2)
                .all(|w| w[1] == w[0] + chrono::Days::new(1)),
            "consecutive days, oldest first: {dates:?}"
        );
        let sum: i64 = entries.iter().map(|e| e["count"].as_i64().unwrap()).sum();
        assert_eq!(sum, total, "days={days}");
        assert!(entries.iter().all(|e| sorted_keys(e) == ["count", "date"]));
    }
    for bad in [
        "days=0",
        "days=367",
        "days=x",
        "days=-1",
        "days=",
        "from=2026-01-01",
    ] {
        let reply = call(&svc, &get(&keys, &format!("/admin/v1/stats/signups?{bad}"))).await;
        let code = reply.assert_problem(StatusCode::BAD_REQUEST);
        assert!(code.starts_with("INVALID_"), "{bad}: {code}");
        if bad.starts_with("days=") {
            assert_eq!(code, "INVALID_PARAMETER", "{bad}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Idempotency-Key
// ---------------------------------------------------------------------------------------------

/// One creating route: how to send a body to it, two distinct bodies, its success status and
/// its error shape.
struct Creator {
    name: &'static str,
    api: Api,
    ok: StatusCode,
    body: Value,
    other_body: Value,
}

impl Creator {
    fn req(&self, keys: &Keys, body: &Value) -> Req {
        match self.api {
            Api::V0 => Req::post("/api/v0/user/create").keys(keys).json(body),
            Api::V2 if self.name == "v2 accounts" => post(keys, "/v2/accounts", body),
            Api::V2 => post(keys, "/v2/users", body),
            Api::Admin => post(keys, "/admin/v1/users", body),
        }
    }
}

/// The four creating routes; `user_id` is a user with a `kyc_id`, for the account opening.
fn creators(user_id: &str, tag: &str) -> Vec<Creator> {
    vec![
        Creator {
            name: "v0 create",
            api: Api::V0,
            ok: StatusCode::OK,
            body: json!({"identifier": format!("v0-{tag}@x.io")}),
            other_body: json!({"identifier": format!("v0-other-{tag}@x.io")}),
        },
        Creator {
            name: "v2 users",
            api: Api::V2,
            ok: StatusCode::CREATED,
            body: v2_user(&format!("v2-{tag}@x.io"), PASSWORD, "+15551234567", "Ada"),
            other_body: v2_user(
                &format!("v2-other-{tag}@x.io"),
                PASSWORD,
                "+15551234567",
                "Ada",
            ),
        },
        Creator {
            name: "v2 accounts",
            api: Api::V2,
            ok: StatusCode::CREATED,
            body: json!({"user_id": user_id, "account_type": "checking"}),
            other_body: json!({"user_id": user_id, "account_type": "savings"}),
        },
        Creator {
            name: "admin create",
            api: Api::Admin,
            ok: StatusCode::CREATED,
            body: json!({"identifier": format!("admin-{tag}@x.io")}),
            other_body: json!({"identifier": format!("admin-other-{tag}@x.io")}),
        },
    ]
}

async fn retries_get_the_first_answer_on_every_create(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let owner = v2_signup(&svc, &keys, "owner@x.io", Some("kyc_o")).await;
    let routes = creators(&owner, "a");

    for route in &routes {
        let key = format!("key-{}", route.name.replace(' ', "-"));
        let before = Snapshot::take(&app, Some(&keys.id));
        let req = route
            .req(&keys, &route.body)
            .header("Idempotency-Key", &key);
        let first = call(&svc, &req).await;
        assert_eq!(first.status, route.ok, "{}: {}", route.name, first.body);
        assert_eq!(replayed(&first), None, "{}", route.name);
        let second = call(&svc, &req).await;
        assert_eq!(
            second.status, first.status,
            "{}: {}",
            route.name, second.body
        );
        assert_eq!(second.body, first.body, "{}", route.name);
        assert_eq!(replayed(&second), Some("true"), "{}", route.name);
        assert_eq!(
            second.headers.get("content-type"),
            first.headers.get("content-type"),
            "{}",
            route.name
        );
        let (added, changed) = Snapshot::take(&app, Some(&keys.id)).diff(&before);
        assert_eq!(added.len(), 1, "{}: one row for two requests", route.name);
        assert_eq!(changed, Vec::<String>::new(), "{}", route.name);
        let made = first.json();
        let made = made.get("id").or_else(|| made.get("ID")).unwrap();
        assert_eq!(added[0], made.as_str().unwrap(), "{}", route.name);

        // The same key with another body: 422 in the route's shape, nothing written.
        let other = route
            .req(&keys, &route.other_body)
            .header("Idempotency-Key", &key);
        let reply = call(&svc, &other).await;
        assert_refused(
            &reply,
            route.api,
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
        );
        // The first answer is still the key's.
        let third = call(&svc, &req).await;
        assert_eq!((third.status, &third.body), (first.status, &first.body));
        assert_eq!(replayed(&third), Some("true"));
        let (added, _) = Snapshot::take(&app, Some(&keys.id)).diff(&before);
        assert_eq!(added.len(), 1, "{}", route.name);
    }

    // The same key on another route (another path): 422 in that route's shape.
    for (i, route) in routes.iter().enumerate() {
        let key = format!("key-{}", route.name.replace(' ', "-"));
        let next = &routes[(i + 1) % routes.len()];
        let before = Snapshot::take(&app, Some(&keys.id));
        let reply = call(
            &svc,
            &next
                .req(&keys, &next.other_body)
                .header("Idempotency-Key", &key),
        )
        .await;
        assert_refused(
            &reply,
            next.api,
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
        );
        assert_eq!(
            Snapshot::take(&app, Some(&keys.id)),
            before,
            "{}",
            next.name
        );
    }
    // A query string is part of the request too.
    let reply = call(
        &svc,
        &Req::post("/api/v0/user/create?x=1")
            .keys(&keys)
            .json(&routes[0].body)
            .header("Idempotency-Key", "key-v0-create"),
    )
    .await;
    assert_refused(
        &reply,
        Api::V0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
    // Without a key nothing is replayed: the v0 retry is the conflict it always was.
    let reply = call(&svc, &routes[0].req(&keys, &routes[0].body)).await;
    assert_eq!(
        reply.assert_error(StatusCode::CONFLICT),
        "user already exist"
    );
}

/// The issue's scenario: a v0 create whose answer was lost, retried with its key, gets the user
/// it made, not `user already exist`.
async fn a_retried_v0_create_gets_its_user_back(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let create = Req::post("/api/v0/user/create")
        .key_id(&keys.id)
        .json(&json!({"identifier": "Lost.Answer@Example.com"}))
        .header("Idempotency-Key", "b1d4c0a2-retry");
    let first = call(&svc, &create).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let retry = call(&svc, &create).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.json()["identifier"], "Lost.Answer@Example.com");
    assert_eq!(replayed(&retry), Some("true"));
    assert_eq!(app.count_users(&keys.id), 1);
    let rows = idempotency_rows(&app, &keys);
    let id = first.json()["ID"].as_str().unwrap().to_owned();
    // Stored under the app's (key id only) scope.
    assert_eq!(rows, [("p:b1d4c0a2-retry".to_owned(), Some(200), Some(id))]);
}

async fn idempotency_keys_belong_to_their_project(backend: Backend) {
    let app = new_app(backend);
    let a = app.project("a");
    let b = app.project("b");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let body = json!({"identifier": "shared@x.io"});
    let mut made = Vec::new();
    for keys in [&a, &b] {
        let req = Req::post("/api/v0/user/create")
            .key_id(&keys.id)
            .json(&body)
            .header("Idempotency-Key", "same-key");
        let reply = call(&svc, &req).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(replayed(&reply), None);
        assert_eq!(reply.json()["issuer"], keys.id.as_str());
        made.push(reply.json()["ID"].as_str().unwrap().to_owned());
    }
    assert_ne!(made[0], made[1]);
    assert_eq!(app.count_users(&a.id), 1);
    assert_eq!(app.count_users(&b.id), 1);
    // The admin route too: same key, another body in each project, no 422.
    for (keys, identifier) in [(&a, "one@x.io"), (&b, "two@x.io")] {
        let req = post(keys, "/admin/v1/users", &json!({"identifier": identifier}))
            .header("Idempotency-Key", "admin-key");
        let reply = call(&svc, &req).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(replayed(&reply), None);
    }
    assert_eq!(app.count_users(&a.id), 2);
    assert_eq!(app.count_users(&b.id), 2);
}

async fn invalid_idempotency_keys_are_refused(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let owner = v2_signup(&svc, &keys, "owner@x.io", Some("kyc_o")).await;
    let before = Snapshot::take(&app, None);
    let long = "k".repeat(256);
    for route in creators(&owner, "bad") {
        for bad in ["", long.as_str(), "a b", "tab\there", "é"] {
            let req = route.req(&keys, &route.body).header("Idempotency-Key", bad);
            let reply = call(&svc, &req).await;
            assert_refused(
                &reply,
                route.api,
                StatusCode::BAD_REQUEST,
                "IDEMPOTENCY_KEY_INVALID",
            );
            if route.api == Api::V0 {
                let msg = reply.assert_error(StatusCode::BAD_REQUEST);
                assert!(msg.contains("Idempotency-Key"), "{msg}");
            }
        }
    }
    assert_eq!(
        Snapshot::take(&app, None),
        before,
        "no refused request wrote a row"
    );
    assert!(idempotency_rows(&app, &keys).is_empty());
    // 255 visible characters are a key.
    let route = &creators(&owner, "edge")[3];
    let reply = call(
        &svc,
        &route
            .req(&keys, &route.body)
            .header("Idempotency-Key", &"k".repeat(255)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

async fn first_conflicts_are_replayed_as_conflicts(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let taken = create_user(&svc, &keys, "taken@x.io").await;
    let taken_id = taken["id"].as_str().unwrap().to_owned();

    let routes = [
        (
            Api::V0,
            Req::post("/api/v0/user/create")
                .key_id(&keys.id)
                .json(&json!({"identifier": "TAKEN@x.io"})),
            "",
        ),
        (
            Api::V2,
            post(
                &keys,
                "/v2/users",
                &v2_user("Taken@X.io", PASSWORD, "+15551234567", "Ada"),
            ),
            "EMAIL_TAKEN",
        ),
        (
            Api::Admin,
            post(
                &keys,
                "/admin/v1/users",
                &json!({"identifier": "taken@X.IO"}),
            ),
            "IDENTIFIER_TAKEN",
        ),
    ];
    let mut firsts = Vec::new();
    for (i, (api, req, code)) in routes.iter().enumerate() {
        let req = req
            .clone()
            .header("Idempotency-Key", &format!("conflict-{i}"));
        let first = call(&svc, &req).await;
        assert_refused(&first, *api, StatusCode::CONFLICT, code);
        assert_eq!(replayed(&first), None);
        let again = call(&svc, &req).await;
        assert_refused(&again, *api, StatusCode::CONFLICT, code);
        assert_eq!(again.body, first.body);
        assert_eq!(replayed(&again), Some("true"));
        firsts.push((req, first.body));
    }
    // The answer is kept, not recomputed: with the identifier free again, the retry still
    // gets the first answer.
    assert_eq!(
        change(&svc, &keys, &taken_id, "purge").await.status,
        StatusCode::NO_CONTENT
    );
    for (req, body) in &firsts {
        let again = call(&svc, req).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
        assert_eq!(&again.body, body);
        assert_eq!(replayed(&again), Some("true"));
    }
    assert_eq!(app.count_users(&keys.id), 0);
    let rows = idempotency_rows(&app, &keys);
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|(_, status, resource)| *status == Some(409) && resource.is_none()));
}

async fn v2_retries_may_differ_in_the_password_only(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let body = v2_user("pw@x.io", PASSWORD, "+15551234567", "Ada");
    let mut retry_body = body.clone();
    retry_body["login"]["password"] = json!("another password entirely");
    let first = call(
        &svc,
        &post(&keys, "/v2/users", &body).header("Idempotency-Key", "pw-key"),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let retry = call(
        &svc,
        &post(&keys, "/v2/users", &retry_body).header("Idempotency-Key", "pw-key"),
    )
    .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    assert_eq!(retry.body, first.body);
    assert_eq!(replayed(&retry), Some("true"));
    assert_eq!(app.count_users(&keys.id), 1);
    // The stored password is the first request's.
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let hash = app.user_row(&id).password_hash.unwrap();
    assert!(cotterd::passwords::verify(PASSWORD, &hash));

    // What is stored for the key holds no password, and the fingerprint is not that of the
    // body with its password.
    let mut conn = app.state.pool.get().unwrap();
    let (fingerprint, stored): (Vec<u8>, Option<Vec<u8>>) = idempotency_keys::table
        .filter(idempotency_keys::issuer.eq(keys.id.as_str()))
        .filter(idempotency_keys::key.eq("s:pw-key"))
        .select((idempotency_keys::fingerprint, idempotency_keys::body))
        .first(conn.conn())
        .unwrap();
    drop(conn);
    let raw = serde_json::to_vec(&body).unwrap();
    assert_ne!(
        fingerprint,
        cotterd::idempotency::fingerprint("POST", "/v2/users", &raw)
    );
    let stored = String::from_utf8(stored.unwrap()).unwrap();
    assert!(
        !stored.contains(PASSWORD) && !stored.contains("password"),
        "{stored}"
    );

    // Any other field is another request.
    let mut other = body.clone();
    other["phone_number"] = json!("+15550000000");
    let reply = call(
        &svc,
        &post(&keys, "/v2/users", &other).header("Idempotency-Key", "pw-key"),
    )
    .await;
    assert_eq!(
        reply.assert_v2_error(StatusCode::UNPROCESSABLE_ENTITY),
        ["IDEMPOTENCY_KEY_REUSED"]
    );
}

async fn a_running_key_answers_409_with_retry_after(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let now = cotterd::time::now();
    let admin_body = json!({"identifier": "running@x.io"});
    let admin_raw = serde_json::to_vec(&admin_body).unwrap();
    let v0_body = json!({"identifier": "running-v0@x.io"});
    let v0_raw = serde_json::to_vec(&v0_body).unwrap();
    // Claims whose requests still run (another instance, say).
    store_claim(
        &app,
        &keys,
        "running-admin",
        &cotterd::idempotency::fingerprint("POST", "/admin/v1/users", &admin_raw),
        now,
        None,
    );
    store_claim(
        &app,
        &keys,
        "running-v0",
        &cotterd::idempotency::fingerprint("POST", "/api/v0/user/create", &v0_raw),
        now,
        None,
    );

    let admin_req =
        post(&keys, "/admin/v1/users", &admin_body).header("Idempotency-Key", "running-admin");
    let reply = call(&svc, &admin_req).await;
    assert_eq!(
        reply.assert_problem(StatusCode::CONFLICT),
        "IDEMPOTENCY_KEY_IN_USE"
    );
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    let v0_req = Req::post("/api/v0/user/create")
        .keys(&keys)
        .json(&v0_body)
        .header("Idempotency-Key", "running-v0");
    let reply = call(&svc, &v0_req).await;
    reply.assert_error(StatusCode::CONFLICT);
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    // Another request with the key is still another request.
    let reply = call(
        &svc,
        &post(
            &keys,
            "/admin/v1/users",
            &json!({"identifier": "else@x.io"}),
        )
        .header("Idempotency-Key", "running-admin"),
    )
    .await;
    assert_eq!(
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY),
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_eq!(app.count_users(&keys.id), 0);
    // The claims are untouched.
    let rows = idempotency_rows(&app, &keys);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|(_, status, _)| status.is_none()));

    // A claim older than its lease was left by a server that died: the retry runs.
    let lease = chrono::Duration::from_std(cotterd::idempotency::LEASE).unwrap();
    let lapsed_body = json!({"identifier": "lapsed@x.io"});
    store_claim(
        &app,
        &keys,
        "lapsed",
        &cotterd::idempotency::fingerprint(
            "POST",
            "/admin/v1/users",
            &serde_json::to_vec(&lapsed_body).unwrap(),
        ),
        now - lease - chrono::Duration::seconds(5),
        None,
    );
    let lapsed = post(&keys, "/admin/v1/users", &lapsed_body).header("Idempotency-Key", "lapsed");
    let reply = call(&svc, &lapsed).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(replayed(&reply), None);
    let again = call(&svc, &lapsed).await;
    assert_eq!((again.status, &again.body), (reply.status, &reply.body));
    assert_eq!(replayed(&again), Some("true"));

    // An answer older than IDEMPOTENCY_TTL_HOURS is forgotten: the key runs anew, even for
    // another body.
    let ttl = chrono::Duration::hours(i64::from(app.state.settings.idempotency_ttl_hours));
    store_claim(
        &app,
        &keys,
        "expired",
        &cotterd::idempotency::fingerprint("POST", "/admin/v1/users", b"{}"),
        now - ttl - chrono::Duration::minutes(1),
        Some((201, "application/json", &br#"{"id":"old"}"#[..])),
    );
    let reply = call(
        &svc,
        &post(
            &keys,
            "/admin/v1/users",
            &json!({"identifier": "fresh@x.io"}),
        )
        .header("Idempotency-Key", "expired"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(replayed(&reply), None);
    assert_eq!(reply.json()["identifier"], "fresh@x.io");
    assert_eq!(app.count_users(&keys.id), 2);
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

async fn retention_purges_long_deleted_users(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    // A user created with a key, given accounts, then deleted.
    let created = call(
        &svc,
        &post(
            &keys,
            "/admin/v1/users",
            &json!({"identifier": "gone@x.io"}),
        )
        .header("Idempotency-Key", "gone-key"),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let gone = created.json()["id"].as_str().unwrap().to_owned();
    set_kyc(&svc, &keys, &gone, "kyc_g").await;
    open_account(&svc, &keys, &gone).await;
    open_account(&svc, &keys, &gone).await;
    // A live user with an account, and a live user created long ago.
    let kept = v2_signup(&svc, &keys, "kept@x.io", Some("kyc_k")).await;
    let kept_account = open_account(&svc, &keys, &kept).await;
    let ancient = insert_at(
        &app,
        &keys,
        "ancient@x.io",
        cotterd::time::now() - chrono::Duration::days(4000),
    );
    // A stored answer of a live user.
    let fresh = call(
        &svc,
        &post(
            &keys,
            "/admin/v1/users",
            &json!({"identifier": "fresh@x.io"}),
        )
        .header("Idempotency-Key", "fresh-key"),
    )
    .await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    let fresh_id = fresh.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        change(&svc, &keys, &gone, "delete").await.status,
        StatusCode::OK
    );
    let now = cotterd::time::now();
    let day = chrono::Duration::days(1);
    let long_ttl = 24 * 10_000;

    let round = |at: NaiveDateTime, retention: u32, ttl_hours: u32| {
        let (done, failed) = crate::common::upkeep(
            &app.state.pool,
            at,
            janitor::Keep {
                deleted_user_days: retention,
                idempotency_hours: ttl_hours,
                event_skew_secs: 300,
                event_days: 90,
                console: Default::default(),
            },
        );
        assert!(failed.is_none(), "{failed:?}");
        done
    };
    // Retention 0: never, however old.
    assert_eq!(round(now + day * 1000, 0, long_ttl), Round::default());
    // Not yet 30 days.
    assert_eq!(round(now + day * 29, 30, long_ttl), Round::default());
    assert!(app.user_row(&gone).deleted_at.is_some());
    assert_eq!(app.count_accounts(), 3);

    // Past 30 days: purged with its accounts and stored answer; live users stay.
    assert_eq!(
        round(now + day * 31, 30, long_ttl),
        Round {
            users_purged: 1,
            answers_expired: 0,
            answers_orphaned: 0,
            signatures_forgotten: 0,
            events_expired: 0,
            sessions_forgotten: 0,
        }
    );
    let mut left: Vec<String> = app
        .user_rows(Some(&keys.id))
        .into_iter()
        .map(|r| r.id)
        .collect();
    left.sort();
    let mut want = vec![kept.clone(), ancient.clone(), fresh_id.clone()];
    want.sort();
    assert_eq!(left, want);
    let accounts: Vec<String> = app
        .account_rows(Some(&keys.id))
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(accounts, [kept_account]);
    let keys_left: Vec<String> = idempotency_rows(&app, &keys)
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
    assert_eq!(keys_left, ["s:fresh-key"]);
    // Recorded, by the retention.
    let events = audit_events(&svc, &keys).await;
    let purge = &events[0];
    assert_eq!(purge["action"], "user.purge", "{purge}");
    assert_eq!(purge["actor"], "retention");
    assert_eq!(purge["user_id"], gone.as_str());
    assert_eq!(purge["request_id"], Value::Null);
    assert_eq!(purge["detail"], json!({"reason": "retention"}));
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "user.purge")
            .count(),
        1
    );
    // Again: nothing more.
    assert_eq!(round(now + day * 400, 30, long_ttl), Round::default());
    let reply = call(&svc, &get(&keys, &format!("/admin/v1/users/{gone}"))).await;
    assert_eq!(
        reply.assert_problem(StatusCode::NOT_FOUND),
        "USER_NOT_FOUND"
    );

    // Stored answers older than the TTL are removed; their keys may be used again.
    assert_eq!(
        round(now + chrono::Duration::hours(23), 30, 24),
        Round::default()
    );
    assert_eq!(
        round(now + chrono::Duration::hours(25), 30, 24),
        Round {
            users_purged: 0,
            answers_expired: 1,
            answers_orphaned: 0,
            signatures_forgotten: 0,
            events_expired: 0,
            sessions_forgotten: 0,
        }
    );
    assert!(idempotency_rows(&app, &keys).is_empty());
    assert_eq!(app.user_rows(Some(&keys.id)).len(), 3);
    let reply = call(
        &svc,
        &post(
            &keys,
            "/admin/v1/users",
            &json!({"identifier": "reused@x.io"}),
        )
        .header("Idempotency-Key", "fresh-key"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(replayed(&reply), None);
}

/// Ten retries with one key at the same moment: one runs, every other is told to wait
/// (409 `IDEMPOTENCY_KEY_IN_USE`, `Retry-After: 1`) or, once it ended, gets its answer.
async fn concurrent_retries_with_one_key_run_once(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.rate_limit_admin = 0;
        s.db_pool_size = 8;
    });
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let req = post(
        &keys,
        "/admin/v1/users",
        &json!({"identifier": "race@x.io"}),
    )
    .header("Idempotency-Key", "race");
    let replies = futures_util::future::join_all((0..10).map(|_| call(&svc, &req))).await;
    let ran: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED && replayed(r).is_none())
        .collect();
    assert_eq!(ran.len(), 1, "{replies:?}");
    for reply in &replies {
        match (reply.status, replayed(reply)) {
            (StatusCode::CREATED, None) => {}
            (StatusCode::CREATED, Some("true")) => assert_eq!(reply.body, ran[0].body),
            (StatusCode::CONFLICT, None) => {
                assert_eq!(
                    reply.assert_problem(StatusCode::CONFLICT),
                    "IDEMPOTENCY_KEY_IN_USE"
                );
                assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
            }
            other => panic!("unexpected {other:?}: {}", reply.body),
        }
    }
    assert_eq!(app.count_users(&keys.id), 1);
    // Once it ended, a retry gets its answer.
    let again = call(&svc, &req).await;
    assert_eq!(
        (again.status, &again.body),
        (StatusCode::CREATED, &ran[0].body)
    );
    assert_eq!(replayed(&again), Some("true"));
}

/// Time bounds finer than a microsecond (the stored precision): `created_after` is "at or
/// after", `created_before` "strictly before", to the nanosecond sent.
///
/// Fails at the time of writing: `query::instant` truncates the bound to the microsecond, so
/// a user created at `12:00:00.500000` is "at or after" `12:00:00.5000001Z` and not "before"
/// it. Both bounds should be rounded up to the next microsecond instead.
async fn time_bounds_finer_than_a_microsecond(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    insert_at(&app, &keys, "half", t("2026-01-02T12:00:00.5Z"));
    let cases: [(&str, &[&str]); 4] = [
        ("created_after=2026-01-02T12:00:00.4999999Z", &["half"]),
        ("created_before=2026-01-02T12:00:00.4999999Z", &[]),
        ("created_after=2026-01-02T12:00:00.5000001Z", &[]),
        ("created_before=2026-01-02T12:00:00.5000001Z", &["half"]),
    ];
    for (query, expected) in cases {
        let page = list(&svc, &keys, query).await;
        assert_eq!(identifiers(&page), expected, "{query}");
        assert_eq!(
            count(&svc, &keys, query).await,
            expected.len() as i64,
            "{query}"
        );
    }
}

/// A `Link` URL, followed, gives the page it names, however the request spelled its
/// parameters.
///
/// Fails at the time of writing: `users::link` drops the `cursor` pair by its raw name, so a
/// request that sent it percent-encoded (`%63ursor=…`, the same parameter once decoded) gets
/// links with two cursors, which answer 400 `duplicate field cursor`.
async fn links_replace_a_percent_encoded_cursor(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    for i in 0..6 {
        insert_at(
            &app,
            &keys,
            &format!("l{i}"),
            t("2026-01-01T00:00:00Z") + chrono::Duration::seconds(i),
        );
    }
    let pages = walk(&svc, &keys, "limit=2").await;
    assert_eq!(pages.len(), 3);
    let cursor = pages[0]["next_cursor"].as_str().unwrap();
    let reply = call(
        &svc,
        &get(&keys, &format!("/admin/v1/users?limit=2&%63ursor={cursor}")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json(), pages[1]);
    for (rel, want) in [("next", &pages[2]), ("prev", &pages[0])] {
        let url = link(&reply, rel).expect(rel);
        let followed = call(&svc, &get(&keys, &url)).await;
        assert_eq!(followed.status, StatusCode::OK, "{url}: {}", followed.body);
        assert_eq!(&followed.json(), want, "rel={rel}");
    }
}

/// A stored answer whose user went away without it (the moment between a create and a purge
/// of what it made) is forgotten by the next upkeep round; an app's key and a server's key are
/// apart, and a refused body frees its key for the corrected retry.
async fn stored_answers_follow_what_they_name(backend: Backend) {
    let app = new_app(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let body = json!({"identifier": "orphan@x.io"});
    let create = post(&keys, "/admin/v1/users", &body).header("Idempotency-Key", "k1");
    let made = call(&svc, &create).await;
    assert_eq!(made.status, StatusCode::CREATED);
    let id = made.json()["id"].as_str().unwrap().to_owned();
    // The user goes by a path that does not know of the answer.
    {
        let mut conn = app.state.pool.get().unwrap();
        diesel::delete(cotterd::db::schema::users::table.find(&id))
            .execute(conn.conn())
            .unwrap();
    }
    assert_eq!(idempotency_rows(&app, &keys).len(), 1);
    let (done, failed) = crate::common::upkeep(
        &app.state.pool,
        cotterd::time::now(),
        janitor::Keep::of(&app.state.settings),
    );
    assert!(failed.is_none(), "{failed:?}");
    assert_eq!(done.answers_orphaned, 1);
    assert!(idempotency_rows(&app, &keys).is_empty());

    // The same key from an app (key id only) and from a server (both keys): two requests.
    let v0 = |key: &str, with_secret: bool| {
        let req = Req::post("/api/v0/user/create").header("Idempotency-Key", key);
        let req = if with_secret {
            req.keys(&keys)
        } else {
            req.key_id(&keys.id)
        };
        req.json(&json!({"identifier": format!("{key}-{with_secret}@x.io")}))
    };
    assert_eq!(
        call(&svc, &v0("shared", false)).await.status,
        StatusCode::OK
    );
    let server = call(&svc, &v0("shared", true)).await;
    assert_eq!(server.status, StatusCode::OK, "{}", server.body);
    assert_eq!(replayed(&server), None);

    // A refused body keeps nothing: the corrected request with the same key runs.
    let bad = post(&keys, "/admin/v1/users", &json!({"identifier": ""}))
        .header("Idempotency-Key", "fix-me");
    assert_eq!(
        call(&svc, &bad)
            .await
            .assert_problem(StatusCode::BAD_REQUEST),
        "INVALID_REQUEST"
    );
    let fixed = post(
        &keys,
        "/admin/v1/users",
        &json!({"identifier": "fixed@x.io"}),
    )
    .header("Idempotency-Key", "fix-me");
    let reply = call(&svc, &fixed).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

both_backends!(
    stored_answers_follow_what_they_name,
    list_defaults_and_limits,
    list_orders_are_exact,
    list_prefix_search_is_literal_and_normalised,
    list_status_filters,
    list_time_filters,
    list_pages_follow_cursors_and_links,
    list_cursors_belong_to_their_list,
    counts_equal_the_lists,
    get_shows_the_whole_user,
    create_follows_the_identifier_rules,
    soft_delete_hides_the_user_from_v0_and_v2,
    purge_erases_the_user_and_its_accounts,
    disabled_users_cannot_open_accounts,
    the_audit_trail_records_every_change,
    signups_count_each_utc_day,
    retries_get_the_first_answer_on_every_create,
    a_retried_v0_create_gets_its_user_back,
    idempotency_keys_belong_to_their_project,
    invalid_idempotency_keys_are_refused,
    first_conflicts_are_replayed_as_conflicts,
    v2_retries_may_differ_in_the_password_only,
    a_running_key_answers_409_with_retry_after,
    retention_purges_long_deleted_users,
    concurrent_retries_with_one_key_run_once,
    time_bounds_finer_than_a_microsecond,
    links_replace_a_percent_encoded_cursor,
);

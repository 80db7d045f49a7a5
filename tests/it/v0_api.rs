//! Cotter's v0 User API through the real app, on SQLite and on PostgreSQL.

use cotterd::audit::Context;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test::{init_service, TestRequest};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::join_all;
use serde_json::Value;

use crate::common::{
    create_req, get_by_identifier_req, list_req, send, url_encode, Backend, Keys, TestApp,
};
use cotterd::users::{self, Identifier};

const ZERO_USER: &str = r#"{"ID":"00000000-0000-0000-0000-000000000000","client_user_id":"00000000-0000-0000-0000-000000000000","created_at":"0001-01-01T00:00:00Z","default_method":null,"deleted_at":"0001-01-01T00:00:00Z","enrolled":[],"identifier":"","identifiers":null,"issuer":"","updated_at":"0001-01-01T00:00:00Z"}"#;

const USER_KEYS: [&str; 10] = [
    "ID",
    "client_user_id",
    "created_at",
    "default_method",
    "deleted_at",
    "enrolled",
    "identifier",
    "identifiers",
    "issuer",
    "updated_at",
];

/// Asserts the keys of a User object appear in Cotter's order in the raw body.
fn assert_key_order(raw: &str) {
    let mut last = 0;
    for key in USER_KEYS {
        let at = raw[last..]
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} missing or out of order in {raw}"));
        last += at + key.len();
    }
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// Inserts a user directly with a chosen creation time.
fn insert_user_at(
    app: &TestApp,
    keys: &Keys,
    identifier: &str,
    at: chrono::NaiveDateTime,
) -> users::User {
    let project = app.project_id(keys);
    let user = users::new_user(&project, Identifier::parse(identifier).unwrap(), at);
    let mut conn = app.state.pool.get().unwrap();
    users::insert(conn.conn(), user).unwrap()
}

async fn create_returns_a_cotter_user(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let reply = send(&svc, create_req(&keys.id, "  Hello@Gmail.com ")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_key_order(&reply.body);
    let user = reply.json();
    assert_eq!(user.as_object().unwrap().len(), 10);
    let id = user["ID"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().to_string(), id);
    assert_eq!(user["client_user_id"], user["ID"]);
    assert_eq!(user["issuer"], keys.id.as_str());
    assert_eq!(user["identifier"], "Hello@Gmail.com");
    assert_eq!(user["identifiers"], Value::Null);
    assert_eq!(user["default_method"], Value::Null);
    assert_eq!(user["enrolled"], serde_json::json!([]));
    assert_eq!(user["deleted_at"], "0001-01-01T00:00:00Z");
    let created = user["created_at"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && !created.contains(".0Z"),
        "{created}"
    );
    assert_eq!(user["updated_at"], user["created_at"]);
    let age = Utc::now() - parse_time(created);
    assert!(age.num_seconds().abs() < 60, "created_at is now: {created}");

    // What was answered is what is stored.
    let again = send(&svc, get_by_identifier_req(&keys.id, "hello@gmail.com")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), user);
    assert_eq!(app.count_users(&keys.id), 1);
}

async fn duplicate_identifiers_conflict_after_normalisation(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    assert_eq!(
        send(&svc, create_req(&keys.id, "Hello@Gmail.com"))
            .await
            .status,
        StatusCode::OK
    );
    for variant in [
        "Hello@Gmail.com",
        "hello@gmail.com",
        " HELLO@GMAIL.COM ",
        "ｈｅｌｌｏ@ｇｍａｉｌ.ｃｏｍ",
    ] {
        let reply = send(&svc, create_req(&keys.id, variant)).await;
        assert_eq!(
            reply.assert_error(StatusCode::CONFLICT),
            "user already exist",
            "{variant}"
        );
    }
    assert_eq!(app.count_users(&keys.id), 1);
    // Lookups normalise the same way.
    let found = send(
        &svc,
        get_by_identifier_req(&keys.id, "ＨＥＬＬＯ@gmail.com"),
    )
    .await;
    assert_eq!(found.json()["identifier"], "Hello@Gmail.com");
}

async fn concurrent_duplicate_creates_leave_one_row(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| s.db_pool_size = 8);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let variants = [
        "race@example.com",
        "RACE@example.com",
        "Race@Example.com",
        " race@example.com",
    ];
    let requests = (0..24).map(|i| send(&svc, create_req(&keys.id, variants[i % variants.len()])));
    let replies = join_all(requests).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let conflicts = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, &r.body))
            .collect::<Vec<_>>()
    );
    assert_eq!(conflicts, 23);
    for reply in replies.iter().filter(|r| r.status == StatusCode::CONFLICT) {
        assert_eq!(
            reply.assert_error(StatusCode::CONFLICT),
            "user already exist"
        );
    }
    assert_eq!(app.count_users(&keys.id), 1);
}

async fn get_by_identifier_answers_zero_user_when_absent(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let reply = send(&svc, get_by_identifier_req(&keys.id, "nobody@example.com")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, ZERO_USER);

    let missing = TestRequest::get()
        .uri("/api/v0/user")
        .insert_header(("API_KEY_ID", keys.id.as_str()));
    let msg = send(&svc, missing)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    assert!(msg.contains("identifier"), "{msg}");
    let other_param = TestRequest::get()
        .uri("/api/v0/user?email=a@b.c")
        .insert_header(("API_KEY_ID", keys.id.as_str()));
    send(&svc, other_param)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    for bad in ["", "   ", "a\u{0}b", "a\u{1b}b", &"x".repeat(255)] {
        let reply = send(&svc, get_by_identifier_req(&keys.id, bad)).await;
        reply.assert_error(StatusCode::BAD_REQUEST);
    }
    // SQL and LIKE metacharacters are plain characters.
    for odd in ["%", "_", "' OR '1'='1", "a%@b.c"] {
        let reply = send(&svc, get_by_identifier_req(&keys.id, odd)).await;
        assert_eq!(reply.body, ZERO_USER, "{odd}");
    }
    let created = send(&svc, create_req(&keys.id, "50%_off@shop.example"))
        .await
        .json();
    let found = send(
        &svc,
        get_by_identifier_req(&keys.id, "50%_off@shop.example"),
    )
    .await;
    assert_eq!(found.json(), created);
    let not_like = send(&svc, get_by_identifier_req(&keys.id, "50%")).await;
    assert_eq!(not_like.body, ZERO_USER);
}

async fn get_by_id_finds_only_the_projects_user(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = send(&svc, create_req(&keys.id, "id@example.com"))
        .await
        .json();
    let id = user["ID"].as_str().unwrap();

    let get = |path: String| {
        TestRequest::get()
            .uri(&path)
            .insert_header(("API_KEY_ID", keys.id.as_str()))
    };
    let found = send(&svc, get(format!("/api/v0/user/{id}"))).await;
    assert_eq!(found.status, StatusCode::OK);
    assert_key_order(&found.body);
    assert_eq!(found.json(), user);
    let upper = send(&svc, get(format!("/api/v0/user/{}", id.to_uppercase()))).await;
    assert_eq!(upper.json(), user);

    let absent = uuid::Uuid::new_v4();
    assert_eq!(
        send(&svc, get(format!("/api/v0/user/{absent}")))
            .await
            .assert_error(StatusCode::NOT_FOUND),
        "user not found"
    );
    for junk in [
        "not-a-uuid",
        "%27%20OR%201%3D1",
        "00000000-0000-0000-0000-000000000000",
    ] {
        send(&svc, get(format!("/api/v0/user/{junk}")))
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
}

async fn list_pages_120_users_newest_first(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let mut created = Vec::new();
    for i in 0..120 {
        let reply = send(
            &svc,
            create_req(&keys.id, &format!("user{i:03}@example.com")),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        created.push(reply.json());
    }
    created.sort_by(|a, b| {
        let key = |u: &Value| {
            (
                parse_time(u["created_at"].as_str().unwrap()),
                u["ID"].as_str().unwrap().to_owned(),
            )
        };
        key(b).cmp(&key(a))
    });

    let mut listed = Vec::new();
    for (page, size) in [(0, 50), (1, 50), (2, 20), (3, 0)] {
        let reply = send(&svc, list_req(&keys, &page.to_string())).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let items = reply.json().as_array().unwrap().clone();
        assert_eq!(items.len(), size, "page {page}");
        if size > 0 {
            assert_key_order(&reply.body);
        } else {
            assert_eq!(reply.body, "[]");
        }
        listed.extend(items);
    }
    assert_eq!(listed, created);

    // No page parameter is page 0.
    let no_page = TestRequest::get()
        .uri("/api/v0/user/list")
        .insert_header(("API_KEY_ID", keys.id.as_str()))
        .insert_header(("API_SECRET_KEY", keys.secret.as_str()));
    assert_eq!(
        send(&svc, no_page).await.json().as_array().unwrap()[..],
        created[..50]
    );
    let far = send(&svc, list_req(&keys, "1000000")).await;
    assert_eq!(far.body, "[]");
}

async fn list_orders_ties_on_created_at_by_id(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let at = NaiveDate::from_ymd_opt(2024, 5, 6)
        .unwrap()
        .and_hms_micro_opt(7, 8, 9, 123_456)
        .unwrap();
    let mut ids: Vec<String> = (0..7)
        .map(|i| insert_user_at(&app, &keys, &format!("tie{i}@example.com"), at).id)
        .collect();
    let newer = insert_user_at(
        &app,
        &keys,
        "newer@example.com",
        at + chrono::Duration::microseconds(1),
    );
    let older = insert_user_at(
        &app,
        &keys,
        "older@example.com",
        at - chrono::Duration::microseconds(1),
    );
    ids.sort();
    ids.reverse();
    let mut expected = vec![newer.id];
    expected.extend(ids);
    expected.push(older.id);

    let svc = init_service(cotterd::app(app.state.clone())).await;
    let listed: Vec<String> = send(&svc, list_req(&keys, "0"))
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["ID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, expected);
}

async fn list_rejects_bad_pages(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    for bad in [
        "-1",
        "abc",
        "1.5",
        "1e3",
        "",
        "1000001",
        "99999999999999999999999999",
        "%00",
    ] {
        let msg = send(&svc, list_req(&keys, bad))
            .await
            .assert_error(StatusCode::BAD_REQUEST);
        assert!(msg.contains("page"), "{bad}: {msg}");
    }
}

async fn timestamps_are_exact_strings(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let day = NaiveDate::from_ymd_opt(2020, 8, 1).unwrap();
    for (micros, expected) in [
        (480_314, "2020-08-01T05:55:57.480314Z"),
        (480_300, "2020-08-01T05:55:57.4803Z"),
        (500_000, "2020-08-01T05:55:57.5Z"),
        (7, "2020-08-01T05:55:57.000007Z"),
        (0, "2020-08-01T05:55:57Z"),
    ] {
        let at = day.and_hms_micro_opt(5, 55, 57, micros).unwrap();
        let user = insert_user_at(&app, &keys, &format!("t{micros}@example.com"), at);
        let reply = send(
            &svc,
            TestRequest::get()
                .uri(&format!("/api/v0/user/{}", user.id))
                .insert_header(("API_KEY_ID", keys.id.as_str())),
        )
        .await
        .json();
        assert_eq!(reply["created_at"], expected);
        assert_eq!(reply["updated_at"], expected);
        assert_eq!(reply["deleted_at"], "0001-01-01T00:00:00Z");
    }
}

async fn projects_never_see_each_others_users(backend: Backend) {
    let app = TestApp::new(backend);
    let a = app.project("a");
    let b = app.project("b");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = send(&svc, create_req(&a.id, "shared@example.com"))
        .await
        .json();
    let id = user["ID"].as_str().unwrap();

    // By identifier: B sees no user.
    let reply = send(&svc, get_by_identifier_req(&b.id, "shared@example.com")).await;
    assert_eq!(reply.body, ZERO_USER);
    // By id: B gets the same 404 as for a missing user.
    let by_id = |key: &str| {
        TestRequest::get()
            .uri(&format!("/api/v0/user/{id}"))
            .insert_header(("API_KEY_ID", key))
    };
    let theirs = send(&svc, by_id(&b.id)).await;
    let missing = send(
        &svc,
        TestRequest::get()
            .uri(&format!("/api/v0/user/{}", uuid::Uuid::new_v4()))
            .insert_header(("API_KEY_ID", b.id.as_str())),
    )
    .await;
    assert_eq!(
        (theirs.status, &theirs.body),
        (missing.status, &missing.body)
    );
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    // In lists: B's list is empty.
    assert_eq!(send(&svc, list_req(&b, "0")).await.body, "[]");
    // B's own user of the same identifier is a different user; A's stays A's.
    let theirs = send(&svc, create_req(&b.id, "shared@example.com"))
        .await
        .json();
    assert_ne!(theirs["ID"], user["ID"]);
    assert_eq!(theirs["issuer"], b.id.as_str());
    assert_eq!(send(&svc, by_id(&a.id)).await.json(), user);
    let a_list = send(&svc, list_req(&a, "0")).await.json();
    assert_eq!(a_list, serde_json::json!([user]));
    // B's secret does not open A's list.
    let mixed = Keys {
        id: a.id.clone(),
        secret: b.secret.clone(),
    };
    send(&svc, list_req(&mixed, "0"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
}

/// Builds one route's request, keys left out.
type MakeRequest = Box<dyn Fn() -> TestRequest>;

/// Every route × every way the keys can be wrong.
async fn keys_are_checked_on_every_route(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = send(&svc, create_req(&keys.id, "k@example.com"))
        .await
        .json();
    let id = user["ID"].as_str().unwrap().to_owned();

    let routes: Vec<(&str, MakeRequest)> = vec![
        (
            "create",
            Box::new(|| {
                TestRequest::post()
                .uri("/api/v0/user/create")
                .set_json(serde_json::json!({"identifier": format!("{}@example.com", uuid::Uuid::new_v4())}))
            }),
        ),
        (
            "get",
            Box::new(|| TestRequest::get().uri("/api/v0/user?identifier=k%40example.com")),
        ),
        (
            "get by id",
            Box::new(move || TestRequest::get().uri(&format!("/api/v0/user/{id}"))),
        ),
        (
            "list",
            Box::new(|| TestRequest::get().uri("/api/v0/user/list?page=0")),
        ),
    ];
    let unknown = uuid::Uuid::new_v4().to_string();
    for (route, request) in &routes {
        let with = |id: Option<&str>, secret: Option<&str>| {
            let mut req = request();
            if let Some(id) = id {
                req = req.insert_header(("API_KEY_ID", id));
            }
            if let Some(secret) = secret {
                req = req.insert_header(("API_SECRET_KEY", secret));
            }
            req
        };
        let cases: [(&str, Option<&str>, Option<&str>); 5] = [
            ("no keys", None, None),
            ("secret only", None, Some(&keys.secret)),
            ("malformed id", Some("not-a-key"), Some(&keys.secret)),
            ("empty id", Some(""), Some(&keys.secret)),
            ("unknown id", Some(&unknown), Some(&keys.secret)),
        ];
        for (case, id, secret) in cases {
            let reply = send(&svc, with(id, secret)).await;
            reply.assert_error(StatusCode::UNAUTHORIZED);
            assert!(reply.status == StatusCode::UNAUTHORIZED, "{route}: {case}");
        }
        // Key in the query string instead of a header counts for nothing.
        let in_query = TestRequest::get().uri(&format!(
            "/api/v0/user/list?API_KEY_ID={}&API_SECRET_KEY={}",
            keys.id,
            url_encode(&keys.secret)
        ));
        send(&svc, in_query)
            .await
            .assert_error(StatusCode::UNAUTHORIZED);

        let secret_cases: [(&str, Option<&str>); 4] = [
            ("no secret", None),
            ("wrong secret", Some("cotterd_sk_0000")),
            ("other project's secret", Some(&other.secret)),
            ("right secret", Some(&keys.secret)),
        ];
        for (case, secret) in secret_cases {
            let reply = send(&svc, with(Some(&keys.id), secret)).await;
            // A secret that is sent is checked even where none is needed.
            let allowed = case == "right secret" || (*route != "list" && case == "no secret");
            if allowed {
                assert!(reply.status.is_success(), "{route}: {case}: {}", reply.body);
            } else {
                reply.assert_error(StatusCode::UNAUTHORIZED);
            }
        }
    }
}

async fn a_project_can_require_the_secret_everywhere(backend: Backend) {
    let app = TestApp::new(backend);
    let strict = app.project_with_policy("strict", true);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let msg = send(&svc, create_req(&strict.id, "s@example.com"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    assert!(msg.contains("API_SECRET_KEY"), "{msg}");
    send(&svc, get_by_identifier_req(&strict.id, "s@example.com"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    let wrong = create_req(&strict.id, "s@example.com").insert_header(("API_SECRET_KEY", "nope"));
    send(&svc, wrong)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(app.count_users(&strict.id), 0);
    let ok = create_req(&strict.id, "s@example.com")
        .insert_header(("API_SECRET_KEY", strict.secret.as_str()));
    assert_eq!(send(&svc, ok).await.status, StatusCode::OK);
}

async fn revoked_secrets_stop_working_and_rotation_overlaps(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| s.auth_cache_ttl_secs = 0);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let project_id = uuid::Uuid::parse_str(&keys.id).unwrap();
    let second = {
        let mut conn = app.state.pool.get().unwrap();
        cotterd::projects::add_secret(conn.conn(), &project_id, &Context::cli()).unwrap()
    };
    let second_keys = Keys {
        id: keys.id.clone(),
        secret: second.secret.clone(),
    };
    assert_eq!(
        send(&svc, list_req(&keys, "0")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&svc, list_req(&second_keys, "0")).await.status,
        StatusCode::OK
    );

    let old_prefix = &keys.secret[..cotterd::projects::SECRET_PREFIX.len() + 8];
    {
        let mut conn = app.state.pool.get().unwrap();
        cotterd::projects::revoke_secret(
            conn.conn(),
            &project_id,
            old_prefix,
            cotterd::projects::LastSecret::Allow,
            &Context::cli(),
        )
        .unwrap();
    }
    send(&svc, list_req(&keys, "0"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&svc, list_req(&second_keys, "0")).await.status,
        StatusCode::OK
    );
}

async fn cached_keys_expire_within_the_ttl(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| s.auth_cache_ttl_secs = 1);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    for _ in 0..20 {
        assert_eq!(
            send(&svc, list_req(&keys, "0")).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.state.auth.loads(),
        1,
        "keys are read from the database once, then cached"
    );

    let project_id = uuid::Uuid::parse_str(&keys.id).unwrap();
    {
        let mut conn = app.state.pool.get().unwrap();
        cotterd::projects::revoke_secret(
            conn.conn(),
            &project_id,
            &keys.secret,
            cotterd::projects::LastSecret::Allow,
            &Context::cli(),
        )
        .unwrap();
    }
    let revoked_at = Instant::now();
    loop {
        let reply = send(&svc, list_req(&keys, "0")).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            revoked_at.elapsed() < Duration::from_millis(1500),
            "revocation took effect within the TTL"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An unknown key id is remembered for at most a second, even with a long cache: a project
/// created just after a failed call works at once.
async fn unknown_keys_are_forgotten_quickly(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| s.auth_cache_ttl_secs = 60);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    send(&svc, get_by_identifier_req(&unknown, "x"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    send(&svc, get_by_identifier_req(&unknown, "x"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.state.auth.loads(),
        1,
        "the unknown key is remembered for a moment"
    );
    {
        use diesel::RunQueryDsl;
        let project = cotterd::projects::ProjectRecord {
            id: unknown.clone(),
            name: "late".into(),
            require_secret: false,
            created_at: cotterd::time::now(),
        };
        let mut conn = app.state.pool.get().unwrap();
        diesel::insert_into(cotterd::db::schema::projects::table)
            .values(&project)
            .execute(conn.conn())
            .unwrap();
    }
    let created_at = Instant::now();
    while send(&svc, get_by_identifier_req(&unknown, "x"))
        .await
        .status
        != StatusCode::OK
    {
        assert!(
            created_at.elapsed() < Duration::from_millis(1500),
            "a new project works within a second"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The key check comes first: a caller without valid keys gets 401 whatever else is wrong with
/// its request, also when its key is not cached yet (the body is not even read).
async fn keys_are_checked_before_bodies_and_queries(backend: Backend) {
    let app = TestApp::new(backend);
    let strict = app.project_with_policy("strict", true);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for key in [unknown.as_str(), strict.id.as_str()] {
        let requests = [
            TestRequest::post()
                .uri("/api/v0/user/create")
                .insert_header(("Content-Type", "text/plain"))
                .set_payload("x"),
            TestRequest::post()
                .uri("/api/v0/user/create")
                .insert_header(("Content-Type", "application/json"))
                .set_payload("{"),
            TestRequest::post()
                .uri("/api/v0/user/create")
                .insert_header(("Content-Type", "application/json"))
                .set_payload("x".repeat(100_000)),
            TestRequest::get().uri("/api/v0/user?identifier=a&identifier=b"),
            TestRequest::get().uri("/api/v0/user"),
            TestRequest::get().uri("/api/v0/user/list?page=-1"),
            TestRequest::get().uri("/api/v0/user/not-a-uuid"),
        ];
        for req in requests {
            send(&svc, req.insert_header(("API_KEY_ID", key)))
                .await
                .assert_error(StatusCode::UNAUTHORIZED);
        }
    }
}

async fn malformed_bodies_get_clear_errors_and_write_nothing(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let raw = |content_type: Option<&str>, body: Vec<u8>| {
        let mut req = TestRequest::post()
            .uri("/api/v0/user/create")
            .insert_header(("API_KEY_ID", keys.id.as_str()))
            .set_payload(body);
        if let Some(ct) = content_type {
            req = req.insert_header(("Content-Type", ct));
        }
        req
    };
    let json = Some("application/json");
    let cases: Vec<(Option<&str>, Vec<u8>, StatusCode)> = vec![
        (json, b"{".to_vec(), StatusCode::BAD_REQUEST),
        (json, b"".to_vec(), StatusCode::BAD_REQUEST),
        (json, b"null".to_vec(), StatusCode::BAD_REQUEST),
        (
            json,
            br#"["x@example.com"]"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            br#""x@example.com""#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (json, br#"{}"#.to_vec(), StatusCode::BAD_REQUEST),
        (
            json,
            br#"{"identifier": 5}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            br#"{"identifier": null}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            br#"{"identifier": "a@b.c", "issuer": "x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            br#"{"identifier": "a@b.c", "identifier": "d@e.f"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            br#"{"identifier": ""}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            br#"{"identifier": "   "}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            br#"{"identifier": "a\u0000b"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            br#"{"identifier": "a\nb"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            b"{\"identifier\": \"a\xffb\"}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            format!(r#"{{"identifier": "{}"}}"#, "x".repeat(255)).into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            format!(r#"{{"identifier": "{}"}}"#, "\u{FDFA}".repeat(100)).into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000)).into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json,
            format!(r#"{{"identifier": "{}"}}"#, "x".repeat(20_000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            None,
            br#"{"identifier": "a@b.c"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Some("text/plain"),
            br#"{"identifier": "a@b.c"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"identifier=a@b.c".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (content_type, body, status) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(60)
            .collect::<String>();
        let reply = send(&svc, raw(content_type, body)).await;
        assert_eq!(
            reply.status, status,
            "{content_type:?} {shown}: {}",
            reply.body
        );
        reply.assert_error(status);
    }
    assert_eq!(app.count_all_users(), 0, "no rejected request wrote a row");

    // The limits' edges are accepted; a charset parameter is fine.
    let edge = "é".repeat(254);
    let ok = raw(
        Some("application/json; charset=utf-8"),
        serde_json::to_vec(&serde_json::json!({"identifier": edge})).unwrap(),
    );
    assert_eq!(send(&svc, ok).await.status, StatusCode::OK);
    assert_eq!(app.count_all_users(), 1);
}

async fn the_pool_answers_503_when_exhausted(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.db_pool_size = 1;
        s.db_pool_timeout_ms = 200;
    });
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    assert_eq!(
        send(&svc, get_by_identifier_req(&keys.id, "x@y.z"))
            .await
            .status,
        StatusCode::OK
    );

    let held = app.state.pool.get().unwrap();
    let started = Instant::now();
    let reply = send(&svc, get_by_identifier_req(&keys.id, "x@y.z")).await;
    let waited = started.elapsed();
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    assert!(
        waited < Duration::from_secs(2),
        "answered within the checkout timeout: {waited:?}"
    );
    assert!(
        !reply.body.to_lowercase().contains("timed out waiting"),
        "{}",
        reply.body
    );
    drop(held);
    assert_eq!(
        send(&svc, get_by_identifier_req(&keys.id, "x@y.z"))
            .await
            .status,
        StatusCode::OK
    );
}

async fn unknown_routes_and_methods_answer_in_cotters_shape(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    send(&svc, TestRequest::get().uri("/nope"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    send(
        &svc,
        TestRequest::get()
            .uri("/api/v0/user/create")
            .insert_header(("API_KEY_ID", keys.id.as_str())),
    )
    .await
    .assert_error(StatusCode::METHOD_NOT_ALLOWED);
    send(&svc, TestRequest::delete().uri("/api/v0/user/list"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED);
    send(&svc, TestRequest::post().uri("/api/v0/user"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED);
}

async fn migrations_are_idempotent(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let again = cotterd::AppState::open(app.state.settings.clone()).expect("reopen");
    let mut conn = again.pool.get().unwrap();
    assert_eq!(cotterd::db::run_migrations(conn.conn()).unwrap(), 0);
    assert!(cotterd::projects::any_exists(conn.conn()).unwrap());
    drop(conn);
    assert_eq!(app.count_users(&keys.id), 0);
}

both_backends!(
    create_returns_a_cotter_user,
    duplicate_identifiers_conflict_after_normalisation,
    concurrent_duplicate_creates_leave_one_row,
    get_by_identifier_answers_zero_user_when_absent,
    get_by_id_finds_only_the_projects_user,
    list_pages_120_users_newest_first,
    list_orders_ties_on_created_at_by_id,
    list_rejects_bad_pages,
    timestamps_are_exact_strings,
    projects_never_see_each_others_users,
    keys_are_checked_on_every_route,
    a_project_can_require_the_secret_everywhere,
    revoked_secrets_stop_working_and_rotation_overlaps,
    cached_keys_expire_within_the_ttl,
    unknown_keys_are_forgotten_quickly,
    keys_are_checked_before_bodies_and_queries,
    malformed_bodies_get_clear_errors_and_write_nothing,
    the_pool_answers_503_when_exhausted,
    unknown_routes_and_methods_answer_in_cotters_shape,
    migrations_are_idempotent,
);

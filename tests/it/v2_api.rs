//! Cradl's v2 Users API through the real app, on SQLite and on PostgreSQL.

use actix_web::http::StatusCode;
use actix_web::test::{init_service, TestRequest};
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::common::{
    create_req, get_by_identifier_req, list_req, send, v2_create_req, v2_get_req,
    v2_open_account_req, v2_patch_req, with_keys, Backend, Reply, TestApp, PASSWORD,
};

fn profile(email: &str) -> Value {
    json!({
        "login": {"email": email, "password": PASSWORD},
        "phone_number": "+15551234567",
        "first_name": "Ada",
        "last_name": "Lovelace",
    })
}

/// Asserts a successful write: exactly `{"id": <uuid>, "error_codes": []}`.
fn written_id(reply: &Reply, status: StatusCode) -> String {
    assert_eq!(reply.status, status, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json.as_object().unwrap().len(), 2, "{json}");
    assert_eq!(json["error_codes"], json!([]));
    let id = json["id"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&id).expect("id is a UUID");
    id
}

async fn create_and_get_a_user(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let reply = send(&svc, v2_create_req(&keys, &profile("Ada@Example.com"))).await;
    let id = written_id(&reply, StatusCode::CREATED);
    assert!(!reply.body.contains(PASSWORD));

    let reply = send(&svc, v2_get_req(&keys, &id)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({
            "id": id,
            "kyc_id": null,
            "login": {"email": "Ada@Example.com"},
            "phone_number": "+15551234567",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "account_ids": [],
            "error_codes": [],
        })
    );
    assert!(!reply.body.contains("password") && !reply.body.contains("argon2"));

    // Stored: an argon2id hash with OWASP parameters that verifies, never the password.
    let stored = app.user_row(&id);
    let hash = stored.password_hash.expect("a password hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
    assert!(cotterd::passwords::verify(PASSWORD, &hash));
    assert!(!cotterd::passwords::verify("wrong password", &hash));
}

async fn every_validation_problem_is_reported_at_once(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let body = json!({
        "login": {"email": "not an email", "password": "short", "role": "admin"},
        "phone_number": "555-1234",
        "first_name": "",
        "is_admin": true,
    });
    let codes = send(&svc, v2_create_req(&keys, &body))
        .await
        .assert_v2_error(StatusCode::BAD_REQUEST);
    for code in [
        "EMAIL_INVALID",
        "PASSWORD_TOO_SHORT",
        "PHONE_INVALID",
        "FIRST_NAME_INVALID",
        "LAST_NAME_REQUIRED",
        "FIELD_NOT_ALLOWED",
    ] {
        assert!(
            codes.contains(&code.to_owned()),
            "{code} missing from {codes:?}"
        );
    }
    assert_eq!(codes.len(), 6, "each code once: {codes:?}");

    let cases = [
        (
            json!({}),
            vec![
                "EMAIL_REQUIRED",
                "PASSWORD_REQUIRED",
                "PHONE_REQUIRED",
                "FIRST_NAME_REQUIRED",
                "LAST_NAME_REQUIRED",
            ],
        ),
        (
            json!({"login": "a@b.co", "phone_number": "+15551234567", "first_name": "A", "last_name": "B"}),
            vec!["LOGIN_INVALID"],
        ),
        (
            json!({"login": {"email": 5, "password": ["x"]}, "phone_number": 15551234567u64, "first_name": "A", "last_name": "B\u{7}"}),
            vec![
                "EMAIL_INVALID",
                "PASSWORD_INVALID",
                "PHONE_INVALID",
                "LAST_NAME_INVALID",
            ],
        ),
        (
            json!({"login": {"email": "a@b.co", "password": "x".repeat(1025)}, "phone_number": "+15551234567", "first_name": "A", "last_name": "B"}),
            vec!["PASSWORD_TOO_LONG"],
        ),
        (
            json!({"login": {"email": format!("{}@b.co", "a".repeat(250)), "password": PASSWORD}, "phone_number": "+1555123456789012", "first_name": "x".repeat(101), "last_name": "B"}),
            vec!["EMAIL_INVALID", "PHONE_INVALID", "FIRST_NAME_INVALID"],
        ),
    ];
    for (body, expected) in cases {
        let mut codes = send(&svc, v2_create_req(&keys, &body))
            .await
            .assert_v2_error(StatusCode::BAD_REQUEST);
        codes.sort();
        let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
        expected.sort();
        assert_eq!(codes, expected, "{body}");
    }
    // Emails: at most 254 characters in all.
    let domain = format!(
        "{}.{}.{}.co",
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(59)
    );
    let too_long = format!("{}@{domain}", "a".repeat(64));
    assert_eq!(too_long.len(), 255);
    let mut body = profile(&too_long);
    let codes = send(&svc, v2_create_req(&keys, &body))
        .await
        .assert_v2_error(StatusCode::BAD_REQUEST);
    assert_eq!(codes, ["EMAIL_INVALID"]);
    body["login"]["email"] = json!(too_long[1..]);
    written_id(
        &send(&svc, v2_create_req(&keys, &body)).await,
        StatusCode::CREATED,
    );

    // Passwords: 8 to 1024 characters as sent; the edges are accepted.
    let mut short = profile("short@example.com");
    short["login"]["password"] = json!("1234567");
    let reply = send(&svc, v2_create_req(&keys, &short)).await;
    assert_eq!(
        reply.assert_v2_error(StatusCode::BAD_REQUEST),
        ["PASSWORD_TOO_SHORT"]
    );
    assert!(
        !reply.body.contains("1234567"),
        "the password is not echoed"
    );
    let edges = [
        "12345678".to_owned(),
        "日本語のパスワード".to_owned(),
        "é".repeat(1024),
        "p".repeat(1024),
        "\u{FDFA}".repeat(341),
    ];
    for (i, password) in edges.iter().enumerate() {
        let mut body = profile(&format!("edge{i}@example.com"));
        body["login"]["password"] = json!(password);
        written_id(
            &send(&svc, v2_create_req(&keys, &body)).await,
            StatusCode::CREATED,
        );
    }
    assert_eq!(app.count_all_users(), 6, "no rejected request wrote a row");
}

async fn passwords_are_normalised_before_hashing(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let mut body = profile("wide@example.com");
    body["login"]["password"] = json!("ｐａｓｓｗｏｒｄ１２");
    let id = written_id(
        &send(&svc, v2_create_req(&keys, &body)).await,
        StatusCode::CREATED,
    );
    let hash = app.user_row(&id).password_hash.unwrap();
    assert!(cotterd::passwords::verify("password12", &hash));
    assert!(cotterd::passwords::verify("ｐａｓｓｗｏｒｄ１２", &hash));
    assert!(!cotterd::passwords::verify("password13", &hash));
}

async fn bodies_and_routes_answer_in_the_v2_envelope(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let raw = |content_type: &str, body: &str| {
        with_keys(
            TestRequest::post()
                .uri("/v2/users")
                .insert_header(("Content-Type", content_type))
                .set_payload(body.to_owned()),
            &keys,
        )
    };
    let cases = [
        (
            raw("application/json", "{"),
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
        ),
        (
            raw("application/json", "[]"),
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
        ),
        (
            raw(
                "application/json",
                r#"{"login": {"email": "a@b.co", "email": "c@d.co"}}"#,
            ),
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
        ),
        (
            raw("text/plain", "{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            raw("application/json", &"x".repeat(20_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
        ),
        (
            with_keys(TestRequest::get().uri("/v2/nothing"), &keys),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            with_keys(TestRequest::delete().uri("/v2/users"), &keys),
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
        (
            with_keys(TestRequest::get().uri("/v2/users/not-a-uuid"), &keys),
            StatusCode::NOT_FOUND,
            "USER_NOT_FOUND",
        ),
    ];
    for (req, status, code) in cases {
        assert_eq!((send(&svc, req).await).assert_v2_error(status), [code]);
    }
    assert_eq!(app.count_all_users(), 0);
}

async fn both_keys_are_required_on_every_route(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let other = app.project("other");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let id = written_id(
        &send(&svc, v2_create_req(&keys, &profile("k@example.com"))).await,
        StatusCode::CREATED,
    );

    let routes: Vec<Box<dyn Fn() -> TestRequest>> = vec![
        Box::new(|| {
            TestRequest::post()
                .uri("/v2/users")
                .set_json(profile("new@example.com"))
        }),
        Box::new(|| TestRequest::get().uri(&format!("/v2/users/{id}"))),
        Box::new(|| {
            TestRequest::patch()
                .uri(&format!("/v2/users/{id}"))
                .set_json(json!({"kyc_id": "k"}))
        }),
        Box::new(|| {
            TestRequest::post()
                .uri("/v2/accounts")
                .set_json(json!({"user_id": id, "account_type": "checking"}))
        }),
    ];
    for route in &routes {
        let variants = [
            route(),
            route().insert_header(("API_KEY_ID", keys.id.as_str())),
            route().insert_header(("API_SECRET_KEY", keys.secret.as_str())),
            route()
                .insert_header(("API_KEY_ID", keys.id.as_str()))
                .insert_header(("API_SECRET_KEY", "cotterd_sk_wrong")),
            route()
                .insert_header(("API_KEY_ID", keys.id.as_str()))
                .insert_header(("API_SECRET_KEY", other.secret.as_str())),
            route()
                .insert_header(("API_KEY_ID", "not-a-uuid"))
                .insert_header(("API_SECRET_KEY", keys.secret.as_str())),
        ];
        for req in variants {
            assert_eq!(
                (send(&svc, req).await).assert_v2_error(StatusCode::UNAUTHORIZED),
                ["UNAUTHORIZED"]
            );
        }
    }
    let stored = app.user_row(&id);
    assert_eq!(stored.kyc_id, None, "no rejected PATCH stored a kyc_id");
    assert_eq!(app.count_accounts(), 0);
    assert_eq!(app.count_all_users(), 1);
}

async fn v0_and_v2_share_users_and_emails(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    // A v2 user is a v0 user whose identifier is the email.
    let id = written_id(
        &send(&svc, v2_create_req(&keys, &profile("Grace@Example.com"))).await,
        StatusCode::CREATED,
    );
    let v0 = send(&svc, get_by_identifier_req(&keys.id, "grace@example.com"))
        .await
        .json();
    assert_eq!(v0["ID"], id.as_str());
    assert_eq!(v0["identifier"], "Grace@Example.com");
    assert_eq!(
        send(&svc, list_req(&keys, "0")).await.json()[0]["ID"],
        id.as_str()
    );
    assert!(!send(&svc, list_req(&keys, "0"))
        .await
        .body
        .contains("argon2"));
    let again = send(&svc, create_req(&keys.id, "GRACE@example.com")).await;
    assert_eq!(
        again.assert_error(StatusCode::CONFLICT),
        "user already exist"
    );

    // An email used by a v0 user is taken for v2, whatever its case.
    send(&svc, create_req(&keys.id, "linus@example.com")).await;
    let taken = send(&svc, v2_create_req(&keys, &profile("Linus@Example.COM"))).await;
    assert_eq!(taken.assert_v2_error(StatusCode::CONFLICT), ["EMAIL_TAKEN"]);
    let taken = send(&svc, v2_create_req(&keys, &profile("grace@example.com"))).await;
    assert_eq!(taken.assert_v2_error(StatusCode::CONFLICT), ["EMAIL_TAKEN"]);
    assert_eq!(app.count_users(&keys.id), 2);

    // A v0 user seen through v2: its identifier as login email, no profile yet.
    let v0_user = send(&svc, get_by_identifier_req(&keys.id, "linus@example.com"))
        .await
        .json();
    let seen = send(&svc, v2_get_req(&keys, v0_user["ID"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(seen["login"], json!({"email": "linus@example.com"}));
    assert_eq!(seen["phone_number"], Value::Null);
    assert_eq!(seen["account_ids"], json!([]));
}

async fn concurrent_creates_of_one_email_leave_one_row(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.db_pool_size = 8;
        s.hash_concurrency = 2;
        s.hash_queue = 20;
    });
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let replies =
        join_all((0..10).map(|_| send(&svc, v2_create_req(&keys, &profile("same@example.com")))))
            .await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(reply.assert_v2_error(StatusCode::CONFLICT), ["EMAIL_TAKEN"]);
    }
    assert_eq!(app.count_users(&keys.id), 1);
}

async fn only_kyc_id_can_be_patched(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let id = written_id(
        &send(&svc, v2_create_req(&keys, &profile("kyc@example.com"))).await,
        StatusCode::CREATED,
    );
    let before = app.user_row(&id);

    let attempts = [
        json!({"kyc_id": "kyc_1", "login": {"email": "evil@example.com", "password": "hijacked1"}}),
        json!({"kyc_id": "kyc_1", "password": "hijacked1"}),
        json!({"kyc_id": "kyc_1", "id": uuid::Uuid::new_v4().to_string()}),
        json!({"kyc_id": "kyc_1", "issuer": uuid::Uuid::new_v4().to_string()}),
        json!({"kyc_id": "kyc_1", "created_at": "2000-01-01T00:00:00Z", "password_hash": "x"}),
        json!({"kyc_id": "kyc_1", "first_name": "Eve", "phone_number": "+15550000000"}),
        json!({"kyc_id": "kyc_1", "account_ids": ["a"]}),
    ];
    for body in attempts {
        let codes = send(&svc, v2_patch_req(&keys, &id, &body))
            .await
            .assert_v2_error(StatusCode::BAD_REQUEST);
        assert_eq!(codes, ["FIELD_NOT_ALLOWED"], "{body}");
    }
    let cases = [
        (json!({}), "KYC_ID_REQUIRED"),
        (json!({"kyc_id": null}), "KYC_ID_REQUIRED"),
        (json!({"kyc_id": 5}), "KYC_ID_INVALID"),
        (json!({"kyc_id": ""}), "KYC_ID_INVALID"),
        (json!({"kyc_id": "x".repeat(129)}), "KYC_ID_INVALID"),
        (
            json!({"kyc_id": "k", "user_id": uuid::Uuid::new_v4().to_string()}),
            "USER_ID_MISMATCH",
        ),
        (json!({"kyc_id": "k", "user_id": 7}), "USER_ID_MISMATCH"),
    ];
    for (body, code) in cases {
        let codes = send(&svc, v2_patch_req(&keys, &id, &body))
            .await
            .assert_v2_error(StatusCode::BAD_REQUEST);
        assert_eq!(codes, [code], "{body}");
    }
    assert_eq!(
        app.user_row(&id),
        before,
        "nothing was stored by a rejected PATCH"
    );

    let reply = send(
        &svc,
        v2_patch_req(
            &keys,
            &id,
            &json!({"kyc_id": "kyc_123", "user_id": id.to_uppercase()}),
        ),
    )
    .await;
    assert_eq!(written_id(&reply, StatusCode::OK), id);
    let after = app.user_row(&id);
    assert!(
        after.updated_at >= before.updated_at,
        "updated_at moves forward"
    );
    let mut expected = before.clone();
    expected.kyc_id = Some("kyc_123".to_owned());
    expected.updated_at = after.updated_at;
    assert_eq!(after, expected, "only kyc_id and updated_at changed");
    assert_eq!(
        send(&svc, v2_get_req(&keys, &id)).await.json()["kyc_id"],
        "kyc_123"
    );
    let missing = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        send(&svc, v2_patch_req(&keys, &missing, &json!({"kyc_id": "k"})))
            .await
            .assert_v2_error(StatusCode::NOT_FOUND),
        ["USER_NOT_FOUND"]
    );
}

async fn accounts_need_kyc_and_list_oldest_first(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let id = written_id(
        &send(&svc, v2_create_req(&keys, &profile("acct@example.com"))).await,
        StatusCode::CREATED,
    );

    let refused = send(&svc, v2_open_account_req(&keys, &id, "checking")).await;
    assert_eq!(
        refused.assert_v2_error(StatusCode::CONFLICT),
        ["KYC_REQUIRED"]
    );
    assert_eq!(app.count_accounts(), 0);

    send(&svc, v2_patch_req(&keys, &id, &json!({"kyc_id": "kyc_9"}))).await;
    let first = written_id(
        &send(&svc, v2_open_account_req(&keys, &id, "checking")).await,
        StatusCode::CREATED,
    );
    let second = written_id(
        &send(&svc, v2_open_account_req(&keys, &id, "savings")).await,
        StatusCode::CREATED,
    );
    let third = written_id(
        &send(&svc, v2_open_account_req(&keys, &id, "checking")).await,
        StatusCode::CREATED,
    );
    assert_eq!(
        send(&svc, v2_get_req(&keys, &id)).await.json()["account_ids"],
        json!([first, second, third])
    );

    let bad = [
        (
            json!({"user_id": id, "account_type": "brokerage"}),
            StatusCode::BAD_REQUEST,
            vec!["ACCOUNT_TYPE_INVALID"],
        ),
        (
            json!({"user_id": id}),
            StatusCode::BAD_REQUEST,
            vec!["ACCOUNT_TYPE_REQUIRED"],
        ),
        (
            json!({"account_type": "savings"}),
            StatusCode::BAD_REQUEST,
            vec!["USER_ID_REQUIRED"],
        ),
        (
            json!({"user_id": 5, "account_type": 5, "balance": 100}),
            StatusCode::BAD_REQUEST,
            vec![
                "FIELD_NOT_ALLOWED",
                "USER_ID_INVALID",
                "ACCOUNT_TYPE_INVALID",
            ],
        ),
        (
            json!({"user_id": uuid::Uuid::new_v4().to_string(), "account_type": "savings"}),
            StatusCode::NOT_FOUND,
            vec!["USER_NOT_FOUND"],
        ),
        (
            json!({"user_id": "nope", "account_type": "savings"}),
            StatusCode::NOT_FOUND,
            vec!["USER_NOT_FOUND"],
        ),
    ];
    for (body, status, expected) in bad {
        let req = with_keys(
            TestRequest::post().uri("/v2/accounts").set_json(&body),
            &keys,
        );
        assert_eq!(
            (send(&svc, req).await).assert_v2_error(status),
            expected,
            "{body}"
        );
    }
    assert_eq!(app.count_accounts(), 3);
}

async fn another_projects_users_look_missing(backend: Backend) {
    let app = TestApp::new(backend);
    let a = app.project("a");
    let b = app.project("b");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let id = written_id(
        &send(&svc, v2_create_req(&a, &profile("mine@example.com"))).await,
        StatusCode::CREATED,
    );
    send(&svc, v2_patch_req(&a, &id, &json!({"kyc_id": "kyc_a"}))).await;
    let account = written_id(
        &send(&svc, v2_open_account_req(&a, &id, "savings")).await,
        StatusCode::CREATED,
    );
    let before = app.user_row(&id);

    let missing = uuid::Uuid::new_v4().to_string();
    let pairs = [
        (v2_get_req(&b, &id), v2_get_req(&b, &missing)),
        (
            v2_patch_req(&b, &id, &json!({"kyc_id": "kyc_b"})),
            v2_patch_req(&b, &missing, &json!({"kyc_id": "kyc_b"})),
        ),
        (
            v2_open_account_req(&b, &id, "checking"),
            v2_open_account_req(&b, &missing, "checking"),
        ),
    ];
    for (theirs, absent) in pairs {
        let theirs = send(&svc, theirs).await;
        let absent = send(&svc, absent).await;
        assert_eq!(
            theirs.assert_v2_error(StatusCode::NOT_FOUND),
            ["USER_NOT_FOUND"]
        );
        assert_eq!((theirs.status, &theirs.body), (absent.status, &absent.body));
    }
    assert_eq!(app.user_row(&id), before);
    assert_eq!(app.count_accounts(), 1);
    assert_eq!(
        send(&svc, v2_get_req(&a, &id)).await.json()["account_ids"],
        json!([account])
    );
    // B may use the same email: projects are separate namespaces.
    written_id(
        &send(&svc, v2_create_req(&b, &profile("mine@example.com"))).await,
        StatusCode::CREATED,
    );
}

/// 200 sign-ups at once: each is created or refused with 503 + Retry-After, the hashing queue
/// never holds more than its capacity, and every 201 is a row.
async fn a_burst_of_creates_is_bounded(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.db_pool_size = 8;
        s.hash_concurrency = 2;
        s.hash_queue = 8;
    });
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let replies = join_all((0..200).map(|i| {
        send(
            &svc,
            v2_create_req(&keys, &profile(&format!("burst{i}@example.com"))),
        )
    }))
    .await;

    let mut created = 0;
    let mut refused = 0;
    for reply in &replies {
        match reply.status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
                assert_eq!(
                    reply.assert_v2_error(StatusCode::SERVICE_UNAVAILABLE),
                    ["SERVICE_UNAVAILABLE"]
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert_eq!(created + refused, 200);
    assert!(
        created >= 10,
        "at least a queue's worth is served: {created}"
    );
    assert!(
        refused > 0,
        "a burst past the queue is refused, not piled up"
    );
    assert!(app.state.hasher.peak() <= app.state.hasher.capacity());
    let running = app.state.hasher.peak_running();
    assert!(
        (1..=2).contains(&running),
        "at most HASH_CONCURRENCY hashes ran at once: {running}"
    );
    assert!(replies.iter().all(|r| !r.body.contains(PASSWORD)));
    assert_eq!(app.state.hasher.in_flight(), 0);
    assert_eq!(app.count_users(&keys.id), created as i64);
}

/// Reads do not wait behind password hashing: with eight sign-ups queued on one hashing slot,
/// every v0 and v2 read sent at the same moment finishes before the second sign-up does (each
/// sign-up needs a whole hash of its own, one after the other).
async fn reads_are_served_while_passwords_hash(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.hash_concurrency = 1;
        s.hash_queue = 20;
    });
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let reader = written_id(
        &send(&svc, v2_create_req(&keys, &profile("reader@example.com"))).await,
        StatusCode::CREATED,
    );

    let order = std::cell::RefCell::new(Vec::new());
    let creates = (0..8).map(|i| {
        let (svc, keys, order) = (&svc, &keys, &order);
        async move {
            let reply = send(
                svc,
                v2_create_req(keys, &profile(&format!("slow{i}@example.com"))),
            )
            .await;
            assert_eq!(reply.status, StatusCode::CREATED);
            order.borrow_mut().push("create");
        }
    });
    let reads = (0..8).map(|i| {
        let (svc, keys, order, reader) = (&svc, &keys, &order, &reader);
        async move {
            // Let every create reach the hashing queue first.
            actix_web::rt::task::yield_now().await;
            let reply = if i % 2 == 0 {
                send(svc, get_by_identifier_req(&keys.id, "reader@example.com")).await
            } else {
                send(svc, v2_get_req(keys, reader)).await
            };
            assert_eq!(reply.status, StatusCode::OK);
            order.borrow_mut().push("read");
        }
    });
    let all: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = creates
        .map(|f| Box::pin(f) as _)
        .chain(reads.map(|f| Box::pin(f) as _))
        .collect();
    join_all(all).await;
    let order = order.into_inner();
    let second_create = order
        .iter()
        .enumerate()
        .filter(|(_, o)| **o == "create")
        .nth(1)
        .map(|(i, _)| i)
        .unwrap();
    let last_read = order.iter().rposition(|o| *o == "read").unwrap();
    assert!(last_read < second_create, "{order:?}");
    assert_eq!(app.state.hasher.peak_running(), 1);
}

both_backends!(
    create_and_get_a_user,
    every_validation_problem_is_reported_at_once,
    passwords_are_normalised_before_hashing,
    bodies_and_routes_answer_in_the_v2_envelope,
    both_keys_are_required_on_every_route,
    v0_and_v2_share_users_and_emails,
    concurrent_creates_of_one_email_leave_one_row,
    only_kyc_id_can_be_patched,
    accounts_need_kyc_and_list_oldest_first,
    another_projects_users_look_missing,
    a_burst_of_creates_is_bounded,
    reads_are_served_while_passwords_hash,
);

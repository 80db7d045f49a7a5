//! Operability through the real app: health and readiness probes, request ids.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test::{init_service, TestRequest};

use crate::common::{get_by_identifier_req, send, Backend, TestApp};

async fn probes_answer_without_keys(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let health = send(&svc, TestRequest::get().uri("/healthz")).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, r#"{"status":"ok"}"#)
    );
    let ready = send(&svc, TestRequest::get().uri("/readyz")).await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::OK, r#"{"status":"ready"}"#)
    );
}

/// /readyz checks the database on a connection of its own: a pool busy with requests is still
/// ready; a database that cannot be reached is 503 within the ready timeout, and /healthz stays
/// 200 throughout.
async fn readiness_follows_the_database(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.db_pool_size = 1;
        s.db_pool_timeout_ms = 5_000;
        s.ready_timeout_ms = 1_000;
    });
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let held = app.state.pool.get().unwrap();
    assert_eq!(
        send(&svc, TestRequest::get().uri("/readyz")).await.status,
        StatusCode::OK
    );
    drop(held);

    let mut gone = app.state.clone();
    gone.settings.database.database_url = match backend {
        Backend::Sqlite => "sqlite:///nonexistent-folder/cotterd.db".into(),
        Backend::Postgres => "postgres://postgres@127.0.0.1:1/nothing".into(),
    };
    let svc = init_service(cotterd::app(gone)).await;
    let started = Instant::now();
    let ready = send(&svc, TestRequest::get().uri("/readyz")).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(ready.body, r#"{"status":"database unavailable"}"#);
    assert_eq!(ready.headers.get("retry-after").unwrap(), "1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered within the ready timeout"
    );
    assert_eq!(
        send(&svc, TestRequest::get().uri("/healthz")).await.status,
        StatusCode::OK
    );
    let wrong_method = send(&svc, TestRequest::post().uri("/healthz")).await;
    wrong_method.assert_error(StatusCode::METHOD_NOT_ALLOWED);
}

/// Made-up keys never reach a limiter: its memory is bounded by the number of projects.
async fn unknown_keys_add_no_limiter_entries(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| s.rate_limit_reads = 1000);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    for _ in 0..300 {
        let made_up = uuid::Uuid::new_v4().to_string();
        send(&svc, get_by_identifier_req(&made_up, "x@y.z"))
            .await
            .assert_error(StatusCode::UNAUTHORIZED);
    }
    assert!(app.state.limits.is_empty());
    send(&svc, get_by_identifier_req(&keys.id, "x@y.z")).await;
    assert_eq!(app.state.limits.len(), 1);
}

async fn request_ids_are_kept_or_made_and_echoed(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let given = send(
        &svc,
        get_by_identifier_req(&keys.id, "x@y.z").insert_header(("X-Request-Id", "trace-42")),
    )
    .await;
    assert_eq!(given.headers.get("x-request-id").unwrap(), "trace-42");

    let made = send(&svc, TestRequest::get().uri("/healthz")).await;
    let id = made.headers.get("x-request-id").unwrap().to_str().unwrap();
    uuid::Uuid::parse_str(id).expect("a generated id is a UUID");

    // Errors carry one too, and an id that could forge a log line is replaced.
    let refused = send(
        &svc,
        TestRequest::get()
            .uri("/api/v0/user?identifier=x")
            .insert_header(("X-Request-Id", "a b\tc")),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let id = refused
        .headers
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_ne!(id, "a b\tc");
    uuid::Uuid::parse_str(id).unwrap();
    let long = "x".repeat(200);
    let replaced = send(
        &svc,
        TestRequest::get()
            .uri("/healthz")
            .insert_header(("X-Request-Id", long.as_str())),
    )
    .await;
    assert_ne!(replaced.headers.get("x-request-id").unwrap(), long.as_str());
}

/// Budgets are per project and per kind: a project past its read budget gets 429 with
/// Retry-After (in each API's shape), while its writes and other projects go on; a spoofed
/// X-Forwarded-For changes nothing.
async fn rate_limits_are_per_project_and_per_budget(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.rate_limit_reads = 2;
        s.rate_limit_writes = 1;
    });
    let a = app.project("a");
    let b = app.project("b");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    // A burst of twice the rate is allowed, then the budget is spent.
    for i in 0..4 {
        let reply = send(
            &svc,
            get_by_identifier_req(&a.id, "x@y.z")
                .insert_header(("X-Forwarded-For", format!("10.0.0.{i}"))),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}");
    }
    let limited = send(
        &svc,
        get_by_identifier_req(&a.id, "x@y.z").insert_header(("X-Forwarded-For", "192.0.2.77")),
    )
    .await;
    let msg = limited.assert_error(StatusCode::TOO_MANY_REQUESTS);
    assert!(msg.contains("rate limit"), "{msg}");
    let retry: u64 = limited
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let v2 = send(
        &svc,
        TestRequest::get()
            .uri(&format!("/v2/users/{}", uuid::Uuid::new_v4()))
            .insert_header(("API_KEY_ID", a.id.as_str()))
            .insert_header(("API_SECRET_KEY", a.secret.as_str())),
    )
    .await;
    assert_eq!(v2.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        v2.json()["error_codes"],
        serde_json::json!(["RATE_LIMITED"])
    );
    assert!(v2.headers.get("retry-after").is_some());

    // Writes have their own budget; other projects their own.
    assert_eq!(
        send(&svc, crate::common::create_req(&a.id, "w@y.z"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&svc, get_by_identifier_req(&b.id, "x@y.z"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(app.state.limits.rejected(), 2);

    // The budget refills at the rate.
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        send(&svc, get_by_identifier_req(&a.id, "x@y.z"))
            .await
            .status,
        StatusCode::OK
    );
}

/// The admin API spends a budget of its own: a dashboard past `RATE_LIMIT_ADMIN` gets 429 as
/// a problem (with Retry-After), while the project's clients read and write on.
async fn the_admin_api_has_its_own_budget(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.rate_limit_admin = 1;
        s.rate_limit_reads = 100;
        s.rate_limit_writes = 100;
    });
    let keys = app.project("a");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let admin = || {
        TestRequest::get()
            .uri("/admin/v1/users/count")
            .insert_header(("API_KEY_ID", keys.id.as_str()))
            .insert_header(("API_SECRET_KEY", keys.secret.as_str()))
    };
    // A burst of twice the rate, then the budget is spent.
    for i in 0..2 {
        assert_eq!(
            send(&svc, admin()).await.status,
            StatusCode::OK,
            "request {i}"
        );
    }
    let limited = send(&svc, admin()).await;
    assert_eq!(
        limited.assert_problem(StatusCode::TOO_MANY_REQUESTS),
        "RATE_LIMITED"
    );
    assert!(limited.headers.get("retry-after").is_some());
    assert_eq!(
        send(&svc, get_by_identifier_req(&keys.id, "x@y.z"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&svc, crate::common::create_req(&keys.id, "w@y.z"))
            .await
            .status,
        StatusCode::OK
    );
    let metrics = send(&svc, TestRequest::get().uri("/metrics")).await.body;
    assert!(
        metrics.contains(r#"cotterd_rate_limited_total{budget="admin"} 1"#),
        "{metrics}"
    );
}

/// Metrics count requests by route template (never a raw path or identifier), time them, and
/// show the pool, the hashing queue, refusals and key loads.
async fn metrics_use_route_templates(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| s.rate_limit_reads = 1);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let secret_id = uuid::Uuid::new_v4();
    let by_id = TestRequest::get()
        .uri(&format!("/api/v0/user/{secret_id}"))
        .insert_header(("API_KEY_ID", keys.id.as_str()));
    assert_eq!(send(&svc, by_id).await.status, StatusCode::NOT_FOUND);
    send(&svc, get_by_identifier_req(&keys.id, "private@example.com")).await;
    for _ in 0..3 {
        send(&svc, get_by_identifier_req(&keys.id, "private@example.com")).await;
    }
    send(&svc, TestRequest::get().uri("/no/such/path/123")).await;
    send(
        &svc,
        TestRequest::default()
            .method(actix_web::http::Method::from_bytes(b"BREW").unwrap())
            .uri("/healthz"),
    )
    .await;

    let reply = send(&svc, TestRequest::get().uri("/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.body;
    for expected in [
        r#"cotterd_http_requests_total{method="GET",route="/api/v0/user/{client_user_id}",status="404"} 1"#,
        r#"cotterd_http_requests_total{method="GET",route="/api/v0/user",status="429"} 3"#,
        r#"cotterd_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"cotterd_http_requests_total{method="other","#,
        r#"cotterd_http_request_duration_seconds_bucket{route="/api/v0/user","#,
        r#"cotterd_rate_limited_total{budget="read"} 3"#,
        "cotterd_auth_key_loads_total 1",
        "cotterd_db_pool_connections ",
        "cotterd_db_pool_in_use 0",
        "cotterd_db_pool_waiting 0",
        "cotterd_password_hash_queue_depth 0",
        "cotterd_password_hashes_running 0",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    for private in [
        secret_id.to_string().as_str(),
        "private",
        "/no/such",
        keys.id.as_str(),
    ] {
        assert!(!text.contains(private), "{private} leaked into the metrics");
    }
}

async fn metrics_can_require_a_token(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| s.metrics_token = Some("s3cret-token".into()));
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let denied = send(&svc, TestRequest::get().uri("/metrics")).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    let wrong = send(
        &svc,
        TestRequest::get()
            .uri("/metrics")
            .insert_header(("Authorization", "Bearer nope")),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let ok = send(
        &svc,
        TestRequest::get()
            .uri("/metrics")
            .insert_header(("Authorization", "Bearer s3cret-token")),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body.contains("cotterd_http_requests_total"));
}

/// Heads over MAX_HEADER_BYTES get 431 in the shape of the path's API; pages over MAX_PAGE 400.
async fn request_heads_and_pages_are_limited(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| {
        s.max_header_bytes = 4096;
        s.max_page = 10;
    });
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let big = "a".repeat(5000);
    let v0 = send(
        &svc,
        get_by_identifier_req(&keys.id, "x@y.z").insert_header(("X-Padding", big.as_str())),
    )
    .await;
    v0.assert_error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let v2 = send(
        &svc,
        TestRequest::get()
            .uri("/v2/users/x")
            .insert_header(("X-Padding", big.as_str())),
    )
    .await;
    assert_eq!(v2.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        v2.json()["error_codes"],
        serde_json::json!(["HEADERS_TOO_LARGE"])
    );
    let fits = send(
        &svc,
        get_by_identifier_req(&keys.id, "x@y.z").insert_header(("X-Padding", "a".repeat(3000))),
    )
    .await;
    assert_eq!(fits.status, StatusCode::OK);

    assert_eq!(
        send(&svc, crate::common::list_req(&keys, "10"))
            .await
            .status,
        StatusCode::OK
    );
    let msg = send(&svc, crate::common::list_req(&keys, "11"))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    assert!(msg.contains("0 to 10"), "{msg}");
}

both_backends!(
    unknown_keys_add_no_limiter_entries,
    request_heads_and_pages_are_limited,
    metrics_use_route_templates,
    metrics_can_require_a_token,
    rate_limits_are_per_project_and_per_budget,
    the_admin_api_has_its_own_budget,
    probes_answer_without_keys,
    readiness_follows_the_database,
    request_ids_are_kept_or_made_and_echoed,
);

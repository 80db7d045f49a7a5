//! The console's session rules over HTTP, without a browser: the cookie and its flags, expiry
//! (idle and total), sign-out, revocation, CSRF, several instances, the sign-in limit, the
//! page's headers, and key rotation over the admin API.

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::test::{init_service, TestRequest};
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::common::req::{call, Req};
use crate::common::{send, Backend, Keys, Reply, TestApp};
use cotterd::db::schema::{console_sessions, users};
use cotterd::AppState;

/// A signed-in console: its cookie (`name=value`) and CSRF token.
struct Signed {
    cookie: String,
    csrf: String,
    prefix: String,
    /// The `Set-Cookie` the sign-in answered with.
    set_cookie: String,
}

fn sign_in_req(keys: &Keys) -> Req {
    Req::post("/admin/v1/session").json(&json!({"key_id": keys.id, "secret": keys.secret}))
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn sign_in<S, B>(svc: &S, keys: &Keys) -> Signed
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &sign_in_req(keys)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let set_cookie = set_cookies(&reply.headers).pop().expect("a Set-Cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body = reply.json();
    Signed {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        prefix: body["session_prefix"].as_str().unwrap().to_owned(),
        set_cookie,
    }
}

/// `req` with the session's cookie (and nothing else).
fn with_cookie(req: Req, signed: &Signed) -> Req {
    req.header("Cookie", &signed.cookie)
}

/// `req` with the session's cookie and its CSRF token.
fn with_session(req: Req, signed: &Signed) -> Req {
    with_cookie(req, signed).header("X-CSRF-Token", &signed.csrf)
}

async fn audit<S, B>(svc: &S, keys: &Keys) -> Vec<Value>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &Req::get("/admin/v1/audit?limit=500").keys(keys)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()["events"].as_array().unwrap().clone()
}

fn problem_code(reply: &Reply) -> String {
    assert_eq!(
        reply.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/problem+json",
        "{}",
        reply.body
    );
    reply.json()["code"].as_str().unwrap().to_owned()
}

fn user_count(app: &TestApp) -> i64 {
    let mut conn = app.state.pool.get().unwrap();
    users::table.count().get_result(conn.conn()).unwrap()
}

/// The stored `seen_at` of a session.
fn seen_at(app: &TestApp, signed: &Signed) -> NaiveDateTime {
    let mut conn = app.state.pool.get().unwrap();
    console_sessions::table
        .filter(console_sessions::id.like(format!("{}%", signed.prefix)))
        .select(console_sessions::seen_at)
        .first(conn.conn())
        .unwrap()
}

/// Moves every session's times by `by` (into the past for a negative duration).
fn age_sessions(app: &TestApp, created_by: Duration, seen_by: Duration) {
    let mut conn = app.state.pool.get().unwrap();
    let rows: Vec<(String, NaiveDateTime, NaiveDateTime)> = console_sessions::table
        .select((
            console_sessions::id,
            console_sessions::created_at,
            console_sessions::seen_at,
        ))
        .load(conn.conn())
        .unwrap();
    for (id, created, seen) in rows {
        diesel::update(console_sessions::table.find(&id))
            .set((
                console_sessions::created_at.eq(created + created_by),
                console_sessions::seen_at.eq(seen + seen_by),
            ))
            .execute(conn.conn())
            .unwrap();
    }
}

/// Sign-in sets an `HttpOnly`, `SameSite=Strict`, `Path=/admin` cookie and answers the session
/// with its CSRF token and never the secret; the cookie then opens every admin route, and the
/// sign-in and each change made in the session are audited as `console:<prefix>`.
async fn sign_in_sets_a_hardened_cookie_that_opens_the_admin_api(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("console");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let reply = call(&svc, &sign_in_req(&keys)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(!reply.body.contains(&keys.secret));
    assert_eq!(
        reply.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let body = reply.json();
    assert_eq!(body["project_id"], keys.id.as_str());
    assert_eq!(body["project_name"], "console");
    assert_eq!(body["idle_timeout_secs"], 1800);
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 64);
    let signed = sign_in(&svc, &keys).await;
    let flags: Vec<&str> = signed.set_cookie.split("; ").skip(1).collect();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(flags.contains(&flag), "{}", signed.set_cookie);
    }
    // An in-process request comes from no address: not a browser on this machine.
    assert!(flags.contains(&"Secure"), "{}", signed.set_cookie);
    let value = signed.cookie.strip_prefix("cotterd_console=").unwrap();
    assert!(value.starts_with(&format!("{}.", keys.id)));
    assert!(!value.contains(&keys.secret));

    let session = call(&svc, &with_cookie(Req::get("/admin/v1/session"), &signed)).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.body);
    assert_eq!(session.json()["csrf_token"], signed.csrf.as_str());
    assert_eq!(session.json()["session_prefix"], signed.prefix.as_str());

    let created = call(
        &svc,
        &with_session(Req::post("/admin/v1/users"), &signed)
            .json(&json!({"identifier": "ada@example.com"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let listed = call(&svc, &with_cookie(Req::get("/admin/v1/users"), &signed)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()["users"].as_array().unwrap().len(), 1);

    let actor = format!("console:{}", signed.prefix);
    let events = audit(&svc, &keys).await;
    let of = |action: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["action"] == action && e["actor"] == actor.as_str())
            .collect()
    };
    assert_eq!(of("console.signin").len(), 1, "{events:?}");
    assert_eq!(of("user.create").len(), 1, "{events:?}");
    let trail = serde_json::to_string(&events).unwrap();
    assert!(!trail.contains(&keys.secret));
    assert!(!trail.contains(value.split('.').nth(1).unwrap()));
}

/// `Secure` is left off only for a browser on the server's own machine: a loopback server,
/// reached from a loopback address at a loopback host, with no proxy header; or when
/// `CONSOLE_INSECURE_COOKIES=true`.
async fn the_cookie_is_secure_unless_on_loopback_or_told_otherwise(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let secure = |set_cookie: &str| set_cookie.split("; ").any(|flag| flag == "Secure");
    let sign_in_at =
        |state: AppState, peer: &'static str, headers: Vec<(&'static str, &'static str)>| {
            let keys = keys.clone();
            async move {
                let svc = init_service(cotterd::app(state)).await;
                let mut req = TestRequest::post()
                    .uri("/admin/v1/session")
                    .peer_addr(peer.parse().unwrap())
                    .insert_header(("Content-Type", "application/json"))
                    .set_payload(json!({"key_id": keys.id, "secret": keys.secret}).to_string());
                for header in headers {
                    req = req.insert_header(header);
                }
                let reply = send(&svc, req).await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
                secure(&set_cookies(&reply.headers).pop().unwrap())
            }
        };
    let local = "127.0.0.1:50000";
    let state = || app.state.clone();
    // A browser on the machine itself.
    assert!(!sign_in_at(state(), local, vec![("Host", "127.0.0.1:8080")]).await);
    assert!(!sign_in_at(state(), "[::1]:50000", vec![("Host", "localhost:8080")]).await);
    // A public host name, another machine, or a proxy on this one.
    assert!(sign_in_at(state(), local, vec![("Host", "console.example.com")]).await);
    assert!(sign_in_at(state(), "192.0.2.7:50000", vec![("Host", "127.0.0.1:8080")]).await);
    for forwarded in [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-For", "192.0.2.7"),
        ("X-Forwarded-Host", "console.example.com"),
        ("Forwarded", "for=192.0.2.7;proto=https"),
    ] {
        assert!(
            sign_in_at(state(), local, vec![("Host", "127.0.0.1:8080"), forwarded]).await,
            "{forwarded:?}"
        );
    }

    // A server listening on every address is not on loopback.
    let mut public = app.state.settings.clone();
    public.bind_addr = "0.0.0.0:8080".into();
    let on_public = AppState::with_pool(app.state.pool.clone(), public);
    assert!(sign_in_at(on_public, local, vec![("Host", "localhost:8080")]).await);

    let mut insecure = app.state.settings.clone();
    insecure.bind_addr = "0.0.0.0:8080".into();
    insecure.console_insecure_cookies = true;
    let told = AppState::with_pool(app.state.pool.clone(), insecure);
    assert!(
        !sign_in_at(
            told,
            "192.0.2.7:50000",
            vec![("Host", "console.example.com")]
        )
        .await
    );
}

/// A wrong secret, another project's secret or an unknown key id: one 401, no cookie; a
/// failure against a real project is in its audit trail.
async fn wrong_keys_get_no_session_and_failures_are_audited(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let other = app.project("q");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let mut details = Vec::new();
    for (key_id, secret) in [
        (keys.id.clone(), "cotterd_sk_wrong".to_owned()),
        (keys.id.clone(), other.secret.clone()),
        (uuid::Uuid::new_v4().to_string(), keys.secret.clone()),
        ("not a uuid".to_owned(), keys.secret.clone()),
        (keys.id.clone(), String::new()),
    ] {
        let reply = call(
            &svc,
            &Req::post("/admin/v1/session").json(&json!({"key_id": key_id, "secret": secret})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
        assert!(set_cookies(&reply.headers).is_empty());
        assert_eq!(problem_code(&reply), "UNAUTHORIZED");
        details.push(reply.json()["detail"].clone());
    }
    details.dedup();
    assert_eq!(
        details.len(),
        1,
        "one answer for every wrong key: {details:?}"
    );
    let failures: Vec<Value> = audit(&svc, &keys)
        .await
        .into_iter()
        .filter(|e| e["action"] == "console.signin_failed")
        .collect();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(failures.iter().all(|e| e["actor"] == "console:anonymous"));
    // A key id is no secret: past ten a minute, failures are logged, not audited, so nobody can
    // fill a project's trail. A secret longer than any is a wrong one like the others.
    for _ in 0..9 {
        let reply = call(
            &svc,
            &Req::post("/admin/v1/session")
                .json(&json!({"key_id": keys.id, "secret": "x".repeat(500)})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let audited = audit(&svc, &keys)
        .await
        .into_iter()
        .filter(|e| e["action"] == "console.signin_failed")
        .count();
    assert_eq!(
        audited,
        cotterd::limits::AUDITED_SIGNIN_FAILURES_PER_MINUTE as usize
    );
    let mut conn = app.state.pool.get().unwrap();
    let sessions: i64 = console_sessions::table
        .count()
        .get_result(conn.conn())
        .unwrap();
    assert_eq!(sessions, 0);
}

/// A session ends after 30 minutes unused and after 12 hours whatever its use; use moves its
/// idle clock (at most once a minute).
async fn sessions_expire_when_idle_and_after_their_lifetime(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let get = |signed: &Signed| with_cookie(Req::get("/admin/v1/session"), signed);

    // Unused for 29 minutes: alive, and the use moves `seen_at` to now.
    let idle = sign_in(&svc, &keys).await;
    age_sessions(&app, Duration::minutes(-29), Duration::minutes(-29));
    assert_eq!(call(&svc, &get(&idle)).await.status, StatusCode::OK);
    age_sessions(&app, Duration::minutes(-29), Duration::minutes(-29));
    assert_eq!(call(&svc, &get(&idle)).await.status, StatusCode::OK);
    // Unused for 31 minutes: over.
    age_sessions(&app, Duration::minutes(-31), Duration::minutes(-31));
    let ended = call(&svc, &get(&idle)).await;
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem_code(&ended), "UNAUTHORIZED");
    let listed = call(&svc, &with_cookie(Req::get("/admin/v1/users"), &idle)).await;
    assert_eq!(listed.status, StatusCode::UNAUTHORIZED);

    // Used a minute ago, but made 12 hours ago: over.
    let old = sign_in(&svc, &keys).await;
    age_sessions(&app, Duration::hours(-12), Duration::zero());
    assert_eq!(
        call(&svc, &get(&old)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = sign_in(&svc, &keys).await;
    age_sessions(&app, Duration::hours(-11), Duration::zero());
    assert_eq!(call(&svc, &get(&fresh)).await.status, StatusCode::OK);

    // Within a minute of the last move, a use leaves `seen_at` alone (one write a minute at most).
    let steady = sign_in(&svc, &keys).await;
    age_sessions(&app, Duration::seconds(-30), Duration::seconds(-30));
    let seen_before = seen_at(&app, &steady);
    assert_eq!(call(&svc, &get(&steady)).await.status, StatusCode::OK);
    assert_eq!(seen_at(&app, &steady), seen_before);

    // Shorter lifetimes by setting.
    let mut settings = app.state.settings.clone();
    settings.console_idle_timeout_secs = 60;
    let strict = init_service(cotterd::app(AppState::with_pool(
        app.state.pool.clone(),
        settings,
    )))
    .await;
    // In use every 40 s, a session with a 60 s idle time outlives it many times over.
    let busy = sign_in(&strict, &keys).await;
    for _ in 0..5 {
        age_sessions(&app, Duration::seconds(-40), Duration::seconds(-40));
        assert_eq!(call(&strict, &get(&busy)).await.status, StatusCode::OK);
    }
    let brief = sign_in(&strict, &keys).await;
    age_sessions(&app, Duration::seconds(-61), Duration::seconds(-61));
    assert_eq!(
        call(&strict, &get(&brief)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Sign-out needs the CSRF token, ends the session on every instance and clears the cookie; a
/// session made on one instance works on another over the same database.
async fn sign_out_ends_the_session_on_every_instance(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let one = init_service(cotterd::app(app.state.clone())).await;
    let two = init_service(cotterd::app(AppState::with_pool(
        app.state.pool.clone(),
        app.state.settings.clone(),
    )))
    .await;
    let signed = sign_in(&one, &keys).await;
    let get = with_cookie(Req::get("/admin/v1/session"), &signed);
    assert_eq!(call(&two, &get).await.status, StatusCode::OK);

    let no_token = call(
        &two,
        &with_cookie(Req::new(Method::DELETE, "/admin/v1/session"), &signed),
    )
    .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert_eq!(problem_code(&no_token), "CSRF_TOKEN_INVALID");
    assert_eq!(call(&one, &get).await.status, StatusCode::OK);

    let out = call(
        &two,
        &with_session(Req::new(Method::DELETE, "/admin/v1/session"), &signed),
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    let removal = set_cookies(&out.headers).pop().unwrap();
    assert!(removal.starts_with("cotterd_console=;"), "{removal}");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(removal.contains("Path=/admin"), "{removal}");
    assert_eq!(call(&one, &get).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&two, &get).await.status, StatusCode::UNAUTHORIZED);
    let events = audit(&one, &keys).await;
    assert!(events.iter().any(|e| e["action"] == "console.signout"
        && e["actor"] == format!("console:{}", signed.prefix).as_str()));
}

/// Revoking the secret a session was made with ends that session at once (on the admin API and
/// from the command line); sessions made with other secrets go on.
async fn revoking_a_secret_signs_its_sessions_out(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let issued = call(&svc, &Req::post("/admin/v1/secrets").keys(&keys)).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let second = Keys {
        id: keys.id.clone(),
        secret: issued.json()["secret"].as_str().unwrap().to_owned(),
    };
    let first_session = sign_in(&svc, &keys).await;
    let second_session = sign_in(&svc, &second).await;
    let get = |signed: &Signed| with_cookie(Req::get("/admin/v1/session"), signed);
    assert_eq!(
        call(&svc, &get(&second_session)).await.json()["secret_prefix"],
        issued.json()["prefix"]
    );

    // Revoked in the console itself, by the session made with the other secret.
    let revoke = with_session(
        Req::post(format!(
            "/admin/v1/secrets/{}/revoke",
            issued.json()["id"].as_str().unwrap()
        )),
        &first_session,
    );
    let revoked = call(&svc, &revoke).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(revoked.json()["revoked_at"].is_string());
    assert_eq!(
        call(&svc, &get(&second_session)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&svc, &get(&first_session)).await.status,
        StatusCode::OK
    );
    // The revoked secret is refused on this instance at once, and cannot sign in.
    let with_revoked = call(&svc, &Req::get("/admin/v1/users").keys(&second)).await;
    assert_eq!(with_revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&svc, &sign_in_req(&second)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // From the command line (the last secret may go there).
    let project = uuid::Uuid::parse_str(&keys.id).unwrap();
    let mut conn = app.state.pool.get().unwrap();
    cotterd::projects::revoke_secret(
        conn.conn(),
        &project,
        &keys.secret,
        cotterd::projects::LastSecret::Allow,
        &cotterd::audit::Context::cli(),
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        call(&svc, &get(&first_session)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// A change made with the cookie needs the session's CSRF token: none, a wrong one, another
/// session's, or a cross-site form post are refused (403) before anything is written; reads
/// need none; calls with the keys need none either.
async fn changes_made_with_the_cookie_need_the_csrf_token(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let signed = sign_in(&svc, &keys).await;
    let other = sign_in(&svc, &keys).await;
    assert_ne!(signed.csrf, other.csrf);
    let create = || {
        with_cookie(Req::post("/admin/v1/users"), &signed)
            .json(&json!({"identifier": "ada@example.com"}))
    };
    for req in [
        create(),
        create().header("X-CSRF-Token", "0".repeat(64).as_str()),
        create().header("X-CSRF-Token", &other.csrf),
        create().header("X-CSRF-Token", ""),
        // What a form on another site would send.
        with_cookie(Req::post("/admin/v1/users"), &signed).body(
            Some("application/x-www-form-urlencoded"),
            "identifier=ada%40example.com",
        ),
    ] {
        let reply = call(&svc, &req).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", req.describe());
        assert_eq!(problem_code(&reply), "CSRF_TOKEN_INVALID");
    }
    assert_eq!(user_count(&app), 0);
    let made = call(&svc, &create().header("X-CSRF-Token", &signed.csrf)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = made.json()["id"].as_str().unwrap().to_owned();
    // Each state-changing method.
    for (method, path) in [
        (Method::POST, format!("/admin/v1/users/{id}/disable")),
        (Method::DELETE, format!("/admin/v1/users/{id}")),
        (Method::POST, "/admin/v1/secrets".to_owned()),
    ] {
        let refused = call(&svc, &with_cookie(Req::new(method.clone(), &path), &signed)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let user = call(
        &svc,
        &with_cookie(Req::get(format!("/admin/v1/users/{id}")), &signed),
    )
    .await;
    assert_eq!(user.json()["status"], "active");
    // The keys need no token, whatever cookie comes with them.
    let keyed = call(
        &svc,
        &Req::post(format!("/admin/v1/users/{id}/disable"))
            .keys(&keys)
            .header("Cookie", &signed.cookie),
    )
    .await;
    assert_eq!(keyed.status, StatusCode::OK, "{}", keyed.body);
}

/// Keys sent with a cookie decide alone: another project's keys act for that project, and
/// wrong keys are refused even with a live session.
async fn keys_take_precedence_over_the_cookie(backend: Backend) {
    let app = TestApp::new(backend);
    let a = app.project("a");
    let b = app.project("b");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let signed = sign_in(&svc, &a).await;
    let made = call(
        &svc,
        &with_session(Req::post("/admin/v1/users"), &signed)
            .json(&json!({"identifier": "a@example.com"})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED);
    let as_b = call(
        &svc,
        &with_cookie(Req::get("/admin/v1/users"), &signed).keys(&b),
    )
    .await;
    assert_eq!(as_b.status, StatusCode::OK);
    assert!(as_b.json()["users"].as_array().unwrap().is_empty());
    let wrong = Keys {
        id: a.id.clone(),
        secret: "cotterd_sk_wrong".into(),
    };
    let refused = call(
        &svc,
        &with_cookie(Req::get("/admin/v1/users"), &signed).keys(&wrong),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    // The session's own routes read the cookie only.
    let keyed = call(&svc, &Req::get("/admin/v1/session").keys(&a)).await;
    assert_eq!(keyed.status, StatusCode::UNAUTHORIZED);
}

/// `CONSOLE_ENABLED=false`: no page, no sign-in, and a cookie opens nothing.
async fn the_console_can_be_turned_off(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let on = init_service(cotterd::app(app.state.clone())).await;
    let signed = sign_in(&on, &keys).await;
    let mut settings = app.state.settings.clone();
    settings.console_enabled = false;
    let off = init_service(cotterd::app(AppState::with_pool(
        app.state.pool.clone(),
        settings,
    )))
    .await;
    for path in ["/admin/", "/admin/users", "/admin/signin"] {
        let page = call(&off, &Req::get(path)).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(problem_code(&page), "NOT_FOUND");
    }
    let sign = call(&off, &sign_in_req(&keys)).await;
    assert_eq!(sign.status, StatusCode::NOT_FOUND);
    assert!(set_cookies(&sign.headers).is_empty());
    let listed = call(&off, &with_cookie(Req::get("/admin/v1/users"), &signed)).await;
    assert_eq!(listed.status, StatusCode::UNAUTHORIZED);
    // The keys still work, and the secrets routes are the admin API's.
    let keyed = call(&off, &Req::get("/admin/v1/secrets").keys(&keys)).await;
    assert_eq!(keyed.status, StatusCode::OK);
}

/// The page and its assets: every view's path serves the page with a strict policy, no
/// framing, no referrer and no caching; assets are named by their hash and cached for good.
async fn pages_and_assets_carry_strict_headers(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let id = uuid::Uuid::new_v4();
    let mut page_body = String::new();
    for path in [
        "/admin".to_owned(),
        "/admin/".to_owned(),
        "/admin/signin".to_owned(),
        "/admin/users".to_owned(),
        "/admin/users?q=ada&status=all".to_owned(),
        "/admin/users/new".to_owned(),
        format!("/admin/users/{id}"),
        "/admin/import".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/keys".to_owned(),
    ] {
        let page = call(&svc, &Req::get(&path)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let header = |name: &str| page.headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "text/html; charset=utf-8");
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(policy.contains(directive), "{policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("cache-control"), "no-store");
        page_body = page.body;
    }
    let asset_paths: Vec<String> = page_body
        .split('"')
        .filter(|part| part.starts_with("/admin/assets/"))
        .map(str::to_owned)
        .collect();
    assert_eq!(asset_paths.len(), 2, "{page_body}");
    for asset in &asset_paths {
        let reply = call(&svc, &Req::get(asset)).await;
        assert_eq!(reply.status, StatusCode::OK, "{asset}");
        assert_eq!(
            reply.headers.get("cache-control").unwrap(),
            "public, max-age=31536000, immutable"
        );
        let kind = reply.headers.get("content-type").unwrap().to_str().unwrap();
        assert!(
            kind.starts_with(if asset.ends_with(".js") {
                "text/javascript"
            } else {
                "text/css"
            }),
            "{kind}"
        );
        // Compressed for a browser that takes gzip.
        let gzipped = actix_web::test::call_service(
            &svc,
            Req::get(asset)
                .header("Accept-Encoding", "gzip")
                .test_request()
                .to_request(),
        )
        .await;
        assert_eq!(gzipped.headers().get("content-encoding").unwrap(), "gzip");
        // Another hash is not this file.
        let (stem, extension) = asset.rsplit_once('.').unwrap();
        let (stem, _) = stem.rsplit_once('.').unwrap();
        let stale = format!("{stem}.000000000000.{extension}");
        assert_eq!(
            call(&svc, &Req::get(&stale)).await.status,
            StatusCode::NOT_FOUND
        );
    }
    // Another path under /admin/: the page (which shows its "not found" view), as a 404.
    for path in ["/admin/nope", "/admin/users/a/b"] {
        let reply = call(&svc, &Req::get(path)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body, page_body);
        assert!(reply.headers.get("content-security-policy").is_some());
    }
    // Another method on a page or an asset: 405 in the admin shape, naming what they take.
    for req in [
        Req::post("/admin/users"),
        Req::new(Method::DELETE, "/admin/keys"),
        Req::post("/admin/"),
        Req::new(Method::PUT, asset_paths[0].as_str()),
    ] {
        let reply = call(&svc, &req).await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{}",
            req.describe()
        );
        assert_eq!(problem_code(&reply), "METHOD_NOT_ALLOWED");
        assert_eq!(reply.headers.get("allow").unwrap(), "GET, HEAD");
    }
    // The API's and the assets' own unknown paths are the API's 404, as is any other method.
    for req in [
        Req::get("/admin/assets/app.js"),
        Req::get("/admin/v1/nope"),
        Req::get("/admin/v1"),
        Req::post("/admin/nope"),
    ] {
        let reply = call(&svc, &req).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", req.describe());
        assert_eq!(problem_code(&reply), "NOT_FOUND");
    }
}

/// Sign-in attempts are limited per client address (`CONSOLE_SIGNIN_PER_MINUTE`), right keys
/// included, and each address has its own budget.
async fn sign_in_attempts_are_limited_per_address(backend: Backend) {
    let app = TestApp::with_settings(backend, |s| s.console_signin_per_minute = 3);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let attempt = |from: &str, secret: &str| {
        TestRequest::post()
            .uri("/admin/v1/session")
            .peer_addr(from.parse().unwrap())
            .insert_header(("Content-Type", "application/json"))
            .set_payload(json!({"key_id": keys.id, "secret": secret}).to_string())
    };
    for _ in 0..3 {
        let reply = send(&svc, attempt("192.0.2.1:5000", "cotterd_sk_guess")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let limited = send(&svc, attempt("192.0.2.1:5001", &keys.secret)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem_code(&limited), "TOO_MANY_ATTEMPTS");
    assert!(limited.headers.get("retry-after").is_some());
    assert!(set_cookies(&limited.headers).is_empty());
    let elsewhere = send(&svc, attempt("198.51.100.7:5000", &keys.secret)).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
    // An IPv6 host's /64 is one address.
    for i in 1..=3 {
        let from = format!("[2001:db8:1:2::{i}]:5000");
        let reply = send(&svc, attempt(&from, "cotterd_sk_guess")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let same_net = send(&svc, attempt("[2001:db8:1:2:ffff::9]:5000", &keys.secret)).await;
    assert_eq!(same_net.status, StatusCode::TOO_MANY_REQUESTS);
    let next_net = send(&svc, attempt("[2001:db8:1:3::1]:5000", &keys.secret)).await;
    assert_eq!(next_net.status, StatusCode::OK);
}

/// Signing in again with the old cookie still in the browser ends the old session (of the same
/// project); two session cookies in one request are refused rather than chosen between.
async fn signing_in_again_replaces_the_session(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let other = app.project("q");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let get = |cookie: &str| Req::get("/admin/v1/session").header("Cookie", cookie);
    let first = sign_in(&svc, &keys).await;
    let again = call(&svc, &sign_in_req(&keys).header("Cookie", &first.cookie)).await;
    assert_eq!(again.status, StatusCode::OK);
    let second = set_cookies(&again.headers).pop().unwrap();
    let second = second.split(';').next().unwrap().to_owned();
    assert_eq!(
        call(&svc, &get(&first.cookie)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&svc, &get(&second)).await.status, StatusCode::OK);
    // Signing in to another project leaves the first project's session alone.
    let elsewhere = call(&svc, &sign_in_req(&other).header("Cookie", &second)).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
    assert_eq!(call(&svc, &get(&second)).await.status, StatusCode::OK);
    let third = set_cookies(&elsewhere.headers).pop().unwrap();
    let third = third.split(';').next().unwrap().to_owned();
    let both = call(&svc, &get(&format!("{second}; {third}"))).await;
    assert_eq!(both.status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem_code(&both), "UNAUTHORIZED");
}

/// Every admin answer is private (`no-store`, `nosniff`), and an export is audited, with whether
/// it held password hashes.
async fn admin_answers_are_private_and_exports_audited(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    for req in [
        Req::get("/admin/v1/users").keys(&keys),
        Req::get("/admin/v1/secrets").keys(&keys),
        Req::get("/admin/v1/audit").keys(&keys),
        Req::get("/admin/v1/users/nope").keys(&keys),
        Req::get("/admin/v1/users"),
    ] {
        let reply = call(&svc, &req).await;
        assert_eq!(
            reply.headers.get(header::CACHE_CONTROL).unwrap(),
            "no-store",
            "{}",
            req.describe()
        );
        assert_eq!(
            reply.headers.get("x-content-type-options").unwrap(),
            "nosniff"
        );
    }
    let signed = sign_in(&svc, &keys).await;
    for query in ["", "?include=password_hash"] {
        let reply = call(
            &svc,
            &with_cookie(Req::get(format!("/admin/v1/users/export{query}")), &signed),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let exports: Vec<Value> = audit(&svc, &keys)
        .await
        .into_iter()
        .filter(|e| e["action"] == "users.export")
        .collect();
    assert_eq!(exports.len(), 2, "{exports:?}");
    let actor = format!("console:{}", signed.prefix);
    assert!(exports.iter().all(|e| e["actor"] == actor.as_str()));
    assert_eq!(exports[0]["detail"]["include_password_hash"], true);
    assert_eq!(exports[1]["detail"]["include_password_hash"], false);
}

/// The rotation flow over the admin API: list, issue (shown once, usable at once), revoke the
/// old one (refused at once), never the last one; each audited with its caller.
async fn secrets_rotate_over_the_admin_api(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let listed = call(&svc, &Req::get("/admin/v1/secrets").keys(&keys)).await;
    assert_eq!(listed.status, StatusCode::OK);
    let first = listed.json()["secrets"][0].clone();
    assert_eq!(listed.json()["secrets"].as_array().unwrap().len(), 1);
    assert!(keys.secret.starts_with(first["prefix"].as_str().unwrap()));
    assert!(first["revoked_at"].is_null());
    assert!(!listed.body.contains(&keys.secret));

    let issued = call(&svc, &Req::post("/admin/v1/secrets").keys(&keys)).await;
    assert_eq!(issued.status, StatusCode::CREATED);
    assert_eq!(
        issued.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let new = Keys {
        id: keys.id.clone(),
        secret: issued.json()["secret"].as_str().unwrap().to_owned(),
    };
    assert!(new
        .secret
        .starts_with(issued.json()["prefix"].as_str().unwrap()));
    let relisted = call(&svc, &Req::get("/admin/v1/secrets").keys(&new)).await;
    assert_eq!(
        relisted.status,
        StatusCode::OK,
        "the new secret works at once"
    );
    assert!(!relisted.body.contains(&new.secret), "shown once");

    let revoke =
        |id: &str, with: &Keys| Req::post(format!("/admin/v1/secrets/{id}/revoke")).keys(with);
    let revoked = call(&svc, &revoke(first["id"].as_str().unwrap(), &new)).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let old = call(&svc, &Req::get("/admin/v1/secrets").keys(&keys)).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "refused at once");
    let again = call(&svc, &revoke(first["id"].as_str().unwrap(), &new)).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    for id in ["nope", &uuid::Uuid::new_v4().to_string()] {
        let unknown = call(&svc, &revoke(id, &new)).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(problem_code(&unknown), "NOT_FOUND");
    }
    let last = call(&svc, &revoke(issued.json()["id"].as_str().unwrap(), &new)).await;
    assert_eq!(last.status, StatusCode::CONFLICT);
    assert_eq!(problem_code(&last), "LAST_SECRET");
    assert_eq!(
        call(&svc, &Req::get("/admin/v1/secrets").keys(&new))
            .await
            .status,
        StatusCode::OK
    );

    let events = audit(&svc, &new).await;
    let by = |action: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["actor"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        by("secret.create"),
        [
            format!("secret:{}", first["prefix"].as_str().unwrap()),
            "cli".to_owned()
        ]
    );
    assert_eq!(
        by("secret.revoke"),
        [format!(
            "secret:{}",
            issued.json()["prefix"].as_str().unwrap()
        )]
    );
    let trail = serde_json::to_string(&events).unwrap();
    assert!(!trail.contains(&new.secret) && !trail.contains(&keys.secret));
}

both_backends!(
    sign_in_sets_a_hardened_cookie_that_opens_the_admin_api,
    the_cookie_is_secure_unless_on_loopback_or_told_otherwise,
    wrong_keys_get_no_session_and_failures_are_audited,
    sessions_expire_when_idle_and_after_their_lifetime,
    sign_out_ends_the_session_on_every_instance,
    revoking_a_secret_signs_its_sessions_out,
    changes_made_with_the_cookie_need_the_csrf_token,
    keys_take_precedence_over_the_cookie,
    the_console_can_be_turned_off,
    pages_and_assets_carry_strict_headers,
    sign_in_attempts_are_limited_per_address,
    secrets_rotate_over_the_admin_api,
    signing_in_again_replaces_the_session,
    admin_answers_are_private_and_exports_audited,
);

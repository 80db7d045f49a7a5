//! The browser console's session against the same attacks as the keys: a session reaches only
//! its own project, a forged or ended cookie opens nothing, a change made with the cookie needs
//! the session's CSRF token, hostile sign-ins are refused in the admin API's shape without a
//! cookie, and neither the secret nor the session's token is ever shown or recorded.

use std::collections::BTreeSet;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::test::init_service;
use diesel::prelude::*;
use serde_json::{json, Value};

use super::listing;
use crate::common::envelope::shape_problem;
use crate::common::req::{call, Req};
use crate::common::rows::Snapshot;
use crate::common::{figure, reply_id, url_encode, Backend, Keys, Reply, TestApp};
use cotterd::db::schema::{audit_events, console_sessions, project_secrets};
use cotterd::projects;

/// The session cookie's name.
const COOKIE: &str = cotterd::sessions::COOKIE;
/// The CSRF token's header.
const CSRF: &str = "X-CSRF-Token";

/// A console session, as a browser holds it: the cookie's value, and the CSRF token the page
/// read from the sign-in answer.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
    /// The sign-in's answer.
    json: Value,
}

impl Session {
    /// The token the cookie carries (after the project id).
    fn token(&self) -> &str {
        self.cookie.split_once('.').map_or("", |(_, token)| token)
    }
}

/// `Cookie: cotterd_console=<value>`.
fn with_cookie(req: Req, value: &str) -> Req {
    req.header("Cookie", &format!("{COOKIE}={value}"))
}

/// `req` made in `session`: its cookie, and its CSRF token on a state-changing request.
fn in_session(req: Req, session: &Session) -> Req {
    let needs_token = !req.method.is_safe();
    let req = with_cookie(req, &session.cookie);
    if needs_token {
        req.header(CSRF, &session.csrf)
    } else {
        req
    }
}

/// The value of the session cookie a reply sets, and the whole `Set-Cookie` line.
fn set_cookie(reply: &Reply) -> Option<(String, String)> {
    reply
        .headers
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            let value = line.strip_prefix(&format!("{COOKIE}="))?;
            let value = value.split(';').next().unwrap_or_default();
            Some((value.to_owned(), line.to_owned()))
        })
}

/// `POST /admin/v1/session` with `{"key_id", "secret"}`.
fn sign_in_req(key_id: &str, secret: &str) -> Req {
    Req::post("/admin/v1/session").json(&json!({ "key_id": key_id, "secret": secret }))
}

/// Signs in with `keys` (asserting it succeeds and sets a well-made cookie).
async fn sign_in<S, B>(svc: &S, keys: &Keys) -> Session
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &sign_in_req(&keys.id, &keys.secret)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let (cookie, line) = set_cookie(&reply).unwrap_or_else(|| panic!("no cookie: {reply:?}"));
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(line.contains(attribute), "{attribute} missing: {line}");
    }
    assert!(cookie.starts_with(&format!("{}.", keys.id)), "{cookie}");
    let json = reply.json();
    let csrf = json["csrf_token"].as_str().unwrap().to_owned();
    Session { cookie, csrf, json }
}

/// Audit events of changes (an export, a read the trail also records, is left out: a session's
/// own export of its own users is no refused request).
fn audit_count(app: &TestApp) -> i64 {
    let mut conn = app.state.pool.get().unwrap();
    audit_events::table
        .filter(audit_events::action.ne("users.export"))
        .count()
        .get_result(conn.conn())
        .unwrap()
}

/// Every audit event of every project, every column, as text.
fn audit_rows(app: &TestApp) -> Vec<String> {
    type Row = (
        String,
        String,
        chrono::NaiveDateTime,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let mut conn = app.state.pool.get().unwrap();
    let rows: Vec<Row> = audit_events::table
        .select(audit_events::all_columns)
        .load(conn.conn())
        .unwrap();
    rows.iter().map(|row| format!("{row:?}")).collect()
}

/// What the database holds that a refused request must not change: users and accounts, audit
/// events, secrets (and which are live), sessions (and which have ended).
#[derive(Debug, PartialEq)]
struct Written {
    rows: Snapshot,
    audit: i64,
    secrets: Vec<(String, bool)>,
    sessions: Vec<(String, bool)>,
}

impl Written {
    fn take(app: &TestApp) -> Self {
        let mut conn = app.state.pool.get().unwrap();
        let secrets: Vec<(String, Option<chrono::NaiveDateTime>)> = project_secrets::table
            .select((project_secrets::id, project_secrets::revoked_at))
            .order(project_secrets::id)
            .load(conn.conn())
            .unwrap();
        let sessions: Vec<(String, Option<chrono::NaiveDateTime>)> = console_sessions::table
            .select((console_sessions::id, console_sessions::ended_at))
            .order(console_sessions::id)
            .load(conn.conn())
            .unwrap();
        drop(conn);
        Written {
            rows: Snapshot::take(app, None),
            audit: audit_count(app),
            secrets: secrets
                .into_iter()
                .map(|(id, at)| (id, at.is_none()))
                .collect(),
            sessions: sessions
                .into_iter()
                .map(|(id, at)| (id, at.is_none()))
                .collect(),
        }
    }
}

/// Creates a user through the admin API with `keys`; its id.
async fn admin_user<S, B>(svc: &S, keys: &Keys, identifier: &str) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = Req::post("/admin/v1/users")
        .keys(keys)
        .json(&json!({ "identifier": identifier }));
    let reply = call(svc, &req).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply_id(&reply)
}

/// Issues a secret through the admin API with `keys`; its id and value.
async fn issue_secret<S, B>(svc: &S, keys: &Keys) -> (String, String)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &Req::post("/admin/v1/secrets").keys(keys)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let secret = reply.json()["secret"].as_str().unwrap().to_owned();
    (reply_id(&reply), secret)
}

/// The ids of a project's secrets, as `GET /admin/v1/secrets` lists them with its keys.
async fn secret_ids<S, B>(svc: &S, keys: &Keys) -> Vec<String>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &Req::get("/admin/v1/secrets").keys(keys)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// What is wrong with a refusal, if anything: another status, or a body out of the admin API's
/// problem shape, or another code.
fn refusal_problem(what: &str, reply: &Reply, status: StatusCode, code: &str) -> Option<String> {
    if reply.status != status {
        return Some(format!(
            "{what}: {}, expected {status}: {}",
            reply.status, reply.body
        ));
    }
    if let Some(problem) = shape_problem("/admin/", reply) {
        return Some(format!("{what}: {problem}"));
    }
    let json: Value = serde_json::from_str(&reply.body).unwrap_or_default();
    (json["code"] != code).then(|| format!("{what}: code is not {code}: {}", reply.body))
}

/// A session of project A, sent with its cookie alone, on project B's users and secrets: every
/// answer is the one an id nobody has gets, B's rows and secrets do not change, and A's session
/// lists A's users and secrets only. A key id sent beside the cookie is checked as keys are
/// (the cookie lends it nothing).
async fn a_session_reaches_only_its_own_project(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let (a, b) = (app.project("a"), app.project("b"));
    let mut a_users = BTreeSet::new();
    let mut b_users = Vec::new();
    for n in 0..2 {
        a_users.insert(admin_user(&svc, &a, &format!("ann{n}@example.com")).await);
        b_users.push(admin_user(&svc, &b, &format!("bob{n}@example.com")).await);
    }
    // A deleted user and a disabled one of B's: restore and enable have something to do.
    let req = Req::new(Method::DELETE, format!("/admin/v1/users/{}", b_users[0])).keys(&b);
    assert_eq!(call(&svc, &req).await.status, StatusCode::OK);
    let req = Req::post(format!("/admin/v1/users/{}/disable", b_users[1])).keys(&b);
    assert_eq!(call(&svc, &req).await.status, StatusCode::OK);
    issue_secret(&svc, &b).await;
    let b_secrets = secret_ids(&svc, &b).await;
    let a_secrets = secret_ids(&svc, &a).await;
    let session = sign_in(&svc, &a).await;

    let b_before = Snapshot::take(&app, Some(&b.id));
    let written_before = Written::take(&app);
    let b_private: Vec<&str> = b_users
        .iter()
        .chain(&b_secrets)
        .map(String::as_str)
        .chain([b.secret.as_str(), "bob0@example.com", "bob1@example.com"])
        .collect();

    let mut problems = Vec::new();
    let mut probes = 0;
    let user_routes = [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::DELETE, "?purge=true"),
        (Method::POST, "/restore"),
        (Method::POST, "/disable"),
        (Method::POST, "/enable"),
        (Method::GET, "/events"),
    ];
    let mut pairs = Vec::new();
    for id in &b_users {
        let random = uuid::Uuid::new_v4().to_string();
        for (method, suffix) in &user_routes {
            let req = |id: &str| Req::new(method.clone(), format!("/admin/v1/users/{id}{suffix}"));
            pairs.push((req(id), req(&random)));
        }
    }
    for id in &b_secrets {
        let revoke = |id: &str| Req::post(format!("/admin/v1/secrets/{}/revoke", url_encode(id)));
        pairs.push((revoke(id), revoke(&uuid::Uuid::new_v4().to_string())));
    }
    for (theirs, unused) in pairs {
        probes += 1;
        let (theirs, unused) = (in_session(theirs, &session), in_session(unused, &session));
        let got = call(&svc, &theirs).await;
        let twin = call(&svc, &unused).await;
        if got.status != StatusCode::NOT_FOUND
            || (got.status, &got.body) != (twin.status, &twin.body)
        {
            problems.push(format!(
                "{}: {} {}, an unknown id: {} {}",
                theirs.describe(),
                got.status,
                got.body,
                twin.status,
                twin.body
            ));
        }
        for secret in b_private.iter().filter(|s| got.body.contains(*s)) {
            problems.push(format!("{}: {secret:?} in {}", theirs.describe(), got.body));
        }
    }

    // A's views in the session: A's users and secrets, nothing of B's.
    let list = in_session(Req::get("/admin/v1/users?status=all&limit=500"), &session);
    let reply = call(&svc, &list).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let listed: BTreeSet<String> = ids_in(&reply, "users").into_iter().collect();
    if listed != a_users {
        problems.push(format!("A's session lists {listed:?}, A has {a_users:?}"));
    }
    let reply = call(&svc, &in_session(Req::get("/admin/v1/secrets"), &session)).await;
    let listed: Vec<String> = ids_in(&reply, "secrets").into_iter().collect();
    if listed != a_secrets {
        problems.push(format!(
            "A's session lists secrets {listed:?}, A has {a_secrets:?}"
        ));
    }
    for path in [
        "/admin/v1/users?status=all&limit=500",
        "/admin/v1/users/count?status=all",
        "/admin/v1/users/export",
        "/admin/v1/audit?limit=500",
        "/admin/v1/secrets",
        "/admin/v1/session",
    ] {
        probes += 1;
        let reply = call(&svc, &in_session(Req::get(path), &session)).await;
        if reply.status != StatusCode::OK {
            problems.push(format!("GET {path}: {} {}", reply.status, reply.body));
        }
        for secret in b_private.iter().filter(|s| reply.body.contains(*s)) {
            problems.push(format!("GET {path}: {secret:?} in {}", reply.body));
        }
    }

    // B's key id beside A's cookie: the keys are checked (no secret: 401), the cookie is not
    // used, whatever the route.
    for req in [
        Req::get(format!("/admin/v1/users/{}", b_users[1])),
        Req::get("/admin/v1/users"),
        Req::get("/admin/v1/secrets"),
        Req::post("/admin/v1/secrets"),
    ] {
        probes += 1;
        let req = in_session(req, &session).key_id(&b.id);
        let reply = call(&svc, &req).await;
        problems.extend(refusal_problem(
            &req.describe(),
            &reply,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        ));
    }

    let b_after = Snapshot::take(&app, Some(&b.id));
    let written_after = Written::take(&app);
    console_figure(backend, "cross_project_probes", probes);
    console_figure(backend, "cross_project_failures", problems.len());
    assert!(problems.is_empty(), "{}", listing(&problems));
    assert_eq!(b_after, b_before, "B's rows changed");
    assert_eq!(written_after, written_before, "a refused request wrote");
    assert_eq!(secret_ids(&svc, &b).await, b_secrets);
}

/// Cookies that are not a live session's open nothing: a tampered token, another project's id
/// with A's token, A's id with B's token, malformed and empty values, and (on a change) the
/// CSRF token that matches the forged token, as an attacker can compute it. Each is 401 in the
/// admin API's shape on every route (never a 5xx), and nothing is written, not even an audit
/// event.
async fn forged_session_cookies_are_refused(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let (a, b) = (app.project("a"), app.project("b"));
    let user = admin_user(&svc, &a, "kept@example.com").await;
    let (sa, sb) = (sign_in(&svc, &a).await, sign_in(&svc, &b).await);
    let token = sa.token().to_owned();
    let mut flipped = token.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    let forged: Vec<String> = vec![
        format!("{}.{flipped}", a.id),
        format!("{}.{}", b.id, token),
        format!("{}.{}", a.id, sb.token()),
        format!("{}.{}", uuid::Uuid::new_v4(), token),
        format!("{}.{}", a.id, token.to_uppercase()),
        format!("{}.{}", a.id, "0".repeat(64)),
        format!("{}.{}", a.id, &token[..63]),
        format!("{}.{token}0", a.id),
        format!("{}..{token}", a.id),
        format!("{}.{token}.{token}", a.id),
        format!("{}.{}", a.id, "g".repeat(64)),
        format!("{{{}}}.{token}", a.id),
        format!("{}.{token}", a.id.replace('-', "")),
        format!("{}.", a.id),
        a.id.clone(),
        token.clone(),
        sa.csrf.clone(),
        format!("{}.{}", a.id, sa.csrf),
        "garbage".to_owned(),
        "%00".to_owned(),
        "%C3%A9".to_owned(),
        "' OR 1=1 --".to_owned(),
        "x".repeat(4000),
        String::new(),
    ];
    let written_before = Written::take(&app);
    let mut problems = Vec::new();
    let mut requests = 0;
    for value in &forged {
        // The CSRF token of the forged token, where there is one: the request then gets past
        // the CSRF check and is refused by the session's lookup.
        let csrf = value
            .split_once('.')
            .map_or(sa.csrf.clone(), |(_, t)| cotterd::sessions::csrf_token(t));
        for req in [
            Req::get("/admin/v1/session"),
            Req::get("/admin/v1/users?status=all"),
            Req::get(format!("/admin/v1/users/{user}")),
            Req::get("/admin/v1/secrets"),
            Req::get("/admin/v1/audit"),
            Req::new(Method::DELETE, "/admin/v1/session"),
            Req::new(Method::DELETE, format!("/admin/v1/users/{user}")),
            Req::post("/admin/v1/users").json(&json!({"identifier": "forged@example.com"})),
            Req::post("/admin/v1/secrets"),
        ] {
            requests += 1;
            let req = with_cookie(req, value).header(CSRF, &csrf);
            let reply = call(&svc, &req).await;
            let what = format!("{} with cookie {value:?}", req.describe());
            problems.extend(refusal_problem(
                &what,
                &reply,
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
            ));
            if set_cookie(&reply).is_some() {
                problems.push(format!("{what}: sets a cookie"));
            }
        }
    }
    // No cookie at all on the session's own routes.
    for req in [
        Req::get("/admin/v1/session"),
        Req::new(Method::DELETE, "/admin/v1/session"),
    ] {
        requests += 1;
        let reply = call(&svc, &req).await;
        problems.extend(refusal_problem(
            &req.describe(),
            &reply,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        ));
    }
    let written_after = Written::take(&app);
    console_figure(backend, "forged_cookie_requests", requests);
    console_figure(backend, "forged_cookie_failures", problems.len());
    assert!(problems.is_empty(), "{}", listing(&problems));
    assert_eq!(written_after, written_before, "a forged cookie wrote");
    // The real sessions still work.
    for session in [&sa, &sb] {
        let reply = call(&svc, &in_session(Req::get("/admin/v1/session"), session)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
}

/// A session ends at sign-out and when the secret it was made with is revoked (over the admin
/// API, with another secret): its cookie is then 401 everywhere, and other sessions go on.
async fn ended_sessions_are_refused(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let a = app.project("a");
    let (second_id, second) = issue_secret(&svc, &a).await;
    let with_second = Keys {
        id: a.id.clone(),
        secret: second,
    };
    let signed_out = sign_in(&svc, &a).await;
    let revoked = sign_in(&svc, &with_second).await;
    let kept = sign_in(&svc, &a).await;

    let out = in_session(Req::new(Method::DELETE, "/admin/v1/session"), &signed_out);
    let reply = call(&svc, &out).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let (cleared, _) = set_cookie(&reply).expect("sign-out clears the cookie");
    assert_eq!(cleared, "", "the cookie is emptied");
    let revoke = Req::post(format!("/admin/v1/secrets/{second_id}/revoke")).keys(&a);
    assert_eq!(call(&svc, &revoke).await.status, StatusCode::OK);

    let mut problems = Vec::new();
    for session in [&signed_out, &revoked] {
        for req in [
            Req::get("/admin/v1/session"),
            Req::get("/admin/v1/users"),
            Req::get("/admin/v1/secrets"),
            Req::new(Method::DELETE, "/admin/v1/session"),
            Req::post("/admin/v1/secrets"),
        ] {
            let req = in_session(req, session);
            let reply = call(&svc, &req).await;
            problems.extend(refusal_problem(
                &req.describe(),
                &reply,
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
            ));
        }
    }
    assert!(problems.is_empty(), "{}", listing(&problems));
    let reply = call(&svc, &in_session(Req::get("/admin/v1/users"), &kept)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// A way of sending a change with the session's cookie (and some token, or none).
type Attempt<'a> = Box<dyn Fn(Req) -> Req + 'a>;

/// A change made with the cookie needs the session's CSRF token in `X-CSRF-Token`: without it,
/// with an empty or a wrong one, with another session's (of the same project or another), with
/// the token in another case or cut short, in the query string or a cookie instead of the
/// header, or with the cookie's token itself, every change is 403 `CSRF_TOKEN_INVALID` and
/// nothing is written. With the right one each succeeds; a read needs none.
async fn state_changes_with_the_cookie_need_the_csrf_token(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let (a, b) = (app.project("a"), app.project("b"));
    let doomed = admin_user(&svc, &a, "doomed@example.com").await;
    let target = admin_user(&svc, &a, "target@example.com").await;
    let (spare, _) = issue_secret(&svc, &a).await;
    let session = sign_in(&svc, &a).await;
    let other = sign_in(&svc, &a).await;
    let b_session = sign_in(&svc, &b).await;

    // Every state-changing admin request, with what it answers when it succeeds (sign-out last:
    // it ends the session).
    let changes = [
        (
            Req::post("/admin/v1/users").json(&json!({"identifier": "csrf.new@example.com"})),
            StatusCode::CREATED,
        ),
        (
            Req::new(Method::DELETE, format!("/admin/v1/users/{doomed}")),
            StatusCode::OK,
        ),
        (
            Req::post(format!("/admin/v1/users/{doomed}/restore")),
            StatusCode::OK,
        ),
        (
            Req::post(format!("/admin/v1/users/{target}/disable")),
            StatusCode::OK,
        ),
        (
            Req::post(format!("/admin/v1/users/{target}/enable")),
            StatusCode::OK,
        ),
        (
            Req::post("/admin/v1/users/import").body(
                Some("application/x-ndjson"),
                "{\"identifier\": \"csrf.imported@example.com\"}\n",
            ),
            StatusCode::OK,
        ),
        (Req::post("/admin/v1/secrets"), StatusCode::CREATED),
        (
            Req::post(format!("/admin/v1/secrets/{spare}/revoke")),
            StatusCode::OK,
        ),
        (
            Req::new(Method::DELETE, "/admin/v1/session"),
            StatusCode::NO_CONTENT,
        ),
    ];
    let cookie = |req: Req| with_cookie(req, &session.cookie);
    let wrong = hex::encode(uuid::Uuid::new_v4().as_bytes()).repeat(2);
    let attempts: Vec<(&str, Attempt<'_>)> = vec![
        ("no token", Box::new(cookie)),
        ("empty token", Box::new(move |r| cookie(r).header(CSRF, ""))),
        (
            "wrong token",
            Box::new(move |r| cookie(r).header(CSRF, &wrong)),
        ),
        (
            "another session's token",
            Box::new(|r| cookie(r).header(CSRF, &other.csrf)),
        ),
        (
            "another project's session's token",
            Box::new(|r| cookie(r).header(CSRF, &b_session.csrf)),
        ),
        (
            "the token in capitals",
            Box::new(|r| cookie(r).header(CSRF, &session.csrf.to_uppercase())),
        ),
        (
            "the token cut short",
            Box::new(|r| cookie(r).header(CSRF, &session.csrf[..63])),
        ),
        (
            "the token and a space",
            Box::new(|r| cookie(r).header(CSRF, &format!("{} x", session.csrf))),
        ),
        (
            "the cookie's token",
            Box::new(|r| cookie(r).header(CSRF, session.token())),
        ),
        (
            "the token in the query",
            Box::new(|r: Req| {
                let separator = if r.uri.contains('?') { '&' } else { '?' };
                let uri = format!("{}{separator}X-CSRF-Token={}", r.uri, session.csrf);
                cookie(Req { uri, ..r })
            }),
        ),
        (
            "the token in a cookie",
            Box::new(|r| cookie(r).header("Cookie", &format!("X-CSRF-Token={}", session.csrf))),
        ),
        (
            "the token twice, the wrong one first",
            Box::new(|r| {
                cookie(r)
                    .header(CSRF, &other.csrf)
                    .header(CSRF, &session.csrf)
            }),
        ),
    ];

    let before = Written::take(&app);
    let mut problems = Vec::new();
    let mut refusals = 0;
    for (req, _) in &changes {
        for (how, attempt) in &attempts {
            let req = attempt(req.clone());
            let reply = call(&svc, &req).await;
            let what = format!("{} with {how}", req.describe());
            let problem =
                refusal_problem(&what, &reply, StatusCode::FORBIDDEN, "CSRF_TOKEN_INVALID");
            refusals += usize::from(problem.is_none());
            problems.extend(problem);
        }
    }
    let after = Written::take(&app);
    console_figure(backend, "csrf_attempts", changes.len() * attempts.len());
    console_figure(backend, "csrf_refusals", refusals);
    assert!(problems.is_empty(), "{}", listing(&problems));
    assert_eq!(after, before, "a change without its CSRF token wrote");

    // A read needs no token.
    let reply = call(&svc, &cookie(Req::get("/admin/v1/users?status=all"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // With the right token, every change goes through, and is recorded.
    for (req, success) in &changes {
        let req = in_session(req.clone(), &session);
        let reply = call(&svc, &req).await;
        assert_eq!(reply.status, *success, "{}: {}", req.describe(), reply.body);
    }
    let done = Written::take(&app);
    assert_eq!(
        done.audit - after.audit,
        changes.len() as i64,
        "one audit event per change"
    );
    assert_eq!(done.rows.users.len(), after.rows.users.len() + 2);
}

/// Hostile sign-in bodies: not JSON, other JSON types, unknown and duplicate fields, wrong
/// types, control characters, bytes that are not UTF-8, deep nesting, a body past
/// `MAX_BODY_BYTES` (413), other content types, and well-formed sign-ins with a key id that is
/// no UUID or no project's, a wrong, revoked or another project's secret. Each is a 4xx
/// `application/problem+json` in the admin API's shape, never a 5xx, never with a cookie or a
/// session, and no answer holds a secret. A right sign-in still works after them.
async fn hostile_sign_ins_are_refused(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let (a, b) = (app.project("a"), app.project("b"));
    let (revoked_id, revoked) = issue_secret(&svc, &a).await;
    let revoke = Req::post(format!("/admin/v1/secrets/{revoked_id}/revoke")).keys(&a);
    assert_eq!(call(&svc, &revoke).await.status, StatusCode::OK);
    let max_body = usize::try_from(app.state.settings.max_body_bytes).unwrap();
    let made_up = format!("{}{}", projects::SECRET_PREFIX, "0".repeat(64));

    let json_body = |value: &Value| serde_json::to_vec(value).unwrap();
    let with = |key_id: &str, secret: &str| json_body(&json!({"key_id": key_id, "secret": secret}));
    let raw = |s: &str| s.as_bytes().to_vec();
    let json = Some("application/json");
    let mut bodies: Vec<(Option<&str>, Vec<u8>, Option<StatusCode>)> = vec![
        (json, raw("not json"), Some(StatusCode::BAD_REQUEST)),
        (json, Vec::new(), Some(StatusCode::BAD_REQUEST)),
        (json, raw("null"), Some(StatusCode::BAD_REQUEST)),
        (json, raw("1"), Some(StatusCode::BAD_REQUEST)),
        (json, raw("\"str\""), Some(StatusCode::BAD_REQUEST)),
        (json, raw("[]"), Some(StatusCode::BAD_REQUEST)),
        (json, raw("{}"), Some(StatusCode::BAD_REQUEST)),
        (
            json,
            json_body(&json!([{"key_id": a.id, "secret": a.secret}])),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            json_body(&json!({"key_id": a.id, "secret": a.secret, "remember": true})),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            json_body(&json!({"key_id": a.id})),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            json_body(&json!({"secret": a.secret})),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            json_body(&json!({"key_id": a.id, "secret": null})),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            json_body(&json!({"key_id": 1, "secret": a.secret})),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            json_body(&json!({"key_id": [a.id], "secret": [a.secret]})),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            json_body(&json!({"key_id": {"$ne": null}, "secret": {"$ne": null}})),
            Some(StatusCode::BAD_REQUEST),
        ),
        // The right keys, and a duplicate of each: refused, whichever comes first.
        (
            json,
            raw(&format!(
                "{{\"key_id\": \"{}\", \"secret\": \"{}\", \"key_id\": \"{}\"}}",
                b.id, made_up, a.id
            )),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            raw(&format!(
                "{{\"key_id\": \"{}\", \"secret\": \"{}\", \"secret\": \"{}\"}}",
                a.id, made_up, a.secret
            )),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            [
                &b"{\"key_id\": \"\xff\xfe\", \"secret\": \""[..],
                a.secret.as_bytes(),
                b"\"}",
            ]
            .concat(),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            raw(&"[".repeat(10_000)),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            [with(&a.id, &a.secret), with(&a.id, &a.secret)].concat(),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json,
            with(&a.id, &"s".repeat(max_body + 1)),
            Some(StatusCode::PAYLOAD_TOO_LARGE),
        ),
        // Other content types, with the right keys.
        (
            None,
            with(&a.id, &a.secret),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ),
        (
            Some("text/plain"),
            with(&a.id, &a.secret),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            raw(&format!("key_id={}&secret={}", a.id, a.secret)),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ),
        // Well formed, wrong: 401.
        (json, with(&a.id, &made_up), Some(StatusCode::UNAUTHORIZED)),
        (json, with(&a.id, &b.secret), Some(StatusCode::UNAUTHORIZED)),
        (json, with(&b.id, &a.secret), Some(StatusCode::UNAUTHORIZED)),
        (json, with(&a.id, &revoked), Some(StatusCode::UNAUTHORIZED)),
        (json, with(&a.id, ""), Some(StatusCode::UNAUTHORIZED)),
        (json, with("", ""), Some(StatusCode::UNAUTHORIZED)),
        (json, with("", &a.secret), Some(StatusCode::UNAUTHORIZED)),
        (
            json,
            with(&uuid::Uuid::new_v4().to_string(), &a.secret),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with("not-a-uuid", &a.secret),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with(&format!("{{{}}}", a.id), &a.secret),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with(&a.id.replace('-', ""), &a.secret),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with(&format!(" {}", a.id), &a.secret),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with(&a.id, &format!("{} ", a.secret)),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with(&a.id, &a.secret.to_uppercase()),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with(&a.id, &a.secret[..a.secret.len() - 1]),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with(&a.id, &a.secret[..projects::SECRET_PREFIX.len() + 8]),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with("' OR 1=1 --", "' OR '1'='1"),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (json, with(&a.id, "%"), Some(StatusCode::UNAUTHORIZED)),
        (
            json,
            with(&"k".repeat(5000), &a.secret),
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            json,
            with(&a.id, &"s".repeat(5000)),
            Some(StatusCode::UNAUTHORIZED),
        ),
    ];
    // Control characters and odd Unicode, in the key id and in the secret.
    for c in [
        '\0', '\x01', '\x1b', '\n', '\r', '\x7f', '\u{85}', '\u{202E}', '\u{FEFF}',
    ] {
        bodies.push((json, with(&format!("{}{c}", a.id), &a.secret), None));
        bodies.push((json, with(&a.id, &format!("{}{c}", a.secret)), None));
        bodies.push((json, with(&c.to_string(), &c.to_string()), None));
    }

    let sessions_before = Written::take(&app).sessions;
    let secrets = [a.secret.as_str(), b.secret.as_str(), revoked.as_str()];
    let mut problems = Vec::new();
    let mut server_errors = 0;
    for (content_type, body, expected) in &bodies {
        let req = Req::post("/admin/v1/session").body(*content_type, body.clone());
        let reply = call(&svc, &req).await;
        let what = req.describe();
        server_errors += usize::from(reply.status.is_server_error());
        match expected {
            Some(status) if reply.status != *status => problems.push(format!(
                "{what}: {}, expected {status}: {}",
                reply.status, reply.body
            )),
            None if !reply.status.is_client_error() => problems.push(format!(
                "{what}: {}, expected a 4xx: {}",
                reply.status, reply.body
            )),
            _ => {}
        }
        if let Some(problem) = shape_problem(req.path(), &reply) {
            problems.push(format!("{what}: {problem}"));
        }
        if set_cookie(&reply).is_some() || reply.headers.contains_key("set-cookie") {
            problems.push(format!("{what}: sets a cookie"));
        }
        for secret in secrets.iter().filter(|s| reply.body.contains(**s)) {
            problems.push(format!("{what}: {secret:?} in {}", reply.body));
        }
    }
    let sessions_after = Written::take(&app).sessions;
    console_figure(backend, "hostile_sign_ins", bodies.len());
    console_figure(backend, "hostile_sign_in_5xx", server_errors);
    console_figure(backend, "hostile_sign_in_failures", problems.len());
    assert!(problems.is_empty(), "{}", listing(&problems));
    assert_eq!(
        sessions_after, sessions_before,
        "a refused sign-in made a session"
    );
    sign_in(&svc, &a).await;
}

/// Neither the secret a session was made with nor the session's token (nor their hashes) is in
/// the sign-in's answer, the session's, or anywhere in the audit trail (read over the API and
/// from the database), after a session's sign-in, changes, a secret issued and revoked in it,
/// failed sign-ins and a sign-out; the trail names the session by its prefix.
async fn secrets_and_session_tokens_stay_out_of_answers_and_the_audit_trail(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let (a, b) = (app.project("a"), app.project("b"));
    let reply = call(&svc, &sign_in_req(&a.id, &a.secret)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "the sign-in's answer is not stored"
    );
    let (cookie, _) = set_cookie(&reply).unwrap();
    let json = reply.json();
    let session = Session {
        cookie,
        csrf: json["csrf_token"].as_str().unwrap().to_owned(),
        json,
    };
    let token = session.token().to_owned();
    let fields: BTreeSet<&str> = session
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "project_id",
            "project_name",
            "session_prefix",
            "secret_prefix",
            "csrf_token",
            "created_at",
            "expires_at",
            "idle_timeout_secs",
        ])
    );
    assert!(a
        .secret
        .starts_with(session.json["secret_prefix"].as_str().unwrap()));
    assert_ne!(session.csrf, token);

    let mut answers = vec![reply.body.clone()];
    let session_reply = call(&svc, &in_session(Req::get("/admin/v1/session"), &session)).await;
    assert_eq!(
        session_reply.status,
        StatusCode::OK,
        "{}",
        session_reply.body
    );
    assert_eq!(
        session_reply.json(),
        session.json,
        "the session reads as it was made"
    );
    answers.push(session_reply.body.clone());

    // Changes in the session, a secret issued and revoked in it, failed sign-ins, sign-out.
    let user = {
        let req = Req::post("/admin/v1/users").json(&json!({"identifier": "traced@example.com"}));
        let reply = call(&svc, &in_session(req, &session)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply_id(&reply)
    };
    let req = Req::post(format!("/admin/v1/users/{user}/disable"));
    assert_eq!(
        call(&svc, &in_session(req, &session)).await.status,
        StatusCode::OK
    );
    let issued = call(&svc, &in_session(Req::post("/admin/v1/secrets"), &session)).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let issued_secret = issued.json()["secret"].as_str().unwrap().to_owned();
    let req = Req::post(format!("/admin/v1/secrets/{}/revoke", reply_id(&issued)));
    let revoked = call(&svc, &in_session(req, &session)).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    answers.push(revoked.body.clone());
    for secret in [&b.secret, &issued_secret, &format!("{} ", a.secret)] {
        let reply = call(&svc, &sign_in_req(&a.id, secret)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
        answers.push(reply.body);
    }
    let audit = call(&svc, &Req::get("/admin/v1/audit?limit=500").keys(&a)).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let out = in_session(Req::new(Method::DELETE, "/admin/v1/session"), &session);
    assert_eq!(call(&svc, &out).await.status, StatusCode::NO_CONTENT);

    let mut forbidden: Vec<String> = Vec::new();
    for secret in [&a.secret, &b.secret, &issued_secret] {
        let hash = hex::encode(projects::hash_secret(secret));
        forbidden.extend([
            secret.clone(),
            secret[..projects::SECRET_PREFIX.len() + 12].to_owned(),
            hash.to_uppercase(),
            hash,
        ]);
    }
    let token_hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    forbidden.extend([
        token.clone(),
        token[..16].to_owned(),
        token.to_uppercase(),
        token_hash.to_uppercase(),
        token_hash,
    ]);
    let trail = audit_rows(&app);
    let mut found = Vec::new();
    let sources = answers
        .iter()
        .map(|a| ("an answer", a))
        .chain(std::iter::once(("the audit API", &audit.body)))
        .chain(trail.iter().map(|row| ("the audit table", row)));
    for (source, text) in sources {
        for secret in forbidden.iter().filter(|s| text.contains(s.as_str())) {
            found.push(format!("{secret:?} in {source}: {text}"));
        }
    }
    // The CSRF token only ever reaches the page: not the trail either.
    for row in trail.iter().filter(|row| row.contains(&session.csrf)) {
        found.push(format!("the CSRF token in the audit table: {row}"));
    }
    console_figure(backend, "audit_rows_scanned", trail.len());
    console_figure(backend, "secret_in_output", found.len());
    assert!(found.is_empty(), "{}", listing(&found));

    // The trail names the session by its prefix, for each thing done in it.
    let actor = format!(
        "console:{}",
        session.json["session_prefix"].as_str().unwrap()
    );
    let events = call(&svc, &Req::get("/admin/v1/audit?limit=500").keys(&a)).await;
    let actions: BTreeSet<String> = events.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == actor.as_str())
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "console.signin",
        "user.create",
        "user.disable",
        "secret.create",
        "secret.revoke",
        "console.signout",
    ] {
        assert!(actions.contains(action), "{action} by {actor}: {actions:?}");
    }
}

both_backends!(
    a_session_reaches_only_its_own_project,
    forged_session_cookies_are_refused,
    ended_sessions_are_refused,
    state_changes_with_the_cookie_need_the_csrf_token,
    hostile_sign_ins_are_refused,
    secrets_and_session_tokens_stay_out_of_answers_and_the_audit_trail,
);

/// Prints `figure: console.<backend>.<name> = <value>` for reliability/run.
fn console_figure(backend: Backend, name: &str, value: impl std::fmt::Display) {
    figure(&format!("console.{}.{name}", backend.label()), value);
}

/// The `id` of every object in the array `field` of a reply.
fn ids_in(reply: &Reply, field: &str) -> Vec<String> {
    reply.json()[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

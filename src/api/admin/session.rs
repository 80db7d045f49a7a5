//! The browser console's session: sign in with a project's key id and secret (the secret is
//! sent once, and the browser keeps only an `HttpOnly` cookie), read the session (with its CSRF
//! token, which only a page of this origin can read), sign out.

use std::net::IpAddr;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AdminBodyErrors, Operator};
use crate::api::request::read_json;
use crate::audit::{self, Context};
use crate::auth::{self, Caller, Console, Credentials, Policy, Project};
use crate::error::{AdminError, Error, ProblemBody};
use crate::limits::Budget;
use crate::request_id::RequestId;
use crate::sessions::{self, Lifetimes, Session};
use crate::{db, ids, projects, time, AppState};

type Result<T, E = AdminError> = std::result::Result<T, E>;

/// Longest key id or secret a sign-in may send (both are much shorter).
const MAX_CREDENTIAL_CHARS: usize = 200;

/// The console's own routes: the session cookie and nothing else.
pub struct ConsoleSession;

impl Policy for ConsoleSession {
    const CREDENTIALS: Credentials = Operator::CREDENTIALS;
    const BUDGET: Budget = Budget::Admin;
    type Error = AdminError;
    const CONSOLE: Console = Console::Required;
}

/// Body of `POST /admin/v1/session`. Not `Debug`: it holds a secret.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    /// The project's `API_KEY_ID`.
    #[schema(format = Uuid)]
    key_id: String,
    /// One of the project's live secrets (`API_SECRET_KEY`).
    #[schema(max_length = 200)]
    secret: String,
}

/// A console session, as the page reads it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SessionJson {
    /// The project's `API_KEY_ID`.
    project_id: String,
    project_name: String,
    /// Names the session in the audit trail (`console:<prefix>`).
    session_prefix: String,
    /// The printed prefix of the secret the session was made with.
    secret_prefix: String,
    /// What a state-changing request made with the cookie sends in `X-CSRF-Token`.
    csrf_token: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// When the session ends at the latest.
    #[schema(format = DateTime)]
    expires_at: String,
    /// Seconds of disuse after which it ends.
    idle_timeout_secs: u64,
}

impl SessionJson {
    fn new(project_id: &str, name: String, session: &Session, lifetimes: Lifetimes) -> Self {
        SessionJson {
            project_id: project_id.to_owned(),
            project_name: name,
            session_prefix: session.prefix().to_owned(),
            secret_prefix: session.secret_prefix.clone(),
            csrf_token: session.csrf_token.clone(),
            created_at: time::format(session.created_at),
            expires_at: time::format(session.expires_at(lifetimes)),
            idle_timeout_secs: lifetimes.idle.as_secs(),
        }
    }
}

fn console_enabled(state: &AppState) -> std::result::Result<(), Error> {
    if state.settings.console_enabled {
        Ok(())
    } else {
        Err(Error::NotFound(
            "the console is turned off on this server (CONSOLE_ENABLED=false)",
        ))
    }
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Headers a proxy adds: a request carrying one did not come from a browser on this machine.
const FORWARDING_HEADERS: [&str; 4] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Whether the cookie goes without `Secure`: when told to (`CONSOLE_INSECURE_COOKIES`), or for a
/// console opened on the server's own machine over plain HTTP: the server listens on a loopback
/// address, the connection comes from one, the browser asked for a loopback host, and no proxy
/// header says otherwise. Anything else gets `Secure`.
fn insecure_cookie(state: &AppState, req: &HttpRequest) -> bool {
    if state.settings.console_insecure_cookies {
        return true;
    }
    let bound_loopback = state
        .settings
        .bind_addr
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|addr| addr.ip().is_loopback())
        || is_loopback_host(&state.settings.bind_addr);
    let peer_loopback = req.peer_addr().is_some_and(|peer| peer.ip().is_loopback());
    let host_loopback = req
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(is_loopback_host);
    let forwarded = FORWARDING_HEADERS
        .iter()
        .any(|name| req.headers().contains_key(*name));
    bound_loopback && peer_loopback && host_loopback && !forwarded
}

fn cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(sessions::COOKIE, value)
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

/// `POST /admin/v1/session`: signs in to the console.
///
/// Checks the key id and secret as the admin API does, starts a session and sets its cookie
/// (`HttpOnly`, `SameSite=Strict`, `Path=/admin`, `Secure` unless on loopback or
/// `CONSOLE_INSECURE_COOKIES=true`). Attempts are limited per client address
/// (`CONSOLE_SIGNIN_PER_MINUTE`); each is audited in its project (`console.signin`,
/// `console.signin_failed`).
#[utoipa::path(
    post,
    path = "/admin/v1/session",
    operation_id = "admin_sign_in",
    tag = "admin",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = SessionJson),
        (status = 400, description = "INVALID_REQUEST: the body breaks a rule", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "UNAUTHORIZED: the key id or the secret is wrong", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: the console is turned off", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "TOO_MANY_ATTEMPTS: too many sign-ins from this address; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "SERVICE_UNAVAILABLE: busy; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
        AdminBodyErrors,
    )
)]
pub(crate) async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    console_enabled(&state)?;
    if let Some(peer) = req.peer_addr() {
        state.limits.check_signin(peer.ip())?;
    }
    let SignIn { key_id, mut secret } = read_json(&req, payload).await?;
    // Longer than any secret: wrong, and answered (and audited) as any wrong secret is.
    if secret.chars().count() > MAX_CREDENTIAL_CHARS {
        secret.clear();
    }
    let request_id = req.extensions().get::<RequestId>().map(|id| id.0.clone());
    let lifetimes = Lifetimes::of(&state.settings);
    let failures = state.limits.clone();
    let replaces = req.cookie(sessions::COOKIE).map(|c| c.value().to_owned());
    let (project_id, name, session, cookie_value) = db::run(&state.pool, move |conn| {
        let project = match auth::verify_keys(conn, &key_id, &secret) {
            Ok(project) => project,
            Err(Error::Unauthorized(_)) => {
                record_failure(conn, &failures, &key_id, request_id)?;
                return Err(Error::Unauthorized("API_KEY_ID or API_SECRET_KEY is wrong"));
            }
            Err(other) => return Err(other),
        };
        let started =
            sessions::start(conn, project.id(), &secret, replaces.as_deref(), request_id)?;
        let name = project_name(conn, &project)?;
        Ok((
            project.id().to_string(),
            name,
            started.session,
            started.cookie,
        ))
    })
    .await?;
    let response = HttpResponse::Ok()
        .cookie(cookie(cookie_value, !insecure_cookie(&state, &req)))
        .json(SessionJson::new(&project_id, name, &session, lifetimes));
    Ok(response)
}

/// Records a failed sign-in in the project the key id names, if it names one (nothing is
/// recorded for a key id no project has: there is no project to record it in). A key id is no
/// secret, so anyone may fail to sign in to any project: past a few a minute per project
/// (`limits::RateLimits::record_signin_failure`) failures are only logged, so that nobody can
/// fill a project's trail.
fn record_failure(
    conn: &mut db::DbConn,
    limits: &crate::limits::RateLimits,
    key_id: &str,
    request_id: Option<String>,
) -> std::result::Result<(), Error> {
    let Some(id) = ids::parse_uuid(key_id) else {
        return Ok(());
    };
    if projects::find(conn, &id)?.is_none() {
        return Ok(());
    }
    if !limits.record_signin_failure(id) {
        log::warn!("console sign-in failed for project {id} (not audited: too many this minute)");
        return Ok(());
    }
    let context = Context {
        actor: "console:anonymous".to_owned(),
        request_id,
    };
    audit::record_project(conn, &id, &context, "console.signin_failed", json!({}))
}

fn project_name(conn: &mut db::DbConn, project: &Project) -> std::result::Result<String, Error> {
    let id = ids::parse_uuid(project.id().as_str())
        .ok_or_else(|| Error::Internal("a project's id is not a UUID".into()))?;
    Ok(projects::find(conn, &id)?
        .map(|record| record.name)
        .unwrap_or_default())
}

/// The project and live session the request's cookie names (the console's own routes).
async fn session_of(req: &HttpRequest, state: &AppState) -> Result<(Project, Session)> {
    console_enabled(state)?;
    let project = Caller::<ConsoleSession>::extract(req).await?.into_project();
    let session = project
        .session()
        .cloned()
        .ok_or(Error::Unauthorized("no console session"))?;
    Ok((project, session))
}

/// `GET /admin/v1/session`: the console session the cookie holds, with its CSRF token.
#[utoipa::path(
    get,
    path = "/admin/v1/session",
    operation_id = "admin_get_session",
    tag = "admin",
    security(("console_session" = [])),
    responses(
        (status = 200, description = "The session", body = SessionJson),
        (status = 401, description = "UNAUTHORIZED: no live session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: the console is turned off", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "RATE_LIMITED: the project's admin budget is spent; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "SERVICE_UNAVAILABLE: busy; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_session(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let (project, session) = session_of(&req, &state).await?;
    let lifetimes = Lifetimes::of(&state.settings);
    let named = project.clone();
    let name = db::run(&state.pool, move |conn| project_name(conn, &named)).await?;
    let response = HttpResponse::Ok().json(SessionJson::new(
        project.id().as_str(),
        name,
        &session,
        lifetimes,
    ));
    Ok(response)
}

/// `DELETE /admin/v1/session`: signs out (the session ends on every instance at once) and
/// clears the cookie. Needs the CSRF token.
#[utoipa::path(
    delete,
    path = "/admin/v1/session",
    operation_id = "admin_sign_out",
    tag = "admin",
    security(("console_session" = [])),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
        (status = 401, description = "UNAUTHORIZED: no live session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "CSRF_TOKEN_INVALID: X-CSRF-Token is missing or wrong", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: the console is turned off", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "RATE_LIMITED: the project's admin budget is spent; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "SERVICE_UNAVAILABLE: busy; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn sign_out(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    let (project, session) = session_of(&req, &state).await?;
    let context = super::context(&project, &req);
    let owner = project.id().clone();
    db::run(&state.pool, move |conn| {
        sessions::end(conn, &owner, &session, &context)
    })
    .await?;
    let mut removal = cookie(String::new(), !insecure_cookie(&state, &req));
    removal.make_removal();
    let response = HttpResponse::NoContent().cookie(removal).finish();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1:8080",
            "[2001:db8::1]:443",
            "localhost.example.com",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}

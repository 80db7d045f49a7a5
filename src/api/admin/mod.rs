//! The admin API (`/admin/v1`), for operators' dashboards: find, page, count, create, delete,
//! restore, purge, disable and enable users; the audit trail; sign-up statistics.
//!
//! Every route needs both keys, whatever the project's policy, or the browser console's session
//! (`session`, `sessions`), and spends the admin budget
//! (`RATE_LIMIT_ADMIN`). Errors are RFC 9457 problem details with a stable `code`
//! (`error::AdminError`). Every change is recorded in the audit trail in the change's own transaction.

mod audit;
pub mod cursor;
mod events;
mod query;
mod secrets;
mod session;
mod transfer;
mod users;

pub(crate) use users::AdminUserJson;

use actix_web::http::Method;
use actix_web::HttpMessage;
use actix_web::HttpRequest;
use utoipa::OpenApi;

use crate::api::doc::error_set;
use crate::api::route::Endpoint;
use crate::auth::{Console, Credentials, Policy, Project};
use crate::error::{AdminError, ProblemBody, PROBLEM_JSON};
use crate::limits::Budget;
use crate::request_id::RequestId;

/// The admin routes. Fixed paths come before the templates that would also match them.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/admin/v1/users", |r| r.to(users::list_users)),
        Endpoint::new(Method::POST, "/admin/v1/users", |r| {
            r.to(users::create_user)
        }),
        Endpoint::new(Method::GET, "/admin/v1/users/count", |r| {
            r.to(users::count_users)
        }),
        Endpoint::new(Method::GET, "/admin/v1/users/export", |r| {
            r.to(transfer::export_users)
                .wrap(actix_web::middleware::Compress::default())
        }),
        Endpoint::new(Method::POST, "/admin/v1/users/import", |r| {
            r.to(transfer::import_users)
        }),
        Endpoint::new(Method::GET, "/admin/v1/users/{user_id}", |r| {
            r.to(users::get_user)
        }),
        Endpoint::new(Method::DELETE, "/admin/v1/users/{user_id}", |r| {
            r.to(users::delete_user)
        }),
        Endpoint::new(Method::POST, "/admin/v1/users/{user_id}/restore", |r| {
            r.to(users::restore_user)
        }),
        Endpoint::new(Method::POST, "/admin/v1/users/{user_id}/disable", |r| {
            r.to(users::disable_user)
        }),
        Endpoint::new(Method::POST, "/admin/v1/users/{user_id}/enable", |r| {
            r.to(users::enable_user)
        }),
        Endpoint::new(Method::GET, "/admin/v1/users/{user_id}/events", |r| {
            r.to(events::list_user_events)
        }),
        Endpoint::new(Method::GET, "/admin/v1/audit", |r| r.to(audit::list_events)),
        Endpoint::new(Method::GET, "/admin/v1/stats/signups", |r| {
            r.to(audit::signups)
        }),
        Endpoint::new(Method::GET, "/admin/v1/secrets", |r| {
            r.to(secrets::list_secrets)
        }),
        Endpoint::new(Method::POST, "/admin/v1/secrets", |r| {
            r.to(secrets::create_secret)
        }),
        Endpoint::new(Method::POST, "/admin/v1/secrets/{secret_id}/revoke", |r| {
            r.to(secrets::revoke_secret)
        }),
        Endpoint::new(Method::POST, "/admin/v1/session", |r| {
            r.to(session::sign_in)
        }),
        Endpoint::new(Method::GET, "/admin/v1/session", |r| {
            r.to(session::get_session)
        }),
        Endpoint::new(Method::DELETE, "/admin/v1/session", |r| {
            r.to(session::sign_out)
        }),
    ]
}

/// Marks every answer of the admin API private: `Cache-Control: no-store` (unless the route set
/// its own) and `X-Content-Type-Options: nosniff`. They carry users' data, and a browser's cookie
/// opens them.
pub async fn private_answers(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header::{self, HeaderValue};
    let admin = req.path().starts_with("/admin/v1/");
    let mut res = next.call(req).await?;
    if admin {
        let headers = res.headers_mut();
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    Ok(res)
}

/// Operators: both keys, whatever the project's policy, or a console session; the admin
/// budget.
pub struct Operator;

impl Policy for Operator {
    const CREDENTIALS: Credentials = Credentials::KeyAndSecret;
    const BUDGET: Budget = Budget::Admin;
    type Error = AdminError;
    const CONSOLE: Console = Console::Accepted;
}

/// Who makes a change and in which request, for the audit trail.
fn context(project: &Project, req: &HttpRequest) -> crate::audit::Context {
    crate::audit::Context {
        actor: project.actor(),
        request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()),
    }
}

error_set!(
    /// Errors every admin route can answer (document only).
    AdminKeyErrors,
    ProblemBody,
    PROBLEM_JSON,
    [
        (400, "INVALID_REQUEST, INVALID_PARAMETER, …: a parameter breaks a rule."),
        (401, "UNAUTHORIZED: missing or invalid keys."),
        (429, "RATE_LIMITED: the project's admin budget is spent; see Retry-After."),
        (431, "HEADERS_TOO_LARGE: the request line and headers exceed MAX_HEADER_BYTES."),
        (503, "SERVICE_UNAVAILABLE: busy; see Retry-After."),
    ]
);

error_set!(
    /// Errors the admin routes that name a user can answer, besides the key errors (document
    /// only).
    AdminUserErrors,
    ProblemBody,
    PROBLEM_JSON,
    [(404, "USER_NOT_FOUND: no such user in this project."),]
);

error_set!(
    /// Errors every admin route with a body can answer, besides its own (document only).
    AdminBodyErrors,
    ProblemBody,
    PROBLEM_JSON,
    [
        (408, "REQUEST_TIMEOUT: the body came too slowly."),
        (413, "BODY_TOO_LARGE: the body is larger than MAX_BODY_BYTES."),
        (415, "UNSUPPORTED_MEDIA_TYPE: the body is not application/json."),
    ]
);

/// The admin operations of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    events::list_user_events,
    users::list_users,
    users::create_user,
    users::count_users,
    transfer::export_users,
    transfer::import_users,
    users::get_user,
    users::delete_user,
    users::restore_user,
    users::disable_user,
    users::enable_user,
    audit::list_events,
    audit::signups,
    secrets::list_secrets,
    secrets::create_secret,
    secrets::revoke_secret,
    session::sign_in,
    session::get_session,
    session::sign_out,
), modifiers(&SessionAlternative))]
pub struct Doc;

/// Adds the console's session cookie as an alternative to the two key headers on every admin
/// operation that takes them (the extractor accepts either: `Console::Accepted`).
struct SessionAlternative;

impl utoipa::Modify for SessionAlternative {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                if let Some(security) = &mut operation.security {
                    let keyed = security.iter().any(|requirement| {
                        serde_json::to_value(requirement)
                            .is_ok_and(|value| value.get("api_key_id").is_some())
                    });
                    if keyed {
                        security.push(SecurityRequirement::new("console_session", [""; 0]));
                    }
                }
            }
        }
    }
}

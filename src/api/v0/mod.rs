//! Cotter's v0 User API: its routes, its access policies and its part of the OpenAPI document.
//!
//! Wire format: Cotter's User object (`users::UserJson`) and its `{"msg", "type"}` errors
//! (`error::CotterError`).

mod events;
mod methods;
mod users;

pub use users::CreateUser;

use actix_web::http::Method;
use utoipa::OpenApi;

use crate::api::doc::error_set;
use crate::api::route::Endpoint;
use crate::auth::{Credentials, Policy};
use crate::error::{CotterError, CotterErrorBody};
use crate::limits::Budget;

/// The v0 routes. `/api/v0/user/list`, `/create`, `/methods` and `/enrolled/any/…` come
/// before the templates that would also match them.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::POST, "/api/v0/user/create", |r| {
            r.to(users::create_user)
        }),
        Endpoint::new(Method::GET, "/api/v0/user/list", |r| {
            r.to(users::list_users)
        }),
        Endpoint::new(Method::GET, "/api/v0/user", |r| {
            r.to(users::get_user_by_identifier)
        }),
        Endpoint::new(Method::GET, "/api/v0/user/methods", |r| {
            r.to(methods::enrolled_by_cotter_id)
        }),
        Endpoint::new(Method::PUT, "/api/v0/user/methods", |r| {
            r.to(methods::update_methods_by_cotter_id)
        }),
        Endpoint::new(
            Method::GET,
            "/api/v0/user/enrolled/any/{client_user_id}/{method}",
            |r| r.to(methods::enrolled_any),
        ),
        Endpoint::new(
            Method::GET,
            "/api/v0/user/enrolled/{client_user_id}/{method}",
            |r| r.to(methods::enrolled_method),
        ),
        // The key may be standard base64, whose `/` would split it: the rest of the path.
        Endpoint::new(
            Method::GET,
            "/api/v0/user/enrolled/{client_user_id}/{method}/{encKey:.+}",
            |r| r.to(methods::enrolled_key),
        ),
        Endpoint::new(Method::GET, "/api/v0/user/{client_user_id}", |r| {
            r.to(users::get_user)
        }),
        Endpoint::new(Method::PUT, "/api/v0/user/{client_user_id}", |r| {
            r.to(methods::update_methods)
        }),
        Endpoint::new(
            Method::POST,
            "/api/v0/user/reset/{step}/{client_user_id}",
            |r| r.to(methods::reset_pin),
        ),
        Endpoint::new(Method::POST, "/api/v0/event/create", |r| {
            r.to(events::create_event)
        }),
    ]
}

/// Apps built on Cotter's SDKs reading a user: `API_KEY_ID` (and `API_SECRET_KEY` when the
/// project requires it); the read budget.
pub struct AppRead;

impl Policy for AppRead {
    const CREDENTIALS: Credentials = Credentials::KeyId;
    const BUDGET: Budget = Budget::Read;
    type Error = CotterError;
}

/// Apps built on Cotter's SDKs creating a user: `API_KEY_ID` (and `API_SECRET_KEY` when the
/// project requires it); the write budget.
pub struct AppWrite;

impl Policy for AppWrite {
    const CREDENTIALS: Credentials = Credentials::KeyId;
    const BUDGET: Budget = Budget::Write;
    type Error = CotterError;
}

/// Backend services listing users: both keys; the read budget.
pub struct ServerRead;

impl Policy for ServerRead {
    const CREDENTIALS: Credentials = Credentials::KeyAndSecret;
    const BUDGET: Budget = Budget::Read;
    type Error = CotterError;
}

error_set!(
    /// Errors every keyed v0 route can answer (document only).
    V0KeyErrors,
    CotterErrorBody,
    [
        (401, "Missing or invalid keys."),
        (429, "The project's budget is spent; see Retry-After."),
        (503, "The database is busy; see Retry-After."),
    ]
);

error_set!(
    /// Errors every v0 route with a body can answer, besides its own (document only).
    V0BodyErrors,
    CotterErrorBody,
    [
        (408, "The body came too slowly."),
        (413, "The body is larger than MAX_BODY_BYTES."),
        (415, "The body is not application/json."),
    ]
);

/// The v0 operations of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    users::create_user,
    users::get_user_by_identifier,
    users::get_user,
    users::list_users,
    methods::update_methods,
    methods::update_methods_by_cotter_id,
    methods::enrolled_method,
    methods::enrolled_key,
    methods::enrolled_any,
    methods::enrolled_by_cotter_id,
    methods::reset_pin,
    events::create_event,
))]
pub struct Doc;

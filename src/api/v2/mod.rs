//! Cradl's v2 Users API: its routes, its access policies and its part of the OpenAPI document.
//!
//! Every route needs `API_KEY_ID` and `API_SECRET_KEY` (the data is personal). Responses carry
//! `error_codes`: `[]` on success; on failure every problem found, as stable UPPER_SNAKE codes,
//! with a `msg` for people (`error::V2Error`). A v2 user is a v0 user whose identifier is the
//! login email, so both APIs see the same users.

mod accounts;
mod users;
pub mod validate;
mod verify;

use actix_web::http::Method;
use actix_web::HttpResponse;
use utoipa::OpenApi;

use crate::api::doc::error_set;
use crate::api::route::Endpoint;
use crate::auth::{Credentials, Policy};
use crate::error::{V2Error, V2ErrorBody};
use crate::limits::Budget;

type V2Result = Result<HttpResponse, V2Error>;

/// The v2 routes.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::POST, "/v2/users", |r| r.to(users::create_user)),
        Endpoint::new(Method::POST, "/v2/users/verify", |r| {
            r.to(verify::verify_password)
        }),
        Endpoint::new(Method::GET, "/v2/users/{user_id}", |r| {
            r.to(users::get_user)
        }),
        Endpoint::new(Method::PATCH, "/v2/users/{user_id}", |r| {
            r.to(users::patch_user)
        }),
        Endpoint::new(Method::POST, "/v2/accounts", |r| {
            r.to(accounts::open_account)
        }),
    ]
}

/// Backend services reading users: both keys; the read budget.
pub struct ServerRead;

impl Policy for ServerRead {
    const CREDENTIALS: Credentials = Credentials::KeyAndSecret;
    const BUDGET: Budget = Budget::Read;
    type Error = V2Error;
}

/// Backend services creating and changing users and accounts: both keys; the write budget.
pub struct ServerWrite;

impl Policy for ServerWrite {
    const CREDENTIALS: Credentials = Credentials::KeyAndSecret;
    const BUDGET: Budget = Budget::Write;
    type Error = V2Error;
}

error_set!(
    /// Errors every v2 route can answer (document only).
    V2KeyErrors,
    V2ErrorBody,
    [
        (401, "UNAUTHORIZED: missing or invalid keys."),
        (429, "RATE_LIMITED: the project's budget is spent; see Retry-After."),
        (503, "SERVICE_UNAVAILABLE: busy; see Retry-After."),
    ]
);

error_set!(
    /// Errors every v2 route with a body can answer, besides its own (document only).
    V2BodyErrors,
    V2ErrorBody,
    [
        (408, "REQUEST_TIMEOUT: the body came too slowly."),
        (413, "BODY_TOO_LARGE: the body is larger than MAX_BODY_BYTES."),
        (415, "UNSUPPORTED_MEDIA_TYPE: the body is not application/json."),
    ]
);

/// The v2 operations of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    users::create_user,
    users::get_user,
    users::patch_user,
    verify::verify_password,
    accounts::open_account,
))]
pub struct Doc;

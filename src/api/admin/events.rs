//! A user's login events (`POST /api/v0/event/create`), newest first.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::query::limit;
use super::{AdminKeyErrors, AdminUserErrors, Operator};
use crate::api::request::read_query;
use crate::auth::Caller;
use crate::error::{AdminError, Error};
use crate::events::{self, Event};
use crate::ids::UserId;
use crate::users::admin;
use crate::{db, time, AppState};

type Result<T, E = AdminError> = std::result::Result<T, E>;

/// Events a page holds by default, and at most.
const DEFAULT_EVENTS: i64 = 50;
const MAX_EVENTS: i64 = 500;

/// Query of `GET /admin/v1/users/{user_id}/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Events a page holds: 1 to 500, 50 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page; empty means the first page.
    #[param(value_type = Option<String>, max_length = 64)]
    pub cursor: Option<String>,
}

/// One login event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LoginEventJson {
    /// The event's id (the `ID` the SDK got).
    id: i64,
    /// When the server decided it, RFC 3339 UTC.
    at: String,
    /// What was approved, as the app named it (`LOGIN_OR_UPDATE_NAME` …).
    event: String,
    /// `PIN`, `BIOMETRIC` or `TRUSTED_DEVICE`.
    method: String,
    /// Whether it was approved.
    approved: bool,
    /// As the app sent them.
    ip: String,
    location: String,
    /// The app's timestamp (unix seconds), as sent.
    timestamp: String,
}

impl From<Event> for LoginEventJson {
    fn from(event: Event) -> Self {
        LoginEventJson {
            id: event.id,
            at: time::format(event.data.created_at),
            event: event.data.event,
            method: event.data.method,
            approved: event.data.approved,
            ip: event.data.ip,
            location: event.data.location,
            timestamp: event.data.client_timestamp,
        }
    }
}

/// A page of a user's events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LoginEventPage {
    events: Vec<LoginEventJson>,
    /// Older events; null on the last page.
    next_cursor: Option<String>,
}

/// A cursor: the last event's id, for this user, opaque to clients.
fn encode(user: &UserId, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", user.as_str()))
}

fn decode(user: &UserId, raw: &str) -> Result<i64, Error> {
    let invalid = || {
        Error::problem(
            "CURSOR_INVALID",
            "cursor is not a cursor this server issued",
        )
    };
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (owner, id) = text.split_once(':').ok_or_else(invalid)?;
    if owner != user.as_str() {
        return Err(Error::problem(
            "CURSOR_MISMATCH",
            "cursor belongs to another user's events",
        ));
    }
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(invalid)
}

/// `GET /admin/v1/users/{user_id}/events`: the user's login events, newest first (deleted
/// users' too, until purged).
#[utoipa::path(
    get,
    path = "/admin/v1/users/{user_id}/events",
    operation_id = "admin_list_user_events",
    tag = "admin",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id"), EventsQuery),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "A page of events", body = LoginEventPage),
        AdminUserErrors, AdminKeyErrors,
    )
)]
pub(crate) async fn list_user_events(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let query: EventsQuery = read_query(&req)?;
    let id = UserId::parse(&path).ok_or(Error::UserNotFound)?;
    let limit = limit(query.limit.as_deref(), DEFAULT_EVENTS, MAX_EVENTS)?;
    if query.cursor.as_ref().is_some_and(|c| c.len() > 64) {
        return Err(Error::problem(
            "CURSOR_INVALID",
            "cursor is not a cursor this server issued",
        )
        .into());
    }
    let before = query
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| decode(&id, c))
        .transpose()?;
    let project = caller.into_project();
    let user = id.clone();
    let (rows, more) = db::run(&state.pool, move |conn| {
        // 404 for no such user (another project's included), as every admin user route.
        admin::get(conn, project.id(), &user)?;
        events::page(conn, project.id(), user.as_str(), before, limit)
    })
    .await?;
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => Some(encode(&id, last.id)),
        _ => None,
    };
    Ok(HttpResponse::Ok().json(LoginEventPage {
        events: rows.into_iter().map(LoginEventJson::from).collect(),
        next_cursor,
    }))
}

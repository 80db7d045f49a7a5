//! The audit trail, newest first, and sign-up statistics.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::cursor::{self, KeyKind};
use super::query::limit;
use super::{AdminKeyErrors, Operator};
use crate::api::request::read_query;
use crate::audit::{self, Position};
use crate::auth::Caller;
use crate::error::{AdminError, Error};
use crate::users::admin::{self, SortKey, Start};
use crate::{db, time, AppState};

type Result<T, E = AdminError> = std::result::Result<T, E>;

/// Events a page holds by default, and at most.
const DEFAULT_EVENTS: i64 = 50;
const MAX_EVENTS: i64 = 500;
/// Days `signups` covers by default, and at most.
const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 366;

/// Query of `GET /admin/v1/audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Events a page holds: 1 to 500, 50 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` or `prev_cursor` of a page of the trail; empty means none.
    #[param(value_type = Option<String>, max_length = 2048)]
    pub cursor: Option<String>,
}

/// One change, as the trail shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventJson {
    #[schema(format = Uuid)]
    id: String,
    /// RFC 3339 UTC.
    at: String,
    /// `secret:<prefix>` (an admin API call, named by the secret's printed prefix), `cli` (a
    /// `cotterd` command) or `retention` (the server's purge of long-deleted users).
    actor: String,
    /// `user.create`, `user.delete`, `user.restore`, `user.purge`, `user.disable`,
    /// `user.enable`, `project.create`, `project.update`, `secret.create`, `secret.revoke`.
    action: String,
    user_id: Option<String>,
    request_id: Option<String>,
    /// What else the change was (never identifiers, passwords or secrets).
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// A page of the trail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventPage {
    events: Vec<EventJson>,
    /// Older events; null on the last page.
    next_cursor: Option<String>,
    /// Newer events; null on the first page.
    prev_cursor: Option<String>,
}

/// The trail's cursors carry no filters.
const TRAIL: &str = "audit";

fn position_of(event: &audit::Event) -> admin::Position {
    admin::Position {
        key: SortKey::Created(event.at),
        id: event.id.clone(),
    }
}

/// `GET /admin/v1/audit`: the project's audit trail, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    operation_id = "admin_list_audit",
    tag = "admin",
    params(AuditQuery),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        AdminKeyErrors,
    )
)]
pub(crate) async fn list_events(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let query: AuditQuery = read_query(&req)?;
    let limit = limit(query.limit.as_deref(), DEFAULT_EVENTS, MAX_EVENTS)?;
    let fingerprint = cursor::fingerprint(&[TRAIL]);
    let raw = query.cursor.as_deref().filter(|c| !c.is_empty());
    let start = cursor::start(raw, &fingerprint, KeyKind::Time)?;
    let to_audit = |p: &admin::Position| match &p.key {
        SortKey::Created(at) => Some(Position {
            at: *at,
            id: p.id.clone(),
        }),
        SortKey::Identifier(_) => None,
    };
    let (after, before) = match &start {
        Start::First => (None, None),
        Start::After(p) => (to_audit(p), None),
        Start::Before(p) => (None, to_audit(p)),
    };
    let project = caller.into_project();
    let (events, more) = db::run(&state.pool, move |conn| {
        audit::page(conn, project.id(), limit, after.as_ref(), before.as_ref())
    })
    .await?;
    let (has_next, has_prev) = match &start {
        Start::First => (more, false),
        Start::After(_) => (more, true),
        Start::Before(_) => (true, more),
    };
    let next_cursor = events
        .last()
        .filter(|_| has_next)
        .map(|e| cursor::after(&position_of(e), &fingerprint));
    let prev_cursor = events
        .first()
        .filter(|_| has_prev)
        .map(|e| cursor::before(&position_of(e), &fingerprint));
    let events = events
        .into_iter()
        .map(|event| {
            let detail = audit::detail_of(&event)?;
            Ok(EventJson {
                id: event.id,
                at: time::format(event.at),
                actor: event.actor,
                action: event.action,
                user_id: event.user_id,
                request_id: event.request_id,
                detail,
            })
        })
        .collect::<std::result::Result<Vec<_>, Error>>()?;
    Ok(HttpResponse::Ok().json(EventPage {
        events,
        next_cursor,
        prev_cursor,
    }))
}

/// Query of `GET /admin/v1/stats/signups`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignupsQuery {
    /// Days to cover, ending today (UTC): 1 to 366, 30 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 366)]
    pub days: Option<String>,
}

/// Sign-ups on one UTC day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Day {
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    date: String,
    count: i64,
}

/// `GET /admin/v1/stats/signups`: users created per UTC day, oldest day first, every day
/// present (zero-filled). Users deleted since count on the day they signed up.
#[utoipa::path(
    get,
    path = "/admin/v1/stats/signups",
    operation_id = "admin_signups",
    tag = "admin",
    params(SignupsQuery),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "One entry a day", body = Vec<Day>),
        AdminKeyErrors,
    )
)]
pub(crate) async fn signups(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let query: SignupsQuery = read_query(&req)?;
    let days = limit(query.days.as_deref(), DEFAULT_DAYS, MAX_DAYS).map_err(|_| {
        Error::problem(
            "INVALID_PARAMETER",
            "days must be a whole number from 1 to 366",
        )
    })?;
    let today: NaiveDate = Utc::now().date_naive();
    let project = caller.into_project();
    let counts = db::run(&state.reads, move |conn| {
        admin::signups(conn, project.id(), today, u32::try_from(days).unwrap_or(30))
    })
    .await?;
    let body: Vec<Day> = counts
        .into_iter()
        .map(|(date, count)| Day {
            date: date.format("%Y-%m-%d").to_string(),
            count,
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

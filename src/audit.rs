//! The audit trail: who changed what, written in the same transaction as the change.
//!
//! Every admin API change and every `cotterd projects …` / `cotterd secrets …` command records
//! one event. An event names the user by id only, and its `detail` never holds identifiers,
//! passwords or secrets (a secret is named by its printed prefix), so that erasing a user leaves
//! no personal data behind here.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::schema::audit_events;
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::{scope, time};

/// Longest `request_id` kept (the header is the client's to choose).
const MAX_REQUEST_ID_CHARS: usize = 200;

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct Event {
    pub id: String,
    pub issuer: String,
    pub at: NaiveDateTime,
    /// `secret:<prefix>` (an admin API call), `cli` or `retention` (the server's own purge).
    pub actor: String,
    /// `user.create`, `user.delete`, …: README lists them.
    pub action: String,
    pub user_id: Option<String>,
    pub request_id: Option<String>,
    /// A JSON object.
    pub detail: String,
}

/// Who is making a change, and in which request: what every event of it records.
#[derive(Debug, Clone)]
pub struct Context {
    pub actor: String,
    pub request_id: Option<String>,
}

impl Context {
    /// A change made by a `cotterd` command.
    pub fn cli() -> Self {
        Context {
            actor: "cli".to_owned(),
            request_id: None,
        }
    }

    /// A change the server makes on its own (the retention purge).
    pub fn retention() -> Self {
        Context {
            actor: "retention".to_owned(),
            request_id: None,
        }
    }
}

fn insert(
    conn: &mut DbConn,
    issuer: &str,
    context: &Context,
    action: &str,
    user_id: Option<&str>,
    detail: Value,
) -> Result<()> {
    let event = Event {
        id: Uuid::new_v4().to_string(),
        issuer: issuer.to_owned(),
        at: time::now(),
        actor: context.actor.clone(),
        action: action.to_owned(),
        user_id: user_id.map(str::to_owned),
        request_id: context
            .request_id
            .as_deref()
            .map(|id| id.chars().take(MAX_REQUEST_ID_CHARS).collect()),
        detail: detail.to_string(),
    };
    diesel::insert_into(audit_events::table)
        .values(&event)
        .execute(conn)?;
    Ok(())
}

/// Records a change to one of the project's users. Call it inside the change's transaction.
pub fn record_user(
    conn: &mut DbConn,
    project: &ProjectId,
    context: &Context,
    action: &str,
    user: &UserId,
    detail: Value,
) -> Result<()> {
    insert(
        conn,
        project.as_str(),
        context,
        action,
        Some(user.as_str()),
        detail,
    )
}

/// Records a change to a project itself (its policy, its secrets) made outside the HTTP API,
/// where the project is named by its id. Call it inside the change's transaction.
pub fn record_project(
    conn: &mut DbConn,
    project: &Uuid,
    context: &Context,
    action: &str,
    detail: Value,
) -> Result<()> {
    insert(conn, &project.to_string(), context, action, None, detail)
}

/// Records a change that names no single user, made by an authenticated caller: to many of the
/// project's users at once (an import's batch, with counts) or to the project's own access (a
/// console sign-in or sign-out). Call it inside the change's transaction.
pub fn record_users(
    conn: &mut DbConn,
    project: &ProjectId,
    context: &Context,
    action: &str,
    detail: Value,
) -> Result<()> {
    insert(conn, project.as_str(), context, action, None, detail)
}

/// Records a change to a user of the project named by its id, made by the server itself (the
/// retention purge, which works across projects). Call it inside the change's transaction.
pub fn record_user_of(
    conn: &mut DbConn,
    project: &Uuid,
    context: &Context,
    action: &str,
    user_id: &str,
    detail: Value,
) -> Result<()> {
    insert(
        conn,
        &project.to_string(),
        context,
        action,
        Some(user_id),
        detail,
    )
}

/// A position in the trail: an event's time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub at: NaiveDateTime,
    pub id: String,
}

/// Up to `limit` of the project's events, newest first: from the newest, or those after
/// (older than) `after`, or those just before (newer than) `before`. Also whether more follow
/// in the direction read.
pub fn page(
    conn: &mut DbConn,
    project: &ProjectId,
    limit: i64,
    after: Option<&Position>,
    before: Option<&Position>,
) -> Result<(Vec<Event>, bool)> {
    let mut query = scope::audit_of(project)
        .select(Event::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(p) = after {
        query = query
            .filter(audit_events::at.le(p.at))
            .filter(
                audit_events::at
                    .lt(p.at)
                    .or(audit_events::id.lt(p.id.clone())),
            )
            .order((audit_events::at.desc(), audit_events::id.desc()));
    } else if let Some(p) = before {
        query = query
            .filter(audit_events::at.ge(p.at))
            .filter(
                audit_events::at
                    .gt(p.at)
                    .or(audit_events::id.gt(p.id.clone())),
            )
            .order((audit_events::at.asc(), audit_events::id.asc()));
    } else {
        query = query.order((audit_events::at.desc(), audit_events::id.desc()));
    }
    let mut events: Vec<Event> = query.load(conn)?;
    let more = events.len() as i64 > limit;
    events.truncate(usize::try_from(limit).unwrap_or(0));
    if before.is_some() {
        events.reverse();
    }
    Ok((events, more))
}

/// The `detail` of a stored event as JSON (an internal error when it is not an object: the
/// server writes only objects).
pub fn detail_of(event: &Event) -> Result<Value> {
    match serde_json::from_str::<Value>(&event.detail) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(Error::Internal(format!(
            "audit event {}: stored detail is not a JSON object",
            event.id
        ))),
    }
}

/// An empty `detail`.
pub fn no_detail() -> Value {
    json!({})
}

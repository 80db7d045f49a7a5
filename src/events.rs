//! Login events (`POST /api/v0/event/create`): each check of a PIN or a device's signature is
//! stored with who asked, when, how, from where (as the app sent it) and whether it was
//! approved; accepted signatures are remembered while their timestamp is fresh, so that a
//! replay is refused on any instance.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::db::schema::{events, used_signatures};
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::ProjectId;
use crate::scope;

/// A stored event: its id and what was stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct Event {
    pub id: i64,
    #[diesel(embed)]
    pub data: NewEvent,
}

/// An event about to be stored: what the app sent and what the server decided.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct NewEvent {
    pub issuer: String,
    pub user_id: String,
    pub client_user_id: String,
    pub event: String,
    pub method: String,
    pub ip: String,
    pub location: String,
    pub client_timestamp: String,
    pub approved: bool,
    pub created_at: NaiveDateTime,
}

/// The name a verified signed message is remembered by: its key and its text (not the
/// signature's bytes, which an ECDSA signature lets a replayer alter without the key).
pub fn replay_name(key_hash: &str, message: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(key_hash.as_bytes());
    hash.update([0]);
    hash.update(message);
    hex::encode(hash.finalize())
}

/// Stores an event of the project, first claiming its signed message when there is one (a 409
/// when it was accepted before: a replay); `also` runs in the same transaction (enrolling the
/// key an approval brought). The stored event.
pub fn record(
    conn: &mut DbConn,
    project: &ProjectId,
    event: NewEvent,
    signed: Option<String>,
    also: impl FnOnce(&mut DbConn) -> Result<()>,
) -> Result<Event> {
    conn.transaction(|conn| {
        if let Some(name) = signed {
            let claimed = diesel::insert_into(used_signatures::table)
                .values((
                    used_signatures::issuer.eq(project.as_str()),
                    used_signatures::signature_hash.eq(name),
                    used_signatures::used_at.eq(event.created_at),
                ))
                .execute(conn);
            match claimed.map_err(Error::from) {
                Ok(_) => {}
                Err(Error::Conflict(_)) => {
                    return Err(Error::Conflict(
                        "this signed approval was already used (a replay)",
                    ))
                }
                Err(other) => return Err(other),
            }
        }
        also(conn)?;
        // A user purged since it was read: as if it never existed.
        let id: i64 = diesel::insert_into(events::table)
            .values(&event)
            .returning(events::id)
            .get_result(conn)
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                    _,
                ) => Error::UserNotFound,
                other => Error::from(other),
            })?;
        Ok(Event { id, data: event })
    })
}

/// Forgets accepted signatures older than twice the allowed skew (a timestamp that old is
/// refused anyway); how many.
pub fn forget_used(conn: &mut DbConn, now: NaiveDateTime, skew_secs: u64) -> Result<usize> {
    let cutoff = now - Duration::seconds(i64::try_from(skew_secs).unwrap_or(i64::MAX / 4) * 2);
    Ok(
        diesel::delete(used_signatures::table.filter(used_signatures::used_at.lt(cutoff)))
            .execute(conn)?,
    )
}

/// Deletes up to `batch` events of any project stored before `cutoff`; how many. The one
/// read is a sweep across projects; the deletes name their project (one per project found).
pub fn purge_older(conn: &mut DbConn, cutoff: NaiveDateTime, batch: i64) -> Result<usize> {
    let old: Vec<(String, i64)> = events::table
        .filter(events::created_at.lt(cutoff))
        .select((events::issuer, events::id))
        .order(events::id.asc())
        .limit(batch)
        .load(conn)?;
    let mut by_project: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (issuer, id) in old {
        by_project.entry(issuer).or_default().push(id);
    }
    let mut deleted = 0;
    for (issuer, ids) in by_project {
        deleted += diesel::delete(
            events::table
                .filter(events::issuer.eq(issuer))
                .filter(events::id.eq_any(ids)),
        )
        .execute(conn)?;
    }
    Ok(deleted)
}

/// One page of a user's events, newest first: `limit` events with ids below `before` (all
/// when `None`), and whether more follow.
pub fn page(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<Event>, bool)> {
    let mut query = scope::events_of(project)
        .filter(events::user_id.eq(user_id.to_owned()))
        .select(Event::as_select())
        .order(events::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(events::id.lt(before));
    }
    let mut rows = query.load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((rows, more))
}

//! The export: a project's users as NDJSON records, oldest first, read in keyset chunks inside
//! one consistent snapshot, so that a file of a million users is written in constant memory and
//! shows the project as it was at one instant.

use std::collections::HashMap;

use diesel::prelude::*;
use serde::Serialize;

use crate::api::admin::AdminUserJson;
use crate::db::schema::{accounts, users};
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::users::admin::{self, AdminUser, Filter, Order, Position, SortKey, Start};
use crate::users::{Profile, User};
use crate::{scope, time};

/// Users read per query.
pub const CHUNK: i64 = 1_000;

/// What to export.
#[derive(Debug, Clone)]
pub struct Export {
    /// The admin list's filters (an export defaults to every status).
    pub filter: Filter,
    /// Resume after this user (the last record a dropped download received).
    pub after: Option<UserId>,
    /// Add each user's `password_hash` (PHC string; null for users without a password).
    pub include_password_hash: bool,
}

/// An account in an export record.
#[derive(Debug, Serialize)]
struct AccountJson {
    id: String,
    #[serde(rename = "type")]
    account_type: String,
    created_at: String,
}

/// A chunk of users read, and their accounts, on its way from the reading thread to the
/// writing one.
struct Chunk {
    rows: Vec<(User, Profile, Option<String>)>,
    accounts: Vec<(String, String, String, chrono::NaiveDateTime)>,
}

/// Starts the snapshot the export reads in: on PostgreSQL a read-only REPEATABLE READ
/// transaction (one snapshot for every statement); on SQLite the transaction's first read fixes
/// the snapshot (WAL) until it ends.
fn snapshot(conn: &mut DbConn) -> Result<()> {
    if let DbConn::Pg(_) = conn {
        diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(conn)?;
    }
    Ok(())
}

/// Writes the project's users that `export` selects as NDJSON, oldest first (`created_at`,
/// then `id`), handing `write` a chunk of lines at a time; `write` answers false to stop (the
/// client went away). How many records were written. An `after` that names no user of the
/// project is `INVALID_PARAMETER`, before anything is written.
///
/// Two threads share the work: this one reads the chunks (the transaction is its connection's),
/// another turns each into lines and writes them, so that the database reads the next chunk
/// while the last one is written.
pub fn run(
    conn: &mut DbConn,
    project: &ProjectId,
    export: &Export,
    write: impl FnMut(Vec<u8>) -> bool + Send,
) -> Result<u64> {
    conn.transaction(|conn| {
        snapshot(conn)?;
        let mut start = match &export.after {
            None => Start::First,
            Some(id) => {
                let created_at = scope::every_user_of(project)
                    .filter(users::id.eq(id.as_str()))
                    .select(users::created_at)
                    .first(conn)
                    .optional()?
                    .ok_or_else(|| {
                        Error::problem("INVALID_PARAMETER", "after names no user of this project")
                    })?;
                Start::After(Position {
                    key: SortKey::Created(created_at),
                    id: id.as_str().to_owned(),
                })
            }
        };
        let include_password_hash = export.include_password_hash;
        std::thread::scope(|scope| {
            let (chunks, received) = std::sync::mpsc::sync_channel::<Chunk>(1);
            let writer = scope.spawn(move || write_lines(received, include_password_hash, write));
            let read = (|| -> Result<()> {
                loop {
                    // `page_query` reads one more than asked, to tell whether more follow.
                    let rows: Vec<(User, Profile, Option<String>)> = admin::page_query(
                        project,
                        &export.filter,
                        Order::CreatedAsc,
                        &start,
                        CHUNK - 1,
                    )
                    .select((
                        User::as_select(),
                        Profile::as_select(),
                        users::password_hash,
                    ))
                    .load(conn)?;
                    let Some((last, _, _)) = rows.last() else {
                        return Ok(());
                    };
                    let more = rows.len() as i64 == CHUNK;
                    start = Start::After(Position::of(last, Order::CreatedAsc));
                    let accounts = accounts_of(conn, project, &rows)?;
                    if chunks.send(Chunk { rows, accounts }).is_err() || !more {
                        return Ok(());
                    }
                }
            })();
            drop(chunks);
            let written = writer
                .join()
                .map_err(|_| Error::Internal("the export's writing thread panicked".into()))?;
            read?;
            written
        })
    })
}

/// The accounts of a chunk's users, oldest first (one query).
fn accounts_of(
    conn: &mut DbConn,
    project: &ProjectId,
    rows: &[(User, Profile, Option<String>)],
) -> Result<Vec<(String, String, String, chrono::NaiveDateTime)>> {
    let ids: Vec<&str> = rows.iter().map(|(user, _, _)| user.id.as_str()).collect();
    Ok(scope::accounts_of(project)
        .filter(accounts::user_id.eq_any(&ids))
        .order((accounts::created_at.asc(), accounts::id.asc()))
        .select((
            accounts::user_id,
            accounts::id,
            accounts::account_type,
            accounts::created_at,
        ))
        .load(conn)?)
}

/// Turns each chunk into NDJSON lines and hands them to `write`; how many records were written.
fn write_lines(
    chunks: std::sync::mpsc::Receiver<Chunk>,
    include_password_hash: bool,
    mut write: impl FnMut(Vec<u8>) -> bool,
) -> Result<u64> {
    let mut written = 0u64;
    for chunk in chunks {
        let count = chunk.rows.len() as u64;
        let lines = render(chunk, include_password_hash)?;
        if !write(lines) {
            break;
        }
        written += count;
    }
    Ok(written)
}

fn encoding(e: serde_json::Error) -> Error {
    Error::Internal(format!("cannot write an export record: {e}"))
}

/// The NDJSON lines of a chunk: each user's admin object, its accounts and, when asked for, its
/// password hash, one line each.
fn render(chunk: Chunk, include_password_hash: bool) -> Result<Vec<u8>> {
    let mut by_user: HashMap<String, Vec<AccountJson>> = HashMap::new();
    for (user_id, id, account_type, created_at) in chunk.accounts {
        by_user.entry(user_id).or_default().push(AccountJson {
            id,
            account_type,
            created_at: time::format(created_at),
        });
    }
    let mut out = Vec::with_capacity(chunk.rows.len() * 1024);
    for (user, profile, password_hash) in chunk.rows {
        let accounts = by_user.remove(&user.id).unwrap_or_default();
        let admin = AdminUser {
            account_ids: accounts.iter().map(|a| a.id.clone()).collect(),
            has_login: password_hash.is_some(),
            user,
            profile,
        };
        // The admin object, then the record's own keys spliced in before its closing brace.
        serde_json::to_writer(&mut out, &AdminUserJson::try_from(admin)?).map_err(encoding)?;
        out.pop();
        out.extend_from_slice(b",\"accounts\":");
        serde_json::to_writer(&mut out, &accounts).map_err(encoding)?;
        if include_password_hash {
            out.extend_from_slice(b",\"password_hash\":");
            serde_json::to_writer(&mut out, &password_hash).map_err(encoding)?;
        }
        out.extend_from_slice(b"}\n");
    }
    Ok(out)
}

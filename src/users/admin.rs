//! What the admin API does with users: find and page them by any status, count them, and
//! delete, restore, purge, disable or enable one, each change with its audit event in the same
//! transaction.
//!
//! Lists are keyset pages on (order key, id) over the indexes
//! `users (issuer, created_at DESC, id DESC, deleted_at, disabled_at)` and
//! `users (issuer, identifier_normalized, id, deleted_at, disabled_at)`: a deep page costs what
//! page 0 costs, and the status filters are answered from the index. A prefix search is a range
//! of the normalised identifier (`>= q` and `<` the next string after every string starting with
//! `q`), compared bytewise on both backends (the column's collation is "C" on PostgreSQL), so
//! `%` and `_` are ordinary characters.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use super::{NewUser, Profile, User};
use crate::audit::{self, Context};
use crate::db::schema::{accounts, idempotency_keys, user_identifiers, users};
use crate::db::{DbConn, MultiBackend};
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::{scope, time};

/// Which users a list shows, by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Neither disabled nor deleted (the default).
    Active,
    /// Disabled and not deleted.
    Disabled,
    /// Deleted (whether or not disabled before).
    Deleted,
    /// Every user.
    All,
}

impl Status {
    /// The status's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
            Status::Deleted => "deleted",
            Status::All => "all",
        }
    }

    /// The status of one user.
    pub fn of(user: &User) -> Status {
        if user.deleted_at.is_some() {
            Status::Deleted
        } else if user.disabled_at.is_some() {
            Status::Disabled
        } else {
            Status::Active
        }
    }
}

/// The order of a list; every order ends on the id, so that it is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// Newest first (the default).
    CreatedDesc,
    /// Oldest first.
    CreatedAsc,
    /// By the normalised identifier, so that case does not split the list.
    IdentifierAsc,
}

impl Order {
    /// The order's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::CreatedDesc => "created_at.desc",
            Order::CreatedAsc => "created_at.asc",
            Order::IdentifierAsc => "identifier.asc",
        }
    }
}

/// What a list or a count is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Filter {
    pub status: Status,
    /// A normalised identifier prefix (`normalize_identifier`); `None` for every identifier.
    pub prefix: Option<String>,
    /// Users created at or after this time.
    pub created_after: Option<NaiveDateTime>,
    /// Users created strictly before this time.
    pub created_before: Option<NaiveDateTime>,
}

/// A row's place in an order: its order key and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub key: SortKey,
    pub id: String,
}

/// The order key of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// `created_at`, for the two time orders.
    Created(NaiveDateTime),
    /// `identifier_normalized`, for the identifier order.
    Identifier(String),
}

impl Position {
    /// Where `user` stands in `order`.
    pub fn of(user: &User, order: Order) -> Position {
        let key = match order {
            Order::CreatedDesc | Order::CreatedAsc => SortKey::Created(user.created_at),
            Order::IdentifierAsc => SortKey::Identifier(user.identifier_normalized.clone()),
        };
        Position {
            key,
            id: user.id.clone(),
        }
    }
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// At the beginning of the order.
    First,
    /// Just after this position (the next page).
    After(Position),
    /// Just before this position (the previous page).
    Before(Position),
}

/// A user as the admin API shows it.
#[derive(Debug, Clone)]
pub struct AdminUser {
    pub user: User,
    pub profile: Profile,
    /// Whether the user signed up through v2 (has a login email and password).
    pub has_login: bool,
    /// Oldest first.
    pub account_ids: Vec<String>,
}

/// One page of a list, in the list's order, and whether more rows follow in the direction it
/// was read (after the last row for `First`/`After`, before the first row for `Before`).
#[derive(Debug)]
pub struct Page {
    pub users: Vec<AdminUser>,
    pub more: bool,
}

/// The smallest string greater than every string that starts with `prefix`, in code point
/// order (which is UTF-8 byte order): the prefix with its last character stepped up, dropping
/// trailing characters that cannot be. `None` when every string from `prefix` on qualifies.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The project's users that `filter` selects, as a boxed query (every column): what a count
/// counts (public so that tests can EXPLAIN it).
pub fn filtered<'a>(
    project: &'a ProjectId,
    filter: &'a Filter,
) -> users::BoxedQuery<'a, MultiBackend> {
    let mut query = scope::every_user_of(project).into_boxed();
    query = match filter.status {
        Status::Active => query
            .filter(users::deleted_at.is_null())
            .filter(users::disabled_at.is_null()),
        Status::Disabled => query
            .filter(users::deleted_at.is_null())
            .filter(users::disabled_at.is_not_null()),
        Status::Deleted => query.filter(users::deleted_at.is_not_null()),
        Status::All => query,
    };
    if let Some(prefix) = &filter.prefix {
        query = query.filter(users::identifier_normalized.ge(prefix.as_str()));
        if let Some(end) = prefix_end(prefix) {
            query = query.filter(users::identifier_normalized.lt(end));
        }
    }
    if let Some(after) = filter.created_after {
        query = query.filter(users::created_at.ge(after));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(users::created_at.lt(before));
    }
    query
}

/// The query of one page: `filter`'s users from `start` in `order`, `limit + 1` rows (the extra
/// one says whether more follow). Public so that tests can EXPLAIN exactly what is run.
pub fn page_query<'a>(
    project: &'a ProjectId,
    filter: &'a Filter,
    order: Order,
    start: &'a Start,
    limit: i64,
) -> users::BoxedQuery<'a, MultiBackend> {
    let mut query = filtered(project, filter).limit(limit + 1);
    // Reading backwards (the previous page) walks the order reversed, and the page is turned
    // round afterwards.
    let (position, forward) = match start {
        Start::First => (None, true),
        Start::After(p) => (Some(p), true),
        Start::Before(p) => (Some(p), false),
    };
    // `ascending` is the direction of the walk in key terms.
    let ascending = match order {
        Order::CreatedDesc => !forward,
        Order::CreatedAsc | Order::IdentifierAsc => forward,
    };
    if let Some(Position { key, id }) = position {
        let id = id.as_str();
        query = match (key, ascending) {
            (SortKey::Created(at), true) => query
                .filter(users::created_at.ge(*at))
                .filter(users::created_at.gt(*at).or(users::id.gt(id))),
            (SortKey::Created(at), false) => query
                .filter(users::created_at.le(*at))
                .filter(users::created_at.lt(*at).or(users::id.lt(id))),
            (SortKey::Identifier(key), true) => query
                .filter(users::identifier_normalized.ge(key.as_str()))
                .filter(
                    users::identifier_normalized
                        .gt(key.as_str())
                        .or(users::id.gt(id)),
                ),
            (SortKey::Identifier(key), false) => query
                .filter(users::identifier_normalized.le(key.as_str()))
                .filter(
                    users::identifier_normalized
                        .lt(key.as_str())
                        .or(users::id.lt(id)),
                ),
        };
    }
    match (order, ascending) {
        (Order::CreatedDesc | Order::CreatedAsc, true) => {
            query.order((users::created_at.asc(), users::id.asc()))
        }
        (Order::CreatedDesc | Order::CreatedAsc, false) => {
            query.order((users::created_at.desc(), users::id.desc()))
        }
        (Order::IdentifierAsc, true) => {
            query.order((users::identifier_normalized.asc(), users::id.asc()))
        }
        (Order::IdentifierAsc, false) => {
            query.order((users::identifier_normalized.desc(), users::id.desc()))
        }
    }
}

/// The columns an admin user is read from.
type Row = (User, Profile, bool);

/// The account ids of each of `users`, oldest first, in one query.
fn with_accounts(conn: &mut DbConn, project: &ProjectId, rows: Vec<Row>) -> Result<Vec<AdminUser>> {
    let ids: Vec<&str> = rows.iter().map(|(user, _, _)| user.id.as_str()).collect();
    let accounts: Vec<(String, String)> = if ids.is_empty() {
        Vec::new()
    } else {
        scope::accounts_of(project)
            .filter(accounts::user_id.eq_any(&ids))
            .order((accounts::created_at.asc(), accounts::id.asc()))
            .select((accounts::user_id, accounts::id))
            .load(conn)?
    };
    // Oldest first within each user, as loaded.
    let mut by_user: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (user_id, id) in accounts {
        by_user.entry(user_id).or_default().push(id);
    }
    Ok(rows
        .into_iter()
        .map(|(user, profile, has_login)| AdminUser {
            account_ids: by_user.remove(&user.id).unwrap_or_default(),
            user,
            profile,
            has_login,
        })
        .collect())
}

/// One page of the project's users (see [`page_query`]), 1 to 500 a page.
pub fn page(
    conn: &mut DbConn,
    project: &ProjectId,
    filter: &Filter,
    order: Order,
    start: &Start,
    limit: i64,
) -> Result<Page> {
    let mut rows: Vec<Row> = page_query(project, filter, order, start, limit)
        .select((
            User::as_select(),
            Profile::as_select(),
            users::password_hash.is_not_null(),
        ))
        .load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if matches!(start, Start::Before(_)) {
        rows.reverse();
    }
    Ok(Page {
        users: with_accounts(conn, project, rows)?,
        more,
    })
}

/// How many of the project's users `filter` selects.
pub fn count(conn: &mut DbConn, project: &ProjectId, filter: &Filter) -> Result<i64> {
    Ok(filtered(project, filter).count().get_result(conn)?)
}

/// The project's user with this id, whatever its status (`UserNotFound` when there is none).
pub fn get(conn: &mut DbConn, project: &ProjectId, id: &UserId) -> Result<AdminUser> {
    let row: Row = scope::every_user_of(project)
        .filter(users::id.eq(id.as_str()))
        .select((
            User::as_select(),
            Profile::as_select(),
            users::password_hash.is_not_null(),
        ))
        .first(conn)
        .optional()?
        .ok_or(Error::UserNotFound)?;
    with_accounts(conn, project, vec![row])?
        .pop()
        .ok_or_else(|| Error::Internal("a read user went missing".into()))
}

/// Creates a user of the project (made by the v0 create's rules) and records it; the stored
/// user.
pub fn create(
    conn: &mut DbConn,
    project: &ProjectId,
    new: NewUser,
    context: &Context,
) -> Result<AdminUser> {
    conn.transaction(|conn| {
        let user = super::insert(conn, new)?;
        let id = UserId::parse(&user.id)
            .ok_or_else(|| Error::Internal("a new user's id is not a UUID".into()))?;
        audit::record_user(
            conn,
            project,
            context,
            "user.create",
            &id,
            audit::no_detail(),
        )?;
        get(conn, project, &id)
    })
}

/// Marks the user's identifiers deleted (`Some`) or live again (`None`), as its row: a restore
/// whose identifier a live user took meanwhile is `IdentifierTaken` (the index decides).
fn mirror_deletion(
    conn: &mut DbConn,
    project: &ProjectId,
    id: &UserId,
    deleted_at: Option<NaiveDateTime>,
) -> Result<()> {
    diesel::update(
        user_identifiers::table
            .filter(user_identifiers::issuer.eq(project.as_str()))
            .filter(user_identifiers::user_id.eq(id.as_str())),
    )
    .set(user_identifiers::deleted_at.eq(deleted_at))
    .execute(conn)
    .map_err(super::taken)?;
    Ok(())
}

/// Takes the row lock of the project's user (a write that changes nothing) so that concurrent
/// changes to one user run one after the other, on both backends; `UserNotFound` when there is
/// none.
fn lock(conn: &mut DbConn, project: &ProjectId, id: &UserId) -> Result<User> {
    let user = scope::every_user_of(project).filter(users::id.eq(id.as_str()));
    let matched = diesel::update(user)
        .set(users::updated_at.eq(users::updated_at))
        .execute(conn)?;
    if matched == 0 {
        return Err(Error::UserNotFound);
    }
    Ok(user.select(User::as_select()).first(conn)?)
}

/// Soft-deletes the project's user: from now on v0 and v2 do not see it, and its identifier may
/// be taken again. Deleting a deleted user changes nothing and answers the same.
pub fn soft_delete(
    conn: &mut DbConn,
    project: &ProjectId,
    id: &UserId,
    context: &Context,
) -> Result<AdminUser> {
    conn.transaction(|conn| {
        let user = lock(conn, project, id)?;
        if user.deleted_at.is_none() {
            let now = time::now();
            diesel::update(scope::every_user_of(project).filter(users::id.eq(id.as_str())))
                .set((users::deleted_at.eq(now), users::updated_at.eq(now)))
                .execute(conn)?;
            mirror_deletion(conn, project, id, Some(now))?;
            audit::record_user(
                conn,
                project,
                context,
                "user.delete",
                id,
                audit::no_detail(),
            )?;
        }
        get(conn, project, id)
    })
}

/// Brings a soft-deleted user back; `IdentifierTaken` when a live user took its identifier
/// meanwhile (the partial unique index decides). Restoring a user that is not deleted changes
/// nothing.
pub fn restore(
    conn: &mut DbConn,
    project: &ProjectId,
    id: &UserId,
    context: &Context,
) -> Result<AdminUser> {
    conn.transaction(|conn| {
        let user = lock(conn, project, id)?;
        if user.deleted_at.is_some() {
            diesel::update(scope::every_user_of(project).filter(users::id.eq(id.as_str())))
                .set((
                    users::deleted_at.eq(None::<NaiveDateTime>),
                    users::updated_at.eq(time::now()),
                ))
                .execute(conn)
                .map_err(super::taken)?;
            mirror_deletion(conn, project, id, None)?;
            audit::record_user(
                conn,
                project,
                context,
                "user.restore",
                id,
                audit::no_detail(),
            )?;
        }
        get(conn, project, id)
    })
}

/// Disables (`true`) or enables (`false`) the project's user; `UserDeleted` for a deleted user.
/// Repeating it changes nothing and answers the same.
pub fn set_disabled(
    conn: &mut DbConn,
    project: &ProjectId,
    id: &UserId,
    disabled: bool,
    context: &Context,
) -> Result<AdminUser> {
    conn.transaction(|conn| {
        let user = lock(conn, project, id)?;
        if user.deleted_at.is_some() {
            return Err(Error::UserDeleted);
        }
        if user.disabled_at.is_some() != disabled {
            let now = time::now();
            diesel::update(scope::every_user_of(project).filter(users::id.eq(id.as_str())))
                .set((
                    users::disabled_at.eq(disabled.then_some(now)),
                    users::updated_at.eq(now),
                ))
                .execute(conn)?;
            let action = if disabled {
                "user.disable"
            } else {
                "user.enable"
            };
            audit::record_user(conn, project, context, action, id, audit::no_detail())?;
        }
        get(conn, project, id)
    })
}

/// The ids a stored idempotent answer about the user of `issuer` may name: the user's and its
/// accounts' (read before the user is deleted, which deletes its accounts).
fn answer_ids(conn: &mut DbConn, issuer: &str, user_id: &str) -> Result<Vec<String>> {
    let mut ids: Vec<String> = accounts::table
        .filter(accounts::issuer.eq(issuer))
        .filter(accounts::user_id.eq(user_id))
        .select(accounts::id)
        .load(conn)?;
    ids.push(user_id.to_owned());
    Ok(ids)
}

/// Deletes the stored idempotent answers of `issuer` that name one of `ids`: they would replay
/// a purged user's data, or name an account that no longer exists.
fn forget_answers(conn: &mut DbConn, issuer: &str, ids: &[String]) -> Result<()> {
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::issuer.eq(issuer))
            .filter(idempotency_keys::resource_id.eq_any(ids)),
    )
    .execute(conn)?;
    Ok(())
}

/// Deletes the user's row and everything tied to it (its accounts, by the foreign key, and the
/// stored idempotent answers that name it or its accounts) for good: erasure on request.
fn erase(conn: &mut DbConn, project: &ProjectId, id: &UserId) -> Result<bool> {
    let named = answer_ids(conn, project.as_str(), id.as_str())?;
    let gone = diesel::delete(scope::every_user_of(project).filter(users::id.eq(id.as_str())))
        .execute(conn)?;
    if gone > 0 {
        forget_answers(conn, project.as_str(), &named)?;
    }
    Ok(gone > 0)
}

/// Purges the project's user, whatever its status; `UserNotFound` when there is none.
pub fn purge(conn: &mut DbConn, project: &ProjectId, id: &UserId, context: &Context) -> Result<()> {
    conn.transaction(|conn| {
        // The row lock first: an account being opened for the user is either in before the
        // purge reads the user's accounts, or refused after it.
        lock(conn, project, id)?;
        if !erase(conn, project, id)? {
            return Err(Error::UserNotFound);
        }
        audit::record_user(
            conn,
            project,
            context,
            "user.purge",
            id,
            json!({"reason": "request"}),
        )
    })
}

/// Purges up to `batch` users of any project deleted before `cutoff`, each in its own
/// transaction with its audit event; how many were purged. Safe with several servers at once:
/// a user another server purged (or an operator restored) meanwhile is skipped.
pub fn purge_expired(conn: &mut DbConn, cutoff: NaiveDateTime, batch: i64) -> Result<usize> {
    let expired: Vec<(String, String)> = users::table
        .filter(users::deleted_at.lt(cutoff))
        .select((users::issuer, users::id))
        .limit(batch)
        .load(conn)?;
    let mut purged = 0;
    for (issuer, id) in expired {
        let done = conn.transaction(|conn| {
            // A write first (the row lock; on SQLite the write lock, which a read-then-write
            // transaction could fail to upgrade to), conditional on the user still being
            // expired: another server's purge, or an operator's restore, may have come first.
            let expired = diesel::update(
                users::table
                    .filter(users::id.eq(&id))
                    .filter(users::issuer.eq(&issuer))
                    .filter(users::deleted_at.lt(cutoff)),
            )
            .set(users::updated_at.eq(users::updated_at))
            .execute(conn)?;
            if expired == 0 {
                return Ok::<_, Error>(false);
            }
            let named = answer_ids(conn, &issuer, &id)?;
            diesel::delete(
                users::table
                    .filter(users::issuer.eq(&issuer))
                    .filter(users::id.eq(&id)),
            )
            .execute(conn)?;
            forget_answers(conn, &issuer, &named)?;
            let project = uuid::Uuid::parse_str(&issuer)
                .map_err(|e| Error::Internal(format!("stored issuer is not a UUID: {e}")))?;
            audit::record_user_of(
                conn,
                &project,
                &Context::retention(),
                "user.purge",
                &id,
                json!({"reason": "retention"}),
            )?;
            Ok(true)
        })?;
        purged += usize::from(done);
    }
    Ok(purged)
}

/// Sign-ups per UTC day, for the `days` days ending with `today`, oldest first, zero-filled:
/// one index range count per day. Deleted users count on the day they signed up.
pub fn signups(
    conn: &mut DbConn,
    project: &ProjectId,
    today: NaiveDate,
    days: u32,
) -> Result<Vec<(NaiveDate, i64)>> {
    let mut out = Vec::with_capacity(days as usize);
    for back in (0..days).rev() {
        let day = today - chrono::Days::new(u64::from(back));
        let start = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        let end = start + chrono::Duration::days(1);
        let count: i64 = scope::every_user_of(project)
            .filter(users::created_at.ge(start))
            .filter(users::created_at.lt(end))
            .count()
            .get_result(conn)?;
        out.push((day, count));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_range_ends_after_every_string_it_starts() {
        assert_eq!(prefix_end("ada").as_deref(), Some("adb"));
        assert_eq!(prefix_end("a%").as_deref(), Some("a&"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        // U+D7FF steps over the surrogates.
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        for s in ["ada@x.io", "ada", "ada\u{10FFFF}\u{10FFFF}"] {
            assert!(s.starts_with("ada") && s < prefix_end("ada").unwrap().as_str());
        }
    }
}

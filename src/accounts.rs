//! Accounts a user opens (Cradl v2). Only a user with a KYC reference may open one.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{accounts, users};
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::scope;

/// The kinds of account that can be opened.
pub const ACCOUNT_TYPES: [&str; 2] = ["checking", "savings"];

/// An account as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub id: String,
    pub user_id: String,
    pub issuer: String,
    pub account_type: String,
    pub created_at: NaiveDateTime,
}

/// Opens an account for the project's user, checking the user and its KYC reference in the same
/// transaction as the insert: `UserNotFound` when the project has no such user (or it is
/// deleted), `UserDisabled` when it is disabled, `KycRequired` when it has no `kyc_id` yet
/// (nothing is written then).
///
/// The transaction starts with a write that changes nothing on the user's row: on PostgreSQL it
/// locks the row, on SQLite it takes the write lock at once (a read-then-write transaction could
/// fail to upgrade under WAL). Opens for one user are therefore serialised, and each account's
/// `created_at` is kept after the previous one's, so "oldest first" is the order of opening.
pub fn open(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &UserId,
    account_type: &str,
) -> Result<Account> {
    conn.transaction(|conn| {
        let user = scope::users_of(project).filter(users::id.eq(user_id.as_str()));
        let matched = diesel::update(user)
            .set(users::kyc_id.eq(users::kyc_id))
            .execute(conn)?;
        if matched == 0 {
            return Err(Error::UserNotFound);
        }
        let (kyc_id, disabled_at): (Option<String>, Option<NaiveDateTime>) = user
            .select((users::kyc_id, users::disabled_at))
            .first(conn)?;
        if disabled_at.is_some() {
            return Err(Error::UserDisabled);
        }
        if kyc_id.is_none() {
            return Err(Error::KycRequired);
        }
        let last: Option<NaiveDateTime> = scope::accounts_of(project)
            .filter(accounts::user_id.eq(user_id.as_str()))
            .select(diesel::dsl::max(accounts::created_at))
            .first(conn)?;
        let now = crate::time::now();
        let created_at = match last {
            Some(last) if last >= now => last + chrono::Duration::microseconds(1),
            _ => now,
        };
        let account = Account {
            id: Uuid::new_v4().to_string(),
            user_id: user_id.as_str().to_owned(),
            issuer: project.as_str().to_owned(),
            account_type: account_type.to_owned(),
            created_at,
        };
        diesel::insert_into(accounts::table)
            .values(&account)
            .execute(conn)?;
        Ok(account)
    })
}

/// The ids of the project's user's accounts, oldest first.
pub fn ids_of(conn: &mut DbConn, project: &ProjectId, user_id: &UserId) -> Result<Vec<String>> {
    Ok(scope::accounts_of(project)
        .filter(accounts::user_id.eq(user_id.as_str()))
        .order((accounts::created_at.asc(), accounts::id.asc()))
        .select(accounts::id)
        .load(conn)?)
}

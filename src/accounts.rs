//! Accounts a user opens (Cradl v2). Only a user with a KYC reference may open one.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{accounts, users};
use crate::db::DbConn;
use crate::error::Result;

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

/// What came of a request to open an account.
#[derive(Debug)]
pub enum Opened {
    Account(Account),
    /// The project has no such user.
    UserNotFound,
    /// The user has no `kyc_id` yet.
    KycRequired,
}

/// Opens an account for the issuer's user, checking the user and its KYC reference in the same
/// transaction as the insert.
///
/// The transaction starts with a write that changes nothing on the user's row: on PostgreSQL it
/// locks the row, on SQLite it takes the write lock at once (a read-then-write transaction could
/// fail to upgrade under WAL). Opens for one user are therefore serialised, and each account's
/// `created_at` is kept after the previous one's, so "oldest first" is the order of opening.
pub fn open(conn: &mut DbConn, issuer: &str, user_id: &Uuid, account_type: &str) -> Result<Opened> {
    conn.transaction(|conn| {
        let user = users::table
            .filter(users::issuer.eq(issuer))
            .filter(users::id.eq(user_id.to_string()));
        let matched = diesel::update(user.clone())
            .set(users::kyc_id.eq(users::kyc_id))
            .execute(conn)?;
        if matched == 0 {
            return Ok(Opened::UserNotFound);
        }
        let kyc_id: Option<String> = user.select(users::kyc_id).first(conn)?;
        if kyc_id.is_none() {
            return Ok(Opened::KycRequired);
        }
        let last: Option<NaiveDateTime> = accounts::table
            .filter(accounts::user_id.eq(user_id.to_string()))
            .select(diesel::dsl::max(accounts::created_at))
            .first(conn)?;
        let now = crate::time::now();
        let created_at = match last {
            Some(last) if last >= now => last + chrono::Duration::microseconds(1),
            _ => now,
        };
        let account = Account {
            id: Uuid::new_v4().to_string(),
            user_id: user_id.to_string(),
            issuer: issuer.to_owned(),
            account_type: account_type.to_owned(),
            created_at,
        };
        diesel::insert_into(accounts::table)
            .values(&account)
            .execute(conn)?;
        Ok(Opened::Account(account))
    })
}

/// The ids of the issuer's user's accounts, oldest first.
pub fn ids_of(conn: &mut DbConn, issuer: &str, user_id: &str) -> Result<Vec<String>> {
    Ok(accounts::table
        .filter(accounts::issuer.eq(issuer))
        .filter(accounts::user_id.eq(user_id))
        .order((accounts::created_at.asc(), accounts::id.asc()))
        .select(accounts::id)
        .load(conn)?)
}

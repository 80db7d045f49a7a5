//! What the database holds, read directly: the tests compare it with what the server answered.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TestApp;
use cotterd::db::schema::{accounts, users};

/// A user row, every column, in the table's order.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct UserRow {
    pub id: String,
    pub issuer: String,
    pub identifier: String,
    pub identifier_normalized: String,
    pub enrolled: String,
    pub default_method: Option<String>,
    pub identifiers: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    pub password_hash: Option<String>,
    pub phone_number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub kyc_id: Option<String>,
    pub disabled_at: Option<NaiveDateTime>,
    pub client_user_id: String,
}

/// An account row, every column.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct AccountRow {
    pub id: String,
    pub user_id: String,
    pub issuer: String,
    pub account_type: String,
    pub created_at: NaiveDateTime,
}

impl TestApp {
    /// Every user row of `issuer` (of every project when `None`), by id.
    pub fn user_rows(&self, issuer: Option<&str>) -> Vec<UserRow> {
        let mut conn = self.state.pool.get().expect("connection");
        let rows: Vec<UserRow> = users::table
            .select(users::all_columns)
            .order(users::id)
            .load(conn.conn())
            .expect("load users");
        rows.into_iter()
            .filter(|row| issuer.is_none_or(|issuer| row.issuer == issuer))
            .collect()
    }

    /// Every account row of `issuer` (of every project when `None`), by id.
    pub fn account_rows(&self, issuer: Option<&str>) -> Vec<AccountRow> {
        let mut conn = self.state.pool.get().expect("connection");
        let rows: Vec<AccountRow> = accounts::table
            .select(accounts::all_columns)
            .order(accounts::id)
            .load(conn.conn())
            .expect("load accounts");
        rows.into_iter()
            .filter(|row| issuer.is_none_or(|issuer| row.issuer == issuer))
            .collect()
    }

    /// The row of the user with this id.
    pub fn user_row(&self, id: &str) -> UserRow {
        let mut conn = self.state.pool.get().expect("connection");
        users::table
            .find(id)
            .select(users::all_columns)
            .first(conn.conn())
            .unwrap_or_else(|e| panic!("no user {id}: {e}"))
    }

    /// How many users the database holds for `issuer`.
    pub fn count_users(&self, issuer: &str) -> i64 {
        self.count_users_of(Some(issuer))
    }

    /// How many users the database holds in all.
    pub fn count_all_users(&self) -> i64 {
        self.count_users_of(None)
    }

    fn count_users_of(&self, issuer: Option<&str>) -> i64 {
        let mut conn = self.state.pool.get().expect("connection");
        let mut query = users::table.into_boxed();
        if let Some(issuer) = issuer {
            query = query.filter(users::issuer.eq(issuer));
        }
        query.count().get_result(conn.conn()).expect("count users")
    }

    /// How many accounts the database holds in all.
    pub fn count_accounts(&self) -> i64 {
        let mut conn = self.state.pool.get().expect("connection");
        accounts::table
            .count()
            .get_result(conn.conn())
            .expect("count accounts")
    }
}

/// Every row of `users` and `accounts` (of one issuer, or all), by id, every column as text:
/// two snapshots tell which rows a request added, changed or removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub users: BTreeMap<String, String>,
    pub accounts: BTreeMap<String, String>,
}

impl Snapshot {
    /// The rows now.
    pub fn take(app: &TestApp, issuer: Option<&str>) -> Self {
        let users = app
            .user_rows(issuer)
            .into_iter()
            .map(|row| (row.id.clone(), format!("{row:?}")))
            .collect();
        let accounts = app
            .account_rows(issuer)
            .into_iter()
            .map(|row| (row.id.clone(), format!("{row:?}")))
            .collect();
        Snapshot { users, accounts }
    }

    /// Rows in all.
    pub fn rows(&self) -> usize {
        self.users.len() + self.accounts.len()
    }

    /// Ids of rows added since `before`, and of rows changed or removed since.
    pub fn diff(&self, before: &Snapshot) -> (Vec<String>, Vec<String>) {
        let mut added = Vec::new();
        let mut changed = Vec::new();
        for (now, then) in [
            (&self.users, &before.users),
            (&self.accounts, &before.accounts),
        ] {
            for (id, row) in now {
                match then.get(id) {
                    None => added.push(id.clone()),
                    Some(old) if old != row => changed.push(id.clone()),
                    Some(_) => {}
                }
            }
            changed.extend(then.keys().filter(|id| !now.contains_key(*id)).cloned());
        }
        (added, changed)
    }
}

//! Users: the stored row, the queries of the v0 and v2 APIs (each starting from
//! `scope::users_of`, which leaves deleted users out), identifier rules (`identifier`), Cotter's
//! User object (`json`) and the admin API's queries and changes (`admin`).

pub mod admin;
mod identifier;
mod json;

pub use identifier::{normalize_identifier, Identifier, MAX_IDENTIFIER_CHARS};
pub use json::UserJson;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::users;
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::{scope, time};

/// Users per page of `GET /api/v0/user/list`, as in Cotter.
pub const PAGE_SIZE: i64 = 50;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub issuer: String,
    /// The identifier as given (trimmed).
    pub identifier: String,
    /// What uniqueness is decided on: see [`normalize_identifier`].
    pub identifier_normalized: String,
    /// JSON array of enrolled methods (`PIN`, `BIOMETRIC`, `TRUSTED_DEVICE`, `WEBAUTHN`).
    pub enrolled: String,
    pub default_method: Option<String>,
    /// JSON value, or NULL (Cotter answers `null`).
    pub identifiers: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    /// When the admin API disabled the user (it then may not open accounts).
    pub disabled_at: Option<NaiveDateTime>,
}

/// A user about to be stored. Only [`new_user`] makes one, so its `issuer` is the project it
/// was made for.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    id: String,
    issuer: String,
    identifier: String,
    identifier_normalized: String,
    enrolled: String,
    default_method: Option<String>,
    identifiers: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    deleted_at: Option<NaiveDateTime>,
    disabled_at: Option<NaiveDateTime>,
}

impl NewUser {
    /// The id it is stored under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The row as it reads once stored.
    fn into_user(self) -> User {
        User {
            id: self.id,
            issuer: self.issuer,
            identifier: self.identifier,
            identifier_normalized: self.identifier_normalized,
            enrolled: self.enrolled,
            default_method: self.default_method,
            identifiers: self.identifiers,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
            disabled_at: self.disabled_at,
        }
    }
}

/// A new user of `project` created at `now`, not yet stored.
pub fn new_user(project: &ProjectId, identifier: Identifier, now: NaiveDateTime) -> NewUser {
    NewUser {
        id: UserId::generate().into_string(),
        issuer: project.as_str().to_owned(),
        identifier: identifier.given,
        identifier_normalized: identifier.normalized,
        enrolled: "[]".to_owned(),
        default_method: None,
        identifiers: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        disabled_at: None,
    }
}

/// The Cradl v2 part of a user row (NULL for users created through v0).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct Profile {
    pub phone_number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub kyc_id: Option<String>,
}

/// A user created through v2: the v0 columns and the profile, with the password's hash.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewProfileUser {
    #[diesel(embed)]
    pub user: NewUser,
    pub password_hash: String,
    pub phone_number: String,
    pub first_name: String,
    pub last_name: String,
}

/// The unique index's verdict on a taken identifier, as the domain error: the index decides,
/// so concurrent creates leave one row.
fn taken(err: diesel::result::Error) -> Error {
    match Error::from(err) {
        Error::Conflict(_) => Error::IdentifierTaken,
        other => other,
    }
}

/// Stores a new user (`IdentifierTaken` when the identifier is taken); the stored row.
pub fn insert(conn: &mut DbConn, user: NewUser) -> Result<User> {
    diesel::insert_into(users::table)
        .values(&user)
        .execute(conn)
        .map_err(taken)?;
    Ok(user.into_user())
}

/// Stores a new user with a profile (`IdentifierTaken` when the identifier is taken).
pub fn insert_with_profile(conn: &mut DbConn, row: &NewProfileUser) -> Result<()> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)
        .map_err(taken)?;
    Ok(())
}

/// Whether the project already has a user with this identifier (an index probe, no row read).
pub fn identifier_taken(
    conn: &mut DbConn,
    project: &ProjectId,
    identifier: &Identifier,
) -> Result<bool> {
    let same = scope::users_of(project)
        .filter(users::identifier_normalized.eq(&identifier.normalized))
        .select(users::id);
    Ok(diesel::select(diesel::dsl::exists(same)).get_result(conn)?)
}

/// The project's user with this identifier, if any.
pub fn find_by_identifier(
    conn: &mut DbConn,
    project: &ProjectId,
    identifier: &Identifier,
) -> Result<Option<User>> {
    Ok(scope::users_of(project)
        .filter(users::identifier_normalized.eq(&identifier.normalized))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// The project's user with this id; `UserNotFound` for another project's user too.
pub fn get(conn: &mut DbConn, project: &ProjectId, id: &UserId) -> Result<User> {
    scope::users_of(project)
        .filter(users::id.eq(id.as_str()))
        .select(User::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::UserNotFound)
}

/// The project's user with this id and its profile (`UserNotFound` when there is none).
pub fn get_with_profile(
    conn: &mut DbConn,
    project: &ProjectId,
    id: &UserId,
) -> Result<(User, Profile)> {
    scope::users_of(project)
        .filter(users::id.eq(id.as_str()))
        .select((User::as_select(), Profile::as_select()))
        .first(conn)
        .optional()?
        .ok_or(Error::UserNotFound)
}

/// Sets the KYC reference of the project's user (`UserNotFound` when there is none).
pub fn set_kyc_id(conn: &mut DbConn, project: &ProjectId, id: &UserId, kyc_id: &str) -> Result<()> {
    let updated = diesel::update(scope::users_of(project).filter(users::id.eq(id.as_str())))
        .set((users::kyc_id.eq(kyc_id), users::updated_at.eq(time::now())))
        .execute(conn)?;
    match updated {
        0 => Err(Error::UserNotFound),
        _ => Ok(()),
    }
}

/// One page of the project's users, newest first (`created_at` desc, then `id` desc).
///
/// The offset is walked in the `(issuer, created_at, id)` index alone (a deferred join): deep
/// pages skip index entries, not whole rows, and only the page's 50 rows are read in full.
pub fn list_page(conn: &mut DbConn, project: &ProjectId, page: i64) -> Result<Vec<User>> {
    let page_ids = scope::users_of(project)
        .order((users::created_at.desc(), users::id.desc()))
        .select(users::id)
        .limit(PAGE_SIZE)
        .offset(page * PAGE_SIZE);
    let rows = diesel::alias!(users as page_rows);
    Ok(rows
        .filter(rows.field(users::id).eq_any(page_ids))
        .order((
            rows.field(users::created_at).desc(),
            rows.field(users::id).desc(),
        ))
        .select(rows.fields((
            users::id,
            users::issuer,
            users::identifier,
            users::identifier_normalized,
            users::enrolled,
            users::default_method,
            users::identifiers,
            users::created_at,
            users::updated_at,
            users::deleted_at,
            users::disabled_at,
        )))
        .load(conn)?)
}

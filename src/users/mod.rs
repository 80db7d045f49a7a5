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

use crate::db::schema::{user_identifiers, users};
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
    /// The app's own id for the user (Cotter's `client_user_id`); the user's id when the app
    /// gave none.
    pub client_user_id: String,
}

impl User {
    /// The enrolled methods, read strictly: a row whose `enrolled` is not what the server
    /// writes is corrupt, and answering it as if it had no methods would hide that.
    pub fn stored_enrolled(&self) -> Result<Vec<String>> {
        serde_json::from_str(&self.enrolled).map_err(|e| {
            Error::Internal(format!(
                "user {}: stored enrolled methods are not a JSON list of strings: {e}",
                self.id
            ))
        })
    }

    /// The list of identifiers the user was created with (`null` when none), read strictly.
    pub fn stored_identifiers(&self) -> Result<Option<serde_json::Value>> {
        self.identifiers
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
            .transpose()
            .map_err(|e| {
                Error::Internal(format!(
                    "user {}: stored identifiers are not JSON: {e}",
                    self.id
                ))
            })
    }
}

/// A user about to be stored. Only [`new_user`] makes one, so its `issuer` is the project it
/// was made for.
// `None` is written as a bound NULL, not as DEFAULT (the columns' default is NULL): one SQL
// text for every user, which diesel prepares once per connection.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
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
    client_user_id: String,
    /// Every identifier's normalised form, the primary one first (rows of `user_identifiers`).
    #[diesel(skip_insertion)]
    all_identifiers: Vec<String>,
}

impl NewUser {
    /// Gives the user the app's own id (`client_user_id`) instead of its own.
    pub fn with_client_user_id(mut self, client_user_id: ClientUserId) -> Self {
        self.client_user_id = client_user_id.0;
        self
    }

    /// Gives the user further identifiers besides its primary one (which may be among them):
    /// each finds the user, and none may be another live user's. The User object lists them as
    /// given, primary first.
    pub fn with_identifiers(mut self, more: Vec<Identifier>) -> Self {
        let mut given = vec![self.identifier.clone()];
        for identifier in more {
            if !self.all_identifiers.contains(&identifier.normalized) {
                self.all_identifiers.push(identifier.normalized);
                given.push(identifier.given);
            }
        }
        self.identifiers = serde_json::to_string(&given).ok();
        self
    }

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
            client_user_id: self.client_user_id,
        }
    }
}

/// The app's own id for a user (Cotter's `client_user_id`): 1 to 200 characters, none of them
/// a control character or white space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUserId(String);

/// Words that name fixed paths where a `client_user_id` would go (`/api/v0/user/list`,
/// `/create`, `/methods`, `/enrolled/any/…`): a user with such an id could not be reached.
const RESERVED_CLIENT_USER_IDS: [&str; 4] = ["list", "create", "methods", "any"];

/// Longest `client_user_id` accepted, in characters.
pub const MAX_CLIENT_USER_ID_CHARS: usize = 200;

impl ClientUserId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks an app's user id; `""` is no id (`None`), as Cotter's iOS SDK sends it.
    pub fn parse(raw: &str) -> Result<Option<Self>> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > MAX_CLIENT_USER_ID_CHARS {
            return Err(Error::Invalid(format!(
                "client_user_id must be at most {MAX_CLIENT_USER_ID_CHARS} characters"
            )));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::Invalid(
                "client_user_id must not contain spaces or control characters".into(),
            ));
        }
        // The SDKs put the id in paths unescaped: these would end or split the path.
        if raw.contains(['/', '?', '#', '%', '\\']) || raw == "." || raw == ".." {
            return Err(Error::Invalid(
                "client_user_id must not contain / ? # % or \\, nor be . or ..".into(),
            ));
        }
        if RESERVED_CLIENT_USER_IDS.contains(&raw) {
            return Err(Error::Invalid(format!(
                "client_user_id must not be one of {RESERVED_CLIENT_USER_IDS:?}: the paths of \
                 Cotter's calls use those words"
            )));
        }
        Ok(Some(ClientUserId(raw.to_owned())))
    }
}

/// A new user of `project` created at `now`, not yet stored.
pub fn new_user(project: &ProjectId, identifier: Identifier, now: NaiveDateTime) -> NewUser {
    let id = UserId::generate().into_string();
    NewUser {
        client_user_id: id.clone(),
        all_identifiers: vec![identifier.normalized.clone()],
        id,
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
pub(crate) fn taken(err: diesel::result::Error) -> Error {
    match Error::from(err) {
        Error::Conflict(_) => Error::IdentifierTaken,
        other => other,
    }
}

/// Stores the user's identifiers, each unique among the project's live users' (the index of
/// `user_identifiers` decides, across primary and further identifiers alike).
fn insert_identifiers(conn: &mut DbConn, user: &NewUser) -> Result<()> {
    // One row at a time: a user has few identifiers (most have one), and a batch insert of
    // several rows is not available over both backends at once.
    for normalized in &user.all_identifiers {
        diesel::insert_into(user_identifiers::table)
            .values((
                user_identifiers::issuer.eq(&user.issuer),
                user_identifiers::user_id.eq(&user.id),
                user_identifiers::identifier_normalized.eq(normalized),
            ))
            .execute(conn)
            .map_err(taken)?;
    }
    Ok(())
}

/// An app's id that is the `ID` of another user of the project (deleted ones included) is
/// taken: lookups by id would find that user, not this one.
fn refuse_another_users_id(conn: &mut DbConn, user: &NewUser) -> Result<()> {
    let Some(named) = UserId::parse(&user.client_user_id) else {
        return Ok(());
    };
    if named.as_str() == user.id {
        return Ok(());
    }
    let named = users::table
        .filter(users::issuer.eq(&user.issuer))
        .filter(users::id.eq(named.as_str()))
        .select(users::id);
    match diesel::select(diesel::dsl::exists(named)).get_result(conn)? {
        true => Err(Error::IdentifierTaken),
        false => Ok(()),
    }
}

/// Stores a new user (`IdentifierTaken` when an identifier or the `client_user_id` is taken),
/// in a transaction of its own; the stored row.
pub fn insert(conn: &mut DbConn, user: NewUser) -> Result<User> {
    conn.transaction(|conn| insert_within(conn, user))
}

/// [`insert`]'s statements, for a caller that holds a transaction or a savepoint around them
/// (the group commit, `db::group`): a failure leaves them to that rollback.
pub fn insert_within(conn: &mut DbConn, user: NewUser) -> Result<User> {
    // The write first: on SQLite a transaction that reads before it writes may fail to take
    // the write lock when another writer came between.
    diesel::insert_into(users::table)
        .values(&user)
        .execute(conn)
        .map_err(taken)?;
    refuse_another_users_id(conn, &user)?;
    insert_identifiers(conn, &user)?;
    Ok(user.into_user())
}

/// Stores a new user with a profile (`IdentifierTaken` when the identifier is taken). The
/// caller holds a transaction or a savepoint around it (the group commit, `db::group`).
pub fn insert_with_profile_within(conn: &mut DbConn, row: &NewProfileUser) -> Result<()> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)
        .map_err(taken)?;
    insert_identifiers(conn, &row.user)
}

/// A user from an import file, with its own id, times and identifiers, about to be stored.
/// Only [`ImportedRow::new`] makes one, for a project.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub struct ImportedRow {
    id: String,
    issuer: String,
    pub identifier: String,
    pub identifier_normalized: String,
    enrolled: String,
    default_method: Option<String>,
    /// The record's own list (JSON), kept as given.
    pub identifiers: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    pub disabled_at: Option<NaiveDateTime>,
    pub client_user_id: String,
    pub password_hash: Option<String>,
    pub phone_number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub kyc_id: Option<String>,
    /// Every identifier's normalised form, the primary one first (rows of `user_identifiers`).
    #[diesel(skip_insertion)]
    pub all_identifiers: Vec<String>,
}

impl ImportedRow {
    /// A user of `project` with this id and identifier, created now, with no methods (an
    /// import never brings keys or PINs).
    pub fn new(project: &ProjectId, id: UserId, identifier: Identifier) -> Self {
        let now = time::now();
        ImportedRow {
            client_user_id: id.as_str().to_owned(),
            id: id.into_string(),
            issuer: project.as_str().to_owned(),
            all_identifiers: vec![identifier.normalized.clone()],
            identifier: identifier.given,
            identifier_normalized: identifier.normalized,
            enrolled: "[]".to_owned(),
            default_method: None,
            identifiers: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            disabled_at: None,
            password_hash: None,
            phone_number: None,
            first_name: None,
            last_name: None,
            kyc_id: None,
        }
    }

    /// The id it is stored under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The project it belongs to.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// One row of `user_identifiers`, as an import writes it (deleted users' rows marked deleted).
#[derive(Debug, Insertable)]
#[diesel(table_name = user_identifiers, treat_none_as_default_value = false)]
struct IdentifierRow<'a> {
    issuer: &'a str,
    user_id: &'a str,
    identifier_normalized: &'a str,
    deleted_at: Option<NaiveDateTime>,
}

/// Runs one multi-row insert on the connection's own backend (the statement is built for each:
/// a batch insert is not available over the two at once).
macro_rules! insert_many {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            crate::db::DbConn::Pg(c) => diesel::insert_into($table).values($rows).execute(c),
            crate::db::DbConn::Sqlite(c) => diesel::insert_into($table).values($rows).execute(c),
        }
    };
}
pub(crate) use insert_many;

/// Stores imported users and their identifiers with a few multi-row statements: the caller's
/// transaction holds them, and a unique index refusing one fails them all (the caller then
/// stores them one by one to tell which).
pub fn insert_imported(conn: &mut DbConn, rows: &[ImportedRow]) -> Result<()> {
    // 18 columns a row: 1,000 rows stay well below both backends' bound parameters limits.
    for chunk in rows.chunks(1_000) {
        insert_many!(&mut *conn, users::table, chunk).map_err(taken)?;
    }
    let identifiers: Vec<IdentifierRow<'_>> = rows
        .iter()
        .flat_map(|row| {
            row.all_identifiers.iter().map(|normalized| IdentifierRow {
                issuer: &row.issuer,
                user_id: &row.id,
                identifier_normalized: normalized,
                deleted_at: row.deleted_at,
            })
        })
        .collect();
    for chunk in identifiers.chunks(5_000) {
        insert_many!(&mut *conn, user_identifiers::table, chunk).map_err(taken)?;
    }
    Ok(())
}

/// The columns an import's `update` rewrites on an existing user: each `None` is left as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct ImportedChanges {
    pub identifier: Option<String>,
    pub identifier_normalized: Option<String>,
    pub identifiers: Option<Option<String>>,
    pub client_user_id: Option<String>,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
    pub deleted_at: Option<Option<NaiveDateTime>>,
    pub disabled_at: Option<Option<NaiveDateTime>>,
    pub password_hash: Option<Option<String>>,
    pub phone_number: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub kyc_id: Option<Option<String>>,
}

/// Rewrites an existing user of the project from an import record (`UserNotFound` when there
/// is none), replacing its identifier rows when `identifiers` is given (normalised, primary
/// first); the row's deletion mark is mirrored on them.
pub fn update_imported(
    conn: &mut DbConn,
    project: &ProjectId,
    id: &str,
    changes: &ImportedChanges,
    identifiers: Option<&[String]>,
) -> Result<()> {
    let user = scope::every_user_of(project).filter(users::id.eq(id));
    let updated = diesel::update(user)
        .set(changes)
        .execute(conn)
        .map_err(taken)?;
    if updated == 0 {
        return Err(Error::UserNotFound);
    }
    let deleted_at: Option<NaiveDateTime> = user.select(users::deleted_at).first(conn)?;
    let mine = user_identifiers::table
        .filter(user_identifiers::issuer.eq(project.as_str()))
        .filter(user_identifiers::user_id.eq(id));
    if let Some(identifiers) = identifiers {
        diesel::delete(mine).execute(conn)?;
        for normalized in identifiers {
            diesel::insert_into(user_identifiers::table)
                .values(IdentifierRow {
                    issuer: project.as_str(),
                    user_id: id,
                    identifier_normalized: normalized,
                    deleted_at,
                })
                .execute(conn)
                .map_err(taken)?;
        }
    } else {
        diesel::update(mine)
            .set(user_identifiers::deleted_at.eq(deleted_at))
            .execute(conn)
            .map_err(taken)?;
    }
    Ok(())
}

/// Whether the project already has a user with this identifier (an index probe, no row read).
pub fn identifier_taken(
    conn: &mut DbConn,
    project: &ProjectId,
    identifier: &Identifier,
) -> Result<bool> {
    let same = scope::identifiers_of(project)
        .filter(user_identifiers::identifier_normalized.eq(&identifier.normalized))
        .select(user_identifiers::user_id);
    Ok(diesel::select(diesel::dsl::exists(same)).get_result(conn)?)
}

/// The project's user with this identifier, primary or further, if any.
pub fn find_by_identifier(
    conn: &mut DbConn,
    project: &ProjectId,
    identifier: &Identifier,
) -> Result<Option<User>> {
    // Most lookups name a primary identifier: one index probe of `users`. Only a miss asks the
    // table of every identifier.
    let primary = scope::users_of(project)
        .filter(users::identifier_normalized.eq(&identifier.normalized))
        .select(User::as_select())
        .first(conn)
        .optional()?;
    if primary.is_some() {
        return Ok(primary);
    }
    let owner = scope::identifiers_of(project)
        .filter(user_identifiers::identifier_normalized.eq(&identifier.normalized))
        .select(user_identifiers::user_id);
    Ok(scope::users_of(project)
        .filter(users::id.eq_any(owner))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// The project's user named by either of its ids, as Cotter's SDKs pass them in paths: the
/// user's own id (`ID`) first, then the app's `client_user_id`. `UserNotFound` when neither
/// matches (another project's user included).
pub fn find_by_any_id(conn: &mut DbConn, project: &ProjectId, raw: &str) -> Result<User> {
    // A UUID names the user with that id first: an app's id can never shadow another user's
    // `ID` (creates refuse one that names an existing user, too).
    if let Some(id) = UserId::parse(raw) {
        match get(conn, project, &id) {
            Err(Error::UserNotFound) => {}
            found => return found,
        }
    }
    // A string no app id can be (a NUL, which PostgreSQL text cannot hold, or 10 KiB) names
    // no user: it is not sent to the database.
    if let Ok(Some(client_user_id)) = ClientUserId::parse(raw) {
        let by_client_id = scope::users_of(project)
            .filter(users::client_user_id.eq(&client_user_id.0))
            .select(User::as_select())
            .first(conn)
            .optional()?;
        if let Some(user) = by_client_id {
            return Ok(user);
        }
    }
    Err(Error::UserNotFound)
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
            users::client_user_id,
        )))
        .load(conn)?)
}

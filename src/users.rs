//! Users: the model, identifier rules, the queries and Cotter's User JSON.
//!
//! Every query here takes the caller's issuer and filters by it: this is the one place that
//! decides which users a project can reach.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::db::schema::users;
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::time;

/// Users per page of `GET /api/v0/user/list`, as in Cotter.
pub const PAGE_SIZE: i64 = 50;
/// Longest identifier accepted, in characters, after trimming.
pub const MAX_IDENTIFIER_CHARS: usize = 254;
/// Longest normalised identifier, in bytes. NFKC can expand a character up to 18-fold; this
/// keeps such identifiers inside what a database index key holds.
const MAX_NORMALIZED_BYTES: usize = 1024;

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
}

/// The form two identifiers are compared in: Unicode NFKC, lower case, NFKC again (lower-casing
/// can leave a string that NFKC would change), so that `Hello@Example.com` and
/// `ｈｅｌｌｏ@example.com` are one user.
pub fn normalize_identifier(identifier: &str) -> String {
    let folded: String = identifier.nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect()
}

/// An identifier that passed validation, with its normalised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    pub given: String,
    pub normalized: String,
}

impl Identifier {
    /// Trims the identifier and checks it: 1 to 254 characters, no control characters.
    pub fn parse(raw: &str) -> Result<Self> {
        let given = raw.trim();
        if given.is_empty() {
            return Err(Error::BadRequest("identifier must not be empty".into()));
        }
        if given.chars().count() > MAX_IDENTIFIER_CHARS {
            return Err(Error::BadRequest(format!(
                "identifier must be at most {MAX_IDENTIFIER_CHARS} characters"
            )));
        }
        if given.chars().any(char::is_control) {
            return Err(Error::BadRequest(
                "identifier must not contain control characters".into(),
            ));
        }
        let normalized = normalize_identifier(given);
        if normalized.len() > MAX_NORMALIZED_BYTES {
            return Err(Error::BadRequest(
                "identifier is too long once normalised".into(),
            ));
        }
        Ok(Identifier {
            given: given.to_owned(),
            normalized,
        })
    }
}

/// Builds a new user of `issuer` created at `now`.
pub fn new_user(issuer: &str, identifier: Identifier, now: NaiveDateTime) -> User {
    User {
        id: Uuid::new_v4().to_string(),
        issuer: issuer.to_owned(),
        identifier: identifier.given,
        identifier_normalized: identifier.normalized,
        enrolled: "[]".to_owned(),
        default_method: None,
        identifiers: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
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
    pub user: User,
    pub password_hash: String,
    pub phone_number: String,
    pub first_name: String,
    pub last_name: String,
}

/// Maps the unique index's verdict on a taken identifier to a 409 `user already exist`: the
/// index decides, so concurrent creates leave one row.
fn taken(err: diesel::result::Error) -> Error {
    match Error::from(err) {
        Error::Conflict(_) => Error::Conflict("user already exist"),
        other => other,
    }
}

/// Stores a new user (409 `user already exist` when the identifier is taken).
pub fn insert(conn: &mut DbConn, user: &User) -> Result<()> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map_err(taken)?;
    Ok(())
}

/// Stores a new user with a profile (409 when the identifier is taken).
pub fn insert_with_profile(conn: &mut DbConn, row: &NewProfileUser) -> Result<()> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)
        .map_err(taken)?;
    Ok(())
}

/// Whether the project already has a user with this identifier.
pub fn identifier_taken(conn: &mut DbConn, issuer: &str, identifier: &Identifier) -> Result<bool> {
    Ok(find_by_identifier(conn, issuer, identifier)?.is_some())
}

/// The user of `issuer` with this id and its profile, if any.
pub fn find_with_profile(
    conn: &mut DbConn,
    issuer: &str,
    id: &Uuid,
) -> Result<Option<(User, Profile)>> {
    Ok(users::table
        .filter(users::issuer.eq(issuer))
        .filter(users::id.eq(id.to_string()))
        .select((User::as_select(), Profile::as_select()))
        .first(conn)
        .optional()?)
}

/// Sets the KYC reference of the issuer's user; `false` when there is no such user.
pub fn set_kyc_id(conn: &mut DbConn, issuer: &str, id: &Uuid, kyc_id: &str) -> Result<bool> {
    let updated = diesel::update(
        users::table
            .filter(users::issuer.eq(issuer))
            .filter(users::id.eq(id.to_string())),
    )
    .set((users::kyc_id.eq(kyc_id), users::updated_at.eq(time::now())))
    .execute(conn)?;
    Ok(updated == 1)
}

/// The user of `issuer` with this identifier, if any.
pub fn find_by_identifier(
    conn: &mut DbConn,
    issuer: &str,
    identifier: &Identifier,
) -> Result<Option<User>> {
    Ok(users::table
        .filter(users::issuer.eq(issuer))
        .filter(users::identifier_normalized.eq(&identifier.normalized))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// The user of `issuer` with this id, if any. A user of another issuer is not found.
pub fn find_by_id(conn: &mut DbConn, issuer: &str, id: &Uuid) -> Result<Option<User>> {
    Ok(users::table
        .filter(users::issuer.eq(issuer))
        .filter(users::id.eq(id.to_string()))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// One page of the issuer's users, newest first (`created_at` desc, then `id` desc).
///
/// The offset is walked in the `(issuer, created_at, id)` index alone (a deferred join): deep
/// pages skip index entries, not whole rows, and only the page's 50 rows are read in full.
pub fn list_page(conn: &mut DbConn, issuer: &str, page: i64) -> Result<Vec<User>> {
    let ids = diesel::alias!(users as page_ids);
    let page_ids = ids
        .filter(ids.field(users::issuer).eq(issuer))
        .order((
            ids.field(users::created_at).desc(),
            ids.field(users::id).desc(),
        ))
        .select(ids.field(users::id))
        .limit(PAGE_SIZE)
        .offset(page * PAGE_SIZE);
    Ok(users::table
        .filter(users::id.eq_any(page_ids))
        .order((users::created_at.desc(), users::id.desc()))
        .select(User::as_select())
        .load(conn)?)
}

/// Cotter's User object, keys in Cotter's (sorted) order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserJson {
    /// The user's id (a UUID; the nil UUID for no user).
    #[serde(rename = "ID")]
    pub id: String,
    /// The same UUID.
    pub client_user_id: String,
    /// RFC 3339 UTC, e.g. `2020-08-01T05:55:57.4803Z`.
    pub created_at: String,
    /// The latest enrolled method, or null.
    pub default_method: Option<String>,
    /// `0001-01-01T00:00:00Z` when not deleted.
    pub deleted_at: String,
    /// `PIN`, `BIOMETRIC`, `TRUSTED_DEVICE`, `WEBAUTHN`.
    pub enrolled: Vec<String>,
    pub identifier: String,
    /// Always null for now.
    #[schema(value_type = Option<Object>)]
    pub identifiers: Option<serde_json::Value>,
    /// The project's API_KEY_ID.
    pub issuer: String,
    pub updated_at: String,
}

impl UserJson {
    /// What Cotter answers for an identifier that has no user: every field zero-valued. Cotter's
    /// SDKs test `ID` against the zero UUID to tell that the user does not exist.
    pub fn zero() -> Self {
        let nil = Uuid::nil().to_string();
        UserJson {
            id: nil.clone(),
            client_user_id: nil,
            created_at: time::ZERO_TIME.to_owned(),
            default_method: None,
            deleted_at: time::ZERO_TIME.to_owned(),
            enrolled: Vec::new(),
            identifier: String::new(),
            identifiers: None,
            issuer: String::new(),
            updated_at: time::ZERO_TIME.to_owned(),
        }
    }
}

impl From<User> for UserJson {
    fn from(user: User) -> Self {
        UserJson {
            client_user_id: user.id.clone(),
            id: user.id,
            created_at: time::format(user.created_at),
            default_method: user.default_method,
            deleted_at: time::format_opt(user.deleted_at),
            enrolled: serde_json::from_str(&user.enrolled).unwrap_or_default(),
            identifier: user.identifier,
            identifiers: user
                .identifiers
                .and_then(|raw| serde_json::from_str(&raw).ok()),
            issuer: user.issuer,
            updated_at: time::format(user.updated_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_trimmed_and_checked() {
        let id = Identifier::parse("  Hello@Gmail.com \n").unwrap();
        assert_eq!(id.given, "Hello@Gmail.com");
        assert_eq!(id.normalized, "hello@gmail.com");
        assert!(Identifier::parse("   ").is_err());
        assert!(Identifier::parse("a\u{0}b").is_err());
        assert!(Identifier::parse("a\u{7}b").is_err());
        assert!(Identifier::parse(&"é".repeat(254)).is_ok());
        assert!(Identifier::parse(&"é".repeat(255)).is_err());
    }

    #[test]
    fn normalisation_folds_width_and_case() {
        assert_eq!(
            normalize_identifier("ＨＥＬＬＯ@Example.COM"),
            "hello@example.com"
        );
        assert_eq!(normalize_identifier("ﬁle"), "file");
        let once = normalize_identifier("İstanbul ǅ Ⅻ");
        assert_eq!(normalize_identifier(&once), once);
    }

    #[test]
    fn expanding_identifiers_are_bounded() {
        // U+FDFA expands to 18 characters under NFKC.
        assert!(Identifier::parse(&"\u{FDFA}".repeat(200)).is_err());
    }

    #[test]
    fn json_keys_are_in_cotters_order() {
        let json = serde_json::to_string(&UserJson::zero()).unwrap();
        assert_eq!(
            json,
            r#"{"ID":"00000000-0000-0000-0000-000000000000","client_user_id":"00000000-0000-0000-0000-000000000000","created_at":"0001-01-01T00:00:00Z","default_method":null,"deleted_at":"0001-01-01T00:00:00Z","enrolled":[],"identifier":"","identifiers":null,"issuer":"","updated_at":"0001-01-01T00:00:00Z"}"#
        );
    }
}

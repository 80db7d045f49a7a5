//! Cotter's User object, as the v0 API answers it.

use serde::Serialize;

use super::User;
use crate::error::Error;
use crate::time;

/// Cotter's User object, keys in Cotter's (sorted) order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserJson {
    /// The user's id (a UUID; the nil UUID for no user).
    #[serde(rename = "ID")]
    pub id: String,
    /// The app's own id for the user, or the same UUID when it gave none.
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
    /// Every identifier of the user, primary first, when it was created with a list
    /// (`identifiers`); null otherwise.
    #[schema(value_type = Option<Vec<String>>)]
    pub identifiers: Option<serde_json::Value>,
    /// The project's API_KEY_ID.
    pub issuer: String,
    pub updated_at: String,
}

impl UserJson {
    /// What Cotter answers for an identifier that has no user: every field zero-valued. Cotter's
    /// SDKs test `ID` against the zero UUID to tell that the user does not exist.
    pub fn zero() -> Self {
        let nil = uuid::Uuid::nil().to_string();
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

/// A stored user as Cotter's User object. The JSON columns are read strictly: a row whose
/// `enrolled` or `identifiers` is not what the server writes is corrupt, and answering it as if
/// it had no methods would hide that; it is an internal error instead.
impl TryFrom<User> for UserJson {
    type Error = Error;

    fn try_from(user: User) -> Result<Self, Error> {
        let enrolled = user.stored_enrolled()?;
        let identifiers = user.stored_identifiers()?;
        Ok(UserJson {
            client_user_id: user.client_user_id,
            id: user.id,
            created_at: time::format(user.created_at),
            default_method: user.default_method,
            deleted_at: time::format_opt(user.deleted_at),
            enrolled,
            identifier: user.identifier,
            identifiers,
            issuer: user.issuer,
            updated_at: time::format(user.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_in_cotters_order() {
        let json = serde_json::to_string(&UserJson::zero()).unwrap();
        assert_eq!(
            json,
            r#"{"ID":"00000000-0000-0000-0000-000000000000","client_user_id":"00000000-0000-0000-0000-000000000000","created_at":"0001-01-01T00:00:00Z","default_method":null,"deleted_at":"0001-01-01T00:00:00Z","enrolled":[],"identifier":"","identifiers":null,"issuer":"","updated_at":"0001-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn corrupt_stored_json_is_an_error_not_an_empty_list() {
        let user = User {
            id: "67e55044-10b1-426f-9247-bb680e5fe0c8".into(),
            issuer: "0c6ad2b4-5f1e-4d0b-9a7e-4b8e8e0f2a61".into(),
            identifier: "a@b.co".into(),
            identifier_normalized: "a@b.co".into(),
            enrolled: "[]".into(),
            default_method: None,
            identifiers: None,
            created_at: time::now(),
            updated_at: time::now(),
            deleted_at: None,
            disabled_at: None,
            client_user_id: "67e55044-10b1-426f-9247-bb680e5fe0c8".into(),
        };
        assert!(UserJson::try_from(user.clone()).is_ok());
        for enrolled in ["", "{", "[1]", "null", "\"PIN\""] {
            let corrupt = User {
                enrolled: enrolled.to_owned(),
                ..user.clone()
            };
            assert!(
                matches!(UserJson::try_from(corrupt), Err(Error::Internal(_))),
                "{enrolled:?}"
            );
        }
        let corrupt = User {
            identifiers: Some("not json".to_owned()),
            ..user
        };
        assert!(matches!(
            UserJson::try_from(corrupt),
            Err(Error::Internal(_))
        ));
    }
}

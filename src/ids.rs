//! Typed ids: a [`ProjectId`] names a project (its `API_KEY_ID`, the `issuer` of its users), a
//! [`UserId`] names a user. Both are UUIDs kept in their canonical text (lower-case, hyphenated),
//! which is how the database stores them; both are read from client input by [`parse_uuid`]
//! alone.
//!
//! `ProjectId` is defined in `auth`, the one module that makes them: from keys that passed a
//! check. Every project-scoped query (`scope`) takes one, so no query can be scoped by an id a
//! client merely named.

pub use crate::auth::ProjectId;

use std::fmt;

use uuid::Uuid;

/// A UUID in the hyphenated form the OpenAPI document's `format: uuid` names, in either case.
/// The simple (undashed), braced and URN spellings are refused, and so is surrounding
/// whitespace: an id is compared exactly as sent.
pub fn parse_uuid(raw: &str) -> Option<Uuid> {
    if raw.len() != 36 {
        return None;
    }
    Uuid::try_parse(raw).ok()
}

/// A user's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// A new random id, for a user being created.
    pub fn generate() -> Self {
        UserId(Uuid::now_v7().to_string())
    }

    /// Reads an id a client sent (see [`parse_uuid`]); `None` when it is not one, which the
    /// APIs answer like an id no user has.
    pub fn parse(raw: &str) -> Option<Self> {
        parse_uuid(raw).map(|id| UserId(id.to_string()))
    }

    /// The canonical text, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hyphenated_uuids_only() {
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(UserId::parse(id).unwrap().as_str(), id);
        assert_eq!(UserId::parse(&id.to_uppercase()).unwrap().as_str(), id);
        for other in [
            "",
            "x",
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            " 67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67e55044-10b1-426f-9247-bb680e5fe0c8 ",
            "67e55044-10b1-426f-9247-bb680e5fe0cg",
        ] {
            assert!(parse_uuid(other).is_none(), "{other:?}");
            assert!(UserId::parse(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn generated_ids_are_canonical() {
        let id = UserId::generate();
        assert_eq!(UserId::parse(id.as_str()), Some(id.clone()));
    }
}

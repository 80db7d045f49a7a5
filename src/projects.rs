//! Projects (issuers) and their API secrets.
//!
//! A project's `API_KEY_ID` is a UUID and also the `issuer` of its users. Its secrets are random
//! 256-bit values with a recognisable prefix; only their SHA-256 is stored, so a secret is shown
//! once, when it is issued, and never again. Every change is recorded in the audit trail in its
//! own transaction (`audit`), the secret named by its printed prefix.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use serde_json::json;

use crate::audit::{self, Context};
use crate::db::schema::{project_secrets, projects};
use crate::db::DbConn;
use crate::error::{Error, Result};

/// What every secret starts with, so that a leaked one is recognisable (secret scanners, logs).
pub const SECRET_PREFIX: &str = "cotterd_sk_";
/// Hex characters of the secret kept as its public prefix, to name it when revoking.
const SHOWN_HEX_CHARS: usize = 8;
/// Longest project name accepted.
const MAX_NAME_CHARS: usize = 100;

/// A project as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = projects)]
pub struct ProjectRecord {
    pub id: String,
    pub name: String,
    pub require_secret: bool,
    pub created_at: NaiveDateTime,
}

/// A secret as stored: its hash, never the secret itself.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = project_secrets)]
pub struct SecretRecord {
    pub id: String,
    pub project_id: String,
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

/// A secret that was just issued: the only time its plain value exists.
#[derive(Debug)]
pub struct IssuedSecret {
    pub id: String,
    pub prefix: String,
    pub secret: String,
}

/// The SHA-256 of a secret, as stored and compared.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `presented` is one of `hashes`, in time that does not depend on where (or whether)
/// it matches.
pub fn secret_matches(presented: &str, hashes: &[[u8; 32]]) -> bool {
    matching_secret(presented, hashes).is_some()
}

/// Which of `hashes` is the hash of `presented`, if any, in time that does not depend on where
/// (or whether) it matches: every hash is compared, and the index is chosen without a branch.
pub fn matching_secret(presented: &str, hashes: &[[u8; 32]]) -> Option<usize> {
    use subtle::{ConditionallySelectable, ConstantTimeEq};
    let candidate = hash_secret(presented);
    let mut found = subtle::Choice::from(0);
    let mut index = 0u64;
    for (i, hash) in hashes.iter().enumerate() {
        let equal = hash.ct_eq(&candidate);
        index = u64::conditional_select(&index, &(i as u64), equal);
        found |= equal;
    }
    bool::from(found).then_some(index as usize)
}

fn generate_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex = hex::encode(bytes);
    let prefix = format!("{SECRET_PREFIX}{}", &hex[..SHOWN_HEX_CHARS]);
    (format!("{SECRET_PREFIX}{hex}"), prefix)
}

fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::Invalid(format!(
            "project name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "project name must not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

fn insert_secret(conn: &mut DbConn, project_id: &str) -> Result<IssuedSecret> {
    let (secret, prefix) = generate_secret();
    let record = SecretRecord {
        id: Uuid::new_v4().to_string(),
        project_id: project_id.to_owned(),
        prefix: prefix.clone(),
        secret_hash: hash_secret(&secret).to_vec(),
        created_at: crate::time::now(),
        revoked_at: None,
    };
    diesel::insert_into(project_secrets::table)
        .values(&record)
        .execute(conn)?;
    Ok(IssuedSecret {
        id: record.id,
        prefix,
        secret,
    })
}

/// Creates a project and its first secret in one transaction, with their audit events.
pub fn create(
    conn: &mut DbConn,
    name: &str,
    require_secret: bool,
    context: &Context,
) -> Result<(ProjectRecord, IssuedSecret)> {
    let project = ProjectRecord {
        id: Uuid::new_v4().to_string(),
        name: validate_name(name)?,
        require_secret,
        created_at: crate::time::now(),
    };
    conn.transaction(|conn| {
        diesel::insert_into(projects::table)
            .values(&project)
            .execute(conn)?;
        let secret = insert_secret(conn, &project.id)?;
        let id = Uuid::parse_str(&project.id)
            .map_err(|e| Error::Internal(format!("a new project's id is not a UUID: {e}")))?;
        audit::record_project(
            conn,
            &id,
            context,
            "project.create",
            json!({"require_secret": require_secret}),
        )?;
        audit::record_project(
            conn,
            &id,
            context,
            "secret.create",
            json!({"secret_prefix": secret.prefix}),
        )?;
        Ok((project, secret))
    })
}

/// Every project, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<ProjectRecord>> {
    Ok(projects::table
        .select(ProjectRecord::as_select())
        .order((projects::created_at.asc(), projects::id.asc()))
        .load(conn)?)
}

/// Whether any project exists yet.
pub fn any_exists(conn: &mut DbConn) -> Result<bool> {
    Ok(
        diesel::select(diesel::dsl::exists(projects::table.select(projects::id)))
            .get_result(conn)?,
    )
}

/// One project by its `API_KEY_ID`.
pub fn find(conn: &mut DbConn, id: &Uuid) -> Result<Option<ProjectRecord>> {
    Ok(projects::table
        .find(id.to_string())
        .select(ProjectRecord::as_select())
        .first(conn)
        .optional()?)
}

fn require_project(conn: &mut DbConn, id: &Uuid) -> Result<ProjectRecord> {
    find(conn, id)?.ok_or(Error::NotFound("no project has this API_KEY_ID"))
}

/// Sets whether every route of the project needs `API_SECRET_KEY` (not only the list).
pub fn set_require_secret(
    conn: &mut DbConn,
    id: &Uuid,
    require: bool,
    context: &Context,
) -> Result<ProjectRecord> {
    conn.transaction(|conn| {
        let updated = diesel::update(projects::table.find(id.to_string()))
            .set(projects::require_secret.eq(require))
            .execute(conn)?;
        if updated == 0 {
            return Err(Error::NotFound("no project has this API_KEY_ID"));
        }
        audit::record_project(
            conn,
            id,
            context,
            "project.update",
            json!({"require_secret": require}),
        )?;
        require_project(conn, id)
    })
}

/// Issues one more secret for a project, so that clients can move to it before the old one is
/// revoked.
pub fn add_secret(conn: &mut DbConn, project_id: &Uuid, context: &Context) -> Result<IssuedSecret> {
    conn.transaction(|conn| {
        let project = require_project(conn, project_id)?;
        let secret = insert_secret(conn, &project.id)?;
        audit::record_project(
            conn,
            project_id,
            context,
            "secret.create",
            json!({"secret_prefix": secret.prefix}),
        )?;
        Ok(secret)
    })
}

/// The project's secrets (live and revoked), oldest first.
pub fn list_secrets(conn: &mut DbConn, project_id: &Uuid) -> Result<Vec<SecretRecord>> {
    let project = require_project(conn, project_id)?;
    Ok(project_secrets::table
        .filter(project_secrets::project_id.eq(project.id))
        .select(SecretRecord::as_select())
        .order((project_secrets::created_at.asc(), project_secrets::id.asc()))
        .load(conn)?)
}

/// The hashes of the project's live secrets.
pub fn live_secret_hashes(conn: &mut DbConn, project_id: &Uuid) -> Result<Vec<[u8; 32]>> {
    Ok(live_secrets(conn, project_id)?
        .into_iter()
        .map(|(hash, _)| hash)
        .collect())
}

/// The hashes of the project's live secrets with their printed prefixes, for the key cache (the
/// prefix names the secret a call was made with, in the audit trail).
pub fn live_secrets(conn: &mut DbConn, project_id: &Uuid) -> Result<Vec<([u8; 32], String)>> {
    let rows: Vec<(Vec<u8>, String)> = project_secrets::table
        .filter(project_secrets::project_id.eq(project_id.to_string()))
        .filter(project_secrets::revoked_at.is_null())
        .select((project_secrets::secret_hash, project_secrets::prefix))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(h, prefix)| Some((<[u8; 32]>::try_from(h.as_slice()).ok()?, prefix)))
        .collect())
}

/// Whether revoking may leave a project with no live secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastSecret {
    /// The operator at the command line may (and issue a new one later with `secrets add`).
    Allow,
    /// Over the admin API it may not: the caller would lock itself out (409 `LAST_SECRET`).
    Keep,
}

/// Revokes the live secret named by its id or its printed prefix (`cotterd_sk_1a2b3c4d`).
/// The prefix must name exactly one live secret of the project.
pub fn revoke_secret(
    conn: &mut DbConn,
    project_id: &Uuid,
    selector: &str,
    last: LastSecret,
    context: &Context,
) -> Result<SecretRecord> {
    let selector = selector.trim();
    if selector.len() < SECRET_PREFIX.len() + 4 && crate::ids::parse_uuid(selector).is_none() {
        return Err(Error::Invalid(format!(
            "name the secret by its id or by a prefix of at least {} characters",
            SECRET_PREFIX.len() + 4
        )));
    }
    conn.transaction(|conn| {
        // Writing the project's row first makes concurrent revocations of one project take
        // turns, so two of them cannot each leave the other's secret as the last one.
        diesel::update(projects::table.find(project_id.to_string()))
            .set(projects::require_secret.eq(projects::require_secret))
            .execute(conn)?;
        let all_live: Vec<SecretRecord> = list_secrets(conn, project_id)?
            .into_iter()
            .filter(|s| s.revoked_at.is_none())
            .collect();
        let live_count = all_live.len();
        let live: Vec<SecretRecord> = all_live
            .into_iter()
            .filter(|s| {
                s.id == selector
                    || s.prefix.starts_with(selector)
                    || selector.starts_with(&s.prefix)
            })
            .collect();
        let target = match live.as_slice() {
            [_] if last == LastSecret::Keep && live_count == 1 => return Err(Error::LastSecret),
            [one] => one.clone(),
            [] => return Err(Error::NotFound("no live secret of this project matches")),
            _ => {
                return Err(Error::Invalid(
                    "more than one live secret matches: give a longer prefix or the id".into(),
                ))
            }
        };
        let now = crate::time::now();
        diesel::update(project_secrets::table.find(&target.id))
            .set(project_secrets::revoked_at.eq(Some(now)))
            .execute(conn)?;
        audit::record_project(
            conn,
            project_id,
            context,
            "secret.revoke",
            json!({"secret_prefix": target.prefix}),
        )?;
        Ok(SecretRecord {
            revoked_at: Some(now),
            ..target
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let (a, prefix) = generate_secret();
        let (b, _) = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 64);
        assert!(a.starts_with(&prefix));
        assert_eq!(prefix.len(), SECRET_PREFIX.len() + SHOWN_HEX_CHARS);
    }

    #[test]
    fn secret_matching_checks_every_hash() {
        let hashes = [hash_secret("one"), hash_secret("two")];
        assert!(secret_matches("one", &hashes));
        assert!(secret_matches("two", &hashes));
        assert!(!secret_matches("three", &hashes));
        assert!(!secret_matches("one", &[]));
        assert_eq!(matching_secret("one", &hashes), Some(0));
        assert_eq!(matching_secret("two", &hashes), Some(1));
        assert_eq!(matching_secret("three", &hashes), None);
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("  demo ").unwrap(), "demo");
        assert!(validate_name("").is_err());
        assert!(validate_name("a\u{0}b").is_err());
        assert!(validate_name(&"x".repeat(101)).is_err());
    }
}

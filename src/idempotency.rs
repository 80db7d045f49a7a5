//! Idempotent creates: the first answer to a request sent with an `Idempotency-Key`, kept per
//! project and key in the database (so every instance sees it) and replayed to a retry.
//!
//! A key is claimed by inserting its row before the request runs (`status` NULL); the primary
//! key on (issuer, key) decides between instances. The answer is stored when the request ends,
//! or the claim released when it created nothing (400, 5xx: see `api::idempotency`). A claim
//! left by a server that died mid-request lapses after [`LEASE`], and the key can then be used
//! again; the instances' clocks must agree to well within the lease (NTP). A stored answer is
//! kept for `IDEMPOTENCY_TTL_HOURS`.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::schema::idempotency_keys;
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::ProjectId;
use crate::scope;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The header on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest key accepted.
pub const MAX_KEY_CHARS: usize = 255;
/// How long a claim holds while its request runs: past it, the server that made it is taken
/// to have died and a retry runs anew. Longer than any request may take (body and pool
/// timeouts, the hashing queue).
pub const LEASE: Duration = Duration::from_secs(60);

/// A key a client sent, checked: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// Reads the header's value.
    pub fn parse(raw: &[u8]) -> Result<Self> {
        let visible = raw.iter().all(|b| (0x21..=0x7e).contains(b));
        if raw.is_empty() || raw.len() > MAX_KEY_CHARS || !visible {
            return Err(Error::problem(
                "IDEMPOTENCY_KEY_INVALID",
                format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
            ));
        }
        Ok(Key(String::from_utf8_lossy(raw).into_owned()))
    }

    /// The key as stored: scoped by the kind of caller (`s:` for one that sent a secret, `p:`
    /// for one that sent only the public key id), so that an app cannot take a server's keys.
    pub fn for_caller(self, sent_secret: bool) -> Self {
        let class = if sent_secret { "s" } else { "p" };
        Key(format!("{class}:{}", self.0))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies a request under one key: its method, path with query, and body.
pub fn fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for part in [method.as_bytes(), path_and_query.as_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(body);
    hash.finalize().to_vec()
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Claim {
    /// The key is this request's now (claimed at this time, which names the claim): run it,
    /// then [`complete`] or [`release`].
    Run(NaiveDateTime),
    /// The key's first request ended with this answer: send it again.
    Replay(Answer),
}

#[derive(Queryable)]
struct Row {
    fingerprint: Vec<u8>,
    started_at: NaiveDateTime,
    status: Option<i32>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
}

/// Claims `key` for a request with this fingerprint at `now`, or says what the key's first
/// request answered: `IdempotencyKeyReused` (422) when that request was another,
/// `IdempotencyKeyInUse` (409) while it still runs. Stored answers older than `ttl` count as
/// absent.
pub fn claim(
    conn: &mut DbConn,
    project: &ProjectId,
    key: &Key,
    fingerprint: &[u8],
    now: NaiveDateTime,
    ttl: Duration,
) -> Result<Claim> {
    let expired = now - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let lapsed = now - chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::MAX);
    let this = || scope::idempotency_of(project).filter(idempotency_keys::key.eq(key.as_str()));
    // Each round either decides or finds the row changed under it (another instance's claim,
    // completion or expiry); a few rounds settle any race.
    for _ in 0..4 {
        let inserted = diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::issuer.eq(project.as_str()),
                idempotency_keys::key.eq(key.as_str()),
                idempotency_keys::fingerprint.eq(fingerprint),
                idempotency_keys::started_at.eq(now),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => return Ok(Claim::Run(now)),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(err) => return Err(err.into()),
        }
        let Some(row) = this()
            .select((
                idempotency_keys::fingerprint,
                idempotency_keys::started_at,
                idempotency_keys::status,
                idempotency_keys::content_type,
                idempotency_keys::body,
            ))
            .first::<Row>(conn)
            .optional()?
        else {
            continue;
        };
        if row.started_at < expired {
            diesel::delete(this().filter(idempotency_keys::started_at.eq(row.started_at)))
                .execute(conn)?;
            continue;
        }
        if !bool::from(row.fingerprint.ct_eq(fingerprint)) {
            return Err(Error::IdempotencyKeyReused);
        }
        if let Some(status) = row.status {
            return Ok(Claim::Replay(Answer {
                status: u16::try_from(status).unwrap_or(500),
                content_type: row.content_type,
                body: row.body.unwrap_or_default(),
            }));
        }
        if row.started_at >= lapsed {
            return Err(Error::IdempotencyKeyInUse);
        }
        // The request that claimed it is gone: take the claim over, if nobody did first.
        let taken = diesel::update(
            this()
                .filter(idempotency_keys::status.is_null())
                .filter(idempotency_keys::started_at.eq(row.started_at)),
        )
        .set(idempotency_keys::started_at.eq(now))
        .execute(conn)?;
        if taken == 1 {
            return Ok(Claim::Run(now));
        }
    }
    Err(Error::IdempotencyKeyInUse)
}

/// Stores the answer of the request that claimed `key` at `claimed`; `resource_id` is the id
/// the answer names (a purge of that user removes it). A claim another request took over after
/// its lease lapsed is that request's: it is left alone.
pub fn complete(
    conn: &mut DbConn,
    project: &ProjectId,
    key: &Key,
    claimed: NaiveDateTime,
    answer: &Answer,
    resource_id: Option<&str>,
) -> Result<()> {
    diesel::update(
        scope::idempotency_of(project)
            .filter(idempotency_keys::key.eq(key.as_str()))
            .filter(idempotency_keys::started_at.eq(claimed))
            .filter(idempotency_keys::status.is_null()),
    )
    .set((
        idempotency_keys::status.eq(Some(i32::from(answer.status))),
        idempotency_keys::content_type.eq(answer.content_type.as_deref()),
        idempotency_keys::body.eq(Some(answer.body.as_slice())),
        idempotency_keys::resource_id.eq(resource_id),
    ))
    .execute(conn)?;
    Ok(())
}

/// Gives up the claim (made at `claimed`) of a request whose failure a retry may fix.
pub fn release(
    conn: &mut DbConn,
    project: &ProjectId,
    key: &Key,
    claimed: NaiveDateTime,
) -> Result<()> {
    diesel::delete(
        scope::idempotency_of(project)
            .filter(idempotency_keys::key.eq(key.as_str()))
            .filter(idempotency_keys::started_at.eq(claimed))
            .filter(idempotency_keys::status.is_null()),
    )
    .execute(conn)?;
    Ok(())
}

/// Deletes the stored answers of any project that name a user or an account that no longer
/// exists: an answer stored in the moment between a create and a purge of what it made.
pub fn forget_orphans(conn: &mut DbConn) -> Result<usize> {
    use crate::db::schema::{accounts, users};
    use diesel::dsl::{exists, not};
    let user = users::table
        .filter(users::id.nullable().eq(idempotency_keys::resource_id))
        .filter(users::issuer.eq(idempotency_keys::issuer))
        .select(users::id);
    let account = accounts::table
        .filter(accounts::id.nullable().eq(idempotency_keys::resource_id))
        .filter(accounts::issuer.eq(idempotency_keys::issuer))
        .select(accounts::id);
    Ok(diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::resource_id.is_not_null())
            .filter(not(exists(user)))
            .filter(not(exists(account))),
    )
    .execute(conn)?)
}

/// Deletes every stored answer (and lapsed claim) of any project started before `cutoff`.
pub fn purge_expired(conn: &mut DbConn, cutoff: NaiveDateTime) -> Result<usize> {
    Ok(
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::started_at.lt(cutoff)))
            .execute(conn)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii() {
        assert!(Key::parse(b"a").is_ok());
        assert!(Key::parse(b"order-42_retry:1/x").is_ok());
        assert!(Key::parse(&[b'k'; 255]).is_ok());
        for bad in [
            &b""[..],
            b"a b",
            b"tab\t",
            &[b'k'; 256],
            "é".as_bytes(),
            b"\x7f",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_tell_method_path_and_body_apart() {
        let base = fingerprint("POST", "/v2/users", b"{}");
        assert_eq!(base, fingerprint("POST", "/v2/users", b"{}"));
        assert_ne!(base, fingerprint("PUT", "/v2/users", b"{}"));
        assert_ne!(base, fingerprint("POST", "/v2/accounts", b"{}"));
        assert_ne!(base, fingerprint("POST", "/v2/users", b"{ }"));
        // The parts are length-prefixed, so moving bytes between them changes the hash.
        assert_ne!(
            fingerprint("POST", "/a", b"b"),
            fingerprint("POST", "/ab", b"")
        );
    }
}

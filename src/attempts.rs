//! Brute-force protection for a user's PIN and password: after [`FREE_FAILURES`] failed checks
//! the credential is locked, for [`FIRST_LOCK_SECS`] and then twice as long per further
//! failure, up to an hour; a success resets it. The counters live in the database
//! (`credential_attempts`), so every instance shares them.
//!
//! An attempt is counted *before* the secret is checked ([`charge`]) and forgiven on success
//! ([`reset`]): a burst of concurrent guesses cannot all pass the check before the first
//! failure is written. The charge is a conditional update in a transaction that also sets the
//! lock, which on PostgreSQL holds the row until commit (a concurrent charge waits, then
//! re-reads the lock) and on SQLite runs under the single writer lock.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::schema::credential_attempts;
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::ProjectId;
use crate::scope;

/// Failed checks allowed before the first lock.
pub const FREE_FAILURES: i32 = 5;
/// Length of the first lock, in seconds; each further failure doubles it.
pub const FIRST_LOCK_SECS: i64 = 60;
/// Longest lock, in seconds.
pub const MAX_LOCK_SECS: i64 = 3600;

/// The secret being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Pin,
    Password,
}

impl Credential {
    fn as_str(self) -> &'static str {
        match self {
            Credential::Pin => "PIN",
            Credential::Password => "PASSWORD",
        }
    }
}

/// How long the lock lasts after `failures` failed checks (none before the fifth).
pub fn lock_secs(failures: i32) -> Option<i64> {
    let beyond = failures.checked_sub(FREE_FAILURES)?;
    let doublings = u32::try_from(beyond).ok()?.min(16);
    Some((FIRST_LOCK_SECS << doublings).min(MAX_LOCK_SECS))
}

/// Counts an attempt to check the user's credential, or refuses it with `TooManyAttempts`
/// (and the seconds left) while the credential is locked.
pub fn charge(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    credential: Credential,
    now: NaiveDateTime,
) -> Result<()> {
    conn.transaction(|conn| {
        let row = scope::attempts_of(project)
            .filter(credential_attempts::user_id.eq(user_id))
            .filter(credential_attempts::credential.eq(credential.as_str()));
        // Twice at most: the second time after a concurrent first attempt inserted the row.
        for _ in 0..2 {
            let failures: Option<i32> = diesel::update(
                row.filter(
                    credential_attempts::locked_until
                        .is_null()
                        .or(credential_attempts::locked_until.le(now)),
                ),
            )
            .set(credential_attempts::failures.eq(credential_attempts::failures + 1))
            .returning(credential_attempts::failures)
            .get_result(conn)
            .optional()?;
            if let Some(failures) = failures {
                if let Some(secs) = lock_secs(failures) {
                    diesel::update(row)
                        .set(credential_attempts::locked_until.eq(now + Duration::seconds(secs)))
                        .execute(conn)?;
                }
                return Ok(());
            }
            let until: Option<Option<NaiveDateTime>> = row
                .select(credential_attempts::locked_until)
                .first(conn)
                .optional()?;
            match until {
                Some(Some(until)) if until > now => {
                    let left = (until - now).num_seconds().max(1);
                    return Err(Error::TooManyAttempts(u64::try_from(left).unwrap_or(1)));
                }
                // The row a concurrent first attempt inserted after this one's update: again.
                Some(_) => continue,
                None => {}
            }
            // The first attempt: the row, in a savepoint so that losing the race to a
            // concurrent first attempt leaves the transaction usable.
            let inserted = conn.transaction(|conn| {
                diesel::insert_into(credential_attempts::table)
                    .values((
                        credential_attempts::issuer.eq(project.as_str()),
                        credential_attempts::user_id.eq(user_id),
                        credential_attempts::credential.eq(credential.as_str()),
                        credential_attempts::failures.eq(1),
                    ))
                    .execute(conn)
            });
            match inserted {
                Ok(_) => return Ok(()),
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                    _,
                )) => return Err(Error::UserNotFound),
                Err(other) => match Error::from(other) {
                    Error::Conflict(_) => continue,
                    other => return Err(other),
                },
            }
        }
        Err(Error::Unavailable)
    })
}

/// Forgets the user's failed checks of the credential: it was just checked successfully.
pub fn reset(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    credential: Credential,
) -> Result<()> {
    diesel::delete(
        scope::attempts_of(project)
            .filter(credential_attempts::user_id.eq(user_id))
            .filter(credential_attempts::credential.eq(credential.as_str())),
    )
    .execute(conn)?;
    Ok(())
}

/// Takes back an attempt that was counted but never checked (the hashing queue was full).
pub fn refund(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    credential: Credential,
) -> Result<()> {
    diesel::update(
        scope::attempts_of(project)
            .filter(credential_attempts::user_id.eq(user_id))
            .filter(credential_attempts::credential.eq(credential.as_str()))
            .filter(credential_attempts::failures.gt(0)),
    )
    // A charge passes only while the credential is not locked: taking it back restores that.
    .set((
        credential_attempts::failures.eq(credential_attempts::failures - 1),
        credential_attempts::locked_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_the_fifth_failure_and_double_up_to_an_hour() {
        assert_eq!(lock_secs(0), None);
        assert_eq!(lock_secs(4), None);
        assert_eq!(lock_secs(5), Some(60));
        assert_eq!(lock_secs(6), Some(120));
        assert_eq!(lock_secs(10), Some(1920));
        assert_eq!(lock_secs(11), Some(3600));
        assert_eq!(lock_secs(1000), Some(3600));
    }
}

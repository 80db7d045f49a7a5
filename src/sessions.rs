//! Sessions of the browser console: made by signing in with a project's key id and secret,
//! kept in the database so that every instance knows them, stored hashed.
//!
//! The cookie holds `<API_KEY_ID>.<token>`, the token 256 random bits in hex; only the token's
//! SHA-256 is stored. A session ends at sign-out, after `CONSOLE_IDLE_TIMEOUT_SECS` unused,
//! after `CONSOLE_SESSION_MAX_SECS` in all, and when the secret it was made with is revoked (the
//! lookup joins the secret, so revocation needs no step of its own). Its CSRF token is derived
//! from its token, so it needs no column and cannot be read without the cookie.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, Context};
use crate::db::schema::{console_sessions, project_secrets};
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::ProjectId;
use crate::projects;

/// The session cookie's name.
pub const COOKIE: &str = "cotterd_console";
/// The header a state-changing request made with the cookie carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Hex characters of a session's id that name it in the audit trail (`console:<prefix>`).
const PREFIX_CHARS: usize = 8;
/// How stale `seen_at` may be before a request moves it: the idle timeout is this coarse, and
/// a busy console writes at most once a minute.
const SEEN_EVERY: Duration = Duration::from_secs(60);
/// How long a session row is kept after it can no longer be used, for the record.
const KEEP_ENDED: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long sessions last: `CONSOLE_IDLE_TIMEOUT_SECS` and `CONSOLE_SESSION_MAX_SECS`.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle: Duration,
    pub total: Duration,
}

impl Default for Lifetimes {
    /// 30 minutes idle, 12 hours in all: the settings' defaults.
    fn default() -> Self {
        Lifetimes {
            idle: Duration::from_secs(1800),
            total: Duration::from_secs(43_200),
        }
    }
}

impl Lifetimes {
    /// What `settings` say.
    pub fn of(settings: &crate::config::Settings) -> Self {
        Lifetimes {
            idle: Duration::from_secs(settings.console_idle_timeout_secs),
            total: Duration::from_secs(settings.console_session_max_secs),
        }
    }
}

/// A live session, as a request finds it.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    /// The printed prefix of the secret it was made with.
    pub secret_prefix: String,
    pub created_at: NaiveDateTime,
    pub seen_at: NaiveDateTime,
    /// What a state-changing request made in it carries in `X-CSRF-Token`.
    pub csrf_token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("secret_prefix", &self.secret_prefix)
            .field("created_at", &self.created_at)
            .field("seen_at", &self.seen_at)
            .field("csrf_token", &"…")
            .finish()
    }
}

impl Session {
    /// How the audit trail names the session: the first characters of its id, never its token.
    pub fn prefix(&self) -> &str {
        &self.id[..PREFIX_CHARS.min(self.id.len())]
    }

    /// When it ends at the latest, however it is used.
    pub fn expires_at(&self, lifetimes: Lifetimes) -> NaiveDateTime {
        self.created_at + chrono_duration(lifetimes.total)
    }
}

/// A session just made: the only time its token exists outside the browser.
pub struct Started {
    pub session: Session,
    /// The cookie's value.
    pub cookie: String,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("session", &self.session)
            .field("cookie", &"…")
            .finish()
    }
}

fn chrono_duration(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The CSRF token of the session whose token is `token`: a hash that names the purpose, so it
/// is neither the token nor its stored hash.
pub fn csrf_token(token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"cotterd console csrf\0");
    hasher.update(token.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether `presented` is the CSRF token of the session whose token is `token` (compared in
/// constant time).
pub fn csrf_matches(token: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = csrf_token(token);
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// The project id and token a cookie value holds, if it is well formed.
pub fn parse_cookie(value: &str) -> Option<(Uuid, &str)> {
    let (project, token) = value.split_once('.')?;
    let project = crate::ids::parse_uuid(project)?;
    let well_formed = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some((project, token))
}

/// Starts a session for a caller whose keys were checked: `project`, and the secret it signed in
/// with (`secret`, plain, to find its row). Records `console.signin` with the session as actor.
/// `replaces` is the cookie the browser still sent, if any: a session of the same project it
/// names ends, so that signing in again leaves one session, not two.
pub fn start(
    conn: &mut DbConn,
    project: &ProjectId,
    secret: &str,
    replaces: Option<&str>,
    request_id: Option<String>,
) -> Result<Started> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let now = crate::time::now();
    let id = Uuid::new_v4().simple().to_string();
    conn.transaction(|conn| {
        let (secret_id, secret_prefix): (String, String) = project_secrets::table
            .filter(project_secrets::project_id.eq(project.as_str()))
            .filter(project_secrets::secret_hash.eq(projects::hash_secret(secret).to_vec()))
            .filter(project_secrets::revoked_at.is_null())
            .select((project_secrets::id, project_secrets::prefix))
            .first(conn)
            .optional()?
            .ok_or(Error::Unauthorized(
                "API_SECRET_KEY is not valid for this API_KEY_ID",
            ))?;
        if let Some((old_project, old_token)) = replaces.and_then(parse_cookie) {
            if old_project.to_string() == project.as_str() {
                diesel::update(
                    console_sessions::table
                        .filter(console_sessions::issuer.eq(project.as_str()))
                        .filter(console_sessions::token_hash.eq(hash_token(old_token)))
                        .filter(console_sessions::ended_at.is_null()),
                )
                .set(console_sessions::ended_at.eq(now))
                .execute(conn)?;
            }
        }
        diesel::insert_into(console_sessions::table)
            .values((
                console_sessions::id.eq(&id),
                console_sessions::issuer.eq(project.as_str()),
                console_sessions::token_hash.eq(hash_token(&token)),
                console_sessions::secret_id.eq(&secret_id),
                console_sessions::created_at.eq(now),
                console_sessions::seen_at.eq(now),
            ))
            .execute(conn)?;
        let session = Session {
            id: id.clone(),
            secret_prefix,
            created_at: now,
            seen_at: now,
            csrf_token: csrf_token(&token),
        };
        let context = Context {
            actor: format!("console:{}", session.prefix()),
            request_id,
        };
        audit::record_users(
            conn,
            project,
            &context,
            "console.signin",
            json!({"secret_prefix": session.secret_prefix}),
        )?;
        Ok(Started {
            cookie: format!("{project}.{token}"),
            session,
        })
    })
}

/// The live session of `project` whose token is `token` at `now`, if there is one: not ended,
/// used within the idle time, younger than the total time, and made with a secret that is not
/// revoked. Moves `seen_at` when it is more than a minute old.
pub fn find(
    conn: &mut DbConn,
    project: &Uuid,
    token: &str,
    lifetimes: Lifetimes,
    now: NaiveDateTime,
) -> Result<Option<Session>> {
    let idle_since = now - chrono_duration(lifetimes.idle);
    let born_since = now - chrono_duration(lifetimes.total);
    let project = project.to_string();
    let found: Option<(String, String, NaiveDateTime, NaiveDateTime)> = console_sessions::table
        .inner_join(project_secrets::table)
        .filter(console_sessions::issuer.eq(&project))
        .filter(console_sessions::token_hash.eq(hash_token(token)))
        .filter(console_sessions::ended_at.is_null())
        .filter(console_sessions::seen_at.gt(idle_since))
        .filter(console_sessions::created_at.gt(born_since))
        .filter(project_secrets::project_id.eq(&project))
        .filter(project_secrets::revoked_at.is_null())
        .select((
            console_sessions::id,
            project_secrets::prefix,
            console_sessions::created_at,
            console_sessions::seen_at,
        ))
        .first(conn)
        .optional()?;
    let Some((id, secret_prefix, created_at, mut seen_at)) = found else {
        return Ok(None);
    };
    // Often enough that a session in use never reaches its idle time (a quarter of it at most).
    let every = SEEN_EVERY.min(lifetimes.idle / 4);
    if now - seen_at >= chrono_duration(every) {
        diesel::update(
            console_sessions::table
                .filter(console_sessions::issuer.eq(&project))
                .filter(console_sessions::id.eq(&id)),
        )
        .set(console_sessions::seen_at.eq(now))
        .execute(conn)?;
        seen_at = now;
    }
    Ok(Some(Session {
        id,
        secret_prefix,
        created_at,
        seen_at,
        csrf_token: csrf_token(token),
    }))
}

/// Ends a session (sign-out), recording `console.signout`.
pub fn end(
    conn: &mut DbConn,
    project: &ProjectId,
    session: &Session,
    context: &Context,
) -> Result<()> {
    conn.transaction(|conn| {
        diesel::update(
            console_sessions::table
                .filter(console_sessions::issuer.eq(project.as_str()))
                .filter(console_sessions::id.eq(&session.id))
                .filter(console_sessions::ended_at.is_null()),
        )
        .set(console_sessions::ended_at.eq(crate::time::now()))
        .execute(conn)?;
        audit::record_users(conn, project, context, "console.signout", json!({}))
    })
}

/// Deletes the rows of sessions that could not be used for a week or more, of every project
/// (the server's upkeep). Returns how many.
pub fn forget_old(conn: &mut DbConn, now: NaiveDateTime, lifetimes: Lifetimes) -> Result<usize> {
    let keep = chrono_duration(KEEP_ENDED);
    let idle_before = now - chrono_duration(lifetimes.idle) - keep;
    let born_before = now - chrono_duration(lifetimes.total) - keep;
    Ok(diesel::delete(
        console_sessions::table.filter(
            console_sessions::seen_at
                .lt(idle_before)
                .or(console_sessions::created_at.lt(born_before))
                .or(console_sessions::ended_at.lt(now - keep)),
        ),
    )
    .execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_strictly() {
        let token = "a".repeat(64);
        let id = Uuid::new_v4();
        let value = format!("{id}.{token}");
        assert_eq!(parse_cookie(&value), Some((id, token.as_str())));
        assert_eq!(parse_cookie(&format!("{id}.{}", "a".repeat(63))), None);
        assert_eq!(parse_cookie(&format!("{id}.{}", "g".repeat(64))), None);
        assert_eq!(parse_cookie(&format!("not-a-uuid.{token}")), None);
        assert_eq!(parse_cookie(&token), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let a = csrf_token("one");
        assert_ne!(a, csrf_token("two"));
        assert_ne!(a, hex::encode(hash_token("one")));
        assert!(csrf_matches("one", &a));
        assert!(!csrf_matches("two", &a));
        assert!(!csrf_matches("one", ""));
    }
}

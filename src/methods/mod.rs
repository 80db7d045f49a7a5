//! Enrolled methods of Cotter's SDKs: a user's PIN (its argon2id hash) and device keys
//! (BIOMETRIC, TRUSTED_DEVICE), in the `user_methods` table.
//!
//! The User object's `enrolled` and `default_method` are derived from that table: every change
//! here recomputes them ([`refresh`]) in the change's own transaction and stores them on the
//! user's row, so that reading a user stays one row read. Nothing else writes them.

pub mod keys;
pub mod pin;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{user_methods, users};
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::scope;
use crate::users::User;
use keys::DeviceKey;

/// Most keys a user may enroll for one method (its devices).
pub const MAX_KEYS_PER_METHOD: i64 = 20;
/// Longest `device_name` / `device_type` kept, in characters.
pub const MAX_DEVICE_CHARS: usize = 200;

/// A method a user enrolls through `PUT /api/v0/user/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Pin,
    Biometric,
    TrustedDevice,
}

impl Method {
    /// The name on the wire and in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Pin => "PIN",
            Method::Biometric => "BIOMETRIC",
            Method::TrustedDevice => "TRUSTED_DEVICE",
        }
    }

    /// Reads a method name as the SDKs send it (upper case).
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "PIN" => Ok(Method::Pin),
            "BIOMETRIC" => Ok(Method::Biometric),
            "TRUSTED_DEVICE" => Ok(Method::TrustedDevice),
            "WEBAUTHN" => Err(Error::Invalid(
                "WEBAUTHN is enrolled through Cotter's /webauthn calls, which this server does \
                 not serve"
                    .into(),
            )),
            _ => Err(Error::Invalid(
                "method must be PIN, BIOMETRIC or TRUSTED_DEVICE".into(),
            )),
        }
    }

    /// Whether the method is a device key (not a PIN).
    pub fn is_key(self) -> bool {
        self != Method::Pin
    }
}

/// A device's name and type as the Android, React Native and Flutter SDKs send them.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub name: Option<String>,
    pub kind: Option<String>,
}

impl Device {
    /// Checks the fields: at most 200 characters, no control characters.
    pub fn parse(name: Option<String>, kind: Option<String>) -> Result<Self> {
        for (field, value) in [("device_name", &name), ("device_type", &kind)] {
            if let Some(value) = value {
                if value.chars().count() > MAX_DEVICE_CHARS || value.chars().any(char::is_control) {
                    return Err(Error::Invalid(format!(
                        "{field} must be at most {MAX_DEVICE_CHARS} characters, without control \
                         characters"
                    )));
                }
            }
        }
        Ok(Device { name, kind })
    }
}

/// The user's row lock (a write that also sets `updated_at`), so that concurrent changes of
/// one user's methods run one after the other on both backends; `UserNotFound` when the user
/// is gone (another project's included).
fn lock(conn: &mut DbConn, project: &ProjectId, user_id: &str, now: NaiveDateTime) -> Result<()> {
    let locked = diesel::update(scope::users_of(project).filter(users::id.eq(user_id)))
        .set(users::updated_at.eq(now))
        .execute(conn)?;
    match locked {
        0 => Err(Error::UserNotFound),
        _ => Ok(()),
    }
}

/// Recomputes the user's `enrolled` (distinct methods, in the order first enrolled) and
/// `default_method` (the latest enrolled) from its methods; the updated row.
fn refresh(conn: &mut DbConn, project: &ProjectId, user_id: &str) -> Result<User> {
    let mut rows: Vec<(String, NaiveDateTime)> = scope::methods_of(project)
        .filter(user_methods::user_id.eq(user_id))
        .select((user_methods::method, user_methods::created_at))
        .order((user_methods::created_at.asc(), user_methods::id.asc()))
        .load(conn)?;
    let default_method = rows.last().map(|(method, _)| method.clone());
    let mut enrolled: Vec<String> = Vec::new();
    for (method, _) in rows.drain(..) {
        if !enrolled.contains(&method) {
            enrolled.push(method);
        }
    }
    let enrolled = serde_json::to_string(&enrolled)
        .map_err(|e| Error::Internal(format!("cannot write enrolled methods: {e}")))?;
    let user = scope::users_of(project).filter(users::id.eq(user_id));
    diesel::update(user)
        .set((
            users::enrolled.eq(enrolled),
            users::default_method.eq(default_method),
        ))
        .execute(conn)?;
    Ok(user.select(User::as_select()).first(conn)?)
}

/// The stored hash of the user's PIN, if one is enrolled.
pub fn pin_hash(conn: &mut DbConn, project: &ProjectId, user_id: &str) -> Result<Option<String>> {
    Ok(scope::methods_of(project)
        .filter(user_methods::user_id.eq(user_id))
        .filter(user_methods::method.eq(Method::Pin.as_str()))
        .select(user_methods::pin_hash)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// Enrolls a PIN (already hashed); a 409 when one is enrolled (changing it needs the current
/// one). The updated user.
pub fn enroll_pin(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    hash: String,
    now: NaiveDateTime,
) -> Result<User> {
    conn.transaction(|conn| {
        lock(conn, project, user_id, now)?;
        let inserted = diesel::insert_into(user_methods::table)
            .values((
                user_methods::id.eq(UserId::generate().into_string()),
                user_methods::issuer.eq(project.as_str()),
                user_methods::user_id.eq(user_id),
                user_methods::method.eq(Method::Pin.as_str()),
                user_methods::key_hash.eq(""),
                user_methods::pin_hash.eq(hash),
                user_methods::created_at.eq(now),
                user_methods::updated_at.eq(now),
            ))
            .execute(conn);
        match inserted.map_err(Error::from) {
            Ok(_) => refresh(conn, project, user_id),
            Err(Error::Conflict(_)) => Err(Error::Conflict(
                "a PIN is already enrolled: send change_code true and current_code to change it",
            )),
            Err(other) => Err(other),
        }
    })
}

/// Replaces the user's PIN hash (the caller checked the current PIN); a 409 when no PIN is
/// enrolled any more. The updated user.
pub fn change_pin(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    hash: String,
    now: NaiveDateTime,
) -> Result<User> {
    conn.transaction(|conn| {
        lock(conn, project, user_id, now)?;
        let changed = diesel::update(
            scope::methods_of(project)
                .filter(user_methods::user_id.eq(user_id))
                .filter(user_methods::method.eq(Method::Pin.as_str())),
        )
        .set((
            user_methods::pin_hash.eq(hash),
            user_methods::updated_at.eq(now),
        ))
        .execute(conn)?;
        if changed == 0 {
            return Err(Error::Conflict(
                "no PIN is enrolled to change: enroll one without change_code",
            ));
        }
        refresh(conn, project, user_id)
    })
}

/// Removes one of the user's methods: the PIN (`key_hash` `None`) or one key. Removing what is
/// not enrolled changes nothing. The updated user.
pub fn remove(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    method: Method,
    key_hash: Option<&str>,
    now: NaiveDateTime,
) -> Result<User> {
    conn.transaction(|conn| {
        lock(conn, project, user_id, now)?;
        diesel::delete(
            scope::methods_of(project)
                .filter(user_methods::user_id.eq(user_id))
                .filter(user_methods::method.eq(method.as_str()))
                .filter(user_methods::key_hash.eq(key_hash.unwrap_or(""))),
        )
        .execute(conn)?;
        refresh(conn, project, user_id)
    })
}

/// Enrolls a device key for a key method. The same key again is not an error: its device
/// fields and time are updated (Android reads "already enrolled" as success). The updated user.
pub fn enroll_key(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    method: Method,
    key: &DeviceKey,
    device: &Device,
    now: NaiveDateTime,
) -> Result<User> {
    conn.transaction(|conn| {
        lock(conn, project, user_id, now)?;
        let same = scope::methods_of(project)
            .filter(user_methods::user_id.eq(user_id))
            .filter(user_methods::method.eq(method.as_str()));
        let updated = diesel::update(same.filter(user_methods::key_hash.eq(key.hash())))
            .set((
                user_methods::device_name.eq(&device.name),
                user_methods::device_type.eq(&device.kind),
                user_methods::updated_at.eq(now),
            ))
            .execute(conn)?;
        if updated == 0 {
            let count: i64 = same.count().get_result(conn)?;
            if count >= MAX_KEYS_PER_METHOD {
                return Err(Error::Conflict(
                    "this user has the most keys allowed for this method (20): remove one first",
                ));
            }
            diesel::insert_into(user_methods::table)
                .values((
                    user_methods::id.eq(UserId::generate().into_string()),
                    user_methods::issuer.eq(project.as_str()),
                    user_methods::user_id.eq(user_id),
                    user_methods::method.eq(method.as_str()),
                    user_methods::key_hash.eq(key.hash()),
                    user_methods::algorithm.eq(key.algorithm().as_str()),
                    user_methods::public_key.eq(key.canonical()),
                    user_methods::device_name.eq(&device.name),
                    user_methods::device_type.eq(&device.kind),
                    user_methods::created_at.eq(now),
                    user_methods::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        refresh(conn, project, user_id)
    })
}

/// Whether the user has the method enrolled (with `key_hash`, that key for it).
pub fn is_enrolled(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    method: Method,
    key_hash: Option<&str>,
) -> Result<bool> {
    let mut query = scope::methods_of(project)
        .filter(user_methods::user_id.eq(user_id))
        .filter(user_methods::method.eq(method.as_str()))
        .select(user_methods::id)
        .into_boxed();
    if let Some(hash) = key_hash {
        query = query.filter(user_methods::key_hash.eq(hash.to_owned()));
    }
    Ok(query.first::<String>(conn).optional()?.is_some())
}

/// The user's keys for a key method (with `key_hash`, only that one), as stored keys.
pub fn keys(
    conn: &mut DbConn,
    project: &ProjectId,
    user_id: &str,
    method: Method,
    key_hash: Option<&str>,
) -> Result<Vec<DeviceKey>> {
    let mut query = scope::methods_of(project)
        .filter(user_methods::user_id.eq(user_id))
        .filter(user_methods::method.eq(method.as_str()))
        .select((user_methods::algorithm, user_methods::public_key))
        .limit(MAX_KEYS_PER_METHOD)
        .into_boxed();
    if let Some(hash) = key_hash {
        query = query.filter(user_methods::key_hash.eq(hash.to_owned()));
    }
    let rows: Vec<(Option<String>, Option<String>)> = query.load(conn)?;
    rows.into_iter()
        .map(|(algorithm, key)| match (algorithm, key) {
            (Some(algorithm), Some(key)) => DeviceKey::from_stored(&algorithm, &key),
            _ => Err(Error::Internal("a stored device key has no key".into())),
        })
        .collect()
}

//! One import record, read and checked with the APIs' rules: this server's export record, a
//! Cotter User object as `GET /api/v0/user/list` returned it, or a minimal `{"identifier"}`.

use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;

use crate::accounts::{Account, ACCOUNT_TYPES};
use crate::api::rules::{self, MAX_KYC_ID_CHARS, MAX_NAME_CHARS};
use crate::ids::{parse_uuid, ProjectId, UserId};
use crate::passwords;
use crate::time;
use crate::users::{normalize_identifier, ClientUserId, Identifier, ImportedRow};

/// Identifiers a record may list (the primary one and ten more, as a v0 create allows).
pub const MAX_RECORD_IDENTIFIERS: usize = 11;
/// Accounts a record may hold.
pub const MAX_RECORD_ACCOUNTS: usize = 100;
/// Longest password hash accepted, in bytes.
const MAX_HASH_BYTES: usize = 512;

/// Which of the three shapes a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// This server's export record (`id`, `status`, `profile`, `accounts`, …).
    Export,
    /// Cotter's User object (`ID`, `issuer`, `deleted_at` as Go's zero time, …).
    Cotter,
    /// `{"identifier"}`, with at most `identifiers`, `client_user_id`, `password_hash` and
    /// `created_at`: a user from anywhere, given a new id.
    Minimal,
}

/// Why a record cannot be imported, as its result line says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub detail: String,
}

fn reject(code: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection {
        code,
        detail: detail.into(),
    }
}

/// A record that passed every check, ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub line: u64,
    pub kind: Kind,
    /// The row to insert (for a minimal record, under a new id).
    pub row: ImportedRow,
    /// Whether the record named `client_user_id` / `created_at` itself (an update of a minimal
    /// record changes only what it names).
    pub names_client_user_id: bool,
    pub names_created_at: bool,
    pub accounts: Vec<Account>,
    /// Something the import could not keep, said in the record's result.
    pub note: Option<Rejection>,
}

impl Prepared {
    /// The user's id.
    pub fn id(&self) -> &str {
        self.row.id()
    }

    /// Whether the user is live (not deleted): only live users hold identifiers.
    pub fn live(&self) -> bool {
        self.row.deleted_at.is_none()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    email: Option<String>,
    phone_number: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    kyc_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    id: String,
    #[serde(rename = "type")]
    account_type: String,
    created_at: String,
}

/// Every field any of the three shapes has; which ones a record has says its shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "ID")]
    cotter_id: Option<String>,
    id: Option<String>,
    issuer: Option<String>,
    client_user_id: Option<String>,
    identifier: Option<String>,
    identifiers: Option<Vec<String>>,
    status: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    disabled_at: Option<String>,
    deleted_at: Option<String>,
    enrolled: Option<Vec<String>>,
    default_method: Option<String>,
    profile: Option<RawProfile>,
    account_ids: Option<Vec<String>>,
    accounts: Option<Vec<RawAccount>>,
    password_hash: Option<String>,
}

/// An RFC 3339 time, to the microsecond (finer digits are dropped, as storage would).
fn instant(name: &str, raw: &str) -> Result<NaiveDateTime, Rejection> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| time::truncate_to_micros(t.naive_utc()))
        .map_err(|_| {
            reject(
                "INVALID_TIME",
                format!("{name} must be an RFC 3339 time such as 2020-08-01T05:55:57.4803Z"),
            )
        })
}

/// A time that may be unset: null, absent or Go's zero time (as Cotter printed it).
fn optional_instant(name: &str, raw: Option<&str>) -> Result<Option<NaiveDateTime>, Rejection> {
    match raw {
        None => Ok(None),
        Some(raw) if raw == time::ZERO_TIME => Ok(None),
        Some(raw) => instant(name, raw).map(Some),
    }
}

fn invalid(detail: impl Into<String>) -> Rejection {
    reject("INVALID_RECORD", detail)
}

/// Fields that only one shape has.
fn only_in(kind: Kind, raw: &Raw) -> Result<(), Rejection> {
    let export_only = [
        ("id", raw.id.is_some()),
        ("status", raw.status.is_some()),
        ("disabled_at", raw.disabled_at.is_some()),
        ("profile", raw.profile.is_some()),
        ("account_ids", raw.account_ids.is_some()),
        ("accounts", raw.accounts.is_some()),
    ];
    let found = |fields: &[(&'static str, bool)]| fields.iter().find(|(_, has)| *has).map(|f| f.0);
    match kind {
        Kind::Cotter => match found(&export_only) {
            Some(field) => Err(invalid(format!(
                "{field} belongs to this server's export records, not to Cotter's User object (ID)"
            ))),
            None => Ok(()),
        },
        Kind::Export => match raw.issuer {
            Some(_) => Err(invalid(
                "issuer belongs to Cotter's User object (ID), not to an export record (id)",
            )),
            None => Ok(()),
        },
        Kind::Minimal => {
            let more = [
                ("issuer", raw.issuer.is_some()),
                ("updated_at", raw.updated_at.is_some()),
                ("deleted_at", raw.deleted_at.is_some()),
                ("enrolled", raw.enrolled.is_some()),
                ("default_method", raw.default_method.is_some()),
            ];
            match found(&export_only).or(found(&more)) {
                Some(field) => Err(invalid(format!(
                    "{field} needs the record's id (id, or Cotter's ID); a record without one \
                     has identifier, identifiers, client_user_id, password_hash and created_at"
                ))),
                None => Ok(()),
            }
        }
    }
}

/// Reads and checks one record for `project`. `line` is where it starts in the file.
pub fn prepare(project: &ProjectId, line: u64, bytes: &[u8]) -> Result<Prepared, Rejection> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        _ => return Err(reject("INVALID_JSON", "a record must be a JSON object")),
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => "INVALID_RECORD",
            _ => "INVALID_JSON",
        };
        reject(code, format!("{e}"))
    })?;
    let kind = match (&raw.cotter_id, &raw.id) {
        (Some(_), Some(_)) => return Err(invalid("a record has ID (Cotter's) or id, not both")),
        (Some(_), None) => Kind::Cotter,
        (None, Some(_)) => Kind::Export,
        (None, None) => Kind::Minimal,
    };
    only_in(kind, &raw)?;

    let id = match raw.cotter_id.as_deref().or(raw.id.as_deref()) {
        Some(given) => UserId::parse(given).ok_or_else(|| {
            let shown: String = given.chars().take(64).collect();
            reject(
                "INVALID_ID",
                format!("the id {shown:?} is not a UUID (8-4-4-4-12 hexadecimal digits)"),
            )
        })?,
        None => UserId::generate(),
    };

    // The identifiers, with the v0 create's rules: the primary one falls back to the list's
    // first, then to the app's id.
    let list = raw.identifiers.unwrap_or_default();
    if list.len() > MAX_RECORD_IDENTIFIERS {
        return Err(reject(
            "INVALID_IDENTIFIER",
            format!("identifiers may hold at most {MAX_RECORD_IDENTIFIERS} identifiers"),
        ));
    }
    let parse_identifier =
        |raw: &str| Identifier::parse(raw).map_err(|e| reject("INVALID_IDENTIFIER", e.to_string()));
    let listed = list
        .iter()
        .map(|raw| parse_identifier(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let client_user_id = ClientUserId::parse(raw.client_user_id.as_deref().unwrap_or(""))
        .map_err(|e| reject("INVALID_CLIENT_USER_ID", e.to_string()))?;
    let primary = match (raw.identifier.as_deref(), listed.first(), &client_user_id) {
        (Some(given), _, _) if !given.is_empty() => parse_identifier(given)?,
        (_, Some(first), _) => first.clone(),
        (_, None, Some(app_id)) => parse_identifier(app_id.as_str())?,
        (_, None, None) => {
            return Err(reject(
                "INVALID_IDENTIFIER",
                "identifier is required (or identifiers, or client_user_id)",
            ))
        }
    };

    let mut row = ImportedRow::new(project, id, primary);
    for identifier in &listed {
        if !row.all_identifiers.contains(&identifier.normalized) {
            row.all_identifiers.push(identifier.normalized.clone());
        }
    }
    if !listed.is_empty() {
        // As given (trimmed), in the record's order: Cotter's lists read back as Cotter printed
        // them.
        let given: Vec<&str> = listed.iter().map(|i| i.given.as_str()).collect();
        row.identifiers = Some(serde_json::to_string(&given).map_err(|e| invalid(e.to_string()))?);
    }
    if let Some(client_user_id) = &client_user_id {
        row.client_user_id = client_user_id.as_str().to_owned();
    }

    if let Some(created_at) = raw.created_at.as_deref() {
        row.created_at = instant("created_at", created_at)?;
        row.updated_at = row.created_at;
    }
    if let Some(updated_at) = raw.updated_at.as_deref() {
        row.updated_at = instant("updated_at", updated_at)?;
    }
    row.deleted_at = optional_instant("deleted_at", raw.deleted_at.as_deref())?;
    row.disabled_at = optional_instant("disabled_at", raw.disabled_at.as_deref())?;
    if let Some(status) = raw.status.as_deref() {
        let actual = match (row.deleted_at, row.disabled_at) {
            (Some(_), _) => "deleted",
            (None, Some(_)) => "disabled",
            (None, None) => "active",
        };
        if status != actual {
            return Err(invalid(format!(
                "status {status:?} disagrees with deleted_at and disabled_at (which say {actual})"
            )));
        }
    }

    let mut notes: Vec<Rejection> = Vec::new();
    if let Some(hash) = raw.password_hash {
        if hash.len() > MAX_HASH_BYTES {
            return Err(reject(
                "UNSUPPORTED_PASSWORD_HASH",
                format!("a password hash is at most {MAX_HASH_BYTES} bytes"),
            ));
        }
        passwords::imported_scheme(&hash)
            .map_err(|why| reject("UNSUPPORTED_PASSWORD_HASH", why))?;
        row.password_hash = Some(hash);
    }
    if let Some(profile) = raw.profile {
        profile_into(&mut row, profile, &mut notes)?;
    }
    let accounts = accounts_of(&row, raw.accounts.unwrap_or_default(), raw.account_ids)?;

    let enrolled = raw.enrolled.unwrap_or_default();
    if !enrolled.is_empty() {
        // Only the method names the server knows are echoed (the list is the file's to fill).
        let known: Vec<&str> = enrolled
            .iter()
            .map(String::as_str)
            .filter(|m| ["PIN", "BIOMETRIC", "TRUSTED_DEVICE", "WEBAUTHN"].contains(m))
            .collect();
        notes.push(reject(
            "ENROLLED_NOT_IMPORTED",
            format!(
                "enrolled {known:?} was not kept: keys and PINs are never exported, so the user \
                 enrolls again (enrolled is [])"
            ),
        ));
    }
    let note = notes.into_iter().reduce(|first, next| Rejection {
        code: first.code,
        detail: format!("{}; {}", first.detail, next.detail),
    });
    Ok(Prepared {
        line,
        kind,
        names_client_user_id: client_user_id.is_some(),
        names_created_at: raw.created_at.is_some(),
        row,
        accounts,
        note,
    })
}

/// The v2 profile, checked as `POST /v2/users` and `PATCH` check it.
fn profile_into(
    row: &mut ImportedRow,
    profile: RawProfile,
    notes: &mut Vec<Rejection>,
) -> Result<(), Rejection> {
    if let Some(email) = &profile.email {
        if normalize_identifier(email.trim()) != row.identifier_normalized {
            return Err(reject(
                "INVALID_PROFILE",
                "profile.email must be the identifier (a v2 user's login email is its identifier)",
            ));
        }
        if row.password_hash.is_none() {
            notes.push(reject(
                "PASSWORD_NOT_IMPORTED",
                "profile.email without password_hash: the user has no password here until one \
                 is imported (export with include=password_hash)",
            ));
        }
    }
    if let Some(phone) = profile.phone_number {
        if !rules::valid_phone(&phone) {
            return Err(reject(
                "INVALID_PROFILE",
                "profile.phone_number must be E.164: + and 2 to 15 digits, the first not 0",
            ));
        }
        row.phone_number = Some(phone);
    }
    let text = |name: &str, raw: Option<String>, max: usize| {
        raw.map(|raw| {
            rules::trimmed_text(&raw, max)
                .map(str::to_owned)
                .ok_or_else(|| {
                    reject(
                        "INVALID_PROFILE",
                        format!("profile.{name} must be 1 to {max} characters without control characters"),
                    )
                })
        })
        .transpose()
    };
    row.first_name = text("first_name", profile.first_name, MAX_NAME_CHARS)?;
    row.last_name = text("last_name", profile.last_name, MAX_NAME_CHARS)?;
    row.kyc_id = text("kyc_id", profile.kyc_id, MAX_KYC_ID_CHARS)?;
    Ok(())
}

/// The record's accounts, checked as `POST /v2/users/{id}/accounts` checks an opening.
fn accounts_of(
    row: &ImportedRow,
    raw: Vec<RawAccount>,
    account_ids: Option<Vec<String>>,
) -> Result<Vec<Account>, Rejection> {
    if raw.len() > MAX_RECORD_ACCOUNTS {
        return Err(reject(
            "INVALID_ACCOUNT",
            format!("a record holds at most {MAX_RECORD_ACCOUNTS} accounts"),
        ));
    }
    if !raw.is_empty() && row.kyc_id.is_none() {
        return Err(reject(
            "INVALID_ACCOUNT",
            "accounts need the user's profile.kyc_id, as opening one does",
        ));
    }
    let mut accounts: Vec<Account> = Vec::with_capacity(raw.len());
    for account in raw {
        let id = parse_uuid(&account.id)
            .ok_or_else(|| reject("INVALID_ACCOUNT", "an account id must be a UUID"))?
            .to_string();
        if accounts.iter().any(|a| a.id == id) {
            return Err(reject("INVALID_ACCOUNT", "an account is listed twice"));
        }
        if !ACCOUNT_TYPES.contains(&account.account_type.as_str()) {
            return Err(reject(
                "INVALID_ACCOUNT",
                format!("an account's type must be one of {ACCOUNT_TYPES:?}"),
            ));
        }
        accounts.push(Account {
            id,
            user_id: row.id().to_owned(),
            issuer: row.issuer().to_owned(),
            account_type: account.account_type,
            created_at: instant("accounts.created_at", &account.created_at)?,
        });
    }
    if let Some(ids) = account_ids {
        let listed: Vec<Option<String>> = ids
            .iter()
            .map(|id| parse_uuid(id).map(|u| u.to_string()))
            .collect();
        let held: Vec<Option<String>> = accounts.iter().map(|a| Some(a.id.clone())).collect();
        if listed != held {
            return Err(reject(
                "INVALID_ACCOUNT",
                "account_ids must list the ids of accounts, in the same order",
            ));
        }
    }
    Ok(accounts)
}

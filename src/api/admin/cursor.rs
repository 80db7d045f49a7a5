//! Cursors: opaque strings naming a keyset position (the order key and id of a row) in one
//! list, for one set of filters.
//!
//! A cursor is base64url (no padding) of a small JSON object: the version, the direction (after
//! or before the row), the order key, the id, and a fingerprint of the list's filters and
//! order. Sent with other filters or another order it is refused (`CURSOR_MISMATCH`) rather
//! than silently paging a different list; a cursor that does not decode is `CURSOR_INVALID`.
//! Cursors only name positions in the caller's own project's rows, so they are not signed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Datelike};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::parse_uuid;
use crate::users::admin::{Position, SortKey, Start};

/// Longest cursor accepted (a cursor holds at most a normalised identifier of 1 KiB).
const MAX_CURSOR_CHARS: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Wire {
    /// Version.
    v: u8,
    /// `a`: the page after the row; `b`: the page before it.
    d: String,
    /// The order key: microseconds since the epoch, or a normalised identifier.
    k: String,
    /// The row's id.
    i: String,
    /// Fingerprint of the filters and order.
    f: String,
}

/// The fingerprint of a list's filters and order, as a cursor carries it.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..8])
}

fn invalid() -> Error {
    Error::problem(
        "CURSOR_INVALID",
        "cursor is not a cursor this server issued",
    )
}

fn mismatch() -> Error {
    Error::problem(
        "CURSOR_MISMATCH",
        "cursor belongs to a list with other filters or another order: \
         send the same filters and order, or start again without a cursor",
    )
}

/// What a list's order key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A creation (or event) time.
    Time,
    /// A normalised identifier.
    Text,
}

fn encode_key(key: &SortKey) -> String {
    match key {
        SortKey::Created(at) => at.and_utc().timestamp_micros().to_string(),
        SortKey::Identifier(text) => text.clone(),
    }
}

/// Reads a cursor's order key, refusing what no stored row can hold (and a database would
/// refuse): years outside 1–9999, control characters (NUL above all), more than a normalised
/// identifier's 1 KiB.
fn decode_key(raw: &str, kind: KeyKind) -> Result<SortKey> {
    match kind {
        KeyKind::Time => {
            let micros: i64 = raw.parse().map_err(|_| invalid())?;
            let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
            if !(1..=9999).contains(&at.year()) {
                return Err(invalid());
            }
            Ok(SortKey::Created(at.naive_utc()))
        }
        KeyKind::Text if raw.len() <= 1024 && !raw.chars().any(char::is_control) => {
            Ok(SortKey::Identifier(raw.to_owned()))
        }
        KeyKind::Text => Err(invalid()),
    }
}

fn encode(direction: &str, key: String, id: &str, filters: &str) -> String {
    let wire = Wire {
        v: 1,
        d: direction.to_owned(),
        k: key,
        i: id.to_owned(),
        f: filters.to_owned(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
}

fn decode(raw: &str, filters: &str) -> Result<Wire> {
    if raw.len() > MAX_CURSOR_CHARS {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let mut wire: Wire = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if wire.v != 1 || !matches!(wire.d.as_str(), "a" | "b") {
        return Err(invalid());
    }
    // Ids are compared as stored: canonical, lower case.
    wire.i = parse_uuid(&wire.i).ok_or_else(invalid)?.to_string();
    if wire.f != filters {
        return Err(mismatch());
    }
    Ok(wire)
}

/// The cursor of the page after `position` in the list `filters` names.
pub fn after(position: &Position, filters: &str) -> String {
    encode("a", encode_key(&position.key), &position.id, filters)
}

/// The cursor of the page before `position`.
pub fn before(position: &Position, filters: &str) -> String {
    encode("b", encode_key(&position.key), &position.id, filters)
}

/// Where the page a cursor names starts (`First` without one).
pub fn start(raw: Option<&str>, filters: &str, kind: KeyKind) -> Result<Start> {
    let Some(raw) = raw else {
        return Ok(Start::First);
    };
    let wire = decode(raw, filters)?;
    let position = Position {
        key: decode_key(&wire.k, kind)?,
        id: wire.i,
    };
    Ok(match wire.d.as_str() {
        "a" => Start::After(position),
        _ => Start::Before(position),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forged(k: &str, i: &str) -> String {
        let wire = Wire {
            v: 1,
            d: "a".into(),
            k: k.into(),
            i: i.into(),
            f: "f".into(),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap())
    }

    #[test]
    fn forged_cursors_are_refused_not_sent_to_the_database() {
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        for (k, kind) in [
            ("a\u{0}b", KeyKind::Text),
            ("-3155760000000000000", KeyKind::Time),
            ("253402300800000000", KeyKind::Time),
            ("x", KeyKind::Time),
        ] {
            assert!(start(Some(&forged(k, id)), "f", kind).is_err(), "{k:?}");
        }
        let upper = forged("1", &id.to_uppercase());
        match start(Some(&upper), "f", KeyKind::Time).unwrap() {
            Start::After(p) => assert_eq!(p.id, id),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            start(Some(&forged("1", id)), "g", KeyKind::Time),
            Err(Error::Problems(p)) if p[0].code == "CURSOR_MISMATCH"
        ));
    }
}

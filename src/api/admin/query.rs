//! The admin list's query parameters, read strictly: a value outside its rule is a 400 naming
//! it (`INVALID_PARAMETER`), an unknown or repeated parameter a 400 `INVALID_REQUEST`; nothing
//! is silently ignored.

use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;

use super::cursor::{self, KeyKind};
use crate::api::rules;
use crate::error::{Error, Result};
use crate::time;
use crate::users::admin::{Filter, Order, Start, Status};
use crate::users::{normalize_identifier, MAX_IDENTIFIER_CHARS};

/// Users a page holds by default, and at most.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest page.
pub const MAX_LIMIT: i64 = 500;

fn invalid(message: impl Into<String>) -> Error {
    Error::problem("INVALID_PARAMETER", message)
}

/// Reads `limit`: a whole number from 1 to `max` (`default` when absent).
pub fn limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let digits = !raw.is_empty() && raw.len() <= 6 && raw.bytes().all(|b| b.is_ascii_digit());
    match raw.parse::<i64>() {
        Ok(n) if digits && (1..=max).contains(&n) => Ok(n),
        _ => Err(invalid(format!(
            "limit must be a whole number from 1 to {max}"
        ))),
    }
}

fn order(raw: Option<&str>) -> Result<Order> {
    match raw {
        None | Some("created_at.desc") => Ok(Order::CreatedDesc),
        Some("created_at.asc") => Ok(Order::CreatedAsc),
        Some("identifier.asc") => Ok(Order::IdentifierAsc),
        Some(_) => Err(invalid(
            "order must be created_at.desc, created_at.asc or identifier.asc",
        )),
    }
}

fn status(raw: Option<&str>) -> Result<Status> {
    match raw {
        None | Some("active") => Ok(Status::Active),
        Some("disabled") => Ok(Status::Disabled),
        Some("deleted") => Ok(Status::Deleted),
        Some("all") => Ok(Status::All),
        Some(_) => Err(invalid("status must be active, disabled, deleted or all")),
    }
}

/// Reads `q`: an identifier prefix, compared in the normalised form; empty means none.
fn prefix(raw: Option<&str>) -> Result<Option<String>> {
    let Some(q) = raw.map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    if q.chars().count() > MAX_IDENTIFIER_CHARS || q.chars().any(char::is_control) {
        return Err(invalid(format!(
            "q must be at most {MAX_IDENTIFIER_CHARS} characters, with no control characters"
        )));
    }
    Ok(Some(normalize_identifier(q)))
}

/// Reads an RFC 3339 time (`2026-11-01T00:00:00Z`, any offset) as UTC, rounded up to the
/// microsecond: times are stored to the microsecond, so `>= t` and `< t` select the same users
/// as `>=` and `<` its round-up.
fn instant(name: &str, raw: Option<&str>) -> Result<Option<NaiveDateTime>> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .ok()
            .and_then(|t| {
                let t = t.naive_utc();
                let down = time::truncate_to_micros(t);
                match down == t {
                    true => Some(t),
                    false => down.checked_add_signed(chrono::Duration::microseconds(1)),
                }
            })
            .ok_or(())
            .map_err(|_| {
                invalid(format!(
                    "{name} must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z"
                ))
            })
    })
    .transpose()
}

/// Reads a `true`/`false` parameter (`false` when absent).
pub fn flag(name: &str, raw: Option<&str>) -> Result<bool> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(invalid(format!("{name} must be true or false"))),
    }
}

/// The filters of `GET /admin/v1/users/count` (and of the list).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FilterQuery {
    /// `active` (the default: neither disabled nor deleted), `disabled`, `deleted` or `all`.
    #[param(value_type = Option<String>, pattern = "^(active|disabled|deleted|all)$")]
    pub status: Option<String>,
    /// An identifier prefix, compared in the normalised form (case and width folded, `%` and
    /// `_` literal); empty means none.
    #[param(value_type = Option<String>, schema_with = rules::prefix_schema)]
    pub q: Option<String>,
    /// Users created at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_after: Option<String>,
    /// Users created strictly before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<String>,
}

impl FilterQuery {
    /// The filter it names.
    pub fn filter(&self) -> Result<Filter> {
        Ok(Filter {
            status: status(self.status.as_deref())?,
            prefix: prefix(self.q.as_deref())?,
            created_after: instant("created_after", self.created_after.as_deref())?,
            created_before: instant("created_before", self.created_before.as_deref())?,
        })
    }
}

/// The parameters of `GET /admin/v1/users`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Users a page holds: 1 to 500, 50 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `created_at.desc` (the default), `created_at.asc` or `identifier.asc` (the normalised
    /// identifier).
    #[param(value_type = Option<String>, pattern = "^(created_at\\.desc|created_at\\.asc|identifier\\.asc)$")]
    pub order: Option<String>,
    /// `active` (the default: neither disabled nor deleted), `disabled`, `deleted` or `all`.
    #[param(value_type = Option<String>, pattern = "^(active|disabled|deleted|all)$")]
    pub status: Option<String>,
    /// An identifier prefix, compared in the normalised form (case and width folded, `%` and
    /// `_` literal); empty means none.
    #[param(value_type = Option<String>, schema_with = rules::prefix_schema)]
    pub q: Option<String>,
    /// Users created at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_after: Option<String>,
    /// Users created strictly before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<String>,
    /// `next_cursor` or `prev_cursor` of a page of this list (same filters and order); empty
    /// means none.
    #[param(value_type = Option<String>, max_length = 2048)]
    pub cursor: Option<String>,
    /// `true` adds `total`: how many users the filters select, across all pages.
    #[param(value_type = Option<bool>)]
    pub include_total: Option<String>,
}

/// A list request, read.
#[derive(Debug)]
pub struct List {
    pub filter: Filter,
    pub order: Order,
    pub limit: i64,
    pub start: Start,
    pub include_total: bool,
    /// The fingerprint of the filters and order that this list's cursors carry.
    pub fingerprint: String,
}

impl ListQuery {
    /// The list it asks for.
    pub fn list(self) -> Result<List> {
        let filters = FilterQuery {
            status: self.status,
            q: self.q,
            created_after: self.created_after,
            created_before: self.created_before,
        };
        let filter = filters.filter()?;
        let order = order(self.order.as_deref())?;
        let micros = |t: Option<NaiveDateTime>| {
            t.map(|t| t.and_utc().timestamp_micros().to_string())
                .unwrap_or_default()
        };
        let fingerprint = cursor::fingerprint(&[
            order.as_str(),
            filter.status.as_str(),
            filter.prefix.as_deref().unwrap_or(""),
            &micros(filter.created_after),
            &micros(filter.created_before),
        ]);
        let kind = match order {
            Order::IdentifierAsc => KeyKind::Text,
            Order::CreatedAsc | Order::CreatedDesc => KeyKind::Time,
        };
        let raw_cursor = self.cursor.as_deref().filter(|c| !c.is_empty());
        Ok(List {
            start: cursor::start(raw_cursor, &fingerprint, kind)?,
            limit: limit(self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?,
            include_total: flag("include_total", self.include_total.as_deref())?,
            filter,
            order,
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_whole_numbers_in_range() {
        assert_eq!(limit(None, 50, 500).unwrap(), 50);
        assert_eq!(limit(Some("1"), 50, 500).unwrap(), 1);
        assert_eq!(limit(Some("500"), 50, 500).unwrap(), 500);
        for bad in ["0", "501", "-1", "", "1.0", " 5", "9999999999999"] {
            assert!(limit(Some(bad), 50, 500).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_normalised() {
        for q in ["ADA", "ａｄａ", "ada", " ada "] {
            assert_eq!(prefix(Some(q)).unwrap().as_deref(), Some("ada"));
        }
        assert_eq!(prefix(Some("")).unwrap(), None);
        assert!(prefix(Some("a\u{0}")).is_err());
    }

    #[test]
    fn a_cursor_belongs_to_its_filters_and_order() {
        let first = ListQuery::default().list().unwrap();
        let other = ListQuery {
            status: Some("all".into()),
            ..ListQuery::default()
        }
        .list()
        .unwrap();
        assert_ne!(first.fingerprint, other.fingerprint);
        let reordered = ListQuery {
            order: Some("created_at.asc".into()),
            ..ListQuery::default()
        }
        .list()
        .unwrap();
        assert_ne!(first.fingerprint, reordered.fingerprint);
        let smaller = ListQuery {
            limit: Some("5".into()),
            ..ListQuery::default()
        }
        .list()
        .unwrap();
        assert_eq!(
            first.fingerprint, smaller.fingerprint,
            "the page size is free"
        );
    }
}

//! Timestamps: created truncated to microseconds (what PostgreSQL keeps) and written on the wire
//! the way Cotter's Go server printed them.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};

/// What Go prints for a time that is not set (`time.Time{}`).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The current UTC time, truncated to whole microseconds so that both backends store and
/// return exactly the value that was created.
pub fn now() -> NaiveDateTime {
    truncate_to_micros(Utc::now().naive_utc())
}

/// Drops the nanoseconds below a microsecond.
pub fn truncate_to_micros(t: NaiveDateTime) -> NaiveDateTime {
    let nanos = t.nanosecond() / 1_000 * 1_000;
    t.with_nanosecond(nanos).unwrap_or(t)
}

/// RFC 3339 in UTC with `Z`, the fraction trimmed of trailing zeros (and left out when zero),
/// as Go's `time.RFC3339Nano` prints it: `2020-08-01T05:55:57.4803Z`.
pub fn format(t: NaiveDateTime) -> String {
    let utc = DateTime::<Utc>::from_naive_utc_and_offset(t, Utc);
    let mut out = utc.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Like [`format`], with Go's zero time for a time that is not set.
pub fn format_opt(t: Option<NaiveDateTime>) -> String {
    t.map_or_else(|| ZERO_TIME.to_owned(), format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(micros: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2020, 8, 1)
            .unwrap()
            .and_hms_micro_opt(5, 55, 57, micros)
            .unwrap()
    }

    #[test]
    fn trims_trailing_zeros_of_the_fraction() {
        assert_eq!(format(at(480_314)), "2020-08-01T05:55:57.480314Z");
        assert_eq!(format(at(480_300)), "2020-08-01T05:55:57.4803Z");
        assert_eq!(format(at(500_000)), "2020-08-01T05:55:57.5Z");
        assert_eq!(format(at(1)), "2020-08-01T05:55:57.000001Z");
        assert_eq!(format(at(0)), "2020-08-01T05:55:57Z");
    }

    #[test]
    fn unset_time_is_go_zero_time() {
        assert_eq!(format_opt(None), "0001-01-01T00:00:00Z");
        assert_eq!(format_opt(Some(at(10))), "2020-08-01T05:55:57.00001Z");
    }

    #[test]
    fn now_has_no_sub_microsecond_part() {
        assert_eq!(now().nanosecond() % 1_000, 0);
        let t = at(0).with_nanosecond(123_456_789).unwrap();
        assert_eq!(truncate_to_micros(t).nanosecond(), 123_456_000);
    }
}

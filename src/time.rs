//! Timestamps: created truncated to microseconds (what PostgreSQL keeps) and written on the wire
//! the way Cotter's Go server printed them.

use chrono::{Datelike, NaiveDateTime, Timelike, Utc};

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
    // Written digit by digit: an export prints millions of these, and a strftime pattern is
    // parsed again on every call. A leap second prints as :60, as chrono's `%S` does.
    fn digits(out: &mut String, value: u32, width: usize) {
        let mut buf = [b'0'; 10];
        let mut rest = value;
        for slot in buf[..width].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend(buf[..width].iter().map(|&b| char::from(b)));
    }
    let (date, time) = (t.date(), t.time());
    let mut out = String::with_capacity(32);
    match u32::try_from(date.year()) {
        Ok(year) if year <= 9999 => digits(&mut out, year, 4),
        _ => out.push_str(&format!("{:04}", date.year())),
    }
    out.push('-');
    digits(&mut out, date.month(), 2);
    out.push('-');
    digits(&mut out, date.day(), 2);
    out.push('T');
    digits(&mut out, time.hour(), 2);
    out.push(':');
    digits(&mut out, time.minute(), 2);
    out.push(':');
    digits(
        &mut out,
        time.second() + u32::from(time.nanosecond() >= 1_000_000_000),
        2,
    );
    let mut nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let mut width = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            width -= 1;
        }
        out.push('.');
        digits(&mut out, nanos, width);
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
    fn formats_as_chronos_rfc3339_pattern() {
        use chrono::DateTime;
        for t in [
            at(0),
            at(999_999),
            NaiveDate::from_ymd_opt(1, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
            NaiveDate::from_ymd_opt(9999, 12, 31)
                .unwrap()
                .and_hms_micro_opt(23, 59, 59, 5)
                .unwrap(),
            NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap(),
        ] {
            let utc = DateTime::<Utc>::from_naive_utc_and_offset(t, Utc);
            let expected = utc.format("%Y-%m-%dT%H:%M:%S").to_string();
            assert!(format(t).starts_with(&expected), "{} {expected}", format(t));
        }
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

//! HL7 v2 TS/DTM timestamps → RFC 3339.
//!
//! HL7 v2 writes timestamps as
//! `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`. [`parse_hl7_timestamp`]
//! turns such a value into a [`DateTime<FixedOffset>`]: missing parts default
//! to the start of the period, and a value without an offset is read as local
//! time in a given time zone. [`to_rfc3339`] formats the result.
//!
//! Real feeds also send the fraction without its dot (`YYYYMMDDHHMMSSfff`,
//! e.g. `20110613122406637`): 1 to 4 digits after the 14 of the seconds are
//! read as the fraction.
//!
//! Errors never carry any fragment of the input (it is patient data): each
//! [`TimestampError`] names only which rule the value broke.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone};
use chrono_tz::Tz;

/// Why a timestamp could not be converted. Carries no fragment of the input;
/// its text is the reason a dead letter gives (README, "Timestamps").
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TimestampError {
    /// Nothing but spaces (or only a `^` precision component).
    #[error("it is empty")]
    Empty,
    /// A character other than an ASCII digit in the date/time part.
    #[error("it holds a character other than a digit")]
    NotDigits,
    /// The date/time part has a digit count that is no precision: 4, 6, 8,
    /// 10, 12, 14, or 15 to 18 (seconds and an undotted fraction) are allowed.
    #[error("its digit count is no HL7 precision")]
    Precision,
    /// A dotted fraction before the seconds, empty, longer than 9 digits, or
    /// after an undotted one.
    #[error("its fraction of a second is malformed")]
    Fraction,
    /// An offset that is not `+HHMM` or `-HHMM` with hours ≤ 23, minutes ≤ 59.
    #[error("its offset is not +HHMM or -HHMM")]
    Offset,
    /// A year before 1000.
    #[error("its year is before 1000")]
    Year,
    /// No such calendar date: month 0 or 13+, day 0 or past the month's end.
    #[error("it names no calendar date")]
    Date,
    /// Hour 24+, minute 60+ or second 60+ (no leap seconds).
    #[error("its time of day is out of range")]
    Time,
    /// The value has no offset and its local time does not exist in the time
    /// zone (it falls in a daylight-saving gap).
    #[error("its local time does not exist in the tenant's time zone")]
    LocalTime,
}

/// Parse an HL7 v2 TS/DTM value.
///
/// - Surrounding spaces are trimmed; anything from the first `^` on (the v2.3
///   degree-of-precision component, e.g. `^D`) is ignored.
/// - The date/time part must have 4, 6, 8, 10, 12 or 14 digits; a fraction of
///   1 to 9 digits is allowed only after the seconds, after a dot, or 1 to 4
///   digits without a dot (15 to 18 digits in all).
/// - An offset, if present, is `+HHMM` or `-HHMM` (hours ≤ 23, minutes ≤ 59).
/// - Without an offset the value is local time in `tz`: at a DST fold the
///   earlier instant is taken; in a DST gap [`TimestampError::LocalTime`] is
///   returned.
///
/// # Errors
///
/// One [`TimestampError`] per broken rule; years before 1000, month 13, day 32
/// or a day past the month's end, hour 24+, minute 60+ and second 60+ are
/// refused.
pub fn parse_hl7_timestamp(value: &str, tz: Tz) -> Result<DateTime<FixedOffset>, TimestampError> {
    let value = value.split('^').next().unwrap_or(value).trim();
    if value.is_empty() {
        return Err(TimestampError::Empty);
    }
    let bytes = value.as_bytes();

    // Split off the offset: the first '+' or '-'.
    let (main, offset) = match bytes.iter().position(|&b| b == b'+' || b == b'-') {
        Some(i) => (&bytes[..i], Some(parse_offset(&bytes[i..])?)),
        None => (bytes, None),
    };

    // Split off a dotted fraction.
    let (digits, dotted) = match main.iter().position(|&b| b == b'.') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(TimestampError::NotDigits);
    }
    // An undotted fraction: 1 to 4 digits after the seconds.
    let (digits, fraction) = match (digits.len(), dotted) {
        (4 | 6 | 8 | 10 | 12 | 14, f) => (digits, f),
        (15..=18, None) => (&digits[..14], Some(&digits[14..])),
        (15..=18, Some(_)) => return Err(TimestampError::Fraction),
        _ => return Err(TimestampError::Precision),
    };
    let nanos = match fraction {
        None => 0,
        Some(f) => {
            if digits.len() != 14
                || f.is_empty()
                || f.len() > 9
                || !f.iter().all(u8::is_ascii_digit)
            {
                return Err(TimestampError::Fraction);
            }
            // Right-pad to nanoseconds.
            (f.len()..9).fold(number(f), |n, _| n * 10)
        }
    };

    let part = |start: usize, default: u32| -> u32 {
        if digits.len() >= start + 2 {
            number(&digits[start..start + 2])
        } else {
            default
        }
    };
    let year = number(&digits[..4]);
    if year < 1000 {
        return Err(TimestampError::Year);
    }
    let (month, day) = (part(4, 1), part(6, 1));
    let (hour, minute, second) = (part(8, 0), part(10, 0), part(12, 0));

    let date = NaiveDate::from_ymd_opt(
        i32::try_from(year).map_err(|_| TimestampError::Year)?,
        month,
        day,
    )
    .ok_or(TimestampError::Date)?;
    // `and_hms_nano_opt` would accept second 60 only with nanos ≥ 1e9, which
    // cannot happen here; check explicitly anyway.
    if second > 59 {
        return Err(TimestampError::Time);
    }
    let naive: NaiveDateTime = date
        .and_hms_nano_opt(hour, minute, second, nanos)
        .ok_or(TimestampError::Time)?;

    match offset {
        Some(off) => off
            .from_local_datetime(&naive)
            .single()
            .ok_or(TimestampError::Offset),
        None => tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|dt| dt.fixed_offset())
            .ok_or(TimestampError::LocalTime),
    }
}

/// Convert an HL7 v2 TS/DTM value to RFC 3339 text.
///
/// Whole seconds unless the value has a non-zero fraction (then 3, 6 or 9
/// fractional digits, chrono's `SecondsFormat::AutoSi`). The offset is always
/// written as `+HH:MM`/`-HH:MM`, never `Z`. See [`parse_hl7_timestamp`] for the
/// accepted input.
///
/// # Errors
///
/// The same as [`parse_hl7_timestamp`].
pub fn to_rfc3339(value: &str, tz: Tz) -> Result<String, TimestampError> {
    parse_hl7_timestamp(value, tz).map(|dt| dt.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

/// `+HHMM` / `-HHMM` → offset. `s` starts with the sign.
fn parse_offset(s: &[u8]) -> Result<FixedOffset, TimestampError> {
    let (sign, rest) = s.split_first().ok_or(TimestampError::Offset)?;
    if rest.len() != 4 || !rest.iter().all(u8::is_ascii_digit) {
        return Err(TimestampError::Offset);
    }
    let (hh, mm) = (number(&rest[..2]), number(&rest[2..]));
    if hh > 23 || mm > 59 {
        return Err(TimestampError::Offset);
    }
    let secs = i32::try_from(hh * 3600 + mm * 60).map_err(|_| TimestampError::Offset)?;
    let secs = if *sign == b'-' { -secs } else { secs };
    FixedOffset::east_opt(secs).ok_or(TimestampError::Offset)
}

/// Decimal value of ASCII digits (caller checked; at most 9 digits).
fn number(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;
    use chrono_tz::UTC;

    fn r(v: &str) -> Result<String, TimestampError> {
        to_rfc3339(v, New_York)
    }

    #[test]
    fn each_precision_defaults_to_start() {
        assert_eq!(r("2024").unwrap(), "2024-01-01T00:00:00-05:00");
        assert_eq!(r("202407").unwrap(), "2024-07-01T00:00:00-04:00");
        assert_eq!(r("20240715").unwrap(), "2024-07-15T00:00:00-04:00");
        assert_eq!(r("2024071513").unwrap(), "2024-07-15T13:00:00-04:00");
        assert_eq!(r("202407151342").unwrap(), "2024-07-15T13:42:00-04:00");
        assert_eq!(r("20240715134259").unwrap(), "2024-07-15T13:42:59-04:00");
    }

    #[test]
    fn fractions() {
        assert_eq!(
            r("20240715134259.1").unwrap(),
            "2024-07-15T13:42:59.100-04:00"
        );
        assert_eq!(
            r("20240715134259.12").unwrap(),
            "2024-07-15T13:42:59.120-04:00"
        );
        assert_eq!(
            r("20240715134259.123").unwrap(),
            "2024-07-15T13:42:59.123-04:00"
        );
        assert_eq!(
            r("20240715134259.1234").unwrap(),
            "2024-07-15T13:42:59.123400-04:00"
        );
        assert_eq!(
            r("20240715134259.123456").unwrap(),
            "2024-07-15T13:42:59.123456-04:00"
        );
        assert_eq!(r("20240715134259.0").unwrap(), "2024-07-15T13:42:59-04:00");
        let dt = parse_hl7_timestamp("20240715134259.5", UTC).unwrap();
        assert_eq!(dt.timestamp_subsec_millis(), 500);
    }

    #[test]
    fn explicit_offsets() {
        assert_eq!(
            r("20240115134259+0100").unwrap(),
            "2024-01-15T13:42:59+01:00"
        );
        assert_eq!(
            r("20240115134259-0330").unwrap(),
            "2024-01-15T13:42:59-03:30"
        );
        assert_eq!(
            r("20240115134259+0000").unwrap(),
            "2024-01-15T13:42:59+00:00"
        );
        assert_eq!(
            r("20240115134259-0000").unwrap(),
            "2024-01-15T13:42:59+00:00"
        );
        assert_eq!(
            r("20240115134259.25+0545").unwrap(),
            "2024-01-15T13:42:59.250+05:45"
        );
        assert_eq!(r("20240115+0200").unwrap(), "2024-01-15T00:00:00+02:00");
        assert_eq!(r("2024+1400").unwrap(), "2024-01-01T00:00:00+14:00");
        // An explicit offset is used even inside the zone's DST gap.
        assert_eq!(
            r("20240310023000-0500").unwrap(),
            "2024-03-10T02:30:00-05:00"
        );
    }

    #[test]
    fn utc_zone_uses_plus_zero_not_z() {
        assert_eq!(
            to_rfc3339("20240115134259", UTC).unwrap(),
            "2024-01-15T13:42:59+00:00"
        );
    }

    #[test]
    fn other_zone() {
        assert_eq!(
            to_rfc3339("20240715134259", Berlin).unwrap(),
            "2024-07-15T13:42:59+02:00"
        );
        assert_eq!(
            to_rfc3339("20240115134259", Berlin).unwrap(),
            "2024-01-15T13:42:59+01:00"
        );
    }

    #[test]
    fn dst_gap_is_local_time_error() {
        assert_eq!(r("20240310023000"), Err(TimestampError::LocalTime));
        assert_eq!(r("2024031002"), Err(TimestampError::LocalTime));
        assert_eq!(r("20240310015959").unwrap(), "2024-03-10T01:59:59-05:00");
        assert_eq!(r("20240310030000").unwrap(), "2024-03-10T03:00:00-04:00");
    }

    #[test]
    fn dst_fold_takes_earlier() {
        // 01:30 happens twice on 2024-11-03 in New York: first at -04:00.
        assert_eq!(r("20241103013000").unwrap(), "2024-11-03T01:30:00-04:00");
        assert_eq!(r("20241103003000").unwrap(), "2024-11-03T00:30:00-04:00");
        assert_eq!(r("20241103020000").unwrap(), "2024-11-03T02:00:00-05:00");
    }

    #[test]
    fn trimming_and_precision_suffix() {
        assert_eq!(
            r("  20240715134259  ").unwrap(),
            "2024-07-15T13:42:59-04:00"
        );
        assert_eq!(r("20240715134259^S").unwrap(), "2024-07-15T13:42:59-04:00");
        assert_eq!(r("20240715^D").unwrap(), "2024-07-15T00:00:00-04:00");
        assert_eq!(r(" 200407151342 ^M").unwrap(), "2004-07-15T13:42:00-04:00");
        assert_eq!(r("20240715+0000^D").unwrap(), "2024-07-15T00:00:00+00:00");
    }

    #[test]
    fn leap_day() {
        assert_eq!(r("20240229").unwrap(), "2024-02-29T00:00:00-05:00");
        assert_eq!(r("20230229"), Err(TimestampError::Date));
        assert_eq!(r("20240431"), Err(TimestampError::Date));
    }

    #[test]
    fn out_of_range_values() {
        use TimestampError::{Date, Time, Year};
        for (v, why) in [
            ("20241301", Date),
            ("202400", Date),
            ("20240100", Date),
            ("20240132", Date),
            ("2024011524", Time),
            ("2024011525", Time),
            ("202401151260", Time),
            ("20240115125960", Time),
            ("20240115125999", Time),
            ("0999", Year),
            ("0000", Year),
            ("09990101", Year),
        ] {
            assert_eq!(r(v), Err(why), "{v}");
        }
        assert_eq!(
            to_rfc3339("1000", UTC).unwrap(),
            "1000-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn bad_offsets() {
        for v in [
            "20240115+01",
            "20240115+01000",
            "20240115+2400",
            "20240115+0160",
            "20240115+",
            "20240115-",
            "20240115+01:00",
            "20240115+0100+0100",
            "2024-07-15",
        ] {
            assert_eq!(r(v), Err(TimestampError::Offset), "{v}");
        }
        // The offset is read first; what precedes it is then checked.
        assert_eq!(r("20240115 +0100"), Err(TimestampError::NotDigits));
        assert_eq!(r("+0100"), Err(TimestampError::Precision));
        assert_eq!(r("-20240715"), Err(TimestampError::Offset));
    }

    #[test]
    fn fraction_without_its_dot() {
        // A public feed's EVN-2: milliseconds glued to the seconds.
        assert_eq!(
            r("20110613122406637").unwrap(),
            "2011-06-13T12:24:06.637-04:00"
        );
        assert_eq!(
            r("201106131224066").unwrap(),
            "2011-06-13T12:24:06.600-04:00"
        );
        assert_eq!(
            r("201106131224066371").unwrap(),
            "2011-06-13T12:24:06.637100-04:00"
        );
        assert_eq!(
            r("20110613122406637+0200").unwrap(),
            "2011-06-13T12:24:06.637+02:00"
        );
        assert_eq!(r("2011061312240663712"), Err(TimestampError::Precision));
        assert_eq!(r("20110613122406637.5"), Err(TimestampError::Fraction));
    }

    #[test]
    fn garbage() {
        use TimestampError::{Empty, Fraction, NotDigits, Precision};
        for (v, why) in [
            ("", Empty),
            ("   ", Empty),
            ("^D", Empty),
            ("abc", NotDigits),
            ("2024/07/15", NotDigits),
            ("20240715T1342", NotDigits),
            ("202", Precision),
            ("20247", Precision),
            ("2024071", Precision),
            ("202407151", Precision),
            ("20240715134", Precision),
            ("2024071513425", Precision),
            ("20240715134259.", Fraction),
            ("20240715134259.1234567890", Fraction),
            ("20240715134259.12a", Fraction),
            ("202407151342.5", Fraction),
            ("20240715.5", Fraction),
            ("2024.5", Fraction),
            ("٢٠٢٤", NotDigits),
            ("２０２４", NotDigits),
            ("20240715134259,5", NotDigits),
            ("2024\u{0}", NotDigits),
        ] {
            assert_eq!(r(v), Err(why), "{v:?}");
        }
    }

    #[test]
    fn errors_do_not_leak_input() {
        let e = r("DOE^JOHN").unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("DOE"));
        assert_eq!(
            TimestampError::Date.to_string(),
            "it names no calendar date"
        );
        assert_eq!(
            TimestampError::LocalTime.to_string(),
            "its local time does not exist in the tenant's time zone"
        );
    }

    #[test]
    fn parse_returns_fixed_offset() {
        let dt = parse_hl7_timestamp("20240715134259", New_York).unwrap();
        assert_eq!(dt.offset().local_minus_utc(), -4 * 3600);
        assert_eq!(dt.timestamp(), 1_721_065_379);
    }
}

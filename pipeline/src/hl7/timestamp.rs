//! HL7 v2 TS/DTM timestamps → RFC 3339.
//!
//! HL7 v2 writes timestamps as
//! `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`. [`parse_hl7_timestamp`]
//! turns such a value into a [`DateTime<FixedOffset>`]: missing parts default
//! to the start of the period, and a value without an offset is read as local
//! time in a given time zone. [`to_rfc3339`] formats the result.
//!
//! Errors never carry any fragment of the input (it is patient data).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone};
use chrono_tz::Tz;

/// Why a timestamp could not be converted. Carries no fragment of the input.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TimestampError {
    /// Not a well-formed HL7 TS/DTM value, or a calendar/clock value out of range.
    #[error("invalid HL7 timestamp")]
    Invalid,
    /// The value has no offset and its local time does not exist in the time
    /// zone (it falls in a daylight-saving gap).
    #[error("nonexistent or ambiguous local time")]
    LocalTime,
}

/// Parse an HL7 v2 TS/DTM value.
///
/// - Surrounding spaces are trimmed; anything from the first `^` on (the v2.3
///   degree-of-precision component, e.g. `^D`) is ignored.
/// - The date/time part must have 4, 6, 8, 10, 12 or 14 digits; a fraction of
///   1 to 9 digits is allowed only after the seconds.
/// - An offset, if present, is `+HHMM` or `-HHMM` (hours ≤ 23, minutes ≤ 59).
/// - Without an offset the value is local time in `tz`: at a DST fold the
///   earlier instant is taken; in a DST gap [`TimestampError::LocalTime`] is
///   returned.
/// # Errors
///
/// [`TimestampError::Invalid`] for a malformed or out-of-range value,
/// [`TimestampError::LocalTime`] for an offset-less local time in a DST gap.
///
/// # Rules
///
/// - Years before 1000, month 13, day 32 or a day past the month's end, hour
///   24+, minute 60+ and second 60+ (no leap seconds) are
///   [`TimestampError::Invalid`], as is an empty value.
pub fn parse_hl7_timestamp(value: &str, tz: Tz) -> Result<DateTime<FixedOffset>, TimestampError> {
    let value = value.split('^').next().unwrap_or(value).trim();
    let bytes = value.as_bytes();

    // Split off the offset: the first '+' or '-'.
    let (main, offset) = match bytes.iter().position(|&b| b == b'+' || b == b'-') {
        Some(i) => (&bytes[..i], Some(parse_offset(&bytes[i..])?)),
        None => (bytes, None),
    };

    // Split off the fraction.
    let (digits, fraction) = match main.iter().position(|&b| b == b'.') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(TimestampError::Invalid);
    }
    if !matches!(digits.len(), 4 | 6 | 8 | 10 | 12 | 14) {
        return Err(TimestampError::Invalid);
    }
    let nanos = match fraction {
        None => 0,
        Some(f) => {
            if digits.len() != 14
                || f.is_empty()
                || f.len() > 9
                || !f.iter().all(u8::is_ascii_digit)
            {
                return Err(TimestampError::Invalid);
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
        return Err(TimestampError::Invalid);
    }
    let (month, day) = (part(4, 1), part(6, 1));
    let (hour, minute, second) = (part(8, 0), part(10, 0), part(12, 0));

    let date = NaiveDate::from_ymd_opt(
        i32::try_from(year).map_err(|_| TimestampError::Invalid)?,
        month,
        day,
    )
    .ok_or(TimestampError::Invalid)?;
    // `and_hms_nano_opt` would accept second 60 only with nanos ≥ 1e9, which
    // cannot happen here; check explicitly anyway.
    if second > 59 {
        return Err(TimestampError::Invalid);
    }
    let naive: NaiveDateTime = date
        .and_hms_nano_opt(hour, minute, second, nanos)
        .ok_or(TimestampError::Invalid)?;

    match offset {
        Some(off) => off
            .from_local_datetime(&naive)
            .single()
            .ok_or(TimestampError::Invalid),
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
    let (sign, rest) = s.split_first().ok_or(TimestampError::Invalid)?;
    if rest.len() != 4 || !rest.iter().all(u8::is_ascii_digit) {
        return Err(TimestampError::Invalid);
    }
    let (hh, mm) = (number(&rest[..2]), number(&rest[2..]));
    if hh > 23 || mm > 59 {
        return Err(TimestampError::Invalid);
    }
    let secs = i32::try_from(hh * 3600 + mm * 60).map_err(|_| TimestampError::Invalid)?;
    let secs = if *sign == b'-' { -secs } else { secs };
    FixedOffset::east_opt(secs).ok_or(TimestampError::Invalid)
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
        assert_eq!(r("20230229"), Err(TimestampError::Invalid));
        assert_eq!(r("20240431"), Err(TimestampError::Invalid));
    }

    #[test]
    fn out_of_range_values() {
        for v in [
            "20241301",
            "202400",
            "20240100",
            "20240132",
            "2024011524",
            "2024011525",
            "202401151260",
            "20240115125960",
            "20240115125999",
            "0999",
            "0000",
            "09990101",
        ] {
            assert_eq!(r(v), Err(TimestampError::Invalid), "{v}");
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
            "20240115 +0100",
            "+0100",
        ] {
            assert_eq!(r(v), Err(TimestampError::Invalid), "{v}");
        }
    }

    #[test]
    fn garbage() {
        for v in [
            "",
            "   ",
            "^D",
            "abc",
            "2024-07-15",
            "2024/07/15",
            "20240715T1342",
            "202",
            "20247",
            "2024071",
            "202407151",
            "20240715134",
            "2024071513425",
            "202407151342590",
            "20240715134259.",
            "20240715134259.1234567890",
            "20240715134259.12a",
            "202407151342.5",
            "20240715.5",
            "2024.5",
            "٢٠٢٤",
            "２０２４",
            "20240715134259,5",
            "-20240715",
            "2024\u{0}",
        ] {
            assert_eq!(r(v), Err(TimestampError::Invalid), "{v:?}");
        }
    }

    #[test]
    fn errors_do_not_leak_input() {
        let e = r("DOE^JOHN").unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("DOE"));
        assert_eq!(TimestampError::Invalid.to_string(), "invalid HL7 timestamp");
        assert_eq!(
            TimestampError::LocalTime.to_string(),
            "nonexistent or ambiguous local time"
        );
    }

    #[test]
    fn parse_returns_fixed_offset() {
        let dt = parse_hl7_timestamp("20240715134259", New_York).unwrap();
        assert_eq!(dt.offset().local_minus_utc(), -4 * 3600);
        assert_eq!(dt.timestamp(), 1_721_065_379);
    }
}

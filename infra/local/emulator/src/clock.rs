//! Wall-clock time as epoch milliseconds, and the RFC 3339 strings of the wire (docs/bedrock.md#the-control-plane-api: `Timestamp` is
//! `iso8601`, so the SDK needs JSON strings, never numbers).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2024-08-28T22:47:53.123Z`: UTC, always three fractional digits, as the service sends.
pub fn format(ms: Millis) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// `Aug 28, 2024, 10:47:53 PM` (UTC): the form Bedrock's job events give `creationTime` in, unlike the API.
pub fn format_console(ms: Millis) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    let in_day = ms.rem_euclid(86_400_000);
    let (h, m, s) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60);
    let (h12, half) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    let name = usize::try_from(month - 1)
        .ok()
        .and_then(|i| MONTHS.get(i))
        .copied()
        .unwrap_or("?");
    format!("{name} {day}, {year}, {h12}:{m:02}:{s:02} {half}")
}

/// Parses an ISO 8601 / RFC 3339 query-string timestamp (the SDK sends `Z`; offsets are accepted too).
pub fn parse(s: &str) -> Option<Millis> {
    DateTime::from_str(s, Format::DateTimeWithOffset)
        .ok()
        .and_then(|d| d.to_millis().ok())
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(1_724_885_273_123), "2024-08-28T22:47:53.123Z");
        assert_eq!(format(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn formats_the_event_creation_time() {
        assert_eq!(format_console(1_724_885_273_123), "Aug 28, 2024, 10:47:53 PM");
        assert_eq!(format_console(0), "Jan 1, 1970, 12:00:00 AM");
        assert_eq!(format_console(951_825_600_000), "Feb 29, 2000, 12:00:00 PM");
        assert_eq!(
            format_console(951_782_400_000 + 3_600_000 + 5_000),
            "Feb 29, 2000, 1:00:05 AM"
        );
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        assert_eq!(parse("2024-08-28T22:47:53.123Z"), Some(1_724_885_273_123));
        assert_eq!(parse("2024-08-28T22:47:53Z"), Some(1_724_885_273_000));
        assert_eq!(parse("2024-08-29T00:47:53+02:00"), Some(1_724_885_273_000));
        assert_eq!(parse("yesterday"), None);
    }
}

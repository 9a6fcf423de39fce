//! Timestamp cells for entity-grain features: parsing a cell into an instant in the
//! pipeline zone, and naming the hour or day bucket an instant falls in.
//!
//! Accepted cell forms (surrounding ASCII whitespace ignored):
//! - RFC 3339 with an offset: `2025-11-19T00:03:04+09:00`, `2025-11-19T00:03:04Z`,
//!   optional fractional seconds, `T`, `t` or a space between date and time, `z` for
//!   `Z`; the offset is `Z` or `+HH:MM` / `-HH:MM` (no `+0900`);
//! - a naive date-time `2025-11-19T00:03:04` or `2025-11-19 00:03:04`, optional
//!   fractional seconds: wall-clock time in the pipeline zone;
//! - a bare date `2025-11-19`: midnight in the pipeline zone.
//!
//! Fields are fixed width (`2025-1-9` is rejected). Wall-clock times that a DST change
//! makes ambiguous (the repeated hour) resolve to the earlier instant; wall-clock times
//! that do not exist (the skipped hour) are not timestamps (`None`). That includes a bare
//! date whose midnight is skipped (zones that change at 00:00, e.g. America/Havana).

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Timelike,
};
use chrono_tz::Tz;

/// The width of a time bucket: rows are grouped by the start of the hour or day their
/// timestamp falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketWidth {
    Hour,
    Day,
}

impl BucketWidth {
    pub fn as_str(self) -> &'static str {
        match self {
            BucketWidth::Hour => "hour",
            BucketWidth::Day => "day",
        }
    }
}

/// Whether `cell` is a timestamp written in the strftime `format` (a date-time, with or
/// without `%z`, or a date).
pub fn matches_format(cell: &[u8], format: &str) -> bool {
    let Ok(s) = std::str::from_utf8(cell) else {
        return false;
    };
    NaiveDateTime::parse_from_str(s, format).is_ok()
        || DateTime::parse_from_str(s, format).is_ok()
        || NaiveDate::parse_from_str(s, format).is_ok()
}

/// Checks a strftime format when the pipeline file is loaded, so a typo is a
/// configuration error instead of every row failing.
pub fn check_format(format: &str) -> Result<(), crate::values::ValueError> {
    use chrono::format::{Item, StrftimeItems};
    let bad =
        format.is_empty() || StrftimeItems::new(format).any(|item| matches!(item, Item::Error));
    if bad {
        return Err(crate::values::ValueError::TimestampFormat(
            format.to_string(),
        ));
    }
    Ok(())
}

/// Parses a timestamp cell: RFC 3339 / ISO 8601 with offset (`2025-11-19T00:03:04+09:00`,
/// `...Z`), a naive date-time (`2025-11-19T00:03:04`, `2025-11-19 00:03:04`, optional
/// fractional seconds) taken as wall-clock time in `tz`, or a bare date (`2025-11-19`) =
/// midnight in `tz`. Surrounding ASCII whitespace is ignored; `None` for anything else.
///
/// DST: an ambiguous wall-clock time (the repeated hour) is the earlier of its two
/// instants; a nonexistent one (the skipped hour) is `None`.
///
/// The common fixed-width shapes (`YYYY-MM-DD[T ]HH:MM:SS` with `Z`, `+HH:MM` or no
/// offset) are parsed by hand; everything else goes through chrono's parsers. A unit test
/// checks that both paths agree.
pub fn parse_in(text: &[u8], tz: Tz) -> Option<DateTime<Tz>> {
    let s = text.trim_ascii();
    match parse_fixed(s, tz) {
        Some(decided) => decided,
        None => parse_general(s, tz),
    }
}

/// The hand-written path: `None` when `s` is not one of the fixed-width shapes (the
/// general path decides), `Some(result)` when it is.
#[inline]
fn parse_fixed(s: &[u8], tz: Tz) -> Option<Option<DateTime<Tz>>> {
    if !matches!(s.len(), 19 | 20 | 25)
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let year = two_digits(s, 0)? * 100 + two_digits(s, 2)?;
    let month = two_digits(s, 5)?;
    let day = two_digits(s, 8)?;
    let hour = two_digits(s, 11)?;
    let minute = two_digits(s, 14)?;
    let second = two_digits(s, 17)?;
    if second == 60 {
        // A leap second: chrono's parsers know what to do with it.
        return None;
    }
    let offset = match &s[19..] {
        [] => None,
        [b'Z'] => Some(0),
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (two_digits(s, 20)?, two_digits(s, 23)?);
            if oh > 23 || om > 59 {
                return Some(None);
            }
            let secs = (oh * 3600 + om * 60) as i32;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => return None,
    };
    let naive = NaiveDate::from_ymd_opt(year as i32, month, day)
        .and_then(|d| d.and_hms_opt(hour, minute, second));
    Some(naive.and_then(|naive| match offset {
        Some(secs) => from_offset(naive, secs, tz),
        None => tz.from_local_datetime(&naive).earliest(),
    }))
}

/// Two ASCII digits at `s[i..i + 2]` as a number.
#[inline]
fn two_digits(s: &[u8], i: usize) -> Option<u32> {
    let hi = s[i].wrapping_sub(b'0');
    let lo = s[i + 1].wrapping_sub(b'0');
    (hi < 10 && lo < 10).then_some(u32::from(hi) * 10 + u32::from(lo))
}

/// The instant whose wall-clock time at UTC offset `secs` is `naive`, in `tz`.
fn from_offset(naive: NaiveDateTime, secs: i32, tz: Tz) -> Option<DateTime<Tz>> {
    FixedOffset::east_opt(secs)?
        .from_local_datetime(&naive)
        .single()
        .map(|dt| dt.with_timezone(&tz))
}

/// Everything [`parse_fixed`] leaves: fractional seconds, lowercase `t` / `z`, leap
/// seconds, bare dates, and the rejects. chrono's format parsers are lenient about
/// widths and spaces, so the fixed-width skeleton is checked first.
#[cold]
fn parse_general(s: &[u8], tz: Tz) -> Option<DateTime<Tz>> {
    let digits = |range: std::ops::Range<usize>| s[range].iter().all(u8::is_ascii_digit);
    let date_shape = s.len() >= 10
        && digits(0..4)
        && s[4] == b'-'
        && digits(5..7)
        && s[7] == b'-'
        && digits(8..10);
    if !date_shape {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    if s.len() == 10 {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        return tz
            .from_local_datetime(&date.and_time(NaiveTime::MIN))
            .earliest();
    }
    let time_shape = s.len() >= 19
        && matches!(s[10], b'T' | b't' | b' ')
        && digits(11..13)
        && s[13] == b':'
        && digits(14..16)
        && s[16] == b':'
        && digits(17..19);
    if !time_shape {
        return None;
    }
    // What follows the seconds: a fraction, then an offset or nothing.
    let rest = &s[19..];
    let fraction = if rest.first() == Some(&b'.') {
        1 + rest[1..].iter().take_while(|b| b.is_ascii_digit()).count()
    } else {
        0
    };
    if fraction == 1 {
        return None; // a point without digits
    }
    if rest.len() > fraction {
        // An offset follows.
        return DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|dt| dt.with_timezone(&tz));
    }
    // Naive: one format per separator (chrono matches literals exactly).
    let format = match s[10] {
        b'T' => "%Y-%m-%dT%H:%M:%S%.f",
        b't' => "%Y-%m-%dt%H:%M:%S%.f",
        _ => "%Y-%m-%d %H:%M:%S%.f",
    };
    let naive = NaiveDateTime::parse_from_str(text, format).ok()?;
    tz.from_local_datetime(&naive).earliest()
}

/// Parses a cell written in the strftime `format`: with an offset (`%z`) it is that
/// instant; a date-time without one is wall-clock time in `tz`; a bare date is midnight
/// in `tz` (DST as in [`parse_in`]). `None` when it does not match.
pub fn parse_with_format(cell: &[u8], format: &str, tz: Tz) -> Option<DateTime<Tz>> {
    let s = std::str::from_utf8(cell.trim_ascii()).ok()?;
    if let Ok(t) = DateTime::parse_from_str(s, format) {
        return Some(t.with_timezone(&tz));
    }
    let naive = match NaiveDateTime::parse_from_str(s, format) {
        Ok(naive) => naive,
        Err(_) => NaiveDate::parse_from_str(s, format)
            .ok()?
            .and_time(NaiveTime::MIN),
    };
    tz.from_local_datetime(&naive).earliest()
}

/// The text of a timestamp output cell: RFC 3339 in the pipeline zone, truncated to
/// microseconds (what a Parquet `TIMESTAMP(MICROS)` holds, so `feature.csv` and
/// `feature.parquet` say the same instant), fractional digits only when there are some:
/// `2025-11-19T00:03:04+09:00`, `2025-11-19T00:03:04.250+09:00`.
pub fn canonical(t: &DateTime<Tz>) -> String {
    let micros = t.nanosecond() / 1_000 * 1_000;
    t.with_nanosecond(micros)
        .unwrap_or(*t)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Microseconds since the Unix epoch of a timestamp cell as [`canonical`] or
/// [`bucket_start`] write it (any form [`parse_in`] reads; a form without an offset is
/// read as UTC): the value of a Parquet `TIMESTAMP(MICROS, UTC)`.
pub fn epoch_micros(text: &[u8]) -> Option<i64> {
    parse_in(text, chrono_tz::UTC).map(|t| t.timestamp_micros())
}

/// The start of the hour or day containing `t`, in `tz` wall-clock, formatted RFC 3339
/// with the offset in force at that instant, e.g. `2025-11-19T00:00:00+09:00`.
///
/// See [`bucket_start_instant`] for DST.
pub fn bucket_start(t: &DateTime<Tz>, every: BucketWidth) -> String {
    bucket_start_instant(t, every).to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The instant [`bucket_start`] names. The bucket is `t`'s wall-clock time truncated to
/// the hour or day, resolved to an instant in `t`'s zone:
/// - a day starts at its first midnight (when the clock falls back over midnight, the
///   earlier one), so a day is one bucket however long it is;
/// - an hour repeated by a fall-back change is two buckets, one per offset (each a real
///   hour), e.g. `01:00:00-04:00` and `01:00:00-05:00`;
/// - when the truncated time was skipped by a spring-forward change (an hour in a zone
///   with half-hour shifts, a day in a zone that changes at midnight), the bucket starts
///   at the first instant after the gap.
pub fn bucket_start_instant(t: &DateTime<Tz>, every: BucketWidth) -> DateTime<Tz> {
    let tz = t.timezone();
    let local = t.naive_local();
    let start = match every {
        BucketWidth::Hour => local.date().and_time(NaiveTime::MIN) + hours(local.hour()),
        BucketWidth::Day => local.date().and_time(NaiveTime::MIN),
    };
    match tz.from_local_datetime(&start) {
        chrono::LocalResult::Single(s) => s,
        chrono::LocalResult::Ambiguous(earlier, later) => match every {
            BucketWidth::Day => earlier,
            BucketWidth::Hour if later <= *t => later,
            BucketWidth::Hour => earlier,
        },
        chrono::LocalResult::None => after_gap(start, t),
    }
}

fn hours(h: u32) -> chrono::Duration {
    chrono::Duration::hours(i64::from(h))
}

/// The first instant whose wall-clock time is at least `start` (a time inside a DST
/// gap), searching back from `t` (whose wall-clock time is at least `start`): the end of
/// the gap. Binary search over whole seconds (zone transitions are whole seconds).
fn after_gap(start: NaiveDateTime, t: &DateTime<Tz>) -> DateTime<Tz> {
    let tz = t.timezone();
    let at = |secs: i64| DateTime::from_timestamp(secs, 0).map(|u| u.with_timezone(&tz));
    let reached = |secs: i64| at(secs).is_some_and(|u| u.naive_local() >= start);
    let mut hi = t.timestamp(); // reached
    let mut lo = hi - 2 * 86_400; // not reached: more than a day plus any gap before `t`
    if reached(lo) || !reached(hi) {
        return *t; // not a gap this search understands; cannot happen with real zones
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reached(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    at(hi).unwrap_or(*t)
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::Utc;
    use chrono_tz::{America, Asia, Australia, UTC};

    use crate::test_rng::rng;

    #[test]
    fn strftime_formats_are_checked_and_applied() {
        assert!(check_format("%Y-%m-%d %H:%M:%S").is_ok());
        assert!(check_format("%Y-%Q").is_err());
        assert!(check_format("").is_err());
        assert!(matches_format(b"2025-11-19 10:00:00", "%Y-%m-%d %H:%M:%S"));
        assert!(matches_format(b"2025-11-19", "%Y-%m-%d"));
        assert!(matches_format(
            b"2025-11-19T10:00:00+0900",
            "%Y-%m-%dT%H:%M:%S%z"
        ));
        assert!(!matches_format(b"2025-11-19T10:00:00", "%Y-%m-%d"));
    }

    fn p(text: &str, tz: Tz) -> Option<String> {
        parse_in(text.as_bytes(), tz).map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
    }

    #[test]
    fn offset_forms_are_instants_shown_in_the_zone() {
        let seoul = Asia::Seoul;
        for (text, want) in [
            ("2025-11-19T00:03:04+09:00", "2025-11-19T00:03:04+09:00"),
            ("2025-11-19T00:03:04Z", "2025-11-19T09:03:04+09:00"),
            ("2025-11-19 00:03:04Z", "2025-11-19T09:03:04+09:00"),
            ("2025-11-19t00:03:04z", "2025-11-19T09:03:04+09:00"),
            ("2025-11-18T10:03:04-05:00", "2025-11-19T00:03:04+09:00"),
            (
                "2025-11-19T00:03:04.250+09:00",
                "2025-11-19T00:03:04.250+09:00",
            ),
            (
                "2025-11-19T00:03:04.123456789Z",
                "2025-11-19T09:03:04.123456789+09:00",
            ),
            ("2025-11-19T00:03:04+05:30", "2025-11-19T03:33:04+09:00"),
            ("  2025-11-19T00:03:04+09:00\t", "2025-11-19T00:03:04+09:00"),
            ("2016-12-31T23:59:60Z", "2017-01-01T08:59:60+09:00"),
        ] {
            assert_eq!(p(text, seoul).as_deref(), Some(want), "{text:?}");
        }
    }

    #[test]
    fn naive_forms_are_wall_clock_in_the_zone() {
        for (text, tz, want) in [
            (
                "2025-11-19T00:03:04",
                Asia::Seoul,
                "2025-11-19T00:03:04+09:00",
            ),
            (
                "2025-11-19 00:03:04",
                Asia::Seoul,
                "2025-11-19T00:03:04+09:00",
            ),
            (
                "2025-11-19 00:03:04.5",
                Asia::Seoul,
                "2025-11-19T00:03:04.500+09:00",
            ),
            (
                "2025-11-19T00:03:04.000001",
                UTC,
                "2025-11-19T00:03:04.000001+00:00",
            ),
            ("2025-11-19", Asia::Seoul, "2025-11-19T00:00:00+09:00"),
            ("2025-11-19", UTC, "2025-11-19T00:00:00+00:00"),
            (
                " 2025-07-01 12:00:00 ",
                America::New_York,
                "2025-07-01T12:00:00-04:00",
            ),
        ] {
            assert_eq!(p(text, tz).as_deref(), Some(want), "{text:?} in {tz}");
        }
    }

    #[test]
    fn dst_ambiguous_is_earlier_and_nonexistent_is_none() {
        let ny = America::New_York;
        // 2025-11-02 01:30 happens twice in New York (EDT, then EST).
        assert_eq!(
            p("2025-11-02T01:30:00", ny).as_deref(),
            Some("2025-11-02T01:30:00-04:00")
        );
        // An explicit offset picks either one.
        assert_eq!(
            p("2025-11-02T01:30:00-05:00", ny).as_deref(),
            Some("2025-11-02T01:30:00-05:00")
        );
        // 2025-03-09 02:30 does not exist in New York.
        assert_eq!(p("2025-03-09T02:30:00", ny), None);
        assert_eq!(p("2025-03-09 02:30:00.5", ny), None);
        // With an offset it is a plain instant.
        assert_eq!(
            p("2025-03-09T02:30:00-05:00", ny).as_deref(),
            Some("2025-03-09T03:30:00-04:00")
        );
        // Havana changes at midnight: 2025-03-09 00:00 does not exist there.
        assert_eq!(p("2025-03-09", America::Havana), None);
        assert!(p("2025-03-10", America::Havana).is_some());
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for junk in [
            "",
            "  ",
            "NA",
            "2025-11-19T",
            "2025-11-19T00:03",
            "2025-11-19T00:03:4",
            "2025-1-19",
            "2025-11-9",
            "2025-11-19 0:03:04",
            "+2025-11-19",
            "2025/11/19",
            "20251119",
            "2025-11-19T00:03:04+0900",
            "2025-11-19T00:03:04+09",
            "2025-11-19T00:03:04 +09:00",
            "2025-11-19T00:03:04+24:00",
            "2025-11-19T00:03:04+09:60",
            "2025-11-19T00:03:04.",
            "2025-11-19T00:03:04.5x",
            "2025-11-19T00:03:04ZZ",
            "2025-11-19T24:00:00",
            "2025-11-19T23:60:00",
            "2025-11-19T23:00:61",
            "2025-02-29",
            "2025-02-29T00:00:00Z",
            "2025-13-01T00:00:00",
            "2025-00-10",
            "2025-11-19X00:03:04",
            "2025-11-19T00:03:04Zjunk",
            "2025-11-19junk",
            "1763478184",
            "2025-11-19T00:03:04+09:00 x",
        ] {
            assert_eq!(p(junk, Asia::Seoul), None, "{junk:?} must not parse");
        }
    }

    /// The hand-written path decides exactly as chrono does on the shapes it takes.
    #[test]
    fn fixed_path_agrees_with_chrono() {
        let mut next = rng(21);
        let zones = [Asia::Seoul, UTC, America::New_York, Australia::Lord_Howe];
        let mut decided = 0;
        for i in 0..200_000 {
            let tz = zones[i % zones.len()];
            let pick = |n: u64, next: &mut dyn FnMut() -> u64| (next() % n) as u32;
            // Mostly valid fields, sometimes out of range, sometimes a stray byte.
            let year = [1970, 2000, 2024, 2025, 0, 9999][pick(6, &mut next) as usize];
            let fields = [
                pick(14, &mut next),
                pick(33, &mut next),
                pick(26, &mut next),
                pick(62, &mut next),
                pick(62, &mut next),
            ];
            let sep = if next().is_multiple_of(2) { 'T' } else { ' ' };
            let mut s = format!(
                "{year:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
                fields[0], fields[1], fields[2], fields[3], fields[4]
            );
            match next() % 4 {
                0 => {}
                1 => s.push('Z'),
                _ => {
                    let sign = if next().is_multiple_of(2) { '+' } else { '-' };
                    s.push_str(&format!(
                        "{sign}{:02}:{:02}",
                        pick(26, &mut next),
                        pick(62, &mut next)
                    ));
                }
            }
            if next().is_multiple_of(16) {
                let at = (next() % s.len() as u64) as usize;
                let mut bytes = s.into_bytes();
                bytes[at] = b"x0:-+ 9"[(next() % 7) as usize];
                s = String::from_utf8(bytes).unwrap();
            }
            let fast = parse_fixed(s.as_bytes(), tz);
            let general = parse_general(s.as_bytes(), tz);
            if let Some(fast) = fast {
                decided += 1;
                assert_eq!(fast, general, "{s:?} in {tz}");
            }
        }
        assert!(decided > 150_000, "the fixed path decided only {decided}");
    }

    fn bucket(text: &str, tz: Tz, every: BucketWidth) -> String {
        let t = parse_in(text.as_bytes(), tz).unwrap();
        bucket_start(&t, every)
    }

    #[test]
    fn buckets_in_seoul_and_utc() {
        use BucketWidth::{Day, Hour};
        for (text, tz, every, want) in [
            (
                "2025-11-19T00:03:04+09:00",
                Asia::Seoul,
                Hour,
                "2025-11-19T00:00:00+09:00",
            ),
            (
                "2025-11-19T00:03:04+09:00",
                Asia::Seoul,
                Day,
                "2025-11-19T00:00:00+09:00",
            ),
            (
                "2025-11-18T15:03:04Z",
                Asia::Seoul,
                Day,
                "2025-11-19T00:00:00+09:00",
            ),
            (
                "2025-11-18T14:59:59.999Z",
                Asia::Seoul,
                Day,
                "2025-11-18T00:00:00+09:00",
            ),
            (
                "2025-11-19 23:59:59",
                Asia::Seoul,
                Hour,
                "2025-11-19T23:00:00+09:00",
            ),
            (
                "2025-11-19T00:03:04+09:00",
                UTC,
                Hour,
                "2025-11-18T15:00:00+00:00",
            ),
            (
                "2025-11-19T00:03:04+09:00",
                UTC,
                Day,
                "2025-11-18T00:00:00+00:00",
            ),
            ("2025-11-19", UTC, Day, "2025-11-19T00:00:00+00:00"),
            (
                "2025-11-19T10:00:00Z",
                UTC,
                Hour,
                "2025-11-19T10:00:00+00:00",
            ),
        ] {
            assert_eq!(bucket(text, tz, every), want, "{text:?} {tz} {every:?}");
        }
    }

    #[test]
    fn buckets_across_dst_changes() {
        use BucketWidth::{Day, Hour};
        let ny = America::New_York;
        for (text, every, want) in [
            // Spring forward 2025-03-09 02:00 EST -> 03:00 EDT: the day starts in EST.
            ("2025-03-09T12:00:00", Day, "2025-03-09T00:00:00-05:00"),
            ("2025-03-09T03:30:00", Hour, "2025-03-09T03:00:00-04:00"),
            ("2025-03-09T01:59:59", Hour, "2025-03-09T01:00:00-05:00"),
            // Fall back 2025-11-02 02:00 EDT -> 01:00 EST: two 01:00 hours, one day.
            (
                "2025-11-02T01:30:00-04:00",
                Hour,
                "2025-11-02T01:00:00-04:00",
            ),
            (
                "2025-11-02T01:30:00-05:00",
                Hour,
                "2025-11-02T01:00:00-05:00",
            ),
            (
                "2025-11-02T01:30:00-05:00",
                Day,
                "2025-11-02T00:00:00-04:00",
            ),
            ("2025-11-02T23:00:00", Day, "2025-11-02T00:00:00-04:00"),
        ] {
            assert_eq!(bucket(text, ny, every), want, "{text:?} {every:?}");
        }
        // Havana skips 2025-03-09 00:00-01:00: that day starts at 01:00 CDT.
        assert_eq!(
            bucket("2025-03-09T12:00:00", America::Havana, Day),
            "2025-03-09T01:00:00-04:00"
        );
        // Lord Howe springs forward half an hour (02:00 +10:30 -> 02:30 +11:00 on
        // 2025-10-05): that hour starts at 02:30.
        assert_eq!(
            bucket("2025-10-05T02:45:00", Australia::Lord_Howe, Hour),
            "2025-10-05T02:30:00+11:00"
        );
    }

    /// Every instant lies in its bucket, and the bucket of the bucket start is itself.
    #[test]
    fn bucket_start_is_at_or_before_and_idempotent() {
        let mut next = rng(3);
        let zones = [
            Asia::Seoul,
            UTC,
            America::New_York,
            America::Havana,
            Australia::Lord_Howe,
        ];
        for i in 0..50_000 {
            let tz = zones[i % zones.len()];
            // 2024-01-01 .. 2026-01-01, random seconds.
            let secs = 1_704_067_200 + (next() % (2 * 365 * 86_400)) as i64;
            let t = Utc.timestamp_opt(secs, 0).unwrap().with_timezone(&tz);
            for every in [BucketWidth::Hour, BucketWidth::Day] {
                let start = bucket_start_instant(&t, every);
                assert!(start <= t, "{t} {every:?} -> {start}");
                assert!(t - start < chrono::Duration::hours(26), "{t} -> {start}");
                assert_eq!(bucket_start_instant(&start, every), start, "{t} {every:?}");
                assert_eq!(start.naive_local().date(), t.naive_local().date());
            }
        }
    }
}

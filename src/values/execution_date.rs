//! Execution dates, version ids and path templates (docs/contract.md, "Time and versions").
//!
//! Everything date-shaped that a user sees (version directory, `{ds}` in a path,
//! `created_at`) is derived here from one [`ExecutionDate`] in the pipeline's zone.

use chrono::{
    DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Timelike,
    Utc,
};
use chrono_tz::Tz;

use super::ValueError;

/// The pipeline time zone when none is configured (the original pipeline ran on Korea time).
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Seoul;

/// Parses an IANA zone name such as `Asia/Seoul` or `UTC`.
pub fn parse_timezone(name: &str) -> Result<Tz, ValueError> {
    name.parse::<Tz>()
        .map_err(|_| ValueError::TimeZone(super::shorten(name)))
}

/// The logical date a run is for, held in the pipeline zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionDate(DateTime<Tz>);

impl ExecutionDate {
    /// Parses `--execution-date`:
    /// RFC 3339 with an offset is converted to `tz`; a naive date-time is UTC (as the original pipeline
    /// treated Airflow's naive dates); a bare `YYYY-MM-DD` is midnight in `tz`.
    pub fn parse(input: &str, tz: Tz) -> Result<Self, ValueError> {
        let parsed = Self::parse_any(input.trim(), tz)
            .ok_or_else(|| ValueError::ExecutionDate(super::shorten(input)))?;
        // A leap second (`23:59:60`) has no version id of its own: chrono would print it
        // as second 60 of the minute.
        if parsed.0.nanosecond() >= 1_000_000_000 {
            return Err(ValueError::LeapSecond(super::shorten(input)));
        }
        Ok(parsed)
    }

    fn parse_any(s: &str, tz: Tz) -> Option<Self> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Some(Self(dt.with_timezone(&tz)));
        }
        for fmt in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
                return Some(Self(Utc.from_utc_datetime(&naive).with_timezone(&tz)));
            }
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(|date| Self::local(date.and_time(NaiveTime::MIN), tz))
    }

    /// A wall-clock time in `tz` (a bare date's midnight, a backfill date at `--at`).
    /// In a DST gap the clock time does not exist: the first instant after the gap is taken.
    pub fn local(local: NaiveDateTime, tz: Tz) -> Self {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(dt) => Self(dt),
            // A repeated hour (DST end): the earlier of the two.
            LocalResult::Ambiguous(earlier, _) => Self(earlier),
            // Gaps are at most a few hours; walk forward to the first valid minute.
            LocalResult::None => (1..=24 * 60)
                .find_map(|m| {
                    tz.from_local_datetime(&(local + chrono::Duration::minutes(m)))
                        .earliest()
                })
                .map(Self)
                .unwrap_or_else(|| Self(Utc.from_utc_datetime(&local).with_timezone(&tz))),
        }
    }

    /// The current instant in `tz`: the execution date when none is given.
    pub fn now(tz: Tz) -> Self {
        Self(Utc::now().with_timezone(&tz))
    }

    /// The instant in the pipeline zone.
    pub fn datetime(&self) -> DateTime<Tz> {
        self.0
    }

    /// `v_YYYYMMDDTHHMMSS`: the version directory name.
    pub fn version_id(&self) -> String {
        format!("v_{}", self.ts_nodash())
    }

    /// ISO 8601 with the zone's offset, e.g. `2025-11-19T00:00:00+09:00`.
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    fn ts_nodash(&self) -> String {
        self.0.format("%Y%m%dT%H%M%S").to_string()
    }

    /// Renders `{ds}`, `{ds_nodash}` and `{ts_nodash}` in a path template.
    /// Any other `{...}` (or an unclosed `{`) is an error naming the placeholder.
    pub fn render(&self, template: &str) -> Result<String, ValueError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| ValueError::UnclosedPlaceholder(super::shorten(template)))?;
            match &after[..close] {
                "ds" => out.push_str(&self.0.format("%Y-%m-%d").to_string()),
                "ds_nodash" => out.push_str(&self.0.format("%Y%m%d").to_string()),
                "ts_nodash" => out.push_str(&self.ts_nodash()),
                other => {
                    return Err(ValueError::UnknownPlaceholder {
                        name: super::shorten(other),
                        template: super::shorten(template),
                    })
                }
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Now in `tz` as ISO 8601 with microseconds and offset (Python's `isoformat()` shape).
pub fn now_iso(tz: Tz) -> String {
    Utc::now()
        .with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seoul() -> Tz {
        parse_timezone("Asia/Seoul").unwrap()
    }

    #[test]
    fn version_ids_follow_design_rules() {
        let v = |s| ExecutionDate::parse(s, seoul()).unwrap().version_id();
        assert_eq!(v("2025-11-19T00:00:00+00:00"), "v_20251119T090000");
        assert_eq!(v("2025-11-19T15:30:00Z"), "v_20251120T003000");
        assert_eq!(v("2025-11-19T00:00:00"), "v_20251119T090000"); // naive = UTC
        assert_eq!(v("2025-11-19"), "v_20251119T000000"); // midnight in zone
        assert_eq!(v("2025-11-19T01:02:03.999+09:00"), "v_20251119T010203");
    }

    #[test]
    fn a_leap_second_is_refused_rather_than_named_second_60() {
        assert!(matches!(
            ExecutionDate::parse("2024-02-29T23:59:60Z", seoul()),
            Err(ValueError::LeapSecond(_))
        ));
        assert_eq!(
            ExecutionDate::parse("2024-02-29T23:59:59Z", seoul())
                .unwrap()
                .version_id(),
            "v_20240301T085959"
        );
    }

    #[test]
    fn templates_render_and_reject_unknown_placeholders() {
        let d = ExecutionDate::parse("2025-11-19", seoul()).unwrap();
        assert_eq!(
            d.render("s3://b/{ds}/x_{ds_nodash}_{ts_nodash}.csv")
                .unwrap(),
            "s3://b/2025-11-19/x_20251119_20251119T000000.csv"
        );
        assert!(matches!(d.render("a/{dt}.csv"), Err(e) if e.to_string().contains("{dt}")));
        assert!(matches!(
            d.render("a/{ds"),
            Err(ValueError::UnclosedPlaceholder(_))
        ));
    }

    #[test]
    fn local_times_in_a_dst_gap_move_forward() {
        let ny = parse_timezone("America/New_York").unwrap();
        let gap = NaiveDate::from_ymd_opt(2025, 3, 9)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(
            ExecutionDate::local(gap, ny).to_rfc3339(),
            "2025-03-09T03:00:00-04:00"
        );
    }

    #[test]
    fn bad_inputs_are_value_errors() {
        assert!(matches!(
            parse_timezone("Mars/Base"),
            Err(ValueError::TimeZone(_))
        ));
        assert!(matches!(
            ExecutionDate::parse("yesterday", seoul()),
            Err(ValueError::ExecutionDate(_))
        ));
        assert!(matches!(
            ExecutionDate::parse("2025-13-01", seoul()),
            Err(ValueError::ExecutionDate(_))
        ));
    }
}

//! `featurepipe status`: how fresh a feature prefix is, for a person, a cron job, an
//! Airflow task or a monitoring probe. It prints the newest complete version, its
//! execution date and age, its rows and null rate, and the last run's outcome; with
//! `--max-age` it exits 6 ([`exit_code::STALE`]) when that version is older than allowed or
//! there is none. It reads the prefix (`versions::freshness`) and writes nothing.

use std::time::Duration;

use chrono::Utc;
use clap::Args;
use serde_json::json;

use super::args::Sources;
use super::output::ReportFormat;
use super::prefix::LocationArgs;
use crate::config::{Origin, PipelineSettings, Setting};
use crate::error::{exit_code, Error, Finished, Result};
use crate::log::{self, LogFormat};
use crate::values::duration::Span;
use crate::versions::freshness::{self, Freshness};

pub const STATUS_AFTER_HELP: &str = "\
The newest complete version is found the way a run decides completeness (its _SUCCESS
manifest and every file it lists), not from _latest alone. Its age is measured from its
execution date, the start of the data it holds: a daily version run after its day ends is
already a day old when it is published, so allow two days and some slack for a daily
pipeline (--max-age 52h alerts after one missed night).

Exit codes: 0 fresh (or no --max-age), 6 stale: the newest complete version is older than
--max-age or there is none, 2 usage/config error, 5 storage/network failure.

Examples:
  # the bundled example pipeline's prefix, as a table
  featurepipe status --config fixtures/pipelines/daily_user_events.toml

  # a monitoring probe: one JSON line on stdout, exit 6 when stale
  featurepipe status --features s3://feature-bucket/features/daily_user_events \\
      --max-age 52h --output json";

/// `featurepipe status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Exit 6 when the newest complete version's execution date is older than this, or
    /// there is no complete version: 26h, 90m, 2d, 1d12h (units s, m, h, d, w)
    #[arg(long, env = "DP_STATUS_MAX_AGE", value_name = "AGE", value_parser = parse_age)]
    pub max_age: Option<Age>,

    /// How the status is printed on stdout (json: one line, for probes and Airflow XCom)
    #[arg(long, env = "DP_STATUS_OUTPUT", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,

    // The prefix, how to reach it and how to log, as the version commands take them.
    #[command(flatten)]
    pub location: LocationArgs,
}

/// `--max-age`: as given, and as a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Age {
    pub text: String,
    pub duration: Duration,
}

/// An age such as `26h`, `90m`, `2d` or `1d12h` (`values::duration`, the one parser of
/// such spans), more than 0 and at most ten years.
pub fn parse_age(s: &str) -> std::result::Result<Age, String> {
    let span = Span::parse(s)?;
    let secs = span.duration().as_secs();
    if secs == 0 || secs > 3650 * 86_400 {
        return Err(format!("{s:?} must be more than 0 and at most 3650d"));
    }
    Ok(Age {
        text: s.trim().to_string(),
        duration: span.duration(),
    })
}

/// `90061` seconds as `1d 1h 1m`; under a minute as seconds.
pub fn human_age(secs: i64) -> String {
    if secs < 0 {
        return format!("{} in the future", human_age(-secs));
    }
    if secs < 60 {
        return format!("{secs}s");
    }
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    parts.join(" ")
}

/// A status check with its settings resolved (or the reason they could not be).
pub struct Prepared {
    args: StatusArgs,
    settings: Result<PipelineSettings>,
    max_age: Option<Setting<Age>>,
}

/// Resolves the prefix's settings; errors wait until logging is set up.
pub fn prepare(args: StatusArgs, sources: &Sources<'_>) -> Prepared {
    Prepared {
        settings: args.location.resolve(sources),
        max_age: sources.setting("max_age", args.max_age.clone()),
        args,
    }
}

impl Prepared {
    /// How to log: the chosen format, in the pipeline's zone (Seoul when unknown).
    pub fn log_setup(&self) -> (LogFormat, chrono_tz::Tz) {
        self.args.location.log_setup(&self.settings)
    }

    /// Reads the prefix and reports; exit 6 if `--max-age` says the feature set is stale.
    pub fn execute(self) -> Result<Finished> {
        execute(self.args, self.settings?, self.max_age)
    }
}

fn execute(
    args: StatusArgs,
    settings: PipelineSettings,
    max_age: Option<Setting<Age>>,
) -> Result<Finished> {
    let tz = settings.timezone;
    let prefix = settings.fixed_prefix()?;
    let runtime = super::runtime()?;
    let (uri, found) = runtime.block_on(async {
        let store = super::prefix::open_store(&prefix, &settings.s3).await?;
        let found = freshness::read(store.as_ref(), tz).await?;
        Ok::<_, Error>((store.uri(""), found))
    })?;
    let report = Report {
        settings: &settings,
        uri: &uri,
        found: &found,
        max_age: max_age.as_ref(),
        now: Utc::now(),
    };
    match args.output {
        ReportFormat::Json => log::stdout(&format!("{}\n", report.json())),
        ReportFormat::Table => log::stdout(&report.table()),
    }
    match report.stale() {
        Some(why) => Err(Error::Stale(why)),
        None => Ok(Finished::success()),
    }
}

/// What `status` prints.
struct Report<'a> {
    settings: &'a PipelineSettings,
    uri: &'a str,
    found: &'a Freshness,
    max_age: Option<&'a Setting<Age>>,
    now: chrono::DateTime<Utc>,
}

impl Report<'_> {
    /// Seconds since the newest complete version's execution date.
    fn age_secs(&self) -> Option<i64> {
        let latest = self.found.latest.as_ref()?;
        Some((self.now - latest.execution_date.to_utc()).num_seconds())
    }

    /// Why the feature set is stale under `--max-age`; `None` if it is fresh or no
    /// maximum was given.
    fn stale(&self) -> Option<String> {
        let max = self.max_age?;
        let limit = format!("{} {}", name(&max.origin), max.value.text);
        match (&self.found.latest, self.age_secs()) {
            (Some(latest), Some(age))
                if age > i64::try_from(max.value.duration.as_secs()).unwrap_or(i64::MAX) =>
            {
                Some(format!(
                    "the newest complete version of {}, {} (execution date {}), is {} old, \
                     more than {limit}",
                    self.uri,
                    latest.feature_version,
                    latest.execution_date.to_rfc3339(),
                    human_age(age)
                ))
            }
            (None, _) => Some(format!("{} holds no complete version ({limit})", self.uri)),
            _ => None,
        }
    }

    fn exit_code(&self) -> u8 {
        if self.stale().is_some() {
            exit_code::STALE
        } else {
            exit_code::SUCCESS
        }
    }

    /// One JSON line.
    fn json(&self) -> serde_json::Value {
        let latest = self.found.latest.as_ref().map(|l| {
            json!({
                "feature_version": l.feature_version,
                "execution_date": l.execution_date.to_rfc3339(),
                "age_seconds": self.age_secs(),
                "age": self.age_secs().map(human_age),
                "completed_at": l.completed_at,
                "run_id": l.run_id,
                "rows": l.rows,
                "feature_rows": l.feature_rows,
                "null_rate": l.null_rate,
            })
        });
        json!({
            "pipeline": self.settings.pipeline,
            "feature_prefix": self.uri,
            "checked_at": self
                .now
                .with_timezone(&self.settings.timezone)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "latest": latest,
            "incomplete_newer": self.found.incomplete_newer,
            "last_run": self.found.last_run,
            "max_age": self.max_age.map(|m| m.value.text.clone()),
            "max_age_seconds": self.max_age.map(|m| m.value.duration.as_secs()),
            "fresh": self.max_age.map(|_| self.stale().is_none()),
            "exit_code": self.exit_code(),
        })
    }

    /// Two aligned columns, one fact per line.
    fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("pipeline", self.settings.pipeline.clone()),
            ("feature prefix", self.uri.to_string()),
        ];
        match &self.found.latest {
            Some(l) => {
                let age = self.age_secs().map(human_age).unwrap_or_default();
                rows.push(("latest complete", l.feature_version.clone()));
                rows.push((
                    "execution date",
                    format!("{} ({age} ago)", l.execution_date.to_rfc3339()),
                ));
                rows.push(("completed at", l.completed_at.clone()));
                let dash = |n: Option<u64>| n.map_or_else(|| "-".into(), |n| n.to_string());
                rows.push(("rows", dash(l.rows)));
                rows.push(("feature rows", dash(l.feature_rows)));
                rows.push((
                    "null rate",
                    l.null_rate
                        .map_or_else(|| "-".into(), |r| format!("{r:.4}")),
                ));
            }
            None => rows.push(("latest complete", "none".into())),
        }
        for v in &self.found.incomplete_newer {
            rows.push((
                "newer, incomplete",
                format!("{} ({})", v.feature_version, v.reason),
            ));
        }
        match &self.found.last_run {
            Some(r) => {
                let mut what = format!("{}, exit {}", r.status, r.exit_code);
                if let Some(v) = &r.feature_version {
                    what.push_str(&format!(", {v}"));
                }
                what.push_str(&format!(", finished {}", r.finished_at));
                rows.push(("last run", what));
                if let Some(reason) = &r.reason {
                    rows.push(("last run reason", reason.clone()));
                }
                if let Some(error) = &r.error {
                    rows.push(("last run error", error.clone()));
                }
            }
            None => rows.push(("last run", "none recorded".into())),
        }
        if let Some(max) = self.max_age {
            let verdict = if self.stale().is_some() {
                "STALE"
            } else {
                "fresh"
            };
            rows.push(("max age", format!("{}: {verdict}", max.value.text)));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

/// The flag or variable a setting came from (a default has none).
fn name(origin: &Origin) -> String {
    match origin {
        Origin::Default(_) => "--max-age".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_with_their_units() {
        let secs = |s: &str| parse_age(s).map(|a| a.duration.as_secs());
        assert_eq!(secs("26h"), Ok(26 * 3600));
        assert_eq!(secs("90m"), Ok(5400));
        assert_eq!(secs("1d12h"), Ok(36 * 3600));
        assert_eq!(secs("2W"), Ok(14 * 86_400));
        for bad in ["", "26", "h", "1.5h", "-1h", "26 hours", "0h", "99999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ages_print_in_days_hours_and_minutes() {
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(90_061), "1d 1h 1m");
        assert_eq!(human_age(7200), "2h");
        assert_eq!(human_age(-7200), "2h in the future");
    }
}

//! `featurepipe runs`: how the pipeline has been doing, per day or week, from the run
//! records and skip counters under `<prefix>/_runs/` (`versions::run_history`), as a
//! table, JSON, or CSV for a warehouse table.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use clap::Args;
use serde_json::json;

use super::args::Sources;
use super::output::{self, RowsFormat, DASH};
use super::prefix::{self, LocationArgs};
use crate::config::PipelineSettings;
use crate::error::{Error, Finished, Result};
use crate::log::{self, LogFormat};
use crate::values::duration::Span;
use crate::values::execution_date::ExecutionDate;
use crate::values::execution_date::DEFAULT_TIMEZONE;
use crate::versions::run_history::{self, Period, PeriodStats};

pub const RUNS_AFTER_HELP: &str = "\
Each row is a day (or an ISO week, named by its Monday) in the pipeline's time zone: runs,
successes, failures by error kind, skips (retries of complete versions and the like are
counted, not recorded one by one), success rate = successes / (successes + failures),
nearest-rank p50 / p95 duration of the runs that did work, rows of successful runs, and
rule outcomes. The CSV has the same columns every time (one failed_<kind> column per error
kind), ready for a warehouse table.

Examples:
  featurepipe runs --features s3://feature-bucket/features/daily_user_events --since 30d
  featurepipe runs --config pipeline.toml --by week --since 2025-09-01
  featurepipe runs --config pipeline.toml --since 1d --output csv > runs.csv";

/// `featurepipe runs`.
#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    /// Only runs from this long ago (30d, 2w, 12h: from the start of that day), or from
    /// this day (2025-11-01) [default: every record]
    #[arg(long, env = "DP_RUNS_SINCE", value_name = "AGE|DATE")]
    pub since: Option<String>,

    /// One row per day or per ISO week
    #[arg(long, env = "DP_RUNS_BY", value_enum, default_value_t = Period::Day)]
    pub by: Period,

    /// How the report is printed on stdout (csv: for a warehouse table)
    #[arg(long, env = "DP_RUNS_OUTPUT", value_enum, default_value_t = RowsFormat::Table)]
    pub output: RowsFormat,

    #[command(flatten)]
    pub location: LocationArgs,
}

/// A `runs` report with its settings and `--since` resolved (or why they could not be).
pub struct Prepared {
    args: RunsArgs,
    settings: Result<PipelineSettings>,
    /// The first instant counted (the start of `--since`'s day), if given.
    since: Result<Option<DateTime<Utc>>>,
}

/// Resolves the prefix's settings and `--since`; errors wait until logging is set up.
pub fn prepare(args: RunsArgs, sources: &Sources<'_>) -> Prepared {
    let settings = args.location.resolve(sources);
    let tz = settings.as_ref().map_or(DEFAULT_TIMEZONE, |s| s.timezone);
    let since = match &args.since {
        None => Ok(None),
        Some(text) => since_day(text, tz)
            .map(|day| {
                Some(
                    ExecutionDate::local(day.and_time(NaiveTime::MIN), tz)
                        .datetime()
                        .to_utc(),
                )
            })
            .map_err(|e| Error::Usage(format!("{}: {e}", sources.origin("since")))),
    };
    Prepared {
        args,
        settings,
        since,
    }
}

impl Prepared {
    /// How to log: the chosen format, in the pipeline's zone.
    pub fn log_setup(&self) -> (LogFormat, Tz) {
        self.args.location.log_setup(&self.settings)
    }

    pub fn execute(self) -> Result<Finished> {
        let Prepared {
            args,
            settings,
            since,
        } = self;
        let settings = settings?;
        let since = since?;
        let tz = settings.timezone;
        let runtime = super::runtime()?;
        let (prefix_uri, periods) = runtime.block_on(async {
            let prefix = prefix::open(settings).await?;
            let history = run_history::read(prefix.store.clone(), since, tz).await?;
            Ok::<_, Error>((prefix.uri(), run_history::summarize(&history, args.by, tz)))
        })?;
        match args.output {
            RowsFormat::Json => {
                let doc = json!({
                    "prefix": prefix_uri,
                    "by": args.by.as_str(),
                    "since": since.map(|s| s.with_timezone(&tz).to_rfc3339()),
                    "periods": periods,
                });
                log::stdout(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
                ));
            }
            RowsFormat::Csv => log::stdout(&output::csv(&csv_rows(&periods, args.by))),
            RowsFormat::Table => log::stdout(&table(&periods, args.by)),
        }
        Ok(Finished::success())
    }
}

/// The first day counted: `30d` ago (the day it falls on), or a date.
fn since_day(text: &str, tz: Tz) -> std::result::Result<NaiveDate, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(day);
    }
    let span = Span::parse(text).map_err(|e| format!("{e}, or a date like 2025-11-01"))?;
    Ok((Utc::now() - span.chrono()).with_timezone(&tz).date_naive())
}

/// The CSV's columns, always all of them, in this order.
fn csv_rows(periods: &[PeriodStats], by: Period) -> Vec<Vec<String>> {
    let mut header: Vec<String> = [
        "period_start",
        "period",
        "runs",
        "successes",
        "failures",
        "skips",
        "success_rate",
        "p50_duration_ms",
        "p95_duration_ms",
        "rows",
        "rules_checked",
        "rules_passed",
        "rules_warn_failed",
        "rules_error_failed",
        "rule_pass_rate",
    ]
    .map(String::from)
    .to_vec();
    header.extend(Error::RUN_KINDS.iter().map(|k| format!("failed_{k}")));
    header.push("failed_other".into());
    let mut rows = vec![header];
    let opt = |x: Option<u64>| x.map(|x| x.to_string()).unwrap_or_default();
    let rate = |x: Option<f64>| x.map(|x| format!("{x:.4}")).unwrap_or_default();
    for p in periods {
        let mut row = vec![
            p.period.clone(),
            by.as_str().to_string(),
            p.runs.to_string(),
            p.successes.to_string(),
            p.failures.to_string(),
            p.skips.to_string(),
            rate(p.success_rate),
            opt(p.p50_duration_ms),
            opt(p.p95_duration_ms),
            p.rows.to_string(),
            p.rules_checked.to_string(),
            p.rules_passed.to_string(),
            p.rules_warn_failed.to_string(),
            p.rules_error_failed.to_string(),
            rate(p.rule_pass_rate),
        ];
        let kind = |k: &str| p.failures_by_kind.get(k).copied().unwrap_or(0);
        row.extend(Error::RUN_KINDS.iter().map(|k| kind(k).to_string()));
        let other: u64 = p
            .failures_by_kind
            .iter()
            .filter(|(k, _)| !Error::RUN_KINDS.contains(&k.as_str()))
            .map(|(_, n)| n)
            .sum();
        row.push(other.to_string());
        rows.push(row);
    }
    rows
}

fn table(periods: &[PeriodStats], by: Period) -> String {
    let mut rows = vec![[
        by.as_str(),
        "runs",
        "ok",
        "failed",
        "skipped",
        "success",
        "p50",
        "p95",
        "rows",
        "rules_passed",
        "warn",
        "error",
        "failures",
    ]
    .map(String::from)
    .to_vec()];
    let secs = |ms: Option<u64>| {
        ms.map_or_else(|| DASH.into(), |ms| format!("{:.2}s", ms as f64 / 1000.0))
    };
    let pct = |x: Option<f64>| x.map_or_else(|| DASH.into(), |x| format!("{:.1}%", x * 100.0));
    for p in periods {
        rows.push(vec![
            p.period.clone(),
            p.runs.to_string(),
            p.successes.to_string(),
            p.failures.to_string(),
            p.skips.to_string(),
            pct(p.success_rate),
            secs(p.p50_duration_ms),
            secs(p.p95_duration_ms),
            p.rows.to_string(),
            pct(p.rule_pass_rate),
            p.rules_warn_failed.to_string(),
            p.rules_error_failed.to_string(),
            p.failures_by_kind
                .iter()
                .map(|(k, n)| format!("{k}:{n}"))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    let mut out = output::table(&rows);
    let total = |f: fn(&PeriodStats) -> u64| periods.iter().map(f).sum::<u64>();
    out.push_str(&format!(
        "\n{}: {} succeeded, {} failed, {} skipped\n",
        output::plural(total(|p| p.runs), "run", "runs"),
        total(|p| p.successes),
        total(|p| p.failures),
        total(|p| p.skips),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_count_one_run_as_one_run() {
        let day = |runs: u64, successes: u64| PeriodStats {
            period: "2025-11-19".into(),
            runs,
            successes,
            ..PeriodStats::default()
        };
        let one = table(&[day(1, 1)], Period::Day);
        assert!(
            one.ends_with("\n1 run: 1 succeeded, 0 failed, 0 skipped\n"),
            "{one}"
        );
        let two = table(&[day(2, 1)], Period::Day);
        assert!(
            two.ends_with("\n2 runs: 1 succeeded, 0 failed, 0 skipped\n"),
            "{two}"
        );
    }
}

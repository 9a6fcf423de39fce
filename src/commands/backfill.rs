//! `featurepipe backfill`: the same run as `featurepipe run`, once per date.
//!
//! Each date is a full, independent run ([`run_one`]): its own run id, lease,
//! `summarize_run` line and run record, so a backfill leaves exactly the trail a week of
//! nightly runs would. Up to `--parallel` dates run at once on one runtime; each run
//! streams with bounded memory, so memory grows with `--parallel`, never with the data.
//! At the end: one `step=backfill_summary` line, the report on stdout, and one exit code.

use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use clap::Args;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use super::args::{parse_date, parse_time_of_day, BoolValue, CommonArgs, Sources};
use super::output::{self, ReportFormat};
use crate::config::{self, Flags, Rerun, RunSettings, When};
use crate::error::{exit_code, Error, Finished, Result};
use crate::interrupt::Interrupt;
use crate::log::{self, keys, DpLine, LogFormat, Status, Step};
use crate::observe::progress::{Counters, Measure, Watch};
use crate::observe::Observe;
use crate::run::context::Report;
use crate::run::outcome::Outcome;
use crate::run::{run_one, RunRequest};
use crate::values::execution_date::DEFAULT_TIMEZONE;
use crate::values::ids::new_run_id;

/// `featurepipe backfill`: which dates, how, and how to report. Every flag has its
/// `DP_BACKFILL_*` variable; the dates are checked by [`dates`], which names both ways of
/// giving them.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// First date, inclusive (YYYY-MM-DD, a day in the pipeline zone); needs --end
    #[arg(long, env = "DP_BACKFILL_START", value_name = "DATE", value_parser = parse_date,
          conflicts_with = "dates")]
    pub start: Option<NaiveDate>,

    /// Last date, inclusive; needs --start
    #[arg(long, env = "DP_BACKFILL_END", value_name = "DATE", value_parser = parse_date,
          conflicts_with = "dates")]
    pub end: Option<NaiveDate>,

    /// Exactly these dates instead of a range: 2025-11-03,2025-11-17
    #[arg(long, env = "DP_BACKFILL_DATES", value_name = "DATES", value_parser = parse_date,
          value_delimiter = ',')]
    pub dates: Vec<NaiveDate>,

    /// More dates than this is refused as a likely typo in --start / --end; raise it to
    /// run a longer backfill on purpose
    #[arg(long, env = "DP_BACKFILL_MAX_DATES", value_name = "N", default_value_t = DEFAULT_MAX_DATES,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DATES_LIMIT)))]
    pub max_dates: u32,

    /// Time of day of each execution date, in the pipeline zone
    #[arg(long, env = "DP_BACKFILL_AT", value_name = "HH:MM", value_parser = parse_time_of_day,
          default_value = "00:00")]
    pub at: NaiveTime,

    /// Dates run at once (each run streams with bounded memory, about 40 MiB)
    #[arg(long, env = "DP_BACKFILL_PARALLEL", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=32))]
    pub parallel: u16,

    /// Which dates to run: none skips complete versions; failed runs only dates whose
    /// last run failed or left an incomplete version; all rewrites every date
    #[arg(long, env = "DP_BACKFILL_REPROCESS", value_enum, default_value_t = Reprocess::None,
          conflicts_with = "force")]
    pub reprocess: Reprocess,

    /// Stop starting new dates after the first failure (default: go on)
    #[arg(long, env = "DP_BACKFILL_FAIL_FAST", value_parser = BoolValue)]
    pub fail_fast: bool,

    /// How the final report is printed on stdout
    #[arg(long, env = "DP_BACKFILL_OUTPUT", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// `--reprocess`: which dates of a backfill are (re)computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reprocess {
    /// Run every date; complete versions are skipped.
    None,
    /// Only dates whose last run failed or left an incomplete version.
    Failed,
    /// Rewrite every date, complete or not (like --force).
    All,
}

impl Reprocess {
    pub fn as_str(self) -> &'static str {
        match self {
            Reprocess::None => "none",
            Reprocess::Failed => "failed",
            Reprocess::All => "all",
        }
    }
}

pub const BACKFILL_AFTER_HELP: &str = "\
Each date is a full run (its own run_id, summarize_run line and run record). The report on
stdout has one row per date: rows, feature rows, warnings, exit code and why it was skipped
or failed. Exit code: 0 if every date succeeded or was skipped; otherwise the most severe
code among the dates, in this order: 130/143 interrupted, 1 internal, 5 storage, 75 busy,
2 usage, 3 data invalid, 4 raw input not found. More than 366 dates (--start/--end or
--dates) needs --max-dates N, so that a slip of the year is not run as two years of dates.

Examples:
  # one week, two dates at a time, with the bundled example pipeline (from the repository)
  featurepipe backfill --start 2025-11-13 --end 2025-11-19 --parallel 2 \\
      --config fixtures/pipelines/daily_user_events.toml

  # only what failed last time, on S3, report as JSON
  featurepipe backfill --start 2025-11-01 --end 2025-11-30 --reprocess failed --output json \\
      --raw 's3://raw-bucket/daily/user_events_{ds_nodash}.csv' \\
      --features s3://feature-bucket/features/daily_user_events

  # exactly these dates, skipping those whose raw file never arrived
  featurepipe backfill --dates 2025-11-03,2025-11-17 --skip-if-missing --config pipeline.toml";

/// More dates than this needs `--max-dates`: a year and a day, so a yearly backfill
/// passes and a slip of the year in `--end` (731 dates) does not.
const DEFAULT_MAX_DATES: u32 = 366;
/// `--max-dates` itself stops here (a century of daily runs).
const MAX_DATES_LIMIT: u32 = 36_600;

/// One line of the report: a date and what its run did (`None`: never started).
#[derive(Debug, Serialize)]
struct DateResult {
    date: NaiveDate,
    #[serde(flatten)]
    outcome: Option<Outcome>,
}

impl DateResult {
    fn status(&self) -> &'static str {
        self.outcome
            .as_ref()
            .map_or(keys::NOT_RUN, |o| o.status.as_str())
    }
}

/// A backfill with its dates and first settings resolved, ready to log and execute.
pub struct Prepared {
    args: BackfillArgs,
    flags: Flags,
    backfill_id: String,
    started: Instant,
    dates: Result<Vec<NaiveDate>>,
    /// The first date's settings: they give the log zone and the pipeline name, and tell
    /// early whether the flags and pipeline file are usable at all.
    first: Option<Result<RunSettings>>,
}

/// Resolves the dates and the first date's settings. Never fails: errors are reported
/// once logging is set up.
pub fn prepare(args: BackfillArgs, sources: &Sources<'_>) -> Prepared {
    let flags = args.common.flags(sources);
    let dates = dates(&args);
    let first = dates
        .as_ref()
        .ok()
        .and_then(|d| d.first())
        .map(|d| config::resolve(&flags, &When::Local(d.and_time(args.at)), rerun(&args)));
    Prepared {
        backfill_id: new_run_id(),
        started: Instant::now(),
        args,
        flags,
        dates,
        first,
    }
}

impl Prepared {
    /// How to log: the chosen format, in the pipeline's zone (Seoul when unknown).
    pub fn log_setup(&self) -> (LogFormat, Tz) {
        let tz = match &self.first {
            Some(Ok(s)) => s.timezone,
            _ => DEFAULT_TIMEZONE,
        };
        (self.args.common.log_format, tz)
    }

    pub fn execute(self) -> Result<Finished> {
        let Prepared {
            args,
            flags,
            backfill_id,
            started,
            dates,
            first,
        } = self;
        let pipeline = match &first {
            Some(Ok(s)) => s.pipeline.clone(),
            _ => config::pipeline_name_hint(&flags),
        };
        // A backfill that cannot start still logs its one summary line.
        let not_started = |e: Error| {
            DpLine::new(
                &pipeline,
                Step::BackfillSummary,
                Status::Failed,
                &backfill_id,
            )
            .with(keys::EXECUTION_DATE, None::<String>)
            .with(keys::EXIT_CODE, i32::from(e.exit_code()))
            .with(keys::ERROR_KIND, e.kind())
            .with(keys::ERROR, e.to_string())
            .emit();
            Err(e)
        };
        let dates = match dates {
            Ok(dates) => dates,
            Err(e) => return not_started(e),
        };
        // Flags, variables and pipeline file that cannot be resolved for the first date
        // fail every date alike: one usage error, before any run starts.
        if let Some(Err(e)) = first {
            return not_started(e);
        }
        let observe = Arc::new(args.common.observe.observe(args.common.log_format));
        let runtime = super::runtime()?;
        runtime.block_on(async {
            let interrupt = Interrupt::listen();
            // A bar (on a terminal) or `step=progress` lines over the dates done.
            let counters = Counters::new();
            let watch = Watch::start(
                observe.progress,
                DpLine::new(&pipeline, Step::Progress, Status::Started, &backfill_id),
                Measure::Dates {
                    total: dates.len() as u64,
                },
                counters.clone(),
            );
            let flags = Arc::new(flags);
            let results = run_dates(&args, flags, &dates, interrupt.clone(), &observe, &counters);
            let results = results.await;
            watch.finish().await;
            let ending = match interrupt.fired() {
                Some(signal) => Err(Error::Interrupted(signal)),
                None => ending(&results),
            };
            let summary = Summary {
                backfill_id: &backfill_id,
                pipeline: &pipeline,
                args: &args,
                results: &results,
                exit_code: match &ending {
                    Ok(finished) => finished.exit_code(),
                    Err(e) => e.exit_code(),
                },
                duration_ms: started.elapsed().as_millis() as u64,
            };
            summary.log();
            summary.print();
            ending
        })
    }
}

/// How complete versions are treated under `--reprocess` (`--force` means `all`).
fn rerun(args: &BackfillArgs) -> Rerun {
    match args.reprocess {
        Reprocess::None => Rerun::IfIncomplete,
        Reprocess::Failed => Rerun::IfFailed,
        Reprocess::All => Rerun::Always,
    }
}

/// How to give the dates, for the errors that ask for them.
const GIVE_DATES: &str = "give --start and --end (DP_BACKFILL_START and DP_BACKFILL_END), \
                          or --dates 2025-11-03,2025-11-17 (DP_BACKFILL_DATES)";

/// The dates to run, oldest first, each once; at most `--max-dates` of them.
fn dates(args: &BackfillArgs) -> Result<Vec<NaiveDate>> {
    let max = args.max_dates as usize;
    let mut dates = match (args.start, args.end) {
        (Some(start), Some(end)) => {
            if start > end {
                return Err(Error::Usage(format!(
                    "--start {start} is after --end {end}: both dates are inclusive, start first"
                )));
            }
            let days = (end - start).num_days() as usize + 1;
            if days > max {
                let what_to_do = if days <= MAX_DATES_LIMIT as usize {
                    format!("check the years; to run them all, pass --max-dates {days}")
                } else {
                    "check the years, or split the backfill".to_string()
                };
                return Err(Error::Usage(format!(
                    "--start {start} .. --end {end} spans {days} dates, more than --max-dates \
                     {max}: {what_to_do}"
                )));
            }
            start.iter_days().take(days).collect()
        }
        (Some(start), None) => {
            return Err(Error::Usage(format!(
                "--start {start} needs --end (DP_BACKFILL_END): the last date to run, inclusive"
            )))
        }
        (None, Some(end)) => {
            return Err(Error::Usage(format!(
                "--end {end} needs --start (DP_BACKFILL_START): the first date to run, inclusive"
            )))
        }
        (None, None) => args.dates.clone(),
    };
    dates.sort();
    dates.dedup();
    if dates.is_empty() {
        return Err(Error::Usage(format!("no dates to run: {GIVE_DATES}")));
    }
    if dates.len() > max {
        return Err(Error::Usage(format!(
            "--dates lists {} dates, more than --max-dates {max}: pass --max-dates {} to run \
             them all, or split the backfill",
            dates.len(),
            dates.len()
        )));
    }
    Ok(dates)
}

/// Runs every date, at most `--parallel` at once; stops starting new ones after a
/// failure with `--fail-fast`, and after SIGINT / SIGTERM (runs in flight stop cleanly).
async fn run_dates(
    args: &BackfillArgs,
    flags: Arc<Flags>,
    dates: &[NaiveDate],
    interrupt: Interrupt,
    observe: &Arc<Observe>,
    done: &Counters,
) -> Vec<DateResult> {
    let rerun = rerun(args);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; dates.len()];
    let mut running = JoinSet::new();
    let mut next = 0;
    let mut stop = false;
    loop {
        while !stop && running.len() < usize::from(args.parallel) && next < dates.len() {
            if interrupt.fired().is_some() {
                stop = true;
                break;
            }
            let index = next;
            next += 1;
            let local = dates[index].and_time(args.at);
            let flags = flags.clone();
            let interrupt = interrupt.clone();
            let observe = observe.clone();
            running.spawn(async move {
                let request = RunRequest {
                    settings: config::resolve(&flags, &When::Local(local), rerun),
                    run_id: new_run_id(),
                    started: Instant::now(),
                    pipeline_hint: config::pipeline_name_hint(&flags),
                    execution_date_hint: Some(local.format("%Y-%m-%dT%H:%M").to_string()),
                    report: Report::Quiet,
                    observe,
                };
                (index, run_one(request, interrupt).await.outcome)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        // A panicking run ends the process through the panic hook; nothing to record.
        let Ok((index, outcome)) = joined else {
            continue;
        };
        done.add(1);
        if args.fail_fast && outcome.status == Status::Failed {
            stop = true;
        }
        outcomes[index] = Some(outcome);
    }
    dates
        .iter()
        .zip(outcomes)
        .map(|(&date, outcome)| DateResult { date, outcome })
        .collect()
}

/// Success if every date that ran succeeded or was skipped, else a failure with the most
/// severe exit code among the dates.
fn ending(results: &[DateResult]) -> Result<Finished> {
    let failures: Vec<u8> = results
        .iter()
        .filter_map(|r| r.outcome.as_ref())
        .filter(|o| o.status == Status::Failed)
        .map(|o| o.exit_code)
        .collect();
    if failures.is_empty() {
        return Ok(Finished::success());
    }
    Err(Error::Backfill {
        failed: failures.len(),
        dates: results.len(),
        code: exit_code::most_severe(&failures),
    })
}

/// The backfill's totals: the `backfill_summary` line and the report on stdout.
struct Summary<'a> {
    backfill_id: &'a str,
    pipeline: &'a str,
    args: &'a BackfillArgs,
    results: &'a [DateResult],
    exit_code: u8,
    duration_ms: u64,
}

impl Summary<'_> {
    fn count(&self, status: &str) -> usize {
        self.results.iter().filter(|r| r.status() == status).count()
    }

    fn first_date(&self) -> Option<NaiveDate> {
        self.results.first().map(|r| r.date)
    }

    fn last_date(&self) -> Option<NaiveDate> {
        self.results.last().map(|r| r.date)
    }

    fn log(&self) {
        let status = if self.exit_code == exit_code::SUCCESS {
            Status::Success
        } else {
            Status::Failed
        };
        let (first, last) = (self.first_date(), self.last_date());
        // An ISO 8601 interval: the dates this backfill covered.
        let interval = first.zip(last).map(|(a, b)| format!("{a}/{b}"));
        DpLine::new(
            self.pipeline,
            Step::BackfillSummary,
            status,
            self.backfill_id,
        )
        .with(keys::EXECUTION_DATE, interval)
        .with(keys::START_DATE, first.map(|d| d.to_string()))
        .with(keys::END_DATE, last.map(|d| d.to_string()))
        .with(keys::DATES, self.results.len() as u64)
        .with(keys::SUCCEEDED, self.count(Status::Success.as_str()) as u64)
        .with(keys::SKIPPED, self.count(Status::Skipped.as_str()) as u64)
        .with(keys::FAILED, self.count(Status::Failed.as_str()) as u64)
        .with(keys::NOT_RUN, self.count(keys::NOT_RUN) as u64)
        .with(keys::PARALLEL, u64::from(self.args.parallel))
        .with(keys::REPROCESS, self.args.reprocess.as_str())
        .with(keys::DURATION_MS, self.duration_ms)
        .with(keys::EXIT_CODE, i32::from(self.exit_code))
        .emit();
    }

    fn print(&self) {
        match self.args.output {
            ReportFormat::Json => log::stdout(&format!("{}\n", self.json())),
            ReportFormat::Table => log::stdout(&self.table()),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "backfill_id": self.backfill_id,
            "pipeline": self.pipeline,
            "start_date": self.first_date(),
            "end_date": self.last_date(),
            "reprocess": self.args.reprocess.as_str(),
            "parallel": self.args.parallel,
            "exit_code": self.exit_code,
            "duration_ms": self.duration_ms,
            "counts": {
                "dates": self.results.len(),
                "succeeded": self.count(Status::Success.as_str()),
                "skipped": self.count(Status::Skipped.as_str()),
                "failed": self.count(Status::Failed.as_str()),
                "not_run": self.count(keys::NOT_RUN),
            },
            "dates": self.results.iter().map(|r| {
                let mut row = serde_json::to_value(r).unwrap_or_default();
                if let Some(map) = row.as_object_mut() {
                    map.insert("status".into(), r.status().into());
                }
                row
            }).collect::<Vec<_>>(),
        })
    }

    /// A fixed-width table, one row per date, then the totals.
    fn table(&self) -> String {
        let header = [
            "date",
            "version",
            "status",
            "rows",
            "null_rate",
            "duration",
            "exit",
            "feature_rows",
            "warnings",
            "note",
        ];
        let mut rows: Vec<[String; 10]> = vec![header.map(String::from)];
        for r in self.results {
            let o = r.outcome.as_ref();
            let dash = || "-".to_string();
            rows.push([
                r.date.to_string(),
                o.and_then(|o| o.feature_version.clone())
                    .unwrap_or_else(dash),
                r.status().to_string(),
                o.and_then(|o| o.rows).map_or_else(dash, |n| n.to_string()),
                o.and_then(|o| o.null_rate)
                    .map_or_else(dash, |x| format!("{x:.4}")),
                o.map_or_else(dash, |o| format!("{:.2}s", o.duration_ms as f64 / 1000.0)),
                o.map_or_else(dash, |o| o.exit_code.to_string()),
                o.and_then(|o| o.feature_rows)
                    .map_or_else(dash, |n| n.to_string()),
                o.and_then(|o| o.warnings)
                    .map_or_else(dash, |n| n.to_string()),
                o.and_then(|o| o.reason.map(|r| r.describe()).or(o.error_kind))
                    .unwrap_or_default()
                    .to_string(),
            ]);
        }
        let mut out = output::table(&rows);
        out.push_str(&format!(
            "\n{}: {} succeeded, {} skipped, {} failed, {} not run; exit code {}\n",
            output::plural(self.results.len() as u64, "date", "dates"),
            self.count(Status::Success.as_str()),
            self.count(Status::Skipped.as_str()),
            self.count(Status::Failed.as_str()),
            self.count(keys::NOT_RUN),
            self.exit_code
        ));
        out
    }
}

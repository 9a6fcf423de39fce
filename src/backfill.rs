//! `featurepipe backfill`: the same run as `featurepipe run`, once per date.
//!
//! Each date is a full, independent run ([`crate::run::run_one`]): its own run id, lease,
//! `summarize_run` line and run record, so a backfill leaves exactly the trail a week of
//! nightly runs would. Up to `--parallel` dates run at once on one runtime; each run
//! streams with bounded memory, so memory grows with `--parallel`, never with the data.
//! At the end: one `step=backfill_summary` line, the report on stdout, and one exit code.

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::cli::{BackfillArgs, ReportFormat, Reprocess};
use crate::config::{self, Rerun, When};
use crate::context::Report;
use crate::dp_log::{self, keys, DpLine, Status, Step};
use crate::error::exit_code;
use crate::execution_date::DEFAULT_TIMEZONE;
use crate::interrupt::Interrupt;
use crate::run::{run_one, runtime, RunRequest};
use crate::run_id::new_run_id;
use crate::stages::summarize_run::Outcome;

/// More dates than this in one backfill is almost surely a typo in `--start` / `--end`.
const MAX_DATES: usize = 3660;

/// Failure codes from most to least severe: the backfill exits with the first one any
/// date ended with. Interrupts (130/143) come before all of these; a date that succeeded
/// or was skipped (0, 99) never fails a backfill.
const SEVERITY: [u8; 6] = [
    exit_code::INTERNAL,
    exit_code::STORAGE,
    exit_code::BUSY,
    exit_code::USAGE,
    exit_code::DATA_INVALID,
    exit_code::RAW_NOT_FOUND,
];

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

/// Runs the backfill and returns the process exit code.
pub fn execute(args: BackfillArgs) -> u8 {
    let backfill_id = new_run_id();
    let started = Instant::now();
    // The first date's settings give the log zone and tell early whether the flags and
    // pipeline file are usable at all.
    let dates = dates(&args);
    let first_settings = dates
        .as_ref()
        .ok()
        .and_then(|d| d.first())
        .map(|d| config::resolve(&args.common, When::Local(d.and_time(args.at)), rerun(&args)));
    let tz = match &first_settings {
        Some(Ok(s)) => s.timezone,
        _ => DEFAULT_TIMEZONE,
    };
    dp_log::init(args.common.log_format, tz);
    let pipeline = match &first_settings {
        Some(Ok(s)) => s.pipeline.clone(),
        _ => config::pipeline_name_hint(&args.common),
    };
    let dates = match dates {
        Ok(dates) => dates,
        Err(message) => {
            DpLine::new(
                &pipeline,
                Step::BackfillSummary,
                Status::Failed,
                &backfill_id,
            )
            .with(keys::EXECUTION_DATE, None::<String>)
            .with(keys::EXIT_CODE, i32::from(exit_code::USAGE))
            .with(keys::ERROR_KIND, "usage")
            .with(keys::ERROR, message.clone())
            .emit();
            eprintln!("featurepipe: error: {message}");
            return exit_code::USAGE;
        }
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let interrupt = Interrupt::listen();
        let results = run_dates(&args, &dates, interrupt.clone()).await;
        let code = match interrupt.fired() {
            Some(signal) => signal.exit_code(),
            None => exit_code_of(&results),
        };
        let summary = Summary {
            backfill_id: &backfill_id,
            pipeline: &pipeline,
            args: &args,
            results: &results,
            exit_code: code,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        summary.log();
        summary.print();
        code
    })
}

/// How complete versions are treated under `--reprocess` (`--force` means `all`).
fn rerun(args: &BackfillArgs) -> Rerun {
    match args.reprocess {
        Reprocess::None => Rerun::IfIncomplete,
        Reprocess::Failed => Rerun::IfFailed,
        Reprocess::All => Rerun::Always,
    }
}

/// The dates to run, oldest first, each once.
fn dates(args: &BackfillArgs) -> Result<Vec<NaiveDate>, String> {
    let mut dates = match (args.start, args.end) {
        (Some(start), Some(end)) => {
            if start > end {
                return Err(format!(
                    "--start {start} is after --end {end}: both dates are inclusive, start first"
                ));
            }
            let days = (end - start).num_days() as usize + 1;
            if days > MAX_DATES {
                return Err(format!(
                    "--start {start} .. --end {end} spans {days} dates, more than {MAX_DATES}: \
                     check the years, or split the backfill"
                ));
            }
            start.iter_days().take(days).collect()
        }
        _ => args.dates.clone(),
    };
    dates.sort();
    dates.dedup();
    if dates.is_empty() {
        return Err("no dates to run: give --start and --end, or --dates".into());
    }
    if dates.len() > MAX_DATES {
        return Err(format!(
            "--dates lists {} dates, more than {MAX_DATES}: split the backfill",
            dates.len()
        ));
    }
    Ok(dates)
}

/// Runs every date, at most `--parallel` at once; stops starting new ones after a
/// failure with `--fail-fast`, and after SIGINT / SIGTERM (runs in flight stop cleanly).
async fn run_dates(
    args: &BackfillArgs,
    dates: &[NaiveDate],
    interrupt: Interrupt,
) -> Vec<DateResult> {
    let common = Arc::new(args.common.clone());
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
            let common = common.clone();
            let interrupt = interrupt.clone();
            running.spawn(async move {
                let request = RunRequest {
                    settings: config::resolve(&common, When::Local(local), rerun),
                    run_id: new_run_id(),
                    started: Instant::now(),
                    execution_date_hint: Some(local.format("%Y-%m-%dT%H:%M").to_string()),
                    report: Report::Quiet,
                };
                (index, run_one(&common, request, interrupt).await)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        // A panicking run ends the process through the panic hook; nothing to record.
        let Ok((index, outcome)) = joined else {
            continue;
        };
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

/// 0 if every date that ran succeeded or was skipped, else the most severe failure.
fn exit_code_of(results: &[DateResult]) -> u8 {
    let failures: Vec<u8> = results
        .iter()
        .filter_map(|r| r.outcome.as_ref())
        .filter(|o| o.status == Status::Failed)
        .map(|o| o.exit_code)
        .collect();
    most_severe(&failures)
}

/// The first code of [`SEVERITY`] among `failures`; 0 if there are none.
fn most_severe(failures: &[u8]) -> u8 {
    if failures.is_empty() {
        return exit_code::SUCCESS;
    }
    SEVERITY
        .iter()
        .copied()
        .find(|code| failures.contains(code))
        // A code outside the list (none today): report it rather than hide it.
        .unwrap_or(failures[0])
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
            ReportFormat::Json => println!("{}", self.json()),
            ReportFormat::Table => print!("{}", self.table()),
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
            "note",
        ];
        let mut rows: Vec<[String; 8]> = vec![header.map(String::from)];
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
                o.and_then(|o| o.reason.map(|r| r.as_str()).or(o.error_kind))
                    .unwrap_or_default()
                    .to_string(),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|c| rows.iter().map(|row| row[c].len()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, &w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out.push_str(&format!(
            "\n{} dates: {} succeeded, {} skipped, {} failed, {} not run; exit code {}\n",
            self.results.len(),
            self.count(Status::Success.as_str()),
            self.count(Status::Skipped.as_str()),
            self.count(Status::Failed.as_str()),
            self.count(keys::NOT_RUN),
            self.exit_code
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_severe_failure_wins() {
        assert_eq!(most_severe(&[]), 0);
        assert_eq!(most_severe(&[4, 3]), 3);
        assert_eq!(most_severe(&[4, 3, 2]), 2);
        assert_eq!(most_severe(&[2, 75, 3]), 75);
        assert_eq!(most_severe(&[3, 5, 75]), 5);
        assert_eq!(most_severe(&[5, 1, 4]), 1);
    }
}

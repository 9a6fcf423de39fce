//! `featurepipe run`: one run of the pipeline for one execution date; its result on
//! stdout, as one JSON line by default (what Airflow's XCom and the cron wrapper read) or
//! as a table (`--output table`).

use std::sync::Arc;
use std::time::Instant;

use chrono_tz::Tz;
use clap::Args;

use super::args::{CommonArgs, Sources};
use super::output::{self, ReportFormat, DASH};
use crate::config::{self, Rerun, When};
use crate::error::{Finished, Result};
use crate::interrupt::Interrupt;
use crate::log::LogFormat;
use crate::run::context::Report;
use crate::run::outcome::Outcome;
use crate::run::{outcome, run_one, RunEnd, RunRequest};
use crate::values::execution_date::DEFAULT_TIMEZONE;
use crate::values::ids::new_run_id;

pub const RUN_AFTER_HELP: &str = "\
stdout carries one document: the result as one JSON line (the default, for Airflow's XCom
and scripts), or the plan of a --dry-run as JSON; --output table shows either for a person.

Exit codes: 0 success or already complete, 1 internal error, 2 usage/config error,
3 data invalid or malformed CSV, 4 raw input not found, 5 storage/network failure,
75 another run is writing this version (retry later), 99 skipped on purpose
(--skip-if-missing), 130/143 stopped by SIGINT/SIGTERM.

Examples:
  # the bundled example pipeline on the bundled fixture, into ./out (from the repository)
  featurepipe run --config fixtures/pipelines/daily_user_events.toml --execution-date 2025-11-19

  # nightly from Airflow (templated date), raw and features on S3
  featurepipe run --execution-date '{{ ds }}' \\
      --raw 's3://raw-bucket/daily/user_events_{ds_nodash}.csv' \\
      --features s3://feature-bucket/features/daily_user_events

  # what a run would write, as a table, without writing anything
  featurepipe run --config fixtures/pipelines/daily_user_events.toml --execution-date 2025-11-19 \\
      --dry-run --output table";

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The date this run is for: 2025-11-19 (midnight in the pipeline zone),
    /// 2025-11-19T00:00:00+00:00 (converted), or 2025-11-19T00:00:00 (naive = UTC)
    /// [default: now, with a warning: a re-run then writes another version]
    #[arg(long, env = "DP_EXECUTION_DATE", value_name = "WHEN")]
    pub execution_date: Option<String>,

    /// How the result (or a dry run's plan) is printed on stdout: json, one line for
    /// Airflow's XCom and scripts (a plan: indented), or table, for a person
    #[arg(long, env = "DP_RUN_OUTPUT", value_enum, default_value_t = ReportFormat::Json)]
    pub output: ReportFormat,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// A run with its settings resolved (or the reason they could not be), ready to log and
/// execute.
pub struct Prepared {
    request: RunRequest,
    log_format: LogFormat,
    output: ReportFormat,
}

/// Turns flags into settings. Never fails: a configuration error is kept, so that the
/// failed run still logs its `summarize_run` line once logging is set up.
pub fn prepare(args: &RunArgs, sources: &Sources<'_>) -> Prepared {
    let run_id = new_run_id();
    let started = Instant::now();
    let flags = args.common.flags(sources);
    let date = sources.setting("execution_date", args.execution_date.clone());
    let settings = config::resolve(&flags, &When::Given(date), Rerun::IfIncomplete);
    Prepared {
        request: RunRequest {
            pipeline_hint: config::pipeline_name_hint(&flags),
            settings,
            run_id,
            started,
            execution_date_hint: args.execution_date.clone(),
            report: Report::Stdout,
            observe: Arc::new(args.common.observe.observe(args.common.log_format)),
        },
        log_format: args.common.log_format,
        output: args.output,
    }
}

impl Prepared {
    /// How to log: the chosen format, in the pipeline's zone (Seoul when unknown).
    pub fn log_setup(&self) -> (LogFormat, Tz) {
        let tz = match &self.request.settings {
            Ok(s) => s.timezone,
            Err(_) => DEFAULT_TIMEZONE,
        };
        (self.log_format, tz)
    }

    pub fn execute(self) -> Result<Finished> {
        if let Ok(s) = &self.request.settings {
            if s.execution_date_is_now {
                tracing::warn!(
                    "no execution date given (--execution-date, DP_EXECUTION_DATE): the version \
                     is the current time, {}, and a re-run will not find it; give the date the \
                     data is for to make re-runs idempotent",
                    s.version_id()
                );
            }
        }
        let runtime = super::runtime()?;
        let end = runtime.block_on(async {
            let interrupt = Interrupt::listen();
            run_one(self.request, interrupt).await
        });
        // After a run, a stdout that cannot be written is a warning: the exit code stays
        // the run's, which says what happened to the data.
        if let Err(e) = output::write_stdout(stdout(&end, self.output).as_bytes()) {
            tracing::warn!("{e}");
        }
        match end.error {
            Some(e) => Err(e),
            None => Ok(outcome::finished(end.outcome.reason, end.note)),
        }
    }
}

/// What stdout carries: a completed dry run's plan, else the result; as JSON or a table.
fn stdout(end: &RunEnd, format: ReportFormat) -> String {
    match (format, &end.plan) {
        (ReportFormat::Json, Some(plan)) => {
            let text = serde_json::to_string_pretty(plan).unwrap_or_else(|_| plan.to_string());
            format!("{text}\n")
        }
        (ReportFormat::Json, None) => format!("{}\n", end.outcome.result_json()),
        (ReportFormat::Table, Some(plan)) => plan_table(plan),
        (ReportFormat::Table, None) => result_table(&end.outcome),
    }
}

/// The result for a person: what happened, then every rule's verdict.
fn result_table(o: &Outcome) -> String {
    let count = |n: Option<u64>| n.map_or_else(|| DASH.into(), |n| n.to_string());
    let mut facts: Vec<(&str, String)> = vec![
        ("status", o.status.as_str().to_string()),
        ("exit code", o.exit_code.to_string()),
        ("pipeline", o.pipeline.clone()),
        ("run id", o.run_id.clone()),
        (
            "execution date",
            o.execution_date.clone().unwrap_or_else(|| DASH.into()),
        ),
        (
            "version",
            o.feature_prefix
                .clone()
                .or_else(|| o.feature_version.clone())
                .unwrap_or_else(|| DASH.into()),
        ),
        ("rows", count(o.rows)),
        (
            "null rate",
            o.null_rate
                .map_or_else(|| DASH.into(), |r| format!("{r:.4}")),
        ),
        ("valid", o.valid.map_or_else(|| DASH.into(), yes_no)),
        ("warnings", count(o.warnings)),
        ("feature rows", count(o.feature_rows)),
        ("stored rows", count(o.stored_rows)),
        (
            "_latest moved",
            o.latest_moved
                .map_or_else(|| DASH.into(), |m| if m { "yes" } else { "no" }.into()),
        ),
        ("duration", format!("{:.2}s", o.duration_ms as f64 / 1000.0)),
    ];
    if o.dry_run {
        facts.push(("dry run", "yes: nothing was written".into()));
    }
    if let Some(reason) = o.reason {
        facts.push(("skipped", reason.describe().into()));
    }
    if let Some(step) = o.failed_step {
        facts.push(("failed step", step.into()));
    }
    if let Some(error) = &o.error {
        facts.push(("error", error.clone()));
    }
    let mut out = output::facts(&facts);
    if let Some(rules) = &o.validation {
        let rules: Vec<serde_json::Value> = rules
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        out.push_str("\nvalidation\n");
        out.push_str(&output::validation_table(&rules));
    }
    out
}

/// `valid` for a person: a failure stands out.
fn yes_no(valid: bool) -> String {
    if valid { "yes" } else { "NO" }.into()
}

/// A dry run's plan for a person: what would be published where, the files it would
/// write, then every rule's verdict.
fn plan_table(plan: &serde_json::Value) -> String {
    let text = |key: &str| plan.get(key).map_or_else(|| DASH.into(), output::plain);
    let mut out = output::facts(&[
        ("dry run", "yes: nothing was written".into()),
        ("action", text("action")),
        ("pipeline", text("pipeline")),
        ("run id", text("run_id")),
        ("execution date", text("execution_date")),
        ("version", text("version_uri")),
        ("raw path", text("raw_path")),
        ("rows", text("rows_raw")),
        ("feature rows", text("rows_feature")),
        (
            "null rate",
            plan.get("raw_null_rate")
                .and_then(serde_json::Value::as_f64)
                .map_or_else(|| DASH.into(), |r| format!("{r:.4}")),
        ),
        (
            "valid",
            plan.get("raw_valid")
                .and_then(serde_json::Value::as_bool)
                .map_or_else(|| DASH.into(), yes_no),
        ),
        ("warnings", text("warnings")),
    ]);
    if let Some(writes) = plan.get("writes").and_then(serde_json::Value::as_array) {
        out.push_str("\nwould write\n");
        let mut rows = vec![["file".to_string(), "size".to_string()]];
        for w in writes {
            rows.push([
                w.get("uri").map_or_else(|| DASH.into(), output::plain),
                w.get("size_bytes")
                    .and_then(serde_json::Value::as_u64)
                    .map_or_else(|| DASH.into(), output::human_bytes),
            ]);
        }
        out.push_str(&output::table(&rows));
    }
    if let Some(rules) = plan.get("validation").and_then(serde_json::Value::as_array) {
        out.push_str("\nvalidation\n");
        out.push_str(&output::validation_table(rules));
    }
    out
}

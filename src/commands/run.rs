//! `featurepipe run`: one run of the pipeline for one execution date; its result as JSON
//! on stdout.

use std::sync::Arc;
use std::time::Instant;

use chrono_tz::Tz;
use clap::Args;

use super::args::{CommonArgs, Sources};
use crate::config::{self, Rerun, When};
use crate::error::{Finished, Result};
use crate::interrupt::Interrupt;
use crate::log::LogFormat;
use crate::run::context::Report;
use crate::run::{outcome, run_one, RunRequest};
use crate::values::execution_date::DEFAULT_TIMEZONE;
use crate::values::ids::new_run_id;

pub const RUN_AFTER_HELP: &str = "\
Examples:
  # the bundled example pipeline on the bundled fixture, into ./out (from the repository)
  featurepipe run --config fixtures/pipelines/daily_user_events.toml --execution-date 2025-11-19

  # nightly from Airflow (templated date), raw and features on S3
  featurepipe run --execution-date '{{ ds }}' \\
      --raw 's3://raw-bucket/daily/user_events_{ds_nodash}.csv' \\
      --features s3://feature-bucket/features/daily_user_events

  # against MinIO, without writing anything
  featurepipe run --endpoint-url http://localhost:9000 --dry-run ...

Exit codes: 0 success or already complete, 1 internal error, 2 usage/config error,
3 data invalid or malformed CSV, 4 raw input not found, 5 storage/network failure,
75 another run is writing this version (retry later), 99 skipped on purpose
(--skip-if-missing), 130/143 stopped by SIGINT/SIGTERM.";

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The date this run is for: 2025-11-19 (midnight in the pipeline zone),
    /// 2025-11-19T00:00:00+00:00 (converted), or 2025-11-19T00:00:00 (naive = UTC)
    /// [default: now, with a warning: a re-run then writes another version]
    #[arg(long, env = "DP_EXECUTION_DATE", value_name = "WHEN")]
    pub execution_date: Option<String>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// A run with its settings resolved (or the reason they could not be), ready to log and
/// execute.
pub struct Prepared {
    request: RunRequest,
    log_format: LogFormat,
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
        match end.error {
            Some(e) => Err(e),
            None => Ok(outcome::finished(end.outcome.reason, end.note)),
        }
    }
}

//! Command-line flags as typed by the user (each also an environment variable).
//! `config::resolve` turns them into validated [`crate::context::RunSettings`].

use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use clap::builder::FalseyValueParser;
use clap::{Args, Parser, Subcommand};

use crate::dp_log::LogFormat;
use crate::storage::s3::{ChecksumMode, S3Options};

const ABOUT: &str = "Turns a raw CSV drop (S3, MinIO or a local folder) into a versioned, \
validated, documented feature set.";

const RUN_AFTER_HELP: &str = "\
Examples:
  # the built-in default pipeline on the bundled fixture, into ./out
  featurepipe run --execution-date 2025-11-19

  # nightly from Airflow (templated date), raw and features on S3
  featurepipe run --execution-date '{{ ts }}' \\
      --raw 's3://raw-bucket/daily/user_events_{ds_nodash}.csv' \\
      --features s3://feature-bucket/features/daily_user_events

  # against MinIO, without writing anything
  featurepipe run --endpoint-url http://localhost:9000 --dry-run ...

Exit codes: 0 success or already complete, 1 internal error, 2 usage/config error,
3 data invalid or malformed CSV, 4 raw input not found, 5 storage/network failure,
75 another run is writing this version (retry later), 99 skipped on purpose
(--skip-if-missing), 130/143 stopped by SIGINT/SIGTERM.";

#[derive(Debug, Parser)]
#[command(name = "featurepipe", version, about = ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline once: extract, validate, build, store, summarize.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Run the pipeline for many past dates, one run per date, and print a table.
    #[command(after_help = BACKFILL_AFTER_HELP)]
    Backfill(BackfillArgs),
    /// Check a pipeline file and print the pipeline it describes (exit 2 names the line).
    #[command(after_help = CHECK_CONFIG_AFTER_HELP)]
    CheckConfig(CheckConfigArgs),
}

const CHECK_CONFIG_AFTER_HELP: &str = "\
Checks everything a run would reject before reading data: unknown keys and rule kinds, wrong
types, impossible thresholds, regexes that do not compile, bad strftime formats, duplicate
output columns, and (when [source] columns lists the raw header) rules or features naming a
column that cannot exist. Prints the resolved pipeline as JSON: source format, every rule
with its threshold, severity and mostly, and the output columns with their types.

Examples:
  featurepipe check-config fixtures/pipelines/strict_daily_user_events.toml
  featurepipe check-config fixtures/pipelines/daily_user_features.toml";

/// `featurepipe check-config FILE`.
#[derive(Debug, Clone, Args)]
pub struct CheckConfigArgs {
    /// The pipeline file (TOML), as given to --config
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `featurepipe backfill`: which dates, how, and how to report.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// First date, inclusive (YYYY-MM-DD, a day in the pipeline zone)
    #[arg(long, value_name = "DATE", value_parser = parse_date,
          requires = "end", conflicts_with = "dates", required_unless_present = "dates")]
    pub start: Option<NaiveDate>,

    /// Last date, inclusive
    #[arg(long, value_name = "DATE", value_parser = parse_date, requires = "start")]
    pub end: Option<NaiveDate>,

    /// Exactly these dates instead of a range: 2025-11-03,2025-11-17
    #[arg(long, value_name = "DATES", value_parser = parse_date, value_delimiter = ',')]
    pub dates: Vec<NaiveDate>,

    /// Time of day of each execution date, in the pipeline zone
    #[arg(long, value_name = "HH:MM", value_parser = parse_time_of_day, default_value = "00:00")]
    pub at: NaiveTime,

    /// Dates run at once (each run streams with bounded memory, about 40 MiB)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=32))]
    pub parallel: u16,

    /// Which dates to run: none skips complete versions; failed runs only dates whose
    /// last run failed or left an incomplete version; all rewrites every date
    #[arg(long, value_enum, default_value_t = Reprocess::None, conflicts_with = "force")]
    pub reprocess: Reprocess,

    /// Stop starting new dates after the first failure (default: go on)
    #[arg(long)]
    pub fail_fast: bool,

    /// How the final report is printed on stdout
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
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

/// `--output` of `backfill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

const BACKFILL_AFTER_HELP: &str = "\
Examples:
  # one week, two dates at a time, into the default local folder
  featurepipe backfill --start 2025-11-13 --end 2025-11-19 --parallel 2

  # only what failed last time, on S3, report as JSON
  featurepipe backfill --start 2025-11-01 --end 2025-11-30 --reprocess failed --output json \\
      --raw 's3://raw-bucket/daily/user_events_{ds_nodash}.csv' \\
      --features s3://feature-bucket/features/daily_user_events

Each date is a full run (its own run_id, summarize_run line and run record). Exit code:
0 if every date succeeded or was skipped; otherwise the most severe code among the dates,
in this order: 130/143 interrupted, 1 internal, 5 storage, 75 busy, 2 usage, 3 data
invalid, 4 raw input not found.";

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The date this run is for: 2025-11-19 (midnight in the pipeline zone),
    /// 2025-11-19T00:00:00+00:00 (converted), or 2025-11-19T00:00:00 (naive = UTC)
    /// [default: now]
    #[arg(long, env = "DP_EXECUTION_DATE", value_name = "WHEN")]
    pub execution_date: Option<String>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Everything a run needs besides its execution date; `backfill` shares it with `run`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Raw CSV to read: s3://bucket/key, file:///abs/path or a path. Templates {ds},
    /// {ds_nodash}, {ts_nodash} render from the execution date
    /// [default: fixtures/user_events_{ds_nodash}.csv]
    #[arg(long, env = "DP_RAW_PATH", value_name = "URI")]
    pub raw: Option<String>,

    /// Prefix that versions are written under (<prefix>/v_YYYYMMDDTHHMMSS/)
    /// [default: out/features/daily_user_events]
    #[arg(long, env = "DP_FEATURE_PATH", value_name = "URI")]
    pub features: Option<String>,

    /// Pipeline name, as logged in pipeline= and written to schema/metadata
    /// [default: daily_user_events]
    #[arg(long, env = "DP_PIPELINE_NAME", value_name = "NAME")]
    pub pipeline: Option<String>,

    /// Pipeline time zone (IANA name) for versions, templates and timestamps
    /// [default: Asia/Seoul]
    #[arg(long, env = "DP_TIMEZONE", value_name = "TZ")]
    pub timezone: Option<String>,

    /// Pipeline file (TOML): name, timezone, [source] (path, delimiter, null_tokens),
    /// [output] prefix, [[rules]] (table, column and history rules) and [features] (row or
    /// entity grain). Examples in fixtures/pipelines/; check one with: featurepipe
    /// check-config FILE
    #[arg(long, env = "DP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// S3 endpoint for MinIO or another S3-compatible server (implies path-style).
    /// AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 work too
    #[arg(long, env = "DP_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Do everything except write under the feature prefix; print the plan on stdout
    #[arg(long, env = "DP_DRY_RUN", value_parser = FalseyValueParser::new())]
    pub dry_run: bool,

    /// Rewrite the version even if it is already complete
    #[arg(long, env = "DP_FORCE", value_parser = FalseyValueParser::new())]
    pub force: bool,

    /// If the raw input does not exist, exit 99 (Airflow's skip code) instead of 4
    #[arg(long, env = "DP_SKIP_IF_MISSING", value_parser = FalseyValueParser::new())]
    pub skip_if_missing: bool,

    /// Log line format on stderr
    #[arg(long, env = "DP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds a run's lease on its version lasts without renewal. A second run of the
    /// same version exits 75 while the lease is live; a killed holder is taken over
    /// once it expires (renewed every third of this while the run works)
    #[arg(long, env = "DP_LEASE_TTL", value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub lease_ttl: Duration,

    #[command(flatten)]
    pub s3: S3Args,
}

/// S3 connection tuning; the defaults suit AWS and a local MinIO alike.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "S3 connection")]
pub struct S3Args {
    /// Seconds to wait for a TCP/TLS connection
    #[arg(long, env = "DP_S3_CONNECT_TIMEOUT", value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub s3_connect_timeout: Duration,

    /// Seconds without a byte from the server before a read fails
    #[arg(long, env = "DP_S3_READ_TIMEOUT", value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub s3_read_timeout: Duration,

    /// Seconds one attempt of a request may take (a part upload, a HEAD)
    #[arg(long, env = "DP_S3_ATTEMPT_TIMEOUT", value_name = "SECS", default_value = "120", value_parser = parse_secs)]
    pub s3_attempt_timeout: Duration,

    /// Seconds a request may take across all its retries
    #[arg(long, env = "DP_S3_OPERATION_TIMEOUT", value_name = "SECS", default_value = "600", value_parser = parse_secs)]
    pub s3_operation_timeout: Duration,

    /// Attempts per request, the first included (standard retry mode)
    #[arg(long, env = "DP_S3_MAX_ATTEMPTS", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub s3_max_attempts: u32,

    /// Seconds of the first retry back-off (it grows exponentially, with jitter)
    #[arg(long, env = "DP_S3_INITIAL_BACKOFF", value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub s3_initial_backoff: Duration,

    /// When to send request checksums; when-required fixes older MinIO / moto
    /// (AWS_REQUEST_CHECKSUM_CALCULATION=when_required is honoured as well)
    #[arg(long, env = "DP_S3_CHECKSUM", value_enum, default_value_t = ChecksumMode::WhenSupported)]
    pub s3_checksum: ChecksumMode,
}

impl S3Args {
    pub fn options(&self, endpoint_url: Option<String>) -> S3Options {
        S3Options {
            endpoint_url,
            connect_timeout: self.s3_connect_timeout,
            read_timeout: self.s3_read_timeout,
            attempt_timeout: self.s3_attempt_timeout,
            operation_timeout: self.s3_operation_timeout,
            max_attempts: self.s3_max_attempts,
            initial_backoff: self.s3_initial_backoff,
            checksum: self.s3_checksum,
        }
    }
}

/// Seconds as a positive decimal (`0.5`, `30`).
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{s:?} must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A calendar day, `YYYY-MM-DD`.
fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date like 2025-11-19"))
}

/// A time of day, `HH:MM` (24 h).
fn parse_time_of_day(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("{s:?} is not a time of day like 00:00 or 06:30"))
}

//! Flags shared by the commands that run a pipeline (`run`, `backfill`), each also an
//! environment variable, and how they become [`Flags`] with their origins: clap tells
//! whether a value came from the command line or from its `DP_*` variable.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use clap::builder::FalseyValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};

use crate::config::{Flags, Origin, Setting};
use crate::log::LogFormat;
use crate::storage::s3::{ChecksumMode, S3Options};

/// Everything a run needs besides its execution date; `backfill` shares it with `run`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Raw CSV to read: s3://bucket/key, file:///abs/path or a path; or many files read as
    /// one: a glob (s3://bucket/raw/{ds}/part-*.csv.gz; * and ? within a folder name) or
    /// a folder ending in /. Templates {ds}, {ds_nodash}, {ts_nodash} render from the
    /// execution date
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

    /// Files each version holds: csv, parquet, or csv,parquet (feature.parquet: typed
    /// columns, timestamps as TIMESTAMP, for Feast and training jobs)
    /// [default: csv, or the pipeline file's [output] formats]
    #[arg(long, env = "DP_OUTPUT_FORMATS", value_name = "LIST")]
    pub output_formats: Option<String>,

    /// Do everything except write under the feature prefix; print the plan on stdout
    #[arg(long, env = "DP_DRY_RUN", value_parser = FalseyValueParser::new())]
    pub dry_run: bool,

    /// Rewrite the version even if it is already complete
    #[arg(long, env = "DP_FORCE", value_parser = FalseyValueParser::new())]
    pub force: bool,

    /// A many-file --raw (a glob or a folder ending in /) needs at least this many parts,
    /// else the drop is not there yet (exit 4, or 99 with --skip-if-missing)
    /// [default: 1, or the pipeline file's [source] min_files]
    #[arg(long, env = "DP_MIN_FILES", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub min_files: Option<u64>,

    /// The upstream writer's completion marker (e.g. _SUCCESS), looked for beside the raw
    /// files: while it is missing the drop is not there yet (exit 4, or 99 with
    /// --skip-if-missing) [default: none, or the pipeline file's [source] require_marker]
    #[arg(long, env = "DP_REQUIRE_MARKER", value_name = "NAME")]
    pub require_marker: Option<String>,

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
    #[arg(long, env = "DP_S3_CHECKSUM", value_enum, default_value_t = ChecksumArg::WhenSupported)]
    pub s3_checksum: ChecksumArg,
}

/// `--s3-checksum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChecksumArg {
    /// The SDK default: checksum every request that supports it.
    WhenSupported,
    /// Only where S3 requires one; needed by older MinIO and moto (aws-chunked bodies).
    WhenRequired,
}

impl S3Args {
    /// The S3 connection settings (the endpoint comes from `--endpoint-url`).
    fn options(&self) -> S3Options {
        S3Options {
            endpoint_url: None,
            connect_timeout: self.s3_connect_timeout,
            read_timeout: self.s3_read_timeout,
            attempt_timeout: self.s3_attempt_timeout,
            operation_timeout: self.s3_operation_timeout,
            max_attempts: self.s3_max_attempts,
            initial_backoff: self.s3_initial_backoff,
            checksum: match self.s3_checksum {
                ChecksumArg::WhenSupported => ChecksumMode::WhenSupported,
                ChecksumArg::WhenRequired => ChecksumMode::WhenRequired,
            },
        }
    }
}

/// Where each value of a parsed subcommand came from.
pub struct Sources<'a> {
    matches: &'a ArgMatches,
    command: &'a clap::Command,
}

impl<'a> Sources<'a> {
    /// `matches` of `command` (a subcommand's own matches and definition).
    pub fn new(matches: &'a ArgMatches, command: &'a clap::Command) -> Self {
        Sources { matches, command }
    }

    /// The origin of the value of the argument `id`: its flag, its variable, or the
    /// built-in default.
    pub fn origin(&self, id: &'static str) -> Origin {
        let arg = self.command.get_arguments().find(|a| a.get_id() == id);
        match (self.matches.value_source(id), arg) {
            (Some(ValueSource::EnvVariable), Some(arg)) => Origin::Env(
                arg.get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_else(|| id.to_string()),
            ),
            (Some(ValueSource::CommandLine), Some(arg)) => Origin::Flag(match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => id.to_string(),
            }),
            _ => Origin::Default(id),
        }
    }

    /// `value` with the origin of argument `id`.
    pub fn setting<T>(&self, id: &'static str, value: Option<T>) -> Option<Setting<T>> {
        value.map(|v| Setting::new(v, self.origin(id)))
    }
}

impl CommonArgs {
    /// The flags as settings with their origins.
    pub fn flags(&self, sources: &Sources<'_>) -> Flags {
        Flags {
            raw: sources.setting("raw", self.raw.clone()),
            features: sources.setting("features", self.features.clone()),
            pipeline: sources.setting("pipeline", self.pipeline.clone()),
            timezone: sources.setting("timezone", self.timezone.clone()),
            config: sources.setting("config", self.config.clone()),
            endpoint_url: sources.setting("endpoint_url", self.endpoint_url.clone()),
            output_formats: sources.setting("output_formats", self.output_formats.clone()),
            min_files: sources.setting("min_files", self.min_files),
            require_marker: sources.setting("require_marker", self.require_marker.clone()),
            dry_run: self.dry_run,
            force: self.force,
            skip_if_missing: self.skip_if_missing,
            lease_ttl: self.lease_ttl,
            s3: self.s3.options(),
        }
    }
}

/// Seconds as a positive decimal (`0.5`, `30`).
pub fn parse_secs(s: &str) -> Result<Duration, String> {
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
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date like 2025-11-19"))
}

/// A time of day, `HH:MM` (24 h).
pub fn parse_time_of_day(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("{s:?} is not a time of day like 00:00 or 06:30"))
}

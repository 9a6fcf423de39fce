//! Flags shared by the commands that run a pipeline (`run`, `backfill`), each also an
//! environment variable, and how they become [`Flags`] with their origins: clap tells
//! whether a value came from the command line or from its `DP_*` variable.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};

use crate::config::{Flags, Origin, Setting};
use crate::log::LogFormat;
use crate::observe::progress::ProgressSettings;
use crate::observe::{lineage, metrics, Observe};
use crate::storage::s3::{ChecksumMode, S3Options};
use crate::values::size::parse_bytes;

/// Everything a run needs besides its execution date; `backfill` shares it with `run`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Raw CSV to read: s3://bucket/key, file:///abs/path or a path; or many files read as
    /// one: a glob (s3://bucket/raw/{ds}/part-*.csv.gz; * and ? within a folder name) or
    /// a folder ending in /. Templates {ds}, {ds_nodash}, {ts_nodash} render from the
    /// execution date. Required: here, in DP_RAW_PATH or as the pipeline file's [source]
    /// path
    #[arg(long, env = "DP_RAW_PATH", value_name = "URI")]
    pub raw: Option<String>,

    // Where the versions are and how to reach them (`status` takes these too).
    #[command(flatten)]
    pub prefix: PrefixArgs,

    /// Entity grain: the most memory the groups may take (512MiB, 4GiB; K/M/G count in
    /// 1024s). Past it the run stops with exit 3, naming the keys seen
    /// [default: 4GiB, or [features] memory_budget in the pipeline file]
    #[arg(long, env = "DP_MEMORY_BUDGET", value_name = "SIZE")]
    pub memory_budget: Option<String>,

    /// Files each version holds: csv, parquet, or csv,parquet (feature.parquet: typed
    /// columns, timestamps as TIMESTAMP, for Feast and training jobs)
    /// [default: csv, or the pipeline file's [output] formats]
    #[arg(long, env = "DP_OUTPUT_FORMATS", value_name = "LIST")]
    pub output_formats: Option<String>,

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

    /// Do everything except write under the feature prefix; print the plan on stdout
    #[arg(long, env = "DP_DRY_RUN", value_parser = BoolValue)]
    pub dry_run: bool,

    /// Rewrite the version even if it is already complete
    #[arg(long, env = "DP_FORCE", value_parser = BoolValue)]
    pub force: bool,

    /// If the raw input does not exist, exit 99 (Airflow's skip code) instead of 4
    #[arg(long, env = "DP_SKIP_IF_MISSING", value_parser = BoolValue)]
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

    #[command(flatten)]
    pub observe: ObserveArgs,
}

/// The feature prefix, the pipeline file and the S3 endpoint: what every command that
/// reads a prefix needs (`run`, `backfill`, `status`).
#[derive(Debug, Clone, Args)]
pub struct PrefixArgs {
    /// Prefix that versions are written under (<prefix>/v_YYYYMMDDTHHMMSS/). Required:
    /// here, in DP_FEATURE_PATH or as the pipeline file's [output] prefix
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
}

/// What a run shows besides its log lines: progress, metrics, lineage.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Observability")]
pub struct ObserveArgs {
    /// Seconds between `[DP] step=progress` lines while the raw object is read (bytes,
    /// rows, percent); 0 turns them off. On a terminal a progress bar on stderr replaces
    /// them, unless NO_COLOR is set or TERM=dumb
    #[arg(long, env = "DP_PROGRESS_INTERVAL", value_name = "SECS", default_value = "30",
          value_parser = parse_interval)]
    pub progress_interval: Duration,

    /// Write the run's Prometheus metrics to DIR/featurepipe_<pipeline>.prom for
    /// node_exporter's textfile collector (atomically; metrics the run did not measure
    /// keep their previous values)
    #[arg(long, env = "DP_METRICS_TEXTFILE", value_name = "DIR")]
    pub metrics_textfile: Option<PathBuf>,

    /// Push the run's Prometheus metrics to this Pushgateway (POST to job="featurepipe",
    /// pipeline="<name>": a failed run keeps the last success time)
    #[arg(long, env = "DP_METRICS_PUSHGATEWAY", value_name = "URL")]
    pub metrics_pushgateway: Option<String>,

    /// Seconds each push or lineage event may take, connection included; a failure is a
    /// warning and never changes the exit code
    #[arg(long, env = "DP_OBSERVE_TIMEOUT", value_name = "SECS", default_value = "5",
          value_parser = parse_secs)]
    pub observe_timeout: Duration,

    /// Send OpenLineage events (START, then COMPLETE, FAIL or ABORT) to this server
    /// (HTTP transport: POST <URL>/<endpoint>; OPENLINEAGE_API_KEY is sent as a bearer
    /// token). Unset: OPENLINEAGE_URL, the OpenLineage clients' own variable
    #[arg(long, env = "DP_OPENLINEAGE_URL", value_name = "URL")]
    pub openlineage_url: Option<String>,

    /// Path of the OpenLineage HTTP endpoint after the URL. Unset: OPENLINEAGE_ENDPOINT,
    /// else api/v1/lineage
    #[arg(long, env = "DP_OPENLINEAGE_ENDPOINT", value_name = "PATH")]
    pub openlineage_endpoint: Option<String>,

    /// Append OpenLineage events to this file, one JSON object per line (file transport)
    #[arg(long, env = "DP_LINEAGE_FILE", value_name = "FILE")]
    pub lineage_file: Option<PathBuf>,

    /// OpenLineage job namespace (the job name is the pipeline name). Unset:
    /// OPENLINEAGE_NAMESPACE, else featurepipe
    #[arg(long, env = "DP_OPENLINEAGE_NAMESPACE", value_name = "NAME")]
    pub openlineage_namespace: Option<String>,

    /// The parent run, namespace/name/run_id (Airflow's lineage_parent_id macro). Unset:
    /// OPENLINEAGE_PARENT_ID
    #[arg(long, env = "DP_OPENLINEAGE_PARENT_ID", value_name = "ID")]
    pub openlineage_parent_id: Option<String>,
}

impl ObserveArgs {
    /// The settings every run of this process shares. With JSON logs every stderr line
    /// is JSON, so there is no bar (the progress lines are logged instead).
    pub fn observe(&self, log_format: LogFormat) -> Observe {
        // The OpenLineage clients' switch: OPENLINEAGE_DISABLED=true sends nothing.
        let lineage_off = std::env::var("OPENLINEAGE_DISABLED")
            .is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let interval = (!self.progress_interval.is_zero()).then_some(self.progress_interval);
        Observe {
            progress: ProgressSettings::detect(interval, log_format == LogFormat::Json),
            metrics: metrics::Sinks {
                textfile_dir: self.metrics_textfile.clone(),
                pushgateway: self.metrics_pushgateway.clone(),
            },
            lineage: lineage::LineageConfig {
                url: or_standard(&self.openlineage_url, "OPENLINEAGE_URL").filter(|_| !lineage_off),
                endpoint: or_standard(&self.openlineage_endpoint, "OPENLINEAGE_ENDPOINT")
                    .unwrap_or_else(|| lineage::DEFAULT_ENDPOINT.to_string()),
                api_key: or_standard(&None, "OPENLINEAGE_API_KEY"),
                file: self.lineage_file.clone().filter(|_| !lineage_off),
                namespace: or_standard(&self.openlineage_namespace, "OPENLINEAGE_NAMESPACE")
                    .unwrap_or_else(|| lineage::DEFAULT_NAMESPACE.to_string()),
                parent_id: or_standard(&self.openlineage_parent_id, "OPENLINEAGE_PARENT_ID"),
            },
            timeout: self.observe_timeout,
        }
    }
}

/// A flag's value (or its `DP_*` variable's), else the OpenLineage clients' standard
/// variable `standard`; empty counts as unset.
fn or_standard(given: &Option<String>, standard: &str) -> Option<String> {
    given
        .clone()
        .or_else(|| std::env::var(standard).ok())
        .filter(|v| !v.trim().is_empty())
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

    /// Bytes per byte-range GET when reading the raw object (plain bytes, or with a KiB,
    /// MiB or GiB suffix); an object no bigger is read by one GET. Reading holds at most
    /// this times --s3-read-concurrency in memory; 8MiB suits real S3 better where
    /// memory allows
    #[arg(long, env = "DP_S3_READ_PART_SIZE", value_name = "BYTES", default_value = "2MiB", value_parser = parse_part_size)]
    pub s3_read_part_size: u64,

    /// Byte-range GETs in flight at once when reading the raw object (1: one GET
    /// stream); S3 serves each connection at about 85-100 MB/s, more only over more
    /// connections
    #[arg(long, env = "DP_S3_READ_CONCURRENCY", value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub s3_read_concurrency: u32,
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
    pub fn options(&self) -> S3Options {
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
            read_part_size: self.s3_read_part_size,
            read_concurrency: self.s3_read_concurrency as usize,
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
            memory_budget: sources.setting("memory_budget", self.memory_budget.clone()),
            output_formats: sources.setting("output_formats", self.output_formats.clone()),
            min_files: sources.setting("min_files", self.min_files),
            require_marker: sources.setting("require_marker", self.require_marker.clone()),
            dry_run: self.dry_run,
            force: self.force,
            skip_if_missing: self.skip_if_missing,
            lease_ttl: self.lease_ttl,
            s3: self.s3.options(),
            ..self.prefix.flags(sources)
        }
    }
}

impl PrefixArgs {
    /// These flags as settings with their origins; nothing else given (no raw input, no
    /// run options, default S3 tuning).
    pub fn flags(&self, sources: &Sources<'_>) -> Flags {
        Flags {
            features: sources.setting("features", self.features.clone()),
            pipeline: sources.setting("pipeline", self.pipeline.clone()),
            timezone: sources.setting("timezone", self.timezone.clone()),
            config: sources.setting("config", self.config.clone()),
            endpoint_url: sources.setting("endpoint_url", self.endpoint_url.clone()),
            ..Flags::default()
        }
    }
}

/// How every boolean flag reads its `DP_*` variable: exactly true/false, 1/0, yes/no or
/// on/off, in any case (an empty value is the same as an unset variable). Anything else is
/// a usage error naming the variable and its value: `DP_FORCE=flase` must not mean "force".
#[derive(Debug, Clone, Copy, Default)]
pub struct BoolValue;

/// The words [`BoolValue`] accepts; `None` for anything else.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

impl TypedValueParser for BoolValue {
    type Value = bool;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<bool, clap::Error> {
        let text = value.to_string_lossy();
        parse_bool(&text).ok_or_else(|| {
            // A boolean flag takes no value on the command line, so a value that is not
            // a boolean came from its variable.
            let name = arg
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
                .or_else(|| arg.and_then(|a| a.get_long()).map(|l| format!("--{l}")))
                .unwrap_or_else(|| "a boolean setting".into());
            // Raw messages are printed as given: end the line as clap's own do.
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("{}\n", bad_bool(&name, &text)),
            )
        })
    }
}

/// The sentence for a boolean variable set to something else.
pub fn bad_bool(name: &str, value: &str) -> String {
    format!(
        "{name}={:?} is not a boolean: use true or false, 1 or 0, yes or no, on or off (any case)",
        crate::values::shorten(value)
    )
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

/// A GET range's size ([`parse_bytes`]'s grammar), from 4 KiB to 4 GiB (a range needs no
/// minimum; tiny ones only add requests).
pub fn parse_part_size(s: &str) -> Result<u64, String> {
    let bytes = parse_bytes(s)?;
    if !(4 << 10..=4 << 30).contains(&bytes) {
        return Err(format!("{s:?} must be from 4KiB to 4GiB"));
    }
    Ok(bytes)
}

/// Seconds as a decimal from 0 (off) to 86400.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    if s.trim().parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_secs(s).map_err(|e| format!("{e} (or 0 for none)"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_exactly_eight_words_in_any_case() {
        for t in ["true", "TRUE", "1", "yes", "Yes", "on", "ON", " true "] {
            assert_eq!(parse_bool(t), Some(true), "{t:?}");
        }
        for f in ["false", "False", "0", "no", "NO", "off", "Off", ""] {
            assert_eq!(parse_bool(f), Some(false), "{f:?}");
        }
        for bad in ["flase", "y", "n", "t", "f", "2", "-1", "enable", "truee"] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
        let m = bad_bool("DP_FORCE", "flase");
        assert!(m.starts_with("DP_FORCE=\"flase\" is not a boolean"), "{m}");
    }

    #[test]
    fn part_sizes_take_binary_suffixes() {
        assert_eq!(parse_part_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_part_size(" 512kib "), Ok(512 << 10));
        assert_eq!(parse_part_size("1G"), Ok(1 << 30));
        assert_eq!(parse_part_size("65536"), Ok(65536));
        for bad in [
            "",
            "MiB",
            "8 MB",
            "-1",
            "1.5MiB",
            "1KiB",
            "5GiB",
            "99999999999999999999",
        ] {
            assert!(parse_part_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_read_flags_default_to_the_s3_options_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            s3: S3Args,
        }
        let opts = Cli::parse_from(["featurepipe"]).s3.options();
        let defaults = S3Options::default();
        assert_eq!(opts.read_part_size, defaults.read_part_size);
        assert_eq!(opts.read_concurrency, defaults.read_concurrency);
    }
}

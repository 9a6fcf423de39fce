//! One `[DP]` line: the contract Loki and Grafana read (docs/logs.md).
//!
//! Every key a `[DP]` line can carry is spelled once in [`keys`]; every line starts
//! `pipeline= step= status= run_id=`; values are logfmt-quoted when needed and redacted,
//! or rendered as one JSON object with `--log-format json`.

use std::fmt::Write as _;

use tracing::Level;

use super::redact::redact;
use super::DP_TARGET;

/// Every `[DP]` key, spelled once.
pub mod keys {
    pub const PIPELINE: &str = "pipeline";
    pub const STEP: &str = "step";
    pub const STATUS: &str = "status";
    pub const RUN_ID: &str = "run_id";
    pub const EXECUTION_DATE: &str = "execution_date";
    pub const FEATURE_VERSION: &str = "feature_version";
    pub const RAW_PATH: &str = "raw_path";
    pub const FEATURE_PREFIX: &str = "feature_prefix";
    pub const SIZE_BYTES: &str = "size_bytes";
    pub const ETAG: &str = "etag";
    pub const LAST_MODIFIED: &str = "last_modified";
    /// A many-file raw input: how many parts it has.
    pub const RAW_FILES: &str = "raw_files";
    pub const ROWS: &str = "rows";
    pub const TOTAL_CELLS: &str = "total_cells";
    pub const NULL_COUNT: &str = "null_count";
    pub const NULL_RATE: &str = "null_rate";
    pub const BLANK_LINES: &str = "blank_lines";
    pub const SHORT_ROWS: &str = "short_rows";
    pub const LONG_ROWS: &str = "long_rows";
    pub const VALID: &str = "valid";
    pub const FAILED_RULES: &str = "failed_rules";
    pub const WARNINGS: &str = "warnings";
    // one `step=validate_data` line per failed rule
    pub const RULE: &str = "rule";
    pub const SEVERITY: &str = "severity";
    /// The column(s) of a column rule or `unique` (empty for table rules).
    pub const COLUMN: &str = "column";
    pub const THRESHOLD: &str = "threshold";
    pub const OBSERVED: &str = "observed";
    pub const FEATURE_ROWS: &str = "feature_rows";
    pub const COLUMNS: &str = "columns";
    /// `row` or `entity`.
    pub const GRAIN: &str = "grain";
    pub const STORED_ROWS: &str = "stored_rows";
    pub const LATEST_MOVED: &str = "latest_moved";
    pub const DRY_RUN: &str = "dry_run";
    pub const REASON: &str = "reason";
    pub const DURATION_MS: &str = "duration_ms";
    // validate_data and build_features share one pass over the raw object
    /// The pass's wall time.
    pub const PASS_MS: &str = "pass_ms";
    /// CPU time of the scanner thread (CSV parsing, counting, rule checks, feature rows).
    pub const SCAN_CPU_MS: &str = "scan_cpu_ms";
    /// CPU time of the feature thread (formatting, profiling, hashing `feature.csv`).
    pub const WRITE_CPU_MS: &str = "write_cpu_ms";
    pub const FAILED_STEP: &str = "failed_step";
    pub const ERROR: &str = "error";
    pub const ERROR_KIND: &str = "error_kind";
    pub const EXIT_CODE: &str = "exit_code";
    pub const RUN_RECORD: &str = "run_record";
    // `step=backfill_summary`
    pub const START_DATE: &str = "start_date";
    pub const END_DATE: &str = "end_date";
    pub const DATES: &str = "dates";
    pub const SUCCEEDED: &str = "succeeded";
    pub const SKIPPED: &str = "skipped";
    pub const FAILED: &str = "failed";
    pub const NOT_RUN: &str = "not_run";
    pub const PARALLEL: &str = "parallel";
    pub const REPROCESS: &str = "reprocess";
    // `step=progress` (a run's pass, or a backfill's dates), every --progress-interval
    /// Bytes of the raw object read so far (compressed bytes for `.gz` / `.zst`).
    pub const BYTES_READ: &str = "bytes_read";
    /// Done of total, 0-100 with one decimal.
    pub const PERCENT: &str = "percent";
    /// Megabytes (10^6 bytes) read per second since the pass started.
    pub const MB_PER_S: &str = "mb_per_s";
    pub const ELAPSED_MS: &str = "elapsed_ms";
    /// A backfill's dates that have ended (succeeded, skipped or failed).
    pub const DATES_DONE: &str = "dates_done";
}

/// The stage names as they appear in `step=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Turning flags, environment and pipeline file into settings (before any stage).
    Configure,
    ExtractRawData,
    ValidateData,
    BuildFeatures,
    StoreFeatures,
    SummarizeRun,
    /// The one line a `backfill` logs at its end, after every date's `summarize_run`.
    BackfillSummary,
    /// A periodic line while a run's pass (or a backfill) is under way; always
    /// `status=started`.
    Progress,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Configure => "configure",
            Step::ExtractRawData => "extract_raw_data",
            Step::ValidateData => "validate_data",
            Step::BuildFeatures => "build_features",
            Step::StoreFeatures => "store_features",
            Step::SummarizeRun => "summarize_run",
            Step::BackfillSummary => "backfill_summary",
            Step::Progress => "progress",
        }
    }
}

/// `status=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Started,
    Success,
    Failed,
    Skipped,
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Started => "started",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// A value on a `[DP]` line.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    /// A rate, printed with 4 decimals (the log contract: `null_rate` has 4 decimals).
    Rate(f64),
    /// A number with a fixed number of decimals (`percent=42.9`).
    Fixed(f64, u8),
    /// Not known (e.g. `rows` when the run failed before counting).
    Absent,
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Int(n.into())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Absent, Into::into)
    }
}

/// One `[DP]` line under construction.
#[derive(Debug, Clone)]
pub struct DpLine {
    status: Status,
    /// Logged at WARN whatever the status (a failed `warn` rule: the step goes on).
    warning: bool,
    fields: Vec<(&'static str, Value)>,
}

impl DpLine {
    /// Starts a line with the four keys every line has, in the contract's order.
    pub fn new(pipeline: &str, step: Step, status: Status, run_id: &str) -> Self {
        DpLine {
            status,
            warning: false,
            fields: vec![
                (keys::PIPELINE, pipeline.into()),
                (keys::STEP, step.as_str().into()),
                (keys::STATUS, status.as_str().into()),
                (keys::RUN_ID, run_id.into()),
            ],
        }
    }

    /// Adds `key=value`.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.fields.push((key, value.into()));
        self
    }

    /// Logs the line at WARN (a failed `warn` rule); otherwise a failed line is ERROR and
    /// every other INFO.
    pub fn at_warn(mut self) -> Self {
        self.warning = true;
        self
    }

    /// Adds a rate with 4 decimals.
    pub fn rate(self, key: &'static str, rate: Option<f64>) -> Self {
        self.with(key, rate.map_or(Value::Absent, Value::Rate))
    }

    /// Adds a number with `decimals` decimals.
    pub fn fixed(self, key: &'static str, value: Option<f64>, decimals: u8) -> Self {
        self.with(
            key,
            value.map_or(Value::Absent, |v| Value::Fixed(v, decimals)),
        )
    }

    /// The logfmt text after `[DP] `.
    pub fn logfmt(&self) -> String {
        let mut out = String::with_capacity(256);
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(k);
            out.push('=');
            match v {
                Value::Str(s) => push_logfmt_str(&mut out, &redact(s)),
                Value::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                Value::Bool(b) => {
                    let _ = write!(out, "{b}");
                }
                Value::Rate(r) => {
                    let _ = write!(out, "{r:.4}");
                }
                Value::Fixed(x, decimals) => {
                    let _ = write!(out, "{x:.*}", usize::from(*decimals));
                }
                Value::Absent => {}
            }
        }
        out
    }

    /// The same fields as one JSON object (absent values are `null`).
    pub fn json(&self) -> String {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.fields {
            let v = match v {
                Value::Str(s) => serde_json::Value::String(redact(s)),
                Value::Int(n) => (*n).into(),
                Value::Bool(b) => (*b).into(),
                Value::Rate(r) => serde_json::Number::from_f64((r * 1e4).round() / 1e4)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                Value::Fixed(x, decimals) => {
                    let scale = 10f64.powi(i32::from(*decimals));
                    serde_json::Number::from_f64((x * scale).round() / scale)
                        .map_or(serde_json::Value::Null, serde_json::Value::Number)
                }
                Value::Absent => serde_json::Value::Null,
            };
            map.insert((*k).to_string(), v);
        }
        serde_json::Value::Object(map).to_string()
    }

    /// Writes the line to the log (stderr).
    pub fn emit(self) {
        let logfmt = self.logfmt();
        let json = self.json();
        if self.status == Status::Failed {
            tracing::event!(target: DP_TARGET, Level::ERROR, logfmt = %logfmt, json = %json);
        } else if self.warning {
            tracing::event!(target: DP_TARGET, Level::WARN, logfmt = %logfmt, json = %json);
        } else {
            tracing::event!(target: DP_TARGET, Level::INFO, logfmt = %logfmt, json = %json);
        }
    }
}

fn push_logfmt_str(out: &mut String, s: &str) {
    let needs_quotes = s.is_empty()
        || s.chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control());
    if !needs_quotes {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_only_when_needed_and_keeps_key_order() {
        let line = DpLine::new("p", Step::ValidateData, Status::Failed, "r1")
            .with(keys::ROWS, 10u64)
            .rate(keys::NULL_RATE, Some(0.123456))
            .with(keys::ERROR, "bad \"x\" = y")
            .with(keys::FEATURE_VERSION, None::<String>);
        assert_eq!(
            line.logfmt(),
            r#"pipeline=p step=validate_data status=failed run_id=r1 rows=10 null_rate=0.1235 error="bad \"x\" = y" feature_version="#
        );
        let json: serde_json::Value = serde_json::from_str(&line.json()).unwrap();
        assert_eq!(json["null_rate"], 0.1235);
        assert_eq!(json["feature_version"], serde_json::Value::Null);
    }
}

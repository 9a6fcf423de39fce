//! The documents of a version: `schema.json`, `metadata.json` and the `_SUCCESS`
//! manifest, as written by `store_features` and read back by history, drift and the
//! versions commands. Field names and order are a contract (docs/layout.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::schema_diff::SchemaChanges;
use crate::config::spec::Severity;
use crate::error::{Error, Result};
use crate::values::digest::sha256_hex;

/// `schema.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Schema {
    pub feature_version: String,
    /// Column name -> type, in CSV column order.
    pub columns: serde_json::Map<String, serde_json::Value>,
    pub created_at: String,
    pub pipeline_name: String,
    /// `row` (one output row per raw row) or `entity` (one per key).
    pub grain: &'static str,
    /// The columns that identify an output row (entity grain: the group keys and the
    /// time bucket, unique together; row grain: the uncast pass-through columns).
    pub key_columns: Vec<String>,
    /// Entity grain: the raw columns grouped by, and the time bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<GroupBySchema>,
    /// `feature.parquet`, when the version has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parquet: Option<ParquetSchema>,
}

/// How `feature.parquet` is typed: each column's Parquet type (its columns are
/// `feature.csv`'s, plus `event_timestamp` when no column is a timestamp) and the column a
/// feature store reads as the event time.
#[derive(Debug, Clone, Serialize)]
pub struct ParquetSchema {
    pub file: &'static str,
    /// Column name -> Parquet type (`DOUBLE`, `INT64`, `STRING`, `BOOLEAN`,
    /// `TIMESTAMP(MICROS,UTC)`), in file order.
    pub columns: serde_json::Map<String, serde_json::Value>,
    pub timestamp_field: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupBySchema {
    pub columns: Vec<String>,
    pub time_bucket: Option<TimeBucketSchema>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeBucketSchema {
    pub column: String,
    pub every: &'static str,
    pub name: String,
}

/// Size and digest of one published file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub size_bytes: u64,
    pub sha256: String,
}

/// `metadata.json`: the original pipeline's keys first, then ours.
#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    pub source_raw_path: String,
    pub rows_raw: u64,
    pub rows_feature: u64,
    pub raw_null_rate: f64,
    pub raw_valid: bool,
    pub created_at: String,
    pub pipeline_name: String,
    pub feature_version: String,
    pub execution_date: String,
    pub run_id: String,
    pub raw_null_count: u64,
    pub raw_total_cells: u64,
    pub raw_blank_lines: u64,
    pub raw_short_rows: u64,
    pub raw_long_rows: u64,
    pub raw_had_bom: bool,
    pub raw_columns: Vec<String>,
    pub source: SourceInfo,
    pub outputs: BTreeMap<&'static str, FileDigest>,
    pub validation: Vec<RuleResult>,
    /// Entity grain: distinct keys (= `rows_feature`); absent for row grain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_groups: Option<u64>,
    /// Each output column's profile, in CSV order.
    pub profile: serde_json::Map<String, serde_json::Value>,
    /// Row count, null rate and numeric column means against the previous complete
    /// version.
    pub drift: Drift,
    /// Steps finished before `metadata.json` was written (so not `store_features`).
    /// validate_data and build_features overlap: both run over the one pass.
    pub timings_ms: serde_json::Map<String, serde_json::Value>,
    /// The one pass over the raw object: where its time went.
    pub pass: PassTimings,
    /// The pipeline that produced this version, as resolved.
    pub producer: Producer,
    pub tool: ToolInfo,
}

/// What produced a version (with `tool`): enough to tell whether two versions were made
/// the same way (`versions diff`), and to find the exact pipeline file again.
#[derive(Debug, Clone, Serialize)]
pub struct Producer {
    /// The pipeline file as given (`--config`), or null for the built-in pipeline.
    pub pipeline_file: Option<String>,
    /// SHA-256 of the pipeline file's bytes as the run read them.
    pub pipeline_file_sha256: Option<String>,
    /// SHA-256 of `spec`: equal exactly when the source format, rules and features were
    /// the same, whatever the file's comments or layout.
    pub spec_sha256: String,
    /// The resolved source format, rules and features (as `check-config` prints them).
    pub spec: serde_json::Value,
}

/// The pass's wall time and each of its threads' CPU time (`None` where the platform
/// cannot tell).
#[derive(Debug, Clone, Serialize)]
pub struct PassTimings {
    pub wall_ms: u64,
    /// The scanner thread: CSV parsing, counting, rule checks, feature rows or groups.
    pub scan_cpu_ms: Option<u64>,
    /// The feature thread: formatting, profiling and hashing `feature.csv`.
    pub write_cpu_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    pub size_bytes: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// `gzip` / `zstd` for a compressed raw input, else null.
    pub compression: Option<&'static str>,
    /// Bytes of CSV after decompression (equal to `size_bytes` for plain input).
    pub csv_bytes: u64,
    /// A many-file input: every part read, in order (absent for one file). `size_bytes`
    /// is then their total, `compression` theirs (`mixed` if they differ).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<SourceFile>>,
}

/// One part of a many-file raw input.
#[derive(Debug, Clone, Serialize)]
pub struct SourceFile {
    pub path: String,
    pub size_bytes: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The build that wrote a document: two builds of one version number can differ.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
    /// The git commit of the build ("unknown" when built without git).
    pub git_commit: &'static str,
}

impl ToolInfo {
    pub fn current() -> Self {
        ToolInfo {
            name: crate::build_info::NAME,
            version: crate::build_info::VERSION,
            git_commit: crate::build_info::GIT_COMMIT,
        }
    }
}

/// One rule's verdict, as stored under `validation` in `metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResult {
    pub name: &'static str,
    /// The column(s) a column rule or `unique` is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub threshold: serde_json::Value,
    pub observed: serde_json::Value,
    pub passed: bool,
    pub severity: Severity,
    /// For rules over values: the fraction that had to pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mostly: Option<f64>,
    /// For rules over values: the first failing lines (1-based; the header is line 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_lines: Option<Vec<u64>>,
    /// For rules over values (not null counts): up to 5 distinct failing values, in input
    /// order, each cut to 80 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_values: Option<Vec<String>>,
}

impl RuleResult {
    /// A failed `error` rule: the run must not publish.
    pub fn blocks(&self) -> bool {
        !self.passed && self.severity == Severity::Error
    }
}

/// `_SUCCESS`: the completion marker, also a manifest of what the version holds. A
/// version is complete only when this parses and every file it lists is there with the
/// listed size (`completeness`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccessManifest {
    pub feature_version: String,
    pub run_id: String,
    pub completed_at: String,
    pub files: BTreeMap<String, FileDigest>,
}

/// Pretty JSON as the original pipeline wrote it (2-space indent, non-ASCII kept), with a final newline.
pub fn to_pretty_json(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot serialise JSON: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// SHA-256 of a small document, for `outputs` and `_SUCCESS`.
pub fn digest(bytes: &[u8]) -> FileDigest {
    FileDigest {
        size_bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    }
}

/// This version against the previous complete one (`metadata.json` `drift`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// `None` for the first version of a prefix: nothing to compare with.
    pub previous_version: Option<String>,
    pub rows: Change,
    pub null_rate: Change,
    /// The mean of each numeric output column that has one now.
    pub column_means: BTreeMap<String, Change>,
    /// The raw header and the output columns against the previous version's (`None` for
    /// the first version).
    pub schema: Option<SchemaChanges>,
}

/// A figure now and in the previous version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub previous: Option<f64>,
    pub current: f64,
    /// `current - previous`.
    pub change: Option<f64>,
    /// `change / |previous|`, so that its sign is the change's (`None` when previous is 0
    /// or unknown): -100 to -50 is +50%, not -50%.
    pub relative: Option<f64>,
}

impl Change {
    pub fn new(previous: Option<f64>, current: f64) -> Self {
        let change = previous.map(|p| current - p);
        Change {
            previous,
            current,
            change,
            relative: previous
                .filter(|p| *p != 0.0)
                .zip(change)
                .map(|(p, c)| c / p.abs()),
        }
    }
}

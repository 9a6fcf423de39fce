//! `build_features`: the content of `schema.json` and `metadata.json`. The feature rows
//! themselves are computed inside the single pass (`row_features` / `group_by` on the
//! scanner thread, `feature_writer` on the feature thread).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::context::RunContext;
use crate::dp_log::{keys, DpLine, Step};
use crate::error::{Error, Result};
use crate::execution_date::now_iso;
use crate::history::Drift;
use crate::pipeline::Features;
use crate::profile::ColumnProfile;
use crate::stages::layout;
use crate::stages::validate_data::RuleResult;

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
#[derive(Debug, Clone, Serialize)]
pub struct FileDigest {
    pub size_bytes: u64,
    pub sha256: String,
}

/// `metadata.json`: the seed's keys first, then ours (DESIGN.md section 2).
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
    pub timings_ms: serde_json::Map<String, serde_json::Value>,
    pub tool: ToolInfo,
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
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

impl ToolInfo {
    pub fn current() -> Self {
        ToolInfo {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The documents of a version, ready to publish.
pub struct Built {
    /// Output column names, in CSV order.
    pub columns: Vec<String>,
    /// `row` or `entity`.
    pub grain: &'static str,
    pub schema_json: Vec<u8>,
    /// Completed by `store_features` with the timings known at write time.
    pub metadata: Metadata,
}

impl Built {
    pub fn log_fields(&self, line: DpLine) -> DpLine {
        line.with(keys::FEATURE_ROWS, self.metadata.rows_feature)
            .with(keys::COLUMNS, self.columns.join(","))
            .with(keys::GRAIN, self.grain)
    }
}

/// Pretty JSON as the seed wrote it (2-space indent, non-ASCII kept), with a final newline.
pub fn to_pretty_json(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot serialise JSON: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// SHA-256 of a small document, for `outputs` and `_SUCCESS`.
pub fn digest(bytes: &[u8]) -> FileDigest {
    use sha2::Digest as _;
    FileDigest {
        size_bytes: bytes.len() as u64,
        sha256: crate::scan::hex(&sha2::Sha256::digest(bytes)),
    }
}

/// The column profiles as a JSON object, in CSV column order.
fn profile_json(
    profile: &[(String, ColumnProfile)],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    profile
        .iter()
        .map(|(name, p)| {
            serde_json::to_value(p)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Internal(format!("cannot serialise the profile: {e}")))
        })
        .collect()
}

/// Timings of finished steps as a JSON object, in run order.
pub fn timings_json(timings: &[(Step, u64)]) -> serde_json::Map<String, serde_json::Value> {
    timings
        .iter()
        .map(|(step, ms)| (step.as_str().to_string(), (*ms).into()))
        .collect()
}

pub async fn run(ctx: &mut RunContext) -> Result<()> {
    let (Some(extracted), Some(validated)) = (&ctx.extracted, &ctx.validated) else {
        return Err(Error::Internal(
            "build_features ran before validate_data".into(),
        ));
    };
    let settings = &ctx.settings;
    let tz = settings.timezone;
    let created_at = now_iso(tz);
    let feature_version = settings.version_id();
    let feature = &validated.feature;

    let features = &settings.spec.features;
    let schema = Schema {
        feature_version: feature_version.clone(),
        columns: feature
            .columns
            .iter()
            .map(|(name, ty)| (name.clone(), ty.as_str().into()))
            .collect(),
        created_at: created_at.clone(),
        pipeline_name: settings.pipeline.clone(),
        grain: features.grain(),
        key_columns: features.key_columns(),
        group_by: match features {
            Features::Rows(_) => None,
            Features::Entities(e) => Some(GroupBySchema {
                columns: e.group_by.clone(),
                time_bucket: e.time_bucket.as_ref().map(|b| TimeBucketSchema {
                    column: b.column.clone(),
                    every: b.every.as_str(),
                    name: b.name.clone(),
                }),
            }),
        },
    };
    let schema_json = to_pretty_json(&schema)?;

    let mut outputs = BTreeMap::new();
    outputs.insert(
        layout::FEATURE_CSV,
        FileDigest {
            size_bytes: feature.size_bytes,
            sha256: feature.sha256.clone(),
        },
    );
    outputs.insert(layout::SCHEMA_JSON, digest(&schema_json));

    let stats = &validated.stats;
    let metadata = Metadata {
        source_raw_path: ctx.raw_store.uri(&ctx.raw_key),
        rows_raw: stats.rows,
        rows_feature: feature.rows,
        raw_null_rate: stats.null_rate(),
        raw_valid: validated.valid(),
        created_at,
        pipeline_name: settings.pipeline.clone(),
        feature_version,
        execution_date: settings.execution_date.to_rfc3339(),
        run_id: ctx.run_id.clone(),
        raw_null_count: stats.null_count,
        raw_total_cells: stats.total_cells,
        raw_blank_lines: validated.scan.blank_lines,
        raw_short_rows: stats.short_rows,
        raw_long_rows: stats.long_rows,
        raw_had_bom: validated.scan.had_bom,
        raw_columns: stats.header.clone().unwrap_or_default(),
        source: SourceInfo {
            size_bytes: extracted.meta.size_bytes,
            etag: extracted.meta.etag.clone(),
            last_modified: extracted.meta.last_modified.clone(),
            compression: validated.compression.label(),
            csv_bytes: validated.scan.bytes,
        },
        outputs,
        validation: validated.rules.clone(),
        feature_groups: feature.groups,
        profile: profile_json(&feature.profile)?,
        drift: validated.drift.clone(),
        timings_ms: serde_json::Map::new(),
        tool: ToolInfo::current(),
    };
    ctx.built = Some(Built {
        columns: feature
            .columns
            .iter()
            .map(|(name, _)| name.clone())
            .collect(),
        grain: features.grain(),
        schema_json,
        metadata,
    });
    Ok(())
}

//! `build_features`: the feature rules (per-row `row_sum`, computed inside the single
//! pass by [`RowSumColumns`] and [`RowSumWriter`]) and the content of `schema.json` and
//! `metadata.json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cell_batch::RowBatch;
use crate::context::RunContext;
use crate::csv_scan::Record;
use crate::dp_log::{keys, DpLine, Step};
use crate::error::{Error, Result};
use crate::execution_date::now_iso;
use crate::history::Drift;
use crate::number::{parse_cell_window, write_python_float};
use crate::pipeline::PipelineSpec;
use crate::stages::layout;
use crate::stages::validate_data::RuleResult;

/// The seed's one feature, part one: which cells `row_sum` reads, and their sum per row.
/// Bound to the header and run by the scanner thread, which sends the sums on in
/// batches (see [`RowBatch`]).
#[derive(Debug, Default, Clone)]
pub struct RowSumColumns {
    /// Cell index per summed column, in the spec's order; columns absent from the
    /// header are left out. A repeated header name binds to its last occurrence, as the
    /// seed's `csv.DictReader` did.
    indices: Vec<usize>,
}

impl RowSumColumns {
    pub fn bind(header: &Record<'_>, spec: &PipelineSpec) -> Self {
        RowSumColumns {
            indices: spec
                .row_sum_columns
                .iter()
                .filter_map(|name| header.fields().rposition(|h| h == name))
                .collect(),
        }
    }

    /// Computes the row's `row_sum` (scanner thread) and appends it to `batch`: empty,
    /// missing and non-numeric cells count 0.
    #[inline]
    pub fn project(&self, record: &Record<'_>, batch: &mut RowBatch) {
        // Start from +0.0 explicitly: an empty f64 sum is -0.0 in recent Rust.
        let mut sum = 0.0_f64;
        for &i in &self.indices {
            if i < record.len() {
                let (cell, window) = record.field_and_window(i);
                if let Some(v) = parse_cell_window(cell, window) {
                    sum += v;
                }
            }
        }
        batch.push(sum);
    }
}

/// The seed's one feature, part two: each row's sum written as the seed wrote it (runs
/// on the feature thread).
#[derive(Debug, Default)]
pub struct RowSumWriter {
    rows: u64,
    scratch: String,
}

impl RowSumWriter {
    pub const COLUMN: &'static str = "row_sum";

    /// The output header line (CRLF, as the seed's `csv.writer` wrote).
    pub fn write_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(Self::COLUMN.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// Writes one output row per row of the batch.
    pub fn write_batch(&mut self, batch: &RowBatch, out: &mut Vec<u8>) {
        for &sum in batch.values() {
            write_python_float(out, &mut self.scratch, sum);
            out.extend_from_slice(b"\r\n");
        }
        self.rows += batch.len() as u64;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Output columns and their types, in CSV order.
    pub fn columns(&self) -> Vec<(String, &'static str)> {
        vec![(Self::COLUMN.to_string(), "float")]
    }
}

/// `schema.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Schema {
    pub feature_version: String,
    /// Column name -> type, in CSV column order.
    pub columns: serde_json::Map<String, serde_json::Value>,
    pub created_at: String,
    pub pipeline_name: String,
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
    /// Row count and null rate against the previous complete version.
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
    pub schema_json: Vec<u8>,
    /// Completed by `store_features` with the timings known at write time.
    pub metadata: Metadata,
}

impl Built {
    pub fn log_fields(&self, line: DpLine) -> DpLine {
        line.with(keys::FEATURE_ROWS, self.metadata.rows_feature)
            .with(keys::COLUMNS, self.columns.join(","))
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

    let schema = Schema {
        feature_version: feature_version.clone(),
        columns: feature
            .columns
            .iter()
            .map(|(name, ty)| (name.clone(), (*ty).into()))
            .collect(),
        created_at: created_at.clone(),
        pipeline_name: settings.pipeline.clone(),
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
        schema_json,
        metadata,
    });
    Ok(())
}

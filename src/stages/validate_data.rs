//! `validate_data`: the single streaming pass over the raw object (which also feeds
//! `build_features`' row computation), then the pipeline's rules. Invalid data stops the
//! run before anything is published: the staged feature upload is aborted.

use serde::Serialize;

use crate::compression::Compression;
use crate::context::RunContext;
use crate::csv_scan::{Record, ScanStats};
use crate::dp_log::{keys, DpLine};
use crate::error::{Error, Result};
use crate::pipeline::PipelineSpec;
use crate::scan::{scan_raw, FeatureFile};
use crate::stages::layout;

/// The seed's counts over data rows (the header is not a data row).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawStats {
    pub header: Option<Vec<String>>,
    pub rows: u64,
    pub total_cells: u64,
    pub null_count: u64,
    /// Rows with fewer / more cells than the header: kept and counted as they are.
    pub short_rows: u64,
    pub long_rows: u64,
}

impl RawStats {
    pub fn set_header(&mut self, record: &Record<'_>) {
        self.header = Some(record.fields().map(str::to_string).collect());
    }

    /// Counts one data row: its cells and its empty (null) cells.
    #[inline]
    pub fn observe(&mut self, record: &Record<'_>) {
        let cells = record.len();
        self.rows += 1;
        self.total_cells += cells as u64;
        self.null_count += record.empty_fields();
        let width = self.header.as_ref().map_or(0, Vec::len);
        self.short_rows += u64::from(cells < width);
        self.long_rows += u64::from(cells > width);
    }

    /// `null_count / total_cells`, 0.0 when there are no cells.
    pub fn null_rate(&self) -> f64 {
        if self.total_cells == 0 {
            0.0
        } else {
            self.null_count as f64 / self.total_cells as f64
        }
    }
}

/// One rule's verdict, as stored under `validation` in `metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResult {
    pub name: &'static str,
    pub threshold: serde_json::Value,
    pub observed: serde_json::Value,
    pub passed: bool,
}

/// The seed's two rules: at least `min_rows` rows; null rate at most `max_null_rate`.
pub fn evaluate(stats: &RawStats, spec: &PipelineSpec) -> Vec<RuleResult> {
    let null_rate = stats.null_rate();
    vec![
        RuleResult {
            name: "min_rows",
            threshold: spec.min_rows.into(),
            observed: stats.rows.into(),
            passed: stats.rows >= spec.min_rows,
        },
        RuleResult {
            name: "max_null_rate",
            threshold: spec.max_null_rate.into(),
            observed: null_rate.into(),
            passed: null_rate <= spec.max_null_rate,
        },
    ]
}

/// What validation found; `feature` is the staged feature file from the same pass.
pub struct Validated {
    /// How the raw object was compressed (decided by its name).
    pub compression: Compression,
    pub stats: RawStats,
    pub scan: ScanStats,
    pub rules: Vec<RuleResult>,
    pub feature: FeatureFile,
}

impl Validated {
    pub fn valid(&self) -> bool {
        self.rules.iter().all(|r| r.passed)
    }

    pub fn log_fields(&self, line: DpLine) -> DpLine {
        line.with(keys::ROWS, self.stats.rows)
            .with(keys::TOTAL_CELLS, self.stats.total_cells)
            .with(keys::NULL_COUNT, self.stats.null_count)
            .rate(keys::NULL_RATE, Some(self.stats.null_rate()))
            .with(keys::BLANK_LINES, self.scan.blank_lines)
            .with(keys::SHORT_ROWS, self.stats.short_rows)
            .with(keys::LONG_ROWS, self.stats.long_rows)
            .with(keys::VALID, self.valid())
            .with(
                keys::FAILED_RULES,
                self.failed_rules()
                    .map(|r| r.name)
                    .collect::<Vec<_>>()
                    .join(","),
            )
    }

    /// The rules that did not pass, in rule order.
    pub fn failed_rules(&self) -> impl Iterator<Item = &RuleResult> {
        self.rules.iter().filter(|r| !r.passed)
    }
}

pub async fn run(ctx: &mut RunContext) -> Result<()> {
    let source = ctx
        .extracted
        .as_mut()
        .and_then(|e| e.source.take())
        .ok_or_else(|| Error::Internal("validate_data ran without an opened raw object".into()))?;
    let upload = if ctx.settings.dry_run {
        None
    } else {
        let key = ctx.version_key(layout::FEATURE_CSV);
        Some(ctx.out_store.start_upload(&key).await?)
    };
    let compression = Compression::from_name(&ctx.raw_key);
    let outcome = scan_raw(
        source,
        compression,
        upload,
        &ctx.settings.spec,
        &ctx.interrupt,
    )
    .await?;
    let rules = evaluate(&outcome.stats, &ctx.settings.spec);
    let mut validated = Validated {
        compression,
        stats: outcome.stats,
        scan: outcome.scan,
        rules,
        feature: outcome.feature,
    };
    let failed: Vec<String> = validated
        .failed_rules()
        .map(|r| {
            format!(
                "{} (observed {}, threshold {})",
                r.name, r.observed, r.threshold
            )
        })
        .collect();
    if failed.is_empty() {
        ctx.validated = Some(validated);
        return Ok(());
    }
    if let Some(upload) = validated.feature.upload.take() {
        upload.abort().await;
    }
    ctx.validated = Some(validated);
    Err(Error::RulesFailed(format!(
        "{}; nothing was published",
        failed.join(", ")
    )))
}

//! `validate_data`: the single streaming pass over the raw object (which also feeds
//! `build_features`' row computation), then the pipeline's rules. Invalid data stops the
//! run before anything is published: the staged feature upload is aborted.

use serde::Serialize;

use crate::column_checks::CellTally;
use crate::compression::Compression;
use crate::context::RunContext;
use crate::csv_scan::{Record, ScanStats};
use crate::dp_log::{keys, DpLine};
use crate::dp_log::{Status, Step};
use crate::error::{Error, Result};
use crate::history::{self, Drift, PastVersion};
use crate::pipeline::{Check, ColumnTest, PipelineSpec, Rule, Severity, SourceFormat};
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
        self.count(record, record.empty_fields());
    }

    /// [`RawStats::observe`] with the pipeline's null tokens instead of only empty cells.
    pub fn observe_with(&mut self, record: &Record<'_>, source: &SourceFormat) {
        let nulls = (0..record.len())
            .filter(|&i| source.is_null(record.field_bytes(i)))
            .count();
        self.count(record, nulls as u64);
    }

    #[inline]
    fn count(&mut self, record: &Record<'_>, nulls: u64) {
        let cells = record.len();
        self.rows += 1;
        self.total_cells += cells as u64;
        self.null_count += nulls;
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
}

impl RuleResult {
    /// The verdict on `rule`, with what was observed.
    fn of(rule: &Rule, observed: serde_json::Value, passed: bool) -> Self {
        RuleResult {
            name: rule.check.name(),
            column: rule.check.column(),
            threshold: rule.check.threshold(),
            observed,
            passed,
            severity: rule.severity,
            mostly: None,
            failing_lines: None,
        }
    }

    /// A failed `error` rule: the run must not publish.
    pub fn blocks(&self) -> bool {
        !self.passed && self.severity == Severity::Error
    }
}

/// Every rule of the pipeline over the pass's counts, its cell-by-cell tallies (by rule
/// index) and the earlier complete versions (`history`, newest first), in the pipeline's
/// order.
pub fn evaluate(
    stats: &RawStats,
    tallies: &[(usize, CellTally)],
    spec: &PipelineSpec,
    history: &[PastVersion],
) -> Vec<RuleResult> {
    spec.rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let tally = tallies.iter().find(|(j, _)| *j == i).map(|(_, t)| t);
            match tally {
                Some(tally) => check_cells(stats, rule, tally),
                None => check(stats, rule, history),
            }
        })
        .collect()
}

/// A rule decided cell by cell: passes when no column is missing and at least `mostly`
/// of the checked values passed (a column `max_null_rate` compares the null rate).
fn check_cells(stats: &RawStats, rule: &Rule, tally: &CellTally) -> RuleResult {
    use serde_json::json;
    let missing = !tally.missing_columns.is_empty();
    let (observed, passed) = if let Check::Column {
        test: ColumnTest::MaxNullRate(max),
        ..
    } = &rule.check
    {
        let rate = if tally.checked == 0 {
            0.0
        } else {
            tally.failed as f64 / tally.checked as f64
        };
        (
            json!({ "null_rate": rate, "nulls": tally.failed, "rows": tally.checked }),
            rate <= *max,
        )
    } else {
        let fraction = tally.passed_fraction();
        (
            json!({ "checked": tally.checked, "failed": tally.failed, "passed_fraction": fraction }),
            fraction >= rule.mostly,
        )
    };
    let mut observed = observed;
    let mut passed = passed && !missing;
    if missing {
        observed = json!({ "missing_columns": tally.missing_columns });
        passed = false;
    }
    // The header-presence half of `required_columns` is checked as always.
    if let Check::RequiredColumns(_) = rule.check {
        let header_check = check(stats, rule, &[]);
        passed &= header_check.passed;
        if let (Some(o), Some(h)) = (observed.as_object_mut(), header_check.observed.as_object()) {
            o.extend(h.clone());
        }
    }
    RuleResult {
        mostly: rule.check.takes_mostly().then_some(rule.mostly),
        failing_lines: Some(tally.failing_lines.clone()),
        ..RuleResult::of(rule, observed, passed)
    }
}

fn check(stats: &RawStats, rule: &Rule, history: &[PastVersion]) -> RuleResult {
    use serde_json::json;
    let (observed, passed): (serde_json::Value, bool) = match &rule.check {
        Check::MinRows(min) => (stats.rows.into(), stats.rows >= *min),
        Check::MaxRows(max) => (stats.rows.into(), stats.rows <= *max),
        Check::MaxNullRate(max) => {
            let rate = stats.null_rate();
            (rate.into(), rate <= *max)
        }
        Check::RequiredColumns(required) => {
            let header = stats.header.as_deref().unwrap_or_default();
            let missing: Vec<&String> = required
                .iter()
                .map(|(c, _)| c)
                .filter(|c| !header.contains(c))
                .collect();
            (json!({ "missing": missing }), missing.is_empty())
        }
        // Decided cell by cell ([`check_cells`]); reaching here means the pass did not
        // bind it, i.e. the input had no header: its columns are missing, as a header
        // without them would make them (the rule fails rather than pass unchecked).
        Check::Unique(_) | Check::Column { .. } => {
            (json!({ "missing_columns": rule.check.columns() }), false)
        }
        Check::RowsVsHistory {
            versions,
            max_change,
        } => {
            let past = &history[..history.len().min(*versions)];
            if past.is_empty() {
                (json!({ "rows": stats.rows, "history": 0 }), true)
            } else {
                let mean = past.iter().map(|p| p.rows as f64).sum::<f64>() / past.len() as f64;
                let change = if mean == 0.0 {
                    if stats.rows == 0 {
                        0.0
                    } else {
                        f64::INFINITY
                    }
                } else {
                    (stats.rows as f64 - mean).abs() / mean
                };
                (
                    json!({
                        "rows": stats.rows,
                        "history": past.len(),
                        "mean": mean,
                        "change": if change.is_finite() { json!(change) } else { json!(null) },
                    }),
                    change <= *max_change,
                )
            }
        }
        Check::NullRateChange { max_change } => match history.first() {
            None => (
                json!({ "null_rate": stats.null_rate(), "previous": null }),
                true,
            ),
            Some(previous) => {
                let change = (stats.null_rate() - previous.null_rate).abs();
                (
                    json!({
                        "null_rate": stats.null_rate(),
                        "previous": previous.null_rate,
                        "previous_version": previous.feature_version,
                        "change": change,
                    }),
                    change <= *max_change,
                )
            }
        },
    };
    RuleResult::of(rule, observed, passed)
}

/// What validation found; `feature` is the staged feature file from the same pass.
pub struct Validated {
    /// How the raw object was compressed (decided by its name).
    pub compression: Compression,
    pub stats: RawStats,
    pub scan: ScanStats,
    pub rules: Vec<RuleResult>,
    /// Against the previous complete version (`metadata.json` `drift`).
    pub drift: Drift,
    pub feature: FeatureFile,
}

impl Validated {
    /// No `error` rule failed (failed `warn` rules do not make data invalid).
    pub fn valid(&self) -> bool {
        !self.rules.iter().any(RuleResult::blocks)
    }

    /// How many `warn` rules failed.
    pub fn warnings(&self) -> u64 {
        self.rules
            .iter()
            .filter(|r| !r.passed && r.severity == Severity::Warn)
            .count() as u64
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
            .with(keys::WARNINGS, self.warnings())
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
    // The earlier versions are read while the pass runs: their few small requests then
    // cost no time after it.
    let (outcome, history) = tokio::join!(
        scan_raw(
            source,
            compression,
            upload,
            &ctx.settings.spec,
            ctx.settings.timezone,
            &ctx.interrupt,
        ),
        read_history(ctx),
    );
    let mut outcome = outcome?;
    let history = match history {
        Ok(history) => history,
        Err(e) => {
            // Nothing staged may linger: the pass handed its upload over.
            if let Some(upload) = outcome.feature.upload.take() {
                upload.abort().await;
            }
            return Err(e);
        }
    };
    let rules = evaluate(
        &outcome.stats,
        &outcome.tallies,
        &ctx.settings.spec,
        &history,
    );
    let drift = Drift::new(
        &history,
        outcome.stats.rows,
        outcome.stats.null_rate(),
        &outcome.feature.profile,
    );
    let mut validated = Validated {
        compression,
        stats: outcome.stats,
        scan: outcome.scan,
        rules,
        drift,
        feature: outcome.feature,
    };
    for r in validated.failed_rules() {
        rule_line(ctx, r);
    }
    let failed: Vec<String> = validated
        .failed_rules()
        .filter(|r| r.blocks())
        .map(|r| {
            let on = r
                .column
                .as_deref()
                .map(|c| format!(" on {c}"))
                .unwrap_or_default();
            let lines = match r.failing_lines.as_deref() {
                Some([first, ..]) => format!(", first at line {first}"),
                _ => String::new(),
            };
            format!(
                "{}{on} (observed {}, threshold {}{lines})",
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

/// One `[DP] step=validate_data` line per failed rule, so Grafana can count them by name.
fn rule_line(ctx: &RunContext, r: &RuleResult) {
    let status = if r.blocks() {
        Status::Failed
    } else {
        Status::Success
    };
    DpLine::new(
        &ctx.settings.pipeline,
        Step::ValidateData,
        status,
        &ctx.run_id,
    )
    .with(
        keys::EXECUTION_DATE,
        ctx.settings.execution_date.to_rfc3339(),
    )
    .with(keys::FEATURE_VERSION, ctx.settings.version_id())
    .with(keys::RULE, r.name)
    .with(keys::COLUMN, r.column.as_deref())
    .with(keys::SEVERITY, r.severity.as_str())
    .with(keys::THRESHOLD, r.threshold.to_string())
    .with(keys::OBSERVED, r.observed.to_string())
    .emit();
}

/// The earlier complete versions the rules and the drift need. Without history rules a
/// failure to read them only costs the drift figures (logged); with them it fails the run,
/// since the rules cannot be checked.
async fn read_history(ctx: &RunContext) -> Result<Vec<PastVersion>> {
    let spec = &ctx.settings.spec;
    let needed = spec.history_needed();
    let version = ctx.settings.version_id();
    match history::complete_before(ctx.out_store.as_ref(), &version, needed).await {
        Ok(history) => Ok(history),
        Err(e) if !spec.has_history_rules() => {
            tracing::warn!("no drift figures: cannot read earlier versions: {e}");
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

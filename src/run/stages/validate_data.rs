//! `validate_data`: counts rows, cells and null cells, and applies the pipeline's rules;
//! invalid data stops the run before anything is published.
//!
//! Its side of the one pass over the raw object is [`side`]: the counts and the rules
//! decided cell by cell (`pass::validation`, `pass::column_checks`), computed while
//! build_features computes the features over the same read. Once the pass is over,
//! [`finish`] evaluates every rule in the pipeline's order from what the side found and
//! from the earlier complete versions (history rules), logs one line per failed rule and
//! fails the run if an `error` rule failed.

use crate::config::spec::{Check, ColumnTest, PipelineSpec, Rule, SchemaAllow, Severity};
use crate::error::{Error, Result};
use crate::log::{keys, DpLine, Status, Step};
use crate::pass::column_checks::CellTally;
use crate::pass::csv_scan::ScanStats;
use crate::pass::raw_stats::RawStats;
use crate::pass::{PassTiming, ValidationFound, ValidationSide};
use crate::run::context::RunContext;
use crate::versions::documents::RuleResult;
use crate::versions::history::{self, PastVersion};

/// What validation found.
pub struct Validated {
    pub stats: RawStats,
    pub scan: ScanStats,
    pub rules: Vec<RuleResult>,
    /// The earlier complete versions, newest first (history rules and drift).
    pub history: Vec<PastVersion>,
    pub timing: PassTiming,
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
            .with(keys::PASS_MS, millis(Some(self.timing.wall)))
            .with(keys::SCAN_CPU_MS, millis(self.timing.scan_cpu))
    }

    /// The rules that did not pass, in rule order.
    pub fn failed_rules(&self) -> impl Iterator<Item = &RuleResult> {
        self.rules.iter().filter(|r| !r.passed)
    }
}

/// Whole milliseconds of a duration, for log lines.
pub fn millis(d: Option<std::time::Duration>) -> Option<u64> {
    d.map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// validate_data's side of the pass: the counts and the cell-by-cell rules of `spec`.
pub fn side(spec: &PipelineSpec) -> ValidationSide {
    ValidationSide::new(&spec.source, &spec.rules)
}

/// After the pass: every rule, evaluated in order. Fails with [`Error::RulesFailed`] if
/// an `error` rule failed (nothing is published); `warn` rules are counted and logged.
pub fn finish(
    ctx: &mut RunContext,
    found: ValidationFound,
    history: Vec<PastVersion>,
    timing: PassTiming,
) -> Result<()> {
    let rules = evaluate(&found.stats, &found.tallies, &ctx.settings.spec, &history);
    let validated = Validated {
        stats: found.stats,
        scan: found.scan,
        rules,
        history,
        timing,
    };
    for r in validated.failed_rules() {
        rule_line(ctx, r);
    }
    let hint = delimiter_hint(&validated.stats, &ctx.settings.spec);
    let blocking: Vec<&RuleResult> = validated.failed_rules().filter(|r| r.blocks()).collect();
    if blocking.is_empty() {
        if let Some(hint) = &hint {
            tracing::warn!("{hint}");
        }
        ctx.validated = Some(validated);
        return Ok(());
    }
    let message = rules_failed(&blocking, hint.as_deref(), &results_at(ctx));
    ctx.validated = Some(validated);
    Err(Error::RulesFailed(message))
}

/// Failed `error` rules named beyond this many are counted, not listed.
const NAMED_RULES: usize = 5;

/// The short sentence of a run that failed validation: the rules (and the columns a rule
/// missed), the first failing line, and where every rule's full result is.
fn rules_failed(blocking: &[&RuleResult], hint: Option<&str>, results: &str) -> String {
    let mut names: Vec<String> = blocking
        .iter()
        .take(NAMED_RULES)
        .map(|r| {
            let mut name = r.name.to_string();
            if let Some(c) = &r.column {
                name.push_str(&format!(" on {}", crate::values::shorten(c)));
            }
            let missing = missing_columns(&r.observed);
            if !missing.is_empty() {
                name.push_str(&format!(" (missing_columns: {})", missing.join(", ")));
            }
            name
        })
        .collect();
    if blocking.len() > NAMED_RULES {
        names.push(format!("{} more", blocking.len() - NAMED_RULES));
    }
    let first_line = blocking
        .iter()
        .filter_map(|r| r.failing_lines.as_ref()?.first())
        .min()
        .map(|line| format!("; first failing line {line}"))
        .unwrap_or_default();
    let hint = hint.map(|h| format!("; {h}")).unwrap_or_default();
    format!(
        "{} failed: {}{first_line}{hint}; nothing was published; every rule's result and \
         sample values: {results}",
        if blocking.len() == 1 { "rule" } else { "rules" },
        names.join(", ")
    )
}

/// The columns a failed rule's header check found missing (`missing_columns`, or
/// `missing` for `required_columns`), shortened.
fn missing_columns(observed: &serde_json::Value) -> Vec<String> {
    ["missing_columns", "missing"]
        .iter()
        .filter_map(|k| observed.get(*k)?.as_array())
        .flatten()
        .filter_map(|c| c.as_str())
        .map(crate::values::shorten)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Where this run's per-rule results end up: its run record (a dry run writes none; its
/// JSON result carries them).
fn results_at(ctx: &RunContext) -> String {
    if ctx.settings.dry_run {
        return "validation in the JSON result on stdout (a dry run writes no run record)".into();
    }
    let key = crate::versions::run_record::record_key(&ctx.settings.version_id(), &ctx.run_id);
    format!("validation in {}", ctx.out_store.uri(&key))
}

/// Delimiters a header may have been written with.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// A delimiter as the pipeline file spells it (`"\t"` for a tab).
fn spelled(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "\"\\t\"".to_string(),
        d => format!("\"{}\"", char::from(d)),
    }
}

/// When the header holds none of the columns the pipeline names but would under another
/// delimiter: which one to set (e.g. a `;` file read with the default `,`).
pub fn delimiter_hint(stats: &RawStats, spec: &PipelineSpec) -> Option<String> {
    let header = stats.header.as_ref()?;
    let wanted = spec.named_columns();
    if wanted.is_empty() || header.iter().any(|h| wanted.contains(&h.as_str())) {
        return None;
    }
    let configured = spec.source.delimiter;
    let line = header.join(&char::from(configured).to_string());
    let (matches, better) = DELIMITERS
        .iter()
        .filter(|d| **d != configured)
        .map(|d| {
            let n = line
                .split(char::from(*d))
                .filter(|h| wanted.contains(&h.trim().trim_matches('"')))
                .count();
            (n, *d)
        })
        .max_by_key(|(n, _)| *n)?;
    (matches > 0).then(|| {
        format!(
            "the header has none of the pipeline's columns when split on {}, but {matches} \
             when split on {}: set delimiter = {} under [source] in the pipeline file",
            spelled(configured),
            spelled(better),
            spelled(better)
        )
    })
}

/// The verdict on `rule`, with what was observed.
fn verdict(rule: &Rule, observed: serde_json::Value, passed: bool) -> RuleResult {
    RuleResult {
        name: rule.check.name(),
        column: rule.check.column(),
        threshold: rule.check.threshold(),
        observed,
        passed,
        severity: rule.severity,
        mostly: None,
        failing_lines: None,
        sample_values: None,
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
                Some(tally) => check_cells(stats, rule, tally, spec),
                None => check(stats, rule, history, spec),
            }
        })
        .collect()
}

/// A rule decided cell by cell: passes when no column is missing and at least `mostly`
/// of the checked values passed (a column `max_null_rate` compares the null rate).
fn check_cells(
    stats: &RawStats,
    rule: &Rule,
    tally: &CellTally,
    spec: &PipelineSpec,
) -> RuleResult {
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
        let header_check = check(stats, rule, &[], spec);
        passed &= header_check.passed;
        if let (Some(o), Some(h)) = (observed.as_object_mut(), header_check.observed.as_object()) {
            o.extend(h.clone());
        }
    }
    RuleResult {
        mostly: rule.check.takes_mostly().then_some(rule.mostly),
        failing_lines: Some(tally.failing_lines.clone()),
        sample_values: tally.sample_values.clone(),
        ..verdict(rule, observed, passed)
    }
}

/// A rule over the pass's counts, the earlier versions (`history`) or, for
/// `schema_change`, the output columns `spec` declares.
fn check(
    stats: &RawStats,
    rule: &Rule,
    history: &[PastVersion],
    spec: &PipelineSpec,
) -> RuleResult {
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
        Check::SchemaChange { allow } => match history.first() {
            None => (json!({ "previous_version": null }), true),
            Some(previous) => {
                let columns: Vec<(String, String)> = spec
                    .features
                    .columns()
                    .into_iter()
                    .map(|(name, ty)| (name, ty.as_str().to_string()))
                    .collect();
                let header = stats.header.as_deref().unwrap_or_default();
                let changes = history::schema_changes(previous, header, &columns);
                let passed = changes.allowed(*allow == SchemaAllow::Additive);
                (json!(changes), passed)
            }
        },
    };
    verdict(rule, observed, passed)
}

/// One `[DP] step=validate_data` line per failed rule, so Grafana can count them by name:
/// an `error` rule's at ERROR (`status=failed`), a `warn` rule's at WARN (`status=success`:
/// the step goes on; `severity=warn` says why the line is there).
fn rule_line(ctx: &RunContext, r: &RuleResult) {
    let (status, at_warn) = if r.blocks() {
        (Status::Failed, false)
    } else {
        (Status::Success, true)
    };
    let line = DpLine::new(
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
    .with(keys::OBSERVED, r.observed.to_string());
    if at_warn {
        line.at_warn().emit();
    } else {
        line.emit();
    }
}

/// The earlier complete versions the rules and the drift need. Without history rules a
/// failure to read them only costs the drift figures (logged); with them it fails the run,
/// since the rules cannot be checked.
pub async fn read_history(ctx: &RunContext) -> Result<Vec<PastVersion>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::spec::{Features, SourceFormat};
    use std::collections::BTreeMap;

    fn rule(check: Check) -> Rule {
        Rule {
            check,
            severity: Severity::Error,
            mostly: 1.0,
        }
    }

    fn spec(rules: Vec<Rule>) -> PipelineSpec {
        PipelineSpec {
            source: SourceFormat::default(),
            rules,
            features: Features::built_in(),
        }
    }

    fn stats(rows: u64, cells: u64, nulls: u64) -> RawStats {
        RawStats {
            header: Some(vec!["id".into(), "amount".into()]),
            rows,
            total_cells: cells,
            null_count: nulls,
            short_rows: 0,
            long_rows: 0,
        }
    }

    fn past(rows: u64, null_rate: f64) -> PastVersion {
        PastVersion {
            feature_version: format!("v_{rows}"),
            rows,
            null_rate,
            means: BTreeMap::new(),
            raw_columns: None,
            columns: None,
        }
    }

    #[test]
    fn the_default_rules_are_the_original_pipelines() {
        let built_in = PipelineSpec::built_in();
        let ok = evaluate(&stats(10, 20, 10), &[], &built_in, &[]);
        assert!(ok.iter().all(|r| r.passed), "{ok:?}");
        // Half the cells null is still valid; more is not; no rows is not.
        let too_null = evaluate(&stats(10, 20, 11), &[], &built_in, &[]);
        assert_eq!(
            too_null.iter().map(|r| r.passed).collect::<Vec<_>>(),
            [true, false]
        );
        let empty = evaluate(&stats(0, 0, 0), &[], &built_in, &[]);
        assert_eq!(empty[0].name, "min_rows");
        assert!(!empty[0].passed && empty[0].blocks());
        assert!(empty[1].passed, "no cells: null rate 0");
    }

    #[test]
    fn warn_rules_fail_without_blocking() {
        let mut r = rule(Check::MaxRows(5));
        r.severity = Severity::Warn;
        let results = evaluate(&stats(10, 20, 0), &[], &spec(vec![r]), &[]);
        assert!(!results[0].passed);
        assert!(!results[0].blocks());
    }

    #[test]
    fn cell_rules_pass_by_mostly_and_fail_on_missing_columns() {
        let not_null = |mostly| Rule {
            mostly,
            ..rule(Check::Column {
                column: "id".into(),
                test: ColumnTest::NotNull,
            })
        };
        let tally = CellTally {
            checked: 100,
            failed: 2,
            failing_lines: vec![5, 9],
            missing_columns: vec![],
            sample_values: None,
        };
        let strict = evaluate(
            &stats(100, 200, 2),
            &[(0, tally.clone())],
            &spec(vec![not_null(1.0)]),
            &[],
        );
        assert!(!strict[0].passed);
        assert_eq!(strict[0].failing_lines.as_deref(), Some(&[5, 9][..]));
        let lenient = evaluate(
            &stats(100, 200, 2),
            &[(0, tally)],
            &spec(vec![not_null(0.98)]),
            &[],
        );
        assert!(lenient[0].passed, "98% passed, mostly 0.98");
        let missing = CellTally {
            missing_columns: vec!["id".into()],
            ..CellTally::default()
        };
        let results = evaluate(
            &stats(1, 1, 0),
            &[(0, missing)],
            &spec(vec![not_null(0.5)]),
            &[],
        );
        assert!(!results[0].passed);
        assert_eq!(results[0].observed["missing_columns"][0], "id");
        // A rule over cells the pass never bound (no header at all) fails, not passes.
        let unbound = evaluate(&stats(0, 0, 0), &[], &spec(vec![not_null(1.0)]), &[]);
        assert!(!unbound[0].passed);
    }

    #[test]
    fn history_rules_compare_with_earlier_versions() {
        let vs_history = rule(Check::RowsVsHistory {
            versions: 2,
            max_change: 0.2,
        });
        let rules = spec(vec![
            vs_history,
            rule(Check::NullRateChange { max_change: 0.1 }),
        ]);
        // No history yet: both pass.
        let first = evaluate(&stats(100, 200, 0), &[], &rules, &[]);
        assert!(first.iter().all(|r| r.passed));
        // Mean of the last two is 100: 115 is within 20%, 130 is not; null rate moved by
        // 0.05 then by 0.15.
        let history = [past(90, 0.0), past(110, 0.0), past(1_000_000, 0.0)];
        let near = evaluate(&stats(115, 200, 10), &[], &rules, &history);
        assert!(near[0].passed && near[1].passed, "{near:?}");
        let far = evaluate(&stats(130, 200, 30), &[], &rules, &history);
        assert!(!far[0].passed && !far[1].passed, "{far:?}");
        assert_eq!(
            far[0].observed["history"], 2,
            "only `versions` are compared"
        );
    }

    #[test]
    fn required_columns_checks_the_header() {
        let required = rule(Check::RequiredColumns(vec![
            ("id".into(), None),
            ("country".into(), None),
        ]));
        let results = evaluate(&stats(1, 2, 0), &[], &spec(vec![required]), &[]);
        assert!(!results[0].passed);
        assert_eq!(results[0].observed["missing"][0], "country");
    }

    #[test]
    fn a_header_split_on_the_wrong_delimiter_names_the_right_one() {
        let not_null = |c: &str| {
            rule(Check::Column {
                column: c.into(),
                test: ColumnTest::NotNull,
            })
        };
        let header = |fields: &[&str]| RawStats {
            header: Some(fields.iter().map(|f| f.to_string()).collect()),
            ..stats(1, 1, 0)
        };
        let rules = spec(vec![not_null("user"), not_null("amount")]);
        let hint = delimiter_hint(&header(&["id;user;amount"]), &rules).unwrap();
        assert!(hint.contains("but 2 when split on \";\""), "{hint}");
        assert!(hint.ends_with("set delimiter = \";\" under [source] in the pipeline file"));
        let hint = delimiter_hint(&header(&["id\tuser"]), &rules).unwrap();
        assert!(hint.contains("set delimiter = \"\\t\""), "{hint}");
        // A header that has a named column, or none under any delimiter: no hint.
        assert_eq!(delimiter_hint(&header(&["id", "user"]), &rules), None);
        assert_eq!(delimiter_hint(&header(&["id;usr"]), &rules), None);
        // A ';' pipeline reading a ',' file.
        let mut semicolon = rules.clone();
        semicolon.source.delimiter = b';';
        let hint = delimiter_hint(&header(&["id,user,amount"]), &semicolon).unwrap();
        assert!(hint.contains("set delimiter = \",\""), "{hint}");
    }
}

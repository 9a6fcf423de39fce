//! validate_data's side of the pass, on the scanner thread: the raw counts
//! ([`RawStats`]) and the rules decided cell by cell ([`ColumnChecks`]). The stage
//! evaluates every rule from what this side found once the pass is over.

use super::column_checks::{CellTally, ColumnChecks};
use super::csv_scan::{CsvScanner, Limits, Record, ScanStats};
use super::raw_stats::RawStats;
use crate::config::spec::{Rule, SourceFormat};

/// What validate_data asks of the pass: counting under the pipeline's null tokens and
/// its cell-by-cell rules.
pub struct ValidationSide {
    source: SourceFormat,
    rules: Vec<Rule>,
    /// Nulls are only empty cells: count them without comparing texts.
    only_empty_is_null: bool,
    stats: RawStats,
    /// Bound at the header; `None` when no rule works cell by cell.
    checks: Option<ColumnChecks>,
}

/// What the validation side found over the whole input.
pub struct ValidationFound {
    pub stats: RawStats,
    pub scan: ScanStats,
    /// Cell-by-cell rule results, by rule index.
    pub tallies: Vec<(usize, CellTally)>,
}

impl ValidationSide {
    pub fn new(source: &SourceFormat, rules: &[Rule]) -> Self {
        ValidationSide {
            source: source.clone(),
            rules: rules.to_vec(),
            only_empty_is_null: source.only_empty_is_null(),
            stats: RawStats::default(),
            checks: None,
        }
    }

    /// A scanner for the CSV dialect and record bounds the pipeline reads.
    pub(super) fn scanner(&self) -> Result<CsvScanner, &'static str> {
        let limits = Limits {
            max_fields: self.source.max_columns,
            max_header_bytes: self.source.max_header_bytes,
        };
        Ok(CsvScanner::with_delimiter(self.source.delimiter)?.with_limits(limits))
    }

    pub(super) fn header(&mut self, record: &Record<'_>) {
        self.stats.set_header(record);
        let checks = ColumnChecks::bind(record, &self.rules, &self.source);
        self.checks = (!checks.is_empty()).then_some(checks);
    }

    #[inline]
    pub(super) fn row(&mut self, record: &Record<'_>) {
        if self.only_empty_is_null {
            self.stats.observe(record);
        } else {
            self.stats.observe_with(record, &self.source);
        }
        if let Some(checks) = self.checks.as_mut() {
            checks.observe(record);
        }
    }

    pub(super) fn finish(self, scan: ScanStats) -> ValidationFound {
        ValidationFound {
            stats: self.stats,
            scan,
            tallies: self.checks.map(ColumnChecks::finish).unwrap_or_default(),
        }
    }
}

//! The rules decided cell by cell (column rules, `unique`, typed `required_columns`),
//! run on the scanner thread inside the one streaming pass: no second read, no early
//! exit, every failing line remembered up to [`MAX_FAILING_LINES`], and for rules over
//! values the first [`MAX_SAMPLE_VALUES`] distinct failing values (each cut to
//! [`MAX_SAMPLE_CHARS`] characters), so a failed run says what the bad data looked like.
//!
//! Memory is flat except where a rule must remember values: `unique` keeps every key it
//! has seen (in one [`KeyTable`] arena), `allowed_values` its value set.

use std::collections::HashSet;

use chrono_tz::Tz;

use super::csv_scan::Record;
use super::key_table::KeyTable;
use crate::config::spec::{Check, ColumnTest, Rule, SourceFormat, ValueType};
use crate::values::number::{parse_cell, parse_integer};
use crate::values::timestamp::matches_format;

/// Failing line numbers kept per rule (`metadata.json` `validation[].failing_lines`).
pub const MAX_FAILING_LINES: usize = 20;
/// Distinct failing values kept per rule over values (`validation[].sample_values`).
pub const MAX_SAMPLE_VALUES: usize = 5;
/// Characters kept of each sample value.
pub const MAX_SAMPLE_CHARS: usize = 80;

/// What one cell-by-cell rule saw over the whole pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellTally {
    /// Values the rule looked at (rows for null rules, non-null cells for value rules,
    /// rows for `unique`).
    pub checked: u64,
    /// Of those, how many failed.
    pub failed: u64,
    /// The first failing lines (1-based, the line a record starts on), in input order.
    pub failing_lines: Vec<u64>,
    /// Columns the rule reads that the header lacks: the rule cannot pass.
    pub missing_columns: Vec<String>,
    /// Rules over values (not null counts): the first distinct failing values, in input
    /// order, each cut to [`MAX_SAMPLE_CHARS`] characters (bytes that are not UTF-8
    /// read as U+FFFD); `None` for rules that count nulls.
    pub sample_values: Option<Vec<String>>,
}

impl CellTally {
    /// The fraction of checked values that passed (1.0 when nothing was checked).
    pub fn passed_fraction(&self) -> f64 {
        if self.checked == 0 {
            1.0
        } else {
            (self.checked - self.failed) as f64 / self.checked as f64
        }
    }

    /// Whether another failing value would be kept.
    #[inline]
    fn wants_sample(&self) -> bool {
        self.sample_values
            .as_ref()
            .is_some_and(|s| s.len() < MAX_SAMPLE_VALUES)
    }

    /// Keeps `value` as a sample if there is room and it is not kept already.
    fn sample(&mut self, value: &[u8]) {
        if !self.wants_sample() {
            return;
        }
        let text = String::from_utf8_lossy(value);
        let cut = match text.char_indices().nth(MAX_SAMPLE_CHARS) {
            Some((end, _)) => &text[..end],
            None => &text,
        };
        if let Some(samples) = self.sample_values.as_mut() {
            if !samples.iter().any(|s| s == cut) {
                samples.push(cut.to_string());
            }
        }
    }

    #[inline]
    fn count(&mut self, ok: bool, line: u64) {
        self.checked += 1;
        if !ok {
            self.failed += 1;
            if self.failing_lines.len() < MAX_FAILING_LINES {
                self.failing_lines.push(line);
            }
        }
    }
}

/// Every cell-by-cell rule of a pipeline, bound to the header.
pub struct ColumnChecks {
    nulls: SourceFormat,
    /// One per rule of the pipeline that is decided cell by cell.
    checks: Vec<(usize, Bound)>,
}

struct Bound {
    tally: CellTally,
    kind: Kind,
}

enum Kind {
    /// Counts null cells over all rows (`not_null`, column `max_null_rate`).
    Nulls { index: usize },
    /// Tests each non-null cell.
    Values { index: usize, test: ValueTest },
    /// Tests each non-null cell of several typed columns (`required_columns` types).
    Types { columns: Vec<(usize, ValueType)> },
    /// Remembers each row's key.
    Unique {
        indices: Vec<usize>,
        seen: KeyTable,
        scratch: Vec<u8>,
    },
    /// A column is missing: nothing to check, the rule fails.
    Missing,
}

enum ValueTest {
    Allowed(HashSet<Box<[u8]>>),
    Min(f64),
    Max(f64),
    Regex(regex::Regex),
    Timestamp(Option<String>),
    Type(ValueType),
}

impl ColumnChecks {
    /// Binds the cell-by-cell rules among `rules` to the header; a repeated header name
    /// binds to its last occurrence, as the original pipeline's `csv.DictReader` did.
    pub fn bind(header: &Record<'_>, rules: &[Rule], source: &SourceFormat) -> Self {
        let index = |name: &str| header.fields().rposition(|h| h == name);
        let mut checks = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if !rule.check.is_cell_by_cell() {
                continue;
            }
            let wanted = rule.check.columns();
            let missing: Vec<String> = wanted
                .iter()
                .filter(|c| index(c).is_none())
                .map(|c| c.to_string())
                .collect();
            let kind = if !missing.is_empty() {
                Kind::Missing
            } else {
                let at = |c: &str| index(c).unwrap_or(usize::MAX);
                match &rule.check {
                    Check::Column { column, test } => bind_test(at(column), test),
                    Check::Unique(columns) => Kind::Unique {
                        indices: columns.iter().map(|c| at(c)).collect(),
                        seen: KeyTable::new(),
                        scratch: Vec::new(),
                    },
                    Check::RequiredColumns(columns) => Kind::Types {
                        columns: columns
                            .iter()
                            .filter_map(|(c, t)| t.map(|t| (at(c), t)))
                            .collect(),
                    },
                    _ => continue,
                }
            };
            let tally = CellTally {
                missing_columns: missing,
                sample_values: over_values(&rule.check).then(Vec::new),
                ..CellTally::default()
            };
            checks.push((i, Bound { tally, kind }));
        }
        ColumnChecks {
            nulls: source.clone(),
            checks,
        }
    }

    /// Whether there is anything to do per row.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Checks one data row.
    pub fn observe(&mut self, record: &Record<'_>) {
        let nulls = &self.nulls;
        // A cell the row does not have (a short row) is null.
        let cell = |i: usize| -> Option<&[u8]> {
            (i < record.len())
                .then(|| record.field_bytes(i))
                .filter(|c| !nulls.is_null(c))
        };
        for (_, bound) in &mut self.checks {
            let tally = &mut bound.tally;
            match &mut bound.kind {
                Kind::Nulls { index } => tally.count(cell(*index).is_some(), record.line),
                Kind::Values { index, test } => {
                    if let Some(c) = cell(*index) {
                        let ok = test.passes(c);
                        tally.count(ok, record.line);
                        if !ok {
                            tally.sample(c);
                        }
                    }
                }
                Kind::Types { columns } => {
                    let mut failing = None;
                    let mut any = false;
                    for (i, ty) in columns.iter() {
                        if let Some(c) = cell(*i) {
                            any = true;
                            if failing.is_none() && !type_matches(*ty, c) {
                                failing = Some(c);
                            }
                        }
                    }
                    if any {
                        tally.count(failing.is_none(), record.line);
                    }
                    if let Some(c) = failing {
                        tally.sample(c);
                    }
                }
                Kind::Unique {
                    indices,
                    seen,
                    scratch,
                } => {
                    scratch.clear();
                    for &i in indices.iter() {
                        let c = if i < record.len() {
                            record.field_bytes(i)
                        } else {
                            &[]
                        };
                        // One column: the cell itself. Several: length-prefixed parts, so
                        // ("a,b","c") and ("a","b,c") differ.
                        if indices.len() > 1 {
                            scratch.extend_from_slice(&(c.len() as u32).to_le_bytes());
                        }
                        scratch.extend_from_slice(c);
                    }
                    let (_, new) = seen.intern(scratch);
                    tally.count(new, record.line);
                    if !new && tally.wants_sample() {
                        // The repeated key, its cells joined by commas.
                        let mut key = Vec::new();
                        for (n, &i) in indices.iter().enumerate() {
                            if n > 0 {
                                key.push(b',');
                            }
                            if i < record.len() {
                                key.extend_from_slice(record.field_bytes(i));
                            }
                        }
                        tally.sample(&key);
                    }
                }
                Kind::Missing => {}
            }
        }
    }

    /// The tally of each cell-by-cell rule, by its index in the pipeline's rules.
    pub fn finish(self) -> Vec<(usize, CellTally)> {
        self.checks.into_iter().map(|(i, b)| (i, b.tally)).collect()
    }
}

/// Whether a rule is decided on values (and so keeps sample values), not on null counts.
fn over_values(check: &Check) -> bool {
    match check {
        Check::Column { test, .. } => {
            !matches!(test, ColumnTest::NotNull | ColumnTest::MaxNullRate(_))
        }
        Check::Unique(_) => true,
        Check::RequiredColumns(columns) => columns.iter().any(|(_, ty)| ty.is_some()),
        _ => false,
    }
}

fn bind_test(index: usize, test: &ColumnTest) -> Kind {
    let values = |test| Kind::Values { index, test };
    match test {
        ColumnTest::NotNull | ColumnTest::MaxNullRate(_) => Kind::Nulls { index },
        ColumnTest::AllowedValues(allowed) => values(ValueTest::Allowed(
            allowed.iter().map(|v| v.as_bytes().into()).collect(),
        )),
        ColumnTest::Min(x) => values(ValueTest::Min(*x)),
        ColumnTest::Max(x) => values(ValueTest::Max(*x)),
        ColumnTest::Regex(re) => values(ValueTest::Regex(re.clone())),
        ColumnTest::Timestamp(format) => values(ValueTest::Timestamp(format.clone())),
        ColumnTest::Type(ty) => values(ValueTest::Type(*ty)),
    }
}

impl ValueTest {
    #[inline]
    fn passes(&self, cell: &[u8]) -> bool {
        match self {
            ValueTest::Allowed(set) => set.contains(cell),
            // NaN and non-numbers fail both bounds.
            ValueTest::Min(min) => parse_cell(cell).is_some_and(|v| v >= *min),
            ValueTest::Max(max) => parse_cell(cell).is_some_and(|v| v <= *max),
            ValueTest::Regex(re) => std::str::from_utf8(cell).is_ok_and(|s| re.is_match(s)),
            ValueTest::Timestamp(None) => type_matches(ValueType::Timestamp, cell),
            ValueTest::Timestamp(Some(format)) => matches_format(cell, format),
            ValueTest::Type(ty) => type_matches(*ty, cell),
        }
    }
}

/// Whether a non-null cell holds a value of `ty` (see [`ValueType`]).
pub fn type_matches(ty: ValueType, cell: &[u8]) -> bool {
    match ty {
        ValueType::String => true,
        ValueType::Integer => parse_integer(cell).is_some(),
        ValueType::Float => parse_cell(cell).is_some(),
        ValueType::Boolean => {
            let t = cell.trim_ascii();
            t == b"0"
                || t == b"1"
                || t.eq_ignore_ascii_case(b"true")
                || t.eq_ignore_ascii_case(b"false")
        }
        // UTC has no daylight-saving gaps, so only the text's form decides.
        ValueType::Timestamp => crate::values::timestamp::parse_in(cell, Tz::UTC).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_values_are_distinct_few_and_short() {
        let mut tally = CellTally {
            sample_values: Some(Vec::new()),
            ..CellTally::default()
        };
        let long = "x".repeat(200);
        for v in ["a", "b", "a", long.as_str(), "c", "b", "d", "e", "f"] {
            tally.sample(v.as_bytes());
        }
        let kept = tally.sample_values.unwrap();
        assert_eq!(kept.len(), MAX_SAMPLE_VALUES);
        assert_eq!(kept[..3], ["a", "b", &"x".repeat(MAX_SAMPLE_CHARS)]);
        assert_eq!(kept[3..], ["c", "d"]);

        // Characters, not bytes; bytes that are not UTF-8 still make a sample.
        let mut tally = CellTally {
            sample_values: Some(Vec::new()),
            ..CellTally::default()
        };
        tally.sample("한".repeat(100).as_bytes());
        tally.sample(b"\xff1");
        let kept = tally.sample_values.unwrap();
        assert_eq!(kept[0].chars().count(), MAX_SAMPLE_CHARS);
        assert_eq!(kept[1], "\u{fffd}1");

        // Null-count rules keep none.
        let mut tally = CellTally::default();
        tally.sample(b"a");
        assert_eq!(tally.sample_values, None);
    }

    #[test]
    fn value_types_accept_exactly_their_forms() {
        use ValueType as T;
        let cases: &[(T, &str, bool)] = &[
            (T::Integer, "42", true),
            (T::Integer, " -7 ", true),
            (T::Integer, "+3", true),
            (T::Integer, "3.0", false),
            (T::Integer, "99999999999999999999", false),
            (T::Float, "1e3", true),
            (T::Float, "nan", true),
            (T::Float, "1,5", false),
            (T::Boolean, "TRUE", true),
            (T::Boolean, "0", true),
            (T::Boolean, "yes", false),
            (T::Timestamp, "2025-11-19T00:03:04+09:00", true),
            (T::Timestamp, "2025-11-19", true),
            (T::Timestamp, "19/11/2025", false),
            (T::String, "anything", true),
        ];
        for (ty, cell, want) in cases {
            assert_eq!(type_matches(*ty, cell.as_bytes()), *want, "{ty:?} {cell:?}");
        }
    }
}

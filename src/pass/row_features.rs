//! Row-grain features, computed on the scanner thread: one output row per data row, in
//! input order (pass-through or renamed columns, casts, `row_sum`).

use chrono_tz::Tz;

use super::batch::RowBatch;
use super::csv_scan::Record;
use crate::config::spec::{ColumnType, RowFeature, RowFeatureKind, SourceFormat};
use crate::values::number::{parse_cell, parse_cell_window, parse_integer};
use crate::values::parse_boolean;
use crate::values::timestamp::{canonical, parse_in, parse_with_format};

/// The row features bound to the header's cell positions.
pub struct RowFeatures {
    outputs: Vec<Output>,
    nulls: SourceFormat,
    /// The pipeline zone: timestamps without an offset are wall-clock time there, and
    /// every timestamp is written in it.
    tz: Tz,
}

enum Output {
    /// The raw cell's text (null tokens become empty).
    Text(Option<usize>),
    /// The cell as a number; null, missing and non-numeric cells are null.
    Float(Option<usize>),
    /// The cell as a whole number (see [`parse_integer`]); anything else is null.
    Integer(Option<usize>),
    /// The cell as a boolean (see [`parse_boolean`]), written `true` / `false`; anything
    /// else is null.
    Boolean(Option<usize>),
    /// The cell as a timestamp (with the strftime format, else RFC 3339 / ISO 8601),
    /// written as [`canonical`] text; anything else is null.
    Timestamp(Option<usize>, Option<String>),
    /// The original pipeline's sum: empty, missing and non-numeric cells count 0. Columns absent from
    /// the header are left out.
    RowSum(Vec<usize>),
}

impl RowFeatures {
    /// A repeated header name binds to its last occurrence, as the original pipeline's
    /// `csv.DictReader` did; a column absent from the header reads as null.
    pub fn bind(
        header: &Record<'_>,
        features: &[RowFeature],
        nulls: &SourceFormat,
        tz: Tz,
    ) -> Self {
        let index = |name: &str| header.fields().rposition(|h| h == name);
        let outputs = features
            .iter()
            .map(|f| match &f.kind {
                RowFeatureKind::Column {
                    column,
                    cast,
                    format,
                } => match cast {
                    ColumnType::String => Output::Text(index(column)),
                    ColumnType::Float => Output::Float(index(column)),
                    ColumnType::Integer => Output::Integer(index(column)),
                    ColumnType::Boolean => Output::Boolean(index(column)),
                    ColumnType::Timestamp => Output::Timestamp(index(column), format.clone()),
                },
                RowFeatureKind::RowSum { columns } => {
                    Output::RowSum(columns.iter().filter_map(|c| index(c)).collect())
                }
            })
            .collect();
        RowFeatures {
            outputs,
            nulls: nulls.clone(),
            tz,
        }
    }

    /// Appends the row's output values to `batch`.
    #[inline]
    pub fn project(&self, record: &Record<'_>, batch: &mut RowBatch) {
        for (col, output) in self.outputs.iter().enumerate() {
            match output {
                Output::RowSum(indices) => batch.push_float(col, Some(row_sum(record, indices))),
                Output::Text(i) => batch.push_text(col, self.cell(record, *i).unwrap_or(b"")),
                Output::Float(i) => {
                    batch.push_float(col, self.cell(record, *i).and_then(parse_cell))
                }
                Output::Integer(i) => {
                    batch.push_integer(col, self.cell(record, *i).and_then(parse_integer))
                }
                Output::Boolean(i) => {
                    let text: &[u8] = match self.cell(record, *i).and_then(parse_boolean) {
                        Some(true) => b"true",
                        Some(false) => b"false",
                        None => b"",
                    };
                    batch.push_text(col, text);
                }
                Output::Timestamp(i, format) => {
                    let t = self.cell(record, *i).and_then(|c| match format {
                        Some(f) => parse_with_format(c, f, self.tz),
                        None => parse_in(c, self.tz),
                    });
                    match t {
                        Some(t) => batch.push_text(col, canonical(&t).as_bytes()),
                        None => batch.push_text(col, b""),
                    }
                }
            }
        }
        batch.end_row();
    }

    #[inline]
    fn cell<'r>(&self, record: &Record<'r>, index: Option<usize>) -> Option<&'r [u8]> {
        index
            .filter(|&i| i < record.len())
            .map(|i| record.field_bytes(i))
            .filter(|c| !self.nulls.is_null(c))
    }
}

/// The original pipeline's `row_sum` of one row.
#[inline]
fn row_sum(record: &Record<'_>, indices: &[usize]) -> f64 {
    // Start from +0.0 explicitly: an empty f64 sum is -0.0 in recent Rust.
    let mut sum = 0.0_f64;
    for &i in indices {
        if i < record.len() {
            let (cell, window) = record.field_and_window(i);
            if let Some(v) = parse_cell_window(cell, window) {
                sum += v;
            }
        }
    }
    sum
}

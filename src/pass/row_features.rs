//! Row-grain features, computed on the scanner thread: one output row per data row, in
//! input order (pass-through or renamed columns, casts, `row_sum`).

use super::batch::RowBatch;
use super::csv_scan::Record;
use crate::config::spec::{ColumnType, RowFeature, RowFeatureKind, SourceFormat};
use crate::values::number::{parse_cell, parse_cell_window, parse_integer};

/// The row features bound to the header's cell positions.
pub struct RowFeatures {
    outputs: Vec<Output>,
    nulls: SourceFormat,
}

enum Output {
    /// The raw cell's text (null tokens become empty).
    Text(Option<usize>),
    /// The cell as a number; null, missing and non-numeric cells are null.
    Float(Option<usize>),
    /// The cell as a whole number (see [`parse_integer`]); anything else is null.
    Integer(Option<usize>),
    /// The original pipeline's sum: empty, missing and non-numeric cells count 0. Columns absent from
    /// the header are left out.
    RowSum(Vec<usize>),
}

impl RowFeatures {
    /// A repeated header name binds to its last occurrence, as the original pipeline's
    /// `csv.DictReader` did; a column absent from the header reads as null.
    pub fn bind(header: &Record<'_>, features: &[RowFeature], nulls: &SourceFormat) -> Self {
        let index = |name: &str| header.fields().rposition(|h| h == name);
        let outputs = features
            .iter()
            .map(|f| match &f.kind {
                RowFeatureKind::Column { column, cast } => match cast {
                    ColumnType::String => Output::Text(index(column)),
                    ColumnType::Float => Output::Float(index(column)),
                    ColumnType::Integer => Output::Integer(index(column)),
                },
                RowFeatureKind::RowSum { columns } => {
                    Output::RowSum(columns.iter().filter_map(|c| index(c)).collect())
                }
            })
            .collect();
        RowFeatures {
            outputs,
            nulls: nulls.clone(),
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

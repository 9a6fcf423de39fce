//! Output rows in batches, handed from the scanner thread to the feature thread.
//!
//! The scanner thread computes each output value while the record is still in cache and
//! sends only the results, column by column: no per-cell allocation, and one channel hop
//! per few thousand rows. The feature thread formats them, profiles them, hashes the
//! output and hands it to the upload, so both cores share the work.

use crate::config::spec::ColumnType;

/// Rows per batch.
pub const BATCH_ROWS: usize = 8192;
/// A batch is sent early once its text reaches this size, so long cells cannot make
/// batches (and memory) large.
pub const BATCH_TEXT_BYTES: usize = 4 << 20;

/// The values of one output column in a batch.
#[derive(Debug)]
pub enum BatchColumn {
    /// `None` is a null (an empty cell in `feature.csv`).
    Float(Vec<Option<f64>>),
    Integer(Vec<Option<i64>>),
    /// Concatenated cell texts and where each ends; an empty text is a null.
    Text {
        bytes: Vec<u8>,
        ends: Vec<usize>,
    },
}

impl BatchColumn {
    fn new(ty: ColumnType, rows: usize) -> Self {
        match ty {
            ColumnType::Float => BatchColumn::Float(Vec::with_capacity(rows)),
            ColumnType::Integer => BatchColumn::Integer(Vec::with_capacity(rows)),
            // Booleans and timestamps travel as their output text (see
            // `ColumnType::is_text`).
            ColumnType::String | ColumnType::Boolean | ColumnType::Timestamp => BatchColumn::Text {
                bytes: Vec::new(),
                ends: Vec::with_capacity(rows),
            },
        }
    }
}

/// A batch of output rows, stored by column.
#[derive(Debug)]
pub struct RowBatch {
    rows: usize,
    columns: Vec<BatchColumn>,
}

impl RowBatch {
    /// An empty batch for output columns of these types.
    pub fn new(types: &[ColumnType]) -> Self {
        RowBatch {
            rows: 0,
            columns: types
                .iter()
                .map(|t| BatchColumn::new(*t, BATCH_ROWS))
                .collect(),
        }
    }

    /// Appends to column `i` (its type must be float; other types take a null).
    #[inline]
    pub fn push_float(&mut self, i: usize, v: Option<f64>) {
        match &mut self.columns[i] {
            BatchColumn::Float(values) => values.push(v),
            other => push_null(other),
        }
    }

    #[inline]
    pub fn push_integer(&mut self, i: usize, v: Option<i64>) {
        match &mut self.columns[i] {
            BatchColumn::Integer(values) => values.push(v),
            other => push_null(other),
        }
    }

    /// Appends a text; an empty one is a null.
    #[inline]
    pub fn push_text(&mut self, i: usize, text: &[u8]) {
        match &mut self.columns[i] {
            BatchColumn::Text { bytes, ends } => {
                bytes.extend_from_slice(text);
                ends.push(bytes.len());
            }
            other => push_null(other),
        }
    }

    /// Marks the row complete (every column must have had one value pushed).
    #[inline]
    pub fn end_row(&mut self) {
        self.rows += 1;
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Whether the batch should be sent now.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.rows >= BATCH_ROWS
            || self.columns.iter().any(|c| match c {
                BatchColumn::Text { bytes, .. } => bytes.len() >= BATCH_TEXT_BYTES,
                _ => false,
            })
    }

    pub fn columns(&self) -> &[BatchColumn] {
        &self.columns
    }
}

fn push_null(column: &mut BatchColumn) {
    match column {
        BatchColumn::Float(values) => values.push(None),
        BatchColumn::Integer(values) => values.push(None),
        BatchColumn::Text { bytes, ends } => ends.push(bytes.len()),
    }
}

/// The text of cell `row` of a text column.
#[inline]
pub fn text_at<'a>(bytes: &'a [u8], ends: &[usize], row: usize) -> &'a [u8] {
    let start = if row == 0 { 0 } else { ends[row - 1] };
    &bytes[start..ends[row]]
}

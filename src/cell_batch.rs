//! Per-row feature values for a batch of rows, handed from the scanner thread to the
//! feature thread.
//!
//! The scanner thread parses the cells a row's features read while the record is still
//! in cache and sends only the resulting numbers: no per-cell copy, no per-cell
//! allocation, and one channel hop per few thousand rows. The feature thread formats
//! them, hashes the output and hands it to the upload, so both cores share the work.

/// One `f64` per row (the row's `row_sum`), in input order.
#[derive(Debug, Default)]
pub struct RowBatch {
    values: Vec<f64>,
}

impl RowBatch {
    pub fn new(rows_hint: usize) -> Self {
        RowBatch {
            values: Vec::with_capacity(rows_hint),
        }
    }

    /// Appends the next row's value.
    #[inline]
    pub fn push(&mut self, value: f64) {
        self.values.push(value);
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The rows' values, in order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

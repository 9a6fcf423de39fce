//! The cells features need, for a batch of rows, in one flat buffer.
//!
//! The scanner thread projects each data row onto the columns the features read and
//! hands whole batches to the feature thread, so CSV scanning and number work run on
//! two cores without a per-row channel hop or a per-cell allocation.

use crate::csv_scan::Record;

/// Projected cells of up to a few thousand rows; every row has `width` cells.
#[derive(Debug, Default)]
pub struct CellBatch {
    width: usize,
    rows: usize,
    bytes: Vec<u8>,
    /// End offset in `bytes` of each cell, row after row.
    ends: Vec<usize>,
}

impl CellBatch {
    pub fn new(width: usize, rows_hint: usize) -> Self {
        CellBatch {
            width,
            rows: 0,
            bytes: Vec::with_capacity(rows_hint * width * 8),
            ends: Vec::with_capacity(rows_hint * width),
        }
    }

    /// Appends one row: the cells at `indices`, in that order; a cell the row does not
    /// have (a short row) is empty.
    #[inline]
    pub fn push_row(&mut self, record: &Record<'_>, indices: &[usize]) {
        debug_assert_eq!(indices.len(), self.width);
        for &i in indices {
            if i < record.len() {
                self.bytes.extend_from_slice(record.field_bytes(i));
            }
            self.ends.push(self.bytes.len());
        }
        self.rows += 1;
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The cells of every row, in order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> + '_ {
        (0..self.rows).map(move |r| Row {
            batch: self,
            row: r,
        })
    }
}

/// One projected row.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    batch: &'a CellBatch,
    row: usize,
}

impl<'a> Row<'a> {
    /// The row's cells as raw (validated UTF-8) bytes.
    pub fn cells(self) -> impl Iterator<Item = &'a [u8]> {
        let b = self.batch;
        let first = self.row * b.width;
        (first..first + b.width).map(move |c| {
            let start = if c == 0 { 0 } else { b.ends[c - 1] };
            &b.bytes[start..b.ends[c]]
        })
    }
}

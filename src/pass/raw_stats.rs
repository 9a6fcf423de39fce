//! The raw data's counts (`rows`, `total_cells`, `null_count`, short and long rows), as
//! the original pipeline defined them: part of validate_data's side of the pass.

use super::csv_scan::Record;
use crate::config::spec::SourceFormat;

/// The counts over data rows (the header is not a data row).
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

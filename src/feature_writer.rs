//! The feature thread's work: output rows -> `feature.csv` bytes, and the profile of each
//! output column, in the same pass.
//!
//! `feature.csv` is written as the seed's `csv.writer` wrote it: comma-separated, CRLF
//! line ends, a field quoted only when it holds a comma, a quote or a line break, floats
//! as Python's `repr(float)`, nulls as empty cells.

use crate::cell_batch::{text_at, BatchColumn, RowBatch};
use crate::number::write_python_float;
use crate::pipeline::ColumnType;
use crate::profile::{ColumnProfile, ColumnProfiler};

/// Formats and profiles output rows.
pub struct FeatureWriter {
    columns: Vec<(String, ColumnType)>,
    profilers: Vec<ColumnProfiler>,
    rows: u64,
    scratch: String,
}

impl FeatureWriter {
    pub fn new(columns: Vec<(String, ColumnType)>) -> Self {
        let profilers = columns
            .iter()
            .map(|(_, ty)| ColumnProfiler::new(*ty))
            .collect();
        FeatureWriter {
            columns,
            profilers,
            rows: 0,
            scratch: String::new(),
        }
    }

    /// The header line.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        for (i, (name, _)) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_text(out, name.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Writes one output line per row of the batch and profiles its values.
    pub fn write_batch(&mut self, batch: &RowBatch, out: &mut Vec<u8>) {
        let columns = batch.columns();
        // One column (the seed's `row_sum`, and any single-column set) needs no
        // interleaving: write it in one tight loop.
        if let [BatchColumn::Float(values)] = columns {
            let profiler = &mut self.profilers[0];
            for v in values {
                write_float(out, &mut self.scratch, profiler, *v);
                out.extend_from_slice(b"\r\n");
            }
        } else {
            for row in 0..batch.len() {
                for (i, column) in columns.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let profiler = &mut self.profilers[i];
                    match column {
                        BatchColumn::Float(values) => {
                            write_float(out, &mut self.scratch, profiler, values[row])
                        }
                        BatchColumn::Integer(values) => match values[row] {
                            Some(v) => {
                                profiler.number(v as f64);
                                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                            }
                            None => profiler.null(),
                        },
                        BatchColumn::Text { bytes, ends } => {
                            let text = text_at(bytes, ends, row);
                            if text.is_empty() {
                                profiler.null();
                            } else {
                                profiler.text(text);
                                write_text(out, text);
                            }
                        }
                    }
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        self.rows += batch.len() as u64;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Output columns and their types, in CSV order.
    pub fn columns(&self) -> &[(String, ColumnType)] {
        &self.columns
    }

    /// Each output column's profile, in CSV order.
    pub fn finish(self) -> Vec<(String, ColumnProfile)> {
        self.columns
            .into_iter()
            .map(|(name, _)| name)
            .zip(self.profilers.into_iter().map(ColumnProfiler::finish))
            .collect()
    }
}

#[inline]
fn write_float(
    out: &mut Vec<u8>,
    scratch: &mut String,
    profiler: &mut ColumnProfiler,
    v: Option<f64>,
) {
    match v {
        Some(v) => {
            profiler.number(v);
            write_python_float(out, scratch, v);
        }
        None => profiler.null(),
    }
}

/// A field as Python's `csv.writer` (QUOTE_MINIMAL) writes it.
fn write_text(out: &mut Vec<u8>, text: &[u8]) {
    if text
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.push(b'"');
        for &b in text {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_where_python_quotes_them() {
        for (text, want) in [
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("cr\r", "\"cr\r\""),
            (" spaced ", " spaced "),
        ] {
            let mut out = Vec::new();
            write_text(&mut out, text.as_bytes());
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}

//! The feature thread's work, build_features' other side of the pass: output rows ->
//! `feature.csv` bytes (hashed, sent in blocks to the staged upload), and the profile of
//! each output column, in the same pass.
//!
//! `feature.csv` is written as the original pipeline's `csv.writer` wrote it: comma-separated, CRLF
//! line ends, a field quoted only when it holds a comma, a quote or a line break, floats
//! as Python's `repr(float)`, nulls as empty cells.

use std::sync::mpsc as std_mpsc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::batch::{text_at, BatchColumn, RowBatch};
use super::parquet_writer::{ParquetLayout, ParquetWriter};
use super::profile::{ColumnProfile, ColumnProfiler};
use crate::config::spec::ColumnType;
use crate::error::{Error, Result};
use crate::values::digest::hex;
use crate::values::number::write_python_float;

/// Output blocks buffered between feature thread and uploader.
pub(super) const OUT_CHANNEL: usize = 2;
/// Size of one output block. Small on purpose: the S3 upload gathers blocks into
/// [`crate::storage::s3::PART_SIZE`] parts itself, so big blocks here would only add
/// memory (8 MiB blocks lifted the 1 GB peak from 35 to 59 MB).
const OUT_BLOCK: usize = 1 << 20;
/// Capacity of an output block: a block is sent once it reaches [`OUT_BLOCK`] after a
/// batch, so it must hold one more batch of the default pipeline's longest rows
/// (`-1.2345678901234567e+300` and CRLF: 26 bytes) without reallocating. (Wider rows
/// just grow it.)
const OUT_CAPACITY: usize = OUT_BLOCK + super::batch::BATCH_ROWS * 32;

/// One file the feature thread wrote: its size and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub size_bytes: u64,
    pub sha256: String,
}

/// What the feature thread wrote: each file's size and digest, and each column's
/// profile.
pub struct Written {
    pub rows: u64,
    /// `feature.csv`, unless it was not asked for.
    pub csv: Option<WrittenFile>,
    /// `feature.parquet`, when it was asked for.
    pub parquet: Option<WrittenFile>,
    pub columns: Vec<(String, ColumnType)>,
    /// Each output column's profile, in CSV order.
    pub profile: Vec<(String, ColumnProfile)>,
    /// CPU time the feature thread used.
    pub cpu: Option<std::time::Duration>,
}

/// Which files the feature thread writes, and where each one's blocks go.
pub(super) struct Targets {
    /// `feature.csv`; `None` when only Parquet is written (the profile still is made).
    pub csv: Option<mpsc::Sender<Bytes>>,
    pub parquet: Option<(ParquetLayout, mpsc::Sender<Bytes>)>,
}

/// The feature thread: output rows -> CSV blocks and Parquet blocks (to their uploads)
/// and column profiles. Both files come from the same batches, one batch at a time.
pub(super) fn write_features(
    batch_rx: std_mpsc::Receiver<RowBatch>,
    targets: Targets,
    columns: Vec<(String, ColumnType)>,
) -> Result<Written> {
    let mut writer = FeatureWriter::new(columns);
    let mut csv = targets.csv.map(Output::new);
    let mut parquet = match targets.parquet {
        Some((layout, tx)) => Some(ParquetWriter::new(layout, Output::new(tx))?),
        None => None,
    };
    if let Some(out) = csv.as_mut() {
        writer.write_header(&mut out.buf);
    }
    for batch in batch_rx {
        match csv.as_mut() {
            Some(out) => {
                writer.write_batch(&batch, &mut out.buf);
                out.send_full_blocks()?;
            }
            None => writer.profile_batch(&batch),
        }
        if let Some(p) = parquet.as_mut() {
            p.write_batch(&batch)?;
        }
    }
    let csv = csv.map(Output::finish).transpose()?;
    let parquet = match parquet {
        Some(p) => Some(p.finish()?.1.finish()?),
        None => None,
    };
    Ok(Written {
        rows: writer.rows(),
        csv,
        parquet,
        columns: writer.columns().to_vec(),
        profile: writer.finish(),
        cpu: super::cpu_time::thread_cpu(),
    })
}

/// Output bytes on their way out: hashed, counted, sent in blocks of [`OUT_BLOCK`].
pub(super) struct Output {
    buf: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
    hasher: Sha256,
    size: u64,
}

impl Output {
    pub(super) fn new(tx: mpsc::Sender<Bytes>) -> Self {
        Output {
            buf: Vec::with_capacity(OUT_CAPACITY),
            tx,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn send(&mut self) -> Result<()> {
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_CAPACITY));
        self.hash_and_send(block)
    }

    fn hash_and_send(&mut self, block: Vec<u8>) -> Result<()> {
        self.hasher.update(&block);
        self.size += block.len() as u64;
        // A closed channel means the uploader failed; it reports the real error.
        self.tx
            .blocking_send(Bytes::from(block))
            .map_err(|_| Error::Internal("feature upload stopped".into()))
    }

    /// Sends blocks of exactly [`OUT_BLOCK`] bytes, keeping the rest for the next one.
    /// Exact sizes let the S3 upload fill each part to exactly its size without growing
    /// its buffer past it: uneven blocks made it double into 16 MiB buffers, which the
    /// allocator then kept (peak RSS of a 1 GB S3 run varied from 49 to 66 MiB).
    fn send_full_blocks(&mut self) -> Result<()> {
        while self.buf.len() >= OUT_BLOCK {
            let mut next = Vec::with_capacity(OUT_CAPACITY);
            next.extend_from_slice(&self.buf[OUT_BLOCK..]);
            self.buf.truncate(OUT_BLOCK);
            let block = std::mem::replace(&mut self.buf, next);
            self.hash_and_send(block)?;
        }
        Ok(())
    }

    /// Sends what is left; the file's size and digest.
    pub(super) fn finish(mut self) -> Result<WrittenFile> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        let digest = self.hasher.finalize();
        Ok(WrittenFile {
            size_bytes: self.size,
            sha256: hex(&digest),
        })
    }
}

/// The Parquet writer writes through this (an error means the upload stopped).
impl std::io::Write for Output {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.send_full_blocks()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
        // One column (the original pipeline's `row_sum`, and any single-column set) needs no
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

    /// Profiles a batch's values without formatting them (when `feature.csv` is not
    /// written): column by column, which gives each profiler the same values in the same
    /// order as [`FeatureWriter::write_batch`].
    pub fn profile_batch(&mut self, batch: &RowBatch) {
        for (column, profiler) in batch.columns().iter().zip(&mut self.profilers) {
            match column {
                BatchColumn::Float(values) => {
                    for v in values {
                        match v {
                            Some(v) => profiler.number(*v),
                            None => profiler.null(),
                        }
                    }
                }
                BatchColumn::Integer(values) => {
                    for v in values {
                        match v {
                            Some(v) => profiler.number(*v as f64),
                            None => profiler.null(),
                        }
                    }
                }
                BatchColumn::Text { bytes, ends } => {
                    for row in 0..ends.len() {
                        let text = text_at(bytes, ends, row);
                        if text.is_empty() {
                            profiler.null();
                        } else {
                            profiler.text(text);
                        }
                    }
                }
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

    #[test]
    fn output_blocks_are_exactly_out_block_bytes_and_hash_the_whole() {
        let (tx, mut rx) = mpsc::channel::<Bytes>(OUT_CHANNEL);
        let drain = std::thread::spawn(move || {
            let mut blocks = Vec::new();
            while let Some(b) = rx.blocking_recv() {
                blocks.push(b);
            }
            blocks
        });
        let mut out = Output::new(tx);
        let mut all = Vec::new();
        // Uneven appends, as batches of rows give: sometimes several blocks at once.
        for (i, n) in [10usize, OUT_BLOCK - 3, 7, 3 * OUT_BLOCK + 5, 1, OUT_BLOCK]
            .into_iter()
            .enumerate()
        {
            let piece: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
            out.buf.extend_from_slice(&piece);
            all.extend_from_slice(&piece);
            out.send_full_blocks().unwrap();
        }
        let WrittenFile {
            size_bytes: size,
            sha256: sha,
        } = out.finish().unwrap();
        let blocks = drain.join().unwrap();
        let (last, full) = blocks.split_last().unwrap();
        assert!(full.iter().all(|b| b.len() == OUT_BLOCK));
        assert!(!last.is_empty() && last.len() <= OUT_BLOCK);
        assert_eq!(blocks.concat(), all);
        assert_eq!(size, all.len() as u64);
        assert_eq!(sha, hex(&Sha256::digest(&all)));
    }
}

//! The single streaming pass over the raw object.
//!
//! The work overlaps across tasks and threads so both cores stay busy and memory stays
//! flat:
//! - a reader task pulls chunks from storage (and, for `.gz` / `.zst` input, a
//!   decompression thread inflates them);
//! - the scanner thread parses CSV, counts for `validate_data`'s table rules, runs the
//!   cell-by-cell rules ([`ColumnChecks`]) and computes the output rows: row grain row by
//!   row ([`RowFeatures`]), sent on in batches ([`RowBatch`]); entity grain into groups
//!   ([`GroupBy`]), sent sorted once the input ends;
//! - the feature thread formats the rows, profiles each output column and hashes the
//!   output ([`FeatureWriter`]);
//! - this task streams the output into a staged upload.
//!
//! Every channel between them is bounded, so a slow side applies back-pressure instead of
//! buffering: memory depends on chunk, batch and block sizes, never on the input size
//! (entity grain adds its groups, `unique` its keys: they grow with distinct keys only).

use std::sync::mpsc as std_mpsc;

use bytes::Bytes;
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::cell_batch::RowBatch;
use crate::column_checks::{CellTally, ColumnChecks};
use crate::compression::{decompress, Compression};
use crate::csv_scan::{CsvScanner, Record, RecordSink, ScanStats};
use crate::error::{Error, Result};
use crate::feature_writer::FeatureWriter;
use crate::group_by::{AggValue, GroupBy};
use crate::interrupt::Interrupt;
use crate::pipeline::{self, ColumnType, PipelineSpec};
use crate::profile::ColumnProfile;
use crate::row_features::RowFeatures;
use crate::stages::validate_data::RawStats;
use crate::storage::{ChunkSource, StorageError, StorageResult, Upload};

/// Raw chunks buffered between reader and scanner (each at most 1 MiB locally).
const RAW_CHANNEL: usize = 4;
/// Batches buffered between scanner and feature thread.
const BATCH_CHANNEL: usize = 4;
/// Output blocks buffered between feature thread and uploader.
const OUT_CHANNEL: usize = 2;
/// Size of one output block. Small on purpose: the S3 upload gathers blocks into
/// [`crate::storage::s3::PART_SIZE`] parts itself, so big blocks here would only add
/// memory (8 MiB blocks lifted the 1 GB peak from 35 to 59 MB).
const OUT_BLOCK: usize = 1 << 20;
/// Capacity of an output block: a block is sent once it reaches [`OUT_BLOCK`] after a
/// batch, so it must hold one more batch of the seed's longest rows
/// (`-1.2345678901234567e+300` and CRLF: 26 bytes) without reallocating. (Wider rows
/// just grow it.)
const OUT_CAPACITY: usize = OUT_BLOCK + crate::cell_batch::BATCH_ROWS * 32;

/// The feature file as written by the pass, still staged (invisible) in storage.
pub struct FeatureFile {
    pub rows: u64,
    pub size_bytes: u64,
    pub sha256: String,
    pub columns: Vec<(String, ColumnType)>,
    /// Each output column's profile, in CSV order.
    pub profile: Vec<(String, ColumnProfile)>,
    /// Entity grain: how many distinct keys (output rows) there were.
    pub groups: Option<u64>,
    /// `None` in a dry run.
    pub upload: Option<Box<dyn Upload>>,
}

/// What the pass found.
pub struct ScanOutcome {
    pub stats: RawStats,
    pub scan: ScanStats,
    /// Cell-by-cell rule results, by rule index.
    pub tallies: Vec<(usize, CellTally)>,
    pub feature: FeatureFile,
}

/// Reads `source` once, counting and building features, writing into `upload`.
/// On error the upload is aborted: nothing staged survives a failed pass.
pub async fn scan_raw(
    mut source: Box<dyn ChunkSource>,
    compression: Compression,
    upload: Option<Box<dyn Upload>>,
    spec: &PipelineSpec,
    tz: Tz,
    interrupt: &Interrupt,
) -> Result<ScanOutcome> {
    let (raw_tx, raw_rx) = mpsc::channel::<StorageResult<Bytes>>(RAW_CHANNEL);
    let (batch_tx, batch_rx) = std_mpsc::sync_channel::<RowBatch>(BATCH_CHANNEL);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(OUT_CHANNEL);

    let reader = tokio::spawn(async move {
        loop {
            let item = match source.next_chunk().await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if raw_tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    // Compressed input: one more stage, a decompression thread, before the scanner.
    let (csv_rx, decompressor) = if compression == Compression::None {
        (raw_rx, None)
    } else {
        let (plain_tx, plain_rx) = mpsc::channel::<StorageResult<Bytes>>(RAW_CHANNEL);
        let stage = tokio::task::spawn_blocking(move || decompress(compression, raw_rx, plain_tx));
        (plain_rx, Some(stage))
    };
    let columns = spec.features.columns();
    let spec = spec.clone();
    let scanner = tokio::task::spawn_blocking(move || scan_csv(csv_rx, batch_tx, &spec, tz));
    let features = tokio::task::spawn_blocking(move || write_features(batch_rx, out_tx, columns));

    let mut upload = upload;
    let mut upload_error: Option<StorageError> = None;
    let mut interrupted = None;
    loop {
        let block = tokio::select! {
            block = out_rx.recv() => block,
            signal = interrupt.wait() => {
                interrupted = Some(signal);
                break;
            }
        };
        let Some(block) = block else { break };
        if let Some(u) = upload.as_mut() {
            if let Err(e) = u.write(block).await {
                upload_error = Some(e);
                break;
            }
        }
    }
    // Closing the receiver stops the feature thread (and so the scanner) if the upload
    // failed or a stop signal came first; stopping the reader unblocks a scanner that
    // waits on a slow or stalled download. (On success the reader has already ended.)
    drop(out_rx);
    reader.abort();
    let scanned = joined(scanner.await);
    let built = joined(features.await);
    let decompressed = match decompressor {
        Some(stage) => joined(stage.await),
        None => Ok(()),
    };

    // The root cause wins: a stop signal or an upload failure stops the threads, which
    // then report only that their output channel closed; a corrupt archive ends the CSV
    // early (so the scanner's view of it is meaningless); a malformed CSV ends the scanner
    // first.
    let result = if let Some(signal) = interrupted {
        Err(Error::Interrupted(signal))
    } else {
        match (upload_error, decompressed, scanned, built) {
            (Some(e), ..) => Err(Error::Storage(e)),
            (None, Err(e), ..) => Err(e),
            (None, Ok(()), Err(e), _) | (None, Ok(()), Ok(_), Err(e)) => Err(e),
            (None, Ok(()), Ok(scanned), Ok(feature)) => Ok((scanned, feature)),
        }
    };
    // The whole output is written: the upload can send its last part now, while the rules
    // are evaluated and the publish checks run, instead of at commit.
    let result = match (result, upload.as_mut()) {
        (Ok(done), Some(u)) => u
            .finish_writes()
            .await
            .map(|()| done)
            .map_err(Error::Storage),
        (result, _) => result,
    };
    match result {
        Ok((scanned, mut feature)) => {
            feature.upload = upload;
            feature.groups = scanned.groups;
            Ok(ScanOutcome {
                stats: scanned.stats,
                scan: scanned.scan,
                tallies: scanned.tallies,
                feature,
            })
        }
        Err(e) => {
            if let Some(u) = upload {
                u.abort().await;
            }
            Err(e)
        }
    }
}

fn joined<T>(res: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    res.map_err(|e| Error::Internal(format!("a pass thread stopped unexpectedly: {e}")))?
}

/// What the scanner thread found: counts, cell-by-cell rule tallies, entity groups.
struct Scanned {
    stats: RawStats,
    scan: ScanStats,
    tallies: Vec<(usize, CellTally)>,
    groups: Option<u64>,
}

/// The scanner thread: CSV -> counts, rule tallies and output rows in batches.
fn scan_csv(
    mut raw_rx: mpsc::Receiver<StorageResult<Bytes>>,
    batch_tx: std_mpsc::SyncSender<RowBatch>,
    spec: &PipelineSpec,
    tz: Tz,
) -> Result<Scanned> {
    let types: Vec<ColumnType> = spec
        .features
        .columns()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let mut sink = ScanSink {
        stats: RawStats::default(),
        checks: None,
        features: None,
        batch: RowBatch::new(&types),
        types,
        tx: batch_tx,
        spec,
        only_empty_is_null: spec.source.only_empty_is_null(),
        tz,
        closed: false,
    };
    // The delimiter was checked when the pipeline file was loaded.
    let mut scanner = CsvScanner::with_delimiter(spec.source.delimiter).map_err(Error::Internal)?;
    while let Some(chunk) = raw_rx.blocking_recv() {
        let chunk = chunk?;
        scanner.feed(&chunk, &mut sink).map_err(malformed)?;
        if sink.closed {
            return Err(Error::Internal("the feature thread stopped".into()));
        }
    }
    let scan = scanner.finish(&mut sink).map_err(malformed)?;
    let groups = match sink.features.take() {
        Some(Features::Entities(groups)) => {
            let count = groups.groups() as u64;
            groups.finish(|keys, values| sink.push_group(keys, values));
            Some(count)
        }
        _ => None,
    };
    sink.send_batch();
    if sink.closed {
        return Err(Error::Internal("the feature thread stopped".into()));
    }
    Ok(Scanned {
        stats: sink.stats,
        scan,
        tallies: sink.checks.map(ColumnChecks::finish).unwrap_or_default(),
        groups,
    })
}

fn malformed(e: crate::csv_scan::ScanError) -> Error {
    Error::Malformed {
        line: e.line,
        message: e.message,
    }
}

/// The output side of the scanner thread, bound to the header.
enum Features {
    Rows(RowFeatures),
    Entities(Box<GroupBy>),
}

/// Routes each record: the first is the header, the rest are data rows.
struct ScanSink<'a> {
    stats: RawStats,
    /// Bound at the header; `None` when no rule works cell by cell.
    checks: Option<ColumnChecks>,
    features: Option<Features>,
    batch: RowBatch,
    types: Vec<ColumnType>,
    tx: std_mpsc::SyncSender<RowBatch>,
    spec: &'a PipelineSpec,
    /// Nulls are only empty cells: count them without comparing texts.
    only_empty_is_null: bool,
    tz: Tz,
    /// The feature thread is gone (it only stops early when the upload failed).
    closed: bool,
}

impl ScanSink<'_> {
    fn send_batch(&mut self) {
        let next = RowBatch::new(&self.types);
        let full = std::mem::replace(&mut self.batch, next);
        if !full.is_empty() && self.tx.send(full).is_err() {
            self.closed = true;
        }
    }

    /// One entity-grain output row: the key cells, then the aggregates.
    fn push_group(&mut self, keys: &[&[u8]], values: &[AggValue<'_>]) {
        if self.closed {
            return;
        }
        for (i, key) in keys.iter().enumerate() {
            self.batch.push_text(i, key);
        }
        for (j, value) in values.iter().enumerate() {
            let i = keys.len() + j;
            match value {
                AggValue::Null => self.batch.push_float(i, None),
                AggValue::Float(v) => self.batch.push_float(i, Some(*v)),
                AggValue::Int(v) => self.batch.push_integer(i, Some(*v)),
                AggValue::Text(t) => self.batch.push_text(i, t),
            }
        }
        self.batch.end_row();
        if self.batch.is_full() {
            self.send_batch();
        }
    }
}

impl RecordSink for ScanSink<'_> {
    fn record(&mut self, record: &Record<'_>) {
        let Some(features) = self.features.as_mut() else {
            self.stats.set_header(record);
            let checks = ColumnChecks::bind(record, self.spec);
            self.checks = (!checks.is_empty()).then_some(checks);
            self.features = Some(match &self.spec.features {
                pipeline::Features::Rows(rows) => {
                    Features::Rows(RowFeatures::bind(record, rows, &self.spec.source))
                }
                pipeline::Features::Entities(entity) => {
                    let source = self.spec.source.clone();
                    Features::Entities(Box::new(GroupBy::bind(
                        record,
                        entity,
                        self.tz,
                        move |cell| source.is_null(cell),
                    )))
                }
            });
            return;
        };
        if self.only_empty_is_null {
            self.stats.observe(record);
        } else {
            self.stats.observe_with(record, &self.spec.source);
        }
        if let Some(checks) = self.checks.as_mut() {
            checks.observe(record);
        }
        match features {
            Features::Rows(rows) => {
                rows.project(record, &mut self.batch);
                if self.batch.is_full() {
                    self.send_batch();
                }
            }
            Features::Entities(groups) => groups.observe(record),
        }
    }
}

/// The feature thread: output rows -> CSV blocks and column profiles.
fn write_features(
    batch_rx: std_mpsc::Receiver<RowBatch>,
    out_tx: mpsc::Sender<Bytes>,
    columns: Vec<(String, ColumnType)>,
) -> Result<FeatureFile> {
    let mut writer = FeatureWriter::new(columns);
    let mut out = Output::new(out_tx);
    writer.write_header(&mut out.buf);
    for batch in batch_rx {
        writer.write_batch(&batch, &mut out.buf);
        out.send_full_blocks()?;
    }
    let (size_bytes, sha256) = out.finish()?;
    Ok(FeatureFile {
        rows: writer.rows(),
        size_bytes,
        sha256,
        columns: writer.columns().to_vec(),
        profile: writer.finish(),
        groups: None,
        upload: None,
    })
}

/// Feature bytes on their way out: hashed, counted, sent in blocks of [`OUT_BLOCK`].
struct Output {
    buf: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
    hasher: Sha256,
    size: u64,
}

impl Output {
    fn new(tx: mpsc::Sender<Bytes>) -> Self {
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

    fn finish(mut self) -> Result<(u64, String)> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        let digest = self.hasher.finalize();
        Ok((self.size, hex(&digest)))
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (size, sha) = out.finish().unwrap();
        let blocks = drain.join().unwrap();
        let (last, full) = blocks.split_last().unwrap();
        assert!(full.iter().all(|b| b.len() == OUT_BLOCK));
        assert!(!last.is_empty() && last.len() <= OUT_BLOCK);
        assert_eq!(blocks.concat(), all);
        assert_eq!(size, all.len() as u64);
        assert_eq!(sha, hex(&Sha256::digest(&all)));
    }
}

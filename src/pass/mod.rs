//! The single streaming pass over the raw object: read once, two stages served.
//!
//! validate_data contributes its side ([`ValidationSide`]: counting and the cell-by-cell
//! rules), build_features its side ([`FeatureSide`]: feature rows or groups, then on the
//! feature thread `feature.csv`, its profile and its digest). [`read_once`] runs both over
//! one read of the raw object. The work overlaps across tasks and threads so both cores
//! stay busy and memory stays flat:
//! - a reader task pulls chunks from storage (and, for `.gz` / `.zst` input, a
//!   decompression thread inflates them), counting the bytes for the progress watch;
//! - the scanner thread parses CSV ([`csv_scan`]) and hands each record to both sides;
//!   the feature side sends its rows on in batches ([`batch`]);
//! - the feature thread formats the rows, profiles each output column and hashes the
//!   output ([`feature_writer`]);
//! - this task streams the output into the staged upload it was lent.
//!
//! Every channel between them is bounded, so a slow side applies back-pressure instead of
//! buffering: memory depends on chunk, batch and block sizes, never on the input size
//! (entity grain adds its groups, `unique` its keys: they grow with distinct keys only;
//! entity grain's stop at a memory budget, see [`group_by`]).

pub mod batch;
pub mod column_checks;
pub mod cpu_time;
pub mod csv_scan;
pub mod decompress;
pub mod feature_writer;
pub mod features;
pub mod group_by;
pub mod key_table;
pub mod profile;
pub mod raw_stats;
pub mod row_features;
pub mod validation;

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::spec::ColumnType;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::observe::progress::Counters;
use crate::storage::{ChunkSource, StorageError, StorageResult, Upload};
use batch::RowBatch;
use csv_scan::{Record, RecordSink};
use decompress::{decompress, Compression};
use feature_writer::{write_features, OUT_CHANNEL};
pub use features::FeatureSide;
use profile::ColumnProfile;
pub use validation::{ValidationFound, ValidationSide};

/// Raw chunks buffered between reader and scanner (each at most 1 MiB locally).
const RAW_CHANNEL: usize = 4;
/// Batches buffered between scanner and feature thread.
const BATCH_CHANNEL: usize = 4;

/// What build_features' side produced: `feature.csv`, written into the staged upload.
pub struct FeaturesBuilt {
    pub rows: u64,
    pub size_bytes: u64,
    pub sha256: String,
    pub columns: Vec<(String, ColumnType)>,
    /// Each output column's profile, in CSV order.
    pub profile: Vec<(String, ColumnProfile)>,
    /// Entity grain: how many distinct keys (output rows) there were.
    pub groups: Option<u64>,
}

/// Where the pass's time went: its wall time, and the CPU time of the scanner thread
/// (CSV parsing, both sides' per-record work) and of the feature thread (formatting,
/// profiling, hashing the output).
#[derive(Debug, Clone, Copy, Default)]
pub struct PassTiming {
    pub wall: Duration,
    pub scan_cpu: Option<Duration>,
    pub write_cpu: Option<Duration>,
}

/// What the pass produced for each side.
pub struct PassOutcome {
    pub validation: ValidationFound,
    pub features: FeaturesBuilt,
    pub timing: PassTiming,
}

/// Reads `source` once, running both sides over every record and streaming
/// `feature.csv` into `upload` (`None` in a dry run). The upload is only lent: its owner
/// commits or aborts it, whatever happens here.
pub async fn read_once(
    mut source: Box<dyn ChunkSource>,
    compression: Compression,
    validation: ValidationSide,
    mut features: FeatureSide,
    mut upload: Option<&mut Box<dyn Upload>>,
    interrupt: &Interrupt,
    counters: &Arc<Counters>,
) -> Result<PassOutcome> {
    let started = Instant::now();
    let (raw_tx, raw_rx) = mpsc::channel::<StorageResult<Bytes>>(RAW_CHANNEL);
    let (batch_tx, batch_rx) = std_mpsc::sync_channel::<RowBatch>(BATCH_CHANNEL);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(OUT_CHANNEL);

    let read = counters.clone();
    let reader = tokio::spawn(async move {
        loop {
            let item = match source.next_chunk().await {
                Ok(Some(chunk)) => {
                    read.add(chunk.len() as u64);
                    Ok(chunk)
                }
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
    let columns = features.columns();
    features.connect(batch_tx);
    let scanned_rows = counters.clone();
    let scanner =
        tokio::task::spawn_blocking(move || scan(csv_rx, validation, features, &scanned_rows));
    let writer = tokio::task::spawn_blocking(move || write_features(batch_rx, out_tx, columns));

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
    let written = joined(writer.await);
    let decompressed = match decompressor {
        Some(stage) => joined(stage.await),
        None => Ok(()),
    };

    // The root cause wins: a stop signal or an upload failure stops the threads, which
    // then report only that their output channel closed; a corrupt archive ends the CSV
    // early (so the scanner's view of it is meaningless); a malformed CSV ends the scanner
    // first.
    let (scanned, written) = if let Some(signal) = interrupted {
        return Err(Error::Interrupted(signal));
    } else {
        match (upload_error, decompressed, scanned, written) {
            (Some(e), ..) => return Err(Error::Storage(e)),
            (None, Err(e), ..) => return Err(e),
            (None, Ok(()), Err(e), _) | (None, Ok(()), Ok(_), Err(e)) => return Err(e),
            (None, Ok(()), Ok(scanned), Ok(written)) => (scanned, written),
        }
    };
    // The whole output is written: the upload can send its last part now, while the rules
    // are evaluated and the publish checks run, instead of at commit.
    if let Some(u) = upload.as_mut() {
        u.finish_writes().await?;
    }
    Ok(PassOutcome {
        validation: scanned.validation,
        features: FeaturesBuilt {
            rows: written.rows,
            size_bytes: written.size_bytes,
            sha256: written.sha256,
            columns: written.columns,
            profile: written.profile,
            groups: scanned.groups,
        },
        timing: PassTiming {
            wall: started.elapsed(),
            scan_cpu: scanned.cpu,
            write_cpu: written.cpu,
        },
    })
}

fn joined<T>(res: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    res.map_err(|e| Error::Internal(format!("a pass thread stopped unexpectedly: {e}")))?
}

/// What the scanner thread found.
struct Scanned {
    validation: ValidationFound,
    groups: Option<u64>,
    cpu: Option<Duration>,
}

/// The scanner thread: CSV -> both sides, record by record.
fn scan(
    mut raw_rx: mpsc::Receiver<StorageResult<Bytes>>,
    validation: ValidationSide,
    features: FeatureSide,
    counters: &Counters,
) -> Result<Scanned> {
    let mut sides = Sides {
        validation,
        features,
        header_seen: false,
        rows: 0,
    };
    // The delimiter was checked when the pipeline was loaded.
    let mut scanner = sides
        .validation
        .scanner()
        .map_err(|e| Error::Internal(e.to_string()))?;
    while let Some(chunk) = raw_rx.blocking_recv() {
        let chunk = chunk?;
        scanner.feed(&chunk, &mut sides).map_err(malformed)?;
        counters.set_rows(sides.rows);
        if sides.features.closed() {
            return Err(Error::Internal("the feature thread stopped".into()));
        }
        if let Some(e) = sides.features.over_budget() {
            return Err(e);
        }
    }
    let scan = scanner.finish(&mut sides).map_err(malformed)?;
    sides.features.end_of_input();
    if let Some(e) = sides.features.over_budget() {
        return Err(e);
    }
    let Sides {
        validation,
        features,
        ..
    } = sides;
    let groups = features.finish();
    Ok(Scanned {
        validation: validation.finish(scan),
        groups,
        cpu: cpu_time::thread_cpu(),
    })
}

fn malformed(e: csv_scan::ScanError) -> Error {
    Error::Malformed {
        line: e.line,
        message: e.message,
    }
}

/// Routes each record to both sides: the first is the header, the rest are data rows.
struct Sides {
    validation: ValidationSide,
    features: FeatureSide,
    header_seen: bool,
    /// Data rows so far, for the progress counters.
    rows: u64,
}

impl RecordSink for Sides {
    #[inline]
    fn record(&mut self, record: &Record<'_>) {
        if !self.header_seen {
            self.header_seen = true;
            self.validation.header(record);
            self.features.header(record);
            return;
        }
        self.rows += 1;
        self.validation.row(record);
        self.features.row(record);
    }
}

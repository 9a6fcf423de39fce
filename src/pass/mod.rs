//! The single streaming pass over the raw object: read once, two stages served.
//!
//! validate_data contributes its side ([`ValidationSide`]: counting and the cell-by-cell
//! rules), build_features its side ([`FeatureSide`]: feature rows or groups, then on the
//! feature thread `feature.csv`, its profile and its digest). [`read_once`] runs both over
//! one read of the raw object. The work overlaps across tasks and threads so both cores
//! stay busy and memory stays flat:
//! - a reader task pulls chunks from storage (and, for `.gz` / `.zst` input, a
//!   decompression thread inflates them);
//! - the scanner thread parses CSV ([`csv_scan`]) and hands each record to both sides;
//!   the feature side sends its rows on in batches ([`batch`]);
//! - the feature thread formats the rows, profiles each output column and hashes the
//!   output ([`feature_writer`]);
//! - this task streams the output into the staged upload it was lent.
//!
//! Every channel between them is bounded, so a slow side applies back-pressure instead of
//! buffering: memory depends on chunk, batch and block sizes, never on the input size
//! (entity grain adds its groups, `unique` its keys: they grow with distinct keys only).

pub mod batch;
pub mod column_checks;
pub mod cpu_time;
pub mod csv_scan;
pub mod decompress;
pub mod feature_writer;
pub mod features;
pub mod group_by;
pub mod key_table;
pub mod parquet_writer;
pub mod profile;
pub mod raw_stats;
pub mod row_features;
pub mod validation;

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::spec::ColumnType;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::storage::{ChunkSource, StorageError, StorageResult, Upload};
use batch::RowBatch;
use csv_scan::{Record, RecordSink};
use decompress::{decompress, Compression};
pub use feature_writer::WrittenFile;
use feature_writer::{write_features, Targets, OUT_CHANNEL};
pub use features::FeatureSide;
use parquet_writer::ParquetLayout;
use profile::ColumnProfile;
pub use validation::{ValidationFound, ValidationSide};

/// Raw chunks buffered between reader and scanner (each at most 1 MiB locally).
const RAW_CHANNEL: usize = 4;
/// Batches buffered between scanner and feature thread.
const BATCH_CHANNEL: usize = 4;

/// What build_features' side produced: `feature.csv` and / or `feature.parquet`, written
/// into their staged uploads.
pub struct FeaturesBuilt {
    pub rows: u64,
    /// `feature.csv`, when it was written.
    pub csv: Option<WrittenFile>,
    /// `feature.parquet`, when it was written.
    pub parquet: Option<WrittenFile>,
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

/// One output file of the pass: where its bytes go.
pub struct Target<'a> {
    /// The staged upload it streams into; `None` in a dry run (the bytes are still made,
    /// counted and hashed). Only lent: its owner commits or aborts it.
    pub upload: Option<&'a mut Box<dyn Upload>>,
}

/// The files the pass writes: `feature.csv`, `feature.parquet` (with its layout), or both.
pub struct Outputs<'a> {
    pub csv: Option<Target<'a>>,
    pub parquet: Option<(ParquetLayout, Target<'a>)>,
}

/// Reads `source` once, running both sides over every record and streaming the output
/// files into their uploads. The uploads are only lent: their owner commits or aborts
/// them, whatever happens here.
pub async fn read_once(
    mut source: Box<dyn ChunkSource>,
    compression: Compression,
    validation: ValidationSide,
    mut features: FeatureSide,
    outputs: Outputs<'_>,
    interrupt: &Interrupt,
) -> Result<PassOutcome> {
    let started = Instant::now();
    let (raw_tx, raw_rx) = mpsc::channel::<StorageResult<Bytes>>(RAW_CHANNEL);
    let (batch_tx, batch_rx) = std_mpsc::sync_channel::<RowBatch>(BATCH_CHANNEL);
    let (csv_tx, csv_rx) = mpsc::channel::<Bytes>(OUT_CHANNEL);
    let (parquet_tx, parquet_rx) = mpsc::channel::<Bytes>(OUT_CHANNEL);
    let Outputs { csv, parquet } = outputs;
    let (parquet_layout, parquet_target) = match parquet {
        Some((layout, target)) => (Some(layout), Some(target)),
        None => (None, None),
    };
    // A file not asked for has no sender: its receiver reads as closed at once.
    let targets = Targets {
        csv: csv.is_some().then_some(csv_tx),
        parquet: parquet_layout.map(|layout| (layout, parquet_tx)),
    };
    let mut sinks = [
        Sink::new(csv_rx, csv.and_then(|t| t.upload)),
        Sink::new(parquet_rx, parquet_target.and_then(|t| t.upload)),
    ];

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
    let columns = features.columns();
    features.connect(batch_tx);
    let scanner = tokio::task::spawn_blocking(move || scan(csv_rx, validation, features));
    let writer = tokio::task::spawn_blocking(move || write_features(batch_rx, targets, columns));

    let mut upload_error: Option<StorageError> = None;
    let mut interrupted = None;
    while sinks.iter().any(|s| s.open) {
        let [csv_sink, parquet_sink] = &mut sinks;
        let (which, block) = tokio::select! {
            block = csv_sink.rx.recv(), if csv_sink.open => (0, block),
            block = parquet_sink.rx.recv(), if parquet_sink.open => (1, block),
            signal = interrupt.wait() => {
                interrupted = Some(signal);
                break;
            }
        };
        let sink = &mut sinks[which];
        let Some(block) = block else {
            sink.open = false;
            continue;
        };
        if let Some(u) = sink.upload.as_mut() {
            if let Err(e) = u.write(block).await {
                upload_error = Some(e);
                break;
            }
        }
    }
    // Closing the receivers stops the feature thread (and so the scanner) if an upload
    // failed or a stop signal came first; stopping the reader unblocks a scanner that
    // waits on a slow or stalled download. (On success the reader has already ended.)
    let uploads = sinks.map(|s| s.upload);
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
    // The whole output is written: the uploads can send their last parts now, while the
    // rules are evaluated and the publish checks run, instead of at commit.
    for u in uploads.into_iter().flatten() {
        u.finish_writes().await?;
    }
    Ok(PassOutcome {
        validation: scanned.validation,
        features: FeaturesBuilt {
            rows: written.rows,
            csv: written.csv,
            parquet: written.parquet,
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

/// One output file's blocks on their way from the feature thread to its upload.
struct Sink<'a> {
    rx: mpsc::Receiver<Bytes>,
    upload: Option<&'a mut Box<dyn Upload>>,
    /// Until the feature thread has sent its last block.
    open: bool,
}

impl<'a> Sink<'a> {
    fn new(rx: mpsc::Receiver<Bytes>, upload: Option<&'a mut Box<dyn Upload>>) -> Self {
        Sink {
            rx,
            upload,
            open: true,
        }
    }
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
) -> Result<Scanned> {
    let mut sides = Sides {
        validation,
        features,
        header_seen: false,
    };
    // The delimiter was checked when the pipeline was loaded.
    let mut scanner = sides
        .validation
        .scanner()
        .map_err(|e| Error::Internal(e.to_string()))?;
    while let Some(chunk) = raw_rx.blocking_recv() {
        let chunk = chunk?;
        scanner.feed(&chunk, &mut sides).map_err(malformed)?;
        if sides.features.closed() {
            return Err(Error::Internal("the feature thread stopped".into()));
        }
    }
    let scan = scanner.finish(&mut sides).map_err(malformed)?;
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
        self.validation.row(record);
        self.features.row(record);
    }
}

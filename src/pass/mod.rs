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
pub mod parquet_writer;
pub mod profile;
pub mod raw_stats;
pub mod row_features;
pub mod sources;
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
use crate::storage::{StorageError, StorageResult, Upload};
use batch::RowBatch;
use csv_scan::{Record, RecordSink, ScanStats};
use decompress::decompress;
pub use feature_writer::WrittenFile;
use feature_writer::{write_features, Targets, OUT_CHANNEL};
pub use features::FeatureSide;
use parquet_writer::ParquetLayout;
use profile::ColumnProfile;
pub use sources::{Part, Piece, RawSource};
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

/// Reads `source` once (one object, or every part of a many-file input in order),
/// running both sides over every record and streaming the output files into their
/// uploads. The uploads are only lent: their owner commits or aborts them, whatever
/// happens here.
pub async fn read_once(
    mut source: RawSource,
    validation: ValidationSide,
    mut features: FeatureSide,
    outputs: Outputs<'_>,
    interrupt: &Interrupt,
    counters: &Arc<Counters>,
) -> Result<PassOutcome> {
    let started = Instant::now();
    let (raw_tx, raw_rx) = mpsc::channel::<StorageResult<Piece>>(RAW_CHANNEL);
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

    let parts = source.part_list();
    let first_compression = source.first_compression();
    let compressed = source.compressed();
    let read = counters.clone();
    let reader = tokio::spawn(async move {
        loop {
            let item = match source.next_piece().await {
                Ok(Some(piece)) => {
                    if let Piece::Chunk(chunk) = &piece {
                        read.add(chunk.len() as u64);
                    }
                    Ok(piece)
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
    let (text_rx, decompressor) = if compressed {
        let (plain_tx, plain_rx) = mpsc::channel::<StorageResult<Piece>>(RAW_CHANNEL);
        let parts = parts.clone();
        let stage = tokio::task::spawn_blocking(move || {
            decompress(first_compression, parts, raw_rx, plain_tx)
        });
        (plain_rx, Some(stage))
    } else {
        (raw_rx, None)
    };
    let columns = features.columns();
    features.connect(batch_tx);
    let scanned_rows = counters.clone();
    let scanner = tokio::task::spawn_blocking(move || {
        scan(text_rx, validation, features, parts, &scanned_rows)
    });
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

/// The scanner thread: CSV -> both sides, record by record. A many-file input gets a
/// fresh scanner per part (each part is a CSV file of its own); its lines are numbered
/// per part in errors.
fn scan(
    mut raw_rx: mpsc::Receiver<StorageResult<Piece>>,
    validation: ValidationSide,
    features: FeatureSide,
    parts: Arc<[Part]>,
    counters: &Counters,
) -> Result<Scanned> {
    let mut sides = Sides {
        validation,
        features,
        header_seen: false,
        parts: (!parts.is_empty()).then(PartState::default),
        rows: 0,
    };
    // The delimiter was checked when the pipeline was loaded.
    let new_scanner = |sides: &Sides| {
        sides
            .validation
            .scanner()
            .map_err(|e| Error::Internal(e.to_string()))
    };
    let mut scanner = new_scanner(&sides)?;
    let mut totals = ScanStats::default();
    // The part being read, for error messages.
    let mut part: Option<usize> = None;
    let name = |part: Option<usize>| part.and_then(|i| parts.get(i)).map(|p| p.key.clone());
    while let Some(piece) = raw_rx.blocking_recv() {
        match piece? {
            Piece::Chunk(chunk) => {
                scanner
                    .feed(&chunk, &mut sides)
                    .map_err(|e| malformed(e, name(part)))?;
            }
            Piece::Part(next) => {
                if part.is_some() {
                    let ended = std::mem::replace(&mut scanner, new_scanner(&sides)?);
                    let stats = ended
                        .finish(&mut sides)
                        .map_err(|e| malformed(e, name(part)))?;
                    add(&mut totals, &stats);
                    sides.end_part(&stats);
                }
                part = Some(next);
                sides.begin_part(next);
            }
        }
        if let Some(e) = sides.take_error(&parts) {
            return Err(e);
        }
        counters.set_rows(sides.rows);
        if sides.features.closed() {
            return Err(Error::Internal("the feature thread stopped".into()));
        }
        if let Some(e) = sides.features.over_budget() {
            return Err(e);
        }
    }
    let stats = scanner
        .finish(&mut sides)
        .map_err(|e| malformed(e, name(part)))?;
    if let Some(e) = sides.take_error(&parts) {
        return Err(e);
    }
    add(&mut totals, &stats);
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
        validation: validation.finish(totals),
        groups,
        cpu: cpu_time::thread_cpu(),
    })
}

/// Adds a part's scan counts to the input's.
fn add(totals: &mut ScanStats, part: &ScanStats) {
    totals.blank_lines += part.blank_lines;
    totals.bytes += part.bytes;
    totals.had_bom |= part.had_bom;
    totals.lines += part.lines;
}

fn malformed(e: csv_scan::ScanError, file: Option<String>) -> Error {
    Error::Malformed {
        file,
        line: e.line,
        message: e.message,
    }
}

/// Routes each record to both sides: the first is the header, the rest are data rows.
struct Sides {
    validation: ValidationSide,
    features: FeatureSide,
    header_seen: bool,
    /// A many-file input: where its parts are.
    parts: Option<PartState>,
    /// Data rows so far, for the progress counters.
    rows: u64,
}

/// Where the scanner is in a many-file input. Each later part's header is checked against
/// the first header and skipped; data lines are renumbered as the lines of one file (the
/// first header is line 1, each part's data follows the previous part's), so rule results
/// read as for the parts concatenated.
#[derive(Default)]
struct PartState {
    /// The header of the input, and the part it came from.
    header: Option<(Vec<String>, usize)>,
    /// The part being read.
    current: usize,
    /// Whether the current part's header was read (checked, or taken as the header).
    header_done: bool,
    /// The one-file line count before the current part.
    offset: u64,
    /// The current part's lines not in the one-file numbering: up to its header, which
    /// only the part giving the input its header keeps (0 until a header is read).
    skipped: u64,
    /// The one-file line count so far.
    lines: u64,
    /// A part whose header is not the first one: index and the difference.
    mismatch: Option<(usize, String)>,
}

impl Sides {
    fn begin_part(&mut self, part: usize) {
        if let Some(p) = self.parts.as_mut() {
            p.current = part;
            p.header_done = false;
            p.offset = p.lines;
            p.skipped = 0;
        }
    }

    /// After a part: its lines join the one-file numbering.
    fn end_part(&mut self, stats: &ScanStats) {
        if let Some(p) = self.parts.as_mut() {
            p.lines += stats.lines.saturating_sub(p.skipped);
        }
    }

    /// The error a part's header caused, naming both parts.
    fn take_error(&mut self, parts: &[Part]) -> Option<Error> {
        let p = self.parts.as_mut()?;
        let (bad, why) = p.mismatch.take()?;
        let first = p.header.as_ref().map_or(0, |(_, at)| *at);
        let name = |i: usize| parts.get(i).map_or("?", |p| p.key.as_str());
        Some(Error::HeaderMismatch(format!(
            "{} does not have the header of {} (the first part): {why}; every part must \
             have the same columns in the same order",
            name(bad),
            name(first)
        )))
    }
}

impl RecordSink for Sides {
    #[inline]
    fn record(&mut self, record: &Record<'_>) {
        let record = match self.parts.as_mut() {
            None => *record,
            Some(p) => {
                if p.mismatch.is_some() {
                    return;
                }
                if !p.header_done {
                    p.header_done = true;
                    match &p.header {
                        None => {
                            let names = record.fields().map(String::from).collect();
                            p.header = Some((names, p.current));
                        }
                        Some((first, _)) => {
                            if let Some(why) = header_difference(first, record) {
                                p.mismatch = Some((p.current, why));
                            }
                            // A later part's header is not data, nor a line of the one
                            // file, nor are the lines before it.
                            p.skipped = record.line;
                            return;
                        }
                    }
                }
                record.at_line(p.offset + record.line - p.skipped)
            }
        };
        if !self.header_seen {
            self.header_seen = true;
            self.validation.header(&record);
            self.features.header(&record);
            return;
        }
        self.rows += 1;
        self.validation.row(&record);
        self.features.row(&record);
    }
}

/// How a part's header differs from the first, or `None` when it is the same.
fn header_difference(first: &[String], header: &Record<'_>) -> Option<String> {
    if let Some(i) = (0..first.len().min(header.len())).find(|&i| first[i] != header.field(i)) {
        return Some(format!(
            "column {} is {:?}, not {:?}",
            i + 1,
            crate::values::shorten(header.field(i)),
            crate::values::shorten(&first[i])
        ));
    }
    (first.len() != header.len())
        .then(|| format!("it has {} columns, not {}", header.len(), first.len()))
}

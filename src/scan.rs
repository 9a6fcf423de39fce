//! The single streaming pass over the raw object.
//!
//! Three workers overlap so both cores stay busy and memory stays flat:
//! a reader task pulls chunks from storage, a blocking thread scans CSV, counts
//! (`validate_data`'s rules) and formats feature rows (`build_features`' rules), and
//! this task streams the feature bytes into a staged upload. Channels between them are
//! bounded, so a slow side applies back-pressure instead of buffering.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::csv_scan::{CsvScanner, Record, RecordSink, ScanStats};
use crate::error::{Error, Result};
use crate::pipeline::PipelineSpec;
use crate::stages::build_features::RowSumFeature;
use crate::stages::validate_data::RawStats;
use crate::storage::{ChunkSource, StorageError, StorageResult, Upload};

/// Raw chunks buffered between reader and scanner (each at most 1 MiB locally).
const RAW_CHANNEL: usize = 8;
/// Output blocks buffered between scanner and uploader.
const OUT_CHANNEL: usize = 4;
/// Size of one output block. Small on purpose: the S3 upload gathers blocks into
/// [`crate::storage::s3::PART_SIZE`] parts itself, so big blocks here would only add
/// memory (they used to be 8 MiB each and lifted the 1 GB peak from 35 to 59 MB).
const OUT_BLOCK: usize = 1 << 20;

/// The feature file as written by the pass, still staged (invisible) in storage.
pub struct FeatureFile {
    pub rows: u64,
    pub size_bytes: u64,
    pub sha256: String,
    pub columns: Vec<(String, &'static str)>,
    /// `None` in a dry run.
    pub upload: Option<Box<dyn Upload>>,
}

/// What the pass found.
pub struct ScanOutcome {
    pub stats: RawStats,
    pub scan: ScanStats,
    pub feature: FeatureFile,
}

/// Reads `source` once, counting and building features, writing into `upload`.
/// On error the upload is aborted: nothing staged survives a failed pass.
pub async fn scan_raw(
    mut source: Box<dyn ChunkSource>,
    upload: Option<Box<dyn Upload>>,
    spec: &PipelineSpec,
) -> Result<ScanOutcome> {
    let (raw_tx, raw_rx) = mpsc::channel::<StorageResult<Bytes>>(RAW_CHANNEL);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(OUT_CHANNEL);

    let reader = tokio::spawn(async move {
        loop {
            let next = source.next_chunk().await;
            let item = match next {
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
    let spec = spec.clone();
    let scanner = tokio::task::spawn_blocking(move || scan_blocking(raw_rx, out_tx, &spec));

    let mut upload = upload;
    let mut upload_error: Option<StorageError> = None;
    while let Some(block) = out_rx.recv().await {
        if let Some(u) = upload.as_mut() {
            if let Err(e) = u.write(block).await {
                upload_error = Some(e);
                break;
            }
        }
    }
    // Closing the receiver stops the scanner if the upload failed first.
    drop(out_rx);
    let scanned = scanner
        .await
        .map_err(|e| Error::Internal(format!("the CSV scanner stopped unexpectedly: {e}")));
    reader.abort();

    let result = match (upload_error, scanned) {
        (Some(e), _) => Err(Error::Storage(e)),
        (None, Err(e)) | (None, Ok(Err(e))) => Err(e),
        (None, Ok(Ok(done))) => Ok(done),
    };
    match result {
        Ok((stats, scan, mut feature)) => {
            feature.upload = upload;
            Ok(ScanOutcome {
                stats,
                scan,
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

/// The scanner thread: CSV -> counts + feature rows -> output blocks.
fn scan_blocking(
    mut raw_rx: mpsc::Receiver<StorageResult<Bytes>>,
    out_tx: mpsc::Sender<Bytes>,
    spec: &PipelineSpec,
) -> Result<(RawStats, ScanStats, FeatureFile)> {
    let mut sink = PassSink {
        stats: RawStats::default(),
        feature: RowSumFeature::new(spec),
        out: Output::new(out_tx),
        spec,
    };
    sink.feature.write_header(&mut sink.out.buf);
    let mut scanner = CsvScanner::new();
    while let Some(chunk) = raw_rx.blocking_recv() {
        let chunk = chunk?;
        scanner.feed(&chunk, &mut sink).map_err(malformed)?;
        sink.out.send_full_blocks()?;
    }
    let scan = scanner.finish(&mut sink).map_err(malformed)?;
    let (size_bytes, sha256) = sink.out.finish()?;
    let feature = FeatureFile {
        rows: sink.feature.rows(),
        size_bytes,
        sha256,
        columns: sink.feature.columns(),
        upload: None,
    };
    Ok((sink.stats, scan, feature))
}

fn malformed(e: crate::csv_scan::ScanError) -> Error {
    Error::Malformed {
        line: e.line,
        message: e.message,
    }
}

/// Routes each record: the first is the header, the rest are data rows.
struct PassSink<'a> {
    stats: RawStats,
    feature: RowSumFeature,
    out: Output,
    spec: &'a PipelineSpec,
}

impl RecordSink for PassSink<'_> {
    fn record(&mut self, record: &Record<'_>) {
        if self.stats.header.is_none() {
            self.stats.set_header(record);
            self.feature.bind_header(record, self.spec);
        } else {
            self.stats.observe(record);
            self.feature.write_row(record, &mut self.out.buf);
        }
    }
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
            buf: Vec::with_capacity(OUT_BLOCK + (64 << 10)),
            tx,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn send(&mut self) -> Result<()> {
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_BLOCK + (64 << 10)));
        self.hasher.update(&block);
        self.size += block.len() as u64;
        // A closed channel means the uploader failed; it reports the real error.
        self.tx
            .blocking_send(Bytes::from(block))
            .map_err(|_| Error::Internal("feature upload stopped".into()))
    }

    fn send_full_blocks(&mut self) -> Result<()> {
        if self.buf.len() >= OUT_BLOCK {
            self.send()?;
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

//! What a run shows to the people and systems watching it, besides its `[DP]` lines and
//! its result: progress while it works ([`progress`]), Prometheus metrics when it ends
//! ([`metrics`]), OpenLineage events when it starts and ends ([`lineage`]).
//!
//! Everything here is optional and best effort: it never changes a run's outcome or its
//! exit code, and every network call is bounded by `--observe-timeout`. The run loop
//! calls in at a few points only: the pass's [`progress::Counters`], [`Observe::started`]
//! once a run has opened its storage, and [`Observe::ended`] with the [`RunFacts`]
//! `run_one` gathers once the run is summarized.
//!
//! This layer sits below `run/`: it knows runs only as [`RunFacts`], plain values that
//! `run/` fills in, so that nothing here imports the run loop.

pub mod http;
pub mod lineage;
pub mod metrics;
pub mod progress;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::versions::documents::RuleResult;
use progress::ProgressSettings;

/// How one process shows its runs: decided once from the flags, shared by every run of a
/// backfill.
#[derive(Debug, Clone)]
pub struct Observe {
    pub progress: ProgressSettings,
    pub metrics: metrics::Sinks,
    pub lineage: lineage::LineageConfig,
    /// The bound on each network call (a push, a lineage event), connection included.
    pub timeout: Duration,
}

impl Observe {
    /// A run has opened its storage: its lineage `START` goes out in the background.
    pub fn started(&self, run: &lineage::RunStart<'_>) -> lineage::LineageRun {
        lineage::start(&self.lineage, run, self.timeout)
    }

    /// A run has ended and been summarized: its metrics and its last lineage event go out
    /// (for a run that never started, `START` first).
    pub async fn ended(&self, facts: &RunFacts, started: Option<lineage::LineageRun>) {
        let lineage = async {
            match started {
                Some(run) => lineage::end(&self.lineage, run, facts, self.timeout).await,
                None => lineage::start_and_end(&self.lineage, facts, self.timeout).await,
            }
        };
        tokio::join!(metrics::export(&self.metrics, facts, self.timeout), lineage);
    }
}

/// What a finished run did, as the observers need it (filled in by `run/`).
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub pipeline: String,
    pub run_id: String,
    /// `success`, `skipped` or `failed`.
    pub status: &'static str,
    pub exit_code: u8,
    pub failed_step: Option<&'static str>,
    pub error_kind: Option<&'static str>,
    pub error: Option<String>,
    /// SIGINT / SIGTERM stopped it.
    pub interrupted: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// RFC 3339 in the pipeline zone, and as Unix seconds.
    pub execution_date: Option<String>,
    pub execution_timestamp: Option<i64>,
    /// Finished steps with their wall time, in run order.
    pub stages: Vec<(&'static str, Duration)>,
    pub raw: Option<RawFacts>,
    /// Bytes the pass read from the raw object (when it ran).
    pub read_bytes: Option<u64>,
    /// The raw data's counts (when validate_data got that far).
    pub rows: Option<u64>,
    pub null_count: Option<u64>,
    pub total_cells: Option<u64>,
    pub null_rate: Option<f64>,
    /// Every rule's verdict (when the rules were checked).
    pub rules: Option<Vec<RuleResult>>,
    pub output: OutputFacts,
}

/// The raw object.
#[derive(Debug, Clone, Default)]
pub struct RawFacts {
    pub uri: String,
    pub size_bytes: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The raw header (column names), when it was read.
    pub columns: Option<Vec<String>>,
}

/// The version this run wrote (or would have written).
#[derive(Debug, Clone, Default)]
pub struct OutputFacts {
    /// `<prefix>/v_.../` and the prefix itself.
    pub version_uri: Option<String>,
    pub prefix_uri: Option<String>,
    pub feature_version: Option<String>,
    /// Output columns with their types (when built).
    pub columns: Option<Vec<(String, &'static str)>>,
    pub feature_rows: Option<u64>,
    pub feature_bytes: Option<u64>,
    /// Each output column's null cells and all cells (from the profile).
    pub column_nulls: Vec<(String, u64, u64)>,
    /// Objects written into the version, and their bytes (0 unless published).
    pub files: u64,
    pub written_bytes: u64,
    /// This run published the version (`_SUCCESS` written, not a dry run).
    pub published: bool,
}

//! The typed run context the five stages pass along (DESIGN.md section 1).
//!
//! Each stage reads what earlier stages stored here and adds its own typed result;
//! there is no global state and no string-keyed bag.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono_tz::Tz;

use crate::config::Rerun;
use crate::dp_log::Step;
use crate::execution_date::ExecutionDate;
use crate::interrupt::Interrupt;
use crate::lease::Lease;
use crate::pipeline::PipelineSpec;
use crate::stages::build_features::Built;
use crate::stages::extract_raw_data::Extracted;
use crate::stages::store_features::Stored;
use crate::stages::validate_data::Validated;
use crate::storage::{ObjectStore, StorageUri};

/// Resolved, validated settings of one run (flags > env > pipeline file > defaults).
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub pipeline: String,
    pub timezone: Tz,
    pub execution_date: ExecutionDate,
    /// The raw input after template rendering.
    pub raw: StorageUri,
    /// The feature prefix after template rendering; versions go below it.
    pub features: StorageUri,
    pub dry_run: bool,
    /// What to do with a version that is already complete.
    pub rerun: Rerun,
    pub skip_if_missing: bool,
    /// How long this run's lease on its version lasts without renewal.
    pub lease_ttl: Duration,
    pub spec: PipelineSpec,
}

impl RunSettings {
    /// `v_YYYYMMDDTHHMMSS` for this run's execution date.
    pub fn version_id(&self) -> String {
        self.execution_date.version_id()
    }
}

/// Why a run stopped early without failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `_SUCCESS` already exists for this version and `--force` was not given.
    VersionComplete,
    /// Another run completed the same version while this one was working.
    PublishedConcurrently,
    /// The raw input is missing and `--skip-if-missing` was given (exit 99).
    RawMissing,
    /// `--reprocess failed`: the last run of this date did not fail (or there was none).
    NothingToReprocess,
}

impl serde::Serialize for SkipReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::VersionComplete => "version_complete",
            SkipReason::PublishedConcurrently => "published_concurrently",
            SkipReason::RawMissing => "raw_missing",
            SkipReason::NothingToReprocess => "nothing_to_reprocess",
        }
    }
}

/// Where `summarize_run` prints the run's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `featurepipe run`: the result (or dry-run plan) as JSON on stdout.
    Stdout,
    /// A date inside `backfill`: stdout is kept for the backfill's own report.
    Quiet,
}

/// Everything one run knows, filled in stage by stage.
pub struct RunContext {
    pub settings: RunSettings,
    pub run_id: String,
    pub started: Instant,
    /// The store holding the raw object, and its key there.
    pub raw_store: Arc<dyn ObjectStore>,
    pub raw_key: String,
    /// The store rooted at the feature prefix.
    pub out_store: Arc<dyn ObjectStore>,
    /// Milliseconds per finished step, in run order.
    pub timings_ms: Vec<(Step, u64)>,
    /// SIGINT / SIGTERM: checked at safe points so a stop never half-publishes.
    pub interrupt: Interrupt,
    /// Set by a stage that ends the run early without an error.
    pub skip: Option<SkipReason>,
    /// This run's hold on its version (taken by `extract_raw_data`, not in dry runs).
    pub lease: Option<Lease>,
    /// Where the run's result goes besides the log.
    pub report: Report,
    pub extracted: Option<Extracted>,
    pub validated: Option<Validated>,
    pub built: Option<Built>,
    pub stored: Option<Stored>,
}

impl RunContext {
    /// Store-relative key of a file inside this run's version directory.
    pub fn version_key(&self, name: &str) -> String {
        format!("{}/{name}", self.settings.version_id())
    }

    /// User-facing URI of this run's version directory (with a trailing `/`).
    pub fn version_uri(&self) -> String {
        format!("{}/", self.out_store.uri(&self.settings.version_id()))
    }
}

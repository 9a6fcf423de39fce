//! The typed run context the five stages pass along.
//!
//! Each stage reads what earlier stages stored here and adds its own typed result;
//! there is no global state and no string-keyed bag.

use std::sync::Arc;
use std::time::Instant;

use crate::config::RunSettings;
use crate::interrupt::Interrupt;
use crate::log::Step;
use crate::observe::Observe;
use crate::storage::{ObjectStore, Upload};
use crate::values::execution_date::now_iso;
use crate::versions::latest::LatestPointer;
use crate::versions::lease::Lease;

use super::stages::build_features::Built;
use super::stages::extract_raw_data::Extracted;
use super::stages::store_features::Stored;
use super::stages::validate_data::Validated;

/// Why a run stopped early without failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The version is already complete and `--force` was not given.
    VersionComplete,
    /// Another run completed the same version while this one was working.
    PublishedConcurrently,
    /// The raw input is missing and `--skip-if-missing` was given (exit 99).
    RawMissing,
    /// `--reprocess failed`: the version is complete and its last run did not fail.
    NothingToReprocessComplete,
    /// `--reprocess failed`: the date was never run (no record, no files).
    NothingToReprocessNeverRun,
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
            SkipReason::NothingToReprocessComplete | SkipReason::NothingToReprocessNeverRun => {
                "nothing_to_reprocess"
            }
        }
    }

    /// The reason for a person (a table's note): `as_str`, with which of the two
    /// `nothing_to_reprocess` cases it was.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::NothingToReprocessComplete => "nothing_to_reprocess: complete, not failed",
            SkipReason::NothingToReprocessNeverRun => "nothing_to_reprocess: never run",
            other => other.as_str(),
        }
    }

    /// Whether the skip was asked for (`--skip-if-missing`), so that cron and Airflow see
    /// it as "skipped" (exit 99) rather than success.
    pub fn on_purpose(self) -> bool {
        self == SkipReason::RawMissing
    }
}

/// Who reports the run's result besides the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `featurepipe run`: the command prints the result (or the dry-run plan, which
    /// `summarize_run` returns) on stdout, and the last sentence on stderr.
    Stdout,
    /// A date inside `backfill`: stdout is kept for the backfill's own report.
    Quiet,
}

/// The version's data files while they are staged: each file's name and its upload
/// (taken when committed).
#[derive(Default)]
pub struct StagedFiles {
    files: Vec<(&'static str, Option<Box<dyn Upload>>)>,
}

impl StagedFiles {
    /// Adds a file's staged upload.
    pub fn add(&mut self, name: &'static str, upload: Box<dyn Upload>) {
        self.files.push((name, Some(upload)));
    }

    /// Each file's name and its upload slot, in the order they were added.
    pub fn iter_mut(
        &mut self,
    ) -> impl Iterator<Item = (&'static str, &mut Option<Box<dyn Upload>>)> + '_ {
        self.files.iter_mut().map(|(name, upload)| (*name, upload))
    }

    /// The upload of `name`, while it is staged.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Box<dyn Upload>> {
        self.files
            .iter_mut()
            .find(|(n, _)| *n == name)
            .and_then(|(_, upload)| upload.as_mut())
    }

    /// Every upload still staged, leaving none.
    pub fn take_all(&mut self) -> Vec<Box<dyn Upload>> {
        self.files
            .drain(..)
            .filter_map(|(_, upload)| upload)
            .collect()
    }
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
    /// Progress, metrics and lineage settings.
    pub observe: Arc<Observe>,
    /// Bytes the pass read from the raw object, once it ran.
    pub read_bytes: Option<u64>,
    /// The staged, still invisible data files of the version (`feature.csv`,
    /// `feature.parquet`). Their one owner is this context: opened by build_features
    /// before the pass, lent to the pass, committed by store_features; whatever is left
    /// when the run ends is aborted by `run_one`, and only there.
    pub staged: StagedFiles,
    pub extracted: Option<Extracted>,
    pub validated: Option<Validated>,
    pub built: Option<Built>,
    pub stored: Option<Stored>,
}

impl RunContext {
    /// Store-relative key of a file inside this run's version directory.
    pub fn version_key(&self, name: &str) -> String {
        crate::versions::version_key(&self.settings.version_id(), name)
    }

    /// User-facing URI of this run's version directory (with a trailing `/`).
    pub fn version_uri(&self) -> String {
        format!("{}/", self.out_store.uri(&self.settings.version_id()))
    }

    /// User-facing URI of the raw input.
    pub fn raw_uri(&self) -> String {
        self.raw_store.uri(&self.raw_key)
    }

    /// `_latest` as this run would write it, pointing at its version.
    pub fn latest_pointer(&self) -> LatestPointer {
        LatestPointer {
            feature_version: self.settings.version_id(),
            path: self.version_uri(),
            execution_date: self.settings.execution_date.to_rfc3339(),
            run_id: self.run_id.clone(),
            updated_at: now_iso(self.settings.timezone),
        }
    }
}

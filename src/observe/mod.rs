//! What a run shows to the people and systems watching it, besides its `[DP]` lines and
//! its result: progress while it works ([`progress`]).
//!
//! Everything here is optional and best effort: it never changes a run's outcome or its
//! exit code. The run loop calls in at a few points only (the pass's counters, the start
//! and the end of `run_one`, a backfill's dates).

pub mod progress;

use progress::ProgressSettings;

/// How one process shows its runs: decided once from the flags, shared by every run of a
/// backfill.
#[derive(Debug, Clone)]
pub struct Observe {
    pub progress: ProgressSettings,
}

impl Observe {
    /// Shows nothing (tests, and runs whose flags could not be read).
    pub fn off() -> Self {
        Observe {
            progress: ProgressSettings::OFF,
        }
    }
}

//! The one place that decides what an ending means to cron and Airflow.
//!
//! Every command returns `Result<Finished>`: [`Finished::exit_code`] maps an ending that
//! is not a failure (0, or 99 when skipped on purpose), [`Error::exit_code`] maps every
//! failure, and [`exit_code::most_severe`] picks a backfill's code. Nothing else in the
//! crate picks an exit code; `main` prints the last sentence and exits with it.

use crate::interrupt::Signal;
use crate::storage::StorageError;

/// Exit codes are a contract (docs/exit-codes.md); they are spelled once, here.
pub mod exit_code {
    pub const SUCCESS: u8 = 0;
    pub const INTERNAL: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const DATA_INVALID: u8 = 3;
    pub const RAW_NOT_FOUND: u8 = 4;
    pub const STORAGE: u8 = 5;
    /// `status --max-age`: the newest complete version's execution date is older than
    /// allowed, or the prefix has no complete version. A code of its own: not 3 (data
    /// invalid: a bad drop, which the Airflow DAG fails without retry), not 4 (raw input
    /// not found: about the input, which is retried), not 5 (storage: `status` read the
    /// prefix fine); a stale feature set is the state of the output, whatever caused it.
    pub const STALE: u8 = 6;
    /// Another run holds this version's lease (sysexits' EX_TEMPFAIL): retry later.
    pub const BUSY: u8 = 75;
    pub const SKIPPED_ON_PURPOSE: u8 = 99;
    // 130 (SIGINT) and 143 (SIGTERM): see `Signal::exit_code`.

    /// Failure codes from most to least severe: a backfill exits with the first one any
    /// date ended with. (Interrupts end a backfill before this applies; a date that
    /// succeeded or was skipped, 0 or 99, never fails a backfill.)
    const SEVERITY: [u8; 6] = [INTERNAL, STORAGE, BUSY, USAGE, DATA_INVALID, RAW_NOT_FOUND];

    /// The most severe of `failures` (see [`SEVERITY`]); 0 if there are none.
    pub fn most_severe(failures: &[u8]) -> u8 {
        if failures.is_empty() {
            return SUCCESS;
        }
        SEVERITY
            .iter()
            .copied()
            .find(|code| failures.contains(code))
            // A code outside the list (none today): report it rather than hide it.
            .unwrap_or(failures[0])
    }
}

/// A command's ending that is not a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Skipped on purpose (`--skip-if-missing` and no raw input): exit 99, not 0.
    pub skipped_on_purpose: bool,
    /// One sentence for stderr (what was skipped and why), if there is something to say.
    pub note: Option<String>,
}

impl Finished {
    /// Success with nothing to add.
    pub fn success() -> Self {
        Finished {
            skipped_on_purpose: false,
            note: None,
        }
    }

    pub fn exit_code(&self) -> u8 {
        if self.skipped_on_purpose {
            exit_code::SKIPPED_ON_PURPOSE
        } else {
            exit_code::SUCCESS
        }
    }
}

/// Why a command did not succeed. Each variant's message is one sentence naming what to
/// fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, environment variable, URI, template or pipeline file is wrong; the message
    /// names where the bad value came from.
    #[error("{0}")]
    Usage(String),
    /// The data broke a validation rule; the message lists which.
    #[error("data invalid: {0}")]
    RulesFailed(String),
    /// The CSV cannot be read as CSV; `line` is 1-based in the raw file, or in `file`, the
    /// part of a many-file input it is in.
    #[error("malformed CSV at {}line {line}: {message}", in_file(.file))]
    Malformed {
        file: Option<String>,
        line: u64,
        message: String,
    },
    /// A part of a many-file input has another header than the first part; the message
    /// names both.
    #[error("{0}")]
    HeaderMismatch(String),
    /// Entity grain's groups outgrew `--memory-budget`: the message names the budget,
    /// where it was set and the keys seen. Nothing was published; the same input and
    /// budget fail again.
    #[error("{0}")]
    MemoryBudget(String),
    /// A compressed raw input that cannot be decompressed (corrupt or truncated).
    #[error("{0}")]
    Undecodable(String),
    /// The raw input object does not exist; the message names it and where its path was
    /// set.
    #[error("raw input not found: {0}")]
    RawNotFound(String),
    /// Storage or network failure after the SDK's retries.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Another live run is writing the same version (or this run lost its lease to one).
    #[error("{0}")]
    Busy(String),
    /// SIGINT or SIGTERM arrived; the run stopped cleanly at a safe point.
    #[error("interrupted by {}: stopped cleanly, nothing was published", .0.name())]
    Interrupted(Signal),
    /// Some dates of a backfill failed; `code` is the most severe of their exit codes.
    #[error("{failed} of {} failed (most severe: exit {code}); see the report above",
            if *.dates == 1 { "1 date".to_string() } else { format!("{} dates", .dates) })]
    Backfill {
        failed: usize,
        dates: usize,
        code: u8,
    },
    /// `status --max-age`: the feature set is older than allowed, or has no version.
    #[error("stale: {0}")]
    Stale(String),
    /// A bug: something we assumed cannot happen did.
    #[error("internal error (please report this as a bug): {0}")]
    Internal(String),
}

/// `part-00003.csv.gz ` before a line number in a part, nothing for a single file.
fn in_file(file: &Option<String>) -> String {
    file.as_ref().map(|f| format!("{f} ")).unwrap_or_default()
}

impl From<Signal> for Error {
    fn from(signal: Signal) -> Self {
        Error::Interrupted(signal)
    }
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit_code::USAGE,
            Error::RulesFailed(_)
            | Error::Malformed { .. }
            | Error::HeaderMismatch(_)
            | Error::MemoryBudget(_)
            | Error::Undecodable(_) => exit_code::DATA_INVALID,
            Error::RawNotFound(_) => exit_code::RAW_NOT_FOUND,
            Error::Storage(_) => exit_code::STORAGE,
            Error::Busy(_) => exit_code::BUSY,
            Error::Interrupted(signal) => signal.exit_code(),
            Error::Backfill { code, .. } => *code,
            Error::Stale(_) => exit_code::STALE,
            Error::Internal(_) => exit_code::INTERNAL,
        }
    }

    /// Every [`Self::kind`] one run can end with (`backfill` is a backfill's own), in a
    /// fixed order: the failure columns of `featurepipe runs --output csv`.
    pub const RUN_KINDS: [&'static str; 11] = [
        "usage",
        "rules_failed",
        "malformed_csv",
        "header_mismatch",
        "memory_budget",
        "undecodable_input",
        "raw_not_found",
        "storage",
        "busy",
        "interrupted",
        "internal",
    ];

    /// Short machine-friendly kind, logged as `error_kind=` for Grafana filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::RulesFailed(_) => "rules_failed",
            Error::Malformed { .. } => "malformed_csv",
            Error::HeaderMismatch(_) => "header_mismatch",
            Error::MemoryBudget(_) => "memory_budget",
            Error::Undecodable(_) => "undecodable_input",
            Error::RawNotFound(_) => "raw_not_found",
            Error::Storage(_) => "storage",
            Error::Busy(_) => "busy",
            Error::Interrupted(_) => "interrupted",
            Error::Backfill { .. } => "backfill",
            Error::Stale(_) => "stale",
            Error::Internal(_) => "internal",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_severe_failure_wins() {
        use exit_code::most_severe;
        assert_eq!(most_severe(&[]), 0);
        assert_eq!(most_severe(&[4, 3]), 3);
        assert_eq!(most_severe(&[4, 3, 2]), 2);
        assert_eq!(most_severe(&[2, 75, 3]), 75);
        assert_eq!(most_severe(&[3, 5, 75]), 5);
        assert_eq!(most_severe(&[5, 1, 4]), 1);
    }

    #[test]
    fn every_kind_a_run_can_end_with_is_listed() {
        let errors = [
            Error::Usage(String::new()),
            Error::RulesFailed(String::new()),
            Error::Malformed {
                file: None,
                line: 1,
                message: String::new(),
            },
            Error::HeaderMismatch(String::new()),
            Error::MemoryBudget(String::new()),
            Error::Undecodable(String::new()),
            Error::RawNotFound(String::new()),
            Error::Storage(StorageError::NotFound { uri: String::new() }),
            Error::Busy(String::new()),
            Error::Interrupted(Signal::Terminate),
            Error::Internal(String::new()),
        ];
        let kinds: Vec<&str> = errors.iter().map(Error::kind).collect();
        assert_eq!(kinds, Error::RUN_KINDS);
    }

    #[test]
    fn every_ending_has_its_documented_code() {
        assert_eq!(Finished::success().exit_code(), 0);
        let skipped = Finished {
            skipped_on_purpose: true,
            note: None,
        };
        assert_eq!(skipped.exit_code(), 99);
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::RulesFailed("x".into()).exit_code(), 3);
        assert_eq!(Error::RawNotFound("x".into()).exit_code(), 4);
        assert_eq!(Error::Busy("x".into()).exit_code(), 75);
        assert_eq!(Error::Stale("x".into()).exit_code(), 6);
        assert_eq!(Error::Interrupted(Signal::Terminate).exit_code(), 143);
        let backfill = Error::Backfill {
            failed: 1,
            dates: 3,
            code: 5,
        };
        assert_eq!(backfill.exit_code(), 5);
    }
}

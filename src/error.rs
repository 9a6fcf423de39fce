//! The one place that decides what a failure means to cron and Airflow.
//!
//! Every error a run can end with is an [`Error`]; [`Error::exit_code`] maps it to
//! the exit codes of DESIGN.md section 6. Nothing else in the crate picks an exit code.

use crate::storage::StorageError;

/// Exit codes are a contract (DESIGN.md section 6); they are spelled once, here.
pub mod exit_code {
    pub const SUCCESS: u8 = 0;
    pub const INTERNAL: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const DATA_INVALID: u8 = 3;
    pub const RAW_NOT_FOUND: u8 = 4;
    pub const STORAGE: u8 = 5;
    /// Another run holds this version's lease (sysexits' EX_TEMPFAIL): retry later.
    pub const BUSY: u8 = 75;
    pub const SKIPPED_ON_PURPOSE: u8 = 99;
    // 130 (SIGINT) and 143 (SIGTERM): see `crate::interrupt::Signal::exit_code`.
}

/// Why a run did not succeed. Each variant's message is one sentence naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, environment variable, URI, template or pipeline file is wrong.
    #[error("{0}")]
    Usage(String),
    /// The data broke a validation rule; the message lists which.
    #[error("data invalid: {0}")]
    RulesFailed(String),
    /// The CSV cannot be read as CSV; `line` is 1-based in the raw file.
    #[error("malformed CSV at line {line}: {message}")]
    Malformed { line: u64, message: String },
    /// A compressed raw input that cannot be decompressed (corrupt or truncated).
    #[error("{0}")]
    Undecodable(String),
    /// The raw input object does not exist.
    #[error("raw input not found: {0} (check --raw / DP_RAW_PATH and the execution date)")]
    RawNotFound(String),
    /// Storage or network failure after the SDK's retries.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Another live run is writing the same version (or this run lost its lease to one).
    #[error("{0}")]
    Busy(String),
    /// SIGINT or SIGTERM arrived; the run stopped cleanly at a safe point.
    #[error("interrupted by {}: stopped cleanly, nothing was published", .0.name())]
    Interrupted(crate::interrupt::Signal),
    /// A bug: something we assumed cannot happen did.
    #[error("internal error (please report this as a bug): {0}")]
    Internal(String),
}

impl Error {
    /// The process exit code for this error (DESIGN.md section 6).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit_code::USAGE,
            Error::RulesFailed(_) | Error::Malformed { .. } | Error::Undecodable(_) => {
                exit_code::DATA_INVALID
            }
            Error::RawNotFound(_) => exit_code::RAW_NOT_FOUND,
            Error::Storage(_) => exit_code::STORAGE,
            Error::Busy(_) => exit_code::BUSY,
            Error::Interrupted(signal) => signal.exit_code(),
            Error::Internal(_) => exit_code::INTERNAL,
        }
    }

    /// Short machine-friendly kind, logged as `error_kind=` for Grafana filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::RulesFailed(_) => "rules_failed",
            Error::Malformed { .. } => "malformed_csv",
            Error::Undecodable(_) => "undecodable_input",
            Error::RawNotFound(_) => "raw_not_found",
            Error::Storage(_) => "storage",
            Error::Busy(_) => "busy",
            Error::Interrupted(_) => "interrupted",
            Error::Internal(_) => "internal",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! featurepipe: raw CSV drop -> versioned, validated, documented feature set.
//!
//! Top to bottom (imports point down; docs/architecture.md draws it):
//! - `cli` parses the command line and hands each command its flags; `commands/` has one
//!   thin module per subcommand; `error` decides every exit code; `infer` guesses a
//!   pipeline file from a sample CSV (`featurepipe infer`);
//! - `config/`: flags > environment > pipeline file > defaults, each value with its
//!   origin, and the checked pipeline spec;
//! - `run/`: one run, the stage loop over the run context, `stages/` with the five steps
//!   named as in `step=`;
//! - `pass/`: the single streaming read of the raw object that validate_data and
//!   build_features share;
//! - `versions/`: the on-storage format (documents, `_latest`, leases, run records,
//!   earlier versions);
//! - `observe/`: what watchers see besides the log: progress (a terminal bar or `[DP]
//!   step=progress` lines);
//! - `storage/`: the storage trait, local folders and S3; `values/`: numbers, timestamps,
//!   execution dates; `log/`: `[DP]` lines; `interrupt`: SIGINT / SIGTERM; `build_info`:
//!   this binary's version and git commit.

pub mod build_info;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod infer;
pub mod interrupt;
pub mod log;
pub mod observe;
pub mod pass;
pub mod run;
pub mod storage;
#[cfg(test)]
mod test_rng;
pub mod values;
pub mod versions;

//! featurepipe: raw CSV drop -> versioned, validated, documented feature set.
//!
//! Where things are:
//! - `cli` (flags) -> `config` (validated settings) -> `run` (the stage loop);
//! - `stages/` one module per step name: `extract_raw_data`, `validate_data`,
//!   `build_features`, `store_features`, `summarize_run`, over `context::RunContext`;
//! - `pipeline` what a pipeline reads, checks and computes, `pipeline_file` its TOML;
//! - `scan` the single streaming pass: `csv_scan` -> `column_checks` (cell-by-cell
//!   rules) and `row_features` / `group_by` (feature rows) -> `cell_batch` ->
//!   `feature_writer` (`feature.csv` and `profile`, each output column's statistics);
//! - `storage` the one storage trait with `local` and `s3` backends;
//! - `backfill` many dates through the same run, `run_record` one JSON per run under
//!   `_runs/`, `lease` one writer per version;
//! - `dp_log` the `[DP]` line contract, `error` the exit-code contract.

pub mod backfill;
pub mod cell_batch;
pub mod check_config;
pub mod cli;
pub mod column_checks;
pub mod compression;
pub mod config;
pub mod context;
pub mod csv_scan;
pub mod dp_log;
pub mod error;
pub mod execution_date;
pub mod feature_writer;
pub mod group_by;
pub mod history;
pub mod interrupt;
pub mod key_table;
pub mod lease;
pub mod number;
pub mod pipeline;
pub mod pipeline_file;
pub mod profile;
pub mod redact;
pub mod row_features;
pub mod run;
pub mod run_id;
pub mod run_record;
pub mod scan;
pub mod stages;
pub mod storage;
#[cfg(test)]
mod test_rng;
pub mod timestamp;

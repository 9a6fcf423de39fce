//! The five stages, one module each, named as they appear in `step=`.
//!
//! `extract_raw_data`, `store_features`: `async fn run(ctx)`. `validate_data` and
//! `build_features` share the one streaming pass over the raw object: each contributes
//! its side (`side`) and finishes with what its side found (`finish`); `crate::run` runs
//! the pass between them. `summarize_run` always runs last. Each reads what earlier
//! stages stored in the [`crate::run::context::RunContext`] and stores its own typed
//! result there.

pub mod build_features;
pub mod extract_raw_data;
pub mod store_features;
pub mod summarize_run;
pub mod validate_data;

//! One module per subcommand, each thin: flags -> typed settings (`config`) -> the
//! operation (`run`, ...) -> `Result<Finished>`. `args` holds the flags `run` and
//! `backfill` share and turns them into settings with their origins.

pub mod args;
pub mod backfill;
pub mod check_config;
pub mod completions;
pub mod gc;
pub mod infer;
pub mod man;
pub mod output;
pub mod prefix;
pub mod run;
pub mod runs;
pub mod status;
pub mod versions;

use crate::error::{Error, Result};

/// The async runtime a command runs on: two workers, as the machine has two cores to
/// spare for I/O beside the scanner and feature threads.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

//! Where the commands that read a prefix (`status`, `versions`, `gc`, `runs`) find it:
//! the same `--features` / `DP_FEATURE_PATH` or pipeline file `[output] prefix` as `run`
//! (`args::PrefixArgs`), resolved by `config::resolve_pipeline`, with the S3 connection
//! flags, opened by `storage::Opener`. One small helper, so these commands and `run`
//! always agree on where a pipeline's versions are.

use std::sync::Arc;

use chrono_tz::Tz;
use clap::Args;

use super::args::{PrefixArgs, S3Args, Sources};
use crate::config::{self, Flags, PipelineSettings, Setting};
use crate::error::{Error, Result};
use crate::log::LogFormat;
use crate::storage::s3::S3Options;
use crate::storage::{ObjectStore, Opener, StorageUri};
use crate::values::execution_date::DEFAULT_TIMEZONE;

/// The flags of a command that reads (or cleans) a prefix.
#[derive(Debug, Clone, Args)]
pub struct LocationArgs {
    #[command(flatten)]
    pub prefix: PrefixArgs,

    /// Log line format on stderr (warnings, the error sentence); reports go to stdout
    #[arg(long, env = "DP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub s3: S3Args,
}

impl LocationArgs {
    /// The pipeline's settings (prefix template, time zone), or why they cannot be had.
    pub fn resolve(&self, sources: &Sources<'_>) -> Result<PipelineSettings> {
        let flags = Flags {
            s3: self.s3.options(),
            ..self.prefix.flags(sources)
        };
        config::resolve_pipeline(&flags)
    }

    /// How to log: the chosen format, in the pipeline's zone (Seoul when unknown).
    pub fn log_setup(&self, settings: &Result<PipelineSettings>) -> (LogFormat, Tz) {
        let tz = settings.as_ref().map_or(DEFAULT_TIMEZONE, |s| s.timezone);
        (self.log_format, tz)
    }
}

/// An opened prefix and the settings it was resolved with.
pub struct Prefix {
    pub store: Arc<dyn ObjectStore>,
    pub settings: PipelineSettings,
}

impl Prefix {
    /// The prefix as stored (`s3://bucket/features/`, `/abs/path`).
    pub fn uri(&self) -> String {
        self.store.uri("")
    }
}

/// Opens the settings' prefix, which must be given and must not change with the
/// execution date.
pub async fn open(settings: PipelineSettings) -> Result<Prefix> {
    let prefix = settings.fixed_prefix()?;
    let store = open_store(&prefix, &settings.s3).await?;
    Ok(Prefix { store, settings })
}

/// The store rooted at `prefix`; a bucket that does not exist is a usage error naming
/// where the prefix was set (a typo must not read as "empty" or "stale").
pub async fn open_store(
    prefix: &Setting<StorageUri>,
    s3: &S3Options,
) -> Result<Arc<dyn ObjectStore>> {
    let store = Opener::new(s3.clone())
        .open(&prefix.value)
        .await
        .map_err(|e| Error::Usage(e.to_string()))?;
    if let StorageUri::S3 { bucket, .. } = &prefix.value {
        if store.container_exists().await == Some(false) {
            return Err(Error::Usage(format!(
                "{}: bucket {bucket:?} does not exist (or is not visible to these \
                 credentials)",
                prefix.origin
            )));
        }
    }
    Ok(store)
}

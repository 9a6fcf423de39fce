//! `extract_raw_data`: decides whether there is work, checks the raw object exists
//! (HEAD), records its size / etag / last-modified and opens it as a stream.

use crate::context::{RunContext, SkipReason};
use crate::dp_log::{keys, DpLine};
use crate::error::{Error, Result};
use crate::stages::layout;
use crate::storage::{ChunkSource, ObjectMeta, StorageError, StorageUri};

/// The raw object, opened but not yet read.
pub struct Extracted {
    pub meta: ObjectMeta,
    /// Taken by `validate_data`, which reads it exactly once.
    pub source: Option<Box<dyn ChunkSource>>,
    /// The version already had `_SUCCESS` (a `--force` or dry run goes on anyway).
    pub version_was_complete: bool,
}

impl Extracted {
    pub fn log_fields(&self, line: DpLine) -> DpLine {
        line.with(keys::SIZE_BYTES, self.meta.size_bytes)
            .with(keys::ETAG, self.meta.etag.clone())
            .with(keys::LAST_MODIFIED, self.meta.last_modified.clone())
    }
}

pub async fn run(ctx: &mut RunContext) -> Result<()> {
    // A misspelt output bucket fails now, before gigabytes are read for nothing.
    if ctx.out_store.container_exists().await == Some(false) {
        return Err(missing_bucket(
            &ctx.settings.features,
            "--features / DP_FEATURE_PATH",
        ));
    }
    // A complete version is never recomputed by accident: checked before any read.
    let version_was_complete = ctx
        .out_store
        .head(&ctx.version_key(layout::SUCCESS))
        .await?
        .is_some();
    if version_was_complete && !ctx.settings.force && !ctx.settings.dry_run {
        ctx.skip = Some(SkipReason::VersionComplete);
        return Ok(());
    }

    let raw_uri = ctx.raw_store.uri(&ctx.raw_key);
    let Some(meta) = ctx.raw_store.head(&ctx.raw_key).await? else {
        // A missing bucket is a configuration error, never "not there yet": with
        // --skip-if-missing it would otherwise be skipped quietly every night.
        if ctx.raw_store.container_exists().await == Some(false) {
            return Err(missing_bucket(&ctx.settings.raw, "--raw / DP_RAW_PATH"));
        }
        if ctx.settings.skip_if_missing {
            ctx.skip = Some(SkipReason::RawMissing);
            return Ok(());
        }
        return Err(Error::RawNotFound(raw_uri));
    };
    let source = match ctx.raw_store.get(&ctx.raw_key).await {
        Ok(source) => source,
        // Deleted between HEAD and GET: still "not found", not a storage failure.
        Err(StorageError::NotFound { .. }) => return Err(Error::RawNotFound(raw_uri)),
        Err(e) => return Err(e.into()),
    };
    ctx.extracted = Some(Extracted {
        meta,
        source: Some(source),
        version_was_complete,
    });
    Ok(())
}

fn missing_bucket(uri: &StorageUri, flag: &str) -> Error {
    let bucket = match uri {
        StorageUri::S3 { bucket, .. } => bucket.as_str(),
        StorageUri::Local(_) => "?",
    };
    Error::Usage(format!(
        "bucket {bucket:?} does not exist (check {flag} and the endpoint)"
    ))
}

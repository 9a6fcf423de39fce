//! `extract_raw_data`: decides whether there is work (complete version? `--reprocess`?),
//! takes the version's lease, checks the raw object exists (HEAD), records its size /
//! etag / last-modified and opens it as a stream.

use crate::config::{Rerun, Setting};
use crate::error::{Error, Result};
use crate::log::{keys, DpLine, Status};
use crate::pass::sources::Compression;
use crate::pass::{Part, RawSource};
use crate::run::context::{RunContext, SkipReason};
use crate::storage::pattern::ObjectPattern;
use crate::storage::{join_key, ObjectMeta, StorageError, StorageUri};
use crate::versions::completeness::{self, Completeness, Incomplete};
use crate::versions::latest::move_latest;
use crate::versions::layout::{self, LEASES_DIR};
use crate::versions::lease::{Acquired, Lease};
use crate::versions::run_record;

/// The raw object (or the parts of a many-file input), opened but not yet read.
pub struct Extracted {
    /// The object's; for many files their total size and latest modification time.
    pub meta: ObjectMeta,
    /// Taken by the pass, which reads it exactly once.
    pub source: Option<RawSource>,
    /// A many-file input: every part, in the order read.
    pub parts: Option<Vec<Part>>,
    /// The version already had `_SUCCESS` (a `--force` or dry run goes on anyway).
    pub version_was_complete: bool,
    /// This run replaces a complete version (`--force`, `--reprocess`).
    pub rewrite: bool,
}

impl Extracted {
    pub fn log_fields(&self, line: DpLine) -> DpLine {
        let line = match &self.parts {
            Some(parts) => line.with(keys::RAW_FILES, parts.len() as u64),
            None => line,
        };
        line.with(keys::SIZE_BYTES, self.meta.size_bytes)
            .with(keys::ETAG, self.meta.etag.clone())
            .with(keys::LAST_MODIFIED, self.meta.last_modified.clone())
    }
}

pub async fn run(ctx: &mut RunContext) -> Result<()> {
    // A misspelt output bucket fails now, before gigabytes are read for nothing.
    if ctx.out_store.container_exists().await == Some(false) {
        return Err(missing_bucket(&ctx.settings.features));
    }
    // A complete version is never recomputed by accident: checked before any read.
    let version_was_complete = is_complete(ctx).await?;
    let rewrite = match ctx.settings.rerun {
        Rerun::IfIncomplete => false,
        Rerun::Always => true,
        Rerun::IfFailed => {
            if let Some(nothing) = nothing_to_reprocess(ctx, version_was_complete).await? {
                ctx.skip = Some(nothing);
                return Ok(());
            }
            true
        }
    };
    // Only a complete version can be rewritten; an incomplete one is simply written.
    let rewrite = rewrite && version_was_complete;
    if version_was_complete && !rewrite && !ctx.settings.dry_run {
        heal_latest(ctx).await;
        ctx.skip = Some(SkipReason::VersionComplete);
        return Ok(());
    }
    // One writer per version: a second run of it stops here, before reading anything.
    if !ctx.settings.dry_run {
        if let Some(skip) = take_lease(ctx, rewrite).await? {
            ctx.skip = Some(skip);
            return Ok(());
        }
    }

    // The upstream writer's completion marker says when the drop is whole.
    if let Some(marker) = &ctx.settings.require_marker {
        if ctx.raw_store.head(&marker.value).await?.is_none() {
            let why = format!(
                "{} is not there yet (the completion marker {} asks for)",
                ctx.raw_store.uri(&marker.value),
                marker.origin
            );
            return drop_missing(ctx, why);
        }
    }
    if let Some(pattern) = ctx.settings.raw_parts.clone() {
        return extract_parts(ctx, &pattern, version_was_complete, rewrite).await;
    }

    let not_found = || {
        Error::RawNotFound(format!(
            "{} (check {} and the execution date)",
            ctx.raw_uri(),
            ctx.settings.raw.origin
        ))
    };
    let head = match ctx.raw_store.head(&ctx.raw_key).await {
        // A folder, device or pipe named as the raw input is a configuration mistake,
        // never "not there yet".
        Err(StorageError::NotAFile { uri, what }) => {
            return Err(Error::Usage(format!(
                "{}: {uri} is {what}, not a file",
                ctx.settings.raw.origin
            )))
        }
        other => other?,
    };
    let Some(meta) = head else {
        // A missing bucket, or a folder where the file should be, is a configuration
        // error, never "not there yet": with --skip-if-missing it would otherwise be
        // skipped quietly every night.
        if ctx.raw_store.container_exists().await == Some(false) {
            return Err(missing_bucket(&ctx.settings.raw));
        }
        if !ctx.raw_store.list(&ctx.raw_key).await?.is_empty() {
            return Err(Error::Usage(format!(
                "{}: {} is a folder, not a file",
                ctx.settings.raw.origin,
                ctx.raw_uri()
            )));
        }
        if ctx.settings.skip_if_missing {
            ctx.skip = Some(SkipReason::RawMissing);
            return Ok(());
        }
        return Err(not_found());
    };
    let source = match ctx.raw_store.get_unchanged(&ctx.raw_key, &meta).await {
        Ok(source) => RawSource::One {
            source,
            compression: Compression::from_name(&ctx.raw_key),
        },
        // Deleted between HEAD and GET: still "not found", not a storage failure.
        Err(StorageError::NotFound { .. }) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    ctx.extracted = Some(Extracted {
        meta,
        source: Some(source),
        parts: None,
        version_was_complete,
        rewrite,
    });
    Ok(())
}

/// A many-file input: its parts, listed (paginated) and sorted by key. Fewer than
/// `min_files` is a drop not there yet, like a missing file.
async fn extract_parts(
    ctx: &mut RunContext,
    pattern: &ObjectPattern,
    version_was_complete: bool,
    rewrite: bool,
) -> Result<()> {
    let parts: Vec<Part> = ctx
        .raw_store
        .list_objects("")
        .await?
        .into_iter()
        .filter(|(key, _)| pattern.matches(key))
        .map(|(key, meta)| Part { key, meta })
        .collect();
    if parts.is_empty() && ctx.raw_store.container_exists().await == Some(false) {
        return Err(missing_bucket(&ctx.settings.raw));
    }
    let min = &ctx.settings.min_files;
    if (parts.len() as u64) < min.value {
        let why = if parts.is_empty() {
            format!(
                "no file matches {} (check {} and the execution date)",
                ctx.raw_uri(),
                ctx.settings.raw.origin
            )
        } else {
            format!(
                "{} matches {} files, fewer than the {} that {} asks for",
                ctx.raw_uri(),
                parts.len(),
                min.value,
                min.origin
            )
        };
        return drop_missing(ctx, why);
    }
    let meta = ObjectMeta {
        size_bytes: parts.iter().map(|p| p.meta.size_bytes).sum(),
        etag: None,
        last_modified: parts
            .iter()
            .filter_map(|p| p.meta.last_modified.clone())
            .max(),
        revision: None,
    };
    let source = RawSource::parts(ctx.raw_store.clone(), parts.clone());
    ctx.extracted = Some(Extracted {
        meta,
        source: Some(source),
        parts: Some(parts),
        version_was_complete,
        rewrite,
    });
    Ok(())
}

/// The raw drop is not (all) there: a skip with `--skip-if-missing` (exit 99), else
/// [`Error::RawNotFound`] (exit 4).
fn drop_missing(ctx: &mut RunContext, why: String) -> Result<()> {
    if ctx.settings.skip_if_missing {
        ctx.skip = Some(SkipReason::RawMissing);
        return Ok(());
    }
    Err(Error::RawNotFound(why))
}

/// Whether the version is complete: `_SUCCESS` parses and lists files that are all there
/// with their sizes. A marker that says otherwise is reported, and the version rewritten.
async fn is_complete(ctx: &RunContext) -> Result<bool> {
    let version = ctx.settings.version_id();
    match completeness::check(ctx.out_store.as_ref(), &version).await? {
        Completeness::Complete(_) => Ok(true),
        Completeness::Incomplete(Incomplete::NoMarker) => Ok(false),
        Completeness::Incomplete(why) => {
            tracing::warn!("{} is not complete: {why}", ctx.version_uri());
            Ok(false)
        }
    }
}

/// `--reprocess failed`: a complete version is redone only if its last real run failed
/// (a `--force` that broke); an incomplete one if any run was tried (a record, or files
/// left by a killed run). A date never tried is not "failed". `Some(why)` when there is
/// nothing to reprocess.
async fn nothing_to_reprocess(ctx: &RunContext, complete: bool) -> Result<Option<SkipReason>> {
    let version = ctx.settings.version_id();
    let store = ctx.out_store.as_ref();
    let last = run_record::last_attempt(store, &version).await?;
    Ok(if complete {
        let failed = last.is_some_and(|r| r.status == Status::Failed.as_str());
        (!failed).then_some(SkipReason::NothingToReprocessComplete)
    } else {
        let tried = last.is_some() || !store.list(&version).await?.is_empty();
        (!tried).then_some(SkipReason::NothingToReprocessNeverRun)
    })
}

/// Takes this version's lease. `Some(skip)` if the run has nothing left to do: another
/// run completed the version meanwhile. A live holder that has not completed it yet is
/// [`Error::Busy`] (exit 75: retry later).
async fn take_lease(ctx: &mut RunContext, rewrite: bool) -> Result<Option<SkipReason>> {
    let dir = join_key(LEASES_DIR, &ctx.settings.version_id());
    let acquired = Lease::acquire(
        ctx.out_store.clone(),
        &dir,
        &ctx.run_id,
        ctx.settings.lease_ttl,
    )
    .await?;
    match acquired {
        Acquired::Held(mut lease) => {
            lease.check_exclusive();
            ctx.lease = Some(lease);
            // The previous holder may have completed the version just before letting go.
            if !rewrite && is_complete(ctx).await? {
                return Ok(Some(SkipReason::PublishedConcurrently));
            }
            Ok(None)
        }
        Acquired::Busy(holder) => {
            if !rewrite && is_complete(ctx).await? {
                return Ok(Some(SkipReason::PublishedConcurrently));
            }
            Err(Error::Busy(format!(
                "{} is being written by {}; try again later (exit 75), or after it \
                 finishes; a killed run's lease expires by itself (--lease-ttl)",
                ctx.version_uri(),
                holder.describe()
            )))
        }
    }
}

/// A complete version that `_latest` does not reach yet (its run was killed between
/// `_SUCCESS` and `_latest`) is caught up by the next run of it.
async fn heal_latest(ctx: &RunContext) {
    let pointer = ctx.latest_pointer();
    let moved = move_latest(
        ctx.out_store.clone(),
        &pointer,
        ctx.settings.lease_ttl,
        false,
    );
    if let Err(e) = moved.await {
        tracing::warn!("could not bring {} up to date: {e}", layout::LATEST);
    }
}

fn missing_bucket(location: &Setting<StorageUri>) -> Error {
    let bucket = match &location.value {
        StorageUri::S3 { bucket, .. } => bucket.as_str(),
        StorageUri::Local(_) => "?",
    };
    Error::Usage(format!(
        "bucket {bucket:?} does not exist (check {} and the endpoint)",
        location.origin
    ))
}

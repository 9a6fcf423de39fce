//! `store_features`: publishes `<prefix>/v_.../` atomically (DESIGN.md section 4).
//!
//! Order: commit the staged `feature.csv`, write `schema.json` and `metadata.json` (both
//! at once), then `_SUCCESS` (create-if-absent unless `--force`), then move `_latest`
//! forward. A reader that waits for `_SUCCESS` therefore never sees a partial version; a
//! failure at any point leaves no `_SUCCESS` and `_latest` unchanged.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::context::{RunContext, SkipReason};
use crate::dp_log::{keys, DpLine};
use crate::error::{Error, Result};
use crate::execution_date::now_iso;
use crate::lease::{Lease, LEASES_DIR};
use crate::stages::build_features::{digest, timings_json, to_pretty_json, FileDigest};
use crate::stages::layout;
use crate::storage::{join_key, ObjectStore, PutMode, StorageError};

/// What was (or, in a dry run, would be) written.
pub struct Stored {
    pub version_uri: String,
    pub rows: u64,
    /// Every object written, in publish order: (URI, size in bytes).
    pub writes: Vec<(String, u64)>,
    pub latest_moved: bool,
    pub dry_run: bool,
}

impl Stored {
    pub fn log_fields(&self, line: DpLine) -> DpLine {
        line.with(keys::FEATURE_PREFIX, self.version_uri.clone())
            .with(keys::STORED_ROWS, self.rows)
            .with(keys::LATEST_MOVED, self.latest_moved)
            .with(keys::DRY_RUN, self.dry_run)
    }
}

/// `_SUCCESS`: the completion marker, also a manifest of what the version holds.
#[derive(Debug, Serialize)]
struct SuccessManifest<'a> {
    feature_version: &'a str,
    run_id: &'a str,
    completed_at: String,
    files: std::collections::BTreeMap<&'static str, FileDigest>,
}

/// `_latest`: a pointer to the newest complete version.
#[derive(Debug, Serialize, Deserialize)]
pub struct LatestPointer {
    pub feature_version: String,
    pub path: String,
    pub execution_date: String,
    pub run_id: String,
    pub updated_at: String,
}

pub async fn run(ctx: &mut RunContext) -> Result<()> {
    let Some(built) = ctx.built.as_mut() else {
        return Err(Error::Internal(
            "store_features ran before build_features".into(),
        ));
    };
    built.metadata.timings_ms = timings_json(&ctx.timings_ms);
    let metadata_json = to_pretty_json(&built.metadata)?;
    let schema_json = built.schema_json.clone();
    let mut files = built.metadata.outputs.clone();
    files.insert(layout::METADATA_JSON, digest(&metadata_json));

    let Some(validated) = ctx.validated.as_mut() else {
        return Err(Error::Internal(
            "store_features ran before validate_data".into(),
        ));
    };
    let rows = validated.feature.rows;
    let feature_size = validated.feature.size_bytes;
    let upload = validated.feature.upload.take();
    let rewrite = ctx.extracted.as_ref().is_some_and(|e| e.rewrite);
    let settings = &ctx.settings;
    let version = settings.version_id();
    let store = ctx.out_store.clone();
    let key = |name: &str| ctx.version_key(name);

    let manifest = to_pretty_json(&SuccessManifest {
        feature_version: &version,
        run_id: &ctx.run_id,
        completed_at: now_iso(settings.timezone),
        files,
    })?;
    let writes = vec![
        (store.uri(&key(layout::FEATURE_CSV)), feature_size),
        (
            store.uri(&key(layout::SCHEMA_JSON)),
            schema_json.len() as u64,
        ),
        (
            store.uri(&key(layout::METADATA_JSON)),
            metadata_json.len() as u64,
        ),
        (store.uri(&key(layout::SUCCESS)), manifest.len() as u64),
    ];
    let mut stored = Stored {
        version_uri: ctx.version_uri(),
        rows,
        writes,
        latest_moved: false,
        dry_run: settings.dry_run,
    };

    let Some(upload) = upload else {
        // Dry run: report what would be written, write nothing.
        ctx.stored = Some(stored);
        return Ok(());
    };

    // Still the version's only writer? (A run that outlived its lease stops here.)
    // This stage now owns the staged upload: every early return must abort it.
    if let Some(lease) = &ctx.lease {
        if let Err(e) = lease.ensure_held().await {
            upload.abort().await;
            return Err(e);
        }
    }
    // Last look before touching anything: another run may have completed meanwhile.
    if !rewrite {
        match store.head(&key(layout::SUCCESS)).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                upload.abort().await;
                ctx.skip = Some(SkipReason::PublishedConcurrently);
                return Ok(());
            }
            Err(e) => {
                upload.abort().await;
                return Err(e.into());
            }
        }
    }
    // A stop signal before anything is visible: abort, publish nothing.
    if let Err(e) = ctx.interrupt.check() {
        upload.abort().await;
        return Err(e);
    }
    // Rewriting a complete version: withdraw its completion mark first, so readers
    // never pair old and new files.
    if rewrite {
        if let Err(e) = store.delete(&key(layout::SUCCESS)).await {
            upload.abort().await;
            return Err(e.into());
        }
    }
    upload.commit().await?;
    // The two documents at once: DESIGN.md section 4 orders only `_SUCCESS` (last, once
    // everything else is durable), not the documents among themselves.
    let (schema_key, metadata_key) = (key(layout::SCHEMA_JSON), key(layout::METADATA_JSON));
    tokio::try_join!(
        store.put(&schema_key, Bytes::from(schema_json), PutMode::Overwrite),
        store.put(
            &metadata_key,
            Bytes::from(metadata_json),
            PutMode::Overwrite
        ),
    )?;
    // Last safe point: without `_SUCCESS` the version stays incomplete, and the next run
    // rewrites it.
    ctx.interrupt.check()?;
    if let Some(lease) = &ctx.lease {
        lease.ensure_held().await?;
    }
    let mode = if rewrite {
        PutMode::Overwrite
    } else {
        PutMode::Create
    };
    match store
        .put(&key(layout::SUCCESS), Bytes::from(manifest), mode)
        .await
    {
        Ok(()) => {}
        Err(StorageError::AlreadyExists { .. }) => {
            ctx.skip = Some(SkipReason::PublishedConcurrently);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }

    stored.latest_moved = move_latest(ctx, true).await?;
    ctx.stored = Some(stored);
    Ok(())
}

/// How long a run waits for another run's `_latest` lease (held for two requests).
const LATEST_PATIENCE: Duration = Duration::from_secs(60);

/// Points `_latest` at this version unless it already points at a newer one (a backfill
/// of an older date never moves it back); `refresh` also rewrites a pointer already at
/// this version (a rewrite of it: the pointer names the new run). Read, compare and write
/// happen under the `_latest` lease, so runs of different dates finishing together cannot
/// move it backwards.
pub async fn move_latest(ctx: &RunContext, refresh: bool) -> Result<bool> {
    let version = ctx.settings.version_id();
    let store = &ctx.out_store;
    // Most skipped runs find nothing to do: no lease needed to see that.
    if !latest_is_behind(store.as_ref(), &version, refresh).await? {
        return Ok(false);
    }
    let lease = Lease::acquire_waiting(
        store.clone(),
        &join_key(LEASES_DIR, layout::LATEST),
        &ctx.run_id,
        ctx.settings.lease_ttl,
        LATEST_PATIENCE,
    )
    .await?;
    let moved = write_latest(ctx, &lease, &version, refresh).await;
    lease.release().await;
    moved
}

async fn write_latest(
    ctx: &RunContext,
    lease: &Lease,
    version: &str,
    refresh: bool,
) -> Result<bool> {
    let store = &ctx.out_store;
    if !latest_is_behind(store.as_ref(), version, refresh).await? {
        return Ok(false);
    }
    lease.ensure_held().await?;
    let pointer = LatestPointer {
        feature_version: version.to_string(),
        path: ctx.version_uri(),
        execution_date: ctx.settings.execution_date.to_rfc3339(),
        run_id: ctx.run_id.clone(),
        updated_at: now_iso(ctx.settings.timezone),
    };
    store
        .put(
            layout::LATEST,
            Bytes::from(to_pretty_json(&pointer)?),
            PutMode::Overwrite,
        )
        .await?;
    Ok(true)
}

/// Whether `_latest` is missing, unreadable, or older than `version` (or at it, with
/// `or_at`).
async fn latest_is_behind(store: &dyn ObjectStore, version: &str, or_at: bool) -> Result<bool> {
    let Some(bytes) = store.get_small(layout::LATEST).await? else {
        return Ok(true);
    };
    match serde_json::from_slice::<LatestPointer>(&bytes) {
        Ok(current) => Ok(current.feature_version.as_str() < version
            || (or_at && current.feature_version == version)),
        Err(e) => {
            tracing::warn!("replacing unreadable {}: {e}", store.uri(layout::LATEST));
            Ok(true)
        }
    }
}

//! `store_features`: publishes `<prefix>/v_.../` atomically (docs/layout.md).
//!
//! Order: commit the staged `feature.csv`, write `schema.json` and `metadata.json` (both
//! at once), then `_SUCCESS` (create-if-absent unless `--force`), then move `_latest`
//! forward. A reader that waits for `_SUCCESS` therefore never sees a partial version; a
//! failure at any point leaves no `_SUCCESS` and `_latest` unchanged.

use bytes::Bytes;

use super::build_features::timings_json;
use crate::error::{Error, Result};
use crate::log::{keys, DpLine};
use crate::run::context::{RunContext, SkipReason};
use crate::storage::{PutMode, StorageError};
use crate::values::execution_date::now_iso;
use crate::versions::documents::{digest, to_pretty_json, SuccessManifest};
use crate::versions::latest::move_latest;
use crate::versions::layout;

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

    let rows = built.feature.rows;
    let feature_size = built.feature.size_bytes;
    let rewrite = ctx.extracted.as_ref().is_some_and(|e| e.rewrite);
    let settings = &ctx.settings;
    let version = settings.version_id();
    let store = ctx.out_store.clone();
    let [feature_key, schema_key, metadata_key, success_key] = [
        layout::FEATURE_CSV,
        layout::SCHEMA_JSON,
        layout::METADATA_JSON,
        layout::SUCCESS,
    ]
    .map(|name| ctx.version_key(name));

    let manifest = to_pretty_json(&SuccessManifest {
        feature_version: version.clone(),
        run_id: ctx.run_id.clone(),
        completed_at: now_iso(settings.timezone),
        files: files.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    })?;
    let writes = vec![
        (store.uri(&feature_key), feature_size),
        (store.uri(&schema_key), schema_json.len() as u64),
        (store.uri(&metadata_key), metadata_json.len() as u64),
        (store.uri(&success_key), manifest.len() as u64),
    ];
    let mut stored = Stored {
        version_uri: ctx.version_uri(),
        rows,
        writes,
        latest_moved: false,
        dry_run: settings.dry_run,
    };

    if settings.dry_run {
        // Report what would be written, write nothing.
        ctx.stored = Some(stored);
        return Ok(());
    }

    // Still the version's only writer? (A run that outlived its lease stops here.) Every
    // early return leaves the staged upload to its owner, the run, which aborts it.
    if let Some(lease) = &ctx.lease {
        lease.ensure_held().await?;
    }
    // Last look before touching anything: another run may have completed meanwhile.
    if !rewrite && store.head(&success_key).await?.is_some() {
        ctx.skip = Some(SkipReason::PublishedConcurrently);
        return Ok(());
    }
    // A stop signal before anything is visible: publish nothing.
    ctx.interrupt.check()?;
    // Rewriting a complete version: withdraw its completion mark first, so readers
    // never pair old and new files.
    if rewrite {
        store.delete(&success_key).await?;
    }
    let Some(upload) = ctx.staged_feature.take() else {
        return Err(Error::Internal(
            "store_features found no staged feature file".into(),
        ));
    };
    upload.commit().await?;
    // The two documents at once: the protocol orders only `_SUCCESS` (last, once
    // everything else is durable), not the documents among themselves.
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
    match store.put(&success_key, Bytes::from(manifest), mode).await {
        Ok(()) => {}
        Err(StorageError::AlreadyExists { .. }) => {
            ctx.skip = Some(SkipReason::PublishedConcurrently);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }

    let pointer = ctx.latest_pointer();
    stored.latest_moved = move_latest(store, &pointer, settings.lease_ttl, true).await?;
    ctx.stored = Some(stored);
    Ok(())
}

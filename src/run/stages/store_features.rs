//! `store_features`: publishes `<prefix>/v_.../` atomically (docs/layout.md), through
//! the fenced publish protocol (`versions::publish`): the staged `feature.csv`, then
//! `schema.json` and `metadata.json`, then `_SUCCESS` once every file is confirmed, then
//! `_latest` moves forward. A reader that waits for a complete `_SUCCESS` never sees a
//! partial version; a failure before `_SUCCESS` leaves the version incomplete (the next
//! run rewrites it) and `_latest` unchanged.

use bytes::Bytes;

use super::build_features::timings_json;
use crate::error::{Error, Result};
use crate::log::{keys, DpLine};
use crate::run::context::{RunContext, SkipReason};
use crate::values::execution_date::now_iso;
use crate::versions::documents::{digest, to_pretty_json, FileDigest, SuccessManifest};
use crate::versions::latest::move_latest;
use crate::versions::layout;
use crate::versions::publish::{Publication, Published, VersionFile};

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
    // The data files, in publish order, with the digests the pass computed.
    let data_files: Vec<(&'static str, FileDigest)> =
        [layout::FEATURE_CSV, layout::FEATURE_PARQUET]
            .into_iter()
            .filter_map(|name| Some((name, built.metadata.outputs.get(name)?.clone())))
            .collect();
    if data_files.is_empty() {
        return Err(Error::Internal("no digest of a feature file".into()));
    }
    let rows = built.feature.rows;
    let rewrite = ctx.extracted.as_ref().is_some_and(|e| e.rewrite);
    let settings = &ctx.settings;
    let version = settings.version_id();
    let store = ctx.out_store.clone();
    let uri = |name: &str| store.uri(&ctx.version_key(name));

    // What the dry-run plan shows: every object, in publish order.
    let documents = [
        (layout::SCHEMA_JSON, digest(&schema_json)),
        (layout::METADATA_JSON, digest(&metadata_json)),
    ];
    let planned_manifest = to_pretty_json(&SuccessManifest {
        feature_version: version.clone(),
        run_id: ctx.run_id.clone(),
        completed_at: now_iso(settings.timezone),
        files: data_files
            .iter()
            .cloned()
            .chain(documents.iter().cloned())
            .map(|(name, d)| (name.to_string(), d))
            .collect(),
    })?;
    let writes = data_files
        .iter()
        .chain(&documents)
        .map(|(name, d)| (uri(name), d.size_bytes))
        .chain([(uri(layout::SUCCESS), planned_manifest.len() as u64)])
        .collect();
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

    let mut files: Vec<VersionFile<'_>> = Vec::new();
    for (name, upload) in ctx.staged.iter_mut() {
        let digest = data_files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| Error::Internal(format!("no digest of the staged {name}")))?;
        files.push(VersionFile::Staged {
            name,
            upload,
            digest,
        });
    }
    files.extend([
        VersionFile::Document {
            name: layout::SCHEMA_JSON,
            body: Bytes::from(schema_json),
        },
        VersionFile::Document {
            name: layout::METADATA_JSON,
            body: Bytes::from(metadata_json),
        },
    ]);
    let publication = Publication {
        store: store.as_ref(),
        version: &version,
        lease: ctx.lease.as_ref(),
        rewrite,
        interrupt: &ctx.interrupt,
    };
    let published = publication
        .publish(files, &ctx.run_id, now_iso(settings.timezone))
        .await?;
    if published == Published::ByAnother {
        ctx.skip = Some(SkipReason::PublishedConcurrently);
        return Ok(());
    }

    // The version is complete and durable: a `_latest` that cannot move now is caught up
    // by the next run of any date, and does not make this run a failure.
    let pointer = ctx.latest_pointer();
    match move_latest(store, &pointer, settings.lease_ttl, true).await {
        Ok(moved) => stored.latest_moved = moved,
        Err(e) => tracing::warn!(
            "{} is complete, but {} could not be moved to it: {e}",
            ctx.version_uri(),
            layout::LATEST
        ),
    }
    ctx.stored = Some(stored);
    Ok(())
}

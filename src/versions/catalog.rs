//! What a prefix holds, read from its documents only (`_SUCCESS`, `metadata.json`,
//! `schema.json`, `_latest`, run records; never a feature file): every version with its
//! completeness, summary and size, and one version's documents with the run that wrote
//! it. `versions list/show/diff` print it and `gc` decides on it; completeness is always
//! `completeness::check`'s.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinSet;

use super::completeness::{self, Completeness};
use super::documents::SuccessManifest;
use super::latest::{read_latest, LatestPointer};
use super::lease::{self, LeaseRecord};
use super::{is_version_id, layout, run_record};
use crate::storage::{join_key, ObjectStore, StorageError, StorageResult};

/// Requests in flight at once while reading many versions' documents.
const READ_CONCURRENCY: usize = 8;

/// One version of a prefix, as its documents describe it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub version: String,
    pub complete: bool,
    /// Why it is not complete (`None` when it is).
    pub incomplete: Option<String>,
    /// `_latest` names it.
    pub latest: bool,
    #[serde(flatten)]
    pub summary: Summary,
    /// Bytes of the files the manifest lists (incomplete: of the objects present).
    pub size_bytes: u64,
    /// Objects in the version folder (incomplete versions: as found; complete: as listed,
    /// plus `_SUCCESS`).
    pub objects: usize,
    /// Incomplete: the latest modification of any of its objects (how long ago anyone
    /// wrote it); complete: `None`.
    pub last_write: Option<String>,
    /// Incomplete: the run holding its lease, when one does (it is being written).
    pub writing: Option<String>,
    /// Complete: the manifest (what gc re-checks before deleting).
    #[serde(skip)]
    pub manifest: Option<SuccessManifest>,
}

/// The summary fields of `metadata.json` (older or newer files may lack or add some).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub execution_date: Option<String>,
    pub created_at: Option<String>,
    #[serde(rename(deserialize = "rows_raw"))]
    pub rows: Option<u64>,
    #[serde(rename(deserialize = "rows_feature"))]
    pub feature_rows: Option<u64>,
    #[serde(rename(deserialize = "raw_null_rate"))]
    pub null_rate: Option<f64>,
    #[serde(rename(deserialize = "raw_valid"))]
    pub valid: Option<bool>,
    pub run_id: Option<String>,
}

/// Every version below the prefix, oldest first, and what `_latest` names.
pub struct Listing {
    pub versions: Vec<Entry>,
    pub latest: Option<LatestPointer>,
}

impl Listing {
    pub fn get(&self, version: &str) -> Option<&Entry> {
        self.versions.iter().find(|e| e.version == version)
    }

    /// The newest complete version older than `version`.
    pub fn complete_before(&self, version: &str) -> Option<&Entry> {
        self.versions
            .iter()
            .rev()
            .find(|e| e.complete && e.version.as_str() < version)
    }
}

/// Reads every version folder's documents (a few at a time) and `_latest`.
pub async fn list(store: Arc<dyn ObjectStore>) -> StorageResult<Listing> {
    let latest = read_latest(store.as_ref()).await?;
    let mut folders = store.list_folders("").await?;
    folders.retain(|f| is_version_id(f));
    let mut versions = bounded(folders, |version| {
        let store = store.clone();
        async move { entry(store.as_ref(), &version).await }
    })
    .await?;
    for e in &mut versions {
        e.latest = latest
            .as_ref()
            .is_some_and(|l| l.feature_version == e.version);
    }
    Ok(Listing { versions, latest })
}

/// One version's entry: completeness, summary, size.
pub async fn entry(store: &dyn ObjectStore, version: &str) -> StorageResult<Entry> {
    let completeness = completeness::check(store, version).await?;
    let summary = read_json::<Summary>(store, &join_key(version, layout::METADATA_JSON))
        .await?
        .unwrap_or_default();
    let mut e = Entry {
        version: version.to_string(),
        complete: completeness.is_complete(),
        incomplete: None,
        latest: false,
        summary,
        size_bytes: 0,
        objects: 0,
        last_write: None,
        writing: None,
        manifest: None,
    };
    match completeness {
        Completeness::Complete(manifest) => {
            e.size_bytes = manifest.files.values().map(|f| f.size_bytes).sum();
            e.objects = manifest.files.len() + 1;
            e.manifest = Some(manifest);
        }
        Completeness::Incomplete(why) => {
            e.incomplete = Some(why.to_string());
            let mut newest: Option<DateTime<Utc>> = None;
            for key in store.list(version).await? {
                let Some(meta) = store.head(&key).await? else {
                    continue;
                };
                e.objects += 1;
                e.size_bytes += meta.size_bytes;
                let modified = meta.last_modified.as_deref().and_then(parse_utc);
                newest = newest.max(modified);
            }
            e.last_write = newest.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let dir = join_key(layout::LEASES_DIR, version);
            e.writing = lease::live_holder(store, &dir)
                .await?
                .map(|r: LeaseRecord| r.describe());
        }
    }
    Ok(e)
}

/// An RFC 3339 time as UTC (`None` if it is not one).
pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc())
}

/// One version's documents, as stored.
#[derive(Debug, Clone)]
pub struct Documents {
    pub entry: Entry,
    pub schema: Option<Value>,
    pub metadata: Option<Value>,
    /// The record of the run that wrote it (`_runs/<version>/<run_id>.json`).
    pub run: Option<Value>,
}

/// Reads `version`'s documents and the record of the run its manifest (or metadata)
/// names.
pub async fn documents(
    store: &dyn ObjectStore,
    version: &str,
    latest: bool,
) -> StorageResult<Documents> {
    let mut entry = entry(store, version).await?;
    entry.latest = latest;
    let schema = read_json::<Value>(store, &join_key(version, layout::SCHEMA_JSON)).await?;
    let metadata = read_json::<Value>(store, &join_key(version, layout::METADATA_JSON)).await?;
    let run_id = entry
        .manifest
        .as_ref()
        .map(|m| m.run_id.clone())
        .or_else(|| entry.summary.run_id.clone());
    let run = match run_id {
        Some(id) => read_json::<Value>(store, &run_record::record_key(version, &id)).await?,
        None => None,
    };
    Ok(Documents {
        entry,
        schema,
        metadata,
        run,
    })
}

/// A small JSON document; `None` if it is missing or unreadable (a warning names it).
async fn read_json<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &str,
) -> StorageResult<Option<T>> {
    let Some(bytes) = store.get_small(key).await? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            tracing::warn!("ignoring unreadable {}: {e}", store.uri(key));
            Ok(None)
        }
    }
}

/// Runs `work` on every item, at most [`READ_CONCURRENCY`] at once, and returns the
/// results in the items' order (the first error wins).
pub async fn bounded<T, R, F, Fut>(items: Vec<T>, work: F) -> StorageResult<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = StorageResult<R>> + Send + 'static,
{
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let mut running = JoinSet::new();
    let mut pending = items.into_iter().enumerate();
    loop {
        while running.len() < READ_CONCURRENCY {
            let Some((i, item)) = pending.next() else {
                break;
            };
            let fut = work(item);
            running.spawn(async move { (i, fut.await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, result) = joined.map_err(|e| {
            StorageError::other("read", "the prefix", format!("a read task failed: {e}"))
        })?;
        results[i] = Some(result?);
    }
    Ok(results.into_iter().flatten().collect())
}

/// Versions written as a run would leave them, for tests here and in `gc`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::storage::PutMode;
    use crate::versions::documents::{digest, to_pretty_json};
    use bytes::Bytes;

    pub async fn put(store: &dyn ObjectStore, key: &str, body: &[u8]) {
        store
            .put(key, Bytes::copy_from_slice(body), PutMode::Overwrite)
            .await
            .unwrap();
    }

    /// A complete version whose documents say `rows`, and the record of its run.
    pub async fn version(store: &dyn ObjectStore, v: &str, rows: u64) {
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("feature.csv", b"a\r\n1\r\n".to_vec()),
            ("schema.json", br#"{"columns": {"a": "float"}}"#.to_vec()),
            (
                "metadata.json",
                format!(r#"{{"rows_raw": {rows}, "raw_null_rate": 0.5, "run_id": "r-{v}"}}"#)
                    .into_bytes(),
            ),
        ];
        for (name, body) in &files {
            put(store, &join_key(v, name), body).await;
        }
        let manifest = SuccessManifest {
            feature_version: v.into(),
            run_id: format!("r-{v}"),
            completed_at: "2025-11-19T00:00:00+09:00".into(),
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), digest(b)))
                .collect(),
        };
        put(
            store,
            &join_key(v, "_SUCCESS"),
            &to_pretty_json(&manifest).unwrap(),
        )
        .await;
        put(
            store,
            &run_record::record_key(v, &format!("r-{v}")),
            br#"{"status": "success"}"#,
        )
        .await;
    }

    /// `_latest` naming `v`.
    pub async fn latest(store: &dyn ObjectStore, v: &str) {
        let body = format!(
            r#"{{"feature_version": "{v}", "path": "p", "execution_date": "e", "run_id": "r", "updated_at": "u"}}"#
        );
        put(store, "_latest", body.as_bytes()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{latest, put, version};
    use super::*;
    use crate::storage::local::LocalStore;
    use crate::storage::spy::Spy;

    #[tokio::test]
    async fn listing_and_documents_never_read_a_feature_file() {
        let dir = tempfile::tempdir().unwrap();
        let spy = Arc::new(Spy::new(LocalStore::new(dir.path())));
        version(spy.as_ref(), "v_20251118T000000", 10).await;
        version(spy.as_ref(), "v_20251119T000000", 12).await;
        put(spy.as_ref(), "v_20251120T000000/feature.csv", b"half").await;
        latest(spy.as_ref(), "v_20251119T000000").await;

        let listing = list(spy.clone()).await.unwrap();
        let ids: Vec<_> = listing
            .versions
            .iter()
            .map(|e| e.version.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "v_20251118T000000",
                "v_20251119T000000",
                "v_20251120T000000"
            ]
        );
        assert_eq!(listing.versions[0].summary.rows, Some(10));
        assert!(listing.versions[1].latest && listing.versions[1].complete);
        assert_eq!(listing.versions[2].size_bytes, 4);
        assert_eq!(
            listing
                .complete_before("v_20251120T000000")
                .map(|e| e.version.as_str()),
            Some("v_20251119T000000")
        );
        let docs = documents(spy.as_ref(), "v_20251119T000000", true)
            .await
            .unwrap();
        assert_eq!(docs.schema.unwrap()["columns"]["a"], "float");

        let reads: Vec<String> = spy
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("get "))
            .collect();
        assert!(
            reads.iter().any(|c| c.ends_with("metadata.json")),
            "{reads:?}"
        );
        assert!(
            !reads.iter().any(|c| c.ends_with("feature.csv")),
            "a feature file was read: {reads:?}"
        );
    }
}

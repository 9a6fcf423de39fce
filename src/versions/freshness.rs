//! How fresh a feature prefix is, for `featurepipe status`: its newest complete version
//! (complete as [`completeness`] decides, never by `_latest` alone), what that version's
//! `metadata.json` says, the newer versions that are not complete, and the last run that
//! left a record. Read-only: nothing here writes.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::completeness::{self, Completeness};
use super::layout::{METADATA_JSON, RUNS_DIR};
use super::{is_version_id, run_record, version_key};
use crate::storage::{join_key, ObjectStore, StorageResult};

/// What a prefix holds, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freshness {
    /// The newest complete version; `None` if the prefix has none.
    pub latest: Option<LatestComplete>,
    /// Versions newer than `latest` that are not complete (a run that failed while
    /// publishing, or one still writing), newest first, each with why.
    pub incomplete_newer: Vec<IncompleteVersion>,
    /// The last run of the newest execution date that has a run record.
    pub last_run: Option<LastRun>,
}

/// The newest complete version and what its documents say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestComplete {
    pub feature_version: String,
    /// From `metadata.json`; else read from the version id in the pipeline zone.
    pub execution_date: DateTime<FixedOffset>,
    /// When its `_SUCCESS` was written.
    pub completed_at: String,
    pub run_id: String,
    /// `metadata.json` figures (`None` if it cannot be read).
    pub rows: Option<u64>,
    pub feature_rows: Option<u64>,
    pub null_rate: Option<f64>,
}

/// A version folder that is not complete, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncompleteVersion {
    pub feature_version: String,
    pub reason: String,
}

/// What a run record says about how its run ended (reading stays tolerant of new fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    pub run_id: String,
    pub status: String,
    pub exit_code: u8,
    #[serde(default)]
    pub feature_version: Option<String>,
    #[serde(default)]
    pub execution_date: Option<String>,
    pub finished_at: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub failed_step: Option<String>,
    #[serde(default)]
    pub error_kind: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The `metadata.json` fields `status` shows.
#[derive(Deserialize)]
struct MetadataHead {
    execution_date: Option<String>,
    rows_raw: Option<u64>,
    rows_feature: Option<u64>,
    raw_null_rate: Option<f64>,
}

/// Reads `store` (rooted at the feature prefix). `tz` is the pipeline zone, for a version
/// whose `metadata.json` cannot be read. Storage errors are errors: a prefix that cannot
/// be read must not look empty (and so stale) or fresh.
pub async fn read(store: &dyn ObjectStore, tz: Tz) -> StorageResult<Freshness> {
    let mut versions = store.list_folders("").await?;
    versions.retain(|f| is_version_id(f));
    let mut latest = None;
    let mut incomplete_newer = Vec::new();
    for version in versions.iter().rev() {
        match completeness::check(store, version).await? {
            Completeness::Complete(manifest) => {
                latest = Some(describe(store, version, manifest, tz).await?);
                break;
            }
            Completeness::Incomplete(why) => incomplete_newer.push(IncompleteVersion {
                feature_version: version.clone(),
                reason: why.to_string(),
            }),
        }
    }
    Ok(Freshness {
        latest,
        incomplete_newer,
        last_run: last_run(store).await?,
    })
}

async fn describe(
    store: &dyn ObjectStore,
    version: &str,
    manifest: super::documents::SuccessManifest,
    tz: Tz,
) -> StorageResult<LatestComplete> {
    let key = version_key(version, METADATA_JSON);
    let head = match store.get_small(&key).await? {
        Some(bytes) => match serde_json::from_slice::<MetadataHead>(&bytes) {
            Ok(head) => Some(head),
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", store.uri(&key));
                None
            }
        },
        None => None,
    };
    let from_metadata = head
        .as_ref()
        .and_then(|h| h.execution_date.as_deref())
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok());
    let execution_date = from_metadata
        .or_else(|| from_version_id(version, tz))
        .unwrap_or_default();
    Ok(LatestComplete {
        feature_version: version.to_string(),
        execution_date,
        completed_at: manifest.completed_at,
        run_id: manifest.run_id,
        rows: head.as_ref().and_then(|h| h.rows_raw),
        feature_rows: head.as_ref().and_then(|h| h.rows_feature),
        null_rate: head.as_ref().and_then(|h| h.raw_null_rate),
    })
}

/// `v_20251119T000000` as that wall-clock time in `tz`.
fn from_version_id(version: &str, tz: Tz) -> Option<DateTime<FixedOffset>> {
    let naive = NaiveDateTime::parse_from_str(version.strip_prefix("v_")?, "%Y%m%dT%H%M%S").ok()?;
    let local = tz.from_local_datetime(&naive).earliest()?;
    Some(local.fixed_offset())
}

/// The last run (by finish time) among the records of the newest version folder under
/// `_runs/`: the newest execution date anything was attempted for, whether it published,
/// failed or skipped (a missing raw drop shows up here first).
async fn last_run(store: &dyn ObjectStore) -> StorageResult<Option<LastRun>> {
    let mut folders = store.list_folders(RUNS_DIR).await?;
    folders.retain(|f| is_version_id(f));
    let Some(newest) = folders.last() else {
        return Ok(None);
    };
    let mut runs = Vec::new();
    for key in store.list(&join_key(RUNS_DIR, newest)).await? {
        if run_record::is_skip_counter(&key) {
            continue;
        }
        let Some(bytes) = store.get_small(&key).await? else {
            continue;
        };
        match serde_json::from_slice::<LastRun>(&bytes) {
            Ok(run) => runs.push(run),
            Err(e) => tracing::warn!("ignoring unreadable run record {}: {e}", store.uri(&key)),
        }
    }
    // Skips are counted, not recorded one by one: the counter remembers the latest.
    if let Some(skip) = run_record::read_skips(store, newest)
        .await?
        .and_then(|c| c.last)
    {
        runs.push(LastRun {
            run_id: skip.run_id,
            status: crate::log::Status::Skipped.as_str().to_string(),
            exit_code: skip.exit_code,
            feature_version: Some(newest.clone()),
            execution_date: None,
            finished_at: skip.at,
            reason: Some(skip.reason),
            failed_step: None,
            error_kind: None,
            error: None,
        });
    }
    let mut last: Option<(Option<DateTime<FixedOffset>>, LastRun)> = None;
    for run in runs {
        let finished = DateTime::parse_from_rfc3339(&run.finished_at).ok();
        let later = last.as_ref().is_none_or(|(at, l)| {
            (finished.map(|t| t.to_utc()), &run.run_id) > (at.map(|t| t.to_utc()), &l.run_id)
        });
        if later {
            last = Some((finished, run));
        }
    }
    Ok(last.map(|(_, run)| run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_id_reads_as_its_wall_clock_time() {
        let d = from_version_id("v_20251119T000000", chrono_tz::Asia::Seoul).unwrap();
        assert_eq!(d.to_rfc3339(), "2025-11-19T00:00:00+09:00");
        assert_eq!(from_version_id("v_2025", chrono_tz::UTC), None);
    }
}

//! Run records: every run that got as far as opening its storage and did work (success
//! or failure; not dry runs) leaves `<prefix>/_runs/<version>/<run_id>.json`. A run that
//! only skipped adds one to the version's skip counter instead
//! (`_runs/<version>/_skips/<generation>.json`, see [`count_skip`]).
//!
//! They answer "what happened to this date?" long after the logs are gone:
//! `backfill --reprocess failed` reads them, and `featurepipe runs` computes success
//! rates and runtimes over weeks from them. Readers of versions never need them: a
//! version is complete by its `_SUCCESS` alone.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::documents::{RuleResult, ToolInfo};
use super::layout::RUNS_DIR;
use super::lease::{generation_key, generations};
use crate::config::spec::Severity;
use crate::log::Status;
use crate::storage::{join_key, ObjectStore, PutMode, StorageError, StorageResult};

/// Beside a version's run records: its skip counter's generations.
pub const SKIPS_DIR: &str = "_skips";

/// How many create races one skip may lose before giving up (the skip is then only
/// logged); each loss waits a few random milliseconds so that the contenders spread out.
const MAX_COUNT_RACES: usize = 32;

/// Environment variables Airflow sets for a task (`AIRFLOW_CTX_DAG_ID`, ...).
const AIRFLOW_CONTEXT_PREFIX: &str = "AIRFLOW_CTX_";

/// One run, as written to `_runs/<version>/<run_id>.json`.
#[derive(Debug, Serialize)]
pub struct RunRecord<'a, O: Serialize> {
    /// Everything the `summarize_run` line says (status, exit code, rows, error, ...).
    #[serde(flatten)]
    pub outcome: &'a O,
    pub started_at: String,
    pub finished_at: String,
    /// Milliseconds per finished step.
    pub timings_ms: serde_json::Map<String, serde_json::Value>,
    pub null_count: Option<u64>,
    pub total_cells: Option<u64>,
    /// How the rules went; `None` when validation did not finish.
    pub rules: Option<RuleCounts>,
    pub tool: ToolInfo,
    pub host: String,
    pub pid: u32,
    /// The `AIRFLOW_CTX_*` variables of the task that ran this, when there was one.
    pub airflow: BTreeMap<String, String>,
}

impl<O: Serialize + Sync> RunRecord<'_, O> {
    /// Writes the record of run `run_id` of `version`; returns its key.
    pub async fn write(
        &self,
        store: &dyn ObjectStore,
        version: &str,
        run_id: &str,
    ) -> StorageResult<String> {
        let key = record_key(version, run_id);
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        store
            .put(&key, Bytes::from(body), PutMode::Overwrite)
            .await?;
        Ok(key)
    }
}

/// How many rules a run checked, and how many failed by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCounts {
    pub checked: u64,
    pub passed: u64,
    pub warn_failed: u64,
    pub error_failed: u64,
}

impl RuleCounts {
    pub fn of(rules: &[RuleResult]) -> Self {
        let failed = |severity| {
            rules
                .iter()
                .filter(|r| !r.passed && r.severity == severity)
                .count() as u64
        };
        RuleCounts {
            checked: rules.len() as u64,
            passed: rules.iter().filter(|r| r.passed).count() as u64,
            warn_failed: failed(Severity::Warn),
            error_failed: failed(Severity::Error),
        }
    }
}

/// `_runs/<version>/<run_id>.json`.
pub fn record_key(version: &str, run_id: &str) -> String {
    join_key(&join_key(RUNS_DIR, version), &format!("{run_id}.json"))
}

/// The `AIRFLOW_CTX_*` variables of this process.
pub fn airflow_context() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with(AIRFLOW_CONTEXT_PREFIX))
        .collect()
}

/// What `--reprocess failed` needs from a record (reading stays tolerant of new fields).
#[derive(Debug, Clone, Deserialize)]
pub struct RecordHead {
    pub run_id: String,
    pub status: String,
    pub exit_code: u8,
    pub finished_at: String,
}

/// The last run of `version` that did real work (runs that only skipped are ignored),
/// by finish time; `None` if no such run left a record.
pub async fn last_attempt(
    store: &dyn ObjectStore,
    version: &str,
) -> StorageResult<Option<RecordHead>> {
    let mut last: Option<RecordHead> = None;
    for key in store.list(&join_key(RUNS_DIR, version)).await? {
        if is_skip_counter(&key) {
            continue;
        }
        let Some(bytes) = store.get_small(&key).await? else {
            continue;
        };
        let head: RecordHead = match serde_json::from_slice(&bytes) {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!("ignoring unreadable run record {}: {e}", store.uri(&key));
                continue;
            }
        };
        if head.status == Status::Skipped.as_str() {
            continue;
        }
        let later = last
            .as_ref()
            .is_none_or(|l| (instant(&head), &head.run_id) > (instant(l), &l.run_id));
        if later {
            last = Some(head);
        }
    }
    Ok(last)
}

/// A record's finish time as an instant (records may be written in different zones).
fn instant(head: &RecordHead) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(&head.finished_at)
        .ok()
        .map(|t| t.to_utc())
}

/// Whether a key below `_runs/` is a skip counter generation, not a run record.
pub fn is_skip_counter(key: &str) -> bool {
    key.split('/').any(|part| part == SKIPS_DIR)
}

/// A version's skips: how many, on which days and why, and the latest one. Kept as one
/// small object rather than a record per skip, because skips are mostly retries (a cron
/// retry or an Airflow clear of a date that is already complete, a sensor waiting for
/// raw input with `--skip-if-missing`): a record each would grow `_runs/` by one object
/// per retry for ever, and a record of a run that did nothing says nothing a count does
/// not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkipCounter {
    pub feature_version: String,
    /// Every skip counted so far.
    pub skips: u64,
    /// Day (`YYYY-MM-DD` in the pipeline zone) -> reason -> skips.
    pub by_day: BTreeMap<String, BTreeMap<String, u64>>,
    /// The latest skip.
    pub last: Option<Skip>,
    /// The run ids of the latest skips (at most [`RECENT_SKIPS`]): how a writer whose
    /// generation was overtaken tells "built upon" from "written too late" (see
    /// [`count_skip`]).
    #[serde(default)]
    pub recent_run_ids: Vec<String>,
}

/// How many run ids a skip counter remembers: far more than skips can race at once.
const RECENT_SKIPS: usize = 64;

/// One skipped run, as the counter remembers its latest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Skip {
    pub run_id: String,
    /// When it finished (RFC 3339, pipeline zone); its day is the counter's key.
    pub at: String,
    pub reason: String,
    /// 0, or 99 for a skip asked for (`--skip-if-missing`).
    #[serde(default)]
    pub exit_code: u8,
    pub host: String,
    pub pid: u32,
    pub airflow: BTreeMap<String, String>,
}

/// `_runs/<version>/_skips`.
fn skips_dir(version: &str) -> String {
    join_key(&join_key(RUNS_DIR, version), SKIPS_DIR)
}

/// Adds `skip` (on `day`) to `version`'s counter; returns the key of the new count.
///
/// The counter is a series of generations like a lease's: each skip *creates* generation
/// `top + 1` holding the previous count plus one (create-if-absent), then deletes the
/// older ones. Two skips at once cannot both create the same generation, so the loser
/// reads the winner's count and tries again. A writer that listed long ago can create a
/// generation the others already deleted, below the top: it looks again after creating,
/// and if a newer generation exists that does not carry its run id (one built on it
/// would), its own was never read, so it removes it and counts again. No skip is lost,
/// and at most a couple of objects exist at any time.
pub async fn count_skip(
    store: &dyn ObjectStore,
    version: &str,
    day: &str,
    skip: Skip,
) -> StorageResult<String> {
    let dir = skips_dir(version);
    for _ in 0..MAX_COUNT_RACES {
        let found = generations(store, &dir).await?;
        let (top, mut counter) = match found.last() {
            None => (0, SkipCounter::default()),
            Some((top, key)) => match store.get_small(key).await? {
                // Deleted since listed: a newer generation exists; look again.
                None => continue,
                Some(bytes) => match serde_json::from_slice(&bytes) {
                    Ok(counter) => (*top, counter),
                    Err(e) => {
                        tracing::warn!(
                            "restarting the unreadable skip counter {}: {e}",
                            store.uri(key)
                        );
                        (*top, SkipCounter::default())
                    }
                },
            },
        };
        counter.feature_version = version.to_string();
        counter.skips += 1;
        *counter
            .by_day
            .entry(day.to_string())
            .or_default()
            .entry(skip.reason.clone())
            .or_default() += 1;
        counter.last = Some(skip.clone());
        counter.recent_run_ids.push(skip.run_id.clone());
        let excess = counter.recent_run_ids.len().saturating_sub(RECENT_SKIPS);
        counter.recent_run_ids.drain(..excess);
        let mine = top + 1;
        let key = generation_key(&dir, mine);
        let body = Bytes::from(serde_json::to_vec_pretty(&counter).unwrap_or_default());
        match store.put(&key, body, PutMode::Create).await {
            Ok(()) => {
                if overtaken(store, &dir, mine, &skip.run_id).await? {
                    let _ = store.delete(&key).await;
                    continue;
                }
                for (generation, old) in &found {
                    if *generation <= top {
                        let _ = store.delete(old).await;
                    }
                }
                return Ok(key);
            }
            Err(StorageError::AlreadyExists { .. }) => {
                let jitter =
                    u64::from_str_radix(&crate::values::ids::short_random(), 16).unwrap_or(0);
                tokio::time::sleep(std::time::Duration::from_millis(5 + jitter % 45)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::other(
        "count a skip in",
        store.uri(&dir),
        "lost the create race too often; too many runs at once",
    ))
}

/// Whether generation `mine` was created under a newer one that was not built on it: a
/// late writer's, which no reader will ever take for the top.
async fn overtaken(
    store: &dyn ObjectStore,
    dir: &str,
    mine: u64,
    run_id: &str,
) -> StorageResult<bool> {
    for _ in 0..MAX_COUNT_RACES {
        let Some((top, key)) = generations(store, dir).await?.pop() else {
            return Ok(false);
        };
        if top <= mine {
            return Ok(false);
        }
        // Superseded since listed: ask the newer one.
        let Some(bytes) = store.get_small(&key).await? else {
            continue;
        };
        return Ok(serde_json::from_slice::<SkipCounter>(&bytes)
            .map(|c| !c.recent_run_ids.iter().any(|id| id == run_id))
            .unwrap_or(true));
    }
    Ok(false)
}

/// `version`'s skip counter, if it was ever skipped.
pub async fn read_skips(
    store: &dyn ObjectStore,
    version: &str,
) -> StorageResult<Option<SkipCounter>> {
    let dir = skips_dir(version);
    for _ in 0..MAX_COUNT_RACES {
        let Some((_, key)) = generations(store, &dir).await?.pop() else {
            return Ok(None);
        };
        // Replaced by a newer generation since listed: look again.
        let Some(bytes) = store.get_small(&key).await? else {
            continue;
        };
        return match serde_json::from_slice(&bytes) {
            Ok(counter) => Ok(Some(counter)),
            Err(e) => {
                tracing::warn!(
                    "ignoring the unreadable skip counter {}: {e}",
                    store.uri(&key)
                );
                Ok(None)
            }
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStore;
    use std::sync::Arc;

    fn skip(run_id: &str, reason: &str) -> Skip {
        Skip {
            run_id: run_id.into(),
            at: "2025-11-19T01:00:00+09:00".into(),
            reason: reason.into(),
            ..Skip::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_skips_are_all_counted_in_one_object() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
        // Several versions, each counted by 12 skips at once: races are frequent enough
        // that a lost count shows.
        for v in [
            "v_20251119T000000",
            "v_20251120T000000",
            "v_20251121T000000",
        ] {
            twelve_skips_at_once(&store, v).await;
        }
    }

    async fn twelve_skips_at_once(store: &Arc<dyn ObjectStore>, v: &'static str) {
        assert_eq!(read_skips(store.as_ref(), v).await.unwrap(), None);
        let mut tasks = Vec::new();
        for i in 0..12 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let day = if i < 8 { "2025-11-19" } else { "2025-11-20" };
                let reason = if i % 2 == 0 {
                    "version_complete"
                } else {
                    "raw_missing"
                };
                count_skip(store.as_ref(), v, day, skip(&format!("r{i}"), reason)).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let counter = read_skips(store.as_ref(), v).await.unwrap().unwrap();
        assert_eq!(counter.skips, 12);
        assert_eq!(counter.by_day["2025-11-19"]["version_complete"], 4);
        assert_eq!(counter.by_day["2025-11-19"]["raw_missing"], 4);
        assert_eq!(counter.by_day["2025-11-20"]["version_complete"], 2);
        // One generation is left, and no run record reader mistakes it for a record.
        let keys = store.list(&join_key(RUNS_DIR, v)).await.unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(is_skip_counter(&keys[0]));
        assert!(last_attempt(store.as_ref(), v).await.unwrap().is_none());
    }
}

//! Run records: every run that got as far as opening its storage (success, skip or
//! failure; not dry runs) leaves `<prefix>/_runs/<version>/<run_id>.json`.
//!
//! They answer "what happened to this date?" long after the logs are gone:
//! `backfill --reprocess failed` reads them, and success rates and runtimes over weeks
//! can be computed from them. Readers of versions never need them: a version is complete
//! by its `_SUCCESS` alone.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::documents::ToolInfo;
use super::layout::RUNS_DIR;
use crate::log::Status;
use crate::storage::{join_key, ObjectStore, PutMode, StorageResult};

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
